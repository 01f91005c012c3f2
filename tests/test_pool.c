/* test_pool.c - the step's pool: gradient buffers and scratch go back as
 * soon as the backward walk (or the op) is done with them and are handed
 * out again.
 *
 * - The gradients of a chain whose buffers are reused equal, bit for bit,
 *   those of the same chain computed block by block, each block in a fresh
 *   context (nothing reused), the blocks' gradients handed on by hand.
 * - A U-Net-like graph, a skip's gradient held while the buffers of the
 *   path between are reused, passes a finite-difference check.
 * - Blocks: a freed one is taken again, split, merged with its free
 *   neighbours, and grown in place when it ends at the arena's top.
 * - Over a chain of L ops the arena grows past its activations by a few
 *   gradients, whatever L; an op's scratch is reused by the next op's; a
 *   repeated step asks the allocator for nothing.
 * - Scopes of a no-grad pass give back every tensor made inside but the
 *   kept one (a view's block too), which the scope around then owns; a
 *   chain of scoped ops stays within a few tensors, whatever its length;
 *   with a tape they free nothing and the gradients are the unscoped ones.
 * Under AddressSanitizer a free block is poisoned, so these (and every
 * other test) also fail on any read of a gradient after it went back. */
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "gen/kernels.h"
#include "testutil.h"

/* ---- blocks ---- */

static void test_blocks(void **state) {
    (void)state;
    enum { KB = 1024 };
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    char *a = gen_scratch(&g, 64 * KB);
    gen_scratch_release(&g);
    const size_t used = g.arena.used_total;
    /* a, free at the top, grows to fit: 64 KiB more, same place */
    char *b = gen_scratch(&g, 128 * KB);
    assert_ptr_equal(b, a);
    assert_int_equal(g.arena.used_total, used + 64 * KB);
    gen_scratch_release(&g);
    /* two smaller ones split it: the second right after the first + header */
    char *c = gen_scratch(&g, 32 * KB), *d = gen_scratch(&g, 32 * KB);
    assert_ptr_equal(c, a);
    assert_ptr_equal(d, a + 32 * KB + 64);
    gen_tensor_1d(&g, 16); /* bumped after them: a is no longer on top */
    gen_scratch_release(&g);
    /* merged back whole: a request for all of it gets it, no arena growth */
    const size_t before = g.arena.used_total;
    assert_ptr_equal(gen_scratch(&g, 128 * KB), a);
    assert_int_equal(g.arena.used_total, before);
    /* one byte more does not fit: a new block past the tensor */
    char *e = gen_scratch(&g, 128 * KB + 1);
    assert_true(e > a + 128 * KB);
    memset(e, 0, 128 * KB + 1);
    gen_scratch_release(&g);
    gen_ctx_free(&g);
}

/* ---- reuse against fresh contexts ---- */

enum { R = 6, C = 8, K = 7, MAXM = 4 };

/* Caller-owned weights of block k: W (m C, C), b (m C), m = 1 + k % MAXM. */
struct weights {
    float w[K][MAXM * C * C], b[K][MAXM * C];
    float dw[K][MAXM * C * C], db[K][MAXM * C];
};

static int64_t width(int k) { return (int64_t)(1 + k % MAXM) * C; }

/* A leaf over caller-owned data and gradient, stale as a parameter's. */
static struct gen_tensor *leaf(struct gen_ctx *g, float *data, float *grad, int ndim,
                               const int64_t *shape) {
    struct gen_tensor *t = gen_tensor_wrap(g, data, ndim, shape);
    t->requires_grad = 1;
    t->grad = grad;
    t->grad_stale = 1;
    return t;
}

/* h + the first C columns of tanh(h W^T + b): every block writes
 * gradients of other sizes (m C wide) between two of h's. */
static struct gen_tensor *block(struct gen_ctx *g, struct gen_tensor *h, struct weights *p, int k) {
    const int64_t m = width(k);
    struct gen_tensor *w = leaf(g, p->w[k], p->dw[k], 2, (int64_t[]){m, C});
    struct gen_tensor *b = leaf(g, p->b[k], p->db[k], 1, (int64_t[]){m});
    struct gen_tensor *u = gen_tanh(g, gen_linear(g, h, w, b));
    return gen_add(g, h, gen_slice(g, u, 1, 0, C));
}

static void test_reuse_matches_fresh_contexts(void **state) {
    (void)state;
    static struct weights whole, parts;
    float x[R * C], dout[R * C];
    tu_fill_uniform(x, R * C, -1, 1, 1);
    tu_fill_uniform(dout, R * C, -1, 1, 2);
    for (int k = 0; k < K; k++) {
        tu_fill_uniform(whole.w[k], MAXM * C * C, -0.5f, 0.5f, 10 + (uint64_t)k);
        tu_fill_uniform(whole.b[k], MAXM * C, -0.5f, 0.5f, 20 + (uint64_t)k);
    }
    memcpy(parts.w, whole.w, sizeof whole.w);
    memcpy(parts.b, whole.b, sizeof whole.b);
    const int64_t shape[2] = {R, C};

    /* the whole chain in one context */
    struct gen_ctx g;
    gen_ctx_init(&g);
    float dx_whole[R * C];
    struct gen_tensor *h = leaf(&g, x, dx_whole, 2, shape);
    for (int k = 0; k < K; k++) h = block(&g, h, &whole, k);
    const size_t forward = g.arena.used_total;
    gen_backward_seed(&g, h, dout);
    assert_true(g.arena.peak > forward); /* the walk took gradients... */
    const size_t walk = g.arena.peak - forward;

    /* each block in its own context, its input a leaf */
    struct gen_ctx gs[K];
    struct gen_tensor *in[K], *out[K];
    static float hs[K + 1][R * C], dh[K][R * C];
    memcpy(hs[0], x, sizeof x);
    size_t sum = 0;
    for (int k = 0; k < K; k++) {
        gen_ctx_init(&gs[k]);
        in[k] = leaf(&gs[k], hs[k], dh[k], 2, shape);
        out[k] = block(&gs[k], in[k], &parts, k);
        memcpy(hs[k + 1], out[k]->data, sizeof hs[k + 1]);
    }
    assert_memory_equal(hs[K], h->data, sizeof hs[K]);
    const float *d = dout;
    for (int k = K - 1; k >= 0; k--) {
        const size_t before = gs[k].arena.used_total;
        gen_backward_seed(&gs[k], out[k], d);
        sum += gs[k].arena.peak - before;
        d = in[k]->grad;
    }
    /* ...fewer than the blocks did on their own: some were reused */
    assert_true(walk < sum);
    assert_memory_equal(d, dx_whole, sizeof dx_whole);
    assert_memory_equal(parts.dw, whole.dw, sizeof whole.dw);
    assert_memory_equal(parts.db, whole.db, sizeof whole.db);
    for (int k = 0; k < K; k++) gen_ctx_free(&gs[k]);
    gen_ctx_free(&g);
}

/* ---- a U-Net-like graph against finite differences ---- */

/* a = conv(x); down = conv(silu(gn(a)), stride 2); up = upsample(down);
 * out = conv(concat(up, a)): a's gradient from the concat is held while
 * the walk goes down and back up through buffers it reuses. */
static struct gen_tensor *f_unet(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    struct gen_tensor *a = gen_conv2d(g, in[0], in[1], NULL, 1, 1);
    struct gen_tensor *h = gen_groupnorm_silu(g, a, 2, NULL, NULL, 1e-5f);
    struct gen_tensor *down = gen_conv2d(g, h, in[2], NULL, 2, 1);
    struct gen_tensor *up = gen_upsample2x(g, gen_silu(g, down));
    return gen_conv2d(g, gen_concat(g, up, a), in[3], NULL, 1, 1);
}

/* x, then the three convolutions' weights */
static const struct tu_input unet_spec[4] = {{4, {2, 3, 6, 6}, -1, 1, 0},
                                             {4, {4, 3, 3, 3}, -0.5f, 0.5f, 0},
                                             {4, {4, 4, 3, 3}, -0.5f, 0.5f, 0},
                                             {4, {3, 8, 3, 3}, -0.5f, 0.5f, 0}};

static void test_unet_skip_gradcheck(void **state) {
    (void)state;
    /* smooth nonlinear: test_grad_nn's tolerances */
    assert_int_equal(
        tu_gradcheck("unet skip", f_unet, NULL, 4, unet_spec, 1e-2f, 3e-3, 3e-4, 0, 77), 0);
}

/* ---- bounds ---- */

/* The arena's growth over a backward through L tanh ops of n floats. */
static size_t chain_walk_growth(int L, int64_t n) {
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *h = gen_tensor_1d(&g, n);
    tu_fill_uniform(h->data, n, -1, 1, 5);
    h->requires_grad = 1;
    for (int i = 0; i < L; i++) h = gen_tanh(&g, h);
    const size_t forward = g.arena.used_total;
    gen_backward(&g, gen_sum(&g, h));
    const size_t growth = g.arena.peak - forward;
    gen_ctx_free(&g);
    return growth;
}

static void test_chain_peak_bounded(void **state) {
    (void)state;
    const int64_t n = 4096;
    const size_t one = (size_t)n * sizeof(float) + 64; /* a gradient and its header */
    const size_t short_chain = chain_walk_growth(8, n), long_chain = chain_walk_growth(512, n);
    assert_true(long_chain == short_chain); /* whatever the length */
    assert_true(long_chain <= 3 * one);     /* the input's, two on the path */
}

static void test_scratch_reused(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    struct gen_tensor *x = gen_tensor_4d(&g, 2, 8, 16, 16), *w = gen_tensor_4d(&g, 8, 8, 3, 3);
    tu_fill_uniform(x->data, gen_numel(x), -1, 1, 6);
    tu_fill_uniform(w->data, gen_numel(w), -1, 1, 7);
    size_t used[4];
    for (int i = 0; i < 4; i++) {
        used[i] = g.arena.used_total;
        x = gen_conv2d(&g, x, w, NULL, 1, 1);
    }
    /* the first conv's scratch is taken again by the others: each of them
     * adds its output and its header alone */
    const size_t each = used[3] - used[2];
    assert_true(used[2] - used[1] == each);
    assert_true(used[1] - used[0] > each);
    assert_true(each <= (size_t)gen_numel(x) * sizeof(float) + 2 * 64 + sizeof(struct gen_tensor));
    gen_ctx_free(&g);
}

/* Two steps of a graph with a skip: the second asks the allocator for
 * nothing, and gives the same gradients. */
static void test_repeated_step_allocates_nothing(void **state) {
    (void)state;
    const struct tu_input *spec = unet_spec;
    float *data[4], *grad[2][4];
    for (int k = 0; k < 4; k++) {
        const int64_t n = spec[k].shape[0] * spec[k].shape[1] * spec[k].shape[2] * spec[k].shape[3];
        data[k] = malloc((size_t)n * sizeof(float));
        tu_fill_uniform(data[k], n, spec[k].lo, spec[k].hi, 30 + (uint64_t)k);
        for (int s = 0; s < 2; s++) grad[s][k] = malloc((size_t)n * sizeof(float));
    }
    struct gen_ctx g;
    gen_ctx_init(&g);
    long allocs = 0;
    for (int s = 0; s < 2; s++) {
        if (s == 1) allocs = gen_alloc_count();
        struct gen_tensor *in[4];
        for (int k = 0; k < 4; k++) in[k] = leaf(&g, data[k], grad[s][k], 4, spec[k].shape);
        gen_backward(&g, gen_sum(&g, f_unet(&g, in, NULL)));
        gen_ctx_reset(&g);
    }
    assert_int_equal(gen_alloc_count(), allocs);
    for (int k = 0; k < 4; k++) {
        const int64_t n = spec[k].shape[0] * spec[k].shape[1] * spec[k].shape[2] * spec[k].shape[3];
        assert_memory_equal(grad[0][k], grad[1][k], (size_t)n * sizeof(float));
        free(data[k]);
        free(grad[0][k]);
        free(grad[1][k]);
    }
    gen_ctx_free(&g);
}

/* ---- scopes ---- */

static void test_scope_keeps_one(void **state) {
    (void)state;
    enum { N = 4096 };
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    const struct gen_scope outer = gen_scope_open(&g, NULL);
    const struct gen_scope s = gen_scope_open(&g, NULL);
    struct gen_tensor *a = gen_tensor_1d(&g, N), *tmp = gen_tensor_1d(&g, N);
    tu_fill_uniform(a->data, N, -1, 1, 40);
    tu_fill_uniform(tmp->data, N, -1, 1, 41);
    float want[N];
    memcpy(want, a->data, sizeof want);
    float *const tmp_at = tmp->data;
    /* a view of a is kept: a's block stays, tmp's goes back */
    struct gen_tensor *v = gen_scope_close(&g, s, gen_reshape(&g, a, 2, (int64_t[]){64, 64}));
    assert_ptr_equal(v->data, a->data);
    struct gen_tensor *b = gen_tensor_1d(&g, N);
    assert_ptr_equal(b->data, tmp_at);
    memset(b->data, 0, N * sizeof(float));
    assert_memory_equal(v->data, want, sizeof want);
    /* the outer scope owns a's block now: its close gives back a and b */
    float *const a_at = a->data;
    gen_scope_close(&g, outer, NULL);
    assert_int_equal(g.scopes, 0);
    const struct gen_scope again = gen_scope_open(&g, NULL);
    assert_ptr_equal(gen_tensor_1d(&g, N)->data, a_at);
    gen_scope_close(&g, again, NULL);
    /* outside every scope a tensor comes from the arena as before */
    const size_t used = g.arena.used_total;
    gen_tensor_1d(&g, N);
    assert_true(g.arena.used_total >= used + N * sizeof(float));
    gen_ctx_free(&g);
}

/* A chain of 2 L SiLUs, a scope around each two that holds their input
 * and keeps the second's output: the arena grows by the same few blocks
 * of data whatever L (and a header line a tensor), and the result is the
 * unscoped chain's. */
static size_t scoped_chain_growth(int L, const float *x0, float *out, int64_t n) {
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    struct gen_tensor *x = gen_tensor_1d(&g, n);
    memcpy(x->data, x0, (size_t)n * sizeof(float));
    const size_t before = g.arena.used_total;
    for (int i = 0; i < L; i++) {
        const struct gen_scope s = gen_scope_open(&g, x);
        x = gen_scope_close(&g, s, gen_silu(&g, gen_silu(&g, x)));
    }
    memcpy(out, x->data, (size_t)n * sizeof(float));
    const size_t growth = g.arena.used_total - before;
    gen_ctx_free(&g);
    return growth;
}

static void test_scoped_chain_bounded(void **state) {
    (void)state;
    enum { N = 4096, L = 64 };
    float x0[N], want[N], got[N];
    tu_fill_uniform(x0, N, -2, 2, 42);
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    struct gen_tensor *x = gen_tensor_1d(&g, N);
    memcpy(x->data, x0, sizeof x0);
    for (int i = 0; i < 2 * L; i++) x = gen_silu(&g, x);
    memcpy(want, x->data, sizeof want);
    gen_ctx_free(&g);
    const size_t short_chain = scoped_chain_growth(2, x0, got, N);
    const size_t long_chain = scoped_chain_growth(L, x0, got, N);
    assert_memory_equal(got, want, sizeof want);
    const size_t header = (sizeof(struct gen_tensor) + 63) & ~(size_t)63;
    assert_int_equal(long_chain - short_chain, 2 * (L - 2) * header);
    assert_true(short_chain <= 3 * (N * sizeof(float) + 64) + 4 * header);
}

/* With a tape, scopes free nothing: the U-Net-like graph's gradients
 * through scoped blocks equal the unscoped ones, bit for bit. */
static void test_scope_with_tape(void **state) {
    (void)state;
    enum { N = 512 };
    float x0[N], grad[2][N];
    tu_fill_uniform(x0, N, -2, 2, 43);
    for (int scoped = 0; scoped < 2; scoped++) {
        struct gen_ctx g;
        gen_ctx_init(&g);
        struct gen_tensor *x = leaf(&g, x0, grad[scoped], 1, (int64_t[]){N});
        struct gen_tensor *h = x;
        for (int i = 0; i < 4; i++) {
            struct gen_scope s = {0};
            if (scoped) s = gen_scope_open(&g, h);
            h = gen_mul(&g, gen_silu(&g, h), gen_silu(&g, x));
            if (scoped) h = gen_scope_close(&g, s, h);
        }
        gen_backward(&g, gen_sum(&g, h));
        gen_ctx_free(&g);
    }
    assert_memory_equal(grad[0], grad[1], sizeof grad[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_reuse_matches_fresh_contexts),
        cmocka_unit_test(test_unet_skip_gradcheck),
        cmocka_unit_test(test_chain_peak_bounded),
        cmocka_unit_test(test_scratch_reused),
        cmocka_unit_test(test_repeated_step_allocates_nothing),
        cmocka_unit_test(test_scope_keeps_one),
        cmocka_unit_test(test_scoped_chain_bounded),
        cmocka_unit_test(test_scope_with_tape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
