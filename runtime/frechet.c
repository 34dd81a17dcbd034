/*
 * frechet.c — streaming Gaussian statistics of features and the Fréchet
 * distance between two Gaussians, in float64 (see frechet.h).
 *
 * The linear algebra is OpenBLAS: cblas_dsyrk/cblas_dgemm for the products
 * and LAPACK's dsyevd (divide and conquer symmetric eigensolver, which the
 * OpenBLAS library we link already contains) for the two decompositions.
 * The statistics file is safetensors with F64 tensors mean and cov, written
 * by the shared safetensors writer and read here.
 *
 * Not here: the feature network, anything float32 beyond the input rows.
 */
#include "ddpm.h"
#include "ddpm/frechet.h"
#include "ddpm/npz.h"
#include "ddpm/dist.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* LAPACK's Fortran entry point (OpenBLAS exports it; 32-bit integers). The
   trailing lengths are gfortran's hidden CHARACTER arguments. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info, size_t jobz_len, size_t uplo_len);

#define GAUSS_MAX_D 16384
#define GAUSS_BLOCK 1024   /* rows centred and multiplied per dsyrk */

/* ------------------------------------------------------------ statistics */

ddpm_gauss *ddpm_gauss_new(int D)
{
   if (D < 1 || D > GAUSS_MAX_D) {
      ddpm_seterr(DDPM_EINVAL, "gauss: dimension %d is not in 1..%d", D, GAUSS_MAX_D);
      return NULL;
   }
   ddpm_gauss *g = calloc(1, sizeof *g);
   if (g) {
      g->D = D;
      g->mean = calloc((size_t)D, sizeof *g->mean);
      g->m2 = calloc((size_t)D * D, sizeof *g->m2);
   }
   if (!g || !g->mean || !g->m2) {
      ddpm_gauss_free(g);
      ddpm_seterr(DDPM_ENOMEM, "gauss: out of memory for dimension %d", D);
      return NULL;
   }
   return g;
}

void ddpm_gauss_free(ddpm_gauss *g)
{
   if (!g) return;
   free(g->mean);
   free(g->m2);
   free(g);
}

/* a (n_a rows) absorbs a block of n_b rows with mean bm and co-moment bm2
   (Chan, Golub & LeVeque's pairwise update); delta is [D] scratch. */
static void absorb(ddpm_gauss *a, int64_t nb, const double *bm, const double *bm2, double *delta)
{
   const int D = a->D;
   const double na = (double)a->n, n = na + (double)nb;
   const double wb = (double)nb / n, cross = na * (double)nb / n;
   for (int j = 0; j < D; j++) delta[j] = bm[j] - a->mean[j];
   for (int i = 0; i < D; i++) {
      double *row = a->m2 + (size_t)i * D;
      const double *brow = bm2 + (size_t)i * D;
      for (int j = 0; j < D; j++) row[j] += brow[j] + cross * (delta[i] * delta[j]);   /* symmetric in i, j */
   }
   for (int j = 0; j < D; j++) a->mean[j] += wb * delta[j];
   a->n += nb;
}

int ddpm_gauss_add(ddpm_gauss *g, const float *x, int64_t N)
{
   if (N < 0) return ddpm_seterr(DDPM_EINVAL, "gauss add: %lld rows", (long long)N);
   if (N == 0) return DDPM_OK;
   const int D = g->D;
   for (int64_t i = 0; i < N * D; i++)
      if (!isfinite(x[i]))
         return ddpm_seterr(DDPM_EINVAL, "gauss add: row %lld, column %d is not finite",
                            (long long)(i / D + 1), (int)(i % D + 1));
   const int64_t B = N < GAUSS_BLOCK ? N : GAUSS_BLOCK;
   double *xc = malloc((size_t)B * D * sizeof *xc);
   double *bm = malloc((size_t)D * sizeof *bm);
   double *bm2 = malloc((size_t)D * D * sizeof *bm2);
   double *delta = malloc((size_t)D * sizeof *delta);
   if (!xc || !bm || !bm2 || !delta) {
      free(xc); free(bm); free(bm2); free(delta);
      return ddpm_seterr(DDPM_ENOMEM, "gauss add: out of memory");
   }
   for (int64_t r0 = 0; r0 < N; r0 += B) {
      const int nb = (int)(N - r0 < B ? N - r0 : B);
      const float *xb = x + r0 * D;
      for (int j = 0; j < D; j++) bm[j] = 0;
      for (int i = 0; i < nb; i++)
         for (int j = 0; j < D; j++) bm[j] += xb[(size_t)i * D + j];
      for (int j = 0; j < D; j++) bm[j] /= nb;
      for (int i = 0; i < nb; i++)
         for (int j = 0; j < D; j++) xc[(size_t)i * D + j] = xb[(size_t)i * D + j] - bm[j];
      /* bm2 = xc^T xc, lower triangle, then mirrored. */
      cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, D, nb, 1.0, xc, D, 0.0, bm2, D);
      for (int i = 0; i < D; i++)
         for (int j = i + 1; j < D; j++) bm2[(size_t)i * D + j] = bm2[(size_t)j * D + i];
      absorb(g, nb, bm, bm2, delta);
   }
   free(xc); free(bm); free(bm2); free(delta);
   return DDPM_OK;
}

int ddpm_gauss_merge(ddpm_gauss *a, const ddpm_gauss *b)
{
   if (a->D != b->D) return ddpm_seterr(DDPM_ESHAPE, "gauss merge: dimensions %d and %d", a->D, b->D);
   if (b->n == 0) return DDPM_OK;
   if (a == b) return ddpm_seterr(DDPM_EINVAL, "gauss merge: an accumulator cannot absorb itself");
   double *delta = malloc((size_t)a->D * sizeof *delta);
   if (!delta) return ddpm_seterr(DDPM_ENOMEM, "gauss merge: out of memory");
   absorb(a, b->n, b->mean, b->m2, delta);
   free(delta);
   return DDPM_OK;
}

int ddpm_gauss_allreduce(ddpm_gauss *g)
{
   if (ddpm_dist_size() == 1) return DDPM_OK;
   const int D = g->D;
   const size_t DD = (size_t)D * D;
   ddpm_gauss *acc = ddpm_gauss_new(D), *part = ddpm_gauss_new(D);
   int rc = acc && part ? DDPM_OK : ddpm_seterr(DDPM_ENOMEM, "gauss allreduce: out of memory");
   /* every rank's rows merged in rank order, the same merges on every rank */
   for (int r = 0; r < ddpm_dist_size() && rc == DDPM_OK; r++) {
      double n = (double)g->n;
      if (ddpm_dist_rank() == r) {
         memcpy(part->mean, g->mean, (size_t)D * sizeof *g->mean);
         memcpy(part->m2, g->m2, DD * sizeof *g->m2);
      }
      if ((rc = ddpm_dist_broadcast(&n, sizeof n, r)) != DDPM_OK ||
          (rc = ddpm_dist_broadcast(part->mean, (int64_t)(D * sizeof *part->mean), r)) != DDPM_OK ||
          (rc = ddpm_dist_broadcast(part->m2, (int64_t)(DD * sizeof *part->m2), r)) != DDPM_OK)
         break;
      part->n = (int64_t)n;
      rc = ddpm_gauss_merge(acc, part);
   }
   if (rc == DDPM_OK) {
      g->n = acc->n;
      memcpy(g->mean, acc->mean, (size_t)D * sizeof *g->mean);
      memcpy(g->m2, acc->m2, DD * sizeof *g->m2);
   }
   ddpm_gauss_free(acc);
   ddpm_gauss_free(part);
   return rc;
}

int ddpm_gauss_cov(const ddpm_gauss *g, double *cov)
{
   if (g->n < 2) return ddpm_seterr(DDPM_EINVAL, "gauss cov: %lld rows (need at least 2)", (long long)g->n);
   const size_t DD = (size_t)g->D * g->D;
   const double s = 1.0 / (double)(g->n - 1);
   for (size_t i = 0; i < DD; i++) cov[i] = g->m2[i] * s;
   return DDPM_OK;
}

/* ------------------------------------------------------------ eigen */

int ddpm_sym_eig(double *w, double *vecs, const double *A, int D)
{
   if (D < 1 || D > GAUSS_MAX_D) return ddpm_seterr(DDPM_EINVAL, "sym_eig: dimension %d", D);
   double *a = vecs ? vecs : malloc((size_t)D * D * sizeof *a);
   if (!a) return ddpm_seterr(DDPM_ENOMEM, "sym_eig: out of memory");
   /* Symmetric from the lower triangle, so the layout (row- or column-major)
      and LAPACK's uplo cannot disagree. */
   for (int i = 0; i < D; i++)
      for (int j = 0; j <= i; j++) a[(size_t)i * D + j] = a[(size_t)j * D + i] = A[(size_t)i * D + j];
   const char jobz = vecs ? 'V' : 'N', uplo = 'L';
   int n = D, info = 0, lwork = -1, liwork = -1, iw_query = 0;
   double w_query = 0;
   dsyevd_(&jobz, &uplo, &n, a, &n, w, &w_query, &lwork, &iw_query, &liwork, &info, 1, 1);
   lwork = (int)w_query + 1;
   liwork = iw_query > 1 ? iw_query : 1;
   double *work = malloc((size_t)lwork * sizeof *work);
   int *iwork = malloc((size_t)liwork * sizeof *iwork);
   int rc = DDPM_OK;
   if (!work || !iwork) rc = ddpm_seterr(DDPM_ENOMEM, "sym_eig: out of memory for the workspace");
   else {
      dsyevd_(&jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
      if (info != 0)
         rc = ddpm_seterr(DDPM_EFORMAT, "sym_eig: LAPACK dsyevd failed (info = %d) on a %dx%d matrix",
                          info, D, D);
   }
   /* Column-major column i (eigenvector i) is row i of the row-major buffer. */
   free(work); free(iwork);
   if (!vecs) free(a);
   return rc;
}

static int all_finite_d(const double *x, size_t n)
{
   for (size_t i = 0; i < n; i++) if (!isfinite(x[i])) return 0;
   return 1;
}

/* Eigenvalues of a PSD matrix below D * eps * max|w| are rounding noise (a
   singular covariance gives +-1e-16 * max instead of 0); taking their square
   roots would add ~1e-8 * sqrt(max) each, so they count as zero. */
static double noise_floor(const double *w, int D)
{
   double mx = 0;
   for (int k = 0; k < D; k++) mx = fmax(mx, fabs(w[k]));
   return D * DBL_EPSILON * mx;
}

int ddpm_frechet_distance(double *fd, ddpm_frechet_parts *parts,
                          const double *mu1, const double *S1,
                          const double *mu2, const double *S2, int D)
{
   if (D < 1 || D > GAUSS_MAX_D) return ddpm_seterr(DDPM_EINVAL, "frechet: dimension %d", D);
   const size_t DD = (size_t)D * D;
   if (!all_finite_d(mu1, D) || !all_finite_d(mu2, D) || !all_finite_d(S1, DD) || !all_finite_d(S2, DD))
      return ddpm_seterr(DDPM_EINVAL, "frechet: a mean or covariance holds NaN or infinity");
   double *E = malloc(DD * sizeof *E), *R = malloc(DD * sizeof *R);
   double *S = malloc(DD * sizeof *S), *T = malloc(DD * sizeof *T);
   double *w = malloc((size_t)D * sizeof *w);
   int rc = DDPM_OK;
   if (!E || !R || !S || !T || !w) { rc = ddpm_seterr(DDPM_ENOMEM, "frechet: out of memory"); goto done; }
   ddpm_frechet_parts p = {0};
   for (int i = 0; i < D; i++) {
      double d = mu1[i] - mu2[i];
      p.mean_term += d * d;
      p.tr1 += S1[(size_t)i * D + i];
      p.tr2 += S2[(size_t)i * D + i];
   }
   /* S1 = E^T diag(l) E (rows of E are eigenvectors); R = S1^1/2 = B^T B
      with B = diag(l^1/4) E. */
   if ((rc = ddpm_sym_eig(w, E, S1, D)) != DDPM_OK) goto done;
   double tol = noise_floor(w, D);
   for (int k = 0; k < D; k++) {
      if (w[k] < p.min_eig) p.min_eig = w[k];
      double s = w[k] > tol ? sqrt(sqrt(w[k])) : 0.0;
      for (int j = 0; j < D; j++) E[(size_t)k * D + j] *= s;
   }
   cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, D, D, 1.0, E, D, 0.0, R, D);
   for (int i = 0; i < D; i++)
      for (int j = i + 1; j < D; j++) R[(size_t)i * D + j] = R[(size_t)j * D + i];
   for (int i = 0; i < D; i++)
      for (int j = 0; j <= i; j++) S[(size_t)i * D + j] = S[(size_t)j * D + i] = S2[(size_t)i * D + j];
   /* M = R S2 R, symmetric in exact arithmetic; its lower triangle is read. */
   cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, R, D, S, D, 0.0, T, D);
   cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, T, D, R, D, 0.0, E, D);
   for (int i = 0; i < D; i++)
      for (int j = 0; j < i; j++) E[(size_t)i * D + j] = 0.5 * (E[(size_t)i * D + j] + E[(size_t)j * D + i]);
   if ((rc = ddpm_sym_eig(w, NULL, E, D)) != DDPM_OK) goto done;
   tol = noise_floor(w, D);
   for (int k = 0; k < D; k++) {
      if (w[k] < p.min_eig) p.min_eig = w[k];
      if (w[k] > tol) p.tr_sqrt += sqrt(w[k]);
   }
   *fd = p.mean_term + p.tr1 + p.tr2 - 2.0 * p.tr_sqrt;
   if (parts) *parts = p;
done:
   free(E); free(R); free(S); free(T); free(w);
   return rc;
}

int ddpm_frechet_gauss(double *fd, ddpm_frechet_parts *parts, const ddpm_gauss *a, const ddpm_gauss *b)
{
   if (a->D != b->D) return ddpm_seterr(DDPM_ESHAPE, "frechet: dimensions %d and %d", a->D, b->D);
   if (a->n < 2 || b->n < 2)
      return ddpm_seterr(DDPM_EINVAL, "frechet: %lld and %lld rows (each needs at least 2)",
                         (long long)a->n, (long long)b->n);
   const size_t DD = (size_t)a->D * a->D;
   double *ca = malloc(DD * sizeof *ca), *cb = malloc(DD * sizeof *cb);
   int rc;
   if (!ca || !cb) rc = ddpm_seterr(DDPM_ENOMEM, "frechet: out of memory");
   else {
      ddpm_gauss_cov(a, ca);
      ddpm_gauss_cov(b, cb);
      rc = ddpm_frechet_distance(fd, parts, a->mean, ca, b->mean, cb, a->D);
   }
   free(ca); free(cb);
   return rc;
}

/* ------------------------------------------------------------ files */

int ddpm_gauss_save(const ddpm_gauss *g, const char *path, int meta_n,
                    const char *const *meta_keys, const char *const *meta_vals)
{
   if (meta_n < 0 || (meta_n > 0 && (!meta_keys || !meta_vals)))
      return ddpm_seterr(DDPM_EINVAL, "gauss save: bad metadata count %d", meta_n);
   for (int i = 0; i < meta_n; i++)
      if (!meta_keys[i] || !meta_vals[i] || strcmp(meta_keys[i], "ddpmlua.gauss_n") == 0)
         return ddpm_seterr(DDPM_EINVAL, "gauss save: metadata entry %d is NULL or ddpmlua.gauss_n", i + 1);
   const int D = g->D;
   const size_t DD = (size_t)D * D;
   double *cov = calloc(DD, sizeof *cov);
   const char **keys = malloc((size_t)(meta_n + 1) * sizeof *keys);
   const char **vals = malloc((size_t)(meta_n + 1) * sizeof *vals);
   if (!cov || !keys || !vals) {
      free(cov); free(keys); free(vals);
      return ddpm_seterr(DDPM_ENOMEM, "gauss save: out of memory");
   }
   if (g->n >= 2) ddpm_gauss_cov(g, cov);
   char nstr[32];
   snprintf(nstr, sizeof nstr, "%lld", (long long)g->n);
   keys[0] = "ddpmlua.gauss_n";
   vals[0] = nstr;
   for (int i = 0; i < meta_n; i++) { keys[i + 1] = meta_keys[i]; vals[i + 1] = meta_vals[i]; }
   const char *names[2] = {"mean", "cov"};
   const int dtypes[2] = {DDPM_DT_F64, DDPM_DT_F64};
   const int ndims[2] = {1, 2};
   const int64_t smean[1] = {D}, scov[2] = {D, D};
   const int64_t *shapes[2] = {smean, scov};
   const void *data[2] = {g->mean, cov};
   int rc = ddpm_st_write_typed(path, 2, names, dtypes, ndims, shapes, data, meta_n + 1, keys,
                                vals);
   free(cov); free(keys); free(vals);
   return rc;
}

ddpm_gauss *ddpm_gauss_load_npz(const char *path, int *has_n)
{
   ddpm_npz *z = ddpm_npz_open(path);
   if (!z) return NULL;
   const ddpm_npy *mu = ddpm_npz_find(z, "mu"), *sg = ddpm_npz_find(z, "sigma");
   const ddpm_npy *n = ddpm_npz_find(z, "n");
   const char *bad = NULL;
   char buf[256];
   if (!mu || !sg) bad = "it must hold 'mu' [D] and 'sigma' [D,D] (FID reference statistics)";
   else if (mu->ndim != 1 || mu->shape[0] < 1 || mu->shape[0] > 16384 || sg->ndim != 2
            || sg->shape[0] != mu->shape[0] || sg->shape[1] != mu->shape[0]) {
      snprintf(buf, sizeof buf, "'mu' has %d dimension(s) [%lld] and 'sigma' %d [%lld,%lld]: "
               "expected mu [D] and sigma [D,D]", mu->ndim, (long long)mu->shape[0], sg->ndim,
               (long long)sg->shape[0], (long long)(sg->ndim > 1 ? sg->shape[1] : 0));
      bad = buf;
   } else if (n && (n->numel != 1 || !(n->data[0] >= 2) || n->data[0] != floor(n->data[0])))
      bad = "'n' must be one integer >= 2";
   for (int64_t i = 0; !bad && i < mu->numel; i++)
      if (!isfinite(mu->data[i])) bad = "'mu' has a value that is not finite";
   for (int64_t i = 0; !bad && i < sg->numel; i++)
      if (!isfinite(sg->data[i])) bad = "'sigma' has a value that is not finite";
   if (bad) {
      ddpm_seterr(DDPM_EFORMAT, "%s: %s", path, bad);
      ddpm_npz_close(z);
      return NULL;
   }
   const int D = (int)mu->shape[0];
   ddpm_gauss *g = ddpm_gauss_new(D);
   if (g) {
      /* the running sums that give back mu and sigma: m2 = sigma * (n - 1) */
      const double cnt = n ? n->data[0] : 2.0;
      g->n = (int64_t)cnt;
      memcpy(g->mean, mu->data, (size_t)D * sizeof *mu->data);
      for (int64_t i = 0; i < (int64_t)D * D; i++) g->m2[i] = sg->data[i] * (cnt - 1.0);
      if (has_n) *has_n = n != NULL;
   }
   ddpm_npz_close(z);
   return g;
}

int ddpm_gauss_save_npz(const ddpm_gauss *g, const char *path)
{
   if (g->n < 2)
      return ddpm_seterr(DDPM_EINVAL, "%lld samples (need at least 2)", (long long)g->n);
   const int D = g->D;
   double *cov = malloc((size_t)D * D * sizeof *cov);
   if (!cov) return ddpm_seterr(DDPM_ENOMEM, "out of memory");
   int rc = ddpm_gauss_cov(g, cov);
   double n = (double)g->n;
   const char *names[3] = {"mu", "sigma", "n"};
   const int nd[3] = {1, 2, 0};
   const int64_t s1[1] = {D}, s2[2] = {D, D};
   const int64_t *shapes[3] = {s1, s2, NULL};
   const double *data[3] = {g->mean, cov, &n};
   if (rc == DDPM_OK) rc = ddpm_npz_write(path, 3, names, nd, shapes, data);
   free(cov);
   return rc;
}

/* The F64 entry called name, checked to have the given shape. */
static const ddpm_st_entry *f64_entry(const ddpm_st_file *f, const char *path, const char *name,
                                      int ndim, int D)
{
   int i = ddpm_st_find(f, name);
   const ddpm_st_entry *e = i >= 0 ? ddpm_st_entry_at(f, i) : NULL;
   if (!e) { ddpm_seterr(DDPM_EFORMAT, "gauss load: %s: no tensor '%s'", path, name); return NULL; }
   int ok = e->dtype == DDPM_DT_F64 && e->ndim == ndim && (D < 0 || e->shape[0] == D) &&
            (ndim == 1 || e->shape[1] == e->shape[0]);
   if (!ok) {
      ddpm_seterr(DDPM_EFORMAT, "gauss load: %s: tensor '%s' must be F64 %s", path, name,
                  ndim == 1 ? "[D]" : "[D,D] with the mean's D");
      return NULL;
   }
   return e;
}

static int pread_all(int fd, void *p, size_t n, off_t off)
{
   char *c = p;
   while (n > 0) {
      ssize_t k = pread(fd, c, n, off);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return -1;
      c += k; n -= (size_t)k; off += k;
   }
   return 0;
}

ddpm_gauss *ddpm_gauss_load(const char *path)
{
   ddpm_st_file *f = ddpm_st_open(path);   /* validates header, offsets, size */
   if (!f) return NULL;
   ddpm_gauss *g = NULL;
   double *cov = NULL;
   int fd = -1;
   const ddpm_st_entry *em = f64_entry(f, path, "mean", 1, -1);
   const ddpm_st_entry *ec = em ? f64_entry(f, path, "cov", 2, (int)em->shape[0]) : NULL;
   const char *ns = ddpm_st_metadata(f, "ddpmlua.gauss_n");
   char *end = NULL;
   long long n = ns ? strtoll(ns, &end, 10) : -1;
   if (!ec) goto fail;
   if (!ns || *end || n < 0) {
      ddpm_seterr(DDPM_EFORMAT, "gauss load: %s: metadata ddpmlua.gauss_n is missing or not a count", path);
      goto fail;
   }
   if (em->shape[0] < 1 || em->shape[0] > GAUSS_MAX_D) {
      ddpm_seterr(DDPM_EFORMAT, "gauss load: %s: dimension %lld", path, (long long)em->shape[0]);
      goto fail;
   }
   const int D = (int)em->shape[0];
   if (!(g = ddpm_gauss_new(D)) || !(cov = malloc((size_t)D * D * sizeof *cov))) {
      if (g) ddpm_seterr(DDPM_ENOMEM, "gauss load: out of memory");
      goto fail;
   }
   unsigned char pre[8];
   uint64_t hlen = 0;
   if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || pread_all(fd, pre, 8, 0) != 0) {
      ddpm_seterr(DDPM_EIO, "gauss load: %s: %s", path, strerror(errno));
      goto fail;
   }
   for (int i = 0; i < 8; i++) hlen |= (uint64_t)pre[i] << (8 * i);
   const off_t base = (off_t)(8 + hlen);
   if (pread_all(fd, g->mean, (size_t)D * sizeof(double), base + (off_t)em->begin) != 0 ||
       pread_all(fd, cov, (size_t)D * D * sizeof(double), base + (off_t)ec->begin) != 0) {
      ddpm_seterr(DDPM_EIO, "gauss load: %s: short read", path);
      goto fail;
   }
   if (!all_finite_d(g->mean, D) || !all_finite_d(cov, (size_t)D * D)) {
      ddpm_seterr(DDPM_EFORMAT, "gauss load: %s: NaN or infinity in the statistics", path);
      goto fail;
   }
   g->n = n;
   for (size_t i = 0; i < (size_t)D * D; i++) g->m2[i] = n >= 2 ? cov[i] * (double)(n - 1) : 0.0;
   close(fd);
   free(cov);
   ddpm_st_close(f);
   return g;
fail:
   if (fd >= 0) close(fd);
   free(cov);
   ddpm_gauss_free(g);
   ddpm_st_close(f);
   return NULL;
}
