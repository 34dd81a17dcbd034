/*
 * test_safetensors.c — the safetensors reader (runtime/safetensors.c, json.c)
 * and writer (runtime/safetensors_write.c): a file round trip (scalar,
 * zero-size dim, escaped and non-ASCII names, metadata), a hand-built buffer
 * laid out the way Python's json.dumps writes it, dtype conversions of known
 * values, every malformed case of docs/design.md §1 as its own crafted buffer,
 * every truncation and random byte flips of a valid file, and write failures
 * (missing directory, file size limit as a stand-in for a full disk, target is
 * a directory) that must leave the previous file untouched.
 */
#include "ddpm.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

/* 8-byte little-endian length, the JSON, then dlen data bytes. */
static unsigned char *build(const char *json, const void *data, size_t dlen, size_t *len)
{
   uint64_t n = strlen(json);
   unsigned char *b = malloc(8 + n + dlen + 1);
   memcpy(b, &n, 8);
   memcpy(b + 8, json, n);
   if (dlen) memcpy(b + 8 + n, data, dlen);
   *len = 8 + n + dlen;
   return b;
}

static int msg_has(const char *word) { return strstr(ddpm_errmsg(), word) != NULL; }

/* The buffer must be rejected with a message naming the file and saying word. */
static void expect_bad_buf(const unsigned char *b, size_t len, const char *word, const char *what)
{
   ddpm_clearerr();
   ddpm_st_file *f = ddpm_st_parse(b, len, "bad.safetensors");
   CHECK(f == NULL && msg_has(word) && msg_has("bad.safetensors"),
         "rejects %s (\"%s\"): %s", what, word, ddpm_errmsg());
   ddpm_st_close(f);
}

static void expect_bad(const char *json, size_t dlen, const char *word, const char *what)
{
   size_t len;
   unsigned char zeros[64] = {0};
   unsigned char *b = build(json, zeros, dlen, &len);
   expect_bad_buf(b, len, word, what);
   free(b);
}

static uint64_t entry_numel(const ddpm_st_entry *e)
{
   uint64_t n = 1;
   for (int d = 0; d < e->ndim; d++) n *= (uint64_t)e->shape[d];
   return n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
   FILE *fp = fopen(path, "rb");
   if (!fp) return NULL;
   fseek(fp, 0, SEEK_END);
   long n = ftell(fp);
   fseek(fp, 0, SEEK_SET);
   unsigned char *b = malloc((size_t)n + 1);
   *len = fread(b, 1, (size_t)n, fp);
   fclose(fp);
   return b;
}

/* Entries of tmpdir other than the given file names (temp files left over). */
static int stray_files(const char *keep1, const char *keep2)
{
   int n = 0;
   DIR *d = opendir(tmpdir);
   struct dirent *de;
   while (d && (de = readdir(d))) {
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
      if ((keep1 && !strcmp(de->d_name, keep1)) || (keep2 && !strcmp(de->d_name, keep2))) continue;
      printf("# stray file %s\n", de->d_name);
      n++;
   }
   if (d) closedir(d);
   return n;
}

/* ------------------------------------------------------------------ round trip */

#define NT 6

static void test_round_trip(void)
{
   char path[128];
   snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
   float w[4 * 3 * 3 * 3], b[7], sc = 3.5f, one[1] = {-1.25f};
   check_fill(w, 108, 1);
   check_fill(b, 7, 2);
   const char *names[NT] = {"conv.weight", "scalar", "empty", "b",
                            "we\"ird\\na\nme\x01", "n\xc3\xa4m\xc3\xa9.\xe2\x98\x83"};
   int ndims[NT] = {4, 0, 3, 1, 1, 2};
   int64_t s0[] = {4, 3, 3, 3}, s2[] = {2, 0, 5}, s3[] = {7}, s4[] = {1}, s5[] = {1, 1};
   const int64_t *shapes[NT] = {s0, NULL, s2, s3, s4, s5};
   const float *data[NT] = {w, &sc, NULL, b, one, one};
   const char *mk[] = {"step", "cfg", "unicode"};
   const char *mv[] = {"100", "{\"ch\":128,\"ch_mult\":[1,2]}", "h\xc3\xa9llo \xe2\x98\x83\t\\"};

   ddpm_clearerr();
   int rc = ddpm_st_write(path, NT, names, ndims, shapes, data, 3, mk, mv);
   CHECK(rc == DDPM_OK, "write 6 tensors + 3 metadata: %s", ddpm_errmsg());

   size_t flen = 0;
   unsigned char *raw = slurp(path, &flen);
   uint64_t N = 0;
   if (raw && flen >= 8) memcpy(&N, raw, 8);
   size_t want = 8 + (size_t)N + 4 * (108 + 1 + 0 + 7 + 1 + 1);
   CHECK(raw && N % 8 == 0 && flen == want, "file layout: N=%llu (multiple of 8), %zu bytes",
         (unsigned long long)N, flen);
   CHECK(raw && !memcmp(raw + 8, "{\"__metadata__\":{", 17), "header starts with __metadata__");
   size_t last = raw && N ? 8 + (size_t)N - 1 : 0;
   while (raw && last > 8 && raw[last] == ' ') last--;
   CHECK(raw && raw[last] == '}' && 8 + N - 1 - last < 8, "header padded with < 8 spaces");
   CHECK(raw && !memcmp(raw + 8 + N, w, sizeof w), "data starts 8-aligned with the first tensor");
   CHECK(stray_files("model.safetensors", NULL) == 0, "no temp file left behind");

   for (int pass = 0; pass < 2; pass++) {
      ddpm_clearerr();
      ddpm_st_file *f = pass == 0 ? ddpm_st_open(path) : ddpm_st_parse(raw, flen, "copy");
      const char *how = pass == 0 ? "open" : "parse";
      CHECK(f != NULL, "%s the written file: %s", how, ddpm_errmsg());
      if (!f) continue;
      CHECK(ddpm_st_count(f) == NT, "%s: %d tensors", how, ddpm_st_count(f));
      uint64_t at = 0;
      int contiguous = 1;
      for (int i = 0; i < ddpm_st_count(f); i++) {
         const ddpm_st_entry *e = ddpm_st_entry_at(f, i);
         contiguous &= e->begin == at && e->dtype == DDPM_DT_F32;
         at = e->end;
      }
      CHECK(contiguous, "%s: entries in offset order, contiguous, F32", how);
      for (int t = 0; t < NT; t++) {
         int i = ddpm_st_find(f, names[t]);
         const ddpm_st_entry *e = ddpm_st_entry_at(f, i);
         int same = e && e->ndim == ndims[t] && !strcmp(e->name, names[t]);
         for (int d = 0; same && d < ndims[t]; d++) same = e->shape[d] == shapes[t][d];
         CHECK(same, "%s: tensor %d found with its name and shape", how, t);
         if (!same) continue;
         size_t n = (size_t)entry_numel(e);
         float *got = malloc((n ? n : 1) * sizeof *got);
         rc = ddpm_st_read_f32(f, i, got, n);
         CHECK(rc == DDPM_OK && (n == 0 || !memcmp(got, data[t], n * sizeof *got)),
               "%s: tensor %d (%zu floats) reads back bit-exact", how, t, n);
         free(got);
      }
      CHECK(ddpm_st_find(f, "nope") == -1 && ddpm_st_find(f, "") == -1, "%s: absent name -1", how);
      CHECK(ddpm_st_metadata_count(f) == 3, "%s: 3 metadata entries", how);
      int meta_ok = 1;
      for (int k = 0; k < 3; k++) {
         const char *v = ddpm_st_metadata(f, mk[k]);
         meta_ok &= v && !strcmp(v, mv[k]) && ddpm_st_metadata_key(f, k) != NULL;
      }
      CHECK(meta_ok && ddpm_st_metadata(f, "absent") == NULL && !ddpm_st_metadata_key(f, 3),
            "%s: metadata values (escaped JSON, UTF-8, tab) round trip", how);
      ddpm_st_close(f);
   }
   free(raw);

   /* an open reader keeps the old inode across an atomic overwrite */
   ddpm_st_file *old = ddpm_st_open(path);
   float w2[108];
   for (int i = 0; i < 108; i++) w2[i] = (float)i;
   const char *n1[] = {"conv.weight"};
   const int64_t *sh1[] = {s0};
   const float *d1[] = {w2};
   ddpm_clearerr();
   rc = ddpm_st_write(path, 1, n1, ndims, sh1, d1, 0, NULL, NULL);
   CHECK(rc == DDPM_OK, "overwrite an existing file: %s", ddpm_errmsg());
   ddpm_st_file *nw = ddpm_st_open(path);
   float got[108];
   CHECK(nw && ddpm_st_count(nw) == 1 && ddpm_st_metadata_count(nw) == 0 &&
         ddpm_st_read_f32(nw, 0, got, 108) == DDPM_OK && !memcmp(got, w2, sizeof got),
         "the new file holds the new tensor and no metadata");
   int j = ddpm_st_find(old, "conv.weight");
   CHECK(old && ddpm_st_read_f32(old, j, got, 108) == DDPM_OK && !memcmp(got, w, sizeof got),
         "a reader opened before the overwrite still reads the old data");
   ddpm_st_close(old);
   ddpm_st_close(nw);
   unlink(path);

   /* zero tensors, no metadata: "{}" padded to 8 */
   snprintf(path, sizeof path, "%s/empty.safetensors", tmpdir);
   rc = ddpm_st_write(path, 0, NULL, NULL, NULL, NULL, 0, NULL, NULL);
   raw = slurp(path, &flen);
   CHECK(rc == DDPM_OK && raw && flen == 16 && !memcmp(raw + 8, "{}      ", 8),
         "an empty file is {} padded to 8 bytes");
   ddpm_st_file *f = ddpm_st_open(path);
   CHECK(f && ddpm_st_count(f) == 0 && ddpm_st_metadata_count(f) == 0, "and reads back empty");
   ddpm_st_close(f);
   free(raw);
   unlink(path);
}

/* ------------------------------------------------------------------ Python layout */

static void test_python_layout(void)
{
   /* json.dumps(header) with Python's default ", " and ": " separators,
      padded with spaces the way safetensors.torch.save_file pads */
   char json[512];
   snprintf(json, sizeof json, "%s",
            "{\"__metadata__\": {\"format\": \"pt\"}, "
            "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [16, 24]}, "
            "\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}, "
            "\"caf\\u00e9 \\ud83d\\ude00\": {\"dtype\": \"F32\", \"shape\": [], "
            "\"data_offsets\": [24, 28]}}");
   size_t jl = strlen(json);
   while (jl % 8) json[jl++] = ' ';
   json[jl] = '\0';
   float vals[7] = {1, 2, 3, 4, -0.5f, 0.25f, 42};
   size_t len;
   unsigned char *buf = build(json, vals, sizeof vals, &len);
   ddpm_clearerr();
   ddpm_st_file *f = ddpm_st_parse(buf, len, "python.safetensors");
   free(buf);   /* parse copied what it needs */
   CHECK(f != NULL, "parses a Python-style header: %s", ddpm_errmsg());
   if (!f) return;
   const ddpm_st_entry *e0 = ddpm_st_entry_at(f, 0), *e1 = ddpm_st_entry_at(f, 1);
   const ddpm_st_entry *e2 = ddpm_st_entry_at(f, 2);
   CHECK(ddpm_st_count(f) == 3 && !strcmp(e0->name, "w") && !strcmp(e1->name, "b") &&
         e2->ndim == 0 && e0->ndim == 2 && e0->shape[1] == 2 && e1->begin == 16 && e1->end == 24,
         "entries come in data order: w [2,2] @0, b [2] @16, scalar @24");
   CHECK(!strcmp(e2->name, "caf\xc3\xa9 \xf0\x9f\x98\x80"),
         "\\u00e9 and the surrogate pair \\ud83d\\ude00 decode to UTF-8");
   const char *fmt = ddpm_st_metadata(f, "format");
   CHECK(fmt && !strcmp(fmt, "pt") && ddpm_st_metadata_count(f) == 1, "metadata format=pt");
   float got[4];
   int iw = ddpm_st_find(f, "w"), ib = ddpm_st_find(f, "b");
   CHECK(iw == 0 && ib == 1 && ddpm_st_read_f32(f, iw, got, 4) == DDPM_OK &&
         !memcmp(got, vals, 16), "w reads [1,2,3,4]");
   CHECK(ddpm_st_read_f32(f, ib, got, 2) == DDPM_OK && got[0] == -0.5f && got[1] == 0.25f,
         "b reads [-0.5,0.25]");
   CHECK(ddpm_st_read_f32(f, 2, got, 1) == DDPM_OK && got[0] == 42, "scalar reads 42");

   ddpm_clearerr();
   int rc = ddpm_st_read_f32(f, iw, got, 3);
   CHECK(rc == DDPM_ESHAPE && msg_has("\"w\"") && msg_has("python.safetensors"),
         "read_f32 with the wrong numel: %s", ddpm_errmsg());
   rc = ddpm_st_read_f32(f, 3, got, 1);
   CHECK(rc == DDPM_EINVAL && msg_has("out of range"), "read_f32 index out of range: %s",
         ddpm_errmsg());
   CHECK(ddpm_st_read_f32(NULL, 0, got, 1) == DDPM_EINVAL, "read_f32 on NULL file");
   CHECK(ddpm_st_read_f32(f, iw, NULL, 4) == DDPM_EINVAL, "read_f32 into NULL");
   CHECK(ddpm_st_count(NULL) == 0 && ddpm_st_find(NULL, "w") == -1 &&
         ddpm_st_entry_at(f, -1) == NULL && ddpm_st_entry_at(f, 3) == NULL &&
         ddpm_st_metadata(NULL, "format") == NULL, "accessors tolerate NULL and bad indices");
   ddpm_st_close(f);
   ddpm_st_close(NULL);

   /* whitespace of every JSON kind between tokens, "-0", empty object */
   const char *ws = "{ \"a\"\t:\r\n{ \"shape\" : [ -0 ] , \"data_offsets\":[0,0],"
                    "\"dtype\":\"BOOL\" } }\n  ";
   buf = build(ws, NULL, 0, &len);
   ddpm_clearerr();
   f = ddpm_st_parse(buf, len, "ws");
   CHECK(f && ddpm_st_count(f) == 1 && ddpm_st_entry_at(f, 0)->shape[0] == 0,
         "JSON whitespace, key order and -0 accepted: %s", ddpm_errmsg());
   ddpm_st_close(f);
   free(buf);
   buf = build("{}", NULL, 0, &len);
   f = ddpm_st_parse(buf, len, NULL);
   CHECK(f && ddpm_st_count(f) == 0, "{} with no data is a valid empty file");
   ddpm_st_close(f);
   free(buf);
}

/* ------------------------------------------------------------------ dtypes */

static void check_dtype(const char *dt, const void *bytes, size_t nbytes, const float *want,
                        int n, const char *what)
{
   char json[160];
   snprintf(json, sizeof json, "{\"x\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[0,%zu]}}",
            dt, n, nbytes);
   size_t len;
   unsigned char *buf = build(json, bytes, nbytes, &len);
   ddpm_st_file *f = ddpm_st_parse(buf, len, dt);
   free(buf);
   float got[16];
   int rc = f ? ddpm_st_read_f32(f, 0, got, (size_t)n) : -1;
   int ok = rc == DDPM_OK;
   for (int i = 0; ok && i < n; i++) {
      if (isnan(want[i])) ok = isnan(got[i]);
      else ok = got[i] == want[i] && signbit(got[i]) == signbit(want[i]);
      if (!ok) printf("# %s[%d]: got %.9g want %.9g\n", dt, i, got[i], want[i]);
   }
   CHECK(ok, "%s -> f32: %s", dt, what);
   ddpm_st_close(f);
}

static void test_dtypes(void)
{
   uint16_t h[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x3555,
                   0x7C00, 0xFC00, 0x7E00, 0x8000, 0x0000};
   float hw[] = {1, -2, 65504, 5.9604644775390625e-8f, 6.097555160522461e-05f,
                 6.103515625e-05f, 0.333251953125f, INFINITY, -INFINITY, NAN, -0.0f, 0};
   check_dtype("F16", h, sizeof h, hw, 12, "normals, subnormals, max, inf, NaN, -0");

   uint16_t bf[] = {0x3F80, 0xC0A0, 0x4049, 0x7F80, 0x0001, 0x8000};
   float bw[] = {1, -5, 3.140625f, INFINITY, 9.18354961579912e-41f, -0.0f};
   check_dtype("BF16", bf, sizeof bf, bw, 6, "1, -5, 3.140625, inf, denormal, -0");

   double d[] = {0.1, -1e10, 3.5, 1e300, -0.0};
   float dw[] = {0.1f, -1e10f, 3.5f, INFINITY, -0.0f};
   check_dtype("F64", d, sizeof d, dw, 5, "rounding, overflow to inf, -0");

   int64_t i64[] = {-3, (int64_t)1 << 40};
   float i64w[] = {-3, 1099511627776.0f};
   check_dtype("I64", i64, sizeof i64, i64w, 2, "-3, 2^40");
   uint64_t u64[] = {(uint64_t)1 << 63, 7};
   float u64w[] = {9223372036854775808.0f, 7};
   check_dtype("U64", u64, sizeof u64, u64w, 2, "2^63, 7");
   int32_t i32[] = {-7, 2147483647};
   float i32w[] = {-7, 2147483648.0f};
   check_dtype("I32", i32, sizeof i32, i32w, 2, "-7, INT32_MAX");
   uint32_t u32[] = {4000000000u, 1};
   float u32w[] = {4e9f, 1};
   check_dtype("U32", u32, sizeof u32, u32w, 2, "4e9, 1");
   int16_t i16[] = {-32768, 12};
   float i16w[] = {-32768, 12};
   check_dtype("I16", i16, sizeof i16, i16w, 2, "-32768, 12");
   uint16_t u16[] = {65535, 0};
   float u16w[] = {65535, 0};
   check_dtype("U16", u16, sizeof u16, u16w, 2, "65535, 0");
   int8_t i8[] = {-128, 127, 0};
   float i8w[] = {-128, 127, 0};
   check_dtype("I8", i8, sizeof i8, i8w, 3, "-128, 127, 0");
   uint8_t u8[] = {255, 0, 1};
   float u8w[] = {255, 0, 1};
   check_dtype("U8", u8, sizeof u8, u8w, 3, "255, 0, 1");
   uint8_t bo[] = {0, 1, 2};
   float bow[] = {0, 1, 1};
   check_dtype("BOOL", bo, sizeof bo, bow, 3, "0, 1, nonzero");

   /* 64 random doubles: exactly what a (float) cast gives */
   double rd[64];
   float rw[64], rg[64];
   for (int i = 0; i < 64; i++) {
      rd[i] = ldexp((double)(int)(i * 2654435761u % 2000003u) - 1e6, i % 40 - 20);
      rw[i] = (float)rd[i];
   }
   char json64[128];
   snprintf(json64, sizeof json64, "{\"r\":{\"dtype\":\"F64\",\"shape\":[8,8],"
            "\"data_offsets\":[0,%zu]}}", sizeof rd);
   size_t len;
   unsigned char *buf = build(json64, rd, sizeof rd, &len);
   ddpm_st_file *f = ddpm_st_parse(buf, len, "f64");
   free(buf);
   memset(rg, 0, sizeof rg);
   CHECK(f && ddpm_st_read_f32(f, 0, rg, 64) == DDPM_OK, "read 64 random F64 values");
   CHECK_CLOSE(rg, rw, 64, 0.0, "F64 [8,8] -> f32 equals the (float) cast");
   ddpm_st_close(f);

   /* an odd-aligned F32 tensor is read with memcpy, not a cast */
   const char *json = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
   unsigned char data[9] = {7};
   float v[2] = {1.5f, -2.5f}, got[2];
   memcpy(data + 1, v, 8);
   buf = build(json, data, 9, &len);
   f = ddpm_st_parse(buf, len, "odd");
   free(buf);
   CHECK(f && ddpm_st_read_f32(f, ddpm_st_find(f, "b"), got, 2) == DDPM_OK &&
         got[0] == 1.5f && got[1] == -2.5f, "unaligned F32 data reads correctly");
   ddpm_st_close(f);
}

/* ------------------------------------------------------------------ bad files */

#define E(name, rest) "\"" name "\":{" rest "}"
#define F32(shape, b, e) "\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]"

static void test_bad(void)
{
   unsigned char small[16] = {0};
   size_t len;
   unsigned char *b;

   /* item 1: sizes, before any allocation */
   expect_bad_buf(small, 0, "too short", "an empty file");
   expect_bad_buf(small, 7, "too short", "a 7-byte file");
   uint64_t n = 100;
   memcpy(small, &n, 8);
   expect_bad_buf(small, 16, "exceeds the file size", "header length larger than the file");
   n = UINT64_MAX;
   memcpy(small, &n, 8);
   expect_bad_buf(small, 16, "100 MiB", "header length 0xFFFFFFFFFFFFFFFF");
   n = UINT64_MAX - 4;   /* + 8 would wrap to 3 */
   memcpy(small, &n, 8);
   expect_bad_buf(small, 16, "header length", "header length 2^64-5 (wraps when 8 is added)");
   n = 100 * 1024 * 1024 + 1;
   memcpy(small, &n, 8);
   expect_bad_buf(small, 16, "100 MiB", "header length 100 MiB + 1");
   n = 0;
   memcpy(small, &n, 8);
   expect_bad_buf(small, 8, "JSON object", "a zero-length header");

   /* item 2: UTF-8 JSON object */
   expect_bad("hello world", 0, "JSON", "a header that is not JSON");
   expect_bad("[1,2]", 0, "JSON object", "a header that is not an object");
   expect_bad(" {}", 0, "JSON object", "leading whitespace before '{'");
   expect_bad("{\"a\xff\":1}", 0, "UTF-8", "invalid UTF-8");
   expect_bad("{\"\xc0\xaf\":1}", 0, "UTF-8", "an overlong UTF-8 sequence");
   expect_bad("{\"\xed\xa0\x80\":1}", 0, "UTF-8", "a UTF-8-encoded surrogate");
   expect_bad("{}x", 0, "trailing", "trailing garbage after the object");
   expect_bad("{} {}", 0, "trailing", "two objects");
   expect_bad("{" E("a", F32("[1]", 0, 4)) ",}", 4, "JSON", "a trailing comma");
   expect_bad("{" E("a", F32("[1]", 0, 4)), 4, "JSON", "a truncated header");
   expect_bad("{\"a", 0, "JSON", "an unterminated string");
   expect_bad("{'a':1}", 0, "JSON", "single quotes");
   expect_bad("{\"a\"\n:{/*c*/}}", 0, "JSON", "a comment");
   expect_bad("{\"a\nb\":1}", 0, "control character", "a raw newline inside a string");
   expect_bad("{\"a\\x\":1}", 0, "escape", "an invalid escape");
   expect_bad("{\"a\\u12\":1}", 0, "hex", "a short \\u escape");
   expect_bad("{\"\\udc00\":1}", 0, "surrogate", "a lone low surrogate");
   expect_bad("{\"\\ud800x\":1}", 0, "surrogate", "a lone high surrogate");
   expect_bad("{\"a\\u0000b\":1}", 0, "NUL", "\\u0000 in a name");

   /* item 3: duplicate keys at every level */
   expect_bad("{" E("a", F32("[1]", 0, 4)) "," E("a", F32("[1]", 4, 8)) "}", 8, "duplicate",
              "a duplicate tensor name");
   expect_bad("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
              4, "duplicate", "a duplicate field inside a tensor");
   expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate",
              "a duplicate __metadata__");
   expect_bad("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate",
              "a duplicate metadata key");

   /* item 4: dtype, shape, data_offsets */
   expect_bad("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
              "unknown dtype \"F8_E4M3\"", "an unknown dtype");
   expect_bad("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
              "\"w\": unknown dtype", "a lower-case dtype (names the tensor)");
   expect_bad("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
              "dtype must be a string", "a numeric dtype");
   expect_bad("{" E("w", F32("[-1]", 0, 4)) "}", 4, "negative", "a negative shape entry");
   expect_bad("{" E("w", F32("[1.5]", 0, 4)) "}", 4, "not an integer", "a fractional shape");
   expect_bad("{" E("w", F32("[1e0]", 0, 4)) "}", 4, "not an integer", "an exponent shape");
   expect_bad("{" E("w", F32("[\"1\"]", 0, 4)) "}", 4, "array of integers", "a string shape");
   expect_bad("{" E("w", F32("[[1]]", 0, 4)) "}", 4, "array of integers", "a nested shape");
   expect_bad("{" E("w", F32("1", 0, 4)) "}", 4, "array of integers", "a shape that is a number");
   expect_bad("{" E("w", F32("[01]", 0, 4)) "}", 4, "leading zero", "a leading zero");
   expect_bad("{" E("w", F32("[1,1,1,1,1,1,1,1,1]", 0, 4)) "}", 4, "too many dimensions",
              "nine dimensions");
   expect_bad("{" E("w", F32("[9223372036854775808]", 0, 4)) "}", 4, "too large",
              "a shape entry past INT64_MAX");
   expect_bad("{" E("w", F32("[4294967296,4294967296,4]", 0, 0)) "}", 0, "overflow",
              "a shape whose byte count overflows 64 bits");
   expect_bad("{" E("w", F32("[1]", 8, 4)) "}", 8, "begin > end", "offsets with begin > end");
   expect_bad("{" E("w", F32("[4]", 0, 16)) "}", 8, "past the end", "an end past the buffer");
   expect_bad("{" E("w", F32("[1]", 0, 18446744073709551616)) "}", 4, "too large",
              "an offset past UINT64_MAX");
   expect_bad("{" E("w", F32("[1]", 0, -4)) "}", 4, "negative", "a negative offset");
   expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
              "exactly two", "three data_offsets");
   expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4,
              "exactly two", "one data_offset");
   expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "missing \"data_offsets\"",
              "a missing data_offsets");
   expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
              "unknown key \"x\"", "an unknown field");
   expect_bad("{\"w\":[1,2]}", 0, "\"w\": value must be an object", "a tensor that is an array");

   /* item 5: numel * itemsize == end - begin */
   expect_bad("{" E("w", F32("[3]", 0, 8)) "}", 8, "numel mismatch", "a numel mismatch");
   expect_bad("{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
              "needs 8 bytes", "an F16 tensor sized as F32");

   /* item 6: contiguous tiling of the buffer */
   expect_bad("{" E("a", F32("[1]", 0, 4)) "," E("b", F32("[1]", 8, 12)) "}", 12, "gap",
              "a gap between tensors");
   expect_bad("{" E("a", F32("[1]", 4, 8)) "}", 8, "gap", "a gap at the start");
   expect_bad("{" E("a", F32("[1]", 0, 4)) "}", 8, "gap", "bytes after the last tensor");
   expect_bad("{}", 4, "gap", "data with no tensors (polyglot bytes)");
   expect_bad("{" E("a", F32("[2]", 0, 8)) "," E("b", F32("[2]", 4, 12)) "}", 12, "overlap",
              "overlapping tensors");
   expect_bad("{" E("a", F32("[2]", 0, 8)) "," E("b", F32("[2]", 0, 8)) "}", 8, "overlap",
              "two tensors on the same bytes");

   /* item 7: metadata values are strings */
   expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "not a string", "a numeric metadata value");
   expect_bad("{\"__metadata__\":{\"k\":null}}", 0, "not a string", "a null metadata value");
   expect_bad("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "not a string",
              "an object metadata value");
   expect_bad("{\"__metadata__\":[\"k\"]}", 0, "__metadata__ must be an object",
              "a metadata array");

   /* a file cut right after its header */
   b = build("{" E("w", F32("[4]", 0, 16)) "}", NULL, 0, &len);
   expect_bad_buf(b, len, "truncated", "a file truncated after the header");
   free(b);

   /* deep nesting must not recurse */
   char deep[4200] = "{\"w\":{\"shape\":";
   size_t k = strlen(deep);
   while (k < 4100) deep[k++] = '[';
   strcpy(deep + k, "]}}");
   expect_bad(deep, 0, "array of integers", "4000 nested arrays");
}

/* Every strict prefix of a valid file fails cleanly; random byte flips never
   crash and whatever parses reads back. Run under ASan for the real check. */
static void test_truncations_and_flips(void)
{
   const char *json = "{\"__metadata__\":{\"k\":\"v\"},"
                      "\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]},"
                      "\"c\":{\"dtype\":\"I64\",\"shape\":[0,4],\"data_offsets\":[16,16]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[16,24]}}";
   unsigned char data[24];
   for (int i = 0; i < 24; i++) data[i] = (unsigned char)(i * 37 + 11);
   size_t len;
   unsigned char *good = build(json, data, sizeof data, &len);
   ddpm_clearerr();
   ddpm_st_file *f = ddpm_st_parse(good, len, "good");
   CHECK(f && ddpm_st_count(f) == 4, "the fuzz seed file is valid: %s", ddpm_errmsg());
   ddpm_st_close(f);

   int rejected = 0;
   for (size_t cut = 0; cut < len; cut++) {
      f = ddpm_st_parse(good, cut, "cut");
      rejected += f == NULL;
      ddpm_st_close(f);
   }
   CHECK(rejected == (int)len, "all %zu truncations rejected (%d)", len, rejected);

   unsigned s = 12345;
   int parsed = 0, reads_ok = 1;
   unsigned char *m = malloc(len);
   float out[64];
   for (int it = 0; it < 20000; it++) {
      memcpy(m, good, len);
      int flips = 1 + it % 4;
      for (int j = 0; j < flips; j++) {
         s = s * 1664525u + 1013904223u;
         size_t at = (s >> 8) % len;
         s = s * 1664525u + 1013904223u;
         m[at] = (unsigned char)(s >> 24);
      }
      f = ddpm_st_parse(m, len, "fuzz");
      if (f) {
         parsed++;
         for (int i = 0; i < ddpm_st_count(f); i++) {
            uint64_t ne = entry_numel(ddpm_st_entry_at(f, i));
            if (ne <= 64) reads_ok &= ddpm_st_read_f32(f, i, out, (size_t)ne) == DDPM_OK;
         }
      }
      ddpm_st_close(f);
   }
   free(m);
   free(good);
   printf("# %d of 20000 mutated files parsed\n", parsed);
   CHECK(reads_ok, "20000 mutated files: no crash, every accepted tensor reads");
}

/* ------------------------------------------------------------------ files and failures */

static void test_open_errors(void)
{
   char path[128];
   ddpm_clearerr();
   ddpm_st_file *f = ddpm_st_open("/nonexistent/dir/x.safetensors");
   CHECK(!f && msg_has("/nonexistent/dir/x.safetensors") && msg_has("No such file"),
         "open a missing file: %s", ddpm_errmsg());
   f = ddpm_st_open(tmpdir);
   CHECK(!f && msg_has("not a regular file"), "open a directory: %s", ddpm_errmsg());
   f = ddpm_st_open(NULL);
   CHECK(!f && msg_has("NULL"), "open NULL: %s", ddpm_errmsg());

   snprintf(path, sizeof path, "%s/zero.safetensors", tmpdir);
   FILE *fp = fopen(path, "wb");
   if (fp) fclose(fp);
   f = ddpm_st_open(path);
   CHECK(!f && msg_has("too short") && msg_has("zero.safetensors"), "open a 0-byte file: %s",
         ddpm_errmsg());
   unlink(path);

   /* a file truncated on disk after its header, and one that shrinks while open */
   snprintf(path, sizeof path, "%s/cut.safetensors", tmpdir);
   float v[256];
   check_fill(v, 256, 9);
   const char *names[] = {"v"};
   int nd[] = {1};
   int64_t sh[] = {256};
   const int64_t *shapes[] = {sh};
   const float *data[] = {v};
   int rc = ddpm_st_write(path, 1, names, nd, shapes, data, 0, NULL, NULL);
   struct stat sb;
   stat(path, &sb);
   f = ddpm_st_open(path);
   CHECK(rc == DDPM_OK && f, "write + open a 1 KiB tensor");
   rc = truncate(path, sb.st_size - 100);
   float got[256];
   rc = f ? ddpm_st_read_f32(f, 0, got, 256) : -1;
   CHECK(rc == DDPM_EFORMAT && msg_has("truncated"), "read after the file shrank: %s",
         ddpm_errmsg());
   ddpm_st_close(f);
   f = ddpm_st_open(path);
   CHECK(!f && msg_has("past the end") && msg_has("\"v\""), "open a truncated file: %s",
         ddpm_errmsg());
   unlink(path);
}

static void test_write_errors(void)
{
   char path[128], dirpath[128];
   float v[4] = {1, 2, 3, 4};
   const char *names[] = {"a", "b"};
   int nd[] = {1, 1};
   int64_t sh[] = {4};
   const int64_t *shapes[] = {sh, sh};
   const float *data[] = {v, v};
   int rc;

   rc = ddpm_st_write("/proc/nope/x.safetensors", 2, names, nd, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EIO && msg_has("/proc/nope/x.safetensors"),
         "write into a missing directory: %s", ddpm_errmsg());

   snprintf(path, sizeof path, "%s/keep.safetensors", tmpdir);
   rc = ddpm_st_write(path, 2, names, nd, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_OK, "write the file that must survive");
   size_t len0, len1;
   unsigned char *before = slurp(path, &len0), *after;

   const char *dup[] = {"a", "a"};
   rc = ddpm_st_write(path, 2, dup, nd, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && msg_has("duplicate tensor name \"a\""), "duplicate names: %s",
         ddpm_errmsg());
   const float *nodata[] = {v, NULL};
   rc = ddpm_st_write(path, 2, names, nd, shapes, nodata, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && msg_has("\"b\": data is NULL"), "NULL data: %s", ddpm_errmsg());
   int64_t neg[] = {-4};
   const int64_t *negs[] = {sh, neg};
   rc = ddpm_st_write(path, 2, names, nd, negs, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && msg_has("negative"), "negative size: %s", ddpm_errmsg());
   int nd9[] = {1, 9};
   rc = ddpm_st_write(path, 2, names, nd9, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && msg_has("ndim 9"), "ndim 9: %s", ddpm_errmsg());
   const char *meta[] = {"__metadata__", "b"};
   rc = ddpm_st_write(path, 2, meta, nd, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && msg_has("__metadata__"), "a tensor named __metadata__: %s",
         ddpm_errmsg());
   const char *badutf[] = {"a", "b\xff"};
   rc = ddpm_st_write(path, 2, badutf, nd, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && msg_has("UTF-8"), "a non-UTF-8 name: %s", ddpm_errmsg());
   const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
   rc = ddpm_st_write(path, 2, names, nd, shapes, data, 2, mk, mv);
   CHECK(rc == DDPM_EINVAL && msg_has("duplicate metadata key"), "duplicate metadata keys: %s",
         ddpm_errmsg());
   const char *mnull[] = {"k", NULL};
   rc = ddpm_st_write(path, 2, names, nd, shapes, data, 2, mnull, mv);
   CHECK(rc == DDPM_EINVAL && msg_has("NULL"), "a NULL metadata key: %s", ddpm_errmsg());
   rc = ddpm_st_write(NULL, 2, names, nd, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL, "a NULL path");
   snprintf(dirpath, sizeof dirpath, "%s/", tmpdir);
   rc = ddpm_st_write(dirpath, 2, names, nd, shapes, data, 0, NULL, NULL);
   CHECK(rc == DDPM_EINVAL && msg_has("directory"), "a path ending in '/': %s", ddpm_errmsg());

   /* the target is a directory: rename fails after the temp file was written */
   snprintf(dirpath, sizeof dirpath, "%s/adir", tmpdir);
   mkdir(dirpath, 0755);
   rc = ddpm_st_write(dirpath, 2, names, nd, shapes, data, 0, NULL, NULL);
   struct stat sb;
   CHECK(rc == DDPM_EIO && msg_has("rename") && stat(dirpath, &sb) == 0 && S_ISDIR(sb.st_mode),
         "a directory as target fails in rename, directory intact: %s", ddpm_errmsg());
   rmdir(dirpath);

   /* a full disk, approximated by the file size limit: write() fails with
      EFBIG part-way through the data (SIGXFSZ ignored so it returns) */
   enum { BIG = 16384 };
   float *big = calloc(BIG, sizeof *big);
   int64_t bsh[] = {BIG};
   const int64_t *bshapes[] = {bsh};
   const float *bdata[] = {big};
   struct rlimit old, lim;
   getrlimit(RLIMIT_FSIZE, &old);
   lim = old;
   lim.rlim_cur = 4096;
   void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
   if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
      rc = ddpm_st_write(path, 1, names, nd, bshapes, bdata, 0, NULL, NULL);
      setrlimit(RLIMIT_FSIZE, &old);
      CHECK(rc == DDPM_EIO && msg_has("File too large") && msg_has("keep.safetensors"),
            "write past RLIMIT_FSIZE fails: %s", ddpm_errmsg());
   }
   else CHECK(0, "setrlimit(RLIMIT_FSIZE) failed: %s", strerror(errno));
   signal(SIGXFSZ, prev);
   free(big);

   /* a read-only directory (root ignores permissions, so only as a user) */
   if (geteuid() != 0) {
      snprintf(dirpath, sizeof dirpath, "%s/ro", tmpdir);
      mkdir(dirpath, 0555);
      char ro[160];
      snprintf(ro, sizeof ro, "%s/x.safetensors", dirpath);
      rc = ddpm_st_write(ro, 2, names, nd, shapes, data, 0, NULL, NULL);
      CHECK(rc == DDPM_EIO && msg_has("Permission denied"), "a read-only directory: %s",
            ddpm_errmsg());
      rmdir(dirpath);
   }
   else printf("# running as root: read-only directory case skipped\n");

   after = slurp(path, &len1);
   CHECK(before && after && len0 == len1 && !memcmp(before, after, len0),
         "after every failed write the previous file is byte-for-byte intact");
   CHECK(stray_files("keep.safetensors", NULL) == 0, "and no temp file is left behind");
   free(before);
   free(after);
   unlink(path);
}

int main(void)
{
   snprintf(tmpdir, sizeof tmpdir, "/tmp/test_safetensors.XXXXXX");
   if (!mkdtemp(tmpdir)) {
      printf("Bail out! mkdtemp: %s\n", strerror(errno));
      return 1;
   }
   test_round_trip();
   test_python_layout();
   test_dtypes();
   test_bad();
   test_truncations_and_flips();
   test_open_errors();
   test_write_errors();
   stray_files(NULL, NULL);
   rmdir(tmpdir);
   return check_done();
}
