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
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen/core.h"
#include "kernels/kernels_impl.h"

#define MR 8
#define NR 48
#define KP 192  /* pairs per slice (384 k): a B micro-panel (KP x NR) is 36 KiB */
#define MC 192  /* an A block (MC x KP pairs) is 144 KiB */
#define NC 1152 /* a B block (KP x NC pairs) is 864 KiB */

typedef uint32_t pair; /* two bf16: op(.)[., 2p] low, op(.)[., 2p + 1] high */

/* ---- per-thread packing buffers ------------------------------------------
 * One per thread, allocated on first use and kept for the process's life;
 * each is recorded in `kept` so that leak checkers see it reachable. */
#define BUF_PAIRS ((size_t)KP * (NC + MC))
#define MAX_KEPT  1024
static pair *kept[MAX_KEPT];
static atomic_int n_kept;
static _Thread_local pair *thread_pairs;

static pair *pack_buffer(void) {
    if (!thread_pairs) {
        pair *p = aligned_alloc(64, BUF_PAIRS * sizeof *p);
        GEN_ASSERT(p != NULL);
        const int slot = atomic_fetch_add(&n_kept, 1);
        if (slot < MAX_KEPT) kept[slot] = p;
        thread_pairs = p;
    }
    return thread_pairs;
}

/* ---- rounding to pairs ---------------------------------------------------- */

static inline __mmask16 first_lanes(int64_t n) { /* lanes [0, n), n clamped to 0..16 */
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

static inline __m512 load_lanes(const float *p, int64_t n) {
    return _mm512_maskz_loadu_ps(first_lanes(n), p);
}

/* The 32 values x[0..16) then y[0..16) rounded to bf16, in that order:
 * lane j of the result is the pair (x[2j], x[2j+1]) for j < 8, then y's.
 * For 32 consecutive values of a row, these are its 16 pairs. */
static inline __m512i round_run(__m512 x, __m512 y) {
    return (__m512i)_mm512_cvtne2ps_pbh(y, x);
}

/* Lane j = the pair (x[j], y[j]): two rows of 16 values rounded to bf16 and
 * interleaved (vpermw of the 32 rounded values). */
static inline __m512i round_rows(__m512 x, __m512 y) {
    static const uint16_t zip[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                     8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(zip), round_run(x, y));
}

/* The vpermt2d indices that swap the off-diagonal h x h blocks of every
 * 2h x 2h block of two rows a, b: lo takes a's lane j where j & h is 0,
 * else b's lane j - h; hi takes a's lane j + h where j & h is 0, else b's
 * lane j (indices 16 and up name the second source). */
static inline __attribute__((always_inline)) void block_swap(int h, __m512i *lo, __m512i *hi) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __mmask16 upper = _mm512_test_epi32_mask(lane, _mm512_set1_epi32(h));
    *lo = _mm512_mask_add_epi32(lane, upper, lane, _mm512_set1_epi32(16 - h));
    *hi = _mm512_mask_add_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(h)), upper, lane,
                                _mm512_set1_epi32(16));
}

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

/* The lane sums of v[0..16) as one vector, lane i the sum of v[i]: the
 * transpose's block swaps, each round adding its two outputs (45
 * instructions for 16 sums, where one reduction each takes about 10). */
static inline __attribute__((always_inline)) __m512 lane_sums(__m512 v[16]) {
#pragma GCC unroll 4
    for (int h = 8; h >= 1; h /= 2) {
        __m512i lo, hi;
        block_swap(h, &lo, &hi);
#pragma GCC unroll 8
        for (int i = 0; i < h; i++)
            v[i] = _mm512_add_ps(_mm512_permutex2var_ps(v[i], lo, v[i + h]),
                                 _mm512_permutex2var_ps(v[i], hi, v[i + h]));
    }
    return v[0];
}

/* ---- packing ---------------------------------------------------------- */

/* op(A)[i0 .. i0+mc, k0 .. k0+kc) into ceil(mc / MR) panels of kp =
 * ceil(kc / 2) pairs, panel q at ap + q kp MR; zero past row mc and past
 * depth kc. */
static void pack_a(int ta, const float *A, int64_t lda, int64_t i0, int64_t k0, int64_t mc,
                   int64_t kc, pair *ap) {
    const int64_t kp = (kc + 1) / 2;
    for (int64_t q = 0; q * MR < mc; q++, ap += kp * MR) {
        const int64_t rows = mc - q * MR < MR ? mc - q * MR : MR, i = i0 + q * MR;
        if (ta) { /* stored K x M: rows 2p and 2p+1 hold the MR values of the pair */
            static const uint16_t zip8[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};
            const __m256i idx = _mm256_loadu_si256((const __m256i *)zip8);
            const __mmask16 m = first_lanes(rows);
            for (int64_t p = 0; p < kp; p++) {
                const float *src = A + (k0 + 2 * p) * lda + i;
                const __mmask16 m1 = 2 * p + 1 < kc ? m : 0;
                const __m512 two = _mm512_insertf32x8(
                    _mm512_castps256_ps512(_mm256_maskz_loadu_ps((__mmask8)m, src)),
                    _mm256_maskz_loadu_ps((__mmask8)m1, src + lda), 1);
                const __m256i v = (__m256i)_mm512_cvtneps_pbh(two);
                _mm256_storeu_si256((__m256i *)(ap + p * MR), _mm256_permutexvar_epi16(idx, v));
            }
        } else { /* stored M x K: a row's pairs are adjacent; 16 pairs a round, transposed
                  * as two 8 x 8 blocks: r[j] then holds pair j, then pair 8 + j */
            for (int64_t p0 = 0; p0 < kp; p0 += 16) {
                const int64_t w = kc - 2 * p0; /* values left in the row */
                __m512i r[16];
#pragma GCC unroll 8
                for (int j = 0; j < MR; j++) {
                    const float *src = A + (i + j) * lda + k0 + 2 * p0;
                    r[j] = j < rows ? round_run(load_lanes(src, w), load_lanes(src + 16, w - 16))
                                    : _mm512_setzero_si512();
                }
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
}

/* op(B)[k0 .. k0+kc, j0 .. j0+nc) into ceil(nc / NR) panels of kp pairs,
 * panel q at bp + q kp NR; zero past column nc and past depth kc. */
static void pack_b(int tb, const float *B, int64_t ldb, int64_t k0, int64_t j0, int64_t kc,
                   int64_t nc, pair *bp) {
    const int64_t kp = (kc + 1) / 2;
    for (int64_t q = 0; q * NR < nc; q++, bp += kp * NR) {
        const int64_t cols = nc - q * NR < NR ? nc - q * NR : NR, j = j0 + q * NR;
        if (!tb) { /* stored K x N: rows 2p and 2p+1, interleaved */
            for (int64_t p = 0; p < kp; p++) {
                const float *r0 = B + (k0 + 2 * p) * ldb + j, *r1 = r0 + ldb;
                const int has1 = 2 * p + 1 < kc;
                for (int64_t c = 0; c < NR; c += 16)
                    _mm512_storeu_si512(bp + p * NR + c,
                                        round_rows(load_lanes(r0 + c, cols - c),
                                                   load_lanes(r1 + c, has1 ? cols - c : 0)));
            }
        } else { /* stored N x K: a column's pairs are adjacent; 16 x 16 blocks, transposed */
            for (int64_t c0 = 0; c0 < NR; c0 += 16)
                for (int64_t p0 = 0; p0 < kp; p0 += 16) {
                    const int64_t w = kc - 2 * p0;
                    __m512i r[16];
#pragma GCC unroll 16
                    for (int c = 0; c < 16; c++) {
                        const float *src = B + (j + c0 + c) * ldb + k0 + 2 * p0;
                        r[c] = c0 + c < cols
                                   ? round_run(load_lanes(src, w), load_lanes(src + 16, w - 16))
                                   : _mm512_setzero_si512();
                    }
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

/* C[0..mr, 0..nr) = alpha (A panel . B panel) + beta C over kp pairs
 * (beta == 0: C is not read), with nv = ceil(nr / 16) vectors of B a pair:
 * a tile 8 x 16 nv, the last panel of a width that is no multiple of 48
 * (32 of N = 128, one head's 32 columns) costing no more than it holds.
 * The 8 x nv accumulators are arrays the unrolled loops keep in registers;
 * C's rows are prefetched for the write-back while the loop runs. */
static inline __attribute__((always_inline)) void
kernel_core(int nv, int64_t kp, const pair *restrict ap, const pair *restrict bp, float *c,
            int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta) {
    __m512 acc[MR][3];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if (r < mr) _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        if (r < mr && nv > 2) _mm_prefetch((const char *)(c + r * ldc + 32), _MM_HINT_T0);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < kp; p++, ap += MR, bp += NR) {
        __m512bh b[3];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) b[v] = (__m512bh)_mm512_loadu_si512(bp + 16 * v);
        _mm_prefetch((const char *)(bp + 4 * NR), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[r]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            float *cv = c + r * ldc + 16 * v;
            const __mmask16 m = first_lanes(nr - 16 * v);
            __m512 y = _mm512_mul_ps(va, acc[r][v]);
            if (beta != 0.0f)
                y = _mm512_fmadd_ps(va, acc[r][v], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m, cv)));
            _mm512_mask_storeu_ps(cv, m, y);
        }
    }
}

static void kernel_8x16(int64_t kp, const pair *ap, const pair *bp, float *c, int64_t ldc,
                        int64_t mr, int64_t nr, float alpha, float beta) {
    kernel_core(1, kp, ap, bp, c, ldc, mr, nr, alpha, beta);
}
static void kernel_8x32(int64_t kp, const pair *ap, const pair *bp, float *c, int64_t ldc,
                        int64_t mr, int64_t nr, float alpha, float beta) {
    kernel_core(2, kp, ap, bp, c, ldc, mr, nr, alpha, beta);
}
static void kernel_8x48(int64_t kp, const pair *ap, const pair *bp, float *c, int64_t ldc,
                        int64_t mr, int64_t nr, float alpha, float beta) {
    kernel_core(3, kp, ap, bp, c, ldc, mr, nr, alpha, beta);
}

/* ---- drivers ------------------------------------------------------------ */

/* C (M x N, row stride ldc) = alpha op(A) op(B) + beta C on this thread.
 * With B == NULL, bfull holds op(B) already packed as ceil(N / NR) panels
 * of the whole depth, ceil(K / 2) pairs each (panel q at bfull + q Kp NR),
 * whose pairs p0.. are what pack_b would have written for a slice. */
static void blocked(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, const pair *bfull, float beta,
                    float *C, int64_t ldc) {
    pair *bp = pack_buffer(), *ap = bp + (size_t)KP * NC;
    /* equal even slices of at most 2 KP values: the slicing depends on K alone */
    const int64_t nk = (K + 2 * KP - 1) / (2 * KP);
    const int64_t kslice = ((K + nk - 1) / nk + 1) / 2 * 2, Kp = (K + 1) / 2;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        const int64_t nc = N - j0 < NC ? N - j0 : NC;
        for (int64_t k0 = 0; k0 < K; k0 += kslice) {
            const int64_t kc = K - k0 < kslice ? K - k0 : kslice, kp = (kc + 1) / 2;
            const float b = k0 == 0 ? beta : 1.0f;
            if (B) pack_b(tb, B, ldb, k0, j0, kc, nc, bp);
            for (int64_t i0 = 0; i0 < M; i0 += MC) {
                const int64_t mc = M - i0 < MC ? M - i0 : MC;
                pack_a(ta, A, lda, i0, k0, mc, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const pair *panel = B ? bp + (jr / NR) * kp * NR
                                          : bfull + ((j0 + jr) / NR) * Kp * NR + (k0 / 2) * NR;
                    const int64_t nr = nc - jr < NR ? nc - jr : NR;
                    void (*kernel)(int64_t, const pair *, const pair *, float *, int64_t, int64_t,
                                   int64_t, float, float) = nr > 32   ? kernel_8x48
                                                            : nr > 16 ? kernel_8x32
                                                                      : kernel_8x16;
                    for (int64_t ir = 0; ir < mc; ir += MR)
                        kernel(kp, ap + (ir / MR) * kp * MR, panel, C + (i0 + ir) * ldc + j0 + jr,
                               ldc, mc - ir < MR ? mc - ir : MR, nr, alpha, b);
                }
            }
        }
    }
}

/* C = alpha op(A) op(B) + beta C on this thread (gen_gemm_ld's arguments). */
static void gemm_bf16(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { /* the product is empty: C = beta C */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    blocked(ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, C, ldc);
}

/* The table's gemm: over the threads, in whole MR or NR panels. */
static void gemm_threads(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc) {
    gen_gemm_split(gemm_bf16, MR, NR, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- convolution as an implicit GEMM -------------------------------------
 * The im2col matrix col (K x N, K = C KH KW, N = m OH OW) is never built
 * in fp32: its values are rounded straight into the packed B panels, which
 * the blocked loops then read as prepacked. */

/* Row (kh, kw) of the im2col of one channel plane xc (H x W): OH OW values
 * into d, zero where the tap falls in the padding. Sixteen outputs a
 * vector: a masked load (stride 1) or gather of the lanes whose input is
 * inside the plane; masked-off lanes read nothing. */
static void tap_row(const float *xc, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t kh,
                    int64_t kw, int64_t stride, int64_t pad, float *d) {
    int64_t lo, hi;
    gen_conv_valid(W, OW, stride, pad, kw, &lo, &hi);
    const __m512i step =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)stride));
    for (int64_t oh = 0; oh < OH; oh++, d += OW) {
        const int64_t ih = oh * stride - pad + kh;
        const int inside = ih >= 0 && ih < H;
        const float *s = xc + ih * W - pad + kw; /* s[ow stride]: output ow's input */
        for (int64_t ow = 0; ow < OW; ow += 16) {
            const __mmask16 valid =
                inside ? (__mmask16)(first_lanes(hi - ow) & ~first_lanes(lo - ow)) : 0;
            const __m512 v = stride == 1 ? _mm512_maskz_loadu_ps(valid, s + ow)
                                         : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid,
                                                                    step, s + ow * stride, 4);
            _mm512_mask_storeu_ps(d + ow, first_lanes(OW - ow), v);
        }
    }
}

static int64_t lines16(int64_t n) {
    return (n + 15) / 16 * 16;
}

/* Stride 1 runs on the "wide" grid of gemm_avx512.c: with each channel
 * plane zero-padded to Hp x Wp, the output is computed for OH rows of Wp
 * columns (the last KW - 1 of each row garbage, dropped at the end), and
 * row (c, kh, kw) of the im2col matrix is then the contiguous slice of
 * plane c from kh Wp + kw: copied whole, nothing gathered. It costs
 * (Wp - OW) / OW more products (7 % at 28 x 28, 3 x 3). */
struct wide {
    int64_t Wp, plane, tw; /* padded width, padded plane, wide columns per image (OH Wp) */
};

static struct wide wide_of(int64_t H, int64_t W, int64_t KH, int64_t pad) {
    const int64_t Wp = W + 2 * pad, Hp = H + 2 * pad;
    return (struct wide){Wp, Hp * Wp, (Hp - KH + 1) * Wp};
}

/* The parts of `work`, in floats. Stride 1: each tap's offset in a padded
 * image (an int64 a tap), the padded planes (and KW zeros the last slice
 * runs into), the packed panels of one NC-wide block of columns and its
 * wide output. Other strides: two im2col rows and the panels of all. */
struct conv_work {
    int64_t offs, planes, rows, panels, out;
};

static struct conv_work conv_work_of(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                     int64_t KW, int64_t stride, int64_t pad, int64_t m) {
    const int64_t K = C * KH * KW, Kp = (K + 1) / 2;
    if (stride != 1) {
        const int64_t n = m * gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
        return (struct conv_work){.rows = 2 * lines16(n), .panels = (n + NR - 1) / NR * NR * Kp};
    }
    const struct wide g = wide_of(H, W, KH, pad);
    const int64_t nc = m * g.tw < NC ? m * g.tw : NC;
    return (struct conv_work){.offs = lines16(2 * K),
                              .planes = lines16(m * C * g.plane + KW),
                              .panels = (nc + NR - 1) / NR * NR * Kp,
                              .out = lines16(M * nc)};
}

static int64_t conv_gemm_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m) {
    const struct conv_work w = conv_work_of(M, C, H, W, KH, KW, stride, pad, m);
    return w.offs + w.planes + w.rows + w.panels + w.out;
}

/* The m images' planes (x, images img floats apart), padded, into xp, then
 * `tail` zeros. */
static void pad_planes(const float *x, int64_t img, int64_t m, int64_t C, int64_t H, int64_t W,
                       int64_t pad, const struct wide *g, int64_t tail, float *xp) {
    memset(xp, 0, (size_t)(m * C * g->plane + tail) * sizeof *xp);
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t ih = 0; ih < H; ih++)
                memcpy(xp + (i * C + c) * g->plane + (ih + pad) * g->Wp + pad,
                       x + i * img + (c * H + ih) * W, (size_t)W * sizeof *xp);
}

/* Panels of the wide im2col matrix for its columns [j0, j0 + nc), straight
 * from the padded planes xp (image i's at xp + i C plane; tap k's row is
 * the slice from offs[k]), one panel after another: Kp pairs of NR lanes,
 * zero past column n. A panel across two images gathers its pieces first. */
static void wide_panels(const float *xp, const int64_t *offs, const struct wide *g, int64_t C,
                        int64_t K, int64_t n, int64_t j0, int64_t nc, pair *bfull) {
    const int64_t Kp = (K + 1) / 2, img = C * g->plane;
    for (int64_t jr = 0; jr < nc; jr += NR) {
        const int64_t j = j0 + jr, cols = n - j < NR ? n - j : NR;
        const int64_t i = j / g->tw, t = j % g->tw;
        pair *dst = bfull + (jr / NR) * Kp * NR;
        for (int64_t p = 0; p < Kp; p++, dst += NR) {
            const int has1 = 2 * p + 1 < K; /* else the pair's high half is zero */
            const float *s0 = xp + i * img + offs[2 * p] + t;
            const float *s1 = has1 ? xp + i * img + offs[2 * p + 1] + t : s0;
            float a[NR], b[NR];
            if (t + cols > g->tw) { /* the panel runs into the next image */
                const int64_t first = g->tw - t;
                memcpy(a, s0, (size_t)first * sizeof *a);
                memcpy(b, s1, (size_t)first * sizeof *b);
                memcpy(a + first, s0 + img - t, (size_t)(cols - first) * sizeof *a);
                memcpy(b + first, s1 + img - t, (size_t)(cols - first) * sizeof *b);
                s0 = a, s1 = b;
            }
#pragma GCC unroll 3
            for (int v = 0; v < 3; v++)
                _mm512_storeu_si512(dst + 16 * v,
                                    round_rows(load_lanes(s0 + 16 * v, cols - 16 * v),
                                               load_lanes(s1 + 16 * v, has1 ? cols - 16 * v : 0)));
        }
    }
}

/* Row k of the im2col matrix of the m images (stride > 1) into d. */
static void im2col_k(int64_t k, const float *x, int64_t img, int64_t m, int64_t H, int64_t W,
                     int64_t KH, int64_t KW, int64_t stride, int64_t pad, float *d) {
    const int64_t c = k / (KH * KW), kh = k / KW % KH, kw = k % KW;
    const int64_t OH = gen_conv_out(H, KH, stride, pad), OW = gen_conv_out(W, KW, stride, pad);
    for (int64_t i = 0; i < m; i++)
        tap_row(x + i * img + c * H * W, H, W, OH, OW, kh, kw, stride, pad, d + i * OH * OW);
}

/* out (M x m P, row stride ldo) = Wm (M x K) col + beta out, as the table's
 * conv_gemm (kernels.h); work holds conv_gemm_work floats.
 * The im2col values are rounded straight into packed B panels, which the
 * blocked loops read as prepacked: for stride 1 one NC-wide block of the
 * wide grid at a time (its panels stay in L2 for the GEMM that follows),
 * else every column at once through two rows of scratch. On the calling
 * thread. */
static void conv_gemm(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                      const float *x, float beta, float *out, int64_t ldo, float *work) {
    const int64_t OH = gen_conv_out(H, KH, stride, pad), OW = gen_conv_out(W, KW, stride, pad);
    const int64_t P = OH * OW, K = C * KH * KW, Kp = (K + 1) / 2;
    if (M <= 0 || m * P <= 0) return;
    const struct conv_work w = conv_work_of(M, C, H, W, KH, KW, stride, pad, m);
    if (stride != 1) {
        const int64_t n = m * P, panels = (n + NR - 1) / NR;
        float *r0 = work, *r1 = r0 + w.rows / 2;
        pair *bfull = (pair *)(void *)(r1 + w.rows / 2);
        for (int64_t p = 0; p < Kp; p++) {
            const int has1 = 2 * p + 1 < K;
            im2col_k(2 * p, x, img, m, H, W, KH, KW, stride, pad, r0);
            if (has1) im2col_k(2 * p + 1, x, img, m, H, W, KH, KW, stride, pad, r1);
            for (int64_t j = 0; j < panels * NR; j += 16) /* zero past column n */
                _mm512_storeu_si512(
                    bfull + (j / NR) * Kp * NR + p * NR + j % NR,
                    round_rows(load_lanes(r0 + j, n - j), load_lanes(r1 + j, has1 ? n - j : 0)));
        }
        blocked(0, 0, M, n, K, 1.0f, Wm, K, NULL, 0, bfull, beta, out, ldo);
        return;
    }
    const struct wide g = wide_of(H, W, KH, pad);
    const int64_t n = m * g.tw;
    int64_t *offs = (int64_t *)(void *)work;
    float *xp = work + w.offs, *wide = xp + w.planes + w.panels;
    pair *bfull = (pair *)(void *)(xp + w.planes);
    for (int64_t k = 0; k < K; k++) offs[k] = k / (KH * KW) * g.plane + k / KW % KH * g.Wp + k % KW;
    pad_planes(x, img, m, C, H, W, pad, &g, KW, xp);
    const __m512 vb = _mm512_set1_ps(beta);
    for (int64_t j0 = 0; j0 < n; j0 += NC) {
        const int64_t nc = n - j0 < NC ? n - j0 : NC;
        wide_panels(xp, offs, &g, C, K, n, j0, nc, bfull);
        blocked(0, 0, M, nc, K, 1.0f, Wm, K, NULL, 0, bfull, 0.0f, wide, nc);
        /* out = wide + beta out, less the garbage columns: wide column
         * j0 + jj is grid position j % tw of image j / tw */
        for (int64_t co = 0; co < M; co++)
            for (int64_t jj = 0; jj < nc;) {
                const int64_t j = j0 + jj, i = j / g.tw, oh = j % g.tw / g.Wp, ow0 = j % g.Wp;
                const int64_t len = g.Wp - ow0 < nc - jj ? g.Wp - ow0 : nc - jj; /* to row end */
                const int64_t keep = ow0 < OW ? (OW - ow0 < len ? OW - ow0 : len) : 0;
                const float *src = wide + co * nc + jj;
                float *dst = out + co * ldo + i * P + oh * OW + ow0;
                for (int64_t ow = 0; ow < keep; ow += 16) {
                    const __mmask16 mk = first_lanes(keep - ow);
                    __m512 v = _mm512_maskz_loadu_ps(mk, src + ow);
                    if (beta != 0.0f)
                        v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, dst + ow), v);
                    _mm512_mask_storeu_ps(dst + ow, mk, v);
                }
                jj += len;
            }
    }
}

/* ---- the weight gradient of a convolution ----------------------------------
 * dw (M x K) = sum over images i of dy_i (M x P) col_i^T (P x K). Both
 * factors run along P in memory, so rather than transpose either into
 * panels, an 8 x 3 block of dw keeps a vector of partial sums per element
 * while it walks P in steps of 32 (both operands rounded to bf16 once, in
 * runs of P: vdpbf16ps pairs neighbouring positions t, t + 1 of the same
 * element), and sums the lanes at the end. For stride 1 the col rows are
 * slices of the padded planes, dy laid out on the same wide grid (zeros in
 * the garbage columns); otherwise three col rows are built at a time. */
#define DW_MB 8
#define DW_KB 3

typedef uint16_t bf16;

/* x[0..n) rounded to bf16 into d[0..n) (d of any alignment). */
static void round_to(const float *x, int64_t n, bf16 *d) {
    for (int64_t t = 0; t < n; t += 16)
        _mm256_mask_storeu_epi16(d + t, first_lanes(n - t),
                                 (__m256i)_mm512_cvtneps_pbh(load_lanes(x + t, n - t)));
}

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

/* The parts of conv_dw's `work`, in floats (two bf16 a float). Stride 1:
 * tap offsets (int64), the padded planes in bf16 (and their slack), dy on
 * the wide grid in bf16 (rows of tw rounded up to 32). Otherwise: dy in
 * bf16 (rows of P rounded up to 32), three col rows in bf16, one in fp32. */
struct dw_work {
    int64_t offs, planes, dy, cols, row;
};

static struct dw_work dw_work_of(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                 int64_t stride, int64_t pad, int64_t m) {
    if (stride == 1) {
        const struct wide g = wide_of(H, W, KH, pad);
        return (struct dw_work){.offs = lines16(2 * C * KH * KW),
                                .planes = lines16((m * C * g.plane + KW + 32 + 1) / 2),
                                .dy = lines16(m * M * up32(g.tw) / 2)};
    }
    const int64_t P = gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
    return (struct dw_work){.dy = lines16(m * M * up32(P) / 2),
                            .cols = lines16(DW_KB * m * up32(P) / 2),
                            .row = lines16(P)};
}

static int64_t conv_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t stride, int64_t pad, int64_t m) {
    const struct dw_work w = dw_work_of(M, C, H, W, KH, KW, stride, pad, m);
    return w.offs + w.planes + w.dy + w.cols + w.row;
}

/* dw (M x K) = sum over the m images of dy_i (M x P, images dy_img floats
 * apart) col_i^T, overwriting dw, as the table's conv_dw (kernels.h); work
 * holds conv_dw_work floats. On the calling thread. */
static void conv_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                    int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                    const float *x, float *dw, float *work) {
    const int64_t OH = gen_conv_out(H, KH, stride, pad), OW = gen_conv_out(W, KW, stride, pad);
    const int64_t P = OH * OW, K = C * KH * KW;
    if (M <= 0 || K <= 0) return;
    const struct dw_work w = dw_work_of(M, C, H, W, KH, KW, stride, pad, m);
    if (stride == 1) {
        const struct wide g = wide_of(H, W, KH, pad);
        const int64_t L = up32(g.tw), n = m * C * g.plane + KW + 32;
        int64_t *offs = (int64_t *)(void *)work;
        bf16 *xb = (bf16 *)(void *)(work + w.offs),
             *dyb = (bf16 *)(void *)(work + w.offs + w.planes);
        for (int64_t k = 0; k < K; k++)
            offs[k] = k / (KH * KW) * g.plane + k / KW % KH * g.Wp + k % KW;
        memset(xb, 0, (size_t)n * sizeof *xb); /* the planes, padded, and the slack */
        for (int64_t q = 0; q < m * C; q++)
            for (int64_t ih = 0; ih < H; ih++)
                round_to(x + q / C * img + (q % C * H + ih) * W, W,
                         xb + q * g.plane + (ih + pad) * g.Wp + pad);
        memset(dyb, 0, (size_t)(m * M * L) * sizeof *dyb); /* dy on the wide grid */
        for (int64_t i = 0; i < m; i++)
            for (int64_t co = 0; co < M; co++)
                for (int64_t oh = 0; oh < OH; oh++)
                    round_to(dy + i * dy_img + co * P + oh * OW, OW,
                             dyb + (i * M + co) * L + oh * g.Wp);
        /* co outer: the block's 8 rows of dy stay in L1 while the taps stream by */
        for (int64_t co0 = 0; co0 < M; co0 += DW_MB)
            for (int64_t k0 = 0; k0 < K; k0 += DW_KB) {
                const int64_t kn = K - k0 < DW_KB ? K - k0 : DW_KB;
                const bf16 *b[DW_KB];
                for (int64_t j = 0; j < DW_KB; j++) b[j] = xb + offs[k0 + (j < kn ? j : kn - 1)];
                dw_block(M - co0 < DW_MB ? M - co0 : DW_MB, kn, m, L, dyb + co0 * L, M * L, L, b,
                         C * g.plane, dw + co0 * K + k0, K);
            }
        return;
    }
    const int64_t L = up32(P);
    bf16 *dyb = (bf16 *)(void *)work, *cols = (bf16 *)(void *)(work + w.dy);
    float *row = work + w.dy + w.cols;
    memset(dyb, 0, (size_t)(w.dy + w.cols) * sizeof(float)); /* zeros from P to L */
    for (int64_t i = 0; i < m; i++)
        for (int64_t co = 0; co < M; co++)
            round_to(dy + i * dy_img + co * P, P, dyb + (i * M + co) * L);
    for (int64_t k0 = 0; k0 < K; k0 += DW_KB) {
        const int64_t kn = K - k0 < DW_KB ? K - k0 : DW_KB;
        for (int64_t j = 0; j < kn; j++) {
            const int64_t k = k0 + j, c = k / (KH * KW), kh = k / KW % KH, kw = k % KW;
            for (int64_t i = 0; i < m; i++) {
                tap_row(x + i * img + c * H * W, H, W, OH, OW, kh, kw, stride, pad, row);
                round_to(row, P, cols + (j * m + i) * L);
            }
        }
        const bf16 *b[DW_KB] = {cols, cols + (kn > 1 ? m * L : 0), cols + (kn > 2 ? 2 * m * L : 0)};
        for (int64_t co0 = 0; co0 < M; co0 += DW_MB)
            dw_block(M - co0 < DW_MB ? M - co0 : DW_MB, kn, m, L, dyb + co0 * L, M * L, L, b, L,
                     dw + co0 * K + k0, K);
    }
}

/* The table of --precision bf16: the AVX-512 table with these products. */
void gen_kernels_avx512bf16_fill(struct gen_kernels *t) {
    t->name = "avx512bf16";
    t->gemm = gemm_threads;
    t->conv_gemm_work = conv_gemm_work;
    t->conv_gemm = conv_gemm;
    t->conv_dw_work = conv_dw_work;
    t->conv_dw = conv_dw;
}
