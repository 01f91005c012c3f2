/* text.c - a text file, or the .txt files of a folder and its subfolders,
 * as one byte string. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gen/data.h"
#include "io/fs.h"

void gen_text_free(struct gen_text *t) {
    gen_free(t->bytes);
    gen_free(t->bad_path);
    memset(t, 0, sizeof *t);
    t->bad_offset = -1;
}

/* The .txt files found so far: their paths and the bytes they hold. */
struct found {
    const char *root;
    char **paths; /* (n) gen_alloc'd */
    int64_t n, cap, bytes;
    dev_t dev[GEN_TEXT_MAX_DEPTH + 1]; /* the folders being searched: */
    ino_t ino[GEN_TEXT_MAX_DEPTH + 1]; /* the root and its descendants */
};

static enum gen_status add_file(struct found *f, char *path, int64_t size) {
    if (f->n == GEN_TEXT_MAX_FILES) {
        gen_free(path);
        return gen_error(GEN_ERR_FORMAT, "%s: more than %d .txt files", f->root,
                         GEN_TEXT_MAX_FILES);
    }
    if (size > GEN_TEXT_MAX_BYTES - f->bytes) {
        gen_error(GEN_ERR_FORMAT, "%s: the .txt files hold more than the limit of %lld bytes", path,
                  (long long)GEN_TEXT_MAX_BYTES);
        gen_free(path);
        return GEN_ERR_FORMAT;
    }
    if (f->n == f->cap) {
        const int64_t ncap = f->cap ? 2 * f->cap : 64;
        char **np = gen_alloc((size_t)ncap * sizeof *np);
        if (!np) {
            gen_free(path);
            return gen_error(GEN_ERR_NOMEM, "out of memory for the list of .txt files");
        }
        if (f->n) memcpy(np, f->paths, (size_t)f->n * sizeof *np);
        gen_free(f->paths);
        f->paths = np, f->cap = ncap;
    }
    f->paths[f->n++] = path;
    f->bytes += size;
    return GEN_OK;
}

/* What search passes to each entry of a folder. */
struct search_at {
    struct found *f;
    int depth;
};

static enum gen_status search(struct found *f, const char *dir, int depth);

/* One entry: a folder searched (unless it is one of its own ancestors, or
 * too deep), or a .txt file (a symlink to one too) added. */
static enum gen_status search_entry(void *arg, char **path, const char *name) {
    const struct search_at *a = arg;
    struct found *f = a->f;
    struct stat sb;
    int ok = lstat(*path, &sb) == 0, seen = 0;
    if (ok && S_ISDIR(sb.st_mode)) {
        for (int k = 0; k <= a->depth; k++)
            seen |= f->dev[k] == sb.st_dev && f->ino[k] == sb.st_ino;
        if (seen || a->depth >= GEN_TEXT_MAX_DEPTH) return GEN_OK;
        f->dev[a->depth + 1] = sb.st_dev, f->ino[a->depth + 1] = sb.st_ino;
        return search(f, *path, a->depth + 1);
    }
    if (ok && S_ISLNK(sb.st_mode)) ok = stat(*path, &sb) == 0 && !S_ISDIR(sb.st_mode);
    if (!ok || !gen_fs_has_ext(name, ".txt")) return GEN_OK;
    char *p = *path;
    *path = NULL;
    return add_file(f, p, S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : 0);
}

/* Adds the .txt files under dir (at `depth` below the root). Entries are
 * looked at with lstat: a symlink counts only when it names a file. */
static enum gen_status search(struct found *f, const char *dir, int depth) {
    struct search_at a = {f, depth};
    return gen_fs_each(dir, search_entry, &a);
}

static int by_path(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads path (a regular file that must still fit in `room` bytes) to buf;
 * *n gets its length. */
static enum gen_status read_into(const char *path, uint8_t *buf, int64_t room, int64_t *n) {
    int64_t size;
    *n = 0;
    const int fd = gen_fs_open(path, &size);
    if (fd < 0) return GEN_ERR_IO;
    enum gen_status st = GEN_OK;
    if (size > room)
        st = gen_error(GEN_ERR_IO, "%s: grew while the folder was read", path);
    for (int64_t done = 0; st == GEN_OK && done < size;) {
        const ssize_t k = read(fd, buf + done, (size_t)(size - done < (1 << 30) ? size - done : 1 << 30));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) st = gen_error(GEN_ERR_IO, "%s: read failed after %lld of %lld bytes", path,
                                   (long long)done, (long long)size);
        else done += k;
    }
    close(fd);
    *n = size;
    return st;
}

/* Notes the first file of t that is not valid UTF-8. */
static enum gen_status check_utf8(struct gen_text *t, const char *path, const uint8_t *s,
                                  int64_t n) {
    if (t->bad_path) return GEN_OK;
    const int64_t bad = gen_utf8_check(s, n);
    if (bad < 0) return GEN_OK;
    if (!(t->bad_path = gen_fs_strdup(path))) return gen_fs_error_at(GEN_ERR_NOMEM, path);
    t->bad_offset = bad;
    return GEN_OK;
}

static enum gen_status load_folder(const char *dir, struct gen_text *out) {
    struct found f = {.root = dir};
    struct stat sb;
    if (stat(dir, &sb) == 0) f.dev[0] = sb.st_dev, f.ino[0] = sb.st_ino;
    enum gen_status st = search(&f, dir, 0);
    if (st == GEN_OK && f.n == 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: no .txt files in the folder or its subfolders", dir);
    if (st == GEN_OK) qsort(f.paths, (size_t)f.n, sizeof *f.paths, by_path);
    uint8_t *buf = st == GEN_OK ? gen_alloc((size_t)f.bytes + 1) : NULL;
    if (st == GEN_OK && !buf) st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
    int64_t total = 0;
    for (int64_t i = 0; st == GEN_OK && i < f.n; i++) {
        int64_t n;
        st = read_into(f.paths[i], buf + total, f.bytes - total, &n);
        if (st == GEN_OK) st = check_utf8(out, f.paths[i], buf + total, n);
        total += n;
    }
    for (int64_t i = 0; i < f.n; i++) gen_free(f.paths[i]);
    gen_free(f.paths);
    if (st == GEN_OK && total == 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: the .txt files in the folder are all empty", dir);
    if (st != GEN_OK) {
        gen_free(buf);
        gen_text_free(out);
        return st;
    }
    buf[total] = 0;
    out->bytes = buf;
    out->n = total;
    out->files = f.n;
    return GEN_OK;
}

enum gen_status gen_text_load(const char *path, struct gen_text *out) {
    memset(out, 0, sizeof *out);
    out->bad_offset = -1;
    enum gen_fs_kind k = gen_fs_kind(path);
    if (k == GEN_FS_MISSING) return gen_error(GEN_ERR_IO, "%s: no such file or directory", path);
    if (k == GEN_FS_DIR) return load_folder(path, out);
    enum gen_status st = gen_fs_read(path, GEN_TEXT_MAX_BYTES, &out->bytes, &out->n);
    if (st == GEN_OK && out->n == 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: empty file; the text data needs at least one byte",
                       path);
    if (st == GEN_OK) st = check_utf8(out, path, out->bytes, out->n);
    if (st != GEN_OK) {
        gen_text_free(out);
        return st;
    }
    out->files = 1;
    return GEN_OK;
}
