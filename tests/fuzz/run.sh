#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS TARGET... — runs each libFuzzer harness
# build-fuzz/fuzz_<target> for SECONDS, one after another (make fuzz).
#
# Each run reads the committed seeds (tests/fuzz/corpus/<target>, not
# written to) and grows build-fuzz/corpus/<target>; a failing input is
# saved as build-fuzz/crashers/<target>/crash-* (or leak-, oom-, timeout-).
# FUZZ_OPTS (from make) bounds allocations: libFuzzer reports any single
# malloc over -malloc_limit_mb and a resident size over -rss_limit_mb as a
# failure. The last line per target is libFuzzer's final "#N DONE cov: ..."
# (or the failure); full logs are build-fuzz/logs/<target>.log.
cd "$(dirname "$0")/../.." || exit 2
secs=${1:?usage: run.sh SECONDS TARGET...}; shift
opts=${FUZZ_OPTS:--malloc_limit_mb=256 -rss_limit_mb=2048 -timeout=20}
fail=0
for t in "$@"; do
   mkdir -p "build-fuzz/corpus/$t" "build-fuzz/crashers/$t" build-fuzz/logs
   log=build-fuzz/logs/$t.log
   # shellcheck disable=SC2086
   "build-fuzz/fuzz_$t" $opts -max_total_time="$secs" -print_final_stats=1 \
      -artifact_prefix="build-fuzz/crashers/$t/" \
      "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
   rc=$?
   execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
   last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
   if [ "$rc" -eq 0 ]; then
      printf '%-12s ok      %s execs; %s\n' "$t" "${execs:-?}" "$last"
   else
      fail=1
      printf '%-12s FAILED  (exit %d); see %s\n' "$t" "$rc" "$log"
      grep -E 'ERROR|SUMMARY|fuzz assertion|Test unit written' "$log" | head -n 5 | sed 's/^/   /'
   fi
done
exit $fail
