/* config.c - option tables, the command-line parser and parsed configs
 *
 * Every value, default or typed, goes through one validator (set_value), so
 * a default that breaks its own table's range is caught the first time the
 * table is used, and a value loaded from a checkpoint is checked exactly
 * like one typed on the command line. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "gen/config.h"

/* ---- tables ------------------------------------------------------------ */

static const struct gen_option *find_long(const struct gen_option *const *tables,
                                          const char *name, size_t len) {
    int nt = 0;
    while (tables[nt]) nt++;
    for (int t = nt - 1; t >= 0; t--)
        for (const struct gen_option *o = tables[t]; o->name; o++)
            if (strlen(o->name) == len && memcmp(o->name, name, len) == 0) return o;
    return NULL;
}

static const struct gen_option *find_short(const struct gen_option *const *tables, char c) {
    int nt = 0;
    while (tables[nt]) nt++;
    for (int t = nt - 1; t >= 0; t--)
        for (const struct gen_option *o = tables[t]; o->name; o++)
            if (o->short_name == c) return find_long(tables, o->name, strlen(o->name));
    return NULL;
}

const struct gen_option *gen_option_find(const struct gen_option *const *tables, const char *name) {
    return find_long(tables, name, strlen(name));
}

/* ---- strict numbers ---------------------------------------------------- */

int gen_parse_int(const char *s, int64_t *out) {
    if (!*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return 0;
    *out = (int64_t)v;
    return 1;
}

static int parse_float(const char *s, double *out) {
    if (!*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return 0;
    if (errno == ERANGE && v != 0) return 0; /* overflow; underflow to tiny values is fine */
    *out = v;
    return 1;
}

static int has_min(const struct gen_option *o) { return o->min != o->max && o->min > GEN_OPT_NO_MIN / 2; }
static int has_max(const struct gen_option *o) { return o->min != o->max && o->max < GEN_OPT_NO_MAX / 2; }

/* " >= 1", " <= 5", " in [0, 1]" or "". */
static void range_text(const struct gen_option *o, char *buf, size_t n) {
    if (has_min(o) && has_max(o))
        snprintf(buf, n, " in [%.10g, %.10g]", o->min, o->max);
    else if (has_min(o))
        snprintf(buf, n, " >= %.10g", o->min);
    else if (has_max(o))
        snprintf(buf, n, " <= %.10g", o->max);
    else
        buf[0] = 0;
}

static int in_range(const struct gen_option *o, double v) {
    return !(has_min(o) && v < o->min) && !(has_max(o) && v > o->max);
}

static int is_choice(const char *choices, const char *v) {
    size_t len = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && memcmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static int parse_bool(const char *s, int64_t *out) {
    if (!strcmp(s, "1") || !strcmp(s, "true")) return *out = 1, 1;
    if (!strcmp(s, "0") || !strcmp(s, "false")) return *out = 0, 1;
    return 0;
}

/* Sets an entry's text (a copy, in its own buffer; "" for none). */
static enum gen_status set_text(struct gen_config_entry *e, const char *value, const char *spelled) {
    const size_t len = strlen(value);
    if (len >= GEN_CONFIG_STR)
        return gen_error(GEN_ERR_USAGE, "%s: value too long (at most %d bytes)", spelled,
                         GEN_CONFIG_STR - 1);
    char *s = gen_alloc(len + 1);
    if (!s) return gen_error(GEN_ERR_NOMEM, "%s: out of memory", spelled);
    memcpy(s, value, len + 1);
    gen_free(e->s);
    e->s = s;
    return GEN_OK;
}

/* Validates `value` for option o and stores it in e. `spelled` is how the
 * user wrote the option ("--batch", "-n"), used in the message. */
static enum gen_status set_value(struct gen_config_entry *e, const struct gen_option *o,
                                 const char *spelled, const char *value) {
    char range[96];
    range_text(o, range, sizeof range);
    switch (o->type) {
    case GEN_OPT_INT: {
        int64_t v;
        if (!gen_parse_int(value, &v) || !in_range(o, (double)v))
            return gen_error(GEN_ERR_USAGE, "%s: must be an integer%s, got '%.100s'", spelled,
                             range, value);
        e->i = v;
        break;
    }
    case GEN_OPT_FLOAT: {
        double v;
        if (!parse_float(value, &v))
            return gen_error(GEN_ERR_USAGE, "%s: not a number: '%.100s'", spelled, value);
        if (!in_range(o, v))
            return gen_error(GEN_ERR_USAGE, "%s: must be%s, got '%.100s'", spelled, range, value);
        e->f = v;
        break;
    }
    case GEN_OPT_CHOICE:
        if (!is_choice(o->choices, value))
            return gen_error(GEN_ERR_USAGE, "%s: must be one of %s, got '%.100s'", spelled,
                             o->choices, value);
        /* fallthrough */
    case GEN_OPT_STRING:
    case GEN_OPT_OPTIONAL_STRING:
        if (set_text(e, value, spelled) != GEN_OK) return GEN_ERR_USAGE;
        break;
    case GEN_OPT_FLAG:
        if (!parse_bool(value, &e->i))
            return gen_error(GEN_ERR_USAGE, "%s: must be true or false, got '%.100s'", spelled,
                             value);
        break;
    }
    e->present = 1;
    return GEN_OK;
}

/* ---- configs ----------------------------------------------------------- */

static struct gen_config_entry *entry_of(struct gen_config *cfg, const char *name) {
    for (int k = 0; k < cfg->n; k++)
        if (!strcmp(cfg->e[k].name, name)) return &cfg->e[k];
    return NULL;
}

void gen_config_free(struct gen_config *cfg) {
    for (int k = 0; k < cfg->cap; k++) gen_free(cfg->e[k].s);
    gen_free(cfg->e);
    memset(cfg, 0, sizeof *cfg);
}

/* Room for one more entry; its text buffer, if it had one, is kept. */
static struct gen_config_entry *add_entry_slot(struct gen_config *cfg) {
    if (cfg->n == cfg->cap) {
        const int cap = cfg->cap ? 2 * cfg->cap : 32;
        struct gen_config_entry *e = gen_calloc((size_t)cap, sizeof *e);
        if (!e) return NULL;
        if (cfg->cap) memcpy(e, cfg->e, (size_t)cfg->cap * sizeof *e);
        gen_free(cfg->e);
        cfg->e = e;
        cfg->cap = cap;
    }
    struct gen_config_entry *e = &cfg->e[cfg->n++];
    char *s = e->s;
    memset(e, 0, sizeof *e);
    e->s = s;
    return e;
}

enum gen_status gen_config_copy(struct gen_config *dst, const struct gen_config *src) {
    dst->n = 0;
    for (int k = 0; k < src->n; k++) {
        struct gen_config_entry *e = add_entry_slot(dst);
        if (!e) return gen_error(GEN_ERR_NOMEM, "out of memory for a config");
        char *s = e->s;
        *e = src->e[k];
        e->s = s;
        if (set_text(e, src->e[k].s ? src->e[k].s : "", e->name) != GEN_OK) return GEN_ERR_NOMEM;
    }
    return GEN_OK;
}

static struct gen_config_entry *add_entry(struct gen_config *cfg, const struct gen_option *o) {
    struct gen_config_entry *e = add_entry_slot(cfg);
    GEN_ASSERT(e && set_text(e, "", o->name) == GEN_OK); /* a few bytes at start-up */
    e->name = o->name;
    e->type = o->type;
    e->flags = o->flags;
    if (o->type == GEN_OPT_FLAG) e->present = 1; /* a flag always has a value: off */
    if (o->def) {
        char spelled[80];
        snprintf(spelled, sizeof spelled, "default of --%s", o->name);
        if (set_value(e, o, spelled, o->def) != GEN_OK) {
            fprintf(stderr, "gen: internal error: %s\n", gen_last_error());
            GEN_ASSERT(!"option table default is invalid");
        }
    }
    return e;
}

void gen_config_init(struct gen_config *cfg, const struct gen_option *const *tables) {
    cfg->n = 0;
    for (int t = 0; tables[t]; t++)
        for (const struct gen_option *o = tables[t]; o->name; o++)
            if (gen_option_find(tables, o->name) == o) add_entry(cfg, o);
}

/* The value of an option that takes one: "--x=v", or the next argument
 * unless that looks like another long option. */
static enum gen_status take_value(const char *spelled, const char *eq, int argc, char **argv,
                                  int *i, const char **value) {
    if (eq) {
        *value = eq;
        return GEN_OK;
    }
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
        return gen_error(GEN_ERR_USAGE, "%s: missing value", spelled);
    *value = argv[++*i];
    return GEN_OK;
}

static enum gen_status parse_one(struct gen_config *cfg, const struct gen_option *const *tables,
                                 int argc, char **argv, int *i) {
    const char *arg = argv[*i];
    const struct gen_option *o;
    const char *eq = NULL;  /* value attached to the option, if any */
    char spelled[80];
    if (arg[0] == '-' && arg[1] == '-' && arg[2]) {
        const char *name = arg + 2;
        const char *q = strchr(name, '=');
        size_t len = q ? (size_t)(q - name) : strlen(name);
        if (q) eq = q + 1;
        o = find_long(tables, name, len);
        snprintf(spelled, sizeof spelled, "--%.*s", (int)(len < 64 ? len : 64), name);
        if (!o) return gen_error(GEN_ERR_USAGE, "unknown option '%s'", spelled);
    } else if (arg[0] == '-' && arg[1] && arg[1] != '-') {
        o = find_short(tables, arg[1]);
        snprintf(spelled, sizeof spelled, "-%c", arg[1]);
        if (!o) return gen_error(GEN_ERR_USAGE, "unknown option '%s'", spelled);
        if (arg[2]) eq = arg + 2;
    } else {
        return gen_error(GEN_ERR_USAGE, "unexpected argument '%.100s'", arg);
    }

    struct gen_config_entry *e = entry_of(cfg, o->name);
    GEN_ASSERT(e);
    const char *value = NULL;
    switch (o->type) {
    case GEN_OPT_FLAG:
        if (eq) return gen_error(GEN_ERR_USAGE, "%s: takes no value", spelled);
        e->i = 1;
        break;
    case GEN_OPT_OPTIONAL_STRING:
        value = "";
        if (eq)
            value = eq;
        else if (*i + 1 < argc && argv[*i + 1][0] != '-')
            value = argv[++*i];
        if (set_value(e, o, spelled, value) != GEN_OK) return GEN_ERR_USAGE;
        break;
    default:
        if (take_value(spelled, eq, argc, argv, i, &value) != GEN_OK) return GEN_ERR_USAGE;
        if (set_value(e, o, spelled, value) != GEN_OK) return GEN_ERR_USAGE;
        break;
    }
    e->set = 1;
    return GEN_OK;
}

enum gen_status gen_config_parse_args(struct gen_config *cfg,
                                      const struct gen_option *const *tables, int argc, char **argv,
                                      char **operands, int *n_operands) {
    gen_config_init(cfg, tables);
    if (n_operands) *n_operands = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (operands && (arg[0] != '-' || !arg[1]))
            operands[(*n_operands)++] = argv[i];
        else if (parse_one(cfg, tables, argc, argv, &i) != GEN_OK)
            return GEN_ERR_USAGE;
    }
    return GEN_OK;
}

enum gen_status gen_config_parse(struct gen_config *cfg, const struct gen_option *const *tables,
                                 int argc, char **argv) {
    return gen_config_parse_args(cfg, tables, argc, argv, NULL, NULL);
}

enum gen_status gen_config_set(struct gen_config *cfg, const struct gen_option *const *tables,
                               const char *name, const char *value) {
    const struct gen_option *o = gen_option_find(tables, name);
    if (!o) return gen_error(GEN_ERR_USAGE, "unknown option '--%.64s'", name);
    struct gen_config_entry *e = entry_of(cfg, name);
    if (!e) e = add_entry(cfg, o);
    char spelled[80];
    snprintf(spelled, sizeof spelled, "--%s", o->name);
    struct gen_config_entry tmp = *e; /* leave e untouched on error */
    if (set_value(&tmp, o, spelled, value) != GEN_OK) return GEN_ERR_USAGE;
    tmp.set = 1;
    *e = tmp;
    return GEN_OK;
}

const struct gen_config_entry *gen_config_get(const struct gen_config *cfg, const char *name) {
    for (int k = 0; k < cfg->n; k++)
        if (!strcmp(cfg->e[k].name, name)) return &cfg->e[k];
    return NULL;
}

/* Asking for an option no table declares is a programmer error. */
static const struct gen_config_entry *must_get(const struct gen_config *cfg, const char *name) {
    const struct gen_config_entry *e = gen_config_get(cfg, name);
    if (!e) fprintf(stderr, "gen: internal error: no option '--%s' in this config\n", name);
    GEN_ASSERT(e);
    return e;
}

int64_t gen_config_int(const struct gen_config *cfg, const char *name) {
    const struct gen_config_entry *e = must_get(cfg, name);
    GEN_ASSERT(e->type == GEN_OPT_INT || e->type == GEN_OPT_FLAG);
    return e->present ? e->i : 0;
}

double gen_config_float(const struct gen_config *cfg, const char *name) {
    const struct gen_config_entry *e = must_get(cfg, name);
    GEN_ASSERT(e->type == GEN_OPT_FLOAT || e->type == GEN_OPT_INT);
    if (!e->present) return 0;
    return e->type == GEN_OPT_INT ? (double)e->i : e->f;
}

const char *gen_config_str(const struct gen_config *cfg, const char *name) {
    const struct gen_config_entry *e = must_get(cfg, name);
    GEN_ASSERT(e->type == GEN_OPT_STRING || e->type == GEN_OPT_CHOICE ||
               e->type == GEN_OPT_OPTIONAL_STRING);
    return e->present ? e->s : NULL;
}

int gen_config_flag(const struct gen_config *cfg, const char *name) {
    const struct gen_config_entry *e = must_get(cfg, name);
    if (e->type == GEN_OPT_OPTIONAL_STRING) return e->present;
    GEN_ASSERT(e->type == GEN_OPT_FLAG);
    return e->i != 0;
}

int gen_config_is_set(const struct gen_config *cfg, const char *name) {
    return must_get(cfg, name)->set;
}

int gen_config_value_text(const struct gen_config_entry *e, char *buf, size_t size) {
    if (!e->present) return snprintf(buf, size, "%s", "");
    switch (e->type) {
    case GEN_OPT_INT: return snprintf(buf, size, "%lld", (long long)e->i);
    case GEN_OPT_FLOAT: return snprintf(buf, size, "%.9g", e->f);
    case GEN_OPT_FLAG: return snprintf(buf, size, "%s", e->i ? "true" : "false");
    default: return snprintf(buf, size, "%s", e->s);
    }
}

/* ---- help -------------------------------------------------------------- */

const char *gen_option_metavar(const struct gen_option *o) {
    switch (o->type) {
    case GEN_OPT_INT: return "N";
    case GEN_OPT_FLOAT: return "X";
    case GEN_OPT_STRING: return "TEXT";
    case GEN_OPT_OPTIONAL_STRING: return "[TEXT]";
    case GEN_OPT_CHOICE: return o->choices;
    case GEN_OPT_FLAG: break;
    }
    return "";
}

void gen_option_help_line(FILE *f, const struct gen_option *o) {
    char left[160];
    int n = 0;
    if (o->short_name)
        n = snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name);
    else
        n = snprintf(left, sizeof left, "      --%s", o->name);
    const char *meta = gen_option_metavar(o);
    snprintf(left + n, sizeof left - (size_t)n, "%s%s", meta[0] ? " " : "", meta);
    const int col = 30;
    if ((int)strlen(left) + 2 > col)
        fprintf(f, "%s\n%*s", left, col, "");
    else
        fprintf(f, "%-*s", col, left);
    fprintf(f, "%s", o->help ? o->help : "");
    if (o->def && o->type != GEN_OPT_FLAG) fprintf(f, " (default: %s)", o->def);
    fputc('\n', f);
}

void gen_options_help(FILE *f, const struct gen_option *table) {
    for (const struct gen_option *o = table; o && o->name; o++) gen_option_help_line(f, o);
}

void gen_config_default_str(struct gen_config *cfg, const char *name, const char *value) {
    for (int k = 0; k < cfg->n; k++) {
        struct gen_config_entry *e = &cfg->e[k];
        /* --resume given without a value takes the default too */
        const int valued = e->type != GEN_OPT_OPTIONAL_STRING || e->s[0];
        if (strcmp(e->name, name) || (e->set && valued)) continue;
        if (set_text(e, value, name) == GEN_OK) e->present = 1;
    }
}

const struct gen_config_entry *gen_opt_get(const struct gen_config *cfg, const struct gen_option *o) {
    return gen_config_get(cfg, o->name);
}
int64_t gen_opt_int(const struct gen_config *cfg, const struct gen_option *o) {
    return gen_config_int(cfg, o->name);
}
double gen_opt_float(const struct gen_config *cfg, const struct gen_option *o) {
    return gen_config_float(cfg, o->name);
}
const char *gen_opt_str(const struct gen_config *cfg, const struct gen_option *o) {
    return gen_config_str(cfg, o->name);
}
int gen_opt_flag(const struct gen_config *cfg, const struct gen_option *o) {
    return gen_config_flag(cfg, o->name);
}
const char *gen_opt_str_if(const struct gen_config *cfg, const struct gen_option *o) {
    const struct gen_config_entry *e = cfg ? gen_config_get(cfg, o->name) : NULL;
    return e && e->present && e->type == GEN_OPT_STRING ? e->s : NULL;
}
int gen_opt_flag_if(const struct gen_config *cfg, const struct gen_option *o) {
    const struct gen_config_entry *e = cfg ? gen_config_get(cfg, o->name) : NULL;
    return e && e->present && e->type == GEN_OPT_FLAG && e->i;
}
int gen_opt_is_set(const struct gen_config *cfg, const struct gen_option *o) {
    return gen_config_is_set(cfg, o->name);
}
