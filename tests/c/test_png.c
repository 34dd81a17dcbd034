/*
 * test_png.c — sample grids (torchvision make_grid layout, value mapping,
 * NaN/Inf, gray vs RGB files), atomic writes that fail cleanly (missing
 * directory, a file where a directory should be, a full disk simulated with
 * RLIMIT_FSIZE), and the reader on bad and unusual inputs: non-PNG bytes,
 * truncation, a bad CRC, a huge declared size, RGBA, 16-bit, palette and
 * 1-bit images.
 */
#include "check.h"
#include "ddpm.h"
#include "ddpm/png.h"

#include <png.h>

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static const char *tpath(const char *name)
{
   static char buf[4][512];
   static int k;
   k = (k + 1) & 3;
   snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
   return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n)
{
   FILE *f = fopen(path, "wb");
   if (!f || fwrite(p, 1, n, f) != n) { perror(path); exit(2); }
   fclose(f);
}

static uint8_t *read_all(const char *path, size_t *n)
{
   FILE *f = fopen(path, "rb");
   if (!f) return NULL;
   fseek(f, 0, SEEK_END);
   *n = (size_t)ftell(f);
   fseek(f, 0, SEEK_SET);
   uint8_t *p = malloc(*n + 1);
   if (fread(p, 1, *n, f) != *n) { perror(path); exit(2); }
   fclose(f);
   return p;
}

static int file_exists(const char *path)
{
   struct stat st;
   return stat(path, &st) == 0;
}

/* Number of names in tmpdir containing ".tmp." (left-over temp files). */
static int count_temp_files(void)
{
   DIR *dp = opendir(tmpdir);
   struct dirent *e;
   int n = 0;
   while (dp && (e = readdir(dp)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
   if (dp) closedir(dp);
   return n;
}

/* The byte the grid should hold for x, by hand: round((clip(x)+1)*127.5). */
static uint8_t want_byte(float x)
{
   if (x != x) x = 0;
   if (x < -1) x = -1;
   if (x > 1) x = 1;
   return (uint8_t)floor((x + 1.0) * 127.5 + 0.5);
}

static void test_grid_layout(void)
{
   enum { N = 5, C = 3, H = 4, W = 3, NROW = 2, P = 2 };
   float x[N * C * H * W];
   check_fill(x, N * C * H * W, 3);
   const char *path = tpath("grid.png");
   CHECK(ddpm_png_write_grid(path, x, N, C, H, W, NROW, P, 0.0f) == DDPM_OK, "write a 5-image RGB grid");
   uint8_t *g = NULL;
   int gh = 0, gw = 0;
   CHECK(ddpm_png_read(path, 3, &g, &gh, &gw) == DDPM_OK, "read it back (%s)", ddpm_errmsg());
   /* xmaps = 2, ymaps = 3: width 2*(3+2)+2 = 12, height 3*(4+2)+2 = 20 */
   CHECK(gw == 12 && gh == 20, "grid is 12x20 (got %dx%d)", gw, gh);
   if (!g || gw != 12 || gh != 20) { free(g); return; }

   /* Expected grid, built independently: pad 0 everywhere, then each image. */
   uint8_t want[3 * 20 * 12];
   memset(want, 0, sizeof want);
   for (int k = 0; k < N; k++) {
      int r = k / NROW, col = k % NROW;
      for (int c = 0; c < C; c++)
         for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
               want[(c * 20 + r * (H + P) + P + y) * 12 + col * (W + P) + P + xx] =
                  want_byte(x[((k * C + c) * H + y) * W + xx]);
   }
   CHECK(memcmp(g, want, sizeof want) == 0, "every grid byte matches the make_grid layout");
   /* Spot checks by hand: image 3 (row 1, column 1) starts at (8, 7). */
   CHECK(g[8 * 12 + 7] == want_byte(x[(3 * C + 0) * H * W]), "image 3, R(0,0) at grid (8,7)");
   CHECK(g[2 * 240 + 9 * 12 + 8] == want_byte(x[((3 * C + 2) * H + 1) * W + 1]), "image 3, B(1,1) at grid (9,8)");
   CHECK(g[0] == 0 && g[13] == 0 && g[2 * 12 + 5] == 0, "padding around and between is 0");
   /* slot 5 (row 2, column 1) is empty: pad value */
   int empty = 1;
   for (int y = 14; y < 18; y++)
      for (int xx = 7; xx < 10; xx++) empty &= g[y * 12 + xx] == 0;
   CHECK(empty, "the unused slot of the last row is padding");
   free(g);

   /* The PNG itself is RGB (IHDR colour type 2 at byte 25). */
   size_t n;
   uint8_t *f = read_all(path, &n);
   CHECK(f && n > 26 && f[25] == 2 && f[24] == 8, "C = 3 is written as 8-bit RGB");
   free(f);
}

static void test_grid_values(void)
{
   /* One gray 2x5 image with the special values, padding 1 of value 1. */
   const float inf = INFINITY;
   float x[10] = {-1.0f, 1.0f, 0.0f, 0.5f, -0.5f, NAN, inf, -inf, 2.0f, -3.0f};
   const uint8_t want[10] = {0, 255, 128, 191, 64, 128, 255, 0, 255, 0};
   const char *path = tpath("values.png");
   CHECK(ddpm_png_write_grid(path, x, 1, 1, 2, 5, 8, 1, 1.0f) == DDPM_OK, "write gray values");
   uint8_t *g = NULL;
   int gh, gw;
   CHECK(ddpm_png_read(path, 1, &g, &gh, &gw) == DDPM_OK && gh == 4 && gw == 7, "gray grid 7x4");
   if (g && gh == 4 && gw == 7) {
      int ok = 1;
      for (int i = 0; i < 10; i++) {
         uint8_t got = g[(1 + i / 5) * 7 + 1 + i % 5];
         if (got != want[i]) {
            ok = 0;
            printf("# x = %g: got %d, want %d\n", x[i], got, want[i]);
         }
      }
      CHECK(ok, "-1->0, 1->255, 0->128, 0.5->191, -0.5->64, NaN->128, Inf->255, -Inf->0, clip");
      CHECK(g[0] == 255 && g[6] == 255 && g[3 * 7 + 3] == 255, "pad_value 1 is white");
   }
   free(g);
   size_t n;
   uint8_t *f = read_all(path, &n);
   CHECK(f && n > 26 && f[25] == 0, "C = 1 is written as a gray PNG (colour type 0)");
   free(f);

   /* torchvision's defaults: 64 images of 3x32x32, nrow 8, padding 2 -> 274x274 */
   float *big = malloc(sizeof(float) * 64 * 3 * 32 * 32);
   check_fill(big, 64 * 3 * 32 * 32, 9);
   CHECK(ddpm_png_write_grid(tpath("big.png"), big, 64, 3, 32, 32, 8, 2, 0) == DDPM_OK, "64-image grid");
   int h, w;
   CHECK(ddpm_png_size(tpath("big.png"), &h, &w) == DDPM_OK && h == 274 && w == 274, "274x274 like make_grid");
   CHECK(ddpm_png_write_grid(tpath("three.png"), big, 3, 3, 32, 32, 8, 2, 0) == DDPM_OK &&
         ddpm_png_size(tpath("three.png"), &h, &w) == DDPM_OK && w == 104 && h == 36,
         "3 images with nrow 8: one row, 104x36");
   CHECK(ddpm_png_write_grid(tpath("nopad.png"), big, 4, 1, 32, 32, 2, 0, 0) == DDPM_OK &&
         ddpm_png_size(tpath("nopad.png"), &h, &w) == DDPM_OK && w == 64 && h == 64,
         "padding 0: 2x2 images, 64x64");
   free(big);
   CHECK(count_temp_files() == 0, "no temp files left after successful writes");
}

static void test_write_errors(void)
{
   float x[16] = {0};
   CHECK(ddpm_png_write_grid(tpath("e.png"), x, 0, 1, 4, 4, 8, 2, 0) == DDPM_EINVAL, "N = 0 rejected");
   CHECK(ddpm_png_write_grid(tpath("e.png"), x, 1, 2, 4, 4, 8, 2, 0) == DDPM_EINVAL, "C = 2 rejected");
   CHECK(ddpm_png_write_grid(tpath("e.png"), x, 1, 1, 4, 4, 0, 2, 0) == DDPM_EINVAL, "nrow = 0 rejected");
   CHECK(ddpm_png_write_grid(tpath("e.png"), x, 1, 1, 4, 4, 8, -1, 0) == DDPM_EINVAL, "padding -1 rejected");
   CHECK(ddpm_png_write_grid(tpath("e.png"), NULL, 1, 1, 4, 4, 8, 2, 0) == DDPM_EINVAL, "NULL data rejected");
   CHECK(ddpm_png_write_grid(tpath("e.png"), x, 1 << 20, 1, 64, 64, 1, 2, 0) == DDPM_EINVAL &&
         strstr(ddpm_errmsg(), "limit"), "a grid over the side limit is rejected before allocating");
   CHECK(ddpm_png_write_grid(tpath(""), x, 1, 1, 4, 4, 8, 2, 0) == DDPM_EINVAL, "a directory path rejected");
   CHECK(!file_exists(tpath("e.png")), "nothing written by rejected calls");

   int rc = ddpm_png_write_grid(tpath("no-such-dir/g.png"), x, 1, 1, 4, 4, 8, 2, 0);
   printf("# %s\n", ddpm_errmsg());
   CHECK(rc == DDPM_EIO && strstr(ddpm_errmsg(), "no-such-dir/g.png"), "missing directory: DDPM_EIO naming the path");
   write_bytes(tpath("afile"), "x", 1);
   rc = ddpm_png_write_grid(tpath("afile/g.png"), x, 1, 1, 4, 4, 8, 2, 0);
   printf("# %s\n", ddpm_errmsg());
   CHECK(rc == DDPM_EIO && strstr(ddpm_errmsg(), "afile/g.png"), "a file as directory: DDPM_EIO naming the path");
   if (geteuid() != 0) {
      mkdir(tpath("ro"), 0555);
      rc = ddpm_png_write_grid(tpath("ro/g.png"), x, 1, 1, 4, 4, 8, 2, 0);
      CHECK(rc == DDPM_EIO && strstr(ddpm_errmsg(), "ro/g.png"), "read-only directory: DDPM_EIO");
   } else {
      printf("# running as root: the read-only-directory case is not testable, skipped\n");
   }

   /* A full disk: the file-size limit makes write() fail with EFBIG part way. */
   const char *path = tpath("keep.png");
   CHECK(ddpm_png_write_grid(path, x, 1, 1, 4, 4, 8, 2, 0) == DDPM_OK, "write a small grid first");
   size_t n0;
   uint8_t *before = read_all(path, &n0);
   float *big = malloc(sizeof(float) * 16 * 3 * 64 * 64);
   check_fill(big, 16 * 3 * 64 * 64, 5);   /* incompressible: ~200 KB of PNG */
   struct rlimit old, lim;
   getrlimit(RLIMIT_FSIZE, &old);
   lim = old;
   lim.rlim_cur = 4096;
   void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
   int set = setrlimit(RLIMIT_FSIZE, &lim) == 0;
   rc = ddpm_png_write_grid(path, big, 16, 3, 64, 64, 4, 2, 0);
   setrlimit(RLIMIT_FSIZE, &old);
   signal(SIGXFSZ, prev);
   printf("# %s\n", ddpm_errmsg());
   CHECK(set && rc == DDPM_EIO && strstr(ddpm_errmsg(), "keep.png"), "write past the size limit: DDPM_EIO naming the file");
   size_t n1;
   uint8_t *after = read_all(path, &n1);
   CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0, "the previous PNG is intact");
   CHECK(count_temp_files() == 0, "the partial temp file was removed");
   free(before);
   free(after);
   free(big);
}

/* ------------------------------------------------------------------ reading */

/* A PNG chunk: length, type, data, CRC over type + data. */
static size_t put_chunk(uint8_t *p, const char *type, const uint8_t *data, uint32_t len)
{
   p[0] = (uint8_t)(len >> 24); p[1] = (uint8_t)(len >> 16); p[2] = (uint8_t)(len >> 8); p[3] = (uint8_t)len;
   memcpy(p + 4, type, 4);
   if (len) memcpy(p + 8, data, len);
   uint32_t crc = (uint32_t)crc32(0, p + 4, len + 4);
   p[8 + len] = (uint8_t)(crc >> 24); p[9 + len] = (uint8_t)(crc >> 16);
   p[10 + len] = (uint8_t)(crc >> 8); p[11 + len] = (uint8_t)crc;
   return 12 + len;
}

/* A hand-made PNG: W x H, bit depth, colour type, raw filtered rows. */
static size_t make_png(uint8_t *out, uint32_t W, uint32_t H, int depth, int ctype,
                       const uint8_t *raw, size_t rawlen)
{
   static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
   memcpy(out, sig, 8);
   size_t n = 8;
   uint8_t ihdr[13] = {(uint8_t)(W >> 24), (uint8_t)(W >> 16), (uint8_t)(W >> 8), (uint8_t)W,
                       (uint8_t)(H >> 24), (uint8_t)(H >> 16), (uint8_t)(H >> 8), (uint8_t)H,
                       (uint8_t)depth, (uint8_t)ctype, 0, 0, 0};
   n += put_chunk(out + n, "IHDR", ihdr, 13);
   uLongf zl = compressBound(rawlen);
   uint8_t *z = malloc(zl);
   compress(z, &zl, raw, rawlen);
   n += put_chunk(out + n, "IDAT", z, (uint32_t)zl);
   free(z);
   n += put_chunk(out + n, "IEND", NULL, 0);
   return n;
}

static void expect_read_fail(const char *name, int want_rc, const char *also, const char *what)
{
   uint8_t *p = (uint8_t *)1;
   int h, w;
   int rc = ddpm_png_read(tpath(name), 3, &p, &h, &w);
   printf("# %s -> %s\n", what, ddpm_errmsg());
   CHECK(rc == want_rc && p == NULL && strstr(ddpm_errmsg(), name) && (!also || strstr(ddpm_errmsg(), also)),
         "%s: error naming %s", what, name);
}

static void test_read_errors(void)
{
   uint8_t px[3 * 6 * 5];
   for (int i = 0; i < 90; i++) px[i] = (uint8_t)(i * 37);
   CHECK(ddpm_png_write(tpath("ok.png"), px, 3, 6, 5) == DDPM_OK, "write ok.png");
   size_t n;
   uint8_t *good = read_all(tpath("ok.png"), &n);

   write_bytes(tpath("text.png"), "hello, this is not a PNG file", 29);
   expect_read_fail("text.png", DDPM_EFORMAT, "Not a PNG", "non-PNG bytes");
   write_bytes(tpath("empty.png"), "", 0);
   expect_read_fail("empty.png", DDPM_EFORMAT, NULL, "empty file");
   write_bytes(tpath("cut.png"), good, n - 16);
   expect_read_fail("cut.png", DDPM_EFORMAT, NULL, "truncated inside IDAT");
   write_bytes(tpath("cut2.png"), good, 20);
   expect_read_fail("cut2.png", DDPM_EFORMAT, NULL, "truncated inside IHDR");
   uint8_t *bad = malloc(n);
   size_t idat = 0;           /* offset of the first IDAT's type field */
   for (size_t i = 8; i + 4 <= n && !idat; i++) if (!memcmp(good + i, "IDAT", 4)) idat = i;
   CHECK(idat > 0, "ok.png has an IDAT chunk");
   uint32_t ilen = (uint32_t)good[idat - 4] << 24 | good[idat - 3] << 16 | good[idat - 2] << 8 | good[idat - 1];
   memcpy(bad, good, n);
   bad[idat + 4 + ilen] ^= 0x01;   /* IDAT's CRC itself */
   write_bytes(tpath("crc.png"), bad, n);
   expect_read_fail("crc.png", DDPM_EFORMAT, "CRC", "bad CRC of IDAT");
   memcpy(bad, good, n);
   bad[idat + 4 + ilen / 2] ^= 0xFF;   /* a byte in the middle of IDAT's data */
   write_bytes(tpath("crc3.png"), bad, n);
   expect_read_fail("crc3.png", DDPM_EFORMAT, NULL, "a damaged byte inside IDAT");
   memcpy(bad, good, n);
   bad[20] ^= 0x01;           /* IHDR height byte: CRC now wrong */
   write_bytes(tpath("crc2.png"), bad, n);
   expect_read_fail("crc2.png", DDPM_EFORMAT, NULL, "bad CRC in IHDR");
   free(bad);
   expect_read_fail("missing.png", DDPM_EIO, "cannot open", "missing file");

   /* 100000 x 100000 declared: refused from the header, before any allocation. */
   uint8_t raw[2] = {0, 0};
   uint8_t huge[256];
   size_t hl = make_png(huge, 100000, 100000, 8, 0, raw, 2);
   write_bytes(tpath("huge.png"), huge, hl);
   expect_read_fail("huge.png", DDPM_EFORMAT, "limit", "100000x100000 declared");
   /* 16384 x 16384 RGB (805 MB of pixels) declared in a 60-byte file: inside
      the side limit, but more than the file can hold; refused from the
      header rather than after allocating the pixels. */
   hl = make_png(huge, 16384, 16384, 8, 2, raw, 2);
   write_bytes(tpath("bomb.png"), huge, hl);
   expect_read_fail("bomb.png", DDPM_EFORMAT, "can hold", "16384x16384 declared in a tiny file");
   /* ... while a highly compressible image that the file does hold reads */
   enum { BW = 1024, BH = 1024 };
   uint8_t *zeros = calloc((size_t)BH * (BW + 1), 1);
   uint8_t *zpng = malloc((size_t)BH * (BW + 1) + 256);
   size_t zl = make_png(zpng, BW, BH, 8, 0, zeros, (size_t)BH * (BW + 1));
   write_bytes(tpath("zeros.png"), zpng, zl);
   uint8_t *zp = NULL;
   int zh = 0, zw = 0;
   CHECK(ddpm_png_read(tpath("zeros.png"), 1, &zp, &zh, &zw) == DDPM_OK && zh == BH && zw == BW &&
         zp[0] == 0 && zp[BH * BW - 1] == 0, "a 1024x1024 black PNG of %zu bytes reads", zl);
   free(zp);
   free(zeros);
   free(zpng);

   /* reading into a buffer of the wrong size */
   uint8_t buf[90];
   CHECK(ddpm_png_read_into(tpath("ok.png"), 3, buf, 5, 6) == DDPM_EFORMAT, "read_into with swapped H, W rejected");
   CHECK(ddpm_png_read_into(tpath("ok.png"), 2, buf, 6, 5) == DDPM_EINVAL, "channels 2 rejected");
   free(good);
}

static void test_read_formats(void)
{
   int h, w;
   uint8_t *p = NULL;

   /* RGB read back exactly, as gray: white/black stay 255/0 */
   uint8_t rgb[3 * 1 * 4] = {255, 0, 10, 200, 255, 0, 20, 100, 255, 0, 30, 50};
   ddpm_png_write(tpath("rgb.png"), rgb, 3, 1, 4);
   CHECK(ddpm_png_read(tpath("rgb.png"), 3, &p, &h, &w) == DDPM_OK && h == 1 && w == 4 &&
         memcmp(p, rgb, 12) == 0, "RGB round trip exact, planar");
   free(p);
   int rc = ddpm_png_read(tpath("rgb.png"), 1, &p, &h, &w);
   CHECK(rc == DDPM_OK && p[0] == 255 && p[1] == 0, "RGB read as gray: white 255, black 0 (got %d %d)",
         p ? p[0] : -1, p ? p[1] : -1);
   free(p);

   /* RGBA through the simplified writer: opaque exact, transparent on black. */
   png_image img;
   memset(&img, 0, sizeof img);
   img.version = PNG_IMAGE_VERSION;
   img.width = 2;
   img.height = 1;
   img.format = PNG_FORMAT_RGBA;
   uint8_t rgba[8] = {10, 20, 30, 255, 200, 200, 200, 0};
   CHECK(png_image_write_to_file(&img, tpath("rgba.png"), 0, rgba, 0, NULL), "write an RGBA PNG");
   CHECK(ddpm_png_read(tpath("rgba.png"), 3, &p, &h, &w) == DDPM_OK && w == 2 && p[0] == 10 &&
         p[2] == 20 && p[4] == 30 && p[1] == 0 && p[3] == 0 && p[5] == 0,
         "RGBA read as RGB: opaque pixel exact, transparent pixel black");
   free(p);

   /* 16-bit linear gray */
   memset(&img, 0, sizeof img);
   img.version = PNG_IMAGE_VERSION;
   img.width = 3;
   img.height = 1;
   img.format = PNG_FORMAT_LINEAR_Y;
   uint16_t g16[3] = {0, 65535, 0};
   CHECK(png_image_write_to_file(&img, tpath("g16.png"), 0, g16, 0, NULL), "write a 16-bit gray PNG");
   size_t n;
   uint8_t *f = read_all(tpath("g16.png"), &n);
   CHECK(f && f[24] == 16, "it is 16-bit in the file");
   free(f);
   CHECK(ddpm_png_read(tpath("g16.png"), 1, &p, &h, &w) == DDPM_OK && w == 3 && p[0] == 0 &&
         p[1] == 255 && p[2] == 0, "16-bit gray read as 8-bit gray");
   free(p);

   /* palette */
   memset(&img, 0, sizeof img);
   img.version = PNG_IMAGE_VERSION;
   img.width = 4;
   img.height = 1;
   img.format = PNG_FORMAT_RGB_COLORMAP;
   img.colormap_entries = 3;
   uint8_t cmap[9] = {255, 0, 0, 0, 255, 0, 12, 34, 56};
   uint8_t ix[4] = {0, 1, 2, 1};
   CHECK(png_image_write_to_file(&img, tpath("pal.png"), 0, ix, 0, cmap), "write a palette PNG");
   f = read_all(tpath("pal.png"), &n);
   CHECK(f && f[25] == 3, "it is colour type 3 (palette) in the file");
   free(f);
   CHECK(ddpm_png_read(tpath("pal.png"), 3, &p, &h, &w) == DDPM_OK && w == 4 &&
         p[0] == 255 && p[4] == 0 && p[8] == 0 &&       /* R, G, B of pixel 0 */
         p[2] == 12 && p[6] == 34 && p[10] == 56,        /* pixel 2 */
         "palette read as RGB, exact");
   free(p);

   /* 1-bit gray, 10 x 2: rows 1010101010 and 0000011111 */
   uint8_t raw[2 * 3] = {0, 0xAA, 0x80, 0, 0x07, 0xC0};
   uint8_t png1[256];
   size_t l1 = make_png(png1, 10, 2, 1, 0, raw, sizeof raw);
   write_bytes(tpath("bit1.png"), png1, l1);
   CHECK(ddpm_png_read(tpath("bit1.png"), 1, &p, &h, &w) == DDPM_OK && h == 2 && w == 10,
         "1-bit gray PNG reads (%s)", ddpm_errmsg());
   if (p) {
      int ok = 1;
      for (int x = 0; x < 10; x++) {
         ok &= p[x] == ((x % 2 == 0) ? 255 : 0);
         ok &= p[10 + x] == (x >= 5 ? 255 : 0);
      }
      CHECK(ok, "1-bit pixels expand to 0 / 255");
   }
   free(p);
}

static void rm_tree(const char *path)
{
   struct stat st;
   if (lstat(path, &st) != 0) return;
   if (S_ISDIR(st.st_mode)) {
      DIR *dp = opendir(path);
      struct dirent *e;
      while (dp && (e = readdir(dp)) != NULL) {
         if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
         char sub[1024];
         snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
         rm_tree(sub);
      }
      if (dp) closedir(dp);
      rmdir(path);
   } else {
      unlink(path);
   }
}

int main(void)
{
   const char *t = getenv("TMPDIR");
   snprintf(tmpdir, sizeof tmpdir, "%s/ddpm_test_png_XXXXXX", t && *t ? t : "/tmp");
   if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
   test_grid_layout();
   test_grid_values();
   test_write_errors();
   test_read_errors();
   test_read_formats();
   rm_tree(tmpdir);
   return check_done();
}
