#!/usr/bin/env bash
# scripts/bench_mpi.sh — `make bench-mpi`: data parallelism on this machine.
#
#   1 rank  x 2 threads   ddpmlua, no mpirun
#   1 rank  x 1 thread    (the per-rank baseline)
#   2 ranks x 1 thread    mpirun -np 2 --bind-to core
#   the sum of the CIFAR-10 gradient buffer (35.7M floats, 143 MB) over 2 ranks
#
# Each training case runs ddpm.train on the paper's CIFAR-10 U-Net at a
# global batch of 8 (synthetic CIFAR-10 files made here) for BENCH_MPI_STEPS
# timed steps (4) after a warm-up, ROUNDS times (BENCH_ROUNDS, 3) in turn;
# the lines are each process's median and the summary gives the median of
# the rounds. Needs mpirun (scripts/setup.sh installs Open MPI).
cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
STEPS=${BENCH_MPI_STEPS:-4}
ROUNDS=${BENCH_ROUNDS:-3}
command -v mpirun >/dev/null || { echo "bench-mpi: mpirun not found (apt-get install openmpi-bin)"; exit 1; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# 5 x 64 synthetic CIFAR-10 records (label byte + 3072 pixel bytes)
DIR=$tmp "$D" -e '
local dir = os.getenv("DIR")
for f = 1, 5 do
   local out = assert(io.open(dir .. "/data_batch_" .. f .. ".bin", "wb"))
   for r = 0, 63 do
      local px = {}
      for i = 0, 3071 do px[i + 1] = string.char((i * 7 + r * 13 + f) % 256) end
      out:write(string.char(r % 10), table.concat(px))
   end
   out:close()
end'
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(mpirun --version | head -1)"
declare -A res
for r in $(seq 1 "$ROUNDS"); do
   for c in "1x2" "1x1" "2x1"; do
      case $c in
         1x2) line=$(DDPMLUA_NUM_THREADS=2 "$D" scripts/bench_mpi.lua train "$tmp" "$STEPS") ;;
         1x1) line=$(DDPMLUA_NUM_THREADS=1 "$D" scripts/bench_mpi.lua train "$tmp" "$STEPS") ;;
         2x1) line=$(mpirun -np 2 --bind-to core -x DDPMLUA_NUM_THREADS=1 "$D" scripts/bench_mpi.lua train "$tmp" "$STEPS") ;;
      esac
      echo "$line   (round $r)"
      res[$c]+="$(sed -n 's/.*step_s=\([0-9.]*\).*/\1/p' <<<"$line") "
   done
done
ar=$(mpirun -np 2 --bind-to core "$D" scripts/bench_mpi.lua allreduce 5)
echo "$ar"
med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "# medians over $ROUNDS rounds (global batch 8):"
for c in 1x2 1x1 2x1; do
   s=$(med <<<"${res[$c]}")
   printf 'bench-mpi %s ranks x threads: step_s=%s images_per_s=%s\n' "$c" "$s" "$(awk -v s="$s" 'BEGIN {printf "%.3f", 8 / s}')"
done
