/* ops_attn.c - multi-head softmax attention from a packed qkv, forward and
 * backward.
 *
 * One task per (batch, head) under OpenMP: it gathers its q, k, v slices
 * (T, hd) into contiguous per-thread scratch (gen_gemm takes no leading
 * dimension), runs the small GEMMs and scatters into disjoint columns of the
 * output, so the result does not depend on the thread count. The softmax
 * probabilities P (B, NH, T, T) are kept in the step arena for backward. */
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

/* The per-head GEMMs are small and run inside an OpenMP loop. A threaded
 * OpenBLAS (the pthreads build) would hand the larger ones (above its
 * ~2.6e5 M N K threshold, e.g. T 128, hd 32) to its own pool from every
 * OpenMP thread at once, oversubscribing the cores and serialising on the
 * pool's lock; so BLAS runs on one thread for the duration of the loop. */
int openblas_get_num_threads(void); /* from OpenBLAS */
void openblas_set_num_threads(int n);

static int blas_serial_begin(void) {
    const int n = openblas_get_num_threads();
    if (n > 1 && n_threads() > 1) openblas_set_num_threads(1);
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

/* dst (T, hd) = columns [off, off + hd) of src rows of `ld` floats. */
static void gather(int64_t T, int64_t hd, const float *src, int64_t ld, int64_t off, float *dst) {
    for (int64_t t = 0; t < T; t++) memcpy(dst + t * hd, src + t * ld + off, (size_t)hd * sizeof(float));
}

/* columns [off, off + hd) of dst rows of `ld` floats += src (T, hd). */
static void scatter_add(int64_t T, int64_t hd, const float *src, float *dst, int64_t ld, int64_t off) {
    for (int64_t t = 0; t < T; t++) {
        float *row = dst + t * ld + off;
        const float *s = src + t * hd;
        for (int64_t i = 0; i < hd; i++) row[i] += s[i];
    }
}

struct gen_tensor *gen_attention(struct gen_ctx *g, struct gen_tensor *qkv, int64_t NH,
                                 int causal) {
    const struct attn_geo a = attn_geo(qkv, NH);
    const int64_t T = a.T, hd = a.hd, C3 = 3 * a.C;
    const float scale = 1.0f / sqrtf((float)hd);
    struct gen_tensor *y = gen_tensor_3d(g, a.B, T, a.C);
    float *P = gen_arena_alloc(&g->arena, (size_t)(a.B * NH * T * T) * sizeof(float)); /* (B, NH, T, T) */
    const int64_t per = 4 * T * hd + T * T; /* q, k, v, o (T, hd) and scores (T, T) */
    float *scratch = gen_arena_alloc(&g->arena, (size_t)(n_threads() * per) * sizeof(float));
    const struct gen_kernels *kt = gen_kernels();
    const int blas_threads = blas_serial_begin();

#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < a.B * NH; bh++) {
        const int64_t b = bh / NH, h = bh % NH;
        float *q = scratch + thread_id() * per, *k = q + T * hd, *v = k + T * hd, *o = v + T * hd;
        float *s = o + T * hd, *p = P + bh * T * T;
        const float *src = qkv->data + b * T * C3;
        gather(T, hd, src, C3, h * hd, q);
        gather(T, hd, src, C3, a.C + h * hd, k);
        gather(T, hd, src, C3, 2 * a.C + h * hd, v);
        gen_gemm(0, 1, T, T, hd, scale, q, k, 0.0f, s); /* s = q k^T / sqrt(hd) */
        if (causal) {
            for (int64_t t = 0; t < T; t++) {
                kt->softmax_fwd(1, t + 1, s + t * T, p + t * T);
                memset(p + t * T + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
            }
        } else {
            kt->softmax_fwd(T, T, s, p);
        }
        gen_gemm(0, 0, T, hd, T, 1.0f, p, v, 0.0f, o); /* o = p v */
        float *dst = y->data + b * T * a.C;
        for (int64_t t = 0; t < T; t++) memcpy(dst + t * a.C + h * hd, o + t * hd, (size_t)hd * sizeof(float));
    }
    blas_serial_end(blas_threads);
    struct gen_node *node = gen_record(g, GEN_OP_ATTENTION, y, 1, (struct gen_tensor *[]){qkv});
    if (node) {
        node->i[0] = NH;
        node->i[1] = causal;
        node->saved = P;
    }
    return y;
}

/* dP = dO V^T, dS = softmax_bwd(P, dP), dQ = dS K / sqrt(hd),
 * dK = dS^T Q / sqrt(hd), dV = P^T dO; all into the packed dqkv. */
GEN_BACKWARD(attention) {
    struct gen_tensor *qkv = node->in[0];
    const int64_t NH = node->i[0];
    const int causal = (int)node->i[1];
    const struct attn_geo a = attn_geo(qkv, NH);
    const int64_t T = a.T, hd = a.hd, C3 = 3 * a.C;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *P = node->saved, *dy = node->out->grad;
    float *dqkv = gen_grad(g, qkv);
    const int64_t per = 5 * T * hd + 2 * T * T; /* q, k, v, do, dtmp (T, hd); dp, ds (T, T) */
    float *scratch = gen_arena_alloc(&g->arena, (size_t)(n_threads() * per) * sizeof(float));
    const struct gen_kernels *kt = gen_kernels();
    const int blas_threads = blas_serial_begin();

#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < a.B * NH; bh++) {
        const int64_t b = bh / NH, h = bh % NH;
        float *q = scratch + thread_id() * per, *k = q + T * hd, *v = k + T * hd;
        float *dO = v + T * hd, *tmp = dO + T * hd, *dp = tmp + T * hd, *ds = dp + T * T;
        const float *p = P + bh * T * T, *src = qkv->data + b * T * C3;
        float *dsrc = dqkv + b * T * C3;
        gather(T, hd, src, C3, h * hd, q);
        gather(T, hd, src, C3, a.C + h * hd, k);
        gather(T, hd, src, C3, 2 * a.C + h * hd, v);
        gather(T, hd, dy + b * T * a.C, a.C, h * hd, dO);

        gen_gemm(0, 1, T, T, hd, 1.0f, dO, v, 0.0f, dp); /* dp = dO v^T */
        memset(ds, 0, (size_t)(T * T) * sizeof(float));
        if (causal) {
            for (int64_t t = 0; t < T; t++) kt->softmax_bwd(1, t + 1, p + t * T, dp + t * T, ds + t * T);
        } else {
            kt->softmax_bwd(T, T, p, dp, ds);
        }
        gen_gemm(0, 0, T, hd, T, scale, ds, k, 0.0f, tmp); /* dq = ds k / sqrt(hd) */
        scatter_add(T, hd, tmp, dsrc, C3, h * hd);
        gen_gemm(1, 0, T, hd, T, scale, ds, q, 0.0f, tmp); /* dk = ds^T q / sqrt(hd) */
        scatter_add(T, hd, tmp, dsrc, C3, a.C + h * hd);
        gen_gemm(1, 0, T, hd, T, 1.0f, p, dO, 0.0f, tmp); /* dv = p^T dO */
        scatter_add(T, hd, tmp, dsrc, C3, 2 * a.C + h * hd);
    }
    blas_serial_end(blas_threads);
}
