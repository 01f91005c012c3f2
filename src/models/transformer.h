/* transformer.h - internals of the GPT family (src/models/transformer.c,
 * transformer_sample.c)
 * shared with tests/test_transformer.c: the network on the tape and the
 * KV cache that samples outside it.
 *
 * Letters: L layers, NH heads, C width, hd = C / NH, T context, V
 * vocabulary, B windows of a batch. */
#ifndef GEN_MODELS_TRANSFORMER_H
#define GEN_MODELS_TRANSFORMER_H

#include "gen/nn.h"
#include "models/sampler.h"

struct gen_tf_shape {
    int64_t L, NH, C, T, V;
};

/* Parameter indices of one pre-LN block (PyTorch/GPT-2 names under h.N). */
struct gen_tf_block {
    int ln1_w, ln1_b;     /* ln_1 (C)                                    */
    int attn_w, attn_b;   /* attn.c_attn (3C, C), (3C): packed q, k, v   */
    int aproj_w, aproj_b; /* attn.c_proj (C, C), (C)                     */
    int ln2_w, ln2_b;     /* ln_2 (C)                                    */
    int fc_w, fc_b;       /* mlp.c_fc (4C, C), (4C)                      */
    int mproj_w, mproj_b; /* mlp.c_proj (C, 4C), (C)                     */
};

/* The KV cache of sampling (functions below). */
struct gen_tf_cache {
    int64_t len;              /* positions held (0..T)                    */
    int64_t rows;             /* rows of x, h, mean, rstd: max(T, threads) */
    float *k, *v;             /* (L, NH, T, hd) each                       */
    int32_t *hist;            /* (T) the tokens at positions 0..len-1     */
    float *x, *h, *y, *qkv, *att, *fc, *act, *mean, *rstd, *logits; /* rows */
    float *s, *p;             /* (NH, T, T) attention scores, probabilities */
    float *row;               /* (NH, row_scratch) those of one row         */
    float *pick;              /* GEN_SAMPLER_WORK(V): gen_sampler_pick's   */
    float *block;             /* the one allocation behind all of these   */
    size_t bytes;             /* its size                                 */
    uint16_t *wb;             /* the parameters in bf16 (gen_tf_cache_bf16) */
    int wb_on;                /* one-token products read wb               */
    int solo;                 /* decode on the calling thread alone       */
    struct gen_tune tune;     /* decoding on one thread or on several     */
};

/* The model's random streams: weight init, dropout. */
enum { GEN_TF_RNG_INIT, GEN_TF_RNG_DROPOUT, GEN_TF_N_RNG };

struct gen_tf {
    struct gen_tf_shape s;
    float dropout;            /* residual/embedding dropout when training */
    struct gen_params ps;
    int wte, wpe;             /* (V, C) tied with the head, (T, C)        */
    int lnf_w, lnf_b;         /* ln_f (C)                                 */
    struct gen_tf_block *blk; /* (L)                                      */
    int32_t *pos;             /* (T) 0, 1, ..., T-1: position lookup ids  */
    struct gen_rng rng[GEN_TF_N_RNG];
    /* dropout in training: the batch's seed and first window (set by the
     * loss verb), and the dropouts of this forward pass so far */
    uint64_t drop_seed;
    int64_t drop_first;
    int drop_calls;
    struct gen_tf_cache cache;         /* the family's sampling (create allocates it) */
};

#define GEN_TF_LN_EPS 1e-5f /* every LayerNorm's epsilon */

/* The values of parameter tensor idx. */
static inline float *gen_tf_pdata(const struct gen_tf *m, int idx) {
    return m->ps.data + m->ps.p[idx].offset;
}

/* Declares every tensor and finalizes the parameter arena (values unset;
 * with_ema: an EMA block too). The shape must be valid (NH divides C, all
 * >= 1). Dropout masks come from drop_seed and drop_first, which the
 * caller sets. */
enum gen_status gen_tf_init(struct gen_tf *m, const struct gen_tf_shape *s, float dropout,
                            int with_ema);
/* GPT-2 initialisation: N(0, 0.02) weights and embeddings, residual
 * projections N(0, 0.02 / sqrt(2 L)), biases 0, LayerNorm 1 and 0. */
void gen_tf_init_weights(struct gen_tf *m, struct gen_rng *r);
/* Frees the parameters and m->cache. */
void gen_tf_free(struct gen_tf *m);

/* One block: x + attn(ln_1 x), then x + mlp(ln_2 x); x (B, T, C). */
struct gen_tensor *gen_tf_block_fwd(struct gen_ctx *g, struct gen_tf *m, int layer,
                                    struct gen_tensor *x);
/* Logits (B, T, V) for tokens (B, T) (caller-owned until backward), T <= s.T. */
struct gen_tensor *gen_tf_forward(struct gen_ctx *g, struct gen_tf *m, const int32_t *tokens,
                                  int64_t B, int64_t T);

/* ---- the KV cache: no tape, kernel table + gen_gemm ---- */

enum gen_status gen_tf_cache_init(struct gen_tf_cache *c, const struct gen_tf *m);
void gen_tf_cache_free(struct gen_tf_cache *c);
/* on: one-token products (decoding, a prefill's last row) from here on
 * read a bf16 copy of m's parameters, made now, with their other operand
 * rounded to bf16 too, as --precision bf16's GEMMs round theirs (half the
 * bytes to stream a token); off: the fp32 parameters. Call it again after
 * the parameters change. */
enum gen_status gen_tf_cache_bf16(struct gen_tf_cache *c, const struct gen_tf *m, int on);
/* Runs tokens tok[0..n) at positions len..len+n-1 (len + n <= T) through
 * the network, appending their keys and values. Returns the logits of all
 * n rows (n, V) when `all`, else of the last row only (V); the buffer is
 * the cache's and is overwritten by the next call. */
const float *gen_tf_cache_feed(struct gen_tf_cache *c, const struct gen_tf *m,
                               const int32_t *tok, int64_t n, int all);
/* Feeds any number of tokens; whenever the cache is full it slides: the
 * last T/2 tokens are re-encoded at positions 0..T/2-1 and feeding goes on
 * from there. Returns the logits (V) after the last token (n >= 1). */
const float *gen_tf_cache_push(struct gen_tf_cache *c, const struct gen_tf *m,
                               const int32_t *tok, int64_t n);

/* The threads decoding a token may take: one per 256 KiB of weights it
 * streams, at most the cache's rows (gen_parallel_tuned then picks these
 * or one). */
int gen_tf_decode_threads(const struct gen_tf_cache *c, const struct gen_tf *m);

/* Generates `length` tokens after prompt[0..P) (P >= 1; the cache is reset
 * first and a prompt longer than the context keeps its last T tokens),
 * calling emit for each as soon as it is drawn. */
void gen_tf_generate(struct gen_tf_cache *c, const struct gen_tf *m, const int32_t *prompt,
                     int64_t P, int64_t length, const struct gen_sampling *sp,
                     struct gen_rng *rng, void (*emit)(int32_t tok, void *arg), void *arg);

/* How gen_tf_generate_samples shares the threads: each sample's tokens
 * across them, one sample after another (ONE_BY_ONE), or a sample a thread
 * (PER_THREAD), or whichever the first sample's decoding found faster. */
enum gen_tf_samples { GEN_TF_SAMPLES_AUTO, GEN_TF_SAMPLES_ONE_BY_ONE, GEN_TF_SAMPLES_PER_THREAD };

/* n samples of `length` tokens after prompt[0..P), sample i drawn by a
 * generator seeded seed + i, so that it is the same whatever n and
 * however the threads are shared. On the calling thread, for i = 0, 1, ..:
 * start(i, arg), then emit(token, arg) for each of sample i's tokens.
 * Sample 0 decodes on c, its tokens emitted as they are drawn; samples
 * decoded a sample a thread are emitted as each round of them ends.
 * Returns how many samples after the first were decoded at once (1: one
 * after another). */
int64_t gen_tf_generate_samples(struct gen_tf_cache *c, const struct gen_tf *m,
                                const int32_t *prompt, int64_t P, int64_t length, int64_t n,
                                uint64_t seed, const struct gen_sampling *sp,
                                enum gen_tf_samples how, void (*start)(int64_t i, void *arg),
                                void (*emit)(int32_t tok, void *arg), void *arg);

#endif
