#!/usr/bin/env bash
# cli_mt.sh HOST:PORT[,HOST:PORT...]
#
# Drives the Apache ZooKeeper C client's shell `cli_mt` (Debian package
# zookeeper-bin, /usr/lib/zookeeper/bin/cli_mt; linked against
# libzookeeper-mt2) against the server.
#
# Part 1 (golden): one `cli_mt -h HOST:PORT -c CMD` per command (batch mode:
#   connect, run the command, wait for its completion, close the session)
#   through create/create2 (plain, +s, +e, +es, +t=ttl), get, set, ls, ls2,
#   delete, sync and their error codes; the normalised transcript must equal
#   expected/cli_mt.txt, recorded from Apache ZooKeeper 3.8.0.
# Part 2 (watches): one long-lived interactive cli_mt (stdin from a FIFO) sets
#   watches with get/ls/wexists/exists while batch clients change the nodes;
#   each of CHANGED/CHILD/CREATED/DELETED must be printed exactly once.
#
# CLI_MT_RECORD=1 rewrites the golden file (only against Apache ZooKeeper!).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ]; then
    echo "usage: $0 HOST:PORT[,HOST:PORT...]" >&2
    exit 2
fi
split_hostport "$1" || exit 2
SERVER="$1"
CLI_MT="${CLI_MT:-/usr/lib/zookeeper/bin/cli_mt}"
PY="${PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || PY=python3
EXPECTED="$INTEROP_DIR/expected/cli_mt.txt"
[ -x "$CLI_MT" ] || { echo "cli_mt: $CLI_MT not found (apt-get install zookeeper-bin)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/cli_mt-interop.XXXXXX)"
RAW="$WORK/transcript.raw"
: > "$RAW"
T=/climt_test
FAIL=0
BATCH_OK=0
WATCH_OK=0
IPID=""
cleanup() { [ -n "$IPID" ] && kill "$IPID" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

# batch CMD : run one command in its own session, record its output
batch() {
    echo "=== $*" >> "$RAW"
    TZ=UTC timeout 20 "$CLI_MT" -h "$SERVER" -c "$*" > "$WORK/one.out" 2>&1
    local rc=$?
    grep -v '^Batch mode: ' "$WORK/one.out" >> "$RAW"
    if [ "$rc" != 0 ]; then
        echo "(exit status $rc)" >> "$RAW"
    fi
    if [ "$rc" = 124 ]; then
        # no answer within 20 s: fail fast instead of timing out every command
        echo "cli_mt: FAIL: 'cli_mt -c \"$*\"' got no answer within 20 s; output:"
        cat "$WORK/one.out"
        echo "0 passed, 2 failed"
        exit 1
    fi
}

# quiet_batch CMD : same, not recorded (setup/cleanup)
quiet_batch() {
    TZ=UTC timeout 20 "$CLI_MT" -h "$SERVER" -c "$*" > /dev/null 2>&1
    if [ $? = 124 ]; then
        echo "cli_mt: FAIL: 'cli_mt -c \"$*\"' got no answer within 20 s"
        echo "0 passed, 2 failed"
        exit 1
    fi
}

# leftovers from an interrupted run (children first)
for p in $T/w/kid $T/w/later $T/w $T/e $T/c2 $T/s-0000000001 $T/s-0000000002 $T/ttl $T; do
    quiet_batch "delete $p"
done

########################################################################
# part 1: golden transcript
########################################################################
batch "create $T"
batch "create $T"
batch "create2 $T/c2"
batch "get $T"
batch "set $T hello"
batch "get $T"
batch "create +s $T/s-"
batch "create +s $T/s-"
batch "create +e $T/e"
batch "ls $T"
batch "create2 +es $T/es-"
batch "ls2 $T"
batch "create2 +t=60000 $T/ttl"
batch "delete $T"
batch "delete $T/nope"
batch "get $T/nope"
batch "set $T/nope x"
batch "create $T/nope/child"
batch "sync $T"
batch "create $T/e"
batch "delete $T/e"
batch "delete $T/ttl"
batch "delete $T/c2"
batch "delete $T/s-0000000001"
batch "delete $T/s-0000000002"
batch "ls2 $T"

"$PY" "$INTEROP_DIR/normalize_cli_mt.py" < "$RAW" > "$WORK/transcript.txt"
if [ "${CLI_MT_RECORD:-0}" = 1 ]; then
    cp "$WORK/transcript.txt" "$EXPECTED"
    echo "cli_mt: recorded $EXPECTED ($(wc -l < "$EXPECTED") lines)"
    BATCH_OK=1
elif diff -u "$EXPECTED" "$WORK/transcript.txt"; then
    echo "cli_mt: PASS batch transcript ($(grep -c '^===' "$WORK/transcript.txt") commands match expected/cli_mt.txt)"
    BATCH_OK=1
else
    echo "cli_mt: FAIL batch transcript differs from expected/cli_mt.txt (diff above; '-' expected, '+' actual)"
    FAIL=1
fi

########################################################################
# part 2: watches in a long-lived interactive client
########################################################################
OUT="$WORK/interactive.out"
mkfifo "$WORK/in"
: > "$OUT"
TZ=UTC timeout 120 "$CLI_MT" -h "$SERVER" < "$WORK/in" > "$OUT" 2>&1 &
IPID=$!
exec {IFD}<>"$WORK/in"

wait_out() {  # wait_out TEXT COUNT : until TEXT occurs COUNT times
    local i
    for ((i = 0; i < 200; i++)); do
        [ "$(grep -c -F -x -- "$1" "$OUT")" -ge "$2" ] && return 0
        sleep 0.05
    done
    echo "cli_mt: FAIL waiting for '$1' (x$2) in the interactive client" >&2
    cat "$OUT" >&2
    FAIL=1
    return 1
}
send() { echo "$*" >&"$IFD"; }

watch_part() {
    wait_out "Watcher SESSION_EVENT state = CONNECTED_STATE" 1 || return
    # data watch (get) -> CHANGED
    send "get $T/w"
    wait_out "$T/w: rc = 0" 1 || return
    quiet_batch "set $T/w changed"
    wait_out "Watcher CHANGED_EVENT state = CONNECTED_STATE for path $T/w" 1 || return
    # child watch (ls) -> CHILD
    send "ls $T/w"
    wait_out "$T/w: rc = 0" 2 || return
    quiet_batch "create $T/w/kid"
    wait_out "Watcher CHILD_EVENT state = CONNECTED_STATE for path $T/w" 1 || return
    # exists watch on a missing node (wexists: own watcher fn) -> CREATED
    send "wexists $T/w/later"
    wait_out "Error -101 for $T/w/later" 1 || return
    quiet_batch "create $T/w/later"
    wait_out "Watcher CREATED_EVENT state = CONNECTED_STATE for path $T/w/later" 1 || return
    # exists watch on an existing node -> DELETED
    send "exists $T/w/later"
    send "myid"
    for ((i = 0; i < 100; i++)); do grep -q '^session Id = ' "$OUT" && break; sleep 0.05; done
    quiet_batch "delete $T/w/later"
    wait_out "Watcher DELETED_EVENT state = CONNECTED_STATE for path $T/w/later" 1 || return
    # one-shot: more changes must not print anything else
    quiet_batch "set $T/w again"
    quiet_batch "delete $T/w/kid"
    sleep 1
    send "quit"
    for ((i = 0; i < 100; i++)); do kill -0 "$IPID" 2>/dev/null || break; sleep 0.05; done
}

quiet_batch "create $T/w"
watch_part
exec {IFD}>&-
wait "$IPID" 2>/dev/null
IPID=""
if [ "$FAIL" = 0 ] || [ -s "$OUT" ]; then
    ok=1
    for ev in "CHANGED_EVENT state = CONNECTED_STATE for path $T/w" \
              "CHILD_EVENT state = CONNECTED_STATE for path $T/w" \
              "CREATED_EVENT state = CONNECTED_STATE for path $T/w/later" \
              "DELETED_EVENT state = CONNECTED_STATE for path $T/w/later"; do
        n=$(grep -c -F -x "Watcher $ev" "$OUT")
        if [ "$n" != 1 ]; then
            echo "cli_mt: FAIL 'Watcher $ev' printed $n times (expected exactly once)"
            ok=0
        fi
    done
    n=$(grep -c '^Watcher ' "$OUT")
    if [ "$n" != 5 ]; then
        echo "cli_mt: FAIL $n watcher lines in the interactive client, expected 5 (connect + 4 events):"
        grep '^Watcher ' "$OUT"
        ok=0
    fi
    if [ "$ok" = 1 ]; then
        echo "cli_mt: PASS watches (CHANGED, CHILD, CREATED, DELETED each exactly once)"
        WATCH_OK=1
    else
        FAIL=1
        echo "---- interactive client output ----"; cat "$OUT"
    fi
fi
quiet_batch "delete $T/w/kid"
quiet_batch "delete $T/w"
quiet_batch "delete $T"

PASSED=$(( BATCH_OK + WATCH_OK ))
if [ "$FAIL" = 0 ] && [ "$PASSED" = 2 ]; then
    rm -rf "$WORK"
    echo "cli_mt: PASS"
    echo "2 passed, 0 failed"
    exit 0
fi
echo "cli_mt: FAIL (work files in $WORK)"
echo "$PASSED passed, $(( 2 - PASSED )) failed"
exit 1
