/*
 * unet_bf16.c — the U-Net's bfloat16 precision: the switch, and the cache of
 * every 3x3 layer's transformed filters in bfloat16 (wino_bf16.c's layout).
 *
 * The filters are transformed and rounded once per change of the weights,
 * not once per forward: sampling runs a thousand forwards with the same
 * weights. A change is seen by hashing each layer's float32 weights at the
 * start of every bfloat16 forward (8 lanes of FNV-1a over the 32-bit words,
 * all 8 kept: a change of any one word always changes its lane), so writes
 * from anywhere (an optimiser step, a load, a copy into m:flat_params() from
 * Lua) are seen without the writers knowing about the cache. The hash reads
 * the weights once, a few per cent of a forward.
 *
 * Not here: the kernels (wino_bf16.c), where they are used (unet_run.c).
 */
#include "bf16.h"
#include "unet_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct bf16_layer {
   size_t offset;        /* of the float32 weight [O, I, 3, 3] in the flat buffer */
   int O, I;
   int valid;            /* U matches hash */
   uint64_t hash[8];
   uint32_t *U;          /* ddpm_wino_bf16_filter_words(O, I) words */
} bf16_layer;

struct ddpm_bf16_cache {
   bf16_layer *l;
   int n;
};

void ddpm_bf16_cache_free(ddpm_bf16_cache *c)
{
   if (!c) return;
   for (int i = 0; i < c->n; i++) free(c->l[i].U);
   free(c->l);
   free(c);
}

int ddpm_unet_set_precision(ddpm_unet *m, ddpm_precision p)
{
   if (p != DDPM_FLOAT32 && p != DDPM_BF16)
      return ddpm_seterr(DDPM_EINVAL, "unet: unknown precision %d", (int)p);
   if (p == DDPM_BF16 && !ddpm_bf16_available())
      return ddpm_seterr(DDPM_EINVAL, "unet: precision 'bf16' needs a CPU with AVX512-BF16 "
                         "(vdpbf16ps), which this one lacks; use 'float32'");
   if ((int)p != m->precision) {
      m->precision = p;
      m->pN = 0;   /* the plan's scratch depends on it */
   }
   return DDPM_OK;
}

ddpm_precision ddpm_unet_precision(const ddpm_unet *m) { return (ddpm_precision)m->precision; }

int ddpm_unet_set_bf16_min_channels(ddpm_unet *m, int c)
{
   if (c < 2) return ddpm_seterr(DDPM_EINVAL, "unet: bf16 min_channels %d must be at least 2", c);
   if (c != BF16_MIN_C(m)) {
      m->bf16_min_c = c;
      ddpm_bf16_cache_free(m->bf16);   /* other layers now: made again at the next forward */
      m->bf16 = NULL;
      m->pN = 0;
   }
   return DDPM_OK;
}

static void hash_floats(uint64_t h[8], const float *p, size_t n)
{
   for (int l = 0; l < 8; l++) h[l] = 0xcbf29ce484222325ull + (uint64_t)l;
   size_t i = 0;
   for (; i + 8 <= n; i += 8) {
      uint32_t u[8];
      memcpy(u, p + i, sizeof u);
      for (int l = 0; l < 8; l++) h[l] = (h[l] ^ u[l]) * 0x100000001b3ull;
   }
   for (; i < n; i++) {
      uint32_t u;
      memcpy(&u, p + i, sizeof u);
      h[i % 8] = (h[i % 8] ^ u) * 0x100000001b3ull;
   }
}

static int add_layer(ddpm_bf16_cache *c, const ddpm_unet *m, int pw, int O, int I)
{
   if (I % 2 || I < BF16_MIN_C(m)) return 0;   /* float32 (unet_internal.h) */
   bf16_layer *L = &c->l[c->n];
   memset(L, 0, sizeof *L);
   L->offset = m->ptab[pw].offset;
   L->O = O;
   L->I = I;
   size_t bytes = ddpm_wino_bf16_filter_words(O, I) * sizeof(uint32_t);
   L->U = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
   if (!L->U) return -1;
   c->n++;
   return 0;
}

static ddpm_bf16_cache *cache_new(const ddpm_unet *m)
{
   ddpm_bf16_cache *c = calloc(1, sizeof *c);
   if (!c) return NULL;
   c->l = calloc((size_t)2 * m->nnodes, sizeof *c->l);
   if (!c->l) { free(c); return NULL; }
   for (int i = 0; i < m->nnodes; i++) {
      const node *n = &m->nodes[i];
      int rc = 0;
      if (n->type == N_CONV && n->stride == 1)
         rc = add_layer(c, m, n->p.conv.w, n->Cout, n->C);
      else if (n->type == N_RES)
         rc = add_layer(c, m, n->p.res.conv1.w, n->Cout, n->C) |
              add_layer(c, m, n->p.res.conv2.w, n->Cout, n->Cout);
      if (rc) { ddpm_bf16_cache_free(c); return NULL; }
   }
   return c;
}

int ddpm_unet_bf16_refresh(ddpm_unet *m)
{
   if (!m->bf16) {
      m->bf16 = cache_new(m);
      if (!m->bf16)
         return ddpm_seterr(DDPM_ENOMEM, "unet: out of memory for the bfloat16 filters");
   }
   ddpm_bf16_cache *c = m->bf16;
   #pragma omp parallel for schedule(dynamic, 1)
   for (int i = 0; i < c->n; i++) {
      bf16_layer *L = &c->l[i];
      const float *w = m->params + L->offset;
      uint64_t h[8];
      hash_floats(h, w, (size_t)L->O * L->I * 9);
      if (L->valid && !memcmp(h, L->hash, sizeof h)) continue;
      ddpm_wino_bf16_filters(L->U, w, L->O, L->I);
      memcpy(L->hash, h, sizeof h);
      L->valid = 1;
   }
   return DDPM_OK;
}

const uint32_t *ddpm_unet_bf16_filters(const ddpm_unet *m, size_t offset)
{
   const ddpm_bf16_cache *c = m->bf16;
   if (!c) return NULL;
   for (int i = 0; i < c->n; i++)
      if (c->l[i].offset == offset) return c->l[i].valid ? c->l[i].U : NULL;
   return NULL;
}
