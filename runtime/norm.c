/*
 * norm.c — GroupNorm forward and backward over NCHW activations.
 *
 * Statistics are per example and per group, over the group's C/G channels
 * times H*W positions, with the biased variance (tf.contrib group_norm and
 * torch.nn.GroupNorm agree on this). Forward saves mean and rstd [N,G] so
 * backward never recomputes them; inference may pass mean = rstd = NULL.
 * gamma / beta may be NULL (read as 1 / 0).
 * Not here: shape checks (the U-Net and the bindings make them), running
 * statistics, other norms.
 */
#include "ddpm.h"

#include <math.h>

/* Below this many floats per call a parallel region costs more than it saves. */
#define PAR_MIN 32768

void ddpm_groupnorm_forward(float *out, float *mean, float *rstd, const float *in,
                            const float *gamma, const float *beta,
                            int N, int C, int HW, int G, float eps)
{
   const int cpg = C / G;
   const int64_t M = (int64_t)cpg * HW;   /* elements per (example, group) */
   const int64_t total = (int64_t)N * G;
   #pragma omp parallel for schedule(static) if ((int64_t)N * C * HW > PAR_MIN)
   for (int64_t ng = 0; ng < total; ng++) {
      /* A group's channels are adjacent in NCHW: one contiguous block. */
      const float *x = in + ng * M;   /* [cpg, HW] */
      float *y = out + ng * M;
      /* Two passes in double: the block is small enough to stay in cache, and
         E[x^2] - E[x]^2 would lose the variance of activations far from 0. */
      double s = 0;
      #pragma omp simd reduction(+:s)
      for (int64_t i = 0; i < M; i++) s += x[i];
      const double mu = M > 0 ? s / (double)M : 0.0;
      double ss = 0;
      #pragma omp simd reduction(+:ss)
      for (int64_t i = 0; i < M; i++) {
         double d = (double)x[i] - mu;
         ss += d * d;
      }
      const double var = M > 0 ? ss / (double)M : 0.0;
      const double rs = 1.0 / sqrt(var + (double)eps);
      if (mean) mean[ng] = (float)mu;
      if (rstd) rstd[ng] = (float)rs;
      const int g = (int)(ng % G);
      /* mean as float hi + lo: x - hi is exact near the mean, so the output
         keeps its precision even when |mean| >> std. */
      const float m_hi = (float)mu, m_lo = (float)(mu - (double)m_hi);
      for (int cc = 0; cc < cpg; cc++) {
         const int c = g * cpg + cc;
         const float a = (float)(rs * (gamma ? gamma[c] : 1.0f));
         const float b = beta ? beta[c] : 0.0f;
         const float *xc = x + (int64_t)cc * HW;
         float *yc = y + (int64_t)cc * HW;
         /* (x - m) first: x*a + (b - m*a) would cancel when |m| >> std. */
         #pragma omp simd
         for (int i = 0; i < HW; i++) yc[i] = ((xc[i] - m_hi) - m_lo) * a + b;
      }
   }
}

/*
 * With xhat = (x - mean) * rstd and dxhat = dy * gamma, over the M elements
 * of a group:
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *   dgamma[c] += sum dy * xhat,   dbeta[c] += sum dy.
 * Both group means come from the per-channel sums of dy and dy * (x - mean),
 * so one pass over the block gives every reduction and a second writes dx.
 *
 * The parallel loop is over groups, with examples inside: a thread then owns
 * the dgamma/dbeta entries of its groups, so there are no atomics and the sums
 * do not depend on the thread count. G = 32 in the model keeps every core busy.
 */
void ddpm_groupnorm_backward(float *din, float *dgamma, float *dbeta,
                             const float *dout, const float *in,
                             const float *mean, const float *rstd, const float *gamma,
                             int N, int C, int HW, int G)
{
   if (!din && !dgamma && !dbeta) return;
   const int cpg = C / G;
   const int64_t M = (int64_t)cpg * HW;
   #pragma omp parallel for schedule(static) if ((int64_t)N * C * HW > PAR_MIN)
   for (int g = 0; g < G; g++) {
      for (int n = 0; n < N; n++) {
         const int64_t ng = (int64_t)n * G + g;
         const float *x = in + ng * M;    /* [cpg, HW] */
         const float *dy = dout + ng * M;
         const float m = mean[ng];
         const double rs = rstd[ng];
         double s_dxhat = 0, s_dxhat_xhat = 0;
         for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            const float *xc = x + (int64_t)cc * HW;
            const float *dyc = dy + (int64_t)cc * HW;
            double a = 0, b = 0;
            #pragma omp simd reduction(+:a, b)
            for (int i = 0; i < HW; i++) {
               a += dyc[i];
               b += (double)dyc[i] * ((double)xc[i] - m);
            }
            if (dbeta) dbeta[c] += (float)a;
            if (dgamma) dgamma[c] += (float)(b * rs);
            const double gm = gamma ? gamma[c] : 1.0;
            s_dxhat += gm * a;
            s_dxhat_xhat += gm * b * rs;
         }
         if (!din) continue;
         float *dx = din + ng * M;
         /* dx = dy * (rstd*gamma[c]) + (x - mean) * k1 + k0 */
         const float k1 = (float)(-rs * rs * s_dxhat_xhat / (double)M);
         const float k0 = (float)(-rs * s_dxhat / (double)M);
         for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            const float a = (float)(rs * (gamma ? gamma[c] : 1.0f));
            const float *xc = x + (int64_t)cc * HW;
            const float *dyc = dy + (int64_t)cc * HW;
            float *dxc = dx + (int64_t)cc * HW;
            #pragma omp simd
            for (int i = 0; i < HW; i++) dxc[i] += dyc[i] * a + (xc[i] - m) * k1 + k0;
         }
      }
   }
}
