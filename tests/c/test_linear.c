/*
 * test_linear.c — the Linear layer (runtime/linear.c) against a naive double
 * reference: forward with and without bias, central finite-difference
 * gradients of input, weight and bias, accumulation, NULL gradients.
 */
#include "ddpm.h"
#include "check.h"

/* out [N,O] = in [N,I] W^T + b, W [O,I], b may be NULL. */
static void ref_forward(double *out, const double *in, const double *w, const double *b,
                        int N, int I, int O)
{
   for (int n = 0; n < N; n++)
      for (int o = 0; o < O; o++) {
         double s = b ? b[o] : 0.0;
         for (int i = 0; i < I; i++) s += in[(size_t)n * I + i] * w[(size_t)o * I + i];
         out[(size_t)n * O + o] = s;
      }
}

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static void to_double(double *d, const float *f, size_t n) { for (size_t i = 0; i < n; i++) d[i] = f[i]; }
static void to_float(float *f, const double *d, size_t n) { for (size_t i = 0; i < n; i++) f[i] = (float)d[i]; }

static void check_forward(int N, int I, int O, int with_bias, double tol)
{
   float *x = falloc((size_t)N * I), *w = falloc((size_t)O * I), *b = falloc(O);
   float *y = falloc((size_t)N * O), *want = falloc((size_t)N * O);
   double *xd = dalloc((size_t)N * I), *wd = dalloc((size_t)O * I), *bd = dalloc(O);
   double *yd = dalloc((size_t)N * O);
   check_fill(x, (size_t)N * I, 1); check_fill(w, (size_t)O * I, 2); check_fill(b, O, 3);
   to_double(xd, x, (size_t)N * I); to_double(wd, w, (size_t)O * I); to_double(bd, b, O);
   for (size_t i = 0; i < (size_t)N * O; i++) y[i] = 1e30f;   /* forward overwrites */
   ddpm_linear_forward(y, x, w, with_bias ? b : NULL, N, I, O);
   ref_forward(yd, xd, wd, with_bias ? bd : NULL, N, I, O);
   to_float(want, yd, (size_t)N * O);
   CHECK_CLOSE(y, want, (size_t)N * O, tol, "forward N=%d I=%d O=%d %s", N, I, O,
               with_bias ? "with bias" : "bias NULL");
   free(x); free(w); free(b); free(y); free(want); free(xd); free(wd); free(bd); free(yd);
}

static struct { int N, I, O; double *x, *w, *b, *r, *tmp; } fd;

static double fd_loss(void)
{
   ref_forward(fd.tmp, fd.x, fd.w, fd.b, fd.N, fd.I, fd.O);
   double L = 0;
   for (size_t i = 0; i < (size_t)fd.N * fd.O; i++) L += fd.tmp[i] * fd.r[i];
   return L;
}

static void fd_grad(float *g, double *p, size_t n)
{
   const double h = 1e-4;
   for (size_t i = 0; i < n; i++) {
      double p0 = p[i];
      p[i] = p0 + h; double lp = fd_loss();
      p[i] = p0 - h; double lm = fd_loss();
      p[i] = p0;
      g[i] = (float)((lp - lm) / (2 * h));
   }
}

static void check_backward(int N, int I, int O)
{
   size_t nx = (size_t)N * I, nw = (size_t)O * I, ny = (size_t)N * O;
   float *x = falloc(nx), *w = falloc(nw), *b = falloc(O), *r = falloc(ny);
   float *dx = falloc(nx), *dw = falloc(nw), *db = falloc(O);
   float *ndx = falloc(nx), *ndw = falloc(nw), *ndb = falloc(O);
   float *dx2 = falloc(nx), *dw2 = falloc(nw), *db2 = falloc(O);
   check_fill(x, nx, 11); check_fill(w, nw, 12); check_fill(b, O, 13); check_fill(r, ny, 14);
   ddpm_linear_backward(dx, dw, db, r, x, w, N, I, O);

   fd.N = N; fd.I = I; fd.O = O;
   fd.x = dalloc(nx); fd.w = dalloc(nw); fd.b = dalloc(O); fd.r = dalloc(ny); fd.tmp = dalloc(ny);
   to_double(fd.x, x, nx); to_double(fd.w, w, nw); to_double(fd.b, b, O); to_double(fd.r, r, ny);
   fd_grad(ndx, fd.x, nx);
   fd_grad(ndw, fd.w, nw);
   fd_grad(ndb, fd.b, O);
   printf("# backward N=%d I=%d O=%d\n", N, I, O);
   CHECK_CLOSE(dx, ndx, nx, 1e-4, "din matches finite differences");
   CHECK_CLOSE(dw, ndw, nw, 1e-4, "dweight matches finite differences");
   CHECK_CLOSE(db, ndb, O, 1e-4, "dbias matches finite differences");

   ddpm_linear_backward(dx2, dw2, db2, r, x, w, N, I, O);
   ddpm_linear_backward(dx2, dw2, db2, r, x, w, N, I, O);
   for (size_t i = 0; i < nx; i++) ndx[i] = 2 * dx[i];
   for (size_t i = 0; i < nw; i++) ndw[i] = 2 * dw[i];
   for (int i = 0; i < O; i++) ndb[i] = 2 * db[i];
   CHECK_CLOSE(dx2, ndx, nx, 1e-6, "din accumulates (two calls = 2x)");
   CHECK_CLOSE(dw2, ndw, nw, 1e-6, "dweight accumulates");
   CHECK_CLOSE(db2, ndb, O, 1e-6, "dbias accumulates");

   memset(dx2, 0, nx * sizeof(float));
   ddpm_linear_backward(dx2, NULL, NULL, r, x, w, N, I, O);
   CHECK_CLOSE(dx2, dx, nx, 1e-6, "din alone (dweight, dbias NULL)");
   memset(dw2, 0, nw * sizeof(float));
   ddpm_linear_backward(NULL, dw2, NULL, r, x, w, N, I, O);
   CHECK_CLOSE(dw2, dw, nw, 1e-6, "dweight alone");
   memset(db2, 0, O * sizeof(float));
   ddpm_linear_backward(NULL, NULL, db2, r, x, w, N, I, O);
   CHECK_CLOSE(db2, db, O, 0, "dbias alone");
   unsigned long long h0 = check_hash(r, ny * sizeof *r) ^ check_hash(x, nx * sizeof *x) * 3 ^
                           check_hash(w, nw * sizeof *w) * 5;
   ddpm_linear_backward(NULL, NULL, NULL, r, x, w, N, I, O);
   CHECK((check_hash(r, ny * sizeof *r) ^ check_hash(x, nx * sizeof *x) * 3 ^
          check_hash(w, nw * sizeof *w) * 5) == h0,
         "all gradients NULL writes nothing (dout, x and weight unchanged)");

   free(fd.x); free(fd.w); free(fd.b); free(fd.r); free(fd.tmp);
   free(x); free(w); free(b); free(r); free(dx); free(dw); free(db);
   free(ndx); free(ndw); free(ndb); free(dx2); free(dw2); free(db2);
}

int main(void)
{
   /* float sums of I products: the error grows with I, and the check's
      floor (1e-3 of the largest output) magnifies it near zero outputs. */
   check_forward(5, 7, 3, 1, 1e-5);
   check_forward(5, 7, 3, 0, 1e-5);
   check_forward(1, 1, 1, 1, 1e-6);
   check_forward(64, 128, 512, 1, 3e-4);     /* the temb MLP's first layer */
   check_forward(3, 0, 4, 1, 0);             /* no inputs: out = bias */
   check_backward(4, 6, 5);
   check_backward(1, 3, 7);
   check_backward(16, 40, 24);
   return check_done();
}
