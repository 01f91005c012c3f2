/* safetensors.c - the safetensors format (huggingface/safetensors): u64
 * little-endian header length N, N bytes of JSON, the data. gen's own
 * tensors are F32; it also writes F16, BF16 and I64 (gen export) and reads
 * them back as floats.
 *
 * The reader treats the file as hostile: every length is checked against
 * the real file size before use, every number in the header must be a
 * non-negative integer, and the tensors must tile the data area exactly
 * (no overlap, no gap), the same rules the reference implementation
 * enforces. The writer is atomic: temp file, fsync, rename, fsync dir. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "io/fs.h"
#include "io/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gen's safetensors code assumes a little-endian host"
#endif

#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: integers a double holds exactly */

static int64_t fail_after = -1;
void gen_st_fail_write_after(int64_t bytes) { fail_after = bytes; }

/* ---- element types ---------------------------------------------------- */

static const struct {
    const char *name;
    int size;
} dtypes[] = {
    [GEN_ST_F32] = {"F32", 4},
    [GEN_ST_F16] = {"F16", 2},
    [GEN_ST_BF16] = {"BF16", 2},
    [GEN_ST_I64] = {"I64", 8},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof *dtypes))

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* v >> shift (1 <= shift <= 31), rounded to nearest, ties to even. */
static uint32_t shift_rne(uint32_t v, int shift) {
    const uint32_t q = v >> shift, rem = v & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t gen_f32_to_f16(float x) {
    const uint32_t u = bits_of(x), sign = (u >> 16) & 0x8000u, m = u & 0x7fffffu;
    const int e = (int)((u >> 23) & 0xff);
    if (e == 0xff) return (uint16_t)(sign | 0x7c00u | (m ? 0x200u | (m >> 13) : 0));
    const int he = e - 127 + 15; /* binary16's biased exponent */
    if (he >= 31) return (uint16_t)(sign | 0x7c00u);
    /* A carry out of the mantissa moves to the next binade, or to infinity. */
    if (he >= 1) return (uint16_t)(sign | shift_rne(((uint32_t)he << 23) | m, 13));
    /* Subnormal: the 24-bit significand in units of 2^-24. */
    const int shift = 14 - he;
    if (shift > 25 || e == 0) return (uint16_t)sign;
    return (uint16_t)(sign | shift_rne(m | 0x800000u, shift));
}

uint16_t gen_f32_to_bf16(float x) {
    const uint32_t u = bits_of(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)(shift_rne(u, 16));
}

float gen_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0x1f) return float_of(sign | 0x7f800000u | (m << 13));
    if (e > 0) return float_of(sign | ((e - 15 + 127) << 23) | (m << 13));
    const float v = (float)m * (1.0f / 16777216.0f); /* m 2^-24, exact */
    return sign ? -v : v;
}

float gen_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

/* ---- writer ----------------------------------------------------------- */

static enum gen_status check_entry(const char *path, const struct gen_st_entry *e,
                                   int64_t *bytes) {
    if (!e->name || !e->name[0] || !strcmp(e->name, "__metadata__"))
        return gen_error(GEN_ERR_USAGE, "%s: bad tensor name '%s'", path, e->name ? e->name : "");
    if (e->ndim < 0 || e->ndim > 4)
        return gen_error(GEN_ERR_USAGE, "%s: tensor '%s' has %d dimensions (0..4)", path, e->name,
                         e->ndim);
    size_t numel = 1;
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0 || !gen_mul_size(numel, (size_t)e->shape[d], &numel) ||
            numel > (size_t)(INT64_MAX / 8))
            return gen_error(GEN_ERR_USAGE, "%s: tensor '%s' has a bad shape", path, e->name);
    }
    if ((int)e->dtype < 0 || (int)e->dtype >= N_DTYPES)
        return gen_error(GEN_ERR_USAGE, "%s: tensor '%s' has an unknown dtype %d", path, e->name,
                         (int)e->dtype);
    if (numel > 0 && (e->dtype == GEN_ST_I64 ? !e->i64 : !e->data))
        return gen_error(GEN_ERR_USAGE, "%s: tensor '%s' has no data", path, e->name);
    *bytes = (int64_t)numel * dtypes[e->dtype].size;
    return GEN_OK;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails with "duplicate WHAT 'NAME'" if a name repeats. */
static enum gen_status check_unique(const char *path, const char **names, int n,
                                    const char *what) {
    if (n < 2) return GEN_OK;
    const char **s = gen_alloc((size_t)n * sizeof *s);
    if (!s) return gen_fs_error_at(GEN_ERR_NOMEM, path);
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_cstr);
    enum gen_status st = GEN_OK;
    for (int i = 1; i < n; i++)
        if (!strcmp(s[i - 1], s[i])) {
            st = gen_error(GEN_ERR_FORMAT, "%s: duplicate %s '%s'", path, what, s[i]);
            break;
        }
    gen_free(s);
    return st;
}

/* The JSON header, unpadded (cJSON-malloc'd), or NULL with the error set. */
static char *build_header(const char *path, const struct gen_st_entry *t, int n,
                          const struct gen_kv *meta, int n_meta, int64_t *data_bytes) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < n_meta; i++)
            ok = cJSON_AddStringToObject(m, meta[i].key, meta[i].value) != NULL;
    }
    int64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        int64_t bytes = 0;
        check_entry(path, &t[i], &bytes); /* checked by the caller */
        cJSON *o = cJSON_AddObjectToObject(root, t[i].name);
        ok = o && cJSON_AddStringToObject(o, "dtype", dtypes[t[i].dtype].name);
        cJSON *shape = ok ? cJSON_AddArrayToObject(o, "shape") : NULL;
        ok = shape != NULL;
        for (int d = 0; ok && d < t[i].ndim; d++) {
            cJSON *v = cJSON_CreateNumber((double)t[i].shape[d]);
            ok = v && cJSON_AddItemToArray(shape, v);
        }
        cJSON *offs = ok ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
        cJSON *b = offs ? cJSON_CreateNumber((double)off) : NULL;
        ok = b && cJSON_AddItemToArray(offs, b);
        cJSON *e = ok ? cJSON_CreateNumber((double)(off + bytes)) : NULL;
        ok = e && cJSON_AddItemToArray(offs, e);
        off += bytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) gen_error(GEN_ERR_NOMEM, "%s: out of memory building the header", path);
    *data_bytes = off;
    return s;
}

struct out {
    FILE *f;
    int64_t written;
    int err; /* errno of the first failure */
};

static void out_write(struct out *o, const void *p, size_t n) {
    if (o->err || n == 0) return;
    if (fail_after >= 0 && o->written + (int64_t)n > fail_after) {
        size_t part = (size_t)(fail_after - o->written);
        if (part) fwrite(p, 1, part, o->f);
        o->err = ENOSPC;
        return;
    }
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
    o->written += (int64_t)n;
}

/* A tensor's data as its dtype stores it. */
static void out_tensor(struct out *o, const struct gen_st_entry *e, int64_t bytes) {
    if (e->dtype == GEN_ST_F32 || e->dtype == GEN_ST_I64) {
        out_write(o, e->dtype == GEN_ST_I64 ? (const void *)e->i64 : (const void *)e->data,
                  (size_t)bytes);
        return;
    }
    uint16_t buf[4096];
    const int64_t n = bytes / 2;
    for (int64_t i = 0; i < n && !o->err; i += 4096) {
        const int64_t k = n - i < 4096 ? n - i : 4096;
        for (int64_t j = 0; j < k; j++)
            buf[j] = e->dtype == GEN_ST_F16 ? gen_f32_to_f16(e->data[i + j])
                                            : gen_f32_to_bf16(e->data[i + j]);
        out_write(o, buf, (size_t)k * sizeof *buf);
    }
}

static void fsync_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t len = (size_t)(slash - path);
        if (len == 0) len = 1;
        if (len >= sizeof dir) return;
        memcpy(dir, path, len);
        dir[len] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd); /* best effort: the file itself is already durable */
    close(fd);
}

enum gen_status gen_st_save(const char *path, const struct gen_st_entry *tensors, int n,
                            const struct gen_kv *meta, int n_meta) {
    if (n < 0 || n > GEN_ST_MAX_TENSORS || n_meta < 0)
        return gen_error(GEN_ERR_USAGE, "%s: cannot write %d tensors", path, n);
    enum gen_status st = GEN_OK;
    for (int i = 0; st == GEN_OK && i < n; i++) {
        int64_t bytes;
        st = check_entry(path, &tensors[i], &bytes);
    }
    for (int i = 0; st == GEN_OK && i < n_meta; i++)
        if (!meta[i].key || !meta[i].value)
            st = gen_error(GEN_ERR_USAGE, "%s: metadata entry %d is NULL", path, i);
    const char **names = NULL;
    int nn = n > n_meta ? n : n_meta;
    if (st == GEN_OK && nn > 0) {
        names = gen_alloc((size_t)nn * sizeof *names);
        if (!names) st = gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    if (st == GEN_OK) {
        for (int i = 0; i < n; i++) names[i] = tensors[i].name;
        st = check_unique(path, names, n, "tensor name");
    }
    if (st == GEN_OK) {
        for (int i = 0; i < n_meta; i++) names[i] = meta[i].key;
        st = check_unique(path, names, n_meta, "metadata key");
    }
    gen_free(names);
    if (st == GEN_ERR_FORMAT) st = GEN_ERR_USAGE; /* the caller's input, not a file */
    if (st != GEN_OK) return st;

    int64_t data_bytes;
    char *json = build_header(path, tensors, n, meta, n_meta, &data_bytes);
    if (!json) return GEN_ERR_NOMEM;
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) & ~(size_t)7;
    char tmp[GEN_FS_TMP_MAX];
    struct out o = {gen_fs_tmp_create(path, tmp), 0, 0};
    if (!o.f) {
        cJSON_free(json);
        return GEN_ERR_IO;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    out_write(&o, len8, 8);
    out_write(&o, json, jlen);
    static const char spaces[8] = "        ";
    out_write(&o, spaces, hlen - jlen);
    cJSON_free(json);
    for (int i = 0; i < n && !o.err; i++) {
        int64_t bytes;
        check_entry(path, &tensors[i], &bytes);
        out_tensor(&o, &tensors[i], bytes);
    }
    if (!o.err && fflush(o.f) != 0) o.err = errno;
    if (!o.err && fsync(fileno(o.f)) != 0) o.err = errno;
    o.err = gen_fs_tmp_finish(o.f, tmp, path, o.err);
    if (o.err) {
        st = gen_error(GEN_ERR_IO, "%s: cannot write checkpoint: %s (the previous file, if any, "
                                   "is unchanged)", path, strerror(o.err));
    } else {
        fsync_parent(path);
    }
    return st;
}

/* ---- reader ----------------------------------------------------------- */

struct gen_st_file {
    int n;
    struct gen_st_tensor *t; /* (n) by data offset */
    int *by_name;            /* (n) indices sorted by name */
    int n_meta;
    char **keys, **values;   /* (n_meta) */
    uint8_t *data;           /* (data_bytes) or NULL */
    int64_t data_bytes;
    float *converted;        /* the tensors stored as other dtypes, as floats */
    FILE *fp;                /* GEN_ST_ON_DEMAND: the file, open for gen_st_read */
    int64_t base;            /* its data area's first byte */
    int64_t *off;            /* (n) GEN_ST_ON_DEMAND: each tensor's offset in the area */
};

int gen_st_count(const struct gen_st_file *f) { return f->n; }
const struct gen_st_tensor *gen_st_at(const struct gen_st_file *f, int i) {
    GEN_ASSERT(i >= 0 && i < f->n);
    return &f->t[i];
}
int64_t gen_st_data_bytes(const struct gen_st_file *f) { return f->data_bytes; }
int gen_st_meta_count(const struct gen_st_file *f) { return f->n_meta; }
void gen_st_meta_at(const struct gen_st_file *f, int i, const char **key, const char **value) {
    GEN_ASSERT(i >= 0 && i < f->n_meta);
    *key = f->keys[i];
    *value = f->values[i];
}

const char *gen_st_meta(const struct gen_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->keys[i], key)) return f->values[i];
    return NULL;
}

const struct gen_st_tensor *gen_st_find(const struct gen_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[f->by_name[mid]].name, name);
        if (c == 0) return &f->t[f->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

void gen_st_close(struct gen_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) gen_free((char *)f->t[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        gen_free(f->keys[i]);
        gen_free(f->values[i]);
    }
    gen_free(f->t);
    gen_free(f->by_name);
    gen_free(f->keys);
    gen_free(f->values);
    gen_free(f->data);
    gen_free(f->converted);
    gen_free(f->off);
    if (f->fp) fclose(f->fp);
    gen_free(f);
}

/* A JSON number that is an integer in [0, 2^53]. */
static int get_uint(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= MAX_EXACT_INT) || d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

static enum gen_status parse_meta(const char *path, const cJSON *m, struct gen_st_file *f) {
    if (!cJSON_IsObject(m))
        return gen_error(GEN_ERR_FORMAT, "%s: __metadata__ is not an object", path);
    int n = cJSON_GetArraySize(m);
    f->keys = gen_calloc((size_t)(n ? n : 1), sizeof *f->keys);
    f->values = gen_calloc((size_t)(n ? n : 1), sizeof *f->values);
    if (!f->keys || !f->values) return gen_fs_error_at(GEN_ERR_NOMEM, path);
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        if (!cJSON_IsString(it) || !it->valuestring)
            return gen_error(GEN_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path,
                             it->string ? it->string : "");
        f->keys[f->n_meta] = gen_fs_strdup(it->string ? it->string : "");
        f->values[f->n_meta] = gen_fs_strdup(it->valuestring);
        f->n_meta++;
        if (!f->keys[f->n_meta - 1] || !f->values[f->n_meta - 1])
            return gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    return check_unique(path, (const char **)f->keys, f->n_meta, "metadata key");
}

static enum gen_status parse_tensor(const char *path, const cJSON *o, int64_t data_bytes,
                                    struct gen_st_tensor *t, int64_t *begin, int64_t *end) {
    const char *name = o->string;
    if (!cJSON_IsObject(o))
        return gen_error(GEN_ERR_FORMAT, "%s: entry '%s' is not an object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(o, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(o, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(o, "data_offsets");
    if (!cJSON_IsString(dtype))
        return gen_error(GEN_ERR_FORMAT, "%s: tensor '%s' has no dtype", path, name);
    int dt = 0;
    while (dt < N_DTYPES && strcmp(dtype->valuestring, dtypes[dt].name) != 0) dt++;
    if (dt == N_DTYPES)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: tensor '%s' has dtype %.32s; gen reads F32, F16, BF16 and I64", path,
                         name, dtype->valuestring);
    t->dtype = (enum gen_st_dtype)dt;
    if (!cJSON_IsArray(shape))
        return gen_error(GEN_ERR_FORMAT, "%s: tensor '%s' has no shape array", path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > 4)
        return gen_error(GEN_ERR_FORMAT, "%s: tensor '%s' has %d dimensions; gen reads 0..4", path,
                         name, nd);
    t->ndim = nd;
    size_t numel = 1;
    for (int d = 0; d < nd; d++) {
        int64_t v;
        if (!get_uint(cJSON_GetArrayItem(shape, d), &v))
            return gen_error(GEN_ERR_FORMAT,
                             "%s: tensor '%s': shape entry %d is not a non-negative integer", path,
                             name, d);
        t->shape[d] = v;
        if (!gen_mul_size(numel, (size_t)v, &numel) || numel > (size_t)(INT64_MAX / 8))
            return gen_error(GEN_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
    }
    t->numel = (int64_t)numel;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !get_uint(cJSON_GetArrayItem(offs, 0), begin) ||
        !get_uint(cJSON_GetArrayItem(offs, 1), end))
        return gen_error(GEN_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets is not two non-negative integers", path,
                         name);
    if (*begin > *end || *end > data_bytes)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] are outside the %lld-byte "
                         "data area", path, name, (long long)*begin, (long long)*end,
                         (long long)data_bytes);
    const int64_t need = t->numel * dtypes[dt].size; /* numel <= INT64_MAX / 8 */
    if (*end - *begin != need)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets span %lld bytes but the shape needs %lld",
                         path, name, (long long)(*end - *begin), (long long)need);
    return GEN_OK;
}

struct span {
    int64_t begin, end;
    int index;
};

static int cmp_span(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index - y->index;
}

static const struct gen_st_file *sort_ctx;
static int cmp_by_name(const void *a, const void *b) {
    return strcmp(sort_ctx->t[*(const int *)a].name, sort_ctx->t[*(const int *)b].name);
}

/* Parses and validates the header; fills f->t (in offset order), meta. */
static enum gen_status parse_header(const char *path, const char *json, size_t len,
                                    int64_t data_bytes, struct gen_st_file *f) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long at = e && e >= json && e <= json + len ? (long)(e - json) : -1;
        return gen_error(GEN_ERR_FORMAT, "%s: header is not valid JSON (near byte %ld of %zu)",
                         path, at, len);
    }
    enum gen_status st = GEN_OK;
    for (const char *p = end; p < json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = gen_error(GEN_ERR_FORMAT, "%s: unexpected bytes after the JSON header", path);
            break;
        }
    if (st == GEN_OK && !cJSON_IsObject(root))
        st = gen_error(GEN_ERR_FORMAT, "%s: header is not a JSON object", path);
    int count = st == GEN_OK ? cJSON_GetArraySize(root) : 0;
    if (st == GEN_OK && count > GEN_ST_MAX_TENSORS + 1)
        st = gen_error(GEN_ERR_FORMAT, "%s: more than %d tensors", path, GEN_ST_MAX_TENSORS);
    struct span *spans = NULL;
    if (st == GEN_OK) {
        f->t = gen_calloc((size_t)(count ? count : 1), sizeof *f->t);
        spans = gen_calloc((size_t)(count ? count : 1), sizeof *spans);
        if (!f->t || !spans) st = gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    int seen_meta = 0;
    const cJSON *it = st == GEN_OK ? root->child : NULL;
    for (; st == GEN_OK && it; it = it->next) {
        if (!it->string) {
            st = gen_error(GEN_ERR_FORMAT, "%s: header entry without a name", path);
        } else if (!strcmp(it->string, "__metadata__")) {
            st = seen_meta++ ? gen_error(GEN_ERR_FORMAT, "%s: __metadata__ appears twice", path)
                             : parse_meta(path, it, f);
        } else {
            struct gen_st_tensor *t = &f->t[f->n];
            struct span *s = &spans[f->n];
            st = parse_tensor(path, it, data_bytes, t, &s->begin, &s->end);
            if (st == GEN_OK) {
                t->name = gen_fs_strdup(it->string);
                if (!t->name) st = gen_fs_error_at(GEN_ERR_NOMEM, path);
                s->index = f->n++;
            }
        }
    }
    cJSON_Delete(root);
    /* cJSON keeps every copy of a repeated key: name the repeat here, before
     * the tiling check below would call the copies overlapping tensors. */
    const char **names = NULL;
    if (st == GEN_OK && !(names = gen_alloc((size_t)(f->n ? f->n : 1) * sizeof *names)))
        st = gen_fs_error_at(GEN_ERR_NOMEM, path);
    if (st == GEN_OK) {
        for (int i = 0; i < f->n; i++) names[i] = f->t[i].name;
        st = check_unique(path, names, f->n, "tensor name");
    }
    gen_free(names);
    if (st != GEN_OK) {
        gen_free(spans);
        return st;
    }
    /* The tensors must tile the data area: sorted by offset, each starts
     * where the previous ended, and the last ends at the end of the file. */
    qsort(spans, (size_t)f->n, sizeof *spans, cmp_span);
    int64_t cursor = 0;
    for (int i = 0; st == GEN_OK && i < f->n; i++) {
        const char *name = f->t[spans[i].index].name;
        if (spans[i].begin < cursor)
            st = gen_error(GEN_ERR_FORMAT, "%s: tensor '%s' overlaps tensor '%s'", path, name,
                           f->t[spans[i - 1].index].name);
        else if (spans[i].begin > cursor)
            st = gen_error(GEN_ERR_FORMAT, "%s: %lld bytes before tensor '%s' belong to no tensor",
                           path, (long long)(spans[i].begin - cursor), name);
        cursor = spans[i].end;
    }
    if (st == GEN_OK && cursor != data_bytes)
        st = gen_error(GEN_ERR_FORMAT,
                       "%s: the last %lld bytes of the data area belong to no tensor", path,
                       (long long)(data_bytes - cursor));
    if (st == GEN_OK) {
        /* Reorder by offset; data pointers are set by the caller. */
        struct gen_st_tensor *sorted = gen_calloc((size_t)(f->n ? f->n : 1), sizeof *sorted);
        f->by_name = gen_calloc((size_t)(f->n ? f->n : 1), sizeof *f->by_name);
        if (!sorted || !f->by_name) {
            gen_free(sorted);
            st = gen_fs_error_at(GEN_ERR_NOMEM, path);
        } else {
            for (int i = 0; i < f->n; i++) {
                sorted[i] = f->t[spans[i].index];
                sorted[i].data = (const float *)(uintptr_t)spans[i].begin; /* offset for now */
                f->by_name[i] = i;
            }
            gen_free(f->t);
            f->t = sorted;
            sort_ctx = f;
            qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_by_name);
            sort_ctx = NULL;
        }
    }
    gen_free(spans);
    return st;
}

/* Whether a tensor at byte offset `off` of the data needs a copy: stored
 * as another dtype, or F32 at an offset that is not a multiple of 4 (after
 * a 2-byte type). */
static int needs_copy(const struct gen_st_tensor *t, uintptr_t off) {
    return t->numel > 0 && (t->dtype != GEN_ST_F32 || off % sizeof(float) != 0);
}

/* n values of dtype, stored little-endian at raw, as floats into out. */
static void to_floats(enum gen_st_dtype dtype, const uint8_t *raw, int64_t n, float *out) {
    for (int64_t k = 0; k < n; k++) {
        uint16_t h;
        int64_t v;
        if (dtype == GEN_ST_F32) {
            memcpy(&out[k], raw + 4 * k, sizeof *out);
        } else if (dtype == GEN_ST_I64) {
            memcpy(&v, raw + 8 * k, sizeof v);
            out[k] = (float)v;
        } else {
            memcpy(&h, raw + 2 * k, sizeof h);
            out[k] = dtype == GEN_ST_F16 ? gen_f16_to_f32(h) : gen_bf16_to_f32(h);
        }
    }
}

/* Points each tensor at its values: aligned F32 ones in the file's bytes
 * f->data, the others converted to floats in f->converted. On entry
 * t->data holds the tensor's byte offset (parse_header). */
static enum gen_status point_tensors(const char *path, struct gen_st_file *f) {
    int64_t total = 0;
    for (int i = 0; i < f->n; i++)
        if (needs_copy(&f->t[i], (uintptr_t)f->t[i].data)) total += f->t[i].numel;
    if (total > 0 && !(f->converted = gen_alloc((size_t)total * sizeof(float))))
        return gen_fs_error_at(GEN_ERR_NOMEM, path); /* total <= data_bytes / 2 */
    float *out = f->converted;
    for (int i = 0; i < f->n; i++) {
        struct gen_st_tensor *t = &f->t[i];
        const uintptr_t off = (uintptr_t)t->data;
        const uint8_t *raw = f->data + off;
        if (!needs_copy(t, off)) {
            t->data = t->numel > 0 ? (const float *)raw : NULL;
            continue;
        }
        to_floats(t->dtype, raw, t->numel, out);
        t->data = out;
        out += t->numel;
    }
    return GEN_OK;
}

static enum gen_status read_exact(const char *path, FILE *fp, void *buf, size_t n,
                                  const char *what) {
    size_t got = n ? fread(buf, 1, n, fp) : 0;
    if (got != n) {
        if (ferror(fp)) return gen_error(GEN_ERR_IO, "%s: read error: %s", path, strerror(errno));
        return gen_error(GEN_ERR_FORMAT, "%s: truncated %s (%zu of %zu bytes)", path, what, got, n);
    }
    return GEN_OK;
}

enum gen_status gen_st_open(const char *path, int flags, struct gen_st_file **out) {
    *out = NULL;
    int64_t size;
    int fd = gen_fs_open(path, &size);
    if (fd < 0) return GEN_ERR_IO;
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        int e = errno;
        close(fd);
        return gen_error(GEN_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct gen_st_file *f = gen_calloc(1, sizeof *f);
    char *json = NULL;
    enum gen_status st = f ? GEN_OK : gen_fs_error_at(GEN_ERR_NOMEM, path);
    uint64_t hlen = 0;
    if (st == GEN_OK && size < 8)
        st = gen_error(GEN_ERR_FORMAT,
                       "%s: %lld bytes is too short for a safetensors file (8-byte header "
                       "length first)", path, (long long)size);
    uint8_t len8[8];
    if (st == GEN_OK) st = read_exact(path, fp, len8, 8, "header length");
    if (st == GEN_OK) {
        for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
        if (hlen < 2)
            st = gen_error(GEN_ERR_FORMAT, "%s: header length %llu is too small", path,
                           (unsigned long long)hlen);
        else if (hlen > (uint64_t)(size - 8))
            st = gen_error(GEN_ERR_FORMAT,
                           "%s: header length %llu is more than the %lld bytes after it "
                           "(truncated or not a safetensors file)", path,
                           (unsigned long long)hlen, (long long)(size - 8));
        else if (hlen > (uint64_t)GEN_ST_MAX_HEADER)
            st = gen_error(GEN_ERR_FORMAT, "%s: header length %llu is over the limit of %ld", path,
                           (unsigned long long)hlen, GEN_ST_MAX_HEADER);
    }
    if (st == GEN_OK) {
        json = gen_alloc((size_t)hlen + 1);
        if (!json) st = gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    if (st == GEN_OK) st = read_exact(path, fp, json, (size_t)hlen, "header");
    /* hlen <= size - 8 once st is OK, so this cannot overflow then. */
    int64_t data_bytes = st == GEN_OK ? size - 8 - (int64_t)hlen : 0;
    if (st == GEN_OK) {
        json[hlen] = 0;
        if (json[0] != '{')
            st = gen_error(GEN_ERR_FORMAT, "%s: header does not start with '{'", path);
        else if (memchr(json, 0, (size_t)hlen))
            st = gen_error(GEN_ERR_FORMAT, "%s: header contains a NUL byte", path);
    }
    if (st == GEN_OK) st = parse_header(path, json, (size_t)hlen, data_bytes, f);
    if (st == GEN_OK) {
        f->data_bytes = data_bytes;
        if (flags & GEN_ST_ON_DEMAND) { /* keep the offsets and the file for gen_st_read */
            f->off = gen_calloc((size_t)(f->n ? f->n : 1), sizeof *f->off);
            if (!f->off) st = gen_fs_error_at(GEN_ERR_NOMEM, path);
            for (int i = 0; st == GEN_OK && i < f->n; i++)
                f->off[i] = (int64_t)(uintptr_t)f->t[i].data;
            f->base = 8 + (int64_t)hlen;
        }
        if (!(flags & (GEN_ST_HEADER_ONLY | GEN_ST_ON_DEMAND)) && data_bytes > 0) {
            f->data = gen_alloc((size_t)data_bytes);
            if (!f->data) st = gen_fs_error_at(GEN_ERR_NOMEM, path);
            if (st == GEN_OK) st = read_exact(path, fp, f->data, (size_t)data_bytes, "data");
        }
        if (st == GEN_OK && f->data) {
            st = point_tensors(path, f);
        } else {
            for (int i = 0; i < f->n; i++) f->t[i].data = NULL;
        }
    }
    gen_free(json);
    if (st == GEN_OK && (flags & GEN_ST_ON_DEMAND))
        f->fp = fp; /* closed by gen_st_close */
    else
        fclose(fp);
    if (st != GEN_OK) {
        gen_st_close(f);
        return st;
    }
    *out = f;
    return GEN_OK;
}

enum gen_status gen_st_read(const char *path, const struct gen_st_file *f,
                            const struct gen_st_tensor *t, float *dst) {
    GEN_ASSERT(f->fp && f->off && t >= f->t && t < f->t + f->n);
    const int size = dtypes[t->dtype].size;
    const int fd = fileno(f->fp);
    /* values a read: F32 straight into dst, the others through a buffer */
    enum { CHUNK = 4096 };
    uint8_t buf[CHUNK * 8];
    int64_t done = 0, at = f->base + f->off[t - f->t];
    while (done < t->numel) {
        const int64_t n = t->dtype == GEN_ST_F32    ? t->numel - done
                          : t->numel - done < CHUNK ? t->numel - done
                                                    : CHUNK;
        uint8_t *into = t->dtype == GEN_ST_F32 ? (uint8_t *)(dst + done) : buf;
        size_t want = (size_t)n * (size_t)size, got = 0;
        while (got < want) {
            const ssize_t r = pread(fd, into + got, want - got, (off_t)(at + (int64_t)got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0)
                return gen_error(GEN_ERR_IO, "%s: read error in tensor '%s': %s", path, t->name,
                                 strerror(errno));
            if (r == 0)
                return gen_error(GEN_ERR_FORMAT,
                                 "%s: truncated: tensor '%s' ends past the end of the file (was "
                                 "it cut short since it was opened?)",
                                 path, t->name);
            got += (size_t)r;
        }
        if (t->dtype != GEN_ST_F32) to_floats(t->dtype, buf, n, dst + done);
        done += n;
        at += (int64_t)want;
    }
    return GEN_OK;
}
