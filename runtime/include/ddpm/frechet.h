/*
 * ddpm/frechet.h — Gaussian statistics of feature vectors and the Fréchet
 * distance between two Gaussians, in float64. The engine of FD-LeNet
 * (docs/fd_lenet.md); it would serve a real FID given Inception features.
 *
 *   FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
 *
 * Tr((S1^1/2 S2 S1^1/2)^1/2) equals Tr(sqrtm(S1 S2)) (the two products are
 * similar), but the symmetric form needs only two symmetric eigen-
 * decompositions (LAPACK dsyevd through OpenBLAS), with no complex sqrtm.
 * Eigenvalues below D * DBL_EPSILON * (the largest one) — rounding noise of a
 * PSD matrix, negative or not, as a singular covariance gives when there are
 * fewer samples than dimensions — are taken as zero.
 *
 * Not here: feature extraction (lenet.h), Inception weights.
 */
#ifndef DDPM_FRECHET_H
#define DDPM_FRECHET_H

#include <stdint.h>

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Streaming mean and co-moment of D-dimensional rows, in double (Chan et
   al.'s pairwise update per added block, so adding rows in one call or in
   many gives the same statistics up to rounding). */
typedef struct ddpm_gauss {
   int     D;
   int64_t n;        /* rows added */
   double *mean;     /* [D] */
   double *m2;       /* [D,D] sum of (x - mean)(x - mean)^T, symmetric */
} ddpm_gauss;

/* 1 <= D <= 16384. NULL + message on a bad D or out of memory. */
ddpm_gauss *ddpm_gauss_new(int D);
void ddpm_gauss_free(ddpm_gauss *g);    /* NULL is fine */
/* Adds rows x [N,D] (float32, row-major). N >= 0. DDPM_EINVAL when a value
   is not finite (nothing is added then). */
int  ddpm_gauss_add(ddpm_gauss *g, const float *x, int64_t N);
/* Merges b's rows into a (same D). */
int  ddpm_gauss_merge(ddpm_gauss *a, const ddpm_gauss *b);
/* Under mpirun: every rank's rows merged into g on every rank (the ranks'
   statistics merged in rank order, identically everywhere); a collective.
   Does nothing in a world of one. */
int  ddpm_gauss_allreduce(ddpm_gauss *g);
/* cov [D,D] <- m2 / (n - 1), the unbiased covariance (numpy's np.cov);
   DDPM_EINVAL when n < 2. */
int  ddpm_gauss_cov(const ddpm_gauss *g, double *cov);

/* Saves n, mean (F64 [D]) and the covariance (F64 [D,D], zeros when n < 2)
   as safetensors, atomically, with metadata "ddpmlua.gauss_n" and the
   caller's meta_n key/value pairs. */
int  ddpm_gauss_save(const ddpm_gauss *g, const char *path, int meta_n,
                     const char *const *meta_keys, const char *const *meta_vals);
/* Reads what ddpm_gauss_save wrote (float64 kept exact). NULL + message. */
ddpm_gauss *ddpm_gauss_load(const char *path);

/* FID reference statistics as .npz (the layout of the reference tools):
   mu [D], sigma [D,D] (the unbiased covariance) and, optionally, n (one
   integer >= 2). Load checks all of it (1 <= D <= 16384, finite values;
   DDPM_EFORMAT with "<path>: <what is wrong>") and rebuilds the running
   sums, with n = 2 when the file has none; *has_n (may be NULL) says
   whether it had one. Save needs n >= 2 (DDPM_EINVAL) and writes
   atomically. */
ddpm_gauss *ddpm_gauss_load_npz(const char *path, int *has_n);
int ddpm_gauss_save_npz(const ddpm_gauss *g, const char *path);

/* The distance and its parts: fd = mean_term + tr1 + tr2 - 2 * tr_sqrt. */
typedef struct ddpm_frechet_parts {
   double mean_term;     /* ||mu1 - mu2||^2 */
   double tr1, tr2;      /* Tr S1, Tr S2 */
   double tr_sqrt;       /* Tr (S1^1/2 S2 S1^1/2)^1/2 */
   double min_eig;       /* most negative eigenvalue seen (0 if none), for diagnostics */
} ddpm_frechet_parts;

/* *fd <- the Fréchet distance of N(mu1, S1) and N(mu2, S2), S symmetric
   positive semi-definite [D,D] (only their lower triangles are read). parts
   may be NULL. DDPM_EINVAL on D < 1 or non-finite input; DDPM_EFORMAT when
   LAPACK's dsyevd fails to converge. The result is not clamped: identical
   inputs give 0 up to rounding, which may be slightly negative. */
int  ddpm_frechet_distance(double *fd, ddpm_frechet_parts *parts,
                           const double *mu1, const double *S1,
                           const double *mu2, const double *S2, int D);
/* Same, between two accumulators (each with n >= 2, the same D). */
int  ddpm_frechet_gauss(double *fd, ddpm_frechet_parts *parts,
                        const ddpm_gauss *a, const ddpm_gauss *b);

/* Eigenvalues (ascending) of the symmetric A [D,D] (lower triangle read);
   with vecs != NULL the orthonormal eigenvectors too, vecs[i*D + j] being
   component j of eigenvector i. A thin wrapper of dsyevd, for tests. */
int  ddpm_sym_eig(double *w, double *vecs, const double *A, int D);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_FRECHET_H */
