/*
 * kernels.h — private kernels of the runtime: the fused and overwrite-mode
 * variants the U-Net (unet_run.c) runs on, next to the plain public ones of
 * ddpm.h. Not part of the public API: the shapes are trusted, nothing is
 * checked, and the signatures may change with the U-Net.
 *
 * Conventions as in ddpm.h (NCHW float32, outputs first), with one
 * difference: where a kernel takes an `accumulate` flag, 0 means the first
 * write overwrites (no zero-fill needed before it) and 1 means +=.
 */
#ifndef DDPM_KERNELS_H
#define DDPM_KERNELS_H

#include "ddpm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------ threads */

/* omp_get_max_threads(), omp_get_thread_num() and omp_get_num_threads(): 1,
   0 and 1 without OpenMP. */
static inline int ddpm_omp_max_threads(void)
{
#ifdef _OPENMP
   return omp_get_max_threads();
#else
   return 1;
#endif
}

static inline int ddpm_omp_thread_num(void)
{
#ifdef _OPENMP
   return omp_get_thread_num();
#else
   return 0;
#endif
}

static inline int ddpm_omp_num_threads(void)
{
#ifdef _OPENMP
   return omp_get_num_threads();
#else
   return 1;
#endif
}

/* 1 when a parallel region here would run on more than one thread: cond,
   and not inside another region. A nested region runs on one thread anyway,
   and setting it up is not free: ~2 us and futex calls each (an `if (0)`
   region's too), thousands per training step where each image's products
   run in a thread of their own. */
static inline int ddpm_par(int cond)
{
#ifdef _OPENMP
   return cond && omp_get_max_threads() > 1 && !omp_in_parallel();
#else
   (void)cond;
   return 0;
#endif
}

/* for (i = 0; i < n; i++) body, the iterations independent: in a parallel
   region of its own (static schedule) when ddpm_par(cond), else right here
   with no region at all. */
#define DDPM_PAR_FOR(cond, n, i, ...)                                    \
   do {                                                                  \
      const int64_t n_ = (n);                                            \
      if (ddpm_par(cond)) {                                              \
         _Pragma("omp parallel for schedule(static)")                    \
         for (int64_t i = 0; i < n_; i++) { __VA_ARGS__; }               \
      } else {                                                           \
         for (int64_t i = 0; i < n_; i++) { __VA_ARGS__; }               \
      }                                                                  \
   } while (0)

/* ------------------------------------------------------------ memory (tensor.c) */

/* A 64-byte aligned block for free(); one of 2 MB or more is aligned to 2 MB
   and asked to be backed by transparent huge pages (madvise; where the
   kernel says "madvise" it gives them only when asked), so that streaming
   the U-Net's weights, filters and activations does not walk a page table
   every 4 KB. NULL when out of memory. */
void *ddpm_big_alloc(size_t bytes);

/* ------------------------------------------------------------ epilogue */

/* What a convolution adds to its product before storing it:
   out[n,oc,p] = conv + bias[oc] + bias_nc[n,oc] + add[n,oc,p]; NULL terms are
   skipped. add may equal out (then the convolution accumulates into out). */
typedef struct ddpm_conv_epi {
   const float *bias;      /* [OC] */
   const float *bias_nc;   /* [N, OC]: per image and channel (the time embedding) */
   const float *add;       /* [N, OC, OH, OW] (a residual) */
} ddpm_conv_epi;

/* ------------------------------------------------------------ gemm.c */

/* Row-major C[M,N] = alpha op(A) op(B) + beta C (op = transpose if t != 0),
   on the runtime's micro-kernel; beta == 0 does not read C. work holds
   ddpm_gemm_fast_work_floats(tb, N, K) floats. Threads itself only when
   called outside a parallel region with enough work; each element is summed
   in k order (in blocks added to the running sum), so the bits depend on K
   alone, not on threads or on the other rows and columns. */
size_t ddpm_gemm_fast_work_floats(int tb, int N, int K);
void ddpm_gemm_fast(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, float *work);

/* Work space for ddpm_gemm_fast, one region of `per` floats per thread (by
   omp_get_thread_num(), n of them). bf16: multiply in bfloat16
   (ddpm_gemm_bf16, bf16.h) where a region is big enough; the caller has
   checked ddpm_bf16_available(). */
typedef struct ddpm_gemm_ws { float *base; size_t per; int n; int bf16; } ddpm_gemm_ws;
/* The calling thread's region, or NULL (ws NULL or no region for it). */
float *ddpm_gemm_ws_get(const ddpm_gemm_ws *ws);
/* ddpm_gemm_fast in the calling thread's region when there is one big
   enough, else ddpm_gemm (OpenBLAS); with ws->bf16, ddpm_gemm_bf16 first
   when the product is big enough to pay for the packing. ws may be NULL. */
void ddpm_gemm_ws_run(const ddpm_gemm_ws *ws, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc);
/* ddpm_gemm_ws_run for C = A B + beta C (no transposes, alpha 1) whose
   columns come in units of `unit` (the images of an im2col matrix): which
   GEMM runs is decided on one unit's product, and BLAS, whose kernels take
   other paths for other column counts, gets one unit per call, so that a
   column's result does not depend on how many units come with it (an
   image's, on the batch). */
void ddpm_gemm_ws_run_units(const ddpm_gemm_ws *ws, int M, int N, int K, const float *A, int lda,
                            const float *B, int ldb, float beta, float *C, int ldc, int unit);

/* ------------------------------------------------------------ conv.c */

/* ddpm_conv2d_forward with an epilogue (bias inside e; e may be NULL); ws
   (may be NULL) lends the products ddpm_conv2d_gemm_work_floats(s) floats
   per thread for the runtime's GEMM. */
void ddpm_conv2d_forward_epi(float *out, float *scratch, const float *in, const float *weight,
                             const ddpm_conv_epi *e, const ddpm_conv2d_shape *s,
                             const ddpm_gemm_ws *ws);
/* ddpm_conv2d_backward where din is overwritten when din_accumulate == 0;
   dweight and dbias accumulate as always. */
void ddpm_conv2d_backward_ex(float *din, int din_accumulate, float *dweight, float *dbias,
                             float *scratch, const float *dout, const float *in,
                             const float *weight, const ddpm_conv2d_shape *s,
                             const ddpm_gemm_ws *ws);
size_t ddpm_conv2d_gemm_work_floats(const ddpm_conv2d_shape *s);

/* ------------------------------------------------------------ conv_thin.c */

/* 3x3 stride-1 "same" convolutions with at most THIN_MAX_C channels on one
   side (the U-Net's first and last layers), direct: conv.c sends them here
   (no scratch). The bits depend neither on threads nor on the batch. */
#define THIN_MAX_C 3
int ddpm_conv_thin(const ddpm_conv2d_shape *s);
void ddpm_conv_thin_forward(float *out, const float *in, const float *weight,
                            const ddpm_conv_epi *e, const ddpm_conv2d_shape *s);
/* din (+)= the input gradient (din_accumulate), dweight += the weight
   gradient; either may be NULL. */
void ddpm_conv_thin_backward(float *din, int din_accumulate, float *dweight, const float *dout,
                             const float *in, const float *weight, const ddpm_conv2d_shape *s);

/* ------------------------------------------------------------ winograd.c */

/* 3x3, stride 1, zero padding 1 ("same") convolution by Winograd's F(4x4,3x3):
   in [N,C,H,W], weight [OC,C,3,3], out [N,OC,H,W]; any H, W >= 1. Results
   differ from the direct sum by rounding only (see winograd.c for the size
   of it). The scratch covers the forward only, or (backward != 0) all three,
   for up to `threads` threads; the kernels take its size and use no more
   threads than it serves. The forward and the input gradient give the same
   bits for any thread count, the weight gradient for a fixed one. */
size_t ddpm_wino_scratch_floats(int N, int C, int OC, int H, int W, int backward, int threads);
/* 1 when Winograd is the faster way for images of H x W (enough 4x4 tiles
   to fill its GEMM at a batch of 8), else 0: im2col + GEMM is. The same
   whatever the batch, so that an image's result does not depend on it (see
   winograd.c). */
int ddpm_wino_pays(int H, int W);
void ddpm_wino_forward(float *out, float *scratch, size_t nscratch, const float *in,
                       const float *weight, const ddpm_conv_epi *e, int N, int C, int H, int W,
                       int OC);
/* din (+)= conv_transpose(dout, weight): the input gradient. */
void ddpm_wino_backward_data(float *din, int accumulate, float *scratch, size_t nscratch,
                             const float *dout, const float *weight, int N, int C, int H, int W,
                             int OC);
/* dweight [OC,C,3,3] += the weight gradient, and dbias [OC] += the bias's
   (sums of dout over images and positions, from the same transform of
   dout) when dbias is not NULL. */
void ddpm_wino_backward_weight(float *dweight, float *dbias, float *scratch, size_t nscratch,
                               const float *dout, const float *in, int N, int C, int H, int W,
                               int OC);

/* dbias [OC] += sum of dout [N,OC,HW] over images and positions (double per channel). */
void ddpm_conv_bias_backward(float *dbias, const float *dout, int N, int OC, int64_t HW);

/* ------------------------------------------------------------ norm.c */

/* Inverted dropout of a GroupNorm pass: rate p (0 = none) and the masks of
   ddpm_dropout_forward under seed at element index ((first + n) * C + c) *
   HW + k: first is the index of the batch's first image in a larger batch
   (a data-parallel rank's share), so each image's mask does not depend on
   how the batch was split. DDPM_NO_DROPOUT: none. */
typedef struct ddpm_dropout {
   float p;
   uint64_t seed;
   uint64_t first;
} ddpm_dropout;
#define DDPM_NO_DROPOUT ((ddpm_dropout){0.0f, 0, 0})

/* Where ddpm_gn_act_forward's statistics come from: computed from the input
   and saved, or read back from an earlier forward (a recomputation). */
typedef enum ddpm_gn_stats { DDPM_GN_COMPUTE = 0, DDPM_GN_REUSE = 1 } ddpm_gn_stats;
/* The activation that follows a GroupNorm. */
typedef enum ddpm_act { DDPM_ACT_NONE = 0, DDPM_ACT_SILU = 1 } ddpm_act;
/* How a kernel's output meets what is already there (the `accumulate`
   flags of this header): overwritten, or added to. */
typedef enum ddpm_write { DDPM_OVERWRITE = 0, DDPM_ACCUMULATE = 1 } ddpm_write;

/* GroupNorm, then the activation act, then inverted dropout (see
   ddpm_dropout) when drop.p > 0: out = drop(act(gn(in))). With
   DDPM_GN_COMPUTE the statistics are computed and saved into mean [N,G,2]
   (the mean as float hi + lo) and rstd [N,G]; DDPM_GN_REUSE reads them from
   there instead: the output depends on the saved floats only, so a
   recomputation in backward gives the forward's exact bits. */
void ddpm_gn_act_forward(float *out, float *mean, float *rstd, ddpm_gn_stats stats,
                         const float *in, const float *gamma, const float *beta, int N, int C,
                         int HW, int G, float eps, ddpm_act act, ddpm_dropout drop);
/* Backward of ddpm_gn_act_forward: din = (DDPM_ACCUMULATE ? din : 0) + add + d in
   (add [N,C,HW] optional: a residual's gradient folded into the same pass);
   dgamma, dbeta accumulate; dsum [N,C] (optional) gets the per-image,
   per-channel sums of d in (the gradient of a per-channel add before the
   norm). work [N,C,HW] holds the gradient before the norm; it may equal dout
   (then dout is destroyed) or, with DDPM_OVERWRITE and add == NULL, din. */
void ddpm_gn_act_backward(float *din, ddpm_write mode, float *dgamma, float *dbeta, float *dsum,
                          float *work, const float *dout, const float *in, const float *mean,
                          const float *rstd, const float *gamma, const float *beta,
                          const float *add, int N, int C, int HW, int G, ddpm_act act,
                          ddpm_dropout drop);

/* ------------------------------------------------------------ act.c */

/* keep[k] = dropout scale (1/(1-p)) or 0 for elements i0 .. i0+n-1 of the
   stream of ddpm_dropout_forward with this seed. */
void ddpm_dropout_keep(float *keep, uint64_t i0, int n, float p, uint64_t seed);

/* ------------------------------------------------------------ attention.c */

/* ddpm_attention_forward with the residual folded in: out = x + Wo o + bo
   (x may be NULL). q, k, v, att, o are written in full (the caller keeps
   them for backward or passes scratch). ws (may be NULL): GEMM work space of
   ddpm_attention_gemm_work_floats(C, P) floats per thread. */
void ddpm_attention_forward_res(float *out, float *q, float *k, float *v, float *att, float *o,
                                const float *h, const float *x,
                                const float *wq, const float *bq, const float *wk,
                                const float *bk, const float *wv, const float *bv,
                                const float *wo, const float *bo, int N, int C, int P,
                                const ddpm_gemm_ws *ws);
size_t ddpm_attention_gemm_work_floats(int C, int P);
/* ddpm_attention_backward where dh is overwritten when dh_accumulate == 0;
   the scratch is N * ddpm_attention_scratch_floats(C, P) floats (the images
   are processed side by side). */
void ddpm_attention_backward_ex(float *dh, int dh_accumulate,
                                float *dwq, float *dbq, float *dwk, float *dbk,
                                float *dwv, float *dbv, float *dwo, float *dbo,
                                float *scratch, const float *dout, const float *h,
                                const float *q, const float *k, const float *v,
                                const float *att, const float *o,
                                const float *wq, const float *wk, const float *wv,
                                const float *wo, int N, int C, int P,
                                const ddpm_gemm_ws *ws);

/* ------------------------------------------------------------ upsample.c */

void ddpm_upsample2x_backward_ex(float *din, int accumulate, const float *dout,
                                 int N, int C, int H, int W);

#endif /* DDPM_KERNELS_H */
