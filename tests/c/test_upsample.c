/*
 * test_upsample.c — nearest x2 upsampling (runtime/upsample.c) against references.
 *
 * Forward against a naive loop written from the definition (source pixel
 * floor(y/2), floor(x/2)); backward against central finite differences of
 * L = sum(out * r); accumulation into din; batch > 1 and H != W throughout;
 * the overwrite mode of ddpm_upsample2x_backward_ex (kernels.h).
 */
#include "ddpm.h"
#include "kernels.h"
#include "check.h"

static float *alloc_floats(size_t n)
{
   float *p = malloc((n ? n : 1) * sizeof *p);
   if (!p) { printf("Bail out! out of memory\n"); exit(1); }
   return p;
}

/* out [N, C, 2H, 2W] */
static void naive_forward(float *out, const float *in, int N, int C, int H, int W)
{
   for (int p = 0; p < N * C; p++)
      for (int y = 0; y < 2 * H; y++)
         for (int x = 0; x < 2 * W; x++)
            out[((size_t)p * 2 * H + y) * 2 * W + x] = in[((size_t)p * H + y / 2) * W + x / 2];
}

static double loss(float *out, const float *in, const float *r, int N, int C, int H, int W)
{
   size_t n = (size_t)N * C * 4 * H * W;
   for (size_t i = 0; i < n; i++) out[i] = NAN;
   ddpm_upsample2x_forward(out, in, N, C, H, W);
   double L = 0;
   for (size_t i = 0; i < n; i++) L += (double)out[i] * r[i];
   return L;
}

static void test_shape(int N, int C, int H, int W)
{
   size_t nin = (size_t)N * C * H * W, nout = 4 * nin;
   float *in = alloc_floats(nin), *out = alloc_floats(nout), *ref = alloc_floats(nout);
   float *r = alloc_floats(nout), *din = alloc_floats(nin), *fd = alloc_floats(nin);
   float *d0 = alloc_floats(nin), *want = alloc_floats(nin);
   check_fill(in, nin, 5 + H);
   check_fill(r, nout, 6 + W);
   printf("# upsample [%d,%d,%d,%d] -> [%d,%d,%d,%d]\n", N, C, H, W, N, C, 2 * H, 2 * W);

   naive_forward(ref, in, N, C, H, W);
   for (size_t i = 0; i < nout; i++) out[i] = NAN;
   ddpm_upsample2x_forward(out, in, N, C, H, W);
   CHECK_CLOSE(out, ref, nout, 0.0, "[%d,%d,%d,%d]: forward equals naive copy", N, C, H, W);

   /* out is linear in in, so the central difference is exact up to rounding */
   const float eps = 1e-2f;
   for (size_t i = 0; i < nin; i++) {
      float v = in[i], xp = v + eps, xm = v - eps;
      in[i] = xp; double Lp = loss(out, in, r, N, C, H, W);
      in[i] = xm; double Lm = loss(out, in, r, N, C, H, W);
      in[i] = v;
      fd[i] = (float)((Lp - Lm) / ((double)xp - (double)xm));
   }
   memset(din, 0, nin * sizeof *din);
   ddpm_upsample2x_backward(din, r, N, C, H, W);
   CHECK_CLOSE(din, fd, nin, 1e-2, "[%d,%d,%d,%d]: din matches finite differences",
               N, C, H, W);

   /* a gradient that forgot one of the four children fails the same check */
   float *bad = alloc_floats(nin);
   for (size_t i = 0; i < nin; i++) bad[i] = din[i] - r[(i / W) * 4 * W + (i % W) * 2];
   CHECK(check_max_rel(bad, fd, nin) > 1e-1, "[%d,%d,%d,%d]: a 3-of-4 gradient fails it",
         N, C, H, W);
   free(bad);

   /* accumulation: din = d0 + g + g after two calls */
   check_fill(d0, nin, 77);
   memcpy(din, d0, nin * sizeof *din);
   float *g = fd;   /* reuse: the exact single gradient */
   memset(g, 0, nin * sizeof *g);
   ddpm_upsample2x_backward(g, r, N, C, H, W);
   ddpm_upsample2x_backward(din, r, N, C, H, W);
   ddpm_upsample2x_backward(din, r, N, C, H, W);
   for (size_t i = 0; i < nin; i++) want[i] = d0[i] + 2.0f * g[i];
   CHECK_CLOSE(din, want, nin, 1e-6, "[%d,%d,%d,%d]: backward accumulates", N, C, H, W);

   free(in); free(out); free(ref); free(r); free(din); free(fd); free(d0); free(want);
}

static void test_overwrite(int N, int C, int H, int W)
{
   size_t nin = (size_t)N * C * H * W, nout = 4 * nin;
   float *r = alloc_floats(nout), *a = alloc_floats(nin), *b = alloc_floats(nin);
   check_fill(r, nout, 5);
   memset(a, 0, nin * sizeof *a);
   ddpm_upsample2x_backward(a, r, N, C, H, W);
   for (size_t i = 0; i < nin; i++) b[i] = NAN;
   ddpm_upsample2x_backward_ex(b, 0, r, N, C, H, W);
   CHECK(memcmp(a, b, nin * sizeof *a) == 0, "backward_ex overwrites din (%dx%d)", H, W);
   free(r); free(a); free(b);
}

int main(void)
{
   test_shape(1, 1, 1, 1);
   test_shape(2, 3, 4, 4);
   test_shape(3, 2, 5, 7);    /* batch > 1, H != W, odd sizes */
   test_shape(2, 4, 16, 8);
   test_overwrite(2, 3, 5, 7);
   return check_done();
}
