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

/* Rows 4*ty + y0 .. + nrows-1 of one plane, each padded: buffer column k is
   image column k + x0; zero outside the image. A small ring of them serves
   the up to four tile rows one 8-slot task touches. */
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
/* Scratch floats of the weight gradient (winograd_wgt.c). */
int64_t ddpm_wino_wgt_floats(const geom *g, int C, int OC, int threads);

#endif /* DDPM_WINOGRAD_H */
