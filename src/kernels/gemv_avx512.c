/* gemv_avx512.c - single-precision matrix-vector product with AVX-512, on
 * the calling thread (gen_gemv, kernels.h).
 *
 * Decoding one token at a time (src/models/transformer.c) is a chain of
 * products with one row. A GEMM spends most of such a call packing the
 * matrix; OpenBLAS's sgemv (its AVX2 kernels here) takes 1.1x (matrix in
 * L2) to 1.6x (streamed from L3) as long as this on the shapes of a
 * transformer layer. Decoding streams every weight once per token, so the
 * product is bound by the bandwidth of L2/L3, not by the FMAs: the rows
 * are read one after another in address order, which the hardware
 * prefetcher follows (software prefetching measured slower).
 *
 *   y = alpha A x + beta y     A (M, N) row-major, rows lda apart
 *     eight rows at a time, each row's dot product in 16 lanes: lane l
 *     sums the elements j = l mod 16 of the whole 64-column blocks into
 *     four partial sums by j / 16 mod 4 (four FMA chains; one chain made
 *     a row wait on the FMA's latency: the default Transformer decoded
 *     8-10 % faster at length 100 on one thread of the Zen 5 VM with
 *     four, docs/DESIGN.md), added as
 *     (s0 + s1) + (s2 + s3), then the columns left in order of j; then
 *     the lanes in a fixed tree, (l + l+8) + (l+4 + l+12), then l + l+2,
 *     then l + l+1,
 *     done for eight rows at once by adds across transposed registers. A
 *     last group of fewer rows takes the same tree one row at a time, so
 *     every y_i is the same sequence of operations whatever M. The eight
 *     rows' sums run four rows at a time, each load of x serving four
 *     rows' FMAs: one row at a time, two loads fed each FMA, and on the
 *     Sapphire Rapids VM (one thread, the matrix in L2) the MLP's 128 x
 *     512 product streamed 80-81 GB/s, four at a time 102-105; 512 x 128
 *     the same 72-75 either way (its rows' sums are short, and their
 *     trees and the row groups' overhead weigh more).
 *     On AMD's cores the rows go two at a time instead, each row's tree
 *     on its own (the same tree, so the same bits): on the Zen 5 VM four
 *     at a time was the slower, the default Transformer decoding on one
 *     thread 13 994 -> 15 574 tokens/s (length 1000, medians of 5
 *     interleaved runs; one row at a time was as fast as two), the same
 *     text; on two threads, whose streams from L3 share its bandwidth,
 *     within the noise (17 820 -> 18 775 at length 1000, 17 251 -> 16 942
 *     at 4000, 9 runs each). gen_gemv_group forces either.
 *   y = alpha A^T x + beta y   (trans)
 *     64 columns at a time, the rows i = 0, 1, 2, 3 mod 4 into four
 *     partial sums (four FMA chains hide the FMA latency), added as
 *     (s0 + s1) + (s2 + s3), whatever N.
 *
 * Then y = alpha t (beta == 0: y is not read), else fma(beta, y, alpha t). */
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "kernels/kernels_impl.h"

static __mmask16 tail_mask(int64_t r) {
    return (__mmask16)((1u << r) - 1u);
} /* 0 < r < 16 */

/* y = alpha t + beta y, one element. */
static float scale_out(float t, float alpha, float beta, const float *y) {
    return beta == 0.0f ? alpha * t : fmaf(beta, *y, alpha * t);
}

/* The lanes of one row's accumulator in the tree of the header. */
static float hsum_tree(__m512 a) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 r = _mm_add_ps(q, _mm_movehl_ps(q, q)); /* p0+p2, p1+p3 */
    return _mm_cvtss_f32(_mm_add_ss(r, _mm_shuffle_ps(r, r, 1)));
}

/* The same tree for eight rows' accumulators: their eight sums, in order. */
static inline __attribute__((always_inline)) __m256 hsum_tree8(const __m512 a[8]) {
    __m512 b[4], c[2];
    for (int k = 0; k < 4; k++) /* (l, l+8) of rows 2k, 2k+1 */
        b[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xEE));
    for (int k = 0; k < 2; k++) /* (l, l+8) + (l+4, l+12): block r of c[k] is row 4k + r */
        c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], 0xDD));
    /* per block r: p0+p2, p1+p3 of rows r (lanes 0, 2) and 4+r (lanes 1, 3) */
    const __m512 d = _mm512_add_ps(_mm512_unpacklo_ps(c[0], c[1]), _mm512_unpackhi_ps(c[0], c[1]));
    const __m512 e = _mm512_add_ps(d, _mm512_permute_ps(d, 0x4E)); /* row r: lane 4r, 4+r: 4r+1 */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps256(_mm512_permutexvar_ps(order, e));
}

/* The 16 lane sums of row[j] x[j] (lane l: j = l mod 16), in the order
 * of the header, of the nr rows (nr <= 4, a constant where this is
 * inlined) ld apart from row, into acc: each load of x serves all nr rows'
 * FMAs, and each row's sums are the same operations whatever nr. */
static inline __attribute__((always_inline)) void
row_lanes(const float *row, int64_t ld, const float *x, int64_t N, int nr, __m512 *acc) {
    int64_t j = 0;
    for (int r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();
    if (N >= 64) {
        __m512 s[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) s[r][k] = _mm512_setzero_ps();
        for (; j + 64 <= N; j += 64) {
            __m512 xv[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) xv[k] = _mm512_loadu_ps(x + j + 16 * k);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++)
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    s[r][k] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(row + r * ld + j + 16 * k), xv[k], s[r][k]);
        }
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
            acc[r] =
                _mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), _mm512_add_ps(s[r][2], s[r][3]));
    }
    for (; j + 16 <= N; j += 16) {
        const __m512 xv = _mm512_loadu_ps(x + j);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(row + r * ld + j), xv, acc[r]);
    }
    if (j < N) {
        const __mmask16 m = tail_mask(N - j);
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + j);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++)
            acc[r] =
                _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, row + r * ld + j), xv, acc[r], m);
    }
}

/* The rows gemv_n sums at once, 4 or 2 (0: not chosen yet). */
static atomic_int group;

void gen_sgemv_avx512_group(int rows) {
    atomic_store_explicit(&group, rows, memory_order_relaxed);
}

/* group, chosen by the CPU's vendor where not forced: 2 on AMD's (asked
 * as dispatch.c asks for the CPU's features). */
static int group_rows(void) {
    int g = atomic_load_explicit(&group, memory_order_relaxed);
    if (g) return g;
    __builtin_cpu_init();
    g = __builtin_cpu_is("amd") ? 2 : 4;
    gen_sgemv_avx512_group(g);
    return g;
}

static void gemv_n(int64_t M, int64_t N, float alpha, const float *A, int64_t lda, const float *x,
                   float beta, float *y) {
    int64_t i = 0;
    if (group_rows() == 2)
        for (; i + 2 <= M; i += 2) {
            __m512 acc[2];
            row_lanes(A + i * lda, lda, x, N, 2, acc);
            for (int r = 0; r < 2; r++)
                y[i + r] = scale_out(hsum_tree(acc[r]), alpha, beta, y + i + r);
        }
    else
        for (; i + 8 <= M; i += 8) {
            __m512 acc[8];
            row_lanes(A + i * lda, lda, x, N, 4, acc);
            row_lanes(A + (i + 4) * lda, lda, x, N, 4, acc + 4);
            const __m256 t = _mm256_mul_ps(_mm256_set1_ps(alpha), hsum_tree8(acc));
            _mm256_storeu_ps(y + i, beta == 0.0f ? t
                                                 : _mm256_fmadd_ps(_mm256_set1_ps(beta),
                                                                   _mm256_loadu_ps(y + i), t));
        }
    for (; i < M; i++) {
        __m512 acc;
        row_lanes(A + i * lda, lda, x, N, 1, &acc);
        y[i] = scale_out(hsum_tree(acc), alpha, beta, y + i);
    }
}

/* ---- bf16 rows (gen_gemv_bf16) ----
 * 32 values of a row at a time, one 512-bit load: the even ones (the low
 * halves of its 16 words) widened to fp32 by a shift, the odd ones (high
 * halves) by a mask, each with its own FMA chain against x's even and odd
 * values (split once per 32 columns for all rows of a group): two ALU
 * operations and two FMAs per 32 products, where widening 16 at a time
 * takes three operations per 16. Lane l of a row's even sum holds the
 * columns 32 c + 2 l, of its odd sum 32 c + 2 l + 1; the row's sum is the
 * tree of the header over (even + odd), the same for any M. */

/* x's columns j .. j + 32 (zero past N) as (even, odd). */
static inline __attribute__((always_inline)) void x_pairs(const float *x, int64_t j, int64_t N,
                                                          __m512 *xe, __m512 *xo) {
    const int64_t r = N - j;
    const __mmask16 m0 = r >= 16 ? 0xFFFF : tail_mask(r);
    const __mmask16 m1 = r >= 32 ? 0xFFFF : r > 16 ? tail_mask(r - 16) : 0;
    const __m512 a = _mm512_maskz_loadu_ps(m0, x + j), b = _mm512_maskz_loadu_ps(m1, x + j + 16);
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *xe = _mm512_permutex2var_ps(a, even, b);
    *xo = _mm512_permutex2var_ps(a, _mm512_add_epi32(even, _mm512_set1_epi32(1)), b);
}

/* (even, odd) sums += row's columns j .. j + 32 (zero past N) times x's. */
static inline __attribute__((always_inline)) void row_pairs(const uint16_t *row, int64_t j,
                                                            int64_t N, __m512 xe, __m512 xo,
                                                            __m512 *se, __m512 *so) {
    const int64_t r = N - j;
    const __m512i w = r >= 32 ? _mm512_loadu_si512(row + j)
                              : _mm512_maskz_loadu_epi16((__mmask32)((1ull << r) - 1), row + j);
    const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32((int)0xffff0000u)));
    *se = _mm512_fmadd_ps(we, xe, *se);
    *so = _mm512_fmadd_ps(wo, xo, *so);
}

void gen_sgemv_bf16_avx512(int64_t M, int64_t N, const uint16_t *A, int64_t lda, const float *x,
                           float beta, float *y) {
    int64_t i = 0;
    for (; i + 8 <= M; i += 8) {
        __m512 se[8], so[8], acc[8]; /* unrolled: kept in registers */
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) se[r] = so[r] = _mm512_setzero_ps();
        for (int64_t j = 0; j < N; j += 32) {
            __m512 xe, xo;
            x_pairs(x, j, N, &xe, &xo);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) row_pairs(A + (i + r) * lda, j, N, xe, xo, &se[r], &so[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) acc[r] = _mm512_add_ps(se[r], so[r]);
        const __m256 t = hsum_tree8(acc);
        _mm256_storeu_ps(
            y + i,
            beta == 0.0f ? t : _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(y + i), t));
    }
    for (; i < M; i++) {
        __m512 se = _mm512_setzero_ps(), so = se;
        for (int64_t j = 0; j < N; j += 32) {
            __m512 xe, xo;
            x_pairs(x, j, N, &xe, &xo);
            row_pairs(A + i * lda, j, N, xe, xo, &se, &so);
        }
        y[i] = scale_out(hsum_tree(_mm512_add_ps(se, so)), 1.0f, beta, y + i);
    }
}

/* 16 floats rounded to bf16 as vcvtne2ps2bf16 does (nearest, ties to
 * even; denormals to zero, NaN stays NaN), in the upper halves. */
static inline __m512i round16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
    const __mmask16 tiny = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_and_epi32(r, tiny, u, _mm512_set1_epi32((int)0x80000000u));
    return _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u));
}

void gen_bf16_round_avx512(int64_t n, const float *x, float *y, uint16_t *packed) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i < 16 ? tail_mask(n - i) : 0xFFFF;
        const __m512i r = round16(_mm512_maskz_loadu_ps(m, x + i));
        if (y) _mm512_mask_storeu_ps(y + i, m, _mm512_castsi512_ps(r));
        if (packed)
            _mm256_mask_storeu_epi16(packed + i, m,
                                     _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
}

/* s[v] += x_i row[16 v ..] for the nv vectors of a column block; m masks
 * the last. Whole vectors take plain loads: a masked load that misses the
 * cache is several times slower (the values of a KV cache come from L3). */
static inline __attribute__((always_inline)) void row_axpy(__m512 s[4], float xi, const float *row,
                                                           int nv, __mmask16 m) {
    const __m512 b = _mm512_set1_ps(xi);
    for (int v = 0; v + 1 < nv; v++) s[v] = _mm512_fmadd_ps(b, _mm512_loadu_ps(row + 16 * v), s[v]);
    const float *last = row + 16 * (nv - 1);
    s[nv - 1] = _mm512_fmadd_ps(
        b, m == 0xFFFF ? _mm512_loadu_ps(last) : _mm512_maskz_loadu_ps(m, last), s[nv - 1]);
}

/* Columns [j, j + 16 nv) of the trans product, the last vector masked by m. */
static inline __attribute__((always_inline)) void
gemv_t_block(int64_t M, int64_t j, int nv, __mmask16 m, float alpha, const float *A, int64_t lda,
             const float *x, float beta, float *y) {
    __m512 s[4][4]; /* partial sum p of vector v */
    for (int p = 0; p < 4; p++)
        for (int v = 0; v < nv; v++) s[p][v] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= M; i += 4)
        for (int p = 0; p < 4; p++) row_axpy(s[p], x[i + p], A + (i + p) * lda + j, nv, m);
    for (int p = 0; p < 3; p++) /* the last M mod 4 rows; constant indices keep s in registers */
        if (i + p < M) row_axpy(s[p], x[i + p], A + (i + p) * lda + j, nv, m);
    for (int v = 0; v < nv; v++) {
        const __mmask16 mv = v + 1 < nv ? 0xFFFF : m;
        const __m512 t =
            _mm512_mul_ps(_mm512_set1_ps(alpha), _mm512_add_ps(_mm512_add_ps(s[0][v], s[1][v]),
                                                               _mm512_add_ps(s[2][v], s[3][v])));
        float *yv = y + j + 16 * v;
        _mm512_mask_storeu_ps(
            yv, mv,
            beta == 0.0f ? t
                         : _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mv, yv), t));
    }
}

static void gemv_t(int64_t M, int64_t N, float alpha, const float *A, int64_t lda, const float *x,
                   float beta, float *y) {
    for (int64_t j = 0; j < N; j += 64) {
        const int64_t w = N - j < 64 ? N - j : 64;
        const __mmask16 m = w % 16 ? tail_mask(w % 16) : 0xFFFF;
        /* a constant nv per call: s is unrolled into registers, not kept in memory */
        switch ((w + 15) / 16) {
        case 1:
            gemv_t_block(M, j, 1, m, alpha, A, lda, x, beta, y);
            break;
        case 2:
            gemv_t_block(M, j, 2, m, alpha, A, lda, x, beta, y);
            break;
        case 3:
            gemv_t_block(M, j, 3, m, alpha, A, lda, x, beta, y);
            break;
        default:
            gemv_t_block(M, j, 4, m, alpha, A, lda, x, beta, y);
            break;
        }
    }
}

void gen_sgemv_avx512(int trans, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
                      const float *x, float beta, float *y) {
    if (trans)
        gemv_t(M, N, alpha, A, lda, x, beta, y);
    else
        gemv_n(M, N, alpha, A, lda, x, beta, y);
}
