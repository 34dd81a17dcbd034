/*
 * winograd_wgt.c — the weight gradient of the Winograd F(4x4,3x3)
 * convolution (winograd.c): dU[xi] = sum over tiles of (A dY A^T)[xi] .
 * (B^T d B)[xi], then dg += G^T dU G, the adjoint of the forward
 * Y = A^T [(G g G^T) . (B^T d B)] A.
 *
 * The tiles' input transform is the forward's (winograd.c); dout's transform
 * A dY A^T comes out transposed, [xi][slot][OC], so the product that sums
 * over slots runs on the same register-blocked micro-kernel (mkernel.h) with
 * output channels as its vector side.
 */
#include "bf16.h"
#include "bf16_kern.h"
#include "transpose.h"
#include "winograd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Floats of transformed data (both operands) per weight-gradient chunk. */
#define WCHUNK_FLOATS (4u << 20)
/* Largest partial dU a thread may keep for the weight gradient. */
#define PRIV_DU_FLOATS (1u << 20)

/* Slots per weight-gradient chunk: a multiple of 16 (two transform tasks),
   so that the rows of V that threads write for different channels never
   share a cache line. */
static int wchunk_slots(const geom *g, int C, int OC)
{
   int64_t per = (int64_t)NXI * (round_up(C, MR) + round_up(OC, NRW));
   int64_t tb = WCHUNK_FLOATS / per;
   tb = tb < 64 ? 64 : tb / 16 * 16;
   int64_t all = round_up(g->S, 16);
   return (int)(tb < all ? tb : all);
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

/* k[36] = (A dY A^T) of the 8 slots at s: dY tiles are rows 4ty.., columns 4tx.. */
static void grad_task(v8 k[NXI], rowring *r, const geom *g, const float *base,
                      int64_t nstride, const pairpos *pr)
{
   /* rows and the ring as the input transform had them: dY's tiles start
      inside the image, and the masked reads (winograd.h) measured no faster
      here */
   const float *pp[4];
   int64_t rs[4];
   ddpm_wino_task_rows(pp, rs, r, g, base, nstride, pr, 8);
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

#ifdef WINO_MASKED
/* A down the 4 image rows of the tile row at p (zero when p->n < 0), as
   loaded: nw vectors of 16 columns each, masked at W. */
static inline void grad_down(v16 h[6][2], int nw, const geom *g, const float *base,
                             int64_t nstride, const pairpos *p)
{
   if (p->n < 0) {
      memset(h, 0, sizeof(v16) * 12);
      return;
   }
   v16 d[4][2];
   ddpm_wino_load_rows(d, 4, 4 * p->ty, nw, g, base + (int64_t)p->n * nstride);
   for (int w = 0; w < nw; w++) {
      const v16 e02 = d[0][w] + d[2][w], e13 = d[1][w] + d[3][w];
      const v16 f02 = d[0][w] + d[2][w] * 4.0f, f13 = (d[1][w] + d[3][w] * 4.0f) * 2.0f;
      h[0][w] = d[0][w];
      h[1][w] = e02 + e13;
      h[2][w] = e02 - e13;
      h[3][w] = f02 + f13;
      h[4][w] = f02 - f13;
      h[5][w] = d[3][w];
   }
}

/* grad_task for 8 slots by whole tile rows (g->spr 8: one tile row, spr 4:
   two; pr: the pairs from the first slot on): A down each tile row's image
   rows as loaded, then column c of slot s gathered by one permute (lane s
   reads lane 4s + c of the tile row's two vectors, or of the two tile
   rows' one vector each: the same indices), then A along. No padded row
   copies: at 28 columns the last pair of every tile row overhangs the
   image, and the ring copied every row. */
static void grad_rows8(v8 k[NXI], const geom *g, const float *base, int64_t nstride,
                       const pairpos *pr)
{
   v16 h[2][6][2];
   if (g->spr == 8) {
      grad_down(h[0], 2, g, base, nstride, &pr[0]);
   } else {
      grad_down(h[0], 1, g, base, nstride, &pr[0]);
      grad_down(h[1], 1, g, base, nstride, &pr[2]);
   }
   const int dr = g->spr == 8 ? 0 : 1, w2 = g->spr == 8 ? 1 : 0;   /* as input_rows16 */
   const __m512i ib = _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0);
   for (int a = 0; a < 6; a++) {
      v8 col[4], o[6];
      for (int c = 0; c < 4; c++) {
         const __m512i idx = _mm512_add_epi32(ib, _mm512_set1_epi32(c));
         const __m512 v = _mm512_permutex2var_ps((__m512)h[0][a][0], idx, (__m512)h[dr][a][w2]);
         col[c] = (v8)_mm512_castps512_ps256(v);
      }
      a4(o, col);
      for (int l = 0; l < 6; l++) k[6 * a + l] = o[l];
   }
}
#endif

/* dg += G^T du G for output channels oc0 .. oc0+15 (those < OC) of input
   channel c, one lane per output channel (du = dU + c * OCw + oc0; the 16
   lanes lie inside dU's rows, OCw being a multiple of NRW), in float32:
   dU's own sums over thousands of slots carry more rounding than these 36
   terms add. Whole cache lines of dU: with 8 lanes (in double) each line
   was read twice, by items far apart, and the 36 planes' loads were half
   of a CIFAR-10 weight gradient's filter transform. */
static void filter_bwd16(float *dweight, const float *du, int64_t xs, int OC, int C, int oc0,
                         int c)
{
   const float k6 = 1.0f / 6, k12 = 1.0f / 12, k24 = 1.0f / 24;
   v16 t[6][3];
   for (int k = 0; k < 6; k++) {
      v16 d[6];
      for (int l = 0; l < 6; l++) d[l] = loadx(du + (6 * k + l) * xs);
      t[k][0] = d[0] * 0.25f - (d[1] + d[2]) * k6 + (d[3] + d[4]) * k24;
      t[k][1] = (d[2] - d[1]) * k6 + (d[3] - d[4]) * k12;
      t[k][2] = (d[3] + d[4] - d[1] - d[2]) * k6 + d[5];
   }
   v16 r[9];
   for (int c3 = 0; c3 < 3; c3++) {
      v16 d[6];
      for (int k = 0; k < 6; k++) d[k] = t[k][c3];
      r[c3] = d[0] * 0.25f - (d[1] + d[2]) * k6 + (d[3] + d[4]) * k24;
      r[3 + c3] = (d[2] - d[1]) * k6 + (d[3] - d[4]) * k12;
      r[6 + c3] = (d[3] + d[4] - d[1] - d[2]) * k6 + d[5];
   }
   const int nl = OC - oc0 < 16 ? OC - oc0 : 16;
   for (int j = 0; j < nl; j++) {
      float *dw = dweight + ((size_t)(oc0 + j) * C + c) * 9;
      for (int q = 0; q < 9; q++) dw[q] += r[q][j];
   }
}

/* dweight [OC, C, 3, 3] += G^T dU G for every filter, input channel by input
   channel (call inside a parallel region): each of the 36 planes of dU is
   read along its rows, which the hardware prefetchers follow; by output
   channels first, the 36 strided streams waited on memory. */
static void filters_bwd(float *dweight, const float *dU, int64_t uxs, int OC, int C, int OCw)
{
   #pragma omp for schedule(static)
   for (int c = 0; c < C; c++)
      for (int ob = 0; ob < OC; ob += 16)
         filter_bwd16(dweight, dU + (int64_t)c * OCw + ob, uxs, OC, C, ob, c);
}

DDPM_MKERNEL(kern_wgt, NVW)

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

/* bfloat16 products (wgt_product_bf16): the rows of V and the columns of D
   need whole panels of the bf16 micro-kernel's BMR rows */
#define WGT_BF16 (MR % BMR == 0)

/* Words of one xi plane's two packed operands for chunks of tw slots. */
static int64_t pack_words(int tw, int C, int OC)
{
   return (int64_t)(tw / 2) * (round_up(C, MR) + round_up(OC, NRW));
}

static int64_t wpriv_floats(int C, int OC)
{
   const int64_t tw = wpriv_slots(C, OC), Cp = round_up(C, MR), OCw = round_up(OC, NRW);
   return wdu_floats(C, OC) + NXI * (xstride(Cp * tw) + xstride(tw * OCw)) +
          pack_words((int)tw, C, OC);
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

int64_t ddpm_wino_wgt_floats(const geom *g, int C, int OC, int threads)
{
   const int64_t tw = wchunk_slots(g, C, OC), OCw = round_up(OC, NRW), Cp = round_up(C, MR);
   int64_t shared = NXI * (xstride(Cp * OCw) + xstride(Cp * tw) + xstride(tw * OCw)) +
                    (threads > 0 ? threads : 1) * pack_words((int)tw, C, OC);
   int nt = wpriv_threads(g, C, OC, threads, 0);
   int64_t priv = nt ? wdu_floats(C, OC) + nt * wpriv_floats(C, OC) : 0;
   return shared > priv ? shared : priv;
}

/* D [36][slot][OCw] columns ob .. ob+7: A dY A^T of output channels ob .. ob+7
   (zero past OC and past nslot, up to the next multiple of 8). The 8 x 8
   blocks (channel x slot) turn in registers: the scalar copy this replaced
   moved each value on its own and cost several times the transform. */
static void grad_block(float *D, int64_t dxs, const float *dout, const geom *g, int OC, int OCw,
                       int ob, int nslot, float *rb, const pairpos *pr)
{
   const int64_t plane = (int64_t)g->H * g->W;
   rowring r;
   (void)OCw;
   for (int j = 0; j < nslot; j += 8) {
      v8 k[8][NXI];   /* [channel][xi], lane = slot */
      for (int q = 0; q < 8; q++) {
         const int oc = ob + q;
         if (oc >= OC) { memset(k[q], 0, sizeof k[q]); continue; }
#ifdef WINO_MASKED
         if (g->spr == 8 || g->spr == 4) {
            if (j + 16 < nslot) {   /* this channel's tile rows two tasks ahead */
               for (int t = 0; t < 8; t += g->spr) {
                  const pairpos *f = &pr[(j + 16 + t) / 2];
                  if (f->n < 0) break;
                  const char *a = (const char *)(dout + ((int64_t)f->n * OC + oc) * plane +
                                                 (int64_t)4 * f->ty * g->W);
                  for (int b = 0; b < 4 * g->W * (int)sizeof(float); b += 64)
                     __builtin_prefetch(a + b, 0, 3);
               }
            }
            grad_rows8(k[q], g, dout + (int64_t)oc * plane, (int64_t)OC * plane, pr + j / 2);
            continue;
         }
#endif
         ddpm_wino_ring_init(&r, rb, 4, 0, 0);
         grad_task(k[q], &r, g, dout + (int64_t)oc * plane, (int64_t)OC * plane, pr + j / 2);
      }
      const int ns = nslot - j < 8 ? nslot - j : 8;
      const v8 z = {0};
      for (int x = 0; x < NXI; x++) {
         v8 t[8], o[8];
         for (int q = 0; q < 8; q++) t[q] = k[q][x];
         ddpm_transpose8(o, t);
         float *dst = D + x * dxs + (int64_t)j * OCw + ob;
         for (int sl = 0; sl < 8; sl++) storev(dst + (int64_t)sl * OCw, sl < ns ? o[sl] : z);
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
   if (c + 1 < C)   /* the next channel, while this one is transformed */
      ddpm_wino_prefetch_planes(in + (int64_t)(c + 1) * plane, (int64_t)C * plane, pr, nslot,
                                plane);
   const float *base = in + (int64_t)c * plane;
#ifdef WINO_MASKED
   if (g->spr == 8 || g->spr == 4) {   /* whole tile rows (chunks: multiples of 8 slots) */
      for (int j = 0; j < nslot; j += 16)
         ddpm_wino_input_rows16(Vc + j, vxs, nslot - j, g, base, (int64_t)C * plane,
                                pr + j / 2);
   } else
#endif
   {
      rowring r;
      ddpm_wino_ring_init(&r, rb, 6, -1, -1);
      for (int j = 0; j < nslot; j += 8)
         ddpm_wino_input_task(Vc, vxs, j, &r, g, base, (int64_t)C * plane, pr + j / 2);
   }
   for (int x = 0; x < NXI; x++)
      for (int j = nslot; j < nk; j++) Vc[x * vxs + j] = 0.0f;
}

/* acc[oc] += sum over the nslot slots of D7[slot][oc], for oc in [o0, o1):
   the bias gradient. A dY A^T's position (1, 1) is (1 1 1 1) dY (1 1 1 1)^T
   (A's row 1 is all ones), the sum of the tile's 16 values; slots past the
   image or the chunk hold zeros. */
static void bias_sums(double *acc, const float *D7, int OCw, int o0, int o1, int nslot)
{
   for (int sl = 0; sl < nslot; sl++) {
      const float *row = D7 + (int64_t)sl * OCw;
      for (int oc = o0; oc < o1; oc++) acc[oc] += row[oc];
   }
}

#if WGT_BF16
/* Ux [Cp][OCw] (+)= Vx [Cp][TW] . Dx [nk][OCw] over the nk slots (even),
   with the products in bfloat16: V's rows packed as BMR-row panels of slot
   pairs, D as one panel of OCw columns (bf16_kern.h), into pk, then the
   micro-kernel's float32 sums (added to Ux when add). */
BF16_TARGET
static void wgt_product_bf16(float *Ux, const float *Vx, int64_t TW, const float *Dx, int Cp,
                             int OCw, int nk, int add, uint32_t *pk)
{
   const int K2 = nk / 2;
   uint32_t *A = pk, *B = pk + (int64_t)K2 * Cp;
   ddpm_bf16_pack(A, BMR, (int64_t)K2 * BMR, Vx, TW, 1, Cp, Cp, nk);
   ddpm_bf16_pack(B, OCw, 0, Dx, 1, OCw, OCw, OCw, nk);
   for (int p = 0; p < Cp / BMR; p++) {
      float *M = Ux + (int64_t)p * BMR * OCw;
      const uint32_t *Ap = A + (int64_t)p * K2 * BMR;
      if (add) bf16_kern_cols_add(M, OCw, Ap, B, OCw, K2, OCw);
      else bf16_kern_cols(M, OCw, Ap, B, OCw, K2, OCw);
   }
}
#endif

/* Ux (+)= the product of one xi plane of a chunk: float32 on the runtime's
   micro-kernel, or bfloat16 (pk: its packing space). */
static void wgt_product(float *Ux, const float *Vx, int64_t TW, const float *Dx, int Cp, int OCw,
                        int nk, int add, int bf16, uint32_t *pk)
{
#if WGT_BF16
   if (bf16) {
      wgt_product_bf16(Ux, Vx, TW, Dx, Cp, OCw, nk, add, pk);
      return;
   }
#else
   (void)bf16; (void)pk;
#endif
   for (int cb = 0; cb < Cp; cb += MR)
      for (int ob = 0; ob < OCw; ob += NRW)
         kern_wgt(Ux + (int64_t)cb * OCw + ob, OCw, Vx + (int64_t)cb * TW, TW, 1, Dx + ob, OCw,
                  nk, add);
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
static void backward_weight(float *dweight, float *dbias, float *scratch, size_t nscratch,
                            const float *dout, const float *in, int N, int C, int H, int W,
                            int OC, int bf16)
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
   /* dbias: per-channel sums of xi plane 7 of A dY A^T (see bias_sums),
      per thread (private chunks) or per channel group (shared), in double */
   double dbs[(nt ? nt : 1) * OCw];
   if (dbias) memset(dbs, 0, sizeof dbs);
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
         /* thread 0 sums straight into dU (its partial is the first term
            of the reduction below anyway) */
         float *Pt = P + t * per, *Ut = t ? Pt : dU, *V = Pt + wdu_floats(C, OC), *D = V + NXI * vxs;
         uint32_t *pk = (uint32_t *)(D + NXI * dxs);
         int first = 1;
         for (int64_t b = t; b < nb; b += T) {
            const int64_t s0 = b * TW;
            const int nslot = g.S - s0 < TW ? (int)(g.S - s0) : TW;
            const int nk = (int)round_up(nslot, 8);
            ddpm_wino_block_pairs(pr, &g, s0, nslot);
            for (int c = 0; c < Cp; c++) wgt_input(V, vxs, in, &g, C, TW, c, nslot, nk, rb, pr);
            for (int ob = 0; ob < OCw; ob += 8)
               grad_block(D, dxs, dout, &g, OC, OCw, ob, nslot, rb, pr);
            if (dbias) bias_sums(dbs + (int64_t)t * OCw, D + 7 * dxs, OCw, 0, OCw, nslot);
            for (int x = 0; x < NXI; x++)
               wgt_product(Ut + x * uxs, V + x * vxs, TW, D + x * dxs, Cp, OCw, nk, !first, bf16,
                           pk);
            first = 0;
         }
         if (first) memset(Ut, 0, (size_t)wdu_floats(C, OC) * sizeof *Ut);
         #pragma omp barrier
         /* dU = sum of the partials in thread order, split by xi plane */
         #pragma omp for schedule(static)
         for (int x = 0; x < NXI; x++) {
            float *dst = dU + x * uxs;
            for (int u = 1; u < T; u++) {
               const float *src = P + u * per + x * uxs;
               for (int64_t i = 0; i < (int64_t)Cp * OCw; i++) dst[i] += src[i];
            }
         }
         filters_bwd(dweight, dU, uxs, OC, C, OCw);
         if (dbias) {   /* the partials in thread order */
            #pragma omp for schedule(static)
            for (int oc = 0; oc < OC; oc++) {
               double v = 0;
               for (int u = 0; u < T; u++) v += dbs[(int64_t)u * OCw + oc];
               dbias[oc] += (float)v;
            }
         }
      }
      return;
   }
   const int TW = wchunk_slots(&g, C, OC);
   const int64_t vxs = xstride((int64_t)Cp * TW), dxs = xstride((int64_t)TW * OCw);
   float *V = dU + NXI * uxs;                         /* [36][Cp][TW] */
   float *D = V + NXI * vxs;                          /* [36][TW][OCw] */
   uint32_t *pks = (uint32_t *)(D + NXI * dxs);       /* per thread: pack_words */
   const int64_t pkw = pack_words(TW, C, OC);
   /* bfloat16 where the scratch has the packing space of every thread */
   if (bf16 && (int64_t)nscratch < ddpm_wino_wgt_floats(&g, C, OC, ddpm_omp_max_threads()))
      bf16 = 0;
   #pragma omp parallel
   {
      uint32_t *pk = pks + (int64_t)ddpm_omp_thread_num() * pkw;
      float rb[4 * 6 * g.rw];
      pairpos pr[TW / 2 + 4];
      for (int64_t s0 = 0; s0 < g.S; s0 += TW) {
         const int nslot = g.S - s0 < TW ? (int)(g.S - s0) : TW;
         ddpm_wino_block_pairs(pr, &g, s0, nslot);
         const int nk = (int)round_up(nslot, 8);
         #pragma omp for schedule(dynamic, 1) nowait
         for (int c = 0; c < Cp; c++) wgt_input(V, vxs, in, &g, C, TW, c, nslot, nk, rb, pr);
         /* dMt: 16 output channels (one cache line of each D row) per work
            item; with 8, two threads wrote the two halves of every line
            and a 2-thread weight gradient ran slower than a 1-thread one */
         #pragma omp for schedule(dynamic, 1)
         for (int ob = 0; ob < OCw; ob += 16) {
            grad_block(D, dxs, dout, &g, OC, OCw, ob, nslot, rb, pr);
            if (ob + 8 < OCw) grad_block(D, dxs, dout, &g, OC, OCw, ob + 8, nslot, rb, pr);
            if (dbias)   /* channels ob .. ob+15: this item's, chunk after chunk */
               bias_sums(dbs, D + 7 * dxs, OCw, ob, ob + 16 < OCw ? ob + 16 : OCw, nslot);
         }
         #pragma omp for schedule(dynamic, 1)
         for (int x = 0; x < NXI; x++) {
            wgt_product(dU + x * uxs, V + x * vxs, TW, D + x * dxs, Cp, OCw, nk, s0 > 0, bf16,
                        pk);
         }
      }
      filters_bwd(dweight, dU, uxs, OC, C, OCw);
      if (dbias) {
         #pragma omp for schedule(static)
         for (int oc = 0; oc < OC; oc++) dbias[oc] += (float)dbs[oc];
      }
   }
}

void ddpm_wino_backward_weight(float *dweight, float *dbias, float *scratch, size_t nscratch,
                               const float *dout, const float *in, int N, int C, int H, int W,
                               int OC)
{
   backward_weight(dweight, dbias, scratch, nscratch, dout, in, N, C, H, W, OC, 0);
}

void ddpm_wino_bf16_backward_weight(float *dweight, float *dbias, float *scratch,
                                    size_t nscratch, const float *dout, const float *in, int N,
                                    int C, int H, int W, int OC)
{
   backward_weight(dweight, dbias, scratch, nscratch, dout, in, N, C, H, W, OC, WGT_BF16);
}
