/* ops_norm.c - layer norm, group norm (alone and fused with the SiLU that
 * follows it in a U-Net) and batch norm, forward and backward.
 *
 * Layer and group norm run on the kernel table; batch norm's per-channel
 * loops live here (one OpenMP task per channel, sums in double, so every
 * thread count gives the same numbers). */
#include <math.h>
#include <string.h>

#include "core/ops.h"
#include "gen/comm.h"

/* Where a backward writes the gradient of `t`: its grad buffer if it needs
 * one, else NULL. */
static float *grad_or_null(struct gen_ctx *g, struct gen_tensor *t) {
    return t && t->requires_grad ? gen_grad(g, t) : NULL;
}

static float *arena_floats(struct gen_ctx *g, int64_t n) {
    return gen_arena_alloc(&g->arena, (size_t)n * sizeof(float));
}

/* ---- layer norm ---------------------------------------------------------- */

/* gen_layernorm, and gen_layernorm_operand where `operand` (its output held
 * as bf16 where the table writes it so: layernorm_fwd_b16). */
static struct gen_tensor *layernorm(struct gen_ctx *g, struct gen_tensor *x,
                                    struct gen_tensor *gamma, struct gen_tensor *beta, float eps,
                                    int operand) {
    const int64_t C = x->shape[x->ndim - 1];
    const int64_t rows = C ? gen_numel(x) / C : 0;
    GEN_ASSERT(!gamma || gen_numel(gamma) == C);
    GEN_ASSERT(!beta || gen_numel(beta) == C);
    struct gen_tensor *y = gen_tensor(g, x->ndim, x->shape);
    float *mean = arena_floats(g, rows), *rstd = arena_floats(g, rows); /* (rows) each */
    const struct gen_kernels *K = gen_kernels();
    const float *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    y->bf16 = operand && K->layernorm_fwd_b16;
    if (y->bf16)
        K->layernorm_fwd_b16(rows, C, x->data, gm, bt, eps, (uint16_t *)(void *)y->data, mean,
                             rstd);
    else
        K->layernorm_fwd(rows, C, x->data, gm, bt, eps, y->data, mean, rstd);
    struct gen_node *node = gen_record(g, GEN_OP_LAYERNORM, y, 3, (struct gen_tensor *[]){x, gamma, beta});
    if (node) {
        node->saved = mean;
        node->saved2 = rstd;
    }
    return y;
}

struct gen_tensor *gen_layernorm(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *gamma,
                                 struct gen_tensor *beta, float eps) {
    return layernorm(g, x, gamma, beta, eps, 0);
}

struct gen_tensor *gen_layernorm_operand(struct gen_ctx *g, struct gen_tensor *x,
                                         struct gen_tensor *gamma, struct gen_tensor *beta,
                                         float eps) {
    return layernorm(g, x, gamma, beta, eps, 1);
}

GEN_BACKWARD(layernorm) {
    struct gen_tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const int64_t C = x->shape[x->ndim - 1];
    const int64_t rows = C ? gen_numel(x) / C : 0;
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst_or_null(g, x, &mode);
    gen_kernels()->layernorm_grad(rows, C, x->data, gamma ? gamma->data : NULL, node->saved,
                                  node->saved2, node->out->grad, dx, mode, grad_or_null(g, gamma),
                                  grad_or_null(g, beta));
}

/* ---- group norm ---------------------------------------------------------- */

/* Group norm (op GEN_OP_GROUPNORM) or group norm then SiLU (..._SILU, of
 * x + shift where a shift (N, C) is given: its fourth input). */
static struct gen_tensor *groupnorm_op(struct gen_ctx *g, enum gen_op op, struct gen_tensor *x,
                                       struct gen_tensor *shift, int64_t G,
                                       struct gen_tensor *gamma, struct gen_tensor *beta, float eps,
                                       int operand) {
    GEN_ASSERT(x->ndim >= 2);
    const int64_t N = x->shape[0], C = x->shape[1];
    const int64_t HW = N > 0 && C > 0 ? gen_numel(x) / (N * C) : 0;
    GEN_ASSERT(G >= 1 && C % G == 0);
    GEN_ASSERT(!gamma || gen_numel(gamma) == C);
    GEN_ASSERT(!beta || gen_numel(beta) == C);
    GEN_ASSERT(!shift || (op == GEN_OP_GROUPNORM_SILU && gen_numel(shift) == N * C));
    struct gen_tensor *y = gen_tensor(g, x->ndim, x->shape);
    float *mean = arena_floats(g, N * G), *rstd = arena_floats(g, N * G); /* (N, G) each */
    const struct gen_kernels *K = gen_kernels();
    const float *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    y->bf16 =
        operand && op == GEN_OP_GROUPNORM_SILU && K->groupnorm_silu_fwd_b16 && gen_operand_bf16(K);
    if (y->bf16)
        K->groupnorm_silu_fwd_b16(N, C, HW, G, x->data, shift ? shift->data : NULL, gm, bt, eps,
                                  (uint16_t *)(void *)y->data, mean, rstd);
    else if (op == GEN_OP_GROUPNORM_SILU)
        K->groupnorm_silu_fwd(N, C, HW, G, x->data, shift ? shift->data : NULL, gm, bt, eps,
                              y->data, mean, rstd);
    else
        K->groupnorm_fwd(N, C, HW, G, x->data, gm, bt, eps, y->data, mean, rstd);
    struct gen_node *node =
        gen_record(g, op, y, shift ? 4 : 3, (struct gen_tensor *[]){x, gamma, beta, shift});
    if (node) {
        node->i[0] = G;
        node->saved = mean;
        node->saved2 = rstd;
    }
    return y;
}

struct gen_tensor *gen_groupnorm(struct gen_ctx *g, struct gen_tensor *x, int64_t G,
                                 struct gen_tensor *gamma, struct gen_tensor *beta, float eps) {
    return groupnorm_op(g, GEN_OP_GROUPNORM, x, NULL, G, gamma, beta, eps, 0);
}

struct gen_tensor *gen_groupnorm_silu(struct gen_ctx *g, struct gen_tensor *x, int64_t G,
                                      struct gen_tensor *gamma, struct gen_tensor *beta,
                                      float eps) {
    return groupnorm_op(g, GEN_OP_GROUPNORM_SILU, x, NULL, G, gamma, beta, eps, 0);
}

struct gen_tensor *gen_groupnorm_silu_shift(struct gen_ctx *g, struct gen_tensor *x,
                                            struct gen_tensor *shift, int64_t G,
                                            struct gen_tensor *gamma, struct gen_tensor *beta,
                                            float eps) {
    return groupnorm_op(g, GEN_OP_GROUPNORM_SILU, x, shift, G, gamma, beta, eps, 0);
}

struct gen_tensor *gen_groupnorm_silu_operand(struct gen_ctx *g, struct gen_tensor *x,
                                              struct gen_tensor *shift, int64_t G,
                                              struct gen_tensor *gamma, struct gen_tensor *beta,
                                              float eps) {
    return groupnorm_op(g, GEN_OP_GROUPNORM_SILU, x, shift, G, gamma, beta, eps, 1);
}

/* Both backwards: the kernel's two passes over x and dy. Between them the
 * fused one keeps dy silu'(h) in dx when it overwrites dx, else in
 * scratch; a shift's gradient comes from the kernel's sums into scratch
 * and is added to the shift's. */
static void groupnorm_backward(struct gen_ctx *g, struct gen_node *node, int silu) {
    struct gen_tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    struct gen_tensor *shift = node->n_in > 3 ? node->in[3] : NULL;
    const int64_t N = x->shape[0], C = x->shape[1], n = gen_numel(x);
    const int64_t HW = N > 0 && C > 0 ? n / (N * C) : 0;
    const float *gm = gamma ? gamma->data : NULL;
    float *dg = grad_or_null(g, gamma), *db = grad_or_null(g, beta);
    const int ds = shift && shift->requires_grad;
    double *work = dg || db || ds ? gen_scratch(g, (size_t)((ds ? 4 : 2) * N * C) * sizeof(double))
                                  : NULL; /* (N, C, 2) per-channel sums, twice with a shift */
    const float *dy = node->out->grad;
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst_over_or_null(g, x, node->out, &mode);
    const struct gen_kernels *K = gen_kernels();
    if (silu) {
        float *dh = mode == GEN_GRAD_SET && dx ? NULL : gen_scratch_floats(g, n);
        float *dshift = ds ? gen_scratch_floats(g, N * C) : NULL;
        K->groupnorm_silu_grad(N, C, HW, node->i[0], x->data, shift ? shift->data : NULL, gm,
                               beta ? beta->data : NULL, node->saved, node->saved2, dy, dh, dx,
                               mode, dg, db, dshift, work);
        if (dshift) gen_grad_axpy(g, shift, 1.0f, dshift);
    } else {
        K->groupnorm_grad(N, C, HW, node->i[0], x->data, gm, node->saved, node->saved2, dy, dx,
                          mode, dg, db, work);
    }
}

GEN_BACKWARD(groupnorm) { groupnorm_backward(g, node, 0); }
GEN_BACKWARD(groupnorm_silu) { groupnorm_backward(g, node, 1); }

/* ---- batch norm ---------------------------------------------------------- */

/* x viewed as (N, C, HW); HW = 1 for (N, C). Element (n, c, p) sits at
 * (n C + c) HW + p. */
struct bn_dims {
    int64_t N, C, HW;
};

static struct bn_dims bn_dims(const struct gen_tensor *x) {
    GEN_ASSERT(x->ndim == 2 || x->ndim == 4);
    struct bn_dims d = {x->shape[0], x->shape[1], 1};
    if (x->ndim == 4) d.HW = x->shape[2] * x->shape[3];
    return d;
}

/* Channel c of x: its runs (struct gen_kernels' runs_*). */
#define BN_RUNS(d, x, c) (d).N, (d).HW, (d).C * (d).HW, (x) + (c) * (d).HW

/* Mean and biased variance of channel c (two passes, sums in double). */
static void bn_stats(const struct gen_kernels *K, struct bn_dims d, const float *x, int64_t c,
                     double *mean, double *var) {
    const double M = (double)(d.N * d.HW), m = K->runs_sum(BN_RUNS(d, x, c)) / M;
    *mean = m;
    *var = K->runs_sqdev(BN_RUNS(d, x, c), (float)m) / M;
}

/* Sync batch norm: the mean and biased variance of every channel over the
 * batch of all ranks (two passes, as bn_stats, each summed over the
 * ranks); returns the global count of values per channel. */
static int64_t bn_stats_global(struct gen_ctx *g, struct bn_dims d, const float *x, double *mean,
                               double *var) {
    const struct gen_kernels *K = gen_kernels();
    double *s = gen_scratch(g, (size_t)(d.C + 1) * sizeof *s); /* (C) sums, count */
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < d.C; c++) s[c] = K->runs_sum(BN_RUNS(d, x, c));
    s[d.C] = (double)(d.N * d.HW);
    gen_comm_allreduce_f64(s, d.C + 1);
    const double M = s[d.C];
    for (int64_t c = 0; c < d.C; c++) mean[c] = s[c] / M;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < d.C; c++) var[c] = K->runs_sqdev(BN_RUNS(d, x, c), (float)mean[c]);
    gen_comm_allreduce_f64(var, d.C);
    for (int64_t c = 0; c < d.C; c++) var[c] /= M;
    return (int64_t)M;
}

struct gen_tensor *gen_batchnorm(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *gamma,
                                 struct gen_tensor *beta, struct gen_tensor *running_mean,
                                 struct gen_tensor *running_var, float momentum, float eps) {
    const struct bn_dims d = bn_dims(x);
    const int training = g->training, sync = training && g->sync_bn;
    double *gmean = NULL, *gvar = NULL; /* sync: (C) each, over every rank */
    int64_t M = d.N * d.HW;
    if (sync) {
        gmean = gen_scratch(g, (size_t)(2 * d.C) * sizeof *gmean);
        gvar = gmean + d.C;
        M = bn_stats_global(g, d, x->data, gmean, gvar);
    }
    GEN_ASSERT(!gamma || gen_numel(gamma) == d.C);
    GEN_ASSERT(!beta || gen_numel(beta) == d.C);
    GEN_ASSERT(!running_mean || gen_numel(running_mean) == d.C);
    GEN_ASSERT(!running_var || gen_numel(running_var) == d.C);
    GEN_ASSERT(training || (running_mean && running_var)); /* eval needs running stats */
    /* PyTorch refuses one value per channel in training: the unbiased
     * variance would divide by zero. */
    GEN_ASSERT(!training || M > 1);

    struct gen_tensor *y = gen_tensor(g, x->ndim, x->shape);
    float *mean = arena_floats(g, d.C), *rstd = arena_floats(g, d.C); /* (C) each */
    const float *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    float *rm = running_mean ? running_mean->data : NULL;
    float *rv = running_var ? running_var->data : NULL;
    const struct gen_kernels *K = gen_kernels();
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < d.C; c++) {
        if (training) {
            double m, v;
            if (sync) m = gmean[c], v = gvar[c];
            else bn_stats(K, d, x->data, c, &m, &v);
            mean[c] = (float)m;
            rstd[c] = (float)(1.0 / sqrt(v + (double)eps));
            if (rm) rm[c] = (1.0f - momentum) * rm[c] + momentum * (float)m;
            if (rv) rv[c] = (1.0f - momentum) * rv[c] + momentum * (float)(v * (double)M / (double)(M - 1));
        } else {
            mean[c] = rm[c];
            rstd[c] = (float)(1.0 / sqrt((double)rv[c] + (double)eps));
        }
        /* y = x a + b with a = rstd gamma, b = beta - mean a */
        const float a = rstd[c] * (gm ? gm[c] : 1.0f);
        const float b = (bt ? bt[c] : 0.0f) - mean[c] * a;
        K->runs_affine(BN_RUNS(d, x->data, c), a, b, y->data + c * d.HW);
    }
    struct gen_node *node = gen_record(g, GEN_OP_BATCHNORM, y, 3, (struct gen_tensor *[]){x, gamma, beta});
    if (node) {
        node->i[0] = training;
        node->i[1] = sync ? M : 0;
        node->saved = mean;
        node->saved2 = rstd;
    }
    gen_scratch_release(g);
    return y;
}

/* xhat = (x - mean) rstd, dxhat = dy gamma. Training (batch statistics):
 *   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
 * Eval (constants): dx = rstd dxhat. Both: dgamma = sum dy xhat, dbeta =
 * sum dy. Sync batch norm (node->i[1] = M values per channel over every
 * rank): the two means are over every rank's share, while dgamma and
 * dbeta stay this rank's own sums (the trainer sums gradients over the
 * ranks). */
GEN_BACKWARD(batchnorm) {
    struct gen_tensor *x = node->in[0], *gamma = node->in[1], *beta = node->in[2];
    const struct bn_dims d = bn_dims(x);
    const int training = (int)node->i[0], sync = node->i[1] > 0;
    const double M = sync ? (double)node->i[1] : (double)(d.N * d.HW);
    const float *mean = node->saved, *rstd = node->saved2, *dy = node->out->grad;
    const float *gm = gamma ? gamma->data : NULL;
    float *dg = grad_or_null(g, gamma), *db = grad_or_null(g, beta);
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst_over_or_null(g, x, node->out, &mode);
    /* (C, 2) sum dy and sum dy xhat: this rank's, then (sync) every rank's */
    double *s = gen_scratch(g, (size_t)(4 * d.C) * sizeof *s), *all = sync ? s + 2 * d.C : s;
    const struct gen_kernels *K = gen_kernels();
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < d.C; c++)
        K->runs_grad_sums(BN_RUNS(d, x->data, c), dy + c * d.HW, mean[c], rstd[c], s + 2 * c);
    if (sync) {
        memcpy(all, s, (size_t)(2 * d.C) * sizeof *s);
        gen_comm_allreduce_f64(all, 2 * d.C);
    }
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < d.C; c++) {
        const float gc = gm ? gm[c] : 1.0f;
        if (dg) dg[c] += (float)s[2 * c + 1];
        if (db) db[c] += (float)s[2 * c];
        if (!dx) continue;
        const float k1 = (float)(training ? all[2 * c] * gc / M : 0.0);     /* mean(dxhat)      */
        const float k2 = (float)(training ? all[2 * c + 1] * gc / M : 0.0); /* mean(dxhat xhat) */
        K->runs_grad_dx(BN_RUNS(d, x->data, c), dy + c * d.HW, mean[c], rstd[c], gc, k1, k2,
                        dx + c * d.HW, mode);
    }
}
