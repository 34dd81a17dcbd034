/*
 * winograd.h — shared by winograd.c (transforms, forward and input gradient,
 * scratch sizes) and winograd_wgt.c (weight gradient); private to them. See
 * winograd.c for what the Winograd convolution is and how it is laid out.
 */
#ifndef DDPM_WINOGRAD_H
#define DDPM_WINOGRAD_H

#include "kernels.h"
#include "mkernel.h"
#include "transpose.h"
#include "vmath.h"

#include <stdint.h>
#include <string.h>

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

/* Floats a private block may use (V and M, or V and D and the partial dU). */
#define PRIV_FLOATS (192u << 10)

/* One vector lane per slot in the transforms (v8: transpose.h). */
typedef float v16 __attribute__((vector_size(64)));

static inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* The distance between consecutive xi planes of U, V, M: a whole number of
   cache lines, and an odd one, so that the 36 streams a transform reads or
   writes at once fall into different L1 sets (strides that are multiples
   of 4 KiB put them all into one set). */
static inline int64_t xstride(int64_t n)
{
   n = round_up(n, 16);
   return (n / 16) % 2 ? n : n + 16;
}

static inline v8 loadv(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, v8 v) { memcpy(p, &v, sizeof v); }
static inline v16 loadx(const float *p) { v16 v; memcpy(&v, p, sizeof v); return v; }
static inline void storex(float *p, v16 v) { memcpy(p, &v, sizeof v); }

/* ------------------------------------------------------------ geometry */

typedef struct geom {
   int N, H, W;
   int th, tw, spr;        /* tile rows, tile columns, slots per tile row (even) */
   int64_t s_img, S;       /* slots per image, in all */
   int rw;                 /* floats per padded row buffer */
} geom;

static inline geom make_geom(int N, int H, int W)
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

#if defined(__AVX2__)
/* c[j] lane q = column j of slot q, for j < ncol (4 or 6), from a[p] = the 8
   columns of pair p (slot 2p's 0..3, then slot 2p+1's) and, for columns 4
   and 5, b[p] = the 8 columns 4 further on. */
static inline void cols_of(v8 *c, int ncol, const __m256 a[4], const __m256 b[4])
{
   /* lanes: P = (slot0 | slot4), Q = (1 | 5), R = (2 | 6), S = (3 | 7) */
   __m256 P = _mm256_permute2f128_ps(a[0], a[2], 0x20), Q = _mm256_permute2f128_ps(a[0], a[2], 0x31);
   __m256 R = _mm256_permute2f128_ps(a[1], a[3], 0x20), S = _mm256_permute2f128_ps(a[1], a[3], 0x31);
   __m256 t0 = _mm256_unpacklo_ps(P, Q), t1 = _mm256_unpackhi_ps(P, Q);
   __m256 t2 = _mm256_unpacklo_ps(R, S), t3 = _mm256_unpackhi_ps(R, S);
   c[0] = (v8)_mm256_shuffle_ps(t0, t2, 0x44);
   c[1] = (v8)_mm256_shuffle_ps(t0, t2, 0xEE);
   c[2] = (v8)_mm256_shuffle_ps(t1, t3, 0x44);
   c[3] = (v8)_mm256_shuffle_ps(t1, t3, 0xEE);
   if (ncol > 4) {
      P = _mm256_permute2f128_ps(b[0], b[2], 0x20); Q = _mm256_permute2f128_ps(b[0], b[2], 0x31);
      R = _mm256_permute2f128_ps(b[1], b[3], 0x20); S = _mm256_permute2f128_ps(b[1], b[3], 0x31);
      t0 = _mm256_unpacklo_ps(P, Q);
      t2 = _mm256_unpacklo_ps(R, S);
      c[4] = (v8)_mm256_shuffle_ps(t0, t2, 0x44);
      c[5] = (v8)_mm256_shuffle_ps(t0, t2, 0xEE);
   }
}
#endif

/* c[j] lane q = column j of slot q, for j < ncol (4 or 6); slots 2p, 2p+1
   read p[p][0..3] and p[p][4..7] (and columns 4, 5 from p[p] + 4 ...). */
static inline void load_cols(v8 *c, int ncol, const float *const p[4])
{
#if defined(__AVX2__)
   __m256 a[4], b[4];
   for (int q = 0; q < 4; q++) a[q] = _mm256_loadu_ps(p[q]);
   if (ncol > 4)
      for (int q = 0; q < 4; q++) b[q] = _mm256_loadu_ps(p[q] + 4);
   cols_of(c, ncol, a, b);
#else
   for (int j = 0; j < ncol; j++)
      for (int q = 0; q < 8; q++) c[j][q] = p[q / 2][(q % 2) * 4 + j];
#endif
}


/* Rows 4*ty + y0 .. + nrows-1 of one plane, each padded: buffer column k is
   image column k + x0; zero outside the image. A small ring of them serves
   the up to four tile rows one 8-slot task touches. With AVX-512 the input
   transforms read overhanging tiles by masked loads instead
   (task_cols_masked below); the weight gradient's A dY A^T keeps the ring. */
typedef struct rowring {
   float *buf;            /* 4 * nrows * rw */
   int n[4], ty[4], next;
   int nrows, y0, x0;
} rowring;

void ddpm_wino_ring_init(rowring *r, float *buf, int nrows, int y0, int x0);

/* Where the pairs of a block are: pair p holds slots s0 + 2p and s0 + 2p + 1,
   the first of which lies at (n, ty, tx); n < 0 past the end. Computed once
   per block instead of two divisions per pair per channel. */
typedef struct pairpos { int n, ty, tx; } pairpos;

/* Asks for the channel planes (base + n * nstride, plane floats each) of
   the images of a block's pairs pr (nslot slots) in the core's L2, so that
   the input transform of the block's next channel finds them there: the
   transform's masked row loads waited on memory one after another (most of
   its time in `perf`). */
static inline void ddpm_wino_prefetch_planes(const float *base, int64_t nstride,
                                             const pairpos *pr, int nslot, int64_t plane)
{
   for (int n = pr[0].n; n <= pr[(nslot - 1) / 2].n; n++) {
      const char *p = (const char *)(base + n * nstride);
      for (int64_t off = 0; off < plane * (int64_t)sizeof(float); off += 64)
         __builtin_prefetch(p + off, 0, 2);
   }
}

#if defined(__AVX512F__) && defined(__AVX512VL__)
/* With AVX-512's masked loads a tile that overhangs the image reads its
   columns straight from the plane, the missing ones as zeros (a masked-off
   lane touches no memory), and rows outside the image are zero vectors: no
   padded copy of the rows (rowring below), which cost more instructions at
   28x28 than the transform itself. */
#define WINO_MASKED 1

/* Lanes k (of 8) with 0 <= x + k < W. */
static inline __mmask8 col_mask(int x, int W)
{
   const int lo = x < 0 ? -x : 0, hi = W - x < 8 ? W - x : 8;
   if (hi <= lo) return 0;
   return (__mmask8)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* d[i][j] lane q = row i, column j (j < ncol; 4 or 6) of the tile of slot q of
   the pairs pr (pairs past the end, pr[p].n < 0, repeat the last valid
   one): tile rows start at image row 4 ty + y0 and column 4 tx + x0 of plane
   base + n * nstride; nrows rows (4 or 6). */
static inline void task_cols_masked(v8 d[][6], int nrows, int ncol, int y0, int x0, const geom *g,
                                    const float *base, int64_t nstride, const pairpos *pr)
{
   uintptr_t row0[4];
   int y[4];
   __mmask8 m1[4], m2[4];
   const pairpos *q = &pr[0];
   for (int p = 0; p < 4; p++) {
      if (pr[p].n >= 0) q = &pr[p];
      const int x = 4 * q->tx + x0;
      y[p] = 4 * q->ty + y0;
      /* an address, not a pointer: column x may lie before the plane */
      row0[p] = (uintptr_t)(base + (int64_t)q->n * nstride) + (intptr_t)x * (intptr_t)sizeof(float);
      m1[p] = col_mask(x, g->W);
      m2[p] = col_mask(x + 4, g->W);
   }
   for (int i = 0; i < nrows; i++) {
      __m256 a[4], b[4];
      for (int p = 0; p < 4; p++) {
         const int yy = y[p] + i;
         if (yy < 0 || yy >= g->H) {
            a[p] = b[p] = _mm256_setzero_ps();
            continue;
         }
         const float *r = (const float *)(row0[p] + (uintptr_t)((int64_t)yy * g->W * (int64_t)sizeof(float)));
         a[p] = _mm256_maskz_loadu_ps(m1[p], r);
         b[p] = ncol > 4 ? _mm256_maskz_loadu_ps(m2[p], r + 4) : a[p];
      }
      cols_of(d[i], ncol, a, b);
   }
}

/* d[i][w] = columns 16w .. 16w+15 of image row y0 + i of a plane, for
   i < nrows and w < nw (1 or 2), masked at W; rows outside the image are
   zero: a tile row's rows as they lie, for the whole-row transforms. */
static inline void ddpm_wino_load_rows(v16 d[][2], int nrows, int y0, int nw, const geom *g,
                                       const float *plane)
{
   const __mmask16 m0 = ddpm_cols16(0, g->W), m1 = ddpm_cols16(16, g->W);
   for (int i = 0; i < nrows; i++) {
      const int y = y0 + i;
      if (y < 0 || y >= g->H) {
         d[i][0] = d[i][1] = (v16){0};
         continue;
      }
      const float *r = plane + (int64_t)y * g->W;
      d[i][0] = (v16)_mm512_maskz_loadu_ps(m0, r);
      if (nw > 1) d[i][1] = (v16)_mm512_maskz_loadu_ps(m1, r + 16);
   }
}
#endif

void ddpm_wino_block_pairs(pairpos *pr, const geom *g, int64_t s0, int nslot);
/* Row pointers and row strides of the 4 pairs of a task (pr[0].n >= 0):
   straight into the plane when the pair's rows and its `need` columns lie
   inside the image (need > 0), else into a padded row set. */
void ddpm_wino_task_rows(const float *pp[4], int64_t rs[4], rowring *r, const geom *g,
                         const float *base, int64_t nstride, const pairpos *pr, int need);
/* V[xi * xs + j .. +7] = (B^T d B)[xi] of the task's 8 slots (channel plane
   base + n * nstride). */
void ddpm_wino_input_task(float *V, int64_t xs, int j, rowring *r, const geom *g,
                          const float *base, int64_t nstride, const pairpos *pr);
#ifdef WINO_MASKED
/* V[xi * xs ..] = (B^T d B)[xi] of 16 slots by whole tile rows (g->spr 8
   or 4: two or four of them; pr: the block's pairs from the first slot on,
   which starts a tile row), of which the first nvalid are wanted: 8 lanes
   are stored when nvalid <= 8, else 16; tile rows from nvalid on read as
   zero. */
void ddpm_wino_input_rows16(float *V, int64_t xs, int nvalid, const geom *g, const float *base,
                            int64_t nstride, const pairpos *pr);
/* out (NCHW, O channels) = A^T M A of output channel oc for 16 slots by
   whole tile rows (M[xi * xs ..]; pr and nvalid as above), plus the
   epilogue e; tile rows from nvalid on are not written. */
void ddpm_wino_output_rows16(float *out, const float *M, int64_t xs, int nvalid, const geom *g,
                             int O, int oc, const pairpos *pr, const ddpm_conv_epi *e);
#endif
/* Scratch floats of the weight gradient (winograd_wgt.c). */
int64_t ddpm_wino_wgt_floats(const geom *g, int C, int OC, int threads);

#endif /* DDPM_WINOGRAD_H */
