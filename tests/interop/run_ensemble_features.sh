#!/usr/bin/env bash
# run_ensemble_features.sh corral|zookeeper [CORRAL_BINARY]
#
# Ensemble features that need their own zoo.cfg keys, with real clients: for each of three fresh
# 3-member ensembles (ensemble.sh with ENSEMBLE_CFG; ZooKeeper gets readonlymode.enabled as a -D
# system property) it runs one suite through run_all.sh and stops the members:
#   readonly   readonlymode.enabled=true localSessionsEnabled=true   -> kazoo_readonly
#              (kazoo and zkCli.sh -r against a member without quorum; kills and restarts two)
#   local      localSessionsEnabled=true                              -> kazoo_local_sessions_local
#   upgrading  localSessionsEnabled=true localSessionsUpgradingEnabled=true
#                                                                    -> kazoo_local_sessions_upgrading
# Logs go to $INTEROP_LOG_DIR/features (default /tmp/interop-logs/features); the members' logs
# stay in $INTEROP_FEATURES_DIR/<name>/m<i>/log (default: a new /tmp/interop-features.XXXXXX).
# Prints one line per suite and, last, "N passed, N failed" (all three); exit status 0 only if
# nothing failed and every member (restarted ones included) was still running at the end.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
KIND="${1:-corral}"
BIN="${2:-$HERE/../../target/debug/corral}"
BASE="${INTEROP_FEATURES_DIR:-$(mktemp -d /tmp/interop-features.XXXXXX)}"
export INTEROP_LOG_DIR="${INTEROP_LOG_DIR:-/tmp/interop-logs}/features"
mkdir -p "$INTEROP_LOG_DIR" "$BASE"

RUNS=(
    "readonly|kazoo_readonly|readonlymode.enabled=true localSessionsEnabled=true"
    "local|kazoo_local_sessions_local|localSessionsEnabled=true"
    "upgrading|kazoo_local_sessions_upgrading|localSessionsEnabled=true localSessionsUpgradingEnabled=true"
)
CURRENT=""
trap '[ -n "$CURRENT" ] && "$HERE/ensemble.sh" stop "$CURRENT"' EXIT
PASS=0
FAIL=0
STATUS=0
for run in "${RUNS[@]}"; do
    IFS='|' read -r name suite cfg <<<"$run"
    DIR="$BASE/$name"
    CURRENT="$DIR"
    if ! CONNECT="$(ENSEMBLE_CFG="$cfg" "$HERE/ensemble.sh" start "$KIND" "$DIR" "$BIN")"; then
        echo "suite $suite: FAIL - could not start a 3-member $KIND ensemble with $cfg in $DIR"
        FAIL=$(( FAIL + 1 ))
        STATUS=1
        continue
    fi
    echo "$KIND ensemble ($cfg) on $CONNECT in $DIR"
    out="$(INTEROP_SKIP_SETUP=1 INTEROP_SUITES="$suite" INTEROP_ENSEMBLE_DIR="$DIR" \
        "$HERE/run_all.sh" "$CONNECT")"
    rc=$?
    printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$|^interop against '
    line="$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)"
    [ -n "$line" ] || line="0 passed, 1 failed"
    p="${line%% passed*}"
    f="${line#*passed, }"
    f="${f%% failed*}"
    [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
    for i in 0 1 2; do
        pid="$(cat "$DIR/m$i/pid" 2>/dev/null)"
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "member m$i of the $name ensemble is not running at the end; last lines of $DIR/m$i/log:"
            tail -n 20 "$DIR/m$i/log"
            [ "$f" = 0 ] && f=1
        fi
    done
    PASS=$(( PASS + p ))
    FAIL=$(( FAIL + f ))
    [ "$f" = 0 ] || STATUS=1
    "$HERE/ensemble.sh" stop "$DIR"
    CURRENT=""
done
echo "$PASS passed, $FAIL failed"
exit $STATUS
