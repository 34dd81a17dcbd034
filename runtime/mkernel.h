/*
 * mkernel.h — the runtime's register-blocked float32 micro-kernel, shared by
 * winograd.c and gemm.c. Private: not part of the public API.
 *
 * One call computes an MR x (NV*VL) tile: C[r][0..NV*VL) (+)= sum_k a(r,k)
 * B[k][0..NV*VL), with a(r,k) = A[r*ars + k*aks] broadcast and B's rows
 * loaded as vectors, so any layout of A works (rows or columns, packed or
 * not) and B needs only contiguous rows. AVX-512 (16 floats, 8 rows: 24
 * accumulators for NV = 3) where the compiler targets it, AVX2 + FMA (8
 * floats, 4 rows), else plain C. The multiply-adds are explicit FMAs: the
 * build's -std=c11 turns off the compiler's contraction everywhere else.
 */
#ifndef DDPM_MKERNEL_H
#define DDPM_MKERNEL_H

#include <stdint.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define VL 16
#define MR 8
#elif defined(__AVX2__) && defined(__FMA__)
#define VL 8
#define MR 4
#else
#define VL 1
#define MR 4
#endif

#if defined(__AVX512F__)
typedef __m512 vreg;
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vreg;
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#else
typedef float vreg;
#define VZERO() 0.0f
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VBCAST(p) (*(p))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#endif

/* Defines static void NAME(C, ldc, A, ars, aks, B, ldb, K, accumulate) for an
   MR x (NV*VL) tile; accumulate adds to C, else C is overwritten. */
#define DDPM_MKERNEL(NAME, NV)                                                                \
static void NAME(float *restrict Cm, int64_t ldc, const float *restrict A, int64_t ars,      \
                 int64_t aks, const float *restrict B, int64_t ldb, int K, int accumulate)    \
{                                                                                             \
   vreg acc[MR][NV];                                                                          \
   _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                      \
      _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[r][v] = VZERO();               \
   for (int k = 0; k < K; k++) {                                                              \
      vreg b[NV];                                                                             \
      _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) b[v] = VLOAD(B + k * ldb + v * VL);\
      const float *a = A + k * aks;                                                           \
      _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) {                                 \
         vreg x = VBCAST(a + r * ars);                                                        \
         _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[r][v] = VFMA(x, b[v], acc[r][v]); \
      }                                                                                       \
   }                                                                                          \
   _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                      \
      _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {                                  \
         float *c = Cm + r * ldc + v * VL;                                                    \
         VSTORE(c, accumulate ? VADD(VLOAD(c), acc[r][v]) : acc[r][v]);                       \
      }                                                                                       \
}

#endif /* DDPM_MKERNEL_H */
