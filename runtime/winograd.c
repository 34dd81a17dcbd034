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
 * Slots go in blocks: transformed, multiplied and transformed back either by
 * one thread per block (layers with many slots) or by all threads together
 * (few slots, large channel counts); see "Two ways to share a layer" below.
 * The strides between the 36 xi planes are odd numbers of cache lines
 * (xstride): at multiples of 4 KiB the 36 streams of a transform all fell
 * into one L1 set, which cost 1.4-2x on every layer.
 *
 * Measured (one core of this EPYC, best of 10, direct-convolution FLOPs):
 * 8 x 128ch 32x32: forward 7.4 ms = 330 GFLOP/s (im2col + OpenBLAS sgemm:
 * ~100); 8 x 256ch 16x16: 6.2 ms = 390. The GEMM runs at ~150-170 real
 * GFLOP/s on AVX-512; the transforms are most of the rest.
 *
 * Accuracy: B^T has entries up to 5 and A^T up to 8, so the transformed
 * values are larger than the data and some cancellation follows: errors are
 * ~1e-6 of sum|terms| (direct summation: ~1e-7); tests/c/test_winograd.c
 * holds the bound (2e-5), and the U-Net's output and gradients stay within
 * 7e-6 and 4e-5 of the float64 reference (tests/c/test_unet_fixture.c).
 *
 * This file: the transforms, the forward and the input gradient, and the
 * scratch sizes; winograd_wgt.c: the weight gradient; winograd.h: what the
 * two share.
 *
 * Not here: other kernel sizes, strides or paddings (conv.c), the choice of
 * when to use it (unet_run.c), F(6x6,3x3) (too inaccurate in float32).
 */
#include "winograd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Slots of a shared block: whole 16-slot transform tasks (the GEMM's last
   column block may be narrower than NRF, gemm_cols), at most TB_MAX. */
static int block_slots(const geom *g)
{
   int64_t tb = round_up(g->S, 16);
   if (tb > TB_MAX) tb = TB_MAX;
   return (int)tb;
}

/* ------------------------------------------------------------ 1-D transforms */

/* The same 1-D transforms on 8 lanes (bt6, at6) and on 16 (bt6x, at6x): the
   16-lane forms serve the forward's 16-slot tasks, whose every store to V
   and load from M is one whole cache line. */

/* B^T d: 6 -> 6 */
#define DEF_BT6(name, T)                                           \
   static inline void name(T o[6], const T d[6])                   \
   {                                                               \
      T d42 = d[4] - d[2], d31 = d[3] - d[1];                      \
      o[0] = (d[0] - d[2]) * 4.0f + d42;                           \
      o[1] = (d[3] + d[4]) - (d[1] + d[2]) * 4.0f;                 \
      o[2] = (d[4] - d[3]) + (d[1] - d[2]) * 4.0f;                 \
      o[3] = d42 + d31 * 2.0f;                                     \
      o[4] = d42 - d31 * 2.0f;                                     \
      o[5] = (d[1] - d[3]) * 4.0f + (d[5] - d[3]);                 \
   }

/* A^T m: 6 -> 4 */
#define DEF_AT6(name, T)                                                             \
   static inline void name(T y[4], const T m[6])                                     \
   {                                                                                 \
      T s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4]; \
      y[0] = m[0] + s12 + s34;                                                       \
      y[1] = d12 + d34 * 2.0f;                                                       \
      y[2] = s12 + s34 * 4.0f;                                                       \
      y[3] = d12 + d34 * 8.0f + m[5];                                                \
   }

DEF_BT6(bt6, v8)
DEF_BT6(bt6x, v16)
DEF_AT6(at6, v8)
DEF_AT6(at6x, v16)

static inline v16 join8(v8 lo, v8 hi)
{
   return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
static inline v8 lo8(v16 v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7); }
static inline v8 hi8(v16 v) { return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15); }

/* ------------------------------------------------------------ 8-slot stores */

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

/* ------------------------------------------------------------ padded row sets */

void ddpm_wino_ring_init(rowring *r, float *buf, int nrows, int y0, int x0)
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

void ddpm_wino_block_pairs(pairpos *pr, const geom *g, int64_t s0, int nslot)
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
void ddpm_wino_task_rows(const float *pp[4], int64_t rs[4], rowring *r, const geom *g,
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
static inline void task_cols(v8 d[6][6], rowring *r, const geom *g, const float *base,
                             int64_t nstride, const pairpos *pr);

void ddpm_wino_input_task(float *V, int64_t xs, int j, rowring *r, const geom *g,
                          const float *base, int64_t nstride, const pairpos *pr)
{
   v8 d[6][6], h[6][6];
   task_cols(d, r, g, base, nstride, pr);
   for (int i = 0; i < 6; i++) bt6(h[i], d[i]);
   for (int l = 0; l < 6; l++) {
      v8 col[6] = { h[0][l], h[1][l], h[2][l], h[3][l], h[4][l], h[5][l] }, o[6];
      bt6(o, col);
      for (int k = 0; k < 6; k++) storev(V + (6 * k + l) * xs + j, o[k]);
   }
}

/* The 6 rows x 6 columns of the 8 slots of pairs pr (pr[0].n >= 0). Loaded
   before the next call of ddpm_wino_task_rows, which may reuse the ring's
   row sets. */
static inline void task_cols(v8 d[6][6], rowring *r, const geom *g, const float *base,
                             int64_t nstride, const pairpos *pr)
{
#ifdef WINO_MASKED
   (void)r;
   task_cols_masked(d, 6, 6, -1, -1, g, base, nstride, pr);
   return;
#endif
   const float *pp[4];
   int64_t rs[4];
   ddpm_wino_task_rows(pp, rs, r, g, base, nstride, pr, 12);
   for (int i = 0; i < 6; i++) {
      const float *q[4] = { pp[0] + i * rs[0], pp[1] + i * rs[1],
                            pp[2] + i * rs[2], pp[3] + i * rs[3] };
      load_cols(d[i], 6, q);
   }
}

/* ddpm_wino_input_task for the 16 slots j .. j+15 (slots from nslot on are
   garbage for the caller to zero): the arithmetic runs on 16 lanes and each
   of the 36 stores fills one cache line of V, where two 8-slot tasks wrote
   every line in two halves at different times (an L1 miss each). */
static void input_task16(float *V, int64_t xs, int j, int nslot, rowring *r, const geom *g,
                         const float *base, int64_t nstride, const pairpos *pr)
{
   v8 a[6][6], b[6][6];
   task_cols(a, r, g, base, nstride, pr);
   if (j + 8 < nslot) task_cols(b, r, g, base, nstride, pr + 4);
   else memcpy(b, a, sizeof b);
   v16 h[6][6];
   for (int i = 0; i < 6; i++) {
      v16 d[6];
      for (int c = 0; c < 6; c++) d[c] = join8(a[i][c], b[i][c]);
      bt6x(h[i], d);
   }
   for (int l = 0; l < 6; l++) {
      v16 col[6] = { h[0][l], h[1][l], h[2][l], h[3][l], h[4][l], h[5][l] }, o[6];
      bt6x(o, col);
      for (int k = 0; k < 6; k++) storex(V + (6 * k + l) * xs + j, o[k]);
   }
}

#ifdef WINO_MASKED
/*
 * The input transform by whole tile rows, for images whose tile rows have 8
 * slots (25 to 32 columns: CIFAR-10's 32x32 level, Fashion-MNIST's 28x28)
 * or 4 (13 to 16 columns), 16 slots per call: two or four tile rows. A
 * tile row's six image rows are loaded as they lie (columns 0 .. 31, or
 * 0 .. 15: one vector per 16 columns, masked at W), and B^T runs down them
 * on whole rows, every lane a column of the image. Each of the 36 (row xi,
 * column c) vectors of the second step is then gathered from those rows by
 * two permutes and a blend: lane s of column c is image column 4s + c - 1.
 * The per-tile form (task_cols) loaded every row twice per pair and turned
 * it into slot lanes with 20 shuffles per row.
 *
 * Columns -1 and 4 * spr lie outside such an image: the gather zeroes the
 * lanes that would read them (c = 0 of a tile row's first slot, c = 5 of
 * its last).
 */
static inline void rows_down(v16 h[6][2], int nw, const geom *g, const float *base,
                             int64_t nstride, const pairpos *p)
{
   if (p->n < 0) {
      memset(h, 0, sizeof(v16) * 12);
      return;
   }
   v16 d[6][2];
   ddpm_wino_load_rows(d, 6, 4 * p->ty - 1, nw, g, base + (int64_t)p->n * nstride);
   for (int w = 0; w < nw; w++) {
      v16 col[6] = { d[0][w], d[1][w], d[2][w], d[3][w], d[4][w], d[5][w] }, o[6];
      bt6x(o, col);
      for (int k = 0; k < 6; k++) h[k][w] = o[k];
   }
}

void ddpm_wino_input_rows16(float *V, int64_t xs, int nvalid, const geom *g, const float *base,
                            int64_t nstride, const pairpos *pr)
{
   const int spr = g->spr, nr = 16 / spr, nw = spr == 8 ? 2 : 1;
   v16 h[4][6][2];   /* [tile row][k][window] */
   for (int r = 0; r < nr; r++) {
      if (r * spr < nvalid) rows_down(h[r], nw, g, base, nstride, &pr[r * spr / 2]);
      else memset(h[r], 0, sizeof h[r]);
   }
   /* Lane L of column c reads lane ib[L] + c of its permute's two-vector
      table: spr 8, a tile row's two windows (column x at lane x; tile row 0
      into lanes 0..7, 1 into 8..15); spr 4, two tile rows side by side
      (lane 16 (r % 2) + x; rows 0, 1 into lanes 0..7, rows 2, 3 into
      8..15). Both give the same index vector. A tile row's first slot
      reads column -1 at c = 0, its last column 4 spr at c = 5: outside the
      image, zeroed by the masks. */
   const __m512i ib =
      _mm512_set_epi32(27, 23, 19, 15, 11, 7, 3, -1, 27, 23, 19, 15, 11, 7, 3, -1);
   const __mmask16 k0 = spr == 8 ? 0xfefe : 0xeeee, k5 = spr == 8 ? 0x7f7f : 0x7777;
   /* a table's second vector: the same tile row's window 1 (spr 8) or the
      next tile row's window 0 (spr 4); the upper half's table starts at
      tile row 1 (spr 8) or 2 (spr 4) */
   const int dr = spr == 8 ? 0 : 1, w2 = spr == 8 ? 1 : 0, hi = spr == 8 ? 1 : 2;
   for (int k = 0; k < 6; k++) {
      v16 col[6], o[6];
      for (int c = 0; c < 6; c++) {
         const __m512i ix = _mm512_add_epi32(ib, _mm512_set1_epi32(c));
         const __mmask16 keep = c == 0 ? k0 : c == 5 ? k5 : 0xffff;
         const __m512 x = _mm512_maskz_permutex2var_ps(keep, (__m512)h[0][k][0], ix,
                                                       (__m512)h[dr][k][w2]);
         const __m512 y = _mm512_maskz_permutex2var_ps(keep, (__m512)h[hi][k][0], ix,
                                                       (__m512)h[hi + dr][k][w2]);
         col[c] = (v16)_mm512_mask_blend_ps(0xff00, x, y);
      }
      bt6x(o, col);
      if (nvalid > 8)
         for (int l = 0; l < 6; l++) storex(V + (6 * k + l) * xs, o[l]);
      else
         for (int l = 0; l < 6; l++) storev(V + (6 * k + l) * xs, lo8(o[l]));
   }
}
#endif

/* The 16 slots j .. j+15 of a block's V (slots from nslot on are garbage for
   the caller to zero), by whole tile rows where they have 8 or 4 slots. */
static inline void input_any16(float *V, int64_t xs, int j, int nslot, rowring *r,
                               const geom *g, const float *base, int64_t nstride,
                               const pairpos *pr)
{
#ifdef WINO_MASKED
   if (g->spr == 8 || g->spr == 4) {
      ddpm_wino_input_rows16(V + j, xs, nslot - j, g, base, nstride, pr);
      return;
   }
#endif
   input_task16(V, xs, j, nslot, r, g, base, nstride, pr);
}

/* Where the output rows of channel oc for the pairs pr go: the offset of
   each pair's tile row in out, and the bias it adds (bias + bias_nc). */
typedef struct outpairs {
   int np;            /* valid pairs (pr[p].n >= 0), 0 .. 4 */
   size_t base[4];
   float b[4];
} outpairs;

static inline void out_pairs(outpairs *o, const geom *g, int OC, int oc, const pairpos *pr,
                             const ddpm_conv_epi *e)
{
   const float bias = e && e->bias ? e->bias[oc] : 0.0f;
   const size_t plane = (size_t)g->H * g->W;
   int np = 0;
   for (; np < 4 && pr[np].n >= 0; np++) {
      o->b[np] = bias + (e && e->bias_nc ? e->bias_nc[(size_t)pr[np].n * OC + oc] : 0.0f);
      o->base[np] = ((size_t)pr[np].n * OC + oc) * plane + (size_t)(4 * pr[np].ty) * g->W +
                    4 * pr[np].tx;
   }
   o->np = np;
}

/* Output row a of the pairs of o: y[s] lane q = column s of slot q. */
static inline void store_out_row(float *out, const v8 y[4], int a, const outpairs *o,
                                 const geom *g, const pairpos *pr, const float *add)
{
   v8 q[4];
   pairs_of(q, y);
   for (int p = 0; p < o->np; p++) {
      const int yy = 4 * pr[p].ty + a, x0 = 4 * pr[p].tx;
      if (yy >= g->H || x0 >= g->W) continue;
      const size_t off = o->base[p] + (size_t)a * g->W;
      v8 v = q[p] + o->b[p];
      if (x0 + 8 <= g->W) {
         if (add) v += loadv(add + off);
         storev(out + off, v);
      } else {
         const int nc = g->W - x0;
#ifdef WINO_MASKED
         const __mmask8 m = (__mmask8)((1u << nc) - 1);
         if (add) v += (v8)_mm256_maskz_loadu_ps(m, add + off);
         _mm256_mask_storeu_ps(out + off, m, (__m256)v);
#else
         for (int c = 0; c < nc; c++) out[off + c] = v[c] + (add ? add[off + c] : 0.0f);
#endif
      }
   }
}

/* Output tiles of channel oc for the 16 slots j .. j+15 of pairs pr
   (pr[0].n >= 0; those from nslot on are not written), from
   M[xi * xs + j]: whole cache lines of M, 16 lanes of arithmetic. */
static void output_task16(float *out, const float *M, int64_t xs, int j, int nslot,
                          const geom *g, int OC, int oc, const pairpos *pr,
                          const ddpm_conv_epi *e)
{
   v16 t[4][6];
   for (int l = 0; l < 6; l++) {
      v16 m[6];
      for (int k = 0; k < 6; k++) m[k] = loadx(M + (6 * k + l) * xs + j);
      v16 y[4];
      at6x(y, m);
      for (int a = 0; a < 4; a++) t[a][l] = y[a];
   }
   outpairs o0, o1;
   out_pairs(&o0, g, OC, oc, pr, e);
   if (j + 8 < nslot) out_pairs(&o1, g, OC, oc, pr + 4, e);
   else o1.np = 0;
   const float *add = e ? e->add : NULL;
   for (int a = 0; a < 4; a++) {
      v16 y[4];
      at6x(y, t[a]);
      v8 lo[4] = { lo8(y[0]), lo8(y[1]), lo8(y[2]), lo8(y[3]) };
      store_out_row(out, lo, a, &o0, g, pr, add);
      if (o1.np) {
         v8 hi[4] = { hi8(y[0]), hi8(y[1]), hi8(y[2]), hi8(y[3]) };
         store_out_row(out, hi, a, &o1, g, pr + 4, add);
      }
   }
}

#ifdef WINO_MASKED
/* One tile row's 4 output rows for channel oc: q[a][s] lane lane0 + t =
   output row a, column s of the tile row's tile t, written as whole image
   rows (nz vectors of 16 columns, masked at W) with bias, per-image bias and
   residual. Column 4t + s of a vector comes from (q0, q1) for s in {0, 1},
   from (q2, q3) for s in {2, 3} (the same permute indices), then a blend. */
static inline void store_tile_row(float *out, const v16 q[4][4], int lane0, int nz,
                                  const geom *g, int OC, int oc, const pairpos *p,
                                  const ddpm_conv_epi *e)
{
   /* lane L = 4t + s reads lane 16 (s % 2) + t of its table */
   const __m512i ib = _mm512_set_epi32(19, 3, 19, 3, 18, 2, 18, 2, 17, 1, 17, 1, 16, 0, 16, 0);
   const float bias = (e && e->bias ? e->bias[oc] : 0.0f) +
                      (e && e->bias_nc ? e->bias_nc[(size_t)p->n * OC + oc] : 0.0f);
   const float *add = e ? e->add : NULL;
   const size_t base = ((size_t)p->n * OC + oc) * (size_t)g->H * g->W + (size_t)(4 * p->ty) * g->W;
   for (int z = 0; z < nz; z++) {
      const __m512i ix = _mm512_add_epi32(ib, _mm512_set1_epi32(lane0 + 4 * z));
      const __mmask16 m = ddpm_cols16(16 * z, g->W);
      for (int a = 0; a < 4 && 4 * p->ty + a < g->H; a++) {
         const __m512 v01 = _mm512_permutex2var_ps((__m512)q[a][0], ix, (__m512)q[a][1]);
         const __m512 v23 = _mm512_permutex2var_ps((__m512)q[a][2], ix, (__m512)q[a][3]);
         __m512 v = _mm512_add_ps(_mm512_mask_blend_ps(0xcccc, v01, v23), _mm512_set1_ps(bias));
         const size_t off = base + (size_t)a * g->W + 16 * z;
         if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, add + off));
         _mm512_mask_storeu_ps(out + off, m, v);
      }
   }
}

/*
 * The output transform by whole tile rows (g->spr 8 or 4; pr: the block's
 * pairs from the first slot on, which starts a tile row), 16 slots per call: A^T
 * down the 6 rows of M, A^T along them, and each image row of a tile row
 * written at once (per-tile stores of 8 columns cost a quarter of the time
 * at 28x28). Tile rows from slot nvalid on are not written.
 */
void ddpm_wino_output_rows16(float *out, const float *M, int64_t xs, int nvalid, const geom *g,
                             int OC, int oc, const pairpos *pr, const ddpm_conv_epi *e)
{
   v16 t[4][6];
   for (int l = 0; l < 6; l++) {
      v16 m[6], y[4];
      for (int k = 0; k < 6; k++) m[k] = loadx(M + (6 * k + l) * xs);
      at6x(y, m);
      for (int a = 0; a < 4; a++) t[a][l] = y[a];
   }
   v16 q[4][4];
   for (int a = 0; a < 4; a++) at6x(q[a], t[a]);
   const int spr = g->spr, nz = spr / 4;
   for (int r = 0; r < 16 / spr && r * spr < nvalid; r++) {
      const pairpos *p = &pr[r * spr / 2];
      if (p->n < 0) break;
      store_tile_row(out, q, r * spr, nz, g, OC, oc, p, e);
   }
}
#endif

/* Output tiles of channel oc for 16 slots, by whole tile rows where they
   have 8 or 4 slots. */
static inline void output_any16(float *out, const float *M, int64_t xs, int j, int nslot,
                                const geom *g, int OC, int oc, const pairpos *pr,
                                const ddpm_conv_epi *e)
{
#ifdef WINO_MASKED
   if (g->spr == 8 || g->spr == 4) {
      ddpm_wino_output_rows16(out, M + j, xs, nslot - j, g, OC, oc, pr, e);
      return;
   }
#endif
   output_task16(out, M, xs, j, nslot, g, OC, oc, pr, e);
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
   per xi within a panel, panels 36*I*MR apart), written from Up, the panel
   of row o0:
   forward (flip = 0): o = oc, i = c, filter weight[oc][c];
   input gradient (flip = 1): o = c, i = oc, filter rot180(weight[oc][c]).
   One vector lane per row; float32 arithmetic, rounding well under the tile
   transforms'. */
static void filters_transform8(float *Up, const float *weight, int O, int I, int o0, int flip)
{
   const int no = O - o0 < 8 ? O - o0 : 8;
   /* row q's tap k of input i: forward weight[(o0+q)*I + i][k], flip
      weight[i*O + o0+q][8-k] */
   const int64_t st = flip ? 9 : (int64_t)9 * I;          /* between rows */
   const int64_t si = flip ? (int64_t)9 * O : 9;          /* between inputs */
   const float *base = flip ? weight + (size_t)o0 * 9 + 8 : weight + (size_t)o0 * I * 9;
   const int dk = flip ? -1 : 1;
   const int64_t uxi = xstride((int64_t)I * MR);   /* between xi */
   float *U0 = Up;
   for (int i = 0; i < I; i++) {
      const float *w = base + i * si;
      v8 g[9];
      if (no == 8 && !flip) {
         /* taps 0..7 of the 8 rows turned in registers (gathers are slow
            here: 9 of them cost as much as the rest of the transform), tap 8
            one row at a time */
         v8 t[8];
         for (int q = 0; q < 8; q++) t[q] = loadv(w + q * st);
         ddpm_transpose8(g, t);
         for (int q = 0; q < 8; q++) g[8][q] = w[q * st + 8];
      } else if (no == 8) {
         /* flip: the 8 rows are 8 neighbouring filters (72 floats from
            w - 8), read in their natural tap order and turned the same way;
            tap k of the turned filter is natural tap 8 - k */
         v8 t[8], n[8];
         for (int q = 0; q < 8; q++) t[q] = loadv(w - 8 + q * st);
         ddpm_transpose8(n, t);
         for (int q = 0; q < 8; q++) g[0][q] = w[q * st];
         for (int k = 1; k < 9; k++) g[k] = n[8 - k];
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
               U0[(q / MR) * NXI * uxi + x * uxi + (int64_t)i * MR + q % MR] = u[b][q];
#endif
         }
      }
   }
}

/* ------------------------------------------------------------ micro-kernels */

DDPM_MKERNEL(kern_fwd, NVF)
#if NVF == 3
DDPM_MKERNEL(kern_fwd1, 1)
DDPM_MKERNEL(kern_fwd2, 2)
#endif

/* M[.][jb ..] for output-row panels ob0 .. ob1 (step MR) of one xi, columns
   jb .. jb + w (w = NRF, or a last block of 1 or 2 vectors when VL > 1): the
   narrower kernels spare the products of zero slots that padding the last
   block to NRF computed (a third of the GEMM at 8x8, batch 8). Each output is
   the same sum over k in the same order whatever the kernel, so the bits are
   the same. */
static inline void gemm_cols(float *Mx, int64_t ldm, const float *Ux, int64_t po,
                             const float *Vx, int64_t ldv, int I, int ob0, int ob1, int jb, int w)
{
   for (int ob = ob0; ob < ob1; ob += MR) {
      float *c = Mx + (int64_t)(ob - ob0) * ldm + jb;
      const float *a = Ux + (ob - ob0) / MR * po;
#if NVF == 3
      if (w == VL) { kern_fwd1(c, ldm, a, 1, MR, Vx + jb, ldv, I, 0); continue; }
      if (w == 2 * VL) { kern_fwd2(c, ldm, a, 1, MR, Vx + jb, ldv, I, 0); continue; }
#endif
      kern_fwd(c, ldm, a, 1, MR, Vx + jb, ldv, I, 0);
   }
}

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

static int64_t u_floats(int I, int O)
{
   return round_up(O, 8) / MR * NXI * xstride((int64_t)I * MR);
}

static int64_t blk_floats(int I, int O, int tb)
{
   return NXI * xstride((int64_t)I * tb) + NXI * xstride(round_up(O, 8) * tb);
}

/* Slots of a private forward block: a multiple of NRF. */
/* Private blocks are a whole number of GEMM column blocks and of 16-slot
   transform tasks: 48 is both for every build (NRF 48, 24 or 8). */
#define PRIV_Q 48
_Static_assert(PRIV_Q % NRF == 0 && PRIV_Q % 16 == 0 && TB_MAX % PRIV_Q == 0,
               "private blocks: whole column blocks and tasks");

static int priv_slots(int I, int O)
{
   int64_t tb = PRIV_FLOATS / ((int64_t)NXI * (I + round_up(O, 8))) / PRIV_Q * PRIV_Q;
   return (int)(tb < PRIV_Q ? PRIV_Q : tb > TB_MAX ? TB_MAX : tb);
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

/* Floats of U, V, M for the shared forward pass of I -> O channels. */
static int64_t run_floats(const geom *g, int I, int O, int threads)
{
   int64_t shared = u_floats(I, O) + blk_floats(I, O, block_slots(g));
   int nt = priv_threads(g, I, O, threads, 0);
   int64_t priv = nt ? u_floats(I, O) + nt * blk_floats(I, O, priv_slots(I, O)) : 0;
   return shared > priv ? shared : priv;
}

size_t ddpm_wino_scratch_floats(int N, int C, int OC, int H, int W, int backward, int threads)
{
   geom g = make_geom(N, H, W);
   int64_t m = run_floats(&g, C, OC, threads);
   if (backward) {
      int64_t b = run_floats(&g, OC, C, threads);
      int64_t w = ddpm_wino_wgt_floats(&g, C, OC, threads);
      if (b > m) m = b;
      if (w > m) m = w;
   }
   return (size_t)m;
}

/* Output-row panels per GEMM work item: enough rows that one pass over V
   serves several panels, few enough that every thread gets items. */
#ifndef OB_ROWS
#define OB_ROWS 16
#endif

/* Floats of M per output-row group of a private block: the group's 36
   products stay in L2 until its output transform reads them. */
#ifndef PRIV_M_FLOATS
#define PRIV_M_FLOATS (64u << 10)
#endif

/* One private block: slots s0 .. s0+nslot-1, transforms and GEMM by this
   thread alone into V [36][I][TB] and, one group of output rows at a time,
   M [36][og][TB]. With all rows at once (M [36][Op][TB]: 885 KB at 128
   channels) V and M did not fit in L2 together, and the output transform
   read M back from L3. */
static void run_block(float *out, const float *U, float *V, float *M, const float *in,
                      const ddpm_conv_epi *e, const geom *g, int I, int O, int TB,
                      int64_t s0, int nslot, float *rb, pairpos *pr)
{
   const int Op = (int)round_up(O, 8);
   const int64_t ux = xstride((int64_t)I * MR), po = NXI * ux;
   int og = (int)(PRIV_M_FLOATS / ((int64_t)NXI * TB)) / MR * MR;
   if (og < MR) og = MR;
   if (og > Op) og = Op;
   const int64_t vxs = xstride((int64_t)I * TB), mxs = xstride((int64_t)og * TB);
   const int64_t plane = (int64_t)g->H * g->W;
   const int nc = (int)round_up(nslot, 16);       /* columns the GEMM covers */
   ddpm_wino_block_pairs(pr, g, s0, nslot);
   for (int c = 0; c < I; c++) {
      rowring r;
      ddpm_wino_ring_init(&r, rb, 6, -1, -1);
      float *Vc = V + (int64_t)c * TB;
      if (c + 1 < I)
         ddpm_wino_prefetch_planes(in + (int64_t)(c + 1) * plane, (int64_t)I * plane, pr,
                                   nslot, plane);
      for (int j = 0; j < nslot; j += 16)
         input_any16(Vc, vxs, j, nslot, &r, g, in + (int64_t)c * plane, (int64_t)I * plane,
                     pr + j / 2);
      for (int x = 0; x < NXI; x++)
         for (int j = nslot; j < nc; j++) Vc[x * vxs + j] = 0.0f;
   }
   for (int o0 = 0; o0 < Op; o0 += og) {
      const int o1 = o0 + og < Op ? o0 + og : Op;
      for (int x = 0; x < NXI; x++) {
         const float *Vx = V + x * vxs;
         float *Mx = M + x * mxs;
         for (int jb = 0; jb < nc; jb += NRF)
            gemm_cols(Mx, TB, U + (o0 / MR) * po + x * ux, po, Vx, TB, I, o0, o1, jb,
                      nc - jb < NRF ? nc - jb : NRF);
      }
      for (int o = o0; o < o1 && o < O; o++)
         for (int j = 0; j < nslot; j += 16)
            output_any16(out, M + (int64_t)(o - o0) * TB, mxs, j, nslot, g, O, o, pr + j / 2, e);
   }
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
         for (int o0 = 0; o0 < Op; o0 += 8)
            filters_transform8(U + (int64_t)(o0 / MR) * po, weight, O, I, o0, flip);
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
      /* One block (g.S <= TB): each group's filters serve a single pass of
         GEMMs, so each thread transforms them into panels of its own, reused
         group after group (they stay in its L2), instead of spreading U over
         all Op/MR panels, which sent it to memory and back: at 8x8 the
         filter transform was a quarter of the layer. */
#ifdef _OPENMP
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
#else
      const int tid = 0, nth = 1;
#endif
      const int own = g.S <= TB && (int64_t)nth * OB_ROWS <= Op;
      for (int64_t s0 = 0; s0 < g.S; s0 += TB) {
         const int nslot = g.S - s0 < TB ? (int)(g.S - s0) : TB;
         const int nc = (int)round_up(nslot, 16);   /* columns the GEMM covers */
         ddpm_wino_block_pairs(pr, &g, s0, nslot);
         #pragma omp for schedule(dynamic, 1)
         for (int c = 0; c < I; c++) {
            rowring r;
            ddpm_wino_ring_init(&r, rb, 6, -1, -1);
            float *Vc = V + (int64_t)c * TB;
            if (c + nth < I)   /* this thread's likely next channel */
               ddpm_wino_prefetch_planes(in + (int64_t)(c + nth) * plane, (int64_t)I * plane,
                                         pr, nslot, plane);
            for (int j = 0; j < nslot; j += 16)
               input_any16(Vc, vxs, j, nslot, &r, &g, in + (int64_t)c * plane,
                           (int64_t)I * plane, pr + j / 2);
            /* slots past the end: zero lanes (the task may have filled some) */
            for (int x = 0; x < NXI; x++)
               for (int j = nslot; j < TB; j++) Vc[x * vxs + j] = 0.0f;
         }
         #pragma omp for schedule(dynamic, 1)
         for (int gi = 0; gi < ngroups; gi++) {
            const int r0 = gi * OB_ROWS, r1 = r0 + OB_ROWS < Op ? r0 + OB_ROWS : Op;
            /* the panel of row r0: its own place in U, or this thread's */
            float *Ug = own ? U + (int64_t)tid * (OB_ROWS / MR) * po : U + (int64_t)(r0 / MR) * po;
            if (s0 == 0)
               for (int o0 = r0; o0 < r1; o0 += 8)
                  filters_transform8(Ug + (int64_t)((o0 - r0) / MR) * po, weight, O, I, o0, flip);
            for (int x = 0; x < NXI; x++) {
               const float *Vx = V + x * vxs;
               float *Mx = M + x * mxs;
               for (int jb = 0; jb < nc; jb += NRF)
                  gemm_cols(Mx + (int64_t)r0 * TB, TB, Ug + x * ux, po, Vx, TB, I, r0, r1, jb,
                            nc - jb < NRF ? nc - jb : NRF);
            }
         }
         #pragma omp for schedule(dynamic, 1) nowait
         for (int o = 0; o < O; o++)
            for (int j = 0; j < nslot; j += 16)
               output_any16(out, M + (int64_t)o * TB, mxs, j, nslot, &g, O, o, pr + j / 2, e);
      }
   }
}

/*
 * When Winograd pays. Below 16 whole 4x4 output tiles per layer it loses to
 * im2col + GEMM: the GEMM's columns are slots padded to NRF (48), so 8
 * tiles run a GEMM 6x wider than the work, and the filter transform (36
 * values per filter, written and read once per call) costs more than the
 * few tiles' products. Measured here, batch 8, 256 -> 256 channels at 4x4:
 * forward 5.9 ms against 4.7 (im2col), input gradient 7.7 against 4.9,
 * weight gradient 7.8 against 6.6; at 8x8 (32 tiles) Winograd wins, 6.0
 * against 8.8.
 *
 * The choice is made for a batch of 8 whatever the batch (an image needs 2
 * tiles or more: larger than 4x4), so that an image's result does not
 * depend on the batch it runs in: the two ways round differently, and a
 * sample must draw the same bits in one process as in a shard of the batch
 * on one of several ranks (tests/test_mpi.sh). At batch 2 the 8x8 level
 * then runs Winograd although im2col would be faster; at batch 16 and up
 * the 4x4 level runs im2col.
 */
int ddpm_wino_pays(int H, int W)
{
   return 8 * (int64_t)((H + 3) / 4) * ((W + 3) / 4) >= 16;
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
   if (N <= 0 || C <= 0 || H <= 0 || W <= 0) return;
   if (OC <= 0) {   /* no outputs: din's gradient is 0 */
      if (!accumulate) memset(din, 0, (size_t)N * C * H * W * sizeof *din);
      return;
   }
   ddpm_conv_epi e = { NULL, NULL, accumulate ? din : NULL };
   /* the filters turned by 180 degrees with the channel roles swapped, read
      straight from weight by the filter transform (flip = 1): 8 neighbouring
      filters at a time, so no turned copy of the weights is made first */
   wino_run(din, scratch, nscratch, dout, weight, 1, &e, N, OC, H, W, C);
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
