//! The defaults the README's run command relies on: no zoo.cfg, data in `./data` relative to
//! the working directory, and the data there survives a restart. (corral only: the ZooKeeper
//! target has no such command line.)

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn spawn(dir: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--port", &port.to_string()])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

async fn wait_up(addr: &str) {
    for _ in 0..200 {
        // The default whitelist allows only srvr, as ZooKeeper's does.
        if let Ok(r) = four_letter_timeout(addr, "srvr", Duration::from_secs(1)).await {
            if r.contains("Mode: standalone") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on {addr} did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_default_data_dir_works_and_persists() {
    if is_zookeeper() {
        return;
    }
    timed(60, async {
        let dir = std::env::temp_dir().join(format!("corral-defaults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut server = spawn(&dir, port);
        wait_up(&addr).await;
        let c = connect(&addr).await;
        c.create("/kept", b"yes", &anyone()).await.unwrap();
        drop(c);
        server.kill().unwrap();
        server.wait().unwrap();
        assert!(
            dir.join("data").join("wal").is_dir(),
            "log under ./data/wal"
        );
        let mut server = spawn(&dir, port);
        wait_up(&addr).await;
        let c = connect(&addr).await;
        assert_eq!(c.get_data("/kept").await.unwrap().0, b"yes");
        server.kill().unwrap();
        server.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}

/// Until the replication runtime lands, a zoo.cfg describing an ensemble must not start a
/// standalone server: each member would accept writes into its own diverging history.
#[test]
fn a_replicated_ensemble_config_is_refused() {
    if is_zookeeper() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("corral-ensemble-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data").join("myid"), "1\n").unwrap();
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort=0\n\
             server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
             server.3=127.0.0.3:2888:3888\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Bounded: a server that starts anyway is killed, and the test fails.
    let mut status = None;
    for _ in 0..200 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    assert!(
        err.contains("replicated ensemble (3 voting servers)"),
        "{err}"
    );
    assert!(
        !dir.join("data").join("wal").exists(),
        "it wrote a log before refusing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
