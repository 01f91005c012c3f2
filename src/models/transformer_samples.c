/* transformer_samples.c - the Transformer's many samples on the threads:
 * one after another, each sample's tokens shared by the threads
 * (gen_tf_generate, transformer_sample.c), or a sample a thread, each on
 * a KV cache of its own, the samples emitted in order on the calling
 * thread either way. */
#include <stdlib.h>

#include "models/transformer.h"

/* Decoding a sample a thread: each thread streams all the weights a token
 * on its own, where sharing a sample's tokens streams a share of them and
 * meets the others 16 times a token. On the Zen 5 VM (1 MB of L2 a core,
 * the threads' pace differing from minute to minute) two threads sharing
 * a sample decoded 1.0-1.6 times as fast as one, and two threads with a
 * sample each decoded at about 0.8 of one thread's rate alone each (the
 * L3 shared): 5 samples of 1000 tokens, 7 alternating rounds, 17 308
 * tokens/s before, 21 430 a sample a thread. On the Sapphire Rapids VM,
 * where a thread's share of the weights fits its 2 MB of L2 and the whole
 * model does not, two threads shared a sample 2.1-2.9 times as fast as
 * one. So a sample a thread where the first sample's trial found n threads
 * under 0.8 n times as fast as one (and none descheduled), or where
 * decoding takes one thread anyway (a small model). */
#define PER_THREAD_PACE 0.8
/* a sample a thread at most holds back this many tokens a round, and
 * makes a cache a thread where one takes at most this many bytes */
#define PER_THREAD_TOKENS ((int64_t)16 << 20)
#define PER_THREAD_CACHE  ((size_t)256 << 20)

struct worker {
    struct gen_tf_cache *c; /* the caller's for worker 0, else own */
    struct gen_tf_cache own;
    int32_t *tok; /* the round's sample's tokens */
};

/* gen_tf_generate_samples' request */
struct samples {
    const struct gen_tf *m;
    const int32_t *prompt;
    int64_t P, length;
    uint64_t seed;
    const struct gen_sampling *sp;
};

/* Sample i on c, each token to emit. */
static void sample_on(struct gen_tf_cache *c, const struct samples *q, int64_t i,
                      void (*emit)(int32_t tok, void *arg), void *arg) {
    struct gen_rng rng;
    gen_rng_seed(&rng, q->seed + (uint64_t)i);
    gen_tf_generate(c, q->m, q->prompt, q->P, q->length, q->sp, &rng, emit, arg);
}

static void keep_token(int32_t tok, void *arg) {
    int32_t **at = arg;
    *(*at)++ = tok;
}

struct round {
    const struct samples *q;
    struct worker *w;
    int64_t first, n; /* samples first .. first + n - 1 */
};

/* Thread t's samples of the round, each into its worker's tokens. */
static void round_samples(void *arg, int t, int nt) {
    const struct round *r = arg;
    for (int64_t k = t; k < r->n; k += nt) {
        int32_t *at = r->w[k].tok;
        sample_on(r->w[k].c, r->q, r->first + k, keep_token, &at);
    }
}

/* Whether samples after the first go a sample a thread, on `have` threads. */
static int per_thread(const struct gen_tf_cache *c, const struct gen_tf *m, int64_t have,
                      enum gen_tf_samples how) {
    if (have < 2 || how == GEN_TF_SAMPLES_ONE_BY_ONE) return 0;
    if (how == GEN_TF_SAMPLES_PER_THREAD) return 1;
    if (gen_tf_decode_threads(c, m) < 2) return 1;
    /* a trial that found a thread descheduled (another process on its core)
     * keeps the samples one at a time: a round would wait for that thread */
    return !c->tune.stalled && c->tune.speedup > 0.0 &&
           c->tune.speedup < PER_THREAD_PACE * (double)have;
}

/* Up to `want` workers for a sample a thread, worker 0 on c; *got of them
 * made (fewer where memory ran out: the rest go one after another). */
static struct worker *workers(struct gen_tf_cache *c, const struct gen_tf *m, int64_t want,
                              int64_t length, int64_t *got) {
    struct worker *w = gen_calloc((size_t)want, sizeof *w);
    int64_t k = 0;
    for (; w && k < want; k++) {
        w[k].c = k ? &w[k].own : c;
        if (k && gen_tf_cache_init(w[k].c, m) != GEN_OK) break;
        if ((k && c->wb_on && gen_tf_cache_bf16(w[k].c, m, 1) != GEN_OK) ||
            !(w[k].tok = gen_alloc((size_t)length * sizeof *w[k].tok))) {
            if (k) gen_tf_cache_free(w[k].c);
            break;
        }
    }
    if (k < want) gen_clear_error();
    *got = k;
    return w;
}

static void free_workers(struct worker *w, int64_t n) {
    for (int64_t k = 0; w && k < n; k++) {
        if (k) gen_tf_cache_free(w[k].c);
        gen_free(w[k].tok);
    }
    gen_free(w);
}

int64_t gen_tf_generate_samples(struct gen_tf_cache *c, const struct gen_tf *m,
                                const int32_t *prompt, int64_t P, int64_t length, int64_t n,
                                uint64_t seed, const struct gen_sampling *sp,
                                enum gen_tf_samples how, void (*start)(int64_t i, void *arg),
                                void (*emit)(int32_t tok, void *arg), void *arg) {
    const struct samples q = {m, prompt, P, length, seed, sp};
    int64_t i = 0;
    if (n > 0) { /* the first as its tokens are drawn (and decoding's trial) */
        start(0, arg);
        sample_on(c, &q, i++, emit, arg);
    }
    int64_t per = n - i < gen_threads() ? n - i : gen_threads(), got = 0;
    if (per > 1 && per * length > PER_THREAD_TOKENS) per = PER_THREAD_TOKENS / length;
    if (c->bytes > PER_THREAD_CACHE) per = 1;
    struct worker *w = per_thread(c, m, per, how) ? workers(c, m, per, length, &got) : NULL;
    if (got > 1) {
        for (int64_t k = 0; k < got; k++) w[k].c->solo = 1;
        /* whole rounds; fewer samples than threads left go one at a
         * time below, each sample's tokens shared (no thread idle) */
        for (; n - i >= got; i += got) {
            struct round r = {&q, w, i, got};
            gen_parallel_n((int)r.n, round_samples, &r);
            for (int64_t k = 0; k < r.n; k++) {
                start(i + k, arg);
                for (int64_t j = 0; j < length; j++) emit(w[k].tok[j], arg);
            }
        }
        c->solo = 0;
    }
    free_workers(w, got);
    for (; i < n; i++) {
        start(i, arg);
        sample_on(c, &q, i, emit, arg);
    }
    return got > 1 ? got : 1;
}
