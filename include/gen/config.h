/* config.h - option tables, the command-line parser and parsed configs.
 *
 * Every command and every model family describes its options in a table;
 * `gen --help` and `gen CMD FAMILY --help` are generated from the tables,
 * and parsing validates every value against its table entry (type, range,
 * choices), so a family adds options without touching the parser. A model
 * reads its options from the parsed config it is built from. */
#ifndef GEN_CONFIG_H
#define GEN_CONFIG_H

#include <stdio.h>

#include "gen/core.h"

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
enum {
    GEN_OPT_RUN_ONLY = 1,
    /* An option of one invocation only (--out, --threads, --json, ...):
     * never stored with a run and never compared on resume. */
    GEN_OPT_INVOCATION = 2,
};

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

/* Longest value an option takes (bytes, with the NUL): a bound on input. */
#define GEN_CONFIG_STR 1024
struct gen_config_entry {
    const char *name;
    enum gen_opt_type type;
    int set;        /* given on the command line (or loaded), not a default */
    int present;    /* has a value (given or default)                      */
    int64_t i;      /* INT, FLAG (0/1)                                      */
    double f;       /* FLOAT                                               */
    char *s;        /* STRING, CHOICE, OPTIONAL_STRING: gen_alloc'd text    */
    unsigned flags; /* its option's GEN_OPT_* flags                        */
};
/* A parsed config: one entry per option of its tables. It owns its entries
 * and their text: a config starts zeroed ({0}), is filled by
 * gen_config_init or gen_config_parse (again and again: its memory is
 * reused), copied with gen_config_copy and released with gen_config_free. */
struct gen_config {
    int n, cap;
    struct gen_config_entry *e; /* (cap) */
};
void gen_config_free(struct gen_config *cfg);
/* A deep copy of src into dst (a zeroed or freed config). */
enum gen_status gen_config_copy(struct gen_config *dst, const struct gen_config *src);

/* s as a base-10 integer, strictly: the whole text, no leading space, no
 * overflow. Returns 1 and sets *out, else 0 (*out untouched). What the
 * parser below reads integer options with. */
int gen_parse_int(const char *s, int64_t *out);

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
/* gen_config_parse for a command that also takes operands (`gen plot
 * RUN_DIR -o x.svg`): an argument that is not an option (one that does not
 * start with '-', or "-" alone) is put into operands[0..*n_operands), in
 * order, instead of refused; operands has room for argc. Options and
 * operands may come in any order; a value taken by an option is not an
 * operand. */
enum gen_status gen_config_parse_args(struct gen_config *cfg,
                                      const struct gen_option *const *tables, int argc, char **argv,
                                      char **operands, int *n_operands);
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
/* The same, for an option named by its table entry: tables are indexed by
 * enumerators (gen_opt_int(cfg, &vae_train_options[VAE_LATENT])), so an
 * option that is misspelt or gone does not compile. The value is the one
 * of that name, whichever table's entry won. */
const struct gen_config_entry *gen_opt_get(const struct gen_config *cfg, const struct gen_option *o);
int64_t gen_opt_int(const struct gen_config *cfg, const struct gen_option *o);
double gen_opt_float(const struct gen_config *cfg, const struct gen_option *o);
const char *gen_opt_str(const struct gen_config *cfg, const struct gen_option *o);
int gen_opt_flag(const struct gen_config *cfg, const struct gen_option *o);
int gen_opt_is_set(const struct gen_config *cfg, const struct gen_option *o);
/* The value when cfg has the option at all, else NULL / 0: for a verb
 * that reads one command's options but is also called with another's
 * config (generate serves sample, eval and training snapshots). */
const char *gen_opt_str_if(const struct gen_config *cfg, const struct gen_option *o);
int gen_opt_flag_if(const struct gen_config *cfg, const struct gen_option *o);
/* Fills cfg (zeroed, or a config whose memory is reused) with the
 * defaults of the tables (what parse does first). */
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
/* Gives a string option that the command line left unset a value for this
 * run (present, not marked set); a value the user gave is kept (an
 * OPTIONAL_STRING given without a value takes the default). */
void gen_config_default_str(struct gen_config *cfg, const char *name, const char *value);
/* Prints "  -n, --name VALUE  help (default: d)" lines for a table. */
void gen_options_help(FILE *f, const struct gen_option *table);
/* Prints one option's help line (the same format). */
void gen_option_help_line(FILE *f, const struct gen_option *o);
/* What an option's value is called in help: "N", "X", "TEXT", "[TEXT]",
 * the choices "a|b", or "" for a flag. */
const char *gen_option_metavar(const struct gen_option *o);

#endif
