/*
 * check.h — a tiny TAP-emitting test harness for the C unit tests.
 *
 *   CHECK(cond, "what")                 one assertion
 *   CHECK_CLOSE(got, want, n, tol, "")  max relative error of two float arrays
 *   check_hash(p, bytes)                fingerprint, to show a buffer unchanged
 *   return check_done();                prints the plan and "N passed, N failed"
 *
 * Relative error is |a-b| / max(|b|, floor) with floor = 1e-3 * max|want|,
 * so near-zero entries of a tensor are judged on the tensor's scale.
 */
#ifndef CHECK_H
#define CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_n, check_fail;

#define CHECK(cond, ...) check_report((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

static void check_report(int ok, const char *file, int line, const char *fmt, ...)
   __attribute__((format(printf, 4, 5)));

#include <stdarg.h>
static void check_report(int ok, const char *file, int line, const char *fmt, ...)
{
   va_list ap;
   check_n++;
   if (!ok) check_fail++;
   printf("%s %d - ", ok ? "ok" : "not ok", check_n);
   va_start(ap, fmt);
   vprintf(fmt, ap);
   va_end(ap);
   printf("\n");
   if (!ok) printf("#   failed at %s:%d\n", file, line);
   fflush(stdout);
}

/* Max relative error between got and want (n floats). */
__attribute__((unused)) static double check_max_rel(const float *got, const float *want, size_t n)
{
   double scale = 0;
   for (size_t i = 0; i < n; i++) if (fabs(want[i]) > scale) scale = fabs(want[i]);
   double floor_ = scale * 1e-3 + 1e-30, worst = 0;
   for (size_t i = 0; i < n; i++) {
      double d = fabs((double)got[i] - want[i]);
      double den = fabs(want[i]) > floor_ ? fabs(want[i]) : floor_;
      if (!(d / den <= worst)) worst = d / den;   /* NaN propagates */
   }
   return worst;
}

#define CHECK_CLOSE(got, want, n, tol, ...) do {                                 \
   double check_e_ = check_max_rel((got), (want), (n));                          \
   printf("# max rel err %.3g (tol %.1g); got[0]=%.6g want[0]=%.6g\n",          \
          check_e_, (double)(tol), (double)(got)[0], (double)(want)[0]);         \
   CHECK(check_e_ <= (tol), __VA_ARGS__);                                         \
} while (0)

/* FNV-1a of n bytes: a fingerprint showing that a call left a buffer alone. */
__attribute__((unused)) static unsigned long long check_hash(const void *p, size_t n)
{
   const unsigned char *b = p;
   unsigned long long h = 1469598103934665603ull;
   for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
   return h;
}

/* Deterministic fill in [-1,1) for test inputs. */
__attribute__((unused)) static void check_fill(float *x, size_t n, unsigned seed)
{
   unsigned s = seed * 2654435761u + 1;
   for (size_t i = 0; i < n; i++) {
      s = s * 1664525u + 1013904223u;
      x[i] = (float)((s >> 8) * (2.0 / 16777216.0) - 1.0);
   }
}

static int check_done(void)
{
   printf("1..%d\n", check_n);
   printf("%d passed, %d failed\n", check_n - check_fail, check_fail);
   return check_fail ? 1 : 0;
}

#endif
