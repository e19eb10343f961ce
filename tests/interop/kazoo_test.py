#!/usr/bin/env python3
"""kazoo_test.py HOST:PORT

Exercises the server with kazoo (pure-Python client, PyPI) and its recipes.
Each test works under /kazoo_test/<test name> and cleans up after itself.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_runner import Waiter, run, wait_until  # noqa: E402
from partition_proxy import ProxyProcess  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import (  # noqa: E402
    BadVersionError, InvalidACLError, LockTimeout, NoAuthError, NoChildrenForEphemeralsError,
    NodeExistsError, NoNodeError, NotEmptyError, RolledBackError, RuntimeInconsistency)
from kazoo.protocol.states import EventType, KazooState, KeeperState  # noqa: E402
from kazoo.recipe.barrier import Barrier, DoubleBarrier  # noqa: E402
from kazoo.recipe.cache import TreeCache, TreeEvent  # noqa: E402
from kazoo.recipe.counter import Counter  # noqa: E402
from kazoo.recipe.election import Election  # noqa: E402
from kazoo.recipe.lock import Lock  # noqa: E402
from kazoo.recipe.party import Party, ShallowParty  # noqa: E402
from kazoo.recipe.queue import LockingQueue, Queue  # noqa: E402
from kazoo.recipe.watchers import ChildrenWatch, DataWatch  # noqa: E402
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl  # noqa: E402

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:2181"
ROOT = "/kazoo_test"
CLIENTS = []


def client(hosts=HOST, **kw):
    kw.setdefault("timeout", 10.0)
    # connection retries: unlimited (every wait in the tests is bounded)
    c = KazooClient(hosts=hosts, connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1},
                    command_retry={"max_tries": 3, "delay": 0.1, "max_delay": 1}, **kw)
    c.start(timeout=15)
    CLIENTS.append(c)
    return c


def seen(c, path):
    """Makes c's next reads see every write committed so far. With the full connect string of an
    ensemble, clients may sit on different members, and a member answers reads from its own copy,
    which may briefly lag another member's writes (ZooKeeper's sequential consistency: `sync`
    first for the latest). Against a single server it changes nothing."""
    c.sync(path)


def stop(c):
    if c in CLIENTS:
        CLIENTS.remove(c)
    try:
        c.stop()
        c.close()
    except Exception:
        pass


MAIN = {}


def zk():
    return MAIN["zk"]


def base(name):
    p = "%s/%s" % (ROOT, name)
    zk().delete(p, recursive=True)
    zk().ensure_path(p)
    return p


def setup():
    MAIN["zk"] = client()
    zk().delete(ROOT, recursive=True)
    zk().ensure_path(ROOT)


def teardown():
    zk().delete(ROOT, recursive=True)
    for c in list(CLIENTS):
        stop(c)


# ----------------------------------------------------------------------------
def test_crud_and_stat():
    b = base("crud")
    p = b + "/node"
    assert zk().create(p, b"hello") == p
    data, st = zk().get(p)
    assert data == b"hello"
    assert st.version == 0 and st.cversion == 0 and st.aversion == 0
    assert st.czxid == st.mzxid == st.pzxid and st.czxid > 0
    assert st.ephemeralOwner == 0 and st.dataLength == 5 and st.numChildren == 0
    assert st.ctime == st.mtime and abs(st.ctime / 1000.0 - time.time()) < 600
    parent = zk().exists(b)
    assert parent.numChildren == 1 and parent.pzxid == st.czxid and parent.cversion == 1
    st2 = zk().set(p, b"world", version=0)
    assert st2.version == 1 and st2.mzxid > st.mzxid and st2.czxid == st.czxid
    assert st2.dataLength == 5 and st2.mtime >= st.mtime
    # create2: include_data returns the new node's stat
    path, st3 = zk().create(b + "/with-stat", b"xyz", include_data=True)
    assert path == b + "/with-stat" and st3.dataLength == 3 and st3.version == 0
    assert st3.czxid > st2.mzxid
    # makepath / ensure_path
    deep = b + "/a/b/c"
    assert zk().create(deep, b"deep", makepath=True) == deep
    assert zk().exists(b + "/a/b").numChildren == 1
    zk().ensure_path(deep)  # idempotent
    assert sorted(zk().get_children(b)) == ["a", "node", "with-stat"]
    kids, pst = zk().get_children(b, include_data=True)
    assert sorted(kids) == ["a", "node", "with-stat"] and pst.numChildren == 3
    # delete with version, then the node is gone
    zk().delete(p, version=1)
    assert zk().exists(p) is None
    zk().delete(b + "/a", recursive=True)
    assert zk().get_children(b) == ["with-stat"]
    # deletes count in the parent's cversion: 4 creates + 2 deletes
    # (a's subtree is under a, so only a itself counts)
    pst = zk().exists(b)
    assert pst.cversion == 5 and pst.numChildren == 1, pst
    # empty and binary data
    zk().create(b + "/empty")
    assert zk().get(b + "/empty")[0] == b""
    blob = bytes(range(256)) * 3
    zk().create(b + "/blob", blob)
    assert zk().get(b + "/blob")[0] == blob
    # large value (jute.maxbuffer is 1 MiB by default; 900 KiB must work)
    big = os.urandom(900 * 1024)
    zk().create(b + "/big", big)
    assert zk().get(b + "/big")[0] == big
    # unicode path
    up = b + "/\u6c34\u6d52"
    zk().create(up, "\u6881\u5c71".encode("utf-8"))
    assert "\u6c34\u6d52" in zk().get_children(b)
    assert zk().get(up)[0].decode("utf-8") == "\u6881\u5c71"
    zk().delete(b, recursive=True)


def test_ephemeral_and_sequence():
    b = base("ephseq")
    c2 = client()
    sid = c2.client_id[0]
    e = c2.create(b + "/eph", b"e", ephemeral=True)
    seen(zk(), b)
    assert zk().exists(e).ephemeralOwner == sid
    got = [c2.create(b + "/s-", sequence=True),
           c2.create(b + "/s-", ephemeral=True, sequence=True),
           zk().create(b + "/s-", sequence=True)]
    assert got == [b + "/s-0000000001", b + "/s-0000000002", b + "/s-0000000003"], got
    assert zk().exists(got[1]).ephemeralOwner == sid
    try:
        c2.create(e + "/child")
        raise AssertionError("created a child of an ephemeral")
    except NoChildrenForEphemeralsError:
        pass
    w = Waiter()
    zk().exists(e, watch=w)
    stop(c2)  # closes the session: its ephemerals go, immediately
    w.wait_for(lambda ev: True, 10, "ephemeral deleted event")
    assert w.snapshot()[0].type == EventType.DELETED
    assert sorted(zk().get_children(b)) == ["s-0000000001", "s-0000000003"]
    # Sequence numbers come from the parent's count of creates (4 so far:
    # eph and three s-), deletions do not count and numbers are not reused.
    assert zk().create(b + "/s-", sequence=True) == b + "/s-0000000004"
    # whereas the client-visible cversion counts creates and deletes
    # (Apache ZooKeeper reports 2*creates - numChildren): 5 creates, 2 deletes
    assert zk().exists(b).cversion == 7, zk().exists(b)
    zk().delete(b, recursive=True)


def test_errors():
    b = base("errors")
    zk().create(b + "/n", b"v")
    for fn in (lambda: zk().set(b + "/n", b"x", version=3),
               lambda: zk().delete(b + "/n", version=3)):
        try:
            fn()
            raise AssertionError("no BadVersionError")
        except BadVersionError:
            pass
    for fn in (lambda: zk().get(b + "/missing"),
               lambda: zk().set(b + "/missing", b"x"),
               lambda: zk().delete(b + "/missing"),
               lambda: zk().get_children(b + "/missing"),
               lambda: zk().create(b + "/missing/child", b"")):
        try:
            fn()
            raise AssertionError("no NoNodeError")
        except NoNodeError:
            pass
    try:
        zk().create(b + "/n", b"again")
        raise AssertionError("no NodeExistsError")
    except NodeExistsError:
        pass
    zk().create(b + "/n/kid")
    try:
        zk().delete(b + "/n")
        raise AssertionError("no NotEmptyError")
    except NotEmptyError:
        pass
    # failed operations change nothing
    data, st = zk().get(b + "/n")
    assert data == b"v" and st.version == 0 and st.numChildren == 1
    zk().delete(b, recursive=True)


def test_acl_digest():
    b = base("acl")
    acl = make_digest_acl("u", "p", all=True)
    assert acl.id.id == "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ="
    authed = client(auth_data=[("digest", "u:p")])
    p = b + "/secret"
    authed.create(p, b"hidden", acl=[acl])
    seen(zk(), p)
    acls, st = authed.get_acls(p)
    assert len(acls) == 1 and acls[0].perms == 31 and acls[0].id.scheme == "digest"
    assert acls[0].id.id == "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=" and st.aversion == 0
    assert authed.get(p)[0] == b"hidden"
    for fn in (lambda: zk().get(p), lambda: zk().set(p, b"x"), lambda: zk().get_acls(p),
               lambda: zk().create(p + "/kid"), lambda: zk().set_acls(p, OPEN_ACL_UNSAFE)):
        try:
            fn()
            raise AssertionError("no NoAuthError")
        except NoAuthError:
            pass
    # exists needs no permission
    assert zk().exists(p).dataLength == 6
    # read-only for everyone, full for u
    world_read = ACL(Permissions.READ, Id("world", "anyone"))
    authed.set_acls(p, [acl, world_read], version=0)
    assert authed.get_acls(p)[0] == [acl, world_read]
    assert authed.get_acls(p)[1].aversion == 1
    seen(zk(), p)
    try:
        authed.set_acls(p, [acl], version=0)
        raise AssertionError("set_acls with a stale aversion succeeded")
    except BadVersionError:
        pass
    assert zk().get(p)[0] == b"hidden"
    try:
        zk().set(p, b"x")
        raise AssertionError("write with READ only succeeded")
    except NoAuthError:
        pass
    # a user who is not u: still read-only
    other = client(auth_data=[("digest", "u:wrong")])
    try:
        other.set(p, b"x")
        raise AssertionError("wrong password could write")
    except NoAuthError:
        pass
    # add_auth at run time
    zk().add_auth("digest", "u:p")
    zk().set(p, b"now")
    # invalid ACL
    try:
        authed.create(b + "/bad", acl=[ACL(Permissions.ALL, Id("nosuchscheme", "x"))])
        raise AssertionError("no InvalidACLError")
    except InvalidACLError:
        pass
    stop(other)
    stop(authed)
    zk().delete(b, recursive=True)


def test_raw_watches():
    b = base("watches")
    c2 = client()
    w = Waiter()
    p = b + "/w"
    assert zk().exists(p, watch=w) is None
    c2.create(p, b"1")
    w.wait_for(lambda e: e.type == EventType.CREATED, 10, "CREATED")
    zk().get(p, watch=w)
    c2.set(p, b"2")
    w.wait_for(lambda e: e.type == EventType.CHANGED, 10, "CHANGED")
    zk().get_children(p, watch=w)
    c2.create(p + "/k")
    w.wait_for(lambda e: e.type == EventType.CHILD, 10, "CHILD")
    zk().get(p, watch=w)
    c2.delete(p + "/k")
    c2.delete(p)
    w.wait_for(lambda e: e.type == EventType.DELETED, 10, "DELETED")
    time.sleep(0.5)
    ev = w.snapshot()
    assert [(e.type, e.state, e.path) for e in ev] == [
        (EventType.CREATED, KeeperState.CONNECTED, p), (EventType.CHANGED, KeeperState.CONNECTED, p),
        (EventType.CHILD, KeeperState.CONNECTED, p), (EventType.DELETED, KeeperState.CONNECTED, p)], ev
    stop(c2)
    zk().delete(b, recursive=True)


def test_data_and_children_watch_recipes():
    b = base("recipes-watch")
    c2 = client()
    p = b + "/dw"
    data_seen, kids_seen = Waiter(), Waiter()

    @DataWatch(zk(), p)
    def on_data(data, stat, event=None):
        data_seen((data, stat.version if stat else None, event.type if event else None))

    @ChildrenWatch(zk(), b)
    def on_kids(children):
        kids_seen(sorted(children))

    data_seen.wait_for(lambda e: e == (None, None, None), 10, "DataWatch initial call")
    kids_seen.wait_for(lambda e: e == [], 10, "ChildrenWatch initial call")
    c2.create(p, b"a")
    data_seen.wait_for(lambda e: e == (b"a", 0, EventType.CREATED), 10, "DataWatch created")
    kids_seen.wait_for(lambda e: e == ["dw"], 10, "ChildrenWatch +dw")
    c2.set(p, b"b")
    data_seen.wait_for(lambda e: e == (b"b", 1, EventType.CHANGED), 10, "DataWatch changed")
    c2.create(b + "/other")
    kids_seen.wait_for(lambda e: e == ["dw", "other"], 10, "ChildrenWatch +other")
    c2.delete(p)
    data_seen.wait_for(lambda e: e == (None, None, EventType.DELETED), 10, "DataWatch deleted")
    kids_seen.wait_for(lambda e: e == ["other"], 10, "ChildrenWatch -dw")
    stop(c2)
    zk().delete(b, recursive=True)


def test_lock_contention_and_order():
    b = base("lock")
    c1, c2, c3 = client(), client(), client()
    l1, l2, l3 = Lock(c1, b, "one"), Lock(c2, b, "two"), Lock(c3, b, "three")
    assert l1.acquire(timeout=10)
    order = []
    got = {}

    def contend(name, lk):
        lk.acquire(timeout=30)
        order.append(name)
        got[name] = time.monotonic()
        time.sleep(0.2)
        lk.release()

    t2 = threading.Thread(target=contend, args=("two", l2))
    t2.start()
    wait_until(lambda: l1.contenders() == ["one", "two"], 10, what="contenders one,two")
    t3 = threading.Thread(target=contend, args=("three", l3))
    t3.start()
    wait_until(lambda: l1.contenders() == ["one", "two", "three"], 10, what="contenders one,two,three")
    # a non-blocking / timed acquire by a fourth party fails while it is held
    c4 = client()
    try:
        Lock(c4, b, "four").acquire(timeout=0.5)
        raise AssertionError("a held lock was acquired")
    except LockTimeout:
        pass
    assert Lock(c4, b, "four").acquire(blocking=False) is False
    time.sleep(0.3)
    assert order == []  # nobody got it while one holds it
    l1.release()
    t2.join(20)
    t3.join(20)
    assert order == ["two", "three"], order
    # a holder whose session ends releases the lock (ephemeral node)
    assert l1.acquire(timeout=10)
    l4 = Lock(c4, b, "four")
    t4 = threading.Thread(target=lambda: got.__setitem__("four", l4.acquire(timeout=20)))
    t4.start()
    wait_until(lambda: l4.contenders() == ["one", "four"], 10, what="contenders one,four")
    stop(c1)
    t4.join(20)
    assert got.get("four") is True
    l4.release()
    for c in (c2, c3, c4):
        stop(c)
    zk().delete(b, recursive=True)


def test_election():
    b = base("election")
    c1, c2 = client(), client()
    e1, e2 = Election(c1, b, "alpha"), Election(c2, b, "beta")
    led = []
    release1 = threading.Event()

    def lead1():
        led.append("alpha")
        release1.wait(20)

    def lead2():
        led.append("beta")

    t1 = threading.Thread(target=e1.run, args=(lead1,))
    t1.start()
    wait_until(lambda: led == ["alpha"], 10, what="alpha elected")
    t2 = threading.Thread(target=e2.run, args=(lead2,))
    t2.start()
    wait_until(lambda: e1.contenders() == ["alpha", "beta"], 10, what="both contending")
    time.sleep(0.3)
    assert led == ["alpha"]
    release1.set()  # alpha's leadership function returns -> lock released
    t1.join(10)
    t2.join(10)
    assert led == ["alpha", "beta"], led
    stop(c1)
    stop(c2)
    zk().delete(b, recursive=True)


def test_barrier():
    b = base("barrier") + "/gate"
    c2 = client()
    bar = Barrier(zk(), b)
    bar.create()
    seen(c2, b)
    assert Barrier(c2, b).wait(timeout=0.5) is False
    result = {}
    t = threading.Thread(target=lambda: result.__setitem__("w", Barrier(c2, b).wait(timeout=20)))
    t.start()
    time.sleep(0.3)
    bar.remove()
    t.join(20)
    assert result.get("w") is True
    assert Barrier(c2, b).wait(timeout=1) is True
    stop(c2)
    zk().delete(ROOT + "/barrier", recursive=True)


def test_double_barrier():
    b = base("dbarrier") + "/db"
    c1, c2 = client(), client()
    d1, d2 = DoubleBarrier(c1, b, 2, "p1"), DoubleBarrier(c2, b, 2, "p2")
    log = []

    def party(name, d):
        d.enter()
        log.append(("in", name))
        time.sleep(0.2)
        d.leave()
        log.append(("out", name))

    t1 = threading.Thread(target=party, args=("p1", d1))
    t1.start()
    time.sleep(0.5)
    assert log == []  # p1 waits for p2 to enter
    t2 = threading.Thread(target=party, args=("p2", d2))
    t2.start()
    t1.join(20)
    t2.join(20)
    assert sorted(log[:2]) == [("in", "p1"), ("in", "p2")], log
    assert sorted(log[2:]) == [("out", "p1"), ("out", "p2")], log
    stop(c1)
    stop(c2)
    zk().delete(ROOT + "/dbarrier", recursive=True)


def test_queues():
    b = base("queue")
    c2 = client()
    q = Queue(zk(), b + "/q")
    for v, prio in ((b"a", 100), (b"b", 100), (b"urgent", 10), (b"c", 100)):
        q.put(v, priority=prio)
    assert len(q) == 4
    seen(c2, b)
    q2 = Queue(c2, b + "/q")
    assert [q2.get() for _ in range(4)] == [b"urgent", b"a", b"b", b"c"]
    assert q2.get() is None and len(q) == 0
    lq = LockingQueue(zk(), b + "/lq")
    lq.put(b"one")
    lq.put_all([b"two", b"three"])
    lq.put(b"zero", priority=1)
    assert len(lq) == 4
    seen(c2, b)
    lq2 = LockingQueue(c2, b + "/lq")
    assert lq2.get(timeout=5) == b"zero"
    assert lq2.holds_lock()
    # another consumer does not see the locked item
    assert lq.get(timeout=5) == b"one"
    assert lq2.consume() is True and lq.release() is True  # lq gives "one" back
    got = []
    for _ in range(3):
        got.append(lq2.get(timeout=5))
        assert lq2.consume()
    assert got == [b"one", b"two", b"three"], got
    assert lq2.get(timeout=0.5) is None and len(lq) == 0
    stop(c2)
    zk().delete(b, recursive=True)


def test_counter():
    b = base("counter")
    c2, c3 = client(), client()
    cnt = Counter(zk(), b + "/n")
    cnt += 5
    cnt -= 2
    assert cnt.value == 3 and cnt.pre_value == 5 and cnt.post_value == 3
    # concurrent increments from two sessions: versioned sets + retries
    def bump(c):
        k = Counter(c, b + "/n")
        for _ in range(20):
            k += 1

    ts = [threading.Thread(target=bump, args=(c,)) for c in (c2, c3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    seen(zk(), b + "/n")
    assert Counter(zk(), b + "/n").value == 43
    fc = Counter(zk(), b + "/f", default=0.0)
    fc += 2.5
    assert fc.value == 2.5
    stop(c2)
    stop(c3)
    zk().delete(b, recursive=True)


def test_party():
    b = base("party")
    c2 = client()
    p1, p2 = Party(zk(), b + "/p", "m1"), Party(c2, b + "/p", "m2")
    p1.join()
    p2.join()
    seen(zk(), b)
    assert sorted(p1) == ["m1", "m2"] and len(p1) == 2
    p1.leave()
    seen(c2, b)
    assert list(p2) == ["m2"]
    stop(c2)  # ephemeral membership ends with the session
    wait_until(lambda: len(p1) == 0, 10, 0.05, "m2 to leave when its session closed")
    s1 = ShallowParty(zk(), b + "/s", "x")
    s1.join()
    assert list(s1) == ["x"]
    s1.leave()
    assert len(s1) == 0
    zk().delete(b, recursive=True)


def test_tree_cache():
    b = base("treecache") + "/tree"
    zk().create(b + "/pre", b"p", makepath=True)
    c2 = client()
    ev = Waiter()
    tc = TreeCache(zk(), b)
    tc.listen(lambda e: ev((e.event_type, e.event_data.path if e.event_data else None,
                            e.event_data.data if e.event_data else None)))
    tc.start()
    ev.wait_for(lambda e: e[0] == TreeEvent.INITIALIZED, 10, "INITIALIZED")
    assert (TreeEvent.NODE_ADDED, b, b"") in ev.snapshot()
    assert (TreeEvent.NODE_ADDED, b + "/pre", b"p") in ev.snapshot()
    c2.create(b + "/new", b"n")
    ev.wait_for(lambda e: e == (TreeEvent.NODE_ADDED, b + "/new", b"n"), 10, "NODE_ADDED /new")
    c2.create(b + "/new/deep", b"d")
    ev.wait_for(lambda e: e == (TreeEvent.NODE_ADDED, b + "/new/deep", b"d"), 10, "NODE_ADDED deep")
    c2.set(b + "/pre", b"p2")
    ev.wait_for(lambda e: e == (TreeEvent.NODE_UPDATED, b + "/pre", b"p2"), 10, "NODE_UPDATED /pre")
    assert tc.get_data(b + "/pre").data == b"p2"
    assert sorted(tc.get_children(b)) == ["new", "pre"]
    c2.delete(b + "/new", recursive=True)
    ev.wait_for(lambda e: e[0] == TreeEvent.NODE_REMOVED and e[1] == b + "/new", 10, "NODE_REMOVED /new")
    ev.wait_for(lambda e: e[0] == TreeEvent.NODE_REMOVED and e[1] == b + "/new/deep", 10,
                "NODE_REMOVED deep")
    assert tc.get_data(b + "/new") is None and sorted(tc.get_children(b)) == ["pre"]
    tc.close()
    stop(c2)
    zk().delete(ROOT + "/treecache", recursive=True)


def test_transactions():
    b = base("txn")
    zk().create(b + "/existing", b"e")
    t = zk().transaction()
    t.create(b + "/t1", b"one")
    t.create(b + "/t1/kid", b"k")
    t.set_data(b + "/existing", b"e2", version=0)
    t.check(b + "/existing", 1)
    t.delete(b + "/existing", version=1)
    res = t.commit()
    assert res == [b + "/t1", b + "/t1/kid", res[2], True, True], res
    assert res[2].version == 1  # set_data returns the new stat
    assert zk().exists(b + "/existing") is None and zk().get(b + "/t1/kid")[0] == b"k"
    # a failing op: nothing is applied; per-op results: ops before the failing
    # one report "rolled back" (code 0 in an error result), the failing op
    # its error, ops after it RuntimeInconsistency (-2)
    t = zk().transaction()
    t.create(b + "/t2", b"two")
    t.set_data(b + "/t1", b"x", version=5)  # wrong version
    t.delete(b + "/t1/kid")
    res = t.commit()
    assert len(res) == 3, res
    assert isinstance(res[0], RolledBackError), res
    assert isinstance(res[1], BadVersionError), res
    assert isinstance(res[2], RuntimeInconsistency), res
    assert zk().exists(b + "/t2") is None and zk().exists(b + "/t1/kid") is not None
    assert zk().get(b + "/t1")[1].version == 0
    # failing create (exists) and check on a missing node
    t = zk().transaction()
    t.create(b + "/t1")
    res = t.commit()
    assert len(res) == 1 and isinstance(res[0], NodeExistsError), res
    t = zk().transaction()
    t.check(b + "/missing", 0)
    t.create(b + "/t3")
    res = t.commit()
    assert isinstance(res[0], NoNodeError) and isinstance(res[1], RuntimeInconsistency), res
    # context-manager form
    with zk().transaction() as t:
        t.create(b + "/t4", b"4")
    assert zk().get(b + "/t4")[0] == b"4"
    zk().delete(b, recursive=True)


def test_session_expiry_and_states():
    """The client (behind a partition proxy) loses its session because
    another client takes the session over (client_id) and closes it; kazoo
    goes SUSPENDED then LOST and the ephemeral is gone."""
    b = base("expiry")
    host, port = HOST.split(",")[0].rsplit(":", 1)  # a connect string: proxy its first member
    proxy = ProxyProcess(host, int(port))
    try:
        states = Waiter()
        c = client(proxy.address)
        c.add_listener(states)
        c.create(b + "/eph", ephemeral=True)
        session = c.client_id
        proxy.partition()
        states.wait_for(lambda s: s == KazooState.SUSPENDED, 15, "SUSPENDED")
        thief = KazooClient(hosts=HOST, client_id=session, timeout=10.0)
        thief.start(timeout=15)
        assert thief.client_id[0] == session[0]
        assert zk().exists(b + "/eph").ephemeralOwner == session[0]
        thief.stop()
        thief.close()
        # kazoo's stop() sends closeSession but may return before its reply (its loop exits on
        # the stop flag), so the deletion is awaited rather than assumed.
        wait_until(lambda: zk().exists(b + "/eph") is None, 10, 0.05,
                   "ephemeral removed once the taken-over session is closed")
        proxy.heal()
        states.wait_for(lambda s: s == KazooState.LOST, 30, "LOST")
        # kazoo starts a new session by itself afterwards
        wait_until(lambda: c.state == KazooState.CONNECTED, 30, 0.1, "reconnected with a new session")
        assert c.exists(b) is not None and c.client_id[0] != session[0]
        stop(c)
    finally:
        proxy.stop()
    zk().delete(b, recursive=True)


if __name__ == "__main__":
    run("kazoo", [
        test_crud_and_stat,
        test_ephemeral_and_sequence,
        test_errors,
        test_acl_digest,
        test_raw_watches,
        test_data_and_children_watch_recipes,
        test_lock_contention_and_order,
        test_election,
        test_barrier,
        test_double_barrier,
        test_queues,
        test_counter,
        test_party,
        test_tree_cache,
        test_transactions,
        test_session_expiry_and_states,
    ], budget_seconds=240, setup=setup, teardown=teardown)
