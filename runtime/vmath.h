/*
 * vmath.h — a vectorisable expf for the runtime's elementwise loops (SiLU,
 * softmax). Private to runtime/: not part of the public API.
 *
 * glibc only offers vector expf to the compiler under -ffast-math, which the
 * build does not use (it would also loosen every other loop). This version is
 * plain arithmetic, so GCC vectorises any loop that calls it. It is not a
 * libm replacement: no errno, inputs are clamped to [-87, 88] (results stay
 * normal and finite there), NaN propagates. Error is within a few ulp of expf.
 */
#ifndef DDPM_VMATH_H
#define DDPM_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float ddpm_vexpf(float x)
{
   /* Clamp with comparisons rather than fminf/fmaxf: these vectorise to
      max/min instructions and let NaN through. */
   x = x < -87.0f ? -87.0f : x;
   x = x > 88.0f ? 88.0f : x;
   /* x = n ln2 + r, |r| <= ln2/2. Adding 1.5*2^23 rounds x/ln2 to the nearest
      integer without a rounding instruction, and its low mantissa bits then
      hold n itself. */
   const float shifter = 12582912.0f;
   float t = __builtin_fmaf(x, 1.44269504088896341f, shifter);
   float n = t - shifter;
   /* Cody-Waite split of ln2 keeps r accurate: n * ln2_hi is exact. */
   float r = __builtin_fmaf(n, -0.693145751953125f, x);
   r = __builtin_fmaf(n, -1.42860682030941723e-6f, r);
   /* Taylor series of e^r to degree 7: truncation error < 6e-9 on |r| <= 0.35. */
   float p = 1.0f / 5040.0f;
   p = __builtin_fmaf(p, r, 1.0f / 720.0f);
   p = __builtin_fmaf(p, r, 1.0f / 120.0f);
   p = __builtin_fmaf(p, r, 1.0f / 24.0f);
   p = __builtin_fmaf(p, r, 1.0f / 6.0f);
   p = __builtin_fmaf(p, r, 0.5f);
   p = __builtin_fmaf(p, r, 1.0f);
   p = __builtin_fmaf(p, r, 1.0f);
   /* 2^n from n's bits: n is in [-126, 127] after the clamp, a normal float.
      Unsigned, so a NaN's garbage bits shift without undefined behaviour
      (the NaN in p carries through anyway). */
   uint32_t ti, bits;
   memcpy(&ti, &t, sizeof ti);
   bits = (ti - 0x4B400000u + 127u) << 23;
   float scale;
   memcpy(&scale, &bits, sizeof scale);
   return p * scale;
}

#endif /* DDPM_VMATH_H */
