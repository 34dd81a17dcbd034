/*
 * attention.c — the single-head self-attention core of the DDPM attention
 * block, forward and backward, over an already normalised h [N,C,P].
 *
 * In NCHW each image is a [C,P] matrix (P = H*W positions), so every product
 * is one GEMM per image with no transposition copies:
 *   q = Wq h + bq, k = Wk h + bk, v = Wv h + bv      [C,P] each
 *   att = softmax_rows(q^T k / sqrt(C))              [P,P], row i = query i
 *   o = v att^T                                      [C,P]
 *   out = Wo o + bo                                  [C,P]
 * Weights are [C,C] (out, in), PyTorch Linear's layout. GEMMs run one after
 * another from this thread (OpenBLAS brings its own threads). The only OpenMP
 * region is the forward softmax over all N*P rows, between two GEMM phases;
 * backward's small per-image loops stay serial (see add_row_sums).
 *
 * Not here: the GroupNorm before and the residual add after (the U-Net's),
 * multiple heads, masking, memory-efficient (flash) attention: att is kept
 * whole because backward needs it and P = 256 at CIFAR-10's 16x16.
 */
#include "ddpm.h"
#include "vmath.h"

#include <math.h>

/* Below this many floats a parallel region costs more than it saves. */
#define PAR_MIN 32768

/* dst [R,P] rows set to b[r] (0 when b is NULL), for a GEMM with beta = 1. */
static void fill_rows(float *dst, const float *b, int R, int P)
{
   for (int r = 0; r < R; r++) {
      const float v = b ? b[r] : 0.0f;
      float *row = dst + (int64_t)r * P;
      for (int p = 0; p < P; p++) row[p] = v;
   }
}

/* db[r] += sum_p x[r,p], summed in double. Serial: it runs between GEMMs,
   and each parallel region there leaves OpenMP threads spinning on the cores
   OpenBLAS's threads need next (with parallel loops here, backward ran 10x
   slower on a busy 2-core machine); one image's C*P floats take microseconds. */
static void add_row_sums(float *db, const float *x, int R, int P)
{
   for (int r = 0; r < R; r++) {
      const float *row = x + (int64_t)r * P;
      double s = 0;
      #pragma omp simd reduction(+:s)
      for (int p = 0; p < P; p++) s += row[p];
      db[r] += (float)s;
   }
}

/* y [C,P] = W [C,C] x [C,P] + b */
static void project(float *y, const float *x, const float *w, const float *b, int C, int P)
{
   fill_rows(y, b, C, P);
   ddpm_gemm(0, 0, C, P, C, 1.0f, w, C, x, P, 1.0f, y, P);
}

/* Rows of s [R,P] replaced by their softmax. Subtracting the row maximum
   keeps exp in range; the sum is taken in double. */
static void softmax_rows(float *s, int64_t R, int P)
{
   #pragma omp parallel for schedule(static) if (R * P > PAR_MIN)
   for (int64_t r = 0; r < R; r++) {
      float *row = s + r * P;
      float mx = row[0];
      #pragma omp simd reduction(max:mx)
      for (int j = 1; j < P; j++) mx = row[j] > mx ? row[j] : mx;
      /* Two loops: fused with the double sum, GCC ran the exp scalar. */
      #pragma omp simd
      for (int j = 0; j < P; j++) row[j] = ddpm_vexpf(row[j] - mx);
      double sum = 0;
      #pragma omp simd reduction(+:sum)
      for (int j = 0; j < P; j++) sum += row[j];
      const float inv = (float)(1.0 / sum);
      #pragma omp simd
      for (int j = 0; j < P; j++) row[j] *= inv;
   }
}

/* In place ds [P,P]: from dL/datt to dL/dscores = att * (ds - rowsum(ds * att)).
   Serial for the reason given at add_row_sums: it sits between GEMMs. */
static void softmax_rows_backward(float *ds, const float *att, int P)
{
   for (int i = 0; i < P; i++) {
      float *d = ds + (int64_t)i * P;
      const float *a = att + (int64_t)i * P;
      double dot = 0;
      #pragma omp simd reduction(+:dot)
      for (int j = 0; j < P; j++) dot += (double)d[j] * a[j];
      const float r = (float)dot;
      #pragma omp simd
      for (int j = 0; j < P; j++) d[j] = a[j] * (d[j] - r);
   }
}

void ddpm_attention_forward(float *out, float *q, float *k, float *v, float *att, float *o,
                            const float *h,
                            const float *wq, const float *bq, const float *wk, const float *bk,
                            const float *wv, const float *bv, const float *wo, const float *bo,
                            int N, int C, int P)
{
   if (N <= 0 || C <= 0 || P <= 0) return;
   const int64_t CP = (int64_t)C * P, PP = (int64_t)P * P;
   /* PyTorch scales by dim_head ** -0.5 in double, then rounds to float. */
   const float scale = (float)(1.0 / sqrt((double)C));
   for (int n = 0; n < N; n++) {
      const float *hn = h + n * CP;
      project(q + n * CP, hn, wq, bq, C, P);
      project(k + n * CP, hn, wk, bk, C, P);
      project(v + n * CP, hn, wv, bv, C, P);
      /* scores[i,j] = <q[:,i], k[:,j]> * scale */
      ddpm_gemm(1, 0, P, P, C, scale, q + n * CP, P, k + n * CP, P, 0.0f, att + n * PP, P);
   }
   softmax_rows(att, (int64_t)N * P, P);
   for (int n = 0; n < N; n++) {
      /* o[c,i] = sum_j v[c,j] att[i,j] */
      ddpm_gemm(0, 1, C, P, P, 1.0f, v + n * CP, P, att + n * PP, P, 0.0f, o + n * CP, P);
      project(out + n * CP, o + n * CP, wo, bo, C, P);
   }
}

/* Two [C,P] buffers and one [P,P] suffice (see backward); the header promises
   3*C*P + P*P, so that is what is asked for. */
size_t ddpm_attention_scratch_floats(int C, int P)
{
   return 3 * (size_t)C * P + (size_t)P * P;
}

/* Given dy = dL/dy for y = W x + b (one image, [C,P]): dW += dy x^T,
   db += row sums of dy, dx += W^T dy. */
static void project_backward(float *dx, float *dw, float *db, const float *dy,
                             const float *x, const float *w, int C, int P)
{
   if (dw) ddpm_gemm(0, 1, C, C, P, 1.0f, dy, P, x, P, 1.0f, dw, C);
   if (db) add_row_sums(db, dy, C, P);
   if (dx) ddpm_gemm(1, 0, C, P, C, 1.0f, w, C, dy, P, 1.0f, dx, P);
}

/*
 * Per image, with scratch A, B [C,P] and S [P,P]:
 *   A = do = Wo^T dout
 *   B = dv = do att
 *   S = datt = do^T v, then dscores = att * (datt - rowsum(datt * att))
 *   A = dq = scale * k dscores^T   (do is no longer needed)
 *   A = dk = scale * q dscores
 * and each of dq, dk, dv goes through its projection's backward into dh.
 * Work whose every consumer is NULL is skipped.
 */
void ddpm_attention_backward(float *dh,
                             float *dwq, float *dbq, float *dwk, float *dbk,
                             float *dwv, float *dbv, float *dwo, float *dbo,
                             float *scratch, const float *dout, const float *h,
                             const float *q, const float *k, const float *v,
                             const float *att, const float *o,
                             const float *wq, const float *wk, const float *wv, const float *wo,
                             int N, int C, int P)
{
   if (N <= 0 || C <= 0 || P <= 0) return;
   const int64_t CP = (int64_t)C * P, PP = (int64_t)P * P;
   const float scale = (float)(1.0 / sqrt((double)C));
   const int need_q = dh || dwq || dbq;
   const int need_k = dh || dwk || dbk;
   const int need_v = dh || dwv || dbv;
   const int need_do = need_q || need_k || need_v;
   float *A = scratch, *B = scratch + CP, *S = scratch + 2 * CP;

   for (int n = 0; n < N; n++) {
      const float *dy = dout + n * CP, *hn = h + n * CP;
      const float *qn = q + n * CP, *kn = k + n * CP, *vn = v + n * CP;
      const float *an = att + n * PP;
      float *dhn = dh ? dh + n * CP : NULL;

      if (dwo) ddpm_gemm(0, 1, C, C, P, 1.0f, dy, P, o + n * CP, P, 1.0f, dwo, C);
      if (dbo) add_row_sums(dbo, dy, C, P);
      if (!need_do) continue;

      ddpm_gemm(1, 0, C, P, C, 1.0f, wo, C, dy, P, 0.0f, A, P);
      if (need_v) ddpm_gemm(0, 0, C, P, P, 1.0f, A, P, an, P, 0.0f, B, P);
      if (need_q || need_k) {
         ddpm_gemm(1, 0, P, P, C, 1.0f, A, P, vn, P, 0.0f, S, P);
         softmax_rows_backward(S, an, P);
         if (need_q) {
            ddpm_gemm(0, 1, C, P, P, scale, kn, P, S, P, 0.0f, A, P);
            project_backward(dhn, dwq, dbq, A, hn, wq, C, P);
         }
         if (need_k) {
            ddpm_gemm(0, 0, C, P, P, scale, qn, P, S, P, 0.0f, A, P);
            project_backward(dhn, dwk, dbk, A, hn, wk, C, P);
         }
      }
      if (need_v) project_backward(dhn, dwv, dbv, B, hn, wv, C, P);
   }
}
