# Shared helpers for the interop scripts. Source it; do not execute it.
# shellcheck shell=bash

INTEROP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ZK_JAR=/usr/share/java/zookeeper.jar

# split_hostport HOST:PORT[,HOST:PORT...] -> sets ZK_HOST and ZK_PORT (the first member), and
# ZK_MEMBERS (the number of members); every member must be on loopback
split_hostport() {
    local all="$1" hp host port first=1
    ZK_MEMBERS=0
    IFS=, read -r -a _members <<<"$all"
    for hp in "${_members[@]}"; do
        host="${hp%:*}"
        port="${hp##*:}"
        if [ -z "$host" ] || [ -z "$port" ] || [ "$host" = "$hp" ]; then
            echo "expected HOST:PORT[,HOST:PORT...], got '$all'" >&2
            return 2
        fi
        case "$host" in
            127.*|localhost|::1|\[::1\]) ;;
            *) echo "refusing non-loopback host '$host' (loopback only)" >&2; return 2 ;;
        esac
        if [ "$first" = 1 ]; then
            ZK_HOST="$host"
            ZK_PORT="$port"
            first=0
        fi
        ZK_MEMBERS=$(( ZK_MEMBERS + 1 ))
    done
    [ "$ZK_MEMBERS" -gt 0 ] || { echo "empty connect string" >&2; return 2; }
}

# four_letter HOST PORT WORD -> prints the server's answer (bounded by timeout)
four_letter() {
    local host="$1" port="$2" word="$3"
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "%s" "$2" >&3
        cat <&3
    ' "$host" "$port" "$word" 2>/dev/null
}

# wait_port_free PORT SECONDS
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

REPO_ROOT="$(cd "$INTEROP_DIR/../.." && pwd)"
DEFAULT_VENV="$REPO_ROOT/target/interop-venv"

# apt_install PKG... : install Debian packages (waits for another apt's lock;
# runs `apt-get update` and retries once if the first attempt fails)
apt_install() {
    local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)
    echo "installing Debian packages: $*" >&2
    if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get "${opts[@]}" install "$@" >&2; then
        apt_update
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get "${opts[@]}" install "$@" >&2
    fi
}

apt_update() {
    local i
    for i in 1 2 3; do
        timeout 600 apt-get -q -o DPkg::Lock::Timeout=600 update >&2 && return 0
        echo "apt-get update failed (attempt $i); retrying in 10 s" >&2
        sleep 10
    done
    return 1
}

# ensure_deb_src : make `apt-get source zookeeper` possible by adding deb-src
# twins of the configured Debian `deb` entries (not third-party ones) in
# /etc/apt/sources.list.d/corral-interop-src.{sources,list}.
ensure_deb_src() {
    local have
    have="$(apt-cache showsrc zookeeper 2>/dev/null || true)"
    if printf '%s\n' "$have" | grep -q '^Package: zookeeper'; then
        return 0
    fi
    local f added=0
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        case "$f" in */corral-interop-src.sources) continue ;; esac
        /usr/bin/python3 - "$f" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
for stanza in re.split(r"\n\s*\n", text):
    types = re.search(r"^Types:(.*)$", stanza, re.M)
    uris = re.search(r"^URIs:(.*)$", stanza, re.M)
    if not types or not uris or "deb" not in types.group(1).split() or "debian" not in uris.group(1):
        continue
    if re.search(r"^Enabled:\s*no", stanza, re.M | re.I):
        continue
    print(re.sub(r"^Types:.*$", "Types: deb-src", stanza.strip(), flags=re.M))
    print()
PYEOF
    done > /tmp/corral-interop-src.sources.new
    if [ -s /tmp/corral-interop-src.sources.new ]; then
        mv /tmp/corral-interop-src.sources.new /etc/apt/sources.list.d/corral-interop-src.sources
        added=1
    fi
    rm -f /tmp/corral-interop-src.sources.new
    if [ -f /etc/apt/sources.list ]; then
        grep -E '^deb [^#]*debian' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
            > /tmp/corral-interop-src.list.new || true
        if [ -s /tmp/corral-interop-src.list.new ]; then
            mv /tmp/corral-interop-src.list.new /etc/apt/sources.list.d/corral-interop-src.list
            added=1
        fi
        rm -f /tmp/corral-interop-src.list.new
    fi
    if [ "$added" = 0 ]; then
        echo "ensure_deb_src: found no Debian 'deb' entry to mirror as deb-src" >&2
        return 1
    fi
    echo "ensure_deb_src: added deb-src entries under /etc/apt/sources.list.d/corral-interop-src.*" >&2
    apt_update
}
