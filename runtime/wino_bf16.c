/*
 * wino_bf16.c — the forward of a 3x3 stride-1 "same" convolution with the
 * Winograd domain's products in bfloat16 (AVX512-BF16), for inference.
 *
 * Same algorithm as winograd.c, F(4x4, 3x3): per position xi of the 6x6
 * Winograd domain one GEMM  M[xi] (O x slots) = U[xi] (O x I) . V[xi] (I x slots),
 * then Y = A^T M A per tile. What differs is the GEMM: U and V are rounded
 * to bfloat16 (nearest even) and multiplied by vdpbf16ps, which takes one
 * pair of input channels per 32-bit lane and adds both products to a float32
 * sum; so U and V store the channels of a pair side by side:
 *    U  [O/8 panels][36 xi][I/2 pairs][8 rows]   (one 32-bit word: channels 2k, 2k+1)
 *    V  [block][36 xi][I/2 pairs][BTB slots]     (one word per slot and pair)
 * The tile transforms stay float32 (the input transform is winograd.c's):
 * only the products lose precision, about 2^-9 relative per operand.
 *
 * U comes from ddpm_wino_bf16_filters, once per change of the weights (the
 * U-Net caches it, unet_bf16.c). A call runs in two parallel phases: every
 * block's input transform (by block and channel pair), then per block and
 * group of BOB output rows the 36 GEMMs into a thread's own M and that
 * group's output transform.
 *
 * Every function that uses AVX512-BF16 instructions carries a target
 * attribute, so the rest of the build needs no flag; callers must check
 * ddpm_bf16_available() first (unet_bf16.c does).
 *
 * Not here: gradients (training stays float32), odd input counts, other
 * kernel sizes or strides (those layers run in float32).
 */
#include "bf16.h"
#include "winograd.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define BF16_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512bf16")))

#define BMR 8      /* micro-kernel rows (output channels) */
#define BNV 3      /* micro-kernel vectors of 16 slots */
#define BNR (16 * BNV)
#define BTB 96     /* slots per block: a multiple of BNR */
#define BOB 32     /* output rows per GEMM work item: a multiple of BMR */

int ddpm_bf16_available(void)
{
   static int known = -1;
   if (known < 0) {
      const char *off = getenv("DDPM_NO_BF16");
      __builtin_cpu_init();
      known = (!off || !*off || !strcmp(off, "0")) && __builtin_cpu_supports("avx512bf16") &&
              __builtin_cpu_supports("avx512bw");
   }
   return known;
}

/* float32 -> bfloat16, round to nearest even (NaN stays NaN). */
static uint16_t to_bf16(float f)
{
   uint32_t u;
   memcpy(&u, &f, sizeof u);
   if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
   u += 0x7fffu + ((u >> 16) & 1);
   return (uint16_t)(u >> 16);
}

/* ------------------------------------------------------------ filters */

size_t ddpm_wino_bf16_filter_words(int O, int I)
{
   return (size_t)round_up(O, BMR) * NXI * (size_t)(I / 2);
}

/* G g G^T of one 3x3 filter: u[6][6] (G's rows: 1/4 0 0; -1/6 -1/6 -1/6;
   -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1, as winograd.c). */
static void filter6(float u[6][6], const float *w)
{
   float t[6][3];
   for (int c = 0; c < 3; c++) {
      const float a = w[c], b = w[3 + c], d = w[6 + c];
      t[0][c] = a * 0.25f;
      t[1][c] = -(a + b + d) / 6.0f;
      t[2][c] = -(a - b + d) / 6.0f;
      t[3][c] = a / 24.0f + b / 12.0f + d / 6.0f;
      t[4][c] = a / 24.0f - b / 12.0f + d / 6.0f;
      t[5][c] = d;
   }
   for (int r = 0; r < 6; r++) {
      const float a = t[r][0], b = t[r][1], d = t[r][2];
      u[r][0] = a * 0.25f;
      u[r][1] = -(a + b + d) / 6.0f;
      u[r][2] = -(a - b + d) / 6.0f;
      u[r][3] = a / 24.0f + b / 12.0f + d / 6.0f;
      u[r][4] = a / 24.0f - b / 12.0f + d / 6.0f;
      u[r][5] = d;
   }
}

void ddpm_wino_bf16_filters(uint32_t *U, const float *weight, int O, int I)
{
   const int Op = (int)round_up(O, BMR), I2 = I / 2;
   uint16_t *Uh = (uint16_t *)U;
   #pragma omp parallel for schedule(static)
   for (int o = 0; o < Op; o++) {
      const int p = o / BMR, q = o % BMR;
      for (int i = 0; i < I; i++) {
         float u[6][6];
         if (o < O) filter6(u, weight + ((size_t)o * I + i) * 9);
         else memset(u, 0, sizeof u);
         for (int x = 0; x < NXI; x++) {
            size_t word = (((size_t)p * NXI + x) * I2 + i / 2) * BMR + q;
            Uh[2 * word + (i & 1)] = to_bf16(u[x / 6][x % 6]);
         }
      }
   }
}

/* ------------------------------------------------------------ micro-kernel */

/* M[r][0..BNR) = sum over pairs k of A[k][r] . B[k][0..BNR) (r < BMR). */
BF16_TARGET
static void kern_bf16(float *restrict M, int64_t ldm, const uint32_t *restrict A,
                      const uint32_t *restrict B, int64_t ldb, int K2)
{
   __m512 acc[BMR][BNV];
   for (int r = 0; r < BMR; r++)
      for (int v = 0; v < BNV; v++) acc[r][v] = _mm512_setzero_ps();
   for (int k = 0; k < K2; k++) {
      __m512bh b[BNV];
      for (int v = 0; v < BNV; v++)
         b[v] = (__m512bh)_mm512_loadu_si512((const void *)(B + k * ldb + 16 * v));
      const uint32_t *a = A + (int64_t)k * BMR;
      for (int r = 0; r < BMR; r++) {
         __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[r]);
         for (int v = 0; v < BNV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, b[v]);
      }
   }
   for (int r = 0; r < BMR; r++)
      for (int v = 0; v < BNV; v++) _mm512_storeu_ps(M + r * ldm + 16 * v, acc[r][v]);
}

/* Vw[x * xs + s] (s < n, n a multiple of 16) = the pair (T0, T1)[x * xstride(BTB) + s]
   rounded to bfloat16, T0 in the low half. */
BF16_TARGET
static void pack_pairs(uint32_t *Vw, int64_t xs, const float *T0, const float *T1, int n)

{
   const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                        24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                        16, 0);
   for (int x = 0; x < NXI; x++)
      for (int s = 0; s < n; s += 16) {
         __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(T1 + x * xstride(BTB) + s),
                                          _mm512_loadu_ps(T0 + x * xstride(BTB) + s));
         _mm512_storeu_si512((void *)(Vw + x * xs + s),
                             _mm512_permutexvar_epi16(idx, (__m512i)h));
      }
}

/* ------------------------------------------------------------ output transform */

/* A^T m: 6 -> 4 (as winograd.c) */
static inline void at6b(v8 y[4], const v8 m[6])
{
   const v8 s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
   y[0] = m[0] + s12 + s34;
   y[1] = d12 + d34 * 2.0f;
   y[2] = s12 + s34 * 4.0f;
   y[3] = d12 + d34 * 8.0f + m[5];
}

/* Output channel oc of the 8 slots at j (pairs pr, pr[0].n >= 0) from
   M[xi * xs + j]: the inverse transform, bias, per-image bias, residual. */
BF16_TARGET
static void out_tile8(float *out, const float *M, int64_t xs, int j, const geom *g, int O,
                      int oc, const pairpos *pr, const ddpm_conv_epi *e)
{
   v8 t[4][6];
   for (int l = 0; l < 6; l++) {
      v8 m[6], y[4];
      for (int k = 0; k < 6; k++) m[k] = loadv(M + (6 * k + l) * xs + j);
      at6b(y, m);
      for (int a = 0; a < 4; a++) t[a][l] = y[a];
   }
   const float bias = e && e->bias ? e->bias[oc] : 0.0f;
   const float *add = e ? e->add : NULL;
   const size_t plane = (size_t)g->H * g->W;
   for (int a = 0; a < 4; a++) {
      v8 y[4];
      at6b(y, t[a]);
      /* lanes are slots; regroup into the 4 pairs' 8 output columns */
      __m256 t0 = _mm256_unpacklo_ps((__m256)y[0], (__m256)y[1]);
      __m256 t1 = _mm256_unpackhi_ps((__m256)y[0], (__m256)y[1]);
      __m256 t2 = _mm256_unpacklo_ps((__m256)y[2], (__m256)y[3]);
      __m256 t3 = _mm256_unpackhi_ps((__m256)y[2], (__m256)y[3]);
      __m256 s04 = _mm256_shuffle_ps(t0, t2, 0x44), s15 = _mm256_shuffle_ps(t0, t2, 0xEE);
      __m256 s26 = _mm256_shuffle_ps(t1, t3, 0x44), s37 = _mm256_shuffle_ps(t1, t3, 0xEE);
      v8 q[4] = { (v8)_mm256_permute2f128_ps(s04, s15, 0x20),
                  (v8)_mm256_permute2f128_ps(s26, s37, 0x20),
                  (v8)_mm256_permute2f128_ps(s04, s15, 0x31),
                  (v8)_mm256_permute2f128_ps(s26, s37, 0x31) };
      for (int p = 0; p < 4 && pr[p].n >= 0; p++) {
         const int yy = 4 * pr[p].ty + a, x0 = 4 * pr[p].tx;
         if (yy >= g->H || x0 >= g->W) continue;
         const float b = bias + (e && e->bias_nc ? e->bias_nc[(size_t)pr[p].n * O + oc] : 0.0f);
         const size_t off = ((size_t)pr[p].n * O + oc) * plane + (size_t)yy * g->W + x0;
         v8 v = q[p] + b;
         if (x0 + 8 <= g->W) {
            if (add) v += loadv(add + off);
            storev(out + off, v);
         } else {
            for (int c = 0; c < g->W - x0; c++) out[off + c] = v[c] + (add ? add[off + c] : 0.0f);
         }
      }
   }
}

/* ------------------------------------------------------------ driver */

/* Distances between xi planes: odd numbers of cache lines (winograd.h's
   xstride), so that the 36 streams of a transform use different L1 sets. */
#define TXS xstride(BTB)                      /* phase 1's float32 V */
static int64_t mxs(void) { return xstride((int64_t)BOB * BTB); }
static int64_t vxs(int I) { return xstride((int64_t)(I / 2) * BTB); }

static int64_t v_words(const geom *g, int I)
{
   const int64_t nblk = (g->S + BTB - 1) / BTB;
   return nblk * NXI * vxs(I);
}

static int64_t thread_floats(void) { return NXI * mxs() + 2 * NXI * TXS; }

size_t ddpm_wino_bf16_scratch_floats(int N, int I, int O, int H, int W, int threads)
{
   const geom g = make_geom(N, H, W);
   (void)O;
   return (size_t)(v_words(&g, I) + (int64_t)threads * thread_floats());
}

BF16_TARGET
void ddpm_wino_bf16_forward(float *out, float *scratch, const float *in, const uint32_t *U,
                            const ddpm_conv_epi *e, int N, int I, int H, int W, int O)
{
   if (N <= 0 || I <= 0 || O <= 0 || H <= 0 || W <= 0) return;
   const geom g = make_geom(N, H, W);
   const int I2 = I / 2, Op = (int)round_up(O, BMR), nog = (Op + BOB - 1) / BOB;
   const int64_t nblk = (g.S + BTB - 1) / BTB, vx = vxs(I), vblk = NXI * vx, mx = mxs();
   const int64_t plane = (int64_t)H * W, upanel = (int64_t)NXI * I2 * BMR;
   uint32_t *V = (uint32_t *)scratch;
   float *priv = scratch + v_words(&g, I);
   #pragma omp parallel
   {
#ifdef _OPENMP
      float *T = priv + (int64_t)omp_get_thread_num() * thread_floats();
#else
      float *T = priv;
#endif
      float *M = T + 2 * NXI * TXS;
      float rb[4 * 6 * g.rw];
      pairpos pr[BTB / 2 + 4];
      /* phase 1: V of every block, by block and channel pair */
      #pragma omp for schedule(dynamic, 4)
      for (int64_t it = 0; it < nblk * I2; it++) {
         const int64_t b = it / I2, s0 = b * BTB;
         const int k = (int)(it % I2);
         const int nslot = g.S - s0 < BTB ? (int)(g.S - s0) : BTB;
         const int nc = (int)round_up(nslot, BNR);
         ddpm_wino_block_pairs(pr, &g, s0, nslot);
         for (int h = 0; h < 2; h++) {
            float *Th = T + h * NXI * TXS;
            rowring r;
            ddpm_wino_ring_init(&r, rb, 6, -1, -1);
            for (int j = 0; j < nslot; j += 8)
               ddpm_wino_input_task(Th, TXS, j, &r, &g, in + (int64_t)(2 * k + h) * plane,
                                    (int64_t)I * plane, pr + j / 2);
            for (int x = 0; x < NXI; x++)
               for (int j = nslot; j < nc; j++) Th[x * TXS + j] = 0.0f;
         }
         pack_pairs(V + b * vblk + (int64_t)k * BTB, vx, T, T + NXI * TXS, nc);
      }
      /* phase 2: per block and group of output rows, 36 GEMMs and the
         output transform of those rows */
      #pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < nblk * nog; it++) {
         const int64_t b = it / nog, s0 = b * BTB;
         const int o0 = (int)(it % nog) * BOB, o1 = o0 + BOB < Op ? o0 + BOB : Op;
         const int nslot = g.S - s0 < BTB ? (int)(g.S - s0) : BTB;
         const int nc = (int)round_up(nslot, BNR);
         const uint32_t *Vb = V + b * vblk;
         for (int x = 0; x < NXI; x++)
            for (int o = o0; o < o1; o += BMR)
               for (int jb = 0; jb < nc; jb += BNR)
                  kern_bf16(M + x * mx + (int64_t)(o - o0) * BTB + jb, BTB,
                            U + (o / BMR) * upanel + (int64_t)x * I2 * BMR,
                            Vb + x * vx + jb, BTB, I2);
         ddpm_wino_block_pairs(pr, &g, s0, nslot);
         const int oend = o1 < O ? o1 : O;
         for (int o = o0; o < oend; o++)
            for (int j = 0; j < nslot; j += 8)
               out_tile8(out, M + (int64_t)(o - o0) * BTB, mx, j, &g, O, o,
                         pr + j / 2, e);
      }
   }
}
