/*
 * test_diffusion.c — the diffusion core (runtime/schedule.c, diffusion.c):
 * the schedule reference numbers of docs/math.md §1.1 to their printed precision, the
 * derived tables against their definitions, respacing and timestep spacing,
 * q_sample / predict round trips, the posterior against eq. 7, p_sample_step
 * against docs/math.md §4.2 (clipping, no noise at t = 0, fixedlarge vs fixedsmall,
 * Algorithm 2's formula), the other mean and variance types, DDIM, L_simple
 * and the VLB terms with finite-difference gradients, and the error cases.
 */
#include "ddpm.h"
#include "ddpm/diffusion.h"
#include "check.h"

#include <omp.h>

/* |got - want| within half a unit of the last printed digit of want_str
   (plus a hair for the binary rounding of want itself). */
static int near_printed(double got, const char *want_str)
{
   double want = strtod(want_str, NULL);
   const char *m = want_str, *dot = strchr(want_str, '.');
   const char *e = strpbrk(want_str, "eE");
   int decimals = 0;
   if (dot) decimals = (int)((e ? e : want_str + strlen(want_str)) - dot - 1);
   int ex = e ? atoi(e + 1) : 0;
   (void)m;
   double tol = 0.5 * pow(10.0, ex - decimals) * (1 + 1e-9) + fabs(want) * 1e-15;
   int ok = fabs(got - want) <= tol;
   printf("# %-12s got %.9g (tol %.2g)\n", want_str, got, tol);
   return ok;
}

static double rel(double got, double want)
{
   return fabs(got - want) / fmax(fabs(want), 1e-300);
}

static int msg_has(const char *word) { return strstr(ddpm_errmsg(), word) != NULL; }

/* Max |a - b| over n floats against a double reference. */
static double max_abs_d(const float *a, const double *b, size_t n)
{
   double w = 0;
   for (size_t i = 0; i < n; i++) {
      double d = fabs((double)a[i] - b[i]);
      if (!(d <= w)) w = d;
   }
   return w;
}

static void randn(float *x, size_t n, uint64_t seed)
{
   ddpm_rng r;
   ddpm_rng_init(&r, seed);
   ddpm_rng_normal(&r, x, (int64_t)n);
}

/* ------------------------------------------------------------------ schedules */

static void test_linear(void)
{
   ddpm_schedule *s = ddpm_schedule_new("linear", 1000, 1e-4, 0.02);
   CHECK(s != NULL && s->T == 1000, "linear 1e-4..0.02, T = 1000: %s", s ? "made" : ddpm_errmsg());
   if (!s) return;
   CHECK(s->betas[0] == 1e-4 && s->betas[999] == 0.02, "beta_0 = 1e-4, beta_999 = 0.02 exactly");
   CHECK(near_printed(s->betas[1], "1.19920e-4"), "beta_1 = 1.19920e-4");
   CHECK(near_printed(s->alphas_cumprod[0], "0.9999"), "alphabar_0 = 0.9999");
   CHECK(near_printed(s->alphas_cumprod[499], "0.0785872"), "alphabar_499 = 0.0785872");
   CHECK(near_printed(s->alphas_cumprod[999], "4.03583e-5"), "alphabar_999 = 4.03583e-5");
   CHECK(near_printed(s->sqrt_alphas_cumprod[999], "6.35282e-3"), "sqrt alphabar_999 = 6.35282e-3");
   CHECK(near_printed(s->posterior_variance[1], "5.45319e-5"), "posterior_variance[1] = 5.45319e-5");
   CHECK(s->posterior_variance[0] == 0.0, "posterior_variance[0] = 0 exactly");
   CHECK(near_printed(s->posterior_log_variance_clipped[0], "-9.81673"),
         "posterior_log_variance_clipped[0] = log pv_1 = -9.81673 (CIFAR path)");
   CHECK(s->posterior_log_variance_clipped[0] == log(s->posterior_variance[1]),
         "the t = 0 substitution is exactly log(pv_1)");
   CHECK(s->timestep_map[0] == 0 && s->timestep_map[999] == 999, "identity timestep map");

   /* every table against its definition (docs/math.md §1.2), straight from the betas */
   double worst = 0, ab = 1.0;
   for (int i = 0; i < 1000; i++) {
      double b = 1e-4 + i * ((0.02 - 1e-4) / 999), abp = ab;
      if (i == 999) b = 0.02;
      ab *= 1 - b;
      double abn = i < 999 ? s->alphas_cumprod[i + 1] : 0.0;
      double want[14] = { b, 1 - b, ab, abp, abn, sqrt(ab), sqrt(1 - ab), log(1 - ab),
                          1 / sqrt(ab), sqrt(1 / ab - 1), b * (1 - abp) / (1 - ab),
                          i ? log(b * (1 - abp) / (1 - ab)) : s->posterior_log_variance_clipped[0],
                          b * sqrt(abp) / (1 - ab), (1 - abp) * sqrt(1 - b) / (1 - ab) };
      for (int k = 0; k < 14; k++) {
         const double *arr = ddpm_schedule_array(s, ddpm_schedule_array_name(k));
         if (i == 0 && k == 11) continue;
         if (k == 10 && i == 0) { if (arr[0] != 0) worst = 1; continue; }
         double r = rel(arr[i], want[k]);
         if (!(r <= worst)) worst = r;
      }
   }
   printf("# worst relative error of the 14 tables vs their definitions: %.3g\n", worst);
   CHECK(worst < 1e-12, "all 14 derived tables match docs/math.md §1.2 to 1e-12 relative");
   CHECK(s->alphas_cumprod_prev[0] == 1.0 && s->alphas_cumprod_next[999] == 0.0,
         "alphas_cumprod_prev[0] = 1, alphas_cumprod_next[T-1] = 0");
   CHECK(ddpm_schedule_array_name(14) == NULL && ddpm_schedule_array_name(-1) == NULL,
         "14 table names");
   CHECK(ddpm_schedule_array(s, "bogus") == NULL && msg_has("posterior_mean_coef2"),
         "unknown table name lists the names: %s", ddpm_errmsg());
   ddpm_schedule_free(s);
}

static void test_other_schedules(void)
{
   ddpm_schedule *s = ddpm_schedule_new("cosine", 1000, 0, 0);
   CHECK(s != NULL, "cosine T = 1000 (beta_start/end ignored)");
   if (s) {
      int clipped = 0;
      for (int i = 0; i < 1000; i++) clipped += s->betas[i] == 0.999;
      CHECK(near_printed(s->betas[0], "4.12842e-5"), "cosine beta_0 = 4.12842e-5");
      CHECK(s->betas[999] == 0.999 && clipped == 1, "cosine beta_999 = 0.999, the only clipped entry (%d)",
            clipped);
      CHECK(near_printed(s->alphas_cumprod[999], "2.4288e-9"), "cosine alphabar_999 = 2.4288e-9");
      ddpm_schedule *a = ddpm_schedule_new("squaredcos_cap_v2", 1000, 1, 2);
      CHECK(a && !memcmp(a->betas, s->betas, 1000 * sizeof(double)), "squaredcos_cap_v2 = cosine");
      ddpm_schedule_free(a);
      ddpm_schedule_free(s);
   }

   s = ddpm_schedule_new("jsd", 1000, 1e-4, 0.02);
   CHECK(s && s->betas[999] == 1.0 && s->alphas_cumprod[999] == 0.0, "jsd: last beta = 1, alphabar = 0");
   CHECK(s && s->betas[0] == 1.0 / 1000 && s->betas[998] == 0.5, "jsd: 1/T ... 1/2");
   ddpm_schedule_free(s);

   s = ddpm_schedule_new("quad", 1000, 1e-4, 0.02);
   double q = sqrt(1e-4) + 500 * ((sqrt(0.02) - sqrt(1e-4)) / 999);
   CHECK(s && rel(s->betas[0], 1e-4) < 1e-15 && rel(s->betas[999], 0.02) < 1e-15
         && rel(s->betas[500], q * q) < 1e-15, "quad: linspace of square roots, squared");
   ddpm_schedule *a = ddpm_schedule_new("scaled_linear", 1000, 1e-4, 0.02);
   CHECK(a && s && !memcmp(a->betas, s->betas, 1000 * sizeof(double)), "scaled_linear = quad");
   ddpm_schedule_free(a);
   ddpm_schedule_free(s);

   s = ddpm_schedule_new("const", 10, 1e-4, 0.02);
   int ok = s != NULL;
   for (int i = 0; ok && i < 10; i++) ok = s->betas[i] == 0.02;
   CHECK(ok, "const: every beta = beta_end");
   ddpm_schedule_free(s);

   for (int w = 0; w < 2; w++) {
      const char *name = w ? "warmup50" : "warmup10";
      int warm = w ? 500 : 100;
      s = ddpm_schedule_new(name, 1000, 1e-4, 0.02);
      ok = s != NULL;
      for (int i = 0; ok && i < 1000; i++) {
         double want = i < warm ? (i == warm - 1 ? 0.02 : 1e-4 + i * ((0.02 - 1e-4) / (warm - 1))) : 0.02;
         ok = rel(s->betas[i], want) < 1e-15;
      }
      CHECK(ok, "%s: linspace over the first %d, beta_end after", name, warm);
      ddpm_schedule_free(s);
   }

   s = ddpm_schedule_new("linear", 1, 1e-4, 0.02);
   CHECK(s && s->betas[0] == 1e-4 && s->posterior_log_variance_clipped[0] == log(1e-4),
         "T = 1: beta = beta_start, log variance at 0 falls back to log beta_0");
   ddpm_schedule_free(s);

   double betas[4] = { 0.1, 0.2, 0.3, 1.0 };
   s = ddpm_schedule_from_betas(betas, 4);
   CHECK(s && s->T == 4 && rel(s->alphas_cumprod[2], 0.9 * 0.8 * 0.7) < 1e-15 &&
         s->alphas_cumprod[3] == 0.0, "from_betas: [0.1, 0.2, 0.3, 1]");
   ddpm_schedule_free(s);
}

static void test_schedule_errors(void)
{
   ddpm_clearerr();
   CHECK(ddpm_schedule_new("cosin", 1000, 1e-4, 0.02) == NULL && msg_has("cosin")
         && msg_has("linear") && msg_has("warmup50") && msg_has("jsd"),
         "unknown schedule names itself and lists the known ones: %s", ddpm_errmsg());
   CHECK(ddpm_schedule_new(NULL, 10, 1e-4, 0.02) == NULL, "NULL name: %s", ddpm_errmsg());
   CHECK(ddpm_schedule_new("linear", 0, 1e-4, 0.02) == NULL && msg_has("T = 0"),
         "T = 0: %s", ddpm_errmsg());
   CHECK(ddpm_schedule_new("linear", -5, 1e-4, 0.02) == NULL, "T < 0: %s", ddpm_errmsg());
   CHECK(ddpm_schedule_new("linear", 10, 0.0, 0.02) == NULL && msg_has("beta[0] = 0"),
         "beta_start = 0 is outside (0, 1]: %s", ddpm_errmsg());
   CHECK(ddpm_schedule_new("linear", 10, 1e-4, 1.5) == NULL, "beta_end = 1.5: %s", ddpm_errmsg());
   CHECK(ddpm_schedule_new("quad", 10, -1e-4, 0.02) == NULL, "quad with a negative end: %s",
         ddpm_errmsg());
   double bad[3] = { 0.1, NAN, 0.2 };
   CHECK(ddpm_schedule_from_betas(bad, 3) == NULL && msg_has("beta[1]"), "NaN beta: %s", ddpm_errmsg());
   bad[1] = 0.0;
   CHECK(ddpm_schedule_from_betas(bad, 3) == NULL, "zero beta: %s", ddpm_errmsg());
   bad[1] = 1.0 + 1e-12;
   CHECK(ddpm_schedule_from_betas(bad, 3) == NULL, "beta > 1: %s", ddpm_errmsg());
   bad[0] = 1e-20; bad[1] = 0.5;
   CHECK(ddpm_schedule_from_betas(bad, 3) == NULL, "beta_0 so small 1 - beta rounds to 1: %s",
         ddpm_errmsg());
   CHECK(ddpm_schedule_from_betas(NULL, 3) == NULL, "NULL betas");
   CHECK(ddpm_schedule_from_betas(bad, 0) == NULL, "T = 0 betas");
   ddpm_schedule_free(NULL);   /* NULL is fine: the test goes on */
}

static void test_respace(void)
{
   ddpm_schedule *s = ddpm_schedule_new("linear", 1000, 1e-4, 0.02);
   int idx[1000], K = 0;
   CHECK(ddpm_space_timesteps(idx, &K, 1000, "ddim50") == DDPM_OK && K == 50 && idx[1] == 20
         && idx[49] == 980, "ddim50: stride 20 (%d steps, idx[1] = %d)", K, idx[1]);
   CHECK(ddpm_space_timesteps(idx, &K, 1000, "ddim250") == DDPM_OK && K == 250 && idx[1] == 4,
         "ddim250: stride 4");
   CHECK(ddpm_space_timesteps(idx, &K, 1000, "10") == DDPM_OK && K == 10 && idx[1] == 111 &&
         idx[9] == 999, "\"10\": 0, 111, ..., 999");
   CHECK(ddpm_space_timesteps(idx, &K, 10, "2,3") == DDPM_OK && K == 5 && idx[0] == 0 &&
         idx[1] == 4 && idx[2] == 5 && idx[3] == 7 && idx[4] == 9, "\"2,3\" of 10: 0 4 5 7 9");
   CHECK(ddpm_space_timesteps(idx, &K, 6, "3") == DDPM_OK && K == 3 && idx[1] == 2 && idx[2] == 5,
         "round half to even as Python: 2.5 -> 2");
   CHECK(ddpm_space_timesteps(idx, &K, 8, "3") == DDPM_OK && idx[1] == 4, "3.5 -> 4");
   CHECK(ddpm_space_timesteps(idx, &K, 10, "ddim7") != DDPM_OK && msg_has("7"), "ddim7 of 10: %s",
         ddpm_errmsg());
   CHECK(ddpm_space_timesteps(idx, &K, 10, "11") != DDPM_OK, "11 of 10: %s", ddpm_errmsg());
   CHECK(ddpm_space_timesteps(idx, &K, 10, "3,x") != DDPM_OK, "\"3,x\": %s", ddpm_errmsg());

   ddpm_space_timesteps(idx, &K, 1000, "ddim50");
   ddpm_schedule *r = ddpm_schedule_respace(s, idx, K);
   double worst = 0;
   for (int k = 0; r && k < K; k++) worst = fmax(worst, rel(r->alphas_cumprod[k], s->alphas_cumprod[idx[k]]));
   CHECK(r && r->T == 50 && worst < 1e-13 && r->timestep_map[3] == 60,
         "respaced ab'_k = ab[s_k] (worst %.2g), timestep_map[3] = 60", worst);
   int sub[2] = { 3, 7 };
   ddpm_schedule *r2 = r ? ddpm_schedule_respace(r, sub, 2) : NULL;
   CHECK(r2 && r2->timestep_map[1] == 140 && rel(r2->alphas_cumprod[1], s->alphas_cumprod[140]) < 1e-13,
         "respacing a respaced schedule maps to the original timesteps");
   for (int i = 0; i < 1000; i++) idx[i] = i;
   ddpm_schedule *full = ddpm_schedule_respace(s, idx, 1000);
   worst = 0;
   for (int i = 0; full && i < 1000; i++) worst = fmax(worst, rel(full->betas[i], s->betas[i]));
   CHECK(full && worst < 1e-9, "keeping every step gives back the betas (worst %.2g)", worst);
   int badi[2] = { 5, 5 };
   CHECK(ddpm_schedule_respace(s, badi, 2) == NULL && msg_has("increase"), "repeated index: %s",
         ddpm_errmsg());
   badi[1] = 1000;
   CHECK(ddpm_schedule_respace(s, badi, 2) == NULL && msg_has("1000"), "index T: %s", ddpm_errmsg());
   ddpm_schedule_free(full);
   ddpm_schedule_free(r2);
   ddpm_schedule_free(r);
   ddpm_schedule_free(s);
}

/* ------------------------------------------------------------------ forward process */

enum { N = 6, C = 3, HW = 16, D = C * HW };
static const int tt[N] = { 0, 1, 2, 500, 998, 999 };

static void test_q_and_predict(const ddpm_schedule *s)
{
   static float x0[N * D], eps[N * D], xt[N * D], back[N * D], eps2[N * D], v[N * D];
   static double want[N * D];
   check_fill(x0, N * D, 1);
   randn(eps, N * D, 7);
   CHECK(ddpm_q_sample(s, xt, x0, eps, tt, N, D) == DDPM_OK, "q_sample");
   for (int n = 0; n < N; n++)
      for (int j = 0; j < D; j++) {
         double ab = s->alphas_cumprod[tt[n]];
         want[n * D + j] = sqrt(ab) * x0[n * D + j] + sqrt(1 - ab) * eps[n * D + j];
      }
   double e = max_abs_d(xt, want, N * D);
   printf("# q_sample max abs err %.3g\n", e);
   CHECK(e < 1e-6, "q_sample = sqrt(ab) x0 + sqrt(1-ab) eps (eq. 4)");

   CHECK(ddpm_predict_x0_from_eps(s, back, xt, eps, tt, N, D) == DDPM_OK, "predict_x0_from_eps");
   /* x_t carries float rounding ~6e-8 |x_t|, amplified by sqrt(1/ab_t) */
   int ok = 1;
   for (int n = 0; n < N; n++) {
      double amp = s->sqrt_recip_alphas_cumprod[tt[n]], w = 0;
      for (int j = 0; j < D; j++) w = fmax(w, fabs(back[n * D + j] - x0[n * D + j]));
      printf("# t = %d: round trip x0 max abs err %.3g (amplification %.3g)\n", tt[n], w, amp);
      ok &= w < 4e-7 * amp * 4;
   }
   CHECK(ok, "x0 -> (x_t, eps) -> x0 to float error");
   CHECK(ddpm_predict_eps_from_x0(s, eps2, xt, x0, tt, N, D) == DDPM_OK, "predict_eps_from_x0");
   ok = 1;
   for (int n = 1; n < N; n++) {   /* at t = 0, eps is divided by sqrt(1/ab - 1) = 0.01 */
      double w = 0, amp = s->sqrt_recip_alphas_cumprod[tt[n]] / s->sqrt_recipm1_alphas_cumprod[tt[n]];
      for (int j = 0; j < D; j++) w = fmax(w, fabs(eps2[n * D + j] - eps[n * D + j]));
      ok &= w < 4e-7 * amp * 8;
   }
   CHECK(ok, "eps re-derived from (x_t, x0) matches");
   /* v round trip */
   CHECK(ddpm_v_target(s, v, x0, eps, tt, N, D) == DDPM_OK &&
         ddpm_predict_x0_from_v(s, back, xt, v, tt, N, D) == DDPM_OK, "v target, predict from v");
   CHECK_CLOSE(back, x0, N * D, 1e-5, "x0 from v = sqrt(ab) x_t - sqrt(1-ab) v");
   /* in place: out aliases x0 */
   memcpy(back, x0, sizeof back);
   ddpm_q_sample(s, back, back, eps, tt, N, D);
   CHECK(!memcmp(back, xt, sizeof back), "q_sample in place (out = x0) gives the same bits");

   float mean[N * D], var[N], lv[N];
   CHECK(ddpm_q_mean_variance(s, mean, var, lv, x0, tt, N, D) == DDPM_OK &&
         fabs(var[3] - (1 - s->alphas_cumprod[500])) < 1e-7 &&
         fabs(lv[3] - log(1 - s->alphas_cumprod[500])) < 1e-6 &&
         fabs(mean[3 * D] - s->sqrt_alphas_cumprod[500] * x0[3 * D]) < 1e-7,
         "q_mean_variance: sqrt(ab) x0, 1 - ab, log(1 - ab)");
}

static void test_posterior(const ddpm_schedule *s)
{
   static float x0[N * D], eps[N * D], xt[N * D], mean[N * D], pm[N * D], x0p[N * D];
   static double want[N * D];
   float var[N], lv[N];
   check_fill(x0, N * D, 2);
   randn(eps, N * D, 8);
   ddpm_q_sample(s, xt, x0, eps, tt, N, D);
   CHECK(ddpm_q_posterior(s, mean, var, lv, x0, xt, tt, N, D) == DDPM_OK, "q_posterior");
   /* eq. 7 from the betas alone */
   for (int n = 0; n < N; n++) {
      int t = tt[n];
      double ab = 1;
      for (int i = 0; i <= t; i++) ab *= 1 - s->betas[i];
      double abp = ab / (1 - s->betas[t]), b = s->betas[t];
      if (t == 0) abp = 1;
      for (int j = 0; j < D; j++)
         want[n * D + j] = sqrt(abp) * b / (1 - ab) * x0[n * D + j] +
                           sqrt(1 - b) * (1 - abp) / (1 - ab) * xt[n * D + j];
      CHECK(rel(var[n], b * (1 - abp) / (1 - ab)) < 1e-6 || (t == 0 && var[n] == 0),
            "t = %d: posterior variance beta (1 - ab_prev)/(1 - ab)", t);
   }
   double e = max_abs_d(mean, want, N * D);
   printf("# posterior mean max abs err %.3g\n", e);
   CHECK(e < 2e-6, "posterior mean of the true x0 = eq. 7's closed form");
   CHECK(lv[0] == (float)s->posterior_log_variance_clipped[0] && lv[0] < -9.8,
         "posterior log variance at t = 0 is log pv_1");

   /* the eps model given the true eps reproduces the posterior (unclipped) */
   CHECK(ddpm_p_mean_variance(s, pm, NULL, x0p, eps, xt, tt, N, C, HW, DDPM_MEAN_EPS,
                              DDPM_VAR_FIXEDSMALL, 0) == DDPM_OK, "p_mean_variance (eps)");
   e = 0;
   for (int n = 0; n < N; n++) {
      double amp = s->sqrt_recip_alphas_cumprod[tt[n]] * s->posterior_mean_coef1[tt[n]] + 1;
      for (int j = 0; j < D; j++) e = fmax(e, fabs(pm[n * D + j] - want[n * D + j]) / amp);
   }
   printf("# p mean with true eps vs posterior: scaled max err %.3g\n", e);
   CHECK(e < 2e-6, "p mean from the true eps = the true posterior mean");

   /* unclipped eps mean = Algorithm 2: (1/sqrt(a_t)) (x_t - beta_t / sqrt(1 - ab_t) eps) */
   static float epsh[N * D];
   randn(epsh, N * D, 9);
   ddpm_p_mean_variance(s, pm, NULL, NULL, epsh, xt, tt, N, C, HW, DDPM_MEAN_EPS,
                        DDPM_VAR_FIXEDLARGE, 0);
   e = 0;
   for (int n = 0; n < N; n++) {
      int t = tt[n];
      double a = 1 - s->betas[t], b = s->betas[t], ab = s->alphas_cumprod[t];
      double scale = 1 + fabs(b / sqrt(1 - ab) / sqrt(a)) * 3 + 1 / sqrt(ab);
      for (int j = 0; j < D; j++) {
         double w = (xt[n * D + j] - b / sqrt(1 - ab) * epsh[n * D + j]) / sqrt(a);
         e = fmax(e, fabs(pm[n * D + j] - w) / scale);
      }
   }
   printf("# unclipped eps mean vs Algorithm 2: scaled max err %.3g\n", e);
   CHECK(e < 2e-6, "unclipped eps mean equals Algorithm 2's formula at every t");
}

/* ------------------------------------------------------------------ reverse process */

static void test_p_sample_step(const ddpm_schedule *s)
{
   static float xt[N * D], epsh[N * D], z[N * D], out[N * D], x0o[N * D], out2[N * D];
   check_fill(xt, N * D, 3);
   for (int i = 0; i < N * D; i++) xt[i] *= 3.0f;   /* so some x0_hat leave [-1, 1] */
   randn(epsh, N * D, 10);
   randn(z, N * D, 11);
   for (int j = 0; j < D; j++) z[j] = NAN;            /* example 0 has t = 0: never read */

   for (int var = 0; var < 2; var++)
      for (int clip = 0; clip < 2; clip++) {
         CHECK(ddpm_p_sample_step(s, out, x0o, epsh, xt, tt, z, N, C, HW, DDPM_MEAN_EPS, var, clip)
               == DDPM_OK, "p_sample_step %s clip=%d", ddpm_var_type_name(var), clip);
         double e = 0, e0 = 0;
         int nclip = 0, finite = 1;
         for (int n = 0; n < N; n++) {
            int t = tt[n];
            double lv = var == DDPM_VAR_FIXEDLARGE ? (t ? log(s->betas[t]) : log(s->posterior_variance[1]))
                                                   : s->posterior_log_variance_clipped[t];
            for (int j = 0; j < D; j++) {
               int i = n * D + j;
               double x0 = s->sqrt_recip_alphas_cumprod[t] * xt[i] -
                           s->sqrt_recipm1_alphas_cumprod[t] * epsh[i];
               if (clip && fabs(x0) > 1) { x0 = x0 > 0 ? 1 : -1; nclip++; }
               double mean = s->posterior_mean_coef1[t] * x0 + s->posterior_mean_coef2[t] * xt[i];
               double w = t == 0 ? mean : mean + exp(0.5 * lv) * z[i];
               double sc = 1 + fabs(s->posterior_mean_coef1[t] * s->sqrt_recip_alphas_cumprod[t]) * 4;
               e = fmax(e, fabs(out[i] - w) / sc);
               e0 = fmax(e0, fabs(x0o[i] - x0) / (1 + s->sqrt_recip_alphas_cumprod[t] * 4));
               finite &= isfinite(out[i]);
            }
         }
         printf("# %s clip=%d: scaled max err %.3g, x0 %.3g, %d clipped\n",
                ddpm_var_type_name(var), clip, e, e0, nclip);
         CHECK(e < 2e-6 && e0 < 2e-6 && finite,
               "%s clip=%d: the docs/math.md §4.2 closed form; no noise at t = 0 (NaN noise unread)",
               ddpm_var_type_name(var), clip);
         if (clip) CHECK(nclip > 20, "clipping was exercised (%d elements)", nclip);
      }

   /* fixedlarge vs fixedsmall: at t >= 1 the noise scales are sqrt(beta_t) vs sqrt(pv_t) */
   static float zero[N * D], m[N * D];
   ddpm_p_sample_step(s, m, NULL, epsh, xt, tt, zero, N, C, HW, DDPM_MEAN_EPS, 0, 1);
   ddpm_p_sample_step(s, out, NULL, epsh, xt, tt, z, N, C, HW, DDPM_MEAN_EPS, DDPM_VAR_FIXEDLARGE, 1);
   ddpm_p_sample_step(s, out2, NULL, epsh, xt, tt, z, N, C, HW, DDPM_MEAN_EPS, DDPM_VAR_FIXEDSMALL, 1);
   int i = 1 * D + 5, k = 3 * D + 7;   /* t = 1 and t = 500 */
   double rl = (out[i] - m[i]) / z[i], rs = (out2[i] - m[i]) / z[i];
   printf("# t = 1: sigma large %.6g (sqrt beta %.6g), small %.6g (sqrt pv %.6g)\n",
          rl, sqrt(s->betas[1]), rs, sqrt(s->posterior_variance[1]));
   CHECK(rel(rl, sqrt(s->betas[1])) < 1e-3 && rel(rs, sqrt(s->posterior_variance[1])) < 1e-3,
         "t = 1: fixedlarge sigma = sqrt(beta_1), fixedsmall sigma = sqrt(beta~_1)");
   rl = (out[k] - m[k]) / z[k];
   rs = (out2[k] - m[k]) / z[k];
   CHECK(rel(rl, sqrt(s->betas[500])) < 1e-4 && rel(rs, sqrt(s->posterior_variance[500])) < 1e-4 &&
         rl > rs, "t = 500: sqrt(beta) > sqrt(beta~)");
   CHECK(out[0] == m[0] && out2[0] == m[0], "t = 0: both return the mean");

   /* in place, x_prev = xt */
   memcpy(out2, xt, sizeof out2);
   ddpm_p_sample_step(s, out2, NULL, epsh, out2, tt, z, N, C, HW, DDPM_MEAN_EPS, 0, 1);
   CHECK(!memcmp(out, out2, sizeof out), "in place (x_prev aliases xt) gives the same bits");
}

static void test_mean_var_types(const ddpm_schedule *s)
{
   static float x0[N * D], eps[N * D], xt[N * D], mo[N * 2 * D], mean[N * D], lv[N * D],
                x0o[N * D], pmean[N * D], v[N * D];
   float pvar[N], plv[N];
   check_fill(x0, N * D, 4);
   randn(eps, N * D, 12);
   ddpm_q_sample(s, xt, x0, eps, tt, N, D);
   ddpm_q_posterior(s, pmean, pvar, plv, x0, xt, tt, N, D);

   /* xstart with the true x0: mean = posterior mean, x0_out = x0 */
   ddpm_p_mean_variance(s, mean, lv, x0o, x0, xt, tt, N, C, HW, DDPM_MEAN_XSTART, DDPM_VAR_FIXEDSMALL, 1);
   CHECK_CLOSE(mean, pmean, N * D, 1e-5, "xstart(true x0): mean = posterior mean");
   CHECK(!memcmp(x0o, x0, sizeof x0o), "xstart: x0_out = the prediction (inside [-1, 1])");
   CHECK(lv[3 * D + 1] == (float)s->posterior_log_variance_clipped[500], "fixedsmall logvar elementwise");

   /* xprev with the true posterior mean: mean passes through, x0 recovered */
   ddpm_p_mean_variance(s, mean, lv, x0o, pmean, xt, tt, N, C, HW, DDPM_MEAN_XPREV, DDPM_VAR_FIXEDLARGE, 0);
   CHECK(!memcmp(mean, pmean, sizeof mean), "xprev: the mean is the output itself");
   double e = 0;
   for (int n = 0; n < 4; n++)   /* (mu - c2 x_t) / c1 loses digits where c1 is tiny */
      for (int j = 0; j < D; j++) e = fmax(e, fabs(x0o[n * D + j] - x0[n * D + j]));
   printf("# xprev x0 recovery (t <= 500) max abs err %.3g\n", e);
   CHECK(e < 1e-3, "xprev: x0_out = (mu - c2 x_t)/c1 recovers x0");
   CHECK(lv[1 * D] == (float)log(s->betas[1]) && lv[0] == (float)log(s->posterior_variance[1]),
         "fixedlarge logvar: log beta_t, log pv_1 at t = 0");

   /* v with the true v */
   ddpm_v_target(s, v, x0, eps, tt, N, D);
   ddpm_p_mean_variance(s, mean, NULL, x0o, v, xt, tt, N, C, HW, DDPM_MEAN_V, DDPM_VAR_FIXEDSMALL, 1);
   CHECK_CLOSE(x0o, x0, N * D, 1e-5, "v(true v): x0_out = x0");
   CHECK_CLOSE(mean, pmean, N * D, 1e-5, "v(true v): mean = posterior mean");

   /* learned variances read channels C..2C-1 */
   for (int n = 0; n < N; n++) {
      memcpy(mo + n * 2 * D, eps + n * D, D * sizeof(float));
      for (int j = 0; j < D; j++) mo[n * 2 * D + D + j] = j % 3 == 0 ? 1.0f : j % 3 == 1 ? -1.0f : 0.25f;
   }
   ddpm_p_mean_variance(s, mean, lv, NULL, mo, xt, tt, N, C, HW, DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, 0);
   int n = 3, t = tt[n];
   double hi = log(s->betas[t]), lo = s->posterior_log_variance_clipped[t];
   CHECK(fabs(lv[n * D] - hi) < 1e-5 && fabs(lv[n * D + 1] - lo) < 1e-5 &&
         fabs(lv[n * D + 2] - (0.625 * hi + 0.375 * lo)) < 1e-5,
         "learned_range: v = 1 -> log beta_t, v = -1 -> log beta~_t, v = 0.25 interpolates");
   CHECK_CLOSE(mean, pmean, N * D, 1e-5, "learned_range: the mean ignores the variance channels");
   ddpm_p_mean_variance(s, NULL, lv, NULL, mo, xt, tt, N, C, HW, DDPM_MEAN_EPS, DDPM_VAR_LEARNED, 0);
   CHECK(lv[n * D] == 1.0f && lv[n * D + 1] == -1.0f && lv[n * D + 2] == 0.25f, "learned: logvar = out2");
   static float z[N * D], out[N * D];
   randn(z, N * D, 13);
   ddpm_p_sample_step(s, out, NULL, mo, xt, tt, z, N, C, HW, DDPM_MEAN_EPS, DDPM_VAR_LEARNED, 0);
   int i = n * D + 2;
   CHECK(fabs(out[i] - (pmean[i] + exp(0.125) * z[i])) < 1e-5, "learned: noise scale exp(0.5 out2)");
}

static void test_ddim(const ddpm_schedule *base)
{
   int idx[1000], K;
   ddpm_space_timesteps(idx, &K, 1000, "ddim50");
   ddpm_schedule *s = ddpm_schedule_respace(base, idx, K);
   int t[4] = { 0, 1, 25, 49 };
   enum { M = 4 };
   static float x0[M * D], eps[M * D], xt[M * D], out[M * D], z[M * D], out1[M * D], x0o[M * D];
   check_fill(x0, M * D, 5);
   randn(eps, M * D, 14);
   randn(z, M * D, 15);
   ddpm_q_sample(s, xt, x0, eps, t, M, D);
   CHECK(ddpm_ddim_step(s, out, x0o, eps, xt, t, NULL, 0.0, M, C, HW, DDPM_MEAN_EPS,
                        DDPM_VAR_FIXEDLARGE, 1) == DDPM_OK, "ddim_step eta = 0");
   double e = 0;
   for (int n = 0; n < M; n++) {
      double abp = s->alphas_cumprod_prev[t[n]];
      for (int j = 0; j < D; j++) {
         double w = sqrt(abp) * x0[n * D + j] + sqrt(1 - abp) * eps[n * D + j];
         e = fmax(e, fabs(out[n * D + j] - w) / (1 + s->sqrt_recip_alphas_cumprod[t[n]]));
      }
   }
   printf("# ddim eta=0 with the true eps: scaled max err %.3g\n", e);
   CHECK(e < 2e-6, "eta = 0 with the true eps lands on q_sample(x0, t-1, same eps); x0 at t = 0");
   ddpm_ddim_step(s, out1, NULL, eps, xt, t, z, 1.0, M, C, HW, DDPM_MEAN_EPS, DDPM_VAR_FIXEDLARGE, 1);
   ddpm_ddim_step(s, out, NULL, eps, xt, t, z, 1.0, M, C, HW, DDPM_MEAN_EPS, DDPM_VAR_FIXEDLARGE, 1);
   static float psmp[M * D];
   ddpm_p_sample_step(s, psmp, NULL, eps, xt, t, z, M, C, HW, DDPM_MEAN_EPS, DDPM_VAR_FIXEDSMALL, 1);
   CHECK_CLOSE(out, psmp, M * D, 1e-4, "eta = 1 equals ancestral sampling with fixedsmall");
   float back[M * D];
   int tp[M] = { 0, 0, 24, 48 };   /* encode from t-1 back to t */
   ddpm_ddim_step(s, out, NULL, eps, xt, t, NULL, 0.0, M, C, HW, DDPM_MEAN_EPS, DDPM_VAR_FIXEDLARGE, 0);
   CHECK(ddpm_ddim_reverse_step(s, back, NULL, eps, out, tp, M, C, HW, DDPM_MEAN_EPS,
                                DDPM_VAR_FIXEDLARGE, 0) == DDPM_OK, "ddim_reverse_step");
   CHECK_CLOSE(back + 2 * D, xt + 2 * D, 2 * D, 1e-4, "reverse step undoes the eta = 0 step (true eps)");
   CHECK(ddpm_ddim_step(s, out, NULL, eps, xt, t, NULL, 0.5, M, C, HW, 0, 0, 1) != DDPM_OK,
         "eta > 0 needs noise: %s", ddpm_errmsg());
   ddpm_schedule_free(s);
}

/* ------------------------------------------------------------------ losses */

static void test_loss_simple(void)
{
   enum { LN = 4, LD = 10 };
   float o[LN * LD], y[LN * LD], g[LN * LD], per[LN];
   check_fill(o, LN * LD, 6);
   check_fill(y, LN * LD, 7);
   double want = 0, pw[LN] = {0};
   for (int n = 0; n < LN; n++) {
      for (int j = 0; j < LD; j++) {
         double d = (double)o[n * LD + j] - y[n * LD + j];
         pw[n] += d * d / LD;
      }
      want += pw[n] / LN;
   }
   double got = ddpm_loss_simple(g, o, y, LN, LD);
   printf("# L_simple %.10g want %.10g\n", got, want);
   CHECK(rel(got, want) < 1e-14, "L_simple = batch mean of meanflat squared error");
   CHECK(ddpm_loss_simple_per_example(per, o, y, LN, LD) == DDPM_OK &&
         rel(per[2], pw[2]) < 1e-6, "per-example losses");
   float fd[LN * LD];
   for (int i = 0; i < LN * LD; i++) {
      float keep = o[i];
      const float h = 1.0f / 256;
      o[i] = keep + h;
      double lp = ddpm_loss_simple(NULL, o, y, LN, LD);
      o[i] = keep - h;
      double lm = ddpm_loss_simple(NULL, o, y, LN, LD);
      o[i] = keep;
      fd[i] = (float)((lp - lm) / (2 * h));
   }
   CHECK_CLOSE(g, fd, LN * LD, 1e-5, "gradient = central finite difference");
   CHECK(isnan(ddpm_loss_simple(g, o, y, 0, LD)) && msg_has("N = 0"), "N = 0: NaN + %s", ddpm_errmsg());
   CHECK(isnan(ddpm_loss_simple(g, NULL, y, 1, LD)), "NULL input: NaN + %s", ddpm_errmsg());
}

static void test_likelihood_pieces(const ddpm_schedule *s)
{
   CHECK(ddpm_normal_kl(0.3, -2.0, 0.3, -2.0) == 0.0 && ddpm_normal_kl(0, 0, 1, 0) == 0.5,
         "normal_kl(m, lv, m, lv) = 0; KL(N(0,1) || N(1,1)) = 1/2");
   const double mus[4] = { -1.0, -0.3, 0.0, 0.7 }, sig[3] = { 1e-3, 0.1, 1.0 };
   double worst = 0;
   for (int a = 0; a < 4; a++)
      for (int b = 0; b < 3; b++) {
         double sum = 0;
         for (int k = 0; k < 256; k++)
            sum += exp(ddpm_discretized_gaussian_log_likelihood(k / 127.5 - 1, mus[a], log(sig[b]), NULL, NULL));
         worst = fmax(worst, fabs(sum - 1));
      }
   printf("# discretized likelihood: worst |sum over 256 bins - 1| = %.3g\n", worst);
   CHECK(worst < 1e-9, "discretized Gaussian sums to 1 over the bins (sigma 1e-3, 0.1, 1)");
   /* derivatives */
   double fw = 0;
   const double xs[3] = { -1.0, 0.2, 1.0 };
   for (int k = 0; k < 3; k++) {
      double dmu, dls, h = 1e-6, mu = 0.1, ls = log(0.3);
      ddpm_discretized_gaussian_log_likelihood(xs[k], mu, ls, &dmu, &dls);
      double fm = (ddpm_discretized_gaussian_log_likelihood(xs[k], mu + h, ls, NULL, NULL) -
                   ddpm_discretized_gaussian_log_likelihood(xs[k], mu - h, ls, NULL, NULL)) / (2 * h);
      double fl = (ddpm_discretized_gaussian_log_likelihood(xs[k], mu, ls + h, NULL, NULL) -
                   ddpm_discretized_gaussian_log_likelihood(xs[k], mu, ls - h, NULL, NULL)) / (2 * h);
      fw = fmax(fw, fmax(fabs(fm - dmu) / (fabs(fm) + 1e-3), fabs(fl - dls) / (fabs(fl) + 1e-3)));
   }
   printf("# discretized likelihood derivative worst rel err %.3g\n", fw);
   CHECK(fw < 1e-6, "d log p / d mu and d log p / d log_scale match finite differences (edges too)");

   float x0[2] = { 1.0f, 0.0f }, pr[2];
   CHECK(ddpm_prior_bpd(s, pr, x0, 2, 1) == DDPM_OK, "prior_bpd");
   printf("# prior L_T: %.4g at +-1, %.4g at 0\n", pr[0], pr[1]);
   CHECK(near_printed(pr[0], "2.9e-5") && near_printed(pr[1], "5.9e-10"),
         "prior term 2.9e-5 bits/dim at a pixel of 1, 5.9e-10 at 0 (docs/math.md §3.2)");
}

/* Central finite differences of sum_n dterms[n] * terms[n] w.r.t. model_out,
   against the accumulated gradient. */
static double vb_grad_err(const ddpm_schedule *s, int mean_type, int var_type, const int *t, int M,
                          float h)
{
   enum { VC = 2, VHW = 3, VD = VC * VHW };
   int Co = ddpm_model_out_channels(VC, var_type);
   float x0[4 * VD], eps[4 * VD], xt[4 * VD], mo[4 * 2 * VD], g[4 * 2 * VD], fd[4 * 2 * VD];
   float dterms[4] = { 0.5f, -1.0f, 2.0f, 0.25f }, tp[4];
   check_fill(x0, M * VD, 20 + mean_type);
   for (int i = 0; i < M * VD; i++) x0[i] = roundf(x0[i] * 127.5f) / 127.5f;   /* 8-bit values */
   x0[0] = -1.0f; x0[1] = 1.0f;                                                  /* edge bins */
   randn(eps, M * VD, 30 + var_type);
   ddpm_q_sample(s, xt, x0, eps, t, M, VD);
   /* model outputs near the truth so the terms are O(1) */
   for (int n = 0; n < M; n++)
      for (int c = 0; c < Co; c++)
         for (int p = 0; p < VHW; p++) {
            int i = (n * Co + c) * VHW + p, j = n * VD + (c % VC) * VHW + p;
            float r = 0.05f * (float)((i * 37 % 11) - 5);
            float mv;
            if (c >= VC) mv = var_type == DDPM_VAR_LEARNED ? -5.0f + r : r * 4;
            else if (mean_type == DDPM_MEAN_EPS) mv = eps[j] + r;
            else if (mean_type == DDPM_MEAN_XSTART) mv = x0[j] + 0.1f * r;
            else if (mean_type == DDPM_MEAN_V) mv = 0.3f * eps[j] + r;
            else mv = xt[j] * 0.9f + 0.1f * r;
            mo[i] = mv;
         }
   memset(g, 0, sizeof g);
   for (int i = 0; i < M * Co * VHW; i++) g[i] = 0.125f;   /* accumulates onto this */
   ddpm_vb_terms_bpd(s, NULL, NULL, g, mo, x0, xt, t, dterms, M, VC, VHW, mean_type, var_type, 0, 0);
   /* five-point stencil: terms are float, so a larger h keeps their rounding
      small against the difference, and the O(h^4) error stays negligible */
   for (int i = 0; i < M * Co * VHW; i++) {
      const float keep = mo[i];
      const float off[4] = { 2 * h, h, -h, -2 * h }, wt[4] = { -1, 8, -8, 1 };
      double acc = 0;
      for (int k = 0; k < 4; k++) {
         mo[i] = keep + off[k];
         ddpm_vb_terms_bpd(s, tp, NULL, NULL, mo, x0, xt, t, NULL, M, VC, VHW, mean_type, var_type, 0, 0);
         for (int n = 0; n < M; n++) acc += wt[k] * dterms[n] * (double)tp[n] / (12 * (double)h);
      }
      mo[i] = keep;
      fd[i] = (float)(acc + 0.125);
   }
   return check_max_rel(g, fd, (size_t)(M * Co * VHW));
}

static void test_vb(const ddpm_schedule *s)
{
   static float x0[N * D], eps[N * D], xt[N * D], terms[N], mse[N], ltr[N], x0m[N], mo[N * 2 * D];
   check_fill(x0, N * D, 8);
   for (int i = 0; i < N * D; i++) x0[i] = roundf(x0[i] * 127.5f) / 127.5f;
   randn(eps, N * D, 16);
   ddpm_q_sample(s, xt, x0, eps, tt, N, D);
   /* the true eps with fixedsmall: the model equals q, so L_t = 0 for t >= 1 */
   CHECK(ddpm_vb_terms_bpd(s, terms, x0m, NULL, eps, x0, xt, tt, NULL, N, C, HW, DDPM_MEAN_EPS,
                           DDPM_VAR_FIXEDSMALL, 0, 0) == DDPM_OK, "vb_terms_bpd");
   printf("# vb terms with the true eps: %.3g %.3g %.3g %.3g %.3g %.3g\n",
          terms[0], terms[1], terms[2], terms[3], terms[4], terms[5]);
   int ok = 1;
   for (int n = 1; n < N - 1; n++) ok &= fabs(terms[n]) < 1e-3;
   CHECK(ok, "KL(q || p) ~ 0 at t >= 1 when the model is the true posterior");
   CHECK(terms[0] > 0 && terms[0] < 8, "decoder NLL at t = 0 is a positive number of bits");
   CHECK(x0m[3] < 1e-8, "x0 mse ~ 0 for the true eps (%.3g)", x0m[3]);

   int tg1[4] = { 1, 2, 400, 999 }, tg0[4] = { 0, 0, 0, 0 }, tgm[4] = { 0, 1, 7, 300 };
   /* h: the xprev decoder at t = 0 has sigma = sqrt(beta~_1) ~ 0.007 */
   struct { int mean, var; const int *t; float h; const char *what; } cases[] = {
      { DDPM_MEAN_EPS, DDPM_VAR_FIXEDLARGE, tg1, 1.0f / 128, "eps/fixedlarge, t >= 1" },
      { DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, tgm, 1.0f / 128, "eps/learned_range, t incl. 0" },
      { DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, tg0, 1.0f / 128, "eps/learned_range, decoder t = 0" },
      { DDPM_MEAN_XSTART, DDPM_VAR_LEARNED, tgm, 1.0f / 128, "xstart/learned" },
      { DDPM_MEAN_XPREV, DDPM_VAR_FIXEDSMALL, tgm, 1.0f / 2048, "xprev/fixedsmall" },
      { DDPM_MEAN_V, DDPM_VAR_LEARNED_RANGE, tgm, 1.0f / 128, "v/learned_range" },
   };
   for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      double e = vb_grad_err(s, cases[c].mean, cases[c].var, cases[c].t, 4, cases[c].h);
      printf("# vb gradient %s: max rel err %.3g\n", cases[c].what, e);
      CHECK(e < 2e-2, "vb gradient (accumulated) = finite differences: %s", cases[c].what);
   }

   /* training_losses: mse/eps/fixed equals L_simple */
   static float g1[N * D], g2[N * 2 * D], losses[N], vb[N];
   double L;
   static float mo1[N * D];
   randn(mo1, N * D, 17);
   double ls = ddpm_loss_simple(g1, mo1, eps, N, D);
   CHECK(ddpm_training_losses(s, &L, losses, mse, vb, g2, mo1, x0, xt, eps, tt, NULL, N, C, HW,
                              DDPM_MEAN_EPS, DDPM_VAR_FIXEDLARGE, DDPM_LOSS_MSE) == DDPM_OK &&
         rel(L, ls) < 1e-6 && vb[2] == 0.0f, "training_losses(mse, eps, fixed) = L_simple (%.6g vs %.6g)", L, ls);
   CHECK_CLOSE(g2, g1, N * D, 1e-6, "and the same gradient");
   float w[N] = { 1, 2, 0.5f, 1, 3, 0 };
   double Lw;
   ddpm_training_losses(s, &Lw, ltr, NULL, NULL, NULL, mo1, x0, xt, eps, tt, w, N, C, HW,
                        DDPM_MEAN_EPS, DDPM_VAR_FIXEDLARGE, DDPM_LOSS_MSE);
   double want = 0;
   for (int n = 0; n < N; n++) want += w[n] * ltr[n] / N;
   CHECK(rel(Lw, want) < 1e-6, "weights: loss = mean of w_n losses_n");
   /* hybrid (rescaled_mse, learned_range): mean channels get the mse gradient only */
   for (int n = 0; n < N; n++)
      for (int j = 0; j < D; j++) {
         mo[n * 2 * D + j] = eps[n * D + j] + 0.1f * mo1[n * D + j];
         mo[n * 2 * D + D + j] = 0.3f * mo1[n * D + j];
      }
   ddpm_training_losses(s, &L, ltr, mse, vb, g2, mo, x0, xt, eps, tt, NULL, N, C, HW,
                        DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, DDPM_LOSS_RESCALED_MSE);
   ok = 1;
   for (int n = 0; n < N; n++) {
      ok &= fabs(ltr[n] - (mse[n] + vb[n])) < 1e-6 && vb[n] > 0;
      for (int j = 0; j < D; j++)
         ok &= fabs(g2[n * 2 * D + j] - 2 * (mo[n * 2 * D + j] - eps[n * D + j]) / (N * D)) < 1e-9;
   }
   CHECK(ok, "hybrid: losses = mse + vb; mean-channel gradient is the mse's alone (detached)");
   /* its variance-channel gradient against finite differences of the total */
   double e = 0, scale = 0;
   for (int n = 0; n < 2; n++)
      for (int j = 0; j < D; j += 7) {
         int i = n * 2 * D + D + j;
         float keep = mo[i];
         double lp, lm;
         mo[i] = keep + 1e-2f;
         ddpm_training_losses(s, &lp, NULL, NULL, NULL, NULL, mo, x0, xt, eps, tt, NULL, N, C, HW,
                              DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, DDPM_LOSS_RESCALED_MSE);
         mo[i] = keep - 1e-2f;
         ddpm_training_losses(s, &lm, NULL, NULL, NULL, NULL, mo, x0, xt, eps, tt, NULL, N, C, HW,
                              DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, DDPM_LOSS_RESCALED_MSE);
         mo[i] = keep;
         double fdv = (lp - lm) / 2e-2;
         e = fmax(e, fabs(fdv - g2[i]));
         scale = fmax(scale, fabs(fdv));
      }
   printf("# hybrid variance-channel gradient: max abs err %.3g (scale %.3g)\n", e, scale);
   CHECK(e < 1e-3 * scale + 1e-9, "hybrid: variance-channel gradient = finite differences");
   /* kl: the single-t vb term; rescaled_kl: T times */
   double Lk, Lrk;
   ddpm_training_losses(s, &Lk, ltr, NULL, NULL, NULL, mo, x0, xt, eps, tt, NULL, N, C, HW,
                        DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, DDPM_LOSS_KL);
   ddpm_vb_terms_bpd(s, terms, NULL, NULL, mo, x0, xt, tt, NULL, N, C, HW, DDPM_MEAN_EPS,
                     DDPM_VAR_LEARNED_RANGE, 0, 0);
   ddpm_training_losses(s, &Lrk, NULL, NULL, NULL, NULL, mo, x0, xt, eps, tt, NULL, N, C, HW,
                        DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, DDPM_LOSS_RESCALED_KL);
   CHECK(fabs(ltr[4] - terms[4]) < 1e-6 && rel(Lrk, 1000 * Lk) < 1e-6,
         "kl loss = the unclipped vb term; rescaled_kl = T times it");
}

/* Big enough for the parallel paths: the same bits for 1 and 4 threads. */
static void test_threads(const ddpm_schedule *s)
{
   enum { TN = 40, TC = 3, THW = 1024, TD = TC * THW };
   float *x0 = malloc(sizeof(float) * TN * TD), *eps = malloc(sizeof(float) * TN * TD);
   float *xt = malloc(sizeof(float) * TN * TD), *mo = malloc(sizeof(float) * TN * 2 * TD);
   float *g[2], *xp[2];
   double L[2], ls[2];
   int t[TN];
   for (int n = 0; n < TN; n++) t[n] = (n * 97) % 1000;
   check_fill(x0, (size_t)TN * TD, 40);
   randn(eps, (size_t)TN * TD, 41);
   randn(mo, (size_t)TN * 2 * TD, 42);
   ddpm_q_sample(s, xt, x0, eps, t, TN, TD);
   int saved = omp_get_max_threads();
   for (int k = 0; k < 2; k++) {
      omp_set_num_threads(k ? 4 : 1);
      g[k] = malloc(sizeof(float) * TN * 2 * TD);
      xp[k] = malloc(sizeof(float) * TN * TD);
      ddpm_training_losses(s, &L[k], NULL, NULL, NULL, g[k], mo, x0, xt, eps, t, NULL, TN, TC, THW,
                           DDPM_MEAN_EPS, DDPM_VAR_LEARNED_RANGE, DDPM_LOSS_RESCALED_MSE);
      ls[k] = ddpm_loss_simple(NULL, mo, eps, TN, TD);
      ddpm_p_sample_step(s, xp[k], NULL, mo, xt, t, eps, TN, TC, THW, DDPM_MEAN_EPS,
                         DDPM_VAR_LEARNED_RANGE, 1);
   }
   omp_set_num_threads(saved);
   CHECK(L[0] == L[1] && ls[0] == ls[1] &&
         !memcmp(g[0], g[1], sizeof(float) * TN * 2 * TD) &&
         !memcmp(xp[0], xp[1], sizeof(float) * TN * TD),
         "losses, gradients and samples are the same bits for 1 and 4 threads");
   for (int k = 0; k < 2; k++) { free(g[k]); free(xp[k]); }
   free(x0); free(eps); free(xt); free(mo);
}

/* ------------------------------------------------------------------ errors */

static void test_errors(const ddpm_schedule *s)
{
   float a[2 * D] = {0}, b[2 * D] = {0}, o[2 * D];
   int t_hi[2] = { 0, 1000 }, t_lo[2] = { -1, 0 };
   ddpm_clearerr();
   CHECK(ddpm_q_sample(s, o, a, b, t_hi, 2, D) == DDPM_EINVAL && msg_has("t[1] = 1000") &&
         msg_has("0..999"), "t = T rejected: %s", ddpm_errmsg());
   CHECK(ddpm_predict_x0_from_eps(s, o, a, b, t_lo, 2, D) == DDPM_EINVAL && msg_has("t[0] = -1"),
         "t = -1 rejected: %s", ddpm_errmsg());
   CHECK(ddpm_p_sample_step(s, o, NULL, a, b, t_hi, b, 2, C, HW, 0, 0, 1) == DDPM_EINVAL,
         "p_sample_step t out of range: %s", ddpm_errmsg());
   CHECK(ddpm_q_posterior(s, o, NULL, NULL, a, b, t_hi, 2, D) == DDPM_EINVAL, "q_posterior t: %s",
         ddpm_errmsg());
   int t_ok[2] = { 3, 4 };
   CHECK(ddpm_q_sample(NULL, o, a, b, t_ok, 2, D) == DDPM_EINVAL, "NULL schedule: %s", ddpm_errmsg());
   CHECK(ddpm_q_sample(s, o, a, NULL, t_ok, 2, D) == DDPM_EINVAL, "NULL eps: %s", ddpm_errmsg());
   CHECK(ddpm_q_sample(s, o, a, b, NULL, 2, D) == DDPM_EINVAL, "NULL t: %s", ddpm_errmsg());
   CHECK(ddpm_q_sample(s, o, a, b, t_ok, 2, 0) == DDPM_EINVAL, "D = 0: %s", ddpm_errmsg());
   CHECK(ddpm_q_sample(s, o, a, b, t_ok, 0, D) == DDPM_OK, "N = 0 is a no-op");
   CHECK(ddpm_p_sample_step(s, o, NULL, a, b, t_ok, NULL, 2, C, HW, 0, 0, 1) == DDPM_EINVAL,
         "p_sample_step without noise: %s", ddpm_errmsg());
   CHECK(ddpm_p_mean_variance(s, o, NULL, NULL, a, b, t_ok, 2, C, HW, 7, 0, 1) == DDPM_EINVAL &&
         msg_has("mean_type"), "bad mean_type: %s", ddpm_errmsg());
   CHECK(ddpm_p_mean_variance(s, o, NULL, NULL, a, b, t_ok, 2, C, HW, 0, -1, 1) == DDPM_EINVAL &&
         msg_has("var_type"), "bad var_type: %s", ddpm_errmsg());
   CHECK(ddpm_p_mean_variance(s, o, NULL, NULL, a, b, t_ok, 2, 0, HW, 0, 0, 1) == DDPM_EINVAL,
         "C = 0: %s", ddpm_errmsg());
   double L;
   CHECK(ddpm_training_losses(s, &L, NULL, NULL, NULL, NULL, a, a, b, b, t_ok, NULL, 2, C, HW, 0, 0, 9)
         == DDPM_EINVAL && msg_has("loss_type"), "bad loss_type: %s", ddpm_errmsg());
   CHECK(ddpm_training_losses(s, &L, NULL, NULL, NULL, NULL, a, a, b, NULL, t_ok, NULL, 2, C, HW, 0, 0, 0)
         == DDPM_EINVAL, "mse on eps without eps: %s", ddpm_errmsg());
   CHECK(ddpm_mean_type_parse("epsilon") == -1 && msg_has("xstart"), "mean_type names: %s", ddpm_errmsg());
   CHECK(ddpm_var_type_parse("learned_range") == DDPM_VAR_LEARNED_RANGE &&
         ddpm_var_type_parse("large") == -1 && msg_has("fixedlarge"), "var_type names: %s", ddpm_errmsg());
   CHECK(ddpm_loss_type_parse("rescaled_kl") == DDPM_LOSS_RESCALED_KL &&
         !strcmp(ddpm_mean_type_name(DDPM_MEAN_V), "v") && !strcmp(ddpm_var_type_name(9), "?"),
         "name round trips");
   CHECK(ddpm_model_out_channels(3, DDPM_VAR_LEARNED) == 6 && ddpm_model_out_channels(3, 0) == 3,
         "learned variances need 2C output channels");
}

int main(void)
{
   test_linear();
   test_other_schedules();
   test_schedule_errors();
   test_respace();
   ddpm_schedule *s = ddpm_schedule_new("linear", 1000, 1e-4, 0.02);
   test_q_and_predict(s);
   test_posterior(s);
   test_p_sample_step(s);
   test_mean_var_types(s);
   test_ddim(s);
   test_loss_simple();
   test_likelihood_pieces(s);
   test_vb(s);
   test_threads(s);
   test_errors(s);
   ddpm_schedule_free(s);
   return check_done();
}
