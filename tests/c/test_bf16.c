/*
 * test_bf16.c — the bfloat16 precision against float32: every 3x3 layer
 * shape of the CIFAR-10 U-Net (and edge-tile shapes of Fashion-MNIST's)
 * through wino_bf16.c against winograd.c's float32 forward and input
 * gradient (and the weight gradient's bfloat16 products against its float32
 * ones), the whole CIFAR-10 network's output and one training step's
 * gradients in both precisions, that the filter cache follows every way of
 * changing the weights and makes nothing again when they stay, that a
 * backward runs with its forward's precision, and the error a CPU without
 * AVX512-BF16 gives.
 *
 * Bounds (relative L2 error, ||bf16 - f32|| / ||f32||): 3.5e-2 per layer,
 * forward, input gradient and weight gradient alike (the input gradient is the same Winograd
 * forward over dout); 1e-1 for the whole network's output, 1.5e-1 for a
 * training step's gradients (their errors add up through every layer of
 * the forward and back again). bfloat16 keeps 8 significant bits, so each
 * product is off by up to 2^-9 relative per operand; F(4x4, 3x3)'s
 * transforms (entries up to 5 and 8) amplify it to 2-3e-2. Measured here:
 * see the printed values (# lines).
 */
#include "check.h"
#include "ddpm.h"
#include "bf16.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define LAYER_BOUND 3.5e-2
#define NET_BOUND   1e-1
#define DX_BOUND    3.5e-2   /* the same Winograd forward, over dout */
#define GRAD_BOUND  1.5e-1   /* a whole training step's gradients (measured 8.5e-2, 9.5e-2) */

static double rel_l2(const float *a, const float *b, size_t n)
{
   double num = 0, den = 0;
   for (size_t i = 0; i < n; i++) {
      double d = (double)a[i] - b[i];
      num += d * d;
      den += (double)b[i] * b[i];
   }
   return sqrt(num / (den > 0 ? den : 1));
}

static void fill(float *p, size_t n, uint64_t seed, float scale)
{
   for (size_t i = 0; i < n; i++) p[i] = (2.0f * ddpm_rng_uniform_at(seed, i) - 1.0f) * scale;
}

/* One layer: N x I x H x W -> O, with bias, per-image bias and a residual. */
static double layer(int N, int I, int O, int H, int W)
{
   const size_t nin = (size_t)N * I * H * W, nout = (size_t)N * O * H * W, nw = (size_t)O * I * 9;
   const int threads = omp_get_max_threads();   /* the scratch is per thread */
   size_t s32 = ddpm_wino_scratch_floats(N, I, O, H, W, 0, threads);
   size_t s16 = ddpm_wino_bf16_scratch_floats(N, I, O, H, W, threads);
   float *in = malloc(nin * 4), *w = malloc(nw * 4), *bias = malloc(O * 4), *bnc = malloc((size_t)N * O * 4);
   float *add = malloc(nout * 4), *ref = malloc(nout * 4), *got = malloc(nout * 4);
   float *sc = malloc((s32 > s16 ? s32 : s16) * 4);
   uint32_t *U = malloc(ddpm_wino_bf16_filter_words(O, I) * 4);
   fill(in, nin, 1, 1.0f);
   fill(w, nw, 2, sqrtf(3.0f / (9.0f * I)));
   fill(bias, O, 3, 0.1f);
   fill(bnc, (size_t)N * O, 4, 0.1f);
   fill(add, nout, 5, 0.5f);
   ddpm_conv_epi e = { bias, bnc, add };
   ddpm_wino_forward(ref, sc, s32, in, w, &e, N, I, H, W, O);
   ddpm_wino_bf16_filters(U, w, O, I);
   memset(got, 0xff, nout * 4);   /* NaN: every output must be written */
   ddpm_wino_bf16_forward(got, sc, in, U, &e, N, I, H, W, O);
   /* training's pass, filters made within it: the same bits */
   float *sw = malloc(ddpm_wino_bf16_scratch_floats_w(N, I, O, H, W, threads) * 4);
   float *got_w = malloc(nout * 4);
   ddpm_wino_bf16_forward_w(got_w, sw, in, w, 0, &e, N, I, H, W, O);
   CHECK(!memcmp(got_w, got, nout * 4), "%d->%d at %dx%d: filters made within the pass, the same bits",
         I, O, H, W);
   free(sw); free(got_w);
   /* the convolution alone, without the residual's scale hiding its error */
   for (size_t i = 0; i < nout; i++) { ref[i] -= add[i]; got[i] -= add[i]; }
   double r = rel_l2(got, ref, nout);
   free(in); free(w); free(bias); free(bnc); free(add); free(ref); free(got); free(sc); free(U);
   return r;
}

static void test_layers(void)
{
   /* CIFAR-10 (batch 2): 128, 256 channels at 32..4; the up path's concats */
   static const int shapes[][5] = {
      {2, 128, 128, 32, 32}, {2, 128, 256, 16, 16}, {2, 256, 256, 16, 16}, {2, 256, 256, 8, 8},
      {2, 256, 256, 4, 4}, {2, 512, 256, 4, 4}, {2, 384, 256, 16, 16}, {2, 256, 128, 32, 32},
      {2, 128, 3, 32, 32},
      /* Fashion-MNIST: 28, 14, 7 (partial tiles and pairs), odd batch */
      {3, 32, 32, 28, 28}, {3, 64, 64, 14, 14}, {3, 64, 64, 7, 7}, {1, 2, 5, 6, 10},
   };
   double worst = 0;
   for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
      const int *s = shapes[i];
      double r = layer(s[0], s[1], s[2], s[3], s[4]);
      printf("# layer N=%d %d->%d %dx%d: relative L2 error %.3e\n", s[0], s[1], s[2], s[3], s[4], r);
      CHECK(r < LAYER_BOUND, "bf16 3x3 layer %d->%d at %dx%d within %.1e of float32 (%.2e)",
            s[1], s[2], s[3], s[4], LAYER_BOUND, r);
      if (r > worst) worst = r;
   }
   printf("# worst layer: %.3e\n", worst);
}

/* The input gradient of one layer N x I x H x W -> O in bfloat16 against
   winograd.c's float32 one (overwriting, then accumulating into din); the
   turned filters against the forward's transform of explicitly turned
   weights, bit for bit. */
static double layer_dx(int N, int I, int O, int H, int W)
{
   const size_t nin = (size_t)N * I * H * W, nout = (size_t)N * O * H * W, nw = (size_t)O * I * 9;
   const int threads = omp_get_max_threads();
   size_t s32 = ddpm_wino_scratch_floats(N, I, O, H, W, 1, threads);
   size_t s16 = ddpm_wino_bf16_scratch_floats(N, O, I, H, W, threads);
   float *dout = malloc(nout * 4), *w = malloc(nw * 4), *wt = malloc(nw * 4);
   float *ref = malloc(nin * 4), *got = malloc(nin * 4), *base = malloc(nin * 4);
   float *sc = malloc((s32 > s16 ? s32 : s16) * 4);
   const size_t nu = ddpm_wino_bf16_filter_words(I, O);
   uint32_t *U = malloc(nu * 4), *Ut = malloc(nu * 4);
   fill(dout, nout, 11, 1.0f);
   fill(w, nw, 12, sqrtf(3.0f / (9.0f * O)));
   fill(base, nin, 13, 0.5f);
   for (int o = 0; o < O; o++)
      for (int i = 0; i < I; i++)
         for (int k = 0; k < 9; k++) wt[((size_t)i * O + o) * 9 + k] = w[((size_t)o * I + i) * 9 + 8 - k];
   ddpm_wino_bf16_filters_dx(U, w, O, I);
   ddpm_wino_bf16_filters(Ut, wt, I, O);
   CHECK(!memcmp(U, Ut, nu * 4), "turned filters %d->%d: the same words as the forward's of turned weights",
         I, O);
   ddpm_wino_backward_data(ref, 0, sc, s32, dout, w, N, I, H, W, O);
   memset(got, 0xff, nin * 4);
   ddpm_wino_bf16_forward(got, sc, dout, U, NULL, N, O, H, W, I);
   float *sw = malloc(ddpm_wino_bf16_scratch_floats_w(N, O, I, H, W, threads) * 4);
   float *got_w = malloc(nin * 4);
   ddpm_wino_bf16_forward_w(got_w, sw, dout, w, 1, NULL, N, O, H, W, I);
   CHECK(!memcmp(got_w, got, nin * 4), "input gradient %d->%d at %dx%d: turned filters made within "
         "the pass, the same bits", I, O, H, W);
   free(sw); free(got_w);
   double r = rel_l2(got, ref, nin);
   /* accumulating: din = base + dX */
   memcpy(ref, base, nin * 4);
   memcpy(got, base, nin * 4);
   ddpm_wino_backward_data(ref, 1, sc, s32, dout, w, N, I, H, W, O);
   ddpm_conv_epi e = { NULL, NULL, got };
   ddpm_wino_bf16_forward(got, sc, dout, U, &e, N, O, H, W, I);
   for (size_t i = 0; i < nin; i++) { ref[i] -= base[i]; got[i] -= base[i]; }
   double ra = rel_l2(got, ref, nin);
   free(dout); free(w); free(wt); free(ref); free(got); free(base); free(sc); free(U); free(Ut);
   return r > ra ? r : ra;
}

static void test_dx_layers(void)
{
   /* N, I (the layer's inputs: dX's outputs), O (its outputs: dX's summed
      channels, even), H, W */
   static const int shapes[][5] = {
      {2, 128, 128, 32, 32}, {2, 128, 256, 16, 16}, {2, 256, 256, 8, 8}, {2, 512, 256, 4, 4},
      {2, 384, 256, 16, 16}, {2, 3, 128, 32, 32},
      {3, 32, 32, 28, 28}, {3, 64, 64, 14, 14}, {3, 96, 64, 7, 7}, {1, 5, 2, 6, 10},
   };
   double worst = 0;
   for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
      const int *s = shapes[i];
      double r = layer_dx(s[0], s[1], s[2], s[3], s[4]);
      printf("# input gradient N=%d %d->%d %dx%d: relative L2 error %.3e\n", s[0], s[1], s[2], s[3],
             s[4], r);
      CHECK(r < DX_BOUND, "bf16 input gradient of %d->%d at %dx%d within %.1e of float32 (%.2e)",
            s[1], s[2], s[3], s[4], DX_BOUND, r);
      if (r > worst) worst = r;
   }
   printf("# worst input gradient: %.3e\n", worst);
}

/* The CIFAR-10 U-Net with every weight at Glorot scale (the official init
   puts conv2 and the output convolutions near zero, which would hide their
   error), biases and gains perturbed. */
static ddpm_unet *cifar_model(void)
{
   ddpm_unet_config c = ddpm_unet_config_cifar10();
   ddpm_unet *m = ddpm_unet_new(&c, 7);
   if (!m) return NULL;
   float *P = ddpm_unet_params(m);
   for (int i = 0; i < ddpm_unet_num_tensors(m); i++) {
      const ddpm_param *p = ddpm_unet_param(m, i);
      float *w = P + p->offset;
      if (p->ndim == 1) {
         int gain = strstr(p->name, "norm") && strstr(p->name, ".weight") != NULL;
         for (size_t j = 0; j < p->numel; j++)
            w[j] = (gain ? 1.0f : 0.0f) + 0.1f * (2.0f * ddpm_rng_uniform_at(100 + i, j) - 1.0f);
         continue;
      }
      double k = p->ndim == 4 ? (double)(p->shape[2] * p->shape[3]) : 1.0;
      double lim = sqrt(6.0 / (k * (double)p->shape[1] + k * (double)p->shape[0]));
      fill(w, p->numel, 100 + i, (float)lim);
   }
   return m;
}

/* The weight gradient of one layer N x I x H x W -> O with bfloat16 products
   against winograd.c's float32 one (dweight and dbias accumulate onto the
   same starting values; the errors are of the added gradient). */
static double layer_dw(int N, int I, int O, int H, int W, double *rb)
{
   const size_t nin = (size_t)N * I * H * W, nout = (size_t)N * O * H * W, nw = (size_t)O * I * 9;
   const size_t ns = ddpm_wino_scratch_floats(N, I, O, H, W, 1, omp_get_max_threads());
   float *in = malloc(nin * 4), *dout = malloc(nout * 4), *sc = malloc(ns * 4);
   float *w32 = malloc(nw * 4), *w16 = malloc(nw * 4), *b32 = malloc(O * 4), *b16 = malloc(O * 4);
   fill(in, nin, 21, 1.0f);
   fill(dout, nout, 22, 1.0f);
   fill(w32, nw, 23, 0.1f);
   memcpy(w16, w32, nw * 4);
   fill(b32, O, 24, 0.1f);
   memcpy(b16, b32, O * 4);
   ddpm_wino_backward_weight(w32, b32, sc, ns, dout, in, N, I, H, W, O);
   memset(sc, 0xff, ns * 4);
   ddpm_wino_bf16_backward_weight(w16, b16, sc, ns, dout, in, N, I, H, W, O);
   float *base = malloc(nw * 4), *bb = malloc(O * 4);
   fill(base, nw, 23, 0.1f);
   fill(bb, O, 24, 0.1f);
   for (size_t i = 0; i < nw; i++) { w32[i] -= base[i]; w16[i] -= base[i]; }
   for (int o = 0; o < O; o++) { b32[o] -= bb[o]; b16[o] -= bb[o]; }
   const double r = rel_l2(w16, w32, nw);
   *rb = rel_l2(b16, b32, O);
   free(in); free(dout); free(sc); free(w32); free(w16); free(b32); free(b16); free(base); free(bb);
   return r;
}

static void test_dw_layers(void)
{
   /* N, I, O, H, W: chunks shared by the threads (few slots, many
      channels) and chunks of their own (many slots), Fashion-MNIST's edge
      tiles, and odd channel counts */
   static const int shapes[][5] = {
      {2, 128, 128, 32, 32}, {2, 256, 256, 8, 8}, {8, 128, 128, 32, 32}, {2, 128, 3, 32, 32},
      {3, 32, 32, 28, 28}, {16, 64, 64, 7, 7}, {1, 5, 7, 6, 10},
   };
   double worst = 0;
   for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
      const int *s = shapes[i];
      double rb, r = layer_dw(s[0], s[1], s[2], s[3], s[4], &rb);
      printf("# weight gradient N=%d %d->%d %dx%d: relative L2 error %.3e, bias %.3e\n", s[0],
             s[1], s[2], s[3], s[4], r, rb);
      /* above 1e-3: the products were rounded (float32 sums differ by ~1e-7) */
      CHECK(r > 1e-3 && r < LAYER_BOUND,
            "bf16 weight gradient of %d->%d at %dx%d within %.1e of float32, and rounded (%.2e)",
            s[1], s[2], s[3], s[4], LAYER_BOUND, r);
      CHECK(rb < 1e-3, "its bias gradient (dout's transform summed in float32, not rounded) "
            "within 1e-3 (%.2e)", rb);
      if (r > worst) worst = r;
   }
   printf("# worst weight gradient: %.3e\n", worst);
}

static void test_network(void)
{
   ddpm_unet *m = cifar_model();
   CHECK(m != NULL, "CIFAR-10 model");
   if (!m) return;
   ddpm_unet_set_grad_enabled(m, 0);
   const int N = 2;
   const size_t n = (size_t)N * 3 * 32 * 32;
   float *x = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4), t[2] = {10, 700};
   ddpm_rng r;
   ddpm_rng_init(&r, 5);
   ddpm_rng_normal(&r, x, (int64_t)n);
   CHECK(ddpm_unet_forward(m, ref, x, t, N, 32, 32) == DDPM_OK, "float32 forward");
   CHECK(ddpm_unet_set_precision(m, DDPM_BF16) == DDPM_OK, "set_precision bf16");
   CHECK(ddpm_unet_precision(m) == DDPM_BF16, "precision reads bf16");
   CHECK(ddpm_unet_forward(m, got, x, t, N, 32, 32) == DDPM_OK, "bf16 forward");
   double e = rel_l2(got, ref, n);
   printf("# CIFAR-10 U-Net, batch 2: relative L2 error of the output %.3e\n", e);
   CHECK(e < NET_BOUND && e > 0, "whole network within %.0e of float32 (%.2e)", NET_BOUND, e);
   /* weights changed behind the model's back: the cache must follow */
   float *P = ddpm_unet_params(m);
   const ddpm_param *p = ddpm_unet_param(m, ddpm_unet_find_param(m, "conv_out.weight"));
   for (size_t j = 0; j < p->numel; j++) P[p->offset + j] *= -1.0f;
   float *ref2 = malloc(n * 4), *got2 = malloc(n * 4);
   CHECK(ddpm_unet_forward(m, got2, x, t, N, 32, 32) == DDPM_OK, "bf16 forward after a change");
   CHECK(ddpm_unet_set_precision(m, DDPM_FLOAT32) == DDPM_OK, "back to float32");
   CHECK(ddpm_unet_forward(m, ref2, x, t, N, 32, 32) == DDPM_OK, "float32 forward after a change");
   double e2 = rel_l2(got2, ref2, n), moved = rel_l2(ref2, ref, n);
   CHECK(e2 < NET_BOUND && moved > 10 * e2, "changed weights are seen (error %.2e, output moved %.2e)",
         e2, moved);
   /* float32 stays bit for bit what it was */
   CHECK(ddpm_unet_set_precision(m, DDPM_BF16) == DDPM_OK && ddpm_unet_set_precision(m, DDPM_FLOAT32) == DDPM_OK,
         "precision switches");
   for (size_t j = 0; j < p->numel; j++) P[p->offset + j] *= -1.0f;
   float *ref3 = malloc(n * 4);
   ddpm_unet_forward(m, ref3, x, t, N, 32, 32);
   CHECK(!memcmp(ref3, ref, n * 4), "float32 output bit-identical after a bf16 detour");
   CHECK(ddpm_unet_set_bf16_min_channels(m, 1) == DDPM_EINVAL && strstr(ddpm_errmsg(), "at least 2"),
         "min_channels 1 refused (%s)", ddpm_errmsg());
   /* every even-input layer in bf16 (128 and 256 here already: same output) */
   CHECK(ddpm_unet_set_bf16_min_channels(m, 2) == DDPM_OK &&
         ddpm_unet_set_precision(m, DDPM_BF16) == DDPM_OK &&
         ddpm_unet_forward(m, got2, x, t, N, 32, 32) == DDPM_OK && !memcmp(got2, got, n * 4),
         "min_channels 2 on the CIFAR-10 model: the same layers, the same bits");
   free(x); free(ref); free(got); free(ref2); free(got2); free(ref3);
   ddpm_unet_free(m);
}

/* Which writes the filter cache sees: forwards alone never make it again;
   the raw pointer, a write through a tensor view of the parameters, and a
   load each do, and the bf16 output then equals a fresh model's with the
   same weights. */
static void test_cache(void)
{
   ddpm_unet_config c = { .ch = 32, .ch_mult = {1, 2}, .num_levels = 2, .num_res_blocks = 1,
                          .num_attn_res = 0, .dropout = 0, .in_ch = 3, .out_ch = 3,
                          .resolution = 16, .groups = 8, .eps = 1e-6f };
   ddpm_unet *m = ddpm_unet_new(&c, 3), *fresh = ddpm_unet_new(&c, 4);
   CHECK(m && fresh, "small models");
   if (!m || !fresh) return;
   const size_t np = ddpm_unet_num_params(m), n = (size_t)2 * 3 * 16 * 16;
   fill(ddpm_unet_params(m), np, 21, 0.05f);
   ddpm_unet_set_grad_enabled(m, 0);
   ddpm_unet_set_grad_enabled(fresh, 0);
   ddpm_unet_set_bf16_min_channels(m, 2);
   ddpm_unet_set_bf16_min_channels(fresh, 2);
   ddpm_unet_set_precision(m, DDPM_BF16);
   ddpm_unet_set_precision(fresh, DDPM_BF16);
   float *x = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4), t[2] = {3, 600};
   fill(x, n, 22, 1.0f);
   ddpm_unet_forward(m, a, x, t, 2, 16, 16);
   const long r0 = ddpm_unet_bf16_remakes(m);
   for (int i = 0; i < 3; i++) ddpm_unet_forward(m, a, x, t, 2, 16, 16);
   CHECK(r0 == 1 && ddpm_unet_bf16_remakes(m) == 1, "forwards without writes make the filters once (%ld)",
         ddpm_unet_bf16_remakes(m));
   /* same output as a fresh model given the current weights */
#define SAME_AS_FRESH(what)                                                                     \
   do {                                                                                        \
      memcpy(ddpm_unet_params(fresh), ddpm_unet_params(m), np * 4);                            \
      ddpm_unet_forward(m, a, x, t, 2, 16, 16);                                                \
      ddpm_unet_forward(fresh, b, x, t, 2, 16, 16);                                            \
      CHECK(!memcmp(a, b, n * 4), "%s: the bf16 output follows the weights", what);           \
   } while (0)
   const ddpm_param *p = ddpm_unet_param(m, ddpm_unet_find_param(m, "down_blocks.1.resnets.0.conv2.weight"));
   CHECK(p != NULL, "a 64-channel conv");
   float *P = ddpm_unet_params(m);
   P[p->offset + 5] += 0.5f;
   SAME_AS_FRESH("one weight through ddpm_unet_params");
   ddpm_tensor *v = ddpm_unet_flat_tensor(m, DDPM_PARAMS);
   ddpm_tensor_narrow(v, 0, (int64_t)p->offset, 9);
   ddpm_tensor_fill(v, 0.25f);
   SAME_AS_FRESH("a filled view");
   ddpm_tensor_release(v);
   const long before = ddpm_unet_bf16_remakes(m);
   char path[] = "/tmp/ddpm-bf16-cache-XXXXXX";
   int fd = mkstemp(path);
   if (fd >= 0) close(fd);
   ddpm_unet *other = ddpm_unet_new(&c, 9);
   CHECK(other && ddpm_unet_save(other, path) == DDPM_OK, "save another model");
   ddpm_st_file *f = ddpm_st_open(path);
   CHECK(f && ddpm_unet_load_st(m, f, NULL, DDPM_LOAD_STRICT) == DDPM_OK, "load it");
   ddpm_st_close(f);
   unlink(path);
   ddpm_unet_forward(m, a, x, t, 2, 16, 16);
   CHECK(ddpm_unet_bf16_remakes(m) == before + 1, "a load makes the filters again");
   SAME_AS_FRESH("a load");
#undef SAME_AS_FRESH
   free(x); free(a); free(b);
   ddpm_unet_free(other);
   ddpm_unet_free(m);
   ddpm_unet_free(fresh);
}

/* One training step's gradients (forward with activations kept, backward)
   in bfloat16 against float32: the input gradient dx and every parameter's
   gradient (the weight gradients are float32 kernels, but their inputs
   come from bf16 forwards and dX). */
static void test_training_step(void)
{
   ddpm_unet *m = cifar_model();
   CHECK(m != NULL, "CIFAR-10 model (training)");
   if (!m) return;
   const int N = 2;
   const size_t n = (size_t)N * 3 * 32 * 32, np = ddpm_unet_num_params(m);
   float *x = malloc(n * 4), *out = malloc(n * 4), *dout = malloc(n * 4), t[2] = {10, 700};
   float *dx32 = malloc(n * 4), *dx16 = malloc(n * 4), *g32 = malloc(np * 4);
   fill(x, n, 31, 1.0f);
   fill(dout, n, 32, 1.0f);
   ddpm_unet_set_grad_enabled(m, 1);
   int ok = ddpm_unet_forward(m, out, x, t, N, 32, 32) == DDPM_OK;
   ddpm_unet_zero_grad(m);
   ok = ok && ddpm_unet_backward(m, dx32, dout) == DDPM_OK;
   memcpy(g32, ddpm_unet_grads(m), np * 4);
   ok = ok && ddpm_unet_set_precision(m, DDPM_BF16) == DDPM_OK &&
        ddpm_unet_forward(m, out, x, t, N, 32, 32) == DDPM_OK;
   ddpm_unet_zero_grad(m);
   ok = ok && ddpm_unet_backward(m, dx16, dout) == DDPM_OK;
   CHECK(ok, "float32 and bf16 training steps");
   double ex = rel_l2(dx16, dx32, n), eg = rel_l2(ddpm_unet_grads(m), g32, np);
   printf("# CIFAR-10 U-Net training step, batch 2: relative L2 error of dx %.3e, of the "
          "parameter gradients %.3e\n", ex, eg);
   CHECK(ex > 0 && ex < GRAD_BOUND, "bf16 input gradient within %.2g of float32 (%.2e)", GRAD_BOUND, ex);
   CHECK(eg > 0 && eg < GRAD_BOUND, "bf16 parameter gradients within %.2g of float32 (%.2e)", GRAD_BOUND, eg);
   /* a precision change between forward and backward: the backward runs as
      its forward was planned (float32 here), not with N = 0 */
   ddpm_unet_set_precision(m, DDPM_FLOAT32);
   ddpm_unet_forward(m, out, x, t, N, 32, 32);
   ddpm_unet_set_precision(m, DDPM_BF16);
   ddpm_unet_zero_grad(m);
   ok = ddpm_unet_backward(m, dx16, dout) == DDPM_OK;
   CHECK(ok && !memcmp(dx16, dx32, n * 4) && !memcmp(ddpm_unet_grads(m), g32, np * 4),
         "a backward after a precision change gives its forward's precision, bit for bit");
   free(x); free(out); free(dout); free(dx32); free(dx16); free(g32);
   ddpm_unet_free(m);
}

int main(void)
{
   ddpm_unet_config c = ddpm_unet_config_cifar10();
   if (!ddpm_bf16_available()) {
      ddpm_unet *m = ddpm_unet_new(&c, 1);
      int rc = ddpm_unet_set_precision(m, DDPM_BF16);
      CHECK(rc == DDPM_EINVAL && strstr(ddpm_errmsg(), "AVX512-BF16"),
            "no AVX512-BF16: set_precision bf16 fails naming it (%s)", ddpm_errmsg());
      CHECK(ddpm_unet_precision(m) == DDPM_FLOAT32, "and the model stays float32");
      ddpm_unet_free(m);
      printf("# this CPU has no AVX512-BF16 (or DDPM_NO_BF16 is set): kernels not tested\n");
      return check_done();
   }
   test_layers();
   test_dx_layers();
   test_dw_layers();
   test_network();
   test_cache();
   test_training_step();
   return check_done();
}
