/*
 * test_conv.c — conv2d (runtime/conv.c) against references.
 *
 * Forward is compared with a naive direct convolution in double; backward with
 * central finite differences of L = sum(out * r), r random, taken through the
 * float32 forward. Conv is linear in each of in, weight and bias, so central
 * differences carry no truncation error and only float rounding separates
 * them from the exact gradient: the 1e-2 tolerance is loose for a correct
 * kernel and a negative control shows a real bug (symmetric instead of
 * bottom/right padding) lands far outside it. Also: accumulation, NULL
 * gradients, chunks of several images, and the downsampling example of docs/math.md §6.5.
 *
 * Also the variants of kernels.h: the forward's epilogue (per-image bias,
 * residual, in-place accumulation) and backward overwriting din.
 *
 * Not tested here: speed (see the comment on CONV_CHUNK_PIXELS in conv.c).
 */
#include "ddpm.h"
#include "kernels.h"
#include "check.h"

typedef struct conv_case {
   const char *name;
   int N, C, H, W, OC, K, stride, pad_t, pad_l, pad_b, pad_r;
   int bias;
} conv_case;

static float *alloc_floats(size_t n)
{
   float *p = malloc((n ? n : 1) * sizeof *p);
   if (!p) { printf("Bail out! out of memory\n"); exit(1); }
   return p;
}

static void fill_nan(float *p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = NAN; }

/* out [N, OC, OH, OW] in double, straight from the definition in ddpm.h; mag
   (same shape) gets sum |term| of each output's dot product. */
static void naive_forward(double *out, double *mag, const float *in, const float *w,
                          const float *b, const ddpm_conv2d_shape *s)
{
   for (int n = 0; n < s->N; n++)
   for (int oc = 0; oc < s->OC; oc++)
   for (int oy = 0; oy < s->OH; oy++)
   for (int ox = 0; ox < s->OW; ox++) {
      double acc = b ? b[oc] : 0.0, abs_acc = fabs(acc);
      for (int c = 0; c < s->C; c++)
      for (int ky = 0; ky < s->KH; ky++)
      for (int kx = 0; kx < s->KW; kx++) {
         int iy = oy * s->stride - s->pad_t + ky, ix = ox * s->stride - s->pad_l + kx;
         if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
         double t = (double)in[((size_t)(n * s->C + c) * s->H + iy) * s->W + ix]
                  * w[((size_t)(oc * s->C + c) * s->KH + ky) * s->KW + kx];
         acc += t;
         abs_acc += fabs(t);
      }
      size_t o = ((size_t)(n * s->OC + oc) * s->OH + oy) * s->OW + ox;
      out[o] = acc;
      mag[o] = abs_acc;
   }
}

/* Everything one case needs, sized from its shape. */
typedef struct bufs {
   ddpm_conv2d_shape s;
   size_t nin, nw, nout, nscratch;
   float *in, *w, *b, *out, *r, *scratch;
   float *din, *dw, *db;
} bufs;

static bufs bufs_new(const conv_case *cc, unsigned seed)
{
   bufs B;
   B.s = ddpm_conv2d_make(cc->N, cc->C, cc->H, cc->W, cc->OC, cc->K, cc->stride,
                          cc->pad_t, cc->pad_l, cc->pad_b, cc->pad_r);
   B.nin = (size_t)cc->N * cc->C * cc->H * cc->W;
   B.nw = (size_t)cc->OC * cc->C * cc->K * cc->K;
   B.nout = (size_t)cc->N * cc->OC * B.s.OH * B.s.OW;
   B.nscratch = ddpm_conv2d_scratch_floats(&B.s);
   B.in = alloc_floats(B.nin);      check_fill(B.in, B.nin, seed);
   B.w = alloc_floats(B.nw);        check_fill(B.w, B.nw, seed + 1);
   B.b = alloc_floats(cc->OC);      check_fill(B.b, cc->OC, seed + 2);
   B.r = alloc_floats(B.nout);      check_fill(B.r, B.nout, seed + 3);
   B.out = alloc_floats(B.nout);
   /* exactly the advertised size, so ASan catches an overrun */
   B.scratch = alloc_floats(B.nscratch);
   B.din = alloc_floats(B.nin);
   B.dw = alloc_floats(B.nw);
   B.db = alloc_floats(cc->OC);
   return B;
}

static void bufs_free(bufs *B)
{
   free(B->in); free(B->w); free(B->b); free(B->r); free(B->out); free(B->scratch);
   free(B->din); free(B->dw); free(B->db);
}

/* Forward with NaN in out and scratch first: nothing may be read before written. */
static void forward(bufs *B, const float *bias)
{
   fill_nan(B->out, B->nout);
   fill_nan(B->scratch, B->nscratch);
   ddpm_conv2d_forward(B->out, B->scratch, B->in, B->w, bias, &B->s);
}

static double loss(bufs *B, const float *bias)
{
   forward(B, bias);
   double L = 0;
   for (size_t i = 0; i < B->nout; i++) L += (double)B->out[i] * B->r[i];
   return L;
}

/* Zeroed gradients, then one backward of dL/dout = r with the given shape. */
static void backward(bufs *B, const ddpm_conv2d_shape *s)
{
   memset(B->din, 0, B->nin * sizeof *B->din);
   memset(B->dw, 0, B->nw * sizeof *B->dw);
   memset(B->db, 0, (size_t)B->s.OC * sizeof *B->db);
   fill_nan(B->scratch, B->nscratch);
   ddpm_conv2d_backward(B->din, B->dw, B->db, B->scratch, B->r, B->in, B->w, s);
}

#define FD_SAMPLES 96

/* Central differences of L w.r.t. up to FD_SAMPLES evenly spread entries of x;
   writes the finite differences to fd and the matching analytic entries to an. */
static int fd_grad(float *fd, float *an, bufs *B, float *x, size_t n, const float *grad,
                   const float *bias)
{
   /* out is linear in each entry, so any eps is exact in real arithmetic; a
      larger one shrinks the share of float32 rounding in Lp - Lm */
   const float eps = 5e-2f;
   int k = 0;
   size_t m = n < FD_SAMPLES ? n : FD_SAMPLES;
   for (size_t j = 0; j < m; j++, k++) {
      size_t i = j * n / m;
      float v = x[i];
      float xp = v + eps, xm = v - eps;
      x[i] = xp; double Lp = loss(B, bias);
      x[i] = xm; double Lm = loss(B, bias);
      x[i] = v;
      fd[k] = (float)((Lp - Lm) / ((double)xp - (double)xm));
      an[k] = grad[i];
   }
   return k;
}

/* Max relative error of the analytic gradients (computed with shape s) of in,
   weight and bias against finite differences of the true forward. */
static void grad_errors(double err[3], bufs *B, const ddpm_conv2d_shape *s, int with_bias)
{
   float fd[FD_SAMPLES], an[FD_SAMPLES];
   const float *bias = with_bias ? B->b : NULL;
   backward(B, s);
   int k = fd_grad(fd, an, B, B->in, B->nin, B->din, bias);
   err[0] = check_max_rel(an, fd, k);
   k = fd_grad(fd, an, B, B->w, B->nw, B->dw, bias);
   err[1] = check_max_rel(an, fd, k);
   /* dL/dbias is the same whether or not the forward added one; with NULL the
      perturbation would go nowhere */
   k = fd_grad(fd, an, B, B->b, B->s.OC, B->db, B->b);
   err[2] = check_max_rel(an, fd, k);
}

static void test_case(const conv_case *cc, unsigned seed)
{
   bufs B = bufs_new(cc, seed);
   const float *bias = cc->bias ? B.b : NULL;
   printf("# %s: in [%d,%d,%d,%d] -> out [%d,%d,%d,%d], scratch %zu floats\n", cc->name,
          cc->N, cc->C, cc->H, cc->W, cc->N, cc->OC, B.s.OH, B.s.OW, B.nscratch);

   /* forward vs naive. A float32 dot product of K terms is off by up to about
      K * 6e-8 * sum|term| whatever the summation order, so each output's error
      is measured against the sum of |term| of its own dot product: an output
      that nearly cancels to zero is otherwise judged by its tiny value (the
      harness's floor-relative number, printed for reference, reaches ~1e-4
      there). A missing or misplaced tap costs ~1/K, far above 1e-5. */
   double *ref = malloc(B.nout * sizeof *ref), *mag = malloc(B.nout * sizeof *mag);
   float *reff = alloc_floats(B.nout);
   if (!ref || !mag) { printf("Bail out! out of memory\n"); exit(1); }
   naive_forward(ref, mag, B.in, B.w, bias, &B.s);
   for (size_t i = 0; i < B.nout; i++) reff[i] = (float)ref[i];
   forward(&B, bias);
   double fwd_err = 0;
   for (size_t i = 0; i < B.nout; i++) {
      double e = fabs(B.out[i] - ref[i]) / (mag[i] > 0 ? mag[i] : 1e-30);
      if (!(e <= fwd_err)) fwd_err = e;   /* NaN propagates */
   }
   printf("# forward: max err / sum|term| %.3g; floor-relative %.3g; out[0]=%.6g want %.6g\n",
          fwd_err, check_max_rel(B.out, reff, B.nout), B.out[0], ref[0]);
   CHECK(fwd_err <= 1e-5, "%s: forward matches naive loop (1e-5 relative)", cc->name);

   /* backward vs finite differences */
   double err[3];
   grad_errors(err, &B, &B.s, cc->bias);
   printf("# fd rel err: din %.3g dweight %.3g dbias %.3g\n", err[0], err[1], err[2]);
   CHECK(err[0] <= 1e-2, "%s: din matches finite differences", cc->name);
   CHECK(err[1] <= 1e-2, "%s: dweight matches finite differences", cc->name);
   CHECK(err[2] <= 1e-2, "%s: dbias matches finite differences", cc->name);

   /* accumulation: pre-filled gradients keep their content, and a second call
      adds the same amount again */
   backward(&B, &B.s);
   float *g1[3] = { alloc_floats(B.nin), alloc_floats(B.nw), alloc_floats(B.s.OC) };
   memcpy(g1[0], B.din, B.nin * sizeof(float));
   memcpy(g1[1], B.dw, B.nw * sizeof(float));
   memcpy(g1[2], B.db, B.s.OC * sizeof(float));
   float *g0[3] = { alloc_floats(B.nin), alloc_floats(B.nw), alloc_floats(B.s.OC) };
   check_fill(g0[0], B.nin, seed + 7);
   check_fill(g0[1], B.nw, seed + 8);
   check_fill(g0[2], B.s.OC, seed + 9);
   memcpy(B.din, g0[0], B.nin * sizeof(float));
   memcpy(B.dw, g0[1], B.nw * sizeof(float));
   memcpy(B.db, g0[2], B.s.OC * sizeof(float));
   for (int rep = 0; rep < 2; rep++) {
      fill_nan(B.scratch, B.nscratch);
      ddpm_conv2d_backward(B.din, B.dw, B.db, B.scratch, B.r, B.in, B.w, &B.s);
   }
   size_t nn[3] = { B.nin, B.nw, (size_t)B.s.OC };
   float *got[3] = { B.din, B.dw, B.db };
   double worst = 0;
   for (int t = 0; t < 3; t++) {
      float *want = alloc_floats(nn[t]), *diff = alloc_floats(nn[t]);
      for (size_t i = 0; i < nn[t]; i++) {
         want[i] = 2.0f * g1[t][i];
         diff[i] = got[t][i] - g0[t][i];
      }
      double e = check_max_rel(diff, want, nn[t]);
      if (!(e <= worst)) worst = e;
      free(want); free(diff);
   }
   printf("# accumulate: max rel err %.3g\n", worst);
   CHECK(worst <= 1e-4, "%s: backward accumulates (g0 + 2 calls == g0 + 2g)", cc->name);

   /* NULL gradients: each alone equals its part of the full call */
   int null_ok = 1;
   for (int t = 0; t < 3; t++) {
      for (int u = 0; u < 3; u++) memset(got[u], 0, nn[u] * sizeof(float));
      fill_nan(B.scratch, B.nscratch);
      ddpm_conv2d_backward(t == 0 ? B.din : NULL, t == 1 ? B.dw : NULL, t == 2 ? B.db : NULL,
                           B.scratch, B.r, B.in, B.w, &B.s);
      if (check_max_rel(got[t], g1[t], nn[t]) > 1e-6) null_ok = 0;
      for (int u = 0; u < 3; u++)   /* untouched */
         if (u != t)
            for (size_t i = 0; i < nn[u]; i++) if (got[u][i] != 0) null_ok = 0;
   }
   ddpm_conv2d_backward(NULL, NULL, NULL, B.scratch, B.r, B.in, B.w, &B.s);
   CHECK(null_ok, "%s: NULL gradients are skipped, the others unchanged", cc->name);

   for (int t = 0; t < 3; t++) { free(g0[t]); free(g1[t]); }
   free(ref); free(mag); free(reff);
   bufs_free(&B);
}

/* The example of docs/math.md §6.5: ones through a ones 3x3 kernel, stride 2, official
   padding. Top-left sees a full 3x3 window (9); bottom-right has only rows
   and columns 30, 31 inside (4). Symmetric padding would give 4 and 9. */
static void test_downsample_conformance(void)
{
   ddpm_conv2d_shape s = ddpm_conv2d_make(1, 1, 32, 32, 1, 3, 2, 0, 0, 1, 1);
   CHECK(s.OH == 16 && s.OW == 16, "official downsample of 32x32 gives 16x16 (got %dx%d)",
         s.OH, s.OW);
   float *in = alloc_floats(32 * 32), *out = alloc_floats(16 * 16);
   float *scratch = alloc_floats(ddpm_conv2d_scratch_floats(&s));
   float w[9], b = 0;
   for (int i = 0; i < 32 * 32; i++) in[i] = 1;
   for (int i = 0; i < 9; i++) w[i] = 1;
   ddpm_conv2d_forward(out, scratch, in, w, &b, &s);
   CHECK(out[0] == 9.0f, "downsample out[0][0] == 9 (got %g)", out[0]);
   CHECK(out[15 * 16 + 15] == 4.0f, "downsample out[15][15] == 4 (got %g)", out[15 * 16 + 15]);
   CHECK(out[15] == 6.0f && out[15 * 16] == 6.0f, "downsample edges == 6 (got %g, %g)",
         out[15], out[15 * 16]);
   free(in); free(out); free(scratch);
}

/* A realistic bug must fail the gradient check: backward run with symmetric
   padding (pad 1 all round, same OH) against the official bottom/right-only
   forward. */
static void test_negative_control(void)
{
   conv_case cc = { "negative control", 2, 3, 8, 8, 4, 3, 2, 0, 0, 1, 1, 1 };
   bufs B = bufs_new(&cc, 99);
   ddpm_conv2d_shape wrong = ddpm_conv2d_make(2, 3, 8, 8, 4, 3, 2, 1, 1, 1, 1);
   CHECK(wrong.OH == B.s.OH && wrong.OW == B.s.OW, "control shapes agree");
   double err[3];
   grad_errors(err, &B, &wrong, 1);
   printf("# wrong-padding gradients: din %.3g dweight %.3g\n", err[0], err[1]);
   CHECK(err[0] > 1e-1 && err[1] > 1e-1,
         "gradients of a wrongly padded backward fail the 1e-2 check");
   /* and a 2% error in a single entry is caught too */
   float fd[FD_SAMPLES], an[FD_SAMPLES];
   backward(&B, &B.s);
   int k = fd_grad(fd, an, &B, B.w, B.nw, B.dw, B.b);
   int big = 0;
   for (int i = 1; i < k; i++) if (fabsf(an[i]) > fabsf(an[big])) big = i;
   an[big] *= 1.02f;
   CHECK(check_max_rel(an, fd, k) > 1e-2, "a 2%% error in one dweight entry fails the check");
   bufs_free(&B);
}

static void test_make(void)
{
   ddpm_conv2d_shape s = ddpm_conv2d_make(8, 128, 32, 32, 128, 3, 1, 1, 1, 1, 1);
   CHECK(s.OH == 32 && s.OW == 32 && s.KH == 3 && s.KW == 3, "3x3 same keeps 32x32");
   s = ddpm_conv2d_make(2, 3, 5, 9, 4, 3, 2, 1, 1, 1, 1);
   CHECK(s.OH == 3 && s.OW == 5, "3x3 stride 2 pad 1 on 5x9 gives 3x5 (got %dx%d)", s.OH, s.OW);
   s = ddpm_conv2d_make(1, 1, 2, 2, 1, 3, 1, 0, 0, 0, 0);
   CHECK(s.OH == 0 && s.OW == 0, "kernel larger than the image gives no output");
   s = ddpm_conv2d_make(1, 1, 4, 4, 1, 1, 1, 0, 0, 0, 0);
   CHECK(ddpm_conv2d_scratch_floats(&s) == 0, "1x1 stride 1 needs no scratch");
}

/* forward_epi = forward + per-image bias + residual; add == out accumulates;
   backward_ex with din_accumulate == 0 = backward into zeros. */
static void test_variants(const conv_case *cc, unsigned seed, int use_ws)
{
   bufs B = bufs_new(cc, seed);
   /* with a work space the products go through the runtime's GEMM */
   size_t per = ddpm_conv2d_gemm_work_floats(&B.s);
   float *wbuf = alloc_floats(per * 3 + 1);
   ddpm_gemm_ws wsv = { wbuf, per, 3, 0 };
   const ddpm_gemm_ws *ws = use_ws ? &wsv : NULL;
   const int N = cc->N, OC = cc->OC;
   const size_t ohw = (size_t)B.s.OH * B.s.OW;
   float *bnc = alloc_floats((size_t)N * OC), *res = alloc_floats(B.nout);
   float *got = alloc_floats(B.nout), *want = alloc_floats(B.nout);
   check_fill(bnc, (size_t)N * OC, seed + 20);
   check_fill(res, B.nout, seed + 21);
   forward(&B, B.b);
   for (int n = 0; n < N; n++)
      for (int o = 0; o < OC; o++)
         for (size_t p = 0; p < ohw; p++) {
            size_t i = ((size_t)n * OC + o) * ohw + p;
            want[i] = B.out[i] + bnc[n * OC + o] + res[i];
         }
   fill_nan(got, B.nout); fill_nan(B.scratch, B.nscratch);
   ddpm_conv_epi e = { B.b, bnc, res };
   ddpm_conv2d_forward_epi(got, B.scratch, B.in, B.w, &e, &B.s, ws);
   printf("# %s variants%s\n", cc->name, use_ws ? " (runtime GEMM)" : "");
   CHECK_CLOSE(got, want, B.nout, 1e-5, "%s: forward + per-image bias + residual", cc->name);
   memcpy(got, res, B.nout * sizeof *got);
   ddpm_conv_epi ea = { B.b, bnc, got };
   fill_nan(B.scratch, B.nscratch);
   ddpm_conv2d_forward_epi(got, B.scratch, B.in, B.w, &ea, &B.s, ws);
   CHECK_CLOSE(got, want, B.nout, 1e-5, "%s: forward accumulating into out", cc->name);
   /* overwrite */
   memset(B.din, 0, B.nin * sizeof *B.din);
   fill_nan(B.scratch, B.nscratch);
   ddpm_conv2d_backward(B.din, NULL, NULL, B.scratch, B.r, B.in, B.w, &B.s);
   float *d2 = alloc_floats(B.nin);
   fill_nan(d2, B.nin);
   fill_nan(B.scratch, B.nscratch);
   ddpm_conv2d_backward_ex(d2, 0, NULL, NULL, B.scratch, B.r, B.in, B.w, &B.s, ws);
   CHECK_CLOSE(d2, B.din, B.nin, 1e-5, "%s: backward overwrites din", cc->name);
   /* and the weight gradient through the same path */
   float *dw2 = alloc_floats(B.nw);
   memset(B.dw, 0, B.nw * sizeof *B.dw);
   memset(dw2, 0, B.nw * sizeof *dw2);
   ddpm_conv2d_backward(NULL, B.dw, NULL, B.scratch, B.r, B.in, B.w, &B.s);
   ddpm_conv2d_backward_ex(NULL, 0, dw2, NULL, B.scratch, B.r, B.in, B.w, &B.s, ws);
   CHECK_CLOSE(dw2, B.dw, B.nw, 1e-5, "%s: weight gradient with the work space", cc->name);
   free(dw2);
   free(d2); free(bnc); free(res); free(got); free(want); free(wbuf);
   bufs_free(&B);
}

int main(void)
{
   /* name N C H W OC K stride pad_t pad_l pad_b pad_r bias */
   static const conv_case cases[] = {
      { "3x3 pad 1",                   1, 3, 6, 6, 4, 3, 1, 1, 1, 1, 1, 1 },
      { "3x3 stride 2 official pad",   2, 3, 8, 8, 5, 3, 2, 0, 0, 1, 1, 1 },
      { "1x1",                         2, 5, 4, 3, 6, 1, 1, 0, 0, 0, 0, 1 },
      { "1x1 no bias",                 3, 4, 3, 5, 2, 1, 1, 0, 0, 0, 0, 0 },
      { "batch 3, H != W, C != OC",    3, 4, 5, 9, 7, 3, 1, 1, 1, 1, 1, 1 },
      { "3x3 stride 2 pad 1, 7x6",     2, 3, 7, 6, 4, 3, 2, 1, 1, 1, 1, 1 },
      { "5x5 pad 2 no bias",           2, 2, 6, 7, 3, 5, 1, 2, 2, 2, 2, 0 },
      { "1x1 stride 2",                2, 3, 6, 5, 4, 1, 2, 0, 0, 0, 0, 1 },
      { "1x1 pad bottom (not pointwise)", 2, 3, 4, 4, 2, 1, 1, 0, 0, 1, 0, 1 },
      /* 40x40 = 1600 output pixels: CONV_CHUNK_PIXELS 4096 puts 2 images in a
         chunk, so 5 images run as chunks of 2, 2, 1 */
      { "chunks 2+2+1, 40x40",         5, 4, 40, 40, 4, 3, 1, 1, 1, 1, 1, 1 },
      { "chunks 3+1, stride 2, 64x80", 4, 3, 64, 80, 4, 3, 2, 0, 0, 1, 1, 1 },
      /* the 4x4 level's im2col (a masked permutation per tap on AVX-512) */
      { "3x3 pad 1 at 4x4, 3 images",  3, 5, 4, 4, 6, 3, 1, 1, 1, 1, 1, 1 },
      /* 6 images of 16x16 outputs on 2 threads: chunks of one image each,
         every thread its own (conv.c's thread_chunk) */
      { "stride 2, a chunk a thread",  6, 3, 32, 32, 5, 3, 2, 0, 0, 1, 1, 1 },
      /* 3x3 "same" with 3 or fewer channels on a side: direct (conv_thin.c;
         case 0 too): 37 columns (two passes of 32), 28x28 into one channel,
         a 1x2 image */
      { "thin 1 -> 9, 5x37",           2, 1, 5, 37, 9, 3, 1, 1, 1, 1, 1, 1 },
      { "thin 9 -> 1, 28x28",          3, 9, 28, 28, 1, 3, 1, 1, 1, 1, 1, 1 },
      { "thin 6 -> 3, 1x2",            2, 6, 1, 2, 3, 3, 1, 1, 1, 1, 1, 0 },
   };
   test_make();
   test_downsample_conformance();
   for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_case(&cases[i], 11 * i + 1);
   test_negative_control();
   for (int w = 0; w < 2; w++) {
      ddpm_set_num_threads(1);
      test_variants(&cases[0], 101, w);   /* one image */
      test_variants(&cases[1], 102, w);   /* stride 2, two images per chunk */
      test_variants(&cases[2], 103, w);   /* pointwise */
      test_variants(&cases[9], 104, w);   /* chunks 2 + 2 + 1 */
      ddpm_set_num_threads(2);
      test_variants(&cases[3], 105, w);   /* pointwise, images in parallel */
      static const conv_case big = { "pointwise 48->40 at 16x16", 3, 48, 16, 16, 40, 1, 1, 0, 0, 0, 0, 1 };
      test_variants(&big, 106, w);        /* big enough for the runtime GEMM */
      test_variants(&cases[12], 107, w);  /* a chunk per thread */
      test_variants(&cases[14], 108, w);  /* thin, images and channels in parallel */
   }
   return check_done();
}
