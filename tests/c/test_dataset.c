/*
 * test_dataset.c — IDX (plain and gzip), CIFAR-10 binary and PNG-folder
 * readers on small synthetic files written to a temp dir, every corrupt case
 * of docs/design.md §5 we can make (each must fail with a message naming the
 * file), batch scaling/padding/flips against hand-computed values, the
 * permutation, and the real Fashion-MNIST train set from Debian's
 * dataset-fashion-mnist package.
 */
#include "check.h"
#include "ddpm.h"
#include "ddpm/dataset.h"
#include "ddpm/png.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
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

static void write_gz(const char *path, const void *p, size_t n)
{
   gzFile f = gzopen(path, "wb6");
   if (!f || gzwrite(f, p, (unsigned)n) != (int)n) { perror(path); exit(2); }
   gzclose(f);
}

static uint8_t *read_all(const char *path, size_t *n)
{
   FILE *f = fopen(path, "rb");
   if (!f) { perror(path); exit(2); }
   fseek(f, 0, SEEK_END);
   *n = (size_t)ftell(f);
   fseek(f, 0, SEEK_SET);
   uint8_t *p = malloc(*n + 1);
   if (fread(p, 1, *n, f) != *n) { perror(path); exit(2); }
   fclose(f);
   return p;
}

static void put_be32(uint8_t *p, uint32_t v)
{
   p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* IDX images [N,H,W], pixel = f(i,y,x); random = 1 gives incompressible bytes. */
static uint8_t *make_idx_images(uint32_t N, uint32_t H, uint32_t W, int random, size_t *len)
{
   *len = 16 + (size_t)N * H * W;
   uint8_t *b = malloc(*len);
   b[0] = 0; b[1] = 0; b[2] = 8; b[3] = 3;
   put_be32(b + 4, N); put_be32(b + 8, H); put_be32(b + 12, W);
   uint32_t s = 12345;
   for (size_t i = 0; i < (size_t)N * H * W; i++) {
      s = s * 1664525u + 1013904223u;
      b[16 + i] = random ? (uint8_t)(s >> 24) : (uint8_t)(i * 7 + i / 5);
   }
   return b;
}

static uint8_t *make_idx_labels(uint32_t N, size_t *len)
{
   *len = 8 + N;
   uint8_t *b = malloc(*len);
   b[0] = 0; b[1] = 0; b[2] = 8; b[3] = 1;
   put_be32(b + 4, N);
   for (uint32_t i = 0; i < N; i++) b[8 + i] = (uint8_t)((i * 3) % 10);
   return b;
}

/* d must be NULL and the message must name `name`. */
static void expect_fail(ddpm_dataset *d, const char *name, const char *also, const char *what)
{
   const char *m = ddpm_errmsg();
   printf("# %s -> %s\n", what, m);
   CHECK(d == NULL && strstr(m, name) != NULL && (!also || strstr(m, also) != NULL),
         "%s: error naming %s%s%s", what, name, also ? " and " : "", also ? also : "");
   ddpm_dataset_free(d);
}

/* ------------------------------------------------------------------ IDX */

static void test_idx_roundtrip(void)
{
   size_t il, ll;
   uint8_t *img = make_idx_images(5, 4, 3, 0, &il);
   uint8_t *lab = make_idx_labels(5, &ll);
   write_bytes(tpath("img.idx"), img, il);
   write_bytes(tpath("lab.idx"), lab, ll);
   write_gz(tpath("img.idx.gz"), img, il);
   write_gz(tpath("lab.idx.gz"), lab, ll);

   const char *pairs[3][2] = {{"img.idx", "lab.idx"}, {"img.idx.gz", "lab.idx.gz"},
                              {"img.idx.gz", "lab.idx"}};
   for (int k = 0; k < 3; k++) {
      ddpm_dataset *d = ddpm_dataset_read_idx(tpath(pairs[k][0]), tpath(pairs[k][1]));
      CHECK(d != NULL, "read %s + %s (%s)", pairs[k][0], pairs[k][1], d ? "" : ddpm_errmsg());
      if (!d) continue;
      CHECK(d->N == 5 && d->C == 1 && d->H == 4 && d->W == 3, "%s: shape [5,1,4,3]", pairs[k][0]);
      CHECK(memcmp(d->pixels, img + 16, 60) == 0, "%s: pixels exact", pairs[k][0]);
      CHECK(d->labels && memcmp(d->labels, lab + 8, 5) == 0, "%s: labels exact", pairs[k][1]);
      ddpm_dataset_free(d);
   }
   ddpm_dataset *d = ddpm_dataset_read_idx(tpath("img.idx.gz"), NULL);
   CHECK(d && d->labels == NULL && d->N == 5, "images without labels");
   ddpm_dataset_free(d);
   free(img);
   free(lab);
}

static void test_idx_corrupt(void)
{
   size_t il, ll;
   uint8_t *img = make_idx_images(6, 5, 4, 0, &il);
   uint8_t *lab = make_idx_labels(6, &ll);
   uint8_t *b = malloc(il + 64);
   write_bytes(tpath("good_lab.idx"), lab, ll);

   memcpy(b, img, il); b[0] = 'G'; b[1] = 'I';
   write_bytes(tpath("magic.idx"), b, il);
   expect_fail(ddpm_dataset_read_idx(tpath("magic.idx"), NULL), "magic.idx", "not an IDX", "wrong magic");

   expect_fail(ddpm_dataset_read_idx(tpath("good_lab.idx"), NULL), "good_lab.idx", "dimensions",
               "labels file given as images (magic 0x801)");

   memcpy(b, img, il); b[2] = 0x0D;
   write_bytes(tpath("type.idx"), b, il);
   expect_fail(ddpm_dataset_read_idx(tpath("type.idx"), NULL), "type.idx", "0x0d", "type byte 0x0D");

   int nd[3] = {0, 2, 4};
   for (int k = 0; k < 3; k++) {
      memcpy(b, img, il); b[3] = (uint8_t)nd[k];
      write_bytes(tpath("ndim.idx"), b, il);
      char what[32];
      snprintf(what, sizeof what, "ndim %d", nd[k]);
      expect_fail(ddpm_dataset_read_idx(tpath("ndim.idx"), NULL), "ndim.idx", "offset 3", what);
   }

   memcpy(b, img, il); put_be32(b + 4, 0xFFFFFFFFu); put_be32(b + 8, 16384); put_be32(b + 12, 16384);
   write_bytes(tpath("huge.idx"), b, il);
   expect_fail(ddpm_dataset_read_idx(tpath("huge.idx"), NULL), "huge.idx", "limit",
               "dims product 2^32 x 16384 x 16384 (over the cap, no allocation)");
   memcpy(b, img, il); put_be32(b + 12, 0xFFFFFFFFu);
   write_bytes(tpath("wide.idx"), b, il);
   expect_fail(ddpm_dataset_read_idx(tpath("wide.idx"), NULL), "wide.idx", "width", "width 2^32-1");

   memcpy(b, img, il); put_be32(b + 4, 0);
   write_bytes(tpath("empty.idx"), b, 16);
   expect_fail(ddpm_dataset_read_idx(tpath("empty.idx"), NULL), "empty.idx", "0 images", "0 images");

   write_bytes(tpath("short.idx"), img, il - 7);
   expect_fail(ddpm_dataset_read_idx(tpath("short.idx"), NULL), "short.idx", "ends inside",
               "file shorter than its dims");
   write_gz(tpath("short.idx.gz"), img, il - 7);
   expect_fail(ddpm_dataset_read_idx(tpath("short.idx.gz"), NULL), "short.idx.gz", "ends inside",
               "gzip of a file shorter than its dims");
   write_bytes(tpath("hdr.idx"), img, 9);
   expect_fail(ddpm_dataset_read_idx(tpath("hdr.idx"), NULL), "hdr.idx", "header", "file of 9 bytes");
   write_bytes(tpath("zero.idx"), img, 0);
   expect_fail(ddpm_dataset_read_idx(tpath("zero.idx"), NULL), "zero.idx", "header", "file of 0 bytes");

   memcpy(b, img, il); memset(b + il, 0xAB, 3);
   write_bytes(tpath("trail.idx"), b, il + 3);
   expect_fail(ddpm_dataset_read_idx(tpath("trail.idx"), NULL), "trail.idx", "trailing",
               "trailing bytes");
   write_gz(tpath("trail.idx.gz"), b, il + 3);
   expect_fail(ddpm_dataset_read_idx(tpath("trail.idx.gz"), NULL), "trail.idx.gz", "trailing",
               "trailing bytes inside the gzip stream");

   /* labels */
   size_t l5;
   uint8_t *lab5 = make_idx_labels(5, &l5);
   write_bytes(tpath("img6.idx"), img, il);
   write_bytes(tpath("lab5.idx"), lab5, l5);
   expect_fail(ddpm_dataset_read_idx(tpath("img6.idx"), tpath("lab5.idx")), "lab5.idx", "6 images",
               "6 images, 5 labels");
   memcpy(b, lab, ll); b[8 + 4] = 10;
   write_bytes(tpath("lab10.idx"), b, ll);
   expect_fail(ddpm_dataset_read_idx(tpath("img6.idx"), tpath("lab10.idx")), "lab10.idx", "offset 12",
               "label 10");
   memcpy(b, lab, ll); b[8 + 5] = 255;
   write_gz(tpath("lab255.idx.gz"), b, ll);
   expect_fail(ddpm_dataset_read_idx(tpath("img6.idx"), tpath("lab255.idx.gz")), "lab255.idx.gz",
               "label 255", "label 255 in a gzip file");
   write_bytes(tpath("labshort.idx"), lab, ll - 1);
   expect_fail(ddpm_dataset_read_idx(tpath("img6.idx"), tpath("labshort.idx")), "labshort.idx",
               "ends inside", "labels file one byte short");

   expect_fail(ddpm_dataset_read_idx(tpath("no-such-file.gz"), NULL), "no-such-file.gz", "cannot open",
               "missing images file");
   expect_fail(ddpm_dataset_read_idx(tpath("img6.idx"), tpath("no-labels.gz")), "no-labels.gz",
               "cannot open", "missing labels file");
   CHECK(ddpm_dataset_read_idx(NULL, NULL) == NULL, "NULL images path is an error");
   expect_fail(ddpm_dataset_read_idx(tmpdir, NULL), tmpdir, "directory", "a directory as images file");
   free(lab5);
   free(b);
   free(img);
   free(lab);
}

/* A damaged gzip stream: a byte flipped mid-file, and the file cut short. */
/* A header that declares more pixels than the file could hold, plain or
   gzip (at most 1032 bytes per compressed byte), is refused before the
   pixel buffer is allocated; a file that does hold them reads. */
static void test_idx_size_bound(void)
{
   uint8_t h[16 + 64] = {0, 0, 8, 3};
   put_be32(h + 4, 60000); put_be32(h + 8, 28); put_be32(h + 12, 28);
   write_bytes(tpath("short.idx"), h, sizeof h);
   expect_fail(ddpm_dataset_read_idx(tpath("short.idx"), NULL), "short.idx", "header declares",
               "60000 images declared in 80 plain bytes");
   write_gz(tpath("short.idx.gz"), h, sizeof h);
   expect_fail(ddpm_dataset_read_idx(tpath("short.idx.gz"), NULL), "short.idx.gz", "gzip file can hold",
               "60000 images declared in a gzip file of ~60 bytes");
   uint8_t l[8 + 4] = {0, 0, 8, 1};
   put_be32(l + 4, 60000);
   size_t il;
   uint8_t *img = make_idx_images(4, 2, 2, 0, &il);
   write_bytes(tpath("four.idx"), img, il);
   write_bytes(tpath("short_lab.idx"), l, sizeof l);
   expect_fail(ddpm_dataset_read_idx(tpath("four.idx"), tpath("short_lab.idx")), "short_lab.idx",
               "header declares", "60000 labels declared in 12 bytes");
   free(img);
   /* 256 black 32x32 images: 262 KB that gzip packs into well under 1 KB */
   size_t zl = 16 + 256 * 32 * 32;
   uint8_t *z = calloc(zl, 1);
   z[2] = 8; z[3] = 3;
   put_be32(z + 4, 256); put_be32(z + 8, 32); put_be32(z + 12, 32);
   write_gz(tpath("black.idx.gz"), z, zl);
   ddpm_dataset *d = ddpm_dataset_read_idx(tpath("black.idx.gz"), NULL);
   CHECK(d && d->N == 256 && d->pixels[0] == 0, "a gzip file that holds what it declares reads (%s)",
         d ? "ok" : ddpm_errmsg());
   ddpm_dataset_free(d);
   free(z);
}

static void test_idx_gzip_damage(void)
{
   size_t il;
   uint8_t *img = make_idx_images(64, 28, 28, 1, &il);
   write_gz(tpath("gz.idx.gz"), img, il);
   size_t gl;
   uint8_t *gz = read_all(tpath("gz.idx.gz"), &gl);
   ddpm_dataset *d = ddpm_dataset_read_idx(tpath("gz.idx.gz"), NULL);
   CHECK(d && memcmp(d->pixels, img + 16, il - 16) == 0, "the undamaged gzip file reads back");
   ddpm_dataset_free(d);

   size_t offs[3] = {gl / 2, gl / 3, gl - 6};   /* deflate data x2, the CRC trailer */
   for (int k = 0; k < 3; k++) {
      uint8_t *c = malloc(gl);
      memcpy(c, gz, gl);
      c[offs[k]] ^= 0x5A;
      write_bytes(tpath("flip.idx.gz"), c, gl);
      char what[64];
      snprintf(what, sizeof what, "byte %zu of %zu flipped in the gzip file", offs[k], gl);
      expect_fail(ddpm_dataset_read_idx(tpath("flip.idx.gz"), NULL), "flip.idx.gz", "gzip", what);
      free(c);
   }
   write_bytes(tpath("cut.idx.gz"), gz, gl / 2);
   expect_fail(ddpm_dataset_read_idx(tpath("cut.idx.gz"), NULL), "cut.idx.gz", "gzip",
               "gzip file cut in half");
   write_bytes(tpath("cut2.idx.gz"), gz, gl - 4);
   expect_fail(ddpm_dataset_read_idx(tpath("cut2.idx.gz"), NULL), "cut2.idx.gz", "gzip",
               "gzip file missing its length trailer");
   write_bytes(tpath("cut3.idx.gz"), gz, 12);
   expect_fail(ddpm_dataset_read_idx(tpath("cut3.idx.gz"), NULL), "cut3.idx.gz", NULL,
               "gzip file cut inside its header");
   free(gz);
   free(img);
}

/* ------------------------------------------------------------------ CIFAR */

/* n records; record r of file `file` has label (r + file) % 10 and pixel k = (r*13 + k + file) & 255. */
static void write_cifar(const char *path, int n, int file)
{
   uint8_t *b = malloc((size_t)n * 3073 + 1);
   for (int r = 0; r < n; r++) {
      b[r * 3073] = (uint8_t)((r + file) % 10);
      for (int k = 0; k < 3072; k++) b[r * 3073 + 1 + k] = (uint8_t)((r * 13 + k + file) & 255);
   }
   write_bytes(path, b, (size_t)n * 3073);
   free(b);
}

static int cifar_matches(const ddpm_dataset *d, int64_t at, int r, int file)
{
   if (d->labels[at] != (r + file) % 10) return 0;
   for (int k = 0; k < 3072; k++)
      if (d->pixels[at * 3072 + k] != (uint8_t)((r * 13 + k + file) & 255)) return 0;
   return 1;
}

static void test_cifar(void)
{
   mkdir(tpath("cifar"), 0755);
   write_cifar(tpath("cifar/test_batch.bin"), 3, 0);
   ddpm_dataset *d = ddpm_dataset_read_cifar(tpath("cifar"), "test");
   CHECK(d != NULL, "CIFAR test split of 3 records (%s)", d ? "" : ddpm_errmsg());
   if (d) {
      CHECK(d->N == 3 && d->C == 3 && d->H == 32 && d->W == 32 && d->labels, "shape [3,3,32,32] + labels");
      CHECK(cifar_matches(d, 0, 0, 0) && cifar_matches(d, 1, 1, 0) && cifar_matches(d, 2, 2, 0),
            "records, labels and R,G,B planes exact");
      /* R plane of record 1 is bytes 1..1024 of the record: pixel (y=0,x=5) of G is 1024+5. */
      CHECK(d->pixels[3072 + 1024 + 5] == (uint8_t)((13 + 1024 + 5) & 255), "G plane of record 1 at (0,5)");
      ddpm_dataset_free(d);
   }

   int counts[5] = {3, 1, 2, 1, 1};
   for (int f = 0; f < 5; f++) {
      char name[64];
      snprintf(name, sizeof name, "cifar/data_batch_%d.bin", f + 1);
      write_cifar(tpath(name), counts[f], f + 1);
   }
   d = ddpm_dataset_read_cifar(tpath("cifar/"), "train");
   CHECK(d && d->N == 8, "CIFAR train split: 5 files, 8 records (%s)", d ? "" : ddpm_errmsg());
   if (d) {
      int ok = 1;
      int64_t at = 0;
      for (int f = 0; f < 5; f++)
         for (int r = 0; r < counts[f]; r++) ok &= cifar_matches(d, at++, r, f + 1);
      CHECK(ok, "train records in file order, exact");
      ddpm_dataset_free(d);
   }

   setenv("DDPMLUA_CIFAR10", tpath("cifar"), 1);
   d = ddpm_dataset_read_cifar(NULL, "test");
   CHECK(d && d->N == 3, "dir NULL reads $DDPMLUA_CIFAR10");
   ddpm_dataset_free(d);
   unsetenv("DDPMLUA_CIFAR10");
   expect_fail(ddpm_dataset_read_cifar(NULL, "test"), "DDPMLUA_CIFAR10", "cifar-10-binary.tar.gz",
               "no dir and no DDPMLUA_CIFAR10");

   expect_fail(ddpm_dataset_read_cifar(tpath("no-cifar-here"), "train"), "no-cifar-here",
               "cifar-10-binary.tar.gz", "missing directory says how to get the data");
   const char *m = ddpm_errmsg();
   CHECK(strstr(m, "DDPMLUA_CIFAR10") && strstr(m, "cifar-10-batches-bin"), "message names the env var and the folder");
   CHECK(ddpm_dataset_read_cifar(tpath("cifar"), "valid") == NULL && strstr(ddpm_errmsg(), "valid"),
         "split 'valid' is an error");

   /* damage */
   rename(tpath("cifar/data_batch_3.bin"), tpath("cifar/hidden.bin"));
   expect_fail(ddpm_dataset_read_cifar(tpath("cifar"), "train"), "data_batch_3.bin",
               "cifar-10-binary.tar.gz", "directory missing one batch");
   rename(tpath("cifar/hidden.bin"), tpath("cifar/data_batch_3.bin"));

   size_t n;
   uint8_t *rec = read_all(tpath("cifar/test_batch.bin"), &n);
   write_bytes(tpath("cifar/test_batch.bin"), rec, 2 * 3073 + 5);
   expect_fail(ddpm_dataset_read_cifar(tpath("cifar"), "test"), "test_batch.bin", "3073",
               "size not a multiple of 3073");
   write_bytes(tpath("cifar/test_batch.bin"), rec, 0);
   expect_fail(ddpm_dataset_read_cifar(tpath("cifar"), "test"), "test_batch.bin", "3073", "0-byte file");
   rec[3073 * 2] = 200;
   write_bytes(tpath("cifar/test_batch.bin"), rec, n);
   expect_fail(ddpm_dataset_read_cifar(tpath("cifar"), "test"), "test_batch.bin", "offset 6146",
               "label 200 in record 2");
   rec[3073 * 2] = 10;
   write_bytes(tpath("cifar/test_batch.bin"), rec, n);
   expect_fail(ddpm_dataset_read_cifar(tpath("cifar"), "test"), "test_batch.bin", "label 10", "label 10");
   free(rec);
}

/* ------------------------------------------------------------------ PNG folder */

static void test_png_dir(void)
{
   mkdir(tpath("pngs"), 0755);
   const int H = 5, W = 4;
   uint8_t img[3][3 * 5 * 4];
   for (int k = 0; k < 3; k++)
      for (int i = 0; i < 3 * H * W; i++) img[k][i] = (uint8_t)(k * 80 + i * 3);
   /* written out of order; c.PNG tests the case-insensitive extension */
   CHECK(ddpm_png_write(tpath("pngs/b.png"), img[1], 3, H, W) == DDPM_OK, "write b.png");
   CHECK(ddpm_png_write(tpath("pngs/c.PNG"), img[2], 3, H, W) == DDPM_OK, "write c.PNG");
   CHECK(ddpm_png_write(tpath("pngs/a.png"), img[0], 3, H, W) == DDPM_OK, "write a.png");
   write_bytes(tpath("pngs/notes.txt"), "not an image", 12);
   write_bytes(tpath("pngs/._a.png"), "AppleDouble", 11);   /* hidden: ignored */
   mkdir(tpath("pngs/sub.png"), 0755);    /* a directory with a .png name: ignored */

   ddpm_dataset *d = ddpm_dataset_read_png_dir(tpath("pngs"), 3);
   CHECK(d != NULL, "read a folder of 3 RGB PNGs (%s)", d ? "" : ddpm_errmsg());
   if (d) {
      CHECK(d->N == 3 && d->C == 3 && d->H == H && d->W == W && !d->labels, "shape [3,3,5,4], no labels");
      CHECK(memcmp(d->pixels, img[0], sizeof img[0]) == 0 &&
            memcmp(d->pixels + sizeof img[0], img[1], sizeof img[0]) == 0 &&
            memcmp(d->pixels + 2 * sizeof img[0], img[2], sizeof img[0]) == 0,
            "sorted by name (a, b, c.PNG), planar pixels exact");
      ddpm_dataset_free(d);
   }

   mkdir(tpath("gray"), 0755);
   CHECK(ddpm_png_write(tpath("gray/0.png"), img[0], 1, H, W) == DDPM_OK, "write gray 0.png");
   CHECK(ddpm_png_write(tpath("gray/1.png"), img[1], 1, H, W) == DDPM_OK, "write gray 1.png");
   d = ddpm_dataset_read_png_dir(tpath("gray"), 1);
   CHECK(d && d->N == 2 && d->C == 1 && memcmp(d->pixels, img[0], (size_t)H * W) == 0 &&
         memcmp(d->pixels + H * W, img[1], (size_t)H * W) == 0, "gray folder read as gray, exact");
   ddpm_dataset_free(d);
   d = ddpm_dataset_read_png_dir(tpath("gray"), 3);
   int ok = d && d->C == 3;
   for (int i = 0; ok && i < H * W; i++)
      ok = d->pixels[i] == img[0][i] && d->pixels[H * W + i] == img[0][i] && d->pixels[2 * H * W + i] == img[0][i];
   CHECK(ok, "gray folder read as RGB: R = G = B = gray");
   ddpm_dataset_free(d);

   CHECK(ddpm_png_write(tpath("pngs/d.png"), img[0], 3, H + 1, W) == DDPM_OK, "write d.png 4x6");
   CHECK(ddpm_png_write(tpath("pngs/e.png"), img[0], 3, H, W + 1) == DDPM_OK, "write e.png 5x5");
   expect_fail(ddpm_dataset_read_png_dir(tpath("pngs"), 3), "d.png", "a.png", "mismatched sizes name the first odd file");
   unlink(tpath("pngs/d.png"));
   unlink(tpath("pngs/e.png"));

   write_bytes(tpath("pngs/f.png"), "GIF89a not a png at all", 23);
   expect_fail(ddpm_dataset_read_png_dir(tpath("pngs"), 3), "f.png", NULL, "non-PNG bytes in f.png");
   size_t n;
   uint8_t *good = read_all(tpath("pngs/a.png"), &n);
   write_bytes(tpath("pngs/f.png"), good, n - 20);
   expect_fail(ddpm_dataset_read_png_dir(tpath("pngs"), 3), "f.png", NULL, "truncated f.png");
   free(good);
   unlink(tpath("pngs/f.png"));

   mkdir(tpath("nopng"), 0755);
   write_bytes(tpath("nopng/readme.txt"), "x", 1);
   expect_fail(ddpm_dataset_read_png_dir(tpath("nopng"), 3), "nopng", "no .png", "folder without PNGs");
   expect_fail(ddpm_dataset_read_png_dir(tpath("no-such-dir"), 3), "no-such-dir", NULL, "missing folder");
   CHECK(ddpm_dataset_read_png_dir(tpath("pngs"), 2) == NULL, "channels 2 is an error");
}

/* ------------------------------------------------------------------ batch */

static void test_batch(void)
{
   /* 3 gray 2x3 images. */
   ddpm_dataset *d = ddpm_dataset_new(3, 1, 2, 3, DDPM_NO_LABELS);
   const uint8_t px[3][6] = {{0, 51, 255, 102, 153, 204},
                             {255, 255, 255, 0, 0, 0},
                             {1, 2, 3, 4, 5, 6}};
   for (int i = 0; i < 3; i++) memcpy(d->pixels + i * 6, px[i], 6);

   float out[2 * 4 * 4];
   int64_t ix[2] = {0, 2};
   CHECK(ddpm_dataset_batch(d, out, ix, 2, 0, NULL) == DDPM_OK, "batch, no padding");
   const float want0[6] = {-1.0f, -0.6f, 1.0f, -0.2f, 0.2f, 0.6f};   /* v/127.5 - 1 by hand */
   CHECK_CLOSE(out, want0, 6, 1e-6, "0 -> -1, 51 -> -0.6, 255 -> 1, 102 -> -0.2, 153 -> 0.2, 204 -> 0.6");
   CHECK(fabsf(out[6] - (1.0f / 127.5f - 1.0f)) < 1e-7 && fabsf(out[11] - (6.0f / 127.5f - 1.0f)) < 1e-7,
         "second example is index 2");

   uint8_t flip[2] = {1, 0};
   CHECK(ddpm_dataset_batch(d, out, ix, 2, 0, flip) == DDPM_OK, "batch with a flip");
   const float want1[6] = {1.0f, -0.6f, -1.0f, 0.6f, 0.2f, -0.2f};
   CHECK_CLOSE(out, want1, 6, 1e-6, "example 0 mirrored left-right");
   CHECK(fabsf(out[6] - (1.0f / 127.5f - 1.0f)) < 1e-7, "example 1 not mirrored");

   /* pad 2x3 -> 4x4: top 1, bottom 1, left 0, right 1 (odd remainder right). */
   int64_t one = 0;
   CHECK(ddpm_dataset_batch(d, out, &one, 1, 4, NULL) == DDPM_OK, "pad 2x3 to 4x4");
   const float want2[16] = {-1, -1, -1, -1,
                            -1.0f, -0.6f, 1.0f, -1,
                            -0.2f, 0.2f, 0.6f, -1,
                            -1, -1, -1, -1};
   CHECK_CLOSE(out, want2, 16, 1e-6, "padding centred with -1");
   uint8_t f1 = 1;
   CHECK(ddpm_dataset_batch(d, out, &one, 1, 4, &f1) == DDPM_OK, "pad and flip");
   CHECK(out[4] == 1.0f && out[6] == -1.0f && out[7] == -1.0f, "flip applies to the image, padding stays");

   for (int i = 0; i < 32; i++) out[i] = 42.0f;
   int64_t bad[2] = {1, 3};
   int rc = ddpm_dataset_batch(d, out, bad, 2, 0, NULL);
   printf("# %s\n", ddpm_errmsg());
   CHECK(rc == DDPM_EINVAL && strstr(ddpm_errmsg(), "index 3") && out[0] == 42.0f,
         "index 3 of 3 rejected before anything is written");
   int64_t neg = -1;
   CHECK(ddpm_dataset_batch(d, out, &neg, 1, 0, NULL) == DDPM_EINVAL, "index -1 rejected");
   CHECK(ddpm_dataset_batch(d, out, ix, 2, 2, NULL) == DDPM_EINVAL, "pad_to 2 < W 3 rejected");
   CHECK(ddpm_dataset_batch(d, out, ix, 2, -1, NULL) == DDPM_EINVAL, "pad_to -1 rejected");
   CHECK(ddpm_dataset_batch(NULL, out, ix, 2, 0, NULL) == DDPM_EINVAL, "NULL dataset rejected");
   CHECK(ddpm_dataset_batch(d, out, ix, 0, 0, NULL) == DDPM_OK, "n = 0 is a no-op");
   ddpm_dataset_free(d);

   /* 28 -> 32 adds 2 on each side, 3 channels */
   d = ddpm_dataset_new(2, 3, 28, 28, DDPM_WITH_LABELS);
   for (int64_t i = 0; i < 2 * 3 * 28 * 28; i++) d->pixels[i] = (uint8_t)(i * 31 + 7);
   float *o = malloc(sizeof(float) * 2 * 3 * 32 * 32);
   int64_t ix2[2] = {1, 0};
   uint8_t fl2[2] = {0, 1};
   CHECK(ddpm_dataset_batch(d, o, ix2, 2, 32, fl2) == DDPM_OK, "28x28 RGB padded to 32");
   int ok = 1;
   for (int n = 0; n < 2; n++)
      for (int c = 0; c < 3; c++)
         for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
               float got = o[((n * 3 + c) * 32 + y) * 32 + x], want = -1.0f;
               if (y >= 2 && y < 30 && x >= 2 && x < 30) {
                  int sx = fl2[n] ? 27 - (x - 2) : x - 2;
                  uint8_t v = d->pixels[((ix2[n] * 3 + c) * 28 + (y - 2)) * 28 + sx];
                  want = (float)(v / 127.5 - 1.0);
               }
               if (got != want) ok = 0;
            }
   CHECK(ok, "every element of the padded batch equals the hand formula");
   free(o);
   ddpm_dataset_free(d);

   CHECK(ddpm_dataset_new(0, 1, 2, 2, DDPM_NO_LABELS) == NULL, "dataset_new N = 0 rejected");
   CHECK(ddpm_dataset_new(1, 1, 100000, 2, DDPM_NO_LABELS) == NULL, "dataset_new H = 100000 rejected");
   CHECK(ddpm_dataset_new(1LL << 40, 1, 28, 28, DDPM_NO_LABELS) == NULL && strstr(ddpm_errmsg(), "limit"),
         "dataset_new 2^40 images rejected by the cap");
}

/* ------------------------------------------------------------------ permutation */

static int is_perm(const int64_t *p, int64_t n)
{
   char *seen = calloc((size_t)n + 1, 1);
   int ok = 1;
   for (int64_t i = 0; i < n && ok; i++) {
      if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
      else seen[p[i]] = 1;
   }
   free(seen);
   return ok;
}

static void test_permutation(void)
{
   enum { n = 1000 };
   int64_t a[n], b[n], c[n], e[n];
   CHECK(ddpm_dataset_permutation(a, n, 7, 0) == DDPM_OK && is_perm(a, n), "a permutation of 0..999");
   ddpm_dataset_permutation(b, n, 7, 0);
   CHECK(memcmp(a, b, sizeof a) == 0, "same (seed, epoch) -> same order");
   ddpm_dataset_permutation(c, n, 7, 1);
   ddpm_dataset_permutation(e, n, 8, 0);
   CHECK(is_perm(c, n) && memcmp(a, c, sizeof a) != 0, "epoch 1 differs from epoch 0");
   CHECK(is_perm(e, n) && memcmp(a, e, sizeof a) != 0, "seed 8 differs from seed 7");
   int fixed = 0;
   for (int i = 0; i < n; i++) fixed += a[i] == i;
   CHECK(fixed < 10, "few fixed points (%d), so it is shuffled", fixed);
   printf("# perm(seed 7, epoch 0)[0..4] = %lld %lld %lld %lld %lld\n", (long long)a[0],
          (long long)a[1], (long long)a[2], (long long)a[3], (long long)a[4]);

   /* All 6 orders of 3 items about equally often over 6000 epochs. */
   int hist[6] = {0};
   for (int ep = 0; ep < 6000; ep++) {
      int64_t p[3];
      ddpm_dataset_permutation(p, 3, 99, (uint64_t)ep);
      hist[p[0] * 2 + (p[1] > p[2])]++;
   }
   int lo = hist[0], hi = hist[0];
   for (int k = 1; k < 6; k++) { if (hist[k] < lo) lo = hist[k]; if (hist[k] > hi) hi = hist[k]; }
   CHECK(lo > 850 && hi < 1150, "the 6 orders of 3 items are uniform (min %d, max %d of 1000)", lo, hi);

   int64_t one = 5;
   CHECK(ddpm_dataset_permutation(&one, 1, 1, 1) == DDPM_OK && one == 0, "n = 1 -> {0}");
   CHECK(ddpm_dataset_permutation(NULL, 0, 1, 1) == DDPM_OK, "n = 0 is fine");
   CHECK(ddpm_dataset_permutation(a, -1, 1, 1) == DDPM_EINVAL, "n = -1 rejected");
   CHECK(ddpm_dataset_permutation(a, 1LL << 33, 1, 1) == DDPM_EINVAL, "n = 2^33 rejected");
}

/* ------------------------------------------------------------------ the real set */

static void test_fashion_mnist(void)
{
   const char *dir = "/usr/share/datasets/fashion-mnist";
   char ip[256], lp[256];
   snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte.gz", dir);
   snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte.gz", dir);
   struct timespec t0, t1;
   clock_gettime(CLOCK_MONOTONIC, &t0);
   ddpm_dataset *d = ddpm_dataset_read_idx(ip, lp);
   clock_gettime(CLOCK_MONOTONIC, &t1);
   CHECK(d != NULL, "Fashion-MNIST train set reads (%s)%s", d ? "ok" : ddpm_errmsg(),
         d ? "" : " -- install Debian's dataset-fashion-mnist");
   if (!d) return;
   printf("# read 60000 images in %.2f s\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
   CHECK(d->N == 60000 && d->C == 1 && d->H == 28 && d->W == 28, "N = 60000, 1x28x28");
   int64_t count[10] = {0};
   for (int64_t i = 0; i < d->N; i++) count[d->labels[i]]++;
   int ok = 1;
   for (int k = 0; k < 10; k++) ok &= count[k] == 6000;
   CHECK(ok, "6000 examples of each of the 10 labels");
   double mean = 0;
   for (int64_t i = 0; i < d->N * 784; i++) mean += d->pixels[i];
   mean /= (double)d->N * 784;
   printf("# mean pixel %.3f\n", mean);
   CHECK(mean > 60 && mean < 90, "mean pixel %.1f is in the known range (~72.9)", mean);
   ddpm_dataset_free(d);
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
   snprintf(tmpdir, sizeof tmpdir, "%s/ddpm_test_dataset_XXXXXX", t && *t ? t : "/tmp");
   if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
   test_idx_roundtrip();
   test_idx_corrupt();
   test_idx_size_bound();
   test_idx_gzip_damage();
   test_cifar();
   test_png_dir();
   test_batch();
   test_permutation();
   test_fashion_mnist();
   rm_tree(tmpdir);
   return check_done();
}
