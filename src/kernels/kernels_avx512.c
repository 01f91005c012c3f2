/* kernels_avx512.c - the AVX-512 table: 16 floats a vector, tails under
 * masks. The kernels themselves are in kernels_simd.h, written once over the
 * small vocabulary of primitives defined here (the AVX2 file defines the
 * same vocabulary for 8-float vectors). Compiled with -mavx512f -mavx512dq
 * -mavx512bw -mavx512vl -mavx2 -mfma. */
#include <immintrin.h>
#include <stdint.h>

#define VW 16
#define GEN_SIMD_TABLE gen_kernels_avx512
#define GEN_SIMD_NAME "avx512"
#define GEN_SIMD_GEMM gen_sgemm_avx512_mt
#define GEN_SIMD_GEMM_BIAS gen_sgemm_avx512_bias
#define GEN_SIMD_GEMV gen_sgemv_avx512 /* gemv_avx512.c */
#define GEN_SIMD_BPACK_FLOATS gen_gemm_avx512_pack_b_floats
#define GEN_SIMD_BPACK gen_gemm_avx512_bpack
#define GEN_SIMD_GEMM_BPACKED gen_gemm_avx512_bpacked
#define GEN_SIMD_CONV_GEMM_WORK gen_conv_gemm_avx512_work
#define GEN_SIMD_CONV_GEMM_IMAGES gen_conv_gemm_avx512_images
#define GEN_SIMD_CONV_GEMM gen_conv_gemm_avx512
#define GEN_SIMD_CONV_DW_WORK gen_conv_dw_avx512_work
#define GEN_SIMD_CONV_DW gen_conv_dw_avx512
#define GEN_SIMD_CONV_PREP_WORK gen_conv_prep_avx512_work
#define GEN_SIMD_CONV_PREP gen_conv_prep_avx512
#define GEN_SIMD_CONV_DX_WORK gen_nhwc_dx_work
#define GEN_SIMD_CONV_DX_PREP_WORK gen_nhwc_dx_prep_work
#define GEN_SIMD_CONV_DX_PREP gen_nhwc_dx_prep
#define GEN_SIMD_CONV_DX gen_nhwc_dx
#define SIMD_INLINE static inline __attribute__((always_inline))

typedef __m512 vf;
typedef __mmask16 vm; /* which lanes of a tail are live */

SIMD_INLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
SIMD_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
SIMD_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
SIMD_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
SIMD_INLINE vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
/* 1 / d for normal d: rcp14's estimate and one Newton step (within an ulp
 * or two of the quotient), at a fraction of a division's cost. */
SIMD_INLINE vf vf_recip(vf d) {
    const vf r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}
SIMD_INLINE vf vf_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }   /* a b + c */
SIMD_INLINE vf vf_fnmadd(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); } /* c - a b */
/* min/max return the second operand when either is NaN: callers put x last. */
SIMD_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
SIMD_INLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
SIMD_INLINE vf vf_sqrt(vf a) { return _mm512_sqrt_ps(a); }
SIMD_INLINE vf vf_abs(vf a) { return _mm512_abs_ps(a); }
/* |mag| with the sign of sgn (mag must be non-negative). */
SIMD_INLINE vf vf_copysign(vf mag, vf sgn) {
    return _mm512_or_ps(mag, _mm512_and_ps(sgn, _mm512_set1_ps(-0.0f)));
}
SIMD_INLINE vf vf_round(vf a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* Ordered comparisons: a NaN lane selects f. */
SIMD_INLINE vf vf_sel_gt(vf a, vf b, vf t, vf f) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), f, t);
}
SIMD_INLINE vf vf_sel_ge(vf a, vf b, vf t, vf f) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GE_OQ), f, t);
}
SIMD_INLINE vf vf_sel_lt(vf a, vf b, vf t, vf f) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), f, t);
}
SIMD_INLINE float vf_hmax(vf a) { return _mm512_reduce_max_ps(a); }

/* p 2^n for integral n in [-150, 129]; scalef handles overflow to inf and
 * gradual underflow exactly. */
SIMD_INLINE vf vf_ldexp(vf p, vf n) { return _mm512_scalef_ps(p, n); }

/* ---- full vectors and masked tails ---- */
SIMD_INLINE vm vm_full(void) { return (vm)0xFFFF; }
SIMD_INLINE vm vm_tail(int64_t r) { return (vm)((1u << r) - 1u); } /* 0 < r < VW */
SIMD_INLINE vf ld(const float *p, vm m, int full) {
    return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
/* dead lanes read as `fill` */
SIMD_INLINE vf ldo(const float *p, vm m, int full, vf fill) {
    return full ? _mm512_loadu_ps(p) : _mm512_mask_loadu_ps(fill, m, p);
}
SIMD_INLINE void st(float *p, vm m, int full, vf v) {
    if (full)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, m, v);
}
#ifdef __AVX512BF16__
/* v rounded to bf16 (vcvtneps2bf16) into p[0..16), or its live lanes:
 * built where the compiler knows the instruction, run only by the bf16
 * table (gen_groupnorm_silu_fwd_b16_avx512) */
#define GEN_SIMD_BF16_STORE 1
SIMD_INLINE void st_bf16(uint16_t *p, vm m, int full, vf v) {
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    if (full)
        _mm256_storeu_si256((__m256i *)(void *)p, h);
    else
        _mm256_mask_storeu_epi16(p, m, h);
}
/* p[0..16) as bf16 widened to floats, or its live lanes (dead ones 0) */
SIMD_INLINE vf ld_bf16(const uint16_t *p, vm m, int full) {
    const __m256i h = full ? _mm256_loadu_si256((const __m256i *)(const void *)p)
                           : _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif
/* dead lanes zeroed */
SIMD_INLINE vf zm(vf v, vm m, int full) { return full ? v : _mm512_maskz_mov_ps(m, v); }

/* ---- double accumulators: 16 floats widen into two vectors of 8 doubles ---- */
typedef struct {
    __m512d lo, hi;
} vd2;
SIMD_INLINE vd2 vd2_zero(void) { return (vd2){_mm512_setzero_pd(), _mm512_setzero_pd()}; }
SIMD_INLINE vd2 vd2_add(vd2 acc, vf v) {
    acc.lo = _mm512_add_pd(acc.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    acc.hi = _mm512_add_pd(acc.hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    return acc;
}
/* acc += v^2 with the square exact in double */
SIMD_INLINE vd2 vd2_addsq(vd2 acc, vf v) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    acc.lo = _mm512_fmadd_pd(lo, lo, acc.lo);
    acc.hi = _mm512_fmadd_pd(hi, hi, acc.hi);
    return acc;
}
/* a + b, lane for lane */
SIMD_INLINE vd2 vd2_sum(vd2 a, vd2 b) {
    return (vd2){_mm512_add_pd(a.lo, b.lo), _mm512_add_pd(a.hi, b.hi)};
}
/* back to 16 floats, lane for lane */
SIMD_INLINE vf vd2_cvt(vd2 acc) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(acc.lo)),
                              _mm512_cvtpd_ps(acc.hi), 1);
}
SIMD_INLINE double vd2_hsum(vd2 acc) { return _mm512_reduce_add_pd(_mm512_add_pd(acc.lo, acc.hi)); }

/* ---- col2im at stride 2: d[2 j] += s[j] for j < n ----
 * 8 values of s to the even lanes of one vector by a permutation, added
 * to the even lanes of d, whose odd lanes are neither read nor written:
 * each element gets the one add the scalar loop gives it. */
#define GEN_SIMD_COL2IM_S2 col2im_row_s2
SIMD_INLINE void col2im_row_s2(float *d, const float *s, int64_t n) {
    const __m512i spread = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (int64_t j = 0; j < n; j += 8) {
        const int64_t r = n - j < 8 ? n - j : 8;
        const __mmask16 even = (__mmask16)(0x5555u & ((1u << (2 * r - 1)) - 1u));
        const __m512 v = _mm512_permutexvar_ps(
            spread, _mm512_castps256_ps512(_mm256_maskz_loadu_ps((__mmask8)((1u << r) - 1u), s + j)));
        _mm512_mask_storeu_ps(d + 2 * j, even,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(even, d + 2 * j), v));
    }
}

#include "kernels/kernels_simd.h"
