/*
 * lenet.c — the LeNet-5-style classifier of FD-LeNet (see lenet.h): its ReLU,
 * 2x2 max-pool and softmax cross-entropy kernels, then the model (flat
 * parameters with names, forward keeping activations, backward, chunked
 * inference, save/load).
 *
 * The convolutions and linear layers are ddpm_conv2d_* and ddpm_linear_*; the
 * optimiser is ddpm_adam_step over the flat buffers. Every loop here either
 * writes each element from one thread or runs sequentially, so results depend
 * on the thread count only through OpenBLAS's GEMMs.
 *
 * Not a general network library: the topology is fixed, input is 1x28x28.
 */
#include "ddpm.h"
#include "ddpm/lenet.h"
#include "ddpm/sha256.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ kernels */

void ddpm_relu_forward(float *out, const float *in, int64_t n)
{
   #pragma omp parallel for schedule(static) if (n > 65536)
   for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void ddpm_relu_backward(float *din, const float *dout, const float *in, int64_t n)
{
   if (!din) return;
   #pragma omp parallel for schedule(static) if (n > 65536)
   for (int64_t i = 0; i < n; i++) if (in[i] > 0.0f) din[i] += dout[i];
}

/* Index (0..3) of the window's first maximum: a, b on the top row, c, d below. */
static int argmax4(float a, float b, float c, float d)
{
   int k = 0;
   float m = a;
   if (b > m) { m = b; k = 1; }
   if (c > m) { m = c; k = 2; }
   if (d > m) { k = 3; }
   return k;
}

void ddpm_maxpool2x2_forward(float *out, const float *in, int N, int C, int H, int W)
{
   const int OH = H / 2, OW = W / 2;
   const int64_t planes = (int64_t)N * C;
   #pragma omp parallel for schedule(static) if (planes * H * W > 65536)
   for (int64_t p = 0; p < planes; p++) {
      const float *src = in + p * H * W;
      float *dst = out + p * OH * OW;
      for (int oy = 0; oy < OH; oy++) {
         const float *r0 = src + (2 * oy) * W, *r1 = r0 + W;
         for (int ox = 0; ox < OW; ox++) {
            float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
            float m = a;
            if (b > m) m = b;
            if (c > m) m = c;
            if (d > m) m = d;
            dst[oy * OW + ox] = m;
         }
      }
   }
}

void ddpm_maxpool2x2_backward(float *din, const float *dout, const float *in,
                              int N, int C, int H, int W)
{
   if (!din) return;
   const int OH = H / 2, OW = W / 2;
   const int64_t planes = (int64_t)N * C;
   #pragma omp parallel for schedule(static) if (planes * H * W > 65536)
   for (int64_t p = 0; p < planes; p++) {
      const float *src = in + p * H * W;
      float *dst = din + p * H * W;
      const float *g = dout + p * OH * OW;
      for (int oy = 0; oy < OH; oy++) {
         const int i0 = (2 * oy) * W;
         for (int ox = 0; ox < OW; ox++) {
            const int j = i0 + 2 * ox;
            int k = argmax4(src[j], src[j + 1], src[j + W], src[j + W + 1]);
            dst[j + (k & 1) + (k >> 1) * W] += g[oy * OW + ox];
         }
      }
   }
}

double ddpm_softmax_xent(float *dlogits, int *correct, const float *logits,
                         const int *labels, int N, int K)
{
   double loss = 0;
   int right = 0;
   for (int n = 0; n < N; n++) {
      const float *z = logits + (int64_t)n * K;
      int best = 0;
      for (int k = 1; k < K; k++) if (z[k] > z[best]) best = k;
      double mx = z[best], s = 0;
      for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
      const double lse = mx + log(s);
      loss += lse - z[labels[n]];
      right += best == labels[n];
      if (dlogits) {
         float *g = dlogits + (int64_t)n * K;
         for (int k = 0; k < K; k++)
            g[k] = (float)((exp((double)z[k] - lse) - (k == labels[n])) / N);
      }
   }
   if (correct) *correct = right;
   return N > 0 ? loss / N : 0.0;
}

/* ------------------------------------------------------------ the model */

enum { P_C1W, P_C1B, P_C2W, P_C2B, P_F1W, P_F1B, P_F2W, P_F2B, P_F3W, P_F3B };

/* Per-image sizes of the activations. */
enum {
   S_X = 28 * 28, S_A1 = 6 * 28 * 28, S_P1 = 6 * 14 * 14, S_A2 = 16 * 10 * 10,
   S_P2 = 16 * 5 * 5, S_H1 = 120, S_F = 84, S_LG = 10
};

struct ddpm_lenet {
   ddpm_param ptab[DDPM_LENET_TENSORS];
   size_t numel;
   ddpm_tensor *params_t, *grads_t;
   float *params, *grads;
   /* Activations for cap images: forward x, a1 (conv1), r1 (ReLU), p1 (pool),
      a2, r2, p2, h1 (fc1), r3, f (fc2 = features), r4, lg (logits); the
      gradient buffers of the same shapes; conv scratch. */
   int cap, last_n;
   float *arena;
   float *x, *a1, *r1, *p1, *a2, *r2, *p2, *h1, *r3, *f, *r4, *lg;
   float *dlg, *dr4, *df, *dr3, *dh1, *dp2, *dr2, *da2, *dp1, *dr1, *da1;
   float *scratch;
};

static const struct { const char *name; int ndim; int64_t shape[4]; } LAYOUT[DDPM_LENET_TENSORS] = {
   {"conv1.weight", 4, {6, 1, 5, 5}},  {"conv1.bias", 1, {6}},
   {"conv2.weight", 4, {16, 6, 5, 5}}, {"conv2.bias", 1, {16}},
   {"fc1.weight", 2, {120, 400}},      {"fc1.bias", 1, {120}},
   {"fc2.weight", 2, {84, 120}},       {"fc2.bias", 1, {84}},
   {"fc3.weight", 2, {10, 84}},        {"fc3.bias", 1, {10}},
};

static ddpm_conv2d_shape conv1_shape(int N) { return ddpm_conv2d_make(N, 1, 28, 28, 6, 5, 1, 2, 2, 2, 2); }
static ddpm_conv2d_shape conv2_shape(int N) { return ddpm_conv2d_make(N, 6, 14, 14, 16, 5, 1, 0, 0, 0, 0); }

ddpm_lenet *ddpm_lenet_new(uint64_t seed)
{
   ddpm_lenet *m = calloc(1, sizeof *m);
   if (!m) { ddpm_seterr(DDPM_ENOMEM, "lenet: out of memory"); return NULL; }
   size_t off = 0;
   for (int i = 0; i < DDPM_LENET_TENSORS; i++) {
      ddpm_param *p = &m->ptab[i];
      p->name = LAYOUT[i].name;
      p->ndim = LAYOUT[i].ndim;
      p->numel = 1;
      for (int d = 0; d < p->ndim; d++) {
         p->shape[d] = LAYOUT[i].shape[d];
         p->numel *= (size_t)p->shape[d];
      }
      p->offset = off;
      off += p->numel;
   }
   m->numel = off;
   m->params_t = ddpm_tensor_new_1d((int64_t)off);
   m->grads_t = ddpm_tensor_new_1d((int64_t)off);
   if (!m->params_t || !m->grads_t) { ddpm_lenet_free(m); return NULL; }
   m->params = ddpm_tensor_data(m->params_t);
   m->grads = ddpm_tensor_data(m->grads_t);
   /* PyTorch's Conv2d/Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
      the weight (kaiming_uniform with a = sqrt(5)) and for the bias. */
   ddpm_rng r;
   ddpm_rng_init(&r, seed);
   for (int i = 0; i < DDPM_LENET_TENSORS; i += 2) {
      const ddpm_param *w = &m->ptab[i];
      size_t fan_in = w->numel / (size_t)w->shape[0];
      float bound = (float)(1.0 / sqrt((double)fan_in));
      for (int j = i; j <= i + 1; j++) {
         float *p = m->params + m->ptab[j].offset;
         ddpm_rng_uniform(&r, p, (int64_t)m->ptab[j].numel);
         for (size_t k = 0; k < m->ptab[j].numel; k++) p[k] = (2.0f * p[k] - 1.0f) * bound;
      }
   }
   return m;
}

void ddpm_lenet_free(ddpm_lenet *m)
{
   if (!m) return;
   ddpm_tensor_release(m->params_t);
   ddpm_tensor_release(m->grads_t);
   free(m->arena);
   free(m);
}

size_t ddpm_lenet_num_params(const ddpm_lenet *m) { return m->numel; }
int    ddpm_lenet_num_tensors(const ddpm_lenet *m) { (void)m; return DDPM_LENET_TENSORS; }
float *ddpm_lenet_params(ddpm_lenet *m) { return m->params; }
float *ddpm_lenet_grads(ddpm_lenet *m) { return m->grads; }
void   ddpm_lenet_zero_grad(ddpm_lenet *m) { memset(m->grads, 0, m->numel * sizeof *m->grads); }

const ddpm_param *ddpm_lenet_param(const ddpm_lenet *m, int i)
{
   return i >= 0 && i < DDPM_LENET_TENSORS ? &m->ptab[i] : NULL;
}

int ddpm_lenet_find_param(const ddpm_lenet *m, const char *name)
{
   for (int i = 0; i < DDPM_LENET_TENSORS; i++)
      if (strcmp(m->ptab[i].name, name) == 0) return i;
   return -1;
}

ddpm_tensor *ddpm_lenet_flat_tensor(ddpm_lenet *m, ddpm_buffer which)
{
   return ddpm_tensor_view_of(which == DDPM_GRADS ? m->grads_t : m->params_t);
}

ddpm_tensor *ddpm_lenet_param_tensor(ddpm_lenet *m, int i, ddpm_buffer which)
{
   const ddpm_param *p = ddpm_lenet_param(m, i);
   if (!p) {
      ddpm_seterr(DDPM_EINVAL, "lenet: parameter index %d out of range 0..%d", i,
                  DDPM_LENET_TENSORS - 1);
      return NULL;
   }
   ddpm_tensor *t = ddpm_tensor_view_of(which == DDPM_GRADS ? m->grads_t : m->params_t);
   if (!t) return NULL;
   if (ddpm_tensor_narrow(t, 0, (int64_t)p->offset, (int64_t)p->numel) != DDPM_OK ||
       ddpm_tensor_reshape(t, p->ndim, p->shape) != DDPM_OK) {
      ddpm_tensor_release(t);
      return NULL;
   }
   return t;
}

/* Sizes the activation arena for N images (kept when big enough). */
static int ensure(ddpm_lenet *m, int N)
{
   if (N <= m->cap) return DDPM_OK;
   ddpm_conv2d_shape s1 = conv1_shape(N), s2 = conv2_shape(N);
   size_t sc1 = ddpm_conv2d_scratch_floats(&s1), sc2 = ddpm_conv2d_scratch_floats(&s2);
   const size_t per = 2 * ((size_t)S_X + 2 * S_A1 + S_P1 + 2 * S_A2 + S_P2 + 2 * S_H1 + 2 * S_F + S_LG);
   size_t total = per * (size_t)N + (sc1 > sc2 ? sc1 : sc2);
   float *a = malloc(total * sizeof *a);
   if (!a) return ddpm_seterr(DDPM_ENOMEM, "lenet: out of memory for the activations of %d images", N);
   free(m->arena);
   m->arena = a;
   m->cap = N;
   m->last_n = 0;
   float **bufs[] = {&m->x, &m->a1, &m->r1, &m->p1, &m->a2, &m->r2, &m->p2, &m->h1, &m->r3,
                     &m->f, &m->r4, &m->lg,
                     &m->dlg, &m->dr4, &m->df, &m->dr3, &m->dh1, &m->dp2, &m->dr2, &m->da2,
                     &m->dp1, &m->dr1, &m->da1};
   const size_t sizes[] = {S_X, S_A1, S_A1, S_P1, S_A2, S_A2, S_P2, S_H1, S_H1, S_F, S_F, S_LG,
                           S_LG, S_F, S_F, S_H1, S_H1, S_P2, S_A2, S_A2, S_P1, S_A1, S_A1};
   for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      *bufs[i] = a;
      a += sizes[i] * (size_t)N;
   }
   m->scratch = a;
   return DDPM_OK;
}

/* Forward of n <= cap images from m->x into the arena. */
static void run_forward(ddpm_lenet *m, int n)
{
   const float *P = m->params;
   const ddpm_param *t = m->ptab;
   ddpm_conv2d_shape s1 = conv1_shape(n), s2 = conv2_shape(n);
   ddpm_conv2d_forward(m->a1, m->scratch, m->x, P + t[P_C1W].offset, P + t[P_C1B].offset, &s1);
   ddpm_relu_forward(m->r1, m->a1, (int64_t)n * S_A1);
   ddpm_maxpool2x2_forward(m->p1, m->r1, n, 6, 28, 28);
   ddpm_conv2d_forward(m->a2, m->scratch, m->p1, P + t[P_C2W].offset, P + t[P_C2B].offset, &s2);
   ddpm_relu_forward(m->r2, m->a2, (int64_t)n * S_A2);
   ddpm_maxpool2x2_forward(m->p2, m->r2, n, 16, 10, 10);
   ddpm_linear_forward(m->h1, m->p2, P + t[P_F1W].offset, P + t[P_F1B].offset, n, S_P2, S_H1);
   ddpm_relu_forward(m->r3, m->h1, (int64_t)n * S_H1);
   ddpm_linear_forward(m->f, m->r3, P + t[P_F2W].offset, P + t[P_F2B].offset, n, S_H1, S_F);
   ddpm_relu_forward(m->r4, m->f, (int64_t)n * S_F);
   ddpm_linear_forward(m->lg, m->r4, P + t[P_F3W].offset, P + t[P_F3B].offset, n, S_F, S_LG);
}

static int check_n(int64_t N, const char *what)
{
   if (N < 1 || N > (1 << 24))
      return ddpm_seterr(DDPM_EINVAL, "lenet %s: batch size %lld is not in 1..2^24", what, (long long)N);
   return DDPM_OK;
}

int ddpm_lenet_forward(ddpm_lenet *m, float *logits, float *features, const float *x, int N)
{
   int rc = check_n(N, "forward");
   if (rc != DDPM_OK || (rc = ensure(m, N)) != DDPM_OK) return rc;
   memcpy(m->x, x, (size_t)N * S_X * sizeof *x);
   run_forward(m, N);
   m->last_n = N;
   if (logits) memcpy(logits, m->lg, (size_t)N * S_LG * sizeof *logits);
   if (features) memcpy(features, m->f, (size_t)N * S_F * sizeof *features);
   return DDPM_OK;
}

int ddpm_lenet_backward(ddpm_lenet *m, const float *dlogits)
{
   const int n = m->last_n;
   if (n < 1) return ddpm_seterr(DDPM_EINVAL, "lenet backward: no training forward to go back through");
   float *G = m->grads;
   const float *P = m->params;
   const ddpm_param *t = m->ptab;
   /* Backward kernels accumulate: the input-gradient buffers start at zero. */
   memset(m->dr4, 0, (size_t)n * S_F * sizeof(float));
   memset(m->df, 0, (size_t)n * S_F * sizeof(float));
   memset(m->dr3, 0, (size_t)n * S_H1 * sizeof(float));
   memset(m->dh1, 0, (size_t)n * S_H1 * sizeof(float));
   memset(m->dp2, 0, (size_t)n * S_P2 * sizeof(float));
   memset(m->dr2, 0, (size_t)n * S_A2 * sizeof(float));
   memset(m->da2, 0, (size_t)n * S_A2 * sizeof(float));
   memset(m->dp1, 0, (size_t)n * S_P1 * sizeof(float));
   memset(m->dr1, 0, (size_t)n * S_A1 * sizeof(float));
   memset(m->da1, 0, (size_t)n * S_A1 * sizeof(float));
   ddpm_linear_backward(m->dr4, G + t[P_F3W].offset, G + t[P_F3B].offset, dlogits, m->r4,
                        P + t[P_F3W].offset, n, S_F, S_LG);
   ddpm_relu_backward(m->df, m->dr4, m->f, (int64_t)n * S_F);
   ddpm_linear_backward(m->dr3, G + t[P_F2W].offset, G + t[P_F2B].offset, m->df, m->r3,
                        P + t[P_F2W].offset, n, S_H1, S_F);
   ddpm_relu_backward(m->dh1, m->dr3, m->h1, (int64_t)n * S_H1);
   ddpm_linear_backward(m->dp2, G + t[P_F1W].offset, G + t[P_F1B].offset, m->dh1, m->p2,
                        P + t[P_F1W].offset, n, S_P2, S_H1);
   ddpm_maxpool2x2_backward(m->dr2, m->dp2, m->r2, n, 16, 10, 10);
   ddpm_relu_backward(m->da2, m->dr2, m->a2, (int64_t)n * S_A2);
   ddpm_conv2d_shape s2 = conv2_shape(n), s1 = conv1_shape(n);
   ddpm_conv2d_backward(m->dp1, G + t[P_C2W].offset, G + t[P_C2B].offset, m->scratch, m->da2,
                        m->p1, P + t[P_C2W].offset, &s2);
   ddpm_maxpool2x2_backward(m->dr1, m->dp1, m->r1, n, 6, 28, 28);
   ddpm_relu_backward(m->da1, m->dr1, m->a1, (int64_t)n * S_A1);
   ddpm_conv2d_backward(NULL, G + t[P_C1W].offset, G + t[P_C1B].offset, m->scratch, m->da1,
                        m->x, P + t[P_C1W].offset, &s1);
   return DDPM_OK;
}

int ddpm_lenet_train_step(ddpm_lenet *m, double *loss, int *correct, const float *x,
                          const int *labels, int N)
{
   int rc = check_n(N, "train_step");
   if (rc != DDPM_OK) return rc;
   for (int i = 0; i < N; i++)
      if (labels[i] < 0 || labels[i] >= DDPM_LENET_CLASSES)
         return ddpm_seterr(DDPM_EINVAL, "lenet train_step: label %d of example %d is not in 0..9",
                            labels[i], i + 1);
   if ((rc = ddpm_lenet_forward(m, NULL, NULL, x, N)) != DDPM_OK) return rc;
   double l = ddpm_softmax_xent(m->dlg, correct, m->lg, labels, N, S_LG);
   if (loss) *loss = l;
   return ddpm_lenet_backward(m, m->dlg);
}

int ddpm_lenet_predict(ddpm_lenet *m, float *logits, float *features, const float *x, int64_t N)
{
   if (N < 1) return ddpm_seterr(DDPM_EINVAL, "lenet predict: %lld images", (long long)N);
   int chunk = N < DDPM_LENET_CHUNK ? (int)N : DDPM_LENET_CHUNK;
   int rc = ensure(m, chunk);
   if (rc != DDPM_OK) return rc;
   m->last_n = 0;
   for (int64_t i0 = 0; i0 < N; i0 += chunk) {
      if (ddpm_interrupted()) return ddpm_seterr(DDPM_EINTR, "lenet predict: interrupted");
      int n = N - i0 < chunk ? (int)(N - i0) : chunk;
      memcpy(m->x, x + i0 * S_X, (size_t)n * S_X * sizeof *x);
      run_forward(m, n);
      if (logits) memcpy(logits + i0 * S_LG, m->lg, (size_t)n * S_LG * sizeof *logits);
      if (features) memcpy(features + i0 * S_F, m->f, (size_t)n * S_F * sizeof *features);
   }
   return DDPM_OK;
}

int ddpm_lenet_evaluate(ddpm_lenet *m, int64_t *correct, double *loss, float *logits,
                        const float *x, const int *labels, int64_t N)
{
   int rc = ddpm_lenet_predict(m, logits, NULL, x, N);
   if (rc != DDPM_OK) return rc;
   /* per chunk of 2^20 rows: softmax_xent takes an int count */
   double sum = 0;
   int64_t right = 0;
   for (int64_t i = 0; i < N; i += 1 << 20) {
      int n = N - i < (1 << 20) ? (int)(N - i) : 1 << 20, c;
      sum += ddpm_softmax_xent(NULL, &c, logits + i * S_LG, labels + i, n, S_LG) * n;
      right += c;
   }
   *correct = right;
   *loss = sum / (double)N;
   return DDPM_OK;
}

/* ------------------------------------------------------------ files */

void ddpm_lenet_params_sha256(const ddpm_lenet *m, char hex[65])
{
   /* float32 little-endian is the file's byte order and the host's on every
      platform the runtime builds for (x86-64, aarch64). */
   ddpm_sha256_hex(m->params, m->numel * sizeof(float), hex);
}

int ddpm_lenet_save(const ddpm_lenet *m, const char *path, int meta_n,
                    const char *const *meta_keys, const char *const *meta_vals)
{
   if (meta_n < 0 || meta_n > 64 || (meta_n > 0 && (!meta_keys || !meta_vals)))
      return ddpm_seterr(DDPM_EINVAL, "lenet save: %d metadata entries (0..64 with keys and values)", meta_n);
   const char *names[DDPM_LENET_TENSORS];
   int ndims[DDPM_LENET_TENSORS];
   const int64_t *shapes[DDPM_LENET_TENSORS];
   const float *data[DDPM_LENET_TENSORS];
   for (int i = 0; i < DDPM_LENET_TENSORS; i++) {
      names[i] = m->ptab[i].name;
      ndims[i] = m->ptab[i].ndim;
      shapes[i] = m->ptab[i].shape;
      data[i] = m->params + m->ptab[i].offset;
   }
   char sha[65];
   ddpm_lenet_params_sha256(m, sha);
   const char *keys[64 + 3] = {"format", "ddpmlua.model", "ddpmlua.params_sha256"};
   const char *vals[64 + 3] = {"pt", "lenet5", sha};
   for (int i = 0; i < meta_n; i++) {
      for (int k = 0; k < 3; k++)
         if (meta_keys[i] && strcmp(meta_keys[i], keys[k]) == 0)
            return ddpm_seterr(DDPM_EINVAL, "lenet save: metadata key '%s' is set by the model", keys[k]);
      keys[3 + i] = meta_keys[i];
      vals[3 + i] = meta_vals[i];
   }
   return ddpm_st_write(path, DDPM_LENET_TENSORS, names, ndims, shapes, data, 3 + meta_n, keys, vals);
}

int ddpm_lenet_load_st(ddpm_lenet *m, const ddpm_st_file *f)
{
   int idx[DDPM_LENET_TENSORS];
   for (int i = 0; i < DDPM_LENET_TENSORS; i++) {
      const ddpm_param *p = &m->ptab[i];
      idx[i] = ddpm_st_find(f, p->name);
      if (idx[i] < 0) return ddpm_seterr(DDPM_EFORMAT, "lenet load: tensor '%s' is missing", p->name);
      const ddpm_st_entry *e = ddpm_st_entry_at(f, idx[i]);
      int same = e->ndim == p->ndim;
      for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
      if (!same) {
         char want[96], got[96];
         ddpm_tensor tw = {.ndim = p->ndim}, tg = {.ndim = e->ndim};
         memcpy(tw.size, p->shape, sizeof p->shape);
         memcpy(tg.size, e->shape, sizeof e->shape);
         return ddpm_seterr(DDPM_ESHAPE, "lenet load: tensor '%s': expected %s, got %s", p->name,
                            ddpm_tensor_shape_str(&tw, want, sizeof want),
                            ddpm_tensor_shape_str(&tg, got, sizeof got));
      }
   }
   if (ddpm_st_count(f) != DDPM_LENET_TENSORS) {
      for (int j = 0; j < ddpm_st_count(f); j++) {
         const char *name = ddpm_st_entry_at(f, j)->name;
         if (ddpm_lenet_find_param(m, name) < 0)
            return ddpm_seterr(DDPM_EFORMAT, "lenet load: tensor '%s' is not a LeNet parameter", name);
      }
   }
   float *tmp = malloc(m->numel * sizeof *tmp);
   if (!tmp) return ddpm_seterr(DDPM_ENOMEM, "lenet load: out of memory");
   for (int i = 0; i < DDPM_LENET_TENSORS; i++) {
      int rc = ddpm_st_read_f32(f, idx[i], tmp + m->ptab[i].offset, m->ptab[i].numel);
      if (rc != DDPM_OK) { free(tmp); return rc; }
   }
   if (!ddpm_all_finite(tmp, (int64_t)m->numel)) {
      free(tmp);
      return ddpm_seterr(DDPM_EFORMAT, "lenet load: the parameters hold NaN or infinity");
   }
   memcpy(m->params, tmp, m->numel * sizeof *tmp);
   free(tmp);
   return DDPM_OK;
}
