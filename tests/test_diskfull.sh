#!/usr/bin/env bash
# tests/test_diskfull.sh — a training run whose writes fail. A checkpoint, a
# sample PNG or runs.db on a small tmpfs that fills up (ENOSPC), a checkpoint
# past RLIMIT_FSIZE (EFBIG, SIGXFSZ ignored), a checkpoint or PNG whose fsync
# fails with EIO and a runs.db whose writes fail with EIO (strace fault
# injection): each gives an error naming the
# file, ends the run 'failed' with that reason, keeps the checkpoint before it
# intact and leaves no temp file. When runs.db itself is full the run cannot
# be marked failed: stderr says so and the database stays intact.
# The tmpfs cases need root (mount); the EIO case needs strace.
# Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
tmp=$(mktemp -d)
FS=$tmp/fs
mounted=0
cleanup() { [ "$mounted" = 1 ] && umount "$FS"; rm -rf "$tmp"; }
trap cleanup EXIT
export DDPMLUA_NUM_THREADS=1 DDPMLUA_HISTORY=
unset DDPMLUA_DB DDPMLUA_PARENT_RUN

n=0 failed=0 why=""
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
   n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
   [ -n "$why" ] && printf '%s\n' "$why" | sed 's/^/#   /'
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
t() { if [ -z "$why" ]; then pass "$1"; else fail "$1"; fi; why=""; }
has() { grep -qF -- "$2" <<<"$1" || why+="$3 lacks '$2': $1"$'\n'; }
# the files of a folder, one line, sorted
files() { (cd "$1" && ls -A | sort | tr '\n' ' '); }
eq() { [ "$1" = "$2" ] || why+="$3: got '$1', want '$2'"$'\n'; }
# q DB SQL: the rows, one a line, columns joined by '|' (read-only)
q() {
   python3 -c 'import sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for r in con.execute(sys.argv[2]): print("|".join(str(v) for v in r))' "$1" "$2" 2>&1
}

python3 - "$tmp/synthetic-idx3-ubyte" <<'EOF'
import sys
with open(sys.argv[1], 'wb') as f:
    f.write(b'\0\0\x08\x03' + (64).to_bytes(4, 'big') + (8).to_bytes(4, 'big') * 2)
    for n in range(64):
        oy, ox = (1 if n % 4 < 2 else 5), (1 if n % 2 == 0 else 5)
        f.write(bytes(255 if oy <= y < oy + 2 and ox <= x < ox + 2 else 0
                      for y in range(8) for x in range(8)))
EOF

# train.lua MODE DB DIR: 12 steps, checkpoints every 2 (or a sample grid at
# step 4 in mode png); in modes ckpt, png and db the folder of the run (or
# of the database) is filled up after step 3.
cat >"$tmp/train.lua" <<EOF
local ddpm = require 'ddpm'
local core = ddpm.core
local mode, db, dir = arg[1], arg[2], arg[3]
local fdir = mode == 'db' and db:match('^(.*)/') or dir
local function fill(leave)   -- leaves about leave bytes free
   local p = io.popen('df -B1 --output=avail ' .. fdir .. ' | tail -n 1')
   local avail = tonumber(p:read('*a'))
   p:close()
   os.execute(('dd if=/dev/zero of=%s/filler bs=4096 count=%d 2>/dev/null'):format(
      fdir, math.max(0, math.floor((avail - leave) / 4096))))
end
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    dropout = 0, in_ch = 1, out_ch = 1, resolution = 8, seed = 1}
local run = ddpm.log.start{db = db, name = 'full-' .. mode, dir = dir}
ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = core.dataset_idx('$tmp/synthetic-idx3-ubyte'),
   steps = 12, batch = 8, seed = 1, run = run, progress = false,
   sample_n = 4, sample_every = mode:match('png') and 4 or 0, sample_at_end = false,
   checkpoint_every = mode:match('png') and 0 or 2, keep_checkpoints = 2,
   on_step = function(step)
      if step == 3 and (mode == 'ckpt' or mode == 'png' or mode == 'db') then
         fill(mode == 'ckpt' and 40000 or 0)
      end
   end}
EOF

# check_failed DB RUNDIR WHAT: the run is failed with WHAT in its error, its
# checkpoint at step 2 loads and matches the sha256 in runs.db
check_failed() {
   local s
   s=$(q "$1" "SELECT status || ' ' || error_text FROM runs ORDER BY run_id DESC LIMIT 1")
   has "$s" "failed" "the run's status"
   has "$s" "$3" "the run's error_text"
}
check_ckpt2() {
   local s
   s=$(q "$1" "SELECT sha256 FROM checkpoints WHERE step = 2")
   [ -n "$s" ] || why+="no step-2 checkpoint in runs.db"$'\n'
   [ "$(sha256sum "$2/ckpt-00000002.safetensors" 2>/dev/null | cut -c1-64)" = "$s" ] ||
      why+="ckpt-00000002.safetensors differs from its sha256 in runs.db"$'\n'
   "$D" -e "assert(require('ddpm').core.load_safetensors('$2/ckpt-00000002.safetensors')['adam.m'])" >/dev/null 2>&1 ||
      why+="ckpt-00000002.safetensors does not load"$'\n'
}

if [ "$(id -u)" = 0 ] && mkdir -p "$FS" && mount -t tmpfs -o size=2m tmpfs "$FS" 2>/dev/null; then
   mounted=1
   # 1. a checkpoint on a full disk
   mkdir -p "$FS/ckpt"
   err=$("$D" "$tmp/train.lua" ckpt "$tmp/ckpt.db" "$FS/ckpt" 2>&1 >/dev/null); rc=$?
   [ "$rc" -ne 0 ] || why+="exit status 0"$'\n'
   has "$err" "$FS/ckpt/ckpt-00000004.safetensors" "stderr"
   has "$err" "No space left on device" "stderr"
   check_failed "$tmp/ckpt.db" "$FS/ckpt" "ckpt-00000004.safetensors: write failed: No space left on device"
   check_ckpt2 "$tmp/ckpt.db" "$FS/ckpt"
   eq "$(files "$FS/ckpt")" "ckpt-00000002.safetensors filler " "files of the run"
   t "checkpoint on a full tmpfs: error names the file, run failed, step-2 checkpoint intact, no temp file"
   rm -rf "${FS:?}"/*

   # 2. a sample grid on a full disk
   mkdir -p "$FS/png"
   err=$("$D" "$tmp/train.lua" png "$tmp/png.db" "$FS/png" 2>&1 >/dev/null); rc=$?
   [ "$rc" -ne 0 ] || why+="exit status 0"$'\n'
   has "$err" "$FS/png/samples-00000004.png" "stderr"
   has "$err" "No space left on device" "stderr"
   check_failed "$tmp/png.db" "$FS/png" "samples-00000004.png: write failed"
   eq "$(files "$FS/png")" "filler " "files of the run"
   t "sample PNG on a full tmpfs: error names the file, run failed, no temp file"
   rm -rf "${FS:?}"/*

   # 3. runs.db on a full disk
   mkdir -p "$FS/db"
   err=$("$D" "$tmp/train.lua" db "$FS/db/runs.db" "$tmp/dbrun" 2>&1 >/dev/null); rc=$?
   [ "$rc" -ne 0 ] || why+="exit status 0"$'\n'
   has "$err" "could not be marked failed in $FS/db/runs.db" "stderr"
   has "$err" "flush: $FS/db/runs.db: database or disk is full" "stderr"
   rm -f "$FS/db/filler"
   eq "$(q "$FS/db/runs.db" "PRAGMA integrity_check")" "ok" "integrity_check"
   s=$("$D" runs --db "$FS/db/runs.db" 2>&1)
   has "$s" "full-db" "ddpmlua runs"
   has "$s" "crashed" "ddpmlua runs"
   s=$(q "$FS/db/runs.db" "SELECT min(step), max(step), count(*) FROM metrics_v WHERE key = 'loss'")
   [[ "$s" =~ ^1\|[1-3]\|[1-3]$ ]] || why+="loss rows of steps 1..(at most 3) expected, got: $s"$'\n'
   eq "$(files "$FS/db")" "runs.db runs.db-shm runs.db-wal " "files beside runs.db"
   t "runs.db on a full tmpfs: stderr names it, the database stays intact and readable"
   rm -rf "${FS:?}"/*
else
   skip "checkpoint on a full tmpfs" "needs root to mount a tmpfs"
   skip "sample PNG on a full tmpfs" "needs root to mount a tmpfs"
   skip "runs.db on a full tmpfs" "needs root to mount a tmpfs"
fi

# 4. a checkpoint past RLIMIT_FSIZE (512 KiB; a checkpoint is ~730 KiB)
mkdir -p "$tmp/fsize"
err=$(bash -c 'trap "" XFSZ; ulimit -f 512; exec "$@"' _ "$D" "$tmp/train.lua" fsize "$tmp/fsize.db" \
      "$tmp/fsize" 2>&1 >/dev/null); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || why+="exit status $rc"$'\n'
has "$err" "$tmp/fsize/ckpt-00000002.safetensors" "stderr"
has "$err" "File too large" "stderr"
check_failed "$tmp/fsize.db" "$tmp/fsize" "ckpt-00000002.safetensors: write failed: File too large"
eq "$(files "$tmp/fsize")" "" "files of the run"
t "checkpoint past RLIMIT_FSIZE: error names the file, run failed, no temp file"

# 5. EIO from fsync of the second checkpoint (fsync calls: checkpoint 2,
# its folder, checkpoint 4; SQLite syncs with fdatasync)
if command -v strace >/dev/null; then
   mkdir -p "$tmp/eio"
   err=$(strace -f -qq -o /dev/null -e trace=fsync -e inject=fsync:error=EIO:when=3 \
         "$D" "$tmp/train.lua" eio "$tmp/eio.db" "$tmp/eio" 2>&1 >/dev/null); rc=$?
   [ "$rc" -ne 0 ] || why+="exit status 0"$'\n'
   has "$err" "$tmp/eio/ckpt-00000004.safetensors: fsync failed: Input/output error" "stderr"
   check_failed "$tmp/eio.db" "$tmp/eio" "ckpt-00000004.safetensors: fsync failed: Input/output error"
   check_ckpt2 "$tmp/eio.db" "$tmp/eio"
   eq "$(files "$tmp/eio")" "ckpt-00000002.safetensors " "files of the run"
   t "checkpoint whose fsync fails with EIO: error names the file, run failed, step-2 checkpoint intact, no temp file"

   # 6. EIO from fsync of the sample grid (the first fsync of a run without
   # checkpoints)
   mkdir -p "$tmp/eiopng"
   err=$(strace -f -qq -o /dev/null -e trace=fsync -e inject=fsync:error=EIO:when=1 \
         "$D" "$tmp/train.lua" eio-png "$tmp/eiopng.db" "$tmp/eiopng" 2>&1 >/dev/null); rc=$?
   [ "$rc" -ne 0 ] || why+="exit status 0"$'\n'
   has "$err" "$tmp/eiopng/samples-00000004.png" "stderr"
   has "$err" "Input/output error" "stderr"
   check_failed "$tmp/eiopng.db" "$tmp/eiopng" "samples-00000004.png"
   eq "$(files "$tmp/eiopng")" "" "files of the run"
   t "sample PNG whose fsync fails with EIO: error names the file, run failed, no temp file"

   # 7. EIO on runs.db: every write to its WAL fails from two thirds of the
   # run on (counted on a clean run first)
   mkdir -p "$tmp/eiodb"
   strace -f -qq -o "$tmp/wal.trace" -P "$tmp/eiodb/count.db-wal" -e trace=pwrite64 \
      "$D" "$tmp/train.lua" eio-db "$tmp/eiodb/count.db" "$tmp/eiodb/count" >/dev/null 2>&1
   nw=$(grep -c 'pwrite64(' "$tmp/wal.trace")
   db=$tmp/eiodb/runs.db
   err=$(strace -f -qq -o /dev/null -P "$db-wal" -e trace=pwrite64 -e inject=pwrite64:error=EIO:when=$((nw * 2 / 3))+ \
         "$D" "$tmp/train.lua" eio-db "$db" "$tmp/eiodb/run" 2>&1 >/dev/null); rc=$?
   [ "$rc" -ne 0 ] || why+="exit status 0 ($nw WAL writes in a clean run)"$'\n'
   has "$err" "$db: disk I/O error" "stderr"
   has "$err" "could not be marked failed in $db" "stderr"
   eq "$(q "$db" "PRAGMA integrity_check")" "ok" "integrity_check"
   s=$("$D" runs --db "$db" 2>&1)
   has "$s" "crashed" "ddpmlua runs"
   s=$(q "$db" "SELECT (SELECT max(step) FROM metrics_v WHERE key = 'loss') >= (SELECT max(step) FROM checkpoints), (SELECT count(*) FROM checkpoints)")
   [[ "$s" =~ ^1\|[1-9] ]] || why+="metrics up to the last recorded checkpoint expected: $s"$'\n'
   ls -A "$tmp/eiodb/run" | grep -q '\.tmp\.' && why+="a temp file is left: $(ls -A "$tmp/eiodb/run")"$'\n'
   t "runs.db whose writes fail with EIO: stderr names it, the database stays intact, the run reads crashed with its metrics"
else
   skip "checkpoint whose fsync fails with EIO" "needs strace (scripts/setup.sh test)"
   skip "sample PNG whose fsync fails with EIO" "needs strace (scripts/setup.sh test)"
   skip "runs.db whose writes fail with EIO" "needs strace (scripts/setup.sh test)"
fi

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
