/* test_bf16.c - the products of --precision bf16 (gemm_avx512bf16.c):
 * the GEMM and the implicit-GEMM convolution against a slow reference
 * that rounds both operands to bf16 (nearest, ties to even) and sums in
 * double, held to the fp32 accumulation's tolerance (1e-5 of sum |a b|);
 * against the unrounded products within bf16's (2^-7 of sum |a b|);
 * rounding ties and special values; the same bits on any thread count;
 * switching the precision of the table in force; and linear and conv2d
 * layers, forward and backward, running their products in bf16 when it is
 * in force. Exits 77 (ctest: skipped), saying so, on a CPU or build
 * without AVX512-BF16. `test_bf16 amx` (ctest's test_bf16.amx) runs the
 * products' tests on the AMX table instead, or exits 77 where there is
 * none. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/kernels.h"
#include "testutil.h"

#define TIGHT 1e-5          /* fp32 accumulation, relative to sum |a b| */
#define LOOSE (1.0 / 128.0) /* bf16 operands: 2 u, u = 2^-8 */

/* The table under test: the vdpbf16ps one, or with the argument "amx" the
 * one on AMX tiles (ctest's test_bf16.amx). */
static const char *table_name = "avx512bf16";

static const struct gen_kernels *bf16k(void) {
    return gen_kernels_for(table_name);
}


static float *rnd(int64_t n, float lo, float hi, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    assert_non_null(x);
    tu_fill_uniform(x, n, lo, hi, seed);
    return x;
}

/* sum over p of a(p) b(p), with and without rounding both to bf16 */
struct dot {
    double exact, rounded, mag; /* mag: sum |a b| of the rounded values */
};

/* ---- GEMM ------------------------------------------------------------------ */

/* Every transposition, alpha and beta (beta == 0 must not read C, which
 * holds NaN), leading dimensions wider than the matrices, odd depths, and
 * sizes across the micro-tile (8 x 48) and block (192 rows, 384 deep,
 * 1152 wide) edges. */
static void test_gemm(void **state) {
    (void)state;
    const struct gen_kernels *k = bf16k();
    static const int64_t dims[][3] = {
        {1, 1, 1},    {1, 47, 3},    {9, 1, 5},      {8, 48, 384},   {7, 49, 385},
        {17, 95, 31}, {33, 200, 64}, {193, 50, 769}, {40, 1153, 21}, {250, 130, 600},
        {12, 80, 40}, {5, 20, 9},    {130, 32, 128},
    };
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}, {1.0f, 1.0f}};
    uint64_t seed = 100;
    double worst_loose = 0;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int t = 0; t < 4; t++) {
            const int ta = t & 1, tb = t >> 1;
            const int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2];
            const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            const float alpha = ab[(d + t) % 4][0], beta = ab[(d + t) % 4][1];
            float *A = rnd((ta ? K : M) * lda, -1, 1, seed++);
            float *B = rnd((tb ? N : K) * ldb, -1, 1, seed++);
            float *C = rnd(M * ldc, -1, 1, seed++), *C0 = malloc((size_t)(M * ldc) * sizeof *C0);
            memcpy(C0, C, (size_t)(M * ldc) * sizeof *C0);
            if (beta == 0.0f)
                for (int64_t i = 0; i < M * ldc; i++) C[i] = NAN;
            k->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    struct dot s = {0, 0, 0};
                    for (int64_t p = 0; p < K; p++) {
                        const float a = ta ? A[p * lda + i] : A[i * lda + p];
                        const float b = tb ? B[j * ldb + p] : B[p * ldb + j];
                        s.exact += (double)a * b;
                        s.rounded += (double)tu_bf16(a) * tu_bf16(b);
                        s.mag += fabs((double)tu_bf16(a) * tu_bf16(b));
                    }
                    const double c0 = beta == 0.0f ? 0.0 : (double)beta * C0[i * ldc + j];
                    const double got = C[i * ldc + j], scale = fabs(alpha) * s.mag;
                    const double err = fabs(got - (alpha * s.rounded + c0));
                    const double tol = TIGHT * (scale + fabs(c0)) + 1e-6;
                    if (!(err <= tol))
                        fprintf(
                            stderr,
                            "  gemm ta %d tb %d %lldx%lldx%lld: C[%lld,%lld] = %.9g, want %.9g\n",
                            ta, tb, (long long)M, (long long)N, (long long)K, (long long)i,
                            (long long)j, got, alpha * s.rounded + c0);
                    assert_true(err <= tol);
                    const double off = fabs(got - (alpha * s.exact + c0));
                    assert_true(off <= LOOSE * scale + TIGHT * fabs(c0) + 1e-6);
                    if (scale > 1) worst_loose = fmax(worst_loose, off / scale);
                }
            for (int64_t i = 0; i < M; i++) /* C's padding columns are untouched */
                for (int64_t j = N; j < ldc; j++)
                    if (beta != 0.0f) assert_true(C[i * ldc + j] == C0[i * ldc + j]);
            free(A), free(B), free(C), free(C0);
        }
    /* the operands really were rounded: far from fp32's 1e-7 */
    printf("  largest |bf16 - exact| / sum |a b|: %.2e (bound %.2e)\n", worst_loose, LOOSE);
    assert_true(worst_loose > 1e-4);
}

/* Ties round to even, NaN and infinities pass through. */
static void test_rounding(void **state) {
    (void)state;
    const struct gen_kernels *k = bf16k();
    const float one = 1.0f;
    static const float cases[][2] = {
        {1.0f + 0x1p-8f, 1.0f},                      /* tie: down to the even 1 */
        {1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-6f},        /* tie: up to the even 1 + 2^-6 */
        {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f}, /* past the tie: up */
        {-3.0f, -3.0f},
        {INFINITY, INFINITY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float c = 0;
        k->gemm(0, 0, 1, 1, 1, 1.0f, &cases[i][0], 1, &one, 1, 0.0f, &c, 1);
        assert_true(c == cases[i][1]);
        assert_true(tu_bf16(cases[i][0]) == cases[i][1]);
    }
    const float nan = NAN;
    float c = 0;
    k->gemm(0, 0, 1, 1, 1, 1.0f, &nan, 1, &one, 1, 0.0f, &c, 1);
    assert_true(isnan(c));
}

/* The same product on 1 and 2 threads, and inside a parallel region
 * (on the calling thread), is bit-identical. */
static void test_threads(void **state) {
    (void)state;
    const struct gen_kernels *k = bf16k();
    const int64_t M = 300, N = 260, K = 151;
    float *A = rnd(M * K, -1, 1, 7), *B = rnd(K * N, -1, 1, 8);
    float *C1 = rnd(M * N, 0, 0, 0), *C2 = rnd(M * N, 0, 0, 0), *C3 = rnd(M * N, 0, 0, 0);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    k->gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    omp_set_num_threads(2);
    k->gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        k->gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C3, N);
    }
    omp_set_num_threads(saved);
    assert_memory_equal(C1, C2, (size_t)(M * N) * sizeof(float));
    assert_memory_equal(C1, C3, (size_t)(M * N) * sizeof(float));
    free(A), free(B), free(C1), free(C2), free(C3);
    /* the product with a bias row, as a linear layer's forward runs it */
    assert_non_null(k->gemm_bias);
    tu_check_gemm_bias(k);
    /* products over an operand packed once (attention's), where the table
     * has them: the vdpbf16ps one does, the AMX one leaves them to gemm */
    if (strcmp(k->name, "amx") != 0) assert_non_null(k->gemm_bpacked);
    tu_check_gemm_bpacked(k);
}

/* ---- the implicit-GEMM convolution ------------------------------------------ */

/* The convolution and its weight gradient over kernel sizes, strides,
 * paddings, odd depths and several images per call (image boundaries
 * inside packed panels), odd channel counts (a zero channel completes
 * the last pair), several slices of pairs and output heights, against the
 * scalar im2col and the rounded reference. */
static void test_conv_gemm(void **state) {
    (void)state;
    const struct gen_kernels *k = bf16k(), *sc = gen_kernels_for("scalar");
    assert_non_null(k->conv_dw);
    static const int64_t geo[][8] = {
        /* C, H, W, KH, KW, stride, pad, m */
        {1, 5, 5, 1, 1, 1, 0, 1},   {3, 7, 9, 3, 3, 1, 1, 3},  {2, 8, 8, 4, 4, 2, 1, 2},
        {4, 28, 28, 3, 3, 1, 1, 2}, {5, 6, 11, 3, 2, 2, 0, 5}, {2, 4, 4, 5, 5, 1, 2, 7},
        {3, 13, 13, 3, 3, 3, 2, 1}, {16, 7, 7, 3, 3, 1, 1, 9}, {1, 3, 3, 3, 3, 1, 2, 4},
        {3, 30, 40, 3, 3, 1, 1, 3}, {4, 9, 9, 3, 3, 2, 1, 3},
        /* deep enough for two slices of pairs, odd and even channel counts */
        {64, 14, 14, 3, 3, 1, 1, 2}, {65, 10, 10, 3, 3, 1, 1, 1}, {33, 12, 12, 3, 3, 2, 1, 2},
        /* multiples of 32 channels (the AMX table's tiles): strided, odd sizes, 1 x 1, 4 x 4 */
        {32, 9, 9, 3, 3, 2, 1, 3},  {32, 7, 5, 3, 3, 1, 1, 4}, {96, 6, 6, 1, 1, 1, 0, 2},
        {64, 14, 14, 4, 4, 2, 1, 2}, {32, 12, 12, 9, 9, 1, 4, 1}, /* 81 taps: not on tiles */
    };
    uint64_t seed = 300;
    for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++) {
        const int64_t C = geo[gi][0], H = geo[gi][1], W = geo[gi][2], KH = geo[gi][3],
                      KW = geo[gi][4], st = geo[gi][5], pad = geo[gi][6], m = geo[gi][7];
        const int64_t P = gen_conv_out(H, KH, st, pad) * gen_conv_out(W, KW, st, pad);
        const int64_t K = C * KH * KW, N = m * P, M = gi % 3 ? 10 : 37, img = C * H * W + 3;
        const float beta = gi % 2 ? 1.0f : 0.0f;
        float *x = rnd(m * img, -1, 1, seed++), *w = rnd(M * K, -1, 1, seed++);
        float *out = rnd(M * N, -1, 1, seed++), *out0 = malloc((size_t)(M * N) * sizeof *out0);
        float *col = rnd(K * N, 0, 0, 0);
        float *work =
            malloc((size_t)k->conv_gemm_work(M, C, H, W, KH, KW, st, pad, m) * sizeof(float));
        assert_non_null(work);
        memcpy(out0, out, (size_t)(M * N) * sizeof *out0);
        for (int64_t i = 0; i < m; i++)
            sc->im2col_ld(C, H, W, KH, KW, st, pad, N, x + i * img, col + i * P);
        float *bias = gi % 3 == 1 ? rnd(M, -1, 1, seed++) : NULL; /* a bias on some */
        /* the kernels in the form conv_gemm takes them, as ops_conv.c prepares them */
        const int64_t np = k->conv_prep_work ? k->conv_prep_work(M, C, H, W, KH, KW, st, pad) : 0;
        float *prep = np > 0 ? malloc((size_t)np * sizeof *prep) : NULL;
        if (prep) k->conv_prep(M, C, H, W, KH, KW, st, pad, w, prep);
        k->conv_gemm(M, prep ? prep : w, C, H, W, KH, KW, st, pad, m, img, x, bias, beta, out, N,
                     P, work);
        free(prep);
        for (int64_t r = 0; r < M; r++)
            for (int64_t n = 0; n < N; n++) {
                double sum = beta * (double)out0[r * N + n] + (bias ? bias[r] : 0.0),
                       mag = fabs(sum);
                for (int64_t q = 0; q < K; q++) {
                    const double t = (double)tu_bf16(w[r * K + q]) * tu_bf16(col[q * N + n]);
                    sum += t, mag += fabs(t);
                }
                const double err = fabs(out[r * N + n] - sum);
                if (!(err <= TIGHT * mag + 1e-6))
                    fprintf(stderr, "  conv_gemm case %zu: out[%lld,%lld] = %.9g, want %.9g\n", gi,
                            (long long)r, (long long)n, (double)out[r * N + n], sum);
                assert_true(err <= TIGHT * mag + 1e-6);
            }
        /* the weight gradient: dw (M x K) = sum over images of dy_i col_i^T */
        const int64_t dy_img = M * P + 5;
        float *dy = rnd(m * dy_img, -1, 1, seed++), *dw = rnd(M * K, 5, 5, 0);
        float *wk = malloc((size_t)k->conv_dw_work(M, C, H, W, KH, KW, st, pad, m) * sizeof(float));
        assert_non_null(wk);
        k->conv_dw(M, dy, dy_img, C, H, W, KH, KW, st, pad, m, img, x, dw, wk);
        for (int64_t r = 0; r < M; r++)
            for (int64_t q = 0; q < K; q++) {
                double sum = 0, mag = 0;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t t = 0; t < P; t++) {
                        const double v = (double)tu_bf16(dy[i * dy_img + r * P + t]) *
                                         tu_bf16(col[q * N + i * P + t]);
                        sum += v, mag += fabs(v);
                    }
                const double err = fabs(dw[r * K + q] - sum);
                if (!(err <= TIGHT * mag + 1e-6))
                    fprintf(stderr, "  conv_dw case %zu: dw[%lld,%lld] = %.9g, want %.9g\n", gi,
                            (long long)r, (long long)q, (double)dw[r * K + q], sum);
                assert_true(err <= TIGHT * mag + 1e-6);
            }
        free(dy), free(dw), free(wk);
        free(x), free(w), free(out), free(out0), free(col), free(work), free(bias);
    }
}

/* ---- the precision in force ---------------------------------------------------- */

static void test_select(void **state) {
    (void)state;
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_FP32), 1);
    assert_int_equal(gen_kernels_precision(), GEN_PRECISION_FP32);
    assert_string_equal(gen_kernels()->name, "avx512");
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_BF16), 1);
    assert_int_equal(gen_kernels_precision(), GEN_PRECISION_BF16);
    assert_ptr_equal(gen_kernels(), gen_kernels_bf16());
    /* AMX's table where the CPU and kernel allow it */
    if (gen_kernels_for("amx")) assert_ptr_equal(gen_kernels_bf16(), gen_kernels_for("amx"));
    assert_non_null(gen_kernels_bf16());
    /* everything but the products is the AVX-512 table's */
    const struct gen_kernels *f = gen_kernels_for("avx512"), *b = bf16k();
    assert_ptr_equal(b->add, f->add);
    assert_ptr_equal(b->adam, f->adam);
    assert_ptr_equal(b->layernorm_bwd, f->layernorm_bwd);
    assert_true(b->gemm != f->gemm && b->conv_gemm != f->conv_gemm);

    /* gen_gemm goes through it */
    const float a = 1.0f + 0x1p-8f + 0x1p-12f, one = 1.0f;
    float c = 0;
    gen_gemm(0, 0, 1, 1, 1, 1.0f, &a, &one, 0.0f, &c);
    assert_true(c == 1.0f + 0x1p-7f);
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_FP32), 1);
    gen_gemm(0, 0, 1, 1, 1, 1.0f, &a, &one, 0.0f, &c);
    assert_true(c == a);
    assert_string_equal(gen_kernels()->name, "avx512");

    /* other kernels forced: refused, saying why, and nothing changes */
    assert_int_equal(gen_kernels_select("scalar"), 1);
    gen_clear_error();
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_BF16), 0);
    assert_non_null(strstr(gen_last_error(), "AVX-512"));
    assert_string_equal(gen_kernels()->name, "scalar");
    assert_int_equal(gen_kernels_precision(), GEN_PRECISION_FP32);
    assert_int_equal(gen_kernels_select(NULL), 1);
}

/* ---- layers: forward and backward products in bf16 ---------------------------- */

static struct gen_tensor *leaf(struct gen_ctx *g, int ndim, const int64_t *shape, uint64_t seed) {
    struct gen_tensor *t = gen_tensor(g, ndim, shape);
    tu_fill_uniform(t->data, gen_numel(t), -1, 1, seed);
    t->requires_grad = 1;
    return t;
}

/* |got - want| <= TIGHT mag + 1e-6 element by element */
static void assert_near(const char *what, const float *got, const double *want, const double *mag,
                        int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const double err = fabs(got[i] - want[i]);
        if (!(err <= TIGHT * mag[i] + 1e-6))
            fprintf(stderr, "  %s[%lld] = %.9g, want %.9g\n", what, (long long)i, (double)got[i],
                    want[i]);
        assert_true(err <= TIGHT * mag[i] + 1e-6);
    }
}

/* y = x w^T; for the seed r: dx = r w, dw = r^T x, all of rounded operands. */
static void test_linear_layer(void **state) {
    (void)state;
    const int64_t R = 37, IN = 70, OUT = 29;
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_BF16), 1);
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf(&g, 2, (int64_t[]){R, IN}, 1),
                      *w = leaf(&g, 2, (int64_t[]){OUT, IN}, 2);
    struct gen_tensor *y = gen_linear(&g, x, w, NULL);
    float *r = rnd(R * OUT, -1, 1, 3);
    gen_backward_seed(&g, y, r);
    double *want = calloc((size_t)(R * IN + OUT * IN + R * OUT), sizeof *want);
    double *mag = calloc((size_t)(R * IN + OUT * IN + R * OUT), sizeof *mag);
    double *wy = want, *my = mag, *wdx = want + R * OUT, *mdx = mag + R * OUT;
    double *wdw = wdx + R * IN, *mdw = mdx + R * IN;
    for (int64_t i = 0; i < R; i++)
        for (int64_t o = 0; o < OUT; o++)
            for (int64_t k = 0; k < IN; k++) {
                const double xy =
                    (double)tu_bf16(x->data[i * IN + k]) * tu_bf16(w->data[o * IN + k]);
                const double dx = (double)tu_bf16(r[i * OUT + o]) * tu_bf16(w->data[o * IN + k]);
                const double dw = (double)tu_bf16(r[i * OUT + o]) * tu_bf16(x->data[i * IN + k]);
                wy[i * OUT + o] += xy, my[i * OUT + o] += fabs(xy);
                wdx[i * IN + k] += dx, mdx[i * IN + k] += fabs(dx);
                wdw[o * IN + k] += dw, mdw[o * IN + k] += fabs(dw);
            }
    assert_near("y", y->data, wy, my, R * OUT);
    assert_near("dx", x->grad, wdx, mdx, R * IN);
    assert_near("dw", w->grad, wdw, mdw, OUT * IN);
    free(want), free(mag), free(r);
    gen_ctx_free(&g);
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_FP32), 1);
}

/* conv2d forward and backward (the flipped-kernel dx of stride 1, the
 * im2col dx of stride 2, the im2col + gemm dW) against direct loops over
 * rounded operands. */
static void test_conv_layer(void **state) {
    (void)state;
    static const int64_t cases[][4] = {
        {1, 1, 3, 3}, {2, 1, 4, 4}, {1, 0, 1, 1}}; /* stride, pad, KH, KW */
    static const int64_t chans[][2] = {{5, 7}, {32, 32}}; /* CI, CO: 32 for the AMX tiles */
    const int64_t NB = 3, H = 9, W = 8;
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_BF16), 1);
    for (size_t cc = 0; cc < 2 * sizeof cases / sizeof cases[0]; cc++) {
        const size_t ci = cc % (sizeof cases / sizeof cases[0]);
        const int64_t CI = chans[cc / (sizeof cases / sizeof cases[0])][0],
                      CO = chans[cc / (sizeof cases / sizeof cases[0])][1];
        const int64_t s = cases[ci][0], p = cases[ci][1], KH = cases[ci][2], KW = cases[ci][3];
        const int64_t OH = gen_conv_out(H, KH, s, p), OW = gen_conv_out(W, KW, s, p);
        struct gen_ctx g;
        gen_ctx_init(&g);
        struct gen_tensor *x = leaf(&g, 4, (int64_t[]){NB, CI, H, W}, 10 + ci);
        struct gen_tensor *w = leaf(&g, 4, (int64_t[]){CO, CI, KH, KW}, 20 + ci);
        struct gen_tensor *y = gen_conv2d(&g, x, w, NULL, (int)s, (int)p);
        const int64_t ny = NB * CO * OH * OW, nx = NB * CI * H * W, nw = CO * CI * KH * KW;
        float *r = rnd(ny, -1, 1, 30 + ci);
        gen_backward_seed(&g, y, r);
        double *want = calloc((size_t)(ny + nx + nw), sizeof *want);
        double *mag = calloc((size_t)(ny + nx + nw), sizeof *mag);
        for (int64_t n = 0; n < NB; n++)
            for (int64_t co = 0; co < CO; co++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++)
                        for (int64_t c = 0; c < CI; c++)
                            for (int64_t kh = 0; kh < KH; kh++)
                                for (int64_t kw = 0; kw < KW; kw++) {
                                    const int64_t ih = oh * s - p + kh, iw = ow * s - p + kw;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    const int64_t iy = ((n * CO + co) * OH + oh) * OW + ow;
                                    const int64_t ix = ((n * CI + c) * H + ih) * W + iw;
                                    const int64_t iw_ = ((co * CI + c) * KH + kh) * KW + kw;
                                    const double wv = tu_bf16(w->data[iw_]);
                                    const double xv = tu_bf16(x->data[ix]), rv = tu_bf16(r[iy]);
                                    want[iy] += wv * xv, mag[iy] += fabs(wv * xv);
                                    want[ny + ix] += wv * rv, mag[ny + ix] += fabs(wv * rv);
                                    want[ny + nx + iw_] += rv * xv,
                                        mag[ny + nx + iw_] += fabs(rv * xv);
                                }
        assert_near("conv y", y->data, want, mag, ny);
        assert_near("conv dx", x->grad, want + ny, mag + ny, nx);
        assert_near("conv dw", w->grad, want + ny + nx, mag + ny + nx, nw);
        free(want), free(mag), free(r);
        gen_ctx_free(&g);
    }
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_FP32), 1);
}

int main(int argc, char **argv) {
    if (!gen_kernels_for("avx512bf16")) {
        printf("test_bf16: skipped: this CPU or build has no AVX512-BF16 (%s)\n",
               gen_kernels_set_precision(GEN_PRECISION_BF16) ? "?" : gen_last_error());
        return 77;
    }
    if (argc > 1 && !strcmp(argv[1], "amx")) { /* the products on AMX tiles */
        table_name = "amx";
        if (!bf16k()) {
            printf("test_bf16 amx: skipped: this CPU, kernel or build has no AMX-BF16\n");
            return 77;
        }
        const struct CMUnitTest amx_tests[] = {
            cmocka_unit_test(test_gemm),
            cmocka_unit_test(test_rounding),
            cmocka_unit_test(test_threads),
            cmocka_unit_test(test_conv_gemm),
            cmocka_unit_test(test_conv_layer),
        };
        return cmocka_run_group_tests(amx_tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),       cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_threads),    cmocka_unit_test(test_conv_gemm),
        cmocka_unit_test(test_select),     cmocka_unit_test(test_linear_layer),
        cmocka_unit_test(test_conv_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
