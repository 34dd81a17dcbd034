/*
 * embed.c — the sinusoidal timestep embedding of the official DDPM
 * (diffusers get_timestep_embedding with flip_sin_to_cos = false,
 * downscale_freq_shift = 1): out[n] = [sin(t f_0..f_{h-1}), cos(t f_0..f_{h-1})],
 * f_i = exp(-ln(10000) i / (h - 1)), h = dim / 2, a zero column last when dim
 * is odd.
 *
 * The checkpoint was trained on what PyTorch computes, so the rounding follows
 * PyTorch's float32 steps: exponent = (float)(-ln 1e4) * i, then / (h - 1),
 * then exp, then t * f, each rounded to float32; only sin, cos and exp are
 * evaluated in double and rounded once, which agrees with PyTorch's float
 * kernels to about an ulp. (The TF original multiplies i by -ln(1e4)/(h-1)
 * instead; the two differ in the last bit of some frequencies.) Not here: the
 * two dense layers that follow (linear.c, driven by the U-Net).
 */
#include "ddpm.h"

#include <math.h>

void ddpm_timestep_embedding(float *out, const float *t, int N, int dim)
{
   const int half = dim / 2;
   const float neg_log_period = (float)-log(10000.0);
   for (int n = 0; n < N; n++) {
      float *row = out + (int64_t)n * dim;
      for (int i = 0; i < half; i++) {
         /* i = 0 is frequency 1; stating it also avoids 0/0 when half = 1. */
         float e = 0.0f;
         if (i > 0) {
            e = neg_log_period * (float)i;
            e = e / (float)(half - 1);
         }
         const float freq = (float)exp((double)e);
         const float arg = t[n] * freq;
         row[i] = (float)sin((double)arg);
         row[half + i] = (float)cos((double)arg);
      }
      if (dim % 2) row[dim - 1] = 0.0f;
   }
}
