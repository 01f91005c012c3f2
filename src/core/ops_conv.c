/* ops_conv.c - conv2d, conv_transpose2d and nearest 2x upsampling.
 *
 * Both convolutions walk the minibatch in chunks of nb images, one chunk
 * per OpenMP task: the chunk's column matrix col (K, nb P) (image i's (K, P)
 * im2col block in columns [i P, (i+1) P), written in place by im2col_ld)
 * lives in per-thread scratch sized to stay near L2, and each direction is
 * one GEMM per chunk on one thread (OpenBLAS's OpenMP build runs serially
 * inside a parallel region). Nothing of size (K, N P) is ever built: the
 * backward pass recomputes im2col from x, which is cheaper than writing
 * and re-reading the whole batch's columns through memory.
 * The chunking depends only on the shapes, never on the thread count; each
 * chunk writes disjoint rows of y / dx, and its dW (db) goes into its own
 * partial, summed in chunk order. So results do not depend on the thread
 * count, nor on which thread takes a chunk: the chunks are handed out one
 * at a time as threads come free (schedule(dynamic)), since on a shared
 * machine one thread often runs behind (a Zen 3 VM, 2 threads, diffusion
 * steps, medians of 8 interleaved, two runs: 424 -> 386 and 426 -> 401
 * ms against a static split, where each thread waited 5-6 % of the step
 * at the end of the convolutions' loops). A single chunk (N == 1) runs
 * outside the parallel region, so that
 * its GEMMs get every thread. Where the kernel table has its own
 * convolution kernels (conv_gemm, conv_dw, conv_dx) and they take the
 * geometry (their work sizes are not 0; the AVX2 table's take stride 1
 * and some stride-2 ones), both ops run through them: a transposed convolution's forward
 * pass is a conv2d's input gradient, its input gradient a conv2d's
 * forward pass, its weight gradient a conv2d's with x and dy swapped. */
#include <string.h>

#include "core/ops.h"

static float *grad_or_null(struct gen_ctx *g, struct gen_tensor *t) {
    return t && t->requires_grad ? gen_grad(g, t) : NULL;
}

/* ---- chunks of images ----------------------------------------------------- */

/* Floats of one chunk's column block that keep it near L2 (1 MiB). */
#define CHUNK_FLOATS ((int64_t)1 << 18)
/* At least this many chunks (or N) so every thread of a typical machine
 * has work; a constant, so the chunking never depends on the thread count. */
#define MIN_CHUNKS 8

struct chunks {
    int64_t nb, count; /* images per chunk (the last may have fewer), chunks */
};

/* N images in `count` (at most N) chunks of near-equal size. */
static struct chunks chunks_of(int64_t N, int64_t count) {
    if (N <= 0) return (struct chunks){1, 0};
    if (count > N) count = N;
    const int64_t nb = (N + count - 1) / count;
    return (struct chunks){nb, (N + nb - 1) / nb};
}

/* Chunks for a batch of N images whose per-image column block is rows x P. */
static struct chunks chunk_images(int64_t N, int64_t rows, int64_t P) {
    int64_t nb = CHUNK_FLOATS / (rows * P > 0 ? rows * P : 1);
    if (nb < 1) nb = 1;
    /* whole multiples of MIN_CHUNKS, so that 2, 4 or 8 threads get equal
     * shares */
    const int64_t count = N > 0 ? ((N + nb - 1) / nb + MIN_CHUNKS - 1) / MIN_CHUNKS * MIN_CHUNKS : 0;
    return chunks_of(N, count);
}

/* Images [n0, n0 + m) of chunk ch. */
static int64_t chunk_first(const struct chunks *k, int64_t ch) { return ch * k->nb; }
static int64_t chunk_len(const struct chunks *k, int64_t ch, int64_t N) {
    const int64_t n0 = ch * k->nb;
    return N - n0 < k->nb ? N - n0 : k->nb;
}

/* m images of (R, P) at x, img floats apart -> mat (R, m P); returns x
 * itself when m == 1. */
static const float *gather_cols(int64_t m, int64_t R, int64_t P, int64_t img, const float *x,
                                float *mat) {
    if (m == 1) return x;
    for (int64_t i = 0; i < m; i++)
        for (int64_t r = 0; r < R; r++)
            memcpy(mat + r * m * P + i * P, x + i * img + r * P, (size_t)P * sizeof(float));
    return mat;
}

/* Small in-cache row operations, inline rather than through the kernel
 * table: the table's kernels open an OpenMP region (if'd off) per call,
 * which costs microseconds and futex calls when nested in the chunk loop,
 * and these run thousands of times per op on rows of P floats. */
static void row_fill(int64_t n, float v, float *y) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = v;
}

static void row_acc(int64_t n, const float *restrict x, float *restrict y) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* y (+)= x, as `mode` says. */
static void row_put(enum gen_grad_mode mode, int64_t n, const float *restrict x,
                    float *restrict y) {
    if (mode == GEN_GRAD_ADD) {
        row_acc(n, x, y);
        return;
    }
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
}

/* db[c] += sum over n, p of dy (N, C, P), in double per channel: its N
 * runs of P floats through the table's runs_sum (batch norm's), with no
 * call or horizontal sum a run (a call of the table's sum a row, 64
 * images at 2 threads, took 1.4-1.7 times as long on 14 x 14 planes and
 * 2-3 times on 7 x 7 ones; the same on 28 x 28). */
static void bias_grad(int64_t N, int64_t C, int64_t P, int64_t img, const float *dy, float *db) {
    const struct gen_kernels *kt = gen_kernels();
#pragma omp parallel for schedule(static) if (C > 1 && N * C * P > ((int64_t)1 << 15))
    for (int64_t c = 0; c < C; c++) db[c] += (float)kt->runs_sum(N, P, img, dy + c * P);
}

/* ---- conv2d -------------------------------------------------------------- */

/* Geometry shared by forward and backward. */
struct conv_geo {
    int64_t N, Cin, H, W, Cout, KH, KW, stride, pad, OH, OW;
    int64_t K, P, img; /* K = Cin KH KW, P = OH OW, img = Cin H W */
    int64_t yimg;      /* floats from one image's output (Cout, OH, OW) to the next: Cout P,
                        * or more where the output is the first channels of a wider tensor */
    int pointwise;     /* 1x1, stride 1, pad 0: an image's col is the image */
};

/* N images (Cin, H, W) into Cout channels by KH x KW kernels. */
static struct conv_geo geo_make(int64_t N, int64_t Cin, int64_t H, int64_t W, int64_t Cout,
                                int64_t KH, int64_t KW, int64_t stride, int64_t pad) {
    GEN_ASSERT(stride >= 1 && pad >= 0);
    struct conv_geo c = {.N = N, .Cin = Cin, .H = H, .W = W, .Cout = Cout, .KH = KH, .KW = KW,
                         .stride = stride, .pad = pad};
    c.OH = gen_conv_out(c.H, c.KH, stride, pad);
    c.OW = gen_conv_out(c.W, c.KW, stride, pad);
    GEN_ASSERT(c.OH >= 1 && c.OW >= 1);
    c.K = c.Cin * c.KH * c.KW;
    c.P = c.OH * c.OW;
    c.img = c.Cin * c.H * c.W;
    c.yimg = c.Cout * c.P;
    c.pointwise = c.KH == 1 && c.KW == 1 && stride == 1 && pad == 0;
    return c;
}

static struct conv_geo conv_geo(const struct gen_tensor *x, const struct gen_tensor *w, int64_t stride,
                                int64_t pad) {
    GEN_ASSERT(x->ndim == 4 && w->ndim == 4 && x->shape[1] == w->shape[1]);
    return geo_make(x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2],
                    w->shape[3], stride, pad);
}

/* The chunks of the table's conv_gemm for c: chunk_images', or, where the
 * table wants calls of more images (conv_gemm_images), chunks of that
 * many, in whole multiples of MIN_CHUNKS like chunk_images'. */
static struct chunks conv_chunks(const struct gen_kernels *kt, const struct conv_geo *c) {
    const struct chunks k = chunk_images(c->N, c->K, c->P);
    const int64_t want =
        kt->conv_gemm_images
            ? kt->conv_gemm_images(c->Cout, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad)
            : 0;
    if (want <= k.nb) return k;
    const int64_t count = ((c->N + want - 1) / want + MIN_CHUNKS - 1) / MIN_CHUNKS * MIN_CHUNKS;
    return chunks_of(c->N, count);
}

/* col (K, m P) of images [n0, n0 + m) into `buf`; x's own image when it is
 * its own col (pointwise, m == 1). */
static const float *conv_cols(const struct conv_geo *c, const float *x, int64_t n0, int64_t m,
                              float *buf) {
    if (c->pointwise && m == 1) return x + n0 * c->img;
    const struct gen_kernels *kt = gen_kernels();
    for (int64_t i = 0; i < m; i++)
        kt->im2col_ld(c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, m * c->P,
                      x + (n0 + i) * c->img, buf + i * c->P);
    return buf;
}

/* The kernels w (M x C KH KW) in the form the table's conv_gemm takes for
 * this geometry: prepared once into scratch where it wants them
 * transformed, else w itself. */
static const float *conv_kernels(struct gen_ctx *g, const struct gen_kernels *kt, int64_t M,
                                 int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                                 int64_t stride, int64_t pad, const float *w) {
    const int64_t n = kt->conv_prep_work ? kt->conv_prep_work(M, C, H, W, KH, KW, stride, pad) : 0;
    if (n <= 0) return w;
    float *prep = gen_scratch_floats(g, n);
    kt->conv_prep(M, C, H, W, KH, KW, stride, pad, w, prep);
    return prep;
}

/* Whether the table takes c's input as bf16 (conv_b16_fits) */
static int takes_b16(const struct gen_kernels *kt, const struct conv_geo *c) {
    return kt->conv_b16_fits && kt->conv_b16_fits(c->Cin, c->KH, c->KW, c->stride);
}

/* The n bf16 values at xh as fp32 (exactly), in scratch: for the
 * convolutions a table does not take from bf16. */
static const float *widen_operand(struct gen_ctx *g, const uint16_t *xh, int64_t n) {
    float *x = gen_scratch_floats(g, n);
    uint32_t *u = (uint32_t *)(void *)x;
#pragma omp parallel for schedule(static) if (n >= ((int64_t)1 << 16))
    for (int64_t i = 0; i < n; i++) u[i] = (uint32_t)xh[i] << 16;
    return x;
}

/* y = beta y + bias + w (Cout x K) col(x) for the images of c, by the
 * table's implicit GEMM, chunk by chunk: each image's (Cout, OH, OW) block
 * straight into y; 0 (nothing done) where the table has none or it does
 * not take the geometry. x's values are at x, or as bf16 at xh (x NULL:
 * the table's conv_gemm_b16). */
static int implicit_conv(struct gen_ctx *g, const struct gen_kernels *kt, const struct conv_geo *c,
                         const float *x, const uint16_t *xh, const float *w, const float *bias,
                         float beta, float *y) {
    const struct chunks k = conv_chunks(kt, c);
    if (xh && !takes_b16(kt, c)) return 0;
    const int64_t work = kt->conv_gemm ? kt->conv_gemm_work(c->Cout, c->Cin, c->H, c->W, c->KH,
                                                            c->KW, c->stride, c->pad, k.nb)
                                       : 0;
    if (work <= 0) return 0;
    const int64_t per = gen_lines(work);
    const float *wk =
        conv_kernels(g, kt, c->Cout, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, w);
    float *scratch = gen_scratch_floats(g, (int64_t)gen_task_threads() * per);
#pragma omp parallel for schedule(dynamic, 1) if (k.count > 1)
    for (int64_t ch = 0; ch < k.count; ch++) {
        const int64_t n0 = chunk_first(&k, ch), m = chunk_len(&k, ch, c->N);
        float *yn = y + n0 * c->yimg, *wkn = scratch + gen_task_id() * per;
        if (xh)
            kt->conv_gemm_b16(c->Cout, wk, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, m,
                              c->img, xh + n0 * c->img, bias, beta, yn, c->P, c->yimg, wkn);
        else
            kt->conv_gemm(c->Cout, wk, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, m,
                          c->img, x + n0 * c->img, bias, beta, yn, c->P, c->yimg, wkn);
    }
    return 1;
}

/* dx = beta dx + col2im(w^T dy) for the images of c (dy: their (Cout, OH,
 * OW) gradients), by the table's conv_dx, chunk by chunk; 0 (nothing done)
 * where the table has none or it does not take the geometry. */
static int implicit_dx(struct gen_ctx *g, const struct gen_kernels *kt, const struct conv_geo *c,
                       const float *dy, const float *w, float beta, float *dx) {
    const struct chunks k = chunk_images(c->N, c->K, c->P);
    const int64_t work = kt->conv_dx_work ? kt->conv_dx_work(c->Cout, c->Cin, c->H, c->W, c->KH,
                                                             c->KW, c->stride, c->pad, k.nb)
                                          : 0;
    if (work <= 0) return 0;
    float *prep = gen_scratch_floats(
        g, kt->conv_dx_prep_work(c->Cout, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad));
    kt->conv_dx_prep(c->Cout, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, w, prep);
    const int64_t per = gen_lines(work);
    float *scratch = gen_scratch_floats(g, (int64_t)gen_task_threads() * per);
#pragma omp parallel for schedule(dynamic, 1) if (k.count > 1)
    for (int64_t ch = 0; ch < k.count; ch++) {
        const int64_t n0 = chunk_first(&k, ch), m = chunk_len(&k, ch, c->N);
        kt->conv_dx(c->Cout, prep, dy + n0 * c->yimg, c->yimg, c->Cin, c->H, c->W, c->KH, c->KW,
                    c->stride, c->pad, m, c->img, beta, dx + n0 * c->img,
                    scratch + gen_task_id() * per);
    }
    return 1;
}

/* y = beta y + bias + w (Cout, K) col(x) (beta 0 or 1): the table's
 * implicit GEMM where it takes the geometry, else chunk by chunk through
 * col and ymat (Cout, m P). x's values are at x, or as bf16 at xh (x
 * NULL), widened where the table's conv_gemm_b16 does not take them. */
static void conv_forward(struct gen_ctx *g, const struct conv_geo *c, struct gen_chan op,
                         const float *w, const float *bias, float beta, float *y) {
    const float *x = op.f;
    const uint16_t *xh = op.h;
    const struct gen_kernels *kt = gen_kernels();
    if (xh && implicit_conv(g, kt, c, NULL, xh, w, bias, beta, y)) return;
    if (xh) x = widen_operand(g, xh, c->N * c->img);
    if (implicit_conv(g, kt, c, x, NULL, w, bias, beta, y)) return;
    const struct chunks k = chunk_images(c->N, c->K, c->P);
    const int64_t cols = k.nb * c->P, per = gen_lines(c->K * cols) + gen_lines(c->Cout * cols);
    float *scratch = gen_scratch_floats(g, (int64_t)gen_task_threads() * per);
#pragma omp parallel for schedule(dynamic, 1) if (k.count > 1)
    for (int64_t ch = 0; ch < k.count; ch++) {
        const int64_t n0 = chunk_first(&k, ch), m = chunk_len(&k, ch, c->N), ld = m * c->P;
        float *buf = scratch + gen_task_id() * per, *yn = y + n0 * c->yimg;
        /* one image: straight into y (bias added to, or filled into, its
         * rows first); several: ymat = bias + the product, then added to
         * (or copied into) their blocks of y */
        float *out = m == 1 ? yn : buf + gen_lines(c->K * cols);
        const float in = m == 1 ? beta : 0.0f;
        if (bias)
            for (int64_t co = 0; co < c->Cout; co++) {
                float *r = out + co * ld;
                if (in == 0.0f)
                    row_fill(ld, bias[co], r);
                else
                    for (int64_t j = 0; j < ld; j++) r[j] += bias[co];
            }
        gen_gemm(GEN_NOTRANS, GEN_NOTRANS, c->Cout, ld, c->K, 1.0f, w, conv_cols(c, x, n0, m, buf),
                 bias || in != 0.0f ? 1.0f : 0.0f, out);
        if (m > 1)
            for (int64_t i = 0; i < m; i++)
                for (int64_t co = 0; co < c->Cout; co++) {
                    float *dst = y + (n0 + i) * c->yimg + co * c->P;
                    const float *src = out + co * ld + i * c->P;
                    if (beta != 0.0f)
                        for (int64_t j = 0; j < c->P; j++) dst[j] += src[j];
                    else
                        memcpy(dst, src, (size_t)c->P * sizeof(float));
                }
    }
}

struct gen_tensor *gen_conv2d(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                              struct gen_tensor *b, int stride, int pad) {
    const struct conv_geo c = conv_geo(x, w, stride, pad);
    GEN_ASSERT(!b || gen_numel(b) == c.Cout);
    struct gen_tensor *y = gen_tensor_4d(g, c.N, c.Cout, c.OH, c.OW);
    conv_forward(g, &c, gen_operand(x), w->data, b ? b->data : NULL, 0.0f, y->data);
    struct gen_node *node = gen_record(g, GEN_OP_CONV2D, y, 3, (struct gen_tensor *[]){x, w, b});
    if (node) {
        node->i[0] = stride;
        node->i[1] = pad;
    }
    gen_scratch_release(g);
    return y;
}

/* y = conv2d(x, w, b) + (r, or conv2d(x2, w2, b2)): r copied into y, or
 * the second convolution written there, then the first added onto it
 * (beta 1), so that neither convolution has a tensor of its own. Inputs
 * x, w, b, r or x, w, b, x2, w2, b2; i[0..3] the strides and pads. */
static struct gen_tensor *conv2d_add(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                     struct gen_tensor *b, int stride, int pad,
                                     struct gen_tensor *r, struct gen_tensor *x2,
                                     struct gen_tensor *w2, struct gen_tensor *b2, int stride2,
                                     int pad2) {
    const struct conv_geo c = conv_geo(x, w, stride, pad);
    GEN_ASSERT(!b || gen_numel(b) == c.Cout);
    struct gen_tensor *y = gen_tensor_4d(g, c.N, c.Cout, c.OH, c.OW);
    if (r) {
        GEN_ASSERT(gen_numel(r) == gen_numel(y) && !r->bf16);
        memcpy(y->data, r->data, (size_t)gen_numel(y) * sizeof(float));
    } else {
        const struct conv_geo c2 = conv_geo(x2, w2, stride2, pad2);
        GEN_ASSERT(c2.N == c.N && c2.Cout == c.Cout && c2.OH == c.OH && c2.OW == c.OW);
        GEN_ASSERT(!b2 || gen_numel(b2) == c.Cout);
        conv_forward(g, &c2, gen_operand(x2), w2->data, b2 ? b2->data : NULL, 0.0f, y->data);
        gen_scratch_release(g);
    }
    conv_forward(g, &c, gen_operand(x), w->data, b ? b->data : NULL, 1.0f, y->data);
    struct gen_node *node =
        r ? gen_record(g, GEN_OP_CONV2D_ADD, y, 4, (struct gen_tensor *[]){x, w, b, r})
          : gen_record(g, GEN_OP_CONV2D_ADD, y, 6, (struct gen_tensor *[]){x, w, b, x2, w2, b2});
    if (node) {
        node->i[0] = stride, node->i[1] = pad;
        node->i[2] = stride2, node->i[3] = pad2;
    }
    gen_scratch_release(g);
    return y;
}

struct gen_tensor *gen_conv2d_add(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                  struct gen_tensor *b, int stride, int pad, struct gen_tensor *r) {
    GEN_ASSERT(r);
    return conv2d_add(g, x, w, b, stride, pad, r, NULL, NULL, NULL, 0, 0);
}

struct gen_tensor *gen_conv2d_sum(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                  struct gen_tensor *b, int stride, int pad, struct gen_tensor *x2,
                                  struct gen_tensor *w2, struct gen_tensor *b2, int stride2,
                                  int pad2) {
    return conv2d_add(g, x, w, b, stride, pad, NULL, x2, w2, b2, stride2, pad2);
}

struct gen_tensor *gen_conv2d_concat(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                     struct gen_tensor *b, int stride, int pad,
                                     struct gen_tensor *s) {
    struct conv_geo c = conv_geo(x, w, stride, pad);
    GEN_ASSERT(!b || gen_numel(b) == c.Cout);
    GEN_ASSERT(s->ndim == 4 && s->shape[0] == c.N && s->shape[2] == c.OH && s->shape[3] == c.OW &&
               !s->bf16);
    struct gen_tensor *y = gen_tensor_4d(g, c.N, c.Cout + s->shape[1], c.OH, c.OW);
    c.yimg = y->shape[1] * c.P; /* the convolution's channels first in each image */
    conv_forward(g, &c, gen_operand(x), w->data, b ? b->data : NULL, 0.0f, y->data);
    const int64_t ns = s->shape[1] * c.P;
    gen_copy_blocks(c.N, ns, s->data, ns, y->data + c.Cout * c.P, c.yimg);
    struct gen_node *node =
        gen_record(g, GEN_OP_CONV2D_CONCAT, y, 4, (struct gen_tensor *[]){x, w, b, s});
    if (node) node->i[0] = stride, node->i[1] = pad;
    gen_scratch_release(g);
    return y;
}

/* The table's conv_dw_work for chunks of m images (0: not taken). */
static int64_t dw_work(const struct gen_kernels *kt, const struct conv_geo *c, int64_t m) {
    return kt->conv_dw_work(c->Cout, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, m);
}

/* The chunks of images for the table's conv_dw (*work: one chunk's
 * conv_dw_work, 0 where the table does not take the geometry):
 * MIN_CHUNKS (conv_dw's work does not grow with a column matrix, and each
 * chunk's partial dw costs a pass), doubled while a chunk's work is past
 * the CHUNK_FLOATS that keep it near L2, smaller chunks need less, and
 * the partial dws of twice the chunks (each written once and summed once)
 * come to no more than one such chunk's work. The U-Net's 3 x 3 stride-2 32 -> 32 at
 * 28 x 28 (64 images) takes 16 on the AVX-512 table: 8 images' channels-
 * last copy, dy and its packing, 1.3 MB, overflowed the 1 MB L2 of the
 * Zen 5 VM, and the convolution, forward and backward, went 3.07 -> 2.83
 * ms (medians of 6 alternating rounds of `bench_ops ops 21 conv`). The
 * GAN's 4 x 4 64 -> 128, whose partials are 128 x 1024, and AVX-512's
 * Winograd, whose work does not shrink, keep 8 (16 had cost the first
 * about 3 %). The count depends on the shapes and the table only. */
static struct chunks dw_chunks(const struct gen_kernels *kt, const struct conv_geo *c,
                               int64_t *work) {
    struct chunks k = chunks_of(c->N, MIN_CHUNKS);
    *work = dw_work(kt, c, k.nb);
    for (;;) {
        const struct chunks next = chunks_of(c->N, 2 * k.count);
        if (next.count <= k.count || *work <= CHUNK_FLOATS) return k;
        const int64_t then = dw_work(kt, c, next.nb);
        if (then >= *work || next.count * c->Cout * c->K > then) return k;
        k = next, *work = then;
    }
}

/* dw (as `mode` says) by the table's conv_dw, from dy and x in place, in
 * dw_chunks' chunks of images, summed in chunk order; 0 (nothing done)
 * where the table has none or it does not take the geometry. Where the
 * table has conv_dw_db (or conv_dw_b16) and db and *db are not NULL, the
 * bias gradient is added to *db the same way, and *db set to NULL. x's
 * values are at x, or as bf16 at xh (x NULL: the table's conv_dw_b16). */
static int implicit_weight_grad(struct gen_ctx *g, const struct gen_kernels *kt,
                                const struct conv_geo *c, const float *x, const uint16_t *xh,
                                const float *dy, float *dw, enum gen_grad_mode mode, float **db) {
    if (xh && !takes_b16(kt, c)) return 0;
    if (!kt->conv_dw) return 0;
    int64_t work;
    const struct chunks kk = dw_chunks(kt, c, &work); /* work: one chunk's (0: not taken) */
    if (work <= 0) return 0;
    float *bias = (xh || kt->conv_dw_db) && db ? *db : NULL;
    if (bias) *db = NULL;
    if (kk.count == 0) { /* no images: a zero gradient (col_sum of no rows) */
        gen_put_rows_sum(mode, 0, c->Cout * c->K, NULL, c->Cout * c->K, dw);
        return 1;
    }
    const int64_t per = gen_lines(work);
    float *scratch = gen_scratch_floats(g, (int64_t)gen_task_threads() * per);
    float *part = gen_scratch_floats(g, kk.count * c->Cout * c->K);
    float *bpart = bias ? gen_scratch_floats(g, kk.count * c->Cout) : NULL;
#pragma omp parallel for schedule(dynamic, 1) if (kk.count > 1)
    for (int64_t ch = 0; ch < kk.count; ch++) {
        const int64_t n0 = chunk_first(&kk, ch), m = chunk_len(&kk, ch, c->N);
        const float *dyn = dy + n0 * c->yimg;
        float *dwn = part + ch * c->Cout * c->K, *wk = scratch + gen_task_id() * per;
        if (xh) {
            kt->conv_dw_b16(c->Cout, dyn, c->yimg, c->Cin, c->H, c->W, c->KH, c->KW, c->stride,
                            c->pad, m, c->img, xh + n0 * c->img, dwn,
                            bias ? bpart + ch * c->Cout : NULL, wk);
            continue;
        }
        const float *xn = x + n0 * c->img;
        if (bias)
            kt->conv_dw_db(c->Cout, dyn, c->yimg, c->Cin, c->H, c->W, c->KH, c->KW, c->stride,
                           c->pad, m, c->img, xn, dwn, bpart + ch * c->Cout, wk);
        else
            kt->conv_dw(c->Cout, dyn, c->yimg, c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad,
                        m, c->img, xn, dwn, wk);
    }
    gen_put_rows_sum(mode, kk.count, c->Cout * c->K, part, c->Cout * c->K, dw);
    if (bias) gen_put_rows_sum(GEN_GRAD_ADD, kk.count, c->Cout, bpart, c->Cout, bias);
    gen_scratch_release(g); /* before the input gradient takes its own */
    return 1;
}

/* The table's kernels, where it has them: conv_dw forms dW from dy and x
 * in place, in chunks of its own (implicit_weight_grad: no col, no
 * dymat); a stride-1 square kernel's dx is the convolution of dy with the
 * flipped, transposed kernel wf (Cin, Cout KH KW), padded KH - 1 - pad,
 * through conv_gemm; a strided one's comes from conv_dx where it takes the
 * geometry. Neither writes a dcol or runs col2im.
 * Else, per chunk, dy as dymat (Cout, m P) and col recomputed from x:
 *   dW_chunk = dymat col^T, dcol = W^T dymat, dx += col2im(dcol);
 * dW += the chunks' dW in chunk order. db += row sums either way. */
static void conv_backward(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                          struct gen_tensor *b, int64_t stride, int64_t pad, const float *dy,
                          int64_t dy_img) {
    struct conv_geo c = conv_geo(x, w, stride, pad);
    if (dy_img) c.yimg = dy_img; /* dy's images: the first channels of a wider gradient */
    float *db = grad_or_null(g, b);
    enum gen_grad_mode dw_mode, dx_mode;
    float *dw = gen_grad_dst_or_null(g, w, &dw_mode), *dx = gen_grad_dst_or_null(g, x, &dx_mode);
    const struct gen_kernels *kt = gen_kernels();
    /* x's values for the weight gradient: as bf16 where the table takes
     * them so, else widened from bf16 (xf: for the chunks below too) */
    const struct gen_chan xo = gen_operand(x);
    const uint16_t *xh = xo.h;
    const float *xf = xo.f;
    if (dw && xh && implicit_weight_grad(g, kt, &c, NULL, xh, dy, dw, dw_mode, &db)) dw = NULL;
    if (dw && !xf) xf = widen_operand(g, xh, c.N * c.img);
    if (dw && implicit_weight_grad(g, kt, &c, xf, NULL, dy, dw, dw_mode, &db)) dw = NULL;
    if (db) bias_grad(c.N, c.Cout, c.P, c.yimg, dy, db);
    if (dx && kt->conv_gemm && c.stride == 1 && c.KH == c.KW && c.pad < c.KH) {
        const int64_t K2 = c.Cout * c.KH * c.KW;
        float *wf = gen_scratch_floats(g, c.Cin * K2);
#pragma omp parallel for schedule(static) if (c.Cin > 1 && c.Cin * K2 >= ((int64_t)1 << 15))
        for (int64_t ci = 0; ci < c.Cin; ci++)
            for (int64_t co = 0; co < c.Cout; co++)
                for (int64_t kh = 0; kh < c.KH; kh++)
                    for (int64_t kw = 0; kw < c.KW; kw++)
                        wf[ci * K2 + (co * c.KH + kh) * c.KW + kw] =
                            w->data[((co * c.Cin + ci) * c.KH + c.KH - 1 - kh) * c.KW + c.KW - 1 - kw];
        struct conv_geo cf =
            geo_make(c.N, c.Cout, c.OH, c.OW, c.Cin, c.KH, c.KW, 1, c.KH - 1 - c.pad);
        cf.img = c.yimg; /* its input is dy */
        if (implicit_conv(g, kt, &cf, dy, NULL, wf, NULL, gen_put_beta(dx_mode), dx)) dx = NULL;
    }
    if (dx && implicit_dx(g, kt, &c, dy, w->data, gen_put_beta(dx_mode), dx)) dx = NULL;
    if (!dw && !dx) return;

    const struct chunks k = chunk_images(c.N, c.K, c.P);
    /* col, dcol, dymat */
    const int64_t cols = k.nb * c.P, per = gen_lines((2 * c.K + c.Cout) * cols);
    float *scratch = gen_scratch_floats(g, (int64_t)gen_task_threads() * per);
    /* (chunks, Cout, K) */
    float *dw_part = dw ? gen_scratch_floats(g, k.count * c.Cout * c.K) : NULL;
#pragma omp parallel for schedule(dynamic, 1) if (k.count > 1)
    for (int64_t ch = 0; ch < k.count; ch++) {
        const int64_t n0 = chunk_first(&k, ch), m = chunk_len(&k, ch, c.N), ld = m * c.P;
        float *buf = scratch + gen_task_id() * per, *dcol = buf + c.K * cols;
        const float *dymat =
            gather_cols(m, c.Cout, c.P, c.yimg, dy + n0 * c.yimg, dcol + c.K * cols);
        if (dw) {
            const float *col = conv_cols(&c, xf, n0, m, buf);
            gen_gemm(GEN_NOTRANS, GEN_TRANS, c.Cout, c.K, ld, 1.0f, dymat, col, 0.0f,
                     dw_part + ch * c.Cout * c.K);
        }
        if (!dx) continue;
        float *dxn = dx + n0 * c.img;
        if (c.pointwise && m == 1) { /* dx (+)= W^T dy, straight into dx */
            gen_gemm(GEN_TRANS, GEN_NOTRANS, c.K, ld, c.Cout, 1.0f, w->data, dymat,
                     gen_put_beta(dx_mode), dxn);
            continue;
        }
        gen_gemm(GEN_TRANS, GEN_NOTRANS, c.K, ld, c.Cout, 1.0f, w->data, dymat, 0.0f, dcol);
        /* col2im adds overlapping windows: start the chunk's dx from zero */
        if (dx_mode == GEN_GRAD_SET) row_fill(m * c.img, 0.0f, dxn);
        for (int64_t i = 0; i < m; i++)
            kt->col2im_ld(c.Cin, c.H, c.W, c.KH, c.KW, c.stride, c.pad, ld, dcol + i * c.P,
                          dxn + i * c.img);
    }
    /* the chunks' partials, in chunk order */
    if (dw_part) gen_put_rows_sum(dw_mode, k.count, c.Cout * c.K, dw_part, c.Cout * c.K, dw);
}

GEN_BACKWARD(conv2d) {
    conv_backward(g, node->in[0], node->in[1], node->in[2], node->i[0], node->i[1], node->out->grad,
                  0);
}

/* Each convolution's backward from dy; r's gradient is dy itself (passed
 * on, or added). */
GEN_BACKWARD(conv2d_add) {
    const float *dy = node->out->grad;
    conv_backward(g, node->in[0], node->in[1], node->in[2], node->i[0], node->i[1], dy, 0);
    gen_scratch_release(g);
    if (node->n_in == 6) {
        conv_backward(g, node->in[3], node->in[4], node->in[5], node->i[2], node->i[3], dy, 0);
        return;
    }
    struct gen_tensor *r = node->in[3];
    if (r->requires_grad && !gen_grad_pass(r, node->out)) gen_grad_axpy(g, r, 1.0f, dy);
}

/* The convolution's backward from its channels of dy in place; s's
 * gradient from the others. */
GEN_BACKWARD(conv2d_concat) {
    struct gen_tensor *y = node->out;
    const int64_t Cout = node->in[1]->shape[0], P = y->shape[2] * y->shape[3];
    conv_backward(g, node->in[0], node->in[1], node->in[2], node->i[0], node->i[1], y->grad,
                  y->shape[1] * P);
    gen_scratch_release(g);
    gen_grad_put_blocks(g, node->in[3], y->grad + Cout * P, y->shape[1] * P);
}

/* ---- conv_transpose2d ---------------------------------------------------- */

/* The adjoint of conv2d with the roles of input and output swapped: x
 * (N, Cin, H, W) plays conv2d's output, y (N, Cout, OH, OW) its input,
 * and w (Cin, Cout, KH, KW) is conv2d's weight (Cin, Cout KH KW). */
struct convt_geo {
    int64_t N, Cin, H, W, Cout, KH, KW, stride, pad, OH, OW;
    int64_t K2, HW, OHW; /* K2 = Cout KH KW */
};

static struct convt_geo convt_geo(const struct gen_tensor *x, const struct gen_tensor *w,
                                  int64_t stride, int64_t pad) {
    GEN_ASSERT(x->ndim == 4 && w->ndim == 4 && x->shape[1] == w->shape[0]);
    GEN_ASSERT(stride >= 1 && pad >= 0);
    struct convt_geo c = {.N = x->shape[0], .Cin = x->shape[1], .H = x->shape[2], .W = x->shape[3],
                          .Cout = w->shape[1], .KH = w->shape[2], .KW = w->shape[3],
                          .stride = stride, .pad = pad};
    c.OH = (c.H - 1) * stride - 2 * pad + c.KH;
    c.OW = (c.W - 1) * stride - 2 * pad + c.KW;
    GEN_ASSERT(c.OH >= 1 && c.OW >= 1);
    /* col2im/im2col over (Cout, OH, OW) must see an H x W output grid. */
    GEN_ASSERT(gen_conv_out(c.OH, c.KH, stride, pad) == c.H);
    GEN_ASSERT(gen_conv_out(c.OW, c.KW, stride, pad) == c.W);
    c.K2 = c.Cout * c.KH * c.KW;
    c.HW = c.H * c.W;
    c.OHW = c.OH * c.OW;
    return c;
}

/* The conv2d whose input gradient this is: its input is y (N, Cout, OH,
 * OW), its output x, its weights w (Cin x Cout KH KW). */
static struct conv_geo convt_as_conv(const struct convt_geo *t) {
    return geo_make(t->N, t->Cout, t->OH, t->OW, t->Cin, t->KH, t->KW, t->stride, t->pad);
}

struct gen_tensor *gen_conv_transpose2d(struct gen_ctx *g, struct gen_tensor *x,
                                        struct gen_tensor *w, struct gen_tensor *b, int stride,
                                        int pad) {
    const struct convt_geo c = convt_geo(x, w, stride, pad);
    GEN_ASSERT(!b || gen_numel(b) == c.Cout);
    struct gen_tensor *y = gen_tensor_4d(g, c.N, c.Cout, c.OH, c.OW);
    const struct gen_kernels *kt = gen_kernels();
    const float *bias = b ? b->data : NULL;
    const struct conv_geo cc = convt_as_conv(&c);
    if (bias) /* y = bias, then + the conv2d's input gradient of x */
#pragma omp parallel for schedule(static) if (c.N * c.Cout * c.OHW >= ((int64_t)1 << 15))
        for (int64_t r = 0; r < c.N * c.Cout; r++) row_fill(c.OHW, bias[r % c.Cout], y->data + r * c.OHW);
    if (!implicit_dx(g, kt, &cc, x->data, w->data, bias ? 1.0f : 0.0f, y->data)) {
        const struct chunks k = chunk_images(c.N, c.K2, c.HW);
        const int64_t cols = k.nb * c.HW, per = (c.K2 + c.Cin) * cols; /* col, xmat */
        float *scratch = gen_scratch_floats(g, (int64_t)gen_task_threads() * per);
        /* col (K2, m HW) = W^T xmat; y (= bias, or 0) += col2im(col), image
         * by image. */
#pragma omp parallel for schedule(dynamic, 1) if (k.count > 1)
        for (int64_t ch = 0; ch < k.count; ch++) {
            const int64_t n0 = chunk_first(&k, ch), m = chunk_len(&k, ch, c.N), ld = m * c.HW;
            float *col = scratch + gen_task_id() * per;
            const float *xmat = gather_cols(m, c.Cin, c.HW, c.Cin * c.HW,
                                            x->data + n0 * c.Cin * c.HW, col + c.K2 * cols);
            gen_gemm(GEN_TRANS, GEN_NOTRANS, c.K2, ld, c.Cin, 1.0f, w->data, xmat, 0.0f, col);
            for (int64_t i = 0; i < m; i++) {
                float *yn = y->data + (n0 + i) * c.Cout * c.OHW;
                if (!bias) row_fill(c.Cout * c.OHW, 0.0f, yn);
                kt->col2im_ld(c.Cout, c.OH, c.OW, c.KH, c.KW, c.stride, c.pad, ld, col + i * c.HW,
                              yn);
            }
        }
    }
    struct gen_node *node =
        gen_record(g, GEN_OP_CONV_TRANSPOSE2D, y, 3, (struct gen_tensor *[]){x, w, b});
    if (node) {
        node->i[0] = stride;
        node->i[1] = pad;
    }
    gen_scratch_release(g);
    return y;
}

/* The conv2d's weight gradient and forward pass with the roles of dy and x
 * swapped, by the table's kernels where it has them. Else per chunk:
 * dcol (K2, m HW) = im2col(dy); dW_chunk = xmat dcol^T; dx += W dcol;
 * dW += the chunks' dW in chunk order. db += sums either way. */
GEN_BACKWARD(conv_transpose2d) {
    struct gen_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const struct convt_geo c = convt_geo(x, w, node->i[0], node->i[1]);
    const float *dy = node->out->grad;
    float *db = grad_or_null(g, b);
    if (db) bias_grad(c.N, c.Cout, c.OHW, c.Cout * c.OHW, dy, db);
    enum gen_grad_mode dw_mode, dx_mode;
    float *dw = gen_grad_dst_or_null(g, w, &dw_mode), *dx = gen_grad_dst_or_null(g, x, &dx_mode);
    const struct gen_kernels *kt = gen_kernels();
    const struct conv_geo cc = convt_as_conv(&c);
    /* dW = sum of x_i im2col(dy_i)^T */
    if (dw && implicit_weight_grad(g, kt, &cc, dy, NULL, x->data, dw, dw_mode, NULL)) dw = NULL;
    /* dx = W * dy, a conv2d's forward */
    if (dx && implicit_conv(g, kt, &cc, dy, NULL, w->data, NULL, gen_put_beta(dx_mode), dx))
        dx = NULL;
    if (!dw && !dx) return;
    const struct chunks k = chunk_images(c.N, c.K2, c.HW);
    const int64_t cols = k.nb * c.HW, per = (c.K2 + 2 * c.Cin) * cols; /* dcol, xmat, dxmat */
    float *scratch = gen_scratch_floats(g, (int64_t)gen_task_threads() * per);
    /* (chunks, Cin, K2) */
    float *dw_part = dw ? gen_scratch_floats(g, k.count * c.Cin * c.K2) : NULL;

#pragma omp parallel for schedule(dynamic, 1) if (k.count > 1)
    for (int64_t ch = 0; ch < k.count; ch++) {
        const int64_t n0 = chunk_first(&k, ch), m = chunk_len(&k, ch, c.N), ld = m * c.HW;
        float *dcol = scratch + gen_task_id() * per, *xbuf = dcol + c.K2 * cols;
        float *dxmat = xbuf + c.Cin * cols;
        for (int64_t i = 0; i < m; i++)
            kt->im2col_ld(c.Cout, c.OH, c.OW, c.KH, c.KW, c.stride, c.pad, ld,
                          dy + (n0 + i) * c.Cout * c.OHW, dcol + i * c.HW);
        if (dw) {
            const float *xmat =
                gather_cols(m, c.Cin, c.HW, c.Cin * c.HW, x->data + n0 * c.Cin * c.HW, xbuf);
            gen_gemm(GEN_NOTRANS, GEN_TRANS, c.Cin, c.K2, ld, 1.0f, xmat, dcol, 0.0f,
                     dw_part + ch * c.Cin * c.K2);
        }
        if (!dx) continue;
        float *dxn = dx + n0 * c.Cin * c.HW;
        if (m == 1) {
            gen_gemm(GEN_NOTRANS, GEN_NOTRANS, c.Cin, ld, c.K2, 1.0f, w->data, dcol,
                     gen_put_beta(dx_mode), dxn);
            continue;
        }
        gen_gemm(GEN_NOTRANS, GEN_NOTRANS, c.Cin, ld, c.K2, 1.0f, w->data, dcol, 0.0f, dxmat);
        for (int64_t i = 0; i < m; i++)
            for (int64_t ci = 0; ci < c.Cin; ci++)
                row_put(dx_mode, c.HW, dxmat + ci * ld + i * c.HW, dxn + (i * c.Cin + ci) * c.HW);
    }
    if (dw) gen_put_rows_sum(dw_mode, k.count, c.Cin * c.K2, dw_part, c.Cin * c.K2, dw);
}

/* ---- upsample2x ---------------------------------------------------------- */

/* row[2 j] = row[2 j + 1] = v[j] for the n bf16 values v: each doubled as a
 * 32-bit word. */
static void double_bf16(int64_t n, const uint16_t *v, uint16_t *row) {
    for (int64_t j = 0; j < n; j++) {
        const uint32_t two = (uint32_t)v[j] * 0x10001u;
        memcpy(row + 2 * j, &two, sizeof two);
    }
}

/* One plane (H x W) of x, each value copied to a 2 x 2 block of y. */
static void upsample_plane(int64_t H, int64_t W, const float *x, float *y) {
    for (int64_t i = 0; i < H; i++) {
        float *row = y + 2 * i * 2 * W;
        for (int64_t j = 0; j < W; j++) row[2 * j] = row[2 * j + 1] = x[i * W + j];
        memcpy(row + 2 * W, row, (size_t)(2 * W) * sizeof(float));
    }
}

/* upsample_plane into bf16 (yh), rounded by gen_bf16_pack whole rows, up
 * to RUN values, at a time (one call a row of 14 values cost more than
 * the copy), or a row of more in runs of RUN. */
static void upsample_plane_bf16(int64_t H, int64_t W, const float *x, uint16_t *yh) {
    enum { RUN = 256 };
    uint16_t run[RUN];
    for (int64_t i0 = 0; i0 < H;) {
        int64_t rows = 1;
        if (W <= RUN) {
            rows = RUN / W < H - i0 ? RUN / W : H - i0;
            gen_bf16_pack(rows * W, x + i0 * W, run);
        }
        for (int64_t i = i0; i < i0 + rows; i++) {
            uint16_t *row = yh + 2 * i * 2 * W;
            if (W <= RUN)
                double_bf16(W, run + (i - i0) * W, row);
            else
                for (int64_t j0 = 0; j0 < W; j0 += RUN) {
                    const int64_t n = W - j0 < RUN ? W - j0 : RUN;
                    gen_bf16_pack(n, x + i * W + j0, run);
                    double_bf16(n, run, row + 2 * j0);
                }
            memcpy(row + 2 * W, row, (size_t)(2 * W) * sizeof *row);
        }
        i0 += rows;
    }
}

/* The upsampled copy, as bf16 where it is an operand (below) and the
 * table's convolutions read bf16 operands. */
static struct gen_tensor *upsample2x(struct gen_ctx *g, struct gen_tensor *x, int operand) {
    GEN_ASSERT(x->ndim == 4 && !x->bf16);
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    struct gen_tensor *y = gen_tensor_4d(g, x->shape[0], x->shape[1], 2 * H, 2 * W);
    y->bf16 = operand && gen_operand_bf16(gen_kernels());
    uint16_t *yh = y->bf16 ? (uint16_t *)(void *)y->data : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        if (yh)
            upsample_plane_bf16(H, W, x->data + nc * H * W, yh + nc * 4 * H * W);
        else
            upsample_plane(H, W, x->data + nc * H * W, y->data + nc * 4 * H * W);
    }
    gen_record(g, GEN_OP_UPSAMPLE2X, y, 1, (struct gen_tensor *[]){x});
    return y;
}

struct gen_tensor *gen_upsample2x(struct gen_ctx *g, struct gen_tensor *x) {
    return upsample2x(g, x, 0);
}

struct gen_tensor *gen_upsample2x_operand(struct gen_ctx *g, struct gen_tensor *x) {
    return upsample2x(g, x, 1);
}

/* dx[i, j] (+)= sum of the 2x2 block of dy it was copied to. */
GEN_BACKWARD(upsample2x) {
    struct gen_tensor *x = node->in[0];
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    const float *dy = node->out->grad;
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst(g, x, &mode);
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *dyp = dy + nc * 4 * H * W;
        float *dxp = dx + nc * H * W;
        for (int64_t i = 0; i < H; i++) {
            const float *r0 = dyp + 2 * i * 2 * W, *r1 = r0 + 2 * W;
            for (int64_t j = 0; j < W; j++) {
                const float s = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
                dxp[i * W + j] = mode == GEN_GRAD_ADD ? dxp[i * W + j] + s : s;
            }
        }
    }
}
