/*
 * inception_score.c — the Inception Score of a set of logits (inception.h),
 * in double, as the original code computes it: per split, exp of the mean
 * KL divergence between each image's class distribution and the split's
 * marginal; the mean and standard deviation over the splits.
 */
#include "ddpm.h"
#include "ddpm/inception.h"

#include <math.h>
#include <stdlib.h>


int ddpm_inception_score(double *mean, double *std, const float *logits, int64_t N, int K,
                         int splits)
{
   if (K < 2 || splits < 1 || N < splits)
      return ddpm_seterr(DDPM_EINVAL, "inception score: %lld images in %d splits of %d classes "
                         "(need at least one image per split)", (long long)N, splits, K);
   double *p = malloc((size_t)K * 2 * sizeof *p), *py = p + K;
   if (!p) return ddpm_seterr(DDPM_ENOMEM, "inception score: out of memory");
   double s1 = 0, s2 = 0;
   int rc = DDPM_OK;
   for (int k = 0; k < splits && rc == DDPM_OK; k++) {
      const int64_t a = N * k / splits, b = N * (k + 1) / splits;
      /* p(y) of the split, then the mean KL(p(y|x) || p(y)) over its images:
         two passes over the logits, the softmax in double with the max subtracted */
      for (int j = 0; j < K; j++) py[j] = 0;
      for (int pass = 0; pass < 2 && rc == DDPM_OK; pass++) {
         double kl = 0;
         for (int64_t i = a; i < b; i++) {
            const float *l = logits + i * K;
            double mx = l[0], z = 0;
            for (int j = 1; j < K; j++) mx = l[j] > mx ? l[j] : mx;
            if (!isfinite(mx)) {
               rc = ddpm_seterr(DDPM_EINVAL, "inception score: logits of image %lld are not finite",
                                (long long)i + 1);
               break;
            }
            for (int j = 0; j < K; j++) z += (p[j] = exp(l[j] - mx));
            for (int j = 0; j < K; j++) {
               p[j] /= z;
               if (pass == 0) py[j] += p[j];
               else if (p[j] > 0) kl += p[j] * (log(p[j]) - log(py[j]));
            }
         }
         if (pass == 0) for (int j = 0; j < K; j++) py[j] /= (double)(b - a);
         else {
            const double is = exp(kl / (double)(b - a));
            s1 += is;
            s2 += is * is;
         }
      }
   }
   free(p);
   if (rc != DDPM_OK) return rc;
   *mean = s1 / splits;
   const double var = s2 / splits - *mean * *mean;
   *std = var > 0 ? sqrt(var) : 0;   /* numpy's np.std: over the splits, ddof 0 */
   return DDPM_OK;
}
