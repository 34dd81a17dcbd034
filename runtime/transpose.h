/*
 * transpose.h — an 8 x 8 float transpose in registers, for the packing and
 * reshuffling passes of gemm.c and winograd_wgt.c. Private to runtime/.
 *
 * Copying a matrix into its transpose one float at a time writes every
 * value to another cache line; turning 8 x 8 blocks in registers reads and
 * writes whole 32-byte rows instead (24 shuffles per 64 values).
 */
#ifndef DDPM_TRANSPOSE_H
#define DDPM_TRANSPOSE_H

#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef float v8 __attribute__((vector_size(32)));

/* o[s] lane q = t[q] lane s. */
static inline void ddpm_transpose8(v8 o[8], const v8 t[8])
{
#if defined(__AVX2__)
   __m256 a[8], b[8];
   for (int i = 0; i < 8; i += 2) {
      a[i] = _mm256_unpacklo_ps((__m256)t[i], (__m256)t[i + 1]);
      a[i + 1] = _mm256_unpackhi_ps((__m256)t[i], (__m256)t[i + 1]);
   }
   for (int i = 0; i < 8; i += 4) {   /* rows i .. i+3: columns 0|4, 1|5, 2|6, 3|7 */
      b[i] = _mm256_shuffle_ps(a[i], a[i + 2], 0x44);
      b[i + 1] = _mm256_shuffle_ps(a[i], a[i + 2], 0xEE);
      b[i + 2] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0x44);
      b[i + 3] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0xEE);
   }
   for (int c = 0; c < 4; c++) {
      o[c] = (v8)_mm256_permute2f128_ps(b[c], b[4 + c], 0x20);
      o[4 + c] = (v8)_mm256_permute2f128_ps(b[c], b[4 + c], 0x31);
   }
#else
   for (int s = 0; s < 8; s++)
      for (int q = 0; q < 8; q++) o[s][q] = t[q][s];
#endif
}

#endif
