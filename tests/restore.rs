//! `POST /commands/restore` on a live standalone server: a snapshot taken over the admin
//! server, restored after the data changed, gives back exactly the backup's znodes and stats;
//! sessions made after the backup expire, the backup's own go on; zxids go on past every one
//! seen before; the result survives kill -9; damaged uploads and callers without proof change
//! nothing.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::Value;
use zookeeper_client as zk;

const AUTH: (&str, &str) = ("Authorization", "digest ops:pw");

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One request with `Connection: close`, read to the end (bounded).
fn http(port: u16, method: &str, path: &str, auth: bool, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the admin port");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if auth {
        req.push_str(&format!("{}: {}\r\n", AUTH.0, AUTH.1));
    }
    if method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A refusal may come before the whole body is read.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: head,
        body: raw[end + 4..].to_vec(),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Every znode's data and stat, by path.
async fn walk(c: &zk::Client) -> BTreeMap<String, (Vec<u8>, String)> {
    let mut out = BTreeMap::new();
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        let (data, stat) = c.get_data(&p).await.unwrap_or_else(|e| panic!("{p}: {e}"));
        let (children, _) = c.get_children(&p).await.unwrap();
        for ch in children {
            todo.push(if p == "/" {
                format!("/{ch}")
            } else {
                format!("{p}/{ch}")
            });
        }
        out.insert(p, (data, format!("{stat:?}")));
    }
    out
}

/// A new client once the server answers again (it re-executes itself after a restore).
async fn reconnect(addr: &str) -> zk::Client {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let connecting = zk::Client::connector().connect(addr);
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(5), connecting).await {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server not back within 30 s after the restore"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_replaces_the_data_of_a_live_server() {
    timed(240, async {
        let port = free_port();
        let mut server = TestServer::start(
            ServerOpts::new()
                .cfg("admin.enableServer", "true")
                .cfg("admin.serverPort", port)
                .cfg("admin.rateLimiterIntervalInMS", "0"),
        )
        .await;
        let addr = server.addr();
        let c1 = connect(&addr).await;
        c1.create("/app", b"root", &anyone()).await.unwrap();
        for i in 0..50 {
            c1.create(&format!("/app/n{i:02}"), &vec![b'x'; i], &anyone())
                .await
                .unwrap();
        }
        c1.set_data("/app/n07", b"changed", None).await.unwrap();
        c1.delete("/app/n08", None).await.unwrap();
        c1.create("/eph1", b"", &mode(zk::CreateMode::Ephemeral))
            .await
            .unwrap();

        // The backup, and the state it holds.
        let r = blocking(move || http(port, "GET", "/commands/snapshot", true, b"")).await;
        assert_eq!(r.status, 200);
        let backup_zxid =
            i64::from_str_radix(r.header("last_zxid").unwrap().trim_start_matches("0x"), 16)
                .unwrap();
        let backup = r.body;
        let before = walk(&c1).await;

        // Changes after the backup, and a session the backup does not know.
        c1.create("/app/new", b"new", &anyone()).await.unwrap();
        c1.delete("/app/n01", None).await.unwrap();
        c1.set_data("/app/n02", b"set", None).await.unwrap();
        let c2 = connect(&addr).await;
        let (last, _) = c2
            .create("/eph2", b"", &mode(zk::CreateMode::Ephemeral))
            .await
            .unwrap();
        let newest_seen = last.czxid;
        let changed = walk(&c1).await;
        assert_ne!(before, changed);

        // Refused uploads change nothing: without proof, a flipped byte, a cut file.
        let b = backup.clone();
        assert_eq!(
            blocking(move || http(port, "POST", "/commands/restore", false, &b))
                .await
                .status,
            401
        );
        let mut flipped = backup.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        let mut truncated = backup.clone();
        truncated.truncate(backup.len() - 7);
        for (what, bad) in [
            ("flipped", flipped),
            ("truncated", truncated),
            ("empty", vec![]),
        ] {
            let r = blocking(move || http(port, "POST", "/commands/restore", true, &bad)).await;
            assert_eq!(
                r.status,
                400,
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let j = r.json();
            assert_eq!(j["command"], "restore");
            assert!(
                j["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: {j}"
            );
        }
        // Still serving, writes included, with the same data.
        c1.set_data("/app/n03", b"still", None).await.unwrap();
        c1.set_data("/app/n03", &[b'x'; 3], None).await.unwrap();
        let mut again = walk(&c1).await;
        let mut expect = changed.clone();
        again.remove("/app/n03");
        expect.remove("/app/n03");
        assert_eq!(again, expect, "a refused restore changed the data");
        assert!(!data_dir_has_upload(&server));

        // The restore: ZooKeeper's answer, with a zxid past every one seen.
        let b = backup.clone();
        let r = blocking(move || http(port, "POST", "/commands/restore", true, &b)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        assert_eq!(j["command"], "restore");
        assert_eq!(j["error"], Value::Null);
        let z = j["last_zxid"].as_i64().expect("last_zxid");
        assert!(z > newest_seen && z > backup_zxid, "{z:#x}");
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "{j}");

        // Exactly the backup's znodes and stats.
        let c3 = reconnect(&addr).await;
        assert_eq!(walk(&c3).await, before);
        assert!(c3.check_stat("/eph2").await.unwrap().is_none());
        // The new session is gone; the backup's own (c1's) goes on, its ephemeral too.
        eventually(Duration::from_secs(30), "c2's session expired", || async {
            matches!(c2.check_stat("/").await, Err(zk::Error::SessionExpired))
        })
        .await;
        eventually(Duration::from_secs(30), "c1 reads again", || async {
            c1.check_stat("/eph1").await.is_ok_and(|s| s.is_some())
        })
        .await;

        // The next write comes after the restored zxid, and everything survives kill -9.
        let (stat, _) = c3.create("/after", b"a", &anyone()).await.unwrap();
        assert!(stat.czxid > z, "{:#x} after {z:#x}", stat.czxid);
        let mut after = walk(&c3).await;
        drop((c1, c2, c3));
        server.crash_restart().await;
        let c4 = connect(&addr).await;
        let survived = walk(&c4).await;
        // The backup's session may have expired meanwhile: its ephemeral may go.
        let mut s = survived.clone();
        s.remove("/eph1");
        after.remove("/eph1");
        s.remove("/");
        after.remove("/");
        assert_eq!(s, after);
        assert_eq!(survived["/after"].0, b"a");
        let (stat2, _) = c4.create("/after2", b"", &anyone()).await.unwrap();
        assert!(stat2.czxid > stat.czxid);
    })
    .await;
}

fn data_dir_has_upload(server: &TestServer) -> bool {
    std::fs::read_dir(server.data_dir())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("restore-"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_bounds_and_switches() {
    timed(120, async {
        let port = free_port();
        let server = TestServer::start(
            ServerOpts::new()
                .cfg("admin.enableServer", "true")
                .cfg("admin.serverPort", port)
                .cfg("admin.rateLimiterIntervalInMS", "0")
                .cfg("admin.restore.maxBytes", "1000"),
        )
        .await;
        let c = connect(&server.addr()).await;
        c.create("/x", &[7u8; 2000], &anyone()).await.unwrap();
        let r = blocking(move || http(port, "GET", "/commands/snapshot", true, b"")).await;
        let big = r.body;
        assert!(big.len() > 1000);
        // Past admin.restore.maxBytes: 413 before the handler, nothing changed.
        let r = blocking(move || http(port, "POST", "/commands/restore", true, &big)).await;
        assert_eq!(r.status, 413);
        // Bytes after a valid snapshot: refused.
        let c2 = c.clone();
        c2.delete("/x", None).await.unwrap();
        let r = blocking(move || http(port, "GET", "/commands/snapshot", true, b"")).await;
        let mut small = r.body;
        small.extend_from_slice(b"junk");
        let r = blocking(move || http(port, "POST", "/commands/restore", true, &small)).await;
        assert_eq!(r.status, 400);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("after the snapshot's end frame"));
        c.create("/y", b"", &anyone()).await.unwrap();
    })
    .await;

    // admin.restore.enabled=false: 503, as ZooKeeper.
    let port = free_port();
    let _server = TestServer::start(
        ServerOpts::new()
            .cfg("admin.enableServer", "true")
            .cfg("admin.serverPort", port)
            .cfg("admin.restore.enabled", "false"),
    )
    .await;
    let r = blocking(move || http(port, "POST", "/commands/restore", true, b"CORRALSN")).await;
    assert_eq!(r.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_in_an_ensemble() {
    use common::ensemble::{serial, Ensemble, EnsembleOpts};
    let _serial = serial().await;
    timed(120, async {
        let port = free_port();
        let ens = Ensemble::start(
            EnsembleOpts::voters(3)
                .member_cfg(0, "admin.enableServer", "true")
                .member_cfg(0, "admin.serverPort", port)
                .member_cfg(0, "admin.rateLimiterIntervalInMS", "0"),
        )
        .await;
        ens.wait_serving(0, Duration::from_secs(60)).await;
        let c = ens.client(0).await;
        c.create("/kept", b"", &anyone()).await.unwrap();
        let r = blocking(move || http(port, "GET", "/commands/snapshot", true, b"")).await;
        assert_eq!(r.status, 200);
        let backup = r.body;
        let r = blocking(move || http(port, "POST", "/commands/restore", true, &backup)).await;
        assert_eq!(r.status, 400);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("standalone server"));
        assert!(c.check_stat("/kept").await.unwrap().is_some());
        c.create("/still", b"", &anyone()).await.unwrap();
    })
    .await;
}
