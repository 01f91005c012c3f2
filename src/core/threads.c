/* threads.c - one thread count for OpenMP and OpenBLAS. */
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gen/comm.h"
#include "gen/core.h"
#include "gen/kernels.h"

void openblas_set_num_threads(int n); /* from OpenBLAS */

static int n_threads = 1;

int gen_threads_init(int n) {
    if (n <= 0) {
        const char *env = getenv("GEN_THREADS");
        if (env && atoi(env) > 0) n = atoi(env);
    }
    if (n <= 0) { /* the cores, shared by the ranks of a job on this machine */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)(cores / gen_comm_local_size()) : 1;
        if (n < 1) n = 1;
    }
    n_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
    (void)gen_kernels();
    return n;
}

int gen_threads(void) { return n_threads; }

void gen_parallel(void (*fn)(void *arg, int t, int nt), void *arg) {
#ifdef _OPENMP
    if (n_threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(n_threads)
        fn(arg, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#endif
    fn(arg, 0, 1);
}

void gen_barrier(void) {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

void gen_split(int64_t n, int t, int nt, int64_t align, int64_t *lo, int64_t *hi) {
    const int64_t units = (n + align - 1) / align, per = units / nt, extra = units % nt;
    const int64_t a = t * per + (t < extra ? t : extra), b = a + per + (t < extra);
    *lo = a * align < n ? a * align : n;
    *hi = b * align < n ? b * align : n;
}
