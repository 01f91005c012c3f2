/* kernels.h - the table of vectorised CPU kernels.
 *
 * One table per ISA (scalar reference, AVX2+FMA, AVX-512), filled at
 * start-up from CPUID; GEN_ISA=scalar|avx2|avx512 forces one. All pointers
 * are contiguous float32 arrays; `n` counts elements. Unless a kernel says
 * "accumulates", it overwrites its output. Outputs may alias inputs only
 * where stated. The *_bwd kernels always accumulate (dx += ...), because
 * autograd sums the gradients of every use of a tensor; the *_grad kernels
 * appended below do the same maths under a gen_grad_mode, so that the
 * first use to write a gradient overwrites it instead (no zero-fill).
 *
 * The scalar versions (src/kernels/kernels_scalar.c) are the reference; the tests
 * hold every other ISA to them. */
#ifndef GEN_KERNELS_H
#define GEN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* How a matrix operand of a product is read: as stored, or transposed
 * (op(A) = A^T). The public products take it by name; the kernel table's
 * entries keep an int. */
enum gen_trans { GEN_NOTRANS = 0, GEN_TRANS = 1 };

/* How a backward kernel writes a gradient: GEN_GRAD_SET overwrites it (dx =
 * ..., dx not read: it may hold anything), GEN_GRAD_ADD adds to it (dx +=
 * ...). SET gives exactly the bits ADD gives on a zeroed dx. */
enum gen_grad_mode { GEN_GRAD_SET, GEN_GRAD_ADD };

/* One Adam/AdamW step's settings (adam_step below). */
struct gen_adam_step {
    float lr, beta1, beta2, eps;
    float l2;       /* Adam's L2 decay, folded into the gradient: g + l2 p */
    float wd;       /* AdamW's decoupled decay: p -= lr wd p           */
    float bc1, bc2; /* bias corrections 1 - beta1^t, 1 - beta2^t      */
};

/* An operand as stored: floats at f, or bf16 at h (a tensor held at its
 * products' precision, t->bf16); one of the two. */
struct gen_chan {
    const float *f;
    const uint16_t *h;
};

/* The operand x from value `off` on. */
static inline struct gen_chan gen_chan_at(struct gen_chan x, int64_t off) {
    return (struct gen_chan){x.f ? x.f + off : NULL, x.h ? x.h + off : NULL};
}

struct gen_kernels {
    const char *name; /* "scalar", "avx2", "avx512" */

    /* ---- element-wise; y may alias a or b ---- */
    void (*add)(int64_t n, const float *a, const float *b, float *y); /* y = a + b   */
    void (*sub)(int64_t n, const float *a, const float *b, float *y); /* y = a - b   */
    void (*mul)(int64_t n, const float *a, const float *b, float *y); /* y = a * b   */
    void (*scale)(int64_t n, float s, const float *x, float *y);      /* y = s * x   */
    void (*axpy)(int64_t n, float s, const float *x, float *y);       /* y += s * x  */
    void (*mul_acc)(int64_t n, const float *a, const float *b, float *y); /* y += a*b */
    void (*fill)(int64_t n, float v, float *y);
    double (*sum)(int64_t n, const float *x);    /* sum, accumulated in double */
    double (*sumsq)(int64_t n, const float *x);  /* sum of squares, in double   */

    /* ---- activations: fwd y = f(x); bwd dx += dy * f'(.) ---- */
    void (*relu_fwd)(int64_t n, const float *x, float *y);
    void (*relu_bwd)(int64_t n, const float *x, const float *dy, float *dx);
    void (*leaky_relu_fwd)(int64_t n, float slope, const float *x, float *y);
    void (*leaky_relu_bwd)(int64_t n, float slope, const float *x, const float *dy, float *dx);
    /* GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    void (*gelu_fwd)(int64_t n, const float *x, float *y);
    void (*gelu_bwd)(int64_t n, const float *x, const float *dy, float *dx);
    void (*silu_fwd)(int64_t n, const float *x, float *y); /* x * sigmoid(x) */
    void (*silu_bwd)(int64_t n, const float *x, const float *dy, float *dx);
    /* sigmoid, tanh and exp take the forward OUTPUT y in backward. */
    void (*sigmoid_fwd)(int64_t n, const float *x, float *y);
    void (*sigmoid_bwd)(int64_t n, const float *y, const float *dy, float *dx);
    void (*tanh_fwd)(int64_t n, const float *x, float *y);
    void (*tanh_bwd)(int64_t n, const float *y, const float *dy, float *dx);
    void (*exp_fwd)(int64_t n, const float *x, float *y);
    void (*exp_bwd)(int64_t n, const float *y, const float *dy, float *dx);

    /* ---- row reductions over the last dim: rows x cols, row-major ---- */
    void (*softmax_fwd)(int64_t rows, int64_t cols, const float *x, float *y);
    /* dx += y * (dy - sum(dy * y)) */
    void (*softmax_bwd)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx);
    void (*log_softmax_fwd)(int64_t rows, int64_t cols, const float *x, float *y);
    /* dx += dy - exp(y) * sum(dy) */
    void (*log_softmax_bwd)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx);
    /* y = (x - mean) * rstd * gamma + beta; saves mean[rows], rstd[rows].
     * gamma/beta may be NULL (then 1 and 0). Biased variance, as PyTorch. */
    void (*layernorm_fwd)(int64_t rows, int64_t cols, const float *x, const float *gamma,
                          const float *beta, float eps, float *y, float *mean, float *rstd);
    /* dx, dgamma, dbeta accumulate; dgamma/dbeta may be NULL. */
    void (*layernorm_bwd)(int64_t rows, int64_t cols, const float *x, const float *gamma,
                          const float *mean, const float *rstd, const float *dy, float *dx,
                          float *dgamma, float *dbeta);
    /* Group norm of x (N, C, HW) in G groups (C % G == 0), per-channel affine;
     * saves mean[N*G], rstd[N*G]. gamma/beta may be NULL. */
    void (*groupnorm_fwd)(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                          const float *gamma, const float *beta, float eps, float *y,
                          float *mean, float *rstd);
    void (*groupnorm_bwd)(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                          const float *gamma, const float *mean, const float *rstd,
                          const float *dy, float *dx, float *dgamma, float *dbeta);

    /* ---- optimisers, over flat parameter blocks ---- */
    /* Adam/AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * p -= lr * (m / bc1) / (sqrt(v / bc2) + eps) + lr * wd * p
     * (wd is decoupled, AdamW; pass 0 for Adam). bc1 = 1 - b1^t, bc2 = 1 - b2^t. */
    void (*adam)(int64_t n, float *p, const float *g, float *m, float *v, float lr, float b1,
                 float b2, float eps, float wd, float bc1, float bc2);
    /* SGD with momentum (PyTorch form): g' = g + wd p; buf = mom buf + g'; p -= lr buf */
    void (*sgd)(int64_t n, float *p, const float *g, float *buf, float lr, float mom, float wd);
    /* ema = decay * ema + (1 - decay) * p */
    void (*ema)(int64_t n, float *ema, const float *p, float decay);

    /* ---- convolution helpers for one image (C, H, W) ----
     * col is (C*KH*KW, OH*OW) row-major; zero padding `pad` on every side. */
    void (*im2col)(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                   int64_t pad, const float *x, float *col);
    /* accumulates: x += col2im(col) */
    void (*col2im)(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                   int64_t pad, const float *col, float *x);

    /* ---- appended: the same over a block of a wider matrix ----
     * As im2col/col2im, but col's rows are `ld` floats apart (ld >= OH OW):
     * image n of a batch writes columns [n OH OW, (n+1) OH OW) of a
     * (C KH KW, nb OH OW) matrix by passing col + n OH OW and ld = nb OH OW.
     * im2col/col2im are these with ld = OH OW. */
    void (*im2col_ld)(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                      int64_t pad, int64_t ld, const float *x, float *col);
    /* accumulates: x += col2im(col) */
    void (*col2im_ld)(int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride,
                      int64_t pad, int64_t ld, const float *col, float *x);

    /* ---- appended: this ISA's own GEMM, or NULL where OpenBLAS serves ----
     * C = alpha op(A) op(B) + beta C with gen_gemm_ld's arguments (beta == 0:
     * C is not read). Splits the work over threads when called outside a
     * parallel region, with the same result for any thread count. gen_gemm
     * and gen_gemm_ld call it when the table in force has one. */
    void (*gemm)(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

    /* ---- appended: this ISA's implicit-GEMM convolution, or both NULL ----
     * out = Wm (M x K) col + bias + beta out (bias: one value per row of
     * out, or NULL for none), where col (K x m P, K = C KH KW, P = OH OW)
     * is the im2col of the m images (C, H, W) at x, img floats apart, and
     * image i's M x P block of out starts at out + i out_img, rows ldo
     * apart (out_img = P, ldo = m P: one M x m P matrix; out_img = M P,
     * ldo = P: the images' (M, OH, OW) tensors).
     * col is never built: its values go straight into the GEMM's packed
     * panels in `work`, which holds conv_gemm_work(M, C, H, W, KH, KW,
     * stride, pad, m) floats; where that is 0 the table does not take the
     * geometry (the AVX2 table takes stride 1 and some stride-2 ones) and
     * im2col with a GEMM serve it. Runs on the calling thread. */
    int64_t (*conv_gemm_work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad, int64_t m);
    void (*conv_gemm)(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                      const float *x, const float *bias, float beta, float *out, int64_t ldo,
                      int64_t out_img, float *work);
    /* The weight gradient of the same convolution: dw (M x K) = sum over
     * the m images of dy_i (M x P, images dy_img floats apart) col_i^T,
     * overwriting dw; `work` holds conv_dw_work(M, C, H, W, KH, KW, stride,
     * pad, m) floats (0: not taken, as for conv_gemm). Runs on the calling
     * thread. Both NULL where conv_gemm is. */
    int64_t (*conv_dw_work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t stride, int64_t pad, int64_t m);
    void (*conv_dw)(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                    int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                    const float *x, float *dw, float *work);

    /* ---- appended: backward kernels under a gen_grad_mode ----
     * Each is its *_bwd above with dx written as `mode` says (the *_bwd
     * kernels are these with GEN_GRAD_ADD). The element-wise ones and the
     * group norm ones take dx == dy under GEN_GRAD_SET: element i of dy is
     * read before element i of dx is written, and nothing is read from dy
     * after (gen_grad_dst_over, tests/test_grad_basic.c). */
    void (*relu_grad)(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode);
    void (*leaky_relu_grad)(int64_t n, float slope, const float *x, const float *dy, float *dx,
                            enum gen_grad_mode mode);
    void (*gelu_grad)(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode);
    void (*silu_grad)(int64_t n, const float *x, const float *dy, float *dx,
                      enum gen_grad_mode mode);
    void (*sigmoid_grad)(int64_t n, const float *y, const float *dy, float *dx,
                         enum gen_grad_mode mode);
    void (*tanh_grad)(int64_t n, const float *y, const float *dy, float *dx,
                      enum gen_grad_mode mode);
    void (*exp_grad)(int64_t n, const float *y, const float *dy, float *dx,
                     enum gen_grad_mode mode);
    void (*softmax_grad)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx,
                         enum gen_grad_mode mode);
    void (*log_softmax_grad)(int64_t rows, int64_t cols, const float *y, const float *dy,
                             float *dx, enum gen_grad_mode mode);
    /* dx may be NULL (not computed); dgamma, dbeta accumulate, may be NULL. */
    void (*layernorm_grad)(int64_t rows, int64_t cols, const float *x, const float *gamma,
                           const float *mean, const float *rstd, const float *dy, float *dx,
                           enum gen_grad_mode mode, float *dgamma, float *dbeta);
    /* Group norm's backward, reading x and dy from memory once (groupnorm_bwd
     * reads them three times): per (n, group), the sums of dx's formula and
     * per (n, channel) those of dgamma and dbeta (into `work`, 2 N C
     * doubles, when either is wanted), then dx from the group still in
     * cache. dx may be NULL; dgamma, dbeta accumulate, may be NULL; they sum
     * the per-(n, channel) sums in order of n. */
    void (*groupnorm_grad)(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                           const float *gamma, const float *mean, const float *rstd,
                           const float *dy, float *dx, enum gen_grad_mode mode, float *dgamma,
                           float *dbeta, double *work);
    /* y = silu(h), h = groupnorm_fwd's y of x + shift, in groupnorm_fwd's
     * passes (neither x + shift nor h is stored; shift: (N, C), a value for
     * each channel of each image, or NULL). */
    void (*groupnorm_silu_fwd)(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                               const float *shift, const float *gamma, const float *beta, float eps,
                               float *y, float *mean, float *rstd);
    /* Its backward: groupnorm_grad's passes, the first recomputing h from x
     * (and shift) and keeping dh = dy silu'(h) for the second: in dx itself
     * when it overwrites dx (GEN_GRAD_SET; dh unused, may be NULL), else in
     * `dh` (N C HW floats of scratch). With a shift, dshift (N, C; may be
     * NULL) is set to each channel's sum of dx (what dx would add up to),
     * and work holds 4 N C doubles. */
    void (*groupnorm_silu_grad)(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                                const float *shift, const float *gamma, const float *beta,
                                const float *mean, const float *rstd, const float *dy, float *dh,
                                float *dx, enum gen_grad_mode mode, float *dgamma, float *dbeta,
                                float *dshift, double *work);

    /* ---- appended: Adam/AdamW in one pass ----
     * g' = g + l2 p, then adam's update with g' and wd; never writes g
     * (adam is this with l2 = 0). */
    void (*adam_step)(int64_t n, float *p, const float *g, float *m, float *v,
                      const struct gen_adam_step *h);

    /* ---- appended: column sums (a bias gradient) ----
     * y[j] (+)= x[0][j] + x[1][j] + ... + x[rows-1][j], as `mode` says: rows
     * of `cols` floats `stride` apart, added in row order in float (from 0
     * under GEN_GRAD_SET), the bits `rows` calls of add give. */
    void (*col_sum)(int64_t rows, int64_t cols, const float *x, int64_t stride, float *y,
                    enum gen_grad_mode mode);

    /* ---- appended: a convolution's kernels prepared once for its calls ----
     * conv_prep_work(M, C, H, W, KH, KW, stride, pad): the floats of the
     * form in which conv_gemm takes its Wm for this geometry (the AVX-512
     * table's Winograd transform of 3 x 3 kernels, else Wm packed as its
     * GEMM's A panels, once for all chunks), or 0 where it takes Wm
     * as it is; conv_prep writes that form of Wm (M x C KH KW) into prep.
     * Both NULL where conv_gemm is NULL or always takes Wm as it is. On the
     * calling thread. */
    int64_t (*conv_prep_work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                              int64_t stride, int64_t pad);
    void (*conv_prep)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                      int64_t stride, int64_t pad, const float *Wm, float *prep);

    /* ---- appended: a product with a bias row, or NULL where gemm is ----
     * C = op(A) op(B) + bias, bias[j] added to column j of every row (a
     * linear layer's forward), with gemm's other arguments (alpha 1, beta
     * 0: C is not read). The bias is added as C is written: the bits gemm
     * gives with alpha = beta = 1 on a C whose every row holds the bias. */
    void (*gemm_bias)(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                      int64_t ldc);

    /* ---- appended: both gradients of y = a * b in one pass over dy ----
     * da (ma)= dy * b, then db (mb)= dy * a, element by element, each as
     * mul (GEN_GRAD_SET) or mul_acc (GEN_GRAD_ADD) writes it: the bits of
     * those two passes. da and db may be the same buffer (a and b one
     * tensor: then db's add reads the da just written, as the second pass
     * would). */
    void (*mul_grads)(int64_t n, const float *dy, const float *a, const float *b, float *da,
                      enum gen_grad_mode ma, float *db, enum gen_grad_mode mb);

    /* ---- appended: a strided convolution's input gradient, or all NULL ----
     * conv_dx_work(M, C, H, W, KH, KW, stride, pad, m): the floats of
     * conv_dx's work for m images, or 0 where conv_dx does not take this
     * geometry (then W^T dy and col2im). conv_dx_prep writes Wm (M x C KH
     * KW, conv_gemm's kernels) into prep (conv_dx_prep_work(M, C, H, W, KH,
     * KW, stride, pad) floats) in the form conv_dx takes for that geometry,
     * once for a layer's chunks.
     * conv_dx: dx_i = beta dx_i + col2im(Wm^T dy_i) for the m images dy_i
     * (M x P, dy_img floats apart) and dx_i (C, H, W, img floats apart).
     * On the calling thread. */
    int64_t (*conv_dx_work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                            int64_t stride, int64_t pad, int64_t m);
    int64_t (*conv_dx_prep_work)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                 int64_t stride, int64_t pad);
    void (*conv_dx_prep)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                         int64_t stride, int64_t pad, const float *Wm, float *prep);
    void (*conv_dx)(int64_t M, const float *prep, const float *dy, int64_t dy_img, int64_t C,
                    int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                    int64_t m, int64_t img, float beta, float *dx, float *work);

    /* ---- appended: binary cross-entropy with logits, element by element ----
     * y = max(x, 0) - x t + log(1 + e^-|x|): the loss of logit x against
     * target t, without overflow for any x. */
    void (*bce_logits_terms)(int64_t n, const float *x, const float *t, float *y);

    /* ---- appended: this ISA's own matrix-vector product, or NULL where
     * OpenBLAS's sgemv serves ----
     * y = alpha op(A) x + beta y with gen_gemv's arguments, on the calling
     * thread; gen_gemv calls it when the table in force has one. */
    void (*gemv)(int trans, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
                 const float *x, float beta, float *y);

    /* ---- appended: products over an operand packed once, or all NULL ----
     * Several products over one operand (the keys and values that causal
     * attention's row blocks share) pack it once. bpack writes op(B) (K x
     * N; B stored N x K if tb, rows ldb apart) into bp, bpack_floats(K, N)
     * floats, 64-byte aligned, in the layout of this table's GEMM.
     * gemm_bpacked: C (M x N, rows ldc apart) = alpha op(A) B' + beta C
     * (beta == 0: C is not read) on the calling thread, where B' is the
     * rows [k0, k0 + K) and the first N columns of an op(B) of kb rows
     * packed by bpack (K >= 1; k0 even; K even, or k0 + K = kb): the bits the
     * table's gemm gives on B' where it does not split K (gen_gemm_split).
     * With a bias (N values; alpha 1, beta 0), C = op(A) B' + bias, the
     * bits of beta 1 on a C whose every row holds the bias: the bias added
     * as C is written (an MLP's hidden rows, which were filled with it). */
    int64_t (*bpack_floats)(int64_t K, int64_t N);
    void (*bpack)(int tb, int64_t K, int64_t N, const float *B, int64_t ldb, float *bp);
    void (*gemm_bpacked)(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                         int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                         const float *bias, float *C, int64_t ldc);

    /* ---- appended: batch norm's passes over one channel ----
     * Channel c of x (N, C, HW) is `runs` = N runs of `len` = HW floats,
     * `stride` = C HW apart (y, dy and dx alike). On the calling thread;
     * sums in double. runs_sum: the sum of x. runs_sqdev: of (x - mu)^2.
     * runs_affine: y = a x + b. runs_grad_sums: s[0] = sum of dy, s[1] =
     * of dy xhat, xhat = (x - mu) rs. runs_grad_dx: dx (+)= rs (dy g - k1 -
     * xhat k2) as `mode` says; dx may be dy under GEN_GRAD_SET. */
    double (*runs_sum)(int64_t runs, int64_t len, int64_t stride, const float *x);
    double (*runs_sqdev)(int64_t runs, int64_t len, int64_t stride, const float *x, float mu);
    void (*runs_affine)(int64_t runs, int64_t len, int64_t stride, const float *x, float a,
                        float b, float *y);
    void (*runs_grad_sums)(int64_t runs, int64_t len, int64_t stride, const float *x,
                           const float *dy, float mu, float rs, double s[2]);
    void (*runs_grad_dx)(int64_t runs, int64_t len, int64_t stride, const float *x,
                         const float *dy, float mu, float rs, float g, float k1, float k2,
                         float *dx, enum gen_grad_mode mode);

    /* ---- appended: the images a conv_gemm call wants, or NULL ----
     * conv_gemm_images(M, C, H, W, KH, KW, stride, pad): how many images
     * a call of conv_gemm should bring at least for this geometry (0: no
     * wish), where its blocks of work run across images and a call of too
     * few ends in a short block that costs nearly a whole one (the AVX-512
     * table's Winograd F(4 x 4, 3 x 3)); the ops chunk their batches no
     * finer, as far as they can still share them among the threads. */
    int64_t (*conv_gemm_images)(int64_t M, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                int64_t stride, int64_t pad);

    /* ---- appended: GELU and its gradient together ----
     * y = gelu(x) and dx = dy gelu'(x), from one exponential and one
     * division (gelu_fwd and gelu_grad take one and two of each): the MLP's
     * backward (ops_mlp.c) needs both for the same x. dx may be dy. */
    void (*gelu_both)(int64_t n, const float *x, const float *dy, float *y, float *dx);

    /* ---- appended: the weight gradient with the bias's, or NULL ----
     * conv_dw, and db (M) = the m images' dy summed over their positions,
     * overwritten, from the reads of dy conv_dw makes anyway (NULL db:
     * conv_dw); the same work. Where NULL the ops sum dy in a pass of its
     * own. */
    void (*conv_dw_db)(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                       int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                       const float *x, float *dw, float *db, float *work);

    /* ---- appended: group norm then SiLU into bf16 ----
     * groupnorm_silu_fwd with y rounded to bf16 (nearest, ties to even, as
     * vcvtneps2bf16: denormals to zero): a convolution's operand kept at
     * the precision of its products (gen_groupnorm_silu_operand). */
    void (*groupnorm_silu_fwd_b16)(int64_t N, int64_t C, int64_t HW, int64_t G, const float *x,
                                   const float *shift, const float *gamma, const float *beta,
                                   float eps, uint16_t *y, float *mean, float *rstd);

    /* ---- appended: convolutions of a bf16 operand, or NULL ----
     * conv_gemm and conv_dw_db with x held as bf16 (a tensor kept at the
     * precision of its products), with conv_gemm_work's and conv_dw_work's
     * work, for the geometries conv_b16_fits takes (the ops widen x to
     * fp32 for the others). */
    int (*conv_b16_fits)(int64_t C, int64_t KH, int64_t KW, int64_t stride);
    void (*conv_gemm_b16)(int64_t M, const float *Wm, int64_t C, int64_t H, int64_t W, int64_t KH,
                          int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                          const uint16_t *x, const float *bias, float beta, float *out, int64_t ldo,
                          int64_t out_img, float *work);
    void (*conv_dw_b16)(int64_t M, const float *dy, int64_t dy_img, int64_t C, int64_t H, int64_t W,
                        int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t m, int64_t img,
                        const uint16_t *x, float *dw, float *db, float *work);

    /* ---- appended: products of operands held as bf16, or all NULL ----
     * A tensor that only products read (the Transformer's qkv, which only
     * the attention's products read) can be held as the bf16 its products
     * round it to (gen_linear_operand): the same values in half the bytes,
     * and no rounding pass where it is read. gemm_bias_h: gemm_bias with C
     * written as bf16 (nearest, ties to even, as gen_bf16_pack rounds), K
     * at most GEN_BF16_C_DEPTH (one slice: C is never summed into), and A
     * floats or bf16. bpack_h and gemm_bpacked_h: bpack with B, and
     * gemm_bpacked with A, as bf16, rows ldb and lda values apart. Set in
     * the vdpbf16ps table alone. */
    void (*gemm_bias_h)(int ta, int tb, int64_t M, int64_t N, int64_t K, struct gen_chan A,
                        int64_t lda, const float *B, int64_t ldb, const float *bias, uint16_t *C,
                        int64_t ldc);
    void (*bpack_h)(int tb, int64_t K, int64_t N, const uint16_t *B, int64_t ldb, float *bp);
    void (*gemm_bpacked_h)(int ta, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *Ah,
                           int64_t lda, const float *bp, int64_t k0, int64_t kb, float beta,
                           const float *bias, float *C, int64_t ldc);

    /* ---- appended: layer norm into bf16, or NULL ----
     * layernorm_fwd with y rounded to bf16 (nearest, ties to even, as
     * gen_bf16_pack rounds): the input of a Transformer's products, which
     * nothing else reads (gen_layernorm_operand). Set with the entries
     * above. */
    void (*layernorm_fwd_b16)(int64_t rows, int64_t cols, const float *x, const float *gamma,
                              const float *beta, float eps, uint16_t *y, float *mean, float *rstd);
    /* gemm_bias (bias NULL: none) with alpha and beta, over the threads as
     * gemm splits them, of operands held either way: the bits gemm gives
     * on the floats the bf16 ones widen to. */
    void (*gemm_chan)(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                      struct gen_chan A, int64_t lda, struct gen_chan B, int64_t ldb, float beta,
                      const float *bias, float *C, int64_t ldc);

    /* ---- appended: the softmax into bf16 and back, or NULL ----
     * softmax_fwd with y rounded to bf16 (nearest, ties to even, as
     * gen_bf16_pack rounds), x its scratch (left holding the rows'
     * exponentials), and softmax_grad (GEN_GRAD_SET) of a y held as bf16,
     * dx rounded likewise: the attention's probabilities and their
     * gradient, which its products read as bf16, P kept for the backward
     * in half the bytes. Set with the entries above. */
    void (*softmax_fwd_b16)(int64_t rows, int64_t cols, float *x, uint16_t *y);
    void (*softmax_grad_b16)(int64_t rows, int64_t cols, const uint16_t *y, const float *dy,
                             uint16_t *dx);
};

/* The table in force, chosen once by gen_kernels_init (called by
 * gen_threads_init and lazily by gen_kernels()). */
const struct gen_kernels *gen_kernels(void);
/* Forces one ISA by name ("scalar", "avx2", "avx512"); returns 0 if the CPU
 * or the build lacks it. NULL chooses from GEN_ISA, then CPUID. */
int gen_kernels_select(const char *isa);
/* The table of one ISA, or NULL if this build/CPU lacks it (for tests).
 * "avx512bf16" and "amx" are the tables of --precision bf16 (below). */
const struct gen_kernels *gen_kernels_for(const char *isa);

/* The precision of the matrix products (gemm, conv_gemm, and so gen_gemm,
 * every linear layer, attention and convolution, forward and backward).
 * GEN_PRECISION_BF16 puts gen_kernels_bf16() in force: the AVX-512
 * table whose products round both operands to bf16 (nearest even) and
 * accumulate in fp32 (vdpbf16ps); everything else, weights, gradients,
 * optimiser and reductions, stays fp32. It needs AVX512_BF16 (CPUID leaf 7
 * sub-leaf 1, EAX bit 5), a compiler that knows -mavx512bf16, and the
 * AVX-512 kernels (not a GEN_ISA that forces others); where it cannot be
 * had, gen_kernels_set_precision changes nothing and returns 0 with
 * gen_last_error() saying which of these is missing. GEN_PRECISION_FP32
 * puts back the fp32 table of the same ISA. Call it where no kernel runs
 * (start-up, between steps): it switches the one process-wide table. */
enum gen_precision { GEN_PRECISION_FP32, GEN_PRECISION_BF16 };
/* The deepest product gemm_bias_h takes (K). */
#define GEN_BF16_C_DEPTH 384
int gen_kernels_set_precision(enum gen_precision p);
/* The table GEN_PRECISION_BF16 puts in force on this CPU and build: "amx"
 * (the products on AMX tiles, where CPUID reports AMX-BF16 and the kernel
 * grants their state), else "avx512bf16", else NULL. */
const struct gen_kernels *gen_kernels_bf16(void);
/* Whether the table in force is one GEN_PRECISION_BF16 can replace: the
 * AVX-512 one or a bf16 one (not one a GEN_ISA forced). */
int gen_kernels_bf16_beside(void);
enum gen_precision gen_kernels_precision(void);

/* Output size of a convolution along one axis. */
static inline int64_t gen_conv_out(int64_t in, int64_t k, int64_t stride, int64_t pad) {
    return (in + 2 * pad - k) / stride + 1;
}

/* C = alpha * op(A) op(B) + beta * C, row-major, through cblas_sgemm.
 * A is M x K (K x M if ta), B is K x N (N x K if tb). */
void gen_gemm(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, const float *B, float beta, float *C);
/* gen_gemm with leading dimensions: row r of the stored A, B, C starts at
 * A + r lda, B + r ldb, C + r ldc (lda >= K, or M if ta; ldb >= N, or K if
 * tb; ldc >= N), e.g. one head's columns of a packed (T, 3C) qkv. */
void gen_gemm_ld(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc);
/* C (M x N, rows N apart) = op(A) op(B) + bias (N values, added to every
 * row): the table's gemm_bias, else the bias copied into each row and
 * gen_gemm with beta 1 (the same bits). */
void gen_gemm_bias(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K,
                   const float *A, const float *B, const float *bias, float *C);
/* gen_gemm_bias with gen_gemm_ld's leading dimensions (bias: N values). */
void gen_gemm_bias_ld(enum gen_trans ta, enum gen_trans tb, int64_t M, int64_t N, int64_t K,
                      const float *A, int64_t lda, const float *B, int64_t ldb, const float *bias,
                      float *C, int64_t ldc);
/* y = alpha op(A) x + beta y on the calling thread, never an OpenMP region:
 * A (M, N) row-major with rows lda apart (lda >= N); op(A) = A: x (N), y
 * (M); trans: A^T: x (M), y (N). beta == 0: y is not read. The AVX-512
 * tables' own kernel (src/kernels/gemv_avx512.c: each element the same
 * operations whatever M and N), else OpenBLAS's cblas_sgemv. */
void gen_gemv(enum gen_trans trans, int64_t M, int64_t N, float alpha, const float *A, int64_t lda,
              const float *x, float beta, float *y);
/* The rows the AVX-512 table's A x sums at once (the same bits either
 * way): 4, 2, or 0 to choose by the CPU (2 on AMD's, else 4); for tests
 * and benchmarks. */
void gen_gemv_group(int rows);
/* x (n) rounded to bf16 as the bf16 products round their operands
 * (nearest, ties to even; denormals to zero; NaN stays NaN): kept as
 * floats (gen_bf16_round, y may be x) or as bf16, the upper halves of the
 * floats' bits (gen_bf16_pack). On the calling thread. */
void gen_bf16_round(int64_t n, const float *x, float *y);
void gen_bf16_pack(int64_t n, const float *x, uint16_t *y);
/* y = A x + beta y (beta == 0: y is not read) on the calling thread, for
 * A (M, N) of bf16 (gen_bf16_pack) with rows lda apart: each product in
 * fp32 (exact where x holds bf16 values, gen_bf16_round), summed as
 * gen_gemv's kernel sums (each y_i the same operations whatever M).
 * --precision bf16's one-token decoding streams its weights so, half the
 * bytes of fp32. The AVX-512 kernel where the table in force is an
 * AVX-512 one, else a plain loop. */
void gen_gemv_bf16(int64_t M, int64_t N, const uint16_t *A, int64_t lda, const float *x,
                   float beta, float *y);

#endif
