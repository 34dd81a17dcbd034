/*
 * norm.c — GroupNorm forward and backward over NCHW activations.
 *
 * Statistics are per example and per group, over the group's C/G channels
 * times H*W positions, with the biased variance (tf.contrib group_norm and
 * torch.nn.GroupNorm agree on this). Forward saves mean and rstd [N,G] so
 * backward never recomputes them; inference may pass mean = rstd = NULL.
 * gamma / beta may be NULL (read as 1 / 0).
 * The fused variants of kernels.h (GroupNorm + SiLU + dropout in one pass,
 * and their backward) follow the plain ones; both directions share one
 * statistics routine and one backward routine (group_backward).
 * Not here: shape checks (the U-Net and the bindings make them), running
 * statistics, other norms.
 */
#include "ddpm.h"
#include "kernels.h"
#include "vmath.h"

#include <math.h>

/* Below this many floats per call a parallel region costs more than it saves. */
#define PAR_MIN 32768

/* Elements per dropout-mask chunk in the fused loops. */
#define KEEP_CHUNK 256

/* Mean and biased variance of one [M] block in double. Two passes: the block
   is small enough to stay in cache, and E[x^2] - E[x]^2 would lose the
   variance of activations far from 0. */
static void block_moments(const float *x, int64_t M, double *mu_out, double *var_out)
{
   double s = 0;
   #pragma omp simd reduction(+:s)
   for (int64_t i = 0; i < M; i++) s += x[i];
   const double mu = M > 0 ? s / (double)M : 0.0;
   /* the squares in float, from the mean as hi + lo, summed in float per
      256-element chunk (16 terms a vector lane) and in double across:
      converting every term to double cost as much as the rest */
   const float m_hi = (float)mu, m_lo = (float)(mu - (double)m_hi);
   double ss = 0;
   for (int64_t k0 = 0; k0 < M; k0 += KEEP_CHUNK) {
      const int64_t k1 = M - k0 < KEEP_CHUNK ? M : k0 + KEEP_CHUNK;
      float c = 0;
      #pragma omp simd reduction(+:c)
      for (int64_t i = k0; i < k1; i++) {
         const float d = (x[i] - m_hi) - m_lo;
         c = __builtin_fmaf(d, d, c);
      }
      ss += c;
   }
   *mu_out = mu;
   *var_out = M > 0 ? ss / (double)M : 0.0;
}

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
      double mu, var;
      block_moments(x, M, &mu, &var);
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

/* SiLU's derivative at v: s (1 + v e s), s = sigmoid(v), e = exp(-v) (see act.c). */
static inline float silu_grad(float v)
{
   float e = ddpm_vexpf(-v);
   float s = 1.0f / (1.0f + e);
   return s * (1.0f + v * (e * s));
}

#if defined(__AVX512F__)
/* The pre-activation v = ((x - m_hi) - m_lo) * a + b of 16 lanes, k[] the
   four constants broadcast, as the scalar loops compute it. */
static inline __m512 pre16(__m512 x, const __m512 k[4])
{
   return _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(x, k[0]), k[1]), k[2]), k[3]);
}
#endif

/* ys[i] = silu(v), v = ((xs[i] - m_hi) - m_lo) * a + b, for i < len: the
   forward's activation. With AVX-512 on 16 lanes written out (vmath.h),
   the same bits as the scalar loop; whole vectors, then a masked tail. */
static inline void silu_run(float *ys, const float *xs, int len, float m_hi, float m_lo, float a,
                            float b)
{
#if defined(__AVX512F__)
   const __m512 k[4] = { _mm512_set1_ps(m_hi), _mm512_set1_ps(m_lo), _mm512_set1_ps(a),
                         _mm512_set1_ps(b) };
   int i = 0;
   for (; i + 16 <= len; i += 16)
      _mm512_storeu_ps(ys + i, ddpm_vsilu16(pre16(_mm512_loadu_ps(xs + i), k)));
   if (i < len) {
      const __mmask16 t = ddpm_tail16(len - i);
      _mm512_mask_storeu_ps(ys + i, t, ddpm_vsilu16(pre16(_mm512_maskz_loadu_ps(t, xs + i), k)));
   }
#else
   #pragma omp simd
   for (int i = 0; i < len; i++) {
      float v = ((xs[i] - m_hi) - m_lo) * a + b;
      ys[i] = v / (1.0f + ddpm_vexpf(-v));
   }
#endif
}

/* ws[i] = ds[i] * silu'(v), v as silu_run's (ws may be ds): the backward's. */
static inline void silu_grad_run(float *ws, const float *ds, const float *xs, int len,
                                 float m_hi, float m_lo, float a, float b)
{
#if defined(__AVX512F__)
   const __m512 k[4] = { _mm512_set1_ps(m_hi), _mm512_set1_ps(m_lo), _mm512_set1_ps(a),
                         _mm512_set1_ps(b) };
   int i = 0;
   for (; i + 16 <= len; i += 16)
      _mm512_storeu_ps(ws + i, _mm512_mul_ps(_mm512_loadu_ps(ds + i),
                                             ddpm_vsilu_grad16(pre16(_mm512_loadu_ps(xs + i), k))));
   if (i < len) {
      const __mmask16 t = ddpm_tail16(len - i);
      const __m512 g = ddpm_vsilu_grad16(pre16(_mm512_maskz_loadu_ps(t, xs + i), k));
      _mm512_mask_storeu_ps(ws + i, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, ds + i), g));
   }
#else
   #pragma omp simd
   for (int i = 0; i < len; i++) ws[i] = ds[i] * silu_grad(((xs[i] - m_hi) - m_lo) * a + b);
#endif
}

/*
 * The backward of one (example n, group g) block of y = drop(act(gn(x))),
 * the one place the GroupNorm gradient is written. With xhat = (x - mean) *
 * rstd, dn the gradient at the norm's output (dy * keep * act'(v), v the
 * recomputed pre-activation) and dxhat = dn * gamma, over the M elements:
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *   dgamma[c] += sum dn * xhat,   dbeta[c] += sum dn.
 * Both group means come from the per-channel sums of dn and dn * (x - mean),
 * so pass 1 gives every reduction (and writes dn to work when it differs
 * from dy) and pass 2 writes dx = (accumulate ? dx : 0) + add + d in, with
 * the per-channel sums of d in into dsum. The mean is m_hi + m_lo (m_lo = 0
 * for the plain kernel's single float). x, dy, work, dx, add point at the
 * block ([cpg, HW]); dsum at the image's row [C]. work may be NULL when
 * neither SiLU nor dropout is on.
 */
static void group_backward(float *dx, int accumulate, float *dgamma, float *dbeta, float *dsum,
                           float *work, const float *dy, const float *x, const float *add,
                           float m_hi, float m_lo, double rs, const float *gamma,
                           const float *beta, int n, int g, int C, int cpg, int HW, int silu,
                           ddpm_dropout drop)
{
   const float p = drop.p;
   const int64_t M = (int64_t)cpg * HW;
   /* where pass 2 reads the gradient at the norm's output */
   const float *dn = (silu || p > 0.0f) ? work : dy;
   double s_dxhat = 0, s_dxhat_xhat = 0;
   for (int cc = 0; cc < cpg; cc++) {
      const int c = g * cpg + cc;
      const float gm = gamma ? gamma[c] : 1.0f;
      const float a = (float)(rs * gm), b = beta ? beta[c] : 0.0f;
      const float *xc = x + (int64_t)cc * HW;
      const float *dyc = dy + (int64_t)cc * HW;
      float *wc = work ? work + (int64_t)cc * HW : NULL;
      const uint64_t i0 = ((drop.first + (uint64_t)n) * C + c) * (uint64_t)HW;
      double sa = 0, sb = 0;
      for (int k0 = 0; k0 < HW; k0 += KEEP_CHUNK) {
         const int len = HW - k0 < KEEP_CHUNK ? HW - k0 : KEEP_CHUNK;
         const float *xs = xc + k0, *ds = dyc + k0;
         if (p > 0.0f) {
            float keep[KEEP_CHUNK];
            float *ws = wc + k0;
            ddpm_dropout_keep(keep, i0 + k0, len, p, drop.seed);
            #pragma omp simd
            for (int i = 0; i < len; i++) ws[i] = ds[i] * keep[i];
            ds = ws;
         }
         if (silu) {
            float *ws = wc + k0;
            silu_grad_run(ws, ds, xs, len, m_hi, m_lo, a, b);
            ds = ws;
         }
         /* float sums within a chunk (16 terms a lane), double across
            chunks: converting every term to double cost more than the rest */
         float ca = 0, cb = 0;
         #pragma omp simd reduction(+:ca, cb)
         for (int i = 0; i < len; i++) {
            ca += ds[i];
            cb += ds[i] * ((xs[i] - m_hi) - m_lo);
         }
         sa += ca;
         sb += cb;
      }
      if (dbeta) dbeta[c] += (float)sa;
      if (dgamma) dgamma[c] += (float)(sb * rs);
      s_dxhat += gm * sa;
      s_dxhat_xhat += gm * sb * rs;
   }
   if (!dx) return;
   /* dx = dn * (rstd*gamma[c]) + (x - mean) * k1 + k0 */
   const float k1 = (float)(-rs * rs * s_dxhat_xhat / (double)M);
   const float k0 = (float)(-rs * s_dxhat / (double)M);
   for (int cc = 0; cc < cpg; cc++) {
      const int c = g * cpg + cc;
      const float a = (float)(rs * (gamma ? gamma[c] : 1.0f));
      const float *xc = x + (int64_t)cc * HW;
      const float *dnc = dn + (int64_t)cc * HW;
      float *dxc = dx + (int64_t)cc * HW;
      const float *ac = add ? add + (int64_t)cc * HW : NULL;
      if (!dsum) {   /* the same values, without the double sum (its conversions) */
         if (ac && accumulate) {
            #pragma omp simd
            for (int i = 0; i < HW; i++)
               dxc[i] = (dxc[i] + ac[i]) + (dnc[i] * a + ((xc[i] - m_hi) - m_lo) * k1 + k0);
         } else if (ac) {
            #pragma omp simd
            for (int i = 0; i < HW; i++)
               dxc[i] = ac[i] + (dnc[i] * a + ((xc[i] - m_hi) - m_lo) * k1 + k0);
         } else if (accumulate) {
            #pragma omp simd
            for (int i = 0; i < HW; i++) dxc[i] += dnc[i] * a + ((xc[i] - m_hi) - m_lo) * k1 + k0;
         } else {
            #pragma omp simd
            for (int i = 0; i < HW; i++) dxc[i] = dnc[i] * a + ((xc[i] - m_hi) - m_lo) * k1 + k0;
         }
         continue;
      }
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
      dsum[c] = (float)s;
   }
}

/*
 * The parallel loops of both backward kernels are over groups, with examples
 * inside: a thread then owns the dgamma/dbeta (and dsum) entries of its
 * groups, so there are no atomics and the sums do not depend on the thread
 * count. G = 32 in the model keeps every core busy.
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
   for (int g = 0; g < G; g++)
      for (int n = 0; n < N; n++) {
         const int64_t ng = (int64_t)n * G + g;
         group_backward(din ? din + ng * M : NULL, 1, dgamma, dbeta, NULL, NULL,
                        dout + ng * M, in + ng * M, NULL, mean[ng], 0.0f, rstd[ng], gamma,
                        NULL, n, g, C, cpg, HW, 0, DDPM_NO_DROPOUT);
      }
}

/* ------------------------------------------------------------ fused (kernels.h) */

/*
 * Statistics live in mean as hi/lo pairs: mean[2*ng], mean[2*ng + 1] (so
 * mean holds 2*N*G floats), rstd[ng] as a float. The output is computed from
 * these saved floats only, so a recomputation with DDPM_GN_REUSE reproduces
 * the forward's bits exactly.
 */
void ddpm_gn_act_forward(float *out, float *mean, float *rstd, ddpm_gn_stats stats,
                         const float *in, const float *gamma, const float *beta, int N, int C,
                         int HW, int G, float eps, ddpm_act act, ddpm_dropout drop)
{
   const int use_stats = stats == DDPM_GN_REUSE, silu = act == DDPM_ACT_SILU;
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
         double mu, var;
         block_moments(x, M, &mu, &var);
         m_hi = (float)mu;
         m_lo = (float)(mu - (double)m_hi);
         rs = (float)(1.0 / sqrt(var + (double)eps));
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
               silu_run(ys, xs, len, m_hi, m_lo, a, b);
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

/* Asks for the M floats at p in L2. */
static inline void prefetch_block(const float *p, int64_t M)
{
   const char *c = (const char *)p;
   for (int64_t b = 0; b < M * (int64_t)sizeof(float); b += 64) __builtin_prefetch(c + b, 0, 2);
}

/*
 * The backward of drop(act(gn(x))): group_backward on every block, the mean
 * read back as the forward's hi/lo pair.
 */
void ddpm_gn_act_backward(float *din, ddpm_write mode, float *dgamma, float *dbeta, float *dsum,
                          float *work, const float *dout, const float *in, const float *mean,
                          const float *rstd, const float *gamma, const float *beta,
                          const float *add, int N, int C, int HW, int G, ddpm_act act,
                          ddpm_dropout drop)
{
   const int accumulate = mode == DDPM_ACCUMULATE, silu = act == DDPM_ACT_SILU;
   const int cpg = C / G;
   const int64_t M = (int64_t)cpg * HW;
   #pragma omp parallel for schedule(static) if ((int64_t)N * C * HW > PAR_MIN)
   for (int g = 0; g < G; g++)
      for (int n = 0; n < N; n++) {
         const int64_t ng = (int64_t)n * G + g;
         if (n + 1 < N) {   /* the next image's block: G * M floats on, a cold start each */
            const int64_t nx = ng + G;
            prefetch_block(in + nx * M, M);
            prefetch_block(dout + nx * M, M);
            if (din && accumulate) prefetch_block(din + nx * M, M);
            if (add) prefetch_block(add + nx * M, M);
         }
         group_backward(din ? din + ng * M : NULL, accumulate, dgamma, dbeta,
                        dsum ? dsum + (int64_t)n * C : NULL, work + ng * M, dout + ng * M,
                        in + ng * M, add ? add + ng * M : NULL, mean[2 * ng], mean[2 * ng + 1],
                        rstd[ng], gamma, beta, n, g, C, cpg, HW, silu, drop);
      }
}
