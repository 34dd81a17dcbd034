/*
 * ddpm.h — the public C API of the ddpmlua runtime.
 *
 * Pure C11: tensors, the U-Net's layers (forward and backward), the U-Net
 * itself, a counter-based RNG and safetensors I/O. No Lua header appears here
 * or in any runtime/ file, so every op is testable from plain C.
 *
 * Conventions
 *   - float32 everywhere inside; NCHW layout; N batch, C channels, H, W, T.
 *   - Fallible calls return int status (DDPM_OK == 0) and leave a message in
 *     ddpm_errmsg(); constructors return NULL and set the message.
 *   - Argument order: outputs, saved buffers, inputs, weights, bias, scalars,
 *     sizes. Backward functions ACCUMULATE (+=) into every gradient they are
 *     given; a NULL gradient pointer means "not needed".
 *   - The runtime never prints, exits or aborts on bad input.
 *
 * Example
 *   ddpm_unet_config cfg = ddpm_unet_config_cifar10();
 *   ddpm_unet *m = ddpm_unet_new(&cfg, 42);
 *   if (!m) fprintf(stderr, "%s\n", ddpm_errmsg());
 *   ddpm_unet_forward(m, out, x, t, N, 32, 32);
 */
#ifndef DDPM_H
#define DDPM_H

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

/* Refcounted, 64-byte aligned float storage. */
typedef struct ddpm_storage {
   float  *data;
   int64_t numel;
   int     refcount;
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
float  *ddpm_tensor_data(const ddpm_tensor *t); /* storage->data + offset */
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
/* out = a op s (scalar on the right) or s op a when scalar_left. */
int ddpm_tensor_scalarop(ddpm_tensor *out, const ddpm_tensor *a, double s, int op, int scalar_left);
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

/* ------------------------------------------------------------------ gemm */

/* Row-major C[M,N] = alpha * op(A) op(B) + beta * C, op = transpose if t != 0.
   lda/ldb/ldc are the row strides of the stored matrices. The only caller of
   cblas_sgemm. */
void ddpm_gemm(int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);

/* ------------------------------------------------------------------ layers */
/* Raw-pointer kernels (llm.c style). Shapes are trusted: the U-Net and the
   bindings check them before calling. */

/* conv2d. in [N,C,H,W], weight [OC,C,KH,KW], bias [OC] or NULL,
   out [N,OC,OH,OW]. Input row oy*stride - pad_t + ky (likewise columns) is
   read; anything outside [0,H) x [0,W) is zero. So symmetric "same" 3x3 is
   pad_t = pad_l = 1 with OH = H; the official downsampling (pad bottom/right
   only) is stride 2, pad_t = pad_l = 0, OH = H/2. */
typedef struct ddpm_conv2d_shape {
   int N, C, H, W;     /* input */
   int OC, KH, KW;     /* weight */
   int stride, pad_t, pad_l;
   int OH, OW;         /* output */
} ddpm_conv2d_shape;

/* Fills OH/OW from symmetric-style padding: OH = (H + pad_t + pad_b - KH)/stride + 1. */
ddpm_conv2d_shape ddpm_conv2d_make(int N, int C, int H, int W, int OC, int K,
                                   int stride, int pad_t, int pad_l, int pad_b, int pad_r);
/* Floats of scratch that forward and backward need. */
size_t ddpm_conv2d_scratch_floats(const ddpm_conv2d_shape *s);
void ddpm_conv2d_forward(float *out, float *scratch, const float *in,
                         const float *weight, const float *bias,
                         const ddpm_conv2d_shape *s);
/* din, dweight, dbias: accumulate; any may be NULL. */
void ddpm_conv2d_backward(float *din, float *dweight, float *dbias, float *scratch,
                          const float *dout, const float *in, const float *weight,
                          const ddpm_conv2d_shape *s);

/* GroupNorm over [N,C,HW] with G groups (C % G == 0); mean/rstd [N,G] saved.
   y = (x - mean) * rstd * gamma[c] + beta[c], biased variance, rstd = 1/sqrt(var+eps). */
void ddpm_groupnorm_forward(float *out, float *mean, float *rstd, const float *in,
                            const float *gamma, const float *beta,
                            int N, int C, int HW, int G, float eps);
void ddpm_groupnorm_backward(float *din, float *dgamma, float *dbeta,
                             const float *dout, const float *in,
                             const float *mean, const float *rstd, const float *gamma,
                             int N, int C, int HW, int G);

/* SiLU y = x * sigmoid(x). */
void ddpm_silu_forward(float *out, const float *in, int64_t n);
void ddpm_silu_backward(float *din, const float *dout, const float *in, int64_t n);

/* Linear over rows: in [N,I], weight [O,I], bias [O] or NULL, out [N,O]. */
void ddpm_linear_forward(float *out, const float *in, const float *weight,
                         const float *bias, int N, int I, int O);
void ddpm_linear_backward(float *din, float *dweight, float *dbias, const float *dout,
                          const float *in, const float *weight, int N, int I, int O);

/* Inverted dropout with rate p: keep element i when uniform_at(seed, i) >= p,
   scaling kept values by 1/(1-p). The mask is recomputed in backward from the
   seed, so nothing is stored. p == 0 is a copy. */
void ddpm_dropout_forward(float *out, const float *in, int64_t n, float p, uint64_t seed);
void ddpm_dropout_backward(float *din, const float *dout, int64_t n, float p, uint64_t seed);

/* Nearest-neighbour x2 upsampling: in [N,C,H,W] -> out [N,C,2H,2W]. */
void ddpm_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W);
void ddpm_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W);

/* Sinusoidal timestep embedding (DDPM official): half = dim/2,
   freq_i = exp(-ln(10000) * i / (half - 1)), out[n] = [sin(t*freq), cos(t*freq)]
   (zero-padded if dim is odd). t [N] (floats), out [N,dim]. */
void ddpm_timestep_embedding(float *out, const float *t, int N, int dim);

/* Single-head self-attention core over positions P = H*W, on already
   normalised h [N,C,P]: q,k,v = W h + b (each [N,C,P]); att[n,i,j] =
   softmax_j(<q_i,k_j>/sqrt(C)) [N,P,P]; o = v att^T [N,C,P];
   out = Wo o + bo [N,C,P]. Weights are [C,C] (out, in). The residual add is
   the caller's. q, k, v, att, o are saved for backward. */
void ddpm_attention_forward(float *out, float *q, float *k, float *v, float *att, float *o,
                            const float *h,
                            const float *wq, const float *bq, const float *wk, const float *bk,
                            const float *wv, const float *bv, const float *wo, const float *bo,
                            int N, int C, int P);
/* Scratch: 3*C*P + P*P floats. Gradients accumulate. */
size_t ddpm_attention_scratch_floats(int C, int P);
void ddpm_attention_backward(float *dh,
                             float *dwq, float *dbq, float *dwk, float *dbk,
                             float *dwv, float *dbv, float *dwo, float *dbo,
                             float *scratch, const float *dout, const float *h,
                             const float *q, const float *k, const float *v,
                             const float *att, const float *o,
                             const float *wq, const float *wk, const float *wv, const float *wo,
                             int N, int C, int P);

/* ------------------------------------------------------------------ U-Net */

#define DDPM_UNET_MAX_LEVELS 8

typedef struct ddpm_unet_config {
   int ch;                                 /* base channels (128 for CIFAR-10) */
   int ch_mult[DDPM_UNET_MAX_LEVELS];
   int num_levels;                         /* entries used in ch_mult */
   int num_res_blocks;
   int attn_res[DDPM_UNET_MAX_LEVELS];     /* resolutions that get attention */
   int num_attn_res;
   float dropout;
   int in_ch, out_ch;
   int resolution;                         /* input H = W */
   int groups;                             /* GroupNorm groups (32) */
   float eps;                              /* GroupNorm eps (1e-6) */
} ddpm_unet_config;

ddpm_unet_config ddpm_unet_config_cifar10(void);
/* Checks the config (channels divisible by groups, resolution divisible by
   2^(levels-1), ...). */
int ddpm_unet_config_check(const ddpm_unet_config *cfg);

typedef struct ddpm_unet ddpm_unet;
typedef struct ddpm_st_file ddpm_st_file;   /* see the safetensors section */

/* One named parameter: a view into the flat parameter buffer. */
typedef struct ddpm_param {
   const char *name;                 /* diffusers UNet2DModel key */
   int ndim;
   int64_t shape[4];
   size_t offset;                    /* into params / grads, in floats */
   size_t numel;
} ddpm_param;

/* New model with the official initialisation (fan-avg uniform; scale 1e-10
   for conv2, attention proj_out and conv_out; zero biases), seeded. */
ddpm_unet *ddpm_unet_new(const ddpm_unet_config *cfg, uint64_t seed);
void ddpm_unet_free(ddpm_unet *m);    /* NULL is fine */
const ddpm_unet_config *ddpm_unet_get_config(const ddpm_unet *m);

size_t ddpm_unet_num_params(const ddpm_unet *m);
int    ddpm_unet_num_tensors(const ddpm_unet *m);
const ddpm_param *ddpm_unet_param(const ddpm_unet *m, int i);
/* Index of a name, or -1. */
int    ddpm_unet_find_param(const ddpm_unet *m, const char *name);
float *ddpm_unet_params(ddpm_unet *m);  /* flat [num_params] */
float *ddpm_unet_grads(ddpm_unet *m);   /* flat [num_params] */
void   ddpm_unet_zero_grad(ddpm_unet *m);

/* Dropout on (training) or off (evaluation, the default). */
void ddpm_unet_set_training(ddpm_unet *m, int training);
/* Seed for the next forward's dropout masks (the caller advances it), and
   the index of the batch's first image within the global batch (0 in one
   process; a data-parallel rank's offset), so that each image gets the
   masks it would get in the undivided batch. */
void ddpm_unet_set_dropout_seed(ddpm_unet *m, uint64_t seed, uint64_t first);

/* x [N,in_ch,H,W], t [N] timesteps (floats), out [N,out_ch,H,W].
   H, W must equal the config's resolution... or any size divisible by
   2^(levels-1) with attention applied where the size matches attn_res.
   Keeps the activations for backward when training or grad_enabled. */
int ddpm_unet_forward(ddpm_unet *m, float *out, const float *x, const float *t,
                      int N, int H, int W);
/* When 0, forward keeps no activations beyond what the next layer needs
   (inference); backward then fails. Default 1. */
void ddpm_unet_set_grad_enabled(ddpm_unet *m, int enabled);
/* dout [N,out_ch,H,W] of the last forward; accumulates into grads; writes
   dx [N,in_ch,H,W] when dx != NULL. */
int ddpm_unet_backward(ddpm_unet *m, float *dx, const float *dout);
/* Bytes held for activations and scratch. */
size_t ddpm_unet_workspace_bytes(const ddpm_unet *m);
/* A new tensor viewing parameter i (grad = 0) or its gradient (grad = 1), in
   the parameter's shape. It retains the flat buffer, so it stays valid after
   ddpm_unet_free. NULL + message for a bad index. */
ddpm_tensor *ddpm_unet_param_tensor(ddpm_unet *m, int i, int grad);
/* The flat parameter / gradient buffer as a 1-D tensor view (new reference). */
ddpm_tensor *ddpm_unet_flat_tensor(ddpm_unet *m, int grad);

/* Saves every parameter under its diffusers name, with the config as JSON in
   __metadata__["ddpmlua.unet_config"]. Atomic (see ddpm_st_write). */
int ddpm_unet_save(ddpm_unet *m, const char *path);
/* Loads parameters from an open safetensors file. Names are looked up as
   prefix + name (prefix may be NULL); attention tensors are also found under
   the older diffusers names (query, key, value, proj_attn). Every parameter
   must be present with a matching shape (size-1 trailing dims are ignored, so
   [C,C,1,1] fits [C,C]); with strict != 0, a tensor of the file (under the
   prefix) that the model does not use is an error too. Nothing is changed
   unless everything checks out. */
int ddpm_unet_load_st(ddpm_unet *m, const ddpm_st_file *f, const char *prefix, int strict);
/* Config as compact JSON (keys ch, ch_mult, num_res_blocks, attn_resolutions,
   dropout, in_ch, out_ch, resolution, groups, eps) into buf. */
int ddpm_unet_config_to_json(const ddpm_unet_config *c, char *buf, size_t len);

/* ------------------------------------------------------------------ optimiser */

/* Adam over one flat parameter buffer (llm.c's gpt2_update), in the form of
   TF1's AdamOptimizer that the official DDPM code used: the bias correction
   scales the step and eps is added to sqrt(v) outside it,
      w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
   Moments m and v are tensors so checkpoints and Lua can see them. */
typedef struct ddpm_adam {
   int64_t n;
   ddpm_tensor *m, *v;      /* [n] each */
   int64_t t;               /* steps taken */
   double beta1, beta2, eps, weight_decay;
} ddpm_adam;

ddpm_adam *ddpm_adam_new(int64_t n, double beta1, double beta2, double eps, double weight_decay);
void ddpm_adam_free(ddpm_adam *a);                 /* NULL is fine */
/* One step with learning rate lr (warm-up is the caller's). */
int  ddpm_adam_step(ddpm_adam *a, float *params, const float *grads, double lr);

/* What ddpm_adam_step_ex does with the gradients after reading them. */
typedef enum { DDPM_GRADS_KEEP = 0, DDPM_GRADS_ZERO = 1 } ddpm_grads_after;

/* Work fused into the step's single pass; {0} (or NULL) is a plain step. */
typedef struct ddpm_adam_pass {
   float grad_scale;        /* 0 or 1: none; else the step uses g * grad_scale (clipping,
                               the scaled g is left in grads as ddpm_scale leaves it) */
   float *ema;              /* NULL: none; else ema -= (1 - ema_decay) * (ema - w_new) */
   double ema_decay;        /* in [0, 1] */
   ddpm_grads_after grads;  /* DDPM_GRADS_ZERO: grads are 0 afterwards (the next zero_grad) */
} ddpm_adam_pass;

/* ddpm_adam_step, the clip's scale, ddpm_ema_update and zero_grad in one pass
   over the buffers, with the same bits as those calls in that order. ema has
   the parameters' length. DDPM_EINVAL for a bad lr, scale or decay (nothing
   is changed then). */
int  ddpm_adam_step_ex(ddpm_adam *a, float *params, float *grads, double lr,
                       const ddpm_adam_pass *p);

/* Global L2 norm, accumulated in double over fixed 64Ki blocks, so the value
   is the same for any thread count. */
double ddpm_l2_norm(const float *x, int64_t n);
void   ddpm_scale(float *x, int64_t n, float s);
/* Clips x to global norm max_norm (when max_norm > 0); returns the norm before. */
double ddpm_clip_grad_norm(float *g, int64_t n, double max_norm);
/* Exponential moving average: ema -= (1 - decay) * (ema - w). */
void   ddpm_ema_update(float *ema, const float *w, int64_t n, double decay);
/* 1 when every value is finite. */
int    ddpm_all_finite(const float *x, int64_t n);

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
#endif /* DDPM_H */
