/*
 * tensor.c — refcounted float32 storage and strided tensor views (torch7's
 * THStorage/THTensor, without the macro templating).
 *
 * What it is: allocation, views (reshape, narrow, select, transpose), copies,
 * elementwise arithmetic and whole-tensor reductions for the Lua API. What it
 * is not: the U-Net's hot path, which works on raw contiguous buffers.
 */
#include "ddpm.h"
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_NUMEL ((int64_t)1 << 40)

void *ddpm_big_alloc(size_t bytes)
{
   const size_t huge = (size_t)2 << 20;
   if (bytes < huge) return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
   bytes = (bytes + huge - 1) & ~(huge - 1);
   void *p = aligned_alloc(huge, bytes);
   if (p) (void)madvise(p, bytes, MADV_HUGEPAGE);   /* advice: refused is fine */
   return p;
}

static ddpm_storage *storage_new(int64_t numel)
{
   ddpm_storage *s = calloc(1, sizeof *s);
   if (!s) return NULL;
   size_t bytes = (size_t)(numel > 0 ? numel : 1) * sizeof(float);
   bytes = (bytes + 63) & ~(size_t)63;
   s->data = ddpm_big_alloc(bytes);
   if (!s->data) { free(s); return NULL; }
   memset(s->data, 0, bytes);
   s->numel = numel;
   s->refcount = 1;
   return s;
}

static void storage_release(ddpm_storage *s)
{
   if (s && --s->refcount == 0) {
      free(s->data);
      free(s);
   }
}

static void set_contiguous_strides(ddpm_tensor *t)
{
   int64_t st = 1;
   for (int d = t->ndim - 1; d >= 0; d--) {
      t->stride[d] = st;
      st *= t->size[d];
   }
}

ddpm_tensor *ddpm_tensor_new(int ndim, const int64_t *size)
{
   if (ndim < 0 || ndim > DDPM_MAX_DIMS) {
      ddpm_seterr(DDPM_EINVAL, "tensor: %d dimensions (at most %d)", ndim, DDPM_MAX_DIMS);
      return NULL;
   }
   int64_t numel = 1;
   for (int d = 0; d < ndim; d++) {
      if (size[d] < 0) {
         ddpm_seterr(DDPM_EINVAL, "tensor: size %lld of dimension %d is negative",
                     (long long)size[d], d + 1);
         return NULL;
      }
      if (size[d] > 0 && numel > MAX_NUMEL / size[d]) {
         ddpm_seterr(DDPM_EINVAL, "tensor: more than 2^40 elements");
         return NULL;
      }
      numel *= size[d];
   }
   ddpm_tensor *t = calloc(1, sizeof *t);
   if (!t) goto oom;
   t->storage = storage_new(numel);
   if (!t->storage) { free(t); goto oom; }
   t->ndim = ndim;
   for (int d = 0; d < ndim; d++) t->size[d] = size[d];
   set_contiguous_strides(t);
   t->refcount = 1;
   return t;
oom:
   ddpm_seterr(DDPM_ENOMEM, "tensor: out of memory allocating %lld floats", (long long)numel);
   return NULL;
}

ddpm_tensor *ddpm_tensor_new_1d(int64_t n) { return ddpm_tensor_new(1, &n); }

ddpm_tensor *ddpm_tensor_new_4d(int64_t n, int64_t c, int64_t h, int64_t w)
{
   int64_t s[4] = {n, c, h, w};
   return ddpm_tensor_new(4, s);
}

ddpm_tensor *ddpm_tensor_view_of(const ddpm_tensor *src)
{
   ddpm_tensor *t = malloc(sizeof *t);
   if (!t) {
      ddpm_seterr(DDPM_ENOMEM, "tensor: out of memory");
      return NULL;
   }
   *t = *src;
   t->refcount = 1;
   t->storage->refcount++;
   return t;
}

void ddpm_tensor_retain(ddpm_tensor *t) { if (t) t->refcount++; }

void ddpm_tensor_release(ddpm_tensor *t)
{
   if (t && --t->refcount == 0) {
      storage_release(t->storage);
      free(t);
   }
}

int64_t ddpm_tensor_numel(const ddpm_tensor *t)
{
   int64_t n = 1;
   for (int d = 0; d < t->ndim; d++) n *= t->size[d];
   return n;
}

int ddpm_tensor_is_contiguous(const ddpm_tensor *t)
{
   int64_t st = 1;
   for (int d = t->ndim - 1; d >= 0; d--) {
      if (t->size[d] != 1 && t->stride[d] != st) return 0;
      st *= t->size[d];
   }
   return 1;
}

void ddpm_tensor_touch(const ddpm_tensor *t)
{
   __atomic_add_fetch(&t->storage->version, 1, __ATOMIC_RELAXED);
}

float *ddpm_tensor_data(const ddpm_tensor *t)
{
   ddpm_tensor_touch(t);
   return t->storage->data + t->offset;
}

char *ddpm_tensor_shape_str(const ddpm_tensor *t, char *buf, size_t len)
{
   size_t p = 0;
   p += (size_t)snprintf(buf + p, len - p, "[");
   for (int d = 0; d < t->ndim && p < len; d++)
      p += (size_t)snprintf(buf + p, len - p, d ? ",%lld" : "%lld", (long long)t->size[d]);
   if (p < len) snprintf(buf + p, len - p, "]");
   return buf;
}

int ddpm_tensor_same_shape(const ddpm_tensor *a, const ddpm_tensor *b)
{
   if (a->ndim != b->ndim) return 0;
   for (int d = 0; d < a->ndim; d++) if (a->size[d] != b->size[d]) return 0;
   return 1;
}

int ddpm_tensor_reshape(ddpm_tensor *t, int ndim, const int64_t *size)
{
   char sa[128];
   if (!ddpm_tensor_is_contiguous(t))
      return ddpm_seterr(DDPM_EINVAL, "view: tensor %s is not contiguous (use :contiguous())",
                         ddpm_tensor_shape_str(t, sa, sizeof sa));
   if (ndim < 0 || ndim > DDPM_MAX_DIMS)
      return ddpm_seterr(DDPM_EINVAL, "view: %d dimensions (at most %d)", ndim, DDPM_MAX_DIMS);
   int64_t n = 1;
   for (int d = 0; d < ndim; d++) {
      if (size[d] < 0) return ddpm_seterr(DDPM_EINVAL, "view: negative size");
      n *= size[d];
   }
   if (n != ddpm_tensor_numel(t))
      return ddpm_seterr(DDPM_ESHAPE, "view: cannot view %s (%lld elements) as %lld elements",
                         ddpm_tensor_shape_str(t, sa, sizeof sa),
                         (long long)ddpm_tensor_numel(t), (long long)n);
   t->ndim = ndim;
   for (int d = 0; d < ndim; d++) t->size[d] = size[d];
   set_contiguous_strides(t);
   return DDPM_OK;
}

int ddpm_tensor_narrow(ddpm_tensor *t, int dim, int64_t start, int64_t len)
{
   char sa[128];
   if (dim < 0 || dim >= t->ndim)
      return ddpm_seterr(DDPM_EINVAL, "narrow: dimension %d out of range for %s", dim + 1,
                         ddpm_tensor_shape_str(t, sa, sizeof sa));
   if (start < 0 || len < 0 || start + len > t->size[dim])
      return ddpm_seterr(DDPM_EINVAL, "narrow: [%lld, %lld) outside 1..%lld of dimension %d",
                         (long long)start + 1, (long long)(start + len) + 1,
                         (long long)t->size[dim], dim + 1);
   t->offset += start * t->stride[dim];
   t->size[dim] = len;
   return DDPM_OK;
}

int ddpm_tensor_select(ddpm_tensor *t, int dim, int64_t index)
{
   char sa[128];
   if (dim < 0 || dim >= t->ndim)
      return ddpm_seterr(DDPM_EINVAL, "select: dimension %d out of range for %s", dim + 1,
                         ddpm_tensor_shape_str(t, sa, sizeof sa));
   if (index < 0 || index >= t->size[dim])
      return ddpm_seterr(DDPM_EINVAL, "index %lld out of range 1..%lld of dimension %d",
                         (long long)index + 1, (long long)t->size[dim], dim + 1);
   t->offset += index * t->stride[dim];
   for (int d = dim; d < t->ndim - 1; d++) {
      t->size[d] = t->size[d + 1];
      t->stride[d] = t->stride[d + 1];
   }
   t->ndim--;
   return DDPM_OK;
}

int ddpm_tensor_transpose(ddpm_tensor *t, int d0, int d1)
{
   if (d0 < 0 || d1 < 0 || d0 >= t->ndim || d1 >= t->ndim)
      return ddpm_seterr(DDPM_EINVAL, "transpose: dimensions %d,%d out of range 1..%d",
                         d0 + 1, d1 + 1, t->ndim);
   int64_t s = t->size[d0], st = t->stride[d0];
   t->size[d0] = t->size[d1]; t->stride[d0] = t->stride[d1];
   t->size[d1] = s; t->stride[d1] = st;
   return DDPM_OK;
}

/* Element offset of flat (row-major) index i of t. */
static inline int64_t offset_of(const ddpm_tensor *t, int64_t i)
{
   int64_t off = t->offset;
   for (int d = t->ndim - 1; d >= 0; d--) {
      int64_t sz = t->size[d];
      off += (i % sz) * t->stride[d];
      i /= sz;
   }
   return off;
}

float *ddpm_tensor_ptr(const ddpm_tensor *t, const int64_t *index)
{
   int64_t off = t->offset;
   for (int d = 0; d < t->ndim; d++) off += index[d] * t->stride[d];
   ddpm_tensor_touch(t);
   return t->storage->data + off;
}

ddpm_tensor *ddpm_tensor_clone(const ddpm_tensor *src)
{
   ddpm_tensor *t = ddpm_tensor_new(src->ndim, src->size);
   if (t) ddpm_tensor_copy(t, src);
   return t;
}

int ddpm_tensor_copy(ddpm_tensor *dst, const ddpm_tensor *src)
{
   int64_t n = ddpm_tensor_numel(dst);
   if (n != ddpm_tensor_numel(src)) {
      char sa[128], sb[128];
      return ddpm_seterr(DDPM_ESHAPE, "copy: %s and %s differ in element count",
                         ddpm_tensor_shape_str(dst, sa, sizeof sa),
                         ddpm_tensor_shape_str(src, sb, sizeof sb));
   }
   ddpm_tensor_touch(dst);
   float *d = dst->storage->data;
   const float *s = src->storage->data;
   if (ddpm_tensor_is_contiguous(dst) && ddpm_tensor_is_contiguous(src)) {
      memmove(d + dst->offset, s + src->offset, (size_t)n * sizeof(float));
      return DDPM_OK;
   }
   for (int64_t i = 0; i < n; i++) d[offset_of(dst, i)] = s[offset_of(src, i)];
   return DDPM_OK;
}

void ddpm_tensor_fill(ddpm_tensor *t, float v)
{
   int64_t n = ddpm_tensor_numel(t);
   ddpm_tensor_touch(t);
   float *d = t->storage->data;
   if (ddpm_tensor_is_contiguous(t)) {
      for (int64_t i = 0; i < n; i++) d[t->offset + i] = v;
      return;
   }
   for (int64_t i = 0; i < n; i++) d[offset_of(t, i)] = v;
}

static inline float apply(float a, float b, int op)
{
   switch (op) {
   case DDPM_OP_ADD: return a + b;
   case DDPM_OP_SUB: return a - b;
   case DDPM_OP_MUL: return a * b;
   default:          return a / b;
   }
}

int ddpm_tensor_binop(ddpm_tensor *out, const ddpm_tensor *a, const ddpm_tensor *b, int op)
{
   if (!ddpm_tensor_same_shape(a, b) || !ddpm_tensor_same_shape(out, a)) {
      char sa[128], sb[128];
      return ddpm_seterr(DDPM_ESHAPE, "elementwise op: shapes %s and %s differ",
                         ddpm_tensor_shape_str(a, sa, sizeof sa),
                         ddpm_tensor_shape_str(b, sb, sizeof sb));
   }
   int64_t n = ddpm_tensor_numel(a);
   ddpm_tensor_touch(out);
   float *o = out->storage->data;
   const float *pa = a->storage->data, *pb = b->storage->data;
   if (ddpm_tensor_is_contiguous(out) && ddpm_tensor_is_contiguous(a) &&
       ddpm_tensor_is_contiguous(b)) {
      o += out->offset; pa += a->offset; pb += b->offset;
      #pragma omp parallel for schedule(static) if (n > 262144)
      for (int64_t i = 0; i < n; i++) o[i] = apply(pa[i], pb[i], op);
      return DDPM_OK;
   }
   for (int64_t i = 0; i < n; i++)
      o[offset_of(out, i)] = apply(pa[offset_of(a, i)], pb[offset_of(b, i)], op);
   return DDPM_OK;
}

int ddpm_tensor_scalarop(ddpm_tensor *out, const ddpm_tensor *a, double s, int op,
                         ddpm_scalar_side side)
{
   if (!ddpm_tensor_same_shape(out, a))
      return ddpm_seterr(DDPM_ESHAPE, "scalar op: output shape differs from input");
   int64_t n = ddpm_tensor_numel(a);
   ddpm_tensor_touch(out);
   float *o = out->storage->data;
   const float *pa = a->storage->data;
   float fs = (float)s;
   for (int64_t i = 0; i < n; i++) {
      float x = pa[offset_of(a, i)];
      o[offset_of(out, i)] = side == DDPM_SCALAR_LEFT ? apply(fs, x, op) : apply(x, fs, op);
   }
   return DDPM_OK;
}

typedef enum { DDPM_MAP_ABS, DDPM_MAP_CLAMP, DDPM_MAP_TO_8BIT } ddpm_tensor_map_op;

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

static inline float to_8bit(float x)
{
   double d = x;
   if (d != d) d = 0;
   d = d < -1 ? -1 : d > 1 ? 1 : d;
   return (float)(floor((d + 1.0) * 127.5 + 0.5) / 127.5 - 1.0);
}

/* out = f(a) elementwise for the maps below (out may alias a). */
static int map(ddpm_tensor *out, const ddpm_tensor *a, ddpm_tensor_map_op f, float lo, float hi)
{
   if (!ddpm_tensor_same_shape(out, a)) {
      char sa[128], so[128];
      return ddpm_seterr(DDPM_ESHAPE, "elementwise map: output %s, input %s",
                         ddpm_tensor_shape_str(out, so, sizeof so),
                         ddpm_tensor_shape_str(a, sa, sizeof sa));
   }
   int64_t n = ddpm_tensor_numel(a);
   ddpm_tensor_touch(out);
   float *o = out->storage->data;
   const float *pa = a->storage->data;
   for (int64_t i = 0; i < n; i++) {
      float x = pa[offset_of(a, i)];
      o[offset_of(out, i)] = f == DDPM_MAP_ABS ? fabsf(x) : f == DDPM_MAP_CLAMP ? clampf(x, lo, hi)
                                                                                : to_8bit(x);
   }
   return DDPM_OK;
}

int ddpm_tensor_abs(ddpm_tensor *out, const ddpm_tensor *a)
{
   return map(out, a, DDPM_MAP_ABS, 0, 0);
}

int ddpm_tensor_clamp(ddpm_tensor *out, const ddpm_tensor *a, float lo, float hi)
{
   if (!(lo <= hi)) return ddpm_seterr(DDPM_EINVAL, "clamp: lower bound %g above upper bound %g",
                                       (double)lo, (double)hi);
   return map(out, a, DDPM_MAP_CLAMP, lo, hi);
}

int ddpm_tensor_to_8bit(ddpm_tensor *out, const ddpm_tensor *a)
{
   return map(out, a, DDPM_MAP_TO_8BIT, 0, 0);
}

int ddpm_tensor_equal(const ddpm_tensor *a, const ddpm_tensor *b)
{
   if (!ddpm_tensor_same_shape(a, b)) return 0;
   int64_t n = ddpm_tensor_numel(a);
   const float *pa = a->storage->data, *pb = b->storage->data;
   for (int64_t i = 0; i < n; i++)
      if (memcmp(&pa[offset_of(a, i)], &pb[offset_of(b, i)], sizeof(float)) != 0) return 0;
   return 1;
}

double ddpm_tensor_max_abs_diff(const ddpm_tensor *a, const ddpm_tensor *b)
{
   if (!ddpm_tensor_same_shape(a, b)) {
      char sa[128], sb[128];
      ddpm_seterr(DDPM_ESHAPE, "max_abs_diff: shapes %s and %s differ",
                  ddpm_tensor_shape_str(a, sa, sizeof sa), ddpm_tensor_shape_str(b, sb, sizeof sb));
      return NAN;
   }
   int64_t n = ddpm_tensor_numel(a);
   const float *pa = a->storage->data, *pb = b->storage->data;
   double m = -INFINITY;
   for (int64_t i = 0; i < n; i++) {
      float d = pa[offset_of(a, i)] - pb[offset_of(b, i)];
      if (isnan(d)) return NAN;
      if (fabsf(d) > m) m = fabsf(d);
   }
   return m;
}

double ddpm_tensor_sum(const ddpm_tensor *t)
{
   int64_t n = ddpm_tensor_numel(t);
   const float *d = t->storage->data;
   double s = 0;
   for (int64_t i = 0; i < n; i++) s += d[offset_of(t, i)];
   return s;
}

double ddpm_tensor_min(const ddpm_tensor *t)
{
   int64_t n = ddpm_tensor_numel(t);
   const float *d = t->storage->data;
   double m = INFINITY;
   for (int64_t i = 0; i < n; i++) {
      float v = d[offset_of(t, i)];
      if (v < m || isnan(v)) m = v;
      if (isnan(v)) break;
   }
   return m;
}

double ddpm_tensor_max(const ddpm_tensor *t)
{
   int64_t n = ddpm_tensor_numel(t);
   const float *d = t->storage->data;
   double m = -INFINITY;
   for (int64_t i = 0; i < n; i++) {
      float v = d[offset_of(t, i)];
      if (v > m || isnan(v)) m = v;
      if (isnan(v)) break;
   }
   return m;
}
