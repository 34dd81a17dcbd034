/*
 * fuzz_png.c — the PNG reader (libpng's simplified API behind
 * ddpm_png_read), as gray and as RGB, over arbitrary bytes.
 *
 * An accepted image has sides in 1..DDPM_PNG_MAX_SIDE, gray and RGB agree on
 * its size, and its pixel count is one the file's bytes can justify: every
 * row of a PNG costs at least a filter byte and W/8 bytes before deflate,
 * whose output is at most 1032 bytes per byte of input.
 */
#include "fuzz.h"
#include "ddpm.h"
#include "ddpm/png.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   ddpm_clearerr();
   const char *path = fuzz_write(0, "image.png", data, size);
   uint8_t *gray = NULL, *rgb = NULL;
   int H = 0, W = 0, H3 = 0, W3 = 0;
   if (ddpm_png_read(path, 1, &gray, &H, &W) != DDPM_OK) {
      FUZZ_REFUSED();
      FUZZ_ASSERT(!gray);
   } else {
      FUZZ_ASSERT(gray && H >= 1 && W >= 1 && H <= DDPM_PNG_MAX_SIDE && W <= DDPM_PNG_MAX_SIDE);
      FUZZ_ASSERT((uint64_t)H * (1 + ((uint64_t)W + 7) / 8) <= 1032 * (uint64_t)size);
   }
   int rc3 = ddpm_png_read(path, 3, &rgb, &H3, &W3);
   if (rc3 == DDPM_OK) {
      FUZZ_ASSERT(rgb && H3 >= 1 && W3 >= 1);
      if (gray) FUZZ_ASSERT(H3 == H && W3 == W);
   } else {
      FUZZ_REFUSED();
   }
   free(gray);
   free(rgb);
   return 0;
}
