/* conv_nhwc_avx512.c - strided convolutions, forward and both gradients,
 * through a channels-last copy of the images.
 *
 * At a stride, an im2col row is a strided slice of the input. The wide grid
 * (gemm_avx512.c) reads it from phase planes, but every direction pays for
 * that: the forward pass builds the planes and multiplies garbage columns,
 * the weight gradient runs as dot products along the positions (garbage
 * columns, rows rounded up to whole vectors, lane sums per block), and the
 * input gradient writes dcol = W^T dy out and adds its windows back element
 * by element (col2im).
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
 * The forward pass transposes the runs, 16 positions at a time, into the
 * GEMM's packed B panels (k in (kh, kw, c) order, the kernels permuted to
 * match once per convolution), so y = w col has no garbage columns and
 * needs no phase planes.
 * Where the output channels come in one to four whole vectors (M = 16,
 * 32, 48 or 64), the forward pass skips the GEMM and its panels (direct
 * below): a tile of P positions of one output row holds P x V
 * accumulators of 16 output channels each (V vectors), and each (tap,
 * input channel) adds the V vectors of weights times the P positions'
 * input values, broadcast from xq (7 positions, two vectors: 14
 * accumulators). The weights are laid out (KH, KW, C, M) once per
 * convolution. The U-Net's 32 -> 32 stride-2 convolution at 28 x 28, 64
 * images, forward and backward: 3.27-3.46 -> 3.04-3.29 ms.
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

/* Where element (k, col) of a B operand packed as K-deep panels
 * (gen_sgemm_avx512_packed's bp) lives. */
static inline float *panel_at(float *bp, int64_t K, int64_t k, int64_t col) {
    return bp + (col / GEN_GEMM_NR) * K * GEN_GEMM_NR + k * GEN_GEMM_NR + col % GEN_GEMM_NR;
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
        }
        /* 16 channels' planes at a time, row by row, the next 16 (or the
         * next image's first) fetched meanwhile: the loads' strided streams
         * leave the hardware prefetcher idle */
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const __mmask16 mc = lane_mask(C - c0);
            if (c0 + 16 < C)
                prefetch_row(x + i * img + (c0 + 16) * H * W, (C - c0 - 16 < 16 ? C - c0 - 16 : 16) * H * W);
            else if (i + 1 < m)
                prefetch_row(x + (i + 1) * img, (C < 16 ? C : 16) * H * W);
            for (int64_t ih = 0; ih < H; ih++) {
                float *d = q + (pad + ih) * line + pad * C + c0;
                const float *src = x + i * img + c0 * H * W + ih * W;
                for (int64_t w0 = 0; w0 < W; w0 += 16) {
                    __m512 r[16];
                    load_transposed(src + w0, H * W, C - c0, lane_mask(W - w0), r);
#pragma GCC unroll 16
                    for (int t = 0; t < 16; t++)
                        if (w0 + t < W) _mm512_mask_storeu_ps(d + (w0 + t) * C, mc, r[t]);
                }
            }
        }
    }
}

void gen_nhwc_copy(int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m, int64_t img,
                   const float *x, float *xq) {
    const struct nhwc g = nhwc_geo(C, H, W, 1, 1, 1, pad, m);
    to_nhwc(&g, x, img, m, C, H, W, pad, xq);
}

/* dx_i (C, H, W) = beta dx_i + the interior of xq's image i, for the m
 * images (dx's img floats apart): to_nhwc's transposes the other way. */
static void from_nhwc(const struct nhwc *g, const float *xq, int64_t m, int64_t C, int64_t H,
                      int64_t W, int64_t pad, float beta, float *dx, int64_t img) {
    const int64_t line = g->Wp * C;
    const __m512 vb = _mm512_set1_ps(beta);
    for (int64_t i = 0; i < m; i++)
        for (int64_t c0 = 0; c0 < C; c0 += 16) /* 16 channels' planes at a time, as to_nhwc */
            for (int64_t ih = 0; ih < H; ih++) {
                const float *s = xq + i * g->img + (pad + ih) * line + pad * C + c0;
                float *dst = dx + i * img + c0 * H * W + ih * W;
                for (int64_t w0 = 0; w0 < W; w0 += 16) {
                    const __mmask16 mw = lane_mask(W - w0);
                    __m512 r[16];
                    load_transposed(s + w0 * C, C, W - w0, lane_mask(C - c0), r);
#pragma GCC unroll 16
                    for (int j = 0; j < 16; j++)
                        if (c0 + j < C) {
                            float *o = dst + j * H * W + w0;
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
    gen_gemm_avx512_pack_a(GEN_NOTRANS, M, g.L, mat, g.L, packed);
    for (int64_t kh = 0; kh < KH; kh++) {
        run_starts(&g, C, kh, stride, xq, m, ptr);
        gen_gemm_avx512_rows(M, g.run, g.L, packed, NULL, (const float *const *)ptr, NULL, 0.0f,
                             t + kh * g.run, K);
    }
    taps_last(M, C, KH * KW, t, dw);
}

int64_t gen_nhwc_dx_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad) {
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_dx_prep_work(M, C);
    return KH * gen_gemm_avx512_pack_b_floats(M, KW * C);
}

/* Kernel row kh of Wm (M x C KH KW) as the M x KW C matrix w_kh (row co:
 * tap kw's C weights, kw by kw), packed as B panels, kh by kh: per row co,
 * 16 channels' KH KW taps transposed in registers into one vector of 16
 * channels a tap. */
void gen_nhwc_dx_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                      int64_t stride, int64_t pad, const float *Wm, float *prep) {
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_dx_prep(M, C, Wm, prep);
        return;
    }
    const int64_t run = KW * C, panels = gen_gemm_avx512_pack_b_floats(M, run);
    const int64_t T = KH * KW;
    const __mmask16 mt = lane_mask(T);
    for (int64_t kh = 0; kh < KH; kh++) { /* the last panel, for its columns past run */
        float *last = panel_at(prep + kh * panels, M, 0, run / GEN_GEMM_NR * GEN_GEMM_NR);
        memset(last, 0, (size_t)(prep + (kh + 1) * panels - last) * sizeof(float));
    }
    for (int64_t co = 0; co < M; co++)
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const int64_t n = C - c0 < 16 ? C - c0 : 16;
            __m512 r[16];
            load_transposed(Wm + (co * C + c0) * T, T, n, mt, r);
            float lane[16];
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++) {
                if (t >= T) continue;
                const int64_t col = t % KW * C + c0;
                float *bp = prep + t / KW * panels;
                if (col % GEN_GEMM_NR + n <= GEN_GEMM_NR) { /* within one panel (always, for C
                                                             * a multiple of 16) */
                    _mm512_mask_storeu_ps(panel_at(bp, M, co, col), lane_mask(n), r[t]);
                    continue;
                }
                _mm512_storeu_ps(lane, r[t]);
                for (int64_t j = 0; j < n; j++) *panel_at(bp, M, co, col + j) = lane[j];
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
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) /* 16 channels and more */
        return gen_wino_s2_dx_work(M, C, H, W, pad, m);
    if (!gen_nhwc_fits(C, KH, KW, stride)) return 0;
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    return dx_parts(&g, M, m).total;
}

void gen_nhwc_dx(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C,
                 int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                 int64_t m, int64_t img, float beta, float *dx, float *work) {
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_dx(M, prep, dy, dy_img, C, H, W, pad, m, img, beta, dx, work);
        return;
    }
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    const struct dx_parts p = dx_parts(&g, M, m);
    float *xq = work + p.xq, *mat = work + p.mat, *packed = work + p.packed;
    float **ptr = (float **)(void *)(work + p.ptr);
    const int64_t panels = gen_gemm_avx512_pack_b_floats(M, g.run);
    memset(xq, 0, (size_t)(m * g.img) * sizeof(float));
    gather_dy(&g, M, dy, dy_img, m, mat);
    gen_gemm_avx512_pack_a(GEN_TRANS, g.L, M, mat, g.L, packed);
    for (int64_t kh = 0; kh < KH; kh++) {
        run_starts(&g, C, kh, stride, xq, m, ptr);
        gen_gemm_avx512_rows(g.L, g.run, M, packed, prep + kh * panels, NULL, ptr, 1.0f, NULL, 0);
    }
    from_nhwc(&g, xq, m, C, H, W, pad, beta, dx, img);
}

void gen_nhwc_uncopy(int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m, const float *xq,
                     float beta, float *dx, int64_t img) {
    const struct nhwc g = nhwc_geo(C, H, W, 1, 1, 1, pad, m);
    from_nhwc(&g, xq, m, C, H, W, pad, beta, dx, img);
}

/* ---- the forward pass ------------------------------------------------- */

/* The direct forward: output channels in whole vectors, at most four
 * (above, each pass of two re-reads the inputs: the GAN's 64 -> 128
 * stride-2 convolution took 9.0-9.9 ms against the GEMM's 8.7-9.3). */
static int direct(int64_t M) {
    return M % 16 == 0 && M <= 64;
}

/* Wm (M x C KH KW) as (KH, KW, C, M) for the direct forward; else with
 * each row's taps first, (M, KH, KW, C), then packed as the GEMM's A
 * panels. */
int64_t gen_nhwc_conv_prep_work(int64_t M, int64_t C, int64_t KH, int64_t KW) {
    const int64_t K = C * KH * KW;
    if (direct(M)) return round16(M * K);
    return round16(M * K) + gen_gemm_avx512_pack_a_floats(M, K);
}

void gen_nhwc_conv_prep(int64_t M, int64_t C, int64_t KH, int64_t KW, const float *Wm,
                        float *prep) {
    const int64_t T = KH * KW, K = C * T;
    if (direct(M)) {
        for (int64_t co = 0; co < M; co++)
            for (int64_t ci = 0; ci < C; ci++)
                for (int64_t t = 0; t < T; t++)
                    prep[(t * C + ci) * M + co] = Wm[co * K + ci * T + t];
        return;
    }
    for (int64_t co = 0; co < M; co++)
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const int64_t n = C - c0 < 16 ? C - c0 : 16;
            __m512 r[16];
            load_transposed(Wm + (co * C + c0) * T, T, n, lane_mask(T), r);
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++)
                if (t < T) _mm512_mask_storeu_ps(prep + co * K + t * C + c0, lane_mask(n), r[t]);
        }
    gen_gemm_avx512_pack_a(GEN_NOTRANS, M, K, prep, K, prep + round16(M * K));
}

/* The parts of the forward's work: xq, B's packed panels, the product
 * (M x L), the run pointers. */
struct fwd_parts {
    int64_t xq, panels, prod, ptr, total;
};

static struct fwd_parts fwd_parts(const struct nhwc *g, int64_t M, int64_t K, int64_t m) {
    struct fwd_parts p = {.xq = 0};
    p.panels = p.xq + round16(m * g->img);
    p.prod = p.panels + round16(gen_gemm_avx512_pack_b_floats(K, g->L));
    p.ptr = p.prod + round16(M * g->L);
    p.total = p.ptr + round16(2 * g->L);
    return p;
}

int64_t gen_nhwc_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                           int64_t stride, int64_t pad, int64_t m) {
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    return direct(M) ? round16(m * g.img) : fwd_parts(&g, M, C * KH * KW, m).total;
}

/* The direct forward's tile: outputs (oh, ow0 .. ow0 + P - 1) of output
 * channels co0 .. co0 + 16 V - 1 (wd, bias and out start at co0; wd's
 * rows M apart), from the image's channels-last copy xi: out = beta out +
 * bias + the taps' sums, each a fixed sequence of FMAs over (kh, kw, ci).
 * The P x V accumulators stay in registers; the result leaves through
 * 16 x 16 transposes, a row of P outputs per channel. */
#define DIRECT_TILE(V, P)                                                                          \
    static void tile_##V##x##P(const struct nhwc *g, const float *xi, int64_t C, int64_t KH,       \
                               int64_t KW, int64_t s, const float *wd, int64_t M,                  \
                               const float *bias, int64_t oh, int64_t ow0, float beta, float *out, \
                               int64_t ldo) {                                                      \
        __m512 acc[P][V];                                                                          \
        for (int v = 0; v < V; v++) {                                                              \
            const __m512 b = bias ? _mm512_loadu_ps(bias + 16 * v) : _mm512_setzero_ps();          \
            for (int p = 0; p < P; p++) acc[p][v] = b;                                             \
        }                                                                                          \
        const int64_t ps = s * C; /* floats from one position's inputs to the next's */            \
        for (int64_t kh = 0; kh < KH; kh++)                                                        \
            for (int64_t kw = 0; kw < KW; kw++) {                                                  \
                const float *xr = xi + ((oh * s + kh) * g->Wp + ow0 * s + kw) * C;                 \
                const float *wt = wd + (kh * KW + kw) * C * M;                                     \
                for (int64_t ci = 0; ci < C; ci++) {                                               \
                    __m512 w[V];                                                                   \
                    for (int v = 0; v < V; v++) w[v] = _mm512_loadu_ps(wt + ci * M + 16 * v);      \
                    _Pragma("GCC unroll 16") for (int p = 0; p < P; p++) {                         \
                        const __m512 x = _mm512_set1_ps(xr[p * ps + ci]);                          \
                        for (int v = 0; v < V; v++)                                                \
                            acc[p][v] = _mm512_fmadd_ps(x, w[v], acc[p][v]);                       \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        const __mmask16 mp = lane_mask(P);                                                         \
        const __m512 vb = _mm512_set1_ps(beta);                                                    \
        for (int v = 0; v < V; v++) {                                                              \
            __m512 r[16];                                                                          \
            for (int p = 0; p < 16; p++) r[p] = p < P ? acc[p][v] : _mm512_setzero_ps();           \
            transpose16(r);                                                                        \
            for (int j = 0; j < 16; j++) {                                                         \
                float *o = out + (16 * v + j) * ldo + oh * g->OW + ow0;                            \
                const __m512 t =                                                                   \
                    beta != 0.0f ? _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mp, o), r[j]) : r[j]; \
                _mm512_mask_storeu_ps(o, mp, t);                                                   \
            }                                                                                      \
        }                                                                                          \
    }
/* 7 positions: 14 accumulators hide the FMAs' latency, and the weights,
 * the accumulators and the broadcast value all stay in registers (14
 * positions spilled); single positions for the rest of a row */
DIRECT_TILE(2, 7)
DIRECT_TILE(2, 1)
DIRECT_TILE(1, 7)
DIRECT_TILE(1, 1)
#undef DIRECT_TILE

typedef void (*direct_tile)(const struct nhwc *, const float *, int64_t, int64_t, int64_t, int64_t,
                            const float *, int64_t, const float *, int64_t, int64_t, float, float *,
                            int64_t);

/* The m images' outputs, 32 channels (or a last 16) at a time over all
 * the rows, so that their weights stay in L1. */
static void direct_conv(const struct nhwc *g, int64_t M, const float *wd, int64_t C, int64_t KH,
                        int64_t KW, int64_t s, int64_t m, const float *xq, const float *bias,
                        float beta, float *out, int64_t ldo, int64_t out_img) {
    static const direct_tile tiles[2][2] = {{tile_1x7, tile_1x1}, {tile_2x7, tile_2x1}};
    for (int64_t i = 0; i < m; i++)
        for (int64_t co = 0; co < M; co += 32) {
            const direct_tile *t = tiles[M - co >= 32];
            for (int64_t oh = 0; oh < g->OH; oh++)
                for (int64_t ow = 0; ow < g->OW;) {
                    const int whole = g->OW - ow >= 7;
                    t[!whole](g, xq + i * g->img, C, KH, KW, s, wd + co, M, bias ? bias + co : NULL,
                              oh, ow, beta, out + i * out_img + co * ldo, ldo);
                    ow += whole ? 7 : 1;
                }
        }
}

/* Kernel row kh's runs (ptr[l], run floats each) as rows k0 .. k0 + run of
 * the K-deep packed B panels: 16 positions by 16 floats transposed at a
 * time (zeros past the L positions, up to whole vectors). */
static void runs_to_panels(const struct nhwc *g, float *const *ptr, int64_t k0, int64_t K,
                           float *panels) {
    for (int64_t l0 = 0; l0 < g->L; l0 += 16) {
        const int64_t rows = g->L - l0 < 16 ? g->L - l0 : 16;
        for (int64_t k = 0; k < g->run; k += 16) {
            const __mmask16 mk = lane_mask(g->run - k);
            __m512 r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = j < rows ? _mm512_maskz_loadu_ps(mk, ptr[l0 + j] + k) : _mm512_setzero_ps();
            transpose16(r);
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++)
                if (k + t < g->run) _mm512_storeu_ps(panel_at(panels, K, k0 + k + t, l0), r[t]);
        }
    }
}

void gen_nhwc_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t KH,
                   int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                   const float *x, const float *bias, float beta, float *out, int64_t ldo,
                   int64_t out_img, float *work) {
    const struct nhwc g = nhwc_geo(C, H, W, KH, KW, stride, pad, m);
    const int64_t K = C * KH * KW;
    if (direct(M)) {
        to_nhwc(&g, x, img, m, C, H, W, pad, work);
        direct_conv(&g, M, prep, C, KH, KW, stride, m, work, bias, beta, out, ldo, out_img);
        return;
    }
    const struct fwd_parts p = fwd_parts(&g, M, K, m);
    float *xq = work + p.xq, *panels = work + p.panels, *prod = work + p.prod;
    float **ptr = (float **)(void *)(work + p.ptr);
    to_nhwc(&g, x, img, m, C, H, W, pad, xq);
    for (int64_t kh = 0; kh < KH; kh++) {
        run_starts(&g, C, kh, stride, xq, m, ptr);
        runs_to_panels(&g, ptr, kh * g.run, K, panels);
    }
    gen_sgemm_avx512_packed(M, g.L, K, prep + round16(M * K), panels, 0.0f, prod, g.L);
    /* out from the product: the wide grid's copy, on a grid without
     * garbage columns */
    struct gen_wide plain = gen_wide_geo(H, W, KH, KW, stride, pad);
    plain.Wq = g.OW, plain.tw = g.P;
    gen_wide_to_out(&plain, M, m, prod, g.L, bias, beta, out, ldo, out_img);
}
