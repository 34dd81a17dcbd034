/*
 * ddpm.h — the public C API of the ddpmlua runtime, in one include.
 *
 * Pure C11: tensors, the U-Net's layers (forward and backward), the U-Net
 * itself, Adam, the diffusion process and its samplers, datasets, PNG and
 * safetensors files, the run log, the Fréchet statistics and FID's
 * Inception network. No Lua header appears here or in any runtime/ file, so
 * every op is testable from plain C.
 *
 * The public headers are this one and the headers in runtime/include/ddpm/, each with
 * the contract of every function it declares; bindings/ sees nothing else
 * (it is compiled with -Iruntime/include only). Headers in runtime/ itself
 * (kernels.h, winograd.h, json.h, unet_internal.h, ...) are private: raw
 * kernels and helpers shared by runtime files, which trust their callers.
 * The conventions are at the top of ddpm/core.h.
 *
 * Example
 *   ddpm_unet_config cfg = ddpm_unet_config_cifar10();
 *   ddpm_unet *m = ddpm_unet_new(&cfg, 42);
 *   if (!m) fprintf(stderr, "%s\n", ddpm_errmsg());
 *   ddpm_unet_forward(m, out, x, t, N, 32, 32);
 */
#ifndef DDPM_H
#define DDPM_H

#include "ddpm/core.h"          /* status, threads, interrupt, tensors, rng */
#include "ddpm/layers.h"        /* raw-pointer layer kernels, GEMM */
#include "ddpm/unet.h"          /* the U-Net */
#include "ddpm/precision.h"     /* its float32 / bfloat16 inference */
#include "ddpm/optim.h"         /* Adam, clipping, EMA */
#include "ddpm/safetensors.h"   /* safetensors read and write */
#include "ddpm/fileio.h"        /* the atomic writer */
#include "ddpm/diffusion.h"     /* schedules, losses, samplers */
#include "ddpm/tsampler.h"      /* importance sampling of timesteps */
#include "ddpm/dataset.h"       /* MNIST / CIFAR-10 readers, batches */
#include "ddpm/png.h"           /* PNG in and out */
#include "ddpm/plot.h"          /* line charts */
#include "ddpm/npz.h"           /* .npz reader and writer */
#include "ddpm/frechet.h"       /* Gaussian statistics, Fréchet distance */
#include "ddpm/inception.h"     /* FID's Inception-v3 */
#include "ddpm/lenet.h"         /* FD-LeNet's classifier */
#include "ddpm/runlog.h"        /* the run store (SQLite) */
#include "ddpm/sha256.h"        /* file hashes */
#include "ddpm/dist.h"          /* data parallelism over MPI */

#endif /* DDPM_H */
