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
        k->gemm(GEN_NOTRANS, GEN_NOTRANS, 1, 1, 1, 1.0f, &cases[i][0], 1, &one, 1, 0.0f, &c, 1);
        assert_true(c == cases[i][1]);
        assert_true(tu_bf16(cases[i][0]) == cases[i][1]);
    }
    const float nan = NAN;
    float c = 0;
    k->gemm(GEN_NOTRANS, GEN_NOTRANS, 1, 1, 1, 1.0f, &nan, 1, &one, 1, 0.0f, &c, 1);
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
    k->gemm(GEN_NOTRANS, GEN_TRANS, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    omp_set_num_threads(2);
    k->gemm(GEN_NOTRANS, GEN_TRANS, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        k->gemm(GEN_NOTRANS, GEN_TRANS, M, N, K, 1.0f, A, K, B, K, 0.0f, C3, N);
    }
    omp_set_num_threads(saved);
    assert_memory_equal(C1, C2, (size_t)(M * N) * sizeof(float));
    assert_memory_equal(C1, C3, (size_t)(M * N) * sizeof(float));
    free(A), free(B), free(C1), free(C2), free(C3);
    /* the product with a bias row, as a linear layer's forward runs it */
    assert_non_null(k->gemm_bias);
    tu_check_gemm_bias(k);
    /* products over an operand packed once (attention's): both bf16
     * tables have them */
    assert_non_null(k->gemm_bpacked);
    tu_check_gemm_bpacked(k);
}

/* ---- Winograd's F(2 x 2, 3 x 3) on bf16 operands ----------------------------
 * The vdpbf16ps table runs 3 x 3 stride-1 convolutions of 16 or more
 * input channels (and 8 or more outputs) by Winograd's transform and
 * rounds the transformed operands, not the inputs, to bf16; the AMX table
 * leaves it the ones whose channels are not multiples of 32. The
 * reference below does the same: the transforms in fp32 in the kernels'
 * order of operations (so the rounding sees the same values), the
 * products of the rounded values summed in double, the inverse transform
 * in double, held to the fp32 accumulation's tolerance of its sum of
 * magnitudes. (kernels_impl.h's gen_wino_fits is the rule mirrored, for
 * the table named t.) */
static int winograd(const char *t, int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                    int64_t KW, int64_t st, int64_t pad) {
    const int fits = KH == 3 && KW == 3 && st == 1 && pad >= 0 && pad <= 2 && M >= 8 && C >= 16 &&
                     H + 2 * pad >= 6 && W + 2 * pad >= 6;
    return fits && !(strcmp(t, "amx") == 0 && C % 32 == 0);
}

/* Whether the bf16 tables compute a convolution of C input channels in
 * fp32 (gemm_avx512bf16.c's fp32_conv): one channel under a kernel of
 * several taps. */
static int fp32_conv(int64_t C, int64_t KH, int64_t KW) {
    return C == 1 && KH * KW > 1;
}

/* Whether the table keeps a strided geometry's input gradient (dw = 0) or
 * weight gradient (dw = 1) in fp32: the channels-last kernels' geometries
 * (kernels_impl.h's gen_nhwc_fits mirrored, 48 the GEMM's panel width), the
 * weight gradient where AMX's tiles do not take it; for the table named t. */
static int fp32_grad(const char *t, int dw, int64_t C, int64_t KH, int64_t KW, int64_t st) {
    if (!(st > 1 && KH * KW <= 16 && KW * C >= 48 && st * C >= 48)) return 0;
    return !dw || !(strcmp(t, "amx") == 0 && C % 32 == 0 && KH * KW <= 64);
}

/* An operand of the reference: rounded to bf16, or as it is where the
 * table computes in fp32. */
static double operand(float v, int fp32) {
    return fp32 ? (double)v : (double)tu_bf16(v);
}

/* A^T (output from products) and G^T (kernel gradient from products) */
static const double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const double GT[3][4] = {{1, 0.5, 0.5, 0}, {0, 0.5, -0.5, 0}, {0, 0.5, 0.5, 1}};

/* u = G g G^T of a 3 x 3 kernel, rounded to bf16 */
static void wino_kernel(const float *g, float u[16]) {
    float t[4][3];
    for (int v = 0; v < 3; v++) {
        const float k0 = g[v], k1 = g[3 + v], k2 = g[6 + v], s02 = k0 + k2;
        t[0][v] = k0, t[1][v] = 0.5f * (s02 + k1), t[2][v] = 0.5f * (s02 - k1), t[3][v] = k2;
    }
    for (int r = 0; r < 4; r++) {
        const float s02 = t[r][0] + t[r][2];
        u[4 * r + 0] = tu_bf16(t[r][0]), u[4 * r + 1] = tu_bf16(0.5f * (s02 + t[r][1]));
        u[4 * r + 2] = tu_bf16(0.5f * (s02 - t[r][1])), u[4 * r + 3] = tu_bf16(t[r][2]);
    }
}

/* v = B^T d B of the 4 x 4 tile of plane x (H x W) from (y0, x0), zeros
 * outside, rounded to bf16 */
static void wino_input(const float *x, int64_t H, int64_t W, int64_t y0, int64_t x0, float v[16]) {
    float w[4][4];
    for (int k = 0; k < 4; k++) {
        float d[4];
        for (int l = 0; l < 4; l++) {
            const int64_t ih = y0 + k, iw = x0 + l;
            d[l] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[ih * W + iw] : 0.0f;
        }
        w[k][0] = d[0] - d[2], w[k][1] = d[1] + d[2], w[k][2] = d[2] - d[1], w[k][3] = d[1] - d[3];
    }
    for (int q = 0; q < 4; q++) {
        v[0 + q] = tu_bf16(w[0][q] - w[2][q]), v[4 + q] = tu_bf16(w[1][q] + w[2][q]);
        v[8 + q] = tu_bf16(w[2][q] - w[1][q]), v[12 + q] = tu_bf16(w[1][q] - w[3][q]);
    }
}

/* want (and mag, the sum of magnitudes) += the convolution of the m
 * images at x (C planes H x W each, img floats apart) with the M x C 3 x 3
 * kernels w, padded by pad: output (i, co, oh, ow) at i oimg + co ldo +
 * oh OW + ow. */
static void wino_ref_conv(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m,
                          const float *x, int64_t img, const float *w, int64_t oimg, int64_t ldo,
                          double *want, double *mag) {
    const int64_t OH = H + 2 * pad - 2, OW = W + 2 * pad - 2;
    float *u = malloc((size_t)(M * C * 16) * sizeof *u), v[16];
    assert_non_null(u);
    for (int64_t q = 0; q < M * C; q++) wino_kernel(w + q * 9, u + q * 16);
    for (int64_t i = 0; i < m; i++)
        for (int64_t ty = 0; 2 * ty < OH; ty++)
            for (int64_t tx = 0; 2 * tx < OW; tx++)
                for (int64_t co = 0; co < M; co++) {
                    double prod[16] = {0}, pmag[16] = {0};
                    for (int64_t c = 0; c < C; c++) {
                        wino_input(x + i * img + c * H * W, H, W, 2 * ty - pad, 2 * tx - pad, v);
                        for (int xi = 0; xi < 16; xi++) {
                            const double t = (double)u[(co * C + c) * 16 + xi] * v[xi];
                            prod[xi] += t, pmag[xi] += fabs(t);
                        }
                    }
                    for (int a = 0; a < 2 && 2 * ty + a < OH; a++)
                        for (int b = 0; b < 2 && 2 * tx + b < OW; b++) {
                            const int64_t o = i * oimg + co * ldo + (2 * ty + a) * OW + 2 * tx + b;
                            for (int xi = 0; xi < 16; xi++) {
                                const double f = AT[a][xi / 4] * AT[b][xi % 4];
                                want[o] += f * prod[xi], mag[o] += fabs(f) * pmag[xi];
                            }
                        }
                }
    free(u);
}

/* want (and mag) = the weight gradient (M x C 9) of that convolution for
 * the output gradient dy (M planes OH x OW per image, dy_img apart):
 * sum over tiles of G^T [(A dy A^T) (.) (B^T d B)] G, both factors
 * rounded to bf16. */
static void wino_ref_dw(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m,
                        const float *x, int64_t img, const float *dy, int64_t dy_img,
                        double *want, double *mag) {
    const int64_t OH = H + 2 * pad - 2, OW = W + 2 * pad - 2;
    double *pr = calloc((size_t)(M * C * 16), sizeof *pr);
    double *pm = calloc((size_t)(M * C * 16), sizeof *pm);
    assert_true(pr && pm);
    for (int64_t i = 0; i < m; i++)
        for (int64_t ty = 0; 2 * ty < OH; ty++)
            for (int64_t tx = 0; 2 * tx < OW; tx++)
                for (int64_t co = 0; co < M; co++) {
                    float u[2][4], d[16], v[16];
                    for (int a = 0; a < 2; a++) {
                        const int64_t oh = 2 * ty + a;
                        const float *row = dy + i * dy_img + co * OH * OW + oh * OW + 2 * tx;
                        const float e = oh < OH ? row[0] : 0.0f;
                        const float o = oh < OH && 2 * tx + 1 < OW ? row[1] : 0.0f;
                        u[a][0] = e, u[a][1] = e + o, u[a][2] = e - o, u[a][3] = 0.0f - o;
                    }
                    for (int q = 0; q < 4; q++) {
                        d[0 + q] = tu_bf16(u[0][q]), d[4 + q] = tu_bf16(u[0][q] + u[1][q]);
                        d[8 + q] = tu_bf16(u[0][q] - u[1][q]), d[12 + q] = tu_bf16(0.0f - u[1][q]);
                    }
                    for (int64_t c = 0; c < C; c++) {
                        wino_input(x + i * img + c * H * W, H, W, 2 * ty - pad, 2 * tx - pad, v);
                        for (int xi = 0; xi < 16; xi++) {
                            const double t = (double)d[xi] * v[xi];
                            pr[(co * C + c) * 16 + xi] += t, pm[(co * C + c) * 16 + xi] += fabs(t);
                        }
                    }
                }
    for (int64_t q = 0; q < M * C; q++)
        for (int r = 0; r < 9; r++) {
            double s = 0, sm = 0;
            for (int xi = 0; xi < 16; xi++) {
                const double f = GT[r / 3][xi / 4] * GT[r % 3][xi % 4];
                s += f * pr[q * 16 + xi], sm += fabs(f) * pm[q * 16 + xi];
            }
            want[q * 9 + r] = s, mag[q * 9 + r] = sm;
        }
    free(pr), free(pm);
}

/* ---- the implicit-GEMM convolution ------------------------------------------ */

/* Where the table takes x as bf16 (conv_gemm_b16, conv_dw_b16), the bits
 * of conv_gemm and conv_dw_db on the same values in fp32: x rounded to
 * bf16 is what both read. */
static void b16_same(const struct gen_kernels *k, int64_t M, int64_t C, int64_t H, int64_t W,
                     int64_t KH, int64_t KW, int64_t st, int64_t pad, int64_t m, int64_t img,
                     const float *x, const float *w, const float *bias, float beta, const float *dy,
                     int64_t dy_img) {
    const int64_t P = gen_conv_out(H, KH, st, pad) * gen_conv_out(W, KW, st, pad);
    const int64_t N = m * P, K = C * KH * KW;
    float *xr = malloc((size_t)(m * img) * sizeof *xr);
    uint16_t *xh = malloc((size_t)(m * img) * sizeof *xh);
    assert_true(xr && xh);
    for (int64_t i = 0; i < m * img; i++) {
        uint32_t u;
        xr[i] = tu_bf16(x[i]);
        memcpy(&u, &xr[i], sizeof u);
        xh[i] = (uint16_t)(u >> 16);
    }
    const int64_t np = k->conv_prep_work ? k->conv_prep_work(M, C, H, W, KH, KW, st, pad) : 0;
    float *prep = np > 0 ? malloc((size_t)np * sizeof *prep) : NULL;
    if (prep) k->conv_prep(M, C, H, W, KH, KW, st, pad, w, prep);
    const int64_t nw = k->conv_gemm_work(M, C, H, W, KH, KW, st, pad, m);
    assert_true(nw > 0);
    float *work = malloc((size_t)nw * sizeof *work);
    float *a = rnd(M * N, -1, 1, 77), *b = malloc((size_t)(M * N) * sizeof *b);
    assert_true(work && b);
    memcpy(b, a, (size_t)(M * N) * sizeof *b);
    k->conv_gemm(M, prep ? prep : w, C, H, W, KH, KW, st, pad, m, img, xr, bias, beta, a, N, P,
                 work);
    k->conv_gemm_b16(M, prep ? prep : w, C, H, W, KH, KW, st, pad, m, img, xh, bias, beta, b, N, P,
                     work);
    assert_memory_equal(a, b, (size_t)(M * N) * sizeof *a);
    const int64_t nd = k->conv_dw_work(M, C, H, W, KH, KW, st, pad, m);
    assert_true(nd > 0);
    float *wk = malloc((size_t)nd * sizeof *wk), *dwa = rnd(M * K, 5, 5, 0);
    float *dwb = rnd(M * K, 7, 7, 0), *dba = rnd(M, 5, 5, 0), *dbb = rnd(M, 7, 7, 0);
    assert_non_null(wk);
    k->conv_dw_db(M, dy, dy_img, C, H, W, KH, KW, st, pad, m, img, xr, dwa, dba, wk);
    k->conv_dw_b16(M, dy, dy_img, C, H, W, KH, KW, st, pad, m, img, xh, dwb, dbb, wk);
    assert_memory_equal(dwa, dwb, (size_t)(M * K) * sizeof *dwa);
    assert_memory_equal(dba, dbb, (size_t)M * sizeof *dba);
    free(xr), free(xh), free(prep), free(work), free(a), free(b);
    free(wk), free(dwa), free(dwb), free(dba), free(dbb);
}

/* The convolution and its weight gradient over kernel sizes, strides,
 * paddings, odd depths and several images per call (image boundaries
 * inside packed panels), odd channel counts (a zero channel completes
 * the last pair), several slices of pairs and output heights, against the
 * scalar im2col and the rounded reference (the weight gradient of what
 * the table keeps in fp32, fp32_grad: the plain one). */
static void test_conv_gemm(void **state) {
    (void)state;
    const struct gen_kernels *k = bf16k(), *sc = gen_kernels_for("scalar");
    assert_non_null(k->conv_dw);
    static const int64_t geo[][10] = {
        /* C, H, W, KH, KW, stride, pad, m (, M: 0 for 10 or 37, and beta where M is given) */
        {1, 5, 5, 1, 1, 1, 0, 1},
        {3, 7, 9, 3, 3, 1, 1, 3},
        {2, 8, 8, 4, 4, 2, 1, 2},
        {4, 28, 28, 3, 3, 1, 1, 2},
        {5, 6, 11, 3, 2, 2, 0, 5},
        {2, 4, 4, 5, 5, 1, 2, 7},
        {3, 13, 13, 3, 3, 3, 2, 1},
        {16, 7, 7, 3, 3, 1, 1, 9},
        {1, 3, 3, 3, 3, 1, 2, 4},
        {3, 30, 40, 3, 3, 1, 1, 3},
        {4, 9, 9, 3, 3, 2, 1, 3},
        /* deep enough for two slices of pairs, odd and even channel counts */
        {64, 14, 14, 3, 3, 1, 1, 2},
        {65, 10, 10, 3, 3, 1, 1, 1},
        {33, 12, 12, 3, 3, 2, 1, 2},
        /* multiples of 32 channels (the AMX table's tiles): strided, odd sizes, 1 x 1, 4 x 4 */
        {32, 9, 9, 3, 3, 2, 1, 3},
        {32, 7, 5, 3, 3, 1, 1, 4},
        {96, 6, 6, 1, 1, 1, 0, 2},
        {64, 14, 14, 4, 4, 2, 1, 2},
        {32, 12, 12, 9, 9, 1, 4, 1}, /* 81 taps: not on tiles */
        /* stride 1, padded rows of one vector (Wq 30: two stores of pairs) and longer (Wq 38) */
        {32, 28, 28, 3, 3, 1, 1, 2},
        {32, 9, 34, 3, 3, 1, 2, 1},
        /* 25 taps on tiles: the weight gradient's taps in two rounds of 16 */
        {32, 10, 10, 5, 5, 1, 2, 1},
        /* Winograd's GEMMs deeper than one slice of pairs (401 channels), pad 0 and 2 */
        {401, 6, 7, 3, 3, 1, 1, 2},
        {24, 8, 9, 3, 3, 1, 0, 2},
        {17, 5, 6, 3, 3, 1, 2, 3},
        /* whole blocks of 32 output channels into rows of 16 or more, overwritten (beta 0;
         * a bias on the odd cases): AMX's tiles stored straight into out, rows of 28 (two
         * overlapping tiles), of 36 (three, an odd count an image), stride 2 (20); rows
         * of 14 and 12 on wide grids of 16 (each tile spilling into the next row, the last
         * row's not), an odd count of rows, the next image's rows right after; rows of 13
         * on a grid of 15 (through the grid) */
        {32, 28, 28, 3, 3, 1, 1, 2, 32},
        {32, 9, 34, 3, 3, 1, 2, 1, 64},
        {32, 40, 40, 3, 3, 2, 1, 1, 32},
        {32, 14, 14, 3, 3, 1, 1, 3, 32},
        {32, 11, 14, 3, 3, 1, 1, 2, 64},
        {32, 12, 12, 5, 5, 1, 2, 2, 32},
        {32, 13, 13, 3, 3, 1, 1, 2, 32},
        /* the same added to (beta 1, through the wide grid): rows of 28, 48 and 36, with
         * and without a bias */
        {32, 28, 28, 3, 3, 1, 1, 2, 32, 1},
        {32, 28, 28, 3, 3, 1, 1, 1, 64, 1},
        {32, 48, 48, 3, 3, 1, 1, 1, 32, 1},
        {32, 48, 48, 3, 3, 1, 1, 1, 32, 1},
        {32, 9, 34, 3, 3, 1, 2, 1, 32, 1},
    };
    uint64_t seed = 300;
    for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++) {
        const int64_t C = geo[gi][0], H = geo[gi][1], W = geo[gi][2], KH = geo[gi][3],
                      KW = geo[gi][4], st = geo[gi][5], pad = geo[gi][6], m = geo[gi][7];
        const int64_t P = gen_conv_out(H, KH, st, pad) * gen_conv_out(W, KW, st, pad);
        const int64_t K = C * KH * KW, N = m * P, img = C * H * W + 3;
        const int64_t M = geo[gi][8] ? geo[gi][8] : gi % 3 ? 10 : 37;
        const float beta = geo[gi][8] ? (float)geo[gi][9] : gi % 2 == 0 ? 0.0f : 1.0f;
        float *x = rnd(m * img, -1, 1, seed++), *w = rnd(M * K, -1, 1, seed++);
        float *out = rnd(M * N, -1, 1, seed++), *out0 = malloc((size_t)(M * N) * sizeof *out0);
        float *col = rnd(K * N, 0, 0, 0);
        float *work =
            malloc((size_t)k->conv_gemm_work(M, C, H, W, KH, KW, st, pad, m) * sizeof(float));
        assert_non_null(work);
        memcpy(out0, out, (size_t)(M * N) * sizeof *out0);
        for (int64_t i = 0; i < m; i++)
            sc->im2col_ld(C, H, W, KH, KW, st, pad, N, x + i * img, col + i * P);
        const int with_bias = geo[gi][8] ? gi % 2 == 1 : gi % 3 == 1; /* a bias on some */
        float *bias = with_bias ? rnd(M, -1, 1, seed++) : NULL;
        /* the kernels in the form conv_gemm takes them, as ops_conv.c prepares them */
        const int64_t np = k->conv_prep_work ? k->conv_prep_work(M, C, H, W, KH, KW, st, pad) : 0;
        float *prep = np > 0 ? malloc((size_t)np * sizeof *prep) : NULL;
        if (prep) k->conv_prep(M, C, H, W, KH, KW, st, pad, w, prep);
        k->conv_gemm(M, prep ? prep : w, C, H, W, KH, KW, st, pad, m, img, x, bias, beta, out, N,
                     P, work);
        free(prep);
        /* the reference: the direct products of rounded operands, or Winograd's */
        const int wino = winograd(table_name, M, C, H, W, KH, KW, st, pad);
        double *want = calloc((size_t)(M * N + M * K), sizeof *want);
        double *mag = calloc((size_t)(M * N + M * K), sizeof *mag);
        assert_true(want && mag);
        for (int64_t r = 0; r < M; r++)
            for (int64_t n = 0; n < N; n++) {
                double *o = want + r * N + n, *om = mag + r * N + n;
                *o = beta * (double)out0[r * N + n] + (bias ? bias[r] : 0.0), *om = fabs(*o);
                for (int64_t q = 0; q < K && !wino; q++) {
                    const double t = operand(w[r * K + q], fp32_conv(C, KH, KW)) *
                                     operand(col[q * N + n], fp32_conv(C, KH, KW));
                    *o += t, *om += fabs(t);
                }
            }
        if (wino) wino_ref_conv(M, C, H, W, pad, m, x, img, w, P, N, want, mag);
        for (int64_t r = 0; r < M; r++)
            for (int64_t n = 0; n < N; n++) {
                const double err = fabs(out[r * N + n] - want[r * N + n]);
                if (!(err <= TIGHT * mag[r * N + n] + 1e-6))
                    fprintf(stderr, "  conv_gemm case %zu%s: out[%lld,%lld] = %.9g, want %.9g\n",
                            gi, wino ? " (Winograd)" : "", (long long)r, (long long)n,
                            (double)out[r * N + n], want[r * N + n]);
                assert_true(err <= TIGHT * mag[r * N + n] + 1e-6);
            }
        /* the weight gradient: dw (M x K) = sum over images of dy_i col_i^T */
        const int64_t dy_img = M * P + 5;
        float *dy = rnd(m * dy_img, -1, 1, seed++), *dw = rnd(M * K, 5, 5, 0);
        float *wk = malloc((size_t)k->conv_dw_work(M, C, H, W, KH, KW, st, pad, m) * sizeof(float));
        assert_non_null(wk);
        k->conv_dw(M, dy, dy_img, C, H, W, KH, KW, st, pad, m, img, x, dw, wk);
        double *wdw = want + M * N, *mdw = mag + M * N;
        const int dw32 = fp32_conv(C, KH, KW) || fp32_grad(table_name, 1, C, KH, KW, st);
        if (wino)
            wino_ref_dw(M, C, H, W, pad, m, x, img, dy, dy_img, wdw, mdw);
        else
            for (int64_t r = 0; r < M; r++)
                for (int64_t q = 0; q < K; q++)
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t t = 0; t < P; t++) {
                            const double v = operand(dy[i * dy_img + r * P + t], dw32) *
                                             operand(col[q * N + i * P + t], dw32);
                            wdw[r * K + q] += v, mdw[r * K + q] += fabs(v);
                        }
        for (int64_t e = 0; e < M * K; e++) {
            const double err = fabs(dw[e] - wdw[e]);
            if (!(err <= TIGHT * mdw[e] + 1e-6))
                fprintf(stderr, "  conv_dw case %zu%s: dw[%lld,%lld] = %.9g, want %.9g\n", gi,
                        wino ? " (Winograd)" : "", (long long)(e / K), (long long)(e % K),
                        (double)dw[e], wdw[e]);
            assert_true(err <= TIGHT * mdw[e] + 1e-6);
        }
        if (k->conv_dw_db) { /* the same dw bit for bit, and db = dy's rows summed */
            float *dw2 = rnd(M * K, 5, 5, 0), *db = rnd(M, 5, 5, 0);
            k->conv_dw_db(M, dy, dy_img, C, H, W, KH, KW, st, pad, m, img, x, dw2, db, wk);
            assert_memory_equal(dw2, dw, (size_t)(M * K) * sizeof *dw);
            for (int64_t r = 0; r < M; r++) {
                double sum = 0, smag = 0;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t t = 0; t < P; t++)
                        sum += dy[i * dy_img + r * P + t], smag += fabs(dy[i * dy_img + r * P + t]);
                if (!(fabs(db[r] - sum) <= 1e-6 * smag))
                    fprintf(stderr, "  conv_dw_db case %zu: db[%lld] = %.9g, want %.9g\n", gi,
                            (long long)r, (double)db[r], sum);
                assert_true(fabs(db[r] - sum) <= 1e-6 * smag);
            }
            free(dw2), free(db);
        }
        if (k->conv_b16_fits && k->conv_b16_fits(C, KH, KW, st))
            b16_same(k, M, C, H, W, KH, KW, st, pad, m, img, x, w, bias, beta, dy, dy_img);
        else if (k->conv_b16_fits) /* declined: stride 2, or not on tiles */
            assert_true(st > 1 || C % 32 || KH * KW > 64);
        free(want), free(mag);
        free(dy), free(dw), free(wk);
        free(x), free(w), free(out), free(out0), free(col), free(work), free(bias);
    }
}

/* ---- group norm then SiLU into bf16 ------------------------------------------------ */

/* The bits of y rounded to bf16 */
static uint16_t bf16_bits(float y) {
    const float r = tu_bf16(y);
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return (uint16_t)(u >> 16);
}

/* y[0..n) rounded to bf16 is yb, bit for bit; returns how many of y are
 * denormal (which round to zero). */
static int same_rounded(const char *name, int64_t n, const float *y, const uint16_t *yb) {
    int tiny = 0;
    for (int64_t i = 0; i < n; i++) {
        tiny += y[i] != 0 && fabsf(y[i]) < 0x1p-126f;
        if (yb[i] != bf16_bits(y[i]))
            fprintf(stderr, "  %s y[%lld] = %#06x, want %#06x (%.9g)\n", name, (long long)i, yb[i],
                    bf16_bits(y[i]), (double)y[i]);
        assert_int_equal(yb[i], bf16_bits(y[i]));
    }
    return tiny;
}

/* The table's groupnorm_silu_fwd_b16 gives the AVX-512 table's
 * groupnorm_silu_fwd rounded to bf16 bit for bit (with and without a
 * shift, a tail of a vector, and gamma and beta that take some outputs
 * into the denormals, which round to zero); mean and rstd as it gives
 * them. The fp32 tables have none. */
static void test_groupnorm_b16(void **state) {
    (void)state;
    assert_null(gen_kernels_for("avx512")->groupnorm_silu_fwd_b16);
    assert_null(gen_kernels_for("scalar")->groupnorm_silu_fwd_b16);
    const int64_t N = 3, C = 8, G = 4, HW = 53, n = N * C * HW;
    float *x = rnd(n, -3, 3, 900), *shift = rnd(N * C, -1, 1, 901);
    float *gamma = rnd(C, 20, 40, 902), *beta = rnd(C, -70, -50, 903);
    float *y = malloc((size_t)n * sizeof *y), *st = malloc((size_t)(4 * N * G) * sizeof *st);
    uint16_t *yb = malloc((size_t)n * sizeof *yb);
    assert_true(y && st && yb);
    for (int sh = 0; sh < 2; sh++) {
        const struct gen_kernels *k = bf16k(), *ref = gen_kernels_for("avx512");
        assert_non_null(k->groupnorm_silu_fwd_b16);
        ref->groupnorm_silu_fwd(N, C, HW, G, x, sh ? shift : NULL, gamma, beta, 1e-5f, y, st,
                                st + N * G);
        k->groupnorm_silu_fwd_b16(N, C, HW, G, x, sh ? shift : NULL, gamma, beta, 1e-5f, yb,
                                  st + 2 * N * G, st + 3 * N * G);
        assert_true(same_rounded(k->name, n, y, yb) > 0);
        assert_memory_equal(st, st + 2 * N * G, (size_t)(2 * N * G) * sizeof *st);
    }
    free(x), free(shift), free(gamma), free(beta), free(y), free(st), free(yb);
}

/* The vdpbf16ps table's layernorm_fwd_b16 gives the AVX-512 table's
 * layernorm_fwd rounded to bf16 bit for bit (gamma and beta, each alone,
 * neither; rows of 37 values, a tail of a vector; a gamma that takes
 * outputs into the denormals, which round to zero); mean and rstd as it
 * gives them. The fp32 tables have none. */
static void test_layernorm_b16(void **state) {
    (void)state;
    assert_null(gen_kernels_for("avx512")->layernorm_fwd_b16);
    assert_null(gen_kernels_for("scalar")->layernorm_fwd_b16);
    const struct gen_kernels *k = gen_kernels_for("avx512bf16"), *ref = gen_kernels_for("avx512");
    assert_non_null(k->layernorm_fwd_b16);
    const int64_t rows = 9, C = 37, n = rows * C;
    float *x = rnd(n, -3, 3, 910), *gamma = rnd(C, 1e-38f, 4e-38f, 911),
          *beta = rnd(C, -70, -50, 912);
    float *y = malloc((size_t)n * sizeof *y), *st = malloc((size_t)(4 * rows) * sizeof *st);
    uint16_t *yb = malloc((size_t)n * sizeof *yb);
    assert_true(y && st && yb);
    for (int w = 0; w < 4; w++) {
        const float *gm = w & 1 ? gamma : NULL, *bt = w & 2 ? beta : NULL;
        ref->layernorm_fwd(rows, C, x, gm, bt, 1e-5f, y, st, st + rows);
        k->layernorm_fwd_b16(rows, C, x, gm, bt, 1e-5f, yb, st + 2 * rows, st + 3 * rows);
        assert_true((same_rounded(k->name, n, y, yb) > 0) == (w == 1));
        assert_memory_equal(st, st + 2 * rows, (size_t)(2 * rows) * sizeof *st);
    }
    free(x), free(gamma), free(beta), free(y), free(st), free(yb);
}

/* The vdpbf16ps table's softmax_fwd_b16 gives the AVX-512 table's
 * softmax_fwd rounded to bf16 bit for bit, and softmax_grad_b16 what
 * softmax_grad gives on the floats its bf16 y widens to, rounded likewise
 * (rows of 1 to 129 values, a causal row's -inf, a wide range); the fp32
 * tables have none. */
static void test_softmax_b16(void **state) {
    (void)state;
    assert_null(gen_kernels_for("avx512")->softmax_fwd_b16);
    assert_null(gen_kernels_for("scalar")->softmax_grad_b16);
    const struct gen_kernels *k = gen_kernels_for("avx512bf16"), *ref = gen_kernels_for("avx512");
    assert_true(k->softmax_fwd_b16 && k->softmax_grad_b16);
    static const int64_t cols[] = {1, 15, 16, 17, 128, 129};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        const int64_t rows = 3, n = rows * cols[c];
        float *x = rnd(n, -30, 30, 930 + c), *dy = rnd(n, -2, 2, 940 + c);
        if (cols[c] > 2) x[cols[c] - 1] = -INFINITY; /* row 0's last: masked */
        float *y = malloc((size_t)n * sizeof *y), *yw = malloc((size_t)n * sizeof *yw);
        float *dx = malloc((size_t)n * sizeof *dx), *xs = malloc((size_t)n * sizeof *xs);
        uint16_t *yb = malloc((size_t)n * sizeof *yb), *dxb = malloc((size_t)n * sizeof *dxb);
        assert_true(y && yw && dx && xs && yb && dxb);
        memcpy(xs, x, (size_t)n * sizeof *xs);
        ref->softmax_fwd(rows, cols[c], x, y);
        k->softmax_fwd_b16(rows, cols[c], xs, yb);
        same_rounded(k->name, n, y, yb);
        for (int64_t i = 0; i < n; i++) {
            const uint32_t u = (uint32_t)yb[i] << 16;
            memcpy(&yw[i], &u, sizeof u);
        }
        ref->softmax_grad(rows, cols[c], yw, dy, dx, GEN_GRAD_SET);
        k->softmax_grad_b16(rows, cols[c], yb, dy, dxb);
        same_rounded(k->name, n, dx, dxb);
        free(x), free(dy), free(y), free(yw), free(dx), free(xs), free(yb), free(dxb);
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
    gen_gemm(GEN_NOTRANS, GEN_NOTRANS, 1, 1, 1, 1.0f, &a, &one, 0.0f, &c);
    assert_true(c == 1.0f + 0x1p-7f);
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_FP32), 1);
    gen_gemm(GEN_NOTRANS, GEN_NOTRANS, 1, 1, 1, 1.0f, &a, &one, 0.0f, &c);
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
 * rounded operands, or over the operands as they are for the strided
 * gradients the table keeps in fp32 (fp32_grad). */
static void test_conv_layer(void **state) {
    (void)state;
    static const int64_t cases[][4] = {
        {1, 1, 3, 3}, {2, 1, 4, 4}, {1, 0, 1, 1}}; /* stride, pad, KH, KW */
    /* CI, CO: 32 for the AMX tiles; one channel in (forward and dw in fp32) and out (the
     * stride-1 dx, a convolution of one channel, in fp32) */
    static const int64_t chans[][2] = {{5, 7}, {32, 32}, {1, 32}, {32, 1}};
    const int64_t NB = 3, H = 9, W = 8;
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_BF16), 1);
    /* The layers run on the table the precision puts in force, AMX's
     * where the CPU has it whichever table this run tests, so the
     * reference follows that table's rules. */
    const char *t = gen_kernels_bf16()->name;
    for (size_t cc = 0; cc < sizeof chans / sizeof chans[0] * sizeof cases / sizeof cases[0];
         cc++) {
        const size_t ci = cc % (sizeof cases / sizeof cases[0]);
        const int64_t CI = chans[cc / (sizeof cases / sizeof cases[0])][0],
                      CO = chans[cc / (sizeof cases / sizeof cases[0])][1];
        const int64_t s = cases[ci][0], p = cases[ci][1], KH = cases[ci][2], KW = cases[ci][3];
        const int64_t OH = gen_conv_out(H, KH, s, p), OW = gen_conv_out(W, KW, s, p);
        struct gen_ctx g;
        gen_ctx_init(&g);
        struct gen_tensor *x = leaf(&g, 4, (int64_t[]){NB, CI, H, W}, 10 + ci);
        struct gen_tensor *w = leaf(&g, 4, (int64_t[]){CO, CI, KH, KW}, 20 + ci);
        struct gen_tensor *b = leaf(&g, 1, (int64_t[]){CO}, 40 + ci); /* fp32 throughout */
        struct gen_tensor *y = gen_conv2d(&g, x, w, b, (int)s, (int)p);
        const int64_t ny = NB * CO * OH * OW, nx = NB * CI * H * W, nw = CO * CI * KH * KW;
        float *r = rnd(ny, -1, 1, 30 + ci);
        gen_backward_seed(&g, y, r);
        double *want = calloc((size_t)(ny + nx + nw), sizeof *want);
        double *mag = calloc((size_t)(ny + nx + nw), sizeof *mag);
        const int y32 = fp32_conv(CI, KH, KW), dw32 = y32 || fp32_grad(t, 1, CI, KH, KW, s);
        const int dx32 = s > 1 ? fp32_grad(t, 0, CI, KH, KW, s) : fp32_conv(CO, KH, KW);
        double *wb = calloc((size_t)(2 * CO), sizeof *wb); /* db = r summed, and its mag */
        assert_true(want && mag && wb);
        for (int64_t q = 0; q < ny; q++) {
            const int64_t co = q / (OH * OW) % CO;
            wb[co] += r[q], wb[CO + co] += fabs(r[q]);
        }
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
                                    const double wv = operand(w->data[iw_], y32);
                                    const double xv = operand(x->data[ix], y32);
                                    want[iy] += wv * xv, mag[iy] += fabs(wv * xv);
                                    const double dx = operand(w->data[iw_], dx32) *
                                                      operand(r[iy], dx32);
                                    want[ny + ix] += dx, mag[ny + ix] += fabs(dx);
                                    const double dw = operand(r[iy], dw32) *
                                                      operand(x->data[ix], dw32);
                                    want[ny + nx + iw_] += dw, mag[ny + nx + iw_] += fabs(dw);
                                }
        /* Winograd's for what runs it: y, dx (dy with the flipped kernels), dw */
        const int64_t img = CI * H * W, oimg = CO * OH * OW;
        if (winograd(t, CO, CI, H, W, KH, KW, s, p)) {
            memset(want, 0, (size_t)ny * sizeof *want), memset(mag, 0, (size_t)ny * sizeof *mag);
            wino_ref_conv(CO, CI, H, W, p, NB, x->data, img, w->data, oimg, OH * OW, want, mag);
            wino_ref_dw(CO, CI, H, W, p, NB, x->data, img, r, oimg, want + ny + nx,
                        mag + ny + nx);
        }
        if (s == 1 && winograd(t, CI, CO, OH, OW, KH, KW, 1, KH - 1 - p)) {
            float *wf = malloc((size_t)nw * sizeof *wf);
            assert_non_null(wf);
            for (int64_t q = 0; q < nw; q++) /* wf[c][co] = w[co][c] turned half round */
                wf[(q / (KH * KW) % CI * CO + q / (CI * KH * KW)) * KH * KW + KH * KW - 1 -
                   q % (KH * KW)] = w->data[q];
            memset(want + ny, 0, (size_t)nx * sizeof *want);
            memset(mag + ny, 0, (size_t)nx * sizeof *mag);
            wino_ref_conv(CI, CO, OH, OW, KH - 1 - p, NB, r, oimg, wf, img, H * W, want + ny,
                          mag + ny);
            free(wf);
        }
        for (int64_t q = 0; q < ny; q++) { /* the bias, added in fp32 */
            want[q] += b->data[q / (OH * OW) % CO];
            mag[q] += fabs(b->data[q / (OH * OW) % CO]);
        }
        assert_near("conv y", y->data, want, mag, ny);
        assert_near("conv dx", x->grad, want + ny, mag + ny, nx);
        assert_near("conv dw", w->grad, want + ny + nx, mag + ny + nx, nw);
        assert_near("conv db", b->grad, wb, wb + CO, CO);
        free(want), free(mag), free(r), free(wb);
        gen_ctx_free(&g);
    }
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_FP32), 1);
}

/* y seeded with random gradients and run back, then y's values and the
 * gradients of got[1 .. n_got) (those not NULL) appended to out (n floats
 * at most); returns how many. */
static int64_t results(struct gen_ctx *g, struct gen_tensor *y, struct gen_tensor *const *got,
                       size_t n_got, uint64_t seed_of, float *out, int64_t n) {
    float *seed = rnd(gen_numel(y), -1, 1, seed_of);
    gen_backward_seed(g, y, seed);
    int64_t k = 0;
    for (size_t i = 0; i < n_got; i++) {
        const float *v = i == 0 ? y->data : got[i] ? got[i]->grad : NULL;
        if (!v) continue;
        assert_true(k + gen_numel(got[i]) <= n);
        memcpy(out + k, v, (size_t)gen_numel(got[i]) * sizeof *out);
        k += gen_numel(got[i]);
    }
    free(seed);
    return k;
}

/* silu(groupnorm(x (+ shift))) into a convolution (kind 0: conv2d; 1:
 * conv2d_add onto r; 2: conv2d_sum with a 1 x 1 convolution of x2), C
 * channels in, stride s, by gen_groupnorm_silu_operand or the plain op
 * (operand 0): y, then every gradient, into out (results); returns how
 * many, and whether the norm's output was held as bf16 in *held. */
static int64_t operand_run(int operand, int64_t C, int64_t s, int kind, float *out, int64_t n,
                           int *held) {
    const int64_t N = 3, H = 9, W = 8, CO = 32, C2 = 5, G = C % 4 ? 1 : 4;
    const int64_t OH = gen_conv_out(H, 3, s, 1), OW = gen_conv_out(W, 3, s, 1);
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf(&g, 4, (int64_t[]){N, C, H, W}, 50);
    struct gen_tensor *gm = leaf(&g, 1, (int64_t[]){C}, 51), *bt = leaf(&g, 1, (int64_t[]){C}, 52);
    struct gen_tensor *sh = kind == 1 ? leaf(&g, 2, (int64_t[]){N, C}, 53) : NULL;
    struct gen_tensor *w = leaf(&g, 4, (int64_t[]){CO, C, 3, 3}, 54);
    struct gen_tensor *b = leaf(&g, 1, (int64_t[]){CO}, 55);
    struct gen_tensor *r = leaf(&g, 4, (int64_t[]){N, CO, OH, OW}, 56);
    struct gen_tensor *x2 = leaf(&g, 4, (int64_t[]){N, C2, OH, OW}, 57);
    struct gen_tensor *w2 = leaf(&g, 4, (int64_t[]){CO, C2, 1, 1}, 58);
    struct gen_tensor *b2 = leaf(&g, 1, (int64_t[]){CO}, 59);
    struct gen_tensor *h = operand ? gen_groupnorm_silu_operand(&g, x, sh, G, gm, bt, 1e-5f)
                           : sh    ? gen_groupnorm_silu_shift(&g, x, sh, G, gm, bt, 1e-5f)
                                   : gen_groupnorm_silu(&g, x, G, gm, bt, 1e-5f);
    *held = h->bf16;
    struct gen_tensor *y = kind == 0   ? gen_conv2d(&g, h, w, b, (int)s, 1)
                           : kind == 1 ? gen_conv2d_add(&g, h, w, b, (int)s, 1, r)
                                       : gen_conv2d_sum(&g, h, w, b, (int)s, 1, x2, w2, b2, 1, 0);
    struct gen_tensor *const got[] = {y, x, gm, bt, sh, w, b, r, x2, w2, b2};
    const int64_t k = results(&g, y, got, sizeof got / sizeof got[0], 60, out, n);
    gen_ctx_free(&g);
    return k;
}

/* One case of an operand test: case i by the operand op (operand 1) or
 * the plain one, its results into out (results), whether the operand was
 * held as bf16 into *held; returns how many results. */
typedef int64_t (*operand_case)(int operand, size_t i, float *out, int64_t n, int *held);

/* In fp32, then bf16: each case by the operand op gives what the plain op
 * (never held) gives, bit for bit, the operand held as bf16 under bf16
 * where held(i) says, never in fp32. */
static void same_bits(operand_case run, size_t cases, int (*held)(size_t i), int64_t n) {
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    assert_true(a && b);
    for (int prec = 0; prec < 2; prec++) {
        assert_int_equal(gen_kernels_set_precision(prec ? GEN_PRECISION_BF16 : GEN_PRECISION_FP32),
                         1);
        for (size_t i = 0; i < cases; i++) {
            int h, plain;
            const int64_t na = run(1, i, a, n, &h), nb = run(0, i, b, n, &plain);
            assert_int_equal(h, prec && held(i));
            assert_int_equal(plain, 0);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, (size_t)na * sizeof *a);
        }
    }
    assert_int_equal(gen_kernels_set_precision(GEN_PRECISION_FP32), 1);
    free(a), free(b);
}

/* Whether the table in force takes bf16 convolution operands (AMX's). */
static int conv_held(size_t i) {
    (void)i;
    return gen_kernels()->conv_gemm_b16 != NULL;
}

/* gen_groupnorm_silu_operand under --precision bf16, where the table's
 * convolutions take bf16 operands (AMX's), holds its output as bf16 (on
 * the vdpbf16ps table it does not), and the convolutions reading it give
 * the bits, forward and back,
 * that they give on gen_groupnorm_silu's fp32 output, which their kernels
 * round to bf16 themselves: on AMX tiles from bf16 (32 channels, stride 1),
 * through a widened copy where the table does not take bf16 (stride 2; 5
 * channels); conv2d, conv2d_add (with a shift) and conv2d_sum. In fp32 it
 * is the plain op. */
static const int64_t operand_geo[][2] = {{32, 1}, {32, 2}, {5, 1}}; /* C, stride */

static int64_t operand_case_run(int operand, size_t i, float *out, int64_t n, int *held) {
    return operand_run(operand, operand_geo[i / 3][0], operand_geo[i / 3][1], (int)(i % 3), out, n,
                       held);
}

static void test_operand(void **state) {
    (void)state;
    same_bits(operand_case_run, 3 * sizeof operand_geo / sizeof operand_geo[0], conv_held, 1 << 16);
}

/* A 3 x 3 convolution (C channels in, 32 out, stride 1) of x (H x W) upsampled
 * 2x, by gen_upsample2x_operand (operand 1) or gen_upsample2x: y, then the
 * gradients of x, w and b, into out (results); returns how many, and
 * whether the upsampled copy was held as bf16 in *held. */
static int64_t upsample_run(int operand, int64_t C, int64_t H, int64_t W, float *out, int64_t n,
                            int *held) {
    const int64_t N = 3, CO = 32;
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf(&g, 4, (int64_t[]){N, C, H, W}, 70);
    struct gen_tensor *w = leaf(&g, 4, (int64_t[]){CO, C, 3, 3}, 71);
    struct gen_tensor *b = leaf(&g, 1, (int64_t[]){CO}, 72);
    struct gen_tensor *u = operand ? gen_upsample2x_operand(&g, x) : gen_upsample2x(&g, x);
    *held = u->bf16;
    struct gen_tensor *y = gen_conv2d(&g, u, w, b, 1, 1);
    struct gen_tensor *const got[] = {y, x, w, b};
    const int64_t k = results(&g, y, got, sizeof got / sizeof got[0], 73, out, n);
    gen_ctx_free(&g);
    return k;
}

/* gen_upsample2x_operand under --precision bf16, where the table's
 * convolutions take bf16 operands, holds its copy as bf16, and the
 * convolution reading it gives the bits, forward and back, that it gives
 * on gen_upsample2x's fp32 copy, which its kernels round to bf16
 * themselves: on AMX tiles from bf16 (32 channels) and through a widened
 * copy where the table does not take bf16 (5 channels); rows of 7 values
 * (rounded several rows at a time) and of 300 (in runs). In fp32 it is the
 * plain op. */
static int64_t upsample_case_run(int operand, size_t i, float *out, int64_t n, int *held) {
    const int64_t C = i % 2 ? 32 : 5, H = i < 2 ? 5 : 2, W = i < 2 ? 7 : 300;
    return upsample_run(operand, C, H, W, out, n, held);
}

static void test_upsample_operand(void **state) {
    (void)state;
    same_bits(upsample_case_run, 4, conv_held, 1 << 19);
}

/* A product of test_held's and test_chan's: M x N x K (dims), op(A) and
 * op(B) transposed as t's bits 0 and 1 say, stored at odd strides. */
struct prod {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
};

/* check(c, &seed) for each of n dims in the four transpositions. */
static void each_prod(const int64_t (*dims)[3], size_t n, uint64_t seed,
                      void (*check)(struct prod c, uint64_t *seed)) {
    for (size_t d = 0; d < n; d++)
        for (int t = 0; t < 4; t++) {
            struct prod c = {t & 1,      t >> 1, dims[d][0], dims[d][1],
                             dims[d][2], 0,      0,          dims[d][1] + 5};
            c.lda = (c.ta ? c.M : c.K) + (t == 1 ? 1 : 2);
            c.ldb = (c.tb ? c.K : c.N) + 3;
            check(c, &seed);
        }
}

/* The products of operands held as bf16 (gemm_bias_h, bpack_h,
 * gemm_bpacked_h) give the bits the float products give on the same
 * values: gemm_bias_h what gemm_bias gives, rounded as gen_bf16_pack
 * rounds (C's padding untouched); bpack_h the panels bpack packs from the
 * widened values; gemm_bpacked_h what gemm_bpacked gives on them, with A
 * stored M x K read in place (lda and K even, whole panels of 8 rows) or
 * packed (odd lda, a last panel of fewer rows; stored K x M), from row k0
 * of B, with a bias where beta is 0. */
static void held_case(struct prod c, uint64_t *seedp) {
    const struct gen_kernels *k = bf16k();
    uint64_t seed = *seedp;
    const int ta = c.ta, tb = c.tb, t = ta | tb << 1;
    const int64_t M = c.M, N = c.N, K = c.K, lda = c.lda, ldb = c.ldb, ldc = c.ldc;
    float *A = rnd((ta ? K : M) * lda, -2, 2, seed++), *B = rnd((tb ? N : K) * ldb, -2, 2, seed++);
    float *bias = t == 2 ? NULL : rnd(N, -1, 1, seed++);
    float *C = rnd(M * ldc, -1, 1, seed++);
    uint16_t *want = malloc((size_t)(M * ldc) * sizeof *want);
    uint16_t *got = malloc((size_t)(M * ldc) * sizeof *got);
    assert_true(want && got);
    k->gemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc);
    for (int64_t i = 0; i < M * ldc; i++) want[i] = got[i] = (uint16_t)(0x7fc1 + i % 7);
    for (int64_t i = 0; i < M; i++) gen_bf16_pack(N, C + i * ldc, want + i * ldc);
    k->gemm_bias_h(ta, tb, M, N, K, (struct gen_chan){A, NULL}, lda, B, ldb, bias, got, ldc);
    assert_memory_equal(got, want, (size_t)(M * ldc) * sizeof *got);

    /* the operands as bf16, and as the floats they widen to */
    const int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb;
    uint16_t *Ah = malloc((size_t)na * sizeof *Ah), *Bh = malloc((size_t)nb * sizeof *Bh);
    assert_true(Ah && Bh);
    gen_bf16_pack(na, A, Ah), gen_bf16_pack(nb, B, Bh);
    gen_bf16_round(na, A, A), gen_bf16_round(nb, B, B);
    const int64_t k0 = K > 2 ? 2 : 0, depth = K - k0, pf = k->bpack_floats(K, N);
    float *bp = malloc((size_t)pf * sizeof *bp), *bph = malloc((size_t)pf * sizeof *bph);
    assert_true(bp && bph);
    k->bpack(tb, K, N, B, ldb, bp);
    k->bpack_h(tb, K, N, Bh, ldb, bph);
    assert_memory_equal(bph, bp, (size_t)pf * sizeof *bp);
    const float beta = t & 1 ? 1.0f : 0.0f, *bias2 = t & 1 ? NULL : bias;
    float *C2 = rnd(M * ldc, -1, 1, seed++), *C3 = malloc((size_t)(M * ldc) * sizeof *C3);
    assert_non_null(C3);
    memcpy(C3, C2, (size_t)(M * ldc) * sizeof *C3);
    const float alpha = bias2 ? 1.0f : 0.5f;
    k->gemm_bpacked(ta, M, N, depth, alpha, A, lda, bp, k0, K, beta, bias2, C2, ldc);
    k->gemm_bpacked_h(ta, M, N, depth, alpha, Ah, lda, bph, k0, K, beta, bias2, C3, ldc);
    assert_memory_equal(C3, C2, (size_t)(M * ldc) * sizeof *C2);
    free(A), free(B), free(bias), free(C), free(want), free(got), free(Ah), free(Bh);
    free(bp), free(bph), free(C2), free(C3);
    *seedp = seed;
}

static void test_held(void **state) {
    (void)state;
    static const int64_t dims[][3] = {{1, 1, 1},      {8, 48, 32},   {7, 49, 37},   {17, 95, 128},
                                      {40, 130, 384}, {200, 33, 64}, {24, 16, 383}, {64, 96, 10}};
    each_prod(dims, sizeof dims / sizeof dims[0], 500, held_case);
}

/* gemm_chan gives the bits gemm gives (gemm_bias with a bias) on the
 * floats its bf16 operands widen to, A, B or both held as bf16, and
 * gemm_bias_h with A held as bf16 what it gives with those floats: on one
 * thread's shapes, on products split over the threads along M or N, and on
 * a weight gradient's, whose K is split too (gen_gemm_split); all four
 * transpositions, odd strides. */
static void chan_case(struct prod c, uint64_t *seedp) {
    const struct gen_kernels *k = bf16k();
    uint64_t seed = *seedp;
    const int ta = c.ta, tb = c.tb, t = ta | tb << 1;
    const int64_t M = c.M, N = c.N, K = c.K, lda = c.lda, ldb = c.ldb, ldc = c.ldc;
    const int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb;
    float *A = rnd(na, -2, 2, seed++), *B = rnd(nb, -2, 2, seed++);
    float *bias = rnd(N, -1, 1, seed++), *C0 = rnd(M * ldc, -1, 1, seed++);
    float *want = malloc((size_t)(M * ldc) * sizeof *want);
    float *got = malloc((size_t)(M * ldc) * sizeof *got);
    uint16_t *Ah = malloc((size_t)na * sizeof *Ah), *Bh = malloc((size_t)nb * sizeof *Bh);
    assert_true(want && got && Ah && Bh);
    gen_bf16_pack(na, A, Ah), gen_bf16_pack(nb, B, Bh);
    gen_bf16_round(na, A, A), gen_bf16_round(nb, B, B);
    const float beta = t & 1 ? 1.0f : 0.0f;
    memcpy(want, C0, (size_t)(M * ldc) * sizeof *want);
    k->gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, beta, want, ldc);
    for (int h = 1; h < 4; h++) {
        const struct gen_chan a = h & 1 ? (struct gen_chan){NULL, Ah} : (struct gen_chan){A, NULL};
        const struct gen_chan b = h & 2 ? (struct gen_chan){NULL, Bh} : (struct gen_chan){B, NULL};
        memcpy(got, C0, (size_t)(M * ldc) * sizeof *got);
        k->gemm_chan(ta, tb, M, N, K, 0.5f, a, lda, b, ldb, beta, NULL, got, ldc);
        assert_memory_equal(got, want, (size_t)(M * ldc) * sizeof *got);
    }
    memcpy(want, C0, (size_t)(M * ldc) * sizeof *want);
    memcpy(got, C0, (size_t)(M * ldc) * sizeof *got);
    k->gemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, want, ldc);
    k->gemm_chan(ta, tb, M, N, K, 1.0f, (struct gen_chan){NULL, Ah}, lda,
                 (struct gen_chan){NULL, Bh}, ldb, 0.0f, bias, got, ldc);
    assert_memory_equal(got, want, (size_t)(M * ldc) * sizeof *got);
    if (K <= GEN_BF16_C_DEPTH) {
        uint16_t *hw = (uint16_t *)want, *hg = (uint16_t *)got;
        k->gemm_bias_h(ta, tb, M, N, K, (struct gen_chan){A, NULL}, lda, B, ldb, bias, hw, ldc);
        k->gemm_bias_h(ta, tb, M, N, K, (struct gen_chan){NULL, Ah}, lda, B, ldb, bias, hg, ldc);
        assert_memory_equal(hg, hw, (size_t)(M * ldc) * sizeof *hg);
    }
    free(A), free(B), free(bias), free(C0), free(want), free(got), free(Ah), free(Bh);
    *seedp = seed;
}

static void test_chan(void **state) {
    (void)state;
    static const int64_t dims[][3] = {{7, 49, 37}, {200, 130, 100}, {40, 300, 96}, {24, 16, 6002}};
    each_prod(dims, sizeof dims / sizeof dims[0], 600, chan_case);
}

/* q, k, v from x (B, T, IN) by gen_linear_operand (operand 1) or
 * gen_linear, then causal attention: y, then the gradients of x, w and b,
 * into out (results); returns how many, and whether qkv was held as bf16
 * in *held. */
static int64_t qkv_run(int operand, int64_t B, int64_t T, int64_t IN, int64_t C, int64_t NH,
                       float *out, int64_t n, int *held) {
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf(&g, 3, (int64_t[]){B, T, IN}, 80);
    struct gen_tensor *w = leaf(&g, 2, (int64_t[]){3 * C, IN}, 81);
    struct gen_tensor *b = leaf(&g, 1, (int64_t[]){3 * C}, 82);
    struct gen_tensor *qkv = operand ? gen_linear_operand(&g, x, w, b) : gen_linear(&g, x, w, b);
    *held = qkv->bf16;
    struct gen_tensor *y = gen_attention(&g, qkv, NH, 1);
    struct gen_tensor *const got[] = {y, x, w, b};
    const int64_t k = results(&g, y, got, sizeof got / sizeof got[0], 83, out, n);
    gen_ctx_free(&g);
    return k;
}

/* gen_linear_operand under --precision bf16, where the table writes bf16
 * products (gemm_bias_h), holds the Transformer's qkv as bf16, and the
 * attention reading it gives the bits, forward and back, that it gives on
 * gen_linear's fp32 qkv, which its products round to bf16 themselves:
 * heads of even and odd widths (q read in place, or packed from bf16), an
 * input too deep for one slice (held as floats). In fp32 it is the plain
 * op. */
static const int64_t qkv_geo[][5] = {/* B, T, IN, C, NH */
                                     {2, 40, 24, 24, 3},
                                     {1, 33, 20, 20, 2},
                                     {2, 17, 15, 15, 3},
                                     {1, 20, 400, 16, 2}};

static int64_t qkv_case_run(int operand, size_t i, float *out, int64_t n, int *held) {
    const int64_t *q = qkv_geo[i];
    return qkv_run(operand, q[0], q[1], q[2], q[3], q[4], out, n, held);
}

/* Whether the table in force writes bf16 products, and case i's input is
 * shallow enough for them. */
static int qkv_held(size_t i) {
    return gen_kernels()->gemm_bias_h != NULL && qkv_geo[i][2] <= GEN_BF16_C_DEPTH;
}

static void test_qkv_operand(void **state) {
    (void)state;
    same_bits(qkv_case_run, sizeof qkv_geo / sizeof qkv_geo[0], qkv_held, 1 << 16);
}

/* x (R, C) by gen_layernorm_operand (operand 1) or gen_layernorm, then
 * (kind 0) a Transformer's MLP (C -> D -> C), (1) gen_linear to D with a
 * bias, (2) without one (the head), or (3) gen_linear_operand to qkv (3 C
 * wide) and causal attention over rows of T: y, then the gradients of x,
 * the norm's gamma and beta and the weights and biases, into out
 * (results); returns how many, and whether the norm's output was held as
 * bf16 in *held. */
static int64_t norm_run(int operand, int kind, int64_t R, int64_t T, int64_t C, int64_t D,
                        float *out, int64_t n, int *held) {
    const int64_t W = kind == 3 ? 3 * C : D;
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf(&g, 3, (int64_t[]){R / T, T, C}, 90);
    struct gen_tensor *gm = leaf(&g, 1, (int64_t[]){C}, 91), *bt = leaf(&g, 1, (int64_t[]){C}, 92);
    struct gen_tensor *w1 = leaf(&g, 2, (int64_t[]){W, C}, 93);
    struct gen_tensor *b1 = kind == 2 ? NULL : leaf(&g, 1, (int64_t[]){W}, 94);
    struct gen_tensor *w2 = kind ? NULL : leaf(&g, 2, (int64_t[]){C, D}, 95);
    struct gen_tensor *b2 = kind ? NULL : leaf(&g, 1, (int64_t[]){C}, 96);
    struct gen_tensor *h =
        operand ? gen_layernorm_operand(&g, x, gm, bt, 1e-5f) : gen_layernorm(&g, x, gm, bt, 1e-5f);
    *held = h->bf16;
    struct gen_tensor *y = kind == 0 ? gen_mlp(&g, h, w1, b1, w2, b2)
                           : kind == 3
                               ? gen_attention(&g, gen_linear_operand(&g, h, w1, b1), C / 8, 1)
                               : gen_linear(&g, h, w1, b1);
    struct gen_tensor *const got[] = {y, x, gm, bt, w1, b1, w2, b2};
    const int64_t k = results(&g, y, got, sizeof got / sizeof got[0], 97, out, n);
    gen_ctx_free(&g);
    return k;
}

/* gen_layernorm_operand under --precision bf16, where the table writes
 * and reads bf16 operands (the vdpbf16ps table), holds its output as
 * bf16, and the products reading it give the bits, forward and back, that
 * they give on gen_layernorm's fp32 output, which they round to bf16
 * themselves: the MLP, a linear layer with a bias and without, the qkv
 * layer into attention. An even width whose whole panels of rows are read
 * in place, an odd one (packed from bf16), a last block of the MLP's rows
 * short of 64 and of a panel, and rows enough that the weight gradients
 * split K (gen_gemm_split). On AMX and in fp32 it is the plain op. */
static const int64_t norm_geo[][4] = {
    {128, 16, 24, 96}, {75, 15, 15, 40}, {110, 11, 40, 160}, {4096, 16, 16, 32}}; /* R, T, C, D */

static int64_t norm_case_run(int operand, size_t i, float *out, int64_t n, int *held) {
    const int64_t *q = norm_geo[i / 4];
    return norm_run(operand, (int)(i % 4), q[0], q[1], q[2], q[3], out, n, held);
}

static int norm_held(size_t i) {
    (void)i;
    return gen_kernels()->layernorm_fwd_b16 != NULL;
}

static void test_norm_operand(void **state) {
    (void)state;
    same_bits(norm_case_run, 4 * sizeof norm_geo / sizeof norm_geo[0], norm_held, 1 << 18);
}

/* Causal and full attention under --precision bf16, whose table keeps P
 * as bf16 (softmax_fwd_b16), against fp32: y and qkv's gradient within
 * bf16's rounding of their largest values (rows in blocks of 32, the last
 * short; heads of 16). */
static void test_attention_p16(void **state) {
    (void)state;
    const int64_t B = 2, T = 70, C = 32, NH = 2, n = B * T * 3 * C;
    float *got[2][2];
    for (int causal = 0; causal < 2; causal++) {
        for (int prec = 0; prec < 2; prec++) {
            assert_int_equal(
                gen_kernels_set_precision(prec ? GEN_PRECISION_BF16 : GEN_PRECISION_FP32), 1);
            struct gen_ctx g;
            gen_ctx_init(&g);
            struct gen_tensor *qkv = leaf(&g, 3, (int64_t[]){B, T, 3 * C}, 960);
            for (int64_t i = 0; i < n; i++) qkv->data[i] *= 3.0f;
            struct gen_tensor *y = gen_attention(&g, qkv, NH, causal);
            got[prec][0] = malloc((size_t)(B * T * C + n) * sizeof(float));
            got[prec][1] = malloc((size_t)n * sizeof(float));
            assert_true(got[prec][0] && got[prec][1]);
            const int64_t k = results(&g, y, (struct gen_tensor *const[]){y, qkv}, 2, 961,
                                      got[prec][0], B * T * C + n);
            assert_int_equal(k, B * T * C + n);
            memcpy(got[prec][1], got[prec][0] + B * T * C, (size_t)n * sizeof(float));
            gen_ctx_free(&g);
        }
        const int64_t len[2] = {B * T * C, n};
        for (int j = 0; j < 2; j++) {
            double big = 0, worst = 0;
            for (int64_t i = 0; i < len[j]; i++) {
                big = fmax(big, fabs(got[0][j][i]));
                worst = fmax(worst, fabs((double)got[1][j][i] - got[0][j][i]));
            }
            fprintf(stderr, "  attention (causal %d) %s: largest difference %.3g of %.3g\n", causal,
                    j ? "dqkv" : "y", worst, big);
            assert_true(big > 0.1 && worst <= 0.02 * big);
        }
        for (int p = 0; p < 2; p++) free(got[p][0]), free(got[p][1]);
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
            cmocka_unit_test(test_gemm),         cmocka_unit_test(test_rounding),
            cmocka_unit_test(test_threads),      cmocka_unit_test(test_conv_gemm),
            cmocka_unit_test(test_conv_layer),   cmocka_unit_test(test_upsample_operand),
            cmocka_unit_test(test_norm_operand),
        };
        return cmocka_run_group_tests(amx_tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),          cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_threads),       cmocka_unit_test(test_conv_gemm),
        cmocka_unit_test(test_select),        cmocka_unit_test(test_linear_layer),
        cmocka_unit_test(test_conv_layer),    cmocka_unit_test(test_groupnorm_b16),
        cmocka_unit_test(test_operand),       cmocka_unit_test(test_upsample_operand),
        cmocka_unit_test(test_held),          cmocka_unit_test(test_qkv_operand),
        cmocka_unit_test(test_layernorm_b16), cmocka_unit_test(test_norm_operand),
        cmocka_unit_test(test_chan),          cmocka_unit_test(test_softmax_b16),
        cmocka_unit_test(test_attention_p16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
