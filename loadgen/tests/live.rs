//! Runs every workload briefly against a live corral (and the echo floor) through the real
//! `loadgen` binary and checks that the numbers it reports are sane: every request answered, no
//! errors, throughput above zero, histogram counts adding up.
//!
//! The corral binary is built here with `cargo build -p corral` into a target directory of its
//! own (a nested cargo cannot take the outer build's lock), or taken from `$CORRAL_BIN`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{corral_bin, free_port, phases as loadgen, LOADGEN};

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_corral() -> (Server, u16) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("loadgen-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    (start_corral_on(dir, port), port)
}

/// Starts corral on `dir` (kept: a restart finds its data) and waits for it to accept.
fn start_corral_on(dir: PathBuf, port: u16) -> Server {
    let bin = corral_bin();
    let child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(&dir)
        .args([
            "--set",
            "4lw.commands.whitelist=*",
            "--set",
            "maxClientCnxns=0",
        ])
        .stdout(Stdio::null())
        .stderr(log_file(&dir))
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let server = Server { child, dir };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "corral did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn log_file(dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .unwrap()
}

fn check(phase: &Value, with_server_stats: bool) {
    let name = phase["phase"].as_str().unwrap();
    let n = |k: &str| phase[k].as_u64().unwrap_or_else(|| panic!("{name}: {k}"));
    assert_eq!(n("error_total"), 0, "{name}: errors {}", phase["errors"]);
    assert_eq!(n("sent"), n("replies"), "{name}: requests sent != replies");
    assert!(n("ops") > 0, "{name}: no ops");
    assert!(phase["throughput"].as_f64().unwrap() > 0.0, "{name}");
    let lat = phase["latency_us"].as_object().unwrap();
    let requests: u64 = [
        "getData",
        "exists",
        "getChildren",
        "setData",
        "create",
        "delete",
        "connect",
        "close",
    ]
    .iter()
    .filter_map(|k| lat.get(*k))
    .map(|v| v["count"].as_u64().unwrap())
    .sum();
    assert_eq!(requests, n("ops"), "{name}: histogram counts != ops");
    for (op, v) in lat {
        let p50 = v["p50"].as_f64().unwrap();
        let p99 = v["p99"].as_f64().unwrap();
        let max = v["max"].as_f64().unwrap();
        assert!(
            p50 > 0.0 && p50 <= p99 && p99 <= max,
            "{name} {op}: bad percentiles"
        );
        assert!(max < 10_000_000.0, "{name} {op}: max latency over 10 s");
        // The curve `loadgen plot` draws: rising, ending at (100, max).
        let curve: Vec<(f64, f64)> = v["percentiles"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} {op}: no percentiles"))
            .iter()
            .map(|pt| (pt[0].as_f64().unwrap(), pt[1].as_f64().unwrap()))
            .collect();
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{name} {op}: percentile curve not rising: {curve:?}"
        );
        assert_eq!(curve.last(), Some(&(100.0, max)), "{name} {op}");
    }
    assert_eq!(
        n("notifications"),
        n("expected_notifications"),
        "{name}: notifications"
    );
    if phase["workload"] == "watch" {
        assert!(n("notifications") > 0, "{name}: no notifications");
    }
    if with_server_stats {
        assert!(
            phase["server_cpu_us_per_op"].as_f64().unwrap() > 0.0,
            "{name}"
        );
        assert!(phase["server_rss_kb"].as_u64().unwrap() > 0, "{name}");
    }
}

#[test]
fn every_workload_against_live_corral() {
    let (server, port) = start_corral();
    let servers = format!("127.0.0.1:{port}");
    let pid = server.child.id().to_string();
    let all =
        "getdata,exists,getchildren,setdata,create-delete,create-delete-eph,mix,watch,churn,lock";
    let phases = loadgen(&[
        "--servers",
        &servers,
        "--server-pid",
        &pid,
        "--label",
        "corral",
        "-w",
        all,
        "--sessions",
        "8",
        "--outstanding",
        "8",
        "--keys",
        "100",
    ]);
    assert_eq!(phases.len(), 10, "one phase per workload");
    for p in &phases {
        check(p, true);
    }
    // Open loop with a sweep: a closed phase, then two paced ones near the asked rates.
    let hgrm = std::env::temp_dir().join(format!("loadgen-hgrm-{}", std::process::id()));
    let phases = loadgen(&[
        "--servers",
        &servers,
        "--server-pid",
        &pid,
        "-w",
        "getdata",
        "--sessions",
        "4",
        "--sweep",
        "10,30",
        "--hgrm-dir",
        hgrm.to_str().unwrap(),
    ]);
    assert_eq!(phases.len(), 3);
    let max = phases[0]["throughput"].as_f64().unwrap();
    for (p, pct) in phases[1..].iter().zip([10.0, 30.0]) {
        check(p, true);
        assert_eq!(p["mode"], "open");
        let want = max * pct / 100.0;
        let got = p["throughput"].as_f64().unwrap();
        assert!(
            (got - want).abs() < want * 0.2,
            "open loop at {want:.0}/s delivered {got:.0}/s"
        );
    }
    // Paced as compare.sh paces open loops: a loadgen thread that polls instead of sleeping.
    // One thread on one CPU at a low rate, since here it shares the CPUs with corral.
    let phases = loadgen(&[
        "--servers",
        &servers,
        "-w",
        "getdata",
        "--sessions",
        "4",
        "--rate",
        "2000",
        "--spin-us",
        "100",
        "--threads",
        "1",
        "--cpus",
        "0",
    ]);
    assert_eq!(phases.len(), 1);
    check(&phases[0], false);
    let got = phases[0]["throughput"].as_f64().unwrap();
    assert!(
        (got - 2000.0).abs() < 400.0,
        "open loop at 2000/s delivered {got:.0}/s"
    );
    let files: Vec<_> = std::fs::read_dir(&hgrm).unwrap().collect();
    assert_eq!(files.len(), 3, "one .hgrm per phase");
    let _ = std::fs::remove_dir_all(&hgrm);
    drop(server);
}

#[test]
fn echo_floor() {
    let phases = loadgen(&[
        "--echo",
        "-w",
        "getdata,exists,getchildren,setdata,create-delete,create-delete-eph,mix,churn",
        "--sessions",
        "4",
        "--outstanding",
        "4",
    ]);
    assert_eq!(phases.len(), 8);
    for p in &phases {
        check(p, true);
    }
    // The real thing through `loadgen plot`: one run, so a plot per phase (SVGs only: the PNGs
    // need a font, which tests/plot.rs covers).
    let dir = std::env::temp_dir().join(format!("loadgen-echo-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("echo.jsonl");
    let text: String = phases.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(&jsonl, text).unwrap();
    let out = Command::new(LOADGEN)
        .args(["plot", "--font", "/nonexistent.ttf", "--out-dir"])
        .arg(&dir)
        .arg(&jsonl)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "the font is missing on purpose");
    let svgs = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("svg".as_ref()))
        .count();
    assert_eq!(svgs, 8, "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The restart benchmark's tools (loadgen/restart.sh): populate a tree, kill -9, restart, and
/// probe until the last node is served; a probe for a node that does not exist gives up.
#[test]
fn populate_and_probe_across_a_restart() {
    let (mut server, port) = start_corral();
    let addr = format!("127.0.0.1:{port}");
    let shape = ["--root", "/rs", "--fanout", "1000"];
    let run = |sub: &str, extra: &[&str]| {
        Command::new(LOADGEN)
            .args([sub, "--server", &addr])
            .args(shape)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run("populate", &["--count", "2500", "--payload", "10"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let dir = std::mem::take(&mut server.dir);
    std::mem::forget(server);
    let _server = start_corral_on(dir, port);

    let out = run("probe", &["--count", "2500", "--limit", "30"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((0.0..30.0).contains(&secs));

    let out = run("probe", &["--count", "2501", "--limit", "0.3"]);
    assert_eq!(out.status.code(), Some(2), "a missing node is never served");
}

/// `loadgen stalls`, as compare.sh runs it: one JSON line per probed CPU, numbers that add up,
/// and a Markdown table with a row per CPU.
#[test]
fn stall_probe() {
    let run = |args: &[&str]| {
        let out = Command::new(LOADGEN)
            .args(["stalls", "--cpus", "0", "--seconds", "0.2"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let lines: Vec<Value> = run(&["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    assert_eq!(r["cpu"], 0);
    let secs = r["seconds"].as_f64().unwrap();
    assert!((0.2..5.0).contains(&secs), "{r}");
    assert!(r["max_us"].as_f64().unwrap() <= secs * 1e6, "{r}");
    assert!(
        r["over_100us"].as_u64().unwrap() >= r["over_1000us"].as_u64().unwrap(),
        "{r}"
    );
    let table = run(&[]);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(
        table.lines().nth(2).unwrap().starts_with("| 0 | "),
        "{table}"
    );
    // The sleeping variant names its columns for late wake-ups.
    let table = run(&["--sleep-us", "500"]);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("wake-ups late > 1 ms"), "{table}");
    // A CPU that does not exist is an error, not a silent zero.
    let out = Command::new(LOADGEN)
        .args(["stalls", "--cpus", "4096", "--seconds", "0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `loadgen failover` (loadgen/failover.sh's measuring tool), one round against a live
/// three-member corral ensemble: it finds the leader, kills it, and reports both times, with a
/// new leader among the survivors.
#[test]
fn failover_round_against_a_corral_ensemble() {
    let bin = corral_bin();
    let ports: Vec<u16> = (0..9).map(|_| free_port()).collect();
    let base = std::env::temp_dir().join(format!("loadgen-failover-{}", std::process::id()));
    let mut members = Vec::new();
    for i in 0..3 {
        let dir = base.join(format!("m{i}"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)).unwrap();
        let mut cfg = format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n",
            dir.join("data").display(),
            ports[i]
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
        let child = Command::new(&bin)
            .arg("--config")
            .arg(dir.join("zoo.cfg"))
            .stdout(Stdio::null())
            .stderr(log_file(&dir))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        members.push(Server { child, dir });
    }
    let addrs: Vec<String> = ports[..3]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let pids: Vec<String> = members.iter().map(|m| m.child.id().to_string()).collect();
    let out = Command::new(LOADGEN)
        .args(["failover", "--members", &addrs.join(","), "--pids"])
        .arg(pids.join(","))
        .args(["--label", "corral", "--json", "--before-ms", "300"])
        .args(["--ready-limit", "20", "--limit", "20"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}\n{stderr}", out.status);
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(v["ok"], true, "{v}");
    let killed = v["killed"].as_str().unwrap();
    let new_leader = v["new_leader"].as_str().expect("a new leader");
    assert!(
        addrs.iter().any(|a| a == new_leader) && new_leader != killed,
        "{v}"
    );
    let elect = v["elect_ms"].as_f64().unwrap();
    let outage = v["outage_ms"].as_f64().unwrap();
    assert!(elect > 0.0 && elect < 20_000.0, "{v}");
    assert!(outage > 0.0 && outage < 20_000.0, "{v}");
    for n in v["writes_before_kill"].as_array().unwrap() {
        assert!(n.as_u64().unwrap() > 0, "{v}");
    }
    // The leader is gone; its process must have died of the SIGKILL.
    let i = addrs.iter().position(|a| a == killed).unwrap();
    let st = members[i].child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    drop(members);
    let _ = std::fs::remove_dir_all(&base);
}
