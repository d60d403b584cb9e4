#!/usr/bin/env bash
# Installs every Debian package Relance builds and tests with. Idempotent: when all packages
# are already present it returns without touching apt.
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build pkg-config git
  librdkafka-dev libprotobuf-dev protobuf-compiler libasio-dev libcpp-httplib-dev
  libcurl4-openssl-dev libssl-dev rapidjson-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libkainjow-mustache-dev libicu-dev libphonenumber-dev libboost-dev librocksdb-dev libmimalloc-dev
  libbenchmark-dev libgtest-dev libgmock-dev
)
# What the test rig needs beside the compiler: a Kafka client for scripts, an SMTP server,
# Java and Maven for the broker, Node for the Twilio contract mock (Prism, installed by the
# rig itself through npm), wrk for the HTTP benchmark, and Chromium (with a font) for the
# console's browser test, driven by playwright-core from npm. clang with its runtime libraries
# (libclang_rt.fuzzer, asan, ubsan) builds the fuzz targets (tests/fuzz/run.sh).
test_packages=(kcat python3-aiosmtpd default-jre-headless maven curl ca-certificates wrk chromium fonts-liberation
  clang libclang-rt-14-dev)
# The benchmark suite (tests/bench/run.sh) adds nginx, the HTTP ceiling beside the gateway's
# own server; it is only started by the suite, on a port of its own.
bench_packages=(nginx-light)
# Only when no npm is on PATH: a Node installed another way (nvm, NodeSource) must not be
# shadowed by or conflict with Debian's.
node_packages=(nodejs npm)

want=("${build_packages[@]}")
if [[ "${1:-}" == "--with-test-tools" || "${1:-}" == "--with-bench-tools" ]]; then
  want+=("${test_packages[@]}")
  [[ "${1:-}" == "--with-bench-tools" ]] && want+=("${bench_packages[@]}")
  if ! command -v npm >/dev/null; then
    want+=("${node_packages[@]}")
  fi
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
