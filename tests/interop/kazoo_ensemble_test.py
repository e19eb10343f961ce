#!/usr/bin/env python3
"""kazoo_ensemble_test.py CONNECT_STRING ENSEMBLE_DIR

kazoo against a 3-member ensemble started by ensemble.sh (ENSEMBLE_DIR holds `ports` and
m<i>/pid): recipes whose clients sit on different members (each pinned to one member), then
failover: a client on the full connect string holds an ephemeral node and a Lock, the leader is
killed with SIGKILL, and the client must keep its session (SUSPENDED then CONNECTED, never LOST),
its ephemeral node and its lock, and write afterwards. The failover test kills a member, so it
runs last.
"""
import os
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_runner import Waiter, run, wait_until  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import LockTimeout  # noqa: E402
from kazoo.protocol.states import EventType, KazooState  # noqa: E402
from kazoo.recipe.counter import Counter  # noqa: E402
from kazoo.recipe.election import Election  # noqa: E402
from kazoo.recipe.lock import Lock  # noqa: E402

HOST = sys.argv[1]
DIR = sys.argv[2]
PORTS = [int(p) for p in open(os.path.join(DIR, "ports")).read().split()]
PIDS = [int(open(os.path.join(DIR, "m%d" % i, "pid")).read()) for i in range(len(PORTS))]
MEMBER = ["127.0.0.1:%d" % p for p in PORTS]
ROOT = "/kazoo_ensemble_test"
CLIENTS = []


def client(hosts=HOST, timeout=10.0):
    c = KazooClient(hosts=hosts, timeout=timeout,
                    connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1},
                    command_retry={"max_tries": 3, "delay": 0.1, "max_delay": 1})
    c.start(timeout=15)
    CLIENTS.append(c)
    return c


def stop(c):
    if c in CLIENTS:
        CLIENTS.remove(c)
    try:
        c.stop()
        c.close()
    except Exception:
        pass


def srvr_mode(port):
    """The member's `Mode:` from srvr, or None if it does not answer / does not serve."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(b"srvr")
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
    except OSError:
        return None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("Mode: "):
            return line[6:]
    return None


def connected_port(c):
    """The member port kazoo is connected to (its socket's peer)."""
    return c._connection._socket.getpeername()[1]


MAIN = {}


def base(name):
    p = "%s/%s" % (ROOT, name)
    MAIN["zk"].delete(p, recursive=True)
    MAIN["zk"].ensure_path(p)
    return p


def setup():
    MAIN["zk"] = client()
    MAIN["zk"].delete(ROOT, recursive=True)
    MAIN["zk"].ensure_path(ROOT)


def teardown():
    try:
        MAIN["zk"].delete(ROOT, recursive=True)
    finally:
        for c in list(CLIENTS):
            stop(c)


# ----------------------------------------------------------------------------
def test_members_agree():
    """A write through each member is visible on every member (after sync), with one zxid."""
    b = base("agree")
    pinned = [client(m) for m in MEMBER]
    for i, c in enumerate(pinned):
        assert connected_port(c) == PORTS[i]
        c.create("%s/from-%d" % (b, i), str(i).encode())
    for c in pinned:
        c.sync(b)
        assert sorted(c.get_children(b)) == ["from-0", "from-1", "from-2"]
    stats = [[c.exists("%s/from-%d" % (b, i)) for i in range(3)] for c in pinned]
    assert stats[0] == stats[1] == stats[2], stats
    for c in pinned:
        stop(c)
    MAIN["zk"].delete(b, recursive=True)


def test_watch_across_members():
    """A watch set on one member fires for a change made through another, exactly once."""
    b = base("watch")
    c0, c2 = client(MEMBER[0]), client(MEMBER[2])
    w = Waiter()
    c0.get(b, watch=w)
    c2.set(b, b"x")
    w.wait_for(lambda e: e.type == EventType.CHANGED, 10, "CHANGED on member 0")
    c2.set(b, b"y")
    time.sleep(0.5)
    assert [(e.type, e.path) for e in w.snapshot()] == [(EventType.CHANGED, b)], w.snapshot()
    stop(c0)
    stop(c2)
    MAIN["zk"].delete(b, recursive=True)


def test_lock_across_members():
    """Clients on different members contend for one Lock: the holder's release (and later its
    session's end) hands it to the waiter on the other member; a third member sees both."""
    b = base("lock")
    c0, c1, c2 = client(MEMBER[0]), client(MEMBER[1]), client(MEMBER[2])
    l0, l1 = Lock(c0, b, "m0"), Lock(c1, b, "m1")
    assert l0.acquire(timeout=10)
    got = {}

    def contend():
        got["m1"] = l1.acquire(timeout=30)
        got["t"] = time.monotonic()

    t = threading.Thread(target=contend)
    t.start()
    wait_until(lambda: Lock(c2, b).contenders() == ["m0", "m1"], 10, what="contenders m0,m1 on member 2")
    try:
        Lock(c2, b, "m2").acquire(timeout=0.5)
        raise AssertionError("member 2's client acquired a held lock")
    except LockTimeout:
        pass
    time.sleep(0.3)
    assert "m1" not in got  # still held by m0
    released = time.monotonic()
    l0.release()
    t.join(20)
    assert got.get("m1") is True and got["t"] - released < 10, got
    # now m0 waits, and m1's session ends: the lock moves back across members
    t0 = threading.Thread(target=lambda: got.__setitem__("m0", l0.acquire(timeout=30)))
    t0.start()
    wait_until(lambda: Lock(c2, b).contenders() == ["m1", "m0"], 10, what="contenders m1,m0")
    stop(c1)
    t0.join(20)
    assert got.get("m0") is True, got
    l0.release()
    for c in (c0, c2):
        stop(c)
    MAIN["zk"].delete(b, recursive=True)


def test_election_across_members():
    b = base("election")
    c0, c1 = client(MEMBER[0]), client(MEMBER[1])
    led = []
    release = threading.Event()

    def lead0():
        led.append("m0")
        release.wait(20)

    t0 = threading.Thread(target=Election(c0, b, "m0").run, args=(lead0,))
    t0.start()
    wait_until(lambda: led == ["m0"], 10, what="m0 elected")
    t1 = threading.Thread(target=Election(c1, b, "m1").run, args=(lambda: led.append("m1"),))
    t1.start()
    wait_until(lambda: Election(c1, b).contenders() == ["m0", "m1"], 10, what="both contending")
    time.sleep(0.3)
    assert led == ["m0"]
    release.set()
    t0.join(10)
    t1.join(10)
    assert led == ["m0", "m1"], led
    stop(c0)
    stop(c1)
    MAIN["zk"].delete(b, recursive=True)


def test_counter_across_members():
    """Three sessions, one per member, increment one Counter concurrently (versioned sets that
    conflict across members and retry): no increment is lost."""
    b = base("counter")
    cs = [client(m) for m in MEMBER]

    def bump(c):
        k = Counter(c, b + "/n")
        for _ in range(20):
            k += 1

    ts = [threading.Thread(target=bump, args=(c,)) for c in cs]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for c in cs:
        c.sync(b + "/n")
        assert Counter(c, b + "/n").value == 60
    for c in cs:
        stop(c)
    MAIN["zk"].delete(b, recursive=True)


def test_failover_keeps_session():
    """SIGKILL the leader: a client on the full connect string holding an ephemeral node and a
    Lock reconnects with the same session (SUSPENDED then CONNECTED, not LOST), still owns both,
    and writes afterwards; the survivors elect a new leader."""
    b = base("failover")
    modes = [srvr_mode(p) for p in PORTS]
    assert sorted(modes) == ["follower", "follower", "leader"], modes
    leader = modes.index("leader")
    states = Waiter()
    c = client(HOST, timeout=15.0)
    c.add_listener(states)
    session = c.client_id
    eph = c.create(b + "/eph", b"mine", ephemeral=True)
    lock = Lock(c, b + "/lock", "holder")
    assert lock.acquire(timeout=10)
    before = c.get_children(b + "/lock")
    print("client on member %d (port %d); killing the leader m%d (port %d, pid %d)"
          % (PORTS.index(connected_port(c)), connected_port(c), leader, PORTS[leader], PIDS[leader]))
    t_kill = time.monotonic()
    os.kill(PIDS[leader], signal.SIGKILL)
    states.wait_for(lambda s: s == KazooState.SUSPENDED, 20, "SUSPENDED after the leader died")
    states.wait_for(lambda s: s == KazooState.CONNECTED, 40, "CONNECTED again")
    print("reconnected after %.1f s to port %d" % (time.monotonic() - t_kill, connected_port(c)))
    assert KazooState.LOST not in states.snapshot(), states.snapshot()
    assert states.snapshot()[:2] == [KazooState.SUSPENDED, KazooState.CONNECTED], states.snapshot()
    assert c.client_id == session, (c.client_id, session)
    assert connected_port(c) != PORTS[leader]
    data, st = c.get(eph)
    assert data == b"mine" and st.ephemeralOwner == session[0], st
    assert c.get_children(b + "/lock") == before and lock.is_acquired
    assert lock.contenders() == ["holder"]
    # writes succeed afterwards, and another session on a survivor sees them and the ephemeral
    st2 = c.set(eph, b"after", version=0)
    assert st2.version == 1 and st2.mzxid > st.mzxid
    c.create(b + "/after-failover", b"ok")
    other = client(MEMBER[(leader + 1) % 3])
    other.sync(b)
    assert other.get(eph)[0] == b"after" and other.exists(eph).ephemeralOwner == session[0]
    assert other.get(b + "/after-failover")[0] == b"ok"
    # the lock is still exclusive: a contender on a survivor waits
    try:
        Lock(other, b + "/lock", "other").acquire(timeout=0.5)
        raise AssertionError("another session acquired the held lock after failover")
    except LockTimeout:
        pass
    lock.release()
    survivors = [p for i, p in enumerate(PORTS) if i != leader]
    wait_until(lambda: sorted(srvr_mode(p) or "-" for p in survivors) == ["follower", "leader"], 30,
               0.2, "a new leader and a follower among the survivors")
    assert len(states.snapshot()) == 2, states.snapshot()  # no further state changes
    stop(c)
    # the ephemeral ends with the session
    wait_until(lambda: other.exists(eph) is None, 10, 0.05, "ephemeral gone after the session closed")
    stop(other)
    MAIN["zk"].delete(b, recursive=True)


if __name__ == "__main__":
    run("kazoo_ensemble", [
        test_members_agree,
        test_watch_across_members,
        test_lock_across_members,
        test_election_across_members,
        test_counter_across_members,
        test_failover_keeps_session,
    ], budget_seconds=180, setup=setup, teardown=teardown)
