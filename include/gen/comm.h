/* comm.h - the processes of one job (MPI ranks), written once for the
 * trainer, batch norm and the commands.
 *
 * gen runs as one process unless a launcher started it: under mpirun or
 * srun (built with GEN_MPI) every process is a rank of one world, and the
 * calls below talk to the others; otherwise the world is this process
 * alone and they return at once. Collective calls must be made by every
 * rank in the same order. */
#ifndef GEN_COMM_H
#define GEN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "gen/core.h"

/* Joins the world when a launcher started this process (MPI_Init), else
 * stays alone. GEN_ERR_RUNTIME when a launcher asks for N > 1 processes
 * of a gen built without MPI. Idempotent. */
enum gen_status gen_comm_init(void);
/* Leaves the world (MPI_Finalize) after a successful job. */
void gen_comm_finalize(void);
/* Ends every rank of the job at once with exit code `code` (MPI_Abort),
 * for a failure on one rank; exit(code) when alone. */
_Noreturn void gen_comm_abort(int code);

int gen_comm_rank(void);       /* 0 .. size-1 */
int gen_comm_size(void);       /* ranks in the world (1 alone) */
int gen_comm_local_size(void); /* ranks on this machine (for threads) */

/* In place: x = the sum of every rank's x. */
void gen_comm_allreduce_f32(float *x, int64_t n);
void gen_comm_allreduce_f64(double *x, int64_t n);
/* root's bytes to every rank. */
void gen_comm_bcast(void *x, size_t bytes, int root);
/* Rank 0 receives every rank's `n_mine` floats, rank by rank, into all
 * (which must hold the sum of them); other ranks pass all = NULL. */
void gen_comm_gather_f32(const float *mine, int64_t n_mine, float *all);
/* Waits for every rank. */
void gen_comm_barrier(void);

/* This rank's contiguous share [*lo, *hi) of n items (the first n % size
 * ranks get one more), the same split for every caller. */
void gen_comm_slice(int64_t n, int64_t *lo, int64_t *hi);

/* Seconds this process has spent inside the calls above (communication
 * and waiting for the other ranks), for the trainer's timing. */
double gen_comm_seconds(void);

#endif
