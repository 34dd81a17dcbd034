/*
 * test_lenet.c — runtime/lenet.c: the ReLU, 2x2 max-pool and softmax
 * cross-entropy kernels against naive double references and central finite
 * differences; the whole LeNet's forward against a naive double network
 * (direct convolution loops), its parameter gradients against finite
 * differences of that network, chunked inference, a few Adam steps (the loss
 * falls; two runs from one seed are bit-identical), save/load and the error
 * cases.
 */
#include "ddpm.h"
#include "ddpm/lenet.h"
#include "check.h"

#include <unistd.h>

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

/* ------------------------------------------------------------ kernels */

static void check_relu(void)
{
   enum { n = 777 };
   float x[n], y[n], want[n], r[n], dx[n], ndx[n];
   check_fill(x, n, 1);
   check_fill(r, n, 2);
   x[0] = 0.0f; x[1] = -0.0f;
   ddpm_relu_forward(y, x, n);
   for (int i = 0; i < n; i++) want[i] = x[i] > 0 ? x[i] : 0.0f;
   CHECK(memcmp(y, want, sizeof y) == 0, "relu forward = max(x, 0) exactly");
   for (int i = 0; i < n; i++) dx[i] = 0.5f;
   ddpm_relu_backward(dx, r, x, n);
   for (int i = 0; i < n; i++) {
      double h = 1e-4, xp = x[i] + h, xm = x[i] - h;
      double d = x[i] == 0 ? 0 : r[i] * ((xp > 0 ? xp : 0) - (xm > 0 ? xm : 0)) / (2 * h);
      ndx[i] = (float)(0.5 + d);
   }
   CHECK_CLOSE(dx, ndx, n, 1e-6, "relu backward accumulates the finite-difference gradient (0 at x = 0)");
   unsigned long long h0 = check_hash(r, sizeof r) ^ check_hash(x, sizeof x) * 3;
   ddpm_relu_backward(NULL, r, x, n);
   CHECK((check_hash(r, sizeof r) ^ check_hash(x, sizeof x) * 3) == h0,
         "relu backward with din NULL writes nothing (dout and x unchanged)");
   int64_t big = 200003;
   float *bx = falloc(big), *by = falloc(big);
   check_fill(bx, big, 3);
   ddpm_relu_forward(by, bx, big);
   int ok = 1;
   for (int64_t i = 0; i < big; i++) ok &= by[i] == (bx[i] > 0 ? bx[i] : 0.0f);
   CHECK(ok, "relu forward on the parallel path (200003 values)");
   free(bx); free(by);
}

static void ref_pool(double *out, const double *in, int N, int C, int H, int W)
{
   for (int p = 0; p < N * C; p++)
      for (int oy = 0; oy < H / 2; oy++)
         for (int ox = 0; ox < W / 2; ox++) {
            double m = -INFINITY;
            for (int dy = 0; dy < 2; dy++)
               for (int dx = 0; dx < 2; dx++)
                  m = fmax(m, in[(size_t)p * H * W + (2 * oy + dy) * W + 2 * ox + dx]);
            out[(size_t)p * (H / 2) * (W / 2) + oy * (W / 2) + ox] = m;
         }
}

static void check_pool(void)
{
   enum { N = 3, C = 4, H = 10, W = 6, NI = N * C * H * W, NO = NI / 4 };
   float x[NI], y[NO], want[NO], r[NO], dx[NI], ndx[NI];
   double xd[NI], yd[NO], tmp[NO];
   check_fill(x, NI, 4);
   check_fill(r, NO, 5);
   for (int i = 0; i < NI; i++) xd[i] = x[i];
   ddpm_maxpool2x2_forward(y, x, N, C, H, W);
   ref_pool(yd, xd, N, C, H, W);
   for (int i = 0; i < NO; i++) want[i] = (float)yd[i];
   CHECK(memcmp(y, want, sizeof y) == 0, "maxpool forward equals the naive window maximum");
   for (int i = 0; i < NI; i++) dx[i] = 1.0f;
   ddpm_maxpool2x2_backward(dx, r, x, N, C, H, W);
   for (int i = 0; i < NI; i++) {
      double h = 1e-5, x0 = xd[i], lp = 0, lm = 0;
      xd[i] = x0 + h; ref_pool(tmp, xd, N, C, H, W);
      for (int k = 0; k < NO; k++) lp += tmp[k] * r[k];
      xd[i] = x0 - h; ref_pool(tmp, xd, N, C, H, W);
      for (int k = 0; k < NO; k++) lm += tmp[k] * r[k];
      xd[i] = x0;
      ndx[i] = (float)(1.0 + (lp - lm) / (2 * h));
   }
   CHECK_CLOSE(dx, ndx, NI, 1e-5, "maxpool backward accumulates the finite-difference gradient");
   /* Ties: the first maximum in row-major order takes the gradient. */
   float t[4] = {2, 2, 2, 2}, g = 1.0f, dt[4] = {0};
   ddpm_maxpool2x2_backward(dt, &g, t, 1, 1, 2, 2);
   CHECK(dt[0] == 1 && dt[1] == 0 && dt[2] == 0 && dt[3] == 0, "a tied window routes to its first element");
   float t2[4] = {0, 1, 3, 3}, dt2[4] = {0};
   ddpm_maxpool2x2_backward(dt2, &g, t2, 1, 1, 2, 2);
   CHECK(dt2[2] == 1 && dt2[3] == 0, "a tie on the bottom row routes to its left element");
}

static double ref_xent(const double *z, const int *labels, int N, int K)
{
   double L = 0;
   for (int n = 0; n < N; n++) {
      double s = 0;
      for (int k = 0; k < K; k++) s += exp(z[n * K + k]);
      L += log(s) - z[n * K + labels[n]];
   }
   return L / N;
}

static void check_xent(void)
{
   enum { N = 6, K = 10 };
   float z[N * K], g[N * K], ng[N * K];
   double zd[N * K];
   int labels[N] = {0, 9, 3, 3, 7, 1}, correct = -1;
   check_fill(z, N * K, 6);
   for (int i = 0; i < N * K; i++) zd[i] = z[i] *= 4.0f;
   z[2 * K + 3] = 10.0f; zd[2 * K + 3] = 10.0;   /* row 2 predicts its label 3 */
   double L = ddpm_softmax_xent(g, &correct, z, labels, N, K);
   double want = ref_xent(zd, labels, N, K);
   printf("# xent %.12g, naive %.12g, correct %d\n", L, want, correct);
   CHECK(fabs(L - want) < 1e-12, "softmax cross-entropy matches log-sum-exp minus the label's logit");
   int right = 0;
   for (int n = 0; n < N; n++) {
      int b = 0;
      for (int k = 1; k < K; k++) if (z[n * K + k] > z[n * K + b]) b = k;
      right += b == labels[n];
   }
   CHECK(correct == right && right >= 1, "correct counts the rows whose arg max is the label (%d)", right);
   for (int i = 0; i < N * K; i++) {
      double h = 1e-5, z0 = zd[i];
      zd[i] = z0 + h; double lp = ref_xent(zd, labels, N, K);
      zd[i] = z0 - h; double lm = ref_xent(zd, labels, N, K);
      zd[i] = z0;
      ng[i] = (float)((lp - lm) / (2 * h));
   }
   CHECK_CLOSE(g, ng, N * K, 1e-5, "xent gradient (softmax - onehot)/N matches finite differences");
   float big[K] = {1000, -1000, 0, 0, 0, 0, 0, 0, 0, 0};
   int l1 = 1;
   double Lb = ddpm_softmax_xent(NULL, NULL, big, &l1, 1, K);
   CHECK(isfinite(Lb) && fabs(Lb - 2000) < 1e-9, "large logits stay finite (max subtracted): %g", Lb);
}

/* ------------------------------------------------------------ the network */

/* Naive double LeNet; p points at the flat parameters in the model's order. */
typedef struct { double *x; int N; double *p; } net;

static void conv_ref(double *out, const double *in, const double *w, const double *b,
                     int N, int C, int H, int W, int OC, int K, int pad)
{
   int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1;
   for (int n = 0; n < N; n++)
      for (int oc = 0; oc < OC; oc++)
         for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
               double s = b[oc];
               for (int c = 0; c < C; c++)
                  for (int ky = 0; ky < K; ky++)
                     for (int kx = 0; kx < K; kx++) {
                        int iy = oy - pad + ky, ix = ox - pad + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        s += w[((oc * C + c) * K + ky) * K + kx] * in[((size_t)(n * C + c) * H + iy) * W + ix];
                     }
               out[((size_t)(n * OC + oc) * OH + oy) * OW + ox] = s;
            }
}

static void relu_ref(double *x, size_t n) { for (size_t i = 0; i < n; i++) if (x[i] < 0) x[i] = 0; }

static void fc_ref(double *out, const double *in, const double *w, const double *b, int N, int I, int O)
{
   for (int n = 0; n < N; n++)
      for (int o = 0; o < O; o++) {
         double s = b[o];
         for (int i = 0; i < I; i++) s += w[o * I + i] * in[n * I + i];
         out[n * O + o] = s;
      }
}

/* logits [N,10] and features [N,84] (either may be NULL) of the naive net. */
static void net_forward(const net *m, double *logits, double *features)
{
   int N = m->N;
   const double *p = m->p;
   const double *c1w = p, *c1b = c1w + 150, *c2w = c1b + 6, *c2b = c2w + 2400, *f1w = c2b + 16,
                *f1b = f1w + 48000, *f2w = f1b + 120, *f2b = f2w + 10080, *f3w = f2b + 84, *f3b = f3w + 840;
   double *a1 = dalloc((size_t)N * 4704), *p1 = dalloc((size_t)N * 1176), *a2 = dalloc((size_t)N * 1600);
   double *p2 = dalloc((size_t)N * 400), *h1 = dalloc((size_t)N * 120), *f = dalloc((size_t)N * 84);
   double *lg = dalloc((size_t)N * 10);
   conv_ref(a1, m->x, c1w, c1b, N, 1, 28, 28, 6, 5, 2);
   relu_ref(a1, (size_t)N * 4704);
   ref_pool(p1, a1, N, 6, 28, 28);
   conv_ref(a2, p1, c2w, c2b, N, 6, 14, 14, 16, 5, 0);
   relu_ref(a2, (size_t)N * 1600);
   ref_pool(p2, a2, N, 16, 10, 10);
   fc_ref(h1, p2, f1w, f1b, N, 400, 120);
   relu_ref(h1, (size_t)N * 120);
   fc_ref(f, h1, f2w, f2b, N, 120, 84);
   if (features) memcpy(features, f, (size_t)N * 84 * sizeof *f);
   relu_ref(f, (size_t)N * 84);
   fc_ref(lg, f, f3w, f3b, N, 84, 10);
   if (logits) memcpy(logits, lg, (size_t)N * 10 * sizeof *lg);
   free(a1); free(p1); free(a2); free(p2); free(h1); free(f); free(lg);
}

/* Images that look like data: smooth blobs in [-1, 1]. */
static void images(float *x, int N, unsigned seed)
{
   float c[8];
   for (int n = 0; n < N; n++) {
      check_fill(c, 8, seed + n);
      for (int y = 0; y < 28; y++)
         for (int xx = 0; xx < 28; xx++) {
            double u = (xx - 14 - 6 * c[0]) / (5 + 3 * c[1]), v = (y - 14 - 6 * c[2]) / (5 + 3 * c[3]);
            double s = exp(-(u * u + v * v)) * (1 + 0.3 * sin(c[4] * 2 * xx)) + 0.2 * c[5] * cos(0.3 * y * c[6]);
            x[(size_t)n * 784 + y * 28 + xx] = (float)(2 * fmin(1, fmax(0, s)) - 1);
         }
   }
}

static void check_model_basics(void)
{
   ddpm_lenet *m = ddpm_lenet_new(7), *m2 = ddpm_lenet_new(7), *m3 = ddpm_lenet_new(8);
   CHECK(m && m2 && m3, "lenet_new");
   CHECK(ddpm_lenet_num_params(m) == 61706 && ddpm_lenet_num_tensors(m) == 10,
         "61,706 parameters in 10 tensors (%zu)", ddpm_lenet_num_params(m));
   const char *names[10] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
                            "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
   int ok = 1;
   size_t off = 0;
   for (int i = 0; i < 10; i++) {
      const ddpm_param *p = ddpm_lenet_param(m, i);
      ok &= strcmp(p->name, names[i]) == 0 && p->offset == off && ddpm_lenet_find_param(m, names[i]) == i;
      off += p->numel;
   }
   CHECK(ok && ddpm_lenet_param(m, 10) == NULL && ddpm_lenet_find_param(m, "fc4.bias") < 0,
         "names, offsets and lookups");
   size_t n = ddpm_lenet_num_params(m);
   CHECK(memcmp(ddpm_lenet_params(m), ddpm_lenet_params(m2), n * sizeof(float)) == 0,
         "the same seed gives the same initial bits");
   CHECK(memcmp(ddpm_lenet_params(m), ddpm_lenet_params(m3), n * sizeof(float)) != 0,
         "another seed gives other weights");
   /* PyTorch's default: every value within 1/sqrt(fan_in) of zero, spread. */
   int fan[10] = {25, 25, 150, 150, 400, 400, 120, 120, 84, 84};
   ok = 1;
   for (int i = 0; i < 10; i++) {
      const ddpm_param *p = ddpm_lenet_param(m, i);
      const float *w = ddpm_lenet_params(m) + p->offset;
      double b = 1 / sqrt(fan[i]), mx = 0;
      for (size_t k = 0; k < p->numel; k++) mx = fmax(mx, fabs(w[k]));
      ok &= mx <= b && mx > 0.5 * b;
   }
   CHECK(ok, "init: |w| <= 1/sqrt(fan_in) and reaching past half of it, per tensor");
   ddpm_tensor *t = ddpm_lenet_param_tensor(m, 2, DDPM_PARAMS);
   CHECK(t && t->ndim == 4 && t->size[0] == 16 && t->size[1] == 6 &&
         ddpm_tensor_data(t) == ddpm_lenet_params(m) + 156, "param_tensor views conv2.weight [16,6,5,5]");
   ddpm_tensor *fl = ddpm_lenet_flat_tensor(m, DDPM_GRADS);
   ddpm_lenet_free(m);
   CHECK(fl && ddpm_tensor_numel(fl) == 61706 && t, "views outlive the model");
   ddpm_tensor_release(t); ddpm_tensor_release(fl);
   CHECK(ddpm_lenet_param_tensor(m2, 11, DDPM_PARAMS) == NULL, "bad index: %s", ddpm_errmsg());
   ddpm_lenet_free(m2); ddpm_lenet_free(m3); ddpm_lenet_free(NULL);
}

static void check_forward_and_grad(void)
{
   enum { N = 3 };
   ddpm_lenet *m = ddpm_lenet_new(11);
   size_t np = ddpm_lenet_num_params(m);
   float x[N * 784], lg[N * 10], ft[N * 84], lg2[N * 10], ft2[N * 84];
   images(x, N, 100);
   net ref = {dalloc(N * 784), N, dalloc(np)};
   for (int i = 0; i < N * 784; i++) ref.x[i] = x[i];
   for (size_t i = 0; i < np; i++) ref.p[i] = ddpm_lenet_params(m)[i];
   double lgd[N * 10], ftd[N * 84];
   float lgw[N * 10], ftw[N * 84];
   CHECK(ddpm_lenet_forward(m, lg, ft, x, N) == DDPM_OK, "forward N = 3");
   net_forward(&ref, lgd, ftd);
   for (int i = 0; i < N * 10; i++) lgw[i] = (float)lgd[i];
   for (int i = 0; i < N * 84; i++) ftw[i] = (float)ftd[i];
   CHECK_CLOSE(lg, lgw, N * 10, 3e-4, "logits match the naive double network");
   CHECK_CLOSE(ft, ftw, N * 84, 3e-4, "84-d features (fc2, before its ReLU) match");
   ddpm_lenet_predict(m, lg2, ft2, x, N);
   CHECK(memcmp(lg, lg2, sizeof lg) == 0 && memcmp(ft, ft2, sizeof ft) == 0, "predict = forward, bit for bit");

   /* Gradients of the mean cross-entropy: every bias and a spread of weights
      against central differences of the double network. */
   int labels[N] = {3, 0, 7};
   ddpm_lenet_zero_grad(m);
   double loss;
   int correct;
   CHECK(ddpm_lenet_train_step(m, &loss, &correct, x, labels, N) == DDPM_OK, "train_step");
   double lref[N * 10];
   net_forward(&ref, lref, NULL);
   double want_loss = ref_xent(lref, labels, N, 10);
   CHECK(fabs(loss - want_loss) < 1e-5, "train_step's loss %.8g = naive %.8g", loss, want_loss);
   const float *G = ddpm_lenet_grads(m);
   enum { MAXS = 700 };
   float got[MAXS], num[MAXS];
   int ns = 0;
   for (int t = 0; t < 10; t++) {
      const ddpm_param *p = ddpm_lenet_param(m, t);
      size_t step = p->ndim == 1 ? 1 : p->numel / 47 + 1;
      for (size_t k = (t * 7) % step; k < p->numel && ns < MAXS; k += step) {
         size_t i = p->offset + k;
         double h = 1e-5, p0 = ref.p[i];
         ref.p[i] = p0 + h; net_forward(&ref, lref, NULL); double lp = ref_xent(lref, labels, N, 10);
         ref.p[i] = p0 - h; net_forward(&ref, lref, NULL); double lm = ref_xent(lref, labels, N, 10);
         ref.p[i] = p0;
         got[ns] = G[i];
         num[ns++] = (float)((lp - lm) / (2 * h));
      }
   }
   printf("# %d parameters checked\n", ns);
   CHECK_CLOSE(got, num, (size_t)ns, 2e-3, "parameter gradients match finite differences of the double net");
   /* Accumulation: a second backward doubles every gradient. */
   float *g1 = falloc(np);
   memcpy(g1, G, np * sizeof *g1);
   ddpm_lenet_train_step(m, NULL, NULL, x, labels, N);
   for (size_t i = 0; i < np; i++) g1[i] *= 2;
   CHECK_CLOSE(G, g1, np, 1e-5, "backward accumulates into the gradients (a second step doubles them)");
   free(g1); free(ref.x); free(ref.p);

   /* Chunked inference over more than one chunk equals per-image results. */
   int NB = DDPM_LENET_CHUNK + 37;
   float *xb = falloc((size_t)NB * 784), *fb = falloc((size_t)NB * 84), *lb = falloc((size_t)NB * 10);
   images(xb, NB, 500);
   CHECK(ddpm_lenet_predict(m, lb, fb, xb, NB) == DDPM_OK, "predict %d images (two chunks)", NB);
   float one[84], onel[10];
   int idx[3] = {0, DDPM_LENET_CHUNK, NB - 1};
   double worst = 0;
   for (int k = 0; k < 3; k++) {
      ddpm_lenet_forward(m, onel, one, xb + (size_t)idx[k] * 784, 1);
      for (int j = 0; j < 84; j++) worst = fmax(worst, fabs(one[j] - fb[(size_t)idx[k] * 84 + j]));
      for (int j = 0; j < 10; j++) worst = fmax(worst, fabs(onel[j] - lb[(size_t)idx[k] * 10 + j]));
   }
   printf("# chunked vs one image at a time: max abs diff %.3g\n", worst);
   CHECK(worst < 1e-5, "an image's features do not depend on its chunk");
   CHECK(ddpm_lenet_backward(m, lb) == DDPM_OK, "backward after a training forward");
   ddpm_lenet_predict(m, NULL, fb, xb, 2);
   CHECK(ddpm_lenet_backward(m, lb) == DDPM_EINVAL, "backward after predict is an error: %s", ddpm_errmsg());
   free(xb); free(fb); free(lb);
   ddpm_lenet_free(m);
}

/* k Adam steps on a fixed batch; returns the last loss. */
static double train(ddpm_lenet *m, ddpm_adam *a, const float *x, const int *labels, int N, int k, double *first)
{
   double loss = 0;
   for (int s = 0; s < k; s++) {
      ddpm_lenet_zero_grad(m);
      ddpm_lenet_train_step(m, &loss, NULL, x, labels, N);
      if (s == 0 && first) *first = loss;
      ddpm_adam_step(a, ddpm_lenet_params(m), ddpm_lenet_grads(m), 1e-3);
   }
   return loss;
}

static void check_training(void)
{
   enum { N = 32 };
   float *x = falloc(N * 784);
   int labels[N];
   images(x, N, 900);
   for (int i = 0; i < N; i++) labels[i] = i % 10;
   ddpm_lenet *m1 = ddpm_lenet_new(3), *m2 = ddpm_lenet_new(3);
   size_t np = ddpm_lenet_num_params(m1);
   ddpm_adam *a1 = ddpm_adam_new((int64_t)np, 0.9, 0.999, 1e-8, 0), *a2 = ddpm_adam_new((int64_t)np, 0.9, 0.999, 1e-8, 0);
   double first, last = train(m1, a1, x, labels, N, 30, &first);
   train(m2, a2, x, labels, N, 30, NULL);
   printf("# loss %.4f -> %.4f after 30 Adam steps\n", first, last);
   CHECK(last < 0.7 * first, "Adam on a fixed batch: the loss falls by 30%% or more");
   CHECK(memcmp(ddpm_lenet_params(m1), ddpm_lenet_params(m2), np * sizeof(float)) == 0,
         "two runs from seed 3 give bit-identical weights");

   int bad[2] = {1, 10};
   CHECK(ddpm_lenet_train_step(m1, NULL, NULL, x, bad, 2) == DDPM_EINVAL, "label 10: %s", ddpm_errmsg());
   CHECK(ddpm_lenet_forward(m1, NULL, NULL, x, 0) == DDPM_EINVAL, "N = 0: %s", ddpm_errmsg());
   CHECK(ddpm_lenet_predict(m1, NULL, NULL, x, 0) == DDPM_EINVAL, "predict of 0 images is an error");
   ddpm_lenet *fresh = ddpm_lenet_new(1);
   CHECK(ddpm_lenet_backward(fresh, x) == DDPM_EINVAL, "backward before any forward: %s", ddpm_errmsg());

   /* Save and load. */
   char dir[] = "/tmp/ddpm_lenet_XXXXXX";
   CHECK(mkdtemp(dir) != NULL, "temp dir");
   char path[128], bad_path[128];
   snprintf(path, sizeof path, "%s/lenet.safetensors", dir);
   snprintf(bad_path, sizeof bad_path, "%s/bad.safetensors", dir);
   const char *k[1] = {"ddpmlua.test_accuracy"}, *v[1] = {"0.5"};
   int rc = ddpm_lenet_save(m1, path, 1, k, v);
   CHECK(rc == DDPM_OK, "save: %s", rc ? ddpm_errmsg() : "ok");
   ddpm_st_file *f = ddpm_st_open(path);
   char sha[65];
   ddpm_lenet_params_sha256(m1, sha);
   CHECK(f && strcmp(ddpm_st_metadata(f, "ddpmlua.params_sha256"), sha) == 0 &&
         strcmp(ddpm_st_metadata(f, "ddpmlua.test_accuracy"), "0.5") == 0 &&
         strcmp(ddpm_st_metadata(f, "ddpmlua.model"), "lenet5") == 0, "metadata: model, params sha256, caller's");
   rc = ddpm_lenet_load_st(fresh, f);
   CHECK(rc == DDPM_OK && memcmp(ddpm_lenet_params(fresh), ddpm_lenet_params(m1), np * sizeof(float)) == 0,
         "load restores the bits");
   ddpm_st_close(f);
   const char *rk[1] = {"ddpmlua.params_sha256"};
   CHECK(ddpm_lenet_save(m1, bad_path, 1, rk, v) == DDPM_EINVAL, "a reserved metadata key: %s", ddpm_errmsg());

   /* A file with a wrong shape, one with an extra tensor, one missing fc3.bias. */
   const char *names[11];
   int nd[11];
   const int64_t *shapes[11];
   const float *data[11];
   int64_t wrong[2] = {10, 83}, extra_shape[1] = {1};
   float zero[1] = {0};
   for (int i = 0; i < 10; i++) {
      const ddpm_param *p = ddpm_lenet_param(m1, i);
      names[i] = p->name; nd[i] = p->ndim; shapes[i] = p->shape; data[i] = ddpm_lenet_params(m1) + p->offset;
   }
   shapes[8] = wrong;
   ddpm_st_write(bad_path, 10, names, nd, shapes, data, 0, NULL, NULL);
   f = ddpm_st_open(bad_path);
   CHECK(ddpm_lenet_load_st(fresh, f) == DDPM_ESHAPE, "wrong shape: %s", ddpm_errmsg());
   ddpm_st_close(f);
   shapes[8] = ddpm_lenet_param(m1, 8)->shape;
   names[10] = "fc4.weight"; nd[10] = 1; shapes[10] = extra_shape; data[10] = zero;
   ddpm_st_write(bad_path, 11, names, nd, shapes, data, 0, NULL, NULL);
   f = ddpm_st_open(bad_path);
   CHECK(ddpm_lenet_load_st(fresh, f) == DDPM_EFORMAT, "extra tensor: %s", ddpm_errmsg());
   ddpm_st_close(f);
   ddpm_st_write(bad_path, 9, names, nd, shapes, data, 0, NULL, NULL);
   f = ddpm_st_open(bad_path);
   CHECK(ddpm_lenet_load_st(fresh, f) == DDPM_EFORMAT, "missing tensor: %s", ddpm_errmsg());
   ddpm_st_close(f);
   CHECK(memcmp(ddpm_lenet_params(fresh), ddpm_lenet_params(m1), np * sizeof(float)) == 0,
         "failed loads change nothing");
   unlink(path); unlink(bad_path); rmdir(dir);
   ddpm_lenet_free(m1); ddpm_lenet_free(m2); ddpm_lenet_free(fresh);
   ddpm_adam_free(a1); ddpm_adam_free(a2);
   free(x);
}

int main(void)
{
   check_relu();
   check_pool();
   check_xent();
   check_model_basics();
   check_forward_and_grad();
   check_training();
   return check_done();
}
