/* core.h - errors, asserts, aligned allocation with fault injection, arenas
 * and the seeded random number generator shared by every module of gen. */
#ifndef GEN_CORE_H
#define GEN_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- errors ----------------------------------------------------------- */

/* Input and environment errors are returned as a status; the message is
 * kept in one buffer (gen_last_error) and printed by the CLI alone. */
enum gen_status {
    GEN_OK = 0,
    GEN_ERR_IO,      /* cannot open/read/write a file              */
    GEN_ERR_FORMAT,  /* a file's contents are malformed            */
    GEN_ERR_NOMEM,   /* out of memory for a user-sized buffer      */
    GEN_ERR_USAGE,   /* a bad option or argument                   */
    GEN_ERR_RUNTIME, /* NaN loss, interrupted, anything else       */
};

/* Sets the message (printf-style) and returns `status`, so callers can
 * write `return gen_error(GEN_ERR_IO, "%s: cannot open", path);`. */
enum gen_status gen_error(enum gen_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *gen_last_error(void);
void gen_clear_error(void);

/* Programmer errors: always on, never compiled out. */
#define GEN_ASSERT(cond)                                                     \
    do {                                                                     \
        if (!(cond)) gen_assert_fail(#cond, __FILE__, __LINE__);             \
    } while (0)
_Noreturn void gen_assert_fail(const char *cond, const char *file, int line);

/* ---- allocation ------------------------------------------------------- */

/* 64-byte aligned allocation. Returns NULL (and sets the error) on failure.
 * gen_alloc_fail_after(n) makes the n-th allocation from now fail (n >= 1),
 * for fault-injection tests; 0 turns it off. */
void *gen_alloc(size_t bytes);
void *gen_calloc(size_t count, size_t size); /* zeroed, overflow-checked */
void gen_free(void *p);
void gen_alloc_fail_after(long n);
/* Bounds what the allocations from now on add up to (frees do not count
 * back) to `bytes` (0: no bound); returns the bound before. Used while
 * building a model from an untrusted checkpoint's config, so sizes it
 * claims cannot allocate more than its tensors could fill. */
size_t gen_alloc_limit(size_t bytes);
/* Number of successful gen_alloc calls since start; tests use it to show
 * that a training step allocates nothing after the first. */
long gen_alloc_count(void);

/* Overflow-checked size arithmetic: return 0 on overflow. */
int gen_mul_size(size_t a, size_t b, size_t *out);
int gen_add_size(size_t a, size_t b, size_t *out);

/* ---- arena ------------------------------------------------------------ */

/* A bump allocator of 64-byte aligned blocks. It grows by adding chunks; on
 * reset, a multi-chunk arena is folded into one chunk of the total size, so
 * after the first step of a loop no further allocation happens. */
struct gen_arena_chunk;
struct gen_arena {
    struct gen_arena_chunk *head;  /* the chunk being bumped              */
    struct gen_arena_chunk *first; /* the oldest: where a reset starts    */
    size_t used_total;            /* bytes handed out since reset       */
    size_t peak;                  /* largest used_total seen            */
    size_t min_chunk;             /* size of a fresh chunk              */
};
void gen_arena_init(struct gen_arena *a, size_t min_chunk);
void gen_arena_free(struct gen_arena *a);
void gen_arena_reset(struct gen_arena *a);
/* Never returns NULL: running out of memory for activations is fatal. */
void *gen_arena_alloc(struct gen_arena *a, size_t bytes);
void *gen_arena_calloc(struct gen_arena *a, size_t bytes);
/* Where the arena's next block starts if it fits in the current chunk
 * (NULL before the first). gen_arena_extend bumps `bytes` more (a multiple
 * of 64) if they fit there, for the block that ends at the top to grow
 * into them, and returns 1; else 0. */
const void *gen_arena_top(const struct gen_arena *a);
int gen_arena_extend(struct gen_arena *a, size_t bytes);

/* ---- random numbers --------------------------------------------------- */

/* xoshiro256** seeded through splitmix64. The whole state is four words,
 * saved in checkpoints so a resumed run continues the same stream. */
struct gen_rng {
    uint64_t s[4];
};
void gen_rng_seed(struct gen_rng *r, uint64_t seed);
/* The stream of item `index` for one purpose of a run seeded with seed:
 * streams of different (seed, purpose, index) are independent, so what an
 * item draws does not depend on which process or batch draws it. */
void gen_rng_seed_keyed(struct gen_rng *r, uint64_t seed, uint64_t purpose, int64_t index);
uint64_t gen_rng_next(struct gen_rng *r);
uint32_t gen_rng_u32(struct gen_rng *r);
/* Uniform integer in [0, n), unbiased. */
uint64_t gen_rng_below(struct gen_rng *r, uint64_t n);
/* Uniform float in [0, 1). */
float gen_rng_uniform(struct gen_rng *r);
/* Standard normal (Box-Muller, no cached second value: the state is all). */
float gen_rng_normal(struct gen_rng *r);
void gen_rng_fill_normal(struct gen_rng *r, float *x, int64_t n, float mean, float std);
void gen_rng_fill_uniform(struct gen_rng *r, float *x, int64_t n, float lo, float hi);
/* Fisher-Yates shuffle of an int32 permutation. */
void gen_rng_shuffle(struct gen_rng *r, int32_t *perm, int64_t n);

/* ---- threads ---------------------------------------------------------- */

/* Called first thing in main: where neither GOMP_SPINCOUNT nor
 * OMP_WAIT_POLICY is set, sets GOMP_SPINCOUNT to GEN_SPINCOUNT and
 * executes this program again (the path /proc/self/exe links to, the same
 * argv), since libgomp reads it once, when it loads, before main. An idle
 * OpenMP thread then spins some 30-60 us before it sleeps instead of
 * libgomp's ~6 ms, which made two processes sharing the cores slow each
 * other 3-60x (docs/DESIGN.md, Idle threads). Returns where it cannot
 * execute (no /proc) or should not (started through the dynamic loader):
 * the run goes on with libgomp's default. */
#define GEN_SPINCOUNT "3000"
void gen_threads_spin_short(char **argv);
/* What idle OpenMP threads do here, for `gen --version`: "GOMP_SPINCOUNT=N
 * spins, then sleep", "OMP_WAIT_POLICY=P" or libgomp's default. */
const char *gen_threads_idle(void);
/* The thread count a run gets without --threads: GEN_THREADS, else the
 * CPUs this process may use (its affinity mask, or libgomp's places where
 * it binds threads; at most its cgroup's CPU quota) shared by the job's
 * ranks on this machine, at most OMP_NUM_THREADS. */
int gen_threads_default(void);
/* The CPUs a cgroup CPU quota allows, ceil(quota / period), the least over
 * the cgroup that `cgroups` (the text of /proc/self/cgroup) names and those
 * above it, read under `sysfs` (/sys/fs/cgroup): cgroup v1's cpu
 * controller (cpu.cfs_quota_us, cpu.cfs_period_us) where a line names it,
 * else v2's cpu.max; 0 where no quota is set or none can be read. */
long gen_cgroup_cpus(const char *sysfs, const char *cgroups);
/* Sets OpenMP and OpenBLAS thread counts; n <= 0 means gen_threads_default().
 * Returns the count in force. */
int gen_threads_init(int n);
/* Whether an address-space limit (ulimit -v, RLIMIT_AS) is in force:
 * OpenBLAS then loads and runs on one thread (src/cli/main.c). Safe to
 * call before any library's constructor. */
int gen_address_limited(void);
/* This program's path (/proc/self/exe) in buf (size bytes), to execute it
 * again, or NULL where it cannot be had or names the dynamic loader (the
 * program started through it, which would read argv[1] as its own
 * option). Safe to call before any library's constructor. */
const char *gen_self_path(char *buf, size_t size);
/* The most threads --threads or GEN_THREADS may ask for. */
#define GEN_THREADS_MAX 4096
/* The thread count GEN_THREADS asks for, or 0 where it is unset, 0 or not
 * a count up to GEN_THREADS_MAX (said once on stderr: then ignored, as
 * libgomp ignores a bad OMP_NUM_THREADS). */
int gen_threads_env(void);
int gen_threads(void);
/* Runs fn(arg, t, nt) on each thread t of nt = gen_threads() at once (one
 * OpenMP region); once with (0, 1) when there is one thread, OpenMP is
 * off, or a region is already active. fn's threads meet at gen_barrier. */
void gen_parallel(void (*fn)(void *arg, int t, int nt), void *arg);
/* gen_parallel on at most n of the threads (n < 1: one). On one thread,
 * outside a region, the products fn calls stay on that thread too
 * (OpenMP's count is one while fn runs). */
void gen_parallel_n(int n, void (*fn)(void *arg, int t, int nt), void *arg);
/* A call repeated many times (decoding one token) on one thread or on n,
 * whichever runs faster here and now. A trial runs GEN_TUNE_RUN calls one
 * way, then as many the other, alternating, and times all but the first
 * of each run, GEN_TUNE_TRIAL calls each way; the way with the smaller
 * total runs on. The first call of a run pays for the switch (on n, the
 * other threads wake from sleep: on a Sapphire Rapids VM that made n's
 * calls look slower than one's where they were 2.3 times faster in a row,
 * and decoding picked one thread); the calls after it are what the way
 * costs in a row. Calls past the trial are timed too, and a window of
 * GEN_TUNE_WINDOW of them that took longer than the other way's trial
 * would have (by an eighth) starts a new trial, as does every
 * GEN_TUNE_EVERY-th call. Where meeting at a barrier costs more than
 * sharing the work saves (a host whose cores are far apart or busy), that
 * is one thread. Totals, not medians: a thread that shares its core with
 * another process stalls a call now and then for a time slice, and those
 * stalls are most of what n threads cost there; they may also begin after
 * a trial. One thread's longest call counts as the mean of its others:
 * one thread waits on no peer, and a lone long call there is an
 * interrupt or a fault, which n's calls meet as well. A trial ends after
 * any run on n whose calls took under half of as many on one (a clear
 * win, and a short run need not pay for the rest of the trial). A trial
 * whose n-thread calls pass twice what its one-thread calls will take
 * ends there, `stalled` (a hint for other work on these threads), and
 * the next begins GEN_TUNE_WINDOW calls after it,
 * then twice as many after each stalled one, up to GEN_TUNE_EVERY. fn
 * must give the same result on any number of threads. Zero a struct
 * gen_tune before the first call. */
#define GEN_TUNE_TRIAL 16
#define GEN_TUNE_RUN 5
#define GEN_TUNE_CALLS (2 * GEN_TUNE_TRIAL / (GEN_TUNE_RUN - 1) * GEN_TUNE_RUN)
#define GEN_TUNE_WINDOW 256
#define GEN_TUNE_EVERY 4096
struct gen_tune {
    int64_t calls;               /* since the last trial began */
    double t[2][GEN_TUNE_TRIAL]; /* the trial's times on one thread, on n */
    double other;                /* the trial's mean call the other way */
    double window;               /* seconds of the calls in this window */
    int many;                    /* the last trial's pick: n threads */
    int stalled;                 /* n took over twice one's time: a thread was descheduled */
    int64_t retry;               /* calls from a trial's end to the next (0: as GEN_TUNE_EVERY) */
    double speedup;              /* the last trial's mean call on one over n's (0: none yet) */
};
void gen_parallel_tuned(struct gen_tune *tu, int n, void (*fn)(void *arg, int t, int nt),
                        void *arg);
/* Its choice, apart from the clock: the threads the next call runs on (1
 * or n), with *timed set where n > 1, whose seconds gen_tune_took is then
 * given. */
int gen_tune_next(struct gen_tune *tu, int n, int *timed);
void gen_tune_took(struct gen_tune *tu, double seconds);
/* Seconds on a monotonic clock. */
double gen_now(void);
/* The middle of the n values at t, which it sorts (n even: the upper of
 * the two middle ones). */
double gen_median(double *t, int n);
/* Waits until every thread of the running gen_parallel is here (nothing
 * outside one). */
void gen_barrier(void);
/* Thread t's share [*lo, *hi) of n items: whole units of align items
 * dealt out as evenly as the nt threads allow, the last unit short. */
void gen_split(int64_t n, int t, int nt, int64_t align, int64_t *lo, int64_t *hi);

#endif
