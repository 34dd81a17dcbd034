/*
 * inception.c — the FID Inception-v3 (inception.h): the layer table, loading
 * with batch norm folded in, and inference one image per thread.
 *
 * Why one image per thread: an image's layers are GEMMs of 64 to 22,201
 * columns that one core keeps busy on its own, so threads share nothing,
 * need no barriers between layers, and the concatenations of the Mixed
 * blocks cost nothing (each branch writes its channels straight into the
 * block's output). A thread owns two ping-pong activation buffers, three
 * branch temporaries and the convolution scratch, sized once from the fixed
 * 299x299 geometry and kept between calls.
 *
 * Convolutions: 3x3 stride-1 "same" layers through Winograd F(4x4,3x3)
 * (winograd.c), all others (1x1, 1x7, 7x1, 1x3, 3x1, 5x5, 3x3 stride 2 or
 * unpadded) through im2col + the runtime's GEMM micro-kernel (conv.c),
 * each followed by the bias (the folded batch norm) and ReLU.
 *
 * What it isn't: a general graph runner. The network is this one network;
 * the parity test (tests/c/test_inception.c) checks it stage by stage
 * against PyTorch.
 */
#include "ddpm.h"
#include "ddpm/inception.h"
#include "kernels.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define BN_EPS 1e-3
#define S299 DDPM_INCEPTION_SIZE

typedef struct conv {
   char name[40];               /* "Mixed_6b.branch7x7_2" */
   int C, OC, KH, KW, stride, ph, pw;
   int H, W, OH, OW;            /* input and output size (fixed by the network) */
   int wino;                    /* 3x3 stride 1: WINO_SAME (padding 1) or WINO_VALID (none) */
   float *w;                    /* [OC, C, KH, KW], batch norm folded in */
   float *b;                    /* [OC] */
} conv;

enum { BLK_A, BLK_B, BLK_C, BLK_D, BLK_E1, BLK_E2 };

/* Winograd for 3x3 stride-1 layers; an unpadded one (Conv2d_2a, 4a) runs
   padded into a full-size buffer and keeps the interior: its outputs are
   the padded convolution's at rows and columns 1 .. H-2, and Winograd's
   4x fewer multiplies beat im2col even with the 3-6% of extra border. */
enum { WINO_NO, WINO_SAME, WINO_VALID };

typedef struct block {
   const char *name;
   int type, c0;                /* first conv in the table */
   int C, H, W, OC, OH, OW;
} block;

/* Per-thread buffers. */
typedef struct thr {
   float *act[2];               /* stage ping-pong */
   float *tmp[3];               /* branch temporaries */
   float *scratch;              /* im2col */
   float *wino;                 /* Winograd U, V, M */
   float *full;                 /* the padded output of a WINO_VALID layer */
   size_t nwino;
   ddpm_gemm_ws ws;             /* one region: this thread's GEMM work space */
} thr;

struct ddpm_inception {
   conv conv[DDPM_INCEPTION_CONVS];
   int nconv;
   block blk[11];
   float *fc;                   /* [2048, 1008]: fc.weight transposed (fc.bias is checked but unused) */
   float *fc_work;              /* ddpm_gemm_fast's work space for the logits */
   /* sizes of the per-thread buffers */
   size_t act_floats, tmp_floats, scratch_floats, wino_floats, gemm_floats, full_floats;
   thr *thr;
   int nthr;
};

/* ------------------------------------------------------------ the layer table */

static int add_conv(ddpm_inception *m, const char *blk, const char *br, int C, int OC, int KH,
                    int KW, int stride, int ph, int pw, int H, int W)
{
   conv *c = &m->conv[m->nconv];
   snprintf(c->name, sizeof c->name, "%s%s%s", blk, br ? "." : "", br ? br : "");
   c->C = C; c->OC = OC; c->KH = KH; c->KW = KW; c->stride = stride; c->ph = ph; c->pw = pw;
   c->H = H; c->W = W;
   c->OH = (H + 2 * ph - KH) / stride + 1;
   c->OW = (W + 2 * pw - KW) / stride + 1;
   c->wino = KH != 3 || KW != 3 || stride != 1 ? WINO_NO
           : ph == 1 && pw == 1 ? WINO_SAME : ph == 0 && pw == 0 ? WINO_VALID : WINO_NO;
   return m->nconv++;
}

/* The torchvision Inception blocks with the FID patches (inception.h). */
static void add_block(ddpm_inception *m, int bi, const char *name, int type, int C, int H,
                      int W, int arg)
{
   block *b = &m->blk[bi];
   b->name = name; b->type = type; b->C = C; b->H = H; b->W = W;
   b->c0 = m->nconv;
   b->OH = H; b->OW = W;
   switch (type) {
   case BLK_A:   /* arg: pool features */
      add_conv(m, name, "branch1x1", C, 64, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch5x5_1", C, 48, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2, H, W);
      add_conv(m, name, "branch3x3dbl_1", C, 64, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1, H, W);
      add_conv(m, name, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1, H, W);
      add_conv(m, name, "branch_pool", C, arg, 1, 1, 1, 0, 0, H, W);
      b->OC = 64 + 64 + 96 + arg;
      break;
   case BLK_B:
      b->OH = (H - 3) / 2 + 1; b->OW = (W - 3) / 2 + 1;
      add_conv(m, name, "branch3x3", C, 384, 3, 3, 2, 0, 0, H, W);
      add_conv(m, name, "branch3x3dbl_1", C, 64, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1, H, W);
      add_conv(m, name, "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0, H, W);
      b->OC = 384 + 96 + C;
      break;
   case BLK_C:   /* arg: channels of the 7x7 factorisations */
      add_conv(m, name, "branch1x1", C, 192, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch7x7_1", C, arg, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch7x7_2", arg, arg, 1, 7, 1, 0, 3, H, W);
      add_conv(m, name, "branch7x7_3", arg, 192, 7, 1, 1, 3, 0, H, W);
      add_conv(m, name, "branch7x7dbl_1", C, arg, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch7x7dbl_2", arg, arg, 7, 1, 1, 3, 0, H, W);
      add_conv(m, name, "branch7x7dbl_3", arg, arg, 1, 7, 1, 0, 3, H, W);
      add_conv(m, name, "branch7x7dbl_4", arg, arg, 7, 1, 1, 3, 0, H, W);
      add_conv(m, name, "branch7x7dbl_5", arg, 192, 1, 7, 1, 0, 3, H, W);
      add_conv(m, name, "branch_pool", C, 192, 1, 1, 1, 0, 0, H, W);
      b->OC = 4 * 192;
      break;
   case BLK_D:
      b->OH = (H - 3) / 2 + 1; b->OW = (W - 3) / 2 + 1;
      add_conv(m, name, "branch3x3_1", C, 192, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch3x3_2", 192, 320, 3, 3, 2, 0, 0, H, W);
      add_conv(m, name, "branch7x7x3_1", C, 192, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3, H, W);
      add_conv(m, name, "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0, H, W);
      add_conv(m, name, "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0, H, W);
      b->OC = 320 + 192 + C;
      break;
   default:      /* BLK_E1, BLK_E2 */
      add_conv(m, name, "branch1x1", C, 320, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch3x3_1", C, 384, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1, H, W);
      add_conv(m, name, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0, H, W);
      add_conv(m, name, "branch3x3dbl_1", C, 448, 1, 1, 1, 0, 0, H, W);
      add_conv(m, name, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1, H, W);
      add_conv(m, name, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1, H, W);
      add_conv(m, name, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0, H, W);
      add_conv(m, name, "branch_pool", C, 192, 1, 1, 1, 0, 0, H, W);
      b->OC = 320 + 768 + 768 + 192;
      break;
   }
}

static void build(ddpm_inception *m)
{
   add_conv(m, "Conv2d_1a_3x3", NULL, 3, 32, 3, 3, 2, 0, 0, 299, 299);   /* -> 149 */
   add_conv(m, "Conv2d_2a_3x3", NULL, 32, 32, 3, 3, 1, 0, 0, 149, 149);  /* -> 147 */
   add_conv(m, "Conv2d_2b_3x3", NULL, 32, 64, 3, 3, 1, 1, 1, 147, 147);  /* max pool -> 73 */
   add_conv(m, "Conv2d_3b_1x1", NULL, 64, 80, 1, 1, 1, 0, 0, 73, 73);
   add_conv(m, "Conv2d_4a_3x3", NULL, 80, 192, 3, 3, 1, 0, 0, 73, 73);   /* -> 71, pool -> 35 */
   add_block(m, 0, "Mixed_5b", BLK_A, 192, 35, 35, 32);
   add_block(m, 1, "Mixed_5c", BLK_A, 256, 35, 35, 64);
   add_block(m, 2, "Mixed_5d", BLK_A, 288, 35, 35, 64);
   add_block(m, 3, "Mixed_6a", BLK_B, 288, 35, 35, 0);
   add_block(m, 4, "Mixed_6b", BLK_C, 768, 17, 17, 128);
   add_block(m, 5, "Mixed_6c", BLK_C, 768, 17, 17, 160);
   add_block(m, 6, "Mixed_6d", BLK_C, 768, 17, 17, 160);
   add_block(m, 7, "Mixed_6e", BLK_C, 768, 17, 17, 192);
   add_block(m, 8, "Mixed_7a", BLK_D, 768, 17, 17, 0);
   add_block(m, 9, "Mixed_7b", BLK_E1, 1280, 8, 8, 0);
   add_block(m, 10, "Mixed_7c", BLK_E2, 2048, 8, 8, 0);
}

static ddpm_conv2d_shape conv_shape(const conv *c)
{
   ddpm_conv2d_shape s = {
      .N = 1, .C = c->C, .H = c->H, .W = c->W, .OC = c->OC, .KH = c->KH, .KW = c->KW,
      .stride = c->stride, .pad_t = c->ph, .pad_l = c->pw, .OH = c->OH, .OW = c->OW
   };
   return s;
}

/* Buffer sizes from the table. */
static void plan(ddpm_inception *m)
{
   static const int stem[][3] = { {3, 299, 299}, {32, 149, 149}, {32, 147, 147},
                                  {64, 147, 147}, {64, 73, 73}, {80, 73, 73},
                                  {192, 71, 71}, {192, 35, 35} };
   size_t act = 0, tmp = 0, scr = 0, wino = 0, gemm = 0;
   for (size_t i = 0; i < sizeof stem / sizeof stem[0]; i++) {
      size_t n = (size_t)stem[i][0] * stem[i][1] * stem[i][2];
      if (n > act) act = n;
   }
   for (int i = 0; i < 11; i++) {
      const block *b = &m->blk[i];
      size_t n = (size_t)b->C * b->H * b->W;   /* the pool branch's input-sized temporary */
      if (n > tmp) tmp = n;
   }
   for (int i = 0; i < m->nconv; i++) {
      const conv *c = &m->conv[i];
      size_t n = (size_t)c->OC * c->OH * c->OW;
      if (n > tmp && i >= 5) tmp = n;
      if (c->wino) {
         n = ddpm_wino_scratch_floats(1, c->C, c->OC, c->H, c->W, 0, 1);
         if (n > wino) wino = n;
         n = (size_t)c->OC * c->H * c->W;
         if (c->wino == WINO_VALID && n > m->full_floats) m->full_floats = n;
      } else {
         ddpm_conv2d_shape s = conv_shape(c);
         n = ddpm_conv2d_scratch_floats(&s);
         if (n > scr) scr = n;
         n = ddpm_conv2d_gemm_work_floats(&s);
         if (n > gemm) gemm = n;
      }
   }
   m->act_floats = act; m->tmp_floats = tmp; m->scratch_floats = scr;
   m->wino_floats = wino; m->gemm_floats = gemm;
}

/* ------------------------------------------------------------ loading */

static const char *const BN_PART[4] = { "bn.weight", "bn.bias", "bn.running_mean",
                                        "bn.running_var" };

static int is_float(int dt)
{
   return dt == DDPM_DT_F32 || dt == DDPM_DT_F16 || dt == DDPM_DT_BF16 || dt == DDPM_DT_F64;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
   size_t k = (size_t)snprintf(buf, n, "[");
   for (int i = 0; i < ndim && k < n; i++)
      k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
   if (k < n) snprintf(buf + k, n - k, "]");
}

/* Index of `name` in f with exactly this shape and a float dtype, or -1
   with the message set. */
static int find_tensor(const ddpm_st_file *f, const char *name, int ndim, const int64_t *shape)
{
   char want[64], got[64];
   shape_str(want, sizeof want, ndim, shape);
   int i = ddpm_st_find(f, name);
   if (i < 0) {
      ddpm_seterr(DDPM_EFORMAT, "tensor '%s' %s is missing: not the FID Inception weights "
                  "(pt_inception-2015-12-05) as converted by scripts/convert_inception.py",
                  name, want);
      return -1;
   }
   const ddpm_st_entry *e = ddpm_st_entry_at(f, i);
   int same = e->ndim == ndim;
   for (int d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
   if (!same) {
      shape_str(got, sizeof got, e->ndim, e->shape);
      ddpm_seterr(DDPM_ESHAPE, "tensor '%s': expected shape %s, got %s (not the FID Inception "
                  "weights pt_inception-2015-12-05)", name, want, got);
      return -1;
   }
   if (!is_float(e->dtype)) {
      ddpm_seterr(DDPM_EFORMAT, "tensor '%s': expected a float dtype", name);
      return -1;
   }
   return i;
}

/* Is `name` one of the network's tensors? */
static int expected_name(const ddpm_inception *m, const char *name)
{
   if (!strcmp(name, "fc.weight") || !strcmp(name, "fc.bias")) return 1;
   for (int i = 0; i < m->nconv; i++) {
      size_t n = strlen(m->conv[i].name);
      if (strncmp(name, m->conv[i].name, n) || name[n] != '.') continue;
      if (!strcmp(name + n + 1, "conv.weight")) return 1;
      for (int k = 0; k < 4; k++)
         if (!strcmp(name + n + 1, BN_PART[k])) return 1;
   }
   return 0;
}

static int load_conv(conv *c, const ddpm_st_file *f, float *bn)
{
   char name[96];
   int64_t ws[4] = { c->OC, c->C, c->KH, c->KW }, bs[1] = { c->OC };
   snprintf(name, sizeof name, "%s.conv.weight", c->name);
   int i = find_tensor(f, name, 4, ws);
   if (i < 0) return DDPM_EFORMAT;
   const size_t kk = (size_t)c->C * c->KH * c->KW;
   int rc = ddpm_st_read_f32(f, i, c->w, (size_t)c->OC * kk);
   if (rc != DDPM_OK) return rc;
   for (int k = 0; k < 4; k++) {
      snprintf(name, sizeof name, "%s.%s", c->name, BN_PART[k]);
      i = find_tensor(f, name, 1, bs);
      if (i < 0) return DDPM_EFORMAT;
      rc = ddpm_st_read_f32(f, i, bn + (size_t)k * c->OC, (size_t)c->OC);
      if (rc != DDPM_OK) return rc;
   }
   const float *g = bn, *beta = bn + c->OC, *mean = bn + 2 * c->OC, *var = bn + 3 * c->OC;
   for (int o = 0; o < c->OC; o++) {
      if (!(var[o] >= 0.0f) || !isfinite(g[o]) || !isfinite(beta[o]) || !isfinite(mean[o]))
         return ddpm_seterr(DDPM_EFORMAT, "%s.bn: channel %d has a non-finite value or a "
                            "negative running_var", c->name, o);
      const double s = (double)g[o] / sqrt((double)var[o] + BN_EPS);
      for (size_t k = 0; k < kk; k++) c->w[o * kk + k] = (float)(c->w[o * kk + k] * s);
      c->b[o] = (float)((double)beta[o] - (double)mean[o] * s);
   }
   return DDPM_OK;
}

ddpm_inception *ddpm_inception_load_st(const ddpm_st_file *f)
{
   if (!f) { ddpm_seterr(DDPM_EINVAL, "inception: no file"); return NULL; }
   ddpm_inception *m = calloc(1, sizeof *m);
   if (!m) { ddpm_seterr(DDPM_ENOMEM, "inception: out of memory"); return NULL; }
   build(m);
   plan(m);
   /* every file entry must be one of ours (and with none missing, the counts agree) */
   for (int i = 0; i < ddpm_st_count(f); i++) {
      const char *name = ddpm_st_entry_at(f, i)->name;
      if (!expected_name(m, name)) {
         ddpm_seterr(DDPM_EFORMAT, "unexpected tensor '%s': not part of the FID Inception "
                     "network (pt_inception-2015-12-05)", name);
         ddpm_inception_free(m);
         return NULL;
      }
   }
   size_t total = 0, maxoc = 0;
   for (int i = 0; i < m->nconv; i++) {
      total += (size_t)m->conv[i].OC * m->conv[i].C * m->conv[i].KH * m->conv[i].KW
             + (size_t)m->conv[i].OC;
      if ((size_t)m->conv[i].OC > maxoc) maxoc = (size_t)m->conv[i].OC;
   }
   float *bn = malloc(4 * maxoc * sizeof *bn);
   float *wbuf = malloc(total * sizeof *wbuf);
   m->fc = malloc((size_t)DDPM_INCEPTION_CLASSES * DDPM_INCEPTION_FEATURES * sizeof *m->fc);
   if (!bn || !wbuf || !m->fc) {
      free(bn); free(wbuf);
      ddpm_seterr(DDPM_ENOMEM, "inception: out of memory for the weights");
      ddpm_inception_free(m);
      return NULL;
   }
   m->conv[0].w = wbuf;   /* the whole block, freed through conv 0 */
   float *p = wbuf;
   int rc = DDPM_OK;
   for (int i = 0; i < m->nconv && rc == DDPM_OK; i++) {
      conv *c = &m->conv[i];
      c->w = p; p += (size_t)c->OC * c->C * c->KH * c->KW;
      c->b = p; p += c->OC;
      rc = load_conv(c, f, bn);
   }
   free(bn);
   if (rc == DDPM_OK) {
      int64_t fs[2] = { DDPM_INCEPTION_CLASSES, DDPM_INCEPTION_FEATURES }, bs[1] = { DDPM_INCEPTION_CLASSES };
      int i = find_tensor(f, "fc.weight", 2, fs);
      const size_t nfc = (size_t)DDPM_INCEPTION_CLASSES * DDPM_INCEPTION_FEATURES;
      float *w = i < 0 ? NULL : malloc(nfc * sizeof *w);
      m->fc_work = malloc(ddpm_gemm_fast_work_floats(0, DDPM_INCEPTION_CLASSES,
                                                     DDPM_INCEPTION_FEATURES) * sizeof *m->fc_work);
      rc = i < 0 ? DDPM_EFORMAT
         : !w || !m->fc_work ? ddpm_seterr(DDPM_ENOMEM, "inception: out of memory")
         : ddpm_st_read_f32(f, i, w, nfc);
      for (size_t k = 0; rc == DDPM_OK && k < nfc; k++)   /* [1008,2048] -> [2048,1008] */
         m->fc[k % DDPM_INCEPTION_FEATURES * DDPM_INCEPTION_CLASSES + k / DDPM_INCEPTION_FEATURES] = w[k];
      free(w);
      if (rc == DDPM_OK && find_tensor(f, "fc.bias", 1, bs) < 0) rc = DDPM_EFORMAT;
   }
   if (rc != DDPM_OK) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", ddpm_errmsg());
      ddpm_inception_free(m);
      ddpm_seterr(rc, "%s", msg);
      return NULL;
   }
   return m;
}

static void free_threads(ddpm_inception *m)
{
   for (int t = 0; t < m->nthr; t++) free(m->thr[t].act[0]);
   free(m->thr);
   m->thr = NULL;
   m->nthr = 0;
}

void ddpm_inception_free(ddpm_inception *m)
{
   if (!m) return;
   free_threads(m);
   free(m->conv[0].w);
   free(m->fc);
   free(m->fc_work);
   free(m);
}

/* One set of buffers per thread, in one allocation each. */
static int ensure_threads(ddpm_inception *m, int nt)
{
   if (m->nthr >= nt) return DDPM_OK;
   free_threads(m);
   m->thr = calloc((size_t)nt, sizeof *m->thr);
   if (!m->thr) return ddpm_seterr(DDPM_ENOMEM, "inception: out of memory");
   m->nthr = nt;
   const size_t per = 2 * m->act_floats + 3 * m->tmp_floats + m->scratch_floats
                    + m->wino_floats + m->gemm_floats + m->full_floats;
   for (int t = 0; t < nt; t++) {
      thr *h = &m->thr[t];
      float *p = malloc(per * sizeof *p);
      if (!p) {
         free_threads(m);
         return ddpm_seterr(DDPM_ENOMEM, "inception: out of memory for %d threads' buffers "
                            "(%.0f MB each)", nt, per * 4.0 / 1e6);
      }
      h->act[0] = p; p += m->act_floats;
      h->act[1] = p; p += m->act_floats;
      for (int k = 0; k < 3; k++) { h->tmp[k] = p; p += m->tmp_floats; }
      h->scratch = p; p += m->scratch_floats;
      h->wino = p; h->nwino = m->wino_floats; p += m->wino_floats;
      h->full = p; p += m->full_floats;
      h->ws = (ddpm_gemm_ws){ p, m->gemm_floats, 1, 0 };
   }
   return DDPM_OK;
}

/* ------------------------------------------------------------ kernels */

/* out = ReLU(conv(in) + b) for one image. */
static void conv_run(const ddpm_inception *m, thr *t, const conv *c, float *out, const float *in)
{
   ddpm_conv_epi e = { c->b, NULL, NULL };
   if (c->wino == WINO_VALID) {
      ddpm_wino_forward(t->full, t->wino, t->nwino, in, c->w, &e, 1, c->C, c->H, c->W, c->OC);
      for (int o = 0; o < c->OC; o++)
         for (int y = 0; y < c->OH; y++) {
            const float *src = t->full + ((size_t)o * c->H + y + 1) * c->W + 1;
            float *dst = out + ((size_t)o * c->OH + y) * c->OW;
            for (int x = 0; x < c->OW; x++) dst[x] = src[x] > 0.0f ? src[x] : 0.0f;
         }
      return;
   }
   if (c->wino) {
      ddpm_wino_forward(out, t->wino, t->nwino, in, c->w, &e, 1, c->C, c->H, c->W, c->OC);
   } else {
      ddpm_conv2d_shape s = conv_shape(c);
      /* ddpm_gemm_ws_get picks region omp_get_thread_num(): inside the
         per-image threads, a team of one makes that 0, this thread's own */
#ifdef _OPENMP
      if (omp_in_parallel()) {
         #pragma omp parallel num_threads(1)
         ddpm_conv2d_forward_epi(out, t->scratch, in, c->w, &e, &s, &t->ws);
      } else
#endif
         ddpm_conv2d_forward_epi(out, t->scratch, in, c->w, &e, &s, &t->ws);
   }
   const size_t n = (size_t)c->OC * c->OH * c->OW;
   for (size_t i = 0; i < n; i++) out[i] = out[i] > 0.0f ? out[i] : 0.0f;
}

/* 3x3 max pool, stride 2, no padding: [C,H,W] -> [C,(H-3)/2+1,(W-3)/2+1]. */
static void maxpool3s2(float *out, const float *in, int C, int H, int W)
{
   const int OH = (H - 3) / 2 + 1, OW = (W - 3) / 2 + 1;
   for (int c = 0; c < C; c++) {
      const float *p = in + (size_t)c * H * W;
      float *o = out + (size_t)c * OH * OW;
      for (int y = 0; y < OH; y++)
         for (int x = 0; x < OW; x++) {
            const float *q = p + (size_t)(2 * y) * W + 2 * x;
            float v = q[0];
            for (int dy = 0; dy < 3; dy++)
               for (int dx = 0; dx < 3; dx++)
                  if (q[dy * W + dx] > v) v = q[dy * W + dx];
            o[y * OW + x] = v;
         }
   }
}

/* 3x3, stride 1, padding 1: the average over the cells inside the image
   (TensorFlow's, not counting the padding), or the max (is_max). Separable:
   a pass along rows, then along columns. */
static void pool3s1(float *out, const float *in, int C, int H, int W, int is_max)
{
   float hs[H * W];
   for (int c = 0; c < C; c++) {
      const float *p = in + (size_t)c * H * W;
      float *o = out + (size_t)c * H * W;
      for (int y = 0; y < H; y++) {
         const float *r = p + y * W;
         float *h = hs + y * W;
         if (W == 1) { h[0] = r[0]; continue; }
         if (is_max) {
            h[0] = fmaxf(r[0], r[1]);
            for (int x = 1; x < W - 1; x++) h[x] = fmaxf(fmaxf(r[x - 1], r[x]), r[x + 1]);
            h[W - 1] = fmaxf(r[W - 2], r[W - 1]);
         } else {
            h[0] = r[0] + r[1];
            for (int x = 1; x < W - 1; x++) h[x] = r[x - 1] + r[x] + r[x + 1];
            h[W - 1] = r[W - 2] + r[W - 1];
         }
      }
      for (int y = 0; y < H; y++) {
         const float *a = hs + (y > 0 ? y - 1 : y) * W, *m = hs + y * W;
         const float *b = hs + (y < H - 1 ? y + 1 : y) * W;
         float *d = o + y * W;
         const int ny = (y > 0) + 1 + (y < H - 1);
         if (is_max) {
            for (int x = 0; x < W; x++) d[x] = fmaxf(fmaxf(a[x], m[x]), b[x]);
         } else {
            /* a row outside the image adds nothing (a and b then alias m) */
            const float ea = y > 0 ? 1.0f : 0.0f, eb = y < H - 1 ? 1.0f : 0.0f;
            for (int x = 0; x < W; x++) {
               const int nx = (x > 0) + 1 + (x < W - 1);
               d[x] = (ea * a[x] + m[x] + eb * b[x]) / (float)(ny * nx);
            }
         }
      }
   }
}

/* Source index and weight of output position d of a bilinear resize from n
   to o samples, half-pixel centres (align_corners = False), float as
   PyTorch computes it. */
static void lin_index(int d, int n, int o, int *i0, int *i1, float *l1)
{
   const float scale = (float)n / (float)o;
   float src = scale * ((float)d + 0.5f) - 0.5f;
   if (src < 0.0f) src = 0.0f;
   int i = (int)floorf(src);
   if (i > n - 1) i = n - 1;
   float l = src - (float)i;
   l = l < 0.0f ? 0.0f : l > 1.0f ? 1.0f : l;
   *i0 = i;
   *i1 = i < n - 1 ? i + 1 : i;
   *l1 = l;
}

/* [3,H,W] in [0,1] -> [3,299,299], bilinear, then 2x - 1. */
static void resize_scale(float *out, const float *in, int H, int W)
{
   int xi0[S299], xi1[S299];
   float xl[S299];
   for (int x = 0; x < S299; x++) lin_index(x, W, S299, &xi0[x], &xi1[x], &xl[x]);
   for (int c = 0; c < 3; c++) {
      const float *p = in + (size_t)c * H * W;
      float *o = out + (size_t)c * S299 * S299;
      for (int y = 0; y < S299; y++) {
         int y0, y1;
         float yl;
         lin_index(y, H, S299, &y0, &y1, &yl);
         const float *r0 = p + (size_t)y0 * W, *r1 = p + (size_t)y1 * W;
         for (int x = 0; x < S299; x++) {
            const float a = (1.0f - xl[x]) * r0[xi0[x]] + xl[x] * r0[xi1[x]];
            const float b = (1.0f - xl[x]) * r1[xi0[x]] + xl[x] * r1[xi1[x]];
            o[y * S299 + x] = 2.0f * ((1.0f - yl) * a + yl * b) - 1.0f;
         }
      }
   }
}

/* ------------------------------------------------------------ blocks */

static void run_block(const ddpm_inception *m, thr *t, const block *b, float *out,
                      const float *in)
{
   const conv *c = m->conv + b->c0;
   const size_t ohw = (size_t)b->OH * b->OW;
   float *o = out, *t0 = t->tmp[0], *t1 = t->tmp[1], *t2 = t->tmp[2];
   switch (b->type) {
   case BLK_A:
      conv_run(m, t, &c[0], o, in); o += c[0].OC * ohw;
      conv_run(m, t, &c[1], t0, in); conv_run(m, t, &c[2], o, t0); o += c[2].OC * ohw;
      conv_run(m, t, &c[3], t0, in); conv_run(m, t, &c[4], t1, t0); conv_run(m, t, &c[5], o, t1);
      o += c[5].OC * ohw;
      pool3s1(t2, in, b->C, b->H, b->W, 0); conv_run(m, t, &c[6], o, t2);
      break;
   case BLK_B:
      conv_run(m, t, &c[0], o, in); o += c[0].OC * ohw;
      conv_run(m, t, &c[1], t0, in); conv_run(m, t, &c[2], t1, t0); conv_run(m, t, &c[3], o, t1);
      o += c[3].OC * ohw;
      maxpool3s2(o, in, b->C, b->H, b->W);
      break;
   case BLK_C:
      conv_run(m, t, &c[0], o, in); o += c[0].OC * ohw;
      conv_run(m, t, &c[1], t0, in); conv_run(m, t, &c[2], t1, t0); conv_run(m, t, &c[3], o, t1);
      o += c[3].OC * ohw;
      conv_run(m, t, &c[4], t0, in); conv_run(m, t, &c[5], t1, t0); conv_run(m, t, &c[6], t0, t1);
      conv_run(m, t, &c[7], t1, t0); conv_run(m, t, &c[8], o, t1); o += c[8].OC * ohw;
      pool3s1(t2, in, b->C, b->H, b->W, 0); conv_run(m, t, &c[9], o, t2);
      break;
   case BLK_D:
      conv_run(m, t, &c[0], t0, in); conv_run(m, t, &c[1], o, t0); o += c[1].OC * ohw;
      conv_run(m, t, &c[2], t0, in); conv_run(m, t, &c[3], t1, t0); conv_run(m, t, &c[4], t0, t1);
      conv_run(m, t, &c[5], o, t0); o += c[5].OC * ohw;
      maxpool3s2(o, in, b->C, b->H, b->W);
      break;
   default:   /* E: the two halves of each 3x3 factorisation are concatenated */
      conv_run(m, t, &c[0], o, in); o += c[0].OC * ohw;
      conv_run(m, t, &c[1], t0, in);
      conv_run(m, t, &c[2], o, t0); o += c[2].OC * ohw;
      conv_run(m, t, &c[3], o, t0); o += c[3].OC * ohw;
      conv_run(m, t, &c[4], t0, in); conv_run(m, t, &c[5], t1, t0);
      conv_run(m, t, &c[6], o, t1); o += c[6].OC * ohw;
      conv_run(m, t, &c[7], o, t1); o += c[7].OC * ohw;
      pool3s1(t2, in, b->C, b->H, b->W, b->type == BLK_E2);
      conv_run(m, t, &c[8], o, t2);
      break;
   }
}

/* ------------------------------------------------------------ stages */

static const char *const STAGE_NAME[DDPM_INCEPTION_STAGES] = {
   "resize", "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
   "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
   "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool", "logits"
};

const char *ddpm_inception_stage_name(int stage)
{
   return stage >= 0 && stage < DDPM_INCEPTION_STAGES ? STAGE_NAME[stage] : NULL;
}

static const int STAGE_SHAPE[DDPM_INCEPTION_STAGES][3] = {
   {3, 299, 299}, {32, 149, 149}, {32, 147, 147}, {64, 147, 147}, {64, 73, 73}, {80, 73, 73},
   {192, 71, 71}, {192, 35, 35}, {256, 35, 35}, {288, 35, 35}, {288, 35, 35}, {768, 17, 17},
   {768, 17, 17}, {768, 17, 17}, {768, 17, 17}, {768, 17, 17}, {1280, 8, 8}, {2048, 8, 8},
   {2048, 8, 8}, {2048, 1, 1}, {1008, 1, 1}
};

int ddpm_inception_stage_shape(int stage, int H, int W, int *c, int *h, int *w)
{
   if (stage < 0 || stage >= DDPM_INCEPTION_STAGES)
      return ddpm_seterr(DDPM_EINVAL, "inception: no stage %d (0..%d)", stage,
                         DDPM_INCEPTION_STAGES - 1);
   (void)H; (void)W;
   *c = STAGE_SHAPE[stage][0]; *h = STAGE_SHAPE[stage][1]; *w = STAGE_SHAPE[stage][2];
   return DDPM_OK;
}

/* Input size of a stage (stage 0: the image's). */
static size_t stage_in_floats(int stage, int H, int W)
{
   if (stage == 0) return (size_t)3 * H * W;
   const int *s = STAGE_SHAPE[stage - 1];
   return (size_t)s[0] * s[1] * s[2];
}

static size_t stage_out_floats(int stage)
{
   const int *s = STAGE_SHAPE[stage];
   return (size_t)s[0] * s[1] * s[2];
}

/* One stage (0..19) for one image. */
static void run_stage(const ddpm_inception *m, thr *t, int stage, float *out, const float *in,
                      int H, int W)
{
   switch (stage) {
   case 0: resize_scale(out, in, H, W); break;
   case 1: case 2: case 3: conv_run(m, t, &m->conv[stage - 1], out, in); break;
   case 4: maxpool3s2(out, in, 64, 147, 147); break;
   case 5: case 6: conv_run(m, t, &m->conv[stage - 2], out, in); break;
   case 7: maxpool3s2(out, in, 192, 71, 71); break;
   case 19: {
      for (int c = 0; c < DDPM_INCEPTION_FEATURES; c++) {
         const float *p = in + (size_t)c * 64;
         double s = 0;
         for (int k = 0; k < 64; k++) s += p[k];
         out[c] = (float)(s / 64.0);
      }
      break;
   }
   default: run_block(m, t, &m->blk[stage - 8], out, in); break;
   }
}

static int check_input(int N, int H, int W)
{
   if (N < 0 || H < 1 || W < 1 || H > 4096 || W > 4096)
      return ddpm_seterr(DDPM_EINVAL, "inception: images [%d,3,%d,%d]: need N >= 0 and "
                         "1 <= H, W <= 4096", N, H, W);
   return DDPM_OK;
}

/* logits [N,1008] = features [N,2048] . fc^T */
/* On the runtime's micro-kernel: each logit is one sum over k in order, so
   an image's logits do not depend on the batch it came in (OpenBLAS's
   blocking would make them depend on N, and the Inception Score on how the
   images were split into batches or MPI ranks). */
static void logits_of(const ddpm_inception *m, float *logits, const float *features, int N)
{
   ddpm_gemm_fast(0, 0, N, DDPM_INCEPTION_CLASSES, DDPM_INCEPTION_FEATURES, 1.0f, features,
                  DDPM_INCEPTION_FEATURES, m->fc, DDPM_INCEPTION_CLASSES, 0.0f, logits,
                  DDPM_INCEPTION_CLASSES, m->fc_work);
}

int ddpm_inception_stage(ddpm_inception *m, int stage, float *out, const float *in, int N,
                         int H, int W)
{
   int rc = check_input(N, H, W);
   if (rc != DDPM_OK) return rc;
   if (stage < 0 || stage >= DDPM_INCEPTION_STAGES)
      return ddpm_seterr(DDPM_EINVAL, "inception: no stage %d", stage);
   if (stage == 20) { logits_of(m, out, in, N); return DDPM_OK; }
   rc = ensure_threads(m, 1);
   if (rc != DDPM_OK) return rc;
   const size_t ni = stage_in_floats(stage, H, W), no = stage_out_floats(stage);
   for (int n = 0; n < N; n++)
      run_stage(m, &m->thr[0], stage, out + n * no, in + n * ni, H, W);
   return DDPM_OK;
}

int ddpm_inception_forward(ddpm_inception *m, float *features, float *logits, const float *x,
                           int N, int H, int W)
{
   int rc = check_input(N, H, W);
   if (rc != DDPM_OK) return rc;
   if (N == 0) return DDPM_OK;
   float *feat = features;
   if (!feat) {
      feat = malloc((size_t)N * DDPM_INCEPTION_FEATURES * sizeof *feat);
      if (!feat) return ddpm_seterr(DDPM_ENOMEM, "inception: out of memory");
   }
   const int nt = N < ddpm_omp_max_threads() ? N : ddpm_omp_max_threads();
   rc = ensure_threads(m, nt);
   if (rc != DDPM_OK) {
      if (feat != features) free(feat);
      return rc;
   }
   const size_t in_img = (size_t)3 * H * W;
   #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
   for (int n = 0; n < N; n++) {
      if (ddpm_interrupted()) continue;
      thr *t = &m->thr[ddpm_omp_thread_num()];
      const float *src = x + n * in_img;
      int cur = 0;
      for (int s = 0; s < 19; s++) {
         run_stage(m, t, s, t->act[cur], src, H, W);
         src = t->act[cur];
         cur ^= 1;
      }
      run_stage(m, t, 19, feat + (size_t)n * DDPM_INCEPTION_FEATURES, src, H, W);
   }
   if (ddpm_interrupted()) {
      if (feat != features) free(feat);
      return ddpm_seterr(DDPM_EINTR, "inception: interrupted");
   }
   if (logits) logits_of(m, logits, feat, N);
   if (feat != features) free(feat);
   return DDPM_OK;
}

