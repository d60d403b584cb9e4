#!/usr/bin/env bash
# Installs what the tests need, builds once per preset, runs the unit tests under ASan+UBSan and
# under TSan, every fuzz target briefly, the integration tests under ASan+UBSan, then every test
# of the release build with the real services (Kafka broker, SMTP server, Prism) started once
# for all of them. Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash deploy/scripts/install-deps.sh --with-test-tools

jobs=$(nproc)
echo "== build: release"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"

echo "== build: asan+ubsan (unit and integration tests, the gateway)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs" --target relance_unit_tests relance_integration_tests relance relance_enospc_shim

echo "== unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan -L unit --output-on-failure -j "$jobs"

echo "== build: tsan (unit tests)"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs" --target relance_unit_tests

echo "== unit tests under TSan"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build/tsan -L unit --output-on-failure -j "$jobs"

echo "== fuzz targets, 30 s each (clang, libFuzzer, ASan+UBSan)"
RELANCE_FUZZ_JOBS=$jobs bash tests/fuzz/run.sh 30

echo "== integration tests under ASan+UBSan (the gateway and the tests), against the real services"
rm -rf build/asan/test-logs
# All but the disk-full test, which preloads its ENOSPC shim into the gateway: under ASan that
# gateway once ended at start-up before its first assignment (where librdkafka 2.0.2 asserts),
# with nothing logged, in one run of three; it runs in the release build below.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan -L integration -E 'StoreDiskFull' --output-on-failure

echo "== all tests: unit, then integration against the real broker and SMTP server"
# Gateway logs of this run only, for the log scan (logs.scan).
rm -rf build/release/test-logs
ctest --test-dir build/release --output-on-failure
