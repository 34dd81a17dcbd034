/*
 * ddpm/inception.h — the Inception-v3 network that FID and the Inception Score
 * are computed with: the TensorFlow graph of 2015-12-05 as the standard FID
 * code runs it (the pytorch-fid port), inference only, with weights the user
 * supplies (docs/fid.md: how to get and convert them).
 *
 *   x [N,3,H,W] in [0,1]
 *   bilinear resize to 299x299 (half-pixel centres, no antialiasing), 2x - 1
 *   Conv2d_1a_3x3 .. Conv2d_4a_3x3 with two 3x3/2 max pools  -> [N,192,35,35]
 *   Mixed_5b,5c,5d (A), 6a (B), 6b..6e (C)                    -> [N,768,17,17]
 *   Mixed_7a (D), 7b, 7c (E)                                  -> [N,2048,8,8]
 *   global average pool                                       -> features [N,2048]
 *   fc.weight . features (no bias)                            -> logits [N,1008]
 *
 * The FID variant differs from torchvision's Inception-v3 in three places,
 * all reproduced: the 3x3 average pools of the A, C and E blocks exclude the
 * zero padding from their count, and the pool branch of the last E block
 * (Mixed_7c) is a 3x3 max pool. The logits leave out fc.bias because the
 * original Inception Score code takes the softmax of the unbiased product.
 *
 * Every BasicConv2d (convolution without bias, batch norm with eps 1e-3,
 * ReLU) has its batch norm folded into the convolution at load time:
 * w' = w * g / sqrt(v + eps), b' = beta - m * g / sqrt(v + eps).
 *
 * Not here: training, gradients, other Inception variants, the statistics
 * (frechet.h) and reading .npz (npz.h).
 */
#ifndef DDPM_INCEPTION_H
#define DDPM_INCEPTION_H

#include <stdint.h>

#include "ddpm/core.h"
#include "ddpm/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DDPM_INCEPTION_SIZE     299
#define DDPM_INCEPTION_FEATURES 2048
#define DDPM_INCEPTION_CLASSES  1008
#define DDPM_INCEPTION_CONVS    94

typedef struct ddpm_inception ddpm_inception;

/* Loads the network from an open safetensors file with pytorch-fid's tensor
   names (Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_var, ...,
   fc.weight, fc.bias): every one of the 472 tensors must be present with its
   shape and a float dtype, nothing else may be in the file. NULL + a message
   naming the tensor otherwise. */
ddpm_inception *ddpm_inception_load_st(const ddpm_st_file *f);
void ddpm_inception_free(ddpm_inception *m);   /* NULL is fine */

/* features [N,2048] and logits [N,1008] (either may be NULL) of images
   x [N,3,H,W] (float32, contiguous, values in [0,1]; 1 <= H, W <= 4096).
   Images run in parallel, one per thread; an image's result does not depend
   on the others or on the thread count. Polls the interrupt flag between
   images (DDPM_EINTR). DDPM_ENOMEM when the per-thread buffers cannot be
   allocated. */
int ddpm_inception_forward(ddpm_inception *m, float *features, float *logits, const float *x,
                           int N, int H, int W);

/* The pieces, for the layer-by-layer parity test. Stage i maps its input to
   its output for one image:
     0 resize + scale [3,H,W] -> [3,299,299] (H, W given)
     1 Conv2d_1a_3x3  2 Conv2d_2a_3x3  3 Conv2d_2b_3x3  4 max pool
     5 Conv2d_3b_1x1  6 Conv2d_4a_3x3  7 max pool
     8 Mixed_5b 9 Mixed_5c 10 Mixed_5d 11 Mixed_6a 12 Mixed_6b 13 Mixed_6c
     14 Mixed_6d 15 Mixed_6e 16 Mixed_7a 17 Mixed_7b 18 Mixed_7c
     19 average pool -> [2048]   20 logits -> [1008]
   Shapes of each stage's output through ddpm_inception_stage_shape. */
#define DDPM_INCEPTION_STAGES 21
const char *ddpm_inception_stage_name(int stage);
/* Output [C,H,W] of a stage (H, W of the input image for stage 0). */
int ddpm_inception_stage_shape(int stage, int H, int W, int *c, int *h, int *w);
/* out = stage(in) for N images (in [N, input shape], out [N, output shape]). */
int ddpm_inception_stage(ddpm_inception *m, int stage, float *out, const float *in, int N,
                         int H, int W);

/* The Inception Score of logits [N,K] (Salimans et al. 2016, as its
   original code computes it): the images are cut into `splits` consecutive
   parts; in each, exp(mean over images of KL(p(y|x) || p(y))) with p(y|x)
   the softmax of an image's logits and p(y) the split's mean of them; mean
   and std (ddof 0) over the splits. The standard is 10 splits of 50,000.
   DDPM_EINVAL when a split would be empty or a logit is not finite. */
int ddpm_inception_score(double *mean, double *std, const float *logits, int64_t N, int K,
                         int splits);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_INCEPTION_H */
