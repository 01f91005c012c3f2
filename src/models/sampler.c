/* sampler.c - the next token from a model's logits: greedy, or a draw
 * from softmax(logits / temperature) cut to the top_k likeliest tokens
 * and then to the smallest set with mass >= top_p (see sampler.h). */
#include <math.h>
#include <string.h>

#include "gen/kernels.h"
#include "models/sampler.h"

struct pick {
    float p;
    int32_t i;
};

/* Whether a comes before b in the order of the cut: the likelier first,
 * between equals the lower id. */
static int before(struct pick a, struct pick b) {
    return a.p > b.p || (a.p == b.p && a.i < b.i);
}

/* Moves w[r] down the heap w[0 .. n) (each parent before its children)
 * to its place. */
static void sift(struct pick *w, int64_t n, int64_t r) {
    for (int64_t c = 2 * r + 1; c < n; r = c, c = 2 * r + 1) {
        if (c + 1 < n && before(w[c + 1], w[c])) c++;
        if (!before(w[c], w[r])) return;
        const struct pick t = w[c];
        w[c] = w[r];
        w[r] = t;
    }
}

/* The sum of w[0 .. n)'s probabilities. */
static double mass(const struct pick *w, int64_t n) {
    double sum = 0;
    for (int64_t j = 0; j < n; j++) sum += w[j].p;
    return sum;
}

/* The top_k / top_p cut of w[0 .. V) (probabilities summing to sum):
 * moves the tokens kept to w[0 .. k), the likeliest first, and returns k.
 * They come off a heap one at a time until the cut is reached, so a cut
 * to a few tokens costs little more than building the heap (qsort of all
 * 256 tokens took 19 us, a third of decoding a token). */
static int64_t cut(struct pick *w, int64_t V, double sum, const struct gen_sampling *sp) {
    const int64_t most = sp->top_k > 0 && sp->top_k < V ? sp->top_k : V;
    for (int64_t r = V / 2 - 1; r >= 0; r--) sift(w, V, r);
    int64_t n = V; /* the heap; the tokens kept gather at w[n ..), the likeliest last */
    double cum = 0;
    while (V - n < most) {
        const struct pick top = w[0];
        w[0] = w[--n];
        w[n] = top;
        sift(w, n, 0);
        cum += top.p / sum;
        if (sp->top_p < 1.0f && cum >= sp->top_p) break;
    }
    const int64_t k = V - n;
    for (int64_t j = 0; j < k / 2; j++) { /* the likeliest first */
        const struct pick t = w[n + j];
        w[n + j] = w[V - 1 - j];
        w[V - 1 - j] = t;
    }
    memmove(w, w + n, (size_t)k * sizeof *w);
    return k;
}

int32_t gen_sampler_pick(const float *logits, int64_t V, const struct gen_sampling *sp,
                         struct gen_rng *rng, void *work) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    /* greedy; also where 1 / temperature overflows (a temperature below
     * 3e-39), the limit it tends to, where the scaled logits would be 0 x
     * inf = NaN */
    const float inv = sp->temperature > 0.0f ? 1.0f / sp->temperature : INFINITY;
    if (!(inv < INFINITY) || sp->top_k == 1) return (int32_t)best;
    /* softmax(logits / temperature) by the kernel table, the logits
     * shifted by their max first (so that the scaled ones are <= 0 and
     * finite) and held in the pairs' room until the pairs are made */
    struct pick *w = work;
    float *z = work, *p = (float *)(w + V);
    const float mx = logits[best];
    for (int64_t v = 0; v < V; v++) z[v] = (logits[v] - mx) * inv;
    gen_kernels()->softmax_fwd(1, V, z, p);
    for (int64_t v = 0; v < V; v++) w[v] = (struct pick){p[v], (int32_t)v};
    int64_t k = V;
    if ((sp->top_k > 0 && sp->top_k < V) || sp->top_p < 1.0f) k = cut(w, V, mass(w, V), sp);
    double u = (double)gen_rng_uniform(rng) * mass(w, k);
    for (int64_t j = 0; j < k; j++) {
        u -= w[j].p;
        if (u < 0) return w[j].i;
    }
    for (int64_t j = k - 1; j > 0; j--) /* rounding: the last token with mass */
        if (w[j].p > 0) return w[j].i;
    return w[0].i;
}
