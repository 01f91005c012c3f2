/* transformer.c - the autoregressive GPT family over bytes or characters
 * (DESIGN.md section 3).
 *
 *   x = wte[tokens] + wpe[0..T)                              (B, T, C)
 *   L times: x = x + c_proj(attn(c_attn(ln_1 x)))            causal, NH heads
 *            x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2 x)))      MLP 4C, GELU (tanh)
 *   logits = ln_f(x) wte^T                                   head tied to wte
 *   loss = mean cross-entropy of the next token (nats/token)
 *
 * Training draws B random windows of T+1 tokens from the first 90 % of the
 * text (the data rng lives in the checkpoint); validation scores every
 * token of the last 10 % once, in non-overlapping windows of T. AdamW
 * decays every 2-D tensor, the embeddings included (GPT-2/nanoGPT);
 * biases and LayerNorm are not decayed.
 *
 * Sampling runs outside the tape: a KV cache per layer, the kernel table
 * and gen_gemm, one token at a time after a batched prefill of the prompt.
 * When the context is full the window slides by re-encoding the last T/2
 * tokens at positions 0..T/2-1 (one batched prefill every T/2 tokens), so
 * positions stay within what the model was trained on, the model always
 * sees at least T/2 tokens of context and the cost per token stays flat. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen/data.h"
#include "gen/kernels.h"
#include "gen/trainer.h"
#include "models/transformer.h"

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

enum gen_status gen_tf_init(struct gen_tf *m, const struct gen_tf_shape *s, float dropout) {
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
    return gen_params_finalize(ps, 0);
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
    free(m->blk);
    gen_free(m->pos);
    m->blk = NULL;
    m->pos = NULL;
}

static struct gen_tensor *dropout(struct gen_ctx *g, struct gen_tf *m, struct gen_tensor *x) {
    if (m->dropout <= 0.0f) return x;
    GEN_ASSERT(m->drop_rng);
    return gen_dropout(g, x, m->dropout, m->drop_rng);
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
                             T * V};
    float **dst[] = {&c->k, &c->v, &c->x, &c->h, &c->y, &c->qkv, &c->att, &c->fc, &c->act,
                     &c->mean, &c->rstd, &c->s, &c->p, &c->qh, &c->oh, &c->logits};
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

/* One row at a time is a matrix-vector product. gen_gemm has no such
 * case, and OpenBLAS's sgemm (0.3.21) packs the whole weight matrix on
 * every call when M or N is 1: 3-5x slower than sgemv at these sizes
 * (27 us against 5.5 us for 384 x 128), so batch-1 decoding calls sgemv
 * here: y (OUT) = alpha W x + beta y with W (OUT, IN), or with `trans`
 * alpha W^T x + beta y with W (IN, OUT). */
static void matvec(int trans, int64_t out, int64_t in, float alpha, const float *w, const float *x,
                   float beta, float *y) {
    if (trans)
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)in, (blasint)out, alpha, w, (blasint)out,
                    x, 1, beta, y, 1);
    else
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)out, (blasint)in, alpha, w, (blasint)in,
                    x, 1, beta, y, 1);
}

/* y (n, OUT) = x (n, IN) w^T + b, as gen_linear computes it. */
static void linear_rows(int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                        const float *b, float *y) {
    for (int64_t r = 0; r < n; r++) memcpy(y + r * out, b, (size_t)out * sizeof(float));
    if (n == 1) matvec(0, out, in, 1.0f, w, x, 1.0f, y);
    else gen_gemm(0, 1, n, out, in, 1.0f, x, w, 1.0f, y);
}

/* Causal attention of n new rows (positions len..len+n-1) of one layer
 * over the cached keys and values, which already hold the new rows. The
 * scores of all heads go through one softmax call: s, p (NH, n, tot). */
static void cache_attend(struct gen_tf_cache *c, const struct gen_tf *m, int64_t layer,
                         int64_t n) {
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, NH = m->s.NH, hd = C / NH, T = m->s.T;
    const int64_t len = c->len, tot = len + n;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t h = 0; h < NH; h++) {
        const float *kh = c->k + (layer * NH + h) * T * hd;
        float *s = c->s + h * n * tot;
        if (n == 1) { /* s (tot) = k q / sqrt(hd) */
            matvec(0, tot, hd, scale, kh, c->qkv + h * hd, 0.0f, s);
            continue;
        }
        for (int64_t i = 0; i < n; i++) /* s (n, tot) = q k^T / sqrt(hd), future masked */
            memcpy(c->qh + i * hd, c->qkv + i * 3 * C + h * hd, (size_t)hd * sizeof(float));
        gen_gemm(0, 1, n, tot, hd, scale, c->qh, kh, 0.0f, s);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = len + i + 1; j < tot; j++) s[i * tot + j] = -INFINITY;
    }
    K->softmax_fwd(NH * n, tot, c->s, c->p);
    for (int64_t h = 0; h < NH; h++) {
        const float *vh = c->v + (layer * NH + h) * T * hd;
        float *p = c->p + h * n * tot;
        if (n == 1) { /* o (hd) = v^T p */
            matvec(1, hd, tot, 1.0f, vh, p, 0.0f, c->att + h * hd);
            continue;
        }
        for (int64_t i = 0; i < n; i++) /* exact zeros where the mask was */
            memset(p + i * tot + len + i + 1, 0, (size_t)(n - i - 1) * sizeof(float));
        gen_gemm(0, 0, n, hd, tot, 1.0f, p, vh, 0.0f, c->oh); /* o (n, hd) = p v */
        for (int64_t i = 0; i < n; i++)
            memcpy(c->att + i * C + h * hd, c->oh + i * hd, (size_t)hd * sizeof(float));
    }
}

const float *gen_tf_cache_feed(struct gen_tf_cache *c, const struct gen_tf *m,
                               const int32_t *tok, int64_t n, int all) {
    const struct gen_kernels *K = gen_kernels();
    const int64_t C = m->s.C, NH = m->s.NH, hd = C / NH, T = m->s.T, V = m->s.V;
    GEN_ASSERT(n >= 1 && c->len + n <= T);
    const int64_t len = c->len;
    const float *wte = pdata(m, m->wte), *wpe = pdata(m, m->wpe);
    for (int64_t i = 0; i < n; i++) {
        GEN_ASSERT(tok[i] >= 0 && tok[i] < V);
        K->add(C, wte + (int64_t)tok[i] * C, wpe + (len + i) * C, c->x + i * C);
        c->hist[len + i] = tok[i];
    }
    for (int64_t l = 0; l < m->s.L; l++) {
        const struct gen_tf_block *b = &m->blk[l];
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
        cache_attend(c, m, l, n);
        linear_rows(n, C, C, c->att, pdata(m, b->aproj_w), pdata(m, b->aproj_b), c->y);
        K->add(n * C, c->x, c->y, c->x);
        K->layernorm_fwd(n, C, c->x, pdata(m, b->ln2_w), pdata(m, b->ln2_b), LN_EPS, c->h, c->mean,
                         c->rstd);
        linear_rows(n, C, 4 * C, c->h, pdata(m, b->fc_w), pdata(m, b->fc_b), c->fc);
        K->gelu_fwd(n * 4 * C, c->fc, c->act);
        linear_rows(n, 4 * C, C, c->act, pdata(m, b->mproj_w), pdata(m, b->mproj_b), c->y);
        K->add(n * C, c->x, c->y, c->x);
    }
    c->len = len + n;
    const int64_t first = all ? 0 : n - 1, rows = n - first;
    K->layernorm_fwd(rows, C, c->x + first * C, pdata(m, m->lnf_w), pdata(m, m->lnf_b), LN_EPS,
                     c->h, c->mean, c->rstd);
    if (rows == 1) matvec(0, V, C, 1.0f, wte, c->h, 0.0f, c->logits); /* (V) = wte h */
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
    struct pick work[256];
    GEN_ASSERT(m->s.V <= 256);
    c->len = 0;
    if (P > m->s.T) prompt += P - m->s.T, P = m->s.T; /* only the last window can matter */
    const float *logits = gen_tf_cache_push(c, m, prompt, P);
    for (int64_t i = 0; i < length; i++) {
        int32_t t = gen_tf_pick(logits, m->s.V, sp, rng, work);
        emit(t, arg);
        if (i + 1 < length) logits = gen_tf_cache_push(c, m, &t, 1);
    }
}

/* ---- vocabularies ---- */

void gen_tf_vocab_bytes(struct gen_tf_vocab *voc) {
    voc->V = 256;
    for (int b = 0; b < 256; b++) voc->byte[b] = (uint8_t)b, voc->id[b] = (int16_t)b;
}

static void vocab_index(struct gen_tf_vocab *voc) {
    for (int b = 0; b < 256; b++) voc->id[b] = -1;
    for (int i = 0; i < voc->V; i++) voc->id[voc->byte[i]] = (int16_t)i;
}

void gen_tf_vocab_of_text(struct gen_tf_vocab *voc, const uint8_t *text, int64_t n) {
    char seen[256] = {0};
    for (int64_t i = 0; i < n; i++) seen[text[i]] = 1;
    voc->V = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) voc->byte[voc->V++] = (uint8_t)b;
    vocab_index(voc);
}

void gen_tf_vocab_hex(const struct gen_tf_vocab *voc, char *buf) {
    for (int i = 0; i < voc->V; i++) snprintf(buf + 2 * i, 3, "%02x", voc->byte[i]);
    buf[2 * voc->V] = 0;
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

int gen_tf_vocab_parse(struct gen_tf_vocab *voc, const char *hex) {
    size_t n = strlen(hex);
    if (n == 0 || n % 2 || n > 512) return 0;
    voc->V = (int)(n / 2);
    for (int i = 0; i < voc->V; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        voc->byte[i] = (uint8_t)(16 * hi + lo);
        if (i > 0 && voc->byte[i] <= voc->byte[i - 1]) return 0;
    }
    vocab_index(voc);
    return 1;
}

int64_t gen_tf_encode(const struct gen_tf_vocab *voc, const uint8_t *bytes, int64_t n,
                      int32_t *ids) {
    for (int64_t i = 0; i < n; i++) {
        int id = voc->id[bytes[i]];
        if (id < 0) return i;
        ids[i] = id;
    }
    return -1;
}

/* "0x7a ('z')" or "0x0a" for a byte in messages. */
static const char *byte_name(uint8_t b, char *buf, size_t size) {
    if (b >= 0x20 && b < 0x7f && b != '\'')
        snprintf(buf, size, "0x%02x ('%c')", b, b);
    else
        snprintf(buf, size, "0x%02x", b);
    return buf;
}

/* ---- data and evaluation ---- */

enum { RNG_INIT, RNG_DATA, RNG_DROPOUT, N_RNG };

/* The training split is the first 90 % of the tokens, the rest validates. */
static int64_t train_split(int64_t n) { return n / 10 * 9 + n % 10 * 9 / 10; }

#define EVAL_WINDOWS 32            /* windows per evaluation batch       */
#define EVAL_MAX_TOKENS (1 << 20)  /* cap during training (gen eval: none) */

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
        const int64_t len = left < T ? left : T;                   /* tokens per window */
        int64_t B = len < T ? 1 : left / T;
        if (B > EVAL_WINDOWS) B = EVAL_WINDOWS;
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

/* ---- training ---- */

struct tf_train {
    struct gen_tf net;
    struct gen_tf_vocab voc;
    char vocab_hex[513];
    struct gen_kv meta[1];
    struct gen_text text;
    int32_t *tok; /* (n_tok) the whole text as token ids */
    int64_t n_tok, n_train;
    int64_t batch;
    struct gen_rng rng[N_RNG];
    struct gen_optim opt;
    struct gen_schedule sched;
    struct gen_tf_cache cache; /* for the text snapshots */
};

static enum gen_status tf_step(void *model, struct gen_ctx *g, int64_t step, const int32_t *idx,
                               int count, double *fields) {
    (void)idx, (void)count;
    struct tf_train *r = model;
    struct gen_tf *m = &r->net;
    const double t0 = gen_run_now();
    const int64_t B = r->batch, T = m->s.T;
    int32_t *inp = gen_arena_alloc(&g->arena, (size_t)(B * T) * sizeof *inp); /* (B, T) */
    int32_t *tgt = gen_arena_alloc(&g->arena, (size_t)(B * T) * sizeof *tgt); /* (B, T) */
    for (int64_t b = 0; b < B; b++) {
        const int64_t s = (int64_t)gen_rng_below(&r->rng[RNG_DATA], (uint64_t)(r->n_train - T));
        memcpy(inp + b * T, r->tok + s, (size_t)T * sizeof *inp);
        memcpy(tgt + b * T, r->tok + s + 1, (size_t)T * sizeof *tgt);
    }
    struct gen_tensor *loss = gen_cross_entropy(g, gen_tf_forward(g, m, inp, B, T), tgt);
    gen_params_zero_grad(&m->ps);
    gen_backward(g, loss);
    const double norm = gen_clip_grad_norm(&m->ps, -1, 1.0);
    const float lr = gen_schedule_lr(&r->sched, step);
    gen_optim_step(&r->opt, &m->ps, -1, lr);
    const double dt = gen_run_now() - t0;
    fields[0] = loss->data[0];
    fields[1] = loss->data[0] / M_LN2;
    fields[2] = lr;
    fields[3] = norm;
    fields[4] = dt > 0 ? (double)(B * T) / dt : 0;
    return GEN_OK;
}

static enum gen_status tf_evaluate(void *model, struct gen_ctx *g, double *fields) {
    struct tf_train *r = model;
    int64_t n;
    double nats = val_nats(g, &r->net, r->tok + r->n_train, r->n_tok - r->n_train,
                           EVAL_MAX_TOKENS, &n);
    fields[0] = nats / (double)n;
    fields[1] = nats / (double)n / M_LN2; /* one token is one byte in both tokenizers */
    return GEN_OK;
}

struct text_sink {
    const struct gen_tf_vocab *voc;
    FILE *f;
    int flush;
    int64_t count;
};

static void emit_byte(int32_t tok, void *arg) {
    struct text_sink *s = arg;
    fputc(s->voc->byte[tok], s->f);
    if (s->flush) fflush(s->f);
    s->count++;
}

/* The start token when there is no prompt: a newline if the vocabulary has
 * one (text after a line break), else its first symbol. Not printed. */
static int32_t start_token(const struct gen_tf_vocab *voc) {
    return voc->id['\n'] >= 0 ? voc->id['\n'] : 0;
}

#define SNAPSHOT_SEED 20240601u
#define SNAPSHOT_LENGTH 300

/* RUN/samples-STEP.txt: 300 tokens after a newline, temperature 0.8,
 * from a fixed seed, so snapshots of one run can be compared. */
static enum gen_status tf_snapshot(void *model, struct gen_ctx *g, const char *dir, int64_t step) {
    (void)g;
    struct tf_train *r = model;
    char path[4096];
    snprintf(path, sizeof path, "%s/samples-%08lld.txt", dir, (long long)step);
    FILE *f = fopen(path, "wb");
    if (!f) return gen_error(GEN_ERR_IO, "%s: cannot create", path);
    struct gen_rng rng;
    gen_rng_seed(&rng, SNAPSHOT_SEED);
    const struct gen_tf_sampling sp = {0.8f, 0, 1.0f};
    struct text_sink sink = {&r->voc, f, 0, 0};
    int32_t start = start_token(&r->voc);
    gen_tf_generate(&r->cache, &r->net, &start, 1, SNAPSHOT_LENGTH, &sp, &rng, emit_byte, &sink);
    fputc('\n', f);
    if (fclose(f) != 0) return gen_error(GEN_ERR_IO, "%s: write failed", path);
    return GEN_OK;
}

static enum gen_status load_text(struct gen_text *t, const char *path) {
    enum gen_status st = gen_text_load(path, t);
    if (st != GEN_OK && access(path, F_OK) != 0)
        return gen_error(GEN_ERR_IO, "%s: no such text file (run scripts/fetch-data.sh, or give --data FILE)",
                         path);
    return st;
}

/* The model's config: the options plus the vocabulary size. */
static char *model_config(const struct gen_config *cfg, int64_t V) {
    char *s = gen_config_to_json(cfg);
    cJSON *o = cJSON_Parse(s);
    free(s);
    cJSON_AddNumberToObject(o, "vocab_size", (double)V);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* A resumed run must have the model and vocabulary it was saved with;
 * tensor shapes are checked on load, the rest here. */
static enum gen_status check_resume(const char *path, const struct gen_tf *m,
                                    const char *tokenizer, const char *vocab_hex) {
    struct gen_ckpt_meta meta = {0};
    cJSON *c = NULL;
    enum gen_status st = gen_ckpt_config(path, "transformer", &c);
    if (st != GEN_OK) return st;
    if (gen_json_num(c, "heads", 0) != (double)m->s.NH)
        st = gen_error(GEN_ERR_FORMAT, "%s: the checkpoint has --heads %g, not %lld", path,
                       gen_json_num(c, "heads", 0), (long long)m->s.NH);
    else if (strcmp(gen_json_str(c, "tokenizer", "byte"), tokenizer))
        st = gen_error(GEN_ERR_FORMAT, "%s: the checkpoint has --tokenizer %s, not %s", path,
                       gen_json_str(c, "tokenizer", "byte"), tokenizer);
    cJSON_Delete(c);
    if (st != GEN_OK || !vocab_hex) return st;
    if ((st = gen_ckpt_read_meta(path, &meta)) != GEN_OK) return st;
    const char *v = gen_ckpt_meta_get(&meta, "vocab");
    if (!v || strcmp(v, vocab_hex))
        st = gen_error(GEN_ERR_FORMAT, "%s: its character vocabulary differs from this text's (trained on other data?)",
                       path);
    gen_ckpt_meta_free(&meta);
    return st;
}

static void tf_train_free(struct tf_train *r) {
    gen_tf_free(&r->net);
    gen_tf_cache_free(&r->cache);
    gen_text_free(&r->text);
    gen_free(r->tok);
}

static int tf_train(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct tf_train r;
    memset(&r, 0, sizeof r);
    int rc = 1;
    char *config = NULL;
    const char *data = gen_config_str(cfg, "data");
    const char *tokenizer = gen_config_str(cfg, "tokenizer");
    const int is_char = !strcmp(tokenizer, "char");
    struct gen_tf_shape s = {gen_config_int(cfg, "layers"), gen_config_int(cfg, "heads"),
                             gen_config_int(cfg, "width"), gen_config_int(cfg, "context"), 256};
    if (s.C % s.NH) {
        gen_error(GEN_ERR_USAGE, "--heads %lld must divide --width %lld", (long long)s.NH,
                  (long long)s.C);
        return 2;
    }
    if (load_text(&r.text, data) != GEN_OK) goto out;
    if (is_char) gen_tf_vocab_of_text(&r.voc, r.text.bytes, r.text.n);
    else gen_tf_vocab_bytes(&r.voc);
    s.V = r.voc.V;
    r.n_tok = r.text.n;
    r.n_train = train_split(r.n_tok);
    if (r.n_train < s.T + 1 || r.n_tok - r.n_train < 2) {
        gen_error(GEN_ERR_FORMAT, "%s: %lld bytes is too short for --context %lld (the first 90%% "
                  "must hold a window of %lld bytes and the last 10%% at least 2)",
                  data, (long long)r.text.n, (long long)s.T, (long long)(s.T + 1));
        goto out;
    }
    r.tok = gen_alloc((size_t)r.n_tok * sizeof *r.tok);
    if (!r.tok) goto out;
    gen_tf_encode(&r.voc, r.text.bytes, r.n_tok, r.tok);

    const uint64_t seed = (uint64_t)gen_config_int(cfg, "seed");
    for (int i = 0; i < N_RNG; i++) gen_rng_seed(&r.rng[i], seed * N_RNG + (uint64_t)i + 1);
    if (gen_tf_init(&r.net, &s, (float)gen_config_float(cfg, "dropout")) != GEN_OK ||
        gen_tf_cache_init(&r.cache, &r.net) != GEN_OK)
        goto out;
    r.net.drop_rng = &r.rng[RNG_DROPOUT];
    gen_tf_init_weights(&r.net, &r.rng[RNG_INIT]);

    r.batch = gen_config_int(cfg, "batch");
    int64_t steps = gen_config_int(cfg, "steps");
    if (gen_config_is_set(cfg, "epochs")) { /* passes over the training tokens */
        const double per_step = (double)(r.batch * s.T);
        steps = (int64_t)ceil((double)gen_config_int(cfg, "epochs") * (double)r.n_train / per_step);
    }
    const float lr = (float)gen_config_float(cfg, "lr");
    r.opt = (struct gen_optim){GEN_OPTIM_ADAMW, lr, 0.9f, 0.99f, 1e-8f, 0.1f, 0.0f};
    r.sched = (struct gen_schedule){GEN_SCHED_WARMUP_COSINE, lr, 1e-4f < lr ? 1e-4f : lr, 100,
                                    steps};
    config = model_config(cfg, s.V);
    int n_meta = 0;
    if (is_char) {
        gen_tf_vocab_hex(&r.voc, r.vocab_hex);
        r.meta[n_meta++] = (struct gen_kv){"vocab", r.vocab_hex};
    }
    const char *resume = gen_config_flag(cfg, "resume") ? gen_config_str(cfg, "resume") : NULL;
    if (resume && check_resume(resume, &r.net, tokenizer, is_char ? r.vocab_hex : NULL) != GEN_OK)
        goto out;

    struct gen_trainer_spec spec = {
        .family = "transformer",
        .model = &r,
        .ps = &r.net.ps,
        .rngs = r.rng,
        .n_rngs = N_RNG,
        .n_examples = 0,
        .steps = steps,
        .items_per_step = r.batch * s.T,
        .unit = "tok",
        .log_every = gen_config_int(cfg, "log-every"),
        .eval_every = gen_config_int(cfg, "eval-every"),
        .sample_every = gen_config_int(cfg, "sample-every"), /* a text sample: cheap */
        .ckpt_every = gen_config_int(cfg, "ckpt-every"),
        .resume = resume,
        .config_json = config,
        .step = tf_step,
        .field_names = {"loss", "bpb", "lr", "grad_norm", "tok_per_s"},
        .n_fields = 5,
        .evaluate = tf_evaluate,
        .eval_names = {"val_loss", "val_bpb"},
        .n_eval = 2,
        .snapshot = tf_snapshot,
        .extra_meta = r.meta,
        .n_extra_meta = n_meta,
    };
    if (!run->quiet)
        fprintf(stderr, "transformer: %lld parameters (%lld layers, %lld heads, width %lld, "
                "context %lld, %s vocabulary of %lld); %lld training and %lld validation tokens; "
                "%lld steps\n",
                (long long)gen_params_count(&r.net.ps), (long long)s.L, (long long)s.NH,
                (long long)s.C, (long long)s.T, tokenizer, (long long)s.V, (long long)r.n_train,
                (long long)(r.n_tok - r.n_train), (long long)steps);
    rc = gen_trainer_run(run, &spec);
out:
    free(config);
    tf_train_free(&r);
    return rc;
}

/* ---- loading a checkpoint ---- */

/* Builds the model a checkpoint describes and loads its weights; the
 * vocabulary comes from the config (byte) or the "vocab" metadata (char). */
static enum gen_status tf_load(struct gen_tf *m, struct gen_tf_vocab *voc, const char *path) {
    cJSON *c = NULL;
    enum gen_status st = gen_ckpt_config(path, "transformer", &c);
    if (st != GEN_OK) return st;
    struct gen_tf_shape s = {(int64_t)gen_json_num(c, "layers", 0),
                             (int64_t)gen_json_num(c, "heads", 0),
                             (int64_t)gen_json_num(c, "width", 0),
                             (int64_t)gen_json_num(c, "context", 0),
                             (int64_t)gen_json_num(c, "vocab_size", 0)};
    const int is_char = !strcmp(gen_json_str(c, "tokenizer", "byte"), "char");
    cJSON_Delete(c);
    if (s.L < 1 || s.L > 256 || s.NH < 1 || s.NH > 256 || s.C < 1 || s.C > 65536 ||
        s.C % s.NH || s.T < 1 || s.T > 65536 || s.V < 1 || s.V > 256)
        return gen_error(GEN_ERR_FORMAT, "%s: bad model shape in the config metadata", path);
    if (is_char) {
        struct gen_ckpt_meta meta = {0};
        if ((st = gen_ckpt_read_meta(path, &meta)) != GEN_OK) return st;
        const char *hex = gen_ckpt_meta_get(&meta, "vocab");
        int ok = hex && gen_tf_vocab_parse(voc, hex) && voc->V == s.V;
        gen_ckpt_meta_free(&meta);
        if (!ok)
            return gen_error(GEN_ERR_FORMAT, "%s: missing or bad \"vocab\" metadata for the char tokenizer",
                             path);
    } else {
        if (s.V != 256)
            return gen_error(GEN_ERR_FORMAT, "%s: a byte model must have vocab_size 256, not %lld",
                             path, (long long)s.V);
        gen_tf_vocab_bytes(voc);
    }
    if ((st = gen_tf_init(m, &s, 0.0f)) != GEN_OK) return st;
    return gen_ckpt_load(path, &m->ps, "transformer", 0, NULL);
}

/* ---- sample ---- */

struct prompt {
    struct gen_text file;
    const uint8_t *bytes;
    int64_t n;
    int32_t *ids; /* (max(n, 1)) */
    int64_t n_ids;
};

/* Reads --prompt or --prompt-file and maps it to token ids; no prompt
 * gives the start token alone (not printed). */
static int read_prompt(const struct gen_config *cfg, const struct gen_tf_vocab *voc,
                       struct prompt *p) {
    const char *text = gen_config_str(cfg, "prompt"), *file = gen_config_str(cfg, "prompt-file");
    if (text && file) {
        gen_error(GEN_ERR_USAGE, "--prompt and --prompt-file cannot be used together");
        return 2;
    }
    if (file) {
        if (gen_text_load(file, &p->file) != GEN_OK) return 1;
        p->bytes = p->file.bytes, p->n = p->file.n;
    } else if (text) {
        p->bytes = (const uint8_t *)text, p->n = (int64_t)strlen(text);
    }
    p->ids = gen_alloc((size_t)(p->n > 0 ? p->n : 1) * sizeof *p->ids);
    if (!p->ids) return 1;
    if (p->n == 0) {
        p->ids[0] = start_token(voc);
        p->n_ids = 1;
        return 0;
    }
    const int64_t bad = gen_tf_encode(voc, p->bytes, p->n, p->ids);
    if (bad >= 0) {
        char name[32];
        byte_name(p->bytes[bad], name, sizeof name);
        if (file)
            gen_error(GEN_ERR_FORMAT, "%s: byte %s at offset %lld is not in the model's character vocabulary",
                      file, name, (long long)bad);
        else
            gen_error(GEN_ERR_USAGE, "--prompt: byte %s at offset %lld is not in the model's character vocabulary",
                      name, (long long)bad);
        return file ? 1 : 2;
    }
    p->n_ids = p->n;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80) return s[0] ? 1 : 0;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07u;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* A copy of bytes[0..n) for a JSON string: valid UTF-8 kept, any other
 * byte (and NUL) replaced by U+FFFD. Caller frees; NULL without memory. */
static char *valid_utf8(const char *bytes, size_t n) {
    const unsigned char *s = (const unsigned char *)bytes;
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (k) {
            memcpy(o, s + i, k);
            o += k, i += k;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3, i++;
        }
    }
    *o = 0;
    return out;
}

static int tf_sample(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_tf m;
    struct gen_tf_vocab voc;
    struct gen_tf_cache cache = {0};
    struct prompt pr = {0};
    memset(&m, 0, sizeof m);
    FILE *out = stdout;
    int rc = 1;
    const char *ckpt = gen_config_str(cfg, "ckpt"), *path = gen_config_str(cfg, "output");
    /* Decoding one token at a time is latency-bound: one thread is fastest
     * (2 threads measured 5-8x slower, all in OpenMP hand-offs). */
    if (!gen_config_is_set(cfg, "threads")) gen_threads_init(1);
    if (tf_load(&m, &voc, ckpt) != GEN_OK || gen_tf_cache_init(&cache, &m) != GEN_OK) goto done;
    if ((rc = read_prompt(cfg, &voc, &pr)) != 0) goto done;
    rc = 1;
    if (path && !(out = fopen(path, "wb"))) {
        gen_error(GEN_ERR_IO, "%s: cannot create", path);
        out = stdout;
        goto done;
    }
    const struct gen_tf_sampling sp = {(float)gen_config_float(cfg, "temperature"),
                                       gen_config_int(cfg, "top-k"),
                                       (float)gen_config_float(cfg, "top-p")};
    const int64_t n = gen_config_int(cfg, "num"), length = gen_config_int(cfg, "length");
    struct gen_rng rng;
    gen_rng_seed(&rng, (uint64_t)gen_config_int(cfg, "seed"));
    /* With --json and no -o, each sample goes to stdout as one JSON object. */
    const int json_text = run->json && !path;
    char *buf = NULL;
    size_t buf_size = 0;
    double total_s = 0;
    for (int64_t i = 0; i < n; i++) {
        FILE *f = out;
        if (json_text && !(f = open_memstream(&buf, &buf_size))) {
            gen_error(GEN_ERR_NOMEM, "out of memory for the sample text");
            goto done;
        }
        struct text_sink sink = {&voc, f, f == stdout, 0};
        fwrite(pr.bytes, 1, (size_t)pr.n, f);
        const double t0 = gen_run_now();
        gen_tf_generate(&cache, &m, pr.ids, pr.n_ids, length, &sp, &rng, emit_byte, &sink);
        const double dt = gen_run_now() - t0;
        total_s += dt;
        if (json_text) {
            fclose(f);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "sample", (double)i);
            char *text = valid_utf8(buf, buf_size);
            cJSON_AddStringToObject(o, "text", text ? text : "");
            free(text);
            cJSON_AddNumberToObject(o, "tokens", (double)length);
            cJSON_AddNumberToObject(o, "tokens_per_s", (double)length / dt);
            char *s = cJSON_PrintUnformatted(o);
            printf("%s\n", s);
            fflush(stdout);
            free(s);
            cJSON_Delete(o);
            free(buf);
            buf = NULL;
        } else {
            fputs(i + 1 < n ? "\n\n" : "\n", out);
            if (out == stdout) fflush(out);
            if (run->json)
                printf("{\"sample\":%lld,\"tokens\":%lld,\"tokens_per_s\":%.1f}\n", (long long)i,
                       (long long)length, (double)length / dt);
        }
    }
    if (!run->quiet)
        fprintf(stderr, "transformer: %lld x %lld tokens in %.2f s (%.0f tokens/s)%s%s\n",
                (long long)n, (long long)length, total_s, (double)(n * length) / total_s,
                path ? "; wrote " : "", path ? path : "");
    rc = 0;
done:
    if (out != stdout && fclose(out) != 0 && rc == 0) {
        gen_error(GEN_ERR_IO, "%s: write failed", path);
        rc = 1;
    }
    gen_text_free(&pr.file);
    gen_free(pr.ids);
    gen_tf_cache_free(&cache);
    gen_tf_free(&m);
    return rc;
}

/* ---- eval ---- */

static int tf_eval(struct gen_run *run) {
    const struct gen_config *cfg = &run->cfg;
    static struct gen_tf m;
    struct gen_tf_vocab voc;
    struct gen_text text = {0};
    int32_t *tok = NULL;
    memset(&m, 0, sizeof m);
    struct gen_ctx g;
    gen_ctx_init_eval(&g);
    int rc = 1;
    const char *ckpt = gen_config_str(cfg, "ckpt"), *data = gen_config_str(cfg, "data");
    if (tf_load(&m, &voc, ckpt) != GEN_OK || load_text(&text, data) != GEN_OK) goto done;
    const int64_t n_train = train_split(text.n), n_val = text.n - n_train;
    if (n_val < 2) {
        gen_error(GEN_ERR_FORMAT, "%s: %lld bytes leave no validation text (the last 10%% must hold 2 bytes)",
                  data, (long long)text.n);
        goto done;
    }
    if (!(tok = gen_alloc((size_t)n_val * sizeof *tok))) goto done;
    const int64_t bad = gen_tf_encode(&voc, text.bytes + n_train, n_val, tok);
    if (bad >= 0) {
        char name[32];
        gen_error(GEN_ERR_FORMAT, "%s: byte %s at offset %lld is not in the model's character vocabulary",
                  data, byte_name(text.bytes[n_train + bad], name, sizeof name),
                  (long long)(n_train + bad));
        goto done;
    }
    int64_t n;
    const double t0 = gen_run_now();
    const double nats = val_nats(&g, &m, tok, n_val, 0, &n);
    const double dt = gen_run_now() - t0;
    const double loss = nats / (double)n, bpb = loss / M_LN2, ppl = exp(loss);
    if (run->json)
        printf("{\"family\":\"transformer\",\"val_tokens\":%lld,\"val_loss\":%.6f,\"val_bpb\":%.6f,"
               "\"perplexity\":%.6f,\"tokens_per_s\":%.1f}\n",
               (long long)n, loss, bpb, ppl, (double)n / dt);
    if (!run->quiet)
        fprintf(stderr, "transformer %s on %s (last 10%%: %lld tokens scored)\n"
                "  loss        %.4f nats/token\n  bits/byte   %.4f\n  perplexity  %.3f\n",
                ckpt, data, (long long)n, loss, bpb, ppl);
    rc = 0;
done:
    gen_free(tok);
    gen_text_free(&text);
    gen_ctx_free(&g);
    gen_tf_free(&m);
    return rc;
}

/* ---- options ---- */

static const struct gen_option transformer_train_options[] = {
    GEN_STR_OPT("data", "data/moby-dick.txt", "training text: a .txt file or a folder of them"),
    GEN_INT_OPT("steps", "5000", 1, GEN_OPT_NO_MAX, "optimiser steps (--epochs counts passes instead)"),
    GEN_INT_OPT("batch", "32", 1, 65536, "windows per batch"),
    GEN_FLOAT_OPT("lr", "1e-3", 0, 10, "AdamW peak learning rate"),
    GEN_INT_OPT("layers", "4", 1, 256, "transformer blocks"),
    GEN_INT_OPT("heads", "4", 1, 256, "attention heads (must divide --width)"),
    GEN_INT_OPT("width", "128", 1, 65536, "embedding width"),
    GEN_INT_OPT("context", "128", 1, 65536, "context length in tokens"),
    GEN_FLOAT_OPT("dropout", "0", 0, 0.95, "dropout probability"),
    GEN_CHOICE_OPT("tokenizer", "byte", "byte|char", "byte (256 symbols) or char (the corpus's characters)"),
    GEN_INT_OPT("eval-every", "500", 0, GEN_OPT_NO_MAX, "validation loss every N steps (0: only at the end)"),
    GEN_INT_OPT("log-every", "50", 1, GEN_OPT_NO_MAX, "steps per log line"),
    GEN_INT_OPT("sample-every", "1000", 0, GEN_OPT_NO_MAX,
                "write OUT/samples-STEP.txt (300 sampled bytes) every N steps (0: only at the end)"),
    GEN_OPT_END,
};

static const struct gen_option transformer_sample_options[] = {
    {"num", 'n', GEN_OPT_INT, "1", "number of samples", 1, 100000, NULL, 0},
    GEN_STR_OPT("prompt", NULL, "text the samples continue"),
    GEN_STR_OPT("prompt-file", NULL, "read the prompt from a file"),
    GEN_INT_OPT("length", "400", 1, 100000000, "tokens to generate"),
    GEN_FLOAT_OPT("temperature", "1.0", 0, 100, "softmax temperature (0: greedy)"),
    GEN_INT_OPT("top-k", "0", 0, GEN_OPT_NO_MAX, "sample from the k likeliest tokens (0: all)"),
    GEN_FLOAT_OPT("top-p", "1.0", 0, 1, "nucleus sampling mass (1: off)"),
    GEN_OPT_END,
};

static const struct gen_option transformer_eval_options[] = {
    GEN_STR_OPT("data", "data/moby-dick.txt", "text; the last 10% is the validation split"),
    GEN_OPT_END,
};

const struct gen_family gen_family_transformer = {
    .name = "transformer",
    .summary = "GPT-style autoregressive transformer over bytes or characters",
    .data = GEN_DATA_TEXT,
    .train_options = transformer_train_options,
    .sample_options = transformer_sample_options,
    .eval_options = transformer_eval_options,
    .train = tf_train,
    .sample = tf_sample,
    .eval = tf_eval,
};
