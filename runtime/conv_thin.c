/*
 * conv_thin.c — 3x3, stride 1, zero padding 1 convolutions with few channels
 * on one side (at most THIN_MAX_C in or out): the U-Net's first layer (image
 * channels -> ch) and last (ch -> image channels), NCHW float32, direct.
 *
 * Why not Winograd or im2col: with one to three image channels, Winograd's
 * products pad that side to a whole micro-kernel panel (8 output rows, 32
 * weight-gradient columns) and its tile transforms of the wide side are the
 * whole cost; im2col writes 9 C floats per pixel to multiply them by 1 to 3
 * rows. Alone (2 threads, best of 9), Winograd against this file: batch 64,
 * 28x28, 1 -> 32 forward 0.75 / 0.45 ms, weight gradient 1.29 / 0.58;
 * 32 -> 1 forward 0.95 / 0.59, weight gradient 1.90 / 0.61, input gradient
 * 0.67 / 0.46; batch 8, 32x32, 3 -> 128 forward 0.62 / 0.42, 128 -> 3
 * forward 0.58 / 0.59, weight gradient 1.00 / 0.58.
 *
 * How: with few inputs, one row of every output channel of an image at a
 * time: the input rows' three shifts (masked loads: columns outside the
 * image read as zero, nothing before or past a row is touched) loaded once
 * per 32 columns, each output row written once. With few outputs, one row
 * of one (image, output channel), 32 columns in registers, summed over the
 * inputs. Whole images per thread in order (static schedule): split by
 * rows among threads, the output planes' lines were written in pieces. The
 * input gradient is the same pass over dout with the
 * filters turned by 180 degrees and the channel roles swapped. The weight
 * gradient keeps the 9 taps' sums of one (output, input) channel pair in
 * registers over every row of an image, then adds them up in double image
 * by image; each pair belongs to one thread, so the bits depend neither on
 * the threads nor on the batch's split (and an image's forward not on its
 * batch).
 *
 * Not here: the bias gradient (conv.c sums dout as for every shape), other
 * kernel sizes, strides or paddings (conv.c, winograd.c).
 */
#include "kernels.h"
#include "vmath.h"

#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

int ddpm_conv_thin(const ddpm_conv2d_shape *s)
{
   return s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad_t == 1 && s->pad_l == 1 &&
          s->OH == s->H && s->OW == s->W && (s->C <= THIN_MAX_C || s->OC <= THIN_MAX_C);
}

/* Weights as the pass reads them: tap k (ky * 3 + kx) of output o from input
   c is w[o * so + c * si + (flip ? 8 - k : k)]. */
typedef struct taps {
   const float *w;
   int64_t so, si;
   int flip;
} taps;

static inline float tap(const taps *t, int o, int c, int k)
{
   return t->w[o * t->so + c * t->si + (t->flip ? 8 - k : k)];
}

/* out row y of one output channel of one image: the sum over the I input
   planes (in, H x W each) and their taps wv [I][9] of the rows around y,
   plus b and the row of add (arow, may be NULL) */
static void row_forward(float *orow, const float *in, const float *wv, int I, int H, int W,
                        int y, float b, const float *arow)
{
#ifdef __AVX512F__
   for (int x0 = 0; x0 < W; x0 += 32) {
      __mmask16 m[2][3];   /* columns x - 1, x, x + 1 of each vector */
      for (int v = 0; v < 2; v++)
         for (int d = 0; d < 3; d++) m[v][d] = ddpm_cols16(x0 + 16 * v + d - 1, W);
      __m512 acc[2] = { _mm512_setzero_ps(), _mm512_setzero_ps() };
      for (int c = 0; c < I; c++)
         for (int ky = 0; ky < 3; ky++) {
            const int iy = y + ky - 1;
            if (iy < 0 || iy >= H) continue;
            /* an address: column x0 - 1 may lie before the plane */
            const uintptr_t r = (uintptr_t)(in + ((int64_t)c * H + iy) * W + x0) - sizeof(float);
            const float *wk = wv + 9 * c + 3 * ky;
            for (int d = 0; d < 3; d++) {
               const __m512 w = _mm512_set1_ps(wk[d]);
               for (int v = 0; v < 2; v++)
                  acc[v] = _mm512_fmadd_ps(
                     w, _mm512_maskz_loadu_ps(m[v][d], (const float *)(r + (16 * v + d) * 4)),
                     acc[v]);
            }
         }
      for (int v = 0; v < 2; v++) {
         const int x = x0 + 16 * v;
         const __mmask16 mk = m[v][1];
         __m512 y16 = _mm512_add_ps(acc[v], _mm512_set1_ps(b));
         if (arow) y16 = _mm512_add_ps(y16, _mm512_maskz_loadu_ps(mk, arow + x));
         _mm512_mask_storeu_ps(orow + x, mk, y16);
      }
   }
#else
   float acc[W];
   memset(acc, 0, sizeof acc);
   for (int c = 0; c < I; c++)
      for (int ky = 0; ky < 3; ky++) {
         const int iy = y + ky - 1;
         if (iy < 0 || iy >= H) continue;
         const float *r = in + ((int64_t)c * H + iy) * W, *wk = wv + 9 * c + 3 * ky;
         for (int x = 1; x < W; x++) acc[x] += wk[0] * r[x - 1];
         for (int x = 0; x < W; x++) acc[x] += wk[1] * r[x];
         for (int x = 0; x + 1 < W; x++) acc[x] += wk[2] * r[x + 1];
      }
   for (int x = 0; x < W; x++) orow[x] = (acc[x] + b) + (arow ? arow[x] : 0.0f);
#endif
}

#ifdef __AVX512F__
/* Few inputs, many outputs (I <= THIN_MAX_C): row y of every output channel
   of image n. The input rows' three shifts are loaded once per 32 columns
   (I x 18 vectors, in L1) and serve all O channels, each of whose rows is
   then written once: accumulating over the inputs in the output rows
   instead read them back, and at 32x32 their 4 KB stride put all of them
   into one L1 set. wv [O][I][9]. */
static void rows_fan_out(float *out, const float *in, const float *wv, const ddpm_conv_epi *e,
                         int n, int I, int H, int W, int O, int y)
{
   const int64_t plane = (int64_t)H * W;
   __m512 sh[THIN_MAX_C][9][2];   /* [input][tap][vector]; rows outside are zero */
   for (int x0 = 0; x0 < W; x0 += 32) {
      __mmask16 m[2][3];
      for (int v = 0; v < 2; v++)
         for (int d = 0; d < 3; d++) m[v][d] = ddpm_cols16(x0 + 16 * v + d - 1, W);
      for (int c = 0; c < I; c++)
         for (int ky = 0; ky < 3; ky++) {
            const int iy = y + ky - 1;
            const uintptr_t r = (uintptr_t)(in + ((int64_t)n * I + c) * plane + (int64_t)iy * W +
                                            x0) - sizeof(float);
            for (int d = 0; d < 3; d++)
               for (int v = 0; v < 2; v++)
                  sh[c][3 * ky + d][v] =
                     iy < 0 || iy >= H
                        ? _mm512_setzero_ps()
                        : _mm512_maskz_loadu_ps(m[v][d], (const float *)(r + (16 * v + d) * 4));
         }
      for (int o = 0; o < O; o++) {
         const int64_t row = ((int64_t)n * O + o) * plane + (int64_t)y * W + x0;
         float b = e && e->bias ? e->bias[o] : 0.0f;
         if (e && e->bias_nc) b += e->bias_nc[(int64_t)n * O + o];
         __m512 acc[2] = { _mm512_setzero_ps(), _mm512_setzero_ps() };
         for (int c = 0; c < I; c++) {
            const float *wk = wv + ((int64_t)o * I + c) * 9;
            for (int k = 0; k < 9; k++) {
               const __m512 w = _mm512_set1_ps(wk[k]);
               for (int v = 0; v < 2; v++) acc[v] = _mm512_fmadd_ps(w, sh[c][k][v], acc[v]);
            }
         }
         for (int v = 0; v < 2; v++) {
            __m512 y16 = _mm512_add_ps(acc[v], _mm512_set1_ps(b));
            if (e && e->add)
               y16 = _mm512_add_ps(y16, _mm512_maskz_loadu_ps(m[v][1], e->add + row + 16 * v));
            _mm512_mask_storeu_ps(out + row + 16 * v, m[v][1], y16);
         }
      }
   }
}
#endif

/* out [N, O, H, W] = conv(in [N, I, H, W]) + epilogue: with few inputs by
   (image, row) for all outputs at once, else by (image, output channel), the
   item's taps gathered first, [I][9], in the pass's order */
static void thin_pass(float *out, const float *in, const taps *t, const ddpm_conv_epi *e, int N,
                      int I, int H, int W, int O)
{
   const int64_t plane = (int64_t)H * W;
#ifdef __AVX512F__
   if (I <= THIN_MAX_C) {
      float wv[9 * (int64_t)I * O];
      for (int o = 0; o < O; o++)
         for (int c = 0; c < I; c++)
            for (int k = 0; k < 9; k++) wv[((int64_t)o * I + c) * 9 + k] = tap(t, o, c, k);
      #pragma omp parallel for schedule(static) if ((int64_t)N * H > 1)
      for (int64_t it = 0; it < (int64_t)N * H; it++)
         rows_fan_out(out, in, wv, e, (int)(it / H), I, H, W, O, (int)(it % H));
      return;
   }
#endif
   #pragma omp parallel for schedule(static) if ((int64_t)N * O > 1)
   for (int64_t it = 0; it < (int64_t)N * O; it++) {
      const int n = (int)(it / O), o = (int)(it % O);
      float wv[9 * I];
      for (int c = 0; c < I; c++)
         for (int k = 0; k < 9; k++) wv[9 * c + k] = tap(t, o, c, k);
      float b = e && e->bias ? e->bias[o] : 0.0f;
      if (e && e->bias_nc) b += e->bias_nc[(int64_t)n * O + o];
      float *op = out + ((int64_t)n * O + o) * plane;
      const float *ap = e && e->add ? e->add + ((int64_t)n * O + o) * plane : NULL;
      for (int y = 0; y < H; y++)
         row_forward(op + (int64_t)y * W, in + (int64_t)n * I * plane, wv, I, H, W, y, b,
                     ap ? ap + (int64_t)y * W : NULL);
   }
}

void ddpm_conv_thin_forward(float *out, const float *in, const float *weight,
                            const ddpm_conv_epi *e, const ddpm_conv2d_shape *s)
{
   const taps t = { weight, (int64_t)s->C * 9, 9, 0 };
   thin_pass(out, in, &t, e, s->N, s->C, s->H, s->W, s->OC);
}

/* The 9 taps' sums of output channel o against input channel c over one
   image: s[k] = sum over pixels of dout[y][x] * in[y + ky - 1][x + kx - 1]. */
static void image_taps(double s[9], const float *d, const float *x, int H, int W)
{
#ifdef __AVX512F__
   __m512 acc[9];
   for (int k = 0; k < 9; k++) acc[k] = _mm512_setzero_ps();
   for (int x0 = 0; x0 < W; x0 += 16) {
      __mmask16 m[3];   /* columns x0 - 1, x0, x0 + 1 on */
      for (int dx = 0; dx < 3; dx++) m[dx] = ddpm_cols16(x0 + dx - 1, W);
      for (int y = 0; y < H; y++) {
         const __m512 g = _mm512_maskz_loadu_ps(m[1], d + (int64_t)y * W + x0);
         for (int ky = 0; ky < 3; ky++) {
            const int iy = y + ky - 1;
            if (iy < 0 || iy >= H) continue;
            const uintptr_t r = (uintptr_t)(x + (int64_t)iy * W + x0) - sizeof(float);
            for (int dx = 0; dx < 3; dx++)
               acc[3 * ky + dx] = _mm512_fmadd_ps(
                  g, _mm512_maskz_loadu_ps(m[dx], (const float *)(r + dx * 4)), acc[3 * ky + dx]);
         }
      }
   }
   for (int k = 0; k < 9; k++) s[k] += (double)_mm512_reduce_add_ps(acc[k]);
#else
   float acc[9] = { 0 };
   for (int y = 0; y < H; y++)
      for (int ky = 0; ky < 3; ky++) {
         const int iy = y + ky - 1;
         if (iy < 0 || iy >= H) continue;
         const float *dr = d + (int64_t)y * W, *r = x + (int64_t)iy * W;
         for (int xx = 0; xx < W; xx++) {
            if (xx > 0) acc[3 * ky] += dr[xx] * r[xx - 1];
            acc[3 * ky + 1] += dr[xx] * r[xx];
            if (xx + 1 < W) acc[3 * ky + 2] += dr[xx] * r[xx + 1];
         }
      }
   for (int k = 0; k < 9; k++) s[k] += acc[k];
#endif
}

void ddpm_conv_thin_backward(float *din, int din_accumulate, float *dweight, const float *dout,
                             const float *in, const float *weight, const ddpm_conv2d_shape *s)
{
   const int N = s->N, C = s->C, H = s->H, W = s->W, OC = s->OC;
   const int64_t plane = (int64_t)H * W;
   if (dweight) {
      #pragma omp parallel for schedule(dynamic, 1) if ((int64_t)OC * C > 1)
      for (int64_t it = 0; it < (int64_t)OC * C; it++) {
         const int o = (int)(it / C), c = (int)(it % C);
         double sum[9] = { 0 };
         for (int n = 0; n < N; n++)
            image_taps(sum, dout + ((int64_t)n * OC + o) * plane, in + ((int64_t)n * C + c) * plane,
                       H, W);
         float *dw = dweight + it * 9;
         for (int k = 0; k < 9; k++) dw[k] += (float)sum[k];
      }
   }
   if (din) {
      /* din (+)= the pass over dout with w'[c][o][k] = w[o][c][8 - k] */
      const taps t = { weight, 9, (int64_t)C * 9, 1 };
      const ddpm_conv_epi e = { NULL, NULL, din_accumulate ? din : NULL };
      thin_pass(din, dout, &t, &e, N, OC, H, W, C);
   }
}
