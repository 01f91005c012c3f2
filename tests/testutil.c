/* testutil.c - see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include <ftw.h>
#include "gen/io.h"
#include "gen/kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double tu_close(const char *what, const float *a, const float *b, int64_t n, double rtol,
                double atol) {
    double worst = 0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double r = d / (atol + rtol * fabs((double)b[i]));
        if (!(r <= worst)) { /* catches NaN too */
            worst = isnan(r) ? INFINITY : r;
            wi = i;
        }
    }
    if (worst > 1.0)
        fprintf(stderr, "  %s: element %lld: got %.9g, want %.9g (ratio %.3g)\n", what,
                (long long)wi, (double)a[wi], (double)b[wi], worst);
    return worst;
}

void tu_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed) {
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    gen_rng_fill_uniform(&r, x, n, lo, hi);
}

float tu_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0)
        u &= 0x80000000u;
    else if ((u & 0x7fffffffu) > 0x7f800000u)
        u |= 0x00400000u;
    else
        u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

char *tu_mkdtemp(void) {
    char *d = strdup("/tmp/gen-test-XXXXXX");
    if (!mkdtemp(d)) {
        free(d);
        return NULL;
    }
    return d;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *dir) {
    if (dir) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- test cases that cannot run everywhere (TU_NEED) ---- */

static int data_case_ran, data_missing;

/* GEN_TEST_ONLY=CASE: only that case ran; 77 when it could not run. */
static void data_case_exit(void) {
    fflush(NULL);
    if (data_missing) _exit(77);
    if (!data_case_ran) {
        fprintf(stderr, "GEN_TEST_ONLY=%s: no test case of that name calls TU_NEED\n",
                getenv("GEN_TEST_ONLY"));
        _exit(1);
    }
}

__attribute__((constructor)) static void data_case_filter(void) {
    const char *only = getenv("GEN_TEST_ONLY");
    if (!only || !only[0]) return;
    cmocka_set_test_filter(only);
    atexit(data_case_exit);
}

/* Whether name is one of the comma-separated names of list. */
static int listed(const char *list, const char *name) {
    const size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        const size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && !strncmp(p, name, n)) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

void tu_need(const char *test, int have, const char *what) {
    const char *only = getenv("GEN_TEST_ONLY"), *cases = getenv("GEN_TEST_OWN_CASES");
    if (only && only[0]) {
        data_case_ran = 1;
    } else if (cases) { /* ctest's entry of the whole file */
        if (!listed(cases, test))
            fail_msg("%s can be skipped (TU_NEED) but GEN_OWN_CASES in CMakeLists.txt does not "
                     "list it",
                     test);
        print_message("%s: runs as a ctest entry of its own\n", test);
        skip();
    }
    if (have) return;
    print_message("%s: skipped: %s\n", test, what);
    data_missing = 1;
    skip();
}

void tu_need_data(const char *test, const char *rel) {
    const char *path = tu_source_path(rel);
    char what[4200];
    snprintf(what, sizeof what, "%s absent (scripts/fetch-data.sh)", path);
    tu_need(test, access(path, F_OK) == 0, what);
}

const char *tu_source_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("GEN_SOURCE_DIR");
#ifdef GEN_SOURCE_DIR
    if (!root) root = GEN_SOURCE_DIR;
#endif
    if (!root) root = ".";
    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    return buf;
}

struct gen_st_file *tu_open_fixture(const char *name, const char *script) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/%s.safetensors", name);
    struct gen_st_file *f = NULL;
    if (gen_st_open(tu_source_path(rel), 0, &f) != GEN_OK)
        fail_msg("%s (run /usr/bin/python3 %s)", gen_last_error(), script);
    const char *v = gen_st_meta(f, "fixture_version");
    assert_non_null(v);
    assert_string_equal(v, "1");
    return f;
}

const struct gen_st_tensor *tu_tensor(const struct gen_st_file *f, const char *name) {
    const struct gen_st_tensor *t = gen_st_find(f, name);
    if (!t) fail_msg("fixture lacks tensor %s", name);
    return t;
}

/* ---- scratch directory and files ---- */

char *tu_tmp;

int tu_tmp_setup(void **state) {
    (void)state;
    tu_tmp = tu_mkdtemp();
    return tu_tmp ? 0 : -1;
}

int tu_tmp_teardown(void **state) {
    (void)state;
    tu_rmtree(tu_tmp);
    free(tu_tmp);
    tu_tmp = NULL;
    return 0;
}

const char *tu_tmp_path(const char *name) {
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tu_tmp, name);
    return buf[k];
}

char *tu_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fprintf(stderr, "  cannot open %s\n", path);
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(len >= 0);
    *n = (size_t)len;
    char *b = malloc(*n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *n, f), *n);
    b[*n] = 0;
    fclose(f);
    return b;
}

void tu_write_file(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void tu_assert_same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    free(x);
    free(y);
}

/* L = sum(out * r) in double, forward only. */
static double project(struct gen_ctx *g, tu_fn f, void *arg, struct gen_tensor **in,
                      const float *r) {
    gen_ctx_reset(g);
    gen_no_grad_begin(g);
    struct gen_tensor *out = f(g, in, arg);
    gen_no_grad_end(g);
    double L = 0;
    for (int64_t i = 0, n = gen_numel(out); i < n; i++) L += (double)out->data[i] * r[i];
    return L;
}

/* Backpropagates L into the inputs' gradients, which start stale and full
 * of NaN (as a parameter's after gen_params_zero_grad), so an op that
 * reads a gradient it should overwrite shows; one still stale after (an
 * input f does not use) reads as zero. With `twice`, L is of f(in) +
 * f(in): each input's gradient is written by two uses, the second adding
 * to the first. */
static void analytic(struct gen_ctx *g, tu_fn f, void *arg, int n_in, struct gen_tensor **in,
                     const float *r, int twice) {
    gen_ctx_reset(g);
    for (int k = 0; k < n_in; k++) {
        for (int64_t i = 0, n = gen_numel(in[k]); i < n; i++) in[k]->grad[i] = NAN;
        in[k]->grad_stale = 1;
    }
    struct gen_tensor *out = f(g, in, arg);
    if (twice) out = gen_add(g, out, f(g, in, arg));
    gen_backward_seed(g, out, r);
    for (int k = 0; k < n_in; k++)
        if (in[k]->grad_stale) memset(in[k]->grad, 0, (size_t)gen_numel(in[k]) * sizeof(float));
}

/* Twice the uses, twice the gradient: checks that the second writer adds.
 * Exact where each use writes its whole gradient at once (g + g), within
 * the check's tolerance where a reduction adds its terms one by one into
 * the gradient (a broadcast operand, a bias, a weight's chunks). */
static int check_twice(const char *name, struct gen_ctx *g, tu_fn f, void *arg, int n_in,
                       struct gen_tensor **in, const float *r, float *const *once, double rtol,
                       double atol) {
    analytic(g, f, arg, n_in, in, r, 1);
    int failures = 0;
    for (int k = 0; k < n_in; k++) {
        if (!in[k]->requires_grad) continue;
        for (int64_t j = 0, n = gen_numel(in[k]); j < n; j++) {
            const double want = 2.0 * once[k][j], got = in[k]->grad[j];
            if (fabs(got - want) <= atol + rtol * fabs(want)) continue;
            if (failures++ < 5)
                fprintf(stderr, "  %s used twice: input %d element %lld: %.9g, want %.9g\n", name,
                        k, (long long)j, (double)in[k]->grad[j], (double)want);
        }
    }
    return failures;
}

int tu_gradcheck(const char *name, tu_fn f, void *arg, int n_in, const struct tu_input *spec,
                 float eps, double rtol, double atol, int max_checks, uint64_t seed) {
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor tensors[8], *in[8];
    assert_true(n_in <= 8);
    for (int k = 0; k < n_in; k++) {
        struct gen_tensor *t = &tensors[k];
        memset(t, 0, sizeof *t);
        t->ndim = spec[k].ndim;
        memcpy(t->shape, spec[k].shape, sizeof t->shape);
        int64_t n = gen_numel(t);
        t->data = malloc((size_t)n * sizeof(float) + 4);
        t->grad = calloc((size_t)n + 1, sizeof(float));
        tu_fill_uniform(t->data, n, spec[k].lo, spec[k].hi, seed + 17 * (uint64_t)k);
        t->requires_grad = !spec[k].no_grad;
        in[k] = t;
    }

    /* Analytic gradients, from one use and from two. */
    gen_no_grad_begin(&g);
    int64_t n_out = gen_numel(f(&g, in, arg));
    gen_no_grad_end(&g);
    float *r = malloc((size_t)n_out * sizeof(float)), *once[8];
    tu_fill_uniform(r, n_out, -1.0f, 1.0f, seed ^ 0xabcdefULL);
    analytic(&g, f, arg, n_in, in, r, 0);
    for (int k = 0; k < n_in; k++) {
        once[k] = malloc((size_t)gen_numel(in[k]) * sizeof(float) + 4);
        memcpy(once[k], in[k]->grad, (size_t)gen_numel(in[k]) * sizeof(float));
    }
    int failures = check_twice(name, &g, f, arg, n_in, in, r, once, rtol, atol);
    struct gen_rng pick;
    gen_rng_seed(&pick, seed + 99);
    for (int k = 0; k < n_in; k++) {
        if (spec[k].no_grad) continue;
        struct gen_tensor *t = in[k];
        int64_t n = gen_numel(t);
        int64_t checks = (max_checks > 0 && max_checks < n) ? max_checks : n;
        for (int64_t c = 0; c < checks; c++) {
            int64_t j = checks == n ? c : (int64_t)gen_rng_below(&pick, (uint64_t)n);
            float x0 = t->data[j];
            t->data[j] = x0 + eps;
            double lp = project(&g, f, arg, in, r);
            t->data[j] = x0 - eps;
            double lm = project(&g, f, arg, in, r);
            t->data[j] = x0;
            double num = (lp - lm) / (2.0 * (double)eps);
            double ana = once[k][j];
            double tol = atol + rtol * fmax(fabs(ana), fabs(num));
            if (!(fabs(ana - num) <= tol)) {
                if (failures < 5)
                    fprintf(stderr, "  %s: input %d element %lld: analytic %.7g numeric %.7g\n",
                            name, k, (long long)j, ana, num);
                failures++;
            }
        }
    }
    for (int k = 0; k < n_in; k++) {
        free(in[k]->data);
        free(in[k]->grad);
        free(once[k]);
    }
    free(r);
    gen_ctx_free(&g);
    return failures;
}

/* A GEMM operand of `rows` x `cols` as stored (transposed if t), rows
 * ld floats apart, uniform in [-1, 1). */
static float *gemm_operand(int t, int64_t rows, int64_t cols, int64_t ld, uint64_t seed) {
    float *x = malloc((size_t)((t ? cols : rows) * ld) * sizeof(float));
    assert_non_null(x);
    tu_fill_uniform(x, (t ? cols : rows) * ld, -1, 1, seed);
    return x;
}

void tu_check_gemm_bias(const struct gen_kernels *k) {
    if (!k->gemm_bias) return;
    /* M, N, K, ta, tb: one K slice or several, N past a 1152-wide block,
     * split along M, along N and along K over threads */
    static const int64_t dims[][5] = {{7, 49, 33, 0, 1},     {130, 200, 600, 0, 1},
                                      {40, 1160, 20, 1, 0},  {20, 700, 400, 0, 0},
                                      {300, 260, 150, 1, 1}, {24, 40, 3001, 1, 0}};
    const int saved = omp_get_max_threads();
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int64_t M = dims[d][0], N = dims[d][1], K = dims[d][2];
        const int ta = (int)dims[d][3], tb = (int)dims[d][4];
        const int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 3, ldc = N + 2;
        float *A = gemm_operand(ta, M, K, lda, 11 + d), *B = gemm_operand(tb, K, N, ldb, 22 + d);
        float *bias = malloc((size_t)N * sizeof(float));
        float *want = malloc((size_t)(M * ldc) * sizeof(float));
        float *got = malloc((size_t)(M * ldc) * sizeof(float));
        assert_true(bias && want && got);
        tu_fill_uniform(bias, N, -2, 2, 33 + d);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < ldc; j++) want[i * ldc + j] = j < N ? bias[j] : 7.0f;
        k->gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, want, ldc);
        for (int t = 1; t <= 4; t++) {
            for (int64_t i = 0; i < M * ldc; i++) got[i] = i % ldc < N ? NAN : 7.0f;
            if (t <= 3) {
                omp_set_num_threads(t);
                k->gemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, got, ldc);
            } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(2)
                {
#pragma omp single
                    k->gemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, got, ldc);
                }
#else
                k->gemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, got, ldc);
#endif
            }
            if (memcmp(got, want, (size_t)(M * ldc) * sizeof(float)) != 0)
                fprintf(stderr, "  %s gemm_bias %lldx%lldx%lld ta %d tb %d, %d threads: differs\n",
                        k->name, (long long)M, (long long)N, (long long)K, ta, tb, t);
            assert_memory_equal(got, want, (size_t)(M * ldc) * sizeof(float));
        }
        omp_set_num_threads(saved);
        free(A), free(B), free(bias), free(want), free(got);
    }
}

void tu_check_gemm_bpacked(const struct gen_kernels *k) {
    if (!k->gemm_bpacked) return;
    assert_non_null(k->bpack);
    assert_non_null(k->bpack_floats);
    /* M, the packed op(B)'s N and kb, ta, tb: products too small for the
     * table's gemm to split K (gen_gemm_split), over one depth slice or
     * several (fp32 slices 192 deep, bf16 384) */
    static const int64_t dims[][5] = {{37, 130, 70, 0, 1},
                                      {8, 48, 32, 1, 0},
                                      {20, 33, 129, 0, 0},
                                      {64, 96, 200, 1, 1},
                                      {16, 40, 800, 1, 0}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int64_t M = dims[d][0], NB = dims[d][1], KB = dims[d][2];
        const int ta = (int)dims[d][3], tb = (int)dims[d][4];
        const int64_t lda = (ta ? M : KB) + 1, ldb = (tb ? KB : NB) + 3, ldc = NB + 2;
        float *A = gemm_operand(ta, M, KB, lda, 44 + d), *B = gemm_operand(tb, KB, NB, ldb, 55 + d);
        float *bp = aligned_alloc(64, (size_t)(k->bpack_floats(KB, NB) + 16) * sizeof(float));
        float *want = malloc((size_t)(M * ldc) * sizeof(float));
        float *got = malloc((size_t)(M * ldc) * sizeof(float));
        assert_true(bp && want && got);
        k->bpack(tb, KB, NB, B, ldb, bp);
        /* k0, K (0: to the end), N (0: all), beta (2: 0 and a bias, alpha
         * 1, which gives the bits of beta 1 on rows that hold it) */
        static const int64_t parts[][4] = {{0, 0, 0, 0},   {16, 0, 0, 1}, {0, 16, 0, 1},
                                           {16, 14, 0, 0}, {0, 0, 17, 1}, {16, 0, 33, 0},
                                           {0, 0, 0, 2},   {16, 0, 17, 2}};
        for (size_t c = 0; c < sizeof parts / sizeof parts[0]; c++) {
            const int64_t k0 = parts[c][0], K = parts[c][1] ? parts[c][1] : KB - k0;
            const int64_t N = parts[c][2] && parts[c][2] < NB ? parts[c][2] : NB;
            const float *bias = parts[c][3] == 2 ? B : NULL; /* any N values */
            const float beta = bias ? 0.0f : (float)parts[c][3];
            if (k0 + K > KB) continue;
            for (int64_t i = 0; i < M * ldc; i++) want[i] = got[i] = (float)(i % 13) - 6.0f;
            for (int64_t i = 0; bias && i < M; i++)
                memcpy(want + i * ldc, bias, (size_t)N * sizeof *want);
            /* rows k0.. of op(B): stored K x N, rows k0.. ; stored N x K, columns k0.. */
            const float *Bs = tb ? B + k0 : B + k0 * ldb;
            const float *As = A; /* op(A) is M x K: its first K columns */
            const float alpha = bias ? 1.0f : 0.75f;
            k->gemm(ta, tb, M, N, K, alpha, As, lda, Bs, ldb, bias ? 1.0f : beta, want, ldc);
            k->gemm_bpacked(ta, M, N, K, alpha, As, lda, bp, k0, KB, beta, bias, got, ldc);
            if (memcmp(got, want, (size_t)(M * ldc) * sizeof(float)) != 0)
                fprintf(stderr,
                        "  %s gemm_bpacked %lldx%lldx%lld of %lldx%lld from row %lld, ta %d tb %d: "
                        "differs\n",
                        k->name, (long long)M, (long long)N, (long long)K, (long long)KB,
                        (long long)NB, (long long)k0, ta, tb);
            assert_memory_equal(got, want, (size_t)(M * ldc) * sizeof(float));
        }
        free(A), free(B), free(bp), free(want), free(got);
    }
}
