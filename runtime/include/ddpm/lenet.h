/*
 * ddpm/lenet.h — a LeNet-5-style classifier for 28x28 grayscale images in [-1, 1]:
 * the feature extractor behind FD-LeNet (docs/fd_lenet.md), trained by
 * ddpmlua itself on Fashion-MNIST.
 *
 *   x [N,1,28,28]
 *   conv1 5x5 1->6 pad 2, ReLU, max-pool 2x2     -> [N,6,14,14]
 *   conv2 5x5 6->16,      ReLU, max-pool 2x2     -> [N,16,5,5] = [N,400]
 *   fc1 400->120, ReLU
 *   fc2 120->84                                  -> features [N,84] (pre-ReLU)
 *   ReLU, fc3 84->10                             -> logits [N,10]
 *
 * 61,706 parameters in one flat float buffer with PyTorch-style names
 * (conv1.weight, ..., fc3.bias); gradients in a second buffer of the same
 * layout, so ddpm_adam_step trains it in one loop. Initialisation is PyTorch's
 * default for Conv2d/Linear (weights and biases uniform in +-1/sqrt(fan_in)),
 * drawn from a Philox stream of the seed: the same seed and thread count give
 * the same bits.
 *
 * Not here: dropout, batch norm, other input sizes, the training loop (Lua:
 * lib/ddpm/metrics.lua). The "features" are the fc2 outputs before their
 * ReLU: they are less degenerate (no mass at 0) than the post-ReLU values.
 */
#ifndef DDPM_LENET_H
#define DDPM_LENET_H

#include <stddef.h>
#include <stdint.h>

#include "ddpm/core.h"
#include "ddpm/safetensors.h"
#include "ddpm/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DDPM_LENET_SIZE     28
#define DDPM_LENET_FEATURES 84
#define DDPM_LENET_CLASSES  10
#define DDPM_LENET_TENSORS  10

/* ------------------------------------------------------------------ kernels */
/* Raw-pointer kernels; shapes are trusted (the model checks them). */

/* ReLU y = max(x, 0). Backward: din += dout where in > 0 (0 at x = 0). */
void ddpm_relu_forward(float *out, const float *in, int64_t n);
void ddpm_relu_backward(float *din, const float *dout, const float *in, int64_t n);

/* Max pooling, 2x2 windows, stride 2: in [N,C,H,W] (H, W even) -> out
   [N,C,H/2,W/2]. Backward recomputes each window's arg max from in (the first
   maximum in row-major order wins a tie) and adds dout there: din +=. */
void ddpm_maxpool2x2_forward(float *out, const float *in, int N, int C, int H, int W);
void ddpm_maxpool2x2_backward(float *din, const float *dout, const float *in,
                              int N, int C, int H, int W);

/* Softmax cross-entropy of logits [N,K] against labels [N] (0..K-1), mean
   over the batch, computed in double with the max subtracted. dlogits (may be
   NULL) gets the gradient of the mean, (softmax - onehot)/N (written, not
   accumulated). *correct (may be NULL) gets the number of rows whose arg max
   (first one on ties) is the label. Labels are trusted. */
double ddpm_softmax_xent(float *dlogits, int *correct, const float *logits,
                         const int *labels, int N, int K);

/* ------------------------------------------------------------------ model */

typedef struct ddpm_lenet ddpm_lenet;

/* New model with PyTorch's default initialisation from a Philox stream keyed
   by seed. NULL + message when out of memory. */
ddpm_lenet *ddpm_lenet_new(uint64_t seed);
void ddpm_lenet_free(ddpm_lenet *m);   /* NULL is fine */

size_t ddpm_lenet_num_params(const ddpm_lenet *m);           /* 61706 */
int    ddpm_lenet_num_tensors(const ddpm_lenet *m);          /* 10 */
const ddpm_param *ddpm_lenet_param(const ddpm_lenet *m, int i);  /* NULL if out of range */
int    ddpm_lenet_find_param(const ddpm_lenet *m, const char *name); /* -1 if absent */
float *ddpm_lenet_params(ddpm_lenet *m);
float *ddpm_lenet_grads(ddpm_lenet *m);
void   ddpm_lenet_zero_grad(ddpm_lenet *m);
/* The flat parameter (DDPM_PARAMS) or gradient (DDPM_GRADS) buffer as a new 1-D
   tensor reference; it retains the storage, so it outlives the model. */
ddpm_tensor *ddpm_lenet_flat_tensor(ddpm_lenet *m, ddpm_buffer which);
/* Same, viewing parameter i in its own shape. NULL + message for a bad i. */
ddpm_tensor *ddpm_lenet_param_tensor(ddpm_lenet *m, int i, ddpm_buffer which);

/* Training forward: x [N,1,28,28] -> logits [N,10] and features [N,84]
   (either may be NULL). Keeps every activation for ddpm_lenet_backward,
   in buffers sized for N (grown as needed, kept for reuse). N >= 1. */
int ddpm_lenet_forward(ddpm_lenet *m, float *logits, float *features, const float *x, int N);
/* dlogits [N,10] for the last ddpm_lenet_forward's batch; accumulates into
   the gradient buffer. DDPM_EINVAL when there is no such forward (none yet,
   or ddpm_lenet_predict ran since). */
int ddpm_lenet_backward(ddpm_lenet *m, const float *dlogits);
/* Forward + softmax cross-entropy + backward in one call: labels [N] in
   0..9 (checked). *loss (mean, may be NULL), *correct (may be NULL).
   Gradients accumulate; zeroing them is the caller's. */
int ddpm_lenet_train_step(ddpm_lenet *m, double *loss, int *correct, const float *x,
                          const int *labels, int N);
/* Inference over any N, in chunks of DDPM_LENET_CHUNK images (so memory stays
   bounded): logits [N,10], features [N,84], either may be NULL. A chunk's
   result does not depend on the other images. Invalidates the activations
   that ddpm_lenet_backward needs. */
#define DDPM_LENET_CHUNK 256
int ddpm_lenet_predict(ddpm_lenet *m, float *logits, float *features, const float *x, int64_t N);
/* Test accuracy and loss: ddpm_lenet_predict into logits [N,10] (the
   caller's scratch), then *correct = the images whose largest logit is
   their label, *loss = the mean softmax cross-entropy. labels[N] in 0..9. */
int ddpm_lenet_evaluate(ddpm_lenet *m, int64_t *correct, double *loss, float *logits,
                        const float *x, const int *labels, int64_t N);

/* SHA-256 of the parameters as they are stored in a file: the float32
   little-endian bytes of each tensor in the order above. 64 hex + NUL. */
void ddpm_lenet_params_sha256(const ddpm_lenet *m, char hex[65]);

/* Saves the ten tensors under their names with metadata "format" = "pt",
   "ddpmlua.model" = "lenet5", "ddpmlua.params_sha256" and the caller's
   meta_n key/value pairs (which must not repeat those keys). Atomic. */
int ddpm_lenet_save(const ddpm_lenet *m, const char *path, int meta_n,
                    const char *const *meta_keys, const char *const *meta_vals);
/* Loads every parameter from an open safetensors file: each of the ten names
   must be present with its shape, and no other tensor may be in the file.
   Nothing changes unless everything checks out. */
int ddpm_lenet_load_st(ddpm_lenet *m, const ddpm_st_file *f);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_LENET_H */
