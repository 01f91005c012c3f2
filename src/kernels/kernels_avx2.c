/* kernels_avx2.c - the AVX2+FMA table: 8 floats a vector, tails through
 * vmaskmov loads and 4-, 2- and 1-float stores (neither touches dead
 * lanes). The kernels are in kernels_simd.h, written over the primitives
 * defined here. Compiled with -mavx2 -mfma. */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

#define VW 8
#define GEN_SIMD_TABLE gen_kernels_avx2
#define GEN_SIMD_NAME "avx2"
#define GEN_SIMD_GEMM gen_sgemm_avx2 /* gemm_avx2.c */
#define GEN_SIMD_GEMM_BIAS gen_sgemm_avx2_bias
#define GEN_SIMD_GEMV gen_sgemv_avx2 /* gemv_avx2.c */
#define GEN_SIMD_BPACK_FLOATS gen_avx2_bpack_floats /* gemm_avx2.c */
#define GEN_SIMD_BPACK gen_avx2_bpack
#define GEN_SIMD_GEMM_BPACKED gen_avx2_bpacked
#define GEN_SIMD_CONV_GEMM_WORK gen_conv_gemm_avx2_work /* conv_avx2.c: stride 1 */
#define GEN_SIMD_CONV_GEMM_IMAGES  gen_conv_gemm_avx2_images /* conv_avx2.c */
#define GEN_SIMD_CONV_GEMM gen_conv_gemm_avx2
#define GEN_SIMD_CONV_DW_WORK gen_conv_dw_avx2_work
#define GEN_SIMD_CONV_DW gen_conv_dw_avx2
#define GEN_SIMD_CONV_PREP_WORK gen_conv_prep_avx2_work
#define GEN_SIMD_CONV_PREP gen_conv_prep_avx2
#define GEN_SIMD_CONV_DX_WORK gen_conv_dx_avx2_work /* stride 2 */
#define GEN_SIMD_CONV_DX_PREP_WORK gen_conv_dx_avx2_prep_work
#define GEN_SIMD_CONV_DX_PREP gen_conv_dx_avx2_prep
#define GEN_SIMD_CONV_DX gen_conv_dx_avx2
#define GEN_SIMD_IM2COL_S2 gen_avx2_im2col_s2 /* conv_avx2.c: 1 where it takes it */
#define SIMD_INLINE static inline __attribute__((always_inline))

typedef __m256 vf;
typedef __m256i vm; /* all-ones in the live lanes of a tail */

SIMD_INLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
SIMD_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
SIMD_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
SIMD_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
SIMD_INLINE vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
/* 1 / d: a division (rcp's 12 bits and a Newton step would leave ~2 ulp) */
SIMD_INLINE vf vf_recip(vf d) {
    return _mm256_div_ps(_mm256_set1_ps(1.0f), d);
}
SIMD_INLINE vf vf_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }   /* a b + c */
SIMD_INLINE vf vf_fnmadd(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); } /* c - a b */
/* min/max return the second operand when either is NaN: callers put x last. */
SIMD_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
SIMD_INLINE vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
SIMD_INLINE vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
SIMD_INLINE vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
/* |mag| with the sign of sgn (mag must be non-negative). */
SIMD_INLINE vf vf_copysign(vf mag, vf sgn) {
    return _mm256_or_ps(mag, _mm256_and_ps(sgn, _mm256_set1_ps(-0.0f)));
}
SIMD_INLINE vf vf_round(vf a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* Ordered comparisons: a NaN lane selects f. */
SIMD_INLINE vf vf_sel_gt(vf a, vf b, vf t, vf f) {
    return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
}
SIMD_INLINE vf vf_sel_ge(vf a, vf b, vf t, vf f) {
    return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_GE_OQ));
}
SIMD_INLINE vf vf_sel_lt(vf a, vf b, vf t, vf f) {
    return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}
SIMD_INLINE float vf_hmax(vf a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* vexp's polynomial comes doubled, q = 2p (kernels_simd.h), and
 * vf_ldexp(q, n) is q 2^(n - 1) = p 2^n for integral n in [-150, 128]:
 * where every lane's n is at least -125 (all but the deepest underflows),
 * 2^(n - 1) is one normal power of two, one multiplication (its one
 * rounding gives gradual underflow); else 2^(n - 1) is built as 2^(m/2)
 * 2^(m - m/2), m = n - 1, two normal powers of two, whose last product is
 * again the one rounding. The same bits either way, as p 2^(n/2) 2^(n -
 * n/2) gave before, in 3 vector operations fewer where n >= -125: on one
 * Zen 4 core silu_fwd over 4096 floats in L1 went 0.61 -> 0.52 ns a
 * float. */
#define GEN_EXP_Q 2.0f
SIMD_INLINE vf vf_ldexp(vf q, vf n) {
    const __m256i bias = _mm256_set1_epi32(127);
    if (__builtin_expect(
            !_mm256_movemask_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-125.0f), _CMP_NGE_UQ)), 1)) {
        const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(126));
        return _mm256_mul_ps(q, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
    }
    const __m256i ni = _mm256_sub_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(1));
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const vf s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(q, s1), s2);
}

/* ---- full vectors and masked tails ---- */
SIMD_INLINE vm vm_full(void) { return _mm256_set1_epi32(-1); }
SIMD_INLINE vm vm_tail(int64_t r) { /* 0 < r < VW */
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
SIMD_INLINE vf ld(const float *p, vm m, int full) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
/* dead lanes read as `fill` */
SIMD_INLINE vf ldo(const float *p, vm m, int full, vf fill) {
    return full ? _mm256_loadu_ps(p)
                : _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
/* A tail goes out by 4-, 2- and 1-float stores (gen_avx2_store_head):
 * vmaskmovps stores cost AMD's cores more than a row of 28 floats. */
SIMD_INLINE void st(float *p, vm m, int full, vf v) {
    if (full)
        _mm256_storeu_ps(p, v);
    else
        gen_avx2_store_head(p, v, __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(m))));
}
/* dead lanes zeroed */
SIMD_INLINE vf zm(vf v, vm m, int full) {
    return full ? v : _mm256_and_ps(v, _mm256_castsi256_ps(m));
}

/* ---- double accumulators: 8 floats widen into two vectors of 4 doubles ---- */
typedef struct {
    __m256d lo, hi;
} vd2;
SIMD_INLINE vd2 vd2_zero(void) { return (vd2){_mm256_setzero_pd(), _mm256_setzero_pd()}; }
SIMD_INLINE vd2 vd2_add(vd2 acc, vf v) {
    acc.lo = _mm256_add_pd(acc.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    acc.hi = _mm256_add_pd(acc.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    return acc;
}
/* acc += v^2 with the square exact in double */
SIMD_INLINE vd2 vd2_addsq(vd2 acc, vf v) {
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    acc.lo = _mm256_fmadd_pd(lo, lo, acc.lo);
    acc.hi = _mm256_fmadd_pd(hi, hi, acc.hi);
    return acc;
}
/* a + b, lane for lane */
SIMD_INLINE vd2 vd2_sum(vd2 a, vd2 b) {
    return (vd2){_mm256_add_pd(a.lo, b.lo), _mm256_add_pd(a.hi, b.hi)};
}
/* back to 8 floats, lane for lane */
SIMD_INLINE vf vd2_cvt(vd2 acc) {
    return _mm256_set_m128(_mm256_cvtpd_ps(acc.hi), _mm256_cvtpd_ps(acc.lo));
}
SIMD_INLINE double vd2_hsum(vd2 acc) {
    const __m256d s = _mm256_add_pd(acc.lo, acc.hi);
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    t = _mm_add_sd(t, _mm_unpackhi_pd(t, t));
    return _mm_cvtsd_f64(t);
}

#include "kernels/kernels_simd.h"
