/*
 * blas.c — the one caller of cblas_sgemm: a row-major GEMM wrapper.
 */
#include "ddpm.h"

#include <cblas.h>

void ddpm_gemm(int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc)
{
   cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
               M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
