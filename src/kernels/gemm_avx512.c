/* gemm_avx512.c - single-precision GEMM with an AVX-512 micro-kernel.
 *
 * The packaged OpenBLAS runs its AVX2 kernels on this project's machines
 * (OPENBLAS_CORETYPE pins it), so on a CPU with 512-bit FMA units half of
 * the arithmetic width is idle in every convolution and linear layer. This
 * is the classic packed GEMM (Goto and van de Geijn, "Anatomy of
 * high-performance matrix multiplication", 2008; the loop order of BLIS):
 *
 *   for each NC-wide block of columns of C          (B block near L2)
 *     for each KC-deep slice of the inner dimension
 *       pack op(B)[slice, block] into NR-wide panels, k-major
 *       for each MC-tall block of rows                (A block in L2)
 *         pack op(A)[rows, slice] into MR-tall panels, k-major
 *         for each NR panel, for each MR panel: the micro-kernel
 *
 * The micro-kernel keeps an 8 x 48 tile of C in 24 zmm registers: per k it
 * loads three vectors of B and broadcasts eight values of A into 24 FMAs
 * (with its panels in L1 it runs at the FMA peak). Narrower copies of it
 * (8 x 32, 8 x 16) take the last panel of a row of panels, so N = 128 costs
 * 48 + 48 + 32 columns of FMAs, not 3 x 48. Packing pads partial panels
 * with zeros to whole vectors, and only the write-back masks rows and
 * columns; the kernel fetches its tile of C into L1 while it runs.
 *
 * Packing is most of what is not FMAs: A is transposed 8 x 16 at a time
 * in registers, B 16 x 16, and rows read in order are copied whole. The
 * large operand of a transformer layer (4096 rows) comes from L3 or memory
 * in strided streams that the hardware prefetcher misses, so packing
 * prefetches its source PF_PANELS panels (A) or PF_ROWS rows ahead, and
 * the micro-kernels, while they run, fetch into L2 what packing reads
 * next (struct ahead).
 *
 * Every element of C is the same sequence of FMAs whatever the blocking of
 * M and N, so splitting M or N across threads (gen_sgemm_avx512_mt) gives
 * bit-identical results for any thread count. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gen/core.h"
#include "kernels/avx512_lanes.h"
#include "kernels/gemm_ahead.h"
#include "kernels/kernels_impl.h"

#define MR 8
#define NR GEN_GEMM_NR
#define KC 192  /* a B micro-panel (KC x NR) is 36 KiB: stays in L1 */
#define MC 192  /* an A block (MC x KC) is 144 KiB: stays in L2 */
#define NC 1152 /* a B block (KC x NC) is 864 KiB */
#define PF_PANELS 2 /* A panels that packing fetches ahead */
#define PF_ROWS   4 /* rows read in order that packing fetches ahead */

/* ---- the per-thread packing buffer (gen_pack_buffer) ---- */
#define BUF_FLOATS ((size_t)KC * NC + (size_t)MC * KC)

static float *packing_buffer(void) {
    return gen_pack_buffer(GEN_PACK_AVX512, BUF_FLOATS * sizeof(float));
}

/* ---- packing ---------------------------------------------------------- */

/* The 8 x 16 block in r (row i = 16 consecutive k) into the packed A
 * layout: o[j] holds k = 2j then 2j + 1, each as the 8 rows. Two rounds
 * inside 128-bit lanes give, per lane L, rows 0-3 (u[d]) and rows 4-7
 * (u[4 + d]) of k = 4L + d; two rounds across lanes pair them up. */
static inline __attribute__((always_inline)) void transpose8x16(const __m512 r[8], __m512 o[8]) {
    __m512 t[8], u[8];
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    #pragma GCC unroll 2
    for (int h = 0; h < 2; h++) { /* rows 0-3, then 4-7 */
        u[4 * h] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    #pragma GCC unroll 2
    for (int d = 0; d < 4; d += 2) { /* d 0: even j (k = 4L, 4L + 1); d 2: odd j */
        const __m512 lo0 = _mm512_shuffle_f32x4(u[d], u[4 + d], 0x44);
        const __m512 lo1 = _mm512_shuffle_f32x4(u[d + 1], u[5 + d], 0x44);
        const __m512 hi0 = _mm512_shuffle_f32x4(u[d], u[4 + d], 0xEE);
        const __m512 hi1 = _mm512_shuffle_f32x4(u[d + 1], u[5 + d], 0xEE);
        o[d / 2] = _mm512_shuffle_f32x4(lo0, lo1, 0x88);     /* lane 0 */
        o[d / 2 + 2] = _mm512_shuffle_f32x4(lo0, lo1, 0xDD); /* lane 1 */
        o[d / 2 + 4] = _mm512_shuffle_f32x4(hi0, hi1, 0x88); /* lane 2 */
        o[d / 2 + 6] = _mm512_shuffle_f32x4(hi0, hi1, 0xDD); /* lane 3 */
    }
}

/* pack_a of an A stored K x M (op(A) = A^T): two panels at a time, two
 * rows k at a time, the pair's 16 floats of rows k and k + 1 making one
 * 64-byte line of each panel, so the panels are written one pair after
 * another in whole lines. Row by row, 8 floats into each of the mc / MR
 * panels at once (kc MR floats apart), the stores had been a sixth of a
 * weight gradient's time, and the transposing path for A stored M x K
 * ran faster (Sapphire Rapids VM, 384 x 128 x 2048 on one thread: 174
 * GFLOP/s, 189 stored M x K, 189 now; 384 x 128 x 4096 on two, split
 * along K: 339-341 -> 369-374). The first pair's pass fetches each row's
 * whole span PF_ROWS rows on. */
static void pack_a_rows(const float *A, int64_t lda, int64_t i0, int64_t p0, int64_t mc, int64_t kc,
                        float *ap) {
    const int64_t full = mc / MR, rest = mc - full * MR;
    const float *a = A + p0 * lda + i0;
    int64_t q = 0;
    for (; q + 2 <= full; q += 2) {
        float *d0 = ap + q * kc * MR, *d1 = d0 + kc * MR;
        const float *src = a + q * MR;
        int64_t k = 0;
        for (; k + 2 <= kc; k += 2, src += 2 * lda) {
            if (q == 0 && k + PF_ROWS + 1 < kc) {
                prefetch_row(src + PF_ROWS * lda, mc);
                prefetch_row(src + (PF_ROWS + 1) * lda, mc);
            }
            const __m512 r0 = _mm512_loadu_ps(src), r1 = _mm512_loadu_ps(src + lda);
            _mm512_storeu_ps(d0 + k * MR, _mm512_shuffle_f32x4(r0, r1, 0x44));
            _mm512_storeu_ps(d1 + k * MR, _mm512_shuffle_f32x4(r0, r1, 0xEE));
        }
        if (k < kc) { /* an odd depth's last row */
            const __m512 r0 = _mm512_loadu_ps(src);
            _mm256_storeu_ps(d0 + k * MR, _mm512_castps512_ps256(r0));
            _mm256_storeu_ps(d1 + k * MR, _mm512_extractf32x8_ps(r0, 1));
        }
    }
    for (; q < full + (rest > 0); q++) { /* a last odd panel, and the short one */
        const __mmask8 m = q < full ? 0xFF : (__mmask8)((1u << rest) - 1);
        float *d = ap + q * kc * MR;
        const float *src = a + q * MR;
        for (int64_t k = 0; k < kc; k++, src += lda) {
            if (q == 0 && k + PF_ROWS < kc) prefetch_row(src + PF_ROWS * lda, mc);
            _mm256_storeu_ps(d + k * MR, _mm256_maskz_loadu_ps(m, src));
        }
    }
}

/* op(A)[i0 .. i0+mc, p0 .. p0+kc) into ceil(mc / MR) panels, panel q holding
 * ap[q kc MR + k MR + r] = op(A)[i0 + q MR + r, p0 + k], zero past row mc. */
static void pack_a(int ta, const float *A, int64_t lda, int64_t i0, int64_t p0, int64_t mc,
                   int64_t kc, float *ap) {
    if (ta) { /* stored K x M: row k of the slice is contiguous */
        pack_a_rows(A, lda, i0, p0, mc, kc, ap);
        return;
    }
    /* stored M x K: transpose 8 x 16 blocks of each panel's rows, fetching
     * the rows of the panel PF_PANELS on meanwhile (eight strided streams
     * defeat the hardware prefetcher) */
    for (int64_t q = 0; q * MR < mc; q++, ap += kc * MR) {
        const int64_t rows = mc - q * MR < MR ? mc - q * MR : MR;
        const float *src = A + (i0 + q * MR) * lda + p0;
        const float *pf = (q + PF_PANELS) * MR < mc ? src + PF_PANELS * MR * lda : NULL;
        for (int64_t k0 = 0; k0 < kc; k0 += 16) {
            const int64_t w = kc - k0 < 16 ? kc - k0 : 16;
            __m512 r[MR], o[MR];
            if (pf)
                #pragma GCC unroll 8
                for (int i = 0; i < MR; i++)
                    _mm_prefetch((const char *)(pf + i * lda + k0), _MM_HINT_T0);
            if (rows == MR && w == 16) {
                #pragma GCC unroll 8
                for (int i = 0; i < MR; i++) r[i] = _mm512_loadu_ps(src + i * lda + k0);
            } else {
                const __mmask16 m = lane_mask(w);
                #pragma GCC unroll 8
                for (int i = 0; i < MR; i++)
                    r[i] = i < rows ? _mm512_maskz_loadu_ps(m, src + i * lda + k0)
                                    : _mm512_setzero_ps();
            }
            transpose8x16(r, o);
            float *dst = ap + k0 * MR;
            if (w == 16) {
                #pragma GCC unroll 8
                for (int j = 0; j < 8; j++) _mm512_storeu_ps(dst + 16 * j, o[j]);
            } else { /* k0 + w is the slice's end: write no further (a constant
                      * count, so that o is not indexed at run time) */
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    if (2 * j < w)
                        _mm512_mask_storeu_ps(dst + 16 * j, 2 * j + 1 < w ? 0xFFFF : 0x00FF, o[j]);
            }
        }
    }
}

/* op(B)[p0 .. p0+kc, j0 .. j0+nc) into ceil(nc / NR) panels, panel q holding
 * bp[q kc NR + k NR + c] = op(B)[p0 + k, j0 + q NR + c], zero past column nc
 * up to the next multiple of 16 (the micro-kernel reads no further). */
static void pack_b(int tb, const float *B, int64_t ldb, int64_t p0, int64_t j0, int64_t kc,
                   int64_t nc, float *bp) {
    if (!tb) { /* stored K x N: row k of the slice is contiguous; read it in order,
                * fetching the row PF_ROWS on */
        const int64_t full = nc / 16 * 16;
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + (p0 + k) * ldb + j0;
            float *dst = bp + k * NR;
            if (k + PF_ROWS < kc) prefetch_row(src + PF_ROWS * ldb, nc);
            int64_t c = 0; /* column c lands in panel c / NR */
            for (; c < full; c += 16)
                _mm512_store_ps(dst + c / NR * kc * NR + c % NR, _mm512_loadu_ps(src + c));
            if (c < nc)
                _mm512_store_ps(dst + c / NR * kc * NR + c % NR,
                                _mm512_maskz_loadu_ps(lane_mask(nc - c), src + c));
        }
        return;
    }
    /* stored N x K: transpose 16 x 16 blocks */
    for (int64_t c = 0; c < nc; c += 16) {
        const int64_t cols = nc - c < 16 ? nc - c : 16;
        const float *src = B + (j0 + c) * ldb + p0;
        float *dst = bp + c / NR * kc * NR + c % NR;
        for (int64_t k0 = 0; k0 < kc; k0 += 16) {
            const int64_t w = kc - k0 < 16 ? kc - k0 : 16;
            const __mmask16 m = lane_mask(w);
            __m512 r[16];
            #pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] =
                    i < cols ? _mm512_maskz_loadu_ps(m, src + i * ldb + k0) : _mm512_setzero_ps();
            transpose16(r);
            /* a constant count, so that r is not indexed at run time (and kept
             * on the stack) */
#pragma GCC unroll 16
            for (int k = 0; k < 16; k++)
                if (k < w) _mm512_store_ps(dst + (k0 + k) * NR, r[k]);
        }
    }
}

/* ---- micro-kernel ------------------------------------------------------- */

/* C[0..mr, 0..nr) = alpha (ap B) + beta C + bias, over kc steps (beta ==
 * 0: C is not read; bias: nr values, one a column, or NULL), for nr <= 16
 * nv: the 8 x (16 nv) tile of C lives in 8 nv zmm registers, of which
 * the first `rows` are computed (8, or 1 for a lone row: a convolution
 * into one channel ran its 8 rows' multiply-adds for one), or, for 16
 * columns only, 16 rows from two panels (ap and the next, kc MR floats
 * on): 8 sums in flight waited on the FMA's latency and took 9 loads for
 * 8 FMAs, the 8 x 16 tile's FLOPs at half the 8 x 48's rate. Element
 * (r, k) of the A panel is ap[r arow + k astep]: a packed MR x kc panel
 * (arow 1, astep MR; the second panel kc MR floats on), or A read in
 * place, stored K x M (arow 1, astep its row stride) or M x K (arow its
 * row stride, astep 1; the second panel MR rows on); row k of B (16 nv floats) is at bp + k NR of a
 * packed panel, or, when brow is given, at brow[k] + j. Row r of the tile
 * is at c + r ldc, or, when crow is given, at crow[r] + j. Always inlined
 * with a constant nv, so each width is its own loop. */
static inline __attribute__((always_inline)) void
kernel_core(const int nv, const int rows, int64_t kc, const float *restrict ap, int64_t astep,
            int64_t arow, const float *restrict bp, const float *const *brow, int64_t j, float *c,
            int64_t ldc, float *const *crow, int64_t mr, int64_t nr, float alpha, float beta,
            const float *bias, struct ahead *ahead) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    __m512 c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
#define C_ROW(r) (crow ? crow[r] + j : c + (r)*ldc)
    /* the fetch-ahead cursor, in registers while the loop runs */
    const char *pf = ahead ? ahead->p : NULL;
    int pf_left = ahead ? ahead->left : 0;
    const int pf_mask = ahead ? ahead->mask : 0;
#define ROW(r)                                                                                     \
    do {                                                                                           \
        const __m512 a = _mm512_set1_ps(ap[(r)*arow]);                                             \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                                                 \
        if (nv > 1) c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                                     \
        if (nv > 2) c##r##2 = _mm512_fmadd_ps(a, b2, c##r##2);                                     \
    } while (0)
    /* 16 rows (nv 1 only): the next panel's rows in the second column of
     * accumulators, c01 .. c71 */
    /* the second panel: kc MR floats on when packed, MR rows on in place
     * (a 16-row tile needs M >= 16, so an A stored K x M in place has
     * astep = lda >= 16, never MR) */
    const float *ap2 = rows == 16 ? (astep == MR ? ap + kc * MR : ap + MR * arow) : ap;
#define ROW2(r)                                                                                    \
    do {                                                                                           \
        c##r##1 = _mm512_fmadd_ps(_mm512_set1_ps(ap2[(r)*arow]), b0, c##r##1);                     \
    } while (0)
    for (int64_t k = 0; k < kc; k++, ap += astep, ap2 += astep, bp += NR) {
        const float *b = brow ? brow[k] + j : bp;
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = nv > 1 ? _mm512_loadu_ps(b + 16) : b0;
        const __m512 b2 = nv > 2 ? _mm512_loadu_ps(b + 32) : b0;
        if (!brow) _mm_prefetch((const char *)(bp + 4 * NR), _MM_HINT_T0);
        else /* the next panel's part of the row */
            for (int v = 0; v < 3; v++) _mm_prefetch((const char *)(b + NR + 16 * v), _MM_HINT_T0);
        /* C's lines are wanted after the loop: fetch them during it, one
         * row of the tile per step (all at once, they held up the loop
         * while the line fill buffers were full) */
        if (k < mr)
            for (int v = 0; v < nv; v++)
                _mm_prefetch((const char *)(C_ROW(k) + 16 * v), _MM_HINT_T0);
        if (pf && (k & pf_mask) == 0) {
            _mm_prefetch(pf, _MM_HINT_T1);
            pf += 64;
            if (--pf_left == 0) pf = ahead_row(ahead), pf_left = ahead->left;
        }
        ROW(0);
        if (rows > 1) {
            ROW(1);
            ROW(2);
            ROW(3);
            ROW(4);
            ROW(5);
            ROW(6);
            ROW(7);
        }
        if (rows == 16) {
            ROW2(0);
            ROW2(1);
            ROW2(2);
            ROW2(3);
            ROW2(4);
            ROW2(5);
            ROW2(6);
            ROW2(7);
        }
    }
#undef ROW2
#undef ROW
    if (ahead) ahead->p = pf, ahead->left = pf_left;
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - 16), m2 = lane_mask(nr - 32);
    /* the bias, as it would be read back from a C filled with it (beta 1):
     * a value a column, or with B's rows (convolutions) a value a row */
    const float *cbias = brow ? NULL : bias, *rbias = brow ? bias : NULL;
    const __m512 bias0 = cbias ? _mm512_maskz_loadu_ps(m0, cbias) : _mm512_setzero_ps();
    const __m512 bias1 = cbias && nv > 1 ? _mm512_maskz_loadu_ps(m1, cbias + 16) : bias0;
    const __m512 bias2 = cbias && nv > 2 ? _mm512_maskz_loadu_ps(m2, cbias + 32) : bias0;
#define STORE1(r, v)                                                                               \
    do {                                                                                           \
        float *cv = C_ROW(r) + 16 * (v);                                                           \
        __m512 x = _mm512_mul_ps(va, c##r##v);                                                     \
        if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m##v, cv), x);             \
        if (cbias) x = _mm512_add_ps(bias##v, x);                                                  \
        if (rbias) x = _mm512_add_ps(_mm512_set1_ps(rbias[r]), x);                                 \
        _mm512_mask_storeu_ps(cv, m##v, x);                                                        \
    } while (0)
#define STORE(r)                                                                                   \
    do {                                                                                           \
        if (r < mr) {                                                                              \
            STORE1(r, 0);                                                                          \
            if (nv > 1) STORE1(r, 1);                                                              \
            if (nv > 2) STORE1(r, 2);                                                              \
        }                                                                                          \
    } while (0)
    STORE(0);
    STORE(1);
    STORE(2);
    STORE(3);
    STORE(4);
    STORE(5);
    STORE(6);
    STORE(7);
    /* rows 8 .. 15 of a 16-row tile: c01 .. c71 at C_ROW(8 + r), mask m0 */
#define STORE2(r)                                                                                  \
    do {                                                                                           \
        if (rows == 16 && 8 + r < mr) {                                                            \
            float *cv = C_ROW(8 + r);                                                              \
            __m512 x = _mm512_mul_ps(va, c##r##1);                                                 \
            if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cv), x);           \
            if (cbias) x = _mm512_add_ps(bias0, x);                                                \
            if (rbias) x = _mm512_add_ps(_mm512_set1_ps(rbias[8 + r]), x);                         \
            _mm512_mask_storeu_ps(cv, m0, x);                                                      \
        }                                                                                          \
    } while (0)
    STORE2(0);
    STORE2(1);
    STORE2(2);
    STORE2(3);
    STORE2(4);
    STORE2(5);
    STORE2(6);
    STORE2(7);
#undef STORE2
#undef STORE
#undef STORE1
#undef C_ROW
}

/* One micro-kernel per width (16, 32, 48 columns) for packed panels and
 * for rows read in place; kernel(nr) picks the narrowest that holds nr. */
typedef void (*packed_kernel)(int64_t kc, const float *restrict ap, int64_t astep, int64_t arow,
                              const float *restrict bp, float *c, int64_t ldc, int64_t mr,
                              int64_t nr, float alpha, float beta, const float *bias,
                              struct ahead *ahead);
typedef void (*rows_kernel)(int64_t kc, const float *restrict ap, const float *const *brow,
                            int64_t j, float *c, int64_t ldc, int64_t mr, int64_t nr, float alpha,
                            float beta, const float *rbias);
typedef void (*crow_kernel)(int64_t kc, const float *restrict ap, const float *restrict bp,
                            float *const *crow, int64_t j, int64_t mr, int64_t nr, float beta);
/* The plain kernels of a tile of ROWS rows and NV vectors: NAME and
 * NAME_ahead read A with arow 1 (packed, or stored K x M), a constant, so
 * each row's broadcast is at a fixed offset; NAME_arow reads the rows of
 * an A stored M x K arow apart (and fetches ahead). */
#define PACKED(NAME, NV, ROWS)                                                                     \
    static void NAME(int64_t kc, const float *restrict ap, int64_t astep, int64_t arow,            \
                     const float *restrict bp, float *c, int64_t ldc, int64_t mr, int64_t nr,      \
                     float alpha, float beta, const float *bias, struct ahead *ahead) {            \
        (void)ahead, (void)arow;                                                                   \
        kernel_core(NV, ROWS, kc, ap, astep, 1, bp, NULL, 0, c, ldc, NULL, mr, nr, alpha, beta,    \
                    bias, NULL);                                                                   \
    }                                                                                              \
    static void NAME##_ahead(int64_t kc, const float *restrict ap, int64_t astep, int64_t arow,    \
                             const float *restrict bp, float *c, int64_t ldc, int64_t mr,          \
                             int64_t nr, float alpha, float beta, const float *bias,               \
                             struct ahead *ahead) {                                                \
        (void)arow;                                                                                \
        kernel_core(NV, ROWS, kc, ap, astep, 1, bp, NULL, 0, c, ldc, NULL, mr, nr, alpha, beta,    \
                    bias, ahead);                                                                  \
    }                                                                                              \
    static void NAME##_arow(int64_t kc, const float *restrict ap, int64_t astep, int64_t arow,     \
                            const float *restrict bp, float *c, int64_t ldc, int64_t mr,           \
                            int64_t nr, float alpha, float beta, const float *bias,                \
                            struct ahead *ahead) {                                                 \
        kernel_core(NV, ROWS, kc, ap, astep, arow, bp, NULL, 0, c, ldc, NULL, mr, nr, alpha, beta, \
                    bias, ahead);                                                                  \
    }
PACKED(kernel_8x1, 1, 8)
PACKED(kernel_8x2, 2, 8)
PACKED(kernel_8x3, 3, 8)
PACKED(kernel_16x1, 1, 16)
#undef PACKED
/* The kernels that read B's rows in place (convolutions) and that write
 * C through row pointers, all with A packed. */
#define KERNELS(NV)                                                                                \
    static void kernel_8x##NV##_rows(                                                              \
        int64_t kc, const float *restrict ap, const float *const *brow, int64_t j, float *c,       \
        int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta, const float *rbias) {        \
        kernel_core(NV, 8, kc, ap, MR, 1, NULL, brow, j, c, ldc, NULL, mr, nr, alpha, beta, rbias, \
                    NULL);                                                                         \
    }                                                                                              \
    static void kernel_1x##NV##_rows(                                                              \
        int64_t kc, const float *restrict ap, const float *const *brow, int64_t j, float *c,       \
        int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta, const float *rbias) {        \
        kernel_core(NV, 1, kc, ap, MR, 1, NULL, brow, j, c, ldc, NULL, mr, nr, alpha, beta, rbias, \
                    NULL);                                                                         \
    }                                                                                              \
    static void kernel_8x##NV##_crow(int64_t kc, const float *restrict ap,                         \
                                     const float *restrict bp, float *const *crow, int64_t j,      \
                                     int64_t mr, int64_t nr, float beta) {                         \
        kernel_core(NV, 8, kc, ap, MR, 1, bp, NULL, j, NULL, 0, crow, mr, nr, 1.0f, beta, NULL,    \
                    NULL);                                                                         \
    }
KERNELS(1)
KERNELS(2)
KERNELS(3)
#undef KERNELS
static void kernel_16x1_rows(int64_t kc, const float *restrict ap, const float *const *brow,
                             int64_t j, float *c, int64_t ldc, int64_t mr, int64_t nr, float alpha,
                             float beta, const float *rbias) {
    kernel_core(1, 16, kc, ap, MR, 1, NULL, brow, j, c, ldc, NULL, mr, nr, alpha, beta, rbias,
                NULL);
}
static void kernel_16x1_crow(int64_t kc, const float *restrict ap, const float *restrict bp,
                             float *const *crow, int64_t j, int64_t mr, int64_t nr, float beta) {
    kernel_core(1, 16, kc, ap, MR, 1, bp, NULL, j, NULL, 0, crow, mr, nr, 1.0f, beta, NULL, NULL);
}
/* [0]: plain; [1]: fetching ahead (its cursor costs the loop a little
 * where there is nothing to fetch); [2]: A's rows in place, arow apart;
 * [.][3]: 16 rows of 16 columns */
static const packed_kernel packed_kernels[3][4] = {
    {kernel_8x1, kernel_8x2, kernel_8x3, kernel_16x1},
    {kernel_8x1_ahead, kernel_8x2_ahead, kernel_8x3_ahead, kernel_16x1_ahead},
    {kernel_8x1_arow, kernel_8x2_arow, kernel_8x3_arow, kernel_16x1_arow}};
/* [0]: 8 rows; [1]: one; [0][3]: 16 rows of 16 columns */
static const rows_kernel rows_kernels[2][4] = {
    {kernel_8x1_rows, kernel_8x2_rows, kernel_8x3_rows, kernel_16x1_rows},
    {kernel_1x1_rows, kernel_1x2_rows, kernel_1x3_rows, kernel_1x3_rows}};
static const crow_kernel crow_kernels[4] = {kernel_8x1_crow, kernel_8x2_crow, kernel_8x3_crow,
                                            kernel_16x1_crow};

/* The tile at row ir of an mc-row block, nr columns wide: its kernel
 * (an index into the tables above) and its rows. Two panels go at once
 * where the tile is 16 columns or fewer and both panels are full. */
static inline int tile_kernel(int64_t mc, int64_t ir, int64_t nr, int64_t *rows) {
    const int two = nr <= 16 && mc - ir >= 2 * MR;
    *rows = two ? 2 * MR : (mc - ir < MR ? mc - ir : MR);
    return two ? 3 : (int)((nr - 1) / 16);
}

/* ---- drivers ------------------------------------------------------------ */

/* Near-equal slices of at most KC, whole 16-deep blocks but the last:
 * the slicing depends on K alone. */
static int64_t kslice_of(int64_t K) {
    const int64_t nk = (K + KC - 1) / KC;
    return ((K + nk - 1) / nk + 15) / 16 * 16;
}

/* The blocked loops over C (M x N, row stride ldc) = alpha op(A) op(B) +
 * beta C + bias (bias: N values or NULL, added with the first slice of K)
 * on this thread. With apre, op(A) comes packed by
 * gen_gemm_avx512_pack_a (ta and A unused). With B == NULL, bfull holds
 * op(B) already packed as ceil(N / NR) panels kb deep (panel q at bfull +
 * q kb NR, element (k, c) at k NR + c; kb = K for a whole operand), whose
 * rows p0.. of a slice are exactly what pack_b would have written, or brow
 * gives its rows (then bias, if any, holds M values: one a row). With
 * crow (then alpha is 1, B packed, no bias), row i of C is at crow[i]. */
static void gemm_blocked(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *apre, const float *B,
                         int64_t ldb, const float *bfull, int64_t kb,
                         const float *const *brow, float *const *crow, float beta,
                         const float *bias, float *C, int64_t ldc) {
    float *bp = packing_buffer(), *abuf = bp + (size_t)KC * NC;
    const float *ap = abuf;
    const int64_t kslice = kslice_of(K), Mp = (M + MR - 1) / MR * MR;
    /* A in whole panels feeds the plain kernels in place, packing no
     * copy of it: stored K x M (a weight gradient's dy^T) a panel's step k
     * is 8 floats of row k (astep lda, arow 1); stored M x K, its rows
     * are 8 streams read along k (astep 1, arow lda). */
    const int a_in_place = !apre && !brow && !crow && M % MR == 0;
    const int64_t astep = a_in_place ? (ta ? lda : 1) : MR, arow = a_in_place && !ta ? lda : 1;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        const int64_t nc = N - j0 < NC ? N - j0 : NC;
        for (int64_t p0 = 0; p0 < K; p0 += kslice) {
            const int64_t kc = K - p0 < kslice ? K - p0 : kslice;
            const float b = p0 == 0 ? beta : 1.0f;
            if (B) pack_b(tb, B, ldb, p0, j0, kc, nc, bp); /* else prepacked, or rows */
            for (int64_t i0 = 0; i0 < M; i0 += MC) {
                const int64_t mc = M - i0 < MC ? M - i0 : MC;
                /* what packing reads after this block, fetched meanwhile */
                const struct ahead none = {0};
                struct ahead next =
                    apre ? none
                         : ahead_plan(ta, tb, A, lda, B, ldb, M, K, MC, i0, p0, kc, kslice, j0, nc,
                                      ((nc + NR - 1) / NR) * ((mc + MR - 1) / MR) * kc);
                if (apre)
                    ap = apre + p0 * Mp + (i0 / MR) * kc * MR;
                else if (a_in_place)
                    ap = ta ? A + p0 * lda + i0 : A + i0 * lda + p0;
                else
                    pack_a(ta, A, lda, i0, p0, mc, kc, abuf);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t nr = nc - jr < NR ? nc - jr : NR;
                    int64_t mr;
                    if (brow) { /* convolutions: a bias a row */
                        for (int64_t ir = 0; ir < mc; ir += mr) {
                            const int kn = tile_kernel(mc, ir, nr, &mr);
                            rows_kernels[mc - ir == 1][kn](kc, ap + (ir / MR) * kc * MR, brow + p0,
                                                           j0 + jr, C + (i0 + ir) * ldc + j0 + jr,
                                                           ldc, mr, nr, alpha, b,
                                                           bias && p0 == 0 ? bias + i0 + ir : NULL);
                        }
                        continue;
                    }
                    const float *bpanel =
                        B ? bp + (jr / NR) * kc * NR : bfull + ((j0 + jr) / NR) * kb * NR + p0 * NR;
                    if (crow) {
                        for (int64_t ir = 0; ir < mc; ir += mr) {
                            const int kn = tile_kernel(mc, ir, nr, &mr);
                            crow_kernels[kn](kc, ap + (ir / MR) * kc * MR, bpanel, crow + i0 + ir,
                                             j0 + jr, mr, nr, b);
                        }
                        continue;
                    }
                    const float *bj = bias && p0 == 0 ? bias + j0 + jr : NULL;
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        const int kn = tile_kernel(mc, ir, nr, &mr);
                        packed_kernels[arow > 1 ? 2 : next.p != NULL][kn](
                            kc, a_in_place ? ap + ir * arow : ap + (ir / MR) * kc * MR, astep, arow,
                            bpanel, C + (i0 + ir) * ldc + j0 + jr, ldc, mr, nr, alpha, b, bj,
                            &next);
                    }
                }
            }
        }
    }
}

/* C = beta C where the product is empty. */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

/* C (M x N, row stride ldc) = alpha op(A) op(B) + beta C + bias on this
 * thread (bias: N values, or NULL). */
void gen_sgemm_avx512(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, const float *bias,
                      float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        if (bias)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) C[i * ldc + j] += bias[j];
        return;
    }
    gemm_blocked(ta, tb, M, N, K, alpha, A, lda, NULL, B, ldb, NULL, K, NULL, NULL, beta, bias, C,
                 ldc);
}

int64_t gen_gemm_avx512_pack_a_floats(int64_t M, int64_t K) {
    return (M + MR - 1) / MR * MR * K;
}

/* op(A) (M x K; A row stride lda) packed as gemm_blocked reads it, slice
 * by slice: slice p0 at ap + p0 Mp (Mp = M rounded up to MR), MR-row
 * panels of its depth kc one after another. */
void gen_gemm_avx512_pack_a(int ta, int64_t M, int64_t K, const float *A, int64_t lda,
                            float *ap) {
    const int64_t kslice = kslice_of(K), Mp = (M + MR - 1) / MR * MR;
    for (int64_t p0 = 0; p0 < K; p0 += kslice)
        pack_a(ta, A, lda, 0, p0, M, K - p0 < kslice ? K - p0 : kslice, ap + p0 * Mp);
}

int64_t gen_gemm_avx512_pack_b_floats(int64_t K, int64_t N) {
    return (N + NR - 1) / NR * NR * K;
}

void gen_gemm_avx512_rows(int64_t M, int64_t N, int64_t K, const float *ap, const float *bp,
                          const float *const *brow, float *const *crow, float beta, float *C,
                          int64_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    gemm_blocked(0, 0, M, N, K, 1.0f, NULL, 0, ap, NULL, 0, bp, K, brow, crow, beta, NULL, C, ldc);
}

void gen_sgemm_avx512_packed(int64_t M, int64_t N, int64_t K, const float *ap, const float *bp,
                             float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    gemm_blocked(0, 0, M, N, K, 1.0f, NULL, 0, ap, NULL, 0, bp, K, NULL, NULL, beta, NULL, C, ldc);
}

/* op(B) (K x N) into bp as gemm_blocked's bfull (panels K deep). */
void gen_gemm_avx512_bpack(int tb, int64_t K, int64_t N, const float *B, int64_t ldb, float *bp) {
    if (K > 0 && N > 0) pack_b(tb, B, ldb, 0, 0, K, N, bp);
}

/* C = alpha op(A) B' + beta C, B' rows [k0, k0 + K) of an op(B) of kb rows
 * packed by gen_gemm_avx512_bpack, on this thread. */
void gen_gemm_avx512_bpacked(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                             int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                             const float *bias, float *C, int64_t ldc) {
    GEN_ASSERT(K >= 1 && (!bias || (alpha == 1.0f && beta == 0.0f)));
    if (M > 0 && N > 0)
        gemm_blocked(ta, 0, M, N, K, alpha, A, lda, NULL, NULL, 0, bp + k0 * NR, kb, NULL, NULL,
                     beta, bias, C, ldc);
}

/* ---- convolution as an implicit GEMM -------------------------------------- */

/* Copies len values from src into the packed panels, row k, from column n0
 * on: whole 48-wide pieces with three vector moves, partial ones masked. */
static void row_to_panels(float *bfull, int64_t K, int64_t k, int64_t n0, int64_t len,
                          const float *src) {
    int64_t lane = n0 % NR;
    float *dst = bfull + (n0 / NR) * K * NR + k * NR + lane;
    while (len > 0) {
        const int64_t piece = NR - lane < len ? NR - lane : len;
        if (piece == NR) {
            _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
            _mm512_storeu_ps(dst + 16, _mm512_loadu_ps(src + 16));
            _mm512_storeu_ps(dst + 32, _mm512_loadu_ps(src + 32));
        } else {
            for (int64_t i = 0; i < piece; i += 16) {
                const __mmask16 m = lane_mask(piece - i);
                _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
            }
        }
        src += piece, len -= piece;
        dst += K * NR - lane, lane = 0; /* row k of the next panel */
    }
}

/* Row (kh, kw) of the im2col of one channel plane xc (H x W): OH OW values
 * into d, zero where the tap falls in the padding. */
static void im2col_row(const float *xc, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t kh,
                       int64_t kw, int64_t stride, int64_t pad, float *d) {
    int64_t lo, hi;
    gen_conv_valid(W, OW, stride, pad, kw, &lo, &hi);
    for (int64_t oh = 0; oh < OH; oh++, d += OW) {
        const int64_t ih = oh * stride - pad + kh;
        if (ih < 0 || ih >= H) {
            for (int64_t ow = 0; ow < OW; ow += 16)
                _mm512_mask_storeu_ps(d + ow, lane_mask(OW - ow), _mm512_setzero_ps());
            continue;
        }
        const float *s = xc + ih * W - pad + kw;
        for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
        if (stride == 1) {
            int64_t ow = lo;
            for (; ow + 16 <= hi; ow += 16) _mm512_storeu_ps(d + ow, _mm512_loadu_ps(s + ow));
            for (; ow + 4 <= hi; ow += 4) _mm_storeu_ps(d + ow, _mm_loadu_ps(s + ow));
            for (; ow < hi; ow++) d[ow] = s[ow];
        } else if (stride == 2) { /* the even lanes of two loads, reading no further than needed */
            const __m512i even =
                _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
            for (int64_t ow = lo; ow < hi; ow += 16) {
                const int64_t w = hi - ow < 16 ? hi - ow : 16;
                const __m512 v0 = _mm512_maskz_loadu_ps(lane_mask(2 * w - 1), s + 2 * ow);
                const __m512 v1 = _mm512_maskz_loadu_ps(lane_mask(2 * w - 17), s + 2 * ow + 16);
                _mm512_mask_storeu_ps(d + ow, lane_mask(w), _mm512_permutex2var_ps(v0, even, v1));
            }
        } else {
            for (int64_t ow = lo; ow < hi; ow++) d[ow] = s[ow * stride];
        }
        for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0.0f;
    }
}

/* ---- convolutions over zero-padded phase planes -------------------------
 * The wide grid (struct gen_wide, kernels_impl.h): every row of the im2col
 * matrix is a contiguous slice of a phase plane, so nothing is gathered per
 * tap, whatever the stride. The garbage columns cost (Wq - OW) / OW more
 * arithmetic and are dropped (forward) or multiplied by zeros (weight
 * gradient). Reads past a plane's end land in the next plane or in zeroed
 * slack, so stay finite. */

/* n rounded up to whole 64-byte lines of floats: the parts of a work
 * buffer start aligned (one of them holds pointers). */
static inline int64_t round16(int64_t n) {
    return (n + 15) / 16 * 16;
}

/* Images whose wide grid has at least this many columns feed the
 * micro-kernel B rows straight from the planes; smaller ones are packed
 * with several images side by side, so that partial panels waste little.
 * Convolutions of fewer than WIDE_MIN_K taps (C KH KW) skip the wide grid:
 * there dropping its garbage columns costs as much as the arithmetic, so
 * their im2col rows are gathered into the packed panels instead. */
#define ROWS_MIN   (4 * NR)
#define WIDE_MIN_K 64

/* The m images' C planes (x, images img floats apart), padded and split
 * into phases, into xp, then g->slack zeros. Phase (a, b) is the im2col
 * row of tap (a, b) over an Hq x Wq output grid. */
void gen_wide_planes(const float *x, int64_t img, int64_t m, int64_t C, int64_t H, int64_t W,
                         int64_t pad, const struct gen_wide *g, float *xp) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < C; c++) {
            const float *src = x + i * img + c * H * W;
            float *d = xp + (i * C + c) * g->plane;
            if (g->s > 1) {
                /* the next plane: im2col_row's short strided rows leave the
                 * hardware prefetcher idle */
                const float *next = c + 1 < C ? src + H * W : i + 1 < m ? x + (i + 1) * img : NULL;
                if (next) prefetch_row(next, H * W);
                for (int64_t a = 0; a < g->sa; a++)
                    for (int64_t b = 0; b < g->sb; b++)
                        im2col_row(src, H, W, g->Hq, g->Wq, a, b, g->s, pad,
                                   d + (a * g->sb + b) * g->phase);
                continue;
            }
            gen_pad_plane(src, H, W, pad, g->Hq, g->Wq, d); /* stride 1: Hq x Wq */
        }
    memset(xp + m * C * g->plane, 0, (size_t)g->slack * sizeof(float));
}

/* out = wide + bias + beta out (image i at out + i out_img, rows ldo
 * apart), less the garbage columns: wide is M x m tw (row stride ldw),
 * image i's grid in columns [i tw, (i+1) tw), output row oh of it from
 * column oh Wq. */
void gen_wide_to_out(const struct gen_wide *g, int64_t M, int64_t m, const float *wide,
                     int64_t ldw, const float *bias, float beta, float *out, int64_t ldo,
                     int64_t out_img) {
    const int64_t OH = g->OH, OW = g->OW;
    for (int64_t co = 0; co < M; co++) {
        const __m512 vb = _mm512_set1_ps(bias ? bias[co] : 0.0f);
        /* the next row's output lines, which the masked stores of short rows
         * would otherwise wait for one by one: with each output row, the
         * same row of the next channel (all of them at once, they held the
         * copy up while the line fill buffers were full) */
        const int64_t next = co + 1 < M ? ldo : 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t oh = 0; oh < OH; oh++) {
                const float *src = wide + co * ldw + i * g->tw + oh * g->Wq;
                float *dst = out + co * ldo + i * out_img + oh * OW;
                if (next) { /* the row's lines: from its first value to its last */
                    prefetch_row(dst + next, OW);
                    _mm_prefetch((const char *)(dst + next + OW - 1), _MM_HINT_T0);
                }
                for (int64_t ow = 0; ow < OW; ow += 16) {
                    const __mmask16 mk = lane_mask(OW - ow);
                    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, src + ow), vb);
                    if (beta != 0.0f)
                        v = _mm512_fmadd_ps(_mm512_set1_ps(beta),
                                            _mm512_maskz_loadu_ps(mk, dst + ow), v);
                    _mm512_mask_storeu_ps(dst + ow, mk, v);
                }
            }
    }
}

/* A 1 x 1 stride-1 convolution, whose images are their own column
 * matrices. Where an image has at least ROWS_MIN positions the micro-kernel
 * reads its channel rows in place (the last P % 16 columns, which whole
 * vectors would read past, through a zero-padded copy of C x 16), the
 * weight gradient's 8 x 3 blocks read dy and x in place, and nothing is
 * copied or packed but the weights. Smaller images are declined (work 0),
 * so that ops_conv.c runs them on the plain GEMM, several images side by
 * side. */
static int pointwise(int64_t KH, int64_t KW, int64_t stride, int64_t pad) {
    return KH == 1 && KW == 1 && stride == 1 && pad == 0;
}

static int pointwise_in_place(int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                              int64_t pad) {
    return pointwise(KH, KW, stride, pad) && H * W >= ROWS_MIN;
}

/* Work of pointwise_conv: C row pointers, then the tails' copy. */
static int64_t pointwise_work(int64_t C) {
    return round16(2 * C) + 16 * C;
}

/* out_i = Wm x_i + bias + beta out_i for the m images (C, P) at x, img
 * floats apart; out_i (M, P) at out + i out_img, rows ldo apart. */
static void pointwise_conv(int64_t M, const float *Wm, int64_t C, int64_t P, int64_t m, int64_t img,
                           const float *x, const float *bias, float beta, float *out, int64_t ldo,
                           int64_t out_img, float *work) {
    const float **rows = (const float **)(void *)work;
    float *tails = work + round16(2 * C);
    const int64_t body = P / 16 * 16, tail = P - body;
    for (int64_t i = 0; i < m; i++) {
        const float *xi = x + i * img;
        float *oi = out + i * out_img;
        for (int64_t c = 0; c < C; c++) rows[c] = xi + c * P;
        if (body)
            gemm_blocked(0, 0, M, body, C, 1.0f, NULL, 0, Wm, NULL, 0, NULL, C, rows, NULL, beta,
                         bias, oi, ldo);
        if (!tail) continue;
        for (int64_t c = 0; c < C; c++) {
            _mm512_storeu_ps(tails + 16 * c,
                             _mm512_maskz_loadu_ps(lane_mask(tail), xi + c * P + body));
            rows[c] = tails + 16 * c;
        }
        gemm_blocked(0, 0, M, tail, C, 1.0f, NULL, 0, Wm, NULL, 0, NULL, C, rows, NULL, beta, bias,
                     oi + body, ldo);
    }
}

int64_t gen_conv_gemm_avx512_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                  int64_t KW, int64_t stride, int64_t pad, int64_t m) {
    const int64_t K = C * KH * KW;
    if (pointwise(KH, KW, stride, pad))
        return pointwise_in_place(H, W, KH, KW, stride, pad) ? pointwise_work(C) : 0;
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) return gen_wino_conv_work(M, C, H, W, pad, m);
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad))
        return gen_wino_s2_work(M, C, H, W, pad, m);
    if (gen_nhwc_fits(C, KH, KW, stride)) return gen_nhwc_conv_work(M, C, H, W, KH, KW, stride, pad, m);
    if (K < WIDE_MIN_K) { /* panels of the plain grid, one im2col row, the product */
        const int64_t N = m * gen_conv_out(H, KH, stride, pad) * gen_conv_out(W, KW, stride, pad);
        return (N + NR - 1) / NR * NR * K + round16(N) + round16(M * N);
    }
    /* phase planes, panels of the wide grid (or row pointers), the wide output */
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t n = m * g.tw;
    return round16(m * C * g.plane + g.slack) + (n + NR - 1) / NR * NR * K + round16(M * n + 16);
}

int64_t gen_conv_gemm_avx512_images(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                    int64_t KW, int64_t stride, int64_t pad) {
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_images(H, W, pad);
    return gen_wino_fits(M, C, H, W, KH, KW, stride, pad) ? gen_wino_images(H, W, pad) : 0;
}

int64_t gen_conv_prep_avx512_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                  int64_t KW, int64_t stride, int64_t pad) {
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) return gen_wino_prep_work(M, C, H, W, pad);
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_prep_work(M, C);
    if (gen_nhwc_fits(C, KH, KW, stride)) return gen_nhwc_conv_prep_work(M, C, KH, KW);
    return gen_gemm_avx512_pack_a_floats(M, C * KH * KW);
}

void gen_conv_prep_avx512(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                          int64_t stride, int64_t pad, const float *Wm, float *prep) {
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad))
        gen_wino_prep(M, C, H, W, pad, Wm, prep);
    else if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad))
        gen_wino_s2_prep(M, C, Wm, prep);
    else if (gen_nhwc_fits(C, KH, KW, stride))
        gen_nhwc_conv_prep(M, C, KH, KW, Wm, prep);
    else /* packed once for every chunk's product */
        gen_gemm_avx512_pack_a(GEN_NOTRANS, M, C * KH * KW, Wm, C * KH * KW, prep);
}

/* Zeroes the columns of the last packed panel past column n. */
static void zero_panel_tail(float *bfull, int64_t K, int64_t n) {
    const int64_t panels = (n + NR - 1) / NR;
    if (panels * NR > n)
        for (int64_t k = 0; k < K; k++)
            memset(bfull + (panels - 1) * K * NR + k * NR + (n - (panels - 1) * NR), 0,
                   (size_t)(panels * NR - n) * sizeof(float));
}

/* out (M x m P, row stride ldo) = Wm (M x K) im2col(images) + bias + beta out,
 * where the m images (C, H, W) start at x, img floats apart, and image i's
 * output columns are [i P, (i+1) P). The im2col rows are slices of the
 * phase planes in `work` (gen_conv_gemm_avx512_work floats), read by the
 * micro-kernel in place or copied into the GEMM's packed B panels (or,
 * under WIDE_MIN_K taps, gathered straight into them), so the column
 * matrix is never written out and re-read. Wm comes as
 * gen_conv_prep_avx512 left it: packed as A panels (or, for Winograd's
 * geometries, transformed). On the calling thread. */
void gen_conv_gemm_avx512(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                          int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                          const float *x, const float *bias, float beta, float *out, int64_t ldo,
                          int64_t out_img, float *work) {
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t OH = g.OH, OW = g.OW, P = OH * OW, K = C * KH * KW, n = m * g.tw;
    if (M <= 0 || P <= 0 || m <= 0) return;
    if (pointwise(KH, KW, stride, pad)) {
        pointwise_conv(M, Wm, C, P, m, img, x, bias, beta, out, ldo, out_img, work);
        return;
    }
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_conv(M, Wm, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work);
        return;
    }
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_conv(M, Wm, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work);
        return;
    }
    if (gen_nhwc_fits(C, KH, KW, stride)) {
        gen_nhwc_conv(M, Wm, C, H, W, KH, KW, stride, pad, m, img, x, bias, beta, out, ldo,
                      out_img, work);
        return;
    }
    if (K < WIDE_MIN_K) { /* im2col a row at a time through a scratch row in L1 */
        const int64_t N = m * P, panels = (N + NR - 1) / NR;
        float *row = work + panels * NR * K;
        for (int64_t i = 0; i < m; i++)
            for (int64_t c = 0; c < C; c++) /* one channel plane, reused from L1 by every tap */
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++) {
                        im2col_row(x + i * img + c * H * W, H, W, OH, OW, kh, kw, stride, pad, row);
                        row_to_panels(work, K, (c * KH + kh) * KW + kw, i * P, P, row);
                    }
        zero_panel_tail(work, K, N);
        /* the product on the plain grid (a wide grid without garbage), then out */
        struct gen_wide gp = g;
        gp.Wq = OW, gp.tw = P;
        float *prod = row + round16(N);
        gemm_blocked(0, 0, M, N, K, 1.0f, NULL, 0, Wm, NULL, 0, work, K, NULL, NULL, 0.0f, NULL,
                     prod, N);
        gen_wide_to_out(&gp, M, m, prod, N, bias, beta, out, ldo, out_img);
        return;
    }
    float *xp = work, *panels = xp + round16(m * C * g.plane + g.slack);
    float *wide = panels + (n + NR - 1) / NR * NR * K;
    gen_wide_planes(x, img, m, C, H, W, pad, &g, xp);
    if (g.tw >= ROWS_MIN) {
        /* the micro-kernel reads B's rows straight from the planes (the
         * columns past tw read on into finite data and are dropped) */
        const float **rows = (const float **)(void *)panels;
        for (int64_t i = 0; i < m; i++) {
            for (int64_t c = 0; c < C; c++)
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++)
                        rows[(c * KH + kh) * KW + kw] =
                            xp + (i * C + c) * g.plane + gen_wide_tap(&g, kh, kw);
            gemm_blocked(0, 0, M, g.tw, K, 1.0f, NULL, 0, Wm, NULL, 0, NULL, K, rows, NULL, 0.0f,
                         NULL, wide + i * g.tw, n);
        }
    } else {
        for (int64_t i = 0; i < m; i++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++)
                        row_to_panels(panels, K, (c * KH + kh) * KW + kw, i * g.tw, g.tw,
                                      xp + (i * C + c) * g.plane + gen_wide_tap(&g, kh, kw));
        zero_panel_tail(panels, K, n);
        gemm_blocked(0, 0, M, n, K, 1.0f, NULL, 0, Wm, NULL, 0, panels, K, NULL, NULL, 0.0f, NULL,
                     wide, n);
    }
    gen_wide_to_out(&g, M, m, wide, n, bias, beta, out, ldo, out_img);
}

/* ---- the weight gradient of a convolution ------------------------------
 * dw (M x K) = sum over images i of dy_i (M x P) col_i^T (P x K): both
 * operands run along P in memory, so instead of transposing either into
 * GEMM panels, an 8 x 3 block of dw keeps one 16-lane partial sum per
 * element in registers while it walks P (8 + 3 loads feed 24 FMAs), and
 * sums its lanes once per block. The col rows are slices of the phase
 * planes and dy is laid out on the same wide grid (zeros in the garbage
 * columns, rows rounded up to 16 floats), but for few taps at a stride.
 * Strided convolutions with enough channels go through a channels-last
 * copy instead (conv_nhwc_avx512.c). */
#define DW_MB 8
#define DW_JB 3

/* The 8 x 3 block: s[r][j] = sum over images i < m and t < len of
 * a[r](i)[t] b[j](i)[t], with a[r](i) = a + i a_img + r a_row and
 * b[j](i) = b[j] + i b_img; rows past mn / kn repeat the last one and are
 * not stored; with `rows` 1 (mn 1: a convolution into one channel) only
 * row 0 is computed. Written to dw[r ldw + j]. */
static inline __attribute__((always_inline)) void
dw_block_rows(const int rows, int64_t mn, int64_t kn, int64_t m, int64_t len, const float *a,
              int64_t a_img, int64_t a_row, const float *const b[DW_JB], int64_t b_img, float *dw,
              int64_t ldw) {
    __m512 s00 = _mm512_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00;
    __m512 s20 = s00, s21 = s00, s22 = s00, s30 = s00, s31 = s00, s32 = s00;
    __m512 s40 = s00, s41 = s00, s42 = s00, s50 = s00, s51 = s00, s52 = s00;
    __m512 s60 = s00, s61 = s00, s62 = s00, s70 = s00, s71 = s00, s72 = s00;
    const int64_t full = len / 16 * 16;
    for (int64_t i = 0; i < m; i++) {
        const float *ar[DW_MB];
        for (int r = 0; r < DW_MB; r++) ar[r] = a + i * a_img + (r < mn ? r : mn - 1) * a_row;
        const float *a0 = ar[0], *a1 = ar[1], *a2 = ar[2], *a3 = ar[3], *a4 = ar[4], *a5 = ar[5],
                    *a6 = ar[6], *a7 = ar[7];
        const float *c0 = b[0] + i * b_img, *c1 = b[kn > 1 ? 1 : 0] + i * b_img,
                    *c2 = b[kn > 2 ? 2 : 0] + i * b_img;
#define DW_ROW(r, LOAD)                                                                            \
    do {                                                                                           \
        __m512 u = LOAD(a##r + t);                                                                 \
        __asm__("" : "+v"(u)); /* one load, not one folded into each of the three FMAs */          \
        s##r##0 = _mm512_fmadd_ps(u, v0, s##r##0);                                                 \
        s##r##1 = _mm512_fmadd_ps(u, v1, s##r##1);                                                 \
        s##r##2 = _mm512_fmadd_ps(u, v2, s##r##2);                                                 \
    } while (0)
#define DW_STEP(LOAD)                                                                              \
    do {                                                                                           \
        const __m512 v0 = LOAD(c0 + t), v1 = LOAD(c1 + t), v2 = LOAD(c2 + t);                      \
        DW_ROW(0, LOAD);                                                                           \
        if (rows > 1) {                                                                            \
            DW_ROW(1, LOAD);                                                                       \
            DW_ROW(2, LOAD);                                                                       \
            DW_ROW(3, LOAD);                                                                       \
            DW_ROW(4, LOAD);                                                                       \
            DW_ROW(5, LOAD);                                                                       \
            DW_ROW(6, LOAD);                                                                       \
            DW_ROW(7, LOAD);                                                                       \
        }                                                                                          \
    } while (0)
#define LOAD_FULL(p) _mm512_loadu_ps(p)
#define LOAD_TAIL(p) _mm512_maskz_loadu_ps(mk, p)
        int64_t t = 0;
        for (; t < full; t += 16) DW_STEP(LOAD_FULL);
        if (t < len) {
            const __mmask16 mk = lane_mask(len - t);
            DW_STEP(LOAD_TAIL);
        }
#undef LOAD_TAIL
#undef LOAD_FULL
#undef DW_STEP
#undef DW_ROW
    }
    /* the 24 sums through two lane_sums trees (about 4 instructions a sum, not 10):
     * v[f / 16][f % 16] is element f = 3 r + j of the block */
    __m512 v[2][16] = {{s00, s01, s02, s10, s11, s12, s20, s21, s22, s30, s31, s32, s40, s41, s42,
                        s50},
                       {s51, s52, s60, s61, s62, s70, s71, s72}};
    float sums[32];
    _mm512_storeu_ps(sums, lane_sums(v[0]));
    _mm512_storeu_ps(sums + 16, lane_sums(v[1]));
    for (int64_t r = 0; r < mn; r++)
        for (int64_t j = 0; j < kn; j++) dw[r * ldw + j] = sums[r * DW_JB + j];
}

static void dw_block(int64_t mn, int64_t kn, int64_t m, int64_t len, const float *a, int64_t a_img,
                     int64_t a_row, const float *const b[DW_JB], int64_t b_img, float *dw,
                     int64_t ldw) {
    if (mn == 1)
        dw_block_rows(1, mn, kn, m, len, a, a_img, a_row, b, b_img, dw, ldw);
    else
        dw_block_rows(DW_MB, mn, kn, m, len, a, a_img, a_row, b, b_img, dw, ldw);
}

/* Few taps at a stride: the wide copy of dy would cost more than the
 * products, so im2col rows are built, DW_JB at a time for the m images. */
static int dw_gathers(int64_t K, int64_t stride) {
    return stride > 1 && K < WIDE_MIN_K;
}

int64_t gen_conv_dw_avx512_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t stride, int64_t pad, int64_t m) {
    if (pointwise(KH, KW, stride, pad))
        return pointwise_in_place(H, W, KH, KW, stride, pad) ? 16 : 0;
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) return gen_wino_dw_work(M, C, H, W, pad, m);
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad))
        return gen_wino_s2_dw_work(M, C, H, W, pad, m);
    if (gen_nhwc_fits(C, KH, KW, stride))
        return gen_nhwc_dw_work(M, C, H, W, KH, KW, stride, pad, m);
    if (dw_gathers(C * KH * KW, stride))
        return round16(DW_JB * m * gen_conv_out(H, KH, stride, pad) *
                       gen_conv_out(W, KW, stride, pad));
    /* phase planes, dy on the wide grid */
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    return round16(m * C * g.plane + g.slack) + round16(m * M * g.tw16);
}

void gen_conv_dw_avx512(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                        const float *x, float *dw, float *work) {
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t OH = g.OH, OW = g.OW, P = OH * OW, K = C * KH * KW, L = m * P;
    if (M <= 0 || K <= 0) return;
    if (pointwise(KH, KW, stride, pad)) {
        /* dy's rows and x's channels in place; channels outer, so that x
         * (the chunk's images seldom fit L2) streams by once, its three
         * rows staying near while every block of dy's rows meets them */
        for (int64_t k0 = 0; k0 < K; k0 += DW_JB) {
            const int64_t kn = K - k0 < DW_JB ? K - k0 : DW_JB;
            const float *b[DW_JB];
            for (int64_t j = 0; j < DW_JB; j++) b[j] = x + (k0 + (j < kn ? j : kn - 1)) * P;
            for (int64_t co0 = 0; co0 < M; co0 += DW_MB)
                dw_block(M - co0 < DW_MB ? M - co0 : DW_MB, kn, m, P, dy + co0 * P, dy_img, P, b,
                         img, dw + co0 * K + k0, K);
        }
        return;
    }
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work);
        return;
    }
    if (gen_wino_s2_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work);
        return;
    }
    if (gen_nhwc_fits(C, KH, KW, stride)) {
        gen_nhwc_dw(M, dy, dy_img, C, H, W, KH, KW, stride, pad, m, img, x, dw, work);
        return;
    }
    if (dw_gathers(K, stride)) {
        for (int64_t k0 = 0; k0 < K; k0 += DW_JB) {
            const int64_t kn = K - k0 < DW_JB ? K - k0 : DW_JB;
            for (int64_t j = 0; j < kn; j++) {
                const int64_t k = k0 + j, c = k / (KH * KW), kh = k / KW % KH, kw = k % KW;
                for (int64_t i = 0; i < m; i++)
                    im2col_row(x + i * img + c * H * W, H, W, OH, OW, kh, kw, stride, pad,
                               work + j * L + i * P);
            }
            const float *b[DW_JB] = {work, work + (kn > 1 ? L : 0), work + (kn > 2 ? 2 * L : 0)};
            for (int64_t co0 = 0; co0 < M; co0 += DW_MB)
                dw_block(M - co0 < DW_MB ? M - co0 : DW_MB, kn, m, P, dy + co0 * P, dy_img, P, b,
                         P, dw + co0 * K + k0, K);
        }
        return;
    }
    float *xp = work, *dyw = xp + round16(m * C * g.plane + g.slack);
    gen_wide_planes(x, img, m, C, H, W, pad, &g, xp);
    /* dy's rows onto the wide grid, zeros in the garbage columns and the
     * tail, a vector at a time, the next plane fetched ahead (rows this
     * short leave the hardware prefetcher idle, and memcpy's call per row
     * cost more than the copy) */
    for (int64_t i = 0; i < m; i++)
        for (int64_t co = 0; co < M; co++) {
            float *d = dyw + (i * M + co) * g.tw16;
            const float *src = dy + i * dy_img + co * P;
            const float *next = co + 1 < M ? src + P : i + 1 < m ? dy + (i + 1) * dy_img : NULL;
            if (next) prefetch_row(next, P);
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t q = 0; q < g.Wq; q += 16)
                    _mm512_mask_storeu_ps(d + oh * g.Wq + q, lane_mask(g.Wq - q),
                                          _mm512_maskz_loadu_ps(lane_mask(OW - q), src + oh * OW + q));
            memset(d + g.tw, 0, (size_t)(g.tw16 - g.tw) * sizeof(float));
        }
    /* co outer: the block's 8 rows of dy stay in L1 while the taps stream by */
    for (int64_t co0 = 0; co0 < M; co0 += DW_MB)
        for (int64_t k0 = 0; k0 < K; k0 += DW_JB) {
            const int64_t kn = K - k0 < DW_JB ? K - k0 : DW_JB;
            const float *b[DW_JB];
            for (int64_t j = 0; j < DW_JB; j++) {
                const int64_t k = k0 + (j < kn ? j : kn - 1);
                const int64_t c = k / (KH * KW), kh = k / KW % KH, kw = k % KW;
                b[j] = xp + c * g.plane + gen_wide_tap(&g, kh, kw);
            }
            dw_block(M - co0 < DW_MB ? M - co0 : DW_MB, kn, m, g.tw16, dyw + co0 * g.tw16,
                     M * g.tw16, g.tw16, b, C * g.plane, dw + co0 * K + k0, K);
        }
}

/* A weight gradient C = alpha A^T B whose B (K x N) is the wider operand
 * (the MLP's second, 128 x 512 x 4096) runs as C^T = alpha B^T A into a
 * buffer, transposed into C after: A in place is then the wide operand
 * and the packed one the narrow, packed once for more of C's columns (one
 * thread, Zen 5 VM, 128 x 512 x 2048 as it was against 512 x 128 x 2048:
 * 187.8 against 201.9 GFLOP/s). Each element is the same FMAs in the same
 * order (a b + c is b a + c), K's slices and halves are K's alone, and C
 * only receives copies (beta 0, no bias), so the bits are those of the
 * product unturned. */
#define TURN_FLOATS ((int64_t)1 << 20) /* the buffer, per thread that turns one */
static int turned(int ta, int tb, int64_t M, int64_t N, int64_t K, float beta) {
    return ta && !tb && beta == 0.0f && N > M && N % MR == 0 && K >= 8 * N && M * N <= TURN_FLOATS;
}

/* C (M x N, rows ldc apart) = T^T, T (N x M) contiguous: 16 x 16 blocks. */
static void transpose_into(int64_t M, int64_t N, const float *T, float *C, int64_t ldc) {
    for (int64_t j0 = 0; j0 < N; j0 += 16) {
        const int64_t rows = N - j0 < 16 ? N - j0 : 16;
        for (int64_t i0 = 0; i0 < M; i0 += 16) {
            const int64_t cols = M - i0 < 16 ? M - i0 : 16;
            const __mmask16 in = lane_mask(cols), out = lane_mask(rows);
            __m512 r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = j < rows ? _mm512_maskz_loadu_ps(in, T + (j0 + j) * M + i0)
                                : _mm512_setzero_ps();
            transpose16(r);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                if (i < cols) _mm512_mask_storeu_ps(C + (i0 + i) * ldc + j0, out, r[i]);
        }
    }
}

/* The same, split over threads in whole MR or NR panels (gen_gemm_split). */
void gen_sgemm_avx512_mt(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc) {
    if (turned(ta, tb, M, N, K, beta)) {
        float *T = gen_pack_buffer(GEN_PACK_TURNED, TURN_FLOATS * sizeof(float));
        gen_gemm_split(gen_sgemm_avx512, MR, NR, 1, 0, N, M, K, alpha, B, ldb, A, lda, 0.0f, NULL,
                       T, M);
        transpose_into(M, N, T, C, ldc);
        return;
    }
    gen_gemm_split(gen_sgemm_avx512, MR, NR, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C,
                   ldc);
}

void gen_sgemm_avx512_bias(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                           int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                           int64_t ldc) {
    gen_gemm_split(gen_sgemm_avx512, MR, NR, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C,
                   ldc);
}
