/*
 * fuzz_safetensors.c — the safetensors reader over arbitrary bytes, the way
 * load_safetensors uses it: parse, then a tensor of each entry's shape and
 * every entry read as float32, then the metadata.
 *
 * An accepted file must describe itself consistently: names found again by
 * lookup, each entry's byte range inside the data buffer and equal to its
 * shape times its dtype's size (so a shape whose product overflows can never
 * be accepted), and the float copy no larger than 8x the input.
 */
#include "fuzz.h"

static int dtype_size(int dt)
{
   switch (dt) {
   case DDPM_DT_F64: case DDPM_DT_I64: case DDPM_DT_U64: return 8;
   case DDPM_DT_F32: case DDPM_DT_I32: case DDPM_DT_U32: return 4;
   case DDPM_DT_F16: case DDPM_DT_BF16: case DDPM_DT_I16: case DDPM_DT_U16: return 2;
   default: return 1;
   }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   ddpm_clearerr();
   ddpm_st_file *f = ddpm_st_parse(data, size, "fuzz.safetensors");
   if (!f) { FUZZ_REFUSED(); return 0; }
   int n = ddpm_st_count(f);
   FUZZ_ASSERT(n >= 0);
   uint64_t covered = 0;
   for (int i = 0; i < n; i++) {
      const ddpm_st_entry *e = ddpm_st_entry_at(f, i);
      FUZZ_ASSERT(e && e->name);
      FUZZ_ASSERT(ddpm_st_find(f, e->name) == i);
      FUZZ_ASSERT(e->ndim >= 0 && e->ndim <= DDPM_MAX_DIMS);
      FUZZ_ASSERT(e->begin <= e->end && e->end <= size);
      covered += e->end - e->begin;
      uint64_t numel = 1;
      for (int d = 0; d < e->ndim; d++) {
         FUZZ_ASSERT(e->shape[d] >= 0);
         FUZZ_ASSERT(!__builtin_mul_overflow(numel, (uint64_t)e->shape[d], &numel));
      }
      FUZZ_ASSERT(numel * (uint64_t)dtype_size(e->dtype) == e->end - e->begin);
      FUZZ_ASSERT(numel * sizeof(float) <= 8 * (uint64_t)size);
      ddpm_tensor *t = ddpm_tensor_new(e->ndim, e->shape);
      FUZZ_ASSERT(t);
      FUZZ_ASSERT((uint64_t)ddpm_tensor_numel(t) == numel);
      FUZZ_ASSERT(ddpm_st_read_f32(f, i, ddpm_tensor_data(t), (size_t)numel) == DDPM_OK);
      /* a destination of the wrong size is refused, not overrun */
      FUZZ_ASSERT(ddpm_st_read_f32(f, i, ddpm_tensor_data(t), (size_t)numel + 1) != DDPM_OK);
      ddpm_tensor_release(t);
   }
   FUZZ_ASSERT(covered <= size);
   FUZZ_ASSERT(ddpm_st_read_f32(f, n, NULL, 0) != DDPM_OK);
   FUZZ_ASSERT(ddpm_st_find(f, "\x01no such tensor") < 0);
   int m = ddpm_st_metadata_count(f);
   for (int i = 0; i < m; i++) {
      const char *k = ddpm_st_metadata_key(f, i);
      FUZZ_ASSERT(k);
      const char *v = ddpm_st_metadata(f, k);
      FUZZ_ASSERT(v);
      FUZZ_ASSERT(strlen(k) + strlen(v) <= size);
   }
   ddpm_st_close(f);
   return 0;
}
