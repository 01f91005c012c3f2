/* ops_loss.c - losses (fused softmax cross-entropy, BCE with logits, MSE,
 * Gaussian KL), embedding lookup and dropout: forward and backward. */
#include <math.h>
#include <string.h>

#include "core/ops.h"

static float *arena_floats(struct gen_ctx *g, int64_t n) {
    return gen_arena_alloc(&g->arena, (size_t)n * sizeof(float));
}

/* ---- cross-entropy ---- */

/* L = -1/R sum_r logp[r, t_r] with logp = log_softmax(logits); the
 * log-probabilities (R, V) are kept for backward: dx_r += dL/R (exp(logp_r) - e_t). */
struct gen_tensor *gen_cross_entropy(struct gen_ctx *g, struct gen_tensor *logits,
                                     const int32_t *targets) {
    const int64_t V = logits->shape[logits->ndim - 1];
    GEN_ASSERT(V > 0);
    const int64_t R = gen_numel(logits) / V;
    float *logp = arena_floats(g, R * V); /* (R, V) */
    gen_kernels()->log_softmax_fwd(R, V, logits->data, logp);
    double s = 0;
    for (int64_t r = 0; r < R; r++) {
        GEN_ASSERT(targets[r] >= 0 && targets[r] < V);
        s -= logp[r * V + targets[r]];
    }
    struct gen_tensor *out = gen_tensor_1d(g, 1);
    out->data[0] = (float)(R ? s / (double)R : 0.0);
    struct gen_node *n = gen_record(g, GEN_OP_CROSS_ENTROPY, out, 1, &logits);
    if (n) {
        n->saved = logp;
        n->index = targets;
    }
    return out;
}

GEN_BACKWARD(cross_entropy) {
    struct gen_tensor *x = node->in[0];
    if (!x->requires_grad) return;
    const struct gen_kernels *K = gen_kernels();
    const int64_t V = x->shape[x->ndim - 1], R = gen_numel(x) / V;
    const float s = node->out->grad[0] / (float)R;
    const float *logp = node->saved;
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst(g, x, &mode);
    float *p = gen_scratch_floats(g, V); /* one row of probabilities */
    for (int64_t r = 0; r < R; r++) {
        K->exp_fwd(V, logp + r * V, p);
        p[node->index[r]] -= 1.0f;
        gen_put_axpy(mode, V, s, p, dx + r * V);
    }
}

/* ---- binary cross-entropy with logits ---- */

struct gen_tensor *gen_bce_logits(struct gen_ctx *g, struct gen_tensor *x,
                                  const struct gen_tensor *t, int mean) {
    GEN_ASSERT(gen_same_shape(x, t));
    const int64_t n = gen_numel(x);
    const float *T = t->data;
    const struct gen_kernels *K = gen_kernels();
    float *terms = gen_scratch_floats(g, n); /* each element's loss, summed in double */
    K->bce_logits_terms(n, x->data, T, terms);
    const double s = K->sum(n, terms);
    gen_scratch_release(g);
    struct gen_tensor *out = gen_tensor_1d(g, 1);
    out->data[0] = (float)(mean && n ? s / (double)n : s);
    struct gen_node *node = gen_record(g, GEN_OP_BCE_LOGITS, out, 1, &x);
    if (node) {
        node->saved = (void *)T; /* targets: not differentiated, must live until backward */
        node->i[0] = mean;
    }
    return out;
}

/* dl/dx = sigmoid(x) - t. */
GEN_BACKWARD(bce_logits) {
    struct gen_tensor *x = node->in[0];
    if (!x->requires_grad) return;
    const struct gen_kernels *K = gen_kernels();
    const int64_t n = gen_numel(x);
    const float s = node->i[0] ? node->out->grad[0] / (float)n : node->out->grad[0];
    float *sig = gen_scratch_floats(g, n);
    K->sigmoid_fwd(n, x->data, sig);
    K->sub(n, sig, node->saved, sig);
    gen_grad_axpy(g, x, s, sig);
}

/* ---- mean squared error ---- */

struct gen_tensor *gen_mse(struct gen_ctx *g, struct gen_tensor *a, const struct gen_tensor *b) {
    GEN_ASSERT(gen_same_shape(a, b));
    const struct gen_kernels *K = gen_kernels();
    const int64_t n = gen_numel(a);
    float *diff = arena_floats(g, n); /* a - b, kept for backward */
    K->sub(n, a->data, b->data, diff);
    struct gen_tensor *out = gen_tensor_1d(g, 1);
    out->data[0] = (float)(n ? K->sumsq(n, diff) / (double)n : 0.0);
    struct gen_node *node = gen_record(g, GEN_OP_MSE, out, 1, &a);
    if (node) node->saved = diff;
    return out;
}

/* dL/da = 2 (a - b) / n. */
GEN_BACKWARD(mse) {
    struct gen_tensor *a = node->in[0];
    if (!a->requires_grad) return;
    gen_grad_axpy(g, a, 2.0f * node->out->grad[0] / (float)gen_numel(a), node->saved);
}

/* ---- KL(N(mu, exp(logvar)) || N(0, I)) ---- */

struct gen_tensor *gen_gaussian_kl(struct gen_ctx *g, struct gen_tensor *mu,
                                   struct gen_tensor *logvar) {
    GEN_ASSERT(gen_same_shape(mu, logvar));
    const struct gen_kernels *K = gen_kernels();
    const int64_t n = gen_numel(mu);
    float *var = arena_floats(g, n); /* exp(logvar), kept for backward */
    K->exp_fwd(n, logvar->data, var);
    const double s = (double)n + K->sum(n, logvar->data) - K->sumsq(n, mu->data) - K->sum(n, var);
    struct gen_tensor *out = gen_tensor_1d(g, 1);
    out->data[0] = (float)(-0.5 * s);
    struct gen_node *node =
        gen_record(g, GEN_OP_GAUSSIAN_KL, out, 2, (struct gen_tensor *[]){mu, logvar});
    if (node) node->saved = var;
    return out;
}

/* dKL/dmu = mu; dKL/dlogvar = 0.5 (exp(logvar) - 1). */
GEN_BACKWARD(gaussian_kl) {
    struct gen_tensor *mu = node->in[0], *lv = node->in[1];
    const int64_t n = gen_numel(mu);
    const float d = node->out->grad[0];
    if (mu->requires_grad) gen_grad_axpy(g, mu, d, mu->data);
    if (lv->requires_grad) {
        enum gen_grad_mode mode;
        float *dlv = gen_grad_dst(g, lv, &mode);
        gen_put_axpy(mode, n, 0.5f * d, node->saved, dlv);
        for (int64_t i = 0; i < n; i++) dlv[i] -= 0.5f * d;
    }
}

/* ---- embedding ---- */

/* `shape` is the output's full shape; its last dim is C, and idx holds one
 * row id per output row (numel / C of them). */
struct gen_tensor *gen_embedding(struct gen_ctx *g, struct gen_tensor *w, const int32_t *idx,
                                 int ndim, const int64_t *shape) {
    GEN_ASSERT(w->ndim == 2);
    const int64_t V = w->shape[0], C = w->shape[1];
    struct gen_tensor *out = gen_tensor(g, ndim, shape);
    GEN_ASSERT(shape[ndim - 1] == C);
    const int64_t rows = C ? gen_numel(out) / C : 0;
    for (int64_t r = 0; r < rows; r++) {
        GEN_ASSERT(idx[r] >= 0 && idx[r] < V);
        memcpy(out->data + r * C, w->data + (int64_t)idx[r] * C, (size_t)C * sizeof(float));
    }
    struct gen_node *n = gen_record(g, GEN_OP_EMBEDDING, out, 1, &w);
    if (n) n->index = idx;
    return out;
}

/* Scatter-add in row order, so repeated ids sum deterministically. */
GEN_BACKWARD(embedding) {
    struct gen_tensor *w = node->in[0];
    if (!w->requires_grad) return;
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = w->shape[1];
    const int64_t rows = C ? gen_numel(node->out) / C : 0;
    float *dw = gen_grad(g, w);
    const float *dy = node->out->grad;
    for (int64_t r = 0; r < rows; r++) K->axpy(C, 1.0f, dy + r * C, dw + (int64_t)node->index[r] * C);
}

/* ---- dropout ---- */

/* y = x m with m = 0 (probability p) or 1 / (1 - p); m kept for backward. */
struct gen_tensor *gen_dropout(struct gen_ctx *g, struct gen_tensor *x, float p, uint64_t seed,
                               uint64_t purpose, int64_t first) {
    GEN_ASSERT(p >= 0.0f && p < 1.0f);
    if (!g->training || p == 0.0f) return x;
    const int64_t n = gen_numel(x), rows = x->shape[0], per = n / rows;
    const float keep = 1.0f / (1.0f - p);
    float *mask = arena_floats(g, n);
    for (int64_t r = 0; r < rows; r++) {
        struct gen_rng rng;
        gen_rng_seed_keyed(&rng, seed, purpose, first + r);
        for (int64_t i = r * per; i < (r + 1) * per; i++)
            mask[i] = gen_rng_uniform(&rng) < p ? 0.0f : keep;
    }
    struct gen_tensor *out = gen_tensor(g, x->ndim, x->shape);
    gen_kernels()->mul(n, x->data, mask, out->data);
    struct gen_node *node = gen_record(g, GEN_OP_DROPOUT, out, 1, &x);
    if (node) node->saved = mask;
    return out;
}

GEN_BACKWARD(dropout) {
    struct gen_tensor *x = node->in[0];
    if (x->requires_grad) gen_grad_mul(g, x, node->out->grad, node->saved);
}
