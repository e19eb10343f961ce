#!/usr/bin/env bash
# loadgen/ensemble.sh: a 3-member corral ensemble against a 3-member Apache ZooKeeper 3.8
# ensemble (Debian's package), same phases, one run.
#
#   bash loadgen/ensemble.sh        # rewrites the ensemble section of docs/BENCHMARKS.md
#                                   # and its plots in docs/bench/ensemble/
#
# For each system, one after the other (ZooKeeper first: the open-loop phase runs at half of
# its setData saturation): a fresh pseudo-cluster on loopback (loadgen/ensemble-lib.sh; sids
# 1..3, tickTime=2000, forceSync=yes, every member on CPU $SERVER_CPU), the loadgen on CPU
# $LOADGEN_CPU with its sessions spread round-robin over the three members and every member's
# CPU time and RSS sampled (--server-pid with the three PIDs). Then, on the same ensemble:
# `loadgen failover` (SIGKILL of the leader: elect+sync time and the writers' outage), the
# killed member restarted, and `loadgen catchup` (a follower SIGKILLed, $CATCHUP_WRITES setData
# through the others, the follower restarted: time until it serves and until it has every
# write). The echo floor runs the write phases through 3 loopback hops (`--echo-hops 3`) and
# the read phases through one. Machine stalls are probed before and after.
#
# Environment: DURATION (s per phase, 5), WARMUP (1), QUICK=1 (1 s phases, 10000 catch-up
# writes), SYSTEMS ("zookeeper corral"), CATCHUP_WRITES (100000), SERVER_CPU (1), LOADGEN_CPU
# (0; either empty: not pinned), BASE_PORT (25000), OUT (target/ensemble-<date>), DOC
# (docs/BENCHMARKS.md; the part between the `ensemble:begin`/`ensemble:end` markers is
# replaced), PLOT_DIR (docs/bench/ensemble), BUILD (1; 0 uses target/release as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CATCHUP_WRITES=${CATCHUP_WRITES:-100000}
if [ "${QUICK:-0}" = 1 ]; then
    DURATION=1
    WARMUP=0.3
    CATCHUP_WRITES=10000
fi
SYSTEMS=${SYSTEMS:-zookeeper corral}
SERVER_CPU=${SERVER_CPU-1}
LOADGEN_CPU=${LOADGEN_CPU-0}
BASE_PORT=${BASE_PORT:-25000}
DOC=${DOC:-docs/BENCHMARKS.md}
PLOT_DIR=${PLOT_DIR:-$(dirname "$DOC")/bench/ensemble}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET/ensemble-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# shellcheck source=loadgen/ensemble-lib.sh
. loadgen/ensemble-lib.sh
# A member restarted by `loadgen catchup` is not our child: find it by its directory.
cleanup() {
    stop_members
    pkill -9 -f "$OUT/" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ "${BUILD:-1}" = 1 ]; then
    log "building corral and loadgen (release)"
    cargo build --release -p corral -p loadgen >&2
fi
need_font

COMMON="--duration $DURATION --warmup $WARMUP --json --allow-errors"
PACED="--spin-us 200"
# The phases, the same for both systems.
PROFILES=(
    "-w setdata -s 64 -o 1"
    "-w create-delete -s 64 -o 1"
    "-w setdata -s 8 -o 32"
    "-w getdata -s 64 -o 1"
    "-w getdata -s 16 -o 32"
    "-w mix -s 16 -o 32"
)
# The setData rate sweep: a closed-loop phase finds the system's saturation, then open-loop
# phases at these percentages of it.
SWEEP="-w setdata -s 64 -o 64 --sweep 25,50,75,90,100 $PACED"
: >"$OUT/commands.txt"
: >"$OUT/crashes.txt"
note_cmd() { echo "$*" >>"$OUT/commands.txt"; }

# run_phase SYS JSONL PROFILE: one loadgen run against the running ensemble.
run_phase() {
    local sys=$1 jsonl=$2 p=$3 pids cmd
    pids=$(IFS=,; echo "${ENSEMBLE_PIDS[*]}")
    cmd="$LOADGEN_PIN $LOADGEN --servers $MEMBERS --server-pid $pids --label $sys --hgrm-dir $OUT/hgrm $COMMON $p"
    note_cmd "$cmd"
    log "$sys: loadgen $p"
    # shellcheck disable=SC2086
    $cmd >>"$jsonl" 2>>"$OUT/$sys.txt" || echo "loadgen exited $? ($sys: $p)" >&2
}

# The open-loop row is run OPEN_RUNS times and the run with the median p99 goes in the table
# (all of them in the repeats table): at ~90% of a CPU, one 5 s window's p99 swings with
# whether a machine stall lands in it (ZooKeeper's went from 15 to 380 ms between runs).
OPEN_RUNS=${OPEN_RUNS:-3}
# pick_median ALL JSONL: appends the line of ALL with the median setData p99 to JSONL.
pick_median() {
    python3 - "$1" "$2" <<'PY'
import json, sys
rows = []
for l in open(sys.argv[1]):
    try:
        rows.append((json.loads(l)["latency_us"]["setData"]["p99"], l))
    except (ValueError, KeyError, TypeError):
        continue
if rows:
    rows.sort(key=lambda r: r[0])
    open(sys.argv[2], "a").write(rows[(len(rows) - 1) // 2][1])
PY
}
# run_open SYS: the open-loop phase OPEN_RUNS times into SYS-open.jsonl, the median into SYS.jsonl.
run_open() {
    local sys=$1 i
    : >"$OUT/$sys-open.jsonl"
    for i in $(seq "$OPEN_RUNS"); do
        members_alive "$sys" "the open-loop phase" || return 0
        run_phase "$sys" "$OUT/$sys-open.jsonl" "$OPEN"
    done
    pick_median "$OUT/$sys-open.jsonl" "$OUT/$sys.jsonl"
}

# members_alive SYS WHAT: records in crashes.txt any member that has died, and fails.
members_alive() {
    local i ok=0
    for i in 0 1 2; do
        if ! kill -0 "${ENSEMBLE_PIDS[$i]}" 2>/dev/null; then
            echo "$1: member $((i + 1)) had exited before $2" >>"$OUT/crashes.txt"
            ok=1
        fi
    done
    return $ok
}

stall_probe before 10
note_cmd "$STALL_CMD"

HALF=
n=0
for sys in $SYSTEMS; do
    base=$((BASE_PORT + n * 20))
    n=$((n + 1))
    top=$OUT/$sys
    log "$sys: starting 3 members ($PINNING)"
    start_ensemble "$sys" "$top" "$base"
    printf '%s\n' "${MEMBER_CMDS[@]}" >>"$OUT/commands.txt"
    : >"$OUT/$sys.jsonl"
    : >"$OUT/$sys-sweep.jsonl"
    # Not recorded: the JVM compiles its hot paths in the first seconds; both systems get it.
    pids=$(IFS=,; echo "${ENSEMBLE_PIDS[*]}")
    # shellcheck disable=SC2086
    $LOADGEN_PIN $LOADGEN --servers "$MEMBERS" -w mix -s 16 -o 32 --duration 5 --warmup 0 --allow-errors \
        >/dev/null 2>>"$OUT/$sys.txt" || true
    for p in "${PROFILES[@]}"; do
        members_alive "$sys" "$p" || break
        run_phase "$sys" "$OUT/$sys.jsonl" "$p"
    done
    if [ -z "$HALF" ]; then
        members_alive "$sys" "the sweep" && run_phase "$sys" "$OUT/$sys-sweep.jsonl" "$SWEEP"
        HALF=$(python3 -c '
import json,sys
for l in open(sys.argv[1]):
    try: v=json.loads(l)
    except ValueError: continue
    if v.get("phase")=="setdata closed 64x64": print(int(v["throughput"]/2))' "$OUT/$sys-sweep.jsonl")
        HALF=${HALF:-2000}
        OPEN="-w setdata -s 64 -o 64 --rate $HALF $PACED"
        run_open "$sys"
    else
        run_open "$sys"
        members_alive "$sys" "the sweep" && run_phase "$sys" "$OUT/$sys-sweep.jsonl" "$SWEEP"
    fi

    # Failover of the leader, then the killed member back.
    if members_alive "$sys" "the failover"; then
        cmd="$LOADGEN_PIN $LOADGEN failover --members $MEMBERS --pids $pids --label $sys --json"
        note_cmd "$cmd"
        log "$sys: failover"
        # shellcheck disable=SC2086
        $cmd >"$OUT/$sys-failover.json" 2>>"$OUT/$sys.txt" || echo "$sys: loadgen failover exited $?" >>"$OUT/crashes.txt"
        for i in 0 1 2; do
            if ! kill -0 "${ENSEMBLE_PIDS[$i]}" 2>/dev/null; then
                wait "${ENSEMBLE_PIDS[$i]}" 2>/dev/null || true
                sh "$top/m$((i + 1))/start.sh" &
                ENSEMBLE_PIDS[i]=$!
                MEMBER_PIDS+=($!)
                wait_port $((base + i))
            fi
        done
    fi
    # Catch-up of a follower that missed CATCHUP_WRITES writes.
    if members_alive "$sys" "the catch-up"; then
        pids=$(IFS=,; echo "${ENSEMBLE_PIDS[*]}")
        cmd="$LOADGEN_PIN $LOADGEN catchup --members $MEMBERS --pids $pids --writes $CATCHUP_WRITES --label $sys --json"
        note_cmd "$cmd --restart 'sh $top/m{sid}/start.sh'"
        log "$sys: catch-up after $CATCHUP_WRITES missed writes"
        # shellcheck disable=SC2086
        $cmd --restart "sh $top/m{sid}/start.sh" >"$OUT/$sys-catchup.json" 2>>"$OUT/$sys.txt" ||
            echo "$sys: loadgen catchup exited $?" >>"$OUT/crashes.txt"
    fi
    cleanup
    du -sm "$top" >"$OUT/$sys-du.txt" 2>/dev/null || true
    rm -rf "$top"/m*/data
done

log "echo floor (in-process echo server on CPU ${SERVER_CPU:-1})"
: >"$OUT/echo.jsonl"
: >"$OUT/echo-sweep.jsonl"
echo_run() {
    local hops=$1 jsonl=$2 p=$3 cmd
    cmd="$LOADGEN_PIN $LOADGEN --echo --echo-cpu ${SERVER_CPU:-1} --echo-hops $hops --label echo-${hops}hop $COMMON $p"
    note_cmd "$cmd"
    # shellcheck disable=SC2086
    $cmd >>"$jsonl" 2>>"$OUT/echo.txt" || true
}
for p in "-w setdata -s 64 -o 1" "-w setdata -s 8 -o 32"; do
    echo_run 3 "$OUT/echo.jsonl" "$p"
done
if [ -n "${OPEN:-}" ]; then
    : >"$OUT/echo-open.jsonl"
    for i in $(seq "$OPEN_RUNS"); do echo_run 3 "$OUT/echo-open.jsonl" "$OPEN"; done
    pick_median "$OUT/echo-open.jsonl" "$OUT/echo.jsonl"
fi
for p in "-w getdata -s 64 -o 1" "-w getdata -s 16 -o 32"; do
    echo_run 1 "$OUT/echo.jsonl" "$p"
done
echo_run 3 "$OUT/echo-sweep.jsonl" "$SWEEP"

stall_probe after 10

# --- plots --------------------------------------------------------------------------------------
mkdir -p "$PLOT_DIR"
rm -f "$PLOT_DIR"/*.svg "$PLOT_DIR"/*.png
LINK_PREFIX=$(realpath --relative-to="$(dirname "$DOC")" "$PLOT_DIR")/
PLOT_CMD="$LOADGEN plot --out-dir $PLOT_DIR --markdown --link-prefix $LINK_PREFIX"
for f in corral zookeeper echo corral-sweep zookeeper-sweep echo-sweep; do
    if [ -s "$OUT/$f.jsonl" ]; then PLOT_CMD="$PLOT_CMD $OUT/$f.jsonl"; fi
done
note_cmd "$PLOT_CMD"
# shellcheck disable=SC2086
$PLOT_CMD >"$OUT/plots.md" || log "loadgen plot failed; the section links the plots it wrote"

# --- the section ------------------------------------------------------------------------------
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    cat <<EOF
<!-- ensemble:begin (written by loadgen/ensemble.sh; edits here are overwritten) -->
Run $(date -u +%Y-%m-%d), \`bash loadgen/ensemble.sh\`, corral at $(git rev-parse --short HEAD 2>/dev/null || echo unknown).
Each system as a fresh 3-member pseudo-cluster on loopback (tickTime=2000, initLimit=10,
syncLimit=5, forceSync=yes: every member fsyncs its log before acknowledging), started one after
the other; $PINNING. The loadgen spreads its sessions round-robin over the three members, so
two thirds of them are on followers. Each phase: ${WARMUP} s warmup, ${DURATION} s measured, after
5 s of unrecorded mixed load (the JVM's warm-up). Latencies in microseconds. "CPU us/op" is the
three members' CPU time together over the measured window per request answered; "RSS MiB" the
largest member's peak VmRSS in the phase (every member is in the per-member table).

Machine: $(nproc) CPUs ($CPU_MODEL), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r);
Apache ZooKeeper $ZK_VERSION (Debian package, $(java -version 2>&1 | head -1), QuorumPeerMain,
-Xmx512m); corral $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2), release build.

Machine stalls (\`$STALL_CMD\`) before:

$(cat "$OUT/stalls-before.md")

and after:

$(cat "$OUT/stalls-after.md")

### Phases

Ratio = corral / ZooKeeper throughput. The open-loop row offers setData at half of ZooKeeper's
closed-loop setData saturation (\`setdata closed 64x64\`, the sweep's first phase) to both,
latency measured from each request's intended send time. It is run $OPEN_RUNS times for each
system (and the echo floor), and the run with the median p99 is the row here; every run is in
"Open-loop runs" below.

EOF
    # SYSTEMS may name one system only (a quick look at one): then its table alone.
    if [ -s "$OUT/corral.jsonl" ] && [ -s "$OUT/zookeeper.jsonl" ]; then
        "$LOADGEN" report --a "$OUT/corral.jsonl" --a-label corral --b "$OUT/zookeeper.jsonl" --b-label zookeeper
    else
        for sys in $SYSTEMS; do "$LOADGEN" report --a "$OUT/$sys.jsonl" --a-label "$sys"; done
    fi
    if [ -s "$OUT/crashes.txt" ]; then
        echo
        echo "**Problems during this run** (phases after them are absent above):"
        echo
        echo '```'
        cat "$OUT/crashes.txt"
        echo '```'
    fi
    cat <<EOF

### Open-loop runs

Each run of the open-loop phase, in the order run (latencies in microseconds, CPU us/op of the
three members together; the echo floor's is its relays' on the same CPU).

EOF
    python3 - "$OUT" $SYSTEMS echo <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
print("| system | run | p50 | p99 | p99.9 | max | CPU us/op |")
print("|---|---|---|---|---|---|---|")
for s in names:
    try:
        lines = [json.loads(l) for l in open(f"{out}/{s}-open.jsonl") if l.strip().startswith("{")]
    except FileNotFoundError:
        continue
    for i, r in enumerate(lines, 1):
        l = r.get("latency_us", {}).get("setData", {})
        g = lambda q: "-" if l.get(q) is None else f"{l[q]:.0f}"
        cpu = r.get("server_cpu_us_per_op")
        print(f"| {s} | {i} | {g('p50')} | {g('p99')} | {g('p99.9')} | {g('max')} | {'-' if cpu is None else f'{cpu:.2f}'} |")
PY
    cat <<EOF

### Per member

CPU time per request answered and peak RSS of each member, in sid order (m1, m2, m3), with
the member's role at the start of the run. ZooKeeper's followers forward writes to the leader
and apply what it commits; so do corral's.

EOF
    python3 - "$OUT" $SYSTEMS <<'PY'
import json, sys
out, systems = sys.argv[1], sys.argv[2:]
print("| phase | system | CPU us/op m1 / m2 / m3 | RSS MiB m1 / m2 / m3 |")
print("|---|---|---|---|")
rows = {}
for s in systems:
    try:
        rows[s] = [json.loads(l) for l in open(f"{out}/{s}.jsonl") if l.strip().startswith("{")]
    except FileNotFoundError:
        rows[s] = []
phases = [r["phase"] for r in rows.get(systems[-1], [])]
fmt = lambda x, d: "-" if x is None else f"{x:.{d}f}"
for ph in phases:
    for s in systems:
        for r in rows[s]:
            if r["phase"] != ph:
                continue
            m = r.get("members") or []
            cpu = " / ".join(fmt(x.get("cpu_us_per_op"), 2) for x in m)
            rss = " / ".join(fmt((x.get("rss_kb_max") or 0) / 1024, 1) for x in m)
            print(f"| {ph} | {s} | {cpu} | {rss} |")
PY
    cat <<EOF

### Failover and catch-up

On the same ensemble after the phases. **elect+sync**: from the SIGKILL of the leader until the
two survivors answer \`srvr\` as one leader and one follower; **write outage**: the longest gap
between acknowledged writes of a writer on each follower, across the kill (\`loadgen
failover\`, as in "Failover" below). **catch-up**: a follower is SIGKILLed, $CATCHUP_WRITES
setData (100 B) go through the other two members, then the follower is started again;
"serving" is the time from its start until it answers \`srvr\` as a follower, "caught up" until
its \`srvr\` Zxid reaches the last write's, after which a fresh session on it reads the last
write back (\`loadgen catchup\`). Milliseconds.

EOF
    python3 - "$OUT" $SYSTEMS <<'PY'
import json, sys
out, systems = sys.argv[1], sys.argv[2:]
def load(p):
    try:
        for l in open(p):
            if l.strip().startswith("{"):
                return json.loads(l)
    except FileNotFoundError:
        pass
    return {}
fmt = lambda x: "-" if x is None else f"{x:.0f}"
print("| system | elect+sync | write outage | missed writes | written at (/s) | serving | caught up | read back |")
print("|---|---|---|---|---|---|---|---|")
for s in systems:
    f, c = load(f"{out}/{s}-failover.json"), load(f"{out}/{s}-catchup.json")
    print(f"| {s} | {fmt(f.get('elect_ms'))} | {fmt(f.get('outage_ms'))} | {c.get('writes', '-')} | "
          f"{fmt(c.get('write_rate'))} | {fmt(c.get('serving_ms'))} | {fmt(c.get('caught_up_ms'))} | "
          f"{'yes' if c.get('read_ok') else 'no'} |")
PY
    cat <<EOF

### The echo floor

The same loadgen against its in-process echo server on CPU ${SERVER_CPU:-1}: the write phases
through 3 loopback hops (two relays, then the echo: six one-way crossings, as many as a write
sent to a follower makes: client, follower, leader, other follower, leader, follower, client),
the read phases through one.

EOF
    "$LOADGEN" report --a "$OUT/echo.jsonl" --a-label echo
    cat <<EOF

### Targets (issue #12)

EOF
    python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def rows(name):
    try:
        return {json.loads(l)["phase"]: json.loads(l) for l in open(f"{out}/{name}.jsonl") if l.strip().startswith("{")}
    except FileNotFoundError:
        return {}
def load(p):
    try:
        return json.loads(open(p).read().strip().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return {}
c, z, e = rows("corral"), rows("zookeeper"), rows("echo")
def lat(r, q):
    for op in ("getData", "setData", "create"):
        if op in r.get("latency_us", {}):
            return r["latency_us"][op].get(q)
print("| target | measured | met |")
print("|---|---|---|")
def line(what, value, ok):
    print(f"| {what} | {value} | {'yes' if ok else '**no**'} |")
for ph in ("setdata closed 64x1", "create-delete closed 64x1", "setdata closed 8x32"):
    if ph in c and ph in z and z[ph]["throughput"] > 0:
        r = c[ph]["throughput"] / z[ph]["throughput"]
        line(f"writes `{ph}`: >= 3x ZooKeeper's throughput", f"{r:.2f}x", r >= 3)
opens = [p for p in c if p.startswith("setdata open") and p in z]
for ph in opens:
    a, b = lat(c[ph], "p99"), lat(z[ph], "p99")
    if a and b:
        line(f"p99 setData at half ZooKeeper's saturation (`{ph}`): <= 1/3 of ZooKeeper's",
             f"{a:.0f} vs {b:.0f} us ({a / b:.2f})", a / b <= 1 / 3)
for ph in ("getdata closed 64x1", "getdata closed 16x32"):
    if ph in c and ph in z and z[ph]["throughput"] > 0:
        r = c[ph]["throughput"] / z[ph]["throughput"]
        cc, zc = c[ph].get("server_cpu_us_per_op"), z[ph].get("server_cpu_us_per_op")
        cr = cc / zc if cc and zc else None
        line(f"reads `{ph}`: >= ZooKeeper's throughput at <= 2/3 of its CPU per op",
             f"{r:.2f}x, CPU {cr:.3f}" if cr is not None else f"{r:.2f}x", r >= 1 and cr is not None and cr <= 2 / 3)
cc, zc = load(f"{out}/corral-catchup.json"), load(f"{out}/zookeeper-catchup.json")
if cc.get("caught_up_ms") and zc.get("caught_up_ms"):
    r = zc["caught_up_ms"] / cc["caught_up_ms"]
    line("catch-up of a restarted member: >= 3x faster", f"{cc['caught_up_ms']:.0f} vs {zc['caught_up_ms']:.0f} ms ({r:.1f}x)", r >= 3)
crss = max((m.get("rss_kb_max") or 0 for r in c.values() for m in r.get("members", [])), default=0)
zrss = max((m.get("rss_kb_max") or 0 for r in z.values() for m in r.get("members", [])), default=0)
if crss and zrss:
    line("RSS per member (largest over the run): <= 1/5 of ZooKeeper's",
         f"{crss / 1024:.0f} vs {zrss / 1024:.0f} MiB ({crss / zrss:.2f})", crss / zrss <= 0.2)
for ph in opens:
    if ph in e:
        for q in ("p99.9", "max"):
            a, b = lat(c[ph], q), lat(e[ph], q)
            if a and b:
                line(f"open-loop tail `{ph}` {q}: <= 1.2x the 3-hop echo floor's",
                     f"{a:.0f} vs {b:.0f} us ({a / b:.2f}x)", a / b <= 1.2)
PY
    cat <<EOF

### Plots

Drawn by \`loadgen plot\` from this run's JSON lines (SVG here, PNG beside each in
\`$PLOT_DIR/\`). Latency vs offered load comes from the sweep \`$SWEEP\`, run against each
system and the 3-hop echo floor.

EOF
    cat "$OUT/plots.md"
    cat <<EOF
Commands (raw results in \`$OUT\`):

\`\`\`
$(cat "$OUT/commands.txt")
\`\`\`
<!-- ensemble:end -->
EOF
} >"$OUT/ensemble.md"

if grep -q 'ensemble:begin' "$DOC"; then
    replace_section "$DOC" ensemble "$OUT/ensemble.md" ""
else
    # First run: the section goes before the notes (compare.sh keeps it from there on).
    {
        echo "## Ensemble: corral vs ZooKeeper, 3 members each"
        echo
        cat "$OUT/ensemble.md"
        echo
    } >"$OUT/section.md"
    awk -v f="$OUT/section.md" '/^## Notes/ && !done { while ((getline l < f) > 0) print l; done = 1 } { print }' \
        "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
    grep -q 'ensemble:begin' "$DOC" || { echo; cat "$OUT/section.md"; } >>"$DOC"
fi
log "wrote $DOC (raw results in $OUT)"
