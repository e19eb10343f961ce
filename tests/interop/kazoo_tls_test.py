"""kazoo over TLS (use_ssl) against a server's secure client port.

usage: kazoo_tls_test.py HOST:PORT PKI_DIR

PKI_DIR holds ca.pem and, per client, NAME.crt/NAME.key: alice and bob (subjects
/O=corral/CN=NAME, signed by ca.pem) and mallory (signed by another CA). Checks: a session
over TLS; a node with ACL x509:<alice's DN> read by alice and refused to bob (NoAuth); an
x509 ACL id that is no DN refused (InvalidACL); mallory's handshake refused while the
others are served. Prints one "ok - ..." / "not ok - ..." line per check, then
"N passed, N failed"; exit status 0 only if nothing failed.
"""

import sys

from kazoo.client import KazooClient
from kazoo.exceptions import InvalidACLError, NoAuthError
from kazoo.security import ACL, Id, Permissions

HOSTS, PKI = sys.argv[1], sys.argv[2]
# Java's X500Principal.getName() of /O=corral/CN=alice: the RDNs in reverse order.
ALICE_DN = "CN=alice,O=corral"
passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {what}")
    else:
        failed += 1
        print(f"not ok - {what} {detail}")


def client(name, ca="ca.pem"):
    return KazooClient(
        hosts=HOSTS,
        use_ssl=True,
        certfile=f"{PKI}/{name}.crt",
        keyfile=f"{PKI}/{name}.key",
        ca=f"{PKI}/{ca}",
        verify_certs=True,
        timeout=10,
    )


alice = client("alice")
alice.start(timeout=20)
check("a session over TLS", alice.connected)
alice.create("/tls-alice", b"secret", acl=[ACL(Permissions.ALL, Id("x509", ALICE_DN))])
try:
    check("the owner reads her x509-protected node", alice.get("/tls-alice")[0] == b"secret")
except NoAuthError as e:
    check("the owner reads her x509-protected node", False, repr(e))
try:
    alice.create("/tls-bad", b"", acl=[ACL(Permissions.ALL, Id("x509", "not a name"))])
    check("an x509 ACL id that is no DN is refused", False, "(created)")
except InvalidACLError:
    check("an x509 ACL id that is no DN is refused", True)

bob = client("bob")
bob.start(timeout=20)
try:
    bob.get("/tls-alice")
    check("another certificate is refused the node", False, "(read it)")
except NoAuthError:
    check("another certificate is refused the node", True)

mallory = client("mallory")
try:
    mallory.start(timeout=5)
    check("a certificate from another CA is refused", False, "(connected)")
except Exception as e:  # kazoo gives up with a timeout when every handshake fails
    check("a certificate from another CA is refused", True, repr(e))
finally:
    mallory.stop()
    mallory.close()

check("the server still serves the others", bob.exists("/tls-alice") is not None)
for c in (alice, bob):
    c.stop()
    c.close()
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
