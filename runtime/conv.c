/*
 * conv.c — 2-D convolution, NCHW float32: forward and backward as im2col + GEMM.
 *
 * What it is: the raw-pointer kernels declared in ddpm.h. Batches of images are
 * unrolled into a column matrix cols [C*KH*KW, P] (P = output pixels of the
 * images in one chunk) and multiplied by the weight [OC, C*KH*KW] through
 * ddpm_gemm. A 1x1 stride-1 unpadded conv skips im2col: the input planes
 * already are that matrix. Padding is given as top/left offsets; anything read
 * outside the image is zero, which covers symmetric "same" padding and the
 * official DDPM downsampling (pad only bottom/right).
 *
 * The _epi/_ex variants of kernels.h add an epilogue (per-image bias, a
 * residual) to the forward and let backward overwrite din instead of
 * accumulating into it (no zero-fill before the first write).
 *
 * What it isn't: no shape or argument checks (the U-Net and the bindings check
 * before calling), no allocation (the caller passes scratch of
 * ddpm_conv2d_scratch_floats() floats), no dilation, groups or FFT; the U-Net's
 * 3x3 stride-1 layers go through winograd.c instead, and those with 1 to
 * THIN_MAX_C channels on a side through conv_thin.c (from here).
 */
#include "ddpm.h"
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

/* Images are batched into one GEMM until a chunk holds about this many output
   pixels (at least one image per chunk). Measured with N = 8 on the CIFAR-10
   U-Net shapes, 2 cores (AMD EPYC, OpenBLAS 0.3.21 pthreads,
   OMP_WAIT_POLICY=passive), best of 45 runs, forward / backward in ms:
                              one image    4096 pixels   whole batch
     3x3 128->128 32x32       19.2 / 36.0   17.4 / 38.9   16.1 / 35.8
     3x3 256->256 16x16       17.7 / 30.9   14.5 / 30.3   14.9 / 34.4
     3x3 256->256  8x8         6.9 / 10.5    4.3 /  9.2    4.4 /  9.4
     3x3 256->256  4x4         3.2 /  5.3    1.5 /  3.2    1.6 /  3.1
   An 8x8 or 4x4 image alone gives GEMMs of 64 or 16 columns, too thin to
   keep two threads busy; single-threaded (CPU time) the three are within 5%
   except 4x4, where batching still wins 18%. 4096 matches the whole batch
   while keeping scratch bounded: 21 MB for the 32x32 layer at any N, where
   the whole batch would need 42 MB at N = 8 and ~670 MB at N = 128. The
   timing machine was shared, so trust the ordering more than the digits.
   -DCONV_CHUNK_PIXELS=1 gives per-image GEMMs. */
#ifndef CONV_CHUNK_PIXELS
#define CONV_CHUNK_PIXELS 4096
#endif

ddpm_conv2d_shape ddpm_conv2d_make(int N, int C, int H, int W, int OC, int K,
                                   int stride, int pad_t, int pad_l, int pad_b, int pad_r)
{
   ddpm_conv2d_shape s = {
      .N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = K, .KW = K,
      .stride = stride, .pad_t = pad_t, .pad_l = pad_l, .OH = 0, .OW = 0
   };
   /* C division truncates toward zero, so a kernel larger than the padded
      image would otherwise yield one output row instead of none. */
   int hh = H + pad_t + pad_b - K, ww = W + pad_l + pad_r - K;
   if (stride >= 1 && hh >= 0 && ww >= 0) {
      s.OH = hh / stride + 1;
      s.OW = ww / stride + 1;
   }
   return s;
}

/* A 1x1 stride-1 unpadded conv reads each input plane as is, so per-image GEMMs
   run straight on the caller's tensors: no scratch, and gradients accumulate
   through beta = 1. Routing it through the chunked path instead (a gather in
   place of im2col) measured 5-15% slower single-threaded on the U-Net's nin
   shortcuts. */
static int is_pointwise(const ddpm_conv2d_shape *s)
{
   return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad_t == 0 && s->pad_l == 0
       && s->OH == s->H && s->OW == s->W;
}

/* Pointwise layers take images in parallel, each GEMM single-threaded
   (OpenBLAS runs one thread inside a parallel region), when there are
   several images and threads: one parallel region per layer instead of a
   wake-up of OpenBLAS's threads per image. */
static int by_image(int N)
{
#ifdef _OPENMP
   return N >= 2 && omp_get_max_threads() > 1 && !omp_in_parallel();
#else
   (void)N;
   return 0;
#endif
}

/* Images per GEMM chunk: at least one, at most N. */
static int chunk_images(const ddpm_conv2d_shape *s)
{
   int ohw = s->OH * s->OW;
   int nb = ohw > 0 ? CONV_CHUNK_PIXELS / ohw : 1;
   if (nb < 1) nb = 1;
   if (nb > s->N) nb = s->N;
   return nb;
}

/* Floats of cols and stage for chunks of nb images. */
static size_t chunk_floats(const ddpm_conv2d_shape *s, int nb)
{
   const size_t P = (size_t)nb * s->OH * s->OW;
   return (size_t)s->C * s->KH * s->KW * P + (nb > 1 ? (size_t)s->OC * P : 0);
}

/* An im2col chunk of about this many floats stays in a core's L2 between
   its im2col and its GEMM. */
#define THREAD_COLS_FLOATS (96u << 10)

/* Images per chunk when each thread takes whole chunks of its own (0: the
   threads share every chunk instead): chunks whose cols fit in L2 and of
   which every thread gets two or more, carved out of the scratch that
   chunks of nb images are given, and wide enough for the GEMM. Shared
   chunks wrote cols of several MB to memory and read them back (a
   Fashion-MNIST downsampling layer, 64 images of 32 channels at 28x28:
   4096 pixels a chunk, 14.5 MB of cols in all). */
static int thread_chunk(const ddpm_conv2d_shape *s, int nb)
{
   const int T = ddpm_omp_max_threads();
   if (T < 2 || !by_image(s->N)) return 0;
   const size_t per_img = (size_t)s->C * s->KH * s->KW * s->OH * s->OW;
   int m = per_img ? (int)(THREAD_COLS_FLOATS / per_img) : 1;
   if (m < 1) m = 1;
   while (m > 1 && (chunk_floats(s, m) * T > chunk_floats(s, nb) || s->N < 2 * T * m)) m--;
   if (chunk_floats(s, m) * T > chunk_floats(s, nb)) return 0;
   /* thin GEMMs (a 4x4 output: 16 columns an image) lose more than L2 saves */
   if ((int64_t)m * s->OH * s->OW < 128) return 0;
   return s->N >= 2 * T * m ? m : 0;
}

/* The chunked weight gradient's product packs its transposed operand,
   K = 9C columns by P pixels, whole: up to this many floats it runs on the
   runtime's GEMM (1.6-1.8x OpenBLAS's AVX2 kernels at the U-Net's 4x4
   layers, 256 x 2304 x 128), beyond it on OpenBLAS. */
#define DW_PACK_MAX_FLOATS (4u << 20)

/* ddpm_gemm_ws floats per thread that the _epi/_ex variants can use: the
   products of the pointwise path and the chunked forward, input gradient
   and (up to DW_PACK_MAX_FLOATS) weight gradient. */
size_t ddpm_conv2d_gemm_work_floats(const ddpm_conv2d_shape *s)
{
   const int OHW = s->OH * s->OW, K = s->C * s->KH * s->KW;
   if (s->N <= 0 || OHW <= 0 || K <= 0) return 0;
   size_t m, t;
   if (is_pointwise(s)) {
      m = ddpm_gemm_fast_work_floats(0, OHW, s->C);
      t = ddpm_gemm_fast_work_floats(0, OHW, s->OC); if (t > m) m = t;
      t = ddpm_gemm_fast_work_floats(1, s->C, OHW); if (t > m) m = t;
      return m;
   }
   const int P = chunk_images(s) * OHW;
   m = ddpm_gemm_fast_work_floats(0, P, K);
   t = ddpm_gemm_fast_work_floats(0, P, s->OC); if (t > m) m = t;
   t = ddpm_gemm_fast_work_floats(1, K, P); if (t > m && t <= DW_PACK_MAX_FLOATS) m = t;
   return m;
}

size_t ddpm_conv2d_scratch_floats(const ddpm_conv2d_shape *s)
{
   if (is_pointwise(s) || ddpm_conv_thin(s) || s->N <= 0) return 0;
   int nb = chunk_images(s);
   size_t P = (size_t)nb * s->OH * s->OW;
   size_t rows = (size_t)s->C * s->KH * s->KW;
   /* cols (im2col in forward and for dweight; reused for dcols in backward),
      plus, when a chunk spans several images, an [OC, P] staging matrix: the
      GEMM writes channel-major rows that are not NCHW across images. */
   return rows * P + (nb > 1 ? (size_t)s->OC * P : 0);
}

/* Output columns [lo, hi) whose input column ox*stride - pad + k is inside
   [0, W); the others read zero padding. */
static void valid_range(int *lo, int *hi, int k, int pad, int stride, int W, int OW)
{
   int a = pad - k, b = W - 1 + pad - k;
   *lo = a > 0 ? (a + stride - 1) / stride : 0;
   *hi = b >= 0 ? b / stride + 1 : 0;
   if (*hi > OW) *hi = OW;
   if (*lo > *hi) *lo = *hi;
}

#ifdef __AVX512F__
/* The 4x4 level (3x3, stride 1, pad 1 convolutions of 4x4 images: the
   CIFAR-10 U-Net's lowest level, which runs on GEMMs in float32). A plane
   is one 16-float vector, so im2col makes each tap's row as one masked
   permutation of it and col2im sums the inverse permutations, instead of
   36 copies of 2-4 floats per plane (most of that level's im2col time). */
static int im2col_4x4(const ddpm_conv2d_shape *s)
{
   return s->H == 4 && s->W == 4 && s->KH == 3 && s->KW == 3 && s->stride == 1 &&
          s->pad_t == 1 && s->pad_l == 1 && s->OH == 4 && s->OW == 4;
}

/* Per tap t = ky*3 + kx, lane q of its permutation reads lane idx[t][q]
   (masked off where that falls outside the plane): the input position
   (q/4 + ky - 1, q%4 + kx - 1) for im2col (dir 1), the output position
   (q/4 - ky + 1, q%4 - kx + 1) for col2im (dir -1). */
static void taps4(int32_t idx[9][16], __mmask16 msk[9], int dir)
{
   for (int t = 0; t < 9; t++) {
      const int dy = dir * (t / 3 - 1), dx = dir * (t % 3 - 1);
      msk[t] = 0;
      for (int q = 0; q < 16; q++) {
         const int y = q / 4 + dy, x = q % 4 + dx;
         const int in_range = y >= 0 && y < 4 && x >= 0 && x < 4;
         idx[t][q] = in_range ? y * 4 + x : 0;
         if (in_range) msk[t] |= (__mmask16)(1u << q);
      }
   }
}

static void im2col4(float *cols, const float *in, int nb, const ddpm_conv2d_shape *s)
{
   int32_t idx[9][16];
   __mmask16 msk[9];
   taps4(idx, msk, 1);
   const size_t P = (size_t)nb * 16;
   DDPM_PAR_FOR(1, (int64_t)s->C * nb, it, {
      const int c = (int)(it / nb), j = (int)(it % nb);
      const __m512 plane = _mm512_loadu_ps(in + ((size_t)j * s->C + c) * 16);
      float *dst = cols + (size_t)c * 9 * P + (size_t)j * 16;
      for (int t = 0; t < 9; t++)
         _mm512_storeu_ps(dst + t * P, _mm512_maskz_permutexvar_ps(
                                          msk[t], _mm512_loadu_si512(idx[t]), plane));
   });
}

/* Summed in tap order in a register, as col2im_add sums in memory
   (masked-off lanes add +0). */
static void col2im4(float *din, const float *dcols, int nb, const ddpm_conv2d_shape *s,
                    int accumulate)
{
   int32_t idx[9][16];
   __mmask16 msk[9];
   taps4(idx, msk, -1);
   const size_t P = (size_t)nb * 16;
   DDPM_PAR_FOR(1, (int64_t)nb * s->C, it, {
      const int j = (int)(it / s->C), c = (int)(it % s->C);
      float *dst = din + ((size_t)j * s->C + c) * 16;
      __m512 acc = accumulate ? _mm512_loadu_ps(dst) : _mm512_setzero_ps();
      const float *src = dcols + (size_t)c * 9 * P + (size_t)j * 16;
      for (int t = 0; t < 9; t++)
         acc = _mm512_add_ps(acc, _mm512_maskz_permutexvar_ps(
                                     msk[t], _mm512_loadu_si512(idx[t]),
                                     _mm512_loadu_ps(src + t * P)));
      _mm512_storeu_ps(dst, acc);
   });
}
#endif

/* cols [C*KH*KW, nb*OH*OW] <- in [nb, C, H, W]; column j*OH*OW + oy*OW + ox. */
static void im2col(float *cols, const float *in, int nb, const ddpm_conv2d_shape *s)
{
#ifdef __AVX512F__
   if (im2col_4x4(s)) {
      im2col4(cols, in, nb, s);
      return;
   }
#endif
   const int KK = s->KH * s->KW, rows = s->C * KK, OW = s->OW, st = s->stride;
   const size_t ohw = (size_t)s->OH * s->OW, P = (size_t)nb * ohw;
   const size_t plane = (size_t)s->H * s->W;
   DDPM_PAR_FOR(1, (int64_t)rows * nb, it, {
         const int r = (int)(it / nb), j = (int)(it % nb);
         const int c = r / KK, ky = r % KK / s->KW, kx = r % s->KW;
         const float *src = in + ((size_t)j * s->C + c) * plane;
         float *dst = cols + (size_t)r * P + (size_t)j * ohw;
         int lo, hi;
         valid_range(&lo, &hi, kx, s->pad_l, st, s->W, OW);
         for (int oy = 0; oy < s->OH; oy++, dst += OW) {
            const int iy = oy * st - s->pad_t + ky;
            if (iy < 0 || iy >= s->H) {
               memset(dst, 0, (size_t)OW * sizeof *dst);
               continue;
            }
            const float *row = src + (size_t)iy * s->W - s->pad_l + kx;
            for (int ox = 0; ox < lo; ox++) dst[ox] = 0;
            if (st == 1)
               memcpy(dst + lo, row + lo, (size_t)(hi - lo) * sizeof *dst);
            else
               for (int ox = lo; ox < hi; ox++) dst[ox] = row[ox * st];
            for (int ox = hi; ox < OW; ox++) dst[ox] = 0;
         }
   });
}

/* din [nb, C, H, W] (+)= col2im(dcols [C*KH*KW, nb*OH*OW]). Each (image, channel)
   plane is written by one thread only, so the scatter-add needs no atomics;
   without accumulate the plane is cleared first, while it is in cache. */
static void col2im_add(float *din, const float *dcols, int nb, const ddpm_conv2d_shape *s,
                       int accumulate)
{
#ifdef __AVX512F__
   if (im2col_4x4(s)) {
      col2im4(din, dcols, nb, s, accumulate);
      return;
   }
#endif
   const int OW = s->OW, st = s->stride;
   const size_t ohw = (size_t)s->OH * s->OW, P = (size_t)nb * ohw;
   const size_t plane = (size_t)s->H * s->W;
   DDPM_PAR_FOR(1, (int64_t)nb * s->C, it, {
      const int j = (int)(it / s->C), c = (int)(it % s->C);
      float *dst = din + ((size_t)j * s->C + c) * plane;
      if (!accumulate) memset(dst, 0, plane * sizeof *dst);
      for (int ky = 0; ky < s->KH; ky++) {
         for (int kx = 0; kx < s->KW; kx++) {
            const size_t r = ((size_t)c * s->KH + ky) * s->KW + kx;
            const float *src = dcols + r * P + (size_t)j * ohw;
            int lo, hi;
            valid_range(&lo, &hi, kx, s->pad_l, st, s->W, OW);
            for (int oy = 0; oy < s->OH; oy++, src += OW) {
               const int iy = oy * st - s->pad_t + ky;
               if (iy < 0 || iy >= s->H) continue;
               float *row = dst + (size_t)iy * s->W - s->pad_l + kx;
               for (int ox = lo; ox < hi; ox++) row[ox * st] += src[ox];
            }
         }
      }
   });
}

/* out [nb, OC, ohw] <- mat [OC, nb*ohw] + the epilogue (e may be NULL); n0 is
   the first image's index in the batch (for bias_nc), off its element offset
   (for add). mat == NULL: out already holds the product (one-image chunks). */
static void store_out(float *out, const float *mat, const ddpm_conv_epi *e, int n0, size_t off,
                      int nb, int OC, size_t ohw)
{
   const size_t P = (size_t)nb * ohw;
   const float *add = e && e->add ? e->add + off : NULL;
   DDPM_PAR_FOR(1, (int64_t)nb * OC, it, {
      const int j = (int)(it / OC), oc = (int)(it % OC);
      const size_t o = ((size_t)j * OC + oc) * ohw;
      float *dst = out + o;
      const float *src = mat ? mat + (size_t)oc * P + (size_t)j * ohw : dst;
      float b = e && e->bias ? e->bias[oc] : 0.0f;
      if (e && e->bias_nc) b += e->bias_nc[(size_t)(n0 + j) * OC + oc];
      if (add)
         for (size_t p = 0; p < ohw; p++) dst[p] = src[p] + b + add[o + p];
      else
         for (size_t p = 0; p < ohw; p++) dst[p] = src[p] + b;
   });
}

/* mat [OC, nb*ohw] <- dout [nb, OC, ohw], so one GEMM sees the whole chunk. */
static void gather_dout(float *mat, const float *dout, int nb, int OC, size_t ohw)
{
   const size_t P = (size_t)nb * ohw;
   DDPM_PAR_FOR(1, (int64_t)nb * OC, it, {
      const int j = (int)(it / OC), oc = (int)(it % OC);
      memcpy(mat + (size_t)oc * P + (size_t)j * ohw, dout + ((size_t)j * OC + oc) * ohw,
             ohw * sizeof *mat);
   });
}

void ddpm_conv2d_forward(float *out, float *scratch, const float *in,
                         const float *weight, const float *bias,
                         const ddpm_conv2d_shape *s)
{
   ddpm_conv_epi e = { bias, NULL, NULL };
   ddpm_conv2d_forward_epi(out, scratch, in, weight, &e, s, NULL);
}

/* The m images from n0 on through im2col and one GEMM: cols [K, m OHW],
   stage [OC, m OHW] when m > 1 (the GEMM's rows are not NCHW across
   images). */
static void forward_chunk(float *out, float *cols, float *stage, const float *in,
                          const float *weight, const ddpm_conv_epi *e, const ddpm_conv2d_shape *s,
                          const ddpm_gemm_ws *ws, int n0, int m)
{
   const int K = s->C * s->KH * s->KW, OHW = s->OH * s->OW, P = m * OHW;
   const size_t in_img = (size_t)s->C * s->H * s->W, out_img = (size_t)s->OC * OHW;
   const int has_epi = e && (e->bias || e->bias_nc || e->add);
   float *dst = out + n0 * out_img;
   im2col(cols, in + n0 * in_img, m, s);
   if (m == 1) {   /* one image: its [OC, OH*OW] output is the GEMM's C */
      const int acc = e && e->add == out;
      ddpm_gemm_ws_run_units(ws, s->OC, P, K, weight, K, cols, P, acc ? 1.0f : 0.0f, dst, P,
                             OHW);
      if (has_epi) {
         ddpm_conv_epi e2 = { e->bias, e->bias_nc, acc ? NULL : e->add };
         store_out(dst, NULL, &e2, n0, n0 * out_img, 1, s->OC, OHW);
      }
   } else {        /* stage [OC, P] = weight [OC, K] . cols [K, P] */
      ddpm_gemm_ws_run_units(ws, s->OC, P, K, weight, K, cols, P, 0.0f, stage, P, OHW);
      store_out(dst, stage, e, n0, n0 * out_img, m, s->OC, OHW);
   }
}

void ddpm_conv2d_forward_epi(float *out, float *scratch, const float *in, const float *weight,
                             const ddpm_conv_epi *e, const ddpm_conv2d_shape *s,
                             const ddpm_gemm_ws *ws)
{
   const int K = s->C * s->KH * s->KW, OHW = s->OH * s->OW;
   if (s->N <= 0 || s->OC <= 0 || OHW <= 0) return;
   const size_t in_img = (size_t)s->C * s->H * s->W, out_img = (size_t)s->OC * OHW;
   const int has_epi = e && (e->bias || e->bias_nc || e->add);
   if (K <= 0) {   /* no input channels: the output is the epilogue alone */
      if (!(e && e->add == out)) memset(out, 0, s->N * out_img * sizeof *out);
      ddpm_conv_epi e2 = { e ? e->bias : NULL, e ? e->bias_nc : NULL,
                           e && e->add != out ? e->add : NULL };
      store_out(out, NULL, &e2, 0, 0, s->N, s->OC, OHW);
      return;
   }
   if (ddpm_conv_thin(s)) {   /* a side of 1 to THIN_MAX_C channels: direct */
      ddpm_conv_thin_forward(out, in, weight, e, s);
      return;
   }
   if (is_pointwise(s)) {
      /* out_n [OC, HW] = weight [OC, C] . in_n [C, HW]: in_n is its own cols;
         an epilogue adding out itself becomes beta = 1. */
      const int acc = e && e->add == out;
      #pragma omp parallel for schedule(dynamic, 1) if (by_image(s->N))
      for (int n = 0; n < s->N; n++) {
         ddpm_gemm_ws_run(ws, 0, 0, s->OC, OHW, s->C, 1.0f, weight, s->C, in + n * in_img, OHW,
                   acc ? 1.0f : 0.0f, out + n * out_img, OHW);
         if (has_epi) {   /* while the image is in cache */
            ddpm_conv_epi e2 = { e->bias, e->bias_nc, acc ? NULL : e->add };
            store_out(out + n * out_img, NULL, &e2, n, n * out_img, 1, s->OC, OHW);
         }
      }
      return;
   }
   const int nb = chunk_images(s);
   const int nbt = thread_chunk(s, nb);
   if (nbt) {   /* chunks by thread, each in its share of the scratch */
      const size_t share = chunk_floats(s, nb) / ddpm_omp_max_threads();
      #pragma omp parallel for schedule(dynamic, 1)
      for (int n0 = 0; n0 < s->N; n0 += nbt) {
         float *cols = scratch + (size_t)ddpm_omp_thread_num() * share;
         forward_chunk(out, cols, cols + (size_t)K * nbt * OHW, in, weight, e, s, ws, n0,
                       s->N - n0 < nbt ? s->N - n0 : nbt);
      }
      return;
   }
   float *cols = scratch;
   float *stage = scratch + (size_t)K * nb * OHW;   /* [OC, P], only when nb > 1 */
   for (int n0 = 0; n0 < s->N; n0 += nb)
      forward_chunk(out, cols, stage, in, weight, e, s, ws, n0, s->N - n0 < nb ? s->N - n0 : nb);
}

/* dbias [OC] += sum over images and pixels of dout. Each plane is summed in
   float, the planes in double: a training batch of 128 32x32 images adds
   ~10^5 terms per channel, enough for a float running sum to drift. */
static void bias_backward(float *dbias, const float *dout, const ddpm_conv2d_shape *s)
{
   const size_t ohw = (size_t)s->OH * s->OW;
   #pragma omp parallel for schedule(static)
   for (int oc = 0; oc < s->OC; oc++) {
      double acc = 0;
      for (int n = 0; n < s->N; n++) {
         const float *p = dout + ((size_t)n * s->OC + oc) * ohw;
         float part = 0;
         for (size_t i = 0; i < ohw; i++) part += p[i];
         acc += part;
      }
      dbias[oc] += (float)acc;
   }
}

/* dst[i] += the partials of threads 1 .. nt-1 (part, n floats each) in
   thread order, split among the team (call inside the region, after a
   barrier): thread 0's partial is dst itself. */
static void add_partials(float *dst, const float *part, size_t n, int nt)
{
   #pragma omp for schedule(static)
   for (size_t i = 0; i < n; i++)
      for (int u = 1; u < nt; u++) dst[i] += part[(size_t)(u - 1) * n + i];
}

/*
 * The chunked backward with each thread on whole chunks of its own (chunk t,
 * t + T, ... for thread t of T) in its share of the scratch, as the forward's
 * thread chunks (thread_chunk): dout's gather, im2col, both products and
 * col2im stay in the core's L2, where shared chunks went through memory
 * between the steps. dweight's sums go into a partial per thread (thread
 * 0's is dweight), added in thread order: the bits depend on the thread
 * count, not on scheduling. 0 when there is no memory for the partials (the
 * caller then shares the chunks).
 */
static int backward_thread_chunks(float *din, int din_acc, float *dweight, float *scratch,
                                  const float *dout, const float *in, const float *weight,
                                  const ddpm_conv2d_shape *s, const ddpm_gemm_ws *ws, int nb,
                                  int nbt)
{
   const int K = s->C * s->KH * s->KW, OHW = s->OH * s->OW, T = ddpm_omp_max_threads();
   const size_t in_img = (size_t)s->C * s->H * s->W, out_img = (size_t)s->OC * OHW;
   const size_t share = chunk_floats(s, nb) / T, nw = (size_t)s->OC * K;
   const int nchunks = (s->N + nbt - 1) / nbt;
   float *part = NULL;
   if (dweight && !(part = calloc((size_t)(T - 1) * nw, sizeof *part))) return 0;
   #pragma omp parallel num_threads(T)
   {
      const int t = ddpm_omp_thread_num(), nt = ddpm_omp_num_threads();
      float *cols = scratch + (size_t)t * share, *stage = cols + (size_t)K * nbt * OHW;
      float *dw = t ? part + (size_t)(t - 1) * nw : dweight;
      for (int ci = t; ci < nchunks; ci += nt) {
         const int n0 = ci * nbt, m = s->N - n0 < nbt ? s->N - n0 : nbt, P = m * OHW;
         const float *g = dout + n0 * out_img;
         if (m > 1) {
            gather_dout(stage, g, m, s->OC, OHW);
            g = stage;
         }
         if (dweight) {
            im2col(cols, in + n0 * in_img, m, s);
            ddpm_gemm_ws_run(ws, 0, 1, s->OC, K, P, 1.0f, g, P, cols, P, 1.0f, dw, K);
         }
         if (din) {
            ddpm_gemm_ws_run(ws, 1, 0, K, P, s->OC, 1.0f, weight, K, g, P, 0.0f, cols, P);
            col2im_add(din + n0 * in_img, cols, m, s, din_acc);
         }
      }
      if (dweight) {
         #pragma omp barrier
         add_partials(dweight, part, nw, nt);
      }
   }
   free(part);
   return 1;
}

void ddpm_conv2d_backward(float *din, float *dweight, float *dbias, float *scratch,
                          const float *dout, const float *in, const float *weight,
                          const ddpm_conv2d_shape *s)
{
   ddpm_conv2d_backward_ex(din, 1, dweight, dbias, scratch, dout, in, weight, s, NULL);
}

void ddpm_conv2d_backward_ex(float *din, int din_accumulate, float *dweight, float *dbias,
                             float *scratch, const float *dout, const float *in,
                             const float *weight, const ddpm_conv2d_shape *s,
                             const ddpm_gemm_ws *ws)
{
   const int K = s->C * s->KH * s->KW, OHW = s->OH * s->OW;
   if (s->N <= 0 || s->OC <= 0 || OHW <= 0) {   /* no outputs: din's gradient is 0 */
      if (din && !din_accumulate && s->N > 0)
         memset(din, 0, (size_t)s->N * s->C * s->H * s->W * sizeof *din);
      return;
   }
   if (dbias) bias_backward(dbias, dout, s);
   if (K <= 0 || (!din && !dweight)) return;
   if (ddpm_conv_thin(s)) {
      ddpm_conv_thin_backward(din, din_accumulate, dweight, dout, in, weight, s);
      return;
   }
   const size_t in_img = (size_t)s->C * s->H * s->W, out_img = (size_t)s->OC * OHW;
   if (is_pointwise(s)) {
      /* beta = 1 makes the GEMMs accumulate straight into the caller's
         gradients. dweight: each thread sums every T-th image (t, t + T,
         ...) in order into a partial of its own (thread 0's is dweight),
         and the partials are added in thread order, so each image's in^T is
         packed once (with the rows split instead, every thread packed every
         image); the bits depend on the thread count, as the Winograd weight
         gradient's do. din goes image by image. */
      if (dweight) {
         const int T = by_image(s->N) ? ddpm_omp_max_threads() : 1;
         const size_t nw = (size_t)s->OC * s->C;
         float *part = T > 1 ? calloc((size_t)(T - 1) * nw, sizeof *part) : NULL;
         if (part) {
            #pragma omp parallel num_threads(T)
            {
               const int t = ddpm_omp_thread_num(), nt = ddpm_omp_num_threads();
               float *dst = t ? part + (size_t)(t - 1) * nw : dweight;
               for (int n = t; n < s->N; n += nt)   /* dst += dout_n in_n^T */
                  ddpm_gemm_ws_run(ws, 0, 1, s->OC, s->C, OHW, 1.0f, dout + n * out_img, OHW,
                                   in + n * in_img, OHW, 1.0f, dst, s->C);
               #pragma omp barrier
               add_partials(dweight, part, nw, nt);
            }
            free(part);
         } else {   /* one thread, or no memory for the partials */
            for (int n = 0; n < s->N; n++)
               ddpm_gemm_ws_run(ws, 0, 1, s->OC, s->C, OHW, 1.0f, dout + n * out_img, OHW,
                                in + n * in_img, OHW, 1.0f, dweight, s->C);
         }
      }
      if (din) {
         #pragma omp parallel for schedule(dynamic, 1) if (by_image(s->N))
         for (int n = 0; n < s->N; n++)   /* din_n [C, HW] (+)= weight^T dout_n */
            ddpm_gemm_ws_run(ws, 1, 0, s->C, OHW, s->OC, 1.0f, weight, s->C, dout + n * out_img,
                             OHW, din_accumulate ? 1.0f : 0.0f, din + n * in_img, OHW);
      }
      return;
   }
   const int nb = chunk_images(s);
   const int nbt = thread_chunk(s, nb);
   if (nbt && backward_thread_chunks(din, din_accumulate, dweight, scratch, dout, in, weight, s,
                                     ws, nb, nbt))
      return;
   float *cols = scratch;
   float *stage = scratch + (size_t)K * nb * OHW;
   for (int n0 = 0; n0 < s->N; n0 += nb) {
      const int m = s->N - n0 < nb ? s->N - n0 : nb;
      const int P = m * OHW;
      const float *g = dout + n0 * out_img;   /* [OC, P] when m == 1 */
      if (m > 1) {
         gather_dout(stage, g, m, s->OC, OHW);
         g = stage;
      }
      if (dweight) {   /* dweight [OC, K] += g [OC, P] . cols^T [P, K] */
         im2col(cols, in + n0 * in_img, m, s);
         ddpm_gemm_ws_run(ws, 0, 1, s->OC, K, P, 1.0f, g, P, cols, P, 1.0f, dweight, K);
      }
      if (din) {       /* dcols [K, P] = weight^T [K, OC] . g [OC, P], reusing cols */
         ddpm_gemm_ws_run(ws, 1, 0, K, P, s->OC, 1.0f, weight, K, g, P, 0.0f, cols, P);
         col2im_add(din + n0 * in_img, cols, m, s, din_accumulate);
      }
   }
}
