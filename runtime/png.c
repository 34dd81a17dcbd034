/*
 * png.c — PNG sample grids out and images in, through libpng's simplified
 * API (png_image_*), which reports errors in png_image.message instead of
 * longjmp'ing through our frames.
 *
 * Writing encodes into memory first and then hands the bytes to the atomic
 * writer (runtime/fileio.c), so every file-system error comes back with its
 * errno and a failed write leaves no partial PNG. Not here: text chunks,
 * 16-bit output, interlaced writing.
 *
 * Our own header is ddpm/png.h, so that <png.h> is libpng's.
 */
#include "ddpm.h"
#include "ddpm/png.h"

#include <png.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ write */

static int check_image_size(const char *what, const char *path, int C, int H, int W)
{
   if (C != 1 && C != 3)
      return ddpm_seterr(DDPM_EINVAL, "%s %s: %d channels (expected 1 gray or 3 RGB)", what, path, C);
   if (H < 1 || W < 1 || H > DDPM_PNG_MAX_SIDE || W > DDPM_PNG_MAX_SIDE)
      return ddpm_seterr(DDPM_EINVAL, "%s %s: image %dx%d (W x H) outside 1..%d per side", what,
                         path, W, H, DDPM_PNG_MAX_SIDE);
   return DDPM_OK;
}

int ddpm_png_write(const char *path, const uint8_t *pixels, int C, int H, int W)
{
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "png_write: no path");
   if (!pixels) return ddpm_seterr(DDPM_EINVAL, "png_write %s: no pixels", path);
   int rc = check_image_size("png_write", path, C, H, W);
   if (rc != DDPM_OK) return rc;

   size_t npix = (size_t)H * (size_t)W;
   uint8_t *inter = NULL;           /* libpng wants interleaved RGB */
   const uint8_t *rows = pixels;
   if (C == 3) {
      inter = malloc(npix * 3);
      if (!inter) return ddpm_seterr(DDPM_ENOMEM, "png_write %s: out of memory", path);
      for (size_t i = 0; i < npix; i++) {
         inter[3 * i + 0] = pixels[i];
         inter[3 * i + 1] = pixels[npix + i];
         inter[3 * i + 2] = pixels[2 * npix + i];
      }
      rows = inter;
   }

   png_image img;
   memset(&img, 0, sizeof img);
   img.version = PNG_IMAGE_VERSION;
   img.width = (png_uint_32)W;
   img.height = (png_uint_32)H;
   img.format = C == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
   png_alloc_size_t cap = PNG_IMAGE_PNG_SIZE_MAX(img), size = cap;
   void *mem = malloc(cap);
   if (!mem) {
      free(inter);
      return ddpm_seterr(DDPM_ENOMEM, "png_write %s: out of memory (%zu bytes)", path, (size_t)cap);
   }
   if (!png_image_write_to_memory(&img, mem, &size, 0, rows, 0, NULL)) {
      ddpm_seterr(DDPM_EIO, "png_write %s: libpng could not encode the image (%s)", path,
                  img.message);
      png_image_free(&img);
      free(mem);
      free(inter);
      return DDPM_EIO;
   }
   free(inter);
   rc = ddpm_file_write_atomic(path, mem, size, "png");
   free(mem);
   return rc;
}

static uint8_t to_byte(float v)
{
   double d = v;
   if (d != d) d = 0;           /* NaN -> 0 -> 128 */
   if (d < -1) d = -1;
   if (d > 1) d = 1;
   return (uint8_t)floor((d + 1.0) * 127.5 + 0.5);
}

int ddpm_png_write_grid(const char *path, const float *x, int N, int C, int H, int W,
                        int nrow, int padding, float pad_value)
{
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "png_write_grid: no path");
   if (!x) return ddpm_seterr(DDPM_EINVAL, "png_write_grid %s: no data", path);
   if (N < 1) return ddpm_seterr(DDPM_EINVAL, "png_write_grid %s: N = %d images (need >= 1)", path, N);
   if (C != 1 && C != 3)
      return ddpm_seterr(DDPM_EINVAL, "png_write_grid %s: expected [N,1,H,W] or [N,3,H,W], got C = %d",
                         path, C);
   if (H < 1 || W < 1)
      return ddpm_seterr(DDPM_EINVAL, "png_write_grid %s: image size %dx%d", path, W, H);
   if (nrow < 1) return ddpm_seterr(DDPM_EINVAL, "png_write_grid %s: nrow = %d (need >= 1)", path, nrow);
   if (padding < 0 || padding > 1024)
      return ddpm_seterr(DDPM_EINVAL, "png_write_grid %s: padding = %d outside 0..1024", path, padding);

   int64_t xmaps = nrow < N ? nrow : N;
   int64_t ymaps = ((int64_t)N + xmaps - 1) / xmaps;
   int64_t GW = xmaps * ((int64_t)W + padding) + padding;
   int64_t GH = ymaps * ((int64_t)H + padding) + padding;
   if (GW > DDPM_PNG_MAX_SIDE || GH > DDPM_PNG_MAX_SIDE)
      return ddpm_seterr(DDPM_EINVAL,
                         "png_write_grid %s: a grid of %d images of %dx%d with nrow %d is %lldx%lld "
                         "pixels, over the %d-pixel limit per side", path, N, W, H, nrow,
                         (long long)GW, (long long)GH, DDPM_PNG_MAX_SIDE);

   size_t plane = (size_t)GW * (size_t)GH;
   uint8_t *g = malloc(plane * (size_t)C);
   if (!g) return ddpm_seterr(DDPM_ENOMEM, "png_write_grid %s: out of memory", path);
   double pv = pad_value != pad_value ? 0.0 : pad_value;
   pv = pv < 0 ? 0 : pv > 1 ? 1 : pv;
   memset(g, (int)floor(pv * 255.0 + 0.5), plane * (size_t)C);

   for (int k = 0; k < N; k++) {
      int64_t y0 = (k / xmaps) * (H + padding) + padding;
      int64_t x0 = (k % xmaps) * (W + padding) + padding;
      for (int c = 0; c < C; c++) {
         const float *src = x + (((size_t)k * C + c) * H) * W;
         uint8_t *dst = g + (size_t)c * plane;
         for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
               dst[(size_t)(y0 + y) * GW + x0 + xx] = to_byte(src[(size_t)y * W + xx]);
      }
   }
   int rc = ddpm_png_write(path, g, C, (int)GH, (int)GW);
   free(g);
   return rc;
}

/* ------------------------------------------------------------------ read */

/* Opens path and reads its header into img; on success the caller owns fp and
   must png_image_free(img) and fclose(*fp). */
static int begin_read(png_image *img, FILE **fp, const char *path)
{
   memset(img, 0, sizeof *img);
   img->version = PNG_IMAGE_VERSION;
   *fp = NULL;
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "png_read: no path");
   FILE *f = fopen(path, "rb");
   if (!f) return ddpm_seterr(DDPM_EIO, "png_read %s: cannot open (%s)", path, strerror(errno));
   if (!png_image_begin_read_from_stdio(img, f)) {
      ddpm_seterr(DDPM_EFORMAT, "png_read %s: not a readable PNG (libpng: %s)", path,
                  img->message[0] ? img->message : "unknown error");
      png_image_free(img);
      fclose(f);
      return DDPM_EFORMAT;
   }
   if (img->width < 1 || img->height < 1 || img->width > DDPM_PNG_MAX_SIDE ||
       img->height > DDPM_PNG_MAX_SIDE) {
      ddpm_seterr(DDPM_EFORMAT, "png_read %s: image is %ux%u, over the %d-pixel limit per side",
                  path, (unsigned)img->width, (unsigned)img->height, DDPM_PNG_MAX_SIDE);
      png_image_free(img);
      fclose(f);
      return DDPM_EFORMAT;
   }
   /* Each row costs at least a filter byte and W/8 bytes (1-bit pixels)
      before deflate, which expands at most 1032-fold: a header declaring more
      than the file can hold is refused before the pixels are allocated. */
   struct stat st = {0};
   uint64_t rows = (uint64_t)img->height * (1 + ((uint64_t)img->width + 7) / 8);
   if (fstat(fileno(f), &st) != 0 || rows > 1032 * (uint64_t)st.st_size) {
      ddpm_seterr(DDPM_EFORMAT, "png_read %s: image is %ux%u, more than this %lld-byte file can "
                  "hold (truncated?)", path, (unsigned)img->width, (unsigned)img->height,
                  (long long)st.st_size);
      png_image_free(img);
      fclose(f);
      return DDPM_EFORMAT;
   }
   *fp = f;
   return DDPM_OK;
}

int ddpm_png_size(const char *path, int *H, int *W)
{
   png_image img;
   FILE *f;
   int rc = begin_read(&img, &f, path);
   if (rc != DDPM_OK) return rc;
   if (H) *H = (int)img.height;
   if (W) *W = (int)img.width;
   png_image_free(&img);
   fclose(f);
   return DDPM_OK;
}

int ddpm_png_read_into(const char *path, int channels, uint8_t *out, int H, int W)
{
   if (channels != 1 && channels != 3)
      return ddpm_seterr(DDPM_EINVAL, "png_read %s: channels = %d (expected 1 gray or 3 RGB)",
                         path ? path : "(null)", channels);
   if (!out) return ddpm_seterr(DDPM_EINVAL, "png_read %s: no output buffer", path ? path : "(null)");
   png_image img;
   FILE *f;
   int rc = begin_read(&img, &f, path);
   if (rc != DDPM_OK) return rc;
   if ((int)img.width != W || (int)img.height != H) {
      ddpm_seterr(DDPM_EFORMAT, "png_read %s: image is %ux%u (W x H), expected %dx%d", path,
                  (unsigned)img.width, (unsigned)img.height, W, H);
      png_image_free(&img);
      fclose(f);
      return DDPM_EFORMAT;
   }
   size_t npix = (size_t)H * (size_t)W;
   uint8_t *buf = out;
   if (channels == 3) {
      buf = calloc(npix, 3);
      if (!buf) {
         png_image_free(&img);
         fclose(f);
         return ddpm_seterr(DDPM_ENOMEM, "png_read %s: out of memory", path);
      }
   } else {
      memset(out, 0, npix);
   }
   img.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
   png_color black = {0, 0, 0};
   int ok = png_image_finish_read(&img, &black, buf, 0, NULL);
   if (!ok) {
      ddpm_seterr(DDPM_EFORMAT, "png_read %s: corrupt or truncated PNG (libpng: %s)", path,
                  img.message[0] ? img.message : "unknown error");
   } else if (channels == 3) {
      for (size_t i = 0; i < npix; i++) {
         out[i] = buf[3 * i + 0];
         out[npix + i] = buf[3 * i + 1];
         out[2 * npix + i] = buf[3 * i + 2];
      }
   }
   png_image_free(&img);
   fclose(f);
   if (buf != out) free(buf);
   return ok ? DDPM_OK : DDPM_EFORMAT;
}

int ddpm_png_read(const char *path, int channels, uint8_t **out, int *H, int *W)
{
   if (!out || !H || !W) return ddpm_seterr(DDPM_EINVAL, "png_read: NULL output argument");
   *out = NULL;
   if (channels != 1 && channels != 3)
      return ddpm_seterr(DDPM_EINVAL, "png_read %s: channels = %d (expected 1 gray or 3 RGB)",
                         path ? path : "(null)", channels);
   int h, w;
   int rc = ddpm_png_size(path, &h, &w);
   if (rc != DDPM_OK) return rc;
   uint8_t *p = malloc((size_t)channels * (size_t)h * (size_t)w);
   if (!p) return ddpm_seterr(DDPM_ENOMEM, "png_read %s: out of memory for %dx%dx%d", path, channels, h, w);
   rc = ddpm_png_read_into(path, channels, p, h, w);
   if (rc != DDPM_OK) {
      free(p);
      return rc;
   }
   *out = p;
   *H = h;
   *W = w;
   return DDPM_OK;
}
