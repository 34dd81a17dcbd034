/*
 * test_norm.c — GroupNorm (runtime/norm.c) against a naive double reference:
 * forward values and saved statistics, central finite-difference gradients of
 * the input, gamma and beta (on the double reference), accumulation, NULL
 * gradients and NULL gamma/beta/mean/rstd, and independence from the thread
 * count. Then the fused GroupNorm + SiLU + dropout kernels of kernels.h
 * against the same computation from the plain kernels (norm, silu, dropout,
 * and their backward passes), with their statistics recomputation,
 * overwrite/accumulate/residual modes, per-channel sums and thread counts.
 */
#include "ddpm.h"
#include "kernels.h"
#include "check.h"

#include <omp.h>

/* [N,C,HW] double reference; mean/rstd [N,G] may be NULL. */
static void ref_forward(double *out, double *mean, double *rstd, const double *x,
                        const double *gamma, const double *beta,
                        int N, int C, int HW, int G, double eps)
{
   int cpg = C / G;
   for (int n = 0; n < N; n++)
      for (int g = 0; g < G; g++) {
         double s = 0, ss = 0;
         int M = cpg * HW;
         for (int c = g * cpg; c < (g + 1) * cpg; c++)
            for (int i = 0; i < HW; i++) s += x[((size_t)n * C + c) * HW + i];
         double mu = s / M;
         for (int c = g * cpg; c < (g + 1) * cpg; c++)
            for (int i = 0; i < HW; i++) {
               double d = x[((size_t)n * C + c) * HW + i] - mu;
               ss += d * d;
            }
         double rs = 1.0 / sqrt(ss / M + eps);
         if (mean) mean[n * G + g] = mu;
         if (rstd) rstd[n * G + g] = rs;
         for (int c = g * cpg; c < (g + 1) * cpg; c++)
            for (int i = 0; i < HW; i++) {
               size_t j = ((size_t)n * C + c) * HW + i;
               out[j] = (x[j] - mu) * rs * gamma[c] + beta[c];
            }
      }
}

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static void to_double(double *d, const float *f, size_t n) { for (size_t i = 0; i < n; i++) d[i] = f[i]; }
static void to_float(float *f, const double *d, size_t n) { for (size_t i = 0; i < n; i++) f[i] = (float)d[i]; }

static void check_forward(int N, int C, int HW, int G, float offset, float spread, unsigned seed)
{
   size_t n = (size_t)N * C * HW;
   float *x = falloc(n), *out = falloc(n), *gamma = falloc(C), *beta = falloc(C);
   float *mean = falloc(N * G), *rstd = falloc(N * G), *outf = falloc(n);
   float *meanf = falloc(N * G), *rstdf = falloc(N * G);
   double *xd = dalloc(n), *gd = dalloc(C), *bd = dalloc(C), *od = dalloc(n);
   double *md = dalloc(N * G), *rd = dalloc(N * G);
   check_fill(x, n, seed);
   for (size_t i = 0; i < n; i++) x[i] = offset + spread * x[i];
   check_fill(gamma, C, seed + 1);
   check_fill(beta, C, seed + 2);
   to_double(xd, x, n); to_double(gd, gamma, C); to_double(bd, beta, C);
   ddpm_groupnorm_forward(out, mean, rstd, x, gamma, beta, N, C, HW, G, 1e-6f);
   ref_forward(od, md, rd, xd, gd, bd, N, C, HW, G, 1e-6);
   to_float(outf, od, n); to_float(meanf, md, N * G); to_float(rstdf, rd, N * G);
   printf("# forward N=%d C=%d HW=%d G=%d, x = %g + %g * U(-1,1)\n", N, C, HW, G, offset, spread);
   CHECK_CLOSE(out, outf, n, 1e-4, "forward out matches the double reference");
   CHECK_CLOSE(mean, meanf, N * G, 1e-6, "saved mean matches");
   CHECK_CLOSE(rstd, rstdf, N * G, 1e-6, "saved rstd matches (biased variance, eps inside)");
   free(x); free(out); free(gamma); free(beta); free(mean); free(rstd); free(outf);
   free(meanf); free(rstdf); free(xd); free(gd); free(bd); free(od); free(md); free(rd);
}

/* Finite differences of L = sum(ref_forward(x, gamma, beta) * r) in double. */
static struct {
   int N, C, HW, G;
   double *x, *gamma, *beta, *r, *tmp;
} fd;

static double fd_loss(void)
{
   size_t n = (size_t)fd.N * fd.C * fd.HW;
   ref_forward(fd.tmp, NULL, NULL, fd.x, fd.gamma, fd.beta, fd.N, fd.C, fd.HW, fd.G, 1e-6);
   double L = 0;
   for (size_t i = 0; i < n; i++) L += fd.tmp[i] * fd.r[i];
   return L;
}

static void fd_grad(float *g, double *p, size_t n)
{
   const double h = 1e-5;
   for (size_t i = 0; i < n; i++) {
      double p0 = p[i];
      p[i] = p0 + h; double lp = fd_loss();
      p[i] = p0 - h; double lm = fd_loss();
      p[i] = p0;
      g[i] = (float)((lp - lm) / (2 * h));
   }
}

static void check_backward(int N, int C, int HW, int G)
{
   size_t n = (size_t)N * C * HW;
   float *x = falloc(n), *gamma = falloc(C), *beta = falloc(C), *r = falloc(n), *out = falloc(n);
   float *mean = falloc(N * G), *rstd = falloc(N * G);
   float *dx = falloc(n), *dg = falloc(C), *db = falloc(C);
   float *dx2 = falloc(n), *dg2 = falloc(C), *db2 = falloc(C);
   float *ndx = falloc(n), *ndg = falloc(C), *ndb = falloc(C);
   check_fill(x, n, 11);
   check_fill(gamma, C, 12);
   check_fill(beta, C, 13);
   check_fill(r, n, 14);
   for (size_t i = 0; i < n; i++) x[i] = 0.3f + 2.0f * x[i];
   for (int c = 0; c < C; c++) gamma[c] += 1.5f;    /* away from 0 */

   ddpm_groupnorm_forward(out, mean, rstd, x, gamma, beta, N, C, HW, G, 1e-6f);
   ddpm_groupnorm_backward(dx, dg, db, r, x, mean, rstd, gamma, N, C, HW, G);

   fd.N = N; fd.C = C; fd.HW = HW; fd.G = G;
   fd.x = dalloc(n); fd.gamma = dalloc(C); fd.beta = dalloc(C); fd.r = dalloc(n); fd.tmp = dalloc(n);
   to_double(fd.x, x, n); to_double(fd.gamma, gamma, C); to_double(fd.beta, beta, C);
   to_double(fd.r, r, n);
   fd_grad(ndx, fd.x, n);
   fd_grad(ndg, fd.gamma, C);
   fd_grad(ndb, fd.beta, C);
   printf("# backward N=%d C=%d HW=%d G=%d\n", N, C, HW, G);
   CHECK_CLOSE(dx, ndx, n, 1e-4, "din matches finite differences");
   CHECK_CLOSE(dg, ndg, C, 1e-4, "dgamma matches finite differences");
   CHECK_CLOSE(db, ndb, C, 1e-4, "dbeta matches finite differences");

   /* Twice from zero is twice once. */
   memset(dx2, 0, n * sizeof(float)); memset(dg2, 0, C * sizeof(float)); memset(db2, 0, C * sizeof(float));
   ddpm_groupnorm_backward(dx2, dg2, db2, r, x, mean, rstd, gamma, N, C, HW, G);
   ddpm_groupnorm_backward(dx2, dg2, db2, r, x, mean, rstd, gamma, N, C, HW, G);
   for (size_t i = 0; i < n; i++) ndx[i] = 2 * dx[i];
   for (int c = 0; c < C; c++) { ndg[c] = 2 * dg[c]; ndb[c] = 2 * db[c]; }
   CHECK_CLOSE(dx2, ndx, n, 1e-6, "din accumulates (two calls = 2x)");
   CHECK_CLOSE(dg2, ndg, C, 1e-6, "dgamma accumulates");
   CHECK_CLOSE(db2, ndb, C, 1e-6, "dbeta accumulates");

   /* Each gradient alone, the others NULL, gives the same values. */
   memset(dx2, 0, n * sizeof(float));
   ddpm_groupnorm_backward(dx2, NULL, NULL, r, x, mean, rstd, gamma, N, C, HW, G);
   CHECK_CLOSE(dx2, dx, n, 0, "din alone (dgamma, dbeta NULL)");
   memset(dg2, 0, C * sizeof(float));
   ddpm_groupnorm_backward(NULL, dg2, NULL, r, x, mean, rstd, gamma, N, C, HW, G);
   CHECK_CLOSE(dg2, dg, C, 0, "dgamma alone");
   memset(db2, 0, C * sizeof(float));
   ddpm_groupnorm_backward(NULL, NULL, db2, r, x, mean, rstd, gamma, N, C, HW, G);
   CHECK_CLOSE(db2, db, C, 0, "dbeta alone");
   unsigned long long h0 = check_hash(r, n * sizeof *r) ^ check_hash(x, n * sizeof *x) * 3 ^
                           check_hash(mean, (size_t)N * G * sizeof *mean) * 5 ^
                           check_hash(rstd, (size_t)N * G * sizeof *rstd) * 7;
   ddpm_groupnorm_backward(NULL, NULL, NULL, r, x, mean, rstd, gamma, N, C, HW, G);
   CHECK((check_hash(r, n * sizeof *r) ^ check_hash(x, n * sizeof *x) * 3 ^
          check_hash(mean, (size_t)N * G * sizeof *mean) * 5 ^
          check_hash(rstd, (size_t)N * G * sizeof *rstd) * 7) == h0,
         "all gradients NULL writes nothing (dout, x, mean and rstd unchanged)");

   free(fd.x); free(fd.gamma); free(fd.beta); free(fd.r); free(fd.tmp);
   free(x); free(gamma); free(beta); free(r); free(out); free(mean); free(rstd);
   free(dx); free(dg); free(db); free(dx2); free(dg2); free(db2); free(ndx); free(ndg); free(ndb);
}

/* gamma = beta = NULL reads as 1 and 0. */
static void check_null_affine(void)
{
   int N = 2, C = 8, HW = 9, G = 2;
   size_t n = (size_t)N * C * HW;
   float *x = falloc(n), *ones = falloc(C), *zeros = falloc(C), *a = falloc(n), *b = falloc(n);
   float *m = falloc(N * G), *s = falloc(N * G), *da = falloc(n), *dbb = falloc(n), *r = falloc(n);
   check_fill(x, n, 21);
   check_fill(r, n, 22);
   for (int c = 0; c < C; c++) ones[c] = 1;
   ddpm_groupnorm_forward(a, m, s, x, ones, zeros, N, C, HW, G, 1e-6f);
   ddpm_groupnorm_forward(b, m, s, x, NULL, NULL, N, C, HW, G, 1e-6f);
   CHECK_CLOSE(b, a, n, 0, "forward with NULL gamma/beta = gamma 1, beta 0");
   ddpm_groupnorm_forward(b, NULL, NULL, x, ones, zeros, N, C, HW, G, 1e-6f);
   CHECK_CLOSE(b, a, n, 0, "forward with mean, rstd NULL (inference) gives the same output");
   ddpm_groupnorm_backward(da, NULL, NULL, r, x, m, s, ones, N, C, HW, G);
   ddpm_groupnorm_backward(dbb, NULL, NULL, r, x, m, s, NULL, N, C, HW, G);
   CHECK_CLOSE(dbb, da, n, 0, "backward with NULL gamma = gamma 1");
   free(x); free(ones); free(zeros); free(a); free(b); free(m); free(s); free(da); free(dbb); free(r);
}

/* Same bits for 1 and several threads, in a size that takes the parallel path. */
static void check_threads(void)
{
   int N = 4, C = 64, HW = 256, G = 32;
   size_t n = (size_t)N * C * HW;
   float *x = falloc(n), *r = falloc(n), *gamma = falloc(C), *beta = falloc(C);
   float *o1 = falloc(n), *o2 = falloc(n), *m = falloc(N * G), *s = falloc(N * G);
   float *dx1 = falloc(n), *dx2 = falloc(n), *dg1 = falloc(C), *dg2 = falloc(C);
   float *db1 = falloc(C), *db2 = falloc(C);
   check_fill(x, n, 31); check_fill(r, n, 32); check_fill(gamma, C, 33); check_fill(beta, C, 34);
   int saved = omp_get_max_threads();
   omp_set_num_threads(1);
   ddpm_groupnorm_forward(o1, m, s, x, gamma, beta, N, C, HW, G, 1e-6f);
   ddpm_groupnorm_backward(dx1, dg1, db1, r, x, m, s, gamma, N, C, HW, G);
   omp_set_num_threads(4);
   ddpm_groupnorm_forward(o2, m, s, x, gamma, beta, N, C, HW, G, 1e-6f);
   ddpm_groupnorm_backward(dx2, dg2, db2, r, x, m, s, gamma, N, C, HW, G);
   omp_set_num_threads(saved);
   CHECK(memcmp(o1, o2, n * sizeof(float)) == 0, "forward identical for 1 and 4 threads");
   CHECK(memcmp(dx1, dx2, n * sizeof(float)) == 0 && memcmp(dg1, dg2, C * sizeof(float)) == 0
         && memcmp(db1, db2, C * sizeof(float)) == 0, "backward identical for 1 and 4 threads");
   free(x); free(r); free(gamma); free(beta); free(o1); free(o2); free(m); free(s);
   free(dx1); free(dx2); free(dg1); free(dg2); free(db1); free(db2);
}

/* The fused forward and backward against the plain kernels in sequence. */
static void check_fused(int N, int C, int HW, int G, int silu, float p)
{
   size_t n = (size_t)N * C * HW;
   const uint64_t seed = 4242;
   float *x = falloc(n), *gamma = falloc(C), *beta = falloc(C), *dout = falloc(n);
   float *y = falloc(n), *y2 = falloc(n), *ref = falloc(n), *act = falloc(n);
   float *mean2 = falloc(2 * N * G), *rstd2 = falloc(N * G), *mean = falloc(N * G), *rstd = falloc(N * G);
   float *din = falloc(n), *rdin = falloc(n), *work = falloc(n), *g1 = falloc(n), *g2 = falloc(n);
   float *dg = falloc(C), *db = falloc(C), *rdg = falloc(C), *rdb = falloc(C);
   float *dsum = falloc((size_t)N * C), *rsum = falloc((size_t)N * C), *pre = falloc(n), *res = falloc(n);
   check_fill(x, n, 51); check_fill(gamma, C, 52); check_fill(beta, C, 53); check_fill(dout, n, 54);
   check_fill(pre, n, 55); check_fill(res, n, 56);
   for (size_t i = 0; i < n; i++) x[i] = 0.5f + 3.0f * x[i];
   for (int c = 0; c < C; c++) gamma[c] += 1.2f;
   printf("# fused N=%d C=%d HW=%d G=%d silu=%d p=%g\n", N, C, HW, G, silu, p);

   /* forward */
   ddpm_gn_act_forward(y, mean2, rstd2, 0, x, gamma, beta, N, C, HW, G, 1e-6f, silu, (ddpm_dropout){p, seed, 0});
   ddpm_groupnorm_forward(ref, mean, rstd, x, gamma, beta, N, C, HW, G, 1e-6f);   /* pre-activation */
   memcpy(act, ref, n * sizeof(float));
   if (silu) ddpm_silu_forward(act, ref, (int64_t)n);
   float *fin = falloc(n);
   ddpm_dropout_forward(fin, act, (int64_t)n, p, seed);
   /* The fused kernel scales by (float)(rstd_f * gamma) from the saved float
      rstd, the plain one by the double rstd: an ulp apart in the scale, which
      the floor-relative measure shows near SiLU's zeros as ~1e-5. */
   CHECK_CLOSE(y, fin, n, 3e-5, "fused forward = groupnorm, silu, dropout in sequence");
   int stats_ok = 1;
   for (int i = 0; i < N * G; i++)
      stats_ok &= fabsf(mean2[2 * i] + mean2[2 * i + 1] - mean[i]) <= 1e-6f * (1 + fabsf(mean[i])) &&
                  rstd2[i] == rstd[i];
   CHECK(stats_ok, "saved statistics: mean as hi + lo, rstd as the plain kernel's");
   ddpm_gn_act_forward(y2, mean2, rstd2, 1, x, gamma, beta, N, C, HW, G, 1e-6f, silu, (ddpm_dropout){p, seed, 0});
   CHECK(memcmp(y, y2, n * sizeof(float)) == 0, "recomputed from the saved statistics: same bits");
   if (N > 1) {   /* a data-parallel share: images h.. alone, their first index given */
      const int h = N / 2;
      const size_t off = (size_t)h * C * HW;
      ddpm_gn_act_forward(y2, mean2, rstd2, 0, x + off, gamma, beta, N - h, C, HW, G, 1e-6f, silu,
                          (ddpm_dropout){p, seed, (uint64_t)h});
      CHECK(memcmp(y + off, y2, (n - off) * sizeof(float)) == 0,
            "images %d.. alone with first = %d: the same bits (masks) as in the whole batch", h, h);
      ddpm_gn_act_forward(y2, mean2, rstd2, 0, x + off, gamma, beta, N - h, C, HW, G, 1e-6f, silu,
                          (ddpm_dropout){p, seed, 0});
      CHECK(p <= 0.0f || memcmp(y + off, y2, (n - off) * sizeof(float)) != 0,
            "with first = 0 they get other masks (p = %g)", p);
      ddpm_gn_act_forward(y2, mean2, rstd2, 0, x, gamma, beta, N, C, HW, G, 1e-6f, silu,
                          (ddpm_dropout){p, seed, 0});
   }

   /* backward reference: dropout, silu, groupnorm backward (accumulating from 0) */
   memset(g1, 0, n * sizeof(float));
   ddpm_dropout_backward(g1, dout, (int64_t)n, p, seed);
   if (silu) {
      memset(g2, 0, n * sizeof(float));
      ddpm_silu_backward(g2, g1, ref, (int64_t)n);
   } else {
      memcpy(g2, g1, n * sizeof(float));
   }
   memset(rdin, 0, n * sizeof(float)); memset(rdg, 0, C * sizeof(float)); memset(rdb, 0, C * sizeof(float));
   ddpm_groupnorm_backward(rdin, rdg, rdb, g2, x, mean, rstd, gamma, N, C, HW, G);
   for (int b = 0; b < N; b++)
      for (int c = 0; c < C; c++) {
         double t = 0;
         for (int i = 0; i < HW; i++) t += rdin[((size_t)b * C + c) * HW + i];
         rsum[b * C + c] = (float)t;
      }

   /* overwrite (din NaN first), work separate */
   for (size_t i = 0; i < n; i++) din[i] = NAN;
   memset(dg, 0, C * sizeof(float)); memset(db, 0, C * sizeof(float));
   ddpm_gn_act_backward(din, 0, dg, db, dsum, work, dout, x, mean2, rstd2, gamma, beta, NULL,
                        N, C, HW, G, silu, (ddpm_dropout){p, seed, 0});
   CHECK_CLOSE(din, rdin, n, 1e-4, "fused backward din = the plain kernels' (overwrite)");
   CHECK_CLOSE(dg, rdg, C, 1e-4, "dgamma matches");
   CHECK_CLOSE(db, rdb, C, 1e-4, "dbeta matches");
   CHECK_CLOSE(dsum, rsum, (size_t)N * C, 1e-4, "per-image, per-channel sums of din");

   /* accumulate with a residual, work aliasing a copy of dout */
   float *dcopy = falloc(n), *want = falloc(n);
   memcpy(dcopy, dout, n * sizeof(float));
   memcpy(din, pre, n * sizeof(float));
   ddpm_gn_act_backward(din, 1, NULL, NULL, NULL, dcopy, dcopy, x, mean2, rstd2, gamma, beta, res,
                        N, C, HW, G, silu, (ddpm_dropout){p, seed, 0});
   for (size_t i = 0; i < n; i++) want[i] = pre[i] + res[i] + rdin[i];
   CHECK_CLOSE(din, want, n, 1e-4, "accumulate + residual, work = dout");
   /* overwrite into work itself */
   memcpy(dcopy, dout, n * sizeof(float));
   ddpm_gn_act_backward(dcopy, 0, NULL, NULL, NULL, dcopy, dcopy, x, mean2, rstd2, gamma, beta,
                        NULL, N, C, HW, G, silu, (ddpm_dropout){p, seed, 0});
   CHECK_CLOSE(dcopy, rdin, n, 1e-4, "din = work = dout in place");

   /* thread counts */
   int saved = omp_get_max_threads();
   float *d1 = falloc(n), *d3 = falloc(n), *gg1 = falloc(C), *gg3 = falloc(C);
   omp_set_num_threads(1);
   memset(gg1, 0, C * sizeof(float));
   ddpm_gn_act_forward(y, mean2, rstd2, 0, x, gamma, beta, N, C, HW, G, 1e-6f, silu, (ddpm_dropout){p, seed, 0});
   ddpm_gn_act_backward(d1, 0, gg1, NULL, NULL, work, dout, x, mean2, rstd2, gamma, beta, NULL,
                        N, C, HW, G, silu, (ddpm_dropout){p, seed, 0});
   omp_set_num_threads(3);
   memset(gg3, 0, C * sizeof(float));
   ddpm_gn_act_forward(y2, mean2, rstd2, 0, x, gamma, beta, N, C, HW, G, 1e-6f, silu, (ddpm_dropout){p, seed, 0});
   ddpm_gn_act_backward(d3, 0, gg3, NULL, NULL, work, dout, x, mean2, rstd2, gamma, beta, NULL,
                        N, C, HW, G, silu, (ddpm_dropout){p, seed, 0});
   omp_set_num_threads(saved);
   CHECK(!memcmp(y, y2, n * 4) && !memcmp(d1, d3, n * 4) && !memcmp(gg1, gg3, C * 4),
         "fused kernels: same bits for 1 and 3 threads");
   free(d1); free(d3); free(gg1); free(gg3); free(dcopy); free(want); free(fin);
   free(x); free(gamma); free(beta); free(dout); free(y); free(y2); free(ref); free(act);
   free(mean2); free(rstd2); free(mean); free(rstd); free(din); free(rdin); free(work);
   free(g1); free(g2); free(dg); free(db); free(rdg); free(rdb); free(dsum); free(rsum);
   free(pre); free(res);
}

int main(void)
{
   check_forward(3, 12, 20, 4, 0.0f, 1.0f, 1);
   check_forward(2, 128, 256, 32, 0.0f, 1.0f, 2);      /* CIFAR-10 sizes, parallel path */
   check_forward(2, 16, 64, 4, 100.0f, 0.01f, 3);      /* far from 0: needs the two-pass variance */
   check_forward(1, 6, 5, 1, 0.0f, 1.0f, 4);           /* one group */
   check_forward(2, 6, 5, 6, 0.0f, 1.0f, 5);           /* one channel per group */
   check_backward(2, 6, 5, 3);
   check_backward(3, 8, 7, 1);
   check_backward(2, 4, 10, 4);
   check_null_affine();
   check_threads();
   check_fused(2, 8, 20, 4, 1, 0.0f);
   check_fused(3, 64, 49, 32, 1, 0.1f);       /* 7x7, one KEEP chunk per plane */
   check_fused(2, 32, 300, 16, 1, 0.3f);      /* planes longer than a KEEP chunk */
   check_fused(2, 12, 9, 3, 0, 0.0f);         /* plain GroupNorm (attention) */
   return check_done();
}
