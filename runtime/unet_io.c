/*
 * unet_io.c — U-Net parameters to and from safetensors, under the diffusers
 * UNet2DModel names, so the published google/ddpm-cifar10-32 weights load
 * unchanged (both attention naming schemes), and config <-> JSON.
 */
#include "unet_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ddpm_unet_config_to_json(const ddpm_unet_config *c, char *buf, size_t len)
{
   size_t p = 0;
#define PUT(...) do { int k_ = snprintf(buf + p, p < len ? len - p : 0, __VA_ARGS__); \
                      if (k_ > 0) p += (size_t)k_; } while (0)
   PUT("{\"ch\":%d,\"ch_mult\":[", c->ch);
   for (int i = 0; i < c->num_levels; i++) PUT(i ? ",%d" : "%d", c->ch_mult[i]);
   PUT("],\"num_res_blocks\":%d,\"attn_resolutions\":[", c->num_res_blocks);
   for (int i = 0; i < c->num_attn_res; i++) PUT(i ? ",%d" : "%d", c->attn_res[i]);
   PUT("],\"dropout\":%.9g,\"in_ch\":%d,\"out_ch\":%d,\"resolution\":%d,\"groups\":%d,\"eps\":%.9g}",
       c->dropout, c->in_ch, c->out_ch, c->resolution, c->groups, c->eps);
#undef PUT
   if (p >= len) return ddpm_seterr(DDPM_EINVAL, "unet: config JSON longer than %zu bytes", len);
   return DDPM_OK;
}

int ddpm_unet_save(ddpm_unet *m, const char *path)
{
   int n = m->nparam, rc;
   const char **names = malloc((size_t)n * sizeof *names);
   int *ndims = malloc((size_t)n * sizeof *ndims);
   const int64_t **shapes = malloc((size_t)n * sizeof *shapes);
   const float **data = malloc((size_t)n * sizeof *data);
   if (!names || !ndims || !shapes || !data) {
      rc = ddpm_seterr(DDPM_ENOMEM, "unet save: out of memory");
      goto done;
   }
   for (int i = 0; i < n; i++) {
      names[i] = m->ptab[i].name;
      ndims[i] = m->ptab[i].ndim;
      shapes[i] = m->ptab[i].shape;
      data[i] = m->params + m->ptab[i].offset;
   }
   char cfg[1024];
   if ((rc = ddpm_unet_config_to_json(&m->cfg, cfg, sizeof cfg)) != DDPM_OK) goto done;
   const char *mk[2] = {"format", "ddpmlua.unet_config"}, *mv[2] = {"pt", cfg};
   rc = ddpm_st_write(path, n, names, ndims, shapes, data, 2, mk, mv);
done:
   free(names); free(ndims); free(shapes); free(data);
   return rc;
}

/* The older diffusers attention names (before the to_q/to_k/to_v rename). */
static int alt_name(const char *name, char *out, size_t len)
{
   static const char *pairs[4][2] = {
      {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
      {".to_out.0.", ".proj_attn."}
   };
   for (int i = 0; i < 4; i++) {
      const char *hit = strstr(name, pairs[i][0]);
      if (hit) {
         snprintf(out, len, "%.*s%s%s", (int)(hit - name), name, pairs[i][1],
                  hit + strlen(pairs[i][0]));
         return 1;
      }
   }
   return 0;
}

/* Shapes agree up to trailing size-1 dimensions. */
static int shape_fits(const ddpm_param *p, const ddpm_st_entry *e)
{
   int a = p->ndim, b = e->ndim;
   while (a > 0 && p->shape[a - 1] == 1) a--;
   while (b > 0 && e->shape[b - 1] == 1) b--;
   if (a != b) return 0;
   for (int i = 0; i < a; i++) if (p->shape[i] != e->shape[i]) return 0;
   return 1;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *sh)
{
   size_t p = 0;
   p += (size_t)snprintf(buf, len, "[");
   for (int i = 0; i < ndim && p < len; i++)
      p += (size_t)snprintf(buf + p, len - p, i ? ",%lld" : "%lld", (long long)sh[i]);
   if (p < len) snprintf(buf + p, len - p, "]");
}

int ddpm_unet_load_st(ddpm_unet *m, const ddpm_st_file *f, const char *prefix,
                      ddpm_load_mode mode)
{
   if (!prefix) prefix = "";
   int n = m->nparam, nf = ddpm_st_count(f), rc = DDPM_OK;
   int *idx = malloc((size_t)n * sizeof *idx);
   char *used = calloc((size_t)(nf > 0 ? nf : 1), 1);
   if (!idx || !used) { rc = ddpm_seterr(DDPM_ENOMEM, "unet load: out of memory"); goto done; }
   char key[512], alt[640];
   int missing = 0;
   char mlist[2048] = "";
   for (int i = 0; i < n; i++) {
      const ddpm_param *p = &m->ptab[i];
      snprintf(key, sizeof key, "%s%s", prefix, p->name);
      int j = ddpm_st_find(f, key);
      if (j < 0 && alt_name(key, alt, sizeof alt)) j = ddpm_st_find(f, alt);
      idx[i] = j;
      if (j < 0) {
         if (missing++ < 3) {
            size_t l = strlen(mlist);
            snprintf(mlist + l, sizeof mlist - l, "%s%s", l ? ", " : "", key);
         }
         continue;
      }
      used[j] = 1;
      const ddpm_st_entry *e = ddpm_st_entry_at(f, j);
      if (!shape_fits(p, e)) {
         char a[128], b[128];
         shape_str(a, sizeof a, p->ndim, p->shape);
         shape_str(b, sizeof b, e->ndim, e->shape);
         rc = ddpm_seterr(DDPM_ESHAPE, "unet load: tensor '%s' has shape %s, the model expects %s",
                          e->name, b, a);
         goto done;
      }
   }
   if (missing) {
      rc = ddpm_seterr(DDPM_EFORMAT, "unet load: %d of %d model tensors missing from the file "
                       "(e.g. %s)", missing, n, mlist);
      goto done;
   }
   if (mode == DDPM_LOAD_STRICT) {
      size_t pl = strlen(prefix);
      for (int j = 0; j < nf; j++) {
         const ddpm_st_entry *e = ddpm_st_entry_at(f, j);
         if (!used[j] && strncmp(e->name, prefix, pl) == 0) {
            rc = ddpm_seterr(DDPM_EFORMAT, "unet load: unexpected tensor '%s' in the file "
                             "(not a parameter of this model; pass strict=false to ignore)",
                             e->name);
            goto done;
         }
      }
   }
   /* Convert into a staging copy first, so a failing read changes nothing. */
   float *stage = malloc(m->numel * sizeof(float));
   if (!stage) { rc = ddpm_seterr(DDPM_ENOMEM, "unet load: out of memory"); goto done; }
   for (int i = 0; i < n && rc == DDPM_OK; i++)
      rc = ddpm_st_read_f32(f, idx[i], stage + m->ptab[i].offset, m->ptab[i].numel);
   if (rc == DDPM_OK) {
      memcpy(m->params, stage, m->numel * sizeof(float));
      ddpm_tensor_touch(m->params_t);   /* new weights: the bfloat16 filters are stale */
   }
   free(stage);
done:
   free(idx);
   free(used);
   return rc;
}
