//! `loadgen catchup` against a live three-member corral ensemble: the real binary kills a
//! follower, writes through the other two, restarts it with the same command line through
//! --restart, and reports when it serves, when it has caught up, and that a client reads the
//! last write through it. The restarted member is stopped through the PID the tool prints.
//!
//! The corral binary is built as in live.rs (its own target directory), or taken from
//! `$CORRAL_BIN`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

fn corral_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CORRAL_BIN") {
        return PathBuf::from(p);
    }
    let target = Path::new(LOADGEN).parent().unwrap().parent().unwrap();
    let dir = target.join("loadgen-test-corral");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-p", "corral", "--bin", "corral", "--target-dir"])
        .arg(&dir)
        .current_dir(workspace)
        .status()
        .expect("run cargo build -p corral");
    assert!(st.success(), "cargo build -p corral failed");
    dir.join("debug").join("corral")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Everything the test started, stopped on the way out, pass or fail.
struct Cleanup {
    members: Vec<Child>,
    /// Process group of the restarted member (its PID as printed by loadgen).
    group: Option<i32>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(g) = self.group {
            // SAFETY: kill has no memory-safety preconditions; g is the group loadgen started.
            unsafe { libc::kill(-g, libc::SIGKILL) };
        }
        for c in &mut self.members {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn srvr(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn catchup_of_a_restarted_corral_follower() {
    let bin = corral_bin();
    let ports: Vec<u16> = (0..9).map(|_| free_port()).collect();
    let base = std::env::temp_dir().join(format!("loadgen-catchup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut all = Cleanup {
        members: Vec::new(),
        group: None,
        dir: base.clone(),
    };
    for sid in 1..=3 {
        let dir = base.join(format!("m{sid}"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/myid"), format!("{sid}\n")).unwrap();
        let mut cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n",
            dir.join("data").display(),
            ports[sid - 1]
        );
        for j in 0..3 {
            cfg += &format!(
                "server.{}=127.0.0.1:{}:{}\n",
                j + 1,
                ports[3 + j],
                ports[6 + j]
            );
        }
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(dir.join("zoo.cfg"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        all.members.push(child);
    }
    let addrs: Vec<String> = ports[..3]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let pids: Vec<String> = all.members.iter().map(|c| c.id().to_string()).collect();
    // The same command line as the first start, the member's own directory by `{sid}`.
    let restart = format!(
        "exec '{}' --config '{}/m{{sid}}/zoo.cfg' >/dev/null 2>>'{}/m{{sid}}/restart.log'",
        bin.display(),
        base.display(),
        base.display()
    );

    let mut child = Command::new(LOADGEN)
        .args(["catchup", "--members", &addrs.join(","), "--pids"])
        .arg(pids.join(","))
        .args([
            "--restart",
            &restart,
            "--writes",
            "2000",
            "--label",
            "corral",
        ])
        .args(["--json", "--ready-limit", "30", "--limit", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(150) {
            let _ = child.kill();
            panic!("loadgen catchup did not finish within 150 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {}: {stdout}\n{stderr}", out.status));
    eprintln!("{v}");
    if let Some(p) = v["restart_pid"].as_i64() {
        all.group = Some(p as i32);
    }
    assert!(out.status.success(), "{}: {stdout}\n{stderr}", out.status);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["read_ok"], true, "{v}");
    assert_eq!(v["writes"], 2000, "{v}");
    assert!(v["write_ms"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["write_rate"].as_f64().unwrap() > 0.0, "{v}");
    let serving = v["serving_ms"].as_f64().unwrap();
    let caught_up = v["caught_up_ms"].as_f64().unwrap();
    assert!(
        0.0 <= serving && serving <= caught_up && caught_up < 60_000.0,
        "{v}"
    );
    let target = v["target_zxid"].as_str().unwrap();
    let target = i64::from_str_radix(target.strip_prefix("0x").unwrap(), 16).unwrap();
    assert!(target > 2000, "{v}");

    // The member it killed was a follower, and died of SIGKILL.
    let sid = v["member"].as_u64().unwrap() as usize;
    assert!((1..=3).contains(&sid) && v["leader"] != v["member"], "{v}");
    let st = all.members[sid - 1].wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));

    // The restarted member serves, at or beyond the target zxid ...
    let port = ports[sid - 1];
    let ans = srvr(port).expect("the restarted member answers srvr");
    assert!(ans.contains("Mode: follower"), "{ans}");
    let z = ans
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .expect("a Zxid line");
    assert!(i64::from_str_radix(z, 16).unwrap() >= target, "{ans}");
    // ... and the printed PID's process group is it: killing the group stops it.
    let g = all.group.take().expect("a restart_pid");
    // SAFETY: kill has no memory-safety preconditions; g is the group loadgen started.
    assert_eq!(unsafe { libc::kill(-g, libc::SIGKILL) }, 0);
    let t = Instant::now();
    while srvr(port).is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the restarted member still answers after its group was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
