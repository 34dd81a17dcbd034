/*
 * test_attention.c — the self-attention core (runtime/attention.c) against a
 * naive double reference: forward output and every saved buffer, a softmax
 * that survives large scores, central finite-difference gradients of h and
 * all eight parameters, accumulation, NULL gradients, and scratch bounds.
 * Then the U-Net's variants (kernels.h): the residual folded into the
 * forward, and the batched backward (images side by side, overwriting dh)
 * against the public one-image-at-a-time backward.
 */
#include "ddpm.h"
#include "kernels.h"
#include "check.h"

/* Parameter order used throughout: wq bq wk bk wv bv wo bo. */
enum { WQ, BQ, WK, BK, WV, BV, WO, BO, NPARAM };
static const char *pname[NPARAM] = { "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo" };

/* h [N,C,P] -> out [N,C,P]; saved buffers may be NULL. */
static void ref_forward(double *out, double *qs, double *ks, double *vs, double *atts,
                        double *os, const double *h, double *const *p, int N, int C, int P)
{
   double *q = malloc(sizeof(double) * C * P), *k = malloc(sizeof(double) * C * P);
   double *v = malloc(sizeof(double) * C * P), *a = malloc(sizeof(double) * P * P);
   double *o = malloc(sizeof(double) * C * P);
   double scale = 1.0 / sqrt((double)C);
   for (int n = 0; n < N; n++) {
      const double *hn = h + (size_t)n * C * P;
      double *proj[3] = { q, k, v };
      for (int m = 0; m < 3; m++) {
         const double *w = p[WQ + 2 * m], *b = p[BQ + 2 * m];
         for (int c = 0; c < C; c++)
            for (int i = 0; i < P; i++) {
               double s = b[c];
               for (int d = 0; d < C; d++) s += w[c * C + d] * hn[d * P + i];
               proj[m][c * P + i] = s;
            }
      }
      for (int i = 0; i < P; i++) {
         double mx = -INFINITY, sum = 0;
         for (int j = 0; j < P; j++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += q[c * P + i] * k[c * P + j];
            a[i * P + j] = s * scale;
            if (a[i * P + j] > mx) mx = a[i * P + j];
         }
         for (int j = 0; j < P; j++) sum += a[i * P + j] = exp(a[i * P + j] - mx);
         for (int j = 0; j < P; j++) a[i * P + j] /= sum;
      }
      for (int c = 0; c < C; c++)
         for (int i = 0; i < P; i++) {
            double s = 0;
            for (int j = 0; j < P; j++) s += v[c * P + j] * a[i * P + j];
            o[c * P + i] = s;
         }
      double *on = out + (size_t)n * C * P;
      for (int c = 0; c < C; c++)
         for (int i = 0; i < P; i++) {
            double s = p[BO][c];
            for (int d = 0; d < C; d++) s += p[WO][c * C + d] * o[d * P + i];
            on[c * P + i] = s;
         }
      size_t cp = (size_t)C * P, pp = (size_t)P * P;
      if (qs) memcpy(qs + n * cp, q, cp * sizeof(double));
      if (ks) memcpy(ks + n * cp, k, cp * sizeof(double));
      if (vs) memcpy(vs + n * cp, v, cp * sizeof(double));
      if (atts) memcpy(atts + n * pp, a, pp * sizeof(double));
      if (os) memcpy(os + n * cp, o, cp * sizeof(double));
   }
   free(q); free(k); free(v); free(a); free(o);
}

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static void to_double(double *d, const float *f, size_t n) { for (size_t i = 0; i < n; i++) d[i] = f[i]; }
static void to_float(float *f, const double *d, size_t n) { for (size_t i = 0; i < n; i++) f[i] = (float)d[i]; }

/* One problem: float inputs, the kernel's buffers, and double copies. */
typedef struct {
   int N, C, P;
   size_t nh, na, psize[NPARAM];
   float *h, *p[NPARAM], *out, *q, *k, *v, *att, *o;
   double *hd, *pd[NPARAM];
} prob;

static void prob_init(prob *s, int N, int C, int P, float hscale, float wscale, unsigned seed)
{
   s->N = N; s->C = C; s->P = P;
   s->nh = (size_t)N * C * P;
   s->na = (size_t)N * P * P;
   s->h = falloc(s->nh); s->hd = dalloc(s->nh);
   check_fill(s->h, s->nh, seed);
   for (size_t i = 0; i < s->nh; i++) s->h[i] *= hscale;
   to_double(s->hd, s->h, s->nh);
   for (int m = 0; m < NPARAM; m++) {
      s->psize[m] = m % 2 ? (size_t)C : (size_t)C * C;
      s->p[m] = falloc(s->psize[m]);
      s->pd[m] = dalloc(s->psize[m]);
      check_fill(s->p[m], s->psize[m], seed + 1 + m);
      /* Weights ~ U(-wscale, wscale) make scores O(1): attention neither
         uniform nor one-hot, so every path carries gradient. */
      for (size_t i = 0; i < s->psize[m]; i++) s->p[m][i] *= m % 2 ? 0.5f : wscale;
      to_double(s->pd[m], s->p[m], s->psize[m]);
   }
   s->out = falloc(s->nh); s->q = falloc(s->nh); s->k = falloc(s->nh); s->v = falloc(s->nh);
   s->o = falloc(s->nh); s->att = falloc(s->na);
}

static void prob_free(prob *s)
{
   free(s->h); free(s->hd);
   for (int m = 0; m < NPARAM; m++) { free(s->p[m]); free(s->pd[m]); }
   free(s->out); free(s->q); free(s->k); free(s->v); free(s->o); free(s->att);
}

static void prob_forward(prob *s)
{
   ddpm_attention_forward(s->out, s->q, s->k, s->v, s->att, s->o, s->h,
                          s->p[WQ], s->p[BQ], s->p[WK], s->p[BK],
                          s->p[WV], s->p[BV], s->p[WO], s->p[BO], s->N, s->C, s->P);
}

/* g[NPARAM] may hold NULLs. */
static void prob_backward(prob *s, float *dh, float *const *g, float *scratch, const float *dout)
{
   ddpm_attention_backward(dh, g[WQ], g[BQ], g[WK], g[BK], g[WV], g[BV], g[WO], g[BO],
                           scratch, dout, s->h, s->q, s->k, s->v, s->att, s->o,
                           s->p[WQ], s->p[WK], s->p[WV], s->p[WO], s->N, s->C, s->P);
}

static void check_forward(int N, int C, int P, float hscale, float wscale, double tol)
{
   prob s;
   prob_init(&s, N, C, P, hscale, wscale, 1);
   prob_forward(&s);
   double *out = dalloc(s.nh), *q = dalloc(s.nh), *k = dalloc(s.nh), *v = dalloc(s.nh);
   double *o = dalloc(s.nh), *att = dalloc(s.na);
   float *f = falloc(s.na > s.nh ? s.na : s.nh);
   ref_forward(out, q, k, v, att, o, s.hd, s.pd, N, C, P);
   printf("# forward N=%d C=%d P=%d, |h| <= %g, |w| <= %g\n", N, C, P, hscale, wscale);
   to_float(f, q, s.nh);   CHECK_CLOSE(s.q, f, s.nh, tol, "q matches");
   to_float(f, k, s.nh);   CHECK_CLOSE(s.k, f, s.nh, tol, "k matches");
   to_float(f, v, s.nh);   CHECK_CLOSE(s.v, f, s.nh, tol, "v matches");
   to_float(f, att, s.na); CHECK_CLOSE(s.att, f, s.na, tol, "att matches");
   to_float(f, o, s.nh);   CHECK_CLOSE(s.o, f, s.nh, tol, "o matches");
   to_float(f, out, s.nh); CHECK_CLOSE(s.out, f, s.nh, tol, "out matches");
   int finite = 1;
   for (size_t i = 0; i < s.nh; i++) finite &= isfinite(s.out[i]);
   double worst = 0;
   for (int r = 0; r < N * P; r++) {
      double sum = 0;
      for (int j = 0; j < P; j++) sum += s.att[(size_t)r * P + j];
      if (fabs(sum - 1) > worst) worst = fabs(sum - 1);
   }
   CHECK(finite && worst < 1e-5, "output finite, rows of att sum to 1 (worst |sum-1| %.2g)", worst);
   free(out); free(q); free(k); free(v); free(o); free(att); free(f);
   prob_free(&s);
}

/* L = sum(ref_forward(h, params) * r), differentiated centrally in double. */
static prob *fd_s;
static double *fd_r, *fd_tmp;

static double fd_loss(void)
{
   ref_forward(fd_tmp, NULL, NULL, NULL, NULL, NULL, fd_s->hd, fd_s->pd, fd_s->N, fd_s->C, fd_s->P);
   double L = 0;
   for (size_t i = 0; i < fd_s->nh; i++) L += fd_tmp[i] * fd_r[i];
   return L;
}

static void fd_grad(float *g, double *x, size_t n)
{
   const double h = 1e-5;
   for (size_t i = 0; i < n; i++) {
      double x0 = x[i];
      x[i] = x0 + h; double lp = fd_loss();
      x[i] = x0 - h; double lm = fd_loss();
      x[i] = x0;
      g[i] = (float)((lp - lm) / (2 * h));
   }
}

#define GUARD 64

static void check_backward(int N, int C, int P)
{
   prob s;
   prob_init(&s, N, C, P, 1.0f, 1.2f, 5);
   prob_forward(&s);
   float *r = falloc(s.nh);
   check_fill(r, s.nh, 99);

   /* The scratch, sized by the API, with a guard band that must stay intact. */
   size_t ns = ddpm_attention_scratch_floats(C, P);
   float *scratch = falloc(ns + GUARD);
   for (size_t i = 0; i < ns + GUARD; i++) scratch[i] = 12345.0f;

   float *dh = falloc(s.nh), *g[NPARAM], *ng[NPARAM], *g2[NPARAM];
   float *ndh = falloc(s.nh), *dh2 = falloc(s.nh);
   for (int m = 0; m < NPARAM; m++) {
      g[m] = falloc(s.psize[m]); ng[m] = falloc(s.psize[m]); g2[m] = falloc(s.psize[m]);
   }
   prob_backward(&s, dh, g, scratch, r);
   int intact = 1;
   for (size_t i = ns; i < ns + GUARD; i++) intact &= scratch[i] == 12345.0f;
   CHECK(intact, "backward writes only within ddpm_attention_scratch_floats(C, P) = %zu", ns);

   fd_s = &s; fd_r = dalloc(s.nh); fd_tmp = dalloc(s.nh);
   to_double(fd_r, r, s.nh);
   fd_grad(ndh, s.hd, s.nh);
   for (int m = 0; m < NPARAM; m++) fd_grad(ng[m], s.pd[m], s.psize[m]);
   printf("# backward N=%d C=%d P=%d\n", N, C, P);
   CHECK_CLOSE(dh, ndh, s.nh, 1e-4, "dh matches finite differences");
   for (int m = 0; m < NPARAM; m++) {
      if (m == BK) continue;
      CHECK_CLOSE(g[m], ng[m], s.psize[m], 1e-4, "d%s matches finite differences", pname[m]);
   }
   /* bk adds <q_i, bk> to a whole row of scores, which softmax ignores: its
      true gradient is 0, so only an absolute bound on the rounding makes sense. */
   double worst = 0, scale = 0;
   for (size_t i = 0; i < s.psize[BK]; i++) worst = fmax(worst, fabs(g[BK][i] - ng[BK][i]));
   for (size_t i = 0; i < s.psize[WK]; i++) scale = fmax(scale, fabs(ng[WK][i]));
   printf("# dbk max abs %.3g (true value 0; dwk scale %.3g)\n", worst, scale);
   CHECK(worst <= 1e-5 * scale, "dbk is 0 up to rounding");

   /* Two calls from zero are twice one. */
   prob_backward(&s, dh2, g2, scratch, r);
   prob_backward(&s, dh2, g2, scratch, r);
   for (size_t i = 0; i < s.nh; i++) ndh[i] = 2 * dh[i];
   CHECK_CLOSE(dh2, ndh, s.nh, 1e-6, "dh accumulates (two calls = 2x)");
   for (int m = 0; m < NPARAM; m++) {
      for (size_t i = 0; i < s.psize[m]; i++) ng[m][i] = 2 * g[m][i];
      CHECK_CLOSE(g2[m], ng[m], s.psize[m], 1e-6, "d%s accumulates", pname[m]);
   }

   /* Each gradient alone (all others NULL) gives the full call's values. */
   float *none[NPARAM] = { 0 };
   memset(dh2, 0, s.nh * sizeof(float));
   prob_backward(&s, dh2, none, scratch, r);
   CHECK_CLOSE(dh2, dh, s.nh, 1e-6, "dh alone (all parameter gradients NULL)");
   for (int m = 0; m < NPARAM; m++) {
      float *one[NPARAM] = { 0 };
      memset(g2[m], 0, s.psize[m] * sizeof(float));
      one[m] = g2[m];
      prob_backward(&s, NULL, one, scratch, r);
      CHECK_CLOSE(g2[m], g[m], s.psize[m], 1e-6, "d%s alone (dh and the rest NULL)", pname[m]);
   }
   unsigned long long h0 = check_hash(r, s.nh * sizeof *r) ^ check_hash(s.h, s.nh * sizeof *s.h) * 3 ^
                           check_hash(s.att, s.na * sizeof *s.att) * 5;
   prob_backward(&s, NULL, none, scratch, r);
   CHECK((check_hash(r, s.nh * sizeof *r) ^ check_hash(s.h, s.nh * sizeof *s.h) * 3 ^
          check_hash(s.att, s.na * sizeof *s.att) * 5) == h0,
         "all gradients NULL writes nothing (dout, h and the saved attention unchanged)");

   free(fd_r); free(fd_tmp); free(r); free(scratch); free(dh); free(ndh); free(dh2);
   for (int m = 0; m < NPARAM; m++) { free(g[m]); free(ng[m]); free(g2[m]); }
   prob_free(&s);
}

/* forward_res = forward + x; backward_ex (batched, overwrite or accumulate)
   = the public backward. */
static void check_variants(int N, int C, int P, int use_ws)
{
   size_t per = ddpm_attention_gemm_work_floats(C, P);
   float *wbuf = falloc(per * 3);
   ddpm_gemm_ws wsv = { wbuf, per, 3, 0 };
   const ddpm_gemm_ws *ws = use_ws ? &wsv : NULL;
   prob s;
   prob_init(&s, N, C, P, 1.0f, 0.5f, 7);
   prob_forward(&s);
   float *x = falloc(s.nh), *out2 = falloc(s.nh), *want = falloc(s.nh);
   float *q2 = falloc(s.nh), *k2 = falloc(s.nh), *v2 = falloc(s.nh), *o2 = falloc(s.nh);
   float *att2 = falloc(s.na);
   check_fill(x, s.nh, 31);
   ddpm_attention_forward_res(out2, q2, k2, v2, att2, o2, s.h, x, s.p[WQ], s.p[BQ], s.p[WK],
                              s.p[BK], s.p[WV], s.p[BV], s.p[WO], s.p[BO], N, C, P, ws);
   for (size_t i = 0; i < s.nh; i++) want[i] = s.out[i] + x[i];
   printf("# variants N=%d C=%d P=%d%s\n", N, C, P, use_ws ? " (runtime GEMM)" : "");
   /* (x + bo) + Wo o against (bo + Wo o) + x: float rounding apart */
   CHECK_CLOSE(out2, want, s.nh, 1e-4, "forward with the residual = forward + x");
   CHECK(check_max_rel(q2, s.q, s.nh) <= 1e-5 && check_max_rel(att2, s.att, s.na) <= 1e-4 &&
         check_max_rel(o2, s.o, s.nh) <= 1e-4, "forward with the residual saves the same q, att, o");

   float *dout = falloc(s.nh), *dh = falloc(s.nh), *dh2 = falloc(s.nh), *pre = falloc(s.nh);
   float *g[NPARAM], *g2[NPARAM];
   check_fill(dout, s.nh, 32);
   check_fill(pre, s.nh, 33);
   for (int m = 0; m < NPARAM; m++) {
      size_t n = (m % 2) ? (size_t)C : (size_t)C * C;
      g[m] = falloc(n); g2[m] = falloc(n);
      memset(g[m], 0, n * 4); memset(g2[m], 0, n * 4);
   }
   float *scratch = falloc((size_t)N * ddpm_attention_scratch_floats(C, P));
   memset(dh, 0, s.nh * 4);
   prob_backward(&s, dh, g, scratch, dout);
   for (size_t i = 0; i < s.nh; i++) dh2[i] = NAN;
   ddpm_attention_backward_ex(dh2, 0, g2[WQ], g2[BQ], g2[WK], g2[BK], g2[WV], g2[BV], g2[WO],
                              g2[BO], scratch, dout, s.h, s.q, s.k, s.v, s.att, s.o,
                              s.p[WQ], s.p[WK], s.p[WV], s.p[WO], N, C, P, ws);
   CHECK_CLOSE(dh2, dh, s.nh, 1e-4, "batched backward overwrites dh with the same gradient");
   double worst = 0;
   for (int m = 0; m < NPARAM; m++) {
      if (m == BK) continue;   /* zero in exact arithmetic: both sides are rounding */
      size_t n = (m % 2) ? (size_t)C : (size_t)C * C;
      double e = check_max_rel(g2[m], g[m], n);
      if (!(e <= worst)) worst = e;
   }
   CHECK(worst <= 5e-4, "batched backward: every parameter gradient (max rel err %.3g)", worst);
   memcpy(dh2, pre, s.nh * 4);
   ddpm_attention_backward_ex(dh2, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, scratch,
                              dout, s.h, s.q, s.k, s.v, s.att, s.o, s.p[WQ], s.p[WK], s.p[WV],
                              s.p[WO], N, C, P, ws);
   for (size_t i = 0; i < s.nh; i++) want[i] = pre[i] + dh[i];
   CHECK_CLOSE(dh2, want, s.nh, 1e-4, "batched backward accumulates into dh");
   for (int m = 0; m < NPARAM; m++) { free(g[m]); free(g2[m]); }
   free(scratch); free(dout); free(dh); free(dh2); free(pre);
   free(x); free(out2); free(want); free(q2); free(k2); free(v2); free(o2); free(att2);
   free(wbuf);
   prob_free(&s);
}

int main(void)
{
   /* Sums of C float products; the check's floor (1e-3 of the largest value)
      magnifies their rounding near zero entries, hence 3e-4 at C = 64. */
   check_forward(2, 8, 6, 1.0f, 1.0f, 3e-5);
   check_forward(2, 64, 64, 1.0f, 0.3f, 3e-4);     /* GEMM-sized, parallel softmax */
   check_forward(1, 16, 16, 30.0f, 1.0f, 1e-4);    /* scores in the thousands */
   check_backward(2, 4, 5);
   check_backward(1, 6, 9);
   check_backward(3, 3, 4);
   ddpm_set_num_threads(2);
   for (int w = 0; w < 2; w++) {
      check_variants(3, 8, 12, w);
      check_variants(4, 32, 16, w);
      check_variants(2, 64, 100, w);     /* products big enough for the runtime GEMM */
   }
   return check_done();
}
