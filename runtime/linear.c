/*
 * linear.c — the fully connected layer over rows, forward and backward.
 *
 * in [N,I], weight [O,I] (PyTorch Linear's (out, in), which is how the
 * checkpoint stores it), bias [O] or NULL, out [N,O]. The forward's product
 * runs on the runtime's GEMM, the backward's through ddpm_gemm. Not here:
 * shape checks (callers make them), the 1x1 convolutions over NCHW (conv.c)
 * and the attention projections (attention.c).
 */
#include "ddpm.h"
#include "kernels.h"

#include <stdint.h>
#include <stdlib.h>

/* out = in W^T + b. The products run as out^T = W in^T on the runtime's
   GEMM, whose every element is one sum over k in order: a row's result
   does not depend on how many rows come with it. BLAS took other paths
   for other row counts (its kernels for a ragged last block of rows), so
   the U-Net's time embedding, and every sample after it, changed in the
   last bits with the batch size: sampling sharded over MPI ranks must draw
   each sample's bits of one process. */
void ddpm_linear_forward(float *out, const float *in, const float *weight,
                         const float *bias, int N, int I, int O)
{
   if (N <= 0 || O <= 0) return;
   if (I > 0) {
      const size_t nt = (size_t)O * N, nw = ddpm_gemm_fast_work_floats(1, N, I);
      float *t = malloc((nt + nw) * sizeof *t);
      if (t) {
         ddpm_gemm_fast(0, 1, O, N, I, 1.0f, weight, I, in, I, 0.0f, t, N, t + nt);
         for (int n = 0; n < N; n++) {
            float *row = out + (int64_t)n * O;
            for (int o = 0; o < O; o++) row[o] = (bias ? bias[o] : 0.0f) + t[(int64_t)o * N + n];
         }
         free(t);
         return;
      }
   }
   /* Rows start as the bias so the GEMM can add onto them (beta = 1). */
   for (int n = 0; n < N; n++) {
      float *row = out + (int64_t)n * O;
      for (int o = 0; o < O; o++) row[o] = bias ? bias[o] : 0.0f;
   }
   /* BLAS rejects a zero leading dimension, and there is no product to add;
      out of memory for the work space, BLAS does it without one */
   if (I <= 0) return;
   ddpm_gemm(0, 1, N, O, I, 1.0f, in, I, weight, I, 1.0f, out, O);
}

/* din += dout W, dW += dout^T in, db += column sums of dout. */
void ddpm_linear_backward(float *din, float *dweight, float *dbias, const float *dout,
                          const float *in, const float *weight, int N, int I, int O)
{
   if (N <= 0 || O <= 0) return;
   if (din && I > 0)
      ddpm_gemm(0, 0, N, I, O, 1.0f, dout, O, weight, I, 1.0f, din, I);
   if (dweight && I > 0)
      ddpm_gemm(1, 0, O, I, N, 1.0f, dout, O, in, I, 1.0f, dweight, I);
   if (dbias) {
      /* Summed in double over the batch, then added once. */
      for (int o = 0; o < O; o++) {
         double s = 0;
         for (int n = 0; n < N; n++) s += dout[(int64_t)n * O + o];
         dbias[o] += (float)s;
      }
   }
}
