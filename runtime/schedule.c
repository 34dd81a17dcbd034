/*
 * schedule.c — beta schedules and the float64 tables derived from them
 * (docs/math.md §1.1, §1.2), respacing and improved-diffusion's timestep
 * spacing (docs/math.md §5.1).
 *
 * Everything is computed once, in double, as numpy does it in the official
 * code, so the tables match the reference values to ~1e-15. Not here: any
 * batched math on images (diffusion.c).
 */
#include "ddpm.h"
#include "ddpm/diffusion.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NTABLES 14

/* Field names in struct order; the double tables follow one another. */
static const char *const table_names[NTABLES] = {
   "betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "alphas_cumprod_next",
   "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
   "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
   "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
};

#define OFF(f) offsetof(ddpm_schedule, f)
static const size_t table_off[NTABLES] = {
   OFF(betas), OFF(alphas), OFF(alphas_cumprod), OFF(alphas_cumprod_prev),
   OFF(alphas_cumprod_next), OFF(sqrt_alphas_cumprod), OFF(sqrt_one_minus_alphas_cumprod),
   OFF(log_one_minus_alphas_cumprod), OFF(sqrt_recip_alphas_cumprod),
   OFF(sqrt_recipm1_alphas_cumprod), OFF(posterior_variance),
   OFF(posterior_log_variance_clipped), OFF(posterior_mean_coef1), OFF(posterior_mean_coef2),
};
#undef OFF

static double **table_slot(const ddpm_schedule *s, int k)
{
   return (double **)((char *)s + table_off[k]);
}

#define SCHEDULE_NAMES "linear, quad, scaled_linear, const, jsd, warmup10, warmup50, " \
                       "cosine, squaredcos_cap_v2"

/* numpy.linspace(a, b, n)[i]: a + i*step, the last point exactly b. */
static double linspace_at(double a, double b, int n, int i)
{
   if (n == 1) return a;
   if (i == n - 1) return b;
   return a + i * ((b - a) / (n - 1));
}

/* Nichol & Dhariwal's alphabar(u) = cos^2(((u + s)/(1 + s)) pi/2), s = 0.008. */
static double cosine_alphabar(double u)
{
   double c = cos((u + 0.008) / 1.008 * M_PI / 2);
   return c * c;
}

int ddpm_beta_schedule(double *betas, const char *name, int T, double beta_start,
                       double beta_end)
{
   if (!name) return ddpm_seterr(DDPM_EINVAL, "beta schedule: name is NULL (known: "
                                 SCHEDULE_NAMES ")");
   if (T < 1) return ddpm_seterr(DDPM_EINVAL, "beta schedule: T = %d, must be >= 1", T);
   if (!betas) return ddpm_seterr(DDPM_EINVAL, "beta schedule: output is NULL");
   int warm = 0;
   if (!strcmp(name, "linear")) {
      for (int i = 0; i < T; i++) betas[i] = linspace_at(beta_start, beta_end, T, i);
   } else if (!strcmp(name, "quad") || !strcmp(name, "scaled_linear")) {
      if (!(beta_start >= 0 && beta_end >= 0))
         return ddpm_seterr(DDPM_EINVAL, "beta schedule '%s': beta_start %g and beta_end %g "
                            "must be >= 0 (their square roots are interpolated)",
                            name, beta_start, beta_end);
      for (int i = 0; i < T; i++) {
         double b = linspace_at(sqrt(beta_start), sqrt(beta_end), T, i);
         betas[i] = b * b;
      }
   } else if (!strcmp(name, "const")) {
      for (int i = 0; i < T; i++) betas[i] = beta_end;
   } else if (!strcmp(name, "jsd")) {
      /* 1/linspace(T, 1, T): 1/T, 1/(T-1), ..., 1 */
      for (int i = 0; i < T; i++) betas[i] = 1.0 / (double)(T - i);
   } else if (!strcmp(name, "warmup10") || !strcmp(name, "warmup50")) {
      warm = (int)(T * (name[6] == '1' ? 0.1 : 0.5));
      for (int i = 0; i < T; i++)
         betas[i] = i < warm ? linspace_at(beta_start, beta_end, warm, i) : beta_end;
   } else if (!strcmp(name, "cosine") || !strcmp(name, "squaredcos_cap_v2")) {
      /* improved-diffusion betas_for_alpha_bar with max_beta 0.999 */
      for (int i = 0; i < T; i++) {
         double b = 1.0 - cosine_alphabar((double)(i + 1) / T) / cosine_alphabar((double)i / T);
         betas[i] = b < 0.999 ? b : 0.999;
      }
   } else {
      return ddpm_seterr(DDPM_EINVAL, "unknown beta schedule '%s' (known: " SCHEDULE_NAMES ")",
                         name);
   }
   for (int i = 0; i < T; i++)
      if (!(betas[i] > 0 && betas[i] <= 1))
         return ddpm_seterr(DDPM_EINVAL, "beta schedule '%s' (T = %d, beta_start %g, beta_end %g): "
                            "beta[%d] = %g is outside (0, 1]", name, T, beta_start, beta_end,
                            i, betas[i]);
   return DDPM_OK;
}

/* Allocates the struct and its tables; betas left for the caller. */
static ddpm_schedule *schedule_alloc(int T)
{
   ddpm_schedule *s = calloc(1, sizeof *s);
   double *buf = malloc(sizeof(double) * (size_t)NTABLES * (size_t)T);
   int *map = malloc(sizeof(int) * (size_t)T);
   if (!s || !buf || !map) {
      free(s); free(buf); free(map);
      ddpm_seterr(DDPM_ENOMEM, "schedule: out of memory for T = %d", T);
      return NULL;
   }
   s->T = T;
   s->timestep_map = map;
   for (int k = 0; k < NTABLES; k++) *table_slot(s, k) = buf + (size_t)k * T;
   return s;
}

/* Fills every table of docs/math.md §1.2 from s->betas. */
static void schedule_derive(ddpm_schedule *s)
{
   const int T = s->T;
   double ab = 1.0;
   for (int i = 0; i < T; i++) {
      s->alphas[i] = 1.0 - s->betas[i];
      s->alphas_cumprod_prev[i] = ab;
      ab *= s->alphas[i];
      s->alphas_cumprod[i] = ab;
   }
   for (int i = 0; i < T; i++) {
      double a = s->alphas[i], abi = s->alphas_cumprod[i], abp = s->alphas_cumprod_prev[i];
      s->alphas_cumprod_next[i] = i + 1 < T ? s->alphas_cumprod[i + 1] : 0.0;
      s->sqrt_alphas_cumprod[i] = sqrt(abi);
      s->sqrt_one_minus_alphas_cumprod[i] = sqrt(1.0 - abi);
      s->log_one_minus_alphas_cumprod[i] = log(1.0 - abi);
      s->sqrt_recip_alphas_cumprod[i] = sqrt(1.0 / abi);
      s->sqrt_recipm1_alphas_cumprod[i] = sqrt(1.0 / abi - 1.0);
      /* eq. 7: beta~_t = (1 - ab_{t-1}) / (1 - ab_t) beta_t, and the mean
         coefficients of x_0 and x_t */
      s->posterior_variance[i] = s->betas[i] * (1.0 - abp) / (1.0 - abi);
      s->posterior_mean_coef1[i] = s->betas[i] * sqrt(abp) / (1.0 - abi);
      s->posterior_mean_coef2[i] = (1.0 - abp) * sqrt(a) / (1.0 - abi);
   }
   /* beta~_0 = 0: the CIFAR code path (diffusion_utils_2, improved-diffusion)
      uses log beta~_1 at index 0. With T = 1 there is no beta~_1; beta_0 is
      the variance the fixedlarge decoder would use instead. */
   for (int i = 0; i < T; i++)
      s->posterior_log_variance_clipped[i] = log(s->posterior_variance[i]);
   s->posterior_log_variance_clipped[0] = T > 1 ? log(s->posterior_variance[1]) : log(s->betas[0]);
}

static int check_betas(const double *betas, int T)
{
   if (T < 1) return ddpm_seterr(DDPM_EINVAL, "schedule: T = %d, must be >= 1", T);
   if (!betas) return ddpm_seterr(DDPM_EINVAL, "schedule: betas is NULL");
   for (int i = 0; i < T; i++)
      if (!(betas[i] > 0 && betas[i] <= 1))
         return ddpm_seterr(DDPM_EINVAL, "schedule: beta[%d] = %g is outside (0, 1]", i, betas[i]);
   /* 1 - ab_0 would round to 0 and every posterior coefficient divide by it */
   if (1.0 - (1.0 - betas[0]) == 0.0)
      return ddpm_seterr(DDPM_EINVAL, "schedule: beta[0] = %g is too small (1 - beta rounds to 1)",
                         betas[0]);
   return DDPM_OK;
}

ddpm_schedule *ddpm_schedule_from_betas(const double *betas, int T)
{
   if (check_betas(betas, T) != DDPM_OK) return NULL;
   ddpm_schedule *s = schedule_alloc(T);
   if (!s) return NULL;
   memcpy(s->betas, betas, sizeof(double) * (size_t)T);
   for (int i = 0; i < T; i++) s->timestep_map[i] = i;
   schedule_derive(s);
   return s;
}

ddpm_schedule *ddpm_schedule_new(const char *name, int T, double beta_start, double beta_end)
{
   if (T < 1) {
      ddpm_seterr(DDPM_EINVAL, "schedule '%s': T = %d, must be >= 1", name ? name : "(null)", T);
      return NULL;
   }
   double *betas = malloc(sizeof(double) * (size_t)T);
   if (!betas) {
      ddpm_seterr(DDPM_ENOMEM, "schedule: out of memory for T = %d", T);
      return NULL;
   }
   ddpm_schedule *s = NULL;
   if (ddpm_beta_schedule(betas, name, T, beta_start, beta_end) == DDPM_OK)
      s = ddpm_schedule_from_betas(betas, T);
   free(betas);
   return s;
}

ddpm_schedule *ddpm_schedule_respace(const ddpm_schedule *s, const int *use_t, int K)
{
   if (!s || !use_t) {
      ddpm_seterr(DDPM_EINVAL, "respace: schedule or index list is NULL");
      return NULL;
   }
   if (K < 1 || K > s->T) {
      ddpm_seterr(DDPM_EINVAL, "respace: %d indices kept of a %d-step schedule (need 1..%d)",
                  K, s->T, s->T);
      return NULL;
   }
   for (int k = 0; k < K; k++) {
      if (use_t[k] < 0 || use_t[k] >= s->T) {
         ddpm_seterr(DDPM_EINVAL, "respace: index %d at position %d is outside 0..%d",
                     use_t[k], k, s->T - 1);
         return NULL;
      }
      if (k > 0 && use_t[k] <= use_t[k - 1]) {
         ddpm_seterr(DDPM_EINVAL, "respace: indices must increase strictly (%d then %d at "
                     "position %d)", use_t[k - 1], use_t[k], k);
         return NULL;
      }
   }
   double *betas = malloc(sizeof(double) * (size_t)K);
   if (!betas) {
      ddpm_seterr(DDPM_ENOMEM, "respace: out of memory");
      return NULL;
   }
   double last = 1.0;
   for (int k = 0; k < K; k++) {
      double ab = s->alphas_cumprod[use_t[k]];
      betas[k] = 1.0 - ab / last;
      last = ab;
   }
   ddpm_schedule *r = ddpm_schedule_from_betas(betas, K);
   free(betas);
   if (r)
      for (int k = 0; k < K; k++) r->timestep_map[k] = s->timestep_map[use_t[k]];
   return r;
}

void ddpm_schedule_free(ddpm_schedule *s)
{
   if (!s) return;
   free(*table_slot(s, 0));   /* the start of the table block */
   free(s->timestep_map);
   free(s);
}

static int cmp_int(const void *a, const void *b)
{
   int x = *(const int *)a, y = *(const int *)b;
   return (x > y) - (x < y);
}

/* Parses a non-negative decimal integer at *p (advancing it); -1 if none. */
static long parse_count(const char **p)
{
   const char *q = *p;
   while (*q == ' ') q++;
   if (!isdigit((unsigned char)*q)) return -1;
   long v = 0;
   while (isdigit((unsigned char)*q) && v < 100000000) v = v * 10 + (*q++ - '0');
   while (*q == ' ') q++;
   *p = q;
   return v;
}

int ddpm_space_timesteps(int *out, int *K, int T, const char *spec)
{
   if (!out || !K || !spec) return ddpm_seterr(DDPM_EINVAL, "space_timesteps: NULL argument");
   if (T < 1) return ddpm_seterr(DDPM_EINVAL, "space_timesteps: T = %d, must be >= 1", T);
   if (!strncmp(spec, "ddim", 4)) {
      const char *p = spec + 4;
      long want = parse_count(&p);
      if (want < 1 || *p)
         return ddpm_seterr(DDPM_EINVAL, "space_timesteps: '%s' is not ddimN with N >= 1", spec);
      /* improved-diffusion tries strides 1..T-1 */
      for (int k = 1; k < T; k++) {
         if ((T + k - 1) / k == want) {
            int n = 0;
            for (int i = 0; i < T; i += k) out[n++] = i;
            *K = n;
            return DDPM_OK;
         }
      }
      return ddpm_seterr(DDPM_EINVAL, "space_timesteps: cannot make exactly %ld steps of %d "
                         "with an integer stride", want, T);
   }
   long counts[1024];
   int ns = 0;
   const char *p = spec;
   for (;;) {
      long c = parse_count(&p);
      if (c < 0 || ns == 1024)
         return ddpm_seterr(DDPM_EINVAL, "space_timesteps: '%s' is not a comma-separated list of "
                            "step counts or ddimN", spec);
      counts[ns++] = c;
      if (*p == ',') { p++; continue; }
      if (*p) return ddpm_seterr(DDPM_EINVAL, "space_timesteps: unexpected '%c' in '%s'", *p, spec);
      break;
   }
   int size_per = T / ns, extra = T % ns, start = 0, n = 0;
   for (int i = 0; i < ns; i++) {
      int size = size_per + (i < extra ? 1 : 0);
      if (size < counts[i])
         return ddpm_seterr(DDPM_EINVAL, "space_timesteps: cannot divide a section of %d steps "
                            "into %ld", size, counts[i]);
      double stride = counts[i] <= 1 ? 1.0 : (double)(size - 1) / (double)(counts[i] - 1);
      double cur = 0.0;   /* accumulated, as in the Python loop */
      for (long j = 0; j < counts[i]; j++) {
         out[n++] = start + (int)nearbyint(cur);   /* round half to even, as Python's round */
         cur += stride;
      }
      start += size;
   }
   qsort(out, (size_t)n, sizeof *out, cmp_int);
   int m = 0;                          /* a set in the original: drop repeats */
   for (int i = 0; i < n; i++)
      if (m == 0 || out[i] != out[m - 1]) out[m++] = out[i];
   if (m == 0) return ddpm_seterr(DDPM_EINVAL, "space_timesteps: '%s' keeps no steps", spec);
   *K = m;
   return DDPM_OK;
}

const char *ddpm_schedule_array_name(int i)
{
   return i >= 0 && i < NTABLES ? table_names[i] : NULL;
}

const double *ddpm_schedule_array(const ddpm_schedule *s, const char *name)
{
   if (!s || !name) {
      ddpm_seterr(DDPM_EINVAL, "schedule array: NULL argument");
      return NULL;
   }
   for (int k = 0; k < NTABLES; k++)
      if (!strcmp(name, table_names[k])) return *table_slot(s, k);
   ddpm_seterr(DDPM_EINVAL, "schedule has no array '%s' (known: betas, alphas, alphas_cumprod, "
               "alphas_cumprod_prev, alphas_cumprod_next, sqrt_alphas_cumprod, "
               "sqrt_one_minus_alphas_cumprod, log_one_minus_alphas_cumprod, "
               "sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod, posterior_variance, "
               "posterior_log_variance_clipped, posterior_mean_coef1, posterior_mean_coef2)", name);
   return NULL;
}
