# Sourced by compare.sh and restart.sh (both cd to the repo root first).
# wait_port PORT: waits until the server on 127.0.0.1:PORT serves, meaning `srvr` reports a
# Mode (ZooKeeper accepts TCP, and even answers ruok, before it serves sessions). 60 s at most.
wait_port() {
    local ans
    for _ in $(seq 1 240); do
        ans=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf srvr >&3 && cat <&3' "$1" 2>/dev/null || true)
        case "$ans" in *Mode:*) return 0 ;; esac
        sleep 0.25
    done
    echo "no server serving on 127.0.0.1:$1" >&2
    return 1
}
