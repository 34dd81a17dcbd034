#!/usr/bin/env bash
# tests/test_concurrency.sh — one runs.db under load: 4 processes each log
# 20,000 metric rows (committed 5 rows at a time, so the write lock changes
# hands thousands of times, and with an artifact every 4,000 steps) while
# two loops of `ddpmlua runs`, `ddpmlua report` and `ddpmlua show` read the
# database. No row is lost, every writer and reader exits 0, and no
# "database is locked" (or busy) error reaches the user.
# Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
tmp=$(mktemp -d)
trap 'touch "$tmp/stop"; rm -rf "$tmp"' EXIT
export DDPMLUA_NUM_THREADS=1 DDPMLUA_HISTORY=
unset DDPMLUA_DB DDPMLUA_PARENT_RUN

n=0 failed=0 why=""
t() {
   n=$((n + 1))
   if [ -z "$why" ]; then echo "ok $n - $1"
   else failed=$((failed + 1)); echo "not ok $n - $1"; printf '%s\n' "$why" | sed 's/^/#   /'; fi
   why=""
}
q() {
   python3 -c 'import sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for r in con.execute(sys.argv[2]): print("|".join(str(v) for v in r))' "$1" "$2" 2>&1
}

DB=$tmp/runs.db
ROWS=20000
cat >"$tmp/writer.lua" <<'EOF'
local ddpm = require 'ddpm'
local db, tag, n = arg[1], arg[2], tonumber(arg[3])
local run = ddpm.log.start{db = db, name = 'writer-' .. tag}
for s = 1, n do
   run:metric(s, 'loss', 1 / s)
   if s % 5 == 0 then run:flush() end
   if s % 4000 == 0 then run:artifact(s, 'note', arg[0]) end
end
run:finish()
EOF

# a first run, so that the readers have something to show from the start
"$D" "$tmp/writer.lua" "$DB" 0 10 >/dev/null 2>&1 || why="the first run failed"
t "a first run of 10 rows"

pids=()
for i in 1 2 3 4; do
   "$D" "$tmp/writer.lua" "$DB" "$i" "$ROWS" >"$tmp/w$i.out" 2>&1 &
   pids+=($!)
done
reader() {
   local k=0 id
   while [ ! -e "$tmp/stop" ]; do
      id=$((k % 5 + 1))
      "$D" runs --db "$DB" >/dev/null 2>>"$tmp/r$1.err" || echo "runs: exit $?" >>"$tmp/r$1.err"
      "$D" report "$id" --db "$DB" -o "$tmp/r$1.html" >/dev/null 2>>"$tmp/r$1.err" ||
         echo "report $id: exit $?" >>"$tmp/r$1.err"
      "$D" show "$id" --db "$DB" >/dev/null 2>>"$tmp/r$1.err" || echo "show $id: exit $?" >>"$tmp/r$1.err"
      k=$((k + 1))
   done
   echo "$k" >"$tmp/r$1.loops"
}
reader 1 & r1=$!
reader 2 & r2=$!
for i in 0 1 2 3; do
   wait "${pids[$i]}" || why+="writer $((i + 1)) exited $?: $(tail -5 "$tmp/w$((i + 1)).out")"$'\n'
done
touch "$tmp/stop"
wait "$r1" "$r2"
t "4 writers of $ROWS rows each exit 0"

for i in 1 2 3 4; do
   s=$(q "$DB" "SELECT r.status, count(*), min(step), max(step), round(sum(value * step))
                FROM runs r JOIN metrics_v m USING (run_id) WHERE r.name = 'writer-$i' AND m.key = 'loss'")
   [ "$s" = "finished|$ROWS|1|$ROWS|$ROWS.0" ] ||
      why+="writer-$i: status|rows|first|last|sum(value*step) = $s, want finished|$ROWS|1|$ROWS|$ROWS.0"$'\n'
   s=$(q "$DB" "SELECT count(*) FROM artifacts JOIN runs USING (run_id) WHERE name = 'writer-$i'")
   [ "$s" = "$((ROWS / 4000))" ] || why+="writer-$i: $s artifacts, want $((ROWS / 4000))"$'\n'
done
t "no metric row or artifact lost"

loops=$(( $(cat "$tmp/r1.loops") + $(cat "$tmp/r2.loops") ))
errs=$(cat "$tmp"/r*.err 2>/dev/null)
[ -z "$errs" ] || why+="$errs"
[ "$loops" -ge 2 ] || why+="the readers ran only $loops rounds"
t "readers (runs, report, show) during the writes: $loops rounds, no error, nothing locked"
[ "$(q "$DB" 'PRAGMA integrity_check')" = ok ] || why="integrity_check: $(q "$DB" 'PRAGMA integrity_check')"
t "integrity_check ok"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
