#!/usr/bin/env bash
# scripts/roofline.sh — `make roofline`: this machine's ceilings and what each
# op class of the U-Net reaches against them.
#
#   1. build/bench/roofline: the float32 FMA rate (AVX-512, 2 threads and
#      1), the bfloat16 dot-product rate (vdpbf16ps, where the CPU has it)
#      and the memory bandwidth (read, write, copy, triad, Adam's 7
#      streams) at BENCH_THREADS threads;
#   2. build/bench/bench_unet --profile for a CIFAR-10 training step
#      (batch 8) and a sampling forward (batch 8), float32, and the same
#      forward in bf16 (its bf16 products against the vdpbf16ps ceiling):
#      per op class, time per
#      step, executed GFLOP/s (Winograd counted as its own 36 products per
#      tile and channel pair, not the direct convolution's 144) or GB/s of
#      least memory traffic (bench/bench_unet.c, step_work);
#   3. one markdown table: achieved against the FMA ceiling (compute-bound
#      classes) or the best streaming bandwidth (memory-bound ones).
#
# Environment: BENCH_THREADS (2), ROOFLINE_REPS (3), BUILD (build),
# PYTHON (/usr/bin/python3). A shared machine's load moves every figure:
# the script prints the load average before and after.
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-2}
REPS=${ROOFLINE_REPS:-3}
if grep -q '^include bench/Makefile.inc' Makefile 2>/dev/null; then
   make --no-print-directory "$BUILD/bench/roofline" "$BUILD/bench/bench_unet" >/dev/null ||
      { echo "roofline: cannot build the harness" >&2; exit 2; }
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddpm-roofline.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cpus, threads $THREADS; load $(cut -d' ' -f1-3 /proc/loadavg)"
# the ceilings before and after the profiles, the best of each kept: a
# ceiling measured while other jobs ran would flatter the ops
"$BUILD/bench/roofline" --threads "$THREADS" >"$tmp/ceil" || exit 1
for mode in train forward; do
   OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} "$BUILD/bench/bench_unet" --config cifar --batch 8 \
      --mode "$mode" --reps "$REPS" --threads "$THREADS" --profile >"$tmp/$mode" || exit 1
done
# the bf16 sampling forward, where the CPU has AVX512-BF16
: >"$tmp/forward_bf16"
if grep -q '^roofline dpbf16' "$tmp/ceil"; then
   OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} "$BUILD/bench/bench_unet" --config cifar --batch 8 \
      --mode forward --reps "$REPS" --threads "$THREADS" --profile --precision bf16 \
      >"$tmp/forward_bf16" || exit 1
fi
"$BUILD/bench/roofline" --threads "$THREADS" >>"$tmp/ceil" || exit 1
cat "$tmp/ceil"
"$PY" - "$tmp/ceil" "$tmp/train" "$tmp/forward" "$tmp/forward_bf16" <<'EOF'
import re, sys
ceil = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 3 and f[0] == "roofline":
        ceil[f[1]] = max(ceil.get(f[1], 0.0), float(f[2]))
fma = ceil.get("fma_avx512", ceil.get("fma_avx2"))
dpbf16 = ceil.get("dpbf16")
# the best of the streaming kernels: on a busy machine any one of them may
# have run while other jobs took the memory bus
bw = max(ceil["mem_read"], ceil["mem_write"], ceil["mem_copy"], ceil["mem_triad"])
def prof(path):
    rows = []
    for line in open(path):
        m = re.match(r"# (.{26}) +([\d.]+) +([\d.]+)% +(\d+) +([\d.]+) +([\d.]+)$", line.rstrip())
        if m:
            rows.append((m.group(1).strip(), float(m.group(2)), float(m.group(3)),
                         float(m.group(5)), float(m.group(6))))
    return rows
print()
print("Ceilings: FMA %.0f GFLOP/s (AVX-512, 2 threads), memory %.1f GB/s (best of read %.1f, "
      "write %.1f, copy %.1f, triad %.1f)." % (fma, bw, ceil["mem_read"], ceil["mem_write"],
                                              ceil["mem_copy"], ceil["mem_triad"]))
if dpbf16:
    print("bfloat16 dot products (vdpbf16ps): %.0f GFLOP/s (2 threads), the ceiling of the "
          "products that run in bf16 in the sample bf16 rows." % dpbf16)
# what multiplies in bfloat16 in the bf16 precision (runtime/bf16.h)
BF16_OPS = ("conv3x3 fwd", "conv3x3/2", "conv1x1", "attention")
print()
print("| op (CIFAR-10, batch 8) | mode | ms/step | share | achieved | of ceiling |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for mode, path in (("train", sys.argv[2]), ("sample", sys.argv[3]), ("sample bf16", sys.argv[4])):
    for name, ms, share, gf, gb in prof(path):
        if share < 0.5:
            continue
        top = dpbf16 if mode == "sample bf16" and name.startswith(BF16_OPS) else fma
        if gf > 0:
            ach, frac = "%.0f GFLOP/s" % gf, "%.0f%%" % (100 * gf / top)
        elif gb > 0:
            ach, frac = "%.1f GB/s" % gb, "%.0f%%" % (100 * gb / bw)
        else:
            ach, frac = "-", "-"
        print("| %s | %s | %.1f | %.1f%% | %s | %s |" % (name, mode, ms, share, ach, frac))
EOF
echo "# load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
