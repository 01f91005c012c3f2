/* images.c - image sets: MNIST-format directories, conversion (channels,
 * centre crop, resize), float batches, and the loader that picks MNIST or
 * an image folder. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/images.h"
#include "io/fs.h"

/* ---- resampling ------------------------------------------------------- */

/* Per output index: taps source indices with weights (summing to 1). */
struct axis {
    int taps;
    int *idx;  /* (d, taps) */
    float *w;  /* (d, taps) */
};

static void axis_free(struct axis *a) {
    gen_free(a->idx);
    gen_free(a->w);
}

/* Area averaging when shrinking (each output covers s/d source pixels,
 * partial pixels weighted by coverage); bilinear with half-pixel centres,
 * clamped at the edges, when growing. */
static enum gen_status axis_init(struct axis *a, int s, int d) {
    double scale = (double)s / d;
    a->taps = s > d ? (int)ceil(scale) + 1 : 2;
    a->idx = gen_calloc((size_t)d * (size_t)a->taps, sizeof *a->idx);
    a->w = gen_calloc((size_t)d * (size_t)a->taps, sizeof *a->w);
    if (!a->idx || !a->w) {
        axis_free(a);
        return GEN_ERR_NOMEM;
    }
    for (int o = 0; o < d; o++) {
        int *ix = a->idx + (int64_t)o * a->taps;
        float *wt = a->w + (int64_t)o * a->taps;
        if (s > d) {
            double lo = o * scale, hi = (o + 1) * scale;
            int k = 0;
            for (int i = (int)floor(lo); i < s && i < hi && k < a->taps; i++, k++) {
                double cover = fmin(hi, i + 1.0) - fmax(lo, (double)i);
                ix[k] = i;
                wt[k] = (float)(cover / scale);
            }
        } else {
            double x = (o + 0.5) * scale - 0.5;
            if (x < 0) x = 0;
            if (x > s - 1) x = s - 1;
            int i0 = (int)floor(x);
            int i1 = i0 + 1 < s ? i0 + 1 : i0;
            ix[0] = i0;
            ix[1] = i1;
            wt[1] = (float)(x - i0);
            wt[0] = 1.0f - wt[1];
        }
    }
    return GEN_OK;
}

/* Resizes (c, sh, sw) -> (c, dh, dw); returns a status (scratch memory). */
static enum gen_status resize(const float *src, int c, int sh, int sw, float *dst, int dh, int dw) {
    if (sh == dh && sw == dw) {
        memcpy(dst, src, (size_t)c * (size_t)sh * (size_t)sw * sizeof *dst);
        return GEN_OK;
    }
    struct axis ax = {0}, ay = {0};
    float *tmp = gen_alloc((size_t)c * (size_t)sh * (size_t)dw * sizeof *tmp); /* (c, sh, dw) */
    if (!tmp || axis_init(&ax, sw, dw) != GEN_OK || axis_init(&ay, sh, dh) != GEN_OK) {
        gen_free(tmp);
        axis_free(&ax);
        axis_free(&ay);
        return GEN_ERR_NOMEM;
    }
    for (int64_t r = 0; r < (int64_t)c * sh; r++) {
        const float *row = src + r * sw;
        float *out = tmp + r * dw;
        for (int o = 0; o < dw; o++) {
            float acc = 0;
            for (int k = 0; k < ax.taps; k++)
                acc += ax.w[o * ax.taps + k] * row[ax.idx[o * ax.taps + k]];
            out[o] = acc;
        }
    }
    for (int ch = 0; ch < c; ch++) {
        const float *plane = tmp + (int64_t)ch * sh * dw;
        float *out = dst + (int64_t)ch * dh * dw;
        for (int o = 0; o < dh; o++) {
            float *orow = out + (int64_t)o * dw;
            for (int x = 0; x < dw; x++) orow[x] = 0;
            for (int k = 0; k < ay.taps; k++) {
                float wk = ay.w[o * ay.taps + k];
                if (wk == 0) continue;
                const float *irow = plane + (int64_t)ay.idx[o * ay.taps + k] * dw;
                for (int x = 0; x < dw; x++) orow[x] += wk * irow[x];
            }
        }
    }
    gen_free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    return GEN_OK;
}

enum gen_status gen_resize_f32(const float *src, int c, int sh, int sw, float *dst, int dh, int dw) {
    GEN_ASSERT(c > 0 && sh > 0 && sw > 0 && dh > 0 && dw > 0);
    enum gen_status st = resize(src, c, sh, sw, dst, dh, dw);
    if (st != GEN_OK) return gen_error(st, "out of memory resizing an image");
    return GEN_OK;
}

static uint8_t to_u8(float v) {
    if (!(v > 0)) return 0;
    if (v >= 255) return 255;
    return (uint8_t)(v + 0.5f);
}

enum gen_status gen_image_fit(const uint8_t *src, int sc, int h, int w, int interleaved, int dc,
                              int size, uint8_t *dst) {
    GEN_ASSERT(sc >= 1 && sc <= 4 && (dc == 1 || dc == 3) && h > 0 && w > 0 && size >= 0);
    int side = h < w ? h : w;
    int ch = size > 0 ? side : h, cw = size > 0 ? side : w; /* crop */
    int y0 = (h - ch) / 2, x0 = (w - cw) / 2;
    int oh = size > 0 ? size : h, ow = size > 0 ? size : w;
    size_t crop = (size_t)ch * (size_t)cw;
    size_t outn = (size_t)oh * (size_t)ow;
    float *a = gen_alloc((size_t)dc * crop * sizeof *a); /* (dc, ch, cw) */
    float *b = gen_alloc((size_t)dc * outn * sizeof *b); /* (dc, oh, ow) */
    if (!a || !b) {
        gen_free(a);
        gen_free(b);
        return gen_error(GEN_ERR_NOMEM, "out of memory converting a %dx%d image", w, h);
    }
    for (int y = 0; y < ch; y++) {
        for (int x = 0; x < cw; x++) {
            size_t sp = (size_t)(y + y0) * (size_t)w + (size_t)(x + x0);
            float px[4];
            for (int k = 0; k < sc; k++)
                px[k] = interleaved ? src[sp * (size_t)sc + (size_t)k]
                                    : src[(size_t)k * (size_t)h * (size_t)w + sp];
            float r, g, bl, al = 255;
            if (sc <= 2) {
                r = g = bl = px[0];
                if (sc == 2) al = px[1];
            } else {
                r = px[0], g = px[1], bl = px[2];
                if (sc == 4) al = px[3];
            }
            float f = al / 255.0f;
            size_t dp = (size_t)y * (size_t)cw + (size_t)x;
            if (dc == 1) {
                a[dp] = sc <= 2 ? r * f : (0.299f * r + 0.587f * g + 0.114f * bl) * f;
            } else {
                a[dp] = r * f;
                a[crop + dp] = g * f;
                a[2 * crop + dp] = bl * f;
            }
        }
    }
    enum gen_status st = resize(a, dc, ch, cw, b, oh, ow);
    if (st == GEN_OK)
        for (size_t i = 0; i < (size_t)dc * outn; i++) dst[i] = to_u8(b[i]);
    else
        st = gen_error(GEN_ERR_NOMEM, "out of memory resizing a %dx%d image", w, h);
    gen_free(a);
    gen_free(b);
    return st;
}

/* ---- image sets ------------------------------------------------------- */

void gen_image_set_free(struct gen_image_set *s) {
    gen_free(s->pixels);
    gen_free(s->labels);
    if (s->class_names) {
        for (int i = 0; i < s->n_classes; i++) gen_free(s->class_names[i]);
        gen_free(s->class_names);
    }
    memset(s, 0, sizeof *s);
}

enum gen_status gen_image_set_convert(struct gen_image_set *s, int channels, int size) {
    if (channels != 0 && channels != 1 && channels != 3)
        return gen_error(GEN_ERR_USAGE, "%d image channels requested; gen supports 1 or 3",
                         channels);
    if (size < 0 || size > GEN_IMAGE_MAX_SIDE)
        return gen_error(GEN_ERR_USAGE, "image size %d is outside 1..%d", size,
                         GEN_IMAGE_MAX_SIDE);
    int dc = channels ? channels : s->c;
    int oh = size ? size : s->h, ow = size ? size : s->w;
    if (dc == s->c && oh == s->h && ow == s->w) return GEN_OK;
    size_t per, total;
    if (!gen_mul_size((size_t)dc * (size_t)oh, (size_t)ow, &per) ||
        !gen_mul_size(per, (size_t)s->n, &total))
        return gen_error(GEN_ERR_NOMEM, "%lld images of %dx%dx%d are too large",
                         (long long)s->n, dc, oh, ow);
    uint8_t *px = gen_alloc(total);
    if (!px) return GEN_ERR_NOMEM;
    size_t in_per = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    for (int64_t i = 0; i < s->n; i++) {
        enum gen_status st = gen_image_fit(s->pixels + (size_t)i * in_per, s->c, s->h, s->w, 0,
                                           dc, size, px + (size_t)i * per);
        if (st != GEN_OK) {
            gen_free(px);
            return st;
        }
    }
    gen_free(s->pixels);
    s->pixels = px;
    s->c = dc;
    s->h = oh;
    s->w = ow;
    return GEN_OK;
}

void gen_image_set_slice(struct gen_image_set *s, int64_t first, int64_t count) {
    GEN_ASSERT(first >= 0 && count >= 0 && first + count <= s->n);
    const size_t per = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    memmove(s->pixels, s->pixels + (size_t)first * per, (size_t)count * per);
    if (s->labels) memmove(s->labels, s->labels + first, (size_t)count * sizeof *s->labels);
    s->n = count;
}

enum gen_status gen_image_range(const char *opt, const char *spec, int64_t n, int64_t *a,
                                int64_t *b) {
    const char *p = strncmp(spec, "test:", 5) ? spec : spec + 5;
    char *end = (char *)p;
    *a = 0, *b = n - 1;
    if (*spec) {
        *a = *b = strtoll(p, &end, 10);
        if (end != p && *end == '-') *b = strtoll(end + 1, &end, 10);
    }
    if ((*spec && (end == p || *end)) || *a < 0 || *b < *a)
        return gen_error(GEN_ERR_USAGE, "%s: expected test:K or test:A-B, got '%s'%s", opt, spec,
                         strcmp(opt, "--input") ? " (an image file or folder goes in --input)" : "");
    if (*b >= n)
        return gen_error(GEN_ERR_USAGE, "%s: index %lld out of range (%lld images)", opt,
                         (long long)*b, (long long)n);
    return GEN_OK;
}

void gen_images_batch(const struct gen_image_set *s, const int32_t *idx, int count, float *out,
                      float lo, float hi) {
    size_t per = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = lo + (hi - lo) * ((float)v / 255.0f);
    for (int i = 0; i < count; i++) {
        GEN_ASSERT(idx[i] >= 0 && idx[i] < s->n);
        const uint8_t *p = s->pixels + (size_t)idx[i] * per;
        float *o = out + (size_t)i * per;
        for (size_t k = 0; k < per; k++) o[k] = lut[p[k]];
    }
}

void gen_images_labels(const struct gen_image_set *s, const int32_t *idx, int count,
                       int32_t *out) {
    for (int i = 0; i < count; i++) {
        GEN_ASSERT(idx[i] >= 0 && idx[i] < s->n);
        out[i] = s->labels[idx[i]];
    }
}

/* ---- MNIST-format directories ----------------------------------------- */

/* Finds "<split>-<kind>-idx<r>-ubyte" or "<split>-<kind>.idx<r>-ubyte",
 * optionally ".gz". Returns a gen_alloc'd path or NULL (error set). */
static char *find_idx(const char *dir, const char *split, const char *kind, int rank) {
    static const char *const seps[] = {"-", "."};
    static const char *const sufs[] = {"", ".gz"};
    char name[128];
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            snprintf(name, sizeof name, "%s-%s%sidx%d-ubyte%s", split, kind, seps[i], rank, sufs[j]);
            char *p = gen_fs_join(dir, name);
            if (!p) return NULL;
            if (gen_fs_kind(p) == GEN_FS_FILE) return p;
            gen_free(p);
        }
    }
    gen_error(GEN_ERR_IO, "%s: no %s-%s-idx%d-ubyte[.gz] (or %s-%s.idx%d-ubyte[.gz]) file", dir,
              split, kind, rank, split, kind, rank);
    return NULL;
}

int gen_mnist_detect(const char *dir) {
    /* Either split marks the format, so a folder holding only t10k-* files
     * is still read as MNIST and a missing train file is named as such. */
    static const char *const splits[] = {"train", "t10k"};
    char *p = NULL;
    for (int i = 0; i < 2 && !p; i++) p = find_idx(dir, splits[i], "images", 3);
    gen_clear_error();
    int found = p != NULL;
    gen_free(p);
    return found;
}

/* ---- class names ---- */

#define CLASSES_FILE "classes.txt"
#define CLASSES_MAX 4096
#define CLASS_NAME_MAX 255

/* DIR/classes.txt, when there is one: the name of class k on line k + 1.
 * Sets out->class_names and out->n_classes (at least the labels' max + 1
 * = n_classes on entry). */
static enum gen_status read_class_names(const char *dir, struct gen_image_set *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/" CLASSES_FILE, dir);
    if (gen_fs_kind(path) == GEN_FS_MISSING) return GEN_OK;
    uint8_t *data;
    int64_t n;
    enum gen_status st = gen_fs_read(path, (int64_t)CLASSES_MAX * (CLASS_NAME_MAX + 2), &data, &n);
    if (st != GEN_OK) return st;
    char **names = gen_calloc(CLASSES_MAX, sizeof *names);
    int K = 0;
    char *p = (char *)data, *end = p + n;
    while (st == GEN_OK && names && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        while (e > p && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t len = (size_t)(e - p);
        for (size_t k = 0; k < len && st == GEN_OK; k++)
            if ((unsigned char)p[k] < 0x20 || p[k] == 0x7f)
                st = gen_error(GEN_ERR_FORMAT, "%s: line %d: a control character in a class name",
                               path, K + 1);
        if (st == GEN_OK && len == 0 && nl && nl + 1 < end)
            st = gen_error(GEN_ERR_FORMAT, "%s: line %d: an empty class name", path, K + 1);
        if (st == GEN_OK && len > CLASS_NAME_MAX)
            st = gen_error(GEN_ERR_FORMAT, "%s: line %d: a class name longer than %d bytes", path,
                           K + 1, CLASS_NAME_MAX);
        if (st == GEN_OK && len > 0) {
            if (K == CLASSES_MAX)
                st = gen_error(GEN_ERR_FORMAT, "%s: more than %d classes", path, CLASSES_MAX);
            else if (!(names[K] = gen_alloc(len + 1)))
                st = GEN_ERR_NOMEM;
            else {
                memcpy(names[K], p, len);
                names[K++][len] = 0;
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (!names) st = GEN_ERR_NOMEM;
    if (st == GEN_OK && K == 0) st = gen_error(GEN_ERR_FORMAT, "%s: no class names", path);
    if (st == GEN_OK && K < out->n_classes)
        st = gen_error(GEN_ERR_FORMAT, "%s: names %d classes, but the labels go up to %d", path, K,
                       out->n_classes - 1);
    gen_free(data);
    if (st != GEN_OK) {
        for (int k = 0; names && k < K; k++) gen_free(names[k]);
        gen_free(names);
        return st == GEN_ERR_NOMEM ? gen_fs_error_at(st, path) : st;
    }
    out->class_names = names;
    out->n_classes = K;
    return GEN_OK;
}

/* A class name's letters and digits, lower-cased, one '_' for every run
 * of anything else: "T-shirt/top" and "t-shirt-top" give "t_shirt_top". */
static void class_key(const char *s, char *out, size_t n) {
    size_t k = 0;
    int gap = 0;
    for (; *s && k + 2 < n; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch >= 0x80) {
            if (gap && k) out[k++] = '_';
            out[k++] = (char)tolower(ch);
            gap = 0;
        } else {
            gap = 1;
        }
    }
    out[k] = 0;
}

int gen_class_find(char *const *names, int K, const char *spec) {
    char want[CLASS_NAME_MAX + 2], have[CLASS_NAME_MAX + 2];
    for (int k = 0; names && k < K; k++) /* the name itself ("." has no letters) */
        if (!strcmp(names[k], spec)) return k;
    class_key(spec, want, sizeof want);
    for (int k = 0; names && want[0] && k < K; k++) {
        class_key(names[k], have, sizeof have);
        if (!strcmp(want, have)) return k;
    }
    char *end;
    errno = 0;
    long v = strtol(spec, &end, 10);
    if (end != spec && !*end && !errno && v >= 0 && v < K) return (int)v;
    return -1;
}

void gen_class_dirname(char *const *names, int k, char *out, size_t n) {
    if (!names || !names[k][0] || !strcmp(names[k], ".") || !strcmp(names[k], "..")) {
        snprintf(out, n, "%d", k);
        return;
    }
    snprintf(out, n, "%s", names[k]);
    for (char *p = out; *p; p++)
        if (*p == '/' || *p == '\\') *p = '-';
    if (out[0] == '.') out[0] = '_';
}

enum gen_status gen_mnist_load(const char *dir, enum gen_split split, struct gen_image_set *out) {
    memset(out, 0, sizeof *out);
    if (split == GEN_SPLIT_ALL)
        return gen_error(GEN_ERR_USAGE, "%s: an MNIST-format directory has a train and a test "
                                        "split, not 'all'", dir);
    const char *name = split == GEN_SPLIT_TRAIN ? "train" : "t10k";
    struct gen_idx im = {0}, lb = {0};
    char *ip = find_idx(dir, name, "images", 3);
    char *lp = ip ? find_idx(dir, name, "labels", 1) : NULL;
    enum gen_status st = lp ? GEN_OK : GEN_ERR_IO;
    if (st == GEN_OK) st = gen_idx_read(ip, &im);
    if (st == GEN_OK && im.rank != 3)
        st = gen_error(GEN_ERR_FORMAT, "%s: images must have 3 dimensions (n, h, w), not %d", ip,
                       im.rank);
    if (st == GEN_OK && (im.dims[1] > GEN_IMAGE_MAX_SIDE || im.dims[2] > GEN_IMAGE_MAX_SIDE))
        st = gen_error(GEN_ERR_FORMAT, "%s: images of %lldx%lld are larger than %dx%d", ip,
                       (long long)im.dims[2], (long long)im.dims[1], GEN_IMAGE_MAX_SIDE,
                       GEN_IMAGE_MAX_SIDE);
    if (st == GEN_OK && im.dims[0] > INT32_MAX)
        st = gen_error(GEN_ERR_FORMAT, "%s: more than %d images", ip, INT32_MAX);
    if (st == GEN_OK) st = gen_idx_read(lp, &lb);
    if (st == GEN_OK && lb.rank != 1)
        st = gen_error(GEN_ERR_FORMAT, "%s: labels must have 1 dimension, not %d", lp, lb.rank);
    if (st == GEN_OK && lb.dims[0] != im.dims[0])
        st = gen_error(GEN_ERR_FORMAT, "%s: %lld labels for %lld images in %s", lp,
                       (long long)lb.dims[0], (long long)im.dims[0], ip);
    if (st == GEN_OK) {
        out->labels = gen_alloc((size_t)lb.dims[0] * sizeof *out->labels);
        if (!out->labels) st = gen_fs_error_at(GEN_ERR_NOMEM, lp);
    }
    if (st == GEN_OK) {
        int max = 0;
        for (int64_t i = 0; i < lb.dims[0]; i++) {
            out->labels[i] = lb.data[i];
            if (lb.data[i] > max) max = lb.data[i];
        }
        out->n = im.dims[0];
        out->c = 1;
        out->h = (int)im.dims[1];
        out->w = (int)im.dims[2];
        out->pixels = im.data;
        im.data = NULL;
        out->n_classes = max + 1;
        st = read_class_names(dir, out);
    }
    gen_idx_free(&im);
    gen_idx_free(&lb);
    gen_free(ip);
    gen_free(lp);
    if (st != GEN_OK) gen_image_set_free(out);
    return st;
}

enum gen_status gen_images_check_request(const char *path, int channels, int size) {
    if (channels != 0 && channels != 1 && channels != 3)
        return gen_error(GEN_ERR_USAGE, "%s: %d channels requested; gen supports 1 or 3", path,
                         channels);
    if (size < 0 || size > GEN_IMAGE_MAX_SIDE)
        return gen_error(GEN_ERR_USAGE, "%s: image size %d is outside 1..%d", path, size,
                         GEN_IMAGE_MAX_SIDE);
    return GEN_OK;
}

enum gen_status gen_images_load(const char *path, int train, int channels, int size,
                                struct gen_image_set *out) {
    memset(out, 0, sizeof *out);
    if (train != GEN_SPLIT_TRAIN && train != GEN_SPLIT_TEST && train != GEN_SPLIT_ALL)
        return gen_error(GEN_ERR_USAGE, "%s: bad split %d", path, train);
    const enum gen_status st0 = gen_images_check_request(path, channels, size);
    if (st0 != GEN_OK) return st0;
    enum gen_fs_kind kind = gen_fs_kind(path);
    if (kind == GEN_FS_MISSING)
        return gen_error(GEN_ERR_IO, "%s: no such directory", path);
    if (kind != GEN_FS_DIR)
        return gen_error(GEN_ERR_USAGE,
                         "%s: not a directory (expected an MNIST-format directory or a folder "
                         "of images)", path);
    if (!gen_mnist_detect(path))
        return gen_imagefolder_load(path, (enum gen_split)train, channels, size, out);
    enum gen_status st = gen_mnist_load(path, (enum gen_split)train, out);
    if (st == GEN_OK) st = gen_image_set_convert(out, channels, size);
    if (st == GEN_OK) return GEN_OK;
    if (st == GEN_ERR_NOMEM) st = gen_fs_error_at(st, path);
    gen_image_set_free(out);
    return st;
}
