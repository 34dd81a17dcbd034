/*
 * unet_run.c — the U-Net's activation plan, forward and backward.
 *
 * plan() lays out, once per input shape (N, H, W) and mode, everything a pass
 * touches in one arena, so forward and backward allocate nothing, and the
 * arena is reused (only grown) when the shape changes.
 *
 *  - Training plans (gradients enabled) keep, per node, only what backward
 *    cannot recompute cheaply: every node's output y, a ResNet block's conv1
 *    output h1, GroupNorm statistics, attention's q, k, v, att, o. Everything
 *    elementwise (SiLU(GroupNorm(x)), the dropout mask from its seed) is
 *    recomputed in backward from those. Output gradients dy live only from
 *    the first consumer's backward to the producer's, and share memory by
 *    liveness; each consumer knows whether its write to a dy is the first
 *    one, which then overwrites, so nothing is zero-filled.
 *  - Inference plans (gradients disabled) keep no activations at all: each
 *    y lives from its producer to its last consumer and shares memory by
 *    liveness (the skip connections are what stays), and the block-internal
 *    tensors are a few shared temporaries.
 *
 * Fused where it saves a pass: GroupNorm + SiLU (+ dropout) in one kernel, the
 * time-embedding add and the residual add in the convolutions' epilogue, the
 * identity skip's gradient in the GroupNorm backward. 3x3 stride-1 layers run
 * through winograd.c, attention and the 1x1 / strided convolutions through
 * the runtime's GEMM (gemm.c) where it helps. Results are deterministic for a
 * fixed thread count (the plan is sized for the thread count and redone when
 * it changes).
 *
 * Timers: with m->prof set (bench/bench_unet.c --profile), every op adds its
 * wall time to a category of ddpm_unet_prof_name.
 *
 * Dimension legend: N batch, C channels, HW = H*W positions, G groups,
 * td = time-embedding width (4*ch).
 */
#include "unet_internal.h"
#include "kernels.h"
#include "bf16.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* A parameter's data and its gradient's, by parameter-table index (the
   pslot fields unet.c fills where it registers them). */
#define PARAM(m, i) ((m)->params + (m)->ptab[i].offset)
#define GRAD(m, i)  ((m)->grads + (m)->ptab[i].offset)

const char *const ddpm_unet_prof_name[DDPM_PROF_N] = {
   "conv3x3 fwd (winograd)", "conv3x3 dW (winograd)", "conv3x3 dX (winograd)",
   "conv3x3 fwd (gemm)", "conv3x3 bwd (gemm)",
   "conv3x3/2 down fwd", "conv3x3/2 down bwd",
   "conv1x1 shortcut fwd", "conv1x1 shortcut bwd",
   "conv bias grad",
   "groupnorm+silu fwd", "groupnorm+silu recompute", "groupnorm+silu bwd",
   "attention fwd", "attention bwd",
   "time embedding",
   "upsample", "concat", "input/output copies",
   "conv3x3 filters (bf16)",
};

/* ---------------------------------------------------------------- profile */

static double now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline double pbegin(const ddpm_unet *m) { return m->prof ? now() : 0.0; }

static inline void pend(ddpm_unet *m, int cat, double t0)
{
   if (!m->prof) return;
   m->prof->t[cat] += now() - t0;
   m->prof->calls[cat]++;
}

/* Runs the statement and, when profiling, adds its wall time to category cat. */
#define TIMED(m, cat, ...) do { double t0_ = pbegin(m); __VA_ARGS__; pend((m), (cat), t0_); } while (0)

/* ---------------------------------------------------------------- plan */

typedef struct planner { float *base; size_t used; } planner;

static float *take(planner *pl, size_t n)
{
   float *p = pl->base ? pl->base + pl->used : NULL;
   pl->used += (n + 15) & ~(size_t)15;     /* keep 64-byte alignment */
   return p;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* A buffer that lives over node steps [lo, hi]. */
typedef struct ival { int lo, hi; size_t size, off; } ival;

/* Offsets for buffers with lifetimes: largest first, each at the lowest
   offset free over its whole lifetime. Returns the extent. */
static size_t pack(ival *v, int n, int *order)
{
   for (int i = 0; i < n; i++) order[i] = i;
   for (int i = 1; i < n; i++)      /* insertion sort, size descending */
      for (int j = i; j > 0 && v[order[j]].size > v[order[j - 1]].size; j--) {
         int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
      }
   size_t extent = 0;
   for (int a = 0; a < n; a++) {
      ival *x = &v[order[a]];
      size_t off = 0;
      int moved = 1;
      while (moved) {
         moved = 0;
         for (int b = 0; b < a; b++) {
            const ival *y = &v[order[b]];
            if (y->hi < x->lo || x->hi < y->lo) continue;            /* disjoint in time */
            if (y->off + y->size <= off || off + x->size <= y->off) continue;
            off = y->off + y->size;
            moved = 1;
         }
      }
      x->off = off;
      extent = max_sz(extent, off + x->size);
   }
   return extent;
}

/* 3x3 stride-1 same convolutions go through winograd.c when it pays (enough
   tiles per image: ddpm_wino_pays) and both sides have more than THIN_MAX_C
   channels (else conv.c runs them direct, conv_thin.c); -DWINO_MIN_C=n sends
   those with fewer than n input or output channels to conv.c. */
#ifndef WINO_MIN_C
#define WINO_MIN_C 1
#endif
static int wino_ok(const ddpm_conv2d_shape *s)
{
   return s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad_t == 1 && s->pad_l == 1 &&
          s->OH == s->H && s->OW == s->W && s->C >= WINO_MIN_C && s->OC >= WINO_MIN_C &&
          !ddpm_conv_thin(s) && ddpm_wino_pays(s->H, s->W);
}

/* Whether the node's convolution cs[k] runs through winograd.c. */
static inline int uses_wino(const node *n, int k) { return (n->wino >> k) & 1; }


/* Whether the current plan runs a 3x3 stride-1 "same" convolution's
   products in bfloat16 with K summed channels (the forward's inputs, the
   input gradient's outputs): K even and at least BF16_MIN_C, the layers
   unet_bf16.c caches filters for; Winograd or not in float32, since with
   bfloat16 products the small-tile layers that float32 sends to im2col pay
   too. The plan's precision, not the model's: a backward runs as its
   forward did even when the precision changed in between. */
static int bf16_k(const ddpm_unet *m, const ddpm_conv2d_shape *s, int K)
{
   return m->pprec == DDPM_BF16 && s->KH == 3 && s->KW == 3 && s->stride == 1 &&
          s->pad_t == 1 && s->pad_l == 1 && s->OH == s->H && s->OW == s->W && K % 2 == 0 &&
          K >= m->pmin_c;
}
static int bf16_fwd(const ddpm_unet *m, const ddpm_conv2d_shape *s) { return bf16_k(m, s, s->C); }
static int bf16_dx(const ddpm_unet *m, const ddpm_conv2d_shape *s) { return bf16_k(m, s, s->OC); }

/* The Winograd weight gradient's products in bfloat16: where the forward's
   are, at 16x16 and up. Packing the transformed operands into slot pairs
   costs about what the products save at 8x8 (batch 8, 256 -> 256: 2.06 ms
   against 1.92 in float32), while at 16x16 and 32x32 they gain 4-25%
   (256 -> 128 at 32x32: 8.2 against 9.9 ms). */
#define BF16_DW_MIN_HW 256
static int bf16_dw(const ddpm_unet *m, const ddpm_conv2d_shape *s)
{
   return bf16_fwd(m, s) && s->H * s->W >= BF16_DW_MIN_HW;
}

/* Work floats per thread for an im2col convolution's products in bfloat16
   (the stride-2 downsampling, and the layers that run on GEMMs rather than
   Winograd), counted for a chunk of all N images, the most conv.c takes:
   the forward [OC,P] over K = 9C, and with keep the backward's dW [OC,K]
   over P and dcols [K,P] over OC. 0 (those products stay float32) past
   BF16_CONV_WORK_MAX, where a large batch of small images would make it
   tens of MB per thread. */
#define BF16_CONV_WORK_MAX ((size_t)2 << 20)
static size_t bf16_conv_work(const ddpm_conv2d_shape *s, int keep)
{
   const int P = s->N * s->OH * s->OW, K = s->C * s->KH * s->KW;
   size_t w = ddpm_gemm_bf16_work_floats(s->OC, P, K);
   if (keep)
      w = max_sz(w, max_sz(ddpm_gemm_bf16_work_floats(s->OC, K, P),
                           ddpm_gemm_bf16_work_floats(K, P, s->OC)));
   return w <= BF16_CONV_WORK_MAX ? w : 0;
}

static size_t conv_scratch(const ddpm_unet *m, const ddpm_conv2d_shape *s, int wino, int keep)
{
   const int threads = ddpm_omp_max_threads();
   size_t f = wino ? ddpm_wino_scratch_floats(s->N, s->C, s->OC, s->H, s->W, keep, threads)
                   : ddpm_conv2d_scratch_floats(s);
   /* with activations kept (training) both directions make their filters
      within the pass; without, the forward's come from unet_bf16.c's cache */
   if (bf16_fwd(m, s))
      f = max_sz(f, keep ? ddpm_wino_bf16_scratch_floats_w(s->N, s->C, s->OC, s->H, s->W, threads)
                         : ddpm_wino_bf16_scratch_floats(s->N, s->C, s->OC, s->H, s->W, threads));
   if (keep && bf16_dx(m, s))
      f = max_sz(f, ddpm_wino_bf16_scratch_floats_w(s->N, s->OC, s->C, s->H, s->W, threads));
   return f;
}

static size_t out_size(const ddpm_unet *m, const node *n, int N)
{
   size_t sz = (size_t)N * n->Cout * n->H * n->W;
   if (n->type == N_CONV) sz = (size_t)N * n->Cout * n->cs[0].OH * n->cs[0].OW;
   if (n->type == N_UPSAMPLE) sz *= 4;
   (void)m;
   return sz;
}

/* Shapes, consumers and scratch sizes of every node; no memory. */
static void shapes(ddpm_unet *m, int N, int H0, int W0, int keep, size_t *scratch,
                   size_t *gmax, size_t *attn_tmp, int *maxc, size_t *gwork)
{
   *scratch = *gmax = *attn_tmp = *gwork = 0;
   *maxc = 0;
   for (int i = 0; i < m->nnodes; i++) {
      node *n = &m->nodes[i];
      n->last_use = -1;
      n->H = H0 >> n->lvl;
      n->W = W0 >> n->lvl;
      n->wino = 0;
   }
   for (int i = 0; i < m->nnodes; i++) {
      node *n = &m->nodes[i];
      const int H = n->H, W = n->W;
      const size_t HW = (size_t)H * W, NC = (size_t)N * n->C, NCo = (size_t)N * n->Cout;
      int src[2] = { n->in, n->type == N_CONCAT ? n->in2 : -1 };
      for (int k = 0; k < 2; k++)
         if (src[k] >= 0) m->nodes[src[k]].last_use = i;
      switch (n->type) {
      case N_CONV:
         if (n->stride == 1)
            n->cs[0] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 3, 1, 1, 1, 1, 1);
         else   /* official downsampling: zero padding at bottom/right only */
            n->cs[0] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 3, 2, 0, 0, 1, 1);
         n->wino = wino_ok(&n->cs[0]);
         *scratch = max_sz(*scratch, conv_scratch(m, &n->cs[0], n->wino, keep));
         if (!n->wino) *gwork = max_sz(*gwork, ddpm_conv2d_gemm_work_floats(&n->cs[0]));
         if (!n->wino && m->pprec == DDPM_BF16)
            *gwork = max_sz(*gwork, bf16_conv_work(&n->cs[0], keep));
         break;
      case N_RES:
         n->cs[CS_CONV1] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 3, 1, 1, 1, 1, 1);
         n->cs[CS_CONV2] = ddpm_conv2d_make(N, n->Cout, H, W, n->Cout, 3, 1, 1, 1, 1, 1);
         n->cs[CS_SHORT] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 1, 1, 0, 0, 0, 0);
         for (int k = 0; k < 3; k++) {
            if (k == CS_SHORT && !n->has_short) continue;
            int w = k != CS_SHORT && wino_ok(&n->cs[k]);   /* 1x1: GEMM */
            n->wino |= w << k;
            *scratch = max_sz(*scratch, conv_scratch(m, &n->cs[k], w, keep));
            if (!w) *gwork = max_sz(*gwork, ddpm_conv2d_gemm_work_floats(&n->cs[k]));
            if (!w && k != CS_SHORT && m->pprec == DDPM_BF16)
               *gwork = max_sz(*gwork, bf16_conv_work(&n->cs[k], keep));
         }
         if (n->has_short && m->pprec == DDPM_BF16) {   /* the 1x1 products */
            *gwork = max_sz(*gwork, ddpm_gemm_bf16_work_floats(n->Cout, (int)HW, n->C));
            if (keep)   /* backward: dW [Cout,C] over HW, dX [C,HW] over Cout */
               *gwork = max_sz(*gwork, max_sz(ddpm_gemm_bf16_work_floats(n->Cout, n->C, (int)HW),
                                              ddpm_gemm_bf16_work_floats(n->C, (int)HW, n->Cout)));
         }
         *gmax = max_sz(*gmax, max_sz(NC, NCo) * HW);
         if (n->Cout > *maxc) *maxc = n->Cout;
         break;
      case N_ATTN:
         if (keep)
            *scratch = max_sz(*scratch, (size_t)N * ddpm_attention_scratch_floats(n->C, (int)HW));
         *attn_tmp = max_sz(*attn_tmp, (size_t)N * (4 * (size_t)n->C * HW + HW * HW));
         *gwork = max_sz(*gwork, ddpm_attention_gemm_work_floats(n->C, (int)HW));
         if (m->pprec == DDPM_BF16) {   /* products [C,P] over C, [P,P] over C, [C,P] over P */
            *gwork = max_sz(*gwork, max_sz(ddpm_gemm_bf16_work_floats(n->C, (int)HW, n->C),
                                           ddpm_gemm_bf16_work_floats((int)HW, (int)HW, n->C)));
            if (keep)   /* backward's weight gradients: [C,C] over P */
               *gwork = max_sz(*gwork, ddpm_gemm_bf16_work_floats(n->C, n->C, (int)HW));
         }
         *gmax = max_sz(*gmax, NC * HW);
         break;
      case N_OUTNORM:
         *gmax = max_sz(*gmax, NC * HW);
         break;
      }
   }
   /* the first write in backward comes from the last consumer in forward */
   for (int i = 0; i < m->nnodes; i++) {
      node *n = &m->nodes[i];
      n->first_in = n->in < 0 || m->nodes[n->in].last_use == i;
      n->first_in2 = n->type == N_CONCAT && m->nodes[n->in2].last_use == i;
   }
}

/* Fixed part of the arena: one pass sizes it (base NULL), a second places it. */
static void layout_fixed(ddpm_unet *m, planner *pl, int N, int H0, int W0, int keep,
                         size_t scratch, size_t gmax, size_t attn_tmp, int maxc, size_t gwork)
{
   const int G = m->cfg.groups, td = m->temb_dim;
   const size_t NG = (size_t)N * G;
   m->xin = keep ? take(pl, (size_t)N * m->cfg.in_ch * H0 * W0) : NULL;
   m->e = take(pl, (size_t)N * m->cfg.ch);
   m->l1 = take(pl, (size_t)N * td);
   m->s1 = take(pl, (size_t)N * td);
   m->temb = take(pl, (size_t)N * td);
   m->st = take(pl, (size_t)N * td);
   m->dst = keep ? take(pl, (size_t)N * td) : NULL;
   m->dtmp1 = keep ? take(pl, (size_t)N * td) : NULL;
   m->dtmp2 = keep ? take(pl, (size_t)N * td) : NULL;
   m->tp = take(pl, (size_t)N * maxc);
   m->dtp = keep ? take(pl, (size_t)N * maxc) : NULL;
   m->tvals = take(pl, (size_t)N);
   m->scratch = take(pl, scratch);
   m->scratch_floats = scratch;
   m->gwork_per = (gwork + 15) & ~(size_t)15;
   m->gwork = take(pl, m->gwork_per * (size_t)ddpm_omp_max_threads());
   for (int k = 0; k < 3; k++) m->T[k] = take(pl, gmax);
   m->attn_tmp = keep ? NULL : take(pl, attn_tmp);
   m->stat_mean = keep ? NULL : take(pl, 2 * NG);
   m->stat_rstd = keep ? NULL : take(pl, NG);
   for (int i = 0; i < m->nnodes; i++) {
      node *n = &m->nodes[i];
      const size_t HW = (size_t)n->H * n->W, NC = (size_t)N * n->C, NCo = (size_t)N * n->Cout;
      n->h1 = n->q = n->k = n->v = n->att = n->o = NULL;
      for (int k = 0; k < 2; k++) n->mean[k] = n->rstd[k] = NULL;
      if (!keep) continue;
      int nstat = n->type == N_RES ? 2 : (n->type == N_ATTN || n->type == N_OUTNORM) ? 1 : 0;
      for (int k = 0; k < nstat; k++) {
         n->mean[k] = take(pl, 2 * NG);
         n->rstd[k] = take(pl, NG);
      }
      if (n->type == N_RES) n->h1 = take(pl, NCo * HW);
      if (n->type == N_ATTN) {
         n->q = take(pl, NC * HW);
         n->k = take(pl, NC * HW);
         n->v = take(pl, NC * HW);
         n->o = take(pl, NC * HW);
         n->att = take(pl, (size_t)N * HW * HW);
      }
      /* outputs: all but the last (which is the caller's out) */
      if (i < m->nnodes - 1) n->y = take(pl, out_size(m, n, N));
   }
}

/* Buffers that share memory by lifetime: dy of every node but the last when
   keeping (lives from the last consumer's backward to the node's own), y of
   every node but the last otherwise (from the node to its last consumer). */
static size_t layout_shared(ddpm_unet *m, int N, int keep, ival *iv, int *order)
{
   const int nn = m->nnodes - 1;
   for (int i = 0; i < nn; i++) {
      const node *n = &m->nodes[i];
      iv[i].lo = i;
      iv[i].hi = n->last_use >= i ? n->last_use : i;
      iv[i].size = (out_size(m, n, N) + 15) & ~(size_t)15;
   }
   (void)keep;
   return pack(iv, nn, order);
}

static int plan(ddpm_unet *m, int N, int H, int W, int keep)
{
   const int threads = ddpm_omp_max_threads();
   if (m->arena && m->pN == N && m->pH == H && m->pW == W && m->pkeep == keep &&
       m->pthreads == threads && m->pprec == m->precision && m->pmin_c == BF16_MIN_C(m))
      return DDPM_OK;
   m->have_forward = 0;
   m->pN = 0;
   m->pprec = m->precision;   /* shapes() sizes the scratch for these */
   m->pmin_c = BF16_MIN_C(m);
   size_t sc, gm, at, gw;
   int maxc;
   shapes(m, N, H, W, keep, &sc, &gm, &at, &maxc, &gw);
   ival *iv = malloc((size_t)m->nnodes * sizeof *iv);
   int *order = malloc((size_t)m->nnodes * sizeof *order);
   if (!iv || !order) {
      free(iv); free(order);
      return ddpm_seterr(DDPM_ENOMEM, "unet: out of memory planning activations");
   }
   planner pl = {NULL, 0};
   layout_fixed(m, &pl, N, H, W, keep, sc, gm, at, maxc, gw);
   const size_t fixed = pl.used;
   const size_t shared = layout_shared(m, N, keep, iv, order);
   const size_t total = fixed + shared;
   if (total > m->arena_cap) {
      free(m->arena);
      m->arena = NULL;
      m->arena_cap = m->arena_floats = 0;
      float *a = ddpm_big_alloc(total * sizeof(float));
      if (!a) {
         free(iv); free(order);
         return ddpm_seterr(DDPM_ENOMEM, "unet: out of memory for activations of batch %d at "
                            "%dx%d (%.1f MB)", N, H, W, total * 4.0 / 1e6);
      }
      m->arena = a;
      m->arena_cap = total;
   }
   pl.base = m->arena;
   pl.used = 0;
   layout_fixed(m, &pl, N, H, W, keep, sc, gm, at, maxc, gw);
   float *sh = m->arena + fixed;
   for (int i = 0; i < m->nnodes - 1; i++) {
      node *n = &m->nodes[i];
      if (keep) n->dy = sh + iv[i].off;
      else { n->y = sh + iv[i].off; n->dy = NULL; }
   }
   m->nodes[m->nnodes - 1].y = m->nodes[m->nnodes - 1].dy = NULL;
   free(iv); free(order);
   m->arena_floats = total;
   m->pN = N; m->pH = H; m->pW = W; m->pkeep = keep; m->pthreads = threads;
   return DDPM_OK;
}

static inline const float *input_of(ddpm_unet *m, int idx)
{
   return idx < 0 ? m->xcur : m->nodes[idx].y;
}

static inline float *dinput_of(ddpm_unet *m, int idx)
{
   return idx < 0 ? m->dxcur : m->nodes[idx].dy;
}

/* The dropout seed of node i: splitmix64's i+1-th output after seed. */
static uint64_t node_seed(uint64_t seed, int i)
{
   return ddpm_splitmix64(seed + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
}

/* The dropout of node idx in the current pass (none in evaluation). */
static ddpm_dropout node_dropout(const ddpm_unet *m, int idx)
{
   if (!m->fwd_dropout) return DDPM_NO_DROPOUT;
   return (ddpm_dropout){m->cfg.dropout, node_seed(m->fwd_seed, idx), m->fwd_first};
}

/* ---------------------------------------------------------------- convolutions */

/* The GEMMs' work space: their products in bfloat16 when the model runs in
   bf16 (attention, the 1x1 shortcuts and the im2col convolutions, forward
   and backward; the sums stay float32). */
static ddpm_gemm_ws gws(const ddpm_unet *m)
{
   ddpm_gemm_ws w = { m->gwork, m->gwork_per, m->pthreads, m->pprec == DDPM_BF16 };
   return w;
}

static void conv_fwd(ddpm_unet *m, float *out, const float *in, const float *w,
                     const ddpm_conv_epi *e, const ddpm_conv2d_shape *s, int wino)
{
   double t0 = pbegin(m);
   if (bf16_fwd(m, s) && m->pkeep) {
      /* training: the weights change every step, so the filters are made
         within the pass, a group of output rows just before its products,
         not cached: in the cache every step would write them out and read
         them back through memory (twice the 3x3 weights' bytes, 240 MB for
         CIFAR-10); made per group they stay in the core's cache */
      ddpm_wino_bf16_forward_w(out, m->scratch, in, w, 0, e, s->N, s->C, s->H, s->W, s->OC);
      pend(m, PF_CONV3_FWD, t0);
      return;
   }
   const uint32_t *U = bf16_fwd(m, s) ? ddpm_unet_bf16_filters(m, (size_t)(w - m->params)) : NULL;
   if (U) {
      ddpm_wino_bf16_forward(out, m->scratch, in, U, e, s->N, s->C, s->H, s->W, s->OC);
      pend(m, PF_CONV3_FWD, t0);
      return;
   }
   if (wino) {
      ddpm_wino_forward(out, m->scratch, m->scratch_floats, in, w, e, s->N, s->C, s->H, s->W,
                        s->OC);
      pend(m, PF_CONV3_FWD, t0);
      return;
   }
   ddpm_gemm_ws ws = gws(m);
   ddpm_conv2d_forward_epi(out, m->scratch, in, w, e, s, &ws);
   pend(m, s->KH == 1 ? PF_SHORT_FWD : s->stride == 2 ? PF_DOWN_FWD : PF_CONVG_FWD, t0);
}

/* din (+)= conv3x3(dout) with the turned filters, the products in bfloat16
   (bf16_dx): the filters made within the pass on every call, since in
   training the weights change every step. */
static void conv_dx_bf16(ddpm_unet *m, float *din, int din_acc, const float *dout,
                         const float *w, const ddpm_conv2d_shape *s)
{
   double t0 = pbegin(m);
   const ddpm_conv_epi e = { NULL, NULL, din_acc ? din : NULL };
   ddpm_wino_bf16_forward_w(din, m->scratch, dout, w, 1, &e, s->N, s->OC, s->H, s->W, s->C);
   pend(m, PF_CONV3_DX, t0);
}

/* din (+)= ..., dw += ..., db += ... (each may be NULL); with bfloat16 the
   Winograd weight gradient's products too, where the layer's forward ran
   in bfloat16. */
static void conv_bwd(ddpm_unet *m, float *din, int din_acc, float *dw, float *db,
                     const float *dout, const float *in, const float *w,
                     const ddpm_conv2d_shape *s, int wino)
{
   double t0 = pbegin(m);
   const int dx16 = din && bf16_dx(m, s);
   if (!wino) {
      ddpm_gemm_ws ws = gws(m);
      ddpm_conv2d_backward_ex(dx16 ? NULL : din, din_acc, dw, db, m->scratch, dout, in, w, s, &ws);
      pend(m, s->KH == 1 ? PF_SHORT_BWD : s->stride == 2 ? PF_DOWN_BWD : PF_CONVG_BWD, t0);
      if (dx16) conv_dx_bf16(m, din, din_acc, dout, w, s);
      return;
   }
   if (db && !dw) {
      ddpm_conv_bias_backward(db, dout, s->N, s->OC, (int64_t)s->H * s->W);
      pend(m, PF_BIAS_BWD, t0);
   }
   if (dw) {   /* the bias's gradient with the weights' */
      t0 = pbegin(m);
      (bf16_dw(m, s) ? ddpm_wino_bf16_backward_weight : ddpm_wino_backward_weight)(
         dw, db, m->scratch, m->scratch_floats, dout, in, s->N, s->C, s->H, s->W, s->OC);
      pend(m, PF_CONV3_DW, t0);
   }
   if (din && dx16) {
      conv_dx_bf16(m, din, din_acc, dout, w, s);
   } else if (din) {
      t0 = pbegin(m);
      ddpm_wino_backward_data(din, din_acc, m->scratch, m->scratch_floats, dout, w, s->N, s->C,
                              s->H, s->W, s->OC);
      pend(m, PF_CONV3_DX, t0);
   }
}

/* ---------------------------------------------------------------- forward */

/* The statistics buffers of a node's k-th GroupNorm: its own when the plan
   keeps activations for backward, else the shared inference ones. */
static float *stat_mean(ddpm_unet *m, node *n, int k)
{
   return m->pkeep ? n->mean[k] : m->stat_mean;
}

static float *stat_rstd(ddpm_unet *m, node *n, int k)
{
   return m->pkeep ? n->rstd[k] : m->stat_rstd;
}

static void res_forward(ddpm_unet *m, node *n, int idx, float *y)
{
   const res_params *p = &n->p.res;
   const int N = m->pN, G = m->cfg.groups, HW = n->H * n->W, td = m->temb_dim;
   const float eps = m->cfg.eps;
   const float *x = input_of(m, n->in);
   float *a1 = m->T[0], *d2 = m->T[1], *h1 = m->pkeep ? n->h1 : m->T[2];
   TIMED(m, PF_GN_FWD,
         ddpm_gn_act_forward(a1, stat_mean(m, n, 0), stat_rstd(m, n, 0), DDPM_GN_COMPUTE, x,
                             PARAM(m, p->norm1.w), PARAM(m, p->norm1.b), N, n->C, HW, G, eps,
                             DDPM_ACT_SILU, DDPM_NO_DROPOUT));
   /* conv1's bias and Dense(swish(temb)) are one per-image bias */
   TIMED(m, PF_TEMB, {
      ddpm_linear_forward(m->tp, m->st, PARAM(m, p->time_emb_proj.w),
                          PARAM(m, p->time_emb_proj.b), N, td, n->Cout);
      const float *b1 = PARAM(m, p->conv1.b);
      for (int b = 0; b < N; b++)
         for (int c = 0; c < n->Cout; c++) m->tp[b * n->Cout + c] += b1[c];
   });
   ddpm_conv_epi e1 = { NULL, m->tp, NULL };
   conv_fwd(m, h1, a1, PARAM(m, p->conv1.w), &e1, &n->cs[CS_CONV1], uses_wino(n, CS_CONV1));
   TIMED(m, PF_GN_FWD,
         ddpm_gn_act_forward(d2, stat_mean(m, n, 1), stat_rstd(m, n, 1), DDPM_GN_COMPUTE, h1,
                             PARAM(m, p->norm2.w), PARAM(m, p->norm2.b), N, n->Cout, HW, G, eps,
                             DDPM_ACT_SILU, node_dropout(m, idx)));
   const float *skip = x;
   if (n->has_short) {
      ddpm_conv_epi es = { PARAM(m, p->shortcut.b), NULL, NULL };
      conv_fwd(m, y, x, PARAM(m, p->shortcut.w), &es, &n->cs[CS_SHORT], uses_wino(n, CS_SHORT));
      skip = y;
   }
   ddpm_conv_epi e2 = { PARAM(m, p->conv2.b), NULL, skip };
   conv_fwd(m, y, d2, PARAM(m, p->conv2.w), &e2, &n->cs[CS_CONV2], uses_wino(n, CS_CONV2));
}

static void attn_forward(ddpm_unet *m, node *n, float *y)
{
   const attn_params *p = &n->p.attn;
   const int N = m->pN, HW = n->H * n->W, C = n->C;
   const float *x = input_of(m, n->in);
   float *h = m->T[0];
   TIMED(m, PF_GN_FWD,
         ddpm_gn_act_forward(h, stat_mean(m, n, 0), stat_rstd(m, n, 0), DDPM_GN_COMPUTE, x,
                             PARAM(m, p->norm.w), PARAM(m, p->norm.b), N, C, HW, m->cfg.groups,
                             m->cfg.eps, DDPM_ACT_NONE, DDPM_NO_DROPOUT));
   float *q = n->q, *k = n->k, *v = n->v, *o = n->o, *att = n->att;
   if (!m->pkeep) {   /* shared temporaries */
      const size_t NCP = (size_t)N * C * HW;
      q = m->attn_tmp; k = q + NCP; v = k + NCP; o = v + NCP; att = o + NCP;
   }
   ddpm_gemm_ws ws = gws(m);
   TIMED(m, PF_ATTN_FWD,
         ddpm_attention_forward_res(y, q, k, v, att, o, h, x, PARAM(m, p->q.w), PARAM(m, p->q.b),
                                    PARAM(m, p->k.w), PARAM(m, p->k.b), PARAM(m, p->v.w),
                                    PARAM(m, p->v.b), PARAM(m, p->out.w), PARAM(m, p->out.b),
                                    N, C, HW, &ws));
}

static void concat_forward(ddpm_unet *m, node *n, float *y)
{
   const int N = m->pN;
   size_t HW = (size_t)n->H * n->W, a = (size_t)n->C * HW, b = (size_t)n->C2 * HW;
   const float *xa = input_of(m, n->in), *xb = input_of(m, n->in2);
   double t0 = pbegin(m);
   #pragma omp parallel for schedule(static)
   for (int i = 0; i < 2 * N; i++) {
      if (i % 2 == 0) memcpy(y + (i / 2) * (a + b), xa + (i / 2) * a, a * sizeof(float));
      else memcpy(y + (i / 2) * (a + b) + a, xb + (i / 2) * b, b * sizeof(float));
   }
   pend(m, PF_CONCAT, t0);
}

static void node_forward(ddpm_unet *m, int idx, float *y)
{
   node *n = &m->nodes[idx];
   const int N = m->pN;
   switch (n->type) {
   case N_CONV: {
      ddpm_conv_epi e = { PARAM(m, n->p.conv.b), NULL, NULL };
      conv_fwd(m, y, input_of(m, n->in), PARAM(m, n->p.conv.w), &e, &n->cs[0], n->wino);
      break;
   }
   case N_RES: res_forward(m, n, idx, y); break;
   case N_ATTN: attn_forward(m, n, y); break;
   case N_UPSAMPLE:
      TIMED(m, PF_UPSAMPLE, ddpm_upsample2x_forward(y, input_of(m, n->in), N, n->C, n->H, n->W));
      break;
   case N_CONCAT: concat_forward(m, n, y); break;
   case N_OUTNORM:
      TIMED(m, PF_GN_FWD,
            ddpm_gn_act_forward(y, stat_mean(m, n, 0), stat_rstd(m, n, 0), DDPM_GN_COMPUTE,
                                input_of(m, n->in), PARAM(m, n->p.norm.w), PARAM(m, n->p.norm.b),
                                N, n->C, n->H * n->W, m->cfg.groups, m->cfg.eps, DDPM_ACT_SILU,
                                DDPM_NO_DROPOUT));
      break;
   }
}

int ddpm_unet_forward(ddpm_unet *m, float *out, const float *x, const float *t,
                      int N, int H, int W)
{
   const ddpm_unet_config *c = &m->cfg;
   int div = 1 << (c->num_levels - 1);
   m->have_forward = 0;
   if (N < 1) return ddpm_seterr(DDPM_ESHAPE, "unet forward: batch size %d must be positive", N);
   if (H < div || W < div || H % div || W % div)
      return ddpm_seterr(DDPM_ESHAPE, "unet forward: input %dx%d must be a positive multiple of "
                         "2^(levels-1) = %d in both dimensions", H, W, div);
   const int keep = m->training || m->grad_enabled;
   int rc = plan(m, N, H, W, keep);
   if (rc != DDPM_OK) return rc;
   if (m->pprec == DDPM_BF16 && !keep) {   /* cached filters up to date with the weights */
      double t0 = pbegin(m);
      rc = ddpm_unet_bf16_refresh(m);
      pend(m, PF_BF16_FILT, t0);
      if (rc != DDPM_OK) return rc;
   }
   m->fwd_dropout = m->training && c->dropout > 0;
   m->fwd_seed = m->dropout_seed;
   m->fwd_first = m->dropout_first;
   const int td = m->temb_dim;
   double t0 = pbegin(m);
   if (keep) {   /* backward reads x again; the caller may have changed it by then */
      memcpy(m->xin, x, (size_t)N * c->in_ch * H * W * sizeof(float));
      m->xcur = m->xin;
   } else {
      m->xcur = x;
   }
   memcpy(m->tvals, t, (size_t)N * sizeof(float));
   pend(m, PF_COPY, t0);
   /* temb = Dense(swish(Dense(sinusoid(t)))); st = swish(temb) is what every
      ResNet block projects. */
   t0 = pbegin(m);
   ddpm_timestep_embedding(m->e, m->tvals, N, c->ch);
   ddpm_linear_forward(m->l1, m->e, PARAM(m, m->temb1.w), PARAM(m, m->temb1.b), N, c->ch, td);
   ddpm_silu_forward(m->s1, m->l1, (int64_t)N * td);
   ddpm_linear_forward(m->temb, m->s1, PARAM(m, m->temb2.w), PARAM(m, m->temb2.b), N, td, td);
   ddpm_silu_forward(m->st, m->temb, (int64_t)N * td);
   pend(m, PF_TEMB, t0);
   for (int i = 0; i < m->nnodes; i++) {
      if (ddpm_interrupted()) return ddpm_seterr(DDPM_EINTR, "unet forward: interrupted");
      node_forward(m, i, i == m->nnodes - 1 ? out : m->nodes[i].y);
   }
   m->have_forward = keep;
   return DDPM_OK;
}

/* ---------------------------------------------------------------- backward */

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

/*
 * With T0, T1 [N,Cout,HW] and T2 [N,C,HW]:
 *   skip:   shortcut conv backward into dx, or (identity) folded into the last step
 *   T0 = d2 = drop(silu(gn2(h1)))            recomputed from the saved statistics
 *   dW2, db2 from (dy, T0); T1 = dd2 = conv2^T dy
 *   T0 = dh1 = gn2 backward of T1; dtp = its per-channel sums (time embedding, conv1 bias)
 *   T1 = a1 = silu(gn1(x))                   recomputed
 *   dW1 from (T0, T1); T2 = da1 = conv1^T T0
 *   dx (+)= gn1 backward of T2 (+ dy for an identity skip)
 */
static void res_backward(ddpm_unet *m, node *n, int idx, const float *dy)
{
   const res_params *p = &n->p.res;
   const int N = m->pN, G = m->cfg.groups, HW = n->H * n->W, td = m->temb_dim;
   const float eps = m->cfg.eps;
   const float *x = input_of(m, n->in);
   float *dx = dinput_of(m, n->in);
   float *T0 = m->T[0], *T1 = m->T[1], *T2 = m->T[2];
   const ddpm_dropout drop = node_dropout(m, idx);
   ddpm_write dx_mode = n->first_in ? DDPM_OVERWRITE : DDPM_ACCUMULATE;
   if (n->has_short) {
      conv_bwd(m, dx, dx_mode, GRAD(m, p->shortcut.w), GRAD(m, p->shortcut.b), dy, x,
               PARAM(m, p->shortcut.w), &n->cs[CS_SHORT], uses_wino(n, CS_SHORT));
      if (dx) dx_mode = DDPM_ACCUMULATE;
   }
   TIMED(m, PF_GN_RECOMP,
         ddpm_gn_act_forward(T0, n->mean[1], n->rstd[1], DDPM_GN_REUSE, n->h1,
                             PARAM(m, p->norm2.w), PARAM(m, p->norm2.b), N, n->Cout, HW, G, eps,
                             DDPM_ACT_SILU, drop));
   conv_bwd(m, T1, DDPM_OVERWRITE, GRAD(m, p->conv2.w), GRAD(m, p->conv2.b), dy, T0,
            PARAM(m, p->conv2.w), &n->cs[CS_CONV2], uses_wino(n, CS_CONV2));
   TIMED(m, PF_GN_BWD,
         ddpm_gn_act_backward(T0, DDPM_OVERWRITE, GRAD(m, p->norm2.w), GRAD(m, p->norm2.b), m->dtp,
                              T1, T1, n->h1, n->mean[1], n->rstd[1], PARAM(m, p->norm2.w),
                              PARAM(m, p->norm2.b), NULL, N, n->Cout, HW, G, DDPM_ACT_SILU,
                              drop));
   /* the per-image bias of conv1: Dense(swish(temb)) + conv1.bias */
   TIMED(m, PF_TEMB, {
      ddpm_linear_backward(m->dst, GRAD(m, p->time_emb_proj.w), GRAD(m, p->time_emb_proj.b),
                           m->dtp, m->st, PARAM(m, p->time_emb_proj.w), N, td, n->Cout);
      float *db1 = GRAD(m, p->conv1.b);
      for (int c = 0; c < n->Cout; c++) {
         double s = 0;
         for (int b = 0; b < N; b++) s += m->dtp[b * n->Cout + c];
         db1[c] += (float)s;
      }
   });
   TIMED(m, PF_GN_RECOMP,
         ddpm_gn_act_forward(T1, n->mean[0], n->rstd[0], DDPM_GN_REUSE, x, PARAM(m, p->norm1.w),
                             PARAM(m, p->norm1.b), N, n->C, HW, G, eps, DDPM_ACT_SILU,
                             DDPM_NO_DROPOUT));
   conv_bwd(m, T2, DDPM_OVERWRITE, GRAD(m, p->conv1.w), NULL, T0, T1, PARAM(m, p->conv1.w),
            &n->cs[CS_CONV1], uses_wino(n, CS_CONV1));
   TIMED(m, PF_GN_BWD,
         ddpm_gn_act_backward(dx, dx_mode, GRAD(m, p->norm1.w), GRAD(m, p->norm1.b), NULL, T2, T2,
                              x, n->mean[0], n->rstd[0], PARAM(m, p->norm1.w),
                              PARAM(m, p->norm1.b), n->has_short ? NULL : dy, N, n->C, HW, G,
                              DDPM_ACT_SILU, DDPM_NO_DROPOUT));
}

static void attn_backward(ddpm_unet *m, node *n, const float *dy)
{
   const attn_params *p = &n->p.attn;
   const int N = m->pN, HW = n->H * n->W, C = n->C, G = m->cfg.groups;
   const float *x = input_of(m, n->in);
   float *dx = dinput_of(m, n->in);
   float *h = m->T[0], *dh = m->T[1];
   TIMED(m, PF_GN_RECOMP,
         ddpm_gn_act_forward(h, n->mean[0], n->rstd[0], DDPM_GN_REUSE, x, PARAM(m, p->norm.w),
                             PARAM(m, p->norm.b), N, C, HW, G, m->cfg.eps, DDPM_ACT_NONE,
                             DDPM_NO_DROPOUT));
   ddpm_gemm_ws ws = gws(m);
   TIMED(m, PF_ATTN_BWD,
         ddpm_attention_backward_ex(dh, DDPM_OVERWRITE, GRAD(m, p->q.w), GRAD(m, p->q.b),
                                    GRAD(m, p->k.w), GRAD(m, p->k.b), GRAD(m, p->v.w),
                                    GRAD(m, p->v.b), GRAD(m, p->out.w), GRAD(m, p->out.b),
                                    m->scratch, dy, h, n->q, n->k, n->v, n->att, n->o,
                                    PARAM(m, p->q.w), PARAM(m, p->k.w), PARAM(m, p->v.w),
                                    PARAM(m, p->out.w), N, C, HW, &ws));
   /* the residual's gradient dy is folded into the norm's backward */
   TIMED(m, PF_GN_BWD,
         ddpm_gn_act_backward(dx, n->first_in ? DDPM_OVERWRITE : DDPM_ACCUMULATE,
                              GRAD(m, p->norm.w), GRAD(m, p->norm.b), NULL, dh, dh, x, n->mean[0],
                              n->rstd[0], PARAM(m, p->norm.w), PARAM(m, p->norm.b), dy, N, C, HW,
                              G, DDPM_ACT_NONE, DDPM_NO_DROPOUT));
}

static void concat_backward(ddpm_unet *m, node *n, const float *dy)
{
   const int N = m->pN;
   size_t HW = (size_t)n->H * n->W, a = (size_t)n->C * HW, b = (size_t)n->C2 * HW;
   float *da = dinput_of(m, n->in), *db = dinput_of(m, n->in2);
   const int acc_a = !n->first_in, acc_b = !n->first_in2;
   double t0 = pbegin(m);
   #pragma omp parallel for schedule(static)
   for (int i = 0; i < 2 * N; i++) {
      const int img = i / 2, second = i % 2;
      const float *src = dy + img * (a + b) + (second ? a : 0);
      float *dst = second ? db + img * b : da + img * a;
      const size_t len = second ? b : a;
      if (second ? acc_b : acc_a)
         for (size_t j = 0; j < len; j++) dst[j] += src[j];
      else
         memcpy(dst, src, len * sizeof(float));
   }
   pend(m, PF_CONCAT, t0);
}

static void node_backward(ddpm_unet *m, int idx, const float *dy)
{
   node *n = &m->nodes[idx];
   const int N = m->pN;
   const ddpm_write in_mode = n->first_in ? DDPM_OVERWRITE : DDPM_ACCUMULATE;
   switch (n->type) {
   case N_CONV:
      conv_bwd(m, dinput_of(m, n->in), in_mode, GRAD(m, n->p.conv.w), GRAD(m, n->p.conv.b), dy,
               input_of(m, n->in), PARAM(m, n->p.conv.w), &n->cs[0], n->wino);
      break;
   case N_RES: res_backward(m, n, idx, dy); break;
   case N_ATTN: attn_backward(m, n, dy); break;
   case N_UPSAMPLE:
      TIMED(m, PF_UPSAMPLE,
            ddpm_upsample2x_backward_ex(dinput_of(m, n->in), in_mode, dy, N, n->C, n->H, n->W));
      break;
   case N_CONCAT: concat_backward(m, n, dy); break;
   case N_OUTNORM:
      /* dy is this node's own buffer and dead afterwards: it is the work area */
      TIMED(m, PF_GN_BWD,
            ddpm_gn_act_backward(dinput_of(m, n->in), in_mode, GRAD(m, n->p.norm.w),
                                 GRAD(m, n->p.norm.b), NULL, (float *)dy, dy, input_of(m, n->in),
                                 n->mean[0], n->rstd[0], PARAM(m, n->p.norm.w),
                                 PARAM(m, n->p.norm.b), NULL, N, n->C, n->H * n->W,
                                 m->cfg.groups, DDPM_ACT_SILU, DDPM_NO_DROPOUT));
      break;
   }
}

int ddpm_unet_backward(ddpm_unet *m, float *dx, const float *dout)
{
   if (!m->have_forward)
      return ddpm_seterr(DDPM_EINVAL, "unet backward: no forward with gradients to go back "
                         "through (call forward first, with gradients enabled)");
   const int N = m->pN, td = m->temb_dim;
   const ddpm_unet_config *c = &m->cfg;
   m->dxcur = dx;
   zero(m->dst, (size_t)N * td);
   for (int i = m->nnodes - 1; i >= 0; i--) {
      if (ddpm_interrupted()) return ddpm_seterr(DDPM_EINTR, "unet backward: interrupted");
      node_backward(m, i, i == m->nnodes - 1 ? dout : m->nodes[i].dy);
   }
   /* time embedding: st = swish(temb), temb = Dense2(swish(Dense1(e))) */
   double t0 = pbegin(m);
   float *d1 = m->dtmp1, *d2 = m->dtmp2;
   zero(d1, (size_t)N * td);
   ddpm_silu_backward(d1, m->dst, m->temb, (int64_t)N * td);
   zero(d2, (size_t)N * td);
   ddpm_linear_backward(d2, GRAD(m, m->temb2.w), GRAD(m, m->temb2.b), d1, m->s1,
                        PARAM(m, m->temb2.w), N, td, td);
   zero(d1, (size_t)N * td);
   ddpm_silu_backward(d1, d2, m->l1, (int64_t)N * td);
   ddpm_linear_backward(NULL, GRAD(m, m->temb1.w), GRAD(m, m->temb1.b), d1, m->e,
                        PARAM(m, m->temb1.w), N, c->ch, td);
   pend(m, PF_TEMB, t0);
   m->dxcur = NULL;
   return DDPM_OK;
}
