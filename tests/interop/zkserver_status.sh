#!/usr/bin/env bash
# zkserver_status.sh HOST:PORT[,HOST:PORT...]
#
# Apache ZooKeeper's own `zkServer.sh status` (Debian package `zookeeper`) against each member:
# it reads clientPortAddress/clientPort from a zoo.cfg, sends `srvr` with the default
# four-letter-word whitelist and greps `Mode:`. It must exit 0 for every member and print
# `Mode: standalone` for a single server; for an ensemble (a connect string of several members)
# `Mode: leader` for exactly one member and `Mode: follower` for the others. One check per member.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -ne 1 ]; then
    echo "usage: $0 HOST:PORT[,HOST:PORT...]" >&2
    exit 2
fi
split_hostport "$1" || exit 2
ZKSERVER=/usr/share/zookeeper/bin/zkServer.sh
WORK="$(mktemp -d /tmp/zkserver-status.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
IFS=, read -r -a MEMBERS <<<"$1"
PASS=0
FAIL=0
LEADERS=0
for hp in "${MEMBERS[@]}"; do
    host="${hp%:*}"
    port="${hp##*:}"
    printf 'tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=%s\n' \
        "$WORK" "$port" "$host" > "$WORK/zoo.cfg"
    out=$(ZOOCFGDIR="$WORK" timeout 60 "$ZKSERVER" status "$WORK/zoo.cfg" 2>&1)
    rc=$?
    echo "--- zkServer.sh status for $hp"
    echo "$out"
    mode=$(sed -n 's/^Mode: //p' <<<"$out")
    if [ "$ZK_MEMBERS" = 1 ]; then
        want="standalone"
    elif [ "$mode" = leader ] && [ "$LEADERS" = 0 ]; then
        want="leader"
    else
        want="follower"
    fi
    [ "$mode" = leader ] && LEADERS=$(( LEADERS + 1 ))
    if [ $rc -eq 0 ] && [ "$mode" = "$want" ]; then
        echo "zkserver_status: PASS $hp: Mode: $mode"
        PASS=$(( PASS + 1 ))
    else
        echo "zkserver_status: FAIL $hp (exit $rc, expected a line 'Mode: $want')"
        FAIL=$(( FAIL + 1 ))
    fi
done
if [ "$ZK_MEMBERS" -gt 1 ] && [ "$LEADERS" = 0 ]; then
    echo "zkserver_status: FAIL no member printed 'Mode: leader'"
    FAIL=$(( FAIL + 1 ))
fi
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
