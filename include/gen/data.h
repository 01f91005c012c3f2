/* data.h - data sets: IDX (MNIST format) files, MNIST-format directories,
 * image folders, text, the epoch batcher and uint8 -> float batches.
 *
 * Every loader treats its input as untrusted: sizes are overflow-checked
 * and capped, and every fault comes back as a status with a one-line
 * message naming the file (gen_last_error). Everything a loader fills is
 * owned by the caller and released with the matching _free function, which
 * is also safe on a zeroed struct and after a failed load. */
#ifndef GEN_DATA_H
#define GEN_DATA_H

#include "gen/core.h"

/* ---- finding a data set (src/data/locate.c) ---------------------------
 * A data set named on the command line (--data, --ood; the defaults are
 * data/fashion-mnist and data/moby-dick.txt, relative to a checkout) is
 * looked for at NAME as given, then, for a relative NAME, with KEY = NAME
 * less a leading "data/", at $GEN_DATA/KEY, at
 * ${XDG_DATA_HOME:-$HOME/.local/share}/gen/KEY (where
 * `scripts/fetch-data.sh --xdg` puts the data sets), and for KEY
 * fashion-mnist at /usr/share/datasets/fashion-mnist (the Debian package
 * dataset-fashion-mnist). The first that exists is written to out (size
 * bytes): GEN_OK; else GEN_ERR_IO with one line naming NAME, every place
 * searched and scripts/fetch-data.sh. */
#define GEN_DATA_PATH_MAX 4096
enum gen_status gen_data_find(const char *name, char *out, size_t size);

/* ---- IDX files (MNIST format) ---------------------------------------- */

/* Hard limits for untrusted IDX headers. */
#define GEN_IDX_MAX_RANK 4
#define GEN_IDX_MAX_DIM (1L << 28)          /* any one dimension      */
#define GEN_IDX_MAX_BYTES (1LL << 34)       /* payload (16 GiB)       */

/* One IDX file of unsigned bytes: magic 00 00 08 RANK, RANK big-endian
 * uint32 dimensions, then exactly prod(dims) bytes. */
struct gen_idx {
    int rank;                        /* 1..4                              */
    int64_t dims[GEN_IDX_MAX_RANK];  /* dims[0] is the item count         */
    int64_t size;                    /* prod(dims) bytes in data          */
    uint8_t *data;                   /* (dims[0], ..., dims[rank-1]); gen_alloc'd */
};

/* Reads a raw or gzip-compressed IDX file (gzip is detected by its magic
 * 1f 8b, not by the name). Rejects: a type other than 0x08 (ubyte), rank
 * outside 1..4, a zero or too large dimension, a payload over the cap,
 * a truncated file (message gives expected and actual bytes), trailing
 * bytes, corrupt gzip data. */
enum gen_status gen_idx_read(const char *path, struct gen_idx *out);
void gen_idx_free(struct gen_idx *idx);

/* ---- image sets ------------------------------------------------------- */

struct gen_image_set {
    int64_t n;            /* number of images                             */
    int c, h, w;          /* channels (1 or 3), height, width             */
    uint8_t *pixels;      /* (n, c, h, w), 0..255; gen_alloc'd            */
    int32_t *labels;      /* (n), each in [0, n_classes); gen_alloc'd     */
    int n_classes;        /* >= 1                                         */
    char **class_names;   /* (n_classes) or NULL (MNIST has none)         */
};
void gen_image_set_free(struct gen_image_set *s);

/* Which part of a data set to load. TEST and TRAIN equal 0 and 1, so an
 * `int train` flag can be passed directly. */
enum gen_split {
    GEN_SPLIT_TEST = 0,
    GEN_SPLIT_TRAIN = 1,
    GEN_SPLIT_ALL = 2, /* image folders only: every image, no holdout */
};

/* Limits for decoded images (per side and per image). */
#define GEN_IMAGE_MAX_SIDE 16384
#define GEN_IMAGE_MAX_PIXELS (1L << 26)

/* 1 if `dir` holds an MNIST-format image file of either split (train or
 * t10k) under any of the names gen_mnist_load accepts, else 0. */
int gen_mnist_detect(const char *dir);

/* Loads an MNIST-format directory: split TRAIN reads train-images/labels,
 * TEST reads t10k-images/labels. Each file may be spelled
 * `train-images-idx3-ubyte` or `train-images.idx3-ubyte`, optionally with
 * `.gz` (labels: `-idx1-ubyte` / `.idx1-ubyte`). Images must be rank 3
 * (n, h, w), labels rank 1 with the same n. Result: c = 1, native h, w;
 * n_classes = max label + 1 and class_names NULL, unless the directory
 * holds classes.txt: the name of class k on line k + 1 (at most 4096
 * names of at most 255 bytes, no control characters; it must name every
 * label), and then n_classes is its number of names. */
enum gen_status gen_mnist_load(const char *dir, enum gen_split split, struct gen_image_set *out);

/* Loads a folder of images (PNG, JPEG, BMP, GIF, TGA, PNM; by extension,
 * case-insensitive; hidden files and other files are ignored).
 *  - Labels: each subfolder holding images (searched recursively, at most 8
 *    levels) is one class, in strcmp order of the folder names; images
 *    directly in `dir` form a class named "." that comes first (label 0).
 *    class_names holds the folder names.
 *  - Order: classes in order; within a class, a depth-first walk that
 *    visits the entries of each folder in strcmp order of their names.
 *    Deterministic on every machine.
 *  - Split: within each class, the files at positions 9, 19, 29, ... (every
 *    10th, 0-based position % 10 == 9) are the TEST split; the others are
 *    TRAIN; ALL takes every file. An empty split is an error.
 *  - Conversion: grey, grey+alpha, RGB, RGBA and palette images are
 *    converted to `channels` (1: luma 0.299 R + 0.587 G + 0.114 B; 3: grey
 *    is replicated); alpha is composited onto black.
 *  - Size: `size` > 0 centre-crops each image to a square and resizes it to
 *    size x size (area averaging when shrinking, bilinear when growing).
 *    size == 0 keeps the native size, which must then be the same for every
 *    image.
 * channels: 1 or 3; 0 takes the data's: 1 when the first image of the
 * folder (in the order above) is grey, else 3. A file that does not decode is an error
 * naming it; so is a folder with no images. */
enum gen_status gen_imagefolder_load(const char *dir, enum gen_split split, int channels, int size,
                                     struct gen_image_set *out);

/* Loads one image file as a set of one image (label 0, one class),
 * converted to `channels` and `size` as gen_imagefolder_load does. */
enum gen_status gen_image_file_load(const char *path, int channels, int size,
                                    struct gen_image_set *out);

/* Loads images from `path`: an MNIST-format directory (gen_mnist_detect)
 * or else an image folder. `train`: GEN_SPLIT_TRAIN (1), GEN_SPLIT_TEST
 * (0) or GEN_SPLIT_ALL (image folders only). channels (0, 1 or 3) and size
 * (0 or > 0) as for gen_imagefolder_load; for MNIST data, 0 keeps the
 * native 1 x 28 x 28, channels 3 replicates grey and size != 28 resizes. */
enum gen_status gen_images_load(const char *path, int train, int channels, int size,
                                struct gen_image_set *out);

/* Converts a set in place to `channels` (1 or 3) and `size` x `size`
 * (centre crop + resize, as above); 0 keeps what it is. */
enum gen_status gen_image_set_convert(struct gen_image_set *s, int channels, int size);

/* Keeps images first .. first + count - 1 of a set (and their labels), in
 * place. */
void gen_image_set_slice(struct gen_image_set *s, int64_t first, int64_t count);
/* The images `spec` names among n: "test:K" or "test:A-B" (the "test:" may
 * be left out), or "" for all of them, as indices a..b. GEN_ERR_USAGE,
 * naming the option opt ("--input"), when it is malformed or out of
 * range. */
enum gen_status gen_image_range(const char *opt, const char *spec, int64_t n, int64_t *a,
                                int64_t *b);

/* Gathers images idx[0..count) into out (count, c, h, w), mapping
 * 0..255 linearly onto [lo, hi] (0 -> lo, 255 -> hi). */
void gen_images_batch(const struct gen_image_set *s, const int32_t *idx, int count, float *out,
                      float lo, float hi);
/* The class `spec` names among names[0..K) (may be NULL): a name,
 * compared by its letters and digits only, ignoring case ("ankle boot"
 * finds "Ankle boot", "T-shirt-top" finds "T-shirt/top"), or an index
 * 0..K-1. -1 when it names none. */
int gen_class_find(char *const *names, int K, const char *spec);
/* The folder name of class k: its name with '/' and '\\' made '-' and a
 * leading '.' made '_' (so an image folder of it reads back as that
 * class), or the index when it has no name. */
void gen_class_dirname(char *const *names, int k, char *out, size_t n);

/* Gathers labels idx[0..count) into out (count). */
void gen_images_labels(const struct gen_image_set *s, const int32_t *idx, int count,
                       int32_t *out);

/* Resizes one image (c, sh, sw) of floats to (c, dh, dw): area averaging
 * along an axis that shrinks, bilinear (half-pixel centres, edges clamped)
 * along one that grows, a copy when equal. No crop. */
enum gen_status gen_resize_f32(const float *src, int c, int sh, int sw, float *dst, int dh,
                               int dw);

/* ---- text ------------------------------------------------------------- */

#define GEN_TEXT_MAX_BYTES (1LL << 33)
#define GEN_TEXT_MAX_FILES (1 << 20) /* .txt files of a folder            */
#define GEN_TEXT_MAX_DEPTH 32        /* folder levels searched            */

struct gen_text {
    uint8_t *bytes;     /* (n) raw bytes, plus one NUL after them; gen_alloc'd */
    int64_t n;
    int64_t files;      /* files read: 1 for a file                         */
    char *bad_path;     /* the first file that is not valid UTF-8, or NULL; gen_alloc'd */
    int64_t bad_offset; /* the offset in it of the first byte that is not, or -1 */
};

/* Reads a file, or every `*.txt` file of a folder and its subfolders
 * (searched to GEN_TEXT_MAX_DEPTH levels; hidden files and folders, whose
 * names start with '.', are skipped; symlinks to folders are not followed
 * and a folder met again among its own ancestors (a bind mount) is not
 * searched again, so there are no loops), concatenated as-is in strcmp
 * order of their paths, as bytes. At most GEN_TEXT_MAX_FILES files and
 * GEN_TEXT_MAX_BYTES bytes in all; every size is checked before it is
 * read. An empty result is an error. Also notes where the text first stops
 * being valid UTF-8 (each file checked on its own). */
enum gen_status gen_text_load(const char *path, struct gen_text *out);
void gen_text_free(struct gen_text *t);

/* ---- batcher ---------------------------------------------------------- */

/* Hands out batches of indices into n examples, epoch after epoch. The
 * order of epoch e is a Fisher-Yates shuffle by an rng seeded from
 * (seed, e) alone, so the whole state of the stream is the cursor
 * (epoch, pos): saving those two numbers and restoring them in a new
 * batcher with the same n, batch, seed and flags gives the same batches
 * from there on. Batches never span two epochs. */
enum {
    GEN_BATCH_DROP_LAST = 1,  /* skip the last, short batch of an epoch   */
    GEN_BATCH_SEQUENTIAL = 2, /* no shuffle: 0, 1, ..., n-1 every epoch    */
};

struct gen_batcher {
    int64_t n;        /* examples                                        */
    int batch;        /* batch size                                      */
    uint64_t seed;
    int flags;        /* GEN_BATCH_*                                     */
    int64_t epoch;    /* cursor: epoch of the next batch                 */
    int64_t pos;      /* cursor: position of the next batch in the epoch */
    int64_t perm_epoch; /* epoch `perm` holds, -1: none                  */
    int32_t *perm;    /* (n) gen_alloc'd                                 */
};

/* n in [1, INT32_MAX], batch >= 1; with DROP_LAST, batch must be <= n.
 * flags: 0/1 as a drop_last flag, or GEN_BATCH_* ORed. */
enum gen_status gen_batcher_init(struct gen_batcher *b, int64_t n, int batch, uint64_t seed,
                                 int flags);
void gen_batcher_free(struct gen_batcher *b);
/* Writes the next batch's indices to idx (room for `batch`) and returns
 * how many (>= 1; only the last batch of an epoch can be short, and only
 * without DROP_LAST). After the last batch of an epoch the cursor moves to
 * (epoch + 1, 0), so gen_batcher_epoch() counts finished epochs:
 *     while (gen_batcher_epoch(&b) < epochs) { k = gen_batcher_next(&b, idx); ... }
 * Allocates nothing (the permutation is made at init). */
int gen_batcher_next(struct gen_batcher *b, int32_t *idx);
int64_t gen_batcher_epoch(const struct gen_batcher *b);
/* The cursor (epoch, pos) to save in a checkpoint. */
void gen_batcher_cursor(const struct gen_batcher *b, int64_t *epoch, int64_t *pos);
/* Restores a saved cursor; GEN_ERR_FORMAT if it cannot belong to this
 * batcher (epoch < 0, pos outside [0, n], pos not a batch boundary). */
enum gen_status gen_batcher_restore(struct gen_batcher *b, int64_t epoch, int64_t pos);
/* Batches per epoch: ceil(n / batch), or floor with DROP_LAST. */
int64_t gen_batcher_batches_per_epoch(const struct gen_batcher *b);


/* ---- UTF-8 and vocabularies (src/data/vocab.c) ----------------------- */

/* Length (1..4) of the valid UTF-8 sequence that starts s[0..n), its code
 * point in *cp; 0 when none does (a continuation byte, an overlong form, a
 * surrogate, a code point beyond U+10FFFF, a truncated sequence, n < 1). */
int gen_utf8_decode(const uint8_t *s, int64_t n, uint32_t *cp);
/* The offset of the first byte of s[0..n) that is not valid UTF-8, or -1. */
int64_t gen_utf8_check(const uint8_t *s, int64_t n);
/* Writes code point cp (at most U+10FFFF, not a surrogate) as UTF-8 into
 * out; returns its length (1..4). */
int gen_utf8_encode(uint32_t cp, uint8_t out[4]);

/* A vocabulary maps the symbols of a text to token ids 0..V-1 in the
 * increasing order of their keys.
 *  - bytes (chars == 0): each byte is a symbol, its key the byte. The
 *    byte tokenizer has all 256; a character vocabulary of gen before
 *    code points has the distinct bytes of its corpus.
 *  - characters (chars == 1): text is read as UTF-8; each valid sequence
 *    is one symbol, its key the code point; each byte that starts no valid
 *    sequence (input that is not valid UTF-8) is a symbol of its own, its
 *    key GEN_VOCAB_RAW + the byte. Symbols are whole characters, so text
 *    made of them is valid UTF-8 when the corpus was. */
#define GEN_VOCAB_MAX 8192       /* symbols of a character vocabulary */
#define GEN_VOCAB_RAW 0x110000u  /* key of a raw byte b: GEN_VOCAB_RAW + b */
struct gen_vocab {
    int V;
    int chars;                   /* 1: characters, 0: bytes              */
    uint32_t key[GEN_VOCAB_MAX]; /* (V) strictly increasing              */
    int16_t id[256];             /* id of key k < 256, or -1             */
};
void gen_vocab_bytes(struct gen_vocab *voc);
/* The characters of a corpus (chars == 1); GEN_ERR_FORMAT when it has
 * more than GEN_VOCAB_MAX distinct symbols. */
enum gen_status gen_vocab_of_text(struct gen_vocab *voc, const uint8_t *text, int64_t n);
/* The bytes of symbol `id` (0 <= id < V) into out; returns how many (1..4). */
int gen_vocab_symbol(const struct gen_vocab *voc, int32_t id, uint8_t out[4]);
/* The stored form (checkpoint metadata "vocab"; free with free(), NULL
 * without memory): bytes as hex ("0a20616263"), characters as "utf8:"
 * and the hex of their UTF-8 (a raw byte: the byte). gen_vocab_parse reads
 * either back and returns 0 unless it is well formed: lowercase hex of
 * 1..256 bytes, or of 1..GEN_VOCAB_MAX symbols, in strictly increasing
 * order of their keys (no duplicates). */
char *gen_vocab_text(const struct gen_vocab *voc);
int gen_vocab_parse(struct gen_vocab *voc, const char *text);
/* Maps text to ids (room for n; *n_ids gets how many); returns the offset
 * of the first symbol outside the vocabulary (ids before it are written),
 * or -1 when all are inside. */
int64_t gen_vocab_encode(const struct gen_vocab *voc, const uint8_t *bytes, int64_t n,
                         int32_t *ids, int64_t *n_ids);
/* The symbol at s[0..n) (n >= 1) as messages name it: "character 'é'
 * (U+00E9)", "character U+000A", "byte 0x7a ('z')", "byte 0xff (not valid
 * UTF-8)". */
const char *gen_vocab_symbol_name(const struct gen_vocab *voc, const uint8_t *s, int64_t n,
                                  char *buf, size_t size);

#endif
