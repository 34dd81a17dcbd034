/*
 * npz.c — .npz reading and writing (npz.h): a zip reader that trusts no
 * offset, zlib for deflated members, a .npy header parser for the dict
 * numpy writes, and a stored-zip writer.
 *
 * Every read of the file goes through span(): an offset and a length are
 * checked against the buffer (without overflow) before any byte is touched.
 */
#include "ddpm.h"
#include "ddpm/npz.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

struct ddpm_npz {
   int n;
   ddpm_npy *a;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p)
{
   return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Is [off, off+n) inside a buffer of len bytes? */
static int span(uint64_t off, uint64_t n, size_t len)
{
   return off <= len && n <= len - off;
}

void ddpm_npz_close(ddpm_npz *z)
{
   if (!z) return;
   for (int i = 0; i < z->n; i++) {
      free(z->a[i].name);
      free(z->a[i].data);
   }
   free(z->a);
   free(z);
}

int ddpm_npz_count(const ddpm_npz *z) { return z ? z->n : 0; }

const ddpm_npy *ddpm_npz_at(const ddpm_npz *z, int i)
{
   return z && i >= 0 && i < z->n ? &z->a[i] : NULL;
}

const ddpm_npy *ddpm_npz_find(const ddpm_npz *z, const char *name)
{
   for (int i = 0; z && name && i < z->n; i++)
      if (!strcmp(z->a[i].name, name)) return &z->a[i];
   return NULL;
}

/* ------------------------------------------------------------ .npy */

typedef struct hdr { char descr[8]; int fortran, have_descr, have_fortran, have_shape, ndim;
                     int64_t shape[DDPM_MAX_DIMS]; } hdr;

static const char *skip_ws(const char *p, const char *e)
{
   while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
   return p;
}

/* A quoted string into out (at most cap-1 bytes); NULL on a bad one. */
static const char *quoted(const char *p, const char *e, char *out, size_t cap)
{
   if (p >= e || (*p != '\'' && *p != '"')) return NULL;
   const char q = *p++;
   size_t k = 0;
   while (p < e && *p != q) {
      if (k + 1 >= cap || *p == '\\') return NULL;
      out[k++] = *p++;
   }
   if (p >= e) return NULL;
   out[k] = '\0';
   return p + 1;
}

/* The header dict: {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } */
static int parse_header(hdr *h, const char *p, const char *e, const char *what)
{
   memset(h, 0, sizeof *h);
   p = skip_ws(p, e);
   if (p >= e || *p++ != '{') return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header is not a dict", what);
   for (;;) {
      p = skip_ws(p, e);
      if (p < e && *p == '}') break;
      char key[32];
      p = quoted(p, e, key, sizeof key);
      if (!p) return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: bad key", what);
      p = skip_ws(p, e);
      if (p >= e || *p++ != ':') return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: ':' expected after '%s'", what, key);
      p = skip_ws(p, e);
      if (!strcmp(key, "descr")) {
         p = quoted(p, e, h->descr, sizeof h->descr);
         if (!p) return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: unsupported descr (a plain dtype string expected)", what);
         h->have_descr++;
      } else if (!strcmp(key, "fortran_order")) {
         if (e - p >= 4 && !memcmp(p, "True", 4)) { h->fortran = 1; p += 4; }
         else if (e - p >= 5 && !memcmp(p, "False", 5)) { h->fortran = 0; p += 5; }
         else return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: fortran_order is not True or False", what);
         h->have_fortran++;
      } else if (!strcmp(key, "shape")) {
         if (p >= e || *p++ != '(') return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: shape is not a tuple", what);
         for (;;) {
            p = skip_ws(p, e);
            if (p < e && *p == ')') { p++; break; }
            if (p >= e || *p < '0' || *p > '9')
               return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: bad shape", what);
            int64_t v = 0;
            while (p < e && *p >= '0' && *p <= '9') {
               if (v > (INT64_MAX - 9) / 10) return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: dimension too large", what);
               v = v * 10 + (*p++ - '0');
            }
            if (p < e && *p == 'L') p++;
            if (h->ndim >= DDPM_MAX_DIMS)
               return ddpm_seterr(DDPM_EFORMAT, "%s: .npy: more than %d dimensions", what, DDPM_MAX_DIMS);
            h->shape[h->ndim++] = v;
            p = skip_ws(p, e);
            if (p < e && *p == ',') p++;
            else if (!(p < e && *p == ')')) return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: bad shape", what);
         }
         h->have_shape++;
      } else {
         return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: unknown key '%s'", what, key);
      }
      p = skip_ws(p, e);
      if (p < e && *p == ',') { p++; continue; }
      if (p < e && *p == '}') break;
      return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header: ',' or '}' expected", what);
   }
   if (h->have_descr != 1 || h->have_fortran != 1 || h->have_shape != 1)
      return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header needs descr, fortran_order and shape once each", what);
   return DDPM_OK;
}

/* dtype, item size and byte order of a descr such as '<f8' or '|u1'. */
static int parse_descr(const char *d, int *dtype, int *size, int *big)
{
   if (strlen(d) != 3 || (d[0] != '<' && d[0] != '>' && d[0] != '|' && d[0] != '=')) return 0;
   *big = d[0] == '>';
   *size = d[2] - '0';
   switch (d[1]) {
   case 'f': *dtype = *size == 8 ? DDPM_DT_F64 : *size == 4 ? DDPM_DT_F32 : *size == 2 ? DDPM_DT_F16 : -1; break;
   case 'i': *dtype = *size == 8 ? DDPM_DT_I64 : *size == 4 ? DDPM_DT_I32 : *size == 2 ? DDPM_DT_I16 : *size == 1 ? DDPM_DT_I8 : -1; break;
   case 'u': *dtype = *size == 8 ? DDPM_DT_U64 : *size == 4 ? DDPM_DT_U32 : *size == 2 ? DDPM_DT_U16 : *size == 1 ? DDPM_DT_U8 : -1; break;
   case 'b': *dtype = *size == 1 ? DDPM_DT_BOOL : -1; break;
   default: return 0;
   }
   return *dtype >= 0;
}

static double half_to_double(uint16_t h)
{
   const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
   double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
   return s ? -v : v;
}

/* One value of an item (size bytes at p, byte order big) as double. */
static double item(const uint8_t *p, int dtype, int size, int big)
{
   uint8_t b[8];
   for (int i = 0; i < size; i++) b[i] = big ? p[size - 1 - i] : p[i];
   uint64_t u = 0;
   for (int i = 0; i < size; i++) u |= (uint64_t)b[i] << (8 * i);
   switch (dtype) {
   case DDPM_DT_F64: { double d; memcpy(&d, &u, 8); return d; }
   case DDPM_DT_F32: { uint32_t w = (uint32_t)u; float f; memcpy(&f, &w, 4); return f; }
   case DDPM_DT_F16: return half_to_double((uint16_t)u);
   case DDPM_DT_I64: return (double)(int64_t)u;
   case DDPM_DT_I32: return (double)(int32_t)(uint32_t)u;
   case DDPM_DT_I16: return (double)(int16_t)(uint16_t)u;
   case DDPM_DT_I8:  return (double)(int8_t)(uint8_t)u;
   case DDPM_DT_BOOL: return u ? 1.0 : 0.0;
   default: return (double)u;
   }
}

/* A .npy member (bytes [len]) into a. */
static int parse_npy(ddpm_npy *a, const uint8_t *p, size_t len, const char *what)
{
   if (len < 10 || memcmp(p, "\x93NUMPY", 6))
      return ddpm_seterr(DDPM_EFORMAT, "%s: not a .npy array (no \\x93NUMPY magic)", what);
   const int major = p[6];
   if (major < 1 || major > 3)
      return ddpm_seterr(DDPM_EFORMAT, "%s: .npy format version %d.%d is not supported", what, major, p[7]);
   uint64_t hl, h0 = major == 1 ? 10 : 12;
   if (major == 1) hl = rd16(p + 8);
   else {
      if (len < 12) return ddpm_seterr(DDPM_EFORMAT, "%s: truncated .npy header", what);
      hl = rd32(p + 8);
   }
   if (!span(h0, hl, len)) return ddpm_seterr(DDPM_EFORMAT, "%s: .npy header of %llu bytes runs past the member's %zu", what, (unsigned long long)hl, len);
   hdr h;
   int rc = parse_header(&h, (const char *)p + h0, (const char *)p + h0 + hl, what);
   if (rc != DDPM_OK) return rc;
   int dtype, size, big;
   if (!parse_descr(h.descr, &dtype, &size, &big))
      return ddpm_seterr(DDPM_EFORMAT, "%s: dtype '%s' is not supported (bool, integers and floats only)", what, h.descr);
   int64_t numel = 1;
   const uint64_t data_len = len - h0 - hl;
   for (int d = 0; d < h.ndim; d++) {
      if (h.shape[d] != 0 && numel > INT64_MAX / 8 / h.shape[d])
         return ddpm_seterr(DDPM_EFORMAT, "%s: shape needs more bytes than the member holds", what);
      numel *= h.shape[d];
   }
   if ((uint64_t)numel * (uint64_t)size != data_len)
      return ddpm_seterr(DDPM_EFORMAT, "%s: shape needs %llu data bytes, the member has %llu",
                         what, (unsigned long long)numel * (unsigned long long)size, (unsigned long long)data_len);
   a->dtype = dtype;
   a->ndim = h.ndim;
   memcpy(a->shape, h.shape, sizeof h.shape);
   a->numel = numel;
   a->data = malloc((size_t)(numel ? numel : 1) * sizeof *a->data);
   if (!a->data) return ddpm_seterr(DDPM_ENOMEM, "%s: out of memory for %lld values", what, (long long)numel);
   const uint8_t *src = p + h0 + hl;
   if (!h.fortran || h.ndim < 2) {
      for (int64_t i = 0; i < numel; i++) a->data[i] = item(src + i * size, dtype, size, big);
      return DDPM_OK;
   }
   /* Fortran order: element (i0, i1, ...) is at i0 + s0 (i1 + s1 (...)) */
   int64_t idx[DDPM_MAX_DIMS] = {0};
   for (int64_t i = 0; i < numel; i++) {
      int64_t off = 0;
      for (int d = h.ndim - 1; d >= 0; d--) off = off * h.shape[d] + idx[d];
      a->data[i] = item(src + off * size, dtype, size, big);
      for (int d = h.ndim - 1; d >= 0; d--) {   /* next C-order index */
         if (++idx[d] < h.shape[d]) break;
         idx[d] = 0;
      }
   }
   return DDPM_OK;
}

/* ------------------------------------------------------------ zip */

/* Raw deflate of src [n] into dst [m] exactly. */
static int inflate_exact(uint8_t *dst, uint64_t m, const uint8_t *src, uint64_t n, const char *what)
{
   z_stream zs;
   memset(&zs, 0, sizeof zs);
   if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return ddpm_seterr(DDPM_ENOMEM, "%s: zlib init failed", what);
   zs.next_in = (Bytef *)src;
   zs.avail_in = (uInt)n;
   zs.next_out = dst;
   zs.avail_out = (uInt)m;
   int rc = inflate(&zs, Z_FINISH);
   const uint64_t out = zs.total_out;
   inflateEnd(&zs);
   if (rc != Z_STREAM_END || out != m)
      return ddpm_seterr(DDPM_EFORMAT, "%s: deflated data is damaged (%s, %llu of %llu bytes)", what,
                         rc == Z_STREAM_END ? "wrong size" : rc == Z_BUF_ERROR ? "truncated or too long" : "invalid stream",
                         (unsigned long long)out, (unsigned long long)m);
   return DDPM_OK;
}

ddpm_npz *ddpm_npz_parse(const void *bytes, size_t len, const char *what)
{
   const uint8_t *b = bytes;
   if (!what) what = "npz";
   if (len > DDPM_NPZ_MAX_BYTES) {
      ddpm_seterr(DDPM_EFORMAT, "%s: %zu bytes is larger than the %zu-byte limit", what, len, DDPM_NPZ_MAX_BYTES);
      return NULL;
   }
   /* the end record: the last signature that fits, before at most 64 KiB of comment */
   int64_t eo = -1;
   for (int64_t o = (int64_t)len - 22; o >= 0 && o >= (int64_t)len - 22 - 65535; o--)
      if (rd32(b + o) == 0x06054b50 && (uint64_t)o + 22 + rd16(b + o + 20) == len) { eo = o; break; }
   if (eo < 0) {
      ddpm_seterr(DDPM_EFORMAT, "%s: not a zip archive (no end-of-directory record; truncated?)", what);
      return NULL;
   }
   const uint8_t *E = b + eo;
   const unsigned entries = rd16(E + 10);
   const uint64_t cd_size = rd32(E + 12), cd_off = rd32(E + 16);
   if (rd16(E + 4) != 0 || rd16(E + 6) != 0 || rd16(E + 8) != entries) {
      ddpm_seterr(DDPM_EFORMAT, "%s: multi-disk zip archives are not supported", what);
      return NULL;
   }
   if (entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
      ddpm_seterr(DDPM_EFORMAT, "%s: zip64 archives are not supported", what);
      return NULL;
   }
   if (!span(cd_off, cd_size, (size_t)eo)) {
      ddpm_seterr(DDPM_EFORMAT, "%s: central directory (%llu bytes at %llu) lies outside the file", what,
                  (unsigned long long)cd_size, (unsigned long long)cd_off);
      return NULL;
   }
   ddpm_npz *z = calloc(1, sizeof *z);
   if (z) z->a = calloc(entries ? entries : 1, sizeof *z->a);
   if (!z || !z->a) {
      ddpm_npz_close(z);
      ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", what);
      return NULL;
   }
   uint64_t p = cd_off, total = 0;
   char msg[300];
   for (unsigned k = 0; k < entries; k++) {
      if (!span(p, 46, cd_off + cd_size) || rd32(b + p) != 0x02014b50) {
         ddpm_seterr(DDPM_EFORMAT, "%s: central directory entry %u is damaged", what, k);
         goto fail;
      }
      const uint8_t *C = b + p;
      const int flags = rd16(C + 8), method = rd16(C + 10);
      const uint32_t crc = rd32(C + 16);
      uint64_t csize = rd32(C + 20), usize = rd32(C + 24), loff = rd32(C + 42);
      const unsigned nl = rd16(C + 28), xl = rd16(C + 30), cl = rd16(C + 32);
      if (!span(p + 46, (uint64_t)nl + xl + cl, cd_off + cd_size)) {
         ddpm_seterr(DDPM_EFORMAT, "%s: central directory entry %u runs past the directory", what, k);
         goto fail;
      }
      const char *nm = (const char *)C + 46;
      /* zip64 sizes and offset in the extra field, where the 32-bit ones are full */
      for (uint64_t x = 0; x + 4 <= xl;) {
         const unsigned id = rd16(C + 46 + nl + x), sz = rd16(C + 46 + nl + x + 2);
         if (x + 4 + sz > xl) break;
         if (id == 1) {
            const uint8_t *q = C + 46 + nl + x + 4;
            unsigned left = sz;
            if (usize == 0xFFFFFFFFu && left >= 8) { usize = rd64(q); q += 8; left -= 8; }
            if (csize == 0xFFFFFFFFu && left >= 8) { csize = rd64(q); q += 8; left -= 8; }
            if (loff == 0xFFFFFFFFu && left >= 8) { loff = rd64(q); }
         }
         x += 4 + sz;
      }
      ddpm_npy *a = &z->a[z->n];
      if (nl < 5 || nl > 250 || memcmp(nm + nl - 4, ".npy", 4) || memchr(nm, '\0', nl)) {
         ddpm_seterr(DDPM_EFORMAT, "%s: member %u (%.*s) is not a .npy array", what, k, (int)(nl > 80 ? 80 : nl), nm);
         goto fail;
      }
      a->name = malloc(nl - 3);
      if (!a->name) { ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", what); goto fail; }
      memcpy(a->name, nm, nl - 4);
      a->name[nl - 4] = '\0';
      z->n++;
      snprintf(msg, sizeof msg, "%s: member '%s.npy'", what, a->name);
      if (ddpm_npz_find(z, a->name) != a) { ddpm_seterr(DDPM_EFORMAT, "%s appears twice", msg); goto fail; }
      if (flags & 1) { ddpm_seterr(DDPM_EFORMAT, "%s is encrypted", msg); goto fail; }
      if (method != 0 && method != 8) {
         ddpm_seterr(DDPM_EFORMAT, "%s: compression method %d (only stored and deflate)", msg, method);
         goto fail;
      }
      if (usize > DDPM_NPZ_MAX_BYTES || (total += usize) > 2 * (uint64_t)DDPM_NPZ_MAX_BYTES
          || (method == 0 && csize != usize)
          || (method == 8 && usize > csize * 1032 + 1024)) {   /* deflate's ratio is at most ~1032 */
         ddpm_seterr(DDPM_EFORMAT, "%s: sizes are inconsistent or too large (%llu stored, %llu unpacked)",
                     msg, (unsigned long long)csize, (unsigned long long)usize);
         goto fail;
      }
      if (!span(loff, 30, len) || rd32(b + loff) != 0x04034b50) {
         ddpm_seterr(DDPM_EFORMAT, "%s: local header at %llu is missing or outside the file", msg,
                     (unsigned long long)loff);
         goto fail;
      }
      const uint64_t d0 = loff + 30 + rd16(b + loff + 26) + rd16(b + loff + 28);
      if (!span(d0, csize, len)) {
         ddpm_seterr(DDPM_EFORMAT, "%s: %llu bytes of data at %llu run past the end of the file "
                     "(truncated?)", msg, (unsigned long long)csize, (unsigned long long)d0);
         goto fail;
      }
      uint8_t *raw = NULL;
      const uint8_t *data = b + d0;
      if (method == 8) {
         raw = malloc(usize ? usize : 1);
         if (!raw) { ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", msg); goto fail; }
         if (inflate_exact(raw, usize, data, csize, msg) != DDPM_OK) { free(raw); goto fail; }
         data = raw;
      }
      const uint32_t got = (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, (uInt)usize);
      if (got != crc) {
         free(raw);
         ddpm_seterr(DDPM_EFORMAT, "%s: CRC-32 mismatch (damaged data)", msg);
         goto fail;
      }
      int rc = parse_npy(a, data, (size_t)usize, msg);
      free(raw);
      if (rc != DDPM_OK) goto fail;
      p += 46 + (uint64_t)nl + xl + cl;
   }
   return z;
fail:
   ddpm_npz_close(z);
   return NULL;
}

ddpm_npz *ddpm_npz_open(const char *path)
{
   int fd = open(path, O_RDONLY | O_CLOEXEC);
   if (fd < 0) {
      ddpm_seterr(DDPM_EIO, "%s: cannot open: %s", path, strerror(errno));
      return NULL;
   }
   struct stat sb;
   if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      ddpm_seterr(DDPM_EIO, "%s: not a regular file", path);
      close(fd);
      return NULL;
   }
   if ((uint64_t)sb.st_size > DDPM_NPZ_MAX_BYTES) {
      ddpm_seterr(DDPM_EFORMAT, "%s: %lld bytes is larger than the %zu-byte limit", path,
                  (long long)sb.st_size, DDPM_NPZ_MAX_BYTES);
      close(fd);
      return NULL;
   }
   size_t len = (size_t)sb.st_size, got = 0;
   uint8_t *buf = malloc(len ? len : 1);
   if (!buf) {
      ddpm_seterr(DDPM_ENOMEM, "%s: out of memory", path);
      close(fd);
      return NULL;
   }
   while (got < len) {
      ssize_t r = read(fd, buf + got, len - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
   }
   close(fd);
   if (got != len) {
      ddpm_seterr(DDPM_EIO, "%s: read %zu of %zu bytes", path, got, len);
      free(buf);
      return NULL;
   }
   ddpm_npz *z = ddpm_npz_parse(buf, len, path);
   free(buf);
   return z;
}

/* ------------------------------------------------------------ writing */

static void wr16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, v & 0xFFFF); wr16(p + 2, v >> 16); }

int ddpm_npz_write(const char *path, int n, const char *const *names, const int *ndims,
                   const int64_t *const *shapes, const double *const *data)
{
   if (n < 0 || n > 1000) return ddpm_seterr(DDPM_EINVAL, "npz write: %d arrays (0..1000)", n);
   char (*hd)[256] = calloc((size_t)n + 1, sizeof *hd);
   uint64_t *dbytes = calloc((size_t)n + 1, sizeof *dbytes);
   if (!hd || !dbytes) { free(hd); free(dbytes); return ddpm_seterr(DDPM_ENOMEM, "npz write: out of memory"); }
   uint64_t total = 22;
   int rc = DDPM_OK;
   for (int i = 0; i < n && rc == DDPM_OK; i++) {
      const size_t nl = names[i] ? strlen(names[i]) : 0;
      int ok = nl >= 1 && nl <= 200 && ndims[i] >= 0 && ndims[i] <= DDPM_MAX_DIMS;
      for (size_t c = 0; ok && c < nl; c++) {
         const char ch = names[i][c];
         ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
           || ch == '_' || ch == '.' || ch == '-';
      }
      for (int j = 0; ok && j < i; j++) ok = strcmp(names[i], names[j]) != 0;
      if (!ok) { rc = ddpm_seterr(DDPM_EINVAL, "npz write: bad or repeated name or rank for array %d", i); break; }
      char sh[200];
      size_t k = 0;
      int64_t numel = 1;
      for (int d = 0; d < ndims[i]; d++) {
         if (shapes[i][d] < 0) { ok = 0; break; }
         k += (size_t)snprintf(sh + k, sizeof sh - k, "%lld,%s", (long long)shapes[i][d],
                               ndims[i] > 1 && d < ndims[i] - 1 ? " " : "");
         numel *= shapes[i][d];
      }
      if (ndims[i] > 1) k--;   /* "(2, 3)" not "(2, 3,)"; one dimension keeps "(2,)" */
      sh[k] = '\0';
      if (!ok || numel > (int64_t)(DDPM_NPZ_MAX_BYTES / 8)) { rc = ddpm_seterr(DDPM_EINVAL, "npz write: bad shape for '%s'", names[i]); break; }
      int hl = snprintf(hd[i], sizeof hd[i], "{'descr': '<f8', 'fortran_order': False, 'shape': (%s), }", sh);
      /* pad with spaces and a newline so that the data starts at a multiple of 64 */
      int tot = 10 + hl + 1;
      int pad = (64 - tot % 64) % 64;
      memset(hd[i] + hl, ' ', (size_t)pad);
      hd[i][hl + pad] = '\n';
      hd[i][hl + pad + 1] = '\0';
      dbytes[i] = (uint64_t)numel * 8;
      const uint64_t member = 10 + strlen(hd[i]) + dbytes[i];
      total += 30 + nl + 4 + member + 46 + nl + 4;
   }
   if (rc == DDPM_OK && total > DDPM_NPZ_MAX_BYTES)
      rc = ddpm_seterr(DDPM_EINVAL, "npz write: %llu bytes is over the limit", (unsigned long long)total);
   uint8_t *buf = rc == DDPM_OK ? malloc(total) : NULL;
   if (rc == DDPM_OK && !buf) rc = ddpm_seterr(DDPM_ENOMEM, "npz write: out of memory");
   if (rc != DDPM_OK) { free(hd); free(dbytes); return rc; }
   uint32_t *crcs = calloc((size_t)n + 1, sizeof *crcs), *offs = calloc((size_t)n + 1, sizeof *offs);
   uint8_t *p = buf;
   for (int i = 0; i < n && crcs && offs; i++) {
      const size_t nl = strlen(names[i]), hl = strlen(hd[i]);
      const uint32_t msize = (uint32_t)(10 + hl + dbytes[i]);
      uint8_t *m = p + 30 + nl + 4;
      memcpy(m, "\x93NUMPY\x01\x00", 8);
      wr16(m + 8, (unsigned)hl);
      memcpy(m + 10, hd[i], hl);
      uint8_t *d = m + 10 + hl;
      for (uint64_t k = 0; k < dbytes[i] / 8; k++) {   /* little-endian float64 */
         uint64_t u;
         memcpy(&u, &data[i][k], 8);
         for (int j = 0; j < 8; j++) d[k * 8 + j] = (uint8_t)(u >> (8 * j));
      }
      crcs[i] = (uint32_t)crc32(crc32(0L, Z_NULL, 0), m, msize);
      offs[i] = (uint32_t)(p - buf);
      wr32(p, 0x04034b50); wr16(p + 4, 20); wr16(p + 6, 0); wr16(p + 8, 0);
      wr16(p + 10, 0); wr16(p + 12, 0x21);   /* 1980-01-01 00:00 */
      wr32(p + 14, crcs[i]); wr32(p + 18, msize); wr32(p + 22, msize);
      wr16(p + 26, (unsigned)(nl + 4)); wr16(p + 28, 0);
      memcpy(p + 30, names[i], nl);
      memcpy(p + 30 + nl, ".npy", 4);
      p = m + msize;
   }
   const uint32_t cd0 = (uint32_t)(p - buf);
   for (int i = 0; i < n && crcs && offs; i++) {
      const size_t nl = strlen(names[i]);
      const uint32_t msize = (uint32_t)(10 + strlen(hd[i]) + dbytes[i]);
      memset(p, 0, 46);
      wr32(p, 0x02014b50); wr16(p + 4, 20); wr16(p + 6, 20);
      wr16(p + 14, 0x21);
      wr32(p + 16, crcs[i]); wr32(p + 20, msize); wr32(p + 24, msize);
      wr16(p + 28, (unsigned)(nl + 4));
      wr32(p + 38, 0644u << 16);
      wr32(p + 42, offs[i]);
      memcpy(p + 46, names[i], nl);
      memcpy(p + 46 + nl, ".npy", 4);
      p += 46 + nl + 4;
   }
   memset(p, 0, 22);
   wr32(p, 0x06054b50);
   wr16(p + 8, (unsigned)n); wr16(p + 10, (unsigned)n);
   wr32(p + 12, (uint32_t)(p - buf) - cd0); wr32(p + 16, cd0);
   p += 22;
   if (!crcs || !offs) rc = ddpm_seterr(DDPM_ENOMEM, "npz write: out of memory");
   else rc = ddpm_file_write_atomic(path, buf, (size_t)(p - buf), "npz write");
   free(crcs); free(offs); free(buf); free(hd); free(dbytes);
   return rc;
}
