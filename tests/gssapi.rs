//! SASL GSSAPI (Kerberos) on the client port, with a real MIT KDC (tests/common/kdc.rs),
//! zkCli.sh logging in through a JAAS `Client` section with Krb5LoginModule (the way Kafka,
//! HBase and Hadoop deployments secure ZooKeeper) and kazoo with pure-sasl: the `sasl:<principal>` identity (whoami,
//! ACLs, superUser), a ticket the server's keytab cannot read, a garbage token. Every case
//! also runs against Apache ZooKeeper (CORRAL_TEST_TARGET=zookeeper).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::kdc::{Kdc, REALM, SERVICE};
use common::raw::{err, op, Dec, Enc, RawConn};
use common::*;

const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

/// A JAAS file holding `text`, in the realm's dir.
fn jaas(kdc: &Kdc, name: &str, text: &str) -> PathBuf {
    let p = kdc.dir().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A server whose JAAS `Server` section logs in as zookeeper/localhost from its keytab.
async fn kerberized_server(kdc: &Kdc, extra: &[(&str, &str)]) -> TestServer {
    let server_jaas = jaas(kdc, "server.jaas", &kdc.jaas_section("Server", SERVICE));
    let mut opts = ServerOpts::new()
        .cfg("corral.jaasConfig", server_jaas.display())
        .cfg("corral.krb5Config", kdc.krb5_conf().display())
        .cfg("authProvider.1", SASL_PROVIDER);
    for (k, v) in extra {
        opts = opts.cfg(k, v);
    }
    TestServer::start(opts).await
}

/// zkCli.sh on `localhost` (the host of the service principal) logged in as `user`, running
/// `cmds`; its transcript.
fn zkcli(kdc: &Kdc, s: &TestServer, user: &str, cmds: &str) -> String {
    let cmd = Command::new("/usr/share/zookeeper/bin/zkCli.sh");
    shell(cmd, kdc, s, user, ("localhost", ""), cmds)
}

/// `corral cli`, with the same JAAS file and flags as zkCli.sh.
fn corral_cli(kdc: &Kdc, s: &TestServer, user: &str, cmds: &str) -> String {
    corral_cli_at(kdc, s, user, ("localhost", ""), cmds)
}

/// `corral cli` reaching the server as `host`, with more `-D` flags.
fn corral_cli_at(
    kdc: &Kdc,
    s: &TestServer,
    user: &str,
    host_and_flags: (&str, &str),
    cmds: &str,
) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["cli", "-timeout", "5000"]);
    shell(cmd, kdc, s, user, host_and_flags, cmds)
}

fn shell(
    mut cmd: Command,
    kdc: &Kdc,
    s: &TestServer,
    user: &str,
    (host, flags): (&str, &str),
    cmds: &str,
) -> String {
    let client_jaas = jaas(
        kdc,
        &format!("{}.jaas", user.replace('/', "_")),
        &kdc.jaas_section("Client", user),
    );
    let port = s.addr().rsplit(':').next().unwrap().to_string();
    cmd.args(["-server", &format!("{host}:{port}")])
        .env(
            "CLIENT_JVMFLAGS",
            format!(
                "-Djava.security.auth.login.config={} -Djava.security.krb5.conf={} {flags}",
                client_jaas.display(),
                kdc.krb5_conf().display()
            ),
        )
        .env(
            "JVMFLAGS",
            "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        .env("ZOO_LOG4J_PROP", "ERROR,CONSOLE");
    let out = run_within(
        &mut cmd,
        &format!("{cmds}\nquit\n"),
        Duration::from_secs(90),
    );
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zkcli_logs_in_with_kerberos() {
    timed(300, async {
        let kdc = Kdc::start(&["alice", "bob", "carol"]);
        let s = kerberized_server(&kdc, &[("superUser", &format!("carol@{REALM}"))]).await;
        let k = &kdc;
        let alice = tokio::task::block_in_place(|| {
            zkcli(
                k,
                &s,
                "alice",
                &format!(
                    "whoami\ncreate /k secretdata sasl:alice@{REALM}:cdrwa\nget /k\ngetAcl /k"
                ),
            )
        });
        // whoami: "Auth scheme: User" then one "<scheme>: <user>" line per id.
        assert!(
            alice.contains(&format!("\nsasl: alice@{REALM}\n")),
            "{alice}"
        );
        assert!(alice.contains("Created /k"), "{alice}");
        assert!(alice.contains("secretdata"), "{alice}");
        assert!(alice.contains(&format!("'sasl,'alice@{REALM}")), "{alice}");
        // Another principal is not alice; the super user is.
        let bob = tokio::task::block_in_place(|| zkcli(k, &s, "bob", "whoami\nget /k"));
        assert!(bob.contains(&format!("\nsasl: bob@{REALM}\n")), "{bob}");
        assert!(bob.contains("Insufficient permission"), "{bob}");
        assert!(!bob.contains("secretdata"), "{bob}");
        let carol = tokio::task::block_in_place(|| zkcli(k, &s, "carol", "whoami\nget /k"));
        assert!(
            carol.contains("\nsuper: \n") || carol.contains("\nsuper:"),
            "{carol}"
        );
        assert!(carol.contains("secretdata"), "{carol}");
        // Tokens that are not a Kerberos AP-REQ for this service (an empty first token, as a
        // DIGEST-MD5 client sends; bytes that are no GSS token): AUTHFAILED with a null token,
        // then the connection closes.
        for token in [&b""[..], b"\x60\x05garbage"] {
            let mut r = s.raw().await;
            login_fails(&mut r, token).await;
        }
        // Anonymous: not readable.
        let mut anonymous = s.raw().await;
        assert_eq!(anonymous.get_data("/k", false).await.err, err::NO_AUTH);
        // The service gets a new key its keytab does not hold: a ticket for it cannot be read
        // there, so the login fails, and the server goes on serving.
        kdc.rotate_key(SERVICE);
        let failed = tokio::task::block_in_place(|| zkcli(k, &s, "alice", "get /k"));
        assert!(!failed.contains("secretdata"), "{failed}");
        assert!(failed.contains("AuthFailed"), "{failed}");
        let mut r = s.raw().await;
        assert_eq!(r.get_data("/k", false).await.err, err::NO_AUTH);
    })
    .await
}

/// `corral cli` logs in with Kerberos from the same JAAS `Client` section zkCli.sh takes:
/// whoami, an ACL only alice passes, and AuthFailed when the server cannot read the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corral_cli_logs_in_with_kerberos() {
    timed(300, async {
        let kdc = Kdc::start(&["alice", "bob"]);
        let s = kerberized_server(&kdc, &[]).await;
        let k = &kdc;
        let alice = tokio::task::block_in_place(|| {
            corral_cli(
                k,
                &s,
                "alice",
                &format!("whoami\ncreate /c clidata sasl:alice@{REALM}:cdrwa\nget /c"),
            )
        });
        assert!(alice.contains("SaslAuthenticated"), "{alice}");
        assert!(
            alice.contains(&format!("\nsasl: alice@{REALM}\n")),
            "{alice}"
        );
        assert!(alice.contains("clidata"), "{alice}");
        let bob = tokio::task::block_in_place(|| corral_cli(k, &s, "bob", "get /c"));
        assert!(bob.contains("Insufficient permission"), "{bob}");
        // zkCli.sh as alice reads what corral cli as alice wrote.
        let zk = tokio::task::block_in_place(|| zkcli(k, &s, "alice", "get /c"));
        assert!(zk.contains("clidata"), "{zk}");
        // By address without canonicalization the server would be zookeeper/127.0.0.1, which
        // the KDC does not know; zookeeper.server.principal names it.
        let no = "-Dzookeeper.sasl.client.canonicalize.hostname=false";
        let unknown = tokio::task::block_in_place(|| {
            corral_cli_at(k, &s, "alice", ("127.0.0.1", no), "get /c")
        });
        assert!(unknown.contains("AuthFailed"), "{unknown}");
        let named = tokio::task::block_in_place(|| {
            corral_cli_at(
                k,
                &s,
                "alice",
                (
                    "127.0.0.1",
                    &format!("{no} -Dzookeeper.server.principal={SERVICE}"),
                ),
                "get /c",
            )
        });
        assert!(named.contains("clidata"), "{named}");
        kdc.rotate_key(SERVICE);
        let failed = tokio::task::block_in_place(|| corral_cli(k, &s, "alice", "get /c"));
        assert!(failed.contains("AuthFailed"), "{failed}");
        assert!(!failed.contains("clidata"), "{failed}");
    })
    .await
}

/// kazoo (Debian's python3-kazoo, with pure-sasl over pykerberos) as `user`, MIT's client
/// keytab giving it its ticket; runs `script` after connecting as `zk`. Its output.
fn kazoo(kdc: &Kdc, s: &TestServer, user: &str, script: &str) -> String {
    let port = s.addr().rsplit(':').next().unwrap().to_string();
    let program = format!(
        "import sys\nfrom kazoo.client import KazooClient\nfrom kazoo.security import make_acl\n\
         zk = KazooClient(hosts='localhost:{port}', sasl_options={{'mechanism': 'GSSAPI'}}, timeout=10)\n\
         zk.start(timeout=30)\n{script}\nzk.stop()\nprint('ALL OK')\n"
    );
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", &program])
        .env("KRB5_CONFIG", kdc.krb5_conf())
        .env("KRB5_CLIENT_KTNAME", kdc.keytab(user))
        .env("KRB5CCNAME", format!("MEMORY:{user}"));
    let out = run_within(&mut cmd, "", Duration::from_secs(60));
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_logs_in_with_kerberos() {
    timed(300, async {
        let kdc = Kdc::start(&["alice", "bob"]);
        let s = kerberized_server(&kdc, &[]).await;
        let k = &kdc;
        let alice = tokio::task::block_in_place(|| {
            kazoo(
                k,
                &s,
                "alice",
                &format!(
                    "zk.create('/kz', b'kazoo-secret', acl=[make_acl('sasl', 'alice@{REALM}', all=True)])\n\
                     print(zk.get('/kz')[0])"
                ),
            )
        });
        assert!(alice.contains("b'kazoo-secret'") && alice.contains("ALL OK"), "{alice}");
        let bob = tokio::task::block_in_place(|| {
            kazoo(
                k,
                &s,
                "bob",
                "from kazoo.exceptions import NoAuthError\n\
                 try:\n    zk.get('/kz')\n    print('READ IT')\nexcept NoAuthError:\n    print('no auth')",
            )
        });
        assert!(bob.contains("no auth") && bob.contains("ALL OK"), "{bob}");
        // zkCli.sh as alice reads what kazoo as alice wrote.
        let cli = tokio::task::block_in_place(|| zkcli(k, &s, "alice", "get /kz"));
        assert!(cli.contains("kazoo-secret"), "{cli}");
    })
    .await
}

/// `kerberos.removeHostFromPrincipal`, `kerberos.removeRealmFromPrincipal` and
/// `security.auth_to_local` make the `sasl` id as ZooKeeper's name rules do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_names_lose_host_and_realm_when_told() {
    timed(300, async {
        let kdc = Kdc::start(&["app/localhost", "alice"]);
        let k = &kdc;
        let s = kerberized_server(&kdc, &[("kerberos.removeHostFromPrincipal", "true")]).await;
        let app = tokio::task::block_in_place(|| zkcli(k, &s, "app/localhost", "whoami"));
        assert!(app.contains(&format!("\nsasl: app@{REALM}\n")), "{app}");
        drop(s);
        let s = kerberized_server(
            &kdc,
            &[
                ("kerberos.removeHostFromPrincipal", "true"),
                ("kerberos.removeRealmFromPrincipal", "true"),
            ],
        )
        .await;
        for (user, id) in [("app/localhost", "app"), ("alice", "alice")] {
            let out = tokio::task::block_in_place(|| zkcli(k, &s, user, "whoami"));
            assert!(out.contains(&format!("\nsasl: {id}\n")), "{out}");
        }
        drop(s);
        // Hadoop-style auth_to_local rules, the first that gives a name winning.
        let s = kerberized_server(
            &kdc,
            &[
                (
                    "security.auth_to_local",
                    "RULE:[1:$1@$0](alice@CORRAL.TEST)s/.*/admin/ DEFAULT",
                ),
                ("kerberos.removeRealmFromPrincipal", "true"),
            ],
        )
        .await;
        for (user, id) in [("alice", "admin"), ("app/localhost", "app/localhost")] {
            let out = tokio::task::block_in_place(|| zkcli(k, &s, user, "whoami"));
            assert!(out.contains(&format!("\nsasl: {id}\n")), "{out}");
        }
    })
    .await
}

/// A failed login: AUTHFAILED with a null token, then the server closes the connection.
async fn login_fails(r: &mut RawConn, token: &[u8]) {
    let rep = r
        .call(op::SASL, &Enc::new().buf(Some(token)).finish())
        .await
        .unwrap();
    assert_eq!(rep.err, err::AUTH_FAILED, "{token:?}");
    assert_eq!(Dec::new(&rep.body).buf(), None);
    match r.recv_timeout(Duration::from_secs(10)).await {
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "not closed"),
        Ok(rep) => panic!("the connection stayed open (a frame with err {})", rep.err),
    }
}

/// A Kerberos login corral cannot accept with stops the start with the reason, as
/// ZooKeeper's failed login does: a keytab without the service's key, no keytab at all.
#[test]
fn unusable_kerberos_logins_stop_the_start() {
    let kdc = Kdc::start(&["alice"]);
    let wrong_keytab = format!(
        "Server {{\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n  \
         keyTab=\"{}\"\n  principal=\"{SERVICE}@{REALM}\";\n}};\n",
        kdc.keytab("alice").display()
    );
    let ticket_cache = "Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n  \
                        useTicketCache=true\n  principal=\"zookeeper/localhost\";\n};\n";
    for (text, want) in [
        (wrong_keytab.as_str(), "no acceptor credential for"),
        (ticket_cache, "needs useKeyTab=true"),
    ] {
        let path = jaas(&kdc, "bad-server.jaas", text);
        let dir = make_temp_dir();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
        cmd.args(["--port", "0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--set")
            .arg(format!("corral.jaasConfig={}", path.display()))
            .arg("--set")
            .arg(format!("corral.krb5Config={}", kdc.krb5_conf().display()));
        let out = run_within(&mut cmd, "", Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {text}");
        assert!(stderr.contains(want), "{text}: {stderr}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
