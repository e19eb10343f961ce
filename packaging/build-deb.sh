#!/usr/bin/env bash
# packaging/build-deb.sh: builds corral's Debian package.
#
#   bash packaging/build-deb.sh                 # cargo build --release, then the .deb
#   bash packaging/build-deb.sh --bin PATH      # package an already built binary
#   bash packaging/build-deb.sh --out DIR       # where the .deb goes (default target/debian)
#
# The package: /usr/bin/corral (debug info stripped), the systemd unit
# /lib/systemd/system/corral.service (user `corral`, LimitMEMLOCK for io_uring),
# /etc/corral/zoo.cfg (a conffile: upgrades keep the operator's edits), and, made by the
# postinst, the system user `corral` and /var/lib/corral (dataDir). Needs dpkg-deb (dpkg) and
# binutils' objcopy; prints the .deb's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BIN=""
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/debian"
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$BIN" ]; then
    cargo build --release -p corral >&2
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/corral"
fi
[ -x "$BIN" ] || { echo "build-deb.sh: no executable at $BIN" >&2; exit 1; }

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
chmod 755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT

install -d "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/etc/corral" \
    "$STAGE/usr/share/doc/corral"
# Symbols stay (backtraces name functions); the debug info (~50 MB) goes.
objcopy --strip-debug "$BIN" "$STAGE/usr/bin/corral"
chmod 755 "$STAGE/usr/bin/corral"
install -m 644 packaging/debian/corral.service "$STAGE/lib/systemd/system/corral.service"
install -m 644 packaging/debian/zoo.cfg "$STAGE/etc/corral/zoo.cfg"
install -m 644 README.md "$STAGE/usr/share/doc/corral/README.md"
for s in postinst prerm postrm; do
    install -m 755 "packaging/debian/$s" "$STAGE/DEBIAN/$s"
done
echo /etc/corral/zoo.cfg >"$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
# The binary links glibc (and libgcc_s for unwinding) only: everything else is static.
# Kerberos (SASL GSSAPI) is loaded with dlopen when a server is configured for it.
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: corral
Version: $VERSION
Architecture: $ARCH
Maintainer: corral developers <corral@localhost>
Installed-Size: $SIZE
Depends: libc6 (>= 2.34), libgcc-s1, adduser
Suggests: libgssapi-krb5-2
Section: net
Priority: optional
Description: ZooKeeper-compatible coordination server
 corral speaks Apache ZooKeeper's client protocol and reads its zoo.cfg: unmodified
 ZooKeeper clients (zkCli.sh, the C client, kazoo, Curator) work against it, standalone
 or as a replicated ensemble. Thread-per-core on io_uring, with no garbage collector.
CONTROL

mkdir -p "$OUT"
DEB="$OUT/corral_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group --build "$STAGE" "$DEB" >&2
echo "$DEB"
