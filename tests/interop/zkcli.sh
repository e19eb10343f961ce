#!/usr/bin/env bash
# zkcli.sh HOST:PORT[,HOST:PORT...]
#
# Drives Apache ZooKeeper's own CLI (`zkCli.sh -server HOST:PORT`, Debian
# package `zookeeper`) through a fixed transcript with up to three concurrent
# clients (A, B, C) and diffs the normalised transcript against
# expected/zkcli.txt, recorded from Apache ZooKeeper 3.8.0.
#
# The server must be FRESH (nothing has been written since it started: the
# first transaction it logs is client A's createSession, zxid 0x1) because the
# golden file pins exact zxids.  Set ZKCLI_RELATIVE_ZXIDS=1 to rebase zxids
# instead (so the script can run against a server that has seen traffic).
# The TTL/container part needs the server's container reaper to run every
# second (ZooKeeper: -Dznode.container.checkIntervalMs=1000).
#
# How the clients are driven: each zkCli runs non-interactively (no JLine)
# with stdin from a FIFO.  After every command the script sends the local
# command `printwatches`, which prints the marker line "printwatches is on"
# without talking to the server; the output between two markers is that
# command's output.  Asynchronous watch events are waited for explicitly and
# then recorded as "[X] <async>" chunks.
#
# ZKCLI_RECORD=1 rewrites expected/zkcli.txt instead of diffing (only do this
# against Apache ZooKeeper!).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 HOST:PORT[,HOST:PORT...]" >&2
    exit 2
fi
split_hostport "$1" || exit 2
SERVER="$1"
if [ "$ZK_MEMBERS" -gt 1 ]; then
    # An ensemble's zxids carry the leader's epoch in their high 32 bits (0x100000001, ...), so
    # they are compared relative to /shuihu's, as for a server that is not fresh.
    ZKCLI_RELATIVE_ZXIDS=1
fi
ZKCLI="${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}"
PY="${PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || PY=python3
EXPECTED="$INTEROP_DIR/expected/zkcli.txt"
[ -x "$ZKCLI" ] || { echo "zkcli: $ZKCLI not found (apt-get install zookeeper)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/zkcli-interop.XXXXXX)"
RAW="$WORK/transcript.raw"
: > "$RAW"
declare -A FD PID CONSUMED MARKS

cleanup() {
    local n
    for n in "${!PID[@]}"; do
        kill "${PID[$n]}" 2>/dev/null
    done
    wait 2>/dev/null
}
trap cleanup EXIT

die() {
    echo "zkcli: FAIL: $*"
    echo "---- raw transcript so far ----" >&2
    cat "$RAW" >&2
    for n in "${!PID[@]}"; do
        echo "---- unconsumed output of client $n ----" >&2
        tail -n +"$(( ${CONSUMED[$n]} + 1 ))" "$WORK/$n.out" >&2
    done
    echo "0 passed, 1 failed"
    exit 1
}

# wait_until SECONDS CMD... : polls CMD every 0.05 s
wait_until() {
    local secs="$1"; shift
    local i
    for ((i = 0; i < secs * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

marker_count() { grep -c -x 'printwatches is on' "$WORK/$1.out"; }
has_marks() { [ "$(marker_count "$1")" -ge "$2" ]; }
unconsumed_has() { tail -n +"$(( ${CONSUMED[$1]} + 1 ))" "$WORK/$1.out" | grep -q -F -- "$2"; }

# open NAME : start a zkCli, wait for SyncConnected
open_client() {
    local n="$1"
    mkfifo "$WORK/$n.in"
    : > "$WORK/$n.out"
    # TZ=UTC: zkCli prints ctime/mtime in the JVM's default time zone.
    TZ=UTC timeout 300 "$ZKCLI" -server "$SERVER" < "$WORK/$n.in" > "$WORK/$n.out" 2>&1 &
    PID[$n]=$!
    exec {fd}<>"$WORK/$n.in"
    FD[$n]=$fd
    CONSUMED[$n]=0
    MARKS[$n]=0
    wait_until 30 grep -q -F 'WatchedEvent state:SyncConnected type:None path:null' "$WORK/$n.out" \
        || die "client $n did not connect within 30 s"
    # discard the banner (it mentions the port and JLine availability)
    sync_client "$n" > /dev/null
    echo "[$n] connected" >> "$RAW"
}

# sync_client NAME : send the marker, wait for it, print the new output chunk
sync_client() {
    local n="$1" line
    echo "printwatches" >&"${FD[$n]}"
    MARKS[$n]=$(( ${MARKS[$n]} + 1 ))
    wait_until 60 has_marks "$n" "${MARKS[$n]}" || die "client $n did not answer within 60 s"
    line=$(grep -n -x 'printwatches is on' "$WORK/$n.out" | sed -n "${MARKS[$n]}p" | cut -d: -f1)
    if [ "$line" -gt $(( ${CONSUMED[$n]} + 1 )) ]; then
        sed -n "$(( ${CONSUMED[$n]} + 1 )),$(( line - 1 ))p" "$WORK/$n.out" | grep -v '^SLF4J:'
    fi
    CONSUMED[$n]=$line
}

# cmd NAME COMMAND... : run one command and record it with its output
cmd() {
    local n="$1"; shift
    echo "$*" >&"${FD[$n]}"
    echo "[$n] \$ $*" >> "$RAW"
    sync_client "$n" >> "$RAW"
}

# await NAME TEXT : wait (bounded) for asynchronous output, then record it
await() {
    local n="$1" text="$2"
    wait_until 20 unconsumed_has "$n" "$text" || die "client $n: no '$text' within 20 s"
    echo "[$n] <async>" >> "$RAW"
    sync_client "$n" >> "$RAW"
}

# quiet NAME : after a short pause the client must have printed nothing more
quiet() {
    local n="$1"
    sleep 1
    echo "[$n] <async, expecting nothing>" >> "$RAW"
    sync_client "$n" >> "$RAW"
}

# poll_gone NAME PATH SECONDS : wait until PATH no longer exists (not recorded)
poll_gone() {
    local n="$1" path="$2" secs="$3" i
    for ((i = 0; i < secs * 4; i++)); do
        echo "stat $path" >&"${FD[$n]}"
        sync_client "$n" > "$WORK/poll.out"
        if grep -q -x -F "Node does not exist: $path" "$WORK/poll.out"; then
            return 0
        fi
        sleep 0.25
    done
    die "$path was not reaped within $secs s"
}

# close NAME : quit the client and record what it prints on the way out
close_client() {
    local n="$1"
    echo "quit" >&"${FD[$n]}"
    echo "[$n] \$ quit" >> "$RAW"
    wait_until 30 eval '! kill -0 '"${PID[$n]}"' 2>/dev/null' || die "client $n did not exit after quit"
    wait "${PID[$n]}" 2>/dev/null
    tail -n +"$(( ${CONSUMED[$n]} + 1 ))" "$WORK/$n.out" | grep -v '^SLF4J:' >> "$RAW"
    local fd="${FD[$n]}"
    exec {fd}>&-
    unset "PID[$n]"
}

DIGEST_UP="u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ="   # base64(sha1("u:p"))

########################################################################
# the transcript
########################################################################
open_client A
cmd A ls /
cmd A ls -s /
cmd A create /shuihu '"shuihu"'
cmd A create /shuihu/liangshan '"liangshan"'
cmd A get -s /shuihu
cmd A create /shuihu '"again"'
cmd A create -s /shuihu/liangshan/guansheng '"g"'
cmd A create -s /shuihu/liangshan/chaijin '"c"'

open_client B
cmd B create -e /shuihu/liangshan/wuyong '"w"'
cmd B create -e -s /shuihu/liangshan/gongsun '"gs"'
cmd B get -s /shuihu/liangshan/wuyong
cmd A ls -s /shuihu/liangshan
cmd A get /shuihu/liangshan/guansheng0000000000
cmd A set /shuihu '"songjiang"'
cmd A set -s /shuihu/liangshan '"liangshan2"'
cmd A set -v 99 /shuihu '"x"'
cmd A set -v 1 /shuihu '"songjiang2"'
cmd A stat /shuihu
cmd A delete /shuihu
cmd A get /nope
cmd A create /nope/child '"x"'
cmd A create /shuihu/tmp '"t"'
cmd A delete -v 5 /shuihu/tmp
cmd A delete /shuihu/tmp
cmd A stat /shuihu/tmp

# data watch: fires exactly once
cmd A get -w /shuihu
cmd B set /shuihu '"mingzhu"'
await A 'type:NodeDataChanged path:/shuihu'
cmd B set /shuihu '"mingzhu2"'
quiet A
# child watch
cmd A ls -w /shuihu/liangshan
cmd B create /shuihu/liangshan/likui '"lk"'
await A 'type:NodeChildrenChanged path:/shuihu/liangshan'
cmd B create /shuihu/liangshan/lujunyi '"lj"'
quiet A
# exists watch (NodeCreated) and data watch on delete (NodeDeleted)
cmd A stat -w /shuihu/later
cmd B create /shuihu/later '"l"'
await A 'type:NodeCreated path:/shuihu/later'
cmd A get -w /shuihu/later
cmd B delete /shuihu/later
await A 'type:NodeDeleted path:/shuihu/later'

# ephemerals vanish when their owner quits
cmd A ls /shuihu/liangshan
close_client B
cmd A ls /shuihu/liangshan
cmd A stat /shuihu/liangshan

# ACLs
cmd A create /shuihu/secret '"s"'
cmd A addauth digest u:p
cmd A setAcl /shuihu/secret auth::cdrwa
cmd A getAcl /shuihu/secret
cmd A get -s /shuihu/secret
cmd A create /shuihu/readonly '"r"' "digest:$DIGEST_UP:r"
cmd A getAcl -s /shuihu/readonly
open_client C
cmd C get /shuihu/secret
cmd C set /shuihu/secret '"x"'
cmd C getAcl /shuihu/secret
cmd C create /shuihu/secret/child '"x"'
cmd C get /shuihu/readonly
cmd C addauth digest u:wrong
cmd C get /shuihu/secret
cmd C addauth digest u:p
cmd C get /shuihu/secret
cmd C set /shuihu/readonly '"x"'
cmd C get /shuihu/readonly
close_client C
cmd A setAcl /shuihu/secret world:anyone:cdrwa
cmd A getAcl /shuihu/secret

# recursive listing and deleteall
cmd A ls -R /shuihu
cmd A deleteall /shuihu
cmd A ls /
cmd A ls -s /

# TTL nodes (extendedTypesEnabled) and containers, reaped by the container
# manager (checkIntervalMs=1000).  The reaper's deletes are transactions, so
# everything recorded after it runs is recorded only once it has run.
# /ttlparent gets 5 s so that its child is surely created before it expires;
# /ttl (1 s) is not stat'ed right after its creation, since under load the
# reaper could already have taken it (its stat would show nothing new anyway:
# a TTL node reports ephemeralOwner 0x0, checked on /ttlparent).
cmd A create -t 5000 /ttlparent '"p"'
cmd A create /ttlparent/child '"c"'
cmd A create -t 1000 /ttl '"t"'
cmd A create -c /container '"k"'
cmd A create /container/child '"c"'
cmd A stat /container
poll_gone A /ttl 15
cmd A stat /ttl
cmd A stat /ttlparent
cmd A delete /container/child
poll_gone A /container 15
cmd A stat /container
cmd A delete /ttlparent/child
poll_gone A /ttlparent 15
cmd A stat /ttlparent
cmd A ls -s /

# Watch events need READ on the node (CVE-2024-23944, fixed in ZooKeeper 3.9.2
# and 3.8.4; Debian's 3.8.0-11+deb12u2 carries the fix): D, without
# credentials, watches everything recursively and must hear of /pub only, not
# of the digest-protected /hr and /hr/lisi; E, authenticated, hears of all.
# A (authenticated since the ACL part) makes the changes, so no watcher's
# events interleave with its own command output.  /pub comes last: a client's
# events arrive in order, so once /pub is printed nothing else is pending.
open_client D
cmd D addWatch -m PERSISTENT_RECURSIVE /
open_client E
cmd E addauth digest u:p
cmd E addWatch -m PERSISTENT_RECURSIVE /
cmd A create /hr '"hr"' "digest:$DIGEST_UP:cdrwa"
cmd A create /hr/lisi '"l"' "digest:$DIGEST_UP:cdrwa"
cmd A set /hr/lisi '"l2"'
cmd A delete /hr/lisi
cmd A create /pub '"p"'
await E 'type:NodeCreated path:/pub'
await D 'type:NodeCreated path:/pub'
cmd D ls /hr
close_client D
close_client E
cmd A delete /hr
cmd A delete /pub
close_client A

########################################################################
# compare
########################################################################
NORM_ARGS=()
EXPECTED_ARGS=()
if [ "${ZKCLI_RELATIVE_ZXIDS:-0}" = 1 ]; then
    # the first create (/shuihu) is 0x2 on a fresh server
    first=$(awk '/^\[A\] \$ get -s \/shuihu$/{f=1;next} f&&/^cZxid = /{print $3; exit}' "$RAW")
    NORM_ARGS=(--relative "$(( first - 2 ))")
    EXPECTED_ARGS=(--relative 0)
fi
# The golden file goes through the same normaliser (what it drops, it drops from both sides).
if [ -r "$EXPECTED" ]; then
    "$PY" "$INTEROP_DIR/normalize_zkcli.py" "${EXPECTED_ARGS[@]}" < "$EXPECTED" > "$WORK/expected.txt" || die "normaliser failed"
fi
"$PY" "$INTEROP_DIR/normalize_zkcli.py" "${NORM_ARGS[@]}" < "$RAW" > "$WORK/transcript.txt" || die "normaliser failed"

if [ "${ZKCLI_RECORD:-0}" = 1 ]; then
    cp "$WORK/transcript.txt" "$EXPECTED"
    echo "zkcli: recorded $EXPECTED ($(wc -l < "$EXPECTED") lines)"
    exit 0
fi
if diff -u "$WORK/expected.txt" "$WORK/transcript.txt"; then
    echo "zkcli: PASS ($(grep -c '^\[.\] \$' "$WORK/transcript.txt") commands match expected/zkcli.txt)"
    echo "1 passed, 0 failed"
    rm -rf "$WORK"
    exit 0
else
    echo "zkcli: FAIL: transcript differs from expected/zkcli.txt (diff above; '-' expected, '+' actual); raw transcript in $WORK"
    if [ "${ZKCLI_RELATIVE_ZXIDS:-0}" != 1 ] && ! grep -q -x 'cZxid = 0x2' "$WORK/transcript.txt"; then
        echo "zkcli: hint: /shuihu's cZxid is not 0x2, so the server was probably not fresh (restart it, or set ZKCLI_RELATIVE_ZXIDS=1)"
    fi
    echo "0 passed, 1 failed"
    exit 1
fi
