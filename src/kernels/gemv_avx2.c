/* gemv_avx2.c - single-precision matrix-vector product with AVX2, on the
 * calling thread (gen_gemv, kernels.h, on the AVX2 table).
 *
 * Batch-1 decoding streams every weight once a token, so the product is
 * bound by the bandwidth of L2/L3; OpenBLAS's sgemv took 1.19x as long
 * as this loop over the products of a token of the default transformer
 * (3.2 MB of weights, min of 200 passes, one thread of a Zen 3 VM). The
 * method is gemv_avx512.c's with 8-lane vectors, but for A x the eight
 * rows share each load of x, one FMA chain a row (eight in flight), where
 * gemv_avx512.c reads one row at a time in four chains:
 *
 *   y = alpha A x + beta y     eight rows at a time (x loaded once for
 *     all), each row's dot product in 8 lanes (lane l sums the elements j
 *     = l mod 8, in order of j), then the lanes as (l + l+4), then
 *     (p0 + p2) + (p1 + p3), one row at a time, so that every y_i is the
 *     same sequence of operations whatever M.
 *   y = alpha A^T x + beta y   (trans) 32 columns at a time, the rows i =
 *     0, 1 mod 2 into two partial sums, added as s0 + s1, whatever N.
 *
 * Then y = alpha t (beta == 0: y is not read), else fma(beta, y, alpha t).
 * Row and column tails take masked loads (vmaskmovps loads are cheap; its
 * stores are not, so partial vectors of y go through a buffer). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/kernels_impl.h"

/* Lanes [0, r) of a load, 0 <= r <= 8. */
static inline __m256i head_mask(int64_t r) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* y = alpha t + beta y, one element. */
static inline float scale_out(float t, float alpha, float beta, const float *y) {
    return beta == 0.0f ? alpha * t : fmaf(beta, *y, alpha * t);
}

/* The lanes of one row's sums in the tree of the header. */
static inline float hsum_tree(__m256 a) {
    const __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t)); /* p0 + p2, p1 + p3 */
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

/* Rows i .. i + R of A x into y (R <= 8 a constant at each call, so the
 * sums stay in registers). */
static inline __attribute__((always_inline)) void rows_n(int R, int64_t i, int64_t N, float alpha,
                                                         const float *A, int64_t lda,
                                                         const float *x, float beta, float *y) {
    __m256 s[8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) s[r] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= N; j += 8) {
        const __m256 xv = _mm256_loadu_ps(x + j);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            s[r] = _mm256_fmadd_ps(_mm256_loadu_ps(A + (i + r) * lda + j), xv, s[r]);
    }
    if (j < N) {
        const __m256i m = head_mask(N - j);
        const __m256 xv = _mm256_maskload_ps(x + j, m);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            s[r] = _mm256_fmadd_ps(_mm256_maskload_ps(A + (i + r) * lda + j, m), xv, s[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) y[i + r] = scale_out(hsum_tree(s[r]), alpha, beta, y + i + r);
}

static void gemv_n(int64_t M, int64_t N, float alpha, const float *A, int64_t lda, const float *x,
                   float beta, float *y) {
    int64_t i = 0;
    for (; i + 8 <= M; i += 8) rows_n(8, i, N, alpha, A, lda, x, beta, y);
    for (; i < M; i++) rows_n(1, i, N, alpha, A, lda, x, beta, y);
}

/* s[v] += xi row[8 v ..] for the nv vectors of a column block, the last
 * one's loads masked by m. */
static inline __attribute__((always_inline)) void col_rows(int nv, __m256i m, float xi,
                                                           const float *row, __m256 s[4]) {
    const __m256 b = _mm256_set1_ps(xi);
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++)
        s[v] = _mm256_fmadd_ps(
            b, v + 1 < nv ? _mm256_loadu_ps(row + 8 * v) : _mm256_maskload_ps(row + 8 * v, m),
            s[v]);
}

/* Columns [j, j + 8 nv) of the trans product (nv <= 4 a constant at each
 * call), w of them real (the last vector's loads masked). */
static inline __attribute__((always_inline)) void cols_t(int nv, int64_t M, int64_t j, int64_t w,
                                                         float alpha, const float *A, int64_t lda,
                                                         const float *x, float beta, float *y) {
    const __m256i m = head_mask(w - 8 * (nv - 1));
    __m256 s[2][4];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) s[0][v] = s[1][v] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= M; i += 2) {
        col_rows(nv, m, x[i], A + i * lda + j, s[0]);
        col_rows(nv, m, x[i + 1], A + (i + 1) * lda + j, s[1]);
    }
    if (i < M) col_rows(nv, m, x[i], A + i * lda + j, s[0]);
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
        float t[8];
        _mm256_storeu_ps(t, _mm256_add_ps(s[0][v], s[1][v]));
        for (int64_t e = 0; e < 8 && 8 * v + e < w; e++)
            y[j + 8 * v + e] = scale_out(t[e], alpha, beta, y + j + 8 * v + e);
    }
}

static void gemv_t(int64_t M, int64_t N, float alpha, const float *A, int64_t lda, const float *x,
                   float beta, float *y) {
    for (int64_t j = 0; j < N; j += 32) {
        const int64_t w = N - j < 32 ? N - j : 32;
        switch ((w + 7) / 8) {
        case 1:
            cols_t(1, M, j, w, alpha, A, lda, x, beta, y);
            break;
        case 2:
            cols_t(2, M, j, w, alpha, A, lda, x, beta, y);
            break;
        case 3:
            cols_t(3, M, j, w, alpha, A, lda, x, beta, y);
            break;
        default:
            cols_t(4, M, j, w, alpha, A, lda, x, beta, y);
            break;
        }
    }
}

void gen_sgemv_avx2(int trans, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
                    const float *x, float beta, float *y) {
    if (trans)
        gemv_t(M, N, alpha, A, lda, x, beta, y);
    else
        gemv_n(M, N, alpha, A, lda, x, beta, y);
}
