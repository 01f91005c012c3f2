/* engine.h - what the commands share, written once for every family: a
 * model built from its family's verbs and a config, the data it trains
 * and evaluates on, its checkpoints, the one training loop, and the files
 * and JSON a command writes.
 *
 * Internal to src/cli (and the tests); the families never see it. */
#ifndef GEN_CLI_ENGINE_H
#define GEN_CLI_ENGINE_H

#include <cjson/cJSON.h>

#include "gen/data.h"
#include "gen/family.h"
#include "gen/io.h"

/* ---- a model ---- */

struct gen_model {
    const struct gen_family *fam;
    void *m;                     /* the family's struct (fam->size bytes)   */
    struct gen_model_info info;
    struct gen_data_shape shape;
    struct gen_config cfg;       /* the training options it was built from */
    struct gen_vocab vocab;      /* text: its vocabulary                    */
    char **class_names;          /* images: (shape.n_classes) or NULL       */
    int ema_in_place;            /* the EMA weights stand in the trained ones */
};

/* The option tables of a command for a family: common, then the family's
 * (f NULL: the common table alone). */
enum gen_command { GEN_CMD_TRAIN, GEN_CMD_SAMPLE, GEN_CMD_EVAL, GEN_CMD_COUNT };
void gen_command_tables(enum gen_command c, const struct gen_family *f,
                        const struct gen_option *tables[3]);
/* Its name ("train") and what it does, one line (help and the manual). */
const char *gen_command_name(enum gen_command c);
const char *gen_command_what(enum gen_command c);

/* Builds a fresh model (create verb) for data of `shape`. */
enum gen_status gen_model_create(struct gen_model *em, const struct gen_family *fam,
                                 const struct gen_config *cfg, const struct gen_data_shape *shape,
                                 const struct gen_vocab *vocab, uint64_t seed);
void gen_model_free(struct gen_model *em);

/* gen_model_create for the model a checkpoint at path describes, to have
 * that checkpoint loaded over it: the initialisers draw nothing
 * (gen_init_skip), the tensors keep their zeros; every allocation is
 * bounded by the size of the file's tensors, so a config that claims a
 * huge model fails (GEN_ERR_FORMAT, naming path) before it takes the
 * memory; a bad option combination is GEN_ERR_FORMAT too. */
enum gen_status gen_model_create_checked(struct gen_model *em, const struct gen_family *fam,
                                         const struct gen_config *cfg,
                                         const struct gen_data_shape *shape,
                                         const struct gen_vocab *vocab, uint64_t seed,
                                         const char *path);

/* Reads what a checkpoint says of its model without building it: em->fam,
 * cfg (the training options), shape, vocab and class names; meta gets the
 * metadata (free with gen_ckpt_meta_free; freed on failure). */
enum gen_status gen_model_describe(struct gen_model *em, const struct gen_family *fam,
                                   const char *path, struct gen_ckpt_meta *meta);

/* Reads a checkpoint's family, training config and data shape, builds the
 * model to run forward only (gen_params_forward_only: no gradients, no
 * optimiser moments) and loads its weights (flags: GEN_CKPT_EMA). fam
 * NULL: the checkpoint's own family; else it must match. meta (may be
 * NULL) receives the metadata. Checkpoints of gen before the engine load
 * too (their shape is read from the config's channels/height/width keys). */
enum gen_status gen_model_load(struct gen_model *em, const struct gen_family *fam,
                               const char *path, int flags, struct gen_ckpt_meta *meta);

/* The stored form of a config: every option except those of one
 * invocation (out, resume, force, threads, json, quiet), as a JSON object
 * text (free with free()). */
char *gen_config_json(const struct gen_config *cfg);
/* The stored form of em's data shape ("data_shape" metadata: kind,
 * channels, height, width, classes and class names, or the vocabulary
 * size), as a JSON object text (free with free()). */
char *gen_model_shape_json(const struct gen_model *em);

/* Puts the EMA weights in place of the trained ones (when the model keeps
 * an EMA and opts, which may be NULL, does not say --no-ema); returns
 * whether it did, for gen_model_ema_restore. Where they are in place
 * already (a caller's call), it does nothing and returns 0, so that calls
 * nest: a second swap would put the trained weights back. */
int gen_model_ema_use(struct gen_model *em, const struct gen_config *opts);
void gen_model_ema_restore(struct gen_model *em, int used);

/* ---- data ---- */

struct gen_data {
    enum gen_data_kind kind;
    const char *path;                 /* where it was found (gen_data_find) */
    char where[GEN_DATA_PATH_MAX];    /* path's text when gen_data_load found it */
    struct gen_image_set train, test; /* images                           */
    struct gen_text text;             /* text: the whole corpus            */
    int32_t *tokens;                  /* text: (n_tokens) ids              */
    int64_t n_tokens, n_train;        /* text: the first n_train train     */
    struct gen_vocab vocab;
    int utf8_fallback;                /* text: a character vocabulary built from
                                         text that is not valid UTF-8     */
};

enum { GEN_DATA_TRAIN = 1, GEN_DATA_TEST = 2 };
/* Loads a family's data from the data set named path (found by
 * gen_data_find: as given, $GEN_DATA, the XDG data folder, Debian's
 * Fashion-MNIST): the splits in `which` (GEN_DATA_*), images converted to
 * channels/size when they are > 0, text encoded with vocab (NULL: "byte"
 * or the corpus's characters by `tokenizer`). A data set found nowhere
 * names the places searched and the fetch script. */
enum gen_status gen_data_load(struct gen_data *d, enum gen_data_kind kind, const char *path,
                              int which, int channels, int size, const struct gen_vocab *vocab,
                              const char *tokenizer);
void gen_data_free(struct gen_data *d);
/* The log lines of loaded data, on stderr: a text's files and bytes
 * ("data/books/: 12 files, 1.1 MB"; not with quiet) and, once, a warning
 * when a character vocabulary was built from text that is not valid UTF-8
 * (naming the first such file and the offset of its first bad byte). */
void gen_data_announce(const struct gen_data *d, int quiet);
/* The shape of loaded data. */
void gen_data_shape_of(const struct gen_data *d, struct gen_data_shape *s);
/* The held-out split as the verbs see it. */
void gen_data_heldout(const struct gen_data *d, struct gen_dataset *out);
/* The data set sample and eval use: --data when given, else the one the
 * model was trained on. */
const char *gen_model_data_path(const struct gen_config *opts, const struct gen_model *em);
/* --channels and --image-size of a config (a model's training options),
 * 0 when not given (the data's own). */
void gen_model_data_options(const struct gen_config *cfg, int *channels, int *size);
/* GEN_ERR_FORMAT unless loaded images have the shape `want` of a model
 * (named `model` in the message, which names d->path and both shapes). */
enum gen_status gen_data_shape_check(const struct gen_data *d, const struct gen_data_shape *want,
                                     const char *model);
/* The test split of path, converted as the model's training data was
 * (its --channels and --image-size, when it was given them), which must
 * then have the model's shape: data is never resized to fit a model
 * (GEN_ERR_FORMAT naming path and both shapes). Text: encoded with the
 * model's vocabulary. */
enum gen_status gen_data_load_heldout(struct gen_data *d, const struct gen_model *em,
                                      const char *path);
/* The same, but images are fitted to the model: converted to its channels
 * and, when it is square, resized to its side (`gen eval --ood`, whose
 * anomalies are converted to the model's shape). */
enum gen_status gen_data_load_fitted(struct gen_data *d, const struct gen_model *em,
                                     const char *path);

/* ---- training ---- */

/* How to run (the invocation, not the model). */
struct gen_train_run {
    const char *out_dir;
    const char *resume;  /* checkpoint to resume from, or NULL */
    int json, quiet;
    int profile;         /* --profile: OUT/profile.json and a table */
    struct gen_kept_fields *ended; /* the log's last value of each name, or NULL */
};

/* The one training loop: batches, the step body of every phase
 * (zero-grad, loss, backward, clip, optimiser, EMA), the NaN guard,
 * logging, evaluation, snapshots, numbered and latest checkpoints,
 * SIGINT/SIGTERM/SIGHUP (save, 130). Returns an exit code. */
int gen_train_loop(const struct gen_train_run *run, struct gen_model *em, struct gen_data *d);

/* Saves em to path with the engine's metadata (config, data shape,
 * vocabulary, classes) plus extra pairs (step, cursor, rng states). */
enum gen_status gen_model_save(const struct gen_model *em, const char *path,
                               const struct gen_kv *extra, int n_extra);

/* ---- outputs ---- */

/* Whether an images' output names a folder ("DIR/": one file an image). */
int gen_output_is_folder(const char *out);
/* Writes images (n, c, h, w) in [0, 1]: "DIR/" one file each, else a grid
 * with `cols` columns (0: square) in the format of the path's extension
 * (.png, .jpg/.jpeg, .bmp; anything else is a usage error). */
enum gen_status gen_write_images(const char *path, const float *images, int64_t n, int c, int h,
                                 int w, int cols);
/* GEN_ERR_USAGE when the output path names the same file as an input. */
enum gen_status gen_check_output(const char *out, const char *const *inputs, int n_inputs);

/* One JSON result object with the core keys every command shares:
 * {"command", "family", "outputs": [...], "metrics": {...}} (+ extra
 * members the caller adds to `extra`, which it then owns no more).
 * Printed on stdout as one line. */
void gen_print_result(const char *command, const char *family, const char *const *outputs,
                      int n_outputs, const struct gen_field *metrics, int n_metrics, cJSON *extra);

#endif
