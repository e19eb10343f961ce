#!/usr/bin/env bash
# cli_diff.sh HOST:PORT [CORRAL_BINARY]
#
# Runs one command script through Apache ZooKeeper's zkCli.sh and through `corral cli` (default
# target/debug/corral), one after the other against the same live server, normalises what
# legitimately differs between two runs (dates, zxids, session ids, the client's logging and its
# asynchronous watch-event lines) and diffs the two transcripts, stdout and stderr together.
# The script works under its own /clidiff znode and removes it (and its quota nodes) at the end,
# so the second run starts from the state the first started from. Also checks that a one-shot
# command (`cli -server ... cmd args`) prints and exits as zkCli's does.
#
# Last line: "N passed, N failed"; exit status 0 only if nothing failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

if [ $# -lt 1 ]; then
    echo "usage: $0 HOST:PORT [CORRAL_BINARY]" >&2
    exit 2
fi
split_hostport "$1" || exit 2
SERVER="$1"
BIN="${2:-$REPO_ROOT/target/debug/corral}"
ZKCLI="${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}"
[ -x "$ZKCLI" ] || { echo "cli_diff: $ZKCLI not found (apt-get install zookeeper)"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || { echo "cli_diff: $BIN not found (cargo build)"; echo "0 passed, 1 failed"; exit 1; }
export TZ=UTC

WORK="$(mktemp -d /tmp/cli-diff.XXXXXX)"
trap '[ -n "${CLI_DIFF_KEEP:-}" ] || rm -rf "$WORK"' EXIT

cat > "$WORK/script" <<CMDS
create /clidiff
create /clidiff/a hello
create -s /clidiff/seq- one
create -s /clidiff/seq- two
create -e /clidiff/eph
create -es /clidiff/eseq-
create -c /clidiff/ctr
create -t 60000 /clidiff/ttl
create /clidiff/a again
create /clidiff/missing/child
create clidiff
create /clidiff/
create /clidiff//x
create -c -e /clidiff/x
create -t abc /clidiff/x
create -t 0 /clidiff/x
create -e -t 10 /clidiff/x
create -x /clidiff/x
create /clidiff/eph/child
create /clidiff/acl1 data bogus
create /clidiff/q "quoted data"
ls /clidiff
ls -s /clidiff/a
ls -R /clidiff
ls
ls /nope-clidiff
ls /clidiff/
ls -R /nope-clidiff
get /clidiff/a
get -s /clidiff/a
get /clidiff/ctr
get /clidiff/nope
get /clidiff/q
get 'clidiff'
set /clidiff/a world
set -s /clidiff/a again
set -v 99 /clidiff/a x
set -v 2 /clidiff/a v3
set /clidiff/a
set -v /clidiff/a x
stat /clidiff/a
stat /clidiff/nope
getAcl /clidiff/a
getAcl -s /clidiff/a
getAcl /clidiff/nope
setAcl /clidiff/a world:anyone:r
getAcl /clidiff/a
set /clidiff/a denied
setAcl /clidiff/a world:anyone:cdrwa
setAcl -s -v 5 /clidiff/a world:anyone:cdrwa
setAcl /clidiff/a bogus
setAcl /clidiff/nope world:anyone:r
addauth digest user:pass
create /clidiff/auth x auth::cdrwa
getAcl /clidiff/auth
create /clidiff/acl2 x digest:someone:hash:rw,world:anyone:r
getAcl /clidiff/acl2
setAcl -R /clidiff/q world:anyone:cdrwa
whoami
sync /clidiff
getEphemerals /clidiff
getEphemerals /nothing-here
getAllChildrenNumber /clidiff
getAllChildrenNumber /clidiff/nope
getAllChildrenNumber
setquota -n 10 /clidiff/a
listquota /clidiff/a
setquota -b 100 /clidiff/a
listquota /clidiff/a
setquota -n 5 /clidiff
setquota -n 5 /clidiff/a/b
setquota /clidiff/a
setquota -n 1 -b 2 /clidiff/a
setquota -n 0 /clidiff/a
setquota -b -1 /clidiff/a
setquota -n x /clidiff/a
setquota -n 3 /zookeeper/quota/x
delquota -n /clidiff/a
listquota /clidiff/a
delquota /clidiff/a
listquota /clidiff/a
delquota /clidiff/a
listquota /nope-clidiff
delete /clidiff/a/nope
delete -v 7 /clidiff/q
delete /clidiff
delete /clidiff/q
printwatches
printwatches off
printwatches
printwatches on
foo
history
redo 3
redo 999
deleteall /clidiff/nope
deleteall /clidiff -b 2
ls /clidiff
ls /zookeeper/quota
close
ls /
connect $SERVER
ls /clidiff
quit
CMDS

normalise() {
    python3 -c '
import re, sys
sessions = {}
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("SLF4J:") or line in ("", "WATCHER::") or line.startswith("WatchedEvent "):
        continue
    line = re.sub(r"^(ctime|mtime) = .*", r"\1 = <TIME>", line)
    line = re.sub(r"^(cZxid|mZxid|pZxid) = 0x[0-9a-f]+$", r"\1 = <ZXID>", line)
    m = re.match(r"^ephemeralOwner = (0x[0-9a-f]+)$", line)
    if m and m.group(1) != "0x0":
        line = "ephemeralOwner = <SESSION-%d>" % sessions.setdefault(m.group(1), len(sessions) + 1)
    print(line)
'
}

PASS=0
FAIL=0
check() { # NAME EXPECTED-FILE ACTUAL-FILE
    if diff -u "$2" "$3" > "$WORK/$1.diff"; then
        echo "cli_diff: $1: ok"
        PASS=$((PASS + 1))
    else
        echo "cli_diff: $1: FAIL (< zkCli.sh, > corral cli)"
        cat "$WORK/$1.diff"
        FAIL=$((FAIL + 1))
    fi
}

# Leftovers of an interrupted earlier run would make the two runs start differently.
clean() {
    timeout 60 "$BIN" cli -server "$SERVER" deleteall /clidiff > /dev/null 2>&1
    timeout 60 "$BIN" cli -server "$SERVER" deleteall /zookeeper/quota/clidiff > /dev/null 2>&1
}
clean
timeout 120 "$ZKCLI" -server "$SERVER" < "$WORK/script" > "$WORK/zkcli.raw" 2>&1
echo "exit $?" >> "$WORK/zkcli.raw"
clean
timeout 120 "$BIN" cli -server "$SERVER" < "$WORK/script" > "$WORK/corral.raw" 2>&1
echo "exit $?" >> "$WORK/corral.raw"
normalise < "$WORK/zkcli.raw" > "$WORK/zkcli.txt"
normalise < "$WORK/corral.raw" > "$WORK/corral.txt"
check script "$WORK/zkcli.txt" "$WORK/corral.txt"

# One command from the command line: its output and exit status (zkCli's event lines are
# printed by another thread and dropped by the normaliser).
one_shot() { # NAME ARGS...
    local name="$1"; shift
    timeout 60 "$ZKCLI" -server "$SERVER" "$@" > "$WORK/$name.zk.raw" 2>&1
    echo "exit $?" >> "$WORK/$name.zk.raw"
    timeout 60 "$BIN" cli -server "$SERVER" "$@" > "$WORK/$name.corral.raw" 2>&1
    echo "exit $?" >> "$WORK/$name.corral.raw"
    normalise < "$WORK/$name.zk.raw" > "$WORK/$name.zk.txt"
    normalise < "$WORK/$name.corral.raw" > "$WORK/$name.corral.txt"
    check "$name" "$WORK/$name.zk.txt" "$WORK/$name.corral.txt"
}
one_shot oneshot-ls ls /zookeeper
one_shot oneshot-stat stat /zookeeper
one_shot oneshot-nonode get /nope-clidiff
one_shot oneshot-usage ls
one_shot oneshot-badopt ls -x /
one_shot oneshot-unknown frobnicate /

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
