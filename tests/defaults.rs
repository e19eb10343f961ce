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
