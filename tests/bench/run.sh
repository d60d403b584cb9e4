#!/usr/bin/env bash
# The benchmark suite: builds the release preset's benchmark targets, runs every benchmark with
# the ceilings measured in the same run, and writes one markdown report (figures, the machine,
# ceilings, ratios) that the README's performance section reproduces. Benchmarks are not tests:
# nothing here fails on a slow figure, only on a benchmark that could not run.
#
#   tests/bench/run.sh                 # everything, ~35 minutes on 2 cores
#   QUICK=1 tests/bench/run.sh         # smaller sizes and fewer runs, ~7 minutes
#
# Environment: OUT (build/release/bench/results.md), REPEAT (5; 3 when QUICK), TIMELINES
# ("1000000 10000000"; 200000 when QUICK: one durable-state run per size), SKIP (space-separated section
# names to leave out: decision callbacks dispatch throttled e2e state). Needs wrk, nginx and kcat
# (deploy/scripts/install-deps.sh --with-bench-tools).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$root/build/release}
quick=${QUICK:-}
repeat=${REPEAT:-$([[ -n $quick ]] && echo 3 || echo 5)}
timelines=${TIMELINES:-$([[ -n $quick ]] && echo 200000 || echo "1000000 10000000")}
out=${OUT:-$build/bench/results.md}
skip=" ${SKIP:-} "

log() { echo "bench: $*" >&2; }
wanted() { [[ $skip != *" $1 "* ]]; }

cd "$root"
log "building the benchmarks (release preset)"
cmake --preset release >/dev/null
cmake --build --preset release --target relance relance_decision_path_bench relance_dispatch_bench \
  relance_throttled_bench relance_state_bench relance_e2e_bench >&2

mkdir -p "$(dirname "$out")"
report=$(mktemp)
raw=$(mktemp)
trap 'rm -f "$report" "$raw"' EXIT
say() { echo "$*" >>"$report"; }
# Runs a benchmark, shows its whole output as progress and keeps it for the report.
run_bench() { "$@" >"$raw"; cat "$raw" >&2; }

model=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
say "# Relance benchmarks"
say
say "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPUs ($model), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1 /proc/loadavg) at the start. Medians of $repeat runs, (min–max)."

# --- a. the decision path ---------------------------------------------------------------------
if wanted decision; then
  log "a. decision path"
  say
  say "## a. Decision path (decode, validate, ledger, rules, render; no I/O)"
  say
  say "Goal: 1,000,000 events/s per core, p99 ≤ 5 µs. Ceiling: decoding the same records alone on one thread."
  say
  say "| threads | events/s (min–max) | per thread | p50 | p99 (min–max) | p99.9 | decoding alone, 1 thread | path / decoding |"
  say "|---|---|---|---|---|---|---|---|"
  customers=$([[ -n $quick ]] && echo 50000 || echo 200000)
  for threads in 1 2; do
    run_bench "$build/tests/bench/relance_decision_path_bench" --customers "$customers" --threads "$threads" \
      --repeat "$repeat"
    line=$(grep '^summary' "$raw")
    get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    say "$(awk -v t="$threads" -v r="$(get events_per_s)" -v lo="$(get min)" -v hi="$(get max)" \
      -v pt="$(get per_thread)" -v p50="$(get p50_ns)" -v p99="$(get p99_ns)" -v p99lo="$(get p99_min)" \
      -v p99hi="$(get p99_max)" -v p999="$(get p999_ns)" -v dec="$(get decode_only_per_s)" \
      'BEGIN{printf "| %d | %.0f (%.0f–%.0f) | %.0f | %.1f µs | %.1f µs (%.1f–%.1f) | %.1f µs | %.0f | %.0f%% |",
        t, r, lo, hi, pt, p50/1000, p99/1000, p99lo/1000, p99hi/1000, p999/1000, dec, 100*pt/dec}')"
  done
  say
  say "Stream: per customer an invoice issued (70% not yet due, 20% overdue: a reminder decided and rendered, 10% large and overdue: a call task and an email), then a payment for a third of them; every customer has a phone number of its own."
fi

# --- c. callback ingestion ---------------------------------------------------------------------
if wanted callbacks; then
  log "c. callback ingestion"
  say
  say "## c. Callback ingestion (signed Twilio status callbacks)"
  say
  say "Goal: 40,000 req/s over 64 keep-alive connections with signature checks. Ceiling: nginx answering a static 200 on the same machine, same wrk."
  REPEAT=$repeat DURATION=$([[ -n $quick ]] && echo 5s || echo 10s) bash "$root/tests/bench/callbacks.sh" >>"$report"
fi

# --- dispatch to a Twilio-shaped sink ----------------------------------------------------------
if wanted dispatch; then
  log "dispatch to a Twilio-shaped sink"
  say
  say "## Dispatch to a Twilio-shaped HTTP sink (the SMS adapter, no Kafka)"
  say
  say "Goal: 50% of wrk's requests/s against the same sink. Ceilings: wrk, and bare libcurl on one thread."
  REPEAT=$repeat DURATION=$([[ -n $quick ]] && echo 5s || echo 10s) MESSAGES=$([[ -n $quick ]] && echo 30000 || echo 60000) \
    bash "$root/tests/bench/dispatch.sh" 8 32 >>"$report"
fi

# --- f. throttled correctness ------------------------------------------------------------------
if wanted throttled; then
  log "f. throttled correctness"
  say
  say "## f. Throttled correctness (the SMS adapter against a Twilio-shaped provider in the same process)"
  say
  say "Goals: ≥ 98% of the senders' aggregate budget used, 0 one-second windows over a sender's budget, withdrawn messages never reaching the provider later than 100 ms after the payment; nothing lost or sent twice."
  say
  say "| senders | seconds | cap in flight | 429 every | budget msg/s | requests/s (of budget) | accepted/s | windows over budget (1 s − 100 ms; full second) | withdrawn: cancelled / reached provider >100 ms after | lost / duplicates |"
  say "|---|---|---|---|---|---|---|---|---|---|"
  runs=$([[ -n $quick ]] && echo 1 || echo 3)
  for r in $(seq "$runs"); do
    run_bench "$build/tests/bench/relance_throttled_bench" --senders 10000 --seconds "$([[ -n $quick ]] && echo 10 || echo 20)" \
      --in-flight 32 --reject-every 25 || true
    line=$(grep '^throttled' "$raw" || true)
    get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    say "| $(get senders) | $(get seconds) | $(get in_flight) | $(get reject_every) | $(get budget_per_s) | $(awk -v u="$(get budget_used)" -v b="$(get budget_per_s)" 'BEGIN{printf "%.0f (%.1f%%)", u*b, 100*u}') | $(get accepted_per_s) | $(get windows_over_budget); $(get full_second_windows_over_budget) | $(get cancelled) of $(get withdrawn) / $(get late_after_withdrawal) | $(get lost) / $(get duplicates) |"
  done
fi

# --- b. end to end on a real broker -------------------------------------------------------------
if wanted e2e; then
  log "b. end to end on a real broker"
  say
  say "## b. End to end on a real Kafka broker (events → relance → Twilio-shaped sink → delivery events)"
  say
  say "Goals: the highest sustained rate ≥ 50% of the HTTP ceiling; p99 ≤ 25 ms at half of it."
  if [[ -n $quick ]]; then
    REPEAT=$repeat BURST=40000 SUSTAIN=20 LATENCY=10 RECORDS=100000 DURATION=5s bash "$root/tests/bench/e2e.sh" >>"$report"
  else
    REPEAT=$repeat bash "$root/tests/bench/e2e.sh" >>"$report"
  fi
fi

# --- d, e. durable state -----------------------------------------------------------------------
if wanted state; then
  for n in $timelines; do
    log "d, e. durable state with $n timelines"
    say
    say "## d, e. Durable state: memory per open invoice, clean restart ($n timelines, one run)"
    say
    say "Goals: ≤ 128 B resident per open invoice; restart ≤ 2 s from the local store."
    say
    say "| figure | value |"
    say "|---|---|"
    run_bench "$build/tests/bench/relance_state_bench" --timelines "$n" || true
    grep '^|' "$raw" >>"$report" || true
  done
fi

cp "$report" "$out"
log "report written to $out"
cat "$out"
