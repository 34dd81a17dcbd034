/*
 * roofline.c — this machine's two ceilings, for `make roofline`
 * (scripts/roofline.sh): the float32 multiply-add rate and the memory
 * bandwidth, at the thread count the benchmarks use.
 *
 *   build/bench/roofline --threads 2 [--mb 512] [--seconds 0.3]
 *
 * FMA: each thread runs independent chains of vector FMAs (12 accumulators,
 * enough to cover the FMA latency on two pipes) on registers only: 2 FLOPs per
 * lane per FMA, the compiler's widest vector (AVX-512: 16 lanes) and, where
 * it targets AVX-512, also AVX2's 8 lanes (what OpenBLAS 0.3.21's Haswell
 * kernels use here), and where the CPU has AVX512-BF16 the rate of
 * vdpbf16ps, the bfloat16 dot product of the U-Net's bf16 precision (two
 * products and their sum per 32-bit lane: 4 FLOPs).
 * Memory: arrays of --mb MiB each (far past the last-level cache), split
 * between the threads as the runtime's `omp for schedule(static)` loops are:
 *   read   s += a[i]               4 bytes per element
 *   write  a[i] = k                4 (the store's read-for-ownership not counted)
 *   copy   b[i] = a[i]             8
 *   triad  c[i] = a[i] + k * b[i]  12
 *   adam   the 7 streams of ddpm_adam_step (w, g, m, v read; w, m, v written): 28
 * Each figure is the best of repeated passes over --seconds; prints one line
 * per ceiling, "roofline <name> <value> <unit>".
 *
 * Not a test; the U-Net's own achieved rates per op come from
 * bench_unet --profile (scripts/roofline.sh puts them side by side).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <immintrin.h>
#include <omp.h>

static double now(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define NACC 12
#define ITERS 4096

/* FLOPs run by one thread's ITERS x NACC FMAs of LANES lanes */
#if defined(__AVX512F__)
static __attribute__((noinline)) float fma512(long reps, float seed)
{
   __m512 acc[NACC];
   const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f * seed);
   for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps(seed + i);
   for (long r = 0; r < reps; r++)
      for (int k = 0; k < ITERS; k++)
         _Pragma("GCC unroll 12") for (int i = 0; i < NACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
   __m512 s = acc[0];
   for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
   return _mm512_reduce_add_ps(s);
}
#endif

/* vdpbf16ps: per 32-bit lane two bfloat16 products added to a float32 sum,
   so 4 FLOPs per lane; compiled for AVX512-BF16 whatever the build's flags,
   run only where the CPU has it. */
static __attribute__((noinline, target("avx512f,avx512bw,avx512vl,avx512bf16")))
float dpbf16(long reps, float seed)
{
   __m512 acc[NACC];
   const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
   for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps(seed + i);
   for (long r = 0; r < reps; r++)
      for (int k = 0; k < ITERS; k++)
         _Pragma("GCC unroll 12") for (int i = 0; i < NACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
   __m512 s = acc[0];
   for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
   return _mm512_reduce_add_ps(s);
}

#if defined(__AVX2__) && defined(__FMA__)
static __attribute__((noinline)) float fma256(long reps, float seed)
{
   __m256 acc[NACC];
   const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f * seed);
   for (int i = 0; i < NACC; i++) acc[i] = _mm256_set1_ps(seed + i);
   for (long r = 0; r < reps; r++)
      for (int k = 0; k < ITERS; k++)
         _Pragma("GCC unroll 12") for (int i = 0; i < NACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
   __m256 s = acc[0];
   for (int i = 1; i < NACC; i++) s = _mm256_add_ps(s, acc[i]);
   float t[8];
   _mm256_storeu_ps(t, s);
   return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static volatile float sink;

/* Best GFLOP/s of `threads` threads each running fn for ~seconds. */
static double fma_rate(float (*fn)(long, float), int lanes, int threads, double seconds)
{
   long reps = 64;
   for (;;) {   /* size one pass to ~seconds / 5 */
      double t0 = now();
      sink = fn(reps, 1.0f);
      double dt = now() - t0;
      if (dt > seconds / 5 || reps > (1L << 40)) break;
      reps *= 2;
   }
   double best = 0;
   for (int pass = 0; pass < 5; pass++) {
      double t0 = now();
      #pragma omp parallel num_threads(threads)
      {
         float r = fn(reps, 1.0f + omp_get_thread_num());
         if (r == 12345.0f) sink = r;
      }
      double dt = now() - t0;
      double gf = 2.0 * lanes * NACC * (double)ITERS * reps * threads / dt / 1e9;
      if (gf > best) best = gf;
   }
   return best;
}

enum { K_READ, K_WRITE, K_COPY, K_TRIAD, K_ADAM, K_N };
static const char *const kname[K_N] = {"read", "write", "copy", "triad", "adam"};
static const int kbytes[K_N] = {4, 4, 8, 12, 28};

static double mem_pass(int kind, float *a, float *b, float *c, float *d, int64_t n, int threads)
{
   double s = 0;
   double t0 = now();
   #pragma omp parallel num_threads(threads)
   {
      switch (kind) {
      case K_READ: {   /* 16 independent sums: the compiler keeps one float sum scalar */
         float p[16] = {0};
         #pragma omp for schedule(static)
         for (int64_t i = 0; i < n / 16 * 16; i += 16)
            _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++) p[l] += a[i + l];
         #pragma omp atomic
         s += p[0] + p[15];
         break;
      }
      case K_WRITE:
         #pragma omp for schedule(static)
         for (int64_t i = 0; i < n; i++) a[i] = 1.0f;
         break;
      case K_COPY:
         #pragma omp for schedule(static)
         for (int64_t i = 0; i < n; i++) b[i] = a[i];
         break;
      case K_TRIAD:
         #pragma omp for schedule(static)
         for (int64_t i = 0; i < n; i++) c[i] = a[i] + 0.5f * b[i];
         break;
      default:   /* Adam's loop: w = a, g = b, m = c, v = d */
         #pragma omp for schedule(static)
         for (int64_t i = 0; i < n; i++) {
            float gi = b[i], mi = 0.9f * c[i] + 0.1f * gi, vi = 0.999f * d[i] + 0.001f * gi * gi;
            c[i] = mi;
            d[i] = vi;
            a[i] -= 1e-4f * mi / (sqrtf(vi) + 1e-8f);
         }
      }
   }
   double dt = now() - t0;
   if (s == 1234.5) sink = (float)s;
   return dt;
}

/* Best GB/s of one kind (separate loops per kind, so each vectorises). */
static double mem_rate(int kind, float *a, float *b, float *c, float *d, int64_t n, int threads,
                       double seconds)
{
   double best = 0, spent = 0;
   for (int pass = 0; pass < 50 && (pass < 3 || spent < seconds); pass++) {
      double dt = mem_pass(kind, a, b, c, d, n, threads);
      spent += dt;
      double gbs = (double)kbytes[kind] * n / dt / 1e9;
      if (gbs > best) best = gbs;
   }
   return best;
}

int main(int argc, char **argv)
{
   int threads = 2;
   double mb = 512, seconds = 0.3;
   for (int i = 1; i + 1 < argc; i += 2) {
      if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
      else if (strcmp(argv[i], "--mb") == 0) mb = atof(argv[i + 1]);
      else if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[i + 1]);
      else { fprintf(stderr, "usage: roofline [--threads T] [--mb MiB] [--seconds S]\n"); return 2; }
   }
   if (threads < 1 || mb < 1 || !(seconds > 0)) { fprintf(stderr, "roofline: bad arguments\n"); return 2; }
#if defined(__AVX512F__)
   printf("roofline fma_avx512_t1 %.1f GFLOP/s\n", fma_rate(fma512, 16, 1, seconds));
   printf("roofline fma_avx512 %.1f GFLOP/s\n", fma_rate(fma512, 16, threads, seconds));
#endif
   __builtin_cpu_init();
   if (__builtin_cpu_supports("avx512bf16"))   /* lanes x 2: two products per lane */
      printf("roofline dpbf16 %.1f GFLOP/s\n", fma_rate(dpbf16, 32, threads, seconds));
#if defined(__AVX2__) && defined(__FMA__)
   printf("roofline fma_avx2 %.1f GFLOP/s\n", fma_rate(fma256, 8, threads, seconds));
#endif
   const int64_t n = (int64_t)(mb * 1048576 / sizeof(float));
   float *a = aligned_alloc(64, (size_t)n * sizeof *a), *b = aligned_alloc(64, (size_t)n * sizeof *b);
   float *c = aligned_alloc(64, (size_t)n * sizeof *c), *d = aligned_alloc(64, (size_t)n * sizeof *d);
   if (!a || !b || !c || !d) { fprintf(stderr, "roofline: out of memory\n"); return 1; }
   #pragma omp parallel for schedule(static) num_threads(threads)
   for (int64_t i = 0; i < n; i++) { a[i] = 1.0f; b[i] = 0.5f; c[i] = 0.25f; d[i] = 0.125f; }
   for (int k = 0; k < K_N; k++)
      printf("roofline mem_%s %.1f GB/s\n", kname[k], mem_rate(k, a, b, c, d, n, threads, seconds));
   free(a); free(b); free(c); free(d);
   return 0;
}
