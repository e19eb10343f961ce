//! What the loadgen's integration tests share: the corral binary they run, free ports, and
//! running the loadgen itself with a time limit.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The loadgen binary under test.
pub const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// The corral binary: `$CORRAL_BIN`, or built here with `cargo build -p corral` into a target
/// directory of its own (a nested cargo cannot take the outer build's lock).
pub fn corral_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CORRAL_BIN") {
        return PathBuf::from(p);
    }
    // <target>/debug/loadgen -> <target>/loadgen-test-corral
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` with its output captured, killing it (and failing the test) past `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Runs loadgen phases with `args` (1 s measured after 0.2 s of warmup, bounded in time) and
/// returns their JSON lines; a failed run fails the test.
pub fn phases(args: &[&str]) -> Vec<Value> {
    let mut cmd = Command::new(LOADGEN);
    cmd.args(args).args([
        "--json",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--drain",
        "5",
    ]);
    let out = run_bounded(cmd, Duration::from_secs(180));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "loadgen {args:?} failed ({}):\n{stderr}",
        out.status
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}
