/* ops_attn.c - multi-head softmax attention from a packed qkv, forward and
 * backward.
 *
 * One task per (batch, head) under OpenMP, handed out in chunks of about
 * an eighth of a thread's share as threads come free (gen_task_chunk): on
 * the 2-core VM, where one core often runs slower than the other, the
 * default Transformer's attention took 11.6-12.1 ms a bf16 step against
 * 13.4-13.9 with a fixed half each (8 rounds), fp32 14.5-16.9 against
 * 16.3-17.2 (6 rounds). One task at a time was twice as slow: the next
 * task prefetch_task fetches is then mostly the other thread's.
 *
 * A task's GEMMs read q, k, v and dy in place through leading dimensions
 * (gen_gemm_ld: q of head h is columns [h hd, (h+1) hd) of the (T, 3C)
 * rows) and write o straight into its columns of y, and dq, dk, dv
 * straight into (accumulating) its columns of dqkv; tasks touch disjoint
 * columns, so the result does not depend on the thread count or on which
 * thread takes a task. The softmax probabilities P (B, NH, T, T) are kept in the
 * step arena for backward: as floats, or, where the table's products
 * round them to bf16 anyway (softmax_fwd_b16, the vdpbf16ps table), as
 * that bf16, which o = P v then reads in place and dV = P^T dO packs,
 * and from which the backward's softmax gradient takes P, writing dS as
 * the bf16 its products round it to (dQ's reads it in place, dK's packs
 * it). The 8 MB a layer of the default Transformer that the forward
 * wrote and the backward read back (past L2 and L3's share) are then 4.
 *
 * Causal attention skips the future it would mask. The rows run in
 * blocks of `rb` (attn_block); block [r0, r1) needs scores, probabilities
 * and their gradients only in columns [0, r1), so its products take r1
 * columns (or a depth of r1) instead of T, and dK and dV, whose rows j
 * gather over rows i >= j, take the same blocks as columns, from depth c0
 * on: 5/8 of the products at T = 128, 9/16 at 512. Row t's softmax and
 * its gradient run over its t + 1 columns (kernel calls inside the loop
 * stay on this thread: GEN_KFOR enters no OpenMP region there), and the
 * columns t + 1 .. r1 - 1 the block's products still read are zeroed.
 * A row cut to t + 1 columns gives bit for bit what the whole row with
 * -inf scores and zero dP gives (tests/test_attn_mask.c), and the products
 * only lose terms that are exact zeros at either end of their sums, so
 * the result is the full masked computation's (to the sign of a zero; for
 * T past a GEMM's slice depth the slices of dK's and dV's sums start
 * elsewhere). P and the backward's dS keep (T, T) rows; entries past a
 * block's columns are never written or read. The operands the blocks
 * share (k and v, in the backward also q and dy) are packed once a task
 * where the kernel table can (struct gen_shared_b), not once a block.
 *
 * Each task's operands are columns of rows far apart (q of a head is 128
 * bytes in every 3C floats), which the hardware prefetchers do not fetch
 * ahead, and the backward reads them (and P, and dy) long after the
 * forward wrote them. So once a task has packed its own, it asks for the
 * next task's rows to be brought into L2 (prefetch_task) while its
 * products run. The backward writes each element of dq, dk and dv once
 * (a row block of dq, a column block of dk and dv), so it overwrites a
 * gradient no other op has written yet instead of zero-filling it to add
 * to. */
#include <math.h>
#include <string.h>

#include "core/ops.h"

/* The rows of a block of causal attention: about T / 8, a multiple of 16
 * (the GEMMs' and softmax's vectors, and whole bf16 pairs for the depths
 * that start at a block), at least 32; all T rows at once without the
 * mask. */
static int64_t attn_block(int64_t T, int causal) {
    const int64_t rb = (T / 8 + 15) / 16 * 16;
    return !causal || T <= 32 ? T : rb < 32 ? 32 : rb;
}

/* Zeros in row t's columns t + 1 .. w - 1 (values of `size` bytes: floats,
 * or bf16): the future its block's products read. */
static void zero_future(void *row, size_t size, int64_t t, int64_t w) {
    memset((char *)row + (size_t)(t + 1) * size, 0, (size_t)(w - t - 1) * size);
}

/* Rows [r0, r0 + n) of a task's p = softmax(s) (s, p: the task's (T, T);
 * causal: row t over its t + 1 columns, then zeros up to w), into floats
 * at p or as bf16 at ph (softmax_fwd_b16, which takes s as its scratch). */
static void probabilities(const struct gen_kernels *kt, int causal, int64_t n, int64_t T,
                          int64_t r0, int64_t w, float *s, float *p, uint16_t *ph) {
    for (int64_t i = 0, t = r0; i < (causal ? n : 1); i++, t++) {
        const int64_t rows = causal ? 1 : n, cols = causal ? t + 1 : T, at = t * T;
        if (ph)
            kt->softmax_fwd_b16(rows, cols, s + at, ph + at);
        else
            kt->softmax_fwd(rows, cols, s + at, p + at);
        if (causal) zero_future(ph ? (void *)(ph + at) : p + at, ph ? sizeof *ph : sizeof *p, t, w);
    }
}

struct attn_geo {
    int64_t B, T, C, NH, hd;
};

/* Rows [r0, r0 + n) of a task's ds = softmax_grad(p, dp), as
 * probabilities() lays them out (zeros up to w): from p as floats into
 * floats at ds, or from p held as bf16 into bf16 at dsh (what dS's
 * products round it to). */
static void probability_grads(const struct gen_kernels *kt, int causal, int64_t n, int64_t T,
                              int64_t r0, int64_t w, struct gen_chan p, const float *dp, float *ds,
                              uint16_t *dsh) {
    for (int64_t i = 0, t = r0; i < (causal ? n : 1); i++, t++) {
        const int64_t rows = causal ? 1 : n, cols = causal ? t + 1 : T, at = t * T;
        if (p.h)
            kt->softmax_grad_b16(rows, cols, p.h + at, dp + at, dsh + at);
        else
            kt->softmax_grad(rows, cols, p.f + at, dp + at, ds + at, GEN_GRAD_SET);
        if (causal)
            zero_future(p.h ? (void *)(dsh + at) : ds + at, p.h ? sizeof *dsh : sizeof *ds, t, w);
    }
}

/* Hints the rows of q, k and v of task bh (a batch and head), and those of
 * dy (rows of C) and of P when given, for the task to come. */
static void prefetch_task(const struct attn_geo *a, const struct gen_tensor *qkv, const float *dy,
                          const void *P, int64_t p_bytes, int64_t bh) {
    if (bh >= a->B * a->NH) return;
    const int64_t b = bh / a->NH, h = bh % a->NH, T = a->T, C = a->C;
    const int64_t size = gen_value_bytes(qkv);
    const char *q = (const char *)qkv->data + (b * T * 3 * C + h * a->hd) * size;
    for (int i = 0; i < 3; i++) gen_prefetch_bytes(q + i * C * size, T, 3 * C * size, a->hd * size);
    if (dy) gen_prefetch_rows(dy + b * T * C + h * a->hd, T, C, a->hd);
    if (P) gen_prefetch_bytes((const char *)P + bh * T * T * p_bytes, 1, 0, T * T * p_bytes);
}

/* gen_share of the values of qkv from value `at` on, floats or held as
 * bf16 (gen_share_h). */
static struct gen_shared_b share_qkv(const struct gen_kernels *kt, enum gen_trans tb,
                                     const struct gen_tensor *qkv, int64_t at, int64_t ldb,
                                     int64_t K, int64_t N, float *buf) {
    if (qkv->bf16) return gen_share_h(kt, tb, gen_operand(qkv).h + at, ldb, K, N, buf);
    return gen_share(kt, tb, qkv->data + at, ldb, K, N, buf);
}

static struct attn_geo attn_geo(const struct gen_tensor *qkv, int64_t NH) {
    GEN_ASSERT(qkv->ndim == 3 && qkv->shape[2] % 3 == 0);
    struct attn_geo a = {qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3, NH, 0};
    GEN_ASSERT(NH >= 1 && a.C % NH == 0);
    a.hd = a.C / NH;
    return a;
}

struct gen_tensor *gen_attention(struct gen_ctx *g, struct gen_tensor *qkv, int64_t NH,
                                 int causal) {
    const struct attn_geo a = attn_geo(qkv, NH);
    const int64_t T = a.T, hd = a.hd, C = a.C, C3 = 3 * a.C;
    const float scale = 1.0f / sqrtf((float)hd);
    struct gen_tensor *y = gen_tensor_3d(g, a.B, T, a.C);
    const struct gen_kernels *kt = gen_kernels();
    /* P (B, NH, T, T), kept if recorded: floats, or held as bf16 */
    const int held = kt->softmax_fwd_b16 != NULL;
    const int64_t np = a.B * NH * T * T;
    float *P = gen_scratch_floats(g, held ? (np + 1) / 2 : np);
    uint16_t *Ph = held ? (uint16_t *)(void *)P : NULL;
    const int64_t pk = gen_shared_floats(kt, hd, T), pv = gen_shared_floats(kt, T, hd);
    const int64_t tt = (T * T + 15) / 16 * 16, per = tt + pk + pv; /* s (T, T), k^T, v */
    float *scratch = gen_scratch_floats(g, gen_task_threads() * per);
    const int blas_threads = gen_blas_serial_begin();
    const int64_t rb = attn_block(T, causal);

#pragma omp parallel for schedule(dynamic, gen_task_chunk(a.B * NH))
    for (int64_t bh = 0; bh < a.B * NH; bh++) {
        const int64_t b = bh / NH, h = bh % NH;
        float *s = scratch + gen_task_id() * per, *p = held ? NULL : P + bh * T * T; /* (T, T) */
        uint16_t *ph = held ? Ph + bh * T * T : NULL;
        const struct gen_chan pch = {p, ph};
        float *buf = s + tt;
        const int64_t at = b * T * C3 + h * hd; /* q's first value; k and v C, 2 C on */
        const struct gen_shared_b kb = share_qkv(kt, GEN_TRANS, qkv, at + C, C3, hd, T, buf);
        const struct gen_shared_b vb =
            share_qkv(kt, GEN_NOTRANS, qkv, at + 2 * C, C3, T, hd, buf + pk);
        prefetch_task(&a, qkv, NULL, NULL, 0, bh + 1);
        for (int64_t r0 = 0; r0 < T; r0 += rb) {
            const int64_t n = T - r0 < rb ? T - r0 : rb, w = causal ? r0 + n : T;
            /* s = q k^T / sqrt(hd), then p = softmax(s) over each row's past */
            gen_shared_product_chan(kt, GEN_NOTRANS, n, w, hd, scale,
                                    gen_chan_at(gen_operand(qkv), at + r0 * C3), C3, &kb, 0, 0.0f,
                                    NULL, s + r0 * T, T);
            probabilities(kt, causal, n, T, r0, w, s, p, ph);
            /* o = p v, into columns [h hd, (h+1) hd) of y's rows */
            gen_shared_product_chan(kt, GEN_NOTRANS, n, hd, w, 1.0f, gen_chan_at(pch, r0 * T), T,
                                    &vb, 0, 0.0f, NULL, y->data + (b * T + r0) * C + h * hd, C);
        }
    }
    gen_blas_serial_end(blas_threads);
    struct gen_node *node = gen_record(g, GEN_OP_ATTENTION, y, 1, (struct gen_tensor *[]){qkv});
    if (node) {
        node->i[0] = NH;
        node->i[1] = causal;
        node->i[2] = held;
        node->saved = P;
        gen_scratch_keep(g, P);
    }
    gen_scratch_release(g);
    return y;
}

/* dP = dO V^T, dS = softmax_bwd(P, dP), dQ = dS K / sqrt(hd),
 * dK = dS^T Q / sqrt(hd), dV = P^T dO; written (or added) into the packed dqkv. */
GEN_BACKWARD(attention) {
    struct gen_tensor *qkv = node->in[0];
    const int64_t NH = node->i[0];
    const int causal = (int)node->i[1];
    const struct attn_geo a = attn_geo(qkv, NH);
    const int64_t T = a.T, hd = a.hd, C = a.C, C3 = 3 * a.C;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *dy = node->out->grad;
    const int held = (int)node->i[2]; /* P held as bf16 */
    const int64_t p_bytes = held ? (int64_t)sizeof(uint16_t) : (int64_t)sizeof(float);
    enum gen_grad_mode mode;
    float *dqkv = gen_grad_dst(g, qkv, &mode);
    const float beta = gen_put_beta(mode);
    const struct gen_kernels *kt = gen_kernels();
    const int64_t pt = gen_shared_floats(kt, hd, T), pc = gen_shared_floats(kt, T, hd);
    const int64_t tt = (T * T + 15) / 16 * 16, per = 2 * tt + pt + 3 * pc;
    float *scratch = gen_scratch_floats(g, gen_task_threads() * per); /* dp, ds (T, T), 4 packed */
    const int blas_threads = gen_blas_serial_begin();
    const int64_t rb = attn_block(T, causal);

#pragma omp parallel for schedule(dynamic, gen_task_chunk(a.B * NH))
    for (int64_t bh = 0; bh < a.B * NH; bh++) {
        const int64_t b = bh / NH, h = bh % NH;
        float *dp = scratch + gen_task_id() * per, *buf = dp + 2 * tt;
        /* ds (T, T): floats, or bf16 where P is */
        float *ds = held ? NULL : dp + tt;
        uint16_t *dsh = held ? (uint16_t *)(void *)(dp + tt) : NULL;
        const struct gen_chan dsc = {ds, dsh};
        const struct gen_chan p = {held ? NULL : (const float *)node->saved + bh * T * T,
                                   held ? (const uint16_t *)node->saved + bh * T * T : NULL};
        const int64_t at = b * T * C3 + h * hd;    /* q's first value; k and v C, 2 C on */
        const float *dO = dy + b * T * C + h * hd; /* rows of C */
        float *dq = dqkv + at, *dk = dq + C, *dv = dq + 2 * C;
        const struct gen_shared_b vt = share_qkv(kt, GEN_TRANS, qkv, at + 2 * C, C3, hd, T, buf);
        const struct gen_shared_b kb = share_qkv(kt, GEN_NOTRANS, qkv, at + C, C3, T, hd, buf + pt);
        const struct gen_shared_b qb =
            share_qkv(kt, GEN_NOTRANS, qkv, at, C3, T, hd, buf + pt + pc);
        const struct gen_shared_b ob = gen_share(kt, GEN_NOTRANS, dO, C, T, hd, buf + pt + 2 * pc);
        prefetch_task(&a, qkv, dy, node->saved, p_bytes, bh + 1);

        for (int64_t r0 = 0; r0 < T; r0 += rb) { /* the rows' blocks: dS and dQ */
            const int64_t n = T - r0 < rb ? T - r0 : rb, w = causal ? r0 + n : T;
            /* dp = dO v^T */
            gen_shared_product(kt, GEN_NOTRANS, n, w, hd, 1.0f, dO + r0 * C, C, &vt, 0, 0.0f, NULL,
                               dp + r0 * T, T);
            probability_grads(kt, causal, n, T, r0, w, p, dp, ds, dsh);
            /* dq (+)= ds k / sqrt(hd) */
            gen_shared_product_chan(kt, GEN_NOTRANS, n, hd, w, scale, gen_chan_at(dsc, r0 * T), T,
                                    &kb, 0, beta, NULL, dq + r0 * C3, C3);
        }
        for (int64_t c0 = 0; c0 < T; c0 += rb) { /* the columns' blocks: dK and dV */
            const int64_t n = T - c0 < rb ? T - c0 : rb, i0 = causal ? c0 : 0;
            /* dk (+)= ds^T q / sqrt(hd), dv (+)= p^T dO, over the rows i >= c0 */
            gen_shared_product_chan(kt, GEN_TRANS, n, hd, T - i0, scale,
                                    gen_chan_at(dsc, i0 * T + c0), T, &qb, i0, beta, NULL,
                                    dk + c0 * C3, C3);
            gen_shared_product_chan(kt, GEN_TRANS, n, hd, T - i0, 1.0f, gen_chan_at(p, i0 * T + c0),
                                    T, &ob, i0, beta, NULL, dv + c0 * C3, C3);
        }
    }
    gen_blas_serial_end(blas_threads);
}
