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
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_runner import Waiter, four_letter, run, srvr_mode, wait_until  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import LockTimeout  # noqa: E402
from kazoo.protocol.states import EventType, KazooState  # noqa: E402
from kazoo.recipe.counter import Counter  # noqa: E402
from kazoo.retry import KazooRetry  # noqa: E402
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


def is_corral(port):
    """Whether the member is corral (its version line says so) rather than ZooKeeper."""
    return "corral" in four_letter(port, "envi")


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
    for c in cs:
        # A Counter is a read-then-versioned-set loop, and a member answers the read from its
        # own replica, which may trail the others' latest increment: under three-way contention
        # several conflicts in a row are normal (on ZooKeeper too), so retry until it lands.
        c.retry = KazooRetry(max_tries=200, delay=0.005, max_delay=0.05)

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
    """SIGKILL the leader. Two clients on the full connect string, one connected to the leader
    (its host listed first, randomize_hosts off) and one to a follower, each hold an ephemeral
    node; the first holds a Lock, the second waits for it. Both keep their sessions (never
    LOST), their ephemerals and their places in the Lock, and write afterwards; the survivors
    elect a new leader; the lock then passes from the first to the second. The client of the
    dead leader goes SUSPENDED then CONNECTED once. The follower's client does the same on
    ZooKeeper, whose follower closes its clients when it loses its leader; corral's keeps them
    through a quick election (corral.electionGraceMs), so that client sees no state change."""
    corral = is_corral(PORTS[0])
    b_expected = [] if corral else [KazooState.SUSPENDED, KazooState.CONNECTED]
    b = base("failover")
    modes = [srvr_mode(p) for p in PORTS]
    assert sorted(modes) == ["follower", "follower", "leader"], modes
    leader = modes.index("leader")
    follower = (leader + 1) % 3
    order = lambda first: ",".join([MEMBER[first]] + [m for i, m in enumerate(MEMBER) if i != first])
    ca = KazooClient(hosts=order(leader), randomize_hosts=False, timeout=15.0,
                     connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1})
    cb = KazooClient(hosts=order(follower), randomize_hosts=False, timeout=15.0,
                     connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1})
    sa, sb = Waiter(), Waiter()
    for c, w in ((ca, sa), (cb, sb)):
        c.start(timeout=15)
        CLIENTS.append(c)
        c.add_listener(w)
    assert connected_port(ca) == PORTS[leader] and connected_port(cb) == PORTS[follower]
    ida, idb = ca.client_id, cb.client_id
    ea = ca.create(b + "/eph-a", b"a", ephemeral=True)
    eb = cb.create(b + "/eph-b", b"b", ephemeral=True)
    la, lb = Lock(ca, b + "/lock", "a"), Lock(cb, b + "/lock", "b")
    assert la.acquire(timeout=10)
    got = {}
    tb = threading.Thread(target=lambda: got.__setitem__("b", lb.acquire(timeout=60)))
    tb.start()
    wait_until(lambda: la.contenders() == ["a", "b"], 10, what="contenders a,b")
    print("killing the leader m%d (port %d, pid %d); client a on it, b on follower m%d"
          % (leader, PORTS[leader], PIDS[leader], follower))
    t_kill = time.monotonic()
    os.kill(PIDS[leader], signal.SIGKILL)
    sa.wait_for(lambda s: s == KazooState.SUSPENDED, 20, "a: SUSPENDED after the leader died")
    sa.wait_for(lambda s: s == KazooState.CONNECTED, 40, "a: CONNECTED again")
    print("a reconnected after %.3f s to port %d" % (time.monotonic() - t_kill, connected_port(ca)))
    # (kazoo's retry: should the connection drop again, the state check below names it; the
    # checks in between still run)
    data, st = ca.retry(ca.get, ea)
    print("a's states: %s" % [str(x) for x in sa.snapshot()])
    assert ca.client_id == ida and connected_port(ca) != PORTS[leader]
    assert KazooState.LOST not in sa.snapshot(), sa.snapshot()
    assert data == b"a" and st.ephemeralOwner == ida[0], st
    assert la.is_acquired and ca.retry(la.contenders) == ["a", "b"]
    # writes succeed afterwards (they need the new leader)
    st2 = ca.retry(ca.set, ea, b"after", version=0)
    assert st2.version == 1 and st2.mzxid > st.mzxid
    ca.retry(ca.create, b + "/after-failover", b"ok")
    # b, on a follower that lost its leader: same session, never LOST, and it writes too
    # (a member that loses its leader stops serving until a new one is elected, so b's connection
    # drops too; a could not write before b's member rejoined: two survivors make the quorum)
    if not corral:
        sb.wait_for(lambda s: s == KazooState.SUSPENDED, 20, "b: SUSPENDED when its member lost the leader")
        sb.wait_for(lambda s: s == KazooState.CONNECTED, 40, "b: CONNECTED again")
    cb.retry(cb.set, eb, b"b-after", version=0)
    print("b's states: %s; now on port %d" % ([str(x) for x in sb.snapshot()], connected_port(cb)))
    assert sb.snapshot() == b_expected, sb.snapshot()
    assert cb.client_id == idb
    cb.sync(b)
    assert cb.get(ea)[0] == b"after" and cb.exists(ea).ephemeralOwner == ida[0]
    assert cb.get(b + "/after-failover")[0] == b"ok"
    assert cb.exists(eb).ephemeralOwner == idb[0]
    # the lock is still exclusive, and passes on when a releases it
    assert "b" not in got
    released = time.monotonic()
    la.release()
    tb.join(20)
    assert got.get("b") is True and time.monotonic() - released < 20, got
    lb.release()
    survivors = [p for i, p in enumerate(PORTS) if i != leader]
    wait_until(lambda: sorted(srvr_mode(p) or "-" for p in survivors) == ["follower", "leader"], 30,
               0.2, "a new leader and a follower among the survivors")
    # exactly one interruption: a reattach is answered only by a member that serves under a live
    # leader, so the first CONNECTED after the kill is final
    assert sa.snapshot() == [KazooState.SUSPENDED, KazooState.CONNECTED], \
        "a's states: %s" % [str(x) for x in sa.snapshot()]
    assert sb.snapshot() == b_expected, "b's states: %s" % [str(x) for x in sb.snapshot()]
    stop(ca)
    # the ephemeral ends with the session
    wait_until(lambda: cb.exists(ea) is None, 10, 0.05, "a's ephemeral gone after its session closed")
    stop(cb)
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
