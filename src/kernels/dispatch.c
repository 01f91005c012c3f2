/* dispatch.c - chooses the kernel table once (GEN_ISA, then CPUID) and
 * routes gen_gemm to the table's own GEMM, or to OpenBLAS's cblas_sgemm
 * where the table has none.
 *
 * Compiled without ISA flags: it only reads CPUID and hands out pointers to
 * tables built in files that have their own -m flags. */
#include <cblas.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/core.h"
#include "kernels/kernels_impl.h"

/* The table in force. Written by gen_kernels_select, or on first use by
 * gen_kernels through a compare-exchange from NULL, so concurrent first
 * calls all see the one deterministic choice. */
static _Atomic(const struct gen_kernels *) table_in_force;
static atomic_flag warned = ATOMIC_FLAG_INIT;

#if defined(GEN_HAVE_AVX2) || defined(GEN_HAVE_AVX512)
static int cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}
#endif

#ifdef GEN_HAVE_AVX512
static int cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           cpu_has_avx2();
#else
    return 0;
#endif
}
#endif

const struct gen_kernels *gen_kernels_for(const char *isa) {
    if (!isa) return NULL;
    if (strcmp(isa, "scalar") == 0) return &gen_kernels_scalar;
#ifdef GEN_HAVE_AVX2
    if (strcmp(isa, "avx2") == 0) return cpu_has_avx2() ? &gen_kernels_avx2 : NULL;
#endif
#ifdef GEN_HAVE_AVX512
    if (strcmp(isa, "avx512") == 0) return cpu_has_avx512() ? &gen_kernels_avx512 : NULL;
#endif
    return NULL;
}

static const struct gen_kernels *best_available(void) {
    const struct gen_kernels *k = gen_kernels_for("avx512");
    if (!k) k = gen_kernels_for("avx2");
    return k ? k : &gen_kernels_scalar;
}

/* GEN_ISA if set and usable, else the best the CPU and build offer. An
 * unusable GEN_ISA is reported once on stderr: it is the user's request. */
static const struct gen_kernels *choose(void) {
    const char *env = getenv("GEN_ISA");
    if (!env || !*env) return best_available();
    const struct gen_kernels *k = gen_kernels_for(env);
    if (k) return k;
    const struct gen_kernels *best = best_available();
    if (!atomic_flag_test_and_set(&warned))
        fprintf(stderr, "gen: GEN_ISA=%s is not available on this CPU/build; using %s\n", env,
                best->name);
    return best;
}

int gen_kernels_select(const char *isa) {
    const struct gen_kernels *k = isa ? gen_kernels_for(isa) : choose();
    if (!k) return 0;
    atomic_store(&table_in_force, k);
    return 1;
}

const struct gen_kernels *gen_kernels(void) {
    const struct gen_kernels *k = atomic_load_explicit(&table_in_force, memory_order_acquire);
    if (k) return k;
    const struct gen_kernels *expected = NULL, *chosen = choose();
    if (atomic_compare_exchange_strong(&table_in_force, &expected, chosen)) return chosen;
    return expected; /* someone else chose first */
}

void gen_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              const float *B, float beta, float *C) {
    GEN_ASSERT(M >= 0 && N >= 0 && K >= 0);
    GEN_ASSERT(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX);
    if (M == 0 || N == 0) return;
    if (K == 0) { /* BLAS would reject lda = 0; the product is empty */
        for (int64_t i = 0; i < M * N; i++) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
        return;
    }
    const int64_t lda = ta ? M : K, ldb = tb ? K : N;
    const struct gen_kernels *kt = gen_kernels();
    if (kt->gemm) {
        kt->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, N);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)N);
}

void gen_gemm_ld(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    GEN_ASSERT(M >= 0 && N >= 0 && K >= 0);
    GEN_ASSERT(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX);
    GEN_ASSERT(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N);
    GEN_ASSERT(lda <= INT32_MAX && ldb <= INT32_MAX && ldc <= INT32_MAX);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    const struct gen_kernels *kt = gen_kernels();
    if (kt->gemm) {
        kt->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}
