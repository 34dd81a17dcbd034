/*
 * test_adam.c — Adam against a double-precision reference written from the
 * TF1 update rule, clipping, EMA, and the thread-count independence of the
 * gradient norm, and the fused pass (step + clip scale + EMA + zero_grad)
 * against the separate passes bit for bit.
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


/* The loop ddpm_adam_step ran before the fused pass, element by element in
   float32: the fused pass must give its bits. */
static void ref_adam(float *w, const float *g, float *m, float *v, int64_t n, int t, double lr,
                     double beta1, double beta2, double eps, double wd)
{
   const float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps, d = (float)wd;
   const float step = (float)(lr * sqrt(1.0 - pow(beta2, (double)t)) / (1.0 - pow(beta1, (double)t)));
   for (int64_t i = 0; i < n; i++) {
      float gi = g[i] + d * w[i];
      float mi = b1 * m[i] + (1.0f - b1) * gi;
      float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      w[i] -= step * mi / (sqrtf(vi) + e);
   }
}

static int same_bits(const float *a, const float *b, int64_t n)
{
   return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ddpm_adam_step_ex (scale, step, EMA, zeroing) against scale + the old loop
   + ddpm_ema_update + memset, bit for bit, for 1 and 2 threads, a length with
   a ragged tail and weight decay on and off. */
static void test_fused(void)
{
   const int64_t n = 3 * 16384 + 1000 + 7;
   float *w = malloc(n * 4), *g = malloc(n * 4), *e = malloc(n * 4);
   float *rw = malloc(n * 4), *rg = malloc(n * 4), *re = malloc(n * 4);
   float *rm = calloc(n, 4), *rv = calloc(n, 4);
   for (int threads = 1; threads <= 2; threads++)
      for (int wdi = 0; wdi < 2; wdi++) {
         const double wd = wdi ? 0.01 : 0.0;
         ddpm_set_num_threads(threads);
         check_fill(w, n, 3);
         check_fill(e, n, 4);
         memcpy(rw, w, n * 4);
         memcpy(re, e, n * 4);
         memset(rm, 0, n * 4);
         memset(rv, 0, n * 4);
         ddpm_adam *a = ddpm_adam_new(n, 0.9, 0.999, 1e-8, wd);
         int ok = 1;
         for (int s = 1; s <= 4; s++) {
            check_fill(g, n, 20 + s);
            if (s == 3) g[5] *= 1e20f;   /* a large one, as a spike would be */
            memcpy(rg, g, n * 4);
            const double lr = 1e-3 * s;
            /* steps 2 and 4: clipped by a scale, as ddpm_clip_grad_norm does */
            const float gs = s % 2 ? 0.0f : (float)(1.0 / ddpm_l2_norm(rg, n));
            if (gs != 0.0f) ddpm_scale(rg, n, gs);
            ref_adam(rw, rg, rm, rv, n, s, lr, 0.9, 0.999, 1e-8, wd);
            ddpm_ema_update(re, rw, n, 0.999);
            memset(rg, 0, n * 4);
            ddpm_adam_pass p = { gs, e, 0.999, DDPM_GRADS_ZERO };
            ok &= ddpm_adam_step_ex(a, w, g, lr, &p) == DDPM_OK;
            ok &= same_bits(w, rw, n) && same_bits(e, re, n) && same_bits(g, rg, n);
            ok &= same_bits(ddpm_tensor_data(a->m), rm, n) && same_bits(ddpm_tensor_data(a->v), rv, n);
         }
         CHECK(ok, "fused Adam + clip scale + EMA + zero_grad bit-identical to the separate "
                   "passes (%d threads, weight decay %g)", threads, wd);
         /* a plain step leaves g alone, a scaled one leaves the scaled g */
         check_fill(g, n, 40);
         memcpy(rg, g, n * 4);
         ddpm_adam_step(a, w, g, 1e-3);
         CHECK(same_bits(g, rg, n), "ddpm_adam_step leaves the gradients as they were");
         ddpm_adam_pass p = { 0.5f, NULL, 0, DDPM_GRADS_KEEP };
         ddpm_adam_step_ex(a, w, g, 1e-3, &p);
         ddpm_scale(rg, n, 0.5f);
         CHECK(same_bits(g, rg, n), "a scaled step leaves the scaled gradients");
         ddpm_adam_pass bad = { 0, e, 1.5, DDPM_GRADS_KEEP };
         const int64_t t0 = a->t;
         CHECK(ddpm_adam_step_ex(a, w, g, 1e-3, &bad) == DDPM_EINVAL && a->t == t0,
               "EMA decay 1.5 rejected before any change: %s", ddpm_errmsg());
         ddpm_adam_free(a);
      }
   ddpm_set_num_threads(2);
   free(w); free(g); free(e); free(rw); free(rg); free(re); free(rm); free(rv);
}

int main(void)
{
   test_adam();
   test_clip_ema();
   test_fused();
   return check_done();
}
