#!/usr/bin/env bash
# run_tls.sh [KIND] [BIN]: the secure client port with third-party tools. A server with only a
# secureClientPort (no clientPort: as in ZooKeeper, no plain port then), keys made here with
# openssl, ssl.clientAuth=need:
#   - Apache ZooKeeper's `zkServer.sh status`: finds the secure port, says "Client SSL: true."
#     and reads `srvr` over TLS (FourLetterWordMain with the CLIENT_JVMFLAGS keys);
#   - kazoo with use_ssl (kazoo_tls_test.py): sessions, x509 ACLs, a foreign certificate.
# KIND corral runs BIN; KIND zookeeper runs Debian's ZooKeeper (NettyServerCnxnFactory) with the
# same zoo.cfg, to check the expectations. Prints one line per check and last "N passed, N
# failed"; exit status 0 only if nothing failed.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
KIND="${1:-corral}"
BIN="${2:-$HERE/../../target/debug/corral}"
VENV_PY="${INTEROP_VENV:-$DEFAULT_VENV}/bin/python"
WORK="$(mktemp -d /tmp/interop-tls.XXXXXX)"
PKI="$WORK/pki"
mkdir -p "$PKI" "$WORK/data"
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }

# --- keys (EC P-256): a CA, the server (127.0.0.1), alice and bob; mallory from another CA --------
(
    cd "$PKI" || exit 1
    key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null; }
    sign() { openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.crt" -days 2 -extfile "$3" 2>/dev/null; }
    for ca in ca other-ca; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca.key" -out "$ca.pem" -days 2 -subj "/CN=$ca" 2>/dev/null
    done
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    key server "/CN=127.0.0.1" && sign server ca server.ext
    for c in alice bob; do key "$c" "/O=corral/CN=$c" && sign "$c" ca client.ext; done
    key mallory "/O=elsewhere/CN=mallory" && sign mallory other-ca client.ext
    cat server.key server.crt >server-store.pem
    cat alice.key alice.crt >alice-store.pem
) || { echo "not ok - making keys with openssl"; echo "0 passed, 1 failed"; exit 1; }

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$WORK/zoo.cfg" <<CFG
tickTime=2000
dataDir=$WORK/data
secureClientPort=$PORT
secureClientPortAddress=127.0.0.1
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider
ssl.keyStore.location=$PKI/server-store.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$PKI/ca.pem
ssl.trustStore.type=PEM
4lw.commands.whitelist=*
admin.enableServer=false
CFG
if [ "$KIND" = zookeeper ]; then
    CP="/usr/share/java/zookeeper.jar:$(find /usr/share/java -maxdepth 1 -name 'netty-*.jar' ! -name '*-4.*' | sort | tr '\n' ':')/usr/share/java/slf4j-simple.jar"
    java -Dzookeeper.log.dir="$WORK" -cp "$CP" org.apache.zookeeper.server.ZooKeeperServerMain "$WORK/zoo.cfg" >"$WORK/server.log" 2>&1 &
else
    "$BIN" --config "$WORK/zoo.cfg" >"$WORK/server.log" 2>&1 &
fi
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT

srvr_tls() {
    printf srvr | timeout 5 openssl s_client -connect "127.0.0.1:$PORT" -quiet -verify_return_error \
        -CAfile "$PKI/ca.pem" -cert "$PKI/alice.crt" -key "$PKI/alice.key" 2>/dev/null
}
for _ in $(seq 1 120); do
    case "$(srvr_tls || true)" in *Mode:*) break ;; esac
    sleep 0.25
done
case "$(srvr_tls || true)" in
*Mode:*) ok "$KIND serves srvr over TLS on its secure port" ;;
*) notok "$KIND serves srvr over TLS on its secure port"; tail -20 "$WORK/server.log"; echo "$PASS passed, $FAIL failed"; exit 1 ;;
esac

# --- zkServer.sh status -----------------------------------------------------------------------
out=$(CLIENT_JVMFLAGS="-Dzookeeper.ssl.keyStore.location=$PKI/alice-store.pem -Dzookeeper.ssl.keyStore.type=PEM -Dzookeeper.ssl.trustStore.location=$PKI/ca.pem -Dzookeeper.ssl.trustStore.type=PEM" \
    ZOOCFGDIR="$WORK" timeout 60 /usr/share/zookeeper/bin/zkServer.sh status "$WORK/zoo.cfg" 2>&1)
if grep -q "Client SSL: true" <<<"$out" && grep -q "^Mode: standalone" <<<"$out"; then
    ok "zkServer.sh status: Client SSL: true, Mode: standalone"
else
    notok "zkServer.sh status: Client SSL: true, Mode: standalone"
    echo "$out" | tail -5
fi

# --- kazoo --------------------------------------------------------------------------------------
if [ -x "$VENV_PY" ]; then
    "$VENV_PY" "$HERE/kazoo_tls_test.py" "127.0.0.1:$PORT" "$PKI" >"$WORK/kazoo.out" 2>&1
    grep -E '^(not )?ok - ' "$WORK/kazoo.out"
    read -r kp kf <<<"$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$WORK/kazoo.out" | tail -1)"
    if [ -z "${kp:-}" ]; then
        notok "kazoo_tls_test.py ran to its end"
        tail -20 "$WORK/kazoo.out"
    else
        PASS=$((PASS + kp))
        FAIL=$((FAIL + kf))
    fi
else
    notok "kazoo venv at $VENV_PY (run setup_env.sh first)"
fi

kill -0 $PID 2>/dev/null || { notok "$KIND still running at the end"; tail -20 "$WORK/server.log"; }
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
