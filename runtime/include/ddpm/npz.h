/*
 * ddpm/npz.h — NumPy's .npz archives (a zip of .npy arrays), as FID reference
 * statistics are published (`mu` [2048], `sigma` [2048,2048], float64).
 *
 * Reading: the whole file is checked before anything is returned: the zip's
 * end record and central directory, every local header, members stored or
 * deflated (zlib) with their CRC-32, each member a .npy of format 1.0-3.0
 * with a little- or big-endian bool, integer or float dtype, C or Fortran
 * order, and exactly the bytes its shape needs. Values come back as double
 * in C order. Every offset and size is bounds-checked against the file; a
 * refusal says what and where.
 *
 * Writing: float64 arrays, stored (uncompressed), .npy format 1.0, read by
 * numpy.load and by the reader above; atomic (ddpm_file_write_atomic).
 *
 * Not here: zip64 end records (archives over 4 GiB or 65,535 members),
 * encryption, object arrays, structured dtypes, memory mapping.
 */
#ifndef DDPM_NPZ_H
#define DDPM_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Files larger than this are refused before being read. */
#define DDPM_NPZ_MAX_BYTES ((size_t)1 << 30)

typedef struct ddpm_npy {
   char   *name;                   /* member name without ".npy" */
   int     dtype;                  /* DDPM_DT_* of the stored values */
   int     ndim;                   /* 0 (a scalar) .. DDPM_MAX_DIMS */
   int64_t shape[DDPM_MAX_DIMS];
   int64_t numel;
   double *data;                   /* [numel], C order */
} ddpm_npy;

typedef struct ddpm_npz ddpm_npz;

/* NULL + a message naming the file and the problem. */
ddpm_npz *ddpm_npz_open(const char *path);
/* Same over a caller's bytes (not kept); `what` names them in messages. */
ddpm_npz *ddpm_npz_parse(const void *bytes, size_t len, const char *what);
void ddpm_npz_close(ddpm_npz *z);   /* NULL is fine */
int  ddpm_npz_count(const ddpm_npz *z);
const ddpm_npy *ddpm_npz_at(const ddpm_npz *z, int i);
const ddpm_npy *ddpm_npz_find(const ddpm_npz *z, const char *name);   /* NULL if absent */

/* Writes n float64 arrays (names without ".npy", unique, 1..200 bytes of
   [A-Za-z0-9_.-]; ndims[i] 0..DDPM_MAX_DIMS) as an .npz. */
int ddpm_npz_write(const char *path, int n, const char *const *names, const int *ndims,
                   const int64_t *const *shapes, const double *const *data);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_NPZ_H */
