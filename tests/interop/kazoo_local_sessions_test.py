#!/usr/bin/env python3
"""kazoo_local_sessions_test.py local|upgrading CONNECT_STRING ENSEMBLE_DIR

Local sessions with kazoo, against a 3-member ensemble that ensemble.sh started with
ENSEMBLE_CFG="localSessionsEnabled=true" (`local`) or with localSessionsUpgradingEnabled=true
too (`upgrading`); run_ensemble_features.sh starts both.

`upgrading`: kazoo's Lock recipe (an ephemeral sequential node) works from a client pinned to a
follower, whose session starts local and becomes global with that create: the lock node's
ephemeralOwner is the client's session id on every member, a client on another member (the
leader) contends and waits, and closing the holder removes its node on every member and hands
the lock over.

`local`: an ephemeral create from kazoo, on each member, fails with EPHEMERALONLOCALSESSION
(-120); the session goes on (persistent creates, reads) and nothing was created. kazoo 2.10.0
has no exception class for -120 (an unknown code raises RuntimeError inside its connection
thread, which kills the connection loop), so the test registers one for the code through kazoo's
own decorator, as an application would, and checks the code.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_runner import run, srvr_mode, wait_until  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import EXCEPTIONS, LockTimeout, ZookeeperError, _zookeeper_exception  # noqa: E402
from kazoo.recipe.lock import Lock  # noqa: E402

MODE = sys.argv[1]
HOST = sys.argv[2]
DIR = sys.argv[3]
PORTS = [int(p) for p in open(os.path.join(DIR, "ports")).read().split()]
MEMBER = ["127.0.0.1:%d" % p for p in PORTS]
ROOT = "/kazoo_local_sessions_test"
CLIENTS = []

if -120 in EXCEPTIONS:
    EphemeralOnLocalSessionError = EXCEPTIONS[-120]
else:
    @_zookeeper_exception(-120)
    class EphemeralOnLocalSessionError(ZookeeperError):
        """EPHEMERALONLOCALSESSION: an ephemeral node from a local session (kazoo lacks it)."""


def client(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0,
                    connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1},
                    command_retry={"max_tries": 3, "delay": 0.1, "max_delay": 1})
    c.start(timeout=15)
    CLIENTS.append(c)
    return c


def stop(c):
    if c in CLIENTS:
        CLIENTS.remove(c)
    c.stop()
    c.close()


def connected_port(c):
    return c._connection._socket.getpeername()[1]


def setup():
    modes = [srvr_mode(p) for p in PORTS]
    assert sorted(modes) == ["follower", "follower", "leader"], modes
    c = client(HOST)
    c.delete(ROOT, recursive=True)
    c.create(ROOT)
    stop(c)


def teardown():
    for c in list(CLIENTS):
        try:
            stop(c)
        except Exception:
            pass


# ----------------------------------------------------------------------------
def test_lock_from_a_follower_upgrades_the_session():
    modes = [srvr_mode(p) for p in PORTS]
    f, leader = modes.index("follower"), modes.index("leader")
    path = ROOT + "/lock"
    holder = client(MEMBER[f])
    assert connected_port(holder) == PORTS[f]
    sid = holder.client_id[0]
    lock = Lock(holder, path, "holder")
    assert lock.acquire(timeout=10)
    node = path + "/" + holder.get_children(path)[0]
    assert holder.exists(node).ephemeralOwner == sid
    # the node and its owner are the same on every member
    pinned = [client(m) for m in MEMBER]
    for i, c in enumerate(pinned):
        c.sync(path)
        st = c.exists(node)
        assert st is not None and st.ephemeralOwner == sid, (i, st)
    # a client on the leader (its session upgraded by its own lock node) contends and waits
    waiter = pinned[leader]
    wlock = Lock(waiter, path, "waiter")
    try:
        wlock.acquire(timeout=0.5)
        raise AssertionError("a held lock was acquired")
    except LockTimeout:
        pass
    got = {}
    t = threading.Thread(target=lambda: got.__setitem__("w", wlock.acquire(timeout=30)))
    t.start()
    wait_until(lambda: Lock(waiter, path).contenders() == ["holder", "waiter"], 10,
               what="contenders holder, waiter")
    assert holder.client_id[0] == sid
    # closing the holder's session removes its node on every member; the lock moves
    closed = time.monotonic()
    stop(holder)
    t.join(20)
    assert got.get("w") is True and time.monotonic() - closed < 20, got
    for i, c in enumerate(pinned):
        c.sync(path)
        assert c.exists(node) is None, (i, node)
        assert Lock(c, path).contenders() == ["waiter"], i
    wlock.release()
    for c in pinned:
        stop(c)


def test_ephemeral_on_a_local_session_is_refused():
    for i, m in enumerate(MEMBER):
        c = client(m)
        assert connected_port(c) == PORTS[i]
        for kw in ({"ephemeral": True}, {"ephemeral": True, "sequence": True}):
            try:
                c.create("%s/eph-%d" % (ROOT, i), b"x", **kw)
                raise AssertionError("member %d: an ephemeral %r from a local session was created"
                                     % (i, kw))
            except EphemeralOnLocalSessionError as e:
                assert e.code == -120
        # the session goes on: a persistent create and reads work
        c.create("%s/plain-%d" % (ROOT, i), b"p")
        assert c.get("%s/plain-%d" % (ROOT, i))[0] == b"p"
        stop(c)
    c = client(MEMBER[0])
    c.sync(ROOT)
    assert sorted(c.get_children(ROOT)) == ["plain-0", "plain-1", "plain-2"], c.get_children(ROOT)
    stop(c)


if __name__ == "__main__":
    tests = {
        "upgrading": [test_lock_from_a_follower_upgrades_the_session],
        "local": [test_ephemeral_on_a_local_session_is_refused],
    }[MODE]
    run("kazoo_local_sessions_" + MODE, tests, budget_seconds=120, setup=setup,
        teardown=teardown)
