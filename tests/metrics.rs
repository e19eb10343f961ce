//! The Prometheus endpoint (`metricsProvider.*`, src/metrics): its text parsed by an
//! independent parser, scraped by a real Prometheus server, its answers to bad requests, and
//! how it is turned off or fails to bind. corral only: Debian's ZooKeeper has no Prometheus
//! provider jar to compare with.

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use prometheus_parse::{Scrape, Value};
use zk::CreateMode;
use zookeeper_client as zk;

const PROMETHEUS: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// A server with the metrics endpoint on a free port; returns it and the endpoint's address.
async fn server_with_metrics(opts: ServerOpts) -> (TestServer, SocketAddr) {
    let port = free_port();
    let s = TestServer::start(
        opts.cfg("metricsProvider.className", PROMETHEUS)
            .cfg("metricsProvider.httpPort", port),
    )
    .await;
    (s, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One HTTP exchange over a fresh connection (`request` is sent as is): status, head, body.
fn http_raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    http_raw(addr, req.as_bytes()).unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

async fn scrape_text(addr: SocketAddr) -> String {
    let (status, head, body) = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

async fn scrape(addr: SocketAddr) -> Scrape {
    let text = scrape_text(addr).await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The value of a sample without labels (a gauge, a counter, or a summary's `_sum`/`_count`).
fn value(s: &Scrape, name: &str) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name && x.labels.is_empty())
        .unwrap_or_else(|| panic!("no sample {name}"));
    match &sample.value {
        Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is {other:?}"),
    }
}

fn quantiles(s: &Scrape, name: &str) -> Vec<(f64, f64)> {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name && x.labels.is_empty())
        .unwrap_or_else(|| panic!("no summary {name}"));
    match &sample.value {
        Value::Summary(qs) => qs.iter().map(|q| (q.quantile, q.count)).collect(),
        other => panic!("{name} is {other:?}, not a summary"),
    }
}

/// `znode_count` as ZooKeeper reports it for the tree a walk from the root finds: its
/// DataTree maps the root under both "" and "/", so it counts one more than the walk.
async fn count_tree(c: &zk::Client) -> u64 {
    let mut n = 1;
    let mut todo = VecDeque::from(["/".to_string()]);
    while let Some(p) = todo.pop_front() {
        n += 1;
        let (children, _) = c.get_children(&p).await.unwrap();
        for child in children {
            todo.push_back(if p == "/" {
                format!("/{child}")
            } else {
                format!("{p}/{child}")
            });
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_names_and_values_match_the_tree() {
    if is_zookeeper() {
        return;
    }
    timed(120, async {
        let (s, addr) = server_with_metrics(ServerOpts::new()).await;
        let c = s.client().await;
        c.create("/m", b"", &anyone()).await.unwrap();
        for i in 0..20 {
            c.create(&format!("/m/n{i}"), b"data", &anyone())
                .await
                .unwrap();
        }
        c.create("/m/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let (_, _, _watch) = c.get_and_watch_data("/m/n0").await.unwrap();
        for _ in 0..50 {
            c.get_data("/m/n1").await.unwrap();
        }
        let tree = count_tree(&c).await;

        let text = scrape_text(addr).await;
        let m = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        assert_eq!(value(&m, "znode_count"), tree as f64, "{text}");
        assert_eq!(value(&m, "ephemerals_count"), 1.0);
        assert_eq!(value(&m, "watch_count"), 1.0);
        assert_eq!(value(&m, "num_alive_connections"), 1.0);
        assert_eq!(value(&m, "global_sessions"), 1.0);
        assert!(value(&m, "packets_received") >= 73.0);
        assert!(value(&m, "open_file_descriptor_count") > 0.0);
        assert!(value(&m, "process_resident_memory_bytes") > 0.0);
        assert!(value(&m, "process_cpu_seconds_total") > 0.0);
        assert_eq!(value(&m, "corral_serving"), 1.0);

        // Latency summaries: ZooKeeper's quantiles, counts of every request answered.
        for name in ["readlatency", "updatelatency"] {
            let qs = quantiles(&m, name);
            let qn: Vec<f64> = qs.iter().map(|q| q.0).collect();
            assert_eq!(qn, [0.5, 0.9, 0.99], "{name}");
            assert!(qs.iter().all(|q| q.1.is_finite() && q.1 >= 0.0), "{qs:?}");
        }
        assert!(value(&m, "readlatency_count") >= 52.0);
        assert!(value(&m, "updatelatency_count") >= 22.0);
        assert!(value(&m, "updatelatency_sum") > 0.0);
        assert!(value(&m, "fsynctime_count") >= 1.0);
        // ZooKeeper's BASIC summaries: the median only.
        let fsync = quantiles(&m, "fsynctime");
        assert_eq!(fsync.len(), 1, "{fsync:?}");
        assert!(fsync[0].0 == 0.5 && fsync[0].1 >= 0.0, "{fsync:?}");
        // ZooKeeper's monitoring guide alerts on its rate: present, at 0, when standalone.
        assert_eq!(value(&m, "election_time_count"), 0.0);
        let election = quantiles(&m, "election_time");
        assert!(
            election.len() == 1 && election[0].1.is_nan(),
            "{election:?}"
        );
        assert!(value(&m, "corral_log_batch_records_sum") >= 22.0);
        assert!(value(&m, "corral_log_fsyncs") >= 1.0);
        assert!(value(&m, "corral_write_core_cpu_seconds_total") > 0.0);

        // HELP and TYPE for every family, with the kinds ZooKeeper gives them.
        let types: HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect();
        for (name, kind) in [
            ("znode_count", "gauge"),
            ("packets_received", "gauge"),
            ("readlatency", "summary"),
            ("fsynctime", "summary"),
            ("snapshottime", "summary"),
            ("process_cpu_seconds_total", "counter"),
            ("corral_log_fsyncs", "counter"),
            ("corral_shard_connections", "gauge"),
            ("corral_shard_cpu_seconds_total", "counter"),
            ("corral_write_core_cpu_seconds_total", "counter"),
        ] {
            assert_eq!(types.get(name), Some(&kind), "TYPE of {name}");
            assert!(m.docs.contains_key(name), "HELP of {name}");
        }
        for name in types.keys() {
            assert!(m.docs.contains_key(*name), "no HELP for {name}");
        }
        // Per-shard figures add up to the server's.
        let per_shard: f64 = m
            .samples
            .iter()
            .filter(|x| x.metric == "corral_shard_connections")
            .map(|x| match x.value {
                Value::Gauge(v) => v,
                _ => panic!("{x:?}"),
            })
            .sum();
        assert_eq!(per_shard, 1.0);

        // `name[]` selects families, as Prometheus's Java client does.
        let (status, _, body) = tokio::task::spawn_blocking(move || {
            http_get(addr, "/metrics?name%5B%5D=znode_count&name[]=updatelatency")
        })
        .await
        .unwrap();
        assert_eq!(status, 200);
        let types: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            types,
            ["znode_count gauge", "updatelatency summary"],
            "{body}"
        );
    })
    .await;
}

/// A Prometheus server started for one test, killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: corral\n    static_configs:\n      \
             - targets: ['{target}']\n"
        );
        let cfg_path = dir.join("prometheus.yml");
        std::fs::write(&cfg_path, config).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/prometheus (Debian's prometheus package)");
        Prometheus { child, addr }
    }

    /// The values of an instant query's result vector.
    fn query(&self, q: &str) -> Vec<f64> {
        let path = format!("/api/v1/query?query={q}");
        let Ok((200, _, body)) = http_raw(
            self.addr,
            format!("GET {path} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n").as_bytes(),
        ) else {
            return Vec::new();
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        json["data"]["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x["value"][1].as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_it() {
    if is_zookeeper() {
        return;
    }
    timed(150, async {
        let (s, addr) = server_with_metrics(ServerOpts::new()).await;
        let c = s.client().await;
        for i in 0..7 {
            c.create(&format!("/p{i}"), b"", &anyone()).await.unwrap();
        }
        let tree = count_tree(&c).await as f64;
        let dir = make_temp_dir();
        let prom = Prometheus::start(&dir, addr);
        let deadline = Instant::now() + Duration::from_secs(90);
        let wanted = |prom: &Prometheus| {
            prom.query("znode_count") == [tree]
                && prom.query("up") == [1.0]
                && prom.query("readlatency_count").first().is_some_and(|v| *v >= 1.0)
                && !prom.query("corral_shard_connections").is_empty()
        };
        loop {
            let p = &prom;
            if tokio::task::block_in_place(|| wanted(p)) {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
                panic!(
                    "Prometheus did not report znode_count {tree}: znode_count {:?}, up {:?}\n{log}",
                    prom.query("znode_count"),
                    prom.query("up"),
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // A change in the tree shows in the next scrapes.
        c.create("/p_last", b"", &anyone()).await.unwrap();
        eventually(Duration::from_secs(30), "znode_count follows the tree", || {
            let p = &prom;
            let v = tokio::task::block_in_place(|| p.query("znode_count"));
            async move { v == [tree + 1.0] }
        })
        .await;
        drop(prom);
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_and_the_endpoint_survives() {
    if is_zookeeper() {
        return;
    }
    timed(90, async {
        let (s, addr) = server_with_metrics(ServerOpts::new()).await;
        let answers = tokio::task::spawn_blocking(move || {
            let raw = |r: &[u8]| http_raw(addr, r).map(|x| x.0).unwrap_or(0);
            vec![
                ("unknown path", http_get(addr, "/nope").0, 404),
                (
                    "POST",
                    raw(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
                    405,
                ),
                ("TRACE", raw(b"TRACE /metrics HTTP/1.1\r\n\r\n"), 405),
                ("garbage", raw(b"\x00\x01garbage\r\n\r\n"), 400),
                (
                    "HTTP/2 preface",
                    raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
                    505,
                ),
                (
                    "huge head",
                    raw(format!(
                        "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
                        "a".repeat(64 << 10)
                    )
                    .as_bytes()),
                    431,
                ),
            ]
        })
        .await
        .unwrap();
        for (what, got, want) in answers {
            assert_eq!(got, want, "{what}");
        }
        // A client that connects and sends half a request does not block the next scrape.
        let mut half = TcpStream::connect(addr).unwrap();
        half.write_all(b"GET /metr").unwrap();
        let m = scrape(addr).await;
        assert_eq!(value(&m, "corral_serving"), 1.0);
        // HEAD: the headers without the text.
        let (status, _, body) = tokio::task::spawn_blocking(move || {
            http_raw(addr, b"HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap()
        })
        .await
        .unwrap();
        assert_eq!((status, body.as_str()), (200, ""));
        // The client port was never disturbed.
        let c = s.client().await;
        c.create("/still", b"", &anyone()).await.unwrap();
        drop(half);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_the_null_provider_and_a_taken_port_is_not_fatal() {
    if is_zookeeper() {
        return;
    }
    timed(120, async {
        // The test servers' zoo.cfg names NullMetricsProvider: nothing listens on the port.
        let port = free_port();
        let off = TestServer::start(ServerOpts::new().cfg("metricsProvider.httpPort", port)).await;
        let _ = off.client().await;
        assert!(
            TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(2)
            )
            .is_err(),
            "metrics served with NullMetricsProvider"
        );

        // Two servers asking for the same port (a pseudo-cluster on one host): the second
        // serves clients without metrics, and says why.
        let (first, addr) = server_with_metrics(ServerOpts::new()).await;
        let second = TestServer::start(
            ServerOpts::new()
                .cfg("metricsProvider.className", PROMETHEUS)
                .cfg("metricsProvider.httpPort", addr.port()),
        )
        .await;
        let c = second.client().await;
        c.create("/served", b"", &anyone()).await.unwrap();
        let log = second.log_tail(20_000);
        assert!(log.contains("metrics endpoint not started"), "{log}");
        // The first one's endpoint is its own.
        let m = scrape(addr).await;
        assert_eq!(value(&m, "num_alive_connections"), 0.0);
        drop(first);
    })
    .await;
}

#[test]
fn bad_settings_are_refused_at_startup() {
    if is_zookeeper() {
        return;
    }
    for (key, value, says) in [
        (
            "metricsProvider.className",
            "com.example.Metrics",
            "PrometheusMetricsProvider",
        ),
        ("metricsProvider.httpPort", "http", "port"),
        (
            "metricsProvider.httpHost",
            "metrics.example.com",
            "IP address",
        ),
        ("metricsProvider.exportJvmInfo", "maybe", "true"),
    ] {
        let dir = make_temp_dir();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "clientPort={}\ndataDir={}\n{key}={value}\n",
                free_port(),
                dir.join("data").display()
            ),
        )
        .unwrap();
        let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        // Bounded: a server that took the setting would run until killed.
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        assert!(
            status.is_some_and(|st| !st.success()),
            "{key}={value} accepted: {err}"
        );
        assert!(
            err.contains(key) && err.contains(says),
            "{key}={value}: {err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_reports_quorum_leader_and_election_figures() {
    if is_zookeeper() {
        return;
    }
    use common::ensemble::{serial, Ensemble, EnsembleOpts};
    let _serial = serial().await;
    timed(150, async {
        // A pseudo-cluster: each member on its own metrics port.
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut opts = EnsembleOpts::voters(3).cfg("metricsProvider.className", PROMETHEUS);
        for (i, p) in ports.iter().enumerate() {
            opts = opts.member_cfg(i, "metricsProvider.httpPort", p);
        }
        let ens = Ensemble::start(opts).await;
        let leader = ens.wait_leader(Duration::from_secs(60)).await;
        let c = ens.client(leader).await;
        c.create("/ens", b"", &anyone()).await.unwrap();
        let tree = count_tree(&c).await as f64;
        let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
        // The leader counts its followers once they are synced.
        let deadline = Instant::now() + Duration::from_secs(30);
        let m = loop {
            let m = scrape(addr(leader)).await;
            if value(&m, "synced_followers") == 2.0 || Instant::now() > deadline {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(value(&m, "synced_followers"), 2.0);
        assert_eq!(value(&m, "learners"), 2.0);
        assert_eq!(value(&m, "quorum_size"), 3.0);
        assert!(value(&m, "election_time_count") >= 1.0);
        let election = quantiles(&m, "election_time");
        assert!(election.len() == 1 && election[0].1 >= 0.0, "{election:?}");
        assert!(value(&m, "leader_uptime") >= 0.0);
        let info = m
            .samples
            .iter()
            .find(|s| s.metric == "corral_info")
            .expect("corral_info");
        assert_eq!(info.labels.get("mode"), Some("leader"));
        for i in (0..3).filter(|i| *i != leader) {
            let want = tree;
            eventually(
                Duration::from_secs(20),
                "a follower's znode_count",
                || async move { value(&scrape(addr(i)).await, "znode_count") == want },
            )
            .await;
            let m = scrape(addr(i)).await;
            assert_eq!(value(&m, "quorum_size"), 3.0);
            assert!(value(&m, "election_time_count") >= 1.0);
            assert!(
                !m.samples.iter().any(|s| s.metric == "synced_followers"),
                "a follower has no leader figures"
            );
        }
    })
    .await;
}
