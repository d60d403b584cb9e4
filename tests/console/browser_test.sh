#!/usr/bin/env bash
# The console in a real browser during the demo: starts `relance demo` on a free port, waits
# for its summary, then drives Debian's Chromium with playwright-core (npm, installed once per
# version under the cache folder) through tests/console/console_test.mjs. Screenshots are kept
# in ARTIFACT_DIR.
#
#   tests/console/browser_test.sh RELANCE_BINARY ARTIFACT_DIR
set -euo pipefail

relance=$(realpath "$1")
artifacts=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PLAYWRIGHT_VERSION=1.64.1
cache="${RELANCE_CACHE_DIR:-$HOME/.cache/relance}/playwright-core"

chromium=${CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || { echo "browser test: $chromium not found (deploy/scripts/install-deps.sh --with-test-tools installs it)"; exit 1; }

# playwright-core only: it drives the browser already installed and downloads none.
mkdir -p "$cache"
exec 8>"$cache/.lock"
flock 8
if [[ ! -f $cache/.complete || $(<"$cache/.complete") != "$PLAYWRIGHT_VERSION" ]]; then
  rm -rf "$cache/node_modules" "$cache/.complete"
  npm install --prefix "$cache" --no-audit --no-fund --no-update-notifier "playwright-core@$PLAYWRIGHT_VERSION" \
    >"$cache/install.log" 2>&1 || { cat "$cache/install.log"; exit 1; }
  echo "$PLAYWRIGHT_VERSION" >"$cache/.complete"
fi
exec 8>&-

work=$(mktemp -d)
demo_pid=
cleanup() {
  if [[ -n $demo_pid ]]; then kill "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$work" && exec "$relance" demo --listen "127.0.0.1:$port" --data-dir "$work/demo") >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
for _ in $(seq 1800); do
  grep -q "The console stays up" "$work/demo.out" 2>/dev/null && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.out" "$work/demo.err"; echo "browser test: the demo stopped"; exit 1; }
  sleep 0.1
done
grep -q "The console stays up" "$work/demo.out" || { cat "$work/demo.out"; echo "browser test: the demo did not finish in 180 s"; exit 1; }
echo "demo finished; console on 127.0.0.1:$port"

mkdir -p "$artifacts"
cp "$here/console_test.mjs" "$cache/console_test.mjs"
CHROMIUM=$chromium node "$cache/console_test.mjs" "http://127.0.0.1:$port" "$artifacts"
