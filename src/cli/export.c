/* export.c - `gen export CKPT -o FILE.safetensors`: a checkpoint's model
 * weights alone, under the names of the PyTorch twin's state_dict
 * (scripts/reference/FAMILY.py), for load_state_dict(strict=True).
 *
 * gen names its tensors by the twins' module paths already, so the export
 * is the checkpoint less its optimiser moments, EMA block and run state,
 * plus what PyTorch keeps and gen does not (the `companions` table): a
 * BatchNorm's num_batches_tracked. The weights are the ones `gen sample`
 * uses (the EMA, of the group it follows, when the model keeps one),
 * stored as F32, F16 or BF16 (rounded to nearest even); the metadata holds
 * the family, the training config, the data shape (class names) and the
 * vocabulary, as JSON text. */
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/engine.h"
#include "gen/nn.h"

#ifndef GEN_VERSION
#define GEN_VERSION "unknown"
#endif

enum { EX_OUTPUT, EX_DTYPE, EX_EMA, EX_NO_EMA, EX_JSON, EX_QUIET, EX_COUNT };
static const struct gen_option export_options[EX_COUNT + 1] = {
    [EX_OUTPUT] = {"output", 'o', GEN_OPT_STRING, NULL,
                   "the weights file to write (FILE.safetensors)", 0, 0, NULL, 0},
    [EX_DTYPE] = GEN_CHOICE_OPT("dtype", "f32", "f32|f16|bf16",
                                "element type of the weights (rounded to nearest even)"),
    [EX_EMA] = GEN_FLAG_OPT("ema", "the EMA weights (the default when the model keeps them)"),
    [EX_NO_EMA] = GEN_FLAG_OPT("no-ema", "the trained weights even when the model keeps an EMA"),
    [EX_JSON] = GEN_FLAG_OPT("json", "the result as one JSON object on stdout"),
    [EX_QUIET] = {"quiet", 'q', GEN_OPT_FLAG, NULL, "no log line on stderr", 0, 0, NULL, 0},
    [EX_COUNT] = GEN_OPT_END,
};

static const enum gen_st_dtype dtype_of[] = {GEN_ST_F32, GEN_ST_F16, GEN_ST_BF16};
static const char *const dtype_names[] = {"f32", "f16", "bf16"};

/* Tensors PyTorch's modules keep beside some of gen's: after a tensor
 * whose name ends in `after`, the same prefix + `add`, an I64 scalar
 * holding the optimiser steps of that tensor's group (gen counts no
 * BatchNorm updates; PyTorch reads the count only when momentum is None). */
static const struct {
    const char *after, *add;
} companions[] = {
    {".running_var", ".num_batches_tracked"},
};
#define N_COMPANIONS ((int)(sizeof companions / sizeof *companions))

/* The companion of name (into buf), or -1. */
static int companion_of(const char *name, char *buf, size_t size) {
    const size_t len = strlen(name);
    for (int k = 0; k < N_COMPANIONS; k++) {
        const size_t tail = strlen(companions[k].after);
        if (len > tail && !strcmp(name + len - tail, companions[k].after) &&
            (size_t)snprintf(buf, size, "%.*s%s", (int)(len - tail), name, companions[k].add) <
                size)
            return k;
    }
    return -1;
}

struct export_set {
    struct gen_st_entry *e; /* (n) */
    char (*names)[128];     /* companions' names */
    int64_t *counts;        /* companions' values */
    int n;
    int64_t values;         /* floats written */
};

static void export_set_free(struct export_set *x) {
    gen_free(x->e);
    gen_free(x->names);
    gen_free(x->counts);
}

/* The optimiser steps of each parameter group ("optim_step" metadata: a
 * JSON array of 4 counts; zeros when it is missing or malformed). */
static void optim_steps(const struct gen_ckpt_meta *meta, int64_t steps[4]) {
    cJSON *a = cJSON_Parse(gen_ckpt_meta_get(meta, "optim_step"));
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        steps[i] = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15
                       ? (int64_t)v->valuedouble
                       : 0;
    }
    cJSON_Delete(a);
}

/* The tensors of ps to write: every parameter and buffer (a trainable one
 * from the EMA when ema and it is in the EMA's group), then companions
 * (their counts from steps, per group). */
static enum gen_status collect(const struct gen_params *ps, const int64_t steps[4], int ema,
                               int ema_group, enum gen_st_dtype dtype, struct export_set *x) {
    memset(x, 0, sizeof *x);
    const size_t cap = (size_t)ps->count * 2 + 1;
    x->e = gen_calloc(cap, sizeof *x->e);
    x->names = gen_calloc(cap, sizeof *x->names);
    x->counts = gen_calloc(cap, sizeof *x->counts);
    if (!x->e || !x->names || !x->counts) return gen_error(GEN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        const int from_ema = ema && p->kind != GEN_PARAM_BUFFER &&
                             (ema_group < 0 || p->group == ema_group);
        x->e[x->n++] = (struct gen_st_entry){p->name, p->t.ndim, p->t.shape,
                                             from_ema ? ps->ema + p->offset : p->t.data, dtype,
                                             NULL};
        x->values += gen_numel(&p->t);
        if (companion_of(p->name, x->names[x->n], sizeof x->names[x->n]) < 0) continue;
        x->counts[x->n] = steps[p->group >= 0 && p->group < 4 ? p->group : 0];
        x->e[x->n] = (struct gen_st_entry){x->names[x->n], 0, NULL, NULL, GEN_ST_I64,
                                           &x->counts[x->n]};
        x->n++;
    }
    return GEN_OK;
}

/* The metadata: "format" = "pt" (as Hugging Face's files say, and which
 * gen's checkpoint loader refuses), then what builds the twin. */
static enum gen_status write_export(const char *out, const struct gen_model *em,
                                    const struct gen_ckpt_meta *meta, const struct export_set *x,
                                    const char *dtype, int ema) {
    char *config = gen_config_json(&em->cfg), *shape = gen_model_shape_json(em);
    const char *step = gen_ckpt_meta_get(meta, "step"), *vocab = gen_ckpt_meta_get(meta, "vocab");
    struct gen_kv kv[9];
    int n = 0;
    kv[n++] = (struct gen_kv){"format", "pt"};
    kv[n++] = (struct gen_kv){"family", em->fam->name};
    kv[n++] = (struct gen_kv){"config", config ? config : "{}"};
    kv[n++] = (struct gen_kv){"data_shape", shape ? shape : "{}"};
    if (vocab) kv[n++] = (struct gen_kv){"vocab", vocab};
    if (step) kv[n++] = (struct gen_kv){"step", step};
    kv[n++] = (struct gen_kv){"weights", ema ? "ema" : "trained"};
    kv[n++] = (struct gen_kv){"dtype", dtype};
    kv[n++] = (struct gen_kv){"gen_version", GEN_VERSION};
    enum gen_status st = config && shape ? gen_st_save(out, x->e, x->n, kv, n)
                                         : gen_error(GEN_ERR_NOMEM, "%s: out of memory", out);
    free(config);
    free(shape);
    return st;
}

static void about(FILE *f) {
    fprintf(f, "Writes a checkpoint's model weights alone (no optimiser state, no run state),\n"
               "named as the PyTorch twin's state_dict (scripts/reference/FAMILY.py), so that\n"
               "load_state_dict(strict=True) takes them. The weights are those 'gen sample'\n"
               "uses: the EMA when the model keeps one. The metadata holds the family, the\n"
               "training config, the data shape and the vocabulary (JSON text).\n");
}

/* Usage checks of the options and paths; the message is pending. */
static enum gen_status check_usage(const char *ckpt, const struct gen_config *cfg) {
    const char *out = gen_opt_str(cfg, &export_options[EX_OUTPUT]);
    const char *ext = ".safetensors";
    struct stat so;
    if (!out) return gen_error(GEN_ERR_USAGE, "export: missing -o FILE.safetensors");
    const size_t len = strlen(out);
    if (!out[0]) return gen_error(GEN_ERR_USAGE, "--output: an empty path");
    if (out[len - 1] == '/' || (stat(out, &so) == 0 && S_ISDIR(so.st_mode)))
        return gen_error(GEN_ERR_USAGE, "%s: is a folder; -o names the file to write", out);
    if (len <= strlen(ext) || strcmp(out + len - strlen(ext), ext) != 0)
        return gen_error(GEN_ERR_USAGE, "%s: the weights are a safetensors file: name it "
                                        "FILE.safetensors", out);
    if (gen_opt_flag(cfg, &export_options[EX_EMA]) &&
        gen_opt_flag(cfg, &export_options[EX_NO_EMA]))
        return gen_error(GEN_ERR_USAGE, "--ema and --no-ema cannot be used together");
    return gen_check_output(out, (const char *const[]){ckpt}, 1);
}

/* Loads the checkpoint and writes the export; returns the exit code. */
static int run_export(const char *ckpt, const struct gen_config *cfg) {
    const char *out = gen_opt_str(cfg, &export_options[EX_OUTPUT]);
    const char *dtype = gen_opt_str(cfg, &export_options[EX_DTYPE]);
    int d = 0;
    while (d < 2 && strcmp(dtype_names[d], dtype) != 0) d++; /* the parser checked it */
    const int json = gen_opt_flag(cfg, &export_options[EX_JSON]);
    const int quiet = gen_opt_flag(cfg, &export_options[EX_QUIET]);
    struct gen_model em;
    struct gen_ckpt_meta meta = {0};
    if (gen_model_load(&em, NULL, ckpt, GEN_CKPT_EMA, &meta) != GEN_OK) return 1;
    const struct gen_params *ps = em.info.ps;
    const int ema = ps->ema && !gen_opt_flag(cfg, &export_options[EX_NO_EMA]);
    struct export_set x = {0};
    int64_t steps[4];
    optim_steps(&meta, steps);
    int rc = 1;
    if (gen_opt_flag(cfg, &export_options[EX_EMA]) && !ps->ema) {
        gen_error(GEN_ERR_USAGE, "--ema: %s keeps no EMA weights (it was trained without --ema)",
                  ckpt);
        rc = 2;
    } else if (collect(ps, steps, ema, em.info.ema_group, dtype_of[d], &x) == GEN_OK &&
               write_export(out, &em, &meta, &x, dtype_names[d], ema) == GEN_OK) {
        rc = 0;
    }
    if (rc == 0 && !quiet)
        fprintf(stderr, "%s: %d tensors, %lld values (%s, %s weights) of %s\n", out, x.n,
                (long long)x.values, dtype_names[d], ema ? "EMA" : "trained", ckpt);
    if (rc == 0 && json) {
        const struct gen_field metrics[] = {{"tensors", x.n}, {"values", (double)x.values}};
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "dtype", dtype_names[d]);
        cJSON_AddStringToObject(extra, "weights", ema ? "ema" : "trained");
        gen_print_result("export", em.fam->name, (const char *const[]){out}, 1, metrics, 2, extra);
    }
    export_set_free(&x);
    gen_ckpt_meta_free(&meta);
    gen_model_free(&em);
    return rc;
}

static int run(const struct gen_config *cfg, int argc, char **argv) {
    (void)argc;
    char buf[GEN_CONFIG_STR];
    const char *ckpt = gen_ckpt_path(argv[0], buf, sizeof buf); /* a run directory's */
    return check_usage(ckpt, cfg) != GEN_OK ? 2 : run_export(ckpt, cfg);
}

const struct gen_cli_tool gen_export_tool = {
    .name = "export",
    .args = "CKPT -o FILE.safetensors [--ema | --no-ema] [--dtype f32|f16|bf16]",
    .what = "the model weights alone, named as the PyTorch twin's state_dict",
    .options = export_options,
    .operand = "CKPT",
    .operand_what = "a checkpoint file or run directory",
    .max_operands = 1,
    .about = about,
    .run = run,
};
