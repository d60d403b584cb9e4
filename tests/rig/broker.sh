#!/usr/bin/env bash
# A single-node Kafka (KRaft, broker+controller in one JVM) of a test's own, on loopback, from
# the class path start.sh resolved; for faults the shared rig must not suffer (a broker taken
# down and brought back). Same configuration as the rig's broker.
#
# Usage: broker.sh start DIR PORT CONTROLLER_PORT
#          first call: writes DIR/server.properties and formats DIR/kafka-data; every call:
#          starts the broker on them and waits until it serves (again, after kill or stop)
#        broker.sh kill DIR    SIGKILL, as a crash or a pulled plug; the data stays
#        broker.sh stop DIR    SIGTERM (controlled shutdown), then SIGKILL after a grace
# Env:   RELANCE_CACHE_DIR, JAVA_HOME as for start.sh
set -euo pipefail

RIG_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=4.1.1
LIB_DIR="${RELANCE_CACHE_DIR:-$HOME/.cache/relance}/kafka-$KAFKA_VERSION/lib"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
READY_TIMEOUT=90
GRACE_SECONDS=20

usage() {
  echo "usage: $0 start DIR PORT CONTROLLER_PORT | kill DIR | stop DIR" >&2
  exit 2
}
[[ $# -ge 2 && -n $2 ]] || usage
command=$1
mkdir -p -- "$2"
DIR=$(cd -- "$2" && pwd)

# A zombie still answers kill -0, so a process only counts while not in state Z.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}
# The pid may have been reused: only a process with this dir on its command line is ours.
ours() {
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$DIR/"* ]]
}
pid_of_broker() {
  local pid
  [[ -f $DIR/kafka.pid ]] || return 1
  pid=$(<"$DIR/kafka.pid")
  [[ $pid =~ ^[0-9]+$ ]] && running "$pid" && ours "$pid" && echo "$pid"
}

# signal NAME: sends it and waits for the end (SIGKILL after the grace).
end_broker() {
  local pid i
  pid=$(pid_of_broker) || { rm -f -- "$DIR/kafka.pid"; return 0; }
  kill "-$1" "$pid" 2>/dev/null || true
  for ((i = 0; i < GRACE_SECONDS * 10; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
  fi
  rm -f -- "$DIR/kafka.pid"
}

case $command in
  kill) end_broker KILL; exit 0 ;;
  stop) end_broker TERM; exit 0 ;;
  start) [[ $# -eq 4 ]] || usage ;;
  *) usage ;;
esac
PORT=$3
CONTROLLER_PORT=$4
[[ -d $LIB_DIR ]] || { echo "broker: no Kafka class path in $LIB_DIR (start.sh resolves it)" >&2; exit 1; }
if pid_of_broker >/dev/null; then
  echo "broker: already running in $DIR" >&2
  exit 1
fi

java_cmd=("$JAVA" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
  -cp "$LIB_DIR/*" "-Dlog4j2.configurationFile=$DIR/log4j2.properties")
PROPS="$DIR/server.properties"
if [[ ! -f $DIR/kafka-data/meta.properties ]]; then
  bash "$RIG_DIR/kafka-config.sh" "$DIR" "$PORT" "$CONTROLLER_PORT"
  cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid | tail -n1)
  "${java_cmd[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$PROPS" \
    >"$DIR/kafka-format.log" 2>&1 || { cat "$DIR/kafka-format.log" >&2; exit 1; }
fi

# Detached (setsid), so that the broker outlives this script; $! is the JVM's pid.
setsid nohup "${java_cmd[@]}" -Xms256m -Xmx512m -XX:+ExitOnOutOfMemoryError \
  kafka.Kafka "$PROPS" >>"$DIR/kafka.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$DIR/kafka.pid"

# Serving once kcat lists the broker itself (see start.sh: a bound port, or a metadata answer
# from a still-fenced broker, is not enough).
deadline=$((SECONDS + READY_TIMEOUT))
while ((SECONDS < deadline)); do
  running "$pid" || break
  if { : <"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null \
      && metadata=$(kcat -b "127.0.0.1:$PORT" -L -m 5 2>/dev/null) \
      && [[ $metadata == *"broker 1 at 127.0.0.1:$PORT"* ]]; then
    exit 0
  fi
  sleep 0.2
done
echo "broker: not serving on 127.0.0.1:$PORT; last lines of $DIR/kafka.log:" >&2
tail -n 40 "$DIR/kafka.log" >&2 || true
end_broker KILL
exit 1
