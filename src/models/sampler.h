/* sampler.h - choosing the next token from a model's logits (sampler.c):
 * greedy, temperature, top-k and top-p (nucleus) sampling. */
#ifndef GEN_MODELS_SAMPLER_H
#define GEN_MODELS_SAMPLER_H

#include <stdint.h>

#include "gen/core.h"

struct gen_sampling {
    float temperature; /* 0: greedy                              */
    int64_t top_k;     /* 0: all tokens                          */
    float top_p;       /* 1: off                                 */
};

/* Floats of work gen_sampler_pick needs for a vocabulary of V. */
#define GEN_SAMPLER_WORK(V) (3 * (V))

/* The next token from logits (V): argmax when temperature is 0 (or
 * top_k 1, or a temperature so small that 1 / temperature overflows);
 * else softmax(logits / temperature) cut to the top_k likeliest (the
 * lower id between equals) and then to the smallest set of them with
 * mass >= top_p, renormalised, one draw from rng. work:
 * GEN_SAMPLER_WORK(V) floats. */
int32_t gen_sampler_pick(const float *logits, int64_t V, const struct gen_sampling *sp,
                         struct gen_rng *rng, void *work);

#endif
