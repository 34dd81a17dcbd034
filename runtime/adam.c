/*
 * adam.c — Adam, gradient-norm clipping and the parameter EMA over the U-Net's
 * flat buffers (the paper's optimiser set-up, docs/math.md §7).
 *
 * ddpm_adam_step_ex does the clip's scaling, the step, the EMA and the
 * zeroing of the gradients in one pass: a training step's optimiser work then
 * reads and writes each of the five buffers (w, g, m, v, ema) once instead of
 * separate passes for the scale, the step, the EMA and zero_grad. The pass is
 * memory-bound (see make roofline); its arithmetic is written out in AVX-512
 * because the compiler keeps sqrtf scalar (errno) and the loop with it.
 * Not here: the gradient norm's reduction (ddpm_l2_norm, below), which must
 * finish before the scale is known.
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

/*
 * The step, element by element, in the order of operations every path below
 * keeps (the build's -std=c11 turns off FMA contraction, and AVX-512's sqrt
 * and divide round as sqrtf and / do), so the vector loop, the scalar tail
 * and ddpm_adam_step of earlier versions give the same bits:
 *    g' = g * gs                   (only when clipping: gs != 1)
 *    g' = g' + wd * w
 *    m  = b1 * m + (1 - b1) * g'
 *    v  = b2 * v + (1 - b2) * g' * g'
 *    w  = w - step * m / (sqrt(v) + eps)
 *    e  = e - (1 - decay) * (e - w)    (with an EMA)
 */
typedef struct adam_k {
   float b1, c1, b2, c2, eps, wd, step, gs, ek;
   int scale, store_g, zero_g;   /* g read as g * gs; g written back (scaled, or 0) */
} adam_k;

static inline void adam_one(const adam_k *k, float *w, float *g, float *m, float *v, float *e,
                            int64_t i)
{
   float gi = g[i];
   if (k->scale) gi = gi * k->gs;
   if (k->zero_g) g[i] = 0.0f;
   else if (k->store_g) g[i] = gi;
   gi = gi + k->wd * w[i];
   const float mi = k->b1 * m[i] + k->c1 * gi;
   const float vi = k->b2 * v[i] + k->c2 * gi * gi;
   m[i] = mi;
   v[i] = vi;
   const float wi = w[i] - k->step * mi / (sqrtf(vi) + k->eps);
   w[i] = wi;
   if (e) e[i] = e[i] - k->ek * (e[i] - wi);
}

#if defined(__AVX512F__)
#include <immintrin.h>
/* Elements [lo, hi), hi - lo a multiple of 16. */
static void adam_vec(const adam_k *k, float *w, float *g, float *m, float *v, float *e,
                     int64_t lo, int64_t hi)
{
   const __m512 b1 = _mm512_set1_ps(k->b1), c1 = _mm512_set1_ps(k->c1);
   const __m512 b2 = _mm512_set1_ps(k->b2), c2 = _mm512_set1_ps(k->c2);
   const __m512 eps = _mm512_set1_ps(k->eps), wd = _mm512_set1_ps(k->wd);
   const __m512 step = _mm512_set1_ps(k->step), gs = _mm512_set1_ps(k->gs);
   const __m512 ek = _mm512_set1_ps(k->ek), zero = _mm512_setzero_ps();
   for (int64_t i = lo; i < hi; i += 16) {
      __m512 gi = _mm512_loadu_ps(g + i), wi = _mm512_loadu_ps(w + i);
      if (k->scale) gi = _mm512_mul_ps(gi, gs);
      if (k->zero_g) _mm512_storeu_ps(g + i, zero);
      else if (k->store_g) _mm512_storeu_ps(g + i, gi);
      gi = _mm512_add_ps(gi, _mm512_mul_ps(wd, wi));
      const __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)),
                                      _mm512_mul_ps(c1, gi));
      const __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                      _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
      _mm512_storeu_ps(m + i, mi);
      _mm512_storeu_ps(v + i, vi);
      wi = _mm512_sub_ps(wi, _mm512_div_ps(_mm512_mul_ps(step, mi),
                                           _mm512_add_ps(_mm512_sqrt_ps(vi), eps)));
      _mm512_storeu_ps(w + i, wi);
      if (e) {
         const __m512 ei = _mm512_loadu_ps(e + i);
         _mm512_storeu_ps(e + i, _mm512_sub_ps(ei, _mm512_mul_ps(ek, _mm512_sub_ps(ei, wi))));
      }
   }
}
#define VEC 16
#else
#define VEC 1
#endif

#define CHUNK 16384   /* elements per work item: a multiple of VEC */

static void adam_run(const adam_k *k, float *w, float *g, float *m, float *v, float *e,
                     int64_t n)
{
   const int64_t nc = (n + CHUNK - 1) / CHUNK;
   #pragma omp parallel for schedule(static)
   for (int64_t c = 0; c < nc; c++) {
      const int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
      int64_t i = lo;
#if VEC > 1
      const int64_t hv = lo + (hi - lo) / VEC * VEC;
      adam_vec(k, w, g, m, v, e, lo, hv);
      i = hv;
#endif
      for (; i < hi; i++) adam_one(k, w, g, m, v, e, i);
   }
}

int ddpm_adam_step_ex(ddpm_adam *a, float *w, float *g, double lr, const ddpm_adam_pass *p)
{
   if (!(lr >= 0) || !isfinite(lr)) return ddpm_seterr(DDPM_EINVAL, "adam: learning rate %g", lr);
   if (p && p->ema && !(p->ema_decay >= 0 && p->ema_decay <= 1))
      return ddpm_seterr(DDPM_EINVAL, "adam: EMA decay %g outside [0,1]", p->ema_decay);
   if (p && (p->grad_scale < 0 || !isfinite(p->grad_scale)))
      return ddpm_seterr(DDPM_EINVAL, "adam: gradient scale %g", (double)p->grad_scale);
   a->t++;
   adam_k k;
   k.b1 = (float)a->beta1; k.c1 = 1.0f - k.b1;
   k.b2 = (float)a->beta2; k.c2 = 1.0f - k.b2;
   k.eps = (float)a->eps;
   k.wd = (float)a->weight_decay;
   k.step = (float)(lr * sqrt(1.0 - pow(a->beta2, (double)a->t)) /
                    (1.0 - pow(a->beta1, (double)a->t)));
   k.gs = p && p->grad_scale != 0.0f ? p->grad_scale : 1.0f;
   k.scale = k.gs != 1.0f;
   k.zero_g = p && p->grads == DDPM_GRADS_ZERO;
   k.store_g = k.scale;   /* the clipped gradient stays in g, as ddpm_scale leaves it */
   float *e = p ? p->ema : NULL;
   k.ek = e ? (float)(1.0 - p->ema_decay) : 0.0f;
   adam_run(&k, w, g, ddpm_tensor_data(a->m), ddpm_tensor_data(a->v), e, a->n);
   return DDPM_OK;
}

int ddpm_adam_step(ddpm_adam *a, float *w, const float *g, double lr)
{
   /* nothing is written to g without a pass (no scale, no zeroing) */
   return ddpm_adam_step_ex(a, w, (float *)g, lr, NULL);
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
