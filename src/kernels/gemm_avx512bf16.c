/* gemm_avx512bf16.c - the matrix products of --precision bf16: GEMM, the
 * implicit-GEMM convolution and its weight gradient, on bf16 operands
 * with fp32 accumulation, by AVX512-BF16's vdpbf16ps.
 *
 * The loops are those of gemm_avx512.c (the packed GEMM of Goto and van de
 * Geijn, BLIS's loop order: NC columns of B, KC deep slices, MC rows of A,
 * an 8 x 48 tile of C in 24 zmm accumulators); the packed form is what
 * differs. vdpbf16ps takes 32 bf16 of each operand and adds, in each of
 * its 16 fp32 lanes j, the two products of a pair:
 *
 *   c[j] += a[2j] b[2j] + a[2j+1] b[2j+1]
 *
 * so packing rounds op(A) and op(B) to bf16 (round to nearest even,
 * vcvtne2ps2bf16) once per panel and stores two consecutive k in one
 * 32-bit word, the even k in the low half ("a pair"; an odd depth ends
 * with a zero half):
 *
 *   A panel: ap[p MR + r] = (op(A)[r, 2p], op(A)[r, 2p+1])  broadcast per row
 *   B panel: bp[p NR + c] = (op(B)[2p, c], op(B)[2p+1, c])  three vectors
 *
 * One pair of k is then 24 vdpbf16ps, twice the multiply-adds of the fp32
 * kernel's 24 FMAs for the same registers and loads. The product of two
 * bf16 is exact in fp32; the instruction rounds its sums to nearest even
 * and flushes denormals, whatever MXCSR says. Only the operands are bf16:
 * C, alpha, beta and every sum stay fp32.
 *
 * As in the fp32 GEMM, each element of C is the same sequence of
 * operations whatever the blocking of M and N, so the split over threads
 * gives the same bits for any thread count. Compiled with -mavx512bf16 on
 * top of the AVX-512 flags; dispatch.c calls none of it unless CPUID
 * reports AVX512_BF16. */
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen/core.h"
#include "kernels/avx512_lanes.h"
#include "kernels/bf16_lanes.h"
#include "kernels/gemm_ahead.h"
#include "kernels/kernels_impl.h"

#define MR 8
#define NR 48
#define KP 192  /* pairs per slice (384 k): a B micro-panel (KP x NR) is 36 KiB */
#define MC 192  /* an A block (MC x KP pairs) is 144 KiB */
#define NC 1152 /* a B block (KP x NC pairs) is 864 KiB */
#define PF_PANELS 2 /* A panels that packing fetches ahead */
#define PF_ROWS   2 /* pairs of rows read in order that packing fetches ahead */

typedef uint32_t pair; /* two bf16: op(.)[., 2p] low, op(.)[., 2p + 1] high */

/* ---- the per-thread packing buffer (gen_pack_buffer) -----------------------
 * The AMX products (gemm_amx.c) pack into the same buffer. */
#define BUF_PAIRS ((size_t)KP * (NC + MC))
_Static_assert(BUF_PAIRS == GEN_BF16_BUF_PAIRS, "kernels_impl.h's size of the packing buffer");

uint32_t *gen_bf16_pack_buffer(void) {
    return gen_pack_buffer(GEN_PACK_BF16, BUF_PAIRS * sizeof(pair));
}

/* The packed weights of every thread (below), for leak checkers. */
#define MAX_KEPT 1024
static pair *kept[MAX_KEPT];
static atomic_int n_kept;

/* ---- rounding to pairs ---------------------------------------------------- */


/* Transposes n x n 32-bit words (n = 16, or 8: then each 8-word half of
 * r[0..8) on its own): r[i] lane j <-> r[j] lane i, in rounds h = n/2,
 * ..., 2, 1 of block swaps between rows i and i + h. */
static inline __attribute__((always_inline)) void transpose_words(__m512i r[16], int n) {
#pragma GCC unroll 4
    for (int h = n / 2; h >= 1; h /= 2) {
        __m512i lo, hi;
        block_swap(h, &lo, &hi);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            if (i >= n || (i & h)) continue;
            const __m512i a = r[i], b = r[i + h];
            r[i] = _mm512_permutex2var_epi32(a, lo, b);
            r[i + h] = _mm512_permutex2var_epi32(a, hi, b);
        }
    }
}

/* ---- packing ---------------------------------------------------------- */

/* Values as stored (struct gen_chan): fp32 at f, which packing rounds, or
 * bf16 at h, taken as they are (a tensor kept at its products' precision:
 * a convolution's input plane, a product's operand); neither: zeros. */

/* Pairs j = 0..15 of a row: its values [at, at + w) (w clamped to 0..32,
 * zeros past). */
static inline __m512i row_pairs(struct gen_chan x, int64_t at, int64_t w) {
    if (!x.h) return round_run(load_lanes(x.f + at, w), load_lanes(x.f + at + 16, w - 16));
    return _mm512_maskz_loadu_epi16(w >= 32  ? ~(__mmask32)0
                                    : w <= 0 ? 0
                                             : ((__mmask32)1 << w) - 1,
                                    x.h + at);
}

/* Lane j = the pair (x[j], y[j]) of the w0 values at `at` and the w1 at at +
 * ld (clamped to 0..16, zeros past): two rows interleaved. */
static inline __m512i rows_pairs(struct gen_chan x, int64_t at, int64_t ld, int64_t w0,
                                 int64_t w1) {
    if (!x.h) return round_rows(load_lanes(x.f + at, w0), load_lanes(x.f + at + ld, w1));
    const __m512i a = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lane_mask(w0), x.h + at));
    const __m512i b = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lane_mask(w1), x.h + at + ld));
    return _mm512_or_si512(a, _mm512_slli_epi32(b, 16));
}

/* The pairs of 32 columns of two rows of bf16, x[j] and x[ld + j], j =
 * 0..31, into dst[0..32): rows_pairs' two vectors in four instructions
 * (the words interleaved within each 128-bit lane, then the lanes put in
 * order). */
static inline void pairs_32(const uint16_t *x, int64_t ld, pair *dst) {
    const __m512i a = _mm512_loadu_si512(x), b = _mm512_loadu_si512(x + ld);
    const __m512i lo = _mm512_unpacklo_epi16(a, b), hi = _mm512_unpackhi_epi16(a, b);
    _mm512_storeu_si512(
        dst, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi));
    _mm512_storeu_si512(
        dst + 16, _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi));
}

/* Fetches the n values at `at` into L1, a line at a time (prefetch_row's
 * lines for floats). */
static inline void prefetch_chan(struct gen_chan x, int64_t at, int64_t n) {
    const char *p = x.h ? (const char *)(x.h + at) : (const char *)(x.f + at);
    const int64_t bytes = n * (x.h ? (int64_t)sizeof *x.h : (int64_t)sizeof *x.f);
    for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(p + i, _MM_HINT_T0);
}

/* op(A)[i0 .. i0+mc, k0 .. k0+kc) into ceil(mc / MR) panels of kp =
 * ceil(kc / 2) pairs, panel q at ap + q kp MR; zero past row mc and past
 * depth kc. The large
 * operand of a transformer layer comes from L3 or memory in strided
 * streams that the hardware prefetcher misses, so, as in the fp32 GEMM,
 * packing fetches its source PF_ROWS rows or PF_PANELS panels ahead. */
static void pack_a(int ta, struct gen_chan A, int64_t lda, int64_t i0, int64_t k0, int64_t mc,
                   int64_t kc, pair *ap) {
    const int64_t kp = (kc + 1) / 2;
    if (ta) { /* stored K x M: rows 2p and 2p+1 hold the MR values of the pair, read in
               * order across the panels, two panels (16 rows of A) a vector */
        for (int64_t p = 0; p < kp; p++) {
            const int64_t at = (k0 + 2 * p) * lda + i0;
            const int has1 = 2 * p + 1 < kc;
            if (2 * (p + PF_ROWS) + 1 < kc) {
                prefetch_chan(A, at + 2 * PF_ROWS * lda, mc);
                prefetch_chan(A, at + (2 * PF_ROWS + 1) * lda, mc);
            }
            pair *dst = ap + p * MR;
            for (int64_t i = 0; i < mc; i += 2 * MR, dst += 2 * kp * MR) {
                const __m512i v = rows_pairs(A, at + i, lda, mc - i, has1 ? mc - i : 0);
                _mm256_storeu_si256((__m256i *)dst, _mm512_castsi512_si256(v));
                if (i + MR < mc)
                    _mm256_storeu_si256((__m256i *)(dst + kp * MR),
                                        _mm512_extracti64x4_epi64(v, 1));
            }
        }
        return;
    }
    /* stored M x K: a row's pairs are adjacent; 16 pairs a round, transposed as
     * two 8 x 8 blocks: r[j] then holds pair j, then pair 8 + j */
    for (int64_t q = 0; q * MR < mc; q++, ap += kp * MR) {
        const int64_t rows = mc - q * MR < MR ? mc - q * MR : MR, i = i0 + q * MR;
        const int pf = (q + PF_PANELS) * MR < mc;
        for (int64_t p0 = 0; p0 < kp; p0 += 16) {
            const int64_t w = kc - 2 * p0; /* values left in the row */
            __m512i r[16];
            if (pf)
                for (int j = 0; j < MR; j++)
                    prefetch_chan(A, (i + PF_PANELS * MR + j) * lda + k0 + 2 * p0, w < 32 ? w : 32);
#pragma GCC unroll 8
            for (int j = 0; j < MR; j++)
                r[j] = j < rows ? row_pairs(A, (i + j) * lda + k0 + 2 * p0, w)
                                : _mm512_setzero_si512();
            transpose_words(r, MR);
#pragma GCC unroll 16
            for (int p = 0; p < 16; p++) {
                if (p0 + p >= kp) break;
                _mm256_storeu_si256((__m256i *)(ap + (p0 + p) * MR),
                                    p < 8 ? _mm512_castsi512_si256(r[p])
                                          : _mm512_extracti64x4_epi64(r[p - 8], 1));
            }
        }
    }
}

/* op(B)[k0 .. k0+kc, j0 .. j0+nc) into ceil(nc / NR) panels of kp pairs,
 * panel q at bp + q kp NR; zero past column nc and past depth kc. */
static void pack_b(int tb, struct gen_chan B, int64_t ldb, int64_t k0, int64_t j0, int64_t kc,
                   int64_t nc, pair *bp) {
    const int64_t kp = (kc + 1) / 2;
    if (!tb) { /* stored K x N: rows 2p and 2p+1 interleaved, read in order across the panels */
        for (int64_t p = 0; p < kp; p++) {
            const int64_t at = (k0 + 2 * p) * ldb + j0;
            const int has1 = 2 * p + 1 < kc;
            if (2 * (p + PF_ROWS) + 1 < kc) {
                prefetch_chan(B, at + 2 * PF_ROWS * ldb, nc);
                prefetch_chan(B, at + (2 * PF_ROWS + 1) * ldb, nc);
            }
            pair *dst = bp + p * NR;
            for (int64_t c = 0; c < nc; c += NR, dst += kp * NR) { /* a panel's columns c.. */
                int v = 0;
                if (B.h && has1) /* 32 columns of bf16 at a time */
                    for (; v + 2 <= NR / 16 && nc - c - 16 * v >= 32; v += 2)
                        pairs_32(B.h + at + c + 16 * v, ldb, dst + 16 * v);
#pragma GCC unroll 3
                for (; v < NR / 16; v++) {
                    const int64_t w = nc - c - 16 * v;
                    _mm512_storeu_si512(dst + 16 * v, w <= 0 ? _mm512_setzero_si512()
                                                             : rows_pairs(B, at + c + 16 * v, ldb,
                                                                          w, has1 ? w : 0));
                }
            }
        }
        return;
    }
    /* stored N x K: a column's pairs are adjacent; 16 x 16 blocks, transposed */
    for (int64_t q = 0; q * NR < nc; q++, bp += kp * NR) {
        const int64_t cols = nc - q * NR < NR ? nc - q * NR : NR, j = j0 + q * NR;
        for (int64_t c0 = 0; c0 < NR; c0 += 16) {
            if (c0 >= cols) { /* zeros past column nc */
                for (int64_t p = 0; p < kp; p++)
                    _mm512_storeu_si512(bp + p * NR + c0, _mm512_setzero_si512());
                continue;
            }
            for (int64_t p0 = 0; p0 < kp; p0 += 16) {
                const int64_t w = kc - 2 * p0;
                __m512i r[16];
#pragma GCC unroll 16
                for (int c = 0; c < 16; c++)
                    r[c] = c0 + c < cols ? row_pairs(B, (j + c0 + c) * ldb + k0 + 2 * p0, w)
                                         : _mm512_setzero_si512();
                transpose_words(r, 16);
#pragma GCC unroll 16
                for (int p = 0; p < 16; p++) {
                    if (p0 + p >= kp) break;
                    _mm512_storeu_si512(bp + (p0 + p) * NR + c0, r[p]);
                }
            }
        }
    }
}

/* ---- micro-kernel ------------------------------------------------------- */

/* C[0..mr, 0..nr) = alpha (A panel . B) + beta C + bias over kp pairs
 * (beta == 0: C is not read; bias: nr values, one a column, or NULL),
 * with nv = ceil(nr / 16) vectors of B a pair: a tile 8 x 16 nv, the last panel of a width that is no multiple of 48 (32 of
 * N = 128, one head's 32 columns) costing no more than it holds. Pair p of
 * B is at bp + p NR of a packed panel, or, when brow is given, at brow[p]
 * + j (a row of pairs read in place). The 8 x nv accumulators are arrays
 * the unrolled loops keep in registers. While the loop runs it fetches
 * C's rows for the write-back into L1, one row of the tile a step (all at
 * once held the loop up while the line fill buffers were full, as in the
 * fp32 kernel), and, given `ahead`, what packing reads next into L2. */
static inline __attribute__((always_inline)) void
kernel_core(int nv, int64_t kp, const pair *restrict ap, const uint16_t *ah, int64_t lda,
            const pair *restrict bp, const pair *const *brow, int64_t j, float *c, uint16_t *ch,
            int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta, const float *bias,
            struct ahead *ahead) {
    __m512 acc[MR][3];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    /* the fetch-ahead cursor, in registers while the loop runs */
    const char *pf = ahead ? ahead->p : NULL;
    int pf_left = ahead ? ahead->left : 0;
    const int pf_mask = ahead ? ahead->mask : 0;
    for (int64_t p = 0; p < kp; p++, ap += MR, bp += NR) {
        const pair *row = brow ? brow[p] + j : bp;
        __m512bh b[3];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) b[v] = (__m512bh)_mm512_loadu_si512(row + 16 * v);
        if (!brow) _mm_prefetch((const char *)(bp + 4 * NR), _MM_HINT_T0);
        if (p < mr)
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++)
                _mm_prefetch(ch ? (const char *)(ch + p * ldc + 16 * v)
                                : (const char *)(c + p * ldc + 16 * v),
                             _MM_HINT_T0);
        if (pf && (p & pf_mask) == 0) {
            _mm_prefetch(pf, _MM_HINT_T1);
            pf += 64;
            if (--pf_left == 0) pf = ahead_row(ahead), pf_left = ahead->left;
        }
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m512bh a =
                ah ? (__m512bh)_mm512_broadcastd_epi32(_mm_loadu_si32(ah + r * lda + 2 * p))
                   : (__m512bh)_mm512_set1_epi32((int)ap[r]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
        }
    }
    if (ahead) ahead->p = pf, ahead->left = pf_left;
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    /* the bias (zero without one), as beta 1 would read it back from a C filled with it */
    __m512 bv[3];
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++)
        bv[v] = bias ? _mm512_maskz_loadu_ps(lane_mask(nr - 16 * v), bias + 16 * v)
                     : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            const __mmask16 m = lane_mask(nr - 16 * v);
            if (ch) { /* C as bf16: beta 0 */
                const __m512 y =
                    bias ? _mm512_fmadd_ps(va, acc[r][v], bv[v]) : _mm512_mul_ps(va, acc[r][v]);
                const __m256i h = (__m256i)_mm512_cvtneps_pbh(y);
                if (m == 0xFFFF)
                    _mm256_storeu_si256((__m256i *)(void *)(ch + r * ldc + 16 * v), h);
                else
                    _mm256_mask_storeu_epi16(ch + r * ldc + 16 * v, m, h);
                continue;
            }
            float *cv = c + r * ldc + 16 * v;
            __m512 y = _mm512_mul_ps(va, acc[r][v]);
            if (beta != 0.0f || bias) {
                __m512 t = bv[v];
                if (beta != 0.0f) {
                    const __m512 cm = _mm512_maskz_loadu_ps(m, cv);
                    t = bias ? _mm512_fmadd_ps(vb, cm, t) : _mm512_mul_ps(vb, cm);
                }
                y = _mm512_fmadd_ps(va, acc[r][v], t);
            }
            _mm512_mask_storeu_ps(cv, m, y);
        }
    }
}

/* One micro-kernel per width (16, 32, 48 columns) for packed panels, with
 * and without the fetch-ahead cursor (it costs the loop a little where
 * there is nothing to fetch), for A's rows read in place (bf16 rows lda
 * apart, whole pairs: an op's own bf16 operand) and for rows of pairs of B
 * read in place; [(nr - 1) / 16] picks the narrowest that holds nr
 * columns. */
typedef void (*packed_kernel)(int64_t kp, const pair *ap, const pair *bp, float *c, int64_t ldc,
                              int64_t mr, int64_t nr, float alpha, float beta, const float *bias,
                              struct ahead *ahead);
typedef void (*half_kernel)(int64_t kp, const pair *ap, const pair *bp, uint16_t *ch, int64_t ldc,
                            int64_t mr, int64_t nr, float alpha, const float *bias,
                            struct ahead *ahead);
typedef void (*arow_kernel)(int64_t kp, const uint16_t *ah, int64_t lda, const pair *bp, float *c,
                            int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta,
                            const float *bias);
typedef void (*rows_kernel)(int64_t kp, const pair *ap, const pair *const *brow, int64_t j,
                            float *c, int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta);
#define KERNELS(NV, W)                                                                             \
    static void kernel_8x##W(int64_t kp, const pair *ap, const pair *bp, float *c, int64_t ldc,    \
                             int64_t mr, int64_t nr, float alpha, float beta, const float *bias,   \
                             struct ahead *ahead) {                                                \
        (void)ahead;                                                                               \
        kernel_core(NV, kp, ap, NULL, 0, bp, NULL, 0, c, NULL, ldc, mr, nr, alpha, beta, bias,     \
                    NULL);                                                                         \
    }                                                                                              \
    static void kernel_8x##W##_ahead(int64_t kp, const pair *ap, const pair *bp, float *c,         \
                                     int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta, \
                                     const float *bias, struct ahead *ahead) {                     \
        kernel_core(NV, kp, ap, NULL, 0, bp, NULL, 0, c, NULL, ldc, mr, nr, alpha, beta, bias,     \
                    ahead);                                                                        \
    }                                                                                              \
    static void kernel_8x##W##_half(int64_t kp, const pair *ap, const pair *bp, uint16_t *ch,      \
                                    int64_t ldc, int64_t mr, int64_t nr, float alpha,              \
                                    const float *bias, struct ahead *ahead) {                      \
        kernel_core(NV, kp, ap, NULL, 0, bp, NULL, 0, NULL, ch, ldc, mr, nr, alpha, 0.0f, bias,    \
                    ahead);                                                                        \
    }                                                                                              \
    static void kernel_8x##W##_arow(int64_t kp, const uint16_t *ah, int64_t lda, const pair *bp,   \
                                    float *c, int64_t ldc, int64_t mr, int64_t nr, float alpha,    \
                                    float beta, const float *bias) {                               \
        kernel_core(NV, kp, NULL, ah, lda, bp, NULL, 0, c, NULL, ldc, mr, nr, alpha, beta, bias,   \
                    NULL);                                                                         \
    }                                                                                              \
    static void kernel_8x##W##_rows(int64_t kp, const pair *ap, const pair *const *brow,           \
                                    int64_t j, float *c, int64_t ldc, int64_t mr, int64_t nr,      \
                                    float alpha, float beta) {                                     \
        kernel_core(NV, kp, ap, NULL, 0, NULL, brow, j, c, NULL, ldc, mr, nr, alpha, beta, NULL,   \
                    NULL);                                                                         \
    }
KERNELS(1, 16)
KERNELS(2, 32)
KERNELS(3, 48)
#undef KERNELS
static const packed_kernel packed_kernels[2][3] = {{kernel_8x16, kernel_8x32, kernel_8x48},
                                                   {kernel_8x16_ahead, kernel_8x32_ahead,
                                                    kernel_8x48_ahead}};
static const half_kernel half_kernels[3] = {kernel_8x16_half, kernel_8x32_half, kernel_8x48_half};
static const arow_kernel arow_kernels[3] = {kernel_8x16_arow, kernel_8x32_arow, kernel_8x48_arow};
static const rows_kernel rows_kernels[3] = {kernel_8x16_rows, kernel_8x32_rows, kernel_8x48_rows};

/* ---- drivers ------------------------------------------------------------ */

/* An operand of a product as stored, rows ld values apart; B's values
 * neither floats nor bf16: packed already. */
struct operand {
    struct gen_chan v;
    int64_t ld;
};

/* C (M x N, row stride ldc) = alpha op(A) op(B) + beta C + bias (N values
 * or NULL, added with the first slice of K) on this thread. Without B,
 * bfull holds op(B) already packed as ceil(N / NR) panels of kp pairs each
 * (panel q at bfull + q kp NR; kp = ceil(K / 2) for a whole operand),
 * whose pairs p0.. are what pack_b would have written for a slice. A bf16
 * A stored M x K of whole pairs (lda and K even) is read in place by the
 * micro-kernels, a block of whole MR panels at a time, where C is floats;
 * else it is packed from bf16. A bf16 A is an op's own,
 * made just before (in cache), so nothing is fetched ahead then; for a
 * bf16 B (a layer's input, cold in its weight gradient) only A's next
 * blocks are. */
static void blocked(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, struct operand a,
                    struct operand b, const pair *bfull, int64_t kpb, float beta, const float *bias,
                    float *C, uint16_t *Ch, int64_t ldc) {
    pair *bp = gen_bf16_pack_buffer(), *ap = bp + (size_t)KP * NC;
    const int has_b = b.v.f || b.v.h;
    const int a_rows = a.v.h && !ta && a.ld % 2 == 0 && K % 2 == 0 && !Ch;
    /* equal even slices of at most 2 KP values: the slicing depends on K alone */
    const int64_t nk = (K + 2 * KP - 1) / (2 * KP);
    const int64_t kslice = ((K + nk - 1) / nk + 1) / 2 * 2;
    GEN_ASSERT(!Ch || (nk == 1 && beta == 0.0f)); /* C as bf16: one slice */
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        const int64_t nc = N - j0 < NC ? N - j0 : NC;
        for (int64_t k0 = 0; k0 < K; k0 += kslice) {
            const int64_t kc = K - k0 < kslice ? K - k0 : kslice, kp = (kc + 1) / 2;
            const float bt = k0 == 0 ? beta : 1.0f;
            if (has_b) pack_b(tb, b.v, b.ld, k0, j0, kc, nc, bp);
            for (int64_t i0 = 0; i0 < M; i0 += MC) {
                const int64_t mc = M - i0 < MC ? M - i0 : MC;
                const int in_place = a_rows && mc % MR == 0;
                /* what packing reads after this block, fetched meanwhile */
                const struct ahead none = {0};
                struct ahead next =
                    a.v.h
                        ? none
                        : ahead_plan(ta, tb, a.v.f, a.ld, b.v.f, b.ld, M, K, MC, i0, k0, kc, kslice,
                                     j0, nc, ((nc + NR - 1) / NR) * ((mc + MR - 1) / MR) * kp);
                if (!in_place) pack_a(ta, a.v, a.ld, i0, k0, mc, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const pair *panel = has_b ? bp + (jr / NR) * kp * NR
                                              : bfull + ((j0 + jr) / NR) * kpb * NR + (k0 / 2) * NR;
                    const int64_t nr = nc - jr < NR ? nc - jr : NR;
                    const float *bj = bias && k0 == 0 ? bias + j0 + jr : NULL;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int64_t at = (i0 + ir) * ldc + j0 + jr;
                        float *c = Ch ? NULL : C + at;
                        const int64_t mr = mc - ir < MR ? mc - ir : MR;
                        if (Ch)
                            half_kernels[(nr - 1) / 16](kp, ap + (ir / MR) * kp * MR, panel,
                                                        Ch + at, ldc, mr, nr, alpha, bj, &next);
                        else if (in_place)
                            arow_kernels[(nr - 1) / 16](kp, a.v.h + (i0 + ir) * a.ld + k0, a.ld,
                                                        panel, c, ldc, mr, nr, alpha, bt, bj);
                        else
                            packed_kernels[next.p != NULL][(nr - 1) / 16](
                                kp, ap + (ir / MR) * kp * MR, panel, c, ldc, mr, nr, alpha, bt, bj,
                                &next);
                    }
                }
            }
        }
    }
}

static struct operand floats(const float *f, int64_t ld) {
    return (struct operand){{f, NULL}, ld};
}

/* C = alpha op(A) op(B) + beta C + bias on this thread (a gen_gemm_fn, and
 * a gen_gemm_chan_fn; a product that is not empty, gen_gemm_split sees to
 * that). */
static void gemm_bf16(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, const float *bias,
                      float *C, int64_t ldc) {
    blocked(ta, tb, M, N, K, alpha, floats(A, lda), floats(B, ldb), NULL, 0, beta, bias, C, NULL,
            ldc);
}

static void gemm_bf16_chan(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                           struct gen_chan A, int64_t lda, struct gen_chan B, int64_t ldb,
                           float beta, const float *bias, float *C, int64_t ldc) {
    blocked(ta, tb, M, N, K, alpha, (struct operand){A, lda}, (struct operand){B, ldb}, NULL, 0,
            beta, bias, C, NULL, ldc);
}

/* The table's bpack_floats, bpack and gemm_bpacked (kernels.h): panels of
 * pairs, one pair in the place of one float. */
static int64_t bpack_floats(int64_t K, int64_t N) {
    return (N + NR - 1) / NR * NR * ((K + 1) / 2);
}

static void bpack(int tb, int64_t K, int64_t N, const float *B, int64_t ldb, float *bp) {
    if (K > 0 && N > 0) pack_b(tb, (struct gen_chan){B, NULL}, ldb, 0, 0, K, N, (pair *)bp);
}

static void bpacked(int ta, int64_t M, int64_t N, int64_t K, float alpha, struct operand a,
                    const float *bp, int64_t k0, int64_t kb, float beta, const float *bias,
                    float *C, int64_t ldc) {
    GEN_ASSERT(K >= 1 && k0 % 2 == 0 && (!bias || (alpha == 1.0f && beta == 0.0f)));
    const struct operand none = {0};
    if (M > 0 && N > 0)
        blocked(ta, 0, M, N, K, alpha, a, none, (const pair *)bp + k0 / 2 * NR, (kb + 1) / 2, beta,
                bias, C, NULL, ldc);
}

static void gemm_bpacked(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                         int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                         const float *bias, float *C, int64_t ldc) {
    bpacked(ta, M, N, K, alpha, floats(A, lda), bp, k0, kb, beta, bias, C, ldc);
}

/* The table's bpack_h and gemm_bpacked_h (kernels.h): an operand held as
 * bf16 taken as it is. */
static void bpack_h(int tb, int64_t K, int64_t N, const uint16_t *B, int64_t ldb, float *bp) {
    if (K > 0 && N > 0) pack_b(tb, (struct gen_chan){NULL, B}, ldb, 0, 0, K, N, (pair *)bp);
}

static void gemm_bpacked_h(int ta, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *Ah,
                           int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                           const float *bias, float *C, int64_t ldc) {
    bpacked(ta, M, N, K, alpha, (struct operand){{NULL, Ah}, lda}, bp, k0, kb, beta, bias, C, ldc);
}

/* ---- products over operands packed whole (Winograd's, winograd_avx512bf16.c) */

int64_t gen_bf16_pack_a_floats(int64_t M, int64_t K) {
    return (M + MR - 1) / MR * MR * ((K + 1) / 2);
}

void gen_bf16_pack_a(int64_t M, int64_t K, const float *A, int64_t lda, uint32_t *ap) {
    pack_a(0, (struct gen_chan){A, NULL}, lda, 0, 0, M, K, ap);
}

void gen_bf16_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
}

/* The table's gemm_chan, and its gemm and gemm_bias (float operands): over
 * the threads, in whole MR or NR panels. */
static void gemm_chan_threads(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                              struct gen_chan A, int64_t lda, struct gen_chan B, int64_t ldb,
                              float beta, const float *bias, float *C, int64_t ldc) {
    gen_gemm_split_chan(gemm_bf16_chan, MR, NR, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias,
                        C, ldc);
}

static void gemm_threads(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc) {
    gemm_chan_threads(ta, tb, M, N, K, alpha, (struct gen_chan){A, NULL}, lda,
                      (struct gen_chan){B, NULL}, ldb, beta, NULL, C, ldc);
}

static void gemm_bias_threads(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                              int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                              int64_t ldc) {
    gemm_chan_threads(ta, tb, M, N, K, 1.0f, (struct gen_chan){A, NULL}, lda,
                      (struct gen_chan){B, NULL}, ldb, 0.0f, bias, C, ldc);
}

/* The table's gemm_bias_h: C's rows in whole MR panels a thread, thread t
 * of nt taking its share (each element of C the same operations however
 * the rows are split). */
static void half_share(int64_t t, int64_t nt, int ta, int tb, int64_t M, int64_t N, int64_t K,
                       struct gen_chan A, int64_t lda, const float *B, int64_t ldb,
                       const float *bias, uint16_t *C, int64_t ldc) {
    const int64_t panels = (M + MR - 1) / MR;
    const int64_t lo = panels * t / nt * MR, e = panels * (t + 1) / nt * MR, hi = e < M ? e : M;
    if (lo < hi)
        blocked(ta, tb, hi - lo, N, K, 1.0f,
                (struct operand){gen_chan_at(A, ta ? lo : lo * lda), lda}, floats(B, ldb), NULL, 0,
                0.0f, bias, NULL, C + lo * ldc, ldc);
}

static void gemm_bias_h(int ta, int tb, int64_t M, int64_t N, int64_t K, struct gen_chan A,
                        int64_t lda, const float *B, int64_t ldb, const float *bias, uint16_t *C,
                        int64_t ldc) {
    GEN_ASSERT(K >= 1 && K <= GEN_BF16_C_DEPTH && GEN_BF16_C_DEPTH == 2 * KP);
    if (M <= 0 || N <= 0) return;
#ifdef _OPENMP
#pragma omp parallel if (M > MR && !omp_in_parallel())
    half_share(omp_get_thread_num(), omp_get_num_threads(), ta, tb, M, N, K, A, lda, B, ldb, bias,
               C, ldc);
#else
    half_share(0, 1, ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc);
#endif
}

/* ---- convolution as an implicit GEMM over channel pairs -------------------
 * vdpbf16ps sums the products of a pair of k. Here a pair is two
 * neighbouring channels at the same tap: with T = KH KW taps and Cq =
 * ceil(C / 2) channel pairs, pair p = q T + t holds channels 2q and 2q + 1
 * at tap t (a zero channel past C). On the wide grid of the AVX-512
 * convolution (struct gen_wide: padded phase planes, every im2col row a
 * contiguous slice of a plane), the planes of channels 2q and 2q + 1 are
 * rounded once per call and interleaved into one plane of pairs, so row p
 * of B is the slice of pair plane q from tap t's offset: already the form
 * vdpbf16ps takes, read by the micro-kernel in place (rows_kernels), where
 * packing im2col values per tap would round and move K x N of them. The
 * weights are packed once per call into MR-row panels in the same pair
 * order. */

static int64_t lines16(int64_t n) {
    return (n + 15) / 16 * 16;
}

/* The parts of conv_gemm's `work`, in floats: the pair planes of the m
 * images (and their slack), the fp32 phase planes of one channel pair, the
 * row pointers of one image, the wide output. */
struct conv_work {
    int64_t pairs, planes, rows, out;
};

static struct conv_work conv_work_of(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                     int64_t KW, int64_t stride, int64_t pad, int64_t m) {
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    return (struct conv_work){.pairs = lines16(m * ((C + 1) / 2) * g.plane + g.slack),
                              .planes = lines16(2 * g.plane + g.slack),
                              .rows = lines16(2 * (C + 1) / 2 * KH * KW),
                              .out = lines16(M * m * g.tw)};
}

static struct gen_kernels fp32; /* the AVX-512 table this one overrides */

/* Whether a convolution stays in fp32, on the AVX-512 table's kernels:
 * one input channel (conv_gemm's C) under a kernel of several taps, where
 * pairs of channels would be half zero. The U-Net's first convolution
 * and its last one's input gradient (1 -> 32 at 28 x 28, 64 images) took
 * 1.2 and 1.5 ms a step in bf16, 0.8 and 0.7 in fp32. */
static int fp32_conv(int64_t C, int64_t KH, int64_t KW) {
    return C == 1 && KH * KW > 1;
}

static int64_t conv_gemm_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m) {
    if (fp32_conv(C, KH, KW)) return fp32.conv_gemm_work(M, C, H, W, KH, KW, stride, pad, m);
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad))
        return gen_wino_bf16_conv_work(M, C, H, W, pad, m);
    const struct conv_work w = conv_work_of(M, C, H, W, KH, KW, stride, pad, m);
    return w.pairs + w.planes + w.rows + w.out;
}

/* Wm (M x C T) into ceil(M / MR) panels of Kq = Cq T pairs, panel q at ap
 * + q Kq MR: pair h T + t of row r (at (h T + t) MR + r) is (Wm[r, 2h T +
 * t], Wm[r, (2h + 1) T + t]); zero past row M and channel C. */
static void pack_weights(int64_t M, const float *Wm, int64_t C, int64_t T, pair *ap) {
    const int64_t Kq = (C + 1) / 2 * T;
    for (int64_t r = 0; r < (M + MR - 1) / MR * MR; r++) {
        pair *dst = ap + r / MR * Kq * MR + r % MR;
        for (int64_t h = 0; h < (C + 1) / 2; h++)
            for (int64_t t0 = 0; t0 < T; t0 += 16) {
                const float *src = Wm + r * C * T + 2 * h * T + t0;
                const int64_t n = r < M ? T - t0 : 0, n1 = 2 * h + 1 < C ? n : 0;
                pair words[16];
                _mm512_storeu_si512(words, round_rows(load_lanes(src, n), load_lanes(src + T, n1)));
                for (int64_t t = t0; t < T && t < t0 + 16; t++) dst[(h * T + t) * MR] = words[t - t0];
            }
    }
}

/* ---- the packed weights, kept per thread ----------------------------------
 * A layer's chunks call conv_gemm with the same weights one after another;
 * packing them (M K values, rounded and reordered into pairs) is a tenth
 * of a 32-channel call's time. So each thread keeps the last weights it
 * packed, as a copy of their bits beside the panels, and packs again only
 * when the weights or their shape differ from that copy: a step's chunks
 * of one layer pack its weights once per thread, and nothing can see stale
 * panels (the copy is compared whole, never trusted by address). */
struct packed_weights {
    int64_t M, C, T, cap; /* shape of the copy; floats allocated for copy + panels */
    float *copy;          /* M C T floats, then the panels (pairs) */
    int slot;             /* 1 + its index in `kept`, 0 before the first */
};
static _Thread_local struct packed_weights thread_weights;

/* The panels of Wm (M x C T), packed on this thread by pack_weights or
 * kept from its last call with the same bits. */
static const pair *weights_panels(int64_t M, const float *Wm, int64_t C, int64_t T) {
    struct packed_weights *pw = &thread_weights;
    const int64_t K = C * T, panels = (M + MR - 1) / MR * MR * ((C + 1) / 2) * T;
    const size_t bytes = (size_t)(M * K) * sizeof(float);
    if (pw->copy && pw->M == M && pw->C == C && pw->T == T && !memcmp(pw->copy, Wm, bytes))
        return (const pair *)(void *)(pw->copy + lines16(M * K));
    const int64_t need = lines16(lines16(M * K) + panels); /* aligned_alloc: whole lines */
    if (need > pw->cap) {
        float *p = aligned_alloc(64, (size_t)need * sizeof(float));
        GEN_ASSERT(p != NULL);
        free(pw->copy);
        if (!pw->slot) pw->slot = 1 + atomic_fetch_add(&n_kept, 1);
        if (pw->slot <= MAX_KEPT) kept[pw->slot - 1] = (pair *)(void *)p; /* for leak checkers */
        pw->copy = p, pw->cap = need;
    }
    pw->M = M, pw->C = C, pw->T = T;
    memcpy(pw->copy, Wm, bytes);
    pair *ap = (pair *)(void *)(pw->copy + lines16(M * K));
    pack_weights(M, Wm, C, T, ap);
    return ap;
}

static inline struct gen_chan chan_at(const float *x, const uint16_t *xh, int64_t at) {
    return (struct gen_chan){x ? x + at : NULL, xh ? xh + at : NULL};
}

/* 16 bf16 values as the fp32 values they are */
static inline __m512 widen16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Stride 1 in one pass: 16 values of the padded plane of channel x
 * (padded by pad: plane row u is input row u - pad, column v input
 * column v - pad), from plane column v of row u, zero in the padding. */
static inline __m512 padded_run(struct gen_chan x, int64_t H, int64_t W, int64_t pad, int64_t u,
                                int64_t v) {
    const int64_t ih = u - pad, c = v - pad;
    if ((!x.f && !x.h) || ih < 0 || ih >= H) return _mm512_setzero_ps();
    if (x.h) return widen16(_mm256_maskz_loadu_epi16(lanes(-c, W - c), x.h + ih * W + c));
    return _mm512_maskz_loadu_ps(lanes(-c, W - c), x.f + ih * W + c);
}

/* Stride 1 where a padded row fits one vector (Wq <= 32): the lanes of
 * the two loads that cover row ih's W values from plane column pad on,
 * the same for every row, so each row is two masked loads (none in the
 * padding rows) without padded_run's bounds per 16 values. */
struct row_lanes {
    __mmask16 lo, hi;
};

static struct row_lanes row_lanes_of(int64_t W, int64_t pad) {
    return (struct row_lanes){lanes(pad, pad + W), lanes(pad - 16, pad + W - 16)};
}

/* Plane row u's 32 values (zeros past Wq) as two vectors, from channel
 * x (H x W of fp32; NULL: zeros; bf16 channels take row32_h). */
static inline void row32(const float *x, int64_t H, int64_t W, int64_t pad, struct row_lanes r,
                         int64_t u, __m512 *a, __m512 *b) {
    const int64_t ih = u - pad;
    if (!x || ih < 0 || ih >= H) {
        *a = *b = _mm512_setzero_ps();
        return;
    }
    const float *s = x + ih * W - pad;
    *a = _mm512_maskz_loadu_ps(r.lo, s);
    *b = _mm512_maskz_loadu_ps(r.hi, s + 16);
}

/* Plane row u's 32 values as bf16 (zeros past Wq) from channel x of
 * bf16 values: one masked load, nothing to round. */
static inline __m512i row32_h(const uint16_t *x, int64_t H, int64_t W, int64_t pad,
                              struct row_lanes r, int64_t u) {
    const int64_t ih = u - pad;
    if (!x || ih < 0 || ih >= H) return _mm512_setzero_si512();
    return _mm512_maskz_loadu_epi16((__mmask32)r.lo | (__mmask32)r.hi << 16, x + ih * W - pad);
}

/* The m images' pair planes into xw (image i's pair plane q at xw + (i Cq
 * + q) plane), then slack zeros: channels 2q and 2q + 1 padded and split
 * into phases by gen_wide_planes into `planes` (2 plane + slack floats),
 * then rounded and interleaved (a lone last channel with zeros). At stride
 * 1 there are no phases and the padded rows are read, rounded and
 * interleaved in one pass (two passes cost 6 % of a bf16 diffusion step
 * in copies of short rows). */
void gen_bf16_pair_planes(const float *x, const uint16_t *xh, int64_t img, int64_t m, int64_t C,
                          int64_t H, int64_t W, int64_t pad, const struct gen_wide *g,
                          float *planes, pair *xw) {
    const int64_t HW = H * W;
    GEN_ASSERT(!xh || g->s == 1);
    for (int64_t i = 0; i < m; i++)
        for (int64_t q = 0; q < (C + 1) / 2; q++, xw += g->plane) {
            const int64_t two = 2 * q + 1 < C ? 2 : 1;
            if (g->s == 1) {
                const struct gen_chan x0 = chan_at(x, xh, i * img + 2 * q * HW),
                                      x1 = two == 2 ? chan_at(x, xh, i * img + (2 * q + 1) * HW)
                                                    : (struct gen_chan){NULL, NULL};
                if (2 * q + 2 < C)
                    prefetch_chan(x0, 2 * HW, 2 * q + 3 < C ? 2 * HW : HW);
                else if (i + 1 < m)
                    prefetch_chan(chan_at(x, xh, (i + 1) * img), 0, C > 1 ? 2 * HW : HW);
                if (g->Wq <= 32) {
                    const struct row_lanes r = row_lanes_of(W, pad);
                    const __mmask16 tail = lane_mask(g->Wq - 16);
                    if (xh) { /* bf16 already: the two rows' values interleaved */
                        static const uint16_t zlo[32] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,
                                                         37, 6,  38, 7,  39, 8,  40, 9,  41, 10, 42,
                                                         11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
                        static const uint16_t zhi[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21,
                                                         53, 22, 54, 23, 55, 24, 56, 25, 57, 26, 58,
                                                         27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
                        const __m512i il = _mm512_loadu_si512(zlo), ih = _mm512_loadu_si512(zhi);
                        for (int64_t u = 0; u < g->Hq; u++) {
                            const __m512i a = row32_h(x0.h, H, W, pad, r, u);
                            const __m512i b = row32_h(x1.h, H, W, pad, r, u);
                            pair *d = xw + u * g->Wq;
                            _mm512_mask_storeu_epi32(d, lane_mask(g->Wq),
                                                     _mm512_permutex2var_epi16(a, il, b));
                            _mm512_mask_storeu_epi32(d + 16, tail,
                                                     _mm512_permutex2var_epi16(a, ih, b));
                        }
                        continue;
                    }
                    for (int64_t u = 0; u < g->Hq; u++) {
                        __m512 a0, a1, b0, b1;
                        row32(x0.f, H, W, pad, r, u, &a0, &a1);
                        row32(x1.f, H, W, pad, r, u, &b0, &b1);
                        pair *d = xw + u * g->Wq;
                        _mm512_mask_storeu_epi32(d, lane_mask(g->Wq), round_rows(a0, b0));
                        _mm512_mask_storeu_epi32(d + 16, tail, round_rows(a1, b1));
                    }
                    continue;
                }
                for (int64_t u = 0; u < g->Hq; u++)
                    for (int64_t v = 0; v < g->Wq; v += 16)
                        _mm512_mask_storeu_epi32(xw + u * g->Wq + v, lane_mask(g->Wq - v),
                                                 round_rows(padded_run(x0, H, W, pad, u, v),
                                                            padded_run(x1, H, W, pad, u, v)));
                continue;
            }
            gen_wide_planes(x + i * img + 2 * q * HW, HW, 1, two, H, W, pad, g, planes);
            const float *p1 = planes + g->plane;
            for (int64_t t = 0; t < g->plane; t += 16)
                _mm512_storeu_si512(xw + t, round_rows(load_lanes(planes + t, g->plane - t),
                                                       two == 2 ? load_lanes(p1 + t, g->plane - t)
                                                                : _mm512_setzero_ps()));
        }
    memset(xw, 0, (size_t)g->slack * sizeof *xw);
}

/* C (M x N, row stride ldc) = ap (packed weights, Kq pairs) . B, where B
 * is ceil(N / NR) panels of Kq pairs (panel q at bp + q Kq NR), or, with
 * bp NULL, pair p of B's columns is the row brow[p] read in place: the
 * blocked loops of `blocked`, slices of at most KP pairs, with nothing to
 * pack. */
static void packed_gemm(int64_t M, int64_t N, int64_t Kq, const pair *ap, const pair *bp,
                        const pair *const *brow, float *C, int64_t ldc) {
    const int64_t nk = (Kq + KP - 1) / KP, kslice = (Kq + nk - 1) / nk;
    for (int64_t k0 = 0; k0 < Kq; k0 += kslice) {
        const int64_t kp = Kq - k0 < kslice ? Kq - k0 : kslice;
        const float beta = k0 == 0 ? 0.0f : 1.0f;
        for (int64_t jr = 0; jr < N; jr += NR) {
            const int64_t nr = N - jr < NR ? N - jr : NR;
            for (int64_t ir = 0; ir < M; ir += MR) {
                const pair *a = ap + ir * Kq + k0 * MR;
                float *c = C + ir * ldc + jr;
                const int64_t mr = M - ir < MR ? M - ir : MR;
                if (bp)
                    packed_kernels[0][(nr - 1) / 16](kp, a, bp + jr * Kq + k0 * NR, c, ldc, mr,
                                                     nr, 1.0f, beta, NULL, NULL);
                else
                    rows_kernels[(nr - 1) / 16](kp, a, brow + k0, jr, c, ldc, mr, nr, 1.0f, beta);
            }
        }
    }
}

/* Winograd's products (winograd_avx512bf16.c): A packed whole by
 * gen_bf16_pack_a, B as panels whose columns past N are zero up to a
 * multiple of 16. */
void gen_bf16_gemm_panels(int64_t M, int64_t N, int64_t kp, const uint32_t *ap,
                          const uint32_t *bp, float *C, int64_t ldc) {
    packed_gemm(M, N, kp, ap, bp, NULL, C, ldc);
}

/* out (M x m P, row stride ldo) = Wm (M x K) col + bias + beta out, as the table's
 * conv_gemm (kernels.h); work holds conv_gemm_work floats. Image by image
 * on the wide grid, then the garbage columns dropped. On the calling
 * thread. */
static void conv_gemm(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                      const float *x, const float *bias, float beta, float *out, int64_t ldo,
                      int64_t out_img, float *work) {
    if (fp32_conv(C, KH, KW)) {
        fp32.conv_gemm(M, Wm, C, H, W, KH, KW, stride, pad, m, img, x, bias, beta, out, ldo,
                       out_img, work);
        return;
    }
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) { /* Wm as conv_prep left it */
        gen_wino_bf16_conv(M, Wm, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work);
        return;
    }
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t T = KH * KW, Cq = (C + 1) / 2, Kq = Cq * T, n = m * g.tw;
    if (M <= 0 || m <= 0) return;
    const struct conv_work w = conv_work_of(M, C, H, W, KH, KW, stride, pad, m);
    pair *xw = (pair *)(void *)work;
    float *planes = work + w.pairs, *wide = planes + w.planes + w.rows;
    const pair **brow = (const pair **)(void *)(planes + w.planes);
    const pair *ap = weights_panels(M, Wm, C, T);
    gen_bf16_pair_planes(x, NULL, img, m, C, H, W, pad, &g, planes, xw);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t q = 0; q < Cq; q++)
            for (int64_t t = 0; t < T; t++)
                brow[q * T + t] = xw + (i * Cq + q) * g.plane + gen_wide_tap(&g, t / KW, t % KW);
        packed_gemm(M, g.tw, Kq, ap, NULL, brow, wide + i * g.tw, n);
    }
    gen_wide_to_out(&g, M, m, wide, n, bias, beta, out, ldo, out_img);
}

/* ---- the weight gradient of a convolution ----------------------------------
 * dw (M x K) = sum over images i of dy_i (M x P) col_i^T (P x K). Both
 * factors run along P in memory, so rather than transpose either into
 * panels, an 8 x 3 block of dw keeps a vector of partial sums per element
 * while it walks P in steps of 32 (both operands rounded to bf16 once, in
 * runs of P: vdpbf16ps pairs neighbouring positions t, t + 1 of the same
 * element), and sums the lanes at the end. The col rows are slices of the
 * phase planes of the wide grid (struct gen_wide, any stride), dy laid out
 * on the same grid (zeros in the garbage columns). */
#define DW_MB 8
#define DW_KB 3

typedef uint16_t bf16;

static int64_t up32(int64_t n) {
    return (n + 31) / 32 * 32;
}

/* dw[r ldw + j] = sum over images i < m and t < len (a multiple of 32) of
 * a(i)[r a_row + t] b[j](i)[t], where a(i) = a + i a_img and b[j](i) =
 * b[j] + i b_img; for r < mn, j < kn (the rest repeat row mn - 1 or tap
 * kn - 1 and are not stored). */
static void dw_block(int64_t mn, int64_t kn, int64_t m, int64_t len, const bf16 *a, int64_t a_img,
                     int64_t a_row, const bf16 *const b[DW_KB], int64_t b_img, float *dw,
                     int64_t ldw) {
    __m512 acc[DW_MB][DW_KB];
#pragma GCC unroll 8
    for (int r = 0; r < DW_MB; r++)
#pragma GCC unroll 3
        for (int j = 0; j < DW_KB; j++) acc[r][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < m; i++) {
        const bf16 *ar[DW_MB], *bj[DW_KB];
#pragma GCC unroll 8
        for (int r = 0; r < DW_MB; r++) ar[r] = a + i * a_img + (r < mn ? r : mn - 1) * a_row;
#pragma GCC unroll 3
        for (int j = 0; j < DW_KB; j++) bj[j] = b[j < kn ? j : kn - 1] + i * b_img;
        for (int64_t t = 0; t < len; t += 32) {
            __m512bh v[DW_KB];
#pragma GCC unroll 3
            for (int j = 0; j < DW_KB; j++) v[j] = (__m512bh)_mm512_loadu_si512(bj[j] + t);
#pragma GCC unroll 8
            for (int r = 0; r < DW_MB; r++) {
                const __m512bh u = (__m512bh)_mm512_loadu_si512(ar[r] + t);
#pragma GCC unroll 3
                for (int j = 0; j < DW_KB; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], u, v[j]);
            }
        }
    }
    __m512 v[2][16]; /* the 24 sums, 16 at a time: v[f / 16][f % 16] is acc[f / 3][f % 3] */
    float sums[32];
#pragma GCC unroll 32
    for (int f = 0; f < 32; f++) v[f / 16][f % 16] = f < 24 ? acc[f / 3][f % 3] : _mm512_setzero_ps();
    _mm512_storeu_ps(sums, lane_sums(v[0]));
    _mm512_storeu_ps(sums + 16, lane_sums(v[1]));
    for (int64_t r = 0; r < mn; r++)
        for (int64_t j = 0; j < kn; j++) dw[r * ldw + j] = sums[r * DW_KB + j];
}

/* The parts of conv_dw's `work`, in floats (two bf16 a float): tap
 * offsets (int64), the phase planes in bf16 (and their slack), one fp32
 * phase plane, dy on the wide grid in bf16 (rows of tw rounded up to 32). */
struct dw_work {
    int64_t offs, planes, plane, dy;
};

static struct dw_work dw_work_of(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                 int64_t stride, int64_t pad, int64_t m) {
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    return (struct dw_work){.offs = lines16(2 * C * KH * KW),
                            .planes = lines16((m * C * g.plane + g.slack + 32 + 1) / 2),
                            .plane = lines16(g.plane + g.slack),
                            .dy = lines16(m * M * up32(g.tw) / 2)};
}

static int64_t conv_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t stride, int64_t pad, int64_t m) {
    if (fp32_conv(C, KH, KW)) return fp32.conv_dw_work(M, C, H, W, KH, KW, stride, pad, m);
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad))
        return gen_wino_bf16_dw_work(M, C, H, W, pad, m);
    if (gen_nhwc_fits(C, KH, KW, stride))
        return gen_nhwc_dw_work(M, C, H, W, KH, KW, stride, pad, m);
    const struct dw_work w = dw_work_of(M, C, H, W, KH, KW, stride, pad, m);
    return w.offs + w.planes + w.plane + w.dy;
}

void gen_bf16_planes(const float *x, const uint16_t *xh, int64_t img, int64_t m, int64_t C,
                     int64_t H, int64_t W, int64_t pad, const struct gen_wide *g, float *plane,
                     uint16_t *xb) {
    GEN_ASSERT(!xh || g->s == 1);
    for (int64_t q = 0; q < m * C; q++) { /* each plane padded and phased in fp32, then rounded */
        const struct gen_chan xq = chan_at(x, xh, q / C * img + q % C * H * W);
        if (g->s == 1) { /* no phases: the padded rows rounded in one pass */
            if (q + 1 < m * C)
                prefetch_chan(chan_at(x, xh, (q + 1) / C * img + (q + 1) % C * H * W), 0, H * W);
            if (g->Wq <= 32) { /* a padded row is one vector of 32 bf16 */
                const struct row_lanes r = row_lanes_of(W, pad);
                const __mmask32 keep = (__mmask32)(g->Wq == 32 ? ~0u : (1u << g->Wq) - 1);
                for (int64_t u = 0; u < g->Hq; u++) {
                    if (xh) { /* bf16 already: the row as it is */
                        _mm512_mask_storeu_epi16(xb + q * g->plane + u * g->Wq, keep,
                                                 row32_h(xq.h, H, W, pad, r, u));
                        continue;
                    }
                    __m512 a, b;
                    row32(xq.f, H, W, pad, r, u, &a, &b);
                    _mm512_mask_storeu_epi16(xb + q * g->plane + u * g->Wq, keep, round_run(a, b));
                }
                continue;
            }
            for (int64_t u = 0; u < g->Hq; u++)
                for (int64_t v = 0; v < g->Wq; v += 16)
                    _mm256_mask_storeu_epi16(xb + q * g->plane + u * g->Wq + v,
                                             lane_mask(g->Wq - v),
                                             (__m256i)_mm512_cvtneps_pbh(
                                                 padded_run(xq, H, W, pad, u, v)));
            continue;
        }
        gen_wide_planes(xq.f, H * W, 1, 1, H, W, pad, g, plane);
        round_to(plane, g->plane, xb + q * g->plane);
    }
    memset(xb + m * C * g->plane, 0, (size_t)(g->slack + 32) * sizeof *xb); /* the slack */
}

/* dw (M x K) = sum over the m images of dy_i (M x P, images dy_img floats
 * apart) col_i^T, overwriting dw, as the table's conv_dw (kernels.h); work
 * holds conv_dw_work floats. On the calling thread. The strided geometries
 * of the channels-last kernels (gen_nhwc_fits) stay in fp32, as their
 * input gradients do (gen_kernels_avx512bf16_fill): this direct form's
 * dot products over positions ran them at 0.77-0.86 of the fp32 kernel's
 * speed (bench_gemm --bf16: the U-Net's 28 -> 14 and the GAN critic's 14
 * -> 7). */
static void conv_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                    int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                    const float *x, float *dw, float *work) {
    if (fp32_conv(C, KH, KW)) {
        fp32.conv_dw(M, dy, dy_img, C, H, W, KH, KW, stride, pad, m, img, x, dw, work);
        return;
    }
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_bf16_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work);
        return;
    }
    if (gen_nhwc_fits(C, KH, KW, stride)) {
        gen_nhwc_dw(M, dy, dy_img, C, H, W, KH, KW, stride, pad, m, img, x, dw, work);
        return;
    }
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t OW = g.OW, P = g.OH * OW, K = C * KH * KW, L = up32(g.tw);
    if (M <= 0 || K <= 0) return;
    const struct dw_work w = dw_work_of(M, C, H, W, KH, KW, stride, pad, m);
    int64_t *offs = (int64_t *)(void *)work;
    bf16 *xb = (bf16 *)(void *)(work + w.offs);
    float *plane = work + w.offs + w.planes;
    bf16 *dyb = (bf16 *)(void *)(plane + w.plane);
    for (int64_t k = 0; k < K; k++)
        offs[k] = k / (KH * KW) * g.plane + gen_wide_tap(&g, k / KW % KH, k % KW);
    gen_bf16_planes(x, NULL, img, m, C, H, W, pad, &g, plane, xb);
    memset(dyb, 0, (size_t)(m * M * L) * sizeof *dyb); /* dy on the wide grid */
    for (int64_t i = 0; i < m; i++)
        for (int64_t co = 0; co < M; co++) {
            if (co + 1 < M) prefetch_row(dy + i * dy_img + (co + 1) * P, P);
            else if (i + 1 < m) prefetch_row(dy + (i + 1) * dy_img, P);
            for (int64_t oh = 0; oh < g.OH; oh++)
                round_to(dy + i * dy_img + co * P + oh * OW, OW, dyb + (i * M + co) * L + oh * g.Wq);
        }
    /* co outer: the block's 8 rows of dy stay in L1 while the taps stream by */
    for (int64_t co0 = 0; co0 < M; co0 += DW_MB)
        for (int64_t k0 = 0; k0 < K; k0 += DW_KB) {
            const int64_t kn = K - k0 < DW_KB ? K - k0 : DW_KB;
            const bf16 *b[DW_KB];
            for (int64_t j = 0; j < DW_KB; j++) b[j] = xb + offs[k0 + (j < kn ? j : kn - 1)];
            dw_block(M - co0 < DW_MB ? M - co0 : DW_MB, kn, m, L, dyb + co0 * L, M * L, L, b,
                     C * g.plane, dw + co0 * K + k0, K);
        }
}

/* The kernels for Winograd's geometries transformed and packed once per
 * convolution (the table's conv_prep); the direct convolution packs its
 * own (weights_panels). */
static int64_t conv_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad) {
    if (fp32_conv(C, KH, KW))
        return fp32.conv_prep_work ? fp32.conv_prep_work(M, C, H, W, KH, KW, stride, pad) : 0;
    return gen_wino_fits(M, C, H, W, KH, KW, stride, pad) ? gen_wino_bf16_prep_work(M, C) : 0;
}

static void conv_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                      int64_t stride, int64_t pad, const float *Wm, float *prep) {
    if (fp32_conv(C, KH, KW)) {
        if (fp32.conv_prep) fp32.conv_prep(M, C, H, W, KH, KW, stride, pad, Wm, prep);
        return;
    }
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) gen_wino_bf16_prep(M, C, Wm, prep);
}

/* The table of --precision bf16: the AVX-512 table with these products. */
void gen_kernels_avx512bf16_fill(struct gen_kernels *t) {
    fp32 = *t;
    t->name = "avx512bf16";
    t->groupnorm_silu_fwd_b16 = gen_groupnorm_silu_fwd_b16_avx512;
    t->gemm = gemm_threads;
    t->gemm_bias = gemm_bias_threads;
    t->conv_gemm_work = conv_gemm_work;
    t->conv_gemm = conv_gemm;
    t->conv_gemm_images = NULL; /* its Winograd is F(2 x 2)'s, blocks of tile rows */
    t->conv_dw_work = conv_dw_work;
    t->conv_dw = conv_dw;
    t->conv_prep_work = conv_prep_work; /* Winograd's transformed; the rest as they are */
    t->conv_prep = conv_prep;
    /* Strided input gradients stay the fp32 table's channels-last kernels
     * (conv_dx): bf16 has no such kernel, and W^T dy by its GEMM then
     * col2im made a diffusion step 1.4 % slower (113.5 against 112.0 ms,
     * 6 ABBA rounds). */
    t->bpack_floats = bpack_floats;
    t->bpack = bpack;
    t->gemm_bpacked = gemm_bpacked;
    t->gemm_bias_h = gemm_bias_h;
    t->bpack_h = bpack_h;
    t->gemm_bpacked_h = gemm_bpacked_h;
    t->layernorm_fwd_b16 = gen_layernorm_fwd_b16_avx512;
    t->gemm_chan = gemm_chan_threads;
    t->softmax_fwd_b16 = gen_softmax_fwd_b16_avx512;
    t->softmax_grad_b16 = gen_softmax_grad_b16_avx512;
}
