/* transformer.c - the autoregressive GPT family over bytes or characters
 * (DESIGN.md section 3).
 *
 *   x = wte[tokens] + wpe[0..T)                              (B, T, C)
 *   L times: x = x + c_proj(attn(c_attn(ln_1 x)))            causal, NH heads
 *            x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2 x)))      MLP 4C, GELU (tanh)
 *   logits = ln_f(x) wte^T                                   head tied to wte
 *   loss = mean cross-entropy of the next token (nats/token)
 *
 * The engine hands the loss B random windows of T+1 tokens of the
 * training text; evaluation scores every held-out token once, in
 * non-overlapping windows of T. AdamW decays every 2-D tensor, the
 * embeddings included (GPT-2/nanoGPT); biases and LayerNorm are not.
 *
 * Sampling runs outside the tape: a KV cache per layer, the kernel table,
 * gen_gemm for a batch of rows and gen_gemv for one, one token at a time
 * after a batched prefill of the prompt.
 * When the context is full the window slides by re-encoding the last T/2
 * tokens at positions 0..T/2-1 (one batched prefill every T/2 tokens), so
 * positions stay within what the model was trained on, the model always
 * sees at least T/2 tokens of context and the cost per token stays flat. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/family.h"
#include "gen/kernels.h"
#include "models/transformer.h"

/* The family's options, by their index in its tables (read with gen_opt_*). */
enum { TF_T_DATA, TF_T_STEPS, TF_T_BATCH, TF_T_LR, TF_T_SCHEDULE, TF_T_WARMUP, TF_T_CLIP,
    TF_T_WEIGHT_DECAY, TF_T_LAYERS, TF_T_HEADS, TF_T_WIDTH, TF_T_CONTEXT, TF_T_DROPOUT,
    TF_T_TOKENIZER, TF_T_EVAL_EVERY, TF_T_SAMPLE_EVERY, TF_T_COUNT };
enum { TF_S_NUM, TF_S_PROMPT, TF_S_PROMPT_FILE, TF_S_LENGTH, TF_S_TEMPERATURE, TF_S_TOP_K,
    TF_S_TOP_P, TF_S_COUNT };
static const struct gen_option transformer_train_options[TF_T_COUNT + 1];
static const struct gen_option transformer_sample_options[TF_S_COUNT + 1];


#define LN_EPS 1e-5f
#define INIT_STD 0.02f

static float *pdata(const struct gen_tf *m, int idx) { return m->ps.data + m->ps.p[idx].offset; }
static struct gen_tensor *ptensor(struct gen_tf *m, int idx) {
    return gen_params_tensor(&m->ps, idx);
}

/* ---- the network ---- */

static int add_param(struct gen_params *ps, const char *name, enum gen_param_kind kind, int ndim,
                     int64_t d0, int64_t d1) {
    return gen_params_add(ps, name, kind, 0, ndim, (int64_t[]){d0, d1});
}

enum gen_status gen_tf_init(struct gen_tf *m, const struct gen_tf_shape *s, float dropout,
                            int with_ema) {
    GEN_ASSERT(s->L >= 1 && s->NH >= 1 && s->C >= 1 && s->C % s->NH == 0 && s->T >= 1 &&
               s->V >= 1);
    memset(m, 0, sizeof *m);
    m->s = *s;
    m->dropout = dropout;
    gen_params_init(&m->ps);
    struct gen_params *ps = &m->ps;
    const int64_t C = s->C;
    m->blk = calloc((size_t)s->L, sizeof *m->blk);
    m->pos = gen_alloc((size_t)s->T * sizeof *m->pos);
    if (!m->blk || !m->pos) return gen_error(GEN_ERR_NOMEM, "out of memory for the model");
    for (int64_t t = 0; t < s->T; t++) m->pos[t] = (int32_t)t;
    m->wte = add_param(ps, "wte.weight", GEN_PARAM_WEIGHT, 2, s->V, C);
    m->wpe = add_param(ps, "wpe.weight", GEN_PARAM_WEIGHT, 2, s->T, C);
    for (int64_t l = 0; l < s->L; l++) {
        struct gen_tf_block *b = &m->blk[l];
        char n[96];
#define P(field, suffix, kind, ndim, d0, d1)                                  \
    (snprintf(n, sizeof n, "h.%lld.%s", (long long)l, suffix),                \
     b->field = add_param(ps, n, kind, ndim, d0, d1))
        P(ln1_w, "ln_1.weight", GEN_PARAM_NODECAY, 1, C, 0);
        P(ln1_b, "ln_1.bias", GEN_PARAM_NODECAY, 1, C, 0);
        P(attn_w, "attn.c_attn.weight", GEN_PARAM_WEIGHT, 2, 3 * C, C);
        P(attn_b, "attn.c_attn.bias", GEN_PARAM_NODECAY, 1, 3 * C, 0);
        P(aproj_w, "attn.c_proj.weight", GEN_PARAM_WEIGHT, 2, C, C);
        P(aproj_b, "attn.c_proj.bias", GEN_PARAM_NODECAY, 1, C, 0);
        P(ln2_w, "ln_2.weight", GEN_PARAM_NODECAY, 1, C, 0);
        P(ln2_b, "ln_2.bias", GEN_PARAM_NODECAY, 1, C, 0);
        P(fc_w, "mlp.c_fc.weight", GEN_PARAM_WEIGHT, 2, 4 * C, C);
        P(fc_b, "mlp.c_fc.bias", GEN_PARAM_NODECAY, 1, 4 * C, 0);
        P(mproj_w, "mlp.c_proj.weight", GEN_PARAM_WEIGHT, 2, C, 4 * C);
        P(mproj_b, "mlp.c_proj.bias", GEN_PARAM_NODECAY, 1, C, 0);
#undef P
    }
    m->lnf_w = add_param(ps, "ln_f.weight", GEN_PARAM_NODECAY, 1, C, 0);
    m->lnf_b = add_param(ps, "ln_f.bias", GEN_PARAM_NODECAY, 1, C, 0);
    return gen_params_finalize(ps, with_ema);
}

void gen_tf_init_weights(struct gen_tf *m, struct gen_rng *r) {
    const float proj_std = INIT_STD / sqrtf(2.0f * (float)m->s.L);
    gen_init_normal(ptensor(m, m->wte), 0.0f, INIT_STD, r);
    gen_init_normal(ptensor(m, m->wpe), 0.0f, INIT_STD, r);
    for (int64_t l = 0; l < m->s.L; l++) {
        const struct gen_tf_block *b = &m->blk[l];
        gen_init_const(ptensor(m, b->ln1_w), 1.0f);
        gen_init_const(ptensor(m, b->ln1_b), 0.0f);
        gen_init_normal(ptensor(m, b->attn_w), 0.0f, INIT_STD, r);
        gen_init_const(ptensor(m, b->attn_b), 0.0f);
        gen_init_normal(ptensor(m, b->aproj_w), 0.0f, proj_std, r);
        gen_init_const(ptensor(m, b->aproj_b), 0.0f);
        gen_init_const(ptensor(m, b->ln2_w), 1.0f);
        gen_init_const(ptensor(m, b->ln2_b), 0.0f);
        gen_init_normal(ptensor(m, b->fc_w), 0.0f, INIT_STD, r);
        gen_init_const(ptensor(m, b->fc_b), 0.0f);
        gen_init_normal(ptensor(m, b->mproj_w), 0.0f, proj_std, r);
        gen_init_const(ptensor(m, b->mproj_b), 0.0f);
    }
    gen_init_const(ptensor(m, m->lnf_w), 1.0f);
    gen_init_const(ptensor(m, m->lnf_b), 0.0f);
}

void gen_tf_free(struct gen_tf *m) {
    gen_params_free(&m->ps);
    gen_tf_cache_free(&m->cache);
    free(m->blk);
    gen_free(m->pos);
    m->blk = NULL;
    m->pos = NULL;
}

static struct gen_tensor *dropout(struct gen_ctx *g, struct gen_tf *m, struct gen_tensor *x) {
    if (m->dropout <= 0.0f) return x;
    /* each dropout of a forward pass its own purpose; each window its own stream */
    return gen_dropout(g, x, m->dropout, m->drop_seed, GEN_TF_RNG_DROPOUT + 16 * m->drop_calls++,
                       m->drop_first);
}

struct gen_tensor *gen_tf_block_fwd(struct gen_ctx *g, struct gen_tf *m, int layer,
                                    struct gen_tensor *x) {
    const struct gen_tf_block *b = &m->blk[layer];
    struct gen_tensor *h = gen_layernorm(g, x, ptensor(m, b->ln1_w), ptensor(m, b->ln1_b), LN_EPS);
    h = gen_linear(g, h, ptensor(m, b->attn_w), ptensor(m, b->attn_b)); /* (B, T, 3C) */
    h = gen_attention(g, h, m->s.NH, 1);                                /* (B, T, C) */
    h = gen_linear(g, h, ptensor(m, b->aproj_w), ptensor(m, b->aproj_b));
    x = gen_add(g, x, dropout(g, m, h));
    h = gen_layernorm(g, x, ptensor(m, b->ln2_w), ptensor(m, b->ln2_b), LN_EPS);
    h = gen_gelu(g, gen_linear(g, h, ptensor(m, b->fc_w), ptensor(m, b->fc_b))); /* (B, T, 4C) */
    h = gen_linear(g, h, ptensor(m, b->mproj_w), ptensor(m, b->mproj_b));
    return gen_add(g, x, dropout(g, m, h));
}

struct gen_tensor *gen_tf_forward(struct gen_ctx *g, struct gen_tf *m, const int32_t *tokens,
                                  int64_t B, int64_t T) {
    GEN_ASSERT(T >= 1 && T <= m->s.T);
    const int64_t C = m->s.C;
    struct gen_tensor *wte = ptensor(m, m->wte);
    struct gen_tensor *x = gen_embedding(g, wte, tokens, 3, (int64_t[]){B, T, C});
    struct gen_tensor *pos = gen_embedding(g, ptensor(m, m->wpe), m->pos, 2, (int64_t[]){T, C});
    x = dropout(g, m, gen_add(g, x, pos));
    for (int l = 0; l < (int)m->s.L; l++) x = gen_tf_block_fwd(g, m, l, x);
    x = gen_layernorm(g, x, ptensor(m, m->lnf_w), ptensor(m, m->lnf_b), LN_EPS);
    return gen_linear(g, x, wte, NULL); /* (B, T, V) */
}

/* ---- the KV cache ---- */

enum gen_status gen_tf_cache_init(struct gen_tf_cache *c, const struct gen_tf *m) {
    memset(c, 0, sizeof *c);
    const int64_t L = m->s.L, C = m->s.C, T = m->s.T, V = m->s.V, hd = C / m->s.NH;
    /* k, v; per-row scratch for up to T rows; scores and probabilities (NH, T, T). */
    const int64_t NH = m->s.NH;
    const int64_t sizes[] = {L * T * C, L * T * C, T * C, T * C, T * C, 3 * T * C, T * C,
                             4 * T * C, 4 * T * C, T, T, NH * T * T, NH * T * T, T * hd, T * hd,
                             T * V, 2 * V};
    float **dst[] = {&c->k, &c->v, &c->x, &c->h, &c->y, &c->qkv, &c->att, &c->fc, &c->act,
                     &c->mean, &c->rstd, &c->s, &c->p, &c->qh, &c->oh, &c->logits, &c->pick};
    const int n = (int)(sizeof sizes / sizeof sizes[0]);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += (sizes[i] + 15) & ~(int64_t)15; /* 64-byte aligned */
    c->block = gen_alloc((size_t)total * sizeof(float));
    c->hist = gen_alloc((size_t)T * sizeof *c->hist);
    if (!c->block || !c->hist) {
        gen_tf_cache_free(c);
        return gen_error(GEN_ERR_NOMEM, "out of memory for the KV cache");
    }
    float *f = c->block;
    for (int i = 0; i < n; i++) {
        *dst[i] = f;
        f += (sizes[i] + 15) & ~(int64_t)15;
    }
    return GEN_OK;
}

void gen_tf_cache_free(struct gen_tf_cache *c) {
    gen_free(c->block);
    gen_free(c->hist);
    memset(c, 0, sizeof *c);
}

/* y (n, OUT) = x (n, IN) w^T + b, as gen_linear computes it. */
static void linear_rows(int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                        const float *b, float *y) {
    for (int64_t r = 0; r < n; r++) memcpy(y + r * out, b, (size_t)out * sizeof(float));
    if (n == 1) gen_gemv(0, out, in, 1.0f, w, in, x, 1.0f, y); /* a GEMM would pack all of w */
    else gen_gemm(0, 1, n, out, in, 1.0f, x, w, 1.0f, y);
}

/* Causal attention of the new rows first..n-1 (positions len+first ..
 * len+n-1) of one layer over the cached keys and values, which already
 * hold all n new rows; row i's output goes to row i - first of att. The
 * scores of all heads go through one softmax call: s, p (NH, rows, tot). */
static void cache_attend(struct gen_tf_cache *c, const struct gen_tf *m, int64_t layer,
                         int64_t first, int64_t n) {
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, NH = m->s.NH, hd = C / NH, T = m->s.T;
    const int64_t len = c->len + first, tot = c->len + n, rows = n - first; /* len: of row 0 */
    const float *q = c->qkv + first * 3 * C;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t h = 0; h < NH; h++) {
        const float *kh = c->k + (layer * NH + h) * T * hd;
        float *s = c->s + h * rows * tot;
        if (rows == 1) { /* s (tot) = k q / sqrt(hd) */
            gen_gemv(0, tot, hd, scale, kh, hd, q + h * hd, 0.0f, s);
            continue;
        }
        for (int64_t i = 0; i < rows; i++) /* s (rows, tot) = q k^T / sqrt(hd), future masked */
            memcpy(c->qh + i * hd, q + i * 3 * C + h * hd, (size_t)hd * sizeof(float));
        gen_gemm(0, 1, rows, tot, hd, scale, c->qh, kh, 0.0f, s);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = len + i + 1; j < tot; j++) s[i * tot + j] = -INFINITY;
    }
    K->softmax_fwd(NH * rows, tot, c->s, c->p);
    for (int64_t h = 0; h < NH; h++) {
        const float *vh = c->v + (layer * NH + h) * T * hd;
        float *p = c->p + h * rows * tot;
        if (rows == 1) { /* o (hd) = v^T p */
            gen_gemv(1, tot, hd, 1.0f, vh, hd, p, 0.0f, c->att + h * hd);
            continue;
        }
        for (int64_t i = 0; i < rows; i++) /* exact zeros where the mask was */
            memset(p + i * tot + len + i + 1, 0, (size_t)(rows - i - 1) * sizeof(float));
        gen_gemm(0, 0, rows, hd, tot, 1.0f, p, vh, 0.0f, c->oh); /* o (rows, hd) = p v */
        for (int64_t i = 0; i < rows; i++)
            memcpy(c->att + i * C + h * hd, c->oh + i * hd, (size_t)hd * sizeof(float));
    }
}

/* Layer l for the n new rows of x: all of them to their keys and values
 * (appended to the cache), rows first..n-1 on through the block. */
static void cache_block(struct gen_tf_cache *c, const struct gen_tf *m, int64_t l, int64_t first,
                        int64_t n) {
    const struct gen_kernels *K = gen_kernels();
    const struct gen_tf_block *b = &m->blk[l];
    const int64_t C = m->s.C, NH = m->s.NH, hd = C / NH, T = m->s.T, len = c->len;
    const int64_t rows = n - first;
    float *x = c->x + first * C; /* (rows, C) */
    K->layernorm_fwd(n, C, c->x, pdata(m, b->ln1_w), pdata(m, b->ln1_b), LN_EPS, c->h, c->mean,
                     c->rstd);
    linear_rows(n, C, 3 * C, c->h, pdata(m, b->attn_w), pdata(m, b->attn_b), c->qkv);
    for (int64_t h = 0; h < NH; h++) { /* append k, v at (layer, head, position) */
        float *kh = c->k + (l * NH + h) * T * hd, *vh = c->v + (l * NH + h) * T * hd;
        for (int64_t i = 0; i < n; i++) {
            const float *row = c->qkv + i * 3 * C;
            memcpy(kh + (len + i) * hd, row + C + h * hd, (size_t)hd * sizeof(float));
            memcpy(vh + (len + i) * hd, row + 2 * C + h * hd, (size_t)hd * sizeof(float));
        }
    }
    cache_attend(c, m, l, first, n);
    linear_rows(rows, C, C, c->att, pdata(m, b->aproj_w), pdata(m, b->aproj_b), c->y);
    K->add(rows * C, x, c->y, x);
    K->layernorm_fwd(rows, C, x, pdata(m, b->ln2_w), pdata(m, b->ln2_b), LN_EPS, c->h, c->mean,
                     c->rstd);
    linear_rows(rows, C, 4 * C, c->h, pdata(m, b->fc_w), pdata(m, b->fc_b), c->fc);
    K->gelu_fwd(rows * 4 * C, c->fc, c->act);
    linear_rows(rows, 4 * C, C, c->act, pdata(m, b->mproj_w), pdata(m, b->mproj_b), c->y);
    K->add(rows * C, x, c->y, x);
}

/* ---- one token, across the threads ---- */

/* Decoding one token streams every weight once; the threads share each
 * product by rows (gen_gemv makes every y_i the same operations whatever
 * rows it is given) and the attention by heads, and meet between them, so
 * the result is the same bits at any thread count. The small row work
 * (norms, residual adds) runs on thread 0. */
struct decode {
    struct gen_tf_cache *c;
    const struct gen_tf *m;
};

/* Rows [lo, hi) of y (out) = w x + b, thread t's share of out. */
static void linear_part(int t, int nt, int64_t in, int64_t out, const float *x, const float *w,
                        const float *b, float *y) {
    int64_t lo, hi;
    gen_split(out, t, nt, 16, &lo, &hi);
    if (hi <= lo) return;
    if (b) memcpy(y + lo, b + lo, (size_t)(hi - lo) * sizeof(float));
    gen_gemv(0, hi - lo, in, 1.0f, w + lo * in, in, x, b ? 1.0f : 0.0f, y + lo);
}

/* The heads [lo, hi) of one layer's attention for the token at position
 * len, whose keys and values are appended first. */
static void decode_heads(struct gen_tf_cache *c, const struct gen_tf *m, int64_t l, int64_t lo,
                         int64_t hi) {
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, NH = m->s.NH, hd = C / NH, T = m->s.T, tot = c->len + 1;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t h = lo; h < hi; h++) {
        float *kh = c->k + (l * NH + h) * T * hd, *vh = c->v + (l * NH + h) * T * hd;
        memcpy(kh + c->len * hd, c->qkv + C + h * hd, (size_t)hd * sizeof(float));
        memcpy(vh + c->len * hd, c->qkv + 2 * C + h * hd, (size_t)hd * sizeof(float));
        float *s = c->s + h * tot, *p = c->p + h * tot;
        gen_gemv(0, tot, hd, scale, kh, hd, c->qkv + h * hd, 0.0f, s);
        K->softmax_fwd(1, tot, s, p);
        gen_gemv(1, tot, hd, 1.0f, vh, hd, p, 0.0f, c->att + h * hd);
    }
}

static void decode_token(void *arg, int t, int nt) {
    const struct decode *d = arg;
    struct gen_tf_cache *c = d->c;
    const struct gen_tf *m = d->m;
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, NH = m->s.NH, L = m->s.L, V = m->s.V;
    for (int64_t l = 0; l < L; l++) {
        const struct gen_tf_block *b = &m->blk[l];
        if (t == 0)
            K->layernorm_fwd(1, C, c->x, pdata(m, b->ln1_w), pdata(m, b->ln1_b), LN_EPS, c->h,
                             c->mean, c->rstd);
        gen_barrier();
        linear_part(t, nt, C, 3 * C, c->h, pdata(m, b->attn_w), pdata(m, b->attn_b), c->qkv);
        gen_barrier();
        int64_t lo, hi;
        gen_split(NH, t, nt, 1, &lo, &hi);
        decode_heads(c, m, l, lo, hi);
        gen_barrier();
        linear_part(t, nt, C, C, c->att, pdata(m, b->aproj_w), pdata(m, b->aproj_b), c->y);
        gen_barrier();
        if (t == 0) {
            K->add(C, c->x, c->y, c->x);
            K->layernorm_fwd(1, C, c->x, pdata(m, b->ln2_w), pdata(m, b->ln2_b), LN_EPS, c->h,
                             c->mean, c->rstd);
        }
        gen_barrier();
        linear_part(t, nt, C, 4 * C, c->h, pdata(m, b->fc_w), pdata(m, b->fc_b), c->fc);
        gen_barrier();
        if (t == 0) K->gelu_fwd(4 * C, c->fc, c->act);
        gen_barrier();
        linear_part(t, nt, 4 * C, C, c->act, pdata(m, b->mproj_w), pdata(m, b->mproj_b), c->y);
        gen_barrier();
        if (t == 0) K->add(C, c->x, c->y, c->x);
    }
    if (t == 0)
        K->layernorm_fwd(1, C, c->x, pdata(m, m->lnf_w), pdata(m, m->lnf_b), LN_EPS, c->h,
                         c->mean, c->rstd);
    gen_barrier();
    linear_part(t, nt, C, V, c->h, pdata(m, m->wte), NULL, c->logits); /* (V) = wte h */
}

const float *gen_tf_cache_feed(struct gen_tf_cache *c, const struct gen_tf *m,
                               const int32_t *tok, int64_t n, int all) {
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, T = m->s.T, V = m->s.V, L = m->s.L;
    GEN_ASSERT(n >= 1 && c->len + n <= T);
    const int64_t len = c->len;
    const float *wte = pdata(m, m->wte), *wpe = pdata(m, m->wpe);
    for (int64_t i = 0; i < n; i++) {
        GEN_ASSERT(tok[i] >= 0 && tok[i] < V);
        K->add(C, wte + (int64_t)tok[i] * C, wpe + (len + i) * C, c->x + i * C);
        c->hist[len + i] = tok[i];
    }
    if (n == 1) {
        struct decode d = {c, m};
        gen_parallel(decode_token, &d);
        c->len = len + 1;
        return c->logits;
    }
    /* Rows whose logits are not wanted need the last layer only for its
     * keys and values: a prefill (a prompt, a slide of the window) skips a
     * quarter of its work in a 4-layer model. */
    const int64_t first = all ? 0 : n - 1, rows = n - first;
    for (int64_t l = 0; l < L; l++) cache_block(c, m, l, l == L - 1 ? first : 0, n);
    c->len = len + n;
    K->layernorm_fwd(rows, C, c->x + first * C, pdata(m, m->lnf_w), pdata(m, m->lnf_b), LN_EPS,
                     c->h, c->mean, c->rstd);
    if (rows == 1) gen_gemv(0, V, C, 1.0f, wte, C, c->h, 0.0f, c->logits); /* (V) = wte h */
    else gen_gemm(0, 1, rows, V, C, 1.0f, c->h, wte, 0.0f, c->logits); /* (rows, V) = h wte^T */
    return c->logits;
}

const float *gen_tf_cache_push(struct gen_tf_cache *c, const struct gen_tf *m,
                               const int32_t *tok, int64_t n) {
    const int64_t T = m->s.T, keep = T / 2;
    const float *logits = NULL;
    GEN_ASSERT(n >= 1);
    while (n > 0) {
        if (c->len == T) { /* slide: re-encode the last T/2 tokens from position 0 */
            memmove(c->hist, c->hist + T - keep, (size_t)keep * sizeof *c->hist);
            c->len = 0;
            if (keep > 0) gen_tf_cache_feed(c, m, c->hist, keep, 0);
        }
        const int64_t k = n < T - c->len ? n : T - c->len;
        logits = gen_tf_cache_feed(c, m, tok, k, 0);
        tok += k;
        n -= k;
    }
    return logits;
}

struct pick {
    float p;
    int32_t i;
};

static int by_prob(const void *a, const void *b) {
    const struct pick *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int32_t gen_tf_pick(const float *logits, int64_t V, const struct gen_tf_sampling *sp,
                    struct gen_rng *rng, void *work) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (sp->temperature <= 0.0f || sp->top_k == 1) return (int32_t)best;
    struct pick *w = work;
    const float inv = 1.0f / sp->temperature, mx = logits[best];
    double sum = 0;
    for (int64_t v = 0; v < V; v++) {
        w[v] = (struct pick){expf((logits[v] - mx) * inv), (int32_t)v};
        sum += w[v].p;
    }
    int64_t k = V;
    if ((sp->top_k > 0 && sp->top_k < V) || sp->top_p < 1.0f) {
        qsort(w, (size_t)V, sizeof *w, by_prob);
        if (sp->top_k > 0 && sp->top_k < V) k = sp->top_k;
        if (sp->top_p < 1.0f) {
            double cum = 0;
            for (int64_t j = 0; j < k; j++) {
                cum += w[j].p / sum;
                if (cum >= sp->top_p) {
                    k = j + 1;
                    break;
                }
            }
        }
        sum = 0;
        for (int64_t j = 0; j < k; j++) sum += w[j].p;
    }
    double u = (double)gen_rng_uniform(rng) * sum;
    for (int64_t j = 0; j < k; j++) {
        u -= w[j].p;
        if (u < 0) return w[j].i;
    }
    for (int64_t j = k - 1; j > 0; j--) /* rounding: the last token with mass */
        if (w[j].p > 0) return w[j].i;
    return w[0].i;
}

void gen_tf_generate(struct gen_tf_cache *c, const struct gen_tf *m, const int32_t *prompt,
                     int64_t P, int64_t length, const struct gen_tf_sampling *sp,
                     struct gen_rng *rng, void (*emit)(int32_t tok, void *arg), void *arg) {
    c->len = 0;
    if (P > m->s.T) prompt += P - m->s.T, P = m->s.T; /* only the last window can matter */
    const float *logits = gen_tf_cache_push(c, m, prompt, P);
    for (int64_t i = 0; i < length; i++) {
        int32_t t = gen_tf_pick(logits, m->s.V, sp, rng, c->pick);
        emit(t, arg);
        if (i + 1 < length) logits = gen_tf_cache_push(c, m, &t, 1);
    }
}


/* ---- evaluation ---- */

/* Tokens per evaluation batch: 32 windows at the default context of 128
 * (a training batch's worth); fewer, longer windows at a longer context,
 * so that scoring never holds more activations than a training step. */
#define EVAL_TOKENS 4096
#define EVAL_MAX_TOKENS (1 << 20) /* cap during training (gen eval: none) */

/* Sum of the next-token losses (nats) over every target of val[0..n) (the
 * first token has none), in non-overlapping windows of T: window k reads
 * val[kT .. kT+T] and scores its T targets; a shorter last window takes
 * the rest. At most max_targets targets are scored (0: all). */
static double val_nats(struct gen_ctx *g, struct gen_tf *m, const int32_t *val, int64_t n,
                       int64_t max_targets, int64_t *scored) {
    const int64_t T = m->s.T;
    int64_t targets = n - 1;
    if (max_targets > 0 && targets > max_targets) targets = max_targets;
    double total = 0;
    int64_t done = 0;
    while (done < targets) {
        const int64_t left = targets - done;
        const int64_t len = left < T ? left : T; /* tokens per window */
        int64_t B = len < T ? 1 : left / T;
        const int64_t most = EVAL_TOKENS / T > 1 ? EVAL_TOKENS / T : 1;
        if (B > most) B = most;
        int32_t *inp = gen_arena_alloc(&g->arena, (size_t)(B * len) * sizeof *inp);
        int32_t *tgt = gen_arena_alloc(&g->arena, (size_t)(B * len) * sizeof *tgt);
        for (int64_t b = 0; b < B; b++) {
            memcpy(inp + b * len, val + done + b * len, (size_t)len * sizeof *inp);
            memcpy(tgt + b * len, val + done + b * len + 1, (size_t)len * sizeof *tgt);
        }
        struct gen_tensor *loss = gen_cross_entropy(g, gen_tf_forward(g, m, inp, B, len), tgt);
        total += (double)loss->data[0] * (double)(B * len);
        done += B * len;
        gen_ctx_reset(g);
    }
    *scored = done;
    return total;
}

/* ---- verbs ---- */

static enum gen_status tf_create(void *model, const struct gen_config *cfg,
                                 const struct gen_data_shape *shape, uint64_t seed,
                                 struct gen_model_info *info) {
    struct gen_tf *m = model;
    const struct gen_tf_shape s = {gen_opt_int(cfg, &transformer_train_options[TF_T_LAYERS]), gen_opt_int(cfg, &transformer_train_options[TF_T_HEADS]),
                                   gen_opt_int(cfg, &transformer_train_options[TF_T_WIDTH]), gen_opt_int(cfg, &transformer_train_options[TF_T_CONTEXT]),
                                   shape->vocab};
    if (s.C % s.NH)
        return gen_error(GEN_ERR_USAGE, "--heads %lld must divide --width %lld", (long long)s.NH,
                         (long long)s.C);
    if (s.V < 1 || s.V > GEN_VOCAB_MAX)
        return gen_error(GEN_ERR_USAGE, "a vocabulary of %lld symbols (at most %d)",
                         (long long)s.V, GEN_VOCAB_MAX);
    const int with_ema = gen_opt_float(cfg, &gen_train_options[GEN_TRAIN_EMA]) > 0;
    enum gen_status st = gen_tf_init(m, &s, (float)gen_opt_float(cfg, &transformer_train_options[TF_T_DROPOUT]), with_ema);
    if (st == GEN_OK) st = gen_tf_cache_init(&m->cache, m);
    if (st != GEN_OK) return st;
    for (int i = 0; i < GEN_TF_N_RNG; i++)
        gen_rng_seed(&m->rng[i], seed * GEN_TF_N_RNG + (uint64_t)i + 1);
    gen_tf_init_weights(m, &m->rng[GEN_TF_RNG_INIT]);
    if (with_ema) gen_ema_copy_in(&m->ps);
    *info = (struct gen_model_info){
        .ps = &m->ps,
        .rngs = m->rng,
        .n_rngs = GEN_TF_N_RNG,
        .context = s.T,
        .n_phases = 1,
        .phase = {{.group = -1,
                   .optim = {.kind = GEN_OPTIM_ADAMW,
                             .lr = (float)gen_opt_float(cfg, &transformer_train_options[TF_T_LR]),
                             .beta1 = 0.9f,
                             .beta2 = 0.99f,
                             .eps = 1e-8f,
                             .weight_decay = (float)gen_opt_float(cfg, &transformer_train_options[TF_T_WEIGHT_DECAY])}}},
        .ema_group = -1,
        .n_fields = 2,
        .fields = {"loss", "bpb"},
        .unit = "tok",
    };
    return GEN_OK;
}

static void tf_destroy(void *model) { gen_tf_free(model); }

/* The mean next-token loss (nats) of b->n windows (N, T + 1); fields:
 * loss, bits per token ("bpb": per byte, or per character of a
 * character vocabulary). */
static struct gen_tensor *tf_loss(void *model, struct gen_ctx *g, const struct gen_batch *b,
                                  int phase, double *fields) {
    (void)phase;
    struct gen_tf *m = model;
    const int64_t N = b->n, T = m->s.T;
    int32_t *inp = gen_arena_alloc(&g->arena, (size_t)(N * T) * sizeof *inp); /* (N, T) */
    int32_t *tgt = gen_arena_alloc(&g->arena, (size_t)(N * T) * sizeof *tgt); /* (N, T) */
    for (int64_t i = 0; i < N; i++) {
        memcpy(inp + i * T, b->tokens + i * (T + 1), (size_t)T * sizeof *inp);
        memcpy(tgt + i * T, b->tokens + i * (T + 1) + 1, (size_t)T * sizeof *tgt);
    }
    m->drop_seed = b->seed, m->drop_first = b->first, m->drop_calls = 0;
    struct gen_tensor *loss = gen_cross_entropy(g, gen_tf_forward(g, m, inp, N, T), tgt);
    fields[0] = loss->data[0];
    fields[1] = loss->data[0] / M_LN2;
    return loss;
}

/* req->n tokens after the prompt, each passed to req->emit as drawn; the
 * training snapshot (opts NULL) samples at temperature 0.8. */
static enum gen_status tf_generate(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                   const struct gen_request *req, struct gen_output *out) {
    (void)g;
    struct gen_tf *m = model;
    struct gen_tf_sampling sp = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f};
    if (opts)
        sp = (struct gen_tf_sampling){.temperature = (float)gen_opt_float(opts, &transformer_sample_options[TF_S_TEMPERATURE]),
                                      .top_k = gen_opt_int(opts, &transformer_sample_options[TF_S_TOP_K]),
                                      .top_p = (float)gen_opt_float(opts, &transformer_sample_options[TF_S_TOP_P])};
    struct gen_rng rng;
    gen_rng_seed(&rng, req->seed);
    gen_tf_generate(&m->cache, m, req->prompt, req->n_prompt, req->n, &sp, &rng, req->emit,
                    req->emit_arg);
    out->n_tokens = req->n;
    return GEN_OK;
}

/* Validation loss (nats per token), bits per token (as in the loss) and, in gen eval, the
 * perplexity; during training at most EVAL_MAX_TOKENS are scored. */
static enum gen_status tf_evaluate(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                   const struct gen_dataset *data, struct gen_metrics *out) {
    if (data->n_tokens < 2)
        return gen_error(GEN_ERR_FORMAT,
                         "the validation split has %lld tokens; scoring needs at least 2",
                         (long long)data->n_tokens);
    int64_t n;
    const double nats =
        val_nats(g, model, data->tokens, data->n_tokens, opts ? 0 : EVAL_MAX_TOKENS, &n);
    const double loss = nats / (double)n;
    out->f[out->n++] = (struct gen_field){"val_loss", loss};
    out->f[out->n++] = (struct gen_field){"val_bpb", loss / M_LN2};
    if (opts) {
        out->f[out->n++] = (struct gen_field){"perplexity", exp(loss)};
        out->f[out->n++] = (struct gen_field){"val_tokens", (double)n};
    }
    return GEN_OK;
}

/* ---- options ---- */

static const struct gen_option transformer_train_options[TF_T_COUNT + 1] = {
    [TF_T_DATA] = GEN_STR_OPT("data", "data/moby-dick.txt", "training text: a .txt file or a folder of them"),
    [TF_T_STEPS] = GEN_INT_RUN_OPT("steps", "5000", 1, GEN_OPT_NO_MAX, "optimiser steps (--epochs counts passes instead)"),
    [TF_T_BATCH] = GEN_INT_OPT("batch", "32", 1, 65536, "windows per batch"),
    [TF_T_LR] = GEN_FLOAT_RUN_OPT("lr", "1e-3", 0, 10, "AdamW peak learning rate"),
    [TF_T_SCHEDULE] = GEN_CHOICE_OPT("schedule", "cosine", "constant|cosine", "after the warm-up: cosine to --lr-min, or constant"),
    [TF_T_WARMUP] = GEN_INT_RUN_OPT("warmup", "100", 0, GEN_OPT_NO_MAX, "steps of linear warm-up to --lr"),
    [TF_T_CLIP] = GEN_FLOAT_RUN_OPT("clip", "1", 0, GEN_OPT_NO_MAX, "largest global gradient norm (0: no clipping)"),
    [TF_T_WEIGHT_DECAY] = GEN_FLOAT_RUN_OPT("weight-decay", "0.1", 0, 10, "AdamW weight decay of the 2-D weights"),
    [TF_T_LAYERS] = GEN_INT_OPT("layers", "4", 1, 256, "transformer blocks"),
    [TF_T_HEADS] = GEN_INT_OPT("heads", "4", 1, 256, "attention heads (must divide --width)"),
    [TF_T_WIDTH] = GEN_INT_OPT("width", "128", 1, 65536, "embedding width"),
    [TF_T_CONTEXT] = GEN_INT_OPT("context", "128", 1, 65536, "context length in tokens"),
    [TF_T_DROPOUT] = GEN_FLOAT_OPT("dropout", "0", 0, 0.95, "dropout probability"),
    [TF_T_TOKENIZER] = GEN_CHOICE_OPT("tokenizer", "byte", "byte|char", "byte (256 symbols) or char (the corpus's characters)"),
    [TF_T_EVAL_EVERY] = GEN_INT_RUN_OPT("eval-every", "500", 0, GEN_OPT_NO_MAX, "validation loss every N steps (0: only at the end)"),
    [TF_T_SAMPLE_EVERY] = GEN_INT_RUN_OPT("sample-every", "1000", 0, GEN_OPT_NO_MAX,
                    "write OUT/samples-STEP.txt (300 sampled bytes) every N steps (0: only at the end)"),
    [TF_T_COUNT] = GEN_OPT_END,
};

static const struct gen_option transformer_sample_options[TF_S_COUNT + 1] = {
    [TF_S_NUM] = {"num", 'n', GEN_OPT_INT, "1", "number of samples", 1, 100000, NULL, 0},
    [TF_S_PROMPT] = GEN_STR_OPT("prompt", NULL, "text the samples continue"),
    [TF_S_PROMPT_FILE] = GEN_STR_OPT("prompt-file", NULL, "read the prompt from a file"),
    [TF_S_LENGTH] = GEN_INT_OPT("length", "400", 1, 100000000, "tokens to generate"),
    [TF_S_TEMPERATURE] = GEN_FLOAT_OPT("temperature", "1.0", 0, 100, "softmax temperature (0: greedy)"),
    [TF_S_TOP_K] = GEN_INT_OPT("top-k", "0", 0, GEN_OPT_NO_MAX, "sample from the k likeliest tokens (0: all)"),
    [TF_S_TOP_P] = GEN_FLOAT_OPT("top-p", "1.0", 0, 1, "nucleus sampling mass (1: off)"),
    [TF_S_COUNT] = GEN_OPT_END,
};

const struct gen_family gen_family_transformer = {
    .name = "transformer",
    .summary = "GPT-style autoregressive transformer over bytes or characters",
    .data = GEN_DATA_TEXT,
    .train_options = transformer_train_options,
    .sample_options = transformer_sample_options,
    .size = sizeof(struct gen_tf),
    .create = tf_create,
    .destroy = tf_destroy,
    .loss = tf_loss,
    .generate = tf_generate,
    .evaluate = tf_evaluate,
};
