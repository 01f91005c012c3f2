/* ops_act.c - element-wise activations and the last-dim softmaxes, forward
 * and backward through the kernel table. */
#include "core/ops.h"

/* Which tensor the backward kernel reads: the input x or the output y. */
enum { ON_X, ON_Y };

typedef void (*act_fwd)(int64_t n, const float *x, float *y);
typedef void (*act_bwd)(int64_t n, const float *xy, const float *dy, float *dx,
                        enum gen_grad_mode mode);

static struct gen_tensor *act(struct gen_ctx *g, enum gen_op op, act_fwd f,
                              struct gen_tensor *a) {
    struct gen_tensor *out = gen_tensor(g, a->ndim, a->shape);
    f(gen_numel(a), a->data, out->data);
    gen_record(g, op, out, 1, &a);
    return out;
}

static void act_backward(struct gen_ctx *g, struct gen_node *node, act_bwd f, int on) {
    struct gen_tensor *a = node->in[0];
    if (!a->requires_grad) return;
    const float *xy = on == ON_X ? a->data : node->out->data, *dy = node->out->grad;
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst_over(g, a, node->out, &mode);
    f(gen_numel(a), xy, dy, dx, mode);
}

struct gen_tensor *gen_relu(struct gen_ctx *g, struct gen_tensor *a) {
    return act(g, GEN_OP_RELU, gen_kernels()->relu_fwd, a);
}
GEN_BACKWARD(relu) { act_backward(g, node, gen_kernels()->relu_grad, ON_X); }

struct gen_tensor *gen_leaky_relu(struct gen_ctx *g, struct gen_tensor *a, float slope) {
    struct gen_tensor *out = gen_tensor(g, a->ndim, a->shape);
    gen_kernels()->leaky_relu_fwd(gen_numel(a), slope, a->data, out->data);
    struct gen_node *n = gen_record(g, GEN_OP_LEAKY_RELU, out, 1, &a);
    if (n) n->f[0] = slope;
    return out;
}
GEN_BACKWARD(leaky_relu) {
    struct gen_tensor *a = node->in[0];
    if (!a->requires_grad) return;
    const float *dy = node->out->grad;
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst_over(g, a, node->out, &mode);
    gen_kernels()->leaky_relu_grad(gen_numel(a), node->f[0], a->data, dy, dx, mode);
}

struct gen_tensor *gen_gelu(struct gen_ctx *g, struct gen_tensor *a) {
    return act(g, GEN_OP_GELU, gen_kernels()->gelu_fwd, a);
}
GEN_BACKWARD(gelu) { act_backward(g, node, gen_kernels()->gelu_grad, ON_X); }

struct gen_tensor *gen_silu(struct gen_ctx *g, struct gen_tensor *a) {
    return act(g, GEN_OP_SILU, gen_kernels()->silu_fwd, a);
}
GEN_BACKWARD(silu) { act_backward(g, node, gen_kernels()->silu_grad, ON_X); }

struct gen_tensor *gen_sigmoid(struct gen_ctx *g, struct gen_tensor *a) {
    return act(g, GEN_OP_SIGMOID, gen_kernels()->sigmoid_fwd, a);
}
GEN_BACKWARD(sigmoid) { act_backward(g, node, gen_kernels()->sigmoid_grad, ON_Y); }

struct gen_tensor *gen_tanh(struct gen_ctx *g, struct gen_tensor *a) {
    return act(g, GEN_OP_TANH, gen_kernels()->tanh_fwd, a);
}
GEN_BACKWARD(tanh) { act_backward(g, node, gen_kernels()->tanh_grad, ON_Y); }

struct gen_tensor *gen_exp(struct gen_ctx *g, struct gen_tensor *a) {
    return act(g, GEN_OP_EXP, gen_kernels()->exp_fwd, a);
}
GEN_BACKWARD(exp) { act_backward(g, node, gen_kernels()->exp_grad, ON_Y); }

/* ---- softmax and log-softmax over the last dim ---- */

typedef void (*row_fwd)(int64_t rows, int64_t cols, const float *x, float *y);
typedef void (*row_bwd)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx,
                        enum gen_grad_mode mode);

static struct gen_tensor *rowwise(struct gen_ctx *g, enum gen_op op, row_fwd f,
                                  struct gen_tensor *a) {
    const int64_t cols = a->shape[a->ndim - 1];
    const int64_t rows = cols ? gen_numel(a) / cols : 0;
    struct gen_tensor *out = gen_tensor(g, a->ndim, a->shape);
    f(rows, cols, a->data, out->data);
    gen_record(g, op, out, 1, &a);
    return out;
}

/* Both backward kernels read the forward output y (probabilities or log-probabilities). */
static void rowwise_backward(struct gen_ctx *g, struct gen_node *node, row_bwd f) {
    struct gen_tensor *a = node->in[0];
    if (!a->requires_grad) return;
    const int64_t cols = a->shape[a->ndim - 1];
    const int64_t rows = cols ? gen_numel(a) / cols : 0;
    enum gen_grad_mode mode;
    float *dx = gen_grad_dst(g, a, &mode);
    f(rows, cols, node->out->data, node->out->grad, dx, mode);
}

struct gen_tensor *gen_softmax(struct gen_ctx *g, struct gen_tensor *a) {
    return rowwise(g, GEN_OP_SOFTMAX, gen_kernels()->softmax_fwd, a);
}
GEN_BACKWARD(softmax) { rowwise_backward(g, node, gen_kernels()->softmax_grad); }

struct gen_tensor *gen_log_softmax(struct gen_ctx *g, struct gen_tensor *a) {
    return rowwise(g, GEN_OP_LOG_SOFTMAX, gen_kernels()->log_softmax_fwd, a);
}
GEN_BACKWARD(log_softmax) { rowwise_backward(g, node, gen_kernels()->log_softmax_grad); }
