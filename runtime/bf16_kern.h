/*
 * bf16_kern.h — the bfloat16 micro-kernel that wino_bf16.c (the Winograd
 * domain's products) and gemm_bf16.c (attention, 1x1 convolutions) share:
 * BMR rows of A against up to BNV vectors of 16 columns of B, both packed
 * as 32-bit words that hold a pair of bfloat16 values of consecutive k
 * (the lower half the even k), multiplied by vdpbf16ps into float32 sums.
 *
 *    A  [K2 pairs][BMR rows]        one word per row and pair
 *    B  [K2 pairs][ldb columns]     one word per column and pair
 *    M[r][c] = sum over pairs k of A[k][r] . B[k][c]   (r < BMR, c < 16 nv)
 *
 * Every function that uses AVX512-BF16 carries BF16_TARGET, so the build
 * needs no flag; callers check ddpm_bf16_available() first.
 */
#ifndef DDPM_BF16_KERN_H
#define DDPM_BF16_KERN_H

#include <immintrin.h>
#include <stdint.h>

#define BF16_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512bf16")))

#define BMR 8      /* micro-kernel rows */
#define BNV 3      /* micro-kernel vectors of 16 columns */
#define BNR (16 * BNV)
#define PF_AHEAD 1024   /* words of A prefetched ahead (4 KB: the next xi's panel) */

/* M[r][0..16 nv) = sum over pairs k of A[k][r] . B[k][0..16 nv) (r < BMR),
   or += with add; nv (1..BNV) and add constants where it is inlined. */
BF16_TARGET
static inline __attribute__((always_inline)) void
kern_nv(float *restrict M, int64_t ldm, const uint32_t *restrict A, const uint32_t *restrict B,
        int64_t ldb, int K2, const int nv, const int add)
{
   __m512 acc[BMR][BNV];
   for (int r = 0; r < BMR; r++)
      for (int v = 0; v < nv; v++)
         acc[r][v] = add ? _mm512_loadu_ps(M + r * ldm + 16 * v) : _mm512_setzero_ps();
   for (int k = 0; k < K2; k++) {
      __m512bh b[BNV];
      for (int v = 0; v < nv; v++)
         b[v] = (__m512bh)_mm512_loadu_si512((const void *)(B + k * ldb + 16 * v));
      const uint32_t *a = A + (int64_t)k * BMR;
      /* A streams from memory where few columns use each word (the
         cached filters of the 4x4 and 8x8 levels: ~220 MB per CIFAR-10
         forward): one line every other pair, 4 KB ahead */
      if (!(k & 1)) _mm_prefetch((const char *)(a + PF_AHEAD), _MM_HINT_T0);
      for (int r = 0; r < BMR; r++) {
         __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[r]);
         for (int v = 0; v < nv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, b[v]);
      }
   }
   for (int r = 0; r < BMR; r++)
      for (int v = 0; v < nv; v++) _mm512_storeu_ps(M + r * ldm + 16 * v, acc[r][v]);
}

#define DEF_KERN(name, nv, add)                                                              \
   BF16_TARGET static __attribute__((unused)) void                                           \
   name(float *M, int64_t ldm, const uint32_t *A, const uint32_t *B, int64_t ldb, int K2)     \
   {                                                                                         \
      kern_nv(M, ldm, A, B, ldb, K2, nv, add);                                               \
   }
DEF_KERN(bf16_kern3, 3, 0)
DEF_KERN(bf16_kern2, 2, 0)
DEF_KERN(bf16_kern1, 1, 0)
DEF_KERN(bf16_kern3_add, 3, 1)
DEF_KERN(bf16_kern2_add, 2, 1)
DEF_KERN(bf16_kern1_add, 1, 1)
#undef DEF_KERN

/* The BMR rows of M over the columns [0, nc), nc a multiple of 16: full
   BNR-wide micro-tiles, then one of 32 or 16 for the rest, so that few
   columns (the Winograd blocks of the 4x4 and 8x8 levels: 8 or 32 tiles at
   batch 8) multiply no more zero columns than 15. M += the products when
   add (the weight gradient's sums over chunks of slots). */
static __attribute__((unused)) void
bf16_kern_cols(float *M, int64_t ldm, const uint32_t *A, const uint32_t *B, int64_t ldb, int K2,
               int nc)
{
   int jb = 0;
   for (; jb + BNR <= nc; jb += BNR) bf16_kern3(M + jb, ldm, A, B + jb, ldb, K2);
   if (nc - jb == 32) bf16_kern2(M + jb, ldm, A, B + jb, ldb, K2);
   else if (nc - jb == 16) bf16_kern1(M + jb, ldm, A, B + jb, ldb, K2);
}

static __attribute__((unused)) void
bf16_kern_cols_add(float *M, int64_t ldm, const uint32_t *A, const uint32_t *B, int64_t ldb,
                   int K2, int nc)
{
   int jb = 0;
   for (; jb + BNR <= nc; jb += BNR) bf16_kern3_add(M + jb, ldm, A, B + jb, ldb, K2);
   if (nc - jb == 32) bf16_kern2_add(M + jb, ldm, A, B + jb, ldb, K2);
   else if (nc - jb == 16) bf16_kern1_add(M + jb, ldm, A, B + jb, ldb, K2);
}

#endif /* DDPM_BF16_KERN_H */
