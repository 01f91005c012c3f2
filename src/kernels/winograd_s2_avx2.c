/* winograd_s2_avx2.c - the AVX2 table's 4 x 4 stride-2 convolutions by
 * F(4 x 4, 2 x 2) over the stride phases: winograd_s2.h (the algebra and
 * the passes) on 8-lane vectors, the AVX2 GEMM's products, and channels-
 * last copies by 8 x 8 transposes.
 *
 * AVX2's masked stores are slow on AMD's cores, so this table takes only
 * channel counts that are multiples of 8 both ways (S2_LANES_OK): every
 * load and store is a whole vector, and the lane masks of winograd_s2.h
 * are a formality here. The others stay on conv_avx2.c's paths. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define VW 8
typedef __m256 vf;
typedef __m256i vi;
typedef int vmask;
#define v_mask(n)         ((void)(n), 1)
#define v_ld(m, p)        ((void)(m), _mm256_loadu_ps(p))
#define v_st(p, m, v)     ((void)(m), _mm256_storeu_ps((p), (v)))
#define v_stu(p, v)       _mm256_storeu_ps((p), (v))
#define v_set1(x)         _mm256_set1_ps(x)
#define v_zero()          _mm256_setzero_ps()
#define v_add(a, b)       _mm256_add_ps((a), (b))
#define v_sub(a, b)       _mm256_sub_ps((a), (b))
#define v_mul(a, b)       _mm256_mul_ps((a), (b))
#define v_fmadd(a, b, c)  _mm256_fmadd_ps((a), (b), (c))
#define v_fnmadd(a, b, c) _mm256_fnmadd_ps((a), (b), (c))
/* the 8 floats at idx's 4-byte offsets from p */
#define v_taps(m, idx, p) ((void)(m), _mm256_i32gather_ps((p), (idx), 4))

/* lanes 0, step, 2 step, ... */
static inline vi v_strided(int64_t step) {
    return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                              _mm256_set1_epi32((int)step));
}

#define S2_LANES_OK(M, C) ((M) % 8 == 0 && (C) % 8 == 0)
#define S2_NR             GEN_AVX2_NR
#define S2_PACK_B_FLOATS  gen_avx2_bpack_floats
#define S2_BPACKED        gen_avx2_bpacked
#define S2_GEMM           gen_sgemm_avx2_1t
#define S2_NHWC_COPY      nhwc_copy
#define S2_NHWC_UNCOPY    nhwc_uncopy
#define S2_FN(name)       gen_wino_s2_avx2_##name

/* A tile's 16 outputs o[4 i + s] (row i, column s) of n <= 8 output
 * channels (lanes), rows x cols of them, into channel j's plane at corner
 * + j ldo (rows ow floats apart), beta times what is there added: two 8 x
 * 8 transposes give each channel's rows 0-1 and 2-3, a row a 128-bit
 * half. */
static inline __attribute__((always_inline)) void tile_store(vf o[16], int64_t n, int64_t rows,
                                                             int64_t cols, float beta,
                                                             float *corner, int64_t ldo,
                                                             int64_t ow) {
    gen_avx2_transpose8(o); /* o[j]: channel j's rows 0 and 1, o[8 + j] its rows 2 and 3 */
    gen_avx2_transpose8(o + 8);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < rows; i++) {
            float *p = corner + j * ldo + i * ow;
            const vf two = o[i / 2 * 8 + j];
            __m128 r = i % 2 ? _mm256_extractf128_ps(two, 1) : _mm256_castps256_ps128(two);
            if (cols == 4) {
                if (beta != 0.0f) r = _mm_fmadd_ps(_mm_set1_ps(beta), _mm_loadu_ps(p), r);
                _mm_storeu_ps(p, r);
                continue;
            }
            float t[4];
            _mm_storeu_ps(t, r);
            for (int64_t s = 0; s < cols; s++) p[s] = beta != 0.0f ? fmaf(beta, p[s], t[s]) : t[s];
        }
}

/* taps[t] lane j: tap t of kernel j, for n <= 8 kernels, into kernel j's
 * 16 floats at dst + j step. */
static inline __attribute__((always_inline)) void kernels_store(vf taps[16], int64_t n, float *dst,
                                                                int64_t step) {
    gen_avx2_transpose8(taps); /* taps[j]: taps 0..7 of kernel j, taps[8 + j] its 8..15 */
    gen_avx2_transpose8(taps + 8);
    for (int64_t j = 0; j < n; j++) {
        v_stu(dst + j * step, taps[j]);
        v_stu(dst + j * step + 8, taps[8 + j]);
    }
}

/* The m images (C, H, W) at x, img floats apart, into xq (m, H + 2 pad, W
 * + 2 pad, C), zeros in the padding; C a multiple of 8: 8 channels' rows
 * of 8 positions a transpose. */
static void nhwc_copy(int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m, int64_t img,
                      const float *x, float *xq) {
    const int64_t Wp = W + 2 * pad, line = Wp * C, P = H * W;
    for (int64_t i = 0; i < m; i++) {
        float *q = xq + i * (H + 2 * pad) * line;
        memset(q, 0, (size_t)(pad * line) * sizeof *q);
        memset(q + (pad + H) * line, 0, (size_t)(pad * line) * sizeof *q);
        for (int64_t ih = 0; ih < H; ih++) {
            float *row = q + (pad + ih) * line;
            memset(row, 0, (size_t)(pad * C) * sizeof *row);
            memset(row + (pad + W) * C, 0, (size_t)(pad * C) * sizeof *row);
            for (int64_t c0 = 0; c0 < C; c0 += 8) {
                const float *s = x + i * img + c0 * P + ih * W;
                for (int64_t w0 = 0; w0 < W; w0 += 8) {
                    const int64_t n = W - w0 < 8 ? W - w0 : 8;
                    vf r[8];
                    for (int j = 0; j < 8; j++)
                        r[j] = n == 8 ? _mm256_loadu_ps(s + j * P + w0)
                                      : gen_avx2_load_head(s + j * P + w0, n);
                    gen_avx2_transpose8(r); /* r[k]: the 8 channels at column w0 + k */
                    for (int64_t k = 0; k < n; k++) v_stu(row + (pad + w0 + k) * C + c0, r[k]);
                }
            }
        }
    }
}

/* dx_i (C, H, W; img floats apart) = beta dx_i + the interior of image i
 * of xq (m, H + 2 pad, W + 2 pad, C): nhwc_copy the other way. */
static void nhwc_uncopy(int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m, const float *xq,
                        float beta, float *dx, int64_t img) {
    const int64_t line = (W + 2 * pad) * C, P = H * W;
    for (int64_t i = 0; i < m; i++)
        for (int64_t ih = 0; ih < H; ih++) {
            const float *row = xq + (i * (H + 2 * pad) + pad + ih) * line + pad * C;
            for (int64_t c0 = 0; c0 < C; c0 += 8) {
                float *d = dx + i * img + c0 * P + ih * W;
                for (int64_t w0 = 0; w0 < W; w0 += 8) {
                    const int64_t n = W - w0 < 8 ? W - w0 : 8;
                    vf r[8];
                    for (int64_t k = 0; k < 8; k++)
                        r[k] = k < n ? _mm256_loadu_ps(row + (w0 + k) * C + c0) : v_zero();
                    gen_avx2_transpose8(r); /* r[j]: columns w0.. of channel c0 + j */
                    for (int64_t j = 0; j < 8; j++) {
                        vf v = r[j];
                        if (beta != 0.0f)
                            v = v_fmadd(v_set1(beta), gen_avx2_load_head(d + j * P + w0, n), v);
                        gen_avx2_store_head(d + j * P + w0, v, n);
                    }
                }
            }
        }
}

#include "kernels/winograd_s2.h"
