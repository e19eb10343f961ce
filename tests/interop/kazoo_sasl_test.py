#!/usr/bin/env python3
"""kazoo_sasl_test.py HOST:PORT

kazoo with pure-sasl logs in with DIGEST-MD5 to a server whose JAAS Server section has
user_bob="bob-secret" and whose zoo.cfg registers the SASL auth provider (tests/sasl.rs
starts one). Checks whoAmI, a sasl:bob ACL, a wrong password, and that the server keeps
serving. Prints ALL OK at the end; any failure raises (exit status 1).
"""
import struct
import sys
import time

sys.dont_write_bytecode = True

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import (  # noqa: E402
    AuthFailedError, ConnectionClosedError, NoAuthError, SessionExpiredError)
from kazoo.handlers.threading import KazooTimeoutError  # noqa: E402
from kazoo.protocol.serialization import read_string  # noqa: E402
from kazoo.protocol.states import KeeperState  # noqa: E402
from kazoo.security import ACL, Id, Permissions  # noqa: E402

HOST = sys.argv[1]
INT = struct.Struct("!i")


class WhoAmI:
    """ZooKeeper 3.7's whoAmI (opcode 107), which kazoo has no call for."""

    type = 107

    def serialize(self):
        return b""

    @classmethod
    def deserialize(cls, buf, offset):
        n = INT.unpack_from(buf, offset)[0]
        offset += INT.size
        out = []
        for _ in range(n):
            scheme, offset = read_string(buf, offset)
            user, offset = read_string(buf, offset)
            out.append((scheme, user))
        return out


def client(**kw):
    c = KazooClient(hosts=HOST, timeout=10.0, connection_retry={"max_tries": 0}, **kw)
    return c


def sasl(user, password):
    return {"mechanism": "DIGEST-MD5", "username": user, "password": password}


def who_am_i(c):
    async_result = c.handler.async_result()
    c._call(WhoAmI(), async_result)
    return async_result.get(timeout=10)


bob = client(sasl_options=sasl("bob", "bob-secret"))
bob.start(timeout=20)
ids = who_am_i(bob)
print("whoami:", ids)
assert ("sasl", "bob") in ids, ids
acl = [ACL(Permissions.ALL, Id("sasl", "bob"))]
bob.create("/kazoo_sasl", b"bob's", acl=acl)
assert bob.get("/kazoo_sasl")[0] == b"bob's"
print("bob reads his node")

anonymous = client()
anonymous.start(timeout=20)
try:
    anonymous.get("/kazoo_sasl")
    raise AssertionError("an anonymous client read a sasl:bob node")
except NoAuthError:
    print("anonymous: NoAuth")

# A wrong password: the server answers the login with AUTHFAILED and closes; kazoo's start
# returns (or times out), then the client goes to AUTH_FAILED / CLOSED, and it cannot read.
wrong = client(sasl_options=sasl("bob", "wrong"))
try:
    wrong.start(timeout=10)
except KazooTimeoutError:
    pass
# kazoo reports CONNECTED before it logs in; the failure comes just after.
deadline = time.monotonic() + 10
while wrong.client_state == KeeperState.CONNECTED and time.monotonic() < deadline:
    time.sleep(0.05)
print("wrong password: client state", wrong.client_state)
assert wrong.client_state in (KeeperState.AUTH_FAILED, KeeperState.CLOSED), wrong.client_state
try:
    wrong.get("/kazoo_sasl")
    raise AssertionError("a client whose login failed read a sasl:bob node")
except (AuthFailedError, SessionExpiredError, ConnectionClosedError) as e:
    print("wrong password refused:", type(e).__name__)
wrong.stop()
wrong.close()

# The server keeps serving the others, and a new correct login works.
assert bob.get("/kazoo_sasl")[0] == b"bob's"
anonymous.get("/")
again = client(sasl_options=sasl("bob", "bob-secret"))
again.start(timeout=20)
assert again.get("/kazoo_sasl")[0] == b"bob's"
for c in (bob, anonymous, again):
    c.stop()
    c.close()
print("ALL OK")
