/*
 * diffusion.c — batched DDPM math over float32 images with a timestep per
 * example: the forward process q (eq. 4, eqs. 6-7), the reverse process p
 * for every mean/variance parameterisation (docs/math.md §2), the ancestral (Alg. 2)
 * and DDIM steps, and the losses: L_simple (eq. 14) and the VLB terms of
 * eq. 5 in bits/dim with their gradients w.r.t. the network output.
 *
 * Each op reads the float64 coefficients of t[n] once per example, works in
 * double per element and stores float32. Not here: schedules (schedule.c),
 * random numbers (the caller passes eps and noise), the network, the t loops.
 */
#include "ddpm.h"
#include "ddpm/diffusion.h"

#include <math.h>
#include <string.h>

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768
/* Batch sums run over per-example parts in blocks of this many, in order, so
   a loss does not depend on the thread count. */
#define CHUNK 256

/* ------------------------------------------------------------------ names */

static const char *const mean_names[] = { "eps", "xstart", "xprev", "v" };
static const char *const var_names[] = { "fixedlarge", "fixedsmall", "learned", "learned_range" };
static const char *const loss_names[] = { "mse", "rescaled_mse", "kl", "rescaled_kl" };

static int parse_name(const char *name, const char *const *names, int n, const char *what)
{
   for (int i = 0; name && i < n; i++)
      if (!strcmp(name, names[i])) return i;
   ddpm_seterr(DDPM_EINVAL, "unknown %s '%s' (known: %s, %s, %s, %s)", what,
               name ? name : "(null)", names[0], names[1], names[2], names[3]);
   return -1;
}

int ddpm_mean_type_parse(const char *name) { return parse_name(name, mean_names, 4, "mean_type"); }
int ddpm_var_type_parse(const char *name) { return parse_name(name, var_names, 4, "var_type"); }
int ddpm_loss_type_parse(const char *name) { return parse_name(name, loss_names, 4, "loss_type"); }
const char *ddpm_mean_type_name(int m) { return m >= 0 && m < 4 ? mean_names[m] : "?"; }
const char *ddpm_var_type_name(int v) { return v >= 0 && v < 4 ? var_names[v] : "?"; }
const char *ddpm_loss_type_name(int l) { return l >= 0 && l < 4 ? loss_names[l] : "?"; }

static int learned_var(int var_type)
{
   return var_type == DDPM_VAR_LEARNED || var_type == DDPM_VAR_LEARNED_RANGE;
}

int ddpm_model_out_channels(int C, int var_type)
{
   return learned_var(var_type) ? 2 * C : C;
}

/* ------------------------------------------------------------------ checks */

static int check_t(const ddpm_schedule *s, const int *t, int N, const char *what)
{
   if (!s) return ddpm_seterr(DDPM_EINVAL, "%s: schedule is NULL", what);
   if (N < 0) return ddpm_seterr(DDPM_EINVAL, "%s: batch size N = %d", what, N);
   if (N > 0 && !t) return ddpm_seterr(DDPM_EINVAL, "%s: timesteps are NULL", what);
   for (int n = 0; n < N; n++)
      if (t[n] < 0 || t[n] >= s->T)
         return ddpm_seterr(DDPM_EINVAL, "%s: t[%d] = %d is outside 0..%d (code index, T = %d)",
                            what, n, t[n], s->T - 1, s->T);
   return DDPM_OK;
}

/* Any NULL among the named pointers is an error. */
#define NEED(p, what) do { if (!(p)) return ddpm_seterr(DDPM_EINVAL, "%s: " #p " is NULL", what); } while (0)

static int check_flat(const ddpm_schedule *s, const int *t, int N, int64_t D, const char *what)
{
   if (D < 1) return ddpm_seterr(DDPM_EINVAL, "%s: D = %lld values per example, must be >= 1",
                                 what, (long long)D);
   return check_t(s, t, N, what);
}

static int check_rev(const ddpm_schedule *s, const int *t, int N, int C, int HW,
                     int mean_type, int var_type, const char *what)
{
   if (C < 1 || HW < 1)
      return ddpm_seterr(DDPM_EINVAL, "%s: C = %d, HW = %d, both must be >= 1", what, C, HW);
   if (mean_type < 0 || mean_type > DDPM_MEAN_V)
      return ddpm_seterr(DDPM_EINVAL, "%s: mean_type %d is not one of eps, xstart, xprev, v",
                         what, mean_type);
   if (var_type < 0 || var_type > DDPM_VAR_LEARNED_RANGE)
      return ddpm_seterr(DDPM_EINVAL, "%s: var_type %d is not one of fixedlarge, fixedsmall, "
                         "learned, learned_range", what, var_type);
   return check_t(s, t, N, what);
}

/* ------------------------------------------------------------------ forward process */

/* out = a_t u + b_t v per example (v may be NULL: b ignored). */
typedef void (*coef_fn)(const ddpm_schedule *s, int t, double *a, double *b);

static int lincomb(const ddpm_schedule *s, const char *what, coef_fn f, float *out,
                   const float *u, const float *v, const int *t, int N, int64_t D)
{
   int rc = check_flat(s, t, N, D, what);
   if (rc != DDPM_OK) return rc;
   if (N == 0) return DDPM_OK;
   NEED(out, what);
   NEED(u, what);
   #pragma omp parallel for schedule(static) if ((int64_t)N * D > PAR_MIN)
   for (int n = 0; n < N; n++) {
      double a, b;
      f(s, t[n], &a, &b);
      const float *un = u + (int64_t)n * D, *vn = v ? v + (int64_t)n * D : NULL;
      float *on = out + (int64_t)n * D;
      if (vn) for (int64_t j = 0; j < D; j++) on[j] = (float)(a * un[j] + b * vn[j]);
      else    for (int64_t j = 0; j < D; j++) on[j] = (float)(a * un[j]);
   }
   return DDPM_OK;
}

/* eq. 4: x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps */
static void c_q_sample(const ddpm_schedule *s, int t, double *a, double *b)
{
   *a = s->sqrt_alphas_cumprod[t];
   *b = s->sqrt_one_minus_alphas_cumprod[t];
}

/* eq. 15 solved for x_0: x_0 = sqrt(1/ab_t) x_t - sqrt(1/ab_t - 1) eps */
static void c_x0_from_eps(const ddpm_schedule *s, int t, double *a, double *b)
{
   *a = s->sqrt_recip_alphas_cumprod[t];
   *b = -s->sqrt_recipm1_alphas_cumprod[t];
}

/* eps = (sqrt(1/ab_t) x_t - x_0) / sqrt(1/ab_t - 1) */
static void c_eps_from_x0(const ddpm_schedule *s, int t, double *a, double *b)
{
   double r = s->sqrt_recipm1_alphas_cumprod[t];
   *a = s->sqrt_recip_alphas_cumprod[t] / r;
   *b = -1.0 / r;
}

/* eq. 7 inverted: x_0 = (mu - c2 x_t) / c1 */
static void c_x0_from_xprev(const ddpm_schedule *s, int t, double *a, double *b)
{
   double c1 = s->posterior_mean_coef1[t];
   *a = 1.0 / c1;
   *b = -s->posterior_mean_coef2[t] / c1;
}

/* x_0 = sqrt(ab_t) x_t - sqrt(1 - ab_t) v; also the v target with (eps, x_0) */
static void c_x0_from_v(const ddpm_schedule *s, int t, double *a, double *b)
{
   *a = s->sqrt_alphas_cumprod[t];
   *b = -s->sqrt_one_minus_alphas_cumprod[t];
}

/* eq. 7: mu~ = c1 x_0 + c2 x_t */
static void c_posterior(const ddpm_schedule *s, int t, double *a, double *b)
{
   *a = s->posterior_mean_coef1[t];
   *b = s->posterior_mean_coef2[t];
}

int ddpm_q_sample(const ddpm_schedule *s, float *out, const float *x0, const float *eps,
                  const int *t, int N, int64_t D)
{
   if (N > 0) NEED(eps, "q_sample");
   return lincomb(s, "q_sample", c_q_sample, out, x0, eps, t, N, D);
}

int ddpm_predict_x0_from_eps(const ddpm_schedule *s, float *out, const float *xt,
                             const float *eps, const int *t, int N, int64_t D)
{
   if (N > 0) NEED(eps, "predict_x0_from_eps");
   return lincomb(s, "predict_x0_from_eps", c_x0_from_eps, out, xt, eps, t, N, D);
}

int ddpm_predict_eps_from_x0(const ddpm_schedule *s, float *out, const float *xt,
                             const float *x0, const int *t, int N, int64_t D)
{
   if (N > 0) NEED(x0, "predict_eps_from_x0");
   return lincomb(s, "predict_eps_from_x0", c_eps_from_x0, out, xt, x0, t, N, D);
}

int ddpm_predict_x0_from_xprev(const ddpm_schedule *s, float *out, const float *xt,
                               const float *xprev, const int *t, int N, int64_t D)
{
   if (N > 0) NEED(xt, "predict_x0_from_xprev");
   return lincomb(s, "predict_x0_from_xprev", c_x0_from_xprev, out, xprev, xt, t, N, D);
}

int ddpm_predict_x0_from_v(const ddpm_schedule *s, float *out, const float *xt,
                           const float *v, const int *t, int N, int64_t D)
{
   if (N > 0) NEED(v, "predict_x0_from_v");
   return lincomb(s, "predict_x0_from_v", c_x0_from_v, out, xt, v, t, N, D);
}

int ddpm_v_target(const ddpm_schedule *s, float *out, const float *x0, const float *eps,
                  const int *t, int N, int64_t D)
{
   if (N > 0) NEED(x0, "v_target");
   /* sqrt(ab) eps - sqrt(1-ab) x_0: the x0_from_v coefficients on (eps, x_0) */
   return lincomb(s, "v_target", c_x0_from_v, out, eps, x0, t, N, D);
}

/* Per-example scalars of q: var and logvar [N], either may be NULL. */
static void per_example(float *var, float *logvar, const double *v, const double *lv,
                        const int *t, int N)
{
   for (int n = 0; n < N; n++) {
      if (var) var[n] = (float)v[t[n]];
      if (logvar) logvar[n] = (float)lv[t[n]];
   }
}

int ddpm_q_mean_variance(const ddpm_schedule *s, float *mean, float *var, float *logvar,
                         const float *x0, const int *t, int N, int64_t D)
{
   int rc = check_flat(s, t, N, D, "q_mean_variance");
   if (rc != DDPM_OK) return rc;
   if (mean) {
      rc = lincomb(s, "q_mean_variance", c_q_sample, mean, x0, NULL, t, N, D);
      if (rc != DDPM_OK) return rc;
   }
   for (int n = 0; n < N; n++) {   /* q(x_t | x_0) has variance 1 - ab_t (eq. 4) */
      if (var) var[n] = (float)(1.0 - s->alphas_cumprod[t[n]]);
      if (logvar) logvar[n] = (float)s->log_one_minus_alphas_cumprod[t[n]];
   }
   return DDPM_OK;
}

int ddpm_q_posterior(const ddpm_schedule *s, float *mean, float *var, float *logvar,
                     const float *x0, const float *xt, const int *t, int N, int64_t D)
{
   int rc = check_flat(s, t, N, D, "q_posterior");
   if (rc != DDPM_OK) return rc;
   if (mean) {
      if (N > 0) NEED(xt, "q_posterior");
      rc = lincomb(s, "q_posterior", c_posterior, mean, x0, xt, t, N, D);
      if (rc != DDPM_OK) return rc;
   }
   per_example(var, logvar, s->posterior_variance, s->posterior_log_variance_clipped, t, N);
   return DDPM_OK;
}

/* ------------------------------------------------------------------ reverse process */

/* The scalars of p(x_{t-1} | x_t) at one t. */
typedef struct coefs {
   double sra, srm1;         /* sqrt(1/ab), sqrt(1/ab - 1) */
   double sab, s1mab;        /* sqrt(ab), sqrt(1 - ab) */
   double c1, c2;            /* posterior mean coefficients (eq. 7) */
   double rc1, c2c1;         /* 1/c1, c2/c1 for the xprev inversion */
   double lv_fixed;          /* log sigma^2 of the fixed variances */
   double min_log, max_log;  /* learned_range ends: log beta~_t (clipped), log beta_t */
} coefs;

static coefs coefs_at(const ddpm_schedule *s, int t, int var_type)
{
   coefs k;
   k.sra = s->sqrt_recip_alphas_cumprod[t];
   k.srm1 = s->sqrt_recipm1_alphas_cumprod[t];
   k.sab = s->sqrt_alphas_cumprod[t];
   k.s1mab = s->sqrt_one_minus_alphas_cumprod[t];
   k.c1 = s->posterior_mean_coef1[t];
   k.c2 = s->posterior_mean_coef2[t];
   k.rc1 = 1.0 / k.c1;
   k.c2c1 = k.c2 / k.c1;
   k.min_log = s->posterior_log_variance_clipped[t];
   k.max_log = log(s->betas[t]);
   /* fixedlarge: sigma^2 = beta_t, except log beta~_1 at t = 0, "to get a
      better decoder log likelihood" (official code); fixedsmall: beta~_t */
   if (var_type == DDPM_VAR_FIXEDLARGE) k.lv_fixed = t == 0 ? k.min_log : k.max_log;
   else k.lv_fixed = k.min_log;
   return k;
}

/* One element of p(x_{t-1} | x_t) (docs/math.md §2.1, §2.2). o, o2: the mean and
   variance outputs, x: x_t. Returns the mean; *x0 the (clamped) x_0
   prediction, *lv the log variance, *dm = d mean / d o, *dlv = d lv / d o2. */
static inline double pmv_elem(const coefs *k, int mean_type, int var_type, int clip,
                              double o, double o2, double x,
                              double *x0, double *lv, double *dm, double *dlv)
{
   double x0h, dx0, mean;
   switch (mean_type) {
   case DDPM_MEAN_XSTART: x0h = o; dx0 = 1.0; break;
   case DDPM_MEAN_V:      x0h = k->sab * x - k->s1mab * o; dx0 = -k->s1mab; break;
   case DDPM_MEAN_XPREV:  x0h = k->rc1 * o - k->c2c1 * x; dx0 = 0.0; break;
   default:               x0h = k->sra * x - k->srm1 * o; dx0 = -k->srm1; break;  /* eq. 15 */
   }
   if (clip) {
      if (x0h > 1.0) { x0h = 1.0; dx0 = 0.0; }
      else if (x0h < -1.0) { x0h = -1.0; dx0 = 0.0; }
   }
   if (mean_type == DDPM_MEAN_XPREV) {   /* the prediction is the mean itself */
      mean = o;
      *dm = 1.0;
   } else {                              /* eq. 7 with x_0 := x0_hat */
      mean = k->c1 * x0h + k->c2 * x;
      *dm = k->c1 * dx0;
   }
   *x0 = x0h;
   switch (var_type) {
   case DDPM_VAR_LEARNED:
      *lv = o2;
      *dlv = 1.0;
      break;
   case DDPM_VAR_LEARNED_RANGE: {        /* improved-diffusion: o2 in [-1, 1] */
      double frac = 0.5 * (o2 + 1.0);
      *lv = frac * k->max_log + (1.0 - frac) * k->min_log;
      *dlv = 0.5 * (k->max_log - k->min_log);
      break;
   }
   default:
      *lv = k->lv_fixed;
      *dlv = 0.0;
   }
   return mean;
}

int ddpm_p_mean_variance(const ddpm_schedule *s, float *mean, float *logvar, float *x0_out,
                         const float *model_out, const float *xt, const int *t,
                         int N, int C, int HW, int mean_type, int var_type, int clip)
{
   const char *what = "p_mean_variance";
   int rc = check_rev(s, t, N, C, HW, mean_type, var_type, what);
   if (rc != DDPM_OK) return rc;
   if (N == 0) return DDPM_OK;
   NEED(model_out, what);
   NEED(xt, what);
   const int64_t D = (int64_t)C * HW, DO = (int64_t)ddpm_model_out_channels(C, var_type) * HW;
   #pragma omp parallel for schedule(static) if ((int64_t)N * D > PAR_MIN)
   for (int n = 0; n < N; n++) {
      coefs k = coefs_at(s, t[n], var_type);
      const float *mo = model_out + n * DO, *x = xt + n * D;
      for (int64_t j = 0; j < D; j++) {
         double x0, lv, dm, dlv;
         double o2 = learned_var(var_type) ? mo[D + j] : 0.0;
         double m = pmv_elem(&k, mean_type, var_type, clip, mo[j], o2, x[j], &x0, &lv, &dm, &dlv);
         if (mean) mean[n * D + j] = (float)m;
         if (logvar) logvar[n * D + j] = (float)lv;
         if (x0_out) x0_out[n * D + j] = (float)x0;
      }
   }
   return DDPM_OK;
}

int ddpm_p_sample_step(const ddpm_schedule *s, float *x_prev, float *x0_out,
                       const float *model_out, const float *xt, const int *t,
                       const float *noise, int N, int C, int HW,
                       int mean_type, int var_type, int clip)
{
   const char *what = "p_sample_step";
   int rc = check_rev(s, t, N, C, HW, mean_type, var_type, what);
   if (rc != DDPM_OK) return rc;
   if (N == 0) return DDPM_OK;
   NEED(x_prev, what);
   NEED(model_out, what);
   NEED(xt, what);
   NEED(noise, what);
   const int64_t D = (int64_t)C * HW, DO = (int64_t)ddpm_model_out_channels(C, var_type) * HW;
   #pragma omp parallel for schedule(static) if ((int64_t)N * D > PAR_MIN)
   for (int n = 0; n < N; n++) {
      coefs k = coefs_at(s, t[n], var_type);
      const float *mo = model_out + n * DO, *x = xt + n * D, *z = noise + n * D;
      const int last = t[n] == 0;        /* Alg. 2: z = 0 when t = 1 (code index 0) */
      const double sigma_fixed = exp(0.5 * k.lv_fixed);
      for (int64_t j = 0; j < D; j++) {
         double x0, lv, dm, dlv;
         double o2 = learned_var(var_type) ? mo[D + j] : 0.0;
         double m = pmv_elem(&k, mean_type, var_type, clip, mo[j], o2, x[j], &x0, &lv, &dm, &dlv);
         double sigma = learned_var(var_type) ? exp(0.5 * lv) : sigma_fixed;
         /* Alg. 2 line 4: x_{t-1} = mu + sigma_t z */
         double xp = last ? m : m + sigma * z[j];
         if (x0_out) x0_out[n * D + j] = (float)x0;
         x_prev[n * D + j] = (float)xp;
      }
   }
   return DDPM_OK;
}

/* DDIM and its reverse share the step; dir = -1 goes to t-1, +1 to t+1. */
static int ddim(const ddpm_schedule *s, float *x_out, float *x0_out, const float *model_out,
                const float *xt, const int *t, const float *noise, double eta, int dir,
                int N, int C, int HW, int mean_type, int var_type, int clip, const char *what)
{
   int rc = check_rev(s, t, N, C, HW, mean_type, var_type, what);
   if (rc != DDPM_OK) return rc;
   if (!(eta >= 0 && eta <= 1e6)) return ddpm_seterr(DDPM_EINVAL, "%s: eta = %g must be >= 0", what, eta);
   if (N == 0) return DDPM_OK;
   NEED(x_out, what);
   NEED(model_out, what);
   NEED(xt, what);
   if (eta > 0) NEED(noise, what);
   const int64_t D = (int64_t)C * HW, DO = (int64_t)ddpm_model_out_channels(C, var_type) * HW;
   #pragma omp parallel for schedule(static) if ((int64_t)N * D > PAR_MIN)
   for (int n = 0; n < N; n++) {
      const int tn = t[n];
      coefs k = coefs_at(s, tn, var_type);
      double ab = s->alphas_cumprod[tn];
      double ab2 = dir < 0 ? s->alphas_cumprod_prev[tn] : s->alphas_cumprod_next[tn];
      double sigma = 0.0;
      if (dir < 0 && tn != 0)   /* DDIM eq. 16; eta = 1 gives sigma^2 = beta~_t */
         sigma = eta * sqrt((1.0 - ab2) / (1.0 - ab)) * sqrt(1.0 - ab / ab2);
      double ceps = sqrt(fmax(1.0 - ab2 - sigma * sigma, 0.0)), cx0 = sqrt(ab2);
      const float *mo = model_out + n * DO, *x = xt + n * D;
      const float *z = noise ? noise + n * D : NULL;
      for (int64_t j = 0; j < D; j++) {
         double x0, lv, dm, dlv;
         double o2 = learned_var(var_type) ? mo[D + j] : 0.0;
         pmv_elem(&k, mean_type, var_type, clip, mo[j], o2, x[j], &x0, &lv, &dm, &dlv);
         /* eps re-derived from the clamped x_0, as improved-diffusion does */
         double eps = (k.sra * x[j] - x0) / k.srm1;
         double xn = cx0 * x0 + ceps * eps;
         if (sigma > 0) xn += sigma * z[j];
         if (x0_out) x0_out[n * D + j] = (float)x0;
         x_out[n * D + j] = (float)xn;
      }
   }
   return DDPM_OK;
}

int ddpm_ddim_step(const ddpm_schedule *s, float *x_prev, float *x0_out,
                   const float *model_out, const float *xt, const int *t,
                   const float *noise, double eta, int N, int C, int HW,
                   int mean_type, int var_type, int clip)
{
   return ddim(s, x_prev, x0_out, model_out, xt, t, noise, eta, -1, N, C, HW,
               mean_type, var_type, clip, "ddim_step");
}

int ddpm_ddim_reverse_step(const ddpm_schedule *s, float *x_next, float *x0_out,
                           const float *model_out, const float *xt, const int *t,
                           int N, int C, int HW, int mean_type, int var_type, int clip)
{
   return ddim(s, x_next, x0_out, model_out, xt, t, NULL, 0.0, +1, N, C, HW,
               mean_type, var_type, clip, "ddim_reverse_step");
}

/* ------------------------------------------------------------------ losses */

double ddpm_loss_simple(float *dmodel_out, const float *model_out, const float *target,
                        int N, int64_t D)
{
   if (!model_out || !target) {
      ddpm_seterr(DDPM_EINVAL, "loss_simple: model_out or target is NULL");
      return NAN;
   }
   if (N < 1 || D < 1) {
      ddpm_seterr(DDPM_EINVAL, "loss_simple: N = %d, D = %lld, both must be >= 1", N, (long long)D);
      return NAN;
   }
   /* eq. 14 with meanflat: mean over the batch of mean over pixels */
   const double scale = 2.0 / ((double)N * (double)D);
   double sum = 0.0, part[CHUNK];
   for (int base = 0; base < N; base += CHUNK) {
      const int nb = N - base < CHUNK ? N - base : CHUNK;
      #pragma omp parallel for schedule(static) if ((int64_t)nb * D > PAR_MIN)
      for (int i = 0; i < nb; i++) {
         const int64_t n = base + i;
         const float *o = model_out + n * D, *y = target + n * D;
         double acc = 0.0;
         for (int64_t j = 0; j < D; j++) {
            double d = (double)o[j] - y[j];
            acc += d * d;
            if (dmodel_out) dmodel_out[n * D + j] = (float)(scale * d);
         }
         part[i] = acc;
      }
      for (int i = 0; i < nb; i++) sum += part[i];
   }
   return sum / ((double)N * (double)D);
}

int ddpm_loss_simple_per_example(float *losses, const float *model_out, const float *target,
                                 int N, int64_t D)
{
   const char *what = "loss_simple_per_example";
   if (N < 1 || D < 1)
      return ddpm_seterr(DDPM_EINVAL, "%s: N = %d, D = %lld, both must be >= 1", what, N, (long long)D);
   NEED(losses, what);
   NEED(model_out, what);
   NEED(target, what);
   #pragma omp parallel for schedule(static) if ((int64_t)N * D > PAR_MIN)
   for (int n = 0; n < N; n++) {
      const float *o = model_out + n * D, *y = target + n * D;
      double acc = 0.0;
      for (int64_t j = 0; j < D; j++) {
         double d = (double)o[j] - y[j];
         acc += d * d;
      }
      losses[n] = (float)(acc / (double)D);
   }
   return DDPM_OK;
}

double ddpm_normal_kl(double m1, double lv1, double m2, double lv2)
{
   double d = m1 - m2;
   return 0.5 * (-1.0 + lv2 - lv1 + exp(lv1 - lv2) + d * d * exp(-lv2));
}

/* The official tanh approximation of the standard normal CDF, and its exact
   derivative (so gradients agree with the value computed). */
#define SQRT_2_OVER_PI 0.79788456080286535588
static double approx_cdf(double z)
{
   return 0.5 * (1.0 + tanh(SQRT_2_OVER_PI * (z + 0.044715 * z * z * z)));
}
static double approx_pdf(double z)
{
   double th = tanh(SQRT_2_OVER_PI * (z + 0.044715 * z * z * z));
   return 0.5 * (1.0 - th * th) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * z * z);
}

double ddpm_discretized_gaussian_log_likelihood(double x, double mu, double log_scale,
                                                double *dmu, double *dlog_scale)
{
   /* eq. 13: the bin [x - 1/255, x + 1/255], edge bins open to +-inf */
   const double inv_s = exp(-log_scale);
   const double zp = inv_s * (x - mu + 1.0 / 255.0), zm = inv_s * (x - mu - 1.0 / 255.0);
   /* dz/dmu = -inv_s, dz/dlog_scale = -z */
   double p, gp = 0.0, gm = 0.0;       /* dp/dzp, dp/dzm */
   if (x < -0.999) {
      p = approx_cdf(zp);
      gp = approx_pdf(zp);
   } else if (x > 0.999) {
      p = 1.0 - approx_cdf(zm);
      gm = -approx_pdf(zm);
   } else {
      p = approx_cdf(zp) - approx_cdf(zm);
      gp = approx_pdf(zp);
      gm = -approx_pdf(zm);
   }
   if (!(p > 1e-12)) {                 /* the floor: log(max(p, 1e-12)) */
      if (dmu) *dmu = 0.0;
      if (dlog_scale) *dlog_scale = 0.0;
      return log(1e-12);
   }
   if (dmu) *dmu = -inv_s * (gp + gm) / p;
   if (dlog_scale) *dlog_scale = -(gp * zp + gm * zm) / p;
   return log(p);
}

int ddpm_prior_bpd(const ddpm_schedule *s, float *out, const float *x0, int N, int64_t D)
{
   int rc = check_flat(s, NULL, 0, D, "prior_bpd");
   if (rc != DDPM_OK) return rc;
   if (N < 0) return ddpm_seterr(DDPM_EINVAL, "prior_bpd: batch size N = %d", N);
   if (N == 0) return DDPM_OK;
   NEED(out, "prior_bpd");
   NEED(x0, "prior_bpd");
   const double sab = s->sqrt_alphas_cumprod[s->T - 1];
   const double lv = s->log_one_minus_alphas_cumprod[s->T - 1];
   for (int n = 0; n < N; n++) {      /* L_T of eq. 5 against N(0, I) */
      double acc = 0.0;
      for (int64_t j = 0; j < D; j++) acc += ddpm_normal_kl(sab * x0[n * D + j], lv, 0.0, 0.0);
      out[n] = (float)(acc / ((double)D * M_LN2));
   }
   return DDPM_OK;
}

/* The VLB term of one example (docs/math.md §3.2), in bits/dim. g scales the gradient
   accumulated into dmo (NULL: none); *mse gets meanflat((x0_hat - x_0)^2). */
static double vb_one(const ddpm_schedule *s, float *dmo, double *mse, const float *mo,
                     const float *x0, const float *xt, int t, double g, int64_t D,
                     int mean_type, int var_type, int clip, int detach_mean)
{
   const coefs k = coefs_at(s, t, var_type);
   const double lv1 = s->posterior_log_variance_clipped[t];   /* true q variance */
   const double scale = g / ((double)D * M_LN2);
   const int learned = learned_var(var_type);
   double acc = 0.0, acc_mse = 0.0;
   for (int64_t j = 0; j < D; j++) {
      double x0h, lv2, dm, dlv, gm, glv;
      double o2 = learned ? mo[D + j] : 0.0;
      double m2 = pmv_elem(&k, mean_type, var_type, clip, mo[j], o2, xt[j], &x0h, &lv2, &dm, &dlv);
      acc_mse += (x0h - x0[j]) * (x0h - x0[j]);
      if (t > 0) {   /* L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) */
         double m1 = k.c1 * x0[j] + k.c2 * xt[j], d = m2 - m1, ev = exp(-lv2);
         acc += 0.5 * (-1.0 + lv2 - lv1 + exp(lv1 - lv2) + d * d * ev);
         gm = d * ev;
         glv = 0.5 * (1.0 - exp(lv1 - lv2) - d * d * ev);
      } else {       /* L_0 = -log p(x_0 | x_1), the discrete decoder (eq. 13) */
         double dmu, dls;
         acc -= ddpm_discretized_gaussian_log_likelihood(x0[j], m2, 0.5 * lv2, &dmu, &dls);
         gm = -dmu;
         glv = -0.5 * dls;
      }
      if (dmo) {
         if (!detach_mean) dmo[j] += (float)(scale * gm * dm);
         if (learned) dmo[D + j] += (float)(scale * glv * dlv);
      }
   }
   if (mse) *mse = acc_mse / (double)D;
   return acc / ((double)D * M_LN2);
}

int ddpm_vb_terms_bpd(const ddpm_schedule *s, float *terms, float *x0_mse, float *dmodel_out,
                      const float *model_out, const float *x0, const float *xt, const int *t,
                      const float *dterms, int N, int C, int HW,
                      int mean_type, int var_type, int clip, int detach_mean)
{
   const char *what = "vb_terms_bpd";
   int rc = check_rev(s, t, N, C, HW, mean_type, var_type, what);
   if (rc != DDPM_OK) return rc;
   if (N == 0) return DDPM_OK;
   NEED(model_out, what);
   NEED(x0, what);
   NEED(xt, what);
   const int64_t D = (int64_t)C * HW, DO = (int64_t)ddpm_model_out_channels(C, var_type) * HW;
   #pragma omp parallel for schedule(static) if ((int64_t)N * D > PAR_MIN)
   for (int n = 0; n < N; n++) {
      double mse, g = dterms ? dterms[n] : 1.0;
      double v = vb_one(s, dmodel_out ? dmodel_out + n * DO : NULL, &mse, model_out + n * DO,
                        x0 + n * D, xt + n * D, t[n], g, D, mean_type, var_type, clip,
                        detach_mean);
      if (terms) terms[n] = (float)v;
      if (x0_mse) x0_mse[n] = (float)mse;
   }
   return DDPM_OK;
}

/* meanflat((out - target)^2) of one example over its first C channels, the
   target chosen by mean_type (eq. 14 and its xstart/xprev/v analogues);
   writes gs * (out - target) into dmo (NULL: none). */
static double mse_one(const ddpm_schedule *s, float *dmo, const float *mo, const float *x0,
                      const float *xt, const float *eps, int t, double gs, int64_t D,
                      int mean_type)
{
   const double sab = s->sqrt_alphas_cumprod[t], s1m = s->sqrt_one_minus_alphas_cumprod[t];
   const double c1 = s->posterior_mean_coef1[t], c2 = s->posterior_mean_coef2[t];
   double acc = 0.0;
   for (int64_t j = 0; j < D; j++) {
      double y;
      switch (mean_type) {
      case DDPM_MEAN_XSTART: y = x0[j]; break;
      case DDPM_MEAN_XPREV:  y = c1 * x0[j] + c2 * xt[j]; break;   /* eq. 7 */
      case DDPM_MEAN_V:      y = sab * eps[j] - s1m * x0[j]; break;
      default:               y = eps[j];
      }
      double d = (double)mo[j] - y;
      acc += d * d;
      if (dmo) dmo[j] = (float)(gs * d);
   }
   return acc / (double)D;
}

int ddpm_training_losses(const ddpm_schedule *s, double *loss, float *losses, float *mse,
                         float *vb, float *dmodel_out, const float *model_out,
                         const float *x0, const float *xt, const float *eps, const int *t,
                         const float *weights, int N, int C, int HW,
                         int mean_type, int var_type, int loss_type)
{
   const char *what = "training_losses";
   int rc = check_rev(s, t, N, C, HW, mean_type, var_type, what);
   if (rc != DDPM_OK) return rc;
   if (loss_type < 0 || loss_type > DDPM_LOSS_RESCALED_KL)
      return ddpm_seterr(DDPM_EINVAL, "%s: loss_type %d is not one of mse, rescaled_mse, kl, "
                         "rescaled_kl", what, loss_type);
   if (N < 1) return ddpm_seterr(DDPM_EINVAL, "%s: batch size N = %d, must be >= 1", what, N);
   NEED(model_out, what);
   NEED(x0, what);
   NEED(xt, what);
   const int is_kl = loss_type == DDPM_LOSS_KL || loss_type == DDPM_LOSS_RESCALED_KL;
   if (!is_kl && (mean_type == DDPM_MEAN_EPS || mean_type == DDPM_MEAN_V)) NEED(eps, what);
   const int64_t D = (int64_t)C * HW, DO = (int64_t)ddpm_model_out_channels(C, var_type) * HW;
   const int learned = learned_var(var_type);
   /* improved-diffusion: RESCALED_KL multiplies by T; RESCALED_MSE scales the
      hybrid vb term by T/1000 (lambda = 0.001 of L_vlb ~ T L_t) */
   const double vb_scale = loss_type == DDPM_LOSS_RESCALED_KL ? (double)s->T
                         : loss_type == DDPM_LOSS_RESCALED_MSE ? s->T / 1000.0 : 1.0;
   if (dmodel_out) memset(dmodel_out, 0, sizeof(float) * (size_t)(N * DO));
   double total = 0.0, part[CHUNK];
   for (int base = 0; base < N; base += CHUNK) {
      const int nb = N - base < CHUNK ? N - base : CHUNK;
      #pragma omp parallel for schedule(static) if ((int64_t)nb * D > PAR_MIN)
      for (int i = 0; i < nb; i++) {
         const int n = base + i;
         const double w = weights ? weights[n] : 1.0, g = w / N;   /* d loss / d losses[n] */
         const float *mo = model_out + n * DO, *a = x0 + n * D, *x = xt + n * D;
         float *dmo = dmodel_out ? dmodel_out + n * DO : NULL;
         double m = 0.0, v = 0.0;
         if (is_kl) {   /* TF loss_type 'kl': the sampled t's term, unclipped */
            v = vb_scale * vb_one(s, dmo, NULL, mo, a, x, t[n], g * vb_scale, D,
                                  mean_type, var_type, 0, 0);
         } else {
            m = mse_one(s, dmo, mo, a, x, eps ? eps + n * D : NULL, t[n], 2.0 * g / (double)D,
                        D, mean_type);
            if (learned)   /* hybrid: vb trains the variance only (mean detached) */
               v = vb_scale * vb_one(s, dmo, NULL, mo, a, x, t[n], g * vb_scale, D,
                                     mean_type, var_type, 0, 1);
         }
         if (losses) losses[n] = (float)(m + v);
         if (mse) mse[n] = (float)m;
         if (vb) vb[n] = (float)v;
         part[i] = w * (m + v);
      }
      for (int i = 0; i < nb; i++) total += part[i];
   }
   if (loss) *loss = total / N;
   return DDPM_OK;
}
