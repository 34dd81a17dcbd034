/*
 * dataset.c — whole image datasets in memory as uint8 [N,C,H,W], their
 * readers (IDX through zlib, CIFAR-10 binary batches, a folder of PNGs), the
 * float batch extraction used by training and the per-epoch shuffle.
 *
 * Readers validate each header field, compute sizes with overflow checks and
 * a cap before allocating, read exactly the declared bytes and then require
 * end of file, so a truncated download, a corrupt gzip stream or a file with
 * junk appended is an error naming the file rather than a quietly wrong set.
 * Not here: augmentation beyond flips and padding, streaming, JPEG.
 */
#include "ddpm.h"
#include "ddpm/dataset.h"
#include "ddpm/png.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

ddpm_dataset *ddpm_dataset_new(int64_t N, int C, int H, int W, ddpm_labels labels)
{
   if (N < 1 || C < 1 || C > 4 || H < 1 || W < 1 || H > DDPM_DATASET_MAX_SIDE ||
       W > DDPM_DATASET_MAX_SIDE) {
      ddpm_seterr(DDPM_EINVAL, "dataset: bad size [%lld,%d,%d,%d] (N >= 1, C 1..4, H and W 1..%d)",
                  (long long)N, C, H, W, DDPM_DATASET_MAX_SIDE);
      return NULL;
   }
   int64_t per = (int64_t)C * H * W;
   if (N > DDPM_DATASET_MAX_BYTES / per) {
      ddpm_seterr(DDPM_EINVAL, "dataset: [%lld,%d,%d,%d] is over the %lld-byte limit",
                  (long long)N, C, H, W, (long long)DDPM_DATASET_MAX_BYTES);
      return NULL;
   }
   ddpm_dataset *d = calloc(1, sizeof *d);
   if (d) {
      d->N = N; d->C = C; d->H = H; d->W = W;
      d->pixels = calloc((size_t)(N * per), 1);
      if (labels == DDPM_WITH_LABELS) d->labels = calloc((size_t)N, 1);
   }
   if (!d || !d->pixels || (labels == DDPM_WITH_LABELS && !d->labels)) {
      ddpm_dataset_free(d);
      ddpm_seterr(DDPM_ENOMEM, "dataset: out of memory for [%lld,%d,%d,%d] bytes", (long long)N, C,
                  H, W);
      return NULL;
   }
   return d;
}

void ddpm_dataset_free(ddpm_dataset *d)
{
   if (!d) return;
   free(d->pixels);
   free(d->labels);
   free(d);
}

/* ------------------------------------------------------------------ IDX */

/* zlib's message after a failed read ("path: reason" -> "reason"). zlib
   inflates ahead of what we asked for, so the decompressed offset of the
   damage is unknown; the compressed offset reached is reported instead. */
static int gz_damaged(gzFile f, const char *path, const char *during)
{
   int zerr;
   const char *zmsg = gzerror(f, &zerr);
   size_t pl = strlen(path);
   if (strncmp(zmsg, path, pl) == 0 && zmsg[pl] == ':' && zmsg[pl + 1] == ' ') zmsg += pl + 2;
   return ddpm_seterr(DDPM_EFORMAT,
                      "%s: corrupt or truncated gzip stream (zlib: %s), found at compressed offset "
                      "%lld while reading %s", path, zmsg, (long long)gzoffset(f), during);
}

/* Reads exactly len bytes at decompressed offset off. A short read is either
   a damaged gzip stream (zlib says so) or a file shorter than its header. */
static int gz_read_exact(gzFile f, const char *path, void *buf, int64_t len, int64_t off,
                         const char *what)
{
   uint8_t *p = buf;
   int64_t got = 0;
   while (got < len) {
      int64_t want = len - got;
      if (want > (1 << 30)) want = 1 << 30;
      int r = gzread(f, p + got, (unsigned)want);
      int zerr;
      gzerror(f, &zerr);
      if (r < 0 || zerr != Z_OK) return gz_damaged(f, path, what);
      if (r < want)
         return ddpm_seterr(DDPM_EFORMAT,
                            "%s: offset %lld: file ends inside %s (%lld of %lld bytes present)",
                            path, (long long)(off + got + r), what, (long long)(got + r),
                            (long long)len);
      got += r;
   }
   return DDPM_OK;
}

/* After the declared data: end of file, with zlib's trailer check passed. */
static int gz_expect_eof(gzFile f, const char *path, int64_t off)
{
   uint8_t extra[64];
   int r = gzread(f, extra, sizeof extra);
   int zerr;
   gzerror(f, &zerr);
   if (r < 0 || zerr != Z_OK) return gz_damaged(f, path, "the end of the data");
   if (r > 0)
      return ddpm_seterr(DDPM_EFORMAT,
                         "%s: offset %lld: trailing bytes after the %lld bytes the header declares",
                         path, (long long)off, (long long)off);
   return DDPM_OK;
}

static const char *idx_type_name(int t)
{
   switch (t) {
   case 0x08: return "unsigned byte";
   case 0x09: return "signed byte";
   case 0x0B: return "int16";
   case 0x0C: return "int32";
   case 0x0D: return "float32";
   case 0x0E: return "float64";
   default: return "unknown";
   }
}

/* Opens an IDX file and validates its header; dims[0..ndim) out. */
static gzFile idx_open(const char *path, int ndim, uint32_t *dims, const char *kind)
{
   struct stat st;
   if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      ddpm_seterr(DDPM_EIO, "%s: is a directory, expected an IDX %s file", path, kind);
      return NULL;
   }
   errno = 0;
   gzFile f = gzopen(path, "rb");
   if (!f) {
      ddpm_seterr(DDPM_EIO, "%s: cannot open %s file (%s)", path, kind,
                  errno ? strerror(errno) : "out of memory");
      return NULL;
   }
   gzbuffer(f, 1 << 17);
   uint8_t h[16];
   int hlen = 4 + 4 * ndim;
   char what[48];
   snprintf(what, sizeof what, "the %d-byte IDX %s header", hlen, kind);
   /* magic first, so a wrong kind of file is named as such even when short */
   if (gz_read_exact(f, path, h, 4, 0, what) != DDPM_OK) goto fail;
   if (h[0] != 0 || h[1] != 0) {
      ddpm_seterr(DDPM_EFORMAT,
                  "%s: offset 0: not an IDX file (magic %02x %02x %02x %02x, expected 00 00 08 %02x)",
                  path, h[0], h[1], h[2], h[3], ndim);
      goto fail;
   }
   if (h[2] != 0x08) {
      ddpm_seterr(DDPM_EFORMAT,
                  "%s: offset 2: IDX element type 0x%02x (%s) is not supported, expected 0x08 "
                  "(unsigned byte)", path, h[2], idx_type_name(h[2]));
      goto fail;
   }
   if (h[3] != ndim) {
      ddpm_seterr(DDPM_EFORMAT, "%s: offset 3: %d dimensions, expected %d for an IDX %s file (magic "
                  "0x0000080%d)", path, h[3], ndim, kind, ndim);
      goto fail;
   }
   if (gz_read_exact(f, path, h + 4, hlen - 4, 4, what) != DDPM_OK) goto fail;
   for (int i = 0; i < ndim; i++)
      dims[i] = (uint32_t)h[4 + 4 * i] << 24 | (uint32_t)h[5 + 4 * i] << 16 |
                (uint32_t)h[6 + 4 * i] << 8 | h[7 + 4 * i];
   if (dims[0] == 0) {
      ddpm_seterr(DDPM_EFORMAT, "%s: offset 4: the file declares 0 %s", path,
                  ndim == 1 ? "labels" : "images");
      goto fail;
   }
   return f;
fail:
   gzclose(f);
   return NULL;
}

/* The most decompressed bytes the file behind f can hold: its size when zlib
   reads it through as plain bytes, else 1032 per compressed byte (deflate's
   largest expansion: a 258-byte match in as little as 2 bits). A header
   that declares more is refused before anything is allocated. */
static int64_t idx_capacity(gzFile f, const char *path)
{
   struct stat st;
   if (stat(path, &st) != 0 || st.st_size < 0) return 0;
   int64_t size = (int64_t)st.st_size;
   if (gzdirect(f)) return size;
   return size > INT64_MAX / 1032 ? INT64_MAX : size * 1032;
}

/* The message for a header that declares more bytes than the file holds. */
static void idx_too_big(gzFile f, const char *path, const char *what, int64_t need)
{
   struct stat st;
   long long size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
   if (gzdirect(f))
      ddpm_seterr(DDPM_EFORMAT, "%s: offset %lld: file ends inside the %s (the header declares "
                  "%lld bytes in all, the file has %lld); truncated?", path, size, what,
                  (long long)need, size);
   else
      ddpm_seterr(DDPM_EFORMAT, "%s: the header declares %lld bytes in all, more than this %lld-byte "
                  "gzip file can hold (deflate expands at most 1032-fold); truncated?", path,
                  (long long)need, size);
}

ddpm_dataset *ddpm_dataset_read_idx(const char *images_path, const char *labels_path)
{
   if (!images_path || !*images_path) {
      ddpm_seterr(DDPM_EINVAL, "dataset_read_idx: no images path");
      return NULL;
   }
   uint32_t idims[3], ldims[1] = {0};
   gzFile fi = idx_open(images_path, 3, idims, "images");
   if (!fi) return NULL;
   gzFile fl = NULL;
   ddpm_dataset *d = NULL;
   if (labels_path) {
      fl = idx_open(labels_path, 1, ldims, "labels");
      if (!fl) goto fail;
   }
   for (int i = 1; i < 3; i++)
      if (idims[i] == 0 || idims[i] > DDPM_DATASET_MAX_SIDE) {
         ddpm_seterr(DDPM_EFORMAT, "%s: offset %d: image %s %u is outside 1..%d", images_path,
                     4 + 4 * i, i == 1 ? "height" : "width", (unsigned)idims[i],
                     DDPM_DATASET_MAX_SIDE);
         goto fail;
      }
   /* N < 2^32 and H*W <= 2^28, so the product fits easily in 64 bits. */
   int64_t N = idims[0], per = (int64_t)idims[1] * idims[2];
   if (N * per > DDPM_DATASET_MAX_BYTES) {
      ddpm_seterr(DDPM_EFORMAT,
                  "%s: offset 4: header declares %lld images of %ux%u = %lld bytes, over the "
                  "%lld-byte limit", images_path, (long long)N, (unsigned)idims[1],
                  (unsigned)idims[2], (long long)(N * per), (long long)DDPM_DATASET_MAX_BYTES);
      goto fail;
   }
   if (16 + N * per > idx_capacity(fi, images_path)) {
      idx_too_big(fi, images_path, "pixel data", 16 + N * per);
      goto fail;
   }
   if (fl && 8 + (int64_t)ldims[0] > idx_capacity(fl, labels_path)) {
      idx_too_big(fl, labels_path, "labels", 8 + (int64_t)ldims[0]);
      goto fail;
   }
   if (fl && ldims[0] != idims[0]) {
      ddpm_seterr(DDPM_EFORMAT, "%s: offset 4: %u labels, but %s has %u images", labels_path,
                  (unsigned)ldims[0], images_path, (unsigned)idims[0]);
      goto fail;
   }
   d = ddpm_dataset_new(N, 1, (int)idims[1], (int)idims[2],
                        fl ? DDPM_WITH_LABELS : DDPM_NO_LABELS);
   if (!d) goto fail;
   if (gz_read_exact(fi, images_path, d->pixels, N * per, 16, "the pixel data") != DDPM_OK ||
       gz_expect_eof(fi, images_path, 16 + N * per) != DDPM_OK)
      goto fail;
   if (fl) {
      if (gz_read_exact(fl, labels_path, d->labels, N, 8, "the labels") != DDPM_OK ||
          gz_expect_eof(fl, labels_path, 8 + N) != DDPM_OK)
         goto fail;
      for (int64_t i = 0; i < N; i++)
         if (d->labels[i] >= 10) {
            ddpm_seterr(DDPM_EFORMAT, "%s: offset %lld: label %d of example %lld is not in 0..9",
                        labels_path, (long long)(8 + i), d->labels[i], (long long)i);
            goto fail;
         }
      gzclose(fl);
   }
   gzclose(fi);
   return d;
fail:
   ddpm_dataset_free(d);
   if (fl) gzclose(fl);
   gzclose(fi);
   return NULL;
}

/* ------------------------------------------------------------------ CIFAR-10 */

#define CIFAR_RECORD 3073
#define CIFAR_PIXELS 3072
#define CIFAR_HOWTO                                                                           \
   "get the binary version, cifar-10-binary.tar.gz, from "                                    \
   "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it (tar xzf cifar-10-binary.tar.gz "  \
   "makes cifar-10-batches-bin/) and pass that directory or set DDPMLUA_CIFAR10 to it"

static char *path_join(const char *dir, const char *name)
{
   size_t n = strlen(dir) + strlen(name) + 2;
   char *p = malloc(n);
   if (p) snprintf(p, n, "%s%s%s", dir, (*dir && dir[strlen(dir) - 1] == '/') ? "" : "/", name);
   return p;
}

ddpm_dataset *ddpm_dataset_read_cifar(const char *dir, const char *split)
{
   static const char *train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                 "data_batch_4.bin", "data_batch_5.bin"};
   static const char *test[] = {"test_batch.bin"};
   const char **names;
   int nfiles;
   if (split && strcmp(split, "train") == 0) {
      names = train;
      nfiles = 5;
   } else if (split && strcmp(split, "test") == 0) {
      names = test;
      nfiles = 1;
   } else {
      ddpm_seterr(DDPM_EINVAL, "dataset_read_cifar: split '%s' is not \"train\" or \"test\"",
                  split ? split : "(null)");
      return NULL;
   }
   if (!dir || !*dir) dir = getenv("DDPMLUA_CIFAR10");
   if (!dir || !*dir) {
      ddpm_seterr(DDPM_EIO, "CIFAR-10: no directory given and DDPMLUA_CIFAR10 is not set; " CIFAR_HOWTO);
      return NULL;
   }
   struct stat st;
   int sr = stat(dir, &st);
   if (sr != 0 || !S_ISDIR(st.st_mode)) {
      ddpm_seterr(DDPM_EIO, "CIFAR-10: directory %s %s; " CIFAR_HOWTO, dir,
                  sr != 0 ? "not found" : "is not a directory");
      return NULL;
   }

   FILE *fp[5] = {NULL};
   char *paths[5] = {NULL};
   int64_t count[5] = {0}, N = 0;
   ddpm_dataset *d = NULL;
   uint8_t *rec = NULL;
   for (int i = 0; i < nfiles; i++) {
      paths[i] = path_join(dir, names[i]);
      if (!paths[i]) {
         ddpm_seterr(DDPM_ENOMEM, "CIFAR-10: out of memory");
         goto fail;
      }
      fp[i] = fopen(paths[i], "rb");
      if (!fp[i]) {
         ddpm_seterr(DDPM_EIO, "CIFAR-10: cannot open %s (%s); the %s split needs %s; " CIFAR_HOWTO,
                     paths[i], strerror(errno), split,
                     nfiles == 5 ? "data_batch_1.bin .. data_batch_5.bin" : "test_batch.bin");
         goto fail;
      }
      if (fstat(fileno(fp[i]), &st) != 0 || !S_ISREG(st.st_mode)) {
         ddpm_seterr(DDPM_EIO, "CIFAR-10: %s is not a regular file", paths[i]);
         goto fail;
      }
      if (st.st_size == 0 || st.st_size % CIFAR_RECORD != 0) {
         ddpm_seterr(DDPM_EFORMAT,
                     "CIFAR-10: %s: offset %lld: size %lld is not a positive multiple of the "
                     "3073-byte record (1 label byte + 3x32x32 pixels; the standard file is "
                     "30730000 bytes); truncated download?", paths[i],
                     (long long)(st.st_size - st.st_size % CIFAR_RECORD), (long long)st.st_size);
         goto fail;
      }
      count[i] = st.st_size / CIFAR_RECORD;
      N += count[i];
   }
   d = ddpm_dataset_new(N, 3, 32, 32, DDPM_WITH_LABELS);
   if (!d) goto fail;

   /* up to 256 records per read; no bigger than the set needs */
   const int64_t CHUNK = N < 256 ? N : 256;
   rec = malloc((size_t)CHUNK * CIFAR_RECORD);
   if (!rec) {
      ddpm_seterr(DDPM_ENOMEM, "CIFAR-10: out of memory");
      goto fail;
   }
   int64_t n = 0;
   for (int i = 0; i < nfiles; i++) {
      for (int64_t r = 0; r < count[i]; r += CHUNK) {
         int64_t k = count[i] - r < CHUNK ? count[i] - r : CHUNK;
         size_t got = fread(rec, CIFAR_RECORD, (size_t)k, fp[i]);
         if ((int64_t)got != k) {
            ddpm_seterr(DDPM_EIO, "CIFAR-10: %s: offset %lld: read failed or file shrank (%s)",
                        paths[i], (long long)((r + (int64_t)got) * CIFAR_RECORD),
                        ferror(fp[i]) ? strerror(errno) : "unexpected end of file");
            goto fail;
         }
         for (int64_t j = 0; j < k; j++) {
            const uint8_t *src = rec + j * CIFAR_RECORD;
            if (src[0] >= 10) {
               ddpm_seterr(DDPM_EFORMAT, "CIFAR-10: %s: offset %lld: label %d in record %lld is "
                           "not in 0..9", paths[i], (long long)((r + j) * CIFAR_RECORD), src[0],
                           (long long)(r + j));
               goto fail;
            }
            d->labels[n] = src[0];
            memcpy(d->pixels + n * CIFAR_PIXELS, src + 1, CIFAR_PIXELS);
            n++;
         }
      }
      if (fgetc(fp[i]) != EOF) {
         ddpm_seterr(DDPM_EFORMAT, "CIFAR-10: %s: offset %lld: file grew while being read",
                     paths[i], (long long)(count[i] * CIFAR_RECORD));
         goto fail;
      }
   }
   free(rec);
   for (int i = 0; i < nfiles; i++) {
      fclose(fp[i]);
      free(paths[i]);
   }
   return d;
fail:
   free(rec);
   ddpm_dataset_free(d);
   for (int i = 0; i < nfiles; i++) {
      if (fp[i]) fclose(fp[i]);
      free(paths[i]);
   }
   return NULL;
}

/* ------------------------------------------------------------------ PNG folder */

static int cmp_names(const void *a, const void *b)
{
   return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_png_name(const char *s)
{
   size_t n = strlen(s);
   return n > 4 && s[0] != '.' && strcasecmp(s + n - 4, ".png") == 0;
}

static void free_names(char **v, size_t n)
{
   for (size_t i = 0; i < n; i++) free(v[i]);
   free(v);
}

ddpm_dataset *ddpm_dataset_read_png_dir(const char *dir, int channels)
{
   if (!dir || !*dir) {
      ddpm_seterr(DDPM_EINVAL, "dataset_read_png_dir: no directory");
      return NULL;
   }
   if (channels != 1 && channels != 3) {
      ddpm_seterr(DDPM_EINVAL, "dataset_read_png_dir %s: channels = %d (expected 1 gray or 3 RGB)",
                  dir, channels);
      return NULL;
   }
   DIR *dp = opendir(dir);
   if (!dp) {
      ddpm_seterr(DDPM_EIO, "dataset_read_png_dir: cannot open directory %s (%s)", dir,
                  strerror(errno));
      return NULL;
   }
   char **paths = NULL;
   size_t n = 0, cap = 0;
   struct dirent *e;
   ddpm_dataset *d = NULL;
   while ((e = readdir(dp)) != NULL) {
      if (!is_png_name(e->d_name)) continue;
      char *p = path_join(dir, e->d_name);
      struct stat st;
      if (p && (stat(p, &st) != 0 || !S_ISREG(st.st_mode))) {
         free(p);
         continue;
      }
      if (p && n == cap) {
         size_t nc = cap ? 2 * cap : 64;
         char **np = realloc(paths, nc * sizeof *np);
         if (!np) {
            free(p);
            p = NULL;
         } else {
            paths = np;
            cap = nc;
         }
      }
      if (!p) {
         closedir(dp);
         free_names(paths, n);
         ddpm_seterr(DDPM_ENOMEM, "dataset_read_png_dir %s: out of memory", dir);
         return NULL;
      }
      paths[n++] = p;
   }
   closedir(dp);
   if (n == 0) {
      free_names(paths, n);
      ddpm_seterr(DDPM_EFORMAT, "dataset_read_png_dir: no .png files in %s", dir);
      return NULL;
   }
   qsort(paths, n, sizeof *paths, cmp_names);

   /* Headers first: every size agrees and the total fits before allocating. */
   int H0 = 0, W0 = 0;
   for (size_t i = 0; i < n; i++) {
      int h, w;
      if (ddpm_png_size(paths[i], &h, &w) != DDPM_OK) goto fail;
      if (i == 0) {
         H0 = h;
         W0 = w;
      } else if (h != H0 || w != W0) {
         ddpm_seterr(DDPM_EFORMAT, "dataset_read_png_dir: %s is %dx%d (W x H) but %s, the first, "
                     "is %dx%d; all images must be the same size", paths[i], w, h, paths[0], W0, H0);
         goto fail;
      }
   }
   d = ddpm_dataset_new((int64_t)n, channels, H0, W0, DDPM_NO_LABELS);
   if (!d) goto fail;
   size_t per = (size_t)channels * H0 * W0;
   for (size_t i = 0; i < n; i++)
      if (ddpm_png_read_into(paths[i], channels, d->pixels + i * per, H0, W0) != DDPM_OK) goto fail;
   free_names(paths, n);
   return d;
fail:
   ddpm_dataset_free(d);
   free_names(paths, n);
   return NULL;
}

/* ------------------------------------------------------------------ batches */

int ddpm_dataset_batch(const ddpm_dataset *d, float *out, const int64_t *indices, int n,
                       int pad_to, const uint8_t *flip)
{
   if (!d || !d->pixels) return ddpm_seterr(DDPM_EINVAL, "dataset_batch: no dataset");
   if (n < 0) return ddpm_seterr(DDPM_EINVAL, "dataset_batch: n = %d is negative", n);
   if (n > 0 && (!out || !indices))
      return ddpm_seterr(DDPM_EINVAL, "dataset_batch: NULL output or indices");
   const int C = d->C, H = d->H, W = d->W;
   if (pad_to < 0 || (pad_to > 0 && (pad_to < H || pad_to < W)) || pad_to > 4 * DDPM_DATASET_MAX_SIDE)
      return ddpm_seterr(DDPM_EINVAL, "dataset_batch: pad_to = %d, expected 0 (no padding) or at "
                         "least the image size %dx%d", pad_to, W, H);
   for (int i = 0; i < n; i++)
      if (indices[i] < 0 || indices[i] >= d->N)
         return ddpm_seterr(DDPM_EINVAL, "dataset_batch: index %lld (entry %d of %d) is out of "
                            "range 0..%lld", (long long)indices[i], i, n, (long long)d->N - 1);

   const int PH = pad_to ? pad_to : H, PW = pad_to ? pad_to : W;
   const int top = (PH - H) / 2, left = (PW - W) / 2;
   const int padded = PH != H || PW != W;
   float lut[256];
   for (int v = 0; v < 256; v++) lut[v] = (float)(v / 127.5 - 1.0);

   #pragma omp parallel for schedule(static) if ((int64_t)n * C * PH * PW > (1 << 18))
   for (int i = 0; i < n; i++) {
      const uint8_t *src = d->pixels + (size_t)indices[i] * C * H * W;
      float *dst = out + (size_t)i * C * PH * PW;
      const int f = flip && flip[i];
      if (padded)
         for (size_t k = 0; k < (size_t)C * PH * PW; k++) dst[k] = -1.0f;
      for (int c = 0; c < C; c++)
         for (int y = 0; y < H; y++) {
            const uint8_t *s = src + ((size_t)c * H + y) * W;
            float *o = dst + ((size_t)c * PH + top + y) * PW + left;
            if (f)
               for (int x = 0; x < W; x++) o[x] = lut[s[W - 1 - x]];
            else
               for (int x = 0; x < W; x++) o[x] = lut[s[x]];
         }
   }
   return DDPM_OK;
}

int ddpm_dataset_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch)
{
   if (n < 0 || n > (int64_t)UINT32_MAX)
      return ddpm_seterr(DDPM_EINVAL, "dataset_permutation: n = %lld outside 0..%u", (long long)n,
                         (unsigned)UINT32_MAX);
   if (n > 0 && !perm) return ddpm_seterr(DDPM_EINVAL, "dataset_permutation: NULL output");
   /* A key of its own per (seed, epoch): one Philox block of the counter
      (epoch, 'PERM'), a counter no other stream of the runtime uses. */
   uint32_t k[4];
   ddpm_philox4x32(k, seed, epoch, 0x5045524Du);
   ddpm_rng r;
   ddpm_rng_init(&r, (uint64_t)k[1] << 32 | k[0]);
   for (int64_t i = 0; i < n; i++) perm[i] = i;
   for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = ddpm_rng_below(&r, (uint32_t)(i + 1));
      int64_t t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
   }
   return DDPM_OK;
}
