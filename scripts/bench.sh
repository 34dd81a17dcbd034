#!/usr/bin/env bash
# scripts/bench.sh — `make bench`: the ddpmlua U-Net against the PyTorch
# reference (scripts/bench_torch.py), case by case, on this machine.
#
# Every case runs both implementations in the same run, alternating: ROUNDS
# rounds, each one process of ddpmlua (build/bench/bench_unet) and one of
# PyTorch (who goes first swaps every round), each process timing REPS steps
# after one warm-up. The medians are over all ROUNDS*REPS steps; rss_mb is
# the largest peak resident set of a process (getrusage ru_maxrss), which
# includes the model, the optimiser state and the EMA copy for training.
# One line per case:
#
#   bench <case> ddpmlua_s=<median> torch_s=<median> speedup=<ratio> gflops=<ddpmlua> rss_mb=<ddpmlua>/<torch>
#         cpu_s=<ddpmlua>/<torch>
#
# cpu_s: the medians of each process's median CPU seconds per step (all
# threads), which another job's load moves less than wall time.
# gflops counts direct-convolution FLOPs of the forward (x3 for a training
# step) per second of the ddpmlua median (see bench/bench_unet.c). Lines
# starting with '#' say what was run and the load average around it.
#
# Cases (BENCH_CASES, default all):
#   cifar_train_b8      CIFAR-10 U-Net (35.7M), training step at batch 8 (dropout 0.1)
#   cifar_sample_b8     CIFAR-10 U-Net, one sampling forward at batch 8 (no gradients)
#   fashion_train_b64   experiments/fashion_mnist.lua's U-Net (1.1M, 28x28), training, batch 64
#   fashion_sample_b256 the same, one sampling forward at batch 256
#   cifar_sample_b8_bf16, fashion_sample_b256_bf16, cifar_train_b8_bf16, fashion_train_b64_bf16
#                       the same cases with ddpmlua's precision = 'bf16' (AVX512-BF16),
#                       against PyTorch float32 (torch_s, speedup) and PyTorch's own
#                       torch.autocast('cpu', dtype=torch.bfloat16) (torch_amp_s, speedup_amp,
#                       and torch_amp_cpu_s)
#
# With BENCH_BASELINE=<path to another build's bench_unet> (say, the same
# file built from an earlier commit) each round also runs that binary, in
# the same alternation (the bf16 cases only when it takes --precision
# bf16), and the line gains before_s=<median> and gain=<before/now>, and
# before_cpu_s and cpu_gain (CPU seconds as cpu_s):
# a before/after comparison measured in one run, as a shared machine's load
# drifts too much between runs.
#
# Environment: BENCH_ROUNDS (3), BENCH_REPS (3), BENCH_THREADS (2), BENCH_CASES,
# BENCH_BASELINE, BENCH_TORCH (1; 0 skips PyTorch), BUILD (build),
# PYTHON (/usr/bin/python3). Installs nothing (make test-deps
# does); brings the C harness up to date with make. ddpmlua runs with
# OMP_WAIT_POLICY=passive, as the ddpmlua host sets it, unless it is set;
# PyTorch runs with its defaults and torch.set_num_threads(BENCH_THREADS).

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
BIN=$BUILD/bench/bench_unet
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=${BENCH_ROUNDS:-3}
REPS=${BENCH_REPS:-3}
THREADS=${BENCH_THREADS:-2}
CASES=${BENCH_CASES:-"cifar_train_b8 cifar_sample_b8 fashion_train_b64 fashion_sample_b256 cifar_sample_b8_bf16 fashion_sample_b256_bf16 cifar_train_b8_bf16 fashion_train_b64_bf16"}

# (re)build the harness against the current runtime: a no-op when up to date
if grep -q '^include bench/Makefile.inc' Makefile 2>/dev/null; then
   mk=(make --no-print-directory "$BIN")
else
   mk=(make --no-print-directory -f Makefile -f bench/Makefile.inc "$BIN")
fi
"${mk[@]}" >/dev/null || { echo "bench: cannot build $BIN" >&2; exit 2; }
have_torch=1
if [ "${BENCH_TORCH:-1}" = 0 ]; then
   have_torch=0   # BENCH_TORCH=0: ddpmlua (and BENCH_BASELINE) alone
elif ! "$PY" -c 'import torch' 2>/dev/null; then
   have_torch=0
   echo "# bench: PyTorch not importable by $PY (make test-deps installs python3-torch);" \
        "timing ddpmlua alone" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddpm-bench.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cpus ($cpu), threads $THREADS," \
     "rounds $ROUNDS x reps $REPS; load $(cut -d' ' -f1-3 /proc/loadavg)"

# run_one IMPL CONFIG MODE BATCH OUT PRECISION -> one JSON line appended to OUT
# (impl torch_amp: PyTorch under autocast to bfloat16)
run_one() {
   local impl=$1 config=$2 mode=$3 batch=$4 out=$5 prec=${6:-float32}
   local popt=()
   [ "$prec" = bf16 ] && popt=(--precision bf16)
   if [ "$impl" = ddpmlua ] || [ "$impl" = before ]; then
      local bin=$BIN
      [ "$impl" = before ] && bin=$BENCH_BASELINE
      OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} "$bin" --config "$config" --batch "$batch" \
         --mode "$mode" --reps "$REPS" --threads "$THREADS" "${popt[@]}" >>"$out" || return 1
   else
      [ "$impl" = torch ] && popt=()
      "$PY" scripts/bench_torch.py --config "$config" --batch "$batch" --mode "$mode" \
         --reps "$REPS" --threads "$THREADS" "${popt[@]}" >>"$out" || return 1
   fi
}

# does the baseline have the bf16 precision (builds before it lack the option)?
base_bf16=0
if [ -n "${BENCH_BASELINE:-}" ] &&
   "$BENCH_BASELINE" --config fashion --batch 1 --mode forward --reps 1 --threads 1 \
      --precision bf16 >/dev/null 2>&1; then
   base_bf16=1
fi

status=0
for case in $CASES; do
   prec=float32
   case $case in
      cifar_train_b8)      config=cifar;   mode=train;   batch=8 ;;
      cifar_sample_b8)     config=cifar;   mode=forward; batch=8 ;;
      fashion_train_b64)   config=fashion; mode=train;   batch=64 ;;
      fashion_sample_b256) config=fashion; mode=forward; batch=256 ;;
      cifar_sample_b8_bf16)     config=cifar;   mode=forward; batch=8;   prec=bf16 ;;
      fashion_sample_b256_bf16) config=fashion; mode=forward; batch=256; prec=bf16 ;;
      cifar_train_b8_bf16)      config=cifar;   mode=train;   batch=8;   prec=bf16 ;;
      fashion_train_b64_bf16)   config=fashion; mode=train;   batch=64;  prec=bf16 ;;
      *) echo "bench: unknown case $case" >&2; status=2; continue ;;
   esac
   : >"$tmp/$case.ddpmlua"; : >"$tmp/$case.torch"; : >"$tmp/$case.before"; : >"$tmp/$case.torch_amp"
   for ((r = 0; r < ROUNDS; r++)); do
      if ((r % 2 == 0)); then order="ddpmlua torch before"; else order="before torch ddpmlua"; fi
      [ "$prec" = bf16 ] && order=${order/torch/torch torch_amp}
      for impl in $order; do
         [ "${impl#torch}" != "$impl" ] && [ $have_torch = 0 ] && continue
         [ "$impl" = before ] && [ "$prec" = bf16 ] && [ "$base_bf16" = 0 ] && continue
         [ "$impl" = before ] && [ -z "${BENCH_BASELINE:-}" ] && continue
         run_one "$impl" "$config" "$mode" "$batch" "$tmp/$case.$impl" "$prec" ||
            { echo "bench: $case: $impl failed" >&2; status=1; }
      done
   done
   "$PY" - "$case" "$tmp/$case.ddpmlua" "$tmp/$case.torch" "$tmp/$case.before" "$tmp/$case.torch_amp" <<'EOF' || status=1
import json, statistics, sys
case, fd, ft, fb, fa = sys.argv[1:6]
def load(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    times = [t for r in rows for t in r["times"]]
    return rows, times
rd, td = load(fd)
rt, tt = load(ft)
rb, tb = load(fb)
ra, ta = load(fa)
if not td:
    sys.exit("bench: %s: no ddpmlua timings" % case)
d = statistics.median(td)
gflops = rd[0]["gflop"] / d
rss_d = max(r["rss_mb"] for r in rd)
def cpu(rows):   # the median of each process's median CPU seconds per step
    c = [r["cpu_s"] for r in rows if "cpu_s" in r]
    return statistics.median(c) if c else float("nan")
cd = cpu(rd)
amp = ""
if ta:   # PyTorch autocast to bfloat16 (the *_bf16 cases)
    a = statistics.median(ta)
    amp = " torch_amp_s=%.4f speedup_amp=%.2f torch_amp_cpu_s=%.4f" % (a, a / d, cpu(ra))
before = ""
if tb:   # BENCH_BASELINE
    b = statistics.median(tb)
    cb = cpu(rb)
    before = " before_s=%.4f gain=%.2f before_cpu_s=%.4f cpu_gain=%.2f" % (b, b / d, cb, cb / cd)
if tt:
    t = statistics.median(tt)
    rss_t = max(r["rss_mb"] for r in rt)
    print("bench %s ddpmlua_s=%.4f torch_s=%.4f speedup=%.2f gflops=%.1f rss_mb=%.0f/%.0f cpu_s=%.4f/%.4f%s%s"
          % (case, d, t, t / d, gflops, rss_d, rss_t, cd, cpu(rt), amp, before))
else:
    print("bench %s ddpmlua_s=%.4f torch_s=nan speedup=nan gflops=%.1f rss_mb=%.0f/nan cpu_s=%.4f/nan%s"
          % (case, d, gflops, rss_d, cd, before))
EOF
done
echo "# load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
