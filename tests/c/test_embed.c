/*
 * test_embed.c — the sinusoidal timestep embedding (runtime/embed.c) against
 * the values of docs/math.md §6.2 and a double reference:
 * sin block first, divisor half - 1, max period 10000, odd dims zero-padded.
 */
#include "ddpm.h"
#include "check.h"

/* Max |got - want|: the embedding is O(1), so absolute error is the measure. */
static double max_abs(const float *got, const double *want, int n)
{
   double w = 0;
   for (int i = 0; i < n; i++) {
      double d = fabs((double)got[i] - want[i]);
      if (!(d <= w)) w = d;
   }
   return w;
}

static void ref_embed(double *out, const float *t, int N, int dim)
{
   int half = dim / 2;
   for (int n = 0; n < N; n++) {
      for (int i = 0; i < half; i++) {
         double f = half > 1 ? exp(-log(10000.0) * i / (half - 1)) : 1.0;
         out[n * dim + i] = sin(t[n] * f);
         out[n * dim + half + i] = cos(t[n] * f);
      }
      if (dim % 2) out[n * dim + dim - 1] = 0;
   }
}

int main(void)
{
   enum { D = 128 };
   float t[4] = { 0.0f, 1.0f, 999.0f, 500.0f };
   float out[4 * D];
   double want[4 * D];
   for (int i = 0; i < 4 * D; i++) out[i] = NAN;
   ddpm_timestep_embedding(out, t, 4, D);

   int ok = 1;
   for (int i = 0; i < 64; i++) ok &= out[i] == 0.0f && out[64 + i] == 1.0f;
   CHECK(ok, "t = 0: first 64 values 0, last 64 values 1");

   double e1[4] = { sin(1.0), sin(exp(-log(1e4) / 63)), sin(exp(-2 * log(1e4) / 63)),
                    sin(1e-4) };
   printf("# t = 1: %.8f %.8f %.8f ... %.8g (want %.8f %.8f %.8f ... %.8g)\n",
          out[D], out[D + 1], out[D + 2], out[D + 63], e1[0], e1[1], e1[2], e1[3]);
   CHECK(fabs(out[D] - e1[0]) < 1e-7 && fabs(out[D + 1] - e1[1]) < 1e-7
         && fabs(out[D + 2] - e1[2]) < 1e-7, "t = 1: sin(1), sin(exp(-ln(1e4)/63)), ...");
   CHECK(fabs(out[D + 63] - e1[3]) < 1e-11, "t = 1: last frequency is 1/10000 (divisor half - 1)");
   CHECK(fabs(out[D + 64] - cos(1.0)) < 1e-7, "t = 1: cos block follows the sin block");

   ref_embed(want, t, 4, D);
   float wantf[2 * D];
   for (int i = 0; i < 2 * D; i++) wantf[i] = (float)want[i];
   CHECK_CLOSE(out, wantf, 2 * D, 1e-6, "t in {0, 1} match the double formula (relative)");
   double e = max_abs(out, want, 2 * D);
   printf("# t in {0, 1}: max abs err %.3g\n", e);
   CHECK(e < 2e-7, "t in {0, 1} match the double formula to float rounding");
   /* At t = 999 the float32 argument t * f (as PyTorch forms it) is only good
      to half an ulp of 999, ~3e-5, and f itself to ~1e-7 relative. */
   e = max_abs(out + 2 * D, want + 2 * D, 2 * D);
   printf("# t in {999, 500}: max abs err %.3g\n", e);
   CHECK(e < 1e-4, "t in {999, 500} match the double formula within float32 argument rounding");

   /* Odd dim: zero column last; the other columns are those of dim - 1. */
   float odd[2 * 9], even[2 * 8];
   float t2[2] = { 3.0f, 17.0f };
   for (int i = 0; i < 18; i++) odd[i] = NAN;
   ddpm_timestep_embedding(odd, t2, 2, 9);
   ddpm_timestep_embedding(even, t2, 2, 8);
   ok = odd[8] == 0.0f && odd[17] == 0.0f;
   for (int n = 0; n < 2; n++)
      for (int i = 0; i < 8; i++) ok &= odd[n * 9 + i] == even[n * 8 + i];
   CHECK(ok, "odd dim: zero-padded at the end of each row");

   /* half = 1 would divide by zero in the formula; frequency 1 is meant. */
   float two[2];
   ddpm_timestep_embedding(two, t2, 1, 2);
   CHECK(fabs(two[0] - sin(3.0)) < 1e-7 && fabs(two[1] - cos(3.0)) < 1e-7,
         "dim = 2: [sin t, cos t], no NaN");

   /* Every integer timestep of the CIFAR-10 model against the reference. */
   static float ts[1000], big[1000 * D];
   static double bigw[1000 * D];
   for (int i = 0; i < 1000; i++) ts[i] = (float)i;
   ddpm_timestep_embedding(big, ts, 1000, D);
   ref_embed(bigw, ts, 1000, D);
   e = max_abs(big, bigw, 1000 * D);
   printf("# t = 0..999: max abs err %.3g\n", e);
   CHECK(e < 1e-4, "t = 0..999 within float32 argument rounding");

   /* Non-integer timesteps (respaced samplers may pass them). */
   check_fill(ts, 1000, 7);
   for (int i = 0; i < 1000; i++) ts[i] = 500.0f + 500.0f * ts[i];
   ddpm_timestep_embedding(big, ts, 1000, D);
   ref_embed(bigw, ts, 1000, D);
   e = max_abs(big, bigw, 1000 * D);
   printf("# t in [0, 1000): max abs err %.3g\n", e);
   CHECK(e < 1e-4, "random t in [0, 1000) within float32 argument rounding");
   return check_done();
}
