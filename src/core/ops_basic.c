/* ops_basic.c - element-wise arithmetic with broadcasting, reductions to a
 * scalar, matmul and linear, and the data-movement ops (reshape, permute,
 * concat, slice): forward and backward side by side. */
#include <string.h>

#include "core/ops.h"

#define OMP_MIN 32768 /* elements below which a loop stays on one thread */

/* ---- broadcasting ------------------------------------------------------ */

/* b's shape against a's, after dropping dims of size 1 in a and merging
 * neighbours of the same kind, as up to 4 segments that are either "equal"
 * (b has its own data along it) or "broadcast" (b has size 1 there). The
 * last segment is the inner run every kernel call covers; the others are
 * walked as `outer` rows. */
struct bcast {
    int nseg;
    int64_t size[GEN_MAX_DIMS];
    int eq[GEN_MAX_DIMS];
    int64_t bstride[GEN_MAX_DIMS]; /* b's stride per segment; 0 if broadcast */
    int64_t outer, inner;
    int inner_eq; /* inner run: 1 = b's data runs along it, 0 = one b value */
};

static struct bcast bcast_plan(const struct gen_tensor *a, const struct gen_tensor *b) {
    GEN_ASSERT(b->ndim <= a->ndim);
    struct bcast bc = {0};
    int off = a->ndim - b->ndim;
    for (int d = 0; d < a->ndim; d++) {
        int64_t as = a->shape[d], bs = d >= off ? b->shape[d - off] : 1;
        GEN_ASSERT(bs == as || bs == 1);
        if (as == 1) continue;
        int eq = bs == as;
        if (bc.nseg > 0 && bc.eq[bc.nseg - 1] == eq) {
            bc.size[bc.nseg - 1] *= as;
        } else {
            bc.size[bc.nseg] = as;
            bc.eq[bc.nseg] = eq;
            bc.nseg++;
        }
    }
    if (bc.nseg == 0) { /* a has one element */
        bc.nseg = 1;
        bc.size[0] = 1;
        bc.eq[0] = 1;
    }
    int64_t s = 1;
    for (int k = bc.nseg - 1; k >= 0; k--) {
        bc.bstride[k] = bc.eq[k] ? s : 0;
        if (bc.eq[k]) s *= bc.size[k];
    }
    bc.inner = bc.size[bc.nseg - 1];
    bc.inner_eq = bc.eq[bc.nseg - 1];
    bc.outer = 1;
    for (int k = 0; k < bc.nseg - 1; k++) bc.outer *= bc.size[k];
    return bc;
}

/* Offset into b of outer row o (a's offset is o * inner). */
static int64_t bcast_boff(const struct bcast *bc, int64_t o) {
    int64_t off = 0;
    for (int k = bc->nseg - 2; k >= 0; k--) {
        off += (o % bc->size[k]) * bc->bstride[k];
        o /= bc->size[k];
    }
    return off;
}

enum { BIN_ADD, BIN_SUB, BIN_MUL };

static struct gen_tensor *binary(struct gen_ctx *g, enum gen_op op, int kind,
                                 struct gen_tensor *a, struct gen_tensor *b) {
    const struct gen_kernels *K = gen_kernels();
    struct gen_tensor *out = gen_tensor(g, a->ndim, a->shape);
    struct bcast bc = bcast_plan(a, b);
    const float *A = a->data, *B = b->data;
    float *Y = out->data;
    if (bc.outer == 1 && bc.inner_eq) { /* same shape */
        int64_t n = bc.inner;
        if (kind == BIN_ADD) K->add(n, A, B, Y);
        else if (kind == BIN_SUB) K->sub(n, A, B, Y);
        else K->mul(n, A, B, Y);
    } else {
        const int64_t outer = bc.outer, inner = bc.inner;
#pragma omp parallel for schedule(static) if (outer * inner >= OMP_MIN && outer > 1)
        for (int64_t o = 0; o < outer; o++) {
            const float *ar = A + o * inner, *br = B + bcast_boff(&bc, o);
            float *yr = Y + o * inner;
            if (bc.inner_eq) { /* e.g. a row bias [C] on [N, C] */
                if (kind == BIN_ADD) K->add(inner, ar, br, yr);
                else if (kind == BIN_SUB) K->sub(inner, ar, br, yr);
                else K->mul(inner, ar, br, yr);
            } else { /* one b value over the run, e.g. [N, C, 1, 1] on [N, C, H, W] */
                const float s = br[0];
                if (kind == BIN_MUL) K->scale(inner, s, ar, yr);
                else {
                    const float t = kind == BIN_ADD ? s : -s;
                    for (int64_t i = 0; i < inner; i++) yr[i] = ar[i] + t;
                }
            }
        }
    }
    gen_record(g, op, out, 2, (struct gen_tensor *[]){a, b});
    return out;
}

struct gen_tensor *gen_add(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b) {
    return binary(g, GEN_OP_ADD, BIN_ADD, a, b);
}
struct gen_tensor *gen_sub(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b) {
    return binary(g, GEN_OP_SUB, BIN_SUB, a, b);
}
struct gen_tensor *gen_mul(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b) {
    return binary(g, GEN_OP_MUL, BIN_MUL, a, b);
}

static void binary_backward(struct gen_ctx *g, struct gen_node *node, int kind) {
    const struct gen_kernels *K = gen_kernels();
    struct gen_tensor *a = node->in[0], *b = node->in[1];
    const float *dY = node->out->grad;
    struct bcast bc = bcast_plan(a, b);
    const int64_t outer = bc.outer, inner = bc.inner;
    if (kind == BIN_MUL && outer == 1 && bc.inner_eq && a != b && a->requires_grad &&
        b->requires_grad) { /* same shapes: both gradients in one pass over dy */
        enum gen_grad_mode ma, mb;
        float *dA = gen_grad_dst(g, a, &ma), *dB = gen_grad_dst(g, b, &mb);
        K->mul_grads(inner, dY, a->data, b->data, dA, ma, dB, mb);
        return;
    }
    /* da (+)= dy (add, sub) or dy * b (mul); rows are disjoint */
    if (a->requires_grad && !(kind != BIN_MUL && gen_grad_pass(a, node->out))) {
        enum gen_grad_mode mode;
        float *dA = gen_grad_dst(g, a, &mode);
        const float *B = b->data;
#pragma omp parallel for schedule(static) if (outer * inner >= OMP_MIN && outer > 1)
        for (int64_t o = 0; o < outer; o++) {
            const float *dy = dY + o * inner, *br = B + bcast_boff(&bc, o);
            float *da = dA + o * inner;
            if (kind != BIN_MUL) gen_put_axpy(mode, inner, 1.0f, dy, da);
            else if (bc.inner_eq) gen_put_mul(mode, inner, dy, br, da);
            else gen_put_axpy(mode, inner, br[0], dy, da);
        }
    }
    /* db (+)= dy, -dy or dy * a, summed over broadcast dims */
    const int same = gen_numel(b) == gen_numel(a);
    if (b->requires_grad && !(kind == BIN_ADD && same && gen_grad_pass(b, node->out))) {
        /* Every row of b's own shape is written once; a broadcast b sums
         * several rows into one and starts from zero. */
        enum gen_grad_mode mode = GEN_GRAD_ADD;
        float *dB = same ? gen_grad_dst(g, b, &mode) : gen_grad(g, b);
        const float *A = a->data;
        /* Serial over outer rows: several rows may land on one b element. */
        for (int64_t o = 0; o < outer; o++) {
            const float *dy = dY + o * inner, *ar = A + o * inner;
            float *db = dB + bcast_boff(&bc, o);
            if (bc.inner_eq) {
                if (kind == BIN_MUL) gen_put_mul(mode, inner, dy, ar, db);
                else gen_put_axpy(mode, inner, kind == BIN_ADD ? 1.0f : -1.0f, dy, db);
            } else {
                double s = 0;
                if (kind == BIN_MUL)
                    for (int64_t i = 0; i < inner; i++) s += (double)dy[i] * ar[i];
                else s = K->sum(inner, dy);
                db[0] += (float)(kind == BIN_SUB ? -s : s);
            }
        }
    }
}

GEN_BACKWARD(add) { binary_backward(g, node, BIN_ADD); }
GEN_BACKWARD(sub) { binary_backward(g, node, BIN_SUB); }
GEN_BACKWARD(mul) { binary_backward(g, node, BIN_MUL); }

/* ---- scalar arithmetic and reductions ---------------------------------- */

struct gen_tensor *gen_scale(struct gen_ctx *g, struct gen_tensor *a, float s) {
    struct gen_tensor *out = gen_tensor(g, a->ndim, a->shape);
    gen_kernels()->scale(gen_numel(a), s, a->data, out->data);
    struct gen_node *n = gen_record(g, GEN_OP_SCALE, out, 1, &a);
    if (n) n->f[0] = s;
    return out;
}

GEN_BACKWARD(scale) {
    struct gen_tensor *a = node->in[0];
    if (a->requires_grad) gen_grad_axpy(g, a, node->f[0], node->out->grad);
}

struct gen_tensor *gen_add_scalar(struct gen_ctx *g, struct gen_tensor *a, float s) {
    struct gen_tensor *out = gen_tensor(g, a->ndim, a->shape);
    const float *x = a->data;
    float *y = out->data;
    const int64_t n = gen_numel(a);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] + s;
    gen_record(g, GEN_OP_ADD_SCALAR, out, 1, &a);
    return out;
}

GEN_BACKWARD(add_scalar) {
    struct gen_tensor *a = node->in[0];
    if (a->requires_grad) gen_grad_axpy(g, a, 1.0f, node->out->grad);
}

static struct gen_tensor *reduce(struct gen_ctx *g, enum gen_op op, struct gen_tensor *a,
                                 int mean) {
    const int64_t n = gen_numel(a);
    struct gen_tensor *out = gen_tensor_1d(g, 1);
    double s = gen_kernels()->sum(n, a->data);
    out->data[0] = (float)(mean && n > 0 ? s / (double)n : s);
    gen_record(g, op, out, 1, &a);
    return out;
}

struct gen_tensor *gen_sum(struct gen_ctx *g, struct gen_tensor *a) {
    return reduce(g, GEN_OP_SUM, a, 0);
}
struct gen_tensor *gen_mean(struct gen_ctx *g, struct gen_tensor *a) {
    return reduce(g, GEN_OP_MEAN, a, 1);
}

static void reduce_backward(struct gen_ctx *g, struct gen_node *node, int mean) {
    struct gen_tensor *a = node->in[0];
    if (!a->requires_grad) return;
    const int64_t n = gen_numel(a);
    const float d = mean ? node->out->grad[0] / (float)n : node->out->grad[0];
    enum gen_grad_mode mode;
    float *da = gen_grad_dst(g, a, &mode);
    if (mode == GEN_GRAD_SET) gen_kernels()->fill(n, d, da);
    else for (int64_t i = 0; i < n; i++) da[i] += d;
}

GEN_BACKWARD(sum) { reduce_backward(g, node, 0); }
GEN_BACKWARD(mean) { reduce_backward(g, node, 1); }

/* ---- matmul and linear ------------------------------------------------- */

/* Geometry of op(a) op(b): batch, M, N, K and per-batch strides. */
struct mm {
    int64_t batch, M, N, K, sa, sb, sc;
};

static struct mm mm_plan(const struct gen_tensor *a, const struct gen_tensor *b, enum gen_trans ta,
                         enum gen_trans tb) {
    GEN_ASSERT(a->ndim == b->ndim && (a->ndim == 2 || a->ndim == 3));
    const int d = a->ndim - 2;
    struct mm m;
    m.batch = d ? a->shape[0] : 1;
    GEN_ASSERT(!d || b->shape[0] == m.batch);
    m.M = a->shape[d + (ta ? 1 : 0)];
    m.K = a->shape[d + (ta ? 0 : 1)];
    const int64_t kb = b->shape[d + (tb ? 1 : 0)];
    m.N = b->shape[d + (tb ? 0 : 1)];
    GEN_ASSERT(kb == m.K);
    m.sa = m.M * m.K;
    m.sb = m.K * m.N;
    m.sc = m.M * m.N;
    return m;
}

struct gen_tensor *gen_matmul(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b,
                              enum gen_trans ta, enum gen_trans tb) {
    ta = ta ? GEN_TRANS : GEN_NOTRANS, tb = tb ? GEN_TRANS : GEN_NOTRANS;
    const struct mm m = mm_plan(a, b, ta, tb);
    struct gen_tensor *out = a->ndim == 3 ? gen_tensor_3d(g, m.batch, m.M, m.N)
                                          : gen_tensor_2d(g, m.M, m.N);
    for (int64_t i = 0; i < m.batch; i++)
        gen_gemm(ta, tb, m.M, m.N, m.K, 1.0f, a->data + i * m.sa, b->data + i * m.sb, 0.0f,
                 out->data + i * m.sc);
    struct gen_node *n = gen_record(g, GEN_OP_MATMUL, out, 2, (struct gen_tensor *[]){a, b});
    if (n) n->i[0] = ta, n->i[1] = tb;
    return out;
}

/* C = op(A) op(B):
 *   dA = dC op(B)^T      (ta: dA = op(B) dC^T)
 *   dB = op(A)^T dC      (tb: dB = dC^T op(A)) */
GEN_BACKWARD(matmul) {
    struct gen_tensor *a = node->in[0], *b = node->in[1];
    const enum gen_trans ta = node->i[0] ? GEN_TRANS : GEN_NOTRANS;
    const enum gen_trans tb = node->i[1] ? GEN_TRANS : GEN_NOTRANS;
    const enum gen_trans nta = ta ? GEN_NOTRANS : GEN_TRANS, ntb = tb ? GEN_NOTRANS : GEN_TRANS;
    const struct mm m = mm_plan(a, b, ta, tb);
    const float *dC = node->out->grad;
    enum gen_grad_mode mode;
    if (a->requires_grad) {
        float *dA = gen_grad_dst(g, a, &mode);
        const float beta = gen_put_beta(mode);
        for (int64_t i = 0; i < m.batch; i++) {
            const float *B = b->data + i * m.sb, *dc = dC + i * m.sc;
            float *da = dA + i * m.sa;
            if (!ta)
                gen_gemm(GEN_NOTRANS, ntb, m.M, m.K, m.N, 1.0f, dc, B, beta, da);
            else
                gen_gemm(tb, GEN_TRANS, m.K, m.M, m.N, 1.0f, B, dc, beta, da);
        }
    }
    if (b->requires_grad) {
        float *dB = gen_grad_dst(g, b, &mode);
        const float beta = gen_put_beta(mode);
        for (int64_t i = 0; i < m.batch; i++) {
            const float *A = a->data + i * m.sa, *dc = dC + i * m.sc;
            float *db = dB + i * m.sb;
            if (!tb)
                gen_gemm(nta, GEN_NOTRANS, m.K, m.N, m.M, 1.0f, A, dc, beta, db);
            else
                gen_gemm(GEN_TRANS, ta, m.N, m.K, m.M, 1.0f, dc, A, beta, db);
        }
    }
}

/* gen_linear, and gen_linear_operand where `operand` (its output held as
 * bf16 where the table writes such products: gemm_bias_h). x may be held
 * as bf16 (gen_layernorm_operand, on a table with gemm_chan). */
static struct gen_tensor *linear(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                 struct gen_tensor *b, int operand) {
    GEN_ASSERT(w->ndim == 2);
    const int64_t OUT = w->shape[0], IN = w->shape[1];
    GEN_ASSERT(x->shape[x->ndim - 1] == IN);
    GEN_ASSERT(!b || gen_numel(b) == OUT);
    const int64_t R = IN ? gen_numel(x) / IN : 0;
    int64_t shape[GEN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = OUT;
    struct gen_tensor *out = gen_tensor(g, x->ndim, shape); /* (..., OUT) */
    float *Y = out->data;
    const struct gen_kernels *K = gen_kernels();
    const struct gen_chan X = gen_operand(x);
    GEN_ASSERT(!x->bf16 || K->gemm_chan);
    out->bf16 = operand && K->gemm_bias_h && IN >= 1 && IN <= GEN_BF16_C_DEPTH;
    if (out->bf16)
        K->gemm_bias_h(GEN_NOTRANS, GEN_TRANS, R, OUT, IN, X, IN, w->data, IN, b ? b->data : NULL,
                       (uint16_t *)(void *)Y, OUT);
    else if (x->bf16)
        K->gemm_chan(GEN_NOTRANS, GEN_TRANS, R, OUT, IN, 1.0f, X, IN,
                     (struct gen_chan){w->data, NULL}, IN, 0.0f, b ? b->data : NULL, Y, OUT);
    else if (b) /* the bias added as the product is written: no pass to fill Y first */
        gen_gemm_bias(GEN_NOTRANS, GEN_TRANS, R, OUT, IN, x->data, w->data, b->data, Y);
    else
        gen_gemm(GEN_NOTRANS, GEN_TRANS, R, OUT, IN, 1.0f, x->data, w->data, 0.0f, Y);
    gen_record(g, GEN_OP_LINEAR, out, b ? 3 : 2, (struct gen_tensor *[]){x, w, b});
    return out;
}

struct gen_tensor *gen_linear(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                              struct gen_tensor *b) {
    return linear(g, x, w, b, 0);
}

struct gen_tensor *gen_linear_operand(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                                      struct gen_tensor *b) {
    return linear(g, x, w, b, 1);
}

/* y = x w^T + b over rows: dx = dy w, dw += dy^T x, db += column sums of dy. */
GEN_BACKWARD(linear) {
    struct gen_tensor *x = node->in[0], *w = node->in[1];
    struct gen_tensor *b = node->n_in > 2 ? node->in[2] : NULL;
    const int64_t OUT = w->shape[0], IN = w->shape[1];
    const int64_t R = IN ? gen_numel(x) / IN : 0;
    const float *dY = node->out->grad; /* (R, OUT) */
    enum gen_grad_mode mode;
    if (x->requires_grad) {
        float *dx = gen_grad_dst(g, x, &mode);
        gen_gemm(GEN_NOTRANS, GEN_NOTRANS, R, IN, OUT, 1.0f, dY, w->data, gen_put_beta(mode), dx);
    }
    if (w->requires_grad) {
        float *dw = gen_grad_dst(g, w, &mode);
        if (x->bf16) /* gen_gemm's product and split, B read as bf16 */
            gen_kernels()->gemm_chan(GEN_TRANS, GEN_NOTRANS, OUT, IN, R, 1.0f,
                                     (struct gen_chan){dY, NULL}, OUT, gen_operand(x), IN,
                                     gen_put_beta(mode), NULL, dw, IN);
        else
            gen_gemm(GEN_TRANS, GEN_NOTRANS, OUT, IN, R, 1.0f, dY, x->data, gen_put_beta(mode), dw);
    }
    if (b && b->requires_grad) {
        float *db = gen_grad_dst(g, b, &mode);
        gen_put_rows_sum(mode, R, OUT, dY, OUT, db);
    }
}

/* ---- data movement ------------------------------------------------------ */

struct gen_tensor *gen_reshape(struct gen_ctx *g, struct gen_tensor *a, int ndim,
                               const int64_t *shape) {
    /* The output shares a's data; backward passes its gradient on to a
     * (read-only, gen_grad_pass), or adds it to a's. */
    struct gen_tensor *out = gen_tensor_wrap(g, a->data, ndim, shape);
    GEN_ASSERT(gen_numel(out) == gen_numel(a));
    gen_record(g, GEN_OP_RESHAPE, out, 1, &a);
    return out;
}

GEN_BACKWARD(reshape) {
    struct gen_tensor *a = node->in[0];
    if (a->requires_grad && !gen_grad_pass(a, node->out))
        gen_grad_axpy(g, a, 1.0f, node->out->grad);
}

/* a padded on the left to 4 dims: shape and contiguous strides. */
static void pad4(const struct gen_tensor *a, int64_t shape[4], int64_t stride[4]) {
    const int off = 4 - a->ndim;
    for (int d = 0; d < 4; d++) shape[d] = d < off ? 1 : a->shape[d - off];
    stride[3] = 1;
    for (int d = 2; d >= 0; d--) stride[d] = stride[d + 1] * shape[d + 1];
}

/* out[o0, o1, o2, o3] <-> in[sum o_k istride[perm[k]]] over the padded shape;
 * `back`: din (+)= dout as `mode` says, else out = in. A bijection, so rows
 * are independent and din is written whole. */
static void permute_walk(const int64_t oshape[4], const int64_t is[4], const float *src,
                         float *dst, int back, enum gen_grad_mode mode) {
    const int64_t n0 = oshape[0], n1 = oshape[1], n2 = oshape[2], n3 = oshape[3];
#pragma omp parallel for collapse(2) schedule(static) if (n0 * n1 * n2 * n3 >= OMP_MIN)
    for (int64_t i0 = 0; i0 < n0; i0++)
        for (int64_t i1 = 0; i1 < n1; i1++)
            for (int64_t i2 = 0; i2 < n2; i2++) {
                const int64_t ib = i0 * is[0] + i1 * is[1] + i2 * is[2];
                const int64_t ob = ((i0 * n1 + i1) * n2 + i2) * n3;
                if (back && mode == GEN_GRAD_ADD)
                    for (int64_t i3 = 0; i3 < n3; i3++) dst[ib + i3 * is[3]] += src[ob + i3];
                else if (back)
                    for (int64_t i3 = 0; i3 < n3; i3++) dst[ib + i3 * is[3]] = src[ob + i3];
                else
                    for (int64_t i3 = 0; i3 < n3; i3++) dst[ob + i3] = src[ib + i3 * is[3]];
            }
}

/* Padded perm, output shape and the input strides seen along output dims. */
static void permute_plan(const struct gen_tensor *a, const int64_t *perm, int64_t oshape[4],
                         int64_t is[4]) {
    int64_t ashape[4], astride[4];
    pad4(a, ashape, astride);
    const int off = 4 - a->ndim;
    for (int d = 0; d < 4; d++) {
        const int64_t p = d < off ? d : off + perm[d - off];
        oshape[d] = ashape[p];
        is[d] = astride[p];
    }
}

struct gen_tensor *gen_permute(struct gen_ctx *g, struct gen_tensor *a, const int *perm) {
    int64_t p[GEN_MAX_DIMS], oshape[4], is[4];
    int seen = 0;
    for (int d = 0; d < a->ndim; d++) {
        GEN_ASSERT(perm[d] >= 0 && perm[d] < a->ndim && !(seen & (1 << perm[d])));
        seen |= 1 << perm[d];
        p[d] = perm[d];
    }
    permute_plan(a, p, oshape, is);
    struct gen_tensor *out = gen_tensor(g, a->ndim, oshape + (4 - a->ndim));
    permute_walk(oshape, is, a->data, out->data, 0, GEN_GRAD_SET);
    struct gen_node *n = gen_record(g, GEN_OP_PERMUTE, out, 1, &a);
    if (n) memcpy(n->i, p, sizeof p);
    return out;
}

GEN_BACKWARD(permute) {
    struct gen_tensor *a = node->in[0];
    if (!a->requires_grad) return;
    int64_t oshape[4], is[4];
    permute_plan(a, node->i, oshape, is);
    enum gen_grad_mode mode;
    float *da = gen_grad_dst(g, a, &mode);
    permute_walk(oshape, is, node->out->grad, da, 1, mode);
}

struct gen_tensor *gen_transpose(struct gen_ctx *g, struct gen_tensor *a, int d0, int d1) {
    GEN_ASSERT(d0 >= 0 && d0 < a->ndim && d1 >= 0 && d1 < a->ndim);
    int perm[GEN_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) perm[d] = d;
    perm[d0] = d1;
    perm[d1] = d0;
    return gen_permute(g, a, perm);
}

/* Concat along dim 1: per leading index, a's block (Ca * inner) then b's. */
struct gen_tensor *gen_concat(struct gen_ctx *g, struct gen_tensor *a, struct gen_tensor *b) {
    GEN_ASSERT(a->ndim >= 2 && a->ndim == b->ndim && a->shape[0] == b->shape[0]);
    int64_t inner = 1;
    for (int d = 2; d < a->ndim; d++) {
        GEN_ASSERT(a->shape[d] == b->shape[d]);
        inner *= a->shape[d];
    }
    int64_t shape[GEN_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[1] = a->shape[1] + b->shape[1];
    struct gen_tensor *out = gen_tensor(g, a->ndim, shape);
    const int64_t na = a->shape[1] * inner, nb = b->shape[1] * inner, N = a->shape[0];
    gen_copy_blocks(N, na, a->data, na, out->data, na + nb);
    gen_copy_blocks(N, nb, b->data, nb, out->data + na, na + nb);
    gen_record(g, GEN_OP_CONCAT, out, 2, (struct gen_tensor *[]){a, b});
    return out;
}

void gen_copy_blocks(int64_t N, int64_t n, const float *x, int64_t xs, float *y, int64_t ys) {
#pragma omp parallel for schedule(static) if (N * n >= OMP_MIN && N > 1)
    for (int64_t i = 0; i < N; i++) memcpy(y + i * ys, x + i * xs, (size_t)n * sizeof(float));
}

void gen_grad_put_blocks(struct gen_ctx *g, struct gen_tensor *t, const float *dy, int64_t dys) {
    if (!t->requires_grad) return;
    const int64_t N = t->shape[0], n = gen_numel(t) / (N ? N : 1);
    enum gen_grad_mode mode;
    float *dt = gen_grad_dst(g, t, &mode);
    /* image by image across threads (each call then runs on its thread) */
#pragma omp parallel for schedule(static) if (N * n >= OMP_MIN && N > 1)
    for (int64_t i = 0; i < N; i++) gen_put_axpy(mode, n, 1.0f, dy + i * dys, dt + i * n);
}

/* da, db (+)= their blocks of dy, image by image. */
GEN_BACKWARD(concat) {
    struct gen_tensor *a = node->in[0], *b = node->in[1];
    const int64_t N = a->shape[0];
    const int64_t na = gen_numel(a) / (N ? N : 1), nb = gen_numel(b) / (N ? N : 1);
    gen_grad_put_blocks(g, a, node->out->grad, na + nb);
    gen_grad_put_blocks(g, b, node->out->grad + na, na + nb);
}

/* a viewed as (outer, mid, inner) around `dim`. */
static void around(const struct gen_tensor *a, int dim, int64_t *outer, int64_t *inner) {
    *outer = 1, *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= a->shape[d];
    for (int d = dim + 1; d < a->ndim; d++) *inner *= a->shape[d];
}

struct gen_tensor *gen_slice(struct gen_ctx *g, struct gen_tensor *a, int dim, int64_t start,
                             int64_t len) {
    GEN_ASSERT(dim >= 0 && dim < a->ndim);
    GEN_ASSERT(start >= 0 && len >= 0 && start + len <= a->shape[dim]);
    int64_t shape[GEN_MAX_DIMS], outer, inner;
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = len;
    struct gen_tensor *out = gen_tensor(g, a->ndim, shape);
    around(a, dim, &outer, &inner);
    gen_copy_blocks(outer, len * inner, a->data + start * inner, a->shape[dim] * inner, out->data,
                    len * inner);
    struct gen_node *n = gen_record(g, GEN_OP_SLICE, out, 1, &a);
    if (n) n->i[0] = dim, n->i[1] = start, n->i[2] = len;
    return out;
}

GEN_BACKWARD(slice) {
    struct gen_tensor *a = node->in[0];
    if (!a->requires_grad) return;
    const int dim = (int)node->i[0];
    const int64_t start = node->i[1], len = node->i[2], mid = a->shape[dim];
    int64_t outer, inner;
    around(a, dim, &outer, &inner);
    const struct gen_kernels *K = gen_kernels();
    float *da = gen_grad(g, a);
    for (int64_t o = 0; o < outer; o++)
        K->axpy(len * inner, 1.0f, node->out->grad + o * len * inner,
                da + (o * mid + start) * inner);
}
