/*
 * fuzz_idx.c — the IDX reader (Fashion-MNIST's images and labels files),
 * plain or gzip-compressed, over arbitrary bytes.
 *
 * Input layout: byte 0 is a set of flags (1: gzip the images file, 2: there
 * is a labels file, 4: gzip the labels file), bytes 1..4 the length of the
 * images file (little-endian, clipped to what is left), the rest the two
 * files' bytes. Compressing in the harness lets the fuzzer reach the header
 * checks behind zlib as well as zlib's own damage reports (a flag clear
 * hands it raw bytes, which gzopen reads through transparently, gzip headers
 * included).
 *
 * An accepted set must hold exactly what the files declare: N x 1 x H x W
 * pixels with labels in 0..9, and never more pixel bytes than the bytes the
 * files could decompress to.
 */
#include "fuzz.h"
#include "ddpm.h"
#include "ddpm/dataset.h"

#include <zlib.h>

/* data gzip-compressed into a new buffer (*n in and out); NULL on failure. */
static uint8_t *gzip_bytes(const uint8_t *data, size_t *n)
{
   z_stream z;
   memset(&z, 0, sizeof z);
   /* a small window and memory level keep each call cheap; any valid gzip
      stream will do */
   if (deflateInit2(&z, 1, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
   uLong cap = deflateBound(&z, (uLong)*n);
   uint8_t *out = malloc(cap ? cap : 1);
   if (!out) { deflateEnd(&z); return NULL; }
   z.next_in = (Bytef *)data;
   z.avail_in = (uInt)*n;
   z.next_out = out;
   z.avail_out = (uInt)cap;
   int rc = deflate(&z, Z_FINISH);
   *n = cap - z.avail_out;
   deflateEnd(&z);
   if (rc != Z_STREAM_END) { free(out); return NULL; }
   return out;
}

static const char *put(int slot, const char *name, const uint8_t *p, size_t n, int gz)
{
   if (!gz) return fuzz_write(slot, name, p, n);
   size_t m = n;
   uint8_t *z = gzip_bytes(p, &m);
   FUZZ_ASSERT(z);
   const char *path = fuzz_write(slot, name, z, m);
   free(z);
   return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   ddpm_clearerr();
   if (size < 5) return 0;
   int flags = data[0];
   size_t ni = fuzz_u32(data + 1);
   data += 5;
   size -= 5;
   if (ni > size) ni = size;
   const char *images = put(0, "images-idx3-ubyte", data, ni, flags & 1);
   const char *labels = (flags & 2) ? put(1, "labels-idx1-ubyte", data + ni, size - ni, flags & 4)
                                    : NULL;
   ddpm_dataset *d = ddpm_dataset_read_idx(images, labels);
   if (!d) { FUZZ_REFUSED(); return 0; }
   FUZZ_ASSERT(d->N >= 1 && d->C == 1 && d->H >= 1 && d->W >= 1);
   uint64_t pixels = (uint64_t)d->N * (uint64_t)d->H * (uint64_t)d->W;
   /* a plain file holds its bytes; a gzip stream at most 1032 per byte */
   int plain = ni < 2 || data[0] != 0x1f || data[1] != 0x8b;
   if ((flags & 1) || plain) FUZZ_ASSERT(pixels + 16 == ni);
   else FUZZ_ASSERT(pixels + 16 <= 1032 * (uint64_t)ni);
   FUZZ_ASSERT(d->pixels);
   if (labels) {
      FUZZ_ASSERT(d->labels);
      for (int64_t i = 0; i < d->N; i++) FUZZ_ASSERT(d->labels[i] < 10);
      const uint8_t *l = data + ni;
      size_t nl = size - ni;
      if ((flags & 4) || nl < 2 || l[0] != 0x1f || l[1] != 0x8b)
         FUZZ_ASSERT((uint64_t)d->N + 8 == nl);
   } else {
      FUZZ_ASSERT(!d->labels);
   }
   ddpm_dataset_free(d);
   return 0;
}
