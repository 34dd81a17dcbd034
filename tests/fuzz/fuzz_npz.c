/*
 * fuzz_npz.c — the .npz reader (FID reference statistics) over arbitrary
 * bytes: the zip directory, local headers, stored and deflated members,
 * CRC-32, the .npy header dict and the value conversion.
 *
 * An accepted archive must describe itself consistently: each member found
 * again by its name, a rank within DDPM_MAX_DIMS, non-negative dimensions
 * whose product is the member's value count, and no more values than the
 * bytes could hold (a .npy stores at least one byte per value, and deflate
 * expands at most ~1032x).
 */
#include "fuzz.h"
#include "ddpm.h"
#include "ddpm/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   ddpm_clearerr();
   ddpm_npz *z = ddpm_npz_parse(data, size, "fuzz.npz");
   if (!z) { FUZZ_REFUSED(); return 0; }
   const int n = ddpm_npz_count(z);
   FUZZ_ASSERT(n >= 0);
   uint64_t values = 0;
   for (int i = 0; i < n; i++) {
      const ddpm_npy *a = ddpm_npz_at(z, i);
      FUZZ_ASSERT(a && a->name && ddpm_npz_find(z, a->name) == a);
      FUZZ_ASSERT(a->ndim >= 0 && a->ndim <= DDPM_MAX_DIMS);
      uint64_t numel = 1;
      for (int d = 0; d < a->ndim; d++) {
         FUZZ_ASSERT(a->shape[d] >= 0);
         FUZZ_ASSERT(!__builtin_mul_overflow(numel, (uint64_t)a->shape[d], &numel));
      }
      FUZZ_ASSERT(numel == (uint64_t)a->numel);
      FUZZ_ASSERT(numel == 0 || a->data);
      values += numel;
      volatile double sink = 0;
      for (uint64_t k = 0; k < numel; k++) sink += a->data[k] == a->data[k];
      (void)sink;
   }
   FUZZ_ASSERT(values <= (uint64_t)size * 1032 + 1024 * (uint64_t)(n + 1));
   ddpm_npz_close(z);
   return 0;
}
