#!/usr/bin/env bash
# ensemble.sh start corral|zookeeper DIR [CORRAL_BINARY]
# ensemble.sh stop DIR
# ensemble.sh restart DIR I
#
# A 3-member pseudo-cluster on loopback for the interop suites: sids 100, 101, 102, free ports
# (client, quorum, election per member), member i in DIR/m<i>/ (zoo.cfg, data/ with myid, log,
# pid), tickTime=2000, 4lw.commands.whitelist=*, TTL nodes, container/TTL reaper every second
# (like start_zookeeper.sh's standalone reference). `start` wipes DIR, starts the members, waits
# (<= 60 s) until `srvr` reports exactly one `Mode: leader` and two `Mode: follower`, and prints
# the full connect string "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3" (also in DIR/connect).
# `stop` SIGTERMs every member still running, SIGKILLs after 10 s. The members run in their own
# sessions (setsid), so stop them with `stop` (run_ensemble.sh traps it on every exit).
#
# `zookeeper` starts Apache ZooKeeper 3.8 (Debian's jar, QuorumPeerMain) the same way, for
# validating the ensemble transcripts against the reference.
#
# ENSEMBLE_CFG="key=value ..." adds zoo.cfg keys to every member (e.g. localSessionsEnabled=true).
# Keys that ZooKeeper reads only as JVM system properties (readonlymode.enabled) are passed to it
# as -Dkey=value instead; corral reads them all from zoo.cfg.
# ensemble.sh restart DIR I starts member I (0..2) again, as `start` did (same zoo.cfg and data),
# after a test killed it; it does not wait for anything.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

stop_members() {
    local dir="$1" f pid pids=()
    for f in "$dir"/m*/pid; do
        [ -f "$f" ] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            pids+=("$pid")
        fi
        rm -f "$f"
    done
    local i
    for ((i = 0; i < 100; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    return 0
}

# modes DIR : prints each member's Mode (or "-" when it does not serve), one per line
modes() {
    local dir="$1" port
    for port in $(cat "$dir/ports"); do
        local m
        m="$(four_letter 127.0.0.1 "$port" srvr | sed -n 's/^Mode: //p')"
        echo "${m:--}"
    done
}

# launch_member I : starts member I of $DIR as $KIND (setsid, its own log appended), records its pid
launch_member() {
    local M="$DIR/m$1" cp="$ZK_JAR"
    [ -r /usr/share/java/slf4j-simple.jar ] && cp="$cp:/usr/share/java/slf4j-simple.jar"
    if [ "$KIND" = corral ]; then
        setsid "$BIN" --config "$M/zoo.cfg" >> "$M/log" 2>&1 < /dev/null &
    else
        setsid java -Xmx256m -Dzookeeper.log.dir="$M" -Dznode.container.checkIntervalMs=1000 \
            ${JVM_PROPS[@]+"${JVM_PROPS[@]}"} \
            -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Dorg.slf4j.simpleLogger.showDateTime=true \
            -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$M/zoo.cfg" \
            >> "$M/log" 2>&1 < /dev/null &
    fi
    echo $! > "$M/pid"
}

case "${1:-}" in
    stop)
        [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
        stop_members "$2"
        exit 0 ;;
    restart)
        [ $# -eq 3 ] || { echo "usage: $0 restart DIR I" >&2; exit 2; }
        DIR="$(cd "$2" && pwd)"; I="$3"
        KIND="$(cat "$DIR/kind")"; BIN="$(cat "$DIR/bin")"
        read -r -a JVM_PROPS <<<"$(cat "$DIR/jvm_props")"
        if pid="$(cat "$DIR/m$I/pid" 2>/dev/null)" && kill -0 "$pid" 2>/dev/null; then
            echo "member m$I (pid $pid) is still running" >&2
            exit 1
        fi
        launch_member "$I"
        exit 0 ;;
    start)
        [ $# -ge 3 ] || { echo "usage: $0 start corral|zookeeper DIR [CORRAL_BINARY]" >&2; exit 2; }
        KIND="$2"; DIR="$3"; BIN="${4:-$REPO_ROOT/target/debug/corral}" ;;
    *)
        echo "usage: $0 start corral|zookeeper DIR [CORRAL_BINARY] | stop DIR | restart DIR I" >&2
        exit 2 ;;
esac

case "$KIND" in
    corral) [ -x "$BIN" ] || { echo "no corral binary at $BIN" >&2; exit 1; } ;;
    zookeeper) [ -r "$ZK_JAR" ] || { echo "$ZK_JAR missing: apt-get install zookeeper" >&2; exit 1; } ;;
    *) echo "unknown kind '$KIND' (corral or zookeeper)" >&2; exit 2 ;;
esac

stop_members "$DIR" 2>/dev/null
rm -rf "$DIR"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

# nine distinct free ports, chosen while all are bound so that none repeats
read -r -a P <<<"$(python3 -c '
import socket
ss = [socket.socket() for _ in range(9)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
SERVERS=""
for i in 0 1 2; do
    SERVERS+="server.$((100 + i))=127.0.0.1:${P[$((3 + i))]}:${P[$((6 + i))]};127.0.0.1:${P[$i]}"$'\n'
done
echo "${P[0]} ${P[1]} ${P[2]}" > "$DIR/ports"
echo "127.0.0.1:${P[0]},127.0.0.1:${P[1]},127.0.0.1:${P[2]}" > "$DIR/connect"

# extra keys: zoo.cfg lines, or -D properties for ZooKeeper's system-property-only keys
EXTRA_CFG=""
JVM_PROPS=()
for kv in ${ENSEMBLE_CFG:-}; do
    case "$kv" in
        *=*) ;;
        *) echo "ENSEMBLE_CFG: expected key=value, got '$kv'" >&2; exit 2 ;;
    esac
    if [ "$KIND" = zookeeper ] && [ "${kv%%=*}" = readonlymode.enabled ]; then
        JVM_PROPS+=("-D$kv")
    else
        EXTRA_CFG+="$kv"$'\n'
    fi
done
echo "$KIND" > "$DIR/kind"
echo "$BIN" > "$DIR/bin"
echo "${JVM_PROPS[*]+${JVM_PROPS[*]}}" > "$DIR/jvm_props"
for i in 0 1 2; do
    M="$DIR/m$i"
    mkdir -p "$M/data"
    echo $((100 + i)) > "$M/data/myid"
    cat > "$M/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$M/data
clientPort=${P[$i]}
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
extendedTypesEnabled=true
${EXTRA_CFG}${SERVERS}
CFG
    [ "$KIND" = corral ] && echo "znode.container.checkIntervalMs=1000" >> "$M/zoo.cfg"
    : > "$M/log"
    launch_member "$i"
done

for ((t = 0; t < 120; t++)); do
    for i in 0 1 2; do
        if ! kill -0 "$(cat "$DIR/m$i/pid")" 2>/dev/null; then
            echo "member m$i (sid $((100 + i))) exited during startup; its log:" >&2
            tail -n 30 "$DIR/m$i/log" >&2
            stop_members "$DIR"
            exit 1
        fi
    done
    got="$(modes "$DIR" | sort | tr '\n' ' ')"
    if [ "$got" = "follower follower leader " ]; then
        cat "$DIR/connect"
        exit 0
    fi
    sleep 0.5
done
echo "no leader and two followers within 60 s (modes: $got); stopping the members" >&2
for i in 0 1 2; do echo "--- m$i log" >&2; tail -n 15 "$DIR/m$i/log" >&2; done
stop_members "$DIR"
exit 1
