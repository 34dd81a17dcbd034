/*
 * dist.c — the MPI world of a data-parallel job (see dist.h for the
 * contract).
 *
 * Collectives are the non-blocking MPI-3 ones completed by a polling loop,
 * so that a wait has a deadline: MPI's blocking calls would hang forever on
 * a rank that stopped without dying. The loop spins for a moment (small
 * reductions answer in microseconds), then sleeps 50 us between tests.
 * Errors return (MPI_ERRORS_RETURN on the world) instead of aborting the
 * process from inside MPI, so the caller can record the run before it ends
 * the job.
 *
 * Deliberately not here: overlapping the gradient reduction with backward
 * (measured in the README: the reduction is a few per cent of a step on
 * one host), a hand-written ring (Open MPI's tuned collectives choose the
 * algorithm), GPU transports.
 */
#include "ddpm/dist.h"
#include "ddpm.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#define CHUNK (1 << 30)     /* elements per MPI call: counts are ints */

static int active, world_rank, world_size = 1, local_rank, local_size = 1, node_cpus;
static double timeout_s = -1;

static double mono_now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mpi_error(const char *what, int code)
{
   char msg[MPI_MAX_ERROR_STRING];
   int len = 0;
   if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", code);
   return ddpm_seterr(DDPM_EIO, "%s (rank %d of %d): %s", what, world_rank, world_size, msg);
}

static int launched_by_mpi(void)
{
   return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int ddpm_dist_init(void)
{
   if (active || !launched_by_mpi()) return DDPM_OK;
   int inited = 0, provided = 0;
   MPI_Initialized(&inited);
   if (!inited) {
      /* only the main thread calls MPI; OpenMP threads never do */
      int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
      if (rc != MPI_SUCCESS) return ddpm_seterr(DDPM_EIO, "dist: MPI_Init_thread failed (%d)", rc);
   }
   MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
   MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
   MPI_Comm_size(MPI_COMM_WORLD, &world_size);
   MPI_Comm node;
   if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL,
                           &node) == MPI_SUCCESS) {
      MPI_Comm_rank(node, &local_rank);
      MPI_Comm_size(node, &local_size);
      /* the CPUs the ranks of this host may run on, all masks together:
         one count whether mpirun bound the ranks or not */
      cpu_set_t set;
      if (sched_getaffinity(0, sizeof set, &set) == 0 &&
          MPI_Allreduce(MPI_IN_PLACE, &set, (int)sizeof set, MPI_BYTE, MPI_BOR, node) == MPI_SUCCESS)
         node_cpus = CPU_COUNT(&set);
      MPI_Comm_free(&node);
   }
   active = 1;
   return DDPM_OK;
}

int ddpm_dist_active(void) { return active; }
int ddpm_dist_rank(void) { return world_rank; }
int ddpm_dist_size(void) { return world_size; }
int ddpm_dist_local_rank(void) { return local_rank; }
int ddpm_dist_local_size(void) { return local_size; }
int ddpm_dist_node_cpus(void) { return node_cpus; }

double ddpm_dist_timeout(void)
{
   if (timeout_s < 0) {
      const char *s = getenv("DDPMLUA_DIST_TIMEOUT");
      double v = s ? strtod(s, NULL) : 0;
      timeout_s = v > 0 ? v : 600.0;
   }
   return timeout_s;
}

void ddpm_dist_set_timeout(double seconds) { if (seconds > 0) timeout_s = seconds; }

/* Completes req or gives up after the timeout. */
static int wait_for(MPI_Request *req, const char *what)
{
   const double t0 = mono_now(), limit = ddpm_dist_timeout();
   long spins = 0;
   for (;;) {
      int done = 0;
      int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) return mpi_error(what, rc);
      if (done) return DDPM_OK;
      if (++spins > 2000) {
         struct timespec ts = {0, 50 * 1000};
         nanosleep(&ts, NULL);
         if (mono_now() - t0 > limit)
            return ddpm_seterr(DDPM_EIO, "%s (rank %d of %d): no answer from the other ranks in "
                               "%.0f s (a rank died or hangs; DDPMLUA_DIST_TIMEOUT sets the wait)",
                               what, world_rank, world_size, limit);
      }
   }
}

static MPI_Op mpi_op(ddpm_dist_op op)
{
   return op == DDPM_DIST_MAX ? MPI_MAX : op == DDPM_DIST_MIN ? MPI_MIN : MPI_SUM;
}

static int allreduce(void *buf, int64_t n, size_t esize, MPI_Datatype type, ddpm_dist_op op,
                     const char *what)
{
   if (n < 0 || (n > 0 && !buf)) return ddpm_seterr(DDPM_EINVAL, "%s: bad buffer", what);
   if (op != DDPM_DIST_SUM && op != DDPM_DIST_MAX && op != DDPM_DIST_MIN)
      return ddpm_seterr(DDPM_EINVAL, "%s: unknown op %d", what, (int)op);
   if (!active) return DDPM_OK;
   for (int64_t i = 0; i < n; i += CHUNK) {
      int cnt = (int)(n - i < CHUNK ? n - i : CHUNK);
      MPI_Request req;
      int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)i * esize, cnt, type, mpi_op(op),
                              MPI_COMM_WORLD, &req);
      if (rc != MPI_SUCCESS) return mpi_error(what, rc);
      if ((rc = wait_for(&req, what)) != DDPM_OK) return rc;
   }
   return DDPM_OK;
}

int ddpm_dist_allreduce_f32(float *buf, int64_t n, ddpm_dist_op op)
{
   return allreduce(buf, n, sizeof(float), MPI_FLOAT, op, "dist allreduce");
}

int ddpm_dist_allreduce_f64(double *buf, int64_t n, ddpm_dist_op op)
{
   return allreduce(buf, n, sizeof(double), MPI_DOUBLE, op, "dist allreduce");
}

int ddpm_dist_broadcast(void *buf, int64_t bytes, int root)
{
   const char *what = "dist broadcast";
   if (bytes < 0 || (bytes > 0 && !buf)) return ddpm_seterr(DDPM_EINVAL, "%s: bad buffer", what);
   if (root < 0 || root >= world_size)
      return ddpm_seterr(DDPM_EINVAL, "%s: root %d is not a rank (0..%d)", what, root, world_size - 1);
   if (!active) return DDPM_OK;
   for (int64_t i = 0; i < bytes; i += CHUNK) {
      int cnt = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
      MPI_Request req;
      int rc = MPI_Ibcast((char *)buf + i, cnt, MPI_BYTE, root, MPI_COMM_WORLD, &req);
      if (rc != MPI_SUCCESS) return mpi_error(what, rc);
      if ((rc = wait_for(&req, what)) != DDPM_OK) return rc;
   }
   return DDPM_OK;
}

int ddpm_dist_barrier(void)
{
   if (!active) return DDPM_OK;
   MPI_Request req;
   int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
   if (rc != MPI_SUCCESS) return mpi_error("dist barrier", rc);
   return wait_for(&req, "dist barrier");
}

int ddpm_dist_same(const void *bytes, int64_t len, int *same, int *first_differing)
{
   if (!same || (len > 0 && !bytes) || len < 0)
      return ddpm_seterr(DDPM_EINVAL, "dist same: bad arguments");
   *same = 1;
   if (first_differing) *first_differing = -1;
   if (!active) return DDPM_OK;
   /* rank 0's length and digest, then the lowest rank that differs */
   uint64_t mine[2] = {(uint64_t)len, ddpm_hash64(bytes, len)}, ref[2] = {mine[0], mine[1]};
   int rc = ddpm_dist_broadcast(ref, sizeof ref, 0);
   if (rc != DDPM_OK) return rc;
   double who = (mine[0] != ref[0] || mine[1] != ref[1]) ? world_rank : world_size;
   if ((rc = ddpm_dist_allreduce_f64(&who, 1, DDPM_DIST_MIN)) != DDPM_OK) return rc;
   *same = who >= world_size;
   if (first_differing) *first_differing = *same ? -1 : (int)who;
   return DDPM_OK;
}

void ddpm_dist_abort(int code)
{
   if (active) MPI_Abort(MPI_COMM_WORLD, code);
}

int ddpm_dist_finalize(void)
{
   if (!active) return DDPM_OK;
   active = 0;
   int fin = 0;
   MPI_Finalized(&fin);
   if (!fin && MPI_Finalize() != MPI_SUCCESS)
      return ddpm_seterr(DDPM_EIO, "dist: MPI_Finalize failed");
   return DDPM_OK;
}

uint64_t ddpm_hash64(const void *bytes, int64_t len)
{
   const unsigned char *p = bytes;
   uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)len;
   int64_t i = 0;
   for (; i + 8 <= len; i += 8) {          /* a word at a time, then mixed */
      uint64_t w;
      memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
   }
   for (; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
   h ^= h >> 33;
   h *= 0xff51afd7ed558ccdull;
   return h ^ (h >> 33);
}
