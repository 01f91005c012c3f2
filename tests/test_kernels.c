/* test_kernels.c - the kernel tables: dispatch, the scalar reference against
 * double-precision formulas, and every SIMD table against the scalar one.
 *
 * Tolerances are per kernel, as |got - want| <= atol + rtol |want|:
 *   exact-in-float ops (add, sub, mul, scale, fill, relu, leaky relu,
 *     im2col, col2im)                         rtol 1e-6  (in practice 0)
 *   fused multiply-adds (axpy, mul_acc, *_bwd products, ema, sgd)
 *                                             rtol 1e-6, atol 1e-6
 *   transcendental (exp, tanh, sigmoid, silu, gelu fwd) rtol 2e-6, atol 1e-7
 *     for gelu/silu (their tails are tiny), 1e-30 otherwise
 *   transcendental backward                   rtol 2e-6, atol 2e-6
 *   softmax / log_softmax                     rtol 2e-6, atol 2e-6
 *   layernorm / groupnorm (sums in another order) rtol 1e-5, atol 1e-5
 *   adam                                      rtol 1e-6, atol 1e-7
 *   sum / sumsq (double, another order)       1e-12 of sum |x|
 * The *_grad kernels are also held to their own ISA bit for bit: SET must
 * give what ADD gives on zeros (reading nothing), the fused group norm +
 * SiLU what the two kernels give, adam_step's L2 what axpy then adam give.
 * GEN_TEST_VERBOSE=1 prints the worst ratio seen per kernel. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/kernels.h"

static const int64_t lengths[] = {1, 7, 15, 16, 17, 1023, 4099, 70001};
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])
static const int64_t row_cols[] = {1, 7, 16, 17, 128, 1023};
static const int64_t row_rows[] = {1, 3, 33};
static const char *const simd_isas[] = {"avx2", "avx512"};

/* ---- helpers ---- */

static float *rnd(int64_t n, float lo, float hi, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(x);
    tu_fill_uniform(x, n, lo, hi, seed);
    return x;
}

static float *dup(const float *x, int64_t n) {
    float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(y);
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

/* Worst ratio per kernel name, printed at the end when verbose. */
static struct {
    char name[48];
    double worst;
} seen[64];

static void record(const char *kernel, double ratio) {
    for (int i = 0; i < 64; i++) {
        if (!seen[i].name[0]) snprintf(seen[i].name, sizeof seen[i].name, "%s", kernel);
        if (strcmp(seen[i].name, kernel) == 0) {
            if (ratio > seen[i].worst) seen[i].worst = ratio;
            return;
        }
    }
}

static void check(const struct gen_kernels *k, const char *kernel, int64_t shape, const float *got,
                  const float *want, int64_t n, double rtol, double atol) {
    char what[128];
    snprintf(what, sizeof what, "%s %s (%lld)", k->name, kernel, (long long)shape);
    const double r = tu_close(what, got, want, n, rtol, atol);
    record(kernel, r);
    assert_true(r <= 1.0);
}

/* Special values: NaN must match NaN, infinities must match exactly. */
static void check_special(const char *what, const float *got, const float *want, int64_t n,
                          double rtol, double atol) {
    for (int64_t i = 0; i < n; i++) {
        const float a = got[i], b = want[i];
        int ok = (isnan(a) && isnan(b)) || a == b ||
                 (isfinite(a) && isfinite(b) && fabs((double)a - b) <= atol + rtol * fabs(b));
        if (!ok) fprintf(stderr, "  %s: element %lld: got %.9g, want %.9g\n", what, (long long)i,
                         (double)a, (double)b);
        assert_true(ok);
    }
}

static const struct gen_kernels *scalar(void) { return gen_kernels_for("scalar"); }

/* Runs fn(k) for every SIMD table this CPU and build have. */
static void each_simd(void (*fn)(const struct gen_kernels *k)) {
    static int noted[2];
    for (size_t i = 0; i < sizeof simd_isas / sizeof simd_isas[0]; i++) {
        const struct gen_kernels *k = gen_kernels_for(simd_isas[i]);
        if (!k) {
            if (!noted[i]++)
                printf("  note: %s not available on this CPU/build, its tests skipped\n",
                       simd_isas[i]);
            continue;
        }
        fn(k);
    }
}

/* ---- dispatch ---- */

static void test_dispatch(void **state) {
    (void)state;
    const struct gen_kernels *s = scalar();
    assert_non_null(s);
    assert_string_equal(s->name, "scalar");
    assert_null(gen_kernels_for("sse9"));
    assert_null(gen_kernels_for(NULL));
    assert_non_null(gen_kernels());

    /* Every pointer of every table is filled up to gemm; from there on the
     * entries are optional (NULL: OpenBLAS and im2col serve that ISA). */
    const char *names[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        const struct gen_kernels *k = gen_kernels_for(names[i]);
        if (!k) continue;
        assert_string_equal(k->name, names[i]);
        const size_t first = offsetof(struct gen_kernels, add);
        const size_t count = (sizeof *k - first) / sizeof(void (*)(void));
        for (size_t j = 0; j < count; j++) {
            void (*fp)(void);
            if (first + j * sizeof fp >= offsetof(struct gen_kernels, gemm)) break;
            memcpy(&fp, (const char *)k + first + j * sizeof fp, sizeof fp);
            assert_non_null(fp);
        }
    }

    /* ... and the appended *_grad kernels and adam_step in every table. */
    for (int i = 0; i < 3; i++) {
        const struct gen_kernels *k = gen_kernels_for(names[i]);
        if (!k) continue;
        const size_t lo = offsetof(struct gen_kernels, relu_grad);
        const size_t hi = offsetof(struct gen_kernels, adam_step);
        for (size_t off = lo; off <= hi; off += sizeof(void (*)(void))) {
            void (*fp)(void);
            memcpy(&fp, (const char *)k + off, sizeof fp);
            assert_non_null(fp);
        }
    }

    assert_int_equal(gen_kernels_select("scalar"), 1);
    assert_ptr_equal(gen_kernels(), s);
    assert_int_equal(gen_kernels_select("no-such-isa"), 0);
    assert_ptr_equal(gen_kernels(), s); /* a failed select changes nothing */

    setenv("GEN_ISA", "scalar", 1);
    assert_int_equal(gen_kernels_select(NULL), 1);
    assert_ptr_equal(gen_kernels(), s);
    setenv("GEN_ISA", "no-such-isa", 1); /* falls back to the best, with a note */
    assert_int_equal(gen_kernels_select(NULL), 1);
    const struct gen_kernels *best = gen_kernels_for("avx512");
    if (!best) best = gen_kernels_for("avx2");
    if (!best) best = s;
    assert_ptr_equal(gen_kernels(), best);
    unsetenv("GEN_ISA");
    assert_int_equal(gen_kernels_select(NULL), 1);
    assert_ptr_equal(gen_kernels(), best);
}

static void test_gemm(void **state) {
    (void)state;
    /* A (2x3) B (3x2), all transposition combinations, against a triple loop. */
    const float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {7, 8, 9, 10, 11, 12};
    float At[6], Bt[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) At[j * 2 + i] = A[i * 3 + j];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) Bt[j * 3 + i] = B[i * 2 + j];
    const float want[4] = {58, 64, 139, 154};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float C[4] = {1, 1, 1, 1};
            gen_gemm(ta, tb, 2, 2, 3, 1.0f, ta ? At : A, tb ? Bt : B, 0.0f, C);
            for (int i = 0; i < 4; i++) assert_true(C[i] == want[i]);
            gen_gemm(ta, tb, 2, 2, 3, 0.5f, ta ? At : A, tb ? Bt : B, 1.0f, C);
            for (int i = 0; i < 4; i++) assert_true(C[i] == 1.5f * want[i]);
        }
    float C[4] = {1, 2, 3, 4};
    gen_gemm(GEN_NOTRANS, GEN_NOTRANS, 2, 2, 0, 1.0f, A, B, 2.0f, C); /* K = 0: C = beta C */
    assert_true(C[0] == 2 && C[3] == 8);
}

/* An ISA's own GEMM against a double-precision triple loop: every
 * transposition, alpha and beta (beta == 0 must not read C, which holds
 * NaN), leading dimensions wider than the matrices, and sizes that cross
 * the micro-tile (8 x 48, and the 8 x 32 and 8 x 16 tiles that take a
 * narrower last panel: N = 16, 32, 64, 80, 130), the packing blocks (16
 * deep, odd depths, rows short of 8) and cache-block (192 rows, 192 deep
 * in near-equal slices, 1152 wide) edges, a K long enough against M
 * and N to be split in halves (odd: 1500 + 1501), and A's rows 4 KiB
 * apart (which the AVX2 table packs where it reads others in place).
 * Each element is held to 1e-5 of sum |a_ik b_kj| (plus beta C). */
static void gemm_parity(const struct gen_kernels *k) {
    if (!k->gemm) return;
    static const int64_t dims[][4] = {
        {1, 1, 1},     {1, 47, 3},      {9, 1, 5},      {8, 48, 192},        {7, 49, 193},
        {17, 95, 31},  {33, 200, 64},   {193, 50, 385}, {40, 1153, 20},      {250, 130, 600},
        {16, 16, 16},  {8, 32, 17},     {15, 80, 47},   {24, 130, 400},      {200, 64, 16},
        {9, 17, 1025}, {128, 128, 512}, {40, 24, 3001}, {110, 50, 70, 1024},
    };
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}};
    uint64_t seed = 100;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int t = 0; t < 4; t++) {
            const int ta = t & 1, tb = t >> 1;
            const int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2];
            const int64_t lda = dims[d][3] ? dims[d][3] : (ta ? M : K) + 3;
            const int64_t ldb = (tb ? K : N) + 5, ldc = N + 2;
            const float alpha = ab[(d + t) % 3][0], beta = ab[(d + t) % 3][1];
            float *A = rnd((ta ? K : M) * lda, -1, 1, seed++);
            float *B = rnd((tb ? N : K) * ldb, -1, 1, seed++);
            float *C = rnd(M * ldc, -1, 1, seed++), *C0 = dup(C, M * ldc);
            if (beta == 0.0f)
                for (int64_t i = 0; i < M * ldc; i++) C[i] = NAN;
            k->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double s = 0, mag = 0;
                    for (int64_t p = 0; p < K; p++) {
                        const double a = ta ? A[p * lda + i] : A[i * lda + p];
                        const double b = tb ? B[j * ldb + p] : B[p * ldb + j];
                        s += a * b;
                        mag += fabs(a * b);
                    }
                    const double c0 = beta == 0.0f ? 0.0 : (double)beta * C0[i * ldc + j];
                    const double want = alpha * s + c0;
                    const double tol = 1e-5 * (fabs(alpha) * mag + fabs(c0)) + 1e-6;
                    const double err = fabs((double)C[i * ldc + j] - want);
                    if (!(err <= tol))
                        fprintf(stderr, "  %s gemm ta %d tb %d %lldx%lldx%lld: C[%lld,%lld] = %.9g, want %.9g\n",
                                k->name, ta, tb, (long long)M, (long long)N, (long long)K,
                                (long long)i, (long long)j, (double)C[i * ldc + j], want);
                    assert_true(err <= tol);
                }
            /* the padding columns of C beyond N are untouched */
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = N; j < ldc; j++)
                    if (beta != 0.0f) assert_true(C[i * ldc + j] == C0[i * ldc + j]);
            free(A);
            free(B);
            free(C);
            free(C0);
        }
}

/* The same product on 1, 2 and 3 threads, and inside a parallel region
 * (where it runs on the calling thread), is bit-identical: split along M
 * (300 x 260 x 150, B transposed), along N (20 x 700 x 400, A
 * transposed, several K slices and a narrow last panel per thread), and
 * along K (48 x 40 x 3000, as a weight gradient's). */
static void gemm_threads(const struct gen_kernels *k) {
    if (!k->gemm) return;
    static const int64_t dims[][5] = {
        {300, 260, 150, 0, 1}, {20, 700, 400, 1, 0}, {48, 40, 3000, 1, 0}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2];
        const int ta = (int)dims[d][3], tb = (int)dims[d][4];
        const int64_t lda = ta ? M : K, ldb = tb ? K : N;
        float *A = rnd(M * K, -1, 1, 7), *B = rnd(K * N, -1, 1, 8);
        float *C[4];
        for (int i = 0; i < 4; i++) C[i] = rnd(M * N, 0, 0, 0);
        const int saved = omp_get_max_threads();
        for (int t = 1; t <= 3; t++) {
            omp_set_num_threads(t);
            k->gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C[t - 1], N);
        }
#pragma omp parallel num_threads(2)
        {
#pragma omp single
            k->gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C[3], N);
        }
        omp_set_num_threads(saved);
        for (int i = 1; i < 4; i++)
            assert_memory_equal(C[0], C[i], (size_t)(M * N) * sizeof(float));
        free(A);
        free(B);
        for (int i = 0; i < 4; i++) free(C[i]);
    }
}

/* A weight gradient C = A^T B whose B is the wider (N > M: the AVX-512
 * table computes C^T = B^T A and transposes it) is the same bits as the
 * transpose of the product with the operands swapped, which is not
 * turned: 20 x 136 x 1200 (split along K; C's last 16 x 16 blocks
 * partial both ways, its rows further apart than N) and 24 x 64 x 600. */
static void gemm_turned(const struct gen_kernels *k) {
    if (!k->gemm) return;
    static const int64_t dims[][3] = {{20, 136, 1200}, {24, 64, 600}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2], ldc = N + 5;
        float *A = rnd(K * M, -1, 1, 60 + d), *B = rnd(K * N, -1, 1, 70 + d);
        float *C = rnd(M * ldc, 0, 0, 0), *Ct = rnd(N * M, 0, 0, 0);
        k->gemm(1, 0, M, N, K, 0.5f, A, M, B, N, 0.0f, C, ldc);
        k->gemm(1, 0, N, M, K, 0.5f, B, N, A, M, 0.0f, Ct, M);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                if (memcmp(&C[i * ldc + j], &Ct[j * M + i], sizeof(float)))
                    fail_msg("%s: %lld x %lld x %lld: C[%lld][%lld] %.9g, transposed %.9g", k->name,
                             (long long)M, (long long)N, (long long)K, (long long)i, (long long)j,
                             C[i * ldc + j], Ct[j * M + i]);
        free(A);
        free(B);
        free(C);
        free(Ct);
    }
}

/* A product is the same bits whether its A panels are read in place or
 * packed: the same values of A, stored K x M with rows 1024 floats apart
 * (4 KiB: the AVX2 table packs those panels) and 1027 apart (read in
 * place), and stored M x K, with M = 30 (whole 6- and 8-row panels and a
 * part of one) over two K slices. Checkpoints at any thread count and on
 * any stride rest on it. */
static void gemm_in_place_bits(const struct gen_kernels *k) {
    if (!k->gemm) return;
    const int64_t M = 30, N = 70, K = 500;
    const int64_t lds[] = {1024, 1027};
    float *v = rnd(K * M, -1, 1, 90), *B = rnd(K * N, -1, 1, 91), *C[3];
    for (int c = 0; c < 3; c++) C[c] = rnd(M * N, 0, 0, 0);
    for (int c = 0; c < 2; c++) { /* stored K x M, rows lds[c] apart */
        float *A = rnd(K * lds[c], 0, 0, 0);
        for (int64_t p = 0; p < K; p++)
            memcpy(A + p * lds[c], v + p * M, (size_t)M * sizeof(float));
        k->gemm(1, 0, M, N, K, 1.0f, A, lds[c], B, N, 0.0f, C[c], N);
        free(A);
    }
    float *At = rnd(M * K, 0, 0, 0); /* stored M x K */
    for (int64_t i = 0; i < M; i++)
        for (int64_t p = 0; p < K; p++) At[i * K + p] = v[p * M + i];
    k->gemm(0, 0, M, N, K, 1.0f, At, K, B, N, 0.0f, C[2], N);
    for (int c = 1; c < 3; c++)
        if (memcmp(C[0], C[c], (size_t)(M * N) * sizeof(float)))
            fail_msg("%s: the product with A %s differs from the one with A's rows 4 KiB apart",
                     k->name, c == 1 ? "1027 floats a row" : "stored M x K");
    free(v), free(B), free(At);
    for (int c = 0; c < 3; c++) free(C[c]);
}

/* A column of C is the same bits whatever the width of the product it
 * is in, and so whatever micro-kernel width takes it: the first N columns
 * of a product N + 48 wide against a product of only those (N = 64: a
 * 48- and a 16-wide tile against one of 48 then part of another), with
 * either B layout, over one K slice and three. The threads' shares of a
 * product by columns (a window slide's, gen_gemm_split's) rest on it. */
static void gemm_widths(const struct gen_kernels *k) {
    if (!k->gemm) return;
    static const int64_t dims[][2] = {{64, 100}, {52, 100}, {64, 500}, {112, 450}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int tb = 0; tb < 2; tb++) {
            const int64_t M = 21, N = dims[d][0], K = dims[d][1], W = N + 48;
            float *A = rnd(M * K, -1, 1, 40 + d), *B = rnd(K * W, -1, 1, 50 + d);
            float *Cn = rnd(M * W, 0, 0, 0), *Cw = rnd(M * W, 0, 0, 0);
            /* B's first N columns (tb: rows) in place, W apart */
            k->gemm(0, tb, M, N, K, 1.0f, A, K, B, tb ? K : W, 0.0f, Cn, W);
            k->gemm(0, tb, M, W, K, 1.0f, A, K, B, tb ? K : W, 0.0f, Cw, W);
            for (int64_t i = 0; i < M; i++)
                assert_memory_equal(Cn + i * W, Cw + i * W, (size_t)N * sizeof(float));
            free(A);
            free(B);
            free(Cn);
            free(Cw);
        }
}

/* An ISA's implicit-GEMM convolution and its weight gradient against the
 * scalar im2col and double-precision products, over kernel sizes, strides, paddings and
 * several images per call (so image boundaries fall inside packed panels),
 * and images wide enough that the kernel reads B's rows in place, whose
 * last panel takes the 16-, 32- and 48-wide tile (15 x 15, 28 x 28, 16 x 16),
 * into 10 output channels, or 1 or 9 (a last block of one row).
 * Under 64 taps (C KH KW) im2col rows are gathered; from 64 on, strides 2
 * and 3 read phase planes, of which a kernel smaller than the stride
 * builds only some. */
/* Whether table k may decline the geometry (conv_gemm_work 0): AVX2's
 * strided convolutions, AVX-512's 1 x 1 stride-1 ones of images under 192
 * positions (gemm_avx512.c). */
static int declined(const struct gen_kernels *k, int64_t P, int64_t KH, int64_t KW, int64_t st,
                    int64_t pad) {
    if (strcmp(k->name, "avx2") == 0) return st > 1;
    return strcmp(k->name, "avx512") == 0 && KH == 1 && KW == 1 && st == 1 && pad == 0 && P < 192;
}

static void conv_gemm_case(const struct gen_kernels *k, const int64_t *geo, int64_t M, size_t gi,
                           uint64_t *seedp);

static void conv_gemm_parity(const struct gen_kernels *k) {
    if (!k->conv_gemm) return;
    static const int64_t geo[][8] = { /* C, H, W, KH, KW, stride, pad, m */
        {1, 5, 5, 1, 1, 1, 0, 1}, {3, 7, 9, 3, 3, 1, 1, 3}, {2, 8, 8, 4, 4, 2, 1, 2},
        {4, 28, 28, 3, 3, 1, 1, 2}, {5, 6, 11, 3, 2, 2, 0, 5}, {2, 4, 4, 5, 5, 1, 2, 7},
        {3, 13, 13, 3, 3, 3, 2, 1}, {16, 7, 7, 3, 3, 1, 1, 9}, {3, 6, 8, 3, 3, 1, 0, 2},
        {2, 5, 6, 3, 4, 1, 2, 3}, {1, 3, 3, 3, 3, 1, 2, 4}, {2, 15, 15, 3, 3, 1, 1, 1},
        {3, 16, 16, 3, 3, 1, 1, 1}, {8, 28, 28, 3, 3, 2, 1, 1}, {4, 28, 27, 4, 4, 2, 1, 1},
        {4, 14, 14, 4, 4, 2, 1, 3}, {8, 9, 10, 3, 3, 3, 1, 2},  {64, 7, 8, 1, 1, 2, 0, 2},
        {16, 9, 10, 2, 2, 3, 1, 2}, {8, 29, 30, 5, 5, 2, 2, 2},
        /* 3 x 3 stride 1 with 16 or more channels: Winograd tiles, odd
         * output sizes (a half-outside last tile), pads 0 and 2, a tile row
         * longer than one vector */
        {32, 14, 14, 3, 3, 1, 1, 2}, {16, 9, 6, 3, 3, 1, 0, 3}, {20, 5, 11, 3, 3, 1, 2, 2},
        {17, 28, 28, 3, 3, 1, 1, 1}, {16, 40, 37, 3, 3, 1, 1, 1},
        /* strided, 24 or more channels: the weight gradient through the
         * channels-last copy (conv_nhwc_avx512.c), kernel rows 2, 3 and 4
         * taps wide, channels not a multiple of 16 */
        {32, 14, 14, 4, 4, 2, 1, 3}, {24, 9, 11, 3, 3, 2, 1, 2}, {48, 7, 8, 2, 2, 3, 0, 2},
        {25, 10, 9, 4, 4, 2, 1, 2},
        /* Winograd in several blocks of tile rows (the AVX2 table's: blocks
         * within an image and across images, groups of images, a short
         * last one) */
        {64, 28, 28, 3, 3, 1, 1, 5}, {64, 64, 64, 3, 3, 1, 1, 4},
        /* the AVX2 table's two tiles: F(4 x 4) with pads 0 and 2, sides
         * not a multiple of 4 and tile rows past one vector; F(2 x 2)
         * where F(4 x 4)'s tiles would cover too much (5 x 5 and 6 x 6) */
        {16, 18, 20, 3, 3, 1, 0, 2}, {24, 15, 17, 3, 3, 1, 2, 2}, {16, 5, 5, 3, 3, 1, 1, 3},
        {20, 6, 6, 3, 3, 1, 1, 2},
        /* an image whose planes fill most of a 512 KiB or 1 MiB L2: the
         * AVX2 weight gradient sums its images in groups of one */
        {16, 64, 64, 5, 5, 1, 2, 2},
        /* the AVX-512 table's F(4 x 4): images of one tile (16 runs of a
         * vector, each its own image) or two, whole 4 x 4 tiles, blocks
         * across images, products deeper than one slice of the GEMM */
        {16, 4, 4, 3, 3, 1, 1, 21}, {16, 8, 8, 3, 3, 1, 1, 7}, {32, 16, 16, 3, 3, 1, 1, 3},
        {16, 2, 2, 3, 3, 1, 2, 5}, {300, 8, 8, 3, 3, 1, 1, 2},
        /* 1 x 1 stride 1 on images of 192 positions or more (the AVX-512
         * table reads their rows in place): a last part of a vector (4 and
         * 3 columns) or none, several images, a product deeper than one
         * slice */
        {20, 14, 14, 1, 1, 1, 0, 3}, {7, 16, 16, 1, 1, 1, 0, 2}, {33, 13, 15, 1, 1, 1, 0, 2},
        {200, 14, 14, 1, 1, 1, 0, 1},
    };
    uint64_t seed = 300;
    for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++)
        /* 10 output channels, or one or nine (a lone row: its own micro-kernel) */
        conv_gemm_case(k, geo[gi], gi % 5 == 2 ? 1 : gi % 5 == 4 ? 9 : 10, gi, &seed);
    /* strided, channels-last, output channels in whole vectors: the direct
     * forward (conv_nhwc_avx512.c) with one to four vectors, rows of 7
     * outputs and of 14, 11 and 4 (single outputs after whole tiles of 7),
     * and 80 channels, past it, through the GEMM; then 20 output channels
     * of a 1 x 1 convolution read in place, whose last 4 columns an image
     * go two panels at once (16 rows, gemm_avx512.c), with a bias a row;
     * then 3 x 3 stride-1 ones of 4 and 2 tiles a row, F(4 x 4) on the
     * AVX2 table with two and four tile rows a vector (three tile rows an
     * image, so that pairs span images; two) */
    static const int64_t direct[][9] = {
        /* C, H, W, KH, KW, stride, pad, m, M */
        {32, 28, 28, 3, 3, 2, 1, 2, 32}, {64, 14, 14, 3, 3, 2, 1, 3, 64},
        {24, 9, 21, 3, 3, 2, 1, 2, 16},  {32, 14, 8, 4, 4, 2, 1, 2, 48},
        {25, 10, 9, 4, 4, 2, 1, 2, 80},  {48, 7, 8, 2, 2, 3, 0, 2, 32},
        {20, 14, 14, 1, 1, 1, 0, 3, 20}, {16, 10, 14, 3, 3, 1, 1, 3, 24},
        {16, 6, 7, 3, 3, 1, 1, 3, 24},
    };
    for (size_t d = 0; d < sizeof direct / sizeof direct[0]; d++)
        conv_gemm_case(k, direct[d], direct[d][8], sizeof geo / sizeof geo[0] + d, &seed);
}

/* One geometry of conv_gemm_parity (geo: C, H, W, KH, KW, stride, pad,
 * m) with M output channels; gi picks beta, the bias and out's layout. */
static void conv_gemm_case(const struct gen_kernels *k, const int64_t *geo, int64_t M, size_t gi,
                           uint64_t *seedp) {
    uint64_t seed = *seedp;
    const int64_t C = geo[0], H = geo[1], W = geo[2], KH = geo[3], KW = geo[4], st = geo[5],
                  pad = geo[6], m = geo[7];
    const int64_t OH = gen_conv_out(H, KH, st, pad), OW = gen_conv_out(W, KW, st, pad);
    const int64_t P = OH * OW, K = C * KH * KW, N = m * P, img = C * H * W + 3;
    const float beta = gi % 2 ? 1.0f : 0.0f;
    const int64_t nwork = k->conv_gemm_work(M, C, H, W, KH, KW, st, pad, m);
    if (nwork <= 0) { /* declined: AVX2 sends some strided convolutions to im2col
                       * (conv_avx2.c), AVX-512 1 x 1 ones to the plain GEMM */
        assert_true(declined(k, P, KH, KW, st, pad));
        if (KH * KW == 1) /* AVX-512: the weight gradient too */
            assert_int_equal(k->conv_dw_work(M, C, H, W, KH, KW, st, pad, m), 0);
        *seedp = seed;
        return;
    }
    float *x = rnd(m * img, -1, 1, seed++), *w = rnd(M * K, -1, 1, seed++);
    float *out = rnd(M * N, -1, 1, seed++), *out0 = dup(out, M * N);
    float *col = rnd(K * N, 0, 0, 0);
    float *work = malloc((size_t)nwork * sizeof(float));
    assert_non_null(work);
    for (int64_t i = 0; i < m; i++)
        scalar()->im2col_ld(C, H, W, KH, KW, st, pad, N, x + i * img, col + i * P);
    /* the kernels as conv_gemm takes them for this geometry */
    const int64_t pn = k->conv_prep_work ? k->conv_prep_work(M, C, H, W, KH, KW, st, pad) : 0;
    float *prep = pn > 0 ? malloc((size_t)pn * sizeof(float)) : NULL;
    if (prep) k->conv_prep(M, C, H, W, KH, KW, st, pad, w, prep);
    /* a bias on every third geometry; out as one M x m P matrix, or on
     * every other one as the images' (M, OH, OW) tensors */
    float *bias = gi % 3 == 0 ? rnd(M, -1, 1, seed++) : NULL;
    const int ylay = gi % 4 >= 2;
    k->conv_gemm(M, prep ? prep : w, C, H, W, KH, KW, st, pad, m, img, x, bias, beta, out,
                 ylay ? P : N, ylay ? M * P : P, work);
    free(prep);
    for (int64_t r = 0; r < M; r++)
        for (int64_t n = 0; n < N; n++) {
            const int64_t at = ylay ? n / P * M * P + r * P + n % P : r * N + n;
            double sum = beta * (double)out0[at] + (bias ? bias[r] : 0.0), mag = fabs(sum);
            for (int64_t q = 0; q < K; q++) {
                sum += (double)w[r * K + q] * col[q * N + n];
                mag += fabs((double)w[r * K + q] * col[q * N + n]);
            }
            const double err = fabs(out[at] - sum);
            if (!(err <= 1e-5 * mag + 1e-6))
                fprintf(stderr, "  %s conv_gemm case %zu: out[%lld,%lld] = %.9g, want %.9g\n",
                        k->name, gi, (long long)r, (long long)n, (double)out[at], sum);
            assert_true(err <= 1e-5 * mag + 1e-6);
        }
    /* the weight gradient: dw (M x K) = sum over images of dy_i col_i^T */
    /* (AVX2: some strided weight gradients go to im2col) */
    const int64_t dwork = k->conv_dw ? k->conv_dw_work(M, C, H, W, KH, KW, st, pad, m) : 0;
    assert_true(dwork > 0 || !k->conv_dw || (strcmp(k->name, "avx2") == 0 && st > 1));
    if (dwork > 0) {
        const int64_t dy_img = M * P + 5;
        float *dy = rnd(m * dy_img, -1, 1, seed++), *dw = rnd(M * K, 5, 5, 0);
        float *wk = malloc((size_t)dwork * sizeof(float));
        assert_non_null(wk);
        k->conv_dw(M, dy, dy_img, C, H, W, KH, KW, st, pad, m, img, x, dw, wk);
        for (int64_t r = 0; r < M; r++)
            for (int64_t q = 0; q < K; q++) {
                double sum = 0, mag = 0;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t p = 0; p < P; p++) {
                        const double t =
                            (double)dy[i * dy_img + r * P + p] * col[q * N + i * P + p];
                        sum += t, mag += fabs(t);
                    }
                const double err = fabs(dw[r * K + q] - sum);
                if (!(err <= 1e-5 * mag + 1e-6))
                    fprintf(stderr, "  %s conv_dw case %zu: dw[%lld,%lld] = %.9g, want %.9g\n",
                            k->name, gi, (long long)r, (long long)q, (double)dw[r * K + q], sum);
                assert_true(err <= 1e-5 * mag + 1e-6);
            }
        free(dy), free(dw), free(wk);
    }
    free(x), free(w), free(out), free(out0), free(col), free(work), free(bias);
    *seedp = seed;
}

/* An ISA's strided input gradient, dx_i = beta dx_i + col2im(Wm^T dy_i),
 * against double-precision sums over the windows, on the geometries it
 * takes (strides 2 and 3, kernels 2 to 5 wide and not square, odd and
 * even sizes, pads 0 to 2, channels not a multiple of 6 or 16, several
 * images, beta 0 and 1), and 0 work for those it does not. Each row says
 * which tables must take it: the AVX-512 one (channels-last) wants 16
 * floats in a kernel row, the AVX2 one (phases, conv_avx2.c) stride 2. */
static void conv_dx_parity(const struct gen_kernels *k) {
    if (!k->conv_dx) return;
    const int avx2 = strcmp(k->name, "avx2") == 0;
    assert_int_equal(k->conv_dx_work(8, 4, 14, 14, 4, 4, 2, 1, 2), 0); /* 4 channels */
    assert_int_equal(k->conv_dx_work(8, 32, 14, 14, 3, 3, 1, 1, 2), 0); /* stride 1 */
    /* AVX2: a 4 x 4 dx fills half its computed columns; 132 x 16 taps long
     * sums, channels no multiple of 8 (128 -> 64 goes to F(4 x 4, 2 x 2)
     * over the phases, winograd_s2.h, which test_grad_nn checks) */
    assert_true(!avx2 || k->conv_dx_work(8, 32, 8, 8, 3, 3, 2, 1, 2) == 0);
    assert_true(!avx2 || k->conv_dx_work(132, 60, 14, 14, 4, 4, 2, 1, 2) == 0);
    assert_true(!avx2 || k->conv_dx_work(128, 64, 14, 14, 4, 4, 2, 1, 2) > 0);
    enum { X2 = 1, X512 = 2 };
    static const int64_t geo[][9] = { /* C, H, W, KH, KW, stride, pad, m, taken by */
        {32, 14, 14, 4, 4, 2, 1, 3, X2 | X512}, {24, 9, 11, 3, 3, 2, 1, 2, X2 | X512},
        {48, 7, 8, 2, 2, 3, 0, 2, X512},        {25, 10, 9, 4, 4, 2, 1, 2, X2 | X512},
        {64, 14, 14, 4, 4, 2, 1, 1, X2 | X512}, {32, 28, 28, 3, 3, 2, 1, 2, X2 | X512},
        {13, 17, 15, 3, 3, 2, 0, 2, X2},        {10, 8, 7, 2, 2, 2, 0, 3, X2},
        {9, 22, 20, 5, 5, 2, 2, 1, X2},         {16, 12, 13, 4, 3, 2, 1, 2, X2},
        {12, 30, 29, 4, 4, 2, 1, 2, X2},
    };
    uint64_t seed = 900;
    for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++) {
        const int64_t C = geo[gi][0], H = geo[gi][1], W = geo[gi][2], KH = geo[gi][3],
                      KW = geo[gi][4], st = geo[gi][5], pad = geo[gi][6], m = geo[gi][7];
        const int64_t OH = gen_conv_out(H, KH, st, pad), OW = gen_conv_out(W, KW, st, pad);
        const int64_t P = OH * OW, K = C * KH * KW, M = 13, img = C * H * W + 3, dy_img = M * P + 5;
        const float beta = gi % 2 ? 1.0f : 0.0f;
        const int64_t nw = k->conv_dx_work(M, C, H, W, KH, KW, st, pad, m);
        if (nw <= 0) {
            assert_false(geo[gi][8] & (avx2 ? X2 : X512));
            continue;
        }
        float *w = rnd(M * K, -1, 1, seed++), *dy = rnd(m * dy_img, -1, 1, seed++);
        float *dx = rnd(m * img, -1, 1, seed++), *dx0 = dup(dx, m * img);
        float *prep =
            malloc((size_t)k->conv_dx_prep_work(M, C, H, W, KH, KW, st, pad) * sizeof(float));
        float *work = malloc((size_t)nw * sizeof(float));
        assert_non_null(prep);
        assert_non_null(work);
        k->conv_dx_prep(M, C, H, W, KH, KW, st, pad, w, prep);
        k->conv_dx(M, prep, dy, dy_img, C, H, W, KH, KW, st, pad, m, img, beta, dx, work);
        double *ref = calloc((size_t)(m * img), sizeof(double)),
               *mag = calloc((size_t)(m * img), sizeof(double));
        assert_non_null(ref);
        assert_non_null(mag);
        for (int64_t i = 0; i < m; i++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++)
                        for (int64_t oh = 0; oh < OH; oh++)
                            for (int64_t ow = 0; ow < OW; ow++) {
                                const int64_t ih = oh * st - pad + kh, iw = ow * st - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                const int64_t at = i * img + (c * H + ih) * W + iw;
                                for (int64_t r = 0; r < M; r++) {
                                    const double t = (double)w[r * K + (c * KH + kh) * KW + kw] *
                                                     dy[i * dy_img + r * P + oh * OW + ow];
                                    ref[at] += t, mag[at] += fabs(t);
                                }
                            }
        for (int64_t i = 0; i < m; i++)
            for (int64_t q = 0; q < img; q++) {
                const int64_t at = i * img + q;
                /* the 3 floats past each image are not dx's: left alone */
                const double want = q < C * H * W ? beta * (double)dx0[at] + ref[at] : dx0[at];
                const double err = fabs(dx[at] - want);
                if (!(err <= 1e-5 * (mag[at] + fabs(want)) + 1e-6))
                    fprintf(stderr, "  %s conv_dx case %zu: dx[%lld] = %.9g, want %.9g\n",
                            k->name, gi, (long long)at, (double)dx[at], want);
                assert_true(err <= 1e-5 * (mag[at] + fabs(want)) + 1e-6);
            }
        free(w), free(dy), free(dx), free(dx0), free(prep), free(work), free(ref), free(mag);
    }
}

static void test_gemm_parity(void **state) {
    (void)state;
    each_simd(gemm_parity);
    each_simd(gemm_threads);
    each_simd(gemm_widths);
    each_simd(gemm_turned);
    each_simd(gemm_in_place_bits);
    each_simd(tu_check_gemm_bias);
    each_simd(tu_check_gemm_bpacked);
    each_simd(conv_gemm_parity);
    each_simd(conv_dx_parity);
}

/* ---- the scalar reference against double-precision formulas ---- */

static void test_scalar_softmax(void **state) {
    (void)state;
    const struct gen_kernels *s = scalar();
    const int64_t rows = 5, cols = 37;
    float *x = rnd(rows * cols, -8, 8, 1), *y = rnd(rows * cols, 0, 1, 2);
    float *ly = rnd(rows * cols, 0, 1, 3);
    s->softmax_fwd(rows, cols, x, y);
    s->log_softmax_fwd(rows, cols, x, ly);
    for (int64_t r = 0; r < rows; r++) {
        double z = 0, sum = 0;
        for (int64_t j = 0; j < cols; j++) z += exp((double)x[r * cols + j]);
        for (int64_t j = 0; j < cols; j++) {
            const double want = exp((double)x[r * cols + j]) / z;
            assert_true(fabs(y[r * cols + j] - want) <= 1e-6 * want + 1e-12);
            assert_true(fabs(ly[r * cols + j] - log(want)) <= 1e-6 * fabs(log(want)) + 1e-6);
            sum += y[r * cols + j];
        }
        assert_true(fabs(sum - 1.0) < 1e-6);
    }
    /* Large logits must not overflow: the row max is subtracted. */
    float big[3] = {1000.0f, 1001.0f, 999.0f}, out[3];
    s->softmax_fwd(1, 3, big, out);
    assert_true(isfinite(out[0]) && fabs(out[0] + out[1] + out[2] - 1.0) < 1e-6);
    s->log_softmax_fwd(1, 3, big, out);
    assert_true(fabs(out[1] - (-log(1 + exp(-1.0) + exp(-2.0)))) < 1e-5);
    free(x), free(y), free(ly);
}

static void test_scalar_layernorm(void **state) {
    (void)state;
    const struct gen_kernels *s = scalar();
    const int64_t rows = 4, cols = 300;
    float *x = rnd(rows * cols, -3, 5, 4), *y = rnd(rows * cols, 0, 1, 5);
    float mean[4], rstd[4];
    s->layernorm_fwd(rows, cols, x, NULL, NULL, 1e-5f, y, mean, rstd);
    for (int64_t r = 0; r < rows; r++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < cols; j++) m += y[r * cols + j];
        m /= (double)cols;
        for (int64_t j = 0; j < cols; j++) v += (y[r * cols + j] - m) * (y[r * cols + j] - m);
        v /= (double)cols;
        assert_true(fabs(m) < 1e-6);
        assert_true(fabs(v - 1.0) < 1e-4); /* eps = 1e-5 against var ~ 5 */
    }
    free(x), free(y);
}

static void test_scalar_activations(void **state) {
    (void)state;
    const struct gen_kernels *s = scalar();
    const int64_t n = 2001;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    /* |x| <= 5: beyond, GELU's float argument (|2u| > 17) alone carries more
     * than 1e-6 of relative rounding into the tiny negative tail. */
    for (int64_t i = 0; i < n; i++) x[i] = -5.0f + 0.005f * (float)i;
    s->gelu_fwd(n, x, y);
    for (int64_t i = 0; i < n; i++) {
        const double v = x[i];
        const double want = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        assert_true(fabs(y[i] - want) <= 3e-6 * fabs(want) + 1e-30);
    }
    s->silu_fwd(n, x, y);
    for (int64_t i = 0; i < n; i++) {
        const double want = x[i] / (1.0 + exp(-(double)x[i]));
        assert_true(fabs(y[i] - want) <= 1e-6 * fabs(want) + 1e-30);
    }
    /* sigmoid saturates without overflow or NaN */
    const float ext[4] = {-1000.0f, -100.0f, 100.0f, 1000.0f};
    float out[4];
    s->sigmoid_fwd(4, ext, out);
    assert_true(out[0] == 0.0f && out[1] >= 0.0f && out[1] < 1e-40f);
    assert_true(out[2] == 1.0f && out[3] == 1.0f);
    free(x), free(y);
}

static void test_scalar_sum(void **state) {
    (void)state;
    const struct gen_kernels *s = scalar();
    const int64_t n = 100003;
    float *x = rnd(n, -1, 2, 6);
    double want = 0, want2 = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        want += x[i];
        want2 += (double)x[i] * x[i];
        mag += fabs(x[i]);
    }
    assert_true(fabs(s->sum(n, x) - want) <= 1e-12 * mag);
    assert_true(fabs(s->sumsq(n, x) - want2) <= 1e-12 * want2);
    assert_true(s->sum(0, x) == 0.0);
    free(x);
}

/* im2col of a known case, with and without padding. */
static void test_scalar_im2col(void **state) {
    (void)state;
    const struct gen_kernels *s = scalar();
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}; /* 1 x 3 x 3 */
    float col[16];
    s->im2col(1, 3, 3, 2, 2, 1, 0, x, col); /* (1*2*2, 2*2) */
    const float want[16] = {1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9};
    for (int i = 0; i < 16; i++) assert_true(col[i] == want[i]);

    const float x2[4] = {1, 2, 3, 4}; /* 1 x 2 x 2, 3x3 kernel, pad 1 */
    float col2[9 * 4];
    s->im2col(1, 2, 2, 3, 3, 1, 1, x2, col2);
    const float row0[4] = {0, 0, 0, 1}, row4[4] = {1, 2, 3, 4}, row8[4] = {4, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        assert_true(col2[0 * 4 + i] == row0[i]);
        assert_true(col2[4 * 4 + i] == row4[i]);
        assert_true(col2[8 * 4 + i] == row8[i]);
    }
    /* stride 2: 1 x 4 x 4, 2x2 kernel -> 4 rows of 2x2 */
    float x3[16], col3[16];
    for (int i = 0; i < 16; i++) x3[i] = (float)i;
    s->im2col(1, 4, 4, 2, 2, 2, 0, x3, col3);
    const float want3[4] = {0, 2, 8, 10}; /* kernel tap (0, 0) */
    for (int i = 0; i < 4; i++) assert_true(col3[i] == want3[i]);
}

/* ---- convolution shapes used by parity and adjoint tests ---- */
static const int64_t conv_cfgs[][7] = {
    /* C, H, W, KH, KW, stride, pad */
    {1, 5, 5, 3, 3, 1, 1},   {3, 7, 9, 3, 3, 1, 1},  {2, 8, 8, 4, 4, 2, 1},
    {4, 28, 28, 3, 3, 1, 1}, {2, 6, 7, 1, 1, 1, 0},  {3, 5, 5, 5, 5, 1, 2},
    {2, 4, 4, 3, 3, 1, 3},   {1, 17, 19, 3, 3, 2, 1}, {2, 9, 40, 3, 3, 1, 0},
    {64, 14, 14, 3, 3, 1, 1}, {2, 3, 3, 5, 5, 1, 2},  {3, 40, 37, 4, 4, 2, 1},
    /* stride 2 (the AVX2 table's im2col over a channel's phase planes):
     * pads 0 to 2, odd sizes, 1-wide kernels (one phase of the two), a
     * channel whose planes pass the stack's (the scalar one then) */
    {64, 14, 14, 3, 3, 2, 1}, {3, 11, 10, 5, 5, 2, 2}, {4, 9, 12, 1, 1, 2, 0},
    {2, 13, 9, 1, 2, 2, 0},   {5, 8, 9, 2, 2, 2, 0},   {2, 70, 66, 3, 3, 2, 1},
};
#define N_CONV (sizeof conv_cfgs / sizeof conv_cfgs[0])

/* <im2col(x), c> == <x, col2im(c)> for every table. */
static void adjoint_one(const struct gen_kernels *k) {
    for (size_t t = 0; t < N_CONV; t++) {
        const int64_t *q = conv_cfgs[t];
        const int64_t C = q[0], H = q[1], W = q[2], KH = q[3], KW = q[4], S = q[5], P = q[6];
        const int64_t OH = gen_conv_out(H, KH, S, P), OW = gen_conv_out(W, KW, S, P);
        const int64_t nx = C * H * W, nc = C * KH * KW * OH * OW;
        float *x = rnd(nx, -1, 1, 10 + t), *c = rnd(nc, -1, 1, 20 + t);
        float *col = rnd(nc, 0, 1, 30), *xc = calloc((size_t)nx, sizeof(float));
        k->im2col(C, H, W, KH, KW, S, P, x, col);
        k->col2im(C, H, W, KH, KW, S, P, c, xc);
        double lhs = 0, rhs = 0, mag = 0;
        for (int64_t i = 0; i < nc; i++) lhs += (double)col[i] * c[i], mag += fabs(col[i] * c[i]);
        for (int64_t i = 0; i < nx; i++) rhs += (double)x[i] * xc[i];
        assert_true(fabs(lhs - rhs) <= 1e-6 * mag + 1e-12);
        free(x), free(c), free(col), free(xc);
    }
}

static void test_im2col_adjoint(void **state) {
    (void)state;
    adjoint_one(scalar());
    each_simd(adjoint_one);
}

/* ---- parity: every SIMD table against scalar ---- */

static void elementwise_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t li = 0; li < N_LENGTHS; li++) {
        const int64_t n = lengths[li];
        float *a = rnd(n, -2, 2, 100 + li), *b = rnd(n, -2, 2, 200 + li);
        float *y0 = rnd(n, -1, 1, 300 + li), *y1 = dup(y0, n);
#define BIN(op)                                                               \
    s->op(n, a, b, y0);                                                       \
    k->op(n, a, b, y1);                                                       \
    check(k, #op, n, y1, y0, n, 1e-6, 1e-12);
        BIN(add) BIN(sub) BIN(mul)
#undef BIN
        s->scale(n, 0.37f, a, y0), k->scale(n, 0.37f, a, y1);
        check(k, "scale", n, y1, y0, n, 1e-6, 1e-12);
        s->axpy(n, -1.3f, a, y0), k->axpy(n, -1.3f, a, y1);
        check(k, "axpy", n, y1, y0, n, 1e-6, 1e-6);
        s->mul_acc(n, a, b, y0), k->mul_acc(n, a, b, y1);
        check(k, "mul_acc", n, y1, y0, n, 1e-6, 1e-6);
        s->fill(n, 2.5f, y0), k->fill(n, 2.5f, y1);
        check(k, "fill", n, y1, y0, n, 0, 1e-30);

        /* y aliasing an input */
        memcpy(y0, a, (size_t)n * sizeof(float)), memcpy(y1, a, (size_t)n * sizeof(float));
        s->add(n, y0, b, y0), k->add(n, y1, b, y1);
        check(k, "add(aliased)", n, y1, y0, n, 1e-6, 1e-12);

        double mag = 0, mag2 = 0;
        for (int64_t i = 0; i < n; i++) mag += fabs(a[i]), mag2 += (double)a[i] * a[i];
        assert_true(fabs(k->sum(n, a) - s->sum(n, a)) <= 1e-12 * mag);
        assert_true(fabs(k->sumsq(n, a) - s->sumsq(n, a)) <= 1e-12 * mag2);
        free(a), free(b), free(y0), free(y1);
    }
}

static void test_elementwise_parity(void **state) {
    (void)state;
    each_simd(elementwise_one);
}

/* gelu_both of a table (the scalar one too) against that table's gelu_fwd
 * (the same bits: the MLP's backward takes again the a its forward took)
 * and gelu_grad (SET) on x over [-10, 10] (the tanh form's tails, where
 * e^-t overflows) and against the scalar gelu_both, the gradient also
 * with dx == dy. Tolerances of the transcendental kernels (file head). */
static void gelu_both_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t li = 0; li < N_LENGTHS; li++) {
        const int64_t n = lengths[li];
        float *x = rnd(n, -10, 10, 7200 + li), *dy = rnd(n, -1, 1, 7300 + li);
        float *y = rnd(n, 5, 6, 1), *dx = rnd(n, 5, 6, 2), *y0 = rnd(n, 5, 6, 3);
        float *dx0 = rnd(n, 5, 6, 4), *d = malloc((size_t)n * sizeof *d);
        assert_non_null(d);
        k->gelu_fwd(n, x, y0);
        k->gelu_grad(n, x, dy, dx0, GEN_GRAD_SET);
        k->gelu_both(n, x, dy, y, dx);
        assert_memory_equal(y, y0, (size_t)n * sizeof *y);
        check(k, "gelu_both dx (own gelu_grad)", n, dx, dx0, n, 2e-6, 2e-6);
        s->gelu_both(n, x, dy, y0, dx0);
        check(k, "gelu_both y", n, y, y0, n, 2e-6, 1e-7);
        check(k, "gelu_both dx", n, dx, dx0, n, 2e-6, 2e-6);
        memcpy(d, dy, (size_t)n * sizeof *d);
        k->gelu_both(n, x, d, y, d); /* in place over dy */
        assert_memory_equal(d, dx, (size_t)n * sizeof *d);
        free(x), free(dy), free(y), free(dx), free(y0), free(dx0), free(d);
    }
    /* past the tails: e^-t overflows below about -10.3 (the gradient's
     * e s must not be inf times 0), and x^2 itself overflows (the value
     * only: 2 du/dx is inf there, as in gelu_grad) */
    const float t[] = {-10.5f, -12.0f, -20.0f, -50.0f, -1e30f, 10.5f, 50.0f, 1e30f};
    enum { NT = sizeof t / sizeof t[0] };
    float ones[NT], y[NT], y0[NT], dx[NT];
    for (int i = 0; i < NT; i++) ones[i] = 1.0f;
    k->gelu_fwd(NT, t, y0);
    k->gelu_both(NT, t, ones, y, dx);
    assert_memory_equal(y, y0, sizeof y);
    for (int i = 0; i < NT; i++) {
        assert_true(t[i] < 0.0f ? fabsf(y[i]) < 1e-30f : y[i] == t[i]);
        if (fabsf(t[i]) < 1e3f) assert_true(fabsf(dx[i] - (t[i] > 0.0f)) < 1e-6f);
    }
}

static void test_gelu_both(void **state) {
    (void)state;
    gelu_both_one(scalar());
    each_simd(gelu_both_one);
}

/* bce_logits_terms of every table against log1p in double and against the
 * scalar table, logits over [-40, 40] (e^-|x| from 1 down to below
 * float's epsilon, where 1 + e rounds to 1) and targets 0, 1 and between:
 * each term within 2e-6 (4e-6 of the scalar one's) of its parts' sizes. */
static void bce_terms_one(const struct gen_kernels *k) {
    for (size_t li = 0; li < N_LENGTHS; li++) {
        const int64_t n = lengths[li];
        float *x = rnd(n, -40, 40, 7000 + li), *t = rnd(n, 0, 1, 7100 + li);
        float *y = rnd(n, 5, 6, 1), *y0 = rnd(n, 5, 6, 2);
        for (int64_t i = 0; i < n; i++) {
            if (i % 3 == 0) t[i] = 0.0f;
            if (i % 3 == 1) t[i] = 1.0f;
            if (i % 5 == 0) x[i] *= 0.01f; /* near 0, where log(1 + e) is near log 2 */
        }
        k->bce_logits_terms(n, x, t, y);
        scalar()->bce_logits_terms(n, x, t, y0);
        for (int64_t i = 0; i < n; i++) {
            const double xi = x[i], l = log1p(exp(-fabs(xi)));
            const double want = fmax(xi, 0.0) - xi * t[i] + l;
            /* x t rounds (fused or not) before it cancels against max(x, 0) */
            const double mag = fabs(xi) + fabs(xi * t[i]) + l;
            if (!(fabs(y[i] - want) <= 2e-6 * mag && fabs(y[i] - y0[i]) <= 4e-6 * mag))
                fprintf(stderr, "  %s bce_logits_terms(%.9g, %.9g) = %.9g, want %.9g (scalar %.9g)\n",
                        k->name, xi, (double)t[i], (double)y[i], want, (double)y0[i]);
            assert_true(fabs(y[i] - want) <= 2e-6 * mag);
            assert_true(fabs(y[i] - y0[i]) <= 4e-6 * mag);
        }
        free(x), free(t), free(y), free(y0);
    }
}

static void test_bce_terms(void **state) {
    (void)state;
    bce_terms_one(scalar());
    each_simd(bce_terms_one);
}

/* One activation, forward on x in [lo, hi], backward on dy with dx random. */
struct act {
    const char *name;
    float lo, hi;
    double rtol, atol;       /* forward */
    double brtol, batol;     /* backward */
    int bwd_takes_y;         /* sigmoid, tanh, exp: backward gets the forward output */
};

static void act_run(const struct gen_kernels *k, const char *name, int64_t n, const float *x,
                    float *y, const float *dy, float *dx) {
    if (strcmp(name, "relu") == 0) k->relu_fwd(n, x, y), k->relu_bwd(n, x, dy, dx);
    if (strcmp(name, "leaky_relu") == 0)
        k->leaky_relu_fwd(n, 0.2f, x, y), k->leaky_relu_bwd(n, 0.2f, x, dy, dx);
    if (strcmp(name, "gelu") == 0) k->gelu_fwd(n, x, y), k->gelu_bwd(n, x, dy, dx);
    if (strcmp(name, "silu") == 0) k->silu_fwd(n, x, y), k->silu_bwd(n, x, dy, dx);
    /* backward of these takes y; both tables get the scalar y so only the
     * backward itself is compared */
    if (strcmp(name, "sigmoid") == 0) k->sigmoid_fwd(n, x, y);
    if (strcmp(name, "tanh") == 0) k->tanh_fwd(n, x, y);
    if (strcmp(name, "exp") == 0) k->exp_fwd(n, x, y);
}

static void act_bwd_y(const struct gen_kernels *k, const char *name, int64_t n, const float *y,
                      const float *dy, float *dx) {
    if (strcmp(name, "sigmoid") == 0) k->sigmoid_bwd(n, y, dy, dx);
    if (strcmp(name, "tanh") == 0) k->tanh_bwd(n, y, dy, dx);
    if (strcmp(name, "exp") == 0) k->exp_bwd(n, y, dy, dx);
}

static const struct act acts[] = {
    {"relu", -3, 3, 1e-6, 1e-30, 1e-6, 1e-12, 0},
    {"leaky_relu", -3, 3, 1e-6, 1e-30, 1e-6, 1e-6, 0},
    {"gelu", -10, 10, 2e-6, 1e-7, 2e-6, 2e-6, 0},
    {"silu", -20, 20, 2e-6, 1e-7, 2e-6, 2e-6, 0},
    {"sigmoid", -30, 30, 2e-6, 1e-30, 1e-6, 1e-6, 1},
    {"tanh", -6, 6, 2e-6, 1e-30, 1e-6, 1e-6, 1},
    {"tanh_small", -0.6f, 0.6f, 2e-6, 1e-30, 1e-6, 1e-6, 1},
    {"exp", -20, 20, 2e-6, 1e-30, 1e-6, 1e-6, 1},
};

static void activations_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
        const struct act *A = &acts[ai];
        const char *fn = strcmp(A->name, "tanh_small") == 0 ? "tanh" : A->name;
        char fwd[64], bwd[64];
        snprintf(fwd, sizeof fwd, "%s_fwd", A->name);
        snprintf(bwd, sizeof bwd, "%s_bwd", A->name);
        for (size_t li = 0; li < N_LENGTHS; li++) {
            const int64_t n = lengths[li];
            float *x = rnd(n, A->lo, A->hi, 400 + li), *dy = rnd(n, -1, 1, 500 + li);
            float *dx0 = rnd(n, -1, 1, 600 + li), *dx1 = dup(dx0, n);
            float *y0 = rnd(n, 0, 1, 1), *y1 = rnd(n, 0, 1, 2);
            act_run(s, fn, n, x, y0, dy, dx0);
            act_run(k, fn, n, x, y1, dy, dx1);
            check(k, fwd, n, y1, y0, n, A->rtol, A->atol);
            if (A->bwd_takes_y) {
                act_bwd_y(s, fn, n, y0, dy, dx0);
                act_bwd_y(k, fn, n, y0, dy, dx1);
            }
            check(k, bwd, n, dx1, dx0, n, A->brtol, A->batol);
            free(x), free(dy), free(dx0), free(dx1), free(y0), free(y1);
        }
    }
}

static void test_activation_parity(void **state) {
    (void)state;
    each_simd(activations_one);
}

/* exp, tanh, sigmoid, silu, gelu at the edges: zeros, the tanh switch
 * point, overflow, gradual underflow, infinities, NaN. */
static void special_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    const float v[] = {0.0f,   -0.0f,  1e-8f,   -1e-8f,  1e-3f,   0.3999f, 0.4f,   -0.4001f,
                       1.0f,   9.0f,   10.0f,   20.0f,   -20.0f,  50.0f,   -50.0f, 87.0f,
                       88.5f,  88.72f, 88.73f,  89.0f,   100.0f,  -87.0f,  -88.0f, -100.0f,
                       -103.0f, -104.0f, -105.0f, -150.0f, INFINITY, -INFINITY, NAN, 1e30f,
                       -1e30f};
    const int64_t n = sizeof v / sizeof v[0];
    float y0[sizeof v / sizeof v[0]], y1[sizeof v / sizeof v[0]];
    char what[64];
#define SPECIAL(op, rtol, atol)                                               \
    s->op(n, v, y0);                                                          \
    k->op(n, v, y1);                                                          \
    snprintf(what, sizeof what, "%s %s (special)", k->name, #op);             \
    check_special(what, y1, y0, n, rtol, atol);
    SPECIAL(exp_fwd, 2e-6, 3e-45)
    SPECIAL(tanh_fwd, 2e-6, 0)
    SPECIAL(sigmoid_fwd, 2e-6, 3e-45)
    SPECIAL(silu_fwd, 2e-6, 1e-36)
    SPECIAL(gelu_fwd, 2e-6, 1e-36)
    SPECIAL(relu_fwd, 0, 0)
#undef SPECIAL
}

static void test_special_values(void **state) {
    (void)state;
    float y[3];
    const float big[3] = {-1e30f, 1e30f, 0.0f};
    scalar()->gelu_fwd(3, big, y);
    assert_true(!isnan(y[0]) && !isnan(y[1]) && y[1] == 1e30f);
    each_simd(special_one);
}

static void rows_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t ri = 0; ri < sizeof row_rows / sizeof row_rows[0]; ri++)
        for (size_t ci = 0; ci < sizeof row_cols / sizeof row_cols[0]; ci++) {
            const int64_t rows = row_rows[ri], cols = row_cols[ci], n = rows * cols;
            const uint64_t seed = 1000 + 10 * ri + ci;
            float *x = rnd(n, -6, 6, seed), *dy = rnd(n, -1, 1, seed + 1);
            float *y0 = rnd(n, 0, 1, 3), *y1 = rnd(n, 0, 1, 4);
            float *dx0 = rnd(n, -1, 1, seed + 2), *dx1 = dup(dx0, n);

            s->softmax_fwd(rows, cols, x, y0), k->softmax_fwd(rows, cols, x, y1);
            check(k, "softmax_fwd", cols, y1, y0, n, 2e-6, 1e-12);
            s->softmax_bwd(rows, cols, y0, dy, dx0), k->softmax_bwd(rows, cols, y0, dy, dx1);
            check(k, "softmax_bwd", cols, dx1, dx0, n, 2e-6, 2e-6);

            s->log_softmax_fwd(rows, cols, x, y0), k->log_softmax_fwd(rows, cols, x, y1);
            check(k, "log_softmax_fwd", cols, y1, y0, n, 2e-6, 2e-6);
            s->log_softmax_bwd(rows, cols, y0, dy, dx0);
            k->log_softmax_bwd(rows, cols, y0, dy, dx1);
            check(k, "log_softmax_bwd", cols, dx1, dx0, n, 2e-6, 2e-6);

            /* layernorm with and without the affine part */
            float *g = rnd(cols, 0.5f, 1.5f, seed + 3), *b = rnd(cols, -0.5f, 0.5f, seed + 4);
            float *m0 = malloc((size_t)rows * sizeof(float)), *m1 = malloc((size_t)rows * sizeof(float));
            float *r0 = malloc((size_t)rows * sizeof(float)), *r1 = malloc((size_t)rows * sizeof(float));
            for (int affine = 0; affine < 2; affine++) {
                const float *gg = affine ? g : NULL, *bb = affine ? b : NULL;
                s->layernorm_fwd(rows, cols, x, gg, bb, 1e-5f, y0, m0, r0);
                k->layernorm_fwd(rows, cols, x, gg, bb, 1e-5f, y1, m1, r1);
                check(k, "layernorm_fwd", cols, y1, y0, n, 1e-5, 1e-5);
                check(k, "layernorm_fwd mean", cols, m1, m0, rows, 1e-6, 1e-6);
                check(k, "layernorm_fwd rstd", cols, r1, r0, rows, 1e-6, 1e-12);
                float *dg0 = rnd(cols, -1, 1, seed + 5), *dg1 = dup(dg0, cols);
                float *db0 = rnd(cols, -1, 1, seed + 6), *db1 = dup(db0, cols);
                s->layernorm_bwd(rows, cols, x, gg, m0, r0, dy, dx0, affine ? dg0 : NULL,
                                 affine ? db0 : NULL);
                k->layernorm_bwd(rows, cols, x, gg, m0, r0, dy, dx1, affine ? dg1 : NULL,
                                 affine ? db1 : NULL);
                /* cols == 1: var 0, rstd = 1/sqrt(eps) ~ 316 magnifies one rounding */
                check(k, "layernorm_bwd dx", cols, dx1, dx0, n, 1e-5, cols == 1 ? 1e-4 : 1e-5);
                check(k, "layernorm_bwd dgamma", cols, dg1, dg0, cols, 1e-5, 1e-5);
                check(k, "layernorm_bwd dbeta", cols, db1, db0, cols, 1e-5, 1e-5);
                free(dg0), free(dg1), free(db0), free(db1);
            }
            free(x), free(dy), free(y0), free(y1), free(dx0), free(dx1), free(g), free(b);
            free(m0), free(m1), free(r0), free(r1);
        }
}

static void test_row_parity(void **state) {
    (void)state;
    each_simd(rows_one);
}

/* Softmax rows as causal attention masks them: -inf past the diagonal,
 * scores far below the row's maximum, and a NaN. Masked and underflowing
 * entries are exactly 0 (the SIMD kernels flush e^d below the smallest
 * normal), the rest as the scalar reference has them, and the NaN row is
 * NaN throughout. */
static void masked_one(const struct gen_kernels *k) {
    const int64_t T = 37;
    float *x = rnd(T * T, -4, 4, 77), *y0 = rnd(T * T, 0, 1, 1), *y1 = rnd(T * T, 0, 1, 2);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = t + 1; j < T; j++) x[t * T + j] = j % 3 ? -INFINITY : x[t * T] - 95.0f;
    x[5 * T + 2] = NAN;
    scalar()->softmax_fwd(T, T, x, y0), k->softmax_fwd(T, T, x, y1);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < T; j++) {
            const float got = y1[t * T + j], want = y0[t * T + j];
            if (t == 5)
                assert_true(isnan(got));
            else if (j > t)
                assert_true(got == 0.0f);
            else
                assert_true(fabsf(got - want) <= 2e-6f * want + 1e-12f);
        }
    free(x), free(y0), free(y1);
}

static void test_softmax_masked(void **state) {
    (void)state;
    each_simd(masked_one);
}

/* Shapes (N, C, HW, G) of the group norm tests (N G <= 64). */
static const int64_t gn_cfg[][4] = {{1, 8, 1, 4},   {2, 8, 7, 2},    {3, 8, 16, 8},
                                    {2, 6, 17, 3},  {2, 32, 49, 8},  {1, 4, 1023, 1},
                                    {2, 16, 64, 8}, {4, 64, 196, 8}};
#define N_GN (sizeof gn_cfg / sizeof gn_cfg[0])

static void groupnorm_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t t = 0; t < N_GN; t++) {
        const int64_t N = gn_cfg[t][0], C = gn_cfg[t][1], HW = gn_cfg[t][2], G = gn_cfg[t][3];
        const int64_t n = N * C * HW;
        float *x = rnd(n, -2, 4, 2000 + t), *dy = rnd(n, -1, 1, 2100 + t);
        float *y0 = rnd(n, 0, 1, 1), *y1 = rnd(n, 0, 1, 2);
        float *dx0 = rnd(n, -1, 1, 2200 + t), *dx1 = dup(dx0, n);
        float *g = rnd(C, 0.5f, 1.5f, 2300 + t), *b = rnd(C, -0.5f, 0.5f, 2400 + t);
        float m0[64], m1[64], r0[64], r1[64];
        for (int affine = 0; affine < 2; affine++) {
            const float *gg = affine ? g : NULL, *bb = affine ? b : NULL;
            s->groupnorm_fwd(N, C, HW, G, x, gg, bb, 1e-5f, y0, m0, r0);
            k->groupnorm_fwd(N, C, HW, G, x, gg, bb, 1e-5f, y1, m1, r1);
            check(k, "groupnorm_fwd", HW, y1, y0, n, 1e-5, 1e-5);
            check(k, "groupnorm_fwd mean", HW, m1, m0, N * G, 1e-6, 1e-6);
            check(k, "groupnorm_fwd rstd", HW, r1, r0, N * G, 1e-6, 1e-12);
            float *dg0 = rnd(C, -1, 1, 2500 + t), *dg1 = dup(dg0, C);
            float *db0 = rnd(C, -1, 1, 2600 + t), *db1 = dup(db0, C);
            s->groupnorm_bwd(N, C, HW, G, x, gg, m0, r0, dy, dx0, affine ? dg0 : NULL,
                             affine ? db0 : NULL);
            k->groupnorm_bwd(N, C, HW, G, x, gg, m0, r0, dy, dx1, affine ? dg1 : NULL,
                             affine ? db1 : NULL);
            check(k, "groupnorm_bwd dx", HW, dx1, dx0, n, 1e-5, 1e-5);
            check(k, "groupnorm_bwd dgamma", HW, dg1, dg0, C, 1e-5, 1e-5);
            check(k, "groupnorm_bwd dbeta", HW, db1, db0, C, 1e-5, 1e-5);
            free(dg0), free(dg1), free(db0), free(db1);
        }
        free(x), free(dy), free(y0), free(y1), free(dx0), free(dx1), free(g), free(b);
    }
}

static void test_groupnorm_parity(void **state) {
    (void)state;
    each_simd(groupnorm_one);
}

static void optim_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t li = 0; li < N_LENGTHS; li++) {
        const int64_t n = lengths[li];
        float *p0 = rnd(n, -1, 1, 3000 + li), *p1 = dup(p0, n);
        float *m0 = calloc((size_t)n, sizeof(float)), *m1 = calloc((size_t)n, sizeof(float));
        float *v0 = calloc((size_t)n, sizeof(float)), *v1 = calloc((size_t)n, sizeof(float));
        for (int t = 1; t <= 3; t++) {
            float *g = rnd(n, -1, 1, 3100 + li * 7 + (uint64_t)t);
            const float bc1 = 1.0f - powf(0.9f, (float)t), bc2 = 1.0f - powf(0.999f, (float)t);
            s->adam(n, p0, g, m0, v0, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, bc1, bc2);
            k->adam(n, p1, g, m1, v1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, bc1, bc2);
            free(g);
        }
        check(k, "adam p", n, p1, p0, n, 1e-6, 1e-7);
        check(k, "adam m", n, m1, m0, n, 1e-6, 1e-7);
        check(k, "adam v", n, v1, v0, n, 1e-6, 1e-9);

        float *g = rnd(n, -1, 1, 3200 + li);
        s->sgd(n, p0, g, m0, 0.01f, 0.9f, 1e-4f), k->sgd(n, p1, g, m1, 0.01f, 0.9f, 1e-4f);
        check(k, "sgd p", n, p1, p0, n, 1e-6, 1e-6);
        check(k, "sgd buf", n, m1, m0, n, 1e-6, 1e-6);
        s->ema(n, v0, p0, 0.999f), k->ema(n, v1, p0, 0.999f);
        check(k, "ema", n, v1, v0, n, 1e-6, 1e-6);
        free(p0), free(p1), free(m0), free(m1), free(v0), free(v1), free(g);
    }
}

static void test_optim_parity(void **state) {
    (void)state;
    each_simd(optim_one);
}

/* ---- gradient modes, the fused group norm + SiLU, adam_step ---- */

static void same_bits(const struct gen_kernels *k, const char *what, const float *got,
                      const float *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            fprintf(stderr, "  %s %s: element %lld: %.9g, want %.9g\n", k->name, what,
                    (long long)i, (double)got[i], (double)want[i]);
            fail();
        }
}

static float *nans(int64_t n) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

/* Every *_grad kernel of k: GEN_GRAD_SET into NaNs (never read) gives the
 * bits of GEN_GRAD_ADD into zeros, and ADD is the *_bwd kernel. */
static void grad_modes_one(const struct gen_kernels *k) {
    const int64_t rows = 33, cols = 37, n = rows * cols;
    float *x = rnd(n, -4, 4, 7000), *dy = rnd(n, -1, 1, 7001), *y = rnd(n, 0.01f, 1, 7002);
    float *g = rnd(cols, 0.5f, 1.5f, 7003), *mean = malloc(rows * sizeof(float));
    float *rstd = malloc(rows * sizeof(float)), *ln = malloc((size_t)n * sizeof(float));
    k->layernorm_fwd(rows, cols, x, g, NULL, 1e-5f, ln, mean, rstd);
    for (int which = 0; which < 10; which++) {
        float *set = nans(n), *add = calloc((size_t)n, sizeof(float));
        float *acc = rnd(n, -1, 1, 7004), *bwd = dup(acc, n);
        const char *name = NULL;
#define MODES(NAME, GRAD, BWD)                                                                  \
    do {                                                                                        \
        name = NAME;                                                                            \
        float *dx_ = set;                                                                       \
        enum gen_grad_mode mode_ = GEN_GRAD_SET;                                                \
        GRAD;                                                                                   \
        dx_ = add, mode_ = GEN_GRAD_ADD;                                                        \
        GRAD;                                                                                   \
        dx_ = acc;                                                                              \
        GRAD;                                                                                   \
        dx_ = bwd;                                                                              \
        BWD;                                                                                    \
    } while (0)
        switch (which) {
        case 0:
            MODES("relu", k->relu_grad(n, x, dy, dx_, mode_), k->relu_bwd(n, x, dy, dx_));
            break;
        case 1:
            MODES("leaky_relu", k->leaky_relu_grad(n, 0.2f, x, dy, dx_, mode_),
                  k->leaky_relu_bwd(n, 0.2f, x, dy, dx_));
            break;
        case 2:
            MODES("gelu", k->gelu_grad(n, x, dy, dx_, mode_), k->gelu_bwd(n, x, dy, dx_));
            break;
        case 3:
            MODES("silu", k->silu_grad(n, x, dy, dx_, mode_), k->silu_bwd(n, x, dy, dx_));
            break;
        case 4:
            MODES("sigmoid", k->sigmoid_grad(n, y, dy, dx_, mode_), k->sigmoid_bwd(n, y, dy, dx_));
            break;
        case 5:
            MODES("tanh", k->tanh_grad(n, y, dy, dx_, mode_), k->tanh_bwd(n, y, dy, dx_));
            break;
        case 6: MODES("exp", k->exp_grad(n, y, dy, dx_, mode_), k->exp_bwd(n, y, dy, dx_)); break;
        case 7:
            MODES("softmax", k->softmax_grad(rows, cols, y, dy, dx_, mode_),
                  k->softmax_bwd(rows, cols, y, dy, dx_));
            break;
        case 8:
            MODES("log_softmax", k->log_softmax_grad(rows, cols, y, dy, dx_, mode_),
                  k->log_softmax_bwd(rows, cols, y, dy, dx_));
            break;
        default:
            MODES("layernorm",
                  k->layernorm_grad(rows, cols, x, g, mean, rstd, dy, dx_, mode_, NULL, NULL),
                  k->layernorm_bwd(rows, cols, x, g, mean, rstd, dy, dx_, NULL, NULL));
            break;
        }
#undef MODES
        char what[64];
        snprintf(what, sizeof what, "%s_grad SET", name);
        same_bits(k, what, set, add, n);
        snprintf(what, sizeof what, "%s_grad ADD", name);
        same_bits(k, what, acc, bwd, n);
        free(set), free(add), free(acc), free(bwd);
    }
    /* layernorm_grad without dx: the same dgamma, dbeta */
    float *dg0 = calloc(cols, sizeof(float)), *db0 = calloc(cols, sizeof(float));
    float *dg1 = calloc(cols, sizeof(float)), *db1 = calloc(cols, sizeof(float)), *dx = nans(n);
    k->layernorm_grad(rows, cols, x, g, mean, rstd, dy, dx, GEN_GRAD_SET, dg0, db0);
    k->layernorm_grad(rows, cols, x, g, mean, rstd, dy, NULL, GEN_GRAD_SET, dg1, db1);
    same_bits(k, "layernorm_grad dgamma without dx", dg1, dg0, cols);
    same_bits(k, "layernorm_grad dbeta without dx", db1, db0, cols);
    free(dg0), free(db0), free(dg1), free(db1), free(dx);
    free(x), free(dy), free(y), free(g), free(mean), free(rstd), free(ln);
}

static void test_grad_modes(void **state) {
    (void)state;
    grad_modes_one(scalar());
    each_simd(grad_modes_one);
}

/* mul_grads gives, in every mode pair, the bits of the two passes it
 * replaces (mul or mul_acc for da, then for db) on the same table, with
 * separate buffers and with da and db one buffer; past GEN_KPAR_MIN too,
 * so that its blocks run across threads. */
static void mul_grads_one(const struct gen_kernels *k) {
    static const int64_t sizes[] = {1, 17, 1000, (1 << 16) + 37};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int64_t n = sizes[s];
        float *dy = rnd(n, -1, 1, 7100), *a = rnd(n, -2, 2, 7101), *b = rnd(n, -2, 2, 7102);
        for (int m = 0; m < 5; m++) {
            const enum gen_grad_mode ma = m & 1 ? GEN_GRAD_ADD : GEN_GRAD_SET,
                                     mb = m & 2 ? GEN_GRAD_ADD : GEN_GRAD_SET;
            const int alias = m == 4; /* da = db, the second pass adding */
            float *da0 = rnd(n, -1, 1, 7103), *db0 = alias ? da0 : rnd(n, -1, 1, 7104);
            float *da1 = dup(da0, n), *db1 = alias ? da1 : dup(db0, n);
            const enum gen_grad_mode mb_ = alias ? GEN_GRAD_ADD : mb;
            if (ma == GEN_GRAD_SET) k->mul(n, dy, b, da0);
            else k->mul_acc(n, dy, b, da0);
            if (mb_ == GEN_GRAD_SET) k->mul(n, dy, a, db0);
            else k->mul_acc(n, dy, a, db0);
            k->mul_grads(n, dy, a, b, da1, ma, db1, mb_);
            assert_memory_equal(da0, da1, (size_t)n * sizeof(float));
            assert_memory_equal(db0, db1, (size_t)n * sizeof(float));
            free(da0), free(da1);
            if (!alias) free(db0), free(db1);
        }
        free(dy), free(a), free(b);
    }
}

static void test_mul_grads(void **state) {
    (void)state;
    mul_grads_one(scalar());
    each_simd(mul_grads_one);
}

/* One table's group norm backward, plain or fused (of x + sh with a
 * shift sh): dx (SET), dgamma, dbeta, dshift. */
struct gn_out {
    float *y, *mean, *rstd, *dx, *dg, *db, *ds;
};

static struct gn_out gn_run_shift(const struct gen_kernels *k, const int64_t *q, const float *x,
                                  const float *sh, const float *g, const float *b, const float *dy,
                                  int silu) {
    const int64_t N = q[0], C = q[1], HW = q[2], G = q[3], n = N * C * HW;
    struct gn_out o = {nans(n), nans(N * G), nans(N * G), nans(n), calloc(C, sizeof(float)),
                       calloc(C, sizeof(float)), sh ? nans(N * C) : NULL};
    double *work = malloc((size_t)(4 * N * C) * sizeof(double));
    if (silu) { /* SET keeps dh in dx: no scratch */
        k->groupnorm_silu_fwd(N, C, HW, G, x, sh, g, b, 1e-5f, o.y, o.mean, o.rstd);
        k->groupnorm_silu_grad(N, C, HW, G, x, sh, g, b, o.mean, o.rstd, dy, NULL, o.dx,
                               GEN_GRAD_SET, o.dg, o.db, o.ds, work);
    } else {
        k->groupnorm_fwd(N, C, HW, G, x, g, b, 1e-5f, o.y, o.mean, o.rstd);
        k->groupnorm_grad(N, C, HW, G, x, g, o.mean, o.rstd, dy, o.dx, GEN_GRAD_SET, o.dg, o.db,
                          work);
    }
    free(work);
    return o;
}

static struct gn_out gn_run(const struct gen_kernels *k, const int64_t *q, const float *x,
                            const float *g, const float *b, const float *dy, int silu) {
    return gn_run_shift(k, q, x, NULL, g, b, dy, silu);
}

static void gn_free(struct gn_out *o) {
    free(o->y), free(o->mean), free(o->rstd), free(o->dx), free(o->dg), free(o->db), free(o->ds);
}

/* Within k: groupnorm_grad's dx has groupnorm_bwd's bits (its dgamma,
 * dbeta sum in another order: rtol 1e-6), and the fused group norm + SiLU
 * has the bits of groupnorm_fwd, silu_fwd, silu_grad (SET) and
 * groupnorm_grad. */
static void gn_fused_one(const struct gen_kernels *k) {
    for (size_t t = 0; t < N_GN; t++) {
        const int64_t *q = gn_cfg[t], N = q[0], C = q[1], HW = q[2], G = q[3], n = N * C * HW;
        float *x = rnd(n, -2, 4, 7100 + t), *dy = rnd(n, -1, 1, 7200 + t);
        float *g = rnd(C, 0.5f, 1.5f, 7300 + t), *b = rnd(C, -0.5f, 0.5f, 7400 + t);
        struct gn_out plain = gn_run(k, q, x, g, b, dy, 0), fused = gn_run(k, q, x, g, b, dy, 1);

        float *dx = calloc((size_t)n, sizeof(float)), *dg = calloc(C, sizeof(float));
        float *db = calloc(C, sizeof(float));
        k->groupnorm_bwd(N, C, HW, G, x, g, plain.mean, plain.rstd, dy, dx, dg, db);
        same_bits(k, "groupnorm_grad dx", plain.dx, dx, n);
        check(k, "groupnorm_grad dgamma", HW, plain.dg, dg, C, 1e-6, 1e-9);
        check(k, "groupnorm_grad dbeta", HW, plain.db, db, C, 1e-6, 1e-9);

        float *y = nans(n), *dh = nans(n);
        k->silu_fwd(n, plain.y, y);
        same_bits(k, "groupnorm_silu_fwd", fused.y, y, n);
        same_bits(k, "groupnorm_silu_fwd mean", fused.mean, plain.mean, N * G);
        same_bits(k, "groupnorm_silu_fwd rstd", fused.rstd, plain.rstd, N * G);
        k->silu_grad(n, plain.y, dy, dh, GEN_GRAD_SET);
        struct gn_out chain = gn_run(k, q, x, g, b, dh, 0);
        same_bits(k, "groupnorm_silu_grad dx", fused.dx, chain.dx, n);
        same_bits(k, "groupnorm_silu_grad dgamma", fused.dg, chain.dg, C);
        same_bits(k, "groupnorm_silu_grad dbeta", fused.db, chain.db, C);
        gn_free(&plain), gn_free(&fused), gn_free(&chain);
        free(x), free(dy), free(g), free(b), free(dx), free(dg), free(db), free(y), free(dh);
    }
}

static void test_groupnorm_fused(void **state) {
    (void)state;
    gn_fused_one(scalar());
    each_simd(gn_fused_one);
}

/* The new group norm kernels of k against the scalar ones, affine or not,
 * with dx added to (ADD) as well. */
static void gn_grad_parity_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t t = 0; t < N_GN; t++) {
        const int64_t *q = gn_cfg[t], N = q[0], C = q[1], HW = q[2], G = q[3], n = N * C * HW;
        float *x = rnd(n, -2, 4, 7500 + t), *dy = rnd(n, -1, 1, 7600 + t);
        float *g = rnd(C, 0.5f, 1.5f, 7700 + t), *b = rnd(C, -0.5f, 0.5f, 7800 + t);
        for (int silu = 0; silu < 2; silu++)
            for (int affine = 0; affine < 2; affine++) {
                const float *gg = affine ? g : NULL, *bb = affine ? b : NULL;
                struct gn_out want = gn_run(s, q, x, gg, bb, dy, silu);
                struct gn_out got = gn_run(k, q, x, gg, bb, dy, silu);
                const char *pre = silu ? "groupnorm_silu" : "groupnorm";
                char what[64];
                snprintf(what, sizeof what, "%s fwd", pre);
                check(k, what, HW, got.y, want.y, n, 1e-5, 1e-5);
                snprintf(what, sizeof what, "%s grad dx", pre);
                check(k, what, HW, got.dx, want.dx, n, 1e-5, 1e-5);
                snprintf(what, sizeof what, "%s grad dgamma", pre);
                check(k, what, HW, got.dg, want.dg, C, 1e-5, 1e-5);
                snprintf(what, sizeof what, "%s grad dbeta", pre);
                check(k, what, HW, got.db, want.db, C, 1e-5, 1e-5);
                /* ADD onto the same random dx, from the scalar statistics */
                float *d0 = rnd(n, -1, 1, 7900 + t), *d1 = dup(d0, n), *dh = nans(n);
                double *work = malloc((size_t)(2 * N * C) * sizeof(double));
                if (silu) {
                    s->groupnorm_silu_grad(N, C, HW, G, x, NULL, gg, bb, want.mean, want.rstd, dy,
                                           dh, d0, GEN_GRAD_ADD, NULL, NULL, NULL, work);
                    k->groupnorm_silu_grad(N, C, HW, G, x, NULL, gg, bb, want.mean, want.rstd, dy,
                                           dh, d1, GEN_GRAD_ADD, NULL, NULL, NULL, work);
                } else {
                    s->groupnorm_grad(N, C, HW, G, x, gg, want.mean, want.rstd, dy, d0,
                                      GEN_GRAD_ADD, NULL, NULL, NULL);
                    k->groupnorm_grad(N, C, HW, G, x, gg, want.mean, want.rstd, dy, d1,
                                      GEN_GRAD_ADD, NULL, NULL, NULL);
                }
                snprintf(what, sizeof what, "%s grad dx ADD", pre);
                check(k, what, HW, d1, d0, n, 1e-5, 1e-5);
                free(d0), free(d1), free(dh), free(work);
                gn_free(&want), gn_free(&got);
            }
        free(x), free(dy), free(g), free(b);
    }
}

static void test_groupnorm_grad_parity(void **state) {
    (void)state;
    each_simd(gn_grad_parity_one);
}

/* The fused group norm + SiLU of x + shift (a value a channel of an
 * image) against the same kernels on x + shift stored: y, the statistics,
 * dx, dgamma and dbeta to rounding (the sums' order may differ), dshift
 * against each channel's sum of that dx; and dx added to (ADD, dh in
 * scratch) as dx set plus what was there. */
static void gn_shift_one(const struct gen_kernels *k) {
    for (size_t t = 0; t < N_GN; t++) {
        const int64_t *q = gn_cfg[t], N = q[0], C = q[1], HW = q[2], G = q[3], n = N * C * HW;
        float *x = rnd(n, -2, 4, 9100 + t), *dy = rnd(n, -1, 1, 9200 + t);
        float *g = rnd(C, 0.5f, 1.5f, 9300 + t), *b = rnd(C, -0.5f, 0.5f, 9400 + t);
        float *sh = rnd(N * C, -3, 3, 9500 + t), *xs = dup(x, n);
        for (int64_t i = 0; i < n; i++) xs[i] += sh[i / HW];
        struct gn_out want = gn_run(k, q, xs, g, b, dy, 1);
        struct gn_out got = gn_run_shift(k, q, x, sh, g, b, dy, 1);
        check(k, "groupnorm_silu shift fwd", HW, got.y, want.y, n, 1e-5, 1e-5);
        check(k, "groupnorm_silu shift mean", HW, got.mean, want.mean, N * G, 1e-5, 1e-6);
        check(k, "groupnorm_silu shift rstd", HW, got.rstd, want.rstd, N * G, 1e-5, 1e-6);
        check(k, "groupnorm_silu shift dx", HW, got.dx, want.dx, n, 1e-4, 1e-5);
        check(k, "groupnorm_silu shift dgamma", HW, got.dg, want.dg, C, 1e-4, 1e-5);
        check(k, "groupnorm_silu shift dbeta", HW, got.db, want.db, C, 1e-4, 1e-5);
        for (int64_t r = 0; r < N * C; r++) { /* within 1e-5 of the sum of |dx| */
            double a = 0, mag = 0;
            for (int64_t i = 0; i < HW; i++)
                a += want.dx[r * HW + i], mag += fabs(want.dx[r * HW + i]);
            if (!(fabs(got.ds[r] - a) <= 1e-5 * mag + 1e-6))
                fprintf(stderr, "  %s dshift[%lld] = %.9g, want %.9g\n", k->name, (long long)r,
                        (double)got.ds[r], a);
            assert_true(fabs(got.ds[r] - a) <= 1e-5 * mag + 1e-6);
        }
        float *d0 = rnd(n, -1, 1, 9600 + t), *d1 = dup(d0, n), *dh = nans(n);
        double *work = malloc((size_t)(4 * N * C) * sizeof(double));
        k->groupnorm_silu_grad(N, C, HW, G, x, sh, g, b, got.mean, got.rstd, dy, dh, d1,
                               GEN_GRAD_ADD, NULL, NULL, NULL, work);
        for (int64_t i = 0; i < n; i++) d0[i] += got.dx[i];
        check(k, "groupnorm_silu shift dx ADD", HW, d1, d0, n, 1e-5, 1e-6);
        free(d0), free(d1), free(dh), free(work);
        gn_free(&want), gn_free(&got);
        free(x), free(dy), free(g), free(b), free(sh), free(xs);
    }
}

static void test_groupnorm_shift(void **state) {
    (void)state;
    gn_shift_one(scalar());
    each_simd(gn_shift_one);
}

/* Batch norm's channel runs against the scalar ones: channel 2 of x (N,
 * C, HW), N runs of HW floats, C HW apart, for run lengths around the
 * vector widths. The sums in double within 1e-12 of the sum of |terms|
 * (1e-6 where the SIMD tables form x - mu or dy xhat in float first); dx
 * within 1e-5 (fused multiply-adds); the floats between the runs
 * untouched; SET over dy itself (the write-over of ops_norm.c) the bits
 * of SET into another buffer. */
static void runs_parity_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    static const int64_t hws[] = {1, 7, 16, 17, 49, 196};
    for (size_t hi = 0; hi < sizeof hws / sizeof hws[0]; hi++) {
        const int64_t N = 5, C = 3, HW = hws[hi], n = N * C * HW, c = 2;
        float *x = rnd(n, -2.0f, 3.0f, 8400 + hi), *dy = rnd(n, -1.0f, 1.0f, 8500 + hi);
        const float *xc = x + c * HW, *dyc = dy + c * HW;
        const int64_t stride = C * HW;
        double mag = 0.0, mag2 = 0.0, magx = 0.0;
        for (int64_t r = 0; r < N; r++)
            for (int64_t i = 0; i < HW; i++) {
                const double v = xc[r * stride + i];
                mag += fabs(v), mag2 += (v - 0.5) * (v - 0.5);
                magx += fabs(dyc[r * stride + i] * (v - 0.5) * 1.5);
            }
        assert_true(fabs(k->runs_sum(N, HW, stride, xc) - s->runs_sum(N, HW, stride, xc)) <=
                    1e-12 * mag);
        assert_true(fabs(k->runs_sqdev(N, HW, stride, xc, 0.5f) -
                         s->runs_sqdev(N, HW, stride, xc, 0.5f)) <= 1e-6 * mag2);
        double gk[2], gs[2];
        k->runs_grad_sums(N, HW, stride, xc, dyc, 0.5f, 1.5f, gk);
        s->runs_grad_sums(N, HW, stride, xc, dyc, 0.5f, 1.5f, gs);
        assert_true(fabs(gk[0] - gs[0]) <= 1e-12 * mag + 1e-12);
        assert_true(fabs(gk[1] - gs[1]) <= 1e-6 * magx + 1e-12);
        float *yk = rnd(n, -1, 1, 8600 + hi), *ys = dup(yk, n), *rest = dup(yk, n);
        k->runs_affine(N, HW, stride, xc, 1.25f, -0.5f, yk + c * HW);
        s->runs_affine(N, HW, stride, xc, 1.25f, -0.5f, ys + c * HW);
        check(k, "runs_affine", HW, yk, ys, n, 1e-6, 1e-6);
        for (enum gen_grad_mode mode = GEN_GRAD_SET; mode <= GEN_GRAD_ADD; mode++) {
            memcpy(yk, rest, (size_t)n * sizeof *yk), memcpy(ys, rest, (size_t)n * sizeof *ys);
            k->runs_grad_dx(N, HW, stride, xc, dyc, 0.5f, 1.5f, 0.75f, 0.1f, -0.2f, yk + c * HW,
                            mode);
            s->runs_grad_dx(N, HW, stride, xc, dyc, 0.5f, 1.5f, 0.75f, 0.1f, -0.2f, ys + c * HW,
                            mode);
            check(k, "runs_grad_dx", HW, yk, ys, n, 1e-5, 1e-5);
        }
        for (int64_t i = 0; i < n; i++) /* outside channel c: as before */
            if ((i / HW) % C != c) assert_true(yk[i] == rest[i] && ys[i] == rest[i]);
        float *over = dup(dy, n);
        memcpy(yk, rest, (size_t)n * sizeof *yk);
        k->runs_grad_dx(N, HW, stride, xc, dyc, 0.5f, 1.5f, 0.75f, 0.1f, -0.2f, yk + c * HW,
                        GEN_GRAD_SET);
        k->runs_grad_dx(N, HW, stride, xc, over + c * HW, 0.5f, 1.5f, 0.75f, 0.1f, -0.2f,
                        over + c * HW, GEN_GRAD_SET);
        for (int64_t r = 0; r < N; r++)
            same_bits(k, "runs_grad_dx over dy", over + c * HW + r * stride,
                      yk + c * HW + r * stride, HW);
        free(x), free(dy), free(yk), free(ys), free(rest), free(over);
    }
}

static void test_runs_parity(void **state) {
    (void)state;
    each_simd(runs_parity_one);
}

/* adam_step: against the scalar one, and with L2 the bits of axpy then adam
 * (the two passes it replaces) in its own table. */
static void adam_step_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t li = 0; li < N_LENGTHS; li++) {
        const int64_t n = lengths[li];
        float *p[3], *m[3], *v[3];
        p[0] = rnd(n, -1, 1, 8000 + li);
        m[0] = rnd(n, -0.1f, 0.1f, 8100 + li);
        v[0] = rnd(n, 0, 0.01f, 8200 + li);
        for (int j = 1; j < 3; j++) p[j] = dup(p[0], n), m[j] = dup(m[0], n), v[j] = dup(v[0], n);
        float *g = rnd(n, -1, 1, 8300 + li), *g2 = dup(g, n);
        const struct gen_adam_step h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f,
                                        .l2 = 0.05f, .wd = 0.1f, .bc1 = 0.19f, .bc2 = 0.0199f};
        s->adam_step(n, p[0], g, m[0], v[0], &h);
        k->adam_step(n, p[1], g, m[1], v[1], &h);
        check(k, "adam_step p", n, p[1], p[0], n, 1e-6, 1e-7);
        check(k, "adam_step m", n, m[1], m[0], n, 1e-6, 1e-7);
        check(k, "adam_step v", n, v[1], v[0], n, 1e-6, 1e-9);
        same_bits(k, "adam_step g untouched", g, g2, n);
        k->axpy(n, h.l2, p[2], g2);
        k->adam(n, p[2], g2, m[2], v[2], h.lr, h.beta1, h.beta2, h.eps, h.wd, h.bc1, h.bc2);
        same_bits(k, "adam_step p vs axpy + adam", p[1], p[2], n);
        same_bits(k, "adam_step m vs axpy + adam", m[1], m[2], n);
        same_bits(k, "adam_step v vs axpy + adam", v[1], v[2], n);
        for (int j = 0; j < 3; j++) free(p[j]), free(m[j]), free(v[j]);
        free(g), free(g2);
    }
}

static void test_adam_step(void **state) {
    (void)state;
    adam_step_one(scalar());
    each_simd(adam_step_one);
}

static void conv_one(const struct gen_kernels *k) {
    const struct gen_kernels *s = scalar();
    for (size_t t = 0; t < N_CONV; t++) {
        const int64_t *q = conv_cfgs[t];
        const int64_t C = q[0], H = q[1], W = q[2], KH = q[3], KW = q[4], S = q[5], P = q[6];
        const int64_t nx = C * H * W, nc = C * KH * KW * gen_conv_out(H, KH, S, P) *
                                               gen_conv_out(W, KW, S, P);
        float *x = rnd(nx, -1, 1, 4000 + t), *c0 = rnd(nc, 5, 6, 1), *c1 = rnd(nc, 7, 8, 2);
        s->im2col(C, H, W, KH, KW, S, P, x, c0);
        k->im2col(C, H, W, KH, KW, S, P, x, c1);
        check(k, "im2col", (int64_t)t, c1, c0, nc, 0, 1e-30);
        float *x0 = rnd(nx, -1, 1, 4100 + t), *x1 = dup(x0, nx);
        s->col2im(C, H, W, KH, KW, S, P, c0, x0);
        k->col2im(C, H, W, KH, KW, S, P, c0, x1);
        check(k, "col2im", (int64_t)t, x1, x0, nx, 0, 1e-30);
        free(x), free(c0), free(c1), free(x0), free(x1);
    }
}

static void test_conv_parity(void **state) {
    (void)state;
    each_simd(conv_one);
}

/* col_sum under k: the bits of rows calls of k->add (the bias gradient's
 * sum before it), of the scalar table (the same additions in the same
 * order), SET into NaNs those of ADD into zeros, 1 thread those of 2; the
 * scalar one within float rounding of a sum in double. */
static void col_sum_one(const struct gen_kernels *k) {
    static const int64_t shapes[][3] = {{0, 5, 5},     {1, 1, 1},     {3, 7, 9},
                                        {33, 17, 17},  {129, 64, 70}, {5, 300, 301},
                                        {4096, 128, 128}, {70, 1023, 1030}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int64_t rows = shapes[t][0], cols = shapes[t][1], stride = shapes[t][2];
        float *x = rnd(rows * stride, -1, 1, 8000 + t), *y = rnd(cols, -1, 1, 8100 + t);
        float *got = dup(y, cols), *want = dup(y, cols), *ref = dup(y, cols);
        k->col_sum(rows, cols, x, stride, got, GEN_GRAD_ADD);
        for (int64_t r = 0; r < rows; r++) k->add(cols, want, x + r * stride, want);
        same_bits(k, "col_sum vs add", got, want, cols);
        scalar()->col_sum(rows, cols, x, stride, ref, GEN_GRAD_ADD);
        same_bits(k, "col_sum vs scalar", got, ref, cols);
        for (int64_t j = 0; j < cols; j++) {
            double sum = y[j], mag = fabs(y[j]);
            for (int64_t r = 0; r < rows; r++) sum += x[r * stride + j], mag += fabs(x[r * stride + j]);
            assert_true(fabs(got[j] - sum) <= 1e-6 * (double)(rows + 1) * mag);
        }
        float *set = nans(cols), *zero = calloc((size_t)(cols > 0 ? cols : 1), sizeof(float));
        k->col_sum(rows, cols, x, stride, set, GEN_GRAD_SET);
        k->col_sum(rows, cols, x, stride, zero, GEN_GRAD_ADD);
        same_bits(k, "col_sum SET vs ADD on zeros", set, zero, cols);
#ifdef _OPENMP
        const int saved = omp_get_max_threads();
        omp_set_num_threads(saved > 1 ? 1 : 2);
        memcpy(want, y, (size_t)cols * sizeof(float));
        k->col_sum(rows, cols, x, stride, want, GEN_GRAD_ADD);
        omp_set_num_threads(saved);
        same_bits(k, "col_sum other thread count", got, want, cols);
#endif
        free(x), free(y), free(got), free(want), free(ref), free(set), free(zero);
    }
}

static void test_col_sum(void **state) {
    (void)state;
    col_sum_one(scalar());
    each_simd(col_sum_one);
}

/* One thread count, one answer; and here, the same answer for 1 and 2. */
static void determinism_one(const struct gen_kernels *k) {
#ifdef _OPENMP
    const int64_t n = (1 << 20) + 13, rows = 4096, cols = 128;
    float *x = rnd(n, -1, 1, 5000), *dy = rnd(rows * cols, -1, 1, 5001);
    const int saved = omp_get_max_threads();
    double s1[2], s2[2];
    float *dg[2], *db[2], *dx[2];
    float *mean = malloc(rows * sizeof(float)), *rstd = malloc(rows * sizeof(float));
    float *y = malloc((size_t)(rows * cols) * sizeof(float));
    k->layernorm_fwd(rows, cols, x, NULL, NULL, 1e-5f, y, mean, rstd);
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        s1[t] = k->sum(n, x);
        s2[t] = k->sumsq(n, x);
        dg[t] = calloc(cols, sizeof(float)), db[t] = calloc(cols, sizeof(float));
        dx[t] = calloc((size_t)(rows * cols), sizeof(float));
        k->layernorm_bwd(rows, cols, x, NULL, mean, rstd, dy, dx[t], dg[t], db[t]);
    }
    omp_set_num_threads(saved);
    assert_true(s1[0] == s1[1] && s2[0] == s2[1]);
    assert_memory_equal(dg[0], dg[1], cols * sizeof(float));
    assert_memory_equal(db[0], db[1], cols * sizeof(float));
    assert_memory_equal(dx[0], dx[1], (size_t)(rows * cols) * sizeof(float));
    for (int t = 0; t < 2; t++) free(dg[t]), free(db[t]), free(dx[t]);
    free(x), free(dy), free(mean), free(rstd), free(y);
#else
    (void)k;
    printf("  note: built without OpenMP, determinism across threads not tested\n");
#endif
}

/* Layer norm's backward over rows in several parts (300 rows: parts of
 * 128, the last short) and at a width past what one part's sums may take
 * (131 073 columns: the two-pass form), against the scalar reference. */
static void layernorm_parts_one(const struct gen_kernels *k) {
    const int64_t shapes[2][2] = {{300, 128}, {2, 131073}};
    for (int si = 0; si < 2; si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1], n = rows * cols;
        float *x = rnd(n, -3, 3, 6000 + si), *dy = rnd(n, -1, 1, 6010 + si);
        float *g = rnd(cols, 0.5f, 1.5f, 6020 + si), *y = malloc((size_t)n * sizeof(float));
        float *mean = malloc((size_t)rows * sizeof(float)),
              *rstd = malloc((size_t)rows * sizeof(float));
        float *dx[2], *dg[2], *db[2];
        scalar()->layernorm_fwd(rows, cols, x, g, NULL, 1e-5f, y, mean, rstd);
        for (int t = 0; t < 2; t++) {
            const struct gen_kernels *kt = t ? k : scalar();
            dx[t] = rnd(n, -1, 1, 6030), dg[t] = rnd(cols, -1, 1, 6040),
            db[t] = rnd(cols, -1, 1, 6050);
            kt->layernorm_grad(rows, cols, x, g, mean, rstd, dy, dx[t], GEN_GRAD_ADD, dg[t], db[t]);
        }
        check(k, "layernorm_grad parts dx", cols, dx[1], dx[0], n, 1e-5, 1e-5);
        check(k, "layernorm_grad parts dgamma", cols, dg[1], dg[0], cols, 1e-5, 1e-5);
        check(k, "layernorm_grad parts dbeta", cols, db[1], db[0], cols, 1e-5, 1e-5);
        for (int t = 0; t < 2; t++) free(dx[t]), free(dg[t]), free(db[t]);
        free(x), free(dy), free(g), free(y), free(mean), free(rstd);
    }
}

static void test_layernorm_parts(void **state) {
    (void)state;
    each_simd(layernorm_parts_one);
}

static void test_determinism(void **state) {
    (void)state;
    determinism_one(scalar());
    each_simd(determinism_one);
}

static int print_worst(void **state) {
    (void)state;
    const char *v = getenv("GEN_TEST_VERBOSE");
    if (v && *v && strcmp(v, "0") != 0)
        for (int i = 0; i < 64 && seen[i].name[0]; i++)
            printf("  worst %-24s %.3g of tolerance\n", seen[i].name, seen[i].worst);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_parity),
        cmocka_unit_test(test_scalar_softmax),
        cmocka_unit_test(test_scalar_layernorm),
        cmocka_unit_test(test_scalar_activations),
        cmocka_unit_test(test_scalar_sum),
        cmocka_unit_test(test_scalar_im2col),
        cmocka_unit_test(test_im2col_adjoint),
        cmocka_unit_test(test_elementwise_parity),
        cmocka_unit_test(test_bce_terms),
        cmocka_unit_test(test_gelu_both),
        cmocka_unit_test(test_activation_parity),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_row_parity),
        cmocka_unit_test(test_softmax_masked),
        cmocka_unit_test(test_groupnorm_parity),
        cmocka_unit_test(test_optim_parity),
        cmocka_unit_test(test_grad_modes),
        cmocka_unit_test(test_mul_grads),
        cmocka_unit_test(test_groupnorm_fused),
        cmocka_unit_test(test_groupnorm_grad_parity),
        cmocka_unit_test(test_groupnorm_shift),
        cmocka_unit_test(test_adam_step),
        cmocka_unit_test(test_conv_parity),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_layernorm_parts),
        cmocka_unit_test(test_col_sum),
        cmocka_unit_test(test_runs_parity),
    };
    return cmocka_run_group_tests(tests, NULL, print_worst);
}
