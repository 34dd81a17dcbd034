/*
 * unet.c — the DDPM U-Net (Ho et al. 2020, official `unet2d16b2` family) with
 * forward and backward, llm.c style.
 *
 * Parameters and gradients each live in one flat buffer; every tensor is a
 * named view whose name is the diffusers UNet2DModel key (docs/math.md §8), so
 * save/load/inspect are lookups. The network is a list of nodes in execution
 * order (conv, ResNet block, attention block, upsample, concat, output norm);
 * each node owns its output y and output gradient dy inside one activation
 * arena that is sized once per input shape (N, H, W) and reused. Backward
 * walks the nodes in reverse; every node accumulates into its producers' dy,
 * which is how skip connections and the shared time embedding get their sums.
 *
 * What it is not: a general graph engine. The topology is the paper's.
 */
#include "ddpm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet_internal.h"
#include "bf16.h"

/* ------------------------------------------------------------ config */

ddpm_unet_config ddpm_unet_config_cifar10(void)
{
   ddpm_unet_config c;
   memset(&c, 0, sizeof c);
   c.ch = 128;
   c.num_levels = 4;
   c.ch_mult[0] = 1; c.ch_mult[1] = 2; c.ch_mult[2] = 2; c.ch_mult[3] = 2;
   c.num_res_blocks = 2;
   c.attn_res[0] = 16; c.num_attn_res = 1;
   c.dropout = 0.1f;
   c.in_ch = 3; c.out_ch = 3;
   c.resolution = 32;
   c.groups = 32;
   c.eps = 1e-6f;
   return c;
}

int ddpm_unet_config_check(const ddpm_unet_config *c)
{
   if (c->ch < 1) return ddpm_seterr(DDPM_EINVAL, "unet: ch must be positive, got %d", c->ch);
   if (c->num_levels < 1 || c->num_levels > DDPM_UNET_MAX_LEVELS)
      return ddpm_seterr(DDPM_EINVAL, "unet: ch_mult must have 1..%d entries, got %d",
                         DDPM_UNET_MAX_LEVELS, c->num_levels);
   if (c->groups < 1) return ddpm_seterr(DDPM_EINVAL, "unet: groups must be positive");
   if (c->ch % c->groups)
      return ddpm_seterr(DDPM_EINVAL, "unet: ch = %d is not divisible by the %d GroupNorm groups",
                         c->ch, c->groups);
   for (int i = 0; i < c->num_levels; i++) {
      int m = c->ch_mult[i];
      if (m < 1) return ddpm_seterr(DDPM_EINVAL, "unet: ch_mult[%d] = %d must be positive", i + 1, m);
      if ((c->ch * m) % c->groups)
         return ddpm_seterr(DDPM_EINVAL,
                            "unet: channels ch*ch_mult[%d] = %d are not divisible by the %d GroupNorm groups",
                            i + 1, c->ch * m, c->groups);
   }
   if (c->num_res_blocks < 1 || c->num_res_blocks > 64)
      return ddpm_seterr(DDPM_EINVAL, "unet: num_res_blocks must be in 1..64, got %d", c->num_res_blocks);
   if (c->num_attn_res < 0 || c->num_attn_res > DDPM_UNET_MAX_LEVELS)
      return ddpm_seterr(DDPM_EINVAL, "unet: too many attn_resolutions");
   if (!(c->dropout >= 0 && c->dropout < 1))
      return ddpm_seterr(DDPM_EINVAL, "unet: dropout must be in [0,1), got %g", c->dropout);
   if (c->in_ch < 1 || c->out_ch < 1)
      return ddpm_seterr(DDPM_EINVAL, "unet: in_ch and out_ch must be positive (got %d, %d)",
                         c->in_ch, c->out_ch);
   int div = 1 << (c->num_levels - 1);
   if (c->resolution < 1 || c->resolution % div)
      return ddpm_seterr(DDPM_EINVAL,
                         "unet: resolution %d is not divisible by 2^(levels-1) = %d",
                         c->resolution, div);
   if (!(c->eps > 0)) return ddpm_seterr(DDPM_EINVAL, "unet: eps must be positive");
   return DDPM_OK;
}

/* ------------------------------------------------------------ parameters */

static int add_param(ddpm_unet *m, const char *name, int ndim, int64_t a, int64_t b,
                     int64_t c, int64_t d)
{
   if (m->nparam == m->capparam) {
      int cap = m->capparam ? 2 * m->capparam : 256;
      ddpm_param *p = realloc(m->ptab, (size_t)cap * sizeof *p);
      if (!p) return -1;
      m->ptab = p;
      m->capparam = cap;
   }
   ddpm_param *p = &m->ptab[m->nparam];
   memset(p, 0, sizeof *p);
   p->name = strdup(name);
   if (!p->name) return -1;
   p->ndim = ndim;
   int64_t sh[4] = {a, b, c, d};
   size_t n = 1;
   for (int i = 0; i < ndim; i++) { p->shape[i] = sh[i]; n *= (size_t)sh[i]; }
   p->numel = n;
   p->offset = m->numel;
   m->numel += n;
   return m->nparam++;
}

/* Registers <prefix>.weight with the given shape and <prefix>.bias [a] (a
   convolution, a linear layer or a GroupNorm) and names both in *s. */
static int add_module(ddpm_unet *m, pslot *s, const char *prefix, int ndim, int64_t a,
                      int64_t b, int64_t c, int64_t d)
{
   char nm[320];
   snprintf(nm, sizeof nm, "%s.weight", prefix);
   s->w = add_param(m, nm, ndim, a, b, c, d);
   snprintf(nm, sizeof nm, "%s.bias", prefix);
   s->b = s->w < 0 ? -1 : add_param(m, nm, 1, a, 0, 0, 0);
   return s->b < 0 ? -1 : 0;
}

static int add_conv(ddpm_unet *m, pslot *s, const char *prefix, int cout, int cin, int k)
{
   return add_module(m, s, prefix, 4, cout, cin, k, k);
}

static int add_linear(ddpm_unet *m, pslot *s, const char *prefix, int out, int in)
{
   return add_module(m, s, prefix, 2, out, in, 0, 0);
}

static int add_norm(ddpm_unet *m, pslot *s, const char *prefix, int c)
{
   return add_module(m, s, prefix, 1, c, 0, 0, 0);
}

/* prefix.name into buf. */
static const char *sub(char *buf, size_t size, const char *prefix, const char *name)
{
   snprintf(buf, size, "%s.%s", prefix, name);
   return buf;
}

static node *add_node(ddpm_unet *m, int type, int in, int C, int Cout, int lvl)
{
   if (m->nnodes == m->capnodes) {
      int cap = m->capnodes ? 2 * m->capnodes : 64;
      node *p = realloc(m->nodes, (size_t)cap * sizeof *p);
      if (!p) return NULL;
      m->nodes = p;
      m->capnodes = cap;
   }
   node *n = &m->nodes[m->nnodes++];
   memset(n, 0, sizeof *n);
   n->type = type;
   n->in = in;
   n->in2 = -1;
   n->C = C;
   n->Cout = Cout;
   n->lvl = lvl;
   n->stride = 1;
   return n;
}

#define LAST(m) ((m)->nnodes - 1)

static int build_res(ddpm_unet *m, const char *prefix, int in, int cin, int cout, int lvl)
{
   char nm[256];
   node *n = add_node(m, N_RES, in, cin, cout, lvl);
   if (!n) return -1;
   res_params *p = &n->p.res;
   n->has_short = cin != cout;
   if (add_norm(m, &p->norm1, sub(nm, sizeof nm, prefix, "norm1"), cin) < 0 ||
       add_conv(m, &p->conv1, sub(nm, sizeof nm, prefix, "conv1"), cout, cin, 3) < 0 ||
       add_linear(m, &p->time_emb_proj, sub(nm, sizeof nm, prefix, "time_emb_proj"), cout,
                  m->temb_dim) < 0 ||
       add_norm(m, &p->norm2, sub(nm, sizeof nm, prefix, "norm2"), cout) < 0 ||
       add_conv(m, &p->conv2, sub(nm, sizeof nm, prefix, "conv2"), cout, cout, 3) < 0)
      return -1;
   p->shortcut = (pslot){-1, -1};
   if (n->has_short &&
       add_conv(m, &p->shortcut, sub(nm, sizeof nm, prefix, "conv_shortcut"), cout, cin, 1) < 0)
      return -1;
   return LAST(m);
}

static int build_attn(ddpm_unet *m, const char *prefix, int in, int c, int lvl)
{
   char nm[256];
   node *n = add_node(m, N_ATTN, in, c, c, lvl);
   if (!n) return -1;
   attn_params *p = &n->p.attn;
   if (add_norm(m, &p->norm, sub(nm, sizeof nm, prefix, "group_norm"), c) < 0 ||
       add_linear(m, &p->q, sub(nm, sizeof nm, prefix, "to_q"), c, c) < 0 ||
       add_linear(m, &p->k, sub(nm, sizeof nm, prefix, "to_k"), c, c) < 0 ||
       add_linear(m, &p->v, sub(nm, sizeof nm, prefix, "to_v"), c, c) < 0 ||
       add_linear(m, &p->out, sub(nm, sizeof nm, prefix, "to_out.0"), c, c) < 0)
      return -1;
   return LAST(m);
}

static int build_conv(ddpm_unet *m, const char *prefix, int in, int cin, int cout, int lvl,
                      int stride)
{
   node *n = add_node(m, N_CONV, in, cin, cout, lvl);
   if (!n) return -1;
   n->stride = stride;
   return add_conv(m, &n->p.conv, prefix, cout, cin, 3) < 0 ? -1 : LAST(m);
}

static int has_attn(const ddpm_unet_config *c, int lvl)
{
   int r = c->resolution >> lvl;
   for (int i = 0; i < c->num_attn_res; i++) if (c->attn_res[i] == r) return 1;
   return 0;
}

/* Walks the official topology (docs/math.md §6.5), registering nodes and parameters. */
static int build(ddpm_unet *m)
{
   const ddpm_unet_config *c = &m->cfg;
   int L = c->num_levels, nrb = c->num_res_blocks;
   char nm[256];
   int hs[DDPM_UNET_MAX_LEVELS * 70], hc[DDPM_UNET_MAX_LEVELS * 70], nh = 0;

   if (add_linear(m, &m->temb1, "time_embedding.linear_1", m->temb_dim, c->ch) < 0 ||
       add_linear(m, &m->temb2, "time_embedding.linear_2", m->temb_dim, m->temb_dim) < 0)
      return -1;

   int h = build_conv(m, "conv_in", -1, c->in_ch, c->ch, 0, 1);
   if (h < 0) return -1;
   int hch = c->ch;
   hs[nh] = h; hc[nh++] = hch;
   for (int i = 0; i < L; i++) {
      int cout = c->ch * c->ch_mult[i];
      for (int j = 0; j < nrb; j++) {
         snprintf(nm, sizeof nm, "down_blocks.%d.resnets.%d", i, j);
         if ((h = build_res(m, nm, h, hch, cout, i)) < 0) return -1;
         hch = cout;
         if (has_attn(c, i)) {
            snprintf(nm, sizeof nm, "down_blocks.%d.attentions.%d", i, j);
            if ((h = build_attn(m, nm, h, hch, i)) < 0) return -1;
         }
         hs[nh] = h; hc[nh++] = hch;
      }
      if (i != L - 1) {
         snprintf(nm, sizeof nm, "down_blocks.%d.downsamplers.0.conv", i);
         if ((h = build_conv(m, nm, h, hch, hch, i, 2)) < 0) return -1;
         hs[nh] = h; hc[nh++] = hch;
      }
   }
   if ((h = build_res(m, "mid_block.resnets.0", h, hch, hch, L - 1)) < 0) return -1;
   if ((h = build_attn(m, "mid_block.attentions.0", h, hch, L - 1)) < 0) return -1;
   if ((h = build_res(m, "mid_block.resnets.1", h, hch, hch, L - 1)) < 0) return -1;
   for (int i = L - 1; i >= 0; i--) {
      int k = L - 1 - i, cout = c->ch * c->ch_mult[i];
      for (int j = 0; j <= nrb; j++) {
         nh--;
         node *cat = add_node(m, N_CONCAT, h, hch, hch + hc[nh], i);
         if (!cat) return -1;
         cat->in2 = hs[nh];
         cat->C2 = hc[nh];
         h = LAST(m);
         snprintf(nm, sizeof nm, "up_blocks.%d.resnets.%d", k, j);
         if ((h = build_res(m, nm, h, hch + hc[nh], cout, i)) < 0) return -1;
         hch = cout;
         if (has_attn(c, i)) {
            snprintf(nm, sizeof nm, "up_blocks.%d.attentions.%d", k, j);
            if ((h = build_attn(m, nm, h, hch, i)) < 0) return -1;
         }
      }
      if (i != 0) {
         if (!add_node(m, N_UPSAMPLE, h, hch, hch, i)) return -1;
         h = LAST(m);
         snprintf(nm, sizeof nm, "up_blocks.%d.upsamplers.0.conv", k);
         if ((h = build_conv(m, nm, h, hch, hch, i - 1, 1)) < 0) return -1;
      }
   }
   node *on = add_node(m, N_OUTNORM, h, hch, hch, 0);
   if (!on) return -1;
   if (add_norm(m, &on->p.norm, "conv_norm_out", hch) < 0) return -1;
   h = LAST(m);
   if (build_conv(m, "conv_out", h, hch, c->out_ch, 0, 1) < 0) return -1;
   return 0;
}

/* Official init (docs/math.md §6.1): fan-avg uniform, scale 1e-10 for the layers the
   official code zero-initialises, zero biases, unit GroupNorm gains. */
static void init_params(ddpm_unet *m, uint64_t seed)
{
   uint64_t ctr = 0;
   for (int i = 0; i < m->nparam; i++) {
      ddpm_param *p = &m->ptab[i];
      float *w = m->params + p->offset;
      const char *dot = strrchr(p->name, '.');
      int is_bias = dot && strcmp(dot, ".bias") == 0;
      if (is_bias) { memset(w, 0, p->numel * sizeof *w); continue; }
      if (p->ndim == 1) {            /* GroupNorm gain */
         for (size_t j = 0; j < p->numel; j++) w[j] = 1.0f;
         continue;
      }
      double fan_in, fan_out;
      if (p->ndim == 4) {
         double k = (double)(p->shape[2] * p->shape[3]);
         fan_in = k * (double)p->shape[1];
         fan_out = k * (double)p->shape[0];
      } else {
         fan_in = (double)p->shape[1];
         fan_out = (double)p->shape[0];
      }
      double scale = 1.0;
      if (strstr(p->name, ".conv2.") || strstr(p->name, "to_out.0.") ||
          strncmp(p->name, "conv_out.", 9) == 0)
         scale = 1e-10;
      double lim = sqrt(3.0 * scale / ((fan_in + fan_out) / 2.0));
      for (size_t j = 0; j < p->numel; j++)
         w[j] = (float)((2.0 * ddpm_rng_uniform_at(seed, ctr++) - 1.0) * lim);
   }
}

ddpm_unet *ddpm_unet_new(const ddpm_unet_config *cfg, uint64_t seed)
{
   if (ddpm_unet_config_check(cfg) != DDPM_OK) return NULL;
   ddpm_unet *m = calloc(1, sizeof *m);
   if (!m) goto oom;
   m->cfg = *cfg;
   m->temb_dim = 4 * cfg->ch;
   m->grad_enabled = 1;
   if (build(m) != 0) goto oom;
   m->params_t = ddpm_tensor_new_1d((int64_t)m->numel);
   m->grads_t = ddpm_tensor_new_1d((int64_t)m->numel);
   if (!m->params_t || !m->grads_t) goto oom;
   m->params = ddpm_tensor_data(m->params_t);
   m->grads = ddpm_tensor_data(m->grads_t);
   init_params(m, seed);
   return m;
oom:
   ddpm_unet_free(m);
   ddpm_seterr(DDPM_ENOMEM, "unet: out of memory building the model");
   return NULL;
}

void ddpm_unet_free(ddpm_unet *m)
{
   if (!m) return;
   for (int i = 0; i < m->nparam; i++) free((void *)m->ptab[i].name);
   free(m->ptab);
   free(m->nodes);
   ddpm_tensor_release(m->params_t);
   ddpm_tensor_release(m->grads_t);
   free(m->arena);
   ddpm_bf16_cache_free(m->bf16);
   free(m);
}

const ddpm_unet_config *ddpm_unet_get_config(const ddpm_unet *m) { return &m->cfg; }
size_t ddpm_unet_num_params(const ddpm_unet *m) { return m->numel; }
int    ddpm_unet_num_tensors(const ddpm_unet *m) { return m->nparam; }
/* The caller may write through the pointer: that counts as a change of the
   weights (unet_bf16.c's cache compares the buffer's version). */
float *ddpm_unet_params(ddpm_unet *m)
{
   ddpm_tensor_touch(m->params_t);
   return m->params;
}
float *ddpm_unet_grads(ddpm_unet *m) { return m->grads; }
void   ddpm_unet_zero_grad(ddpm_unet *m) { memset(m->grads, 0, m->numel * sizeof(float)); }
void   ddpm_unet_set_training(ddpm_unet *m, int on) { m->training = on != 0; }
void   ddpm_unet_set_dropout_seed(ddpm_unet *m, uint64_t seed, uint64_t first)
{
   m->dropout_seed = seed;
   m->dropout_first = first;
}
void   ddpm_unet_set_grad_enabled(ddpm_unet *m, int on) { m->grad_enabled = on != 0; }
size_t ddpm_unet_workspace_bytes(const ddpm_unet *m) { return m->arena_floats * sizeof(float); }

const ddpm_param *ddpm_unet_param(const ddpm_unet *m, int i)
{
   return (i >= 0 && i < m->nparam) ? &m->ptab[i] : NULL;
}

int ddpm_unet_find_param(const ddpm_unet *m, const char *name)
{
   for (int i = 0; i < m->nparam; i++) if (strcmp(m->ptab[i].name, name) == 0) return i;
   return -1;
}

ddpm_tensor *ddpm_unet_flat_tensor(ddpm_unet *m, ddpm_buffer which)
{
   return ddpm_tensor_view_of(which == DDPM_GRADS ? m->grads_t : m->params_t);
}

ddpm_tensor *ddpm_unet_param_tensor(ddpm_unet *m, int i, ddpm_buffer which)
{
   if (i < 0 || i >= m->nparam) {
      ddpm_seterr(DDPM_EINVAL, "unet: parameter index %d out of range 0..%d", i, m->nparam - 1);
      return NULL;
   }
   const ddpm_param *p = &m->ptab[i];
   ddpm_tensor *t = ddpm_tensor_view_of(which == DDPM_GRADS ? m->grads_t : m->params_t);
   if (!t) return NULL;
   int64_t off = (int64_t)p->offset;
   if (ddpm_tensor_narrow(t, 0, off, (int64_t)p->numel) != DDPM_OK ||
       ddpm_tensor_reshape(t, p->ndim, p->shape) != DDPM_OK) {
      ddpm_tensor_release(t);
      return NULL;
   }
   return t;
}
