#!/usr/bin/env bash
# The Twilio adapter's dispatch rate against a local Twilio-shaped sink over keep-alive, set
# beside wrk's requests/s against the same sink in the same run (goal: ≥ 50% of wrk's ceiling).
# Builds nothing: expects build/release (override with BUILD=dir).
#
#   cmake --preset release && cmake --build --preset release --target relance_dispatch_bench
#   tests/bench/dispatch.sh            # concurrency 8 and 32
#   tests/bench/dispatch.sh 16         # any list of concurrencies
#
# Environment: REPEAT (5) runs of each side for the median, DURATION (10s) per wrk run,
# MESSAGES (60000) per dispatch round, SINK_THREADS (4), SINK_SERVER (epoll | httplib),
# WRK_THREADS (2), ORDER (interleaved: wrk run, dispatch round, wrk run...; blocks: the R wrk
# runs, then the R dispatch rounds). Each dispatch round is its own process, warmed up first. Prints a markdown table on stdout; progress goes to stderr.
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

# Busy share of all CPUs between two /proc/stat readings.
cpu_sample() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
busy_percent() {  # start-sample end-sample
  awk -v a="$1" -v b="$2" 'BEGIN{split(a,x," "); split(b,y," "); printf "%.0f", 100*(y[1]-x[1])/(y[2]-x[2])}'
}
add_cpu() {  # "busy total" accumulated, start-sample, end-sample → new "busy total"
  awk -v s="$1" -v a="$2" -v b="$3" 'BEGIN{split(s,t," "); split(a,x," "); split(b,y," "); print t[1]+y[1]-x[1], t[2]+y[2]-x[2]}'
}
busy_of() { awk -v s="$1" 'BEGIN{split(s,t," "); printf "%.0f", t[2] ? 100*t[1]/t[2] : 0}'; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# median, min and max of numbers given one per line
stats() { sort -g | awk '{v[NR]=$1} END{m=NR%2?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.0f %.0f %.0f\n", m, v[1], v[NR]}'; }
median1() { sort -g | awk '{v[NR]=$1} END{printf "%.1f", NR%2?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
thousands() { printf '%s' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/;ta'; }

# One wrk run and one dispatch round at concurrency $k; $1 is the run's number.
run_wrk() {
  local a b TIMEFORMAT='%3U %3S'
  a=$(cpu_sample)
  { time wrk -t"$wrk_t" -c"$k" -d"$duration" -s "$tmp/create.lua" "$url" >"$tmp/wrk.out"; } 2>"$tmp/wrk.time"
  b=$(cpu_sample)
  # wrk's own CPU time (user + system) per request: the client's cost, whatever the load.
  awk -v t="$(tail -1 "$tmp/wrk.time")" '/ requests in /{split(t,c," "); printf "%.1f\n", (c[1]+c[2])*1e6/$1}' \
    "$tmp/wrk.out" >>"$tmp/wrk.cpu"
  read -r -a wrk_cpu < <(add_cpu "${wrk_cpu[*]}" "$a" "$b")
  local rate bad
  rate=$(awk '/^Requests\/sec:/{print $2}' "$tmp/wrk.out")
  bad=$(awk '/Non-2xx or 3xx responses:/{n+=$NF} /Socket errors:/{gsub(",","");n+=$4+$6+$8+$10} END{print n+0}' "$tmp/wrk.out")
  wrk_errors=$((wrk_errors + bad))
  echo "$rate" >>"$tmp/wrk.rates"
  log "K=$k: wrk run $1/$repeat: $rate req/s"
}
run_dispatch() {
  local a b status=0
  a=$(cpu_sample)
  "$bin" dispatch --url "$url" --messages "$messages" --in-flight "$k" --repeat 1 >"$tmp/dispatch.out" || status=$?
  b=$(cpu_sample)
  read -r -a dispatch_cpu < <(add_cpu "${dispatch_cpu[*]}" "$a" "$b")
  [[ -s $tmp/dispatch.out ]] || { log "the dispatch benchmark failed (status $status)"; exit 1; }
  cat "$tmp/dispatch.out" >>"$tmp/dispatch.lines"
  log "K=$k: dispatch round $1/$repeat: $(cat "$tmp/dispatch.out")"
}
# A key's values in the dispatch lines, one a line.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$tmp/dispatch.lines"; }

rows=()
notes=()
load_start=$(load1)
cpu_run_start=$(cpu_sample)
for k in "${concurrencies[@]}"; do
  wrk_t=$((wrk_threads < k ? wrk_threads : k))
  log "K=$k: warming the sink up (wrk 2 s)"
  wrk -t"$wrk_t" -c"$k" -d2s -s "$tmp/create.lua" "$url" >/dev/null

  : >"$tmp/wrk.rates"
  : >"$tmp/wrk.cpu"
  : >"$tmp/dispatch.lines"
  wrk_errors=0
  wrk_cpu=(0 0) dispatch_cpu=(0 0)
  # Interleaved by default: on a shared machine the load drifts, and a drift then weighs on both
  # sides alike instead of on whichever ran last.
  if [[ $order == blocks ]]; then
    for r in $(seq "$repeat"); do run_wrk "$r"; done
    for r in $(seq "$repeat"); do run_dispatch "$r"; done
  else
    for r in $(seq "$repeat"); do run_wrk "$r"; run_dispatch "$r"; done
  fi
  read -r wrk_med wrk_min wrk_max < <(stats <"$tmp/wrk.rates")
  read -r d_med d_min d_max < <(field median_per_s | stats)
  d_cpu=$(field cpu_us_per_msg | median1)
  w_cpu=$(median1 <"$tmp/wrk.cpu")
  d_errors=$(field errors | awk '{n+=$1} END{print n+0}')
  wrk_busy=$(busy_of "${wrk_cpu[*]}")
  dispatch_busy=$(busy_of "${dispatch_cpu[*]}")
  ratio=$(awk -v d="$d_med" -v w="$wrk_med" 'BEGIN{printf "%.0f%%", 100*d/w}')
  rows+=("| $sink_server, $sink_threads threads | $k | $(thousands "$wrk_med") ($(thousands "$wrk_min")–$(thousands "$wrk_max")) | $(thousands "$d_med") ($(thousands "$d_min")–$(thousands "$d_max")) | $ratio | $w_cpu µs / $d_cpu µs | $wrk_busy% / $dispatch_busy% |")
  ((wrk_errors == 0)) || notes+=("K=$k: wrk counted $wrk_errors non-2xx answers or socket errors.")
  [[ $d_errors == 0 ]] || notes+=("K=$k: $d_errors dispatches were not accepted: $(sed -n 's/.* first_error=//p' "$tmp/dispatch.lines" | head -1)")
done
run_busy=$(busy_percent "$cpu_run_start" "$(cpu_sample)")
load_end=$(load1)

cpu_model=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo
echo "Machine: $(nproc) CPUs ($cpu_model), load average $load_start at start, $load_end at end;" \
  "all CPUs $run_busy% busy over the run. wrk: \`wrk -t$wrk_threads -c K -d $duration\`," \
  "median of $repeat runs; dispatch: $repeat rounds of $messages SMS on one thread (max_in_flight K);" \
  "order: $order."
echo
echo "| sink | concurrency K | wrk req/s, median (min–max) | dispatches/s, median (min–max) | ratio | client CPU per request: wrk / dispatcher | CPUs busy: wrk / dispatch |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if ((${#notes[@]})); then
  echo
  printf -- '- %s\n' "${notes[@]}"
fi
