/*
 * rng.c — Philox4x32-10 counter-based random numbers (Salmon et al., SC'11).
 *
 * Draw i of a stream is a pure function of (seed, i): kernels can generate any
 * slice in any thread and get the same numbers for any thread count, and the
 * whole generator state is (seed, counter), which checkpoints store exactly.
 * Not a cryptographic generator.
 */
#include "ddpm.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void ddpm_philox4x32(uint32_t out[4], uint64_t key, uint64_t ctr_lo, uint64_t ctr_hi)
{
   uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
   uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
   uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
   for (int r = 0; r < 10; r++) {
      uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
      uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
      uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
      uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
      c1 = (uint32_t)p1;
      c3 = (uint32_t)p0;
      c0 = n0;
      c2 = n2;
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
   }
   out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

uint32_t ddpm_rng_u32_at(uint64_t seed, uint64_t i)
{
   uint32_t b[4];
   ddpm_philox4x32(b, seed, i >> 2, 0);
   return b[i & 3];
}

/* 24 random bits -> [0,1). */
static inline float u32_to_unit(uint32_t u) { return (float)(u >> 8) * (1.0f / 16777216.0f); }

float ddpm_rng_uniform_at(uint64_t seed, uint64_t i)
{
   return u32_to_unit(ddpm_rng_u32_at(seed, i));
}

void ddpm_rng_init(ddpm_rng *r, uint64_t seed)
{
   r->seed = seed;
   r->counter = 0;
}

void ddpm_rng_uniform(ddpm_rng *r, float *out, int64_t n)
{
   uint64_t c = r->counter;
   #pragma omp parallel for schedule(static) if (n > 65536)
   for (int64_t j = 0; j < n; j++) out[j] = ddpm_rng_uniform_at(r->seed, c + (uint64_t)j);
   r->counter += (uint64_t)n;
}

/* Box-Muller: draws (2j, 2j+1) make normal j. u1 in (0,1] avoids log(0). */
void ddpm_rng_normal(ddpm_rng *r, float *out, int64_t n)
{
   uint64_t c = r->counter, seed = r->seed;
   #pragma omp parallel for schedule(static) if (n > 32768)
   for (int64_t j = 0; j < n; j++) {
      uint64_t i = c + 2 * (uint64_t)j;
      uint32_t b[4];
      ddpm_philox4x32(b, seed, i >> 2, 0);
      uint32_t a = b[i & 3], bb = b[(i + 1) & 3];
      if (((i + 1) & 3) == 0) bb = ddpm_rng_u32_at(seed, i + 1);   /* pair spans blocks */
      double u1 = ((double)(a >> 8) + 1.0) * (1.0 / 16777216.0);
      double u2 = (double)(bb >> 8) * (1.0 / 16777216.0);
      out[j] = (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
   }
   r->counter += 2 * (uint64_t)n;
}

uint32_t ddpm_rng_below(ddpm_rng *r, uint32_t n)
{
   /* Lemire-style rejection keeps it unbiased. */
   uint32_t limit = (uint32_t)(-n) % n;
   for (;;) {
      uint32_t u = ddpm_rng_u32_at(r->seed, r->counter++);
      uint64_t m = (uint64_t)u * n;
      if ((uint32_t)m >= limit) return (uint32_t)(m >> 32);
   }
}


uint64_t ddpm_splitmix64(uint64_t z)
{
   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
   z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
   return z ^ (z >> 31);
}

uint64_t ddpm_rng_mix_seed(uint64_t seed, uint64_t stream)
{
   return ddpm_splitmix64(seed * 0x9E3779B97F4A7C15ull + stream * 0xD1B54A32D192ED03ull + 1);
}
