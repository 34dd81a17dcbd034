/*
 * test_tsampler.c — the loss-second-moment timestep sampler against its
 * definition: uniform until warm, p_t from sqrt(mean L_t^2) mixed with
 * uniform_prob / T, draws distributed as p, weights 1/(T p_t), an unbiased
 * weighted loss, the history dropping its oldest entry, state round trips.
 */
#include "check.h"
#include "ddpm.h"
#include "ddpm/tsampler.h"

#include <math.h>

static void fill(ddpm_tsampler *s, int t, const float *l, int n)
{
   int *tt = malloc(sizeof *tt * n);
   for (int i = 0; i < n; i++) tt[i] = t;
   CHECK(ddpm_tsampler_update(s, tt, l, n) == DDPM_OK, "update t = %d with %d losses", t, n);
   free(tt);
}

static void test_probs_and_draws(void)
{
   const int T = 5, H = 3;
   ddpm_tsampler *s = ddpm_tsampler_new(T, H, 0.01);
   CHECK(s != NULL, "sampler builds");
   double p[5];
   /* not warm: uniform, weights 1 */
   float l3[3] = {1, 2, 3};
   for (int t = 0; t < T - 1; t++) fill(s, t, l3, 3);
   CHECK(!ddpm_tsampler_warm(s), "not warm while t = 4 has no history");
   ddpm_tsampler_probs(s, p);
   int uni = 1;
   for (int t = 0; t < T; t++) uni &= fabs(p[t] - 0.2) < 1e-15;
   CHECK(uni, "uniform before warm-up");
   int ts[64];
   float w[64];
   CHECK(ddpm_tsampler_sample(s, 64, 7, 0, ts, w) == DDPM_OK, "sample before warm-up");
   int ones = 1, inr = 1;
   for (int n = 0; n < 64; n++) { ones &= w[n] == 1.0f; inr &= ts[n] >= 0 && ts[n] < T; }
   CHECK(ones && inr, "weights 1 and t in range before warm-up");

   /* warm: t has losses {t+1, t+1, t+1} except t = 4 which gets {3, 4, 0}
      after a 4th update dropped the first value (100) */
   float a[3], b[4] = {100, 3, 4, 0};
   for (int t = 0; t < T - 1; t++) {
      for (int k = 0; k < 3; k++) a[k] = (float)(t + 1);
      fill(s, t, a, 3);
   }
   fill(s, 4, b, 4);
   CHECK(ddpm_tsampler_warm(s), "warm once every t holds 3 losses");
   double want[5], sum = 0;
   for (int t = 0; t < 4; t++) want[t] = t + 1;
   want[4] = sqrt((9.0 + 16.0 + 0.0) / 3.0);
   for (int t = 0; t < T; t++) sum += want[t];
   for (int t = 0; t < T; t++) want[t] = 0.99 * want[t] / sum + 0.01 / T;
   ddpm_tsampler_probs(s, p);
   double err = 0, tot = 0;
   for (int t = 0; t < T; t++) { err = fmax(err, fabs(p[t] - want[t])); tot += p[t]; }
   CHECK(err < 1e-12 && fabs(tot - 1) < 1e-12,
         "p_t = 0.99 sqrt(E L^2)/sum + 0.01/T with the oldest loss dropped (err %.2g)", err);

   /* draws: frequencies within 5 standard errors of p, weights 1/(T p_t),
      and the weighted mean of a per-t loss estimates its uniform mean */
   const int N = 200000;
   int *tt = malloc(sizeof *tt * N);
   float *ww = malloc(sizeof *ww * N);
   CHECK(ddpm_tsampler_sample(s, N, 42, 1000, tt, ww) == DDPM_OK, "sample %d", N);
   int cnt[5] = {0};
   int wok = 1;
   double est = 0;
   const double L[5] = {0.5, 3, 1, 7, 2};
   for (int n = 0; n < N; n++) {
      cnt[tt[n]]++;
      wok &= fabs(ww[n] - 1.0 / (T * want[tt[n]])) < 1e-6 * ww[n];
      est += ww[n] * L[tt[n]];
   }
   est /= N;
   double worst = 0;
   for (int t = 0; t < T; t++) {
      double se = sqrt(want[t] * (1 - want[t]) / N);
      worst = fmax(worst, fabs(cnt[t] / (double)N - want[t]) / se);
   }
   CHECK(worst < 5, "draw frequencies match p (worst %.2f standard errors)", worst);
   CHECK(wok, "weight of every draw is 1 / (T p_t)");
   double truth = (0.5 + 3 + 1 + 7 + 2) / 5, var = 0;
   for (int t = 0; t < T; t++) var += want[t] * pow(L[t] / (T * want[t]) - truth, 2);
   CHECK(fabs(est - truth) < 5 * sqrt(var / N),
         "importance-weighted loss is unbiased: %.5f vs uniform mean %.5f", est, truth);

   /* same (seed, counter) -> same draws; another counter -> other draws */
   int t2[64], t3[64];
   ddpm_tsampler_sample(s, 64, 42, 1000, t2, NULL);
   ddpm_tsampler_sample(s, 64, 42, 1000 + 128, t3, NULL);
   CHECK(!memcmp(t2, tt, sizeof t2), "draws are a function of (seed, counter)");
   CHECK(memcmp(t3, tt, sizeof t3) != 0, "another counter gives other draws");

   /* state round trip */
   float *st = malloc(sizeof *st * T * (H + 1));
   ddpm_tsampler_get_state(s, st);
   ddpm_tsampler *r = ddpm_tsampler_new(T, H, 0.01);
   CHECK(ddpm_tsampler_set_state(r, st) == DDPM_OK, "state loads");
   double q[5];
   ddpm_tsampler_probs(r, q);
   CHECK(!memcmp(p, q, sizeof p), "restored sampler has the same p");
   st[0] = 7;
   CHECK(ddpm_tsampler_set_state(r, st) == DDPM_EINVAL, "a count above history is refused: %s",
         ddpm_errmsg());
   free(st); free(tt); free(ww);
   ddpm_tsampler_free(r);
   ddpm_tsampler_free(s);
}

static void test_errors(void)
{
   CHECK(ddpm_tsampler_new(0, 10, 0.001) == NULL, "T = 0 refused: %s", ddpm_errmsg());
   CHECK(ddpm_tsampler_new(10, 0, 0.001) == NULL, "history = 0 refused");
   CHECK(ddpm_tsampler_new(10, 10, 1.5) == NULL, "uniform_prob 1.5 refused");
   ddpm_tsampler *s = ddpm_tsampler_new(4, 2, 0.001);
   int t[2] = {1, 4};
   float l[2] = {1, 1};
   CHECK(ddpm_tsampler_update(s, t, l, 2) == DDPM_EINVAL, "t = 4 of T = 4 refused: %s",
         ddpm_errmsg());
   CHECK(s->count[1] == 0, "a refused update changes nothing");
   t[1] = 2;
   l[1] = NAN;
   CHECK(ddpm_tsampler_update(s, t, l, 2) == DDPM_EINVAL, "NaN loss refused: %s", ddpm_errmsg());
   /* a zero history (all losses 0) with uniform_prob 0 stays a distribution */
   ddpm_tsampler *z = ddpm_tsampler_new(3, 1, 0.0);
   int tz[3] = {0, 1, 2};
   float lz[3] = {0, 0, 0};
   ddpm_tsampler_update(z, tz, lz, 3);
   double p[3];
   ddpm_tsampler_probs(z, p);
   CHECK(fabs(p[0] + p[1] + p[2] - 1) < 1e-15 && p[0] > 0, "all-zero history gives uniform p");
   /* uniform_prob 0: a t with zero loss history is never drawn */
   lz[0] = 1; lz[1] = 0; lz[2] = 2;
   ddpm_tsampler_update(z, tz, lz, 3);
   int d[1000];
   ddpm_tsampler_sample(z, 1000, 3, 0, d, NULL);
   int never = 1;
   for (int n = 0; n < 1000; n++) never &= d[n] != 1;
   CHECK(never, "p_t = 0 is never drawn");
   ddpm_tsampler_free(z);
   ddpm_tsampler_free(s);
}

int main(void)
{
   test_probs_and_draws();
   test_errors();
   return check_done();
}
