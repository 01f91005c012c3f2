/* ops.h - private: the backward function of every op, defined next to its
 * forward in src/core/ops_*.c and gathered in op_table.c. */
#ifndef GEN_CORE_OPS_H
#define GEN_CORE_OPS_H

#include "gen/kernels.h"
#include "gen/tensor.h"

#define GEN_BACKWARD(name) void gen_bwd_##name(struct gen_ctx *g, struct gen_node *node)

/* y (+)= s x, as `mode` says (n floats). */
static inline void gen_put_axpy(enum gen_grad_mode mode, int64_t n, float s, const float *x,
                                float *y) {
    if (mode == GEN_GRAD_SET) gen_kernels()->scale(n, s, x, y);
    else gen_kernels()->axpy(n, s, x, y);
}
/* y (+)= a b element-wise, as `mode` says. */
static inline void gen_put_mul(enum gen_grad_mode mode, int64_t n, const float *a, const float *b,
                               float *y) {
    if (mode == GEN_GRAD_SET) gen_kernels()->mul(n, a, b, y);
    else gen_kernels()->mul_acc(n, a, b, y);
}
/* The matching GEMM beta: 0 overwrites C, 1 adds to it. */
static inline float gen_put_beta(enum gen_grad_mode mode) {
    return mode == GEN_GRAD_SET ? 0.0f : 1.0f;
}
/* y (+)= the sum, in order, of `count` rows of n floats `stride` apart (a
 * bias gradient's rows, a weight gradient's per-chunk partials). */
static inline void gen_put_rows_sum(enum gen_grad_mode mode, int64_t count, int64_t n,
                                    const float *rows, int64_t stride, float *y) {
    gen_kernels()->col_sum(count, n, rows, stride, y, mode);
}

/* N blocks of n floats, x's i-th at x + i xs, into y + i ys (a tensor's
 * images into a wider one's, a concatenation along channels; a slice's
 * out of one). */
void gen_copy_blocks(int64_t N, int64_t n, const float *x, int64_t xs, float *y, int64_t ys);
/* t's gradient (as gen_grad_dst says) from dy's blocks, one per image of
 * t, the i-th at dy + i dys (t's part of a concatenation's gradient). */
void gen_grad_put_blocks(struct gen_ctx *g, struct gen_tensor *t, const float *dy, int64_t dys);

/* t's gradient for a backward that writes all of it (gen_grad_dst), or
 * NULL when t is absent or needs none. */
static inline float *gen_grad_dst_or_null(struct gen_ctx *g, struct gen_tensor *t,
                                          enum gen_grad_mode *mode) {
    *mode = GEN_GRAD_ADD;
    return t && t->requires_grad ? gen_grad_dst(g, t, mode) : NULL;
}

/* gen_grad_dst_over (tensor.h): t's gradient written over out's where t
 * has none yet and no one else holds out's; NULL when t needs none. */
static inline float *gen_grad_dst_over_or_null(struct gen_ctx *g, struct gen_tensor *t,
                                               struct gen_tensor *out,
                                               enum gen_grad_mode *mode) {
    *mode = GEN_GRAD_ADD;
    return t && t->requires_grad ? gen_grad_dst_over(g, t, out, mode) : NULL;
}

/* Scratch for the op running now (64-byte aligned, contents undefined),
 * from the step's pool. It goes back when the op is done: a backward's
 * after it (walk_tape), a forward's when the forward calls
 * gen_scratch_release before it returns (tensor.c). */
void *gen_scratch(struct gen_ctx *g, size_t bytes);
void gen_scratch_release(struct gen_ctx *g);
/* Takes p, from gen_scratch, off the running op's scratch: it stays until
 * the reset (what an op saves for its backward when it records itself). */
void gen_scratch_keep(struct gen_ctx *g, const void *p);
/* Hints that rows x n floats, ld apart, be brought into L2 (for an op's
 * next task or block, while this one's products run). */
static inline void gen_prefetch_bytes(const void *p, int64_t rows, int64_t ld, int64_t n) {
    const char *c = p;
    for (int64_t r = 0; r < rows; r++, c += ld) {
        for (int64_t j = 0; j < n; j += 64) __builtin_prefetch(c + j, 0, 2);
        __builtin_prefetch(c + n - 1, 0, 2);
    }
}
static inline void gen_prefetch_rows(const float *p, int64_t rows, int64_t ld, int64_t n) {
    gen_prefetch_bytes(p, rows, ld * (int64_t)sizeof *p, n * (int64_t)sizeof *p);
}

/* n floats rounded up to whole 64-byte lines, so that every part of a
 * thread's scratch starts aligned (the kernels keep pointers in some). */
static inline int64_t gen_lines(int64_t n) {
    return (n + 15) / 16 * 16;
}
static inline float *gen_scratch_floats(struct gen_ctx *g, int64_t n) {
    return gen_scratch(g, (size_t)n * sizeof(float));
}

/* Whether the table's products run on AMX's tiles (the one table whose
 * convolutions read bf16 operands, conv_gemm_b16; in force only under
 * bf16). */
static inline int gen_products_amx(const struct gen_kernels *K) {
    return K->conv_gemm_b16 != NULL;
}

/* Whether a tensor that only convolutions read (gen_groupnorm_silu_operand,
 * gen_upsample2x_operand) is held as bf16: under bf16, where the table's
 * convolutions read bf16 operands (AMX's). Elsewhere they would widen it
 * again before each use, and the vdpbf16ps Winograd, which rounds its
 * transforms' outputs, would multiply other values. */
static inline int gen_operand_bf16(const struct gen_kernels *K) {
    return gen_products_amx(K) && gen_kernels_precision() == GEN_PRECISION_BF16;
}

/* ---- products inside an op's own OpenMP loop (ops_task.c) -----------------
 * The threads such a loop gets, and this thread's number in it. */
int gen_task_threads(void);
int gen_task_id(void);
/* The tasks a thread takes at a time when `tasks` equal ones are handed
 * out as threads come free (schedule(dynamic, chunk)): about 8 turns a
 * thread, at least 1. */
int64_t gen_task_chunk(int64_t tasks);
/* Around the loop: OpenBLAS's pthreads build kept to one thread in it
 * (returns the count to give gen_blas_serial_end). */
int gen_blas_serial_begin(void);
void gen_blas_serial_end(int n);
/* An operand B that a task's products share: op(B) (K x N) packed once a
 * task where the kernel table can (bpack), else read in place by
 * gen_gemm_ld; a product takes its rows [k0, k0 + depth) and first
 * columns. */
struct gen_shared_b {
    enum gen_trans tb;
    const float *B;
    int64_t ldb, K;
    float *packed; /* NULL: read in place */
};
/* The floats of one packed operand in a task's scratch (whole lines). */
int64_t gen_shared_floats(const struct gen_kernels *kt, int64_t K, int64_t N);
struct gen_shared_b gen_share(const struct gen_kernels *kt, enum gen_trans tb, const float *B,
                              int64_t ldb, int64_t K, int64_t N, float *buf);
/* gen_share of a B held as bf16 (a tensor with t->bf16), for a table with
 * bpack_h: packed always. */
struct gen_shared_b gen_share_h(const struct gen_kernels *kt, enum gen_trans tb, const uint16_t *B,
                                int64_t ldb, int64_t K, int64_t N, float *buf);
/* C (M x N) = alpha op(A) op(B)[k0 .. k0 + K, 0 .. N) + beta C, or with a
 * bias (N values; alpha 1, beta 0) op(A) op(B)[...] + bias, the bits of
 * beta 1 on rows filled with the bias. */
void gen_shared_product(const struct gen_kernels *kt, enum gen_trans ta, int64_t M, int64_t N,
                        int64_t K, float alpha, const float *A, int64_t lda,
                        const struct gen_shared_b *b, int64_t k0, float beta, const float *bias,
                        float *C, int64_t ldc);

/* A tensor's values as an operand: floats, or held as bf16 (t->bf16: an
 * operand that only products read, gen_*_operand). */
static inline struct gen_chan gen_operand(const struct gen_tensor *t) {
    return t->bf16 ? (struct gen_chan){NULL, (const uint16_t *)(const void *)t->data}
                   : (struct gen_chan){t->data, NULL};
}

/* The bytes of one of t's values: 2 held as bf16, else 4. */
static inline int64_t gen_value_bytes(const struct gen_tensor *t) {
    return t->bf16 ? 2 : (int64_t)sizeof(float);
}

/* gen_shared_product of an A held either way (gen_operand): bf16 through
 * the table's gemm_bpacked_h (a table whose gen_share packs always). */
void gen_shared_product_chan(const struct gen_kernels *kt, enum gen_trans ta, int64_t M, int64_t N,
                             int64_t K, float alpha, struct gen_chan A, int64_t lda,
                             const struct gen_shared_b *b, int64_t k0, float beta,
                             const float *bias, float *C, int64_t ldc);

/* The whole gradient of t (+)= s x, as gen_grad_dst says (tensor.c). */
void gen_grad_axpy(struct gen_ctx *g, struct gen_tensor *t, float s, const float *x);
/* The whole gradient of t (+)= a b, element-wise. */
void gen_grad_mul(struct gen_ctx *g, struct gen_tensor *t, const float *a, const float *b);

/* ops_basic.c */
GEN_BACKWARD(add); GEN_BACKWARD(sub); GEN_BACKWARD(mul); GEN_BACKWARD(scale);
GEN_BACKWARD(add_scalar); GEN_BACKWARD(sum); GEN_BACKWARD(mean);
GEN_BACKWARD(matmul); GEN_BACKWARD(linear);
GEN_BACKWARD(reshape); GEN_BACKWARD(permute); GEN_BACKWARD(concat); GEN_BACKWARD(slice);
/* ops_mlp.c */
GEN_BACKWARD(mlp);
/* ops_act.c */
GEN_BACKWARD(relu); GEN_BACKWARD(leaky_relu); GEN_BACKWARD(gelu); GEN_BACKWARD(silu);
GEN_BACKWARD(sigmoid); GEN_BACKWARD(tanh); GEN_BACKWARD(exp);
GEN_BACKWARD(softmax); GEN_BACKWARD(log_softmax);
/* ops_loss.c */
GEN_BACKWARD(cross_entropy); GEN_BACKWARD(bce_logits); GEN_BACKWARD(mse);
GEN_BACKWARD(gaussian_kl); GEN_BACKWARD(embedding); GEN_BACKWARD(dropout);
/* ops_norm.c */
GEN_BACKWARD(layernorm); GEN_BACKWARD(groupnorm); GEN_BACKWARD(groupnorm_silu);
GEN_BACKWARD(batchnorm);
/* ops_conv.c */
GEN_BACKWARD(conv2d); GEN_BACKWARD(conv2d_add); GEN_BACKWARD(conv2d_concat);
GEN_BACKWARD(conv_transpose2d);
GEN_BACKWARD(upsample2x);
/* ops_attn.c */
GEN_BACKWARD(attention);

#endif
