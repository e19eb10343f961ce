#!/usr/bin/env bash
# loadgen/failover.sh: leader failover in a 3-member ensemble, corral vs Apache ZooKeeper 3.8.
#
#   bash loadgen/failover.sh       # updates the failover section of docs/BENCHMARKS.md
#
# For each system, ROUNDS times: start a fresh pseudo-cluster on loopback (sids 1..3,
# tickTime=2000, initLimit=10, syncLimit=5, forceSync=yes, every member on CPU $SERVER_CPU),
# wait for one leader and two followers, then `loadgen failover` (on CPU $LOADGEN_CPU) writes
# through both followers, SIGKILLs the leader and measures (a) elect+sync: from the kill until
# the survivors answer `srvr` as one leader and one follower, and (b) the write outage each
# writer saw (longest gap between acknowledged writes across the kill; the max over the two).
# Then everything is killed and the data dirs removed. Members and the tool are pinned like
# compare.sh pins a server and the loadgen (SERVER_CPU= / LOADGEN_CPU= empty: no pinning).
# The machine's stalls are probed before and after (`loadgen stalls`), as compare.sh does.
#
# Environment: ROUNDS (10), SYSTEMS ("zookeeper corral"), OUT (target/failover-<date>),
# SERVER_CPU (1), LOADGEN_CPU (0), BASE_PORT (24000), DOC (docs/BENCHMARKS.md; the part between
# the `failover:begin`/`failover:end` markers is replaced), BUILD (1; 0 uses the binaries in
# target/release as they are).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ROUNDS=${ROUNDS:-10}
SYSTEMS=${SYSTEMS:-zookeeper corral}
SERVER_CPU=${SERVER_CPU-1}
LOADGEN_CPU=${LOADGEN_CPU-0}
BASE_PORT=${BASE_PORT:-24000}
DOC=${DOC:-docs/BENCHMARKS.md}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET/failover-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# shellcheck source=loadgen/ensemble-lib.sh
. loadgen/ensemble-lib.sh
trap stop_members EXIT INT TERM

if [ "${BUILD:-1}" = 1 ]; then
    log "building corral and loadgen (release)"
    cargo build --release -p corral -p loadgen >&2
fi

COMMANDS=()
# One fresh ensemble per round. Ports move on each round, so no round meets the sockets of the
# one before in TIME_WAIT.
start_round() {
    local sys=$1 round=$2 base
    base=$((BASE_PORT + (round % 50) * 10 + $([ "$sys" = corral ] && echo 500 || echo 0)))
    start_ensemble "$sys" "$OUT/$sys/r$round" "$base"
    [ "$round" = 1 ] && COMMANDS+=("${MEMBER_CMDS[@]}")
    true
}

stall_probe before 5

: >"$OUT/failed.txt"
for sys in $SYSTEMS; do
    : >"$OUT/$sys.jsonl"
    for r in $(seq 1 "$ROUNDS"); do
        log "$sys round $r/$ROUNDS: starting 3 members"
        start_round "$sys" "$r"
        pids=$(IFS=,; echo "${MEMBER_PIDS[*]}")
        cmd="$LOADGEN_PIN $LOADGEN failover --members $MEMBERS --pids $pids --label $sys --round $r --json"
        [ "$r" = 1 ] && COMMANDS+=("$cmd")
        # shellcheck disable=SC2086
        if line=$($cmd 2>>"$OUT/$sys.err"); then
            echo "$line" >>"$OUT/$sys.jsonl"
        else
            rc=$?
            [ -n "$line" ] && echo "$line" >>"$OUT/$sys.jsonl"
            echo "$sys round $r: loadgen failover exited $rc: $line $(tail -1 "$OUT/$sys.err")" >>"$OUT/failed.txt"
        fi
        echo "$line" | python3 -c '
import json, sys
l = sys.stdin.read().strip()
if l:
    v = json.loads(l)
    print("   elect+sync %s ms, write outage %s ms (writers %s), noticed %s ms, new leader %s" % (
        v["elect_ms"], v["outage_ms"], v["writer_outage_ms"], v["noticed_ms"], v["new_leader"]))' >&2 || true
        stop_members
        rm -rf "$OUT/$sys/r$r"/m*/data
    done
done

stall_probe after 5

# --- the section ------------------------------------------------------------------------------
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "<!-- failover:begin (written by loadgen/failover.sh; edits here are overwritten) -->"
    echo "Run $(date -u +%Y-%m-%d), \`ROUNDS=$ROUNDS bash loadgen/failover.sh\`: $ROUNDS rounds per system, each on a"
    echo "fresh 3-member pseudo-cluster on loopback (sids 1..3, tickTime=2000, initLimit=10,"
    echo "syncLimit=5, forceSync=yes). \`loadgen failover\` finds the leader, runs one writer per"
    echo "follower (one session, setData back to back; on any error or disconnect it reconnects to"
    echo "the same member at once and then every 5 ms, resuming its session; no client library, no"
    echo "backoff) and a \`srvr\` poller per follower (every 5 ms), then SIGKILLs the leader."
    echo "**elect+sync**: from the kill until the two survivors answer \`srvr\` as one leader and one"
    echo "follower. **write outage**: per writer, the longest gap between acknowledged writes from"
    echo "its last acknowledgement before the kill to the first of a write sent after it; the"
    echo "larger of the two writers. Both are in milliseconds, resolution about 5 ms (the poll"
    echo "period). Ratio = corral / ZooKeeper."
    echo
    python3 - "$OUT" $SYSTEMS <<'PY'
import json, math, statistics, sys
out, systems = sys.argv[1], sys.argv[2:]
rows = {}
for s in systems:
    try:
        rows[s] = [json.loads(l) for l in open(f"{out}/{s}.jsonl") if l.strip()]
    except FileNotFoundError:
        rows[s] = []
def stats(s, k):
    v = sorted(r[k] for r in rows[s] if r.get(k) is not None)
    if not v:
        return None
    return statistics.median(v), v[math.ceil(0.9 * len(v)) - 1], v[-1], len(v)
f = lambda x: "-" if x is None else f"{x:.0f}"
print("| system | rounds | elect+sync median | p90 | max | write outage median | p90 | max |")
print("|---|---|---|---|---|---|---|---|")
st = {s: (stats(s, "elect_ms"), stats(s, "outage_ms")) for s in systems}
for s in systems:
    e, o = st[s]
    n = len(rows[s])
    ok = sum(1 for r in rows[s] if r.get("ok"))
    cells = []
    for m in (e, o):
        cells += [f(m[0]), f(m[1]), f(m[2])] if m else ["-"] * 3
    print(f"| {s} | {ok}/{n} | " + " | ".join(cells) + " |")
if "corral" in st and "zookeeper" in st and all(st["corral"]) and all(st["zookeeper"]):
    r = [st["corral"][i][0] / st["zookeeper"][i][0] for i in (0, 1)]
    print(f"| ratio of medians | | {r[0]:.2f} | | | {r[1]:.2f} | | |")
print()
print("p90 is the nearest-rank 90th percentile of the rounds (the 9th of 10). Per round:")
print()
print("| system | round | elect+sync | write outage | per writer | survivors stopped serving after | writers' sessions back after |")
print("|---|---|---|---|---|---|---|")
for s in systems:
    for r in rows[s]:
        print(f"| {s} | {r['round']} | {f(r['elect_ms'])} | {f(r['outage_ms'])} | "
              f"{', '.join(f(x) for x in r['writer_outage_ms'])} | "
              f"{', '.join(f(x) for x in r['noticed_ms'])} | {', '.join(f(x) for x in r.get('session_back_ms', []))} |")
PY
    if [ -s "$OUT/failed.txt" ]; then
        echo
        echo "Rounds that failed (not in the statistics above):"
        echo
        echo '```'
        cat "$OUT/failed.txt"
        echo '```'
    fi
    echo
    echo "Machine: $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r); Apache ZooKeeper $ZK_VERSION"
    echo "(Debian package, $(java -version 2>&1 | head -1), QuorumPeerMain, -Xmx512m); corral"
    echo "$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2) at $(git rev-parse --short HEAD 2>/dev/null || echo unknown), release build. Pinning: $PINNING."
    echo "Machine stalls"
    echo "(\`$STALL_CMD\`, a spinning thread per CPU) before the rounds:"
    echo
    cat "$OUT/stalls-before.md"
    echo
    echo "and after:"
    echo
    cat "$OUT/stalls-after.md"
    echo
    echo "Commands (round 1 of each system; later rounds move the ports):"
    echo
    echo '```'
    printf '%s\n' "${COMMANDS[@]}"
    echo '```'
    echo "<!-- failover:end -->"
} >"$OUT/failover.md"
cat "$OUT/failover.md"

replace_section "$DOC" failover "$OUT/failover.md" "### Failover (3-member ensemble)"
log "wrote $DOC (raw results in $OUT)"
