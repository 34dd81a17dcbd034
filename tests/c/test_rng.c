/*
 * test_rng.c — the seed mixing of rng.c: ddpm_splitmix64 against the
 * published splitmix64 sequence for seed 0, and ddpm_rng_mix_seed (the
 * per-stream seeds of ddpm.core.mix_seed and the training loop) against
 * values computed independently in Python's integers. Changing either
 * changes every run's random streams, so the values are pinned.
 */
#include "check.h"
#include "ddpm.h"

#include <stdint.h>

int main(void)
{
   const uint64_t golden = 0x9E3779B97F4A7C15ull;
   CHECK(ddpm_splitmix64(golden) == 0xE220A8397B1DCDAFull,
         "splitmix64: first output of the generator seeded with 0");
   CHECK(ddpm_splitmix64(2 * golden) == 0x6E789E6AA1B965F4ull,
         "splitmix64: second output of the generator seeded with 0");
   CHECK(ddpm_rng_mix_seed(0, 0) == 0x5692161D100B05E5ull, "mix_seed(0, 0)");
   CHECK(ddpm_rng_mix_seed(1, 11) == 0x0D484C84F5A17989ull, "mix_seed(1, 11)");
   CHECK(ddpm_rng_mix_seed(12345, 100) == 0x0FB9A32B9D4EB197ull, "mix_seed(12345, 100)");
   CHECK(ddpm_rng_mix_seed(UINT64_MAX, UINT64_MAX) == 0x139A7395ADEDD24Bull,
         "mix_seed wraps modulo 2^64");
   CHECK(ddpm_rng_mix_seed(7, 1) != ddpm_rng_mix_seed(7, 2) &&
         ddpm_rng_mix_seed(7, 1) != ddpm_rng_mix_seed(8, 1), "streams and seeds differ");
   return check_done();
}
