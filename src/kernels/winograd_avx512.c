/* winograd_avx512.c - the fp32 products of the 3 x 3 stride-1
 * convolutions by Winograd's F(2 x 2, 3 x 3) (winograd_avx512.h): the
 * transformed operands as floats, multiplied by the packed AVX-512 GEMM. */
#include "kernels/winograd_avx512.h"

static void pack(int64_t M, int64_t C, const float *A, float *ap) {
    gen_gemm_avx512_pack_a(GEN_NOTRANS, M, C, A, C, ap);
}

int64_t gen_wino_prep_work(int64_t M, int64_t C) {
    return wino_prep_floats(M, C, gen_gemm_avx512_pack_a_floats(M, C));
}

void gen_wino_prep(int64_t M, int64_t C, const float *Wm, float *prep) {
    wino_prep(M, C, Wm, prep, gen_gemm_avx512_pack_a_floats(M, C), pack);
}

static void product(int64_t M, int64_t n, int64_t depth, const float *ap, const float *v,
                    float *mo) {
    gen_sgemm_avx512_packed(M, n, depth, ap, v, 0.0f, mo, n);
}

int64_t gen_wino_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    return wino_conv_floats(M, C, H, W, pad, m, C);
}

void gen_wino_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                   int64_t m, int64_t img, const float *x, const float *bias, float beta,
                   float *out, int64_t ldo, int64_t out_img, float *work) {
    wino_conv(M, prep, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work, C,
              gen_gemm_avx512_pack_a_floats(M, C), put_floats, product);
}

static void dw_product(int64_t M, int64_t C, int64_t n, const float *d, const float *v, float beta,
                       float *mo) {
    gen_sgemm_avx512(0, 1, M, C, n, 1.0f, d, n, v, n, beta, NULL, mo, C);
}

int64_t gen_wino_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    return wino_dw_floats(M, C, H, W, pad, m);
}

void gen_wino_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                 int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work) {
    wino_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work, dw_product);
}
