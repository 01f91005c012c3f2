/* tensor.c - tensors in the step arena, the tape and the backward walk. */
#include <string.h>

#include "core/ops.h"

static float *arena_floats(struct gen_ctx *g, int64_t n) {
    return gen_arena_alloc(&g->arena, (size_t)n * sizeof(float));
}

/* n zeroed floats from the arena; the kernel table's fill spreads large
 * ones over the threads. */
static float *arena_zeros(struct gen_ctx *g, int64_t n) {
    float *p = arena_floats(g, n);
    gen_kernels()->fill(n, 0.0f, p);
    return p;
}

void gen_ctx_init(struct gen_ctx *g) {
    memset(g, 0, sizeof *g);
    gen_arena_init(&g->arena, (size_t)16 << 20);
    g->training = 1;
}

void gen_ctx_init_eval(struct gen_ctx *g) {
    gen_ctx_init(g);
    g->training = 0;
    gen_no_grad_begin(g);
}

void gen_ctx_free(struct gen_ctx *g) {
    gen_arena_free(&g->arena);
    gen_free(g->nodes);
    memset(g, 0, sizeof *g);
}

void gen_ctx_reset(struct gen_ctx *g) {
    gen_arena_reset(&g->arena);
    g->n_nodes = 0;
}

int64_t gen_numel(const struct gen_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static struct gen_tensor *header(struct gen_ctx *g, int ndim, const int64_t *shape) {
    GEN_ASSERT(ndim >= 1 && ndim <= GEN_MAX_DIMS);
    struct gen_tensor *t = gen_arena_calloc(&g->arena, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        GEN_ASSERT(shape[i] >= 0);
        t->shape[i] = shape[i];
    }
    return t;
}

struct gen_tensor *gen_tensor(struct gen_ctx *g, int ndim, const int64_t *shape) {
    struct gen_tensor *t = header(g, ndim, shape);
    t->data = gen_arena_alloc(&g->arena, (size_t)gen_numel(t) * sizeof(float));
    return t;
}

struct gen_tensor *gen_zeros(struct gen_ctx *g, int ndim, const int64_t *shape) {
    struct gen_tensor *t = header(g, ndim, shape);
    t->data = arena_zeros(g, gen_numel(t));
    return t;
}

struct gen_tensor *gen_tensor_1d(struct gen_ctx *g, int64_t a) {
    return gen_tensor(g, 1, (int64_t[]){a});
}
struct gen_tensor *gen_tensor_2d(struct gen_ctx *g, int64_t a, int64_t b) {
    return gen_tensor(g, 2, (int64_t[]){a, b});
}
struct gen_tensor *gen_tensor_3d(struct gen_ctx *g, int64_t a, int64_t b, int64_t c) {
    return gen_tensor(g, 3, (int64_t[]){a, b, c});
}
struct gen_tensor *gen_tensor_4d(struct gen_ctx *g, int64_t a, int64_t b, int64_t c, int64_t d) {
    return gen_tensor(g, 4, (int64_t[]){a, b, c, d});
}

struct gen_tensor *gen_tensor_wrap(struct gen_ctx *g, float *data, int ndim, const int64_t *shape) {
    struct gen_tensor *t = header(g, ndim, shape);
    t->data = data;
    return t;
}

int gen_same_shape(const struct gen_tensor *a, const struct gen_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* A borrowed gradient (gen_backward_seed's dout, or one shared by
 * gen_grad_pass) about to be written: copied into the arena first. */
static void own_grad(struct gen_ctx *g, struct gen_tensor *t) {
    if (!t->grad_borrowed) return;
    float *p = arena_floats(g, gen_numel(t));
    gen_kernels()->scale(gen_numel(t), 1.0f, t->grad, p);
    t->grad = p;
    t->grad_borrowed = 0;
}

float *gen_grad(struct gen_ctx *g, struct gen_tensor *t) {
    if (!t->grad) t->grad = arena_zeros(g, gen_numel(t));
    else if (t->grad_stale) gen_kernels()->fill(gen_numel(t), 0.0f, t->grad);
    own_grad(g, t);
    t->grad_stale = 0;
    return t->grad;
}

int gen_grad_pass(struct gen_tensor *t, struct gen_tensor *out) {
    if (t->grad) return 0;
    t->grad = out->grad;
    t->grad_borrowed = out->grad_borrowed = 1;
    return 1;
}

float *gen_grad_dst(struct gen_ctx *g, struct gen_tensor *t, enum gen_grad_mode *mode) {
    *mode = !t->grad || t->grad_stale ? GEN_GRAD_SET : GEN_GRAD_ADD;
    if (!t->grad) t->grad = arena_floats(g, gen_numel(t));
    own_grad(g, t);
    t->grad_stale = 0;
    return t->grad;
}

struct gen_node *gen_record(struct gen_ctx *g, enum gen_op op, struct gen_tensor *out, int n_in,
                            struct gen_tensor *const *in) {
    GEN_ASSERT(n_in <= GEN_NODE_MAX_IN);
    if (g->no_grad) return NULL;
    int any = 0;
    for (int i = 0; i < n_in; i++) any |= in[i] && in[i]->requires_grad;
    if (!any) return NULL;
    if (g->n_nodes == g->cap_nodes) {
        /* Grows during the first step only; the tape is reused after. */
        int64_t cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        struct gen_node *nodes = gen_alloc((size_t)cap * sizeof *nodes);
        GEN_ASSERT(nodes);
        if (g->n_nodes) memcpy(nodes, g->nodes, (size_t)g->n_nodes * sizeof *nodes);
        gen_free(g->nodes);
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    struct gen_node *node = &g->nodes[g->n_nodes++];
    memset(node, 0, sizeof *node);
    node->op = op;
    node->out = out;
    node->n_in = n_in;
    for (int i = 0; i < n_in; i++) node->in[i] = in[i];
    out->requires_grad = 1;
    return node;
}

void gen_tape_truncate(struct gen_ctx *g, int64_t mark) {
    GEN_ASSERT(mark >= 0 && mark <= g->n_nodes);
    g->n_nodes = mark;
}

/* Walks the tape in reverse. Then the stale gradients of inputs no op
 * wrote (a parameter of a branch that does not lead to the loss, or one
 * frozen for this pass) are zero-filled, so that every gradient buffer on
 * the tape holds its value. */
static void walk_tape(struct gen_ctx *g) {
    for (int64_t i = g->n_nodes - 1; i >= 0; i--) {
        struct gen_node *node = &g->nodes[i];
        if (!node->out->grad || node->out->grad_stale) continue; /* nothing flows back */
        gen_op_table[node->op].backward(g, node);
    }
    for (int64_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            struct gen_tensor *t = g->nodes[i].in[k];
            if (t && t->grad && t->grad_stale) gen_grad(g, t);
        }
}

void gen_backward(struct gen_ctx *g, struct gen_tensor *loss) {
    GEN_ASSERT(gen_numel(loss) == 1);
    if (!loss->requires_grad) return;
    gen_grad(g, loss)[0] += 1.0f;
    walk_tape(g);
}

void gen_backward_seed(struct gen_ctx *g, struct gen_tensor *out, const float *dout) {
    if (!out->requires_grad) return;
    if (out->grad) {
        gen_grad_axpy(g, out, 1.0f, dout);
    } else { /* read only, by the ops out feeds back into; see grad_borrowed */
        out->grad = (float *)dout;
        out->grad_borrowed = 1;
    }
    walk_tape(g);
}

void gen_grad_axpy(struct gen_ctx *g, struct gen_tensor *t, float s, const float *x) {
    enum gen_grad_mode mode;
    float *d = gen_grad_dst(g, t, &mode);
    gen_put_axpy(mode, gen_numel(t), s, x, d);
}

void gen_grad_mul(struct gen_ctx *g, struct gen_tensor *t, const float *a, const float *b) {
    enum gen_grad_mode mode;
    float *d = gen_grad_dst(g, t, &mode);
    gen_put_mul(mode, gen_numel(t), a, b, d);
}
