#!/usr/bin/env bash
# Builds the fuzz preset (clang, libFuzzer, ASan+UBSan) and runs each fuzz target for a while,
# starting from a copy of its seed corpus in tests/fuzz/corpus/<target>/ so that what a run
# finds never lands in the repository. Needs no network.
#
#   tests/fuzz/run.sh [seconds] [target...]
#
# seconds: per target (default $RELANCE_FUZZ_SECONDS, else 30); targets: default all of them.
# RELANCE_FUZZ_JOBS: build parallelism (default 2).
# Exits non-zero when any target crashed, leaked, timed out or ran out of memory; the input
# that did it is kept in build/fuzz/fuzz-work/<target>/artifacts/ and its log beside it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

seconds=${RELANCE_FUZZ_SECONDS:-30}
if [[ $# -gt 0 ]]; then
  seconds=$1
  shift
fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "run.sh: seconds must be a positive integer, got '$seconds'" >&2
  exit 2
fi

# Longest input each target is given: a few times its largest realistic input (the shipped
# configurations are up to 5 KB, the longest built-in template under 3 KB), so that time goes to
# structure rather than to length.
declare -A max_len=(
  [call_outcome]=2048
  [config_yaml]=16384
  [event_decoder]=4096
  [template]=8192
  [twilio_answer]=8192
  [twilio_callback]=4096
)
all_targets=(call_outcome config_yaml event_decoder template twilio_answer twilio_callback)
targets=("$@")
if ((${#targets[@]} == 0)); then targets=("${all_targets[@]}"); fi
for t in "${targets[@]}"; do
  if [[ -z ${max_len[$t]:-} ]]; then
    echo "run.sh: unknown target '$t' (known: ${all_targets[*]})" >&2
    exit 2
  fi
done

# RELANCE_FUZZ_BUILD=0 runs the targets as already built (a CI step that built them before).
if [[ ${RELANCE_FUZZ_BUILD:-1} != 0 ]]; then
  cmake --preset fuzz >/dev/null
  # The targets and the libraries they test only: the rest of the tree is not fuzzed.
  cmake --build --preset fuzz -j "${RELANCE_FUZZ_JOBS:-2}" --target relance_fuzzers
fi

build=build/fuzz
work=$build/fuzz-work
passed=0
failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "${targets[@]}"; do
  dir=$work/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  log=$dir/fuzz.log
  started=$(date +%s)
  status=0
  "$build/tests/fuzz/${t}_fuzzer" "$dir/corpus" \
    -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
    -dict="tests/fuzz/$t.dict" -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - started))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  artifacts=$(find "$dir/artifacts" -type f | wc -l)
  if ((status == 0 && artifacts == 0)); then
    passed=$((passed + 1))
    printf 'PASS %-16s %10s execs in %4ss (%s exec/s), corpus %s\n' "$t" "${execs:-?}" "$elapsed" "${rate:-?}" "$corpus"
  else
    failed=$((failed + 1))
    printf 'FAIL %-16s exit %s after %ss, %s execs; log %s\n' "$t" "$status" "$elapsed" "${execs:-?}" "$log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 || true
    find "$dir/artifacts" -type f -printf '  reproducer: %p\n'
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))
