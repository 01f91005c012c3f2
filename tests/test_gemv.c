/* test_gemv.c - gen_gemv (kernels.h) under every kernel table: the
 * AVX-512 and AVX2 kernels (src/kernels/gemv_avx512.c, gemv_avx2.c) and
 * OpenBLAS's sgemv behind the scalar one, against a double-precision loop; gen_gemv_bf16 and the bf16
 * rounding (gen_bf16_round, gen_bf16_pack) likewise, the AVX-512 kernels
 * and the plain loops behind the other tables. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
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
    gen_gemv(GEN_NOTRANS, 3, 0, 1.0f, A, 0, x, 2.0f, y); /* A (3, 0) x: y = 2 y */
    assert_true(y[0] == 2.0f && y[1] == 4.0f && y[2] == 6.0f);
    y[0] = y[1] = NAN;
    gen_gemv(GEN_TRANS, 0, 2, 1.0f, A, 2, x, 0.0f, y); /* A (0, 2)^T x: y = 0 */
    assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 6.0f);
    gen_gemv(GEN_NOTRANS, 0, 2, 1.0f, A, 2, x, 0.0f, y + 2); /* no rows: y untouched */
    assert_true(y[2] == 6.0f);
}

/* The AVX-512 and AVX2 kernels' y_i is the same sequence of operations
 * whatever M (A x: rows in a group of eight or alone) and N (A^T x:
 * columns in any 64- or 32-column block): a product over a slice of the rows or columns gives
 * the bits of the whole one. Decoding relies on nothing more than run to
 * run determinism, but this is what makes the kernel's order its own. */
static void slices(void) {
    const int64_t M = 45, N = 139, lda = N + 1;
    float *A = rnd(M * lda, 40), *xn = rnd(N, 41), *xm = rnd(M, 42);
    float whole_n[45], whole_t[139], part[139];
    gen_gemv(GEN_NOTRANS, M, N, 0.75f, A, lda, xn, 0.0f, whole_n);
    gen_gemv(GEN_TRANS, M, N, 0.75f, A, lda, xm, 0.0f, whole_t);
    for (int64_t i0 = 1; i0 < M; i0 += 3) {
        gen_gemv(GEN_NOTRANS, M - i0, N, 0.75f, A + i0 * lda, lda, xn, 0.0f, part);
        assert_memory_equal(part, whole_n + i0, (size_t)(M - i0) * sizeof(float));
    }
    for (int64_t j0 = 1; j0 < N; j0 += 7) {
        gen_gemv(GEN_TRANS, M, N - j0, 0.75f, A + j0, lda, xm, 0.0f, part);
        assert_memory_equal(part, whole_t + j0, (size_t)(N - j0) * sizeof(float));
    }
    free(A), free(xn), free(xm);
}

/* tu_bf16's bits. */
static uint32_t bf16_ref(float x) {
    const float r = tu_bf16(x);
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return u;
}

static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* gen_bf16_round and gen_bf16_pack against bf16_ref, bit for bit: ties
 * both ways, just above a tie, overflow to infinity, infinities, NaNs
 * (quiet and signalling), denormals and zeros of both signs, and random
 * values, at every length up to 40 (the kernels' 16-lane tails). */
static void rounding(const char *isa) {
    static const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3f808001u, 0xbf818000u,
                                       0x7f7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00001u,
                                       0x7f800001u, 0x00000001u, 0x80000001u, 0x007fffffu,
                                       0x00000000u, 0x80000000u, 0x00800000u, 0x3f800000u};
    const int64_t n_max = 40;
    float *x = rnd(n_max, 50), *y = malloc((size_t)n_max * sizeof(float));
    uint16_t *h = malloc((size_t)n_max * sizeof *h);
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        x[3 * i % n_max] = from_bits(special[i]);
    for (int64_t n = 1; n <= n_max; n++) {
        memset(y, 0xAB, (size_t)n_max * sizeof(float));
        memset(h, 0xAB, (size_t)n_max * sizeof *h);
        gen_bf16_round(n, x, y);
        gen_bf16_pack(n, x, h);
        for (int64_t i = 0; i < n; i++) {
            uint32_t got;
            memcpy(&got, y + i, sizeof got);
            uint32_t in;
            memcpy(&in, x + i, sizeof in);
            if (got != bf16_ref(x[i]) || h[i] != (uint16_t)(bf16_ref(x[i]) >> 16))
                fprintf(stderr, "  %s bf16 of %#x: %#x and %#x, want %#x\n", isa, in, got,
                        (unsigned)h[i], bf16_ref(x[i]));
            assert_true(got == bf16_ref(x[i]));
            assert_int_equal(h[i], bf16_ref(x[i]) >> 16);
        }
        if (n < n_max) { /* nothing written past n */
            uint32_t past;
            memcpy(&past, y + n, sizeof past);
            assert_true(past == 0xABABABABu && h[n] == 0xABABu);
        }
    }
    gen_bf16_round(n_max, x, x); /* in place */
    for (int64_t i = 0; i < n_max; i++) assert_true(memcmp(x + i, y + i, sizeof(float)) == 0);
    free(x), free(y), free(h);
}

/* gen_gemv_bf16 with A and x of bf16 values: the products are exact, so
 * each element is held to 1e-5 of sum |a_ij x_j| (plus |beta y|), as
 * gen_gemv; sizes around the kernel's 8-row groups and 32-column runs,
 * rows wider than the matrix; beta == 0 must not read y (NaN). */
static void parity_bf16(const char *isa) {
    static const int64_t dims[][2] = {{1, 1},   {1, 17},   {7, 3},     {8, 32},  {9, 33},
                                      {15, 31}, {17, 65},  {31, 127},  {64, 200}, {130, 47},
                                      {3, 300}, {256, 128}, {128, 512}};
    uint64_t seed = 60;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int64_t M = dims[d][0], N = dims[d][1], lda = N + 5;
        const float beta = d % 2 ? 0.5f : 0.0f;
        float *A = rnd(M * lda, seed++), *x = rnd(N, seed++), *y = rnd(M, seed++);
        uint16_t *Ab = malloc((size_t)(M * lda) * sizeof *Ab);
        float *y0 = malloc((size_t)M * sizeof(float));
        for (int64_t i = 0; i < M * lda; i++) Ab[i] = (uint16_t)(bf16_ref(A[i]) >> 16);
        for (int64_t j = 0; j < N; j++) x[j] = from_bits(bf16_ref(x[j]));
        memcpy(y0, y, (size_t)M * sizeof(float));
        if (beta == 0.0f)
            for (int64_t i = 0; i < M; i++) y[i] = NAN;
        gen_gemv_bf16(M, N, Ab, lda, x, beta, y);
        for (int64_t i = 0; i < M; i++) {
            double s = 0, mag = 0;
            for (int64_t j = 0; j < N; j++) {
                const double p = (double)from_bits((uint32_t)Ab[i * lda + j] << 16) * x[j];
                s += p;
                mag += fabs(p);
            }
            const double c0 = beta == 0.0f ? 0.0 : (double)beta * y0[i];
            const double err = fabs((double)y[i] - (s + c0));
            if (!(err <= 1e-5 * (mag + fabs(c0)) + 1e-6))
                fprintf(stderr, "  %s gemv_bf16 %lldx%lld: y[%lld] = %.9g, want %.9g\n", isa,
                        (long long)M, (long long)N, (long long)i, (double)y[i], s + c0);
            assert_true(err <= 1e-5 * (mag + fabs(c0)) + 1e-6);
        }
        free(A), free(Ab), free(x), free(y), free(y0);
    }
}

/* As slices_avx512, for the bf16 kernel's rows. */
static void slices_bf16_avx512(void) {
    const int64_t M = 45, N = 139, lda = N + 1;
    float *A = rnd(M * lda, 70), *x = rnd(N, 71);
    uint16_t *Ab = malloc((size_t)(M * lda) * sizeof *Ab);
    gen_bf16_pack(M * lda, A, Ab);
    float whole[45], part[45];
    gen_gemv_bf16(M, N, Ab, lda, x, 0.0f, whole);
    for (int64_t i0 = 1; i0 < M; i0 += 3) {
        gen_gemv_bf16(M - i0, N, Ab + i0 * lda, lda, x, 0.0f, part);
        assert_memory_equal(part, whole + i0, (size_t)(M - i0) * sizeof(float));
    }
    free(A), free(Ab), free(x);
}

/* The AVX-512 kernel sums A x's rows four or two at a time, by the CPU
 * (gen_gemv_group): the same bits either way, beta 0 and not, on shapes
 * around both groups (rows left over alone; columns past 64 and 16). */
static void groups(void) {
    static const int64_t dims[][2] = {{1, 1},   {3, 17},   {9, 33},    {15, 64},
                                      {17, 65}, {31, 127}, {128, 512}, {130, 128}};
    uint64_t seed = 60;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int b = 0; b < 2; b++) {
            const int64_t M = dims[d][0], N = dims[d][1], lda = N + 5;
            float *A = rnd(M * lda, seed++), *x = rnd(N, seed++), *y0 = rnd(M, seed++);
            float *y[2] = {malloc((size_t)M * sizeof(float)), malloc((size_t)M * sizeof(float))};
            for (int g = 0; g < 2; g++) {
                memcpy(y[g], y0, (size_t)M * sizeof(float));
                gen_gemv_group(g ? 2 : 4);
                gen_gemv(GEN_NOTRANS, M, N, -0.5f, A, lda, x, b ? 0.75f : 0.0f, y[g]);
            }
            assert_memory_equal(y[0], y[1], (size_t)M * sizeof(float));
            free(A), free(x), free(y0), free(y[0]), free(y[1]);
        }
    gen_gemv_group(0);
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
        rounding(isas[i]);
        parity_bf16(isas[i]);
        if (strcmp(isas[i], "scalar") != 0) slices();
        if (strcmp(isas[i], "avx512") == 0) {
            slices_bf16_avx512();
            for (int g = 4; g >= 2; g -= 2) { /* both groups against the reference */
                gen_gemv_group(g);
                parity(isas[i]);
                slices();
            }
            gen_gemv_group(0);
            groups();
        }
    }
    assert_int_equal(gen_kernels_select(NULL), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
