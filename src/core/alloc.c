/* alloc.c - aligned allocation through one seam (fault injection for tests),
 * overflow-checked size arithmetic, and the bump arena. */
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "gen/core.h"

#define ALIGN 64

/* Blocks of HUGE_MIN bytes and more (the arena's chunks of activations, a
 * data set, the parameters and their optimiser state) start on a 2 MiB
 * boundary, are rounded up to whole 2 MiB and asked of Linux as
 * transparent huge pages (where its setting is "madvise", the default on
 * Debian, only memory so marked gets them): a 64-image DDIM pass faulted
 * 66 500 pages of 4 KiB in its first step, 3 800 so (docs/DESIGN.md,
 * Memory of a step). */
#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

static void *aligned_block(size_t rounded) {
#ifdef MADV_HUGEPAGE
    if (rounded >= HUGE_MIN && rounded <= SIZE_MAX - HUGE_PAGE) {
        const size_t whole = (rounded + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        void *p = aligned_alloc(HUGE_PAGE, whole);
        if (p) (void)madvise(p, whole, MADV_HUGEPAGE); /* advice: a refusal changes nothing */
        return p;
    }
#endif
    return aligned_alloc(ALIGN, rounded);
}

static long fail_countdown; /* >0: the allocation that brings it to 0 fails */
static long alloc_count;
static size_t budget_limit, budget_used; /* limit > 0: allocations add up to at most it */

void gen_alloc_fail_after(long n) { fail_countdown = n > 0 ? n : 0; }
size_t gen_alloc_limit(size_t bytes) {
    size_t before = budget_limit;
    budget_limit = bytes;
    budget_used = 0;
    return before;
}
long gen_alloc_count(void) { return alloc_count; }

int gen_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int gen_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

void *gen_alloc(size_t bytes) {
    if (fail_countdown > 0 && --fail_countdown == 0) {
        gen_error(GEN_ERR_NOMEM, "out of memory (injected failure, %zu bytes)", bytes);
        return NULL;
    }
    if (budget_limit) {
        if (bytes > budget_limit - budget_used) {
            gen_error(GEN_ERR_NOMEM, "%zu more bytes requested, past the limit of %zu", bytes,
                      budget_limit);
            return NULL;
        }
        budget_used += bytes;
    }
    size_t rounded;
    if (!gen_add_size(bytes ? bytes : 1, ALIGN - 1, &rounded)) {
        gen_error(GEN_ERR_NOMEM, "out of memory: %zu bytes requested", bytes);
        return NULL;
    }
    rounded &= ~(size_t)(ALIGN - 1);
    void *p = aligned_block(rounded);
    if (!p) {
        gen_error(GEN_ERR_NOMEM, "out of memory: %zu bytes requested", bytes);
        return NULL;
    }
    alloc_count++;
    return p;
}

void *gen_calloc(size_t count, size_t size) {
    size_t bytes;
    if (!gen_mul_size(count, size, &bytes)) {
        gen_error(GEN_ERR_NOMEM, "out of memory: %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = gen_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void gen_free(void *p) { free(p); }

/* ---- arena ---- */

struct gen_arena_chunk {
    struct gen_arena_chunk *next; /* the newer chunk after it */
    size_t size, used;
    _Alignas(ALIGN) unsigned char data[];
};

static struct gen_arena_chunk *chunk_new(size_t size) {
    struct gen_arena_chunk *c = gen_alloc(sizeof *c + size);
    if (!c) {
        fprintf(stderr, "gen: out of memory allocating %zu bytes of activations\n", size);
        exit(1);
    }
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void gen_arena_init(struct gen_arena *a, size_t min_chunk) {
    memset(a, 0, sizeof *a);
    a->min_chunk = min_chunk ? min_chunk : (size_t)1 << 20;
}

void gen_arena_free(struct gen_arena *a) {
    struct gen_arena_chunk *c = a->first;
    while (c) {
        struct gen_arena_chunk *next = c->next;
        gen_free(c);
        c = next;
    }
    a->head = a->first = NULL;
    a->used_total = 0;
}

/* The chunks stay, and the next step bumps them again from the oldest:
 * asking for the same blocks in the same order, it lands where the first
 * step did, in memory that is already mapped. (Folding them into one new
 * chunk, as this did before, made the second step fault in every page
 * again: 60 000 page faults for a 64-image U-Net pass.) */
void gen_arena_reset(struct gen_arena *a) {
    a->head = a->first;
    if (a->head) a->head->used = 0;
    a->used_total = 0;
}

void *gen_arena_alloc(struct gen_arena *a, size_t bytes) {
    size_t need = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    GEN_ASSERT(need >= bytes);
    struct gen_arena_chunk *c = a->head;
    while (c && c->size - c->used < need && c->next) { /* on to a chunk an earlier step made */
        c = c->next;
        c->used = 0;
    }
    if (!c || c->size - c->used < need) { /* a new chunk after the last */
        size_t size = need > a->min_chunk ? need : a->min_chunk;
        if (c && size < c->size * 2) size = c->size * 2;
        struct gen_arena_chunk *n = chunk_new(size);
        if (c) c->next = n;
        else a->first = n;
        c = n;
    }
    a->head = c;
    void *p = c->data + c->used;
    c->used += need;
    a->used_total += need;
    if (a->used_total > a->peak) a->peak = a->used_total;
    return p;
}

const void *gen_arena_top(const struct gen_arena *a) {
    return a->head ? a->head->data + a->head->used : NULL;
}

int gen_arena_extend(struct gen_arena *a, size_t bytes) {
    struct gen_arena_chunk *c = a->head;
    GEN_ASSERT(bytes % ALIGN == 0);
    if (!c || c->size - c->used < bytes) return 0;
    c->used += bytes;
    a->used_total += bytes;
    if (a->used_total > a->peak) a->peak = a->used_total;
    return 1;
}

void *gen_arena_calloc(struct gen_arena *a, size_t bytes) {
    void *p = gen_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}
