/*
 * winograd.c — 3x3 stride-1 "same" convolution by Winograd's minimal
 * filtering F(4x4, 3x3) (Lavin & Gray 2015): forward, input gradient and
 * weight gradient, NCHW float32.
 *
 * Each 4x4 output tile comes from a 6x6 input tile d and the 3x3 filter g as
 *    Y = A^T [ (G g G^T) . (B^T d B) ] A
 * so the 36 products per (tile, input channel, output channel) replace the
 * 144 of a direct 3x3 sum: per position xi of the 6x6 "Winograd domain" the
 * layer is one GEMM  M[xi] (OC x tiles) = U[xi] (OC x C) . V[xi] (C x tiles).
 * The backward passes are the same machinery:
 *    input gradient:  a forward convolution of dout with the filters flipped
 *                     (rot180) and their channel roles swapped;
 *    weight gradient: dU[xi] = sum over tiles of (A dY A^T)[xi] (B^T d B)[xi],
 *                     then dg = G^T dU G  (the adjoint of the forward).
 *
 * Layout. Tiles are numbered in "slots": per image, tile row by tile row,
 * each tile row padded to an even number of tiles (a pair of tiles is 8
 * consecutive input columns: what one 256-bit load holds). Transforms work on
 * 8 slots at a time, one vector lane per slot; V and M store slots
 * contiguously ([xi][channel][slot]), which is the column-vector side of the
 * GEMM micro-kernel. The weight gradient's GEMM reduces over slots, so its
 * dout-side operand is transposed to [xi][slot][OC] on the way out of the
 * transform.
 *
 * Blocks of TB slots are transformed, multiplied and transformed back in turn
 * by all threads together: input transform split by channel, GEMM by xi,
 * output transform by output channel. Scratch does not depend on the thread
 * count and no sum crosses threads, so results are the same bits for any
 * thread count.
 *
 * Accuracy: B^T has entries up to 5 and A^T up to 8, so the transformed
 * values are larger than the data and some cancellation follows: forward
 * errors are ~1e-6 .. 1e-5 of sum|terms| (direct summation: ~1e-7);
 * tests/c/test_winograd.c holds the bounds.
 *
 * Not here: other kernel sizes, strides or paddings (conv.c), the choice of
 * when to use it (unet_run.c), F(6x6,3x3) (too inaccurate in float32).
 */
#include "kernels.h"
#include "mkernel.h"

#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif


#define NXI 36   /* 6x6 positions of the Winograd domain */

/* GEMM register blocking (mkernel.h): MR rows (broadcast side) x NV vectors
   of VL floats. */
#if VL > 1
#define NVF 3      /* forward / input gradient: NR = 3 vectors of slots */
#define NVW 2      /* weight gradient: 2 vectors of output channels */
#else
#define NVF 8
#define NVW 8
#endif
#define NRF (VL * NVF)
#define NRW (VL * NVW)

/* Slots per block: the GEMM's column count per pass. */
#define TB_MAX 240
/* Floats of transformed data (both operands) per weight-gradient chunk. */
#define WCHUNK_FLOATS (4u << 20)

typedef float v8 __attribute__((vector_size(32)));

static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* The distance between consecutive xi planes of U, V, M: a whole number of
   cache lines, and an odd one, so that the 36 streams a transform reads or
   writes at once fall into different L1 sets (strides that are multiples
   of 4 KiB put them all into one set). */
static int64_t xstride(int64_t n)
{
   n = round_up(n, 16);
   return (n / 16) % 2 ? n : n + 16;
}

/* ------------------------------------------------------------ geometry */

typedef struct geom {
   int N, H, W;
   int th, tw, spr;        /* tile rows, tile columns, slots per tile row (even) */
   int64_t s_img, S;       /* slots per image, in all */
   int rw;                 /* floats per padded row buffer */
} geom;

static geom make_geom(int N, int H, int W)
{
   geom g;
   g.N = N; g.H = H; g.W = W;
   g.th = (H + 3) / 4;
   g.tw = (W + 3) / 4;
   g.spr = (g.tw + 1) & ~1;
   g.s_img = (int64_t)g.th * g.spr;
   g.S = (int64_t)N * g.s_img;
   g.rw = 4 * g.spr + 12;
   return g;
}

static int block_slots(const geom *g)
{
   int64_t tb = round_up(g->S, NRF);
   if (tb > TB_MAX) tb = TB_MAX;
   return (int)tb;
}

/* Slots per weight-gradient chunk: a multiple of 8 (one transform task). */
static int wchunk_slots(const geom *g, int C, int OC)
{
   int64_t per = (int64_t)NXI * (round_up(C, MR) + round_up(OC, NRW));
   int64_t tb = WCHUNK_FLOATS / per;
   tb = tb < 64 ? 64 : tb / 8 * 8;
   int64_t all = round_up(g->S, 8);
   return (int)(tb < all ? tb : all);
}

/* ------------------------------------------------------------ 1-D transforms */

/* B^T d: 6 -> 6 */
static inline void bt6(v8 o[6], const v8 d[6])
{
   v8 d42 = d[4] - d[2], d31 = d[3] - d[1];
   o[0] = (d[0] - d[2]) * 4.0f + d42;
   o[1] = (d[3] + d[4]) - (d[1] + d[2]) * 4.0f;
   o[2] = (d[4] - d[3]) + (d[1] - d[2]) * 4.0f;
   o[3] = d42 + d31 * 2.0f;
   o[4] = d42 - d31 * 2.0f;
   o[5] = (d[1] - d[3]) * 4.0f + (d[5] - d[3]);
}

/* A^T m: 6 -> 4 */
static inline void at6(v8 y[4], const v8 m[6])
{
   v8 s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
   y[0] = m[0] + s12 + s34;
   y[1] = d12 + d34 * 2.0f;
   y[2] = s12 + s34 * 4.0f;
   y[3] = d12 + d34 * 8.0f + m[5];
}

/* A g: 4 -> 6 (the adjoint of A^T) */
static inline void a4(v8 k[6], const v8 g[4])
{
   v8 e02 = g[0] + g[2], e13 = g[1] + g[3];
   v8 f02 = g[0] + g[2] * 4.0f, f13 = (g[1] + g[3] * 4.0f) * 2.0f;
   k[0] = g[0];
   k[1] = e02 + e13;
   k[2] = e02 - e13;
   k[3] = f02 + f13;
   k[4] = f02 - f13;
   k[5] = g[3];
}

/* ------------------------------------------------------------ 8-slot loads and stores */

/* c[j] lane q = column j of slot q, for j < ncol (4 or 6); slots 2p, 2p+1
   read p[p][0..3] and p[p][4..7] (and columns 4, 5 from p[p] + 4 ...). */
static inline void load_cols(v8 *c, int ncol, const float *const p[4])
{
#if defined(__AVX2__)
   __m256 a0 = _mm256_loadu_ps(p[0]), a1 = _mm256_loadu_ps(p[1]);
   __m256 a2 = _mm256_loadu_ps(p[2]), a3 = _mm256_loadu_ps(p[3]);
   /* lanes: P = (slot0 | slot4), Q = (1 | 5), R = (2 | 6), S = (3 | 7) */
   __m256 P = _mm256_permute2f128_ps(a0, a2, 0x20), Q = _mm256_permute2f128_ps(a0, a2, 0x31);
   __m256 R = _mm256_permute2f128_ps(a1, a3, 0x20), S = _mm256_permute2f128_ps(a1, a3, 0x31);
   __m256 t0 = _mm256_unpacklo_ps(P, Q), t1 = _mm256_unpackhi_ps(P, Q);
   __m256 t2 = _mm256_unpacklo_ps(R, S), t3 = _mm256_unpackhi_ps(R, S);
   c[0] = (v8)_mm256_shuffle_ps(t0, t2, 0x44);
   c[1] = (v8)_mm256_shuffle_ps(t0, t2, 0xEE);
   c[2] = (v8)_mm256_shuffle_ps(t1, t3, 0x44);
   c[3] = (v8)_mm256_shuffle_ps(t1, t3, 0xEE);
   if (ncol > 4) {
      a0 = _mm256_loadu_ps(p[0] + 4); a1 = _mm256_loadu_ps(p[1] + 4);
      a2 = _mm256_loadu_ps(p[2] + 4); a3 = _mm256_loadu_ps(p[3] + 4);
      P = _mm256_permute2f128_ps(a0, a2, 0x20); Q = _mm256_permute2f128_ps(a0, a2, 0x31);
      R = _mm256_permute2f128_ps(a1, a3, 0x20); S = _mm256_permute2f128_ps(a1, a3, 0x31);
      t0 = _mm256_unpacklo_ps(P, Q);
      t2 = _mm256_unpacklo_ps(R, S);
      c[4] = (v8)_mm256_shuffle_ps(t0, t2, 0x44);
      c[5] = (v8)_mm256_shuffle_ps(t0, t2, 0xEE);
   }
#else
   for (int j = 0; j < ncol; j++)
      for (int q = 0; q < 8; q++) c[j][q] = p[q / 2][(q % 2) * 4 + j];
#endif
}

/* The inverse for one output row: y[s] lane q = column s of slot q (s < 4);
   pr[p] gets the 8 floats of pair p (slot 2p columns 0..3, then 2p+1). */
static inline void pairs_of(v8 pr[4], const v8 y[4])
{
#if defined(__AVX2__)
   __m256 t0 = _mm256_unpacklo_ps((__m256)y[0], (__m256)y[1]);
   __m256 t1 = _mm256_unpackhi_ps((__m256)y[0], (__m256)y[1]);
   __m256 t2 = _mm256_unpacklo_ps((__m256)y[2], (__m256)y[3]);
   __m256 t3 = _mm256_unpackhi_ps((__m256)y[2], (__m256)y[3]);
   __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
   __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
   pr[0] = (v8)_mm256_permute2f128_ps(u0, u1, 0x20);
   pr[1] = (v8)_mm256_permute2f128_ps(u2, u3, 0x20);
   pr[2] = (v8)_mm256_permute2f128_ps(u0, u1, 0x31);
   pr[3] = (v8)_mm256_permute2f128_ps(u2, u3, 0x31);
#else
   for (int p = 0; p < 4; p++)
      for (int h = 0; h < 2; h++)
         for (int s = 0; s < 4; s++) pr[p][4 * h + s] = y[s][2 * p + h];
#endif
}

static inline v8 loadv(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, v8 v) { memcpy(p, &v, sizeof v); }

/* ------------------------------------------------------------ padded row sets */

/* Rows 4*ty + y0 .. + nrows-1 of one plane, each padded: buffer column k is
   image column k + x0; zero outside the image. A small ring of them serves
   the up to four tile rows one 8-slot task touches. */
typedef struct rowring {
   float *buf;            /* 4 * nrows * rw */
   int n[4], ty[4], next;
   int nrows, y0, x0;
} rowring;

static void ring_init(rowring *r, float *buf, int nrows, int y0, int x0)
{
   r->buf = buf;
   r->nrows = nrows; r->y0 = y0; r->x0 = x0;
   r->next = 0;
   for (int i = 0; i < 4; i++) r->n[i] = r->ty[i] = -1;
}

/* row[0..rw) = 0 except row[k0..k1) = src[k0..k1). Inline vector moves: the
   rows are short, and libc's memset/memcpy calls cost more than the copy. */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static inline void copy_row(float *row, const float *src, int k0, int k1, int rw)
{
   const v8 z = {0};
   int k = 0;
   for (; k + 8 <= k0; k += 8) storev(row + k, z);
   for (; k < k0; k++) row[k] = 0.0f;
   for (; k + 8 <= k1; k += 8) storev(row + k, loadv(src + k));
   for (; k < k1; k++) row[k] = src[k];
   for (; k + 8 <= rw; k += 8) storev(row + k, z);
   for (; k < rw; k++) row[k] = 0.0f;
}

/* plane(n) = base + n * nstride. Returns row 0 of the set for (n, ty). */
static const float *ring_rows(rowring *r, const geom *g, const float *base, int64_t nstride,
                              int n, int ty)
{
   for (int i = 0; i < 4; i++)
      if (r->n[i] == n && r->ty[i] == ty) return r->buf + (size_t)i * r->nrows * g->rw;
   int e = r->next;
   r->next = (e + 1) & 3;
   r->n[e] = n;
   r->ty[e] = ty;
   float *dst = r->buf + (size_t)e * r->nrows * g->rw;
   const float *plane = base + (int64_t)n * nstride;
   /* columns k with 0 <= k + x0 < W */
   const int k0 = r->x0 < 0 ? -r->x0 : 0;
   const int k1 = g->W - r->x0 < g->rw ? g->W - r->x0 : g->rw;
   for (int i = 0; i < r->nrows; i++) {
      float *row = dst + (size_t)i * g->rw;
      const int y = 4 * ty + r->y0 + i;
      if (y < 0 || y >= g->H) {
         copy_row(row, NULL, 0, 0, g->rw);
         continue;
      }
      const float *src = plane + (int64_t)y * g->W + r->x0;
      copy_row(row, src, k0, k1, g->rw);
   }
   return dst;
}

/* Slot -> (image, tile row, tile column). */
static inline void slot_pos(const geom *g, int64_t s, int *n, int *ty, int *tx)
{
   *n = (int)(s / g->s_img);
   int r = (int)(s % g->s_img);
   *ty = r / g->spr;
   *tx = r % g->spr;
}

/* Where the pairs of a block are: pair p holds slots s0 + 2p and s0 + 2p + 1,
   the first of which lies at (n, ty, tx); n < 0 past the end. Computed once
   per block instead of two divisions per pair per channel. */
typedef struct pairpos { int n, ty, tx; } pairpos;

static void block_pairs(pairpos *pr, const geom *g, int64_t s0, int nslot)
{
   for (int p = 0; 2 * p < nslot + 8; p++) {   /* whole tasks of 8 slots */
      int64_t s = s0 + 2 * p;
      if (2 * p >= nslot || s >= g->S) { pr[p].n = -1; continue; }
      slot_pos(g, s, &pr[p].n, &pr[p].ty, &pr[p].tx);
   }
}

/* Row pointers and row strides of the 4 pairs of a task (pr[0].n >= 0):
   straight into the plane when the pair's rows and its `need` columns lie
   inside the image, else into a padded row set. Pairs past the end repeat
   the last valid one (their lanes are zeroed later). */
static void task_rows(const float *pp[4], int64_t rs[4], rowring *r, const geom *g,
                      const float *base, int64_t nstride, const pairpos *pr, int need)
{
   for (int p = 0; p < 4; p++) {
      if (pr[p].n < 0) { pp[p] = pp[p - 1]; rs[p] = rs[p - 1]; continue; }
      const int n = pr[p].n, ty = pr[p].ty, tx = pr[p].tx;
      const int y = 4 * ty + r->y0, x = 4 * tx + r->x0;
      if (need > 0 && y >= 0 && y + r->nrows <= g->H && x >= 0 && x + need <= g->W) {
         pp[p] = base + (int64_t)n * nstride + (int64_t)y * g->W + x;
         rs[p] = g->W;
      } else {
         pp[p] = ring_rows(r, g, base, nstride, n, ty) + 4 * tx;
         rs[p] = g->rw;
      }
   }
}

/* ------------------------------------------------------------ tile transforms */

/* V[xi * xs + j .. +7] = (B^T d B)[xi] of the 8 slots s0 + j ..; channel plane
   base + n * nstride. */
static void input_task(float *V, int64_t xs, int j, rowring *r, const geom *g,
                       const float *base, int64_t nstride, const pairpos *pr)
{
   const float *pp[4];
   int64_t rs[4];
   task_rows(pp, rs, r, g, base, nstride, pr, 12);
   v8 h[6][6];
   for (int i = 0; i < 6; i++) {
      const float *q[4] = { pp[0] + i * rs[0], pp[1] + i * rs[1],
                            pp[2] + i * rs[2], pp[3] + i * rs[3] };
      v8 d[6];
      load_cols(d, 6, q);
      bt6(h[i], d);
   }
   for (int l = 0; l < 6; l++) {
      v8 col[6] = { h[0][l], h[1][l], h[2][l], h[3][l], h[4][l], h[5][l] }, o[6];
      bt6(o, col);
      for (int k = 0; k < 6; k++) storev(V + (6 * k + l) * xs + j, o[k]);
   }
}

/* k[36] = (A dY A^T) of the 8 slots at s: dY tiles are rows 4ty.., columns 4tx.. */
static void grad_task(v8 k[NXI], rowring *r, const geom *g, const float *base,
                      int64_t nstride, const pairpos *pr)
{
   const float *pp[4];
   int64_t rs[4];
   task_rows(pp, rs, r, g, base, nstride, pr, 8);
   v8 h[4][6];
   for (int i = 0; i < 4; i++) {
      const float *q[4] = { pp[0] + i * rs[0], pp[1] + i * rs[1],
                            pp[2] + i * rs[2], pp[3] + i * rs[3] };
      v8 d[4];
      load_cols(d, 4, q);
      a4(h[i], d);
   }
   for (int l = 0; l < 6; l++) {
      v8 col[4] = { h[0][l], h[1][l], h[2][l], h[3][l] }, o[6];
      a4(o, col);
      for (int a = 0; a < 6; a++) k[6 * a + l] = o[a];
   }
}

/* Output tiles of channel oc for the 8 slots of pairs pr (pr[0].n >= 0),
   from M[xi * xs + j]. */
static void output_task(float *out, const float *M, int64_t xs, int j, const geom *g,
                        int OC, int oc, const pairpos *pr, const ddpm_conv_epi *e)
{
   v8 t[4][6];
   for (int l = 0; l < 6; l++) {
      v8 m[6];
      for (int k = 0; k < 6; k++) m[k] = loadv(M + (6 * k + l) * xs + j);
      v8 y[4];
      at6(y, m);
      for (int a = 0; a < 4; a++) t[a][l] = y[a];
   }
   const float bias = e && e->bias ? e->bias[oc] : 0.0f;
   const size_t plane = (size_t)g->H * g->W;
   float b[4];
   size_t base[4];
   int np = 0;
   for (; np < 4 && pr[np].n >= 0; np++) {
      b[np] = bias + (e && e->bias_nc ? e->bias_nc[(size_t)pr[np].n * OC + oc] : 0.0f);
      base[np] = ((size_t)pr[np].n * OC + oc) * plane + (size_t)(4 * pr[np].ty) * g->W +
                 4 * pr[np].tx;
   }
   const float *add = e ? e->add : NULL;
   for (int a = 0; a < 4; a++) {
      v8 y[4], q[4];
      at6(y, t[a]);
      pairs_of(q, y);
      for (int p = 0; p < np; p++) {
         const int yy = 4 * pr[p].ty + a, x0 = 4 * pr[p].tx;
         if (yy >= g->H || x0 >= g->W) continue;
         const size_t off = base[p] + (size_t)a * g->W;
         v8 v = q[p] + b[p];
         if (x0 + 8 <= g->W) {
            if (add) v += loadv(add + off);
            storev(out + off, v);
         } else {
            const int nc = g->W - x0;
            for (int c = 0; c < nc; c++) out[off + c] = v[c] + (add ? add[off + c] : 0.0f);
         }
      }
   }
}

/* ------------------------------------------------------------ weight transforms */

/* G w: 3 -> 6 (G's rows: 1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
   1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1). */
static inline void g3(v8 u[6], const v8 w[3])
{
   const float k6 = 1.0f / 6, k12 = 1.0f / 12, k24 = 1.0f / 24;
   v8 s02 = w[0] + w[2];
   v8 a = w[0] * k24 + w[2] * k6, b = w[1] * k12;
   u[0] = w[0] * 0.25f;
   u[1] = (s02 + w[1]) * -k6;
   u[2] = (s02 - w[1]) * -k6;
   u[3] = a + b;
   u[4] = a - b;
   u[5] = w[2];
}

/* Transformed filters for 8 output rows o0 .. o0+7 (rows >= O are zero) and
   all I inputs, packed for the GEMM: U [o/MR][xi][I][MR] (xs = I*MR floats
   per xi within a panel, panels 36*I*MR apart):
   forward (flip = 0): o = oc, i = c, filter weight[oc][c];
   input gradient (flip = 1): o = c, i = oc, filter rot180(weight[oc][c]).
   One vector lane per row; float32 arithmetic, rounding well under the tile
   transforms'. */
static void filters_transform8(float *U, const float *weight, int O, int I, int o0, int flip)
{
   const int no = O - o0 < 8 ? O - o0 : 8;
   /* row q's tap k of input i: forward weight[(o0+q)*I + i][k], flip
      weight[i*O + o0+q][8-k] */
   const int64_t st = flip ? 9 : (int64_t)9 * I;          /* between rows */
   const int64_t si = flip ? (int64_t)9 * O : 9;          /* between inputs */
   const float *base = flip ? weight + (size_t)o0 * 9 + 8 : weight + (size_t)o0 * I * 9;
   const int dk = flip ? -1 : 1;
   const int64_t uxi = xstride((int64_t)I * MR), ps = NXI * uxi;   /* xi, panel strides */
   float *U0 = U + (int64_t)(o0 / MR) * ps;
#if defined(__AVX2__)
   const __m256i idx = _mm256_mullo_epi32(_mm256_set1_epi32((int)st),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#endif
   for (int i = 0; i < I; i++) {
      const float *w = base + i * si;
      v8 g[9];
      if (no == 8) {
#if defined(__AVX2__)
         for (int k = 0; k < 9; k++) g[k] = (v8)_mm256_i32gather_ps(w + dk * k, idx, 4);
#else
         for (int k = 0; k < 9; k++)
            for (int q = 0; q < 8; q++) g[k][q] = w[q * st + dk * k];
#endif
      } else {
         for (int k = 0; k < 9; k++)
            for (int q = 0; q < 8; q++) g[k][q] = q < no ? w[q * st + dk * k] : 0.0f;
      }
      v8 t[6][3];   /* G g: t[a][col] */
      for (int c = 0; c < 3; c++) {
         v8 col[3] = { g[c], g[3 + c], g[6 + c] }, u[6];
         g3(u, col);
         for (int a = 0; a < 6; a++) t[a][c] = u[a];
      }
      for (int a = 0; a < 6; a++) {
         v8 u[6];
         g3(u, t[a]);
         for (int b = 0; b < 6; b++) {
            const int x = 6 * a + b;
#if MR == 8
            storev(U0 + x * uxi + (int64_t)i * 8, u[b]);
#else
            for (int q = 0; q < 8; q++)
               U0[(q / MR) * ps + x * uxi + (int64_t)i * MR + q % MR] = u[b][q];
#endif
         }
      }
   }
}

/* dg += G^T du G, du[xi * xs] (in double: 9 outputs per 36 inputs, cheap) */
static void filter_bwd(float *dw, const float *du, int64_t xs)
{
   const double k6 = 1.0 / 6, k12 = 1.0 / 12, k24 = 1.0 / 24;
   double t[6][3];
   for (int k = 0; k < 6; k++) {
      double d[6];
      for (int l = 0; l < 6; l++) d[l] = du[(6 * k + l) * xs];
      t[k][0] = d[0] * 0.25 - (d[1] + d[2]) * k6 + (d[3] + d[4]) * k24;
      t[k][1] = (d[2] - d[1]) * k6 + (d[3] - d[4]) * k12;
      t[k][2] = (d[3] + d[4] - d[1] - d[2]) * k6 + d[5];
   }
   for (int c = 0; c < 3; c++) {
      double d[6];
      for (int k = 0; k < 6; k++) d[k] = t[k][c];
      dw[c] += (float)(d[0] * 0.25 - (d[1] + d[2]) * k6 + (d[3] + d[4]) * k24);
      dw[3 + c] += (float)((d[2] - d[1]) * k6 + (d[3] - d[4]) * k12);
      dw[6 + c] += (float)((d[3] + d[4] - d[1] - d[2]) * k6 + d[5]);
   }
}

/* ------------------------------------------------------------ micro-kernels */

DDPM_MKERNEL(kern_fwd, NVF)
DDPM_MKERNEL(kern_wgt, NVW)

/* ------------------------------------------------------------ drivers */

/*
 * Two ways to share a layer between threads:
 *  - private blocks (layers with many slots, or one thread): each thread transforms,
 *    multiplies and transforms back whole blocks of its own, sized so that
 *    a block's V and M stay near its core's L2. Nothing a thread writes is
 *    read by another, so there are no barriers and no data moving between
 *    cores. (The shared scheme below measured slower with 2 threads than
 *    with 1 on the Fashion-MNIST layers, 64 x 32ch x 28x28: 6.2 ms against
 *    5.0; two single-threaded processes side by side ran 4.6-5.0 ms each.)
 *  - shared blocks (few slots: a batch of 8 at 16x16 has 128): all threads
 *    work on one block, the input transform split by channel, the GEMM by
 *    output rows, the output transform by output channel.
 * The forward and the input gradient give the same bits either way (each
 * slot's arithmetic is the same); the weight gradient's private partial
 * sums are added in thread order, so its bits depend on the thread count.
 */

/* Floats a private block may use (V and M, or V and D and the partial dU). */
#define PRIV_FLOATS (192u << 10)
/* Largest partial dU a thread may keep for the weight gradient. */
#define PRIV_DU_FLOATS (1u << 20)

static int64_t u_floats(int I, int O)
{
   return round_up(O, 8) / MR * NXI * xstride((int64_t)I * MR);
}

static int64_t blk_floats(int I, int O, int tb)
{
   return NXI * xstride((int64_t)I * tb) + NXI * xstride(round_up(O, 8) * tb);
}

/* Slots of a private forward block: a multiple of NRF. */
static int priv_slots(int I, int O)
{
   int64_t tb = PRIV_FLOATS / ((int64_t)NXI * (I + round_up(O, 8))) / NRF * NRF;
   return (int)(tb < NRF ? NRF : tb > TB_MAX ? TB_MAX : tb);
}

/* Threads that run private forward blocks (0: use shared blocks), given the
   scratch (nscratch 0: size for `threads`). */
static int priv_threads(const geom *g, int I, int O, int threads, size_t nscratch)
{
   const int tb = priv_slots(I, O);
   const int64_t nb = (g->S + tb - 1) / tb;
   if (threads < 1 || nb < 2 * (int64_t)threads) return 0;
   if (nscratch) {
      const int64_t fit = ((int64_t)nscratch - u_floats(I, O)) / blk_floats(I, O, tb);
      if (fit < threads) threads = (int)fit;
   }
   return threads >= 1 ? threads : 0;
}

/* Weight gradient: per-thread chunk slots (a multiple of 8), partial dU,
   and whether to use private chunks at all. */
static int wpriv_slots(int C, int OC)
{
   int64_t tw = PRIV_FLOATS / ((int64_t)NXI * (round_up(C, MR) + round_up(OC, NRW))) / 8 * 8;
   return (int)(tw < 48 ? 48 : tw);
}

static int64_t wdu_floats(int C, int OC)
{
   return NXI * xstride(round_up(C, MR) * round_up(OC, NRW));
}

static int64_t wpriv_floats(int C, int OC)
{
   const int64_t tw = wpriv_slots(C, OC), Cp = round_up(C, MR), OCw = round_up(OC, NRW);
   return wdu_floats(C, OC) + NXI * (xstride(Cp * tw) + xstride(tw * OCw));
}

static int wpriv_threads(const geom *g, int C, int OC, int threads, size_t nscratch)
{
   const int64_t nb = (g->S + wpriv_slots(C, OC) - 1) / wpriv_slots(C, OC);
   if (threads < 1 || nb < 2 * (int64_t)threads || wdu_floats(C, OC) > PRIV_DU_FLOATS) return 0;
   if (nscratch) {
      const int64_t fit = ((int64_t)nscratch - wdu_floats(C, OC)) / wpriv_floats(C, OC);
      if (fit < threads) threads = (int)fit;
   }
   return threads >= 1 ? threads : 0;
}

/* Floats of U, V, M for the shared forward pass of I -> O channels. */
static int64_t run_floats(const geom *g, int I, int O, int threads)
{
   int64_t shared = u_floats(I, O) + blk_floats(I, O, block_slots(g));
   int nt = priv_threads(g, I, O, threads, 0);
   int64_t priv = nt ? u_floats(I, O) + nt * blk_floats(I, O, priv_slots(I, O)) : 0;
   return shared > priv ? shared : priv;
}

static int64_t wgt_floats(const geom *g, int C, int OC, int threads)
{
   const int64_t tw = wchunk_slots(g, C, OC), OCw = round_up(OC, NRW), Cp = round_up(C, MR);
   int64_t shared = NXI * (xstride(Cp * OCw) + xstride(Cp * tw) + xstride(tw * OCw));
   int nt = wpriv_threads(g, C, OC, threads, 0);
   int64_t priv = nt ? wdu_floats(C, OC) + nt * wpriv_floats(C, OC) : 0;
   return shared > priv ? shared : priv;
}

size_t ddpm_wino_scratch_floats(int N, int C, int OC, int H, int W, int backward, int threads)
{
   geom g = make_geom(N, H, W);
   int64_t m = run_floats(&g, C, OC, threads);
   if (backward) {
      int64_t b = run_floats(&g, OC, C, threads), w = wgt_floats(&g, C, OC, threads);
      if (b > m) m = b;
      if (w > m) m = w;
   }
   return (size_t)m;
}

/* Output-row panels per GEMM work item: enough rows that one pass over V
   serves several panels, few enough that every thread gets items. */
#define OB_ROWS 16

/* One private block: slots s0 .. s0+nslot-1, transforms and GEMM by this
   thread alone into V [36][I][TB], M [36][Op][TB]. */
static void run_block(float *out, const float *U, float *V, float *M, const float *in,
                      const ddpm_conv_epi *e, const geom *g, int I, int O, int TB,
                      int64_t s0, int nslot, float *rb, pairpos *pr)
{
   const int Op = (int)round_up(O, 8);
   const int64_t ux = xstride((int64_t)I * MR), po = NXI * ux;
   const int64_t vxs = xstride((int64_t)I * TB), mxs = xstride((int64_t)Op * TB);
   const int64_t plane = (int64_t)g->H * g->W;
   const int nc = (int)round_up(nslot, NRF);      /* columns the GEMM covers */
   block_pairs(pr, g, s0, nslot);
   for (int c = 0; c < I; c++) {
      rowring r;
      ring_init(&r, rb, 6, -1, -1);
      float *Vc = V + (int64_t)c * TB;
      for (int j = 0; j < nslot; j += 8)
         input_task(Vc, vxs, j, &r, g, in + (int64_t)c * plane, (int64_t)I * plane, pr + j / 2);
      for (int x = 0; x < NXI; x++)
         for (int j = nslot; j < nc; j++) Vc[x * vxs + j] = 0.0f;
   }
   for (int x = 0; x < NXI; x++) {
      const float *Vx = V + x * vxs;
      float *Mx = M + x * mxs;
      for (int jb = 0; jb < nc; jb += NRF)
         for (int ob = 0; ob < Op; ob += MR)
            kern_fwd(Mx + (int64_t)ob * TB + jb, TB, U + (ob / MR) * po + x * ux, 1, MR,
                     Vx + jb, TB, I, 0);
   }
   for (int o = 0; o < O; o++)
      for (int j = 0; j < nslot; j += 8)
         output_task(out, M + (int64_t)o * TB, mxs, j, g, O, o, pr + j / 2, e);
}

/*
 * out [N,O,H,W] = conv(in [N,I,H,W]). Shared blocks: input transform (split
 * by input channel), then per 16-row group of output channels the filter
 * transform (first block only: later blocks reuse the packed U) and its 36
 * GEMMs while those filters are still in cache, then the output transform
 * (split by output channel). Private blocks: the filter transform first
 * (split by row groups), then whole blocks per thread.
 */
static void wino_run(float *out, float *scratch, size_t nscratch, const float *in,
                     const float *weight, int flip, const ddpm_conv_epi *e, int N, int I, int H,
                     int W, int O)
{
   const geom g = make_geom(N, H, W);
   const int Op = (int)round_up(O, 8);
   const int64_t ux = xstride((int64_t)I * MR), po = NXI * ux;
   float *U = scratch;                             /* [Op/MR][36][I][MR] */
   const int64_t plane = (int64_t)H * W;
   const int ngroups = (Op + OB_ROWS - 1) / OB_ROWS;
#ifdef _OPENMP
   const int nt = priv_threads(&g, I, O, omp_get_max_threads(), nscratch);
#else
   const int nt = 0;
#endif
   if (nt) {
      const int TB = priv_slots(I, O);
      const int64_t per = blk_floats(I, O, TB), nb = (g.S + TB - 1) / TB;
      float *P = U + u_floats(I, O);
      #pragma omp parallel num_threads(nt)
      {
         float rb[4 * 6 * g.rw];
         pairpos pr[TB_MAX / 2 + 4];
         #pragma omp for schedule(static)
         for (int o0 = 0; o0 < Op; o0 += 8) filters_transform8(U, weight, O, I, o0, flip);
#ifdef _OPENMP
         float *V = P + (int64_t)omp_get_thread_num() * per;
#else
         float *V = P;
#endif
         float *M = V + NXI * xstride((int64_t)I * TB);
         #pragma omp for schedule(dynamic, 1)
         for (int64_t b = 0; b < nb; b++) {
            const int64_t s0 = b * TB;
            const int nslot = g.S - s0 < TB ? (int)(g.S - s0) : TB;
            run_block(out, U, V, M, in, e, &g, I, O, TB, s0, nslot, rb, pr);
         }
      }
      return;
   }
   const int TB = block_slots(&g);
   const int64_t vxs = xstride((int64_t)I * TB), mxs = xstride((int64_t)Op * TB);
   float *V = U + (Op / MR) * po;                  /* [36][I][TB] */
   float *M = V + NXI * vxs;                       /* [36][Op][TB] */
   #pragma omp parallel
   {
      float rb[4 * 6 * g.rw];
      pairpos pr[TB_MAX / 2 + 4];
      for (int64_t s0 = 0; s0 < g.S; s0 += TB) {
         const int nslot = g.S - s0 < TB ? (int)(g.S - s0) : TB;
         block_pairs(pr, &g, s0, nslot);
         #pragma omp for schedule(dynamic, 1)
         for (int c = 0; c < I; c++) {
            rowring r;
            ring_init(&r, rb, 6, -1, -1);
            float *Vc = V + (int64_t)c * TB;
            for (int j = 0; j < nslot; j += 8)
               input_task(Vc, vxs, j, &r, &g, in + (int64_t)c * plane, (int64_t)I * plane,
                          pr + j / 2);
            /* slots past the end: zero lanes (the task may have filled some) */
            for (int x = 0; x < NXI; x++)
               for (int j = nslot; j < TB; j++) Vc[x * vxs + j] = 0.0f;
         }
         #pragma omp for schedule(dynamic, 1)
         for (int gi = 0; gi < ngroups; gi++) {
            const int r0 = gi * OB_ROWS, r1 = r0 + OB_ROWS < Op ? r0 + OB_ROWS : Op;
            if (s0 == 0)
               for (int o0 = r0; o0 < r1; o0 += 8) filters_transform8(U, weight, O, I, o0, flip);
            for (int x = 0; x < NXI; x++) {
               const float *Vx = V + x * vxs;
               float *Mx = M + x * mxs;
               for (int jb = 0; jb < TB; jb += NRF)
                  for (int ob = r0; ob < r1; ob += MR)
                     kern_fwd(Mx + (int64_t)ob * TB + jb, TB, U + (ob / MR) * po + x * ux,
                              1, MR, Vx + jb, TB, I, 0);
            }
         }
         #pragma omp for schedule(dynamic, 1) nowait
         for (int o = 0; o < O; o++)
            for (int j = 0; j < nslot; j += 8)
               output_task(out, M + (int64_t)o * TB, mxs, j, &g, O, o, pr + j / 2, e);
      }
   }
}

void ddpm_wino_forward(float *out, float *scratch, size_t nscratch, const float *in,
                       const float *weight, const ddpm_conv_epi *e, int N, int C, int H, int W,
                       int OC)
{
   if (N <= 0 || C <= 0 || OC <= 0 || H <= 0 || W <= 0) return;
   wino_run(out, scratch, nscratch, in, weight, 0, e, N, C, H, W, OC);
}

void ddpm_wino_backward_data(float *din, int accumulate, float *scratch, size_t nscratch,
                             const float *dout, const float *weight, int N, int C, int H, int W,
                             int OC)
{
   if (N <= 0 || C <= 0 || OC <= 0 || H <= 0 || W <= 0) return;
   ddpm_conv_epi e = { NULL, NULL, accumulate ? din : NULL };
   wino_run(din, scratch, nscratch, dout, weight, 1, &e, N, OC, H, W, C);
}

/* D [36][slot][OCw] columns ob .. ob+7: A dY A^T of output channels ob .. ob+7
   (zero past OC and past nslot, up to the next multiple of 8). */
static void grad_block(float *D, int64_t dxs, const float *dout, const geom *g, int OC, int OCw,
                       int ob, int nslot, float *rb, const pairpos *pr)
{
   const int64_t plane = (int64_t)g->H * g->W;
   rowring r;
   ring_init(&r, rb, 4, 0, 0);
   (void)OCw;
   for (int j = 0; j < nslot; j += 8) {
      float tbuf[8][NXI][8];   /* [channel][xi][slot] */
      for (int q = 0; q < 8; q++) {
         const int oc = ob + q;
         if (oc >= OC) { memset(tbuf[q], 0, sizeof tbuf[q]); continue; }
         v8 k[NXI];
         ring_init(&r, rb, 4, 0, 0);
         grad_task(k, &r, g, dout + (int64_t)oc * plane, (int64_t)OC * plane, pr + j / 2);
         for (int x = 0; x < NXI; x++) storev(tbuf[q][x], k[x]);
      }
      const int ns = nslot - j < 8 ? nslot - j : 8;
      for (int x = 0; x < NXI; x++)
         for (int sl = 0; sl < 8; sl++) {
            float *dst = D + x * dxs + (int64_t)(j + sl) * OCw + ob;
            for (int q = 0; q < 8; q++) dst[q] = sl < ns ? tbuf[q][x][sl] : 0.0f;
         }
   }
}

/* V [36][Cp][TW] rows c for channel c of `in` (zero rows past C, zero slots
   from nslot up to nk). */
static void wgt_input(float *V, int64_t vxs, const float *in, const geom *g, int C, int TW,
                      int c, int nslot, int nk, float *rb, const pairpos *pr)
{
   const int64_t plane = (int64_t)g->H * g->W;
   float *Vc = V + (int64_t)c * TW;
   if (c >= C) {
      for (int x = 0; x < NXI; x++) memset(Vc + x * vxs, 0, (size_t)nk * sizeof *Vc);
      return;
   }
   rowring r;
   ring_init(&r, rb, 6, -1, -1);
   for (int j = 0; j < nslot; j += 8)
      input_task(Vc, vxs, j, &r, g, in + (int64_t)c * plane, (int64_t)C * plane, pr + j / 2);
   for (int x = 0; x < NXI; x++)
      for (int j = nslot; j < nk; j++) Vc[x * vxs + j] = 0.0f;
}

/*
 * dU^T[xi][c][oc] = sum over slots of V[xi][c][slot] dMt[xi][slot][oc], chunk
 * by chunk of slots, then dweight[oc][c] += G^T dU G. V is the forward's input
 * transform, dMt the transposed A dY A^T. Shared chunks: every dU entry is
 * summed by one work item per chunk, in slot order, so the bits do not
 * depend on threads. Private chunks: each thread sums its chunks (chunk t,
 * t + nt, ...) into its own partial dU, and the partials are added in thread
 * order: the bits depend on the thread count, not on scheduling.
 */
void ddpm_wino_backward_weight(float *dweight, float *scratch, size_t nscratch,
                               const float *dout, const float *in, int N, int C, int H, int W,
                               int OC)
{
   if (N <= 0 || C <= 0 || OC <= 0 || H <= 0 || W <= 0) return;
   const geom g = make_geom(N, H, W);
   const int Cp = (int)round_up(C, MR), OCw = (int)round_up(OC, NRW);
   const int64_t uxs = xstride((int64_t)Cp * OCw);
   float *dU = scratch;                               /* [36][Cp][OCw] */
#ifdef _OPENMP
   const int nt = wpriv_threads(&g, C, OC, omp_get_max_threads(), nscratch);
#else
   const int nt = 0;
#endif
   if (nt) {
      const int TW = wpriv_slots(C, OC);
      const int64_t vxs = xstride((int64_t)Cp * TW), dxs = xstride((int64_t)TW * OCw);
      const int64_t per = wpriv_floats(C, OC), nb = (g.S + TW - 1) / TW;
      float *P = dU + wdu_floats(C, OC);
      #pragma omp parallel num_threads(nt)
      {
         float rb[4 * 6 * g.rw];
         pairpos pr[TW / 2 + 4];
#ifdef _OPENMP
         const int t = omp_get_thread_num(), T = omp_get_num_threads();
#else
         const int t = 0, T = 1;
#endif
         float *Ut = P + t * per, *V = Ut + wdu_floats(C, OC), *D = V + NXI * vxs;
         int first = 1;
         for (int64_t b = t; b < nb; b += T) {
            const int64_t s0 = b * TW;
            const int nslot = g.S - s0 < TW ? (int)(g.S - s0) : TW;
            const int nk = (int)round_up(nslot, 8);
            block_pairs(pr, &g, s0, nslot);
            for (int c = 0; c < Cp; c++) wgt_input(V, vxs, in, &g, C, TW, c, nslot, nk, rb, pr);
            for (int ob = 0; ob < OCw; ob += 8)
               grad_block(D, dxs, dout, &g, OC, OCw, ob, nslot, rb, pr);
            for (int x = 0; x < NXI; x++)
               for (int cb = 0; cb < Cp; cb += MR)
                  for (int ob = 0; ob < OCw; ob += NRW)
                     kern_wgt(Ut + x * uxs + (int64_t)cb * OCw + ob, OCw,
                              V + x * vxs + (int64_t)cb * TW, TW, 1, D + x * dxs + ob, OCw, nk,
                              !first);
            first = 0;
         }
         if (first) memset(Ut, 0, (size_t)wdu_floats(C, OC) * sizeof *Ut);
         #pragma omp barrier
         /* dU = sum of the partials in thread order, split by xi plane */
         #pragma omp for schedule(static)
         for (int x = 0; x < NXI; x++) {
            float *dst = dU + x * uxs;
            const float *src0 = P + x * uxs;
            for (int64_t i = 0; i < (int64_t)Cp * OCw; i++) dst[i] = src0[i];
            for (int u = 1; u < T; u++) {
               const float *src = P + u * per + x * uxs;
               for (int64_t i = 0; i < (int64_t)Cp * OCw; i++) dst[i] += src[i];
            }
         }
         #pragma omp for schedule(static)
         for (int oc = 0; oc < OC; oc++)
            for (int c = 0; c < C; c++)
               filter_bwd(dweight + ((size_t)oc * C + c) * 9, dU + (int64_t)c * OCw + oc, uxs);
      }
      return;
   }
   const int TW = wchunk_slots(&g, C, OC);
   const int64_t vxs = xstride((int64_t)Cp * TW), dxs = xstride((int64_t)TW * OCw);
   float *V = dU + NXI * uxs;                         /* [36][Cp][TW] */
   float *D = V + NXI * vxs;                          /* [36][TW][OCw] */
   #pragma omp parallel
   {
      float rb[4 * 6 * g.rw];
      pairpos pr[TW / 2 + 4];
      for (int64_t s0 = 0; s0 < g.S; s0 += TW) {
         const int nslot = g.S - s0 < TW ? (int)(g.S - s0) : TW;
         block_pairs(pr, &g, s0, nslot);
         const int nk = (int)round_up(nslot, 8);
         #pragma omp for schedule(dynamic, 1) nowait
         for (int c = 0; c < Cp; c++) wgt_input(V, vxs, in, &g, C, TW, c, nslot, nk, rb, pr);
         /* dMt: 8 output channels at a time */
         #pragma omp for schedule(dynamic, 1)
         for (int ob = 0; ob < OCw; ob += 8)
            grad_block(D, dxs, dout, &g, OC, OCw, ob, nslot, rb, pr);
         #pragma omp for schedule(dynamic, 1)
         for (int x = 0; x < NXI; x++) {
            const float *Vx = V + x * vxs, *Dx = D + x * dxs;
            float *Ux = dU + x * uxs;
            for (int cb = 0; cb < Cp; cb += MR)
               for (int ob = 0; ob < OCw; ob += NRW)
                  kern_wgt(Ux + (int64_t)cb * OCw + ob, OCw, Vx + (int64_t)cb * TW, TW, 1,
                           Dx + ob, OCw, nk, s0 > 0);
         }
      }
      #pragma omp for schedule(static)
      for (int oc = 0; oc < OC; oc++)
         for (int c = 0; c < C; c++)
            filter_bwd(dweight + ((size_t)oc * C + c) * 9, dU + (int64_t)c * OCw + oc, uxs);
   }
}

void ddpm_conv_bias_backward(float *dbias, const float *dout, int N, int OC, int64_t HW)
{
   #pragma omp parallel for schedule(static)
   for (int oc = 0; oc < OC; oc++) {
      double acc = 0;
      for (int n = 0; n < N; n++) {
         const float *p = dout + ((int64_t)n * OC + oc) * HW;
         float part = 0;
         for (int64_t i = 0; i < HW; i++) part += p[i];
         acc += part;
      }
      dbias[oc] += (float)acc;
   }
}
