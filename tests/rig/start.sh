#!/usr/bin/env bash
# Starts the integration-test rig on loopback: a single-node Kafka (KRaft,
# broker+controller in one JVM), a plain SMTP server writing to a Maildir and
# a Prism mock of Twilio's REST API (the vendored OpenAPI contract). Writes
# STATE_DIR/rig.env for the tests. Stop it with stop.sh STATE_DIR.
#
# Usage: start.sh STATE_DIR
# Env:   RELANCE_CACHE_DIR  where the resolved Kafka class path and the Prism
#                           install are kept (default: $HOME/.cache/relance)
#        RELANCE_RIG_PYTHON interpreter that can import aiosmtpd
#        JAVA_HOME          used if set, else java from PATH
set -euo pipefail

if [[ $# -ne 1 || -z $1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi

RIG_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
mkdir -p -- "$1"
STATE_DIR=$(cd -- "$1" && pwd)

KAFKA_VERSION=4.1.1
POM="$RIG_DIR/kafka-pom.xml"
CACHE_DIR="${RELANCE_CACHE_DIR:-$HOME/.cache/relance}/kafka-$KAFKA_VERSION"
LIB_DIR="$CACHE_DIR/lib"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
KAFKA_READY_TIMEOUT=90
SMTP_READY_TIMEOUT=30
PRISM_VERSION=5.14.2
PRISM_DIR="${RELANCE_CACHE_DIR:-$HOME/.cache/relance}/prism"
PRISM_BIN="$PRISM_DIR/node_modules/.bin/prism"
TWILIO_SPEC=$(cd -- "$RIG_DIR/../contracts/twilio" && pwd)/twilio_api_v2010.json
PRISM_READY_TIMEOUT=60
# Any well-formed sid: Prism checks the pattern, never the credentials.
PRISM_PROBE_ACCOUNT=AC00000000000000000000000000000000

log() { echo "rig: $*"; }
port_open() { { : <"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; }
# A child that died is a zombie until reaped, and kill -0 still finds it.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}
now_ms() { date +%s%3N; }
fmt_ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
secs_since() { fmt_ms $(($(now_ms) - $1)); }

# Anything that goes wrong after this point stops what was already started, so
# ctest never sees a half-started rig (and never leaks a JVM).
started=0
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 && $started -eq 1 ]]; then
    echo "rig: start failed, stopping what was started" >&2
    bash "$RIG_DIR/stop.sh" "$STATE_DIR" >&2 || true
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A rig left behind in this directory would keep its ports and hold the data
# dir; stop it rather than orphan it, then start from clean data.
if compgen -G "$STATE_DIR/*.pid" >/dev/null; then
  log "stopping a previous rig found in $STATE_DIR"
  bash "$RIG_DIR/stop.sh" "$STATE_DIR"
fi
rm -rf -- "$STATE_DIR/kafka-data" "$STATE_DIR/maildir" "$STATE_DIR/rig.env"

# --- tools -----------------------------------------------------------------
need() { command -v "$1" >/dev/null || { echo "rig: '$1' not found" >&2; exit 1; }; }
need mvn; need kcat; need setsid; need "$JAVA"; need curl; need node

# The python3 first on PATH may be a pyenv/venv one without Debian's
# python3-aiosmtpd, so fall back to the distribution interpreter.
PYTHON=${RELANCE_RIG_PYTHON:-}
if [[ -z $PYTHON ]]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import aiosmtpd' 2>/dev/null; then PYTHON=$p; break; fi
  done
fi
if [[ -z $PYTHON ]]; then
  echo "rig: no python3 can import aiosmtpd (install python3-aiosmtpd)" >&2
  exit 1
fi

# --- Kafka class path, resolved once per pom --------------------------------
# The marker holds the pom's hash, so editing the pom re-resolves while an
# unchanged pom costs nothing. Resolution goes to a temp dir and is renamed in
# place, so an interrupted run never leaves a partial lib/ that looks complete.
# flock keeps concurrent ctest invocations from resolving into the same place.
resolve_kafka() {
  local want marker="$CACHE_DIR/.complete"
  want=$(sha256sum <"$POM" | cut -d' ' -f1)
  mkdir -p -- "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.lock"
  flock 9
  if [[ -d $LIB_DIR && -f $marker && $(<"$marker") == "$want" ]]; then
    exec 9>&-
    return 0
  fi
  local tmp="$CACHE_DIR/lib.tmp.$$"
  rm -rf -- "$tmp" "$marker"
  # Maven's output goes to a file: even -B -q leaves stray ANSI reset codes
  # on stdout, which only clutter the ctest log when all is well.
  if ! mvn -B -q -f "$POM" \
      org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE_DIR/resolve.log" 2>&1; then
    rm -rf -- "$tmp"
    cat "$CACHE_DIR/resolve.log" >&2
    echo "rig: Maven could not resolve Kafka $KAFKA_VERSION" >&2
    return 1
  fi
  rm -rf -- "$LIB_DIR"
  mv -- "$tmp" "$LIB_DIR"
  echo "$want" >"$marker"
  exec 9>&-
}

# --- Prism, installed once per version ----------------------------------------
# Same scheme as the Kafka class path: a marker naming the installed version,
# an install into a temp dir renamed in place, and flock against concurrent
# runs. npm's own cache (~/.npm) makes a re-install after a version bump cheap.
install_prism() {
  local marker="$PRISM_DIR/.complete"
  mkdir -p -- "$PRISM_DIR"
  exec 8>"$PRISM_DIR/.lock"
  flock 8
  if [[ -x $PRISM_BIN && -f $marker && $(<"$marker") == "$PRISM_VERSION" ]]; then
    exec 8>&-
    return 0
  fi
  need npm
  local tmp="$PRISM_DIR/install.tmp.$$"
  rm -rf -- "$tmp" "$marker"
  mkdir -p -- "$tmp"
  # prism-cli 5.14 runs on Node 20 although a dependency asks for Node 22
  # (an EBADENGINE warning, which lands in install.log with the rest).
  if ! npm install --prefix "$tmp" --no-audit --no-fund --no-update-notifier \
      "@stoplight/prism-cli@$PRISM_VERSION" >"$PRISM_DIR/install.log" 2>&1; then
    rm -rf -- "$tmp"
    cat "$PRISM_DIR/install.log" >&2
    echo "rig: npm could not install @stoplight/prism-cli@$PRISM_VERSION" >&2
    return 1
  fi
  # .bin/ holds relative links, so the tree can move as a whole.
  rm -rf -- "$PRISM_DIR/node_modules" "$PRISM_DIR/package.json" "$PRISM_DIR/package-lock.json"
  mv -- "$tmp/node_modules" "$PRISM_DIR/node_modules"
  mv -- "$tmp/package.json" "$tmp/package-lock.json" "$PRISM_DIR/"
  rm -rf -- "$tmp"
  echo "$PRISM_VERSION" >"$marker"
  exec 8>&-
}

t0=$(now_ms)
resolve_kafka
t_resolved=$(now_ms)
install_prism
t_prism_installed=$(now_ms)

# --- ports -----------------------------------------------------------------
# All four sockets are held open at once so the kernel hands out distinct
# ports; there is still a short window before the servers bind them.
read -r KAFKA_PORT CONTROLLER_PORT SMTP_PORT PRISM_PORT < <("$PYTHON" - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)

# --- Kafka config ------------------------------------------------------------
LOG4J="$STATE_DIR/log4j2.properties"
PROPS="$STATE_DIR/server.properties"
bash "$RIG_DIR/kafka-config.sh" "$STATE_DIR" "$KAFKA_PORT" "$CONTROLLER_PORT"

# Serial GC and C1 only: measured ~0.5 s faster to ready and ~40 MiB less
# resident than the defaults (G1, C2), with no C2 compiler threads competing
# with the tests for the two cores; test traffic never needs C2's peak speed.
# The short-lived StorageTool runs gain from the same.
java_cmd=("$JAVA" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
  -cp "$LIB_DIR/*" "-Dlog4j2.configurationFile=$LOG4J")

# --- format storage -----------------------------------------------------------
# The tool prints a log4j INFO line on stdout before the id itself.
cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid | tail -n1)
if [[ ! $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]]; then
  echo "rig: StorageTool random-uuid gave '$cluster_id'" >&2
  exit 1
fi
"${java_cmd[@]}" kafka.tools.StorageTool format --standalone \
  -t "$cluster_id" -c "$PROPS" >"$STATE_DIR/kafka-format.log" 2>&1 || {
  cat "$STATE_DIR/kafka-format.log" >&2
  exit 1
}
t_formatted=$(now_ms)

# --- start Prism -----------------------------------------------------------
# Started first and waited for last: parsing the 1.8 MB spec takes a few
# seconds, which overlap with the broker's startup. Detached like the broker
# (see below). Its command line does not name STATE_DIR, so the environment
# marks it as this rig's for stop.sh.
started=1
t_prism=$(now_ms)
RELANCE_RIG_STATE_DIR="$STATE_DIR" setsid nohup "$PRISM_BIN" mock -h 127.0.0.1 -p "$PRISM_PORT" \
  "$TWILIO_SPEC" >"$STATE_DIR/prism.log" 2>&1 </dev/null &
prism_pid=$!
echo "$prism_pid" >"$STATE_DIR/prism.pid"

# --- start Kafka -----------------------------------------------------------
# setsid: the broker must outlive this script and not get the terminal's or
# ctest's signals meant for it. Without job control a background child is
# not a group leader, so setsid execs in place and $! is the JVM's pid.
t_kafka=$(now_ms)
setsid nohup "${java_cmd[@]}" -Xms256m -Xmx512m -XX:+ExitOnOutOfMemoryError \
  kafka.Kafka "$PROPS" >"$STATE_DIR/kafka.log" 2>&1 </dev/null &
kafka_pid=$!
echo "$kafka_pid" >"$STATE_DIR/kafka.pid"

# Against a closed port kcat -L blocks for its whole -m timeout and
# librdkafka's reconnect backoff, so a cheap TCP probe comes first and kcat
# only runs once the listener is bound; the deadline is wall-clock because a
# kcat call can take seconds. kcat -L also succeeds while the broker is still
# fenced, listing no broker (topic creation fails then), so wait until the
# broker itself is listed.
kafka_ready=0
deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
while ((SECONDS < deadline)); do
  if ! running "$kafka_pid"; then
    echo "rig: Kafka exited during startup" >&2
    break
  fi
  # Captured, not piped to grep -q: an early grep exit would SIGPIPE kcat
  # and pipefail would turn a ready broker into a failed probe.
  if port_open "$KAFKA_PORT" \
      && metadata=$(kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 5 2>/dev/null) \
      && [[ $metadata == *"broker 1 at 127.0.0.1:$KAFKA_PORT"* ]]; then
    kafka_ready=1
    break
  fi
  sleep 0.2
done
if [[ $kafka_ready -ne 1 ]]; then
  echo "rig: Kafka not ready on 127.0.0.1:$KAFKA_PORT; last lines of kafka.log:" >&2
  tail -n 60 "$STATE_DIR/kafka.log" >&2 || true
  exit 1
fi
log "kafka  127.0.0.1:$KAFKA_PORT ready in $(secs_since "$t_kafka") s" \
  "(class path $(fmt_ms $((t_resolved - t0))) s, format $(fmt_ms $((t_formatted - t_prism_installed))) s)"

# --- start SMTP ------------------------------------------------------------
# -n: as root aiosmtpd would otherwise setuid to nobody and could no longer
# write the Maildir. No --tlscert, so it speaks plain SMTP with no STARTTLS.
mkdir -p -- "$STATE_DIR/maildir/"{tmp,new,cur}
t_smtp=$(now_ms)
setsid nohup "$PYTHON" -u -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
  -c aiosmtpd.handlers.Mailbox "$STATE_DIR/maildir" \
  >"$STATE_DIR/smtp.log" 2>&1 </dev/null &
smtp_pid=$!
echo "$smtp_pid" >"$STATE_DIR/smtp.pid"

# A bound port is not enough: wait for the 220 greeting, which proves the
# handler loaded and the event loop is serving.
smtp_ready=0
deadline=$((SECONDS + SMTP_READY_TIMEOUT))
while ((SECONDS < deadline)); do
  if ! running "$smtp_pid"; then
    echo "rig: SMTP server exited during startup" >&2
    break
  fi
  if greeting=$( { exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT" && read -r -t 2 line <&3 && echo "$line"; } 2>/dev/null) \
      && [[ $greeting == 220* ]]; then
    smtp_ready=1
    break
  fi
  sleep 0.2
done
if [[ $smtp_ready -ne 1 ]]; then
  echo "rig: SMTP not ready on 127.0.0.1:$SMTP_PORT; smtp.log:" >&2
  tail -n 60 "$STATE_DIR/smtp.log" >&2 || true
  exit 1
fi
log "smtp   127.0.0.1:$SMTP_PORT ready in $(secs_since "$t_smtp") s"

# --- wait for Prism ------------------------------------------------------------
# Listening is not enough (the spec may still be loading): wait until a valid
# message create (the spec declares 201 for it) gets its 201.
prism_probe() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 -u "$PRISM_PROBE_ACCOUNT:rig-probe" \
    --data-urlencode 'To=+33612345678' --data-urlencode 'From=+33757000000' \
    --data-urlencode 'Body=rig readiness probe' \
    "http://127.0.0.1:$PRISM_PORT/2010-04-01/Accounts/$PRISM_PROBE_ACCOUNT/Messages.json" 2>/dev/null
}
prism_ready=0
deadline=$((SECONDS + PRISM_READY_TIMEOUT))
while ((SECONDS < deadline)); do
  if ! running "$prism_pid"; then
    echo "rig: Prism exited during startup" >&2
    break
  fi
  if port_open "$PRISM_PORT" && [[ $(prism_probe) == 201 ]]; then
    prism_ready=1
    break
  fi
  sleep 0.1
done
if [[ $prism_ready -ne 1 ]]; then
  echo "rig: Prism not ready on 127.0.0.1:$PRISM_PORT; prism.log:" >&2
  tail -n 60 "$STATE_DIR/prism.log" >&2 || true
  exit 1
fi
log "prism  127.0.0.1:$PRISM_PORT ready in $(secs_since "$t_prism") s" \
  "(install $(fmt_ms $((t_prism_installed - t_resolved))) s)"

# Written last and atomically: its presence means the whole rig is up.
cat >"$STATE_DIR/rig.env.tmp" <<EOF
KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
SMTP_URL=smtp://127.0.0.1:$SMTP_PORT
MAILDIR=$STATE_DIR/maildir
PRISM_URL=http://127.0.0.1:$PRISM_PORT
EOF
mv -- "$STATE_DIR/rig.env.tmp" "$STATE_DIR/rig.env"
log "env    $STATE_DIR/rig.env"
