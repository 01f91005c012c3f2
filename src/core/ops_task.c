/* ops_task.c - what ops need that run their work inside their own OpenMP
 * loop, one task at a time on each thread: attention (a task per batch
 * and head, ops_attn.c, whose products share packed operands) and the
 * convolutions (a chunk of images, ops_conv.c, each thread its own part
 * of the scratch). Inside the loop gen_gemm_split sees the parallel region
 * and keeps a product on the calling thread. */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/ops.h"

int gen_task_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int64_t gen_task_chunk(int64_t tasks) {
    const int64_t c = tasks / (8 * (int64_t)gen_task_threads());
    return c < 1 ? 1 : c;
}

int gen_task_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* OpenBLAS's OpenMP build (the one gen links) runs serially inside a
 * parallel region by itself. Its pthreads build would hand the larger
 * products to its own pool from every OpenMP thread at once,
 * oversubscribing the cores, so for that build BLAS runs on one thread for
 * the duration of the loop. (In the OpenMP build openblas_set_num_threads
 * also sets OpenMP's thread count, which would serialise the loop itself:
 * hence the check.) */
int openblas_get_num_threads(void); /* from OpenBLAS */
void openblas_set_num_threads(int n);
int openblas_get_parallel(void); /* 0 sequential, 1 pthreads, 2 OpenMP */

int gen_blas_serial_begin(void) {
    const int n = openblas_get_num_threads();
    if (openblas_get_parallel() == 1 && n > 1 && gen_task_threads() > 1)
        openblas_set_num_threads(1);
    return n;
}

void gen_blas_serial_end(int n) {
    if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
}

int64_t gen_shared_floats(const struct gen_kernels *kt, int64_t K, int64_t N) {
    return kt->bpack ? (kt->bpack_floats(K, N) + 15) / 16 * 16 : 0;
}

struct gen_shared_b gen_share(const struct gen_kernels *kt, enum gen_trans tb, const float *B,
                              int64_t ldb, int64_t K, int64_t N, float *buf) {
    const struct gen_shared_b s = {tb, B, ldb, K, kt->bpack ? buf : NULL};
    if (s.packed) kt->bpack(tb, K, N, B, ldb, buf);
    return s;
}

struct gen_shared_b gen_share_h(const struct gen_kernels *kt, enum gen_trans tb, const uint16_t *B,
                                int64_t ldb, int64_t K, int64_t N, float *buf) {
    GEN_ASSERT(kt->bpack_h && kt->bpack);
    kt->bpack_h(tb, K, N, B, ldb, buf);
    return (struct gen_shared_b){tb, NULL, ldb, K, buf};
}

void gen_shared_product(const struct gen_kernels *kt, enum gen_trans ta, int64_t M, int64_t N,
                        int64_t K, float alpha, const float *A, int64_t lda,
                        const struct gen_shared_b *b, int64_t k0, float beta, const float *bias,
                        float *C, int64_t ldc) {
    GEN_ASSERT(!bias || (alpha == 1.0f && beta == 0.0f));
    const float *B = b->tb ? b->B + k0 : b->B + k0 * b->ldb;
    if (b->packed)
        kt->gemm_bpacked(ta, M, N, K, alpha, A, lda, b->packed, k0, b->K, beta, bias, C, ldc);
    else if (bias)
        gen_gemm_bias_ld(ta, b->tb, M, N, K, A, lda, B, b->ldb, bias, C, ldc);
    else
        gen_gemm_ld(ta, b->tb, M, N, K, alpha, A, lda, B, b->ldb, beta, C, ldc);
}

void gen_shared_product_chan(const struct gen_kernels *kt, enum gen_trans ta, int64_t M, int64_t N,
                             int64_t K, float alpha, struct gen_chan A, int64_t lda,
                             const struct gen_shared_b *b, int64_t k0, float beta,
                             const float *bias, float *C, int64_t ldc) {
    if (!A.h) {
        gen_shared_product(kt, ta, M, N, K, alpha, A.f, lda, b, k0, beta, bias, C, ldc);
        return;
    }
    GEN_ASSERT(kt->gemm_bpacked_h && b->packed && (!bias || (alpha == 1.0f && beta == 0.0f)));
    kt->gemm_bpacked_h(ta, M, N, K, alpha, A.h, lda, b->packed, k0, b->K, beta, bias, C, ldc);
}
