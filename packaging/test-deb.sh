#!/usr/bin/env bash
# packaging/test-deb.sh DEB: installs corral's Debian package on THIS machine, starts the
# service (under systemd if systemd runs here, otherwise the unit's own command line as the
# unit's user with its memlock limit), checks that a real client (zkCli.sh) uses it and that
# the data lands in /var/lib/corral owned by `corral`, stops it, then removes and purges the
# package. It changes the system (a user, files under /usr, /etc, /var/lib): .ci/run calls it
# on a throwaway CI machine; do not run it on a machine you care about. Needs port 2181 free.
set -euo pipefail
DEB=${1:?usage: test-deb.sh path/to/corral_VERSION_ARCH.deb}
DEB=$(readlink -f "$DEB")
ZKCLI=/usr/share/zookeeper/bin/zkCli.sh
say() { echo "test-deb: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
# A four-letter word to 127.0.0.1:2181 with bash's /dev/tcp (no netcat needed).
four() { timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2181 && printf %s "$1" >&3 && cat <&3' _ "$1" 2>/dev/null || true; }

if ss -ltn | grep -q ':2181 '; then fail "port 2181 is in use"; fi
if dpkg -s corral >/dev/null 2>&1; then fail "corral is installed already"; fi
apt-get install -y -q "$DEB" >/dev/null || dpkg -i "$DEB"
# Whatever happens from here, leave the machine without the package, its user or its server.
cleanup() {
    pkill -x corral 2>/dev/null || true
    dpkg -P corral >/dev/null 2>&1 || true
    rm -rf /var/lib/corral
    deluser --system corral >/dev/null 2>&1 || true
}
trap cleanup EXIT

UNIT=/lib/systemd/system/corral.service
for f in /usr/bin/corral "$UNIT" /etc/corral/zoo.cfg; do [ -f "$f" ] || fail "$f not installed"; done
getent passwd corral >/dev/null || fail "no user corral"
[ "$(stat -c %U /var/lib/corral)" = corral ] || fail "/var/lib/corral is not owned by corral"
grep -qx 'LimitMEMLOCK=infinity' "$UNIT" || fail "no LimitMEMLOCK in the unit"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$UNIT" || fail "systemd-analyze verify rejects the unit"
fi

if [ -d /run/systemd/system ]; then
    say "systemd runs here: systemctl start corral"
    systemctl start corral
    stop() { systemctl stop corral; }
else
    # The unit's command line, user and memlock limit, as systemd would run them.
    user=$(sed -n 's/^User=//p' "$UNIT")
    cmd=$(sed -n 's/^ExecStart=//p' "$UNIT")
    say "no systemd here: running the unit's command as $user: $cmd"
    # LimitMEMLOCK=infinity, or as close as this machine allows.
    ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)"
    # shellcheck disable=SC2086
    (cd /var/lib/corral && exec runuser -u "$user" -- $cmd >/tmp/corral-deb.log 2>&1) &
    PID=$!
    # SIGTERM to corral itself (runuser would pass on its own SIGTERM, then exit 143); runuser
    # then exits with corral's status.
    stop() {
        pkill -TERM -x corral
        wait "$PID" || fail "corral did not exit 0 on SIGTERM (log: /tmp/corral-deb.log)"
    }
fi
for _ in $(seq 100); do
    [ "$(four ruok)" = imok ] && break
    sleep 0.2
done
[ "$(four ruok)" = imok ] || fail "no imok on 2181"
owner=$(ps -o user= -p "$(pgrep -x corral | head -1)")
[ "$owner" = corral ] || fail "corral runs as $owner, not corral"

out=$(timeout 60 "$ZKCLI" -server 127.0.0.1:2181 create /from-deb packaged 2>&1)
echo "$out" | grep -q "Created /from-deb" || fail "zkCli create: $out"
out=$(timeout 60 "$ZKCLI" -server 127.0.0.1:2181 get /from-deb 2>&1)
echo "$out" | grep -qx packaged || fail "zkCli get: $out"
four srvr | grep -q "Mode: standalone" || fail "srvr"
stop
[ -n "$(find /var/lib/corral -name 'wal-*.log' -user corral)" ] || fail "no log owned by corral in /var/lib/corral"

dpkg -r corral >/dev/null
[ ! -e /usr/bin/corral ] || fail "/usr/bin/corral left after remove"
[ -f /etc/corral/zoo.cfg ] || fail "remove dropped the conffile (only purge should)"
dpkg -P corral >/dev/null
[ ! -e /etc/corral/zoo.cfg ] || fail "purge left /etc/corral/zoo.cfg"
[ -d /var/lib/corral ] || fail "purge deleted the data"
say "ok: installed, served zkCli as user corral, stopped, removed and purged"
