//! The admin server over HTTPS, driven with curl: `admin.forceHttps` and
//! `admin.portUnification` with the `ssl.quorum.*` stores, `admin.needClientAuth`, and
//! `Authorization: x509` proved by the client certificate (the subject DN must have ALL on
//! `/`, or be `X509AuthenticationProvider.superUser`). Handshakes that must fail (no
//! certificate, another CA, expired), a TLS client that stalls, and a zoo.cfg that asks for
//! HTTPS without a key store; a backup taken and restored over HTTPS. Certificates are made
//! with rcgen (tests/common/pki.rs).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::*;
use zk::{Acl, AuthId, Permission};
use zookeeper_client as zk;

const X509_PROVIDER: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";

/// A CA, the server's store, and client certificates, as files curl and corral read.
struct Certs {
    dir: PathBuf,
    pki: Pki,
}

impl Certs {
    fn new() -> Certs {
        let dir = make_temp_dir().join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki::new(&dir, "ca");
        pki.server_store("server.pem");
        Certs { dir, pki }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client certificate whose subject Java spells `O=corral,CN=<cn>`, as `<name>.crt` and
    /// `<name>.key`, for curl's `--cert` and `--key`.
    fn client(&self, name: &str, cn: &str, expired: bool) -> (PathBuf, PathBuf) {
        let c = self.pki.client("corral", cn, expired);
        let (crt, key) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&crt, c.cert_pem).unwrap();
        std::fs::write(&key, c.key_pem).unwrap();
        (crt, key)
    }

    /// zoo.cfg lines for an admin server on `port` over TLS.
    fn opts(&self, port: u16, extra: &[(&str, &str)]) -> ServerOpts {
        let mut o = ServerOpts::new()
            .cfg("admin.enableServer", "true")
            .cfg("admin.serverPort", port)
            .cfg("admin.rateLimiterIntervalInMS", "0")
            .cfg(
                "ssl.quorum.keyStore.location",
                self.dir.join("server.pem").display(),
            )
            .cfg("ssl.quorum.trustStore.location", self.ca().display());
        for (k, v) in extra {
            o = o.cfg(k, v);
        }
        o
    }
}

/// What curl got: its exit code, the status and headers it printed, and the body.
struct Curl {
    code: i32,
    status: u16,
    head: String,
    body: Vec<u8>,
    stderr: String,
}

impl Curl {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?}; curl: {}",
                String::from_utf8_lossy(&self.body),
                self.stderr
            )
        })
    }
}

/// Runs curl on `url` with `args` (bounded to 10 s), keeping the head apart from the body.
fn curl(url: &str, args: &[&str]) -> Curl {
    let scratch = make_temp_dir();
    let head = scratch.join("head");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D"])
        .arg(&head)
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (apt-get install curl)");
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    let status = head
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&scratch);
    Curl {
        code: out.status.code().unwrap_or(-1),
        status,
        head,
        body: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`curl`] on a blocking thread, with the CA that signed the server's certificate (if any),
/// a client certificate (if any), then `extra`.
async fn fetch(
    url: String,
    ca: Option<&Path>,
    cert: Option<&(PathBuf, PathBuf)>,
    extra: &[&str],
) -> Curl {
    let mut args: Vec<String> = Vec::new();
    if let Some(ca) = ca {
        args.extend(["--cacert".into(), ca.display().to_string()]);
    }
    if let Some((crt, key)) = cert {
        args.extend(["--cert".into(), crt.display().to_string()]);
        args.extend(["--key".into(), key.display().to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&url, &args)
    })
    .await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

fn acl(perm: Permission, scheme: &str, id: &str) -> Acl {
    Acl::new(perm, AuthId::new(scheme, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificates_and_x509_auth() {
    let certs = Certs::new();
    let port = free_port();
    let server = TestServer::start(certs.opts(
        port,
        &[
            ("admin.forceHttps", "true"),
            ("admin.needClientAuth", "true"),
            ("authProvider.1", X509_PROVIDER),
            // ZooKeeper's X509AuthenticationProvider checks the certificate against the
            // client port's trust store too.
            ("ssl.trustStore.location", &certs.ca().display().to_string()),
            ("X509AuthenticationProvider.superUser", "O=corral,CN=boss"),
        ],
    ))
    .await;
    let admin = certs.client("admin", "admin", false);
    let other = certs.client("other", "other", false);
    let boss = certs.client("boss", "boss", false);
    let expired = certs.client("expired", "admin", true);
    let stranger = {
        let dir = certs.dir.join("elsewhere");
        std::fs::create_dir_all(&dir).unwrap();
        let c = Pki::new(&dir, "otherca").client("corral", "admin", false);
        let (crt, key) = (dir.join("s.crt"), dir.join("s.key"));
        std::fs::write(&crt, c.cert_pem).unwrap();
        std::fs::write(&key, c.key_pem).unwrap();
        (crt, key)
    };
    let url = move |cmd: &str| format!("https://127.0.0.1:{port}/commands/{cmd}");
    let ca = certs.ca();
    let ca = Some(ca.as_path());
    let x509 = ["-H", "Authorization: x509"];

    // A command over TLS with a client certificate: ZooKeeper's JSON, and Jetty's HSTS header.
    let r = fetch(url("ruok"), ca, Some(&admin), &[]).await;
    assert_eq!((r.code, r.status), (0, 200), "curl: {}", r.stderr);
    assert_eq!(r.json()["command"], "ruok");
    assert_eq!(
        r.header("strict-transport-security").as_deref(),
        Some("max-age=86400; includeSubDomains")
    );

    // needClientAuth: no certificate, one from another CA, or an expired one: no handshake.
    let r = fetch(url("ruok"), ca, None, &[]).await;
    assert!(r.code != 0 && r.status == 0, "no certificate: {}", r.stderr);
    for bad in [&stranger, &expired] {
        let r = fetch(url("ruok"), ca, Some(bad), &[]).await;
        assert!(r.code != 0 && r.status == 0, "{bad:?}: {}", r.stderr);
    }
    // Plain HTTP on the HTTPS port gets no answer.
    let r = fetch(
        format!("http://127.0.0.1:{port}/commands/ruok"),
        None,
        None,
        &[],
    )
    .await;
    assert!(r.status == 0 && r.code != 0, "plain HTTP: {}", r.stderr);

    // Only O=corral,CN=admin has ALL on /; everyone may read and create.
    let client = connect(&server.addr()).await;
    client
        .set_acl(
            "/",
            &[
                acl(Permission::ALL, "x509", "O=corral,CN=admin"),
                acl(Permission::READ | Permission::CREATE, "world", "anyone"),
            ],
            None,
        )
        .await
        .unwrap();

    // x509: the certificate proves the id (the header only names the scheme).
    let r = fetch(url("snapshot"), ca, Some(&admin), &x509).await;
    assert_eq!((r.code, r.status), (0, 200), "{}", r.stderr);
    assert!(r.header("last_zxid").is_some(), "{}", r.head);
    assert_eq!(
        r.header("snapshot_size")
            .and_then(|s| s.parse::<usize>().ok()),
        Some(r.body.len())
    );
    let backup = certs.dir.join("backup.snap");
    std::fs::write(&backup, &r.body).unwrap();
    // The superUser's DN passes although no ACL names it.
    let r = fetch(url("snapshot?streaming=false"), ca, Some(&boss), &x509).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Another trusted certificate is authenticated, not authorized.
    let r = fetch(url("snapshot"), ca, Some(&other), &x509).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (403, "Not authorized".into())
    );
    // Without the header, no auth at all; with another scheme, that scheme's rules.
    let r = fetch(url("snapshot"), ca, Some(&admin), &[]).await;
    assert_eq!(r.status, 401);
    let digest = ["-H", "Authorization: digest admin:secret"];
    let r = fetch(url("snapshot"), ca, Some(&admin), &digest).await;
    assert_eq!(r.status, 403);
    // log_level over TLS with x509.
    let r = fetch(url("log_level?level=debug"), ca, Some(&admin), &x509).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // Clients on the client port were served all along; this one writes after the backup.
    client.create("/after", b"x", &anyone()).await.unwrap();

    // restore over HTTPS with x509: the upload goes through TLS (curl may ask for 100
    // Continue first), the answer comes back, the server re-executes itself on the backup.
    let upload = format!("@{}", backup.display());
    let args = ["-H", "Authorization: x509", "--data-binary", &upload];
    let r = fetch(url("restore"), ca, Some(&admin), &args).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["last_zxid"].as_i64().is_some(), "{}", r.json());
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = server.addr();
    let restored = loop {
        let connecting = zk::Client::connector().connect(&addr);
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(5), connecting).await {
            break c;
        }
        assert!(Instant::now() < deadline, "not back after the restore");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(restored.check_stat("/after").await.unwrap().is_none());
    assert_eq!(restored.get_acl("/").await.unwrap().0.len(), 2);
    // The admin server is back, over HTTPS.
    let r = fetch(url("ruok"), ca, Some(&admin), &[]).await;
    assert_eq!(r.status, 200, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_unification_serves_http_and_https_on_one_port() {
    let certs = Certs::new();
    let port = free_port();
    let server = TestServer::start(certs.opts(
        port,
        &[
            ("admin.portUnification", "true"),
            ("admin.idleTimeout", "4000"),
            ("authProvider.1", X509_PROVIDER),
            ("ssl.trustStore.location", &certs.ca().display().to_string()),
        ],
    ))
    .await;
    let ca = certs.ca();
    let ca = Some(ca.as_path());
    let plain = format!("http://127.0.0.1:{port}/commands/ruok");
    let r = fetch(plain.clone(), None, None, &[]).await;
    assert_eq!((r.code, r.status), (0, 200), "{}", r.stderr);
    assert_eq!(r.header("strict-transport-security"), None);
    let r = fetch(
        format!("https://127.0.0.1:{port}/commands/stat"),
        ca,
        None,
        &[],
    )
    .await;
    assert_eq!((r.code, r.status), (0, 200), "{}", r.stderr);
    assert_eq!(r.json()["command"], "stats");
    assert!(r.header("strict-transport-security").is_some());

    // needClientAuth is off: no certificate is asked for, so x509 proves nothing.
    let admin = certs.client("admin", "admin", false);
    let snapshot = format!("https://127.0.0.1:{port}/commands/snapshot");
    let r = fetch(snapshot, ca, Some(&admin), &["-H", "Authorization: x509"]).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, "Not authenticated".into())
    );

    // A client that starts a handshake and stalls is dropped after admin.idleTimeout, and
    // one that sends garbage after the TLS byte is dropped at once; HTTP goes on meanwhile.
    let mut stall = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stall.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap();
    let mut junk = TcpStream::connect(("127.0.0.1", port)).unwrap();
    junk.write_all(&[0x16; 64]).unwrap();
    let t0 = Instant::now();
    let (junk_closed, stall_closed) = blocking(move || {
        let closed = |s: &mut TcpStream| {
            s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            let mut b = [0u8; 256];
            loop {
                match s.read(&mut b) {
                    Ok(0) => return Some(Instant::now()),
                    // rustls's alert, then the close.
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        return Some(Instant::now())
                    }
                    Err(_) => return None,
                }
            }
        };
        (closed(&mut junk), closed(&mut stall))
    })
    .await;
    let junk_closed = junk_closed.expect("garbage after 0x16 closes the connection");
    let stall_closed = stall_closed.expect("a stalled handshake is closed");
    assert!(
        // Well inside the idle timeout, with room for a loaded machine's scheduling.
        junk_closed - t0 < Duration::from_millis(2500),
        "{:?}",
        junk_closed - t0
    );
    assert!(
        stall_closed - t0 >= Duration::from_millis(3000),
        "closed after {:?}, before the idle timeout",
        stall_closed - t0
    );
    let r = fetch(plain, None, None, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(server.four_letter("ruok").await, "imok");
}

/// HTTPS asked for without a key store, or client auth without a trust store: the server
/// does not start, and says which key to set.
#[test]
fn https_without_stores_stops_the_start() {
    let dir = make_temp_dir();
    let cases: [(&[&str], &str); 2] = [
        (&["admin.forceHttps=true"], "ssl.quorum.keyStore.location"),
        (
            &["admin.portUnification=true", "admin.needClientAuth=true"],
            "ssl.quorum.trustStore.location",
        ),
    ];
    for (sets, expect) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
        cmd.args(["--port", &free_port().to_string(), "--address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--set", &format!("admin.serverPort={}", free_port())])
            .stdin(Stdio::null());
        for s in sets {
            cmd.args(["--set", s]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{sets:?}: corral kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!status.success(), "{sets:?}: {text}");
        assert!(text.contains(expect), "{sets:?}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
