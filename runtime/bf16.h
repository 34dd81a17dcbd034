/*
 * bf16.h — the U-Net's bfloat16 precision, private part: the kernels of
 * wino_bf16.c and the weight cache of unet_bf16.c (unet_run.c calls those).
 * The public switch that bindings and users call is ddpm/precision.h.
 *
 * bfloat16 here means: products of bfloat16 operands (float32 rounded to
 * nearest even, 8 significant bits) summed in float32, on AVX512-BF16's
 * vdpbf16ps. Everything else (GroupNorm, attention, the 1x1 and strided
 * convolutions, the time embedding) stays float32. Only forwards without
 * gradients (sampling, the NLL bound) use it; a forward that keeps
 * activations for backward runs in float32 whatever the precision.
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
/* Scratch floats of ddpm_wino_bf16_forward for this shape and thread count. */
size_t ddpm_wino_bf16_scratch_floats(int N, int I, int O, int H, int W, int threads);
/* out [N,O,H,W] = conv3x3(in [N,I,H,W]) + epilogue, the Winograd domain's
   products in bfloat16 with U from ddpm_wino_bf16_filters. I even. */
void ddpm_wino_bf16_forward(float *out, float *scratch, const float *in, const uint32_t *U,
                            const ddpm_conv_epi *e, int N, int I, int H, int W, int O);

/* The U-Net's cache of transformed bfloat16 filters (unet_bf16.c). */
typedef struct ddpm_bf16_cache ddpm_bf16_cache;
void ddpm_bf16_cache_free(ddpm_bf16_cache *c);
/* Makes the cached filters of every 3x3 layer match the current float32
   weights (a 64-bit hash per layer decides which to redo). */
int ddpm_unet_bf16_refresh(ddpm_unet *m);
/* The cached filters of the layer whose weight starts at params + offset,
   or NULL when that layer runs in float32. */
const uint32_t *ddpm_unet_bf16_filters(const ddpm_unet *m, size_t offset);

#endif /* DDPM_BF16_H */
