/* transformer_sample.c - the Transformer's sampling: the KV cache (a
 * prefill of many rows through GEMMs and one token at a time through
 * matrix-vector products, each across the threads; the sliding window),
 * and the generation loop (the next token: sampler.c). The network and
 * its training are in transformer.c, many samples on the threads in
 * transformer_samples.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/kernels.h"
#include "models/transformer.h"

/* ---- the KV cache ---- */

/* n floats rounded up to whole 64-byte lines. */
static int64_t lines(int64_t n) {
    return (n + 15) & ~(int64_t)15;
}

/* The floats of one row's attention scratch per head: its scores and its
 * probabilities (T each, on lines of their own), on pages of their own.
 * With the heads' scratch on one page, one thread's heads beside
 * another's, the first head past the boundary attended 1.7-1.9 times as
 * slowly as the others on the Zen 5 VM (a gap of one or two lines between
 * heads did not help, one of 17 did); with a page a head, every head took
 * the same time, and two threads decoded 18 387 -> 19 612 tokens/s at
 * length 1000, 17 405 -> 18 600 at 4000 (medians of 7 and 5 interleaved
 * runs; the same text). */
static int64_t row_scratch(int64_t T) {
    return (2 * lines(T) + 1023) & ~(int64_t)1023;
}

enum gen_status gen_tf_cache_init(struct gen_tf_cache *c, const struct gen_tf *m) {
    memset(c, 0, sizeof *c);
    const int64_t L = m->s.L, C = m->s.C, T = m->s.T, V = m->s.V;
    /* k, v; per-row scratch for up to T rows; scores and probabilities (NH, T, T). */
    /* x, h and the norms' statistics also have a row per thread (decoding),
     * the statistics 16 floats (a cache line) apart: threads writing into
     * one line took turns owning it (two threads decoding 23 200 -> 23 700
     * tokens/s, 6 interleaved runs; the same text). One row's attention
     * scratch: row_scratch. */
    const int64_t NH = m->s.NH, R = T > gen_threads() ? T : gen_threads();
    c->rows = R;
    const struct {
        float **p;
        int64_t n; /* floats */
    } parts[] = {
        {&c->k, L * T * C},
        {&c->v, L * T * C},
        {&c->x, R * C},
        {&c->h, R * C},
        {&c->y, T * C},
        {&c->qkv, 3 * T * C},
        {&c->att, T * C},
        {&c->fc, 4 * T * C},
        {&c->act, 4 * T * C},
        {&c->mean, 16 * R},
        {&c->rstd, 16 * R},
        {&c->row, NH * row_scratch(T) + 1024}, /* and a page to align it to one */
        {&c->s, NH * T * T},
        {&c->p, NH * T * T},
        {&c->logits, T * V},
        {&c->pick, GEN_SAMPLER_WORK(V)},
    };
    const int n = (int)(sizeof parts / sizeof parts[0]);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += lines(parts[i].n); /* each part 64-byte aligned */
    c->bytes = (size_t)total * sizeof(float);
    c->block = gen_alloc(c->bytes);
    c->hist = gen_alloc((size_t)T * sizeof *c->hist);
    if (!c->block || !c->hist) {
        gen_tf_cache_free(c);
        return gen_error(GEN_ERR_NOMEM,
                         "out of memory for the sampling cache: %.1f GiB at a context of %lld "
                         "tokens (its attention scores grow with the context's square)",
                         (double)total * sizeof(float) / (1 << 30), (long long)T);
    }
    float *f = c->block;
    for (int i = 0; i < n; i++) {
        *parts[i].p = f;
        f += lines(parts[i].n);
    }
    c->row = (float *)(((uintptr_t)c->row + 4095) & ~(uintptr_t)4095);
    return GEN_OK;
}

void gen_tf_cache_free(struct gen_tf_cache *c) {
    gen_free(c->block);
    gen_free(c->hist);
    gen_free(c->wb);
    memset(c, 0, sizeof *c);
}

enum gen_status gen_tf_cache_bf16(struct gen_tf_cache *c, const struct gen_tf *m, int on) {
    if (c->wb_on != (on != 0)) memset(&c->tune, 0, sizeof c->tune); /* another stream */
    c->wb_on = 0;
    if (!on) return GEN_OK;
    if (!c->wb && !(c->wb = gen_alloc((size_t)m->ps.n_train * sizeof *c->wb)))
        return gen_error(GEN_ERR_NOMEM, "out of memory for the bf16 copy of the weights");
    gen_bf16_pack(m->ps.n_train, m->ps.data, c->wb);
    c->wb_on = 1;
    return GEN_OK;
}

/* y (rows r0..r1 of w's out) = w x + beta y, w (out, in) parameter tensor
 * idx, on this thread: one-token products, which stream their weights
 * (a GEMM would pack them all). From the bf16 copy when it is in use, x
 * then rounded to bf16 (as_operand) by the caller. */
static void weight_rows(const struct gen_tf_cache *c, const struct gen_tf *m, int idx, int64_t r0,
                        int64_t r1, int64_t in, const float *x, float beta, float *y) {
    const int64_t off = m->ps.p[idx].offset + r0 * in;
    if (c->wb_on)
        gen_gemv_bf16(r1 - r0, in, c->wb + off, in, x, beta, y);
    else
        gen_gemv(GEN_NOTRANS, r1 - r0, in, 1.0f, m->ps.data + off, in, x, beta, y);
}

/* x (n) as an operand of weight_rows: rounded to bf16 where the bf16
 * weights are in use, as the bf16 GEMMs round theirs. */
static void as_operand(const struct gen_tf_cache *c, int64_t n, float *x) {
    if (c->wb_on) gen_bf16_round(n, x, x);
}

/* ---- one token, across the threads ---- */

/* Decoding one token streams every weight once; the threads share each
 * product by rows (gen_gemv makes every y_i the same operations whatever
 * rows it is given) and the attention by heads, and meet only where a
 * product needs another thread's rows: four barriers a layer (a thread
 * computes the q, k and v rows of the heads it attends with, so the
 * attention needs none before it). The small
 * row work (norms, residual adds) every thread does for itself, on its own
 * copy of the residual stream (row t of x, its norm in row t of h), so no
 * thread waits for it; the result is the same bits at any thread count. */
struct decode {
    struct gen_tf_cache *c;
    const struct gen_tf *m;
};

/* Rows [r0, r1) of y = w x + b (w, b: parameter tensors; b < 0: none). */
static void bias_rows(const struct decode *d, int w, int b, int64_t r0, int64_t r1, int64_t in,
                      const float *x, float *y) {
    if (b >= 0) memcpy(y + r0, gen_tf_pdata(d->m, b) + r0, (size_t)(r1 - r0) * sizeof(float));
    weight_rows(d->c, d->m, w, r0, r1, in, x, b >= 0 ? 1.0f : 0.0f, y + r0);
}

/* Rows [lo, hi) of y (out) = w x + b, thread t's share of out; with act,
 * also act = gelu(y) on those rows, as an operand. */
static void linear_part(const struct decode *d, int t, int nt, int64_t in, int64_t out,
                        const float *x, int w, int b, float *y, float *act) {
    int64_t lo, hi;
    gen_split(out, t, nt, 16, &lo, &hi);
    if (hi <= lo) return;
    bias_rows(d, w, b, lo, hi, in, x, y);
    if (act) {
        gen_kernels()->gelu_fwd(hi - lo, y + lo, act + lo);
        as_operand(d->c, hi - lo, act + lo);
    }
}

/* Rows [lo hd, hi hd) of q, k and v (qkv = w h + b; w, b: parameter
 * tensors), the heads [lo, hi) that thread t attends with: their rows
 * are all its attention reads, so it needs no other thread's. */
static void qkv_heads(const struct decode *d, int64_t C, int64_t hd, int64_t lo, int64_t hi,
                      const float *h, int w, int b) {
    for (int64_t part = 0; part < 3 && hi > lo; part++)
        bias_rows(d, w, b, part * C + lo * hd, part * C + hi * hd, C, h, d->c->qkv);
}

/* x's layer norm (w, b: parameter tensors) into h, as an operand. */
static void norm_row(const struct decode *d, int64_t C, const float *x, int w, int b, float *h,
                     float *mean, float *rstd) {
    gen_kernels()->layernorm_fwd(1, C, x, gen_tf_pdata(d->m, w), gen_tf_pdata(d->m, b),
                                 GEN_TF_LN_EPS, h, mean, rstd);
    as_operand(d->c, C, h);
}
/* The heads [lo, hi) of layer l's causal attention for the new rows
 * first..n-1 of qkv (positions len + first ..), over the cached keys and
 * values, to which all n new rows' are appended first; row i's output
 * goes to row i - first of att. One row takes matrix-vector products,
 * its output an operand of weight_rows. */
static void attend_heads(struct gen_tf_cache *c, const struct gen_tf *m, int64_t l, int64_t first,
                         int64_t n, int64_t lo, int64_t hi) {
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, NH = m->s.NH, hd = C / NH, T = m->s.T;
    const int64_t len = c->len, tot = len + n, rows = n - first;
    const float *q = c->qkv + first * 3 * C;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t h = lo; h < hi; h++) {
        float *kh = c->k + (l * NH + h) * T * hd, *vh = c->v + (l * NH + h) * T * hd;
        for (int64_t i = 0; i < n; i++) {
            memcpy(kh + (len + i) * hd, c->qkv + i * 3 * C + C + h * hd,
                   (size_t)hd * sizeof(float));
            memcpy(vh + (len + i) * hd, c->qkv + i * 3 * C + 2 * C + h * hd,
                   (size_t)hd * sizeof(float));
        }
        if (rows == 1) { /* s (tot) = k q / sqrt(hd), o (hd) = v^T softmax(s) */
            float *s = c->row + h * row_scratch(T), *p = s + lines(T);
            gen_gemv(GEN_NOTRANS, tot, hd, scale, kh, hd, q + h * hd, 0.0f, s);
            K->softmax_fwd(1, tot, s, p);
            gen_gemv(GEN_TRANS, tot, hd, 1.0f, vh, hd, p, 0.0f, c->att + h * hd);
            as_operand(c, hd, c->att + h * hd);
            continue;
        }
        /* s (rows, tot) = q k^T / sqrt(hd), the future masked; p its
         * softmax with exact zeros there; o (rows, hd) = p v */
        float *s = c->s + h * rows * tot, *p = c->p + h * rows * tot;
        gen_gemm_ld(GEN_NOTRANS, GEN_TRANS, rows, tot, hd, scale, q + h * hd, 3 * C, kh, hd, 0.0f,
                    s, tot);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = len + first + i + 1; j < tot; j++) s[i * tot + j] = -INFINITY;
        K->softmax_fwd(rows, tot, s, p);
        for (int64_t i = 0; i < rows; i++)
            memset(p + i * tot + len + first + i + 1, 0, (size_t)(rows - i - 1) * sizeof(float));
        gen_gemm_ld(GEN_NOTRANS, GEN_NOTRANS, rows, hd, tot, 1.0f, p, tot, vh, hd, 0.0f,
                    c->att + h * hd, C);
    }
}

/* The threads worth meeting 16 times a token: one per 256 KiB of the
 * parameters it streams (measured on 2 cores: a model of 96 KiB decodes
 * faster on one thread than on two, one of 384 KiB as fast, the default
 * 3.4 MB 2.3 times as fast on two), and no more than the cache has rows
 * for. Decoding then runs on these or on one, whichever gen_parallel_tuned
 * finds faster: on a VM whose two cores were busy or far apart, two
 * threads decoded at 15 000-17 000 tokens/s in one hour and 21 000-23 000
 * in another, one thread at 15 000-17 000 in both. */
int gen_tf_decode_threads(const struct gen_tf_cache *c, const struct gen_tf *m) {
    int64_t n = m->ps.n_train * (c->wb_on ? 2 : 4) / (256 * 1024);
    if (n > c->rows) n = c->rows;
    return n < 1 ? 1 : n > INT32_MAX ? INT32_MAX : (int)n;
}

/* gen_tf_decode_threads within the threads there are (gen_parallel_tuned's n). */
static int decode_count(const struct gen_tf_cache *c, const struct gen_tf *m) {
    if (c->solo) return 1;
    const int n = gen_tf_decode_threads(c, m), have = gen_threads();
    return n < have ? n : have;
}

static void decode_token(void *arg, int t, int nt) {
    const struct decode *d = arg;
    struct gen_tf_cache *c = d->c;
    const struct gen_tf *m = d->m;
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, NH = m->s.NH, L = m->s.L, V = m->s.V;
    float *x = c->x + t * C, *h = c->h + t * C, *mean = c->mean + 16 * t, *rstd = c->rstd + 16 * t;
    if (t > 0) memcpy(x, c->x, (size_t)C * sizeof(float)); /* row 0: the token's embedding */
    int64_t lo, hi;
    gen_split(NH, t, nt, 1, &lo, &hi);
    for (int64_t l = 0; l < L; l++) {
        const struct gen_tf_block *b = &m->blk[l];
        norm_row(d, C, x, b->ln1_w, b->ln1_b, h, mean, rstd);
        qkv_heads(d, C, C / NH, lo, hi, h, b->attn_w, b->attn_b);
        attend_heads(c, m, l, 0, 1, lo, hi);
        gen_barrier();
        linear_part(d, t, nt, C, C, c->att, b->aproj_w, b->aproj_b, c->y, NULL);
        gen_barrier();
        K->add(C, x, c->y, x);
        norm_row(d, C, x, b->ln2_w, b->ln2_b, h, mean, rstd);
        linear_part(d, t, nt, C, 4 * C, h, b->fc_w, b->fc_b, c->fc, c->act);
        gen_barrier();
        linear_part(d, t, nt, 4 * C, C, c->act, b->mproj_w, b->mproj_b, c->y, NULL);
        gen_barrier();
        K->add(C, x, c->y, x);
    }
    norm_row(d, C, x, m->lnf_w, m->lnf_b, h, mean, rstd);
    linear_part(d, t, nt, C, V, h, m->wte, -1, c->logits, NULL); /* (V) = wte h */
}

/* ---- many rows across the threads: a prompt, a slide of the window ---- */

/* A prefill runs rows 0..n-1 of x (positions len ..) through every layer
 * to their keys and values, and rows first..n-1 on through the last one
 * (the others' outputs are not wanted). The threads share each product by
 * columns of its output (gen_gemm makes every element the same operations
 * whichever columns it is given), the attention by heads and the norms
 * and residual adds by rows, and meet where a step reads another thread's
 * share: seven barriers a layer, each after a whole product of n rows.
 * The result is the same bits at any thread count. */
struct prefill {
    struct decode d;
    int64_t first, n;
};

/* Thread t's share of y (n, out) = x (n, in) w^T + b (w, b: parameter
 * tensors), by columns; with act, also act = gelu(y) on them. One row is
 * a one-token product (linear_part). */
static void linear_cols(const struct decode *d, int t, int nt, int64_t n, int64_t in, int64_t out,
                        const float *x, int w, int b, float *y, float *act) {
    if (n == 1) {
        linear_part(d, t, nt, in, out, x, w, b, y, act);
        return;
    }
    int64_t lo, hi;
    gen_split(out, t, nt, 16, &lo, &hi);
    if (hi <= lo) return;
    gen_gemm_bias_ld(GEN_NOTRANS, GEN_TRANS, n, hi - lo, in, x, in, gen_tf_pdata(d->m, w) + lo * in,
                     in, gen_tf_pdata(d->m, b) + lo, y + lo, out);
    const struct gen_kernels *K = gen_kernels();
    for (int64_t i = 0; act && i < n; i++)
        K->gelu_fwd(hi - lo, y + i * out + lo, act + i * out + lo);
}

/* Rows [r0, r1) of x's layer norm (w, b: parameter tensors) into h; a
 * lone row as an operand. */
static void norm_rows(const struct decode *d, int64_t n, int64_t r0, int64_t r1, const float *x,
                      int w, int b, float *h) {
    const int64_t C = d->m->s.C;
    gen_kernels()->layernorm_fwd(r1 - r0, C, x + r0 * C, gen_tf_pdata(d->m, w),
                                 gen_tf_pdata(d->m, b), GEN_TF_LN_EPS, h + r0 * C, d->c->mean + r0,
                                 d->c->rstd + r0);
    if (n == 1 && r1 > r0) as_operand(d->c, C, h);
}

static void prefill_part(void *arg, int t, int nt) {
    const struct prefill *f = arg;
    const struct decode *d = &f->d;
    struct gen_tf_cache *c = d->c;
    const struct gen_tf *m = d->m;
    const int64_t C = m->s.C, NH = m->s.NH, L = m->s.L, n = f->n;
    int64_t lo, hi;
    gen_split(NH, t, nt, 1, &lo, &hi);
    for (int64_t l = 0; l < L; l++) {
        const struct gen_tf_block *b = &m->blk[l];
        const int64_t first = l == L - 1 ? f->first : 0, rows = n - first;
        float *x = c->x + first * C;
        int64_t r0, r1;                   /* this thread's rows of x: all n for the first norm, */
        gen_split(n, t, nt, 1, &r0, &r1); /* the same as the last add's before it */
        norm_rows(d, n, r0, r1, c->x, b->ln1_w, b->ln1_b, c->h);
        gen_barrier();
        linear_cols(d, t, nt, n, C, 3 * C, c->h, b->attn_w, b->attn_b, c->qkv, NULL);
        gen_barrier();
        attend_heads(c, m, l, first, n, lo, hi);
        gen_barrier();
        linear_cols(d, t, nt, rows, C, C, c->att, b->aproj_w, b->aproj_b, c->y, NULL);
        gen_barrier();
        gen_split(rows, t, nt, 1, &r0, &r1);
        gen_kernels()->add((r1 - r0) * C, x + r0 * C, c->y + r0 * C, x + r0 * C);
        norm_rows(d, rows, r0, r1, x, b->ln2_w, b->ln2_b, c->h);
        gen_barrier();
        linear_cols(d, t, nt, rows, C, 4 * C, c->h, b->fc_w, b->fc_b, c->fc, c->act);
        gen_barrier();
        linear_cols(d, t, nt, rows, 4 * C, C, c->act, b->mproj_w, b->mproj_b, c->y, NULL);
        gen_barrier();
        gen_kernels()->add((r1 - r0) * C, x + r0 * C, c->y + r0 * C, x + r0 * C);
    }
}

/* The threads for a prefill of n rows: one per 2 MFLOP of it. */
static int prefill_threads(const struct gen_tf *m, int64_t n) {
    const double per = 2e6 / (2.0 * (double)m->ps.n_train);
    return n < per ? 1 : (double)n / per > INT32_MAX ? INT32_MAX : (int)((double)n / per);
}

/* Rows 0..n-1 of x: the embeddings of tok at positions len ..; the
 * tokens into hist. */
static void embed(struct gen_tf_cache *c, const struct gen_tf *m, const int32_t *tok, int64_t n) {
    const int64_t C = m->s.C, V = m->s.V;
    const float *wte = gen_tf_pdata(m, m->wte), *wpe = gen_tf_pdata(m, m->wpe);
    for (int64_t i = 0; i < n; i++) {
        GEN_ASSERT(tok[i] >= 0 && tok[i] < V);
        gen_kernels()->add(C, wte + (int64_t)tok[i] * C, wpe + (c->len + i) * C, c->x + i * C);
        c->hist[c->len + i] = tok[i];
    }
}

const float *gen_tf_cache_feed(struct gen_tf_cache *c, const struct gen_tf *m, const int32_t *tok,
                               int64_t n, int all) {
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, T = m->s.T, V = m->s.V;
    GEN_ASSERT(n >= 1 && c->len + n <= T);
    const int64_t len = c->len;
    embed(c, m, tok, n);
    if (n == 1) {
        struct decode d = {c, m};
        gen_parallel_tuned(&c->tune, decode_count(c, m), decode_token, &d);
        c->len = len + 1;
        return c->logits;
    }
    /* Rows whose logits are not wanted need the last layer only for its
     * keys and values: a prefill (a prompt, a slide of the window) skips a
     * quarter of its work in a 4-layer model. */
    const int64_t first = all ? 0 : n - 1, rows = n - first;
    struct prefill f = {{c, m}, first, n};
    /* on one thread where decoding's last trial found the others stalled
     * (a busy process shares their cores): each prefill on them waited a
     * time slice */
    gen_parallel_n(c->tune.stalled ? 1 : prefill_threads(m, n), prefill_part, &f);
    c->len = len + n;
    K->layernorm_fwd(rows, C, c->x + first * C, gen_tf_pdata(m, m->lnf_w),
                     gen_tf_pdata(m, m->lnf_b), GEN_TF_LN_EPS, c->h, c->mean, c->rstd);
    if (rows == 1) { /* (V) = wte h */
        as_operand(c, C, c->h);
        weight_rows(c, m, m->wte, 0, V, C, c->h, 0.0f, c->logits);
    } else
        gen_gemm(GEN_NOTRANS, GEN_TRANS, rows, V, C, 1.0f, c->h, gen_tf_pdata(m, m->wte), 0.0f,
                 c->logits); /* (rows, V) = h wte^T */
    return c->logits;
}

/* A full cache slides: the last T/2 tokens re-encoded from position 0. */
static void slide(struct gen_tf_cache *c, const struct gen_tf *m) {
    const int64_t T = m->s.T, keep = T / 2;
    memmove(c->hist, c->hist + T - keep, (size_t)keep * sizeof *c->hist);
    c->len = 0;
    if (keep > 0) gen_tf_cache_feed(c, m, c->hist, keep, 0);
}

const float *gen_tf_cache_push(struct gen_tf_cache *c, const struct gen_tf *m, const int32_t *tok,
                               int64_t n) {
    const int64_t T = m->s.T;
    const float *logits = NULL;
    GEN_ASSERT(n >= 1);
    while (n > 0) {
        if (c->len == T) slide(c, m);
        const int64_t k = n < T - c->len ? n : T - c->len;
        logits = gen_tf_cache_feed(c, m, tok, k, 0);
        tok += k;
        n -= k;
    }
    return logits;
}

/* ---- generating: runs of tokens in one parallel region ---- */

/* Generation decodes its tokens in runs, each run's tokens in one
 * parallel region whose threads meet at two barriers between tokens,
 * thread 0 picking and emitting each token there: a region a token
 * (gen_tf_cache_feed's) cost its start and its end, 3.2 us a token on
 * the Zen 5 VM (libgomp wakes its threads and ends a region with a futex
 * call each). A run ends where the window is due to slide (a prefill, on
 * its own threads) or where gen_parallel_tuned's choice of threads
 * (gen_tune_next, asked once a token) changes; the tokens are the same
 * bits as through gen_tf_cache_push, on any threads. */
struct run {
    struct decode d;
    const struct gen_sampling *sp;
    struct gen_rng *rng;
    void (*emit)(int32_t tok, void *arg);
    void *arg;
    int64_t left; /* tokens still to emit */
    int32_t tok;  /* the token emitted last, to decode next */
    int want;     /* the threads gen_tune_next gave the next token (0: not asked yet) */
    int timed;    /* and whether it is to be timed */
    int go;       /* thread 0 to the others: decode the next token here */
    double t0;    /* when the token began */
};

/* Thread 0, before a token: r->tok's embedding, and the clock. */
static void token_begin(struct run *r) {
    embed(r->d.c, r->d.m, &r->tok, 1);
    r->t0 = r->timed ? gen_now() : 0.0;
}

/* Thread 0, after a token on nt threads: the next token picked and
 * emitted; whether the one after it is decoded in this region (token_begin
 * done): tokens are left, no slide is due, and gen_tune_next gives nt. */
static int token_end(struct run *r, int nt) {
    struct gen_tf_cache *c = r->d.c;
    const struct gen_tf *m = r->d.m;
    if (r->timed) gen_tune_took(&c->tune, gen_now() - r->t0);
    c->len++;
    r->tok = gen_sampler_pick(c->logits, m->s.V, r->sp, r->rng, c->pick);
    r->emit(r->tok, r->arg);
    if (--r->left == 0 || c->len == m->s.T) return 0;
    r->want = gen_tune_next(&c->tune, decode_count(c, m), &r->timed);
    if (r->want != nt) return 0;
    r->want = 0;
    token_begin(r);
    return 1;
}

static void run_tokens(void *arg, int t, int nt) {
    struct run *r = arg;
    for (int go = 1; go; go = r->go) {
        decode_token(&r->d, t, nt);
        gen_barrier();
        if (t == 0) r->go = token_end(r, nt);
        gen_barrier();
    }
}

void gen_tf_generate(struct gen_tf_cache *c, const struct gen_tf *m, const int32_t *prompt,
                     int64_t P, int64_t length, const struct gen_sampling *sp, struct gen_rng *rng,
                     void (*emit)(int32_t tok, void *arg), void *arg) {
    c->len = 0;
    if (P > m->s.T) prompt += P - m->s.T, P = m->s.T; /* only the last window can matter */
    const float *logits = gen_tf_cache_push(c, m, prompt, P);
    if (length <= 0) return;
    struct run r = {.d = {c, m}, .sp = sp, .rng = rng, .emit = emit, .arg = arg};
    r.tok = gen_sampler_pick(logits, m->s.V, sp, rng, c->pick);
    emit(r.tok, arg);
    for (r.left = length - 1; r.left > 0;) {
        if (c->len == m->s.T) slide(c, m);
        if (!r.want) r.want = gen_tune_next(&c->tune, decode_count(c, m), &r.timed);
        const int nt = r.want;
        r.want = 0;
        token_begin(&r);
        gen_parallel_n(nt, run_tokens, &r);
    }
}
