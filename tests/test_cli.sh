#!/usr/bin/env bash
# tests/test_cli.sh — the run-history commands (ddpmlua runs, show, compare,
# plot, sql, rerun, export, report and ddpm.runs{} from Lua) on a runs.db
# built here from real short training runs: a tiny U-Net (ch=8, groups=4) on
# synthetic 8x8 images, two finished runs with different configs (one with
# the NLL bound and its per-t terms) and one that fails at step 12. Outputs
# are checked against the database; bad input must give one line on stderr
# and exit status 2 (a usage error; 1 only for a valid command that could not
# be carried out), a traceback only with --debug. The report is rendered by headless Chromium (Debian
# package chromium) when it is installed, and the screenshot must show the
# curves and the sample grid. Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DDPMLUA_NUM_THREADS=2 DDPMLUA_HISTORY=
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
expect_rc() { [ "$rc" -eq "$1" ] || why+="exit status $rc, want $1; stderr: $err"$'\n'; }
has_out() { grep -qF -- "$1" <<<"$out" || why+="stdout lacks '$1': $out"$'\n'; }
lacks_out() { ! grep -qF -- "$1" <<<"$out" || why+="stdout has '$1': $out"$'\n'; }
has_err() { grep -qF -- "$1" <<<"$err" || why+="stderr lacks '$1': $err"$'\n'; }
same() { [ "$1" = "$2" ] || why+="$3: got '$1', want '$2'"$'\n'; }
# user_error WORDS...: one line on stderr, nothing on stdout, exit status 2
# (STATUS=1 user_error ...: a failure while doing valid work)
user_error() {
   expect_rc "${STATUS:-2}"
   [ -z "$out" ] || why+="stdout not empty: $out"$'\n'
   [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || why+="stderr is not one line: $err"$'\n'
   grep -q 'traceback' <<<"$err" && why+="stderr has a traceback: $err"$'\n'
   for w in "$@"; do has_err "$w"; done
   return 0
}

DB=$tmp/db/runs.db
W=$tmp/work          # the scripts' and commands' directory
mkdir -p "$tmp/db" "$W"
cd "$W" || exit 2
# dbq SQL [DB]: the first column of the first row, straight from the database
# (numbers as %.17g); dbq6: the same as %.6g, as the tables print numbers.
cat >"$tmp/q.lua" <<'EOF'
local rows, cols = require('ddpm.core').runlog_open(arg[1]):query(arg[2])
local v = rows[1] and rows[1][cols[1]]
if type(v) == 'number' then
   v = (arg[3] == 'g6' and v % 1 ~= 0) and ('%.6g'):format(v)
       or (v % 1 == 0 and ('%d'):format(v) or ('%.17g'):format(v))
end
print(tostring(v))
EOF
dbq() { "$D" "$tmp/q.lua" "${2:-$DB}" "$1" 2>&1 | tail -n 1; }
dbq6() { "$D" "$tmp/q.lua" "$DB" "$1" g6 2>&1 | tail -n 1; }
loss6() {   # the last loss of a run as the runs table prints it
   dbq6 "SELECT l.value FROM latest_metrics l JOIN metric_names n USING (name_id)
         WHERE l.run_id = $1 AND n.name = 'loss'"
}
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d", (($1*256+$2)*256+$3)*256+$4, (($5*256+$6)*256+$7)*256+$8}'; }

# ------------------------------------------------------------ real runs

# 64 synthetic 8x8 images: a bright 2x2 square at one of four places (IDX).
cat >"$tmp/mkidx.lua" <<'EOF'
local function u32(n) return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                                         math.floor(n / 256) % 256, n % 256) end
local p = {"\0\0\8\3", u32(64), u32(8), u32(8)}
for n = 0, 63 do
   local q = n % 4
   local oy, ox = (q < 2) and 1 or 5, (q % 2 == 0) and 1 or 5
   for y = 0, 7 do for x = 0, 7 do
      p[#p + 1] = string.char((y >= oy and y < oy + 2 and x >= ox and x < ox + 2) and 255 or 0)
   end end
end
local f = assert(io.open(arg[1], "wb")); f:write(table.concat(p)); f:close()
EOF
"$D" "$tmp/mkidx.lua" "$tmp/data.idx"

cat >"$W/tiny_train.lua" <<'EOF'
-- A short real training run on synthetic 8x8 images (tests/test_cli.sh).
local ddpm = require 'ddpm'
local core = ddpm.core
local cfg = ddpm.cli.parse(arg, {steps = 30, batch = 8, lr = 2e-3, seed = 1, T = 20,
   schedule = 'linear', data = '', fail_at = 0, nll = false, name = 'tiny'})
local model = {ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
               dropout = 0.1, in_ch = 1, out_ch = 1, resolution = 8}
local m = ddpm.unet(model)
local diff = ddpm.diffusion{schedule = cfg.schedule, T = cfg.T}
local data = core.dataset_idx(cfg.data)
local run = ddpm.log.start{name = cfg.name, seed = cfg.seed,
   config = {train = {steps = cfg.steps, batch = cfg.batch, lr = cfg.lr, seed = cfg.seed},
             diffusion = {schedule = cfg.schedule, T = cfg.T}, model = model}}
local r = ddpm.train{model = m, diffusion = diff, data = data, steps = cfg.steps, batch = cfg.batch,
   lr = cfg.lr, warmup = 5, ema_decay = 0.9, seed = cfg.seed, run = run, progress = false,
   sample_n = 16, sample_every = 15, checkpoint_every = 15, finish = false,
   on_step = function(step)
      if step == cfg.fail_at then error('synthetic failure at step ' .. step) end
   end}
if cfg.nll and diff.nll then   -- the likelihood bound and its per-t terms (nll_bpd, nll_t)
   diff:nll(r.ema, data, {n = 16, batch = 16, run = run, step = cfg.steps, progress = false})
end
run:finish()
print(('run %d: %s, loss %.4f'):format(run.id, run.status, r.loss))
EOF

run env DDPMLUA_DB="$DB" "$D" tiny_train.lua --data="$tmp/data.idx" --name=base --nll
expect_rc 0; has_out "run 1: finished"
run env DDPMLUA_DB="$DB" "$D" tiny_train.lua --data="$tmp/data.idx" --name=cosine --schedule=cosine --lr=0.003
expect_rc 0; has_out "run 2: finished"
run env DDPMLUA_DB="$DB" "$D" tiny_train.lua --data="$tmp/data.idx" --name=broken --fail_at=12
expect_rc 1; has_err "synthetic failure at step 12"
t "three real training runs (two finished, one failed) fill runs.db"
has_nll=$(dbq "SELECT count(*) FROM metrics_v WHERE run_id = 1 AND key = 'nll_t'")

# ------------------------------------------------------------ runs

run "$D" runs --db "$DB"
expect_rc 0
has_out "id"; has_out "status"; has_out "loss"; has_out "started"; has_out "duration"
for id in 1 2 3; do
   row=$(awk -v id=$id '$1 == id' <<<"$out")
   [ -n "$row" ] || why+="no row for run $id"$'\n'
   l=$(loss6 $id)
   grep -qF -- " $l " <<<"$row " || why+="run $id: last loss $l (db) not in row '$row'"$'\n'
done
grep -qE '^ *1 +base +tiny_train\.lua +finished +30 ' <<<"$out" || why+="run 1 row: $out"$'\n'
grep -qE '^ *3 +broken +tiny_train\.lua +failed +12 ' <<<"$out" || why+="run 3 row: $out"$'\n'
t "runs: ids, names, scripts, statuses, steps and last losses as in the database"

if [ "$has_nll" -gt 0 ]; then
   bpd=$(dbq6 "SELECT min(value) FROM metrics_v WHERE run_id = 1 AND key = 'nll_bpd'")
   has_out "best nll"
   grep -qF " $bpd " <<<"$(awk '$1 == 1' <<<"$out") " || why+="best nll $bpd not in run 1's row"$'\n'
   t "runs: the best NLL (nll_bpd) column where a run has it"
else
   skip "runs: the best NLL column" "diff:nll is not available"
fi

run "$D" runs --db "$DB" --status failed
expect_rc 0; has_out "broken"; lacks_out "base"; lacks_out "cosine"
t "runs --status failed"
run "$D" runs --db "$DB" --last 1
expect_rc 0; has_out "broken"; lacks_out "cosine"
[ "$(wc -l <<<"$out")" -eq 3 ] || why+="--last 1 printed $(wc -l <<<"$out") lines"$'\n'
t "runs --last 1 (header, rule, one row)"
run "$D" runs --db "$DB" --script tiny_train --since 1h
expect_rc 0; has_out "base"; has_out "cosine"; has_out "broken"
run "$D" runs --db "$DB" --since 2999-01-01
expect_rc 0; has_out "no runs match"
run "$D" runs --db "$DB" --script nothing_like_it.lua
expect_rc 0; has_out "no runs match"
t "runs --script, --since (an age, a date)"

# ------------------------------------------------------------ show

run "$D" show 1 --db "$DB"
expect_rc 0
for w in "run 1  base" "status       finished" "config (" "diffusion.schedule" "train.lr" \
         "metrics (" "loss" "grad_norm" "lr" "loss_q0" "loss_q3" "artifacts (" "sample_grid" \
         "checkpoints (" "ckpt-00000030.safetensors" \
         "binary       sha256 $(sha256sum "$D" | cut -c1-16)"; do has_out "$w"; done
row=$(grep -E '^  loss ' <<<"$out")
first=$(dbq6 "SELECT value FROM metrics_v WHERE run_id = 1 AND key = 'loss' ORDER BY step LIMIT 1")
grep -qE "^  loss +30 +1\.\.30 +$first +$(loss6 1) " <<<"$row" || why+="loss summary row: '$row' (first $first)"$'\n'
t "show: config, status, metrics summary (first/last/min), artifacts, checkpoints"
run "$D" show 3 --db "$DB"
expect_rc 0; has_out "status       failed"; has_out "error"; has_out "synthetic failure at step 12"
t "show: a failed run's error text"
run "$D" show last --db "$DB"
expect_rc 0; has_out "run 3  broken"
uuid=$(dbq "SELECT uuid FROM runs WHERE run_id = 2")
run "$D" show "${uuid:0:8}" --db "$DB"
expect_rc 0; has_out "run 2  cosine"
# a uuid whose first 8 hex digits are all decimal (2% of random uuids): no
# run has that id, so it is the uuid prefix
python3 -c 'import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2]); src.backup(dst)
dst.execute("UPDATE runs SET uuid = ? || substr(uuid, 9) WHERE run_id = 2", ("21567580",)); dst.commit()' \
   "$DB" "$tmp/digits.db"
run "$D" show 21567580 --db "$tmp/digits.db"
expect_rc 0; has_out "run 2  cosine"
t "show: a run by 'last' and by uuid prefix (also one of decimal digits only)"

# ------------------------------------------------------------ compare

run "$D" compare 1 2 --db "$DB"
expect_rc 0
grep -qE '^diffusion\.schedule +linear +cosine' <<<"$out" || why+="no schedule diff: $out"$'\n'
grep -qE '^train\.lr +0\.002 +0\.003' <<<"$out" || why+="no lr diff"$'\n'
lacks_out "model.ch "
has_out "2 keys differ"
l1=$(dbq6 "SELECT value FROM metrics_v WHERE run_id = 1 AND key = 'loss' AND step = 30")
grep -qE "^ +30 +$l1 +$(loss6 2) " <<<"$out" || why+="step 30 row lacks $l1 and $(loss6 2)"$'\n'
t "compare: the differing (nested, flattened) config keys and losses side by side at matching steps"
run "$D" compare 1 2 3 --db "$DB" --metric grad_norm --rows 0
expect_rc 0; has_out "grad_norm at 12 of 12 common steps"
t "compare: three runs, --metric, common steps only"

# ------------------------------------------------------------ plot

run "$D" plot 1 2 --db "$DB" --metric loss -o "$tmp/loss.png" --smooth 3 --log --width 640 --height 360
expect_rc 0; has_out "wrote $tmp/loss.png (2 curves, 640x360)"
same "$(png_size "$tmp/loss.png")" "640x360" "PNG size"
run "$D" plot 1 --db "$DB" --metric loss_q0,loss_q3 -o "$tmp/q.png"
expect_rc 0
same "$(png_size "$tmp/q.png")" "800x500" "default PNG size"
[ "$(head -c 8 "$tmp/q.png" | od -An -c | tr -d ' ')" = '211PNG\r\n032\n' ] || why+="not a PNG"$'\n'
t "plot: PNG files of the requested size (smoothing, log axis, two metrics)"

# ------------------------------------------------------------ sql

run "$D" sql "SELECT run_id, name, status, seed FROM runs ORDER BY run_id" --db "$DB"
expect_rc 0
want=$(printf '%s\n' "run_id  name    status    seed" "------  ------  --------  ----" \
                     "     1  base    finished     1" "     2  cosine  finished     1" \
                     "     3  broken  failed       1")
same "$out" "$want" "sql output"
run "$D" sql "SELECT key, count(*) AS points FROM metrics_v WHERE run_id = :run AND key LIKE 'loss%' GROUP BY key" \
    --param run=2 --db "$DB"
expect_rc 0
grep -qE '^loss_q0 +[0-9]+$' <<<"$out" || why+="no loss_q0 row: $out"$'\n'
grep -qE '^loss +30$' <<<"$out" || why+="no loss row: $out"$'\n'
t "sql: any query as an aligned table (numbers right-aligned), --param"

# ------------------------------------------------------------ rerun

run "$D" rerun 1 --db "$DB"
expect_rc 0; has_out "run 4: re-run of run 1, finished"; has_out "(bit for bit)"
same "$(dbq 'SELECT parent_run_id FROM runs WHERE run_id = 4')" 1 "parent_run_id"
same "$(dbq 'SELECT seed FROM runs WHERE run_id = 4')" "$(dbq 'SELECT seed FROM runs WHERE run_id = 1')" "seed"
same "$(dbq "SELECT env_json ->> '\$.threads' FROM runs WHERE run_id = 4")" 2 "threads"
# every loss value of the parent, bit for bit (a REAL compares equal only when identical)
n1=$(dbq "SELECT count(*) FROM metrics_v WHERE run_id = 1 AND key = 'loss'")
nsame=$(dbq "SELECT count(*) FROM metrics_v p JOIN metrics_v c ON c.key = p.key AND c.step = p.step
             WHERE p.run_id = 1 AND c.run_id = 4 AND p.key = 'loss' AND c.value = p.value")
nall=$(dbq "SELECT count(*) FROM metrics p LEFT JOIN metrics c ON c.run_id = 4 AND c.name_id = p.name_id
            AND c.step = p.step WHERE p.run_id = 1 AND c.value IS NOT p.value")
[ "$n1" -eq 30 ] && [ "$nsame" -eq 30 ] || why+="loss: $nsame of $n1 values identical"$'\n'
same "$nall" 0 "metric values of run 1 that run 4 does not reproduce"
t "rerun: a new run linked to its parent reproduces every metric bit for bit (same threads)"

# ------------------------------------------------------------ export

run "$D" export 1 "$tmp/exp" --db "$DB"
expect_rc 0; has_out "exported run 1"
cmp -s "$tmp/exp/tiny_train.lua" "$W/tiny_train.lua" || why+="exported script differs"$'\n'
same "$(cat "$tmp/exp/config.json")" "$(dbq 'SELECT config_json FROM runs WHERE run_id = 1')" "config.json"
ck=$(ls "$tmp/exp"/ckpt-*.safetensors 2>/dev/null)
same "$(basename "$ck")" "ckpt-00000030.safetensors" "checkpoint file"
[ -f "$ck" ] && same "$(wc -c <"$ck")" "$(dbq 'SELECT bytes FROM checkpoints WHERE run_id = 1 ORDER BY step DESC')" "checkpoint size"
[ -f "$tmp/exp/run.json" ] && [ -f "$tmp/exp/README.md" ] || why+="run.json or README.md missing"$'\n'
line=$(grep -E '^    DDPMLUA_NUM_THREADS=2 ddpmlua /[^ ]*/tiny_train\.lua ' "$tmp/exp/README.md")
[ -n "$line" ] || why+="README has no re-run line: $(cat "$tmp/exp/README.md")"$'\n'
t "export: the script, config JSON, last checkpoint, run.json and a README line to re-run"
(cd "$tmp/exp" && eval "DDPMLUA_DB=$tmp/exp/runs.db ${line/ ddpmlua / \"\$D\" }") >"$tmp/out" 2>"$tmp/err"
rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err")
expect_rc 0; has_out "run 1: finished"
same "$(dbq "SELECT value FROM metrics_v WHERE run_id = 1 AND key = 'loss' AND step = 30" "$tmp/exp/runs.db")" \
     "$(dbq "SELECT value FROM metrics_v WHERE run_id = 1 AND key = 'loss' AND step = 30")" "re-run's last loss"
t "export: the README's command re-runs the exported script elsewhere, same loss"

# ------------------------------------------------------------ report

run "$D" report 1 --db "$DB" -o "$tmp/report1.html"
expect_rc 0; has_out "wrote $tmp/report1.html"
html=$(cat "$tmp/report1.html")
for w in "<h2>Curves</h2>" "<h2>Samples</h2>" "<h2>Config</h2>" "diffusion.schedule" \
         "data:image/png;base64," "sample grid"; do
   grep -qF -- "$w" <<<"$html" || why+="report lacks '$w'"$'\n'
done
[ "$has_nll" -gt 0 ] && { grep -qF "<h2>Per-t terms</h2>" <<<"$html" || why+="no per-t section"$'\n'; }
grep -qiE 'https?://|<link|<script|src="[^d]|url\(' <<<"$html" && why+="the report refers to an outside resource"$'\n'
[ "$(grep -o 'src="data:image/png;base64,' <<<"$html" | wc -l)" -ge 4 ] || why+="fewer than 4 embedded images"$'\n'
t "report: one self-contained HTML page (config, curves, sample grids, per-t terms)"
run "$D" report 3 --db "$DB" -o "$tmp/report3.html"
expect_rc 0
grep -qF "synthetic failure at step 12" "$tmp/report3.html" || why+="no error text in the failed run's report"$'\n'
t "report: a failed run's page shows its error"

# The page in a browser: headless Chromium (Debian package chromium).
CHROME=$(command -v chromium || command -v chromium-browser)
# pixels.lua DIR: "colours blue black" of the one PNG in DIR: distinct colours,
# pixels near the first curve colour #1f77b4, black pixels
cat >"$tmp/pixels.lua" <<'EOF'
local core = require 'ddpm.core'
local ds = core.dataset_png_dir(arg[1], 3)
local s = ds:shape()
local H, W = s[2], s[3]
local x = ds:batch({1}, 0):view(3, H, W)
local ch = {x:select(1, 1), x:select(1, 2), x:select(1, 3)}
local seen, colors, blue, black = {}, 0, 0, 0
for y = 1, H do
   local r, g, b = ch[1]:narrow(1, y, 1):totable()[1], ch[2]:narrow(1, y, 1):totable()[1],
                   ch[3]:narrow(1, y, 1):totable()[1]
   for i = 1, W do
      local R, G, B = math.floor((r[i] + 1) * 127.5 + 0.5), math.floor((g[i] + 1) * 127.5 + 0.5),
                      math.floor((b[i] + 1) * 127.5 + 0.5)
      local k = (R * 256 + G) * 256 + B
      if not seen[k] then seen[k] = true; colors = colors + 1 end
      if math.abs(R - 31) + math.abs(G - 119) + math.abs(B - 180) < 60 then blue = blue + 1 end
      if R < 8 and G < 8 and B < 8 then black = black + 1 end
   end
end
print(colors, blue, black)
EOF
pixels() { mkdir -p "$tmp/shot-$2" && cp "$1" "$tmp/shot-$2/" && "$D" "$tmp/pixels.lua" "$tmp/shot-$2"; }
if [ -n "$CHROME" ]; then
   for k in 1 3; do
      timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars --mute-audio \
         --user-data-dir="$tmp/chrome" --window-size=1100,2400 --screenshot="$tmp/shot$k.png" \
         "file://$tmp/report$k.html" >"$tmp/chrome.log" 2>&1
   done
   if [ -s "$tmp/shot1.png" ] && [ -s "$tmp/shot3.png" ]; then
      read -r colors blue black <<<"$(pixels "$tmp/shot1.png" 1)"
      [ "${colors:-0}" -ge 50 ] || why+="screenshot has $colors colours"$'\n'
      [ "${blue:-0}" -ge 300 ] || why+="only $blue pixels of the curve colour #1f77b4"$'\n'
      [ "${black:-0}" -ge 2000 ] || why+="only $black black pixels (the sample grids' padding)"$'\n'
      read -r colors3 blue3 black3 <<<"$(pixels "$tmp/shot3.png" 3)"
      [ "${black3:-0}" -lt 200 ] || why+="run 3 has no grid, yet $black3 black pixels"$'\n'
      [ "${blue3:-0}" -ge 300 ] || why+="run 3's curves: $blue3 blue pixels"$'\n'
   else
      why+="chromium wrote no screenshot: $(tail -n 3 "$tmp/chrome.log")"$'\n'
   fi
   t "report in headless Chromium: the screenshot shows the curves (plot blue) and the grids"
else
   skip "report in headless Chromium" "chromium is not installed (apt-get install chromium)"
fi

# ------------------------------------------------------------ from Lua

cat >"$tmp/api.lua" <<'EOF'
local ddpm = require 'ddpm'
local rows = ddpm.runs{db = arg[1], status = 'finished'}
local ids = {}
for i, r in ipairs(rows) do ids[i] = r.run_id .. ':' .. r.status .. ':' .. ('%.6g'):format(r.loss) end
print(table.concat(ids, ' '))
print(#ddpm.runs{db = arg[1], last = 2})
print(select(2, pcall(ddpm.runs, {db = arg[1] .. '.missing'})))
EOF
run "$D" "$tmp/api.lua" "$DB"
expect_rc 0
same "$(sed -n 1p <<<"$out")" "1:finished:$(loss6 1) 2:finished:$(loss6 2) 4:finished:$(loss6 4)" "ddpm.runs rows"
same "$(sed -n 2p <<<"$out")" 2 "ddpm.runs{last = 2}"
has_out "no run database at"
[ ! -e "$DB.missing" ] || why+="ddpm.runs created a database"$'\n'
t "ddpm.runs{...} from Lua: rows as tables, filters, a clear error"

# ------------------------------------------------------------ bad input

run "$D" show 99 --db "$DB"
user_error "ddpmlua show: no run 99"
run "$D" rerun 99 --db "$DB"
user_error "no run 99"
run "$D" report 99 --db "$DB" -o "$tmp/x.html"
user_error "no run 99"
t "an unknown run id: one line, exit status 2"
run "$D" sql "SELEC * FROM runs" --db "$DB"
user_error "ddpmlua sql:" "syntax error"
run "$D" sql "SELECT * FROM no_such_table" --db "$DB"
user_error "no such table"
run "$D" sql "SELECT :run" --db "$DB"
user_error "--param run="
t "malformed SQL: one line, exit status 2"
run "$D" runs --db "$tmp/missing.db"
user_error "no run database at '$tmp/missing.db'"
[ ! -e "$tmp/missing.db" ] || why+="a missing database was created"$'\n'
run "$D" show 1 --db "$W/tiny_train.lua"
user_error "not a run database"
t "a missing database file is not created; a non-database is refused"
run "$D" runs --bogus --db "$DB"
user_error "unknown option '--bogus'"
run "$D" plot 1 --db "$DB" -x
user_error "unknown option '-x'"
run "$D" runs --last --db "$DB"
user_error "--last expects a non-negative integer"
run "$D" runs --status done --db "$DB"
user_error "unknown status 'done'"
run "$D" plot 1 --metric no_such_metric --db "$DB"
user_error "run 1 has no metric 'no_such_metric'"
run "$D" compare 1 --db "$DB"
user_error "at least two runs"
run "$D" runs --stauts failed --db "$DB"
user_error "unknown option '--stauts'; did you mean --status?"
run "$D" show --db "$DB"
user_error "show takes one run"
run "$D" help nosuch
expect_rc 2; has_err "unknown command 'nosuch'"
t "unknown options, commands and other bad arguments: one line, exit status 2"
run "$D" export 1 /proc/no/such/dir --db "$DB"
STATUS=1 user_error "cannot make the directory"
t "a valid command that cannot be carried out (no folder for export): one line, exit status 1"
run "$D" show 99 --db "$DB" --debug
expect_rc 2; has_err "ddpmlua show: no run 99"; has_err "stack traceback"
run "$D" runs --db "$DB" --last x --debug
expect_rc 2; has_err "expects a non-negative integer"; has_err "stack traceback"
t "--debug adds the traceback to a usage error, same exit status"

# In the directory of runs.db, which holds the runs/ directory of run files.
cd "$tmp/db" && run "$D" runs
expect_rc 0; has_out "broken"
t "ddpmlua runs beside runs.db and its runs/ directory (default --db)"
cd "$W" || exit 2

echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
