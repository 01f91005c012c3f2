/* fs.h - small filesystem helpers shared by the loaders and writers of
 * src/data and src/io: sorted directory listings, path joining, whole-file
 * reads with a size cap, mkdir -p, and error messages that name the file. */
#ifndef GEN_IO_FS_H
#define GEN_IO_FS_H

#include <stdio.h>

#include "gen/core.h"

/* Re-issues the current error (e.g. gen_alloc's "out of memory ...") as
 * "PATH: <message>" with the given status; returns the status. */
enum gen_status gen_fs_error_at(enum gen_status status, const char *path);

/* Kind of a path: GEN_FS_MISSING, GEN_FS_FILE (or anything not a
 * directory), GEN_FS_DIR. Follows symlinks. */
enum gen_fs_kind { GEN_FS_MISSING, GEN_FS_FILE, GEN_FS_DIR };
enum gen_fs_kind gen_fs_kind(const char *path);

/* Entries of a directory except "." and "..", sorted by strcmp. Names and
 * the array are gen_alloc'd; free with gen_fs_list_free. */
struct gen_fs_list {
    int n;
    char **names;
};
enum gen_status gen_fs_list(const char *dir, struct gen_fs_list *out);
void gen_fs_list_free(struct gen_fs_list *l);

/* Calls fn(arg, &path, name) for each entry of dir whose name does not
 * start with '.', in gen_fs_list's order, path being dir/name: fn may
 * keep it by setting path to NULL, else it is freed after the call. Stops
 * at the first status that is not GEN_OK (the listing's, out of memory,
 * or fn's) and returns it. */
typedef enum gen_status (*gen_fs_entry_fn)(void *arg, char **path, const char *name);
enum gen_status gen_fs_each(const char *dir, gen_fs_entry_fn fn, void *arg);

/* "a/b" (one '/' between them), gen_alloc'd; NULL on out of memory. */
char *gen_fs_join(const char *a, const char *b);
/* A gen_alloc'd copy of s; NULL on out of memory. */
char *gen_fs_strdup(const char *s);

/* Opens path for reading, refusing anything that is not a regular file
 * (a FIFO, a device, a socket, a directory) with "PATH: not a regular
 * file" before a single byte is read: the open itself is O_NONBLOCK, so a
 * FIFO without a writer cannot hang it, and O_NONBLOCK is cleared again
 * afterwards. O_CLOEXEC. Returns the fd (the caller closes it) and the
 * size on disk in *size (may be NULL), or -1 with the error set. */
int gen_fs_open(const char *path, int64_t *size);

/* gen_fs_open as a stdio stream ("r"); NULL with the error set. */
FILE *gen_fs_fopen_read(const char *path);

/* Reads a whole regular file of at most `max` bytes into a gen_alloc'd
 * buffer with one NUL byte after the data. Opens with gen_fs_open. */
enum gen_status gen_fs_read(const char *path, int64_t max, uint8_t **data, int64_t *n);

/* Writes n bytes to path through "PATH.tmp.PID" renamed over it, so a
 * reader never sees half a file (plots, reports). */
enum gen_status gen_fs_write_atomic(const char *path, const void *data, size_t n);

/* A write through "PATH.tmp.PID", so that a reader never sees half a
 * file and an earlier file of that name stays whole until the new one is
 * renamed over it (images, plots, reports, checkpoints). create opens it
 * ("wb"; NULL with the error set: path too long, cannot create); finish
 * closes f, renames tmp over path unless err (an errno, or any nonzero)
 * says the write failed, removes tmp on any failure and returns 0 or the
 * failure's errno (err itself if it was nonzero). Between the two the
 * file is named where gen_fs_tmp_remove (async-signal-safe, for a signal
 * handler) removes it. One at a time: the writers run on one thread. */
#define GEN_FS_TMP_MAX 4200
FILE *gen_fs_tmp_create(const char *path, char tmp[GEN_FS_TMP_MAX]);
int gen_fs_tmp_finish(FILE *f, const char *tmp, const char *path, int err);
void gen_fs_tmp_remove(void);

/* Closes a stream written to path (in place, not through a temporary
 * file): GEN_OK, or "PATH: write failed: REASON" where a write, the flush
 * or the close failed (a full disk). */
enum gen_status gen_fs_fclose_written(FILE *f, const char *path);

/* 1 if name ends in ext (".png"), ignoring ASCII case. */
int gen_fs_has_ext(const char *name, const char *ext);

#endif
