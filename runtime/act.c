/*
 * act.c — elementwise activations: SiLU and inverted dropout, forward and
 * backward, over flat float arrays.
 *
 * Dropout stores no mask: element i is kept when ddpm_rng_uniform_at(seed, i)
 * >= p, and backward draws the same numbers again from the seed. The result
 * is the same for any thread count. Not here: the choice of seeds (the U-Net
 * gives each dropout layer its own) and any other activation.
 */
#include "ddpm.h"
#include "kernels.h"
#include "vmath.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN 32768

void ddpm_silu_forward(float *out, const float *in, int64_t n)
{
   #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
   for (int64_t i = 0; i < n; i++) {
      float x = in[i];
      out[i] = x / (1.0f + ddpm_vexpf(-x));
   }
}

/* d/dx x*s(x) = s * (1 + x*(1-s)), s = sigmoid(x). With e = exp(-x),
   1 - s = e*s exactly in real arithmetic, and computing it that way avoids
   the cancellation of 1 - s for large x. e*s is formed before the product
   with x so that it cannot overflow when e is huge. */
void ddpm_silu_backward(float *din, const float *dout, const float *in, int64_t n)
{
   if (!din) return;
   #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
   for (int64_t i = 0; i < n; i++) {
      float x = in[i];
      float e = ddpm_vexpf(-x);
      float s = 1.0f / (1.0f + e);
      float es = e * s;
      din[i] += dout[i] * (s * (1.0f + x * es));
   }
}

/* The kept-value scale; 0 when everything is dropped (avoids 0 * inf). */
static float dropout_scale(float p)
{
   return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* u = uniform_at(seed, i) is built from the u32 at i exactly as rng.c does
   ((u >> 8) / 2^24). */
static inline float unit_of(uint32_t u) { return (float)(u >> 8) * (1.0f / 16777216.0f); }

/*
 * Philox4x32-10 for LANES consecutive blocks b0 .. b0+LANES-1 at once, with
 * the same rounds, constants and counter layout as ddpm_philox4x32 (block b
 * is counter (b, 0) and yields draws 4b .. 4b+3). That function lives in
 * another translation unit and does one block, so calling it per block runs
 * scalar, at ~3 ns per element; laid out lane by lane the 32x32->64-bit
 * products vectorise. test_act checks every mask bit against
 * ddpm_rng_uniform_at, so the two cannot drift apart unnoticed.
 */
#define LANES 16

static void philox_lanes(uint32_t out[4 * LANES], uint64_t key, uint64_t b0)
{
   uint32_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
   for (int l = 0; l < LANES; l++) {
      uint64_t b = b0 + (uint64_t)l;
      c0[l] = (uint32_t)b;
      c1[l] = (uint32_t)(b >> 32);
      c2[l] = 0;
      c3[l] = 0;
   }
   uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
   for (int r = 0; r < 10; r++) {
      #pragma omp simd
      for (int l = 0; l < LANES; l++) {
         uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
         uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
         uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
         uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
         c1[l] = (uint32_t)p1;
         c3[l] = (uint32_t)p0;
         c0[l] = n0;
         c2[l] = n2;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
   }
   /* Interleaved back to draw order: out[4l + j] is word j of block b0 + l. */
   for (int l = 0; l < LANES; l++) {
      out[4 * l] = c0[l]; out[4 * l + 1] = c1[l]; out[4 * l + 2] = c2[l]; out[4 * l + 3] = c3[l];
   }
}

/* dst[i] (+)= src[i] * mask_i * scale; add selects +=. Work is split in
   chunks of 4*LANES elements, each from one philox_lanes call. */
static void dropout_apply(float *dst, const float *src, int64_t n, float p,
                          uint64_t seed, int add)
{
   const float scale = dropout_scale(p);
   const int64_t chunk = 4 * LANES;
   const int64_t nc = (n + chunk - 1) / chunk;
   #pragma omp parallel for schedule(static) if (n > PAR_MIN)
   for (int64_t ci = 0; ci < nc; ci++) {
      uint32_t u[4 * LANES];
      philox_lanes(u, seed, (uint64_t)ci * LANES);
      const int64_t i0 = ci * chunk;
      const int m = n - i0 < chunk ? (int)(n - i0) : (int)chunk;
      float keep[4 * LANES];
      for (int e = 0; e < 4 * LANES; e++) keep[e] = unit_of(u[e]) >= p ? scale : 0.0f;
      const float *s = src + i0;
      float *d = dst + i0;
      if (add) {
         for (int e = 0; e < m; e++) d[e] += s[e] * keep[e];
      } else {
         for (int e = 0; e < m; e++) d[e] = s[e] * keep[e];
      }
   }
}

void ddpm_dropout_forward(float *out, const float *in, int64_t n, float p, uint64_t seed)
{
   if (p <= 0.0f) {
      /* A plain copy: exact, and no random draws spent. */
      #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
      for (int64_t i = 0; i < n; i++) out[i] = in[i];
      return;
   }
   dropout_apply(out, in, n, p, seed, 0);
}

void ddpm_dropout_backward(float *din, const float *dout, int64_t n, float p, uint64_t seed)
{
   if (!din) return;
   if (p <= 0.0f) {
      #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
      for (int64_t i = 0; i < n; i++) din[i] += dout[i];
      return;
   }
   dropout_apply(din, dout, n, p, seed, 1);
}

void ddpm_dropout_keep(float *keep, uint64_t i0, int n, float p, uint64_t seed)
{
   const float scale = dropout_scale(p);
   /* draw i is word i % 4 of Philox block i / 4; blocks come LANES at a time */
   uint64_t b = i0 / 4;
   int skip = (int)(i0 % 4), k = 0;
   while (k < n) {
      uint32_t u[4 * LANES];
      philox_lanes(u, seed, b);
      if (skip == 0 && n - k >= 4 * LANES) {   /* a whole chunk: one vector loop */
         float *kp = keep + k;
         #pragma omp simd
         for (int e = 0; e < 4 * LANES; e++) kp[e] = unit_of(u[e]) >= p ? scale : 0.0f;
         k += 4 * LANES;
      } else {
         for (int e = skip; e < 4 * LANES && k < n; e++, k++)
            keep[k] = unit_of(u[e]) >= p ? scale : 0.0f;
      }
      skip = 0;
      b += LANES;
   }
}
