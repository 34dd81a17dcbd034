#!/usr/bin/env bash
# tests/test_mpi.sh — data parallelism under Open MPI's mpirun, on loopback
# (ranks oversubscribe the 2 cores; as root the test sets Open MPI's
# allow-run-as-root variables):
#   * the same run whatever the number of ranks: 1, 2 and 4 ranks with the
#     same global batch give the same losses and parameters after 6 steps
#     (within the bound below), and 1 rank under mpirun is bit-identical to
#     a run without mpirun;
#   * one history: rank 0 alone writes runs.db (one run row, world_size =
#     N), checkpoints and samples;
#   * resuming with another number of ranks;
#   * faults: a rank killed with SIGKILL ends the job within a bound, the
#     run reads 'crashed', its last checkpoint resumes; Ctrl-C (SIGINT) at
#     mpirun ends the run 'interrupted' with a checkpoint;
#   * bad input: a batch that does not divide over the ranks, ranks running
#     other settings — clear errors, no run row;
#   * sharded evaluation: diff:sample, diff:nll and the FD-LeNet feature
#     statistics give the same results with 1, 2 and 3 ranks;
#   * ddpm.dist's collectives.
# Prints TAP and "N passed, N failed".
#
# The bound: the ranks add the same per-example gradients in another order
# (each rank sums its share, then the ranks' sums are added), so gradients
# agree to a few ulps of their terms; Adam moves each parameter by at most
# lr per step whatever the gradient's size, so after k steps two runs can
# differ by at most 2 k lr per coordinate in the worst case (2.4e-2 here).
# Measured: 2.6e-6 (2 ranks) and 8.7e-6 (4 ranks) over parameters, EMA and
# Adam moments; the test asserts 1e-4, and losses within 1e-6 relative.

cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
n=0 failed=0 why=""
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
   n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
   [ -n "$why" ] && printf '%s\n' "$why" | sed 's/^/#   /'
}
t() { if [ -z "$why" ]; then pass "$1"; else fail "$1"; fi; why=""; }
if ! command -v mpirun >/dev/null; then
   echo "not ok 1 - mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"
   echo "0 passed, 1 failed"; exit 1
fi
tmp=$(mktemp -d)
trap 'pkill -9 -P $$ 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp \
       OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1
export DDPMLUA_NUM_THREADS=1 DDPMLUA_HISTORY= DDPMLUA_PROGRESS=0
# Under make asan, LeakSanitizer is off for the ranks: Open MPI's plugins
# (dlopened, unloaded at MPI_Finalize, built without frame pointers) leave
# process-lifetime allocations whose stacks the fast unwinder cannot walk, so
# no suppression can name them, and the slow unwinder deadlocks in libgcc.
# AddressSanitizer's and UBSan's checks stay on; leaks of our code are
# checked by the same code paths outside mpirun.
if [ -n "${ASAN_OPTIONS:-}" ]; then
   export ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0
fi
unset DDPMLUA_DB DDPMLUA_PARENT_RUN
MPI=(mpirun --oversubscribe -x DDPMLUA_NUM_THREADS -x DDPMLUA_PROGRESS)

cat >mkidx.lua <<'EOF'
local function u32(n) return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                                         math.floor(n / 256) % 256, n % 256) end
local p = {"\0\0\8\3", u32(64), u32(8), u32(8)}
for n = 0, 63 do
   for y = 0, 7 do for x = 0, 7 do
      p[#p + 1] = string.char(((x * 3 + y * 5 + n * 7) % 11 < 4) and 255 or 0)
   end end
end
local f = assert(io.open(arg[1], "wb")); f:write(table.concat(p)); f:close()
EOF
"$D" mkidx.lua data.idx

# A tiny U-Net with dropout, flips, EMA and checkpoints; --out gets the
# per-step loss and gradient norm and the final checkpoint (rank 0).
cat >tr.lua <<'EOF'
local ddpm = require 'ddpm'
local cfg = ddpm.cli.parse(arg, {steps = 6, batch = 8, name = 'dp', db = 'runs.db', resume = '',
   ckpt = 3, sampler = 'uniform', out = '', sample_every = 0, lr = 2e-3})
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    dropout = 0.1, in_ch = 1, out_ch = 1, resolution = 8}
local lines = {}
local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = ddpm.core.dataset_idx('data.idx'),
   steps = cfg.steps, batch = cfg.batch, lr = cfg.lr, seed = 1, db = cfg.db, name = cfg.name,
   progress = false, flip = true, sample_n = 4, sample_every = cfg.sample_every,
   checkpoint_every = cfg.ckpt, ema_decay = 0.9, check_every = 2,
   resume = cfg.resume ~= '' and cfg.resume or nil, schedule_sampler = cfg.sampler,
   schedule_sampler_opts = {history = 1},
   on_step = function(step, v) lines[#lines + 1] = ('%d %.17g %.17g'):format(step, v.loss, v.grad_norm) end}
if ddpm.dist.is_main() and cfg.out ~= '' then
   local f = io.open(cfg.out, 'w')
   f:write(table.concat(lines, '\n'), '\n', 'ckpt ', r.checkpoint, '\n', 'status ', r.status, '\n')
   f:close()
end
EOF
# cmp.lua A B: max |a - b| over every tensor of two safetensors files
cat >cmp.lua <<'EOF'
local ddpm = require 'ddpm'
local a, b = ddpm.load_safetensors(arg[1]), ddpm.load_safetensors(arg[2])
local maxd, n = 0, 0
for k, t in pairs(a) do
   if ddpm.core.is_tensor(t) and t:numel() > 0 then
      if not b[k] then print('missing ' .. k) os.exit(1) end
      n = n + 1
      maxd = math.max(maxd, (t - b[k]):abs():max())
   end
end
print(('%d %.17g'):format(n, maxd))
EOF
# losses A B TOL: the per-step losses and gradient norms agree within TOL (relative)
losses() {
   awk -v tol="$3" 'NR == FNR && /^[0-9]/ {l[$1] = $2; g[$1] = $3; next}
      /^[0-9]/ {k++; if (!($1 in l)) {print "step " $1 " missing"; bad = 1; next}
                d = l[$1] - $2; if (d < 0) d = -d; if (d > tol * (l[$1] < 0 ? -l[$1] : l[$1])) {print "step " $1 " loss " l[$1] " vs " $2; bad = 1}
                e = g[$1] - $3; if (e < 0) e = -e; if (e > 100 * tol * g[$1]) {print "step " $1 " grad norm " g[$1] " vs " $3; bad = 1}}
      END {if (!k) {print "no steps"; bad = 1}; exit bad}' "$1" "$2"
}
ckpt() { grep '^ckpt ' "$1" | cut -d' ' -f2; }
maxdiff() { "$D" cmp.lua "$(ckpt "$1")" "$(ckpt "$2")" | cut -d' ' -f2; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 <= b + 0)}'; }

# ------------------------------------------------------------ same run whatever N

"$D" tr.lua --out=plain.txt --db=plain.db >plain.log 2>&1 || why+="plain run failed: $(tail -3 plain.log)"$'\n'
"${MPI[@]}" -np 1 "$D" tr.lua --out=np1.txt --db=np1.db >np1.log 2>&1 || why+="np 1 failed: $(tail -3 np1.log)"$'\n'
cmp -s <(grep -v '^ckpt' plain.txt) <(grep -v '^ckpt' np1.txt) || why+="losses differ: $(paste plain.txt np1.txt)"$'\n'
d=$(maxdiff plain.txt np1.txt)
[ "$d" = "0" ] || why+="checkpoint tensors differ by $d"$'\n'
t "1 rank under mpirun is bit-identical to a run without mpirun (losses, grad norms, params, EMA, Adam)"

for np in 2 4; do
   "${MPI[@]}" -np $np "$D" tr.lua --out=np$np.txt --db=np$np.db >np$np.log 2>&1 ||
      why+="np $np failed: $(tail -5 np$np.log)"$'\n'
   msg=$(losses np1.txt np$np.txt 1e-6) || why+="np $np: $msg"$'\n'
   d=$(maxdiff np1.txt np$np.txt)
   le "$d" 1e-4 || why+="np $np: checkpoint tensors differ by $d (bound 1e-4)"$'\n'
   echo "# $np ranks: max |difference| of parameters, EMA and Adam moments after 6 steps: $d"
   t "$np ranks with the same global batch: the same losses (1e-6) and parameters (1e-4) as 1 rank"
   rows=$(sqlite3 np$np.db "SELECT count(*) || ' ' || group_concat(status) || ' ' || group_concat(world_size) FROM runs")
   [ "$rows" = "1 finished $np" ] || why+="runs rows: '$rows'"$'\n'
   ws=$(sqlite3 np$np.db "SELECT env_json ->> '\$.ranks' || ' ' || (env_json ->> '\$.threads') FROM runs")
   [ "$ws" = "$np 1" ] || why+="env_json ranks/threads: '$ws'"$'\n'
   nck=$(ls runs/*/ckpt-*.safetensors 2>/dev/null | wc -l)
   [ "$(sqlite3 np$np.db "SELECT count(*) FROM checkpoints")" = 2 ] || why+="checkpoint rows"$'\n'
   t "$np ranks: one run row (world_size $np, threads per rank recorded), checkpoints by rank 0"
done

# threads per rank: bound ranks use their cores, unbound ones share the host's
# (each rank writes its own file: lines the ranks wrote to stderr at once
# came through mpirun interleaved, "threads threads 11")
rm -f thr.*
env -u DDPMLUA_NUM_THREADS -u OMP_NUM_THREADS mpirun --oversubscribe --bind-to none -np 2 "$D" -e \
   "local f = io.open('thr.' .. os.getenv('OMPI_COMM_WORLD_RANK'), 'w'); f:write('threads ', require('ddpm.core').get_num_threads(), '\\n'); f:close()" >/dev/null 2>&1
thr=$(cat thr.* 2>/dev/null)
th=$(grep -c "^threads $(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))$" <<<"$thr")
[ "$th" = 2 ] || why+="unbound ranks: $th of 2 use $(( $(nproc) / 2 )) threads (nproc $(nproc), online $(getconf _NPROCESSORS_ONLN)): $thr"$'\n'
th=$(env -u DDPMLUA_NUM_THREADS -u OMP_NUM_THREADS mpirun --bind-to core -np 1 "$D" -e \
   "io.stderr:write('threads ', require('ddpm.core').get_num_threads(), '\\n')" 2>&1 | grep -c "^threads 1$")
[ "$th" = 1 ] || why+="a rank bound to one core does not use 1 thread"$'\n'
t "threads per rank: one per bound core; unbound ranks share the host's cores"

# the loss-second-moment timestep sampler: its history is every rank's losses
"${MPI[@]}" -np 1 "$D" tr.lua --sampler=loss-second-moment --steps=8 --ckpt=8 --out=is1.txt --db=is.db >is1.log 2>&1 ||
   why+="np 1 failed: $(tail -3 is1.log)"$'\n'
"${MPI[@]}" -np 2 "$D" tr.lua --sampler=loss-second-moment --steps=8 --ckpt=8 --out=is2.txt --db=is.db >is2.log 2>&1 ||
   why+="np 2 failed: $(tail -3 is2.log)"$'\n'
msg=$(losses is1.txt is2.txt 1e-6) || why+="$msg"$'\n'
d=$(maxdiff is1.txt is2.txt); le "$d" 1e-4 || why+="checkpoints differ by $d"$'\n'
t "importance-sampled t (loss-second-moment): 2 ranks follow 1 rank"

# ------------------------------------------------------------ resume with another N

"${MPI[@]}" -np 2 "$D" tr.lua --steps=3 --out=half2.txt --db=res.db >half2.log 2>&1 || why+="first half failed"$'\n'
"$D" tr.lua --resume="$(ckpt half2.txt)" --out=res1.txt --db=res.db >res1.log 2>&1 || why+="resume failed: $(tail -3 res1.log)"$'\n'
msg=$(losses np1.txt res1.txt 1e-6) || why+="$msg"$'\n'
d=$(maxdiff np1.txt res1.txt); le "$d" 1e-4 || why+="resumed run differs by $d"$'\n'
"$D" tr.lua --steps=3 --out=half1.txt --db=res.db >half1.log 2>&1
"${MPI[@]}" -np 4 "$D" tr.lua --resume="$(ckpt half1.txt)" --out=res4.txt --db=res.db >res4.log 2>&1 ||
   why+="resume on 4 ranks failed: $(tail -3 res4.log)"$'\n'
d=$(maxdiff np1.txt res4.txt); le "$d" 1e-4 || why+="resumed on 4 ranks differs by $d"$'\n'
t "a run of 2 ranks resumes on 1, a run of 1 resumes on 4, and both end where 1 rank does"

# ------------------------------------------------------------ bad input

"${MPI[@]}" -np 3 "$D" tr.lua --db=bad.db >bad.log 2>&1 && why+="np 3 with batch 8 succeeded"$'\n'
grep -q "batch of 8 does not divide over the 3 ranks" bad.log || why+="message: $(grep -i ddpmlua bad.log | head -3)"$'\n'
[ ! -e bad.db ] || [ "$(sqlite3 bad.db "SELECT count(*) FROM runs")" = 0 ] || why+="a run row was written"$'\n'
t "a batch that does not divide over the ranks: a clear error, no run row"
mpirun --oversubscribe -x DDPMLUA_NUM_THREADS -np 1 "$D" tr.lua --db=bad2.db : -np 1 "$D" tr.lua --db=bad2.db --lr=0.001 \
   >bad2.log 2>&1 && why+="ranks with other settings succeeded"$'\n'
grep -q "rank 1 trains with other settings than rank 0\|rank 1 runs another script" bad2.log ||
   why+="message: $(grep -i ddpmlua bad2.log | head -3)"$'\n'
[ ! -e bad2.db ] || [ "$(sqlite3 bad2.db "SELECT count(*) FROM runs")" = 0 ] || why+="a run row was written"$'\n'
t "ranks that run other settings: a clear error naming the rank, no run row"

# ------------------------------------------------------------ faults

# a rank killed with SIGKILL: the job ends, the run reads crashed, the last checkpoint resumes
"${MPI[@]}" -np 2 "$D" tr.lua --steps=100000 --ckpt=5 --db=kill.db --name=killed >kill.log 2>&1 &
mp=$!
for _ in $(seq 1 300); do ls runs/*/ckpt-00000010.safetensors >/dev/null 2>&1 && [ "$(sqlite3 kill.db "SELECT count(*) FROM checkpoints" 2>/dev/null)" -ge 2 ] && break; sleep 0.1; done
victim=$(pgrep -P "$mp" -f "ddpmlua tr.lua" | tail -n 1)
t0=$SECONDS
if [ -n "$victim" ]; then kill -9 "$victim"; else why+="no rank process found"$'\n'; fi
for _ in $(seq 1 600); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mp" 2>/dev/null; then why+="mpirun still runs 60 s after a rank died"$'\n'; kill -9 "$mp"; fi
wait "$mp" 2>/dev/null
echo "# the job ended $((SECONDS - t0)) s after rank kill"
st=$("$D" sql "SELECT status FROM runs WHERE name = 'killed'" --db kill.db --csv | tail -n 1)
[ "$st" = crashed ] || why+="status '$st'"$'\n'
last=$(sqlite3 kill.db "SELECT path FROM checkpoints ORDER BY step DESC LIMIT 1")
step=$(sqlite3 kill.db "SELECT max(step) FROM checkpoints")
"$D" tr.lua --resume="$last" --steps=$((step + 2)) --db=kill.db --out=after.txt >after.log 2>&1 ||
   why+="resume from $last failed: $(tail -3 after.log)"$'\n'
grep -q "^status finished" after.txt 2>/dev/null || why+="the resumed run did not finish"$'\n'
t "a rank killed with SIGKILL: the job ends, the run reads 'crashed', its last checkpoint resumes"

# Ctrl-C at mpirun: mpirun sends SIGTERM to every rank, then SIGKILL after
# odls_base_sigkill_timeout seconds (1 by default; the README says to raise it)
OMPI_MCA_odls_base_sigkill_timeout=30 "${MPI[@]}" -np 2 "$D" tr.lua --steps=100000 --ckpt=1000 \
   --db=int.db --name=ctrlc >int.log 2>&1 &
mp=$!
for _ in $(seq 1 300); do [ "$(sqlite3 int.db "SELECT count(*) FROM metrics" 2>/dev/null)" -gt 20 ] 2>/dev/null && break; sleep 0.1; done
kill -INT "$mp"
for _ in $(seq 1 600); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$mp" 2>/dev/null && { why+="mpirun still runs 60 s after Ctrl-C"$'\n'; kill -9 "$mp"; }
wait "$mp" 2>/dev/null
st=$(sqlite3 int.db "SELECT status FROM runs WHERE name = 'ctrlc'")
[ "$st" = interrupted ] || why+="status '$st': $(tail -5 int.log)"$'\n'
ck=$(sqlite3 int.db "SELECT path FROM checkpoints ORDER BY step DESC LIMIT 1")
[ -n "$ck" ] && [ -s "$ck" ] || why+="no checkpoint"$'\n'
"$D" tr.lua --resume="$ck" --steps=$(( $(sqlite3 int.db "SELECT max(step) FROM checkpoints") + 1 )) --db=int.db \
   >int2.log 2>&1 || why+="resume failed: $(tail -3 int2.log)"$'\n'
t "Ctrl-C at mpirun: the run ends 'interrupted' with a checkpoint that resumes"

# ------------------------------------------------------------ sharded evaluation

cat >ev.lua <<'EOF'
local ddpm = require 'ddpm'
local core = ddpm.core
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    in_ch = 1, out_ch = 1, resolution = 8, seed = 3}
local diff = ddpm.diffusion{T = 20}
local out = {}
local x = diff:sample(m, {n = 5, shape = {1, 8, 8}, seed = 2, progress = false})
local y = diff:sample(m, {n = 4, shape = {1, 8, 8}, seed = 2, steps = 5, sampler = 'ddim', eta = 0.5, progress = false})
out.sample = core.hash64(x) .. ' ' .. core.hash64(y)
local data = core.dataset_idx('data.idx')
local r = diff:nll(m, data, {n = 7, batch = 2, seed = 4, progress = false})
out.nll = ('%.17g %.17g %.17g'):format(r.bpd, r.prior, r.terms[1])
for i = 1, 7 do out['ex' .. i] = ('%.17g'):format(r.per_example[i]) end
local lenet = core.lenet_load(arg[1])
local imgs = core.randn({9, 1, 28, 28}, 5):clamp(-1, 1)
local g = ddpm.metrics.feature_stats(lenet, imgs)
local mean, cov = g:mean(), g:cov()
out.fd = ('%d %.17g %.17g'):format(g:count(), mean:sum(), cov:sum())
if ddpm.dist.is_main() then
   local keys = {}
   for k in pairs(out) do keys[#keys + 1] = k end
   table.sort(keys)
   for _, k in ipairs(keys) do print(k, out[k]) end
end
EOF
LENET=$(cd "$OLDPWD" && pwd)/data/lenet_fmnist.safetensors
for np in 1 2 3; do
   "${MPI[@]}" -np $np "$D" ev.lua "$LENET" >ev$np.txt 2>ev$np.log || why+="np $np failed: $(tail -3 ev$np.log)"$'\n'
done
"$D" ev.lua "$LENET" >ev0.txt 2>ev0.log || why+="plain failed: $(tail -3 ev0.log)"$'\n'
cmp -s ev0.txt ev1.txt || why+="np 1 differs from a plain run"$'\n'
for np in 2 3; do
   [ "$(grep ^sample ev1.txt)" = "$(grep ^sample ev$np.txt)" ] || why+="np $np: samples differ"$'\n'
   [ "$(grep ^ex ev1.txt)" = "$(grep ^ex ev$np.txt)" ] || why+="np $np: per-example NLL differ"$'\n'
   # NLL: sums of the same float64 terms in another order (1e-12); FD-LeNet:
   # float32 features of smaller batches (the GEMM's blocking) agree to ~1e-7
   paste <(grep -E '^(nll|fd)' ev1.txt) <(grep -E '^(nll|fd)' ev$np.txt) | awk '{
      tol = $1 == "nll" ? 1e-12 : 1e-5
      for (i = 2; i <= 4; i++) { a = $i; b = $(i + 4); d = a - b; if (d < 0) d = -d; s = a < 0 ? -a : a
         if (d > tol * (s + 1e-300)) { print $1 " field " i ": " a " vs " b; bad = 1 } } } END { exit bad }' ||
      why+="np $np: sums differ: $(paste ev1.txt ev$np.txt)"$'\n'
done
[ -s ev1.txt ] || why+="no output"$'\n'
t "diff:sample (ancestral, DDIM; bit for bit), diff:nll (per example bit for bit, sums 1e-12) and FD-LeNet statistics (1e-5) shard over 1, 2, 3 ranks"

# FID/IS: each rank runs the Inception network on its share of every chunk
WEIGHTS=$(cd "$OLDPWD" && pwd)/tests/fixtures/inception_weights.safetensors
if [ -f "$WEIGHTS" ]; then
   cat >fid.lua <<'EOF'
local ddpm = require 'ddpm'
local acc = ddpm.fid.accumulator{weights = arg[1], chunk = 4}
local x = ddpm.core.rand({7, 3, 16, 16}, 9) * 2 - 1
acc:add(x)
acc:add(x:narrow(1, 1, 3))
local r = acc:result{splits = 2, warn = false}
local g = acc:stats()
if ddpm.dist.is_main() then
   print(('%d %.17g %.17g %.17g %.17g'):format(r.n, r.is, r.is_std, g:mean():sum(), g:cov():sum()))
end
EOF
   for np in 1 2 3; do
      "${MPI[@]}" -np $np "$D" fid.lua "$WEIGHTS" >fid$np.txt 2>fid$np.log || why+="np $np: $(tail -3 fid$np.log)"$'\n'
   done
   for np in 2 3; do
      # every chunk's features and logits are gathered in order: one process's bits
      [ -s fid1.txt ] && cmp -s fid1.txt fid$np.txt || why+="np $np: $(paste fid1.txt fid$np.txt)"$'\n'
   done
   t "FID/IS statistics: 2 and 3 ranks share the Inception work and give 1 rank's result bit for bit"
fi

# ------------------------------------------------------------ an experiment script

# experiments/cifar_linear.lua on CIFAR-10 binary files written here: train,
# NLL and sample files, on 1 and on 2 ranks
mkdir -p cifar
"$D" -e '
for _, name in ipairs{"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"} do
   local f = assert(io.open("cifar/" .. name .. ".bin", "wb"))
   for r = 0, 5 do
      local px = {}
      for i = 0, 3071 do px[i + 1] = string.char((i * 3 + r * 29 + #name * 7) % 256) end
      f:write(string.char(r), table.concat(px))
   end
   f:close()
end'
ROOT=$(cd "$OLDPWD" && pwd)
CARGS=(--ch=32 --ch_mult=1,2 --num_res_blocks=1 --attn_resolutions=16 --T=20 --steps=3 --batch=2 --warmup=1
       --sample_n=0 --checkpoint_every=0 --nll_batch=2 --nll_n=4 --eval_samples=3 --eval_batch=2 --data_dir=cifar)
for np in 1 2; do
   "${MPI[@]}" -np $np "$D" "$ROOT/experiments/cifar_linear.lua" "${CARGS[@]}" --db=cifar$np.db >cifar$np.log 2>&1 ||
      why+="np $np: $(tail -5 cifar$np.log)"$'\n'
   r=$(sqlite3 cifar$np.db "SELECT status || ' ' || world_size FROM runs")
   [ "$r" = "finished $np" ] || why+="np $np: run '$r'"$'\n'
done
b1=$(sqlite3 cifar1.db "SELECT value FROM metrics_v WHERE key = 'nll_bpd'")
b2=$(sqlite3 cifar2.db "SELECT value FROM metrics_v WHERE key = 'nll_bpd'")
awk -v a="$b1" -v b="$b2" 'BEGIN {d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-4 * a)}' ||
   why+="NLL: 1 rank $b1, 2 ranks $b2"$'\n'
n2=$(ls runs/*/eval-samples/*.png 2>/dev/null | wc -l)
[ "$n2" -ge 6 ] || why+="$n2 sample files in all (3 a run expected)"$'\n'
t "experiments/cifar_linear.lua on 2 ranks: finished, world_size 2, the NLL of 1 rank (1e-4), its sample files"

# ------------------------------------------------------------ ddpm.dist

cat >api.lua <<'EOF'
local ddpm = require 'ddpm'
local dist, core = ddpm.dist, ddpm.core
local r, n = dist.rank(), dist.size()
local x = core.zeros{3}:fill(r + 1)
dist.allreduce(x)
assert(x[1] == n * (n + 1) / 2, 'sum ' .. x[1])
local y = core.zeros{2}:fill(r + 1)
assert(dist.allreduce(y, 'max')[2] == n and dist.allreduce(core.zeros{1}:fill(r + 1), 'min')[1] == 1)
local z = core.zeros{4}:fill(r * 10)
dist.broadcast(z, n - 1)
assert(z[4] == (n - 1) * 10, 'broadcast')
assert(dist.allreduce_numbers({r, 1})[2] == n)
assert(dist.same('x') and not (n > 1 and dist.same(tostring(r))))
local lo, hi = dist.shard(10)
local cover = dist.allreduce_numbers({hi - lo})[1]
assert(cover == 10, 'shares cover 0..9')
dist.barrier()
assert(not pcall(dist.allreduce, x, 'avg'), 'an unknown op is an error')
assert(not pcall(dist.broadcast, x, n), 'a root past the last rank is an error')
if dist.is_main() then print('ok ' .. n) end
EOF
for np in 1 3; do
   out=$("${MPI[@]}" -np $np "$D" api.lua 2>&1)
   grep -q "^ok $np$" <<<"$out" || why+="np $np: $out"$'\n'
done
out=$("$D" api.lua 2>&1); grep -q "^ok 1$" <<<"$out" || why+="plain: $out"$'\n'
out=$("$D" -e "print(require('ddpm').dist.active(), os.getenv('OMPI_COMM_WORLD_SIZE'))" 2>&1)
[ "$out" = $'false\tnil' ] || why+="without mpirun MPI is joined: $out"$'\n'
t "ddpm.dist: allreduce (sum, max, min), broadcast, same, shard, barrier; without mpirun a world of one"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
