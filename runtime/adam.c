/*
 * adam.c — Adam, gradient-norm clipping and the parameter EMA, each one fused
 * loop over the U-Net's flat buffers (the paper's optimiser set-up, docs/math.md §7).
 */
#include "ddpm.h"

#include <math.h>
#include <stdlib.h>

ddpm_adam *ddpm_adam_new(int64_t n, double beta1, double beta2, double eps, double weight_decay)
{
   if (n < 1) { ddpm_seterr(DDPM_EINVAL, "adam: %lld parameters", (long long)n); return NULL; }
   if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
      ddpm_seterr(DDPM_EINVAL, "adam: betas must be in [0,1), got %g, %g", beta1, beta2);
      return NULL;
   }
   if (!(eps > 0) || !(weight_decay >= 0)) {
      ddpm_seterr(DDPM_EINVAL, "adam: eps must be positive and weight_decay non-negative");
      return NULL;
   }
   ddpm_adam *a = calloc(1, sizeof *a);
   if (!a) { ddpm_seterr(DDPM_ENOMEM, "adam: out of memory"); return NULL; }
   a->n = n;
   a->m = ddpm_tensor_new_1d(n);
   a->v = ddpm_tensor_new_1d(n);
   if (!a->m || !a->v) { ddpm_adam_free(a); return NULL; }
   a->beta1 = beta1; a->beta2 = beta2; a->eps = eps; a->weight_decay = weight_decay;
   return a;
}

void ddpm_adam_free(ddpm_adam *a)
{
   if (!a) return;
   ddpm_tensor_release(a->m);
   ddpm_tensor_release(a->v);
   free(a);
}

int ddpm_adam_step(ddpm_adam *a, float *w, const float *g, double lr)
{
   if (!(lr >= 0) || !isfinite(lr)) return ddpm_seterr(DDPM_EINVAL, "adam: learning rate %g", lr);
   a->t++;
   const float b1 = (float)a->beta1, b2 = (float)a->beta2, eps = (float)a->eps;
   const float wd = (float)a->weight_decay;
   const float step = (float)(lr * sqrt(1.0 - pow(a->beta2, (double)a->t)) /
                              (1.0 - pow(a->beta1, (double)a->t)));
   float *m = ddpm_tensor_data(a->m), *v = ddpm_tensor_data(a->v);
   const int64_t n = a->n;
   #pragma omp parallel for schedule(static)
   for (int64_t i = 0; i < n; i++) {
      float gi = g[i] + wd * w[i];
      float mi = b1 * m[i] + (1.0f - b1) * gi;
      float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      w[i] -= step * mi / (sqrtf(vi) + eps);
   }
   return DDPM_OK;
}

#define BLOCK 65536

double ddpm_l2_norm(const float *x, int64_t n)
{
   int64_t nb = (n + BLOCK - 1) / BLOCK;
   double stack[256], *part = nb <= 256 ? stack : malloc((size_t)nb * sizeof *part);
   if (!part) {           /* fall back to one sequential sum */
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
      return sqrt(s);
   }
   #pragma omp parallel for schedule(static)
   for (int64_t b = 0; b < nb; b++) {
      int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
      double s = 0;
      for (int64_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
      part[b] = s;
   }
   double s = 0;
   for (int64_t b = 0; b < nb; b++) s += part[b];
   if (part != stack) free(part);
   return sqrt(s);
}

void ddpm_scale(float *x, int64_t n, float s)
{
   #pragma omp parallel for schedule(static)
   for (int64_t i = 0; i < n; i++) x[i] *= s;
}

double ddpm_clip_grad_norm(float *g, int64_t n, double max_norm)
{
   double norm = ddpm_l2_norm(g, n);
   if (max_norm > 0 && norm > max_norm && isfinite(norm))
      ddpm_scale(g, n, (float)(max_norm / norm));
   return norm;
}

void ddpm_ema_update(float *ema, const float *w, int64_t n, double decay)
{
   const float k = (float)(1.0 - decay);
   #pragma omp parallel for schedule(static)
   for (int64_t i = 0; i < n; i++) ema[i] -= k * (ema[i] - w[i]);
}

int ddpm_all_finite(const float *x, int64_t n)
{
   int ok = 1;
   #pragma omp parallel for schedule(static) reduction(&&:ok)
   for (int64_t i = 0; i < n; i++) ok = ok && isfinite(x[i]);
   return ok;
}
