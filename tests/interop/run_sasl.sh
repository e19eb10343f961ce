#!/usr/bin/env bash
# run_sasl.sh [KIND] [BIN]: SASL DIGEST-MD5 on the client port with kazoo and pure-sasl
# (kazoo_sasl_test.py: login, whoAmI, a sasl:bob ACL, a wrong password, the server still
# serving). The server's JAAS Server section holds user_bob="bob-secret"; zoo.cfg registers the
# SASL provider. KIND corral runs BIN (the JAAS file through corral.jaasConfig); KIND zookeeper
# runs Debian's ZooKeeper (-Djava.security.auth.login.config), to check the expectations. Prints
# one line per check and last "N passed, N failed"; exit status 0 only if nothing failed.
# (tests/sasl.rs covers the rest with raw clients and zkCli.sh, in `cargo test`.)
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
KIND="${1:-corral}"
BIN="${2:-$HERE/../../target/debug/corral}"
VENV_PY="${INTEROP_VENV:-$DEFAULT_VENV}/bin/python"
WORK="$(mktemp -d /tmp/interop-sasl.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$WORK/jaas.conf" <<'JAAS'
Server {
  org.apache.zookeeper.server.auth.DigestLoginModule required
  user_bob="bob-secret";
};
JAAS
cat >"$WORK/zoo.cfg" <<CFG
tickTime=2000
dataDir=$WORK/data
clientPort=$PORT
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
CFG
if [ "$KIND" = zookeeper ]; then
    java -Djava.security.auth.login.config="$WORK/jaas.conf" -Dzookeeper.log.dir="$WORK" \
        -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
        org.apache.zookeeper.server.ZooKeeperServerMain "$WORK/zoo.cfg" >"$WORK/server.log" 2>&1 &
else
    echo "corral.jaasConfig=$WORK/jaas.conf" >>"$WORK/zoo.cfg"
    "$BIN" --config "$WORK/zoo.cfg" >"$WORK/server.log" 2>&1 &
fi
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 120); do
    case "$(four_letter 127.0.0.1 "$PORT" srvr 2>/dev/null || true)" in *Mode:*) break ;; esac
    sleep 0.25
done
PASS=0
FAIL=0
if [ ! -x "$VENV_PY" ]; then
    echo "not ok - kazoo venv at $VENV_PY (run setup_env.sh first)"
    FAIL=1
elif timeout 150 "$VENV_PY" "$HERE/kazoo_sasl_test.py" "127.0.0.1:$PORT" >"$WORK/kazoo.out" 2>&1 &&
    grep -q "ALL OK" "$WORK/kazoo.out"; then
    echo "ok - kazoo with pure-sasl against $KIND (login, whoAmI, sasl ACL, wrong password)"
    PASS=1
else
    echo "not ok - kazoo with pure-sasl against $KIND"
    tail -20 "$WORK/kazoo.out"
    FAIL=1
fi
kill -0 $PID 2>/dev/null || { echo "not ok - $KIND still running at the end"; tail -20 "$WORK/server.log"; FAIL=$((FAIL + 1)); }
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
