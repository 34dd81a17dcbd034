/*
 * bench_inception.c — images per second of the FID Inception-v3
 * (runtime/inception.c) on 32x32 inputs, as FID on CIFAR-10 runs it.
 *
 *   build/bench/bench_inception WEIGHTS.safetensors [N] [REPS]
 *
 * Prints one line per repetition, "rep <i> seconds=<s> images_per_s=<r>",
 * after one warm-up batch; scripts/bench_fid.sh takes the median.
 */
#include "ddpm.h"
#include "ddpm/inception.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
   if (argc < 2) { fprintf(stderr, "usage: %s WEIGHTS [N] [REPS]\n", argv[0]); return 2; }
   const int N = argc > 2 ? atoi(argv[2]) : 16, reps = argc > 3 ? atoi(argv[3]) : 3;
   ddpm_st_file *f = ddpm_st_open(argv[1]);
   ddpm_inception *m = f ? ddpm_inception_load_st(f) : NULL;
   if (!m) { fprintf(stderr, "bench_inception: %s\n", ddpm_errmsg()); return 1; }
   ddpm_st_close(f);
   float *x = malloc((size_t)N * 3 * 32 * 32 * sizeof *x);
   float *feat = malloc((size_t)N * 2048 * sizeof *feat);
   float *logits = malloc((size_t)N * 1008 * sizeof *logits);
   for (size_t i = 0; i < (size_t)N * 3 * 32 * 32; i++) x[i] = (float)((i * 2654435761u) % 1000) / 999.0f;
   if (ddpm_inception_forward(m, feat, logits, x, N, 32, 32) != DDPM_OK) {
      fprintf(stderr, "bench_inception: %s\n", ddpm_errmsg());
      return 1;
   }
   for (int r = 0; r < reps; r++) {
      double t0 = now();
      ddpm_inception_forward(m, feat, logits, x, N, 32, 32);
      double dt = now() - t0;
      printf("rep %d seconds=%.4f images_per_s=%.3f\n", r, dt, N / dt);
      fflush(stdout);
   }
   free(x); free(feat); free(logits);
   ddpm_inception_free(m);
   return 0;
}
