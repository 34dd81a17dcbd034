/*
 * norm.c — GroupNorm forward and backward over NCHW activations.
 *
 * Statistics are per example and per group, over the group's C/G channels
 * times H*W positions, with the biased variance (tf.contrib group_norm and
 * torch.nn.GroupNorm agree on this). Forward saves mean and rstd [N,G] so
 * backward never recomputes them; inference may pass mean = rstd = NULL.
 * gamma / beta may be NULL (read as 1 / 0).
 * The fused variants of kernels.h (GroupNorm + SiLU + dropout in one pass,
 * and their backward) follow the plain ones.
 * Not here: shape checks (the U-Net and the bindings make them), running
 * statistics, other norms.
 */
#include "ddpm.h"
#include "kernels.h"
#include "vmath.h"

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

/* ------------------------------------------------------------ fused (kernels.h) */

/* Elements per dropout-mask chunk in the fused loops. */
#define KEEP_CHUNK 256

/* SiLU's derivative at v: s (1 + v e s), s = sigmoid(v), e = exp(-v) (see act.c). */
static inline float silu_grad(float v)
{
   float e = ddpm_vexpf(-v);
   float s = 1.0f / (1.0f + e);
   return s * (1.0f + v * (e * s));
}

/* Mean and rstd of one [M] block, in double (two passes, as above); the mean
   is returned as float hi + lo so x - mean stays exact near the mean. */
static void block_stats(const float *x, int64_t M, float eps, float *m_hi, float *m_lo,
                        float *rs_out)
{
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
   *m_hi = (float)mu;
   *m_lo = (float)(mu - (double)*m_hi);
   *rs_out = (float)(1.0 / sqrt(var + (double)eps));
}

/*
 * Statistics live in mean as hi/lo pairs: mean[2*ng], mean[2*ng + 1] (so
 * mean holds 2*N*G floats), rstd[ng] as a float. The output is computed from
 * these saved floats only, so a recomputation with use_stats = 1 reproduces
 * the forward's bits exactly.
 */
void ddpm_gn_act_forward(float *out, float *mean, float *rstd, int use_stats, const float *in,
                         const float *gamma, const float *beta, int N, int C, int HW, int G,
                         float eps, int silu, ddpm_dropout drop)
{
   const float p = drop.p;
   const uint64_t seed = drop.seed;
   const int cpg = C / G;
   const int64_t M = (int64_t)cpg * HW;
   const int64_t total = (int64_t)N * G;
   #pragma omp parallel for schedule(static) if ((int64_t)N * C * HW > PAR_MIN)
   for (int64_t ng = 0; ng < total; ng++) {
      const float *x = in + ng * M;
      float *y = out + ng * M;
      float m_hi, m_lo, rs;
      if (use_stats) {
         m_hi = mean[2 * ng]; m_lo = mean[2 * ng + 1]; rs = rstd[ng];
      } else {
         block_stats(x, M, eps, &m_hi, &m_lo, &rs);
         mean[2 * ng] = m_hi; mean[2 * ng + 1] = m_lo; rstd[ng] = rs;
      }
      const int g = (int)(ng % G), n = (int)(ng / G);
      for (int cc = 0; cc < cpg; cc++) {
         const int c = g * cpg + cc;
         const float a = (float)((double)rs * (gamma ? gamma[c] : 1.0f));
         const float b = beta ? beta[c] : 0.0f;
         const float *xc = x + (int64_t)cc * HW;
         float *yc = y + (int64_t)cc * HW;
         if (!silu && p <= 0.0f) {
            #pragma omp simd
            for (int i = 0; i < HW; i++) yc[i] = ((xc[i] - m_hi) - m_lo) * a + b;
            continue;
         }
         const uint64_t i0 = ((drop.first + (uint64_t)n) * C + c) * (uint64_t)HW;
         for (int k0 = 0; k0 < HW; k0 += KEEP_CHUNK) {
            const int len = HW - k0 < KEEP_CHUNK ? HW - k0 : KEEP_CHUNK;
            float keep[KEEP_CHUNK];
            if (p > 0.0f) ddpm_dropout_keep(keep, i0 + k0, len, p, seed);
            const float *xs = xc + k0;
            float *ys = yc + k0;
            if (silu) {
               #pragma omp simd
               for (int i = 0; i < len; i++) {
                  float v = ((xs[i] - m_hi) - m_lo) * a + b;
                  ys[i] = v / (1.0f + ddpm_vexpf(-v));
               }
            } else {
               #pragma omp simd
               for (int i = 0; i < len; i++) ys[i] = ((xs[i] - m_hi) - m_lo) * a + b;
            }
            if (p > 0.0f) {
               #pragma omp simd
               for (int i = 0; i < len; i++) ys[i] *= keep[i];
            }
         }
      }
   }
}

/*
 * The backward of drop(act(gn(x))): dn = dout * keep * act'(v) with v the
 * recomputed pre-activation, then the GroupNorm backward of ddpm_groupnorm_
 * backward on dn. Pass 1 writes dn to work and gathers the per-channel sums;
 * pass 2 writes din. Parallel over groups with the images inside, so every
 * dgamma/dbeta/dsum entry has one owner and the bits do not depend on the
 * thread count.
 */
void ddpm_gn_act_backward(float *din, int accumulate, float *dgamma, float *dbeta, float *dsum,
                          float *work, const float *dout, const float *in, const float *mean,
                          const float *rstd, const float *gamma, const float *beta,
                          const float *add, int N, int C, int HW, int G, int silu,
                          ddpm_dropout drop)
{
   const float p = drop.p;
   const uint64_t seed = drop.seed;
   const int cpg = C / G;
   const int64_t M = (int64_t)cpg * HW;
   #pragma omp parallel for schedule(static) if ((int64_t)N * C * HW > PAR_MIN)
   for (int g = 0; g < G; g++) {
      for (int n = 0; n < N; n++) {
         const int64_t ng = (int64_t)n * G + g;
         const float *x = in + ng * M;
         const float *dy = dout + ng * M;
         float *dn = work + ng * M;
         const float m_hi = mean[2 * ng], m_lo = mean[2 * ng + 1];
         const double rs = rstd[ng];
         double s_dxhat = 0, s_dxhat_xhat = 0;
         for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            const float gm = gamma ? gamma[c] : 1.0f;
            const float a = (float)(rs * gm), b = beta ? beta[c] : 0.0f;
            const float *xc = x + (int64_t)cc * HW;
            const float *dyc = dy + (int64_t)cc * HW;
            float *dnc = dn + (int64_t)cc * HW;
            const uint64_t i0 = ((drop.first + (uint64_t)n) * C + c) * (uint64_t)HW;
            double sa = 0, sb = 0;
            for (int k0 = 0; k0 < HW; k0 += KEEP_CHUNK) {
               const int len = HW - k0 < KEEP_CHUNK ? HW - k0 : KEEP_CHUNK;
               const float *xs = xc + k0, *ds = dyc + k0;
               float *ns = dnc + k0;
               if (p > 0.0f) {
                  float keep[KEEP_CHUNK];
                  ddpm_dropout_keep(keep, i0 + k0, len, p, seed);
                  #pragma omp simd
                  for (int i = 0; i < len; i++) ns[i] = ds[i] * keep[i];
                  ds = ns;
               }
               if (silu) {
                  #pragma omp simd
                  for (int i = 0; i < len; i++)
                     ns[i] = ds[i] * silu_grad(((xs[i] - m_hi) - m_lo) * a + b);
               } else if (ns != ds) {
                  #pragma omp simd
                  for (int i = 0; i < len; i++) ns[i] = ds[i];
               }
               #pragma omp simd reduction(+:sa, sb)
               for (int i = 0; i < len; i++) {
                  sa += ns[i];
                  sb += (double)ns[i] * (double)((xs[i] - m_hi) - m_lo);
               }
            }
            if (dbeta) dbeta[c] += (float)sa;
            if (dgamma) dgamma[c] += (float)(sb * rs);
            s_dxhat += gm * sa;
            s_dxhat_xhat += gm * sb * rs;
         }
         if (!din) continue;
         float *dx = din + ng * M;
         const float k1 = (float)(-rs * rs * s_dxhat_xhat / (double)M);
         const float k0 = (float)(-rs * s_dxhat / (double)M);
         for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            const float a = (float)(rs * (gamma ? gamma[c] : 1.0f));
            const float *xc = x + (int64_t)cc * HW;
            const float *dnc = dn + (int64_t)cc * HW;
            float *dxc = dx + (int64_t)cc * HW;
            const float *ac = add ? add + ng * M + (int64_t)cc * HW : NULL;
            double s = 0;
            if (ac) {
               #pragma omp simd reduction(+:s)
               for (int i = 0; i < HW; i++) {
                  float v = dnc[i] * a + ((xc[i] - m_hi) - m_lo) * k1 + k0;
                  s += v;
                  dxc[i] = (accumulate ? dxc[i] + ac[i] : ac[i]) + v;
               }
            } else if (accumulate) {
               #pragma omp simd reduction(+:s)
               for (int i = 0; i < HW; i++) {
                  float v = dnc[i] * a + ((xc[i] - m_hi) - m_lo) * k1 + k0;
                  s += v;
                  dxc[i] += v;
               }
            } else {
               #pragma omp simd reduction(+:s)
               for (int i = 0; i < HW; i++) {
                  float v = dnc[i] * a + ((xc[i] - m_hi) - m_lo) * k1 + k0;
                  s += v;
                  dxc[i] = v;
               }
            }
            if (dsum) dsum[(int64_t)n * C + c] = (float)s;
         }
      }
   }
}
