# Sourced by failover.sh and ensemble.sh (both cd to the repo root first): 3-member
# pseudo-clusters of corral or Apache ZooKeeper 3.8 on loopback, pinned (the machine-stall
# probe and replace_section are in tools.sh). The caller sets OUT, TARGET, SERVER_CPU and
# LOADGEN_CPU (empty: no pinning) first.
#
# start_ensemble SYS DIR BASE [EXTRA_CFG]: three members in DIR/m{1,2,3} (sids 1..3, client ports
# BASE..BASE+2, quorum ports BASE+3..BASE+5, election ports BASE+6..BASE+8; tickTime=2000,
# initLimit=10, syncLimit=5, forceSync=yes, every member on CPU $SERVER_CPU; ZooKeeper with
# -Xmx$ZK_HEAP, 512m unless set), waits until each
# serves. Sets MEMBERS (client addresses, comma separated), MEMBER_PIDS (appended, for
# stop_members), ENSEMBLE_PIDS (this ensemble's, in sid order), and writes DIR/m<sid>/start.sh,
# the member's command line (restart_member reruns it); MEMBER_CMDS holds the three commands.

# shellcheck source=loadgen/wait_port.sh
. loadgen/wait_port.sh

# shellcheck source=loadgen/tools.sh
. loadgen/tools.sh

CORRAL=$TARGET/release/corral
LOADGEN=$TARGET/release/loadgen
pin() { if [ -n "$1" ]; then echo "taskset -c $1"; fi; }
SERVER_PIN=$(pin "$SERVER_CPU")
LOADGEN_PIN=$(pin "$LOADGEN_CPU")
if [ -n "$SERVER_CPU" ]; then PINNING="all three members on CPU $SERVER_CPU"; else PINNING="members not pinned"; fi
if [ -n "$LOADGEN_CPU" ]; then PINNING+=", the loadgen on CPU $LOADGEN_CPU"; else PINNING+=", the loadgen not pinned"; fi

MEMBER_PIDS=()
stop_members() {
    local p
    for p in "${MEMBER_PIDS[@]:-}"; do
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
    done
    for p in "${MEMBER_PIDS[@]:-}"; do
        [ -n "$p" ] && { wait "$p" 2>/dev/null || true; }
    done
    MEMBER_PIDS=()
    true
}

start_ensemble() {
    local sys=$1 top=$2 base=$3 extra=${4:-} i dir cmd servers=""
    for i in 1 2 3; do
        servers="${servers}server.$i=127.0.0.1:$((base + 2 + i)):$((base + 5 + i))
"
    done
    MEMBERS=""
    MEMBER_CMDS=()
    ENSEMBLE_PIDS=()
    for i in 1 2 3; do
        dir=$top/m$i
        rm -rf "$dir"
        mkdir -p "$dir/data"
        echo "$i" >"$dir/data/myid"
        cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$((base + i - 1))
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=yes
4lw.commands.whitelist=*
$servers$extra
CFG
        if [ "$sys" = zookeeper ]; then
            echo "admin.enableServer=false" >>"$dir/zoo.cfg"
            cmd="$SERVER_PIN java -Xmx${ZK_HEAP:-512m} -Dzookeeper.log.dir=$dir -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp $ZK_CP org.apache.zookeeper.server.quorum.QuorumPeerMain $dir/zoo.cfg"
        else
            cmd="$SERVER_PIN $CORRAL --config $dir/zoo.cfg"
        fi
        MEMBER_CMDS+=("$cmd")
        printf '#!/bin/sh\nexport CORRAL_LOG="${CORRAL_LOG:-warn}"\nexec %s >>%s 2>&1 </dev/null\n' "$cmd" "$dir/server.log" >"$dir/start.sh"
        sh "$dir/start.sh" &
        MEMBER_PIDS+=($!)
        ENSEMBLE_PIDS+=($!)
        MEMBERS="$MEMBERS${MEMBERS:+,}127.0.0.1:$((base + i - 1))"
    done
    for i in 1 2 3; do wait_port $((base + i - 1)); done
}


