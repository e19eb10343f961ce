#!/usr/bin/env bash
# setup_env.sh : installs everything the interop suites need (idempotent;
# run as root on Debian bookworm):
#   * Debian packages: zookeeper (zkCli.sh, the Java server and client),
#     zookeeper-bin (cli_mt), libzookeeper-mt-dev (C client for zkpython),
#     python3-venv, python3-dev, gcc, dpkg-dev
#   * a venv at $INTEROP_VENV (default: <repo>/target/interop-venv) made from
#     Debian's /usr/bin/python3, with kazoo and pure-sasl (kazoo's SASL) from PyPI
#   * zkpython built by build_zkpython.sh into that venv
# Prints the venv's python path as its last line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VENV="${INTEROP_VENV:-$DEFAULT_VENV}"
KAZOO_VERSION="${KAZOO_VERSION:-2.10.0}"
BASE_PY=/usr/bin/python3

need=()
[ -x /usr/share/zookeeper/bin/zkCli.sh ] || need+=(zookeeper)
[ -x /usr/lib/zookeeper/bin/cli_mt ] || need+=(zookeeper-bin)
dpkg -s libzookeeper-mt-dev >/dev/null 2>&1 || need+=(libzookeeper-mt-dev)
dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
dpkg -s python3-dev >/dev/null 2>&1 || need+=(python3-dev)
dpkg -s dpkg-dev >/dev/null 2>&1 || need+=(dpkg-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -x "$BASE_PY" ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "setup_env: creating venv $VENV from $BASE_PY" >&2
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    timeout 300 "$BASE_PY" -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c "import kazoo, puresasl, sys; from importlib.metadata import version; sys.exit(version('kazoo') != '$KAZOO_VERSION')" >/dev/null 2>&1; then
    echo "setup_env: pip install kazoo==$KAZOO_VERSION" >&2
    timeout 600 "$VENV/bin/python" -m pip install -q --disable-pip-version-check "kazoo==$KAZOO_VERSION" pure-sasl==0.6.2 >&2
fi

"$INTEROP_DIR/build_zkpython.sh" "$VENV/bin/python" >&2

echo "$VENV/bin/python"
