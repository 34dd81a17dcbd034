/*
 * frechet.c — streaming Gaussian statistics of features and the Fréchet
 * distance between two Gaussians, in float64 (see frechet.h).
 *
 * The linear algebra is OpenBLAS: cblas_dsyrk/cblas_dgemm for the products
 * and LAPACK's dsyevd (divide and conquer symmetric eigensolver, which the
 * OpenBLAS library we link already contains) for the two decompositions.
 * The statistics file is safetensors with F64 tensors, written and read here
 * because the shared safetensors writer is float32-only.
 *
 * Not here: the feature network, anything float32 beyond the input rows.
 */
#include "frechet.h"
#include "dist.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <fcntl.h>
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

/* A growing byte buffer for the JSON header. */
typedef struct { char *p; size_t n, cap; int oom; } buf;

static void put(buf *b, const char *s, size_t n)
{
   if (b->oom) return;
   if (b->n + n + 1 > b->cap) {
      size_t cap = b->cap ? b->cap : 256;
      while (cap < b->n + n + 1) cap *= 2;
      char *q = realloc(b->p, cap);
      if (!q) { b->oom = 1; return; }
      b->p = q;
      b->cap = cap;
   }
   memcpy(b->p + b->n, s, n);
   b->n += n;
   b->p[b->n] = '\0';
}

static void putf(buf *b, const char *fmt, long long a, long long c)
{
   char t[96];
   int n = snprintf(t, sizeof t, fmt, a, c);
   put(b, t, (size_t)n);
}

static void put_str(buf *b, const char *s)
{
   put(b, "\"", 1);
   for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
      char esc[8];
      if (*c == '"' || *c == '\\') { esc[0] = '\\'; esc[1] = (char)*c; put(b, esc, 2); }
      else if (*c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *c); put(b, esc, 6); }
      else put(b, (const char *)c, 1);
   }
   put(b, "\"", 1);
}

static int write_all(int fd, const void *p, size_t n)
{
   const char *c = p;
   while (n > 0) {
      ssize_t k = write(fd, c, n);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return -1;
      c += k;
      n -= (size_t)k;
   }
   return 0;
}

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
   if (!cov) return ddpm_seterr(DDPM_ENOMEM, "gauss save: out of memory");
   if (g->n >= 2) ddpm_gauss_cov(g, cov);
   buf h = {0};
   char nstr[32];
   snprintf(nstr, sizeof nstr, "%lld", (long long)g->n);
   put(&h, "{\"__metadata__\":{\"ddpmlua.gauss_n\":", 35);
   put_str(&h, nstr);
   for (int i = 0; i < meta_n; i++) {
      put(&h, ",", 1);
      put_str(&h, meta_keys[i]);
      put(&h, ":", 1);
      put_str(&h, meta_vals[i]);
   }
   putf(&h, "},\"mean\":{\"dtype\":\"F64\",\"shape\":[%lld],\"data_offsets\":[0,%lld]}",
        D, (long long)D * 8);
   putf(&h, ",\"cov\":{\"dtype\":\"F64\",\"shape\":[%lld,%lld],", D, D);
   putf(&h, "\"data_offsets\":[%lld,%lld]}}", (long long)D * 8, (long long)(D + DD) * 8);
   while (!h.oom && h.n % 8) put(&h, " ", 1);
   int rc = DDPM_OK;
   char *tmp = NULL;
   if (h.oom || !(tmp = malloc(strlen(path) + 32))) {
      rc = ddpm_seterr(DDPM_ENOMEM, "gauss save: out of memory");
      goto done;
   }
   sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
   int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
   if (fd < 0) {
      rc = ddpm_seterr(DDPM_EIO, "gauss save: %s: %s", tmp, strerror(errno));
      goto done;
   }
   unsigned char pre[8];
   for (int i = 0; i < 8; i++) pre[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
   /* float64 little-endian is the host's order on x86-64 and aarch64. */
   int bad = write_all(fd, pre, 8) || write_all(fd, h.p, h.n) ||
             write_all(fd, g->mean, (size_t)D * sizeof(double)) ||
             write_all(fd, cov, DD * sizeof(double)) || fsync(fd) != 0;
   int err = errno;
   if (close(fd) != 0 && !bad) { bad = 1; err = errno; }
   if (bad || rename(tmp, path) != 0) {
      if (!bad) err = errno;
      unlink(tmp);
      rc = ddpm_seterr(DDPM_EIO, "gauss save: %s: %s", path, strerror(err));
   }
done:
   free(tmp);
   free(h.p);
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
