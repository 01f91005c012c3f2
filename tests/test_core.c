/* test_core.c - errors, allocation seam, arena, rng, params, optimiser,
 * schedules, the threads' split and barrier, a cgroup's CPU quota, the op
 * profile. */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gen/nn.h"
#include "testutil.h"

static void test_error_message(void **state) {
    (void)state;
    assert_int_equal(gen_error(GEN_ERR_IO, "%s: cannot open", "x.bin"), GEN_ERR_IO);
    assert_string_equal(gen_last_error(), "x.bin: cannot open");
    /* A message that wraps the one in force (it was written over itself). */
    gen_error(GEN_ERR_FORMAT, "%s: config: %s", "c.safetensors", gen_last_error());
    assert_string_equal(gen_last_error(), "c.safetensors: config: x.bin: cannot open");
    /* Names quoted from a file cannot break the line or reach the terminal. */
    gen_error(GEN_ERR_FORMAT, "%s: tensor '%s'", "c.safetensors", "a\nb\033[2Jc\x7f\t\xc3\xa9");
    assert_string_equal(gen_last_error(), "c.safetensors: tensor 'a?b?[2Jc??\xc3\xa9'");
}

static void test_alloc_fault_injection(void **state) {
    (void)state;
    gen_alloc_fail_after(2);
    void *a = gen_alloc(16);
    void *b = gen_alloc(16);
    void *c = gen_alloc(16);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    assert_int_equal((uintptr_t)a % 64, 0);
    gen_free(a);
    gen_free(c);
    size_t out;
    assert_false(gen_mul_size(SIZE_MAX / 2, 3, &out));
    assert_null(gen_calloc(SIZE_MAX / 2, 3));
}

/* Blocks of 4 MiB and more start on a 2 MiB boundary (huge pages,
 * src/core/alloc.c), smaller ones on 64 bytes; both hold what was asked. */
static void test_alloc_large_blocks(void **state) {
    (void)state;
    const size_t sizes[] = {((size_t)4 << 20) - 64, (size_t)4 << 20, ((size_t)5 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = gen_alloc(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
#ifdef __linux__
        if (sizes[i] >= ((size_t)4 << 20)) assert_int_equal((uintptr_t)p % ((size_t)2 << 20), 0);
#endif
        memset(p, 0xA5, sizes[i]);
        assert_int_equal(p[sizes[i] - 1], 0xA5);
        gen_free(p);
    }
}

static void test_arena_stops_allocating(void **state) {
    (void)state;
    struct gen_arena a;
    gen_arena_init(&a, 1024);
    for (int step = 0; step < 4; step++) {
        long before = gen_alloc_count();
        for (int i = 0; i < 50; i++) {
            float *p = gen_arena_alloc(&a, 1000);
            assert_int_equal((uintptr_t)p % 64, 0);
            p[249] = 1.0f;
        }
        gen_arena_reset(&a);
        /* Step 0 grows the chunks; later steps bump the same ones again. */
        if (step >= 1) assert_int_equal(gen_alloc_count(), before);
    }
    assert_true(a.peak >= 50 * 1000);
    gen_arena_free(&a);
}

static void test_rng(void **state) {
    (void)state;
    struct gen_rng a, b;
    gen_rng_seed(&a, 42);
    gen_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(gen_rng_next(&a) == gen_rng_next(&b));
    /* Saved state continues the same stream. */
    struct gen_rng saved = a;
    uint64_t x = gen_rng_next(&a);
    assert_true(gen_rng_next(&saved) == x);
    /* Normal samples: mean ~0, var ~1. */
    double s = 0, ss = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = gen_rng_normal(&a);
        assert_true(isfinite(z));
        s += z;
        ss += z * z;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(ss / n - 1.0) < 0.02);
    for (int i = 0; i < 1000; i++) {
        float u = gen_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        assert_true(gen_rng_below(&a, 7) < 7);
    }
    int32_t perm[50], seen[50] = {0};
    for (int i = 0; i < 50; i++) perm[i] = i;
    gen_rng_shuffle(&a, perm, 50);
    for (int i = 0; i < 50; i++) seen[perm[i]]++;
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
}

static void test_params_layout(void **state) {
    (void)state;
    struct gen_params ps;
    gen_params_init(&ps);
    int w = gen_params_add(&ps, "fc.weight", GEN_PARAM_WEIGHT, 0, 2, (int64_t[]){3, 4});
    int b = gen_params_add(&ps, "fc.bias", GEN_PARAM_NODECAY, 0, 1, (int64_t[]){3});
    int rm = gen_params_add(&ps, "bn.running_mean", GEN_PARAM_BUFFER, 0, 1, (int64_t[]){5});
    assert_int_equal(gen_params_finalize(&ps, 1), GEN_OK);
    assert_int_equal(gen_params_count(&ps), 15);
    assert_ptr_equal(gen_params_tensor(&ps, w)->data, ps.data);
    assert_ptr_equal(gen_params_tensor(&ps, b)->data, ps.data + 12);
    assert_ptr_equal(gen_params_tensor(&ps, rm)->data, ps.buffers);
    assert_false(gen_params_tensor(&ps, rm)->requires_grad);
    assert_true(gen_params_tensor(&ps, w)->requires_grad);
    assert_ptr_equal(gen_params_find(&ps, "fc.bias"), &ps.p[b]);
    assert_null(gen_params_find(&ps, "nope"));
    /* EMA swap points tensors at the other block and back. */
    gen_ema_copy_in(&ps);
    float *before = gen_params_tensor(&ps, b)->data;
    gen_ema_swap(&ps);
    assert_ptr_not_equal(gen_params_tensor(&ps, b)->data, before);
    gen_ema_swap(&ps);
    assert_ptr_equal(gen_params_tensor(&ps, b)->data, before);
    gen_params_free(&ps);
}

static void test_init_fan_in(void **state) {
    (void)state;
    struct gen_params ps;
    gen_params_init(&ps);
    int w = gen_params_add(&ps, "w", GEN_PARAM_WEIGHT, 0, 2, (int64_t[]){64, 100});
    assert_int_equal(gen_params_finalize(&ps, 0), GEN_OK);
    struct gen_rng r;
    gen_rng_seed(&r, 1);
    struct gen_tensor *t = gen_params_tensor(&ps, w);
    gen_init_uniform_fan_in(t, 100, &r);
    float lo = 1, hi = -1;
    for (int i = 0; i < 6400; i++) {
        lo = fminf(lo, t->data[i]);
        hi = fmaxf(hi, t->data[i]);
    }
    assert_true(lo >= -0.1f && hi <= 0.1f && lo < -0.09f && hi > 0.09f);
    gen_params_free(&ps);
}

static void test_schedule(void **state) {
    (void)state;
    struct gen_schedule s = {GEN_SCHED_WARMUP_COSINE, 1e-3f, 1e-4f, 100, 5000};
    assert_float_equal(gen_schedule_lr(&s, 0), 1e-5f, 1e-9f);
    assert_float_equal(gen_schedule_lr(&s, 99), 1e-3f, 1e-9f);
    assert_float_equal(gen_schedule_lr(&s, 100), 1e-3f, 1e-9f);
    assert_float_equal(gen_schedule_lr(&s, 4999), 1e-4f, 1e-9f);
    float mid = gen_schedule_lr(&s, 100 + 4899 / 2);
    assert_true(fabsf(mid - 5.5e-4f) < 1e-6f);
    struct gen_schedule c = {GEN_SCHED_CONSTANT, 2e-4f, 0, 0, 0};
    assert_float_equal(gen_schedule_lr(&c, 12345), 2e-4f, 0);
}

static void test_sgd_and_clip(void **state) {
    (void)state;
    struct gen_params ps;
    gen_params_init(&ps);
    int w = gen_params_add(&ps, "w", GEN_PARAM_WEIGHT, 0, 1, (int64_t[]){2});
    int v = gen_params_add(&ps, "v", GEN_PARAM_WEIGHT, 1, 1, (int64_t[]){2});
    assert_int_equal(gen_params_finalize(&ps, 0), GEN_OK);
    struct gen_tensor *tw = gen_params_tensor(&ps, w), *tv = gen_params_tensor(&ps, v);
    tw->data[0] = 1, tw->data[1] = 2, tv->data[0] = 5, tv->data[1] = 5;
    tw->grad[0] = 3, tw->grad[1] = 4, tv->grad[0] = 1, tv->grad[1] = 1;
    double norm = gen_clip_grad_norm(&ps, 0, 1.0);
    assert_true(fabs(norm - 5.0) < 1e-6);
    assert_true(fabsf(tw->grad[0] - 0.6f) < 1e-5f && fabsf(tw->grad[1] - 0.8f) < 1e-5f);
    assert_float_equal(tv->grad[0], 1.0f, 0); /* other group untouched */
    struct gen_optim sgd = {GEN_OPTIM_SGD, 0.1f, 0, 0, 0, 0, 0.9f};
    gen_optim_step(&sgd, &ps, 0, 0.1f);
    assert_true(fabsf(tw->data[0] - (1 - 0.06f)) < 1e-6f);
    assert_float_equal(tv->data[0], 5.0f, 0);
    assert_int_equal(ps.step[0], 1);
    assert_int_equal(ps.step[1], 0);
    gen_params_free(&ps);
}

/* gen_params_zero_grad fills nothing but a frozen tensor's gradient; the
 * rest read as zero (stale) until written, and gen_params_grad_ready fills
 * a group's. */
static void test_zero_grad_is_lazy(void **state) {
    (void)state;
    struct gen_params ps;
    gen_params_init(&ps);
    const int a = gen_params_add(&ps, "a", GEN_PARAM_WEIGHT, 0, 1, (int64_t[]){3});
    const int b = gen_params_add(&ps, "b", GEN_PARAM_WEIGHT, 1, 1, (int64_t[]){3});
    const int c = gen_params_add(&ps, "c", GEN_PARAM_WEIGHT, 1, 1, (int64_t[]){3});
    assert_int_equal(gen_params_finalize(&ps, 0), GEN_OK);
    for (int64_t i = 0; i < ps.n_train; i++) ps.grad[i] = 5.0f;
    gen_params_tensor(&ps, c)->requires_grad = 0; /* frozen */
    gen_params_zero_grad(&ps);
    assert_true(gen_params_tensor(&ps, a)->grad_stale && gen_params_tensor(&ps, b)->grad_stale);
    assert_false(gen_params_tensor(&ps, c)->grad_stale);
    for (int i = 0; i < 3; i++) {
        assert_true(gen_params_tensor(&ps, a)->grad[i] == 5.0f); /* not filled */
        assert_true(gen_params_tensor(&ps, c)->grad[i] == 0.0f);
    }
    gen_params_grad_ready(&ps, 1);
    assert_false(gen_params_tensor(&ps, b)->grad_stale);
    assert_true(gen_params_tensor(&ps, a)->grad_stale); /* other group */
    for (int i = 0; i < 3; i++) assert_true(gen_params_tensor(&ps, b)->grad[i] == 0.0f);
    gen_params_free(&ps);
}

/* A profile attached to a context counts every op's forward (also one
 * that records nothing: its input needs no gradient) and every backward
 * that runs, with times that add up to no more than the clock's; detached,
 * it counts nothing. */
static void test_profile(void **state) {
    (void)state;
    struct gen_ctx g;
    gen_ctx_init(&g);
    struct gen_profile prof;
    memset(&prof, 0, sizeof prof);
    for (int pass = 0; pass < 2; pass++) {
        struct gen_tensor *x = gen_tensor_2d(&g, 4, 3), *w = gen_tensor_2d(&g, 2, 3);
        for (int i = 0; i < 12; i++) x->data[i] = (float)(i % 5) - 2.0f;
        for (int i = 0; i < 6; i++) w->data[i] = 0.25f * (float)i - 0.5f;
        w->requires_grad = 1;
        g.prof = pass == 0 ? &prof : NULL;
        const double t0 = gen_now();
        gen_profile_mark(&g);
        struct gen_tensor *h = gen_relu(&g, x); /* x needs no gradient: not on the tape */
        struct gen_tensor *loss = gen_sum(&g, gen_relu(&g, gen_linear(&g, h, w, NULL)));
        gen_backward(&g, loss);
        const double took = gen_now() - t0;
        double fwd = 0, bwd = 0;
        for (int op = 0; op < GEN_OP_COUNT; op++) {
            assert_true(prof.op[op].fwd_s >= 0 && prof.op[op].bwd_s >= 0);
            fwd += prof.op[op].fwd_s, bwd += prof.op[op].bwd_s;
        }
        if (pass == 0) assert_true(fwd + bwd <= took);
        for (int op = 0; op < GEN_OP_COUNT; op++) {
            const int64_t want_f = op == GEN_OP_RELU ? 2 : op == GEN_OP_LINEAR || op == GEN_OP_SUM;
            const int64_t want_b = op == GEN_OP_RELU || op == GEN_OP_LINEAR || op == GEN_OP_SUM;
            assert_int_equal(prof.op[op].fwd_n, want_f); /* the second pass adds nothing */
            assert_int_equal(prof.op[op].bwd_n, want_b);
        }
        gen_ctx_reset(&g);
    }
    gen_ctx_free(&g);
}

/* gen_optim_step updates spans of neighbouring tensors alike in group and
 * decay with one kernel call, Adam's L2 folded in: the same bits as the
 * kernels called tensor by tensor (axpy then adam for Adam's decay). */
static void test_optim_spans(void **state) {
    (void)state;
    const enum gen_optim_kind kinds[] = {GEN_OPTIM_SGD, GEN_OPTIM_ADAM, GEN_OPTIM_ADAMW};
    for (int ki = 0; ki < 3; ki++) {
        struct gen_params ps;
        gen_params_init(&ps);
        /* spans of group 0: p0 p1 (decay), p2, p4 p5 (p3 is group 1's) */
        const enum gen_param_kind kind[] = {GEN_PARAM_WEIGHT,  GEN_PARAM_WEIGHT,
                                            GEN_PARAM_NODECAY, GEN_PARAM_WEIGHT,
                                            GEN_PARAM_NODECAY, GEN_PARAM_NODECAY};
        const int group[] = {0, 0, 0, 1, 0, 0};
        for (int i = 0; i < 6; i++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", i);
            gen_params_add(&ps, name, kind[i], group[i], 1, (int64_t[]){17 + 50 * i});
        }
        assert_int_equal(gen_params_finalize(&ps, 0), GEN_OK);
        const int64_t n = ps.n_train;
        tu_fill_uniform(ps.data, n, -1, 1, 1);
        tu_fill_uniform(ps.grad, n, -1, 1, 2);
        tu_fill_uniform(ps.m, n, -0.1f, 0.1f, 3);
        tu_fill_uniform(ps.v, n, 0, 0.01f, 4);
        float *ref[4];
        float *blocks[4] = {ps.data, ps.grad, ps.m, ps.v};
        for (int j = 0; j < 4; j++) {
            ref[j] = malloc((size_t)n * sizeof(float));
            memcpy(ref[j], blocks[j], (size_t)n * sizeof(float));
        }
        const struct gen_optim opt = {.kind = kinds[ki], .lr = 1e-2f, .beta1 = 0.9f,
                                      .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f,
                                      .momentum = 0.9f};
        gen_optim_step(&opt, &ps, 0, 3e-3f);
        const struct gen_kernels *k = gen_kernels();
        const float bc1 = 1.0f - powf(0.9f, 1.0f), bc2 = 1.0f - powf(0.99f, 1.0f);
        for (int i = 0; i < 6; i++) {
            if (group[i] != 0) continue;
            const int64_t o = ps.p[i].offset, m = gen_numel(&ps.p[i].t);
            const float wd = kind[i] == GEN_PARAM_WEIGHT ? 0.1f : 0.0f;
            float *p = ref[0] + o, *gr = ref[1] + o, *mm = ref[2] + o, *vv = ref[3] + o;
            if (kinds[ki] == GEN_OPTIM_SGD) k->sgd(m, p, gr, mm, 3e-3f, 0.9f, wd);
            else if (kinds[ki] == GEN_OPTIM_ADAMW)
                k->adam(m, p, gr, mm, vv, 3e-3f, 0.9f, 0.99f, 1e-8f, wd, bc1, bc2);
            else {
                if (wd != 0.0f) k->axpy(m, wd, p, gr);
                k->adam(m, p, gr, mm, vv, 3e-3f, 0.9f, 0.99f, 1e-8f, 0.0f, bc1, bc2);
            }
        }
        assert_memory_equal(ps.data, ref[0], (size_t)n * sizeof(float));
        assert_memory_equal(ps.m, ref[2], (size_t)n * sizeof(float));
        assert_memory_equal(ps.v, ref[3], (size_t)n * sizeof(float));
        for (int j = 0; j < 4; j++) free(ref[j]);
        gen_params_free(&ps);
    }
}

/* gen_split deals every item to exactly one thread, in order, with every
 * border but n a multiple of align and shares within one unit of even. */
static void test_split(void **state) {
    (void)state;
    static const int64_t ns[] = {0, 1, 15, 16, 17, 37, 100, 512};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int64_t align = 1; align <= 16; align *= 4)
            for (int nt = 1; nt <= 5; nt++) {
                int64_t next = 0, most = 0, least = INT64_MAX;
                for (int t = 0; t < nt; t++) {
                    int64_t lo, hi;
                    gen_split(ns[k], t, nt, align, &lo, &hi);
                    assert_int_equal(lo, next);
                    assert_true(hi >= lo);
                    assert_true(hi == ns[k] || hi % align == 0);
                    const int64_t units = (hi - lo + align - 1) / align;
                    most = units > most ? units : most;
                    least = units < least ? units : least;
                    next = hi;
                }
                assert_int_equal(next, ns[k]);
                assert_true(most - least <= 1);
            }
}

/* Rounds of: every thread writes its slot of the round and counts itself
 * in, then meets the others at gen_barrier; past it, each finds all the
 * round's slots written and the count complete. */
enum { BARRIER_ROUNDS = 3000, BARRIER_MAX_T = 8 };
struct barrier_run {
    int slot[BARRIER_ROUNDS][BARRIER_MAX_T];
    _Atomic int count[BARRIER_ROUNDS];
    _Atomic int bad, threads;
};

static void barrier_rounds(void *arg, int t, int nt) {
    struct barrier_run *b = arg;
    if (t == 0) atomic_store(&b->threads, nt);
    for (int r = 0; r < BARRIER_ROUNDS; r++) {
        b->slot[r][t] = r + t + 1;
        atomic_fetch_add(&b->count[r], 1);
        gen_barrier();
        if (atomic_load(&b->count[r]) != nt) atomic_store(&b->bad, 1);
        for (int u = 0; u < nt; u++)
            if (b->slot[r][u] != r + u + 1) atomic_store(&b->bad, 1);
    }
}

/* gen_parallel_n runs on min(n, threads) threads (at least one), and
 * gen_barrier holds every one of them until all arrive: 3000 rounds at
 * each count, with 3 threads on machines of fewer cores (a waiter then
 * yields to a descheduled peer). */
static void test_barrier(void **state) {
    (void)state;
    gen_threads_init(3);
    static const int asked[] = {0, 1, 2, 3, 8};
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        struct barrier_run *b = calloc(1, sizeof *b);
        assert_non_null(b);
        gen_parallel_n(asked[i], barrier_rounds, b);
        const int want = asked[i] < 1 ? 1 : asked[i] > 3 ? 3 : asked[i];
#ifdef _OPENMP
        assert_int_equal(atomic_load(&b->threads), want);
#else
        assert_int_equal(atomic_load(&b->threads), 1);
        (void)want;
#endif
        assert_int_equal(atomic_load(&b->bad), 0);
        free(b);
    }
    gen_threads_init(0);
}

#ifdef _OPENMP
#include <omp.h>

/* What a product called from fn would split over: OpenMP's thread count
 * as the kernels read it (omp_get_max_threads outside a region). */
static void note_products_threads(void *arg, int t, int nt) {
    (void)t;
    (void)nt;
    *(int *)arg = omp_in_parallel() ? 1 : omp_get_max_threads();
}

/* gen_parallel_n on one thread keeps the products fn calls on it too (a
 * stalled decoding's window slides had woken the other threads, which
 * waited for a busy core), and gives the count back after. */
static void test_parallel_one_confines(void **state) {
    (void)state;
    gen_threads_init(3);
    const int before = omp_get_max_threads();
    int inside = 0;
    gen_parallel_n(1, note_products_threads, &inside);
    assert_int_equal(inside, 1);
    assert_int_equal(omp_get_max_threads(), before);
    gen_parallel_n(0, note_products_threads, &inside);
    assert_int_equal(inside, 1);
    gen_threads_init(0);
}
#endif

/* One trial of gen_tune: runs of GEN_TUNE_RUN calls on one thread, then
 * on 2, alternating, all timed, until it ends (whole, or after a run on 2
 * that took under half of one's); the one-thread calls take `one`
 * seconds, the 2-thread ones `two`; with stall, the second call of one way
 * (stall_two: the 2-thread way), the first the trial counts, 3 ms more;
 * the first call of every 2-thread run takes `wake` more. */
static void tune_trial(struct gen_tune *tu, double one, double two, int stall, int stall_two,
                       double wake) {
    for (int i = 0; i < GEN_TUNE_CALLS; i++) {
        int timed;
        const int nt = gen_tune_next(tu, 2, &timed);
        assert_int_equal(nt, i / GEN_TUNE_RUN % 2 ? 2 : 1);
        assert_true(timed);
        const double extra = stall && i == (stall_two ? GEN_TUNE_RUN + 1 : 1) ? 3e-3 : 0.0;
        const double first = nt == 2 && i % GEN_TUNE_RUN == 0 ? wake : 0.0;
        gen_tune_took(tu, (nt == 2 ? two : one) + extra + first);
        if (tu->calls != i + 1) { /* over before its last call: 2's clear win */
            assert_true(nt == 2 && i % GEN_TUNE_RUN == GEN_TUNE_RUN - 1);
            return;
        }
    }
}

/* `calls` calls past a trial, each taking `seconds`: all on `want` threads,
 * all timed. */
static void tune_run(struct gen_tune *tu, int64_t calls, double seconds, int want) {
    for (int64_t i = 0; i < calls; i++) {
        int timed;
        assert_int_equal(gen_tune_next(tu, 2, &timed), want);
        assert_true(timed);
        gen_tune_took(tu, seconds);
    }
}

/* gen_parallel_tuned's choice, driven by given times (no clock): the
 * trial alternates runs on one thread and on n, then the way with the
 * smaller total runs until the next trial, GEN_TUNE_EVERY calls on, both
 * ways round. The first call of each run is not counted: n threads whose
 * every run starts 3 ms late (their threads woken from sleep) but run
 * faster after it win. n threads whose calls are faster but one of which
 * stalls (3 ms, a descheduled thread's time slice) have the lower median
 * and the higher total, and lose: the trial ends as soon as n's calls
 * pass twice one's whole trial, and is marked stalled. One thread's
 * longest call counts as the mean of its others (it waits on no peer), so
 * one thread faster but for one stall wins.
 * After a trial, a window of GEN_TUNE_WINDOW calls slower than the other
 * way's trial starts a new one at once; a window as fast as the trial
 * does not. With n = 1 every call is on one thread and none is timed. */
static void test_tune_choice(void **state) {
    (void)state;
    const double fast = 40e-6, slow = 50e-6;
    for (int fast_many = 0; fast_many < 2; fast_many++) {
        const int win = fast_many ? 2 : 1, lose = fast_many ? 1 : 2;
        struct gen_tune tu;
        memset(&tu, 0, sizeof tu);
        for (int round = 0; round < 2; round++) {
            tune_trial(&tu, fast_many ? slow : fast, fast_many ? fast : slow, 0, 0, 0.0);
            /* the trial's one-thread call over n's, for the caller's choices */
            assert_float_equal(tu.speedup, fast_many ? slow / fast : fast / slow, 1e-9);
            tune_run(&tu, GEN_TUNE_EVERY - GEN_TUNE_CALLS, fast, win);
        }
        assert_false(tu.stalled);
        /* n threads, faster but for one stall, lose: the stall ends the
         * trial at once and marks it stalled; one thread, faster but for
         * one stall (an interrupt: it waits on no peer), wins */
        memset(&tu, 0, sizeof tu);
        if (fast_many) {
            int timed;
            for (int i = 0; i < GEN_TUNE_RUN; i++) {
                assert_int_equal(gen_tune_next(&tu, 2, &timed), 1);
                gen_tune_took(&tu, slow);
            }
            for (int i = 0; i < 2; i++) {
                assert_int_equal(gen_tune_next(&tu, 2, &timed), 2);
                gen_tune_took(&tu, 20e-6 + 3e-3);
            }
            assert_true(tu.stalled);
        } else {
            tune_trial(&tu, 30e-6, slow, 1, 0, 0.0);
            assert_false(tu.stalled);
        }
        tune_run(&tu, GEN_TUNE_WINDOW, slow, 1);
        /* the way in force slows down past the other's trial: a new trial */
        memset(&tu, 0, sizeof tu);
        tune_trial(&tu, fast_many ? slow : fast, fast_many ? fast : slow, 0, 0, 0.0);
        tune_run(&tu, GEN_TUNE_WINDOW, 1.5 * slow, win);
        tune_trial(&tu, fast_many ? fast : slow, fast_many ? slow : fast, 0, 0, 0.0);
        tune_run(&tu, 3 * GEN_TUNE_WINDOW, fast, lose);
    }
    /* n's calls in under half of one's time: the trial ends after its
     * first run on n (a short generation pays for one run on one thread,
     * not four), and the next begins GEN_TUNE_EVERY calls after it; at
     * half or more, the whole trial */
    for (int under = 0; under < 2; under++) {
        struct gen_tune quick;
        memset(&quick, 0, sizeof quick);
        const int64_t calls = under ? 2 * GEN_TUNE_RUN : GEN_TUNE_CALLS;
        for (int64_t i = 0; i < calls; i++) {
            int timed;
            const int nt = gen_tune_next(&quick, 2, &timed);
            assert_int_equal(nt, i / GEN_TUNE_RUN % 2 ? 2 : 1);
            gen_tune_took(&quick, nt == 2 ? (under ? 24e-6 : 25e-6) : 50e-6);
        }
        assert_false(quick.stalled);
        tune_run(&quick, GEN_TUNE_EVERY - GEN_TUNE_CALLS, 24e-6, 2);
        int timed;
        assert_int_equal(gen_tune_next(&quick, 2, &timed), 1); /* the next trial */
    }
    /* n's runs each start 3 ms late, far more than their calls save, yet
     * in a row they are faster: n, not stalled */
    struct gen_tune woken;
    memset(&woken, 0, sizeof woken);
    tune_trial(&woken, slow, 20e-6, 0, 0, 3e-3);
    assert_false(woken.stalled);
    tune_run(&woken, GEN_TUNE_WINDOW, 20e-6, 2);
    struct gen_tune one;
    memset(&one, 0, sizeof one);
    for (int i = 0; i < GEN_TUNE_CALLS + 2; i++) {
        int timed;
        assert_int_equal(gen_tune_next(&one, 1, &timed), 1);
        assert_false(timed);
    }
}

/* A trial that n threads' first timed call stalls (3 ms against one
 * thread's 50 us). */
static void stalled_trial(struct gen_tune *tu) {
    int timed;
    for (int i = 0; i < GEN_TUNE_RUN; i++) {
        assert_int_equal(gen_tune_next(tu, 2, &timed), 1);
        gen_tune_took(tu, 50e-6);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(gen_tune_next(tu, 2, &timed), 2);
        gen_tune_took(tu, 3e-3);
    }
    assert_true(tu->stalled);
}

/* A stall may pass (a woken thread on its waker's core until the
 * scheduler moves it), and the window's test cannot see it pass: after a
 * stalled trial the next begins GEN_TUNE_WINDOW calls on, then twice as
 * many after each further stalled one, at most as far apart as
 * GEN_TUNE_EVERY; a trial that does not stall puts the next
 * GEN_TUNE_EVERY calls from its start again. */
static void test_tune_retry(void **state) {
    (void)state;
    struct gen_tune tu;
    memset(&tu, 0, sizeof tu);
    int64_t gap = GEN_TUNE_WINDOW;
    for (int round = 0; round < 6; round++) {
        stalled_trial(&tu);
        tune_run(&tu, gap, 50e-6, 1);
        gap = 2 * gap < GEN_TUNE_EVERY - GEN_TUNE_CALLS ? 2 * gap : GEN_TUNE_EVERY - GEN_TUNE_CALLS;
    }
    tune_trial(&tu, 50e-6, 20e-6, 0, 0, 0.0);
    assert_false(tu.stalled);
    tune_run(&tu, GEN_TUNE_EVERY - GEN_TUNE_CALLS, 20e-6, 2);
    stalled_trial(&tu);
    tune_run(&tu, GEN_TUNE_WINDOW, 50e-6, 1);
    tune_trial(&tu, 50e-6, 20e-6, 0, 0, 0.0);
}

struct tuned_count {
    _Atomic int calls, bad;
};

static void tuned_call(void *arg, int t, int nt) {
    struct tuned_count *c = arg;
    if (nt != 1 && nt != 2) atomic_store(&c->bad, 1);
    if (t == 0) atomic_fetch_add(&c->calls, 1);
}

/* gen_parallel_tuned runs fn once a call, on one thread or on the n asked
 * for (here 2, clamped to the threads in force), through a trial and past
 * it. */
static void test_parallel_tuned(void **state) {
    (void)state;
    gen_threads_init(2);
    struct gen_tune tu;
    memset(&tu, 0, sizeof tu);
    struct tuned_count c = {0, 0};
    for (int i = 0; i < GEN_TUNE_CALLS + 10; i++) gen_parallel_tuned(&tu, 8, tuned_call, &c);
    assert_int_equal(atomic_load(&c.calls), GEN_TUNE_CALLS + 10);
    assert_int_equal(atomic_load(&c.bad), 0);
    gen_threads_init(0);
}

/* ---- a cgroup's CPU quota ---- */

/* root/rel (its folders made) holding text */
static void put(const char *root, const char *rel, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        mkdir(path, 0700);
        *p = '/';
    }
    tu_write_file(path, text, strlen(text));
}

/* cgroup v1's quota and period files of root/dir */
static void put_v1(const char *root, const char *dir, const char *quota) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/cpu.cfs_quota_us", dir);
    put(root, rel, quota);
    snprintf(rel, sizeof rel, "%s/cpu.cfs_period_us", dir);
    put(root, rel, "100000\n");
}

/* ceil(quota / period), the least over the cgroup and those above it, of
 * cgroup v2's cpu.max or v1's cpu controller (which wins where both are
 * named); none set, unreadable or malformed: 0. */
static void test_cgroup_cpus(void **state) {
    (void)state;
    char *root = tu_mkdtemp();
    /* v2: the tightest level of the path, rounded up */
    put(root, "cpu.max", "max 100000\n");
    put(root, "a/cpu.max", "150000 100000\n");
    put(root, "a/b/cpu.max", "max 100000\n");
    assert_int_equal(gen_cgroup_cpus(root, "0::/a/b\n"), 2);
    put(root, "a/b/cpu.max", "50000 100000\n");
    assert_int_equal(gen_cgroup_cpus(root, "0::/a/b\n"), 1);
    /* a path the mount does not show (a container's own hierarchy): the
     * levels that exist, up to the root */
    put(root, "cpu.max", "300000 100000\n");
    assert_int_equal(gen_cgroup_cpus(root, "0::/docker/1234abcd\n"), 3);
    assert_int_equal(gen_cgroup_cpus(root, "0::/\n"), 3);
    /* v1's cpu controller, alone or joined with cpuacct, before the
     * unified line of a hybrid machine */
    put_v1(root, "cpu,cpuacct/k", "200000\n");
    assert_int_equal(gen_cgroup_cpus(root, "5:cpuset:/\n4:cpu,cpuacct:/k\n0::/\n"), 2);
    put_v1(root, "cpu/j", "-1\n");
    assert_int_equal(gen_cgroup_cpus(root, "1:cpu:/j\n"), 0); /* -1: no quota */
    put_v1(root, "cpu/j", "250000\n");
    assert_int_equal(gen_cgroup_cpus(root, "1:cpu:/j\n"), 3);
    /* cpuset and cpuacct are not cpu; no quota, garbage, odd lines: 0 */
    assert_int_equal(gen_cgroup_cpus(root, "3:cpuset:/k\n2:cpuacct:/k\n"), 0);
    put(root, "g/cpu.max", "lots 100000\n");
    put(root, "cpu.max", "max\n");
    assert_int_equal(gen_cgroup_cpus(root, "0::/g\n"), 0);
    put(root, "g/cpu.max", "100000 0\n");
    assert_int_equal(gen_cgroup_cpus(root, "0::/g\n"), 0);
    assert_int_equal(gen_cgroup_cpus(root, ""), 0);
    assert_int_equal(gen_cgroup_cpus(root, "nonsense\n1:cpu\n::\n"), 0);
    assert_int_equal(gen_cgroup_cpus("/no/such/folder", "0::/\n1:cpu:/\n"), 0);
    /* a quota past any machine's CPUs stays a count, without overflow */
    put(root, "g/cpu.max", "9223372036854775807 1\n");
    assert_true(gen_cgroup_cpus(root, "0::/g\n") >= INT_MAX);
    put(root, "g/cpu.max", "9223372036854775807 2\n");
    assert_true(gen_cgroup_cpus(root, "0::/g\n") >= INT_MAX);
    tu_rmtree(root);
    free(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cgroup_cpus),
        cmocka_unit_test(test_barrier),
#ifdef _OPENMP
        cmocka_unit_test(test_parallel_one_confines),
#endif
        cmocka_unit_test(test_tune_choice),
        cmocka_unit_test(test_tune_retry),
        cmocka_unit_test(test_parallel_tuned),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_alloc_fault_injection),
        cmocka_unit_test(test_alloc_large_blocks),
        cmocka_unit_test(test_arena_stops_allocating),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_params_layout),
        cmocka_unit_test(test_init_fan_in),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_sgd_and_clip),
        cmocka_unit_test(test_zero_grad_is_lazy),
        cmocka_unit_test(test_optim_spans),
        cmocka_unit_test(test_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
