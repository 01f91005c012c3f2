/* gemm_avx2.c - single-precision GEMM on the AVX2 table, with the
 * micro-kernel of its convolutions (gen_avx2_tile_packed, conv_avx2.c: a
 * 6 x 16 tile of C in 12 ymm registers, per k two loads of B, six
 * broadcasts of A and twelve FMAs).
 *
 * OpenBLAS's own AVX2 kernels ran the transformer's layers at 45-75 % of
 * the FMA peak that bench_gemm measures on a 2-core Zen 3 VM. The loops
 * are those of gemm_avx512.c (Goto and van de Geijn; BLIS's order):
 *
 *   for each NC-wide block of columns of C
 *     for each slice of at most KC of the inner dimension
 *       pack op(B)[slice, block] into 16-wide panels, k-major (row k of a
 *         panel: 16 floats; zeros past N)
 *       for each MC-tall block of rows
 *         pack a last partial 6-tall panel of op(A)[rows, slice], k-major
 *           (zeros past M); the whole panels are read in place (but
 *           those of an A stored K x M with rows 4 KiB apart: packed)
 *         for each B panel, for each A panel: the micro-kernel
 *
 * A B panel (at most KC x 16, 24 KiB) stays in L1 while the A panels of a
 * block (MC x KC, 144 KiB) stream from L2. A whole panel of A feeds the
 * micro-kernel where it lies: stored K x M, step k is 6 floats of row k;
 * stored M x K, 6 rows read along k. Packing it only copied it (one
 * thread, Zen 5 VM, GEN_ISA=avx2, medians of 31 calls in alternating
 * runs: the Transformer's forward products +1-15 %, input gradients
 * +3-13 %, weight gradients +2-9 %, attention's p v +54 %). Packed B
 * panels matter: the kernel read
 * straight from a row-major B whose rows are 2 KiB apart has every row
 * in one of two L1 sets, and ran at 60 % of the packed speed.
 *
 * The slicing of K depends on K alone and each element of C is the same
 * sequence of operations whatever M, N and the panel it falls in (alpha 1
 * with beta 0 or 1, or beta 0 and a bias: the kernel's own stores, the
 * bias added to the sums as they are stored; otherwise, and on the last
 * columns, through a 6 x 16 buffer, with the same sums), so any
 * split over threads (gen_gemm_split, in whole panels) gives the same bits. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "gen/core.h"
#include "kernels/kernels_impl.h"

#define MR        GEN_AVX2_MR
#define NR        GEN_AVX2_NR
#define KC        384
#define MC        96
#define NC        1024
#define PF_K_ROWS 4 /* rows of A stored K x M that packing fetches ahead */
_Static_assert(MC % MR == 0 && NC % NR == 0, "blocks of whole panels");

/* The packed B block, then the packed A block. */
#define BUF_FLOATS ((size_t)KC * NC + (size_t)MC / MR * a_stride(KC))

/* A k-major panel d of w (k, r) at k w + r, k < kc, element by element:
 * (r, k) from src[r rs + k ks] for r < n, zeros past them (partial panels,
 * and the k past a whole panel's transposes). */
static void panel_rows(const float *src, int64_t rs, int64_t ks, int64_t n, int64_t w, int64_t kc,
                       float *d) {
    for (int64_t r = 0; r < w; r++)
        for (int64_t k = 0; k < kc; k++) d[k * w + r] = r < n ? src[r * rs + k * ks] : 0.0f;
}

/* Floats from one packed A panel of depth kc to the next: a line more than
 * the panel, so that the panels' k-th values, which packing A stored K x M
 * writes together, fall in different L1 sets (at 6 KiB apart they shared
 * two, and packing took a third of a weight gradient's time). */
static inline int64_t a_stride(int64_t kc) {
    return kc * MR + 16;
}

/* op(A)[i0 .., p0 ..] (mc x kc) into panels of MR rows at ap: panel q's
 * (r, k) at q a_stride(kc) + k MR + r, zeros past mc. Whole panels only
 * of an A stored K x M (gemm_core reads the others in place), a row of A
 * at a time, 6 floats to each panel, the row PF_K_ROWS on fetched ahead
 * (a panel at a time, its k rows 4 KiB apart would share one L1 set); a
 * last partial panel element by element. */
static void pack_a(int ta, const float *A, int64_t lda, int64_t i0, int64_t p0, int64_t mc,
                   int64_t kc, float *ap) {
    const int64_t full = ta ? mc / MR : 0;
    if (full) {
        const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
        for (int64_t k = 0; k < kc; k++) {
            const float *s = A + (p0 + k) * lda + i0;
            for (int64_t c = 0; c < full * MR; c += 16)
                _mm_prefetch((const char *)(s + PF_K_ROWS * lda + c), _MM_HINT_T0);
            for (int64_t q = 0; q < full; q++) {
                const __m256 v = _mm256_maskload_ps(s + q * MR, six);
                float *d = ap + q * a_stride(kc) + k * MR;
                _mm_storeu_ps(d, _mm256_castps256_ps128(v));
                _mm_storel_pi((__m64 *)(void *)(d + 4), _mm256_extractf128_ps(v, 1));
            }
        }
    }
    for (int64_t q = full; q * MR < mc; q++) {
        const int64_t rows = mc - q * MR < MR ? mc - q * MR : MR, i = i0 + q * MR;
        panel_rows(ta ? A + p0 * lda + i : A + i * lda + p0, ta ? 1 : lda, ta ? lda : 1, rows, MR,
                   kc, ap + q * a_stride(kc));
    }
}

/* op(B)[p0 .., j0 ..] (kc x nc) into panels of NR columns at bp: panel
 * q's (k, c) at (q kc + k) NR + c, zeros past nc (B stored N x K: whole
 * panels by 8 x 8 transposes). */
static void pack_b(int tb, const float *B, int64_t ldb, int64_t p0, int64_t j0, int64_t kc,
                   int64_t nc, float *bp) {
    if (!tb) { /* B stored K x N: row k in order, 16 floats to each panel (a panel at a
                * time read each line of B twice, from L2 the second time) */
        for (int64_t k = 0; k < kc; k++) {
            const float *s = B + (p0 + k) * ldb + j0;
            for (int64_t q = 0; q * NR < nc; q++) {
                float *d = bp + (q * kc + k) * NR;
                for (int v = 0; v < 2; v++) {
                    const int64_t n = nc - q * NR - 8 * v, at = q * NR + 8 * v;
                    _mm256_storeu_ps(d + 8 * v, n >= 8  ? _mm256_loadu_ps(s + at)
                                                : n > 0 ? gen_avx2_load_head(s + at, n)
                                                        : _mm256_setzero_ps());
                }
            }
        }
        return;
    }
    for (int64_t q = 0; q * NR < nc; q++) {
        float *d = bp + q * kc * NR;
        const int64_t cols = nc - q * NR < NR ? nc - q * NR : NR, j = j0 + q * NR;
        if (cols == NR) { /* B stored N x K: 8 columns x 8 k a transpose */
            int64_t k = 0;
            for (; k + 8 <= kc; k += 8)
                for (int h = 0; h < NR; h += 8) {
                    __m256 v[8];
                    for (int c = 0; c < 8; c++)
                        v[c] = _mm256_loadu_ps(B + (j + h + c) * ldb + p0 + k);
                    gen_avx2_transpose8(v);
                    for (int e = 0; e < 8; e++) _mm256_storeu_ps(d + (k + e) * NR + h, v[e]);
                }
            panel_rows(B + j * ldb + p0 + k, ldb, 1, NR, NR, kc - k, d + k * NR);
            continue;
        }
        panel_rows(B + j * ldb + p0, ldb, 1, cols, NR, kc, d); /* a column of op(B) is a row */
    }
}

/* C[0..mr, 0..nr) (rows ldc apart) = alpha t + add, t the kernel's sums
 * (rows NR apart), add: beta C + bias on the first slice (beta 0: C is
 * not read), C on the others. */
static void write_tile(const float *t, float *c, int64_t ldc, int64_t mr, int64_t nr, float alpha,
                       float beta, const float *bias, int first) {
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(first ? beta : 1.0f);
    const int read_c = !first || beta != 0.0f;
    for (int64_t r = 0; r < mr; r++)
        for (int v = 0; v < 2 && 8 * v < nr; v++) {
            const int64_t n = nr - 8 * v < 8 ? nr - 8 * v : 8;
            float *cv = c + r * ldc + 8 * v;
            __m256 add = first && bias ? gen_avx2_load_head(bias + 8 * v, n) : _mm256_setzero_ps();
            if (read_c) add = _mm256_fmadd_ps(vb, gen_avx2_load_head(cv, n), add);
            gen_avx2_store_head(cv, _mm256_fmadd_ps(va, _mm256_loadu_ps(t + r * NR + 8 * v), add),
                                n);
        }
}

/* C (M x N, row stride ldc) = alpha op(A) op(B) + beta C + bias (N values
 * or NULL) on this thread (a product that is not empty). With B == NULL,
 * bfull holds op(B) packed as ceil(N / NR) panels kb deep (panel q at
 * bfull + q kb NR, row k at k NR; kb = K for a whole operand), whose rows
 * p0.. are what pack_b would have written for a slice. */
static void gemm_core(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, const float *bfull, int64_t kb,
                      float beta, const float *bias, float *C, int64_t ldc) {
    float *bp = gen_pack_buffer(GEN_PACK_AVX2, BUF_FLOATS * sizeof(float));
    float *ap = bp + (size_t)KC * NC;
    _Alignas(32) float t[MR * NR];
    const int64_t nk = (K + KC - 1) / KC, kslice = (K + nk - 1) / nk; /* equal slices */
    /* whole panels are read in place but those of an A stored K x M whose
     * rows are a multiple of 4 KiB apart: all of a panel's k rows then fall
     * in one L1 set, each on a page of its own (GEN_ISA=avx2, one thread,
     * 1024 x 245 x 128: 66 GFLOP/s in place against 98 packed; 1020, 1536
     * and 1088 rows apart, level or faster in place) */
    const int in_place = !ta || lda * (int64_t)sizeof(float) % 4096 != 0;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        const int64_t nc = N - j0 < NC ? N - j0 : NC;
        for (int64_t p0 = 0; p0 < K; p0 += kslice) {
            const int64_t kc = K - p0 < kslice ? K - p0 : kslice;
            const int first = p0 == 0;
            /* the kernel's stores serve: C = sums (+ bias), or C + sums */
            const int direct = alpha == 1.0f && (!first || beta == 0.0f || (beta == 1.0f && !bias));
            if (B) pack_b(tb, B, ldb, p0, j0, kc, nc, bp);
            for (int64_t i0 = 0; i0 < M; i0 += MC) {
                const int64_t mc = M - i0 < MC ? M - i0 : MC, whole = in_place ? mc / MR * MR : 0;
                if (whole < mc) pack_a(ta, A, lda, i0 + whole, p0, mc - whole, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t nr = nc - jr < NR ? nc - jr : NR;
                    const float *bq =
                        B ? bp + (jr / NR) * kc * NR : bfull + ((j0 + jr) / NR) * kb * NR + p0 * NR;
                    /* the kernel's own stores, or its sums into t and write_tile */
                    const int fused = direct && nr == NR, acc = fused && (!first || beta != 0.0f);
                    const float *bj = fused && first && bias ? bias + j0 + jr : NULL;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int64_t mr = mc - ir < MR ? mc - ir : MR;
                        float *c = C + (i0 + ir) * ldc + j0 + jr, *to = fused ? c : t;
                        const int64_t ldt = fused ? ldc : NR;
                        if (ir < whole) /* a whole panel, read in place */
                            gen_avx2_tile_in_place(
                                kc, ta ? A + p0 * lda + i0 + ir : A + (i0 + ir) * lda + p0,
                                ta ? 1 : lda, ta ? lda : 1, bq, bj, to, ldt, MR, acc);
                        else
                            gen_avx2_tile_packed(kc, ap + (ir - whole) / MR * a_stride(kc), bq, bj,
                                                 to, ldt, mr, acc);
                        if (!fused)
                            write_tile(t, c, ldc, mr, nr, alpha, beta, bias ? bias + j0 + jr : NULL,
                                       first);
                    }
                }
            }
        }
    }
}

/* gemm_core on op(B) as it is stored (a gen_gemm_fn). */
void gen_sgemm_avx2_1t(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       int64_t lda, const float *B, int64_t ldb, float beta, const float *bias,
                       float *C, int64_t ldc) {
    gemm_core(ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, K, beta, bias, C, ldc);
}

/* The table's bpack_floats, bpack and gemm_bpacked (kernels.h): op(B) as
 * gemm_core's bfull. */
int64_t gen_avx2_bpack_floats(int64_t K, int64_t N) {
    return (N + NR - 1) / NR * NR * K;
}

void gen_avx2_bpack(int tb, int64_t K, int64_t N, const float *B, int64_t ldb, float *bp) {
    if (K > 0 && N > 0) pack_b(tb, B, ldb, 0, 0, K, N, bp);
}

void gen_avx2_bpacked(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                      const float *bias, float *C, int64_t ldc) {
    GEN_ASSERT(K >= 1 && (!bias || (alpha == 1.0f && beta == 0.0f)));
    if (M > 0 && N > 0)
        gemm_core(ta, 0, M, N, K, alpha, A, lda, NULL, 0, bp + k0 * NR, kb, beta, bias, C, ldc);
}

void gen_sgemm_avx2(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gen_gemm_split(gen_sgemm_avx2_1t, MR, NR, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C,
                   ldc);
}

void gen_sgemm_avx2_bias(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                         int64_t ldc) {
    gen_gemm_split(gen_sgemm_avx2_1t, MR, NR, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C,
                   ldc);
}
