/*
 * ddpm/safetensors.h — safetensors files: a strict reader and an atomic
 * writer of float32 or any other safetensors dtype (runtime/safetensors*.c;
 * docs/design.md §1).
 */
#ifndef DDPM_SAFETENSORS_H
#define DDPM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ safetensors */

enum { DDPM_DT_F32, DDPM_DT_F16, DDPM_DT_BF16, DDPM_DT_F64,
       DDPM_DT_I64, DDPM_DT_I32, DDPM_DT_U8, DDPM_DT_I8, DDPM_DT_BOOL,
       DDPM_DT_U16, DDPM_DT_I16, DDPM_DT_U32, DDPM_DT_U64 };

typedef struct ddpm_st_entry {
   char   *name;
   int     dtype;                    /* DDPM_DT_* */
   int     ndim;                     /* <= DDPM_MAX_DIMS */
   int64_t shape[DDPM_MAX_DIMS];
   uint64_t begin, end;              /* byte range in the data buffer */
} ddpm_st_entry;

typedef struct ddpm_st_file ddpm_st_file;

/* Reads and strictly validates a whole file (header size cap, JSON, duplicate
   keys, dtypes, shapes, offsets contiguous and covering the buffer). */
ddpm_st_file *ddpm_st_open(const char *path);
/* Same, over a caller's byte buffer (copied). For fuzzing and tests. */
ddpm_st_file *ddpm_st_parse(const void *bytes, size_t len, const char *what);
void ddpm_st_close(ddpm_st_file *f);    /* NULL is fine */
int  ddpm_st_count(const ddpm_st_file *f);
const ddpm_st_entry *ddpm_st_entry_at(const ddpm_st_file *f, int i);
int  ddpm_st_find(const ddpm_st_file *f, const char *name);   /* -1 if absent */
/* Converts entry i to float32 into dst (numel floats); F32/F16/BF16/F64 and
   integer types. */
int  ddpm_st_read_f32(const ddpm_st_file *f, int i, float *dst, size_t numel);
/* __metadata__ lookup; NULL if absent. */
const char *ddpm_st_metadata(const ddpm_st_file *f, const char *key);
int  ddpm_st_metadata_count(const ddpm_st_file *f);
const char *ddpm_st_metadata_key(const ddpm_st_file *f, int i);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_SAFETENSORS_H */
