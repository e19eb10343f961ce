#!/usr/bin/env python3
"""zkpython_test.py HOST:PORT

Exercises the server with zkpython (Apache ZooKeeper's contrib Python binding
over the C client libzookeeper_mt), written the way its users write it.  Needs
the module built by build_zkpython.sh (run with the interop venv's python).
"""
import os
import re
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_runner import Waiter, run, wait_until  # noqa: E402
from partition_proxy import ProxyProcess  # noqa: E402

import zookeeper  # noqa: E402

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:2181"
OPEN_ACL = [{"perms": 0x1f, "scheme": "world", "id": "anyone"}]
ROOT = "/zkpython_test"
HANDLES = []

# the numbers users hard-code
SESSION_EVENT, CREATED, DELETED, CHANGED, CHILD = -1, 1, 2, 3, 4
CONNECTING, CONNECTED, EXPIRED = 1, 3, -112


def connect(host=HOST, timeout=10000, clientid=None):
    """zookeeper.init(), then wait for the session event with state connected."""
    w = Waiter()
    if clientid is None:
        h = zookeeper.init(host, w, timeout)
    else:
        h = zookeeper.init(host, w, timeout, clientid)
    HANDLES.append(h)
    w.wait_for(lambda e: e[1] == SESSION_EVENT and e[2] == CONNECTED, 15, "SyncConnected")
    assert zookeeper.state(h) == CONNECTED
    return h, w


def close(h):
    if h in HANDLES:
        HANDLES.remove(h)
        zookeeper.close(h)


def rm_rf(h, path):
    try:
        for c in zookeeper.get_children(h, path):
            rm_rf(h, path + "/" + c if path != "/" else "/" + c)
        zookeeper.delete(h, path)
    except zookeeper.NoNodeException:
        pass


MAIN = {}


def setup():
    # exercise the set_log_stream fix (io.IOBase check) and keep stderr quiet
    MAIN["log"] = open(os.path.join(tempfile.gettempdir(), "zkpython-interop-c-client.log"), "w")
    zookeeper.set_log_stream(MAIN["log"])
    zookeeper.set_debug_level(zookeeper.LOG_LEVEL_WARN)
    h, w = connect()
    MAIN["h"], MAIN["w"] = h, w
    rm_rf(h, ROOT)
    rm_rf(h, "/zkpython_create_node")
    for c in zookeeper.get_children(h, "/"):
        if c.startswith("zkpython_create_node"):
            rm_rf(h, "/" + c)
    zookeeper.create(h, ROOT, "", OPEN_ACL, 0)


def teardown():
    h = MAIN["h"]
    rm_rf(h, ROOT)
    rm_rf(h, "/zkpython_create_node")
    for c in zookeeper.get_children(h, "/"):
        if c.startswith("zkpython_create_node"):
            rm_rf(h, "/" + c)
    for x in list(HANDLES):
        close(x)


def test_constants():
    assert (zookeeper.CREATED_EVENT, zookeeper.DELETED_EVENT, zookeeper.CHANGED_EVENT,
            zookeeper.CHILD_EVENT, zookeeper.SESSION_EVENT) == (1, 2, 3, 4, -1)
    assert (zookeeper.CONNECTED_STATE, zookeeper.EXPIRED_SESSION_STATE) == (3, -112)
    assert (zookeeper.EPHEMERAL, zookeeper.SEQUENCE) == (1, 2)
    assert zookeeper.PERM_ALL == 0x1f


def test_connect_event():
    h, w = MAIN["h"], MAIN["w"]
    first = w.snapshot()[0]
    assert first == (h, SESSION_EVENT, CONNECTED, ""), first
    sid, passwd = zookeeper.client_id(h)
    assert sid != 0 and isinstance(passwd, bytes) and len(passwd) == 16
    # requested 10000 ms; within [2*tickTime, 20*tickTime] the server grants it
    assert zookeeper.recv_timeout(h) == 10000, zookeeper.recv_timeout(h)


def test_create_flags_from_brief():
    h = MAIN["h"]
    p = "/zkpython_create_node"
    assert zookeeper.create(h, p, "mydata1", OPEN_ACL, 0) == p
    data, stat = zookeeper.get(h, p)
    assert data == "mydata1"
    assert stat["version"] == 0 and stat["dataLength"] == 7 and stat["ephemeralOwner"] == 0
    assert stat["czxid"] == stat["mzxid"] == stat["pzxid"]
    assert stat["numChildren"] == 0 and stat["cversion"] == 0 and stat["aversion"] == 0
    assert stat["ctime"] == stat["mtime"] and abs(stat["ctime"] / 1000 - time.time()) < 600
    try:
        zookeeper.create(h, p, "mydata1", OPEN_ACL, 0)
        raise AssertionError("second create did not raise")
    except zookeeper.NodeExistsException:
        pass
    seq = zookeeper.create(h, p, "mydata1", OPEN_ACL, zookeeper.SEQUENCE)
    assert re.fullmatch(r"/zkpython_create_node\d{10}", seq), seq
    zookeeper.delete(h, p)
    eph = zookeeper.create(h, p, "mydata1", OPEN_ACL, zookeeper.EPHEMERAL)
    assert eph == p
    sid = zookeeper.client_id(h)[0]
    assert zookeeper.exists(h, p)["ephemeralOwner"] == sid
    es = zookeeper.create(h, p, "mydata1", OPEN_ACL, zookeeper.EPHEMERAL | zookeeper.SEQUENCE)
    assert re.fullmatch(r"/zkpython_create_node\d{10}", es), es
    assert int(es[-10:]) == int(seq[-10:]) + 2, (seq, es)  # root cversion: +seq, -p, +p
    assert zookeeper.exists(h, es)["ephemeralOwner"] == sid
    for x in (p, seq, es):
        zookeeper.delete(h, x)


def test_sequence_numbers_exact():
    h = MAIN["h"]
    base = ROOT + "/seq"
    zookeeper.create(h, base, "", OPEN_ACL, 0)
    got = [zookeeper.create(h, base + "/n-", str(i), OPEN_ACL, flags)
           for i, flags in enumerate([zookeeper.SEQUENCE, zookeeper.EPHEMERAL | zookeeper.SEQUENCE,
                                      zookeeper.SEQUENCE])]
    assert got == [base + "/n-0000000000", base + "/n-0000000001", base + "/n-0000000002"], got
    zookeeper.create(h, base + "/plain", "", OPEN_ACL, 0)  # bumps cversion too
    assert zookeeper.create(h, base + "/n-", "", OPEN_ACL, zookeeper.SEQUENCE) == base + "/n-0000000004"
    assert sorted(zookeeper.get_children(h, base)) == [
        "n-0000000000", "n-0000000001", "n-0000000002", "n-0000000004", "plain"]
    try:
        zookeeper.create(h, base + "/n-0000000001/child", "", OPEN_ACL, 0)
        raise AssertionError("child of an ephemeral was created")
    except zookeeper.NoChildrenForEphemeralsException:
        pass


def test_set_get_versions_and_errors():
    h = MAIN["h"]
    p = ROOT + "/data"
    zookeeper.create(h, p, "v0", OPEN_ACL, 0)
    assert zookeeper.set(h, p, "v1") == zookeeper.OK
    stat = zookeeper.set2(h, p, "v22", 1)
    assert stat["version"] == 2 and stat["dataLength"] == 3
    try:
        zookeeper.set(h, p, "x", 7)
        raise AssertionError("set with a wrong version succeeded")
    except zookeeper.BadVersionException:
        pass
    data, stat = zookeeper.get(h, p)
    assert data == "v22" and stat["version"] == 2 and stat["mzxid"] > stat["czxid"]
    assert zookeeper.exists(h, ROOT + "/missing") is None
    for fn in (lambda: zookeeper.get(h, ROOT + "/missing"),
               lambda: zookeeper.set(h, ROOT + "/missing", "x"),
               lambda: zookeeper.delete(h, ROOT + "/missing"),
               lambda: zookeeper.create(h, ROOT + "/missing/child", "", OPEN_ACL, 0)):
        try:
            fn()
            raise AssertionError("no NoNodeException")
        except zookeeper.NoNodeException:
            pass
    zookeeper.create(h, p + "/kid", "", OPEN_ACL, 0)
    try:
        zookeeper.delete(h, p)
        raise AssertionError("deleted a node with children")
    except zookeeper.NotEmptyException:
        pass
    try:
        zookeeper.delete(h, p + "/kid", 5)
        raise AssertionError("delete with a wrong version succeeded")
    except zookeeper.BadVersionException:
        pass
    zookeeper.delete(h, p + "/kid", 0)
    zookeeper.delete(h, p)
    # empty data vs. no data
    zookeeper.create(h, p, "", OPEN_ACL, 0)
    data, stat = zookeeper.get(h, p)
    assert data == "" and stat["dataLength"] == 0
    zookeeper.delete(h, p)


def test_watch_types():
    h, _ = MAIN["h"], MAIN["w"]
    h2, _ = connect()
    p = ROOT + "/watched"
    # 1 CREATED via exists watch
    w = Waiter()
    assert zookeeper.exists(h, p, w) is None
    zookeeper.create(h2, p, "a", OPEN_ACL, 0)
    w.wait_for(lambda e: True, 10, "created event")
    # 3 CHANGED via get watch
    data, _ = zookeeper.get(h, p, w)
    assert data == "a"
    zookeeper.set(h2, p, "b")
    w.wait_for(lambda e: e[1] == CHANGED, 10, "changed event")
    # 4 CHILD via get_children watch
    assert zookeeper.get_children(h, p, w) == []
    zookeeper.create(h2, p + "/c", "", OPEN_ACL, 0)
    w.wait_for(lambda e: e[1] == CHILD, 10, "child event")
    # 2 DELETED via get watch (exists watch on the child too)
    zookeeper.get(h, p, w)
    zookeeper.exists(h, p + "/c", w)
    zookeeper.delete(h2, p + "/c")
    w.wait_for(lambda e: e[1] == DELETED and e[3] == p + "/c", 10, "deleted event (child)")
    zookeeper.delete(h2, p)
    w.wait_for(lambda e: e[1] == DELETED and e[3] == p, 10, "deleted event")
    time.sleep(0.5)  # anything extra would arrive by now
    # deleting p also fires p's data watch as DELETED: the one set by get()
    # after the CHILD event (the child watch was consumed by the CHILD event).
    expect = [(h, CREATED, CONNECTED, p), (h, CHANGED, CONNECTED, p), (h, CHILD, CONNECTED, p),
              (h, DELETED, CONNECTED, p + "/c"), (h, DELETED, CONNECTED, p)]
    assert w.snapshot() == expect, w.snapshot()
    # watches are one-shot: more changes, no more events
    zookeeper.create(h2, p, "again", OPEN_ACL, 0)
    zookeeper.delete(h2, p)
    time.sleep(0.5)
    assert w.snapshot() == expect, w.snapshot()
    close(h2)


def test_get_and_exists_watch_same_node_one_event_each():
    h = MAIN["h"]
    h2, _ = connect()
    p = ROOT + "/twowatch"
    zookeeper.create(h, p, "x", OPEN_ACL, 0)
    wg, we = Waiter(), Waiter()
    zookeeper.get(h, p, wg)
    zookeeper.exists(h, p, we)
    zookeeper.set(h2, p, "y")
    wg.wait_for(lambda e: True, 10, "get watcher")
    we.wait_for(lambda e: True, 10, "exists watcher")
    time.sleep(0.3)
    assert wg.snapshot() == [(h, CHANGED, CONNECTED, p)], wg.snapshot()
    assert we.snapshot() == [(h, CHANGED, CONNECTED, p)], we.snapshot()
    zookeeper.delete(h, p)
    close(h2)


def test_async_api():
    h = MAIN["h"]
    p = ROOT + "/async"
    done = Waiter()
    zookeeper.acreate(h, p, "async-data", OPEN_ACL, 0, lambda hh, rc, path: done("create", hh, rc, path))
    done.wait_for(lambda e: e[0] == "create", 10, "acreate completion")
    zookeeper.aget(h, p, None, lambda hh, rc, data, stat: done("get", hh, rc, data, stat["version"]))
    done.wait_for(lambda e: e[0] == "get", 10, "aget completion")
    zookeeper.aget(h, p + "/none", None, lambda hh, rc, data, stat: done("get-missing", hh, rc))
    done.wait_for(lambda e: e[0] == "get-missing", 10, "aget completion (missing)")
    ev = done.snapshot()
    assert ev[0] == ("create", h, zookeeper.OK, p), ev
    assert ev[1] == ("get", h, zookeeper.OK, "async-data", 0), ev
    assert ev[2] == ("get-missing", h, zookeeper.NONODE), ev
    zookeeper.delete(h, p)


def test_acl_digest_and_noauth():
    h = MAIN["h"]
    h2, _ = connect()
    p = ROOT + "/secret"
    digest_id = "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ="  # base64(sha1("u:p"))
    acl = [{"perms": zookeeper.PERM_ALL, "scheme": "digest", "id": digest_id}]
    done = Waiter()
    assert zookeeper.add_auth(h, "digest", "u:p", done) == zookeeper.OK
    done.wait_for(lambda e: True, 10, "add_auth completion")
    assert done.snapshot() == [(h, zookeeper.OK)], done.snapshot()
    zookeeper.create(h, p, "hidden", acl, 0)
    stat, got = zookeeper.get_acl(h, p)
    assert got == acl, got
    assert stat["aversion"] == 0
    assert zookeeper.get(h, p)[0] == "hidden"
    for fn in (lambda: zookeeper.get(h2, p),
               lambda: zookeeper.set(h2, p, "x"),
               lambda: zookeeper.get_acl(h2, p),
               lambda: zookeeper.create(h2, p + "/kid", "", OPEN_ACL, 0)):
        try:
            fn()
            raise AssertionError("no NoAuthException")
        except zookeeper.NoAuthException:
            pass
    # an invalid ACL is rejected
    try:
        zookeeper.create(h, ROOT + "/badacl", "", [{"perms": 0x1f, "scheme": "nosuchscheme", "id": "x"}], 0)
        raise AssertionError("invalid ACL accepted")
    except zookeeper.InvalidACLException:
        pass
    # set_acl with version; second client authenticates and can read
    world_read = {"perms": zookeeper.PERM_READ, "scheme": "world", "id": "anyone"}
    assert zookeeper.set_acl(h, p, 0, acl + [world_read]) == zookeeper.OK
    assert zookeeper.get_acl(h, p)[1] == acl + [world_read]
    assert zookeeper.get_acl(h, p)[0]["aversion"] == 1
    assert zookeeper.get(h2, p)[0] == "hidden"
    try:
        zookeeper.set(h2, p, "x")
        raise AssertionError("write without WRITE permission succeeded")
    except zookeeper.NoAuthException:
        pass
    done2 = Waiter()
    zookeeper.add_auth(h2, "digest", "u:p", done2)
    done2.wait_for(lambda e: True, 10, "add_auth completion")
    zookeeper.set(h2, p, "x")
    zookeeper.delete(h, p)
    close(h2)


def test_session_expiry_by_takeover():
    """Another handle attaches to the session (client_id() + init(..., (sid,
    passwd))) and closes it; the original handle is told its session expired
    (state -112) when it reconnects.  The original handle sits behind a
    partition proxy so it cannot win the session back first (it would: the
    C client reconnects within milliseconds)."""
    host, port = HOST.split(",")[0].rsplit(":", 1)  # a connect string: proxy its first member
    proxy = ProxyProcess(host, int(port))
    try:
        h3, w3 = connect(proxy.address)
        p = ROOT + "/eph-takeover"
        zookeeper.create(h3, p, "", OPEN_ACL, zookeeper.EPHEMERAL)
        sid, passwd = zookeeper.client_id(h3)
        proxy.partition()
        h4, w4 = connect(clientid=(sid, passwd))
        assert zookeeper.client_id(h4)[0] == sid, "server did not re-attach the session"
        # the ephemeral survives the move to the other connection
        assert zookeeper.exists(MAIN["h"], p)["ephemeralOwner"] == sid
        assert zookeeper.exists(h4, p)["ephemeralOwner"] == sid
        close(h4)  # closes the session on the server
        # (on an ensemble MAIN["h"] may sit on another member, whose copy may briefly trail the
        # close that h4's member answered: sequential consistency, so wait, bounded)
        wait_until(lambda: zookeeper.exists(MAIN["h"], p) is None, 10, 0.05,
                   "the ephemeral gone for the main handle after the session's close")
        proxy.heal()
        w3.wait_for(lambda e: e[1] == SESSION_EVENT and e[2] == EXPIRED, 30,
                    "expired state on the original handle")
        assert (h3, SESSION_EVENT, EXPIRED, "") in w3.snapshot(), w3.snapshot()
        assert zookeeper.state(h3) == EXPIRED
        assert zookeeper.is_unrecoverable(h3)
        close(h3)
    finally:
        proxy.stop()


def test_wrong_password_is_expired():
    h, _ = MAIN["h"], MAIN["w"]
    sid = zookeeper.client_id(h)[0]
    w = Waiter()
    bad = zookeeper.init(HOST, w, 10000, (sid, b"\0" * 16))
    HANDLES.append(bad)
    w.wait_for(lambda e: e[2] == EXPIRED, 15, "expired state for a wrong password")
    assert zookeeper.state(bad) == EXPIRED
    close(bad)
    # The real session survives.  (Apache ZooKeeper 3.8 closes the session's
    # current connection as soon as another connection names the session id,
    # before it checks the password, so `h` may reconnect once; not required.)
    wait_until(lambda: zookeeper.state(h) == CONNECTED, 15, 0.1, "main handle connected again")
    assert zookeeper.client_id(h)[0] == sid
    assert wait_until(lambda: zookeeper.exists(h, ROOT), 10, 0.1, "exists() on the main handle")


def test_session_expiry_by_timeout():
    """The client is partitioned from the server for longer than the session
    timeout: the server expires the session (its ephemeral goes), and when
    the partition heals the client gets state -112."""
    host, port = HOST.split(",")[0].rsplit(":", 1)  # a connect string: proxy its first member
    proxy = ProxyProcess(host, int(port))
    try:
        h5, w5 = connect(proxy.address, timeout=4000)
        t = zookeeper.recv_timeout(h5)
        assert t == 4000, "negotiated timeout %d (expected 4000 = 2*tickTime)" % t
        p = ROOT + "/eph-timeout"
        zookeeper.create(h5, p, "", OPEN_ACL, zookeeper.EPHEMERAL)
        proxy.partition()
        w5.wait_for(lambda e: e[1] == SESSION_EVENT and e[2] == CONNECTING, 10, "connecting state")
        # server-side expiry: session timeout 4 s, checked every tickTime
        wait_until(lambda: zookeeper.exists(MAIN["h"], p) is None, 20, 0.2,
                   "the server to expire the partitioned session")
        proxy.heal()
        w5.wait_for(lambda e: e[1] == SESSION_EVENT and e[2] == EXPIRED, 20, "expired state after healing")
        assert zookeeper.state(h5) == EXPIRED
        close(h5)
    finally:
        proxy.stop()


def test_close_removes_ephemerals():
    h6, _ = connect()
    p = ROOT + "/eph-close"
    zookeeper.create(h6, p, "", OPEN_ACL, zookeeper.EPHEMERAL)
    w = Waiter()
    assert zookeeper.exists(MAIN["h"], p, w) is not None
    close(h6)
    w.wait_for(lambda e: e[1] == DELETED, 10, "ephemeral deleted on close")
    assert zookeeper.exists(MAIN["h"], p) is None


if __name__ == "__main__":
    run("zkpython", [
        test_constants,
        test_connect_event,
        test_create_flags_from_brief,
        test_sequence_numbers_exact,
        test_set_get_versions_and_errors,
        test_watch_types,
        test_get_and_exists_watch_same_node_one_event_each,
        test_async_api,
        test_acl_digest_and_noauth,
        test_session_expiry_by_takeover,
        test_wrong_password_is_expired,
        test_session_expiry_by_timeout,
        test_close_removes_ephemerals,
    ], budget_seconds=180, setup=setup, teardown=teardown)
