/*
 * safetensors_write.c — ddpm_st_write: float32 tensors to a safetensors file,
 * atomically (docs/design.md §2).
 *
 * The header is built in memory in the layout safetensors' own writer uses
 * (__metadata__ first, tensors in the caller's order, contiguous offsets,
 * spaces up to a multiple of 8 so the data starts 8-aligned). The file goes
 * to a temp file beside the target (O_EXCL), is fsynced, closed, renamed over
 * the target, and the directory is fsynced. On any failure the temp file is
 * removed and the previous file, if any, is untouched.
 *
 * Not here: other dtypes, streaming (the caller's buffers are written as
 * they are), big-endian hosts, free-space checks before writing (the write
 * itself reports ENOSPC). A symlink at the target is replaced, not followed.
 */
#include "ddpm.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
static int write_check(const char *path, int n, const char *const *names, const int *ndims,
                       const int64_t *const *shapes, const float *const *data, int meta_n,
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
      uint64_t b = 4;
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

/* Writes all n bytes, through short writes and EINTR. */
static int write_all(int fd, const void *buf, uint64_t n)
{
   const unsigned char *p = buf;
   while (n > 0) {
      size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)n;
      ssize_t w = write(fd, p, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return -1;
      if (w == 0) { errno = EIO; return -1; }
      p += w;
      n -= (uint64_t)w;
   }
   return 0;
}

/* The header, then the tensors, via dir/.base.tmp.<pid>.<k>, fsync, rename and
   a directory fsync (docs/design.md §2). On failure the temp file is gone
   and whatever was at path before is untouched. */
static int write_atomic(const char *path, const sbuf *hdr, int n, const float *const *data,
                        const uint64_t *bytes)
{
   const char *slash = strrchr(path, '/');
   const char *base = slash ? slash + 1 : path;
   size_t dirlen = slash ? (size_t)(slash - path) : 0;
   size_t baselen = strlen(base);
   if (baselen == 0 || !strcmp(base, ".") || !strcmp(base, ".."))
      return ddpm_seterr(DDPM_EINVAL, "%s: path names a directory, not a file", path);
   size_t tmpsize = dirlen + 1 + (baselen > 200 ? 200 : baselen) + 64;
   char *tmp = malloc(tmpsize);
   char *dir = malloc(dirlen + 2);
   if (!tmp || !dir) {
      free(tmp);
      free(dir);
      return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", path);
   }
   if (!slash) strcpy(dir, ".");
   else if (dirlen == 0) strcpy(dir, "/");
   else { memcpy(dir, path, dirlen); dir[dirlen] = '\0'; }

   int fd = -1, rc = DDPM_OK;
   for (int k = 0; fd < 0; k++) {
      /* base is cut at 200 bytes so the temp name stays under NAME_MAX */
      snprintf(tmp, tmpsize, "%.*s.%.200s.tmp.%ld.%d", (int)(slash ? dirlen + 1 : 0),
               path, base, (long)getpid(), k);
      fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 && (errno != EEXIST || k == 99)) {
         rc = ddpm_seterr(DDPM_EIO, "%s: cannot create temporary file %s: %s", path, tmp,
                          strerror(errno));
         free(tmp);
         free(dir);
         return rc;
      }
   }

   unsigned char pre[8];
   uint64_t N = hdr->n;
   memcpy(pre, &N, 8);
   const char *step = "write";
   int ok = write_all(fd, pre, 8) == 0 && write_all(fd, hdr->p, hdr->n) == 0;
   for (int i = 0; ok && i < n; i++) ok = write_all(fd, data[i], bytes[i]) == 0;
   if (ok) {
      /* without this a crash after the rename can leave an empty file */
      step = "fsync";
      ok = fsync(fd) == 0;
   }
   if (!ok) {
      rc = ddpm_seterr(DDPM_EIO, "%s: %s failed: %s", path, step, strerror(errno));
      close(fd);
      unlink(tmp);
      free(tmp);
      free(dir);
      return rc;
   }
   /* Linux closes the descriptor even when close reports EINTR; after a
      successful fsync that is not a lost write */
   if (close(fd) != 0 && errno != EINTR) {
      rc = ddpm_seterr(DDPM_EIO, "%s: close failed: %s", path, strerror(errno));
      unlink(tmp);
   }
   else if (rename(tmp, path) != 0) {
      rc = ddpm_seterr(DDPM_EIO, "%s: cannot rename %s into place: %s", path, tmp,
                       strerror(errno));
      unlink(tmp);
   }
   else {
      /* the rename is atomic but not durable until the directory is synced;
         file systems that cannot sync a directory say EINVAL */
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL))
         rc = ddpm_seterr(DDPM_EIO, "%s: written, but syncing directory %s failed: %s", path,
                          dir, strerror(errno));
      if (dfd >= 0) close(dfd);
   }
   free(tmp);
   free(dir);
   return rc;
}

int ddpm_st_write(const char *path, int n, const char *const *names,
                  const int *ndims, const int64_t *const *shapes,
                  const float *const *data,
                  int meta_n, const char *const *meta_keys, const char *const *meta_vals)
{
   if (!path || !*path) return ddpm_seterr(DDPM_EINVAL, "ddpm_st_write: path is NULL or empty");
   uint64_t *bytes = malloc((size_t)(n > 0 ? n : 1) * sizeof *bytes);
   if (!bytes) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", path);
   int rc = write_check(path, n, names, ndims, shapes, data, meta_n, meta_keys, meta_vals, bytes);
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
      sb_cstr(&h, ":{\"dtype\":\"F32\",\"shape\":[");
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
   else rc = write_atomic(path, &h, n, data, bytes);
   free(h.p);
   free(bytes);
   return rc;
}
