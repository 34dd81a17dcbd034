/*
 * tsampler.c — the loss-second-moment timestep sampler (see tsampler.h).
 */
#include "ddpm.h"
#include "ddpm/tsampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ddpm_tsampler *ddpm_tsampler_new(int T, int history, double uniform_prob)
{
   if (T < 1 || history < 1) {
      ddpm_seterr(DDPM_EINVAL, "tsampler: T = %d and history = %d must be >= 1", T, history);
      return NULL;
   }
   if (!(uniform_prob >= 0.0 && uniform_prob <= 1.0)) {
      ddpm_seterr(DDPM_EINVAL, "tsampler: uniform_prob = %g must be in [0, 1]", uniform_prob);
      return NULL;
   }
   ddpm_tsampler *s = calloc(1, sizeof *s);
   if (s) {
      s->count = calloc((size_t)T, sizeof *s->count);
      s->hist = calloc((size_t)T * (size_t)history, sizeof *s->hist);
   }
   if (!s || !s->count || !s->hist) {
      ddpm_tsampler_free(s);
      ddpm_seterr(DDPM_ENOMEM, "tsampler: out of memory for T = %d, history = %d", T, history);
      return NULL;
   }
   s->T = T;
   s->history = history;
   s->uniform_prob = uniform_prob;
   return s;
}

void ddpm_tsampler_free(ddpm_tsampler *s)
{
   if (!s) return;
   free(s->count);
   free(s->hist);
   free(s);
}

int ddpm_tsampler_warm(const ddpm_tsampler *s)
{
   for (int t = 0; t < s->T; t++)
      if (s->count[t] < s->history) return 0;
   return 1;
}

void ddpm_tsampler_probs(const ddpm_tsampler *s, double *p)
{
   const int T = s->T, H = s->history;
   if (!ddpm_tsampler_warm(s)) {
      for (int t = 0; t < T; t++) p[t] = 1.0 / T;
      return;
   }
   double sum = 0.0;
   for (int t = 0; t < T; t++) {
      double m2 = 0.0;
      for (int k = 0; k < H; k++) {
         const double l = s->hist[(size_t)t * H + k];
         m2 += l * l;
      }
      p[t] = sqrt(m2 / H);
      sum += p[t];
   }
   const double u = s->uniform_prob;
   for (int t = 0; t < T; t++)   /* all-zero history: uniform */
      p[t] = sum > 0.0 ? (1.0 - u) * p[t] / sum + u / T : 1.0 / T;
}

int ddpm_tsampler_sample(const ddpm_tsampler *s, int N, uint64_t seed, uint64_t counter,
                         int *t, float *w)
{
   if (N < 0) return ddpm_seterr(DDPM_EINVAL, "tsampler: N = %d must be >= 0", N);
   const int T = s->T;
   double *cdf = malloc(sizeof *cdf * (size_t)T);
   if (!cdf) return ddpm_seterr(DDPM_ENOMEM, "tsampler: out of memory");
   ddpm_tsampler_probs(s, cdf);
   double acc = 0.0;
   for (int i = 0; i < T; i++) {
      const double p = cdf[i];
      acc += p;
      cdf[i] = acc;
   }
   for (int n = 0; n < N; n++) {
      const uint64_t c = counter + 2 * (uint64_t)n;
      const uint64_t hi = ddpm_rng_u32_at(seed, c), lo = ddpm_rng_u32_at(seed, c + 1);
      const double u = (double)((hi << 21) ^ (lo >> 11)) * 0x1p-53 * acc;   /* [0, acc) */
      int a = 0, b = T - 1;                  /* first i with cdf[i] > u */
      while (a < b) {
         const int m = (a + b) / 2;
         if (cdf[m] > u) b = m; else a = m + 1;
      }
      const double p = (cdf[a] - (a > 0 ? cdf[a - 1] : 0.0)) / acc;
      t[n] = a;
      if (w) w[n] = (float)(1.0 / (T * p));
   }
   free(cdf);
   return DDPM_OK;
}

int ddpm_tsampler_update(ddpm_tsampler *s, const int *t, const float *losses, int N)
{
   for (int n = 0; n < N; n++) {
      if (t[n] < 0 || t[n] >= s->T)
         return ddpm_seterr(DDPM_EINVAL, "tsampler: timestep %d (example %d) is outside 0..%d",
                            t[n], n + 1, s->T - 1);
      if (!isfinite(losses[n]))
         return ddpm_seterr(DDPM_EINVAL, "tsampler: loss of example %d (t = %d) is not finite",
                            n + 1, t[n]);
   }
   const int H = s->history;
   for (int n = 0; n < N; n++) {
      float *h = s->hist + (size_t)t[n] * H;
      int *c = &s->count[t[n]];
      if (*c == H) {
         memmove(h, h + 1, sizeof *h * (size_t)(H - 1));
         h[H - 1] = losses[n];
      } else {
         h[(*c)++] = losses[n];
      }
   }
   return DDPM_OK;
}

void ddpm_tsampler_get_state(const ddpm_tsampler *s, float *state)
{
   const int H = s->history;
   for (int t = 0; t < s->T; t++) {
      float *row = state + (size_t)t * (H + 1);
      row[0] = (float)s->count[t];
      memcpy(row + 1, s->hist + (size_t)t * H, sizeof *row * (size_t)H);
   }
}

int ddpm_tsampler_set_state(ddpm_tsampler *s, const float *state)
{
   const int H = s->history;
   for (int t = 0; t < s->T; t++) {
      const float c = state[(size_t)t * (H + 1)];
      if (!(c >= 0 && c <= H) || c != floorf(c))
         return ddpm_seterr(DDPM_EINVAL, "tsampler: state row %d holds count %g, expected an "
                            "integer in 0..%d", t, c, H);
      for (int k = 0; k < H; k++)
         if (!isfinite(state[(size_t)t * (H + 1) + 1 + k]))
            return ddpm_seterr(DDPM_EINVAL, "tsampler: state row %d has a non-finite loss", t);
   }
   for (int t = 0; t < s->T; t++) {
      const float *row = state + (size_t)t * (H + 1);
      s->count[t] = (int)row[0];
      memcpy(s->hist + (size_t)t * H, row + 1, sizeof *row * (size_t)H);
   }
   return DDPM_OK;
}
