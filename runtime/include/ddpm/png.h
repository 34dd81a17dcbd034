/*
 * ddpm/png.h — PNG files at the image edge: sample grids out, images in.
 *
 * Through libpng's simplified API (no setjmp/longjmp). Pixels on our side are
 * uint8, planar [C, H, W] with C = 1 (gray) or 3 (RGB). Writes are atomic:
 * the PNG is encoded in memory, written to a temp file next to the target,
 * fsync'ed and renamed over it, so a failed write leaves no partial PNG and
 * keeps any previous file. Not here: text chunks, 16-bit output, APNG.
 */
#ifndef DDPM_PNG_H
#define DDPM_PNG_H

#include <stdint.h>

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest side (width or height) read or written. Checked before allocating. */
#define DDPM_PNG_MAX_SIDE 16384

/* Writes planar uint8 pixels [C, H, W] (C = 1 gray, 3 RGB) to path,
   atomically. DDPM_EINVAL for bad sizes; DDPM_EIO (message names the path and
   the system error) when the directory is unwritable or the disk is full. */
int ddpm_png_write(const char *path, const uint8_t *pixels, int C, int H, int W);

/* A sample grid, laid out as torchvision's make_grid + save_image:
   x [N, C, H, W] floats in [-1, 1] (C = 1 or 3); xmaps = min(nrow, N) images
   per row, ymaps = ceil(N / xmaps) rows, padding pixels around and between,
   so the PNG is (xmaps*(W+padding)+padding) wide and
   (ymaps*(H+padding)+padding) high; image k's top-left pixel is at
   row (k/xmaps)*(H+padding)+padding, column (k%xmaps)*(W+padding)+padding.
   Pixel byte = floor((clip(x,-1,1) + 1) * 127.5 + 0.5); NaN counts as 0, so
   it becomes 128 (mid gray); +-Inf clip to 255 / 0. pad_value is in
   torchvision's [0, 1] output scale (0 black, the torchvision default; 1
   white): byte = floor(clip(pad_value,0,1) * 255 + 0.5). C = 1 is written as a
   gray PNG, C = 3 as RGB. Errors as ddpm_png_write. */
int ddpm_png_write_grid(const char *path, const float *x, int N, int C, int H, int W,
                        int nrow, int padding, float pad_value);

/* Width and height from the file's header (nothing else decoded). */
int ddpm_png_size(const char *path, int *H, int *W);

/* Reads a PNG into a new malloc'ed planar buffer [channels, H, W]
   (channels 1 = gray, 3 = RGB; palette, 16-bit, low-bit-depth and alpha
   inputs are converted, alpha composited onto black). The caller frees *out.
   DDPM_EFORMAT (message names the file and libpng's reason) for a non-PNG,
   truncated or corrupt file or one larger than DDPM_PNG_MAX_SIDE; DDPM_EIO
   when it cannot be opened. *out is NULL on error. */
int ddpm_png_read(const char *path, int channels, uint8_t **out, int *H, int *W);

/* Same, into the caller's buffer out [channels, H, W]; the file must be
   exactly H x W (DDPM_EFORMAT otherwise). */
int ddpm_png_read_into(const char *path, int channels, uint8_t *out, int H, int W);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_PNG_H */
