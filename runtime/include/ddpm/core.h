/*
 * ddpm/core.h — status codes and the error message, threads, the interrupt
 * flag, tensors and the counter-based RNG: what every other public header
 * builds on.
 *
 * Conventions of the whole public API (runtime/include/)
 *   - float32 everywhere inside; NCHW layout; N batch, C channels, H, W, T.
 *   - Fallible calls return int status (DDPM_OK == 0) and leave a message in
 *     ddpm_errmsg(); constructors return NULL and set the message.
 *   - Argument order: outputs, saved buffers, inputs, weights, bias, scalars,
 *     sizes. Backward functions ACCUMULATE (+=) into every gradient they are
 *     given; a NULL gradient pointer means "not needed".
 *   - The runtime never prints, exits or aborts on bad input.
 */
#ifndef DDPM_CORE_H
#define DDPM_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ status */

enum {
   DDPM_OK = 0,
   DDPM_EINVAL,   /* bad argument value */
   DDPM_ESHAPE,   /* shapes do not agree */
   DDPM_ENOMEM,   /* allocation failed */
   DDPM_EIO,      /* file system error */
   DDPM_EFORMAT,  /* malformed file */
   DDPM_ESQL,     /* SQLite error */
   DDPM_EINTR     /* interrupted (Ctrl-C) */
};

/* The thread-local message of the last failing call ("" if none). */
const char *ddpm_errmsg(void);
/* Set the message and return rc (so: return ddpm_seterr(DDPM_ESHAPE, ...)). */
int ddpm_seterr(int rc, const char *fmt, ...)
#ifdef __GNUC__
   __attribute__((format(printf, 2, 3)))
#endif
   ;
void ddpm_clearerr(void);

/* Threads used by the runtime's own loops (OpenMP) and by OpenBLAS. */
void ddpm_set_num_threads(int n);
int  ddpm_get_num_threads(void);

/* Interrupt flag: set from a signal handler, polled by long loops, which then
   return DDPM_EINTR. ddpm_interrupt_clear() resets it. */
void ddpm_interrupt_set(void);
void ddpm_interrupt_clear(void);
int  ddpm_interrupted(void);

/* ------------------------------------------------------------------ tensors */

#define DDPM_MAX_DIMS 8

/* Refcounted, 64-byte aligned float storage. version counts the times a
   writer may have changed data: every write through tensor.c's functions
   and every writable pointer handed out (ddpm_tensor_data, ddpm_tensor_ptr,
   ddpm_tensor_touch) adds one, so that a cache of something computed from
   the data (the U-Net's bfloat16 filters) knows, by comparing one number,
   whether it may be stale. */
typedef struct ddpm_storage {
   float  *data;
   int64_t numel;
   int     refcount;
   uint64_t version;
} ddpm_storage;

/* A strided view over a storage (torch7's THTensor). */
typedef struct ddpm_tensor {
   ddpm_storage *storage;
   int64_t offset;                  /* in elements */
   int     ndim;                    /* 0 = scalar */
   int64_t size[DDPM_MAX_DIMS];
   int64_t stride[DDPM_MAX_DIMS];   /* in elements */
   int     refcount;
} ddpm_tensor;

/* Which of a model's two flat buffers a view shows. */
typedef enum { DDPM_PARAMS = 0, DDPM_GRADS = 1 } ddpm_buffer;

/* New zero-filled contiguous tensor; NULL + message on bad sizes or OOM. */
ddpm_tensor *ddpm_tensor_new(int ndim, const int64_t *size);
ddpm_tensor *ddpm_tensor_new_1d(int64_t n);
ddpm_tensor *ddpm_tensor_new_4d(int64_t n, int64_t c, int64_t h, int64_t w);
/* A new view sharing t's storage (retains it). */
ddpm_tensor *ddpm_tensor_view_of(const ddpm_tensor *t);
void ddpm_tensor_retain(ddpm_tensor *t);
void ddpm_tensor_release(ddpm_tensor *t);     /* NULL is fine */

int64_t ddpm_tensor_numel(const ddpm_tensor *t);
int     ddpm_tensor_is_contiguous(const ddpm_tensor *t);
/* storage->data + offset; counts as a write (storage->version + 1), since
   the caller may write through it. */
float  *ddpm_tensor_data(const ddpm_tensor *t);
/* Counts a write to t's storage that did not go through the calls above
   (storage->version + 1); the Lua bindings call it for every tensor they
   are given. Safe from several threads. */
void    ddpm_tensor_touch(const ddpm_tensor *t);
/* "[8,3,32,32]" into buf (returns buf). */
char   *ddpm_tensor_shape_str(const ddpm_tensor *t, char *buf, size_t len);
int     ddpm_tensor_same_shape(const ddpm_tensor *a, const ddpm_tensor *b);

/* Views (modify t in place; storage is kept). */
int ddpm_tensor_reshape(ddpm_tensor *t, int ndim, const int64_t *size); /* t contiguous */
int ddpm_tensor_narrow(ddpm_tensor *t, int dim, int64_t start, int64_t len);
int ddpm_tensor_select(ddpm_tensor *t, int dim, int64_t index);          /* drops dim */
int ddpm_tensor_transpose(ddpm_tensor *t, int d0, int d1);

/* New contiguous copy. */
ddpm_tensor *ddpm_tensor_clone(const ddpm_tensor *t);
/* dst <- src elementwise (same numel; any strides). */
int  ddpm_tensor_copy(ddpm_tensor *dst, const ddpm_tensor *src);
void ddpm_tensor_fill(ddpm_tensor *t, float v);
/* Flat index (0-based, row-major over t's shape) -> element pointer. */
float *ddpm_tensor_ptr(const ddpm_tensor *t, const int64_t *index);

/* Elementwise: out = a op b, all the same shape (out may alias a or b). */
enum { DDPM_OP_ADD, DDPM_OP_SUB, DDPM_OP_MUL, DDPM_OP_DIV };
int ddpm_tensor_binop(ddpm_tensor *out, const ddpm_tensor *a, const ddpm_tensor *b, int op);
/* Which side of the op the scalar stands on. */
typedef enum { DDPM_SCALAR_RIGHT = 0, DDPM_SCALAR_LEFT = 1 } ddpm_scalar_side;
/* out = a op s (DDPM_SCALAR_RIGHT) or s op a (DDPM_SCALAR_LEFT); out and a
   the same shape (DDPM_ESHAPE otherwise; out may alias a). */
int ddpm_tensor_scalarop(ddpm_tensor *out, const ddpm_tensor *a, double s, int op,
                         ddpm_scalar_side side);
/* Elementwise maps, out = f(a), out and a the same shape (DDPM_ESHAPE
   otherwise; out may alias a): |a|; a clamped to [lo, hi] (DDPM_EINVAL when
   lo > hi); a as an 8-bit image stores it, clamped to [-1, 1] and rounded to
   the nearest of the levels k / 127.5 - 1 (the PNG writer's rule; NaN reads
   as 0). */
int ddpm_tensor_abs(ddpm_tensor *out, const ddpm_tensor *a);
int ddpm_tensor_clamp(ddpm_tensor *out, const ddpm_tensor *a, float lo, float hi);
int ddpm_tensor_to_8bit(ddpm_tensor *out, const ddpm_tensor *a);
/* 1 when a and b have the same shape and bit-identical values (NaNs compare
   by their bits), else 0. */
int ddpm_tensor_equal(const ddpm_tensor *a, const ddpm_tensor *b);
/* max |a - b| over the elements, differences taken in float32; NaN when one
   is NaN, or (with DDPM_ESHAPE's message set) when the shapes differ. */
double ddpm_tensor_max_abs_diff(const ddpm_tensor *a, const ddpm_tensor *b);
/* Reductions over all elements, in double. */
double ddpm_tensor_sum(const ddpm_tensor *t);
double ddpm_tensor_min(const ddpm_tensor *t);
double ddpm_tensor_max(const ddpm_tensor *t);

/* ------------------------------------------------------------------ rng */

/* Counter-based (Philox4x32-10): value i of a stream depends only on (seed,
   counter + i), never on the thread count. The whole state is two words. */
typedef struct ddpm_rng {
   uint64_t seed;
   uint64_t counter;   /* next unused 32-bit draw index */
} ddpm_rng;

void     ddpm_rng_init(ddpm_rng *r, uint64_t seed);
/* One Philox block: 4 x uint32 from (key, 128-bit counter given as two u64). */
void     ddpm_philox4x32(uint32_t out[4], uint64_t key, uint64_t ctr_lo, uint64_t ctr_hi);
/* Standard normals (Box-Muller on pairs of draws); advances counter by 2n. */
void     ddpm_rng_normal(ddpm_rng *r, float *out, int64_t n);
/* Uniform [0,1) floats; advances counter by n. */
void     ddpm_rng_uniform(ddpm_rng *r, float *out, int64_t n);
/* Integer uniform in [0, n) (n >= 1), unbiased. */
uint32_t ddpm_rng_below(ddpm_rng *r, uint32_t n);
/* Stateless helpers used by kernels: the u32 / uniform at absolute index i. */
uint32_t ddpm_rng_u32_at(uint64_t seed, uint64_t i);
float    ddpm_rng_uniform_at(uint64_t seed, uint64_t i);
/* splitmix64's output function, a bijection that scatters the bits of z. */
uint64_t ddpm_splitmix64(uint64_t z);
/* An independent seed for stream `stream` of a run's seed (noise, timesteps,
   dropout, flips: one seed gives separate streams), by splitmix64. */
uint64_t ddpm_rng_mix_seed(uint64_t seed, uint64_t stream);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_CORE_H */
