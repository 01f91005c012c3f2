/* family.h - what a model family is: its option tables and its verbs, and
 * the registry of families. Every family fills one struct gen_family; the
 * commands in src/cli treat them uniformly. */
#ifndef GEN_FAMILY_H
#define GEN_FAMILY_H

#include "gen/config.h"
#include "gen/core.h"
#include "gen/data.h"
#include "gen/nn.h"
#include "gen/run.h"

enum gen_data_kind { GEN_DATA_IMAGES, GEN_DATA_TEXT };

/* ---- model verbs --------------------------------------------------------
 *
 * A family is a model, not a program: it fills the verbs below and knows
 * nothing of argv, files, JSON or terminals. The commands (src/cli/) load
 * data, build the model, run the one training step body, save and load
 * checkpoints, and write every output. Letters: N batch, C H W image, T
 * context. */

#define GEN_MAX_FIELDS 16
#define GEN_MAX_PHASES 2

/* The shape of the data a model is built for. */
struct gen_data_shape {
    enum gen_data_kind kind;
    int c, h, w;   /* images: channels (1 or 3), height, width            */
    int n_classes; /* images: label classes (>= 1)                         */
    int vocab;     /* text: vocabulary size V                              */
};

/* One (loss, parameter group, optimiser) pair of a training step. A
 * one-player model has one phase over group -1 (all parameters); the GAN
 * has D's phase then G's. */
struct gen_phase {
    int group;              /* group trained (-1: all)                      */
    int freeze_others;      /* other groups record no gradients in this phase */
    struct gen_optim optim; /* settings; optim.lr is the base learning rate */
};

/* What a built model tells the engine (create fills it). */
struct gen_model_info {
    struct gen_params *ps;   /* every tensor checkpointed (EMA block when --ema > 0) */
    struct gen_rng *rngs;    /* the model's random streams, saved and restored */
    int n_rngs;
    float pixel_lo, pixel_hi; /* images: value range of training batches  */
    int64_t context;         /* text: tokens per training window (T)       */
    int n_phases;
    struct gen_phase phase[GEN_MAX_PHASES];
    int ema_group;           /* the group the EMA follows (-1: all)        */
    int n_fields;            /* step fields the loss verb writes; field 0 of */
    const char *fields[GEN_MAX_FIELDS]; /* each phase is its loss          */
    const char *unit;        /* "img" or "tok": what a step's items are    */
    int classes;             /* images: classes the model is conditioned on
                                (--conditional), or 0: unconditional       */
};

/* A training batch, made by the engine from the training split: this
 * process's share of the step's global batch (all of it in one process). */
struct gen_batch {
    int n;                   /* examples                                   */
    int64_t step;            /* 0-based optimiser step                     */
    /* Example i's random numbers (noise, timesteps, dropout masks) come
     * from its own stream, gen_batch_rng(b, purpose, i), keyed by the
     * run's seed and its global index first + i: the same on any number
     * of processes. */
    uint64_t seed;
    int64_t first;
    struct gen_tensor *x;    /* images (N, C, H, W) in [pixel_lo, pixel_hi] */
    const int32_t *labels;   /* images: (N) classes                        */
    const int32_t *tokens;   /* text: (N, T + 1) windows of token ids      */
};

/* Held-out data for evaluate, or the input images of a sampling mode. */
struct gen_dataset {
    enum gen_data_kind kind;
    const struct gen_image_set *images; /* images (pixels 0..255)          */
    const int32_t *tokens;   /* text: (n_tokens) token ids                 */
    int64_t n_tokens;
    /* inputs of a sampling mode: 1 when they are clean images of the data
     * set (its test split: a restoring mode degrades them itself and shows
     * them beside its result), 0 when they are the user's own (--input
     * FILE|DIR: restored as they are) */
    int clean;
};

/* What needs_inputs answers besides 0 (no inputs): --input images fitted
 * to the model's size (centre crop and resize), or taken at their own
 * size, which must be the model's divided by K (the engine refuses
 * another, naming the file). Test images come at the model's size. */
#define GEN_INPUTS_FIT 1
#define GEN_INPUTS_NATIVE(K) (1 + (K))
#define GEN_INPUTS_FACTOR(need) ((need) - 1) /* K of a need >= GEN_INPUTS_NATIVE(1) */

/* A request to generate. The engine has put the EMA weights in place
 * when the model keeps them (unless --no-ema). */
struct gen_request {
    int64_t n;               /* images: samples; text: tokens to generate   */
    uint64_t seed;
    /* images: the index of the first of the n in the whole request (the
     * engine splits a large one into parts, over processes too); image
     * first + i draws from streams keyed by (seed, first + i) only */
    int64_t first;
    /* images of a conditional model (info.classes > 0): the class of each
     * of the n images, each in [0, classes); NULL: no class asked for (a
     * family samples the whole data set: the diffusion model through its
     * null class, the GAN and VAE through the classes in turn, i % K).
     * An unconditional model gets NULL only. */
    const int32_t *labels;
    const int32_t *prompt;   /* text: prompt token ids (n_prompt >= 1)      */
    int64_t n_prompt;
    const struct gen_dataset *inputs; /* images a mode works on, or NULL   */
    /* images: the mask image of a mode (the sample option --mask when it
     * names an existing file: one image, 1 channel, the model's size when
     * square), or NULL; a value that is no file is the family's to read
     * (e.g. a region name). */
    const struct gen_image_set *mask;
    /* text: called with each token as soon as it is drawn */
    void (*emit)(int32_t token, void *arg);
    void *emit_arg;
    /* text: samples (0: one), sample i drawn from a stream seeded seed + i;
     * start (may be NULL) is called with emit_arg before sample i's tokens,
     * the samples in order, all on the calling thread */
    int64_t samples;
    void (*start)(int64_t i, void *arg);
    /* Optional (may be NULL): a long generation reports how far it is
     * (done of total, in the family's own units, e.g. sampler steps); the
     * engine draws the progress bar. */
    void (*progress)(int64_t done, int64_t total, void *arg);
    void *progress_arg;
};

/* What generate produced. Images are gen_alloc'd by the family and freed
 * by the engine. */
struct gen_output {
    float *images;           /* (n_images, c, h, w) in [0, 1]              */
    int64_t n_images;
    int c, h, w;
    int cols;                /* grid columns; 0: a square grid. Pairs and
                                walks keep whole rows.                      */
    int64_t n_tokens;        /* text: tokens emitted                       */
    int64_t at_once;         /* text: samples decoded at once, a thread
                                each (1: one after another)                */
};

/* Named numbers of an evaluation, and optional per-example scores (the
 * engine writes them with --per-sample and frees `scores` with gen_free). */
struct gen_metrics {
    int n;
    struct gen_field f[GEN_MAX_FIELDS];
    int n_scores;                      /* columns of scores               */
    const char *score_names[4];
    double *scores;                    /* (n_examples, n_scores) or NULL   */
    int64_t n_examples;
    /* bit k set: score column k is -log p(x), or a bound on it, in nats;
     * `gen eval --ood` then adds its complexity-corrected version */
    unsigned nll_scores;
};

struct gen_family {
    const char *name;    /* "vae"                          */
    const char *summary; /* one line for gen --help        */
    enum gen_data_kind data;
    /* Family-specific options per command (NULL-terminated tables, or NULL). */
    const struct gen_option *train_options;
    const struct gen_option *sample_options;
    const struct gen_option *eval_options;

    /* ---- verbs ---- */
    size_t size; /* bytes of the model struct; the engine allocates it zeroed */
    /* Builds the model for data of `shape` from the training options cfg
     * (validated against the tables; also what a checkpoint recorded) and
     * initialises its weights and random streams from seed. A bad
     * combination of options is GEN_ERR_USAGE naming them. destroy frees
     * what create allocated (also after a failed create). */
    enum gen_status (*create)(void *model, const struct gen_config *cfg,
                              const struct gen_data_shape *shape, uint64_t seed,
                              struct gen_model_info *info);
    void (*destroy)(void *model);
    /* The loss graph of `phase` on a batch (in training mode, on g's tape):
     * returns the scalar to minimise and writes the family's step fields
     * (those that phase knows). The engine does zero-grad, backward,
     * clipping, the optimiser, EMA, the NaN guard and timing. The context
     * is not reset between the phases of one step. */
    struct gen_tensor *(*loss)(void *model, struct gen_ctx *g, const struct gen_batch *b,
                               int phase, double *fields);
    /* Generates what req asks (opts: the sample options; NULL: the
     * training snapshot, from the model's own defaults). g is an
     * evaluation context. */
    enum gen_status (*generate)(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                const struct gen_request *req, struct gen_output *out);
    /* Optional: whether a sampling mode of opts needs input images
     * (req->inputs: --input, or the test split of the model's data), and
     * at which size: 0 (none), GEN_INPUTS_FIT or GEN_INPUTS_NATIVE(K). */
    int (*needs_inputs)(const struct gen_config *opts);
    /* Optional: whether opts ask for plain samples, image i of a request
     * a function of (seed, first + i) and its class alone, so that the
     * engine may generate a large request in parts, over several
     * processes too. NULL: never (one request, on one process). */
    int (*plain)(const struct gen_config *opts);
    /* Scores the model on held-out data (opts: the eval options; NULL: the
     * quick evaluation run during training). Optional. */
    enum gen_status (*evaluate)(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                const struct gen_dataset *data, struct gen_metrics *out);
    /* Optional: per-example anomaly scores of held-out images (higher:
     * more anomalous) in out->scores, for `gen eval --ood` (opts: the eval
     * options). A family whose evaluate verb gives per-example scores needs
     * none: --ood uses those. */
    enum gen_status (*score)(void *model, struct gen_ctx *g, const struct gen_config *opts,
                             const struct gen_dataset *data, struct gen_metrics *out);
    /* Optional: looks at a finished step's fields; returns 1 with a message
     * when training goes wrong (the engine warns, and stops after saving
     * when the run has --stop-on-divergence). */
    int (*watch)(void *model, int64_t step, const double *fields, char *msg, size_t size);
};

/* The stream of example i of b for one purpose (a constant of the family). */
static inline void gen_batch_rng(const struct gen_batch *b, uint64_t purpose, int i,
                                 struct gen_rng *r) {
    gen_rng_seed_keyed(r, b->seed, purpose, b->first + i);
}

/* Fills per floats at x + i per for every example i of b, from N(0, 1)
 * through example i's stream for purpose. */
void gen_batch_fill_normal(const struct gen_batch *b, uint64_t purpose, float *x, int64_t per);

/* The options every family's commands share (src/models/registry.c),
 * named by these enumerators: a family reads them as
 * gen_opt_float(cfg, &gen_train_options[GEN_TRAIN_LR]). A family table
 * entry of the same name gives one of them the family's default and help. */
enum gen_train_option {
    GEN_TRAIN_DATA, GEN_TRAIN_OUT, GEN_TRAIN_EPOCHS, GEN_TRAIN_STEPS, GEN_TRAIN_BATCH, GEN_TRAIN_LR, GEN_TRAIN_SCHEDULE, GEN_TRAIN_WARMUP, GEN_TRAIN_LR_MIN, GEN_TRAIN_CLIP, GEN_TRAIN_EMA, GEN_TRAIN_SEED, GEN_TRAIN_THREADS, GEN_TRAIN_RESUME, GEN_TRAIN_FORCE, GEN_TRAIN_LOG_EVERY, GEN_TRAIN_EVAL_EVERY, GEN_TRAIN_SAMPLE_EVERY, GEN_TRAIN_CKPT_EVERY, GEN_TRAIN_JSON, GEN_TRAIN_QUIET, GEN_TRAIN_SYNC_BN,
    GEN_TRAIN_PRECISION, GEN_TRAIN_PROFILE,
    GEN_TRAIN_COUNT
};
enum gen_sample_option {
    GEN_SAMPLE_CKPT, GEN_SAMPLE_NUM, GEN_SAMPLE_OUTPUT, GEN_SAMPLE_SEED, GEN_SAMPLE_DATA, GEN_SAMPLE_INPUT, GEN_SAMPLE_NO_EMA, GEN_SAMPLE_THREADS, GEN_SAMPLE_JSON, GEN_SAMPLE_QUIET,
    GEN_SAMPLE_PRECISION,
    GEN_SAMPLE_COUNT
};
enum gen_eval_option {
    GEN_EVAL_CKPT, GEN_EVAL_DATA, GEN_EVAL_NO_EMA, GEN_EVAL_SEED, GEN_EVAL_THREADS, GEN_EVAL_JSON, GEN_EVAL_QUIET,
    GEN_EVAL_OOD, GEN_EVAL_ROC, GEN_EVAL_PRECISION,
    GEN_EVAL_COUNT
};
/* Options some families declare and the commands act on (data conversion,
 * text prompts, per-example scores, inpainting masks, the divergence
 * stop): the commands name them through this table; a family that has one
 * declares an entry of the same name in its own table (a test checks that
 * each is declared by some family). */
enum gen_family_option {
    GEN_FAM_CHANNELS, GEN_FAM_IMAGE_SIZE, GEN_FAM_TOKENIZER, GEN_FAM_STOP_ON_DIVERGENCE,
    GEN_FAM_PROMPT, GEN_FAM_PROMPT_FILE, GEN_FAM_LENGTH, GEN_FAM_PER_SAMPLE, GEN_FAM_MASK,
    GEN_FAM_CLASS, GEN_FAM_PER_CLASS, GEN_FAM_GUIDANCE, GEN_FAM_PLOT,
    GEN_FAM_INPAINT, GEN_FAM_SUPERRES, GEN_FAM_DENOISE, GEN_FAM_STRENGTH, GEN_FAM_RESTORE,
    GEN_FAM_COUNT
};
/* The train options of an image family whose images keep the data's
 * channels and size unless these say otherwise. */
#define GEN_CHANNELS_OPTION                                                                       \
    GEN_INT_OPT("channels", NULL, 1, 3, "image channels, 1 or 3 (default: the data's)")
#define GEN_IMAGE_SIZE_OPTION                                                                     \
    GEN_INT_OPT("image-size", NULL, 1, 1024,                                                      \
                "crop images square and resize them to this side (default: the data's own size)")
/* The sample options of the image families that may be conditional
 * (declared in their sample tables, before GEN_OPT_END). */
#define GEN_SAMPLE_CLASS_OPTIONS                                                                  \
    GEN_STR_OPT("class", NULL,                                                                    \
                "conditional models: the class to draw, by name or index, or 'all' (one row of "  \
                "-n images per class, default 8)"),                                               \
        GEN_INT_OPT("per-class", NULL, 1, 1000000,                                                \
                    "conditional models: N images of every class into -o DIR/ as "                \
                    "DIR/CLASS/NNNNN.png (an image folder gen trains on)")
extern const struct gen_option gen_family_options[GEN_FAM_COUNT + 1];
extern const struct gen_option gen_train_options[GEN_TRAIN_COUNT + 1];
extern const struct gen_option gen_sample_options[GEN_SAMPLE_COUNT + 1];
extern const struct gen_option gen_eval_options[GEN_EVAL_COUNT + 1];

/* The classes a model is conditioned on: shape->n_classes when --conditional
 * asks for it (asked != 0), else 0; GEN_ERR_FORMAT when the data has fewer
 * than two classes. */
enum gen_status gen_conditional_classes(int asked, const struct gen_data_shape *shape,
                                        int64_t *classes);

/* The registry (src/models/registry.c): NULL-terminated, in help order. */
extern const struct gen_family *const gen_families[];
const struct gen_family *gen_family_find(const char *name);

#endif
