#!/usr/bin/env bash
# tests/test_workflow.sh — the everyday research workflow around a run:
# flags checked before anything is recorded (one line, exit status 2), the
# run folder made on first write, output that reaches a file while a run
# goes on, a clean message after Ctrl-C/SIGTERM, runs that re-run and export
# from any folder, and a failed run giving a failed exit status. Everything
# happens in a temporary folder. Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DDPMLUA_NUM_THREADS=1 DDPMLUA_HISTORY=
unset DDPMLUA_DB DDPMLUA_PARENT_RUN DDPMLUA_DEBUG

n=0 failed=0 why=""
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
   n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
   [ -n "$why" ] && printf '%s\n' "$why" | sed 's/^/#   /'
}
t() { if [ -z "$why" ]; then pass "$1"; else fail "$1"; fi; why=""; }
run() { "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
expect_rc() { [ "$rc" -eq "$1" ] || why+="exit status $rc, want $1; stderr: $err"$'\n'; }
has_out() { grep -qF -- "$1" <<<"$out" || why+="stdout lacks '$1': $out"$'\n'; }
lacks_out() { ! grep -qF -- "$1" <<<"$out" || why+="stdout has '$1': $out"$'\n'; }
has_err() { grep -qF -- "$1" <<<"$err" || why+="stderr lacks '$1': $err"$'\n'; }
same() { [ "$1" = "$2" ] || why+="$3: got '$1', want '$2'"$'\n'; }
# usage_error WORDS...: one line on stderr, exit status 2, no traceback
usage_error() {
   expect_rc 2
   [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || why+="stderr is not one line: $err"$'\n'
   grep -q 'traceback' <<<"$err" && why+="stderr has a traceback: $err"$'\n'
   for w in "$@"; do has_err "$w"; done
   return 0
}
nothing_recorded() {
   [ ! -e "$1/runs.db" ] || why+="$1/runs.db exists: $(ls "$1")"$'\n'
   [ ! -e "$1/runs" ] || why+="$1/runs/ exists: $(ls -R "$1/runs")"$'\n'
}

# Synthetic 8x8 IDX images for short real trainings.
cat >"$tmp/mkidx.lua" <<'EOF'
local n = 64
local p = {string.char(0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 8, 0, 0, 0, 8)}
for i = 0, n - 1 do for y = 0, 7 do for x = 0, 7 do
   p[#p + 1] = string.char(((x + y + i) % 4 == 0) and 255 or 0)
end end end
local f = assert(io.open(arg[1], 'wb')); f:write(table.concat(p)); f:close()
EOF
"$D" "$tmp/mkidx.lua" "$tmp/data.idx"
cat >"$tmp/tiny.lua" <<'EOF'
-- a short training on 8x8 images, with the usual script shape
local ddpm = require 'ddpm'
local cfg = ddpm.cli.parse(arg, {steps = 6, batch = 4, lr = 2e-3, seed = 1, T = 20, db = 'runs.db',
   resume = '', data = '', sample_n = 0, wait = false, name = 'tiny', checkpoint_every = 3},
   {data = {'IDX images', path = true}, wait = 'sleep before training (for signals)'})
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {},
                    in_ch = 1, out_ch = 1, resolution = 8, seed = cfg.seed}
local run = ddpm.log.start{db = cfg.db, name = cfg.name, config = cfg, seed = cfg.seed}
print(('run %d (%s)'):format(run.id, run.dir))
if cfg.wait then while true do ddpm.core.randn({64, 64}, 1):free() end end
local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = cfg.T}, data = ddpm.core.dataset_idx(cfg.data),
   steps = cfg.steps, batch = cfg.batch, lr = cfg.lr, seed = cfg.seed, run = run, progress = false,
   sample_n = cfg.sample_n, sample_every = 0, checkpoint_every = cfg.checkpoint_every,
   resume = cfg.resume ~= '' and cfg.resume or nil}
print(('%s at step %d; checkpoint %s'):format(r.status, r.step, tostring(r.checkpoint)))
EOF

W=$tmp/w
mkdir -p "$W"
cd "$W" || exit 2

# ------------------------------------------------------------ flags checked first
FM=$ROOT/experiments/fashion_mnist.lua
run "$D" "$FM" --batch=-1
usage_error "option --batch must be at least 1, got -1"; nothing_recorded "$W"
t "--batch=-1: one line, exit status 2, no run row, no folder"
run "$D" "$FM" --steps=1.5
usage_error "option --steps expects an integer, got 1.5"; nothing_recorded "$W"
t "--steps=1.5: one line, exit status 2, nothing recorded"
run "$D" "$FM" --loss_type=foo
usage_error "option --loss_type must be one of" "got 'foo'"; nothing_recorded "$W"
t "--loss_type=foo: the allowed values, exit status 2, nothing recorded"
run "$D" "$FM" --los_type=kl
usage_error "unknown option '--los_type'" "did you mean --loss_type?"
t "an unknown option says 'did you mean'"
run "$D" "$FM" --mean_type=eps_
usage_error "did you mean 'eps'?"
t "a near-miss enum value says 'did you mean'"
run "$D" "$FM" --steps=1.5 --debug
expect_rc 2; has_err "option --steps expects an integer, got 1.5"; has_err "stack traceback"
t "--debug gives the traceback, same exit status"
run "$D" "$FM" --lr=abc
usage_error "option --lr expects a number, got 'abc'"
t "a number that is not one: one line"

# ------------------------------------------------------------ --help
for s in "$ROOT"/experiments/*.lua "$ROOT"/scripts/demo.lua "$ROOT"/scripts/train_lenet.lua \
         "$ROOT"/scripts/ablation_figure.lua; do
   run "$D" "$s" --help
   expect_rc 0
   # every option line has a description besides its default
   bad=$(grep -E '^  --' <<<"$out" | grep -vE '^  --[A-Za-z_]+ +[^[ ].* \[default .*\]$')
   [ -z "$bad" ] || why+="$(basename "$s"): options without a description: $bad"$'\n'
   grep -qE '^  --[A-Za-z_]+ ' <<<"$out" || why+="$(basename "$s"): no options listed: $out"$'\n'
done
t "every script's --help describes each option and its default"
run "$D" "$ROOT/experiments/ablation_loss.lua" --help
lacks_out "--mean_type"; lacks_out "--loss_type"; lacks_out "--var_type"
t "ablation_loss.lua offers no option that its rows override"
run "$D" "$ROOT/experiments/ablation_sigma.lua" --help
lacks_out "--var_type"; has_out "--loss_type"
t "ablation_sigma.lua offers no --var_type (its rows set it)"

# ------------------------------------------------------------ stdout while a run goes on
"$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --wait --name=waiting >"$tmp/log.txt" 2>"$tmp/log.err" &
pid=$!
for _ in $(seq 100); do grep -q '^run 1 (' "$tmp/log.txt" && break; sleep 0.1; done
seen=$(cat "$tmp/log.txt")
kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
grep -q '^run 1 (' <<<"$seen" || why+="the run line is not in the file while the run goes on: '$seen'"$'\n'
grep -q '^run 1 (' "$tmp/log.txt" || why+="nor after kill -9"$'\n'
t "stdout redirected to a file: the 'run N (dir)' line is there at once and after a kill"
rm -rf "$W"/runs.db* "$W"/runs

# ------------------------------------------------------------ the run folder on first write
run "$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --wait=false --steps=2 --checkpoint_every=0 --name=nofiles \
   --data=/nonexistent.idx
expect_rc 1
dir=$(sed -n 's/^run [0-9]* (\(.*\))$/\1/p' <<<"$out")
[ -n "$dir" ] || why+="no run line: $out"$'\n'
[ -n "$dir" ] && [ ! -e "$dir" ] || why+="the run folder $dir exists although nothing was written"$'\n'
t "a run that writes no file leaves no folder"

run "$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --steps=3 --checkpoint_every=3 --name=files
expect_rc 0
dir=$(sed -n 's/^run [0-9]* (\(.*\))$/\1/p' <<<"$out")
ls "$dir"/ckpt-00000003.safetensors >/dev/null 2>&1 || why+="no checkpoint in $dir: $(ls "$dir" 2>&1)"$'\n'
t "a run that writes a checkpoint has its folder"

# ------------------------------------------------------------ exit status of a failed run
cat >"$tmp/catch.lua" <<'EOF'
local ddpm = require 'ddpm'
local run = ddpm.log.start{db = 'runs.db', name = 'caught', config = {}}
local ok = pcall(function() error('diverged') end)
run:finish(ok and 'finished' or 'failed', 'diverged')
print('the script goes on')
EOF
run "$D" "$tmp/catch.lua"
expect_rc 1; has_out "the script goes on"; has_err "made by this script failed"
t "a script whose run failed exits 1 even when it caught the error"
run "$D" -e "local r = require('ddpm').log.start{db = 'runs.db', config = {}}; r:finish()"
expect_rc 0
t "a finished run exits 0"

# ------------------------------------------------------------ re-run and export from anywhere
R=$tmp/r
mkdir -p "$R/w"
cd "$R/w" || exit 2
"$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --steps=3 --checkpoint_every=3 --name=first >/dev/null 2>&1
ck=$(ls runs/*/ckpt-00000003.safetensors 2>/dev/null | head -n 1)
run "$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --steps=6 --checkpoint_every=3 --name=second --resume="$ck"
expect_rc 0
case "$ck" in /*) why+="the checkpoint path should be relative here: $ck"$'\n' ;; esac
argv=$("$D" sql --db runs.db --csv "SELECT argv_json FROM runs WHERE run_id = 2" | tail -n 1)
grep -qF -- "--resume=$R/w/$ck" <<<"$argv" || why+="argv keeps the relative path: $argv"$'\n'
t "a relative --resume is recorded as an absolute path"
cd "$R" || exit 2
run "$D" rerun 2 --db w/runs.db
expect_rc 0; has_out "re-run of run 2"
[ ! -e "$R/runs.db" ] || why+="rerun made a runs.db in the folder it was started from"$'\n'
kid=$("$D" sql --db w/runs.db --csv "SELECT count(*) FROM runs WHERE parent_run_id = 2 AND status = 'finished'" | tail -n 1)
same "$kid" 1 "finished re-runs of run 2 in w/runs.db"
t "rerun from another folder writes into the database it read"
run "$D" export 2 "$R/bundle" --db w/runs.db
expect_rc 0
[ -f "$R/bundle/resumed-from-ckpt-00000003.safetensors" ] || why+="no parent checkpoint: $(ls "$R/bundle")"$'\n'
cmd=$(grep -E '^    .*ddpmlua ' "$R/bundle/README.md" | sed 's/^    //')
grep -qF -- "--resume=$R/bundle/resumed-from-" <<<"$cmd" || why+="the command does not resume from the bundle: $cmd"$'\n'
mkdir -p "$R/other"
(cd "$R/other" && eval "${cmd/ddpmlua /\"\$D\" }") >"$tmp/out" 2>"$tmp/err"
rc=$?; err=$(cat "$tmp/err")
expect_rc 0; has_err "resumed from $R/bundle/resumed-from-"
t "export bundles the checkpoint it resumed from; its command works from any folder"
cd "$W" || exit 2

# ------------------------------------------------------------ plot's output format
run "$D" plot 1 -o out.svg --db "$R/w/runs.db"
expect_rc 2; has_err "plot writes PNG images"
[ ! -e out.svg ] || why+="out.svg was written: $(file out.svg)"$'\n'
t "plot -o out.svg refuses instead of writing PNG bytes into out.svg"
run "$D" plot 1 -o out.png --db "$R/w/runs.db"
expect_rc 0
[ "$(head -c 4 out.png | tail -c 3)" = "PNG" ] || why+="out.png is not a PNG"$'\n'
t "plot -o out.png writes a PNG"

# ------------------------------------------------------------ REPL: Ctrl-C with the JIT on
( echo ':jit on'; echo 'for i = 1, 1e12 do end'; sleep 4
  echo 'function f() local n = 0; while true do n = n + 1 end end'; echo 'f()'; sleep 4
  echo "print('still here')" ) | DDPMLUA_HISTORY= "$D" >"$tmp/repl.out" 2>"$tmp/repl.err" &
pid=$!
sleep 2; kill -INT "$pid" 2>/dev/null; sleep 4; kill -INT "$pid" 2>/dev/null
wait "$pid"; rc=$?
expect_rc 0
grep -q '^still here$' "$tmp/repl.out" || why+="the REPL did not go on: $(cat "$tmp/repl.out" "$tmp/repl.err")"$'\n'
[ "$(grep -c 'interrupted' "$tmp/repl.err")" -ge 2 ] || why+="two chunks should report interrupted: $(cat "$tmp/repl.err")"$'\n'
t "REPL with :jit on: Ctrl-C stops a compiled loop and a compiled function, the session goes on"
run "$D" -e "local r = require 'ddpm.repl'
local s = r.instrument('for i = 1, 3 do x = \"do\" end -- do\nrepeat until true ::a:: local f = function(a) return a end')
print(s)"
has_out 'for i = 1, 3 do __ddpm_poll(); x = "do" end -- do'
has_out 'repeat __ddpm_poll(); until true ::a:: __ddpm_poll(); local f = function(a) __ddpm_poll(); return a end'
t "the REPL's loop instrumentation leaves strings and comments alone"

# ------------------------------------------------------------ what fashion_mnist.lua says at the end
cd "$W" || exit 2
run "$D" "$FM" --steps=2 --batch=4 --sample_n=0 --checkpoint_every=0 --T=20 --db="$W/fm.db"
expect_rc 0
lacks_out "nil"; has_out "finished at step 2; checkpoint "
t "fashion_mnist.lua --sample_n=0: no 'samples nil'"
"$D" "$FM" --steps=100000 --batch=4 --sample_n=4 --checkpoint_every=0 --T=20 --db="$W/fm.db" \
   >"$tmp/fm.out" 2>"$tmp/fm.err" &
pid=$!
for _ in $(seq 200); do grep -q '^run ' "$tmp/fm.out" && break; sleep 0.1; done
sleep 3; kill -TERM "$pid"; wait "$pid"; rc=$?
out=$(cat "$tmp/fm.out"); err=$(cat "$tmp/fm.err")
expect_rc 0
lacks_out "nil"; has_out "interrupted at step "; has_out "; checkpoint /"
t "fashion_mnist.lua after SIGTERM: the checkpoint it wrote, no 'samples nil; checkpoint nil'"

# ------------------------------------------------------------ help for the commands
run "$D" -h
expect_rc 0; has_out "rerun"; has_out "export"; has_out "help CMD"
t "ddpmlua -h lists the history commands"
run "$D" help
expect_rc 0; has_out "ddpmlua runs"; has_out "ddpmlua rerun"; has_out "exit status: 0 when done; 2 for a usage error"
run "$D" help export
expect_rc 0; has_out "usage: ddpmlua export"; has_out "resumed from"
run "$D" help nosuch
expect_rc 2; has_err "unknown command 'nosuch'"
t "ddpmlua help [command]"

echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
