//! SASL DIGEST-MD5 on the client port, with a JAAS `Server` section as ZooKeeper reads it:
//! the exchange on the wire (a DIGEST-MD5 client written here from RFC 2831), the `sasl:<name>`
//! identity (whoAmI, ACLs, superUser), failed and replayed logins, the enforcement settings,
//! and zkCli.sh with a JAAS `Client` section (kazoo with pure-sasl: tests/interop/run_sasl.sh).
//! Every case also runs against Apache ZooKeeper (CORRAL_TEST_TARGET=zookeeper).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::raw::{err, op, Dec, Enc, RawConn, Reply};
use common::*;
use md5::{Digest, Md5};

const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
const SESSION_CLOSED_REQUIRE_SASL_AUTH: i32 = -124;
const PERM_ALL: i32 = 31;

/// A JAAS file in a directory of its own, removed on drop.
struct Jaas(PathBuf);

impl Jaas {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Jaas {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A JAAS file with the server's users (bob, alice) and a client section for zkCli.
fn jaas_file(client_user: &str, client_password: &str) -> Jaas {
    let dir = make_temp_dir();
    let path = dir.join("jaas.conf");
    std::fs::write(
        &path,
        format!(
            "/* users of the server */\n\
             Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
             user_bob=\"bob-secret\"\n  user_alice=\"alice-secret\"; // alice is superUser below\n}};\n\
             Client {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
             username=\"{client_user}\"\n  password=\"{client_password}\";\n}};\n"
        ),
    )
    .unwrap();
    Jaas(path)
}

/// A server with SASL configured; `provider`: `authProvider.1` names the SASL provider.
async fn sasl_server(provider: bool, extra: &[(&str, &str)]) -> (TestServer, Jaas) {
    let jaas = jaas_file("bob", "bob-secret");
    let mut opts = ServerOpts::new()
        .cfg("corral.jaasConfig", jaas.path().display())
        .cfg("superUser", "alice");
    if provider {
        opts = opts.cfg("authProvider.1", SASL_PROVIDER);
    }
    for (k, v) in extra {
        opts = opts.cfg(k, v);
    }
    (TestServer::start(opts).await, jaas)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// RFC 2831's response value (qop auth, nc 1): `method` AUTHENTICATE for the client's
/// response, empty for the server's rspauth.
fn response_value(
    user: &str,
    realm: &str,
    pw: &str,
    nonce: &str,
    cnonce: &str,
    method: &str,
) -> String {
    let uri = "zookeeper/zk-sasl-md5";
    let inner = md5(&[format!("{user}:{realm}:{pw}").as_bytes()]);
    let a1 = md5(&[&inner, format!(":{nonce}:{cnonce}").as_bytes()]);
    let a2 = md5(&[format!("{method}:{uri}").as_bytes()]);
    hex(&md5(&[format!(
        "{}:{nonce}:00000001:{cnonce}:auth:{}",
        hex(&a1),
        hex(&a2)
    )
    .as_bytes()]))
}

/// The value of `key` in a directive list (quoted or not).
fn directive(text: &str, key: &str) -> Option<String> {
    text.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

async fn sasl_call(r: &mut RawConn, token: &[u8]) -> Reply {
    r.call(op::SASL, &Enc::new().buf(Some(token)).finish())
        .await
        .unwrap()
}

fn token_of(rep: &Reply) -> Option<Vec<u8>> {
    Dec::new(&rep.body).buf()
}

/// Starts an exchange: the empty first token, and the challenge's nonce.
async fn challenge(r: &mut RawConn) -> String {
    let rep = sasl_call(r, b"").await;
    assert_eq!(rep.err, err::OK);
    let text = String::from_utf8(token_of(&rep).expect("a challenge")).unwrap();
    // The JDK's DIGEST-MD5 server, as ZooKeeper creates it (qop auth is the default: not sent).
    assert!(text.starts_with("realm=\"zk-sasl-md5\",nonce=\""), "{text}");
    assert!(
        text.ends_with("\",charset=utf-8,algorithm=md5-sess"),
        "{text}"
    );
    assert_eq!(directive(&text, "nonce").unwrap().len(), 40, "{text}");
    directive(&text, "nonce").expect("a nonce")
}

fn response_token(user: &str, pw: &str, nonce: &str, cnonce: &str) -> String {
    let response = response_value(user, "zk-sasl-md5", pw, nonce, cnonce, "AUTHENTICATE");
    format!(
        "charset=utf-8,username=\"{user}\",realm=\"zk-sasl-md5\",nonce=\"{nonce}\",nc=00000001,\
         cnonce=\"{cnonce}\",digest-uri=\"zookeeper/zk-sasl-md5\",maxbuf=65536,\
         response={response},qop=auth"
    )
}

/// A full login; returns the response token sent (to replay it).
async fn login(r: &mut RawConn, user: &str, pw: &str) -> String {
    let nonce = challenge(r).await;
    let cnonce = "client-nonce-1";
    let token = response_token(user, pw, &nonce, cnonce);
    let rep = sasl_call(r, token.as_bytes()).await;
    assert_eq!(rep.err, err::OK, "login of {user}");
    let rspauth = String::from_utf8(token_of(&rep).unwrap()).unwrap();
    // The server proves it knows the password too.
    let expected = response_value(user, "zk-sasl-md5", pw, &nonce, cnonce, "");
    assert_eq!(rspauth, format!("rspauth={expected}"));
    token
}

async fn who_am_i(r: &mut RawConn) -> Vec<(String, String)> {
    let rep = r.call(op::WHO_AM_I, &[]).await.unwrap();
    assert_eq!(rep.err, err::OK);
    let mut d = rep.dec();
    (0..d.i32()).map(|_| (d.str(), d.str())).collect()
}

async fn get_data_err(r: &mut RawConn, path: &str) -> i32 {
    r.get_data(path, false).await.err
}

async fn create_with_acl(r: &mut RawConn, path: &str, acl: &[(i32, &str, &str)]) -> i32 {
    let body = Enc::new()
        .str(path)
        .buf(Some(b"data"))
        .acls(acl)
        .i32(0)
        .finish();
    r.call(op::CREATE, &body).await.unwrap().err
}

/// The reply came, then the server closed the connection.
async fn assert_closed(r: &mut RawConn) {
    match r.recv_timeout(Duration::from_secs(10)).await {
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "not closed"),
        Ok(rep) => panic!(
            "expected the connection closed, got a frame (err {})",
            rep.err
        ),
    }
}

/// A failed login: AUTHFAILED with a null token, then the connection closes.
async fn assert_login_fails(r: &mut RawConn, token: &[u8], code: i32) {
    let rep = sasl_call(r, token).await;
    assert_eq!(rep.err, code);
    assert_eq!(token_of(&rep), None, "a failed login carries a null token");
    assert_closed(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_login_gives_the_sasl_identity() {
    timed(90, async {
        let (s, _jaas) = sasl_server(true, &[]).await;
        let mut bob = s.raw().await;
        login(&mut bob, "bob", "bob-secret").await;
        let ids = who_am_i(&mut bob).await;
        assert!(ids.contains(&("sasl".into(), "bob".into())), "{ids:?}");
        assert!(ids.contains(&("ip".into(), "127.0.0.1".into())), "{ids:?}");

        assert_eq!(
            create_with_acl(&mut bob, "/bob", &[(PERM_ALL, "sasl", "bob")]).await,
            err::OK
        );
        assert_eq!(get_data_err(&mut bob, "/bob").await, err::OK);
        // `auth` takes the sasl id.
        assert_eq!(
            create_with_acl(&mut bob, "/bob2", &[(PERM_ALL, "auth", "")]).await,
            err::OK
        );
        let acl = bob
            .call(op::GET_ACL, &Enc::new().str("/bob2").finish())
            .await
            .unwrap();
        assert_eq!(
            acl.dec().acls(),
            vec![(PERM_ALL, "sasl".into(), "bob".into())]
        );

        let mut anonymous = s.raw().await;
        assert_eq!(get_data_err(&mut anonymous, "/bob").await, err::NO_AUTH);
        let mut other = s.raw().await;
        login(&mut other, "alice", "alice-secret").await;
        // alice is superUser: she gets `super` too and reads anything.
        let ids = who_am_i(&mut other).await;
        assert!(ids.contains(&("sasl".into(), "alice".into())), "{ids:?}");
        assert!(ids.contains(&("super".into(), "".into())), "{ids:?}");
        assert_eq!(get_data_err(&mut other, "/bob").await, err::OK);
        // A second login on the same connection is refused, as the JDK's finished SaslServer.
        assert_login_fails(&mut bob, b"", err::AUTH_FAILED).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_fail_cleanly() {
    timed(120, async {
        let (s, _jaas) = sasl_server(true, &[]).await;
        // Wrong password, unknown user.
        for (user, pw) in [("bob", "wrong"), ("mallory", "mallory-secret")] {
            let mut r = s.raw().await;
            let nonce = challenge(&mut r).await;
            let token = response_token(user, pw, &nonce, "c1");
            assert_login_fails(&mut r, token.as_bytes(), err::AUTH_FAILED).await;
        }
        // Garbage, and a token over the JDK's 4096-byte bound, after the challenge.
        for token in [b"\x00\xffgarbage, =".to_vec(), vec![b'a'; 5000]] {
            let mut r = s.raw().await;
            challenge(&mut r).await;
            assert_login_fails(&mut r, &token, err::AUTH_FAILED).await;
        }
        // An initial response is ignored: the challenge comes back, the login goes on.
        let mut r = s.raw().await;
        let rep = sasl_call(&mut r, b"username=\"bob\"").await;
        assert_eq!(rep.err, err::OK);
        let text = String::from_utf8(token_of(&rep).unwrap()).unwrap();
        let token = response_token(
            "bob",
            "bob-secret",
            &directive(&text, "nonce").unwrap(),
            "c",
        );
        assert_eq!(sasl_call(&mut r, token.as_bytes()).await.err, err::OK);
        // A response replayed on a new exchange: its nonce is not the new one.
        let mut first = s.raw().await;
        let token = login(&mut first, "bob", "bob-secret").await;
        let mut second = s.raw().await;
        challenge(&mut second).await;
        assert_login_fails(&mut second, token.as_bytes(), err::AUTH_FAILED).await;
        // The server keeps serving the others.
        assert_eq!(get_data_err(&mut first, "/").await, err::OK);
        let mut fresh = s.raw().await;
        login(&mut fresh, "bob", "bob-secret").await;
        assert_eq!(get_data_err(&mut fresh, "/").await, err::OK);
    })
    .await
}

/// An unknown user whose response is computed with the password of the user the previous
/// exchange named. ZooKeeper 3.8/3.9 let it in: its one SaslServerCallbackHandler, shared by
/// every connection, keeps the last known user name when the name lookup fails and hands out
/// that user's password. corral looks the password up per exchange and refuses it
/// (docs/decisions.md, "SASL: no shared callback state").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_does_not_borrow_a_password() {
    timed(90, async {
        let (s, _jaas) = sasl_server(true, &[]).await;
        let mut r = s.raw().await;
        let nonce = challenge(&mut r).await;
        let token = response_token("bob", "wrong", &nonce, "c1");
        assert_login_fails(&mut r, token.as_bytes(), err::AUTH_FAILED).await;
        let mut r = s.raw().await;
        let nonce = challenge(&mut r).await;
        let token = response_token("mallory", "bob-secret", &nonce, "c2");
        if is_zookeeper() {
            // The bug, as it is there.
            assert_eq!(sasl_call(&mut r, token.as_bytes()).await.err, err::OK);
            let ids = who_am_i(&mut r).await;
            assert!(ids.contains(&("sasl".into(), "mallory".into())), "{ids:?}");
        } else {
            assert_login_fails(&mut r, token.as_bytes(), err::AUTH_FAILED).await;
        }
    })
    .await
}

/// Without `authProvider.N=...SASLAuthenticationProvider` a login still gives the id, but the
/// `sasl` ACL scheme does not exist: such ACLs are invalid, and `auth` does not take the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_acls_need_the_provider() {
    timed(90, async {
        let (s, _jaas) = sasl_server(false, &[]).await;
        let mut bob = s.raw().await;
        login(&mut bob, "bob", "bob-secret").await;
        let ids = who_am_i(&mut bob).await;
        // whoAmI names no user for a scheme without a provider.
        assert!(ids.contains(&("sasl".into(), "".into())), "{ids:?}");
        assert_eq!(
            create_with_acl(&mut bob, "/b", &[(PERM_ALL, "sasl", "bob")]).await,
            err::INVALID_ACL
        );
        assert_eq!(
            create_with_acl(&mut bob, "/b", &[(PERM_ALL, "auth", "")]).await,
            err::INVALID_ACL
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_require_client_sasl_auth() {
    timed(120, async {
        let (s, _jaas) = sasl_server(true, &[("sessionRequireClientSASLAuth", "true")]).await;
        // A request before logging in: SESSIONCLOSEDREQUIRESASLAUTH, then the connection closes.
        let mut r = s.raw().await;
        let rep = r.get_data("/", false).await;
        assert_eq!((rep.err, rep.zxid), (SESSION_CLOSED_REQUIRE_SASL_AUTH, 0));
        assert_closed(&mut r).await;
        // A ping too.
        let mut r = s.raw().await;
        let rep = r.ping().await.unwrap();
        assert_eq!(rep.err, SESSION_CLOSED_REQUIRE_SASL_AUTH);
        assert_closed(&mut r).await;
        // addauth digest does not satisfy a sasl requirement.
        let mut r = s.raw().await;
        let auth = Enc::new().i32(0).str("digest").buf(Some(b"u:p")).finish();
        assert_eq!(r.call(op::AUTH, &auth).await.unwrap().err, err::OK);
        assert_eq!(
            r.exists("/", false).await.err,
            SESSION_CLOSED_REQUIRE_SASL_AUTH
        );
        assert_closed(&mut r).await;
        // A failed login is answered with the same code.
        let mut r = s.raw().await;
        let nonce = challenge(&mut r).await;
        let token = response_token("bob", "nope", &nonce, "c");
        assert_login_fails(&mut r, token.as_bytes(), SESSION_CLOSED_REQUIRE_SASL_AUTH).await;
        // A logged-in client is served.
        let mut r = s.raw().await;
        login(&mut r, "bob", "bob-secret").await;
        assert_eq!(get_data_err(&mut r, "/").await, err::OK);
        assert_eq!(r.ping().await.unwrap().err, err::OK);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_auth_schemes() {
    timed(90, async {
        let (s, _jaas) = sasl_server(
            true,
            &[
                ("enforce.auth.enabled", "true"),
                ("enforce.auth.schemes", "digest,sasl"),
            ],
        )
        .await;
        let mut r = s.raw().await;
        assert_eq!(
            r.exists("/", false).await.err,
            SESSION_CLOSED_REQUIRE_SASL_AUTH
        );
        assert_closed(&mut r).await;
        // Either scheme will do.
        let mut r = s.raw().await;
        let auth = Enc::new().i32(0).str("digest").buf(Some(b"u:p")).finish();
        assert_eq!(r.call(op::AUTH, &auth).await.unwrap().err, err::OK);
        assert_eq!(r.exists("/", false).await.err, err::OK);
        let mut r = s.raw().await;
        login(&mut r, "bob", "bob-secret").await;
        assert_eq!(r.exists("/", false).await.err, err::OK);
        // sasl required: a failed login says so.
        let mut r = s.raw().await;
        challenge(&mut r).await;
        assert_login_fails(&mut r, b"x", SESSION_CLOSED_REQUIRE_SASL_AUTH).await;
    })
    .await
}

/// Enforcing a scheme whose provider is not registered stops the server at start, as
/// ZooKeeper's AuthenticationHelper does; so does a JAAS file that does not parse.
#[test]
fn unusable_settings_stop_the_start() {
    let jaas = jaas_file("bob", "bob-secret");
    let bad_jaas = jaas.path().with_file_name("bad.conf");
    std::fs::write(&bad_jaas, "Server { m required user_a=\"x\" };").unwrap();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![
                ("corral.jaasConfig", jaas.path().display().to_string()),
                ("sessionRequireClientSASLAuth", "true".into()),
            ],
            "Authentication scheme sasl is not available",
        ),
        (
            vec![("enforce.auth.enabled", "true".into())],
            "enforce.auth.schemes must be",
        ),
        (
            vec![("corral.jaasConfig", bad_jaas.display().to_string())],
            "expected [option key]",
        ),
    ];
    for (settings, want) in cases {
        let dir = make_temp_dir();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
        cmd.args(["--port", "0", "--data-dir"])
            .arg(dir.join("data"));
        for (k, v) in &settings {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        let out = run_bounded(cmd, Duration::from_secs(30));
        assert!(!out.status.success(), "{settings:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{settings:?}: {stderr}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Runs `cmd` to completion, killed after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// zkCli.sh with `cmds` (one per line), logging in through a JAAS Client section.
fn zkcli(addr: &str, jaas: &Jaas, cmds: &str) -> String {
    let mut cmd = Command::new("/usr/share/zookeeper/bin/zkCli.sh");
    cmd.args(["-server", addr])
        .env(
            "CLIENT_JVMFLAGS",
            format!(
                "-Djava.security.auth.login.config={} -Dzookeeper.sasl.client.canonicalize.hostname=false",
                jaas.path().display()
            ),
        )
        .env("JVMFLAGS", "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .env("ZOO_LOG4J_PROP", "ERROR,CONSOLE");
    // The JVM starts and logs in before it reads commands; the commands wait in the pipe.
    transcript(&run_within(
        &mut cmd,
        &format!("{cmds}\nquit\n"),
        Duration::from_secs(90),
    ))
}

fn transcript(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What a shell (zkCli.sh or `corral cli`) logging in through a JAAS Client section must do:
/// take the sasl id with the right password (whoami, an ACL on it), and not with a wrong one.
/// Returns the transcripts of the good and the bad login for the shell's own checks.
async fn shell_with_a_jaas_client_section(
    s: &TestServer,
    shell: fn(&str, &Jaas, &str) -> String,
) -> (String, String) {
    let addr = s.addr();
    let good = jaas_file("bob", "bob-secret");
    let a = addr.clone();
    let ok = tokio::task::spawn_blocking(move || {
        shell(
            &a,
            &good,
            "whoami\ncreate /cli secretdata sasl:bob:cdrwa\nget /cli\ngetAcl /cli",
        )
    })
    .await
    .unwrap();
    // whoami: "Auth scheme: User" then one "<scheme>: <user>" line per id.
    assert!(ok.contains("\nsasl: bob\n"), "{ok}");
    assert!(ok.contains("Created /cli"), "{ok}");
    assert!(ok.contains("secretdata"), "{ok}");
    assert!(ok.contains("'sasl,'bob"), "{ok}");
    // Anonymous: the node is not readable.
    let mut anonymous = s.raw().await;
    assert_eq!(get_data_err(&mut anonymous, "/cli").await, err::NO_AUTH);
    // A wrong password: the login fails, and the node stays unreadable to that client.
    let bad = jaas_file("bob", "wrong");
    let failed = tokio::task::spawn_blocking(move || shell(&addr, &bad, "get /cli"))
        .await
        .unwrap();
    assert!(!failed.contains("secretdata"), "{failed}");
    assert!(
        failed.contains("AuthFailed") || failed.contains("Authentication failed"),
        "{failed}"
    );
    // The server still serves others.
    let mut r = s.raw().await;
    login(&mut r, "bob", "bob-secret").await;
    assert_eq!(get_data_err(&mut r, "/cli").await, err::OK);
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zkcli_with_a_jaas_client_section() {
    timed(300, async {
        let (s, _jaas) = sasl_server(true, &[]).await;
        shell_with_a_jaas_client_section(&s, zkcli).await;
    })
    .await
}

/// `corral cli` with the same JAAS `Client` section zkCli.sh takes (through CLIENT_JVMFLAGS):
/// it logs in with DIGEST-MD5 after connecting, as ZooKeeper's client does.
fn corral_cli(addr: &str, jaas: &Jaas, cmds: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["cli", "-timeout", "3000", "-server", addr]).env(
        "CLIENT_JVMFLAGS",
        format!(
            "-Djava.security.auth.login.config={}",
            jaas.path().display()
        ),
    );
    transcript(&run_within(
        &mut cmd,
        &format!("{cmds}\nquit\n"),
        Duration::from_secs(30),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corral_cli_with_a_jaas_client_section() {
    timed(120, async {
        let (s, _jaas) = sasl_server(true, &[]).await;
        let (ok, failed) = shell_with_a_jaas_client_section(&s, corral_cli).await;
        // As zkCli prints them: the login's event; a failed one's, then nothing more is sent.
        assert!(
            ok.contains("WatchedEvent state:SaslAuthenticated type:None path:null"),
            "{ok}"
        );
        assert!(
            failed.contains("WatchedEvent state:AuthFailed type:None path:null"),
            "{failed}"
        );
        assert!(failed.contains("Not connected"), "{failed}");
        // A login module it does not speak is refused with the reason (Kerberos: tests/gssapi.rs).
        let dir = make_temp_dir();
        let other = dir.join("other.conf");
        std::fs::write(
            &other,
            "Client {\n  org.apache.kafka.common.security.plain.PlainLoginModule required\n  \
             username=\"a\";\n};\n",
        )
        .unwrap();
        let addr = s.addr();
        let out = tokio::task::spawn_blocking(move || corral_cli(&addr, &Jaas(other), "ls /"))
            .await
            .unwrap();
        assert!(
            out.contains("DigestLoginModule or Krb5LoginModule")
                && out.contains("PlainLoginModule"),
            "{out}"
        );
    })
    .await
}
