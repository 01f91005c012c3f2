/* checkpoint.c - a model's parameter arena as a safetensors file.
 *
 * Tensor names are the parameters' PyTorch module paths; optimiser moments
 * and EMA weights ride along as "optim.m.", "optim.v." and "ema." tensors.
 * The metadata carries everything else a resumed run needs, as strings
 * (safetensors allows only strings there): family, config (JSON text),
 * optimiser step counts, and the caller's step, epoch, cursor and rngs. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "gen/nn.h"
#include "io/fs.h"
#include "io/safetensors.h"

#ifndef GEN_VERSION
#define GEN_VERSION "unknown"
#endif

static const char *const reserved_keys[] = {"format", "format_version", "gen_version",
                                            "family", "config",         "optim_step"};
#define N_RESERVED ((int)(sizeof reserved_keys / sizeof *reserved_keys))

static int trainable(const struct gen_param *p) { return p->kind != GEN_PARAM_BUFFER; }

/* ---- save ------------------------------------------------------------- */

enum gen_status gen_ckpt_save(const char *path, const struct gen_params *ps, const char *family,
                              const char *config_json, const struct gen_kv *meta, int n_meta) {
    GEN_ASSERT(ps && family && (n_meta == 0 || meta));
    for (int i = 0; i < n_meta; i++)
        for (int k = 0; k < N_RESERVED; k++)
            if (meta[i].key && !strcmp(meta[i].key, reserved_keys[k]))
                return gen_error(GEN_ERR_USAGE, "%s: metadata key '%s' is reserved", path,
                                 meta[i].key);
    int n_train = 0;
    for (int i = 0; i < ps->count; i++) n_train += trainable(&ps->p[i]);
    int with_optim = ps->m && ps->v, with_ema = ps->ema != NULL;
    int n = ps->count + (with_optim ? 2 * n_train : 0) + (with_ema ? n_train : 0);

    struct gen_st_entry *e = gen_calloc((size_t)(n ? n : 1), sizeof *e);
    char *names = gen_calloc((size_t)(n ? n : 1), 128); /* prefixed names */
    struct gen_kv *kv = gen_calloc((size_t)(N_RESERVED + n_meta), sizeof *kv);
    if (!e || !names || !kv) {
        gen_free(e);
        gen_free(names);
        gen_free(kv);
        return gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    int k = 0;
    for (int i = 0; i < ps->count; i++) {
        const struct gen_param *p = &ps->p[i];
        e[k++] = (struct gen_st_entry){p->name, p->t.ndim, p->t.shape, p->t.data, GEN_ST_F32, NULL};
    }
    static const char *const prefixes[] = {"optim.m.", "optim.v.", "ema."};
    for (int pre = 0; pre < 3; pre++) {
        const float *block = pre == 0 ? ps->m : pre == 1 ? ps->v : ps->ema;
        if (pre < 2 ? !with_optim : !with_ema) continue;
        for (int i = 0; i < ps->count; i++) {
            const struct gen_param *p = &ps->p[i];
            if (!trainable(p)) continue;
            char *nm = names + (size_t)k * 128;
            snprintf(nm, 128, "%s%s", prefixes[pre], p->name);
            e[k++] = (struct gen_st_entry){nm, p->t.ndim, p->t.shape, block + p->offset,
                                           GEN_ST_F32, NULL};
        }
    }
    GEN_ASSERT(k == n);

    char steps[128];
    snprintf(steps, sizeof steps, "[%lld,%lld,%lld,%lld]", (long long)ps->step[0],
             (long long)ps->step[1], (long long)ps->step[2], (long long)ps->step[3]);
    const char *values[N_RESERVED] = {"gen",  GEN_CKPT_FORMAT_VERSION,
                                      GEN_VERSION, family,
                                      config_json ? config_json : "{}", steps};
    for (int i = 0; i < N_RESERVED; i++) kv[i] = (struct gen_kv){reserved_keys[i], values[i]};
    for (int i = 0; i < n_meta; i++) kv[N_RESERVED + i] = meta[i];

    enum gen_status st = gen_st_save(path, e, n, kv, N_RESERVED + n_meta);
    gen_free(e);
    gen_free(names);
    gen_free(kv);
    return st;
}

/* ---- metadata --------------------------------------------------------- */

const char *gen_ckpt_meta_get(const struct gen_ckpt_meta *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i], key)) return m->values[i];
    return NULL;
}

void gen_ckpt_meta_free(struct gen_ckpt_meta *m) {
    for (int i = 0; i < m->n; i++) {
        gen_free(m->keys[i]);
        gen_free(m->values[i]);
    }
    gen_free(m->keys);
    gen_free(m->values);
    memset(m, 0, sizeof *m);
}

static enum gen_status copy_meta(const char *path, const struct gen_st_file *f,
                                 struct gen_ckpt_meta *m) {
    memset(m, 0, sizeof *m);
    int n = gen_st_meta_count(f);
    m->keys = gen_calloc((size_t)(n ? n : 1), sizeof *m->keys);
    m->values = gen_calloc((size_t)(n ? n : 1), sizeof *m->values);
    if (!m->keys || !m->values) {
        gen_ckpt_meta_free(m);
        return gen_fs_error_at(GEN_ERR_NOMEM, path);
    }
    for (int i = 0; i < n; i++) {
        const char *k, *v;
        gen_st_meta_at(f, i, &k, &v);
        m->keys[i] = gen_fs_strdup(k);
        m->values[i] = gen_fs_strdup(v);
        m->n++;
        if (!m->keys[i] || !m->values[i]) {
            gen_ckpt_meta_free(m);
            return gen_fs_error_at(GEN_ERR_NOMEM, path);
        }
    }
    return GEN_OK;
}

/* A gen checkpoint has format "gen" (when present), a supported version,
 * a family and a config. */
static enum gen_status check_gen_meta(const char *path, const struct gen_st_file *f) {
    const char *fmt = gen_st_meta(f, "format");
    const char *ver = gen_st_meta(f, "format_version");
    if (fmt && strcmp(fmt, "gen") != 0)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: not a gen checkpoint (format '%.32s', as of the weights gen export "
                         "writes)", path, fmt);
    if (!gen_st_meta(f, "family") || !gen_st_meta(f, "config"))
        return gen_error(GEN_ERR_FORMAT,
                         "%s: not a gen checkpoint (no family and config in its metadata)", path);
    if (ver && strcmp(ver, GEN_CKPT_FORMAT_VERSION) != 0)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: checkpoint format version %.32s is not supported (this gen reads %s)",
                         path, ver, GEN_CKPT_FORMAT_VERSION);
    return GEN_OK;
}

enum gen_status gen_ckpt_read_meta(const char *path, struct gen_ckpt_meta *meta) {
    memset(meta, 0, sizeof *meta);
    struct gen_st_file *f;
    enum gen_status st = gen_st_open(path, GEN_ST_HEADER_ONLY, &f);
    if (st != GEN_OK) return st;
    st = check_gen_meta(path, f);
    if (st == GEN_OK) st = copy_meta(path, f, meta);
    gen_st_close(f);
    return st;
}

const char *gen_ckpt_path(const char *path, char *buf, size_t cap) {
    if (gen_fs_kind(path) != GEN_FS_DIR) return path;
    const size_t n = strlen(path);
    const int slash = n > 0 && path[n - 1] == '/';
    const int len = snprintf(buf, cap, "%s%scheckpoint.safetensors", path, slash ? "" : "/");
    return len > 0 && (size_t)len < cap ? buf : path;
}

/* ---- load ------------------------------------------------------------- */

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", d ? ", " : "",
                                (long long)shape[d]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* Copies tensor `name` of the file into dst, checking it has p's shape. */
static enum gen_status load_one(const char *path, const struct gen_st_file *f, const char *name,
                                const struct gen_tensor *like, float *dst) {
    const struct gen_st_tensor *t = gen_st_find(f, name);
    if (!t)
        return gen_error(GEN_ERR_FORMAT,
                         "%s: tensor '%s' is missing (was the checkpoint made with another "
                         "configuration?)", path, name);
    int same = t->ndim == like->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == like->shape[d];
    if (!same) {
        char a[96], b[96];
        format_shape(a, sizeof a, t->ndim, t->shape);
        format_shape(b, sizeof b, like->ndim, like->shape);
        return gen_error(GEN_ERR_FORMAT, "%s: tensor '%s' has shape %s in the file but %s in the "
                                         "model", path, name, a, b);
    }
    return t->numel > 0 ? gen_st_read(path, f, t, dst) : GEN_OK;
}

static const struct gen_param *find_param(const struct gen_params *ps, const char *name) {
    for (int i = 0; i < ps->count; i++)
        if (!strcmp(ps->p[i].name, name)) return &ps->p[i];
    return NULL;
}

/* Every tensor in the file must belong to the model. */
static enum gen_status check_unexpected(const char *path, const struct gen_st_file *f,
                                        const struct gen_params *ps) {
    static const char *const prefixes[] = {"optim.m.", "optim.v.", "ema."};
    for (int i = 0; i < gen_st_count(f); i++) {
        const char *name = gen_st_at(f, i)->name;
        const struct gen_param *p = find_param(ps, name);
        int ok = p != NULL;
        for (int k = 0; !ok && k < 3; k++) {
            size_t len = strlen(prefixes[k]);
            if (strncmp(name, prefixes[k], len) != 0) continue;
            p = find_param(ps, name + len);
            ok = p && trainable(p);
        }
        if (!ok)
            return gen_error(GEN_ERR_FORMAT,
                             "%s: tensor '%s' is not part of this model (was the checkpoint "
                             "made with another configuration?)", path, name);
    }
    return GEN_OK;
}

static enum gen_status load_steps(const char *path, const struct gen_st_file *f,
                                  struct gen_params *ps) {
    const char *s = gen_st_meta(f, "optim_step");
    cJSON *a = s ? cJSON_Parse(s) : NULL;
    int ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == 4;
    int64_t steps[4];
    for (int i = 0; ok && i < 4; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        ok = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15 &&
             v->valuedouble == (double)(int64_t)v->valuedouble;
        if (ok) steps[i] = (int64_t)v->valuedouble;
    }
    cJSON_Delete(a);
    if (!ok)
        return gen_error(GEN_ERR_FORMAT, "%s: metadata optim_step is missing or not 4 integers",
                         path);
    memcpy(ps->step, steps, sizeof steps);
    return GEN_OK;
}

enum gen_status gen_ckpt_load(const char *path, struct gen_params *ps, const char *family,
                              int flags, struct gen_ckpt_meta *meta) {
    GEN_ASSERT(ps && family);
    if (meta) memset(meta, 0, sizeof *meta);
    if ((flags & GEN_CKPT_OPTIM) && !(ps->m && ps->v))
        return gen_error(GEN_ERR_USAGE, "%s: the model has no optimiser state to load into", path);
    if ((flags & GEN_CKPT_EMA) && !ps->ema)
        return gen_error(GEN_ERR_USAGE, "%s: the model has no EMA weights to load into", path);
    struct gen_st_file *f; /* only the tensors asked for are read */
    enum gen_status st = gen_st_open(path, GEN_ST_ON_DEMAND, &f);
    if (st != GEN_OK) return st;
    st = check_gen_meta(path, f);
    const char *fam = gen_st_meta(f, "family");
    if (st == GEN_OK && strcmp(fam, family) != 0)
        st = gen_error(GEN_ERR_FORMAT, "%s: checkpoint is for family '%.64s', not '%s'", path, fam,
                       family);
    if (st == GEN_OK) st = check_unexpected(path, f, ps);
    char name[160];
    for (int i = 0; st == GEN_OK && i < ps->count; i++) {
        struct gen_param *p = &ps->p[i];
        st = load_one(path, f, p->name, &p->t, p->t.data);
        if (st != GEN_OK || !trainable(p)) continue;
        if (flags & GEN_CKPT_OPTIM) {
            snprintf(name, sizeof name, "optim.m.%s", p->name);
            st = load_one(path, f, name, &p->t, ps->m + p->offset);
            snprintf(name, sizeof name, "optim.v.%s", p->name);
            if (st == GEN_OK) st = load_one(path, f, name, &p->t, ps->v + p->offset);
        }
        if (st == GEN_OK && (flags & GEN_CKPT_EMA)) {
            snprintf(name, sizeof name, "ema.%s", p->name);
            st = load_one(path, f, name, &p->t, ps->ema + p->offset);
        }
    }
    if (st == GEN_OK && (flags & GEN_CKPT_OPTIM)) st = load_steps(path, f, ps);
    if (st == GEN_OK && meta) st = copy_meta(path, f, meta);
    gen_st_close(f);
    return st;
}
