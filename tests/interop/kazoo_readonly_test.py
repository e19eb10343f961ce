#!/usr/bin/env python3
"""kazoo_readonly_test.py CONNECT_STRING ENSEMBLE_DIR

Read-only mode with real clients, against a 3-member ensemble that ensemble.sh started with
ENSEMBLE_CFG="readonlymode.enabled=true localSessionsEnabled=true" (run_ensemble_features.sh).
A kazoo client with read_only=True pinned to member 0 is connected read-write; the other two
members are killed (SIGKILL); member 0, left without a quorum, turns read-only and the client ends
up connected read-only (client_state CONNECTED_RO, its state listener called while in it): reads
work, writes raise NotReadOnlyCallError. zkCli.sh -r reads from it too and is refused a create.
The two members are started again; the client gets back to a read-write connection and writes.

Local sessions are on because ZooKeeper 3.8's read-only server makes new sessions only as local
sessions (without them it answers the handshake with a bare NOTREADONLY header, which no client
parses). The client's first session cannot continue read-only: a member that loses its quorum
drops its local sessions (ZooKeeper restarts its server; corral expires a reattach it does not
know), so kazoo is told its session expired (LOST) and makes a new, read-only one. Likewise the
read-only session ends with read-only mode, so kazoo gets a third session once read-write.
"""
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_runner import Waiter, four_letter, run, srvr_mode, wait_until  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NotReadOnlyCallError  # noqa: E402
from kazoo.protocol.states import KazooState, KeeperState  # noqa: E402

HOST = sys.argv[1]
DIR = sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
PORTS = [int(p) for p in open(os.path.join(DIR, "ports")).read().split()]
MEMBER = ["127.0.0.1:%d" % p for p in PORTS]
ROOT = "/kazoo_readonly_test"
NODE = ROOT + "/node"
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLIENTS = []
S = {}  # state shared by the steps, which run in order


def pid(i):
    return int(open(os.path.join(DIR, "m%d" % i, "pid")).read())





def client(hosts, **kw):
    c = KazooClient(hosts=hosts, timeout=10.0,
                    connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1},
                    command_retry={"max_tries": 5, "delay": 0.1, "max_delay": 1}, **kw)
    CLIENTS.append(c)
    return c


def teardown():
    for c in CLIENTS:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


# ----------------------------------------------------------------------------
def test_read_write_at_first():
    """A read_only=True client on member 0 of a healthy ensemble is connected read-write."""
    w = client(MEMBER[0])
    w.start(timeout=15)
    w.delete(ROOT, recursive=True)
    w.create(NODE, b"before", makepath=True)
    w.stop()
    c = client(MEMBER[0], read_only=True)
    states = Waiter()  # (KazooState, client_state at the time) from kazoo's listener thread
    c.add_listener(lambda st: states((st, c.client_state)))
    c.start(timeout=15)
    assert c.client_state == KeeperState.CONNECTED, c.client_state
    assert c.get(NODE)[0] == b"before"
    assert four_letter(PORTS[0], "isro") == "rw"
    S.update(c=c, states=states, sid=c.client_id[0])


def test_read_only_without_quorum():
    """Kill members 1 and 2: the client ends up connected read-only to member 0, which says
    so (isro, srvr); reads work, writes and sync raise NotReadOnlyCallError."""
    c, states = S["c"], S["states"]
    for i in (1, 2):
        print("killing m%d (port %d, pid %d)" % (i, PORTS[i], pid(i)))
        os.kill(pid(i), signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: c.client_state == KeeperState.CONNECTED_RO, 45, 0.05,
               "kazoo connected read-only (client_state %s)" % c.client_state)
    print("CONNECTED_RO %.2f s after the kill; listener saw %s"
          % (time.monotonic() - t0, [(str(a), str(b)) for a, b in states.snapshot()]))
    # kazoo's listener gets KazooState.CONNECTED for a read-only connection too; client_state
    # tells them apart. The old session is expired (LOST), the new one is read-only.
    states.wait_for(lambda e: e == (KazooState.CONNECTED, KeeperState.CONNECTED_RO), 5,
                    "the listener called with CONNECTED while client_state is CONNECTED_RO")
    assert states.snapshot() == [
        (KazooState.CONNECTED, KeeperState.CONNECTED),
        (KazooState.SUSPENDED, KeeperState.CONNECTING),
        (KazooState.LOST, KeeperState.EXPIRED_SESSION),
        (KazooState.CONNECTED, KeeperState.CONNECTED_RO)], states.snapshot()
    assert four_letter(PORTS[0], "isro") == "ro"
    assert srvr_mode(PORTS[0]) == "read-only", srvr_mode(PORTS[0])
    # a new session (the local one of the healthy ensemble did not survive), read-only
    assert c.client_id[0] != S["sid"], (c.client_id, S["sid"])
    data, st = c.get(NODE)
    assert data == b"before" and st.version == 0, (data, st)
    assert c.get_children(ROOT) == ["node"]
    assert c.exists(ROOT + "/missing") is None
    for name, call in (("create", lambda: c.create(ROOT + "/new", b"x")),
                       ("set", lambda: c.set(NODE, b"during")),
                       ("delete", lambda: c.delete(NODE)),
                       ("sync", lambda: c.sync(NODE))):
        try:
            call()
            raise AssertionError("%s succeeded on a read-only server" % name)
        except NotReadOnlyCallError:
            pass
    # refused writes change nothing, and the connection stays read-only
    assert c.get(NODE)[0] == b"before"
    assert c.client_state == KeeperState.CONNECTED_RO
    S["ro_sid"] = c.client_id[0]


def zkcli(cmds, timeout=60):
    """zkCli.sh -r against member 0, commands on stdin (no JLine); stdout+stderr."""
    env = dict(os.environ, TZ="UTC", CLIENT_JVMFLAGS="-Dzookeeper.jmx.log4j.disable=true")
    p = subprocess.run([ZKCLI, "-r", "-server", MEMBER[0]], input="".join(c + "\n" for c in cmds),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env)
    return p.stdout


def test_zkcli_read_only():
    """zkCli.sh -r (read-only allowed) reads from the read-only member; its create is refused
    with the not-read-only error."""
    out = zkcli(["get " + NODE, "ls " + ROOT, "create %s/from-zkcli x" % ROOT, "quit"])
    print(out)
    lines = [l.strip() for l in out.splitlines()]
    assert "WatchedEvent state:ConnectedReadOnly type:None path:null" in lines
    assert "before" in lines, "zkCli did not print the node's data"
    assert "[node]" in lines, "zkCli did not list the children"
    assert "Not a read-only call: %s/from-zkcli" % ROOT in lines, "no not-read-only error"
    assert not any(l.startswith("Created ") for l in lines)
    assert S["c"].exists(ROOT + "/from-zkcli") is None


def test_read_write_again():
    """Start members 1 and 2 again: the client gets back to a read-write connection (CONNECTED)
    and writes; the write reaches every member."""
    c, states = S["c"], S["states"]
    states.clear()
    for i in (1, 2):
        subprocess.run([os.path.join(HERE, "ensemble.sh"), "restart", DIR, str(i)], check=True,
                       timeout=30)
    t0 = time.monotonic()
    wait_until(lambda: c.client_state == KeeperState.CONNECTED
               and four_letter(PORTS[0], "isro") == "rw", 60, 0.1,
               "kazoo connected read-write again (client_state %s)" % c.client_state)
    print("CONNECTED (rw) %.2f s after the restart; listener saw %s"
          % (time.monotonic() - t0, [(str(a), str(b)) for a, b in states.snapshot()]))
    states.wait_for(lambda e: e == (KazooState.CONNECTED, KeeperState.CONNECTED), 5,
                    "the listener called with CONNECTED while client_state is CONNECTED")
    # the member closed the read-only connection when its election ended; the read-only
    # session ended with read-only mode (kazoo reattaches with it and is told it expired).
    # (Only the end is pinned: should a first election attempt fail, the member may serve
    # read-only once more in between.)
    assert states.snapshot()[-3:] == [
        (KazooState.SUSPENDED, KeeperState.CONNECTING),
        (KazooState.LOST, KeeperState.EXPIRED_SESSION),
        (KazooState.CONNECTED, KeeperState.CONNECTED)], states.snapshot()
    assert c.client_id[0] not in (S["sid"], S["ro_sid"])
    st = c.retry(c.set, NODE, b"after", version=0)
    assert st.version == 1
    c.retry(c.create, ROOT + "/new", b"rw")
    assert c.client_state == KeeperState.CONNECTED
    wait_until(lambda: sorted(srvr_mode(p) or "-" for p in PORTS) == ["follower", "follower", "leader"],
               60, 0.2, "one leader and two followers again")
    for m in MEMBER[1:]:
        o = client(m)
        o.start(timeout=15)
        o.sync(ROOT)
        assert o.get(NODE)[0] == b"after" and o.get(ROOT + "/new")[0] == b"rw"
        o.stop()
    c.delete(ROOT, recursive=True)


if __name__ == "__main__":
    run("kazoo_readonly", [
        test_read_write_at_first,
        test_read_only_without_quorum,
        test_zkcli_read_only,
        test_read_write_again,
    ], budget_seconds=200, teardown=teardown)
