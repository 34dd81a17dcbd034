/*
 * ddpm/precision.h — the U-Net's inference precision: float32, or products
 * of bfloat16 operands summed in float32 on AVX512-BF16 (runtime/unet_bf16.c,
 * runtime/wino_bf16.c; their private kernels are runtime/bf16.h).
 *
 * bfloat16 here means: float32 rounded to nearest even, 8 significant bits,
 * multiplied in vdpbf16ps with float32 sums. GroupNorm, attention, the 1x1
 * and strided convolutions and the time embedding stay float32. Only
 * forwards without gradients (sampling, the NLL bound) use it; a forward
 * that keeps activations for backward runs in float32 whatever the precision.
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

/* Sets the precision of m's inference forwards. DDPM_BF16 on a CPU without
   AVX512-BF16 is DDPM_EINVAL with a message saying so (there is no emulated
   fallback); m is then unchanged. */
int ddpm_unet_set_precision(ddpm_unet *m, ddpm_precision p);
ddpm_precision ddpm_unet_precision(const ddpm_unet *m);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_PRECISION_H */
