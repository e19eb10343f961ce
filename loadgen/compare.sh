#!/usr/bin/env bash
# loadgen/compare.sh: corral vs Apache ZooKeeper 3.8 (Debian's package), same profiles, one run.
#
#   bash loadgen/compare.sh            # writes docs/BENCHMARKS.md and its plots in docs/bench/
#                                      # (+ raw results in $OUT)
#
# Pinning on this 2-core machine: each server runs alone on CPU $SERVER_CPU (taskset -c), one
# after the other; the loadgen runs on CPU $LOADGEN_CPU (taskset -c). corral respects the
# affinity mask it is started with (one shard + the write core on that CPU); the JVM sees one CPU.
# ZooKeeper runs standalone with forceSync=yes. Everything listens on 127.0.0.1 only, every load
# phase is bounded in time, and both servers are killed on exit (trap). Each server (and the echo
# floor) also gets an open-loop rate sweep of getData ($SWEEP, 6 phases: ~40 s at the defaults);
# `loadgen plot` then draws the latency-percentile curves and latency vs offered load into
# docs/bench/ (stable names: a rerun overwrites them), which the doc embeds.
#
# Environment: DURATION (s per phase, default 5), WARMUP (default 1), OUT (results directory,
# default target/bench-<date>), SERVER_CPU (1), LOADGEN_CPU (0), DOC (docs/BENCHMARKS.md),
# QUICK=1 (1 s phases, for trying the script).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
if [ "${QUICK:-0}" = 1 ]; then DURATION=1; WARMUP=0.3; fi
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
DOC=${DOC:-docs/BENCHMARKS.md}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET/bench-$(date +%Y%m%d-%H%M%S)}
ZK_PORT=${ZK_PORT:-22181}
CORRAL_PORT=${CORRAL_PORT:-22182}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# shellcheck source=loadgen/tools.sh
. loadgen/tools.sh
# The PNG plots' text font (the SVGs need none).
need_font

# --- build --------------------------------------------------------------------------------------
log "building corral and loadgen (release)"
cargo build --release -p corral -p loadgen -j"$(nproc)" >&2
CORRAL=$TARGET/release/corral
LOADGEN=$TARGET/release/loadgen

# shellcheck source=loadgen/wait_port.sh
. loadgen/wait_port.sh

start_zookeeper() {
    local dir=$OUT/zookeeper
    rm -rf "$dir"
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=yes
4lw.commands.whitelist=*
admin.enableServer=false
CFG
    ZK_CMD="taskset -c $SERVER_CPU java -Xmx512m -Dzookeeper.log.dir=$dir -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp $ZK_CP org.apache.zookeeper.server.ZooKeeperServerMain $dir/zoo.cfg"
    # shellcheck disable=SC2086
    $ZK_CMD >"$dir/zookeeper.log" 2>&1 </dev/null &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$ZK_PORT"
}

start_corral() {
    local dir=$OUT/corral
    rm -rf "$dir"
    mkdir -p "$dir"
    CORRAL_CMD="taskset -c $SERVER_CPU $CORRAL --port $CORRAL_PORT --data-dir $dir/data --set maxClientCnxns=0 --set forceSync=yes --set 4lw.commands.whitelist=*"
    # shellcheck disable=SC2086
    CORRAL_LOG=warn $CORRAL_CMD >"$dir/corral.log" 2>&1 </dev/null &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$CORRAL_PORT"
}

stop_server() {
    kill -0 "$SERVER_PID" 2>/dev/null || echo "server pid $SERVER_PID had exited before the end of its last profile" >>"$OUT/crashes.txt"
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

COMMON="--duration $DURATION --warmup $WARMUP --json --allow-errors"
# The profiles: name | loadgen arguments. The same for every server.
PROFILES=(
    "-w getdata -s 16 -o 32"
    "-w getdata -s 64 -o 1"
    "-w exists -s 16 -o 32"
    "-w getchildren -s 16 -o 32"
    "-w setdata -s 64 -o 1"
    "-w setdata -s 8 -o 32"
    "-w mix -s 16 -o 32"
    "-w create-delete -s 16 -o 8"
    "-w create-delete-eph -s 16 -o 8"
    "-w watch -s 64"
    "-w churn -s 16"
    "-w lock -s 16"
)

# The rate sweep, against every server and the echo floor: a closed-loop phase finds the
# saturation throughput, then open-loop phases run at these percentages of it (latency vs offered
# load). Its JSON lines go to LABEL-sweep.jsonl, apart from the tables' phases.
# Open-loop phases (the sweep, and OPEN below) run the loadgen with --spin-us: it polls instead
# of sleeping between sends, so its own wake-ups stay out of the latencies it measures.
PACED="--spin-us 200"
SWEEP="-w getdata -s 64 -o 64 --sweep 25,50,75,90,100 $PACED"

# run_one LABEL PORT JSONL START_FN PROFILE
# A server found dead before a profile is recorded in crashes.txt (with its panic message) and
# restarted, so one crash does not hide the other profiles.
run_one() {
    local label=$1 port=$2 jsonl=$3 start_fn=$4 p=$5
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        {
            echo "$label exited during the profile before: $p"
            grep -h -m1 -A1 panicked "$OUT/$label"/*.log 2>/dev/null || true
        } >>"$OUT/crashes.txt"
        log "$label died; restarting it"
        wait "$SERVER_PID" 2>/dev/null || true
        cp "$OUT/$label"/*.log "$OUT/$label-crash-$(date +%s).log" 2>/dev/null || true
        "$start_fn"
    fi
    local cmd="taskset -c $LOADGEN_CPU $LOADGEN --servers 127.0.0.1:$port --server-pid $SERVER_PID --label $label --hgrm-dir $OUT/hgrm $COMMON $p"
    echo "$cmd" >>"$OUT/commands.txt"
    log "$label: loadgen $p"
    # shellcheck disable=SC2086
    $cmd >>"$jsonl" 2>>"$OUT/$label.txt" || echo "loadgen exited $? ($label: $p)" >&2
}

# run_profiles LABEL PORT JSONL START_FN: every profile of PROFILES.
run_profiles() {
    local p
    for p in "${PROFILES[@]}"; do
        run_one "$1" "$2" "$3" "$4" "$p"
    done
}

: >"$OUT/commands.txt"
: >"$OUT/crashes.txt"

# The machine's own stalls, before and after the servers run: a thread spinning on each CPU
# counts the time it was not running (docs/BENCHMARKS.md, "Machine stalls").
stall_probe() {
    local cmd="$LOADGEN stalls --cpus $LOADGEN_CPU,$SERVER_CPU --seconds 10"
    echo "$cmd" >>"$OUT/commands.txt"
    log "machine stalls ($1): $cmd"
    # shellcheck disable=SC2086
    $cmd >"$OUT/stalls-$1.md" || log "stall probe failed"
}
stall_probe before

log "Apache ZooKeeper $ZK_VERSION on CPU $SERVER_CPU"
start_zookeeper
echo "$ZK_CMD" >>"$OUT/commands.txt"
run_profiles zookeeper "$ZK_PORT" "$OUT/zookeeper.jsonl" start_zookeeper
# Half of ZooKeeper's unpipelined getData saturation, then the same rate against corral.
HALF=$(python3 -c '
import json,sys
for l in open(sys.argv[1]):
    v=json.loads(l)
    if v["phase"]=="getdata closed 64x1": print(int(v["throughput"]/2))' "$OUT/zookeeper.jsonl")
HALF=${HALF:-10000}
OPEN="-w getdata -s 64 -o 64 --rate $HALF $PACED"
run_one zookeeper "$ZK_PORT" "$OUT/zookeeper.jsonl" start_zookeeper "$OPEN"
run_one zookeeper "$ZK_PORT" "$OUT/zookeeper-sweep.jsonl" start_zookeeper "$SWEEP"
stop_server

log "corral on CPU $SERVER_CPU"
start_corral
echo "$CORRAL_CMD" >>"$OUT/commands.txt"
run_profiles corral "$CORRAL_PORT" "$OUT/corral.jsonl" start_corral
run_one corral "$CORRAL_PORT" "$OUT/corral.jsonl" start_corral "$OPEN"
run_one corral "$CORRAL_PORT" "$OUT/corral-sweep.jsonl" start_corral "$SWEEP"
stop_server

log "echo floor (in-process echo server on CPU $SERVER_CPU)"
# The open-loop phase too: its tail on this machine with no server logic at all is the floor
# under both servers' tails.
for p in "-w getdata -s 16 -o 32" "-w getdata -s 64 -o 1" "-w setdata -s 8 -o 32" "-w churn -s 16" "$OPEN"; do
    cmd="taskset -c $LOADGEN_CPU $LOADGEN --echo --echo-cpu $SERVER_CPU --label echo $COMMON $p"
    echo "$cmd" >>"$OUT/commands.txt"
    # shellcheck disable=SC2086
    $cmd >>"$OUT/echo.jsonl" 2>>"$OUT/echo.txt" || true
done
cmd="taskset -c $LOADGEN_CPU $LOADGEN --echo --echo-cpu $SERVER_CPU --label echo $COMMON $SWEEP"
echo "$cmd" >>"$OUT/commands.txt"
# shellcheck disable=SC2086
$cmd >>"$OUT/echo-sweep.jsonl" 2>>"$OUT/echo.txt" || true

stall_probe after

# --- plots (docs/bench/, embedded in the doc) ---------------------------------------------------
PLOT_DIR=$(dirname "$DOC")/bench
mkdir -p "$PLOT_DIR"
# A phase the previous run had and this one lacks must not leave its plot behind.
rm -f "$PLOT_DIR"/latency-*.svg "$PLOT_DIR"/latency-*.png "$PLOT_DIR"/load-*.svg "$PLOT_DIR"/load-*.png
log "plots into $PLOT_DIR"
PLOT_CMD="$LOADGEN plot --out-dir $PLOT_DIR --markdown --link-prefix bench/"
for f in corral zookeeper echo corral-sweep zookeeper-sweep echo-sweep; do
    if [ -s "$OUT/$f.jsonl" ]; then PLOT_CMD="$PLOT_CMD $OUT/$f.jsonl"; fi
done
echo "$PLOT_CMD" >>"$OUT/commands.txt"
# shellcheck disable=SC2086
$PLOT_CMD >"$OUT/plots.md" || log "loadgen plot failed (see above); the doc links the plots it wrote"

# --- docs/BENCHMARKS.md -----------------------------------------------------------------------
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    cat <<EOF
# Benchmarks

Latest comparison of corral against Apache ZooKeeper, written by \`loadgen/compare.sh\`
($(date -u +%Y-%m-%d)). Rerun it with \`bash loadgen/compare.sh\`.

Both servers fsync every write before answering it (ZooKeeper \`forceSync=yes\`, corral's
transaction log: one O_DIRECT write + fdatasync per batch), so the write rows compare like with
like.

## Machine and versions

- $(nproc) CPUs ($CPU_MODEL), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)
- Apache ZooKeeper $ZK_VERSION (Debian package \`zookeeper\`), $(java -version 2>&1 | head -1)
- corral $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2), $(rustc --version)
- Pinning: each server alone on CPU $SERVER_CPU (\`taskset -c $SERVER_CPU\`), one after the other;
  the loadgen on CPU $LOADGEN_CPU (\`taskset -c $LOADGEN_CPU\`, one glommio executor). Loopback TCP.
- Each phase: ${WARMUP} s warmup, ${DURATION} s measured. Latencies in microseconds. "CPU us/op"
  is the server process's CPU time (from /proc) over the measured window divided by the
  requests answered in it; RSS is the server's peak VmRSS during the phase.
- Open-loop phases (the open-loop row, the rate sweep) run the loadgen with \`$PACED\`: it
  polls rather than sleeps between sends, so its own wake-ups stay out of what it measures.

## Machine stalls

Before anything else and again after everything, \`loadgen stalls\` spins one thread on each
CPU for 10 s and counts the gaps between its clock reads: time the machine ran something else
(interrupts, kernel threads, or on a VM the host). Nothing else of this benchmark runs then, so
these gaps are a floor under every tail latency below: a request in flight during a stall of
the loadgen's or the server's CPU waits it out, whatever the server.

Before:

$(cat "$OUT/stalls-before.md")

After:

$(cat "$OUT/stalls-after.md")

## corral vs ZooKeeper

Phase names read \`workload mode sessions x outstanding\`. Ratio = corral / ZooKeeper throughput.
The latency columns are for the phase's headline op (notify = a watcher's notification, timed
from the setData's *send*; connect = TCP connect + handshake; lock-acquire = create of the lock
node to holding the lock). The open-loop row runs at half of ZooKeeper's unpipelined getData
saturation, latency measured from each request's intended send time (coordinated omission
corrected).

EOF
    "$LOADGEN" report --a "$OUT/corral.jsonl" --a-label corral --b "$OUT/zookeeper.jsonl" --b-label zookeeper
    if [ -s "$OUT/crashes.txt" ]; then
        echo
        echo "**Server crashes during this run** (the server was restarted; phases it missed are absent above):"
        echo
        echo '```'
        cat "$OUT/crashes.txt"
        echo '```'
    fi
    cat <<EOF

## The echo floor

The same loadgen against its in-process echo server (\`--echo\`: one reply per frame, no server
logic, replies coalesced per read), pinned like the servers: what loopback TCP and the loadgen
cost by themselves on this machine. "server CPU" is the echo thread's CPU time.

EOF
    "$LOADGEN" report --a "$OUT/echo.jsonl" --a-label echo
    cat <<EOF

## Plots

Drawn by \`loadgen plot\` from this run's JSON lines: SVG here, a PNG beside each in
\`$PLOT_DIR/\`. Latency vs offered load comes from the rate sweep \`$SWEEP\`, run against
each server and the echo floor: a closed-loop phase finds that target's own saturation
throughput, then open-loop phases run at 25..100 % of it, each latency measured from the
request's intended send time. The percentile plots overlay every run that has the phase, on
HdrHistogram's "nines" axis.

EOF
    cat "$OUT/plots.md"
    cat <<EOF
## Commands

Exactly what ran (raw JSON lines, tables and .hgrm files are in \`$OUT\`):

\`\`\`
$(cat "$OUT/commands.txt")
\`\`\`
EOF
} >"$DOC.new"
if [ -f "$DOC" ] && grep -Eq '^## (Ensemble|Notes)' "$DOC"; then
    # Keep the ensemble section (loadgen/ensemble.sh) and the hand-written notes of the
    # previous doc.
    { echo; sed -En '/^## (Ensemble|Notes)/,$p' "$DOC"; } >>"$DOC.new"
fi
mv "$DOC.new" "$DOC"
log "wrote $DOC (raw results in $OUT)"
