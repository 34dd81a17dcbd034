/*
 * test_winograd.c — the Winograd F(4x4,3x3) convolution (runtime/winograd.c)
 * against the direct convolution, computed naively in double.
 *
 * Each output is judged against the sum of |term| of its own dot product,
 * as test_conv.c does: F(4x4,3x3)'s transforms scale values by up to 5 (B^T)
 * and 8 (A^T) and cancel again, so its rounding is ~1e-6 of that sum where a
 * direct float32 sum is ~1e-7; the bound here is 2e-5. A wrong tap, tile or
 * padding is off by ~1/(9C) of the sum or more (the negative control shows
 * the measure catches one filter tap changed by 1%). Checked for the
 * forward with each epilogue term (bias, per-image bias, residual, in-place
 * accumulation), the input gradient (overwrite and accumulate), the weight
 * gradient (accumulates); sizes that are not multiples of the 4x4 tile or of
 * the 8-lane channel groups; NaN-filled scratch and outputs (nothing unwritten
 * is read); and what the thread count may and may not change.
 */
#include "check.h"
#include "ddpm.h"
#include "kernels.h"

#include <omp.h>

#define TOL 2e-5

typedef struct prob {
   int N, C, H, W, OC;
   size_t ni, no, nw, ns;
   float *in, *w, *b, *bnc, *res, *dy, *scratch;
} prob;

static float *falloc(size_t n)
{
   float *p = malloc((n ? n : 1) * sizeof *p);
   if (!p) { printf("Bail out! out of memory\n"); exit(1); }
   return p;
}

static void fill_nan(float *p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = NAN; }

static prob prob_new(int N, int C, int H, int W, int OC, unsigned seed)
{
   prob p = { N, C, H, W, OC, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL };
   p.ni = (size_t)N * C * H * W;
   p.no = (size_t)N * OC * H * W;
   p.nw = (size_t)OC * C * 9;
   p.ns = ddpm_wino_scratch_floats(N, C, OC, H, W, 1, 3);
   p.in = falloc(p.ni); check_fill(p.in, p.ni, seed);
   p.w = falloc(p.nw); check_fill(p.w, p.nw, seed + 1);
   p.b = falloc(OC); check_fill(p.b, OC, seed + 2);
   p.bnc = falloc((size_t)N * OC); check_fill(p.bnc, (size_t)N * OC, seed + 3);
   p.res = falloc(p.no); check_fill(p.res, p.no, seed + 4);
   p.dy = falloc(p.no); check_fill(p.dy, p.no, seed + 5);
   p.scratch = falloc(p.ns);
   return p;
}

static void prob_free(prob *p)
{
   free(p->in); free(p->w); free(p->b); free(p->bnc); free(p->res); free(p->dy); free(p->scratch);
}

static size_t ix(const prob *p, int n, int c, int C, int y, int x)
{
   return (((size_t)n * C + c) * p->H + y) * p->W + x;
}

/* max |got - ref| / sum|terms| over the forward's outputs; e selects the
   epilogue terms the reference adds (bias, bias_nc, res). */
static double fwd_err(const prob *p, const float *got, int bias, int bnc, int res)
{
   double worst = 0;
   for (int n = 0; n < p->N; n++)
   for (int o = 0; o < p->OC; o++)
   for (int y = 0; y < p->H; y++)
   for (int x = 0; x < p->W; x++) {
      double acc = 0, mag = 1e-30;
      for (int c = 0; c < p->C; c++)
      for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++) {
         int iy = y + ky - 1, ixx = x + kx - 1;
         if (iy < 0 || iy >= p->H || ixx < 0 || ixx >= p->W) continue;
         double t = (double)p->in[ix(p, n, c, p->C, iy, ixx)] * p->w[((size_t)o * p->C + c) * 9 + ky * 3 + kx];
         acc += t;
         mag += fabs(t);
      }
      double extra[3] = { bias ? p->b[o] : 0.0, bnc ? p->bnc[(size_t)n * p->OC + o] : 0.0,
                          res ? p->res[ix(p, n, o, p->OC, y, x)] : 0.0 };
      for (int k = 0; k < 3; k++) { acc += extra[k]; mag += fabs(extra[k]); }
      double e = fabs(got[ix(p, n, o, p->OC, y, x)] - acc) / mag;
      if (!(e <= worst)) worst = e;   /* NaN propagates */
   }
   return worst;
}

/* input gradient: din[n,c,y,x] = sum dy[n,o,y-ky+1,x-kx+1] w[o,c,ky,kx] (+ base) */
static double dx_err(const prob *p, const float *got, const float *base)
{
   double worst = 0;
   for (int n = 0; n < p->N; n++)
   for (int c = 0; c < p->C; c++)
   for (int y = 0; y < p->H; y++)
   for (int x = 0; x < p->W; x++) {
      double acc = base ? base[ix(p, n, c, p->C, y, x)] : 0.0, mag = fabs(acc) + 1e-30;
      for (int o = 0; o < p->OC; o++)
      for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++) {
         int oy = y - ky + 1, ox = x - kx + 1;
         if (oy < 0 || oy >= p->H || ox < 0 || ox >= p->W) continue;
         double t = (double)p->dy[ix(p, n, o, p->OC, oy, ox)] * p->w[((size_t)o * p->C + c) * 9 + ky * 3 + kx];
         acc += t;
         mag += fabs(t);
      }
      double e = fabs(got[ix(p, n, c, p->C, y, x)] - acc) / mag;
      if (!(e <= worst)) worst = e;
   }
   return worst;
}

/* weight gradient: dw[o,c,ky,kx] = base + sum dy[n,o,y,x] in[n,c,y+ky-1,x+kx-1] */
static double dw_err(const prob *p, const float *got, const float *base)
{
   double worst = 0;
   for (int o = 0; o < p->OC; o++)
   for (int c = 0; c < p->C; c++)
   for (int k = 0; k < 9; k++) {
      const int ky = k / 3, kx = k % 3;
      const size_t wi = ((size_t)o * p->C + c) * 9 + k;
      double acc = base ? base[wi] : 0.0, mag = fabs(acc) + 1e-30;
      for (int n = 0; n < p->N; n++)
      for (int y = 0; y < p->H; y++)
      for (int x = 0; x < p->W; x++) {
         int iy = y + ky - 1, ixx = x + kx - 1;
         if (iy < 0 || iy >= p->H || ixx < 0 || ixx >= p->W) continue;
         double t = (double)p->dy[ix(p, n, o, p->OC, y, x)] * p->in[ix(p, n, c, p->C, iy, ixx)];
         acc += t;
         mag += fabs(t);
      }
      double e = fabs(got[wi] - acc) / mag;
      if (!(e <= worst)) worst = e;
   }
   return worst;
}

static void check_shape(int N, int C, int H, int W, int OC, unsigned seed)
{
   prob p = prob_new(N, C, H, W, OC, seed);
   float *out = falloc(p.no), *din = falloc(p.ni), *dw = falloc(p.nw), *base = falloc(p.nw);
   char what[96];
   snprintf(what, sizeof what, "N%d C%d %dx%d OC%d", N, C, H, W, OC);

   /* forward: bias only, then every epilogue term, then in place */
   fill_nan(out, p.no); fill_nan(p.scratch, p.ns);
   ddpm_conv_epi e = { p.b, NULL, NULL };
   ddpm_wino_forward(out, p.scratch, p.ns, p.in, p.w, &e, N, C, H, W, OC);
   double err = fwd_err(&p, out, 1, 0, 0);
   printf("# %s forward err %.3g\n", what, err);
   CHECK(err <= TOL, "%s: forward with bias matches the direct convolution", what);
   if (N == 2 && C == 5) {   /* negative control: the reference with one tap 1% off */
      const float keep = p.w[0];
      p.w[0] = keep * 1.01f;
      double bad = fwd_err(&p, out, 1, 0, 0);
      p.w[0] = keep;
      CHECK(bad > 5 * TOL, "negative control: one filter tap off by 1%% is caught (%.3g)", bad);
   }
   fill_nan(out, p.no); fill_nan(p.scratch, p.ns);
   ddpm_conv_epi e3 = { p.b, p.bnc, p.res };
   ddpm_wino_forward(out, p.scratch, p.ns, p.in, p.w, &e3, N, C, H, W, OC);
   err = fwd_err(&p, out, 1, 1, 1);
   CHECK(err <= TOL, "%s: forward + bias + per-image bias + residual (err %.3g)", what, err);
   memcpy(out, p.res, p.no * sizeof *out);
   ddpm_conv_epi ei = { NULL, NULL, out };
   ddpm_wino_forward(out, p.scratch, p.ns, p.in, p.w, &ei, N, C, H, W, OC);
   err = fwd_err(&p, out, 0, 0, 1);
   CHECK(err <= TOL, "%s: forward accumulating in place (err %.3g)", what, err);

   /* input gradient: overwrite (din NaN first), then accumulate */
   fill_nan(din, p.ni); fill_nan(p.scratch, p.ns);
   ddpm_wino_backward_data(din, 0, p.scratch, p.ns, p.dy, p.w, N, C, H, W, OC);
   err = dx_err(&p, din, NULL);
   printf("# %s input gradient err %.3g\n", what, err);
   CHECK(err <= TOL, "%s: input gradient overwrites din", what);
   float *pre = falloc(p.ni);
   check_fill(pre, p.ni, seed + 9);
   memcpy(din, pre, p.ni * sizeof *din);
   ddpm_wino_backward_data(din, 1, p.scratch, p.ns, p.dy, p.w, N, C, H, W, OC);
   err = dx_err(&p, din, pre);
   CHECK(err <= TOL, "%s: input gradient accumulates (err %.3g)", what, err);
   free(pre);

   /* weight gradient accumulates onto what is there */
   check_fill(base, p.nw, seed + 10);
   memcpy(dw, base, p.nw * sizeof *dw);
   fill_nan(p.scratch, p.ns);
   float *db = falloc(OC);
   for (int o = 0; o < OC; o++) db[o] = 0.25f * (float)o;
   ddpm_wino_backward_weight(dw, db, p.scratch, p.ns, p.dy, p.in, N, C, H, W, OC);
   err = dw_err(&p, dw, base);
   printf("# %s weight gradient err %.3g\n", what, err);
   CHECK(err <= TOL, "%s: weight gradient", what);
   /* the bias's: sums of dy over images and positions, onto what is there */
   double berr = 0;
   for (int o = 0; o < OC; o++) {
      double want = 0.25 * o, mag = fabs(want);
      for (int n = 0; n < N; n++)
         for (int i = 0; i < H * W; i++) {
            const double v = p.dy[((size_t)n * OC + o) * H * W + i];
            want += v;
            mag += fabs(v);
         }
      const double e = fabs(db[o] - want) / (mag > 0 ? mag : 1);
      if (!(e <= berr)) berr = e;
   }
   CHECK(berr <= TOL, "%s: bias gradient with it (err %.3g of sum |terms|)", what, berr);
   free(db);
   free(out); free(din); free(dw); free(base);
   prob_free(&p);
}

/* The forward and the input gradient: the same bits for 1, 2 and 3 threads,
   whether the threads share blocks (few slots) or keep their own (many); the
   weight gradient: the same bits run after run for a fixed thread count, and
   for any count within the bound of the direct sum (per-thread partial sums
   group the terms differently). */
static void check_threads(int N, int C, int H, int W, int OC)
{
   prob p = prob_new(N, C, H, W, OC, 77);
   float *o[3], *d[3], *g[4];
   int saved = omp_get_max_threads();
   for (int t = 0; t < 4; t++) {
      if (t < 3) { o[t] = falloc(p.no); d[t] = falloc(p.ni); }
      g[t] = falloc(p.nw);
      memset(g[t], 0, p.nw * sizeof(float));
      omp_set_num_threads(t < 3 ? t + 1 : 2);
      ddpm_conv_epi e = { p.b, p.bnc, NULL };
      if (t < 3) {
         ddpm_wino_forward(o[t], p.scratch, p.ns, p.in, p.w, &e, N, C, H, W, OC);
         ddpm_wino_backward_data(d[t], 0, p.scratch, p.ns, p.dy, p.w, N, C, H, W, OC);
      }
      ddpm_wino_backward_weight(g[t], NULL, p.scratch, p.ns, p.dy, p.in, N, C, H, W, OC);
   }
   omp_set_num_threads(saved);
   int same = 1;
   for (int t = 1; t < 3; t++)
      same &= !memcmp(o[0], o[t], p.no * 4) && !memcmp(d[0], d[t], p.ni * 4);
   CHECK(same, "N%d C%d %dx%d: forward and input gradient identical for 1, 2, 3 threads",
         N, C, H, W);
   CHECK(!memcmp(g[1], g[3], p.nw * 4), "N%d C%d %dx%d: weight gradient identical run to run",
         N, C, H, W);
   double e = 0;
   for (int t = 0; t < 3; t++) {
      double et = dw_err(&p, g[t], NULL);
      if (!(et <= e)) e = et;
   }
   CHECK(e <= TOL, "N%d C%d %dx%d: weight gradient for 1, 2, 3 threads matches the direct sum "
         "(%.2g)", N, C, H, W, e);
   for (int t = 0; t < 4; t++) { if (t < 3) { free(o[t]); free(d[t]); } free(g[t]); }
   prob_free(&p);
}

int main(void)
{
   ddpm_set_num_threads(2);
   /*          N   C   H   W  OC */
   check_shape(1,  1,  1,  1,  1, 1);    /* one pixel: only the centre tap */
   check_shape(1,  8,  4,  4,  8, 2);    /* exactly one tile */
   check_shape(2,  5,  7,  9,  3, 3);    /* partial tiles, odd tile count, OC < 8 */
   check_shape(1,  3, 13,  6, 17, 4);    /* channels that fill no lane group */
   check_shape(3, 16,  8,  8, 24, 5);    /* several images, tile pairs across rows */
   check_shape(2, 12, 28, 28, 10, 6);    /* the Fashion-MNIST size: 7 tiles a row */
   check_shape(2, 32, 16, 16, 32, 7);    /* CIFAR-10's 16x16 level, fewer channels */
   check_shape(3, 9, 30, 32, 11, 10);    /* 32 wide: column 31 in the row-wise transform */
   check_shape(5, 7, 27, 25, 9, 11);     /* 25 wide: the narrowest 8-slot tile rows */
   check_shape(3, 10, 14, 14, 12, 12);   /* Fashion-MNIST's 14x14 level: 4-slot tile rows */
   check_shape(3, 6, 11, 13, 5, 13);     /* 13 wide: the narrowest 4-slot tile rows */
   check_shape(1, 20, 33, 35, 9, 8);     /* more slots than one block */
   check_shape(4, 8, 64, 64, 8, 9);      /* enough slots for private blocks per thread */
   check_threads(3, 24, 12, 20, 16);     /* shared blocks */
   check_threads(4, 16, 64, 64, 16);     /* private blocks */
   return check_done();
}
