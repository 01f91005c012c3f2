/* ops_conv.c - conv2d, conv_transpose2d and nearest 2x upsampling.
 *
 * Both convolutions work on the whole minibatch at once: a column matrix
 * col (K, N*P) holds image n's (K, P) im2col block in columns
 * [n P, (n+1) P), so each direction of the op is ONE large GEMM instead of
 * N small ones. The table's im2col/col2im work per image on a contiguous
 * (K, P) block, so for N > 1 each image goes through a per-thread scratch
 * block and is copied into / out of its columns (row memcpys; cheap next to
 * the GEMM). For N == 1 the col matrix is the image's own block and no copy
 * happens; a 1x1 stride-1 unpadded conv skips im2col entirely.
 * Loops over images run under OpenMP; every image writes disjoint memory,
 * so results do not depend on the thread count. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/ops.h"

static int n_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static float *arena_floats(struct gen_ctx *g, int64_t n) {
    return gen_arena_alloc(&g->arena, (size_t)n * sizeof(float));
}

static float *grad_or_null(struct gen_ctx *g, struct gen_tensor *t) {
    return t && t->requires_grad ? gen_grad(g, t) : NULL;
}

/* Block n of a batched matrix: rows of P floats, row r of image n at
 * big[r NP + n P] (NP = N P); small is (R, P) contiguous. */
static void block_to_cols(int64_t R, int64_t P, int64_t NP, int64_t n, const float *small, float *big) {
    for (int64_t r = 0; r < R; r++)
        memcpy(big + r * NP + n * P, small + r * P, (size_t)P * sizeof(float));
}
static void cols_to_block(int64_t R, int64_t P, int64_t NP, int64_t n, const float *big, float *small) {
    for (int64_t r = 0; r < R; r++)
        memcpy(small + r * P, big + r * NP + n * P, (size_t)P * sizeof(float));
}

/* (N, R, P) -> (R, N P); the identity (no copy) when N == 1. */
static const float *batch_to_mat(struct gen_ctx *g, int64_t N, int64_t R, int64_t P, const float *x) {
    if (N == 1) return x;
    float *m = arena_floats(g, R * N * P);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) block_to_cols(R, P, N * P, n, x + n * R * P, m);
    return m;
}

/* db[c] += sum over n, p of dy (N, C, P), in double per channel. */
static void bias_grad(int64_t N, int64_t C, int64_t P, const float *dy, float *db) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) {
            const float *row = dy + (n * C + c) * P;
            for (int64_t p = 0; p < P; p++) s += row[p];
        }
        db[c] += (float)s;
    }
}

static void add_bias(int64_t N, int64_t C, int64_t P, const float *b, float *y) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; nc++) {
        float *row = y + nc * P;
        const float bc = b[nc % C];
        for (int64_t p = 0; p < P; p++) row[p] += bc;
    }
}

/* ---- conv2d -------------------------------------------------------------- */

/* Geometry shared by forward and backward. */
struct conv_geo {
    int64_t N, Cin, H, W, Cout, KH, KW, stride, pad, OH, OW;
    int64_t K, P, NP; /* K = Cin KH KW, P = OH OW, NP = N P */
    int pointwise;    /* 1x1, stride 1, pad 0: col is x itself */
};

static struct conv_geo conv_geo(const struct gen_tensor *x, const struct gen_tensor *w, int64_t stride,
                                int64_t pad) {
    GEN_ASSERT(x->ndim == 4 && w->ndim == 4 && x->shape[1] == w->shape[1]);
    GEN_ASSERT(stride >= 1 && pad >= 0);
    struct conv_geo c = {.N = x->shape[0], .Cin = x->shape[1], .H = x->shape[2], .W = x->shape[3],
                         .Cout = w->shape[0], .KH = w->shape[2], .KW = w->shape[3],
                         .stride = stride, .pad = pad};
    c.OH = gen_conv_out(c.H, c.KH, stride, pad);
    c.OW = gen_conv_out(c.W, c.KW, stride, pad);
    GEN_ASSERT(c.OH >= 1 && c.OW >= 1);
    c.K = c.Cin * c.KH * c.KW;
    c.P = c.OH * c.OW;
    c.NP = c.N * c.P;
    c.pointwise = c.KH == 1 && c.KW == 1 && stride == 1 && pad == 0;
    return c;
}

/* col (K, N P) of the whole batch. */
static const float *conv_col(struct gen_ctx *g, const struct conv_geo *c, const float *x) {
    if (c->pointwise) return batch_to_mat(g, c->N, c->Cin, c->P, x);
    const struct gen_kernels *kt = gen_kernels();
    float *col = arena_floats(g, c->K * c->NP);
    if (c->N == 1) {
        kt->im2col(c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, x, col);
        return col;
    }
    float *scratch = arena_floats(g, (int64_t)n_threads() * c->K * c->P);
    const int64_t img = c->Cin * c->H * c->W;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < c->N; n++) {
        float *s = scratch + thread_id() * c->K * c->P;
        kt->im2col(c->Cin, c->H, c->W, c->KH, c->KW, c->stride, c->pad, x + n * img, s);
        block_to_cols(c->K, c->P, c->NP, n, s, col);
    }
    return col;
}

struct gen_tensor *gen_conv2d(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w,
                              struct gen_tensor *b, int stride, int pad) {
    const struct conv_geo c = conv_geo(x, w, stride, pad);
    GEN_ASSERT(!b || gen_numel(b) == c.Cout);
    struct gen_tensor *y = gen_tensor_4d(g, c.N, c.Cout, c.OH, c.OW);
    const float *col = conv_col(g, &c, x->data); /* (K, N P) */

    /* ymat (Cout, N P) = w (Cout, K) col (K, N P), then to (N, Cout, P). */
    if (c.N == 1) {
        gen_gemm(0, 0, c.Cout, c.NP, c.K, 1.0f, w->data, col, 0.0f, y->data);
        if (b) add_bias(1, c.Cout, c.P, b->data, y->data);
    } else {
        float *ymat = arena_floats(g, c.Cout * c.NP);
        gen_gemm(0, 0, c.Cout, c.NP, c.K, 1.0f, w->data, col, 0.0f, ymat);
        const float *bias = b ? b->data : NULL;
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < c.N; n++) {
            for (int64_t co = 0; co < c.Cout; co++) {
                const float *src = ymat + co * c.NP + n * c.P;
                float *dst = y->data + (n * c.Cout + co) * c.P;
                const float bc = bias ? bias[co] : 0.0f;
                for (int64_t p = 0; p < c.P; p++) dst[p] = src[p] + bc;
            }
        }
    }
    struct gen_node *node = gen_record(g, GEN_OP_CONV2D, y, 3, (struct gen_tensor *[]){x, w, b});
    if (node) {
        node->i[0] = stride;
        node->i[1] = pad;
        node->saved = (void *)col; /* owned by the step arena, or x itself */
    }
    return y;
}

/* dy (N, Cout, P) as dymat (Cout, N P):
 *   db += row sums, dW += dymat col^T, dcol = W^T dymat, dx += col2im(dcol). */
GEN_BACKWARD(conv2d) {
    struct gen_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const struct conv_geo c = conv_geo(x, w, node->i[0], node->i[1]);
    const float *dy = node->out->grad;
    const float *col = node->saved;
    float *dx = grad_or_null(g, x), *dw = grad_or_null(g, w), *db = grad_or_null(g, b);

    if (db) bias_grad(c.N, c.Cout, c.P, dy, db);
    if (!dw && !dx) return;
    const float *dymat = batch_to_mat(g, c.N, c.Cout, c.P, dy);
    if (dw) gen_gemm(0, 1, c.Cout, c.K, c.NP, 1.0f, dymat, col, 1.0f, dw);
    if (!dx) return;
    if (c.pointwise && c.N == 1) { /* dx += W^T dy, straight into dx */
        gen_gemm(1, 0, c.K, c.NP, c.Cout, 1.0f, w->data, dymat, 1.0f, dx);
        return;
    }
    /* dcol reuses the saved col (step-arena memory that dW no longer needs)
     * unless col is x itself; backward runs once per recorded forward. */
    GEN_ASSERT(!node->i[2]);
    node->i[2] = 1;
    float *dcol = col != x->data ? (float *)node->saved : arena_floats(g, c.K * c.NP); /* (K, N P) */
    gen_gemm(1, 0, c.K, c.NP, c.Cout, 1.0f, w->data, dymat, 0.0f, dcol);
    const struct gen_kernels *kt = gen_kernels();
    const int64_t img = c.Cin * c.H * c.W;
    if (c.N == 1) {
        kt->col2im(c.Cin, c.H, c.W, c.KH, c.KW, c.stride, c.pad, dcol, dx);
        return;
    }
    float *scratch = c.pointwise ? NULL : arena_floats(g, (int64_t)n_threads() * c.K * c.P);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < c.N; n++) {
        float *dxn = dx + n * img;
        if (c.pointwise) {
            for (int64_t k = 0; k < c.K; k++) {
                const float *src = dcol + k * c.NP + n * c.P;
                float *dst = dxn + k * c.P;
                for (int64_t p = 0; p < c.P; p++) dst[p] += src[p];
            }
        } else {
            float *s = scratch + thread_id() * c.K * c.P;
            cols_to_block(c.K, c.P, c.NP, n, dcol, s);
            kt->col2im(c.Cin, c.H, c.W, c.KH, c.KW, c.stride, c.pad, s, dxn);
        }
    }
}

/* ---- conv_transpose2d ---------------------------------------------------- */

/* The adjoint of conv2d with the roles of input and output swapped: x
 * (N, Cin, H, W) plays conv2d's output, y (N, Cout, OH, OW) its input,
 * and w (Cin, Cout, KH, KW) is conv2d's weight (Cin, Cout KH KW). */
struct convt_geo {
    int64_t N, Cin, H, W, Cout, KH, KW, stride, pad, OH, OW;
    int64_t K2, HW, NHW; /* K2 = Cout KH KW */
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
    c.NHW = c.N * c.HW;
    return c;
}

struct gen_tensor *gen_conv_transpose2d(struct gen_ctx *g, struct gen_tensor *x,
                                        struct gen_tensor *w, struct gen_tensor *b, int stride,
                                        int pad) {
    const struct convt_geo c = convt_geo(x, w, stride, pad);
    GEN_ASSERT(!b || gen_numel(b) == c.Cout);
    struct gen_tensor *y = gen_zeros(g, 4, (int64_t[]){c.N, c.Cout, c.OH, c.OW});
    const float *xmat = batch_to_mat(g, c.N, c.Cin, c.HW, x->data); /* (Cin, N HW) */
    float *col = arena_floats(g, c.K2 * c.NHW);                     /* (K2, N HW)  */
    gen_gemm(1, 0, c.K2, c.NHW, c.Cin, 1.0f, w->data, xmat, 0.0f, col);

    const struct gen_kernels *kt = gen_kernels();
    const int64_t img = c.Cout * c.OH * c.OW;
    if (c.N == 1) {
        kt->col2im(c.Cout, c.OH, c.OW, c.KH, c.KW, c.stride, c.pad, col, y->data);
    } else {
        float *scratch = arena_floats(g, (int64_t)n_threads() * c.K2 * c.HW);
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < c.N; n++) {
            float *s = scratch + thread_id() * c.K2 * c.HW;
            cols_to_block(c.K2, c.HW, c.NHW, n, col, s);
            kt->col2im(c.Cout, c.OH, c.OW, c.KH, c.KW, c.stride, c.pad, s, y->data + n * img);
        }
    }
    if (b) add_bias(c.N, c.Cout, c.OH * c.OW, b->data, y->data);
    struct gen_node *node =
        gen_record(g, GEN_OP_CONV_TRANSPOSE2D, y, 3, (struct gen_tensor *[]){x, w, b});
    if (node) {
        node->i[0] = stride;
        node->i[1] = pad;
        node->saved = (void *)xmat; /* step arena, or x itself */
    }
    return y;
}

/* dcol (K2, N HW) = im2col(dy); dW += xmat dcol^T; dx += W dcol; db += sums. */
GEN_BACKWARD(conv_transpose2d) {
    struct gen_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const struct convt_geo c = convt_geo(x, w, node->i[0], node->i[1]);
    const float *dy = node->out->grad, *xmat = node->saved;
    float *dx = grad_or_null(g, x), *dw = grad_or_null(g, w), *db = grad_or_null(g, b);

    if (db) bias_grad(c.N, c.Cout, c.OH * c.OW, dy, db);
    if (!dw && !dx) return;
    const struct gen_kernels *kt = gen_kernels();
    const int64_t img = c.Cout * c.OH * c.OW;
    float *dcol = arena_floats(g, c.K2 * c.NHW);
    if (c.N == 1) {
        kt->im2col(c.Cout, c.OH, c.OW, c.KH, c.KW, c.stride, c.pad, dy, dcol);
    } else {
        float *scratch = arena_floats(g, (int64_t)n_threads() * c.K2 * c.HW);
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < c.N; n++) {
            float *s = scratch + thread_id() * c.K2 * c.HW;
            kt->im2col(c.Cout, c.OH, c.OW, c.KH, c.KW, c.stride, c.pad, dy + n * img, s);
            block_to_cols(c.K2, c.HW, c.NHW, n, s, dcol);
        }
    }
    if (dw) gen_gemm(0, 1, c.Cin, c.K2, c.NHW, 1.0f, xmat, dcol, 1.0f, dw);
    if (!dx) return;
    if (c.N == 1) {
        gen_gemm(0, 0, c.Cin, c.NHW, c.K2, 1.0f, w->data, dcol, 1.0f, dx);
        return;
    }
    float *dxmat = arena_floats(g, c.Cin * c.NHW); /* (Cin, N HW) */
    gen_gemm(0, 0, c.Cin, c.NHW, c.K2, 1.0f, w->data, dcol, 0.0f, dxmat);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < c.N; n++) {
        for (int64_t ci = 0; ci < c.Cin; ci++) {
            const float *src = dxmat + ci * c.NHW + n * c.HW;
            float *dst = dx + (n * c.Cin + ci) * c.HW;
            for (int64_t p = 0; p < c.HW; p++) dst[p] += src[p];
        }
    }
}

/* ---- upsample2x ---------------------------------------------------------- */

struct gen_tensor *gen_upsample2x(struct gen_ctx *g, struct gen_tensor *x) {
    GEN_ASSERT(x->ndim == 4);
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    struct gen_tensor *y = gen_tensor_4d(g, x->shape[0], x->shape[1], 2 * H, 2 * W);
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = x->data + nc * H * W;
        float *yp = y->data + nc * 4 * H * W;
        for (int64_t i = 0; i < H; i++) {
            float *row = yp + 2 * i * 2 * W;
            for (int64_t j = 0; j < W; j++) row[2 * j] = row[2 * j + 1] = xp[i * W + j];
            memcpy(row + 2 * W, row, (size_t)(2 * W) * sizeof(float));
        }
    }
    gen_record(g, GEN_OP_UPSAMPLE2X, y, 1, (struct gen_tensor *[]){x});
    return y;
}

/* dx[i, j] += sum of the 2x2 block of dy it was copied to. */
GEN_BACKWARD(upsample2x) {
    struct gen_tensor *x = node->in[0];
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    const float *dy = node->out->grad;
    float *dx = gen_grad(g, x);
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *dyp = dy + nc * 4 * H * W;
        float *dxp = dx + nc * H * W;
        for (int64_t i = 0; i < H; i++) {
            const float *r0 = dyp + 2 * i * 2 * W, *r1 = r0 + 2 * W;
            for (int64_t j = 0; j < W; j++)
                dxp[i * W + j] += (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
        }
    }
}
