/*
 * safetensors_write.c — ddpm_st_write: float32 tensors to a safetensors file,
 * atomically (docs/design.md §2).
 *
 * The header is built in memory in the layout safetensors' own writer uses
 * (__metadata__ first, tensors in the caller's order, contiguous offsets,
 * spaces up to a multiple of 8 so the data starts 8-aligned). The length
 * prefix, the header and the caller's buffers go to the atomic writer
 * (runtime/fileio.c) as parts, so nothing is copied.
 *
 * Not here: converting between dtypes (the caller's buffers are written as
 * they are, in the host's byte order), big-endian hosts.
 */
#include "ddpm.h"
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors_write.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)   /* what readers accept */

typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
   if (b->oom) return;
   if (b->cap - b->n < n) {
      size_t cap = b->cap ? b->cap : 256;
      while (cap - b->n < n) {
         if (cap > SIZE_MAX / 2) { b->oom = 1; return; }
         cap *= 2;
      }
      char *p = realloc(b->p, cap);
      if (!p) { b->oom = 1; return; }
      b->p = p;
      b->cap = cap;
   }
   memcpy(b->p + b->n, s, n);
   b->n += n;
}

static void sb_cstr(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
   char t[24];
   sb_put(b, t, (size_t)snprintf(t, sizeof t, "%" PRIu64, v));
}

/* s as a JSON string literal; non-ASCII UTF-8 passes through. */
static void sb_json_str(sbuf *b, const char *s)
{
   sb_put(b, "\"", 1);
   for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
      char t[8];
      switch (*q) {
      case '"': sb_put(b, "\\\"", 2); break;
      case '\\': sb_put(b, "\\\\", 2); break;
      case '\n': sb_put(b, "\\n", 2); break;
      case '\r': sb_put(b, "\\r", 2); break;
      case '\t': sb_put(b, "\\t", 2); break;
      case '\b': sb_put(b, "\\b", 2); break;
      case '\f': sb_put(b, "\\f", 2); break;
      default:
         if (*q < 0x20) sb_put(b, t, (size_t)snprintf(t, sizeof t, "\\u%04x", *q));
         else sb_put(b, (const char *)q, 1);
      }
   }
   sb_put(b, "\"", 1);
}

static int cmp_cstr(const void *a, const void *b)
{
   return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* NULL if the n strings are unique, else one that repeats. */
static const char *first_duplicate(const char *const *s, int n, int *oom)
{
   const char *dup = NULL;
   *oom = 0;
   if (n < 2) return NULL;
   const char **c = malloc((size_t)n * sizeof *c);
   *oom = !c;
   if (!c) return NULL;
   memcpy(c, s, (size_t)n * sizeof *c);
   qsort(c, (size_t)n, sizeof *c, cmp_cstr);
   for (int i = 1; i < n && !dup; i++) if (!strcmp(c[i - 1], c[i])) dup = c[i];
   free(c);
   return dup;
}

static int check_string(const char *path, const char *kind, int i, const char *s)
{
   if (!s) return ddpm_seterr(DDPM_EINVAL, "%s: %s %d is NULL", path, kind, i);
   size_t n = strlen(s);
   if (ddpm_utf8_check((const unsigned char *)s, n) != n)
      return ddpm_seterr(DDPM_EINVAL, "%s: %s %d is not valid UTF-8", path, kind, i);
   return DDPM_OK;
}

/* Everything the caller passed, before any byte is written; fills bytes[]. */
static int write_check(const char *path, int n, const char *const *names, const int *dtypes,
                       const int *ndims, const int64_t *const *shapes, const void *const *data,
                       int meta_n,
                       const char *const *meta_keys, const char *const *meta_vals,
                       uint64_t *bytes)
{
   int rc, oom;
   const char *dup;
   if (n < 0 || meta_n < 0)
      return ddpm_seterr(DDPM_EINVAL, "%s: negative tensor or metadata count", path);
   if (n > 0 && (!names || !ndims || !shapes || !data))
      return ddpm_seterr(DDPM_EINVAL, "%s: names, ndims, shapes and data must not be NULL", path);
   if (meta_n > 0 && (!meta_keys || !meta_vals))
      return ddpm_seterr(DDPM_EINVAL, "%s: metadata keys and values must not be NULL", path);
   uint64_t total = 0;
   for (int i = 0; i < n; i++) {
      if ((rc = check_string(path, "tensor name", i, names[i])) != DDPM_OK) return rc;
      if (!strcmp(names[i], "__metadata__"))
         return ddpm_seterr(DDPM_EINVAL, "%s: \"__metadata__\" cannot be a tensor name", path);
      if (ndims[i] < 0 || ndims[i] > DDPM_MAX_DIMS)
         return ddpm_seterr(DDPM_EINVAL, "%s: tensor \"%s\": ndim %d not in [0, %d]", path,
                            names[i], ndims[i], DDPM_MAX_DIMS);
      if (ndims[i] > 0 && !shapes[i])
         return ddpm_seterr(DDPM_EINVAL, "%s: tensor \"%s\": shape is NULL", path, names[i]);
      int size = ddpm_st_dtype_size(dtypes ? dtypes[i] : DDPM_DT_F32);
      if (size == 0)
         return ddpm_seterr(DDPM_EINVAL, "%s: tensor \"%s\": unknown dtype %d", path, names[i],
                            dtypes[i]);
      uint64_t b = (uint64_t)size;
      for (int d = 0; d < ndims[i]; d++) {
         if (shapes[i][d] < 0)
            return ddpm_seterr(DDPM_EINVAL, "%s: tensor \"%s\": negative size %" PRId64
                               " in dim %d", path, names[i], shapes[i][d], d);
         if (__builtin_mul_overflow(b, (uint64_t)shapes[i][d], &b))
            return ddpm_seterr(DDPM_EINVAL, "%s: tensor \"%s\": size overflows", path, names[i]);
      }
      if (__builtin_add_overflow(total, b, &total) || total > (uint64_t)INT64_MAX)
         return ddpm_seterr(DDPM_EINVAL, "%s: tensors too large in total", path);
      if (b > 0 && !data[i])
         return ddpm_seterr(DDPM_EINVAL, "%s: tensor \"%s\": data is NULL", path, names[i]);
      bytes[i] = b;
   }
   for (int i = 0; i < meta_n; i++) {
      if ((rc = check_string(path, "metadata key", i, meta_keys[i])) != DDPM_OK) return rc;
      if ((rc = check_string(path, "metadata value", i, meta_vals[i])) != DDPM_OK) return rc;
   }
   if ((dup = first_duplicate(names, n, &oom)) != NULL)
      return ddpm_seterr(DDPM_EINVAL, "%s: duplicate tensor name \"%s\"", path, dup);
   if (!oom && (dup = first_duplicate(meta_keys, meta_n, &oom)) != NULL)
      return ddpm_seterr(DDPM_EINVAL, "%s: duplicate metadata key \"%s\"", path, dup);
   if (oom) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", path);
   return DDPM_OK;
}

/* The length prefix, the header, then the tensors, as the atomic writer's parts. */
static int write_file(const char *path, const sbuf *hdr, int n, const void *const *data,
                      const uint64_t *bytes)
{
   ddpm_file_part *parts = malloc((size_t)(n + 2) * sizeof *parts);
   if (!parts) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", path);
   unsigned char pre[8];
   uint64_t N = hdr->n;
   memcpy(pre, &N, 8);
   parts[0] = (ddpm_file_part){pre, 8};
   parts[1] = (ddpm_file_part){hdr->p, hdr->n};
   for (int i = 0; i < n; i++) parts[i + 2] = (ddpm_file_part){data[i], (size_t)bytes[i]};
   int rc = ddpm_file_write_atomicv(path, parts, n + 2, "safetensors");
   free(parts);
   return rc;
}

int ddpm_st_write(const char *path, int n, const char *const *names,
                  const int *ndims, const int64_t *const *shapes,
                  const float *const *data,
                  int meta_n, const char *const *meta_keys, const char *const *meta_vals)
{
   return ddpm_st_write_typed(path, n, names, NULL, ndims, shapes, (const void *const *)data,
                              meta_n, meta_keys, meta_vals);
}

int ddpm_st_write_typed(const char *path, int n, const char *const *names, const int *dtypes,
                        const int *ndims, const int64_t *const *shapes,
                        const void *const *data,
                        int meta_n, const char *const *meta_keys, const char *const *meta_vals)
{
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "ddpm_st_write: path is NULL or empty");
   uint64_t *bytes = malloc((size_t)(n > 0 ? n : 1) * sizeof *bytes);
   if (!bytes) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", path);
   int rc = write_check(path, n, names, dtypes, ndims, shapes, data, meta_n, meta_keys, meta_vals,
                        bytes);
   if (rc != DDPM_OK) { free(bytes); return rc; }

   /* the layout safetensors' own writer produces: metadata first, tensors
      in order, header padded with spaces so the data starts 8-aligned */
   sbuf h = {0};
   sb_put(&h, "{", 1);
   if (meta_n > 0) {
      sb_cstr(&h, "\"__metadata__\":{");
      for (int i = 0; i < meta_n; i++) {
         if (i) sb_put(&h, ",", 1);
         sb_json_str(&h, meta_keys[i]);
         sb_put(&h, ":", 1);
         sb_json_str(&h, meta_vals[i]);
      }
      sb_cstr(&h, n > 0 ? "}," : "}");
   }
   uint64_t at = 0;
   for (int i = 0; i < n; i++) {
      if (i) sb_put(&h, ",", 1);
      sb_json_str(&h, names[i]);
      sb_cstr(&h, ":{\"dtype\":\"");
      sb_cstr(&h, ddpm_st_dtype_name(dtypes ? dtypes[i] : DDPM_DT_F32));
      sb_cstr(&h, "\",\"shape\":[");
      for (int d = 0; d < ndims[i]; d++) {
         if (d) sb_put(&h, ",", 1);
         sb_u64(&h, (uint64_t)shapes[i][d]);
      }
      sb_cstr(&h, "],\"data_offsets\":[");
      sb_u64(&h, at);
      sb_put(&h, ",", 1);
      sb_u64(&h, at + bytes[i]);
      sb_cstr(&h, "]}");
      at += bytes[i];
   }
   sb_put(&h, "}", 1);
   while (!h.oom && h.n % 8) sb_put(&h, " ", 1);
   if (h.oom) rc = ddpm_seterr(DDPM_ENOMEM, "%s: out of memory building the header", path);
   else if (h.n > ST_MAX_HEADER)
      rc = ddpm_seterr(DDPM_EINVAL, "%s: header of %zu bytes exceeds the 100 MiB limit", path, h.n);
   else rc = write_file(path, &h, n, data, bytes);
   free(h.p);
   free(bytes);
   return rc;
}
