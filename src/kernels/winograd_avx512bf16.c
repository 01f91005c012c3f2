/* winograd_avx512bf16.c - the bf16 products of the 3 x 3 stride-1
 * convolutions by Winograd's F(2 x 2, 3 x 3) (winograd_avx512.h), for
 * --precision bf16 on AVX512-BF16 (vdpbf16ps).
 *
 * The transforms run in fp32 as they do for fp32's products; what is
 * rounded to bf16 are their outputs, the operands of the 16 GEMMs: the
 * transformed kernels (G g G^T, packed once per call as A panels of pairs)
 * and the transformed inputs (B^T d B), which the input transform writes
 * straight into the GEMMs' B panels as pairs of neighbouring channels, so
 * neither is packed again. The products sum in fp32; the output transform
 * reads fp32. The weight gradient's operands (A dy A^T and B^T d B) are
 * rounded as its GEMMs pack them. Rounding after the transform rather
 * than before changes the error only by the transforms' small weights
 * (sums of at most four values, halves): the direct bf16 convolution's
 * tolerance times a small factor (tests/test_bf16.c). */
#include "kernels/bf16_lanes.h"
#include "kernels/winograd_avx512.h"

/* Row c of the 16 matrices as bf16 pairs of channels (pair c / 2 at row
 * c / 2 of the panels, the even channel in the low half): an even
 * channel's rows wait in S as floats until the odd channel's come and
 * both are rounded together; a lone last channel pairs with zeros. */
static inline __attribute__((always_inline)) void put_pairs(const struct sink *s, int64_t c,
                                                            const struct dest *dp,
                                                            const __m512 v[XI]) {
    const struct dest dl = *dp, *d = &dl; /* in registers, not reread after every store */
    const __mmask16 mk = d->m[0] | d->m[1];
    float *held = s->S + d->t0;
    if (c % 2 == 0 && c + 1 < s->C) {
        #pragma GCC unroll 16
        for (int xi = 0; xi < XI; xi++) _mm512_mask_storeu_ps(held + xi * s->sstep, mk, v[xi]);
        return;
    }
    float *vp = s->V + c / 2 * s->kstep;
    #pragma GCC unroll 16
    for (int xi = 0; xi < XI; xi++) {
        const __m512 lo = c % 2 ? _mm512_maskz_loadu_ps(mk, held + xi * s->sstep) : v[xi],
                     hi = c % 2 ? v[xi] : _mm512_setzero_ps();
        store_dest(vp + xi * s->vstep, d, _mm512_castsi512_ps(round_rows(lo, hi)));
    }
}

static void pack(int64_t M, int64_t C, const float *A, float *ap) {
    gen_bf16_pack_a(M, C, A, C, (uint32_t *)(void *)ap);
}

int64_t gen_wino_bf16_prep_work(int64_t M, int64_t C) {
    return wino_prep_floats(M, C, gen_bf16_pack_a_floats(M, C));
}

void gen_wino_bf16_prep(int64_t M, int64_t C, const float *Wm, float *prep) {
    wino_prep(M, C, Wm, prep, gen_bf16_pack_a_floats(M, C), pack);
}

static void product(int64_t M, int64_t n, int64_t depth, const float *ap, const float *v,
                    float *mo) {
    gen_bf16_gemm_panels(M, n, depth, (const uint32_t *)(const void *)ap,
                         (const uint32_t *)(const void *)v, mo, n);
}

int64_t gen_wino_bf16_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                                int64_t m) {
    return wino_conv_floats(M, C, H, W, pad, m, (C + 1) / 2);
}

void gen_wino_bf16_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W,
                        int64_t pad, int64_t m, int64_t img, const float *x, const float *bias,
                        float beta, float *out, int64_t ldo, int64_t out_img, float *work) {
    wino_conv(M, prep, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work, (C + 1) / 2,
              gen_bf16_pack_a_floats(M, C), put_pairs, product);
}

static void dw_product(int64_t M, int64_t C, int64_t n, const float *d, const float *v, float beta,
                       float *mo) {
    gen_bf16_gemm(GEN_NOTRANS, GEN_TRANS, M, C, n, 1.0f, d, n, v, n, beta, mo, C);
}

int64_t gen_wino_bf16_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                              int64_t m) {
    return wino_dw_floats(M, C, H, W, pad, m);
}

void gen_wino_bf16_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H,
                      int64_t W, int64_t pad, int64_t m, int64_t img, const float *x, float *dw,
                      float *work) {
    wino_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work, dw_product);
}
