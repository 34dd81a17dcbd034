/*
 * ddpm/dataset.h — in-memory uint8 image datasets and their readers.
 *
 * A dataset is the whole set in memory as bytes, [N, C, H, W] pixels plus
 * optional [N] labels, read once from Fashion-MNIST/MNIST IDX files, CIFAR-10
 * binary batches or a folder of PNG files. Training draws float batches from
 * it with ddpm_dataset_batch (scaling x = v/127.5 - 1, centred padding,
 * optional horizontal flips) in an order from ddpm_dataset_permutation.
 *
 * Not here: streaming from disk, decoding JPEG, random crops. Readers check
 * every header field and size before allocating, read exact lengths, and
 * report problems as DDPM_EFORMAT / DDPM_EIO / DDPM_EINVAL with a message that
 * names the file (and the offset where it makes sense); they never print.
 */
#ifndef DDPM_DATASET_H
#define DDPM_DATASET_H

#include <stdint.h>

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest pixel buffer a reader will allocate (N*C*H*W bytes): 4 GiB. A
   header that declares more is rejected before any allocation. */
#define DDPM_DATASET_MAX_BYTES ((int64_t)4 << 30)
/* Largest image side the readers accept. */
#define DDPM_DATASET_MAX_SIDE 16384

typedef struct ddpm_dataset {
   int64_t  N;
   int      C, H, W;
   uint8_t *pixels;    /* [N, C, H, W], planar (CIFAR's own layout) */
   uint8_t *labels;    /* [N], each 0..9, or NULL when the set has none */
} ddpm_dataset;

/* A zero-filled dataset (with DDPM_WITH_LABELS, labels zero-filled too).
   NULL + message on bad sizes, sizes over the cap, or out of memory. */
typedef enum { DDPM_NO_LABELS = 0, DDPM_WITH_LABELS = 1 } ddpm_labels;
ddpm_dataset *ddpm_dataset_new(int64_t N, int C, int H, int W, ddpm_labels labels);

/* MNIST / Fashion-MNIST IDX files, gzip-compressed or plain (read through
   zlib's gzread, which passes plain files through). images_path: magic
   0x00000803 (unsigned bytes, 3 dims [N,H,W]); labels_path (may be NULL):
   magic 0x00000801 ([N]). Result is [N,1,H,W]. Errors (NULL + message naming
   the file and offset): wrong magic/type/ndim, zero images, sizes over the
   cap, a short file or a truncated/corrupt gzip stream, trailing bytes,
   different image and label counts, a label >= 10. */
ddpm_dataset *ddpm_dataset_read_idx(const char *images_path, const char *labels_path);

/* CIFAR-10 binary batches in dir (cifar-10-batches-bin/): split "train" reads
   data_batch_1.bin .. data_batch_5.bin, "test" reads test_batch.bin. dir NULL
   or "" means $DDPMLUA_CIFAR10. Records are 3073 bytes: label, then 1024 R,
   1024 G, 1024 B bytes (32x32 row-major planes). Result is [N,3,32,32] with
   labels. Each file's size must be a positive multiple of 3073 (the standard
   files are 30,730,000 bytes; other multiples are accepted) and every label
   < 10. A missing directory or file is DDPM_EIO with a message saying how to
   get the data. */
ddpm_dataset *ddpm_dataset_read_cifar(const char *dir, const char *split);

/* Every *.png in dir (case-insensitive extension; other files, directories
   and hidden names such as macOS's "._x.png" are ignored), in
   strcmp order of their names, converted to channels = 1 (gray) or 3 (RGB)
   by libpng's simplified API (palette, 16-bit, low-bit-depth and alpha inputs
   included; alpha is composited onto black). All images must be the same
   size; the error names the first one that is not. No labels. */
ddpm_dataset *ddpm_dataset_read_png_dir(const char *dir, int channels);

void ddpm_dataset_free(ddpm_dataset *d);   /* NULL is fine */

/* out [n, C, P, P] float32 from examples indices[0..n) (0-based):
   x = v/127.5 - 1, so bytes 0..255 map to [-1, 1]. pad_to == 0: no padding,
   out is [n, C, H, W]. pad_to = P >= H, W: each image is centred in a P x P
   field of -1 (top = (P-H)/2, left = (P-W)/2; an odd remainder goes to the
   bottom/right), so 28 -> 32 adds 2 on each side. flip (may be NULL):
   flip[i] != 0 mirrors example i left-right. Every index is checked before
   anything is written: DDPM_EINVAL names the first bad one. */
int ddpm_dataset_batch(const ddpm_dataset *d, float *out, const int64_t *indices, int n,
                       int pad_to, const uint8_t *flip);

/* perm[0..n) <- a uniformly shuffled 0..n-1 (n <= 2^32-1). Fisher-Yates from
   the top (for i = n-1 .. 1: swap perm[i], perm[ddpm_rng_below(i+1)]) with a
   Philox stream whose key is words 0,1 of ddpm_philox4x32(seed, epoch,
   0x5045524D); the stream counter starts at 0. So an epoch's order is a
   function of (seed, epoch) alone. */
int ddpm_dataset_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_DATASET_H */
