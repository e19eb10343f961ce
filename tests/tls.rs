//! The secure client port (`secureClientPort`): TLS with client certificates, the `x509`
//! identity they give, ACLs on it, the x509 super user, zkCli.sh's Netty client over TLS, four
//! letter words over TLS, and clients that get the handshake wrong. Certificates are made here
//! with rcgen (a CA, a server certificate for 127.0.0.1, client certificates, one from another
//! CA, one expired) and handed to the server as PEM stores.
//!
//! Against ZooKeeper (CORRAL_TARGET=zookeeper) the same zoo.cfg works: ZooKeeper turns the
//! `ssl.*` and `serverCnxnFactory` keys into `zookeeper.*` system properties.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::{ClientCert, Pki};
use common::raw::{self, err, op, Dec, Enc};
use common::*;

const PERM_ALL: i32 = 31;

/// What a test server with a secure port needs.
struct Secure {
    dir: PathBuf,
    pki: Pki,
    port: u16,
}

impl Secure {
    fn new() -> Secure {
        let dir = make_temp_dir().join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki::new(&dir, "ca");
        Secure {
            dir,
            pki,
            port: free_port(),
        }
    }

    /// zoo.cfg lines for the secure port; `extra` adds more.
    fn opts(&self, extra: &[(&str, &str)]) -> ServerOpts {
        let store = self.pki.server_store("server.pem");
        let mut o = ServerOpts::new()
            .cfg("secureClientPort", self.port)
            .cfg(
                "serverCnxnFactory",
                "org.apache.zookeeper.server.NettyServerCnxnFactory",
            )
            // ZooKeeper needs this for client certificates to be accepted at all; corral has
            // the x509 scheme built in.
            .cfg(
                "authProvider.x509",
                "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
            )
            .cfg("ssl.keyStore.location", store.display())
            .cfg("ssl.keyStore.type", "PEM")
            .cfg("ssl.trustStore.location", self.dir.join("ca.pem").display())
            .cfg("ssl.trustStore.type", "PEM");
        for (k, v) in extra {
            o = o.cfg(k, v);
        }
        o
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A TLS client configuration trusting the test CA, with `cert` as client certificate.
    fn client_config(&self, cert: Option<&ClientCert>) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pki.ca.pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let c = match cert {
            Some(c) => b
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        Arc::new(c)
    }

    /// A TLS connection to the secure port, handshake done (or its error).
    fn tls(&self, cert: Option<&ClientCert>) -> std::io::Result<Tls> {
        let tcp = TcpStream::connect(self.addr())?;
        tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(self.client_config(cert), name)
            .map_err(std::io::Error::other)?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // Drive the handshake to its end, so a refused certificate shows up here.
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        // TLS 1.3: the server's verdict on our certificate comes with its first records.
        s.sock.set_read_timeout(Some(Duration::from_millis(300)))?;
        let mut probe = [0u8; 1];
        match s.read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
            Ok(0) => return Err(std::io::Error::other("closed after the handshake")),
            Ok(_) => return Err(std::io::Error::other("unexpected byte after the handshake")),
        }
        s.sock.set_read_timeout(Some(Duration::from_secs(15)))?;
        Ok(Tls { s, next_xid: 1 })
    }
}

/// A raw ZooKeeper session over TLS (blocking).
struct Tls {
    s: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    next_xid: i32,
}

impl Tls {
    fn send(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.s.write_all(&raw::frame(body))?;
        self.s.flush()
    }

    fn recv(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len)?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body)?;
        Ok(body)
    }

    /// Connect request and response: a new session.
    fn session(mut self) -> std::io::Result<Tls> {
        self.send(&raw::connect_request(0, 30_000, 0, &[0u8; 16], false))?;
        let r = raw::parse_connect_response(&self.recv()?);
        assert_ne!(r.session_id, 0, "no session");
        Ok(self)
    }

    /// One request; returns (err, reply body after the header).
    fn call(&mut self, opcode: i32, record: &[u8]) -> (i32, Vec<u8>) {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut body = Enc::new().i32(xid).i32(opcode).finish();
        body.extend_from_slice(record);
        self.send(&body).unwrap();
        loop {
            let reply = self.recv().unwrap();
            let mut d = Dec::new(&reply);
            let (rx, _zxid, e) = (d.i32(), d.i64(), d.i32());
            if rx == xid {
                return (e, reply[16..].to_vec());
            }
        }
    }

    fn create(&mut self, path: &str, acl: &[(i32, &str, &str)]) -> i32 {
        let rec = Enc::new()
            .str(path)
            .buf(Some(b"v"))
            .acls(acl)
            .i32(0)
            .finish();
        self.call(op::CREATE, &rec).0
    }

    fn get(&mut self, path: &str) -> i32 {
        self.call(op::GET_DATA, &Enc::new().str(path).bool(false).finish())
            .0
    }

    fn who_am_i(&mut self) -> Vec<(String, String)> {
        let (e, body) = self.call(op::WHO_AM_I, &[]);
        assert_eq!(e, err::OK);
        let mut d = Dec::new(&body);
        let n = d.i32();
        let mut v: Vec<_> = (0..n).map(|_| (d.str(), d.str())).collect();
        v.sort();
        v
    }
}

/// The four-letter word `cmd` over TLS with `cert`: the whole answer.
fn four_letter_tls(sec: &Secure, cert: &ClientCert, cmd: &str) -> String {
    let mut t = sec.tls(Some(cert)).expect("handshake");
    t.s.write_all(cmd.as_bytes()).unwrap();
    t.s.flush().unwrap();
    let mut out = Vec::new();
    let _ = t.s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// zkCli.sh's main class with the Netty TLS client (CLIENT_JVMFLAGS of a TLS setup), one
/// command; its output.
fn zkcli_tls(sec: &Secure, store: &Path, args: &[&str]) -> String {
    let java = std::env::var("CORRAL_ZK_JAVA").unwrap_or_else(|_| "java".to_string());
    let cp = std::env::var("CORRAL_ZK_CLASSPATH").unwrap_or_else(|_| zookeeper_classpath());
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg(java)
        .args([
            "-Xmx128m",
            "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
            "-Dzookeeper.client.secure=true",
            "-Dzookeeper.ssl.keyStore.type=PEM",
            "-Dzookeeper.ssl.trustStore.type=PEM",
        ])
        .arg(format!(
            "-Dzookeeper.ssl.keyStore.location={}",
            store.display()
        ))
        .arg(format!(
            "-Dzookeeper.ssl.trustStore.location={}",
            sec.dir.join("ca.pem").display()
        ))
        .arg("-cp")
        .arg(cp)
        .arg("org.apache.zookeeper.ZooKeeperMain")
        .arg("-server")
        .arg(sec.addr())
        .args(args)
        .output()
        .expect("java runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn zkcli_and_four_letter_words_work_over_tls() {
    let sec = Secure::new();
    let server = TestServer::start(sec.opts(&[])).await;
    let alice = sec.pki.client("corral", "alice", false);
    let store = sec.dir.join("alice.pem");
    alice.write_store(&store);

    let out = zkcli_tls(&sec, &store, &["create", "/over-tls", "hello"]);
    assert!(out.contains("Created /over-tls"), "zkCli create: {out}");
    let out = zkcli_tls(&sec, &store, &["get", "/over-tls"]);
    assert!(out.lines().any(|l| l == "hello"), "zkCli get: {out}");
    // The plain port sees the same tree.
    let c = server.client().await;
    assert_eq!(c.get_data("/over-tls").await.unwrap().0, b"hello");

    let srvr = four_letter_tls(&sec, &alice, "srvr");
    assert!(srvr.contains("Zookeeper version:"), "srvr over TLS: {srvr}");
    assert!(srvr.contains("Mode: standalone"), "srvr over TLS: {srvr}");
    assert_eq!(four_letter_tls(&sec, &alice, "ruok"), "imok");
    let conf = four_letter_tls(&sec, &alice, "conf");
    assert!(
        conf.contains(&format!("secureClientPort={}\n", sec.port)),
        "conf over TLS: {conf}"
    );
}

#[tokio::test]
async fn x509_identities_grant_deny_and_make_a_super_user() {
    let sec = Secure::new();
    // Java's X500Principal.getName() (RFC 2253): the subject's RDNs in reverse order of the
    // certificate's (rcgen writes CN before O), as ZooKeeper prints them (checked against it).
    let admin_dn = "O=corral,CN=admin";
    let _server =
        TestServer::start(sec.opts(&[("X509AuthenticationProvider.superUser", admin_dn)])).await;
    let alice = sec.pki.client("corral", "alice", false);
    let bob = sec.pki.client("corral", "bob", false);
    let admin = sec.pki.client("corral", "admin", false);

    let mut a = sec.tls(Some(&alice)).unwrap().session().unwrap();
    let ids = a.who_am_i();
    assert!(
        ids.contains(&("x509".to_string(), "O=corral,CN=alice".to_string())),
        "whoAmI: {ids:?}"
    );
    assert_eq!(
        a.create("/alice", &[(PERM_ALL, "x509", "O=corral,CN=alice")]),
        err::OK
    );
    assert_eq!(a.get("/alice"), err::OK);

    let mut b = sec.tls(Some(&bob)).unwrap().session().unwrap();
    assert_eq!(b.get("/alice"), err::NO_AUTH, "bob reads alice's node");
    // An x509 id that is not a DN is not a valid ACL.
    assert_eq!(
        b.create("/bad", &[(PERM_ALL, "x509", "not a name")]),
        err::INVALID_ACL
    );

    let mut s = sec.tls(Some(&admin)).unwrap().session().unwrap();
    let ids = s.who_am_i();
    assert!(
        ids.iter().any(|(scheme, _)| scheme == "super"),
        "admin is super: {ids:?}"
    );
    assert_eq!(
        s.get("/alice"),
        err::OK,
        "the x509 super user reads anything"
    );
}

#[tokio::test]
async fn bad_tls_clients_are_turned_away_and_others_keep_being_served() {
    let sec = Secure::new();
    let server = TestServer::start(sec.opts(&[])).await;
    let good = sec.pki.client("corral", "good", false);
    let expired = sec.pki.client("corral", "old", true);
    let stranger = Pki::new(&sec.dir, "other-ca").client("elsewhere", "mallory", false);

    assert!(
        sec.tls(Some(&stranger)).is_err(),
        "a certificate from another CA"
    );
    assert!(sec.tls(Some(&expired)).is_err(), "an expired certificate");
    assert!(
        sec.tls(None).is_err(),
        "no certificate (ssl.clientAuth=need)"
    );

    // Plaintext ZooKeeper to the TLS port: closed without an answer.
    let mut tcp = TcpStream::connect(sec.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(&raw::frame(&raw::connect_request(
        0, 30_000, 0, &[0u8; 16], false,
    )))
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "plaintext gets nothing or a TLS alert, got {:?}",
        &buf[..n]
    );
    assert_eq!(
        tcp.read(&mut buf).unwrap_or(0),
        0,
        "and the connection closes"
    );

    // A TLS ClientHello to the plain port: closed (its length prefix is out of range).
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut hello = Vec::new();
    rustls::ClientConnection::new(sec.client_config(Some(&good)), name)
        .unwrap()
        .write_tls(&mut hello)
        .unwrap();
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(&hello).unwrap();
    assert_eq!(
        tcp.read(&mut buf).unwrap_or(0),
        0,
        "plain port closes on a hello"
    );

    // Garbage after a good handshake: a frame length out of range closes the connection.
    let mut t = sec.tls(Some(&good)).unwrap();
    t.s.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    t.s.flush().unwrap();
    let mut rest = Vec::new();
    let _ = t.s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing answers garbage");

    // A handshake that never starts is dropped (Netty's 10 s handshake timeout).
    let mut idle = TcpStream::connect(sec.addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let t0 = Instant::now();
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a silent client is closed");
    assert!(
        t0.elapsed() < Duration::from_secs(19),
        "closed by the server, not by our timeout"
    );

    // Through all of it the server kept serving, on both ports.
    let mut ok = sec.tls(Some(&good)).unwrap().session().unwrap();
    assert_eq!(ok.create("/still-here", raw::OPEN_ACL), err::OK);
    let c = server.client().await;
    assert!(c.check_stat("/still-here").await.unwrap().is_some());
}

#[tokio::test]
async fn only_a_secure_port_when_no_client_port_is_named() {
    if !matches!(target(), Target::Corral) {
        return; // TestServer always writes a clientPort for ZooKeeper's readiness probe.
    }
    let sec = Secure::new();
    let dir = make_temp_dir();
    let cfg = dir.join("zoo.cfg");
    let store = sec.pki.server_store("server.pem");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nsecureClientPort={}\nclientPortAddress=127.0.0.1\n\
             ssl.keyStore.location={}\nssl.trustStore.location={}\n4lw.commands.whitelist=*\n",
            dir.join("data").display(),
            sec.port,
            store.display(),
            sec.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("--config")
        .arg(&cfg)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("server.err")).unwrap())
        .spawn()
        .unwrap();
    let alice = sec.pki.client("corral", "alice", false);
    let deadline = Instant::now() + Duration::from_secs(20);
    let srvr = loop {
        if let Ok(mut t) = sec.tls(Some(&alice)) {
            t.s.write_all(b"srvr").unwrap();
            t.s.flush().unwrap();
            let mut out = Vec::new();
            let _ = t.s.read_to_end(&mut out);
            break String::from_utf8_lossy(&out).into_owned();
        }
        assert!(Instant::now() < deadline, "the secure port never served");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    let _ = child.kill();
    let _ = child.wait();
    // It said where it serves: the TLS port, and no plain one (not even the default 2181).
    let said = std::fs::read_to_string(&log).unwrap()
        + &std::fs::read_to_string(dir.join("server.err")).unwrap();
    assert!(
        said.contains(&format!("serving TLS clients on 127.0.0.1:{}", sec.port)),
        "{said}"
    );
    assert!(!said.contains("serving clients on"), "a plain port: {said}");
}

/// The server certificate a TLS client sees now.
fn served_certificate(sec: &Secure, cert: &ClientCert) -> Vec<u8> {
    let t = sec.tls(Some(cert)).expect("handshake");
    t.s.conn.peer_certificates().expect("a server certificate")[0].to_vec()
}

#[tokio::test]
async fn new_handshakes_use_a_key_store_replaced_on_disk() {
    if is_zookeeper() {
        // ZooKeeper 3.8 watches its store files for the quorum only (sslQuorumReloadCertFiles):
        // its client port keeps the keys it started with (checked: this test fails there).
        return;
    }
    let sec = Secure::new();
    let _server = TestServer::start(sec.opts(&[])).await;
    let alice = sec.pki.client("corral", "alice", false);
    let first = served_certificate(&sec, &alice);
    // An open session stays up across the change.
    let mut open = sec.tls(Some(&alice)).unwrap().session().unwrap();

    // A new key and certificate in the same file (ZooKeeper's FileChangeWatcher reloads it).
    sec.pki.server_store("server.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    while served_certificate(&sec, &alice) == first {
        assert!(
            Instant::now() < deadline,
            "the new key store was never used"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(open.create("/after-reload", raw::OPEN_ACL), err::OK);

    // A store that does not load is not taken: the last good one stays in use.
    let good = served_certificate(&sec, &alice);
    std::fs::write(sec.dir.join("server.pem"), "not a key store\n").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(served_certificate(&sec, &alice), good);
}

#[tokio::test]
async fn the_rust_zookeeper_client_works_over_tls() {
    use zookeeper_client as zk;
    // The client crate pulls in aws-lc-rs beside corral's ring: name the process's provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sec = Secure::new();
    let _server = TestServer::start(
        sec.opts(&[("X509AuthenticationProvider.superUser", "O=corral,CN=root")]),
    )
    .await;
    let alice = sec.pki.client("corral", "alice", false);
    let tls = zk::TlsOptions::default()
        .with_pem_ca(&sec.pki.ca.pem())
        .unwrap()
        .with_pem_identity(&alice.cert_pem, &alice.key_pem)
        .unwrap();
    let client = zk::Client::connector()
        .with_tls(tls)
        .with_session_timeout(Duration::from_secs(10))
        .secure_connect(&sec.addr())
        .await
        .expect("a session over TLS");
    let who: Vec<(String, String)> = client
        .list_auth_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.scheme().to_string(), u.user().to_string()))
        .collect();
    assert!(
        who.contains(&("x509".to_string(), "O=corral,CN=alice".to_string())),
        "{who:?}"
    );
    let acl = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("x509", "O=corral,CN=alice"),
    )];
    client
        .create(
            "/rust-tls",
            b"over tls",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl)),
        )
        .await
        .unwrap();
    assert_eq!(client.get_data("/rust-tls").await.unwrap().0, b"over tls");
}

/// `corral cli` with zkCli's `-client-configuration` file: `zookeeper.client.secure` and the
/// `zookeeper.ssl.*` stores. Its client certificate is its x509 id (`whoami`); a value larger
/// than rustls's 64 KiB send buffer goes through; a server it cannot verify is an error.
#[tokio::test]
async fn corral_cli_over_tls_with_a_client_configuration_file() {
    let sec = Secure::new();
    let server = TestServer::start(sec.opts(&[])).await;
    let alice = sec.pki.client("corral", "alice", false);
    alice.write_store(&sec.dir.join("alice.pem"));
    let props = |trust: &Path| {
        format!(
            "zookeeper.client.secure=true\n\
             zookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty\n\
             zookeeper.ssl.keyStore.location={}\nzookeeper.ssl.keyStore.type=PEM\n\
             zookeeper.ssl.trustStore.location={}\nzookeeper.ssl.trustStore.type=PEM\n",
            sec.dir.join("alice.pem").display(),
            trust.display()
        )
    };
    let good = sec.dir.join("client.properties");
    std::fs::write(&good, props(&sec.dir.join("ca.pem"))).unwrap();
    let big = "x".repeat(200_000);
    let script = format!("create /tls hello\nget /tls\nwhoami\nset /tls {big}\nstat /tls\nquit\n");
    let out = run_cli(&sec.addr(), &good, &script);
    assert!(out.contains("Created /tls"), "{out}");
    assert!(out.contains("\nhello\n"), "{out}");
    assert!(out.contains("x509: O=corral,CN=alice"), "{out}");
    assert!(out.contains("dataLength = 200000"), "{out}");
    // The data went through the secure port as any client sees it.
    let c = server.client().await;
    assert_eq!(c.get_data("/tls").await.unwrap().0.len(), 200_000);

    // A server certificate the configured CA did not sign: no session, an error.
    let other = sec.dir.join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    Pki::new(&other, "otherca");
    let bad = sec.dir.join("bad.properties");
    std::fs::write(&bad, props(&other.join("otherca.pem"))).unwrap();
    let out = run_cli(&sec.addr(), &bad, "ls /\nquit\n");
    assert!(!out.contains("[tls, zookeeper]"), "{out}");
    assert!(out.contains("ConnectionLoss"), "{out}");
    // Secure without a trust store: refused before connecting, with the key to set.
    let none = sec.dir.join("none.properties");
    std::fs::write(&none, "zookeeper.client.secure=true\n").unwrap();
    let out = run_cli(&sec.addr(), &none, "ls /\n");
    assert!(out.contains("zookeeper.ssl.trustStore.location"), "{out}");
}

/// Runs `corral cli -server addr -client-configuration props` on `script` (stdin), bounded;
/// returns stdout and stderr together.
fn run_cli(addr: &str, props: &Path, script: &str) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args([
        "cli",
        "-timeout",
        "3000",
        "-server",
        addr,
        "-client-configuration",
    ])
    .arg(props);
    let out = run_within(&mut cmd, script, Duration::from_secs(30));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
