/*
 * ddpm/tsampler.h — importance sampling of the training timestep from the loss
 * history (Nichol & Dhariwal 2021, "Improved DDPM", section 3.3, the
 * loss-second-moment resampler).
 *
 * For every t the last `history` per-example losses are kept. Until every t
 * has a full history, t is drawn uniformly (weights 1). After that
 *
 *     p_t ∝ sqrt(E[L_t^2])                (mean over t's history)
 *     p_t <- (1 - u) p_t / sum + u / T    (u = uniform_prob, default 0.001)
 *
 * and the example drawn at t carries the weight 1 / (T p_t), so that the
 * weighted loss is an unbiased estimate of the uniform-t loss:
 * E_{t~p}[L_t / (T p_t)] = (1/T) sum_t L_t.
 *
 * The state (history and counts) is plain numbers, so it can be checkpointed
 * and a resumed run draws exactly what the uninterrupted one would.
 */
#ifndef DDPM_TSAMPLER_H
#define DDPM_TSAMPLER_H

#include "ddpm/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ddpm_tsampler {
   int T, history;
   double uniform_prob;
   int *count;          /* [T] losses held for t (0..history)                */
   float *hist;         /* [T * history] oldest first                        */
} ddpm_tsampler;

/* NULL with ddpm_errmsg() set on bad arguments (T >= 1, history >= 1,
   0 <= uniform_prob <= 1) or out of memory. */
ddpm_tsampler *ddpm_tsampler_new(int T, int history, double uniform_prob);
void ddpm_tsampler_free(ddpm_tsampler *s);

/* 1 when every t holds `history` losses (sampling is no longer uniform). */
int ddpm_tsampler_warm(const ddpm_tsampler *s);

/* The sampling distribution p[T] (sums to 1). */
void ddpm_tsampler_probs(const ddpm_tsampler *s, double *p);

/* N timesteps drawn from p with the Philox stream (seed, counter .. counter +
   2N - 1), and their weights 1 / (T p_t). Inverse CDF on 53-bit uniforms. */
int ddpm_tsampler_sample(const ddpm_tsampler *s, int N, uint64_t seed, uint64_t counter,
                         int *t, float *w);

/* Appends each losses[n] to t[n]'s history, dropping the oldest when full.
   Non-finite losses are an error (DDPM_EINVAL) and change nothing. */
int ddpm_tsampler_update(ddpm_tsampler *s, const int *t, const float *losses, int N);

/* The state as T rows of (count, history...) floats: T * (history + 1). */
void ddpm_tsampler_get_state(const ddpm_tsampler *s, float *state);
int  ddpm_tsampler_set_state(ddpm_tsampler *s, const float *state);

#ifdef __cplusplus
}
#endif
#endif /* DDPM_TSAMPLER_H */
