/*
 * unet_internal.h — the U-Net's private structures, shared by unet.c (topology
 * and parameters) and unet_run.c (activation plan, forward, backward).
 */
#ifndef DDPM_UNET_INTERNAL_H
#define DDPM_UNET_INTERNAL_H

#include "ddpm.h"

enum { N_CONV, N_RES, N_ATTN, N_UPSAMPLE, N_CONCAT, N_OUTNORM };

typedef struct node {
   int type;
   int in, in2;          /* producer nodes; -1 is the model input x */
   int C, C2, Cout;      /* input channels (in), channels of in2 (concat), output */
   int lvl;              /* input resolution = H0 >> lvl */
   int stride;           /* conv: 2 = the official downsampling */
   int p0;               /* first parameter index of the node */
   int has_short;        /* ResNet block: 1x1 shortcut */
   ddpm_conv2d_shape cs[3];
   int H, W;             /* input spatial size of the current plan */
   float *y, *dy;        /* output and its gradient */
   float *s[12];         /* saved activations */
} node;

struct ddpm_unet {
   ddpm_unet_config cfg;
   int temb_dim;
   /* parameters */
   ddpm_param *ptab;
   int nparam, capparam;
   size_t numel;
   ddpm_tensor *params_t, *grads_t;   /* flat buffers (views may outlive the model) */
   float *params, *grads;             /* their data */
   int p_temb;           /* first of time_embedding.linear_1/2 (4 tensors) */
   /* nodes */
   node *nodes;
   int nnodes, capnodes;
   /* plan for the current input shape */
   int pN, pH, pW;
   float *arena;
   size_t arena_floats, dy_begin, dy_end;   /* dy region, zeroed per backward */
   float *scratch;                          /* conv/attention scratch */
   float *g[3];                             /* temporary gradients (max activation) */
   float *e, *l1, *s1, *temb, *st, *dst, *dtmp1, *dtmp2, *tp, *dtp, *tvals;
   float *dx;                               /* gradient of the input */
   float *xin;                              /* copy of the last input x */
   int fwd_dropout;                         /* dropout applied in the last forward */
   uint64_t fwd_seed;                       /* its seed */
   int training, grad_enabled, have_forward;
   uint64_t dropout_seed;
};

#endif
