//! Shared harness for corral's end-to-end tests.
//!
//! Every test starts its own server (corral, or Apache ZooKeeper 3.8 for
//! validating the suite) on a free loopback port with its own temporary data
//! directory, and drives it over TCP with the `zookeeper-client` crate, with
//! raw four-letter words, or with the small raw protocol client in [`raw`].
//!
//! Target selection: `CORRAL_TEST_TARGET` unset or `corral` runs the binary
//! built by this package as `corral --config <zoo.cfg>`; `zookeeper` runs
//! Apache ZooKeeper from the Debian package (`/usr/share/java/zookeeper.jar`).
//! Optional overrides for the latter: `CORRAL_ZK_JAVA` (java binary),
//! `CORRAL_ZK_CLASSPATH` (full classpath).
//!
//! `CORRAL_TEST_KEEP=1` keeps every temp dir; a test that panics always keeps
//! its temp dir (zoo.cfg, data and `server.log`) and prints where it is.
#![allow(dead_code)]

pub mod ensemble;
pub mod kdc;
pub mod lincheck;
pub mod netns;
pub mod pki;
pub mod proxy;
pub mod raw;

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client as zk;

/// Which server implementation the suite drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Corral,
    ZooKeeper,
}

pub fn target() -> Target {
    match std::env::var("CORRAL_TEST_TARGET").as_deref() {
        Err(_) | Ok("") | Ok("corral") => Target::Corral,
        Ok("zookeeper") | Ok("zk") => Target::ZooKeeper,
        Ok(other) => panic!("unknown CORRAL_TEST_TARGET={other:?} (use corral or zookeeper)"),
    }
}

pub fn is_zookeeper() -> bool {
    target() == Target::ZooKeeper
}

/// ZooKeeper's default metrics provider, which serves nothing: how a zoo.cfg turns corral's
/// metrics endpoint (on by default) off.
pub const NO_METRICS: &str = "org.apache.zookeeper.metrics.impl.NullMetricsProvider";

/// Options for one test server. Extra lines end up verbatim in zoo.cfg.
#[derive(Clone, Debug)]
pub struct ServerOpts {
    pub tick_time: u32,
    pub whitelist: String,
    pub extra: Vec<(String, String)>,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            tick_time: 2000,
            whitelist: "*".to_string(),
            extra: Vec::new(),
        }
    }
}

impl ServerOpts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tick_time(mut self, ms: u32) -> Self {
        self.tick_time = ms;
        self
    }

    /// Value of `4lw.commands.whitelist` (default `*`).
    pub fn whitelist(mut self, list: &str) -> Self {
        self.whitelist = list.to_string();
        self
    }

    /// An extra `key=value` line for zoo.cfg.
    pub fn cfg(mut self, key: &str, value: impl ToString) -> Self {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }
}

/// zoo.cfg keys that Apache ZooKeeper reads as plain JVM system properties
/// (not as `zookeeper.`-prefixed ones). For the zookeeper target they are
/// also passed as `-Dkey=value`; corral reads them from zoo.cfg.
const ZK_PLAIN_SYSPROPS: &[&str] = &[
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs",
    "jute.maxbuffer",
    "readonlymode.enabled",
];

/// Debian's ZooKeeper classpath: zookeeper.jar (its manifest names most of its other jars),
/// every Netty jar (the manifest leaves some out, which the Netty server and client, and so
/// TLS, need), and slf4j-simple for logs.
pub fn zookeeper_classpath() -> String {
    let mut cp = vec!["/usr/share/java/zookeeper.jar".to_string()];
    let mut netty: Vec<String> = std::fs::read_dir("/usr/share/java")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // The unversioned names: Debian links each to its versioned jar.
                .filter(|n| n.starts_with("netty-") && n.ends_with(".jar") && !n.contains("-4."))
                .map(|n| format!("/usr/share/java/{n}"))
                .collect()
        })
        .unwrap_or_default();
    netty.sort();
    cp.extend(netty);
    cp.push("/usr/share/java/slf4j-simple.jar".to_string());
    cp.join(":")
}

/// The java command line that runs Apache ZooKeeper's `main_class` on `cfg`, logging under
/// `dir` (shared by [`TestServer`] and the ensemble harness).
pub fn zookeeper_command(
    dir: &Path,
    cfg: &Path,
    extra: &[(String, String)],
    main_class: &str,
) -> Command {
    let java = std::env::var("CORRAL_ZK_JAVA").unwrap_or_else(|_| "java".to_string());
    let cp = std::env::var("CORRAL_ZK_CLASSPATH").unwrap_or_else(|_| zookeeper_classpath());
    let mut cmd = Command::new(java);
    cmd.args([
        "-Xms32m",
        "-Xmx192m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xss512k",
        "-Djava.net.preferIPv4Stack=true",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
    ]);
    cmd.arg(format!("-Dzookeeper.log.dir={}", dir.display()));
    for (k, v) in extra {
        if ZK_PLAIN_SYSPROPS.contains(&k.as_str()) {
            cmd.arg(format!("-D{k}={v}"));
        }
        // corral's zoo.cfg key for the JAAS file is the JVM's login config property.
        if k == "corral.jaasConfig" {
            cmd.arg(format!("-Djava.security.auth.login.config={v}"));
        }
        if k == "corral.krb5Config" {
            cmd.arg(format!("-Djava.security.krb5.conf={v}"));
        }
    }
    cmd.arg("-cp").arg(cp);
    cmd.arg(main_class);
    cmd.arg(cfg);
    cmd
}

/// Spawns `inner` under the [`WATCHDOG`] script in its own process group, in `dir`, with
/// stdout and stderr appended to `log_path`.
pub fn spawn_watchdog(inner: &Command, dir: &Path, log_path: &Path) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| format!("open log: {e}"))?;
    let log2 = log.try_clone().unwrap();
    // Watchdog wrapper: the server runs under `sh`, which kills it as soon
    // as our end of its stdin pipe closes -- i.e. also when the test
    // process dies without running destructors (abort, stack overflow).
    // `sh` exits with the server's status, so early exits are still seen.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(WATCHDOG)
        .arg("corral-test-watchdog")
        .arg(inner.get_program())
        .args(inner.get_args());
    cmd.current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn().map_err(|e| format!("spawn {:?}: {e}", cmd))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `sh -c` script: start "$@" in the background, kill it when stdin hits
/// EOF, exit with its status.
pub const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM
( read _ <&3; kill -KILL "$pid" 2>/dev/null ) &
guard=$!
exec 3<&-
while :; do
  wait "$pid"
  st=$?
  kill -0 "$pid" 2>/dev/null || break
done
kill "$guard" 2>/dev/null
wait "$guard" 2>/dev/null
exit "$st""#;

/// Runs `cmd` with `input` on its stdin and collects its output (read while it runs, so a
/// chatty process cannot fill a pipe and stall); killed, and the test failed, if it is not done
/// within `limit`.
pub fn run_within(cmd: &mut Command, input: &str, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_string();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for the process"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {limit:?}");
        }
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

pub fn make_temp_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "corral-test-{}-{}-{}",
        std::process::id(),
        n,
        nanos
    ));
    std::fs::create_dir_all(dir.join("data")).expect("create temp dir");
    dir
}

/// A running server under test.
pub struct TestServer {
    pub port: u16,
    pub dir: PathBuf,
    pub opts: ServerOpts,
    target: Target,
    child: Option<Child>,
    starts: u32,
}

impl TestServer {
    /// Starts a server with default options.
    pub async fn start_default() -> TestServer {
        Self::start(ServerOpts::default()).await
    }

    /// Starts a server on a free loopback port, waiting (bounded) until it
    /// answers `ruok` with `imok`.
    pub async fn start(opts: ServerOpts) -> TestServer {
        Self::start_target(target(), opts).await
    }

    /// [`TestServer::start`] of the given implementation, whatever `CORRAL_TEST_TARGET` says
    /// (tests that move data between corral and ZooKeeper run both).
    pub async fn start_target(target: Target, opts: ServerOpts) -> TestServer {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let dir = make_temp_dir();
            let mut server = TestServer {
                port: free_port(),
                dir,
                opts: opts.clone(),
                target,
                child: None,
                starts: 0,
            };
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => {
                    last_err = format!("{e}\n--- server log tail ---\n{}", server.log_tail(4000));
                    if !e.contains("exited early") {
                        break; // a hang is not a port race: do not retry
                    }
                    // Drop cleans up; retry with another port (port races with parallel tests).
                }
            }
        }
        panic!("server did not start: {last_err}");
    }

    /// VmRSS of the corral process in KiB (None against ZooKeeper): the child of the watchdog
    /// script that is named corral.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS")
    }

    /// A `/proc/<pid>/status` figure in KiB of the corral process (`VmRSS`, `VmHWM`, ...);
    /// None against ZooKeeper.
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let sh = self.child.as_ref()?.id();
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).ok()?;
        let pid = children.split_whitespace().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "corral")
        })?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status
            .lines()
            .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn socket_addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    pub fn cfg_path(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn write_cfg(&self) {
        let mut cfg = String::new();
        cfg.push_str(&format!("tickTime={}\n", self.opts.tick_time));
        cfg.push_str(&format!("clientPort={}\n", self.port));
        cfg.push_str("clientPortAddress=127.0.0.1\n");
        cfg.push_str(&format!("dataDir={}\n", self.data_dir().display()));
        // Many test servers run at once: none takes the fixed HTTP ports (admin 8080, metrics
        // 7000); the tests of those endpoints set free ports of their own.
        cfg.push_str("admin.enableServer=false\n");
        cfg.push_str(&format!("metricsProvider.className={NO_METRICS}\n"));
        cfg.push_str(&format!("4lw.commands.whitelist={}\n", self.opts.whitelist));
        for (k, v) in &self.opts.extra {
            cfg.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(self.cfg_path(), cfg).expect("write zoo.cfg");
    }

    fn command(&self) -> Command {
        match self.target {
            Target::Corral => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
                cmd.arg("--config").arg(self.cfg_path());
                cmd
            }
            Target::ZooKeeper => zookeeper_command(
                &self.dir,
                &self.cfg_path(),
                &self.opts.extra,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ),
        }
    }

    async fn launch(&mut self) -> Result<(), String> {
        self.write_cfg();
        let child = spawn_watchdog(&self.command(), &self.dir, &self.log_path())?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_ready(Duration::from_secs(30)).await
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("server exited early with {status}"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("server not ready within {limit:?}"));
            }
            if let Ok(reply) =
                four_letter_timeout(&self.addr(), "ruok", Duration::from_secs(2)).await
            {
                // "imok", or the whitelist refusal when a test restricts it: either way
                // the client port is up. Then make sure requests are served.
                if !reply.is_empty() {
                    match four_letter_timeout(&self.addr(), "srvr", Duration::from_secs(2)).await {
                        Ok(s) if s.contains("not currently serving") => {}
                        Ok(_) => return Ok(()),
                        Err(_) => {}
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs the server (and its process group) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            signal_group(pgid, "KILL");
            let _ = child.kill();
            let _ = child.wait();
            wait_group_gone(pgid, Duration::from_secs(10));
        }
    }

    /// SIGTERMs the server's process group, waits up to 10 s for all of it
    /// to exit, then SIGKILLs whatever is left.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            signal_group(pgid, "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !wait_group_gone(pgid, deadline.saturating_duration_since(Instant::now())) {
                signal_group(pgid, "KILL");
            }
            let _ = child.kill();
            let _ = child.wait();
            wait_group_gone(pgid, Duration::from_secs(5));
        }
    }

    /// Starts the server again on the same port and data dir (after
    /// [`TestServer::kill9`] or [`TestServer::stop`]).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "server still running");
        // The old listener may linger briefly; retry a few times.
        let mut last = String::new();
        for _ in 0..3 {
            match self.launch().await {
                Ok(()) => return,
                Err(e) => {
                    eprintln!(
                        "[harness] restart attempt failed: {e}\n{}",
                        self.log_tail(6000)
                            .lines()
                            .filter(|l| l.starts_with("corral:"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                    last = e;
                    self.kill9();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        panic!("server did not restart: {last}\n{}", self.log_tail(4000));
    }

    /// Graceful stop followed by a start on the same port and data dir.
    pub async fn restart(&mut self) {
        self.stop();
        self.start_again().await;
    }

    /// Kill -9 followed by a start on the same port and data dir.
    pub async fn crash_restart(&mut self) {
        self.kill9();
        self.start_again().await;
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                _ => {
                    // Exited (and reaped): forget it so its pid is never signalled again.
                    let pgid = c.id() as i32;
                    self.child = None;
                    wait_group_gone(pgid, Duration::from_secs(5));
                    false
                }
            },
        }
    }

    /// Last `max` bytes of the server's combined stdout/stderr.
    pub fn log_tail(&self, max: usize) -> String {
        match std::fs::read(self.log_path()) {
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(max);
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            }
            Err(e) => format!("<no log: {e}>"),
        }
    }

    /// Connects a client with default options (6 s session timeout requested).
    pub async fn client(&self) -> zk::Client {
        connect(&self.addr()).await
    }

    /// Connects a client with the given requested session timeout.
    pub async fn client_with_timeout(&self, timeout: Duration) -> zk::Client {
        connect_with(
            &self.addr(),
            zk::Client::connector().with_session_timeout(timeout),
        )
        .await
    }

    /// Four-letter word against this server.
    pub async fn four_letter(&self, cmd: &str) -> String {
        four_letter(&self.addr(), cmd).await
    }

    /// Raw protocol session against this server.
    pub async fn raw(&self) -> raw::RawConn {
        raw::RawConn::connect(&self.addr(), 30_000)
            .await
            .expect("raw connect")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        let keep = std::env::var("CORRAL_TEST_KEEP")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        if std::thread::panicking() || keep {
            eprintln!(
                "[harness] kept server dir {} (log: {})",
                self.dir.display(),
                self.log_path().display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn signal_group(pgid: i32, sig: &str) {
    // Never signal group 0/1 (that would hit the test runner itself).
    if pgid <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// True if some non-zombie process is in process group `pgid` (via /proc,
/// so orphaned zombies do not count).
fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let _ppid = f.next();
        let pgrp: i32 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        if pgrp == pgid && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

/// Waits until no live process of the group is left; false on timeout.
pub fn wait_group_gone(pgid: i32, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bounds a test body in time: panics if it does not finish within `secs`.
pub async fn timed<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    // Boxed: debug-build test futures are large; keep them off the stack.
    match tokio::time::timeout(Duration::from_secs(secs), Box::pin(fut)).await {
        Ok(v) => v,
        Err(_) => panic!("test body exceeded {secs}s"),
    }
}

/// Awaits `fut` with a bound, panicking with `what` on timeout.
pub async fn within<T>(d: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(d, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {d:?}: {what}"),
    }
}

/// Asserts that `fut` does NOT complete within `d` (e.g. an event that must not fire).
pub async fn assert_pending<T: std::fmt::Debug>(
    d: Duration,
    what: &str,
    fut: impl Future<Output = T>,
) {
    if let Ok(v) = tokio::time::timeout(d, fut).await {
        panic!("{what}: expected nothing within {d:?}, got {v:?}");
    }
}

/// Polls `f` until it returns true or `d` elapses.
pub async fn eventually<F, Fut>(d: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + d;
    loop {
        if f().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("condition not met within {d:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn connect(addr: &str) -> zk::Client {
    connect_with(addr, zk::Client::connector()).await
}

pub async fn connect_with(addr: &str, connector: zk::Connector) -> zk::Client {
    within(
        Duration::from_secs(20),
        "client connect",
        connector.connect(addr),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

pub fn anyone() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

pub fn mode(m: zk::CreateMode) -> zk::CreateOptions<'static> {
    m.with_acls(zk::Acls::anyone_all())
}

/// Sends a four-letter word and reads the reply until the server closes.
pub async fn four_letter(addr: &str, cmd: &str) -> String {
    four_letter_timeout(addr, cmd, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("4lw {cmd}: {e}"))
}

pub async fn four_letter_timeout(addr: &str, cmd: &str, d: Duration) -> std::io::Result<String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(cmd.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    match tokio::time::timeout(d, fut).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "4lw timed out",
        )),
    }
}

/// Opens a plain TCP socket to the server (for malformed-input tests).
pub async fn raw_tcp(addr: &str) -> TcpStream {
    within(
        Duration::from_secs(5),
        "tcp connect",
        TcpStream::connect(addr),
    )
    .await
    .expect("tcp connect")
}

/// Reads from `s` until EOF/reset or `d` elapses. Returns (bytes read, closed?).
pub async fn read_until_closed(s: &mut TcpStream, d: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + d;
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return (out, true),
        }
    }
}

/// Blocking helper used where no runtime is around.
pub fn four_letter_blocking(addr: &str, cmd: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(cmd.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}

// ---------------------------------------------------------------------------
// Digest helpers (self-contained SHA-1 + base64 so the tests do not depend on
// the server's crates).

pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | ((!b) & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for i in 0..5 {
        out[4 * i..4 * i + 4].copy_from_slice(&h[i].to_be_bytes());
    }
    out
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The digest ACL id for `user:password`: `user:base64(sha1("user:password"))`.
pub fn digest_id(user: &str, password: &str) -> String {
    format!(
        "{user}:{}",
        base64(&sha1(format!("{user}:{password}").as_bytes()))
    )
}
