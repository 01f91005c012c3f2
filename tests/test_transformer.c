/* test_transformer.c - the GPT family: the KV cache against the full
 * forward pass, one block and a whole tiny model against PyTorch fixtures
 * (scripts/make-fixtures-transformer.py), overfitting a short text and
 * reproducing it greedily, token picking, resume == uninterrupted, and the
 * command line's errors (unknown prompt bytes, bad options, short text). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gen/data.h"
#include "gen/io.h"
#include "gen/kernels.h"
#include "gen/nn.h"
#include "models/transformer.h"
#include "testutil.h"

/* Logits of the cache against the tape: the same maths, GEMMs of other
 * shapes (and so other summation orders) underneath. */
#define KV_RTOL 1e-4
#define KV_ATOL 1e-5
/* Fixtures: float32 against a float64 reference, sums of up to 4C terms. */
#define FIX_RTOL 1e-4
#define FIX_ATOL 2e-5

static void random_model(struct gen_tf *m, const struct gen_tf_shape *s, uint64_t seed) {
    assert_int_equal(gen_tf_init(m, s, 0.0f, 0), GEN_OK);
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    /* Larger than the GPT-2 init, so the logits are far from uniform. */
    gen_rng_fill_normal(&r, m->ps.data, m->ps.n_train, 0.0f, 0.3f);
}

static void random_tokens(int32_t *t, int64_t n, int64_t V, uint64_t seed) {
    struct gen_rng r;
    gen_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)gen_rng_below(&r, (uint64_t)V);
}

/* A random model of shape s (seed), its KV cache, and n random tokens
 * (seed + 1). */
static void kv_setup(const struct gen_tf_shape *s, uint64_t seed, struct gen_tf *m,
                     struct gen_tf_cache *c, int32_t *tok, int64_t n) {
    random_model(m, s, seed);
    assert_int_equal(gen_tf_cache_init(c, m), GEN_OK);
    random_tokens(tok, n, s->V, seed + 1);
}

/* Full-forward logits (T, V) of tokens[0..T). */
static float *full_logits(struct gen_tf *m, const int32_t *tok, int64_t T) {
    struct gen_ctx g;
    gen_ctx_init(&g);
    gen_no_grad_begin(&g);
    struct gen_tensor *y = gen_tf_forward(&g, m, tok, 1, T);
    float *out = malloc((size_t)gen_numel(y) * sizeof(float));
    memcpy(out, y->data, (size_t)gen_numel(y) * sizeof(float));
    gen_ctx_free(&g);
    return out;
}

/* The step arena's peak after a forward pass of B windows of T tokens
 * through a random model of L layers, with or without a tape. */
static size_t forward_peak(int64_t L, int tape, float *logit0) {
    const struct gen_tf_shape s = {.V = 64, .T = 32, .C = 64, .NH = 4, .L = L};
    struct gen_tf m;
    random_model(&m, &s, 11);
    int32_t tok[4 * 32];
    random_tokens(tok, 4 * 32, s.V, 12);
    struct gen_ctx g;
    gen_ctx_init(&g);
    if (!tape) gen_no_grad_begin(&g);
    struct gen_tensor *y = gen_tf_forward(&g, &m, tok, 4, 32);
    *logit0 = y->data[gen_numel(y) - 1];
    const size_t peak = g.arena.peak;
    gen_ctx_free(&g);
    gen_tf_free(&m);
    return peak;
}

/* A forward pass that records no tape (evaluation, a training run's
 * validation) holds one block's activations, not every block's: its peak
 * grows by far less than the tape's from 1 to 6 layers, and the logits
 * are the same bits as the taped pass's. */
static void test_forward_holds_one_block(void **state) {
    (void)state;
    float a, b, c, d;
    const size_t tape1 = forward_peak(1, 1, &a), tape6 = forward_peak(6, 1, &b);
    const size_t free1 = forward_peak(1, 0, &c), free6 = forward_peak(6, 0, &d);
    assert_memory_equal(&a, &c, sizeof a);
    assert_memory_equal(&b, &d, sizeof b);
    if (tape6 - tape1 < 4 * (tape1 / 2)) fail_msg("the tape's peak %zu -> %zu", tape1, tape6);
    if (free6 - free1 > (tape6 - tape1) / 4)
        fail_msg("no tape: peak %zu -> %zu from 1 to 6 layers (with a tape %zu -> %zu)", free1,
                 free6, tape1, tape6);
}

static void test_kv_cache_matches_forward(void **state) {
    (void)state;
    const struct gen_tf_shape s = {2, 4, 32, 16, 37};
    struct gen_tf m;
    struct gen_tf_cache c;
    int32_t tok[19];
    kv_setup(&s, 1, &m, &c, tok, 19);
    float *want = full_logits(&m, tok, s.T); /* (T, V) */

    /* One token at a time. */
    for (int64_t t = 0; t < s.T; t++) {
        const float *got = gen_tf_cache_feed(&c, &m, tok + t, 1, 0);
        TU_ASSERT_CLOSE("kv one by one", got, want + t * s.V, s.V, KV_RTOL, KV_ATOL);
    }
    /* A prefill of 5, then 11 more, every row. */
    c.len = 0;
    const float *got = gen_tf_cache_feed(&c, &m, tok, 5, 1);
    TU_ASSERT_CLOSE("kv prefill", got, want, 5 * s.V, KV_RTOL, KV_ATOL);
    got = gen_tf_cache_feed(&c, &m, tok + 5, 11, 1);
    TU_ASSERT_CLOSE("kv chunk", got, want + 5 * s.V, 11 * s.V, KV_RTOL, KV_ATOL);
    assert_int_equal(c.len, s.T);

    /* Full cache: three more tokens slide the window to the last T/2 = 8
     * tokens re-encoded from position 0, then the 3 new ones. */
    got = gen_tf_cache_push(&c, &m, tok + 16, 3);
    assert_int_equal(c.len, 8 + 3);
    float *slid = full_logits(&m, tok + 8, 11);
    TU_ASSERT_CLOSE("kv after slide", got, slid + 10 * s.V, s.V, KV_RTOL, KV_ATOL);
    free(slid);
    free(want);
    gen_tf_cache_free(&c);
    gen_tf_free(&m);
}

/* The logits of n tokens (n <= T) at nt threads, malloc'd, *bytes long:
 * mode 0 decodes them one at a time from position 0; modes 1 and 2 feed
 * the first n - 1 at once (1: the last row's logits, 2: every row's),
 * then all n through push, which slides the window (twice where n = T). */
static float *logits_at(struct gen_tf *m, struct gen_tf_cache *c, const int32_t *tok, int64_t n,
                        int mode, int nt, size_t *bytes) {
    const int64_t V = m->s.V, rows = mode == 1 ? 2 : n;
    float *out = malloc((size_t)(rows * V) * sizeof(float));
    *bytes = (size_t)(rows * V) * sizeof(float);
    gen_threads_init(nt);
    c->len = 0;
    if (mode == 0)
        for (int64_t t = 0; t < n; t++)
            memcpy(out + t * V, gen_tf_cache_feed(c, m, tok + t, 1, 0), (size_t)V * sizeof(float));
    else {
        memcpy(out, gen_tf_cache_feed(c, m, tok, n - 1, mode == 2), *bytes - V * sizeof(float));
        memcpy(out + (rows - 1) * V, gen_tf_cache_push(c, m, tok, n), (size_t)V * sizeof(float));
    }
    gen_threads_init(0);
    return out;
}

/* logits_at's bits (24 tokens) at 1 thread equal to those at 2 and 3. */
static void same_at_threads(struct gen_tf *m, struct gen_tf_cache *c, const int32_t *tok,
                            int mode) {
    float *logits[3];
    size_t bytes;
    for (int nt = 1; nt <= 3; nt++) logits[nt - 1] = logits_at(m, c, tok, 24, mode, nt, &bytes);
    for (int i = 1; i < 3; i++) assert_memory_equal(logits[0], logits[i], bytes);
    for (int i = 0; i < 3; i++) free(logits[i]);
}

/* One token at a time, the threads share each product by rows and the
 * attention by heads: the same bits at 1, 2 and 3 threads (3: uneven
 * shares, one thread left without a head of the 2), with the fp32 weights
 * and with their bf16 copy. The model is large enough (2 MB of weights,
 * 1 MB in bf16) that decoding takes three threads when offered them. */
static void test_kv_decode_threads(void **state) {
    (void)state;
    const struct gen_tf_shape s = {2, 2, 144, 24, 37};
    struct gen_tf m;
    struct gen_tf_cache c;
    int32_t tok[24];
    kv_setup(&s, 5, &m, &c, tok, 24);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        assert_int_equal(gen_tf_cache_bf16(&c, &m, bf16), GEN_OK);
        same_at_threads(&m, &c, tok, 0);
    }
    gen_tf_cache_free(&c);
    gen_tf_free(&m);
}

/* Many rows at once, the threads share each product by columns, the
 * attention by heads and the norms by rows: the same bits at 1, 2 and 3
 * threads (3: uneven shares of 23 rows and of the 2 heads), for every
 * row's logits and for the last row's alone (the last layer then runs one
 * row), and through the re-encodes of the window's slides. */
static void test_kv_prefill_threads(void **state) {
    (void)state;
    /* OpenBLAS's products (the scalar table) take their bits from its blocking */
    TU_NEED(gen_kernels()->gemm != NULL, "the kernel table has no products of its own");
    const struct gen_tf_shape s = {2, 2, 144, 24, 37};
    struct gen_tf m;
    struct gen_tf_cache c;
    int32_t tok[24];
    kv_setup(&s, 6, &m, &c, tok, 24);
    for (int mode = 1; mode <= 2; mode++) same_at_threads(&m, &c, tok, mode);
    gen_tf_cache_free(&c);
    gen_tf_free(&m);
}

/* emit: the tokens into tok, in order */
struct collect {
    int32_t *tok;
    int64_t n;
};

static void collect(int32_t t, void *arg) {
    struct collect *c = arg;
    c->tok[c->n++] = t;
}

/* gen_tf_generate decodes runs of tokens in one parallel region, leaving
 * it for each slide of the window and wherever gen_parallel_tuned's
 * choice of threads changes (its trial alternates runs of 5 tokens on one
 * thread and on all): 150 tokens from a window of 24 (slides every 12
 * tokens), drawn at temperature 1 so that every logit's bits count, at 1,
 * 2 and 3 threads, fp32 and the bf16 copy, are the tokens of a loop of
 * gen_tf_cache_push and gen_sampler_pick, one token at a time, emitted
 * once each. */
static void test_generate_runs(void **state) {
    (void)state;
    const struct gen_tf_shape s = {2, 2, 144, 24, 37};
    const struct gen_sampling sp = {1.0f, 0, 1.0f};
    enum { LEN = 150 };
    struct gen_tf m;
    struct gen_tf_cache c;
    int32_t prompt[5], want[LEN], got[LEN];
    kv_setup(&s, 8, &m, &c, prompt, 5);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        assert_int_equal(gen_tf_cache_bf16(&c, &m, bf16), GEN_OK);
        struct gen_rng r;
        gen_rng_seed(&r, 9);
        c.len = 0;
        const float *logits = gen_tf_cache_push(&c, &m, prompt, 5);
        for (int i = 0; i < LEN; i++) {
            want[i] = gen_sampler_pick(logits, s.V, &sp, &r, c.pick);
            if (i + 1 < LEN) logits = gen_tf_cache_push(&c, &m, want + i, 1);
        }
        for (int nt = 1; nt <= 3; nt++) {
            gen_threads_init(nt);
            memset(&c.tune, 0, sizeof c.tune); /* a trial from the first token */
            gen_rng_seed(&r, 9);
            struct collect col = {got, 0};
            gen_tf_generate(&c, &m, prompt, 5, LEN, &sp, &r, collect, &col);
            gen_threads_init(0);
            assert_int_equal(col.n, LEN);
            assert_memory_equal(got, want, sizeof want);
        }
    }
    gen_tf_cache_free(&c);
    gen_tf_free(&m);
}

/* gen_tf_generate_samples' callbacks: the samples' starts and tokens */
struct many {
    int32_t *tok;
    int64_t n, started[8], n_started;
};

static void many_start(int64_t i, void *arg) {
    struct many *c = arg;
    c->started[c->n_started++ % 8] = i;
}

static void many_emit(int32_t t, void *arg) {
    struct many *c = arg;
    c->tok[c->n++] = t;
}

/* Eight samples of 40 tokens from a window of 24 (two slides each), one
 * by one, a sample a thread and as the first sample's trial finds, at 1,
 * 2 and 3 threads, fp32 and the bf16 copy: sample i's tokens are those
 * gen_tf_generate draws from a generator seeded 11 + i, the samples come
 * in order, each begun once, and the caller's cache decodes on every
 * thread again after the samples a thread (its trial kept). A sample a
 * thread goes in whole rounds (2 threads: three of 2 after the first, 3:
 * two of 3), the one sample left one at a time. */
static void test_generate_samples(void **state) {
    (void)state;
    const struct gen_tf_shape s = {2, 2, 144, 24, 37};
    const struct gen_sampling sp = {1.0f, 0, 1.0f};
    enum { N = 8, LEN = 40 };
    struct gen_tf m;
    struct gen_tf_cache c;
    int32_t prompt[5], want[N * LEN], got[N * LEN];
    kv_setup(&s, 12, &m, &c, prompt, 5);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        assert_int_equal(gen_tf_cache_bf16(&c, &m, bf16), GEN_OK);
        for (int i = 0; i < N; i++) {
            struct gen_rng r;
            gen_rng_seed(&r, 11 + (uint64_t)i);
            struct collect col = {want + i * LEN, 0};
            gen_tf_generate(&c, &m, prompt, 5, LEN, &sp, &r, collect, &col);
        }
        for (int how = GEN_TF_SAMPLES_AUTO; how <= GEN_TF_SAMPLES_PER_THREAD; how++)
            for (int nt = 1; nt <= 3; nt++) {
                gen_threads_init(nt);
                struct many col = {got, 0, {0}, 0};
                const int64_t at_once = gen_tf_generate_samples(&c, &m, prompt, 5, LEN, N, 11, &sp,
                                                                how, many_start, many_emit, &col);
                if (how == GEN_TF_SAMPLES_PER_THREAD) assert_int_equal(at_once, nt);
                gen_threads_init(0);
                assert_int_equal(col.n, N * LEN);
                assert_memory_equal(got, want, sizeof want);
                assert_int_equal(col.n_started, N);
                for (int i = 0; i < N; i++) assert_int_equal(col.started[i], i);
                assert_int_equal(c.solo, 0);
            }
    }
    gen_tf_cache_free(&c);
    gen_tf_free(&m);
}

/* Decoding from the bf16 copy of the weights (--precision bf16): within
 * bf16's rounding of the fp32 decoding, but not equal to it (the operands
 * really are rounded), and back to the fp32 bits once turned off. */
static void test_kv_decode_bf16(void **state) {
    (void)state;
    const struct gen_tf_shape s = {2, 4, 64, 32, 37};
    struct gen_tf m;
    struct gen_tf_cache c;
    int32_t tok[32];
    kv_setup(&s, 9, &m, &c, tok, 32);
    size_t bytes;
    float *fp32 = logits_at(&m, &c, tok, 32, 0, 1, &bytes);
    assert_int_equal(gen_tf_cache_bf16(&c, &m, 1), GEN_OK);
    float *bf16 = logits_at(&m, &c, tok, 32, 0, 1, &bytes);
    assert_int_equal(gen_tf_cache_bf16(&c, &m, 0), GEN_OK);
    float *again = logits_at(&m, &c, tok, 32, 0, 1, &bytes);
    assert_memory_equal(fp32, again, bytes);
    double worst = 0, spread = 0;
    for (int64_t i = 0; i < 32 * s.V; i++) {
        worst = fmax(worst, fabs((double)bf16[i] - fp32[i]));
        spread = fmax(spread, fabs((double)fp32[i]));
    }
    fprintf(stderr, "  bf16 decoding: largest logit difference %.3g (largest logit %.3g)\n", worst,
            spread);
    assert_true(worst > 1e-4 * spread); /* rounded */
    assert_true(worst < 0.05 * spread); /* but close */
    free(fp32), free(bf16), free(again);
    gen_tf_cache_free(&c);
    gen_tf_free(&m);
}

/* ---- PyTorch fixtures ---- */

static int64_t meta_int(const struct gen_st_file *f, const char *key) {
    const char *v = gen_st_meta(f, key);
    assert_non_null(v);
    return atoll(v);
}

/* Every parameter of m from the fixture, by name and shape. */
static void load_params(struct gen_tf *m, const struct gen_st_file *f) {
    for (int i = 0; i < m->ps.count; i++) {
        struct gen_param *p = &m->ps.p[i];
        const struct gen_st_tensor *t = tu_tensor(f, p->name);
        assert_int_equal(t->numel, gen_numel(&p->t));
        memcpy(p->t.data, t->data, (size_t)t->numel * sizeof(float));
    }
}

static void check_param_grads(struct gen_tf *m, const struct gen_st_file *f, const char *isa) {
    for (int i = 0; i < m->ps.count; i++) {
        struct gen_param *p = &m->ps.p[i];
        char name[128], what[192];
        snprintf(name, sizeof name, "grad.%s", p->name);
        snprintf(what, sizeof what, "%s %s", isa, name);
        TU_ASSERT_CLOSE(what, p->t.grad, tu_tensor(f, name)->data, gen_numel(&p->t), FIX_RTOL,
                        FIX_ATOL);
    }
}

static const char *const isas[] = {"scalar", "avx2", "avx512"};

static void test_block_fixture(void **state) {
    (void)state;
    struct gen_st_file *f =
        tu_open_fixture("transformer_block", "scripts/make-fixtures-transformer.py");
    const int64_t B = meta_int(f, "B"), T = meta_int(f, "T"), C = meta_int(f, "C");
    const struct gen_tf_shape s = {1, meta_int(f, "NH"), C, T, 3};
    struct gen_tf m;
    assert_int_equal(gen_tf_init(&m, &s, 0.0f, 0), GEN_OK);
    /* The block's tensors come from the fixture; wte, wpe, ln_f are unused. */
    for (int i = 0; i < m.ps.count; i++)
        if (!strncmp(m.ps.p[i].name, "h.0.", 4))
            memcpy(m.ps.p[i].t.data, tu_tensor(f, m.ps.p[i].name)->data,
                   (size_t)gen_numel(&m.ps.p[i].t) * sizeof(float));
    for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
        if (!gen_kernels_select(isas[k])) continue;
        struct gen_ctx g;
        gen_ctx_init(&g);
        struct gen_tensor *x = gen_tensor_3d(&g, B, T, C);
        memcpy(x->data, tu_tensor(f, "x")->data, (size_t)(B * T * C) * sizeof(float));
        x->requires_grad = 1;
        struct gen_tensor *y = gen_tf_block_fwd(&g, &m, 0, x);
        char what[192];
        snprintf(what, sizeof what, "%s block out", isas[k]);
        TU_ASSERT_CLOSE(what, y->data, tu_tensor(f, "out")->data, B * T * C, FIX_RTOL, FIX_ATOL);
        gen_params_zero_grad(&m.ps);
        gen_backward_seed(&g, y, tu_tensor(f, "dout")->data);
        snprintf(what, sizeof what, "%s block grad.x", isas[k]);
        TU_ASSERT_CLOSE(what, x->grad, tu_tensor(f, "grad.x")->data, B * T * C, FIX_RTOL, FIX_ATOL);
        for (int i = 0; i < m.ps.count; i++) {
            struct gen_param *p = &m.ps.p[i];
            if (strncmp(p->name, "h.0.", 4)) continue;
            char name[128];
            snprintf(name, sizeof name, "grad.%s", p->name);
            snprintf(what, sizeof what, "%s block %s", isas[k], name);
            TU_ASSERT_CLOSE(what, p->t.grad, tu_tensor(f, name)->data, gen_numel(&p->t), FIX_RTOL,
                            FIX_ATOL);
        }
        gen_ctx_free(&g);
    }
    gen_kernels_select(NULL);
    gen_tf_free(&m);
    gen_st_close(f);
}

static void test_model_fixture(void **state) {
    (void)state;
    struct gen_st_file *f =
        tu_open_fixture("transformer_model", "scripts/make-fixtures-transformer.py");
    const int64_t B = meta_int(f, "B"), T = meta_int(f, "T");
    const struct gen_tf_shape s = {meta_int(f, "L"), meta_int(f, "NH"), meta_int(f, "C"), T,
                                   meta_int(f, "V")};
    struct gen_tf m;
    assert_int_equal(gen_tf_init(&m, &s, 0.0f, 0), GEN_OK);
    load_params(&m, f);
    int32_t tok[64], tgt[64];
    assert_true(B * T <= 64);
    for (int64_t i = 0; i < B * T; i++) {
        tok[i] = (int32_t)tu_tensor(f, "tokens")->data[i];
        tgt[i] = (int32_t)tu_tensor(f, "targets")->data[i];
    }
    for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
        if (!gen_kernels_select(isas[k])) continue;
        struct gen_ctx g;
        gen_ctx_init(&g);
        struct gen_tensor *logits = gen_tf_forward(&g, &m, tok, B, T);
        struct gen_tensor *loss = gen_cross_entropy(&g, logits, tgt);
        char what[64];
        snprintf(what, sizeof what, "%s logits", isas[k]);
        TU_ASSERT_CLOSE(what, logits->data, tu_tensor(f, "logits")->data, B * T * s.V, FIX_RTOL,
                        FIX_ATOL);
        snprintf(what, sizeof what, "%s loss", isas[k]);
        TU_ASSERT_CLOSE(what, loss->data, tu_tensor(f, "loss")->data, 1, FIX_RTOL, FIX_ATOL);
        gen_params_zero_grad(&m.ps);
        gen_backward(&g, loss);
        check_param_grads(&m, f, isas[k]);
        gen_ctx_free(&g);
    }
    gen_kernels_select(NULL);
    gen_tf_free(&m);
    gen_st_close(f);
}

/* ---- overfitting ---- */

static const char overfit_text[] =
    "Call me Ishmael. Some years ago, never mind how long precisely, having little money "
    "in my purse.";

/* A 1-layer, width-32 model learns a ~100-byte text from one window to
 * near-zero loss, then writes the rest of it greedily from its first 4
 * bytes through the KV cache. */
static void test_overfit_and_reproduce(void **state) {
    (void)state;
    const int64_t n = (int64_t)strlen(overfit_text);
    struct gen_vocab voc;
    assert_int_equal(gen_vocab_of_text(&voc, (const uint8_t *)overfit_text, n), GEN_OK);
    int32_t ids[128];
    int64_t n_ids;
    assert_true(n <= 128);
    assert_int_equal(gen_vocab_encode(&voc, (const uint8_t *)overfit_text, n, ids, &n_ids), -1);
    assert_int_equal(n_ids, n); /* ASCII: a character is a byte */
    const struct gen_tf_shape s = {1, 2, 32, 128, voc.V};
    struct gen_tf m;
    assert_int_equal(gen_tf_init(&m, &s, 0.0f, 0), GEN_OK);
    struct gen_rng r;
    gen_rng_seed(&r, 7);
    gen_tf_init_weights(&m, &r);
    const struct gen_optim opt = {
        .kind = GEN_OPTIM_ADAMW, .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f};
    struct gen_ctx g;
    gen_ctx_init(&g);
    float loss = 0;
    int step;
    for (step = 0; step < 400; step++) {
        struct gen_tensor *l =
            gen_cross_entropy(&g, gen_tf_forward(&g, &m, ids, 1, n - 1), ids + 1);
        loss = l->data[0];
        if (loss < 0.01f) break;
        gen_params_zero_grad(&m.ps);
        gen_backward(&g, l);
        gen_clip_grad_norm(&m.ps, -1, 1.0);
        gen_optim_step(&opt, &m.ps, -1, opt.lr);
        gen_ctx_reset(&g);
    }
    gen_ctx_free(&g);
    print_message("overfit: loss %.4f after %d steps\n", loss, step);
    assert_true(loss < 0.01f);

    struct gen_tf_cache c;
    assert_int_equal(gen_tf_cache_init(&c, &m), GEN_OK);
    const struct gen_sampling greedy = {0.0f, 0, 1.0f};
    int32_t out[128];
    struct collect col = {out, 0};
    gen_tf_generate(&c, &m, ids, 4, n - 4, &greedy, &r, collect, &col);
    char text[129];
    for (int64_t i = 0; i < col.n; i++) text[i] = (char)voc.key[out[i]];
    text[col.n] = 0;
    assert_string_equal(text, overfit_text + 4);
    gen_tf_cache_free(&c);
    gen_tf_free(&m);
}

/* ---- picking tokens ---- */

static void test_pick(void **state) {
    (void)state;
    const float logits[6] = {0.5f, 2.0f, -1.0f, 1.9f, 0.0f, 1.0f};
    float work[GEN_SAMPLER_WORK(6)];
    struct gen_rng r;
    gen_rng_seed(&r, 3);
    const struct gen_sampling greedy = {0.0f, 0, 1.0f}, top1 = {1.0f, 1, 1.0f},
                                 tiny_p = {1.0f, 0, 1e-6f}, top2 = {5.0f, 2, 1.0f},
                                 p_half = {1.0f, 0, 0.5f}, all = {1.0f, 0, 1.0f};
    assert_int_equal(gen_sampler_pick(logits, 6, &greedy, &r, work), 1);
    assert_int_equal(gen_sampler_pick(logits, 6, &top1, &r, work), 1);
    assert_int_equal(gen_sampler_pick(logits, 6, &tiny_p, &r, work), 1);
    int count[6] = {0};
    for (int i = 0; i < 2000; i++) count[gen_sampler_pick(logits, 6, &top2, &r, work)]++;
    assert_int_equal(count[1] + count[3], 2000); /* only the two likeliest */
    assert_true(count[1] > 800 && count[3] > 800);
    /* p(1) = 0.36, p(3) = 0.33 at temperature 1: top-p 0.5 keeps those two. */
    memset(count, 0, sizeof count);
    for (int i = 0; i < 2000; i++) count[gen_sampler_pick(logits, 6, &p_half, &r, work)]++;
    assert_int_equal(count[1] + count[3], 2000);
    memset(count, 0, sizeof count);
    for (int i = 0; i < 4000; i++) count[gen_sampler_pick(logits, 6, &all, &r, work)]++;
    for (int v = 0; v < 6; v++) assert_true(count[v] > 0);
    /* a temperature whose inverse overflows a float picks as greedy does
     * (it drew token 0 every time, from NaN probabilities) */
    const struct gen_sampling tiny_t = {1e-40f, 0, 1.0f};
    for (int i = 0; i < 20; i++) assert_int_equal(gen_sampler_pick(logits, 6, &tiny_t, &r, work), 1);
}

/* Ids by logit, the larger first, the lower id between equals: the order
 * of the top_k / top_p cut. */
static const float *cut_logits;
static int by_logit(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    if (cut_logits[x] != cut_logits[y]) return cut_logits[x] > cut_logits[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* The cut over a vocabulary of 301 with every logit twice (ties go to
 * the lower id): only the tokens the sorted order keeps are ever drawn,
 * for top_k alone, top_p alone (halfway between two cumulative masses)
 * and both. */
static void test_pick_cut(void **state) {
    (void)state;
    enum { V = 301 };
    float logits[V];
    int order[V];
    for (int v = 0; v < V; v++) {
        logits[v] = (float)((v / 2) * 37 % 151) / 8.0f;
        order[v] = v;
    }
    cut_logits = logits;
    qsort(order, V, sizeof *order, by_logit);
    double cum[V], total = 0; /* the sorted order's cumulative masses at temperature 1 */
    for (int j = 0; j < V; j++) total += exp((double)logits[order[j]] - logits[order[0]]);
    for (int j = 0; j < V; j++) {
        cum[j] = (j ? cum[j - 1] : 0) + exp((double)logits[order[j]] - logits[order[0]]) / total;
    }
    const struct {
        int64_t top_k;
        float top_p;
        int keep;
    } cases[] = {{7, 1.0f, 7}, {0, (float)((cum[11] + cum[12]) / 2), 13},
                 {5, (float)((cum[11] + cum[12]) / 2), 5}, {40, (float)((cum[2] + cum[3]) / 2), 4}};
    float work[GEN_SAMPLER_WORK(V)];
    struct gen_rng r;
    gen_rng_seed(&r, 11);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct gen_sampling sp = {1.0f, cases[c].top_k, cases[c].top_p};
        int kept[V] = {0}, drawn[V] = {0};
        for (int j = 0; j < cases[c].keep; j++) kept[order[j]] = 1;
        for (int i = 0; i < 3000; i++) {
            const int32_t t = gen_sampler_pick(logits, V, &sp, &r, work);
            assert_true(t >= 0 && t < V);
            assert_true(kept[t]);
            drawn[t]++;
        }
        assert_true(drawn[order[0]] > 0);
    }
}

/* ---- the command line ---- */

static int run_gen(int argc, const char **argv) {
    return gen_cli_main(argc, (char **)argv);
}
#define RUN_GEN(...)                                                                               \
    run_gen((int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),                   \
            (const char *[]){__VA_ARGS__})

/* ~3 KB of text without the letters 'Z' and 'q'. */
static void write_text(const char *path, int64_t bytes) {
    static const char *const words[] = {"the",  "whale", "sea", "ship", "and",  "white", "of",
                                        "Ahab", "said",  "a",   "deep", "wind", "boat",  "line"};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct gen_rng r;
    gen_rng_seed(&r, 11);
    int64_t n = 0;
    while (n < bytes) {
        const char *w = words[gen_rng_below(&r, sizeof words / sizeof words[0])];
        n += fprintf(f, "%s%s", w, gen_rng_below(&r, 9) ? " " : ".\n");
    }
    fclose(f);
}

#define TINY                                                                                       \
    "--layers", "1", "--width", "16", "--heads", "2", "--context", "16", "--batch", "4",           \
        "--threads", "1", "--quiet"

/* 6 steps == 3 steps, resume, 3 more: the same checkpoint bytes (dropout
 * on, so the dropout stream is part of what is restored). Twice: from the
 * 3-step checkpoint of the 6-step run with every option given again, and
 * from a run of 3 steps continued to 6 with only --resume --steps (the
 * run's stored settings; the warm-up of 100 steps spans both runs, so the
 * schedule does not depend on the length). */
static void test_resume_matches(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    char text[512], a[512], b[512], c[512], ck[600], fa[600], fb[600], fc[600];
    snprintf(text, sizeof text, "%s/t.txt", dir);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    write_text(text, 3000);
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", a, "--steps",
                             "6", "--ckpt-every", "3", "--eval-every", "3", "--dropout", "0.1",
                             TINY),
                     0);
    snprintf(ck, sizeof ck, "%s/checkpoint-00000003.safetensors", a);
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", b, "--steps",
                             "6", "--ckpt-every", "3", "--eval-every", "3", "--dropout", "0.1",
                             "--resume", ck, TINY),
                     0);
    snprintf(fa, sizeof fa, "%s/checkpoint-00000006.safetensors", a);
    snprintf(fb, sizeof fb, "%s/checkpoint-00000006.safetensors", b);
    tu_assert_same_file(fa, fb);
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", c, "--steps",
                             "3", "--ckpt-every", "3", "--eval-every", "3", "--dropout", "0.1",
                             TINY),
                     0);
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--out", c, "--resume", "--steps", "6",
                             "--threads", "1", "--quiet"),
                     0);
    snprintf(fc, sizeof fc, "%s/checkpoint-00000006.safetensors", c);
    tu_assert_same_file(fa, fc);
    /* Resuming with another --heads is refused before training. */
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", b, "--steps",
                             "8", "--resume", ck, "--layers", "1", "--width", "16", "--heads", "4",
                             "--context", "16", "--batch", "4", "--quiet"),
                     2);
    assert_non_null(strstr(gen_last_error(), "--heads 4"));
    tu_rmtree(dir);
    free(dir);
}

static void test_char_model_cli(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    char text[512], run[512], ck[600], o1[600], o2[600], pf[600];
    snprintf(text, sizeof text, "%s/t.txt", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(ck, sizeof ck, "%s/run/checkpoint.safetensors", dir);
    snprintf(o1, sizeof o1, "%s/o1.txt", dir);
    snprintf(o2, sizeof o2, "%s/o2.txt", dir);
    snprintf(pf, sizeof pf, "%s/prompt.txt", dir);
    write_text(text, 3000);
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", run, "--steps",
                             "3", "--tokenizer", "char", TINY),
                     0);
    /* A byte the corpus never had is an error naming it. */
    assert_int_equal(RUN_GEN("gen", "sample", "transformer", "--ckpt", ck, "--prompt", "the Zebra",
                             "--quiet", "-o", o1),
                     2);
    assert_non_null(strstr(gen_last_error(), "character 'Z' (U+005A) at byte offset 4"));
    FILE *f = fopen(pf, "wb");
    fputs("the quay", f);
    fclose(f);
    assert_int_equal(RUN_GEN("gen", "sample", "transformer", "--ckpt", ck, "--prompt-file", pf,
                             "--quiet", "-o", o1),
                     1);
    assert_non_null(strstr(gen_last_error(), "character 'q' (U+0071) at byte offset 4"));
    assert_non_null(strstr(gen_last_error(), pf));
    /* Same seed, same text; the prompt is echoed, then --length tokens. */
    assert_int_equal(RUN_GEN("gen", "sample", "transformer", "--ckpt", ck, "--prompt", "the sea",
                             "--length", "300", "--seed", "5", "--top-k", "5", "--quiet", "-o", o1),
                     0);
    assert_int_equal(RUN_GEN("gen", "sample", "transformer", "--ckpt", ck, "--prompt", "the sea",
                             "--length", "300", "--seed", "5", "--top-k", "5", "--quiet", "-o", o2),
                     0);
    tu_assert_same_file(o1, o2);
    size_t size = 0;
    char *s = tu_read_file(o1, &size);
    assert_int_equal(size, 7 + 300 + 1);
    assert_memory_equal(s, "the sea", 7);
    free(s);
    assert_int_equal(RUN_GEN("gen", "eval", "transformer", "--ckpt", ck, "--data", text, "--quiet"),
                     0);
    tu_rmtree(dir);
    free(dir);
}

static void test_bad_input(void **state) {
    (void)state;
    char *dir = tu_mkdtemp();
    char text[512], run[512], ck[600];
    snprintf(text, sizeof text, "%s/t.txt", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    write_text(text, 100);
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", run, "--steps",
                             "2", "--heads", "3", "--width", "16", "--quiet"),
                     2);
    assert_non_null(strstr(gen_last_error(), "--heads 3 must divide --width 16"));
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", run, "--steps",
                             "2", "--context", "128", "--quiet"),
                     1);
    assert_non_null(strstr(gen_last_error(), "a window needs more than the context (128)"));
    /* 10 bytes: a window of 5 fits the first 9, but 1 byte cannot validate. */
    FILE *t = fopen(text, "wb");
    fputs("abcdefghij", t);
    fclose(t);
    assert_int_equal(RUN_GEN("gen", "train", "transformer", "--data", text, "--out", run, "--steps",
                             "2", "--context", "4", "--width", "8", "--heads", "2", "--quiet"),
                     1);
    assert_non_null(strstr(gen_last_error(), "validation split (the last 10%) has 1 tokens"));
    /* A truncated checkpoint is refused with its name. */
    snprintf(ck, sizeof ck, "%s/bad.safetensors", dir);
    FILE *f = fopen(ck, "wb");
    fputs("\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":", f);
    fclose(f);
    assert_int_equal(RUN_GEN("gen", "sample", "transformer", "--ckpt", ck, "--quiet"), 1);
    assert_non_null(strstr(gen_last_error(), ck));
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_holds_one_block),
        cmocka_unit_test(test_kv_cache_matches_forward),
        cmocka_unit_test(test_kv_decode_threads),
        cmocka_unit_test(test_kv_prefill_threads),
        cmocka_unit_test(test_generate_runs),
        cmocka_unit_test(test_generate_samples),
        cmocka_unit_test(test_kv_decode_bf16),
        cmocka_unit_test(test_block_fixture),
        cmocka_unit_test(test_model_fixture),
        cmocka_unit_test(test_overfit_and_reproduce),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_pick_cut),
        cmocka_unit_test(test_resume_matches),
        cmocka_unit_test(test_char_model_cli),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
