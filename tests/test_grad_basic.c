/* test_grad_basic.c - finite-difference gradient checks and hand-computed
 * forward values for the ops in ops_basic.c, ops_act.c and ops_loss.c, and
 * a check that the kernel ISA does not change their results.
 *
 * Gradient checks (tu_gradcheck) run the forward in float with a central
 * difference of step EPS = 1e-2 and accumulate L = sum(out * r) in double.
 * For ops linear in the checked input the difference is exact up to float
 * rounding of the outputs (measured worst ~8e-6 absolute on these sizes),
 * so those use LIN: rtol 1e-3, atol 5e-5. Smooth nonlinear ops add an
 * O(eps^2 f''') truncation error (measured worst ~4e-5 absolute) and use
 * NL: rtol 3e-3, atol 3e-4. Both leave a margin of about 5x over what the
 * scalar and AVX-512 kernels give; the per-op choice is noted at each check.
 */
#include <math.h>
#include <string.h>

#include "gen/kernels.h"
#include "testutil.h"

#define EPS 1e-2f
#define SEED 1234u

/* Tolerances: linear in the input, and smooth nonlinear. */
#define LIN_RTOL 1e-3
#define LIN_ATOL 5e-5
#define NL_RTOL 3e-3
#define NL_ATOL 3e-4

static struct tu_input in2(int64_t a, int64_t b, float lo, float hi) {
    return (struct tu_input){2, {a, b}, lo, hi, 0};
}
static struct tu_input in_nd(int ndim, const int64_t *shape, float lo, float hi) {
    struct tu_input t = {ndim, {0}, lo, hi, 0};
    memcpy(t.shape, shape, (size_t)ndim * sizeof(int64_t));
    return t;
}
#define IN(ndim, lo, hi, ...) in_nd((ndim), (const int64_t[]){__VA_ARGS__}, (lo), (hi))

/* ---- element-wise binary ops with broadcasting ---- */

static struct gen_tensor *f_add(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_add(g, in[0], in[1]);
}
static struct gen_tensor *f_sub(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_sub(g, in[0], in[1]);
}
static struct gen_tensor *f_mul(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_mul(g, in[0], in[1]);
}
/* a and b the same tensor: both uses accumulate into one grad. */
static struct gen_tensor *f_square(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_mul(g, in[0], in[0]);
}

static void test_binary(void **state) {
    (void)state;
    /* (a, b) shape pairs: same shape, row bias, per-channel, channel-only,
     * a broadcast middle dim, a broadcast leading dim, a scalar. */
    const struct tu_input cases[][2] = {
        {IN(2, -1, 1, 3, 4), IN(2, -1, 1, 3, 4)},
        {IN(2, -1, 1, 5, 4), IN(1, -1, 1, 4)},
        {IN(3, -1, 1, 2, 3, 4), IN(1, -1, 1, 4)},
        {IN(4, -1, 1, 2, 3, 4, 5), IN(4, -1, 1, 2, 3, 1, 1)},
        {IN(4, -1, 1, 2, 3, 4, 5), IN(3, -1, 1, 3, 1, 1)},
        {IN(3, -1, 1, 2, 3, 4), IN(3, -1, 1, 2, 1, 4)},
        {IN(3, -1, 1, 2, 3, 4), IN(3, -1, 1, 1, 3, 4)},
        {IN(4, -1, 1, 2, 1, 4, 5), IN(4, -1, 1, 2, 1, 1, 5)},
        {IN(2, -1, 1, 3, 4), IN(1, -1, 1, 1)},
        {IN(2, -1, 1, 3, 4), IN(2, -1, 1, 3, 1)},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* add/sub are linear; mul is bilinear, so linear in each input. */
        assert_int_equal(tu_gradcheck("add", f_add, NULL, 2, cases[c], EPS, LIN_RTOL, LIN_ATOL, 0,
                                      SEED + c),
                         0);
        assert_int_equal(tu_gradcheck("sub", f_sub, NULL, 2, cases[c], EPS, LIN_RTOL, LIN_ATOL, 0,
                                      SEED + c),
                         0);
        assert_int_equal(tu_gradcheck("mul", f_mul, NULL, 2, cases[c], EPS, LIN_RTOL, LIN_ATOL, 0,
                                      SEED + c),
                         0);
    }
    /* x*x is quadratic: the central difference is exact for it. */
    const struct tu_input sq = IN(2, -1, 1, 3, 4);
    assert_int_equal(tu_gradcheck("mul(x,x)", f_square, NULL, 1, &sq, EPS, LIN_RTOL, LIN_ATOL, 0,
                                  SEED),
                     0);
}

/* Forward of the broadcast cases against index arithmetic. */
static void test_binary_forward(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *a = gen_tensor_4d(&g, 2, 3, 4, 5);
    struct gen_tensor *b1 = gen_tensor_4d(&g, 2, 3, 1, 1); /* per (n, c) */
    struct gen_tensor *b2 = gen_tensor_3d(&g, 3, 1, 1);    /* per c      */
    struct gen_tensor *b3 = gen_tensor_1d(&g, 5);          /* per w      */
    tu_fill_uniform(a->data, 120, -1, 1, 1);
    tu_fill_uniform(b1->data, 6, -1, 1, 2);
    tu_fill_uniform(b2->data, 3, -1, 1, 3);
    tu_fill_uniform(b3->data, 5, -1, 1, 4);
    struct gen_tensor *y1 = gen_add(&g, a, b1), *y2 = gen_mul(&g, a, b2), *y3 = gen_sub(&g, a, b3);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++)
            for (int h = 0; h < 4; h++)
                for (int w = 0; w < 5; w++) {
                    const int i = ((n * 3 + c) * 4 + h) * 5 + w;
                    assert_float_equal(y1->data[i], a->data[i] + b1->data[n * 3 + c], 1e-6);
                    assert_float_equal(y2->data[i], a->data[i] * b2->data[c], 1e-6);
                    assert_float_equal(y3->data[i], a->data[i] - b3->data[w], 1e-6);
                }
    gen_ctx_free(&g);
}

/* Large enough for the threaded paths: forward and both gradients of a
 * per-channel [C, 1, 1] mul on [N, C, H, W] against index arithmetic. */
static void test_binary_large(void **state) {
    (void)state;
    enum { N = 4, C = 32, HW = 300 };
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *a = gen_tensor_4d(&g, N, C, 15, 20), *b = gen_tensor_3d(&g, C, 1, 1);
    tu_fill_uniform(a->data, N * C * HW, -1, 1, 21);
    tu_fill_uniform(b->data, C, -1, 1, 22);
    a->requires_grad = b->requires_grad = 1;
    struct gen_tensor *y = gen_mul(&g, a, b);
    float *dy = malloc(sizeof(float) * N * C * HW);
    tu_fill_uniform(dy, N * C * HW, -1, 1, 23);
    gen_backward_seed(&g, y, dy);
    double db[C] = {0};
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++) {
                const int k = (n * C + c) * HW + i;
                assert_float_equal(y->data[k], a->data[k] * b->data[c], 1e-6);
                assert_float_equal(a->grad[k], dy[k] * b->data[c], 1e-6);
                db[c] += (double)dy[k] * a->data[k];
            }
    for (int c = 0; c < C; c++) assert_float_equal(b->grad[c], db[c], 1e-4);
    free(dy);
    gen_ctx_free(&g);
}

/* ---- scalar ops and reductions ---- */

static struct gen_tensor *f_scale(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_scale(g, in[0], -1.5f);
}
static struct gen_tensor *f_add_scalar(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_add_scalar(g, in[0], 0.75f);
}
static struct gen_tensor *f_sum(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_sum(g, in[0]);
}
static struct gen_tensor *f_mean(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_mean(g, in[0]);
}

static void test_scalar_reduce(void **state) {
    (void)state;
    const struct tu_input x3 = IN(3, -1, 1, 2, 3, 4);
    /* All linear: LIN tolerances. */
    assert_int_equal(tu_gradcheck("scale", f_scale, NULL, 1, &x3, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    assert_int_equal(
        tu_gradcheck("add_scalar", f_add_scalar, NULL, 1, &x3, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    assert_int_equal(tu_gradcheck("sum", f_sum, NULL, 1, &x3, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    assert_int_equal(tu_gradcheck("mean", f_mean, NULL, 1, &x3, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);

    struct gen_ctx g;
    gen_ctx_init(&g);
    float v[] = {1, 2, 3, 4, 5, 6};
    struct gen_tensor *t = gen_tensor_wrap(&g, v, 2, (int64_t[]){2, 3});
    assert_float_equal(gen_sum(&g, t)->data[0], 21.0f, 1e-6);
    assert_float_equal(gen_mean(&g, t)->data[0], 3.5f, 1e-6);
    assert_float_equal(gen_scale(&g, t, 2.0f)->data[5], 12.0f, 1e-6);
    assert_float_equal(gen_add_scalar(&g, t, -1.0f)->data[0], 0.0f, 1e-6);
    gen_ctx_free(&g);
}

/* ---- matmul and linear ---- */

struct mm_arg {
    enum gen_trans ta, tb;
};
static struct gen_tensor *f_matmul(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct mm_arg *m = arg;
    return gen_matmul(g, in[0], in[1], m->ta, m->tb);
}

static void test_matmul(void **state) {
    (void)state;
    const int64_t M = 3, K = 4, N = 5, B = 2;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            struct mm_arg arg = {ta, tb};
            /* 2-D and batched 3-D; bilinear, so linear in each input. */
            const struct tu_input in2d[2] = {ta ? in2(K, M, -1, 1) : in2(M, K, -1, 1),
                                             tb ? in2(N, K, -1, 1) : in2(K, N, -1, 1)};
            assert_int_equal(tu_gradcheck("matmul", f_matmul, &arg, 2, in2d, EPS, LIN_RTOL,
                                          LIN_ATOL, 0, SEED + (unsigned)(2 * ta + tb)),
                             0);
            const struct tu_input in3d[2] = {ta ? IN(3, -1, 1, B, K, M) : IN(3, -1, 1, B, M, K),
                                             tb ? IN(3, -1, 1, B, N, K) : IN(3, -1, 1, B, K, N)};
            assert_int_equal(tu_gradcheck("bmm", f_matmul, &arg, 2, in3d, EPS, LIN_RTOL, LIN_ATOL,
                                          0, SEED + (unsigned)(2 * ta + tb)),
                             0);
        }
}

static void test_matmul_forward(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    float av[] = {1, 2, 3, 4, 5, 6}, bv[12];
    for (int i = 0; i < 12; i++) bv[i] = (float)i;
    struct gen_tensor *a = gen_tensor_wrap(&g, av, 2, (int64_t[]){2, 3});
    struct gen_tensor *b = gen_tensor_wrap(&g, bv, 2, (int64_t[]){3, 4});
    struct gen_tensor *c = gen_matmul(&g, a, b, GEN_NOTRANS, GEN_NOTRANS);
    const float want[] = {32, 38, 44, 50, 68, 83, 98, 113};
    assert_int_equal(c->shape[0], 2);
    assert_int_equal(c->shape[1], 4);
    TU_ASSERT_CLOSE("matmul 2x3x4", c->data, want, 8, 1e-6, 1e-6);

    /* Batched with both transposes against a naive loop. */
    const int64_t B = 2, M = 3, K = 4, N = 5;
    struct gen_tensor *at = gen_tensor_3d(&g, B, K, M), *bt = gen_tensor_3d(&g, B, N, K);
    tu_fill_uniform(at->data, B * K * M, -1, 1, 5);
    tu_fill_uniform(bt->data, B * N * K, -1, 1, 6);
    struct gen_tensor *ct = gen_matmul(&g, at, bt, GEN_TRANS, GEN_TRANS);
    float ref[2 * 3 * 5];
    for (int64_t z = 0; z < B; z++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)at->data[(z * K + k) * M + i] * bt->data[(z * N + j) * K + k];
                ref[(z * M + i) * N + j] = (float)s;
            }
    TU_ASSERT_CLOSE("bmm tt", ct->data, ref, B * M * N, 1e-5, 1e-6);
    gen_ctx_free(&g);
}

static struct gen_tensor *f_linear(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_linear(g, in[0], in[1], in[2]);
}
static struct gen_tensor *f_linear_nobias(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_linear(g, in[0], in[1], NULL);
}

static void test_linear(void **state) {
    (void)state;
    /* x (B, T, IN), w (OUT, IN), b (OUT): linear in each input. */
    const struct tu_input in3[3] = {IN(3, -1, 1, 2, 3, 4), IN(2, -1, 1, 5, 4), IN(1, -1, 1, 5)};
    assert_int_equal(
        tu_gradcheck("linear3d", f_linear, NULL, 3, in3, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    const struct tu_input in2_[2] = {IN(2, -1, 1, 6, 3), IN(2, -1, 1, 2, 3)};
    assert_int_equal(tu_gradcheck("linear2d", f_linear_nobias, NULL, 2, in2_, EPS, LIN_RTOL,
                                  LIN_ATOL, 0, SEED),
                     0);

    struct gen_ctx g;
    gen_ctx_init(&g);
    float xv[] = {1, 2, -1, 0.5f}, wv[] = {1, 0, 2, -1, 3, 1}, bv[] = {0.5f, -1, 2};
    struct gen_tensor *x = gen_tensor_wrap(&g, xv, 3, (int64_t[]){2, 1, 2});
    struct gen_tensor *w = gen_tensor_wrap(&g, wv, 2, (int64_t[]){3, 2});
    struct gen_tensor *b = gen_tensor_wrap(&g, bv, 1, (int64_t[]){3});
    struct gen_tensor *y = gen_linear(&g, x, w, b);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 3);
    const float want[] = {1.5f, -1, 7, -0.5f, -3.5f, -0.5f};
    TU_ASSERT_CLOSE("linear", y->data, want, 6, 1e-6, 1e-6);
    gen_ctx_free(&g);
}

/* Residual blocks on x = in / 2 (an op's output, whose gradient starts
 * unset), squared so that the add's output gradient is a pool block that
 * the add passes on to both of its inputs (gen_grad_pass): in x +
 * linear(x) the linear's backward adds dx = dy w and then reads dy for dw
 * while dy is still also x's gradient (so x must copy it before writing);
 * in x + linear(gelu(x)) x's writer, the gelu, comes after every other
 * holder let go (x then owns the block and adds to it in place). */
static struct gen_tensor *f_residual(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const int gelu = *(const int *)arg;
    struct gen_tensor *x = gen_scale(g, in[0], 0.5f);
    struct gen_tensor *y = gen_add(g, x, gen_linear(g, gelu ? gen_gelu(g, x) : x, in[1], NULL));
    return gen_mul(g, y, y);
}

static void test_residual(void **state) {
    (void)state;
    const struct tu_input in2_[2] = {IN(2, -1, 1, 5, 4), IN(2, -1, 1, 4, 4)};
    for (int gelu = 0; gelu <= 1; gelu++)
        assert_int_equal(tu_gradcheck(gelu ? "x + linear(gelu(x))" : "x + linear(x)", f_residual,
                                      &gelu, 2, in2_, EPS, NL_RTOL, NL_ATOL, 0, SEED),
                         0);
}

/* ---- data movement ---- */

static struct gen_tensor *f_reshape(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    struct gen_tensor *r = gen_reshape(g, in[0], 2, (int64_t[]){6, 4});
    return gen_mul(g, r, r); /* something downstream of the shared data */
}
struct perm_arg {
    int perm[4];
};
static struct gen_tensor *f_permute(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    return gen_permute(g, in[0], ((struct perm_arg *)arg)->perm);
}
static struct gen_tensor *f_transpose(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_transpose(g, in[0], 0, 2);
}
static struct gen_tensor *f_concat(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_concat(g, in[0], in[1]);
}
struct slice_arg {
    int dim;
    int64_t start, len;
};
static struct gen_tensor *f_slice(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    const struct slice_arg *s = arg;
    return gen_slice(g, in[0], s->dim, s->start, s->len);
}

static void test_movement(void **state) {
    (void)state;
    /* All are copies (linear); reshape feeds a square (exact central difference). */
    const struct tu_input x = IN(3, -1, 1, 2, 3, 4);
    assert_int_equal(
        tu_gradcheck("reshape", f_reshape, NULL, 1, &x, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    const struct tu_input x4 = IN(4, -1, 1, 2, 3, 4, 5);
    struct perm_arg p4 = {{0, 2, 3, 1}}, p4b = {{3, 1, 0, 2}}, p3 = {{2, 0, 1}};
    assert_int_equal(
        tu_gradcheck("permute4", f_permute, &p4, 1, &x4, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    assert_int_equal(
        tu_gradcheck("permute4b", f_permute, &p4b, 1, &x4, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    assert_int_equal(
        tu_gradcheck("permute3", f_permute, &p3, 1, &x, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    assert_int_equal(
        tu_gradcheck("transpose", f_transpose, NULL, 1, &x, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    const struct tu_input cat4[2] = {IN(4, -1, 1, 2, 3, 2, 2), IN(4, -1, 1, 2, 1, 2, 2)};
    const struct tu_input cat2[2] = {IN(2, -1, 1, 3, 2), IN(2, -1, 1, 3, 4)};
    assert_int_equal(
        tu_gradcheck("concat4", f_concat, NULL, 2, cat4, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    assert_int_equal(
        tu_gradcheck("concat2", f_concat, NULL, 2, cat2, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    const struct slice_arg sl[] = {{0, 1, 1}, {1, 1, 2}, {2, 0, 3}, {3, 2, 3}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            tu_gradcheck("slice", f_slice, (void *)&sl[i], 1, &x4, EPS, LIN_RTOL, LIN_ATOL, 0, SEED),
            0);

    /* Forward values. */
    struct gen_ctx g;
    gen_ctx_init(&g);
    float v[24];
    for (int i = 0; i < 24; i++) v[i] = (float)i;
    struct gen_tensor *t = gen_tensor_wrap(&g, v, 3, (int64_t[]){2, 3, 4});
    struct gen_tensor *r = gen_reshape(&g, t, 2, (int64_t[]){4, 6});
    assert_ptr_equal(r->data, t->data);
    struct gen_tensor *pt = gen_permute(&g, t, (const int[]){2, 0, 1}); /* (4, 2, 3) */
    assert_int_equal(pt->shape[0], 4);
    assert_int_equal(pt->shape[1], 2);
    assert_int_equal(pt->shape[2], 3);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_float_equal(pt->data[(k * 2 + i) * 3 + j], v[(i * 3 + j) * 4 + k], 0);
    struct gen_tensor *s = gen_slice(&g, t, 2, 1, 2); /* (2, 3, 2) */
    for (int i = 0; i < 6; i++) {
        assert_float_equal(s->data[2 * i], v[4 * i + 1], 0);
        assert_float_equal(s->data[2 * i + 1], v[4 * i + 2], 0);
    }
    struct gen_tensor *u = gen_slice(&g, t, 1, 2, 1); /* (2, 1, 4) */
    struct gen_tensor *c = gen_concat(&g, t, u);       /* (2, 4, 4) */
    assert_int_equal(c->shape[1], 4);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 4; k++)
                assert_float_equal(c->data[(i * 4 + j) * 4 + k], v[(i * 3 + (j < 3 ? j : 2)) * 4 + k],
                                   0);
    gen_ctx_free(&g);
}

/* ---- activations ---- */

struct act_arg {
    int which;
};
enum { A_RELU, A_LEAKY, A_GELU, A_SILU, A_SIGMOID, A_TANH, A_EXP, A_SOFTMAX, A_LOG_SOFTMAX };
static struct gen_tensor *f_act(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    switch (((struct act_arg *)arg)->which) {
    case A_RELU: return gen_relu(g, in[0]);
    case A_LEAKY: return gen_leaky_relu(g, in[0], 0.2f);
    case A_GELU: return gen_gelu(g, in[0]);
    case A_SILU: return gen_silu(g, in[0]);
    case A_SIGMOID: return gen_sigmoid(g, in[0]);
    case A_TANH: return gen_tanh(g, in[0]);
    case A_EXP: return gen_exp(g, in[0]);
    case A_SOFTMAX: return gen_softmax(g, in[0]);
    default: return gen_log_softmax(g, in[0]);
    }
}

static void test_activations(void **state) {
    (void)state;
    static const char *names[] = {"relu", "leaky_relu", "gelu", "silu", "sigmoid",
                                  "tanh", "exp", "softmax", "log_softmax"};
    /* relu / leaky_relu: piecewise linear, inputs kept at |x| >= 0.1 > eps on
     * each side of the kink, so the difference is exact: LIN tolerances. */
    const struct tu_input pos = IN(3, 0.1f, 1, 2, 3, 4), neg = IN(3, -1, -0.1f, 2, 3, 4);
    for (int w = A_RELU; w <= A_LEAKY; w++) {
        struct act_arg a = {w};
        assert_int_equal(
            tu_gradcheck(names[w], f_act, &a, 1, &pos, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
        assert_int_equal(
            tu_gradcheck(names[w], f_act, &a, 1, &neg, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    }
    /* Smooth ones on [-2, 2]: NL tolerances (the truncation error,
     * eps^2/6 |f'''| <= 1e-4 for exp at 2, is well inside). */
    const struct tu_input x = IN(3, -2, 2, 2, 3, 4), row = IN(2, -2, 2, 3, 7);
    for (int w = A_GELU; w <= A_LOG_SOFTMAX; w++) {
        struct act_arg a = {w};
        assert_int_equal(tu_gradcheck(names[w], f_act, &a, 1, &x, EPS, NL_RTOL, NL_ATOL, 0, SEED),
                         0);
        if (w >= A_SOFTMAX)
            assert_int_equal(
                tu_gradcheck(names[w], f_act, &a, 1, &row, EPS, NL_RTOL, NL_ATOL, 0, SEED), 0);
    }
}

static void test_activation_forward(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    float v[] = {1, 2, 3}, u[] = {1, -0.5f, 2, -3};
    struct gen_tensor *t = gen_tensor_wrap(&g, v, 1, (int64_t[]){3});
    struct gen_tensor *x = gen_tensor_wrap(&g, u, 1, (int64_t[]){4});
    const float sm[] = {0.09003057317f, 0.24472847105f, 0.66524095577f};
    const float lsm[] = {-2.40760596444f, -1.40760596444f, -0.40760596444f};
    TU_ASSERT_CLOSE("softmax", gen_softmax(&g, t)->data, sm, 3, 1e-5, 1e-7);
    TU_ASSERT_CLOSE("log_softmax", gen_log_softmax(&g, t)->data, lsm, 3, 1e-5, 1e-7);
    const float gelu[] = {0.84119199061f, -0.15428599017f, 1.95459769409f, -0.00363739208f};
    TU_ASSERT_CLOSE("gelu", gen_gelu(&g, x)->data, gelu, 4, 1e-5, 1e-6);
    const float relu[] = {1, 0, 2, 0}, leaky[] = {1, -0.05f, 2, -0.3f};
    TU_ASSERT_CLOSE("relu", gen_relu(&g, x)->data, relu, 4, 0, 1e-30);
    TU_ASSERT_CLOSE("leaky_relu", gen_leaky_relu(&g, x, 0.1f)->data, leaky, 4, 1e-6, 0);
    const float sig[] = {0.73105857863f, 0.37754066880f, 0.88079707798f, 0.04742587318f};
    TU_ASSERT_CLOSE("sigmoid", gen_sigmoid(&g, x)->data, sig, 4, 1e-5, 1e-7);
    gen_ctx_free(&g);
}

/* ---- losses, embedding, dropout ---- */

static const int32_t ce_targets[] = {0, 4, 2, 1, 3, 4};
static struct gen_tensor *f_ce(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_cross_entropy(g, in[0], ce_targets);
}
static struct gen_tensor *f_bce(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    return gen_bce_logits(g, in[0], in[1], *(int *)arg);
}
static struct gen_tensor *f_mse(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_mse(g, in[0], in[1]);
}
static struct gen_tensor *f_kl(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_gaussian_kl(g, in[0], in[1]);
}
static const int32_t emb_idx[] = {3, 0, 3, 6, 1, 3};
static struct gen_tensor *f_emb(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_embedding(g, in[0], emb_idx, 3, (int64_t[]){2, 3, 4});
}
static struct gen_tensor *f_dropout(struct gen_ctx *g, struct gen_tensor **in, void *arg) {
    (void)arg;
    return gen_dropout(g, in[0], 0.3f, 77, 1, 0); /* the same mask on every call */
}

static void test_losses(void **state) {
    (void)state;
    /* Smooth nonlinear: NL tolerances. */
    const struct tu_input ce2 = IN(2, -2, 2, 6, 5), ce3 = IN(3, -2, 2, 2, 3, 5);
    assert_int_equal(tu_gradcheck("ce", f_ce, NULL, 1, &ce2, EPS, NL_RTOL, NL_ATOL, 0, SEED), 0);
    assert_int_equal(tu_gradcheck("ce3d", f_ce, NULL, 1, &ce3, EPS, NL_RTOL, NL_ATOL, 0, SEED), 0);
    struct tu_input bce[2] = {IN(2, -3, 3, 4, 5), IN(2, 0, 1, 4, 5)};
    bce[1].no_grad = 1;
    for (int mean = 0; mean < 2; mean++)
        assert_int_equal(
            tu_gradcheck("bce", f_bce, &mean, 2, bce, EPS, NL_RTOL, NL_ATOL, 0, SEED), 0);
    /* MSE is quadratic: exact central difference, LIN tolerances. */
    struct tu_input mse[2] = {IN(3, -1, 1, 2, 3, 4), IN(3, -1, 1, 2, 3, 4)};
    mse[1].no_grad = 1;
    assert_int_equal(tu_gradcheck("mse", f_mse, NULL, 2, mse, EPS, LIN_RTOL, LIN_ATOL, 0, SEED),
                     0);
    const struct tu_input kl[2] = {IN(2, -1, 1, 3, 4), IN(2, -1, 1, 3, 4)};
    assert_int_equal(tu_gradcheck("kl", f_kl, NULL, 2, kl, EPS, NL_RTOL, NL_ATOL, 0, SEED), 0);
    /* Embedding and dropout are linear in their input. */
    const struct tu_input w = IN(2, -1, 1, 7, 4);
    assert_int_equal(
        tu_gradcheck("embedding", f_emb, NULL, 1, &w, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
    const struct tu_input d = IN(3, -1, 1, 2, 3, 4);
    assert_int_equal(
        tu_gradcheck("dropout", f_dropout, NULL, 1, &d, EPS, LIN_RTOL, LIN_ATOL, 0, SEED), 0);
}

static void test_loss_forward(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    float logits[] = {1, 2, 3, 3, 2, 1};
    const int32_t tg[] = {2, 1};
    struct gen_tensor *l = gen_tensor_wrap(&g, logits, 2, (int64_t[]){2, 3});
    /* rows: -log p = 0.40760596, 1.40760596 */
    assert_float_equal(gen_cross_entropy(&g, l, tg)->data[0], 0.90760596f, 1e-6);

    float xv[] = {0, 2, -1, -3}, tv[] = {1, 0, 0.5f, 1};
    struct gen_tensor *x = gen_tensor_wrap(&g, xv, 1, (int64_t[]){4});
    struct gen_tensor *t = gen_tensor_wrap(&g, tv, 1, (int64_t[]){4});
    assert_float_equal(gen_bce_logits(&g, x, t, 0)->data[0], 6.68192423f, 1e-5);
    assert_float_equal(gen_bce_logits(&g, x, t, 1)->data[0], 1.67048106f, 1e-6);

    float av[] = {1, 2, 3}, bv[] = {0, 0, 1};
    struct gen_tensor *a = gen_tensor_wrap(&g, av, 1, (int64_t[]){3});
    struct gen_tensor *b = gen_tensor_wrap(&g, bv, 1, (int64_t[]){3});
    assert_float_equal(gen_mse(&g, a, b)->data[0], 3.0f, 1e-6);

    float mu[] = {0, 1, 0.5f}, lv[] = {0, 0.69314718056f, -0.5f};
    struct gen_tensor *m = gen_tensor_wrap(&g, mu, 1, (int64_t[]){3});
    struct gen_tensor *v = gen_tensor_wrap(&g, lv, 1, (int64_t[]){3});
    assert_float_equal(gen_gaussian_kl(&g, m, v)->data[0], 0.83169174f, 1e-6);

    float wv[] = {1, 2, 3, 4, 5, 6};
    struct gen_tensor *w = gen_tensor_wrap(&g, wv, 2, (int64_t[]){3, 2});
    const int32_t idx[] = {2, 0, 2};
    struct gen_tensor *e = gen_embedding(&g, w, idx, 2, (int64_t[]){3, 2});
    const float ew[] = {5, 6, 1, 2, 5, 6};
    TU_ASSERT_CLOSE("embedding", e->data, ew, 6, 0, 1e-30);
    gen_ctx_free(&g);
}

static void test_dropout(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    const int64_t n = 20000;
    struct gen_tensor *x = gen_tensor_2d(&g, 100, n / 100);
    tu_fill_uniform(x->data, n, 0.5f, 1.5f, 9);
    assert_ptr_equal(gen_dropout(&g, x, 0.0f, 5, 1, 0), x);
    struct gen_tensor *y = gen_dropout(&g, x, 0.25f, 5, 1, 0);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y->data[i] == 0.0f) zeros++;
        else assert_float_equal(y->data[i], x->data[i] / 0.75f, 1e-6);
    }
    /* 25% dropped, within ~5 standard deviations (sd = 0.003). */
    assert_true(fabs((double)zeros / (double)n - 0.25) < 0.015);
    /* row i's mask depends on its global index only: rows 40.. of x are
     * masked as rows 0.. of the same rows taken from index 40 */
    struct gen_tensor *tail = gen_tensor_wrap(&g, x->data + 40 * (n / 100), 2, (int64_t[]){60, n / 100});
    struct gen_tensor *yt = gen_dropout(&g, tail, 0.25f, 5, 1, 40);
    assert_memory_equal(yt->data, y->data + 40 * (n / 100), (size_t)(60 * (n / 100)) * sizeof(float));
    g.training = 0;
    assert_ptr_equal(gen_dropout(&g, x, 0.25f, 5, 1, 0), x);
    gen_ctx_free(&g);
}

/* ---- the ISA must not change results ---- */

/* A small network forward and backward: linear -> +bias(4-D) -> gelu/silu/
 * tanh/sigmoid mix -> softmax, log_softmax, cross-entropy, bce, mse, kl.
 * Writes the loss and the input gradients to res (returns its length). */
static int64_t isa_run(float *res) {
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = gen_tensor_3d(&g, 4, 6, 37), *w = gen_tensor_2d(&g, 29, 37);
    struct gen_tensor *b = gen_tensor_1d(&g, 29);
    tu_fill_uniform(x->data, gen_numel(x), -1, 1, 11);
    tu_fill_uniform(w->data, gen_numel(w), -0.3f, 0.3f, 12);
    tu_fill_uniform(b->data, 29, -0.1f, 0.1f, 13);
    x->requires_grad = w->requires_grad = b->requires_grad = 1;
    struct gen_tensor *h = gen_linear(&g, x, w, b); /* (4, 6, 29) */
    struct gen_tensor *h1 = gen_gelu(&g, h), *h2 = gen_silu(&g, h), *h3 = gen_tanh(&g, h);
    struct gen_tensor *h4 = gen_mul(&g, gen_sigmoid(&g, h1), gen_exp(&g, gen_scale(&g, h3, 0.5f)));
    struct gen_tensor *s = gen_add(&g, gen_add(&g, h1, h2), h4);
    struct gen_tensor *sm = gen_softmax(&g, s), *lsm = gen_log_softmax(&g, s);
    int32_t tg[24];
    for (int i = 0; i < 24; i++) tg[i] = (7 * i) % 29;
    struct gen_tensor *loss = gen_cross_entropy(&g, s, tg);
    loss = gen_add(&g, loss, gen_mean(&g, gen_mul(&g, sm, lsm)));
    loss = gen_add(&g, loss, gen_bce_logits(&g, h2, sm, 1));
    loss = gen_add(&g, loss, gen_mse(&g, gen_relu(&g, h), h3));
    loss = gen_add(&g, loss, gen_scale(&g, gen_gaussian_kl(&g, h3, h4), 1e-3f));
    loss = gen_add(&g, loss, gen_mean(&g, gen_leaky_relu(&g, h, 0.1f)));
    gen_backward(&g, loss);
    int64_t k = 0;
    res[k++] = loss->data[0];
    memcpy(res + k, x->grad, (size_t)gen_numel(x) * sizeof(float));
    k += gen_numel(x);
    memcpy(res + k, w->grad, (size_t)gen_numel(w) * sizeof(float));
    k += gen_numel(w);
    memcpy(res + k, b->grad, 29 * sizeof(float));
    k += 29;
    gen_ctx_free(&g);
    return k;
}

/* A truncated tape forgets the nodes after the mark. y = x x; l1 = sum(y)
 * is backpropagated, then cut off the tape; l2 = sum(3 y) then flows into
 * y alone. y's gradient from l1 went back to the pool once y's op had run
 * its backward (y->grad NULL), so the second walk gives x 2 x 3 more, as
 * PyTorch's backward with retain_graph: 8 x in all. */
static void test_tape_truncate(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = gen_tensor_1d(&g, 3), *three = gen_tensor_1d(&g, 3);
    for (int i = 0; i < 3; i++) x->data[i] = (float)(i + 1), three->data[i] = 3.0f;
    x->requires_grad = 1;
    struct gen_tensor *y = gen_mul(&g, x, x);
    const int64_t mark = gen_tape_mark(&g);
    gen_backward(&g, gen_sum(&g, y));
    assert_null(y->grad);
    assert_true(gen_tape_mark(&g) > mark);
    gen_tape_truncate(&g, mark);
    assert_int_equal(gen_tape_mark(&g), mark);
    gen_backward(&g, gen_sum(&g, gen_mul(&g, y, three)));
    assert_null(y->grad);
    for (int i = 0; i < 3; i++) /* x: 2x from l1, then 2x 3 from l2 */
        assert_true(x->grad[i] == 2.0f * (float)(i + 1) * 4.0f);
    gen_ctx_free(&g);
}

/* A leaf of n values v0, v0 + 1, ... that needs a gradient. */
static struct gen_tensor *leaf_1d(struct gen_ctx *g, int64_t n, float v0) {
    struct gen_tensor *t = gen_tensor_1d(g, n);
    for (int64_t i = 0; i < n; i++) t->data[i] = v0 + (float)i;
    t->requires_grad = 1;
    return t;
}

/* The first op to write a gradient overwrites it, the others add: x + x
 * gives 2 dy; x read by three ops the sum of the three; a stale buffer (a
 * parameter's after gen_params_zero_grad) is overwritten, garbage and all,
 * a live one added to; a stale one no op writes (w's: its product does not
 * reach the output) is zero after the walk; the seed becomes the output's
 * gradient without a copy (and stays it after the walk), and is copied,
 * never written, when a second backward adds to it (the copy, pooled, is
 * gone after that walk); an add passes its gradient on without a copy.
 * Exact by hand. */
static void test_pass_through(void **state) {
    (void)state;
    enum { N = 5 };
    const float dy[N] = {0.5f, -1.0f, 2.0f, 0.25f, -3.0f};
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf_1d(&g, N, -2.0f);
    gen_backward_seed(&g, gen_add(&g, x, x), dy);
    for (int i = 0; i < N; i++) assert_true(x->grad[i] == dy[i] + dy[i]);

    /* z = x x + 3 x + relu(x): dz/dx = 2 x + 3 + [x > 0] */
    gen_ctx_reset(&g);
    x = leaf_1d(&g, N, -2.0f);
    struct gen_tensor *z = gen_add(&g, gen_add(&g, gen_mul(&g, x, x), gen_scale(&g, x, 3.0f)),
                                   gen_relu(&g, x));
    gen_backward_seed(&g, z, dy);
    for (int i = 0; i < N; i++) {
        const float xi = x->data[i];
        const float want = dy[i] * (xi > 0) + (3.0f * dy[i] + (dy[i] * xi + dy[i] * xi));
        assert_float_equal(x->grad[i], want, 1e-6);
    }

    /* caller-owned buffers: stale (garbage), live (added to), stale and unreached */
    gen_ctx_reset(&g);
    float stale[N], live[N], unreached[N];
    for (int i = 0; i < N; i++) stale[i] = NAN, live[i] = 100.0f, unreached[i] = 7.0f;
    struct gen_tensor *a = leaf_1d(&g, N, 1.0f), *b = leaf_1d(&g, N, 1.0f);
    struct gen_tensor *w = leaf_1d(&g, N, 1.0f);
    a->grad = stale, a->grad_stale = 1;
    b->grad = live;
    w->grad = unreached, w->grad_stale = 1;
    struct gen_tensor *y = gen_add(&g, gen_scale(&g, a, 3.0f), gen_scale(&g, b, 3.0f));
    gen_mul(&g, w, a); /* on the tape, never reached from y */
    gen_backward_seed(&g, y, dy);
    for (int i = 0; i < N; i++) {
        assert_true(stale[i] == 3.0f * dy[i]);
        assert_true(live[i] == 100.0f + 3.0f * dy[i]);
        assert_true(unreached[i] == 0.0f);
    }
    assert_false(a->grad_stale || w->grad_stale);

    gen_ctx_reset(&g);
    x = leaf_1d(&g, N, -2.0f);
    y = gen_scale(&g, x, 2.0f);
    gen_mul(&g, y, y); /* reads y, never reached */
    float seed[N];
    memcpy(seed, dy, sizeof seed);
    gen_backward_seed(&g, y, seed);
    assert_ptr_equal(y->grad, seed);
    gen_backward_seed(&g, y, seed); /* y: dy + dy; x: 2 dy, then 2 (2 dy) more */
    assert_null(y->grad);
    for (int i = 0; i < N; i++) {
        assert_true(seed[i] == dy[i]);
        assert_true(x->grad[i] == 6.0f * dy[i]);
    }

    /* z = (x + b) + 3 x: the adds pass z's gradient on unchanged, shared,
     * to x + b and to b; x, written first by the scale, adds its own */
    gen_ctx_reset(&g);
    x = leaf_1d(&g, N, -2.0f), b = leaf_1d(&g, N, 0.5f);
    y = gen_add(&g, x, b);
    struct gen_tensor *z3 = gen_add(&g, y, gen_scale(&g, x, 3.0f));
    gen_backward_seed(&g, z3, seed);
    assert_ptr_equal(y->grad, seed);
    assert_ptr_equal(b->grad, seed);
    for (int i = 0; i < N; i++) {
        assert_true(seed[i] == dy[i]);
        assert_true(x->grad[i] == 3.0f * dy[i] + dy[i]);
    }
    gen_ctx_free(&g);
}

/* An element-wise backward whose input has no gradient yet writes it over
 * its output's (gen_grad_dst_over). The ops that do, on h = x / 2 (an op's
 * output, so its gradient starts unset): x's gradient must be what the
 * same op gives when h's gradient was already written by another reader
 * (h + 0 h first in the walk, so the op adds to zeros: the same bits),
 * and a chain of such ops must hold one gradient buffer at a time, not
 * two. */
enum { OVER_RELU, OVER_LEAKY, OVER_GELU, OVER_SILU, OVER_SIGMOID, OVER_TANH, OVER_EXP,
       OVER_GN, OVER_GN_SILU, OVER_BN, OVER_COUNT };

static struct gen_tensor *over_op(struct gen_ctx *g, int op, struct gen_tensor *h,
                                  struct gen_tensor *gamma, struct gen_tensor *beta,
                                  struct gen_tensor *rm, struct gen_tensor *rv) {
    switch (op) {
    case OVER_RELU: return gen_relu(g, h);
    case OVER_LEAKY: return gen_leaky_relu(g, h, 0.2f);
    case OVER_GELU: return gen_gelu(g, h);
    case OVER_SILU: return gen_silu(g, h);
    case OVER_SIGMOID: return gen_sigmoid(g, h);
    case OVER_TANH: return gen_tanh(g, h);
    case OVER_EXP: return gen_exp(g, h);
    case OVER_GN: return gen_groupnorm(g, h, 2, gamma, beta, 1e-5f);
    case OVER_GN_SILU: return gen_groupnorm_silu(g, h, 2, gamma, beta, 1e-5f);
    default: return gen_batchnorm(g, h, gamma, beta, rm, rv, 0.1f, 1e-5f);
    }
}

/* The equality check above for each op on the kernel table in force. */
static void write_over_ops(const char *isa) {
    enum { N = 3, C = 4, HW = 37, NX = N * C * HW };
    static float dz[NX], want[NX];
    struct gen_rng r;
    gen_rng_seed(&r, SEED);
    gen_rng_fill_uniform(&r, dz, NX, -1.0f, 1.0f);
    struct gen_ctx g;
    gen_ctx_init(&g);
    for (int op = 0; op < OVER_COUNT; op++)
        for (int shared = 1; shared >= 0; shared--) {
            gen_ctx_reset(&g);
            struct gen_tensor *x = gen_tensor_4d(&g, N, C, HW, 1);
            gen_rng_seed(&r, SEED + 1);
            gen_rng_fill_uniform(&r, x->data, NX, -2.0f, 2.0f);
            x->requires_grad = 1;
            struct gen_tensor *gamma = leaf_1d(&g, C, 0.5f), *beta = leaf_1d(&g, C, -1.0f);
            struct gen_tensor *rm = gen_zeros(&g, 1, (int64_t[]){C});
            struct gen_tensor *rv = gen_zeros(&g, 1, (int64_t[]){C});
            struct gen_tensor *h = gen_scale(&g, x, 0.5f);
            struct gen_tensor *y = over_op(&g, op, h, gamma, beta, rm, rv);
            if (shared) y = gen_add(&g, y, gen_scale(&g, h, 0.0f));
            gen_backward_seed(&g, y, dz);
            if (shared) {
                memcpy(want, x->grad, sizeof want);
                continue;
            }
            for (int i = 0; i < NX; i++)
                if (!(x->grad[i] == want[i]))
                    fail_msg("%s, op %d: dx[%d] %.9g written over, %.9g added to zeros", isa, op,
                             i, (double)x->grad[i], (double)want[i]);
        }
    gen_ctx_free(&g);
}

static void test_write_over(void **state) {
    (void)state;
    static const char *isas[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        if (!gen_kernels_select(isas[i])) {
            fprintf(stderr, "  write over: %s not available, skipped\n", isas[i]);
            continue;
        }
        write_over_ops(isas[i]);
    }
    gen_kernels_select(NULL);

    /* x -> 8 GELUs -> z = y y, seeded: one pooled buffer of NX floats for
     * the whole walk (the product's dy, then each GELU's input's, x's in
     * the end), where writing each input's afresh would hold two */
    enum { NX = 4096 };
    static float dz[NX];
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_tensor *x = leaf_1d(&g, NX, -2.0f);
    for (int i = 0; i < NX; i++) x->data[i] = (float)i / NX - 0.5f, dz[i] = 1.0f;
    struct gen_tensor *y = x;
    for (int i = 0; i < 8; i++) y = gen_gelu(&g, y);
    struct gen_tensor *z = gen_mul(&g, y, y);
    const size_t before = g.arena.used_total, bytes = NX * sizeof(float);
    gen_backward_seed(&g, z, dz);
    if (!(g.arena.peak - before < bytes + bytes / 2))
        fail_msg("the walk took %zu bytes past the forward's for %zu-byte gradients",
                 g.arena.peak - before, bytes);
    gen_ctx_free(&g);
}

static void test_isa_parity(void **state) {
    (void)state;
    enum { MAXN = 1 + 4 * 6 * 37 + 29 * 37 + 29 };
    static float ref[MAXN], got[MAXN];
    assert_true(gen_kernels_select("scalar"));
    const int64_t n = isa_run(ref);
    static const char *isas[] = {"avx2", "avx512"};
    for (int i = 0; i < 2; i++) {
        if (!gen_kernels_select(isas[i])) {
            fprintf(stderr, "  isa parity: %s not available, skipped\n", isas[i]);
            continue;
        }
        assert_int_equal(isa_run(got), n);
        /* Vector exp/tanh approximations and summation order differ from
         * the scalar reference by a few ulp; 1e-4 relative allows for it. */
        TU_ASSERT_CLOSE(isas[i], got, ref, n, 1e-4, 1e-6);
    }
    gen_kernels_select(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary),         cmocka_unit_test(test_binary_forward),
        cmocka_unit_test(test_binary_large),
        cmocka_unit_test(test_scalar_reduce),  cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_forward), cmocka_unit_test(test_linear),
        cmocka_unit_test(test_movement),       cmocka_unit_test(test_activations),
        cmocka_unit_test(test_activation_forward), cmocka_unit_test(test_losses),
        cmocka_unit_test(test_loss_forward),   cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_isa_parity),     cmocka_unit_test(test_tape_truncate),
        cmocka_unit_test(test_pass_through),   cmocka_unit_test(test_write_over),
        cmocka_unit_test(test_residual),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
