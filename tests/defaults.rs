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

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A member of a three-member ensemble started alone cannot form a quorum: it looks for the
/// others, every four-letter word but `ruok` says it is not serving, and a client's connection
/// is closed without a session, as a LOOKING ZooKeeper member's is. It writes nothing to its log.
#[test]
fn a_member_alone_does_not_serve() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("corral-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data").join("myid"), "100\n").unwrap();
    let port = free_port();
    let (e1, e2, e3) = (free_port(), free_port(), free_port());
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort={port}\n\
             4lw.commands.whitelist=*\n\
             server.100=127.0.0.1:{}:{e1}\nserver.101=127.0.0.1:{}:{e2}\n\
             server.102=127.0.0.1:{}:{e3}\n",
            dir.join("data").display(),
            free_port(),
            free_port(),
            free_port(),
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--config".as_ref(), cfg.as_os_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if four_letter_blocking(&addr, "ruok").is_ok_and(|r| r == "imok") {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let outcome = std::panic::catch_unwind(|| {
        assert!(up, "the member did not answer ruok");
        let not_serving = "This ZooKeeper instance is not currently serving requests\n";
        for word in ["srvr", "stat", "mntr"] {
            assert_eq!(four_letter_blocking(&addr, word).unwrap(), not_serving);
        }
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&common::raw::connect_request(0, 30_000, 0, &[0; 16], false))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a member that does not serve answered a handshake: {other:?}"),
        }
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    if let Err(e) = outcome {
        eprintln!("server log:\n{err}");
        std::panic::resume_unwind(e);
    }
    assert!(err.contains("role=Looking"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
