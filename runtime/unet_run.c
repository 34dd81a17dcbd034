/*
 * unet_run.c — the U-Net's activation plan, forward and backward.
 *
 * plan() lays every activation, saved buffer and gradient of one input shape
 * (N, H, W) into a single arena, once; forward and backward then allocate
 * nothing. Output gradients (dy) sit in one contiguous region that backward
 * zeroes with a single memset, because every node accumulates into its
 * producers' dy (skip connections are consumed twice).
 *
 * Dimension legend: N batch, C channels, HW = H*W positions, G groups,
 * td = time-embedding width (4*ch).
 */
#include "unet_internal.h"

#include <stdlib.h>
#include <string.h>

#define PW(m, n, k) ((m)->params + (m)->ptab[(n)->p0 + (k)].offset)
#define GW(m, n, k) ((m)->grads + (m)->ptab[(n)->p0 + (k)].offset)

/* ResNet parameter slots (registration order in unet.c). */
enum { R_N1W, R_N1B, R_C1W, R_C1B, R_TW, R_TB, R_N2W, R_N2B, R_C2W, R_C2B, R_SW, R_SB };
/* Attention parameter slots. */
enum { A_GW, A_GB, A_QW, A_QB, A_KW, A_KB, A_VW, A_VB, A_OW, A_OB };
/* Saved buffers. */
enum { S_N1, S_A1, S_H1, S_N2, S_A2, S_D2, S_SC, S_M1, S_R1, S_M2, S_R2 };       /* ResNet */
enum { S_NRM, S_MEAN, S_RSTD, S_Q, S_K, S_V, S_ATT, S_O };                        /* attention, outnorm */

typedef struct planner { float *base; size_t used; } planner;

static float *take(planner *pl, size_t n)
{
   float *p = pl->base ? pl->base + pl->used : NULL;
   pl->used += (n + 15) & ~(size_t)15;     /* keep 64-byte alignment */
   return p;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* One pass over the nodes: sizes when pl->base is NULL, pointers otherwise. */
static void layout(ddpm_unet *m, planner *pl, int N, int H0, int W0,
                   size_t *scratch_floats, size_t *gmax)
{
   const int G = m->cfg.groups, td = m->temb_dim;
   size_t maxc = 0;
   *scratch_floats = 0;
   *gmax = 0;
   m->xin = take(pl, (size_t)N * m->cfg.in_ch * H0 * W0);
   m->e = take(pl, (size_t)N * m->cfg.ch);
   m->l1 = take(pl, (size_t)N * td);
   m->s1 = take(pl, (size_t)N * td);
   m->temb = take(pl, (size_t)N * td);
   m->st = take(pl, (size_t)N * td);
   m->dtmp1 = take(pl, (size_t)N * td);
   m->dtmp2 = take(pl, (size_t)N * td);
   for (int i = 0; i < m->nnodes; i++) {
      node *n = &m->nodes[i];
      int H = H0 >> n->lvl, W = W0 >> n->lvl;
      size_t HW = (size_t)H * W, NC = (size_t)N * n->C, NCo = (size_t)N * n->Cout;
      n->H = H;
      n->W = W;
      size_t ysz = NCo * HW;
      switch (n->type) {
      case N_CONV:
         if (n->stride == 1)
            n->cs[0] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 3, 1, 1, 1, 1, 1);
         else   /* official downsampling: zero padding at bottom/right only */
            n->cs[0] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 3, 2, 0, 0, 1, 1);
         ysz = NCo * (size_t)n->cs[0].OH * n->cs[0].OW;
         *scratch_floats = max_sz(*scratch_floats, ddpm_conv2d_scratch_floats(&n->cs[0]));
         break;
      case N_RES:
         n->cs[0] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 3, 1, 1, 1, 1, 1);
         n->cs[1] = ddpm_conv2d_make(N, n->Cout, H, W, n->Cout, 3, 1, 1, 1, 1, 1);
         n->cs[2] = ddpm_conv2d_make(N, n->C, H, W, n->Cout, 1, 1, 0, 0, 0, 0);
         for (int k = 0; k < 3; k++)
            if (k < 2 || n->has_short)
               *scratch_floats = max_sz(*scratch_floats, ddpm_conv2d_scratch_floats(&n->cs[k]));
         n->s[S_N1] = take(pl, NC * HW);
         n->s[S_A1] = take(pl, NC * HW);
         n->s[S_H1] = take(pl, NCo * HW);
         n->s[S_N2] = take(pl, NCo * HW);
         n->s[S_A2] = take(pl, NCo * HW);
         n->s[S_D2] = m->cfg.dropout > 0 ? take(pl, NCo * HW) : NULL;
         n->s[S_SC] = n->has_short ? take(pl, NCo * HW) : NULL;
         n->s[S_M1] = take(pl, (size_t)N * G);
         n->s[S_R1] = take(pl, (size_t)N * G);
         n->s[S_M2] = take(pl, (size_t)N * G);
         n->s[S_R2] = take(pl, (size_t)N * G);
         *gmax = max_sz(*gmax, max_sz(NC, NCo) * HW);
         maxc = max_sz(maxc, (size_t)n->Cout);
         break;
      case N_ATTN:
         n->s[S_NRM] = take(pl, NC * HW);
         n->s[S_MEAN] = take(pl, (size_t)N * G);
         n->s[S_RSTD] = take(pl, (size_t)N * G);
         n->s[S_Q] = take(pl, NC * HW);
         n->s[S_K] = take(pl, NC * HW);
         n->s[S_V] = take(pl, NC * HW);
         n->s[S_ATT] = take(pl, (size_t)N * HW * HW);
         n->s[S_O] = take(pl, NC * HW);
         *scratch_floats = max_sz(*scratch_floats, ddpm_attention_scratch_floats(n->C, (int)HW));
         *gmax = max_sz(*gmax, NC * HW);
         break;
      case N_UPSAMPLE:
         ysz = NCo * HW * 4;
         break;
      case N_CONCAT:
         break;   /* Cout = C + C2 */
      case N_OUTNORM:
         n->s[S_NRM] = take(pl, NC * HW);
         n->s[S_MEAN] = take(pl, (size_t)N * G);
         n->s[S_RSTD] = take(pl, (size_t)N * G);
         *gmax = max_sz(*gmax, NC * HW);
         break;
      }
      n->y = take(pl, ysz);
   }
   m->tp = take(pl, (size_t)N * maxc);
   m->dtp = take(pl, (size_t)N * maxc);
   m->tvals = take(pl, (size_t)N);
   m->scratch = take(pl, *scratch_floats);
   for (int k = 0; k < 3; k++) m->g[k] = take(pl, *gmax);
   /* Everything below is zeroed at the start of each backward. */
   m->dy_begin = pl->used;
   for (int i = 0; i < m->nnodes; i++) {
      node *n = &m->nodes[i];
      size_t ysz = (size_t)N * n->Cout * n->H * n->W;
      if (n->type == N_CONV) ysz = (size_t)N * n->Cout * n->cs[0].OH * n->cs[0].OW;
      if (n->type == N_UPSAMPLE) ysz *= 4;
      n->dy = take(pl, ysz);
   }
   m->dst = take(pl, (size_t)N * td);
   m->dx = take(pl, (size_t)N * m->cfg.in_ch * H0 * W0);
   m->dy_end = pl->used;
}

static int plan(ddpm_unet *m, int N, int H, int W)
{
   if (m->arena && m->pN == N && m->pH == H && m->pW == W) return DDPM_OK;
   free(m->arena);
   m->arena = NULL;
   m->arena_floats = 0;
   m->have_forward = 0;
   planner pl = {NULL, 0};
   size_t sf, gm;
   layout(m, &pl, N, H, W, &sf, &gm);
   float *a = aligned_alloc(64, pl.used * sizeof(float));
   if (!a) {
      m->pN = 0;
      return ddpm_seterr(DDPM_ENOMEM, "unet: out of memory for activations of batch %d at %dx%d "
                         "(%.1f MB)", N, H, W, pl.used * 4.0 / 1e6);
   }
   pl.base = a;
   pl.used = 0;
   layout(m, &pl, N, H, W, &sf, &gm);
   m->arena = a;
   m->arena_floats = pl.used;
   m->pN = N; m->pH = H; m->pW = W;
   return DDPM_OK;
}

static inline const float *input_of(ddpm_unet *m, int idx)
{
   return idx < 0 ? m->xin : m->nodes[idx].y;
}

static inline float *dinput_of(ddpm_unet *m, int idx)
{
   return idx < 0 ? m->dx : m->nodes[idx].dy;
}

static uint64_t node_seed(uint64_t seed, int i)
{
   uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
   z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
   return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- forward */

static void res_forward(ddpm_unet *m, node *n, int idx)
{
   const int N = m->pN, G = m->cfg.groups, HW = n->H * n->W, td = m->temb_dim;
   const float eps = m->cfg.eps;
   const float *x = input_of(m, n->in);
   size_t sizeC = (size_t)N * n->C * HW, sizeO = (size_t)N * n->Cout * HW;
   ddpm_groupnorm_forward(n->s[S_N1], n->s[S_M1], n->s[S_R1], x, PW(m, n, R_N1W), PW(m, n, R_N1B),
                          N, n->C, HW, G, eps);
   ddpm_silu_forward(n->s[S_A1], n->s[S_N1], (int64_t)sizeC);
   ddpm_conv2d_forward(n->s[S_H1], m->scratch, n->s[S_A1], PW(m, n, R_C1W), PW(m, n, R_C1B), &n->cs[0]);
   /* + Dense(swish(temb)) broadcast over H, W */
   ddpm_linear_forward(m->tp, m->st, PW(m, n, R_TW), PW(m, n, R_TB), N, td, n->Cout);
   float *h1 = n->s[S_H1];
   #pragma omp parallel for collapse(2) schedule(static)
   for (int b = 0; b < N; b++)
      for (int c = 0; c < n->Cout; c++) {
         float v = m->tp[b * n->Cout + c], *p = h1 + ((size_t)b * n->Cout + c) * HW;
         for (int i = 0; i < HW; i++) p[i] += v;
      }
   ddpm_groupnorm_forward(n->s[S_N2], n->s[S_M2], n->s[S_R2], h1, PW(m, n, R_N2W), PW(m, n, R_N2B),
                          N, n->Cout, HW, G, eps);
   ddpm_silu_forward(n->s[S_A2], n->s[S_N2], (int64_t)sizeO);
   const float *d2 = n->s[S_A2];
   if (m->fwd_dropout) {
      ddpm_dropout_forward(n->s[S_D2], n->s[S_A2], (int64_t)sizeO, m->cfg.dropout,
                           node_seed(m->fwd_seed, idx));
      d2 = n->s[S_D2];
   }
   ddpm_conv2d_forward(n->y, m->scratch, d2, PW(m, n, R_C2W), PW(m, n, R_C2B), &n->cs[1]);
   const float *skip = x;
   if (n->has_short) {
      ddpm_conv2d_forward(n->s[S_SC], m->scratch, x, PW(m, n, R_SW), PW(m, n, R_SB), &n->cs[2]);
      skip = n->s[S_SC];
   }
   float *y = n->y;
   #pragma omp parallel for schedule(static)
   for (size_t i = 0; i < sizeO; i++) y[i] += skip[i];
}

static void attn_forward(ddpm_unet *m, node *n)
{
   const int N = m->pN, HW = n->H * n->W;
   const float *x = input_of(m, n->in);
   ddpm_groupnorm_forward(n->s[S_NRM], n->s[S_MEAN], n->s[S_RSTD], x, PW(m, n, A_GW),
                          PW(m, n, A_GB), N, n->C, HW, m->cfg.groups, m->cfg.eps);
   ddpm_attention_forward(n->y, n->s[S_Q], n->s[S_K], n->s[S_V], n->s[S_ATT], n->s[S_O],
                          n->s[S_NRM], PW(m, n, A_QW), PW(m, n, A_QB), PW(m, n, A_KW),
                          PW(m, n, A_KB), PW(m, n, A_VW), PW(m, n, A_VB), PW(m, n, A_OW),
                          PW(m, n, A_OB), N, n->C, HW);
   size_t sz = (size_t)N * n->C * HW;
   float *y = n->y;
   #pragma omp parallel for schedule(static)
   for (size_t i = 0; i < sz; i++) y[i] += x[i];
}

static void concat_forward(ddpm_unet *m, node *n)
{
   const int N = m->pN;
   size_t HW = (size_t)n->H * n->W, a = (size_t)n->C * HW, b = (size_t)n->C2 * HW;
   const float *xa = input_of(m, n->in), *xb = input_of(m, n->in2);
   for (int i = 0; i < N; i++) {
      memcpy(n->y + i * (a + b), xa + i * a, a * sizeof(float));
      memcpy(n->y + i * (a + b) + a, xb + i * b, b * sizeof(float));
   }
}

static void node_forward(ddpm_unet *m, int idx)
{
   node *n = &m->nodes[idx];
   const int N = m->pN;
   switch (n->type) {
   case N_CONV:
      ddpm_conv2d_forward(n->y, m->scratch, input_of(m, n->in), PW(m, n, 0), PW(m, n, 1), &n->cs[0]);
      break;
   case N_RES: res_forward(m, n, idx); break;
   case N_ATTN: attn_forward(m, n); break;
   case N_UPSAMPLE:
      ddpm_upsample2x_forward(n->y, input_of(m, n->in), N, n->C, n->H, n->W);
      break;
   case N_CONCAT: concat_forward(m, n); break;
   case N_OUTNORM: {
      int HW = n->H * n->W;
      ddpm_groupnorm_forward(n->s[S_NRM], n->s[S_MEAN], n->s[S_RSTD], input_of(m, n->in),
                             PW(m, n, 0), PW(m, n, 1), N, n->C, HW, m->cfg.groups, m->cfg.eps);
      ddpm_silu_forward(n->y, n->s[S_NRM], (int64_t)N * n->C * HW);
      break;
   }
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
   int rc = plan(m, N, H, W);
   if (rc != DDPM_OK) return rc;
   m->have_forward = 0;
   m->fwd_dropout = m->training && c->dropout > 0;
   m->fwd_seed = m->dropout_seed;
   const int td = m->temb_dim;
   memcpy(m->xin, x, (size_t)N * c->in_ch * H * W * sizeof(float));
   memcpy(m->tvals, t, (size_t)N * sizeof(float));
   /* temb = Dense(swish(Dense(sinusoid(t)))); st = swish(temb) is what every
      ResNet block projects. */
   ddpm_timestep_embedding(m->e, m->tvals, N, c->ch);
   ddpm_linear_forward(m->l1, m->e, m->params + m->ptab[m->p_temb].offset,
                       m->params + m->ptab[m->p_temb + 1].offset, N, c->ch, td);
   ddpm_silu_forward(m->s1, m->l1, (int64_t)N * td);
   ddpm_linear_forward(m->temb, m->s1, m->params + m->ptab[m->p_temb + 2].offset,
                       m->params + m->ptab[m->p_temb + 3].offset, N, td, td);
   ddpm_silu_forward(m->st, m->temb, (int64_t)N * td);
   for (int i = 0; i < m->nnodes; i++) {
      if (ddpm_interrupted()) return ddpm_seterr(DDPM_EINTR, "unet forward: interrupted");
      node_forward(m, i);
   }
   node *last = &m->nodes[m->nnodes - 1];
   memcpy(out, last->y, (size_t)N * c->out_ch * H * W * sizeof(float));
   m->have_forward = m->grad_enabled;
   return DDPM_OK;
}

/* ---------------------------------------------------------------- backward */

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

static void res_backward(ddpm_unet *m, node *n, int idx)
{
   const int N = m->pN, G = m->cfg.groups, HW = n->H * n->W, td = m->temb_dim;
   const float *x = input_of(m, n->in);
   float *dx = dinput_of(m, n->in);
   size_t sizeC = (size_t)N * n->C * HW, sizeO = (size_t)N * n->Cout * HW;
   float *gA = m->g[0], *gB = m->g[1], *gC = m->g[2];
   /* skip path */
   if (n->has_short)
      ddpm_conv2d_backward(dx, GW(m, n, R_SW), GW(m, n, R_SB), m->scratch, n->dy, x,
                           PW(m, n, R_SW), &n->cs[2]);
   else {
      const float *dy = n->dy;
      #pragma omp parallel for schedule(static)
      for (size_t i = 0; i < sizeO; i++) dx[i] += dy[i];
   }
   /* conv2 <- dropout <- swish <- norm2 */
   const float *d2 = m->fwd_dropout ? n->s[S_D2] : n->s[S_A2];
   zero(gA, sizeO);
   ddpm_conv2d_backward(gA, GW(m, n, R_C2W), GW(m, n, R_C2B), m->scratch, n->dy, d2,
                        PW(m, n, R_C2W), &n->cs[1]);
   float *da2 = gA;
   if (m->fwd_dropout) {
      zero(gB, sizeO);
      ddpm_dropout_backward(gB, gA, (int64_t)sizeO, m->cfg.dropout, node_seed(m->fwd_seed, idx));
      da2 = gB;
   }
   zero(gC, sizeO);
   ddpm_silu_backward(gC, da2, n->s[S_N2], (int64_t)sizeO);
   zero(gA, sizeO);
   ddpm_groupnorm_backward(gA, GW(m, n, R_N2W), GW(m, n, R_N2B), gC, n->s[S_H1], n->s[S_M2],
                           n->s[S_R2], PW(m, n, R_N2W), N, n->Cout, HW, G);
   /* time-embedding projection: its output was broadcast over H, W */
   float *dh1 = gA;
   #pragma omp parallel for collapse(2) schedule(static)
   for (int b = 0; b < N; b++)
      for (int c = 0; c < n->Cout; c++) {
         const float *p = dh1 + ((size_t)b * n->Cout + c) * HW;
         float s = 0;
         for (int i = 0; i < HW; i++) s += p[i];
         m->dtp[b * n->Cout + c] = s;
      }
   ddpm_linear_backward(m->dst, GW(m, n, R_TW), GW(m, n, R_TB), m->dtp, m->st, PW(m, n, R_TW),
                        N, td, n->Cout);
   /* conv1 <- swish <- norm1 */
   zero(gB, sizeC);
   ddpm_conv2d_backward(gB, GW(m, n, R_C1W), GW(m, n, R_C1B), m->scratch, dh1, n->s[S_A1],
                        PW(m, n, R_C1W), &n->cs[0]);
   zero(gC, sizeC);
   ddpm_silu_backward(gC, gB, n->s[S_N1], (int64_t)sizeC);
   ddpm_groupnorm_backward(dx, GW(m, n, R_N1W), GW(m, n, R_N1B), gC, x, n->s[S_M1], n->s[S_R1],
                           PW(m, n, R_N1W), N, n->C, HW, G);
}

static void attn_backward(ddpm_unet *m, node *n)
{
   const int N = m->pN, HW = n->H * n->W;
   const float *x = input_of(m, n->in);
   float *dx = dinput_of(m, n->in);
   size_t sz = (size_t)N * n->C * HW;
   const float *dy = n->dy;
   #pragma omp parallel for schedule(static)
   for (size_t i = 0; i < sz; i++) dx[i] += dy[i];
   float *dn = m->g[0];
   zero(dn, sz);
   ddpm_attention_backward(dn, GW(m, n, A_QW), GW(m, n, A_QB), GW(m, n, A_KW), GW(m, n, A_KB),
                           GW(m, n, A_VW), GW(m, n, A_VB), GW(m, n, A_OW), GW(m, n, A_OB),
                           m->scratch, dy, n->s[S_NRM], n->s[S_Q], n->s[S_K], n->s[S_V],
                           n->s[S_ATT], n->s[S_O], PW(m, n, A_QW), PW(m, n, A_KW),
                           PW(m, n, A_VW), PW(m, n, A_OW), N, n->C, HW);
   ddpm_groupnorm_backward(dx, GW(m, n, A_GW), GW(m, n, A_GB), dn, x, n->s[S_MEAN], n->s[S_RSTD],
                           PW(m, n, A_GW), N, n->C, HW, m->cfg.groups);
}

static void concat_backward(ddpm_unet *m, node *n)
{
   const int N = m->pN;
   size_t HW = (size_t)n->H * n->W, a = (size_t)n->C * HW, b = (size_t)n->C2 * HW;
   float *da = dinput_of(m, n->in), *db = dinput_of(m, n->in2);
   #pragma omp parallel for schedule(static)
   for (int i = 0; i < N; i++) {
      const float *src = n->dy + i * (a + b);
      float *pa = da + i * a, *pb = db + i * b;
      for (size_t j = 0; j < a; j++) pa[j] += src[j];
      for (size_t j = 0; j < b; j++) pb[j] += src[a + j];
   }
}

static void node_backward(ddpm_unet *m, int idx)
{
   node *n = &m->nodes[idx];
   const int N = m->pN;
   switch (n->type) {
   case N_CONV:
      ddpm_conv2d_backward(dinput_of(m, n->in), GW(m, n, 0), GW(m, n, 1), m->scratch, n->dy,
                           input_of(m, n->in), PW(m, n, 0), &n->cs[0]);
      break;
   case N_RES: res_backward(m, n, idx); break;
   case N_ATTN: attn_backward(m, n); break;
   case N_UPSAMPLE:
      ddpm_upsample2x_backward(dinput_of(m, n->in), n->dy, N, n->C, n->H, n->W);
      break;
   case N_CONCAT: concat_backward(m, n); break;
   case N_OUTNORM: {
      int HW = n->H * n->W;
      size_t sz = (size_t)N * n->C * HW;
      zero(m->g[0], sz);
      ddpm_silu_backward(m->g[0], n->dy, n->s[S_NRM], (int64_t)sz);
      ddpm_groupnorm_backward(dinput_of(m, n->in), GW(m, n, 0), GW(m, n, 1), m->g[0],
                              input_of(m, n->in), n->s[S_MEAN], n->s[S_RSTD], PW(m, n, 0),
                              N, n->C, HW, m->cfg.groups);
      break;
   }
   }
}

int ddpm_unet_backward(ddpm_unet *m, float *dx, const float *dout)
{
   if (!m->have_forward)
      return ddpm_seterr(DDPM_EINVAL, "unet backward: no forward with gradients to go back "
                         "through (call forward first, with gradients enabled)");
   const int N = m->pN, td = m->temb_dim;
   const ddpm_unet_config *c = &m->cfg;
   zero(m->arena + m->dy_begin, m->dy_end - m->dy_begin);
   node *last = &m->nodes[m->nnodes - 1];
   memcpy(last->dy, dout, (size_t)N * c->out_ch * m->pH * m->pW * sizeof(float));
   for (int i = m->nnodes - 1; i >= 0; i--) {
      if (ddpm_interrupted()) return ddpm_seterr(DDPM_EINTR, "unet backward: interrupted");
      node_backward(m, i);
   }
   /* time embedding: st = swish(temb), temb = Dense2(swish(Dense1(e))) */
   float *d1 = m->dtmp1, *d2 = m->dtmp2;
   zero(d1, (size_t)N * td);
   ddpm_silu_backward(d1, m->dst, m->temb, (int64_t)N * td);
   zero(d2, (size_t)N * td);
   ddpm_linear_backward(d2, m->grads + m->ptab[m->p_temb + 2].offset,
                        m->grads + m->ptab[m->p_temb + 3].offset, d1, m->s1,
                        m->params + m->ptab[m->p_temb + 2].offset, N, td, td);
   zero(d1, (size_t)N * td);
   ddpm_silu_backward(d1, d2, m->l1, (int64_t)N * td);
   ddpm_linear_backward(NULL, m->grads + m->ptab[m->p_temb].offset,
                        m->grads + m->ptab[m->p_temb + 1].offset, d1, m->e,
                        m->params + m->ptab[m->p_temb].offset, N, c->ch, td);
   if (dx) memcpy(dx, m->dx, (size_t)N * c->in_ch * m->pH * m->pW * sizeof(float));
   return DDPM_OK;
}
