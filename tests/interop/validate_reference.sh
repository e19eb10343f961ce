#!/usr/bin/env bash
# validate_reference.sh [PORT [DIR]]
#
# Validates the interop scripts themselves: installs what is missing, starts
# Apache ZooKeeper 3.8 (start_zookeeper.sh PORT DIR, fresh data), runs
# run_all.sh against it and always stops it again; then the same against a
# 3-member Apache ZooKeeper ensemble (run_ensemble.sh zookeeper) and the
# suites run_ensemble_features.sh runs on ensembles with their own keys
# (read-only mode, local sessions); INTEROP_ENSEMBLE=0 skips both.  Everything
# must pass.  Defaults: PORT 2191, DIR
# /tmp/zkref.  Its last line, "N passed, N failed", counts all runs; exit
# status 0 only if all passed.
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
OUT="$(mktemp /tmp/validate-reference.XXXXXX)"
INTEROP_SKIP_SETUP=1 "$HERE/run_all.sh" "127.0.0.1:$PORT" | tee "$OUT"
STATUS=${PIPESTATUS[0]}
"$HERE/stop_zookeeper.sh" "$DIR" > /dev/null 2>&1
[ "${INTEROP_ENSEMBLE:-1}" = 1 ] || { rm -f "$OUT"; exit "$STATUS"; }

echo
echo "== the same clients against a 3-member Apache ZooKeeper ensemble"
INTEROP_SKIP_SETUP=1 "$HERE/run_ensemble.sh" zookeeper | tee "$OUT.ens"
ESTATUS=${PIPESTATUS[0]}
echo
echo "== read-only mode and local sessions: Apache ZooKeeper ensembles with their own keys"
"$HERE/run_ensemble_features.sh" zookeeper | tee "$OUT.feat"
FSTATUS=${PIPESTATUS[0]}
counts() {
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
    [ -n "$line" ] || line="0 passed, 1 failed"
    echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/'
}
read -r SP SF <<<"$(counts "$OUT")"
read -r EP EF <<<"$(counts "$OUT.ens")"
read -r FP FF <<<"$(counts "$OUT.feat")"
rm -f "$OUT" "$OUT.ens" "$OUT.feat"
[ "$STATUS" != 0 ] && [ "$SF" = 0 ] && SF=1
[ "$ESTATUS" != 0 ] && [ "$EF" = 0 ] && EF=1
[ "$FSTATUS" != 0 ] && [ "$FF" = 0 ] && FF=1
echo
echo "standalone: $SP passed, $SF failed; ensemble: $EP passed, $EF failed;" \
    "features: $FP passed, $FF failed"
echo "$(( SP + EP + FP )) passed, $(( SF + EF + FF )) failed"
[ "$STATUS" = 0 ] && [ "$ESTATUS" = 0 ] && [ "$FSTATUS" = 0 ]
