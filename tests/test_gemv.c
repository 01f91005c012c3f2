/* test_gemv.c - gen_gemv (kernels.h) under every kernel table: the
 * AVX-512 kernel (src/kernels/gemv_avx512.c) and OpenBLAS's sgemv behind
 * the others, against a double-precision loop. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/kernels.h"

static const char *const isas[] = {"scalar", "avx2", "avx512"};

static float *rnd(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(x);
    tu_fill_uniform(x, n, -1.0f, 1.0f, seed);
    return x;
}

/* Every transposition, alpha and beta (beta == 0 must not read y, which
 * holds NaN), rows wider than the matrix (lda = N + 3), and sizes around
 * the kernel's blocks: 8-row groups and 16-lane vectors (A x), 64-column
 * blocks and 4-row partial sums (A^T x), so odd numbers on both sides.
 * Each element is held to 1e-5 of sum |a_ij x_j| (plus |beta y|). */
static void parity(const char *isa) {
    static const int64_t dims[][2] = {{1, 1},   {1, 17},    {7, 3},    {8, 16},   {9, 33},
                                      {15, 31}, {17, 65},   {31, 127}, {64, 200}, {130, 47},
                                      {3, 300}, {256, 128}, {128, 512}};
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}};
    uint64_t seed = 7;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int trans = 0; trans < 2; trans++) {
            const int64_t M = dims[d][0], N = dims[d][1], lda = N + 3;
            const int64_t ny = trans ? N : M, nx = trans ? M : N;
            const float alpha = ab[(d + (size_t)trans) % 3][0],
                        beta = ab[(d + (size_t)trans) % 3][1];
            float *A = rnd(M * lda, seed++), *x = rnd(nx, seed++), *y = rnd(ny, seed++);
            float *y0 = malloc((size_t)ny * sizeof(float));
            memcpy(y0, y, (size_t)ny * sizeof(float));
            if (beta == 0.0f)
                for (int64_t i = 0; i < ny; i++) y[i] = NAN;
            gen_gemv(trans, M, N, alpha, A, lda, x, beta, y);
            for (int64_t i = 0; i < ny; i++) {
                double s = 0, mag = 0;
                for (int64_t j = 0; j < nx; j++) {
                    const double p = (double)(trans ? A[j * lda + i] : A[i * lda + j]) * x[j];
                    s += p;
                    mag += fabs(p);
                }
                const double c0 = beta == 0.0f ? 0.0 : (double)beta * y0[i];
                const double want = alpha * s + c0;
                const double err = fabs((double)y[i] - want);
                const double tol = 1e-5 * (fabs(alpha) * mag + fabs(c0)) + 1e-6;
                if (!(err <= tol))
                    fprintf(stderr, "  %s gemv trans %d %lldx%lld: y[%lld] = %.9g, want %.9g\n",
                            isa, trans, (long long)M, (long long)N, (long long)i, (double)y[i],
                            want);
                assert_true(err <= tol);
            }
            free(A), free(x), free(y), free(y0);
        }
}

/* An empty sum leaves beta y (zeros for beta == 0, NaN unread); no output,
 * nothing written. */
static void empty(const char *isa) {
    (void)isa;
    const float A[1] = {5.0f}, x[3] = {1.0f, 2.0f, 3.0f};
    float y[3] = {1.0f, 2.0f, 3.0f};
    gen_gemv(0, 3, 0, 1.0f, A, 0, x, 2.0f, y); /* A (3, 0) x: y = 2 y */
    assert_true(y[0] == 2.0f && y[1] == 4.0f && y[2] == 6.0f);
    y[0] = y[1] = NAN;
    gen_gemv(1, 0, 2, 1.0f, A, 2, x, 0.0f, y); /* A (0, 2)^T x: y = 0 */
    assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 6.0f);
    gen_gemv(0, 0, 2, 1.0f, A, 2, x, 0.0f, y + 2); /* no rows: y untouched */
    assert_true(y[2] == 6.0f);
}

/* The AVX-512 kernel's y_i is the same sequence of operations whatever M
 * (A x: rows in a group of eight or alone) and N (A^T x: columns in any
 * 64-column block): a product over a slice of the rows or columns gives
 * the bits of the whole one. Decoding relies on nothing more than run to
 * run determinism, but this is what makes the kernel's order its own. */
static void slices_avx512(void) {
    const int64_t M = 45, N = 139, lda = N + 1;
    float *A = rnd(M * lda, 40), *xn = rnd(N, 41), *xm = rnd(M, 42);
    float whole_n[45], whole_t[139], part[139];
    gen_gemv(0, M, N, 0.75f, A, lda, xn, 0.0f, whole_n);
    gen_gemv(1, M, N, 0.75f, A, lda, xm, 0.0f, whole_t);
    for (int64_t i0 = 1; i0 < M; i0 += 3) {
        gen_gemv(0, M - i0, N, 0.75f, A + i0 * lda, lda, xn, 0.0f, part);
        assert_memory_equal(part, whole_n + i0, (size_t)(M - i0) * sizeof(float));
    }
    for (int64_t j0 = 1; j0 < N; j0 += 7) {
        gen_gemv(1, M, N - j0, 0.75f, A + j0, lda, xm, 0.0f, part);
        assert_memory_equal(part, whole_t + j0, (size_t)(N - j0) * sizeof(float));
    }
    free(A), free(xn), free(xm);
}

static void test_gemv(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (!gen_kernels_select(isas[i])) {
            fprintf(stderr, "  (%s: not on this CPU/build, skipped)\n", isas[i]);
            continue;
        }
        parity(isas[i]);
        empty(isas[i]);
        if (strcmp(isas[i], "avx512") == 0) slices_avx512();
    }
    assert_int_equal(gen_kernels_select(NULL), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
