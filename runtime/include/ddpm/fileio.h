/*
 * ddpm/fileio.h — the one atomic file writer every file the runtime writes
 * whole goes through (runtime/fileio.c, docs/design.md §2), and the removal
 * of the temp files a killed writer left (runtime/tempfiles.c).
 */
#ifndef DDPM_FILEIO_H
#define DDPM_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- files */
/* The one atomic writer (runtime/fileio.c, docs/design.md §2): a temp file
   ".<name>.tmp.<pid>.<k>" in the target's folder, the bytes, fsync, close,
   rename over path, fsync of the folder. On failure the temp file is gone,
   whatever was at path is untouched, and the message reads
   "<what>: cannot write <path>: <step> failed: <reason>" (DDPM_EIO;
   DDPM_EINVAL for a path that names a folder). */

/* Writes buf [len] to path. */
int ddpm_file_write_atomic(const char *path, const void *buf, size_t len, const char *what);

/* One piece of a file written from several buffers. */
typedef struct ddpm_file_part {
   const void *data;
   size_t len;
} ddpm_file_part;

/* Writes parts[0..nparts) one after the other to path. */
int ddpm_file_write_atomicv(const char *path, const ddpm_file_part *parts, int nparts,
                            const char *what);

/* Fills the open temp file fd (whose name is tmp_path, for writers that open
   the file by name, e.g. in a child process). Returns DDPM_OK, or a status
   with the message set by ddpm_seterr; the temp file is then removed. */
typedef int (*ddpm_file_fill_fn)(int fd, const char *tmp_path, void *ctx);

/* The general form: fill writes the contents, this does the rest. */
int ddpm_file_write_atomic_fill(const char *path, ddpm_file_fill_fn fill, void *ctx,
                                const char *what);

/* Removes from dir the temp files of atomic writes (".<name>.tmp.<pid>.<k>")
   whose writer is no longer running on this host, i.e. was killed before
   its rename; *removed = how many (may be NULL). Other files, and temps of
   live processes, are left alone. DDPM_EIO + message when dir cannot be
   read or a file cannot be removed. */
int ddpm_remove_stale_temps(const char *dir, int *removed);

/* Writes float32 tensors atomically (ddpm_file_write_atomicv).
   names[i], ndims[i], shapes[i] (ndims[i] values), data[i]; optional
   metadata as meta_n key/value pairs. Names must be unique. Everything is
   checked before a byte is written (DDPM_EINVAL naming the tensor). */
int ddpm_st_write(const char *path, int n, const char *const *names,
                  const int *ndims, const int64_t *const *shapes,
                  const float *const *data,
                  int meta_n, const char *const *meta_keys, const char *const *meta_vals);
/* The same with a dtype per tensor (DDPM_DT_*; dtypes NULL: all F32); data[i]
   holds the values in that dtype, in the host's (little-endian) order. */
int ddpm_st_write_typed(const char *path, int n, const char *const *names, const int *dtypes,
                        const int *ndims, const int64_t *const *shapes,
                        const void *const *data,
                        int meta_n, const char *const *meta_keys, const char *const *meta_vals);
/* "F32", "BF16", ... for a DDPM_DT_* value, NULL for another; its bytes per
   element, 0 for another. */
const char *ddpm_st_dtype_name(int dtype);
int ddpm_st_dtype_size(int dtype);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_FILEIO_H */
