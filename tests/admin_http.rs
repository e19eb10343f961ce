//! The HTTP admin server (`admin.*`): ZooKeeper 3.9's commands, aliases and JSON shapes, the
//! HTTP errors bad requests get while clients keep being served, the auth guarding
//! `snapshot`, and a streamed snapshot restored into a fresh server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use zk::{Acl, AuthId, Permission};
use zookeeper_client as zk;

/// A server with the admin server on a free port; returns it and the admin port.
async fn admin_server(extra: &[(&str, &str)]) -> (TestServer, u16) {
    let port = free_port();
    let mut opts = ServerOpts::new()
        .cfg("admin.enableServer", "true")
        .cfg("admin.serverPort", port);
    for (k, v) in extra {
        opts = opts.cfg(k, v);
    }
    (TestServer::start(opts).await, port)
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request on its own connection (`Connection: close`), read to the end, bounded.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the admin port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap(), 16).unwrap();
        b = &b[eol + 2..];
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

fn get(port: u16, path: &str) -> Reply {
    http(port, "GET", path, &[], b"")
}

/// GET a command; checks ZooKeeper's CommandResponse shape and returns the JSON.
fn command(port: u16, name: &str, primary: &str) -> Value {
    let r = get(port, &format!("/commands/{name}"));
    assert_eq!(
        r.status,
        200,
        "{name}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("application/json"), "{name}");
    let j = r.json();
    assert_eq!(j["command"], primary, "{name}: {j}");
    assert!(
        j.get("error").is_some(),
        "{name}: every reply has error: {j}"
    );
    j
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_answer_in_zookeepers_json() {
    let (server, port) = admin_server(&[]).await;
    let client = connect(&server.addr()).await;
    client.create("/a", b"one", &anyone()).await.unwrap();
    client.create("/a/b", b"two", &anyone()).await.unwrap();
    let (_, _, _watch) = client.get_and_watch_data("/a").await.unwrap();
    let session = client.session_id().0 as u64;
    let client_port = server.port;

    blocking(move || {
        // Every command, by its primary name and its aliases (ZooKeeper's Commands.java).
        let aliases: &[(&str, &[&str])] = &[
            ("configuration", &["conf", "config"]),
            ("connections", &["cons"]),
            ("connection_stat_reset", &["crst"]),
            ("observers", &["obsr"]),
            ("observer_connection_stat_reset", &["orst"]),
            ("dirs", &[]),
            ("dump", &[]),
            ("environment", &["env", "envi"]),
            ("get_trace_mask", &["gtmk"]),
            ("hash", &[]),
            ("initial_configuration", &["icfg"]),
            ("is_read_only", &["isro"]),
            ("last_snapshot", &["lsnp"]),
            ("leader", &["lead"]),
            ("monitor", &["mntr"]),
            ("ruok", &[]),
            ("server_stats", &["srvr"]),
            ("stat_reset", &["srst"]),
            ("stats", &["stat"]),
            ("voting_view", &[]),
            ("watch_summary", &["wchs"]),
            ("watches", &["wchc"]),
            ("watches_by_path", &["wchp"]),
            ("zabstate", &[]),
        ];
        for (primary, names) in aliases {
            command(port, primary, primary);
            for n in *names {
                command(port, n, primary);
            }
        }

        // A standalone server has no observers to list.
        let j = command(port, "observers", "observers");
        assert_eq!(j["synced_observers"], 0, "{j}");
        assert_eq!(j["observers"], serde_json::json!([]), "{j}");
        let ruok = get(port, "/commands/ruok");
        assert_eq!(
            String::from_utf8(ruok.body).unwrap(),
            "{\n  \"command\" : \"ruok\",\n  \"error\" : null\n}"
        );
        let j = command(port, "stats", "stats");
        assert_eq!(j["error"], Value::Null);
        assert_eq!(j["read_only"], false);
        assert_eq!(j["server_stats"]["server_state"], "standalone");
        assert_eq!(
            j["server_stats"]["client_response_stats"]["last_buffer_size"],
            -1
        );
        assert_eq!(j["node_count"], 7, "/, /zookeeper (+4), /a, /a/b: {j}");
        assert!(j["version"].as_str().unwrap().starts_with("3.9.2-corral-"));
        let conns = j["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 1, "{j}");
        assert!(conns[0]["remote_socket_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
        assert!(
            conns[0].get("session_id").is_none(),
            "stats lists connections briefly"
        );
        assert_eq!(j["secure_connections"], Value::Array(vec![]));
        let j = command(port, "srvr", "server_stats");
        assert!(j.get("connections").is_none());

        let j = command(port, "cons", "connections");
        let c = &j["connections"][0];
        assert_eq!(c["session_id"], session);
        for k in [
            "interest_ops",
            "packets_received",
            "last_operation",
            "established",
            "session_timeout",
            "last_zxid",
            "avg_latency",
        ] {
            assert!(c.get(k).is_some(), "connection key {k}: {c}");
        }

        let j = command(port, "wchc", "watches");
        assert_eq!(
            j["session_id_to_watched_paths"][session.to_string()],
            serde_json::json!(["/a"])
        );
        let j = command(port, "wchp", "watches_by_path");
        assert_eq!(j["path_to_session_ids"]["/a"], serde_json::json!([session]));
        let j = command(port, "wchs", "watch_summary");
        assert_eq!(
            (
                j["num_connections"].as_u64(),
                j["num_paths"].as_u64(),
                j["num_total_watches"].as_u64()
            ),
            (Some(1), Some(1), Some(1))
        );

        let j = command(port, "conf", "configuration");
        assert_eq!(j["client_port"], client_port);
        assert_eq!(j["server_id"], 0);
        assert_eq!(j["tick_time"], 2000);
        let j = command(port, "mntr", "monitor");
        assert_eq!(j["server_state"], "standalone");
        assert_eq!(j["znode_count"], 7);
        assert!(j["avg_latency"].is_f64());
        let j = command(port, "envi", "environment");
        assert_eq!(j["java.version"], "<NA>");
        assert!(j["os.name"].is_string());
        let j = command(port, "dirs", "dirs");
        assert!(j["datadir_size"].as_u64().unwrap() > 0);
        let j = command(port, "isro", "is_read_only");
        assert_eq!(j["read_only"], false);
        let j = command(port, "lsnp", "last_snapshot");
        assert!(j["zxid"].is_string() && j["timestamp"].is_i64(), "{j}");
        // A standalone server has no leader: ZooKeeper puts its own error first.
        let j = command(port, "leader", "leader");
        assert_eq!(j["error"], "server is not initialized");
        let j = command(port, "voting_view", "voting_view");
        assert_eq!(j["current_config"], serde_json::json!({}));
        let j = command(port, "zabstate", "zabstate");
        assert_eq!(
            (j["voting"].clone(), j["zabstate"].clone()),
            (Value::Bool(false), Value::String(String::new()))
        );
        let j = command(port, "icfg", "initial_configuration");
        assert!(j["initial_configuration"]
            .as_str()
            .unwrap()
            .contains(&format!("admin.serverPort={port}")));

        // The trace mask, shared with the four-letter words.
        let j = command(port, "stmk?traceMask=42", "set_trace_mask");
        assert_eq!(j["tracemask"], 42);
        assert_eq!(command(port, "gtmk", "get_trace_mask")["tracemask"], 42);
        let j = command(port, "stmk?traceMask=x", "set_trace_mask");
        assert_eq!(
            j["error"],
            "setTraceMask requires long traceMask argument, got x"
        );

        // ZooKeeper answers an unknown command with 200 and the error in the JSON.
        let j = command(port, "nosuch", "nosuch");
        assert_eq!(j["error"], "Unknown command: nosuch");

        // The command list: a link per primary name, sorted.
        for path in ["/commands", "/commands/"] {
            let r = get(port, path);
            assert_eq!(r.status, 200);
            let text = String::from_utf8(r.body).unwrap();
            assert!(
                text.starts_with("<a href=\"/commands/configuration\">configuration</a>\n<br/>\n"),
                "{text}"
            );
            assert!(text.contains("<a href=\"/commands/snapshot\">snapshot</a>"));
            assert!(!text.contains(">mntr<"), "aliases are not listed");
        }

        // Outside the command URL: 404, still JSON with command and error.
        let r = get(port, "/nothing/here");
        assert_eq!(r.status, 404);
        let j = r.json();
        assert_eq!(j["command"], "/nothing/here");
        assert!(j["error"].as_str().unwrap().starts_with("Not found"));
        // Methods: PUT anywhere, POST to a GET command, GET to restore.
        let r = http(port, "PUT", "/commands/ruok", &[], b"");
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some("GET, HEAD, POST"))
        );
        assert_eq!(r.json()["command"], "ruok");
        let r = http(port, "POST", "/commands/ruok", &[], b"");
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
        let r = get(port, "/commands/restore");
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
        // HEAD: GET's head, no body.
        let r = http(port, "HEAD", "/commands/ruok", &[], b"");
        assert_eq!((r.status, r.body.len()), (200, 0));
    })
    .await;

    // stat_reset clears the counters the figures come from.
    client.get_data("/a").await.unwrap();
    blocking(move || {
        assert!(
            command(port, "srvr", "server_stats")["server_stats"]["packets_received"]
                .as_u64()
                .unwrap()
                > 0
        );
        command(port, "srst", "stat_reset");
        assert_eq!(
            command(port, "srvr", "server_stats")["server_stats"]["packets_received"],
            0
        );
    })
    .await;

    // connection_stat_reset clears each connection's.
    for _ in 0..5 {
        client.get_data("/a").await.unwrap();
    }
    let sid = client.session_id().0 as u64;
    blocking(move || {
        let mine = |j: &Value| -> Value {
            j["connections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["session_id"].as_u64() == Some(sid))
                .unwrap_or_else(|| panic!("no connection for the session: {j}"))
                .clone()
        };
        let before = mine(&command(port, "cons", "connections"));
        assert!(
            before["packets_received"].as_u64().unwrap() >= 5,
            "{before}"
        );
        command(port, "crst", "connection_stat_reset");
        let after = mine(&command(port, "cons", "connections"));
        // A ping may land in between.
        assert!(after["packets_received"].as_u64().unwrap() <= 1, "{after}");
        assert_eq!(after["max_latency"], 0, "{after}");
    })
    .await;
}

fn acl(perm: Permission, scheme: &str, id: &str) -> Acl {
    Acl::new(perm, AuthId::new(scheme, id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_guarded_streamed_and_restores_into_a_fresh_server() {
    // No rate limit between the test's snapshots.
    let (server, port) = admin_server(&[("admin.rateLimiterIntervalInMS", "0")]).await;
    let client = connect(&server.addr()).await;
    client.create("/app", b"root", &anyone()).await.unwrap();
    for i in 0..300 {
        let data = vec![b'x'; i % 50];
        client
            .create(&format!("/app/n{i:03}"), &data, &anyone())
            .await
            .unwrap();
    }
    client
        .set_data("/app/n007", b"changed", None)
        .await
        .unwrap();

    // Without proof of identity: 401, ZooKeeper's messages.
    let r = blocking(move || get(port, "/commands/snapshot")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "Auth info is missing for the command");
    for bad in ["nosuchscheme x", "digest a:b c", "x509"] {
        let r = blocking(move || {
            http(
                port,
                "GET",
                "/commands/snapshot",
                &[("Authorization", bad)],
                b"",
            )
        })
        .await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (401, Value::from("Not authenticated")),
            "{bad}"
        );
    }
    let r = blocking(move || http(port, "POST", "/commands/restore", &[], b"x")).await;
    assert_eq!(r.status, 401);

    // Only the admin may have ALL on /: anyone else is authenticated but not authorized.
    let admin = digest_id("admin", "secret");
    client
        .set_acl(
            "/",
            &[
                acl(Permission::ALL, "digest", &admin),
                acl(Permission::READ, "world", "anyone"),
            ],
            None,
        )
        .await
        .unwrap();
    for who in ["digest other:secret", "digest admin:wrong", "ip"] {
        let r = blocking(move || {
            http(
                port,
                "GET",
                "/commands/snapshot",
                &[("Authorization", who)],
                b"",
            )
        })
        .await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (403, Value::from("Not authorized")),
            "{who}"
        );
    }
    let auth = [("Authorization", "digest admin:secret")];

    // streaming=false: the figures in headers, a JSON body.
    let r = blocking(move || {
        http(
            port,
            "GET",
            "/commands/snapshot?streaming=false",
            &auth,
            b"",
        )
    })
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["command"], "snapshot");
    let size: usize = r.header("snapshot_size").unwrap().parse().unwrap();

    // The snapshot itself: corral's format, as long as announced, at the last zxid.
    let r = blocking(move || http(port, "GET", "/commands/snap", &auth, b"")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.body.starts_with(b"CORRALSN"));
    assert_eq!(r.body.len().to_string(), r.header("snapshot_size").unwrap());
    assert_eq!(r.body.len(), size, "nothing was written in between");
    let zxid =
        i64::from_str_radix(r.header("last_zxid").unwrap().trim_start_matches("0x"), 16).unwrap();
    let (_, stat) = client.get_data("/app/n007").await.unwrap();
    assert!(zxid >= stat.mzxid, "the snapshot holds the last write");
    let snapshot = r.body;

    // Something that is not a whole snapshot is refused with a clear error (tests/restore.rs
    // restores one live).
    let r = blocking(move || http(port, "POST", "/commands/restore", &auth, b"CORRALSN")).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("not a valid corral snapshot"));

    // The backup, restored into a fresh server, holds the same data and stats.
    let mut fresh = TestServer::start(ServerOpts::new()).await;
    fresh.stop();
    let data = fresh.data_dir();
    for e in std::fs::read_dir(&data).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    std::fs::create_dir_all(data.join("snapshots")).unwrap();
    std::fs::write(
        data.join("snapshots")
            .join(format!("snap-{zxid:016x}.snap")),
        &snapshot,
    )
    .unwrap();
    fresh.start_again().await;
    let restored = connect_with(
        &fresh.addr(),
        zk::Client::connector().with_auth("digest", b"admin:secret"),
    )
    .await;
    let (mut a, _) = client.get_children("/app").await.unwrap();
    let (mut b, _) = restored.get_children("/app").await.unwrap();
    a.sort();
    b.sort();
    assert_eq!(a.len(), 300);
    assert_eq!(a, b);
    for name in &a {
        let path = format!("/app/{name}");
        let (d1, s1) = client.get_data(&path).await.unwrap();
        let (d2, s2) = restored.get_data(&path).await.unwrap();
        assert_eq!((d1, s1), (d2, s2), "{path}");
    }
    let (acl_restored, _) = restored.get_acl("/").await.unwrap();
    assert_eq!(acl_restored.len(), 2, "the root's ACL came along");
    // The restored server takes writes after the backup's zxid.
    let stat = restored.create("/after", b"", &anyone()).await.unwrap().0;
    assert!(stat.czxid > zxid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_errors_while_clients_are_served() {
    let (server, port) = admin_server(&[("admin.idleTimeout", "1000")]).await;
    let client = connect(&server.addr()).await;
    client.create("/k", b"0", &anyone()).await.unwrap();

    // A client that keeps writing and reading on the client port meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let v = n.to_string();
                within(
                    Duration::from_secs(5),
                    "set during HTTP abuse",
                    client.set_data("/k", v.as_bytes(), None),
                )
                .await
                .unwrap();
                let (d, _) = within(
                    Duration::from_secs(5),
                    "get during HTTP abuse",
                    client.get_data("/k"),
                )
                .await
                .unwrap();
                assert_eq!(d, v.as_bytes());
                n += 1;
            }
            n
        })
    };

    blocking(move || {
        // A head over 16 KiB: 431.
        let huge = "x".repeat(20 * 1024);
        let r = http(port, "GET", "/commands/ruok", &[("X-Big", &huge)], b"");
        assert_eq!(r.status, 431);

        // A client that starts a request and stalls: 408 after admin.idleTimeout.
        let t0 = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        assert_eq!(parse_reply(&raw).status, 408);
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

        // Garbage instead of HTTP: 400.
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"\x16\x03\x01 hello\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        assert_eq!(parse_reply(&raw).status, 400);

        // Many connections: beyond 32 open at once, 503 and closed at once (without
        // reading a request); those within the limit hear nothing until they send one.
        let held: Vec<TcpStream> = (0..40)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let mut refused = 0;
        for mut s in held.iter() {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut raw = Vec::new();
            match s.read_to_end(&mut raw) {
                // Within the limit, idle past admin.idleTimeout: closed without a word.
                Ok(_) if raw.is_empty() => {}
                Ok(_) => {
                    assert_eq!(parse_reply(&raw).status, 503);
                    refused += 1;
                }
                Err(e) => assert!(raw.is_empty(), "{e}: {:?}", String::from_utf8_lossy(&raw)),
            }
        }
        assert!(refused >= 8, "{refused} of 40 refused");
        drop(held);

        // Once they are gone the admin server answers again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = get(port, "/commands/ruok");
            if r.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "admin server did not recover: {}",
                r.status
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done = within(Duration::from_secs(10), "client worker", worker)
        .await
        .unwrap();
    assert!(done > 0, "the client was served throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_admin_port_is_a_warning_not_a_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = TestServer::start(
        ServerOpts::new()
            .cfg("admin.enableServer", "true")
            .cfg("admin.serverPort", port),
    )
    .await;
    let client = connect(&server.addr()).await;
    client.create("/ok", b"", &anyone()).await.unwrap();
    let log = server.log_tail(20_000);
    assert!(log.contains("admin server not started"), "{log}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_commands_log_level_and_rate_limits() {
    // A long rate-limiter interval: restore reads it in milliseconds, snapshot in
    // microseconds (as ZooKeeper 3.9 does), so 6e8 is at least 600 s for both.
    let (_server, port) = admin_server(&[
        ("admin.commandURL", "/admin/"),
        ("admin.rateLimiterIntervalInMS", "600000000"),
    ])
    .await;
    blocking(move || {
        // admin.commandURL moves the commands.
        assert_eq!(get(port, "/commands/ruok").status, 404);
        assert_eq!(get(port, "/admin/ruok").json()["command"], "ruok");
        let r = get(port, "/admin/log_level");
        assert_eq!(r.status, 401);
        let auth = [("Authorization", "digest ops:pw")];
        let r = http(port, "GET", "/admin/log_level?level=debug", &auth, b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["level"], "debug");
        let r = http(port, "GET", "/admin/log_level", &auth, b"");
        assert_eq!(r.json()["level"], "debug");
        let r = http(
            port,
            "GET",
            "/admin/log_level?level=nonsense%3D%3D",
            &auth,
            b"",
        );
        assert_eq!(r.status, 400);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("bad log filter"));
        let r = http(port, "GET", "/admin/log_level?level=info", &auth, b"");
        assert_eq!(r.json()["previous"], "debug");

        // One snapshot and one restore per interval; then 429.
        let r = http(port, "GET", "/admin/snapshot?streaming=false", &auth, b"");
        assert_eq!(r.status, 200);
        let r = http(port, "GET", "/admin/snapshot", &auth, b"");
        assert_eq!(r.status, 429);
        assert_eq!(r.json()["error"], "Snapshot request was rate limited");
        assert_eq!(
            http(port, "POST", "/admin/restore", &auth, b"x").status,
            400
        );
        assert_eq!(
            http(port, "POST", "/admin/restore", &auth, b"x").status,
            429
        );
        // An upload beyond the body limit is refused before any handler runs.
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"POST /admin/restore HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741825\r\n\r\n",
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        assert_eq!(parse_reply(&raw).status, 413);
    })
    .await;
}
