#!/usr/bin/env bash
# Stops a rig started by start.sh STATE_DIR. Safe to run when nothing is
# running, twice, or on a half-started rig; always exits 0 unless misused.
#
# Usage: stop.sh STATE_DIR
set -euo pipefail

if [[ $# -ne 1 || -z $1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
if [[ ! -d $1 ]]; then
  exit 0
fi
STATE_DIR=$(cd -- "$1" && pwd)
GRACE_SECONDS=20

# A zombie still answers kill -0, and start.sh's own children are zombies
# until it exits, so a process only counts as running while not in state Z.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# The pid may have been reused since the rig started; every rig process has
# this state dir on its command line (Prism, whose arguments don't name it,
# in its environment instead), so only signal one that does.
ours() {
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$STATE_DIR/"* ]] && return 0
  local environ
  environ=$(tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null) || return 1
  [[ $'\n'$environ$'\n' == *$'\n'"RELANCE_RIG_STATE_DIR=$STATE_DIR"$'\n'* ]]
}

stop_one() {
  local name=$1 pidfile="$STATE_DIR/$1.pid" pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && running "$pid" && ours "$pid"; then
    if [[ $name == kafka ]]; then
      # Read just before stopping: the kernel keeps the peak RSS for us.
      local hwm
      hwm=$(awk '/^VmHWM:/ {printf "%d MiB", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || true)
      [[ -n $hwm ]] && echo "rig: kafka peak resident memory (VmHWM) $hwm"
    fi
    # SIGTERM lets Kafka do a controlled shutdown and flush its logs.
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < GRACE_SECONDS * 10; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      echo "rig: $name (pid $pid) ignored SIGTERM for ${GRACE_SECONDS}s, killing" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
    else
      echo "rig: $name stopped in $(awk "BEGIN {printf \"%.1f\", $i / 10}") s"
    fi
  fi
  rm -f -- "$pidfile"
}

# Prism and SMTP first: they are independent, and Kafka's shutdown is the
# slow one.
stop_one prism
stop_one smtp
stop_one kafka
rm -f -- "$STATE_DIR/rig.env"
exit 0
