#!/usr/bin/env bash
# loadgen/restart.sh: restart time and memory with a large tree, corral vs Apache ZooKeeper 3.8.
#
#   bash loadgen/restart.sh        # updates the restart table in docs/BENCHMARKS.md
#
# For each server, one after the other, pinned alone to CPU $SERVER_CPU (the tools on
# $LOADGEN_CPU): start it on an empty data dir, fill it with `loadgen populate` ($COUNT leaves of
# $PAYLOAD bytes, $FANOUT per parent; every create fsynced, both servers at their default
# snapCount of 100000, so each restarts from its newest snapshot plus the log after it), note
# its RSS and data sizes, kill -9 it, start it again and time (`loadgen probe`) until a new
# session reads the last leaf, then note its RSS. ZooKeeper gets zkServer.sh's default heap
# (-Xmx1000m). Every step is bounded; both servers are killed on exit.
#
# Environment: COUNT (1000000), FANOUT (1000), PAYLOAD (100), OUT (target/restart-<date>),
# SERVER_CPU (1), LOADGEN_CPU (0), DOC (docs/BENCHMARKS.md; the part between the
# `restart:begin`/`restart:end` markers is replaced), SERVERS ("zookeeper corral").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

COUNT=${COUNT:-1000000}
FANOUT=${FANOUT:-1000}
PAYLOAD=${PAYLOAD:-100}
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
DOC=${DOC:-docs/BENCHMARKS.md}
SERVERS=${SERVERS:-zookeeper corral}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET/restart-$(date +%Y%m%d-%H%M%S)}
PORT=${PORT:-22183}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    true
}
trap cleanup EXIT INT TERM
# shellcheck source=loadgen/tools.sh
. loadgen/tools.sh

log "building corral and loadgen (release)"
cargo build --release -p corral -p loadgen >&2
CORRAL=$TARGET/release/corral
LOADGEN=$TARGET/release/loadgen
SHAPE="--root /restart --count $COUNT --fanout $FANOUT"
COMMANDS=()

# Starts server $1 on its data dir (kept across calls) in the background.
start() {
    local dir=$OUT/$1 cmd
    mkdir -p "$dir/data"
    if [ "$1" = zookeeper ]; then
        cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=yes
admin.enableServer=false
CFG
        cmd="taskset -c $SERVER_CPU java -Xmx1000m -Dzookeeper.log.dir=$dir -cp $ZK_CP org.apache.zookeeper.server.ZooKeeperServerMain $dir/zoo.cfg"
    else
        cmd="taskset -c $SERVER_CPU $CORRAL --port $PORT --data-dir $dir/data --set maxClientCnxns=0"
    fi
    COMMANDS+=("$cmd")
    # shellcheck disable=SC2086
    CORRAL_LOG=warn $cmd >>"$dir/server.log" 2>&1 </dev/null &
    SERVER_PID=$!
}

# wait_port: serving means `srvr` reports a Mode (shared with compare.sh).
# shellcheck source=loadgen/wait_port.sh
. loadgen/wait_port.sh
rss_mib() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }
du_mib() { du -sm "$1" | cut -f1; }
probe() { taskset -c "$LOADGEN_CPU" "$LOADGEN" probe --server "127.0.0.1:$PORT" $SHAPE --limit "$1"; }

declare -A ROW
for s in $SERVERS; do
    log "$s: fill with $COUNT znodes"
    rm -rf "${OUT:?}/$s"
    start "$s"
    wait_port "$PORT"
    t0=$(date +%s.%N)
    pop="taskset -c $LOADGEN_CPU $LOADGEN populate --server 127.0.0.1:$PORT $SHAPE --payload $PAYLOAD"
    COMMANDS+=("$pop")
    timeout 1200 $pop >&2
    fill_s=$(echo "$(date +%s.%N) - $t0" | bc)
    sleep 5 # let a snapshot in progress finish, as a running server would have
    rss_full=$(rss_mib)
    snaps=$(find "$OUT/$s/data" -name 'snap*' -type f | wc -l)
    data_mib=$(du_mib "$OUT/$s/data")

    log "$s: kill -9 and restart"
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    start "$s"
    restart_s=$(probe 600)
    rss_ready=$(rss_mib)
    sleep 5
    rss_idle=$(rss_mib)
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    ROW[$s]="$(printf '%.1f' "$fill_s") | $restart_s | $rss_full | $rss_ready | $rss_idle | $data_mib | $snaps"
    log "$s: fill ${fill_s}s, restart ${restart_s}s, RSS full/ready/idle $rss_full/$rss_ready/$rss_idle MiB, data $data_mib MiB, $snaps snapshots"
done

{
    echo "<!-- restart:begin (written by loadgen/restart.sh; edits here are overwritten) -->"
    echo "Run $(date +%Y-%m-%d), \`bash loadgen/restart.sh\`: $COUNT znodes of $PAYLOAD B ($FANOUT per"
    echo "parent), created through the protocol with every create fsynced, then kill -9 and restart."
    echo "\"restart s\" is the time from starting the server until a new session reads the last znode"
    echo "created (\`loadgen probe\`); RSS is VmRSS when full, when ready after the restart, and 5 s"
    echo "later. ZooKeeper $ZK_VERSION, -Xmx1000m (zkServer.sh's default heap)."
    echo
    echo "| server | fill s | restart s | RSS full MiB | RSS ready MiB | RSS +5 s MiB | data dir MiB | snapshots |"
    echo "|---|---|---|---|---|---|---|---|"
    for s in $SERVERS; do echo "| $s | ${ROW[$s]} |"; done
    echo
    echo "Commands (each server alone on CPU $SERVER_CPU, the loadgen on CPU $LOADGEN_CPU):"
    echo
    echo '```'
    printf '%s\n' "${COMMANDS[@]}" | awk '!seen[$0]++'
    echo '```'
    echo "<!-- restart:end -->"
} >"$OUT/restart.md"
cat "$OUT/restart.md"

if grep -q 'restart:begin' "$DOC"; then
    awk -v f="$OUT/restart.md" '
        /restart:begin/ { while ((getline l < f) > 0) print l; skip = 1; next }
        /restart:end/ { skip = 0; next }
        !skip' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
else
    { echo; echo "### Restart with a large tree"; echo; cat "$OUT/restart.md"; } >>"$DOC"
fi
log "wrote $DOC"
