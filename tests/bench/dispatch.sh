#!/usr/bin/env bash
# The Twilio adapter's dispatch rate against a local Twilio-shaped sink over keep-alive, set
# beside wrk's requests/s against the same sink in the same run (goal: ≥ 50% of wrk's ceiling),
# and beside the same requests on a bare libcurl multi handle (the floor of any adapter on
# libcurl, one thread). Builds nothing: expects build/release (override with BUILD=dir).
#
#   cmake --preset release && cmake --build --preset release --target relance_dispatch_bench
#   tests/bench/dispatch.sh            # concurrency 8 and 32
#   tests/bench/dispatch.sh 16         # any list of concurrencies
#
# Environment: REPEAT (5) runs of each side for the median, DURATION (10s) per wrk run,
# MESSAGES (60000) per dispatch round, SINK_THREADS (4), SINK_SERVER (epoll | httplib),
# WRK_THREADS (2), ORDER (interleaved: a wrk run, a bare libcurl round, a dispatch round, then
# again; blocks: the R wrk runs, then the R libcurl rounds, then the R dispatch rounds). Each
# round is its own process, warmed up first. Prints a markdown table on stdout; progress goes to
# stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$root/build/release}
bin=$build/tests/bench/relance_dispatch_bench
repeat=${REPEAT:-5}
duration=${DURATION:-10s}
messages=${MESSAGES:-60000}
sink_threads=${SINK_THREADS:-4}
sink_server=${SINK_SERVER:-epoll}
wrk_threads=${WRK_THREADS:-2}
order=${ORDER:-interleaved}
concurrencies=("$@")
((${#concurrencies[@]})) || concurrencies=(8 32)

if [[ ! -x $bin ]]; then
  echo "dispatch.sh: $bin not found; build it first:" >&2
  echo "  cmake --preset release && cmake --build --preset release --target relance_dispatch_bench" >&2
  exit 1
fi
if ! command -v wrk >/dev/null; then
  echo "dispatch.sh: wrk is not installed. Install it with" >&2
  echo "  sudo apt-get install -y wrk        (or: deploy/scripts/install-deps.sh --with-test-tools)" >&2
  exit 1
fi

tmp=$(mktemp -d)
sink_pid=
cleanup() {
  if [[ -n $sink_pid ]]; then
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "dispatch.sh: $*" >&2; }

# The sink binds a free port itself (--port 0) and reports it: no window in which another
# process could take a port picked beforehand.
"$bin" sink --port 0 --threads "$sink_threads" --server "$sink_server" >"$tmp/sink.out" 2>"$tmp/sink.err" &
sink_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^listening port=\([0-9]*\).*/\1/p' "$tmp/sink.out")
  [[ -n $port ]] && break
  kill -0 "$sink_pid" 2>/dev/null || { cat "$tmp/sink.err" >&2; exit 1; }
  sleep 0.05
done
[[ -n $port ]] || { log "the sink did not start"; exit 1; }
url=http://127.0.0.1:$port
"$bin" wrk-script >"$tmp/create.lua"
status=$(curl -s -o /dev/null -w '%{http_code}' -u AC0:x -d 'To=%2B33600000000&Body=hi' \
  "$url/2010-04-01/Accounts/AC0/Messages.json")
[[ $status == 201 ]] || { log "the sink answered $status, not 201"; exit 1; }
log "sink on $url ($sink_server, $sink_threads threads)"

# Machine load: all CPUs' busy and total time from /proc/stat, and the sink's own CPU time, in
# clock ticks. Over a phase, what the machine spent beyond the benchmark's processes (the
# client, the sink) is what other processes took from it.
hz=$(getconf CLK_TCK)
cpu_sample() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
sink_ticks() { awk '{print $14 + $15}' "/proc/$sink_pid/stat"; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# median, min and max of numbers given one per line
stats() { sort -g | awk '{v[NR]=$1} END{m=NR%2?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.0f %.0f %.0f\n", m, v[1], v[NR]}'; }
median1() { sort -g | awk '{v[NR]=$1} END{printf "%.1f", NR%2?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
range() { echo "$(thousands "$1") ($(thousands "$2")–$(thousands "$3"))"; }  # median min max
thousands() { printf '%s' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/;ta'; }

# timed PHASE COMMAND...: runs the client COMMAND (stdout to $tmp/out), then appends to
# $tmp/PHASE.load "other-CPU-seconds capacity-seconds" and sets client_cpu to the client's CPU
# seconds (user + system).
timed() {
  local phase=$1 a b s0 s1 TIMEFORMAT='%3U %3S'
  shift
  a=$(cpu_sample) s0=$(sink_ticks)
  timed_status=0
  { time "$@" >"$tmp/out" 2>"$tmp/err"; } 2>"$tmp/time" || timed_status=$?
  b=$(cpu_sample) s1=$(sink_ticks)
  client_cpu=$(awk '{print $1 + $2}' "$tmp/time")
  awk -v a="$a" -v b="$b" -v s0="$s0" -v s1="$s1" -v c="$client_cpu" -v hz="$hz" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    printf "%.3f %.3f\n", (y[1] - x[1]) / hz - c - (s1 - s0) / hz, (y[2] - x[2]) / hz }' >>"$tmp/$phase.load"
}
others_percent() { awk '{o += $1; t += $2} END{printf "%.0f", t ? (o > 0 ? 100 * o / t : 0) : 0}' "$tmp/$1.load"; }

# run_wrk RUN: one wrk run at concurrency $k.
run_wrk() {
  timed wrk wrk -t"$wrk_t" -c"$k" -d"$duration" -s "$tmp/create.lua" "$url"
  ((timed_status == 0)) || { cat "$tmp/err" >&2; log "wrk failed (status $timed_status)"; exit 1; }
  local rate bad
  rate=$(awk '/^Requests\/sec:/{print $2}' "$tmp/out")
  # wrk's own CPU time per request: the client's cost, whatever the load.
  awk -v c="$client_cpu" '/ requests in /{printf "%.1f\n", c * 1e6 / $1}' "$tmp/out" >>"$tmp/wrk.cpu"
  bad=$(awk '/Non-2xx or 3xx responses:/{n+=$NF} /Socket errors:/{gsub(",","");n+=$4+$6+$8+$10} END{print n+0}' "$tmp/out")
  wrk_errors=$((wrk_errors + bad))
  echo "$rate" >>"$tmp/wrk.rates"
  log "K=$k: wrk run $1/$repeat: $rate req/s"
}
# run_client PHASE RUN: one round of `relance_dispatch_bench PHASE` (dispatch or libcurl).
run_client() {
  timed "$1" "$bin" "$1" --url "$url" --messages "$messages" --in-flight "$k" --repeat 1
  [[ -s $tmp/out ]] || { cat "$tmp/err" >&2; log "relance_dispatch_bench $1 failed (status $timed_status)"; exit 1; }
  cat "$tmp/out" >>"$tmp/$1.lines"
  log "K=$k: $1 round $2/$repeat: $(cat "$tmp/out")"
}
# field PHASE KEY: KEY's values in PHASE's output lines, one a line.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$tmp/$1.lines"; }

rows=()
notes=()
load_start=$(load1)
for k in "${concurrencies[@]}"; do
  wrk_t=$((wrk_threads < k ? wrk_threads : k))
  log "K=$k: warming the sink up (wrk 2 s)"
  wrk -t"$wrk_t" -c"$k" -d2s -s "$tmp/create.lua" "$url" >/dev/null

  : >"$tmp/wrk.rates"
  : >"$tmp/wrk.cpu"
  : >"$tmp/wrk.load"
  for phase in dispatch libcurl; do : >"$tmp/$phase.lines"; : >"$tmp/$phase.load"; done
  wrk_errors=0
  # Interleaved by default: on a shared machine the load drifts, and a drift then weighs on both
  # sides alike instead of on whichever ran last.
  if [[ $order == blocks ]]; then
    for r in $(seq "$repeat"); do run_wrk "$r"; done
    for r in $(seq "$repeat"); do run_client libcurl "$r"; done
    for r in $(seq "$repeat"); do run_client dispatch "$r"; done
  else
    for r in $(seq "$repeat"); do run_wrk "$r"; run_client libcurl "$r"; run_client dispatch "$r"; done
  fi
  read -r wrk_med wrk_min wrk_max < <(stats <"$tmp/wrk.rates")
  read -r c_med c_min c_max < <(field libcurl median_per_s | stats)
  read -r d_med d_min d_max < <(field dispatch median_per_s | stats)
  w_cpu=$(median1 <"$tmp/wrk.cpu")
  c_cpu=$(field libcurl cpu_us_per_msg | median1)
  d_cpu=$(field dispatch cpu_us_per_msg | median1)
  ratio=$(awk -v d="$d_med" -v w="$wrk_med" 'BEGIN{printf "%.0f%%", 100*d/w}')
  c_ratio=$(awk -v d="$c_med" -v w="$wrk_med" 'BEGIN{printf "%.0f%%", 100*d/w}')
  rows+=("| $sink_server, $sink_threads threads | $k | $(range "$wrk_med" "$wrk_min" "$wrk_max") | $(range "$c_med" "$c_min" "$c_max") ($c_ratio) | $(range "$d_med" "$d_min" "$d_max") | **$ratio** | $w_cpu / $c_cpu / $d_cpu µs | $(others_percent wrk)% / $(others_percent libcurl)% / $(others_percent dispatch)% |")
  ((wrk_errors == 0)) || notes+=("K=$k: wrk counted $wrk_errors non-2xx answers or socket errors.")
  for phase in libcurl dispatch; do
    errors=$(field "$phase" errors | awk '{n+=$1} END{print n+0}')
    ((errors == 0)) || notes+=("K=$k: $phase: $errors requests failed: $(sed -n 's/.* first_error=//p' "$tmp/$phase.lines" | head -1)")
  done
done
load_end=$(load1)

cpu_model=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo
echo "Machine: $(nproc) CPUs ($cpu_model), load average $load_start at start, $load_end at end." \
  "wrk: \`wrk -t$wrk_threads -c K -d $duration\`," \
  "median of $repeat runs; bare libcurl and dispatch: $repeat rounds of $messages requests each on one" \
  "thread, K in flight; order: $order."
echo
echo "| sink | K | wrk req/s, median (min–max) | bare libcurl req/s (of wrk) | dispatches/s | dispatch / wrk | client CPU per request: wrk / libcurl / dispatch | CPU taken by other processes: wrk / libcurl / dispatch |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if ((${#notes[@]})); then
  echo
  printf -- '- %s\n' "${notes[@]}"
fi
