/* family.h - options, parsed configurations and the family registry.
 *
 * Every model family fills one struct gen_family; the CLI treats them
 * uniformly: `gen --help` and `gen CMD FAMILY --help` are generated from
 * the option tables, and parsing validates every value against its table
 * entry (type, range, choices), so a family adds options without touching
 * the parser. */
#ifndef GEN_FAMILY_H
#define GEN_FAMILY_H

#include "gen/core.h"
#include "gen/data.h"
#include "gen/nn.h"
#include "gen/run.h"

enum gen_opt_type {
    GEN_OPT_INT,    /* int64 within [min, max]                 */
    GEN_OPT_FLOAT,  /* finite double within [min, max]         */
    GEN_OPT_STRING, /* free text (paths, prompts)              */
    GEN_OPT_CHOICE, /* one of "a|b|c" in `choices`             */
    GEN_OPT_FLAG,   /* present or not; takes no value          */
    GEN_OPT_OPTIONAL_STRING, /* flag with an optional value (--resume [CKPT]) */
};

/* Numeric ranges: an open end is written with these. */
#define GEN_OPT_NO_MIN (-1e300)
#define GEN_OPT_NO_MAX 1e300

/* One option. Tables end with an entry whose name is NULL.
 *
 * Tables are combined in a list (common options of a command first, then
 * the family's). An entry in a later table with the same name as one in an
 * earlier table replaces it whole: that is how a family gives --batch, --lr,
 * --epochs or --data its own default and help while the command keeps them
 * in its common table. */
struct gen_option {
    const char *name;      /* long name without "--": "batch"        */
    char short_name;       /* 'n' for -n, or 0                       */
    enum gen_opt_type type;
    const char *def;       /* default as text; NULL: unset           */
    const char *help;      /* one line                               */
    double min, max;       /* numeric range, inclusive (min == max: no range) */
    const char *choices;   /* GEN_OPT_CHOICE: "ddpm|ddim"            */
    unsigned flags;        /* GEN_OPT_RUN_ONLY                       */
};

/* Option flags. A run-only option says how to run, not what is trained:
 * it may change when a run is resumed (learning rates, intervals, length,
 * threads); every other training option is part of the model and its data,
 * and a resumed run refuses a new value for it. */
enum { GEN_OPT_RUN_ONLY = 1 };

/* Table entries, e.g. GEN_INT_OPT("batch", "128", 1, 65536, "batch size").
 * Defaults are text, validated like typed values. */
#define GEN_INT_OPT(name, def, min, max, help) {name, 0, GEN_OPT_INT, def, help, min, max, NULL, 0}
#define GEN_FLOAT_OPT(name, def, min, max, help) {name, 0, GEN_OPT_FLOAT, def, help, min, max, NULL, 0}
#define GEN_STR_OPT(name, def, help) {name, 0, GEN_OPT_STRING, def, help, 0, 0, NULL, 0}
#define GEN_CHOICE_OPT(name, def, choices, help) {name, 0, GEN_OPT_CHOICE, def, help, 0, 0, choices, 0}
#define GEN_FLAG_OPT(name, help) {name, 0, GEN_OPT_FLAG, NULL, help, 0, 0, NULL, 0}
#define GEN_OPT_END {NULL, 0, GEN_OPT_FLAG, NULL, NULL, 0, 0, NULL, 0}
/* The same entries marked run-only. */
#define GEN_INT_RUN_OPT(name, def, min, max, help) \
    {name, 0, GEN_OPT_INT, def, help, min, max, NULL, GEN_OPT_RUN_ONLY}
#define GEN_FLOAT_RUN_OPT(name, def, min, max, help) \
    {name, 0, GEN_OPT_FLOAT, def, help, min, max, NULL, GEN_OPT_RUN_ONLY}
#define GEN_FLAG_RUN_OPT(name, help) {name, 0, GEN_OPT_FLAG, NULL, help, 0, 0, NULL, GEN_OPT_RUN_ONLY}

#define GEN_CONFIG_MAX 96
#define GEN_CONFIG_STR 1024
struct gen_config_entry {
    const char *name;
    enum gen_opt_type type;
    int set;        /* given on the command line (or loaded), not a default */
    int present;    /* has a value (given or default)                      */
    int64_t i;      /* INT, FLAG (0/1)                                      */
    double f;       /* FLOAT                                               */
    char s[GEN_CONFIG_STR]; /* STRING, CHOICE, OPTIONAL_STRING              */
};
struct gen_config {
    int n;
    struct gen_config_entry e[GEN_CONFIG_MAX];
};

/* Parses argv against the option tables (NULL-terminated list of tables),
 * filling defaults first. argv[0..argc) are all options (no program or
 * command name). Accepts `--name value`, `--name=value`, `-n value`,
 * `-nvalue`, flags (`--json`) and `--resume [CKPT]` (OPTIONAL_STRING: the
 * next argument is its value unless it starts with '-'). A value that starts
 * with "--" is taken as a missing value (write `--prompt=--x` for that).
 * Numbers are parsed strictly (the whole text, base 10 for integers, finite,
 * no overflow) and checked against [min, max]. A repeated option keeps the
 * last value. Positional arguments are not allowed. On a usage error returns
 * GEN_ERR_USAGE with a one-line message naming the option as typed, e.g.
 * "--batch: must be an integer >= 1, got '0'". */
enum gen_status gen_config_parse(struct gen_config *cfg, const struct gen_option *const *tables,
                                 int argc, char **argv);
/* Accessors. gen_config_get returns NULL for a name cfg does not hold; the
 * others treat that (or a type mismatch) as a programmer error (GEN_ASSERT).
 * An absent value reads as 0 / NULL. gen_config_float also reads INT
 * entries; gen_config_flag also tells whether an OPTIONAL_STRING is given. */
const struct gen_config_entry *gen_config_get(const struct gen_config *cfg, const char *name);
int64_t gen_config_int(const struct gen_config *cfg, const char *name);
double gen_config_float(const struct gen_config *cfg, const char *name);
const char *gen_config_str(const struct gen_config *cfg, const char *name); /* NULL if absent */
int gen_config_flag(const struct gen_config *cfg, const char *name);
int gen_config_is_set(const struct gen_config *cfg, const char *name);
/* Fills cfg with the defaults of the tables (what parse does first). */
void gen_config_init(struct gen_config *cfg, const struct gen_option *const *tables);
/* The option that wins for `name` in a table list (last table first), or NULL. */
const struct gen_option *gen_option_find(const struct gen_option *const *tables, const char *name);
/* Writes an entry's value as text ("" when absent; flags "true"/"false";
 * floats with %.9g, which reads back exactly for float32 and any value
 * typed on a command line). Returns what snprintf returns. */
int gen_config_value_text(const struct gen_config_entry *e, char *buf, size_t size);
/* Sets an entry from text, validated like the command line (marks it set;
 * flags take "true"/"false"/"1"/"0"). An entry not yet in cfg is added. */
enum gen_status gen_config_set(struct gen_config *cfg, const struct gen_option *const *tables,
                               const char *name, const char *value);
/* Prints "  -n, --name VALUE  help (default: d)" lines for a table. */
void gen_options_help(FILE *f, const struct gen_option *table);
/* Prints one option's help line (the same format). */
void gen_option_help_line(FILE *f, const struct gen_option *o);

enum gen_data_kind { GEN_DATA_IMAGES, GEN_DATA_TEXT };

/* What a family's command receives: its parsed options (common + family)
 * and where to write. Filled by src/cli, which also resolves defaults that
 * depend on the family: train's "out" (runs/FAMILY), "resume" given without
 * a value (OUT/checkpoint.safetensors), sample/eval's "ckpt"
 * (runs/FAMILY/checkpoint.safetensors). When the user gives --steps, the
 * family's default --epochs is dropped (not present), and the other way
 * round; both together are a usage error. */
struct gen_run {
    const struct gen_family *family;
    struct gen_config cfg;
    const char *out_dir;   /* train: the run directory; NULL otherwise */
    int json, quiet;       /* --json: JSON lines on stdout; --quiet */
};

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
};

/* A training batch, made by the engine from the training split. */
struct gen_batch {
    int n;                   /* examples                                   */
    int64_t step;            /* 0-based optimiser step                     */
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
};

/* A request to generate. The engine has put the EMA weights in place
 * when the model keeps them (unless --no-ema). */
struct gen_request {
    int64_t n;               /* images: samples; text: tokens to generate   */
    uint64_t seed;
    int cond;                /* class to generate, or -1 (unconditional)   */
    const int32_t *prompt;   /* text: prompt token ids (n_prompt >= 1)      */
    int64_t n_prompt;
    const struct gen_dataset *inputs; /* images a mode works on, or NULL   */
    /* text: called with each token as soon as it is drawn */
    void (*emit)(int32_t token, void *arg);
    void *emit_arg;
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
     * (req->inputs: --input, or the test split of the model's data). */
    int (*needs_inputs)(const struct gen_config *opts);
    /* Scores the model on held-out data (opts: the eval options; NULL: the
     * quick evaluation run during training). Optional. */
    enum gen_status (*evaluate)(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                const struct gen_dataset *data, struct gen_metrics *out);
    /* Optional: looks at a finished step's fields; returns 1 with a message
     * when training goes wrong (the engine warns, and stops after saving
     * when the run has --stop-on-divergence). */
    int (*watch)(void *model, int64_t step, const double *fields, char *msg, size_t size);

    /* Legacy whole-program commands of families not yet on the verbs
     * (return an exit code; NULL: not available). */
    int (*train)(struct gen_run *run);
    int (*sample)(struct gen_run *run);
    int (*eval)(struct gen_run *run);
};

/* The registry (src/models/registry.c): NULL-terminated, in help order. */
extern const struct gen_family *const gen_families[];
const struct gen_family *gen_family_find(const char *name);

#endif
