/* tensor.c - tensors in the step arena, the tape and the backward walk. */
#include <string.h>

#include "core/ops.h"

/* Under AddressSanitizer a free block of the pool is poisoned: a read of a
 * gradient after it went back is reported like a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define GEN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GEN_ASAN 1
#endif
#endif
#ifdef GEN_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---- the step's pool -------------------------------------------------------
 * Blocks carved from the step arena, each a header line then its data. A
 * freed block goes on a free list kept in address order, merged with free
 * neighbours; a request takes the smallest free block that holds it (the
 * rest, if large, stays free), else grows the free block that ends at the
 * arena's top, else bumps a new one. Every step asks
 * for the same blocks in the same order, so after the first step the pool
 * asks the arena for nothing it has not got. */

#define BLOCK_HEAD 64
_Static_assert(sizeof(struct gen_pool_block) <= BLOCK_HEAD, "a block's header fits its line");
/* A leftover smaller than this stays with the block it was cut from. */
#define MIN_SPLIT 4096

static void *block_data(struct gen_pool_block *b) { return (char *)b + BLOCK_HEAD; }
static struct gen_pool_block *data_block(const void *p) {
    return (struct gen_pool_block *)((uintptr_t)p - BLOCK_HEAD);
}
static uintptr_t block_end(const struct gen_pool_block *b) {
    return (uintptr_t)b + BLOCK_HEAD + b->bytes;
}

static struct gen_pool_block *pool_take(struct gen_ctx *g, size_t bytes) {
    const size_t need = (bytes + BLOCK_HEAD - 1) & ~(size_t)(BLOCK_HEAD - 1);
    GEN_ASSERT(need >= bytes);
    const uintptr_t top = (uintptr_t)gen_arena_top(&g->arena);
    struct gen_pool_block **best = NULL, **on_top = NULL;
    for (struct gen_pool_block **p = &g->pool; *p; p = &(*p)->next) {
        if ((*p)->bytes >= need && (!best || (*p)->bytes < (*best)->bytes)) best = p;
        if (block_end(*p) == top) on_top = p;
    }
    struct gen_pool_block *b;
    if (!best && on_top && gen_arena_extend(&g->arena, need - (*on_top)->bytes)) {
        b = *on_top; /* the free block at the arena's top, grown to fit */
        *on_top = b->next;
        b->bytes = need;
    } else if (!best) {
        b = gen_arena_alloc(&g->arena, BLOCK_HEAD + need);
        b->bytes = need;
    } else if ((b = *best)->bytes - need >= BLOCK_HEAD + MIN_SPLIT) {
        struct gen_pool_block *rest = (struct gen_pool_block *)((char *)block_data(b) + need);
        UNPOISON(rest, BLOCK_HEAD);
        rest->bytes = b->bytes - need - BLOCK_HEAD;
        rest->refs = 0;
        rest->next = b->next;
        *best = rest;
        b->bytes = need;
    } else {
        *best = b->next;
    }
    UNPOISON(block_data(b), b->bytes);
    b->refs = 1;
    b->next = NULL;
    return b;
}

/* One holder fewer; the last one's block goes back on the free list. */
static void pool_give(struct gen_ctx *g, struct gen_pool_block *b) {
    GEN_ASSERT(b->refs > 0);
    if (--b->refs) return;
    POISON(block_data(b), b->bytes);
    struct gen_pool_block *prev = NULL, **p = &g->pool;
    while (*p && (uintptr_t)*p < (uintptr_t)b) prev = *p, p = &(*p)->next;
    b->next = *p;
    *p = b;
    if (b->next && block_end(b) == (uintptr_t)b->next) { /* the header becomes data */
        struct gen_pool_block *next = b->next;
        b->bytes += BLOCK_HEAD + next->bytes;
        b->next = next->next;
        POISON(next, BLOCK_HEAD);
    }
    if (prev && block_end(prev) == (uintptr_t)b) {
        prev->bytes += BLOCK_HEAD + b->bytes;
        prev->next = b->next;
        POISON(b, BLOCK_HEAD);
    }
}

/* Empties the pool: the arena gets its free blocks back for bumping. */
static void pool_clear(struct gen_ctx *g) {
    for (struct gen_pool_block *b = g->pool; b; b = b->next) UNPOISON(block_data(b), b->bytes);
    GEN_ASSERT(!g->scopes);
    g->pool = g->scratch = g->live = NULL;
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
    pool_clear(g);
    gen_arena_free(&g->arena);
    gen_free(g->nodes);
    memset(g, 0, sizeof *g);
}

void gen_ctx_reset(struct gen_ctx *g) {
    pool_clear(g);
    gen_arena_reset(&g->arena);
    g->n_nodes = 0;
}

void *gen_scratch(struct gen_ctx *g, size_t bytes) {
    struct gen_pool_block *b = pool_take(g, bytes);
    b->next = g->scratch;
    g->scratch = b;
    return block_data(b);
}

void gen_scratch_release(struct gen_ctx *g) {
    while (g->scratch) {
        struct gen_pool_block *b = g->scratch;
        g->scratch = b->next;
        pool_give(g, b);
    }
}

static int block_holds(const struct gen_pool_block *b, const struct gen_tensor *t) {
    return t && (uintptr_t)t->data >= (uintptr_t)b + BLOCK_HEAD &&
           (uintptr_t)t->data < block_end(b);
}

struct gen_scope gen_scope_open(struct gen_ctx *g, const struct gen_tensor *from) {
    g->scopes++;
    struct gen_pool_block *top = g->live;
    if (top && g->no_grad && block_holds(top, from)) top = top->next;
    return (struct gen_scope){top};
}

struct gen_tensor *gen_scope_close(struct gen_ctx *g, struct gen_scope s, struct gen_tensor *keep) {
    GEN_ASSERT(g->scopes > 0);
    g->scopes--;
    struct gen_pool_block *kept = NULL;
    while (g->live != s.top) {
        struct gen_pool_block *b = g->live;
        GEN_ASSERT(b);
        g->live = b->next;
        if (block_holds(b, keep)) {
            kept = b;
            continue;
        }
        b->next = NULL;
        pool_give(g, b);
    }
    if (kept) { /* now the outer scope's */
        kept->next = g->live;
        g->live = kept;
    }
    return keep;
}

/* n floats for a new tensor: from the pool inside a no-grad scope (on the
 * live list, for its close), else from the arena. */
static float *tensor_floats(struct gen_ctx *g, int64_t n) {
    const size_t bytes = (size_t)n * sizeof(float);
    if (!g->scopes || !g->no_grad) return gen_arena_alloc(&g->arena, bytes);
    struct gen_pool_block *b = pool_take(g, bytes);
    b->next = g->live;
    g->live = b;
    return block_data(b);
}

void gen_scratch_keep(struct gen_ctx *g, const void *p) {
    struct gen_pool_block **b = &g->scratch;
    while (*b && block_data(*b) != p) b = &(*b)->next;
    GEN_ASSERT(*b);
    *b = (*b)->next;
}

/* A new gradient buffer for t, from the pool (contents undefined). */
static float *new_grad(struct gen_ctx *g, struct gen_tensor *t) {
    t->grad = block_data(pool_take(g, (size_t)gen_numel(t) * sizeof(float)));
    t->grad_pooled = 1;
    t->grad_borrowed = 0;
    return t->grad;
}

/* t lets go of its gradient, once its op's backward has run: a pool block
 * goes back when its last holder lets go; a caller's buffer stays. */
static void drop_grad(struct gen_ctx *g, struct gen_tensor *t) {
    if (!t->grad_pooled) return;
    pool_give(g, data_block(t->grad));
    t->grad = NULL;
    t->grad_pooled = t->grad_borrowed = 0;
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
    t->data = tensor_floats(g, gen_numel(t));
    return t;
}

struct gen_tensor *gen_zeros(struct gen_ctx *g, int ndim, const int64_t *shape) {
    struct gen_tensor *t = header(g, ndim, shape);
    t->data = tensor_floats(g, gen_numel(t));
    gen_kernels()->fill(gen_numel(t), 0.0f, t->data);
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
 * gen_grad_pass) about to be written: copied into the arena first, unless
 * it is a pool block that every other holder has let go of (the tensors
 * that shared it are done: a residual add's input, after the branch that
 * shared its output's gradient has run its backward), which t then owns. */
static void own_grad(struct gen_ctx *g, struct gen_tensor *t) {
    if (!t->grad_borrowed) return;
    if (t->grad_pooled && data_block(t->grad)->refs == 1) {
        t->grad_borrowed = 0;
        return;
    }
    float *shared = t->grad;
    const int pooled = t->grad_pooled;
    gen_kernels()->scale(gen_numel(t), 1.0f, shared, new_grad(g, t));
    if (pooled) pool_give(g, data_block(shared));
}

float *gen_grad(struct gen_ctx *g, struct gen_tensor *t) {
    if (!t->grad) gen_kernels()->fill(gen_numel(t), 0.0f, new_grad(g, t));
    else if (t->grad_stale) gen_kernels()->fill(gen_numel(t), 0.0f, t->grad);
    own_grad(g, t);
    t->grad_stale = 0;
    return t->grad;
}

int gen_grad_pass(struct gen_tensor *t, struct gen_tensor *out) {
    if (t->grad) return 0;
    t->grad = out->grad;
    t->grad_borrowed = out->grad_borrowed = 1;
    t->grad_pooled = out->grad_pooled;
    if (t->grad_pooled) data_block(t->grad)->refs++;
    return 1;
}

float *gen_grad_dst(struct gen_ctx *g, struct gen_tensor *t, enum gen_grad_mode *mode) {
    *mode = !t->grad || t->grad_stale ? GEN_GRAD_SET : GEN_GRAD_ADD;
    if (!t->grad) new_grad(g, t);
    own_grad(g, t);
    t->grad_stale = 0;
    return t->grad;
}

float *gen_grad_dst_over(struct gen_ctx *g, struct gen_tensor *t, struct gen_tensor *out,
                        enum gen_grad_mode *mode) {
    if (t->grad || !out->grad || !out->grad_pooled || out->grad_borrowed ||
        data_block(out->grad)->refs != 1 || gen_numel(t) != gen_numel(out))
        return gen_grad_dst(g, t, mode);
    t->grad = out->grad;
    t->grad_pooled = 1;
    t->grad_borrowed = t->grad_stale = 0;
    out->grad = NULL;
    out->grad_pooled = 0;
    *mode = GEN_GRAD_SET;
    return t->grad;
}

void gen_profile_mark(struct gen_ctx *g) {
    if (g->prof) g->prof->mark = gen_now();
}

struct gen_node *gen_record(struct gen_ctx *g, enum gen_op op, struct gen_tensor *out, int n_in,
                            struct gen_tensor *const *in) {
    GEN_ASSERT(n_in <= GEN_NODE_MAX_IN);
    for (int i = 0; i < n_in; i++) /* a bf16 operand is read by products only */
        GEN_ASSERT(!in[i] || !in[i]->bf16 || op == GEN_OP_CONV2D || op == GEN_OP_CONV2D_ADD ||
                   op == GEN_OP_CONV2D_CONCAT || op == GEN_OP_ATTENTION || op == GEN_OP_MLP ||
                   op == GEN_OP_LINEAR);
    if (g->prof) { /* every op calls this once, after its forward */
        const double now = gen_now();
        g->prof->op[op].fwd_s += now - g->prof->mark;
        g->prof->op[op].fwd_n++;
        g->prof->mark = now;
    }
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

/* Walks the tape in reverse; after each op's backward its scratch and its
 * output's gradient go back to the pool (every op that reads the output
 * comes later on the tape, so its backward has run). Then the stale
 * gradients of inputs no op wrote (a parameter of a branch that does not
 * lead to the loss, or one frozen for this pass) are zero-filled, so that
 * every gradient buffer left on the tape holds its value. */
static void walk_tape(struct gen_ctx *g) {
    for (int64_t i = g->n_nodes - 1; i >= 0; i--) {
        struct gen_node *node = &g->nodes[i];
        if (node->out->grad && !node->out->grad_stale) { /* else nothing flows back */
            const double t0 = g->prof ? gen_now() : 0;
            gen_op_table[node->op].backward(g, node);
            if (g->prof) {
                g->prof->op[node->op].bwd_s += gen_now() - t0;
                g->prof->op[node->op].bwd_n++;
            }
        }
        gen_scratch_release(g);
        drop_grad(g, node->out);
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
