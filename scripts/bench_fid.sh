#!/usr/bin/env bash
# scripts/bench_fid.sh — the cost of FID on 50,000 CIFAR-10 samples on this
# machine, two parts:
#
# 1. Inception features: the FID Inception-v3 of the runtime
#    (build/bench/bench_inception, bench/bench_inception.c) against the same
#    network in PyTorch (scripts/bench_fid_torch.py), 32x32 inputs resized to
#    299x299, batch N, both with THREADS threads, alternating ROUNDS rounds of
#    one process each (REPS timed batches after a warm-up). Random weights
#    (tests/fixtures/inception_weights.safetensors or any converted file
#    given as WEIGHTS): speed does not depend on their values.
# 2. Sampling 50,000 images with the CIFAR-10 U-Net (35.7M parameters):
#    seconds per sampler step at batch SAMPLE_BATCH, measured over a few
#    steps of each sampler, then extrapolated to 1000 ancestral steps, a
#    100-step respaced ancestral process and 50 DDIM steps.
#
# Output lines (medians; the 50,000-image times are extrapolated from the
# measured batches and say so):
#   fid_features ddpmlua_img_s=<r> torch_img_s=<r> speedup=<x> ddpmlua_50k_s=<s> torch_50k_s=<s>
#   sample <sampler> steps=<K> s_per_step_b<B>=<s> 50k_s=<s> (extrapolated)
#
# Environment: WEIGHTS, N (16), ROUNDS (3), REPS (2), THREADS (2),
# SAMPLE_BATCH (50), SAMPLE_STEPS (3, steps timed per sampler), PYTHON.
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
W=${WEIGHTS:-tests/fixtures/inception_weights.safetensors}
N=${N:-16}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-2}
THREADS=${THREADS:-2}
SB=${SAMPLE_BATCH:-50}
SS=${SAMPLE_STEPS:-3}
BIN=$BUILD/bench/bench_inception

if grep -q '^include bench/Makefile.inc' Makefile 2>/dev/null; then
   make --no-print-directory "$BIN" ddpmlua >/dev/null || exit 2
else
   make --no-print-directory -f Makefile -f bench/Makefile.inc "$BIN" ddpmlua >/dev/null || exit 2
fi
[ -f "$W" ] || { echo "bench_fid: no weights at $W (make test makes the fixture; or WEIGHTS=...)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddpm-bench-fid.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cpus ($cpu), threads $THREADS, batch $N," \
     "rounds $ROUNDS x reps $REPS; load $(cut -d' ' -f1-3 /proc/loadavg)"

for r in $(seq 1 "$ROUNDS"); do
   if [ $((r % 2)) -eq 1 ]; then order="c t"; else order="t c"; fi
   for who in $order; do
      if [ "$who" = c ]; then
         OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive "$BIN" "$W" "$N" "$REPS" >>"$tmp/c" || exit 1
      else
         "$PY" scripts/bench_fid_torch.py --n "$N" --reps "$REPS" --threads "$THREADS" >>"$tmp/t" || exit 1
      fi
   done
done
median() { grep -o 'images_per_s=[0-9.]*' "$1" | cut -d= -f2 | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
c=$(median "$tmp/c")
t=$(median "$tmp/t")
awk -v c="$c" -v t="$t" 'BEGIN { printf "fid_features ddpmlua_img_s=%.2f torch_img_s=%.2f speedup=%.2f ddpmlua_50k_s=%.0f torch_50k_s=%.0f (50k extrapolated)\n", c, t, c / t, 50000 / c, 50000 / t }'

# sampling: seconds per step of each sampler on the CIFAR-10 U-Net
OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=passive ./ddpmlua scripts/bench_sample.lua "$SB" "$SS" "$THREADS"
