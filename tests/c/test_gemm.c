/*
 * test_gemm.c — the runtime's own GEMM (runtime/gemm.c) against a naive
 * double product: every transpose combination, alpha and beta (beta = 0 must
 * not read C, which holds NaN), row and column counts that fill no register
 * tile, leading dimensions wider than the matrices (the columns past N stay
 * untouched), one thread and several (inside and outside a parallel region),
 * and the work-space dispatcher falling back to OpenBLAS.
 *
 * Each entry is a sum of K products computed by FMAs in k order; its error is
 * judged against the sum of |term|, like test_conv.c: 1e-6 is several times
 * K * 2^-24 for these K and far below a missing or misplaced term.
 */
#include "check.h"
#include "ddpm.h"
#include "kernels.h"

#include <omp.h>

static float *falloc(size_t n)
{
   float *p = malloc((n ? n : 1) * sizeof *p);
   if (!p) { printf("Bail out! out of memory\n"); exit(1); }
   return p;
}

typedef struct gcase { int M, N, K; } gcase;

/* One product through ddpm_gemm_fast (ws NULL) or ddpm_gemm_ws_run; returns
   the worst error / sum|term|, and clears *pad_ok when a column past N or a
   NaN'd beta = 0 entry went wrong. */
static double run(const gcase *g, int ta, int tb, float alpha, float beta, int threads,
                  int via_ws, unsigned seed, int *pad_ok)
{
   const int M = g->M, N = g->N, K = g->K;
   const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
   const size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
   const size_t nc = (size_t)M * ldc;
   float *A = falloc(na), *B = falloc(nb), *C = falloc(nc), *C0 = falloc(nc);
   size_t nw = ddpm_gemm_fast_work_floats(tb, N, K);
   float *w = falloc(nw * threads + 1);
   check_fill(A, na, seed);
   check_fill(B, nb, seed + 1);
   check_fill(C0, nc, seed + 2);
   if (beta == 0.0f)
      for (int i = 0; i < M; i++)
         for (int j = 0; j < N; j++) C0[(size_t)i * ldc + j] = NAN;
   memcpy(C, C0, nc * sizeof *C);
   omp_set_num_threads(threads);
   if (via_ws) {
      ddpm_gemm_ws ws = { w, nw, threads, 0 };
      ddpm_gemm_ws_run(&ws, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
   } else {
      ddpm_gemm_fast(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, w);
   }
   double worst = 0;
   for (int i = 0; i < M; i++)
      for (int j = 0; j < ldc; j++) {
         const size_t ci = (size_t)i * ldc + j;
         if (j >= N) {
            if (memcmp(&C[ci], &C0[ci], sizeof *C)) *pad_ok = 0;
            continue;
         }
         double s = 0, mag = 0;
         for (int k = 0; k < K; k++) {
            double t = (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                       (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            s += t;
            mag += fabs(t);
         }
         s *= alpha;
         mag *= fabs(alpha);
         if (beta != 0.0f) {
            s += (double)beta * C0[ci];
            mag += fabs((double)beta * C0[ci]);
         }
         double e = fabs(C[ci] - s) / (mag + 1e-30);
         if (!(e <= worst)) worst = e;
      }
   free(A); free(B); free(C); free(C0); free(w);
   return worst;
}

int main(void)
{
   static const gcase cases[] = {
      { 1, 1, 1 }, { 7, 5, 3 }, { 8, 48, 16 }, { 9, 49, 17 }, { 33, 100, 70 },
      { 64, 256, 256 }, { 3, 1024, 128 }, { 128, 49, 64 }, { 17, 97, 1 }, { 256, 16, 256 },
      { 40, 200, 300 }, { 21, 101, 600 }, { 16, 96, 513 },
   };
   const int saved = omp_get_max_threads();
   int pad_ok = 1;
   double worst = 0;
   int n = 0;
   for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
      for (int ta = 0; ta < 2; ta++)
         for (int tb = 0; tb < 2; tb++)
            for (int ab = 0; ab < 3; ab++) {
               const float alpha = ab == 2 ? 0.5f : 1.0f;
               const float beta = ab == 0 ? 0.0f : ab == 1 ? 1.0f : -0.7f;
               const int threads = 1 + (int)((c + ab) % 3);
               double e = run(&cases[c], ta, tb, alpha, beta, threads, 0, (unsigned)(c * 17 + ab),
                              &pad_ok);
               if (!(e <= worst)) worst = e;
               n++;
            }
   printf("# %d products, worst error / sum|term| %.3g\n", n, worst);
   CHECK(worst <= 1e-6, "every transpose, alpha, beta and shape matches the naive product");
   CHECK(pad_ok, "columns past N untouched; beta = 0 never reads C");

   /* the dispatcher: big enough goes to ddpm_gemm_fast, small to OpenBLAS */
   pad_ok = 1;
   static const gcase big = { 64, 160, 128 }, small = { 5, 7, 3 };
   double eb = run(&big, 1, 1, 1.0f, 1.0f, 2, 1, 99, &pad_ok);
   double es = run(&small, 0, 1, 1.0f, 0.0f, 2, 1, 98, &pad_ok);
   CHECK(eb <= 1e-6 && es <= 1e-6 && pad_ok, "work-space dispatch (%.2g, %.2g)", eb, es);

   /* same bits for 1 and 3 threads (each element is one sum in k order) */
   {
      const int M = 100, N = 150, K = 200;
      float *A = falloc((size_t)M * K), *B = falloc((size_t)K * N);
      float *C1 = falloc((size_t)M * N), *C3 = falloc((size_t)M * N);
      float *w = falloc(ddpm_gemm_fast_work_floats(1, N, K));
      check_fill(A, (size_t)M * K, 5);
      check_fill(B, (size_t)K * N, 6);
      omp_set_num_threads(1);
      ddpm_gemm_fast(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N, w);
      omp_set_num_threads(3);
      ddpm_gemm_fast(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C3, N, w);
      CHECK(memcmp(C1, C3, (size_t)M * N * sizeof *C1) == 0, "same bits for 1 and 3 threads");
      free(A); free(B); free(C1); free(C3); free(w);
   }
   /* a column's bits do not depend on the columns beside it (an image's on
      its batch): N = 150 and its first 50 (a full panel there, part of a
      partial one here), K = 700 summed in blocks, beta 0 and 1 */
   {
      const int M = 19, N = 150, K = 700, n2 = 50;
      float *A = falloc((size_t)M * K), *B = falloc((size_t)K * N), *Bt = falloc((size_t)N * K);
      float *Cw = falloc((size_t)M * N), *Cn = falloc((size_t)M * n2);
      float *w = falloc(ddpm_gemm_fast_work_floats(1, N, K));
      check_fill(A, (size_t)M * K, 7);
      check_fill(B, (size_t)K * N, 8);
      for (int k = 0; k < K; k++)
         for (int j = 0; j < N; j++) Bt[(size_t)j * K + k] = B[(size_t)k * N + j];
      omp_set_num_threads(2);
      int same = 1;
      for (int tb = 0; tb < 2; tb++)
         for (int beta = 0; beta < 2; beta++) {
            check_fill(Cw, (size_t)M * N, 9);
            for (int i = 0; i < M; i++) memcpy(Cn + (size_t)i * n2, Cw + (size_t)i * N, n2 * 4);
            ddpm_gemm_fast(0, tb, M, N, K, 1.0f, A, K, tb ? Bt : B, tb ? K : N, (float)beta,
                           Cw, N, w);
            ddpm_gemm_fast(0, tb, M, n2, K, 1.0f, A, K, tb ? Bt : B, tb ? K : N, (float)beta,
                           Cn, n2, w);
            for (int i = 0; i < M; i++)
               if (memcmp(Cn + (size_t)i * n2, Cw + (size_t)i * N, n2 * 4)) same = 0;
         }
      CHECK(same, "a column's bits do not depend on N (K = %d, both B layouts, beta 0 and 1)", K);
      free(A); free(B); free(Bt); free(Cw); free(Cn); free(w);
   }
   omp_set_num_threads(saved);
   return check_done();
}
