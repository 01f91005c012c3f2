/* conv_avx2.c - the AVX2 table's convolution as an implicit GEMM.
 *
 * Without it a convolution on an AVX2 machine wrote its im2col matrix (9
 * times its input for a 3 x 3 kernel), then OpenBLAS copied that matrix
 * again into its own panels: on a Zen 3 VM the copies took 27 % of a
 * diffusion step, the products 47 %. Here a stride-1 convolution reads
 * its im2col rows in place, as slices of zero-padded channel planes on
 * the wide grid of kernels_impl.h (struct gen_wide: OH rows of Wq = W + 2
 * pad columns, the last Wq - OW of each row garbage, dropped on the way
 * out), the way the AVX-512 table's row-pointer kernels do:
 *
 *   for each image, for each 16 columns of its wide grid
 *     for each slice of at most KC taps (its rows of the planes stay in L1)
 *       for each 6 rows of Wm (packed once by conv_prep, k-major)
 *         the micro-kernel: a 6 x 16 tile in 12 ymm registers; per tap,
 *         two loads of the plane's row, six broadcasts of Wm, 12 FMAs
 *
 * A strided convolution's forward pass (the U-Net's 28 -> 14
 * down-sampling; or a transposed convolution's input gradient), where its
 * outputs fill the computed columns well (takes), reads the same way from
 * its planes split into phases (struct gen_wide: tap (kh, kw) reads phase
 * (kh mod s, kw mod s) at a fixed offset), built by even-lane shuffles at
 * stride 2, and so does its weight gradient; the other strided
 * geometries go through im2col and OpenBLAS (conv_gemm_work and
 * conv_dw_work 0). A stride-2 input gradient (or a transposed
 * convolution's forward pass) is four stride-1 ones over dy's padded
 * planes, one per sub-pixel phase of dx, on the same micro-kernel
 * (conv_dx, where dx_takes; else col2im of W^T dy). Every output element
 * is the same sequence of operations whatever the chunking, so thread
 * counts do not change results. */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define MR GEN_AVX2_MR /* rows of Wm a micro-tile holds */
#define NB 16          /* columns: two vectors */
#define KC 128         /* taps per slice: 128 rows of two or three lines, in L1 */

/* The geometries the forward pass takes: stride 1, or a strided one of
 * at least STRIDED_MIN_K taps (C KH KW) whose outputs fill at least 7/8
 * of the columns the micro-kernel computes (OH OW of the OH Wq grid
 * columns, rounded up to 16). Measured on a Zen 3 VM against im2col and
 * OpenBLAS, one thread, 64 images in ops_conv's chunks: 3 x 3 stride 2
 * 32 -> 32 channels 28 -> 14 (196 of 224 columns) 4.7 against 6.4-6.6
 * ms; 64 -> 64 14 -> 7 and 4 x 4 64 -> 128 14 -> 7 (49 of 64) even
 * there, but the GAN's step on two threads 107 -> 113 ms (medians of 6
 * interleaved) with the latter taken; 4 x 4 1 -> 64 (16 taps) 0.89
 * against 0.73 ms. The weight gradient takes the same ones: 28 -> 14,
 * 64 images, one thread, 6.1-8.8 against 6.9-11.2 ms (min of 20, three
 * runs); over phase planes a 7 x 7 output's dot products are 56 long, and
 * 64 -> 64 14 -> 7 took 6.9 against 5.0 ms. */
#define STRIDED_MIN_K 64

static int takes(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                 int64_t pad) {
    if (stride == 1) return 1;
    if (C * KH * KW < STRIDED_MIN_K) return 0;
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    return 8 * g.OH * g.OW >= 7 * g.tw16;
}

static inline int64_t round8(int64_t n) {
    return (n + 7) / 8 * 8;
}

/* 4 x 4 stride-2 geometries of 16 or more channels each way, multiples
 * of 8, go to F(4 x 4, 2 x 2) over the phases (winograd_s2_avx2.c), all
 * three passes. On a Zen 4 VM, two threads, GEN_ISA=avx2, 3 alternating
 * rounds of bench_ops against this file's paths: the GAN's 64 -> 128 at
 * 14 -> 7 (forward and both gradients) 15.6 -> 11.4 ms, its transposed
 * 128 -> 64 14.9 -> 11.6; a GAN step (batch 64) 65.1 -> 51.7 ms, medians
 * of 4 alternating rounds. */
static int s2(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
              int64_t pad) {
    return gen_wino_s2_avx2_fits(M, C, H, W, KH, KW, stride, pad);
}

int64_t gen_conv_gemm_avx2_images(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                  int64_t KW, int64_t stride, int64_t pad) {
    return s2(M, C, H, W, KH, KW, stride, pad) ? gen_wino_s2_avx2_images(H, W, pad) : 0;
}

int64_t gen_conv_prep_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t stride, int64_t pad) {
    if (s2(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_avx2_prep_work(M, C);
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad))
        return gen_wino_avx2_prep_work(M, C, H, W, pad);
    return takes(C, H, W, KH, KW, stride, pad) ? gen_avx2_pack_floats(M, C * KH * KW) : 0;
}

void gen_avx2_pack(int64_t M, int64_t K, const float *Wm, int64_t ldw, float *prep) {
    for (int64_t q = 0; q * MR < M; q++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t r = 0; r < MR; r++)
                prep[(q * K + k) * MR + r] = q * MR + r < M ? Wm[(q * MR + r) * ldw + k] : 0.0f;
}

/* Wm (M x K) packed for gen_avx2_panels, or transformed for Winograd. */
void gen_conv_prep_avx2(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t stride, int64_t pad, const float *Wm, float *prep) {
    if (s2(M, C, H, W, KH, KW, stride, pad))
        gen_wino_s2_avx2_prep(M, C, Wm, prep);
    else if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad))
        gen_wino_avx2_prep(M, C, H, W, pad, Wm, prep);
    else
        gen_avx2_pack(M, C * KH * KW, Wm, C * KH * KW, prep);
}

int64_t gen_conv_gemm_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t stride, int64_t pad, int64_t m) {
    if (s2(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_avx2_work(M, C, H, W, pad, m);
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad))
        return gen_wino_avx2_conv_work(M, C, H, W, pad, m);
    if (!takes(C, H, W, KH, KW, stride, pad)) return 0; /* im2col and OpenBLAS serve it */
    const int64_t K = C * KH * KW;
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    /* planes, row pointers (as floats), a block of columns of the product */
    return round8(m * C * g.plane + g.slack) + round8(K * 2) + (M + MR - 1) / MR * MR * NB;
}

/* c[r ldc + 0..16) (+)= sum over k < kc of a(r, k) brow[k][j + 0..16)
 * (+ bias[0..16) when bias is not NULL: then acc is 0)
 * for r < mr <= R: added to c's values when acc, else over them. R (6, 4
 * or 2, a constant where it is inlined) rows are computed: a panel's last
 * rows past M are not (M = 32 is five panels and two rows). a(r, k) is
 * ap[r arow + k astep]: a packed panel (arow 1, astep MR, constants where
 * this is inlined) or a whole panel of A read in place. With packed (a
 * constant where it is inlined), row k is at bp + 16 k instead (a GEMM's
 * packed panel): one load a k fewer than through brow. */
static inline __attribute__((always_inline)) void
tile_rows(int R, int packed, int64_t kc, const float *restrict ap, int64_t arow, int64_t astep,
          const float *const *brow, const float *restrict bp, int64_t j, const float *bias,
          float *c, int64_t ldc, int64_t mr, int acc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define ROW(r)                                                                                     \
    do {                                                                                           \
        if (r < R) {                                                                               \
            const __m256 a = _mm256_broadcast_ss(ap + (r)*arow);                                   \
            c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                                             \
            c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                                             \
        }                                                                                          \
    } while (0)
    for (int64_t k = 0; k < kc; k++, ap += astep) {
        const float *b = packed ? bp + k * NB : brow[k] + j;
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ROW(0);
        ROW(1);
        ROW(2);
        ROW(3);
        ROW(4);
        ROW(5);
    }
#undef ROW
    if (bias) { /* the sums + bias[0..16), as write_tile would add it */
        const __m256 v0 = _mm256_loadu_ps(bias), v1 = _mm256_loadu_ps(bias + 8);
#define BIAS(r) (c##r##0 = _mm256_add_ps(c##r##0, v0), c##r##1 = _mm256_add_ps(c##r##1, v1))
        BIAS(0), BIAS(1), BIAS(2), BIAS(3), BIAS(4), BIAS(5);
#undef BIAS
    }
#define STORE(r)                                                                                   \
    do {                                                                                           \
        if (r < R && r < mr) {                                                                     \
            float *cr = c + (r)*ldc;                                                               \
            if (acc) {                                                                             \
                c##r##0 = _mm256_add_ps(_mm256_loadu_ps(cr), c##r##0);                             \
                c##r##1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), c##r##1);                         \
            }                                                                                      \
            _mm256_storeu_ps(cr, c##r##0);                                                         \
            _mm256_storeu_ps(cr + 8, c##r##1);                                                     \
        }                                                                                          \
    } while (0)
    STORE(0);
    STORE(1);
    STORE(2);
    STORE(3);
    STORE(4);
    STORE(5);
#undef STORE
}

void gen_avx2_tile(int64_t kc, const float *restrict ap, const float *const *brow, int64_t j,
                   float *c, int64_t ldc, int64_t mr, int acc) {
    if (mr > 4)
        tile_rows(6, 0, kc, ap, 1, MR, brow, NULL, j, NULL, c, ldc, mr, acc);
    else if (mr > 2)
        tile_rows(4, 0, kc, ap, 1, MR, brow, NULL, j, NULL, c, ldc, mr, acc);
    else
        tile_rows(2, 0, kc, ap, 1, MR, brow, NULL, j, NULL, c, ldc, mr, acc);
}

void gen_avx2_tile_packed(int64_t kc, const float *restrict ap, const float *restrict bp,
                          const float *bias, float *c, int64_t ldc, int64_t mr, int acc) {
    if (mr > 4)
        tile_rows(6, 1, kc, ap, 1, MR, NULL, bp, 0, bias, c, ldc, mr, acc);
    else if (mr > 2)
        tile_rows(4, 1, kc, ap, 1, MR, NULL, bp, 0, bias, c, ldc, mr, acc);
    else
        tile_rows(2, 1, kc, ap, 1, MR, NULL, bp, 0, bias, c, ldc, mr, acc);
}

void gen_avx2_tile_in_place(int64_t kc, const float *a, int64_t arow, int64_t astep,
                            const float *restrict bp, const float *bias, float *c, int64_t ldc,
                            int64_t mr, int acc) {
    if (arow == 1) /* A stored K x M: row k's 6 floats */
        tile_rows(6, 1, kc, a, 1, astep, NULL, bp, 0, bias, c, ldc, mr, acc);
    else if (mr > 4) /* stored M x K: 6 rows read along k */
        tile_rows(6, 1, kc, a, arow, 1, NULL, bp, 0, bias, c, ldc, mr, acc);
    else if (mr > 2)
        tile_rows(4, 1, kc, a, arow, 1, NULL, bp, 0, bias, c, ldc, mr, acc);
    else
        tile_rows(2, 1, kc, a, arow, 1, NULL, bp, 0, bias, c, ldc, mr, acc);
}

/* The products of one block of 16 columns, in near-equal slices of at most
 * KC taps (the slicing depends on K alone). */
void gen_avx2_panels(int64_t M, int64_t K, const float *Wp, const float *const *brow, int64_t j,
                     float *c, int64_t ldc) {
    const int64_t kslice = (K + (K + KC - 1) / KC - 1) / ((K + KC - 1) / KC);
    for (int64_t p0 = 0; p0 < K; p0 += kslice)
        for (int64_t q = 0; q * MR < M; q++)
            gen_avx2_tile(K - p0 < kslice ? K - p0 : kslice, Wp + (q * K + p0) * MR, brow + p0, j,
                          c + q * MR * ldc, ldc, M - q * MR < MR ? M - q * MR : MR, p0 > 0);
}

/* Phase (a, b) of the channel plane src (H x W) on the wide grid g of
 * stride s > 1: d[r Wq + q] = the padded plane's (r s + a, q s + b), zero
 * in the padding. */
static void phase_plane(const float *src, int64_t H, int64_t W, int64_t pad,
                        const struct gen_wide *g, int64_t a, int64_t b, float *d) {
    const int64_t s = g->s;
    int64_t lo, hi;
    gen_conv_valid(W, g->Wq, s, pad, b, &lo, &hi);
    for (int64_t r = 0; r < g->Hq; r++, d += g->Wq) {
        const int64_t ih = r * s + a - pad;
        if (ih < 0 || ih >= H) {
            memset(d, 0, (size_t)g->Wq * sizeof(float));
            continue;
        }
        const float *row = src + ih * W + b - pad; /* row[q s] for q in [lo, hi) */
        for (int64_t q = 0; q < lo; q++) d[q] = 0.0f;
        for (int64_t q = lo; q < hi; q++) d[q] = row[q * s];
        for (int64_t q = hi; q < g->Wq; q++) d[q] = 0.0f;
    }
}

/* n zeros at d, whole vectors but a short last one. */
static void zero_run(float *d, int64_t n) {
    for (int64_t i = 0; i < n; i += 8)
        gen_avx2_store_head(d + i, _mm256_setzero_ps(), n - i < 8 ? n - i : 8);
}

/* The plane src (H x W) into d (Hq x Wq) at row pt, column pl, zeros
 * around it (Hq >= pt + H, Wq >= pl + W), in whole vectors: each store may
 * spill past its row's end into floats stored after it, never past the
 * plane's; a row's lanes past W are zeros, its right padding. */
static void pad_plane_at(const float *src, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t Hq,
                         int64_t Wq, float *d) {
    const float *end = d + Hq * Wq;
    zero_run(d, pt * Wq);
    for (int64_t ih = 0; ih < H; ih++) {
        float *r = d + (pt + ih) * Wq;
        const float *s = src + ih * W;
        zero_run(r, pl);
        int64_t u = 0;
        for (; u + 8 <= W; u += 8) _mm256_storeu_ps(r + pl + u, _mm256_loadu_ps(s + u));
        for (; pl + u < Wq; u += 8) { /* the row's tail, then zeros to its end */
            const int64_t room = end - (r + pl + u);
            gen_avx2_store_head(r + pl + u,
                                u < W ? gen_avx2_load_head(s + u, W - u) : _mm256_setzero_ps(),
                                room < 8 ? room : 8);
        }
    }
    zero_run(d + (pt + H) * Wq, (Hq - pt - H) * Wq);
}

/* gen_pad_plane's plane (kernels_impl.h) by pad_plane_at. (The scalar
 * one's libc copy a row and scalar loops for the padding's columns were 8 %
 * of a diffusion step on a Zen 3 VM, through Winograd's padded planes.) */
void gen_avx2_pad_plane(const float *src, int64_t H, int64_t W, int64_t pad, int64_t Hq, int64_t Wq,
                        float *d) {
    pad_plane_at(src, H, W, pad, pad, Hq, Wq, d);
}

/* Lanes [off, off + 8) of the row src (W floats), zero outside it: the
 * row as its zero padding extends it. */
static inline __m256 row_lanes(const float *src, int64_t W, int64_t off) {
    if (off >= 0 && off + 8 <= W) return _mm256_loadu_ps(src + off);
    if (off >= W || off + 8 <= 0) return _mm256_setzero_ps();
    if (off >= 0) return gen_avx2_load_head(src + off, W - off);
    /* -8 < off < 0: lane l is src[l + off] where l + off >= 0 */
    const __m256i idx =
        _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)off));
    const __m256 v = _mm256_permutevar8x32_ps(gen_avx2_load_head(src, W < 8 ? W : 8), idx);
    return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(-1))));
}

/* At stride 2, the phases of the channel plane src (H x W) on the wide
 * grid g into d (g->sa g->sb planes of g->phase floats) in one pass down
 * its rows: input row ih is row (ih + pad) / 2 of phases ((ih + pad) mod
 * 2, b), and 8 floats of phase b's row are the even (b 0) or odd lanes of
 * two vectors of the padded row, loaded from src by row_lanes. A row's
 * last vector is stored whole where its plane has room: its lanes past the
 * row are columns past the padded input, zeros, and the next row's first
 * floats are zeros or are written after. (Phase by phase,
 * with the padding's columns and the rows' short ends in scalar loops,
 * these planes took 15 % of the U-Net's 28 -> 14 convolution, forward and
 * backward. Then each row was copied into a zero-padded buffer first, and
 * the even rows and the odd ones read in two passes.) */
static void phase_planes(const float *src, int64_t H, int64_t W, int64_t pad,
                         const struct gen_wide *g, float *d) {
    for (int64_t a = 0; a < g->sa; a++) /* the padding's rows */
        for (int64_t r = 0; r < g->Hq; r++)
            if (2 * r + a - pad < 0 || 2 * r + a - pad >= H)
                for (int64_t b = 0; b < g->sb; b++)
                    memset(d + (a * g->sb + b) * g->phase + r * g->Wq, 0,
                           (size_t)g->Wq * sizeof(float));
    for (int64_t ih = 0; ih < H; ih++) {
        const int64_t a = (ih + pad) % 2, r = (ih + pad) / 2;
        if (a >= g->sa || r >= g->Hq) continue;
        float *d0 = d + a * g->sb * g->phase + r * g->Wq;
        const float *row = src + ih * W;
        for (int64_t q = 0; q < g->Wq; q += 8) {
            const int64_t room = (g->Hq - r) * g->Wq - q, n = room < 8 ? room : 8;
            const __m256 v0 = row_lanes(row, W, 2 * q - pad),
                         v1 = row_lanes(row, W, 2 * q + 8 - pad);
            gen_avx2_store_head(d0 + q, gen_avx2_evens(v0, v1), n);
            if (g->sb == 2) gen_avx2_store_head(d0 + g->phase + q, gen_avx2_odds(v0, v1), n);
        }
    }
}

/* The m images' C planes on the wide grid g (zero-padded by pad; at stride
 * s > 1 split into the phases the taps read, kernels_impl.h) into xp, then
 * g->slack zeros. */
static void padded_planes(const float *x, int64_t img, int64_t m, int64_t C, int64_t H, int64_t W,
                          int64_t pad, const struct gen_wide *g, float *xp) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < C; c++) {
            const float *src = x + i * img + c * H * W;
            float *d = xp + (i * C + c) * g->plane;
            if (g->s == 1) {
                gen_avx2_pad_plane(src, H, W, pad, g->Hq, g->Wq, d);
                continue;
            }
            if (g->s == 2) {
                phase_planes(src, H, W, pad, g, d);
                continue;
            }
            for (int64_t a = 0; a < g->sa; a++)
                for (int64_t b = 0; b < g->sb; b++)
                    phase_plane(src, H, W, pad, g, a, b, d + (a * g->sb + b) * g->phase);
        }
    memset(xp + m * C * g->plane, 0, (size_t)g->slack * sizeof(float));
}

/* Floats of a channel's phase planes that gen_avx2_im2col_s2 keeps on the
 * stack (images up to about 60 x 60). */
#define S2_PLANES 4096

/* im2col at stride 2 (kernels.h's im2col_ld, the AVX2 table): a
 * channel's phase planes (phase_planes, on the stack), then each tap's row
 * of col as OH runs of OW floats of one phase, a vector at a time. Where
 * a channel's planes are larger, 0 (nothing done: the scalar im2col
 * serves it). (Its gathers of every other float, row by row in scalar
 * code, were a fifth of the U-Net's 64 -> 64 14 -> 7 convolution,
 * forward and backward.) */
int gen_avx2_im2col_s2(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t pad,
                       int64_t ldc, const float *x, float *col) {
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, 2, pad);
    if (g.plane + 8 > S2_PLANES) return 0;
    GEN_KFOR(GEN_KPAR_ROWS(C, C * KH * KW * g.OH * g.OW), c, C, {
        float planes[S2_PLANES];
        memset(planes + g.plane, 0, 8 * sizeof(float)); /* a last run's reads past the end */
        phase_planes(x + c * H * W, H, W, pad, &g, planes);
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *src = planes + gen_wide_tap(&g, kh, kw);
                float *dst = col + ((c * KH + kh) * KW + kw) * ldc;
                /* whole vectors, the next run storing over a run's spill;
                 * the last run's last vector by 4-, 2- and 1-float stores */
                for (int64_t oh = 0; oh < g.OH; oh++)
                    for (int64_t u = 0; u < g.OW; u += 8) {
                        const __m256 v = _mm256_loadu_ps(src + oh * g.Wq + u);
                        if (oh + 1 < g.OH || g.OW - u >= 8)
                            _mm256_storeu_ps(dst + oh * g.OW + u, v);
                        else
                            gen_avx2_store_head(dst + oh * g.OW + u, v, g.OW - u);
                    }
            }
    });
    return 1;
}

/* Columns [j, j + nb) of image i's wide grid, in blk (rows NB apart), into
 * out as out = blk + bias + beta out, less the garbage columns: the block
 * is cut where a row of the grid ends. */
static void block_to_out(const struct gen_wide *g, int64_t M, const float *blk, int64_t j,
                         int64_t nb, const float *bias, float beta, float *out, int64_t ldo) {
    for (int64_t t = 0; t < nb;) {
        const int64_t oh = (j + t) / g->Wq, ow = (j + t) % g->Wq;
        const int64_t left = g->Wq - ow < nb - t ? g->Wq - ow : nb - t; /* to the row's end */
        const int64_t run = ow < g->OW ? (g->OW - ow < left ? g->OW - ow : left) : 0;
        const __m256 vbeta = _mm256_set1_ps(beta);
        for (int64_t r = 0; r < M && run > 0; r++) {
            const float *s = blk + r * NB + t, bv = bias ? bias[r] : 0.0f;
            const __m256 vb = _mm256_set1_ps(bv);
            float *d = out + r * ldo + oh * g->OW + ow;
            for (int64_t u = 0; u < run; u += 8) { /* whole vectors, then the rest */
                const int64_t n = run - u < 8 ? run - u : 8;
                __m256 v = _mm256_add_ps(
                    n == 8 ? _mm256_loadu_ps(s + u) : gen_avx2_load_head(s + u, n), vb);
                if (beta != 0.0f) v = _mm256_fmadd_ps(vbeta, gen_avx2_load_head(d + u, n), v);
                gen_avx2_store_head(d + u, v, n);
            }
        }
        t += left;
    }
}

void gen_conv_gemm_avx2(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                        int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                        const float *x, const float *bias, float beta, float *out, int64_t ldo,
                        int64_t out_img, float *work) {
    if (M <= 0 || m <= 0) return;
    if (s2(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_avx2_conv(M, Wm, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work);
        return;
    }
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_avx2_conv(M, Wm, C, H, W, pad, m, img, x, bias, beta, out, ldo, out_img, work);
        return;
    }
    if (!takes(C, H, W, KH, KW, stride, pad)) return;
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t K = C * KH * KW;
    float *xp = work;
    const float **rows = (const float **)(void *)(xp + round8(m * C * g.plane + g.slack));
    float *blk = (float *)(void *)rows + round8(K * 2);
    padded_planes(x, img, m, C, H, W, pad, &g, xp);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t c = 0; c < C; c++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++)
                    rows[(c * KH + kh) * KW + kw] =
                        xp + (i * C + c) * g.plane + gen_wide_tap(&g, kh, kw);
        /* a block of columns for every row of Wm, in L1, then out; the last
         * block reads past the image's grid into the next plane or the
         * slack (finite), and its columns past the grid are dropped */
        for (int64_t j = 0; j < g.tw; j += NB) {
            gen_avx2_panels(M, K, Wm, rows, j, blk, NB);
            block_to_out(&g, M, blk, j, g.tw - j < NB ? g.tw - j : NB, bias, beta,
                         out + i * out_img, ldo);
        }
    }
}

/* ---- the weight gradient ---------------------------------------------------
 * dw (M x K) = sum over images i of dy_i (M x P) col_i^T (P x K). Both
 * operands run along P in memory: a 4 x 3 block of dw keeps one 8-lane
 * partial sum per element in registers while it walks P (4 + 3 loads feed
 * 12 FMAs) and sums its lanes once at the end. The col rows are slices of
 * the padded planes, dy is copied onto the same wide grid (zeros in the
 * garbage columns, rows rounded up to 8 floats). */
#define DW_MB 4
#define DW_JB 3

/* Images per group of conv_dw: their planes and wide dy in 7/8 of the
 * core's L2 (every block of rows of dy streams all of them by, and the
 * longer a block's walk the fewer its lane sums and stores). On a Zen 3
 * VM (512 KiB L2), one thread, 64 images in chunks of 8, against half the
 * L2 (two images a group against one): the U-Net's 3 x 3 stride-2 32 -> 32
 * at 28 -> 14 4.23 -> 3.68 ms, the GAN's 4 x 4 32 -> 64 13.1 -> 11.5, 1 x
 * 1 128 -> 64 at 14 x 14 3.75 -> 3.35; the whole L2 and more (eight
 * images) lost 10 %. */
static int64_t dw_group(int64_t M, int64_t C, const struct gen_wide *g) {
    const int64_t per = (C * g->plane + M * round8(g->tw)) * (int64_t)sizeof(float);
    const int64_t n = gen_l2_bytes() * 7 / 8 / (per > 0 ? per : 1);
    return n > 1 ? n : 1;
}

int64_t gen_conv_dw_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m) {
    if (s2(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_avx2_dw_work(M, C, H, W, pad, m);
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad))
        return gen_wino_avx2_dw_work(M, C, H, W, pad, m);
    if (!takes(C, H, W, KH, KW, stride, pad)) return 0; /* im2col and OpenBLAS serve it */
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t group = dw_group(M, C, &g), mg = m < group ? m : group;
    /* planes, dy on the wide grid, where each tap reads (int64) */
    return round8(mg * C * g.plane + g.slack) + mg * M * round8(g.tw) + round8(2 * C * KH * KW);
}

/* The 8-lane sums of four vectors, in order: lanes added in pairs (0 + 1,
 * 2 + 3) and pairs of pairs by hadd, then the two halves. */
static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* The block (kernels_impl.h): rows past mn and taps past kn repeat the
 * last one and are not stored. */
void gen_avx2_dw_block(int64_t mn, int64_t kn, int64_t m, int64_t len, const float *a,
                       int64_t a_img, int64_t a_row, const float *const b[DW_JB], int64_t b_img,
                       float *dw, int64_t ldw, int acc) {
    __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00;
    __m256 s20 = s00, s21 = s00, s22 = s00, s30 = s00, s31 = s00, s32 = s00;
    for (int64_t i = 0; i < m; i++) {
        const float *a0 = a + i * a_img, *a1 = a0 + (mn > 1 ? 1 : mn - 1) * a_row;
        const float *a2 = a0 + (mn > 2 ? 2 : mn - 1) * a_row;
        const float *a3 = a0 + (mn > 3 ? 3 : mn - 1) * a_row;
        const float *c0 = b[0] + i * b_img, *c1 = b[kn > 1 ? 1 : 0] + i * b_img,
                    *c2 = b[kn > 2 ? 2 : 0] + i * b_img;
        for (int64_t t = 0; t < len; t += 8) {
            const __m256 v0 = _mm256_loadu_ps(c0 + t), v1 = _mm256_loadu_ps(c1 + t),
                         v2 = _mm256_loadu_ps(c2 + t);
#define DW_ROW(r)                                                                                  \
    do {                                                                                           \
        __m256 u = _mm256_loadu_ps(a##r + t);                                                      \
        __asm__("" : "+x"(u)); /* one load, not one folded into each of the three FMAs */          \
        s##r##0 = _mm256_fmadd_ps(u, v0, s##r##0);                                                 \
        s##r##1 = _mm256_fmadd_ps(u, v1, s##r##1);                                                 \
        s##r##2 = _mm256_fmadd_ps(u, v2, s##r##2);                                                 \
    } while (0)
            DW_ROW(0);
            DW_ROW(1);
            DW_ROW(2);
            DW_ROW(3);
#undef DW_ROW
        }
    }
    /* the 12 sums, row by row, four to a reduction */
    float t[DW_MB * DW_JB];
    _mm_storeu_ps(t, hsum4(s00, s01, s02, s10));
    _mm_storeu_ps(t + 4, hsum4(s11, s12, s20, s21));
    _mm_storeu_ps(t + 8, hsum4(s22, s30, s31, s32));
    for (int64_t r = 0; r < mn; r++)
        for (int64_t j = 0; j < kn; j++)
            dw[r * ldw + j] = (acc ? dw[r * ldw + j] : 0.0f) + t[r * DW_JB + j];
}

void gen_conv_dw_avx2(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                      const float *x, float *dw, float *work) {
    const int64_t K = C * KH * KW;
    if (M <= 0 || K <= 0) return;
    if (s2(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_avx2_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work);
        return;
    }
    if (gen_wino_fits(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_avx2_dw(M, dy, dy_img, C, H, W, pad, m, img, x, dw, work);
        return;
    }
    if (!takes(C, H, W, KH, KW, stride, pad)) return;
    const struct gen_wide g = gen_wide_geo(H, W, KH, KW, stride, pad);
    const int64_t P = g.OH * g.OW, tw8 = round8(g.tw), group = dw_group(M, C, &g);
    if (m <= 0) memset(dw, 0, (size_t)(M * K) * sizeof(float));
    const int64_t mg0 = m < group ? m : group;
    float *xp = work, *dyw = xp + round8(mg0 * C * g.plane + g.slack);
    int64_t *tap = (int64_t *)(void *)(dyw + mg0 * M * tw8);
    for (int64_t c = 0; c < C; c++) /* where tap k reads, from an image's first plane */
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                tap[(c * KH + kh) * KW + kw] = c * g.plane + gen_wide_tap(&g, kh, kw);
    for (int64_t i0 = 0; i0 < m; i0 += group) { /* the groups' sums in order */
        const int64_t mg = m - i0 < group ? m - i0 : group;
        padded_planes(x + i0 * img, img, mg, C, H, W, pad, &g, xp);
        for (int64_t i = 0; i < mg; i++) /* dy's rows onto the wide grid, zeros between */
            for (int64_t co = 0; co < M; co++) {
                float *d = dyw + (i * M + co) * tw8;
                gen_avx2_pad_plane(dy + (i0 + i) * dy_img + co * P, g.OH, g.OW, 0, g.OH, g.Wq, d);
                memset(d + g.tw, 0, (size_t)(tw8 - g.tw) * sizeof(float));
            }
        /* co outer: the block's 4 rows of dy stay in L1 while the taps stream by */
        for (int64_t co0 = 0; co0 < M; co0 += DW_MB)
            for (int64_t k0 = 0; k0 < K; k0 += DW_JB) {
                const int64_t kn = K - k0 < DW_JB ? K - k0 : DW_JB;
                const float *b[DW_JB];
                for (int64_t j = 0; j < DW_JB; j++) b[j] = xp + tap[k0 + (j < kn ? j : kn - 1)];
                gen_avx2_dw_block(M - co0 < DW_MB ? M - co0 : DW_MB, kn, mg, tw8, dyw + co0 * tw8,
                                  M * tw8, tw8, b, C * g.plane, dw + co0 * K + k0, K, i0 > 0);
            }
    }
}

/* ---- the strided input gradient --------------------------------------------
 * dx = beta dx + col2im(Wm^T dy) at stride 2 by sub-pixel phases. Input row
 * ih = 2 r + a receives only from the taps kh = a + pad (mod 2), each from
 * output row oh = r + (a + pad - kh) / 2, and columns alike: so phase (a,
 * b) of dx (its rows = a, columns = b, mod 2) is a stride-1 correlation of
 * dy with that class of taps, an implicit GEMM whose A is the class of Wm
 * transposed (C x M nh nw, packed once by conv_dx_prep) and whose B rows
 * are slices of dy's zero-padded planes on a wide grid of Wq columns. Each
 * class's taps are used once, none of them zero, and no dcol is written
 * or added back: phases (a, 0) and (a, 1) are computed a block of 16
 * columns at a time side by side and stored interleaved into dx's rows. */

/* Taps of class rho (kh = rho mod 2) among K taps. */
static inline int64_t class_taps(int64_t K, int64_t rho) {
    return (K - rho + 1) / 2;
}

/* Where class (rh, rw) of the prep starts: the classes in order (0, 0),
 * (0, 1), (1, 0), (1, 1), each C x M nh nw packed as gen_avx2_pack does. */
static int64_t class_at(int64_t M, int64_t C, int64_t KH, int64_t KW, int64_t rh, int64_t rw) {
    int64_t at = 0;
    for (int64_t k = 0; k < rh * 2 + rw; k++)
        at += gen_avx2_pack_floats(C, M * class_taps(KH, k / 2) * class_taps(KW, k % 2));
    return at;
}

int64_t gen_conv_dx_avx2_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                   int64_t KW, int64_t stride, int64_t pad) {
    if (s2(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_avx2_dx_prep_work(M, C);
    return class_at(M, C, KH, KW, 2, 0); /* all four classes */
}

void gen_conv_dx_avx2_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                           int64_t stride, int64_t pad, const float *Wm, float *prep) {
    if (s2(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_avx2_dx_prep(M, C, Wm, prep);
        return;
    }
    const int64_t T = KH * KW;
    for (int64_t rh = 0; rh < 2; rh++)
        for (int64_t rw = 0; rw < 2; rw++) {
            const int64_t nh = class_taps(KH, rh), nw = class_taps(KW, rw), K = M * nh * nw;
            float *p = prep + class_at(M, C, KH, KW, rh, rw);
            for (int64_t q = 0; q * MR < C; q++)
                for (int64_t k = 0; k < K; k++) {
                    const int64_t co = k / (nh * nw), kh = rh + 2 * (k / nw % nh);
                    const int64_t kw = rw + 2 * (k % nw);
                    for (int64_t r = 0; r < MR; r++) {
                        const int64_t c = q * MR + r;
                        p[(q * K + k) * MR + r] = c < C ? Wm[(co * C + c) * T + kh * KW + kw] : 0;
                    }
                }
        }
}

/* The geometry: dy's planes padded by PT rows above and PL columns to the
 * left (and enough below and to the right) into Hd x Wq planes; phase a
 * has hr[a] rows, phase b wr[b] columns; the taps of kh read dy's row r +
 * dh(a, kh) for dx's row r of phase a. */
struct dx_geo {
    int64_t OH, OW, PT, PL, Hd, Wq, plane, slack, hr[2], wr[2];
};

static inline int64_t dx_shift(int64_t a, int64_t pad, int64_t k) {
    return (a + pad - k) / 2; /* exact: k = a + pad mod 2 */
}

static struct dx_geo dx_geo(int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t pad) {
    struct dx_geo g = {.OH = gen_conv_out(H, KH, 2, pad), .OW = gen_conv_out(W, KW, 2, pad)};
    int64_t pb = 0, pr = 0;
    for (int64_t a = 0; a < 2; a++) {
        g.hr[a] = (H - a + 1) / 2, g.wr[a] = (W - a + 1) / 2;
        for (int64_t k = (a + pad) % 2; k < KH; k += 2) {
            const int64_t d = dx_shift(a, pad, k);
            if (-d > g.PT) g.PT = -d;
            if (g.hr[a] - 1 + d - (g.OH - 1) > pb) pb = g.hr[a] - 1 + d - (g.OH - 1);
        }
        for (int64_t k = (a + pad) % 2; k < KW; k += 2) {
            const int64_t d = dx_shift(a, pad, k);
            if (-d > g.PL) g.PL = -d;
            if (g.wr[a] - 1 + d - (g.OW - 1) > pr) pr = g.wr[a] - 1 + d - (g.OW - 1);
        }
    }
    g.Hd = g.PT + g.OH + pb, g.Wq = g.PL + g.OW + pr;
    if (g.Wq < g.wr[0]) g.Wq = g.wr[0];
    g.plane = g.Hd * g.Wq;
    g.slack = g.Wq + NB + 16; /* a block's reads past the last plane */
    return g;
}

/* The geometries conv_dx takes: stride 2, both classes of taps non-empty in
 * each direction, at least 8 rows of dx for the micro-kernel (C), and
 * where it beat the column matrix, OpenBLAS and col2im. Measured on a Zen
 * 3 VM, one thread, 64 images in ops_conv's chunks, against that path
 * (min of 10-20, two or three runs): 3 x 3 32 -> 32 28 -> 14 0.65-0.66,
 * 64 -> 64 14 -> 7 0.78-0.85, 32 -> 32 32 -> 16 0.51-0.63, 64 -> 64 16
 * -> 8 0.76; 4 x 4 32 -> 32 28 -> 14 0.58-0.60, 32 -> 64 14 -> 7
 * 0.88-0.94, 64 -> 64 14 -> 7 0.75-0.77. So it takes those whose dx fills
 * at least 3/4 of the computed columns (4 x 4 phases, 16 of 32, lost:
 * 128 -> 128 8 -> 4 1.34-1.40) and whose sums over M and a class of taps
 * are short enough that col2im's share of the other path is large (M KH
 * KW <= 1024: 3 x 3 128 -> 128 14 -> 7 0.88-1.07, 4 x 4 64 -> 128 0.92-
 * 1.06 and 128 -> 256 1.07-1.08 were even or lost). */
static int dx_takes(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                    int64_t stride, int64_t pad) {
    if (stride != 2 || KH < 2 || KW < 2 || C < 8 || M * KH * KW > 1024) return 0;
    const struct dx_geo g = dx_geo(H, W, KH, KW, pad);
    const int64_t useful = g.hr[0] * g.wr[0], computed = (g.hr[0] * g.Wq + NB - 1) / NB * NB;
    return 4 * useful >= 3 * computed;
}

int64_t gen_conv_dx_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m) {
    if (s2(M, C, H, W, KH, KW, stride, pad)) return gen_wino_s2_avx2_dx_work(M, C, H, W, pad, m);
    if (!dx_takes(M, C, H, W, KH, KW, stride, pad)) return 0;
    const struct dx_geo g = dx_geo(H, W, KH, KW, pad);
    const int64_t kmax = M * class_taps(KH, 0) * class_taps(KW, 0);
    /* dy's planes, two phases' row pointers (as floats), two blocks */
    return round8(m * M * g.plane + g.slack) + round8(4 * kmax) +
           2 * gen_avx2_pack_floats(C, 1) * NB + 8; /* the last row's 8-float loads */
}

/* n2 <= 16 floats of a row of dx, interleaved from lo (its even columns)
 * and hi (its odd ones): dx = lo/hi + beta dx. */
static inline void interleave_out(const float *lo, const float *hi, int64_t n2, float beta,
                                  float *d) {
    const __m256 x = _mm256_loadu_ps(lo), y = _mm256_loadu_ps(hi);
    const __m256 l = _mm256_unpacklo_ps(x, y), h = _mm256_unpackhi_ps(x, y);
    __m256 v0 = _mm256_permute2f128_ps(l, h, 0x20), v1 = _mm256_permute2f128_ps(l, h, 0x31);
    if (n2 == 16) {
        if (beta != 0.0f) {
            v0 = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(d), v0);
            v1 = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(d + 8), v1);
        }
        _mm256_storeu_ps(d, v0);
        _mm256_storeu_ps(d + 8, v1);
        return;
    }
    const int64_t n0 = n2 < 8 ? n2 : 8;
    if (beta != 0.0f) v0 = _mm256_fmadd_ps(_mm256_set1_ps(beta), gen_avx2_load_head(d, n0), v0);
    gen_avx2_store_head(d, v0, n0);
    if (n2 <= 8) return;
    if (beta != 0.0f)
        v1 = _mm256_fmadd_ps(_mm256_set1_ps(beta), gen_avx2_load_head(d + 8, n2 - 8), v1);
    gen_avx2_store_head(d + 8, v1, n2 - 8);
}

/* Columns [j, j + nb) of phase row a's wide grid, even phase in b0 and odd
 * in b1 (C rows NB apart), into dx (C planes H x W). */
static void phases_to_dx(const struct dx_geo *g, int64_t C, int64_t H, int64_t W, int64_t a,
                         const float *b0, const float *b1, int64_t j, int64_t nb, float beta,
                         float *dx) {
    for (int64_t t = 0; t < nb;) {
        const int64_t r = (j + t) / g->Wq, q = (j + t) % g->Wq;
        const int64_t left = g->Wq - q < nb - t ? g->Wq - q : nb - t; /* to the row's end */
        const int64_t run = q < g->wr[0] ? (g->wr[0] - q < left ? g->wr[0] - q : left) : 0;
        const int64_t n2 = 2 * run < W - 2 * q ? 2 * run : W - 2 * q; /* dx's floats */
        for (int64_t c = 0; c < C && run > 0; c++) {
            float *d = dx + (c * H + 2 * r + a) * W + 2 * q;
            for (int64_t u = 0; u < n2; u += 16)
                interleave_out(b0 + c * NB + t + u / 2, b1 + c * NB + t + u / 2,
                               n2 - u < 16 ? n2 - u : 16, beta, d + u);
        }
        t += left;
    }
}

void gen_conv_dx_avx2(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C,
                      int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                      int64_t m, int64_t img, float beta, float *dx, float *work) {
    if (m <= 0) return;
    if (s2(M, C, H, W, KH, KW, stride, pad)) {
        gen_wino_s2_avx2_dx(M, prep, dy, dy_img, C, H, W, pad, m, img, beta, dx, work);
        return;
    }
    if (!dx_takes(M, C, H, W, KH, KW, stride, pad)) return;
    const struct dx_geo g = dx_geo(H, W, KH, KW, pad);
    const int64_t kmax = M * class_taps(KH, 0) * class_taps(KW, 0);
    float *dyp = work;
    const float **rows = (const float **)(void *)(dyp + round8(m * M * g.plane + g.slack));
    float *blk = (float *)(void *)rows + round8(4 * kmax);
    float *blk1 = blk + gen_avx2_pack_floats(C, 1) * NB;
    for (int64_t i = 0; i < m; i++) /* dy's planes, padded */
        for (int64_t co = 0; co < M; co++)
            pad_plane_at(dy + i * dy_img + co * g.OH * g.OW, g.OH, g.OW, g.PT, g.PL, g.Hd, g.Wq,
                         dyp + (i * M + co) * g.plane);
    memset(dyp + m * M * g.plane, 0, (size_t)g.slack * sizeof(float));
    for (int64_t i = 0; i < m; i++)
        for (int64_t a = 0; a < 2 && g.hr[a] > 0; a++) {
            const int64_t rh = (a + pad) % 2, nh = class_taps(KH, rh), tw = g.hr[a] * g.Wq;
            const float *Ab[2];
            int64_t Kb[2];
            for (int64_t b = 0; b < 2; b++) {
                const int64_t rw = (b + pad) % 2, nw = class_taps(KW, rw);
                const float **rb = rows + b * kmax;
                Kb[b] = M * nh * nw, Ab[b] = prep + class_at(M, C, KH, KW, rh, rw);
                for (int64_t co = 0; co < M; co++)
                    for (int64_t u = 0; u < nh; u++)
                        for (int64_t v = 0; v < nw; v++)
                            rb[(co * nh + u) * nw + v] =
                                dyp + (i * M + co) * g.plane +
                                (g.PT + dx_shift(a, pad, rh + 2 * u)) * g.Wq + g.PL +
                                dx_shift(b, pad, rw + 2 * v);
            }
            for (int64_t j = 0; j < tw; j += NB) {
                gen_avx2_panels(C, Kb[0], Ab[0], rows, j, blk, NB);
                gen_avx2_panels(C, Kb[1], Ab[1], rows + kmax, j, blk1, NB);
                phases_to_dx(&g, C, H, W, a, blk, blk1, j, tw - j < NB ? tw - j : NB, beta,
                             dx + i * img);
            }
        }
}
