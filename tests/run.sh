#!/usr/bin/env bash
# tests/run.sh — every test suite of ddpmlua, as `make test` runs them:
#   1. each C unit test binary $BUILD/tests/test_*
#   2. the Lua tests: ./ddpmlua tests/lua/run.lua
#   3. each end-to-end script tests/*.sh (this file excepted), run with bash
#
# A suite is one process whose output ends with a "N passed, N failed" line;
# its counts are added up. A suite without that line counts as one test
# (passed when it exits 0), and one that exits non-zero after reporting no
# failure counts one more failure; either way its output tail is shown.
# Failing TAP lines ("not ok" and the "#" lines below them) are shown as they
# come; full logs stay in $BUILD/test-logs/. The last line of output is the
# total, "N passed, N failed", and the exit status is 1 when anything failed.
#
#   BUILD=build-asan bash tests/run.sh     (make asan sets BUILD)
#   TEST_TIMEOUT=seconds per suite (default 1200), DDPMLUA=path of the binary
#   TEST_PARTS="c lua scripts" (the default) picks which of the three run
#   TEST_SKIP="name ..." leaves out those suites (e.g. test_mpi), named in the output

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
DDPMLUA=${DDPMLUA:-./ddpmlua}
TIMEOUT=${TEST_TIMEOUT:-1200}
PARTS=" ${TEST_PARTS:-c lua scripts} "
SKIP=" ${TEST_SKIP:-} "
LOGS=$BUILD/test-logs
mkdir -p "$LOGS"
export DDPMLUA

total_pass=0
total_fail=0
summary=()

# run_suite NAME COMMAND...
run_suite() {
   local name=$1; shift
   if [[ "$SKIP" == *" $name "* ]]; then
      echo "$name: left out (TEST_SKIP)"
      summary+=("$name: left out (TEST_SKIP)")
      return
   fi
   local log=$LOGS/$name.log
   local t0=$SECONDS rc
   timeout -k 10 "$TIMEOUT" "$@" >"$log" 2>&1 </dev/null
   rc=$?
   local line pass=0 fail=0 note=""
   line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
   if [ -n "$line" ]; then
      pass=${line%% passed*}
      fail=${line#*, }; fail=${fail%% failed}
      if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
   elif [ "$rc" -eq 0 ]; then
      pass=1; note=" (no summary line)"
   else
      fail=1; note=" (no summary line)"
   fi
   if [ "$rc" -eq 124 ]; then note="$note (timed out after ${TIMEOUT}s)"
   elif [ "$rc" -gt 128 ]; then note="$note (killed by signal $((rc - 128)))"
   elif [ "$rc" -ne 0 ]; then note="$note (exit status $rc)"
   fi
   local text
   text=$(printf '%-28s %4d passed, %d failed  %3ds%s' "$name:" "$pass" "$fail" \
          $((SECONDS - t0)) "$note")
   echo "$text"
   summary+=("$text")
   # failing TAP lines with their comments
   awk '/^not ok /{show=1; print "   " $0; next}
        show && /^#/{print "   " $0; next}
        {show=0}' "$log"
   if [ -z "$line" ] || { [ "$rc" -ne 0 ] && ! grep -q '^not ok ' "$log"; }; then
      echo "   --- last lines of $log:"
      tail -n 20 "$log" | sed 's/^/   | /'
   fi
   total_pass=$((total_pass + pass))
   total_fail=$((total_fail + fail))
}

[[ "$PARTS" == *" c "* ]] && echo "== C unit tests ($BUILD/tests)"
found=0
[[ "$PARTS" == *" c "* ]] && for bin in "$BUILD"/tests/test_*; do
   [ -f "$bin" ] && [ -x "$bin" ] || continue
   found=1
   run_suite "$(basename "$bin")" "$bin"
done
[[ "$PARTS" != *" c "* ]] || [ "$found" -eq 1 ] || echo "(none built)"

[[ "$PARTS" == *" lua "* ]] && echo "== Lua tests"
if [[ "$PARTS" != *" lua "* ]]; then
   :
elif [ -x "$DDPMLUA" ]; then
   run_suite "lua" "$DDPMLUA" tests/lua/run.lua
else
   echo "lua: $DDPMLUA not found (run make first)"
   summary+=("lua: $DDPMLUA not found")
   total_fail=$((total_fail + 1))
fi

[[ "$PARTS" == *" scripts "* ]] && echo "== end-to-end scripts"
found=0
[[ "$PARTS" == *" scripts "* ]] && for sh in tests/*.sh; do
   [ -f "$sh" ] && [ "$sh" != tests/run.sh ] || continue
   found=1
   run_suite "$(basename "$sh" .sh)" bash "$sh"
done
[[ "$PARTS" != *" scripts "* ]] || [ "$found" -eq 1 ] || echo "(none)"

echo "== summary (logs in $LOGS/)"
for s in "${summary[@]}"; do echo "$s"; done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
