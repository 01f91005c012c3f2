/* dispatch.c - chooses the kernel table once (GEN_ISA, then CPUID) and
 * routes gen_gemm to the table's own GEMM, or to OpenBLAS's cblas_sgemm
 * where the table has none (gen_gemv likewise: the table's gemv, or
 * cblas_sgemv). --precision bf16 swaps in the AVX-512 table
 * with bf16 products (gen_kernels_set_precision, gen_kernels_bf16): on
 * AMX tiles where the CPU and kernel allow them, else on vdpbf16ps.
 *
 * Compiled without ISA flags: it only reads CPUID and hands out pointers to
 * tables built in files that have their own -m flags. */
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#ifdef GEN_HAVE_AVX512BF16
#include <cpuid.h>
#include <pthread.h>

/* AVX512_BF16: CPUID leaf 7, sub-leaf 1, EAX bit 5 (with AVX-512 itself). */
static int cpu_has_avx512bf16(void) {
    unsigned a, b, c, d;
    return cpu_has_avx512() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1);
}

/* The table of --precision bf16: the AVX-512 one with the bf16 products,
 * filled once. */
static struct gen_kernels bf16_table;
static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;

static void fill_bf16(void) {
    bf16_table = gen_kernels_avx512;
    gen_kernels_avx512bf16_fill(&bf16_table);
}

static const struct gen_kernels *bf16_kernels(void) {
    if (!cpu_has_avx512bf16()) return NULL;
    pthread_once(&bf16_once, fill_bf16);
    return &bf16_table;
}

#ifdef GEN_HAVE_AMX
#ifdef __linux__
#include <sys/syscall.h>
#endif

/* AMX-BF16 and AMX-TILE (CPUID leaf 7, EDX bits 22 and 24), and Linux's
 * grant of the tile data state to this process (arch_prctl
 * ARCH_REQ_XCOMP_PERM for XTILEDATA, feature 18; without it the first tile
 * instruction faults). Asked once. */
static int amx_granted;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static struct gen_kernels amx_table;

static void fill_amx(void) {
    unsigned a, b, c, d;
    if (!cpu_has_avx512bf16() || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 22) & 1) ||
        !((d >> 24) & 1))
        return;
#if defined(__linux__) && defined(SYS_arch_prctl)
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) return;
    pthread_once(&bf16_once, fill_bf16);
    amx_table = bf16_table;
    gen_kernels_amx_fill(&amx_table);
    amx_granted = 1;
#endif
}

static const struct gen_kernels *amx_kernels(void) {
    pthread_once(&amx_once, fill_amx);
    return amx_granted ? &amx_table : NULL;
}
#endif

static int is_bf16_table(const struct gen_kernels *k) {
#ifdef GEN_HAVE_AMX
    if (k == &amx_table) return 1;
#endif
    return k == &bf16_table;
}
#endif

const struct gen_kernels *gen_kernels_for(const char *isa) {
    if (!isa) return NULL;
    if (strcmp(isa, "scalar") == 0) return &gen_kernels_scalar;
#ifdef GEN_HAVE_AVX512BF16
    if (strcmp(isa, "avx512bf16") == 0) return bf16_kernels();
#endif
#ifdef GEN_HAVE_AMX
    if (strcmp(isa, "amx") == 0) return amx_kernels();
#endif
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

#define MAX_KEPT 4096
static void *kept[MAX_KEPT]; /* every thread's buffers, for leak checkers */
static atomic_int n_kept;
static _Thread_local void *pack_buffers[GEN_PACK_KINDS];

void *gen_pack_buffer(enum gen_pack_kind kind, size_t bytes) {
    if (pack_buffers[kind]) return pack_buffers[kind];
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    GEN_ASSERT(p != NULL);
    const int slot = atomic_fetch_add(&n_kept, 1);
    if (slot < MAX_KEPT) kept[slot] = p;
    pack_buffers[kind] = p;
    return p;
}

int64_t gen_l2_bytes(void) {
    static _Atomic int64_t bytes; /* 0: not asked yet; racing askers agree */
    int64_t b = atomic_load_explicit(&bytes, memory_order_relaxed);
    if (b) return b;
    b = 512 * 1024;
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long got = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (got > 0) b = got < 256 * 1024 ? 256 * 1024 : got > 4096 * 1024 ? 4096 * 1024 : got;
#endif
    atomic_store_explicit(&bytes, b, memory_order_relaxed);
    return b;
}

/* Rows or columns [lo, hi) of the piece t of `pieces` along M (along_m)
 * or N, in whole units. */
static void piece_range(int64_t len, int64_t unit, int t, int pieces, int64_t *lo, int64_t *hi) {
    const int64_t units = (len + unit - 1) / unit, end = units * (t + 1) / pieces * unit;
    *lo = units * t / pieces * unit;
    *hi = end < len ? end : len;
}

/* The product gen_gemm_split runs: a gen_gemm_fn on floats, or a
 * gen_gemm_chan_fn on operands held either way. */
struct split_gemm {
    gen_gemm_fn f;
    gen_gemm_chan_fn c;
};

static void split_call(const struct split_gemm *g, int ta, int tb, int64_t M, int64_t N, int64_t K,
                       float alpha, struct gen_chan A, int64_t lda, struct gen_chan B, int64_t ldb,
                       float beta, const float *bias, float *C, int64_t ldc) {
    if (g->c)
        g->c(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
    else
        g->f(ta, tb, M, N, K, alpha, A.f, lda, B.f, ldb, beta, bias, C, ldc);
}

/* Rows or columns [lo, hi) of C (ldc) = alpha op(A) op(B) + beta C + bias
 * over K, on this thread. */
static void gemm_piece(const struct split_gemm *g, int along_m, int64_t lo, int64_t hi, int ta,
                       int tb, int64_t M, int64_t N, int64_t K, float alpha, struct gen_chan A,
                       int64_t lda, struct gen_chan B, int64_t ldb, float beta, const float *bias,
                       float *C, int64_t ldc) {
    if (hi <= lo) return;
    if (along_m)
        split_call(g, ta, tb, hi - lo, N, K, alpha, gen_chan_at(A, ta ? lo : lo * lda), lda, B, ldb,
                   beta, bias, C + lo * ldc, ldc);
    else
        split_call(g, ta, tb, M, hi - lo, K, alpha, A, lda, gen_chan_at(B, tb ? lo * ldb : lo), ldb,
                   beta, bias ? bias + lo : NULL, C + lo, ldc);
}

/* The products split along K in two halves, the second summed into a
 * buffer and added to C last: a weight gradient's (M and N the layer's
 * widths, K the batch's rows), where splitting M or N has each thread pack
 * all of the operand they share. On a 2-core Zen 3 VM, the Transformer's
 * (128 to 512) x (128 to 512) x 4096, two threads: 139-172 -> 171-180
 * GFLOP/s. The halves are summed so whatever the threads, even one, so
 * that the bits do not depend on their count. */
#define KSPLIT_FLOATS ((int64_t)1 << 20) /* the buffer, per thread that splits */
static int split_k(int64_t M, int64_t N, int64_t K) {
    return K >= 8 * (M > N ? M : N) && M * N <= KSPLIT_FLOATS &&
           2.0 * (double)M * (double)N * (double)K >= 4e6;
}

static void split(const struct split_gemm *g, int64_t mr, int64_t nr, int ta, int tb, int64_t M,
                  int64_t N, int64_t K, float alpha, struct gen_chan A, int64_t lda,
                  struct gen_chan B, int64_t ldb, float beta, const float *bias, float *C,
                  int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { /* the product is empty: C = beta C + bias */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] =
                    (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]) + (bias ? bias[j] : 0.0f);
        return;
    }
    const int along_m = M / mr >= N / nr;
    const int64_t unit = along_m ? mr : nr, len = along_m ? M : N;
#ifdef _OPENMP
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    const int nt = 1;
#endif
    if (split_k(M, N, K)) {
        /* half h of K: pieces h q .. h q + q - 1 along M or N; half 0 into
         * C (with beta and bias), half 1 into T (N apart), then C += T */
        float *T = gen_pack_buffer(GEN_PACK_KSPLIT, KSPLIT_FLOATS * sizeof(float));
        const int64_t k1 = K / 2;
        const int q = nt / 2 > 1 ? nt / 2 : 1;
        const struct gen_kernels *kt = gen_kernels();
#pragma omp parallel num_threads(nt < 2 * q ? nt : 2 * q) if (nt > 1)
        {
#pragma omp for schedule(static)
            for (int p = 0; p < 2 * q; p++) {
                const int h = p / q;
                const struct gen_chan Ah = h ? gen_chan_at(A, ta ? k1 * lda : k1) : A;
                const struct gen_chan Bh = h ? gen_chan_at(B, tb ? k1 : k1 * ldb) : B;
                int64_t lo, hi;
                piece_range(len, unit, p % q, q, &lo, &hi);
                gemm_piece(g, along_m, lo, hi, ta, tb, M, N, h ? K - k1 : k1, alpha, Ah, lda, Bh,
                           ldb, h ? 0.0f : beta, h ? NULL : bias, h ? T : C, h ? N : ldc);
            }
#pragma omp for schedule(static)
            for (int64_t i = 0; i < M; i++) kt->add(N, C + i * ldc, T + i * N, C + i * ldc);
        }
        return;
    }
#ifdef _OPENMP
    if (nt > 1 && 2.0 * (double)M * (double)N * (double)K >= 4e6 && (M >= 2 * mr || N >= 2 * nr)) {
        const int64_t units = (len + unit - 1) / unit;
        const int parts = units < nt ? (int)units : nt;
#pragma omp parallel for schedule(static) num_threads(parts)
        for (int t = 0; t < parts; t++) {
            int64_t lo, hi;
            piece_range(len, unit, t, parts, &lo, &hi);
            gemm_piece(g, along_m, lo, hi, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C,
                       ldc);
        }
        return;
    }
#endif
    split_call(g, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
}

void gen_gemm_split(gen_gemm_fn gemm, int64_t mr, int64_t nr, int ta, int tb, int64_t M, int64_t N,
                    int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                    int64_t ldb, float beta, const float *bias, float *C, int64_t ldc) {
    const struct split_gemm g = {gemm, NULL};
    split(&g, mr, nr, ta, tb, M, N, K, alpha, (struct gen_chan){A, NULL}, lda,
          (struct gen_chan){B, NULL}, ldb, beta, bias, C, ldc);
}

void gen_gemm_split_chan(gen_gemm_chan_fn gemm, int64_t mr, int64_t nr, int ta, int tb, int64_t M,
                         int64_t N, int64_t K, float alpha, struct gen_chan A, int64_t lda,
                         struct gen_chan B, int64_t ldb, float beta, const float *bias, float *C,
                         int64_t ldc) {
    const struct split_gemm g = {NULL, gemm};
    split(&g, mr, nr, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
}

int gen_kernels_set_precision(enum gen_precision p) {
    const struct gen_kernels *k = gen_kernels();
    if (p == GEN_PRECISION_FP32) {
        if (gen_kernels_precision() == GEN_PRECISION_BF16)
            atomic_store(&table_in_force, gen_kernels_for("avx512"));
        return 1;
    }
#ifdef GEN_HAVE_AVX512BF16
    const struct gen_kernels *bf = gen_kernels_bf16();
    if (!bf) {
        gen_error(GEN_ERR_RUNTIME, "this CPU lacks AVX512_BF16 (the vdpbf16ps instruction)");
        return 0;
    }
    if (!gen_kernels_bf16_beside()) {
        const char *env = getenv("GEN_ISA");
        gen_error(GEN_ERR_RUNTIME,
                  "bf16 products run on the AVX-512 kernels, but %s%s selects the %s ones",
                  env ? "GEN_ISA=" : "gen_kernels_select", env ? env : "", k->name);
        return 0;
    }
    atomic_store(&table_in_force, bf);
    return 1;
#else
    (void)k;
    gen_error(GEN_ERR_RUNTIME, "this build of gen has no bf16 kernels (built without AVX-512, or "
                               "by a compiler that lacks -mavx512bf16)");
    return 0;
#endif
}

int gen_kernels_conv_wino(const struct gen_kernels *k, int64_t M, int64_t C, int64_t H, int64_t W,
                          int64_t KH, int64_t KW, int64_t stride, int64_t pad) {
    if (!k->conv_gemm) return 0;
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) return 1;
#ifdef GEN_HAVE_AVX512
    if (!strcmp(k->name, "avx512")) return gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad);
#endif
#ifdef GEN_HAVE_AVX2
    if (!strcmp(k->name, "avx2")) return gen_wino_s2_avx2_fits(M, C, H, W, KH, KW, stride, pad);
#endif
    return 0;
}

int gen_kernels_bf16_beside(void) {
    const struct gen_kernels *k = gen_kernels();
    return !strcmp(k->name, "avx512") || k == gen_kernels_bf16();
}

const struct gen_kernels *gen_kernels_bf16(void) {
#ifdef GEN_HAVE_AMX
    const struct gen_kernels *k = amx_kernels();
    if (k) return k;
#endif
#ifdef GEN_HAVE_AVX512BF16
    return bf16_kernels();
#else
    return NULL;
#endif
}

enum gen_precision gen_kernels_precision(void) {
#ifdef GEN_HAVE_AVX512BF16
    if (is_bf16_table(gen_kernels())) return GEN_PRECISION_BF16;
#endif
    return GEN_PRECISION_FP32;
}

void gen_gemm(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, const float *B, float beta, float *C) {
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

void gen_gemm_bias(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K,
                   const float *A, const float *B, const float *bias, float *C) {
    gen_gemm_bias_ld(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, bias, C, N);
}

void gen_gemm_bias_ld(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K,
                      const float *A, int64_t lda, const float *B, int64_t ldb, const float *bias,
                      float *C, int64_t ldc) {
    GEN_ASSERT(M >= 0 && N >= 0 && K >= 0);
    GEN_ASSERT(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX);
    const struct gen_kernels *kt = gen_kernels();
    if (kt->gemm_bias && M > 0 && N > 0 && K > 0) {
        GEN_ASSERT(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N);
        GEN_ASSERT(lda <= INT32_MAX && ldb <= INT32_MAX && ldc <= INT32_MAX);
        kt->gemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc);
        return;
    }
    for (int64_t i = 0; i < M; i++) memcpy(C + i * ldc, bias, (size_t)N * sizeof(float));
    gen_gemm_ld(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
}

void gen_gemm_ld(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc) {
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

#ifdef GEN_HAVE_AVX512
/* The tables with the AVX-512 bf16 matrix-vector product and rounding
 * (gemv_avx512.c): the AVX-512 one and its bf16 copies (which differ in
 * their products alone). */
static int has_avx512_gemv(const struct gen_kernels *k) {
#ifdef GEN_HAVE_AVX512BF16
    if (is_bf16_table(k)) return 1;
#endif
    return k == &gen_kernels_avx512;
}
#endif

void gen_gemv(enum gen_trans trans, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
              const float *x, float beta, float *y) {
    GEN_ASSERT(M >= 0 && N >= 0 && lda >= N);
    GEN_ASSERT(M <= INT32_MAX && N <= INT32_MAX && lda <= INT32_MAX);
    const int64_t ny = trans ? N : M, nx = trans ? M : N;
    if (nx == 0 || ny == 0) { /* nothing to sum; BLAS would reject lda = 0 */
        for (int64_t i = 0; i < ny; i++) y[i] = beta == 0.0f ? 0.0f : beta * y[i];
        return;
    }
    const struct gen_kernels *kt = gen_kernels();
    if (kt->gemv) {
        kt->gemv(trans, M, N, alpha, A, lda, x, beta, y);
        return;
    }
    if (beta == 0.0f) memset(y, 0, (size_t)ny * sizeof *y); /* BLAS scales y: 0 NaN is NaN */
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, alpha, A,
                (blasint)lda, x, 1, beta, y, 1);
}

void gen_gemv_group(int rows) {
    GEN_ASSERT(rows == 0 || rows == 2 || rows == 4);
#ifdef GEN_HAVE_AVX512
    gen_sgemv_avx512_group(rows);
#endif
}

/* x rounded to bf16, as its bits (the scalar form of gemv_avx512.c's round16). */
static uint32_t bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0)
        u &= 0x80000000u; /* zero, denormal: signed zero */
    else if ((u & 0x7fffffffu) > 0x7f800000u)
        u |= 0x00400000u; /* NaN: quiet */
    else
        u += 0x7fffu + ((u >> 16) & 1u);
    return u & 0xffff0000u;
}

/* x rounded to bf16 into y as floats and/or into packed as bf16 (either
 * may be NULL). */
static void bf16_round_into(int64_t n, const float *x, float *y, uint16_t *packed) {
#ifdef GEN_HAVE_AVX512
    if (has_avx512_gemv(gen_kernels())) {
        gen_bf16_round_avx512(n, x, y, packed);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = bf16_bits(x[i]);
        if (y) memcpy(y + i, &u, sizeof u);
        if (packed) packed[i] = (uint16_t)(u >> 16);
    }
}

void gen_bf16_round(int64_t n, const float *x, float *y) {
    bf16_round_into(n, x, y, NULL);
}

void gen_bf16_pack(int64_t n, const float *x, uint16_t *y) {
    bf16_round_into(n, x, NULL, y);
}

void gen_gemv_bf16(int64_t M, int64_t N, const uint16_t *A, int64_t lda, const float *x, float beta,
                   float *y) {
    GEN_ASSERT(M >= 0 && N >= 0 && lda >= N);
#ifdef GEN_HAVE_AVX512
    if (has_avx512_gemv(gen_kernels())) {
        gen_sgemv_bf16_avx512(M, N, A, lda, x, beta, y);
        return;
    }
#endif
    for (int64_t i = 0; i < M; i++) {
        float s = 0.0f;
        for (int64_t j = 0; j < N; j++) {
            const uint32_t u = (uint32_t)A[i * lda + j] << 16;
            float a;
            memcpy(&a, &u, sizeof a);
            s = fmaf(a, x[j], s);
        }
        y[i] = beta == 0.0f ? s : fmaf(beta, y[i], s);
    }
}
