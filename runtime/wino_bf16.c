/*
 * wino_bf16.c — a 3x3 stride-1 "same" convolution with the Winograd domain's
 * products in bfloat16 (AVX512-BF16): the U-Net's forward, and its input
 * gradient, which is the same forward over dout with turned filters.
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
 * U comes from ddpm_wino_bf16_filters (sampling: the U-Net caches it per
 * change of the weights, unet_bf16.c), or is made within the pass from the
 * float32 weights, the forward's or the input gradient's turned ones
 * (ddpm_wino_bf16_forward_w: training, where the weights change every
 * step). A call runs in two parallel phases: every block's input transform
 * (by block and channel pair), then per block and group of BOB output rows
 * the 36 GEMMs into a thread's own M and that group's output transform
 * (made within the pass: per group, its filters, then all blocks).
 *
 * Every function that uses AVX512-BF16 instructions carries a target
 * attribute, so the rest of the build needs no flag; callers must check
 * ddpm_bf16_available() first (unet_bf16.c does).
 *
 * Not here: the weight gradient (float32, winograd_wgt.c), odd channel
 * counts, other kernel sizes or strides (those layers run in float32).
 */
#include "bf16.h"
#include "bf16_kern.h"
#include "winograd.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define BTB 96     /* slots per block: a multiple of BNR */
#define BOB 32     /* output rows per GEMM work item: a multiple of BMR */

int ddpm_bf16_available(void)
{
   static int known = -1;
   if (known < 0) {
      const char *off = getenv("DDPM_NO_BF16");
      __builtin_cpu_init();
      known = (!off || !*off || !strcmp(off, "0")) && __builtin_cpu_supports("avx512bf16") &&
              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
   }
   return known;
}

/* ------------------------------------------------------------ filters */

size_t ddpm_wino_bf16_filter_words(int O, int I)
{
   return (size_t)round_up(O, BMR) * NXI * (size_t)(I / 2);
}

/* G w: 3 -> 6 on 8 filters at once, one per lane (G's rows: 1/4 0 0;
   -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1, as
   winograd.c). */
static inline void g3b(v8 u[6], v8 a, v8 b, v8 d)
{
   const float k6 = 1.0f / 6, k12 = 1.0f / 12, k24 = 1.0f / 24;
   const v8 s = a + d, p = a * k24 + d * k6, q = b * k12;
   u[0] = a * 0.25f;
   u[1] = (s + b) * -k6;
   u[2] = (s - b) * -k6;
   u[3] = p + q;
   u[4] = p - q;
   u[5] = d;
}

/* u[x] = (G g G^T)[x] of the 8 filters whose taps are g[0..8] (lanes). */
static inline void filter8(v8 u[NXI], const v8 g[9])
{
   v8 t[6][3];
   for (int c = 0; c < 3; c++) {
      v8 col[6];
      g3b(col, g[c], g[3 + c], g[6 + c]);
      for (int a = 0; a < 6; a++) t[a][c] = col[a];
   }
   for (int a = 0; a < 6; a++) g3b(u + 6 * a, t[a][0], t[a][1], t[a][2]);
}

/* The taps of rows o0 .. o0+7 (lanes; rows >= O zero) of input i:
   forward, filter weight[o][i] of weight [O][I][3][3];
   flip, rot180(weight[i][o]) of weight [I][O][3][3] (the input gradient's
   filters: turned by 180 degrees, the channels' roles swapped). The flipped
   rows of one input are 72 neighbouring floats, the forward's 9*I apart. */
static inline void taps8(v8 g[9], const float *weight, int O, int I, int o0, int i, int flip)
{
   const int no = O - o0 < 8 ? O - o0 : 8;
   const float *row[8];
   for (int q = 0; q < no; q++)
      row[q] = flip ? weight + ((size_t)i * O + o0 + q) * 9 : weight + ((size_t)(o0 + q) * I + i) * 9;
   if (no < 8) {   /* the last panel of an O that is no multiple of 8 */
      for (int k = 0; k < 9; k++)
         for (int q = 0; q < 8; q++) g[k][q] = q < no ? row[q][flip ? 8 - k : k] : 0.0f;
      return;
   }
   /* 8 taps of each row in one load, transposed in registers (taps written
      one by one into g and read back as vectors stalled on every read);
      the ninth tap by itself. flip: taps 1..8 reversed, tap 0 last. */
   __m256 r[8], a[8], b[8];
   for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(row[q] + flip);
   for (int q = 0; q < 8; q += 2) {
      a[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
      a[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
   }
   for (int q = 0; q < 8; q += 4) {
      b[q] = _mm256_shuffle_ps(a[q], a[q + 2], 0x44);
      b[q + 1] = _mm256_shuffle_ps(a[q], a[q + 2], 0xEE);
      b[q + 2] = _mm256_shuffle_ps(a[q + 1], a[q + 3], 0x44);
      b[q + 3] = _mm256_shuffle_ps(a[q + 1], a[q + 3], 0xEE);
   }
   for (int j = 0; j < 4; j++) {   /* tap j: rows 0-3 from b[j], 4-7 from b[4 + j] */
      const v8 lo = (v8)_mm256_permute2f128_ps(b[j], b[4 + j], 0x20);
      const v8 hi = (v8)_mm256_permute2f128_ps(b[j], b[4 + j], 0x31);
      g[flip ? 7 - j : j] = lo;
      g[flip ? 3 - j : 4 + j] = hi;
   }
   const int last = flip ? 0 : 8;
   g[8] = (v8){ row[0][last], row[1][last], row[2][last], row[3][last],
                row[4][last], row[5][last], row[6][last], row[7][last] };
}

/* Pairs of inputs per pass of filters(): their words of one xi go out as
   KP * 32 contiguous bytes. Written pair by pair, the 36 xi planes of a
   panel lie I/2 * 32 bytes apart (4 KiB at 256 inputs), so the 36 stores
   of one pair all fell into one L1 set; that made the transform of a
   256-channel layer 2.4x slower than of a 128-channel one per filter. */
#define KP 8

/* U of O rows and I (even) inputs, wino_bf16.c's layout; flip as taps8.
   Per panel of 8 rows and pair of inputs, 36 groups of 8 words: the 8 lanes
   of both inputs rounded to bfloat16 (vcvtneps2bf16, nearest even, as the
   tiles' V) and interleaved, the pair's first channel in the low half. */
BF16_TARGET
static void filter_block(uint32_t *Up, const float *weight, int O, int I, int flip, int p, int k0)
{
   const int I2 = I / 2, nk = I2 - k0 < KP ? I2 - k0 : KP;
   uint32_t buf[NXI][KP][BMR] __attribute__((aligned(64)));
   for (int k = 0; k < nk; k++) {
      v8 g[9], u0[NXI], u1[NXI];
      taps8(g, weight, O, I, p * BMR, 2 * (k0 + k), flip);
      filter8(u0, g);
      taps8(g, weight, O, I, p * BMR, 2 * (k0 + k) + 1, flip);
      filter8(u1, g);
      for (int x = 0; x < NXI; x++) {
         const __m128i lo = (__m128i)_mm256_cvtneps_pbh((__m256)u0[x]);
         const __m128i hi = (__m128i)_mm256_cvtneps_pbh((__m256)u1[x]);
         _mm_store_si128((__m128i *)buf[x][k], _mm_unpacklo_epi16(lo, hi));
         _mm_store_si128((__m128i *)(buf[x][k] + 4), _mm_unpackhi_epi16(lo, hi));
      }
   }
   for (int x = 0; x < NXI; x++)
      memcpy(Up + ((size_t)x * I2 + k0) * BMR, buf[x], (size_t)nk * BMR * sizeof(uint32_t));
}

/* U of O rows and I (even) inputs, wino_bf16.c's layout; flip as taps8.
   Per panel of 8 rows and pair of inputs, 36 groups of 8 words: the 8 lanes
   of both inputs rounded to bfloat16 (vcvtneps2bf16, nearest even, as the
   tiles' V) and interleaved, the pair's first channel in the low half. */
static void filters(uint32_t *U, const float *weight, int O, int I, int flip)
{
   const int np = (int)(round_up(O, BMR) / BMR), I2 = I / 2, nkb = (I2 + KP - 1) / KP;
   #pragma omp parallel for schedule(static)
   for (int it = 0; it < np * nkb; it++) {
      const int p = it / nkb;
      filter_block(U + (size_t)p * NXI * I2 * BMR, weight, O, I, flip, p, it % nkb * KP);
   }
}

void ddpm_wino_bf16_filters(uint32_t *U, const float *weight, int O, int I)
{
   filters(U, weight, O, I, 0);
}

void ddpm_wino_bf16_filters_dx(uint32_t *U, const float *weight, int OC, int C)
{
   filters(U, weight, C, OC, 1);
}

/* ------------------------------------------------------------ micro-kernel */

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

#ifdef WINO_MASKED
/* The input transform of 16 slots (by whole tile rows, as
   ddpm_wino_input_rows16) for channels c (plane base) and c + 1 (base +
   plane), rounded and packed as pack_pairs does, straight into V: the
   float32 transforms stay in L1. Slots from nvalid on are 0. */
BF16_TARGET
static void rows_pair(uint32_t *Vw, int64_t xs, int nvalid, const geom *g, const float *base,
                      int64_t plane, int64_t nstride, const pairpos *pr)
{
   float t0[NXI * 16] __attribute__((aligned(64))), t1[NXI * 16] __attribute__((aligned(64)));
   ddpm_wino_input_rows16(t0, 16, nvalid, g, base, nstride, pr);
   ddpm_wino_input_rows16(t1, 16, nvalid, g, base + plane, nstride, pr);
   const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                        24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                        16, 0);
   const __mmask16 m = nvalid > 8 ? 0xffff : 0x00ff;
   for (int x = 0; x < NXI; x++) {
      __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_load_ps(m, t1 + 16 * x),
                                       _mm512_maskz_load_ps(m, t0 + 16 * x));
      _mm512_storeu_si512((void *)(Vw + x * xs), _mm512_permutexvar_epi16(idx, (__m512i)h));
   }
}
#endif

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

/* Output channel oc of a block's nslot slots: by whole tile rows where they
   have 8 or 4 slots (winograd.c), else 8 slots at a time. */
BF16_TARGET
static void out_rows(float *out, const float *M, int64_t xs, int nslot, const geom *g, int O,
                     int oc, const pairpos *pr, const ddpm_conv_epi *e)
{
#ifdef WINO_MASKED
   if (g->spr == 8 || g->spr == 4) {
      for (int j = 0; j < nslot; j += 16)
         ddpm_wino_output_rows16(out, M + j, xs, nslot - j, g, O, oc, pr + j / 2, e);
      return;
   }
#endif
   for (int j = 0; j < nslot; j += 8) out_tile8(out, M, xs, j, g, O, oc, pr + j / 2, e);
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

/* Words of one group's filters (BOB rows) in the fused pass. */
static int64_t group_words(int I) { return (int64_t)(BOB / BMR) * NXI * (I / 2) * BMR; }

/* Whether the fused pass makes the filters per group of output rows: with
   enough groups to keep every thread busy (else the whole U first). */
static int fused_groups(int O, int threads)
{
   return (round_up(O, BMR) + BOB - 1) / BOB >= 2 * threads;
}

size_t ddpm_wino_bf16_scratch_floats_w(int N, int I, int O, int H, int W, int threads)
{
   const int64_t u = fused_groups(O, threads) ? threads * group_words(I)
                                              : (int64_t)ddpm_wino_bf16_filter_words(O, I);
   return (size_t)round_up(u, 16) + ddpm_wino_bf16_scratch_floats(N, I, O, H, W, threads);
}

static void run(float *out, float *scratch, const float *in, const uint32_t *U,
                const float *weight, int flip, uint32_t *Ugs, const ddpm_conv_epi *e, int N,
                int I, int H, int W, int O);

void ddpm_wino_bf16_forward(float *out, float *scratch, const float *in, const uint32_t *U,
                            const ddpm_conv_epi *e, int N, int I, int H, int W, int O)
{
   run(out, scratch, in, U, NULL, 0, NULL, e, N, I, H, W, O);
}

void ddpm_wino_bf16_forward_w(float *out, float *scratch, const float *in, const float *weight,
                              int flip, const ddpm_conv_epi *e, int N, int I, int H, int W,
                              int O)
{
#ifdef _OPENMP
   const int threads = omp_get_max_threads();
#else
   const int threads = 1;
#endif
   if (!fused_groups(O, threads)) {   /* few groups: the whole U, then the cached-U pass */
      uint32_t *U = (uint32_t *)scratch;
      const int64_t uw = round_up((int64_t)ddpm_wino_bf16_filter_words(O, I), 16);
      filters(U, weight, O, I, flip);
      run(out, scratch + uw, in, U, NULL, 0, NULL, e, N, I, H, W, O);
      return;
   }
   run(out, scratch + round_up(threads * group_words(I), 16), in, NULL, weight, flip,
       (uint32_t *)scratch, e, N, I, H, W, O);
}

/* The pass. U given: the cached filters, phase 2 by block and group. U NULL:
   phase 2 by group, each group's filters made from weight (flip as taps8)
   into the calling thread's group_words(I) at Ugs, then all blocks of that
   group: the filters stay in the core's cache instead of going through
   memory (in training they change every step; made for the whole layer
   first, they were written out and read back). Same words, same sums, so
   the same bits either way. */
BF16_TARGET
static void run(float *out, float *scratch, const float *in, const uint32_t *U,
                const float *weight, int flip, uint32_t *Ugs, const ddpm_conv_epi *e, int N,
                int I, int H, int W, int O)
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
      int64_t pr_blk = -1;   /* the block pr describes */
      #pragma omp for schedule(dynamic, 4)
      for (int64_t it = 0; it < nblk * I2; it++) {
         const int64_t b = it / I2, s0 = b * BTB;
         const int k = (int)(it % I2);
         const int nslot = g.S - s0 < BTB ? (int)(g.S - s0) : BTB;
         const int nc = (int)round_up(nslot, 16);
         if (b != pr_blk) ddpm_wino_block_pairs(pr, &g, s0, nslot);
         pr_blk = b;
#ifdef WINO_MASKED
         if (g.spr == 8 || g.spr == 4) {   /* whole tile rows, both channels, packed as made */
            uint32_t *Vk = V + b * vblk + (int64_t)k * BTB;
            if (2 * k + 2 < I)
               ddpm_wino_prefetch_planes(in + (int64_t)(2 * k + 2) * plane, (int64_t)I * plane,
                                         pr, nslot, 2 * plane);
            for (int j = 0; j < nc; j += 16)
               rows_pair(Vk + j, vx, nslot - j, &g, in + (int64_t)2 * k * plane, plane,
                         (int64_t)I * plane, pr + j / 2);
            continue;
         }
#endif
         for (int h = 0; h < 2; h++) {
            float *Th = T + h * NXI * TXS;
            if (2 * k + h + 1 < I)   /* the next channel's planes, while this one is made */
               ddpm_wino_prefetch_planes(in + (int64_t)(2 * k + h + 1) * plane,
                                         (int64_t)I * plane, pr, nslot, plane);
            rowring r;
            ddpm_wino_ring_init(&r, rb, 6, -1, -1);
            const float *base = in + (int64_t)(2 * k + h) * plane;
            for (int j = 0; j < nslot; j += 8)
               ddpm_wino_input_task(Th, TXS, j, &r, &g, base, (int64_t)I * plane, pr + j / 2);
            for (int x = 0; x < NXI; x++)
               for (int j = nslot; j < nc; j++) Th[x * TXS + j] = 0.0f;
         }
         pack_pairs(V + b * vblk + (int64_t)k * BTB, vx, T, T + NXI * TXS, nc);
      }
      if (!U) {   /* phase 2, fused: per group, its filters, then every block */
#ifdef _OPENMP
         uint32_t *Ug = Ugs + (int64_t)omp_get_thread_num() * group_words(I);
#else
         uint32_t *Ug = Ugs;
#endif
         #pragma omp for schedule(dynamic, 1)
         for (int gi = 0; gi < nog; gi++) {
            const int o0 = gi * BOB, o1 = o0 + BOB < Op ? o0 + BOB : Op;
            for (int p = o0 / BMR; p < o1 / BMR; p++)
               for (int k0 = 0; k0 < I2; k0 += KP)
                  filter_block(Ug + (int64_t)(p - o0 / BMR) * upanel, weight, O, I, flip, p, k0);
            for (int64_t b = 0; b < nblk; b++) {
               const int64_t s0 = b * BTB;
               const int nslot = g.S - s0 < BTB ? (int)(g.S - s0) : BTB;
               const int nc = (int)round_up(nslot, 16);
               const uint32_t *Vb = V + b * vblk;
               for (int x = 0; x < NXI; x++)
                  for (int o = o0; o < o1; o += BMR)
                     bf16_kern_cols(M + x * mx + (int64_t)(o - o0) * BTB, BTB,
                                    Ug + ((o - o0) / BMR) * upanel + (int64_t)x * I2 * BMR,
                                    Vb + x * vx, BTB, I2, nc);
               ddpm_wino_block_pairs(pr, &g, s0, nslot);
               const int oend = o1 < O ? o1 : O;
               for (int o = o0; o < oend; o++)
                  out_rows(out, M + (int64_t)(o - o0) * BTB, mx, nslot, &g, O, o, pr, e);
            }
         }
      } else {
         /* phase 2: per block and group of output rows, 36 GEMMs and the
            output transform of those rows */
         #pragma omp for schedule(dynamic, 1)
         for (int64_t it = 0; it < nblk * nog; it++) {
            const int64_t b = it / nog, s0 = b * BTB;
            const int o0 = (int)(it % nog) * BOB, o1 = o0 + BOB < Op ? o0 + BOB : Op;
            const int nslot = g.S - s0 < BTB ? (int)(g.S - s0) : BTB;
            const int nc = (int)round_up(nslot, 16);
            const uint32_t *Vb = V + b * vblk;
            for (int x = 0; x < NXI; x++)
               for (int o = o0; o < o1; o += BMR)
                  bf16_kern_cols(M + x * mx + (int64_t)(o - o0) * BTB, BTB,
                                 U + (o / BMR) * upanel + (int64_t)x * I2 * BMR, Vb + x * vx,
                                 BTB, I2, nc);
            ddpm_wino_block_pairs(pr, &g, s0, nslot);
            const int oend = o1 < O ? o1 : O;
            for (int o = o0; o < oend; o++)
               out_rows(out, M + (int64_t)(o - o0) * BTB, mx, nslot, &g, O, o, pr, e);
         }
      }
   }
}
