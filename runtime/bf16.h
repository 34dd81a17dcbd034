/*
 * bf16.h — the U-Net's bfloat16 precision, private part: the kernels of
 * wino_bf16.c and the weight cache of unet_bf16.c (unet_run.c calls those).
 * The public switch that bindings and users call is ddpm/precision.h.
 *
 * bfloat16 here means: products of bfloat16 operands (float32 rounded to
 * nearest even, 8 significant bits) summed in float32, on AVX512-BF16's
 * vdpbf16ps: the 3x3 stride-1 convolutions (wino_bf16.c) and the products
 * of attention and of the 1x1 shortcuts (gemm_bf16.c, through
 * ddpm_gemm_ws.bf16). Everything else (GroupNorm, softmax, the strided
 * convolutions, the time embedding) stays float32. Sampling, the NLL bound
 * and training use it alike; in training the forward, the input gradient
 * (dX) and the weight gradient (dW, 16x16 and up) of the 3x3 layers and
 * every product of attention and the 1x1 layers multiply in bfloat16; the
 * master weights, Adam and the EMA stay float32.
 */
#ifndef DDPM_BF16_H
#define DDPM_BF16_H

#include "ddpm.h"
#include "ddpm/precision.h"
#include "kernels.h"

#include <stddef.h>
#include <stdint.h>

/* The public switch (ddpm_unet_set_precision, ddpm_bf16_available) is
   declared in ddpm/precision.h; below it, the private kernels. */

/* ---------------------------------------------------------------- private */

/* Transformed filters of one 3x3 layer of O outputs and I (even) inputs, in
   bfloat16 pairs: wino_bf16.c's packed layout. */
size_t ddpm_wino_bf16_filter_words(int O, int I);
void ddpm_wino_bf16_filters(uint32_t *U, const float *weight, int O, int I);
/* The input gradient's filters of the layer weight [OC][C][3][3] (OC even):
   C rows, OC inputs, each filter turned by 180 degrees; then
   ddpm_wino_bf16_forward(din, ..., dout, U, e, N, OC, H, W, C) is din. */
void ddpm_wino_bf16_filters_dx(uint32_t *U, const float *weight, int OC, int C);
/* Scratch floats of ddpm_wino_bf16_forward for this shape and thread count. */
size_t ddpm_wino_bf16_scratch_floats(int N, int I, int O, int H, int W, int threads);
/* out [N,O,H,W] = conv3x3(in [N,I,H,W]) + epilogue, the Winograd domain's
   products in bfloat16 with U from ddpm_wino_bf16_filters. I even. */
void ddpm_wino_bf16_forward(float *out, float *scratch, const float *in, const uint32_t *U,
                            const ddpm_conv_epi *e, int N, int I, int H, int W, int O);

/* The same forward with the filters made from the float32 weight [O][I][3][3]
   inside the pass (flip 0), or, flip 1, with those of the input gradient
   of the layer weight [I][O][3][3] (ddpm_wino_bf16_filters_dx's): the same
   bits as ddpm_wino_bf16_filters + ddpm_wino_bf16_forward, with scratch
   ddpm_wino_bf16_scratch_floats_w. Training's path, where the filters
   change every step. */
size_t ddpm_wino_bf16_scratch_floats_w(int N, int I, int O, int H, int W, int threads);
void ddpm_wino_bf16_forward_w(float *out, float *scratch, const float *in, const float *weight,
                              int flip, const ddpm_conv_epi *e, int N, int I, int H, int W,
                              int O);

/* Batched GEMM in bfloat16 products and float32 sums (gemm_bf16.c):
   C_b = alpha op(A_b) op(B_b) + beta C_b for b < nbatch, with A_b = A + b sa
   (sa 0: the same A, packed once), B_b = B + b sb, C_b = C + b sc; row-major
   as ddpm_gemm. Outside a parallel region it threads itself over ws's
   regions, inside it runs in the calling thread's. Each region needs
   ddpm_gemm_bf16_work_floats(M, N, K) floats; returns -1 (nothing done)
   when they are smaller or missing, else 0. */
size_t ddpm_gemm_bf16_work_floats(int M, int N, int K);
int ddpm_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   int64_t sa, const float *B, int ldb, int64_t sb, float beta, float *C,
                   int ldc, int64_t sc, int nbatch, const ddpm_gemm_ws *ws);

/* Rows x K of X [r][k] = src[r * rs + k * ks] rounded to bfloat16 pairs of
   consecutive k (bf16_kern.h's words) in panels of W rows: row r, pair kk
   at dst[(r / W) * pw + kk * W + r % W]; rows from `rows` up to `pad` zero.
   ks == 1 or rs == 1 (and then W a multiple of 16, or 8). */
void ddpm_bf16_pack(uint32_t *dst, int W, int64_t pw, const float *src, int64_t rs, int64_t ks,
                    int rows, int pad, int K);

/* ddpm_wino_backward_weight (kernels.h) with the 36 products over slots in
   bfloat16 (sums in float32): the transformed input and the transformed
   dout rounded as they are packed. The same scratch. */
void ddpm_wino_bf16_backward_weight(float *dweight, float *dbias, float *scratch,
                                    size_t nscratch, const float *dout, const float *in, int N,
                                    int C, int H, int W, int OC);

/* The U-Net's cache of transformed bfloat16 filters (unet_bf16.c). */
typedef struct ddpm_bf16_cache ddpm_bf16_cache;
void ddpm_bf16_cache_free(ddpm_bf16_cache *c);
/* Makes the cached filters of every 3x3 layer match the current float32
   weights: all are made again when the parameter buffer's version
   (ddpm_storage.version) differs from the one they were made from. */
int ddpm_unet_bf16_refresh(ddpm_unet *m);
/* How many times the cache was made from the weights (tests). */
long ddpm_unet_bf16_remakes(const ddpm_unet *m);
/* The cached filters of the layer whose weight starts at params + offset,
   or NULL when that layer runs in float32. */
const uint32_t *ddpm_unet_bf16_filters(const ddpm_unet *m, size_t offset);

#endif /* DDPM_BF16_H */
