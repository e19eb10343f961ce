//! The ensemble benchmark's tools (loadgen/ensemble.sh) against a live three-member corral
//! ensemble, briefly:
//! - the phases, with sessions spread over the members and every member's CPU and RSS sampled:
//!   every request answered, no errors, each member accounted for;
//! - `loadgen catchup`: the real binary kills a follower, writes through the other two,
//!   restarts it with the same command line through --restart, and reports when it serves,
//!   when it has caught up, and that a client reads the last write through it. The restarted
//!   member is stopped through the PID the tool prints;
//! - the 3-hop echo floor the ensemble's open-loop phase is judged against.
//!
//! The corral binary is built as the other loadgen tests build it (tests/common), or taken from
//! `$CORRAL_BIN`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{corral_bin, free_port, phases as run_phases, run_bounded, LOADGEN};

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

/// A running three-member ensemble on free loopback ports.
struct Ensemble {
    all: Cleanup,
    /// Client ports, then quorum ports, then election ports.
    ports: Vec<u16>,
    base: PathBuf,
    bin: PathBuf,
}

fn start_ensemble(name: &str) -> Ensemble {
    let bin = corral_bin();
    let ports: Vec<u16> = (0..9).map(|_| free_port()).collect();
    let base = std::env::temp_dir().join(format!("loadgen-{name}-{}", std::process::id()));
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
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n4lw.commands.whitelist=*\n",
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
    // Serving: each member answers `srvr` with a leader or follower mode.
    let t = Instant::now();
    for &p in &ports[..3] {
        while !srvr(p).is_some_and(|a| a.contains("Mode: leader") || a.contains("Mode: follower")) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the ensemble did not form"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ensemble {
        all,
        ports,
        base,
        bin,
    }
}

#[test]
fn catchup_of_a_restarted_corral_follower() {
    let Ensemble {
        mut all,
        ports,
        base,
        bin,
    } = start_ensemble("catchup");
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

    let mut cmd = Command::new(LOADGEN);
    cmd.args(["catchup", "--members", &addrs.join(","), "--pids"])
        .arg(pids.join(","))
        .args([
            "--restart",
            &restart,
            "--writes",
            "2000",
            "--label",
            "corral",
        ])
        .args(["--json", "--ready-limit", "30", "--limit", "60"]);
    let out = run_bounded(cmd, Duration::from_secs(150));
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

/// Requests counted, replies received and errors of a phase agree.
fn check_counts(phase: &Value) {
    let name = phase["phase"].as_str().unwrap();
    let n = |k: &str| phase[k].as_u64().unwrap_or_else(|| panic!("{name}: {k}"));
    assert_eq!(n("error_total"), 0, "{name}: errors {}", phase["errors"]);
    assert_eq!(n("sent"), n("replies"), "{name}: requests sent != replies");
    assert!(
        n("ops") > 0 && n("ops") <= n("replies"),
        "{name}: ops {}",
        n("ops")
    );
    let counted: u64 = phase["latency_us"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(op, _)| ["getData", "setData", "create", "delete"].contains(&op.as_str()))
        .map(|(_, v)| v["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, n("ops"), "{name}: histogram counts != ops");
}

#[test]
fn ensemble_phases_against_live_corral() {
    let e = start_ensemble("phases");
    let servers: Vec<String> = e.ports[..3]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let servers = servers.join(",");
    let pids: Vec<String> = e.all.members.iter().map(|c| c.id().to_string()).collect();
    let pids = pids.join(",");
    // The phases of loadgen/ensemble.sh, smaller.
    let mut phases = Vec::new();
    for p in [
        "-w setdata -s 12 -o 1",
        "-w create-delete -s 12 -o 1",
        "-w setdata -s 3 -o 8",
        "-w getdata -s 12 -o 1",
        "-w mix -s 6 -o 8",
        "-w setdata -s 6 -o 8 --rate 300",
    ] {
        let mut args = vec!["--servers", &servers, "--server-pid", &pids, "--keys", "50"];
        args.extend(p.split(' '));
        phases.extend(run_phases(&args));
    }
    assert_eq!(phases.len(), 6);
    for ph in &phases {
        check_counts(ph);
        let name = ph["phase"].as_str().unwrap();
        // Every member accounted for, and the total is theirs.
        let members = ph["members"].as_array().unwrap();
        assert_eq!(members.len(), 3, "{name}");
        let mut sum = 0.0;
        for m in members {
            let cpu = m["cpu_us_per_op"].as_f64().unwrap_or(-1.0);
            assert!(cpu >= 0.0, "{name}: {m}");
            assert!(m["rss_kb_max"].as_u64().unwrap() > 1024, "{name}: {m}");
            sum += cpu;
        }
        let total = ph["server_cpu_us_per_op"].as_f64().unwrap();
        assert!(
            total > 0.0 && (total - sum).abs() < 1e-6 * total.max(1.0),
            "{name}"
        );
        let rss = ph["server_rss_kb_max"].as_u64().unwrap();
        let largest = members
            .iter()
            .map(|m| m["rss_kb_max"].as_u64().unwrap())
            .max();
        assert_eq!(Some(rss), largest, "{name}: RSS is the largest member's");
    }
    let open = &phases[5];
    assert_eq!(open["mode"], "open");
    assert!(
        (open["throughput"].as_f64().unwrap() - 300.0).abs() < 30.0,
        "{open}"
    );
    drop(e);

    // The floor: the same open-loop phase through three echo hops, and a closed one.
    for p in ["-w setdata -s 6 -o 8 --rate 300", "-w setdata -s 4 -o 1"] {
        let mut args = vec!["--echo", "--echo-hops", "3"];
        args.extend(p.split(' '));
        for ph in run_phases(&args) {
            check_counts(&ph);
        }
    }
}
