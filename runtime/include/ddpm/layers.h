/*
 * ddpm/layers.h — the U-Net's layers as raw-pointer kernels (llm.c style),
 * forward and backward, and the one GEMM. Shapes are trusted: the U-Net and
 * the bindings check them once above these calls. The kernels' private
 * helpers (fused variants, Winograd, SIMD) are in runtime/kernels.h.
 */
#ifndef DDPM_LAYERS_H
#define DDPM_LAYERS_H

#include <stddef.h>
#include <stdint.h>
#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif /* DDPM_LAYERS_H */
