//! Snapshots taken while writes go on: after kill -9 the server comes back from the newest
//! snapshot plus the log with exactly the state it acknowledged; a damaged newest snapshot falls
//! back to an older one; autopurge keeps snapRetainCount snapshots. corral's files only (against
//! ZooKeeper the file checks are skipped, the data checks still run).

mod common;

use std::collections::BTreeMap;

use common::*;
use zk::CreateMode;
use zookeeper_client as zk;

async fn state(c: &zk::Client) -> BTreeMap<String, (Vec<u8>, zk::Stat)> {
    let mut m = BTreeMap::new();
    let mut todo = vec!["/s".to_string()];
    while let Some(p) = todo.pop() {
        let (data, st) = c.get_data(&p).await.unwrap();
        for ch in c.list_children(&p).await.unwrap() {
            todo.push(format!("{p}/{ch}"));
        }
        m.insert(p, (data, st));
    }
    m
}

fn snapshot_files(s: &TestServer) -> Vec<std::path::PathBuf> {
    let dir = s.data_dir().join("snapshots");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "snap"));
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_from_snapshot_plus_log() {
    timed(120, async {
        let mut s = TestServer::start(
            ServerOpts::new()
                .cfg("snapCount", 40)
                .cfg("autopurge.snapRetainCount", 3)
                .cfg("autopurge.purgeInterval", 1),
        )
        .await;
        let c = s.client().await;
        let keeper = s.client().await;
        c.create("/s", b"", &anyone()).await.unwrap();
        for i in 0..30 {
            c.create(&format!("/s/d{i}"), b"", &anyone()).await.unwrap();
        }
        for round in 0..20 {
            for i in 0..30 {
                let p = format!("/s/d{i}/n{round}");
                c.create(&p, format!("{round}").as_bytes(), &anyone())
                    .await
                    .unwrap();
                if i % 3 == 0 {
                    c.set_data(&p, b"changed", None).await.unwrap();
                }
                if i % 5 == 0 && round > 0 {
                    c.delete(&format!("/s/d{i}/n{}", round - 1), None)
                        .await
                        .unwrap();
                }
            }
        }
        keeper
            .create("/s/eph", b"e", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let before = state(&c).await;
        if !is_zookeeper() {
            let snaps = snapshot_files(&s);
            assert!(!snaps.is_empty(), "snapshots were taken");
            assert!(snaps.len() <= 3, "autopurge keeps 3: {snaps:?}");
        }
        drop(c);
        s.kill9();
        s.start_again().await;
        let c = s.client().await;
        assert_eq!(
            state(&c).await,
            before,
            "exact state after snapshot + replay"
        );

        if !is_zookeeper() {
            // Damage the newest snapshot: recovery falls back to an older one plus more log.
            drop(c);
            s.kill9();
            let newest = snapshot_files(&s).pop().unwrap();
            let mut bytes = std::fs::read(&newest).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&newest, &bytes).unwrap();
            s.start_again().await;
            let c = s.client().await;
            assert_eq!(
                state(&c).await,
                before,
                "exact state from an older snapshot"
            );
        }
    })
    .await
}
