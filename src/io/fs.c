/* fs.c - filesystem helpers for the loaders and writers (see fs.h). */
#include "io/fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "gen/io.h"

enum gen_status gen_fs_error_at(enum gen_status status, const char *path) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", gen_last_error());
    return gen_error(status, "%s: %s", path, msg);
}

enum gen_fs_kind gen_fs_kind(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return GEN_FS_MISSING;
    return S_ISDIR(st.st_mode) ? GEN_FS_DIR : GEN_FS_FILE;
}

char *gen_fs_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = gen_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

char *gen_fs_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    char *d = gen_alloc(la + lb + 2);
    if (!d) return NULL;
    memcpy(d, a, la);
    d[la] = '/';
    memcpy(d + la + 1, b, lb + 1);
    return d;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void gen_fs_list_free(struct gen_fs_list *l) {
    if (!l->names) return;
    for (int i = 0; i < l->n; i++) gen_free(l->names[i]);
    gen_free(l->names);
    l->names = NULL;
    l->n = 0;
}

enum gen_status gen_fs_list(const char *dir, struct gen_fs_list *out) {
    out->n = 0;
    out->names = NULL;
    DIR *d = opendir(dir);
    if (!d) return gen_error(GEN_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int cap = 0;
    enum gen_status st = GEN_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (out->n == cap) {
            if (cap >= (1 << 24)) {
                st = gen_error(GEN_ERR_FORMAT, "%s: more than %d directory entries", dir, 1 << 24);
                break;
            }
            int ncap = cap ? cap * 2 : 64;
            char **nn = gen_alloc((size_t)ncap * sizeof *nn);
            if (!nn) {
                st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
                break;
            }
            if (out->n) memcpy(nn, out->names, (size_t)out->n * sizeof *nn);
            gen_free(out->names);
            out->names = nn;
            cap = ncap;
        }
        char *name = gen_fs_strdup(e->d_name);
        if (!name) {
            st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
            break;
        }
        out->names[out->n++] = name;
    }
    closedir(d);
    if (st != GEN_OK) {
        gen_fs_list_free(out);
        return st;
    }
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_str);
    return GEN_OK;
}

enum gen_status gen_fs_read(const char *path, int64_t max, uint8_t **data, int64_t *n) {
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gen_error(GEN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return gen_error(GEN_ERR_IO, "%s: not a regular file", path);
    }
    if ((int64_t)st.st_size > max) {
        fclose(f);
        return gen_error(GEN_ERR_FORMAT, "%s: %lld bytes is more than the limit of %lld", path,
                         (long long)st.st_size, (long long)max);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = gen_alloc(size + 1);
    if (!buf) {
        fclose(f);
        return gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    size_t got = fread(buf, 1, size, f);
    int err = ferror(f);
    /* The file may have grown since fstat; what we read is what we use. */
    fclose(f);
    if (err || got != size) {
        gen_free(buf);
        return gen_error(GEN_ERR_IO, "%s: read error (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = 0;
    *data = buf;
    *n = (int64_t)size;
    return GEN_OK;
}

int gen_fs_has_ext(const char *name, const char *ext) {
    size_t ln = strlen(name), le = strlen(ext);
    return ln > le && strcasecmp(name + ln - le, ext) == 0;
}

enum gen_status gen_mkdir_p(const char *dir) {
    char buf[4096];
    size_t len = strlen(dir);
    if (len == 0) return gen_error(GEN_ERR_USAGE, "empty directory name");
    if (len >= sizeof buf) return gen_error(GEN_ERR_IO, "%.64s...: path too long", dir);
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char saved = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            return gen_error(GEN_ERR_IO, "%s: cannot create directory: %s", buf, strerror(e));
        }
        buf[i] = saved;
    }
    if (gen_fs_kind(dir) != GEN_FS_DIR)
        return gen_error(GEN_ERR_IO, "%s: exists and is not a directory", dir);
    return GEN_OK;
}
