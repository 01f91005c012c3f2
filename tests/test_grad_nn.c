/* test_grad_nn.c - gradient and forward checks of the normalisation,
 * convolution and attention ops (src/core/ops_norm.c, ops_conv.c,
 * ops_attn.c).
 *
 * Gradients: tu_gradcheck (central differences of sum(out * r), forward in
 * float, L accumulated in double). With eps = 1e-2 the truncation error is
 * O(eps^2 f''') and the rounding error about 1e-7 |L| / eps. The usual
 * default is rtol 1e-2, atol 1e-3; every op here passes at a tenth of
 * that, so nonlinear ops (layer/group/batch norm in training, attention)
 * are held to rtol 3e-3, atol 3e-4 (they pass at 1e-3 / 1e-4), and ops
 * linear in every input (conv, conv-transpose, upsample, eval batch norm:
 * no truncation error, rounding only) to rtol 1e-3, atol 1e-4 (they pass
 * at 5e-4 / 5e-5).
 * Forward: against naive loops in double on odd shapes. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#include "gen/kernels.h"

/* ---- helpers ------------------------------------------------------------- */

static struct gen_tensor *leaf(struct gen_ctx *g, int ndim, const int64_t *shape, uint64_t seed,
                               float lo, float hi) {
    struct gen_tensor *t = gen_tensor(g, ndim, shape);
    tu_fill_uniform(t->data, gen_numel(t), lo, hi, seed);
    return t;
}

#define GC(name, fn, arg, n, spec, rtol, atol) \
    assert_int_equal(tu_gradcheck((name), (fn), (arg), (n), (spec), 1e-2f, (rtol), (atol), 0, 1234), 0)

/* Default tolerances (nonlinear ops) and those of linear ops. */
#define RTOL 3e-3
#define ATOL 3e-4
#define RTOL_LIN 1e-3
#define ATOL_LIN 1e-4

/* ---- layer norm ---------------------------------------------------------- */

static struct gen_tensor *f_layernorm(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const int affine = *(const int *)arg;
    return gen_layernorm(g, in[0], affine ? in[1] : NULL, affine ? in[2] : NULL, 1e-5f);
}

/* tolerance: RTOL / ATOL */
static void test_grad_layernorm(void **state) {
    (void)state;
    const struct tu_input spec[3] = {
        {3, {2, 3, 7}, -2, 2, 0}, {1, {7}, 0.5f, 1.5f, 0}, {1, {7}, -1, 1, 0}};
    int affine = 1;
    GC("layernorm affine", f_layernorm, &affine, 3, spec, RTOL, ATOL);
    affine = 0;
    GC("layernorm plain", f_layernorm, &affine, 1, spec, RTOL, ATOL);
}

/* ---- group norm ---------------------------------------------------------- */

struct gn_arg {
    int64_t G;
    int affine;
};

static struct gen_tensor *f_groupnorm(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct gn_arg *a = arg;
    return gen_groupnorm(g, in[0], a->G, a->affine ? in[1] : NULL, a->affine ? in[2] : NULL, 1e-5f);
}

static struct gen_tensor *f_groupnorm_silu(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct gn_arg *a = arg;
    return gen_groupnorm_silu(g, in[0], a->G, a->affine ? in[1] : NULL, a->affine ? in[2] : NULL,
                              1e-5f);
}

/* Group norm alone and fused with SiLU. tolerance: RTOL / ATOL */
static void test_grad_groupnorm(void **state) {
    (void)state;
    const int64_t Cs[] = {4, 6, 8};
    for (int silu = 0; silu < 2; silu++)
        for (int ci = 0; ci < 3; ci++) {
            const int64_t C = Cs[ci];
            const struct tu_input spec[3] = {
                {4, {2, C, 3, 2}, -2, 2, 0}, {1, {C}, 0.5f, 1.5f, 0}, {1, {C}, -1, 1, 0}};
            tu_fn f = silu ? f_groupnorm_silu : f_groupnorm;
            for (int64_t G = 1; G <= 2; G++) {
                struct gn_arg a = {G, 1};
                GC(silu ? "groupnorm_silu affine" : "groupnorm affine", f, &a, 3, spec, RTOL, ATOL);
                a.affine = 0;
                GC(silu ? "groupnorm_silu plain" : "groupnorm plain", f, &a, 1, spec, RTOL, ATOL);
            }
        }
}

static struct gen_tensor *f_groupnorm_silu_shift(struct gen_ctx *g, struct gen_tensor **in,
                                                 void *arg) {
    const struct gn_arg *a = arg;
    return gen_groupnorm_silu_shift(g, in[0], in[1], a->G, a->affine ? in[2] : NULL,
                                    a->affine ? in[3] : NULL, 1e-5f);
}

/* Group norm + SiLU of x + shift (shift (N, C)): the gradients of x, the
 * shift, gamma and beta, on every kernel table. tolerance: RTOL / ATOL */
static void test_grad_groupnorm_silu_shift(void **state) {
    (void)state;
    static const char *isas[] = {"scalar", "avx2", "avx512"};
    for (int k = 0; k < 3; k++) {
        if (!gen_kernels_select(isas[k])) continue;
        for (int64_t C = 4; C <= 8; C += 4) {
            const struct tu_input spec[4] = {{4, {2, C, 3, 5}, -2, 2, 0},
                                             {2, {2, C}, -1, 1, 0},
                                             {1, {C}, 0.5f, 1.5f, 0},
                                             {1, {C}, -1, 1, 0}};
            for (int64_t G = 1; G <= 2; G++) {
                struct gn_arg a = {G, 1};
                GC("groupnorm_silu_shift affine", f_groupnorm_silu_shift, &a, 4, spec, RTOL, ATOL);
                a.affine = 0;
                GC("groupnorm_silu_shift plain", f_groupnorm_silu_shift, &a, 2, spec, RTOL, ATOL);
            }
        }
    }
    gen_kernels_select(NULL);
}

/* The fused op gives the bits of gen_silu(gen_groupnorm(...)), forward and
 * backward, with x also used by a second op (its gradient then added to),
 * under every kernel table. */
static void test_groupnorm_silu_matches_chain(void **state) {
    (void)state;
    static const char *isas[] = {"scalar", "avx2", "avx512"};
    const int64_t N = 3, C = 8, H = 5, W = 7, G = 4, n = N * C * H * W;
    float *dy = malloc((size_t)n * sizeof(float));
    tu_fill_uniform(dy, n, -1, 1, 9);
    for (int k = 0; k < 3; k++) {
        if (!gen_kernels_select(isas[k])) continue;
        float *got[2][3]; /* fused, chain: y, dx, dgamma */
        for (int fused = 0; fused < 2; fused++) {
            struct gen_ctx g;
            gen_ctx_init(&g);
            struct gen_tensor *x = leaf(&g, 4, (int64_t[]){N, C, H, W}, 1, -3, 2);
            struct gen_tensor *gm = leaf(&g, 1, (int64_t[]){C}, 2, 0.5f, 1.5f);
            struct gen_tensor *bt = leaf(&g, 1, (int64_t[]){C}, 3, -1, 1);
            x->requires_grad = gm->requires_grad = bt->requires_grad = 1;
            struct gen_tensor *y = fused ? gen_groupnorm_silu(&g, x, G, gm, bt, 1e-5f)
                                         : gen_silu(&g, gen_groupnorm(&g, x, G, gm, bt, 1e-5f));
            gen_backward_seed(&g, gen_add(&g, y, gen_scale(&g, x, 0.5f)), dy);
            const float *src[3] = {y->data, x->grad, gm->grad};
            const int64_t len[3] = {n, n, C};
            for (int i = 0; i < 3; i++) {
                got[fused][i] = malloc((size_t)len[i] * sizeof(float));
                memcpy(got[fused][i], src[i], (size_t)len[i] * sizeof(float));
            }
            gen_ctx_free(&g);
        }
        assert_memory_equal(got[1][0], got[0][0], (size_t)n * sizeof(float));
        assert_memory_equal(got[1][1], got[0][1], (size_t)n * sizeof(float));
        assert_memory_equal(got[1][2], got[0][2], (size_t)C * sizeof(float));
        for (int f = 0; f < 2; f++)
            for (int i = 0; i < 3; i++) free(got[f][i]);
    }
    gen_kernels_select(NULL);
    free(dy);
}

static void test_groupnorm_forward(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    const int64_t N = 3, C = 6, H = 3, W = 5, G = 2, cg = C / G;
    struct gen_tensor *x = leaf(&g, 4, (int64_t[]){N, C, H, W}, 1, -3, 2);
    struct gen_tensor *gm = leaf(&g, 1, (int64_t[]){C}, 2, 0.5f, 1.5f);
    struct gen_tensor *bt = leaf(&g, 1, (int64_t[]){C}, 3, -1, 1);
    struct gen_tensor *y = gen_groupnorm(&g, x, G, gm, bt, 1e-5f);
    float *ref = malloc((size_t)gen_numel(x) * sizeof(float));
    for (int64_t n = 0; n < N; n++)
        for (int64_t gi = 0; gi < G; gi++) {
            const float *xs = x->data + (n * C + gi * cg) * H * W;
            const int64_t M = cg * H * W;
            double m = 0, v = 0;
            for (int64_t i = 0; i < M; i++) m += xs[i];
            m /= (double)M;
            for (int64_t i = 0; i < M; i++) v += (xs[i] - m) * (xs[i] - m);
            v /= (double)M;
            for (int64_t i = 0; i < M; i++) {
                const int64_t c = gi * cg + i / (H * W);
                ref[(n * C + gi * cg) * H * W + i] =
                    (float)((xs[i] - m) / sqrt(v + 1e-5) * gm->data[c] + bt->data[c]);
            }
        }
    TU_ASSERT_CLOSE("groupnorm fwd", y->data, ref, gen_numel(x), 1e-5, 1e-5);
    free(ref);
    gen_ctx_free(&g);
}

/* ---- batch norm ---------------------------------------------------------- */

struct bn_arg {
    int training, affine;
};

/* in: x, gamma, beta, running_mean, running_var (the last two no_grad). */
static struct gen_tensor *f_batchnorm(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct bn_arg *a = arg;
    g->training = a->training;
    return gen_batchnorm(g, in[0], a->affine ? in[1] : NULL, a->affine ? in[2] : NULL, in[3],
                         in[4], 0.1f, 1e-5f);
}

/* tolerance: training RTOL / ATOL; eval (linear in x, gamma, beta)
 * RTOL_LIN / ATOL_LIN */
static void test_grad_batchnorm(void **state) {
    (void)state;
    const struct tu_input spec1[5] = {{2, {5, 3}, -2, 2, 0},
                                      {1, {3}, 0.5f, 1.5f, 0},
                                      {1, {3}, -1, 1, 0},
                                      {1, {3}, -0.5f, 0.5f, 1},
                                      {1, {3}, 0.5f, 2.0f, 1}};
    const struct tu_input spec2[5] = {{4, {3, 4, 2, 3}, -2, 2, 0},
                                      {1, {4}, 0.5f, 1.5f, 0},
                                      {1, {4}, -1, 1, 0},
                                      {1, {4}, -0.5f, 0.5f, 1},
                                      {1, {4}, 0.5f, 2.0f, 1}};
    const struct tu_input *specs[2] = {spec1, spec2};
    for (int s = 0; s < 2; s++) {
        struct bn_arg a = {1, 1};
        GC("batchnorm train affine", f_batchnorm, &a, 5, specs[s], RTOL, ATOL);
        a.affine = 0;
        GC("batchnorm train plain", f_batchnorm, &a, 5, specs[s], RTOL, ATOL);
        a = (struct bn_arg){0, 1};
        GC("batchnorm eval affine", f_batchnorm, &a, 5, specs[s], RTOL_LIN, ATOL_LIN);
        a.affine = 0;
        GC("batchnorm eval plain", f_batchnorm, &a, 5, specs[s], RTOL_LIN, ATOL_LIN);
    }
}

/* Running statistics follow PyTorch: biased variance normalises, the
 * unbiased one enters running_var; eval mode uses the running stats. */
static void test_batchnorm_running_stats(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    const int64_t N = 3, C = 5, H = 2, W = 3, HW = H * W, M = N * HW;
    const float mom = 0.1f, eps = 1e-5f;
    struct gen_tensor *x = leaf(&g, 4, (int64_t[]){N, C, H, W}, 11, -1, 3);
    struct gen_tensor *gm = leaf(&g, 1, (int64_t[]){C}, 12, 0.5f, 1.5f);
    struct gen_tensor *bt = leaf(&g, 1, (int64_t[]){C}, 13, -1, 1);
    struct gen_tensor *rm = leaf(&g, 1, (int64_t[]){C}, 14, -0.5f, 0.5f);
    struct gen_tensor *rv = leaf(&g, 1, (int64_t[]){C}, 15, 0.5f, 2.0f);
    float rm0[5], rv0[5], want_rm[5], want_rv[5];
    memcpy(rm0, rm->data, sizeof rm0);
    memcpy(rv0, rv->data, sizeof rv0);
    float *ref = malloc((size_t)gen_numel(x) * sizeof(float));
    for (int64_t c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < HW; p++) m += x->data[(n * C + c) * HW + p];
        m /= (double)M;
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < HW; p++) {
                const double d = x->data[(n * C + c) * HW + p] - m;
                v += d * d;
            }
        const double var_b = v / (double)M, var_u = v / (double)(M - 1);
        want_rm[c] = (float)((1 - mom) * rm0[c] + mom * m);
        want_rv[c] = (float)((1 - mom) * rv0[c] + mom * var_u);
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < HW; p++) {
                const int64_t i = (n * C + c) * HW + p;
                ref[i] = (float)((x->data[i] - m) / sqrt(var_b + eps) * gm->data[c] + bt->data[c]);
            }
    }
    g.training = 1;
    struct gen_tensor *y = gen_batchnorm(&g, x, gm, bt, rm, rv, mom, eps);
    TU_ASSERT_CLOSE("bn train fwd", y->data, ref, gen_numel(x), 1e-5, 1e-5);
    TU_ASSERT_CLOSE("bn running mean", rm->data, want_rm, C, 1e-6, 1e-6);
    TU_ASSERT_CLOSE("bn running var", rv->data, want_rv, C, 1e-6, 1e-6);

    /* Eval: running stats as constants, and left alone. */
    memcpy(want_rm, rm->data, sizeof want_rm);
    memcpy(want_rv, rv->data, sizeof want_rv);
    g.training = 0;
    struct gen_tensor *ye = gen_batchnorm(&g, x, gm, bt, rm, rv, mom, eps);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++) {
                const int64_t i = (n * C + c) * HW + p;
                ref[i] = (float)((x->data[i] - (double)want_rm[c]) / sqrt((double)want_rv[c] + eps) *
                                     gm->data[c] + bt->data[c]);
            }
    TU_ASSERT_CLOSE("bn eval fwd", ye->data, ref, gen_numel(x), 1e-5, 1e-5);
    assert_memory_equal(rm->data, want_rm, sizeof want_rm);
    assert_memory_equal(rv->data, want_rv, sizeof want_rv);
    /* ...and differs from training mode, whose output has zero mean per channel. */
    double diff = 0;
    for (int64_t i = 0; i < gen_numel(x); i++) diff += fabs((double)ye->data[i] - y->data[i]);
    assert_true(diff > 1e-2);

    /* Training without running stats (track_running_stats=False). */
    g.training = 1;
    struct gen_tensor *y2 = gen_batchnorm(&g, x, gm, bt, NULL, NULL, mom, eps);
    assert_memory_equal(y2->data, y->data, (size_t)gen_numel(x) * sizeof(float));
    free(ref);
    gen_ctx_free(&g);
}

/* ---- conv2d -------------------------------------------------------------- */

struct conv_arg {
    int stride, pad, bias;
};

static struct gen_tensor *f_conv2d(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct conv_arg *a = arg;
    return gen_conv2d(g, in[0], in[1], a->bias ? in[2] : NULL, a->stride, a->pad);
}

/* tolerance: RTOL_LIN / ATOL_LIN (linear in x, w and b) */
static void test_grad_conv2d(void **state) {
    (void)state;
    const struct {
        int64_t N, Cin, H, W, Cout, K;
        int stride, pad;
    } cases[] = {
        {2, 3, 4, 5, 4, 1, 1, 0}, {1, 3, 4, 5, 4, 1, 1, 0}, /* 1x1: plain GEMM     */
        {2, 3, 5, 4, 4, 3, 1, 1}, {1, 2, 4, 4, 3, 3, 1, 1}, /* 3x3 pad 1           */
        {2, 2, 6, 6, 3, 4, 2, 1}, {1, 2, 6, 4, 2, 4, 2, 1}, /* 4x4 stride 2 pad 1  */
        {2, 3, 5, 7, 2, 3, 2, 1}, {3, 2, 6, 5, 3, 3, 2, 1}, /* 3x3 stride 2 pad 1  */
        {2, 2, 4, 4, 3, 1, 2, 0},                           /* 1x1 stride 2        */
        /* 1x1 on images of 192 positions or more: AVX-512 reads their rows
         * in place (a tail of 4 columns; none, 9 images in chunks) */
        {2, 3, 14, 14, 4, 1, 1, 0}, {9, 2, 16, 12, 3, 1, 1, 0},
        /* more than 8 images: several per chunk (dx through the flipped
         * kernel under AVX-512 writes a chunk's block, then scatters it) */
        {17, 2, 3, 3, 2, 3, 1, 1}, {10, 2, 4, 4, 2, 5, 1, 2}, {9, 1, 4, 3, 2, 3, 1, 0},
        /* into one channel (the U-Net's last layer), 72 taps: AVX-512's
         * one-row micro-kernel and weight-gradient block */
        {2, 8, 14, 14, 1, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tu_input spec[3] = {
            {4, {cases[i].N, cases[i].Cin, cases[i].H, cases[i].W}, -1, 1, 0},
            {4, {cases[i].Cout, cases[i].Cin, cases[i].K, cases[i].K}, -1, 1, 0},
            {1, {cases[i].Cout}, -1, 1, 0}};
        for (int bias = 0; bias <= 1; bias++) {
            struct conv_arg a = {cases[i].stride, cases[i].pad, bias};
            GC("conv2d", f_conv2d, &a, bias ? 3 : 2, spec, RTOL_LIN, ATOL_LIN);
        }
    }
}

/* y[n,co,oh,ow] = b[co] + sum x[n,ci,oh s - p + kh, ow s - p + kw] w[co,ci,kh,kw] */
static void naive_conv2d(const struct gen_tensor *x, const struct gen_tensor *w, const float *b,
                         int64_t s, int64_t p, float *y) {
    const int64_t N = x->shape[0], Cin = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Cout = w->shape[0], KH = w->shape[2], KW = w->shape[3];
    const int64_t OH = (H + 2 * p - KH) / s + 1, OW = (W + 2 * p - KW) / s + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t co = 0; co < Cout; co++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = b ? b[co] : 0;
                    for (int64_t ci = 0; ci < Cin; ci++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                const int64_t ih = oh * s - p + kh, iw = ow * s - p + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc += (double)x->data[((n * Cin + ci) * H + ih) * W + iw] *
                                       w->data[((co * Cin + ci) * KH + kh) * KW + kw];
                            }
                    y[((n * Cout + co) * OH + oh) * OW + ow] = (float)acc;
                }
}

/* A convolution's shapes: x (N, Cin, H, W), w (Cout, Cin, KH, KW) (the
 * transposed one's (Cin, Cout, KH, KW)), stride s, pad p. */
struct conv_case {
    int64_t N, Cin, H, W, Cout, KH, KW, s, p;
};

static void test_conv2d_forward(void **state) {
    (void)state;
    const struct conv_case cases[] = {
        {3, 3, 7, 5, 5, 3, 3, 2, 1}, {1, 3, 7, 5, 5, 3, 3, 2, 1}, {2, 5, 9, 6, 7, 3, 2, 1, 1},
        {3, 4, 5, 5, 3, 1, 1, 1, 0}, {1, 4, 5, 3, 6, 1, 1, 1, 0}, {2, 3, 11, 9, 4, 4, 4, 2, 1},
        {2, 1, 6, 7, 2, 5, 3, 3, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gen_ctx g;
        gen_ctx_init(&g);
        struct gen_tensor *x =
            leaf(&g, 4, (int64_t[]){cases[i].N, cases[i].Cin, cases[i].H, cases[i].W}, 21 + i, -1, 1);
        struct gen_tensor *w = leaf(
            &g, 4, (int64_t[]){cases[i].Cout, cases[i].Cin, cases[i].KH, cases[i].KW}, 31 + i, -1, 1);
        struct gen_tensor *b = leaf(&g, 1, (int64_t[]){cases[i].Cout}, 41 + i, -1, 1);
        for (int bias = 0; bias <= 1; bias++) {
            struct gen_tensor *y = gen_conv2d(&g, x, w, bias ? b : NULL, (int)cases[i].s, (int)cases[i].p);
            float *ref = malloc((size_t)gen_numel(y) * sizeof(float));
            naive_conv2d(x, w, bias ? b->data : NULL, cases[i].s, cases[i].p, ref);
            assert_int_equal(y->shape[2], (cases[i].H + 2 * cases[i].p - cases[i].KH) / cases[i].s + 1);
            TU_ASSERT_CLOSE("conv2d fwd", y->data, ref, gen_numel(y), 1e-5, 1e-5);
            free(ref);
        }
        gen_ctx_free(&g);
    }
}

/* dx of x feeding two strided convolutions (the second adds to the first's)
 * under the AVX-512 table against the scalar table's column matrix and
 * col2im: odd channels and sizes, one image and several chunks of several,
 * pads 0 to 2, kernels the stride divides or not. (A phase-by-phase one
 * in ops_conv.c, 272b9c9, measured slower there and was reverted; the
 * AVX2 table's conv_dx works by phases, held to the scalar table in
 * test_conv_grads_avx2.) Sums may run in another order: fp32 rounding. */
static void test_conv2d_dx_phases(void **state) {
    (void)state;
    const struct conv_case cases[] = {
        {1, 3, 7, 9, 5, 4, 4, 2, 1},   {3, 5, 14, 14, 17, 4, 4, 2, 1}, {1, 7, 9, 7, 33, 3, 3, 2, 1},
        {2, 3, 11, 9, 19, 4, 4, 2, 1}, {17, 3, 6, 5, 5, 4, 4, 2, 1},   {2, 5, 10, 8, 9, 3, 5, 3, 2},
        {3, 1, 8, 8, 3, 1, 1, 2, 0},   {2, 3, 9, 10, 21, 3, 3, 2, 0},  {10, 2, 7, 7, 65, 4, 4, 2, 1},
        /* 24 channels and more: the channels-last conv_dx */
        {3, 32, 14, 14, 16, 4, 4, 2, 1}, {2, 25, 9, 11, 13, 3, 3, 2, 1},
    };
    const struct gen_kernels *best = gen_kernels_for("avx512");
    TU_NEED(best && best->conv_gemm, "no AVX-512 table with its own convolutions on this CPU");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t nx = cases[i].N * cases[i].Cin * cases[i].H * cases[i].W;
        float *got[2];
        for (int scalar = 0; scalar < 2; scalar++) {
            assert_int_equal(gen_kernels_select(scalar ? "scalar" : "avx512"), 1);
            struct gen_ctx g;
            gen_ctx_init(&g);
            struct gen_tensor *x = leaf(
                &g, 4, (int64_t[]){cases[i].N, cases[i].Cin, cases[i].H, cases[i].W}, 51 + i, -1, 1);
            const int64_t wshape[4] = {cases[i].Cout, cases[i].Cin, cases[i].KH, cases[i].KW};
            struct gen_tensor *w1 = leaf(&g, 4, wshape, 61 + i, -1, 1);
            struct gen_tensor *w2 = leaf(&g, 4, wshape, 71 + i, -1, 1);
            x->requires_grad = 1;
            struct gen_tensor *y =
                gen_add(&g, gen_conv2d(&g, x, w1, NULL, (int)cases[i].s, (int)cases[i].p),
                        gen_conv2d(&g, x, w2, NULL, (int)cases[i].s, (int)cases[i].p));
            float *dy = malloc((size_t)gen_numel(y) * sizeof(float));
            tu_fill_uniform(dy, gen_numel(y), -1, 1, 81 + i);
            gen_backward_seed(&g, y, dy);
            got[scalar] = malloc((size_t)nx * sizeof(float));
            memcpy(got[scalar], x->grad, (size_t)nx * sizeof(float));
            free(dy);
            gen_ctx_free(&g);
        }
        /* 1e-4: the 32-channel 4 x 4 one's by F(4 x 4, 2 x 2) (winograd_s2.h) */
        TU_ASSERT_CLOSE("conv2d dx phases", got[0], got[1], nx, 1e-5, 1e-4);
        free(got[0]), free(got[1]);
    }
    gen_kernels_select(NULL);
}

/* ---- conv_transpose2d ---------------------------------------------------- */

static struct gen_tensor *f_convt(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct conv_arg *a = arg;
    return gen_conv_transpose2d(g, in[0], in[1], a->bias ? in[2] : NULL, a->stride, a->pad);
}

/* tolerance: RTOL_LIN / ATOL_LIN */
static void test_grad_conv_transpose2d(void **state) {
    (void)state;
    const struct {
        int64_t N, Cin, H, W, Cout, K;
        int stride, pad;
    } cases[] = {
        {2, 3, 3, 4, 2, 4, 2, 1}, {1, 2, 3, 3, 3, 4, 2, 1}, /* 4x4 stride 2 pad 1 */
        {2, 2, 3, 3, 2, 3, 1, 1},                           /* 3x3 stride 1 pad 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tu_input spec[3] = {
            {4, {cases[i].N, cases[i].Cin, cases[i].H, cases[i].W}, -1, 1, 0},
            {4, {cases[i].Cin, cases[i].Cout, cases[i].K, cases[i].K}, -1, 1, 0},
            {1, {cases[i].Cout}, -1, 1, 0}};
        for (int bias = 0; bias <= 1; bias++) {
            struct conv_arg a = {cases[i].stride, cases[i].pad, bias};
            GC("conv_transpose2d", f_convt, &a, bias ? 3 : 2, spec, RTOL_LIN, ATOL_LIN);
        }
    }
}

/* y[n,co,ih s - p + kh, iw s - p + kw] += x[n,ci,ih,iw] w[ci,co,kh,kw] */
static void naive_convt(const struct gen_tensor *x, const struct gen_tensor *w, const float *b,
                        int64_t s, int64_t p, float *y) {
    const int64_t N = x->shape[0], Cin = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Cout = w->shape[1], KH = w->shape[2], KW = w->shape[3];
    const int64_t OH = (H - 1) * s - 2 * p + KH, OW = (W - 1) * s - 2 * p + KW;
    double *acc = calloc((size_t)(N * Cout * OH * OW), sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int64_t ih = 0; ih < H; ih++)
                for (int64_t iw = 0; iw < W; iw++)
                    for (int64_t co = 0; co < Cout; co++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                const int64_t oh = ih * s - p + kh, ow = iw * s - p + kw;
                                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                                acc[((n * Cout + co) * OH + oh) * OW + ow] +=
                                    (double)x->data[((n * Cin + ci) * H + ih) * W + iw] *
                                    w->data[((ci * Cout + co) * KH + kh) * KW + kw];
                            }
    for (int64_t i = 0; i < N * Cout * OH * OW; i++)
        y[i] = (float)(acc[i] + (b ? b[(i / (OH * OW)) % Cout] : 0));
    free(acc);
}

static void test_conv_transpose2d_forward(void **state) {
    (void)state;
    const struct conv_case cases[] = {
        {3, 5, 3, 4, 3, 4, 4, 2, 1}, {1, 4, 5, 3, 2, 4, 4, 2, 1},
        {2, 3, 4, 5, 4, 3, 2, 1, 0}, {2, 2, 3, 3, 3, 3, 3, 3, 1},
        /* 24 output channels and more: through the conv2d's channels-last
         * conv_dx */
        {3, 17, 7, 7, 32, 4, 4, 2, 1}, {2, 9, 5, 6, 25, 3, 3, 2, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gen_ctx g;
        gen_ctx_init(&g);
        struct gen_tensor *x =
            leaf(&g, 4, (int64_t[]){cases[i].N, cases[i].Cin, cases[i].H, cases[i].W}, 51 + i, -1, 1);
        struct gen_tensor *w = leaf(
            &g, 4, (int64_t[]){cases[i].Cin, cases[i].Cout, cases[i].KH, cases[i].KW}, 61 + i, -1, 1);
        struct gen_tensor *b = leaf(&g, 1, (int64_t[]){cases[i].Cout}, 71 + i, -1, 1);
        for (int bias = 0; bias <= 1; bias++) {
            struct gen_tensor *y =
                gen_conv_transpose2d(&g, x, w, bias ? b : NULL, (int)cases[i].s, (int)cases[i].p);
            assert_int_equal(y->shape[2], (cases[i].H - 1) * cases[i].s - 2 * cases[i].p + cases[i].KH);
            assert_int_equal(y->shape[3], (cases[i].W - 1) * cases[i].s - 2 * cases[i].p + cases[i].KW);
            float *ref = malloc((size_t)gen_numel(y) * sizeof(float));
            naive_convt(x, w, bias ? b->data : NULL, cases[i].s, cases[i].p, ref);
            TU_ASSERT_CLOSE("conv_transpose2d fwd", y->data, ref, gen_numel(y), 1e-5, 1e-5);
            free(ref);
        }
        gen_ctx_free(&g);
    }
}

/* conv_transpose2d's gradients (x, w, b) under the AVX-512 table, which
 * runs them as a conv2d's forward pass and weight gradient, against the
 * scalar table's im2col, products and col2im; channel counts on both sides
 * of what the channels-last kernels take, sums in another order: fp32
 * rounding. */
static void test_conv_transpose2d_grads_tables(void **state) {
    (void)state;
    const struct conv_case cases[] = {
        {3, 17, 7, 7, 32, 4, 4, 2, 1}, {2, 9, 5, 6, 25, 3, 3, 2, 1}, {2, 64, 7, 7, 32, 4, 4, 2, 1},
        {4, 5, 4, 3, 3, 4, 4, 2, 1},
    };
    const struct gen_kernels *best = gen_kernels_for("avx512");
    TU_NEED(best && best->conv_gemm, "no AVX-512 table with its own convolutions on this CPU");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t xs[4] = {cases[i].N, cases[i].Cin, cases[i].H, cases[i].W};
        const int64_t ws[4] = {cases[i].Cin, cases[i].Cout, cases[i].KH, cases[i].KW};
        const int64_t n[3] = {xs[0] * xs[1] * xs[2] * xs[3], ws[0] * ws[1] * ws[2] * ws[3], cases[i].Cout};
        float *got[2][3];
        for (int scalar = 0; scalar < 2; scalar++) {
            assert_int_equal(gen_kernels_select(scalar ? "scalar" : "avx512"), 1);
            struct gen_ctx g;
            gen_ctx_init(&g);
            struct gen_tensor *in[3] = {leaf(&g, 4, xs, 151 + i, -1, 1), leaf(&g, 4, ws, 161 + i, -1, 1),
                                        leaf(&g, 1, (int64_t[]){cases[i].Cout}, 171 + i, -1, 1)};
            for (int t = 0; t < 3; t++) in[t]->requires_grad = 1;
            struct gen_tensor *y =
                gen_conv_transpose2d(&g, in[0], in[1], in[2], (int)cases[i].s, (int)cases[i].p);
            float *dy = malloc((size_t)gen_numel(y) * sizeof(float));
            tu_fill_uniform(dy, gen_numel(y), -1, 1, 181 + i);
            gen_backward_seed(&g, y, dy);
            for (int t = 0; t < 3; t++) {
                got[scalar][t] = malloc((size_t)n[t] * sizeof(float));
                memcpy(got[scalar][t], in[t]->grad, (size_t)n[t] * sizeof(float));
            }
            free(dy);
            gen_ctx_free(&g);
        }
        /* dx of the 64-channel one by F(4 x 4, 2 x 2) (winograd_s2.h):
         * about 2e-6 of its values' rms of 7, as test_conv_s2_winograd allows */
        TU_ASSERT_CLOSE("conv_transpose2d dx", got[0][0], got[1][0], n[0], 1e-5, 1e-4);
        TU_ASSERT_CLOSE("conv_transpose2d dw", got[0][1], got[1][1], n[1], 1e-5, 1e-5);
        TU_ASSERT_CLOSE("conv_transpose2d db", got[0][2], got[1][2], n[2], 1e-5, 1e-5);
        for (int t = 0; t < 3; t++) free(got[0][t]), free(got[1][t]);
    }
    gen_kernels_select(NULL);
}

/* The tables the fused ops' tests run on, by index: scalar, avx2, avx512,
 * then --precision bf16 (the best table's bf16 products); 0 where this
 * CPU or build has none (the test goes on to the next). */
static const char *const fused_tables[] = {"scalar", "avx2", "avx512", "bf16"};
static int use_table(int k) {
    return k < 3 ? gen_kernels_select(fused_tables[k])
                 : gen_kernels_select(NULL) && gen_kernels_set_precision(GEN_PRECISION_BF16);
}

/* The geometries of the fused convolutions' tests: Winograd, the wide
 * grid, 1 x 1 rows in place, several images a call, the plain path, a
 * small input, stride 2 (the channels-last paths, and Winograd over the
 * phases). */
static const struct conv_case fused_cases[] = {
    /* N, Cin, H, W, Cout, KH, KW, s, p */
    {3, 16, 7, 7, 16, 3, 3, 1, 1},   {2, 32, 14, 14, 16, 3, 3, 1, 1}, {9, 16, 2, 2, 16, 3, 3, 1, 1},
    {2, 3, 5, 6, 4, 3, 3, 1, 1},     {4, 24, 4, 4, 32, 3, 3, 1, 1},   {2, 8, 16, 12, 8, 1, 1, 1, 0},
    {10, 16, 4, 4, 16, 3, 3, 1, 1},  {2, 32, 9, 9, 16, 3, 3, 2, 1},   {3, 4, 7, 7, 5, 4, 4, 2, 1},
    {2, 16, 13, 14, 24, 4, 4, 2, 1}, /* F(4 x 4, 2 x 2), partial tiles */
};
#define N_FUSED (sizeof fused_cases / sizeof fused_cases[0])

/* gen_conv2d_add (conv + r) and gen_conv2d_sum (conv + a second conv,
 * a 1 x 1 skip or a 3 x 3 one) against gen_add of gen_conv2d's,
 * forward and every gradient, on every table: the convolutions' kernels
 * adding onto what is in the output (beta 1: Winograd, the wide grid, 1 x
 * 1 rows in place, several images a call, the plain path) to fp32
 * rounding; and under --precision bf16 where the CPU has it (the products
 * rounded alike either way, only the additions' order differs). */
static void test_conv2d_add(void **state) {
    (void)state;
    /* the second conv's Cin and kernel side (stride 1, padded to the same output) */
    const int64_t second[N_FUSED][2] = {{8, 1}, {16, 1}, {16, 1}, {5, 3}, {24, 1},
                                        {8, 1}, {16, 3}, {8, 1},  {6, 3}, {8, 1}};
    for (int k = 0; k < 4; k++) {
        if (!use_table(k)) continue;
        for (size_t i = 0; i < N_FUSED; i++) {
            const struct conv_case c = fused_cases[i];
            const int64_t OH = gen_conv_out(c.H, c.KH, c.s, c.p),
                          OW = gen_conv_out(c.W, c.KW, c.s, c.p);
            const int64_t C2 = second[i][0], K2 = second[i][1], p2 = (K2 - 1) / 2;
            for (int sum = 0; sum < 2; sum++) {
                float *got[2][8]; /* the 7 tensors' gradients (unused: none), y */
                int64_t len[8];
                for (int fused = 0; fused < 2; fused++) {
                    struct gen_ctx g;
                    gen_ctx_init(&g);
                    struct gen_tensor *t[7] = {
                        leaf(&g, 4, (int64_t[]){c.N, c.Cin, c.H, c.W}, 11 + i, -1, 1),
                        leaf(&g, 4, (int64_t[]){c.Cout, c.Cin, c.KH, c.KW}, 21 + i, -0.5f, 0.5f),
                        leaf(&g, 1, (int64_t[]){c.Cout}, 31 + i, -1, 1),
                        leaf(&g, 4, (int64_t[]){c.N, c.Cout, OH, OW}, 41 + i, -1, 1), /* r */
                        leaf(&g, 4, (int64_t[]){c.N, C2, OH, OW}, 51 + i, -1, 1),     /* x2 */
                        leaf(&g, 4, (int64_t[]){c.Cout, C2, K2, K2}, 61 + i, -0.5f, 0.5f),
                        leaf(&g, 1, (int64_t[]){c.Cout}, 71 + i, -1, 1)};
                    for (int j = 0; j < 7; j++) t[j]->requires_grad = 1;
                    struct gen_tensor *y;
                    if (fused)
                        y = sum ? gen_conv2d_sum(&g, t[0], t[1], t[2], (int)c.s, (int)c.p, t[4],
                                                 t[5], t[6], 1, (int)p2)
                                : gen_conv2d_add(&g, t[0], t[1], t[2], (int)c.s, (int)c.p, t[3]);
                    else
                        y = gen_add(&g, gen_conv2d(&g, t[0], t[1], t[2], (int)c.s, (int)c.p),
                                    sum ? gen_conv2d(&g, t[4], t[5], t[6], 1, (int)p2) : t[3]);
                    float *dy = malloc((size_t)gen_numel(y) * sizeof(float));
                    tu_fill_uniform(dy, gen_numel(y), -1, 1, 81 + i);
                    gen_backward_seed(&g, y, dy);
                    for (int j = 0; j < 8; j++) {
                        const int used = j < 3 || j == 7 || (sum ? j > 3 : j == 3);
                        len[j] = !used ? 0 : j == 7 ? gen_numel(y) : gen_numel(t[j]);
                        got[fused][j] = malloc((size_t)(len[j] + 1) * sizeof(float));
                        if (used)
                            memcpy(got[fused][j], j == 7 ? y->data : t[j]->grad,
                                   (size_t)len[j] * sizeof(float));
                    }
                    free(dy);
                    gen_ctx_free(&g);
                }
                char what[96];
                for (int j = 0; j < 8; j++) {
                    if (!len[j]) continue;
                    snprintf(what, sizeof what, "[%s] conv2d_%s case %zu tensor %d",
                             fused_tables[k], sum ? "sum" : "add", i, j);
                    TU_ASSERT_CLOSE(what, got[1][j], got[0][j], len[j], 1e-5, 1e-5);
                }
                for (int f = 0; f < 2; f++)
                    for (int j = 0; j < 8; j++) free(got[f][j]);
            }
        }
    }
    gen_kernels_set_precision(GEN_PRECISION_FP32);
    gen_kernels_select(NULL);
}

/* gen_conv2d_concat against gen_concat of gen_conv2d and s, forward and
 * every gradient, on every table and under --precision bf16 where the CPU
 * has it, with x as floats and (bf16) as the upsampled operand the
 * U-Net's decoder passes: the same kernels run either way, only where
 * the convolution writes its output and reads its gradient differs
 * (the images' blocks wider than its channels), so the bits must agree.
 * The geometries take Winograd, the wide grid, 1 x 1 rows in place, the
 * stride-2 paths, single images and several a chunk. */
static void test_conv2d_concat(void **state) {
    (void)state;
    const int64_t C2[N_FUSED] = {8, 16, 3, 5, 8, 8, 16, 24, 2, 8}; /* s's channels */
    for (int k = 0; k < 4; k++) {
        if (!use_table(k)) continue;
        for (size_t i = 0; i < N_FUSED; i++) {
            const struct conv_case c = fused_cases[i];
            for (int up = 0; up < 1 + (k == 3); up++) { /* bf16: x the upsampled operand */
                /* the input, upsampled from half its size (rounded down) */
                const int64_t H = up ? c.H / 2 : c.H, W = up ? c.W / 2 : c.W;
                const int64_t OH = gen_conv_out(up ? 2 * H : H, c.KH, c.s, c.p),
                              OW = gen_conv_out(up ? 2 * W : W, c.KW, c.s, c.p);
                float *got[2][5]; /* x, w, b, s's gradients; y */
                int64_t len[5];
                for (int fused = 0; fused < 2; fused++) {
                    struct gen_ctx g;
                    gen_ctx_init(&g);
                    struct gen_tensor *t[4] = {
                        leaf(&g, 4, (int64_t[]){c.N, c.Cin, H, W}, 11 + i, -1, 1),
                        leaf(&g, 4, (int64_t[]){c.Cout, c.Cin, c.KH, c.KW}, 21 + i, -0.5f, 0.5f),
                        leaf(&g, 1, (int64_t[]){c.Cout}, 31 + i, -1, 1),
                        leaf(&g, 4, (int64_t[]){c.N, C2[i], OH, OW}, 41 + i, -1, 1)};
                    for (int j = 0; j < 4; j++) t[j]->requires_grad = 1;
                    struct gen_tensor *x = up ? gen_upsample2x_operand(&g, t[0]) : t[0];
                    struct gen_tensor *y =
                        fused ? gen_conv2d_concat(&g, x, t[1], t[2], (int)c.s, (int)c.p, t[3])
                              : gen_concat(&g, gen_conv2d(&g, x, t[1], t[2], (int)c.s, (int)c.p),
                                           t[3]);
                    float *dy = malloc((size_t)gen_numel(y) * sizeof(float));
                    tu_fill_uniform(dy, gen_numel(y), -1, 1, 51 + i);
                    gen_backward_seed(&g, y, dy);
                    for (int j = 0; j < 5; j++) {
                        len[j] = j == 4 ? gen_numel(y) : gen_numel(t[j]);
                        got[fused][j] = malloc((size_t)len[j] * sizeof(float));
                        memcpy(got[fused][j], j == 4 ? y->data : t[j]->grad,
                               (size_t)len[j] * sizeof(float));
                    }
                    free(dy);
                    gen_ctx_free(&g);
                }
                for (int j = 0; j < 5; j++) {
                    if (memcmp(got[1][j], got[0][j], (size_t)len[j] * sizeof(float)))
                        fprintf(stderr, "  [%s] conv2d_concat case %zu%s: tensor %d differs\n",
                                fused_tables[k], i, up ? " (upsampled operand)" : "", j);
                    assert_memory_equal(got[1][j], got[0][j], (size_t)len[j] * sizeof(float));
                }
                for (int f = 0; f < 2; f++)
                    for (int j = 0; j < 5; j++) free(got[f][j]);
            }
        }
    }
    gen_kernels_set_precision(GEN_PRECISION_FP32);
    gen_kernels_select(NULL);
}

/* Both convolution ops, forward and every gradient, on `table` against
 * the scalar table for each geometry of cases[0 .. n), the weight
 * gradient to dw_atol. */
static void conv_grads_vs_scalar(const char *table, const struct conv_case *cases, size_t n_cases,
                                 double dw_atol) {
    for (size_t i = 0; i < n_cases; i++)
        for (int transposed = 0; transposed < 2; transposed++) {
            const struct conv_case *c = &cases[i];
            const int64_t xs[4] = {c->N, c->Cin, c->H, c->W};
            const int64_t ws[4] = {transposed ? c->Cin : c->Cout, transposed ? c->Cout : c->Cin,
                                   c->KH, c->KW};
            float *got[2][4];
            int64_t n[4] = {0, xs[0] * xs[1] * xs[2] * xs[3], ws[0] * ws[1] * ws[2] * ws[3],
                            c->Cout};
            for (int scalar = 0; scalar < 2; scalar++) {
                assert_int_equal(gen_kernels_select(scalar ? "scalar" : table), 1);
                struct gen_ctx g;
                gen_ctx_init(&g);
                struct gen_tensor *in[3] = {leaf(&g, 4, xs, 201 + i, -1, 1),
                                            leaf(&g, 4, ws, 211 + i, -1, 1),
                                            leaf(&g, 1, (int64_t[]){c->Cout}, 221 + i, -1, 1)};
                for (int t = 0; t < 3; t++) in[t]->requires_grad = 1;
                struct gen_tensor *y =
                    transposed ? gen_conv_transpose2d(&g, in[0], in[1], in[2], (int)c->s, (int)c->p)
                               : gen_conv2d(&g, in[0], in[1], in[2], (int)c->s, (int)c->p);
                n[0] = gen_numel(y);
                got[scalar][0] = malloc((size_t)n[0] * sizeof(float));
                memcpy(got[scalar][0], y->data, (size_t)n[0] * sizeof(float));
                float *dy = malloc((size_t)n[0] * sizeof(float));
                tu_fill_uniform(dy, n[0], -1, 1, 231 + i);
                gen_backward_seed(&g, y, dy);
                for (int t = 0; t < 3; t++) {
                    got[scalar][t + 1] = malloc((size_t)n[t + 1] * sizeof(float));
                    memcpy(got[scalar][t + 1], in[t]->grad, (size_t)n[t + 1] * sizeof(float));
                }
                free(dy);
                gen_ctx_free(&g);
            }
            static const char *what[4] = {"y", "dx", "dw", "db"};
            /* y and dx: F(4 x 4, 3 x 3)'s transformed entries reach 100
             * times the inputs, so its error is about 2e-6 of the outputs'
             * rms (winograd_avx2.c), F(4 x 4, 2 x 2)'s alike
             * (winograd_s2.h, also for dw, whose rms is some 20),
             * some 1e-5 of these values of up to 10; a wrong tap or
             * transform is off by 1e-2 or more */
            for (int t = 0; t < 4; t++) {
                char label[96];
                snprintf(label, sizeof label, "%s conv%s case %zu %s", table,
                         transposed ? "_transpose" : "", i, what[t]);
                const double atol = t < 2 ? 1e-4 : t == 2 ? dw_atol : 1e-5;
                TU_ASSERT_CLOSE(label, got[0][t], got[1][t], n[t], 1e-5, atol);
                free(got[0][t]), free(got[1][t]);
            }
        }
    gen_kernels_select(NULL);
}

/* The AVX2 table runs stride-1 convolutions (and their gradients) through
 * its own implicit GEMM or, 3 x 3 ones of 16 or more channels, Winograd's
 * F(4 x 4, 3 x 3) and F(2 x 2, 3 x 3); some strided ones' forward passes and weight
 * gradients through the implicit GEMM over phase planes, some stride-2
 * input gradients phase by phase, the others through im2col, OpenBLAS
 * and col2im: both
 * ops, forward and every gradient, against the scalar table on each kind
 * of geometry, whatever the machine's best table. Skipped on a CPU
 * without AVX2. */
static void test_conv_grads_avx2(void **state) {
    (void)state;
    const struct conv_case cases[] = {
        /* N, Cin, H, W, Cout, KH, KW, s, p */
        {3, 5, 9, 10, 7, 3, 3, 1, 1},
        {2, 4, 8, 8, 13, 1, 1, 1, 0},
        {2, 3, 7, 7, 9, 3, 3, 2, 1},
        {2, 6, 6, 5, 4, 4, 4, 2, 1},
        {9, 2, 5, 6, 3, 3, 3, 1, 0},
        {1, 17, 6, 6, 5, 5, 5, 1, 2},
        /* 3 x 3, 16 or more channels each way: Winograd (winograd_avx2.c),
         * F(4 x 4) for the forward passes and input gradients but the
         * second one's forward pass (6 x 5 outputs: F(2 x 2)), F(2 x 2)
         * for the weight gradients, whose products run by
         * gen_avx2_dw_block in these two, on the GEMM's micro-kernel in
         * the next two (64 channels or more one way; test_kernels has
         * their blocks of tiles): dy's transforms packed (20 < 64) and
         * the kernel's last rows 4 of 64, then x's packed (20 channels in
         * panels of 16) and 68 rows as 6s, 4 and 4 */
        {3, 16, 9, 10, 20, 3, 3, 1, 1},
        {2, 24, 8, 7, 16, 3, 3, 1, 0},
        {3, 64, 8, 7, 20, 3, 3, 1, 0},
        {2, 20, 8, 7, 68, 3, 3, 1, 0},
        /* strided forward passes over phase planes, rows long enough for
         * whole vectors (as a transposed convolution: its input gradient) */
        {2, 8, 28, 28, 6, 3, 3, 2, 1},
        {2, 5, 30, 29, 7, 4, 4, 2, 1},
        /* strided input gradients by phases, 8 or more channels (as a
         * transposed convolution: its forward pass) */
        {2, 12, 14, 14, 10, 4, 4, 2, 1},
        {2, 9, 17, 15, 11, 3, 3, 2, 0},
    };
    TU_NEED(gen_kernels_for("avx2") != NULL, "no AVX2 table on this CPU");
    conv_grads_vs_scalar("avx2", cases, sizeof cases / sizeof cases[0], 1e-5);
}

/* The 4 x 4 stride-2 convolutions of 16 or more channels each way by F(4
 * x 4, 2 x 2) over the phases (winograd_s2.h) on the AVX-512 and AVX2
 * tables: forward, input and weight gradients, and the transposed
 * convolution's (the same three passes in other roles); output channels
 * in whole and partial vectors (AVX2 takes multiples of 8: 16, 24 and 32
 * here, the GEMM's panels whole and half full), odd sizes, pads 0 to
 * 3, one image a call and several. Skipped on a CPU without AVX2. */
static void test_conv_s2_winograd(void **state) {
    (void)state;
    const struct conv_case cases[] = {
        /* N, Cin, H, W, Cout, KH, KW, s, p */
        {3, 16, 14, 14, 32, 4, 4, 2, 1}, {2, 17, 13, 11, 33, 4, 4, 2, 1},
        {1, 20, 9, 10, 16, 4, 4, 2, 0},  {2, 16, 12, 12, 19, 4, 4, 2, 2},
        {2, 24, 10, 9, 18, 4, 4, 2, 3},  {17, 16, 6, 6, 16, 4, 4, 2, 1},
        {2, 32, 13, 11, 24, 4, 4, 2, 1}, {3, 24, 9, 10, 24, 4, 4, 2, 2},
        {9, 32, 7, 7, 16, 4, 4, 2, 3},
    };
    const size_t n = sizeof cases / sizeof cases[0];
    TU_NEED(gen_kernels_for("avx2") != NULL, "no AVX2 table on this CPU");
    const struct gen_kernels *best = gen_kernels_for("avx512");
    if (best && best->conv_gemm) conv_grads_vs_scalar("avx512", cases, n, 1e-4);
    conv_grads_vs_scalar("avx2", cases, n, 1e-4);
}

/* ---- upsample2x ---------------------------------------------------------- */

static struct gen_tensor *f_upsample(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_upsample2x(g, in[0]);
}

/* tolerance: RTOL_LIN / ATOL_LIN */
static void test_grad_upsample2x(void **state) {
    (void)state;
    const struct tu_input spec[1] = {{4, {2, 3, 3, 2}, -1, 1, 0}};
    GC("upsample2x", f_upsample, NULL, 1, spec, RTOL_LIN, ATOL_LIN);
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf(&g, 4, (int64_t[]){2, 3, 3, 5}, 5, -1, 1);
    struct gen_tensor *y = gen_upsample2x(&g, x);
    assert_int_equal(y->shape[2], 6);
    assert_int_equal(y->shape[3], 10);
    for (int64_t nc = 0; nc < 6; nc++)
        for (int64_t i = 0; i < 6; i++)
            for (int64_t j = 0; j < 10; j++)
                assert_true(y->data[(nc * 6 + i) * 10 + j] == x->data[(nc * 3 + i / 2) * 5 + j / 2]);
    gen_ctx_free(&g);
}

/* ---- the MLP ------------------------------------------------------------- */

static struct gen_tensor *f_mlp(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const int bias = *(const int *)arg;
    return gen_mlp(g, in[0], in[1], bias ? in[2] : NULL, in[3], bias ? in[4] : NULL);
}

/* Finite differences of every input, one block of rows (6) and two (105:
 * a full block of 64 and a short one, a stripe each), with and without
 * the biases, under every table. tolerance: RTOL / ATOL (GELU) */
static void test_grad_mlp(void **state) {
    (void)state;
    static const char *isas[] = {"scalar", "avx2", "avx512"};
    const int64_t rows[] = {2, 35};
    for (int k = 0; k < 3; k++) {
        if (!gen_kernels_select(isas[k])) continue;
        for (int r = 0; r < 2; r++) {
            const struct tu_input spec[5] = {{3, {rows[r], 3, 5}, -2, 2, 0},
                                             {2, {12, 5}, -0.7f, 0.7f, 0},
                                             {1, {12}, -1, 1, 0},
                                             {2, {6, 12}, -0.5f, 0.5f, 0},
                                             {1, {6}, -1, 1, 0}};
            for (int bias = 0; bias < 2; bias++)
                GC(bias ? "mlp" : "mlp no bias", f_mlp, &bias, 5, spec, RTOL, ATOL);
        }
    }
    gen_kernels_select(NULL);
}

/* gen_mlp against the three ops it fuses (linear, gelu, linear), forward
 * and every gradient, x also read by a second op (its gradient added to):
 * 581 rows (ten blocks, the last short, in eight stripes of one or two),
 * on every table to fp32 rounding, and under --precision bf16 where the
 * CPU has it (the products rounded alike; only sums in another order; on
 * AMX the backward computes h again instead of keeping it). */
static void test_mlp_matches_chain(void **state) {
    (void)state;
    const int64_t M = 581, C = 24, D = 96, C2 = 20;
    for (int k = 0; k < 4; k++) {
        if (!use_table(k)) continue;
        float *got[2][6];
        const int64_t len[6] = {M * C, D * C, D, C2 * D, C2, M * C2};
        for (int fused = 0; fused < 2; fused++) {
            struct gen_ctx g;
            gen_ctx_init(&g);
            struct gen_tensor *t[5] = {leaf(&g, 2, (int64_t[]){M, C}, 11, -2, 2),
                                       leaf(&g, 2, (int64_t[]){D, C}, 12, -0.3f, 0.3f),
                                       leaf(&g, 1, (int64_t[]){D}, 13, -1, 1),
                                       leaf(&g, 2, (int64_t[]){C2, D}, 14, -0.3f, 0.3f),
                                       leaf(&g, 1, (int64_t[]){C2}, 15, -1, 1)};
            for (int j = 0; j < 5; j++) t[j]->requires_grad = 1;
            struct gen_tensor *y =
                fused ? gen_mlp(&g, t[0], t[1], t[2], t[3], t[4])
                      : gen_linear(&g, gen_gelu(&g, gen_linear(&g, t[0], t[1], t[2])), t[3], t[4]);
            /* x also read by a linear recorded after (whose backward runs
             * first): the MLP's backward adds to x's gradient */
            struct gen_tensor *w3 = leaf(&g, 2, (int64_t[]){C2, C}, 17, -0.3f, 0.3f);
            y = gen_add(&g, y, gen_linear(&g, t[0], w3, NULL));
            float *dy = malloc((size_t)gen_numel(y) * sizeof(float));
            tu_fill_uniform(dy, gen_numel(y), -1, 1, 16);
            gen_backward_seed(&g, y, dy);
            for (int j = 0; j < 6; j++) {
                got[fused][j] = malloc((size_t)len[j] * sizeof(float));
                const float *src = j == 5 ? y->data : t[j]->grad;
                memcpy(got[fused][j], src, (size_t)len[j] * sizeof(float));
            }
            free(dy);
            gen_ctx_free(&g);
        }
        static const char *names[6] = {"dx", "dw1", "db1", "dw2", "db2", "y"};
        char what[64];
        for (int j = 0; j < 6; j++) {
            snprintf(what, sizeof what, "[%s] mlp %s", fused_tables[k], names[j]);
            TU_ASSERT_CLOSE(what, got[1][j], got[0][j], len[j], 1e-5, 1e-5);
        }
        for (int f = 0; f < 2; f++)
            for (int j = 0; j < 6; j++) free(got[f][j]);
    }
    gen_kernels_set_precision(GEN_PRECISION_FP32);
    gen_kernels_select(NULL);
}

/* ---- attention ----------------------------------------------------------- */

struct attn_arg {
    int64_t NH;
    int causal;
};

static struct gen_tensor *f_attention(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct attn_arg *a = arg;
    return gen_attention(g, in[0], a->NH, a->causal);
}

/* tolerance: RTOL / ATOL */
static void test_grad_attention(void **state) {
    (void)state;
    /* 70: causal rows in blocks of 32, the last one short (ops_attn.c) */
    const int64_t Ts[] = {1, 3, 5, 70};
    for (int ti = 0; ti < 4; ti++)
        for (int64_t NH = 1; NH <= 2; NH++)
            for (int causal = 0; causal <= 1; causal++) {
                const struct tu_input spec[1] = {{3, {2, Ts[ti], 12}, -1.5f, 1.5f, 0}};
                struct attn_arg a = {NH, causal};
                GC("attention", f_attention, &a, 1, spec, RTOL, ATOL);
            }
}

static void naive_attention(const float *qkv, int64_t B, int64_t T, int64_t C, int64_t NH,
                            int causal, float *y) {
    const int64_t hd = C / NH;
    double *p = malloc((size_t)T * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t t = 0; t < T; t++) {
                const float *q = qkv + (b * T + t) * 3 * C + h * hd;
                const int64_t n = causal ? t + 1 : T;
                double mx = -INFINITY, s = 0;
                for (int64_t u = 0; u < n; u++) {
                    const float *k = qkv + (b * T + u) * 3 * C + C + h * hd;
                    double d = 0;
                    for (int64_t i = 0; i < hd; i++) d += (double)q[i] * k[i];
                    p[u] = d / sqrt((double)hd);
                    mx = fmax(mx, p[u]);
                }
                for (int64_t u = 0; u < n; u++) s += (p[u] = exp(p[u] - mx));
                for (int64_t i = 0; i < hd; i++) {
                    double o = 0;
                    for (int64_t u = 0; u < n; u++) o += p[u] / s * qkv[(b * T + u) * 3 * C + 2 * C + h * hd + i];
                    y[(b * T + t) * C + h * hd + i] = (float)o;
                }
            }
    free(p);
}

static void test_attention_forward(void **state) {
    (void)state;
    const struct {
        int64_t B, T, C, NH;
    } cases[] = {{3, 7, 12, 3}, {1, 9, 10, 1}, {2, 13, 8, 4}, {2, 1, 6, 2}, {2, 70, 8, 2},
                 {1, 130, 16, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int causal = 0; causal <= 1; causal++) {
            struct gen_ctx g;
            gen_ctx_init(&g);
            struct gen_tensor *qkv =
                leaf(&g, 3, (int64_t[]){cases[i].B, cases[i].T, 3 * cases[i].C}, 81 + i, -2, 2);
            struct gen_tensor *y = gen_attention(&g, qkv, cases[i].NH, causal);
            float *ref = malloc((size_t)gen_numel(y) * sizeof(float));
            naive_attention(qkv->data, cases[i].B, cases[i].T, cases[i].C, cases[i].NH, causal, ref);
            TU_ASSERT_CLOSE("attention fwd", y->data, ref, gen_numel(y), 1e-5, 1e-5);
            free(ref);
            gen_ctx_free(&g);
        }
}

/* Backward accumulates: w and b, used by two convs, get the sum of both
 * gradients; a chain of ops passes gradients through. tolerance: RTOL / ATOL */
static struct gen_tensor *f_chain(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    struct gen_tensor *a = gen_conv2d(g, in[0], in[1], in[2], 1, 1);
    struct gen_tensor *b = gen_conv2d(g, gen_upsample2x(g, a), in[1], in[2], 2, 1); /* Cin == Cout */
    return gen_groupnorm(g, b, 2, NULL, NULL, 1e-5f);
}

static void test_grad_chain(void **state) {
    (void)state;
    const struct tu_input spec[3] = {
        {4, {2, 4, 3, 3}, -1, 1, 0}, {4, {4, 4, 3, 3}, -0.5f, 0.5f, 0}, {1, {4}, -1, 1, 0}};
    GC("conv-upsample-conv-groupnorm", f_chain, NULL, 3, spec, RTOL, ATOL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_layernorm),
        cmocka_unit_test(test_grad_groupnorm),
        cmocka_unit_test(test_groupnorm_forward),
        cmocka_unit_test(test_groupnorm_silu_matches_chain),
        cmocka_unit_test(test_grad_groupnorm_silu_shift),
        cmocka_unit_test(test_grad_batchnorm),
        cmocka_unit_test(test_batchnorm_running_stats),
        cmocka_unit_test(test_grad_conv2d),
        cmocka_unit_test(test_conv2d_forward),
        cmocka_unit_test(test_conv2d_dx_phases),
        cmocka_unit_test(test_grad_conv_transpose2d),
        cmocka_unit_test(test_conv_transpose2d_forward),
        cmocka_unit_test(test_conv_transpose2d_grads_tables),
        cmocka_unit_test(test_conv_grads_avx2),
        cmocka_unit_test(test_conv_s2_winograd),
        cmocka_unit_test(test_conv2d_add),
        cmocka_unit_test(test_conv2d_concat),
        cmocka_unit_test(test_grad_upsample2x),
        cmocka_unit_test(test_grad_mlp),
        cmocka_unit_test(test_mlp_matches_chain),
        cmocka_unit_test(test_grad_attention),
        cmocka_unit_test(test_attention_forward),
        cmocka_unit_test(test_grad_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
