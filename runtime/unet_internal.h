/*
 * unet_internal.h — the U-Net's private structures, shared by unet.c (topology
 * and parameters) and unet_run.c (activation plan, forward, backward), and
 * read by bench/bench_unet.c (FLOP count, profile).
 */
#ifndef DDPM_UNET_INTERNAL_H
#define DDPM_UNET_INTERNAL_H

#include "ddpm.h"

enum { N_CONV, N_RES, N_ATTN, N_UPSAMPLE, N_CONCAT, N_OUTNORM };

/* precision = bf16 runs a 3x3 stride-1 layer in bfloat16 from this many input
   channels on (and an even count): with fewer the tile transforms, not the
   products, take the time, and wino_bf16.c's two-phase pass lost to the
   float32 one (Fashion-MNIST's 32- and 64-channel layers at batch 256: 0.65x
   and 1.0x; CIFAR-10's 128 and 256: 1.4x and 1.6x). */
#define DDPM_BF16_MIN_C 128
#define BF16_MIN_C(m) ((m)->bf16_min_c ? (m)->bf16_min_c : DDPM_BF16_MIN_C)

/* A module's weight and bias (a GroupNorm's gain and shift) as indices into
   the parameter table, set where unet.c registers them. */
typedef struct pslot { int w, b; } pslot;

/* A ResNet block's modules (shortcut only when has_short), named after
   their diffusers keys; cs[] of the node holds their shapes in this order. */
typedef struct res_params { pslot norm1, conv1, time_emb_proj, norm2, conv2, shortcut; } res_params;
enum { CS_CONV1, CS_CONV2, CS_SHORT };   /* node.cs[] of a ResNet block */

/* An attention block's modules: group_norm, to_q, to_k, to_v, to_out.0. */
typedef struct attn_params { pslot norm, q, k, v, out; } attn_params;

/* Profile categories: where unet_run.c's timers put each op (see
   ddpm_unet_prof_name for the words). */
enum {
   PF_CONV3_FWD, PF_CONV3_DW, PF_CONV3_DX,      /* 3x3 stride 1, Winograd */
   PF_CONVG_FWD, PF_CONVG_BWD,                  /* 3x3 stride 1 through im2col + GEMM */
   PF_DOWN_FWD, PF_DOWN_BWD,                    /* 3x3 stride 2 (downsampling) */
   PF_SHORT_FWD, PF_SHORT_BWD,                  /* 1x1 shortcuts */
   PF_BIAS_BWD,                                 /* conv bias gradients */
   PF_GN_FWD, PF_GN_RECOMP, PF_GN_BWD,          /* GroupNorm (+SiLU, +dropout) */
   PF_ATTN_FWD, PF_ATTN_BWD,                    /* attention core */
   PF_TEMB,                                     /* time embedding and projections */
   PF_UPSAMPLE, PF_CONCAT, PF_COPY,             /* data movement */
   PF_BF16_FILT,                                /* bfloat16 filter transforms */
   DDPM_PROF_N
};

/* Seconds and calls per category, summed while ddpm_unet.prof is set. */
typedef struct ddpm_unet_prof {
   double t[DDPM_PROF_N];
   long calls[DDPM_PROF_N];
} ddpm_unet_prof;

extern const char *const ddpm_unet_prof_name[DDPM_PROF_N];

typedef struct node {
   /* topology (unet.c) */
   int type;
   int in, in2;          /* producer nodes; -1 is the model input x */
   int C, C2, Cout;      /* input channels (in), channels of in2 (concat), output */
   int lvl;              /* input resolution = H0 >> lvl */
   int stride;           /* conv: 2 = the official downsampling */
   union {               /* the node's parameters, by type */
      pslot conv;        /* N_CONV */
      pslot norm;        /* N_OUTNORM */
      res_params res;    /* N_RES */
      attn_params attn;  /* N_ATTN */
   } p;
   int has_short;        /* ResNet block: 1x1 shortcut */
   /* plan for the current input shape (unet_run.c) */
   ddpm_conv2d_shape cs[3];
   int H, W;             /* input spatial size */
   int wino;             /* bit k: cs[k] runs through winograd.c (unet_run.c: uses_wino) */
   int last_use;         /* largest index of a consumer (-1: none) */
   int first_in, first_in2;   /* backward's write to the producer's dy is its first */
   float *y, *dy;        /* output and its gradient */
   float *h1;            /* ResNet: conv1 output + time embedding (kept for backward) */
   float *mean[2], *rstd[2];  /* GroupNorm statistics (mean as hi/lo float pairs) */
   float *q, *k, *v, *att, *o;   /* attention (kept for backward) */
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
   pslot temb1, temb2;   /* time_embedding.linear_1, linear_2 */
   /* nodes */
   node *nodes;
   int nnodes, capnodes;
   /* plan for the current input shape and mode */
   int pN, pH, pW, pkeep, pthreads;   /* pkeep: activations kept for backward;
                                         pthreads: the thread count it is sized for */
   float *arena;                      /* one aligned_alloc; unet.c frees it */
   size_t arena_floats;               /* used by the current plan */
   size_t arena_cap;                  /* allocated */
   float *scratch;                    /* conv / attention scratch */
   size_t scratch_floats;             /* its size */
   float *gwork;                      /* GEMM work space: gwork_per floats per thread */
   size_t gwork_per;
   float *T[3];                       /* temporaries of the largest activation */
   float *attn_tmp;                   /* inference: q, k, v, o, att */
   float *stat_mean, *stat_rstd;      /* inference: statistics of the current norm */
   float *e, *l1, *s1, *temb, *st, *dst, *dtmp1, *dtmp2, *tp, *dtp, *tvals;
   float *xin;                        /* copy of the last input x (kept plans) */
   const float *xcur;                 /* the input x of the current pass */
   float *dxcur;                      /* its gradient (the caller's dx, may be NULL) */
   int fwd_dropout;                   /* dropout applied in the last forward */
   uint64_t fwd_seed;                 /* its seed */
   uint64_t fwd_first;                /* and its first image's index */
   int training, grad_enabled, have_forward;
   uint64_t dropout_seed;
   uint64_t dropout_first;            /* index of the batch's first image (data parallel) */
   ddpm_unet_prof *prof;              /* per-op timers, when not NULL (bench) */
   int precision;                     /* ddpm_precision of the next forward */
   int pprec, pmin_c;                 /* the plan's precision and bf16 min channels */
   struct ddpm_bf16_cache *bf16;      /* bfloat16 filters (unet_bf16.c), made on first use */
   int bf16_min_c;                    /* 0: DDPM_BF16_MIN_C */
};

#endif
