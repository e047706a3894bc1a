#!/usr/bin/env bash
# `make demo`: the native stack, a few simulated devices running the real firmware code, and a live view.
# Ctrl-C stops the view and the simulated devices; the stack keeps running (`iotctl stack down` stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
IOTCTL=.venv/bin/iotctl

rc=0
bash scripts/install-system.sh || rc=$?
if [ "$rc" -eq 3 ]; then
  # Not root and packages missing: install the pip embedded engines (amqtt, pgserver); `auto` uses them
  # wherever mosquitto or PostgreSQL is missing (and the system ones when only e.g. Node.js was missing).
  echo "demo: system packages missing; installing the embedded engines (amqtt, pgserver) into .venv." >&2
  .venv/bin/pip install -q -e '.[embedded]'
  export IOTCTL_ENGINE=auto
elif [ "$rc" -ne 0 ]; then
  echo "demo: Mosquitto/PostgreSQL are missing and could not be installed; see the message above." >&2
  exit 3
fi

"$IOTCTL" stack up
state_dir=$("$IOTCTL" settings --json | .venv/bin/python -c 'import json,sys; print({r["key"]: r["value"] for r in json.load(sys.stdin)}["state_dir"])')
mkdir -p "$state_dir/logs"
sim_log="$state_dir/logs/demo-simulate.log"

# Five simulated Pico W nodes (provisioned on first use) publishing every 2 s, quietly, in the background.
"$IOTCTL" device simulate --count 5 --rate 0.5 --prefix demo >>"$sim_log" 2>&1 &
sim_pid=$!
cleanup() {
  kill -TERM "$sim_pid" 2>/dev/null || true  # a background job of a script ignores SIGINT
  wait "$sim_pid" 2>/dev/null || true
  echo >&2
  echo "demo: simulated devices stopped; the stack is still up (iotctl stack status | iotctl stack down)." >&2
}
trap cleanup EXIT

echo "demo: 5 simulated devices are publishing; live readings below (Ctrl-C to leave)." >&2
"$IOTCTL" tail sensors || true
