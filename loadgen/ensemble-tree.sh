#!/usr/bin/env bash
# loadgen/ensemble-tree.sh: memory and restart of a 3-member ensemble holding a large tree,
# corral vs Apache ZooKeeper 3.8.
#
#   bash loadgen/ensemble-tree.sh   # updates the "ensemble-tree" table in docs/BENCHMARKS.md
#
# For each system, one after the other: a 3-member pseudo-cluster as ensemble.sh starts it
# (loadgen/ensemble-lib.sh: every member on CPU $SERVER_CPU, fsync on), ZooKeeper with
# zkServer.sh's default heap (-Xmx1000m, as loadgen/restart.sh gives it). `loadgen populate`
# (on CPU $LOADGEN_CPU) fills it through member 1 with $COUNT leaves of $PAYLOAD bytes,
# $FANOUT per parent, every create fsynced on a quorum. Then each member's VmRSS (5 s after
# the last create), every member kill -9'd and started again, the time until a new session
# reads the last leaf through member 1 (election and sync included), and each member's VmRSS
# then. Every step is bounded; every member is killed on exit.
#
# Environment: COUNT (1000000), FANOUT (1000), PAYLOAD (100), SYSTEMS ("zookeeper corral"),
# SERVER_CPU (1), LOADGEN_CPU (0), OUT (target/ensemble-tree-<date>), DOC (docs/BENCHMARKS.md),
# BASE_PORT (23300), ZK_HEAP (1000m).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

COUNT=${COUNT:-1000000}
FANOUT=${FANOUT:-1000}
PAYLOAD=${PAYLOAD:-100}
SYSTEMS=${SYSTEMS:-zookeeper corral}
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
DOC=${DOC:-docs/BENCHMARKS.md}
BASE_PORT=${BASE_PORT:-23300}
export ZK_HEAP=${ZK_HEAP:-1000m}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET/ensemble-tree-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# shellcheck source=loadgen/ensemble-lib.sh
. loadgen/ensemble-lib.sh
trap stop_members EXIT INT TERM

log "building corral and loadgen (release)"
cargo build --release -p corral -p loadgen >&2
SHAPE="--root /restart --count $COUNT --fanout $FANOUT"
COMMANDS=()

rss_of() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# The members' RSS in MiB, in sid order, comma separated.
rss_all() {
    local p out=""
    for p in "${ENSEMBLE_PIDS[@]}"; do out="$out${out:+, }$(rss_of "$p")"; done
    echo "$out"
}
# The largest of rss_all's figures.
rss_max() { tr ',' '\n' <<<"$1" | sort -n | tail -1 | tr -d ' '; }

declare -A ROW
for sys in $SYSTEMS; do
    log "$sys: a 3-member ensemble, filled with $COUNT znodes"
    start_ensemble "$sys" "$OUT/$sys" "$BASE_PORT"
    first=${MEMBERS%%,*}
    COMMANDS+=("${MEMBER_CMDS[@]}")
    pop="$LOADGEN_PIN $LOADGEN populate --server $first $SHAPE --payload $PAYLOAD"
    COMMANDS+=("$pop")
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    timeout 1800 $pop >&2
    fill_s=$(echo "$(date +%s.%N) - $t0" | bc)
    sleep 5 # a snapshot in progress finishes, as on a running server
    full=$(rss_all)

    log "$sys: kill -9 every member and start them again"
    stop_members
    ENSEMBLE_PIDS=()
    for i in 1 2 3; do
        sh "$OUT/$sys/m$i/start.sh" &
        MEMBER_PIDS+=($!)
        ENSEMBLE_PIDS+=($!)
    done
    probe="$LOADGEN_PIN $LOADGEN probe --server $first $SHAPE --limit 900"
    # shellcheck disable=SC2086
    restart_s=$($probe)
    sleep 5
    after=$(rss_all)
    stop_members
    ROW[$sys]="$(printf '%.1f' "$fill_s") | $full | $(rss_max "$full") | $restart_s | $after | $(rss_max "$after")"
    log "$sys: fill ${fill_s}s, RSS full $full MiB, restart ${restart_s}s, RSS after $after MiB"
done

{
    echo "<!-- ensemble-tree:begin (written by loadgen/ensemble-tree.sh; edits here are overwritten) -->"
    echo "Run $(date +%Y-%m-%d), \`bash loadgen/ensemble-tree.sh\`: a 3-member ensemble of each ($PINNING,"
    echo "fsync on), filled through member 1 with $COUNT znodes of $PAYLOAD B ($FANOUT per parent), every"
    echo "create committed by a quorum; RSS is each member's VmRSS 5 s after the last create. Then"
    echo "every member is kill -9'd and started again; \"restart s\" is the time until a new session"
    echo "reads the last znode through member 1 (recovery, election and sync), \"RSS after\" each"
    echo "member's 5 s later. ZooKeeper $ZK_VERSION with -Xmx$ZK_HEAP (zkServer.sh's default heap)."
    echo
    echo "| system | fill s | RSS full MiB (m1, m2, m3) | max | restart s | RSS after MiB (m1, m2, m3) | max |"
    echo "|---|---|---|---|---|---|---|"
    for s in $SYSTEMS; do echo "| $s | ${ROW[$s]} |"; done
    echo
    echo "Commands:"
    echo
    echo '```'
    printf '%s\n' "${COMMANDS[@]}" | awk '!seen[$0]++'
    echo '```'
    echo "<!-- ensemble-tree:end -->"
} >"$OUT/ensemble-tree.md"
cat "$OUT/ensemble-tree.md"
replace_section "$DOC" ensemble-tree "$OUT/ensemble-tree.md" "### A large tree in a 3-member ensemble"
log "wrote $DOC"
