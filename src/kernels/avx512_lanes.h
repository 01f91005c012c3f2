/* avx512_lanes.h - lane masks, lane shuffles, a 16 x 16 transpose and line
 * prefetches shared by the AVX-512 kernels (include only from files
 * compiled for AVX-512). */
#ifndef GEN_AVX512_LANES_H
#define GEN_AVX512_LANES_H

#include <immintrin.h>
#include <stdint.h>

/* Lanes [lo, hi) of 16 (clamped). */
static inline __mmask16 lanes(int64_t lo, int64_t hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << (hi - lo)) - 1) << lo);
}

/* The first n lanes (n clamped to 0..16). */
static inline __mmask16 lane_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* The n floats at p (n clamped to 0..16), zeros in the other lanes. */
static inline __m512 load_lanes(const float *p, int64_t n) {
    return _mm512_maskz_loadu_ps(lane_mask(n), p);
}

/* Fetches the n floats at p into L1, a line at a time: ahead of passes
 * that read short rows one by one, which leave the hardware prefetcher
 * idle. */
static inline void prefetch_row(const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) _mm_prefetch((const char *)(p + i), _MM_HINT_T0);
}

/* The vpermt2d indices that swap the off-diagonal h x h blocks of every
 * 2h x 2h block of two rows a, b: lo takes a's lane j where j & h is 0,
 * else b's lane j - h; hi takes a's lane j + h where j & h is 0, else b's
 * lane j (indices 16 and up name the second source). */
static inline __attribute__((always_inline)) void block_swap(int h, __m512i *lo, __m512i *hi) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __mmask16 upper = _mm512_test_epi32_mask(lane, _mm512_set1_epi32(h));
    *lo = _mm512_mask_add_epi32(lane, upper, lane, _mm512_set1_epi32(16 - h));
    *hi = _mm512_mask_add_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(h)), upper, lane,
                                _mm512_set1_epi32(16));
}

/* The lane sums of v[0..16) as one vector, lane i the sum of v[i]: the
 * transpose's block swaps, each round adding its two outputs (45
 * instructions for 16 sums, where one reduction each takes about 10). */
static inline __attribute__((always_inline)) __m512 lane_sums(__m512 v[16]) {
#pragma GCC unroll 4
    for (int h = 8; h >= 1; h /= 2) {
        __m512i lo, hi;
        block_swap(h, &lo, &hi);
#pragma GCC unroll 8
        for (int i = 0; i < h; i++)
            v[i] = _mm512_add_ps(_mm512_permutex2var_ps(v[i], lo, v[i + h]),
                                 _mm512_permutex2var_ps(v[i], hi, v[i + h]));
    }
    return v[0];
}

/* Transposes the 16 x 16 block in r: row i, lane j -> row j, lane i. Two
 * rounds inside 128-bit lanes (4 x 4 blocks), then two across lanes.
 * Always inlined, so that r stays in registers. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16];
    #pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) { /* r[4i + j], lane L: column 4L + j of rows 4i..4i+3 */
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    #pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512 u0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        const __m512 u1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        const __m512 u2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        const __m512 u3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
        t[j] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        t[j + 8] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        t[j + 4] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        t[j + 12] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
    #pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

#endif
