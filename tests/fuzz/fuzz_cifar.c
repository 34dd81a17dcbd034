/*
 * fuzz_cifar.c — the CIFAR-10 binary batch reader over arbitrary bytes (the
 * input is test_batch.bin of the test split).
 *
 * An accepted file holds whole 3073-byte records (a label byte in 0..9, then
 * 3x32x32 planar pixels), and the set is exactly them, byte for byte.
 */
#include "fuzz.h"
#include "ddpm.h"
#include "ddpm/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   ddpm_clearerr();
   fuzz_write(0, "test_batch.bin", data, size);
   ddpm_dataset *d = ddpm_dataset_read_cifar(fuzz_dir(), "test");
   if (!d) { FUZZ_REFUSED(); return 0; }
   FUZZ_ASSERT(d->C == 3 && d->H == 32 && d->W == 32 && d->labels);
   FUZZ_ASSERT(size > 0 && (uint64_t)d->N * 3073 == size);
   for (int64_t i = 0; i < d->N; i++) {
      FUZZ_ASSERT(d->labels[i] == data[i * 3073] && d->labels[i] < 10);
      FUZZ_ASSERT(memcmp(d->pixels + i * 3072, data + i * 3073 + 1, 3072) == 0);
   }
   ddpm_dataset_free(d);
   return 0;
}
