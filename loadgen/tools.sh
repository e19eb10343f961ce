# Sourced by the benchmark scripts (compare.sh, restart.sh, ensemble-lib.sh; each cds to the repo
# root first): logging, the locked-memory limit glommio needs, and Apache ZooKeeper 3.8 from
# Debian (installed if missing). Sets ZK_JAR, ZK_CP (with slf4j-simple when present) and
# ZK_VERSION. `need_font` installs the font the PNG plots' text is drawn with.

log() { echo "== $*" >&2; }

# glommio locks memory for io_uring.
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

ZK_JAR=/usr/share/java/zookeeper.jar
if [ ! -r "$ZK_JAR" ]; then
    log "installing Apache ZooKeeper (Debian package zookeeper)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q zookeeper
fi
ZK_VERSION=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)
ZK_CP=$ZK_JAR
[ -r /usr/share/java/slf4j-simple.jar ] && ZK_CP="$ZK_CP:/usr/share/java/slf4j-simple.jar"

FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
need_font() {
    if [ ! -r "$FONT" ]; then
        log "installing the DejaVu fonts for the plots (Debian package fonts-dejavu-core)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q fonts-dejavu-core
    fi
}
