/*
 * ddpm/diffusion.h — the diffusion core of ddpmlua: beta schedules and their
 * derived tables (schedule.c), and the batched forward/reverse-process math,
 * ancestral and DDIM steps and the losses (diffusion.c), following Ho, Jain,
 * Abbeel, "Denoising Diffusion Probabilistic Models" (2020) as the official
 * code implements it (docs/math.md §1-§5).
 *
 * Not here: the network (unet.c), the random numbers (rng.c: callers draw eps
 * and noise themselves, so tests and resumed runs control them), loops over t
 * (the Lua library runs the sampling and NLL loops around the network).
 *
 * Conventions
 *   - t is the CODE index 0..T-1 everywhere (paper step t = code index + 1),
 *     one per example: t[N]. Out-of-range t is an error (DDPM_EINVAL).
 *   - Schedule tables are float64; each batched op reads the coefficients of
 *     t[n] in double, computes each element in double and stores float32.
 *   - Images are float32 NCHW, contiguous. D = C*H*W per example, HW = H*W.
 *   - Outputs may alias inputs of the same shape (every op is elementwise per
 *     example), so x = step(x) in place is fine.
 *   - Fallible calls return DDPM_OK or an error code with ddpm_errmsg() set;
 *     constructors return NULL with the message set.
 */
#ifndef DDPM_DIFFUSION_H
#define DDPM_DIFFUSION_H

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ schedule */

/* A T-step process with every derived table of docs/math.md §1.2, all float64 [T],
   in one allocation owned by the schedule. Read-only after construction. */
typedef struct ddpm_schedule {
   int T;
   /* [T] the timestep the network is fed for code index i: i itself, or the
      original index when the schedule was respaced (docs/math.md §5.1). */
   int    *timestep_map;
   double *betas;                          /* beta_i                          */
   double *alphas;                         /* a_i = 1 - beta_i                */
   double *alphas_cumprod;                 /* ab_i = prod_{k<=i} a_k (eq. 4)  */
   double *alphas_cumprod_prev;            /* ab_{i-1}, 1 at i = 0            */
   double *alphas_cumprod_next;            /* ab_{i+1}, 0 at i = T-1          */
   double *sqrt_alphas_cumprod;
   double *sqrt_one_minus_alphas_cumprod;
   double *log_one_minus_alphas_cumprod;
   double *sqrt_recip_alphas_cumprod;      /* sqrt(1/ab_i)                    */
   double *sqrt_recipm1_alphas_cumprod;    /* sqrt(1/ab_i - 1)                */
   double *posterior_variance;             /* beta~_i (eq. 7), 0 at i = 0     */
   double *posterior_log_variance_clipped; /* log beta~_i, log beta~_1 at i=0 */
   double *posterior_mean_coef1;           /* of x_0 in mu~ (eq. 7)           */
   double *posterior_mean_coef2;           /* of x_t in mu~ (eq. 7)           */
} ddpm_schedule;

/* The official get_beta_schedule (docs/math.md §1.1) into betas[T]. Names: linear
   (paper; beta_start..beta_end), quad (alias scaled_linear), const
   (beta_end), jsd (1/T, 1/(T-1), ..., 1), warmup10, warmup50, cosine
   (Nichol & Dhariwal, s = 0.008, betas capped at 0.999; alias
   squaredcos_cap_v2; beta_start/end ignored). DDPM_EINVAL on an unknown name
   (the message lists the known ones), T < 1, or betas outside (0, 1]. */
int ddpm_beta_schedule(double *betas, const char *name, int T, double beta_start,
                       double beta_end);

/* New schedule from a named beta schedule; NULL + message on bad arguments. */
ddpm_schedule *ddpm_schedule_new(const char *name, int T, double beta_start, double beta_end);
/* New schedule from T given betas (copied), each in (0, 1]. */
ddpm_schedule *ddpm_schedule_from_betas(const double *betas, int T);
/* Respacing (docs/math.md §5.1): the K-step process over the kept code indices
   use_t[K] (strictly increasing, in [0, T)), with
   beta'_k = 1 - ab[use_t[k]] / ab[use_t[k-1]] (ab[use_t[-1]] := 1).
   Its timestep_map holds s->timestep_map[use_t[k]]. */
ddpm_schedule *ddpm_schedule_respace(const ddpm_schedule *s, const int *use_t, int K);
void ddpm_schedule_free(ddpm_schedule *s);   /* NULL is fine */

/* improved-diffusion's space_timesteps(T, spec) (docs/math.md §5.1): "N", "N1,N2,..."
   (equal sections, evenly strided, Python rounding) or "ddimN" (the integer
   stride giving exactly N steps). Writes the sorted indices to out (room for
   T) and their count to *K. */
int ddpm_space_timesteps(int *out, int *K, int T, const char *spec);

/* A table by its field name ("betas", "alphas_cumprod", ...), or NULL and a
   message listing the names. */
const double *ddpm_schedule_array(const ddpm_schedule *s, const char *name);
/* The i-th table name (0-based), NULL past the last; for listing. */
const char *ddpm_schedule_array_name(int i);

/* ------------------------------------------------------------------ model kinds */

/* What the network's first C output channels predict (docs/math.md §2.1). */
typedef enum ddpm_mean_type {
   DDPM_MEAN_EPS = 0,    /* eps (paper default, eq. 11)                 */
   DDPM_MEAN_XSTART,     /* x_0                                         */
   DDPM_MEAN_XPREV,      /* mu itself (x_{t-1} mean)                    */
   DDPM_MEAN_V           /* v = sqrt(ab) eps - sqrt(1-ab) x_0 (not paper) */
} ddpm_mean_type;

/* The reverse-process variance (docs/math.md §2.2). LEARNED and LEARNED_RANGE read
   channels C..2C-1 of a 2C-channel network output. */
typedef enum ddpm_var_type {
   DDPM_VAR_FIXEDLARGE = 0,  /* sigma^2 = beta_t, log beta~_1 at t = 0     */
   DDPM_VAR_FIXEDSMALL,      /* sigma^2 = beta~_t (clipped log at t = 0)   */
   DDPM_VAR_LEARNED,         /* log sigma^2 = out2                         */
   DDPM_VAR_LEARNED_RANGE    /* log beta~_t .. log beta_t (Nichol & Dhariwal) */
} ddpm_var_type;

/* Training objective (docs/math.md §3.1, §3.4). */
typedef enum ddpm_loss_type {
   DDPM_LOSS_MSE = 0,        /* L_simple (+ vb on learned variance, hybrid) */
   DDPM_LOSS_RESCALED_MSE,   /* same, vb scaled by T/1000                   */
   DDPM_LOSS_KL,             /* the single-t VLB term in bits/dim           */
   DDPM_LOSS_RESCALED_KL     /* T times that                                */
} ddpm_loss_type;

/* Name <-> enum ("eps", "xstart", "xprev", "v"; "fixedlarge", "fixedsmall",
   "learned", "learned_range"; "mse", "rescaled_mse", "kl", "rescaled_kl").
   The parsers return -1 and set a message listing the names. */
int ddpm_mean_type_parse(const char *name);
int ddpm_var_type_parse(const char *name);
int ddpm_loss_type_parse(const char *name);
const char *ddpm_mean_type_name(int mean_type);   /* "?" when out of range */
const char *ddpm_var_type_name(int var_type);
const char *ddpm_loss_type_name(int loss_type);
/* Channels the network must output for C image channels: C, or 2C for the
   learned variances. */
int ddpm_model_out_channels(int C, int var_type);

/* ------------------------------------------------------------------ forward process */
/* x0, eps, xt, out: [N, D]; t [N]. */

/* x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps (eq. 4 reparameterised, Alg. 1). */
int ddpm_q_sample(const ddpm_schedule *s, float *out, const float *x0, const float *eps,
                  const int *t, int N, int64_t D);
/* q(x_t | x_0): mean [N,D], variance 1 - ab_t and its log per example [N]
   (any output may be NULL). */
int ddpm_q_mean_variance(const ddpm_schedule *s, float *mean, float *var, float *logvar,
                         const float *x0, const int *t, int N, int64_t D);
/* q(x_{t-1} | x_t, x_0) (eqs. 6-7): mean = c1_t x_0 + c2_t x_t [N,D];
   var = beta~_t, logvar = clipped log beta~_t per example [N]. Any output may
   be NULL. */
int ddpm_q_posterior(const ddpm_schedule *s, float *mean, float *var, float *logvar,
                     const float *x0, const float *xt, const int *t, int N, int64_t D);

/* x_0 = sqrt(1/ab_t) x_t - sqrt(1/ab_t - 1) eps (eq. 15, inverting eq. 4). */
int ddpm_predict_x0_from_eps(const ddpm_schedule *s, float *out, const float *xt,
                             const float *eps, const int *t, int N, int64_t D);
/* eps = (sqrt(1/ab_t) x_t - x_0) / sqrt(1/ab_t - 1) (the inverse of the above). */
int ddpm_predict_eps_from_x0(const ddpm_schedule *s, float *out, const float *xt,
                             const float *x0, const int *t, int N, int64_t D);
/* x_0 = (mu - c2_t x_t) / c1_t, inverting the posterior mean (eq. 7). */
int ddpm_predict_x0_from_xprev(const ddpm_schedule *s, float *out, const float *xt,
                               const float *xprev, const int *t, int N, int64_t D);
/* x_0 = sqrt(ab_t) x_t - sqrt(1 - ab_t) v. */
int ddpm_predict_x0_from_v(const ddpm_schedule *s, float *out, const float *xt,
                           const float *v, const int *t, int N, int64_t D);
/* The v target: sqrt(ab_t) eps - sqrt(1 - ab_t) x_0. */
int ddpm_v_target(const ddpm_schedule *s, float *out, const float *x0, const float *eps,
                  const int *t, int N, int64_t D);

/* ------------------------------------------------------------------ reverse process */
/* model_out: [N, Cout, HW] with Cout = ddpm_model_out_channels(C, var_type);
   xt, mean, logvar, x0_out, noise, x_prev: [N, C, HW]; t [N].
   clip != 0 clamps the predicted x_0 to [-1, 1] before it forms the mean
   (eps, xstart, v); an xprev prediction is the mean itself (only x0_out is
   clamped). */

/* p(x_{t-1} | x_t) = N(mean, exp(logvar)) (docs/math.md §2). Any output may be NULL;
   logvar is elementwise even for the fixed variances. */
int ddpm_p_mean_variance(const ddpm_schedule *s, float *mean, float *logvar, float *x0_out,
                         const float *model_out, const float *xt, const int *t,
                         int N, int C, int HW, int mean_type, int var_type, int clip);

/* One ancestral step (Alg. 2 line 4, docs/math.md §4.2):
   x_prev = mean + [t != 0] exp(0.5 logvar) noise. noise [N,C,HW] is the
   caller's N(0, I) draw (read only where t != 0). x0_out (may be NULL)
   receives the (clamped) predicted x_0 for progressive sampling. x_prev may
   alias xt. */
int ddpm_p_sample_step(const ddpm_schedule *s, float *x_prev, float *x0_out,
                       const float *model_out, const float *xt, const int *t,
                       const float *noise, int N, int C, int HW,
                       int mean_type, int var_type, int clip);

/* One DDIM step (Song et al. 2021; docs/math.md §5.2) on this (typically respaced)
   schedule: eps is re-derived from the (clamped) x_0 prediction;
   sigma = eta sqrt((1-ab_prev)/(1-ab)) sqrt(1 - ab/ab_prev);
   x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + [t != 0] sigma noise.
   noise may be NULL when eta == 0. var_type only tells Cout. */
int ddpm_ddim_step(const ddpm_schedule *s, float *x_prev, float *x0_out,
                   const float *model_out, const float *xt, const int *t,
                   const float *noise, double eta, int N, int C, int HW,
                   int mean_type, int var_type, int clip);
/* The deterministic DDIM encoder step t -> t+1:
   x_next = sqrt(ab_next) x0 + sqrt(1 - ab_next) eps. */
int ddpm_ddim_reverse_step(const ddpm_schedule *s, float *x_next, float *x0_out,
                           const float *model_out, const float *xt, const int *t,
                           int N, int C, int HW, int mean_type, int var_type, int clip);

/* ------------------------------------------------------------------ losses */

/* L_simple (eq. 14, Alg. 1): the batch mean of meanflat((out - target)^2)
   over [N, D]. Writes (not accumulates) its gradient w.r.t. model_out,
   2 (out - target) / (N D), into dmodel_out unless NULL. Returns NAN with a
   message on bad sizes or NULL inputs. */
double ddpm_loss_simple(float *dmodel_out, const float *model_out, const float *target,
                        int N, int64_t D);
/* losses[n] = meanflat((out_n - target_n)^2), for logging by t. */
int ddpm_loss_simple_per_example(float *losses, const float *model_out, const float *target,
                                 int N, int64_t D);

/* KL(N(m1, e^lv1) || N(m2, e^lv2)) in nats, elementwise (docs/math.md §3.2). */
double ddpm_normal_kl(double m1, double lv1, double m2, double lv2);
/* log of the probability the discretised Gaussian decoder (eq. 13; docs/math.md §3.2)
   with mean mu and log standard deviation log_scale gives to the 8-bit bin
   of x in [-1, 1]; edge bins extend to -inf/+inf. dmu, dlog_scale (may be
   NULL) receive its derivatives (0 where the 1e-12 floor is active). */
double ddpm_discretized_gaussian_log_likelihood(double x, double mu, double log_scale,
                                                double *dmu, double *dlog_scale);

/* Prior term L_T (eq. 5) per example in bits/dim:
   meanflat(KL(q(x_T | x_0) || N(0, I))) / ln 2. x0 [N, D]. */
int ddpm_prior_bpd(const ddpm_schedule *s, float *out, const float *x0, int N, int64_t D);

/* The per-t VLB term of eq. 5 in bits/dim (docs/math.md §3.2), terms[N]:
   t >= 1: meanflat(KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))) / ln 2;
   t == 0: -meanflat(log decoder likelihood of x_0) / ln 2.
   With dmodel_out non-NULL, ACCUMULATES dterms[n] * d terms[n] / d model_out
   (dterms NULL = 1 each). detach_mean != 0 passes no gradient to the mean
   channels (the hybrid loss of improved-diffusion). x0_mse (may be NULL)
   gets meanflat((x0_hat - x0)^2) per example, as calc_bpd_loop records. */
int ddpm_vb_terms_bpd(const ddpm_schedule *s, float *terms, float *x0_mse, float *dmodel_out,
                      const float *model_out, const float *x0, const float *xt, const int *t,
                      const float *dterms, int N, int C, int HW,
                      int mean_type, int var_type, int clip, int detach_mean);

/* The whole training objective at the sampled t (Alg. 1; docs/math.md §3.1, §3.4):
   MSE types: mse = meanflat((target - out[:, :C])^2), target = eps, x_0,
   the true posterior mean or v by mean_type; with a learned variance add
   vb = ddpm_vb_terms_bpd on the detached mean, unclipped (x T/1000 for
   RESCALED_MSE). KL types: the unclipped vb term (x T for RESCALED_KL).
   losses[n] = mse + vb; *loss = mean_n weights[n] losses[n] (weights NULL =
   1: the importance-sampling weights of docs/math.md §3.4). mse, vb (may be NULL)
   receive the parts; dmodel_out (may be NULL) is WRITTEN with d *loss /
   d model_out. eps is the noise that made xt. */
int ddpm_training_losses(const ddpm_schedule *s, double *loss, float *losses, float *mse,
                         float *vb, float *dmodel_out, const float *model_out,
                         const float *x0, const float *xt, const float *eps, const int *t,
                         const float *weights, int N, int C, int HW,
                         int mean_type, int var_type, int loss_type);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_DIFFUSION_H */
