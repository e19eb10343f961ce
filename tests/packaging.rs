//! The Debian package (packaging/build-deb.sh) built from the binary under test, unpacked into a
//! scratch root (not installed: installing changes the machine, which packaging/test-deb.sh
//! does on CI), its files checked against what the unit and the postinst promise, and the
//! unit's own command line started from the unpacked tree and used by a real client.
//!
//! Corral-only: it tests corral's package.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `key=` in a unit or a zoo.cfg (the last one, as both read them).
fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// Builds the package into `out`; returns its path.
fn build_deb(out: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stdout = run(Command::new("bash")
        .arg(root.join("packaging/build-deb.sh"))
        .args(["--bin", env!("CARGO_BIN_EXE_corral"), "--out"])
        .arg(out));
    PathBuf::from(stdout.lines().last().expect("the .deb's path").trim())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_debian_package_holds_a_unit_that_serves() {
    if is_zookeeper() {
        return;
    }
    let scratch = make_temp_dir();
    let deb = build_deb(&scratch.join("out"));
    assert!(deb.ends_with(format!(
        "corral_{}_{}.deb",
        env!("CARGO_PKG_VERSION"),
        run(Command::new("dpkg").arg("--print-architecture")).trim()
    )));

    let control = run(Command::new("dpkg-deb").args(["--field"]).arg(&deb));
    assert_eq!(
        value(&control.replace(": ", "="), "Package"),
        Some("corral")
    );
    assert!(
        control.contains("adduser"),
        "Depends on adduser:\n{control}"
    );
    let unpacked = scratch.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    let meta = scratch.join("meta");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&meta));
    let conffiles = std::fs::read_to_string(meta.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/corral/zoo.cfg");
    let postinst = std::fs::read_to_string(meta.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group") && postinst.contains("/var/lib/corral"));

    let unit = std::fs::read_to_string(unpacked.join("lib/systemd/system/corral.service")).unwrap();
    assert_eq!(value(&unit, "User"), Some("corral"));
    assert_eq!(value(&unit, "LimitMEMLOCK"), Some("infinity"));
    assert_eq!(value(&unit, "WantedBy"), Some("multi-user.target"));
    let exec = value(&unit, "ExecStart").expect("ExecStart");
    assert_eq!(exec, "/usr/bin/corral --config /etc/corral/zoo.cfg");
    let cfg = std::fs::read_to_string(unpacked.join("etc/corral/zoo.cfg")).unwrap();
    assert_eq!(value(&cfg, "dataDir"), Some("/var/lib/corral"));
    assert_eq!(value(&cfg, "clientPort"), Some("2181"));

    // The unit's command line, from the unpacked tree: its binary and its zoo.cfg, with the port
    // and the data directory moved to scratch ones (flags override zoo.cfg).
    let mut words = exec.split_whitespace();
    let bin = unpacked.join(words.next().unwrap().trim_start_matches('/'));
    let args: Vec<String> = words
        .map(|w| match w.strip_prefix('/') {
            Some(p) if p.starts_with("etc/") => unpacked.join(p).display().to_string(),
            _ => w.to_string(),
        })
        .collect();
    let port = free_port();
    let data = scratch.join("data");
    let log = std::fs::File::create(scratch.join("corral.log")).unwrap();
    let mut child = Command::new(&bin)
        .args(&args)
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start the packaged corral");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while four_letter_blocking(&addr, "ruok").ok().as_deref() != Some("imok") {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!(
                "the packaged corral did not serve:\n{}",
                std::fs::read_to_string(scratch.join("corral.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let c = connect(&addr).await;
    c.create("/packaged", b"yes", &anyone()).await.unwrap();
    assert_eq!(c.get_data("/packaged").await.unwrap().0, b"yes");
    assert!(four_letter(&addr, "srvr")
        .await
        .contains("Mode: standalone"));
    drop(c);
    // SAFETY: plain syscall on our own unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "exit status on SIGTERM");
    let _ = std::fs::remove_dir_all(&scratch);
}
