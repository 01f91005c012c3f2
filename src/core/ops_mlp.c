/* ops_mlp.c - a Transformer block's MLP as one op, forward and backward:
 *
 *   h = x w1^T + b1,   a = gelu(h),   y = a w2^T + b2
 *
 * x (..., C), w1 (D, C), b1 (D), w2 (C2, D), b2 (C2) as in PyTorch; h and
 * a are D = 4C wide, the widest tensors of the block. As three ops
 * (linear, gelu, linear) a step wrote h, read it back for the GELU, wrote
 * a, read it for the second product and again for its weight gradient, and
 * the backward wrote and read da and dh the same way: on the 2-core VM a
 * Transformer step's tensors live past L2, so each of those passes went to
 * memory (the GELU alone took 9 ms of a 61 ms bf16 step, twice its time
 * on a warm array in bench_ops).
 *
 * Here the rows run in blocks of MLP_ROWS, a thread's block of h, a, da
 * and dh small enough to stay in its L2 while the block's products read
 * them. The forward writes y; a never leaves the block, and h is kept for
 * the backward or computed again there block by block where the products
 * are AMX's, whose block's product costs less than fetching its h back
 * from memory: on the Sapphire Rapids VM a bf16 Transformer step
 * 58.3-61.2 -> 51.2-53.1 ms, peak RSS 169.1 -> 137.4 MiB, 4 alternating
 * rounds. fp32's recomputed h took its step 99.0-102.5 -> 99.5-105.1 ms,
 * and on the Zen 5 VM's vdpbf16ps table (no AMX) the bf16 step kept h
 * faster, 52.1-53.4 ms against 54.7-55.1 recomputing it (4 alternating
 * rounds; the same bits): both keep h. Either way the backward, per block,
 * takes da = dy w2, recomputes a from h as it takes dh = da gelu'(h) (one
 * pass, gelu_both),
 * then dw2 += dy^T a, dw1 += dh^T x and dx = dh w1 while the block is
 * warm. The weights, each the B operand of every block's product, are
 * packed once an op (gen_share). Each block asks for the next one's rows
 * (x, h, dy; and the lines of h and y the forward will write) to be
 * brought into L2 while its products run. What that buys is unsure: a
 * bf16 step 57.6-59.7 -> 53.9-55.6 ms in 4 alternating rounds, but
 * 59.7-60.0 -> 58.0-60.2 an hour later on a busier host, and gelu_both
 * still waits on the saved h (timed in place: 3.4-3.7 ms a layer with or
 * without the hint for h, 1.1 on an h already in cache; prefetcht0
 * instead moved the wait into the hints' loop), which is why AMX's bf16
 * recomputes it.
 *
 * x may be held as bf16 (gen_layernorm_operand, on the vdpbf16ps table):
 * the first product then reads its rows as they are, and dw1's packs each
 * block of them from bf16, the same values the products would have
 * rounded x to.
 *
 * The weight and bias gradients sum over all rows: the backward's blocks
 * go in stripes (at most MLP_STRIPES, a number that depends on the rows
 * alone), a stripe's blocks adding in order into partial sums of its own,
 * and the stripes' partials are summed in stripe order at the end, so
 * that the bits do not depend on the thread count or on which thread
 * takes a stripe. Each block's rows of y and dx belong to it alone. */
#include <string.h>

#include "core/ops.h"

#define MLP_ROWS    64 /* rows of a block: h, a, da of 64 x 512 floats are 128 KiB each */
#define MLP_STRIPES 8  /* at most: the partial gradients summed at the end */

struct mlp_geo {
    int64_t M, C, D, C2, blocks;
};

static struct mlp_geo mlp_geo(const struct gen_tensor *x, const struct gen_tensor *w1,
                              const struct gen_tensor *b1, const struct gen_tensor *w2,
                              const struct gen_tensor *b2) {
    GEN_ASSERT(w1->ndim == 2 && w2->ndim == 2);
    struct mlp_geo m = {0, w1->shape[1], w1->shape[0], w2->shape[0], 0};
    GEN_ASSERT(x->shape[x->ndim - 1] == m.C && w2->shape[1] == m.D);
    GEN_ASSERT(!b1 || gen_numel(b1) == m.D);
    GEN_ASSERT(!b2 || gen_numel(b2) == m.C2);
    m.M = m.C ? gen_numel(x) / m.C : 0;
    m.blocks = (m.M + MLP_ROWS - 1) / MLP_ROWS;
    return m;
}

static int64_t block_rows(const struct mlp_geo *m, int64_t b) {
    return m->M - b * MLP_ROWS < MLP_ROWS ? m->M - b * MLP_ROWS : MLP_ROWS;
}

/* Hints that n floats from p, about to be written, be brought into L2. */
static void prefetch_for_write(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 1, 2);
}

/* Hints the n values of x's rows from row r, floats or held as bf16. */
static void prefetch_x(const struct gen_tensor *x, const struct mlp_geo *m, int64_t r, int64_t n) {
    const int64_t size = gen_value_bytes(x);
    gen_prefetch_bytes((const char *)x->data + r * m->C * size, 1, 0, n * m->C * size);
}

/* Rows [r0, r0 + n) of h = x w1^T + b1 into h (rows D apart), the same
 * operations in the forward and in a backward that recomputes them; x
 * floats, or held as bf16 (gen_layernorm_operand). */
static void hidden(const struct gen_kernels *kt, const struct mlp_geo *m,
                   const struct gen_tensor *x, const struct gen_shared_b *w1t,
                   const struct gen_tensor *b1, int64_t r0, int64_t n, float *h) {
    gen_shared_product_chan(kt, GEN_NOTRANS, n, m->D, m->C, 1.0f,
                            gen_chan_at(gen_operand(x), r0 * m->C), m->C, w1t, 0, 0.0f,
                            b1 ? b1->data : NULL, h, m->D);
}

/* Whether the backward recomputes h rather than reading it back: where the
 * products are AMX's, a block's h costs less to compute again than to
 * fetch from memory (ops_mlp.c's head). */
static int recomputes_h(void) {
    return gen_products_amx(gen_kernels());
}

struct gen_tensor *gen_mlp(struct gen_ctx *g, struct gen_tensor *x, struct gen_tensor *w1,
                           struct gen_tensor *b1, struct gen_tensor *w2, struct gen_tensor *b2) {
    const struct mlp_geo m = mlp_geo(x, w1, b1, w2, b2);
    int64_t shape[GEN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = m.C2;
    struct gen_tensor *y = gen_tensor(g, x->ndim, shape); /* (..., C2) */
    const struct gen_kernels *kt = gen_kernels();
    /* h whole, kept for the backward if recorded (or, recomputed there, a
     * block a thread beside a in work) */
    float *H = recomputes_h() ? NULL : gen_scratch_floats(g, m.M * m.D);
    const int64_t p1 = gen_lines(gen_shared_floats(kt, m.C, m.D));
    float *packs = gen_scratch_floats(g, p1 + gen_shared_floats(kt, m.D, m.C2));
    const int64_t per_thread = (H ? 1 : 2) * MLP_ROWS * m.D; /* a, and h */
    float *work = gen_scratch_floats(g, gen_task_threads() * per_thread);
    const struct gen_shared_b w1t = gen_share(kt, GEN_TRANS, w1->data, m.C, m.C, m.D, packs);
    const struct gen_shared_b w2t = gen_share(kt, GEN_TRANS, w2->data, m.D, m.D, m.C2, packs + p1);
    const int blas_threads = gen_blas_serial_begin();

#pragma omp parallel for schedule(dynamic, gen_task_chunk(m.blocks))
    for (int64_t b = 0; b < m.blocks; b++) {
        const int64_t r0 = b * MLP_ROWS, n = block_rows(&m, b);
        float *a = work + gen_task_id() * per_thread, *yb = y->data + r0 * m.C2;
        float *h = H ? H + r0 * m.D : a + MLP_ROWS * m.D;
        if (b + 1 < m.blocks) { /* the next block's rows */
            const int64_t n1 = block_rows(&m, b + 1);
            prefetch_x(x, &m, r0 + MLP_ROWS, n1);
            if (H) prefetch_for_write(h + MLP_ROWS * m.D, n1 * m.D);
            prefetch_for_write(yb + MLP_ROWS * m.C2, n1 * m.C2);
        }
        hidden(kt, &m, x, &w1t, b1, r0, n, h);
        kt->gelu_fwd(n * m.D, h, a);
        gen_shared_product(kt, GEN_NOTRANS, n, m.C2, m.D, 1.0f, a, m.D, &w2t, 0, 0.0f,
                           b2 ? b2->data : NULL, yb, m.C2);
    }
    gen_blas_serial_end(blas_threads);
    struct gen_node *node =
        gen_record(g, GEN_OP_MLP, y, 5, (struct gen_tensor *[]){x, w1, b1, w2, b2});
    if (node && H) {
        node->saved = H;
        gen_scratch_keep(g, H);
    }
    gen_scratch_release(g);
    return y;
}

/* Where a stripe's partial gradients lie in its share of the scratch
 * (0 sizes for the gradients no one needs). */
struct mlp_parts {
    int64_t w1, b1, w2, b2, per;
};

GEN_BACKWARD(mlp) {
    struct gen_tensor *x = node->in[0], *w1 = node->in[1], *b1 = node->in[2];
    struct gen_tensor *w2 = node->in[3], *b2 = node->in[4];
    const struct mlp_geo m = mlp_geo(x, w1, b1, w2, b2);
    const float *H = node->saved, *dY = node->out->grad; /* H NULL: recompute h */
    const struct gen_kernels *kt = gen_kernels();
    enum gen_grad_mode mx, mw1, mb1, mw2, mb2;
    float *dx = gen_grad_dst_or_null(g, x, &mx);
    float *dw1 = gen_grad_dst_or_null(g, w1, &mw1), *db1 = gen_grad_dst_or_null(g, b1, &mb1);
    float *dw2 = gen_grad_dst_or_null(g, w2, &mw2), *db2 = gen_grad_dst_or_null(g, b2, &mb2);
    const int need_dh = dx || dw1 || db1;
    const int64_t stripes = m.blocks < MLP_STRIPES ? m.blocks : MLP_STRIPES;
    struct mlp_parts pt = {0};
    pt.b1 = pt.w1 + (dw1 ? gen_lines(m.D * m.C) : 0);
    pt.w2 = pt.b1 + (db1 ? gen_lines(m.D) : 0);
    pt.b2 = pt.w2 + (dw2 ? gen_lines(m.C2 * m.D) : 0);
    pt.per = pt.b2 + (db2 ? gen_lines(m.C2) : 0);
    float *part = gen_scratch_floats(g, stripes * pt.per);
    /* the B operands of da = dy w2 and dx = dh w1 */
    const int64_t p2 = need_dh ? gen_lines(gen_shared_floats(kt, m.C2, m.D)) : 0;
    const int64_t p1 = dx ? gen_lines(gen_shared_floats(kt, m.D, m.C)) : 0;
    float *packs = gen_scratch_floats(g, p2 + p1 + (H ? 0 : gen_shared_floats(kt, m.C, m.D)));
    struct gen_shared_b w2n = {0}, w1n = {0}, w1t = {0};
    if (need_dh) w2n = gen_share(kt, GEN_NOTRANS, w2->data, m.D, m.C2, m.D, packs);
    if (dx) w1n = gen_share(kt, GEN_NOTRANS, w1->data, m.C, m.D, m.C, packs + p2);
    if (!H) w1t = gen_share(kt, GEN_TRANS, w1->data, m.C, m.C, m.D, packs + p2 + p1);
    /* a, dh and (recomputing) h, a block a thread; and x's block packed, for
     * dw1, where x is held as bf16 */
    const int64_t xs = x->bf16 && dw1 ? gen_shared_floats(kt, MLP_ROWS, m.C) : 0;
    const int64_t per_thread = (H ? 2 : 3) * MLP_ROWS * m.D + xs;
    float *work = gen_scratch_floats(g, gen_task_threads() * per_thread);
    const float beta_x = gen_put_beta(mx);
    const int blas_threads = gen_blas_serial_begin();

#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t s = 0; s < stripes; s++) {
        float *a = work + gen_task_id() * per_thread, *dh = a + MLP_ROWS * m.D;
        float *hr = dh + MLP_ROWS * m.D; /* h recomputed (no H) */
        float *ps = part + s * pt.per;
        const int64_t first = s * m.blocks / stripes, end = (s + 1) * m.blocks / stripes;
        for (int64_t b = first; b < end; b++) {
            const int64_t r0 = b * MLP_ROWS, n = block_rows(&m, b);
            const float *h = H ? H + r0 * m.D : hr;
            const float *dyb = dY + r0 * m.C2;
            const float beta = b == first ? 0.0f : 1.0f;
            const enum gen_grad_mode put = b == first ? GEN_GRAD_SET : GEN_GRAD_ADD;
            if (b + 1 < end) { /* the next block's rows, cold since the forward */
                const int64_t r1 = r0 + MLP_ROWS, n1 = block_rows(&m, b + 1);
                if (H) gen_prefetch_rows(H + r1 * m.D, 1, 0, n1 * m.D);
                gen_prefetch_rows(dY + r1 * m.C2, 1, 0, n1 * m.C2);
                prefetch_x(x, &m, r1, n1);
            }
            if (!H) hidden(kt, &m, x, &w1t, b1, r0, n, hr);
            if (need_dh) { /* da = dy w2; a and dh = da gelu'(h) in one pass */
                gen_shared_product(kt, GEN_NOTRANS, n, m.D, m.C2, 1.0f, dyb, m.C2, &w2n, 0, 0.0f,
                                   NULL, dh, m.D);
                kt->gelu_both(n * m.D, h, dh, a, dh);
            } else if (dw2) {
                kt->gelu_fwd(n * m.D, h, a);
            }
            if (dw2)
                gen_gemm_ld(GEN_TRANS, GEN_NOTRANS, m.C2, m.D, n, 1.0f, dyb, m.C2, a, m.D, beta,
                            ps + pt.w2, m.D);
            if (db2) kt->col_sum(n, m.C2, dyb, m.C2, ps + pt.b2, put);
            if (dw1 && x->bf16) {
                const struct gen_shared_b xp = gen_share_h(
                    kt, GEN_NOTRANS, gen_operand(x).h + r0 * m.C, m.C, n, m.C, a + per_thread - xs);
                gen_shared_product(kt, GEN_TRANS, m.D, m.C, n, 1.0f, dh, m.D, &xp, 0, beta, NULL,
                                   ps + pt.w1, m.C);
            } else if (dw1) {
                gen_gemm_ld(GEN_TRANS, GEN_NOTRANS, m.D, m.C, n, 1.0f, dh, m.D, x->data + r0 * m.C,
                            m.C, beta, ps + pt.w1, m.C);
            }
            if (db1) kt->col_sum(n, m.D, dh, m.D, ps + pt.b1, put);
            if (dx)
                gen_shared_product(kt, GEN_NOTRANS, n, m.C, m.D, 1.0f, dh, m.D, &w1n, 0, beta_x,
                                   NULL, dx + r0 * m.C, m.C);
        }
    }
    gen_blas_serial_end(blas_threads);
    if (dw1) gen_put_rows_sum(mw1, stripes, m.D * m.C, part + pt.w1, pt.per, dw1);
    if (db1) gen_put_rows_sum(mb1, stripes, m.D, part + pt.b1, pt.per, db1);
    if (dw2) gen_put_rows_sum(mw2, stripes, m.C2 * m.D, part + pt.w2, pt.per, dw2);
    if (db2) gen_put_rows_sum(mb2, stripes, m.C2, part + pt.b2, pt.per, db2);
}
