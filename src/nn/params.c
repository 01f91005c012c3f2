/* params.c - the parameter arena: one flat block each for parameters,
 * gradients, the two optimiser moments and EMA weights; buffers apart. */
#include <math.h>
#include <string.h>

#include "gen/nn.h"

void gen_params_init(struct gen_params *ps) { memset(ps, 0, sizeof *ps); }

void gen_params_free(struct gen_params *ps) {
    gen_free(ps->p);
    gen_free(ps->data);
    gen_free(ps->grad);
    gen_free(ps->m);
    gen_free(ps->v);
    gen_free(ps->ema);
    gen_free(ps->buffers);
    memset(ps, 0, sizeof *ps);
}

int gen_params_add(struct gen_params *ps, const char *name, enum gen_param_kind kind, int group,
                   int ndim, const int64_t *shape) {
    GEN_ASSERT(!ps->data && "gen_params_add after finalize");
    GEN_ASSERT(ndim >= 1 && ndim <= GEN_MAX_DIMS);
    GEN_ASSERT(group >= 0 && group < 4);
    GEN_ASSERT(strlen(name) < sizeof ps->p[0].name);
    if (ps->count == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 32;
        struct gen_param *p = gen_calloc((size_t)cap, sizeof *p);
        GEN_ASSERT(p);
        if (ps->count) memcpy(p, ps->p, (size_t)ps->count * sizeof *p);
        gen_free(ps->p);
        ps->p = p;
        ps->cap = cap;
    }
    struct gen_param *p = &ps->p[ps->count];
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->kind = kind;
    p->group = group;
    p->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) p->t.shape[i] = shape[i];
    int64_t n = gen_numel(&p->t);
    if (kind == GEN_PARAM_BUFFER) {
        p->offset = ps->n_buffer;
        ps->n_buffer += n;
    } else {
        p->offset = ps->n_train;
        ps->n_train += n;
    }
    return ps->count++;
}

static _Thread_local int forward_only; /* gen_params_forward_only */

int gen_params_forward_only(int on) {
    const int was = forward_only;
    forward_only = on != 0;
    return was;
}

enum gen_status gen_params_finalize(struct gen_params *ps, int with_ema) {
    size_t nt = (size_t)(ps->n_train ? ps->n_train : 1), nb = (size_t)(ps->n_buffer ? ps->n_buffer : 1);
    const int train = !forward_only;
    ps->data = gen_calloc(nt, sizeof(float));
    if (train) {
        ps->grad = gen_calloc(nt, sizeof(float));
        ps->m = gen_calloc(nt, sizeof(float));
        ps->v = gen_calloc(nt, sizeof(float));
    }
    ps->buffers = gen_calloc(nb, sizeof(float));
    if (with_ema) ps->ema = gen_calloc(nt, sizeof(float));
    if (!ps->data || (train && (!ps->grad || !ps->m || !ps->v)) || !ps->buffers ||
        (with_ema && !ps->ema))
        return GEN_ERR_NOMEM;
    for (int i = 0; i < ps->count; i++) {
        struct gen_param *p = &ps->p[i];
        p->t.name = p->name;
        if (p->kind == GEN_PARAM_BUFFER) {
            p->t.data = ps->buffers + p->offset;
            p->t.grad = NULL;
            p->t.requires_grad = 0;
        } else {
            p->t.data = ps->data + p->offset;
            p->t.grad = train ? ps->grad + p->offset : NULL;
            p->t.requires_grad = train;
        }
    }
    return GEN_OK;
}

struct gen_tensor *gen_params_tensor(struct gen_params *ps, int index) {
    GEN_ASSERT(index >= 0 && index < ps->count && ps->data);
    return &ps->p[index].t;
}

struct gen_param *gen_params_find(struct gen_params *ps, const char *name) {
    for (int i = 0; i < ps->count; i++)
        if (!strcmp(ps->p[i].name, name)) return &ps->p[i];
    return NULL;
}

/* No pass over the block: the first backward op to write a gradient
 * overwrites it, and the ones none writes are zero-filled when the backward
 * walk or gen_params_grad_ready finds them. A frozen tensor (requires_grad
 * off for this pass) is on no tape, so it is zero-filled here. */
void gen_params_zero_grad(struct gen_params *ps) {
    for (int i = 0; i < ps->count; i++) {
        struct gen_tensor *t = &ps->p[i].t;
        if (ps->p[i].kind == GEN_PARAM_BUFFER) continue;
        if (t->requires_grad) t->grad_stale = 1;
        else {
            memset(t->grad, 0, (size_t)gen_numel(t) * sizeof(float));
            t->grad_stale = 0;
        }
    }
}

int64_t gen_params_count(const struct gen_params *ps) { return ps->n_train; }

int gen_params_first_nonfinite(const struct gen_params *ps) {
    for (int i = 0; i < ps->count; i++) {
        const struct gen_tensor *t = &ps->p[i].t;
        const int64_t n = gen_numel(t);
        for (int64_t k = 0; k < n; k++)
            if (!isfinite(t->data[k])) return i;
    }
    return -1;
}

/* ---- initialisers ---- */

/* Set around a model's creation when a checkpoint is loaded over it: the
 * normal draws of a 25 M-parameter Transformer took 0.64 s of a 0.75 s
 * `gen sample`, for values the load then overwrote. */
static _Thread_local int init_skipped;

int gen_init_skip(int on) {
    const int was = init_skipped;
    init_skipped = on != 0;
    return was;
}

void gen_init_uniform_fan_in(struct gen_tensor *t, int64_t fan_in, struct gen_rng *r) {
    GEN_ASSERT(fan_in > 0);
    if (init_skipped) return;
    float b = 1.0f / sqrtf((float)fan_in);
    gen_rng_fill_uniform(r, t->data, gen_numel(t), -b, b);
}

void gen_init_normal(struct gen_tensor *t, float mean, float std, struct gen_rng *r) {
    if (!init_skipped) gen_rng_fill_normal(r, t->data, gen_numel(t), mean, std);
}

void gen_init_const(struct gen_tensor *t, float v) {
    for (int64_t i = 0, n = init_skipped ? 0 : gen_numel(t); i < n; i++) t->data[i] = v;
}
