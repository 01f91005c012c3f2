/* fs.c - filesystem helpers for the loaders and writers (see fs.h). */
#include "io/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

enum gen_status gen_fs_each(const char *dir, gen_fs_entry_fn fn, void *arg) {
    struct gen_fs_list l;
    enum gen_status st = gen_fs_list(dir, &l);
    for (int i = 0; st == GEN_OK && i < l.n; i++) {
        if (l.names[i][0] == '.') continue;
        char *path = gen_fs_join(dir, l.names[i]);
        if (!path) {
            st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
            break;
        }
        st = fn(arg, &path, l.names[i]);
        gen_free(path);
    }
    gen_fs_list_free(&l);
    return st;
}

int gen_fs_open(const char *path, int64_t *size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        gen_error(GEN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        gen_error(GEN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        gen_error(GEN_ERR_IO, "%s: not a regular file", path);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        gen_error(GEN_ERR_IO, "%s: cannot open: %s", path, strerror(e));
        return -1;
    }
    if (size) *size = (int64_t)st.st_size;
    return fd;
}

enum gen_status gen_fs_read(const char *path, int64_t max, uint8_t **data, int64_t *n) {
    *data = NULL;
    *n = 0;
    int64_t size;
    int fd = gen_fs_open(path, &size);
    if (fd < 0) return GEN_ERR_IO;
    if (size > max) {
        close(fd);
        return gen_error(GEN_ERR_FORMAT, "%s: %lld bytes is more than the limit of %lld", path,
                         (long long)size, (long long)max);
    }
    uint8_t *buf = gen_alloc((size_t)size + 1);
    if (!buf) {
        close(fd);
        return gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    /* The file may have grown since fstat; what we read is what we use. */
    int64_t got = 0;
    int err = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, (size_t)(size - got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        got += r;
    }
    close(fd);
    if (got != size) {
        gen_free(buf);
        return gen_error(GEN_ERR_IO, "%s: read error (%lld of %lld bytes)%s%s", path,
                         (long long)got, (long long)size, err ? ": " : "",
                         err ? strerror(err) : "");
    }
    buf[size] = 0;
    *data = buf;
    *n = size;
    return GEN_OK;
}

/* The temporary file being written, and whether tmp_open names one: set
 * with release order after the name is in place, read with acquire order
 * by a handler that may run on any thread (a lock-free atomic is
 * async-signal-safe). */
static char tmp_open[GEN_FS_TMP_MAX];
static atomic_int tmp_is_open;

static void tmp_begin(const char *tmp) {
    atomic_store_explicit(&tmp_is_open, 0, memory_order_release);
    const size_t n = strlen(tmp);
    if (n >= sizeof tmp_open) return; /* too long to name: left to gen_clean_stale_tmp */
    memcpy(tmp_open, tmp, n + 1);
    atomic_store_explicit(&tmp_is_open, 1, memory_order_release);
}

static void tmp_end(void) {
    atomic_store_explicit(&tmp_is_open, 0, memory_order_release);
}

void gen_fs_tmp_remove(void) {
    if (atomic_load_explicit(&tmp_is_open, memory_order_acquire)) unlink(tmp_open);
}

FILE *gen_fs_tmp_create(const char *path, char tmp[GEN_FS_TMP_MAX]) {
    if (snprintf(tmp, GEN_FS_TMP_MAX, "%s.tmp.%ld", path, (long)getpid()) >= GEN_FS_TMP_MAX) {
        gen_error(GEN_ERR_IO, "%.64s...: path too long", path);
        return NULL;
    }
    tmp_begin(tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        const int e = errno;
        tmp_end();
        gen_error(GEN_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(e));
    }
    return f;
}

int gen_fs_tmp_finish(FILE *f, const char *tmp, const char *path, int err) {
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) remove(tmp);
    tmp_end();
    return err;
}

enum gen_status gen_fs_fclose_written(FILE *f, const char *path) {
    errno = 0;
    const int err = fflush(f) != 0 || ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) == 0 && !err) return GEN_OK;
    return gen_error(GEN_ERR_IO, "%s: write failed: %s", path, strerror(err ? err : errno));
}

enum gen_status gen_fs_write_atomic(const char *path, const void *data, size_t n) {
    char tmp[GEN_FS_TMP_MAX];
    FILE *f = gen_fs_tmp_create(path, tmp);
    if (!f) return GEN_ERR_IO;
    const int wrote = fwrite(data, 1, n, f) == n ? 0 : errno ? errno : EIO;
    const int err = gen_fs_tmp_finish(f, tmp, path, wrote);
    if (!err) return GEN_OK;
    return gen_error(GEN_ERR_IO, "%s: cannot write: %s", path, strerror(err));
}

int gen_fs_has_ext(const char *name, const char *ext) {
    size_t ln = strlen(name), le = strlen(ext);
    return ln > le && strcasecmp(name + ln - le, ext) == 0;
}

enum gen_status gen_mkdir_p(const char *dir) {
    size_t kept;
    return gen_mkdir_p_made(dir, &kept);
}

enum gen_status gen_mkdir_p_made(const char *dir, size_t *kept) {
    char buf[4096];
    size_t len = strlen(dir), last = 0; /* last: where the component being made starts */
    *kept = len;
    if (len == 0) return gen_error(GEN_ERR_USAGE, "empty directory name");
    if (len >= sizeof buf) return gen_error(GEN_ERR_IO, "%.64s...: path too long", dir);
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char saved = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) == 0) {
            if (*kept == len) *kept = last ? last - 1 : 0; /* the first one made */
        } else if (errno != EEXIST) {
            int e = errno;
            return gen_error(GEN_ERR_IO, "%s: cannot create directory: %s", buf, strerror(e));
        }
        buf[i] = saved;
        last = i + 1;
    }
    if (gen_fs_kind(dir) != GEN_FS_DIR)
        return gen_error(GEN_ERR_IO, "%s: exists and is not a directory", dir);
    return GEN_OK;
}

void gen_rmdir_made(const char *dir, size_t kept) {
    char p[4096];
    size_t n = strlen(dir);
    if (n >= sizeof p) return;
    memcpy(p, dir, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0'; /* "a/b/": the folder is a/b */
    for (char *slash; n > kept && rmdir(p) == 0 && (slash = strrchr(p, '/'));) {
        *slash = '\0';
        n = strlen(p);
    }
}

/* The last ".tmp." of name, or NULL. */
static const char *tmp_mark(const char *name) {
    const char *t = strstr(name, ".tmp.");
    while (t && strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
    return t;
}

/* The PID of "NAME.tmp.PID" (digits only after ".tmp."), or 0. */
static long tmp_pid(const char *name) {
    const char *t = tmp_mark(name);
    if (!t) return 0;
    const char *d = t + 5;
    size_t len = strlen(d);
    if (t == name || len == 0 || len > 9 || strspn(d, "0123456789") != len) return 0;
    return strtol(d, NULL, 10);
}

/* Whether "NAME.tmp.PID" has a NAME that ends with ext. */
static int tmp_of_kind(const char *name, const char *ext) {
    const char *t = tmp_mark(name);
    const size_t base = t ? (size_t)(t - name) : 0, el = strlen(ext);
    return t && base >= el && memcmp(name + base - el, ext, el) == 0;
}

enum gen_status gen_clean_stale_tmp_of(const char *dir, const char *ext, double min_age_s) {
    struct gen_fs_list l;
    enum gen_status st = gen_fs_list(dir, &l);
    const time_t now = time(NULL);
    for (int i = 0; st == GEN_OK && i < l.n; i++) {
        long pid = tmp_pid(l.names[i]);
        if (pid <= 0 || (ext && !tmp_of_kind(l.names[i], ext))) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char *p = gen_fs_join(dir, l.names[i]);
        if (!p) {
            st = gen_fs_error_at(GEN_ERR_NOMEM, dir);
            break;
        }
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) &&
            difftime(now, sb.st_mtime) >= min_age_s && unlink(p) != 0 && errno != ENOENT)
            st = gen_error(GEN_ERR_IO, "%s: cannot remove a stale temporary file: %s", p,
                           strerror(errno));
        gen_free(p);
    }
    gen_fs_list_free(&l);
    return st;
}

enum gen_status gen_clean_stale_tmp(const char *dir) {
    return gen_clean_stale_tmp_of(dir, NULL, 0.0);
}

FILE *gen_fs_fopen_read(const char *path) {
    int fd = gen_fs_open(path, NULL);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        gen_error(GEN_ERR_NOMEM, "%s: cannot open a stream", path);
    }
    return f;
}
