#!/usr/bin/env bash
# loadgen/tls.sh: TLS on the client port, corral vs Apache ZooKeeper 3.8 (Debian's package,
# NettyServerCnxnFactory), one run, standalone servers.
#
#   bash loadgen/tls.sh            # rewrites the `tls` section of docs/BENCHMARKS.md
#
# Keys: a CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl
# (EC P-256) into $OUT/pki; both servers require the client certificate (ssl.clientAuth=need, the
# default). Each server runs alone on CPU $SERVER_CPU, one after the other, the loadgen on CPU
# $LOADGEN_CPU with --tls-ca/--tls-cert/--tls-key. Phases, the same for both: getData
# unpipelined (64x1) and pipelined (16x32) over TLS, and connection setup over TLS (`churn`:
# TCP connect, TLS handshake, ZooKeeper session, close). corral runs the two getData phases in
# plaintext too, on its plain port in the same run, for what TLS costs it per op.
#
# Environment: DURATION (5), WARMUP (1), QUICK=1 (1 s phases), SERVER_CPU (1), LOADGEN_CPU (0),
# OUT (target/tls-<date>), DOC (docs/BENCHMARKS.md), BUILD (1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
if [ "${QUICK:-0}" = 1 ]; then DURATION=1; WARMUP=0.3; fi
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
DOC=${DOC:-docs/BENCHMARKS.md}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET/tls-$(date +%Y%m%d-%H%M%S)}
PLAIN_PORT=${PLAIN_PORT:-23181}
TLS_PORT=${TLS_PORT:-23281}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# shellcheck source=loadgen/tools.sh
. loadgen/tools.sh
# shellcheck source=loadgen/wait_port.sh
. loadgen/wait_port.sh

SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ "${BUILD:-1}" = 1 ]; then
    log "building corral and loadgen (release)"
    cargo build --release -p corral -p loadgen >&2
fi
CORRAL=$TARGET/release/corral
LOADGEN=$TARGET/release/loadgen
command -v openssl >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q openssl
}

# --- keys ---------------------------------------------------------------------------------------
PKI=$OUT/pki
mkdir -p "$PKI"
(
    cd "$PKI"
    ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 7 -subj "/CN=tls-bench-ca" 2>/dev/null
    ec server "/CN=127.0.0.1"
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 7 -extfile server.ext 2>/dev/null
    ec client "/O=corral/CN=loadgen"
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.crt -days 7 -extfile client.ext 2>/dev/null
    cat server.key server.crt >server-store.pem
)
TLS_ARGS="--tls-ca $PKI/ca.pem --tls-cert $PKI/client.crt --tls-key $PKI/client.key"
# The same keys for both servers, in the keys ZooKeeper reads from zoo.cfg.
SSL_CFG="secureClientPort=$TLS_PORT
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider
ssl.keyStore.location=$PKI/server-store.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$PKI/ca.pem
ssl.trustStore.type=PEM"
# ZooKeeper's Netty server needs every Netty jar (Debian's manifest leaves some out).
ZK_TLS_CP="$ZK_CP:$(find /usr/share/java -maxdepth 1 -name 'netty-*.jar' ! -name '*-4.*' | sort | tr '\n' ':')"

start_server() {
    local sys=$1 dir=$OUT/$1
    rm -rf "$dir"
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$PLAIN_PORT
clientPortAddress=127.0.0.1
secureClientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=yes
4lw.commands.whitelist=*
admin.enableServer=false
$SSL_CFG
CFG
    if [ "$sys" = zookeeper ]; then
        CMD="taskset -c $SERVER_CPU java -Xmx512m -Dzookeeper.log.dir=$dir -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp $ZK_TLS_CP org.apache.zookeeper.server.ZooKeeperServerMain $dir/zoo.cfg"
    else
        CMD="taskset -c $SERVER_CPU $CORRAL --config $dir/zoo.cfg"
    fi
    echo "$CMD" >>"$OUT/commands.txt"
    # shellcheck disable=SC2086
    CORRAL_LOG=warn $CMD >"$dir/server.log" 2>&1 </dev/null &
    SERVER_PID=$!
    wait_port "$PLAIN_PORT"
    wait_tls_port "$TLS_PORT"
}

# wait_tls_port PORT: `wait_port` over TLS (srvr through openssl s_client), 30 s at most.
wait_tls_port() {
    local ans
    for _ in $(seq 1 120); do
        ans=$(printf srvr | timeout 3 openssl s_client -connect "127.0.0.1:$1" -quiet -verify_return_error \
            -CAfile "$PKI/ca.pem" -cert "$PKI/client.crt" -key "$PKI/client.key" 2>/dev/null || true)
        case "$ans" in *Mode:*) return 0 ;; esac
        sleep 0.25
    done
    echo "no TLS server serving on 127.0.0.1:$1" >&2
    return 1
}

COMMON="--duration $DURATION --warmup $WARMUP --json --allow-errors"
run() {
    local sys=$1 label=$2 port=$3 p=$4 cmd
    cmd="taskset -c $LOADGEN_CPU $LOADGEN --servers 127.0.0.1:$port --server-pid $SERVER_PID --label $label $COMMON $p"
    echo "$cmd" >>"$OUT/commands.txt"
    log "$label: loadgen $p"
    # shellcheck disable=SC2086
    $cmd >>"$OUT/$sys.jsonl" 2>>"$OUT/$sys.txt" || echo "loadgen exited $? ($label: $p)" >&2
}

: >"$OUT/commands.txt"
stall_probe before 5
echo "$STALL_CMD" >>"$OUT/commands.txt"
for sys in zookeeper corral; do
    : >"$OUT/$sys.jsonl"
    log "$sys on CPU $SERVER_CPU"
    start_server "$sys"
    # Not recorded: the JVM's warm-up (both get it).
    # shellcheck disable=SC2086
    taskset -c "$LOADGEN_CPU" "$LOADGEN" --servers "127.0.0.1:$TLS_PORT" $TLS_ARGS -w getdata -s 16 -o 32 --duration 5 --warmup 0 --allow-errors >/dev/null 2>&1 || true
    for p in "-w getdata -s 64 -o 1" "-w getdata -s 16 -o 32" "-w churn -s 16"; do
        run "$sys" "$sys-tls" "$TLS_PORT" "$TLS_ARGS $p"
    done
    if [ "$sys" = corral ]; then
        for p in "-w getdata -s 64 -o 1" "-w getdata -s 16 -o 32"; do
            run corral-plain corral-plain "$PLAIN_PORT" "$p"
        done
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || echo "$sys had exited before the end of its phases" >>"$OUT/crashes.txt"
    cleanup
    SERVER_PID=
done
stall_probe after 5

# --- the section --------------------------------------------------------------------------------
{
    echo "<!-- tls:begin (written by loadgen/tls.sh; edits here are overwritten) -->"
    echo "Run $(date +%Y-%m-%d), \`bash loadgen/tls.sh\`, corral at $(git rev-parse --short HEAD)."
    echo "Standalone servers, each alone on CPU $SERVER_CPU, the loadgen on CPU $LOADGEN_CPU; TLS with an"
    echo "EC P-256 server certificate and a client certificate (ssl.clientAuth=need); ZooKeeper with"
    echo "NettyServerCnxnFactory (Apache ZooKeeper $ZK_VERSION, $(java -version 2>&1 | head -1)). Each phase"
    echo "$WARMUP s warmup, $DURATION s measured. \`churn\` opens and closes sessions: TCP connect, TLS"
    echo "handshake, ZooKeeper session, close; its rate is sessions per second. Latencies in microseconds."
    echo
    echo "Machine stalls before:"
    echo
    cat "$OUT/stalls-before.md"
    echo
    echo "and after:"
    echo
    cat "$OUT/stalls-after.md"
    echo
    python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def rows(name):
    try:
        return {json.loads(l)["phase"]: json.loads(l) for l in open(f"{out}/{name}.jsonl") if l.strip().startswith("{")}
    except FileNotFoundError:
        return {}
z, c, p = rows("zookeeper"), rows("corral"), rows("corral-plain")
def lat(r, q):
    for op in ("getData", "connect"):
        v = r.get("latency_us", {}).get(op, {}).get(q)
        if v is not None:
            return v
def f(x, d=1):
    return "-" if x is None else f"{x:.{d}f}"
print("| phase | corral TLS ops/s | ZooKeeper TLS ops/s | ratio | corral p50 | ZooKeeper p50 | corral p99 | ZooKeeper p99 | corral CPU us/op | ZooKeeper CPU us/op | corral plaintext ops/s | corral plaintext CPU us/op | TLS / plaintext CPU |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
targets = []
for ph in c:
    a, b, q = c[ph], z.get(ph, {}), p.get(ph, {})
    ta, tb = a.get("throughput"), b.get("throughput")
    ca, cb, cq = a.get("server_cpu_us_per_op"), b.get("server_cpu_us_per_op"), q.get("server_cpu_us_per_op")
    ratio = ta / tb if ta and tb else None
    cpu_ratio = ca / cq if ca and cq else None
    print(f"| {ph} | {f(ta,0)} | {f(tb,0)} | {f(ratio,2)}x | {f(lat(a,'p50'))} | {f(lat(b,'p50'))} | {f(lat(a,'p99'))} | {f(lat(b,'p99'))} | {f(ca,2)} | {f(cb,2)} | {f(q.get('throughput'),0)} | {f(cq,2)} | {f(cpu_ratio,2)} |")
    if ph.startswith("getdata") and ratio is not None:
        targets.append((f"TLS `{ph}`: >= 2x ZooKeeper's throughput", f"{ratio:.2f}x", ratio >= 2))
    if ph.startswith("getdata") and cpu_ratio is not None:
        targets.append((f"TLS `{ph}`: corral's CPU per op <= 1.5x its plaintext", f"{cpu_ratio:.2f}x", cpu_ratio <= 1.5))
    if ph.startswith("churn") and ratio is not None:
        targets.append((f"TLS connection setup `{ph}` (no target; for the record)", f"{ratio:.2f}x ZooKeeper's", True))
print()
print("Targets (issue #13):")
print()
print("| target | measured | met |")
print("|---|---|---|")
for what, v, ok in targets:
    print(f"| {what} | {v} | {'yes' if ok else '**no**'} |")
PY
    if [ -s "$OUT/crashes.txt" ]; then
        echo
        echo "**Problems during this run:**"
        echo
        echo '```'
        cat "$OUT/crashes.txt"
        echo '```'
    fi
    echo
    echo "Commands (raw results in \`$OUT\`):"
    echo
    echo '```'
    cat "$OUT/commands.txt"
    echo '```'
    echo "<!-- tls:end -->"
} >"$OUT/tls.md"

# First run: the section goes before the hand-written notes.
if ! grep -q 'tls:begin' "$DOC"; then
    awk '/^## Notes$/ && !done { print "## TLS on the client port: corral vs ZooKeeper"; print ""; print "<!-- tls:begin -->"; print "<!-- tls:end -->"; print ""; done = 1 } { print }' \
        "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
fi
replace_section "$DOC" tls "$OUT/tls.md" "## TLS on the client port: corral vs ZooKeeper"
log "wrote $DOC (raw results in $OUT)"
