#!/usr/bin/env bash
# Signed Twilio status callbacks into the gateway with wrk, over 64 keep-alive connections and
# with a new connection per request, beside nginx answering a static 200 on the same machine
# (the ceiling of any HTTP server here). Every callback is distinct (its own MessageSid and
# reminder) and signed over the gateway's public URL, so each one is verified, turned into a
# fact and acknowledged by Kafka before the 200. Builds nothing: expects build/release
# (override with BUILD=dir) and the gateway binary in it.
#
#   tests/bench/callbacks.sh                # embedded Kafka (librdkafka's in-process cluster)
#   BROKERS=127.0.0.1:9092 tests/bench/callbacks.sh   # a real broker (topics must exist)
#
# Environment: REPEAT (3) runs of each side for the median, DURATION (10s) per run, CONNECTIONS
# (64), WRK_THREADS (2), CALLBACKS (600000 distinct signed requests generated up front).
# Prints a markdown table on stdout; progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-$root/build/release}
relance=$build/relance
repeat=${REPEAT:-3}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
wrk_threads=${WRK_THREADS:-2}
callbacks=${CALLBACKS:-600000}
brokers=${BROKERS:-}

log() { echo "callbacks.sh: $*" >&2; }
for tool in wrk nginx python3 curl; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || {
    log "$tool is not installed (deploy/scripts/install-deps.sh --with-bench-tools installs it)"
    exit 1
  }
done
[[ -x $relance ]] || { log "$relance not found; build it first: cmake --build --preset release"; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -f $tmp/nginx.pid ]] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url
  for _ in $(seq 300); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  log "nothing answers at $1"
  return 1
}

gateway_port=$(free_port)
nginx_port=$(free_port)
public_url=http://127.0.0.1:$gateway_port
account=AC00000000000000000000000000000001
token=bench-auth-token-0123456789abcdef

# The gateway: Twilio configured (its auth token signs the callbacks), the rest as shipped.
cat >"$tmp/relance.yaml" <<EOF
kafka:
  brokers: "$brokers"
channels:
  twilio:
    base_url: http://127.0.0.1:9
    account_sid: $account
    auth_token_env: RELANCE_BENCH_TWILIO_TOKEN
    sms_from: "+15005550006"
http:
  listen: 127.0.0.1:$gateway_port
  public_url: $public_url
store:
  path: $tmp/store
logging:
  level: warn
EOF
RELANCE_BENCH_TWILIO_TOKEN=$token "$relance" run --config "$tmp/relance.yaml" >"$tmp/gateway.log" 2>&1 &
pids+=($!)
gateway_pid=$!
wait_http "$public_url/healthz"

# nginx: a static 200 for any request, no logging, as many workers as CPUs.
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $tmp/nginx.pid;
error_log $tmp/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 200 "ok\n"; }
  }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/start.err" &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/"

# Distinct signed callbacks, one per line: target, signature, body. The signature is
# Twilio's: HMAC-SHA1 over the public URL with the sorted form parameters appended, base64.
python3 - "$public_url" "$token" "$account" "$callbacks" >"$tmp/callbacks.tsv" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
public_url, token, account, count = sys.argv[1], sys.argv[2].encode(), sys.argv[3], int(sys.argv[4])
out = sys.stdout
for i in range(count):
    target = f"/v1/providers/twilio/status?rid=rem-{i:07d}&key=cust-{i % 50000:05d}&ch=sms"
    sid = f"SM{i:032x}"
    params = {"AccountSid": account, "ApiVersion": "2010-04-01", "From": "+15005550006",
              "MessageSid": sid, "MessageStatus": "delivered", "SmsSid": sid, "SmsStatus": "delivered",
              "To": f"+336{10000000 + i % 90000000}"}
    signed = public_url + target + "".join(k + params[k] for k in sorted(params))
    signature = base64.b64encode(hmac.new(token, signed.encode(), hashlib.sha1).digest()).decode()
    out.write(f"{target}\t{signature}\t{urllib.parse.urlencode(params)}\n")
PY
head -1 "$tmp/callbacks.tsv" | {
  IFS=$'\t' read -r target signature body
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Twilio-Signature: $signature" --data "$body" "$public_url$target")
  [[ $status == 200 ]] || { log "the gateway answered $status to a signed callback, not 200"; exit 1; }
}

# wrk: each thread takes every n-th line, so no callback is sent twice within a run; runs start
# further down the file so that later runs are not answered as repeats either.
write_script() {  # offset limit connection-header
  cat >"$tmp/callbacks.lua" <<EOF
local lines, offset, limit, close = {}, $1, $2, "$3"
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  local stride = $wrk_threads
  local n = 0
  for line in io.lines("$tmp/callbacks.tsv") do
    if n >= offset + limit then break end
    if n >= offset and (n - offset) % stride == id then table.insert(lines, line) end
    n = n + 1
  end
  if #lines == 0 then error("no callbacks left past line " .. offset) end
  i = 0
end
function request()
  i = i + 1
  local line = lines[(i - 1) % #lines + 1]
  local target, signature, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = signature}
  if close ~= "" then headers["Connection"] = "close" end
  return wrk.format("POST", target, headers, body)
end
function done(summary, latency, requests)
  io.stderr:write(string.format("non2xx=%d errors=%d\n", summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF
}

declare -A results
offset=0
first_run=0
run_wrk() {  # name url mode
  local name=$1 url=$2 mode=$3 header=""
  [[ $mode == close ]] && header=close
  if [[ $mode == repeats ]]; then
    # Callbacks the gateway recorded in its first run: verified, then answered at once.
    write_script 0 "$first_run" ""
  else
    write_script "$((offset % callbacks))" "$callbacks" "$header"
  fi
  local out
  out=$(wrk -t "$wrk_threads" -c "$connections" -d "$duration" -s "$tmp/callbacks.lua" "$url" 2>"$tmp/wrk.err")
  local rate errors
  rate=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  errors=$(sed -n 's/^non2xx=\([0-9]*\) errors=\([0-9]*\)$/\1+\2/p' "$tmp/wrk.err" | head -1)
  local sent
  sent=$(awk '/requests in/{print $1}' <<<"$out")
  if [[ $name == relance && $mode != repeats ]]; then
    ((first_run)) || first_run=$((sent < callbacks ? sent : callbacks))
    offset=$((offset + sent))
  fi
  log "$name $mode: $rate req/s (non-2xx+socket errors: ${errors:-?}) latency: $(awk '/Latency/{print $2, $4}' <<<"$out")"
  results["$name,$mode"]+="$rate "
  results["$name,$mode,errors"]+="${errors:-?} "
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
minmax() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.0f–%.0f", lo, hi}'; }

for mode in keepalive close repeats; do
  for r in $(seq "$repeat"); do
    run_wrk nginx "http://127.0.0.1:$nginx_port" "$mode"
    run_wrk relance "$public_url" "$mode"
    kill -0 "$gateway_pid" 2>/dev/null || { log "the gateway stopped:"; tail -20 "$tmp/gateway.log" >&2; exit 1; }
  done
done
if (( offset > callbacks )); then
  log "note: $offset requests sent for $callbacks distinct callbacks; the rest were repeats (verified, then answered as already recorded)"
fi

cpus=$(nproc)
model=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
echo
echo "Machine: $cpus CPUs ($model), load average $(cut -d' ' -f1 /proc/loadavg) at the end. wrk -t$wrk_threads -c$connections -d$duration, median of $repeat runs (min–max); Kafka: ${brokers:-embedded}."
echo
echo "| connections | callbacks | nginx static 200 (ceiling) req/s | gateway req/s | gateway / nginx | non-2xx or socket errors (gateway) |"
echo "|---|---|---|---|---|---|"
for mode in keepalive close repeats; do
  n=$(median <<<"${results[nginx,$mode]}")
  g=$(median <<<"${results[relance,$mode]}")
  label="$connections keep-alive"
  kind="distinct: verified, recorded in Kafka, acknowledged"
  [[ $mode == close ]] && label="new connection per request"
  [[ $mode == repeats ]] && kind="repeats: verified, answered without Kafka"
  printf '| %s | %s | %.0f (%s) | %.0f (%s) | **%.0f%%** | %s |\n' "$label" "$kind" "$n" "$(minmax <<<"${results[nginx,$mode]}")" \
    "$g" "$(minmax <<<"${results[relance,$mode]}")" "$(awk -v g="$g" -v n="$n" 'BEGIN{print 100*g/n}')" \
    "$(tr ' ' '\n' <<<"${results[relance,$mode,errors]}" | grep -v '^$' | awk -F+ '{s+=$1+$2} END{print s+0}') in all runs"
done
