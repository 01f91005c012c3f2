/* batcher.c - epoch-wise shuffled batches whose whole state is a cursor.
 *
 * The order of epoch e is a Fisher-Yates shuffle of 0..n-1 by an rng
 * seeded with mix(seed, e), recomputed when the epoch changes, so
 * (epoch, pos) is all a checkpoint needs to resume the same stream. */
#include <string.h>

#include "gen/data.h"

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

enum gen_status gen_batcher_init(struct gen_batcher *b, int64_t n, int batch, uint64_t seed,
                                 int flags) {
    memset(b, 0, sizeof *b);
    b->perm_epoch = -1;
    if (n < 1 || n > INT32_MAX)
        return gen_error(GEN_ERR_USAGE, "cannot batch %lld examples (need 1..%d)", (long long)n,
                         INT32_MAX);
    if (batch < 1) return gen_error(GEN_ERR_USAGE, "batch size %d must be at least 1", batch);
    if ((flags & GEN_BATCH_DROP_LAST) && batch > n)
        return gen_error(GEN_ERR_USAGE,
                         "batch size %d is larger than the %lld examples of the data set", batch,
                         (long long)n);
    b->perm = gen_alloc((size_t)n * sizeof *b->perm);
    if (!b->perm) return GEN_ERR_NOMEM;
    b->n = n;
    b->batch = batch;
    b->seed = seed;
    b->flags = flags;
    return GEN_OK;
}

void gen_batcher_free(struct gen_batcher *b) {
    gen_free(b->perm);
    memset(b, 0, sizeof *b);
    b->perm_epoch = -1;
}

/* Where epoch batches end: n, or the last full batch with DROP_LAST. */
static int64_t epoch_end(const struct gen_batcher *b) {
    return (b->flags & GEN_BATCH_DROP_LAST) ? b->n - b->n % b->batch : b->n;
}

static void make_perm(struct gen_batcher *b) {
    for (int64_t i = 0; i < b->n; i++) b->perm[i] = (int32_t)i;
    if (!(b->flags & GEN_BATCH_SEQUENTIAL)) {
        struct gen_rng r;
        gen_rng_seed(&r, mix64(b->seed ^ mix64((uint64_t)b->epoch + 0x5eedull)));
        gen_rng_shuffle(&r, b->perm, b->n);
    }
    b->perm_epoch = b->epoch;
}

int gen_batcher_next(struct gen_batcher *b, int32_t *idx) {
    GEN_ASSERT(b->perm != NULL);
    if (b->perm_epoch != b->epoch) make_perm(b);
    int64_t end = epoch_end(b);
    int64_t k = end - b->pos < b->batch ? end - b->pos : b->batch;
    GEN_ASSERT(k > 0);
    memcpy(idx, b->perm + b->pos, (size_t)k * sizeof *idx);
    b->pos += k;
    if (b->pos >= end) {
        b->epoch++;
        b->pos = 0;
    }
    return (int)k;
}

int64_t gen_batcher_epoch(const struct gen_batcher *b) { return b->epoch; }

void gen_batcher_cursor(const struct gen_batcher *b, int64_t *epoch, int64_t *pos) {
    *epoch = b->epoch;
    *pos = b->pos;
}

enum gen_status gen_batcher_restore(struct gen_batcher *b, int64_t epoch, int64_t pos) {
    if (epoch < 0 || pos < 0 || pos > epoch_end(b) || pos % b->batch != 0)
        return gen_error(GEN_ERR_FORMAT,
                         "data cursor (epoch %lld, position %lld) does not fit %lld examples in "
                         "batches of %d", (long long)epoch, (long long)pos, (long long)b->n,
                         b->batch);
    b->epoch = epoch;
    b->pos = pos;
    if (b->pos >= epoch_end(b)) {
        b->epoch++;
        b->pos = 0;
    }
    return GEN_OK;
}

int64_t gen_batcher_batches_per_epoch(const struct gen_batcher *b) {
    return (b->flags & GEN_BATCH_DROP_LAST) ? b->n / b->batch : (b->n + b->batch - 1) / b->batch;
}
