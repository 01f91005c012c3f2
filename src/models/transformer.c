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
enum {
    TF_S_NUM,
    TF_S_PROMPT,
    TF_S_PROMPT_FILE,
    TF_S_LENGTH,
    TF_S_TEMPERATURE,
    TF_S_TOP_K,
    TF_S_TOP_P,
    TF_S_SHARE,
    TF_S_COUNT
};
static const struct gen_option transformer_train_options[TF_T_COUNT + 1];
static const struct gen_option transformer_sample_options[TF_S_COUNT + 1];


#define INIT_STD 0.02f

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
    struct gen_tensor *h =
        gen_layernorm_operand(g, x, ptensor(m, b->ln1_w), ptensor(m, b->ln1_b), GEN_TF_LN_EPS);
    h = gen_linear_operand(g, h, ptensor(m, b->attn_w), ptensor(m, b->attn_b)); /* (B, T, 3C) */
    h = gen_attention(g, h, m->s.NH, 1);                                /* (B, T, C) */
    h = gen_linear(g, h, ptensor(m, b->aproj_w), ptensor(m, b->aproj_b));
    x = gen_add(g, x, dropout(g, m, h));
    h = gen_layernorm_operand(g, x, ptensor(m, b->ln2_w), ptensor(m, b->ln2_b), GEN_TF_LN_EPS);
    h = gen_mlp(g, h, ptensor(m, b->fc_w), ptensor(m, b->fc_b), ptensor(m, b->mproj_w),
                ptensor(m, b->mproj_b)); /* through 4C wide, GELU */
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
    /* a pass that records no tape gives each block's activations back as
     * the next block starts (gen_scope_open): it holds one block's */
    for (int l = 0; l < (int)m->s.L; l++) {
        const struct gen_scope s = gen_scope_open(g, x);
        x = gen_scope_close(g, s, gen_tf_block_fwd(g, m, l, x));
    }
    x = gen_layernorm_operand(g, x, ptensor(m, m->lnf_w), ptensor(m, m->lnf_b), GEN_TF_LN_EPS);
    return gen_linear(g, x, wte, NULL); /* (B, T, V) */
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
static void no_start(int64_t i, void *arg) {
    (void)i, (void)arg;
}

static enum gen_status tf_generate(void *model, struct gen_ctx *g, const struct gen_config *opts,
                                   const struct gen_request *req, struct gen_output *out) {
    (void)g;
    struct gen_tf *m = model;
    struct gen_sampling sp = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f};
    if (opts)
        sp = (struct gen_sampling){.temperature = (float)gen_opt_float(opts, &transformer_sample_options[TF_S_TEMPERATURE]),
                                      .top_k = gen_opt_int(opts, &transformer_sample_options[TF_S_TOP_K]),
                                      .top_p = (float)gen_opt_float(opts, &transformer_sample_options[TF_S_TOP_P])};
    enum gen_status st =
        gen_tf_cache_bf16(&m->cache, m, gen_kernels_precision() == GEN_PRECISION_BF16);
    if (st != GEN_OK) return st;
    const int64_t samples = req->samples > 0 ? req->samples : 1;
    const char *share = opts ? gen_opt_str(opts, &transformer_sample_options[TF_S_SHARE]) : "auto";
    const enum gen_tf_samples how = !strcmp(share, "tokens")    ? GEN_TF_SAMPLES_ONE_BY_ONE
                                    : !strcmp(share, "samples") ? GEN_TF_SAMPLES_PER_THREAD
                                                                : GEN_TF_SAMPLES_AUTO;
    out->at_once = gen_tf_generate_samples(
        &m->cache, m, req->prompt, req->n_prompt, req->n, samples, req->seed, &sp, how,
        req->start ? req->start : no_start, req->emit, req->emit_arg);
    out->n_tokens = req->n * samples;
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
    [TF_S_PROMPT_FILE] = GEN_STR_OPT(
        "prompt-file", NULL, "read the prompt from a file (at most 16 MiB; empty: no prompt)"),
    [TF_S_LENGTH] = GEN_INT_OPT("length", "400", 1, 100000000, "tokens to generate"),
    [TF_S_TEMPERATURE] =
        GEN_FLOAT_OPT("temperature", "1.0", 0, 100, "softmax temperature (0: greedy)"),
    [TF_S_TOP_K] =
        GEN_INT_OPT("top-k", "0", 0, GEN_OPT_NO_MAX, "sample from the k likeliest tokens (0: all)"),
    [TF_S_TOP_P] = GEN_FLOAT_OPT("top-p", "1.0", 0, 1, "nucleus sampling mass (1: off)"),
    [TF_S_SHARE] = GEN_CHOICE_OPT("share", "auto", "auto|tokens|samples",
                                  "the threads share each sample's tokens, or take a sample each "
                                  "(auto: what decoded the first sample faster)"),
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
