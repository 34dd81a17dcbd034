/*
 * test_frechet.c — runtime/frechet.c: the streaming mean/covariance against a
 * two-pass double reference (one call, many calls, merges), the symmetric
 * eigensolver, and the Fréchet distance against closed forms (identical
 * Gaussians, diagonal and 1-D covariances, rank-deficient ones), against an
 * independent algorithm (Denman-Beavers square root of the non-symmetric
 * S1 S2, no eigendecomposition), and against numpy (a golden value, below);
 * then the F64 statistics file and the error cases.
 */
#include "ddpm.h"
#include "ddpm/frechet.h"
#include "check.h"

#include <unistd.h>

static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

/* x [n] as doubles from check_fill (so numpy can rebuild them, see golden). */
static void dfill(double *x, size_t n, unsigned seed)
{
   float *f = malloc(n * sizeof *f);
   check_fill(f, n, seed);
   for (size_t i = 0; i < n; i++) x[i] = f[i];
   free(f);
}

/* S = A A^T / D + ridge I with A [D,D] from check_fill(seed). */
static void spd(double *S, int D, unsigned seed, double ridge)
{
   double *A = dalloc((size_t)D * D);
   dfill(A, (size_t)D * D, seed);
   for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++) {
         double s = 0;
         for (int k = 0; k < D; k++) s += A[i * D + k] * A[j * D + k];
         S[i * D + j] = s / D + (i == j ? ridge : 0.0);
      }
   free(A);
}

static void matmul(double *C, const double *A, const double *B, int D)
{
   for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++) {
         long double s = 0;
         for (int k = 0; k < D; k++) s += (long double)A[i * D + k] * B[k * D + j];
         C[i * D + j] = (double)s;
      }
}

/* Gauss-Jordan inverse with partial pivoting (0 on a singular matrix). */
static int inverse(double *out, const double *A, int D)
{
   double *M = dalloc((size_t)D * 2 * D);
   for (int i = 0; i < D; i++) {
      for (int j = 0; j < D; j++) M[i * 2 * D + j] = A[i * D + j];
      M[i * 2 * D + D + i] = 1;
   }
   for (int c = 0; c < D; c++) {
      int p = c;
      for (int r = c + 1; r < D; r++) if (fabs(M[r * 2 * D + c]) > fabs(M[p * 2 * D + c])) p = r;
      if (M[p * 2 * D + c] == 0) { free(M); return 0; }
      for (int j = 0; j < 2 * D; j++) { double t = M[c * 2 * D + j]; M[c * 2 * D + j] = M[p * 2 * D + j]; M[p * 2 * D + j] = t; }
      double d = M[c * 2 * D + c];
      for (int j = 0; j < 2 * D; j++) M[c * 2 * D + j] /= d;
      for (int r = 0; r < D; r++) {
         if (r == c) continue;
         double f = M[r * 2 * D + c];
         for (int j = 0; j < 2 * D; j++) M[r * 2 * D + j] -= f * M[c * 2 * D + j];
      }
   }
   for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++) out[i * D + j] = M[i * 2 * D + D + j];
   free(M);
   return 1;
}

/* Tr sqrtm(A) for A with positive real eigenvalues, by the Denman-Beavers
   iteration Y <- (Y + Z^-1)/2, Z <- (Z + Y^-1)/2 from Y = A, Z = I. */
static double trace_sqrtm_db(const double *A, int D)
{
   size_t DD = (size_t)D * D;
   double *Y = dalloc(DD), *Z = dalloc(DD), *Yi = dalloc(DD), *Zi = dalloc(DD);
   memcpy(Y, A, DD * sizeof *Y);
   for (int i = 0; i < D; i++) Z[i * D + i] = 1;
   for (int it = 0; it < 100; it++) {
      inverse(Yi, Y, D);
      inverse(Zi, Z, D);
      double change = 0;
      for (size_t k = 0; k < DD; k++) {
         double y = 0.5 * (Y[k] + Zi[k]);
         change += fabs(y - Y[k]);
         Y[k] = y;
         Z[k] = 0.5 * (Z[k] + Yi[k]);
      }
      if (change < 1e-15 * D) break;
   }
   double tr = 0;
   for (int i = 0; i < D; i++) tr += Y[i * D + i];
   free(Y); free(Z); free(Yi); free(Zi);
   return tr;
}

static double naive_fd(const double *m1, const double *S1, const double *m2, const double *S2, int D)
{
   double *P = dalloc((size_t)D * D);
   matmul(P, S1, S2, D);
   double fd = 0;
   for (int i = 0; i < D; i++) {
      fd += (m1[i] - m2[i]) * (m1[i] - m2[i]);
      fd += S1[i * D + i] + S2[i * D + i];
   }
   fd -= 2 * trace_sqrtm_db(P, D);
   free(P);
   return fd;
}

/* ------------------------------------------------------------ statistics */

static void check_gauss(void)
{
   enum { N = 2500, D = 7 };
   float *x = malloc((size_t)N * D * sizeof *x);
   check_fill(x, (size_t)N * D, 5);
   /* Correlated, offset columns: column j = 3 + j + x_j + 0.5 x_{j-1}. */
   for (int i = N - 1; i >= 0; i--)
      for (int j = D - 1; j >= 0; j--)
         x[i * D + j] = 3.0f + j + x[i * D + j] + (j ? 0.5f * x[i * D + j - 1] : 0.0f);
   double mean[D] = {0}, cov[D * D] = {0}, got[D * D];
   for (int i = 0; i < N; i++) for (int j = 0; j < D; j++) mean[j] += x[i * D + j];
   for (int j = 0; j < D; j++) mean[j] /= N;
   for (int i = 0; i < N; i++)
      for (int a = 0; a < D; a++)
         for (int b = 0; b < D; b++) cov[a * D + b] += (x[i * D + a] - mean[a]) * (x[i * D + b] - mean[b]);
   for (int k = 0; k < D * D; k++) cov[k] /= N - 1;

   ddpm_gauss *one = ddpm_gauss_new(D), *many = ddpm_gauss_new(D), *m1 = ddpm_gauss_new(D),
              *m2 = ddpm_gauss_new(D);
   CHECK(one && many && m1 && m2, "gauss_new(7)");
   CHECK(ddpm_gauss_add(one, x, N) == DDPM_OK, "add 2500 rows at once (three dsyrk blocks)");
   int64_t cuts[] = {0, 1, 2, 10, 333, 1500, 2499, N};
   for (int k = 0; k + 1 < 8; k++) ddpm_gauss_add(many, x + cuts[k] * D, cuts[k + 1] - cuts[k]);
   ddpm_gauss_add(m1, x, 1200);
   ddpm_gauss_add(m2, x + 1200 * D, N - 1200);
   CHECK(ddpm_gauss_merge(m1, m2) == DDPM_OK, "merge");
   ddpm_gauss *all[3] = {one, many, m1};
   const char *what[3] = {"one call", "seven calls of 1..1167 rows", "two halves merged"};
   for (int k = 0; k < 3; k++) {
      double em = 0, ec = 0;
      for (int j = 0; j < D; j++) em = fmax(em, fabs(all[k]->mean[j] - mean[j]) / fabs(mean[j]));
      ddpm_gauss_cov(all[k], got);
      for (int j = 0; j < D * D; j++) ec = fmax(ec, fabs(got[j] - cov[j]) / fabs(cov[0]));
      printf("# %s: n = %lld, mean rel err %.2g, cov rel err %.2g\n", what[k],
             (long long)all[k]->n, em, ec);
      CHECK(all[k]->n == N && em < 1e-13 && ec < 1e-12, "gauss %s matches the two-pass reference", what[k]);
   }
   int sym = 1;
   for (int a = 0; a < D; a++) for (int b = 0; b < D; b++) sym &= got[a * D + b] == got[b * D + a];
   CHECK(sym, "the covariance is exactly symmetric");

   ddpm_gauss *g = ddpm_gauss_new(D);
   CHECK(ddpm_gauss_cov(g, got) == DDPM_EINVAL, "cov of 0 rows: %s", ddpm_errmsg());
   ddpm_gauss_add(g, x, 1);
   CHECK(ddpm_gauss_cov(g, got) == DDPM_EINVAL, "cov of 1 row is an error");
   x[3 * D + 2] = NAN;
   CHECK(ddpm_gauss_add(g, x, 5) == DDPM_EINVAL && g->n == 1, "a NaN row is refused, nothing added: %s",
         ddpm_errmsg());
   x[3 * D + 2] = INFINITY;
   CHECK(ddpm_gauss_add(g, x, 5) == DDPM_EINVAL, "an infinite value is refused");
   CHECK(ddpm_gauss_add(g, x, 0) == DDPM_OK && ddpm_gauss_add(g, x, -1) == DDPM_EINVAL, "0 rows ok, -1 refused");
   CHECK(ddpm_gauss_new(0) == NULL && ddpm_gauss_new(20000) == NULL, "bad dimensions: %s", ddpm_errmsg());
   ddpm_gauss *g3 = ddpm_gauss_new(3);
   CHECK(ddpm_gauss_merge(g, g3) == DDPM_ESHAPE, "merge of different dimensions: %s", ddpm_errmsg());
   ddpm_gauss_free(g3); ddpm_gauss_free(g); ddpm_gauss_free(NULL);
   ddpm_gauss_free(one); ddpm_gauss_free(many); ddpm_gauss_free(m1); ddpm_gauss_free(m2);
   free(x);
}

static void check_eig(void)
{
   enum { D = 12 };
   double S[D * D], V[D * D], w[D], w2[D];
   spd(S, D, 9, 0.0);
   CHECK(ddpm_sym_eig(w, V, S, D) == DDPM_OK, "dsyevd on a 12x12 SPD matrix");
   CHECK(ddpm_sym_eig(w2, NULL, S, D) == DDPM_OK, "values only");
   double err = 0, ortho = 0, werr = 0;
   for (int i = 0; i < D; i++)
      for (int j = 0; j < D; j++) {
         double s = 0, o = 0;
         for (int k = 0; k < D; k++) {
            s += V[k * D + i] * w[k] * V[k * D + j];
            o += V[i * D + k] * V[j * D + k];
         }
         err = fmax(err, fabs(s - S[i * D + j]));
         ortho = fmax(ortho, fabs(o - (i == j)));
      }
   for (int k = 0; k < D; k++) werr = fmax(werr, fabs(w[k] - w2[k]));
   int asc = 1;
   for (int k = 1; k < D; k++) asc &= w[k] >= w[k - 1];
   printf("# reconstruction %.2g, orthonormality %.2g, values-only vs vectors %.2g\n", err, ortho, werr);
   CHECK(err < 1e-13 && ortho < 1e-13 && werr < 1e-13 && asc,
         "E^T diag(w) E = S, rows of E orthonormal, ascending, jobz N agrees");
}

/* ------------------------------------------------------------ distance */

static void check_identical_and_diagonal(void)
{
   enum { D = 20 };
   double m1[D], m2[D], S1[D * D], S2[D * D] = {0}, S3[D * D] = {0}, fd;
   ddpm_frechet_parts p;
   dfill(m1, D, 21);
   dfill(m2, D, 22);
   spd(S1, D, 23, 0.01);
   CHECK(ddpm_frechet_distance(&fd, &p, m1, S1, m1, S1, D) == DDPM_OK, "FD(a, a) runs");
   printf("# FD(a, a) = %.3g (Tr S = %.4g, min clamped eig %.2g)\n", fd, p.tr1, p.min_eig);
   CHECK(fabs(fd) < 1e-12 * p.tr1 * D, "identical Gaussians: FD = 0 within rounding");

   /* Diagonal: sum (sqrt a - sqrt b)^2 plus the mean term. */
   double want = 0;
   for (int i = 0; i < D; i++) {
      double a = 0.1 + 0.3 * i, b = (i % 3 == 0) ? 0.0 : 2.0 / (1 + i);   /* some b = 0: singular */
      S2[i * D + i] = a;
      S3[i * D + i] = b;
      want += (m1[i] - m2[i]) * (m1[i] - m2[i]) + (sqrt(a) - sqrt(b)) * (sqrt(a) - sqrt(b));
   }
   ddpm_frechet_distance(&fd, &p, m1, S2, m2, S3, D);
   printf("# diagonal (singular S2): got %.17g want %.17g\n", fd, want);
   CHECK(fabs(fd - want) < 1e-12 * want, "diagonal covariances: the closed form, S2 singular");
   ddpm_frechet_distance(&fd, NULL, m2, S3, m1, S2, D);
   CHECK(fabs(fd - want) < 1e-12 * want, "diagonal, arguments swapped (S1 singular)");

   /* 1-D: (m1 - m2)^2 + (s1 - s2)^2. */
   double a1 = 1.5, v1 = 4.0, a2 = -0.5, v2 = 0.25;
   ddpm_frechet_distance(&fd, NULL, &a1, &v1, &a2, &v2, 1);
   CHECK(fabs(fd - (4.0 + 1.5 * 1.5)) < 1e-14, "1-D: (m1-m2)^2 + (s1-s2)^2 = %.17g", fd);
}

static void check_random_spd(void)
{
   int dims[] = {3, 16, 40};
   for (int t = 0; t < 3; t++) {
      int D = dims[t];
      double *S1 = dalloc((size_t)D * D), *S2 = dalloc((size_t)D * D), *m1 = dalloc(D), *m2 = dalloc(D);
      spd(S1, D, 1, 0.1);
      spd(S2, D, 2, 0.1);
      dfill(m1, D, 3);
      dfill(m2, D, 4);
      double fd, fd_swap, want = naive_fd(m1, S1, m2, S2, D);
      ddpm_frechet_parts p;
      ddpm_frechet_distance(&fd, &p, m1, S1, m2, S2, D);
      ddpm_frechet_distance(&fd_swap, NULL, m2, S2, m1, S1, D);
      printf("# D = %d: FD %.17g, Denman-Beavers %.17g, swapped %.17g\n", D, fd, want, fd_swap);
      CHECK(fabs(fd - want) < 1e-10 * (p.tr1 + p.tr2), "random SPD pair, D = %d: matches Tr sqrtm(S1 S2) by Denman-Beavers", D);
      CHECK(fabs(fd - fd_swap) < 1e-10 * (p.tr1 + p.tr2), "D = %d: symmetric in its arguments", D);
      if (D == 16) {
         /* numpy 1.24.2, /usr/bin/python3: with fill() the check_fill LCG,
            A1 = fill(256, 1).reshape(16, 16), S1 = A1 A1^T / 16 + 0.1 I,
            likewise S2 from seed 2, m1 = fill(16, 3), m2 = fill(16, 4):
            np.sum((m1-m2)**2) + np.trace(S1) + np.trace(S2)
               - 2*np.sum(np.sqrt(np.linalg.eigvals(S1 @ S2).real))  */
         const double numpy = 17.429538565858863;
         printf("# D = 16 against numpy: %.17g vs %.17g\n", fd, numpy);
         CHECK(fabs(fd - numpy) < 1e-11, "D = 16: matches numpy's eigvals(S1 S2) value");
      }
      free(S1); free(S2); free(m1); free(m2);
   }
}

/* Fewer samples than dimensions: singular covariances; clamping keeps the
   result finite and the identity FD(a, a) = 0. */
static void check_rank_deficient(void)
{
   enum { D = 30, N = 10 };
   float x[N * D], y[N * D];
   check_fill(x, N * D, 31);
   check_fill(y, N * D, 32);
   ddpm_gauss *a = ddpm_gauss_new(D), *b = ddpm_gauss_new(D);
   ddpm_gauss_add(a, x, N);
   ddpm_gauss_add(b, y, N);
   double fd_ab, fd_aa;
   ddpm_frechet_parts p;
   int rc = ddpm_frechet_gauss(&fd_ab, &p, a, b);
   CHECK(rc == DDPM_OK && isfinite(fd_ab) && fd_ab > 0,
         "rank-9 covariances in 30 dimensions: FD = %.6g finite and positive (clamped %.2g)", fd_ab, p.min_eig);
   rc = ddpm_frechet_gauss(&fd_aa, &p, a, a);
   CHECK(rc == DDPM_OK && fabs(fd_aa) < 1e-12 * p.tr1,
         "rank-deficient FD(a, a) = %.3g, 0 within rounding (noise eigenvalues count as zero)", fd_aa);
   ddpm_gauss *c = ddpm_gauss_new(D);
   ddpm_gauss_add(c, x, 1);
   CHECK(ddpm_frechet_gauss(&fd_ab, NULL, a, c) == DDPM_EINVAL, "one row: %s", ddpm_errmsg());
   ddpm_gauss_free(a); ddpm_gauss_free(b); ddpm_gauss_free(c);

   double m[2] = {0, 0}, S[4] = {1, 0, 0, 1}, bad[4] = {1, 0, NAN, 1}, fd;
   CHECK(ddpm_frechet_distance(&fd, NULL, m, S, m, bad, 2) == DDPM_EINVAL, "NaN covariance: %s", ddpm_errmsg());
   CHECK(ddpm_frechet_distance(&fd, NULL, m, S, m, S, 0) == DDPM_EINVAL, "D = 0 is an error");
}

/* ------------------------------------------------------------ files */

static void check_files(void)
{
   enum { D = 9, N = 57 };
   char dir[] = "/tmp/ddpm_frechet_XXXXXX";
   CHECK(mkdtemp(dir) != NULL, "temp dir");
   char path[128], bad[128];
   snprintf(path, sizeof path, "%s/stats.safetensors", dir);
   snprintf(bad, sizeof bad, "%s/f32.safetensors", dir);
   float x[N * D];
   check_fill(x, N * D, 41);
   ddpm_gauss *g = ddpm_gauss_new(D);
   ddpm_gauss_add(g, x, N);
   const char *k[2] = {"classifier_sha256", "note"}, *v[2] = {"abc123", "a \"quoted\"\nvalue"};
   int rc = ddpm_gauss_save(g, path, 2, k, v);
   CHECK(rc == DDPM_OK, "save: %s", rc ? ddpm_errmsg() : "ok");
   ddpm_gauss *h = ddpm_gauss_load(path);
   CHECK(h != NULL, "load: %s", h ? "ok" : ddpm_errmsg());
   if (h) {
      double c1[D * D], c2[D * D], e = 0;
      ddpm_gauss_cov(g, c1);
      ddpm_gauss_cov(h, c2);
      for (int i = 0; i < D * D; i++) e = fmax(e, fabs(c1[i] - c2[i]) / fabs(c1[0]));
      printf("# covariance after the round trip: max rel diff %.2g\n", e);
      /* The file holds the covariance; the accumulator keeps cov * (n - 1). */
      CHECK(h->n == N && h->D == D && memcmp(g->mean, h->mean, sizeof(double) * D) == 0 && e < 1e-15,
            "round trip keeps n, D, the mean bit for bit, the covariance to 1e-15");
   }
   ddpm_st_file *f = ddpm_st_open(path);
   CHECK(f && strcmp(ddpm_st_metadata(f, "note"), "a \"quoted\"\nvalue") == 0 &&
         strcmp(ddpm_st_metadata(f, "ddpmlua.gauss_n"), "57") == 0,
         "the file is valid safetensors with the metadata (escaped JSON)");
   ddpm_st_close(f);
   /* A float32 file with the right names is refused. */
   float mean[D] = {0}, cov[D * D] = {0};
   const char *names[2] = {"mean", "cov"};
   int nd[2] = {1, 2};
   int64_t sm[1] = {D}, sc[2] = {D, D};
   const int64_t *shapes[2] = {sm, sc};
   const float *data[2] = {mean, cov};
   const char *mk[1] = {"ddpmlua.gauss_n"}, *mv[1] = {"3"};
   ddpm_st_write(bad, 2, names, nd, shapes, data, 1, mk, mv);
   CHECK(ddpm_gauss_load(bad) == NULL, "an F32 statistics file: %s", ddpm_errmsg());
   CHECK(ddpm_gauss_load("/nonexistent/x.safetensors") == NULL, "a missing file: %s", ddpm_errmsg());
   const char *rk[1] = {"ddpmlua.gauss_n"};
   CHECK(ddpm_gauss_save(g, path, 1, rk, v) == DDPM_EINVAL, "the reserved key is refused");
   unlink(path); unlink(bad); rmdir(dir);
   ddpm_gauss_free(g); ddpm_gauss_free(h);
}

int main(void)
{
   check_gauss();
   check_eig();
   check_identical_and_diagonal();
   check_random_spd();
   check_rank_deficient();
   check_files();
   return check_done();
}
