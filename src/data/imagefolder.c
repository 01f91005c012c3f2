/* imagefolder.c - a folder of image files as a labelled image set, decoded
 * with stb_image (the implementation comes from Debian's libstb). The
 * order, labels and train/test holdout depend only on names, so every
 * machine sees the same set (see gen_imagefolder_load in data.h). */
#include <stb_image.h>
#include <string.h>

#include "data/images.h"
#include "io/fs.h"

#define MAX_DEPTH 8
#define MAX_FILES (1L << 26)

static const char *const image_exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                         ".tga", ".pgm", ".ppm", ".pnm"};

static int is_image_name(const char *name) {
    for (size_t i = 0; i < sizeof image_exts / sizeof *image_exts; i++)
        if (gen_fs_has_ext(name, image_exts[i])) return 1;
    return 0;
}

struct file_list {
    int64_t n, cap;
    char **paths;
    int32_t *labels;
};

static void files_free(struct file_list *f) {
    for (int64_t i = 0; i < f->n; i++) gen_free(f->paths[i]);
    gen_free(f->paths);
    gen_free(f->labels);
    memset(f, 0, sizeof *f);
}

/* Takes ownership of path. */
static enum gen_status files_add(struct file_list *f, char *path, int32_t label, const char *dir) {
    if (f->n == f->cap) {
        if (f->cap >= MAX_FILES) {
            gen_free(path);
            return gen_error(GEN_ERR_FORMAT, "%s: more than %ld images", dir, MAX_FILES);
        }
        int64_t ncap = f->cap ? f->cap * 2 : 256;
        char **np = gen_alloc((size_t)ncap * sizeof *np);
        int32_t *nl = gen_alloc((size_t)ncap * sizeof *nl);
        if (!np || !nl) {
            gen_free(np);
            gen_free(nl);
            gen_free(path);
            return gen_fs_error_at(GEN_ERR_NOMEM, dir);
        }
        if (f->n) {
            memcpy(np, f->paths, (size_t)f->n * sizeof *np);
            memcpy(nl, f->labels, (size_t)f->n * sizeof *nl);
        }
        gen_free(f->paths);
        gen_free(f->labels);
        f->paths = np;
        f->labels = nl;
        f->cap = ncap;
    }
    f->paths[f->n] = path;
    f->labels[f->n] = label;
    f->n++;
    return GEN_OK;
}

/* Adds the images of dir (recursively when depth allows) with one label.
 * top: only the files directly in dir (subfolders are classes). */
static enum gen_status walk(const char *dir, int32_t label, int depth, int top,
                            struct file_list *f) {
    struct gen_fs_list l;
    enum gen_status st = gen_fs_list(dir, &l);
    for (int i = 0; st == GEN_OK && i < l.n; i++) {
        if (l.names[i][0] == '.') continue;
        char *p = gen_fs_join(dir, l.names[i]);
        if (!p) {
            st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
            break;
        }
        enum gen_fs_kind k = gen_fs_kind(p);
        if (k == GEN_FS_DIR && !top && depth < MAX_DEPTH) {
            st = walk(p, label, depth + 1, 0, f);
            gen_free(p);
        } else if (k == GEN_FS_FILE && is_image_name(l.names[i])) {
            st = files_add(f, p, label, dir);
        } else {
            gen_free(p);
        }
    }
    gen_fs_list_free(&l);
    return st;
}

struct classes {
    int n;
    char **names;
};

static void classes_free(struct classes *c) {
    for (int i = 0; i < c->n; i++) gen_free(c->names[i]);
    gen_free(c->names);
    memset(c, 0, sizeof *c);
}

static enum gen_status classes_add(struct classes *c, const char *name, const char *dir) {
    char **nn = gen_alloc((size_t)(c->n + 1) * sizeof *nn);
    char *s = gen_fs_strdup(name);
    if (!nn || !s) {
        gen_free(nn);
        gen_free(s);
        return gen_fs_error_at(GEN_ERR_NOMEM, dir);
    }
    if (c->n) memcpy(nn, c->names, (size_t)c->n * sizeof *nn);
    gen_free(c->names);
    c->names = nn;
    c->names[c->n++] = s;
    return GEN_OK;
}

/* Lists every image of the folder with its class label. */
static enum gen_status collect(const char *dir, struct file_list *f, struct classes *cls) {
    enum gen_status st = walk(dir, 0, 0, 1, f);
    if (st == GEN_OK && f->n > 0) st = classes_add(cls, ".", dir);
    struct gen_fs_list l = {0};
    if (st == GEN_OK) st = gen_fs_list(dir, &l);
    for (int i = 0; st == GEN_OK && i < l.n; i++) {
        if (l.names[i][0] == '.') continue;
        char *p = gen_fs_join(dir, l.names[i]);
        if (!p) {
            st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
            break;
        }
        if (gen_fs_kind(p) == GEN_FS_DIR) {
            int64_t before = f->n;
            st = walk(p, cls->n, 1, 0, f);
            if (st == GEN_OK && f->n > before) st = classes_add(cls, l.names[i], dir);
        }
        gen_free(p);
    }
    gen_fs_list_free(&l);
    return st;
}

/* Keeps the files of the split: position j within its class, j % 10 == 9
 * is TEST. Files of one class are contiguous in the list. */
static void select_split(struct file_list *f, enum gen_split split) {
    if (split == GEN_SPLIT_ALL) return;
    int64_t kept = 0, j = 0;
    for (int64_t i = 0; i < f->n; i++) {
        if (i > 0 && f->labels[i] != f->labels[i - 1]) j = 0;
        int test = j % 10 == 9;
        j++;
        if (test == (split == GEN_SPLIT_TEST)) {
            f->paths[kept] = f->paths[i];
            f->labels[kept] = f->labels[i];
            kept++;
        } else {
            gen_free(f->paths[i]);
        }
    }
    f->n = kept;
}

static enum gen_status decode(const char *path, int channels, int size, int *h, int *w,
                              uint8_t **dst_pixels, size_t *per, int64_t i, int64_t n) {
    int iw, ih, comp;
    if (!stbi_info(path, &iw, &ih, &comp))
        return gen_error(GEN_ERR_FORMAT, "%s: cannot decode image (%s)", path,
                         stbi_failure_reason() ? stbi_failure_reason() : "unknown format");
    if (iw <= 0 || ih <= 0 || iw > GEN_IMAGE_MAX_SIDE || ih > GEN_IMAGE_MAX_SIDE ||
        (int64_t)iw * ih > GEN_IMAGE_MAX_PIXELS)
        return gen_error(GEN_ERR_FORMAT, "%s: image of %dx%d is larger than the limit", path, iw,
                         ih);
    if (i == 0) {
        /* The first image fixes the size when size == 0. */
        *h = size ? size : ih;
        *w = size ? size : iw;
        size_t total;
        if (!gen_mul_size((size_t)channels * (size_t)*h, (size_t)*w, per) ||
            !gen_mul_size(*per, (size_t)n, &total))
            return gen_error(GEN_ERR_NOMEM, "%s: %lld images are too large", path, (long long)n);
        *dst_pixels = gen_alloc(total);
        if (!*dst_pixels) return gen_fs_error_at(GEN_ERR_NOMEM, path);
    } else if (!size && (ih != *h || iw != *w)) {
        return gen_error(GEN_ERR_FORMAT,
                         "%s: image is %dx%d but earlier ones are %dx%d; choose an image size "
                         "to resize them all", path, iw, ih, *w, *h);
    }
    uint8_t *px = stbi_load(path, &iw, &ih, &comp, 0);
    if (!px)
        return gen_error(GEN_ERR_FORMAT, "%s: cannot decode image (%s)", path,
                         stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
    enum gen_status st = comp >= 1 && comp <= 4
                             ? gen_image_fit(px, comp, ih, iw, 1, channels, size,
                                             *dst_pixels + (size_t)i * *per)
                             : gen_error(GEN_ERR_FORMAT, "%s: %d channels", path, comp);
    stbi_image_free(px);
    if (st == GEN_ERR_NOMEM) st = gen_fs_error_at(st, path);
    return st;
}

enum gen_status gen_imagefolder_load(const char *dir, enum gen_split split, int channels, int size,
                                     struct gen_image_set *out) {
    memset(out, 0, sizeof *out);
    if (channels == 0) channels = 3;
    if (channels != 1 && channels != 3)
        return gen_error(GEN_ERR_USAGE, "%s: %d channels requested; gen supports 1 or 3", dir,
                         channels);
    if (size < 0 || size > GEN_IMAGE_MAX_SIDE)
        return gen_error(GEN_ERR_USAGE, "%s: image size %d is outside 1..%d", dir, size,
                         GEN_IMAGE_MAX_SIDE);
    if (gen_fs_kind(dir) != GEN_FS_DIR)
        return gen_error(GEN_ERR_IO, "%s: no such directory", dir);
    struct file_list f = {0};
    struct classes cls = {0};
    enum gen_status st = collect(dir, &f, &cls);
    if (st == GEN_OK && f.n == 0)
        st = gen_error(GEN_ERR_FORMAT,
                       "%s: no images found (looked for .png .jpg .jpeg .bmp .gif .tga .pgm "
                       ".ppm .pnm files in it and its subfolders)", dir);
    if (st == GEN_OK) {
        select_split(&f, split);
        if (f.n == 0)
            st = gen_error(GEN_ERR_FORMAT,
                           "%s: the %s split is empty (the test split is every 10th image of "
                           "each class; no class has 10 images)", dir,
                           split == GEN_SPLIT_TEST ? "test" : "train");
    }
    size_t per = 0;
    for (int64_t i = 0; st == GEN_OK && i < f.n; i++)
        st = decode(f.paths[i], channels, size, &out->h, &out->w, &out->pixels, &per, i, f.n);
    if (st == GEN_OK) {
        out->n = f.n;
        out->c = channels;
        out->labels = f.labels;
        f.labels = NULL;
        out->n_classes = cls.n;
        out->class_names = cls.names;
        cls.names = NULL;
        cls.n = 0;
    }
    files_free(&f);
    classes_free(&cls);
    if (st != GEN_OK) gen_image_set_free(out);
    return st;
}
