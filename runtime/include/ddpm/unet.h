/*
 * ddpm/unet.h — the DDPM U-Net: config, construction, named parameters in
 * one flat buffer, forward/backward with status codes, save and load.
 * Its internals (blocks, activation plan) are runtime/unet_internal.h.
 */
#ifndef DDPM_UNET_H
#define DDPM_UNET_H

#include <stddef.h>
#include <stdint.h>
#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

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
/* Flat [num_params]. Getting the pointer counts as changing the weights
   (see ddpm_storage.version): a bfloat16 forward after it transforms its
   filters again. Writes through a pointer got before a forward must get it
   again (or call ddpm_tensor_touch on ddpm_unet_flat_tensor's view) before
   the next forward sees them. */
float *ddpm_unet_params(ddpm_unet *m);
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
/* A new tensor viewing parameter i (DDPM_PARAMS) or its gradient (DDPM_GRADS), in
   the parameter's shape. It retains the flat buffer, so it stays valid after
   ddpm_unet_free. NULL + message for a bad index. */
ddpm_tensor *ddpm_unet_param_tensor(ddpm_unet *m, int i, ddpm_buffer which);
/* The flat parameter / gradient buffer as a 1-D tensor view (new reference). */
ddpm_tensor *ddpm_unet_flat_tensor(ddpm_unet *m, ddpm_buffer which);

/* Saves every parameter under its diffusers name, with the config as JSON in
   __metadata__["ddpmlua.unet_config"]. Atomic (see ddpm_st_write). */
int ddpm_unet_save(ddpm_unet *m, const char *path);
/* Loads parameters from an open safetensors file. Names are looked up as
   prefix + name (prefix may be NULL); attention tensors are also found under
   the older diffusers names (query, key, value, proj_attn). Every parameter
   must be present with a matching shape (size-1 trailing dims are ignored, so
   [C,C,1,1] fits [C,C]); with DDPM_LOAD_STRICT, a tensor of the file (under the
   prefix) that the model does not use is an error too. Nothing is changed
   unless everything checks out. */
typedef enum { DDPM_LOAD_LENIENT = 0, DDPM_LOAD_STRICT = 1 } ddpm_load_mode;
int ddpm_unet_load_st(ddpm_unet *m, const ddpm_st_file *f, const char *prefix,
                      ddpm_load_mode mode);
/* Config as compact JSON (keys ch, ch_mult, num_res_blocks, attn_resolutions,
   dropout, in_ch, out_ch, resolution, groups, eps) into buf. */
int ddpm_unet_config_to_json(const ddpm_unet_config *c, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_UNET_H */
