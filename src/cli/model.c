/* model.c - a model made from its family's verbs: build, the stored
 * config, checkpoint save and load (see engine.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine.h"

char *gen_config_json(const struct gen_config *cfg) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < cfg->n; i++) {
        const struct gen_config_entry *e = &cfg->e[i];
        if (!e->present || (e->flags & GEN_OPT_INVOCATION)) continue;
        switch (e->type) {
        case GEN_OPT_INT: cJSON_AddNumberToObject(o, e->name, (double)e->i); break;
        case GEN_OPT_FLOAT: cJSON_AddNumberToObject(o, e->name, e->f); break;
        case GEN_OPT_FLAG: cJSON_AddBoolToObject(o, e->name, e->i != 0); break;
        default: cJSON_AddStringToObject(o, e->name, e->s); break;
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

enum gen_status gen_model_create(struct gen_model *em, const struct gen_family *fam,
                                 const struct gen_config *cfg, const struct gen_data_shape *shape,
                                 const struct gen_vocab *vocab, uint64_t seed) {
    memset(em, 0, sizeof *em);
    em->fam = fam;
    em->shape = *shape;
    if (vocab) em->vocab = *vocab;
    if (gen_config_copy(&em->cfg, cfg) != GEN_OK) return GEN_ERR_NOMEM;
    em->m = gen_calloc(1, fam->size);
    if (!em->m) return gen_error(GEN_ERR_NOMEM, "%s: out of memory for the model", fam->name);
    return fam->create(em->m, &em->cfg, &em->shape, seed, &em->info);
}

void gen_model_free(struct gen_model *em) {
    if (em->m) em->fam->destroy(em->m);
    gen_free(em->m);
    gen_config_free(&em->cfg);
    if (em->class_names) {
        for (int i = 0; i < em->shape.n_classes; i++) free(em->class_names[i]);
        free(em->class_names);
    }
    memset(em, 0, sizeof *em);
}

int gen_model_ema_use(struct gen_model *em, const struct gen_config *opts) {
    const struct gen_config_entry *no = opts ? gen_opt_get(opts, &gen_sample_options[GEN_SAMPLE_NO_EMA]) : NULL;
    if (!em->info.ps->ema || (no && no->i) || em->ema_in_place) return 0;
    gen_ema_swap(em->info.ps);
    em->ema_in_place = 1;
    return 1;
}

void gen_model_ema_restore(struct gen_model *em, int used) {
    if (!used) return;
    gen_ema_swap(em->info.ps);
    em->ema_in_place = 0;
}

/* ---- the stored form ---- */

char *gen_model_shape_json(const struct gen_model *em) {
    cJSON *o = cJSON_CreateObject();
    const struct gen_data_shape *s = &em->shape;
    if (s->kind == GEN_DATA_TEXT) {
        cJSON_AddStringToObject(o, "kind", "text");
        cJSON_AddNumberToObject(o, "vocab", s->vocab);
    } else {
        cJSON_AddStringToObject(o, "kind", "images");
        cJSON_AddNumberToObject(o, "channels", s->c);
        cJSON_AddNumberToObject(o, "height", s->h);
        cJSON_AddNumberToObject(o, "width", s->w);
        cJSON_AddNumberToObject(o, "classes", s->n_classes);
        if (em->class_names) {
            cJSON *names = cJSON_AddArrayToObject(o, "class_names");
            for (int i = 0; i < s->n_classes; i++)
                cJSON_AddItemToArray(names, cJSON_CreateString(em->class_names[i]));
        }
    }
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t;
}

#define MAX_SAVE_META 48

enum gen_status gen_model_save(const struct gen_model *em, const char *path,
                               const struct gen_kv *extra, int n_extra) {
    char *config = gen_config_json(&em->cfg), *shape = gen_model_shape_json(em);
    char *vocab = em->shape.kind == GEN_DATA_TEXT ? gen_vocab_text(&em->vocab) : NULL;
    struct gen_kv kv[MAX_SAVE_META];
    int n = 0;
    kv[n++] = (struct gen_kv){"data_shape", shape};
    if (vocab) kv[n++] = (struct gen_kv){"vocab", vocab};
    for (int i = 0; i < n_extra && n < MAX_SAVE_META; i++) kv[n++] = extra[i];
    enum gen_status st = config && shape && (vocab || em->shape.kind != GEN_DATA_TEXT)
                             ? gen_ckpt_save(path, em->info.ps, em->fam->name, config, kv, n)
                             : gen_error(GEN_ERR_NOMEM, "%s: out of memory", path);
    free(config);
    free(shape);
    free(vocab);
    return st;
}

/* ---- loading ---- */

/* Renamed options: checkpoints written before the rename still load. */
static const char *current_name(const char *stored) {
    static const char *const renames[][2] = {{"ema-decay", "ema"}};
    for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++)
        if (!strcmp(stored, renames[i][0])) return renames[i][1];
    return stored;
}

/* Fills cfg from a stored config object: the training defaults, then every
 * stored value the current options know (others are ignored). */
static enum gen_status config_of_json(const struct gen_family *fam, const cJSON *o,
                                      const char *path, struct gen_config *cfg) {
    const struct gen_option *tables[3];
    gen_command_tables(GEN_CMD_TRAIN, fam, tables);
    gen_config_init(cfg, tables);
    const cJSON *item;
    cJSON_ArrayForEach(item, o) {
        const char *name = current_name(item->string);
        const struct gen_option *opt = gen_option_find(tables, name);
        if (!opt || (opt->flags & GEN_OPT_INVOCATION)) continue;
        char text[GEN_CONFIG_STR];
        if (cJSON_IsBool(item))
            snprintf(text, sizeof text, "%s", cJSON_IsTrue(item) ? "true" : "false");
        else if (cJSON_IsNumber(item) && opt->type == GEN_OPT_INT)
            snprintf(text, sizeof text, "%.0f", item->valuedouble);
        else if (cJSON_IsNumber(item))
            snprintf(text, sizeof text, "%.17g", item->valuedouble);
        else if (cJSON_IsString(item))
            snprintf(text, sizeof text, "%s", item->valuestring);
        else
            return gen_error(GEN_ERR_FORMAT, "%s: config value of '%s' has the wrong type", path,
                             item->string);
        if (gen_config_set(cfg, tables, name, text) != GEN_OK)
            return gen_error(GEN_ERR_FORMAT, "%s: config: %s", path, gen_last_error());
    }
    /* The run's length is --steps or --epochs, whichever it stored. */
    const char *steps = gen_train_options[GEN_TRAIN_STEPS].name,
               *epochs = gen_train_options[GEN_TRAIN_EPOCHS].name;
    int has_steps = cJSON_HasObjectItem(o, steps), has_epochs = cJSON_HasObjectItem(o, epochs);
    for (int k = 0; k < cfg->n; k++) {
        struct gen_config_entry *e = &cfg->e[k];
        if ((has_steps && !has_epochs && !strcmp(e->name, epochs)) ||
            (has_epochs && !has_steps && !strcmp(e->name, steps)))
            e->present = 0;
    }
    return GEN_OK;
}

static double num_of(const cJSON *o, const char *name, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int in_range(double v, double lo, double hi) { return v >= lo && v <= hi && v == floor(v); }

/* The data shape from "data_shape" metadata, or for older checkpoints from
 * their config (channels, height/width or image-size, classes;
 * vocab_size). Every number is bounded before it sizes anything. */
static enum gen_status shape_of(const struct gen_family *fam, const char *shape_text,
                                const cJSON *config, const char *vocab_hex, const char *path,
                                struct gen_model *em) {
    struct gen_data_shape *s = &em->shape;
    cJSON *o = shape_text ? cJSON_Parse(shape_text) : NULL;
    const cJSON *src = o ? o : config;
    enum gen_status st = GEN_OK;
    memset(s, 0, sizeof *s);
    s->kind = fam->data;
    if (fam->data == GEN_DATA_TEXT) {
        double V = num_of(src, o ? "vocab" : "vocab_size", 0);
        if (vocab_hex && !gen_vocab_parse(&em->vocab, vocab_hex))
            st = gen_error(GEN_ERR_FORMAT,
                           "%s: bad \"vocab\" metadata (want the lowercase hex of 1 to 256 "
                           "increasing bytes, or \"utf8:\" and that of 1 to %d increasing "
                           "characters)",
                           path, GEN_VOCAB_MAX);
        else if (!vocab_hex && V == 256)
            gen_vocab_bytes(&em->vocab);
        else if (!vocab_hex)
            st = gen_error(GEN_ERR_FORMAT, "%s: missing \"vocab\" metadata", path);
        else if (V != em->vocab.V)
            st = gen_error(GEN_ERR_FORMAT, "%s: vocabulary of %d symbols, but the config says %g",
                           path, em->vocab.V, V);
        s->vocab = em->vocab.V;
    } else {
        double C = num_of(src, "channels", 0), S = num_of(src, "image-size", 0);
        double H = num_of(src, "height", S), W = num_of(src, "width", S);
        double K = num_of(src, "classes", 10);
        if (!in_range(C, 1, 4) || !in_range(H, 1, GEN_IMAGE_MAX_SIDE) ||
            !in_range(W, 1, GEN_IMAGE_MAX_SIDE) || H * W > GEN_IMAGE_MAX_PIXELS ||
            !in_range(K, 1, 1 << 20))
            st = gen_error(GEN_ERR_FORMAT, "%s: bad data shape in the metadata", path);
        s->c = (int)C, s->h = (int)H, s->w = (int)W, s->n_classes = (int)K;
        const cJSON *names = o ? cJSON_GetObjectItemCaseSensitive(o, "class_names") : NULL;
        if (st == GEN_OK && cJSON_IsArray(names) && cJSON_GetArraySize(names) == s->n_classes) {
            em->class_names = calloc((size_t)s->n_classes, sizeof *em->class_names);
            for (int i = 0; em->class_names && i < s->n_classes; i++) {
                const cJSON *nm = cJSON_GetArrayItem(names, i);
                em->class_names[i] = strdup(cJSON_IsString(nm) ? nm->valuestring : "?");
            }
        }
    }
    cJSON_Delete(o);
    return st;
}

enum gen_status gen_model_describe(struct gen_model *em, const struct gen_family *fam,
                                   const char *path, struct gen_ckpt_meta *meta) {
    memset(em, 0, sizeof *em);
    enum gen_status st = gen_ckpt_read_meta(path, meta);
    if (st != GEN_OK) return st;
    const char *fname = gen_ckpt_meta_get(meta, "family");
    const struct gen_family *ckfam = fname ? gen_family_find(fname) : NULL;
    cJSON *config = cJSON_Parse(gen_ckpt_meta_get(meta, "config"));
    if (!ckfam)
        st = gen_error(GEN_ERR_FORMAT, "%s: unknown family '%s'", path, fname ? fname : "?");
    else if (fam && fam != ckfam)
        st = gen_error(GEN_ERR_FORMAT, "%s: a %s checkpoint, not %s", path, ckfam->name, fam->name);
    else if (!ckfam->create)
        st = gen_error(GEN_ERR_FORMAT, "%s: %s checkpoints load through the family's own commands",
                       path, ckfam->name);
    else if (!cJSON_IsObject(config))
        st = gen_error(GEN_ERR_FORMAT, "%s: the config metadata is not a JSON object", path);
    if (st == GEN_OK) st = config_of_json(ckfam, config, path, &em->cfg);
    if (st == GEN_OK)
        st = shape_of(ckfam, gen_ckpt_meta_get(meta, "data_shape"), config,
                      gen_ckpt_meta_get(meta, "vocab"), path, em);
    em->fam = ckfam;
    cJSON_Delete(config);
    if (st != GEN_OK) {
        gen_ckpt_meta_free(meta);
        gen_model_free(em);
    }
    return st;
}

enum gen_status gen_model_create_checked(struct gen_model *em, const struct gen_family *fam,
                                         const struct gen_config *cfg,
                                         const struct gen_data_shape *shape,
                                         const struct gen_vocab *vocab, uint64_t seed,
                                         const char *path) {
    /* The model the config describes is built under a bound on what its
     * allocations add up to: its parameters, gradients and two optimiser
     * moments (and an EMA) are at most five times the file's tensor data,
     * and the KV caches and the like of a small model get 64 MiB of room;
     * so a config claiming a huge model fails here, before it takes the
     * memory. */
    int64_t data_bytes = 0;
    struct gen_st_file *f;
    if (gen_st_open(path, GEN_ST_HEADER_ONLY, &f) == GEN_OK) {
        data_bytes = gen_st_data_bytes(f);
        gen_st_close(f);
    }
    const size_t room = (size_t)data_bytes * 5 + ((size_t)64 << 20);
    const size_t before = gen_alloc_limit(room);
    /* the checkpoint is loaded over the model next (gen_model_load, train
     * --resume: every tensor and random stream, or the file is refused),
     * so initial values would only be overwritten: draw none */
    const int skipped = gen_init_skip(1);
    enum gen_status st = gen_model_create(em, fam, cfg, shape, vocab, seed);
    gen_init_skip(skipped);
    gen_alloc_limit(before);
    if (st == GEN_ERR_NOMEM)
        st = gen_error(GEN_ERR_FORMAT,
                       "%s: its config describes a model larger than the tensors it holds (%s)",
                       path, gen_last_error());
    else if (st != GEN_OK && strncmp(gen_last_error(), path, strlen(path)) != 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: config: %s", path, gen_last_error());
    return st;
}

/* Weights (and their EMA) must be finite: a model that holds a NaN would
 * sample NaN images silently. */
static enum gen_status check_finite(struct gen_params *ps, const char *path) {
    int bad = gen_params_first_nonfinite(ps), ema = 0;
    if (bad < 0 && ps->ema) {
        gen_ema_swap(ps);
        bad = gen_params_first_nonfinite(ps), ema = bad >= 0;
        gen_ema_swap(ps);
    }
    if (bad < 0) return GEN_OK;
    return gen_error(GEN_ERR_FORMAT, "%s: tensor %s%s holds NaN or infinite values", path,
                     ema ? "ema." : "", ps->p[bad].name);
}

enum gen_status gen_model_load(struct gen_model *em, const struct gen_family *fam,
                               const char *path, int flags, struct gen_ckpt_meta *meta_out) {
    struct gen_ckpt_meta meta = {0};
    struct gen_model d;
    enum gen_status st = gen_model_describe(&d, fam, path, &meta);
    if (st != GEN_OK) return st;
    const int was = gen_params_forward_only(1); /* no gradients, no optimiser moments */
    st = gen_model_create_checked(em, d.fam, &d.cfg, &d.shape, &d.vocab, 0, path);
    gen_params_forward_only(was);
    em->class_names = d.class_names;
    gen_config_free(&d.cfg);
    if (st == GEN_OK && (flags & GEN_CKPT_EMA) && !em->info.ps->ema) flags &= ~GEN_CKPT_EMA;
    if (st == GEN_OK) st = gen_ckpt_load(path, em->info.ps, em->fam->name, flags, NULL);
    if (st == GEN_OK) st = check_finite(em->info.ps, path);
    if (st == GEN_OK && meta_out)
        *meta_out = meta;
    else
        gen_ckpt_meta_free(&meta);
    if (st != GEN_OK) gen_model_free(em);
    return st;
}
