/* threads.c - one thread count for OpenMP and OpenBLAS. */
#define _GNU_SOURCE /* sched_setaffinity */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gen/comm.h"
#include "gen/core.h"
#include "gen/kernels.h"

void openblas_set_num_threads(int n); /* from OpenBLAS */

static int n_threads = 1;

/* s as a count (digits only; with list, the first of "4,2"), or -1 where
 * it is empty, not a number or past LONG_MAX. */
static long count_of(const char *s, int list) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    return errno || end == s || (*end && !(list && *end == ',')) ? -1 : v;
}

int gen_threads_env(void) {
    static int said;
    const char *env = getenv("GEN_THREADS");
    if (!env || !*env) return 0;
    const long v = count_of(env, 0);
    if (v < 0 || v > GEN_THREADS_MAX) {
        if (!said++)
            fprintf(stderr,
                    "gen: GEN_THREADS=%.40s is not a thread count in [0, %d]; ignoring it\n", env,
                    GEN_THREADS_MAX);
        return 0;
    }
    return (int)v;
}

/* OMP_NUM_THREADS's first value ("4" or "4,2"), or 0 where it is unset or
 * not a count (libgomp says so and ignores it too). */
static int omp_env_threads(void) {
    const char *env = getenv("OMP_NUM_THREADS");
    const long v = env ? count_of(env, 1) : 0;
    return v < 1 || v > INT_MAX ? 0 : (int)v;
}

int gen_address_limited(void) {
    struct rlimit r;
    return getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY;
}

#if defined(_OPENMP) && defined(__linux__)
/* Asked to bind its threads (OMP_PROC_BIND, OMP_PLACES, GOMP_CPU_AFFINITY),
 * libgomp bound this thread to the first place as it loaded, so this
 * thread's own mask is that place alone: the CPUs the process may use are
 * those of all the places, which libgomp built from the mask it found.
 * 0 where it binds nothing or names no CPU. */
static int places_cpus(cpu_set_t *set) {
    if (omp_get_proc_bind() == omp_proc_bind_false) return 0;
    CPU_ZERO(set);
    int any = 0;
    for (int p = 0; p < omp_get_num_places(); p++) {
        int ids[CPU_SETSIZE];
        const int n = omp_get_place_num_procs(p);
        if (n <= 0 || n > CPU_SETSIZE) continue;
        omp_get_place_proc_ids(p, ids);
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], set), any = 1;
    }
    return any;
}
#endif

/* ---- a cgroup's CPU quota ------------------------------------------------
 * A container given part of the machine (docker --cpus=1, a Kubernetes CPU
 * limit) sees every CPU in its affinity mask but may only use quota /
 * period of them each period; more threads than that are throttled in
 * turn (a 1-CPU quota on 2 cores: 300 VAE steps 1.57 s on two threads
 * against 1.26 on one, a diffusion step 298 against 267 ms). */

/* The numbers at the start of the first line of sysfs/dir/name, at most
 * two, into v; how many there were (0 where the file cannot be read or
 * begins with anything else, as v2's "max"). */
static int cg_numbers(const char *sysfs, const char *dir, const char *name, long long v[2]) {
    char path[4096], line[128];
    if (snprintf(path, sizeof path, "%s/%s/%s", sysfs, dir, name) >= (int)sizeof path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    const int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    int k = 0;
    for (const char *p = line; got && k < 2; k++) {
        char *end;
        errno = 0;
        v[k] = strtoll(p, &end, 10);
        if (errno || end == p) break;
        p = end;
    }
    return k;
}

/* The least ceil(quota / period) over the cgroup at `path` (of `len`
 * bytes, "/a/b") under sysfs/mount and each cgroup above it (a
 * container's own hierarchy often starts at its cgroup, so the path named
 * in /proc/self/cgroup need not exist under its mount); 0: no quota (v1's
 * quota -1, v2's "max"). */
static long cg_walk(const char *sysfs, const char *mount, const char *path, size_t len, int v2) {
    char dir[4096];
    long best = 0;
    for (;;) {
        while (len > 0 && path[len - 1] == '/') len--;
        if (snprintf(dir, sizeof dir, "%s%.*s", mount, (int)len, path) >= (int)sizeof dir)
            return best;
        long long q[2] = {0, 0}, p[2] = {0, 0};
        if (v2) { /* cpu.max: "QUOTA PERIOD" */
            if (cg_numbers(sysfs, dir, "cpu.max", q) == 2) p[0] = q[1];
        } else if (cg_numbers(sysfs, dir, "cpu.cfs_quota_us", q) == 1) {
            cg_numbers(sysfs, dir, "cpu.cfs_period_us", p);
        }
        if (q[0] > 0 && p[0] > 0) {
            const long long cpus = q[0] / p[0] + (q[0] % p[0] != 0); /* no overflow */
            const long n = cpus > LONG_MAX ? LONG_MAX : (long)cpus;
            if (best == 0 || n < best) best = n;
        }
        if (len == 0) return best;
        while (len > 0 && path[len - 1] != '/') len--; /* up one */
    }
}

long gen_cgroup_cpus(const char *sysfs, const char *cgroups) {
    /* "ID:CONTROLLERS:PATH" lines: v1's cpu controller if one names it (a
     * hybrid machine puts it there), else the unified "0::PATH" */
    const char *v2 = NULL;
    size_t v2_len = 0;
    for (const char *l = cgroups; l && *l;) {
        const char *nl = strchr(l, '\n'), *e = nl ? nl : l + strlen(l);
        const char *c1 = memchr(l, ':', (size_t)(e - l));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(e - c1 - 1)) : NULL;
        if (c2) {
            const char *path = c2 + 1;
            const size_t plen = (size_t)(e - path);
            if (c2 == c1 + 1 && c1 - l == 1 && l[0] == '0') {
                v2 = path, v2_len = plen;
            } else {
                for (const char *t = c1 + 1; t < c2;) { /* the controllers, comma-separated */
                    const char *comma = memchr(t, ',', (size_t)(c2 - t));
                    const char *te = comma ? comma : c2;
                    if (te - t == 3 && !memcmp(t, "cpu", 3)) {
                        long n = cg_walk(sysfs, "/cpu,cpuacct", path, plen, 0);
                        if (!n) n = cg_walk(sysfs, "/cpu", path, plen, 0);
                        return n;
                    }
                    t = te + 1;
                }
            }
        }
        l = nl ? nl + 1 : e;
    }
    return v2 ? cg_walk(sysfs, "", v2, v2_len, 1) : 0;
}

/* gen_cgroup_cpus of this process (Linux), else 0. */
static long cgroup_cpus(void) {
#ifdef __linux__
    char text[8192];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    const size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return gen_cgroup_cpus("/sys/fs/cgroup", text);
#else
    return 0;
#endif
}

/* The CPUs this process may run on (taskset, a container's cpuset, an MPI
 * launcher's binding, libgomp's places), else the CPUs online: two threads
 * on one allowed CPU took turns (a VAE step 2.67 -> 3.05 ms under taskset
 * -c 0). Under OMP_PROC_BIND this thread's own mask is one place: counted
 * from it, gen ran on one thread (a diffusion step on 2 cores 143 -> 260
 * ms). */
static long mask_cpus(void) {
#ifdef __linux__
    cpu_set_t set;
#ifdef _OPENMP
    if (places_cpus(&set)) return CPU_COUNT(&set);
#endif
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    return sysconf(_SC_NPROCESSORS_ONLN);
}

/* mask_cpus, at most a cgroup's CPU quota */
static long cpus_allowed(void) {
    const long n = mask_cpus(), quota = cgroup_cpus();
    return quota > 0 && (n <= 0 || quota < n) ? quota : n;
}

int gen_threads_default(void) {
    int n = gen_threads_env();
    if (n <= 0) { /* the cores, shared by the ranks of a job on this machine */
        long cores = cpus_allowed();
        n = cores > 0 ? (int)(cores / gen_comm_local_size()) : 1;
        if (n < 1) n = 1;
        /* at most OMP_NUM_THREADS: set, as PyTorch and OpenBLAS read it, by
         * whoever runs several programs at once on these cores */
        const int most = omp_env_threads();
        if (most > 0 && most < n) n = most;
    }
    return n;
}

int gen_threads_init(int n) {
    if (n <= 0) n = gen_threads_default();
    n_threads = n;
    /* OpenBLAS first: its OpenMP build sets OpenMP's count too. Under an
     * address-space limit it keeps one thread: each thread more reserves a
     * buffer, and where the limit refuses one OpenBLAS tries again forever
     * (main.c). */
    openblas_set_num_threads(gen_address_limited() ? 1 : n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    (void)gen_kernels();
    return n;
}

int gen_threads(void) { return n_threads; }

const char *gen_threads_idle(void) {
#ifdef _OPENMP
    static char line[96];
    const char *policy = getenv("OMP_WAIT_POLICY"), *spins = getenv("GOMP_SPINCOUNT");
    if (policy)
        snprintf(line, sizeof line, "OMP_WAIT_POLICY=%.40s%s", policy,
                 spins ? " (and GOMP_SPINCOUNT)" : "");
    else if (spins)
        snprintf(line, sizeof line, "GOMP_SPINCOUNT=%.40s spins, then sleep", spins);
    else
        return "libgomp's default (300000 spins, then sleep)";
    return line;
#else
    return "none (built without OpenMP)";
#endif
}

#if defined(_OPENMP) && defined(__linux__)
/* Under a binding, the mask of this thread (libgomp's first place)
 * survives execv, and the libgomp of the program executed builds its
 * places from it: from one CPU, where it then put every thread (a
 * Transformer step on 2 cores 73 -> 141 ms under OMP_PROC_BIND=true).
 * Before executing, this thread gets back the CPUs of all the places,
 * which the next libgomp divides again as this one did. */
static void unbind_for_exec(void) {
    cpu_set_t set;
    if (places_cpus(&set)) (void)sched_setaffinity(0, sizeof set, &set); /* else as it is */
}
#endif

const char *gen_self_path(char *buf, size_t size) {
#ifdef __linux__
    /* the path, not /proc/self/exe itself: under valgrind that link names valgrind's tool,
     * which refuses to run unlaunched, while readlink gets the program's own path */
    const ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) return NULL;
    buf[n] = '\0';
    /* started through the dynamic loader (ld-linux-x86-64.so.2 gen ...) */
    const char *base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    if (!strncmp(base, "ld-", 3) || !strncmp(base, "ld.so", 5) || !strncmp(base, "ld64", 4))
        return NULL;
    return buf;
#else
    (void)buf, (void)size;
    return NULL;
#endif
}

void gen_threads_spin_short(char **argv) {
#if defined(_OPENMP) && defined(__linux__)
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY")) return; /* the user's choice */
    char buf[4096];
    const char *self = gen_self_path(buf, sizeof buf);
    if (!self || setenv("GOMP_SPINCOUNT", GEN_SPINCOUNT, 1) != 0) return;
    unbind_for_exec();
    execv(self, argv);
    unsetenv("GOMP_SPINCOUNT"); /* not executed: nothing this process starts should see it */
#else
    (void)argv;
#endif
}

void gen_parallel_n(int n, void (*fn)(void *arg, int t, int nt), void *arg) {
#ifdef _OPENMP
    if (n > n_threads) n = n_threads;
    if (n > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(n)
        fn(arg, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
    if (!omp_in_parallel() && omp_get_max_threads() > 1) {
        /* one thread, and so are the products fn calls (they would start
         * a region of their own, waking threads that may wait for a busy
         * core: a stalled decoding's window slides took 2-9 ms, not 0.7) */
        const int had = omp_get_max_threads();
        omp_set_num_threads(1);
        fn(arg, 0, 1);
        omp_set_num_threads(had);
        return;
    }
#else
    (void)n;
#endif
    fn(arg, 0, 1);
}

void gen_parallel(void (*fn)(void *arg, int t, int nt), void *arg) {
    gen_parallel_n(n_threads, fn, arg);
}

double gen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double gen_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, by_value);
    return t[n / 2];
}

/* A trial's call `phase`: on n threads (1) or one (0). */
static int trial_way(int64_t phase) {
    return (int)(phase / GEN_TUNE_RUN & 1);
}

/* The calls way w (0: one thread, 1: n) a trial has timed up to and
 * including call `phase`. */
static int64_t trial_timed(int64_t phase, int w) {
    const int64_t run = phase / GEN_TUNE_RUN;
    return (w ? run / 2 : (run + 1) / 2) * (GEN_TUNE_RUN - 1) +
           (trial_way(phase) == w ? phase % GEN_TUNE_RUN : 0);
}

int gen_tune_next(struct gen_tune *tu, int n, int *timed) {
    *timed = n > 1;
    if (n <= 1) return 1;
    if (tu->calls >= (tu->retry ? GEN_TUNE_CALLS + tu->retry : GEN_TUNE_EVERY)) tu->calls = 0;
    const int64_t phase = tu->calls++;
    if (phase < GEN_TUNE_CALLS) return trial_way(phase) ? n : 1;
    return tu->many ? n : 1;
}

void gen_tune_took(struct gen_tune *tu, double seconds) {
    const int64_t phase = tu->calls - 1;
    if (phase < GEN_TUNE_CALLS) {
        if (phase % GEN_TUNE_RUN == 0) return; /* a switch: not what the way costs in a row */
        const int way = trial_way(phase);
        const int64_t k[2] = {trial_timed(phase, 0), trial_timed(phase, 1)};
        tu->t[way][k[way] - 1] = seconds;
        double sum[2] = {0.0, 0.0}, longest = 0.0; /* and one thread's longest call */
        for (int w = 0; w < 2; w++)
            for (int64_t i = 0; i < k[w]; i++) {
                sum[w] += tu->t[w][i];
                if (!w && tu->t[w][i] > longest) longest = tu->t[w][i];
            }
        /* One thread's calls wait on no other thread: the longest of them
         * is an interrupt or a fault, which the n threads' calls meet as
         * well, not what the way costs, and counts as the others' mean (one
         * call of 406 us among calls of 46 had put bf16 decoding on the Zen
         * 5 VM on two threads, 17 % slower, until the next trial 4096
         * tokens on). n's longest counts: a peer descheduled for a time
         * slice stalls n's calls again and again on a busy host. */
        if (k[0] > 1) sum[0] = (sum[0] - longest) * (double)k[0] / (double)(k[0] - 1);
        /* n's calls so far past twice what one's whole trial will take: stalls; end it */
        const int stalls = way && sum[1] > 2.0 * sum[0] * GEN_TUNE_TRIAL / (double)k[0];
        /* n's calls, as many as one's, in under half their time: the rest
         * of the trial would only confirm it, and a short run (a hundred
         * tokens) would pay for its three more runs on one thread */
        const int clear = way && k[1] == k[0] && 2.0 * sum[1] < sum[0];
        if (phase < GEN_TUNE_CALLS - 1 && !stalls && !clear) return;
        tu->many = !stalls && sum[1] < sum[0];
        tu->stalled = stalls || sum[1] / (double)k[1] > 2.0 * sum[0] / (double)k[0];
        tu->other = tu->many ? sum[0] / (double)k[0] : sum[1] / (double)k[1];
        tu->speedup = sum[1] > 0.0 ? sum[0] / (double)k[0] / (sum[1] / (double)k[1]) : 0.0;
        /* A stall can pass (a thread just woken shares the waker's core
         * until the scheduler moves it: 0.9 ms calls against 0.03 on the
         * Sapphire Rapids VM, decoding's first trial in 2 of 6 runs), and
         * the window's test cannot see it pass: try again soon, then
         * less often while the stalls last. */
        if (!stalls)
            tu->retry = 0;
        else if (!tu->retry)
            tu->retry = GEN_TUNE_WINDOW;
        else if (2 * tu->retry < GEN_TUNE_EVERY - GEN_TUNE_CALLS)
            tu->retry *= 2;
        else
            tu->retry = GEN_TUNE_EVERY - GEN_TUNE_CALLS;
        tu->window = 0.0;
        tu->calls = GEN_TUNE_CALLS; /* the trial is over */
        return;
    }
    tu->window += seconds;
    if ((phase - GEN_TUNE_CALLS + 1) % GEN_TUNE_WINDOW) return;
    if (tu->window > 1.125 * GEN_TUNE_WINDOW * tu->other) tu->calls = 0; /* try both again */
    tu->window = 0.0;
}

void gen_parallel_tuned(struct gen_tune *tu, int n, void (*fn)(void *arg, int t, int nt),
                        void *arg) {
    int timed;
    const int nt = gen_tune_next(tu, n < n_threads ? n : n_threads, &timed);
    const double t0 = timed ? gen_now() : 0.0;
    gen_parallel_n(nt, fn, arg);
    if (timed) gen_tune_took(tu, gen_now() - t0);
}

/* gen_parallel's barrier: a count of the threads arrived and a generation
 * that the last one advances, spun on. Decoding a token meets 16 times;
 * libgomp's barrier took about 300 ns on 2 cores, this one 80. A waiter
 * spins, then yields its CPU, for a peer that cannot run until it does:
 *
 * - after BARRIER_SPIN_SHARED where a peer last arrived from this CPU
 *   (a thread just woken onto its waker's CPU, until the scheduler moves
 *   it; more threads than CPUs). Spinning 4096 `pause`s there, 101 us on
 *   the Zen 4 VM where a token takes 40, had cost each token 1.8-2.1 ms
 *   (`taskset -c 0 gen sample --threads 2`, and a trial's first tokens
 *   on two threads in 4 of 12 runs of 5 x 100 tokens); 10 us: 0.3 ms;
 * - after BARRIER_SPIN otherwise, as long as those 4096 `pause`s: yielding
 *   sooner gave a CPU shared with another process to that process for its
 *   time slice (sampling beside a busy loop pinned to the other core,
 *   10 us for every waiter: 9 656 -> 7 718 tokens/s in medians).
 *
 * Each thread notes the CPU it arrives from (its slot, thread t mod
 * BARRIER_SLOTS; 0: none yet, else the CPU + 1). One gen_parallel runs at
 * a time (never nested), so one counter serves. */
#define BARRIER_SPIN_SHARED 10e-6
#define BARRIER_SPIN        100e-6
#define BARRIER_SLOTS       64
#ifdef _OPENMP
static _Atomic int barrier_count;
static _Atomic unsigned barrier_gen;
static _Atomic int barrier_cpu[BARRIER_SLOTS];

/* The CPU this thread runs on, + 1; 0 where that cannot be known. */
static int cpu_plus1(void) {
#ifdef __linux__
    return sched_getcpu() + 1; /* -1 on failure */
#else
    return 0;
#endif
}
#endif

void gen_barrier(void) {
#ifdef _OPENMP
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    if (nt <= 1) return;
    const int cpu = cpu_plus1();
    atomic_store_explicit(&barrier_cpu[t % BARRIER_SLOTS], cpu, memory_order_relaxed);
    const unsigned g = atomic_load_explicit(&barrier_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&barrier_count, 1, memory_order_acq_rel) == nt - 1) {
        atomic_store_explicit(&barrier_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&barrier_gen, 1, memory_order_release);
        return;
    }
    int shared = 0;
    for (int u = 0; cpu > 0 && !shared && u < nt && u < BARRIER_SLOTS; u++)
        shared = u != t % BARRIER_SLOTS &&
                 atomic_load_explicit(&barrier_cpu[u], memory_order_relaxed) == cpu;
    /* the clock read once every 64 spins, from the 64th on */
    double until = 0.0;
    for (unsigned spins = 1; atomic_load_explicit(&barrier_gen, memory_order_acquire) == g;
         spins++) {
        if (until == 0.0 || spins % 64) {
            __builtin_ia32_pause();
            if (spins == 64) until = gen_now() + (shared ? BARRIER_SPIN_SHARED : BARRIER_SPIN);
        } else if (gen_now() > until)
            sched_yield();
    }
#endif
}

void gen_split(int64_t n, int t, int nt, int64_t align, int64_t *lo, int64_t *hi) {
    const int64_t units = (n + align - 1) / align, per = units / nt, extra = units % nt;
    const int64_t a = t * per + (t < extra ? t : extra), b = a + per + (t < extra);
    *lo = a * align < n ? a * align : n;
    *hi = b * align < n ? b * align : n;
}
