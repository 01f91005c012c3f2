/* winograd_avx512.h - 3 x 3 stride-1 convolutions by Winograd's minimal
 * filtering F(2 x 2, 3 x 3) (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016): the transforms and the block
 * loops, shared by the fp32 products (winograd_avx512.c) and the bf16 ones
 * (winograd_avx512bf16.c), which differ in how they store and multiply the
 * transformed operands.
 *
 * A 2 x 2 block of outputs of a 3 x 3 correlation is read from a 4 x 4
 * input tile d as
 *
 *     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 *
 * (with (.) the element-wise product), 16 multiplications where the direct
 * form takes 36. Over C input and M output channels the 16 element-wise
 * products become 16 independent GEMMs, (M x C) by (C x tiles), so the
 * convolution runs on the packed GEMM at 4/9 of the direct arithmetic, plus
 * the transforms, which are additions on vectors of 16 tiles.
 *
 * The weight gradient of the same convolution is the transposed bilinear
 * form: for every tile, dW += G^T [ (A dy A^T) (.) (B^T d B) ] G, and since
 * it is linear in the tiles the sum over tiles (and images) happens inside
 * 16 GEMMs (M x tiles) by (tiles x C) before the one transform back.
 *
 * The input gradient of a stride-1 3 x 3 convolution is the convolution of
 * dy with the flipped kernel (ops_conv.c), so it comes here too.
 *
 * Tiles run row by row over an image's ceil(OH / 2) x ceil(OW / 2) grid;
 * a vector holds 16 neighbouring tiles of one tile row. A tile's 4 x 4
 * input starts at padded pixel (2 ty, 2 tx); its even and odd columns come
 * out of two or three 16-lane loads of the input row by one permutation
 * each, and masked loads read zeros outside the image, so the padding is
 * never written out. The last tile row or column of an odd output size is
 * half outside: its outputs there are dropped (forward) or its dy is zero
 * (weight gradient). */
#ifndef GEN_WINOGRAD_AVX512_H
#define GEN_WINOGRAD_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "gen/core.h"
#include "kernels/avx512_lanes.h"
#include "kernels/kernels_impl.h"

/* the 16 products, GEMM by GEMM */
#define XI 16

struct wino {
    int64_t OH, OW, TH, TW, T; /* output, tile grid, tiles per image */
};

static inline struct wino wino_geo(int64_t H, int64_t W, int64_t pad) {
    struct wino g = {.OH = H + 2 * pad - 2, .OW = W + 2 * pad - 2};
    g.TH = (g.OH + 1) / 2, g.TW = (g.OW + 1) / 2, g.T = g.TH * g.TW;
    return g;
}

static inline int64_t round16(int64_t n) {
    return (n + 15) / 16 * 16;
}

static const int32_t even_idx[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int32_t odd_idx[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};

/* A tile row's view of an input row: the row's lanes from c0 on, 48 of
 * them in three vectors, with the masks that keep [0, n) of the row. */
struct window {
    int64_t c0;
    __mmask16 m[3];
};

static inline struct window window_at(int64_t n, int64_t c0) {
    struct window w = {.c0 = c0};
    for (int q = 0; q < 3; q++) w.m[q] = lanes(-(c0 + 16 * q), n - (c0 + 16 * q));
    return w;
}

/* The row half of B^T d B for one input row (w = d B, B^T = [1 0 -1 0;
 * 0 1 1 0; 0 -1 1 0; 0 1 0 -1]), 16 tiles at once: tile l's window is
 * row columns c0 + 2 l + {0, 1, 2, 3}, split into even and odd columns by
 * one permutation each. row NULL: a row of padding. */
static inline __attribute__((always_inline)) void row_transform(const float *row,
                                                                const struct window *win,
                                                                __m512i ev, __m512i od,
                                                                __m512 w[4]) {
    if (!row) {
        w[0] = w[1] = w[2] = w[3] = _mm512_setzero_ps();
        return;
    }
    const float *p = row + win->c0;
    const __m512 v0 = _mm512_maskz_loadu_ps(win->m[0], p),
                 v1 = _mm512_maskz_loadu_ps(win->m[1], p + 16),
                 v2 = win->m[2] ? _mm512_maskz_loadu_ps(win->m[2], p + 32) : _mm512_setzero_ps();
    const __m512 a0 = _mm512_castsi512_ps(
                     _mm512_alignr_epi32(_mm512_castps_si512(v1), _mm512_castps_si512(v0), 2)),
                 a1 = _mm512_castsi512_ps(
                     _mm512_alignr_epi32(_mm512_castps_si512(v2), _mm512_castps_si512(v1), 2));
    const __m512 d0 = _mm512_permutex2var_ps(v0, ev, v1), d1 = _mm512_permutex2var_ps(v0, od, v1),
                 d2 = _mm512_permutex2var_ps(a0, ev, a1), d3 = _mm512_permutex2var_ps(a0, od, a1);
    w[0] = _mm512_sub_ps(d0, d2);
    w[1] = _mm512_add_ps(d1, d2);
    w[2] = _mm512_sub_ps(d2, d1);
    w[3] = _mm512_sub_ps(d1, d3);
}

/* Where the transforms put a GEMM operand, a K x n matrix per xi: plain
 * (rows kstep apart) or, for the A B products, as the GEMM's packed B panels
 * (gemm_blocked's bfull: 48-column panels K NR apart, row k of one at k
 * NR), so that B is never packed. Row k of 16 tiles from column t0 goes
 * to mat + k kstep + off[j] under mask m[j]: a run that crosses into the
 * next panel is stored twice, each store keeping its own lanes, the
 * second from before the panel's row, at a lane it does not write. */
struct dest {
    int64_t off[2], t0;
    __mmask16 m[2];
};

static inline struct dest dest_at(int panels, int64_t K, int64_t t0, __mmask16 mk) {
    struct dest d = {{t0, 0}, t0, {mk, 0}};
    if (!panels) return d;
    const int64_t q = t0 / GEN_GEMM_NR, off = t0 % GEN_GEMM_NR, first = GEN_GEMM_NR - off;
    d.off[0] = q * K * GEN_GEMM_NR + off;
    if (first < 16) {
        d.m[0] = mk & lanes(0, first);
        d.off[1] = (q + 1) * K * GEN_GEMM_NR - first, d.m[1] = mk & lanes(first, 16);
    }
    return d;
}

static inline void store_dest(float *p, const struct dest *d, __m512 v) {
    _mm512_mask_storeu_ps(p + d->off[0], d->m[0], v);
    if (d->m[1]) _mm512_mask_storeu_ps(p + d->off[1], d->m[1], v);
}

/* Tile rows a vector of 16 tiles holds: rows of at most 5 tiles (images
 * of 10 pixels a side or fewer) are stacked, 16 / TW of them, each its
 * own run of lanes, so that narrow images do not leave most lanes of
 * every load, transform and store empty. (At 7 tiles, two rows a vector
 * measured no faster: stacking gives up sharing an input row's half
 * transform between the two tile rows that read it.) */
static inline int64_t stack(const struct wino *g) {
    return g->TW <= 5 ? 16 / g->TW : 1;
}

/* Fetches the input rows that tile rows [r0, r1) read from the planes
 * at `plane` (image i's at plane + i img), so that the next channel's
 * transform does not wait on memory: its short runs of rows, a plane
 * apart, are too short for the hardware prefetcher. */
static inline void prefetch_rows(const float *plane, int64_t img, int64_t H, int64_t W, int64_t pad,
                          const struct wino *g, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1;) {
        const int64_t i = r / g->TH, ty0 = r % g->TH;
        const int64_t ty1 = (i + 1) * g->TH < r1 ? g->TH : r1 - i * g->TH; /* this image's end */
        int64_t lo = 2 * ty0 - pad, hi = 2 * ty1 - pad + 2;
        lo = lo < 0 ? 0 : lo, hi = hi > H ? H : hi;
        const float *p = plane + i * img;
        for (int64_t f = lo * W; f < hi * W; f += 16)
            _mm_prefetch((const char *)(p + f), _MM_HINT_T0);
        r = i * g->TH + ty1;
    }
}

/* The 16 outputs of B^T d B, v[xi], from the half transforms w[k] of the
 * tile's four input rows. */
static inline __attribute__((always_inline)) void tile_outputs(const __m512 w0[4],
                                                               const __m512 w1[4],
                                                               const __m512 w2[4],
                                                               const __m512 w3[4], __m512 v[XI]) {
    #pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        v[0 + q] = _mm512_sub_ps(w0[q], w2[q]);
        v[4 + q] = _mm512_add_ps(w1[q], w2[q]);
        v[8 + q] = _mm512_sub_ps(w2[q], w1[q]);
        v[12 + q] = _mm512_sub_ps(w1[q], w3[q]);
    }
}

/* Where the input transform puts row c of its 16 matrices for the tiles
 * of a dest: as floats (put_floats: matrix xi at V + xi vstep, row c at
 * + c kstep), or as bf16 pairs of channels (winograd_avx512bf16.c: an
 * even channel's rows wait in S, xi apart by sstep, for the odd one's). */
struct sink {
    float *V, *S;
    int64_t vstep, kstep, sstep, C;
};
typedef void (*put_fn)(const struct sink *s, int64_t c, const struct dest *d, const __m512 v[XI]);

static inline __attribute__((always_inline)) void put_floats(const struct sink *s, int64_t c,
                                                             const struct dest *dp,
                                                             const __m512 v[XI]) {
    const struct dest dl = *dp, *d = &dl; /* in registers, not reread after every store */
    float *vc = s->V + c * s->kstep;
    #pragma GCC unroll 16
    for (int xi = 0; xi < XI; xi++) store_dest(vc + xi * s->vstep, d, v[xi]);
}

/* input_transform for stacked tile rows: tile row s of a vector takes
 * lanes [s TW, (s+1) TW), read through a window shifted 2 s TW columns
 * left and kept by a blend. */
static inline __attribute__((always_inline)) void
input_stacked(const float *x, int64_t img, int64_t C, int64_t H, int64_t W, int64_t pad,
              const struct wino *g, int64_t r0, int64_t r1, const struct sink *sk, put_fn put,
              const struct dest *dst) {
    const __m512i ev = _mm512_loadu_si512(even_idx), od = _mm512_loadu_si512(odd_idx);
    const int64_t R = stack(g);
    struct window win[16];
    for (int64_t j = 0; j < R; j++) win[j] = window_at(W, -pad - 2 * j * g->TW);
    for (int64_t c = 0; c < C; c++) {
        if (c + 1 < C) prefetch_rows(x + (c + 1) * H * W, img, H, W, pad, g, r0, r1);
        const struct dest *d = dst;
        for (int64_t r = r0; r < r1; r += R, d++) {
            const int64_t rows = r1 - r < R ? r1 - r : R;
            __m512 w[4][4];
            #pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                #pragma GCC unroll 4
                for (int q = 0; q < 4; q++) w[k][q] = _mm512_setzero_ps();
            for (int64_t j = 0; j < rows; j++) {
                const int64_t i = (r + j) / g->TH, ty = (r + j) % g->TH, ih = 2 * ty - pad;
                const float *plane = x + i * img + c * H * W;
                const __mmask16 sm = lanes(j * g->TW, (j + 1) * g->TW);
                #pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    if (ih + k < 0 || ih + k >= H) continue; /* padding: zeros already */
                    __m512 t[4];
                    row_transform(plane + (ih + k) * W, &win[j], ev, od, t);
                    #pragma GCC unroll 4
                    for (int q = 0; q < 4; q++) w[k][q] = _mm512_mask_mov_ps(w[k][q], sm, t[q]);
                }
            }
            __m512 v[XI];
            tile_outputs(w[0], w[1], w[2], w[3], v);
            put(sk, c, d, v);
        }
    }
}

/* V[xi] (C x n, n the tiles of tile rows [r0, r1); row r: image r / TH,
 * tile row r % TH, from column (r - r0) TW) = (B^T d B)[xi], row c of the
 * 16 matrices put by `put` into sk, the tiles' places from dst (one per
 * tile row and 16 tiles of it), channel by channel. Each input row's half
 * transform serves the two tile rows that read it. */
static inline __attribute__((always_inline)) void
input_transform(const float *x, int64_t img, int64_t C, int64_t H, int64_t W, int64_t pad,
                const struct wino *g, int64_t r0, int64_t r1, const struct sink *sk, put_fn put,
                const struct dest *dst) {
    const __m512i ev = _mm512_loadu_si512(even_idx), od = _mm512_loadu_si512(odd_idx);
    const int64_t nv = (g->TW + 15) / 16, R = stack(g);
    if (R > 1) {
        input_stacked(x, img, C, H, W, pad, g, r0, r1, sk, put, dst);
        return;
    }
    for (int64_t c = 0; c < C; c++) {
        if (c + 1 < C) prefetch_rows(x + (c + 1) * H * W, img, H, W, pad, g, r0, r1);
        for (int64_t v = 0; v < nv; v++) {
            const struct window win = window_at(W, 32 * v - pad);
            __m512 w0[4], w1[4], w2[4] = {0}, w3[4] = {0}; /* the first tile row sets all */
            for (int64_t r = r0; r < r1; r++) {
                const int64_t i = r / g->TH, ty = r % g->TH, ih = 2 * ty - pad;
                const float *plane = x + i * img + c * H * W;
#define ROW(k) (ih + (k) >= 0 && ih + (k) < H ? plane + (ih + (k)) * W : NULL)
                if (r == r0 || ty == 0) {
                    row_transform(ROW(0), &win, ev, od, w0);
                    row_transform(ROW(1), &win, ev, od, w1);
                } else {
                    w0[0] = w2[0], w0[1] = w2[1], w0[2] = w2[2], w0[3] = w2[3];
                    w1[0] = w3[0], w1[1] = w3[1], w1[2] = w3[2], w1[3] = w3[3];
                }
                row_transform(ROW(2), &win, ev, od, w2);
                row_transform(ROW(3), &win, ev, od, w3);
#undef ROW
                __m512 o[XI];
                tile_outputs(w0, w1, w2, w3, o);
                put(sk, c, dst + (r - r0) * nv + v, o);
            }
        }
    }
}

/* The places of the vectors of tile rows [r0, r1) (dest_at): runs of 16
 * tiles of a row, or `stack` whole rows at a time. */
static inline void fill_dest(const struct wino *g, int64_t r0, int64_t r1, int panels, int64_t K,
                      struct dest *dst) {
    const int64_t R = stack(g), nv = R > 1 ? 1 : (g->TW + 15) / 16;
    for (int64_t r = r0; r < r1; r += R) {
        const int64_t rows = r1 - r < R ? r1 - r : R;
        for (int64_t v = 0; v < nv; v++)
            *dst++ = dest_at(panels, K, (r - r0) * g->TW + 16 * v,
                             lanes(0, R > 1 ? rows * g->TW : g->TW - 16 * v));
    }
}

/* Lane l's offset among 16 consecutive 3 x 3 kernels: 9 l. */
static inline __m512i kernel_offsets(void) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    return _mm512_mullo_epi32(lane, _mm512_set1_epi32(9));
}

/* U[xi][co][ci] = (G g G^T)[xi] for the M x C kernels g (Wm, M x C 9),
 * 16 input channels at a time, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2;
 * 0 0 1]; U's GEMMs are M x C, xi apart by gen_wino_spread(M C) floats. */
static inline void weight_transform(int64_t M, int64_t C, const float *Wm, float *U) {
    const int64_t ustep = gen_wino_spread(M * C);
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512i nine = kernel_offsets();
    GEN_KFOR(GEN_KPAR_ROWS(M, M * C * 16), co, M,
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const __mmask16 mk = lanes(0, C - c0);
            const float *k = Wm + (co * C + c0) * 9;
            __m512 t[4][3];
            const __m512 z = _mm512_setzero_ps();
            for (int v = 0; v < 3; v++) {
                const __m512 k0 = _mm512_mask_i32gather_ps(z, mk, nine, k + v, 4),
                             k1 = _mm512_mask_i32gather_ps(z, mk, nine, k + 3 + v, 4),
                             k2 = _mm512_mask_i32gather_ps(z, mk, nine, k + 6 + v, 4);
                const __m512 s02 = _mm512_add_ps(k0, k2);
                t[0][v] = k0;
                t[1][v] = _mm512_mul_ps(half, _mm512_add_ps(s02, k1));
                t[2][v] = _mm512_mul_ps(half, _mm512_sub_ps(s02, k1));
                t[3][v] = k2;
            }
            float *dst = U + co * C + c0;
            for (int r = 0; r < 4; r++) {
                const __m512 s02 = _mm512_add_ps(t[r][0], t[r][2]);
                _mm512_mask_storeu_ps(dst + (r * 4 + 0) * ustep, mk, t[r][0]);
                _mm512_mask_storeu_ps(dst + (r * 4 + 1) * ustep, mk,
                                      _mm512_mul_ps(half, _mm512_add_ps(s02, t[r][1])));
                _mm512_mask_storeu_ps(dst + (r * 4 + 2) * ustep, mk,
                                      _mm512_mul_ps(half, _mm512_sub_ps(s02, t[r][1])));
                _mm512_mask_storeu_ps(dst + (r * 4 + 3) * ustep, mk, t[r][2]);
            }
        });
}

/* Even and odd lanes of 32 -> two vectors interleaved: lanes 0..15 of
 * (a0 b0 a1 b1 ...) into lo, 16..31 into hi. */
static inline void interleave(__m512 a, __m512 b, __m512 *lo, __m512 *hi) {
    const __m512i il = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i ih =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    *lo = _mm512_permutex2var_ps(a, il, b);
    *hi = _mm512_permutex2var_ps(a, ih, b);
}

/* Column q of the 4 x 4 products for 16 tiles or kernels: matrices q, 4 +
 * q, 8 + q, 12 + q of a transform's 16, `step` floats apart, at src. */
static inline void load_column(const float *src, int64_t step, int q, __mmask16 mk, __m512 c[4]) {
    #pragma GCC unroll 4
    for (int j = 0; j < 4; j++) c[j] = _mm512_maskz_loadu_ps(mk, src + (4 * j + q) * step);
}

/* Tile rows per block: the 16 transformed blocks of input and output (16
 * (C + M) floats a tile) stay within about BLOCK_FLOATS, near L2; among
 * the row counts that fit, the one whose tiles fill the micro-kernel's
 * 16-column vectors best (the larger on ties). */
#define BLOCK_FLOATS (192 * 1024)

static inline int64_t block_rows(const struct wino *g, int64_t m, int64_t C, int64_t M) {
    int64_t rmax = BLOCK_FLOATS / (XI * (C + M)) / g->TW;
    if (rmax < 1) rmax = 1;
    if (rmax > m * g->TH) rmax = m * g->TH;
    int64_t best = 1;
    double best_fill = 0;
    for (int64_t r = 1; r <= rmax; r++) {
        const double fill = (double)(r * g->TW) / (double)round16(r * g->TW);
        if (fill >= best_fill) best = r, best_fill = fill;
    }
    return best;
}

/* out[i out_img + co ldo + (2 ty + a) OW + 2 tx + b] = (A^T Mo A)[a][b] +
 * bias[co] + beta out for the tiles of tile rows [r0, r1), Mo's GEMMs M x
 * ldm, xi apart by step floats. A^T = [1 1 1 0; 0 1 -1 -1]. */
static inline void output_transform(const struct wino *g, int64_t M, int64_t r0, int64_t r1,
                             const float *Mo, int64_t step, int64_t ldm, const float *bias,
                             float beta, float *out, int64_t ldo, int64_t out_img) {
    const int64_t R = stack(g);
    const __m512 vb = _mm512_set1_ps(beta);
    for (int64_t co = 0; co < M; co++) {
        /* the next channel's output rows, which the stores would otherwise wait for */
        if (co + 1 < M) prefetch_rows(out + (co + 1) * ldo, out_img, g->OH, g->OW, 0, g, r0, r1);
        const __m512 bc = _mm512_set1_ps(bias ? bias[co] : 0.0f);
        for (int64_t r = r0; r < r1; r += R) {
            const int64_t rows = r1 - r < R ? r1 - r : R;
            for (int64_t tx0 = 0; tx0 < g->TW; tx0 += 16) {
                const __mmask16 mk = lanes(0, R > 1 ? rows * g->TW : g->TW - tx0);
                const float *src = Mo + co * ldm + (r - r0) * g->TW + tx0;
                __m512 s[2][4];
                #pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    __m512 c[4];
                    load_column(src, step, q, mk, c);
                    s[0][q] = _mm512_add_ps(_mm512_add_ps(c[0], c[1]), c[2]);
                    s[1][q] = _mm512_sub_ps(_mm512_sub_ps(c[1], c[2]), c[3]);
                }
                #pragma GCC unroll 4
                for (int a = 0; a < 2; a++) {
                    const __m512 y0 = _mm512_add_ps(
                                     _mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]), bc),
                                 y1 = _mm512_add_ps(
                                     _mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3]), bc);
                    __m512 lo, hi;
                    interleave(y0, y1, &lo, &hi);
                    /* tile row j of the vector: its outputs are lanes [e0, e1) of lo:hi */
                    for (int64_t j = 0; j < rows; j++) {
                        const int64_t i = (r + j) / g->TH, oh = 2 * ((r + j) % g->TH) + a;
                        if (oh >= g->OH) continue;
                        const int64_t e0 = 2 * j * g->TW, e1 = e0 + g->OW - 2 * tx0;
                        float *dst = out + co * ldo + i * out_img + oh * g->OW + 2 * tx0 - e0;
                        const __mmask16 m0 = lanes(e0, e1), m1 = lanes(e0 - 16, e1 - 16);
                        __m512 l = lo, h = hi;
                        if (beta != 0.0f) {
                            l = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, dst), l);
                            h = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, dst + 16), h);
                        }
                        _mm512_mask_storeu_ps(dst, m0, l);
                        _mm512_mask_storeu_ps(dst + 16, m1, h);
                    }
                }
            }
        }
    }
}

/* A block's V as the GEMM's packed B panels: 16 of C x nb, whole panels. */
static inline int64_t panel_floats(int64_t C, int64_t nb) {
    return (nb + GEN_GEMM_NR - 1) / GEN_GEMM_NR * GEN_GEMM_NR * C;
}

/* Floats of a block's table of dests, rows tile rows. */
static inline int64_t dest_floats(const struct wino *g, int64_t rows) {
    return round16(rows * ((g->TW + 15) / 16) * (int64_t)(sizeof(struct dest) / sizeof(float) + 1));
}

/* D[xi][co][(r - r0) TW + tx] = (A dy A^T)[xi] for the tiles of tile rows
 * [r0, r1) of dy (M planes of OH x OW, images dy_img floats apart), zero
 * past the output's edge; D's GEMMs M x ldd. A = [1 0; 1 1; 1 -1; 0 -1]. */
static inline void dy_transform(const float *dy, int64_t dy_img, int64_t M, const struct wino *g,
                         int64_t r0, int64_t r1, float *D, int64_t step, int64_t ldd) {
    const __m512i ev = _mm512_loadu_si512(even_idx), od = _mm512_loadu_si512(odd_idx);
    const int64_t P = g->OH * g->OW, R = stack(g);
    for (int64_t co = 0; co < M; co++) {
        /* dy's planes are OH x OW: the rows of tile rows r0.. with no padding */
        if (co + 1 < M) prefetch_rows(dy + (co + 1) * P, dy_img, g->OH, g->OW, 0, g, r0, r1);
        for (int64_t r = r0; r < r1; r += R) {
            const int64_t rows = r1 - r < R ? r1 - r : R;
            for (int64_t tx0 = 0; tx0 < g->TW; tx0 += 16) {
                __m512 u[2][4];
                #pragma GCC unroll 4
                for (int a = 0; a < 2; a++)
                    for (int q = 0; q < 4; q++) u[a][q] = _mm512_setzero_ps();
                /* tile row j of the vector: lanes [j TW, (j+1) TW), read from its
                 * dy rows shifted 2 j TW columns left */
                for (int64_t j = 0; j < rows; j++) {
                    const int64_t i = (r + j) / g->TH, ty = (r + j) % g->TH;
                    const __mmask16 sm = R > 1 ? lanes(j * g->TW, (j + 1) * g->TW) : 0xFFFF;
                    const int64_t e0 = 2 * j * g->TW, e1 = e0 + g->OW - 2 * tx0;
                    #pragma GCC unroll 4
                    for (int a = 0; a < 2; a++) {
                        const int64_t oh = 2 * ty + a;
                        if (oh >= g->OH) continue; /* past the edge: zeros */
                        const float *p = dy + i * dy_img + co * P + oh * g->OW + 2 * tx0 - e0;
                        const __m512 v0 = _mm512_maskz_loadu_ps(lanes(e0, e1), p),
                                     v1 = _mm512_maskz_loadu_ps(lanes(e0 - 16, e1 - 16), p + 16);
                        const __m512 e = _mm512_permutex2var_ps(v0, ev, v1),
                                     o = _mm512_permutex2var_ps(v0, od, v1);
                        u[a][0] = _mm512_mask_mov_ps(u[a][0], sm, e);
                        u[a][1] = _mm512_mask_mov_ps(u[a][1], sm, _mm512_add_ps(e, o));
                        u[a][2] = _mm512_mask_mov_ps(u[a][2], sm, _mm512_sub_ps(e, o));
                        u[a][3] = _mm512_mask_mov_ps(u[a][3], sm,
                                                     _mm512_sub_ps(_mm512_setzero_ps(), o));
                    }
                }
                const __mmask16 mk = lanes(0, R > 1 ? rows * g->TW : g->TW - tx0);
                float *dst = D + co * ldd + (r - r0) * g->TW + tx0;
                #pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    _mm512_mask_storeu_ps(dst + (0 * 4 + q) * step, mk, u[0][q]);
                    _mm512_mask_storeu_ps(dst + (1 * 4 + q) * step, mk,
                                          _mm512_add_ps(u[0][q], u[1][q]));
                    _mm512_mask_storeu_ps(dst + (2 * 4 + q) * step, mk,
                                          _mm512_sub_ps(u[0][q], u[1][q]));
                    _mm512_mask_storeu_ps(dst + (3 * 4 + q) * step, mk,
                                          _mm512_sub_ps(_mm512_setzero_ps(), u[1][q]));
                }
            }
        }
    }
}

/* dw[co, ci 9 + 3 u + v] = (G^T Mo G)[u][v], Mo's GEMMs M x C (xi apart by
 * step floats), 16 input channels at a time. G^T = [1 1/2 1/2 0; 0 1/2
 * -1/2 0; 0 1/2 1/2 1]. */
static inline void dw_transform(int64_t M, int64_t C, const float *Mo, int64_t step, float *dw) {
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512i nine = kernel_offsets();
    for (int64_t co = 0; co < M; co++)
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            const __mmask16 mk = lanes(0, C - c0);
            const float *src = Mo + co * C + c0;
            __m512 r[3][4];
            #pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                __m512 c[4];
                load_column(src, step, q, mk, c);
                const __m512 p = _mm512_mul_ps(half, _mm512_add_ps(c[1], c[2]));
                r[0][q] = _mm512_add_ps(c[0], p);
                r[1][q] = _mm512_mul_ps(half, _mm512_sub_ps(c[1], c[2]));
                r[2][q] = _mm512_add_ps(p, c[3]);
            }
            float *dst = dw + co * C * 9 + c0 * 9;
            for (int u = 0; u < 3; u++) {
                const __m512 p = _mm512_mul_ps(half, _mm512_add_ps(r[u][1], r[u][2]));
                const __m512 v0 = _mm512_add_ps(r[u][0], p),
                             v1 = _mm512_mul_ps(half, _mm512_sub_ps(r[u][1], r[u][2])),
                             v2 = _mm512_add_ps(p, r[u][3]);
                _mm512_mask_i32scatter_ps(dst + 3 * u + 0, mk, nine, v0, 4);
                _mm512_mask_i32scatter_ps(dst + 3 * u + 1, mk, nine, v1, 4);
                _mm512_mask_i32scatter_ps(dst + 3 * u + 2, mk, nine, v2, 4);
            }
        }
}


/* ---- the passes, the products left to the precision --------------------- */

/* One GEMM's A operand (M x C, row stride C) packed into ap, as the
 * precision's micro-kernel reads it. */
typedef void (*pack_fn)(int64_t M, int64_t C, const float *A, float *ap);

static inline int64_t wino_prep_floats(int64_t M, int64_t C, int64_t pa) {
    return round16(XI * pa) + XI * gen_wino_spread(M * C);
}

/* The 16 transformed kernels, each packed once (pa floats apart) as the A
 * operand of its GEMM (the transform itself goes through the tail of
 * prep); across the threads, as ops_conv calls it before its chunk loop. */
static inline void wino_prep(int64_t M, int64_t C, const float *Wm, float *prep, int64_t pa,
                             pack_fn pack) {
    float *U = prep + round16(XI * pa);
    weight_transform(M, C, Wm, U);
    GEN_KFOR(GEN_KPAR_ROWS(XI, XI * M * C), xi, XI,
             pack(M, C, U + xi * gen_wino_spread(M * C), prep + xi * pa));
}

/* The forward pass's work: V as panels `depth` rows deep (C floats, or
 * ceil(C / 2) pairs), Mo, the dests, and, for pairs (depth < C), the rows
 * of the even channels waiting for the odd ones. */
static inline int64_t wino_conv_floats(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                                       int64_t m, int64_t depth) {
    const struct wino g = wino_geo(H, W, pad);
    const int64_t rows = block_rows(&g, m, C, M), nb = rows * g.TW;
    return XI * gen_wino_spread(panel_floats(depth, nb)) + XI * gen_wino_spread(M * nb) +
           dest_floats(&g, rows) + (depth < C ? XI * gen_wino_spread(nb) : 0);
}

/* Mo (M x n, row stride n) = the packed kernels ap (depth deep) times the
 * packed panels v. */
typedef void (*product_fn)(int64_t M, int64_t n, int64_t depth, const float *ap, const float *v,
                           float *mo);

/* The forward pass (gen_wino_conv), block by block of tile rows: V put by
 * `put` as panels `depth` rows deep, the 16 products, the output
 * transform. prep as wino_prep left it, its packed kernels pa floats
 * apart. */
static inline __attribute__((always_inline)) void
wino_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m,
          int64_t img, const float *x, const float *bias, float beta, float *out, int64_t ldo,
          int64_t out_img, float *work, int64_t depth, int64_t pa, put_fn put,
          product_fn product) {
    const struct wino g = wino_geo(H, W, pad);
    const int64_t rows = block_rows(&g, m, C, M), nb = rows * g.TW;
    const int64_t vstep = gen_wino_spread(panel_floats(depth, nb)),
                  mstep = gen_wino_spread(M * nb);
    float *V = work, *Mo = V + XI * vstep;
    struct dest *dst = (struct dest *)(void *)(Mo + XI * mstep);
    const struct sink sk = {.V = V, .S = (float *)(void *)dst + dest_floats(&g, rows),
                            .vstep = vstep, .kstep = GEN_GEMM_NR, .sstep = gen_wino_spread(nb),
                            .C = C};
    for (int64_t r0 = 0; r0 < m * g.TH; r0 += rows) {
        const int64_t r1 = r0 + rows < m * g.TH ? r0 + rows : m * g.TH, n = (r1 - r0) * g.TW;
        fill_dest(&g, r0, r1, 1, depth, dst);
        input_transform(x, img, C, H, W, pad, &g, r0, r1, &sk, put, dst);
        if (n % 16) { /* the last panel's columns that the micro-kernel reads past n */
            const struct dest z = dest_at(1, depth, n, lanes(0, 16 - n % 16));
            for (int xi = 0; xi < XI; xi++)
                for (int64_t k = 0; k < depth; k++)
                    store_dest(V + xi * vstep + k * GEN_GEMM_NR, &z, _mm512_setzero_ps());
        }
        for (int xi = 0; xi < XI; xi++)
            product(M, n, depth, prep + xi * pa, V + xi * vstep, Mo + xi * mstep);
        output_transform(&g, M, r0, r1, Mo, mstep, n, bias, beta, out, ldo, out_img);
    }
}

static inline int64_t wino_dw_floats(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                                     int64_t m) {
    const struct wino g = wino_geo(H, W, pad);
    const int64_t nb = block_rows(&g, m, C, M) * g.TW;
    return XI * gen_wino_spread(C * nb) + XI * gen_wino_spread(M * nb) +
           XI * gen_wino_spread(M * C) + dest_floats(&g, nb / g.TW);
}

/* mo (M x C) = d (M x n) v^T (v: C x n) + beta mo, both rows n apart. */
typedef void (*dw_product_fn)(int64_t M, int64_t C, int64_t n, const float *d, const float *v,
                              float beta, float *mo);

/* The weight gradient (gen_wino_dw): block by block of tile rows, the 16
 * products add the block's tiles into Mo, which the last transform turns
 * into dw. */
static inline void wino_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H,
                           int64_t W, int64_t pad, int64_t m, int64_t img, const float *x,
                           float *dw, float *work, dw_product_fn product) {
    const struct wino g = wino_geo(H, W, pad);
    const int64_t rows = block_rows(&g, m, C, M);
    const int64_t vstep = gen_wino_spread(C * rows * g.TW),
                  dstep = gen_wino_spread(M * rows * g.TW), ostep = gen_wino_spread(M * C);
    float *V = work, *D = V + XI * vstep, *Mo = D + XI * dstep;
    struct dest *dst = (struct dest *)(void *)(Mo + XI * ostep);
    for (int64_t r0 = 0; r0 < m * g.TH; r0 += rows) {
        const int64_t r1 = r0 + rows < m * g.TH ? r0 + rows : m * g.TH, n = (r1 - r0) * g.TW;
        const struct sink sk = {.V = V, .vstep = vstep, .kstep = n, .C = C};
        fill_dest(&g, r0, r1, 0, C, dst);
        input_transform(x, img, C, H, W, pad, &g, r0, r1, &sk, put_floats, dst);
        dy_transform(dy, dy_img, M, &g, r0, r1, D, dstep, n);
        for (int xi = 0; xi < XI; xi++)
            product(M, C, n, D + xi * dstep, V + xi * vstep, r0 == 0 ? 0.0f : 1.0f,
                    Mo + xi * ostep);
    }
    dw_transform(M, C, Mo, ostep, dw);
}

#endif
