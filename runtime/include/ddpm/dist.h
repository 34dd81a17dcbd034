/*
 * ddpm/dist.h — data parallelism across processes on MPI (Open MPI from Debian).
 *
 * A process started by an MPI launcher (mpirun / mpiexec: the launcher's
 * rank variables are in its environment) joins the job in ddpm_dist_init;
 * any other process is a world of one and never initialises MPI, so the
 * single-process user pays nothing. The world is the process's MPI_COMM_
 * WORLD, so this is the runtime's one piece of process-wide state besides
 * the error message and the thread count.
 *
 * Every collective here is called by all ranks in the same order. A
 * collective waits at most ddpm_dist_timeout() seconds for the other ranks
 * (DDPMLUA_DIST_TIMEOUT, default 600): a rank that died or hangs turns into
 * a DDPM_EIO error on the others instead of a hang; the caller then ends
 * the job with ddpm_dist_abort. Buffers of any length (chunked below MPI's
 * int counts) are reduced in place.
 */
#ifndef DDPM_DIST_H
#define DDPM_DIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ddpm_dist_op { DDPM_DIST_SUM, DDPM_DIST_MAX, DDPM_DIST_MIN } ddpm_dist_op;

/* Joins the MPI job when launched by mpirun (OMPI_COMM_WORLD_SIZE, PMIX_RANK
   or PMI_RANK set), else does nothing. Idempotent. DDPM_EIO + message when
   MPI cannot start. */
int  ddpm_dist_init(void);
/* 1 when this process is one rank of an MPI job (even of size 1). */
int  ddpm_dist_active(void);
int  ddpm_dist_rank(void);              /* 0 outside a job */
int  ddpm_dist_size(void);              /* 1 outside a job */
/* The node-local rank (ranks sharing this host), 0 outside a job. */
int  ddpm_dist_local_rank(void);
/* The number of ranks on this host, 1 outside a job. */
int  ddpm_dist_local_size(void);
/* The CPUs that the ranks on this host may run on together (the union of
   their affinity masks); 0 outside a job or when unknown. */
int  ddpm_dist_node_cpus(void);

/* In-place reductions over all ranks; without a job they do nothing. */
int  ddpm_dist_allreduce_f32(float *buf, int64_t n, ddpm_dist_op op);
int  ddpm_dist_allreduce_f64(double *buf, int64_t n, ddpm_dist_op op);
/* bytes from root's buf to every rank's buf. */
int  ddpm_dist_broadcast(void *buf, int64_t bytes, int root);
int  ddpm_dist_barrier(void);
/* *same = 1 when every rank passed the same bytes (length and content),
   else 0 on every rank; *first_differing = the lowest rank whose bytes
   differ from rank 0's (-1 when all agree). */
int  ddpm_dist_same(const void *bytes, int64_t len, int *same, int *first_differing);

/* Seconds a collective waits for the other ranks. */
double ddpm_dist_timeout(void);
void   ddpm_dist_set_timeout(double seconds);

/* Ends every rank of the job with exit status code (MPI_Abort). Without a
   job: does nothing and returns. */
void ddpm_dist_abort(int code);
/* Leaves the job (MPI_Finalize) at a normal end; later calls do nothing. */
int  ddpm_dist_finalize(void);

/* A 64-bit FNV-1a-style digest of bytes, for comparing parameter buffers
   across ranks (not cryptographic). */
uint64_t ddpm_hash64(const void *bytes, int64_t len);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_DIST_H */
