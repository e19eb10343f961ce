#!/usr/bin/env bash
# run_corral.sh [CORRAL_BINARY]
#
# Starts a fresh corral (default: target/debug/corral, built if missing) on a free loopback port,
# configured like the reference ZooKeeper the transcripts were recorded from (tickTime=2000, TTL
# nodes enabled, container/TTL reaper every second, every four-letter word allowed), runs
# run_all.sh against it and stops it; then the same suites against a fresh 3-member corral
# ensemble with the full connect string (run_ensemble.sh corral), and last the suites that need
# ensembles with their own zoo.cfg keys (run_ensemble_features.sh corral: read-only mode, local
# sessions), then the secure client port with zkServer.sh status and kazoo over TLS
# (run_tls.sh corral); after the standalone suites, cli_diff.sh diffs `corral cli` against
# zkCli.sh on the same server (counted with the standalone run). Its last line, "N passed,
# N failed", counts the checks of all the runs; exit status 0 only if all passed. INTEROP_ENSEMBLE=0 skips the runs after the first.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${1:-$ROOT/target/debug/corral}"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --quiet) || exit 1

WORK="$(mktemp -d /tmp/corral-interop.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$WORK/zoo.cfg" <<CFG
tickTime=2000
dataDir=$WORK/data
clientPort=$PORT
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
extendedTypesEnabled=true
znode.container.checkIntervalMs=1000
CFG
"$BIN" --config "$WORK/zoo.cfg" > "$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT
for _ in $(seq 1 100); do
    if [ "$(python3 - "$PORT" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"ruok"); print(s.recv(16).decode())
PY
)" = "imok" ]; then break; fi
    sleep 0.1
done
echo "corral (pid $PID) serving on 127.0.0.1:$PORT; log $WORK/server.log"
"$HERE/run_all.sh" "127.0.0.1:$PORT" | tee "$WORK/standalone.out"
STATUS=${PIPESTATUS[0]}
echo
echo "== corral cli against zkCli.sh: one command script through both, diffed (cli_diff.sh)"
"$HERE/cli_diff.sh" "127.0.0.1:$PORT" "$BIN" | tee "$WORK/cli.out"
CSTATUS=${PIPESTATUS[0]}
[ "$CSTATUS" = 0 ] || STATUS=1
kill -0 $PID 2>/dev/null || { echo "corral died during the run:"; tail -20 "$WORK/server.log"; STATUS=1; }
kill $PID 2>/dev/null
wait $PID 2>/dev/null
if [ "${INTEROP_ENSEMBLE:-1}" != 1 ]; then
    # the standalone suites' and cli_diff's counts together
    cat "$WORK/standalone.out" "$WORK/cli.out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' \
        | awk '{p += $1; f += $3} END {print p " passed, " f " failed"}'
    exit $STATUS
fi

# counts "N passed, N failed" of a run's output (a missing line counts as one failure)
counts() {
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
    [ -n "$line" ] || line="0 passed, 1 failed"
    echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/'
}
echo
echo "== the same clients against a 3-member corral ensemble"
# setup already ran (or was skipped) for the standalone run
INTEROP_SKIP_SETUP=1 "$HERE/run_ensemble.sh" corral "$BIN" | tee "$WORK/ensemble.out"
ESTATUS=${PIPESTATUS[0]}
echo
echo "== read-only mode and local sessions: corral ensembles with their own zoo.cfg keys"
"$HERE/run_ensemble_features.sh" corral "$BIN" | tee "$WORK/features.out"
FSTATUS=${PIPESTATUS[0]}
echo
echo "== SASL DIGEST-MD5: kazoo with pure-sasl"
INTEROP_SKIP_SETUP=1 "$HERE/run_sasl.sh" corral "$BIN" | tee "$WORK/sasl.out"
ASTATUS=${PIPESTATUS[0]}
echo
echo "== the secure client port: zkServer.sh status and kazoo over TLS"
INTEROP_SKIP_SETUP=1 "$HERE/run_tls.sh" corral "$BIN" | tee "$WORK/tls.out"
TSTATUS=${PIPESTATUS[0]}
read -r SP SF <<<"$(counts "$WORK/standalone.out")"
# corral cli's diff counts with the standalone run
read -r CP CF <<<"$(counts "$WORK/cli.out")"
[ "$CSTATUS" != 0 ] && [ "$CF" = 0 ] && CF=1
SP=$(( SP + CP )); SF=$(( SF + CF ))
read -r EP EF <<<"$(counts "$WORK/ensemble.out")"
read -r FP FF <<<"$(counts "$WORK/features.out")"
[ "$STATUS" != 0 ] && [ "$SF" = 0 ] && SF=1
[ "$ESTATUS" != 0 ] && [ "$EF" = 0 ] && EF=1
[ "$FSTATUS" != 0 ] && [ "$FF" = 0 ] && FF=1
read -r AP AF <<<"$(counts "$WORK/sasl.out")"
[ "$ASTATUS" != 0 ] && [ "$AF" = 0 ] && AF=1
read -r TP TF <<<"$(counts "$WORK/tls.out")"
[ "$TSTATUS" != 0 ] && [ "$TF" = 0 ] && TF=1
echo
echo "standalone: $SP passed, $SF failed; ensemble: $EP passed, $EF failed;" \
    "features: $FP passed, $FF failed; sasl: $AP passed, $AF failed; tls: $TP passed, $TF failed"
echo "$(( SP + EP + FP + AP + TP )) passed, $(( SF + EF + FF + AF + TF )) failed"
[ "$STATUS" = 0 ] && [ "$ESTATUS" = 0 ] && [ "$FSTATUS" = 0 ] && [ "$ASTATUS" = 0 ] && [ "$TSTATUS" = 0 ]
