/*
 * gemm_bf16.c — batched row-major GEMM with bfloat16 products and float32
 * sums (AVX512-BF16): the U-Net's attention and 1x1 convolutions in the
 * bf16 precision.
 *
 *    C_b[M,N] = alpha * op(A_b)[M,K] . op(B_b)[K,N] + beta * C_b,   b < nbatch
 *    A_b = A + b * sa (sa 0: one A for the whole batch, packed once),
 *    B_b = B + b * sb, C_b = C + b * sc
 *
 * Both operands are rounded to bfloat16 (nearest even, vcvtne2ps2bf16) while
 * they are packed into bf16_kern.h's layout: A as panels of BMR rows
 * [K2][BMR], B as panels of BNR columns [K2][BNR], K2 = ceil(K/2) pairs of
 * consecutive k (an odd K's last pair has a zero upper half). The sums are
 * float32, in pair order, so the bits depend neither on threads nor on the
 * split of the columns.
 *
 * Threads: outside a parallel region, the calling thread's team splits the
 * work by (batch item, chunk of columns), each thread packing its own B
 * chunk into its region of the work space (and A_b too when sa != 0); a
 * shared A is packed once by all threads into thread 0's region first.
 * Inside a parallel region (or with one thread) everything runs in the
 * calling thread.
 *
 * Not here: the float32 GEMM (gemm.c), the Winograd products (wino_bf16.c,
 * same micro-kernel). Callers check ddpm_bf16_available() first.
 */
#include "bf16.h"
#include "bf16_kern.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* float32 -> bfloat16 bits, nearest even (the vector instruction's rounding;
   NaN stays NaN) */
static inline uint32_t bf16_bits(float f)
{
   uint32_t u;
   memcpy(&u, &f, sizeof u);
   if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
   return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* The word of pair kk of row r of an operand X[r][k] = src[r * rs + k * ks]. */
static inline uint32_t pair_word(const float *src, int64_t rs, int64_t ks, int r, int kk, int K)
{
   const float *p = src + (int64_t)r * rs + (int64_t)(2 * kk) * ks;
   const uint32_t lo = bf16_bits(p[0]), hi = 2 * kk + 1 < K ? bf16_bits(p[ks]) : 0u;
   return lo | hi << 16;
}

/* The 16 pairs of 32 consecutive k of 8 rows (row q at s + q rs) as 16
   groups of the 8 rows' words, at dst[kk * 8 + q]: one panel's slice, the
   8 x 16 words turned in registers by three rounds of two-source permutes
   (a scatter per row cost several times as much). */
BF16_TARGET
static inline void pack8x32(uint32_t *dst, const float *s, int64_t rs)
{
   __m512i a[8], b[8], c[8];
   for (int q = 0; q < 8; q++)
      a[q] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + q * rs + 16),
                                          _mm512_loadu_ps(s + q * rs));
   /* b: rows 2j, 2j+1 word by word, k pairs 0..7 (lo) and 8..15 (hi) */
   const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
   const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                       24, 8);
   for (int j = 0; j < 4; j++) {
      b[j] = _mm512_permutex2var_epi32(a[2 * j], lo, a[2 * j + 1]);
      b[4 + j] = _mm512_permutex2var_epi32(a[2 * j], hi, a[2 * j + 1]);
   }
   /* c: rows 4h .. 4h+3 by pair; c[4h + 0..3] = pairs 0-3, 4-7, 8-11, 12-15 */
   const __m512i l2 = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
   const __m512i h2 = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
   for (int h = 0; h < 2; h++) {
      c[4 * h + 0] = _mm512_permutex2var_epi64(b[2 * h], l2, b[2 * h + 1]);
      c[4 * h + 1] = _mm512_permutex2var_epi64(b[2 * h], h2, b[2 * h + 1]);
      c[4 * h + 2] = _mm512_permutex2var_epi64(b[4 + 2 * h], l2, b[4 + 2 * h + 1]);
      c[4 * h + 3] = _mm512_permutex2var_epi64(b[4 + 2 * h], h2, b[4 + 2 * h + 1]);
   }
   /* two pairs of all 8 rows per vector */
   const __m512i l3 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
   const __m512i h3 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
   for (int u = 0; u < 4; u++) {
      _mm512_storeu_si512((void *)(dst + 32 * u), _mm512_permutex2var_epi64(c[u], l3, c[4 + u]));
      _mm512_storeu_si512((void *)(dst + 32 * u + 16),
                          _mm512_permutex2var_epi64(c[u], h3, c[4 + u]));
   }
}

/* rows x K of X (as pair_word) into panels of W rows: element (r, kk) at
   dst[(r / W) * pw + kk * W + r % W]; rows past `rows` up to `pad` zero.
   Either ks == 1 (each row's k contiguous: 32 floats make 16 words, spread
   over the panel by a scatter) or rs == 1 (each k's rows contiguous: two
   rows of k make 16 words of consecutive rows). W is BMR or BNR. */
BF16_TARGET
void ddpm_bf16_pack(uint32_t *dst, int W, int64_t pw, const float *src, int64_t rs, int64_t ks,
                    int rows, int pad, int K)
{
   const int K2 = (K + 1) / 2;
#define AT(r, kk) dst[(int64_t)((r) / W) * pw + (int64_t)(kk) * W + (r) % W]
   if (ks == 1) {
      const __m512i vidx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                               5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(W));
      const int kv = K / 32 * 32;
      int r = 0;
      if (W == 8)   /* whole panels: 8 rows' words turned in registers */
         for (; r + 8 <= rows; r += 8)
            for (int k = 0; k < kv; k += 32) pack8x32(&AT(r, k / 2), src + (int64_t)r * rs + k, rs);
      for (int kk = kv / 2; kk < K2 && W == 8; kk++)
         for (int q = 0; q < r; q++) AT(q, kk) = pair_word(src, rs, ks, q, kk, K);
      for (; r < rows; r++) {
         const float *s = src + (int64_t)r * rs;
         for (int k = 0; k < kv; k += 32) {
            const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + k + 16),
                                                   _mm512_loadu_ps(s + k));
            _mm512_i32scatter_epi32((void *)&AT(r, k / 2), vidx, (__m512i)h, 4);
         }
         for (int kk = kv / 2; kk < K2; kk++) AT(r, kk) = pair_word(src, rs, ks, r, kk, K);
      }
   } else {
      const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25,
                                           9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2,
                                           17, 1, 16, 0);
      const int rv = rows / 16 * 16;
      for (int kk = 0; kk < K / 2; kk++) {
         const float *s0 = src + (int64_t)(2 * kk) * ks, *s1 = s0 + ks;
         for (int r = 0; r < rv; r += 16) {
            const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s1 + r),
                                                   _mm512_loadu_ps(s0 + r));
            const __m512i w = _mm512_permutexvar_epi16(idx, (__m512i)h);
            if (W % 16 == 0) {
               _mm512_storeu_si512((void *)&AT(r, kk), w);
            } else {   /* W == 8: two panels */
               _mm256_storeu_si256((void *)&AT(r, kk), _mm512_castsi512_si256(w));
               _mm256_storeu_si256((void *)&AT(r + 8, kk), _mm512_extracti64x4_epi64(w, 1));
            }
         }
         for (int r = rv; r < rows; r++) AT(r, kk) = pair_word(src, rs, ks, r, kk, K);
      }
      if (K % 2)
         for (int r = 0; r < rows; r++) AT(r, K2 - 1) = pair_word(src, rs, ks, r, K2 - 1, K);
   }
   for (int r = rows; r < pad; r++)
      for (int kk = 0; kk < K2; kk++) AT(r, kk) = 0u;
#undef AT
}

/* Row panels [p0, p1) of op(A) [M,K] into panels of BMR rows [K2][BMR] */
static void pack_a(uint32_t *dst, int ta, int M, int K, const float *A, int lda, int p0, int p1)
{
   const int64_t pw = (int64_t)((K + 1) / 2) * BMR;
   const int r0 = p0 * BMR, r1 = p1 * BMR < M ? p1 * BMR : M;
   ddpm_bf16_pack(dst + p0 * pw, BMR, pw, ta ? A + r0 : A + (int64_t)r0 * lda, ta ? 1 : lda,
                  ta ? lda : 1, r1 - r0, (p1 - p0) * BMR, K);
}

/* Columns [c0, c0 + n) of op(B) [K,N] into panels of BNR columns [K2][BNR] */
static void pack_b(uint32_t *dst, int tb, int K, const float *B, int ldb, int c0, int n)
{
   const int64_t pw = (int64_t)((K + 1) / 2) * BNR;
   if (tb)
      ddpm_bf16_pack(dst, BNR, pw, B + (int64_t)c0 * ldb, ldb, 1, n, (int)round_up(n, 16), K);
   else
      ddpm_bf16_pack(dst, BNR, pw, B + c0, 1, ldb, n, (int)round_up(n, 16), K);
}

size_t ddpm_gemm_bf16_work_floats(int M, int N, int K)
{
   if (M <= 0 || N <= 0 || K <= 0) return 0;
   const int64_t K2 = (K + 1) / 2;
   return (size_t)(K2 * round_up(M, BMR) + K2 * round_up(N, BNR));
}

/* C [rows, cols] (ldc) = alpha t [rows, cols] (ldt) + beta C */
static void store(float *C, int64_t ldc, const float *t, int64_t ldt, int rows, int cols,
                  float alpha, float beta)
{
   for (int r = 0; r < rows; r++) {
      float *c = C + r * ldc;
      const float *s = t + r * ldt;
      if (beta == 0.0f)
         for (int q = 0; q < cols; q++) c[q] = alpha * s[q];
      else
         for (int q = 0; q < cols; q++) c[q] = alpha * s[q] + beta * c[q];
   }
}

/* Columns [c0, c0 + n) of C = alpha Ap . Bp + beta C, Bp packed from c0. */
static void product(float *C, int ldc, const uint32_t *Ap, const uint32_t *Bp, int M, int K2,
                    int c0, int n, float alpha, float beta)
{
   const int64_t apw = (int64_t)K2 * BMR, bpw = (int64_t)K2 * BNR;
   float t[BMR * BNR];
   for (int j = 0; j < n; j += BNR) {
      const int cols = n - j < BNR ? n - j : BNR;
      const uint32_t *b = Bp + (int64_t)(j / BNR) * bpw;
      for (int i = 0; i < M; i += BMR) {
         const int rows = M - i < BMR ? M - i : BMR;
         bf16_kern_cols(t, BNR, Ap + (int64_t)(i / BMR) * apw, b, BNR, K2, (int)round_up(cols, 16));
         store(C + (int64_t)i * ldc + c0 + j, ldc, t, BNR, rows, cols, alpha, beta);
      }
   }
}

/* One call's operands and split, for its work items. */
typedef struct bf16_args {
   int ta, tb, M, N, K, K2, mp;
   float alpha, beta;
   const float *A;
   int lda;
   int64_t sa;
   const float *B;
   int ldb;
   int64_t sb;
   float *C;
   int ldc;
   int64_t sc;
   int nchunk, cpanels;
   int64_t awords;
} bf16_args;

/* Work item it (batch item, chunk of columns) in the region `mine` (B's
   panels after awords words; A_b too when sa != 0, repacked only when the
   batch item changes, *packed_a), A's shared panels in `shared` when sa == 0. */
static void bf16_item(const bf16_args *g, int64_t it, uint32_t *mine, const uint32_t *shared,
                      int64_t *packed_a)
{
   const int64_t b = it / g->nchunk;
   const int c0 = (int)(it % g->nchunk) * g->cpanels * BNR;
   const int n = g->N - c0 < g->cpanels * BNR ? g->N - c0 : g->cpanels * BNR;
   const uint32_t *Ap = shared;
   if (g->sa != 0) {
      if (*packed_a != b) pack_a(mine, g->ta, g->M, g->K, g->A + b * g->sa, g->lda, 0, g->mp);
      *packed_a = b;
      Ap = mine;
   }
   uint32_t *Bp = mine + g->awords;
   pack_b(Bp, g->tb, g->K, g->B + b * g->sb, g->ldb, c0, n);
   product(g->C + b * g->sc, g->ldc, Ap, Bp, g->M, g->K2, c0, n, g->alpha, g->beta);
}

int ddpm_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   int64_t sa, const float *B, int ldb, int64_t sb, float beta, float *C,
                   int ldc, int64_t sc, int nbatch, const ddpm_gemm_ws *ws)
{
   if (M <= 0 || N <= 0 || nbatch <= 0) return 0;
   if (K <= 0 || !ws || !ws->base || ddpm_gemm_bf16_work_floats(M, N, K) > ws->per) return -1;
   const int K2 = (K + 1) / 2;
   const int mp = (M + BMR - 1) / BMR;   /* row panels of A */
   const int64_t awords = (int64_t)K2 * mp * BMR;
   int threads = 1;
#ifdef _OPENMP
   if (!omp_in_parallel()) threads = omp_get_max_threads();
   if (threads > ws->n) threads = ws->n;
#endif
   /* the calling thread's region, found before the region below: inside it
      omp_get_thread_num() is the new team's number */
   uint32_t *self = (uint32_t *)ddpm_gemm_ws_get(ws);
   if (threads == 1 && !self) return -1;
   /* chunks of columns, in whole panels, so that there are at least two
      items per thread when the batch alone gives fewer */
   const int np = (int)((N + BNR - 1) / BNR);
   int nchunk = nbatch >= 2 * threads ? 1 : (2 * threads + nbatch - 1) / nbatch;
   if (nchunk > np) nchunk = np;
   const int cpanels = (np + nchunk - 1) / nchunk;
   nchunk = (np + cpanels - 1) / cpanels;
   const int64_t items = (int64_t)nbatch * nchunk;
   const bf16_args g = { ta, tb, M, N, K, K2, mp, alpha, beta, A, lda, sa, B, ldb, sb, C, ldc,
                         sc, nchunk, cpanels, awords };
   if (threads == 1) {   /* no parallel region at all (see ddpm_par, kernels.h) */
      if (sa == 0) pack_a(self, ta, M, K, A, lda, 0, mp);
      int64_t packed_a = -1;
      for (int64_t it = 0; it < items; it++) bf16_item(&g, it, self, self, &packed_a);
      return 0;
   }
   #pragma omp parallel num_threads(threads)
   {
      const int t = ddpm_omp_thread_num();
      uint32_t *mine = (uint32_t *)(ws->base + (size_t)t * ws->per);
      uint32_t *shared = (uint32_t *)ws->base;
      if (sa == 0) {   /* one A for all: its panels packed by all threads */
         #pragma omp for schedule(static)
         for (int p = 0; p < mp; p++) pack_a(shared, ta, M, K, A, lda, p, p + 1);
      }
      int64_t packed_a = -1;
      #pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < items; it++) bf16_item(&g, it, mine, shared, &packed_a);
   }
   return 0;
}
