//! The snapshot tooling an operator sees: `corral dump-snapshot` prints a snapshot taken by the
//! live server with the stats a client reads, the ACLs, the session table and the totals, and
//! rejects a damaged copy with a non-zero exit and no panic; `mntr` reports the snapshots on
//! disk (`corral_snapshot_*`) and `srvr` appends corral's storage lines after ZooKeeper's.
//! corral's files only: against Apache ZooKeeper (`CORRAL_TEST_TARGET=zookeeper`) the test
//! returns early.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use zk::{Acl, Acls, AuthId, CreateMode, Permission};
use zookeeper_client as zk;

/// Complete snapshot files, oldest first (names sort by zxid).
fn snapshot_files(s: &TestServer) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(s.data_dir().join("snapshots"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "snap"));
    v.sort();
    v
}

fn zxid_of(file: &Path) -> i64 {
    let name = file.file_name().unwrap().to_str().unwrap();
    let hex = name
        .strip_prefix("snap-")
        .and_then(|n| n.strip_suffix(".snap"))
        .unwrap();
    i64::from_str_radix(hex, 16).unwrap()
}

fn dump(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .arg("dump-snapshot")
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

/// The dump's node blocks: path -> `key = value` lines.
fn nodes(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut m: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut cur = None;
    for l in text.lines() {
        if l.starts_with('/') {
            cur = Some(l.to_string());
            m.insert(l.to_string(), BTreeMap::new());
        } else if let (Some(p), Some(kv)) = (&cur, l.strip_prefix("  ")) {
            let (k, v) = kv.split_once(" = ").unwrap();
            m.get_mut(p).unwrap().insert(k.to_string(), v.to_string());
        } else {
            cur = None;
        }
    }
    m
}

fn line_value<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{text}"))
}

fn mntr_value(mntr: &str, key: &str) -> i64 {
    line_value(mntr, &format!("{key}\t"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is a number:\n{mntr}"))
}

/// The stat lines a client's view of `path` should produce in the dump.
fn expected(stat: &zk::Stat) -> Vec<(&'static str, String)> {
    vec![
        ("cZxid", format!("{:#016x}", stat.czxid)),
        ("mZxid", format!("{:#016x}", stat.mzxid)),
        ("pZxid", format!("{:#016x}", stat.pzxid)),
        ("cversion", stat.cversion.to_string()),
        ("dataVersion", stat.version.to_string()),
        ("aclVersion", stat.aversion.to_string()),
        ("dataLength", stat.data_length.to_string()),
        ("numChildren", stat.num_children.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_snapshot_and_storage_figures() {
    if is_zookeeper() {
        return;
    }
    timed(180, async {
        let s = TestServer::start(ServerOpts::new().cfg("snapCount", 20)).await;
        let c = s.client().await;
        let owner = s.client().await;
        c.create("/dump", b"", &anyone()).await.unwrap();
        c.create("/dump/a", b"v0", &anyone()).await.unwrap();
        for i in 1..=5 {
            c.set_data("/dump/a", format!("v{i}").as_bytes(), None)
                .await
                .unwrap();
        }
        let acl = [
            Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1")),
            Acl::new(Permission::READ, AuthId::anyone()),
        ];
        c.create(
            "/dump/b",
            b"",
            &CreateMode::Persistent.with_acls(Acls::new(&acl)),
        )
        .await
        .unwrap();
        c.create("/dump/gone", b"x", &anyone()).await.unwrap();
        c.delete("/dump/gone", None).await.unwrap();
        let (eph_stat, _) = owner
            .create("/dump/e", b"mine", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let target = eph_stat.czxid;

        // Writes elsewhere until a snapshot covers everything above (snapCount=20: one every
        // 10..20 writes).
        c.create("/fill", b"", &anyone()).await.unwrap();
        let mut i = 0;
        while snapshot_files(&s)
            .last()
            .is_none_or(|f| zxid_of(f) < target)
        {
            assert!(i < 2000, "no snapshot after {i} writes");
            c.create(&format!("/fill/n{i}"), b"f", &anyone())
                .await
                .unwrap();
            i += 1;
        }
        // A snapshot started by the last writes may still be finishing: wait until the figures
        // hold still and no `.tmp` file is left.
        let listing = || {
            let mut v: Vec<String> = std::fs::read_dir(s.data_dir().join("snapshots"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let mut last = (-1, Vec::new());
        let mut mntr = String::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            mntr = s.four_letter("mntr").await;
            let now = (mntr_value(&mntr, "corral_snapshot_taken"), listing());
            if now == last && !now.1.iter().any(|n| n.ends_with(".tmp")) {
                break;
            }
            last = now;
        }
        let files = snapshot_files(&s);
        let newest = files.last().unwrap().clone();
        let size = std::fs::metadata(&newest).unwrap().len() as i64;

        // mntr: the snapshots on disk and the ones this process took.
        assert_eq!(
            mntr_value(&mntr, "corral_snapshot_count"),
            files.len() as i64
        );
        assert!(!files.is_empty());
        assert_eq!(
            mntr_value(&mntr, "corral_snapshot_newest_zxid"),
            zxid_of(&newest)
        );
        assert_eq!(mntr_value(&mntr, "corral_snapshot_newest_bytes"), size);
        assert!(mntr_value(&mntr, "corral_snapshot_dir_bytes") >= size);
        assert!(mntr_value(&mntr, "corral_snapshot_taken") >= files.len() as i64);
        assert_eq!(mntr_value(&mntr, "corral_snapshot_failed"), 0);
        assert!(mntr_value(&mntr, "corral_snapshot_last_duration_ms") >= 0);

        // srvr's storage lines agree with the disk (their layout is tests/fourlw.rs's).
        let srvr = s.four_letter("srvr").await;
        let num = |p: &str| line_value(&srvr, p).parse::<i64>().unwrap();
        assert_eq!(num("Snapshot count: "), files.len() as i64);
        assert_eq!(num("Newest snapshot size: "), size);
        assert!(num("Log dir size: ") > 0);
        assert!(num("Fsyncs: ") >= mntr_value(&mntr, "corral_log_fsyncs"));
        num("Fsync time total (ms): ");

        // The dump: the header, then every node with what a client reads.
        let out = dump(&[], &newest);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("\nSnapshot zxid: {:#x} ", zxid_of(&newest))),
            "{text}"
        );
        let dumped = nodes(&text);
        // (Not "/": /fill's first child may have come after the snapshot's zxid.)
        for path in ["/dump", "/dump/a", "/dump/b", "/dump/e"] {
            let (_, stat) = c.get_data(path).await.unwrap();
            let got = dumped
                .get(path)
                .unwrap_or_else(|| panic!("{path} in:\n{text}"));
            for (k, v) in expected(&stat) {
                assert_eq!(got[k], v, "{path} {k}");
            }
        }
        assert!(!dumped.contains_key("/dump/gone"));
        let a = &dumped["/dump/a"];
        assert_eq!(a["dataVersion"], "5");
        assert_eq!(a["acl"], "world:anyone:cdrwa");
        assert_eq!(
            dumped["/dump/b"]["acl"],
            "ip:127.0.0.1:cdrwa, world:anyone:r"
        );
        let sid = owner.session_id().0;
        assert_eq!(dumped["/dump/e"]["ephemeralOwner"], format!("{sid:#016x}"));
        assert_eq!(dumped["/dump"]["ephemeralOwner"], "0x00000000000000");

        // Sessions: both clients', with their timeouts; the owner has one ephemeral.
        let sessions: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Session Details"))
            .skip(1)
            .take_while(|l| *l != "----")
            .collect();
        let timeout = owner.session_timeout().as_millis();
        assert!(
            sessions.contains(&format!("{sid:#016x}, {timeout}, 1").as_str()),
            "{sessions:?}"
        );
        let cid = c.session_id().0;
        assert!(
            sessions.contains(&format!("{cid:#016x}, {timeout}, 0").as_str()),
            "{sessions:?}"
        );

        // The summary agrees with the blocks above it.
        let data_bytes: i64 = dumped
            .values()
            .map(|n| n["dataLength"].parse::<i64>().unwrap())
            .sum();
        assert_eq!(
            line_value(&text, "Nodes: "),
            dumped.len().to_string(),
            "{text}"
        );
        assert!(text.contains(&format!("ZNode Details (count={}):", dumped.len())));
        assert_eq!(line_value(&text, "Data bytes: "), data_bytes.to_string());
        assert_eq!(line_value(&text, "Sessions: "), sessions.len().to_string());
        assert_eq!(line_value(&text, "Ephemerals: "), "1");

        // --data: base64 of each node's data.
        let out = dump(&["--data"], &newest);
        assert!(out.status.success());
        let with_data = nodes(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(with_data["/dump/a"]["data"], "djU="); // "v5"
        assert_eq!(with_data["/dump/e"]["data"], "bWluZQ=="); // "mine"
        assert_eq!(with_data["/dump/b"]["data"], "");

        // --json: one document with the same figures.
        let out = dump(&["--json"], &newest);
        assert!(out.status.success());
        let json = String::from_utf8(out.stdout).unwrap();
        assert!(json.starts_with("{\"file\":"), "{json}");
        assert!(json.contains("\"path\":\"/dump/a\","), "{json}");
        assert!(json.contains(&format!(
            "\"summary\":{{\"nodes\":{},\"dataBytes\":{data_bytes},",
            dumped.len()
        )));

        // Damaged copies: rejected with exit status 1, a message, no output and no panic.
        let bytes = std::fs::read(&newest).unwrap();
        let work = s.dir.join("damaged");
        std::fs::create_dir_all(&work).unwrap();
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 0x40;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", bytes[..bytes.len() / 2].to_vec()),
            ("no end frame", bytes[..bytes.len() - 1].to_vec()),
            ("header only", bytes[..20].to_vec()),
            ("empty", Vec::new()),
            ("flipped", flipped),
        ];
        for (what, content) in cases {
            let copy = work.join("snap-copy.snap");
            std::fs::write(&copy, &content).unwrap();
            let out = dump(&[], &copy);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what}: {err}");
            assert!(out.stdout.is_empty(), "{what}: printed something");
            assert!(
                err.contains("not an intact corral snapshot"),
                "{what}: {err}"
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
        }
        // Usage errors are 2.
        let missing = dump(&[], &work.join("missing.snap"));
        assert_eq!(missing.status.code(), Some(2));
        let bad_flag = dump(&["--bogus"], &newest);
        assert_eq!(bad_flag.status.code(), Some(2));
    })
    .await
}
