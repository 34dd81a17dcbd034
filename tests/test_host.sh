#!/usr/bin/env bash
# tests/test_host.sh — the ddpmlua executable from outside: options, exit
# codes, the arg table, tracebacks, the piped REPL, Ctrl-C, and (when python3
# is there to drive a pseudo-terminal) the interactive REPL. Prints TAP and
# "N passed, N failed"; run by tests/run.sh.

cd "$(dirname "$0")/.." || exit 2
D=${DDPMLUA:-./ddpmlua}
[ -x "$D" ] || { echo "not ok 1 - $D is not built"; echo "0 passed, 1 failed"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0 failed=0 why=""
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
   n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
   [ -n "$why" ] && printf '%s\n' "$why" | sed 's/^/#   /'
}
# t DESC: passes when the previous checks left $why empty
t() { if [ -z "$why" ]; then pass "$1"; else fail "$1"; fi; why=""; }
# run CMD...: stdout, stderr and status into $out, $err, $rc
run() { "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
expect_rc() { [ "$rc" -eq "$1" ] || why+="exit status $rc, want $1; stderr: $err"$'\n'; }
expect_out() { [ "$out" = "$1" ] || why+="stdout: $(printf %q "$out"), want $(printf %q "$1")"$'\n'; }
has_err() { grep -qF -- "$1" <<<"$err" || why+="stderr lacks '$1': $err"$'\n'; }
has_out() { grep -qF -- "$1" <<<"$out" || why+="stdout lacks '$1': $out"$'\n'; }

# -------------------------------------------------------------- options

run "$D" -e 'print(1 + 1)'
expect_rc 0; expect_out 2; t "-e runs a chunk"

run "$D" -e 'a = 20' -e 'print(a + 1)'
expect_out 21; t "several -e run in order"

run "$D" -e 'error("nope")'
expect_rc 1; has_err "ddpmlua: (command line):1: nope"; has_err "stack traceback:"
t "-e error exits 1 with a traceback"

run "$D" -e 'os.exit(3)'
expect_rc 3; t "os.exit sets the exit status"

run "$D" -e 'x = = 1'
expect_rc 1; has_err "unexpected symbol"; t "-e syntax error exits 1"

run "$D" -v
expect_rc 0; has_out "ddpmlua"; has_out "LuaJIT"; t "-v prints the version"

run "$D" -h
expect_rc 0; has_out "usage: ddpmlua"; t "-h prints usage"

run "$D" -z
expect_rc 1; has_err "unrecognized option '-z'"; t "an unknown option exits 1"

run "$D" -e
expect_rc 1; has_err "needs an argument"; t "-e without a chunk exits 1"

run "$D" -l string -e 'print(type(string.format))'
expect_rc 0; expect_out "function"; t "-l requires a module"

DDPMLUA_INIT='init_seen = 5' run "$D" -e 'print(init_seen)'
expect_out 5; t "DDPMLUA_INIT runs first"

# -------------------------------------------------------------- scripts

cat >"$tmp/args.lua" <<'EOF'
#!/usr/bin/env ddpmlua
print(arg[0], arg[1], arg[2], #arg, select('#', ...), ...)
print(arg[-3], arg[-2], arg[-1])
EOF
run "$D" -e 'opt = 1' "$tmp/args.lua" one two
expect_rc 0
expect_out "$tmp/args.lua	one	two	2	2	one	two
$D	-e	opt = 1"
t "a script gets arg and ... (shebang line skipped)"
run "$D" "$tmp/args.lua"
[ "$(sed -n 2p "$tmp/out")" = "nil	nil	$D" ] || why="line 2: $(sed -n 2p "$tmp/out")"
t "arg[-1] is the interpreter when there are no options"

cat >"$tmp/err.lua" <<'EOF'
local function check(x)
   if x > 1 then
      error("x too big: " .. x)
   end
end
check(5)
EOF
run "$D" "$tmp/err.lua"
expect_rc 1
has_err "ddpmlua: $tmp/err.lua:3: x too big: 5"
has_err "stack traceback:"
has_err "$tmp/err.lua:3: in function 'check'"
has_err "$tmp/err.lua:6: in main chunk"
t "a script error exits 1 with a traceback naming file and lines"

echo 'local x = ' >"$tmp/syntax.lua"
run "$D" "$tmp/syntax.lua"
expect_rc 1; has_err "$tmp/syntax.lua:2:"; t "a syntax error in a script exits 1"

run "$D" "$tmp/missing.lua"
expect_rc 1; has_err "cannot open"; t "a missing script exits 1"

echo 'error(setmetatable({}, {__tostring = function() return "custom object" end}))' >"$tmp/obj.lua"
run "$D" "$tmp/obj.lua"
expect_rc 1; has_err "ddpmlua: custom object"; t "a non-string error is shown with __tostring"

run sh -c "echo 'print(arg[0], ...)' | '$D' - a b"
expect_rc 0; expect_out "-	a	b"; t "- runs stdin as a script"

run "$D" -e 'local core = require "ddpm.core"; print(type(core), core.get_num_threads() >= 1)'
expect_out "table	true"; t "require 'ddpm.core'"

run "$D" -e 'local ddpm = require "ddpm"; print(type(ddpm), ddpm.core == require "ddpm.core")'
expect_out "table	true"; t "require 'ddpm' finds lib/ddpm/init.lua"

run env -u OMP_NUM_THREADS DDPMLUA_NUM_THREADS=3 "$D" -e 'print(require"ddpm.core".get_num_threads())'
expect_out 3; t "DDPMLUA_NUM_THREADS sets the thread count"
run env -u DDPMLUA_NUM_THREADS OMP_NUM_THREADS=2 "$D" -e 'print(require"ddpm.core".get_num_threads())'
expect_out 2; t "OMP_NUM_THREADS is the fallback"
run env -u DDPMLUA_NUM_THREADS -u OMP_NUM_THREADS "$D" -e 'print(require"ddpm.core".get_num_threads())'
[ "$out" = "$(nproc)" ] || why="got $out, nproc says $(nproc)"; t "default: one thread per available CPU"

# -------------------------------------------------------------- piped REPL

run sh -c "printf '1+1\nlocal x = \n 3\nprint(x)\nerror(\"boom\")\nprint(\"still alive\")\n' | '$D'"
expect_rc 0
expect_out "2
3
still alive"
has_err "stdin:1: boom"; has_err "stack traceback:"
t "piped REPL transcript: values, continuation, error survived"

run sh -c "printf 'for i = 1, 3 do\n  print(i)\nend\nfunction f(a)\n  return a * 2\nend\nf(21)\n' | '$D'"
expect_out "1
2
3
42"
t "an incomplete chunk continues on the next lines"

run sh -c "printf '\"hi\"\n{1, 2, b = true, a = \"x\"}\n1, nil\nx = = 1\nprint(\"after\")\n' | '$D'"
expect_rc 0
expect_out '"hi"
{1, 2, a = "x", b = true}
1	nil
after'
has_err "unexpected symbol near '='"
t "the REPL prints values and survives a syntax error"

run sh -c "printf 'for i = 1, 2 do\n' | '$D'"
expect_rc 0; has_err "'<eof>'"; t "end of input inside a chunk reports it and exits 0"

echo 'greeting = "hello from the script"' >"$tmp/setup.lua"
run sh -c "echo 'greeting' | '$D' -i '$tmp/setup.lua'"
expect_rc 0; expect_out '"hello from the script"'; t "-i enters the REPL after the script"

# -------------------------------------------------------------- Ctrl-C

# interrupt OUTFILE ERRFILE COMMAND...: starts it, waits for "ready" on
# stdout, sends SIGINT; a second SIGINT after 2 s if it still runs, SIGKILL
# after 4 more (then rc is 999: hung).
interrupt() {
   local o=$1 e=$2; shift 2
   "$@" >"$o" 2>"$e" &
   local pid=$! i
   for ((i = 0; i < 100; i++)); do grep -q ready "$o" && break; sleep 0.05; done
   kill -INT "$pid" 2>/dev/null
   for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
   if kill -0 "$pid" 2>/dev/null; then
      kill -INT "$pid" 2>/dev/null
      for ((i = 0; i < 80; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
   fi
   if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid"; wait "$pid"; rc=999
   else
      wait "$pid"; rc=$?
   fi
   out=$(cat "$o"); err=$(cat "$e")
}

cat >"$tmp/spin.lua" <<'EOF'
jit.off()   -- hooks are not checked in compiled traces
local function spin() while true do end end
io.write("ready\n") io.flush()
spin()
EOF
interrupt "$tmp/out" "$tmp/err" "$D" "$tmp/spin.lua"
expect_rc 1; has_err "spin.lua:2: interrupted"; has_err "in function 'spin'"
t "Ctrl-C stops an interpreted loop with 'interrupted' and a traceback"

printf 'io.write("ready\\n") io.flush()\nwhile true do end\n' >"$tmp/jitspin.lua"
interrupt "$tmp/out" "$tmp/err" "$D" "$tmp/jitspin.lua"
case $rc in 1|130) ;; *) why="exit status $rc (999: hung; 134/139: crashed); stderr: $err";; esac
has_err "interrupted"
t "Ctrl-C ends a JIT-compiled while true do end (second Ctrl-C forces it)"

printf 'jit.off() io.write("ready\\n") io.flush() while true do end\nprint("after the interrupt")\n' >"$tmp/repl_in.txt"
interrupt "$tmp/out" "$tmp/err" sh -c "exec '$D' < '$tmp/repl_in.txt'"
expect_rc 0; has_out "after the interrupt"; has_err "stdin:1: interrupted"
t "Ctrl-C in the REPL stops the chunk, not the REPL"

# -------------------------------------------------------------- terminal REPL

if command -v python3 >/dev/null 2>&1; then
   cat >"$tmp/drive_tty.py" <<'EOF'
import os, pty, select, signal, sys, time
exe, hist = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.environ['DDPMLUA_HISTORY'] = hist
    os.execv(exe, [exe])
out = b''
def drain(t):
    global out
    end = time.time() + t
    while time.time() < end:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
drain(1.0)
for s in [b'1+1\r', b'half typed', 'INT', b'print("caf\xc3\xa9")\r', b'\x1b[A\r',
          b'for i = 1, 1 do\r', b'end\r', b'\x04']:
    if s == 'INT':
        os.kill(pid, signal.SIGINT)
    else:
        os.write(fd, s)
    drain(0.5)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode('utf-8', 'replace').replace('\r', ''))
sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 99)
EOF
   run timeout 30 python3 "$tmp/drive_tty.py" "$D" "$tmp/history"
   expect_rc 0
   has_out "ddpm> 1+1"; has_out "2"; has_out "   >> end"; has_out "café"
   [ "$(grep -c '^café$' <<<"$out")" -eq 2 ] || why+="up-arrow did not rerun the last line: $out"$'\n'
   grep -qF 'print("café")' "$tmp/history" 2>/dev/null || why+="history file: $(cat "$tmp/history" 2>&1)"$'\n'
   t "terminal REPL: prompts, Ctrl-C drops the line, UTF-8, history"
else
   n=$((n + 1)); echo "ok $n - terminal REPL # SKIP no python3 to drive a pty"
fi

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
