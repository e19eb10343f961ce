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

# replace_section DOC NAME FILE HEADING: puts FILE between the NAME:begin / NAME:end markers of
# DOC, or appends HEADING and FILE when DOC has no such markers yet.
replace_section() {
    local doc=$1 name=$2 file=$3 heading=$4
    if grep -q "$name:begin" "$doc"; then
        awk -v f="$file" -v b="$name:begin" -v e="$name:end" '
            index($0, b) { while ((getline l < f) > 0) print l; skip = 1; next }
            index($0, e) { skip = 0; next }
            !skip' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
    else
        { echo; echo "$heading"; echo; cat "$file"; } >>"$doc"
    fi
}

# stall_probe NAME SECONDS: `$LOADGEN stalls` on both CPUs into $OUT/stalls-NAME.md; sets STALL_CMD.
stall_probe() {
    local cmd="$LOADGEN stalls --cpus ${LOADGEN_CPU:-0},${SERVER_CPU:-1} --seconds ${2:-5}"
    log "machine stalls ($1): $cmd"
    # shellcheck disable=SC2086
    $cmd >"$OUT/stalls-$1.md" || log "stall probe failed"
    STALL_CMD=$cmd
    true
}
