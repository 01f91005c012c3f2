/* winograd_avx2.c - 3 x 3 stride-1 convolutions by Winograd's minimal
 * filtering on the AVX2 table: the method of winograd_avx512.c (read its
 * header for the algebra), with 8-lane vectors and the AVX2 table's own
 * products (conv_avx2.c):
 *
 *   forward (and the input gradient, a convolution of dy with the flipped
 *   kernel), by F(4 x 4, 3 x 3) or, where its tiles would cover too much
 *   past the output (gen_wino_tile), F(2 x 2, 3 x 3): the 36 (16)
 *   transformed kernels are packed once as the micro-kernel's A panels;
 *   per block of tile rows the input transform writes 36 (16) matrices
 *   V[xi] (C x tiles), gen_avx2_panels multiplies each by its kernels
 *   into Mo[xi] (M x tiles), and the output transform turns Mo into 4 x 4
 *   (2 x 2) blocks of outputs;
 *   weight gradient, by F(2 x 2, 3 x 3): per block, V[xi] and D[xi] = (A
 *   dy A^T)[xi] (M x tiles) meet in the forward pass's micro-kernel (or,
 *   where both have fewer than 64 rows, in gen_avx2_dw_block), whose sums
 *   over tiles add into Mo[xi] (M x C), transformed back into 3 x 3
 *   kernels at the end.
 *
 * AVX2 has no cheap masked stores (vmaskmovps stores are slow on AMD's
 * cores), so a group of images is first copied into zero-padded planes
 * on the tile grid (e TH + 2 rows of e TW + 2 columns for tiles of e x e
 * outputs, dy's 2 TH x 2 TW), and every load and store is a whole
 * vector. A vector holds 8 neighbouring tiles of one tile row, in order:
 * at F(2 x 2) even and odd columns come out of two loads by one shuffle
 * and one cross-lane permutation each, at F(4 x 4) the columns 4 apart by
 * a transpose (columns4). The last vector of a tile row is stored whole:
 * its lanes past the row land on the next row's first tiles, which are
 * stored after them, or past the block's tiles, in the spare columns each
 * matrix row keeps. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define XI 16
#define MR GEN_AVX2_MR
/* Floats of the 16 matrices of a block (input and output), which bound
 * its tile rows. Measured on a Zen 3 VM (512 KiB L2, 32 MiB L3; diffusion
 * steps and the 3 x 3 ops of bench_ops): the forward pass gained nothing
 * past 192 Ki floats; the weight gradient wants long blocks, since each
 * 4 x 3 block of gen_avx2_dw_block sums its lanes and stores once per
 * block of tiles (at 96 Ki floats a 14 x 14 layer's blocks had 42 tiles,
 * and those sums took most of its time), and the micro-kernel loads and
 * stores its sums once a block (Zen 4 VM, one thread, the U-Net's weight
 * gradients: at 192 Ki floats 7 % slower). */
#define BLOCK_FLOATS    ((int64_t)192 * 1024)
#define DW_BLOCK_FLOATS ((int64_t)768 * 1024)

struct wino {
    int e, xi;               /* outputs a tile side (2 or 4), matrices (16 or 36) */
    int64_t OH, OW, TH, TW;  /* output, tile grid */
    int64_t Wz, Pz, Wd, Pd;  /* padded planes: x's row and plane, dy's */
    int64_t group, rows, ld; /* images a group, tile rows a block at most, a matrix row */
};

static inline int64_t round8(int64_t n) {
    return (n + 7) / 8 * 8;
}

/* Floats of the padded planes of a group of images, at most: the m
 * images of a call where they fit, so that blocks may span images. */
#define GROUP_FLOATS ((int64_t)1 << 20)

/* Tiles of e x e outputs. Images a group: as many of the m as
 * GROUP_FLOATS holds (x's planes, and dy's for the weight gradient), at
 * least one. Tile rows a block, at most: its xi matrices (C + M rows)
 * about `block` floats, at most a group's rows. */
static struct wino wino_geo(int e, int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                            int64_t m, int with_dy, int64_t block) {
    struct wino g = {.e = e, .xi = (e + 2) * (e + 2), .OH = H + 2 * pad - 2, .OW = W + 2 * pad - 2};
    g.TH = (g.OH + e - 1) / e, g.TW = (g.OW + e - 1) / e;
    g.Wz = e * g.TW + 2, g.Pz = (e * g.TH + 2) * g.Wz;
    g.Wd = 2 * g.TW, g.Pd = 2 * g.TH * g.Wd;
    const int64_t fit = GROUP_FLOATS / (C * g.Pz + (with_dy ? M * g.Pd : 0));
    g.group = fit < m ? fit : m;
    g.group = g.group < 1 ? 1 : g.group;
    g.rows = block / (g.xi * (C + M) * g.TW);
    g.rows = g.rows < 1 ? 1 : g.rows < g.group * g.TH ? g.rows : g.group * g.TH;
    g.ld = (g.rows * g.TW + 15) / 16 * 16 + 16; /* rows of whole lines */
    return g;
}

static inline int64_t round16(int64_t n) {
    return (n + 15) / 16 * 16;
}

/* Tile rows a block, for a group of R tile rows: of the counts up to
 * g->rows, the one whose blocks leave the fewest idle columns in the
 * micro-kernels' 16-column steps (a block's overhead counted as 16 more),
 * the larger on ties. (A 14 x 14 layer's 7-tile rows in blocks of 7 fill
 * 49 of 64 columns; in blocks of 9, 63.) */
static int64_t block_rows(const struct wino *g, int64_t R) {
    int64_t best = 1, best_cost = INT64_MAX;
    for (int64_t r = 1; r <= g->rows && r <= R; r++) {
        const int64_t full = R / r, rest = R % r;
        const int64_t cost =
            full * (round16(r * g->TW) + 16) + (rest ? round16(rest * g->TW) + 16 : 0);
        if (cost <= best_cost) best = r, best_cost = cost;
    }
    return best;
}

/* The row half of B^T d B (w = d B) for 8 tiles from the padded row p:
 * tile l reads columns 2 l + {0, 1, 2, 3}. */
static inline void row_transform(const float *p, __m256 w[4]) {
    const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
    const __m256 a0 = _mm256_loadu_ps(p + 2), a1 = _mm256_loadu_ps(p + 10);
    const __m256 d0 = gen_avx2_evens(v0, v1), d1 = gen_avx2_odds(v0, v1),
                 d2 = gen_avx2_evens(a0, a1), d3 = gen_avx2_odds(a0, a1);
    w[0] = _mm256_sub_ps(d0, d2);
    w[1] = _mm256_add_ps(d1, d2);
    w[2] = _mm256_sub_ps(d2, d1);
    w[3] = _mm256_sub_ps(d1, d3);
}

/* Floats past a group's planes that the last vectors of a transform read
 * (F(2 x 2): up to 14 past the last row, F(4 x 4): up to 30). */
static inline int64_t slack(const struct wino *g) {
    return 8 * g->e + 8;
}

/* The group's images i0 .. i0 + n, their C planes zero-padded onto the
 * tile grid (Pz floats each, then the slack's zeros). */
static void pad_group(const float *x, int64_t img, int64_t n, int64_t C, int64_t H, int64_t W,
                      int64_t pad, const struct wino *g, float *xz) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++)
            gen_avx2_pad_plane(x + i * img + c * H * W, H, W, pad, g->e * g->TH + 2, g->Wz,
                               xz + (i * C + c) * g->Pz);
    memset(xz + n * C * g->Pz, 0, (size_t)slack(g) * sizeof(float));
}

/* V[xi] (rows ld apart, matrices vstep apart) = (B^T d B)[xi] for the
 * tiles of the group's tile rows [r0, r1), tile (r, tx) at column (r -
 * r0) TW + tx. Each input row's half transform serves the two tile rows
 * that read it. */
static void input_transform(const float *xz, int64_t C, const struct wino *g, int64_t r0,
                            int64_t r1, float *V, int64_t vstep) {
    for (int64_t c = 0; c < C; c++)
        /* the last vector of a row first: its lanes past the row land on
         * the next row's first vector, stored after them */
        for (int64_t tx = (g->TW - 1) / 8 * 8; tx >= 0; tx -= 8) {
            __m256 w[4][4] = {{_mm256_setzero_ps()}}; /* the first tile row sets all */
            for (int64_t r = r0; r < r1; r++) {
                const int64_t ty = r % g->TH;
                const float *p = xz + (r / g->TH * C + c) * g->Pz + 2 * ty * g->Wz + 2 * tx;
                if (r == r0 || ty == 0) {
                    row_transform(p, w[0]);
                    row_transform(p + g->Wz, w[1]);
                } else {
                    memcpy(w[0], w[2], sizeof w[0]);
                    memcpy(w[1], w[3], sizeof w[1]);
                }
                row_transform(p + 2 * g->Wz, w[2]);
                row_transform(p + 3 * g->Wz, w[3]);
                float *d = V + c * g->ld + (r - r0) * g->TW + tx;
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    _mm256_storeu_ps(d + (0 + q) * vstep, _mm256_sub_ps(w[0][q], w[2][q]));
                    _mm256_storeu_ps(d + (4 + q) * vstep, _mm256_add_ps(w[1][q], w[2][q]));
                    _mm256_storeu_ps(d + (8 + q) * vstep, _mm256_sub_ps(w[2][q], w[1][q]));
                    _mm256_storeu_ps(d + (12 + q) * vstep, _mm256_sub_ps(w[1][q], w[3][q]));
                }
            }
        }
}

/* U[xi][co][c] = (G g G^T)[xi] for output channel co's C kernels g (Wm,
 * M x C 9), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], into its row
 * of the 16 packed A operands of gen_avx2_panels at prep, pa floats apart. */
static void kernel_row(int64_t co, int64_t C, const float *Wm, int64_t pa, float *prep) {
    for (int64_t c = 0; c < C; c++) {
        const float *k = Wm + (co * C + c) * 9;
        float t[4][3];
        for (int v = 0; v < 3; v++) {
            const float s02 = k[v] + k[6 + v];
            t[0][v] = k[v];
            t[1][v] = 0.5f * (s02 + k[3 + v]);
            t[2][v] = 0.5f * (s02 - k[3 + v]);
            t[3][v] = k[6 + v];
        }
        float *d = prep + (co / MR * C + c) * MR + co % MR;
        for (int r = 0; r < 4; r++) {
            const float s02 = t[r][0] + t[r][2];
            d[(r * 4 + 0) * pa] = t[r][0];
            d[(r * 4 + 1) * pa] = 0.5f * (s02 + t[r][1]);
            d[(r * 4 + 2) * pa] = 0.5f * (s02 - t[r][1]);
            d[(r * 4 + 3) * pa] = t[r][2];
        }
    }
}

/* n floats of o (whole vectors, then a head) + beta d to d: a row of
 * outputs, n <= 8 times o's vectors. */
static inline void put_row(__m256 *o, int64_t n, __m256 vb, float beta, float *d) {
#pragma GCC unroll 4
    for (int v = 0; 8 * v < n; v++) {
        float *dv = d + 8 * v;
        const int64_t k = n - 8 * v;
        if (k >= 8) {
            if (beta != 0.0f) o[v] = _mm256_fmadd_ps(vb, _mm256_loadu_ps(dv), o[v]);
            _mm256_storeu_ps(dv, o[v]);
        } else {
            if (beta != 0.0f) o[v] = _mm256_fmadd_ps(vb, gen_avx2_load_head(dv, k), o[v]);
            gen_avx2_store_head(dv, o[v], k);
        }
    }
}

/* The 2 x 2 blocks (A^T Mo A) + bc of 8 tiles at src (matrices step
 * apart) into `rows` rows of out at d, OW apart, n floats of each (+ beta
 * out); A^T = [1 1 1 0; 0 1 -1 -1]. */
static inline void out_block2(const float *src, int64_t step, __m256 bc, __m256 vb, float beta,
                              float *d, int64_t OW, int64_t n, int64_t rows) {
    __m256 s[2][4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        const __m256 c0 = _mm256_loadu_ps(src + q * step),
                     c1 = _mm256_loadu_ps(src + (4 + q) * step),
                     c2 = _mm256_loadu_ps(src + (8 + q) * step),
                     c3 = _mm256_loadu_ps(src + (12 + q) * step);
        s[0][q] = _mm256_add_ps(_mm256_add_ps(c0, c1), c2);
        s[1][q] = _mm256_sub_ps(_mm256_sub_ps(c1, c2), c3);
    }
    for (int a = 0; a < 2 && a < rows; a++) {
        const __m256 y0 =
                         _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[a][0], s[a][1]), s[a][2]), bc),
                     y1 =
                         _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[a][1], s[a][2]), s[a][3]), bc);
        const __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);
        __m256 o[2] = {_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31)};
        put_row(o, n, vb, beta, d + a * OW);
    }
}

/* ---- F(4 x 4, 3 x 3) ---------------------------------------------------------
 * 6 x 6 input tiles at a stride of 4, 36 products of (M x C) by (C x tiles)
 * for 16 outputs a tile: 2.25 products an output where F(2 x 2) takes 4.
 * B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 * 0 2 -1 -2 1 0; 0 4 0 -5 0 1], G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6
 * -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], A^T = [1 1 1 1 1 0; 0 1 -1
 * 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] (the points 0, +-1, +-2 and
 * infinity). A vector still holds 8 neighbouring tiles of a tile row; their
 * 4 columns apart come out of 4 loads by a transpose within each 128-bit
 * half, once the halves are paired across the loads (tiles 0 and 4, 1 and
 * 5, ...) so that the tiles stay in order. */

/* B^T d, d = 6 vectors of 8 tiles, in place. */
static inline void bt6(__m256 d[6]) {
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f);
    const __m256 t1 = _mm256_fnmadd_ps(four, d[2], d[4]), t2 = _mm256_fnmadd_ps(four, d[1], d[3]);
    const __m256 t3 = _mm256_sub_ps(d[4], d[2]), t4h = _mm256_sub_ps(d[3], d[1]);
    const __m256 t4 = _mm256_add_ps(t4h, t4h);
    const __m256 w0 = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
    const __m256 w5 = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
    d[0] = w0;
    d[1] = _mm256_add_ps(t1, t2);
    d[2] = _mm256_sub_ps(t1, t2);
    d[3] = _mm256_add_ps(t3, t4);
    d[4] = _mm256_sub_ps(t3, t4);
    d[5] = w5;
}

/* Tiles 0..7's columns k, 4 l + k of their rows for tile l, from the 4
 * vectors at s[0..4) + off (two tiles each; s[i] = p + 8 i for 8 tiles of
 * one tile row at p): halves paired (0 | 4), (1 | 5), (2 | 6), (3 | 7),
 * then transposed within each half; columns 0 and 1 only when two. */
static inline void columns4(const float *const s[4], int64_t off, __m256 *col, int two) {
    const __m256 v0 = _mm256_loadu_ps(s[0] + off), v1 = _mm256_loadu_ps(s[1] + off),
                 v2 = _mm256_loadu_ps(s[2] + off), v3 = _mm256_loadu_ps(s[3] + off);
    const __m256 a = _mm256_permute2f128_ps(v0, v2, 0x20), b = _mm256_permute2f128_ps(v0, v2, 0x31),
                 c = _mm256_permute2f128_ps(v1, v3, 0x20), d = _mm256_permute2f128_ps(v1, v3, 0x31);
    const __m256 t0 = _mm256_unpacklo_ps(a, b), t2 = _mm256_unpacklo_ps(c, d);
    col[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    col[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    if (two) return;
    const __m256 t1 = _mm256_unpackhi_ps(a, b), t3 = _mm256_unpackhi_ps(c, d);
    col[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    col[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* The row half of B^T d B for 8 tiles whose rows' vectors start at s[0..4)
 * + off (columns4): tile l reads columns 4 l + {0, ..., 5} of its row. */
static inline void row_transform4(const float *const s[4], int64_t off, __m256 w[6]) {
    columns4(s, off, w, 0);
    columns4(s, off + 4, w + 4, 1);
    bt6(w);
}

/* Tile rows a vector of 8 tiles holds: where a tile row has 4 tiles (13 to
 * 16 outputs a side, as 14 x 14) two, where it has 2 (5 to 8, as 7 x 7)
 * four, each in whole halves of 4 tiles or quarters of 2, so that its V
 * and Mo columns run on as they lie (tile (r, tx) at (r - r0) TW + tx);
 * else 1, a vector of 8 tiles of one row. (Each tile row a vector of its own had half or
 * three quarters of its lanes past the row at 14 and 7.) */
static inline int64_t rows_a_vector(const struct wino *g) {
    return g->TW == 4 ? 2 : g->TW == 2 ? 4 : 1;
}

/* Where tile row r's padded input rows start in the group's planes (its
 * first tile). */
static inline const float *tile_row4(const float *xz, int64_t C, const struct wino *g, int64_t c,
                                     int64_t r) {
    return xz + (r / g->TH * C + c) * g->Pz + 4 * (r % g->TH) * g->Wz;
}

/* The 4 vectors columns4 loads for the rv tile rows from r (1: 8 tiles
 * from column 4 tx; 2: 4 tiles of each; 4: 2 of each), rows past r1
 * repeating r's (their lanes land past the block's tiles). */
static inline void vector_rows(const float *xz, int64_t C, const struct wino *g, int64_t c,
                               int64_t r, int64_t r1, int64_t tx, int64_t rv, const float *s[4]) {
    if (rv == 1) {
        const float *p = tile_row4(xz, C, g, c, r) + 4 * tx;
        for (int i = 0; i < 4; i++) s[i] = p + 8 * i;
        return;
    }
    for (int i = 0; i < 4; i++) {
        const int64_t t = r + i * rv / 4; /* rv 2: r, r, r + 1, r + 1 */
        s[i] = tile_row4(xz, C, g, c, t < r1 ? t : r) + (rv == 2 ? 8 * (i % 2) : 0);
    }
}

/* As input_transform, for F(4 x 4): V[6 k + q] = (B^T d B)[k][q]. Each
 * tile row reads 6 input rows, the last 2 of which the next one reads
 * first. */
static void input_transform4(const float *xz, int64_t C, const struct wino *g, int64_t r0,
                             int64_t r1, float *V, int64_t vstep) {
    const int64_t rv = rows_a_vector(g);
    for (int64_t c = 0; c < C; c++)
        for (int64_t tx = (g->TW - 1) / 8 * 8; tx >= 0; tx -= 8) {
            __m256 w[6][6] = {{_mm256_setzero_ps()}}; /* the first tile row sets all */
            for (int64_t r = r0; r < r1; r += rv) {
                const float *s[4];
                vector_rows(xz, C, g, c, r, r1, tx, rv, s);
                if (rv > 1 || r == r0 || r % g->TH == 0) { /* one row: 2 carried */
                    row_transform4(s, 0, w[0]);
                    row_transform4(s, g->Wz, w[1]);
                } else {
                    memcpy(w[0], w[4], sizeof w[0]);
                    memcpy(w[1], w[5], sizeof w[1]);
                }
#pragma GCC unroll 4
                for (int k = 2; k < 6; k++) row_transform4(s, k * g->Wz, w[k]);
                float *d = V + c * g->ld + (r - r0) * g->TW + tx;
#pragma GCC unroll 6
                for (int q = 0; q < 6; q++) {
                    __m256 col[6] = {w[0][q], w[1][q], w[2][q], w[3][q], w[4][q], w[5][q]};
                    bt6(col);
#pragma GCC unroll 6
                    for (int k = 0; k < 6; k++) _mm256_storeu_ps(d + (6 * k + q) * vstep, col[k]);
                }
            }
        }
}

/* G (k0 k1 k2)^T for 4 kernels at once (one kernel at a time in scalar
 * doubles, with divisions, this was 2 % of a diffusion step under
 * GEN_ISA=avx2) */
GEN_WINO_G6(__m256d, _mm256_add_pd, _mm256_sub_pd, _mm256_mul_pd, _mm256_set1_pd)

/* Tap t of the n <= 4 kernels at k (9 floats apart) as doubles, zeros
 * past n. */
static inline __m256d taps4(const float *k, int t, int64_t n) {
    return _mm256_setr_pd(k[t], n > 1 ? k[9 + t] : 0.0, n > 2 ? k[18 + t] : 0.0,
                          n > 3 ? k[27 + t] : 0.0);
}

/* U = G g G^T for output channel co's C kernels, as kernel_row, 4 kernels
 * at a time (in double: the products' sums are F(4 x 4)'s larger error,
 * not these). */
static void kernel_row4(int64_t co, int64_t C, const float *Wm, int64_t pa, float *prep) {
    for (int64_t c0 = 0; c0 < C; c0 += 4) {
        const int64_t n = C - c0 < 4 ? C - c0 : 4;
        const float *k = Wm + (co * C + c0) * 9;
        __m256d t[3][6]; /* t[v]: G times column v of g */
        for (int v = 0; v < 3; v++)
            g6(taps4(k, v, n), taps4(k, 3 + v, n), taps4(k, 6 + v, n), t[v]);
        float *d = prep + (co / MR * C + c0) * MR + co % MR;
        for (int r = 0; r < 6; r++) {
            __m256d u[6];
            g6(t[0][r], t[1][r], t[2][r], u);
            for (int q = 0; q < 6; q++) {
                float f[4];
                _mm_storeu_ps(f, _mm256_cvtpd_ps(u[q]));
                for (int64_t j = 0; j < n; j++) d[(r * 6 + q) * pa + j * MR] = f[j];
            }
        }
    }
}

/* A^T m, m = 6 vectors of 8 tiles, into y[0..4). */
static inline void at6(const __m256 m[6], __m256 y[4]) {
    const __m256 s1 = _mm256_add_ps(m[1], m[2]), d1 = _mm256_sub_ps(m[1], m[2]);
    const __m256 s2 = _mm256_add_ps(m[3], m[4]), d2 = _mm256_sub_ps(m[3], m[4]);
    y[0] = _mm256_add_ps(_mm256_add_ps(m[0], s1), s2);
    y[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d2, d1);
    y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), s2, s1);
    y[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d2, d1), m[5]);
}

/* As out_block2, for F(4 x 4): 4 x 4 blocks, into o[a][0..4), output row
 * a of the 8 tiles (4 floats a tile). A row's columns come back in order by
 * columns4's transpose run backwards: within halves, then the halves
 * re-paired. */
static inline void out_tiles4(const float *src, int64_t step, __m256 bc, __m256 o[4][4]) {
    __m256 h[4][6]; /* h[b][k]: row k of Mo A, column b */
#pragma GCC unroll 6
    for (int k = 0; k < 6; k++) {
        __m256 m[6], y[4];
#pragma GCC unroll 6
        for (int q = 0; q < 6; q++) m[q] = _mm256_loadu_ps(src + (6 * k + q) * step);
        /* A^T's column 1 is all ones: the bias at [1][1] adds to every
         * output */
        if (k == 1) m[1] = _mm256_add_ps(m[1], bc);
        at6(m, y);
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) h[b][k] = y[b];
    }
    __m256 y[4][4]; /* y[b][a] */
#pragma GCC unroll 4
    for (int b = 0; b < 4; b++) at6(h[b], y[b]);
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++) {
        const __m256 t0 = _mm256_unpacklo_ps(y[0][a], y[1][a]),
                     t1 = _mm256_unpackhi_ps(y[0][a], y[1][a]),
                     t2 = _mm256_unpacklo_ps(y[2][a], y[3][a]),
                     t3 = _mm256_unpackhi_ps(y[2][a], y[3][a]);
        const __m256 r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                     r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        o[a][0] = _mm256_permute2f128_ps(r0, r1, 0x20);
        o[a][1] = _mm256_permute2f128_ps(r2, r3, 0x20);
        o[a][2] = _mm256_permute2f128_ps(r0, r1, 0x31);
        o[a][3] = _mm256_permute2f128_ps(r2, r3, 0x31);
    }
}

/* out[i out_img + co ldo + (e ty + a) OW + e tx + b] = (A^T Mo A)[a][b] +
 * bias[co] + beta out for the tiles of the group's tile rows [r0, r1), 8
 * tiles at a time. A row's last vectors, where it ends inside them, are
 * stored by gen_avx2_store_head. */
static void output_transform(const struct wino *g, int64_t M, int64_t r0, int64_t r1,
                             const float *Mo, int64_t step, const float *bias, float beta,
                             float *out, int64_t ldo, int64_t out_img) {
    const __m256 vb = _mm256_set1_ps(beta);
    const int64_t e = g->e, rv = e == 4 ? rows_a_vector(g) : 1;
    for (int64_t co = 0; co < M; co++) {
        const __m256 bc = _mm256_set1_ps(bias ? bias[co] : 0.0f);
        for (int64_t r = r0; r < r1; r += rv) {
            for (int64_t tx = 0; tx < g->TW; tx += 8) {
                const float *src = Mo + co * g->ld + (r - r0) * g->TW + tx;
                if (e == 2) {
                    const int64_t ty = r % g->TH, n = g->OW - 2 * tx < 16 ? g->OW - 2 * tx : 16;
                    float *d = out + r / g->TH * out_img + co * ldo + 2 * ty * g->OW + 2 * tx;
                    out_block2(src, step, bc, vb, beta, d, g->OW, n, g->OH - 2 * ty);
                    continue;
                }
                __m256 o[4][4];
                out_tiles4(src, step, bc, o);
                /* the vector's tile rows: 32 / rv outputs of each a row */
                for (int64_t i = 0; i < rv && r + i < r1; i++) {
                    const int64_t t = r + i, ty = t % g->TH, rows = g->OH - 4 * ty;
                    const int64_t w = 32 / rv, n = g->OW - 4 * tx < w ? g->OW - 4 * tx : w;
                    float *d = out + t / g->TH * out_img + co * ldo + 4 * ty * g->OW + 4 * tx;
                    for (int64_t a = 0; a < 4 && a < rows; a++)
                        put_row(o[a] + i * 4 / rv, n, vb, beta, d + a * g->OW);
                }
            }
        }
    }
}

/* ---- the forward pass, by either ------------------------------------------ */

static int64_t prep_work_e(int e, int64_t M, int64_t C) {
    return (e + 2) * (e + 2) * gen_avx2_pack_floats(M, C);
}

int64_t gen_wino_avx2_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad) {
    return prep_work_e(gen_wino_tile(H, W, pad), M, C);
}

/* Across the threads, as ops_conv calls it before its chunk loop; the last
 * panel's rows past M are zeros. */
static void prep_e(int e, int64_t M, int64_t C, const float *Wm, float *prep) {
    const int64_t pa = gen_avx2_pack_floats(M, C), xi = (e + 2) * (e + 2);
    void (*row)(int64_t, int64_t, const float *, int64_t, float *) =
        e == 4 ? kernel_row4 : kernel_row;
    GEN_KFOR(GEN_KPAR_ROWS(M, M * C * xi), co, M, row(co, C, Wm, pa, prep));
    for (int64_t r = M; r < pa / C; r++)
        for (int64_t x = 0; x < xi; x++)
            for (int64_t c = 0; c < C; c++) prep[x * pa + (r / MR * C + c) * MR + r % MR] = 0.0f;
}

void gen_wino_avx2_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, const float *Wm,
                        float *prep) {
    prep_e(gen_wino_tile(H, W, pad), M, C, Wm, prep);
}

static int64_t conv_work_e(int e, int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                           int64_t m) {
    const struct wino g = wino_geo(e, M, C, H, W, pad, m, 0, BLOCK_FLOATS);
    return round8(g.group * C * g.Pz + slack(&g)) + g.xi * gen_wino_spread(C * g.ld) +
           g.xi * gen_wino_spread(M * g.ld) + round8(2 * C);
}

int64_t gen_wino_avx2_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                                int64_t m) {
    return conv_work_e(gen_wino_tile(H, W, pad), M, C, H, W, pad, m);
}

static void conv_e(int e, int64_t M, const float *prep, int64_t C, int64_t H, int64_t W,
                   int64_t pad, int64_t m, int64_t img, const float *x, const float *bias,
                   float beta, float *out, int64_t ldo, int64_t out_img, float *work) {
    const struct wino g = wino_geo(e, M, C, H, W, pad, m, 0, BLOCK_FLOATS);
    const int64_t pa = gen_avx2_pack_floats(M, C), vstep = gen_wino_spread(C * g.ld),
                  mstep = gen_wino_spread(M * g.ld);
    float *xz = work, *V = xz + round8(g.group * C * g.Pz + slack(&g)), *Mo = V + g.xi * vstep;
    const float **rows = (const float **)(void *)(Mo + g.xi * mstep);
    for (int64_t i0 = 0; i0 < m; i0 += g.group) {
        const int64_t gn = m - i0 < g.group ? m - i0 : g.group;
        pad_group(x + i0 * img, img, gn, C, H, W, pad, &g, xz);
        const int64_t br = block_rows(&g, gn * g.TH);
        for (int64_t r0 = 0; r0 < gn * g.TH; r0 += br) {
            const int64_t r1 = r0 + br < gn * g.TH ? r0 + br : gn * g.TH;
            const int64_t n = (r1 - r0) * g.TW;
            if (e == 4)
                input_transform4(xz, C, &g, r0, r1, V, vstep);
            else
                input_transform(xz, C, &g, r0, r1, V, vstep);
            for (int xi = 0; xi < g.xi; xi++) {
                for (int64_t c = 0; c < C; c++) rows[c] = V + xi * vstep + c * g.ld;
                for (int64_t j = 0; j < n; j += 16)
                    gen_avx2_panels(M, C, prep + xi * pa, rows, j, Mo + xi * mstep + j, g.ld);
            }
            output_transform(&g, M, r0, r1, Mo, mstep, bias, beta, out + i0 * out_img, ldo,
                             out_img);
        }
    }
}

void gen_wino_avx2_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                        int64_t m, int64_t img, const float *x, const float *bias, float beta,
                        float *out, int64_t ldo, int64_t out_img, float *work) {
    conv_e(gen_wino_tile(H, W, pad), M, prep, C, H, W, pad, m, img, x, bias, beta, out, ldo,
           out_img, work);
}

/* D[xi] (rows ld apart, matrices step apart) = (A dy A^T)[xi] for the
 * tiles of the group's tile rows [r0, r1), from dy's padded planes (zeros
 * past the output's edge); A = [1 0; 1 1; 1 -1; 0 -1]. */
static void dy_transform(const float *dz, int64_t M, const struct wino *g, int64_t r0, int64_t r1,
                         float *D, int64_t step) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t co = 0; co < M; co++)
        for (int64_t r = r0; r < r1; r++) {
            const int64_t ty = r % g->TH;
            for (int64_t tx = 0; tx < g->TW; tx += 8) {
                __m256 u[2][4];
#pragma GCC unroll 2
                for (int a = 0; a < 2; a++) {
                    const float *p =
                        dz + (r / g->TH * M + co) * g->Pd + (2 * ty + a) * g->Wd + 2 * tx;
                    const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
                    const __m256 e = gen_avx2_evens(v0, v1), o = gen_avx2_odds(v0, v1);
                    u[a][0] = e;
                    u[a][1] = _mm256_add_ps(e, o);
                    u[a][2] = _mm256_sub_ps(e, o);
                    u[a][3] = _mm256_sub_ps(zero, o);
                }
                float *d = D + co * g->ld + (r - r0) * g->TW + tx;
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    _mm256_storeu_ps(d + (0 + q) * step, u[0][q]);
                    _mm256_storeu_ps(d + (4 + q) * step, _mm256_add_ps(u[0][q], u[1][q]));
                    _mm256_storeu_ps(d + (8 + q) * step, _mm256_sub_ps(u[0][q], u[1][q]));
                    _mm256_storeu_ps(d + (12 + q) * step, _mm256_sub_ps(zero, u[1][q]));
                }
            }
        }
}

/* dw[co, ci 9 + 3 u + v] = (G^T Mo G)[u][v], Mo's element (co, ci) at co
 * so + ci si, its matrices step floats apart; G^T = [1 1/2 1/2 0; 0 1/2
 * -1/2 0; 0 1/2 1/2 1]. */
static void dw_transform(int64_t M, int64_t C, const float *Mo, int64_t so, int64_t si,
                         int64_t step, float *dw) {
    for (int64_t co = 0; co < M; co++)
        for (int64_t ci = 0; ci < C; ci++) {
            const int64_t k = co * so + ci * si;
            float r[3][4];
            for (int q = 0; q < 4; q++) {
                const float c0 = Mo[k + q * step], c1 = Mo[k + (4 + q) * step],
                            c2 = Mo[k + (8 + q) * step], c3 = Mo[k + (12 + q) * step];
                const float p = 0.5f * (c1 + c2);
                r[0][q] = c0 + p;
                r[1][q] = 0.5f * (c1 - c2);
                r[2][q] = p + c3;
            }
            float *d = dw + (co * C + ci) * 9;
            for (int u = 0; u < 3; u++) {
                const float p = 0.5f * (r[u][1] + r[u][2]);
                d[3 * u + 0] = r[u][0] + p;
                d[3 * u + 1] = 0.5f * (r[u][1] - r[u][2]);
                d[3 * u + 2] = p + r[u][3];
            }
        }
}

/* The weight gradient's 16 products, Mo[xi] (M x C) = sum over the tiles
 * of D[xi] (M x tiles) V[xi]^T. Where either operand has 64 rows or more,
 * they run on the forward pass's micro-kernel (gen_avx2_tile_in_place),
 * whose sums stay in registers over a whole block of tiles, where
 * gen_avx2_dw_block sums its 8 lanes and stores once a block. One
 * operand's rows are read in place, the other's first turned into panels
 * of 16 rows, a tile's 16 side by side (panels16): the one with fewer
 * rows, so that the transposes cost least (the product is then Mo[xi]^T,
 * C x M, where D is packed). At 32 x 32 channels those transposes cost
 * more than the kernel saves, and gen_avx2_dw_block runs the products
 * (one thread, 8 images of 28 x 28: 0.79 against 0.89 ms; 64 x 64 at 14
 * x 14 0.83 against 0.74, 128 x 64 1.58 against 1.32). Each matrix has its
 * rows rounded up to the kernel's panel, the rows past zeros. */
static inline int64_t round_mr(int64_t n) {
    return (n + MR - 1) / MR * MR;
}

/* The rows rows of kc tiles at src (ld apart) as panels of 16 rows at bp
 * (panel p at p kc 16, tile t's 16 at + 16 t), zeros past the last row;
 * kc a multiple of 8. */
static void panels16(const float *src, int64_t rows, int64_t ld, int64_t kc, float *bp) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        float *p = bp + r0 * kc;
        for (int64_t t = 0; t < kc; t += 8)
            for (int h = 0; h < 2; h++) {
                __m256 v[8];
                for (int i = 0; i < 8; i++) {
                    const int64_t r = r0 + 8 * h + i;
                    v[i] = r < rows ? _mm256_loadu_ps(src + r * ld + t) : zero;
                }
                gen_avx2_transpose8(v);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(p + (t + i) * 16 + 8 * h, v[i]);
            }
    }
}

/* The products' shape: on the kernel or not (tile), the operand read in
 * place (`rows` of them) and the one packed (`cols`), Mo's rows lo floats
 * apart; without the kernel D's rows, V's columns. */
struct dw_shape {
    int tile, pack_d;
    int64_t rows, cols, lo;
};

static struct dw_shape dw_shape(int64_t M, int64_t C) {
    const int tile = (M > C ? M : C) >= 64, pack_d = tile && M < C;
    const int64_t rows = pack_d ? C : M, cols = pack_d ? M : C;
    return (struct dw_shape){
        .tile = tile, .pack_d = pack_d, .rows = rows, .cols = cols, .lo = round16(cols)};
}

/* Rows the next call of the kernel takes, of the `left` rows: 6, but
 * where 1 or 2 would be left for the last call, 4 (on 2 rows the kernel
 * has 4 chains of multiply-adds, too few to keep the FMA units busy). */
static inline int64_t dw_rows(int64_t left) {
    return left > MR && left % MR != 0 && left % MR <= 2 ? 4 : left < MR ? left : MR;
}

/* mo (rows x cols, rows sh->lo apart) (+)= a (rows x kc) b^T (b: cols x
 * kc), both rows ld apart, on the kernel; bp: b's panels. */
static void tile_product(const struct dw_shape *sh, const float *a, const float *b, int64_t ld,
                         int64_t kc, float *bp, float *mo, int acc) {
    panels16(b, sh->cols, ld, kc, bp);
    for (int64_t i = 0, mr; i < sh->rows; i += mr) {
        mr = dw_rows(sh->rows - i);
        for (int64_t j = 0; j < sh->cols; j += 16)
            gen_avx2_tile_in_place(kc, a + i * ld, ld, 1, bp + j * kc, NULL, mo + i * sh->lo + j,
                                   sh->lo, mr, acc);
    }
}

/* mo (M x C, rows lo apart) (+)= d (M x kc) v^T (v: C x kc), both rows ld
 * apart, by gen_avx2_dw_block. */
static void lanes_product(int64_t M, int64_t C, const float *d, const float *v, int64_t ld,
                          int64_t kc, float *mo, int64_t lo, int acc) {
    for (int64_t co0 = 0; co0 < M; co0 += 4)
        for (int64_t c0 = 0; c0 < C; c0 += 3) {
            const int64_t kn = C - c0 < 3 ? C - c0 : 3;
            const float *b[3];
            for (int64_t j = 0; j < 3; j++) b[j] = v + (c0 + (j < kn ? j : kn - 1)) * ld;
            gen_avx2_dw_block(M - co0 < 4 ? M - co0 : 4, kn, 1, kc, d + co0 * ld, 0, ld, b, 0,
                              mo + co0 * lo + c0, lo, acc);
        }
}

int64_t gen_wino_avx2_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct wino g = wino_geo(2, M, C, H, W, pad, m, 1, DW_BLOCK_FLOATS);
    const struct dw_shape sh = dw_shape(M, C);
    return round8(g.group * C * g.Pz + slack(&g)) + round8(g.group * M * g.Pd + 16) +
           XI * gen_wino_spread(round_mr(C) * g.ld) + XI * gen_wino_spread(round_mr(M) * g.ld) +
           XI * gen_wino_spread(sh.rows * sh.lo) + sh.lo * g.ld;
}

/* Zeros in columns [n, round8(n)) of the rows rows of the 16 matrices at
 * mat (rows ld apart, matrices step apart): the products' last 8 tiles. */
static void zero_tails(float *mat, int64_t step, int64_t rows, int64_t ld, int64_t n) {
    for (int xi = 0; xi < XI; xi++)
        for (int64_t k = 0; k < rows; k++)
            for (int64_t t = n; t < round8(n); t++) mat[xi * step + k * ld + t] = 0.0f;
}

void gen_wino_avx2_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                      int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work) {
    const struct wino g = wino_geo(2, M, C, H, W, pad, m, 1, DW_BLOCK_FLOATS);
    const struct dw_shape sh = dw_shape(M, C);
    const int64_t vstep = gen_wino_spread(round_mr(C) * g.ld),
                  dstep = gen_wino_spread(round_mr(M) * g.ld),
                  ostep = gen_wino_spread(sh.rows * sh.lo);
    float *xz = work, *dz = xz + round8(g.group * C * g.Pz + slack(&g));
    float *V = dz + round8(g.group * M * g.Pd + 16), *D = V + XI * vstep, *Mo = D + XI * dstep;
    float *bp = Mo + XI * ostep;
    /* the in-place operand's rows, packed's, their matrices' distance */
    const float *ra = sh.pack_d ? V : D, *pa = sh.pack_d ? D : V;
    const int64_t rstep = sh.pack_d ? vstep : dstep, pstep = sh.pack_d ? dstep : vstep;
    for (int xi = 0; xi < XI; xi++) { /* the rows past C and M, which the kernel may read */
        memset(V + xi * vstep + C * g.ld, 0, (size_t)((round_mr(C) - C) * g.ld) * sizeof(float));
        memset(D + xi * dstep + M * g.ld, 0, (size_t)((round_mr(M) - M) * g.ld) * sizeof(float));
    }
    int first = 1;
    for (int64_t i0 = 0; i0 < m; i0 += g.group) {
        const int64_t gn = m - i0 < g.group ? m - i0 : g.group;
        pad_group(x + i0 * img, img, gn, C, H, W, pad, &g, xz);
        for (int64_t i = 0; i < gn; i++) /* dy's planes onto the tile grid */
            for (int64_t co = 0; co < M; co++)
                gen_avx2_pad_plane(dy + (i0 + i) * dy_img + co * g.OH * g.OW, g.OH, g.OW, 0,
                                   2 * g.TH, g.Wd, dz + (i * M + co) * g.Pd);
        memset(dz + gn * M * g.Pd, 0, 16 * sizeof(float));
        const int64_t br = block_rows(&g, gn * g.TH);
        for (int64_t r0 = 0; r0 < gn * g.TH; r0 += br) {
            const int64_t r1 = r0 + br < gn * g.TH ? r0 + br : gn * g.TH;
            const int64_t n = (r1 - r0) * g.TW, kc = round8(n);
            input_transform(xz, C, &g, r0, r1, V, vstep);
            dy_transform(dz, M, &g, r0, r1, D, dstep);
            zero_tails(V, vstep, C, g.ld, n);
            zero_tails(D, dstep, M, g.ld, n);
            for (int xi = 0; xi < XI; xi++)
                if (sh.tile)
                    tile_product(&sh, ra + xi * rstep, pa + xi * pstep, g.ld, kc, bp,
                                 Mo + xi * ostep, !first);
                else
                    lanes_product(M, C, D + xi * dstep, V + xi * vstep, g.ld, kc, Mo + xi * ostep,
                                  sh.lo, !first);
            first = 0;
        }
    }
    if (first) { /* no images */
        memset(dw, 0, (size_t)(M * C * 9) * sizeof(float));
        return;
    }
    dw_transform(M, C, Mo, sh.pack_d ? 1 : sh.lo, sh.pack_d ? sh.lo : 1, ostep, dw);
}
