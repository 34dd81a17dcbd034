#!/usr/bin/env bash
# tests/test_hostile.sh — a run history written by someone else is data, never
# code. A run whose name, experiment, config, metric key, script path and
# error text carry HTML, quotes and terminal control sequences:
#   * `ddpmlua report` escapes all of it: in headless Chromium (Debian's
#     chromium) no script or event handler of it runs, which the same
#     payloads in an unescaped page do (so the check can fail);
#   * `runs`, `show` and `compare` print no control character:
#     ESC, BEL and the rest appear as escapes such as \x1b;
#   * `export` writes only inside its folder, whatever the stored script and
#     checkpoint names (.., ../..) are, and its re-run line is quoted;
#   * `rerun` quotes a hostile uuid: nothing of it runs in the shell.
# Prints TAP and "N passed, N failed".

cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
D=$(cd "$(dirname "$D")" && pwd)/$(basename "$D")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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
# no byte 0x00-0x08, 0x0b-0x1f or 0x7f in a file (tab and newline are fine)
no_ctrl() {
   if LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]' "$1"; then
      why+="$2 prints control characters: $(LC_ALL=C grep -nP '[\x00-\x08\x0b-\x1f\x7f]' "$1" | head -3 | cat -v)"$'\n'
   fi
}
has() { grep -qF -- "$2" "$1" || why+="$3 lacks '$2'"$'\n'; }

DB=$tmp/runs.db
mkdir -p "$tmp/ck"
cat >"$tmp/hostile.lua" <<'EOF'
local ddpm = require 'ddpm'
local db, ckdir = arg[1], arg[2]
local E, BEL = '\27', '\7'
local run = ddpm.log.start{
   db = db,
   name = [[<script>document.body.dataset.xss='name'</script><img src=x onerror="document.body.dataset.img='name'">'"&]] ..
          E .. '[2J' .. BEL .. '../../x',
   experiment = '<svg onload="document.body.dataset.svg=1">' .. E .. ']0;owned' .. BEL,
   config = {['k<script>document.body.dataset.cfg=1</script>'] = 'v"\'<b>bold</b>' .. E .. '[31mred',
             path = '../../etc/passwd'},
   script_path = 'evil/..', script_text = 'print("hello")\n',
}
run:metric(1, 'loss<img src=x onerror="document.body.dataset.key=1">' .. E .. '[1m', 0.5)
run:metric(2, 'loss<img src=x onerror="document.body.dataset.key=1">' .. E .. '[1m', 0.25)
run:metric(1, 'plain', 1)
run:metric(2, 'plain', 2)
run:finish('failed', 'boom </pre><script>document.body.dataset.err=1</script>' .. E .. '[2J' .. BEL)
-- a second, harmless run to compare with
local r2 = ddpm.log.start{db = db, name = 'plain', script_path = arg[3], script_text = 'print("hello")\n'}
r2:metric(1, 'plain', 1)
r2:finish()
EOF
printf 'print("hello")\n' >"$tmp/hello.lua"
run "$D" "$tmp/hostile.lua" "$DB" "$tmp/ck" "$tmp/hello.lua"
expect_rc 1 "writing the hostile run (its run 1 is marked failed, so the script exits 1)"
# a checkpoint row whose path ends in .. (a shared database may hold anything)
python3 - "$DB" "$tmp/ck/.." <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("INSERT INTO checkpoints (run_id, step, path, sha256, bytes, created)"
            " VALUES (1, 2, ?, '00', 0, 0)", (sys.argv[2],))
con.commit()
EOF
[ $? -eq 0 ] || why+="cannot add the checkpoint row"$'\n'
t "a run history with hostile names, config, metric keys and error text"

# ------------------------------------------------------------ HTML report
run "$D" report 1 --db "$DB" -o "$tmp/report.html"
expect_rc 0 "report"
if grep -qiE '<script|<img src=x|<svg' "$tmp/report.html"; then
   why+="the report holds raw markup: $(grep -oiE '<script[^>]*>|<img src=x[^>]*>|<svg[^>]*>' "$tmp/report.html" | head -3)"$'\n'
fi
has "$tmp/report.html" "&lt;script&gt;document.body.dataset.xss=&#39;name&#39;&lt;/script&gt;" "the report"
no_ctrl "$tmp/report.html" "the report"
t "report: names, config, metric keys and the error are escaped"

CHROME=$(command -v chromium || command -v chromium-browser)
if [ -n "$CHROME" ]; then
   dom() {
      timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/chrome" \
         --dump-dom "file://$1" 2>"$tmp/chrome.log"
   }
   # the control: the same payloads unescaped do run
   cat >"$tmp/raw.html" <<'EOF'
<!DOCTYPE html><html><body><h1><script>document.body.dataset.xss='name'</script></h1>
<img src=x onerror="document.body.dataset.img='name'"></body></html>
EOF
   raw=$(dom "$tmp/raw.html")
   grep -qF 'data-xss="name"' <<<"$raw" && grep -qF 'data-img="name"' <<<"$raw" ||
      why+="the unescaped control page did not run its script (the check cannot see it): $raw"$'\n'
   page=$(dom "$tmp/report.html")
   [ -n "$page" ] || why+="chromium returned no DOM: $(tail -n 3 "$tmp/chrome.log")"$'\n'
   if grep -oE '<body[^>]*>' <<<"$page" | grep -q 'data-'; then
      why+="a script of the stored text ran: $(grep -oE '<body[^>]*>' <<<"$page")"$'\n'
   fi
   grep -qF "<script>document.body.dataset.xss='name'</script>" <<<"$(sed 's/&lt;/</g; s/&gt;/>/g' <<<"$page")" ||
      why+="the run name is not shown as text"$'\n'
   t "report in headless Chromium: no script or handler of a run's text runs (the unescaped control runs)"
else
   skip "report in headless Chromium" "chromium is not installed (scripts/setup.sh test)"
fi

# ------------------------------------------------------------ terminal
for c in "runs" "show 1" "compare 1 2"; do
   run "$D" $c --db "$DB"
   [ "$rc" -eq 0 ] || why+="$c: exit status $rc: $err"$'\n'
   no_ctrl "$tmp/out" "$c"
done
run "$D" show 1 --db "$DB"
has "$tmp/out" '\x1b[2J\x07../../x' "show"
has "$tmp/out" '\x1b]0;owned\x07' "show (experiment)"
t "runs, show, compare: control characters appear as escapes"

# ------------------------------------------------------------ export
mkdir -p "$tmp/box/out"
before=$(cd "$tmp" && find . -path ./chrome -prune -o -print | sort)
run "$D" export 1 "$tmp/box/out" --db "$DB"
expect_rc 0 "export"
after=$(cd "$tmp" && find . -path ./chrome -prune -o -print | sort)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^\./\(out\|err\)$' | grep -v '^\./box/out/')
[ -z "$new" ] || why+="export wrote outside its folder: $new"$'\n'
ls -A "$tmp/box/out" | grep -qx 'run.json' || why+="no run.json in the export: $(ls -A "$tmp/box/out")"$'\n'
[ -z "$(ls -A "$tmp/box/out" | grep -x '\.\.\?')" ] || why+="odd names in the export"$'\n'
no_ctrl "$tmp/box/out/README.md" "export's README.md"
t "export: a stored script or checkpoint named .. stays inside the export folder"

# ------------------------------------------------------------ rerun
python3 - "$DB" "$tmp" <<'EOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("UPDATE runs SET uuid = ? WHERE run_id = 2", ("x; touch %s/PWNED; #" % sys.argv[2],))
con.commit()
EOF
run "$D" rerun 2 --db "$DB"
[ ! -e "$tmp/PWNED" ] || why+="a uuid ran in the shell: $tmp/PWNED exists"$'\n'
run "$D" rerun 2 --dry-run --db "$DB"
grep -qF "'x; touch $tmp/PWNED; #'" "$tmp/out" || why+="the uuid is not quoted in: $out"$'\n'
t "rerun: a hostile uuid is quoted, nothing of it runs"

# ------------------------------------------------------------ checkpoints
# a run named ../../x keeps its files under runs/<uuid>/ beside runs.db
mkdir -p "$tmp/train/a/b"
python3 - "$tmp/train/idx" <<'EOF'
import sys
with open(sys.argv[1], 'wb') as f:
    f.write(b'\0\0\x08\x03' + (16).to_bytes(4, 'big') + (8).to_bytes(4, 'big') * 2)
    f.write(bytes((i * 37) % 256 for i in range(16 * 64)))
EOF
cat >"$tmp/train/t.lua" <<'EOF'
local ddpm = require 'ddpm'
local m = ddpm.unet{ch = 8, groups = 4, ch_mult = {1, 2}, num_res_blocks = 1, attn_resolutions = {4},
                    in_ch = 1, out_ch = 1, resolution = 8}
local r = ddpm.train{model = m, diffusion = ddpm.diffusion{T = 10}, data = ddpm.core.dataset_idx(arg[2]),
   steps = 2, batch = 4, db = arg[1], name = '../../../x', experiment = '../..', progress = false,
   sample_n = 4, checkpoint_every = 1}
print(r.checkpoint)
EOF
before=$(cd "$tmp" && find . -path ./chrome -prune -o -print | sort)
run "$D" "$tmp/train/t.lua" "$tmp/train/a/b/runs.db" "$tmp/train/idx"
expect_rc 0 "training a run named ../../../x"
after=$(cd "$tmp" && find . -path ./chrome -prune -o -print | sort)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^\./\(out\|err\)$' |
      grep -v '^\./train/a/b/runs\.db\(-wal\|-shm\)\?$' | grep -vE '^\./train/a/b/runs(/[0-9a-f]{32}(/[^/]+)?)?$')
[ -z "$new" ] || why+="files outside runs/<uuid>/: $new"$'\n'
case "$out" in "$tmp/train/a/b/runs/"*/ckpt-00000002.safetensors) ;; *) why+="checkpoint at $out"$'\n' ;; esac
t "a run named ../../../x writes its checkpoints and samples under runs/<uuid>/ only"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
