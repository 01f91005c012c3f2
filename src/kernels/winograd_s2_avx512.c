/* winograd_s2_avx512.c - the AVX-512 table's 4 x 4 stride-2
 * convolutions by F(4 x 4, 2 x 2) over the stride phases: winograd_s2.h
 * (the algebra and the passes) on 16-lane vectors, lane masks for channel
 * counts that are no multiple of 16, and the AVX-512 GEMM's products. */
#include "kernels/avx512_lanes.h"
#include "kernels/kernels_impl.h"

#define VW 16
typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vmask;
#define v_mask(n)         lane_mask(n)
#define v_ld(m, p)        _mm512_maskz_loadu_ps((m), (p))
#define v_st(p, m, v)     _mm512_mask_storeu_ps((p), (m), (v))
#define v_stu(p, v)       _mm512_storeu_ps((p), (v))
#define v_set1(x)         _mm512_set1_ps(x)
#define v_zero()          _mm512_setzero_ps()
#define v_add(a, b)       _mm512_add_ps((a), (b))
#define v_sub(a, b)       _mm512_sub_ps((a), (b))
#define v_mul(a, b)       _mm512_mul_ps((a), (b))
#define v_fmadd(a, b, c)  _mm512_fmadd_ps((a), (b), (c))
#define v_fnmadd(a, b, c) _mm512_fnmadd_ps((a), (b), (c))
/* the live lanes of idx's 4-byte offsets from p, zeros in the others */
#define v_taps(m, idx, p) _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (m), (idx), (p), 4)

/* lanes 0, step, 2 step, ... */
static inline vi v_strided(int64_t step) {
    return _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)step));
}

#define S2_LANES_OK(M, C) 1 /* any: masks take the tails */
#define S2_NR             GEN_GEMM_NR
#define S2_PACK_B_FLOATS  gen_gemm_avx512_pack_b_floats
#define S2_BPACKED        gen_gemm_avx512_bpacked
#define S2_GEMM           gen_sgemm_avx512
#define S2_NHWC_COPY      gen_nhwc_copy /* conv_nhwc_avx512.c */
#define S2_NHWC_UNCOPY    gen_nhwc_uncopy
#define S2_FN(name)       gen_wino_s2_##name

/* A tile's 16 outputs o[4 i + s] (row i, column s) of n <= 16 output
 * channels (lanes), rows x cols of them, into channel j's plane at corner
 * + j ldo (rows ow floats apart), beta times what is there added: turned
 * into 16 positions a channel by a transpose, row i's four then moved to
 * lanes 0..3. */
static inline __attribute__((always_inline)) void tile_store(vf o[16], int64_t n, int64_t rows,
                                                             int64_t cols, float beta,
                                                             float *corner, int64_t ldo,
                                                             int64_t ow) {
    const vmask mcol = lane_mask(cols);
    const vi iota = v_strided(1);
    transpose16(o); /* o[j]: lane 4 i + s is output (i, s) of channel j */
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < rows; i++) {
            float *p = corner + j * ldo + i * ow;
            vf val =
                _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_set1_epi32(4 * (int)i), iota), o[j]);
            if (beta != 0.0f) val = v_fmadd(v_set1(beta), v_ld(mcol, p), val);
            v_st(p, mcol, val);
        }
}

/* taps[t] lane j: tap t of kernel j, for n <= 16 kernels, into kernel j's
 * 16 floats at dst + j step. */
static inline __attribute__((always_inline)) void kernels_store(vf taps[16], int64_t n, float *dst,
                                                                int64_t step) {
    transpose16(taps); /* taps[j]: the 16 taps of kernel j */
    for (int64_t j = 0; j < n; j++) v_stu(dst + j * step, taps[j]);
}

#include "kernels/winograd_s2.h"
