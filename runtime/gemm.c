/*
 * gemm.c — row-major float32 GEMM on the runtime's own micro-kernel
 * (mkernel.h), for the U-Net's mid-sized products: attention (C, P <= a few
 * hundred) and 1x1 convolutions.
 *
 *    C[M,N] = alpha * op(A)[M,K] . op(B)[K,N] + beta * C
 *
 * Why not OpenBLAS for these: Debian's OpenBLAS 0.3.21 picks its Haswell
 * (AVX2) kernels on this CPU, and each call packs both operands and wakes its
 * threads; the micro-kernel here is AVX-512 where the compiler targets it,
 * reads A in place through strides (either transpose), and packs B only when
 * it must (transposed, or a last partial panel). Each output element is one
 * sum over k in order, so the bits do not depend on threads or blocking.
 *
 * What it isn't: a general BLAS. No K blocking (K up to a few thousand keeps
 * a B panel in L2), single-threaded unless called outside a parallel region
 * with enough work, and the caller provides the work space
 * (ddpm_gemm_fast_work_floats), so nothing is allocated.
 */
#include "bf16.h"
#include "kernels.h"
#include "mkernel.h"
#include "transpose.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if VL > 1
#define NV 3
#else
#define NV 8
#endif
#define NRG (VL * NV)          /* columns per B panel */

DDPM_MKERNEL(gemm_kern, NV)
#if NV == 3
DDPM_MKERNEL(gemm_kern1, 1)
DDPM_MKERNEL(gemm_kern2, 2)
#endif

/* The tile kernel for a panel of `cols` columns (all NRG of them computed
   when the kernel is wider: the packed panel is zero-padded). */
static void tile(int cols, float *c, int64_t ldc, const float *a, int64_t ars, int64_t aks,
                 const float *b, int64_t ldb, int K, int acc)
{
#if NV == 3
   if (cols <= VL) { gemm_kern1(c, ldc, a, ars, aks, b, ldb, K, acc); return; }
   if (cols <= 2 * VL) { gemm_kern2(c, ldc, a, ars, aks, b, ldb, K, acc); return; }
#endif
   gemm_kern(c, ldc, a, ars, aks, b, ldb, K, acc);
}

static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

size_t ddpm_gemm_fast_work_floats(int tb, int N, int K)
{
   if (N <= 0 || K <= 0) return 0;
   /* packed B: all panels when transposed, else the last partial one */
   const int64_t bp = tb ? round_up(N, NRG) : NRG;
   return (size_t)(K * bp + (int64_t)MR * K);
}

/* Panel j of op(B) into dst [K][NRG] (columns past N zero). */
static void pack_b(float *dst, int tb, int N, int K, const float *B, int ldb, int j)
{
   const int n0 = j * NRG, nn = N - n0 < NRG ? N - n0 : NRG;
   if (!tb) {
      for (int k = 0; k < K; k++) {
         float *d = dst + (int64_t)k * NRG;
         memcpy(d, B + (int64_t)k * ldb + n0, (size_t)nn * sizeof *d);
         for (int c = nn; c < NRG; c++) d[c] = 0.0f;
      }
      return;
   }
   /* op(B)[k][n] = B[n][k]: 8 columns x 8 k at a time, turned in registers
      (a float-by-float copy wrote every value to another cache line and
      cost as much as the product it fed: 1x1 convolutions' and attention's
      weight gradients) */
   const int c8 = nn / 8 * 8, k8 = K / 8 * 8;
   for (int c0 = 0; c0 < c8; c0 += 8) {
      const float *s = B + (int64_t)(n0 + c0) * ldb;
      for (int k0 = 0; k0 < k8; k0 += 8) {
         v8 t[8], o[8];
         for (int q = 0; q < 8; q++) memcpy(&t[q], s + (int64_t)q * ldb + k0, sizeof t[q]);
         ddpm_transpose8(o, t);
         for (int i = 0; i < 8; i++) memcpy(dst + (int64_t)(k0 + i) * NRG + c0, &o[i], sizeof o[i]);
      }
      for (int k = k8; k < K; k++)
         for (int q = 0; q < 8; q++) dst[(int64_t)k * NRG + c0 + q] = s[(int64_t)q * ldb + k];
   }
   for (int c = c8; c < NRG; c++) {
      float *d = dst + c;
      if (c >= nn) {
         for (int k = 0; k < K; k++) d[(int64_t)k * NRG] = 0.0f;
         continue;
      }
      const float *s = B + (int64_t)(n0 + c) * ldb;
      for (int k = 0; k < K; k++) d[(int64_t)k * NRG] = s[k];
   }
}

/* One product's operands and its layout in the work space. */
typedef struct gemm_args {
   int ta, tb, M, N, K;
   float alpha;
   const float *A;
   int lda;
   const float *B;
   int ldb;
   float beta;
   float *C;
   int ldc;
   float *Bp, *At;            /* packed B panels, the last rows of A */
   int np, mp, mfull, tail_n;
} gemm_args;

/* Thread t of nt: its share of the packing (transposed B's panels j = t,
   t + nt, ...; a partial last panel and the last rows of A by threads 0 and
   nt - 1). */
static void gemm_pack(const gemm_args *g, int t, int nt)
{
   if (g->tb) {
      for (int j = t; j < g->np; j += nt)
         pack_b(g->Bp + (int64_t)j * g->K * NRG, 1, g->N, g->K, g->B, g->ldb, j);
   } else if (g->tail_n && t == 0) {
      pack_b(g->Bp, 0, g->N, g->K, g->B, g->ldb, g->np - 1);
   }
   if (g->mfull < g->mp && t == nt - 1) {   /* the last rows, zero-padded to MR, as [k][MR] */
      const int m0 = g->mfull * MR, rows = g->M - m0;
      for (int k = 0; k < g->K; k++)
         for (int r = 0; r < MR; r++)
            g->At[(int64_t)k * MR + r] = r >= rows ? 0.0f
               : g->ta ? g->A[(int64_t)k * g->lda + m0 + r] : g->A[(int64_t)(m0 + r) * g->lda + k];
   }
}

/* Thread t of nt: tiles (j, i) in [j][i] order, a contiguous share of them. */
static void gemm_tiles(const gemm_args *g, int t, int nt)
{
   const int ta = g->ta, tb = g->tb, M = g->M, N = g->N, K = g->K;
   const float alpha = g->alpha, beta = g->beta;
   const float *A = g->A, *B = g->B;
   const int lda = g->lda, ldb = g->ldb, ldc = g->ldc;
   float *C = g->C;
   const float *Bp = g->Bp, *At = g->At;
   const int64_t ntiles = (int64_t)g->np * g->mp;
   const int64_t q0 = ntiles * t / nt, q1 = ntiles * (t + 1) / nt;
   for (int64_t q = q0; q < q1; q++) {
      const int j = (int)(q / g->mp), i = (int)(q % g->mp);
      const int m0 = i * MR, n0 = j * NRG;
      const int rows = M - m0 < MR ? M - m0 : MR, cols = N - n0 < NRG ? N - n0 : NRG;
      const float *a;
      int64_t ars, aks;
      if (rows == MR) {
         a = ta ? A + m0 : A + (int64_t)m0 * lda;
         ars = ta ? 1 : lda;
         aks = ta ? lda : 1;
      } else {
         a = At; ars = 1; aks = MR;
      }
      const float *b;
      int64_t ldbp;
      if (tb) { b = Bp + (int64_t)j * K * NRG; ldbp = NRG; }
      else if (cols < NRG) { b = Bp; ldbp = NRG; }
      else { b = B + n0; ldbp = ldb; }
      float *c = C + (int64_t)m0 * ldc + n0;
      if (rows == MR && cols == NRG && alpha == 1.0f && (beta == 0.0f || beta == 1.0f)) {
         gemm_kern(c, ldc, a, ars, aks, b, ldbp, K, beta == 1.0f);
         continue;
      }
      float tt[MR * NRG];
      tile(cols, tt, NRG, a, ars, aks, b, ldbp, K, 0);
      for (int r = 0; r < rows; r++)
         for (int qq = 0; qq < cols; qq++) {
            float *cc = c + (int64_t)r * ldc + qq;
            const float v = alpha * tt[r * NRG + qq];
            *cc = beta == 0.0f ? v : v + beta * *cc;
         }
   }
}

void ddpm_gemm_fast(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, float *work)
{
   if (M <= 0 || N <= 0) return;
   if (K <= 0) {
      for (int i = 0; i < M; i++)
         for (int j = 0; j < N; j++) {
            float *c = C + (int64_t)i * ldc + j;
            *c = beta == 0.0f ? 0.0f : beta * *c;
         }
      return;
   }
   const int np = (N + NRG - 1) / NRG, mp = (M + MR - 1) / MR;
   const int mfull = M / MR, tail_n = N % NRG != 0;
   /* B panels: packed ones (all when transposed, else only a partial last
      one) live in work; the others are read in place */
   float *Bp = work;
   float *At = work + (tb ? (int64_t)K * np * NRG : (int64_t)K * NRG);
   int par = 0;
#ifdef _OPENMP
   par = !omp_in_parallel() && omp_get_max_threads() > 1 && (double)M * N * K > 2e6;
#endif
   const gemm_args g = { ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, Bp, At, np, mp,
                         mfull, tail_n };
   if (!par) {   /* no parallel region at all: inside another one (each image's
                    product in a thread of its own) an inactive nested region
                    cost ~2 us and futex calls, thousands per training step */
      gemm_pack(&g, 0, 1);
      gemm_tiles(&g, 0, 1);
      return;
   }
   #pragma omp parallel
   {
      const int t = ddpm_omp_thread_num(), nt = ddpm_omp_num_threads();
      gemm_pack(&g, t, nt);
      #pragma omp barrier
      gemm_tiles(&g, t, nt);
   }
}

float *ddpm_gemm_ws_get(const ddpm_gemm_ws *ws)
{
   if (!ws || !ws->base) return NULL;
   int t = 0;
#ifdef _OPENMP
   t = omp_get_thread_num();
#endif
   return t < ws->n ? ws->base + (size_t)t * ws->per : NULL;
}

void ddpm_gemm_ws_run_units(const ddpm_gemm_ws *ws, int M, int N, int K, const float *A, int lda,
                            const float *B, int ldb, float beta, float *C, int ldc, int unit)
{
   if (unit <= 0 || N % unit != 0) unit = N;
   const double one = 2.0 * M * unit * K;   /* one unit's product decides */
   if (ws && ws->bf16 && one >= 4e6 &&
       ddpm_gemm_bf16(0, 0, M, N, K, 1.0f, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, ws) == 0)
      return;
   float *w = one >= 1e6 ? ddpm_gemm_ws_get(ws) : NULL;
   if (w && ddpm_gemm_fast_work_floats(0, N, K) <= ws->per) {
      ddpm_gemm_fast(0, 0, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, w);
      return;
   }
   for (int u = 0; u < N; u += unit)   /* BLAS: one unit per call, whatever N */
      ddpm_gemm(0, 0, M, unit, K, 1.0f, A, lda, B + u, ldb, beta, C + u, ldc);
}

void ddpm_gemm_ws_run(const ddpm_gemm_ws *ws, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc)
{
   /* below ~1 MFLOP (7x7 attention) OpenBLAS's call costs no more than the
      padding of a partial panel here */
   if (ws && ws->bf16 && 2.0 * M * N * K >= 4e6 &&
       ddpm_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, ws) == 0)
      return;
   float *w = 2.0 * M * N * K >= 1e6 ? ddpm_gemm_ws_get(ws) : NULL;
   if (w && ddpm_gemm_fast_work_floats(tb, N, K) <= ws->per)
      ddpm_gemm_fast(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, w);
   else
      ddpm_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
