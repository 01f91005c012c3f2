/* ops_attn.c - multi-head softmax attention from a packed qkv, forward and
 * backward.
 *
 * One task per (batch, head) under OpenMP. Its GEMMs read q, k, v and dy
 * in place through leading dimensions (gen_gemm_ld: q of head h is columns
 * [h hd, (h+1) hd) of the (T, 3C) rows) and write o straight into its
 * columns of y, and dq, dk, dv straight into (accumulating) its columns of
 * dqkv; tasks touch disjoint columns, so the result does not depend on the
 * thread count. The softmax probabilities P (B, NH, T, T) are kept in the
 * step arena for backward.
 *
 * Each task makes one softmax call over its whole (T, T) block. A kernel
 * call opens an OpenMP region even when it runs serially (a team of one
 * allocated and freed, a futex wake at its barrier: about 1 us), so the
 * causal rows of t + 1 columns each are not separate calls (B NH T of
 * them per pass, tens of ms a step): the future columns are masked
 * instead, with -inf scores forward (e^-inf is exactly 0 in every ISA's
 * softmax) and zero dP backward, which leaves every row's sums, and so
 * every bit, as the row-by-row calls had them (tests/test_attn_mask.c). */
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/ops.h"

static int n_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* The per-head GEMMs are small and run inside an OpenMP loop. OpenBLAS's
 * OpenMP build (the one gen links) runs serially inside a parallel region
 * by itself. Its pthreads build would hand the larger ones to its own pool
 * from every OpenMP thread at once, oversubscribing the cores, so for that
 * build BLAS runs on one thread for the duration of the loop. (In the
 * OpenMP build openblas_set_num_threads also sets OpenMP's thread count,
 * which would serialise the loop itself: hence the check.) */
int openblas_get_num_threads(void); /* from OpenBLAS */
void openblas_set_num_threads(int n);
int openblas_get_parallel(void); /* 0 sequential, 1 pthreads, 2 OpenMP */

static int blas_serial_begin(void) {
    const int n = openblas_get_num_threads();
    if (openblas_get_parallel() == 1 && n > 1 && n_threads() > 1) openblas_set_num_threads(1);
    return n;
}

static void blas_serial_end(int n) {
    if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Sets the future columns j > t of every row t of the (T, T) block m to v. */
static void mask_future(int64_t T, float *m, float v) {
    for (int64_t t = 0; t + 1 < T; t++)
        for (int64_t j = t + 1; j < T; j++) m[t * T + j] = v;
}

struct attn_geo {
    int64_t B, T, C, NH, hd;
};

static struct attn_geo attn_geo(const struct gen_tensor *qkv, int64_t NH) {
    GEN_ASSERT(qkv->ndim == 3 && qkv->shape[2] % 3 == 0);
    struct attn_geo a = {qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3, NH, 0};
    GEN_ASSERT(NH >= 1 && a.C % NH == 0);
    a.hd = a.C / NH;
    return a;
}

struct gen_tensor *gen_attention(struct gen_ctx *g, struct gen_tensor *qkv, int64_t NH,
                                 int causal) {
    const struct attn_geo a = attn_geo(qkv, NH);
    const int64_t T = a.T, hd = a.hd, C = a.C, C3 = 3 * a.C;
    const float scale = 1.0f / sqrtf((float)hd);
    struct gen_tensor *y = gen_tensor_3d(g, a.B, T, a.C);
    float *P = gen_scratch_floats(g, a.B * NH * T * T); /* (B, NH, T, T), kept if recorded */
    float *scratch = gen_scratch_floats(g, n_threads() * T * T);
    const struct gen_kernels *kt = gen_kernels();
    const int blas_threads = blas_serial_begin();

#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < a.B * NH; bh++) {
        const int64_t b = bh / NH, h = bh % NH;
        float *s = scratch + thread_id() * T * T, *p = P + bh * T * T; /* (T, T) */
        const float *q = qkv->data + b * T * C3 + h * hd, *k = q + C, *v = q + 2 * C;
        gen_gemm_ld(0, 1, T, T, hd, scale, q, C3, k, C3, 0.0f, s, T); /* s = q k^T / sqrt(hd) */
        if (causal) mask_future(T, s, -INFINITY);
        kt->softmax_fwd(T, T, s, p);
        /* o = p v, into columns [h hd, (h+1) hd) of y's rows */
        gen_gemm_ld(0, 0, T, hd, T, 1.0f, p, T, v, C3, 0.0f, y->data + b * T * C + h * hd, C);
    }
    blas_serial_end(blas_threads);
    struct gen_node *node = gen_record(g, GEN_OP_ATTENTION, y, 1, (struct gen_tensor *[]){qkv});
    if (node) {
        node->i[0] = NH;
        node->i[1] = causal;
        node->saved = P;
        gen_scratch_keep(g, P);
    }
    gen_scratch_release(g);
    return y;
}

/* dP = dO V^T, dS = softmax_bwd(P, dP), dQ = dS K / sqrt(hd),
 * dK = dS^T Q / sqrt(hd), dV = P^T dO; all accumulated into the packed dqkv. */
GEN_BACKWARD(attention) {
    struct gen_tensor *qkv = node->in[0];
    const int64_t NH = node->i[0];
    const int causal = (int)node->i[1];
    const struct attn_geo a = attn_geo(qkv, NH);
    const int64_t T = a.T, hd = a.hd, C = a.C, C3 = 3 * a.C;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *P = node->saved, *dy = node->out->grad;
    float *dqkv = gen_grad(g, qkv);
    const int64_t per = 2 * T * T; /* dp, ds (T, T) */
    float *scratch = gen_scratch_floats(g, n_threads() * per);
    const struct gen_kernels *kt = gen_kernels();
    const int blas_threads = blas_serial_begin();

#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < a.B * NH; bh++) {
        const int64_t b = bh / NH, h = bh % NH;
        float *dp = scratch + thread_id() * per, *ds = dp + T * T;
        const float *p = P + bh * T * T;
        const float *q = qkv->data + b * T * C3 + h * hd, *k = q + C, *v = q + 2 * C;
        const float *dO = dy + b * T * C + h * hd; /* rows of C */
        float *dq = dqkv + b * T * C3 + h * hd, *dk = dq + C, *dv = dq + 2 * C;

        gen_gemm_ld(0, 1, T, T, hd, 1.0f, dO, C, v, C3, 0.0f, dp, T); /* dp = dO v^T */
        memset(ds, 0, (size_t)(T * T) * sizeof(float));
        if (causal) mask_future(T, dp, 0.0f);
        kt->softmax_bwd(T, T, p, dp, ds);
        gen_gemm_ld(0, 0, T, hd, T, scale, ds, T, k, C3, 1.0f, dq, C3); /* dq += ds k / sqrt(hd)   */
        gen_gemm_ld(1, 0, T, hd, T, scale, ds, T, q, C3, 1.0f, dk, C3); /* dk += ds^T q / sqrt(hd) */
        gen_gemm_ld(1, 0, T, hd, T, 1.0f, p, T, dO, C, 1.0f, dv, C3);   /* dv += p^T dO            */
    }
    blas_serial_end(blas_threads);
}
