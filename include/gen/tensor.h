/* tensor.h - tensors, the step context, the autograd tape and the op set.
 *
 * Tensors are contiguous row-major float32 with up to 4 dims (N C H W for
 * images, B T C for sequences). Every op takes the step context `g`,
 * allocates its output in g's step arena and, unless grad is off or no
 * input needs a gradient, appends a node to the tape. gen_backward walks
 * the tape in reverse; each op's backward adds to the `grad` of its inputs,
 * except that the first op to write a gradient overwrites it (gen_grad_dst):
 * a gradient is never zero-filled only to be read back and added to. An op
 * whose input's gradient is its output's (an add, a reshape) passes that
 * on, shared, not copied (gen_grad_pass). Nothing an op returns outlives
 * gen_ctx_reset.
 *
 * Memory of a step: activations are bumped in the step arena and kept to
 * the reset. Gradient buffers and an op's scratch come from the step's
 * pool, blocks of the same arena that go back to it when done with and
 * are handed out again (best fit): an op's scratch when the op returns,
 * the gradient of an op's output as soon as that op's backward has run
 * (nothing reads it later in the walk). So a step holds its activations
 * and only the gradients the walk has not got past yet, as PyTorch does.
 * After gen_backward, the gradients of the tensors no op computed (inputs
 * that require one, parameters) hold their values; an op's output has
 * none (NULL), unless it was a caller-owned seed. */
#ifndef GEN_TENSOR_H
#define GEN_TENSOR_H

#include "gen/core.h"
#include "gen/kernels.h"

#define GEN_MAX_DIMS 4

struct gen_node;
struct gen_ctx;

struct gen_tensor {
    int ndim;
    int64_t shape[GEN_MAX_DIMS];
    float *data;
    float *grad;       /* NULL until backward needs it (params: preset) */
    int requires_grad; /* parameter, or computed from one               */
    int grad_stale;    /* grad holds no gradient of this pass (a parameter's
                          after gen_params_zero_grad): it reads as zero, and
                          its first writer overwrites it               */
    int grad_borrowed; /* grad is shared (gen_backward_seed's dout, or
                          another tensor's: gen_grad_pass), never
                          written: a writer copies it first (or takes
                          a pool block all others let go of)          */
    int grad_pooled;   /* grad is a block of the step's pool (below),
                          this tensor one of its holders               */
    int bf16;          /* data holds numel bf16 values (2 bytes each),
                          not floats: a convolution's operand kept at
                          its products' precision, which only the
                          convolutions read (as their x; gen_record
                          checks), gen_groupnorm_silu_operand     */
    const char *name;  /* parameters only; NULL otherwise              */
};

enum gen_op {
    GEN_OP_ADD, GEN_OP_SUB, GEN_OP_MUL, GEN_OP_SCALE, GEN_OP_ADD_SCALAR,
    GEN_OP_SUM, GEN_OP_MEAN,
    GEN_OP_MATMUL, GEN_OP_LINEAR,
    GEN_OP_RESHAPE, GEN_OP_PERMUTE, GEN_OP_CONCAT, GEN_OP_SLICE,
    GEN_OP_RELU, GEN_OP_LEAKY_RELU, GEN_OP_GELU, GEN_OP_SILU, GEN_OP_SIGMOID,
    GEN_OP_TANH, GEN_OP_EXP,
    GEN_OP_SOFTMAX, GEN_OP_LOG_SOFTMAX,
    GEN_OP_CROSS_ENTROPY, GEN_OP_BCE_LOGITS, GEN_OP_MSE, GEN_OP_GAUSSIAN_KL,
    GEN_OP_EMBEDDING, GEN_OP_LAYERNORM, GEN_OP_GROUPNORM, GEN_OP_GROUPNORM_SILU,
    GEN_OP_BATCHNORM,
    GEN_OP_CONV2D, GEN_OP_CONV_TRANSPOSE2D, GEN_OP_UPSAMPLE2X,
    GEN_OP_ATTENTION, GEN_OP_DROPOUT, GEN_OP_CONV2D_ADD, GEN_OP_MLP, GEN_OP_CONV2D_CONCAT,
    GEN_OP_COUNT
};

#define GEN_NODE_MAX_IN 6
/* One recorded op. Ops keep what backward needs in `i`, `f` and `saved`
 * (step-arena memory, e.g. normalisation statistics or a dropout mask). */
struct gen_node {
    enum gen_op op;
    struct gen_tensor *out;
    struct gen_tensor *in[GEN_NODE_MAX_IN];
    int n_in;
    int64_t i[8];
    float f[4];
    void *saved, *saved2;
    const int32_t *index; /* token ids / targets (caller-owned, must live until backward) */
};

/* One entry per op: forward functions have their own signatures (below);
 * backward has one. Filled in src/core/ops_*.c; see src/core/op_table.c. */
struct gen_op_def {
    const char *name;
    void (*backward)(struct gen_ctx *g, struct gen_node *node);
};
/* GEN_OP_COUNT entries, indexed by enum gen_op (its length is left to
 * the definition, so that src/core/op_table.c can check it) */
extern const struct gen_op_def gen_op_table[];

/* A block of the step's pool: this header (64 bytes), then `bytes` of data. */
struct gen_pool_block {
    size_t bytes;                /* data bytes, a multiple of 64              */
    int64_t refs;                /* holders; 0 on the free list               */
    struct gen_pool_block *next; /* free list (by address), or the running
                                    op's scratch                           */
};

/* Where a step's time goes, op by op, while one is attached to a context
 * (g->prof; NULL: nothing is timed). An op's backward is its own time; its
 * forward runs from the previous op's end (or the last gen_profile_mark)
 * to its own end, so work between ops (random draws, a model's loops)
 * counts to the op after it. An op that records nothing (no input needs a
 * gradient) is timed all the same. */
struct gen_op_time {
    double fwd_s, bwd_s;
    int64_t fwd_n, bwd_n;
};
struct gen_profile {
    struct gen_op_time op[GEN_OP_COUNT];
    double mark; /* gen_now() at the previous op's end */
};
/* Starts the forward clock (before a model's loss); nothing without a
 * profile. */
void gen_profile_mark(struct gen_ctx *g);

/* The step context: step arena (activations, gradients, tape) + grad mode. */
struct gen_ctx {
    struct gen_arena arena;
    struct gen_pool_block *pool; /* the pool's free blocks, by address  */
    struct gen_pool_block *scratch; /* blocks of the running op's scratch */
    struct gen_pool_block *live;    /* blocks of the open scopes' tensors  */
    int scopes;                     /* scopes open (gen_scope_open)        */
    struct gen_node *nodes;
    int64_t n_nodes, cap_nodes;
    int no_grad;  /* >0: ops record nothing (sampling, evaluation) */
    int training; /* batchnorm batch statistics, dropout active     */
    int sync_bn;  /* training batchnorm: statistics of the batch of every
                     rank together (comm.h), as one process would see it */
    struct gen_profile *prof; /* the caller's, or NULL */
};
void gen_ctx_init(struct gen_ctx *g);
/* A context for sampling and evaluation: not training (batchnorm uses its
 * running statistics, dropout is off) and recording no tape. */
void gen_ctx_init_eval(struct gen_ctx *g);
void gen_ctx_free(struct gen_ctx *g);
/* Forget the tape and every tensor allocated since the last reset. */
void gen_ctx_reset(struct gen_ctx *g);

/* No-grad scope: gen_no_grad_begin(g); ... gen_no_grad_end(g); */
static inline void gen_no_grad_begin(struct gen_ctx *g) { g->no_grad++; }
static inline void gen_no_grad_end(struct gen_ctx *g) { g->no_grad--; }

/* ---- scopes: the short-lived tensors of a no-grad pass ------------------
 * Between gen_scope_open and gen_scope_close, a context that records no
 * tape takes its new tensors' data from the step's pool, and the close
 * gives all of it back but the block that holds `keep`'s data (a view's
 * too), which then belongs to the scope around it (or stays to the next
 * gen_ctx_reset). `from` (or NULL), when its block is the newest of the
 * scope around (the last tensor made or kept there), belongs to the new
 * scope too: a chain's running value, given back once the next has been
 * made from it. A DDIM step of the U-Net so reuses a
 * few blocks instead of faulting in a new ~270 MB arena's worth. Recording
 * a tape, both do nothing: backward reads every activation. No tensor the
 * scope held may be used after its close, except `keep`. */
struct gen_scope {
    struct gen_pool_block *top; /* the live list's head below the scope */
};
struct gen_scope gen_scope_open(struct gen_ctx *g, const struct gen_tensor *from);
struct gen_tensor *gen_scope_close(struct gen_ctx *g, struct gen_scope s, struct gen_tensor *keep);

/* ---- tensors ---------------------------------------------------------- */

int64_t gen_numel(const struct gen_tensor *t);
/* New tensor in the step arena (inside a scope of a no-grad pass: its pool);
 * data uninitialised (gen_zeros: zeroed). */
struct gen_tensor *gen_tensor(struct gen_ctx *g, int ndim, const int64_t *shape);
struct gen_tensor *gen_zeros(struct gen_ctx *g, int ndim, const int64_t *shape);
struct gen_tensor *gen_tensor_1d(struct gen_ctx *g, int64_t a);
struct gen_tensor *gen_tensor_2d(struct gen_ctx *g, int64_t a, int64_t b);
struct gen_tensor *gen_tensor_3d(struct gen_ctx *g, int64_t a, int64_t b, int64_t c);
struct gen_tensor *gen_tensor_4d(struct gen_ctx *g, int64_t a, int64_t b, int64_t c, int64_t d);
/* A tensor header over caller-owned data (no grad unless set). */
struct gen_tensor *gen_tensor_wrap(struct gen_ctx *g, float *data, int ndim, const int64_t *shape);
int gen_same_shape(const struct gen_tensor *a, const struct gen_tensor *b);

/* ---- gradients, for op implementations --------------------------------
 * A gradient is zero until a backward writes it: a NULL or stale grad
 * reads as zero. The first op to write it overwrites it; the others add. */

/* t's gradient buffer, zero-filled first if it reads as zero (allocated in
 * the step arena if absent): for a backward that adds to a part of it (a
 * slice, the rows of an embedding) or reads it. */
float *gen_grad(struct gen_ctx *g, struct gen_tensor *t);
/* For a backward about to write every element of t's gradient: the buffer
 * (allocated, not zeroed, if absent) and in *mode GEN_GRAD_SET if nothing
 * was written to it yet (overwrite it, without reading it), else
 * GEN_GRAD_ADD. Counts as written from now on, so a tensor used twice by
 * one op (x + x) gets SET for its first use and ADD for its second: take
 * each input's right before writing it. */
float *gen_grad_dst(struct gen_ctx *g, struct gen_tensor *t, enum gen_grad_mode *mode);
/* gen_grad_dst for an element-wise backward, which reads element i of
 * out's gradient before it writes element i of t's: where t has no
 * gradient yet and out's is a pool block no other tensor holds (the walk
 * gives it back after this op anyway), t takes that block and the op
 * writes over it (*mode GEN_GRAD_SET); out's gradient is NULL from then
 * on, so read it first. One buffer of t's size fewer to fetch and
 * write-allocate. Else as gen_grad_dst. */
float *gen_grad_dst_over(struct gen_ctx *g, struct gen_tensor *t, struct gen_tensor *out,
                        enum gen_grad_mode *mode);
/* For a backward whose input's gradient is its output's, unchanged (x + y
 * to x, a reshape): if t has no gradient buffer yet, out's becomes t's too,
 * not copied, and both are read-only from then on (a later write to
 * either copies it first); returns 1. Else 0: write t's as usual. */
int gen_grad_pass(struct gen_tensor *t, struct gen_tensor *out);

/* Appends a node for `op` if grad is on and any input requires grad; marks
 * out->requires_grad. Returns the node or NULL. For op implementations. */
struct gen_node *gen_record(struct gen_ctx *g, enum gen_op op, struct gen_tensor *out, int n_in,
                            struct gen_tensor *const *in);

/* The tape's length now, and cutting the tape back to such a mark: nodes
 * recorded after it are forgotten (their tensors stay in the arena until
 * the next reset). For a second backward pass over part of a graph, e.g. a
 * GAN's generator step through a discriminator whose own backward is done. */
static inline int64_t gen_tape_mark(const struct gen_ctx *g) { return g->n_nodes; }
void gen_tape_truncate(struct gen_ctx *g, int64_t mark);

/* Backpropagates from a scalar (1-element) loss: d loss = 1. */
void gen_backward(struct gen_ctx *g, struct gen_tensor *loss);
/* Backpropagates from any tensor with a given upstream gradient dout
 * (numel(out) floats), e.g. for gradient checks along a random direction.
 * When out has no gradient yet, dout becomes it as it is, not copied (as
 * PyTorch's backward(dout)): gen never writes it, and it must stay as it
 * is until gen_ctx_reset. */
void gen_backward_seed(struct gen_ctx *g, struct gen_tensor *out, const float *dout);

/* ---- ops (maths next to each) ----------------------------------------- */

/* Broadcasting: b's shape, right-aligned against a's, has each dim equal to
 * a's or 1 (bias [C] on [N, C]; per-channel [N, C, 1, 1] on [N, C, H, W]).
 * The result has a's shape. */
struct gen_tensor *gen_add(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b);
struct gen_tensor *gen_sub(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b);
struct gen_tensor *gen_mul(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b);
struct gen_tensor *gen_scale(struct gen_ctx *g, struct gen_tensor *a, float s);   /* s a   */
struct gen_tensor *gen_add_scalar(struct gen_ctx *g, struct gen_tensor *a, float s); /* a + s */
struct gen_tensor *gen_sum(struct gen_ctx *g, struct gen_tensor *a);  /* scalar [1] */
struct gen_tensor *gen_mean(struct gen_ctx *g, struct gen_tensor *a); /* scalar [1] */

/* op(a) op(b); 2-D (M,K)x(K,N) or batched 3-D (B,M,K)x(B,K,N); ta/tb
 * transpose the last two dims of a / b. */
struct gen_tensor *gen_matmul(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b,
                              enum gen_trans ta, enum gen_trans tb);
/* y = x w^T + b: x (..., IN) with any leading dims (floats, or held as
 * bf16 by gen_layernorm_operand), w (OUT, IN) as in PyTorch, b (OUT) or
 * NULL. */
struct gen_tensor *gen_linear(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                              struct gen_tensor *b);
/* gen_linear for an output that only products read (the Transformer's
 * qkv, read by gen_attention alone): under --precision bf16 held as bf16
 * (t->bf16), the values those products would round it to, in half the
 * bytes, where the table writes such products (gemm_bias_h: vdpbf16ps's)
 * and IN is at most GEN_BF16_C_DEPTH; else gen_linear. */
struct gen_tensor *gen_linear_operand(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                      struct gen_tensor *b);
/* A Transformer's MLP, gen_linear(gen_gelu(gen_linear(x, w1, b1)), w2, b2)
 * as one op that keeps its D-wide activations in blocks of rows: x (...,
 * C), w1 (D, C), b1 (D) or NULL, w2 (C2, D), b2 (C2) or NULL; (..., C2). */
struct gen_tensor *gen_mlp(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w1,
                           struct gen_tensor *b1, struct gen_tensor *w2, struct gen_tensor *b2);

/* Same data, new shape (numel must match). */
struct gen_tensor *gen_reshape(struct gen_ctx *g, struct gen_tensor *a, int ndim,
                               const int64_t *shape);
/* Copy with permuted dims: out.shape[i] = a.shape[perm[i]]; ndim of a. */
struct gen_tensor *gen_permute(struct gen_ctx *g, struct gen_tensor *a, const int *perm);
struct gen_tensor *gen_transpose(struct gen_ctx *g, struct gen_tensor *a, int d0, int d1);
/* Concatenate along dim 1 (channels); other dims equal. */
struct gen_tensor *gen_concat(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b);
/* Slice [start, start+len) of dim `dim` (a copy). Split = two slices. */
struct gen_tensor *gen_slice(struct gen_ctx *g, struct gen_tensor *a, int dim, int64_t start,
                             int64_t len);

struct gen_tensor *gen_relu(struct gen_ctx *g, struct gen_tensor *a);
struct gen_tensor *gen_leaky_relu(struct gen_ctx *g, struct gen_tensor *a, float slope);
struct gen_tensor *gen_gelu(struct gen_ctx *g, struct gen_tensor *a); /* tanh form */
struct gen_tensor *gen_silu(struct gen_ctx *g, struct gen_tensor *a);
struct gen_tensor *gen_sigmoid(struct gen_ctx *g, struct gen_tensor *a);
struct gen_tensor *gen_tanh(struct gen_ctx *g, struct gen_tensor *a);
struct gen_tensor *gen_exp(struct gen_ctx *g, struct gen_tensor *a);

/* Over the last dim. */
struct gen_tensor *gen_softmax(struct gen_ctx *g, struct gen_tensor *a);
struct gen_tensor *gen_log_softmax(struct gen_ctx *g, struct gen_tensor *a);

/* Losses return a scalar [1].
 * cross_entropy: mean over rows of -log softmax(logits)[target]; logits
 * (..., V), targets one int32 per row (caller-owned until backward). */
struct gen_tensor *gen_cross_entropy(struct gen_ctx *g, struct gen_tensor *logits,
                                     const int32_t *targets);
/* BCE with logits x against targets t (same shape, not differentiated):
 * l = max(x,0) - x t + log(1 + exp(-|x|)); summed, or mean if `mean`. */
struct gen_tensor *gen_bce_logits(struct gen_ctx *g, struct gen_tensor *x,
                                  const struct gen_tensor *t, int mean);
/* mean((a - b)^2); b is not differentiated. */
struct gen_tensor *gen_mse(struct gen_ctx *g, struct gen_tensor *a, const struct gen_tensor *b);
/* KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 sum(1 + logvar - mu^2 - exp(logvar)),
 * summed over everything (divide by the batch yourself). */
struct gen_tensor *gen_gaussian_kl(struct gen_ctx *g, struct gen_tensor *mu,
                                   struct gen_tensor *logvar);

/* Rows of w (V, C) picked by idx[n]: out (n, C) reshaped to (ndim, shape). */
struct gen_tensor *gen_embedding(struct gen_ctx *g, struct gen_tensor *w, const int32_t *idx,
                                 int ndim, const int64_t *shape);

/* Over the last dim; gamma, beta (C) or NULL. */
struct gen_tensor *gen_layernorm(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *gamma,
                                 struct gen_tensor *beta, float eps);
/* gen_layernorm for an output that only products read (a Transformer's
 * norms feed gen_linear, gen_linear_operand and gen_mlp alone): under
 * --precision bf16 held as bf16 (t->bf16), the values those products would
 * round it to, in half the bytes, where the table writes it so and reads
 * such operands (layernorm_fwd_b16: vdpbf16ps's table); else
 * gen_layernorm. */
struct gen_tensor *gen_layernorm_operand(struct gen_ctx *g, struct gen_tensor *x,
                                         struct gen_tensor *gamma, struct gen_tensor *beta,
                                         float eps);
/* x (N, C, H, W) in G groups; gamma, beta (C) or NULL. */
struct gen_tensor *gen_groupnorm(struct gen_ctx *g, struct gen_tensor *x, int64_t G,
                                 struct gen_tensor *gamma, struct gen_tensor *beta, float eps);
/* silu(groupnorm(x)): the bits of gen_silu(gen_groupnorm(...)), with SiLU
 * done inside group norm's passes, forward and backward: no pass of its
 * own, and the normalised tensor is never stored. */
struct gen_tensor *gen_groupnorm_silu(struct gen_ctx *g, struct gen_tensor *x, int64_t G,
                                      struct gen_tensor *gamma, struct gen_tensor *beta,
                                      float eps);
/* silu(groupnorm(x + shift)), shift (N, C) one value for each channel of
 * each image (a U-Net's time embedding): gen_groupnorm_silu of gen_add(x,
 * shift as (N, C, 1, 1)) to rounding (the sums' order), with x + shift
 * never stored, and no pass of its own forward or back (shift's gradient,
 * each channel's sum of x's, from the backward's own sums). */
struct gen_tensor *gen_groupnorm_silu_shift(struct gen_ctx *g, struct gen_tensor *x,
                                            struct gen_tensor *shift, int64_t G,
                                            struct gen_tensor *gamma, struct gen_tensor *beta,
                                            float eps);
/* silu(groupnorm(x (+ shift, where not NULL))) for a tensor that only
 * convolutions read, as their x: under --precision bf16 held as bf16
 * (t->bf16), the precision their products round it to anyway, in half the
 * bytes to write and to read forward and back, where the table's
 * convolutions read bf16 operands (conv_gemm_b16: AMX's); else, and where
 * the table lacks groupnorm_silu_fwd_b16, gen_groupnorm_silu(_shift). */
struct gen_tensor *gen_groupnorm_silu_operand(struct gen_ctx *g, struct gen_tensor *x,
                                              struct gen_tensor *shift, int64_t G,
                                              struct gen_tensor *gamma, struct gen_tensor *beta,
                                              float eps);
/* x (N, C) or (N, C, H, W). If g->training: batch statistics (biased var
 * normalises; running stats get the unbiased var, PyTorch's rule):
 * running = (1 - momentum) running + momentum batch. Else running stats.
 * running_mean/var are updated in place (no grad). */
struct gen_tensor *gen_batchnorm(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *gamma,
                                 struct gen_tensor *beta, struct gen_tensor *running_mean,
                                 struct gen_tensor *running_var, float momentum, float eps);

/* x (N, Cin, H, W), w (Cout, Cin, KH, KW), b (Cout) or NULL. */
struct gen_tensor *gen_conv2d(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                              struct gen_tensor *b, int stride, int pad);
/* gen_conv2d(x, w, b, stride, pad) + r, r the output's shape: r copied
 * into the output and the convolution added onto it (a residual add with
 * no tensor for the convolution's output nor a pass of its own). */
struct gen_tensor *gen_conv2d_add(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                  struct gen_tensor *b, int stride, int pad, struct gen_tensor *r);
/* gen_conv2d(x, w, b, stride, pad) + gen_conv2d(x2, w2, b2, stride2,
 * pad2), the two of one output shape (a residual block's last convolution
 * and its skip's): the second written into the output, the first added
 * onto it. */
struct gen_tensor *gen_conv2d_sum(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                  struct gen_tensor *b, int stride, int pad, struct gen_tensor *x2,
                                  struct gen_tensor *w2, struct gen_tensor *b2, int stride2,
                                  int pad2);
/* concat(conv2d(x, w, b, stride, pad), s) along the channels, s (N, C2,
 * OH, OW) of the convolution's output size: the convolution written
 * straight into each image's first Cout channels and s copied after them,
 * so that neither the convolution's output nor its gradient is a tensor
 * of its own (a U-Net decoder level joining its upsampled features to the
 * encoder's). */
struct gen_tensor *gen_conv2d_concat(struct gen_ctx *g, struct gen_tensor *x,
                                     struct gen_tensor *w, struct gen_tensor *b, int stride,
                                     int pad, struct gen_tensor *s);
/* x (N, Cin, H, W), w (Cin, Cout, KH, KW) as in PyTorch, b (Cout) or NULL;
 * out side = (in - 1) stride - 2 pad + K. */
struct gen_tensor *gen_conv_transpose2d(struct gen_ctx *g, struct gen_tensor *x,
                                        struct gen_tensor *w, struct gen_tensor *b, int stride,
                                        int pad);
/* Nearest-neighbour 2x: (N, C, H, W) -> (N, C, 2H, 2W). */
struct gen_tensor *gen_upsample2x(struct gen_ctx *g, struct gen_tensor *x);
/* gen_upsample2x for a tensor that only convolutions read, as their x:
 * under --precision bf16, where the table's convolutions take bf16
 * operands (conv_gemm_b16), held as bf16 (t->bf16), rounded as their
 * products would round it, in half the bytes to write and to read;
 * else gen_upsample2x. */
struct gen_tensor *gen_upsample2x_operand(struct gen_ctx *g, struct gen_tensor *x);

/* Multi-head attention from a packed qkv (B, T, 3C) (q, k, v each C wide,
 * heads of C/NH): softmax(q k^T / sqrt(C/NH) [+ causal mask]) v, heads
 * concatenated back to (B, T, C). */
struct gen_tensor *gen_attention(struct gen_ctx *g, struct gen_tensor *qkv, int64_t NH,
                                 int causal);

/* Inverted dropout with keep-probability 1 - p when g->training; identity
 * otherwise. The mask of x[i] (i over the first dimension: the examples)
 * comes from the stream gen_rng_seed_keyed(seed, purpose, first + i). */
struct gen_tensor *gen_dropout(struct gen_ctx *g, struct gen_tensor *x, float p, uint64_t seed,
                               uint64_t purpose, int64_t first);

#endif
