/* winograd_avx512.c - the fp32 products of the 3 x 3 stride-1
 * convolutions by Winograd's minimal filtering, the transformed operands
 * as floats multiplied by the packed AVX-512 GEMM: forward passes (and so
 * input gradients) and weight gradients by F(4 x 4, 3 x 3) where
 * gen_wino_tile says, else by F(2 x 2, 3 x 3) (winograd_avx512.h, shared
 * with bf16). */
#include "kernels/winograd_avx512.h"

static void pack(int64_t M, int64_t C, const float *A, float *ap) {
    gen_gemm_avx512_pack_a(GEN_NOTRANS, M, C, A, C, ap);
}

static void product(int64_t M, int64_t n, int64_t depth, const float *ap, const float *v,
                    float *mo) {
    gen_sgemm_avx512_packed(M, n, depth, ap, v, 0.0f, mo, n);
}

static void dw_product(int64_t M, int64_t C, int64_t n, const float *d, const float *v, float beta,
                       float *mo) {
    gen_sgemm_avx512(0, 1, M, C, n, 1.0f, d, n, v, n, beta, NULL, mo, C);
}

/* ---- F(4 x 4, 3 x 3): the forward pass ----------------------------------
 *
 * Y = A^T [ (G g G^T) (.) (B^T d B) ] A over 6 x 6 input tiles d a
 * 4 x 4 block of outputs apart, with B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0;
 * 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1], G = [1/4 0
 * 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 * and A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * (gen_wino_tile says where): 36 GEMMs of (M x C) by (C x tiles), 2.25
 * products an output against F(2 x 2)'s 4.
 *
 * A block is a run of tiles in the order of the m images' tile grids (row
 * after row, image after image), whatever rows they fall in, and a vector
 * holds 16 consecutive ones of them: every lane used but the block's last
 * vector's. Within a vector the tiles fall into runs of at most 7 tiles
 * of one tile row (struct run4). A run's 6 input columns 4 l + k of tile
 * l lie in 32 consecutive floats of a row, read by two masked loads (zeros
 * outside the image) and picked out by one permutation each, whose
 * indices place the run in its lanes. */
#define XI4     36
#define RUN_MAX 7

struct geo4 {
    int64_t OH, OW, TH, TW, tiles; /* output, tile grid, tiles of an image */
};

static struct geo4 geo4(int64_t H, int64_t W, int64_t pad) {
    struct geo4 g = {.OH = H + 2 * pad - 2, .OW = W + 2 * pad - 2};
    g.TH = (g.OH + 3) / 4, g.TW = (g.OW + 3) / 4, g.tiles = g.TH * g.TW;
    return g;
}

/* Where a run's tiles read an image's plane: from row `row` (negative in
 * the padding) and its column, at `off` floats from the plane's start; m0,
 * m1 keep a row's two loads of 16 inside the plane's columns. */
struct rows {
    int64_t row, off;
    __mmask16 m0, m1;
};

/* Tiles [tx, tx + b - a) of tile row ty of image i, in lanes [a, b) of
 * their vector (keep): their input rows from row 4 ty - pad, column 4 tx -
 * pad (`in`), their outputs (and dy) from row 4 ty, column 4 tx (`out`),
 * `cols` of an output row from there on. */
struct run4 {
    int64_t i, cols;
    struct rows in, out;
    int32_t a, b;
    __mmask16 keep;
};

/* The runs of the tiles [t0, t0 + n) in their vectors: those of vector v
 * at runs[first[v] .. first[v + 1]). */
static void runs_of(const struct geo4 *g, int64_t W, int64_t pad, int64_t t0, int64_t n,
                    struct run4 *runs, int64_t *first) {
    int64_t nr = 0;
    for (int64_t v = 0; 16 * v < n; v++) {
        first[v] = nr;
        for (int64_t l = 16 * v; l < n && l < 16 * (v + 1);) {
            const int64_t t = t0 + l, i = t / g->tiles, ty = t % g->tiles / g->TW, tx = t % g->TW;
            int64_t len = g->TW - tx, room = 16 * (v + 1) - l;
            len = len < room ? len : room;
            len = len < RUN_MAX ? len : RUN_MAX;
            len = len < n - l ? len : n - l;
            const int64_t c0 = 4 * tx - pad, a = l - 16 * v;
            const int64_t cols = g->OW - 4 * tx;
            runs[nr++] = (struct run4){
                .i = i,
                .cols = cols,
                .in = {4 * ty - pad, (4 * ty - pad) * W + c0, lanes(-c0, W - c0),
                       lanes(-c0 - 16, W - c0 - 16)},
                .out = {4 * ty, 4 * ty * g->OW + 4 * tx, lanes(0, cols), lanes(-16, cols - 16)},
                .a = (int32_t)a,
                .b = (int32_t)(a + len),
                .keep = lanes(a, a + len)};
            l += len;
        }
        first[v + 1] = nr;
    }
}

/* Floats of a block's runs and their vectors' first runs (runs_of), for
 * blocks of up to nb tiles; tables_at carves them out of p. */
static int64_t tables_floats(int64_t nb) {
    const int64_t nv = (nb + 15) / 16;
    return round16(16 * nv * (int64_t)(sizeof(struct run4) / sizeof(float) + 1)) +
           round16(2 * (nv + 1));
}

static void tables_at(float *p, int64_t nb, struct run4 **runs, int64_t **first) {
    *runs = (struct run4 *)(void *)p;
    *first = (int64_t *)(void *)(p + tables_floats(nb) - round16(2 * ((nb + 15) / 16 + 1)));
}

/* B^T d for 6 vectors of 16 tiles, in place. */
static inline __attribute__((always_inline)) void bt6(__m512 d[6]) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
    const __m512 t1 = _mm512_fnmadd_ps(four, d[2], d[4]), t2 = _mm512_fnmadd_ps(four, d[1], d[3]);
    const __m512 t3 = _mm512_sub_ps(d[4], d[2]), t4h = _mm512_sub_ps(d[3], d[1]);
    const __m512 t4 = _mm512_add_ps(t4h, t4h);
    const __m512 w0 = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    const __m512 w5 = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
    d[0] = w0;
    d[1] = _mm512_add_ps(t1, t2);
    d[2] = _mm512_sub_ps(t1, t2);
    d[3] = _mm512_add_ps(t3, t4);
    d[4] = _mm512_sub_ps(t3, t4);
    d[5] = w5;
}

/* A^T m for 6 vectors, into y[0..4). */
static inline __attribute__((always_inline)) void at6(const __m512 m[6], __m512 y[4]) {
    const __m512 s1 = _mm512_add_ps(m[1], m[2]), d1 = _mm512_sub_ps(m[1], m[2]);
    const __m512 s2 = _mm512_add_ps(m[3], m[4]), d2 = _mm512_sub_ps(m[3], m[4]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s1), s2);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d2, d1);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s2, s1);
    y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d2, d1), m[5]);
}

/* Fetches the rows of `plane` (images img floats apart, rows of `w`
 * floats, `h` of them) that the tiles [t0, t0 + n) read or write: tile row
 * ty's rows 4 ty - lo .. 4 ty - lo + span - 1. */
static void prefetch_tiles(const float *plane, int64_t img, int64_t h, int64_t w,
                           const struct geo4 *g, int64_t t0, int64_t n, int64_t lo, int64_t span) {
    for (int64_t t = t0; t < t0 + n;) {
        const int64_t i = t / g->tiles, ty0 = t % g->tiles / g->TW;
        const int64_t end = (i + 1) * g->tiles < t0 + n ? (i + 1) * g->tiles : t0 + n;
        const int64_t ty1 = (end - 1) % g->tiles / g->TW;
        int64_t r0 = 4 * ty0 - lo, r1 = 4 * ty1 - lo + span;
        r0 = r0 < 0 ? 0 : r0, r1 = r1 > h ? h : r1;
        if (r1 > r0) prefetch_row(plane + i * img + r0 * w, (r1 - r0) * w);
        t = end;
    }
}

/* Columns 4 l + j (j < n) of tile l of run u into lanes [u->a, u->b) of
 * d[j]: the 32 floats at p (lanes of s->m0 and s->m1) picked out by one
 * permutation each. */
static inline __attribute__((always_inline)) void
run_columns(const float *p, const struct rows *s, const struct run4 *u, int n, __m512 *d) {
    const __m512i l4 =
        _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60);
    const __m512 v0 = _mm512_maskz_loadu_ps(s->m0, p), v1 = _mm512_maskz_loadu_ps(s->m1, p + 16);
    const __m512i idx = _mm512_sub_epi32(l4, _mm512_set1_epi32(4 * u->a));
#pragma GCC unroll 6
    for (int j = 0; j < n; j++)
        d[j] = _mm512_mask_mov_ps(
            d[j], u->keep,
            _mm512_permutex2var_ps(v0, _mm512_add_epi32(idx, _mm512_set1_epi32(j)), v1));
}

/* Columns 4 l + j (j < n) of row k of the tiles of runs [r, end) (their
 * input rows, or with `out` their output rows) of a plane of h rows of w
 * floats (images img apart), in d[j]: zeros where a run's row is outside
 * the plane. `out` is a constant where this is inlined. */
static inline __attribute__((always_inline)) void
vector_columns(const float *plane, int64_t img, int64_t h, int64_t w, const struct run4 *r,
               const struct run4 *end, int out, int64_t k, int n, __m512 *d) {
#pragma GCC unroll 6
    for (int j = 0; j < n; j++) d[j] = _mm512_setzero_ps();
    for (const struct run4 *u = r; u < end; u++) {
        const struct rows *s = out ? &u->out : &u->in;
        if (s->row + k < 0 || s->row + k >= h) continue; /* padding, or past the edge */
        run_columns(plane + u->i * img + s->off + k * w, s, u, n, d);
    }
}

/* Where vector v's row c of matrix 0 goes: the packed B panels (ld 0: C
 * deep, 48 tiles wide) or rows ld apart. */
static inline float *vector_row(float *V, int64_t C, int64_t ld, int64_t v, int64_t c) {
    if (ld) return V + c * ld + 16 * v;
    return V + (16 * v / GEN_GEMM_NR) * C * GEN_GEMM_NR + 16 * v % GEN_GEMM_NR + c * GEN_GEMM_NR;
}

/* V[6 k + q] (matrices vstep apart, C rows as vector_row places them) =
 * (B^T d B)[k][q] for the nv vectors of runs, channel by channel. */
static void input4(const float *x, int64_t img, int64_t C, int64_t H, int64_t W, int64_t pad,
                   const struct geo4 *g, int64_t t0, int64_t n, const struct run4 *runs,
                   const int64_t *first, float *V, int64_t vstep, int64_t ld) {
    const int64_t nv = (n + 15) / 16;
    for (int64_t c = 0; c < C; c++) {
        const float *plane = x + c * H * W;
        if (c + 1 < C) prefetch_tiles(plane + H * W, img, H, W, g, t0, n, pad, 6);
        for (int64_t v = 0; v < nv; v++) {
            __m512 w[6][6];
#pragma GCC unroll 6
            for (int k = 0; k < 6; k++) {
                __m512 d[6];
                vector_columns(plane, img, H, W, runs + first[v], runs + first[v + 1], 0, k, 6, d);
                bt6(d);
#pragma GCC unroll 6
                for (int q = 0; q < 6; q++) w[k][q] = d[q];
            }
            float *dst = vector_row(V, C, ld, v, c);
#pragma GCC unroll 6
            for (int q = 0; q < 6; q++) {
                __m512 col[6];
#pragma GCC unroll 6
                for (int k = 0; k < 6; k++) col[k] = w[k][q];
                bt6(col);
#pragma GCC unroll 6
                for (int k = 0; k < 6; k++) _mm512_storeu_ps(dst + (6 * k + q) * vstep, col[k]);
            }
        }
    }
    /* the last panel's columns past the vectors, which the micro-kernel reads */
    const int64_t end = ld ? 0 : (nv * 16 + GEN_GEMM_NR - 1) / GEN_GEMM_NR * GEN_GEMM_NR;
    for (int64_t v = nv; 16 * v < end; v++)
        for (int xi = 0; xi < XI4; xi++)
            for (int64_t c = 0; c < C; c++)
                _mm512_storeu_ps(vector_row(V + xi * vstep, C, 0, v, c), _mm512_setzero_ps());
}

/* The 64 outputs of a row of 16 tiles, tile l's column b at lane 4 l + b
 * of o[0..4), from y[b] (lane l: tile l). */
static inline __attribute__((always_inline)) void tiles_to_row(const __m512 y[4], __m512 o[4]) {
    __m512 t0, t1, t2, t3;
    interleave(y[0], y[1], &t0, &t1); /* (y0 y1) pairs: tiles 0..7, 8..15 */
    interleave(y[2], y[3], &t2, &t3);
    const __m512i j0 = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const __m512i j1 = _mm512_add_epi32(j0, _mm512_set1_epi32(8));
    o[0] = _mm512_permutex2var_ps(t0, j0, t2);
    o[1] = _mm512_permutex2var_ps(t0, j1, t2);
    o[2] = _mm512_permutex2var_ps(t1, j0, t3);
    o[3] = _mm512_permutex2var_ps(t1, j1, t3);
}

/* out = (A^T Mo A) + bias + beta out for the runs' tiles, Mo's 36 GEMMs
 * M x ldm (tiles from column 0), step floats apart. */
static void output4(const struct geo4 *g, int64_t M, int64_t t0, int64_t n, const struct run4 *runs,
                    const int64_t *first, const float *Mo, int64_t step, int64_t ldm,
                    const float *bias, float beta, float *out, int64_t ldo, int64_t out_img) {
    const __m512 vb = _mm512_set1_ps(beta);
    const int64_t nv = (n + 15) / 16;
    for (int64_t co = 0; co < M; co++) {
        if (co + 1 < M) prefetch_tiles(out + (co + 1) * ldo, out_img, g->OH, g->OW, g, t0, n, 0, 4);
        const __m512 bc = _mm512_set1_ps(bias ? bias[co] : 0.0f);
        for (int64_t v = 0; v < nv; v++) {
            const float *src = Mo + co * ldm + 16 * v;
            __m512 h[4][6]; /* h[b][k]: row k of Mo A, column b */
#pragma GCC unroll 6
            for (int k = 0; k < 6; k++) {
                __m512 m[6], y[4];
#pragma GCC unroll 6
                for (int q = 0; q < 6; q++) m[q] = _mm512_loadu_ps(src + (6 * k + q) * step);
                /* A^T's column 1 is all ones: the bias at [1][1] adds to every output */
                if (k == 1) m[1] = _mm512_add_ps(m[1], bc);
                at6(m, y);
#pragma GCC unroll 4
                for (int b = 0; b < 4; b++) h[b][k] = y[b];
            }
            __m512 y[4][4]; /* y[b][a] */
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) at6(h[b], y[b]);
#pragma GCC unroll 4
            for (int a = 0; a < 4; a++) {
                const __m512 row[4] = {y[0][a], y[1][a], y[2][a], y[3][a]};
                __m512 o[4];
                tiles_to_row(row, o);
                for (int64_t r = first[v]; r < first[v + 1]; r++) {
                    const struct run4 *u = runs + r;
                    if (u->out.row + a >= g->OH) continue; /* past the last row */
                    const int64_t e0 = 4 * u->a,
                                  e1 = e0 +
                                       (4 * (u->b - u->a) < u->cols ? 4 * (u->b - u->a) : u->cols);
                    float *dst = out + co * ldo + u->i * out_img + u->out.off + a * g->OW - e0;
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++) {
                        const __mmask16 mk = lanes(e0 - 16 * q, e1 - 16 * q);
                        if (!mk) continue;
                        __m512 val = o[q];
                        if (beta != 0.0f)
                            val = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, dst + 16 * q), val);
                        _mm512_mask_storeu_ps(dst + 16 * q, mk, val);
                    }
                }
            }
        }
    }
}

/* G (k0 k1 k2)^T for 8 kernels at once */
GEN_WINO_G6(__m512d, _mm512_add_pd, _mm512_sub_pd, _mm512_mul_pd, _mm512_set1_pd)

/* Tap `at` of 8 consecutive 3 x 3 kernels from k (lanes past mk zero), in
 * double. */
static inline __m512d taps8(const float *k, int at, __mmask8 mk) {
    const __m256i nine = _mm256_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63);
    return _mm512_cvtps_pd(_mm256_mmask_i32gather_ps(_mm256_setzero_ps(), mk, nine, k + at, 4));
}

/* U[6 r + q][co][c] = (G g G^T)[r][q] for the M x C kernels g (Wm, M x C
 * 9), 8 input channels at a time; U's GEMMs M x C, ustep floats apart. */
static void weight4(int64_t M, int64_t C, const float *Wm, float *U, int64_t ustep) {
    GEN_KFOR(
        GEN_KPAR_ROWS(M, M * C * 36), co, M, for (int64_t c0 = 0; c0 < C; c0 += 8) {
            const __mmask8 mk = (__mmask8)lanes(0, C - c0 < 8 ? C - c0 : 8);
            const float *k = Wm + (co * C + c0) * 9;
            __m512d t[3][6]; /* t[v]: G times column v of g */
            for (int v = 0; v < 3; v++)
                g6(taps8(k, v, mk), taps8(k, 3 + v, mk), taps8(k, 6 + v, mk), t[v]);
            float *dst = U + co * C + c0;
            for (int r = 0; r < 6; r++) {
                __m512d u[6];
                g6(t[0][r], t[1][r], t[2][r], u);
                for (int q = 0; q < 6; q++)
                    _mm256_mask_storeu_ps(dst + (6 * r + q) * ustep, mk, _mm512_cvtpd_ps(u[q]));
            }
        });
}

/* Tiles a block: whole panels of the GEMM's B (48 tiles), as many as keep
 * the 36 matrices of input and output (36 (C + M) floats a tile) within
 * about BLOCK_FLOATS, at least one; no more than the call's tiles. Every
 * block's 36 products read all the kernels, so blocks short of a panel
 * cost that read for little work: the calls should bring many tiles
 * (ops_conv.c gives them chunks of images where the work allows). */
static int64_t block4(const struct geo4 *g, int64_t m, int64_t C, int64_t M) {
    int64_t nb = BLOCK_FLOATS / (XI4 * (C + M)) / GEN_GEMM_NR * GEN_GEMM_NR;
    nb = nb < GEN_GEMM_NR ? GEN_GEMM_NR : nb;
    return nb < m * g->tiles ? nb : m * g->tiles;
}

static int64_t prep4_floats(int64_t M, int64_t C) {
    return round16(XI4 * gen_gemm_avx512_pack_a_floats(M, C)) + XI4 * gen_wino_spread(M * C);
}

static void prep4(int64_t M, int64_t C, const float *Wm, float *prep) {
    const int64_t pa = gen_gemm_avx512_pack_a_floats(M, C), ustep = gen_wino_spread(M * C);
    float *U = prep + round16(XI4 * pa);
    weight4(M, C, Wm, U, ustep);
    GEN_KFOR(GEN_KPAR_ROWS(XI4, XI4 * M * C), xi, XI4, pack(M, C, U + xi * ustep, prep + xi * pa));
}

static int64_t conv4_floats(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct geo4 g = geo4(H, W, pad);
    const int64_t nb = block4(&g, m, C, M);
    return XI4 * gen_wino_spread(panel_floats(C, nb)) + XI4 * gen_wino_spread(M * round16(nb)) +
           tables_floats(nb);
}

static void conv4(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                  int64_t m, int64_t img, const float *x, const float *bias, float beta, float *out,
                  int64_t ldo, int64_t out_img, float *work) {
    const struct geo4 g = geo4(H, W, pad);
    const int64_t nb = block4(&g, m, C, M), pa = gen_gemm_avx512_pack_a_floats(M, C);
    const int64_t vstep = gen_wino_spread(panel_floats(C, nb)), ldm = round16(nb),
                  mstep = gen_wino_spread(M * ldm);
    float *V = work, *Mo = V + XI4 * vstep;
    struct run4 *runs;
    int64_t *first;
    tables_at(Mo + XI4 * mstep, nb, &runs, &first);
    for (int64_t t0 = 0; t0 < m * g.tiles; t0 += nb) {
        const int64_t n = m * g.tiles - t0 < nb ? m * g.tiles - t0 : nb;
        runs_of(&g, W, pad, t0, n, runs, first);
        input4(x, img, C, H, W, pad, &g, t0, n, runs, first, V, vstep, 0);
        for (int xi = 0; xi < XI4; xi++)
            gen_sgemm_avx512_packed(M, n, C, prep + xi * pa, V + xi * vstep, 0.0f, Mo + xi * mstep,
                                    ldm);
        output4(&g, M, t0, n, runs, first, Mo, mstep, ldm, bias, beta, out, ldo, out_img);
    }
}

/* ---- F(4 x 4)'s weight gradient -------------------------------------------
 * For every tile, dU += (A dY A^T) (.) (B^T d B) with dY the tile's 4 x 4
 * block of dy (zeros past the output's edge), summed over tiles inside 36
 * GEMMs (M x tiles) by (tiles x C), and dw = G^T dU G at the end. */

/* A y for 16 tiles' 4-vectors y: A = [1 0 0 0; 1 1 1 1; 1 -1 1 -1; 1 2 4
 * 8; 1 -2 4 -8; 0 0 0 1] (A^T's transpose). */
static inline __attribute__((always_inline)) void a6(const __m512 y[4], __m512 o[6]) {
    const __m512 s02 = _mm512_add_ps(y[0], y[2]), s13 = _mm512_add_ps(y[1], y[3]);
    const __m512 e = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), y[2], y[0]),
                 f = _mm512_mul_ps(_mm512_set1_ps(2.0f),
                                   _mm512_fmadd_ps(_mm512_set1_ps(4.0f), y[3], y[1]));
    o[0] = y[0];
    o[1] = _mm512_add_ps(s02, s13);
    o[2] = _mm512_sub_ps(s02, s13);
    o[3] = _mm512_add_ps(e, f);
    o[4] = _mm512_sub_ps(e, f);
    o[5] = y[3];
}

/* D[6 p + q] (M rows ld apart, matrices dstep apart) = (A dY A^T)[p][q]
 * for the runs' tiles of dy (M planes of OH x OW, images dy_img apart). */
static void dy4(const float *dy, int64_t dy_img, int64_t M, const struct geo4 *g, int64_t t0,
                int64_t n, const struct run4 *runs, const int64_t *first, float *D, int64_t dstep,
                int64_t ld) {
    const int64_t P = g->OH * g->OW, nv = (n + 15) / 16;
    for (int64_t co = 0; co < M; co++) {
        const float *plane = dy + co * P;
        if (co + 1 < M) prefetch_tiles(plane + P, dy_img, g->OH, g->OW, g, t0, n, 0, 4);
        for (int64_t v = 0; v < nv; v++) {
            __m512 h[4][6]; /* h[a]: A times output row a of the tiles */
#pragma GCC unroll 4
            for (int a = 0; a < 4; a++) {
                __m512 y[4];
                vector_columns(plane, dy_img, g->OH, g->OW, runs + first[v], runs + first[v + 1], 1,
                               a, 4, y);
                a6(y, h[a]);
            }
            float *dst = D + co * ld + 16 * v;
#pragma GCC unroll 6
            for (int q = 0; q < 6; q++) {
                const __m512 col[4] = {h[0][q], h[1][q], h[2][q], h[3][q]};
                __m512 o[6];
                a6(col, o);
#pragma GCC unroll 6
                for (int p = 0; p < 6; p++) _mm512_storeu_ps(dst + (6 * p + q) * dstep, o[p]);
            }
        }
    }
}

/* G^T m for 8 kernels' 6-vectors m, in double: G^T = [1/4 -1/6 -1/6 1/24
 * 1/24 0; 0 -1/6 1/6 1/12 -1/12 0; 0 -1/6 -1/6 1/6 1/6 1]. */
static inline __attribute__((always_inline)) void gt6(const __m512d m[6], __m512d o[3]) {
    const __m512d s12 = _mm512_add_pd(m[1], m[2]), d12 = _mm512_sub_pd(m[1], m[2]),
                  s34 = _mm512_add_pd(m[3], m[4]), d34 = _mm512_sub_pd(m[3], m[4]);
    const __m512d s12_6 = _mm512_mul_pd(s12, _mm512_set1_pd(1.0 / 6));
    o[0] = _mm512_add_pd(_mm512_sub_pd(_mm512_mul_pd(m[0], _mm512_set1_pd(0.25)), s12_6),
                         _mm512_mul_pd(s34, _mm512_set1_pd(1.0 / 24)));
    o[1] = _mm512_sub_pd(_mm512_mul_pd(d34, _mm512_set1_pd(1.0 / 12)),
                         _mm512_mul_pd(d12, _mm512_set1_pd(1.0 / 6)));
    o[2] = _mm512_add_pd(_mm512_sub_pd(_mm512_mul_pd(s34, _mm512_set1_pd(1.0 / 6)), s12_6), m[5]);
}

/* dw[co, c 9 + 3 u + v] = (G^T Mo G)[u][v], Mo's 36 GEMMs M x C (step
 * floats apart), 8 input channels at a time, in double (rounded once). */
static void dw4_transform(int64_t M, int64_t C, const float *Mo, int64_t step, float *dw) {
    const __m256i nine = _mm256_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63);
    for (int64_t co = 0; co < M; co++)
        for (int64_t c0 = 0; c0 < C; c0 += 8) {
            const __mmask8 mk = (__mmask8)lanes(0, C - c0 < 8 ? C - c0 : 8);
            const float *src = Mo + co * C + c0;
            __m512d t[3][6]; /* t[u][q]: row u of G^T Mo */
            for (int q = 0; q < 6; q++) {
                __m512d m[6], o[3];
                for (int p = 0; p < 6; p++)
                    m[p] = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(mk, src + (6 * p + q) * step));
                gt6(m, o);
                for (int u = 0; u < 3; u++) t[u][q] = o[u];
            }
            float *dst = dw + (co * C + c0) * 9;
            for (int u = 0; u < 3; u++) {
                __m512d o[3];
                gt6(t[u], o);
                for (int v = 0; v < 3; v++)
                    _mm256_mask_i32scatter_ps(dst + 3 * u + v, mk, nine, _mm512_cvtpd_ps(o[v]), 4);
            }
        }
}

static int64_t dw4_floats(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    const struct geo4 g = geo4(H, W, pad);
    const int64_t nb = block4(&g, m, C, M), ld = round16(nb);
    return XI4 * gen_wino_spread(C * ld) + XI4 * gen_wino_spread(M * ld) +
           XI4 * gen_wino_spread(M * C) + tables_floats(nb);
}

static void dw4(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work) {
    const struct geo4 g = geo4(H, W, pad);
    const int64_t nb = block4(&g, m, C, M), ld = round16(nb);
    const int64_t vstep = gen_wino_spread(C * ld), dstep = gen_wino_spread(M * ld),
                  ostep = gen_wino_spread(M * C);
    float *V = work, *D = V + XI4 * vstep, *Mo = D + XI4 * dstep;
    struct run4 *runs;
    int64_t *first;
    tables_at(Mo + XI4 * ostep, nb, &runs, &first);
    for (int64_t t0 = 0; t0 < m * g.tiles; t0 += nb) {
        const int64_t n = m * g.tiles - t0 < nb ? m * g.tiles - t0 : nb;
        runs_of(&g, W, pad, t0, n, runs, first);
        input4(x, img, C, H, W, pad, &g, t0, n, runs, first, V, vstep, ld);
        dy4(dy, dy_img, M, &g, t0, n, runs, first, D, dstep, ld);
        for (int xi = 0; xi < XI4; xi++)
            gen_sgemm_avx512(0, 1, M, C, n, 1.0f, D + xi * dstep, ld, V + xi * vstep, ld,
                             t0 == 0 ? 0.0f : 1.0f, NULL, Mo + xi * ostep, C);
    }
    dw4_transform(M, C, Mo, ostep, dw);
}

/* ---- the entry points: F(4 x 4) or F(2 x 2) as gen_wino_tile says ------- */

int64_t gen_wino_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad) {
    if (gen_wino_tile(H, W, pad) == 4) return prep4_floats(M, C);
    return wino_prep_floats(M, C, gen_gemm_avx512_pack_a_floats(M, C));
}

void gen_wino_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, const float *Wm,
                   float *prep) {
    if (gen_wino_tile(H, W, pad) == 4)
        prep4(M, C, Wm, prep);
    else
        wino_prep(M, C, Wm, prep, gen_gemm_avx512_pack_a_floats(M, C), pack);
}

int64_t gen_wino_images(int64_t H, int64_t W, int64_t pad) {
    if (gen_wino_tile(H, W, pad) != 4) return 0;
    const struct geo4 g = geo4(H, W, pad);
    return (8 * GEN_GEMM_NR + g.tiles - 1) / g.tiles;
}

int64_t gen_wino_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    if (gen_wino_tile(H, W, pad) == 4) return conv4_floats(M, C, H, W, pad, m);
    return wino_conv_floats(M, C, H, W, pad, m, C);
}

void gen_wino_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                   int64_t m, int64_t img, const float *x, const float *bias, float beta,
                   float *out, int64_t ldo, int64_t out_img, float *work) {
    if (gen_wino_tile(H, W, pad) == 4)
        conv4(M, prep, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work);
    else
        wino_conv(M, prep, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work, C,
                  gen_gemm_avx512_pack_a_floats(M, C), put_floats, product);
}

int64_t gen_wino_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m) {
    if (gen_wino_tile(H, W, pad) == 4) return dw4_floats(M, C, H, W, pad, m);
    return wino_dw_floats(M, C, H, W, pad, m);
}

void gen_wino_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                 int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work) {
    if (gen_wino_tile(H, W, pad) == 4)
        dw4(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work);
    else
        wino_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work, dw_product);
}
