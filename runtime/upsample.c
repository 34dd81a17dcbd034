/*
 * upsample.c — nearest-neighbour x2 upsampling, NCHW float32, forward and backward.
 *
 * What it is: pixel duplication, out[2y+dy][2x+dx] = in[y][x]. That is what the
 * official DDPM's tf.image.resize(NEAREST_NEIGHBOR, align_corners=True) does
 * for an exact doubling, and what PyTorch's interpolate(scale_factor=2,
 * mode='nearest') does (docs/math.md §6.5).
 *
 * What it isn't: no other scale factors or interpolation modes, no shape
 * checks (callers check), and not the conv3x3 that follows it in the U-Net.
 */
#include "ddpm.h"
#include "kernels.h"

#include <stddef.h>

void ddpm_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W)
{
   const int planes = N * C, OW = 2 * W;
   const size_t plane = (size_t)H * W;
   #pragma omp parallel for schedule(static)
   for (int pl = 0; pl < planes; pl++) {
      const float *src = in + (size_t)pl * plane;
      float *dst = out + (size_t)pl * 4 * plane;
      for (int y = 0; y < H; y++, src += W, dst += 2 * OW) {
         for (int x = 0; x < W; x++) dst[2 * x] = dst[2 * x + 1] = src[x];
         for (int x = 0; x < OW; x++) dst[OW + x] = dst[x];   /* the row below */
      }
   }
}

void ddpm_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W)
{
   ddpm_upsample2x_backward_ex(din, DDPM_ACCUMULATE, dout, N, C, H, W);
}

void ddpm_upsample2x_backward_ex(float *din, int accumulate, const float *dout,
                                 int N, int C, int H, int W)
{
   const int planes = N * C, OW = 2 * W;
   const size_t plane = (size_t)H * W;
   #pragma omp parallel for schedule(static)
   for (int pl = 0; pl < planes; pl++) {
      const float *src = dout + (size_t)pl * 4 * plane;
      float *dst = din + (size_t)pl * plane;
      for (int y = 0; y < H; y++, src += 2 * OW, dst += W)
         for (int x = 0; x < W; x++) {
            const float g = (src[2 * x] + src[2 * x + 1]) + (src[OW + 2 * x] + src[OW + 2 * x + 1]);
            dst[x] = accumulate ? dst[x] + g : g;
         }
   }
}
