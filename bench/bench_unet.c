/*
 * bench_unet.c — times the ddpmlua U-Net from C: the ddpmlua column of
 * `make bench` (scripts/bench.sh), the counterpart of scripts/bench_torch.py.
 *
 *   build/bench/bench_unet --config cifar --batch 8 --mode train --reps 5 --threads 2
 *   build/bench/bench_unet --config fashion --batch 64 --mode train --profile
 *
 * forward: one sampling step, gradients off (ddpm_unet_set_grad_enabled 0),
 *          dropout off: what a sampler calls once per diffusion step.
 * train:   one training step as the Lua trainer takes it: zero the gradients,
 *          forward in training mode (the preset's dropout, 0.1 for cifar) with
 *          a fresh dropout seed, the L_simple (MSE) gradient against a random
 *          target, backward, then Adam (lr 2e-4), the EMA (decay 0.9999) of a
 *          copy of the parameters and the zeroing of the gradients for the
 *          next step, in one pass (ddpm_adam_step_ex) — the same work
 *          bench_torch.py times. --unfused: ddpm_unet_zero_grad before the
 *          step and ddpm_adam_step, ddpm_ema_update after it, as before the
 *          fused pass.
 * One warm-up step (it sizes the activation arena), then --reps timed steps.
 * Prints one JSON line: median_s, times, cpu_s (median CPU seconds of a step,
 * all threads: steadier than wall time on a shared machine), gflop (counted
 * per step, below),
 * gflops (gflop / median_s), rss_mb (peak resident set, getrusage) and the
 * settings. --profile adds a per-operation table of the timed steps (time
 * per node type and op, summed over steps, from the U-Net's own timers),
 * with each op's executed GFLOP/s or, for the memory-bound ones, GB/s of
 * least traffic (step_work; scripts/roofline.sh sets them against the
 * machine's ceilings).
 *
 * FLOPs are counted as a direct convolution would spend them, from the
 * config: 2*C*OC*KH*KW*OH*OW per convolution (3x3 and 1x1), 2*C*C*P per
 * attention projection, 2*P*P*C per attention product (two of them), 2*I*O
 * per dense layer; GroupNorm, SiLU and the other elementwise work count
 * nothing. A training step counts three forwards (forward, and the input and
 * weight gradients), as is customary. CIFAR-10: 12.44 GFLOP per image.
 *
 * Not a test (tests/c has those) and not a training script: inputs and
 * targets are random.
 */
#include "ddpm.h"
#include "unet_internal.h"
#include "bf16.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
   struct rusage ru;
   getrusage(RUSAGE_SELF, &ru);
   return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
          ru.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
   double x = *(const double *)a, y = *(const double *)b;
   return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
   double *s = malloc((size_t)n * sizeof *s);
   memcpy(s, v, (size_t)n * sizeof *s);
   qsort(s, (size_t)n, sizeof *s, cmp_double);
   double r = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
   free(s);
   return r;
}

/* The presets of scripts/torch_unet.py (CONFIGS), by name. */
static int preset(ddpm_unet_config *c, const char *name)
{
   *c = ddpm_unet_config_cifar10();
   if (strcmp(name, "cifar") == 0) return 0;
   c->ch = 32;
   c->num_levels = 3;
   c->ch_mult[0] = 1; c->ch_mult[1] = 2; c->ch_mult[2] = 2;
   c->num_res_blocks = 1;
   c->dropout = 0.0f;
   if (strcmp(name, "fashion") == 0) {   /* experiments/fashion_mnist.lua */
      c->in_ch = c->out_ch = 1;
      c->resolution = 28;
      c->attn_res[0] = 7;
      return 0;
   }
   if (strcmp(name, "small") == 0) {
      c->in_ch = c->out_ch = 3;
      c->resolution = 16;
      c->attn_res[0] = 8;
      return 0;
   }
   return -1;
}

/* Forward FLOPs of one image, counted as direct convolution (see the top). */
static double forward_flops(const ddpm_unet *m)
{
   const ddpm_unet_config *c = &m->cfg;
   const double td = m->temb_dim;
   double f = 2.0 * c->ch * td + 2.0 * td * td;      /* time-embedding MLP */
   for (int i = 0; i < m->nnodes; i++) {
      const node *n = &m->nodes[i];
      const double H = c->resolution >> n->lvl, HW = H * H, C = n->C, O = n->Cout;
      switch (n->type) {
      case N_CONV:
         f += 2.0 * C * O * 9 * (n->stride == 2 ? HW / 4 : HW);
         break;
      case N_RES:
         f += 2.0 * C * O * 9 * HW + 2.0 * O * O * 9 * HW + 2.0 * td * O;
         if (n->has_short) f += 2.0 * C * O * HW;
         break;
      case N_ATTN:
         f += 4 * 2.0 * C * C * HW + 2 * 2.0 * HW * HW * C;
         break;
      }
   }
   return f;
}

/* Work per step of each profile category, for the roofline (make roofline):
   flop = FLOPs the kernels execute (Winograd: its 36 products per tile and
   channel pair, not the direct count), bytes = the least memory traffic of
   the memory-bound ops (each operand read once, each result written once).
   Counted for the pass the profile times: forward only, or a training step. */
typedef struct work { double flop[DDPM_PROF_N], bytes[DDPM_PROF_N]; } work;

static double conv_flop(const ddpm_conv2d_shape *s)
{
   return 2.0 * s->N * s->C * s->OC * s->KH * s->KW * s->OH * s->OW;
}

static double wino_flop(const ddpm_conv2d_shape *s)
{
   return 2.0 * s->C * s->OC * 36 * s->N * ((s->H + 3) / 4) * ((s->W + 3) / 4);
}

/* A convolution's forward and (train) backward; din: its input gradient is computed. */
static void conv_work(work *w, const ddpm_conv2d_shape *s, int wino, int train, int din)
{
   if (s->KH == 1) {
      w->flop[PF_SHORT_FWD] += conv_flop(s);
      if (train) w->flop[PF_SHORT_BWD] += (1 + din) * conv_flop(s);
   } else if (s->stride == 2) {
      w->flop[PF_DOWN_FWD] += conv_flop(s);
      if (train) w->flop[PF_DOWN_BWD] += (1 + din) * conv_flop(s);
   } else if (wino) {
      w->flop[PF_CONV3_FWD] += wino_flop(s);
      if (train) {
         w->flop[PF_CONV3_DW] += wino_flop(s);
         if (din) w->flop[PF_CONV3_DX] += wino_flop(s);
      }
   } else {
      w->flop[PF_CONVG_FWD] += conv_flop(s);
      if (train) w->flop[PF_CONVG_BWD] += (1 + din) * conv_flop(s);
   }
   if (train) w->bytes[PF_BIAS_BWD] += 4.0 * s->N * s->OC * s->OH * s->OW;
}

/* GroupNorm (+SiLU) over `elems` values: forward reads x and writes y;
   recompute the same; backward reads x and dy and writes dx. */
static void gn_work(work *w, double elems, int train)
{
   w->bytes[PF_GN_FWD] += 8 * elems;
   if (train) {
      w->bytes[PF_GN_RECOMP] += 8 * elems;
      w->bytes[PF_GN_BWD] += 12 * elems;
   }
}

static void step_work(work *w, const ddpm_unet *m, int train)
{
   memset(w, 0, sizeof *w);
   for (int i = 0; i < m->nnodes; i++) {
      const node *n = &m->nodes[i];
      const double N = m->pN, HW = (double)n->H * n->W;
      switch (n->type) {
      case N_CONV:
         conv_work(w, &n->cs[0], n->wino & 1, train, n->in >= 0);
         break;
      case N_RES:
         gn_work(w, N * n->C * HW, train);
         gn_work(w, N * n->Cout * HW, train);
         conv_work(w, &n->cs[CS_CONV1], (n->wino >> CS_CONV1) & 1, train, 1);
         conv_work(w, &n->cs[CS_CONV2], (n->wino >> CS_CONV2) & 1, train, 1);
         if (n->has_short) conv_work(w, &n->cs[CS_SHORT], 0, train, 1);
         break;
      case N_ATTN: {
         gn_work(w, N * n->C * HW, train);
         const double f = N * (4 * 2.0 * n->C * n->C * HW + 2 * 2.0 * HW * HW * n->C);
         w->flop[PF_ATTN_FWD] += f;
         if (train) w->flop[PF_ATTN_BWD] += 2 * f;
         break;
      }
      case N_UPSAMPLE:   /* read x, write 4 x */
         w->bytes[PF_UPSAMPLE] += 20 * N * n->C * HW * (train ? 2 : 1);
         break;
      case N_CONCAT:     /* read both, write the joint tensor */
         w->bytes[PF_CONCAT] += 8 * N * (n->C + n->C2) * HW * (train ? 2 : 1);
         break;
      case N_OUTNORM:
         gn_work(w, N * n->C * HW, train);
         break;
      }
   }
}

static void usage(void)
{
   fprintf(stderr, "usage: bench_unet [--config cifar|fashion|small] [--batch N] "
                   "[--mode forward|train] [--reps R] [--threads T] [--seed S] [--profile] [--unfused]\n"
                   "       [--precision float32|bf16]\n");
   exit(2);
}

int main(int argc, char **argv)
{
   const char *cname = "cifar", *mode = "forward", *precision = "float32";
   int N = 1, reps = 3, threads = 2, profile = 0, fused = 1;
   unsigned long long seed = 0;
   for (int i = 1; i < argc; i++) {
      const char *a = argv[i];
      if (strcmp(a, "--profile") == 0) { profile = 1; continue; }
      if (strcmp(a, "--unfused") == 0) { fused = 0; continue; }
      if (i + 1 >= argc) usage();
      const char *v = argv[++i];
      if (strcmp(a, "--config") == 0) cname = v;
      else if (strcmp(a, "--batch") == 0) N = atoi(v);
      else if (strcmp(a, "--mode") == 0) mode = v;
      else if (strcmp(a, "--reps") == 0) reps = atoi(v);
      else if (strcmp(a, "--threads") == 0) threads = atoi(v);
      else if (strcmp(a, "--seed") == 0) seed = strtoull(v, NULL, 10);
      else if (strcmp(a, "--precision") == 0) precision = v;
      else usage();
   }
   int train = strcmp(mode, "train") == 0;
   if ((!train && strcmp(mode, "forward") != 0) || N < 1 || reps < 1 || threads < 1) usage();
   ddpm_unet_config cfg;
   if (preset(&cfg, cname) != 0) usage();
   ddpm_set_num_threads(threads);

   ddpm_unet *m = ddpm_unet_new(&cfg, 1);
   if (!m) { fprintf(stderr, "bench_unet: %s\n", ddpm_errmsg()); return 1; }
   /* bf16: inference forwards only (bf16.h); a training step stays float32 */
   if (strcmp(precision, "float32") != 0 &&
       (strcmp(precision, "bf16") != 0 || ddpm_unet_set_precision(m, DDPM_BF16) != DDPM_OK)) {
      fprintf(stderr, "bench_unet: precision %s: %s\n", precision,
              strcmp(precision, "bf16") ? "expected float32 or bf16" : ddpm_errmsg());
      return 1;
   }
   const int R = cfg.resolution;
   const size_t nx = (size_t)N * cfg.in_ch * R * R, no = (size_t)N * cfg.out_ch * R * R;
   const size_t np = ddpm_unet_num_params(m);
   float *x = malloc(nx * sizeof *x), *t = malloc((size_t)N * sizeof *t);
   float *out = malloc(no * sizeof *out), *target = NULL, *dout = NULL, *ema = NULL;
   ddpm_adam *adam = NULL;
   ddpm_rng rng;
   ddpm_rng_init(&rng, seed);
   ddpm_rng_normal(&rng, x, (int64_t)nx);
   for (int i = 0; i < N; i++) t[i] = (float)ddpm_rng_below(&rng, 1000);
   if (train) {
      target = malloc(no * sizeof *target);
      dout = malloc(no * sizeof *dout);
      ema = malloc(np * sizeof *ema);
      adam = ddpm_adam_new((int64_t)np, 0.9, 0.999, 1e-8, 0.0);
      if (!target || !dout || !ema || !adam) { fprintf(stderr, "bench_unet: out of memory\n"); return 1; }
      ddpm_rng_normal(&rng, target, (int64_t)no);
      memcpy(ema, ddpm_unet_params(m), np * sizeof *ema);
      ddpm_unet_set_training(m, 1);
      ddpm_unet_set_grad_enabled(m, 1);
   } else {
      ddpm_unet_set_training(m, 0);
      ddpm_unet_set_grad_enabled(m, 0);
   }

   ddpm_unet_prof prof;
   double *times = malloc((size_t)reps * sizeof *times);
   double *cpus = malloc((size_t)reps * sizeof *cpus);
   double t_adam = 0, t_ema = 0, t_zero = 0, t_loss = 0, t_all = 0;
   for (int r = -1; r < reps; r++) {
      if (r == 0 && profile) {   /* the warm-up is not profiled */
         memset(&prof, 0, sizeof prof);
         m->prof = &prof;
      }
      double t0 = now(), c0 = cpu_now(), t1;
      int rc;
      if (train) {
         if (r < 0 || !fused) {   /* the fused pass leaves them zero for the next step */
            ddpm_unet_zero_grad(m);
         }
         t1 = now();
         if (r >= 0) t_zero += t1 - t0;
         ddpm_unet_set_dropout_seed(m, 1000 + (uint64_t)(r + 1), 0);
         rc = ddpm_unet_forward(m, out, x, t, N, R, R);
         if (rc == DDPM_OK) {
            double t2 = now();
            /* L_simple = mean((out - target)^2): dL/dout = 2 (out - target) / n */
            const float k = 2.0f / (float)no;
            for (size_t i = 0; i < no; i++) dout[i] = k * (out[i] - target[i]);
            if (r >= 0) t_loss += now() - t2;
            rc = ddpm_unet_backward(m, NULL, dout);
         }
         if (rc == DDPM_OK) {
            double t3 = now();
            if (fused) {
               ddpm_adam_pass p = { 0.0f, ema, 0.9999, DDPM_GRADS_ZERO };
               rc = ddpm_adam_step_ex(adam, ddpm_unet_params(m), ddpm_unet_grads(m), 2e-4, &p);
               if (r >= 0) t_adam += now() - t3;
            } else {
               rc = ddpm_adam_step(adam, ddpm_unet_params(m), ddpm_unet_grads(m), 2e-4);
               double t4 = now();
               ddpm_ema_update(ema, ddpm_unet_params(m), (int64_t)np, 0.9999);
               if (r >= 0) { t_adam += t4 - t3; t_ema += now() - t4; }
            }
         }
      } else {
         rc = ddpm_unet_forward(m, out, x, t, N, R, R);
      }
      if (rc != DDPM_OK) { fprintf(stderr, "bench_unet: %s\n", ddpm_errmsg()); return 1; }
      if (r >= 0) {
         times[r] = now() - t0;
         cpus[r] = cpu_now() - c0;
         t_all += times[r];
      }
   }
   m->prof = NULL;
   double sum = 0;
   for (size_t i = 0; i < no; i++) sum += out[i];
   if (!isfinite(sum)) { fprintf(stderr, "bench_unet: non-finite output\n"); return 1; }

   struct rusage ru;
   getrusage(RUSAGE_SELF, &ru);
   const double gflop = forward_flops(m) * N * (train ? 3 : 1) / 1e9;
   const double med = median(times, reps);
   printf("{\"median_s\": %.6f, \"times\": [", med);
   for (int r = 0; r < reps; r++) printf("%s%.6f", r ? ", " : "", times[r]);
   printf("], \"cpu_s\": %.6f, \"gflop\": %.4f, \"gflops\": %.2f, \"rss_mb\": %.1f, "
          "\"workspace_mb\": %.1f, \"params\": %zu, "
          "\"impl\": \"ddpmlua\", \"config\": \"%s\", \"batch\": %d, \"mode\": \"%s\", "
          "\"threads\": %d, \"reps\": %d, \"precision\": \"%s\"}\n",
          median(cpus, reps), gflop, gflop / med, ru.ru_maxrss / 1024.0, ddpm_unet_workspace_bytes(m) / 1048576.0, np,
          cname, N, mode, threads, reps, precision);

   if (profile) {
      printf("# profile: %s %s batch %d, %d steps, %d threads; ms per step\n", cname, mode, N,
             reps, threads);
      printf("# %-26s %9s %7s %7s %9s %9s\n", "op", "ms/step", "share", "calls", "GFLOP/s",
             "GB/s");
      work w;
      step_work(&w, m, train);
      double covered = 0;
      for (int k = 0; k < DDPM_PROF_N; k++) {
         if (!prof.calls[k]) continue;
         covered += prof.t[k];
         const double sec = prof.t[k] / reps;
         printf("# %-26s %9.2f %6.1f%% %7.0f %9.1f %9.1f\n", ddpm_unet_prof_name[k], 1e3 * sec,
                100 * prof.t[k] / t_all, (double)prof.calls[k] / reps, w.flop[k] / sec / 1e9,
                w.bytes[k] / sec / 1e9);
      }
      if (train) {
         const char *nm[4] = {"zero_grad (memset)", "loss gradient",
                              fused ? "adam+ema+zero_grad (fused)" : "adam", "ema"};
         double v[4] = {t_zero, t_loss, t_adam, t_ema};
         /* bytes: zero_grad writes g; Adam reads w, g, m, v and writes w, m, v;
            the EMA reads ema, w and writes ema; fused: 5 buffers read, 5 written */
         const double P = 4.0 * (double)np;
         const double by[4] = {P, 0, fused ? 10 * P : 7 * P, 3 * P};
         for (int k = 0; k < 4; k++) {
            if (fused && (k == 0 || k == 3)) continue;
            covered += v[k];
            printf("# %-26s %9.2f %6.1f%% %7d %9.1f %9.1f\n", nm[k], 1e3 * v[k] / reps,
                   100 * v[k] / t_all, 1, 0.0, by[k] / (v[k] / reps) / 1e9);
         }
      }
      printf("# %-26s %9.2f %6.1f%%\n", "(not covered)", 1e3 * (t_all - covered) / reps,
             100 * (t_all - covered) / t_all);
      printf("# %-26s %9.2f\n", "total", 1e3 * t_all / reps);
   }
   free(x); free(t); free(out); free(target); free(dout); free(ema); free(times); free(cpus);
   ddpm_adam_free(adam);
   ddpm_unet_free(m);
   return 0;
}
