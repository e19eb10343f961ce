//! What the loadgen's integration tests share: the corral binary they run, and free ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

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
