/* bf16_lanes.h - rounding fp32 lanes to pairs of bf16, shared by the bf16
 * products (include only from files compiled with -mavx512bf16). A pair
 * is one 32-bit word holding two bf16: the even k in the low half. */
#ifndef GEN_BF16_LANES_H
#define GEN_BF16_LANES_H

#include <immintrin.h>
#include <stdint.h>

#include "kernels/avx512_lanes.h"

/* The 32 values x[0..16) then y[0..16) rounded to bf16 (nearest, ties to
 * even: vcvtne2ps2bf16), in that order: lane j of the result is the pair
 * (x[2j], x[2j+1]) for j < 8, then y's. For 32 consecutive values of a
 * row, these are its 16 pairs. */
static inline __m512i round_run(__m512 x, __m512 y) {
    return (__m512i)_mm512_cvtne2ps_pbh(y, x);
}

/* Lane j = the pair (x[j], y[j]): two rows of 16 values rounded to bf16 and
 * interleaved (vpermw of the 32 rounded values). */
static inline __m512i round_rows(__m512 x, __m512 y) {
    static const uint16_t zip[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                     8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(zip), round_run(x, y));
}

/* x[0..n) rounded to bf16 into d[0..n) (d of any alignment), 32 at a
 * time. */
static inline __m512d round_to_sum(const float *x, int64_t n, uint16_t *d, __m512d s) {
    for (int64_t j = 0; j < n; j += 32) {
        const int64_t k = n - j;
        const __m512 a = load_lanes(x + j, k), b = load_lanes(x + j + 16, k - 16);
        _mm512_mask_storeu_epi16(d + j, (__mmask32)(k >= 32 ? ~0u : (1u << k) - 1),
                                 round_run(a, b));
        s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
        s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)));
        s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm512_castps512_ps256(b)));
        s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm512_extractf32x8_ps(b, 1)));
    }
    return s;
}

static inline void round_to(const float *x, int64_t n, uint16_t *d) {
    (void)round_to_sum(x, n, d, _mm512_setzero_pd());
}

#endif
