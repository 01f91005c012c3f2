/* winograd_s2.h - 4 x 4 stride-2 convolutions (and so transposed ones)
 * by Winograd's F(4 x 4, 2 x 2) over the input's four stride phases, in
 * fp32: forward pass, input and weight gradients, written once for the
 * AVX-512 and AVX2 tables.
 *
 * Not an ordinary header: winograd_s2_avx512.c and winograd_s2_avx2.c
 * each define the vector vocabulary first (vf, vi, vmask, VW lanes, v_add
 * ..., v_ld / v_st under a lane mask, v_taps: 4-byte lanes a stride
 * apart), the products (S2_NR, S2_PACK_B_FLOATS, S2_BPACKED: the table's
 * GEMM on B panels; S2_GEMM: its GEMM on this thread), the channels-last
 * copies (S2_NHWC_COPY, S2_NHWC_UNCOPY), the lane transposes tile_store
 * and kernels_store, S2_LANES_OK (the channel counts the vocabulary takes)
 * and S2_FN (the entry points' names); this file builds the entry points
 * from them.
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
 * Layout: the images are copied channels-last (S2_NHWC_COPY), so that a
 * vector holds VW channels of one phase position and both transforms run
 * VW channels (input) or VW output channels (output) to a vector. The 25
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
 * at the end (S2_NHWC_UNCOPY).
 *
 * The weight gradient follows the forward pass back: dU_xi = V_xi^T D_xi
 * over the chunk's tiles, with D = A dY A^T the tiles' output gradients
 * taken to the 5 x 5 points (A = (A^T)^T), then dw = G^T dU G for each
 * phase's 2 x 2 taps, VW output channels a vector, turned into each
 * kernel's 16 taps by a transpose (kernels_store). */
#ifndef S2_FN
#error "winograd_s2.h is included by winograd_s2_avx512.c / winograd_s2_avx2.c only"
#endif

#include <string.h>

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

int S2_FN(fits)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                int64_t pad) {
    if (KH != 4 || KW != 4 || stride != 2 || pad < 0 || pad > 3 || M < 16 || C < 16 ||
        !S2_LANES_OK(M, C))
        return 0;
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
int64_t S2_FN(images)(int64_t H, int64_t W, int64_t pad) {
    const struct s2geo g = s2geo(H, W, pad);
    return (48 + g.TH * g.TW - 1) / (g.TH * g.TW);
}

/* The floats of one transformed kernel matrix (K x N) packed as B panels,
 * S2_NR columns wide, row k of a panel at k S2_NR. */
static int64_t panel_floats(int64_t K, int64_t N) {
    return round16(S2_PACK_B_FLOATS(K, N));
}

/* Zeros in columns [N, N rounded up to 16) of the 25 (K x N) matrices
 * packed pb floats apart at prep, which the products read (the AVX-512
 * GEMM up to the next 16 columns, the AVX2 one its whole 16-wide panels)
 * and the stores below may not reach: nothing where N is a multiple of
 * 16. */
static void clear_tail_columns(int64_t K, int64_t N, int64_t pb, float *prep) {
    const int64_t n = round16(N) - N, last = N / S2_NR * S2_NR; /* column N's panel */
    for (int64_t xi = 0; xi < XI && n > 0; xi++)
        for (int64_t k = 0; k < K; k++)
            memset(prep + xi * pb + last * K + k * S2_NR + N - last, 0, (size_t)n * sizeof *prep);
}

/* G (p, q), lane by lane: the columns or rows of VW kernels' 2 x 2 */
static inline __attribute__((always_inline)) void g5(vf p, vf q, vf o[5]) {
    const vf half = v_set1(0.5f), sixth = v_set1(1.0f / 6);
    o[0] = v_mul(half, p);
    o[1] = v_mul(v_set1(-0.5f), v_add(p, q));
    o[2] = v_mul(sixth, v_sub(q, p));
    o[3] = v_mul(sixth, v_fmadd(v_set1(2.0f), q, p));
    o[4] = q;
}

/* G g G^T of VW kernels g(u, v) = k[2 u + v], lane by lane, into u[5 r + l] */
static inline __attribute__((always_inline)) void ggt(const vf k[4], vf u[25]) {
    vf t0[5], t1[5];
    g5(k[0], k[2], t0); /* G down the kernels' two columns */
    g5(k[1], k[3], t1);
#pragma GCC unroll 5
    for (int r = 0; r < 5; r++) g5(t0[r], t1[r], u + 5 * r); /* and along their rows */
}

/* Tap (kh, kw) = (2 u + a, 2 v + b) of the VW kernels (m, c) = (lanes) at
 * g, `step` floats apart: the four of phase (a, b), flipped (u -> 1 - u,
 * v -> 1 - v) for the input gradient. */
static inline __attribute__((always_inline)) void
phase_taps(const float *g, vi idx, vmask mask, int64_t a, int64_t b, int flip, vf k[4]) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const int u = flip ? 1 - j / 2 : j / 2, v = flip ? 1 - j % 2 : j % 2;
        k[j] = v_taps(mask, idx, g + (2 * u + a) * 4 + 2 * v + b);
    }
}

int64_t S2_FN(prep_work)(int64_t M, int64_t C) {
    return XI * panel_floats(4 * C, M);
}

/* prep: U_xi = G g G^T for each kernel g = w(m, c, a::2, b::2), as 25
 * (4 C x M) matrices, row c' = (2 a + b) C + c, each written straight
 * into the B panels the table's bpack would make of it, VW output
 * channels a vector gathered from w, zeros past column M. */
void S2_FN(prep)(int64_t M, int64_t C, const float *Wm, float *prep) {
    const int64_t K4 = 4 * C, pb = panel_floats(K4, M), nr = S2_NR;
    clear_tail_columns(K4, M, pb, prep);
    const vi idx = v_strided(16 * C);
    for (int64_t ph = 0; ph < 4; ph++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t m0 = 0; m0 < M; m0 += VW) {
                vf k[4], u[25];
                phase_taps(Wm + (m0 * C + c) * 16, idx, v_mask(M - m0), ph / 2, ph % 2, 0, k);
                ggt(k, u);
                float *dst = prep + (m0 / nr) * K4 * nr + (ph * C + c) * nr + m0 % nr;
#pragma GCC unroll 25
                for (int xi = 0; xi < XI; xi++) v_stu(dst + xi * pb, u[xi]);
            }
}

int64_t S2_FN(dx_prep_work)(int64_t M, int64_t C) {
    return XI * panel_floats(M, 4 * C);
}

/* The input gradient's: U'_xi, 25 (M x 4 C) matrices of the flipped
 * kernels, column c' = (2 a + b) C + c, packed the same way, VW input
 * channels a vector (those of one phase: runs that cross a panel's edge,
 * where C is no multiple of VW, are stored lane by lane). */
void S2_FN(dx_prep)(int64_t M, int64_t C, const float *Wm, float *prep) {
    const int64_t K4 = 4 * C, pb = panel_floats(M, K4), nr = S2_NR;
    clear_tail_columns(M, K4, pb, prep);
    const vi idx = v_strided(16);
    for (int64_t m = 0; m < M; m++)
        for (int64_t ph = 0; ph < 4; ph++)
            for (int64_t c0 = 0; c0 < C; c0 += VW) {
                const int64_t n = C - c0 < VW ? C - c0 : VW, col = ph * C + c0;
                vf k[4], u[25];
                phase_taps(Wm + (m * C + c0) * 16, idx, v_mask(n), ph / 2, ph % 2, 1, k);
                ggt(k, u);
                float *dst = prep + (col / nr) * M * nr + m * nr + col % nr;
                if (col % nr + n <= nr) {
#pragma GCC unroll 25
                    for (int xi = 0; xi < XI; xi++) v_st(dst + xi * pb, v_mask(n), u[xi]);
                    continue;
                }
                for (int xi = 0; xi < XI; xi++) {
                    float lane[VW];
                    v_stu(lane, u[xi]);
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

int64_t S2_FN(work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct s2geo g = s2geo(H, W, pad);
    return fwd_parts(M, C, &g, m).total;
}

int64_t S2_FN(dx_work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct s2geo g = s2geo(H, W, pad);
    return dx_parts(M, C, &g, m).total;
}

/* B^T d of five vectors d[0], d[s], ... d[4 s] into o[0], o[t], ... */
static inline __attribute__((always_inline)) void bt5(const vf *d, int s, vf *o, int t) {
    const vf two = v_set1(2.0f);
    const vf d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s];
    o[0] = v_fmadd(two, v_sub(d0, d2), v_sub(d3, d1));
    o[t] = v_fnmadd(two, d1, v_sub(d3, d2));
    o[2 * t] = v_fmadd(two, v_sub(d1, d2), v_sub(d3, d2));
    o[3 * t] = v_sub(d3, d1);
    o[4 * t] = v_fmadd(two, v_sub(d1, d3), v_sub(d4, d2));
}

/* A^T y of five vectors y[0], y[s], ... into o[0], o[t], o[2 t], o[3 t] */
static inline __attribute__((always_inline)) void at5(const vf *y, int s, vf *o, int t) {
    const vf sum = v_add(y[s], y[2 * s]), dif = v_sub(y[s], y[2 * s]);
    const vf y3 = y[3 * s];
    o[0] = v_add(v_add(y[0], sum), y3);
    o[t] = v_fmadd(v_set1(2.0f), y3, dif);
    o[2 * t] = v_fmadd(v_set1(4.0f), y3, sum);
    o[3 * t] = v_add(v_fmadd(v_set1(8.0f), y3, dif), y[4 * s]);
}

/* One tile's transformed input: its 5 x 5 positions from (r0, c0) of the
 * channels-last image src (rows x cols, Cs channels), `step` apart (zeros
 * past its edge), VW channels at a time, into row t of each V_xi (at v,
 * vs floats apart). */
static void input_tile(const float *src, int64_t rows, int64_t cols, int64_t Cs, int64_t r0,
                       int64_t c0, int64_t step, float *v, int64_t vs) {
    for (int64_t ch = 0; ch < Cs; ch += VW) {
        const vmask mc = v_mask(Cs - ch);
        vf d[25], e[25];
#pragma GCC unroll 5
        for (int u = 0; u < 5; u++) {
            const int64_t r = r0 + step * u;
#pragma GCC unroll 5
            for (int w = 0; w < 5; w++) {
                const int64_t c = c0 + step * w;
                d[5 * u + w] =
                    r < rows && c < cols ? v_ld(mc, src + (r * cols + c) * Cs + ch) : v_zero();
            }
        }
#pragma GCC unroll 5
        for (int w = 0; w < 5; w++) bt5(d + w, 5, e + w, 5); /* down the columns */
#pragma GCC unroll 5
        for (int k = 0; k < 5; k++) bt5(e + 5 * k, 1, d + 5 * k, 1); /* along the rows */
#pragma GCC unroll 25
        for (int xi = 0; xi < XI; xi++) v_st(v + xi * vs + ch, mc, d[xi]);
    }
}

/* A^T Y A for VW channels of one tile: 25 vectors from y (ys floats
 * apart, lanes mm) into o[4 i + s], output (i, s) of the tile. */
static inline __attribute__((always_inline)) void output_transform(const float *y, int64_t ys,
                                                                   vmask mm, vf o[16]) {
    vf z[25], r[20];
#pragma GCC unroll 25
    for (int xi = 0; xi < XI; xi++) z[xi] = v_ld(mm, y + xi * ys);
#pragma GCC unroll 5
    for (int l = 0; l < 5; l++) at5(z + l, 5, r + l, 5); /* r[5 i + l] */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) at5(r + 5 * i, 1, o + 4 * i, 1);
}

/* Tile (ti, tj)'s 4 x 4 outputs of every output channel from row t of
 * each Y_xi (ys floats apart), into out (channel m at m ldo): VW output
 * channels a vector, turned into 16 positions a channel by tile_store. */
static void output_tile(const struct s2geo *g, int64_t M, const float *y, int64_t ys, int64_t ti,
                        int64_t tj, const float *bias, float beta, float *out, int64_t ldo) {
    const int64_t rows = g->OH - 4 * ti < 4 ? g->OH - 4 * ti : 4;
    const int64_t cols = g->OW - 4 * tj < 4 ? g->OW - 4 * tj : 4;
    float *corner = out + 4 * ti * g->OW + 4 * tj;
    for (int64_t m0 = 0; m0 < M; m0 += VW) {
        const vmask mm = v_mask(M - m0);
        vf o[16];
        output_transform(y + m0, ys, mm, o);
        const vf bv = bias ? v_ld(mm, bias + m0) : v_zero();
#pragma GCC unroll 16
        for (int p = 0; p < 16; p++) o[p] = v_add(o[p], bv);
        tile_store(o, M - m0 < VW ? M - m0 : VW, rows, cols, beta, corner + m0 * ldo, ldo, g->OW);
    }
}

/* The 25 products of the T tiles: Y_xi (T x N) = V_xi (T x K) U_xi. */
static void products(int64_t T, int64_t N, int64_t K, const float *v, int64_t vs, const float *prep,
                     int64_t pb, float *y, int64_t ys) {
    for (int64_t xi = 0; xi < XI; xi++)
        S2_BPACKED(0, T, N, K, 1.0f, v + xi * vs, K, prep + xi * pb, 0, K, 0.0f, NULL, y + xi * ys,
                   N);
}

/* The forward pass's V for the m images (C, H, W) at x (img floats
 * apart), through their channels-last copy at xq: tile t of image i in row
 * i tiles + t of each V_xi, phase (a, b) = (ph / 2, ph % 2) in its
 * columns ph C .. ph C + C - 1. */
static void input_phases(const struct s2geo *g, int64_t C, int64_t H, int64_t W, int64_t pad,
                         int64_t m, int64_t img, const float *x, float *xq, float *v, int64_t vs) {
    const int64_t tiles = g->TH * g->TW, image = g->Hp * g->Wp * C;
    S2_NHWC_COPY(C, H, W, pad, m, img, x, xq);
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < tiles; t++)
            for (int64_t ph = 0; ph < 4; ph++)
                input_tile(xq + i * image, g->Hp, g->Wp, C, 8 * (t / g->TW) + ph / 2,
                           8 * (t % g->TW) + ph % 2, 2, v + (i * tiles + t) * 4 * C + ph * C, vs);
}

/* out (M x OH OW per image, out_img floats apart) = beta out + bias +
 * the convolution of the m images (C, H, W) at x (img floats apart) with
 * the kernels gen_wino_s2_prep made, on this thread. */
void S2_FN(conv)(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                 int64_t m, int64_t img, const float *x, const float *bias, float beta, float *out,
                 int64_t ldo, int64_t out_img, float *work) {
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
void S2_FN(dx)(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C, int64_t H,
               int64_t W, int64_t pad, int64_t m, int64_t img, float beta, float *dx, float *work) {
    const struct s2geo g = s2geo(H, W, pad);
    const struct s2parts pt = dx_parts(M, C, &g, m);
    const int64_t K4 = 4 * C, tiles = g.RH * g.RW, T = m * tiles;
    const int64_t rows = g.OH + 2, cols = g.OW + 2;
    float *v = work + pt.v, *y = work + pt.y, *dxq = work + pt.out;
    S2_NHWC_COPY(M, g.OH, g.OW, 1, m, dy_img, dy, work); /* dy padded by one */
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < tiles; t++)
            input_tile(work + i * rows * cols * M, rows, cols, M, 4 * (t / g.RW), 4 * (t % g.RW), 1,
                       v + (i * tiles + t) * M, pt.vs);
    products(T, K4, M, v, pt.vs, prep, panel_floats(M, K4), y, pt.ys);
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < tiles; t++) {
            const int64_t R = 4 * (t / g.RW), S = 4 * (t % g.RW);
            for (int64_t ph = 0; ph < 4; ph++)
                for (int64_t c0 = 0; c0 < C; c0 += VW) {
                    const vmask mc = v_mask(C - c0);
                    vf o[16];
                    output_transform(y + (i * tiles + t) * K4 + ph * C + c0, pt.ys, mc, o);
                    /* output (p, q) of the tile is phase position (R + p, S + q) */
                    for (int64_t p = 0; p < 4; p++) {
                        const int64_t r = 2 * (R + p) + ph / 2;
                        if (r >= g.Hp) break;
                        for (int64_t q = 0; q < 4; q++) {
                            const int64_t s = 2 * (S + q) + ph % 2;
                            if (s >= g.Wp) break;
                            v_st(dxq + (i * g.Hp + r) * g.Wp * C + s * C + c0, mc, o[4 * p + q]);
                        }
                    }
                }
        }
    S2_NHWC_UNCOPY(C, H, W, pad, m, dxq, beta, dx, img);
}

/* ---- the weight gradient ------------------------------------------------ */

/* A d of four vectors d[0], d[s], d[2 s], d[3 s] into o[0], o[t], ... o[4 t] */
static inline __attribute__((always_inline)) void a5(const vf *d, int s, vf *o, int t) {
    const vf d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s];
    const vf even = v_add(d0, d2), odd = v_add(d1, d3);
    o[0] = d0;
    o[t] = v_add(even, odd);
    o[2 * t] = v_sub(even, odd);
    o[3 * t] = v_fmadd(v_set1(2.0f), v_fmadd(v_set1(4.0f), d3, v_fmadd(v_set1(2.0f), d2, d1)), d0);
    o[4 * t] = d3;
}

/* G^T x of five vectors x[0], x[s], ... into o[0], o[t] */
static inline __attribute__((always_inline)) void gt5(const vf *x, int s, vf *o, int t) {
    const vf half = v_set1(0.5f), sixth = v_set1(1.0f / 6);
    const vf x1 = x[s], x2 = x[2 * s], x3 = x[3 * s];
    o[0] = v_fmadd(half, v_sub(x[0], x1), v_mul(sixth, v_sub(x3, x2)));
    o[t] = v_add(v_fnmadd(half, x1, x[4 * s]), v_mul(sixth, v_fmadd(v_set1(2.0f), x3, x2)));
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

int64_t S2_FN(dw_work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct s2geo g = s2geo(H, W, pad);
    return dw_parts(M, C, &g, m).total;
}

/* dw (M x C 16) = the weight gradient of the m images' dy_i (M x OH OW,
 * dy_img floats apart) and x_i (C, H, W, img floats apart), on this
 * thread. */
void S2_FN(dw)(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
               int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work) {
    const struct s2geo g = s2geo(H, W, pad);
    const struct dw_parts pt = dw_parts(M, C, &g, m);
    const int64_t K4 = 4 * C, tiles = g.TH * g.TW, T = m * tiles;
    float *dyq = work + pt.dyq, *v = work + pt.v, *d = work + pt.d, *du = work + pt.du;
    input_phases(&g, C, H, W, pad, m, img, x, work, v, pt.vs);
    S2_NHWC_COPY(M, g.OH, g.OW, 0, m, dy_img, dy, dyq);
    for (int64_t i = 0; i < m; i++) /* D = A dY A^T, tile by tile, VW output channels a vector */
        for (int64_t t = 0; t < tiles; t++) {
            const int64_t r0 = 4 * (t / g.TW), c0 = 4 * (t % g.TW);
            const float *src = dyq + i * g.OH * g.OW * M;
            for (int64_t m0 = 0; m0 < M; m0 += VW) {
                const vmask mm = v_mask(M - m0);
                vf y[16], e[20], o[25];
#pragma GCC unroll 4
                for (int p = 0; p < 4; p++)
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++)
                        y[4 * p + q] = r0 + p < g.OH && c0 + q < g.OW
                                           ? v_ld(mm, src + ((r0 + p) * g.OW + c0 + q) * M + m0)
                                           : v_zero();
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) a5(y + q, 4, e + q, 4); /* e[4 k + q] */
#pragma GCC unroll 5
                for (int k = 0; k < 5; k++) a5(e + 4 * k, 1, o + 5 * k, 1);
                float *dst = d + (i * tiles + t) * M + m0;
#pragma GCC unroll 25
                for (int xi = 0; xi < XI; xi++) v_st(dst + xi * pt.ds, mm, o[xi]);
            }
        }
    /* dU_xi (4 C x M) = V_xi^T D_xi, row c' at du + (c' XI + xi) M: the
     * 25 rows of a c' side by side for the pass below */
    for (int64_t xi = 0; xi < XI; xi++)
        S2_GEMM(1, 0, K4, M, T, 1.0f, v + xi * pt.vs, K4, d + xi * pt.ds, M, 0.0f, NULL,
                du + xi * M, XI * M);
    /* dw = G^T dU G: per input channel c and VW output channels, the four
     * phases' 2 x 2 taps (tap (2 u + a) 4 + 2 v + b, lanes m), transposed
     * into each kernel's 16 taps */
    for (int64_t c = 0; c < C; c++)
        for (int64_t m0 = 0; m0 < M; m0 += VW) {
            const vmask mm = v_mask(M - m0);
            vf taps[16];
            for (int64_t ph = 0; ph < 4; ph++) {
                vf z[25], e[10], o[4];
#pragma GCC unroll 25
                for (int xi = 0; xi < XI; xi++)
                    z[xi] = v_ld(mm, du + ((ph * C + c) * XI + xi) * M + m0);
#pragma GCC unroll 5
                for (int l = 0; l < 5; l++) gt5(z + l, 5, e + l, 5); /* e[5 u + l] */
#pragma GCC unroll 2
                for (int u = 0; u < 2; u++) gt5(e + 5 * u, 1, o + 2 * u, 1);
                const int64_t a = ph / 2, b = ph % 2;
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) taps[(2 * (j / 2) + a) * 4 + 2 * (j % 2) + b] = o[j];
            }
            kernels_store(taps, M - m0 < VW ? M - m0 : VW, dw + (m0 * C + c) * 16, C * 16);
        }
}
