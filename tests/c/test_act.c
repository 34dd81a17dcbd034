/*
 * test_act.c — SiLU and dropout (runtime/act.c) and the vectorised expf they
 * rest on (runtime/vmath.h): values against double references, central
 * finite-difference gradients, accumulation, NULL gradients; for dropout the
 * mask's definition, its rate, its reuse in backward and its independence
 * from the thread count.
 */
#include "ddpm.h"
#include "kernels.h"
#include "vmath.h"
#include "check.h"

#include <float.h>
#include <omp.h>

static double ref_silu(double x) { return x / (1.0 + exp(-x)); }

static void check_vexpf(void)
{
   /* Every 97th float bit pattern in [-87, 88] and the edges. */
   double worst = 0, wx = 0;
   float xs[] = { -87.0f, -86.9f, -10.0f, -1.0f, -1e-7f, 0.0f, 1e-7f, 0.5f, 1.0f, 88.0f };
   for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
      double e = fabs(ddpm_vexpf(xs[i]) - exp(xs[i])) / exp(xs[i]);
      if (e > worst) { worst = e; wx = xs[i]; }
   }
   for (float x = -87.0f; x <= 88.0f; ) {
      double e = fabs(ddpm_vexpf(x) - exp(x)) / exp(x);
      if (e > worst) { worst = e; wx = x; }
      uint32_t b; memcpy(&b, &x, 4);
      if (x < 0) b = b - 97 >= 0x80000000u ? b - 97 : 0; else b += 97;
      if (x < 0 && b == 0) x = 0.0f; else memcpy(&x, &b, 4);
   }
   printf("# vexpf max rel err %.3g at x = %g (float eps %.3g)\n", worst, wx, (double)FLT_EPSILON);
   CHECK(worst < 4 * FLT_EPSILON, "vexpf within 4 eps of exp on [-87, 88]");
   CHECK(ddpm_vexpf(-1000.0f) > 0 && ddpm_vexpf(-1000.0f) < 1e-37f, "vexpf clamps below (tiny, finite)");
   CHECK(isfinite(ddpm_vexpf(1000.0f)), "vexpf clamps above (finite)");
   CHECK(isnan(ddpm_vexpf(NAN)), "vexpf propagates NaN");
}

/* The 16-lane forms (vmath.h, AVX-512 builds) give the scalar forms' bits,
   lane by lane: every 61st float bit pattern of either sign up to inf, the
   clamp edges, signed zeros, inf and NaN. */
static void check_vexp16(void)
{
#if defined(__AVX512F__)
   float xs[16 * 4096];
   int n = 0;
   const float edges[] = { -87.0f, -87.0001f, 88.0f, 88.0001f, 0.0f, -0.0f, INFINITY, -INFINITY,
                           NAN, 1e-30f, -1e-30f, 20.0f, -20.0f, 1.0f, -1.0f, 0.5f };
   for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) xs[n++] = edges[i];
   for (uint32_t b = 0; b < 0x7f800000u && n + 2 <= (int)(sizeof xs / sizeof xs[0]);
        b += 0x7f800000u / 32000) {
      float f; memcpy(&f, &b, 4);
      xs[n++] = f;
      xs[n++] = -f;
   }
   n -= n % 16;
   int exp_ok = 1, silu_ok = 1, grad_ok = 1;
   for (int i = 0; i < n; i += 16) {
      float e[16], s[16], g[16];
      _mm512_storeu_ps(e, ddpm_vexp16(_mm512_loadu_ps(xs + i)));
      _mm512_storeu_ps(s, ddpm_vsilu16(_mm512_loadu_ps(xs + i)));
      _mm512_storeu_ps(g, ddpm_vsilu_grad16(_mm512_loadu_ps(xs + i)));
      for (int l = 0; l < 16; l++) {
         const float x = xs[i + l];
         const float we = ddpm_vexpf(x), ws = x / (1.0f + ddpm_vexpf(-x));
         const float ee = ddpm_vexpf(-x), ss = 1.0f / (1.0f + ee);
         const float wg = ss * (1.0f + x * (ee * ss));
         if (memcmp(&e[l], &we, 4) && !(isnan(e[l]) && isnan(we))) exp_ok = 0;
         if (memcmp(&s[l], &ws, 4) && !(isnan(s[l]) && isnan(ws))) silu_ok = 0;
         if (memcmp(&g[l], &wg, 4) && !(isnan(g[l]) && isnan(wg))) grad_ok = 0;
      }
   }
   printf("# %d values through the 16-lane forms\n", n);
   CHECK(exp_ok, "ddpm_vexp16 gives ddpm_vexpf's bits (NaN as NaN)");
   CHECK(silu_ok, "ddpm_vsilu16 gives the scalar SiLU's bits");
   CHECK(grad_ok, "ddpm_vsilu_grad16 gives the scalar SiLU derivative's bits");
   CHECK(isnan(ddpm_vexpf(NAN)) && isnan(_mm512_cvtss_f32(ddpm_vexp16(_mm512_set1_ps(NAN)))),
         "both propagate NaN");
#endif
}

static void check_silu(void)
{
   enum { n = 1000 };
   float x[n], y[n], want[n], r[n], dx[n], ndx[n], dx2[n];
   check_fill(x, n, 1);
   for (int i = 0; i < n; i++) x[i] *= 12.0f;       /* [-12, 12) */
   x[0] = 0.0f; x[1] = -80.0f; x[2] = 80.0f; x[3] = -30.0f; x[4] = 1e-6f;
   ddpm_silu_forward(y, x, n);
   for (int i = 0; i < n; i++) want[i] = (float)ref_silu(x[i]);
   CHECK_CLOSE(y, want, n, 1e-6, "silu forward matches x * sigmoid(x)");
   double worst = 0;
   for (int i = 0; i < n; i++) {
      if (x[i] < -80.0f) continue;
      double e = fabs(y[i] - ref_silu(x[i])) / fabs(ref_silu(x[i]) + 1e-30);
      if (e > worst) worst = e;
   }
   printf("# silu elementwise max rel err %.3g\n", worst);
   CHECK(worst < 8 * FLT_EPSILON, "silu elementwise relative error (no floor) under 8 eps");
   CHECK(y[0] == 0.0f, "silu(0) = 0");

   /* Gradient against central differences of the double reference. */
   check_fill(r, n, 2);
   memset(dx, 0, sizeof dx);
   ddpm_silu_backward(dx, r, x, n);
   for (int i = 0; i < n; i++) {
      double h = 1e-5;
      ndx[i] = (float)(r[i] * (ref_silu(x[i] + h) - ref_silu(x[i] - h)) / (2 * h));
   }
   /* Near the derivative's zero (x = -1.278) it is a difference of O(1)
      terms, so float rounding reaches ~3e-8 absolute: 1e-4 of the floor. */
   CHECK_CLOSE(dx, ndx, n, 1e-4, "silu backward matches finite differences");
   for (int i = 0; i < n; i++) dx2[i] = 1.0f;
   ddpm_silu_backward(dx2, r, x, n);
   for (int i = 0; i < n; i++) ndx[i] = 1.0f + dx[i];
   CHECK_CLOSE(dx2, ndx, n, 1e-6, "silu backward accumulates onto din");
   unsigned long long h0 = check_hash(r, sizeof r) ^ check_hash(x, sizeof x) * 3;
   ddpm_silu_backward(NULL, r, x, n);
   CHECK((check_hash(r, sizeof r) ^ check_hash(x, sizeof x) * 3) == h0,
         "silu backward with din NULL writes nothing (dout and x unchanged)");

   /* A size that takes the parallel path. */
   int64_t big = 300001;
   float *bx = malloc(big * sizeof(float)), *by = malloc(big * sizeof(float));
   float *bw = malloc(big * sizeof(float));
   check_fill(bx, big, 3);
   for (int64_t i = 0; i < big; i++) { bx[i] *= 8; bw[i] = (float)ref_silu(bx[i]); }
   ddpm_silu_forward(by, bx, big);
   CHECK_CLOSE(by, bw, big, 1e-6, "silu forward, n = %lld (parallel)", (long long)big);
   free(bx); free(by); free(bw);
}

static int keep(uint64_t seed, int64_t i, float p) { return ddpm_rng_uniform_at(seed, (uint64_t)i) >= p; }

static void check_dropout(void)
{
   const int64_t n = 1000003;               /* odd: a partial Philox block at the end */
   const float p = 0.1f;
   const uint64_t seed = 1234;
   float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
   float *y2 = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
   float *dx = malloc(n * sizeof(float));
   check_fill(x, n, 5);
   for (int64_t i = 0; i < n; i++) if (x[i] == 0.0f) x[i] = 0.5f;   /* zero would hide the mask */

   ddpm_dropout_forward(y, x, n, 0.0f, seed);
   CHECK(memcmp(y, x, n * sizeof(float)) == 0, "dropout p = 0 is an exact copy");

   ddpm_dropout_forward(y, x, n, p, seed);
   const float scale = 1.0f / (1.0f - p);
   int64_t kept = 0, bad = 0;
   for (int64_t i = 0; i < n; i++) {
      int k = keep(seed, i, p);
      kept += k;
      if (y[i] != (k ? x[i] * scale : 0.0f)) bad++;
   }
   double frac = (double)kept / n, sd = sqrt(p * (1 - p) / n);
   printf("# kept %.5f of %lld (expect %.5f +- %.5f)\n", frac, (long long)n, 1.0 - p, 5 * sd);
   CHECK(fabs(frac - (1.0 - p)) < 5 * sd, "fraction kept is 1 - p within 5 sigma");
   CHECK(bad == 0, "kept = x / (1 - p) exactly where uniform_at(seed, i) >= p, else 0 (%lld bad)",
         (long long)bad);

   ddpm_dropout_forward(y2, x, n, p, seed);
   CHECK(memcmp(y, y2, n * sizeof(float)) == 0, "same seed, same output");
   ddpm_dropout_forward(y2, x, n, p, seed + 1);
   int64_t differ = 0;
   for (int64_t i = 0; i < n; i++) differ += (y[i] == 0.0f) != (y2[i] == 0.0f);
   CHECK(differ > n / 10, "another seed, another mask (%lld positions differ)", (long long)differ);

   int saved = omp_get_max_threads();
   omp_set_num_threads(1);
   ddpm_dropout_forward(y2, x, n, p, seed);
   omp_set_num_threads(saved);
   CHECK(memcmp(y, y2, n * sizeof(float)) == 0, "same mask with 1 thread as with %d", saved);

   /* Backward: din += dout * mask / (1 - p), the forward's mask. */
   check_fill(d, n, 6);
   for (int64_t i = 0; i < n; i++) dx[i] = 0.25f;
   ddpm_dropout_backward(dx, d, n, p, seed);
   bad = 0;
   for (int64_t i = 0; i < n; i++) {
      float want = 0.25f + (keep(seed, i, p) ? d[i] * scale : 0.0f);
      if (dx[i] != want) bad++;
   }
   CHECK(bad == 0, "backward accumulates dout / (1 - p) through the forward's mask (%lld bad)",
         (long long)bad);
   for (int64_t i = 0; i < n; i++) dx[i] = 0.25f;
   ddpm_dropout_backward(dx, d, n, 0.0f, seed);
   bad = 0;
   for (int64_t i = 0; i < n; i++) bad += dx[i] != 0.25f + d[i];
   CHECK(bad == 0, "backward p = 0 accumulates dout unchanged");
   unsigned long long h0 = check_hash(d, (size_t)n * sizeof *d);
   ddpm_dropout_backward(NULL, d, n, p, seed);
   CHECK(check_hash(d, (size_t)n * sizeof *d) == h0, "backward with din NULL leaves dout unchanged");

   ddpm_dropout_forward(y, x, 1000, 1.0f, seed);
   bad = 0;
   for (int i = 0; i < 1000; i++) bad += y[i] != 0.0f;
   CHECK(bad == 0, "p = 1 drops everything (zeros, no NaN)");

   /* Small sizes: every tail length of a Philox block. */
   for (int m = 1; m <= 9; m++) {
      float sx[9], sy[9];
      check_fill(sx, m, 7 + m);
      ddpm_dropout_forward(sy, sx, m, 0.5f, 99);
      int ok = 1;
      for (int i = 0; i < m; i++) ok &= sy[i] == (keep(99, i, 0.5f) ? sx[i] * 2.0f : 0.0f);
      CHECK(ok, "n = %d matches the mask", m);
   }

   /* Finite differences (double) of L = sum(dropout(x) * r): the Jacobian
      is diagonal, so one perturbation of all entries at once reads it off. */
   {
      enum { m = 64 };
      float sx[m], r[m], g[m], ng[m];
      check_fill(sx, m, 8); check_fill(r, m, 9);
      memset(g, 0, sizeof g);
      ddpm_dropout_backward(g, r, m, 0.3f, 77);
      for (int i = 0; i < m; i++) {
         double h = 1e-3, mask = keep(77, i, 0.3f) ? 1.0 / (1.0 - 0.3f) : 0.0;
         double yp = (sx[i] + h) * mask, ym = (sx[i] - h) * mask;
         ng[i] = (float)(r[i] * (yp - ym) / (2 * h));
      }
      CHECK_CLOSE(g, ng, m, 1e-6, "dropout backward matches finite differences");
   }
   free(x); free(y); free(y2); free(d); free(dx);
}

/* ddpm_dropout_keep at any offset = the mask of ddpm_rng_uniform_at. */
static void check_keep(void)
{
   const float p = 0.3f, scale = 1.0f / (1.0f - p);
   const uint64_t seed = 77;
   const uint64_t starts[] = { 0, 1, 3, 63, 64, 65, 1000003 };
   int ok = 1;
   float keep[300];
   for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
      ddpm_dropout_keep(keep, starts[s], 300, p, seed);
      for (int i = 0; i < 300; i++) {
         float want = ddpm_rng_uniform_at(seed, starts[s] + i) >= p ? scale : 0.0f;
         if (keep[i] != want) ok = 0;
      }
   }
   CHECK(ok, "dropout_keep at offsets 0..1000003 matches the mask of uniform_at");
}

int main(void)
{
   check_vexpf();
   check_vexp16();
   check_silu();
   check_dropout();
   check_keep();
   return check_done();
}
