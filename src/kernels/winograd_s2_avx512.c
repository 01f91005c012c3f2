/* winograd_s2_avx512.c - the forward pass of 4 x 4 stride-2 convolutions
 * (and so the input gradient of the transposed ones) by Winograd's
 * F(4 x 4, 2 x 2) over the input's four stride phases, in fp32.
 *
 * Split into its phases, the zero-padded input xp gives four planes X_ab
 * (u, v) = xp(2u + a, 2v + b), a, b in {0, 1}, and the convolution
 *
 *   y(oh, ow) = sum_c sum_(kh, kw) w(c, kh, kw) xp(2 oh + kh, 2 ow + kw)
 *
 * is, with kh = 2u + a and kw = 2v + b, a 2 x 2 stride-1 convolution over
 * 4 C channels c' = (a, b, c): y(oh, ow) = sum_c' sum_(u, v) w_c'(u, v)
 * X_c'(oh + u, ow + v). F(4 x 4, 2 x 2) computes a 4 x 4 block of it from
 * a 5 x 5 tile of the phase planes in 25 products a channel where the
 * direct sum takes 64; on the GAN discriminator's 7 x 7 outputs (2 x 2
 * tiles cover 8 x 8) 0.51 of the direct products. With the points 0, 1,
 * -1, 2 and infinity,
 *
 *   B^T = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1]
 *   G   = [1/2 0; -1/2 -1/2; -1/6 1/6; 1/6 1/3; 0 1]
 *   A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1]
 *
 * and Y = A^T [ (G g G^T) (.) (B^T d B) ] A. Its fp32 error is about 2e-6
 * of the outputs' rms (a numpy model over 256 channels), 7 times the
 * direct sum's.
 *
 * Layout: the images are copied channels-last (gen_nhwc_copy), so that a
 * vector holds 16 channels of one phase position and both transforms run
 * 16 channels (input) or 16 output channels (output) to a vector. The 25
 * transformed inputs V_xi are (tiles x 4 C) matrices and each of the 25
 * products Y_xi (tiles x M) = V_xi U_xi reads V_xi's rows in place against
 * the transformed kernels U_xi (4 C x M), packed as the GEMM's B panels
 * once per convolution (gen_wino_s2_prep).
 *
 * The input gradient is the same kind of product the other way round.
 * Phase (a, b) of the padded dx is dX_ab(R, S) = sum_m sum_(u, v) w(m, c,
 * 2 u + a, 2 v + b) dy(m, R - u, S - v): with dy padded by one on each
 * side (dyp(r, s) = dy(r - 1, s - 1)) a 2 x 2 stride-1 correlation of dyp
 * over its M channels with the flipped kernels w(m, c, 2 (1 - u) + a, 2 (1
 * - v) + b), into 4 C output channels c' on the phase grid. The phase
 * grid's 4 x 4 tiles cover every padded position (on 14 x 14, pad 1: 8 x
 * 8 phases, 2 x 2 tiles), so each of dx's positions is written once,
 * channels-last, by the output transform, and copied back to (C, H, W)
 * at the end (gen_nhwc_uncopy).
 *
 * The weight gradient follows the forward pass back: dU_xi = V_xi^T D_xi
 * over the chunk's tiles, with D = A dY A^T the tiles' output gradients
 * taken to the 5 x 5 points (A = (A^T)^T), then dw = G^T dU G for each
 * phase's 2 x 2 taps, 16 output channels a vector, turned into each
 * kernel's 16 taps by a transpose. */
#include <string.h>

#include "kernels/avx512_lanes.h"
#include "kernels/kernels_impl.h"

#define XI 25 /* transformed positions, 5 x 5 */

static int64_t round16(int64_t n) {
    return (n + 15) / 16 * 16;
}

/* The geometry: padded input Hp x Wp, output OH x OW and the forward
 * pass's tile grid TH x TW over it; the input gradient's tile grid RH x
 * RW over the phase planes (ceil(Hp / 2) x ceil(Wp / 2)). */
struct s2geo {
    int64_t Hp, Wp, OH, OW, TH, TW, RH, RW;
};

static struct s2geo s2geo(int64_t H, int64_t W, int64_t pad) {
    struct s2geo g = {.Hp = H + 2 * pad, .Wp = W + 2 * pad};
    g.OH = (g.Hp - 4) / 2 + 1, g.OW = (g.Wp - 4) / 2 + 1;
    g.TH = (g.OH + 3) / 4, g.TW = (g.OW + 3) / 4;
    g.RH = ((g.Hp + 1) / 2 + 3) / 4, g.RW = ((g.Wp + 1) / 2 + 3) / 4;
    return g;
}

int gen_wino_s2_fits(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                     int64_t stride, int64_t pad) {
    if (KH != 4 || KW != 4 || stride != 2 || pad < 0 || pad > 3 || M < 16 || C < 16) return 0;
    if (M * C > ((int64_t)1 << 26)) return 0; /* the kernels' gather offsets stay in int32 */
    if (H + 2 * pad < 4 || W + 2 * pad < 4) return 0;
    const struct s2geo g = s2geo(H, W, pad);
    /* 100 products a tile (25 for each phase) against 16 an output: where
     * the tiles waste no more than a quarter of the saving in either
     * direction (7 x 7 outputs: 400 against 784) */
    const int64_t tiles = g.TH * g.TW > g.RH * g.RW ? g.TH * g.TW : g.RH * g.RW;
    return 100 * tiles * 4 <= 3 * 16 * g.OH * g.OW;
}

/* About 48 tiles a call: the products' rows. */
int64_t gen_wino_s2_images(int64_t H, int64_t W, int64_t pad) {
    const struct s2geo g = s2geo(H, W, pad);
    return (48 + g.TH * g.TW - 1) / (g.TH * g.TW);
}

/* The floats of one transformed kernel matrix (K x N) packed as B panels,
 * GEN_GEMM_NR columns wide, row k of a panel at k GEN_GEMM_NR. */
static int64_t panel_floats(int64_t K, int64_t N) {
    return round16(gen_gemm_avx512_pack_b_floats(K, N));
}

/* G (p, q), lane by lane: the columns or rows of 16 kernels' 2 x 2 */
static inline __attribute__((always_inline)) void g5(__m512 p, __m512 q, __m512 o[5]) {
    const __m512 half = _mm512_set1_ps(0.5f), sixth = _mm512_set1_ps(1.0f / 6);
    o[0] = _mm512_mul_ps(half, p);
    o[1] = _mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_add_ps(p, q));
    o[2] = _mm512_mul_ps(sixth, _mm512_sub_ps(q, p));
    o[3] = _mm512_mul_ps(sixth, _mm512_fmadd_ps(_mm512_set1_ps(2.0f), q, p));
    o[4] = q;
}

/* G g G^T of 16 kernels g(u, v) = k[2 u + v], lane by lane, into u[5 r + l] */
static inline __attribute__((always_inline)) void ggt(const __m512 k[4], __m512 u[25]) {
    __m512 t0[5], t1[5];
    g5(k[0], k[2], t0); /* G down the kernels' two columns */
    g5(k[1], k[3], t1);
#pragma GCC unroll 5
    for (int r = 0; r < 5; r++) g5(t0[r], t1[r], u + 5 * r); /* and along their rows */
}

/* Tap (kh, kw) = (2 u + a, 2 v + b) of the 16 kernels (m, c) = (lanes) at
 * g, `step` floats apart: the four of phase (a, b), flipped (u -> 1 - u,
 * v -> 1 - v) for the input gradient. */
static inline __attribute__((always_inline)) void phase_taps(const float *g, __m512i idx,
                                                             __mmask16 mask, int64_t a, int64_t b,
                                                             int flip, __m512 k[4]) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const int u = flip ? 1 - j / 2 : j / 2, v = flip ? 1 - j % 2 : j % 2;
        k[j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, idx,
                                        g + (2 * u + a) * 4 + 2 * v + b, 4);
    }
}

static __m512i strided_lanes(int64_t step) {
    return _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)step));
}

int64_t gen_wino_s2_prep_work(int64_t M, int64_t C) {
    return XI * panel_floats(4 * C, M);
}

/* prep: U_xi = G g G^T for each kernel g = w(m, c, a::2, b::2), as 25
 * (4 C x M) matrices, row c' = (2 a + b) C + c, each written straight
 * into the B panels gen_gemm_avx512_bpack would make of it, 16 output
 * channels a vector gathered from w, zeros past column M. */
void gen_wino_s2_prep(int64_t M, int64_t C, const float *Wm, float *prep) {
    const int64_t K4 = 4 * C, pb = panel_floats(K4, M), nr = GEN_GEMM_NR;
    const __m512i idx = strided_lanes(16 * C);
    for (int64_t ph = 0; ph < 4; ph++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t m0 = 0; m0 < M; m0 += 16) {
                __m512 k[4], u[25];
                phase_taps(Wm + (m0 * C + c) * 16, idx, lane_mask(M - m0), ph / 2, ph % 2, 0, k);
                ggt(k, u);
                float *dst = prep + (m0 / nr) * K4 * nr + (ph * C + c) * nr + m0 % nr;
#pragma GCC unroll 25
                for (int xi = 0; xi < XI; xi++) _mm512_storeu_ps(dst + xi * pb, u[xi]);
            }
}

int64_t gen_wino_s2_dx_prep_work(int64_t M, int64_t C) {
    return XI * panel_floats(M, 4 * C);
}

/* The input gradient's: U'_xi, 25 (M x 4 C) matrices of the flipped
 * kernels, column c' = (2 a + b) C + c, packed the same way, 16 input
 * channels a vector (those of one phase: runs that cross a panel's edge,
 * where C is no multiple of 16, are stored lane by lane). */
void gen_wino_s2_dx_prep(int64_t M, int64_t C, const float *Wm, float *prep) {
    const int64_t K4 = 4 * C, pb = panel_floats(M, K4), nr = GEN_GEMM_NR;
    const int64_t last = (K4 - 1) / nr * nr; /* the last panel's first column */
    for (int64_t xi = 0; xi < XI; xi++)      /* its columns past 4 C */
        memset(prep + xi * pb + last * M, 0, (size_t)(pb - last * M) * sizeof *prep);
    const __m512i idx = strided_lanes(16);
    for (int64_t m = 0; m < M; m++)
        for (int64_t ph = 0; ph < 4; ph++)
            for (int64_t c0 = 0; c0 < C; c0 += 16) {
                const int64_t n = C - c0 < 16 ? C - c0 : 16, col = ph * C + c0;
                __m512 k[4], u[25];
                phase_taps(Wm + (m * C + c0) * 16, idx, lane_mask(n), ph / 2, ph % 2, 1, k);
                ggt(k, u);
                float *dst = prep + (col / nr) * M * nr + m * nr + col % nr;
                if (col % nr + n <= nr) {
#pragma GCC unroll 25
                    for (int xi = 0; xi < XI; xi++)
                        _mm512_mask_storeu_ps(dst + xi * pb, lane_mask(n), u[xi]);
                    continue;
                }
                for (int xi = 0; xi < XI; xi++) {
                    float lane[16];
                    _mm512_storeu_ps(lane, u[xi]);
                    for (int64_t j = 0; j < n; j++) /* column col + j */
                        prep[xi * pb + (col + j) / nr * M * nr + m * nr + (col + j) % nr] = lane[j];
                }
            }
}

/* The pieces of `work`: a channels-last copy (the input, or dy padded),
 * V and the products, each's 25 matrices spread apart (gen_wino_spread),
 * and for the input gradient the channels-last dx. */
struct s2parts {
    int64_t v, vs, y, ys, out, total;
};

static struct s2parts s2parts(int64_t copy, int64_t T, int64_t in, int64_t out, int64_t dxq) {
    struct s2parts p = {
        .v = round16(copy), .vs = gen_wino_spread(T * in), .ys = gen_wino_spread(T * out)};
    p.y = p.v + XI * p.vs;
    p.out = p.y + XI * p.ys;
    p.total = p.out + round16(dxq);
    return p;
}

static struct s2parts fwd_parts(int64_t M, int64_t C, const struct s2geo *g, int64_t m) {
    return s2parts(m * g->Hp * g->Wp * C, m * g->TH * g->TW, 4 * C, M, 0);
}

static struct s2parts dx_parts(int64_t M, int64_t C, const struct s2geo *g, int64_t m) {
    return s2parts(m * (g->OH + 2) * (g->OW + 2) * M, m * g->RH * g->RW, M, 4 * C,
                   m * g->Hp * g->Wp * C);
}

int64_t gen_wino_s2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct s2geo g = s2geo(H, W, pad);
    return fwd_parts(M, C, &g, m).total;
}

int64_t gen_wino_s2_dx_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct s2geo g = s2geo(H, W, pad);
    return dx_parts(M, C, &g, m).total;
}

/* B^T d of five vectors d[0], d[s], ... d[4 s] into o[0], o[t], ... */
static inline __attribute__((always_inline)) void bt5(const __m512 *d, int s, __m512 *o, int t) {
    const __m512 two = _mm512_set1_ps(2.0f);
    const __m512 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s];
    o[0] = _mm512_fmadd_ps(two, _mm512_sub_ps(d0, d2), _mm512_sub_ps(d3, d1));
    o[t] = _mm512_fnmadd_ps(two, d1, _mm512_sub_ps(d3, d2));
    o[2 * t] = _mm512_fmadd_ps(two, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d3, d2));
    o[3 * t] = _mm512_sub_ps(d3, d1);
    o[4 * t] = _mm512_fmadd_ps(two, _mm512_sub_ps(d1, d3), _mm512_sub_ps(d4, d2));
}

/* A^T y of five vectors y[0], y[s], ... into o[0], o[t], o[2 t], o[3 t] */
static inline __attribute__((always_inline)) void at5(const __m512 *y, int s, __m512 *o, int t) {
    const __m512 sum = _mm512_add_ps(y[s], y[2 * s]), dif = _mm512_sub_ps(y[s], y[2 * s]);
    const __m512 y3 = y[3 * s];
    o[0] = _mm512_add_ps(_mm512_add_ps(y[0], sum), y3);
    o[t] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), y3, dif);
    o[2 * t] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), y3, sum);
    o[3 * t] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), y3, dif), y[4 * s]);
}

/* One tile's transformed input: its 5 x 5 positions from (r0, c0) of the
 * channels-last image src (rows x cols, Cs channels), `step` apart (zeros
 * past its edge), 16 channels at a time, into row t of each V_xi (at v,
 * vs floats apart). */
static void input_tile(const float *src, int64_t rows, int64_t cols, int64_t Cs, int64_t r0,
                       int64_t c0, int64_t step, float *v, int64_t vs) {
    for (int64_t ch = 0; ch < Cs; ch += 16) {
        const __mmask16 mc = lane_mask(Cs - ch);
        __m512 d[25], e[25];
#pragma GCC unroll 5
        for (int u = 0; u < 5; u++) {
            const int64_t r = r0 + step * u;
#pragma GCC unroll 5
            for (int w = 0; w < 5; w++) {
                const int64_t c = c0 + step * w;
                d[5 * u + w] = r < rows && c < cols
                                   ? _mm512_maskz_loadu_ps(mc, src + (r * cols + c) * Cs + ch)
                                   : _mm512_setzero_ps();
            }
        }
#pragma GCC unroll 5
        for (int w = 0; w < 5; w++) bt5(d + w, 5, e + w, 5); /* down the columns */
#pragma GCC unroll 5
        for (int k = 0; k < 5; k++) bt5(e + 5 * k, 1, d + 5 * k, 1); /* along the rows */
#pragma GCC unroll 25
        for (int xi = 0; xi < XI; xi++) _mm512_mask_storeu_ps(v + xi * vs + ch, mc, d[xi]);
    }
}

/* A^T Y A for 16 channels of one tile: 25 vectors from y (ys floats
 * apart, lanes mm) into o[4 i + s], output (i, s) of the tile. */
static inline __attribute__((always_inline)) void output_transform(const float *y, int64_t ys,
                                                                   __mmask16 mm, __m512 o[16]) {
    __m512 z[25], r[20];
#pragma GCC unroll 25
    for (int xi = 0; xi < XI; xi++) z[xi] = _mm512_maskz_loadu_ps(mm, y + xi * ys);
#pragma GCC unroll 5
    for (int l = 0; l < 5; l++) at5(z + l, 5, r + l, 5); /* r[5 i + l] */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) at5(r + 5 * i, 1, o + 4 * i, 1);
}

/* Tile (ti, tj)'s 4 x 4 outputs of every output channel from row t of
 * each Y_xi (ys floats apart), into out (channel m at m ldo): 16 output
 * channels a vector, turned into 16 positions a channel by a transpose. */
static void output_tile(const struct s2geo *g, int64_t M, const float *y, int64_t ys, int64_t ti,
                        int64_t tj, const float *bias, float beta, float *out, int64_t ldo) {
    const int64_t cols = g->OW - 4 * tj < 4 ? g->OW - 4 * tj : 4;
    const __mmask16 mcol = lane_mask(cols);
    const __m512 vb = _mm512_set1_ps(beta);
    const __m512i iota = strided_lanes(1);
    for (int64_t m0 = 0; m0 < M; m0 += 16) {
        const __mmask16 mm = lane_mask(M - m0);
        __m512 o[16];
        output_transform(y + m0, ys, mm, o);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(mm, bias + m0) : _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int p = 0; p < 16; p++) o[p] = _mm512_add_ps(o[p], bv);
        transpose16(o); /* o[j]: lane 4 i + s is output (4 ti + i, 4 tj + s) of channel m0 + j */
        for (int64_t j = 0; j < 16 && m0 + j < M; j++) {
            float *base = out + (m0 + j) * ldo + 4 * tj;
            for (int64_t i = 0; i < 4 && 4 * ti + i < g->OH; i++) {
                float *p = base + (4 * ti + i) * g->OW;
                /* lanes 4 i .. 4 i + 3 into lanes 0 .. 3 */
                __m512 val = _mm512_permutexvar_ps(
                    _mm512_add_epi32(_mm512_set1_epi32(4 * (int)i), iota), o[j]);
                if (beta != 0.0f) val = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mcol, p), val);
                _mm512_mask_storeu_ps(p, mcol, val);
            }
        }
    }
}

/* The 25 products of the T tiles: Y_xi (T x N) = V_xi (T x K) U_xi. */
static void products(int64_t T, int64_t N, int64_t K, const float *v, int64_t vs, const float *prep,
                     int64_t pb, float *y, int64_t ys) {
    for (int64_t xi = 0; xi < XI; xi++)
        gen_gemm_avx512_bpacked(0, T, N, K, 1.0f, v + xi * vs, K, prep + xi * pb, 0, K, 0.0f, NULL,
                                y + xi * ys, N);
}

/* The forward pass's V for the m images (C, H, W) at x (img floats
 * apart), through their channels-last copy at xq: tile t of image i in row
 * i tiles + t of each V_xi, phase (a, b) = (ph / 2, ph % 2) in its
 * columns ph C .. ph C + C - 1. */
static void input_phases(const struct s2geo *g, int64_t C, int64_t H, int64_t W, int64_t pad,
                         int64_t m, int64_t img, const float *x, float *xq, float *v, int64_t vs) {
    const int64_t tiles = g->TH * g->TW, image = g->Hp * g->Wp * C;
    gen_nhwc_copy(C, H, W, pad, m, img, x, xq);
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < tiles; t++)
            for (int64_t ph = 0; ph < 4; ph++)
                input_tile(xq + i * image, g->Hp, g->Wp, C, 8 * (t / g->TW) + ph / 2,
                           8 * (t % g->TW) + ph % 2, 2, v + (i * tiles + t) * 4 * C + ph * C, vs);
}

/* out (M x OH OW per image, out_img floats apart) = beta out + bias +
 * the convolution of the m images (C, H, W) at x (img floats apart) with
 * the kernels gen_wino_s2_prep made, on this thread. */
void gen_wino_s2_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                      int64_t m, int64_t img, const float *x, const float *bias, float beta,
                      float *out, int64_t ldo, int64_t out_img, float *work) {
    const struct s2geo g = s2geo(H, W, pad);
    const struct s2parts pt = fwd_parts(M, C, &g, m);
    const int64_t K4 = 4 * C, tiles = g.TH * g.TW, T = m * tiles;
    float *v = work + pt.v, *y = work + pt.y;
    input_phases(&g, C, H, W, pad, m, img, x, work, v, pt.vs);
    products(T, M, K4, v, pt.vs, prep, panel_floats(K4, M), y, pt.ys);
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < tiles; t++)
            output_tile(&g, M, y + (i * tiles + t) * M, pt.ys, t / g.TW, t % g.TW, bias, beta,
                        out + i * out_img, ldo);
}

/* dx_i = beta dx_i + the input gradient of the m images' dy_i (M x OH OW,
 * dy_img floats apart) through the kernels gen_wino_s2_dx_prep made, for
 * dx_i (C, H, W, img floats apart), on this thread. */
void gen_wino_s2_dx(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C,
                    int64_t H, int64_t W, int64_t pad, int64_t m, int64_t img, float beta,
                    float *dx, float *work) {
    const struct s2geo g = s2geo(H, W, pad);
    const struct s2parts pt = dx_parts(M, C, &g, m);
    const int64_t K4 = 4 * C, tiles = g.RH * g.RW, T = m * tiles;
    const int64_t rows = g.OH + 2, cols = g.OW + 2;
    float *v = work + pt.v, *y = work + pt.y, *dxq = work + pt.out;
    gen_nhwc_copy(M, g.OH, g.OW, 1, m, dy_img, dy, work); /* dy padded by one */
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < tiles; t++)
            input_tile(work + i * rows * cols * M, rows, cols, M, 4 * (t / g.RW), 4 * (t % g.RW), 1,
                       v + (i * tiles + t) * M, pt.vs);
    products(T, K4, M, v, pt.vs, prep, panel_floats(M, K4), y, pt.ys);
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < tiles; t++) {
            const int64_t R = 4 * (t / g.RW), S = 4 * (t % g.RW);
            for (int64_t ph = 0; ph < 4; ph++)
                for (int64_t c0 = 0; c0 < C; c0 += 16) {
                    const __mmask16 mc = lane_mask(C - c0);
                    __m512 o[16];
                    output_transform(y + (i * tiles + t) * K4 + ph * C + c0, pt.ys, mc, o);
                    /* output (p, q) of the tile is phase position (R + p, S + q) */
                    for (int64_t p = 0; p < 4; p++) {
                        const int64_t r = 2 * (R + p) + ph / 2;
                        if (r >= g.Hp) break;
                        for (int64_t q = 0; q < 4; q++) {
                            const int64_t s = 2 * (S + q) + ph % 2;
                            if (s >= g.Wp) break;
                            _mm512_mask_storeu_ps(dxq + (i * g.Hp + r) * g.Wp * C + s * C + c0, mc,
                                                  o[4 * p + q]);
                        }
                    }
                }
        }
    gen_nhwc_uncopy(C, H, W, pad, m, dxq, beta, dx, img);
}

/* ---- the weight gradient ------------------------------------------------ */

/* A d of four vectors d[0], d[s], d[2 s], d[3 s] into o[0], o[t], ... o[4 t] */
static inline __attribute__((always_inline)) void a5(const __m512 *d, int s, __m512 *o, int t) {
    const __m512 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
    const __m512 even = _mm512_add_ps(d0, d2), odd = _mm512_add_ps(d1, d3);
    o[0] = d0;
    o[t] = _mm512_add_ps(even, odd);
    o[2 * t] = _mm512_sub_ps(even, odd);
    o[3 * t] = _mm512_fmadd_ps(
        _mm512_set1_ps(2.0f),
        _mm512_fmadd_ps(_mm512_set1_ps(4.0f), d3, _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d2, d1)),
        d0);
    o[4 * t] = d3;
}

/* G^T x of five vectors x[0], x[s], ... into o[0], o[t] */
static inline __attribute__((always_inline)) void gt5(const __m512 *x, int s, __m512 *o, int t) {
    const __m512 half = _mm512_set1_ps(0.5f), sixth = _mm512_set1_ps(1.0f / 6);
    const __m512 x1 = x[s], x2 = x[2 * s], x3 = x[3 * s];
    o[0] =
        _mm512_fmadd_ps(half, _mm512_sub_ps(x[0], x1), _mm512_mul_ps(sixth, _mm512_sub_ps(x3, x2)));
    o[t] = _mm512_add_ps(_mm512_fnmadd_ps(half, x1, x[4 * s]),
                         _mm512_mul_ps(sixth, _mm512_fmadd_ps(_mm512_set1_ps(2.0f), x3, x2)));
}

struct dw_parts {
    int64_t dyq, v, vs, d, ds, du, total;
};

static struct dw_parts dw_parts(int64_t M, int64_t C, const struct s2geo *g, int64_t m) {
    const int64_t T = m * g->TH * g->TW;
    struct dw_parts p = {.dyq = round16(m * g->Hp * g->Wp * C),
                         .vs = gen_wino_spread(T * 4 * C),
                         .ds = gen_wino_spread(T * M)};
    p.v = p.dyq + round16(m * g->OH * g->OW * M);
    p.d = p.v + XI * p.vs;
    p.du = p.d + XI * p.ds;
    p.total = p.du + XI * 4 * C * M;
    return p;
}

int64_t gen_wino_s2_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct s2geo g = s2geo(H, W, pad);
    return dw_parts(M, C, &g, m).total;
}

/* dw (M x C 16) = the weight gradient of the m images' dy_i (M x OH OW,
 * dy_img floats apart) and x_i (C, H, W, img floats apart), on this
 * thread. */
void gen_wino_s2_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                    int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work) {
    const struct s2geo g = s2geo(H, W, pad);
    const struct dw_parts pt = dw_parts(M, C, &g, m);
    const int64_t K4 = 4 * C, tiles = g.TH * g.TW, T = m * tiles;
    float *dyq = work + pt.dyq, *v = work + pt.v, *d = work + pt.d, *du = work + pt.du;
    input_phases(&g, C, H, W, pad, m, img, x, work, v, pt.vs);
    gen_nhwc_copy(M, g.OH, g.OW, 0, m, dy_img, dy, dyq);
    for (int64_t i = 0; i < m; i++) /* D = A dY A^T, tile by tile, 16 output channels a vector */
        for (int64_t t = 0; t < tiles; t++) {
            const int64_t r0 = 4 * (t / g.TW), c0 = 4 * (t % g.TW);
            const float *src = dyq + i * g.OH * g.OW * M;
            for (int64_t m0 = 0; m0 < M; m0 += 16) {
                const __mmask16 mm = lane_mask(M - m0);
                __m512 y[16], e[20], o[25];
#pragma GCC unroll 4
                for (int p = 0; p < 4; p++)
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++)
                        y[4 * p + q] = r0 + p < g.OH && c0 + q < g.OW
                                           ? _mm512_maskz_loadu_ps(
                                                 mm, src + ((r0 + p) * g.OW + c0 + q) * M + m0)
                                           : _mm512_setzero_ps();
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) a5(y + q, 4, e + q, 4); /* e[4 k + q] */
#pragma GCC unroll 5
                for (int k = 0; k < 5; k++) a5(e + 4 * k, 1, o + 5 * k, 1);
                float *dst = d + (i * tiles + t) * M + m0;
#pragma GCC unroll 25
                for (int xi = 0; xi < XI; xi++) _mm512_mask_storeu_ps(dst + xi * pt.ds, mm, o[xi]);
            }
        }
    /* dU_xi (4 C x M) = V_xi^T D_xi, row c' at du + (c' XI + xi) M: the
     * 25 rows of a c' side by side for the pass below */
    for (int64_t xi = 0; xi < XI; xi++)
        gen_sgemm_avx512(1, 0, K4, M, T, 1.0f, v + xi * pt.vs, K4, d + xi * pt.ds, M, 0.0f, NULL,
                         du + xi * M, XI * M);
    /* dw = G^T dU G: per input channel c and 16 output channels, the four
     * phases' 2 x 2 taps (tap (2 u + a) 4 + 2 v + b, lanes m), transposed
     * into each kernel's 16 taps */
    for (int64_t c = 0; c < C; c++)
        for (int64_t m0 = 0; m0 < M; m0 += 16) {
            const __mmask16 mm = lane_mask(M - m0);
            __m512 taps[16];
            for (int64_t ph = 0; ph < 4; ph++) {
                __m512 z[25], e[10], o[4];
#pragma GCC unroll 25
                for (int xi = 0; xi < XI; xi++)
                    z[xi] = _mm512_maskz_loadu_ps(mm, du + ((ph * C + c) * XI + xi) * M + m0);
#pragma GCC unroll 5
                for (int l = 0; l < 5; l++) gt5(z + l, 5, e + l, 5); /* e[5 u + l] */
#pragma GCC unroll 2
                for (int u = 0; u < 2; u++) gt5(e + 5 * u, 1, o + 2 * u, 1);
                const int64_t a = ph / 2, b = ph % 2;
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) taps[(2 * (j / 2) + a) * 4 + 2 * (j % 2) + b] = o[j];
            }
            transpose16(taps); /* taps[j]: the 16 taps of kernel (m0 + j, c) */
            for (int64_t j = 0; j < 16 && m0 + j < M; j++)
                _mm512_storeu_ps(dw + ((m0 + j) * C + c) * 16, taps[j]);
        }
}
