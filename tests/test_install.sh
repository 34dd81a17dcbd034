#!/usr/bin/env bash
# tests/test_install.sh — `make install PREFIX=<temp>` gives a ddpmlua that
# works from any folder: an experiment found by its bare name runs and finds
# its data file (the FD-LeNet classifier), the library, help and man page are
# there; and the LuaRocks rockspec builds ddpm.core so that plain LuaJIT can
# `require 'ddpm'`. Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DDPMLUA_NUM_THREADS=2 DDPMLUA_HISTORY=
unset DDPMLUA_DB DDPMLUA_PARENT_RUN DDPMLUA_LENET
# what a user installs is the normal build, also when this runs under
# `make asan`, whose sanitizer flags and build folder reach nested makes
# through MAKEFLAGS and the environment (plain luajit cannot load a module
# built with them)
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES OPT CFLAGS LDFLAGS BUILD EXE

n=0 failed=0 why=""
t() {
   n=$((n + 1))
   if [ -z "$why" ]; then echo "ok $n - $1"; else
      failed=$((failed + 1)); echo "not ok $n - $1"; printf '%s\n' "$why" | sed 's/^/#   /'; fi
   why=""
}
run() { "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }

P=$tmp/prefix
run make --no-print-directory install PREFIX="$P"
[ "$rc" -eq 0 ] || why+="make install failed: $err"$'\n'
for f in bin/ddpmlua share/ddpmlua/lua/ddpm/init.lua share/ddpmlua/lua/ddpm/cmd/common.lua \
         share/ddpmlua/experiments/ablation_sigma.lua \
         share/ddpmlua/data/lenet_fmnist.safetensors share/man/man1/ddpmlua.1; do
   [ -f "$P/$f" ] || why+="$f not installed"$'\n'
done
t "make install puts the binary, library, experiments, data and man page under PREFIX"

W=$tmp/elsewhere
mkdir -p "$W"
cd "$W" || exit 2
run "$P/bin/ddpmlua" ablation_sigma.lua --db="$W/abl.db" --T=20 --steps=2 --batch=8 --warmup=1 \
    --sample_n=0 --nll_n=8 --nll_batch=8 --fd_n=16 --fd_steps=5
[ "$rc" -eq 0 ] || why+="exit status $rc: $err"$'\n'
grep -q 'FD-LeNet' <<<"$err" || why+="no FD-LeNet: $err"$'\n'
n_ok=$("$P/bin/ddpmlua" sql --db "$W/abl.db" --csv \
       "SELECT count(*) AS n FROM runs WHERE status = 'finished' AND script_path LIKE '$P/%'" | tail -n 1)
[ "$n_ok" = "2" ] || why+="finished runs of the installed script: '$n_ok'"$'\n'
t "the installed ddpmlua runs an experiment by its bare name from another folder (FD-LeNet data found)"

run "$P/bin/ddpmlua" help export
[ "$rc" -eq 0 ] && grep -q 'usage: ddpmlua export' <<<"$out" || why+="help export: $rc $out $err"$'\n'
run man -l "$P/share/man/man1/ddpmlua.1"
grep -q 'ddpmlua' <<<"$out" || why+="man page: $out $err"$'\n'
t "help and the man page are installed"

cd "$ROOT" || exit 2
if command -v luarocks >/dev/null && command -v luajit >/dev/null; then
   run luarocks make --tree="$tmp/rocks" ddpmlua-0.1.0-1.rockspec
   [ "$rc" -eq 0 ] || why+="luarocks make failed: $out $err"$'\n'
   cd "$W" || exit 2
   run env LUA_PATH="$tmp/rocks/share/lua/5.1/?.lua;$tmp/rocks/share/lua/5.1/?/init.lua;;" \
       LUA_CPATH="$tmp/rocks/lib/lua/5.1/?.so;;" \
       luajit -e "local d = require 'ddpm'; local m = d.unet{ch = 8, groups = 4, ch_mult = {1, 2},
          num_res_blocks = 1, attn_resolutions = {}, in_ch = 1, out_ch = 1, resolution = 8}
          print(m:num_params(), d.randn({2, 3}, 1):numel(), package.loaded['ddpm.core'] ~= nil)"
   [ "$rc" -eq 0 ] || why+="plain luajit: $err"$'\n'
   grep -q '^[0-9]*	6	true$' <<<"$out" || why+="output: $out"$'\n'
   t "luarocks make builds ddpm.core; plain luajit requires ddpm and builds a U-Net"
   cd "$ROOT" || exit 2
else
   n=$((n + 1)); echo "not ok $n - luarocks and luajit are needed (scripts/setup.sh test)"; failed=$((failed + 1))
fi

echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
