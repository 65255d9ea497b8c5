#!/usr/bin/env bash
# `make run-local`: the CSE alone on this one machine, no cluster (the main job is scripts/deploy.sh) —
# a Mosquitto broker on 127.0.0.1:1883 (started here unless one already listens) and the CSE
# (HTTP :8080, MQTT, SQLite under ./data) in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
DATA=${M2M_DATA_DIR:-$PWD/data}
mkdir -p "$DATA/mosquitto"
broker_pid=""
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  cat >"$DATA/mosquitto/mosquitto.conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
persistence false
log_dest file $DATA/mosquitto/mosquitto.log
CONF
  chown -R mosquitto: "$DATA/mosquitto" 2>/dev/null || true
  mosquitto -c "$DATA/mosquitto/mosquitto.conf" &
  broker_pid=$!
  echo "==> Mosquitto on 127.0.0.1:1883 (pid $broker_pid, log $DATA/mosquitto/mosquitto.log)"
fi
trap '[[ -n $broker_pid ]] && kill $broker_pid 2>/dev/null || true' EXIT
echo "==> CSE: http://127.0.0.1:8080/cse-in (admin originator CAdmin), MQTT 127.0.0.1:1883"
M2M_DATA_DIR=$DATA M2M_MQTT_HOST=${M2M_MQTT_HOST:-127.0.0.1} .venv/bin/m2mcloud cse serve "$@"
