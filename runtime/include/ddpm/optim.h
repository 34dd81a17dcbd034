/*
 * ddpm/optim.h — Adam over one flat parameter buffer, gradient clipping and
 * the exponential moving average of the weights.
 */
#ifndef DDPM_OPTIM_H
#define DDPM_OPTIM_H

#include <stddef.h>
#include <stdint.h>
#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif /* DDPM_OPTIM_H */
