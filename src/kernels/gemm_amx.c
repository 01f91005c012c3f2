/* gemm_amx.c - the products of --precision bf16 on Intel's Advanced
 * Matrix Extensions (AMX-BF16), where the CPU has them and the kernel
 * grants their state (dispatch.c checks both before it hands this out):
 * the GEMM, and convolutions of 32-channel multiples with their weight
 * gradient.
 *
 * AMX adds eight tile registers of up to 16 rows x 64 bytes and TDPBF16PS,
 * which adds to a 16 x 16 fp32 tile C the product of a 16 x 32 bf16 tile A
 * (row i: 32 consecutive k of row i of A) and a 32 x 16 bf16 tile B held
 * as 16 rows of pairs (row p: (B[2p, j], B[2p+1, j]) for the 16 columns
 * j): 16 x 16 x 32 multiply-adds per instruction, about 14 times what the
 * fp32 FMA loop of bench_gemm --peak reaches on one core of a Sapphire
 * Rapids machine (where vdpbf16ps runs at half the FMA's rate). As with
 * vdpbf16ps, the products of two bf16 are exact, the sums are fp32,
 * rounded to nearest even, denormals flushed.
 *
 * The GEMM's loops are those of the other GEMMs (Goto and van de Geijn:
 * column blocks of B, deep slices, row blocks of A), with operands packed
 * as whole tiles of 1 KiB, each loaded by one TILELOADD of stride 64:
 *
 *   A: tile (g, b) = rows 16 g .. of op(A), pairs 16 b ..: row i its 16 pairs
 *   B: tile (h, b) = pairs 16 b .., columns 16 h .. of op(B): row p its 16 columns
 *
 * zero past M, N and the depth, in an even number of groups, so that every
 * 32 x 32 block of C is four tiles: tiles 0-3 accumulate it, 4-5 hold A's
 * two row groups, 6-7 B's two column groups, and each load feeds two
 * products. A whole block with alpha 1 starts from C, the bias or zero and
 * is stored straight into C; other blocks go through memory, where alpha,
 * beta, the bias and the edges are applied in AVX-512.
 *
 * Each element of C is the same sequence of operations whatever the
 * blocking of M and N (the slicing depends on K alone), so any thread
 * count gives the same bits. Compiled with -mamx-tile -mamx-bf16 on top of
 * the AVX-512 and AVX512-BF16 flags. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "gen/core.h"
#include "kernels/avx512_lanes.h"
#include "kernels/bf16_lanes.h"
#include "kernels/kernels_impl.h"

#define TB 32  /* rows and columns of C a block of four tiles covers */
#define KS 256 /* pairs a slice (512 k): a B tile column of a slice is 16 KiB */
#define MCA 128 /* rows of an A block: 128 KiB of tiles */
#define NCA 768 /* columns of a B block: 768 KiB of tiles */
#define TILE 256 /* 32-bit words a tile */
_Static_assert((size_t)KS * (MCA + NCA) <= GEN_BF16_BUF_PAIRS, "the blocks fit the buffer");

typedef uint32_t pair;

static int64_t up(int64_t n, int64_t q) {
    return (n + q - 1) / q * q;
}

/* Tiles of 16 pairs a depth of kc values takes. */
static int64_t tiles_deep(int64_t kc) {
    return ((kc + 1) / 2 + 15) / 16;
}

/* The tile shapes: palette 1, eight tiles of 16 rows of 64 bytes. */
struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static void configure_tiles(void) {
    struct tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.colsb[t] = 64, c.rows[t] = 16;
    _tile_loadconfig(&c);
}

/* Tile (g, b) of pack_tiles: 16 i from 16 g by 16 pairs of k from 16 b. */
static inline __attribute__((always_inline)) void pack_tile(const float *src, int64_t ld,
                                                            int kmajor, int pair_rows, int64_t n,
                                                            int64_t kc, int64_t g, int64_t b,
                                                            pair *t) {
    const int64_t kp = (kc + 1) / 2;
    __m512 v[16];
    if (!kmajor) { /* v[i]: i's pairs 16 b .. */
        const int64_t w = kc - 32 * b;
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            const float *p = src + (16 * g + i) * ld + 32 * b;
            v[i] = 16 * g + i < n
                       ? _mm512_castsi512_ps(round_run(load_lanes(p, w), load_lanes(p + 16, w - 16)))
                       : _mm512_setzero_ps();
        }
    } else { /* v[j]: pair 16 b + j of the 16 i's */
        const int64_t cols = n - 16 * g;
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) {
            const int64_t p = 16 * b + j;
            const float *r0 = src + 2 * p * ld + 16 * g;
            v[j] = p < kp ? _mm512_castsi512_ps(round_rows(
                                load_lanes(r0, cols), load_lanes(r0 + ld, 2 * p + 1 < kc ? cols : 0)))
                          : _mm512_setzero_ps();
        }
    }
    if (kmajor != pair_rows) transpose16(v);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) _mm512_storeu_si512(t + 16 * i, _mm512_castps_si512(v[i]));
}

/* Rounds an n x kc operand X (element (i, k) at src[i ld + k], or at
 * src[k ld + i] when kmajor) into tiles of 16 i by 16 pairs of k: tile
 * (g, b) at out + g gs + b TILE (gs: KB TILE, KB = ceil(kc / 32), or
 * more), for the `groups` groups of 16 i (zeros past n and kc). Row i of
 * a tile holds i's 16 pairs (pair_rows 0: A's form) or row p the 16 i's
 * pair p (pair_rows 1: B's form). Reading along k gives one vector per i, reading across gives
 * one per pair: a 16 x 16 transpose of words turns one into the other.
 * The source is read in memory order: a group's rows along k, or 32 rows
 * across all the groups before the next 32. */
static void pack_tiles(const float *src, int64_t ld, int kmajor, int pair_rows, int64_t n,
                       int64_t kc, int64_t groups, int64_t gs, pair *out) {
    const int64_t KB = tiles_deep(kc);
    if (!kmajor)
        for (int64_t g = 0; g < groups; g++)
            for (int64_t b = 0; b < KB; b++)
                pack_tile(src, ld, 0, pair_rows, n, kc, g, b, out + g * gs + b * TILE);
    else
        for (int64_t b = 0; b < KB; b++)
            for (int64_t g = 0; g < groups; g++)
                pack_tile(src, ld, 1, pair_rows, n, kc, g, b, out + g * gs + b * TILE);
}

/* A 32 x 32 block of C in tiles 0-3 (0: rows 0-15 by columns 0-15, 1:
 * rows 0-15 by 16-31, 2 and 3 the rows 16-31 alike). */
static inline __attribute__((always_inline)) void block_zero(void) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
}

/* block += (A tiles a0 over a1) (B tiles b0 beside b1), rows of the A tiles
 * as strided in memory, B's alike. */
static inline __attribute__((always_inline)) void block_step(const void *a0, const void *a1,
                                                             size_t astride, const void *b0,
                                                             const void *b1, size_t bstride) {
    _tile_loadd(4, a0, astride);
    _tile_loadd(5, a1, astride);
    _tile_loadd(6, b0, bstride);
    _tile_loadd(7, b1, bstride);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
}

/* The block into c, rows ld floats apart. */
static inline __attribute__((always_inline)) void block_store(float *c, int64_t ld) {
    _tile_stored(0, c, ld * 4);
    _tile_stored(1, c + 16, ld * 4);
    _tile_stored(2, c + 16 * ld, ld * 4);
    _tile_stored(3, c + 16 * ld + 16, ld * 4);
}

/* The block from c, rows ld floats apart (ld 0: every row the same). */
static inline __attribute__((always_inline)) void block_load(const float *c, int64_t ld) {
    _tile_loadd(0, c, ld * 4);
    _tile_loadd(1, c + 16, ld * 4);
    _tile_loadd(2, c + 16 * ld, ld * 4);
    _tile_loadd(3, c + 16 * ld + 16, ld * 4);
}

/* block += the A tiles of two row groups (at a, the second KB tiles on)
 * times the B tiles of two column groups (at b, the second bgs words on),
 * over KB tiles of depth. */
static void block_product(const pair *a, const pair *b, int64_t bgs, int64_t KB) {
    for (int64_t k = 0; k < KB; k++)
        block_step(a + k * TILE, a + (KB + k) * TILE, 64, b + k * TILE, b + bgs + k * TILE, 64);
}

/* C[0..mr, 0..nr) = alpha acc + (first slice: beta C + bias; later: C);
 * beta 0 does not read C. */
static void write_block(const float *acc, float *c, int64_t ldc, int64_t mr, int64_t nr,
                        float alpha, float beta, const float *bias, int first) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(first ? beta : 1.0f);
    for (int64_t r = 0; r < mr; r++)
        for (int v = 0; v < 2; v++) {
            const __mmask16 m = lane_mask(nr - 16 * v);
            if (!m) break;
            float *cv = c + r * ldc + 16 * v;
            __m512 t = first && bias ? _mm512_maskz_loadu_ps(m, bias + 16 * v) : _mm512_setzero_ps();
            if (!first || beta != 0.0f) t = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cv), t);
            _mm512_mask_storeu_ps(cv, m, _mm512_fmadd_ps(va, _mm512_load_ps(acc + r * TB + 16 * v), t));
        }
}

/* C[0..mr, 0..nr) (rows ldc apart) = alpha (A tiles . B tiles) + (first
 * slice: beta C + bias; later: C). A whole block with alpha 1 starts the
 * tiles from what is added (C, the bias in every row, or zero) and stores
 * them into C; the rest go through acc and write_block. */
static void block_to_c(const pair *a, const pair *b, int64_t bgs, int64_t KB, float *c, int64_t ldc,
                       int64_t mr, int64_t nr, float alpha, float beta, const float *bias,
                       int first, float *acc) {
    const float b_eff = first ? beta : 1.0f;
    const float *add = first ? bias : NULL;
    if (alpha == 1.0f && mr == TB && nr == TB && (b_eff == 0.0f || (b_eff == 1.0f && !add))) {
        if (b_eff == 1.0f)
            block_load(c, ldc);
        else if (add)
            block_load(add, 0);
        else
            block_zero();
        block_product(a, b, bgs, KB);
        block_store(c, ldc);
        return;
    }
    block_zero();
    block_product(a, b, bgs, KB);
    block_store(acc, TB);
    write_block(acc, c, ldc, mr, nr, alpha, beta, bias, first);
}

/* op(B) rounded whole by bpack: column group h (16 columns) at p + h gs,
 * its pair q's row of 16 at + 16 q, pairs from p0 on taken as B's first;
 * each group's tiles are followed by one of zeros, so that a tile that
 * starts inside a group (p0 % 16 != 0) reads no further than that. */
struct bpacked {
    const pair *p;
    int64_t gs, p0;
};

static int64_t bpacked_gs(int64_t kb) {
    return (tiles_deep(kb) + 1) * TILE;
}

/* C (M x N, row stride ldc) = alpha op(A) op(B) + beta C + bias (N values
 * or NULL) on this thread (a gen_gemm_fn; a product that is not empty,
 * gen_gemm_split sees to that), B rounded here slice by slice, or, with
 * pb, taken from bpack's tiles. */
static void amx_product(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb,
                        const struct bpacked *pb, float beta, const float *bias, float *C,
                        int64_t ldc) {
    pair *bp = gen_bf16_pack_buffer(), *ap = bp + (size_t)KS * NCA;
    _Alignas(64) float acc[TB * TB];
    configure_tiles();
    /* equal even slices of at most 2 KS values: the slicing depends on K alone */
    const int64_t nk = (K + 2 * KS - 1) / (2 * KS);
    const int64_t kslice = ((K + nk - 1) / nk + 1) / 2 * 2;
    for (int64_t j0 = 0; j0 < N; j0 += NCA) {
        const int64_t nc = N - j0 < NCA ? N - j0 : NCA, hgroups = (nc + TB - 1) / TB * 2;
        for (int64_t k0 = 0; k0 < K; k0 += kslice) {
            const int64_t kc = K - k0 < kslice ? K - k0 : kslice, KB = tiles_deep(kc);
            const pair *b = bp;
            int64_t bgs = KB * TILE;
            if (pb)
                b = pb->p + j0 / 16 * pb->gs + (pb->p0 + k0 / 2) * 16, bgs = pb->gs;
            else
                pack_tiles(tb ? B + j0 * ldb + k0 : B + k0 * ldb + j0, ldb, !tb, 1, nc, kc, hgroups,
                           bgs, bp);
            for (int64_t i0 = 0; i0 < M; i0 += MCA) {
                const int64_t mc = M - i0 < MCA ? M - i0 : MCA, ggroups = (mc + TB - 1) / TB * 2;
                pack_tiles(ta ? A + k0 * lda + i0 : A + i0 * lda + k0, lda, ta, 0, mc, kc, ggroups,
                           KB * TILE, ap);
                for (int64_t jr = 0; jr < nc; jr += TB)
                    for (int64_t ir = 0; ir < mc; ir += TB)
                        block_to_c(ap + (ir / 16) * KB * TILE, b + (jr / 16) * bgs, bgs, KB,
                                   C + (i0 + ir) * ldc + j0 + jr, ldc, mc - ir < TB ? mc - ir : TB,
                                   nc - jr < TB ? nc - jr : TB, alpha, beta,
                                   bias ? bias + j0 + jr : NULL, k0 == 0, acc);
            }
        }
    }
    _tile_release();
}

static void gemm_amx(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, const float *bias,
                     float *C, int64_t ldc) {
    amx_product(ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, bias, C, ldc);
}

/* The table's bpack_floats, bpack and gemm_bpacked (kernels.h): op(B) in
 * B tiles of 16 columns by 16 pairs, each column group's tiles in a row
 * (struct bpacked), so that a product from an even row k0 reads its tiles
 * from pair k0 / 2 on in place. */
static int64_t bpack_floats(int64_t K, int64_t N) {
    return up(N, TB) / 16 * bpacked_gs(K);
}

static void bpack(int tb, int64_t K, int64_t N, const float *B, int64_t ldb, float *bp) {
    if (K <= 0 || N <= 0) return;
    const int64_t gs = bpacked_gs(K), groups = up(N, TB) / 16;
    pair *out = (pair *)(void *)bp;
    pack_tiles(B, ldb, !tb, 1, N, K, groups, gs, out);
    for (int64_t h = 0; h < groups; h++) memset(out + (h + 1) * gs - TILE, 0, TILE * sizeof *out);
}

static void gemm_bpacked(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                         int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                         const float *bias, float *C, int64_t ldc) {
    GEN_ASSERT(K >= 1 && k0 % 2 == 0 && (!bias || (alpha == 1.0f && beta == 0.0f)));
    const struct bpacked pb = {(const pair *)(const void *)bp, bpacked_gs(kb), k0 / 2};
    if (M > 0 && N > 0)
        amx_product(ta, 0, M, N, K, alpha, A, lda, NULL, 0, &pb, beta, bias, C, ldc);
}

/* The table's gemm and gemm_bias: over the threads, in whole blocks. */
static void gemm_threads(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc) {
    gen_gemm_split(gemm_amx, TB, TB, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
}

static void gemm_bias_threads(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                              int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                              int64_t ldc) {
    gen_gemm_split(gemm_amx, TB, TB, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C, ldc);
}

/* ---- convolutions: tiles read straight from planes of the input ----------
 * On the wide grid of the bf16 convolutions (struct gen_wide: padded phase
 * planes; every im2col row a contiguous slice of a plane), the channels of
 * one tap are planes a fixed distance apart. So with the depth ordered tap
 * by tap (pair p = t Cq + q: channels 2q, 2q + 1 at tap t), 16 consecutive
 * pairs are 16 planes of pairs one plane apart, from tap t's offset: a B
 * tile that TILELOADD reads in place with the plane as its stride. The
 * weight gradient turns the same way: dw^T (K x M) = col (K x P) dy^T, its
 * A tiles 16 channels of bf16 planes at one tap, read in place, its B
 * tiles dy packed per image. Nothing the size of col is written. Tiles of
 * 16 channel pairs (32 channels): C a multiple of 32; other geometries
 * (the first layer's 1 or 3 channels, kernels of more than MAX_TAPS taps)
 * go to the vdpbf16ps convolution. */

static struct gen_kernels base; /* the vdpbf16ps table this one overrides */

#define MAX_TAPS 64 /* kernels of up to 8 x 8 */

static int conv_fits(int64_t C, int64_t KH, int64_t KW) {
    return C % 32 == 0 && KH * KW <= MAX_TAPS;
}

/* The prepared kernels: Wm (M x C T) as A tiles of the tap-major depth,
 * ceil(M / 32) * 2 groups of 16 rows, zero past M; the vdpbf16ps table's
 * (Winograd's, or none) for the convolutions it takes. */
static int64_t conv_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad) {
    if (!conv_fits(C, KH, KW))
        return base.conv_prep_work ? base.conv_prep_work(M, C, H, W, KH, KW, stride, pad) : 0;
    return up(M, TB) * (C / 2) * KH * KW; /* pairs, one float each */
}

static void conv_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                      int64_t stride, int64_t pad, const float *Wm, float *prep) {
    if (!conv_fits(C, KH, KW)) {
        base.conv_prep(M, C, H, W, KH, KW, stride, pad, Wm, prep);
        return;
    }
    const int64_t T = KH * KW, Cq = C / 2, KB = T * Cq / 16;
    pair *ap = (pair *)(void *)prep;
    for (int64_t r = 0; r < up(M, TB); r++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t q0 = 0; q0 < Cq; q0 += 16) { /* pairs t Cq + q0 .. + 16 of row r */
                float two[2][16] = {{0}};
                if (r < M)
                    for (int j = 0; j < 32; j++) two[j & 1][j / 2] = Wm[(r * C + 2 * q0 + j) * T + t];
                const __m512i v = round_rows(_mm512_loadu_ps(two[0]), _mm512_loadu_ps(two[1]));
                _mm512_storeu_si512(ap + ((r / 16) * KB + (t * Cq + q0) / 16) * TILE + (r % 16) * 16, v);
            }
}

/* The parts of conv_gemm's work, in floats: one image's pair planes (and
 * the slack that tiles read past the last), the fp32 phase planes of one
 * pair, one image's wide output (rows of tw + TB, ceil(M / 32) 32 of
 * them). */
struct conv_work {
    int64_t pairs, planes, ldw, wide;
};

static struct conv_work conv_work_of(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                     int64_t KW, int64_t stride, int64_t pad) {
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    struct conv_work w = {.pairs = up((C / 2) * g.plane + g.slack, 16),
                          .planes = up(2 * g.plane + g.slack, 16), .ldw = up(g.tw + TB, 16)};
    w.wide = up(M, TB) * w.ldw;
    return w;
}

static int64_t conv_gemm_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m) {
    if (!conv_fits(C, KH, KW)) return base.conv_gemm_work(M, C, H, W, KH, KW, stride, pad, m);
    (void)m;
    const struct conv_work w = conv_work_of(M, C, H, W, KH, KW, stride, pad);
    /* + the bias rows of direct_rows and a tile for spill_last */
    return w.pairs + w.planes + w.wide + up(M, TB) * 16 + 256;
}

/* Whether conv_gemm stores its tiles straight into out: whole blocks of
 * 32 output channels, out overwritten, rows of at least 16 outputs, or of
 * 8 to 15 (spilling, below) on a wide grid of at least 16 (a tile a row
 * then computes no more garbage columns than the grid would). */
static int direct_rows(int64_t M, const struct gen_wide *g, float beta) {
    return (g->OW >= 16 || (g->OW >= 8 && g->Wq >= 16)) && M % TB == 0 && beta == 0.0f;
}

/* An image's output as tiles of 16 outputs of one row, per = ceil(OW /
 * 16) a row, the last of a row ending at its end (overlapping the one
 * before where 16 does not divide OW: those outputs are computed twice,
 * the same operations, and stored twice): tile k's first output. A row of
 * fewer than 16 is one tile from its start, whose last 16 - OW values (the
 * wide grid's garbage columns) spill into the next row until that row's
 * tile overwrites them; the last row's go through a buffer (spill_last). */
static inline int64_t tile_row(int64_t k, int64_t per) {
    return k / per;
}
static inline int64_t tile_col(int64_t k, int64_t per, int64_t OW) {
    const int64_t c = 16 * (k % per);
    return c + 16 <= OW ? c : OW < 16 ? 0 : OW - 16;
}

/* The first OW values of each of the 16 rows of a tile stored at buf
 * (rows of 16 floats) into out (rows ldo apart). */
static void spill_last(const float *buf, int64_t OW, float *out, int64_t ldo) {
    const __mmask16 m = lane_mask(OW);
    for (int r = 0; r < 16; r++)
        _mm512_mask_storeu_ps(out + r * ldo, m, _mm512_loadu_ps(buf + 16 * r));
}

/* Rows [from, to) of the two tiles' 16 outputs at o0 and o1 (rows ldo
 * floats apart) fetched; returns where it stopped (to, or from if to is
 * not past it). Inlined: the tile registers do not survive a call, and
 * one in the loop of block steps spilled them (the forward 20 % slower). */
static inline __attribute__((always_inline)) int64_t
fetch_rows(const float *o0, const float *o1, int64_t ldo, int64_t from, int64_t to) {
    for (; from < to; from++) {
        _mm_prefetch((const char *)(o0 + from * ldo), _MM_HINT_T0);
        _mm_prefetch((const char *)(o0 + from * ldo + 15), _MM_HINT_T0);
        _mm_prefetch((const char *)(o1 + from * ldo), _MM_HINT_T0);
        _mm_prefetch((const char *)(o1 + from * ldo + 15), _MM_HINT_T0);
    }
    return from;
}

/* As the table's conv_gemm, Wm as conv_prep left it, x's values at x or
 * as bf16 at xh (conv_gemm_b16). Image by image: its
 * pair planes, then its wide grid in blocks of 32 wide columns by 32
 * output channels (a block's last columns may run past the image, into
 * the rows' TB spare columns), then the grid into out, each while the
 * last is in L2, in work that does not grow with m. All m images' planes
 * and then all their grids took a bf16 diffusion step 85.1-87.9 ms
 * against 84.5-86.7 (3 alternating rounds): the two passes (18 % of the
 * step in perf) wait on x and out in memory, not on their own buffers.
 * Where direct_rows holds, no grid: blocks of two row tiles (tile_row,
 * tile_col) by 32 output channels, begun from the bias and stored into
 * out as they are (the 32 -> 32 forward at 28 x 28 0.118 -> 0.096 ms for
 * 8 images; a bf16 diffusion step 88.4 -> 86.9 ms, 5 alternating rounds),
 * 32 kernels over all the rows before the next 32: their A tiles stay in
 * L1 (64 -> 64 at 28 x 28, 64 images: 2.55 -> 2.36 ms). */
static void conv_gemm_of(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                         int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                         const float *x, const uint16_t *xh, const float *bias, float beta,
                         float *out, int64_t ldo, int64_t out_img, float *work) {
    if (M <= 0 || m <= 0) return;
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const struct conv_work w = conv_work_of(M, C, H, W, KH, KW, stride, pad);
    const int64_t T = KH * KW, Cq = C / 2, KB = T * Cq / 16;
    pair *xw = (pair *)(void *)work;
    float *wide = work + w.pairs + w.planes;
    const pair *ap = (const pair *)(const void *)Wm;
    int64_t off[MAX_TAPS];
    for (int64_t t = 0; t < T; t++) off[t] = gen_wide_tap(&g, t / KW, t % KW);
    const size_t bstride = (size_t)g.plane * sizeof(pair);
    const int direct = direct_rows(M, &g, beta);
    float *brows = wide + w.wide; /* (M, 16): row co all bias[co] */
    if (direct && bias)
        for (int64_t co = 0; co < M; co++)
            _mm512_storeu_ps(brows + co * 16, _mm512_set1_ps(bias[co]));
    const int64_t per = (g.OW + 15) / 16, ntiles = g.OH * per;
    configure_tiles();
    for (int64_t i = 0; i < m; i++) {
        gen_bf16_pair_planes(x ? x + i * img : NULL, xh ? xh + i * img : NULL, img, 1, C, H, W, pad,
                             &g, work + w.pairs, xw);
        if (direct) { /* two row tiles of out a block (the last twice where ntiles is odd) */
            float *oi = out + i * out_img;
            for (int64_t co = 0; co < M; co += TB) { /* 32 kernels over all the rows */
                const pair *a = ap + (co / 16) * KB * TILE;
                for (int64_t k = 0; k < ntiles; k += 2) {
                    const int64_t k1 = k + 1 < ntiles ? k + 1 : k;
                    const int64_t r0 = tile_row(k, per), c0 = tile_col(k, per, g.OW);
                    const int64_t r1 = tile_row(k1, per), c1 = tile_col(k1, per, g.OW);
                    const int64_t n0 = r0 * g.Wq + c0, n1 = r1 * g.Wq + c1;
                    float *o0 = oi + r0 * g.OW + c0 + co * ldo,
                          *o1 = oi + r1 * g.OW + c1 + co * ldo;
                    if (bias) {
                        _tile_loadd(0, brows + co * 16, 64);
                        _tile_loadd(1, brows + co * 16, 64);
                        _tile_loadd(2, brows + (co + 16) * 16, 64);
                        _tile_loadd(3, brows + (co + 16) * 16, 64);
                    } else {
                        block_zero();
                    }
                    /* this block's lines of out, fetched ahead of its stores (which
                     * otherwise stall the tiles: the step 1.5 ms shorter), a few
                     * rows with each step (all at once, they held up the steps
                     * while the line fill buffers were full) */
                    int64_t fetched = 0;
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t q0 = 0; q0 < Cq; q0 += 16) {
                            const int64_t kk = (t * Cq + q0) / 16;
                            fetched =
                                fetch_rows(o0, o1, ldo, fetched, ((kk + 1) * TB + KB - 1) / KB);
                            const pair *b = xw + q0 * g.plane + off[t];
                            block_step(a + kk * TILE, a + (KB + kk) * TILE, 64, b + n0, b + n1,
                                       bstride);
                        }
                    fetch_rows(o0, o1, ldo, fetched, TB);
                    const size_t so = (size_t)ldo * sizeof(float);
                    /* the last row's tiles spill no further */
                    const int last0 = g.OW < 16 && r0 == g.OH - 1;
                    const int last1 = g.OW < 16 && r1 == g.OH - 1;
                    float *buf = brows + up(M, TB) * 16; /* a tile of 16 x 16 */
#define STORE_TILE(j, o, last)                                                                     \
    do {                                                                                           \
        if (last) {                                                                                \
            _tile_stored(j, buf, 64);                                                              \
            spill_last(buf, g.OW, (o), ldo);                                                       \
        } else {                                                                                   \
            _tile_stored(j, (o), so);                                                              \
        }                                                                                          \
    } while (0)
                    STORE_TILE(0, o0, last0);
                    STORE_TILE(1, o1, last1);
                    STORE_TILE(2, o0 + 16 * ldo, last0);
                    STORE_TILE(3, o1 + 16 * ldo, last1);
#undef STORE_TILE
                }
            }
            continue;
        }
        for (int64_t n0 = 0; n0 < g.tw; n0 += TB)
            for (int64_t co = 0; co < M; co += TB) {
                const pair *a = ap + (co / 16) * KB * TILE;
                block_zero();
                for (int64_t t = 0; t < T; t++)
                    for (int64_t q0 = 0; q0 < Cq; q0 += 16) {
                        const int64_t k = (t * Cq + q0) / 16;
                        const pair *b = xw + q0 * g.plane + off[t] + n0;
                        block_step(a + k * TILE, a + (KB + k) * TILE, 64, b, b + 16, bstride);
                    }
                block_store(wide + co * w.ldw + n0, w.ldw);
            }
        gen_wide_to_out(&g, M, 1, wide, w.ldw, bias, beta, out + i * out_img, ldo, out_img);
    }
    _tile_release();
}

static void conv_gemm(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                      const float *x, const float *bias, float beta, float *out, int64_t ldo,
                      int64_t out_img, float *work) {
    if (!conv_fits(C, KH, KW)) {
        base.conv_gemm(M, Wm, C, H, W, KH, KW, stride, pad, m, img, x, bias, beta, out, ldo,
                       out_img, work);
        return;
    }
    conv_gemm_of(M, Wm, C, H, W, KH, KW, stride, pad, m, img, x, NULL, bias, beta, out, ldo,
                 out_img, work);
}

/* The bf16 operand's convolutions: those on tiles at stride 1, where its
 * planes come from rows of bf16 as from rows of fp32 (the same bits: the
 * fp32 ones are rounded to bf16 there). */
static int b16_fits(int64_t C, int64_t KH, int64_t KW, int64_t stride) {
    return conv_fits(C, KH, KW) && stride == 1;
}

static void conv_gemm_b16(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                          int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                          const uint16_t *x, const float *bias, float beta, float *out, int64_t ldo,
                          int64_t out_img, float *work) {
    GEN_ASSERT(b16_fits(C, KH, KW, stride));
    conv_gemm_of(M, Wm, C, H, W, KH, KW, stride, pad, m, img, NULL, x, bias, beta, out, ldo,
                 out_img, work);
}

/* The parts of conv_dw's work, in floats: the bf16 planes of x (and their
 * slack), one fp32 phase plane, dy of one image on the wide grid in bf16
 * (rows of L = tw rounded up to 32, zeros past each output row), dy's B
 * tiles for the m images, the blocks of dw^T (T, C, M rounded up to 32),
 * the bias gradient's M sums in double. */
struct dw_work {
    int64_t planes, plane, dyw, tiles, dwt, sums;
};

static struct dw_work dw_work_of(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                 int64_t stride, int64_t pad, int64_t m) {
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t L = up(g.tw, 32);
    return (struct dw_work){.planes = up((m * C * g.plane + g.slack + 32 + 1) / 2, 16),
                            .plane = up(g.plane + g.slack, 16),
                            .dyw = up(M * L / 2, 16),
                            .tiles = m * up(M, TB) * L / 2,
                            .dwt = KH * KW * C * up(M, TB),
                            .sums = up(2 * M, 16)}; /* db's, in double */
}

static int64_t conv_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t stride, int64_t pad, int64_t m) {
    if (!conv_fits(C, KH, KW)) return base.conv_dw_work(M, C, H, W, KH, KW, stride, pad, m);
    const struct dw_work w = dw_work_of(M, C, H, W, KH, KW, stride, pad, m);
    return w.planes + w.plane + w.dyw + w.tiles + w.dwt + w.sums;
}

/* pack_tiles' B form (pair_rows 1) of an n-row operand already in bf16,
 * row i at src + i ld, KB blocks of 32 values a row: tile (g, b) is the
 * 16 rows' pairs of block b as they lie, transposed. */
static void pack_bf16_tiles(const uint16_t *src, int64_t ld, int64_t n, int64_t groups, int64_t KB,
                            pair *out) {
    for (int64_t g = 0; g < groups; g++)
        for (int64_t b = 0; b < KB; b++) {
            __m512 v[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                v[i] = 16 * g + i < n ? _mm512_loadu_ps(src + (16 * g + i) * ld + 32 * b)
                                      : _mm512_setzero_ps();
            transpose16(v);
            pair *t = out + (g * KB + b) * TILE;
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(t + 16 * i, _mm512_castps_si512(v[i]));
        }
}

/* dwt (T, C, M; rows ld apart) into dw (M, C, T): channel c's T x M
 * matrix transposed, 16 taps by 16 output channels at a time in
 * registers. Writing the blocks' values one by one at T floats apart
 * took 41 % of a 7 x 7 weight gradient's time (64 -> 64 channels, 8
 * images), 24 % at 14 x 14. */
static void taps_inner(int64_t M, int64_t C, int64_t T, const float *dwt, int64_t ld, float *dw) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t co = 0; co < M; co += 16)
            for (int64_t t0 = 0; t0 < T; t0 += 16) {
                const __mmask16 mc = lane_mask(M - co), mt = lane_mask(T - t0);
                __m512 v[16];
#pragma GCC unroll 16
                for (int r = 0; r < 16; r++)
                    v[r] = t0 + r < T
                               ? _mm512_maskz_loadu_ps(mc, dwt + ((t0 + r) * C + c) * ld + co)
                               : _mm512_setzero_ps();
                transpose16(v); /* v[j]: output channel co + j's taps t0 .. */
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++)
                    if (co + j < M)
                        _mm512_mask_storeu_ps(dw + ((co + j) * C + c) * T + t0, mt, v[j]);
            }
}

/* As the table's conv_dw_db, x's values at x or as bf16 at xh
 * (conv_dw_b16): dw^T in 32 x 32 blocks (32 channels at one
 * tap by 32 output channels), each summed over the m images' positions
 * in four tiles, stored as they are into dw^T by tap (taps_inner then
 * turns it into dw, M x C T); db from each row of dy as it is rounded
 * (`runs_sum`'s own pass over dy took 3 % of a bf16 diffusion step). The
 * A tiles' 32 rows, one in each of 32 planes, are where the loop waited
 * (perf: 60 % of its samples on their loads): each row is fetched two
 * steps ahead (the U-Net's 64 -> 64 weight gradients 8-10 % faster). */
static void conv_dw_of(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                       const float *x, const uint16_t *xh, float *dw, float *db, float *work) {
    if (db && m <= 0) memset(db, 0, (size_t)(M > 0 ? M : 0) * sizeof *db);
    if (M <= 0 || m <= 0) return;
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const struct dw_work w = dw_work_of(M, C, H, W, KH, KW, stride, pad, m);
    const int64_t T = KH * KW, L = up(g.tw, 32), KB = L / 32, groups = up(M, TB) / 16;
    const int64_t P = g.OH * g.OW;
    uint16_t *xb = (uint16_t *)(void *)work;
    uint16_t *dyw = (uint16_t *)(void *)(work + w.planes + w.plane);
    pair *bt = (pair *)(void *)(work + w.planes + w.plane + w.dyw);
    float *dwt = work + w.planes + w.plane + w.dyw + w.tiles;
    const int64_t ldt = up(M, TB);
    gen_bf16_planes(x, xh, img, m, C, H, W, pad, &g, work + w.planes, xb);
    memset(dyw, 0, (size_t)(M * L) * sizeof *dyw); /* the garbage columns stay 0 */
    double *sums = db ? (double *)(void *)(dwt + w.dwt) : NULL;
    if (db) memset(sums, 0, (size_t)M * sizeof *sums);
    for (int64_t i = 0; i < m; i++) { /* dy rounded onto the wide grid, then its tiles */
        for (int64_t co = 0; co < M; co++) {
            const float *d = dy + i * dy_img + co * P;
            __m512d s = _mm512_setzero_pd();
            for (int64_t oh = 0; oh < g.OH; oh++)
                s = round_to_sum(d + oh * g.OW, g.OW, dyw + co * L + oh * g.Wq, s);
            if (db) sums[co] += _mm512_reduce_add_pd(s);
        }
        pack_bf16_tiles(dyw, L, M, groups, KB, bt + i * groups * KB * TILE);
    }
    if (db)
        for (int64_t co = 0; co < M; co++) db[co] = (float)sums[co];
    int64_t off[MAX_TAPS];
    for (int64_t t = 0; t < T; t++) off[t] = gen_wide_tap(&g, t / KW, t % KW);
    configure_tiles();
    const size_t astride = (size_t)g.plane * sizeof *xb;
    for (int64_t t = 0; t < T; t++)
        for (int64_t c0 = 0; c0 < C; c0 += TB)
            for (int64_t co = 0; co < M; co += TB) {
                block_zero();
                for (int64_t i = 0; i < m; i++) {
                    const uint16_t *a = xb + (i * C + c0) * g.plane + off[t];
                    const pair *b = bt + (i * groups + co / 16) * KB * TILE;
                    for (int64_t k = 0; k < KB; k++) {
                        for (int r = 0; r < TB; r++) /* the A rows two steps on */
                            __builtin_prefetch(a + r * g.plane + 32 * (k + 2), 0, 3);
                        block_step(a + 32 * k, a + 16 * g.plane + 32 * k, astride, b + k * TILE,
                                   b + (KB + k) * TILE, 64);
                    }
                }
                block_store(dwt + (t * C + c0) * ldt + co, ldt);
            }
    _tile_release();
    taps_inner(M, C, T, dwt, ldt, dw);
}

static void conv_dw_db(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                       const float *x, float *dw, float *db, float *work) {
    if (!conv_fits(C, KH, KW)) {
        base.conv_dw(M, dy, dy_img, C, H, W, KH, KW, stride, pad, m, img, x, dw, work);
        const int64_t P = gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
        for (int64_t co = 0; db && co < M; co++) /* dy summed in a pass of its own */
            db[co] = (float)base.runs_sum(m, P, dy_img, dy + co * P);
        return;
    }
    conv_dw_of(M, dy, dy_img, C, H, W, KH, KW, stride, pad, m, img, x, NULL, dw, db, work);
}

static void conv_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                    int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                    const float *x, float *dw, float *work) {
    conv_dw_db(M, dy, dy_img, C, H, W, KH, KW, stride, pad, m, img, x, dw, NULL, work);
}

static void conv_dw_b16(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                        const uint16_t *x, float *dw, float *db, float *work) {
    GEN_ASSERT(b16_fits(C, KH, KW, stride));
    conv_dw_of(M, dy, dy_img, C, H, W, KH, KW, stride, pad, m, img, NULL, x, dw, db, work);
}

void gen_kernels_amx_fill(struct gen_kernels *t) {
    base = *t;
    t->name = "amx";
    t->gemm = gemm_threads;
    t->gemm_bias = gemm_bias_threads;
    t->conv_prep_work = conv_prep_work;
    t->conv_prep = conv_prep;
    t->conv_gemm_work = conv_gemm_work;
    t->conv_gemm = conv_gemm;
    t->conv_gemm_images = NULL;
    t->conv_dw_work = conv_dw_work;
    t->conv_dw = conv_dw;
    t->conv_dw_db = conv_dw_db;
    t->conv_b16_fits = b16_fits;
    t->conv_gemm_b16 = conv_gemm_b16;
    t->conv_dw_b16 = conv_dw_b16;
    t->bpack_floats = bpack_floats;
    t->bpack = bpack;
    t->gemm_bpacked = gemm_bpacked;
    /* the vdpbf16ps products of bf16 operands: not these tiles' */
    t->gemm_bias_h = NULL;
    t->bpack_h = NULL;
    t->gemm_bpacked_h = NULL;
    t->layernorm_fwd_b16 = NULL;
    t->gemm_chan = NULL;
    t->softmax_fwd_b16 = NULL;
    t->softmax_grad_b16 = NULL;
}
