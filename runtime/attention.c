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
 * Weights are [C,C] (out, in), PyTorch Linear's layout. With two or more
 * images, the threads take whole images, each running its GEMMs
 * single-threaded: one parallel region per pass instead of a wake-up of
 * OpenBLAS's threads per small GEMM (six per image forward). The _res/_ex
 * variants take a work space for the runtime's own GEMM (gemm.c, ~1.7x
 * OpenBLAS's AVX2 kernels at these sizes on AVX-512); the public functions
 * use OpenBLAS. The
 * weight gradients, summed over images, are split by rows instead, so every
 * sum has one owner and a fixed order. With one image, the GEMMs and the
 * softmax use all threads themselves.
 *
 * The _res/_ex variants of kernels.h fold the U-Net's residual add into the
 * output projection and let backward overwrite dh.
 *
 * Not here: the GroupNorm before (the U-Net's),
 * multiple heads, masking, memory-efficient (flash) attention: att is kept
 * whole because backward needs it and P = 256 at CIFAR-10's 16x16.
 */
#include "ddpm.h"
#include "kernels.h"
#include "vmath.h"

#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many floats a parallel region costs more than it saves. */
#define PAR_MIN 32768

/* dst [R,P] rows set to b[r] (0 when b is NULL) plus x [R,P] when given, for
   a GEMM with beta = 1. */
static void fill_rows(float *dst, const float *b, const float *x, int R, int P)
{
   for (int r = 0; r < R; r++) {
      const float v = b ? b[r] : 0.0f;
      float *row = dst + (int64_t)r * P;
      if (x) {
         const float *xr = x + (int64_t)r * P;
         for (int p = 0; p < P; p++) row[p] = xr[p] + v;
      } else {
         for (int p = 0; p < P; p++) row[p] = v;
      }
   }
}

/* db[r] += sum_p x[r,p], summed in double. Serial: callers split rows. */
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

/* The products: the runtime's GEMM in the thread's region of ws, else
   OpenBLAS (ws NULL: the public entry points). */
static void mm(const ddpm_gemm_ws *ws, int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
   ddpm_gemm_ws_run(ws, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* y [C,P] = W [C,C] x [C,P] + b (+ res [C,P] when not NULL) */
static void project(const ddpm_gemm_ws *ws, float *y, const float *x, const float *w,
                    const float *b, const float *res, int C, int P)
{
   fill_rows(y, b, res, C, P);
   mm(ws, 0, 0, C, P, C, 1.0f, w, C, x, P, 1.0f, y, P);
}

/* One row replaced by its softmax. */
static void softmax_row(float *row, int P)
{
   float mx = row[0];
   #pragma omp simd reduction(max:mx)
   for (int j = 1; j < P; j++) mx = row[j] > mx ? row[j] : mx;
   /* Two loops: fused with the double sum, GCC ran the exp scalar. */
#if defined(__AVX512F__)
   const __m512 m = _mm512_set1_ps(mx);
   int j = 0;
   for (; j + 16 <= P; j += 16)
      _mm512_storeu_ps(row + j, ddpm_vexp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), m)));
   if (j < P) {
      const __mmask16 k = ddpm_tail16(P - j);
      _mm512_mask_storeu_ps(row + j, k,
                            ddpm_vexp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), m)));
   }
#else
   #pragma omp simd
   for (int j = 0; j < P; j++) row[j] = ddpm_vexpf(row[j] - mx);
#endif
   double sum = 0;
   #pragma omp simd reduction(+:sum)
   for (int j = 0; j < P; j++) sum += row[j];
   const float inv = (float)(1.0 / sum);
   #pragma omp simd
   for (int j = 0; j < P; j++) row[j] *= inv;
}

/* Rows of s [R,P] replaced by their softmax. Subtracting the row maximum
   keeps exp in range; the sum is taken in double. */
static void softmax_rows(float *s, int64_t R, int P)
{
   DDPM_PAR_FOR(R * P > PAR_MIN, R, r, softmax_row(s + r * P, P));
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
   ddpm_attention_forward_res(out, q, k, v, att, o, h, NULL, wq, bq, wk, bk, wv, bv, wo, bo,
                              N, C, P, NULL);
}

/* Parallel over images when there are several and several threads. */
static int by_image(int N)
{
#ifdef _OPENMP
   return N >= 2 && omp_get_max_threads() > 1 && !omp_in_parallel();
#else
   (void)N;
   return 0;
#endif
}

void ddpm_attention_forward_res(float *out, float *q, float *k, float *v, float *att, float *o,
                                const float *h, const float *x,
                                const float *wq, const float *bq, const float *wk,
                                const float *bk, const float *wv, const float *bv,
                                const float *wo, const float *bo, int N, int C, int P,
                                const ddpm_gemm_ws *ws)
{
   if (N <= 0 || C <= 0 || P <= 0) return;
   const int64_t CP = (int64_t)C * P, PP = (int64_t)P * P;
   /* PyTorch scales by dim_head ** -0.5 in double, then rounds to float. */
   const float scale = (float)(1.0 / sqrt((double)C));
   #pragma omp parallel for schedule(dynamic, 1) if (by_image(N))
   for (int n = 0; n < N; n++) {
      const float *hn = h + n * CP;
      float *qn = q + n * CP, *kn = k + n * CP, *vn = v + n * CP, *an = att + n * PP;
      project(ws, qn, hn, wq, bq, NULL, C, P);
      project(ws, kn, hn, wk, bk, NULL, C, P);
      project(ws, vn, hn, wv, bv, NULL, C, P);
      /* scores[i,j] = <q[:,i], k[:,j]> * scale */
      mm(ws, 1, 0, P, P, C, scale, qn, P, kn, P, 0.0f, an, P);
      softmax_rows(an, P, P);
      /* o[c,i] = sum_j v[c,j] att[i,j] */
      mm(ws, 0, 1, C, P, P, 1.0f, vn, P, an, P, 0.0f, o + n * CP, P);
      project(ws, out + n * CP, o + n * CP, wo, bo, x ? x + n * CP : NULL, C, P);
   }
}

/* Three [C,P] buffers and one [P,P] per image (see backward). */
size_t ddpm_attention_scratch_floats(int C, int P)
{
   return 3 * (size_t)C * P + (size_t)P * P;
}

/* dW [C,C] += sum_n dy_n x_n^T and db += row sums of dy_n, over the rows
   [r0, r1) only (the caller splits rows between threads). */
static void weight_grad_rows(const ddpm_gemm_ws *ws, float *dw, float *db, const float *dy,
                             const float *x,
                             int N, int C, int P, int r0, int r1)
{
   const int64_t CP = (int64_t)C * P;
   if (r1 <= r0) return;
   for (int n = 0; n < N; n++) {
      const float *d = dy + n * CP + (int64_t)r0 * P;
      if (dw) mm(ws, 0, 1, r1 - r0, C, P, 1.0f, d, P, x + n * CP, P, 1.0f,
                        dw + (int64_t)r0 * C, C);
      if (db) add_row_sums(db + r0, d, r1 - r0, P);
   }
}

/*
 * In three passes, with scratch Q, K, V [N,C,P] and S [N,P,P]:
 *  1. per image: Q = do = Wo^T dout, V = dv = do att, S = datt = do^T v then
 *     dscores = att * (datt - rowsum(datt * att)), K = dk = scale q dscores,
 *     Q = dq = scale k dscores^T (do is no longer needed);
 *  2. weight gradients, rows split between threads, images summed in order;
 *  3. per image: dh (+)= Wq^T dq + Wk^T dk + Wv^T dv.
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
   /* one image at a time: the scratch of ddpm_attention_scratch_floats */
   const int64_t CP = (int64_t)C * P, PP = (int64_t)P * P;
   for (int n = 0; n < N; n++)
      ddpm_attention_backward_ex(dh ? dh + n * CP : NULL, 1, dwq, dbq, dwk, dbk, dwv, dbv,
                                 dwo, dbo, scratch, dout + n * CP, h + n * CP, q + n * CP,
                                 k + n * CP, v + n * CP, att + n * PP, o + n * CP,
                                 wq, wk, wv, wo, 1, C, P, NULL);
}

void ddpm_attention_backward_ex(float *dh, int dh_accumulate,
                                float *dwq, float *dbq, float *dwk, float *dbk,
                                float *dwv, float *dbv, float *dwo, float *dbo,
                                float *scratch, const float *dout, const float *h,
                                const float *q, const float *k, const float *v,
                                const float *att, const float *o,
                                const float *wq, const float *wk, const float *wv,
                                const float *wo, int N, int C, int P, const ddpm_gemm_ws *ws)
{
   if (N <= 0 || C <= 0 || P <= 0) return;
   const int64_t CP = (int64_t)C * P, PP = (int64_t)P * P;
   const float scale = (float)(1.0 / sqrt((double)C));
   const int need_q = dh || dwq || dbq;
   const int need_k = dh || dwk || dbk;
   const int need_v = dh || dwv || dbv;
   const int need_do = need_q || need_k || need_v;
   float *Q = scratch, *K = Q + N * CP, *V = K + N * CP, *S = V + N * CP;

   if (need_do) {
      #pragma omp parallel for schedule(dynamic, 1) if (by_image(N))
      for (int n = 0; n < N; n++) {
         const float *dy = dout + n * CP, *an = att + n * PP;
         float *Qn = Q + n * CP, *Kn = K + n * CP, *Vn = V + n * CP, *Sn = S + n * PP;
         mm(ws, 1, 0, C, P, C, 1.0f, wo, C, dy, P, 0.0f, Qn, P);
         if (need_v) mm(ws, 0, 0, C, P, P, 1.0f, Qn, P, an, P, 0.0f, Vn, P);
         if (need_q || need_k) {
            mm(ws, 1, 0, P, P, C, 1.0f, Qn, P, v + n * CP, P, 0.0f, Sn, P);
            softmax_rows_backward(Sn, an, P);
            if (need_k) mm(ws, 0, 0, C, P, P, scale, q + n * CP, P, Sn, P, 0.0f, Kn, P);
            if (need_q) mm(ws, 0, 1, C, P, P, scale, k + n * CP, P, Sn, P, 0.0f, Qn, P);
         }
      }
   }
   #pragma omp parallel
   {
      int t = 0, nt = 1;
#ifdef _OPENMP
      t = omp_get_thread_num();
      nt = omp_get_num_threads();
#endif
      const int r0 = (int)((int64_t)C * t / nt), r1 = (int)((int64_t)C * (t + 1) / nt);
      weight_grad_rows(ws, dwo, dbo, dout, o, N, C, P, r0, r1);
      if (need_q) weight_grad_rows(ws, dwq, dbq, Q, h, N, C, P, r0, r1);
      if (need_k) weight_grad_rows(ws, dwk, dbk, K, h, N, C, P, r0, r1);
      if (need_v) weight_grad_rows(ws, dwv, dbv, V, h, N, C, P, r0, r1);
   }
   if (!dh) return;
   #pragma omp parallel for schedule(dynamic, 1) if (by_image(N))
   for (int n = 0; n < N; n++) {
      float *dhn = dh + n * CP;
      mm(ws, 1, 0, C, P, C, 1.0f, wq, C, Q + n * CP, P, dh_accumulate ? 1.0f : 0.0f, dhn, P);
      mm(ws, 1, 0, C, P, C, 1.0f, wk, C, K + n * CP, P, 1.0f, dhn, P);
      mm(ws, 1, 0, C, P, C, 1.0f, wv, C, V + n * CP, P, 1.0f, dhn, P);
   }
}

size_t ddpm_attention_gemm_work_floats(int C, int P)
{
   /* the largest of the products' needs: (tb, N, K) of each */
   size_t m = ddpm_gemm_fast_work_floats(0, P, C);
   size_t t[3] = { ddpm_gemm_fast_work_floats(1, P, P), ddpm_gemm_fast_work_floats(1, C, P),
                   ddpm_gemm_fast_work_floats(0, P, P) };
   for (int i = 0; i < 3; i++) if (t[i] > m) m = t[i];
   return m;
}
