#!/usr/bin/env bash
# End to end on a real Kafka broker (the rig's, started here and stopped at the end): invoice
# events → the relance binary → a Twilio-shaped sink → delivery events, with the ceilings
# measured in the same run on the same machine:
#   - HTTP: wrk against the same sink, with the request the SMS adapter sends;
#   - Kafka: kcat producing records of the events' size with acks=all, consuming them, and
#     piping one topic into another (consume + produce, the work the gateway does per event
#     besides its own).
# Builds nothing: expects build/release (override with BUILD=dir). Prints markdown on stdout;
# progress goes to stderr.
#
#   cmake --preset release && cmake --build --preset release --target relance relance_e2e_bench \
#     relance_dispatch_bench
#   tests/bench/e2e.sh
#
# Environment: REPEAT (3) wrk and kcat runs for the medians, DURATION (10s) per wrk run,
# SUSTAIN (60) seconds per sustained try, LATENCY (30) seconds per latency run, BURST (150000)
# events, RECORDS (300000) for the kcat ceilings, PARTITIONS (2).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$root/build/release}
bench=$build/tests/bench/relance_e2e_bench
dispatch=$build/tests/bench/relance_dispatch_bench
repeat=${REPEAT:-3}
duration=${DURATION:-10s}
sustain=${SUSTAIN:-60}
latency=${LATENCY:-30}
burst=${BURST:-150000}
records=${RECORDS:-300000}
partitions=${PARTITIONS:-2}

for b in "$bench" "$dispatch" "$build/relance"; do
  if [[ ! -x $b ]]; then
    echo "e2e.sh: $b not found; build it first:" >&2
    echo "  cmake --preset release && cmake --build --preset release --target relance relance_e2e_bench relance_dispatch_bench" >&2
    exit 1
  fi
done
for tool in wrk kcat; do
  command -v "$tool" >/dev/null || { echo "e2e.sh: $tool is not installed (deploy/scripts/install-deps.sh --with-bench-tools)" >&2; exit 1; }
done

tmp=$(mktemp -d)
sink_pid=
cleanup() {
  if [[ -n $sink_pid ]]; then
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
  fi
  bash "$root/tests/rig/stop.sh" "$tmp/rig" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "e2e.sh: $*" >&2; }
stats() { sort -g | awk '{v[NR]=$1} END{m=NR%2?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.0f %.0f %.0f\n", m, v[1], v[NR]}'; }
# 1234567 → 1,234,567
commas() { awk -v v="$1" 'BEGIN{s = sprintf("%.0f", v); out = ""; while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) } print s out}'; }
now() { date +%s.%N; }

log "starting the rig (Kafka broker, SMTP, Prism)"
bash "$root/tests/rig/start.sh" "$tmp/rig" >&2
brokers=$(sed -n 's/^KAFKA_BOOTSTRAP=//p' "$tmp/rig/rig.env")

# --- HTTP ceiling: wrk against the sink ---------------------------------------------------------
"$bench" sink --port 0 --threads 2 >"$tmp/sink.out" 2>"$tmp/sink.err" &
sink_pid=$!
for _ in $(seq 100); do grep -q '^listening' "$tmp/sink.out" && break; sleep 0.05; done
port=$(sed -n 's/^listening port=\([0-9]*\).*/\1/p' "$tmp/sink.out")
"$dispatch" wrk-script >"$tmp/create.lua"
: >"$tmp/wrk.rates"
for r in $(seq "$repeat"); do
  log "wrk against the sink, run $r of $repeat"
  wrk -t2 -c64 -d"$duration" -s "$tmp/create.lua" "http://127.0.0.1:$port" >"$tmp/wrk.out"
  awk '/^Requests\/sec:/{print $2}' "$tmp/wrk.out" >>"$tmp/wrk.rates"
done
kill "$sink_pid" 2>/dev/null || true
wait "$sink_pid" 2>/dev/null || true
sink_pid=
read -r wrk_med wrk_min wrk_max < <(stats <"$tmp/wrk.rates")

# --- Kafka ceilings: kcat -------------------------------------------------------------------------
size=$("$bench" event-size)
log "kcat: $records records of $size bytes"
# One record per line, key:value, as wide as an event (printable, so that lines stay lines).
awk -v n="$records" -v size="$size" 'BEGIN{
  pad = ""; while (length(pad) < size) pad = pad "abcdefghijklmnopqrstuvwxyz0123456789";
  for (i = 0; i < n; i++) printf "cust-%d:%s\n", i, substr(pad, 1, size) }' >"$tmp/records.txt"
: >"$tmp/produce.rates"; : >"$tmp/consume.rates"; : >"$tmp/pipe.rates"
for r in $(seq "$repeat"); do
  a=kcat-a-$r-$$; b=kcat-b-$r-$$
  # The topics, with the input's partitions, before the clock starts.
  "$bench" create-topics --brokers "$brokers" --partitions "$partitions" "$a" "$b"
  t0=$(now)
  kcat -b "$brokers" -P -t "$a" -K: -X acks=all -X enable.idempotence=true -X linger.ms=5 -l "$tmp/records.txt"
  t1=$(now)
  awk -v n="$records" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f\n", n/(b-a)}' >>"$tmp/produce.rates"
  t0=$(now)
  got=$(kcat -b "$brokers" -C -t "$a" -o beginning -e -q -f '%k\n' | wc -l)
  t1=$(now)
  awk -v n="$got" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f\n", n/(b-a)}' >>"$tmp/consume.rates"
  t0=$(now)
  kcat -b "$brokers" -C -t "$a" -o beginning -e -q -K: -f '%k:%s\n' |
    kcat -b "$brokers" -P -t "$b" -K: -X acks=all -X enable.idempotence=true -X linger.ms=5
  t1=$(now)
  awk -v n="$got" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f\n", n/(b-a)}' >>"$tmp/pipe.rates"
done
read -r produce_med produce_min produce_max < <(stats <"$tmp/produce.rates")
read -r consume_med consume_min consume_max < <(stats <"$tmp/consume.rates")
read -r pipe_med pipe_min pipe_max < <(stats <"$tmp/pipe.rates")

# --- the gateway end to end -----------------------------------------------------------------------
log "the gateway end to end ($partitions partitions, burst $burst, $sustain s sustained, $latency s latency runs)"
"$bench" run --brokers "$brokers" --relance "$build/relance" --work "$tmp/e2e" --partitions "$partitions" \
  --burst "$burst" --sustain "$sustain" --latency "$latency" | tee "$tmp/e2e.out" >&2 || true
summary=$(grep '^summary' "$tmp/e2e.out" || true)
get() { sed -n "s/.* $1=\([0-9.a-z]*\).*/\1/p" <<<"$summary"; }
max=$(get max_sustained_per_s)

echo
echo "Ceilings in the same run: wrk -t2 -c64 against the same sink with the adapter's request, $(commas "$wrk_med") req/s ($(commas "$wrk_min")–$(commas "$wrk_max")); kcat with records of the events' size ($size B), acks=all: produce $(commas "$produce_med")/s ($(commas "$produce_min")–$(commas "$produce_max")), consume $(commas "$consume_med")/s, consume piped into produce $(commas "$pipe_med")/s ($(commas "$pipe_min")–$(commas "$pipe_max")). Medians of $repeat."
echo
echo "| phase | events/s offered | events | at the sink once / twice | SENT delivery events | p50 | p99 | held |"
echo "|---|---|---|---|---|---|---|---|"
grep -E '^(burst|sustained|latency) ' "$tmp/e2e.out" | while read -r line; do
  f() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
  phase=${line%% *}
  offered=$([[ $phase == burst ]] && echo "as fast as produced (drained at $(commas "$(f rate | cut -d. -f1)")/s)" || commas "$(f rate | cut -d. -f1)")
  echo "| $phase | $offered | $(commas "$(f events)") | $(commas "$(f arrived)") / $(f duplicates) | $(commas "$(f sent_events)") | $(f p50_ms) ms | $(f p99_ms) ms | $([[ $(f held) == 1 ]] && echo yes || echo no) |"
done
echo
restart=$(grep '^restart' "$tmp/e2e.out" || true)
if [[ -n $restart ]]; then
  r() { sed -n "s/.* $1=\([0-9.-]*\).*/\1/p" <<<"$restart"; }
  echo "Restarts with the run's $(commas "$(r timelines)") timelines in the state (one open invoice each), to readiness: from the local store **$(r local_s) s** (goal 2 s), from the changelog with the store deleted **$(r changelog_s) s** (goal 5 s). Resident memory: $(r baseline_rss_mib) MiB empty, $(r local_rss_mib) MiB after the local restart, $(r changelog_rss_mib) MiB after the changelog restore: **$(r bytes_per_timeline) B per open invoice** (goal 128 B)."
  echo
fi
low=$(get low_rate)
if [[ -n $max && $max != 0 && $(get low_p99_ms) == none ]]; then
  echo "No latency run at $(commas "$low") events/s: above the highest sustained rate."
  echo
fi
if [[ -n $max && $max != 0 ]]; then
  awk -v m="$max" -v mc="$(commas "$max")" -v w="$wrk_med" -v p="$pipe_med" -v hp99="$(get half_p99_ms)" 'BEGIN{
    printf "Highest sustained rate held for the full run with nothing lost or doubled: **%s events/s**, %.1f%% of the HTTP ceiling (goal 50%%), %.1f%% of kcat'"'"'s consume + produce pipe; p99 at half of it: **%.1f ms** (goal 25 ms).\n", mc, 100*m/w, 100*m/p, hp99 }'
else
  echo "No sustained rate held (see the rows above)."
fi
