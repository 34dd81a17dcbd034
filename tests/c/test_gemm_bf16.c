/*
 * test_gemm_bf16.c — gemm_bf16.c, the batched GEMM with bfloat16 products
 * (attention and 1x1 convolutions in the bf16 precision), against a sum in
 * double of the products of the operands rounded to bfloat16 here.
 *
 * What must hold: every element within K * 2^-24 of the sum of |terms| of
 * that reference (float32 sums of exact products: vdpbf16ps multiplies
 * bfloat16 exactly), which a float32 GEMM on the unrounded operands misses
 * by far (the operands here carry bits below bfloat16's 8); all four
 * transpositions, ragged M, N and odd K, alpha and beta, a batch with one
 * shared A and with one A per item; the same bits at 1 and 2 threads and
 * when two threads of an outer parallel region each run their own product;
 * and a work space too small declines (returns -1) without writing C.
 */
#include "check.h"
#include "ddpm.h"
#include "bf16.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* float32 rounded to bfloat16, nearest even, as a float */
static float to_bf16(float f)
{
   uint32_t u;
   memcpy(&u, &f, 4);
   u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
   memcpy(&f, &u, 4);
   return f;
}

static void fill(float *p, size_t n, uint64_t seed)
{
   for (size_t i = 0; i < n; i++) p[i] = 2.0f * ddpm_rng_uniform_at(seed, i) - 1.0f;
}

typedef struct gcase { int ta, tb, M, N, K, nbatch, shared_a; float alpha, beta; } gcase;

/* Worst |got - ref| / (K 2^-24 sum|terms| + 1e-30) over the batch: at most 1 passes. */
static double worst(const gcase *g, const float *A, const float *B, const float *C0,
                    const float *C, int64_t sa, int64_t sb, int64_t sc)
{
   const int lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N;
   double w = 0;
   for (int b = 0; b < g->nbatch; b++)
      for (int i = 0; i < g->M; i++)
         for (int j = 0; j < g->N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < g->K; k++) {
               const float a = g->ta ? A[b * sa + (int64_t)k * lda + i]
                                     : A[b * sa + (int64_t)i * lda + k];
               const float x = g->tb ? B[b * sb + (int64_t)j * ldb + k]
                                     : B[b * sb + (int64_t)k * ldb + j];
               const double t = (double)to_bf16(a) * to_bf16(x);
               s += t;
               mag += fabs(t);
            }
            const int64_t at = b * sc + (int64_t)i * g->N + j;
            const double ref = g->alpha * s + g->beta * C0[at];
            const double bound =
               g->K * ldexp(1.0, -24) * (fabs(g->alpha) * mag + fabs(g->beta * C0[at])) + 1e-30;
            const double e = fabs(C[at] - ref) / bound;
            if (e > w) w = e;
         }
   return w;
}

static void run_case(const gcase *g)
{
   const int64_t asz = (int64_t)g->M * g->K, bsz = (int64_t)g->K * g->N, csz = (int64_t)g->M * g->N;
   const int64_t sa = g->shared_a ? 0 : asz;
   const int na = g->shared_a ? 1 : g->nbatch;
   float *A = malloc(asz * na * 4), *B = malloc(bsz * g->nbatch * 4);
   float *C0 = malloc(csz * g->nbatch * 4), *C1 = malloc(csz * g->nbatch * 4);
   float *C2 = malloc(csz * g->nbatch * 4);
   fill(A, asz * na, 11);
   fill(B, bsz * g->nbatch, 12);
   fill(C0, csz * g->nbatch, 13);
   const size_t per = ddpm_gemm_bf16_work_floats(g->M, g->N, g->K);
   float *work = aligned_alloc(64, (2 * per + 16) * 4);
   const int lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N;
   memcpy(C1, C0, csz * g->nbatch * 4);
   memcpy(C2, C0, csz * g->nbatch * 4);
   omp_set_num_threads(1);
   ddpm_gemm_ws w1 = { work, per, 1, 1 };
   int rc1 = ddpm_gemm_bf16(g->ta, g->tb, g->M, g->N, g->K, g->alpha, A, lda, sa, B, ldb, bsz,
                            g->beta, C1, g->N, csz, g->nbatch, &w1);
   omp_set_num_threads(2);
   ddpm_gemm_ws w2 = { work, per, 2, 1 };
   int rc2 = ddpm_gemm_bf16(g->ta, g->tb, g->M, g->N, g->K, g->alpha, A, lda, sa, B, ldb, bsz,
                            g->beta, C2, g->N, csz, g->nbatch, &w2);
   const double e = worst(g, A, B, C0, C1, sa, bsz, csz);
   CHECK(rc1 == 0 && rc2 == 0 && e <= 1.0,
         "ta%d tb%d %dx%dx%d batch %d (%s A), alpha %g beta %g: within K 2^-24 sum|terms| of the "
         "bfloat16 reference (worst %.3f of the bound)", g->ta, g->tb, g->M, g->N, g->K,
         g->nbatch, g->shared_a ? "shared" : "own", g->alpha, g->beta, e);
   CHECK(!memcmp(C1, C2, csz * g->nbatch * 4), "  the same bits at 1 and 2 threads");
   free(A); free(B); free(C0); free(C1); free(C2); free(work);
}

/* A float32 product would not pass: the operands' bits below bfloat16 matter. */
static void test_not_float32(void)
{
   const int M = 16, N = 32, K = 64;
   float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *C = malloc(M * N * 4);
   fill(A, M * K, 21);
   fill(B, K * N, 22);
   double s = 0, mag = 0, f = 0;
   for (int k = 0; k < K; k++) {
      s += (double)to_bf16(A[k]) * to_bf16(B[(int64_t)k * N]);
      f += (double)A[k] * B[(int64_t)k * N];
      mag += fabs((double)A[k] * B[(int64_t)k * N]);
   }
   CHECK(fabs(s - f) > 10 * K * ldexp(1.0, -24) * mag,
         "the reference differs from float32's by more than 10x the bound (%.3g of sum|terms|)",
         fabs(s - f) / mag);
   const size_t per = ddpm_gemm_bf16_work_floats(M, N, K);
   float *work = aligned_alloc(64, (per + 16) * 4);
   omp_set_num_threads(1);
   ddpm_gemm_ws ws = { work, per, 1, 1 };
   ddpm_gemm_bf16(0, 0, M, N, K, 1.0f, A, K, 0, B, N, 0, 0.0f, C, N, 0, 1, &ws);
   CHECK(fabs(C[0] - s) < 1e-6 * mag, "and the product matches the bfloat16 one (%.3g vs %.3g)",
         C[0], s);
   /* too small a region: declined, C untouched */
   for (int i = 0; i < M * N; i++) C[i] = 7.0f;
   ddpm_gemm_ws small = { work, per - 1, 1, 1 };
   int rc = ddpm_gemm_bf16(0, 0, M, N, K, 1.0f, A, K, 0, B, N, 0, 0.0f, C, N, 0, 1, &small);
   int untouched = 1;
   for (int i = 0; i < M * N; i++) untouched &= C[i] == 7.0f;
   CHECK(rc == -1 && untouched, "a region one float short: declined (-1), C not written");
   free(A); free(B); free(C); free(work);
}

/* Two threads of an outer region, each its own product in its own region
   of one work space: the results of running them one after the other. */
static void test_inside_parallel(void)
{
   const int M = 72, N = 100, K = 96;
   const size_t per = ddpm_gemm_bf16_work_floats(M, N, K);
   float *work = aligned_alloc(64, (2 * per + 16) * 4);
   float *A = malloc(2 * M * K * 4), *B = malloc(2 * K * N * 4);
   float *Cp = malloc(2 * M * N * 4), *Cs = malloc(2 * M * N * 4);
   fill(A, 2 * M * K, 31);
   fill(B, 2 * K * N, 32);
   omp_set_num_threads(2);
   ddpm_gemm_ws ws = { work, per, 2, 1 };
   int rc[2] = { -2, -2 };
   #pragma omp parallel num_threads(2)
   {
      const int t = omp_get_thread_num();
      rc[t] = ddpm_gemm_bf16(1, 1, M, N, K, 1.0f, A + t * M * K, M, 0, B + t * K * N, K, 0, 0.0f,
                             Cp + t * M * N, N, 0, 1, &ws);
   }
   for (int t = 0; t < 2; t++)
      ddpm_gemm_bf16(1, 1, M, N, K, 1.0f, A + t * M * K, M, 0, B + t * K * N, K, 0, 0.0f,
                     Cs + t * M * N, N, 0, 1, &ws);
   CHECK(rc[0] == 0 && rc[1] == 0 && !memcmp(Cp, Cs, 2 * M * N * 4),
         "two threads of an outer parallel region, each its own product: the bits of running "
         "them one by one");
   free(work); free(A); free(B); free(Cp); free(Cs);
}

int main(void)
{
   if (!ddpm_bf16_available()) {
      printf("# this CPU has no AVX512-BF16 (or DDPM_NO_BF16 is set): the U-Net never calls "
             "gemm_bf16.c; nothing to test\n");
      return check_done();
   }
   static const gcase cases[] = {
      {0, 0, 256, 256, 256, 1, 1, 1.0f, 0.0f},    /* attention's projections */
      {1, 0, 256, 256, 256, 1, 1, 0.0625f, 0.0f}, /* its scores, q^T k, scaled */
      {0, 1, 256, 256, 256, 1, 1, 1.0f, 0.0f},    /* v att^T */
      {1, 1, 40, 70, 33, 1, 1, 1.0f, 1.0f},
      {0, 0, 128, 1024, 256, 1, 1, 1.0f, 1.0f},   /* a 1x1 convolution, accumulating */
      {0, 0, 37, 53, 67, 3, 1, 0.5f, 0.0f},       /* ragged, odd K, a shared A */
      {1, 0, 37, 53, 67, 3, 0, 1.0f, -0.5f},      /* one A per item */
      {0, 1, 9, 17, 1, 2, 0, 1.0f, 0.0f},
      {1, 1, 8, 16, 2, 5, 1, 2.0f, 0.25f},
      {0, 0, 130, 300, 255, 1, 0, 1.0f, 0.0f},
   };
   for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
   test_not_float32();
   test_inside_parallel();
   return check_done();
}
