/* kernels_impl.h - private to src/kernels: the per-ISA tables, the scalar
 * functions the SIMD tables fall back to, and the blocking constants every
 * ISA shares so that each one is deterministic for any thread count. */
#ifndef GEN_KERNELS_IMPL_H
#define GEN_KERNELS_IMPL_H

#include <stdint.h>

#include "gen/core.h"
#include "gen/kernels.h"

/* One table per ISA; the SIMD ones exist only when the build defines
 * GEN_HAVE_AVX2 / GEN_HAVE_AVX512 (each compiled with its own -m flags). */
extern const struct gen_kernels gen_kernels_scalar;
#ifdef GEN_HAVE_AVX2
extern const struct gen_kernels gen_kernels_avx2;
#endif
#ifdef GEN_HAVE_AVX512
extern const struct gen_kernels gen_kernels_avx512;
#endif
#ifdef GEN_HAVE_AVX512BF16
/* --precision bf16 (gemm_avx512bf16.c): overwrites t's name and matrix
 * products (gemm, the convolutions and their kernels' preparation, the
 * products over packed operands) with the bf16 ones. dispatch.c
 * fills the "avx512bf16" table as a copy of gen_kernels_avx512 with these. */
void gen_kernels_avx512bf16_fill(struct gen_kernels *t);
/* The calling thread's buffer for packed bf16 operands, GEN_BF16_BUF_PAIRS
 * 32-bit words (64-byte aligned), allocated on first use and kept. */
#define GEN_BF16_BUF_PAIRS ((size_t)192 * (1152 + 192))
uint32_t *gen_bf16_pack_buffer(void);
/* Products of operands packed whole, on the calling thread (Winograd's):
 * A (M x K, row stride lda) packed into gen_bf16_pack_a_floats(M, K)
 * 32-bit words of pairs; C = A B with B as 48-column panels of pairs;
 * gen_bf16_gemm is the table's gemm on this thread (a product that is
 * not empty). */
int64_t gen_bf16_pack_a_floats(int64_t M, int64_t K);
void gen_bf16_pack_a(int64_t M, int64_t K, const float *A, int64_t lda, uint32_t *ap);
void gen_bf16_gemm_panels(int64_t M, int64_t N, int64_t kp, const uint32_t *ap,
                          const uint32_t *bp, float *C, int64_t ldc);
void gen_bf16_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* Winograd's F(2 x 2, 3 x 3) on bf16 operands (winograd_avx512bf16.c):
 * the entry points of winograd_avx512.c for the geometries gen_wino_fits
 * accepts, the transformed kernels and inputs rounded to bf16 pairs. */
int64_t gen_wino_bf16_prep_work(int64_t M, int64_t C);
void gen_wino_bf16_prep(int64_t M, int64_t C, const float *Wm, float *prep);
int64_t gen_wino_bf16_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                                int64_t m);
void gen_wino_bf16_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W,
                        int64_t pad, int64_t m, int64_t img, const float *x, const float *bias,
                        float beta, float *out, int64_t ldo, int64_t out_img, float *work);
int64_t gen_wino_bf16_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                              int64_t m);
void gen_wino_bf16_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H,
                      int64_t W, int64_t pad, int64_t m, int64_t img, const float *x, float *dw,
                      float *work);
#endif
#ifdef GEN_HAVE_AMX
/* --precision bf16 on AMX tiles (gemm_amx.c): overwrites t's name and
 * GEMM (gemm, gemm_bias) with the AMX ones. dispatch.c fills the "amx"
 * table as a copy of the "avx512bf16" one with these, where CPUID reports
 * AMX-BF16 and the kernel grants the tiles' state. */
void gen_kernels_amx_fill(struct gen_kernels *t);
#endif

/* Element-wise kernels go parallel above this many elements, in blocks of
 * GEN_KBLOCK elements (64 KiB of floats). */
#define GEN_KPAR_MIN ((int64_t)1 << 16)
#define GEN_KBLOCK ((int64_t)1 << 14)
/* Row kernels (and loops over channels, column blocks) go parallel when the
 * loop has more than one iteration and its work, in elements, exceeds this. */
#define GEN_KPAR_ROWS_MIN ((int64_t)1 << 14)
#define GEN_KPAR_ROWS(iters, work) ((iters) > 1 && (work) > GEN_KPAR_ROWS_MIN)

/* for (int64_t v = 0; v < n; v++) { BODY }: across the threads when `par`
 * holds (one of the thresholds above) and no parallel region is active,
 * else on this thread without entering OpenMP at all. A region that its
 * `if` clause makes serial still allocates a team and wakes a futex at its
 * end, about 1 us: more than a kernel call on a row of 128 floats costs,
 * and a Transformer step makes some 10^5 such calls. Every parallel loop
 * splits work by rows, channels or fixed-size blocks (or, in col_sum, by
 * thread, where each output is one column's sum whoever computes it), so
 * results never depend on the thread count or on which path ran. */
#ifdef _OPENMP
#include <omp.h>
#define GEN_KPRAGMA(x) _Pragma(#x)
#define GEN_KFOR(par, v, n, ...)                                                                  \
    do {                                                                                          \
        const int64_t v##_n = (n);                                                                \
        if ((par) && !omp_in_parallel()) {                                                        \
            GEN_KPRAGMA(omp parallel for schedule(static))                                        \
            for (int64_t v = 0; v < v##_n; v++) { __VA_ARGS__; }                                  \
        } else {                                                                                  \
            for (int64_t v = 0; v < v##_n; v++) { __VA_ARGS__; }                                  \
        }                                                                                         \
    } while (0)
#else
#define GEN_KFOR(par, v, n, ...)                                                                  \
    do {                                                                                          \
        const int64_t v##_n = (n);                                                                \
        for (int64_t v = 0; v < v##_n; v++) { __VA_ARGS__; }                                      \
    } while (0)
#endif

/* The threads a GEN_KFOR would run on: 1 inside a parallel region. */
static inline int64_t gen_kthreads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* BODY for each block [lo, hi) of GEN_KBLOCK elements of [0, n), across
 * the threads above GEN_KPAR_MIN elements: the element-wise kernels. */
#define GEN_KBLOCKS(n, lo, hi, ...)                                                               \
    GEN_KFOR((n) > GEN_KPAR_MIN, lo##_k, ((n) + GEN_KBLOCK - 1) / GEN_KBLOCK,                     \
             const int64_t lo = lo##_k * GEN_KBLOCK;                                              \
             const int64_t hi = lo + GEN_KBLOCK < (n) ? lo + GEN_KBLOCK : (n); __VA_ARGS__)

/* sum/sumsq: each block of GEN_KSUM_BLOCK elements is summed in double in
 * its own order, then block sums are added in index order (at most
 * GEN_KSUM_FAN blocks per parallel pass), the same for any thread count. */
#define GEN_KSUM_BLOCK ((int64_t)1 << 13)
#define GEN_KSUM_FAN 64

/* The numerically careful constants shared by every ISA. */
#define GEN_GELU_K0 0.7978845608028654f /* sqrt(2/pi) */
#define GEN_GELU_K1 0.044715f

/* sum/sumsq driver: block k covers [k B, min((k+1) B, n)) and is reduced by
 * `blk`; the block sums are then added in index order. */
static inline double gen_ksum_blocks(int64_t n, const float *x,
                                     double (*blk)(int64_t n, const float *x)) {
    const int64_t nb = (n + GEN_KSUM_BLOCK - 1) / GEN_KSUM_BLOCK;
    double total = 0.0;
    for (int64_t b0 = 0; b0 < nb; b0 += GEN_KSUM_FAN) {
        const int64_t nf = nb - b0 < GEN_KSUM_FAN ? nb - b0 : GEN_KSUM_FAN;
        double part[GEN_KSUM_FAN];
        GEN_KFOR(nf > 1 && nf * GEN_KSUM_BLOCK >= GEN_KPAR_MIN, k, nf, {
            const int64_t lo = (b0 + k) * GEN_KSUM_BLOCK;
            const int64_t hi = lo + GEN_KSUM_BLOCK < n ? lo + GEN_KSUM_BLOCK : n;
            part[k] = blk(hi - lo, x + lo);
        });
        for (int64_t k = 0; k < nf; k++) total += part[k];
    }
    return total;
}

/* The entries of a table that are its other kernels (static, in the same
 * file) with arguments fixed: the accumulating *_bwd kernels are the *_grad
 * ones with GEN_GRAD_ADD, adam is adam_step without L2, and the group norm
 * entries are gn_fwd and gn_grad, plain or with SiLU. Each kernels file
 * expands it once. */
#define GEN_TABLE_WRAPPERS                                                                    \
    static void relu_bwd(int64_t n, const float *x, const float *dy, float *dx) {             \
        relu_grad(n, x, dy, dx, GEN_GRAD_ADD);                                                \
    }                                                                                         \
    static void leaky_relu_bwd(int64_t n, float slope, const float *x, const float *dy,       \
                               float *dx) {                                                   \
        leaky_relu_grad(n, slope, x, dy, dx, GEN_GRAD_ADD);                                   \
    }                                                                                         \
    static void gelu_bwd(int64_t n, const float *x, const float *dy, float *dx) {             \
        gelu_grad(n, x, dy, dx, GEN_GRAD_ADD);                                                \
    }                                                                                         \
    static void silu_bwd(int64_t n, const float *x, const float *dy, float *dx) {             \
        silu_grad(n, x, dy, dx, GEN_GRAD_ADD);                                                \
    }                                                                                         \
    static void sigmoid_bwd(int64_t n, const float *y, const float *dy, float *dx) {          \
        sigmoid_grad(n, y, dy, dx, GEN_GRAD_ADD);                                             \
    }                                                                                         \
    static void tanh_bwd(int64_t n, const float *y, const float *dy, float *dx) {             \
        tanh_grad(n, y, dy, dx, GEN_GRAD_ADD);                                                \
    }                                                                                         \
    static void exp_bwd(int64_t n, const float *y, const float *dy, float *dx) {              \
        exp_grad(n, y, dy, dx, GEN_GRAD_ADD);                                                 \
    }                                                                                         \
    static void softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy,      \
                            float *dx) {                                                      \
        softmax_grad(rows, cols, y, dy, dx, GEN_GRAD_ADD);                                    \
    }                                                                                         \
    static void log_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy,  \
                                float *dx) {                                                  \
        log_softmax_grad(rows, cols, y, dy, dx, GEN_GRAD_ADD);                                \
    }                                                                                         \
    static void layernorm_bwd(int64_t rows, int64_t cols, const float *x, const float *gamma, \
                              const float *mean, const float *rstd, const float *dy,          \
                              float *dx, float *dgamma, float *dbeta) {                       \
        layernorm_grad(rows, cols, x, gamma, mean, rstd, dy, dx, GEN_GRAD_ADD, dgamma, dbeta); \
    }                                                                                         \
    static void adam(int64_t n, float *p, const float *g, float *m, float *v, float lr,       \
                     float b1, float b2, float eps, float wd, float bc1, float bc2) {         \
        const struct gen_adam_step h = {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps,       \
                                        .wd = wd, .bc1 = bc1, .bc2 = bc2};                    \
        adam_step(n, p, g, m, v, &h);                                                         \
    }                                                                                         \
    static void groupnorm_fwd(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,    \
                              const float *gamma, const float *beta, float eps, float *y,     \
                              float *mean, float *rstd) {                                     \
        gn_fwd(N, C, HW, G, x, NULL, gamma, beta, eps, y, mean, rstd, 0);                     \
    }                                                                                         \
    static void groupnorm_silu_fwd(int64_t N, int64_t C, int64_t HW, int64_t G,               \
                                   const float *x, const float *shift, const float *gamma,    \
                                   const float *beta, float eps, float *y, float *mean,       \
                                   float *rstd) {                                             \
        gn_fwd(N, C, HW, G, x, shift, gamma, beta, eps, y, mean, rstd, 1);                    \
    }                                                                                         \
    static void groupnorm_grad(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,   \
                               const float *gamma, const float *mean, const float *rstd,      \
                               const float *dy, float *dx, enum gen_grad_mode mode,           \
                               float *dgamma, float *dbeta, double *work) {                   \
        gn_grad(N, C, HW, G, x, NULL, gamma, NULL, mean, rstd, dy, NULL, dx, mode, dgamma,    \
                dbeta, NULL, work);                                                           \
    }                                                                                         \
    static void groupnorm_silu_grad(                                                          \
        int64_t N, int64_t C, int64_t HW, int64_t G, const float *x, const float *shift,      \
        const float *gamma, const float *beta, const float *mean, const float *rstd,          \
        const float *dy, float *dh, float *dx, enum gen_grad_mode mode, float *dgamma,        \
        float *dbeta, float *dshift, double *work) {                                          \
        float *d = mode == GEN_GRAD_SET && dx ? dx : dh; /* dh's store, read back in place */ \
        GEN_ASSERT(d); /* scratch given where dx cannot hold dh */                            \
        gn_grad(N, C, HW, G, x, shift, gamma, beta, mean, rstd, dy, d, dx, mode, dgamma,      \
                dbeta, dshift, work);                                                         \
    }

/* The calling thread's packing buffer of one GEMM (kind), `bytes` long (the
 * same at every call of a kind), 64-byte aligned: allocated on first use
 * and kept for the process's life, so that a training step allocates
 * nothing; leak checkers see every one as reachable (dispatch.c). */
enum gen_pack_kind {
    GEN_PACK_AVX2,
    GEN_PACK_AVX512,
    GEN_PACK_BF16,
    GEN_PACK_KSPLIT,  /* gen_gemm_split's sums of a product's second half */
    GEN_PACK_TURNED,  /* gen_sgemm_avx512_mt's C^T of a product it turns */
    GEN_PACK_LN_SUMS, /* layer norm's backward: its parts' dgamma and dbeta sums */
    GEN_PACK_KINDS
};
void *gen_pack_buffer(enum gen_pack_kind kind, size_t bytes);

/* Bytes of this core's L2 cache as the C library reports it (sysconf), or
 * 512 KiB where it reports none; within [256 KiB, 4 MiB]. Asked once. */
int64_t gen_l2_bytes(void);

/* A GEMM on the calling thread, with gen_gemm_ld's arguments and a bias
 * row (bias[j] added to column j, once; NULL for none). */
typedef void (*gen_gemm_fn)(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                            const float *bias, float *C, int64_t ldc);
/* gemm split over the threads when called outside a parallel region and
 * the product is big enough (2 M N K >= 4e6): in whole mr-row panels along
 * M when M / mr >= N / nr, else in whole nr-column panels along N, so that
 * with a gemm whose every element of C is the same sequence of operations
 * whatever the blocking, the result is the same for any thread count.
 * Else one call on this thread (dispatch.c). Where K is long against M and
 * N (a weight gradient's), K is split in two halves as well, at any thread
 * count, the second's sums added to C last. An empty product (M or N 0:
 * nothing; K 0 or alpha 0: C = beta C + bias) never reaches gemm. */
void gen_gemm_split(gen_gemm_fn gemm, int64_t mr, int64_t nr, int ta, int tb, int64_t M,
                    int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                    int64_t ldb, float beta, const float *bias, float *C, int64_t ldc);
/* A gen_gemm_fn whose operands are held as floats or as bf16 (struct
 * gen_chan), and gen_gemm_split of it: the same split. */
typedef void (*gen_gemm_chan_fn)(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                 struct gen_chan A, int64_t lda, struct gen_chan B, int64_t ldb,
                                 float beta, const float *bias, float *C, int64_t ldc);
void gen_gemm_split_chan(gen_gemm_chan_fn gemm, int64_t mr, int64_t nr, int ta, int tb, int64_t M,
                         int64_t N, int64_t K, float alpha, struct gen_chan A, int64_t lda,
                         struct gen_chan B, int64_t ldb, float beta, const float *bias, float *C,
                         int64_t ldc);

/* The AVX2 table's convolution (conv_avx2.c): the table's conv_gemm,
 * conv_gemm_work, conv_gemm_images, conv_prep, conv_prep_work, conv_dw,
 * conv_dw_work and the four conv_dx kernels, and its im2col at stride 2
 * (1 where it took the geometry, 0: nothing done). */
int64_t gen_conv_gemm_avx2_images(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                  int64_t KW, int64_t stride, int64_t pad);
int64_t gen_conv_dw_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m);
void gen_conv_dw_avx2(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                      const float *x, float *dw, float *work);
int64_t gen_conv_gemm_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t stride, int64_t pad, int64_t m);
void gen_conv_gemm_avx2(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                        int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                        const float *x, const float *bias, float beta, float *out, int64_t ldo,
                        int64_t out_img, float *work);
int64_t gen_conv_prep_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t stride, int64_t pad);
void gen_conv_prep_avx2(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                        int64_t stride, int64_t pad, const float *Wm, float *prep);
int gen_avx2_im2col_s2(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t pad,
                       int64_t ldc, const float *x, float *col);
int64_t gen_conv_dx_avx2_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m);
int64_t gen_conv_dx_avx2_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                   int64_t KW, int64_t stride, int64_t pad);
void gen_conv_dx_avx2_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                           int64_t stride, int64_t pad, const float *Wm, float *prep);
void gen_conv_dx_avx2(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C,
                      int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                      int64_t m, int64_t img, float beta, float *dx, float *work);

/* Its products, which the AVX2 Winograd convolution (winograd_avx2.c)
 * shares. gen_avx2_panels: c[r ldc + 0..16) = sum over k < K of Wm[r][k]
 * brow[k][j + 0..16) for r < M, Wm packed by gen_avx2_pack (panels of
 * GEN_AVX2_MR rows, k-major: panel q at + q K MR, (r, k) at + k MR + r,
 * zeros past row M: gen_avx2_pack_floats(M, K) floats). gen_avx2_dw_block:
 * dw[r ldw + j] (+)= sum over images i < m, t < len of a[r](i)[t]
 * b[j](i)[t] for r < mn <= 4, j < kn <= 3, with a[r](i) = a + i a_img + r
 * a_row and b[j](i) = b[j] + i b_img, len a multiple of 8; added to dw's
 * values when acc. */
#define GEN_AVX2_MR 6
static inline int64_t gen_avx2_pack_floats(int64_t M, int64_t K) {
    return (M + GEN_AVX2_MR - 1) / GEN_AVX2_MR * GEN_AVX2_MR * K;
}
void gen_avx2_pack(int64_t M, int64_t K, const float *Wm, int64_t ldw, float *prep);
/* The micro-kernel of both: c[r ldc + 0..16) (+)= sum over k < kc of
 * ap[k GEN_AVX2_MR + r] brow[k][j + 0..16) for r < mr <= GEN_AVX2_MR,
 * added to c's values when acc; each c element the same operations
 * whatever mr. */
void gen_avx2_tile(int64_t kc, const float *restrict ap, const float *const *brow, int64_t j,
                   float *c, int64_t ldc, int64_t mr, int acc);
/* The same with row k of B at bp + 16 k (a GEMM's packed panel), and
 * bias[0..16) (NULL: none; acc 0) added to each row's sums as they are
 * stored: the bits of the sums stored, then the bias added. */
void gen_avx2_tile_packed(int64_t kc, const float *restrict ap, const float *restrict bp,
                          const float *bias, float *c, int64_t ldc, int64_t mr, int acc);
/* The same for a panel of A read in place: (r, k) at a[r arow + k
 * astep], A stored K x M (arow 1, astep its row stride) or M x K (arow
 * its row stride, astep 1), all GEN_AVX2_MR rows read (the rows past mr
 * finite), the first mr stored; the same operations as on the panel
 * packed. */
void gen_avx2_tile_in_place(int64_t kc, const float *a, int64_t arow, int64_t astep,
                            const float *restrict bp, const float *bias, float *c, int64_t ldc,
                            int64_t mr, int acc);
/* The AVX2 table's GEMM (gemm_avx2.c): its gemm and gemm_bias. */
void gen_sgemm_avx2(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void gen_sgemm_avx2_bias(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                         int64_t ldc);
void gen_avx2_panels(int64_t M, int64_t K, const float *Wp, const float *const *brow, int64_t j,
                     float *c, int64_t ldc);
void gen_avx2_dw_block(int64_t mn, int64_t kn, int64_t m, int64_t len, const float *a,
                       int64_t a_img, int64_t a_row, const float *const b[3], int64_t b_img,
                       float *dw, int64_t ldw, int acc);
/* The AVX2 table's bpack_floats, bpack and gemm_bpacked (kernels.h):
 * B packed as panels GEN_AVX2_NR columns wide, K GEN_AVX2_NR floats
 * apart, row k of one at k GEN_AVX2_NR (each panel read whole: keep its
 * columns past N finite). gen_sgemm_avx2_1t: the GEMM on this thread (a
 * gen_gemm_fn). */
#define GEN_AVX2_NR 16
void gen_sgemm_avx2_1t(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       int64_t lda, const float *B, int64_t ldb, float beta, const float *bias,
                       float *C, int64_t ldc);
int64_t gen_avx2_bpack_floats(int64_t K, int64_t N);
void gen_avx2_bpack(int tb, int64_t K, int64_t N, const float *B, int64_t ldb, float *bp);
void gen_avx2_bpacked(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                      const float *bias, float *C, int64_t ldc);

#ifdef __AVX2__
#include <immintrin.h>
/* The 8 even (odd) floats of the 16 at a:b, in order: one shuffle and one
 * cross-lane permutation (the AVX2 convolutions' stride-2 reads). */
static inline __m256 gen_avx2_evens(__m256 a, __m256 b) {
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
}
static inline __m256 gen_avx2_odds(__m256 a, __m256 b) {
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

/* r[i] lane j <-> r[j] lane i: pairs, then quads within 128-bit halves,
 * then the halves. */
static inline __attribute__((always_inline)) void gen_avx2_transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* Lanes [0, n) of the 8 floats at d, 0 < n <= 8, the rest zeros (masked
 * loads are cheap on AMD's cores; masked stores are not). */
static inline __m256 gen_avx2_load_head(const float *d, int64_t n) {
    const __m256i m =
        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(d, m);
}

/* v's lanes [0, n) to d, 0 < n <= 8, by 4-, 2- and 1-float stores: the
 * short tails of output rows, which a scalar loop served at the cost of
 * the rest of the row. */
static inline void gen_avx2_store_head(float *d, __m256 v, int64_t n) {
    __m128 h = _mm256_castps256_ps128(v);
    if (n == 8) {
        _mm256_storeu_ps(d, v);
        return;
    }
    if (n >= 4) {
        _mm_storeu_ps(d, h);
        h = _mm256_extractf128_ps(v, 1), d += 4, n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)(void *)d, h);
        h = _mm_movehl_ps(h, h), d += 2, n -= 2;
    }
    if (n) _mm_store_ss(d, h);
}
#endif

/* The AVX2 table's matrix-vector product (gemv_avx2.c): gen_gemv's
 * arguments, on this thread. */
void gen_sgemv_avx2(int trans, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
                    const float *x, float beta, float *y);

/* AVX2 Winograd (winograd_avx2.c), the geometries gen_wino_fits accepts,
 * as winograd_avx512.c's entry points: the forward pass by F(4 x 4, 3 x 3)
 * or F(2 x 2, 3 x 3) as the output's size says (so its kernels' prep
 * takes H, W and pad too), the weight gradient by F(2 x 2, 3 x 3). */
int64_t gen_wino_avx2_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad);
void gen_wino_avx2_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, const float *Wm,
                        float *prep);
int64_t gen_wino_avx2_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,
                                int64_t m);
void gen_wino_avx2_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                        int64_t m, int64_t img, const float *x, const float *bias, float beta,
                        float *out, int64_t ldo, int64_t out_img, float *work);
int64_t gen_wino_avx2_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m);
void gen_wino_avx2_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                      int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work);

/* The AVX-512 GEMM (gemm_avx512.c): on this thread (a gen_gemm_fn), and
 * the table's gemm and gemm_bias, split over threads outside a parallel
 * region. */
void gen_sgemm_avx512(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      const float *bias, float *C, int64_t ldc);
void gen_sgemm_avx512_mt(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc);
void gen_sgemm_avx512_bias(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                           int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                           int64_t ldc);
/* The AVX-512 GEMM's operands packed ahead, for many products: op(A) = A
 * (M x K, row stride lda) as gen_gemm_avx512_pack_a_floats(M, K) floats
 * at ap, B (K x N) as ceil(N / GEN_GEMM_NR) panels GEN_GEMM_NR columns wide,
 * K GEN_GEMM_NR floats apart, row k of one at k GEN_GEMM_NR (columns past N,
 * up to a multiple of 16, read and dropped: keep them finite). C (M x N)
 * = A B + beta C with them on this thread. */
#define GEN_GEMM_NR 48
int64_t gen_gemm_avx512_pack_a_floats(int64_t M, int64_t K);
void gen_gemm_avx512_pack_a(int ta, int64_t M, int64_t K, const float *A, int64_t lda,
                            float *ap);
int64_t gen_gemm_avx512_pack_b_floats(int64_t K, int64_t N);
void gen_sgemm_avx512_packed(int64_t M, int64_t N, int64_t K, const float *ap, const float *bp,
                             float beta, float *C, int64_t ldc);
/* The table's bpack and gemm_bpacked (kernels.h): op(B) packed as those
 * panels, gen_gemm_avx512_pack_b_floats(K, N) floats at bp (64-byte
 * aligned), and products over rows [k0, k0 + K) of such an op(B) of kb
 * rows. */
void gen_gemm_avx512_bpack(int tb, int64_t K, int64_t N, const float *B, int64_t ldb, float *bp);
void gen_gemm_avx512_bpacked(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                             int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                             const float *bias, float *C, int64_t ldc);
/* The same with B's rows read in place, row k at brow[k] (bp NULL; reads
 * run on to a whole number of 16 floats past column N), or C's rows
 * written in place, row i at crow[i] (C, ldc unused; the 8 rows of one
 * tile must not overlap within GEN_GEMM_NR floats of each other). */
void gen_gemm_avx512_rows(int64_t M, int64_t N, int64_t K, const float *ap, const float *bp,
                          const float *const *brow, float *const *crow, float beta, float *C,
                          int64_t ldc);
/* gen_gemv's AVX-512 kernel (gemv_avx512.c), with its arguments. */
void gen_sgemv_avx512(int trans, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
                      const float *x, float beta, float *y);
/* Its rows summed at once in A x: 4, 2, or 0 to choose by the CPU
 * (gen_gemv_group). */
void gen_sgemv_avx512_group(int rows);
/* gen_gemv_bf16's and gen_bf16_round's AVX-512 kernels (gemv_avx512.c);
 * the rounding writes the floats to y and/or the bf16 to packed (each may
 * be NULL). */
void gen_sgemv_bf16_avx512(int64_t M, int64_t N, const uint16_t *A, int64_t lda, const float *x,
                           float beta, float *y);
void gen_bf16_round_avx512(int64_t n, const float *x, float *y, uint16_t *packed);

int64_t gen_conv_gemm_avx512_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                  int64_t KW, int64_t stride, int64_t pad, int64_t m);
int64_t gen_conv_dw_avx512_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                int64_t KW, int64_t stride, int64_t pad, int64_t m);
void gen_conv_dw_avx512(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H,
                        int64_t W, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                        int64_t m, int64_t img, const float *x, float *dw, float *work);
int64_t gen_conv_prep_avx512_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                  int64_t KW, int64_t stride, int64_t pad);
void gen_conv_prep_avx512(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                          int64_t stride, int64_t pad, const float *Wm, float *prep);
int64_t gen_conv_gemm_avx512_images(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                    int64_t KW, int64_t stride, int64_t pad);
void gen_conv_gemm_avx512(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W,
                          int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m,
                          int64_t img, const float *x, const float *bias, float beta, float *out,
                          int64_t ldo, int64_t out_img, float *work);

/* ---- 3 x 3 stride-1 convolutions by Winograd's F(4 x 4, 3 x 3) or F(2 x
 * 2, 3 x 3) as gen_wino_tile says (winograd_avx512.c): the table's
 * conv_gemm and conv_dw hand over the geometries gen_wino_fits accepts,
 * with the same arguments less the kernel size and stride; conv_gemm's
 * kernels come as gen_wino_prep left them (gen_wino_prep_work floats). */
static inline int gen_wino_fits(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,
                                int64_t KW, int64_t stride, int64_t pad) {
    return KH == 3 && KW == 3 && stride == 1 && pad >= 0 && pad <= 2 && M >= 8 && C >= 16 &&
           H + 2 * pad >= 6 && W + 2 * pad >= 6;
}

/* GEN_WINO_G6(T, add, sub, mul, set1) defines g6: G (k0 k1 k2)^T of F(4
 * x 4, 3 x 3) for the kernels in the lanes of T, a vector of doubles with
 * its intrinsics, rounded once to float by the caller, so the transformed
 * kernels add no error of their own to F(4 x 4)'s (in float, G's thirds
 * and twenty-fourths put a U-Net's gradients against PyTorch's past
 * test_diffusion's bound). G's rows share their sums (k0 + k2 +- k1, k0 /
 * 24 + k2 / 6 +- k1 / 12), taken by the reciprocals. (Written with the
 * intrinsics: GCC's operators on the same types gave the AVX-512 table
 * other bits.) */
#define GEN_WINO_G6(T, add, sub, mul, set1)                                                        \
    static inline __attribute__((always_inline)) void g6(T k0, T k1, T k2, T o[6]) {               \
        const T a = add(k0, k2), b = add(mul(k0, set1(1.0 / 24)), mul(k2, set1(1.0 / 6))),         \
                c = mul(k1, set1(1.0 / 12)), six = set1(-1.0 / 6);                                 \
        o[0] = mul(k0, set1(0.25));                                                                \
        o[1] = mul(add(a, k1), six);                                                               \
        o[2] = mul(sub(a, k1), six);                                                               \
        o[3] = add(b, c);                                                                          \
        o[4] = sub(b, c);                                                                          \
        o[5] = k2;                                                                                 \
    }

/* The output tile side of a forward pass (and input gradient) by
 * Winograd on either table: 4 (F(4 x 4, 3 x 3)) where its tiles cover at
 * most 1.5 times the outputs F(2 x 2, 3 x 3)'s do (28, 14 and 7 a side,
 * every size of the U-Net, but not 5 or 6, whose 8 x 8 tiles waste more),
 * else 2. */
static inline int gen_wino_tile(int64_t H, int64_t W, int64_t pad) {
    const int64_t OH = H + 2 * pad - 2, OW = W + 2 * pad - 2;
    const int64_t a4 = (OH + 3) / 4 * 4 * ((OW + 3) / 4 * 4),
                  a2 = (OH + 1) / 2 * 2 * ((OW + 1) / 2 * 2);
    return 2 * a4 <= 3 * a2 ? 4 : 2;
}

/* Whether table k, with its own convolutions, runs this convolution's
 * forward pass by Winograd's minimal filtering (3 x 3 stride 1, or the 4
 * x 4 stride-2 ones over the phases on the fp32 tables): bench_gemm
 * counts such a rate as the direct arithmetic's equivalent. */
int gen_kernels_conv_wino(const struct gen_kernels *k, int64_t M, int64_t C, int64_t H, int64_t W,
                          int64_t KH, int64_t KW, int64_t stride, int64_t pad);

/* The distance between the 16 matrices of a transform, which it writes
 * (or reads) side by side: n floats rounded up to 4 KiB and 256 bytes on,
 * so that the 16 streams fall in different sets of the L1 cache. At a
 * multiple of 4 KiB apart they share one set and evict each other at
 * every store (15 times slower on this project's machines). */
static inline int64_t gen_wino_spread(int64_t n) {
    return (n + 1023) / 1024 * 1024 + 64;
}

int64_t gen_wino_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad);
/* The images a gen_wino_conv call wants (conv_gemm_images): F(4 x 4)'s
 * enough for 8 blocks' worth of tiles, F(2 x 2)'s none (0). */
int64_t gen_wino_images(int64_t H, int64_t W, int64_t pad);
void gen_wino_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, const float *Wm,
                   float *prep);
int64_t gen_wino_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m);
void gen_wino_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t pad,
                   int64_t m, int64_t img, const float *x, const float *bias, float beta,
                   float *out, int64_t ldo, int64_t out_img, float *work);
int64_t gen_wino_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m);
void gen_wino_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                 int64_t pad, int64_t m, int64_t img, const float *x, float *dw, float *work);

/* ---- 4 x 4 stride-2 convolutions by F(4 x 4, 2 x 2) over the stride
 * phases (winograd_s2.h, built by winograd_s2_avx512.c and, as the
 * gen_wino_s2_avx2_ functions, winograd_s2_avx2.c): the table's
 * conv_gemm hands over the geometries gen_wino_s2_fits accepts, its
 * kernels as gen_wino_s2_prep left them (gen_wino_s2_prep_work floats),
 * in calls of gen_wino_s2_images images; its conv_dx (conv_nhwc's on
 * AVX-512) and conv_dw the same geometries, with the _dx and _dw
 * functions. */
#define GEN_WINO_S2_API(isa)                                                                       \
    int gen_wino_s2##isa##_fits(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH,            \
                                int64_t KW, int64_t stride, int64_t pad);                          \
    int64_t gen_wino_s2##isa##_images(int64_t H, int64_t W, int64_t pad);                          \
    int64_t gen_wino_s2##isa##_prep_work(int64_t M, int64_t C);                                    \
    void gen_wino_s2##isa##_prep(int64_t M, int64_t C, const float *Wm, float *prep);              \
    int64_t gen_wino_s2##isa##_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,       \
                                    int64_t m);                                                    \
    void gen_wino_s2##isa##_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W,    \
                                 int64_t pad, int64_t m, int64_t img, const float *x,              \
                                 const float *bias, float beta, float *out, int64_t ldo,           \
                                 int64_t out_img, float *work);                                    \
    int64_t gen_wino_s2##isa##_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,    \
                                       int64_t m);                                                 \
    void gen_wino_s2##isa##_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H,   \
                               int64_t W, int64_t pad, int64_t m, int64_t img, const float *x,     \
                               float *dw, float *work);                                            \
    int64_t gen_wino_s2##isa##_dx_prep_work(int64_t M, int64_t C);                                 \
    void gen_wino_s2##isa##_dx_prep(int64_t M, int64_t C, const float *Wm, float *prep);           \
    int64_t gen_wino_s2##isa##_dx_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t pad,    \
                                       int64_t m);                                                 \
    void gen_wino_s2##isa##_dx(int64_t M, const float *prep, const float *dy, int64_t dy_img,      \
                               int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m,            \
                               int64_t img, float beta, float *dx, float *work);
GEN_WINO_S2_API()
GEN_WINO_S2_API(_avx2)

/* ---- the gradients of strided convolutions through channels-last copies
 * (conv_nhwc_avx512.c): the table's conv_gemm, conv_prep and conv_dw hand
 * over the geometries gen_nhwc_fits accepts, and they are the table's
 * conv_dx (kernels.h): gen_nhwc_dx_work is 0 for the others. */
int gen_nhwc_fits(int64_t C, int64_t KH, int64_t KW, int64_t stride);
/* The m images (C, H, W) at x, img floats apart, into xq (m, H + 2 pad, W
 * + 2 pad, C), zeros in the padding. */
void gen_nhwc_copy(int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m, int64_t img,
                   const float *x, float *xq);
/* dx_i (C, H, W; img floats apart) = beta dx_i + the interior of image i
 * of xq (m, H + 2 pad, W + 2 pad, C): gen_nhwc_copy the other way. */
void gen_nhwc_uncopy(int64_t C, int64_t H, int64_t W, int64_t pad, int64_t m, const float *xq,
                     float beta, float *dx, int64_t img);
int64_t gen_nhwc_conv_prep_work(int64_t M, int64_t C, int64_t KH, int64_t KW);
void gen_nhwc_conv_prep(int64_t M, int64_t C, int64_t KH, int64_t KW, const float *Wm,
                        float *prep);
int64_t gen_nhwc_conv_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                           int64_t stride, int64_t pad, int64_t m);
void gen_nhwc_conv(int64_t M, const float *prep, int64_t C, int64_t H, int64_t W, int64_t KH,
                   int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                   const float *x, const float *bias, float beta, float *out, int64_t ldo,
                   int64_t out_img, float *work);
int64_t gen_nhwc_dw_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                         int64_t stride, int64_t pad, int64_t m);
void gen_nhwc_dw(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                 int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                 const float *x, float *dw, float *work);
int64_t gen_nhwc_dx_prep_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad);
void gen_nhwc_dx_prep(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                      int64_t stride, int64_t pad, const float *Wm, float *prep);
int64_t gen_nhwc_dx_work(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                         int64_t stride, int64_t pad, int64_t m);
void gen_nhwc_dx(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C,
                 int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                 int64_t m, int64_t img, float beta, float *dx, float *work);

/* ---- the wide grid of the AVX-512 convolutions (gemm_avx512.c) ----------
 * Each channel plane zero-padded to Hp x Wp (Hp = H + 2 pad, Wp = W + 2
 * pad) and split into its stride phases: phase (a, b) holds the padded
 * pixels (s u + a, s v + b), an Hq x Wq plane (Hq = ceil(Hp / s), Wq =
 * ceil(Wp / s)); for stride 1 the padded plane itself. The output is
 * computed on a "wide" grid of OH rows of Wq columns (the last Wq - OW of
 * each row garbage, dropped); tap (kh, kw) of a channel then reads, for
 * flat grid index t, its plane at gen_wide_tap(kh, kw) + t: every row of
 * the im2col matrix is a contiguous slice of a plane. Only the phases some
 * tap reads are built (a < sa, b < sb). */
struct gen_wide {
    int64_t s, Hq, Wq, OH, OW, sa, sb;     /* phases a < sa, b < sb */
    int64_t phase, plane, tw, tw16, slack; /* plane: a channel's phases; tw = OH Wq */
};

static inline struct gen_wide gen_wide_geo(int64_t H, int64_t W, int64_t KH, int64_t KW,
                                           int64_t stride, int64_t pad) {
    const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
    struct gen_wide g = {.s = stride, .Hq = (Hp + stride - 1) / stride,
                         .Wq = (Wp + stride - 1) / stride};
    g.OH = (Hp - KH) / stride + 1, g.OW = (Wp - KW) / stride + 1;
    g.sa = KH < stride ? KH : stride, g.sb = KW < stride ? KW : stride;
    g.phase = g.Hq * g.Wq, g.plane = g.sa * g.sb * g.phase;
    g.tw = g.OH * g.Wq, g.tw16 = (g.tw + 15) / 16 * 16;
    /* reads of a 48-wide panel run at most KW - 1 + 48 past a plane's end */
    g.slack = KW + 48 + 16;
    return g;
}

/* Where tap (kh, kw) of a channel starts reading, from its first phase. */
static inline int64_t gen_wide_tap(const struct gen_wide *g, int64_t kh, int64_t kw) {
    if (g->s == 1) return kh * g->Wq + kw;
    return ((kh % g->s) * g->sb + kw % g->s) * g->phase + kh / g->s * g->Wq + kw / g->s;
}

/* One channel plane (H x W) zero-padded into an Hq x Wq plane (kernels_scalar.c). */
void gen_pad_plane(const float *src, int64_t H, int64_t W, int64_t pad, int64_t Hq, int64_t Wq,
                   float *d);
/* The same on the AVX2 table (conv_avx2.c), in whole vectors. */
void gen_avx2_pad_plane(const float *src, int64_t H, int64_t W, int64_t pad, int64_t Hq,
                        int64_t Wq, float *d);

/* The m images' C planes (x, images img floats apart), padded and split
 * into phases, into xp (m C plane floats), then g->slack zeros. */
void gen_wide_planes(const float *x, int64_t img, int64_t m, int64_t C, int64_t H, int64_t W,
                     int64_t pad, const struct gen_wide *g, float *xp);
/* out = wide + bias + beta out (bias per row, or NULL; out as conv_gemm
 * lays it: image i at out + i out_img, rows ldo apart), dropping the
 * garbage columns of wide (M x m tw, row stride ldw, image i from column
 * i tw). */
void gen_wide_to_out(const struct gen_wide *g, int64_t M, int64_t m, const float *wide,
                     int64_t ldw, const float *bias, float beta, float *out, int64_t ldo,
                     int64_t out_img);

#ifdef GEN_HAVE_AVX512BF16
/* The AVX-512 table's group norm then SiLU into bf16 (kernels_avx512.c,
 * where the compiler knows vcvtneps2bf16), for the bf16 table. */
void gen_groupnorm_silu_fwd_b16_avx512(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                                       const float *shift, const float *gamma, const float *beta,
                                       float eps, uint16_t *y, float *mean, float *rstd);
/* The AVX-512 table's layer norm into bf16, likewise. */
void gen_layernorm_fwd_b16_avx512(int64_t rows, int64_t cols, const float *x, const float *gamma,
                                  const float *beta, float eps, uint16_t *y, float *mean,
                                  float *rstd);
/* ... and its softmax into bf16 and from it (softmax_fwd_b16, softmax_grad_b16). */
void gen_softmax_fwd_b16_avx512(int64_t rows, int64_t cols, float *x, uint16_t *y);
void gen_softmax_grad_b16_avx512(int64_t rows, int64_t cols, const uint16_t *y, const float *dy,
                                 uint16_t *dx);
/* The inputs of the bf16 convolutions on the wide grid (gemm_avx512bf16.c),
 * which the AMX ones read too: the m images' channel pairs as planes of
 * pairs (image i's pair q at xw + (i ceil(C / 2) + q) plane), or their
 * channels as planes of bf16 (image i's channel c at xb + (i C + c)
 * plane), each followed by g->slack (+ 32 for xb) zeros; `planes` is fp32
 * scratch of 2 plane + slack floats. The input is x, or, at stride 1, the
 * same values as bf16 at xh (x NULL: a tensor kept at the products'
 * precision, gen_groupnorm_silu_operand). */
void gen_bf16_pair_planes(const float *x, const uint16_t *xh, int64_t img, int64_t m, int64_t C,
                          int64_t H, int64_t W, int64_t pad, const struct gen_wide *g,
                          float *planes, uint32_t *xw);
void gen_bf16_planes(const float *x, const uint16_t *xh, int64_t img, int64_t m, int64_t C,
                     int64_t H, int64_t W, int64_t pad, const struct gen_wide *g, float *plane,
                     uint16_t *xb);
#endif

/* Scalar functions the SIMD tables reuse where vectorising gains nothing. */
void gen_scalar_sgd(int64_t n, float *p, const float *g, float *buf, float lr, float mom,
                    float wd);
/* dgamma[c] += sum over n of work[2 (n C + c)], dbeta[c] of work[2 (n C +
 * c) + 1], in order of n (either may be NULL): the norms' per-channel sums. */
void gen_scalar_channel_sums(int64_t N, int64_t C, const double *work, float *dgamma,
                             float *dbeta);
/* A shifted group norm's dshift for the cpg channels of one (n, group):
 * each channel's sum of dx = rstd (gamma_c sd_c - HW a / m - b / m sx_c),
 * m = cpg HW, from pass 1's group sums a (of d gamma) and b (of d gamma
 * xhat) and the channel's sums (sd_c, sx_c) of d and xhat at sums[2 c],
 * sums[2 c + 1]; gamma the group's (or NULL: ones). */
void gen_gn_dshift(int64_t cpg, int64_t HW, float rstd, const float *gamma, double a, double b,
                   const double *sums, float *dshift);
void gen_scalar_im2col(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                       int64_t pad, const float *x, float *col);
void gen_scalar_col2im(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                       int64_t pad, const float *col, float *x);
void gen_scalar_im2col_ld(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                          int64_t stride, int64_t pad, int64_t ld, const float *x, float *col);
void gen_scalar_col2im_ld(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                          int64_t stride, int64_t pad, int64_t ld, const float *col, float *x);

/* The ow range [lo, hi) whose input column ow stride - pad + kw lies in
 * [0, W); shared by every ISA's im2col/col2im. */
static inline void gen_conv_valid(int64_t W, int64_t OW, int64_t stride, int64_t pad, int64_t kw,
                                  int64_t *lo, int64_t *hi) {
    const int64_t a = pad - kw;                /* ow stride >= a          */
    const int64_t b = W - 1 + pad - kw;        /* ow stride <= b          */
    int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int64_t h = b < 0 ? 0 : b / stride + 1;
    if (l > OW) l = OW;
    if (h > OW) h = OW;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

#endif
