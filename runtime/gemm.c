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
 * it must (transposed, or a last partial panel). Each output element is
 * summed in k order, GEMM_KC k at a time added to the running sum, the same
 * way for every tile, so the bits depend on K alone: not on threads, nor on
 * the other rows or columns (an image's, not on its batch).
 *
 * What it isn't: a general BLAS. No M or N blocking beyond the panels,
 * single-threaded unless called outside a parallel region with enough work,
 * and the caller provides the work space (ddpm_gemm_fast_work_floats), so
 * nothing is allocated.
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

/* Sums go GEMM_KC k at a time: the B panel's GEMM_KC x NRG slice stays in
   L1 while a panel's row blocks pass (the whole panel, a few thousand k,
   was streamed from L2 for every tile: a 128 x 2048 x 1152 product with B
   in place, ~149 GFLOP/s on 2 threads, runs at ~176). Every tile adds its
   blocks in the same order, so an element's bits depend on K alone, not on
   where its tile lies (a batch's columns, the threads). */
#ifndef GEMM_KC
#define GEMM_KC 256
#endif

/* Tile (i, j), its k blocks one after another: the tiles that are not a
   full MR x NRG block added straight into C (a partial row block or panel,
   or alpha and beta other than 1 and 0 or 1), through a tile in registers
   and memory tt: with alpha 1 and beta 0 or 1 tt starts from C's (or 0)
   and takes each block's sum as a full tile would, else tt sums the blocks
   and C = alpha tt + beta C. */
static void one_tile(const gemm_args *g, int i, int j, int simple)
{
   const int ta = g->ta, K = g->K, lda = g->lda, ldc = g->ldc;
   const int m0 = i * MR, n0 = j * NRG;
   const int rows = g->M - m0 < MR ? g->M - m0 : MR, cols = g->N - n0 < NRG ? g->N - n0 : NRG;
   const float *a;
   int64_t ars, aks;
   if (rows == MR) {
      a = ta ? g->A + m0 : g->A + (int64_t)m0 * lda;
      ars = ta ? 1 : lda;
      aks = ta ? lda : 1;
   } else {
      a = g->At; ars = 1; aks = MR;
   }
   const float *b;
   int64_t ldbp;
   if (g->tb) { b = g->Bp + (int64_t)j * K * NRG; ldbp = NRG; }
   else if (cols < NRG) { b = g->Bp; ldbp = NRG; }
   else { b = g->B + n0; ldbp = g->ldb; }
   float *c = g->C + (int64_t)m0 * ldc + n0;
   float tt[MR * NRG];
   const int from_c = simple && g->beta == 1.0f;
   if (from_c)
      for (int r = 0; r < MR; r++)
         for (int q = 0; q < NRG; q++)
            tt[r * NRG + q] = r < rows && q < cols ? c[(int64_t)r * ldc + q] : 0.0f;
   for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
      const int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
      tile(cols, tt, NRG, a + (int64_t)k0 * aks, ars, aks, b + (int64_t)k0 * ldbp, ldbp, kc,
           k0 > 0 || from_c);
   }
   for (int r = 0; r < rows; r++)
      for (int q = 0; q < cols; q++) {
         float *cc = c + (int64_t)r * ldc + q;
         const float v = tt[r * NRG + q];
         *cc = simple ? v : g->beta == 0.0f ? g->alpha * v : g->alpha * v + g->beta * *cc;
      }
}

/* Thread t of nt: tiles (j, i) in [j][i] order, a contiguous share of them;
   within a panel, the full tiles k block by k block. */
static void gemm_tiles(const gemm_args *g, int t, int nt)
{
   const int K = g->K, ta = g->ta, lda = g->lda, ldc = g->ldc;
   const int simple = g->alpha == 1.0f && (g->beta == 0.0f || g->beta == 1.0f);
   const int64_t ntiles = (int64_t)g->np * g->mp;
   const int64_t q0 = ntiles * t / nt, q1 = ntiles * (t + 1) / nt;
   for (int64_t q = q0; q < q1;) {
      const int j = (int)(q / g->mp), i0 = (int)(q % g->mp);
      const int64_t qe = (int64_t)(j + 1) * g->mp < q1 ? (int64_t)(j + 1) * g->mp : q1;
      const int i1 = i0 + (int)(qe - q);
      const int n0 = j * NRG, full_cols = g->N - n0 >= NRG;
      /* full tiles: row blocks [i0, ie) */
      const int ie = simple && full_cols ? (g->mfull < i1 ? g->mfull : i1) : i0;
      if (ie > i0) {
         const float *b = g->tb ? g->Bp + (int64_t)j * K * NRG : g->B + n0;
         const int64_t ldbp = g->tb ? NRG : g->ldb;
         for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
            const int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
            for (int i = i0; i < ie; i++) {
               const int m0 = i * MR;
               const float *a = ta ? g->A + m0 + (int64_t)k0 * lda
                                   : g->A + (int64_t)m0 * lda + k0;
               gemm_kern(g->C + (int64_t)m0 * ldc + n0, ldc, a, ta ? 1 : lda, ta ? lda : 1,
                         b + (int64_t)k0 * ldbp, ldbp, kc, k0 > 0 || g->beta == 1.0f);
            }
         }
      }
      for (int i = ie > i0 ? ie : i0; i < i1; i++) one_tile(g, i, j, simple);
      q = qe;
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
