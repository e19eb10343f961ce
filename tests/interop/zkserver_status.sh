#!/usr/bin/env bash
# zkserver_status.sh HOST:PORT
#
# Apache ZooKeeper's own `zkServer.sh status` (Debian package `zookeeper`) against the server:
# it reads clientPortAddress/clientPort from a zoo.cfg, sends `srvr` with the default
# four-letter-word whitelist and greps `Mode:`. Must print `Mode: standalone` and exit 0.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -ne 1 ]; then
    echo "usage: $0 HOST:PORT" >&2
    exit 2
fi
split_hostport "$1" || exit 2
ZKSERVER=/usr/share/zookeeper/bin/zkServer.sh
WORK="$(mktemp -d /tmp/zkserver-status.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
printf 'tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=%s\n' \
    "$WORK" "$ZK_PORT" "$ZK_HOST" > "$WORK/zoo.cfg"
out=$(ZOOCFGDIR="$WORK" timeout 60 "$ZKSERVER" status "$WORK/zoo.cfg" 2>&1)
rc=$?
echo "$out"
if [ $rc -eq 0 ] && grep -qx 'Mode: standalone' <<<"$out"; then
    echo "zkserver_status: PASS"
    echo "1 passed, 0 failed"
else
    echo "zkserver_status: FAIL (exit $rc, expected a line 'Mode: standalone')"
    echo "0 passed, 1 failed"
    exit 1
fi
