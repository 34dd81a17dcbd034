/*
 * test_adam.c — Adam against a double-precision reference written from the
 * TF1 update rule, clipping, EMA, and the thread-count independence of the
 * gradient norm.
 */
#include "check.h"
#include "ddpm.h"

static void test_adam(void)
{
   const int n = 1000, steps = 5;
   float *w = malloc(n * 4), *g = malloc(n * 4);
   double *rw = malloc(n * 8), *rm = calloc(n, 8), *rv = calloc(n, 8);
   check_fill(w, n, 1);
   for (int i = 0; i < n; i++) rw[i] = w[i];
   ddpm_adam *a = ddpm_adam_new(n, 0.9, 0.999, 1e-8, 0);
   CHECK(a != NULL, "adam builds");
   for (int s = 1; s <= steps; s++) {
      check_fill(g, n, 10 + s);
      double lr = 2e-4 * s;
      ddpm_adam_step(a, w, g, lr);
      double c = lr * sqrt(1 - pow(0.999, s)) / (1 - pow(0.9, s));
      for (int i = 0; i < n; i++) {
         rm[i] = 0.9 * rm[i] + 0.1 * g[i];
         rv[i] = 0.999 * rv[i] + 0.001 * (double)g[i] * g[i];
         rw[i] -= c * rm[i] / (sqrt(rv[i]) + 1e-8);
      }
   }
   /* Compare the updates, not the weights: the weights hide their change. */
   float *dw = malloc(n * 4), *rwf = malloc(n * 4), *w0 = malloc(n * 4);
   check_fill(w0, n, 1);
   for (int i = 0; i < n; i++) { dw[i] = w[i] - w0[i]; rwf[i] = (float)(rw[i] - w0[i]); }
   /* float32 weights round at ~3e-8 each step, so judge on the update scale */
   double emax = 0, umax = 0;
   for (int i = 0; i < n; i++) {
      emax = fmax(emax, fabs((double)dw[i] - rwf[i]));
      umax = fmax(umax, fabs(rwf[i]));
   }
   printf("# max |update error| %.3g, max |update| %.3g\n", emax, umax);
   CHECK(emax < 1e-3 * umax, "5 Adam steps match the double reference");
   free(dw); free(w0);
   CHECK(a->t == steps, "step counter %lld", (long long)a->t);
   CHECK(ddpm_adam_step(a, w, g, NAN) == DDPM_EINVAL, "NaN learning rate rejected");
   CHECK(ddpm_adam_new(10, 1.0, 0.999, 1e-8, 0) == NULL, "beta1 = 1 rejected: %s", ddpm_errmsg());
   ddpm_adam_free(a);
   free(w); free(g); free(rw); free(rm); free(rv); free(rwf);
}

static void test_clip_ema(void)
{
   const int64_t n = 300000;
   float *g = malloc(n * 4);
   check_fill(g, n, 5);
   double ref = 0;
   for (int64_t i = 0; i < n; i++) ref += (double)g[i] * g[i];
   ref = sqrt(ref);
   ddpm_set_num_threads(1);
   double n1 = ddpm_l2_norm(g, n);
   ddpm_set_num_threads(2);
   double n2 = ddpm_l2_norm(g, n);
   CHECK(fabs(n1 - ref) < 1e-9 * ref, "norm %.10g vs %.10g", n1, ref);
   CHECK(n1 == n2, "norm identical for 1 and 2 threads");
   double before = ddpm_clip_grad_norm(g, n, 1.0);
   CHECK(before == n1, "clip returns the norm before clipping");
   CHECK(fabs(ddpm_l2_norm(g, n) - 1.0) < 1e-5, "clipped to norm 1");
   float e[3] = {1, 2, 3}, w[3] = {0, 0, 0};
   ddpm_ema_update(e, w, 3, 0.9);
   CHECK(fabsf(e[0] - 0.9f) < 1e-7f && fabsf(e[2] - 2.7f) < 1e-6f, "EMA: ema - (1-d)(ema - w)");
   g[7] = NAN;
   CHECK(!ddpm_all_finite(g, n), "NaN detected");
   free(g);
}

int main(void)
{
   test_adam();
   test_clip_ema();
   return check_done();
}
