//! Start-up and shutdown of the real binary: one server per client port and per data directory
//! even when two start at the same instant, a restart right after kill -9, logs that suit a
//! file or a pipe (no colours; recovery reported before serving), start-up I/O errors that name
//! their path, and a clean stop on SIGTERM and SIGINT that loses nothing acknowledged.
//!
//! These tests run the corral binary directly (not through `TestServer`): they need its exit
//! status, its own stderr, and two servers at once. Each child is killed when the test thread
//! dies (PR_SET_PDEATHSIG) and when its handle drops. Corral-only: they test corral's start-up.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A corral process started by a test, with stderr and stdout in `log`.
struct Corral {
    child: Child,
    log: PathBuf,
    port: u16,
    status: Option<ExitStatus>,
}

impl Corral {
    fn spawn(port: u16, data_dir: &Path, extra: &[String], log: PathBuf) -> Corral {
        let out = std::fs::File::create(&log).expect("create log");
        let mut cmd = base_command(port, data_dir, extra);
        cmd.stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        Corral {
            child: cmd.spawn().expect("spawn corral"),
            log,
            port,
            status: None,
        }
    }

    /// The exit status, if the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "corral did not exit within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits (bounded) until the server answers `ruok`; panics if it exits first.
    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let addr = format!("127.0.0.1:{}", self.port);
        loop {
            if let Some(s) = self.exited() {
                panic!(
                    "corral exited with {s} before serving; log:\n{}",
                    self.log_text()
                );
            }
            if matches!(four_letter_blocking(&addr, "ruok"), Ok(r) if r == "imok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "corral not ready within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain syscall; the pid is our own unreaped child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn kill9(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn base_command(port: u16, data_dir: &Path, extra: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["--port", &port.to_string(), "--address", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--set", "4lw.commands.whitelist=*"])
        .args(extra)
        .stdin(Stdio::null())
        // Logs at info whatever the caller's CORRAL_LOG says: the tests read them.
        .env("CORRAL_LOG", "info");
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd
}

/// A fresh directory for one test, removed when dropped unless the test panicked.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d = std::env::temp_dir().join(format!(
            "corral-startup-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(std::fs::canonicalize(d).unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[startup] kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn two_ports() -> (u16, u16) {
    let p = free_port();
    loop {
        let q = free_port();
        if q != p {
            return (p, q);
        }
    }
}

/// Starts `a` and `b` back to back and checks that exactly one keeps serving while the other
/// exits non-zero with a message containing `named`.
fn race(
    a: (u16, PathBuf, Vec<String>),
    b: (u16, PathBuf, Vec<String>),
    scratch: &Scratch,
    named: &str,
) {
    let mut a = Corral::spawn(a.0, &a.1, &a.2, scratch.path("a.log"));
    let mut b = Corral::spawn(b.0, &b.1, &b.2, scratch.path("b.log"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut winner, mut loser) = loop {
        match (a.exited(), b.exited()) {
            (None, None) => {}
            (Some(_), None) => break (b, a),
            (None, Some(_)) => break (a, b),
            (Some(_), Some(_)) => panic!("both exited; a:\n{}\nb:\n{}", a.log_text(), b.log_text()),
        }
        assert!(
            Instant::now() < deadline,
            "two servers both running after 20 s; a:\n{}\nb:\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = loser.exited().unwrap();
    let msg = loser.log_text();
    assert!(
        !status.success(),
        "the refused server exits non-zero: {status}\n{msg}"
    );
    assert!(
        msg.contains(named) && msg.contains("in use"),
        "the refusal names {named:?}:\n{msg}"
    );
    winner.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(200));
    assert!(winner.exited().is_none(), "the first server keeps running");
}

#[test]
fn two_servers_on_one_port_started_together_one_is_refused() {
    if is_zookeeper() {
        return;
    }
    for i in 0..10 {
        let scratch = Scratch::new(&format!("port{i}"));
        let port = free_port();
        race(
            (port, scratch.path("a"), vec![]),
            (port, scratch.path("b"), vec![]),
            &scratch,
            &format!("127.0.0.1:{port}"),
        );
    }
}

#[test]
fn two_servers_on_one_data_dir_started_together_one_is_refused() {
    if is_zookeeper() {
        return;
    }
    for i in 0..10 {
        let scratch = Scratch::new(&format!("dir{i}"));
        let data = scratch.path("data");
        std::fs::create_dir_all(&data).unwrap();
        let (p, q) = two_ports();
        race(
            (p, data.clone(), vec![]),
            (q, data.clone(), vec![]),
            &scratch,
            &data.display().to_string(),
        );
    }
}

#[test]
fn two_servers_on_one_data_log_dir_one_is_refused() {
    if is_zookeeper() {
        return;
    }
    for i in 0..3 {
        let scratch = Scratch::new(&format!("logdir{i}"));
        let log = scratch.path("log");
        std::fs::create_dir_all(&log).unwrap();
        let extra = vec!["--set".to_string(), format!("dataLogDir={}", log.display())];
        let (p, q) = two_ports();
        race(
            (p, scratch.path("a"), extra.clone()),
            (q, scratch.path("b"), extra),
            &scratch,
            &log.display().to_string(),
        );
    }
}

/// The locks die with the process: a restart right after kill -9, on the same port and data
/// directory and with the old connections still open on the client side, succeeds at once.
#[test]
fn restart_right_after_kill9_is_not_refused() {
    if is_zookeeper() {
        return;
    }
    let scratch = Scratch::new("kill9");
    let data = scratch.path("data");
    let port = free_port();
    let mut held = Vec::new();
    for i in 0..4 {
        let mut s = Corral::spawn(port, &data, &[], scratch.path(&format!("{i}.log")));
        s.wait_ready(Duration::from_secs(30));
        for _ in 0..3 {
            held.push(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
        }
        s.kill9();
    }
}

/// Runs corral with stderr on a pipe until it logs that it serves; returns everything it wrote.
fn piped_startup_output(scratch: &Scratch) -> Vec<u8> {
    let mut cmd = base_command(free_port(), &scratch.path("data"), &[]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn corral");
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("serving clients") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => out.extend(chunk),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no 'serving clients' line within 30 s:\n{}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    if is_zookeeper() {
        return;
    }
    let scratch = Scratch::new("ansi");
    let out = piped_startup_output(&scratch);
    assert!(
        !out.contains(&0x1b),
        "ESC bytes in piped logs:\n{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn recovery_is_reported_before_serving() {
    if is_zookeeper() {
        return;
    }
    let scratch = Scratch::new("order");
    let out = String::from_utf8_lossy(&piped_startup_output(&scratch)).into_owned();
    let recovered = out
        .find("recovered from the transaction log")
        .unwrap_or_else(|| panic!("no recovery line:\n{out}"));
    let serving = out.find("serving clients").unwrap();
    assert!(
        recovered < serving,
        "recovery reported after serving:\n{out}"
    );
}

/// Every start-up I/O error names the file or directory it is about.
#[test]
fn startup_io_errors_name_the_path() {
    if is_zookeeper() {
        return;
    }
    let scratch = Scratch::new("paths");
    let seg = "wal-0000000000000001.log";
    let snap = "snap-0000000000000005.snap";
    let d = |n: &str| scratch.path(n);
    // What stands in the way: a regular file where a directory belongs, or the reverse.
    for dir in ["d2", "d3"] {
        std::fs::create_dir_all(d(dir)).unwrap();
    }
    std::fs::write(d("d2").join("snapshots"), b"x").unwrap();
    std::fs::write(d("d3").join("wal"), b"x").unwrap();
    std::fs::create_dir_all(d("d4").join("snapshots").join(snap)).unwrap();
    std::fs::create_dir_all(d("d5").join("wal").join(seg)).unwrap();
    std::fs::create_dir_all(d("d6").join("acceptedEpoch")).unwrap();
    let no_dir = PathBuf::from("/proc/corral-no-such-dir");
    let log_flag = vec![
        "--set".to_string(),
        format!("dataLogDir={}", no_dir.join("log").display()),
    ];
    // (case, data dir, extra flags, the path the error must name)
    let cases = [
        (
            "dataDir cannot be created",
            no_dir.join("data"),
            vec![],
            no_dir.join("data"),
        ),
        (
            "dataLogDir cannot be created",
            d("d1"),
            log_flag,
            no_dir.join("log"),
        ),
        (
            "snapshots is a file",
            d("d2"),
            vec![],
            d("d2").join("snapshots"),
        ),
        ("wal is a file", d("d3"), vec![], d("d3").join("wal")),
        (
            "a snapshot is a directory",
            d("d4"),
            vec![],
            d("d4").join("snapshots").join(snap),
        ),
        (
            "a log segment is a directory",
            d("d5"),
            vec![],
            d("d5").join("wal").join(seg),
        ),
        (
            "an epoch file is a directory",
            d("d6"),
            vec![],
            d("d6").join("acceptedEpoch"),
        ),
    ];
    for (what, data, extra, named) in cases {
        let mut s = Corral::spawn(free_port(), &data, &extra, scratch.path("err.log"));
        let status = s.wait_exit(Duration::from_secs(30));
        let msg = s.log_text();
        assert!(
            !status.success(),
            "{what}: exits non-zero, got {status}\n{msg}"
        );
        assert!(
            msg.contains(&named.display().to_string()),
            "{what}: the error names {}:\n{msg}",
            named.display()
        );
    }
}

/// SIGTERM and SIGINT stop the server cleanly: a log line says so, the exit status is 0, and
/// every acknowledged write is there after a restart.
#[tokio::test(flavor = "current_thread")]
async fn sigterm_and_sigint_stop_cleanly_and_keep_every_acknowledged_write() {
    if is_zookeeper() {
        return;
    }
    timed(180, async {
        for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
            let scratch = Scratch::new(name);
            let data = scratch.path("data");
            let port = free_port();
            let mut s = Corral::spawn(port, &data, &[], scratch.path("1.log"));
            s.wait_ready(Duration::from_secs(30));
            let c = connect(&format!("127.0.0.1:{port}")).await;
            const N: usize = 50;
            for i in 0..N {
                c.create(&format!("/n{i}"), b"v", &anyone()).await.unwrap();
            }
            // Writes in flight when the signal lands must not matter: they are not acknowledged.
            let bg = {
                let c = c.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        if c.create(&format!("/extra{i}"), b"", &anyone())
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                })
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.signal(sig);
            let status = s.wait_exit(Duration::from_secs(20));
            let log = s.log_text();
            assert_eq!(
                status.code(),
                Some(0),
                "{name}: exit status 0, got {status}\n{log}"
            );
            assert!(
                log.contains(&format!("shutting down on {name}")) && log.contains("shut down"),
                "{name}: the stop is logged:\n{log}"
            );
            drop(c);
            bg.abort();

            let mut s = Corral::spawn(port, &data, &[], scratch.path("2.log"));
            s.wait_ready(Duration::from_secs(30));
            let c = connect(&format!("127.0.0.1:{port}")).await;
            for i in 0..N {
                assert!(
                    c.check_stat(&format!("/n{i}")).await.unwrap().is_some(),
                    "{name}: acknowledged /n{i} survives"
                );
            }
        }
    })
    .await;
}

/// A session that never says goodbye: a raw ConnectRequest with a 400 ms timeout, answered,
/// then the socket dropped, so the server expires the session (a debug-level log line).
fn abandon_a_session(port: u16) {
    use std::io::Write as _;
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes()); // protocolVersion
    body.extend_from_slice(&0i64.to_be_bytes()); // lastZxidSeen
    body.extend_from_slice(&400i32.to_be_bytes()); // timeOut
    body.extend_from_slice(&0i64.to_be_bytes()); // sessionId
    body.extend_from_slice(&16i32.to_be_bytes()); // passwd
    body.extend_from_slice(&[0u8; 16]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a ConnectResponse");
}

/// Waits (bounded) until the log has a line for which `f` holds; returns it.
fn wait_line(c: &Corral, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = c.log_text();
        if let Some(v) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| f(v))
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no log line {what}; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `CORRAL_LOG_FORMAT=json` writes one JSON object per line; SIGUSR1 and SIGUSR2 make the log
/// one level more and less verbose while the server runs.
#[test]
fn json_logs_and_a_level_changed_by_signal() {
    if is_zookeeper() {
        return;
    }
    let scratch = Scratch::new("json");
    let port = free_port();
    let out = std::fs::File::create(scratch.path("log")).unwrap();
    let mut cmd = base_command(
        port,
        &scratch.path("data"),
        &["--set".into(), "tickTime=200".into()],
    );
    cmd.env("CORRAL_LOG_FORMAT", "json")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out));
    let mut c = Corral {
        child: cmd.spawn().expect("spawn corral"),
        log: scratch.path("log"),
        port,
        status: None,
    };
    c.wait_ready(Duration::from_secs(30));
    let is_expiry = |v: &serde_json::Value| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("session 0x") && m.ends_with("expired"))
    };

    // At info, an expired session is not logged.
    abandon_a_session(port);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !c.log_text().contains("expired"),
        "a debug line at info:\n{}",
        c.log_text()
    );

    c.signal(libc::SIGUSR1);
    wait_line(&c, "for the change to debug", |v| {
        v["message"] == "log filter changed" && v["from"] == "info" && v["to"] == "debug"
    });
    abandon_a_session(port);
    let expired = wait_line(&c, "for the expiry at debug", is_expiry);
    assert_eq!(expired["level"], "DEBUG");
    assert_eq!(expired["target"], "corral::write");

    // Down to warn, then error (announced before it hides warnings). One signal at a time:
    // a second one sent while the first is pending merges with it.
    for (from, to) in [("debug", "info"), ("info", "warn"), ("warn", "error")] {
        c.signal(libc::SIGUSR2);
        wait_line(&c, &format!("for the change to {to}"), |v| {
            v["message"] == "log filter changed" && v["from"] == from && v["to"] == to
        });
    }

    let text = c.log_text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 5, "{text}");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(v.get(field).is_some(), "no {field} in {l}");
        }
    }
}
