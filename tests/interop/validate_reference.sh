#!/usr/bin/env bash
# validate_reference.sh [PORT [DIR]]
#
# Validates the interop scripts themselves: installs what is missing, starts
# Apache ZooKeeper 3.8 (start_zookeeper.sh PORT DIR, fresh data), runs
# run_all.sh against it and always stops it again.  Everything must pass.
# Defaults: PORT 2191, DIR /tmp/zkref.  Its last line is run_all.sh's
# "N passed, N failed"; exit status is run_all.sh's.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PORT="${1:-2191}"
DIR="${2:-/tmp/zkref}"
LOG_DIR="${INTEROP_LOG_DIR:-/tmp/interop-logs}"
mkdir -p "$LOG_DIR"

# install first so that the server's packages are there
if [ "${INTEROP_SKIP_SETUP:-0}" != 1 ]; then
    if ! timeout 1500 "$HERE/setup_env.sh" > "$LOG_DIR/setup.log" 2>&1; then
        echo "setup failed; last lines of $LOG_DIR/setup.log:"
        tail -n 25 "$LOG_DIR/setup.log"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi
"$HERE/stop_zookeeper.sh" "$DIR" > /dev/null 2>&1 || true
if ! PID=$("$HERE/start_zookeeper.sh" "$PORT" "$DIR"); then
    echo "could not start the reference ZooKeeper"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "reference Apache ZooKeeper started on 127.0.0.1:$PORT (pid $PID, dir $DIR)"
trap '"$HERE/stop_zookeeper.sh" "$DIR" > /dev/null 2>&1' EXIT
INTEROP_SKIP_SETUP=1 "$HERE/run_all.sh" "127.0.0.1:$PORT"
