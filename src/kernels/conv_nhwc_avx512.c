/* conv_nhwc_avx512.c - the gradients of strided convolutions through a
 * channels-last copy of the images.
 *
 * At a stride, an im2col row is a strided slice of the input. The wide grid
 * (gemm_avx512.c) reads it from phase planes, but both gradients pay for
 * that: the weight gradient runs as dot products along the positions
 * (garbage columns, rows rounded up to whole vectors, lane sums per
 * block), and the input gradient writes dcol = W^T dy out and adds its
 * windows back element by element (col2im).
 *
 * Copied channels-last and zero-padded, xq (m, Hp, Wp, C), the KW taps of
 * kernel row kh at output position (oh, ow) are one run of KW C floats,
 * xq[i][oh s + kh][ow s][0 ..]. With the L = m OH OW positions of the
 * chunk's images, each kernel row is one GEMM of full depth:
 *
 *   dw_kh (M x KW C)       = dy (M x L) rows (L x KW C)
 *   rows of dxq (L x KW C) += dy^T (L x M) w_kh (M x KW C)
 *
 * the first reading B's rows in place, the second adding into C's rows in
 * place: the padded channels-last dx, turned back to (C, H, W) at the end.
 * Neighbouring positions' runs overlap (KW > s) but lie s C floats apart,
 * so the rows of one 8-row tile of C are disjoint when s C >= GEN_GEMM_NR,
 * and tiles run one after another. Each dw element and each addition into
 * dx is a fixed sequence of FMAs, whatever the thread count. */
#include <string.h>

#include "kernels/avx512_lanes.h"
#include "kernels/kernels_impl.h"

static int64_t round16(int64_t n) {
    return (n + 15) / 16 * 16;
}

int gen_nhwc_fits(int64_t C, int64_t KH, int64_t KW, int64_t stride) {
    return stride > 1 && KH * KW <= 16 && KW * C >= GEN_GEMM_NR && stride * C >= GEN_GEMM_NR;
}

/* The chunk's geometry: padded image Hp x Wp, L positions, a kernel row's
 * run of KW C floats, a channels-last image of Hp Wp C floats. */
struct nhwc {
    int64_t Hp, Wp, OH, OW, P, L, run, img;
};

static struct nhwc nhwc_geo(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t stride, int64_t pad, int64_t m) {
    struct nhwc g = {.Hp = H + 2 * pad, .Wp = W + 2 * pad};
    g.OH = (g.Hp - KH) / stride + 1, g.OW = (g.Wp - KW) / stride + 1;
    g.P = g.OH * g.OW, g.L = m * g.P, g.run = KW * C, g.img = g.Hp * g.Wp * C;
    return g;
}

/* r = the rows rows of 16 floats at src, stride apart, masked by `mask`
 * (zeros past them), transposed: lane j of r[t] is lane t of row j. */
static inline __attribute__((always_inline)) void load_transposed(const float *src,
                                                                  int64_t stride, int64_t rows,
                                                                  __mmask16 mask, __m512 r[16]) {
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        r[j] = j < rows ? _mm512_maskz_loadu_ps(mask, src + j * stride) : _mm512_setzero_ps();
    transpose16(r);
}

/* The m images (C, H, W) at x, img floats apart, into xq (m, Hp, Wp, C)
 * with zeros in the padding: 16 x 16 blocks of (channel, column)
 * transposed in registers. */
static void to_nhwc(const struct nhwc *g, const float *x, int64_t img, int64_t m, int64_t C,
                    int64_t H, int64_t W, int64_t pad, float *xq) {
    const int64_t line = g->Wp * C;
    for (int64_t i = 0; i < m; i++) {
        float *q = xq + i * g->img;
        memset(q, 0, (size_t)(pad * line) * sizeof(float));
        memset(q + (pad + H) * line, 0, (size_t)((g->Hp - pad - H) * line) * sizeof(float));
        for (int64_t ih = 0; ih < H; ih++) {
            float *d = q + (pad + ih) * line;
            memset(d, 0, (size_t)(pad * C) * sizeof(float));
            memset(d + (pad + W) * C, 0, (size_t)((g->Wp - pad - W) * C) * sizeof(float));
            const float *src = x + i * img + ih * W;
            for (int64_t c0 = 0; c0 < C; c0 += 16)
                for (int64_t w0 = 0; w0 < W; w0 += 16) {
                    const __mmask16 mw = lane_mask(W - w0), mc = lane_mask(C - c0);
                    __m512 r[16];
                    load_transposed(src + c0 * H * W + w0, H * W, C - c0, mw, r);
#pragma GCC unroll 16
                    for (int t = 0; t < 16; t++)
                        if (w0 + t < W) _mm512_mask_storeu_ps(d + (pad + w0 + t) * C + c0, mc, r[t]);
                }
        }
    }
}

/* dx_i (C, H, W) = beta dx_i + the interior of xq's image i, for the m
 * images (dx's img floats apart): to_nhwc's transposes the other way. */
static void from_nhwc(const struct nhwc *g, const float *xq, int64_t m, int64_t C, int64_t H,
                      int64_t W, int64_t pad, float beta, float *dx, int64_t img) {
    const int64_t line = g->Wp * C;
    const __m512 vb = _mm512_set1_ps(beta);
    for (int64_t i = 0; i < m; i++)
        for (int64_t ih = 0; ih < H; ih++) {
            const float *s = xq + i * g->img + (pad + ih) * line + pad * C;
            float *dst = dx + i * img + ih * W;
            for (int64_t c0 = 0; c0 < C; c0 += 16)
                for (int64_t w0 = 0; w0 < W; w0 += 16) {
                    const __mmask16 mw = lane_mask(W - w0), mc = lane_mask(C - c0);
                    __m512 r[16];
                    load_transposed(s + w0 * C + c0, C, W - w0, mc, r);
#pragma GCC unroll 16
                    for (int j = 0; j < 16; j++)
                        if (c0 + j < C) {
                            float *o = dst + (c0 + j) * H * W + w0;
                            __m512 v = r[j];
                            if (beta != 0.0f)
                                v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mw, o), v);
                            _mm512_mask_storeu_ps(o, mw, v);
                        }
                }
        }
}

/* dy of the m images (M x P each, dy_img floats apart) as one M x L
 * matrix. */
static void gather_dy(const struct nhwc *g, int64_t M, const float *dy, int64_t dy_img,
                      int64_t m, float *mat) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t co = 0; co < M; co++)
            memcpy(mat + co * g->L + i * g->P, dy + i * dy_img + co * g->P,
                   (size_t)g->P * sizeof(float));
}

/* ptr[l] = where kernel row kh's run of position l starts in xq. */
static void run_starts(const struct nhwc *g, int64_t C, int64_t kh, int64_t stride, float *xq,
                       int64_t m, float **ptr) {
    for (int64_t i = 0, l = 0; i < m; i++)
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++, l++)
                ptr[l] = xq + i * g->img + ((oh * stride + kh) * g->Wp + ow * stride) * C;
}

/* The parts of the weight gradient's work: xq (and a vector of zeros that
 * the last run's whole-vector reads may reach), dy as M x L, it packed,
 * dw in (M, KH, KW, C) order, the run pointers. */
struct dw_parts {
    int64_t xq, mat, packed, t, ptr, total;
};

static struct dw_parts dw_parts(const struct nhwc *g, int64_t M, int64_t K, int64_t m) {
    struct dw_parts p = {.xq = 0};
    p.mat = p.xq + round16(m * g->img + 16);
    p.packed = p.mat + round16(M * g->L);
    p.t = p.packed + round16(gen_gemm_avx512_pack_a_floats(M, g->L));
    p.ptr = p.t + round16(M * K);
    p.total = p.ptr + round16(2 * g->L); /* L pointers */
    return p;
}

int64_t gen_nhwc_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                         int64_t stride, int64_t pad, int64_t m) {
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    return dw_parts(&g, M, C * KH * KW, m).total;
}

/* t (M, T, C) -> dw (M, C, T), T = KH KW <= 16 taps: 16 channels at a
 * time, transposed in registers. */
static void taps_last(int64_t M, int64_t C, int64_t T, const float *t, float *dw) {
    const __mmask16 mt = lane_mask(T);
    for (int64_t co = 0; co < M; co++)
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const __mmask16 mc = lane_mask(C - c0);
            __m512 r[16];
            load_transposed(t + co * T * C + c0, C, T, mc, r);
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                if (c0 + j < C) _mm512_mask_storeu_ps(dw + (co * C + c0 + j) * T, mt, r[j]);
        }
}

void gen_nhwc_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                 int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                 const float *x, float *dw, float *work) {
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    const int64_t K = C * KH * KW;
    const struct dw_parts p = dw_parts(&g, M, K, m);
    float *xq = work + p.xq, *mat = work + p.mat, *packed = work + p.packed, *t = work + p.t;
    float **ptr = (float **)(void *)(work + p.ptr);
    to_nhwc(&g, x, img, m, C, H, W, pad, xq);
    memset(xq + m * g.img, 0, 16 * sizeof(float));
    gather_dy(&g, M, dy, dy_img, m, mat);
    gen_gemm_avx512_pack_a(0, M, g.L, mat, g.L, packed);
    for (int64_t kh = 0; kh < KH; kh++) {
        run_starts(&g, C, kh, stride, xq, m, ptr);
        gen_gemm_avx512_rows(M, g.run, g.L, packed, NULL, (const float *const *)ptr, NULL, 0.0f,
                             t + kh * g.run, K);
    }
    taps_last(M, C, KH * KW, t, dw);
}

int64_t gen_nhwc_dx_prep_work(int64_t M, int64_t C, int64_t KH, int64_t KW) {
    return KH * gen_gemm_avx512_pack_b_floats(M, KW * C);
}

/* Kernel row kh of Wm (M x C KH KW) as the M x KW C matrix w_kh (row co:
 * tap kw's C weights, kw by kw), packed as B panels, kh by kh: per row co,
 * 16 channels' KH KW taps transposed in registers into one vector of 16
 * channels a tap. */
void gen_nhwc_dx_prep(int64_t M, int64_t C, int64_t KH, int64_t KW, const float *Wm, float *prep) {
    const int64_t run = KW * C, panels = gen_gemm_avx512_pack_b_floats(M, run);
    const int64_t NR = GEN_GEMM_NR, T = KH * KW;
    const __mmask16 mt = lane_mask(T);
    for (int64_t kh = 0; kh < KH; kh++) /* the columns past run */
        memset(prep + kh * panels + (run / NR) * M * NR, 0,
               (size_t)(panels - (run / NR) * M * NR) * sizeof(float));
    for (int64_t co = 0; co < M; co++)
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const int64_t n = C - c0 < 16 ? C - c0 : 16;
            __m512 r[16];
            load_transposed(Wm + (co * C + c0) * T, T, n, mt, r);
            float lane[16];
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++) {
                if (t >= T) continue;
                const int64_t col = t % KW * C + c0, at = col % NR;
                float *d = prep + t / KW * panels + (col / NR) * M * NR + co * NR;
                if (at + n <= NR) { /* within one panel (always, for C a multiple of 16) */
                    _mm512_mask_storeu_ps(d + at, lane_mask(n), r[t]);
                    continue;
                }
                _mm512_storeu_ps(lane, r[t]);
                for (int64_t j = 0; j < n; j++) {
                    const int64_t cj = col + j;
                    prep[t / KW * panels + (cj / NR) * M * NR + co * NR + cj % NR] = lane[j];
                }
            }
        }
}

/* The parts of the input gradient's work: dxq, dy as M x L, dy^T packed,
 * the run pointers. */
struct dx_parts {
    int64_t xq, mat, packed, ptr, total;
};

static struct dx_parts dx_parts(const struct nhwc *g, int64_t M, int64_t m) {
    struct dx_parts p = {.xq = 0};
    p.mat = p.xq + round16(m * g->img);
    p.packed = p.mat + round16(M * g->L);
    p.ptr = p.packed + round16(gen_gemm_avx512_pack_a_floats(g->L, M));
    p.total = p.ptr + round16(2 * g->L);
    return p;
}

int64_t gen_nhwc_dx_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                         int64_t stride, int64_t pad, int64_t m) {
    if (!gen_nhwc_fits(C, KH, KW, stride)) return 0;
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    return dx_parts(&g, M, m).total;
}

void gen_nhwc_dx(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C,
                 int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                 int64_t m, int64_t img, float beta, float *dx, float *work) {
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    const struct dx_parts p = dx_parts(&g, M, m);
    float *xq = work + p.xq, *mat = work + p.mat, *packed = work + p.packed;
    float **ptr = (float **)(void *)(work + p.ptr);
    const int64_t panels = gen_gemm_avx512_pack_b_floats(M, g.run);
    memset(xq, 0, (size_t)(m * g.img) * sizeof(float));
    gather_dy(&g, M, dy, dy_img, m, mat);
    gen_gemm_avx512_pack_a(1, g.L, M, mat, g.L, packed);
    for (int64_t kh = 0; kh < KH; kh++) {
        run_starts(&g, C, kh, stride, xq, m, ptr);
        gen_gemm_avx512_rows(g.L, g.run, M, packed, prep + kh * panels, NULL, ptr, 1.0f, NULL, 0);
    }
    from_nhwc(&g, xq, m, C, H, W, pad, beta, dx, img);
}
