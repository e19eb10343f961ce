#!/usr/bin/env bash
# stop_zookeeper.sh DIR : stops the server started by start_zookeeper.sh PORT DIR
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
PIDFILE="$1/zookeeper.pid"
if [ ! -f "$PIDFILE" ]; then
    echo "no $PIDFILE: nothing to stop"
    exit 0
fi
PID="$(cat "$PIDFILE")"
if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    for _ in $(seq 1 30); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$PID" 2>/dev/null; then
        echo "pid $PID ignored SIGTERM for 15 s; sending SIGKILL" >&2
        kill -KILL "$PID" 2>/dev/null || true
    fi
    echo "stopped ZooKeeper pid $PID"
else
    echo "pid $PID was not running"
fi
rm -f "$PIDFILE"
