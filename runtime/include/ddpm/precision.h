/*
 * ddpm/precision.h — the U-Net's precision: float32, or products
 * of bfloat16 operands summed in float32 on AVX512-BF16 (runtime/unet_bf16.c,
 * runtime/wino_bf16.c; their private kernels are runtime/bf16.h).
 *
 * bfloat16 here means: float32 rounded to nearest even, 8 significant bits,
 * multiplied in vdpbf16ps with float32 sums. GroupNorm, attention, the 1x1
 * and strided convolutions and the time embedding stay float32. Sampling,
 * the NLL bound and training use it: in a training step the 3x3
 * convolutions' forward and input gradient multiply in bfloat16, while the
 * weight gradient, the float32 master weights, Adam and the EMA stay float32.
 */
#ifndef DDPM_PRECISION_H
#define DDPM_PRECISION_H

#include "ddpm/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ddpm_precision { DDPM_FLOAT32 = 0, DDPM_BF16 = 1 } ddpm_precision;

/* 1 when this CPU runs AVX512-BF16 (cpuid, asked at run time), else 0. The
   environment variable DDPM_NO_BF16=1 makes it answer 0 (tests use it to see
   the error a CPU without it gives). */
int ddpm_bf16_available(void);

/* Sets the precision of m's next forwards (and of the backwards that follow
   them: a backward always runs as its forward did). DDPM_BF16 on a CPU
   without AVX512-BF16 is DDPM_EINVAL with a message saying so (there is no
   emulated fallback); m is then unchanged. */
int ddpm_unet_set_precision(ddpm_unet *m, ddpm_precision p);
ddpm_precision ddpm_unet_precision(const ddpm_unet *m);

/* The fewest input channels of a 3x3 layer that bf16 runs in bfloat16
   (default 128: below that float32 is as fast); 2 puts every layer with an
   even input count in bfloat16, which a quality gate on a small model wants.
   DDPM_EINVAL for c < 2. */
int ddpm_unet_set_bf16_min_channels(ddpm_unet *m, int c);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_PRECISION_H */
