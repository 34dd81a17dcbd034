/*
 * safetensors.c — the strict safetensors reader (ddpm_st_open/parse and the
 * accessors); the writer is safetensors_write.c, the JSON lexer json.c.
 *
 * Format (huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of UTF-8 JSON, then the data buffer. Nothing in the header is
 * trusted until all of it has been checked (docs/design.md §1, rules 1-7):
 * sizes against the file before any allocation, UTF-8, strict JSON, duplicate
 * keys, dtypes, shapes, offsets, byte counts with overflow checks, and that
 * the tensors tile the data buffer with no gap and no overlap. Every message
 * names the file and, where there is one, the tensor.
 *
 * ddpm_st_open keeps the file descriptor and reads tensor bytes with pread
 * when asked, so loading a model needs no second copy of the file (the
 * descriptor follows the inode: a later atomic save by ddpm_st_write does not
 * disturb an open reader). ddpm_st_parse keeps a copy of the data bytes.
 *
 * Not here: a general JSON parser (the schema drives the lexer; unknown
 * fields in a tensor entry are rejected, as is \u0000 in names), checks of
 * data values (NaN/Inf pass), F8 and sub-byte dtypes, big-endian hosts, and
 * matching a file against a model (rule 8 of docs/design.md §1: ddpm_unet_load_st).
 */
#include "ddpm.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)   /* 100 MiB */
#define ST_BUFFER_NAME "safetensors buffer"

typedef struct st_kv { char *key, *val; } st_kv;

struct ddpm_st_file {
   char *what;              /* path or label, for messages */
   int fd;                  /* -1: the data buffer lives in mem */
   unsigned char *mem;
   uint64_t data_start;     /* file offset of the data buffer (8 + N) */
   uint64_t data_len;
   int n, cap;
   ddpm_st_entry *entries;  /* sorted by data offset */
   int *by_name;            /* entry indices sorted by name */
   int meta_n, meta_cap;
   st_kv *meta;             /* sorted by key */
};

static const struct { const char *name; int dtype, size; } dtypes[] = {
   {"F64", DDPM_DT_F64, 8}, {"F32", DDPM_DT_F32, 4}, {"F16", DDPM_DT_F16, 2},
   {"BF16", DDPM_DT_BF16, 2}, {"I64", DDPM_DT_I64, 8}, {"I32", DDPM_DT_I32, 4},
   {"I16", DDPM_DT_I16, 2}, {"I8", DDPM_DT_I8, 1}, {"U8", DDPM_DT_U8, 1},
   {"U16", DDPM_DT_U16, 2}, {"U32", DDPM_DT_U32, 4}, {"U64", DDPM_DT_U64, 8},
   {"BOOL", DDPM_DT_BOOL, 1},
};
#define ST_NDTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

static int dtype_index(int dtype)
{
   for (int k = 0; k < ST_NDTYPES; k++) if (dtypes[k].dtype == dtype) return k;
   return 0;   /* unreachable for validated entries */
}

const char *ddpm_st_dtype_name(int dtype)
{
   for (int k = 0; k < ST_NDTYPES; k++) if (dtypes[k].dtype == dtype) return dtypes[k].name;
   return NULL;
}

int ddpm_st_dtype_size(int dtype)
{
   for (int k = 0; k < ST_NDTYPES; k++) if (dtypes[k].dtype == dtype) return dtypes[k].size;
   return 0;
}

static char *dupstr(const char *s)
{
   size_t n = strlen(s) + 1;
   char *d = malloc(n);
   if (d) memcpy(d, s, n);
   return d;
}

/* "[2,3,0]" into buf. */
static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
   size_t k = 0;
   k += (size_t)snprintf(buf, len, "[");
   for (int d = 0; d < ndim && k < len; d++)
      k += (size_t)snprintf(buf + k, len - k, d ? ",%" PRId64 : "%" PRId64, shape[d]);
   if (k < len) snprintf(buf + k, len - k, "]");
   return buf;
}

/* ------------------------------------------------------------------ reader */

static int entry_field_error(ddpm_json_lexer *lx, const char *name, const char *fmt_field,
                             const unsigned char *tok, const char *problem)
{
   return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": %s %.*s is %s", lx->what, name,
                      fmt_field, (int)(lx->p - tok > 40 ? 40 : lx->p - tok), (const char *)tok,
                      problem);
}

/* "[" unsigned integers "]" with at most max entries, each <= limit. */
static int parse_uint_array(ddpm_json_lexer *lx, const char *name, const char *field,
                            uint64_t *vals, int max, uint64_t limit, int *count)
{
   int rc, n = 0;
   if (ddpm_json_peek(lx) != '[')
      return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": %s must be an array of integers",
                         lx->what, name, field);
   lx->p++;
   if (ddpm_json_peek(lx) == ']') { lx->p++; *count = 0; return DDPM_OK; }
   for (;;) {
      uint64_t v;
      int kind;
      const unsigned char *tok;
      int c = ddpm_json_peek(lx);
      if (c != '-' && !(c >= '0' && c <= '9'))
         return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": %s must be an array of integers",
                            lx->what, name, field);
      if ((rc = ddpm_json_number(lx, &v, &kind, &tok)) != DDPM_OK) return rc;
      if (kind == DDPM_JSON_NEG) return entry_field_error(lx, name, field, tok, "negative");
      if (kind == DDPM_JSON_FRAC) return entry_field_error(lx, name, field, tok, "not an integer");
      if (kind == DDPM_JSON_BIG || v > limit)
         return entry_field_error(lx, name, field, tok, "too large");
      if (n == max) {
         if (max == 2)
            return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": data_offsets must have exactly "
                               "two entries [begin, end]", lx->what, name);
         return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": shape has too many dimensions "
                            "(more than %d)", lx->what, name, max);
      }
      vals[n++] = v;
      c = ddpm_json_peek(lx);
      if (c == ']') { lx->p++; break; }
      if ((rc = ddpm_json_expect(lx, ',', "',' or ']'")) != DDPM_OK) return rc;
   }
   *count = n;
   return DDPM_OK;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]} for tensor e->name. */
static int parse_entry(ddpm_st_file *f, ddpm_json_lexer *lx, ddpm_st_entry *e)
{
   int rc, have_dtype = 0, have_shape = 0, have_offsets = 0, count = 0;
   uint64_t vals[DDPM_MAX_DIMS];
   if (ddpm_json_peek(lx) != '{')
      return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": value must be an object "
                         "{dtype, shape, data_offsets}", lx->what, e->name);
   lx->p++;
   if (ddpm_json_peek(lx) == '}') lx->p++;
   else for (;;) {
      char *field;
      if ((rc = ddpm_json_string(lx, &field)) != DDPM_OK) return rc;
      if ((rc = ddpm_json_expect(lx, ':', "':'")) != DDPM_OK) { free(field); return rc; }
      int *seen = !strcmp(field, "dtype") ? &have_dtype : !strcmp(field, "shape") ? &have_shape
                : !strcmp(field, "data_offsets") ? &have_offsets : NULL;
      if (!seen || *seen) {
         rc = ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": %s key \"%s\"", lx->what, e->name,
                          seen ? "duplicate" : "unknown", field);
         free(field);
         return rc;
      }
      free(field);
      *seen = 1;
      if (seen == &have_dtype) {
         char *dt;
         int k;
         if (ddpm_json_peek(lx) != '"')
            return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": dtype must be a string",
                               lx->what, e->name);
         if ((rc = ddpm_json_string(lx, &dt)) != DDPM_OK) return rc;
         for (k = 0; k < ST_NDTYPES && strcmp(dt, dtypes[k].name); k++) {}
         if (k == ST_NDTYPES) {
            rc = ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": unknown dtype \"%.40s\"",
                             lx->what, e->name, dt);
            free(dt);
            return rc;
         }
         free(dt);
         e->dtype = dtypes[k].dtype;
      }
      else if (seen == &have_shape) {
         rc = parse_uint_array(lx, e->name, "shape entry", vals, DDPM_MAX_DIMS, INT64_MAX, &count);
         if (rc != DDPM_OK) return rc;
         e->ndim = count;
         for (int d = 0; d < count; d++) e->shape[d] = (int64_t)vals[d];
      }
      else {
         rc = parse_uint_array(lx, e->name, "data_offsets entry", vals, 2, UINT64_MAX, &count);
         if (rc != DDPM_OK) return rc;
         if (count != 2)
            return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": data_offsets must have exactly "
                               "two entries [begin, end]", lx->what, e->name);
         e->begin = vals[0];
         e->end = vals[1];
      }
      int c = ddpm_json_peek(lx);
      if (c == '}') { lx->p++; break; }
      if ((rc = ddpm_json_expect(lx, ',', "',' or '}'")) != DDPM_OK) return rc;
   }
   if (!have_dtype || !have_shape || !have_offsets)
      return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": missing \"%s\"", lx->what, e->name,
                         !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");

   if (e->begin > e->end)
      return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                         "] have begin > end", lx->what, e->name, e->begin, e->end);
   if (e->end > f->data_len)
      return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": data_offsets end %" PRIu64 " is past "
                         "the end of the data buffer (%" PRIu64 " bytes; file truncated?)",
                         lx->what, e->name, e->end, f->data_len);
   uint64_t bytes = (uint64_t)dtypes[dtype_index(e->dtype)].size;
   char sh[160];
   for (int d = 0; d < e->ndim; d++)
      if (__builtin_mul_overflow(bytes, (uint64_t)e->shape[d], &bytes))
         return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": shape %s overflows a 64-bit byte "
                            "count", lx->what, e->name,
                            shape_str(e->shape, e->ndim, sh, sizeof sh));
   if (bytes != e->end - e->begin)
      return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\": shape %s of %s needs %" PRIu64
                         " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                         " (numel mismatch)", lx->what, e->name,
                         shape_str(e->shape, e->ndim, sh, sizeof sh),
                         dtypes[dtype_index(e->dtype)].name, bytes, e->begin, e->end,
                         e->end - e->begin);
   return DDPM_OK;
}

static int parse_metadata(ddpm_st_file *f, ddpm_json_lexer *lx)
{
   int rc;
   if (ddpm_json_peek(lx) != '{')
      return ddpm_seterr(DDPM_EFORMAT, "%s: __metadata__ must be an object of strings", lx->what);
   lx->p++;
   if (ddpm_json_peek(lx) == '}') { lx->p++; return DDPM_OK; }
   for (;;) {
      char *key, *val;
      if ((rc = ddpm_json_string(lx, &key)) != DDPM_OK) return rc;
      if ((rc = ddpm_json_expect(lx, ':', "':'")) != DDPM_OK) { free(key); return rc; }
      if (ddpm_json_peek(lx) != '"') {
         rc = ddpm_seterr(DDPM_EFORMAT, "%s: __metadata__ value for \"%s\" is not a string",
                          lx->what, key);
         free(key);
         return rc;
      }
      if ((rc = ddpm_json_string(lx, &val)) != DDPM_OK) { free(key); return rc; }
      if (f->meta_n == f->meta_cap) {
         int cap = f->meta_cap ? 2 * f->meta_cap : 8;
         st_kv *m = f->meta_n < INT_MAX / 2 ? realloc(f->meta, (size_t)cap * sizeof *m) : NULL;
         if (!m) {
            free(key);
            free(val);
            return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory parsing __metadata__", lx->what);
         }
         f->meta = m;
         f->meta_cap = cap;
      }
      f->meta[f->meta_n].key = key;
      f->meta[f->meta_n++].val = val;
      int c = ddpm_json_peek(lx);
      if (c == '}') { lx->p++; break; }
      if ((rc = ddpm_json_expect(lx, ',', "',' or '}'")) != DDPM_OK) return rc;
   }
   return DDPM_OK;
}

static int cmp_kv(const void *a, const void *b)
{
   return strcmp(((const st_kv *)a)->key, ((const st_kv *)b)->key);
}

static int cmp_entry_name(const void *a, const void *b)
{
   return strcmp(((const ddpm_st_entry *)a)->name, ((const ddpm_st_entry *)b)->name);
}

static int cmp_entry_offset(const void *a, const void *b)
{
   const ddpm_st_entry *x = a, *y = b;
   if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
   if (x->end != y->end) return x->end < y->end ? -1 : 1;
   return strcmp(x->name, y->name);   /* zero-size tensors at one offset */
}

static int cmp_index_name(const void *a, const void *b)
{
   const ddpm_st_entry *const *x = a, *const *y = b;
   return strcmp((*x)->name, (*y)->name);
}

/* Duplicates, then the tiling of the data buffer, then the name index. */
static int check_layout(ddpm_st_file *f)
{
   /* glibc declares qsort's base nonnull, even for zero elements */
   if (f->meta_n > 1) qsort(f->meta, (size_t)f->meta_n, sizeof *f->meta, cmp_kv);
   for (int i = 1; i < f->meta_n; i++)
      if (!strcmp(f->meta[i - 1].key, f->meta[i].key))
         return ddpm_seterr(DDPM_EFORMAT, "%s: duplicate __metadata__ key \"%s\"", f->what,
                            f->meta[i].key);
   if (f->n > 1) qsort(f->entries, (size_t)f->n, sizeof *f->entries, cmp_entry_name);
   for (int i = 1; i < f->n; i++)
      if (!strcmp(f->entries[i - 1].name, f->entries[i].name))
         return ddpm_seterr(DDPM_EFORMAT, "%s: duplicate key: tensor \"%s\" appears twice",
                            f->what, f->entries[i].name);

   if (f->n > 1) qsort(f->entries, (size_t)f->n, sizeof *f->entries, cmp_entry_offset);
   uint64_t at = 0;
   for (int i = 0; i < f->n; i++) {
      const ddpm_st_entry *e = &f->entries[i];
      if (e->begin > at)
         return ddpm_seterr(DDPM_EFORMAT, "%s: gap in the data buffer: bytes [%" PRIu64 ", %"
                            PRIu64 ") before tensor \"%s\" belong to no tensor", f->what, at,
                            e->begin, e->name);
      if (e->begin < at)
         return ddpm_seterr(DDPM_EFORMAT, "%s: tensor \"%s\" data_offsets [%" PRIu64 ", %" PRIu64
                            "] overlap tensor \"%s\" (which ends at %" PRIu64 ")", f->what,
                            e->name, e->begin, e->end, f->entries[i - 1].name, at);
      at = e->end;
   }
   if (at != f->data_len)
      return ddpm_seterr(DDPM_EFORMAT, "%s: gap in the data buffer: bytes [%" PRIu64 ", %" PRIu64
                         ") after the last tensor belong to no tensor", f->what, at, f->data_len);

   const ddpm_st_entry **idx = malloc((size_t)(f->n ? f->n : 1) * sizeof *idx);
   f->by_name = malloc((size_t)(f->n ? f->n : 1) * sizeof *f->by_name);
   if (!idx || !f->by_name) {
      free(idx);
      return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory indexing %d tensors", f->what, f->n);
   }
   for (int i = 0; i < f->n; i++) idx[i] = &f->entries[i];
   if (f->n > 1) qsort(idx, (size_t)f->n, sizeof *idx, cmp_index_name);
   for (int i = 0; i < f->n; i++) f->by_name[i] = (int)(idx[i] - f->entries);
   free(idx);
   return DDPM_OK;
}

/* The N header bytes at h, for a data buffer of f->data_len bytes. */
static int parse_header(ddpm_st_file *f, const unsigned char *h, uint64_t N)
{
   int rc;
   size_t bad = ddpm_utf8_check(h, (size_t)N);
   if (bad != N)
      return ddpm_seterr(DDPM_EFORMAT, "%s: header is not valid UTF-8 (byte %zu)", f->what, bad);
   if (N == 0 || h[0] != '{')
      return ddpm_seterr(DDPM_EFORMAT, "%s: header is not a JSON object (it must start with "
                         "'{')", f->what);
   ddpm_json_lexer lx = {h, h + 1, h + N, f->what};
   int have_meta = 0;
   if (ddpm_json_peek(&lx) == '}') lx.p++;
   else for (;;) {
      char *key;
      if ((rc = ddpm_json_string(&lx, &key)) != DDPM_OK) return rc;
      if ((rc = ddpm_json_expect(&lx, ':', "':'")) != DDPM_OK) { free(key); return rc; }
      if (!strcmp(key, "__metadata__")) {
         free(key);
         if (have_meta)
            return ddpm_seterr(DDPM_EFORMAT, "%s: duplicate key \"__metadata__\"", f->what);
         have_meta = 1;
         if ((rc = parse_metadata(f, &lx)) != DDPM_OK) return rc;
      }
      else {
         if (f->n == f->cap) {
            int cap = f->cap ? (f->cap < INT_MAX / 2 ? 2 * f->cap : INT_MAX) : 16;
            ddpm_st_entry *m = f->n < INT_MAX ? realloc(f->entries, (size_t)cap * sizeof *m)
                                              : NULL;
            if (!m) {
               free(key);
               return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory for %d tensors", f->what, f->n);
            }
            f->entries = m;
            f->cap = cap;
         }
         ddpm_st_entry *e = &f->entries[f->n++];
         memset(e, 0, sizeof *e);
         e->name = key;   /* owned by f from here on */
         if ((rc = parse_entry(f, &lx, e)) != DDPM_OK) return rc;
      }
      int c = ddpm_json_peek(&lx);
      if (c == '}') { lx.p++; break; }
      if ((rc = ddpm_json_expect(&lx, ',', "',' or '}'")) != DDPM_OK) return rc;
   }
   ddpm_json_peek(&lx);
   if (lx.p != lx.end)
      return ddpm_seterr(DDPM_EFORMAT, "%s: trailing garbage after the JSON header object at "
                         "byte %zu (only spaces may follow)", f->what, (size_t)(lx.p - lx.s));
   return check_layout(f);
}

/* The 8-byte length prefix of a total_len-byte file; total_len >= 8. */
static int check_prefix(const unsigned char pre[8], uint64_t total_len, const char *what,
                        uint64_t *N)
{
   uint64_t n;
   memcpy(&n, pre, 8);
   if (n > ST_MAX_HEADER)
      return ddpm_seterr(DDPM_EFORMAT, "%s: header length %" PRIu64 " exceeds the 100 MiB limit",
                         what, n);
   if (n > total_len - 8)
      return ddpm_seterr(DDPM_EFORMAT, "%s: header length %" PRIu64 " exceeds the file size "
                         "(%" PRIu64 " bytes follow the length; file truncated?)", what, n,
                         total_len - 8);
   *N = n;
   return DDPM_OK;
}

static ddpm_st_file *file_new(const char *what)
{
   ddpm_st_file *f = calloc(1, sizeof *f);
   if (f && !(f->what = dupstr(what))) { free(f); f = NULL; }
   if (!f) { ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", what); return NULL; }
   f->fd = -1;
   return f;
}

void ddpm_st_close(ddpm_st_file *f)
{
   if (!f) return;
   if (f->fd >= 0) close(f->fd);
   for (int i = 0; i < f->n; i++) free(f->entries[i].name);
   for (int i = 0; i < f->meta_n; i++) {
      free(f->meta[i].key);
      free(f->meta[i].val);
   }
   free(f->entries);
   free(f->by_name);
   free(f->meta);
   free(f->mem);
   free(f->what);
   free(f);
}

ddpm_st_file *ddpm_st_parse(const void *bytes, size_t len, const char *what)
{
   const unsigned char *b = bytes;
   uint64_t N = 0;
   if (!what) what = ST_BUFFER_NAME;
   if (!bytes && len) {
      ddpm_seterr(DDPM_EINVAL, "%s: bytes is NULL", what);
      return NULL;
   }
   if (len < 8) {
      ddpm_seterr(DDPM_EFORMAT, "%s: %zu bytes is too short for a safetensors file (the header "
                  "length alone is 8 bytes)", what, len);
      return NULL;
   }
   if (check_prefix(b, len, what, &N) != DDPM_OK) return NULL;
   ddpm_st_file *f = file_new(what);
   if (!f) return NULL;
   f->data_start = 8 + N;
   f->data_len = len - 8 - N;
   if (parse_header(f, b + 8, N) != DDPM_OK) { ddpm_st_close(f); return NULL; }
   f->mem = malloc(f->data_len ? (size_t)f->data_len : 1);
   if (!f->mem) {
      ddpm_seterr(DDPM_ENOMEM, "%s: out of memory copying %" PRIu64 " data bytes", what,
                  f->data_len);
      ddpm_st_close(f);
      return NULL;
   }
   if (f->data_len) memcpy(f->mem, b + f->data_start, (size_t)f->data_len);
   return f;
}

/* n bytes at file offset off; a short file is a format error. */
static int pread_full(int fd, void *buf, uint64_t n, uint64_t off, const char *what)
{
   unsigned char *p = buf;
   while (n > 0) {
      size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)n;
      ssize_t r = pread(fd, p, chunk, (off_t)off);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return ddpm_seterr(DDPM_EIO, "%s: read failed: %s", what, strerror(errno));
      if (r == 0)
         return ddpm_seterr(DDPM_EFORMAT, "%s: file is truncated (ends at byte %" PRIu64 ")",
                            what, off);
      p += r;
      off += (uint64_t)r;
      n -= (uint64_t)r;
   }
   return DDPM_OK;
}

ddpm_st_file *ddpm_st_open(const char *path)
{
   struct stat sb;
   unsigned char pre[8];
   uint64_t N = 0;
   if (!path) {
      ddpm_seterr(DDPM_EINVAL, "ddpm_st_open: path is NULL");
      return NULL;
   }
   int fd = open(path, O_RDONLY | O_CLOEXEC);
   if (fd < 0) {
      ddpm_seterr(DDPM_EIO, "%s: cannot open: %s", path, strerror(errno));
      return NULL;
   }
   if (fstat(fd, &sb) != 0) {
      ddpm_seterr(DDPM_EIO, "%s: cannot stat: %s", path, strerror(errno));
      close(fd);
      return NULL;
   }
   if (!S_ISREG(sb.st_mode)) {
      ddpm_seterr(DDPM_EIO, "%s: not a regular file", path);
      close(fd);
      return NULL;
   }
   uint64_t size = (uint64_t)sb.st_size;
   if (size < 8) {
      ddpm_seterr(DDPM_EFORMAT, "%s: %" PRIu64 " bytes is too short for a safetensors file (the "
                  "header length alone is 8 bytes)", path, size);
      close(fd);
      return NULL;
   }
   if (pread_full(fd, pre, 8, 0, path) != DDPM_OK || check_prefix(pre, size, path, &N) != DDPM_OK) {
      close(fd);
      return NULL;
   }
   unsigned char *hdr = malloc(N ? (size_t)N : 1);
   ddpm_st_file *f = hdr ? file_new(path) : NULL;
   if (!f) {
      if (!hdr) ddpm_seterr(DDPM_ENOMEM, "%s: out of memory for a %" PRIu64 "-byte header",
                            path, N);
      free(hdr);
      close(fd);
      return NULL;
   }
   f->fd = fd;
   f->data_start = 8 + N;
   f->data_len = size - 8 - N;
   if (pread_full(fd, hdr, N, 8, path) != DDPM_OK || parse_header(f, hdr, N) != DDPM_OK) {
      free(hdr);
      ddpm_st_close(f);
      return NULL;
   }
   free(hdr);
   return f;
}

int ddpm_st_count(const ddpm_st_file *f) { return f ? f->n : 0; }

const ddpm_st_entry *ddpm_st_entry_at(const ddpm_st_file *f, int i)
{
   return f && i >= 0 && i < f->n ? &f->entries[i] : NULL;
}

int ddpm_st_find(const ddpm_st_file *f, const char *name)
{
   if (!f || !name) return -1;
   int lo = 0, hi = f->n - 1;
   while (lo <= hi) {
      int mid = lo + (hi - lo) / 2, c = strcmp(name, f->entries[f->by_name[mid]].name);
      if (c == 0) return f->by_name[mid];
      if (c < 0) hi = mid - 1;
      else lo = mid + 1;
   }
   return -1;
}

static int find_meta(const ddpm_st_file *f, const char *key)
{
   int lo = 0, hi = f->meta_n - 1;
   while (lo <= hi) {
      int mid = lo + (hi - lo) / 2, c = strcmp(key, f->meta[mid].key);
      if (c == 0) return mid;
      if (c < 0) hi = mid - 1;
      else lo = mid + 1;
   }
   return -1;
}

const char *ddpm_st_metadata(const ddpm_st_file *f, const char *key)
{
   int i = f && key ? find_meta(f, key) : -1;
   return i >= 0 ? f->meta[i].val : NULL;
}

int ddpm_st_metadata_count(const ddpm_st_file *f) { return f ? f->meta_n : 0; }

const char *ddpm_st_metadata_key(const ddpm_st_file *f, int i)
{
   return f && i >= 0 && i < f->meta_n ? f->meta[i].key : NULL;
}

/* IEEE half -> float, exact (subnormals, inf and NaN included). */
static float half_to_float(uint16_t h)
{
   uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h >> 10 & 0x1F, mant = h & 0x3FF, bits;
   float v;
   if (exp == 0) {
      v = (float)mant * 5.9604644775390625e-8f;   /* mant * 2^-24 */
      return sign ? -v : v;
   }
   if (exp == 31) bits = sign | 0x7F800000u | mant << 13;
   else bits = sign | (exp + 112) << 23 | mant << 13;
   memcpy(&v, &bits, 4);
   return v;
}

static void convert(float *dst, const unsigned char *src, int dtype, size_t n)
{
   for (size_t i = 0; i < n; i++) {
      switch (dtype) {
      case DDPM_DT_F16: {
         uint16_t h;
         memcpy(&h, src + 2 * i, 2);
         dst[i] = half_to_float(h);
         break;
      }
      case DDPM_DT_BF16: {
         uint16_t h;
         uint32_t bits;
         memcpy(&h, src + 2 * i, 2);
         bits = (uint32_t)h << 16;
         memcpy(&dst[i], &bits, 4);
         break;
      }
      case DDPM_DT_F64: { double v; memcpy(&v, src + 8 * i, 8); dst[i] = (float)v; break; }
      case DDPM_DT_I64: { int64_t v; memcpy(&v, src + 8 * i, 8); dst[i] = (float)v; break; }
      case DDPM_DT_U64: { uint64_t v; memcpy(&v, src + 8 * i, 8); dst[i] = (float)v; break; }
      case DDPM_DT_I32: { int32_t v; memcpy(&v, src + 4 * i, 4); dst[i] = (float)v; break; }
      case DDPM_DT_U32: { uint32_t v; memcpy(&v, src + 4 * i, 4); dst[i] = (float)v; break; }
      case DDPM_DT_I16: { int16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = (float)v; break; }
      case DDPM_DT_U16: { uint16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = (float)v; break; }
      case DDPM_DT_I8: dst[i] = (float)(int8_t)src[i]; break;
      case DDPM_DT_U8: dst[i] = (float)src[i]; break;
      case DDPM_DT_BOOL: dst[i] = src[i] ? 1.0f : 0.0f; break;
      default: dst[i] = 0; break;
      }
   }
}

/* len bytes at offset off of the data buffer (validated to lie inside it). */
static int read_range(const ddpm_st_file *f, uint64_t off, void *dst, uint64_t len)
{
   if (f->fd < 0) {
      if (len) memcpy(dst, f->mem + off, (size_t)len);
      return DDPM_OK;
   }
   return pread_full(f->fd, dst, len, f->data_start + off, f->what);
}

int ddpm_st_read_f32(const ddpm_st_file *f, int i, float *dst, size_t numel)
{
   if (!f) return ddpm_seterr(DDPM_EINVAL, "ddpm_st_read_f32: file is NULL");
   if (i < 0 || i >= f->n)
      return ddpm_seterr(DDPM_EINVAL, "%s: tensor index %d out of range [0, %d)", f->what, i, f->n);
   const ddpm_st_entry *e = &f->entries[i];
   int size = dtypes[dtype_index(e->dtype)].size;
   uint64_t n = (e->end - e->begin) / (uint64_t)size;
   if (n != (uint64_t)numel) {
      char sh[160];
      return ddpm_seterr(DDPM_ESHAPE, "%s: tensor \"%s\" %s has %" PRIu64 " elements, the "
                         "destination holds %zu", f->what, e->name,
                         shape_str(e->shape, e->ndim, sh, sizeof sh), n, numel);
   }
   if (numel && !dst)
      return ddpm_seterr(DDPM_EINVAL, "%s: tensor \"%s\": destination is NULL", f->what, e->name);
   if (e->dtype == DDPM_DT_F32) return read_range(f, e->begin, dst, e->end - e->begin);

   unsigned char tmp[16384];
   size_t per = sizeof tmp / (size_t)size;
   for (size_t done = 0; done < numel; ) {
      size_t k = numel - done < per ? numel - done : per;
      int rc = read_range(f, e->begin + (uint64_t)done * (uint64_t)size, tmp,
                          (uint64_t)k * (uint64_t)size);
      if (rc != DDPM_OK) return rc;
      convert(dst + done, tmp, e->dtype, k);
      done += k;
   }
   return DDPM_OK;
}
