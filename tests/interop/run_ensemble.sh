#!/usr/bin/env bash
# run_ensemble.sh corral|zookeeper [CORRAL_BINARY]
#
# Starts a fresh 3-member pseudo-cluster on loopback (ensemble.sh: corral, default
# target/debug/corral, or Apache ZooKeeper 3.8 as the reference), waits for one leader and two
# followers, runs run_all.sh against the full connect string (every suite plus kazoo_ensemble,
# whose failover test kills the leader), and stops every member on any exit. Logs go to
# $INTEROP_LOG_DIR/ensemble (default /tmp/interop-logs/ensemble); the members' logs stay in
# $INTEROP_ENSEMBLE_DIR (default: a new /tmp/interop-ensemble.XXXXXX) as m<i>/log.
# Exits with run_all.sh's status; its last line is run_all.sh's "N passed, N failed".
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
KIND="${1:-corral}"
BIN="${2:-$HERE/../../target/debug/corral}"
DIR="${INTEROP_ENSEMBLE_DIR:-$(mktemp -d /tmp/interop-ensemble.XXXXXX)}"
export INTEROP_LOG_DIR="${INTEROP_LOG_DIR:-/tmp/interop-logs}/ensemble"
mkdir -p "$INTEROP_LOG_DIR"

trap '"$HERE/ensemble.sh" stop "$DIR"' EXIT
if ! CONNECT="$("$HERE/ensemble.sh" start "$KIND" "$DIR" "$BIN")"; then
    echo "could not start a 3-member $KIND ensemble in $DIR"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "$KIND ensemble serving on $CONNECT (members in $DIR: sids 100..102, logs m<i>/log)"
INTEROP_ENSEMBLE_DIR="$DIR" "$HERE/run_all.sh" "$CONNECT"
STATUS=$?
# every member but the leader killed by the failover test must still be running
for i in 0 1 2; do
    pid="$(cat "$DIR/m$i/pid" 2>/dev/null)"
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null \
        && ! grep -q "killing the leader m$i " "$INTEROP_LOG_DIR/kazoo_ensemble.log" 2>/dev/null; then
        echo "member m$i (pid $pid) died during the run; last lines of $DIR/m$i/log:"
        tail -n 20 "$DIR/m$i/log"
        STATUS=1
    fi
done
exit $STATUS
