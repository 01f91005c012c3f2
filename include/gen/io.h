/* io.h - PNG output (grids and single images), safetensors files and
 * checkpoints.
 *
 * Every function returns a status; on failure the message
 * (gen_last_error) is one line that starts with the file's path. */
#ifndef GEN_IO_H
#define GEN_IO_H

#include "gen/core.h"
#include "gen/data.h"

struct gen_params;

/* A key/value pair of strings (safetensors __metadata__). */
struct gen_kv {
    const char *key;
    const char *value;
};

/* ---- PNG -------------------------------------------------------------- */

/* Writes pixels (h, w, comp) interleaved 8-bit, comp 1..4, as a PNG. */
enum gen_status gen_png_write(const char *path, int w, int h, int comp, const uint8_t *pixels);
/* The same as a PNG, JPEG (quality 95) or BMP by the extension of path
 * (another is GEN_ERR_USAGE). */
enum gen_status gen_image_write(const char *path, int w, int h, int comp, const uint8_t *pixels);

/* GEN_OK when path ends in an image extension gen writes (.png, .jpg,
 * .jpeg, .bmp; gen_image_write picks the format by it), else a usage error
 * naming the path. */
enum gen_status gen_image_path_check(const char *path);

/* Border, in pixels, around and between the images of a grid. */
#define GEN_PNG_GRID_PAD 2

/* Columns and size of the grid gen_png_write_grid draws for n images of
 * h x w: cols = ceil(sqrt(n)), rows = ceil(n / cols),
 * width = cols * (w + PAD) + PAD, height = rows * (h + PAD) + PAD. */
void gen_png_grid_size(int n, int h, int w, int *cols, int *rows, int *width, int *height);

/* Writes n images (n, c, h, w) of floats, c = 1 (grey) or 3 (RGB), as one
 * grid image (format by the path's extension, as gen_image_write) (row-major, image i at row i / cols, column i % cols) on a
 * black background. Values are clamped to [lo, hi] and mapped to 0..255
 * (lo -> 0, hi -> 255, rounded); NaN becomes 0. */
enum gen_status gen_png_write_grid(const char *path, const float *images, int n, int c, int h,
                                   int w, float lo, float hi);

/* The same with `cols` columns (0: ceil(sqrt(n))), so pairs and walks can
 * keep whole rows. */
void gen_png_grid_size_cols(int n, int h, int w, int cols_wanted, int *cols, int *rows, int *width,
                            int *height);
enum gen_status gen_png_write_grid_cols(const char *path, const float *images, int n, int c, int h,
                                        int w, int cols, float lo, float hi);

/* Writes each image to DIR/PREFIX%05d.png (index from 0), creating dir
 * (and its parents) if needed. Same value mapping as the grid. */
enum gen_status gen_png_write_each(const char *dir, const char *prefix, const float *images,
                                   int n, int c, int h, int w, float lo, float hi);
/* The same, numbered from `first` (a folder written in parts). */
enum gen_status gen_png_write_each_from(const char *dir, const char *prefix, int64_t first,
                                        const float *images, int n, int c, int h, int w, float lo,
                                        float hi);

/* Encodes pixels (h, w, comp) interleaved 8-bit, comp 1 or 3, as a PNG in
 * memory with the strongest compression gen has (per-row adaptive filter,
 * zlib level 9): *png (gen_alloc'd, the caller frees it) holds *len bytes.
 * The same pixels always give the same bytes. */
enum gen_status gen_png_encode(const uint8_t *pixels, int w, int h, int comp, uint8_t **png,
                               size_t *len);

/* Reads a folder of images (e.g. samples written by gen_png_write_each)
 * for evaluation: gen_imagefolder_load with GEN_SPLIT_ALL. */
enum gen_status gen_png_load_folder(const char *dir, int channels, int size,
                                    struct gen_image_set *out);

/* Creates a directory and its parents (mode 0777 & ~umask); an existing
 * directory is fine. */
enum gen_status gen_mkdir_p(const char *dir);
/* gen_mkdir_p that says what it made: *kept = the bytes of dir that
 * existed before (up to the '/' before the first directory it made), or
 * strlen(dir) when it made none. */
enum gen_status gen_mkdir_p_made(const char *dir, size_t *kept);
/* Takes back what gen_mkdir_p_made made: dir and its parents, from the
 * leaf up, while they are empty and longer than the kept bytes. */
void gen_rmdir_made(const char *dir, size_t kept);

/* ---- safetensors ------------------------------------------------------ */

/* Limits for untrusted files. */
#define GEN_ST_MAX_HEADER (100L * 1000 * 1000) /* JSON header bytes */
#define GEN_ST_MAX_TENSORS 100000

/* The element types gen writes and reads. A file's F16 and BF16 tensors
 * are read as floats, its I64 ones too (exact up to 2^24). */
enum gen_st_dtype {
    GEN_ST_F32,  /* IEEE binary32 (gen's own)                        */
    GEN_ST_F16,  /* IEEE binary16                                    */
    GEN_ST_BF16, /* bfloat16: the top half of a binary32             */
    GEN_ST_I64,  /* int64 (BatchNorm's num_batches_tracked)           */
};

/* One tensor to write, little-endian, row-major. ndim 0..4 (0: a scalar
 * of one element). A float tensor (F32, F16, BF16) is given as floats in
 * `data` and stored as its dtype, rounded to the nearest (ties to even);
 * an I64 tensor is given in `i64`. The dtype is F32 unless given. */
struct gen_st_entry {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;   /* prod(shape) floats; may be NULL if that is 0 */
    enum gen_st_dtype dtype;
    const int64_t *i64;  /* GEN_ST_I64: prod(shape) integers (not data)  */
};

/* Round to nearest, ties to even, as a float tensor is stored: NaN stays
 * a (quiet) NaN of the same sign, a value beyond the format's range
 * becomes an infinity, and binary16's subnormals are kept. */
uint16_t gen_f32_to_f16(float x);
uint16_t gen_f32_to_bf16(float x);
/* Back to binary32 (exact). */
float gen_f16_to_f32(uint16_t h);
float gen_bf16_to_f32(uint16_t h);

/* Writes a safetensors file: 8-byte little-endian header length N, N bytes
 * of JSON (padded with spaces to a multiple of 8), then the tensors' data
 * in the given order. The header holds "__metadata__" (the n_meta string
 * pairs, omitted if none) and one {"dtype":"F32","shape":[..],
 * "data_offsets":[begin,end]} per tensor (its own dtype). Names must be unique, non-empty
 * and not "__metadata__".
 * Atomic: the bytes go to PATH.tmp.PID, which is flushed, fsync'd and
 * renamed over PATH, then the directory is fsync'd. On any failure the
 * temporary file is removed and an existing PATH is left untouched. The
 * same input always gives the same bytes. */
enum gen_status gen_st_save(const char *path, const struct gen_st_entry *tensors, int n,
                            const struct gen_kv *meta, int n_meta);

/* Removes the leftovers of saves that were killed before their rename:
 * regular files of `dir` named "NAME.tmp.PID" (PID all digits) whose
 * process no longer exists (kill(PID, 0) fails with ESRCH). Temporary
 * files of live processes, including this one, are kept. Not recursive.
 * Fails only if dir cannot be listed or a stale file cannot be removed. */
enum gen_status gen_clean_stale_tmp(const char *dir);
/* gen_clean_stale_tmp for a folder that no lock keeps to one writer (a
 * sample folder): only NAMEs ending with ext (NULL: any), and only files
 * last written min_age_s seconds ago or more, so that a writer on another
 * machine (whose PID means nothing here) is never cut short. */
enum gen_status gen_clean_stale_tmp_of(const char *dir, const char *ext, double min_age_s);

/* One tensor of an open file. */
struct gen_st_tensor {
    const char *name;
    int ndim;                /* 0..4                                     */
    int64_t shape[4];
    int64_t numel;           /* prod(shape); 1 for ndim 0                */
    const float *data;       /* (numel), 64-byte aligned block; NULL when
                                opened with GEN_ST_HEADER_ONLY or numel 0;
                                converted to floats when stored otherwise */
    enum gen_st_dtype dtype; /* as stored in the file                    */
};

struct gen_st_file; /* opaque */

enum {
    GEN_ST_HEADER_ONLY = 1, /* validate against the file size, read no data */
    GEN_ST_ON_DEMAND = 2,   /* the same, the file kept open for gen_st_read */
};

/* Opens and validates a whole file: header length >= 2, <= file size - 8
 * and <= GEN_ST_MAX_HEADER; the header is a JSON object; "__metadata__",
 * if present, maps strings to strings; every other key is a tensor with
 * dtype "F32", "F16", "BF16" or "I64" (anything else is rejected, naming
 * the dtype), a shape of 0..4 non-negative integers whose product does not
 * overflow, and data_offsets [begin, end] with end - begin == numel times
 * the dtype's size; the tensors'
 * ranges do not overlap and together cover the data area exactly; names
 * are unique. Any fault: GEN_ERR_FORMAT (GEN_ERR_IO for I/O), one line
 * "PATH: fault". Without flags the whole file is read into memory (no
 * mmap), so the result does not change if the file is replaced later. */
enum gen_status gen_st_open(const char *path, int flags, struct gen_st_file **out);
void gen_st_close(struct gen_st_file *f); /* NULL is fine */
/* A file opened GEN_ST_ON_DEMAND: tensor t's numel values, converted to
 * floats as gen_st_open converts them, read from the file into dst now. Only
 * the tensors asked for are read, so loading the weights of a checkpoint
 * that also holds the optimiser's moments reads a third of it and holds
 * none of it in memory. The file stays open until gen_st_close: a file
 * replaced since (rename) is still read as it was; one cut short in place
 * gives GEN_ERR_FORMAT ("PATH: truncated: tensor 'NAME' ..."), a read
 * error GEN_ERR_IO. */
enum gen_status gen_st_read(const char *path, const struct gen_st_file *f,
                            const struct gen_st_tensor *t, float *dst);

/* Tensors in the order of their data offsets. */
int gen_st_count(const struct gen_st_file *f);
const struct gen_st_tensor *gen_st_at(const struct gen_st_file *f, int i);
const struct gen_st_tensor *gen_st_find(const struct gen_st_file *f, const char *name);
/* Metadata: value for key, or NULL; or the i-th pair (keys in file order). */
const char *gen_st_meta(const struct gen_st_file *f, const char *key);
int gen_st_meta_count(const struct gen_st_file *f);
void gen_st_meta_at(const struct gen_st_file *f, int i, const char **key, const char **value);
/* Bytes of the data area (all tensors). */
int64_t gen_st_data_bytes(const struct gen_st_file *f);

/* ---- checkpoints ------------------------------------------------------ */

#define GEN_CKPT_FORMAT_VERSION "1"

/* Metadata copied out of a checkpoint (owned by the struct). */
struct gen_ckpt_meta {
    int n;
    char **keys;
    char **values;
};
/* Value for key or NULL. */
const char *gen_ckpt_meta_get(const struct gen_ckpt_meta *m, const char *key);
void gen_ckpt_meta_free(struct gen_ckpt_meta *m);

/* Saves a model as a safetensors file (atomically, see gen_st_save):
 *  - every tensor of ps under its name (parameters and buffers);
 *  - when ps->m / ps->v exist: "optim.m.NAME", "optim.v.NAME" for each
 *    trainable tensor; when ps->ema exists: "ema.NAME";
 *  - __metadata__: "format" = "gen", "format_version", "gen_version",
 *    "family", "config" (config_json, JSON text kept as a string),
 *    "optim_step" (JSON array text of ps->step), then the caller's pairs
 *    (step, epoch, data cursor, rng states ... all as strings). Caller keys
 *    must not repeat the reserved ones (GEN_ERR_USAGE). */
enum gen_status gen_ckpt_save(const char *path, const struct gen_params *ps, const char *family,
                              const char *config_json, const struct gen_kv *meta, int n_meta);

enum {
    GEN_CKPT_OPTIM = 1, /* also load optim.m/v and optim_step; missing = error */
    GEN_CKPT_EMA = 2,   /* also load ema.* (ps->ema must exist); missing = error */
};

/* Loads a checkpoint into a finalized ps built from the same config:
 * "family" must equal `family`; every tensor of ps must be present with
 * the exact shape (a mismatch names the tensor and both shapes); a tensor
 * in the file that the model does not have is an error too (optim.* and
 * ema.* are skipped unless asked for by flags). If meta is not NULL it
 * receives all metadata (free with gen_ckpt_meta_free). On failure ps's
 * values are unspecified but ps stays valid. */
enum gen_status gen_ckpt_load(const char *path, struct gen_params *ps, const char *family,
                              int flags, struct gen_ckpt_meta *meta);

/* Reads only the header of a checkpoint (validated as by gen_st_open,
 * without reading the data): its metadata, so the CLI can find "family"
 * and "config" before building the model. A file without "family" or
 * "config" is GEN_ERR_FORMAT ("not a gen checkpoint"). */
enum gen_status gen_ckpt_read_meta(const char *path, struct gen_ckpt_meta *meta);

/* The checkpoint a path names: a directory (a run's, as `gen train --out`
 * made it) names the checkpoint.safetensors in it, written into buf (cap
 * bytes; a path too long for it stays as it is); anything else, path
 * itself. Returns buf or path. */
const char *gen_ckpt_path(const char *path, char *buf, size_t cap);

#endif
