#!/usr/bin/env bash
# run_all.sh HOST:PORT[,HOST:PORT...]
#
# Runs every interop suite against the ZooKeeper-compatible server at
# HOST:PORT (loopback only), installing what is missing first (setup_env.sh:
# Debian packages, a venv with kazoo, zkpython built from Debian's source).
# With a connect string of several members (an ensemble, see ensemble.sh and
# run_ensemble.sh) every client gets the full connect string, zkcli compares
# zxids relative to its first create, zkserver_status expects one leader and
# followers, and the suite kazoo_ensemble (cross-member recipes, then
# failover: it kills the leader, so it runs last) is added; it needs
# INTEROP_ENSEMBLE_DIR, the directory ensemble.sh started the members in.
#
# The server must be freshly started (zkcli.sh pins exact zxids; it runs
# first) and configured like the reference (see README.md): tickTime=2000,
# TTL nodes enabled, container/TTL reaper every 1000 ms.
#
# Prints one summary line per suite and, last, exactly "N passed, N failed"
# (N counting the individual checks of all suites).  Exit status 0 only if
# nothing failed.  Logs: $INTEROP_LOG_DIR (default /tmp/interop-logs).
#
# Environment:
#   INTEROP_SKIP_SETUP=1   do not run setup_env.sh (everything already there)
#   INTEROP_SUITES="zkcli cli_mt zkpython kazoo zkserver_status"   subset / order to run
#                          (an ensemble's default appends kazoo_ensemble)
#   INTEROP_ENSEMBLE_DIR   ensemble.sh's DIR (ports, member pids) for kazoo_ensemble and the
#                          suites run_ensemble_features.sh runs (kazoo_readonly,
#                          kazoo_local_sessions_local, kazoo_local_sessions_upgrading)
#   ZKCLI_RELATIVE_ZXIDS=1 passed to zkcli.sh (server not fresh)
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 HOST:PORT[,HOST:PORT...]" >&2
    exit 2
fi
split_hostport "$1" || exit 2
SERVER="$1"
LOG_DIR="${INTEROP_LOG_DIR:-/tmp/interop-logs}"
mkdir -p "$LOG_DIR"
if [ "$ZK_MEMBERS" -gt 1 ]; then
    SUITES="${INTEROP_SUITES:-zkcli cli_mt zkpython kazoo zkserver_status kazoo_ensemble}"
else
    SUITES="${INTEROP_SUITES:-zkcli cli_mt zkpython kazoo zkserver_status}"
fi
START=$(date +%s)
TOTAL_PASS=0
TOTAL_FAIL=0

say() { printf '%s\n' "$*"; }

# ---- setup -------------------------------------------------------------------
VENV_PY="${INTEROP_VENV:-$DEFAULT_VENV}/bin/python"
SETUP_OK=1
if [ "${INTEROP_SKIP_SETUP:-0}" != 1 ]; then
    t0=$(date +%s)
    if timeout 1500 "$INTEROP_DIR/setup_env.sh" > "$LOG_DIR/setup.log" 2>&1; then
        say "setup: ok ($(( $(date +%s) - t0 )) s; log $LOG_DIR/setup.log)"
    else
        SETUP_OK=0
        say "setup: FAILED ($(( $(date +%s) - t0 )) s); last lines of $LOG_DIR/setup.log:"
        tail -n 25 "$LOG_DIR/setup.log" | sed 's/^/    /'
    fi
fi

# ---- the server must accept TCP connections ---------------------------------
if ! timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ZK_HOST" "$ZK_PORT" 2>/dev/null; then
    say "server: nothing accepts connections on $SERVER"
    say "0 passed, 1 failed"
    exit 1
fi

# ---- suites ------------------------------------------------------------------
# run_suite NAME TIMEOUT CMD... : runs CMD, reads its closing "N passed, N failed"
run_suite() {
    local name="$1" limit="$2"; shift 2
    local log="$LOG_DIR/$name.log" t0 rc p f line
    t0=$(date +%s)
    timeout "$limit" "$@" > "$log" 2>&1
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=${line%% passed*}
        f=${line#*passed, }
        f=${f%% failed*}
    else
        p=0
        f=1
    fi
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        f=1  # crashed or timed out after its last report
    fi
    if [ "$rc" = 124 ]; then
        echo "(killed by timeout after $limit s)" >> "$log"
    fi
    TOTAL_PASS=$(( TOTAL_PASS + p ))
    TOTAL_FAIL=$(( TOTAL_FAIL + f ))
    if [ "$f" = 0 ]; then
        say "suite $name: PASS - $p/$p checks ($(( $(date +%s) - t0 )) s)"
    else
        say "suite $name: FAIL - $p of $(( p + f )) checks passed, exit status $rc ($(( $(date +%s) - t0 )) s); log $log:"
        grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 60 | sed 's/^/    /'
    fi
}

skip_suite() {
    say "suite $1: FAIL - not run: $2"
    TOTAL_FAIL=$(( TOTAL_FAIL + 1 ))
}

for s in $SUITES; do
    case "$s" in
        zkcli)
            if [ -x /usr/share/zookeeper/bin/zkCli.sh ]; then
                run_suite zkcli 180 "$INTEROP_DIR/zkcli.sh" "$SERVER"
            else
                skip_suite zkcli "zkCli.sh missing (setup failed?)"
            fi ;;
        cli_mt)
            if [ -x /usr/lib/zookeeper/bin/cli_mt ]; then
                run_suite cli_mt 180 "$INTEROP_DIR/cli_mt.sh" "$SERVER"
            else
                skip_suite cli_mt "cli_mt missing (setup failed?)"
            fi ;;
        zkpython)
            if [ -x "$VENV_PY" ] && (cd / && "$VENV_PY" -c 'import zookeeper') 2>/dev/null; then
                run_suite zkpython 240 "$VENV_PY" "$INTEROP_DIR/zkpython_test.py" "$SERVER"
            else
                skip_suite zkpython "zkpython is not importable from $VENV_PY (see $LOG_DIR/setup.log)"
            fi ;;
        kazoo)
            if [ -x "$VENV_PY" ] && "$VENV_PY" -c 'import kazoo' 2>/dev/null; then
                run_suite kazoo 300 "$VENV_PY" "$INTEROP_DIR/kazoo_test.py" "$SERVER"
            else
                skip_suite kazoo "kazoo is not importable from $VENV_PY (see $LOG_DIR/setup.log)"
            fi ;;
        zkserver_status)
            if [ -x /usr/share/zookeeper/bin/zkServer.sh ]; then
                run_suite zkserver_status 90 "$INTEROP_DIR/zkserver_status.sh" "$SERVER"
            else
                skip_suite zkserver_status "zkServer.sh missing (setup failed?)"
            fi ;;
        kazoo_ensemble)
            if [ -z "${INTEROP_ENSEMBLE_DIR:-}" ] || [ ! -f "$INTEROP_ENSEMBLE_DIR/ports" ]; then
                skip_suite kazoo_ensemble "INTEROP_ENSEMBLE_DIR does not name ensemble.sh's directory"
            elif [ -x "$VENV_PY" ] && "$VENV_PY" -c 'import kazoo' 2>/dev/null; then
                run_suite kazoo_ensemble 200 "$VENV_PY" "$INTEROP_DIR/kazoo_ensemble_test.py" \
                    "$SERVER" "$INTEROP_ENSEMBLE_DIR"
            else
                skip_suite kazoo_ensemble "kazoo is not importable from $VENV_PY (see $LOG_DIR/setup.log)"
            fi ;;
        kazoo_readonly|kazoo_local_sessions_local|kazoo_local_sessions_upgrading)
            # ensembles with their own zoo.cfg keys: run_ensemble_features.sh starts them
            if [ -z "${INTEROP_ENSEMBLE_DIR:-}" ] || [ ! -f "$INTEROP_ENSEMBLE_DIR/ports" ]; then
                skip_suite "$s" "INTEROP_ENSEMBLE_DIR does not name ensemble.sh's directory"
            elif ! [ -x "$VENV_PY" ] || ! "$VENV_PY" -c 'import kazoo' 2>/dev/null; then
                skip_suite "$s" "kazoo is not importable from $VENV_PY (see $LOG_DIR/setup.log)"
            elif [ "$s" = kazoo_readonly ]; then
                run_suite "$s" 220 "$VENV_PY" "$INTEROP_DIR/kazoo_readonly_test.py" \
                    "$SERVER" "$INTEROP_ENSEMBLE_DIR"
            else
                run_suite "$s" 140 "$VENV_PY" "$INTEROP_DIR/kazoo_local_sessions_test.py" \
                    "${s#kazoo_local_sessions_}" "$SERVER" "$INTEROP_ENSEMBLE_DIR"
            fi ;;
        *)
            skip_suite "$s" "unknown suite" ;;
    esac
done

[ "$SETUP_OK" = 1 ] || TOTAL_FAIL=$(( TOTAL_FAIL + 1 ))
say "interop against $SERVER: $(( $(date +%s) - START )) s in all; logs in $LOG_DIR"
say "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" = 0 ]
