/* comm.c - the ranks of one job over MPI (see comm.h), or this process
 * alone when gen is built without MPI or started without a launcher.
 *
 * MPI_Init only runs when a launcher's environment says this process is
 * one of several (Open MPI's mpirun, PMIx, or PMI as srun and MPICH set
 * it): a plain `gen train` never touches MPI, so it starts as fast as
 * before and needs no MPI runtime at all. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gen/comm.h"

#ifdef GEN_HAVE_MPI
#include <mpi.h>
#endif

static int rank = 0, size = 1, local_size = 1, joined = 0;
static double spent = 0;

#ifndef GEN_HAVE_MPI
/* The number in the first of these variables that is set, or 0. */
static long env_number(const char *const *names) {
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atol(v);
    }
    return 0;
}

static const char *const world_size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE",
                                              "SLURM_NTASKS", NULL};
#endif
static const char *const launched_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", NULL};

enum gen_status gen_comm_init(void) {
    if (joined) return GEN_OK;
    joined = 1;
    int launched = 0;
    for (int i = 0; launched_vars[i]; i++) launched |= getenv(launched_vars[i]) != NULL;
    if (!launched) return GEN_OK;
#ifdef GEN_HAVE_MPI
    /* (Open MPI's mpi_yield_when_idle would let a waiting rank give its
     * core away, but it made a 2.6 MB allreduce 20x slower here, 15 ms
     * against 0.6 ms, once other processes wanted the cores.) */
    MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size);
    MPI_Comm_free(&local);
    return GEN_OK;
#else
    const long n = env_number(world_size_vars);
    if (n > 1)
        return gen_error(GEN_ERR_RUNTIME,
                         "started as one of %ld processes, but this gen was built without MPI "
                         "(install libopenmpi-dev and rebuild; cmake -DGEN_MPI=ON)",
                         n);
    return GEN_OK;
#endif
}

void gen_comm_finalize(void) {
#ifdef GEN_HAVE_MPI
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down) MPI_Finalize();
#endif
}

_Noreturn void gen_comm_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef GEN_HAVE_MPI
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

int gen_comm_rank(void) { return rank; }
int gen_comm_size(void) { return size; }
int gen_comm_local_size(void) { return local_size; }

/* MPI counts are int: large buffers go in pieces. */
#define PIECE (INT64_C(1) << 28)

#ifdef GEN_HAVE_MPI
/* x (n elements of `elem` bytes, of MPI type t) = the sum over the ranks. */
static void allreduce_sum(void *x, int64_t n, size_t elem, MPI_Datatype t) {
    const double t0 = gen_now();
    for (int64_t i = 0; i < n; i += PIECE) {
        const int k = (int)(n - i < PIECE ? n - i : PIECE);
        MPI_Allreduce(MPI_IN_PLACE, (char *)x + (size_t)i * elem, k, t, MPI_SUM, MPI_COMM_WORLD);
    }
    spent += gen_now() - t0;
}
#endif

void gen_comm_allreduce_f32(float *x, int64_t n) {
#ifdef GEN_HAVE_MPI
    if (size > 1) allreduce_sum(x, n, sizeof *x, MPI_FLOAT);
#else
    (void)x, (void)n;
#endif
}

void gen_comm_allreduce_f64(double *x, int64_t n) {
#ifdef GEN_HAVE_MPI
    if (size > 1) allreduce_sum(x, n, sizeof *x, MPI_DOUBLE);
#else
    (void)x, (void)n;
#endif
}

void gen_comm_bcast(void *x, size_t bytes, int root) {
    if (size == 1) return;
#ifdef GEN_HAVE_MPI
    const double t0 = gen_now();
    for (size_t i = 0; i < bytes; i += (size_t)PIECE) {
        const int k = (int)(bytes - i < (size_t)PIECE ? bytes - i : (size_t)PIECE);
        MPI_Bcast((char *)x + i, k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
    spent += gen_now() - t0;
#else
    (void)x, (void)bytes, (void)root;
#endif
}

void gen_comm_gather_f32(const float *mine, int64_t n_mine, float *all) {
    if (size == 1) {
        if (all != mine)
            for (int64_t i = 0; i < n_mine; i++) all[i] = mine[i];
        return;
    }
#ifdef GEN_HAVE_MPI
    /* rank by rank over point-to-point messages: counts may pass INT_MAX */
    const double t0 = gen_now();
    if (rank != 0) {
        MPI_Send(&n_mine, 1, MPI_INT64_T, 0, 1, MPI_COMM_WORLD);
        for (int64_t i = 0; i < n_mine; i += PIECE) {
            const int k = (int)(n_mine - i < PIECE ? n_mine - i : PIECE);
            MPI_Send(mine + i, k, MPI_FLOAT, 0, 2, MPI_COMM_WORLD);
        }
    } else {
        int64_t at = 0;
        for (int64_t i = 0; i < n_mine; i++) all[at++] = mine[i];
        for (int r = 1; r < size; r++) {
            int64_t n = 0;
            MPI_Recv(&n, 1, MPI_INT64_T, r, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            for (int64_t i = 0; i < n; i += PIECE) {
                const int k = (int)(n - i < PIECE ? n - i : PIECE);
                MPI_Recv(all + at + i, k, MPI_FLOAT, r, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            }
            at += n;
        }
    }
    spent += gen_now() - t0;
#else
    (void)mine, (void)n_mine, (void)all;
#endif
}

void gen_comm_barrier(void) {
    if (size == 1) return;
#ifdef GEN_HAVE_MPI
    const double t0 = gen_now();
    MPI_Barrier(MPI_COMM_WORLD);
    spent += gen_now() - t0;
#endif
}

void gen_comm_slice(int64_t n, int64_t *lo, int64_t *hi) {
    const int64_t base = n / size, extra = n % size;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra ? 1 : 0);
}

double gen_comm_seconds(void) { return spent; }
