#!/usr/bin/env bash
# tests/test_history_readonly.sh — the run history is safe to read:
#   * every history command (runs, show, compare, plot, sql, report, export)
#     leaves the database byte for byte as it was, and leaves no -wal/-shm
#     files beside a database in rollback-journal mode (such as the one
#     committed under docs/);
#   * a user who may read the database but not write its folder can use all
#     of them (run as the unprivileged user 'nobody' through setpriv, when
#     this test runs as root);
#   * `sql` refuses statements that write unless --write is given;
#   * no command and no Lua reader creates a database that does not exist;
#   * a training run killed with SIGKILL reads as 'crashed' at once.
# Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
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
run() { "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
expect_rc() { [ "$rc" -eq "$1" ] || why+="$2: exit status $rc, want $1; stderr: $err"$'\n'; }
has_out() { grep -qF -- "$1" <<<"$out" || why+="stdout lacks '$1': $out"$'\n'; }
has_err() { grep -qF -- "$1" <<<"$err" || why+="stderr lacks '$1': $err"$'\n'; }
sum() { sha256sum "$1" | cut -c1-64; }
# files beside the database other than itself and its runs/ folder
extra() { (cd "$(dirname "$1")" && ls -A | grep -vxF -e "$(basename "$1")" -e runs -e work | tr '\n' ' '); }

# ------------------------------------------------------------ two real runs

cat >"$tmp/mkidx.lua" <<'EOF'
local function u32(n) return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                                         math.floor(n / 256) % 256, n % 256) end
local p = {"\0\0\8\3", u32(32), u32(8), u32(8)}
for n = 0, 31 do
   for y = 0, 7 do for x = 0, 7 do
      p[#p + 1] = string.char(((x + y + n) % 4 == 0) and 255 or 0)
   end end
end
local f = assert(io.open(arg[1], "wb")); f:write(table.concat(p)); f:close()
EOF
"$D" "$tmp/mkidx.lua" "$tmp/data.idx"
cat >"$tmp/tiny.lua" <<'EOF'
local ddpm = require 'ddpm'
local cfg = ddpm.cli.parse(arg, {steps = 8, name = 'tiny', data = '', lr = 2e-3})
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {},
                    in_ch = 1, out_ch = 1, resolution = 8}
local run = ddpm.log.start{name = cfg.name, seed = 1, config = {steps = cfg.steps, lr = cfg.lr}}
io.stdout:write(('started run %d\n'):format(run.id)); io.stdout:flush()
ddpm.train{model = m, diffusion = ddpm.diffusion{T = 20}, data = ddpm.core.dataset_idx(cfg.data),
   steps = cfg.steps, batch = 4, lr = cfg.lr, seed = 1, run = run, progress = false, sample_n = 4,
   sample_every = 0, checkpoint_every = 4}
EOF
DB=$tmp/db/runs.db
mkdir -p "$tmp/db/work"
(cd "$tmp/db/work" && DDPMLUA_DB="$DB" "$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --name=a >/dev/null 2>&1 &&
 DDPMLUA_DB="$DB" "$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --name=b --lr=0.003 >/dev/null 2>&1)
[ "$(sqlite3 "$DB" "SELECT group_concat(status) FROM runs")" = "finished,finished" ] ||
   why+="the two runs did not finish: $(sqlite3 "$DB" "SELECT run_id, status, error_text FROM runs")"$'\n'
t "two real training runs fill a runs.db"

# ------------------------------------------------------------ reads change nothing

# In rollback-journal mode (as docs/ablation-runs.db is committed) a reader
# needs no -wal/-shm files; in WAL mode SQLite's readers keep two empty ones.
sqlite3 "$DB" "PRAGMA journal_mode = DELETE" >/dev/null
before=$(sum "$DB")
reads=("runs" "show 1" "show last" "compare 1 2" "plot 1 2 -o $tmp/p.png" "sql SELECT_count(*)_FROM_runs"
       "report 2 -o $tmp/r.html" "export 1 $tmp/exported")
for c in "${reads[@]}"; do
   read -r -a words <<<"$c"
   words=("${words[@]//_/ }")
   run "$D" "${words[@]}" --db "$DB"
   expect_rc 0 "$c"
done
[ "$(sum "$DB")" = "$before" ] || why+="the database changed"$'\n'
[ -z "$(extra "$DB")" ] || why+="files appeared beside it: $(extra "$DB")"$'\n'
t "runs, show, compare, plot, sql, report and export leave the database byte for byte, and nothing beside it"

if [ -f "$ROOT/docs/ablation-runs.db" ]; then
   before=$(sum "$ROOT/docs/ablation-runs.db")
   run "$D" runs --db "$ROOT/docs/ablation-runs.db"
   expect_rc 0 runs
   has_out "eps | L_simple"
   [ "$(sum "$ROOT/docs/ablation-runs.db")" = "$before" ] || why+="docs/ablation-runs.db changed"$'\n'
   ls "$ROOT/docs/ablation-runs.db-"* >/dev/null 2>&1 && why+="-wal/-shm files beside docs/ablation-runs.db"$'\n'
   t "ddpmlua runs on the committed docs/ablation-runs.db changes nothing"
fi

# ------------------------------------------------------------ a read-only folder, another user

RO=$tmp/ro
mkdir -p "$RO"
cp "$DB" "$RO/runs.db"
sqlite3 "$RO/runs.db" "PRAGMA journal_mode = WAL" >/dev/null   # the mode a training run leaves
mkdir -p "$tmp/out-nobody"
chmod 444 "$RO/runs.db"; chmod 555 "$RO"
chmod 777 "$tmp/out-nobody"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
   AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
   if ! "${AS[@]}" test -x "$D" || ! "${AS[@]}" test -r "$ROOT/lib/ddpm/init.lua"; then
      AS=()
      skip "the history commands as another user in a read-only folder" \
           "user nobody cannot read $D or $ROOT/lib (the checkout is not world-readable)"
   fi
else
   AS=()
fi
if [ ${#AS[@]} -gt 0 ] || [ "$(id -u)" -ne 0 ]; then
   before=$(sum "$RO/runs.db")
   for c in "runs" "show 1" "compare 1 2" "plot 1 -o $tmp/out-nobody/p.png" \
            "sql SELECT_name_FROM_runs" "report 1 -o $tmp/out-nobody/r.html" "export 2 $tmp/out-nobody/exp"; do
      read -r -a words <<<"$c"
      words=("${words[@]//_/ }")
      run "${AS[@]}" env HOME="$tmp/out-nobody" "$D" "${words[@]}" --db "$RO/runs.db"
      expect_rc 0 "$c"
      grep -qi "readonly\|read-only" <<<"$err" && why+="$c: $err"$'\n'
   done
   [ -s "$tmp/out-nobody/r.html" ] || why+="no report written"$'\n'
   [ -s "$tmp/out-nobody/exp/README.md" ] || why+="no export written: $(ls "$tmp/out-nobody/exp" 2>&1)"$'\n'
   [ "$(sum "$RO/runs.db")" = "$before" ] || why+="the database changed"$'\n'
   [ -z "$(ls -A "$RO" | grep -vx runs.db)" ] || why+="files appeared in the read-only folder"$'\n'
   t "runs, show, compare, plot, sql, report, export by a user who cannot write the database or its folder"
   run "${AS[@]}" "$D" sql "DELETE FROM runs" --db "$RO/runs.db"
   expect_rc 2 "sql DELETE"
   has_err "read-only"
   t "in a read-only folder a write is refused with a clear message"
fi

# ------------------------------------------------------------ sql --write

cp "$DB" "$tmp/copy.db"
before=$(sum "$tmp/copy.db")
for s in "DROP TABLE metrics" "DELETE FROM runs" "UPDATE runs SET name = 'x'" "PRAGMA user_version = 9" \
         "INSERT INTO metric_names (name) VALUES ('z')" "VACUUM" "CREATE TABLE t (a)"; do
   run "$D" sql "$s" --db "$tmp/copy.db"
   expect_rc 2 "$s"
   has_err "add --write"
   [ "$(wc -l <"$tmp/err")" -eq 1 ] || why+="$s: more than one line on stderr"$'\n'
done
[ "$(sum "$tmp/copy.db")" = "$before" ] || why+="the database changed"$'\n'
[ "$(sqlite3 "$tmp/copy.db" "SELECT count(*) FROM metrics WHERE run_id = 1")" -gt 0 ] || why+="metrics lost"$'\n'
t "sql refuses DROP, DELETE, UPDATE, PRAGMA, INSERT, VACUUM, CREATE without --write; the history is intact"
run "$D" sql "UPDATE runs SET name = 'renamed' WHERE run_id = 1" --db "$tmp/copy.db" --write
expect_rc 0 "sql --write"
[ "$(sqlite3 "$tmp/copy.db" "SELECT name FROM runs WHERE run_id = 1")" = renamed ] || why+="--write did not write"$'\n'
t "sql --write runs a statement that writes"

# ------------------------------------------------------------ nothing is created

cd "$tmp" || exit 2
for c in runs "show 1" "sql SELECT_1" "report 1"; do
   read -r -a words <<<"$c"
   words=("${words[@]//_/ }")
   run "$D" "${words[@]}" --db "$tmp/nope.db"
   expect_rc 2 "$c"
   [ -e "$tmp/nope.db" ] && { why+="$c created nope.db"$'\n'; rm -f "$tmp/nope.db"; }
done
run "$D" -e "print(pcall(require('ddpm').log.runs, {db = 'nope.db'}))
print(pcall(require('ddpm').runs, {db = 'nope.db'}))
print(pcall(require('ddpm').log.open, 'nope.db'))"
has_out "false"
grep -q "^true" <<<"$out" && why+="a Lua reader accepted a missing database: $out"$'\n'
has_out "nope.db"
[ -e "$tmp/nope.db" ] && why+="a Lua reader created nope.db"$'\n'
t "no command and no Lua reader (log.runs, ddpm.runs, log.open) creates a missing database"

# ------------------------------------------------------------ a killed run is crashed at once

cd "$tmp/db/work" || exit 2
DDPMLUA_DB="$DB" "$D" "$tmp/tiny.lua" --data="$tmp/data.idx" --name=killed --steps=100000 \
   >"$tmp/killed.out" 2>&1 &
pid=$!
for _ in $(seq 1 200); do grep -q "started run" "$tmp/killed.out" && break; sleep 0.1; done
sleep 0.5
run "$D" runs --db "$DB" --last 1
grep -qE "killed +tiny\.lua +running" <<<"$out" || why+="while it lives it is running: $out"$'\n'
kill -9 "$pid"; wait "$pid" 2>/dev/null
run "$D" runs --db "$DB" --last 1
expect_rc 0 runs
grep -qE "killed +tiny\.lua +crashed" <<<"$out" || why+="right after SIGKILL: $out"$'\n'
run "$D" show last --db "$DB"
has_out "exited without ending the run"
[ "$(sqlite3 "$DB" "SELECT status FROM runs WHERE name = 'killed'")" = running ] ||
   why+="a reader wrote the verdict"$'\n'
t "a run killed with SIGKILL reads as 'crashed' at once (runs, show), and the reader writes nothing"
run env DDPMLUA_DB="$DB" "$D" -e "require('ddpm').log.start{name = 'next'}:finish()"
[ "$(sqlite3 "$DB" "SELECT status FROM runs WHERE name = 'killed'")" = crashed ] ||
   why+="the next writer did not record it"$'\n'
t "the next process that writes the history records it as 'crashed'"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
