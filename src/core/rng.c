/* rng.c - xoshiro256** (Blackman & Vigna) seeded through splitmix64. */
#include <math.h>

#include "gen/core.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void gen_rng_seed(struct gen_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void gen_rng_seed_keyed(struct gen_rng *r, uint64_t seed, uint64_t purpose, int64_t index) {
    /* each key word goes through splitmix64 before the next is mixed in */
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ purpose;
    h = splitmix64(&x);
    x = h ^ (uint64_t)index;
    gen_rng_seed(r, splitmix64(&x));
}

uint64_t gen_rng_next(struct gen_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t gen_rng_u32(struct gen_rng *r) { return (uint32_t)(gen_rng_next(r) >> 32); }

uint64_t gen_rng_below(struct gen_rng *r, uint64_t n) {
    GEN_ASSERT(n > 0);
    /* Rejection sampling: discard the top partial range. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = gen_rng_next(r);
    while (x >= limit);
    return x % n;
}

float gen_rng_uniform(struct gen_rng *r) {
    return (float)(gen_rng_next(r) >> 40) * (1.0f / 16777216.0f); /* 24 bits */
}

float gen_rng_normal(struct gen_rng *r) {
    /* u1 in (0, 1] so the log is finite. */
    double u1 = ((double)(gen_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(gen_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void gen_rng_fill_normal(struct gen_rng *r, float *x, int64_t n, float mean, float std) {
    for (int64_t i = 0; i < n; i++) x[i] = mean + std * gen_rng_normal(r);
}

void gen_rng_fill_uniform(struct gen_rng *r, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * gen_rng_uniform(r);
}

void gen_rng_shuffle(struct gen_rng *r, int32_t *perm, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)gen_rng_below(r, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
