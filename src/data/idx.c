/* idx.c - IDX files (the MNIST format), raw or gzip-compressed.
 *
 * Layout: 00 00 TYPE RANK, then RANK big-endian uint32 dimensions, then
 * prod(dims) elements. gen reads TYPE 0x08 (unsigned bytes) only. The
 * header is untrusted: every dimension is capped, the product is
 * overflow-checked and the payload must be exactly that long. For a
 * compressed file the real length is unknown until it is inflated, so the
 * buffer grows with the data instead of trusting the header. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "gen/data.h"
#include "io/fs.h"

#define GZ_CHUNK (1u << 26)

struct src {
    const char *path;
    gzFile gz;
    int compressed;
    int64_t file_size; /* on disk */
    enum gen_status err; /* status of the last failed src_read */
};

/* Reads up to n bytes; returns the count, or -1 with the error set. */
/* zlib's message for the stream, without the "<fd:3>: " it puts first for
 * a gzdopen'd file: the caller names the path itself. */
static const char *gz_reason(gzFile gz, int *errnum) {
    const char *msg = gzerror(gz, errnum);
    if (!msg || !*msg) return "zlib error";
    if (!strncmp(msg, "<fd:", 4)) {
        const char *colon = strstr(msg, ": ");
        if (colon) msg = colon + 2;
    }
    return msg;
}

static int64_t src_read(struct src *s, void *buf, int64_t n) {
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got;
        unsigned chunk = want > GZ_CHUNK ? GZ_CHUNK : (unsigned)want;
        int r = gzread(s->gz, (uint8_t *)buf + got, chunk);
        if (r < 0) {
            int errnum = 0;
            const char *msg = gz_reason(s->gz, &errnum);
            if (errnum == Z_ERRNO)
                s->err = gen_error(GEN_ERR_IO, "%s: read error: %s", s->path, strerror(errno));
            else
                s->err = gen_error(GEN_ERR_FORMAT, "%s: corrupt or truncated gzip data (%s)",
                                   s->path, msg);
            return -1;
        }
        if (r == 0) {
            /* zlib reports a stream cut short (even just its CRC trailer)
             * as a soft Z_BUF_ERROR at end of file. */
            int errnum = 0;
            gzerror(s->gz, &errnum);
            if (errnum == Z_BUF_ERROR) {
                s->err = gen_error(GEN_ERR_FORMAT, "%s: truncated gzip data", s->path);
                return -1;
            }
            break;
        }
        got += r;
    }
    return got;
}

static enum gen_status src_open(struct src *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    int fd = gen_fs_open(path, &s->file_size);
    if (fd < 0) return GEN_ERR_IO;
    uint8_t magic[2] = {0, 0};
    ssize_t r = read(fd, magic, 2);
    s->compressed = r == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return gen_error(GEN_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    }
    s->gz = gzdopen(fd, "rb");
    if (!s->gz) {
        close(fd);
        return gen_error(GEN_ERR_NOMEM, "%s: out of memory opening the file", path);
    }
    gzbuffer(s->gz, 1u << 17);
    return GEN_OK;
}

static void describe_dims(const struct gen_idx *x, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < x->rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? " x " : "",
                                (long long)x->dims[i]);
}

static enum gen_status read_header(struct src *s, struct gen_idx *x) {
    const char *path = s->path;
    uint8_t m[4];
    int64_t got = src_read(s, m, 4);
    if (got < 0) return s->err;
    if (got == 0) return gen_error(GEN_ERR_FORMAT, "%s: empty file, expected an IDX file", path);
    if (got < 4)
        return gen_error(GEN_ERR_FORMAT, "%s: truncated IDX header (%lld of 4 magic bytes)", path,
                         (long long)got);
    if (m[0] != 0 || m[1] != 0)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: not an IDX file (magic %02x %02x %02x %02x, expected 00 00 08 RANK)",
                         path, m[0], m[1], m[2], m[3]);
    if (m[2] != 0x08)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: IDX element type 0x%02x is not supported (only 0x08, unsigned bytes)",
                         path, m[2]);
    if (m[3] < 1 || m[3] > GEN_IDX_MAX_RANK)
        return gen_error(GEN_ERR_FORMAT, "%s: IDX rank %d is outside 1..%d", path, m[3],
                         GEN_IDX_MAX_RANK);
    x->rank = m[3];
    uint8_t d[4 * GEN_IDX_MAX_RANK];
    int64_t want = 4 * x->rank;
    got = src_read(s, d, want);
    if (got < 0) return s->err;
    if (got < want)
        return gen_error(GEN_ERR_FORMAT, "%s: truncated IDX header (%lld of %lld dimension bytes)",
                         path, (long long)got, (long long)want);
    size_t size = 1;
    for (int i = 0; i < x->rank; i++) {
        const uint8_t *p = d + 4 * i;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (v == 0) return gen_error(GEN_ERR_FORMAT, "%s: IDX dimension %d is zero", path, i);
        if (v > GEN_IDX_MAX_DIM)
            return gen_error(GEN_ERR_FORMAT, "%s: IDX dimension %d is %u, more than the limit %ld",
                             path, i, v, (long)GEN_IDX_MAX_DIM);
        x->dims[i] = v;
        if (!gen_mul_size(size, v, &size) || size > (size_t)GEN_IDX_MAX_BYTES) {
            char dims[128];
            describe_dims(x, dims, sizeof dims);
            return gen_error(GEN_ERR_FORMAT, "%s: IDX dimensions %s%s exceed the limit of %lld bytes",
                             path, dims, i + 1 < x->rank ? " x ..." : "",
                             (long long)GEN_IDX_MAX_BYTES);
        }
    }
    x->size = (int64_t)size;
    return GEN_OK;
}

/* "header says 60000 items of 28 x 28 bytes (47040000 bytes), file holds
 * 1275 items (999600 bytes)": the claim next to what is really there. */
static enum gen_status truncated(const char *path, const struct gen_idx *x, int64_t have) {
    char item[96] = "1 byte";
    if (x->rank > 1) {
        struct gen_idx rest = {.rank = x->rank - 1};
        memcpy(rest.dims, x->dims + 1, sizeof(int64_t) * (size_t)rest.rank);
        describe_dims(&rest, item, sizeof item - 8);
        strcat(item, " bytes");
    }
    int64_t per = x->size / x->dims[0];
    return gen_error(GEN_ERR_FORMAT,
                     "%s: truncated: header says %lld items of %s (%lld bytes), file holds %lld "
                     "items (%lld bytes)", path, (long long)x->dims[0], item, (long long)x->size,
                     (long long)(have / per), (long long)have);
}

/* Raw file: the size on disk is known, so check it before allocating. */
static enum gen_status read_raw(struct src *s, struct gen_idx *x) {
    int64_t header = 4 + 4 * (int64_t)x->rank;
    int64_t have = s->file_size - header;
    if (have < x->size) return truncated(s->path, x, have);
    if (have > x->size)
        return gen_error(GEN_ERR_FORMAT, "%s: %lld trailing bytes after the %lld data bytes",
                         s->path, (long long)(have - x->size), (long long)x->size);
    x->data = gen_alloc((size_t)x->size);
    if (!x->data) return gen_fs_error_at(GEN_ERR_NOMEM, s->path);
    int64_t got = src_read(s, x->data, x->size);
    if (got < 0) return s->err;
    if (got < x->size) return truncated(s->path, x, got); /* shrank while reading */
    return GEN_OK;
}

/* Compressed: the header's claim is only an upper bound, so the buffer
 * starts small and doubles only when the inflated data has filled it: a
 * small file that claims gigabytes never holds a buffer more than twice
 * the size of what it really inflated to. */
static enum gen_status read_gz(struct src *s, struct gen_idx *x) {
    int64_t cap = x->size < (1 << 16) ? x->size : (1 << 16), have = 0;
    uint8_t *buf = gen_alloc((size_t)cap);
    if (!buf) return gen_fs_error_at(GEN_ERR_NOMEM, s->path);
    for (;;) {
        int64_t got = src_read(s, buf + have, cap - have);
        if (got < 0) {
            gen_free(buf);
            return s->err;
        }
        have += got;
        if (have < cap || cap == x->size) break; /* end of stream, or all there */
        int64_t ncap = cap <= x->size / 2 ? cap * 2 : x->size;
        uint8_t *nb = gen_alloc((size_t)ncap);
        if (!nb) {
            gen_free(buf);
            return gen_fs_error_at(GEN_ERR_NOMEM, s->path);
        }
        memcpy(nb, buf, (size_t)have);
        gen_free(buf);
        buf = nb;
        cap = ncap;
    }
    x->data = buf;
    if (have < x->size) return truncated(s->path, x, have);
    /* Count trailing bytes (up to a bound, so a gzip bomb ends quickly). */
    uint8_t tail[4096];
    int64_t extra = 0, got;
    while ((got = src_read(s, tail, sizeof tail)) > 0 && extra < (1 << 24)) extra += got;
    if (got < 0) return s->err;
    if (extra > 0)
        return gen_error(GEN_ERR_FORMAT, "%s: %s%lld trailing bytes after the %lld data bytes",
                         s->path, extra >= (1 << 24) ? "at least " : "", (long long)extra,
                         (long long)x->size);
    return GEN_OK;
}

enum gen_status gen_idx_read(const char *path, struct gen_idx *out) {
    memset(out, 0, sizeof *out);
    struct src s;
    enum gen_status st = src_open(&s, path);
    if (st != GEN_OK) return st;
    st = read_header(&s, out);
    if (st == GEN_OK) st = s.compressed ? read_gz(&s, out) : read_raw(&s, out);
    gzclose(s.gz);
    if (st != GEN_OK) gen_idx_free(out);
    return st;
}

void gen_idx_free(struct gen_idx *idx) {
    gen_free(idx->data);
    memset(idx, 0, sizeof *idx);
}
