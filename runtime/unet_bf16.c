/*
 * unet_bf16.c — the U-Net's bfloat16 precision: the switch, and the cache of
 * every 3x3 layer's transformed filters in bfloat16 (wino_bf16.c's layout).
 *
 * The filters are transformed and rounded once per change of the weights,
 * not once per forward: sampling runs a thousand forwards with the same
 * weights. A change is seen through the version of the parameter buffer's
 * storage (ddpm_storage.version), which every writer bumps: the tensor
 * functions and the Lua bindings (any tensor a binding is given, so an
 * optimiser step, an EMA update, m:flat_params() or a parameter view
 * written from Lua), the load, and ddpm_unet_params, which hands out the raw
 * pointer. One comparison per forward, instead of reading every weight (a
 * hash of the weights cost a few per cent of a forward); in training the
 * version moves every step and everything is made again, as it must.
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
   uint32_t *U;          /* ddpm_wino_bf16_filter_words(O, I) words */
} bf16_layer;

struct ddpm_bf16_cache {
   bf16_layer *l;
   int n;
   int valid;            /* every U was made from the weights of `version` */
   uint64_t version;
   long remakes;
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
   m->precision = p;   /* the next forward plans for it (unet_run.c) */
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
   }
   return DDPM_OK;
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
   L->U = ddpm_big_alloc(bytes);
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
   /* read before the transforms: a write during them (none in this
      single-threaded API) would leave the cache marked stale, not fresh */
   const uint64_t v = __atomic_load_n(&m->params_t->storage->version, __ATOMIC_RELAXED);
   if (c->valid && v == c->version) return DDPM_OK;
   #pragma omp parallel for schedule(dynamic, 1)
   for (int i = 0; i < c->n; i++) {
      const bf16_layer *L = &c->l[i];
      ddpm_wino_bf16_filters(L->U, m->params + L->offset, L->O, L->I);
   }
   c->version = v;
   c->valid = 1;
   c->remakes++;
   return DDPM_OK;
}

long ddpm_unet_bf16_remakes(const ddpm_unet *m) { return m->bf16 ? m->bf16->remakes : 0; }

const uint32_t *ddpm_unet_bf16_filters(const ddpm_unet *m, size_t offset)
{
   const ddpm_bf16_cache *c = m->bf16;
   if (!c) return NULL;
   for (int i = 0; i < c->n; i++)
      if (c->l[i].offset == offset) return c->valid ? c->l[i].U : NULL;
   return NULL;
}
