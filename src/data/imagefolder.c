/* imagefolder.c - a folder of image files as a labelled image set, decoded
 * with stb_image (the implementation comes from Debian's libstb). The
 * order, labels and train/test holdout depend only on names, so every
 * machine sees the same set (see gen_imagefolder_load in data.h). */
#include <limits.h>
#include <stb_image.h>
#include <string.h>
#include <sys/stat.h>

#include "data/images.h"
#include "io/fs.h"

#define MAX_DEPTH 8
#define MAX_FILES (1L << 26)
#define MAX_FILE_BYTES (1LL << 30) /* one image file */
/* The most pixels one byte of an image file can stand for: a 1-bit PNG
 * under deflate's best ratio (1032:1) holds about 8256, a GIF's 12-bit
 * LZW codes about 2730, everything else stb reads far fewer. A header
 * claiming more than this times the file size is lying, and stb would
 * allocate the claim before finding out. */
#define MAX_PIXELS_PER_BYTE 16384

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

/* Directories already walked, by (device, inode), sorted: a symlink back
 * up the tree (ln -s . loop) or two links to one folder are walked once. */
struct dir_id {
    dev_t dev;
    ino_t ino;
};
struct seen_dirs {
    int64_t n, cap;
    struct dir_id *ids;
};

static int cmp_dir_id(const struct dir_id *a, const struct dir_id *b) {
    if (a->dev != b->dev) return a->dev < b->dev ? -1 : 1;
    if (a->ino != b->ino) return a->ino < b->ino ? -1 : 1;
    return 0;
}

/* Records dir; *first is 0 if it had been recorded before. */
static enum gen_status seen_add(struct seen_dirs *s, const char *dir, int *first) {
    *first = 0;
    struct stat sb;
    if (stat(dir, &sb) != 0) return GEN_OK; /* vanished: nothing to walk */
    struct dir_id id = {sb.st_dev, sb.st_ino};
    int64_t lo = 0, hi = s->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = cmp_dir_id(&s->ids[mid], &id);
        if (c == 0) return GEN_OK;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    if (s->n == s->cap) {
        int64_t ncap = s->cap ? s->cap * 2 : 64;
        struct dir_id *nv = gen_alloc((size_t)ncap * sizeof *nv);
        if (!nv) return gen_fs_error_at(GEN_ERR_NOMEM, dir);
        if (s->n) memcpy(nv, s->ids, (size_t)s->n * sizeof *nv);
        gen_free(s->ids);
        s->ids = nv;
        s->cap = ncap;
    }
    memmove(s->ids + lo + 1, s->ids + lo, (size_t)(s->n - lo) * sizeof *s->ids);
    s->ids[lo] = id;
    s->n++;
    *first = 1;
    return GEN_OK;
}

/* What walk passes to each entry of a folder. */
struct walk_at {
    const char *dir;
    int32_t label;
    int depth, top;
    struct seen_dirs *seen;
    struct file_list *f;
};

static enum gen_status walk(const char *dir, int32_t label, int depth, int top,
                            struct seen_dirs *seen, struct file_list *f);

/* One entry: a folder walked (below the top, within MAX_DEPTH), or an
 * image file added. */
static enum gen_status walk_entry(void *arg, char **path, const char *name) {
    const struct walk_at *w = arg;
    const enum gen_fs_kind k = gen_fs_kind(*path);
    if (k == GEN_FS_DIR && !w->top && w->depth < MAX_DEPTH)
        return walk(*path, w->label, w->depth + 1, 0, w->seen, w->f);
    if (k != GEN_FS_FILE || !is_image_name(name)) return GEN_OK;
    char *p = *path;
    *path = NULL;
    return files_add(w->f, p, w->label, w->dir);
}

/* Adds the images of dir (recursively when depth allows) with one label,
 * unless dir was walked before. top: only the files directly in dir
 * (subfolders are classes). */
static enum gen_status walk(const char *dir, int32_t label, int depth, int top,
                            struct seen_dirs *seen, struct file_list *f) {
    int first;
    enum gen_status st = seen_add(seen, dir, &first);
    if (st != GEN_OK || !first) return st;
    struct walk_at w = {dir, label, depth, top, seen, f};
    return gen_fs_each(dir, walk_entry, &w);
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

/* What collect passes to each entry of the top folder. */
struct collect_at {
    const char *dir;
    struct seen_dirs *seen;
    struct file_list *f;
    struct classes *cls;
};

/* A subfolder of the top folder: a class, if it holds images. */
static enum gen_status class_entry(void *arg, char **path, const char *name) {
    const struct collect_at *c = arg;
    if (gen_fs_kind(*path) != GEN_FS_DIR) return GEN_OK;
    const int64_t before = c->f->n;
    enum gen_status st = walk(*path, c->cls->n, 1, 0, c->seen, c->f);
    if (st == GEN_OK && c->f->n > before) st = classes_add(c->cls, name, c->dir);
    return st;
}

/* Lists every image of the folder with its class label. */
static enum gen_status collect(const char *dir, struct file_list *f, struct classes *cls) {
    struct seen_dirs seen = {0};
    enum gen_status st = walk(dir, 0, 0, 1, &seen, f);
    if (st == GEN_OK && f->n > 0) st = classes_add(cls, ".", dir);
    struct collect_at c = {dir, &seen, f, cls};
    if (st == GEN_OK) st = gen_fs_each(dir, class_entry, &c);
    gen_free(seen.ids);
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

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Width and height from the header, before a pixel is decoded. stb's
 * answer, with a top-down BMP's negative height made positive; for a PNG
 * stb's info refuses as too large to decode (it then reports "unknown
 * image type"), the IHDR fields, so the caller can say what the size is. */
static int peek_size(const uint8_t *b, int64_t n, int *w, int *h) {
    int comp;
    if (stbi_info_from_memory(b, (int)n, w, h, &comp)) {
        if (*h < 0 && *h != INT_MIN) *h = -*h;
        return 1;
    }
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 24 || memcmp(b, png_sig, 8) != 0 || memcmp(b + 12, "IHDR", 4) != 0) return 0;
    uint32_t pw = be32(b + 16), ph = be32(b + 20);
    *w = pw > INT_MAX ? INT_MAX : (int)pw;
    *h = ph > INT_MAX ? INT_MAX : (int)ph;
    return 1;
}

/* stb's reason for the last failure, printable: some reasons carry bytes
 * of the file (an unknown PNG chunk's four-letter type), which could break
 * the one-line message with a newline or a terminal escape. */
static const char *stb_reason(const char *fallback) {
    static char buf[128];
    const char *r = stbi_failure_reason();
    size_t i = 0;
    for (; r && r[i] && i < sizeof buf - 1; i++)
        buf[i] = r[i] >= 0x20 && r[i] < 0x7f ? r[i] : '?';
    buf[i] = 0;
    return i ? buf : fallback;
}

/* A PNG's chunks must each fit in the file: stb grows its IDAT buffer to
 * the length a chunk claims before reading it (a 72-byte file asked for
 * 1.6 GB). Walks length + type + data + CRC up to IEND; not a PNG: fine. */
static enum gen_status check_png_chunks(const char *path, const uint8_t *b, int64_t n) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(b, png_sig, 8) != 0) return GEN_OK;
    for (int64_t at = 8; at + 8 <= n;) {
        const int64_t len = be32(b + at), left = n - at - 12;
        if (len > left)
            return gen_error(GEN_ERR_FORMAT,
                             "%s: truncated or corrupt PNG (a chunk at byte %lld claims %lld "
                             "bytes, %lld are left)",
                             path, (long long)at, (long long)len, (long long)(left < 0 ? 0 : left));
        if (!memcmp(b + at + 4, "IEND", 4)) break;
        at += 12 + len;
    }
    return GEN_OK;
}

/* Checks the size an image file claims against the limits and against
 * what a file of n bytes can hold, before anything is allocated for it. */
static enum gen_status check_size(const char *path, const uint8_t *b, int64_t n, int *w, int *h) {
    if (!peek_size(b, n, w, h))
        return gen_error(GEN_ERR_FORMAT, "%s: cannot decode image (%s)", path,
                         stb_reason("unknown format"));
    if (*w <= 0 || *h <= 0)
        return gen_error(GEN_ERR_FORMAT, "%s: image of %dx%d has no pixels", path, *w, *h);
    int64_t pixels = (int64_t)*w * *h;
    if (*w > GEN_IMAGE_MAX_SIDE || *h > GEN_IMAGE_MAX_SIDE || pixels > GEN_IMAGE_MAX_PIXELS)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: image of %dx%d is larger than the limit (%d per side, %ld pixels)",
                         path, *w, *h, GEN_IMAGE_MAX_SIDE, (long)GEN_IMAGE_MAX_PIXELS);
    if (pixels / MAX_PIXELS_PER_BYTE > n)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: header says %dx%d but a %lld-byte file cannot hold that many "
                         "pixels (at most %lld); truncated or corrupt",
                         path, *w, *h, (long long)n, (long long)n * MAX_PIXELS_PER_BYTE);
    return check_png_chunks(path, b, n);
}

/* Decodes image i of n into dst_pixels (allocated at i == 0, when the
 * first image fixes the size if size == 0). The file is read once, through
 * gen_fs_read, so a FIFO or device is refused before any read. */
static enum gen_status decode(const char *path, int channels, int size, int *h, int *w,
                              uint8_t **dst_pixels, size_t *per, int64_t i, int64_t n) {
    uint8_t *file;
    int64_t bytes;
    enum gen_status st = gen_fs_read(path, MAX_FILE_BYTES, &file, &bytes);
    if (st != GEN_OK) return st;
    int iw, ih;
    st = check_size(path, file, bytes, &iw, &ih);
    if (st == GEN_OK && i == 0) {
        *h = size ? size : ih;
        *w = size ? size : iw;
        size_t total;
        if (!gen_mul_size((size_t)channels * (size_t)*h, (size_t)*w, per) ||
            !gen_mul_size(*per, (size_t)n, &total))
            st = gen_error(GEN_ERR_NOMEM, "%s: %lld images are too large", path, (long long)n);
        else if (!(*dst_pixels = gen_alloc(total)))
            st = gen_fs_error_at(GEN_ERR_NOMEM, path);
    } else if (st == GEN_OK && !size && (ih != *h || iw != *w)) {
        st = gen_error(GEN_ERR_FORMAT,
                       "%s: image is %dx%d but earlier ones are %dx%d; give --image-size N to "
                       "crop and resize them all",
                       path, iw, ih, *w, *h);
    }
    uint8_t *px = NULL;
    int dw = 0, dh = 0, comp = 0;
    if (st == GEN_OK && !(px = stbi_load_from_memory(file, (int)bytes, &dw, &dh, &comp, 0)))
        st = gen_error(GEN_ERR_FORMAT, "%s: cannot decode image (%s)", path,
                       stb_reason("unknown error"));
    gen_free(file);
    if (st == GEN_OK && (dw != iw || dh != ih))
        st = gen_error(GEN_ERR_FORMAT, "%s: header says %dx%d but the image decodes as %dx%d",
                       path, iw, ih, dw, dh);
    if (st == GEN_OK && (comp < 1 || comp > 4))
        st = gen_error(GEN_ERR_FORMAT, "%s: %d channels", path, comp);
    if (st == GEN_OK) {
        st = gen_image_fit(px, comp, ih, iw, 1, channels, size, *dst_pixels + (size_t)i * *per);
        if (st == GEN_ERR_NOMEM) st = gen_fs_error_at(st, path);
    }
    if (px) stbi_image_free(px);
    return st;
}

/* The channels the image at path has, as gen keeps them: 1 for grey (with
 * or without alpha), else 3; 3 when the header cannot tell (decoding it
 * then names the problem). */
static int file_channels(const char *path) {
    uint8_t *file;
    int64_t bytes;
    int w, h, comp = 3;
    if (gen_fs_read(path, MAX_FILE_BYTES, &file, &bytes) != GEN_OK) {
        gen_clear_error();
        return 3;
    }
    if (!stbi_info_from_memory(file, (int)bytes, &w, &h, &comp)) comp = 3;
    gen_free(file);
    return comp <= 2 ? 1 : 3;
}

enum gen_status gen_imagefolder_load(const char *dir, enum gen_split split, int channels, int size,
                                     struct gen_image_set *out) {
    memset(out, 0, sizeof *out);
    enum gen_status st0 = gen_images_check_request(dir, channels, size);
    if (st0 != GEN_OK) return st0;
    if (gen_fs_kind(dir) != GEN_FS_DIR)
        return gen_error(GEN_ERR_IO, "%s: no such directory", dir);
    struct file_list f = {0};
    struct classes cls = {0};
    enum gen_status st = collect(dir, &f, &cls);
    if (st == GEN_OK && f.n == 0)
        st = gen_error(GEN_ERR_FORMAT,
                       "%s: no images found (looked for .png .jpg .jpeg .bmp .gif .tga .pgm "
                       ".ppm .pnm files in it and its subfolders)", dir);
    if (st == GEN_OK && channels == 0) channels = file_channels(f.paths[0]); /* both splits agree */
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

enum gen_status gen_image_file_load(const char *path, int channels, int size,
                                    struct gen_image_set *out) {
    memset(out, 0, sizeof *out);
    enum gen_status st0 = gen_images_check_request(path, channels, size);
    if (st0 != GEN_OK) return st0;
    if (channels == 0) channels = file_channels(path);
    size_t per = 0;
    enum gen_status st = decode(path, channels, size, &out->h, &out->w, &out->pixels, &per, 0, 1);
    if (st == GEN_OK && !(out->labels = gen_calloc(1, sizeof *out->labels)))
        st = gen_fs_error_at(GEN_ERR_NOMEM, path);
    if (st != GEN_OK) {
        gen_image_set_free(out);
        return st;
    }
    out->n = 1;
    out->c = channels;
    out->n_classes = 1;
    return GEN_OK;
}
