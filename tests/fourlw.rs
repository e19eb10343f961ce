//! Four-letter words on the client port.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use zk::CreateMode;
use zookeeper_client as zk;

fn line_value<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{text}"))
}

fn mntr_map(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let (k, v) = l
            .split_once('\t')
            .unwrap_or_else(|| panic!("mntr line without a tab: {l:?}"));
        // ZooKeeper's keys are zk_*; corral adds its own as corral_* (log and fsync figures).
        assert!(
            k.starts_with("zk_") || k.starts_with("corral_"),
            "mntr key {k:?}"
        );
        assert!(!v.contains('\t'), "one value per line: {l:?}");
        m.insert(k.to_string(), v.to_string());
    }
    m
}

/// Parses wchc/wchp style output: unindented key lines, each followed by
/// tab-indented value lines.
fn grouped(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for l in text.lines() {
        if l.is_empty() {
            continue;
        }
        if let Some(v) = l.strip_prefix('\t') {
            m.get_mut(cur.as_ref().expect("value before key"))
                .unwrap()
                .insert(v.to_string());
        } else {
            cur = Some(l.to_string());
            m.entry(l.to_string()).or_default();
        }
    }
    m
}

fn hex(sid: zk::SessionId) -> String {
    format!("0x{:x}", sid.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruok_isro_and_unknown_words() {
    timed(60, async {
        let s = TestServer::start_default().await;
        assert_eq!(s.four_letter("ruok").await, "imok");
        assert_eq!(s.four_letter("isro").await, "rw");
        assert_eq!(s.four_letter("crst").await, "Connection stats reset.\n");
        assert_eq!(s.four_letter("srst").await, "Server stats reset.\n");
        // Not a command: treated as a (too large) length prefix, closed silently.
        assert_eq!(s.four_letter("xxxx").await, "");
        // The client port still serves sessions.
        s.client().await.sync("/").await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srvr_and_stat() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let fresh = s.four_letter("srvr").await;
        assert!(fresh.starts_with("Zookeeper version: "), "{fresh}");
        assert!(fresh.ends_with('\n'));
        assert_eq!(line_value(&fresh, "Zxid: "), "0x0");
        assert_eq!(line_value(&fresh, "Mode: "), "standalone");
        assert_eq!(
            line_value(&fresh, "Node count: "),
            "5",
            "/, /zookeeper, /zookeeper/quota, /zookeeper/config + the \"\" root alias"
        );
        assert_eq!(
            line_value(&fresh, "Connections: "),
            "1",
            "the 4lw connection itself counts"
        );
        assert_eq!(line_value(&fresh, "Outstanding: "), "0");
        let lat = line_value(&fresh, "Latency min/avg/max: ");
        assert_eq!(lat.split('/').count(), 3, "{lat}");
        line_value(&fresh, "Received: ").parse::<u64>().unwrap();
        line_value(&fresh, "Sent: ").parse::<u64>().unwrap();
        let keys: Vec<&str> = fresh
            .lines()
            .map(|l| l.split(':').next().unwrap())
            .collect();
        let mut want = vec![
            "Zookeeper version",
            "Latency min/avg/max",
            "Received",
            "Sent",
            "Connections",
            "Outstanding",
            "Zxid",
            "Mode",
            "Node count",
        ];
        if !is_zookeeper() {
            // corral's storage lines follow ZooKeeper's (docs/decisions.md).
            want.extend([
                "Log dir size",
                "Snapshot dir size",
                "Snapshot count",
                "Newest snapshot size",
                "Fsyncs",
                "Fsync time total (ms)",
            ]);
            assert_eq!(line_value(&fresh, "Snapshot count: "), "0");
        }
        assert_eq!(keys, want);

        let c = s.client().await; // zxid 1
        let (st, _) = c.create("/a", b"", &anyone()).await.unwrap(); // zxid 2
        c.create("/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap(); // zxid 3
        let srvr = s.four_letter("srvr").await;
        assert_eq!(st.czxid, 2);
        assert_eq!(line_value(&srvr, "Zxid: "), "0x3");
        assert_eq!(line_value(&srvr, "Node count: "), "7");
        assert_eq!(line_value(&srvr, "Connections: "), "2");

        let stat = s.four_letter("stat").await;
        assert!(stat.starts_with("Zookeeper version: "), "{stat}");
        assert!(stat.contains("\nClients:\n"), "{stat}");
        let clients: Vec<&str> = stat
            .lines()
            .filter(|l| l.starts_with(" /127.0.0.1:"))
            .collect();
        assert_eq!(
            clients.len(),
            2,
            "one line per connection incl. this one:\n{stat}"
        );
        assert!(clients
            .iter()
            .all(|l| l.contains("(queued=") && l.contains(",recved=") && l.contains(",sent=")));
        assert_eq!(line_value(&stat, "Zxid: "), "0x3");
        assert_eq!(line_value(&stat, "Mode: "), "standalone");
        assert_eq!(line_value(&stat, "Node count: "), "7");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_reports_effective_configuration() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let conf = s.four_letter("conf").await;
        assert_eq!(line_value(&conf, "clientPort="), s.port.to_string());
        assert_eq!(line_value(&conf, "tickTime="), "2000");
        assert_eq!(line_value(&conf, "maxClientCnxns="), "60");
        assert_eq!(line_value(&conf, "minSessionTimeout="), "4000");
        assert_eq!(line_value(&conf, "maxSessionTimeout="), "40000");
        assert_eq!(line_value(&conf, "serverId="), "0");
        let data_dir = line_value(&conf, "dataDir=");
        assert!(
            data_dir.starts_with(&s.data_dir().display().to_string()),
            "{data_dir}"
        );

        let s2 = TestServer::start(ServerOpts::new().tick_time(500).cfg("maxClientCnxns", 7)).await;
        let conf = s2.four_letter("conf").await;
        assert_eq!(line_value(&conf, "tickTime="), "500");
        assert_eq!(line_value(&conf, "maxClientCnxns="), "7");
        assert_eq!(line_value(&conf, "minSessionTimeout="), "1000");
        assert_eq!(line_value(&conf, "maxSessionTimeout="), "10000");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cons_lists_connections_with_session_details() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s
            .client_with_timeout(std::time::Duration::from_secs(10))
            .await;
        let cons = s.four_letter("cons").await;
        assert!(cons.ends_with("\n\n"), "{cons:?}");
        let lines: Vec<&str> = cons.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.len(),
            3,
            "two sessions + this 4lw connection:\n{cons}"
        );
        assert!(
            lines.iter().all(|l| l.starts_with(" /127.0.0.1:")),
            "{cons}"
        );
        for (c, to) in [(&a, 6000), (&b, 10000)] {
            let l = lines
                .iter()
                .find(|l| l.contains(&format!("sid={},", hex(c.session_id()))))
                .unwrap_or_else(|| panic!("no line for {}:\n{cons}", hex(c.session_id())));
            assert!(l.contains(&format!(",to={to},")), "{l}");
            assert!(
                l.contains("lop=") && l.contains("lzxid=0x") && l.contains("lcxid=0x"),
                "{l}"
            );
        }
    })
    .await
}

/// `crst` puts every connection's `cons` counters back to ZooKeeper's reset values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crst_resets_each_connections_counters() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        for _ in 0..20 {
            a.get_data("/zookeeper").await.unwrap();
        }
        let line = |cons: &str| {
            cons.lines()
                .find(|l| l.contains(&format!("sid={},", hex(a.session_id()))))
                .unwrap_or_else(|| panic!("no line for the session:\n{cons}"))
                .to_string()
        };
        let counter = |l: &str, key: &str| -> u64 {
            let at = l
                .find(&format!("{key}="))
                .unwrap_or_else(|| panic!("{key}: {l}"));
            l[at + key.len() + 1..]
                .split([',', ')'])
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let before = line(&s.four_letter("cons").await);
        assert!(counter(&before, "recved") >= 20, "{before}");
        assert!(
            before.contains("lop=GETD") && before.contains(",lcxid=0x"),
            "{before}"
        );
        assert_eq!(s.four_letter("crst").await, "Connection stats reset.\n");
        let after = line(&s.four_letter("cons").await);
        // A ping may land in between.
        assert!(counter(&after, "recved") <= 1, "{after}");
        assert!(counter(&after, "sent") <= 1, "{after}");
        assert!(
            after.contains("lop=NA,") || after.contains("lop=PING,"),
            "{after}"
        );
        assert!(
            after.contains("lzxid=0xffffffffffffffff") || after.contains("lop=PING,"),
            "{after}"
        );
        assert!(!after.contains(",lcxid="), "{after}");
        assert_eq!(counter(&after, "maxlat"), 0, "{after}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mntr_is_tab_separated_with_core_metrics() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let m = mntr_map(&s.four_letter("mntr").await);
        assert!(
            m["zk_version"].starts_with("3.") || !is_zookeeper(),
            "{}",
            m["zk_version"]
        );
        assert_eq!(m["zk_server_state"], "standalone");
        assert_eq!(m["zk_znode_count"], "5");
        assert_eq!(m["zk_ephemerals_count"], "0");
        assert_eq!(m["zk_watch_count"], "0");
        assert_eq!(m["zk_outstanding_requests"], "0");
        assert_eq!(m["zk_global_sessions"], "0");
        assert_eq!(m["zk_num_alive_connections"], "1");
        for k in [
            "zk_avg_latency",
            "zk_max_latency",
            "zk_min_latency",
            "zk_packets_received",
            "zk_packets_sent",
            "zk_approximate_data_size",
            "zk_open_file_descriptor_count",
            "zk_max_file_descriptor_count",
            "zk_uptime",
        ] {
            assert!(m.contains_key(k), "{k} missing");
        }

        let a = s.client().await;
        let b = s.client().await;
        a.create("/w", b"", &anyone()).await.unwrap();
        a.create("/e1", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        b.create("/e2", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let (_, _, _w1) = a.get_and_watch_data("/w").await.unwrap();
        let (_, _w2) = a.list_and_watch_children("/w").await.unwrap();
        let (_, _, _w3) = b.get_and_watch_data("/w").await.unwrap();
        let m = mntr_map(&s.four_letter("mntr").await);
        assert_eq!(m["zk_znode_count"], "8");
        assert_eq!(m["zk_ephemerals_count"], "2");
        assert_eq!(
            m["zk_watch_count"], "3",
            "data + child watches, per (path, session)"
        );
        assert_eq!(m["zk_global_sessions"], "2");
        assert_eq!(m["zk_num_alive_connections"], "3");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envi_dirs_and_dump() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let envi = s.four_letter("envi").await;
        assert!(envi.starts_with("Environment:\n"), "{envi}");
        assert!(
            envi.lines().any(|l| l.starts_with("zookeeper.version=")),
            "{envi}"
        );
        assert!(envi.lines().skip(1).all(|l| l.contains('=')), "{envi}");

        let dirs = s.four_letter("dirs").await;
        let lines: Vec<&str> = dirs.lines().collect();
        assert_eq!(lines.len(), 2, "{dirs}");
        lines[0]
            .strip_prefix("datadir_size: ")
            .unwrap()
            .parse::<u64>()
            .unwrap();
        lines[1]
            .strip_prefix("logdir_size: ")
            .unwrap()
            .parse::<u64>()
            .unwrap();

        let a = s.client().await;
        let b = s.client().await;
        a.create("/eph", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        a.create("/eph2", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let dump = s.four_letter("dump").await;
        assert!(dump.starts_with("SessionTracker dump:\n"), "{dump}");
        assert!(
            dump.contains("ephemeral nodes dump:\nSessions with Ephemerals (1):\n"),
            "{dump}"
        );
        let after = dump
            .split("Sessions with Ephemerals (1):\n")
            .nth(1)
            .unwrap();
        let mut it = after.lines();
        assert_eq!(it.next().unwrap(), format!("{}:", hex(a.session_id())));
        let paths: BTreeSet<&str> = it
            .take_while(|l| l.starts_with('\t'))
            .map(|l| &l[1..])
            .collect();
        assert_eq!(paths, BTreeSet::from(["/eph", "/eph2"]));
        for c in [&a, &b] {
            assert!(
                dump.contains(&format!("\t{}\n", hex(c.session_id()))),
                "session listed in tracker dump:\n{dump}"
            );
        }
    })
    .await
}

/// wchs/wchc/wchp report *data* watches only (exists/getData and
/// persistent ones), not child watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports() {
    timed(60, async {
        let s = TestServer::start_default().await;
        assert_eq!(
            s.four_letter("wchs").await,
            "0 connections watching 0 paths\nTotal watches:0\n"
        );
        assert_eq!(s.four_letter("wchc").await.trim(), "");
        assert_eq!(s.four_letter("wchp").await.trim(), "");

        let a = s.client().await;
        let b = s.client().await;
        a.create("/w1", b"", &anyone()).await.unwrap();
        let (_, _, w1) = a.get_and_watch_data("/w1").await.unwrap();
        let (_, w2) = a.list_and_watch_children("/w1").await.unwrap();
        let (_, w3) = a.check_and_watch_stat("/w2").await.unwrap();
        let pw = a
            .watch("/pw", zk::AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let (_, _, w4) = b.get_and_watch_data("/w1").await.unwrap();
        let (_, w5) = b.list_and_watch_children("/").await.unwrap();

        assert_eq!(
            s.four_letter("wchs").await,
            "2 connections watching 3 paths\nTotal watches:4\n"
        );
        let wchc = grouped(&s.four_letter("wchc").await);
        let expect_c: BTreeMap<String, BTreeSet<String>> = BTreeMap::from([
            (
                hex(a.session_id()),
                BTreeSet::from(["/pw".to_string(), "/w1".to_string(), "/w2".to_string()]),
            ),
            (hex(b.session_id()), BTreeSet::from(["/w1".to_string()])),
        ]);
        assert_eq!(wchc, expect_c);
        let wchp = grouped(&s.four_letter("wchp").await);
        let expect_p: BTreeMap<String, BTreeSet<String>> = BTreeMap::from([
            ("/pw".to_string(), BTreeSet::from([hex(a.session_id())])),
            (
                "/w1".to_string(),
                BTreeSet::from([hex(a.session_id()), hex(b.session_id())]),
            ),
            ("/w2".to_string(), BTreeSet::from([hex(a.session_id())])),
        ]);
        assert_eq!(wchp, expect_p);
        let m = mntr_map(&s.four_letter("mntr").await);
        assert_eq!(
            m["zk_watch_count"], "7",
            "mntr counts data+child watches; a recursive watch counts in both"
        );
        drop((w1, w2, w3, w4, w5, pw));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitelist_restricts_commands() {
    timed(60, async {
        let s = TestServer::start(ServerOpts::new().whitelist("ruok, srvr")).await;
        assert_eq!(s.four_letter("ruok").await, "imok");
        assert!(s.four_letter("srvr").await.contains("Mode: standalone"));
        for cmd in [
            "stat", "mntr", "conf", "cons", "envi", "wchs", "wchc", "wchp", "dump", "dirs", "isro",
            "srst", "crst",
        ] {
            assert_eq!(
                s.four_letter(cmd).await,
                format!("{cmd} is not executed because it is not in the whitelist.\n"),
                "{cmd}"
            );
        }
        s.client().await.sync("/").await.unwrap();
    })
    .await
}

/// corral's own mntr lines: the log's flushes and fsyncs follow the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mntr_reports_log_activity() {
    if is_zookeeper() {
        return;
    }
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        for i in 0..10 {
            c.create(&format!("/m{i}"), b"x", &anyone()).await.unwrap();
        }
        let mntr = s.four_letter("mntr").await;
        let get = |k: &str| -> u64 {
            mntr.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}\t")))
                .unwrap_or_else(|| panic!("{k} missing:\n{mntr}"))
                .parse()
                .unwrap()
        };
        assert!(
            get("corral_log_fsyncs") >= 11,
            "createSession + 10 creates, each durable"
        );
        assert!(get("corral_log_flushes") >= get("corral_log_fsyncs"));
        assert!(get("corral_log_bytes_written") >= 4096);
        assert_eq!(get("corral_log_fill_stalls"), 0);
        assert_eq!(get("corral_last_committed_zxid"), 11);
        // No snapshot yet (snapCount 100000): tests/dump_snapshot.rs covers them taken.
        let raw = |k: &str| mntr_map(&mntr)[k].clone();
        assert_eq!(raw("corral_snapshot_count"), "0");
        assert_eq!(raw("corral_snapshot_newest_zxid"), "-1");
        assert_eq!(raw("corral_snapshot_newest_bytes"), "0");
        assert_eq!(raw("corral_snapshot_taken"), "0");
        assert_eq!(raw("corral_snapshot_failed"), "0");
    })
    .await
}

/// `stmk` takes the 8-byte big-endian mask after the word, makes it the server's trace mask and
/// answers with it; `gtmk` then answers the new mask, on any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stmk_sets_the_mask_gtmk_reads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    timed(60, async {
        let s = TestServer::start_default().await;
        assert_eq!(s.four_letter("gtmk").await, "306");
        let stmk = |mask: i64| {
            let mut b = b"stmk".to_vec();
            b.extend_from_slice(&mask.to_be_bytes());
            String::from_utf8(b.clone()).unwrap_or_else(|_| panic!("{b:?}"))
        };
        assert_eq!(s.four_letter(&stmk(0x1234)).await, "4660");
        assert_eq!(s.four_letter("gtmk").await, "4660");
        assert_eq!(s.four_letter(&stmk(0)).await, "0");
        assert_eq!(s.four_letter("gtmk").await, "0");
        if !is_zookeeper() {
            // ZooKeeper reads the mask with one non-blocking read; corral waits for all 8 bytes.
            let mut c = raw_tcp(&s.addr()).await;
            c.write_all(b"stmk\0\0\0").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            c.write_all(b"\0\0\0\0\x07").await.unwrap();
            let mut out = String::new();
            within(
                std::time::Duration::from_secs(10),
                "stmk reply",
                c.read_to_string(&mut out),
            )
            .await
            .unwrap();
            assert_eq!(out, "7");
            assert_eq!(s.four_letter("gtmk").await, "7");
        }
        // Refused by the whitelist: answered at once, nothing set.
        let r = TestServer::start(ServerOpts::new().whitelist("gtmk")).await;
        assert_eq!(
            r.four_letter("stmk").await,
            "stmk is not executed because it is not in the whitelist.\n"
        );
        assert_eq!(r.four_letter("gtmk").await, "306");
    })
    .await
}
