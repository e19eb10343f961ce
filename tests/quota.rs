//! Quotas: the server keeps `/zookeeper/quota<path>/zookeeper_stats` (`count=N,bytes=B`) exact
//! through create, delete, setData, multi (committed and failed) and session expiry, counts a
//! subtree that already has data when the stat node is created, warns of soft limits in its log,
//! refuses writes past hard limits with QUOTAEXCEEDED under `enforceQuota=true`, and keeps the
//! counts across a restart (snapshot plus a log holding failed multis) and on every member of an
//! ensemble. Quotas are set as zkCli's `setquota` sets them (the client writes the limit node and
//! a `count=0,bytes=0` stat node), and zkCli.sh itself drives `setquota`/`listquota`/`delquota`.
//!
//! Validated against Apache ZooKeeper 3.8 (`CORRAL_TEST_TARGET=zookeeper`); where ZooKeeper
//! differs on purpose (a multi's ops counted together against a hard limit) the test says so.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ensemble::{serial, Ensemble, EnsembleOpts};
use common::proxy::Proxy;
use common::*;
use zk::{CreateMode, Error as ZkError, MultiWriteError};
use zookeeper_client as zk;

const QUOTA_ROOT: &str = "/zookeeper/quota";

/// What zkCli's `setquota -n` writes (3.7+): soft count limit, no other limit.
fn soft_count(n: i64) -> String {
    format!("count={n},bytes=-1=;byteHardLimit=-1;countHardLimit=-1")
}

/// Sets a quota on `path` as zkCli's `setquota` does: the path's nodes under /zookeeper/quota,
/// then the limit node, then a stat node of `count=0,bytes=0` (which the server recounts).
async fn set_quota(c: &zk::Client, path: &str, limits: &str) {
    let mut q = QUOTA_ROOT.to_string();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        q.push('/');
        q.push_str(part);
        match c.create(&q, b"", &anyone()).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => panic!("create {q}: {e}"),
        }
    }
    c.create(
        &format!("{q}/zookeeper_limits"),
        limits.as_bytes(),
        &anyone(),
    )
    .await
    .unwrap();
    c.create(
        &format!("{q}/zookeeper_stats"),
        b"count=0,bytes=0",
        &anyone(),
    )
    .await
    .unwrap();
}

/// The stat node's contents.
async fn stats(c: &zk::Client, path: &str) -> String {
    let (data, _) = c
        .get_data(&format!("{QUOTA_ROOT}{path}/zookeeper_stats"))
        .await
        .unwrap();
    String::from_utf8(data).unwrap()
}

/// Nodes and data bytes of `path`'s subtree, counted by walking it.
async fn walk(c: &zk::Client, path: &str) -> (i64, i64) {
    let mut todo = vec![path.to_string()];
    let (mut count, mut bytes) = (0, 0);
    while let Some(p) = todo.pop() {
        let Ok((data, _)) = c.get_data(&p).await else {
            continue;
        };
        count += 1;
        bytes += data.len() as i64;
        for kid in c.list_children(&p).await.unwrap_or_default() {
            todo.push(if p == "/" {
                format!("/{kid}")
            } else {
                format!("{p}/{kid}")
            });
        }
    }
    (count, bytes)
}

/// The stat node says what a walk of the subtree finds, and it is `expect`.
async fn assert_stats(c: &zk::Client, path: &str, expect: &str) {
    let (count, bytes) = walk(c, path).await;
    assert_eq!(stats(c, path).await, expect, "stats of {path}");
    assert_eq!(
        format!("count={count},bytes={bytes}"),
        expect,
        "walk of {path}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_follow_every_kind_of_write() {
    timed(120, async {
        let s = TestServer::start(
            ServerOpts::new()
                .tick_time(250)
                .cfg("minSessionTimeout", 1000)
                .cfg("maxSessionTimeout", 2000),
        )
        .await;
        let c = s.client().await;
        // A subtree with data before the quota exists: the stat node counts it.
        c.create("/q", b"root", &anyone()).await.unwrap();
        c.create("/q/a", b"aa", &anyone()).await.unwrap();
        c.create("/q/a/b", b"", &anyone()).await.unwrap();
        c.create("/other", b"", &anyone()).await.unwrap();
        set_quota(&c, "/q", &soft_count(100)).await;
        assert_stats(&c, "/q", "count=3,bytes=6").await;
        let (limits, _) = c
            .get_data("/zookeeper/quota/q/zookeeper_limits")
            .await
            .unwrap();
        assert_eq!(limits, soft_count(100).as_bytes(), "limits as written");

        c.create("/q/c", b"xyz", &anyone()).await.unwrap();
        assert_stats(&c, "/q", "count=4,bytes=9").await;
        c.set_data("/q/a", b"a", None).await.unwrap();
        assert_stats(&c, "/q", "count=4,bytes=8").await;
        c.delete("/q/a/b", None).await.unwrap();
        assert_stats(&c, "/q", "count=3,bytes=8").await;
        c.create("/q/s-", b"12", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_stats(&c, "/q", "count=4,bytes=10").await;
        // Outside the quota: nothing moves.
        c.create("/other/x", b"12345", &anyone()).await.unwrap();
        c.set_data("/other", b"123", None).await.unwrap();
        assert_stats(&c, "/q", "count=4,bytes=10").await;

        // A committed multi counts each op.
        let mut w = c.new_multi_writer();
        w.add_create("/q/m", b"1234", &anyone()).unwrap();
        w.add_set_data("/q/c", b"", None).unwrap();
        w.add_create("/q/m/n", b"1", &anyone()).unwrap();
        w.add_delete("/q/a", None).unwrap();
        w.commit().await.unwrap();
        assert_stats(&c, "/q", "count=5,bytes=11").await;
        // A failed multi counts nothing.
        let mut w = c.new_multi_writer();
        w.add_create("/q/f", b"123456", &anyone()).unwrap();
        w.add_set_data("/q/m", b"", None).unwrap();
        w.add_check_version("/q", 99).unwrap();
        assert!(w.commit().await.is_err());
        assert_stats(&c, "/q", "count=5,bytes=11").await;

        // Ephemerals go with their session when it expires.
        let proxy = Proxy::start(s.socket_addr()).await;
        let e = connect_with(
            &proxy.addr(),
            zk::Client::connector().with_session_timeout(Duration::from_millis(1000)),
        )
        .await;
        e.create("/q/e1", b"eph", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        e.create("/q/m/e2", b"ep", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        assert_stats(&c, "/q", "count=7,bytes=16").await;
        proxy.freeze();
        eventually(Duration::from_secs(20), "the session expires", || async {
            c.check_stat("/q/e1").await.unwrap().is_none()
                && c.check_stat("/q/m/e2").await.unwrap().is_none()
        })
        .await;
        assert_stats(&c, "/q", "count=5,bytes=11").await;

        // Deleting and recreating the quota's own node counts it too.
        c.create("/q2", b"", &anyone()).await.unwrap();
        set_quota(&c, "/q2", &soft_count(5)).await;
        assert_eq!(stats(&c, "/q2").await, "count=1,bytes=0");
        c.delete("/q2", None).await.unwrap();
        assert_eq!(stats(&c, "/q2").await, "count=0,bytes=0");
        c.create("/q2", b"back", &anyone()).await.unwrap();
        assert_eq!(stats(&c, "/q2").await, "count=1,bytes=4");

        // Without its limit node a path has no quota: its stat node stays as it was.
        c.delete("/zookeeper/quota/q/zookeeper_limits", None)
            .await
            .unwrap();
        c.create("/q/after", b"123", &anyone()).await.unwrap();
        assert_eq!(stats(&c, "/q").await, "count=5,bytes=11");
    })
    .await;
}

/// Where the limits are soft the write succeeds and the server logs ZooKeeper's warning; with
/// `enforceQuota=true` a write past a hard limit fails with QUOTAEXCEEDED and counts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_limits_warn_and_hard_limits_refuse() {
    timed(120, async {
        let s = TestServer::start(ServerOpts::new().cfg("enforceQuota", "true")).await;
        let c = s.client().await;
        c.create("/s", b"", &anyone()).await.unwrap();
        set_quota(&c, "/s", &soft_count(2)).await;
        c.create("/s/1", b"", &anyone()).await.unwrap();
        c.create("/s/2", b"", &anyone()).await.unwrap();
        assert_eq!(stats(&c, "/s").await, "count=3,bytes=0");
        let warning = "Quota exceeded: /s [current count=3, softCountLimit=2]";
        eventually(
            Duration::from_secs(10),
            "the soft-limit warning",
            || async { s.log_tail(200_000).contains(warning) },
        )
        .await;

        c.create("/h", b"", &anyone()).await.unwrap();
        set_quota(
            &c,
            "/h",
            "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3",
        )
        .await;
        c.create("/h/1", b"12345", &anyone()).await.unwrap();
        c.create("/h/2", b"", &anyone()).await.unwrap();
        assert_eq!(stats(&c, "/h").await, "count=3,bytes=5");
        assert_eq!(
            c.create("/h/3", b"", &anyone()).await.unwrap_err(),
            ZkError::QuotaExceeded
        );
        // At the limit is within it; one byte more is not.
        c.set_data("/h/1", b"1234567890", None).await.unwrap();
        assert_eq!(
            c.set_data("/h/2", b"x", None).await.unwrap_err(),
            ZkError::QuotaExceeded
        );
        // Shrinking is always allowed.
        c.set_data("/h/1", b"123", None).await.unwrap();
        assert_eq!(stats(&c, "/h").await, "count=3,bytes=3");
        assert!(s
            .log_tail(200_000)
            .contains("Quota exceeded: /h [current count=4, hardCountLimit=3]"));

        // Inside a multi the op past the limit fails, and so does the multi.
        let mut w = c.new_multi_writer();
        w.add_set_data("/h/2", b"12", None).unwrap();
        w.add_create("/h/3", b"", &anyone()).unwrap();
        match w.commit().await {
            Err(MultiWriteError::OperationFailed { index: 1, source }) => {
                assert_eq!(source, ZkError::QuotaExceeded)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stats(&c, "/h").await, "count=3,bytes=3");

        // A multi's ops count together: each of two creates fits under a limit of 3 with two
        // nodes there, but not both. ZooKeeper checks each op against the committed usage
        // alone and lets both through, past its own hard limit; corral does not.
        c.delete("/h/2", None).await.unwrap();
        let mut w = c.new_multi_writer();
        w.add_create("/h/a", b"", &anyone()).unwrap();
        w.add_create("/h/b", b"", &anyone()).unwrap();
        let r = w.commit().await;
        if is_zookeeper() {
            r.unwrap();
            assert_eq!(stats(&c, "/h").await, "count=4,bytes=3");
        } else {
            match r {
                Err(MultiWriteError::OperationFailed { index: 1, source }) => {
                    assert_eq!(source, ZkError::QuotaExceeded)
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(stats(&c, "/h").await, "count=2,bytes=3");
        }

        // Outside any quota nothing is limited.
        c.create("/free", &[7; 64], &anyone()).await.unwrap();
    })
    .await;
}

/// Without enforcement, hard limits are not enforced (ZooKeeper's default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_limits_are_not_enforced_by_default() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/h", b"", &anyone()).await.unwrap();
        set_quota(
            &c,
            "/h",
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=1",
        )
        .await;
        c.create("/h/1", b"", &anyone()).await.unwrap();
        c.create("/h/2", b"", &anyone()).await.unwrap();
        assert_eq!(stats(&c, "/h").await, "count=3,bytes=0");
    })
    .await;
}

/// The counts come back the same after a kill -9 and a restart from a snapshot plus the log
/// after it, which holds failed multis (logged like any txn, they must replay as nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_survive_restart_from_snapshot_and_failed_multis() {
    timed(180, async {
        let mut s = TestServer::start(ServerOpts::new().cfg("snapCount", 20)).await;
        let c = s.client().await;
        c.create("/r", b"r", &anyone()).await.unwrap();
        c.create("/r/pre", b"pre", &anyone()).await.unwrap();
        set_quota(&c, "/r", &soft_count(1000)).await;
        for i in 0..60 {
            let p = format!("/r/n{i}");
            c.create(&p, format!("{i}").as_bytes(), &anyone())
                .await
                .unwrap();
            if i % 3 == 0 {
                c.set_data(&p, b"changed", None).await.unwrap();
            }
            if i % 4 == 0 {
                c.delete(&p, None).await.unwrap();
            }
            if i % 5 == 0 {
                let mut w = c.new_multi_writer();
                w.add_create(&format!("/r/f{i}"), b"12345", &anyone())
                    .unwrap();
                w.add_check_version("/r", 1000).unwrap();
                assert!(w.commit().await.is_err());
            }
        }
        // The last txns in the log: a failed multi after the newest snapshot.
        let mut w = c.new_multi_writer();
        w.add_create("/r/last", b"", &anyone()).unwrap();
        w.add_delete("/r/missing", None).unwrap();
        assert!(w.commit().await.is_err());
        let (count, bytes) = walk(&c, "/r").await;
        let before = format!("count={count},bytes={bytes}");
        assert_stats(&c, "/r", &before).await;
        if !is_zookeeper() {
            let snaps = std::fs::read_dir(s.data_dir().join("snapshots"))
                .map(|d| d.filter_map(|e| e.ok()).count())
                .unwrap_or(0);
            assert!(snaps > 0, "a snapshot was taken");
        }
        drop(c);
        s.kill9();
        s.crash_restart().await;
        let c = s.client().await;
        assert_stats(&c, "/r", &before).await;
        // And counting goes on from there.
        c.create("/r/later", b"12", &anyone()).await.unwrap();
        assert_stats(
            &c,
            "/r",
            &format!("count={},bytes={}", count + 1, bytes + 2),
        )
        .await;
    })
    .await;
}

/// Every member of an ensemble holds the same counts, whichever member took the writes, and a
/// restarted follower comes back with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_keeps_the_same_counts() {
    let _serial = serial().await;
    timed(240, async {
        let mut ens = Ensemble::start(EnsembleOpts::voters(3)).await;
        let leader = ens.wait_leader(Duration::from_secs(60)).await;
        let clients = [
            ens.client(0).await,
            ens.client(1).await,
            ens.client(2).await,
        ];
        clients[0].create("/e", b"e", &anyone()).await.unwrap();
        clients[0]
            .create("/e/old", b"old", &anyone())
            .await
            .unwrap();
        set_quota(&clients[1], "/e", &soft_count(50)).await;
        for (i, c) in clients.iter().enumerate() {
            for j in 0..5 {
                let p = format!("/e/m{i}-{j}");
                c.create(&p, format!("{i}{j}").as_bytes(), &anyone())
                    .await
                    .unwrap();
                if j % 2 == 0 {
                    c.set_data(&p, b"xyz", None).await.unwrap();
                }
            }
            c.delete(&format!("/e/m{i}-1"), None).await.unwrap();
            let mut w = c.new_multi_writer();
            w.add_create(&format!("/e/x{i}"), b"1", &anyone()).unwrap();
            w.add_check_version("/e", 77).unwrap();
            assert!(w.commit().await.is_err());
        }
        let (count, bytes) = walk(&clients[0], "/e").await;
        let expect = format!("count={count},bytes={bytes}");
        assert_eq!(expect, "count=14,bytes=37");
        for c in &clients {
            c.sync("/").await.unwrap();
            assert_eq!(stats(c, "/e").await, expect);
        }
        let follower = (leader + 1) % 3;
        ens.kill9(follower);
        clients[leader]
            .create("/e/while-down", b"1234", &anyone())
            .await
            .unwrap();
        ens.restart(follower).await;
        ens.wait_serving(follower, Duration::from_secs(60)).await;
        let expect = format!("count={},bytes={}", count + 1, bytes + 4);
        let c = ens.client(follower).await;
        c.sync("/").await.unwrap();
        assert_eq!(stats(&c, "/e").await, expect);
        assert_eq!(stats(&clients[leader], "/e").await, expect);
    })
    .await;
}

/// zkCli.sh with `cmds` (one per line, read from stdin), bounded: its stdout and stderr.
fn zkcli(addr: &str, cmds: &str) -> String {
    let mut child = Command::new("/usr/share/zookeeper/bin/zkCli.sh")
        .args(["-server", addr])
        .env(
            "JVMFLAGS",
            "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        .env("ZOO_LOG4J_PROP", "ERROR,CONSOLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zkCli.sh (apt-get install zookeeper)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{cmds}\nquit\n").as_bytes())
            .unwrap();
    }
    // Read both pipes on threads so a full pipe cannot stall the CLI; stop it after 90 s.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out_pipe, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err_pipe, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zkCli.sh did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("{}\n{}", out.join().unwrap(), err.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zkcli_setquota_listquota_delquota() {
    timed(300, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/z", b"12", &anyone()).await.unwrap();
        c.create("/z/a", b"345", &anyone()).await.unwrap();
        let addr = s.addr();
        let run = |cmds: &'static str| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || zkcli(&addr, cmds))
        };
        let out = run("setquota -n 5 /z\nsetquota -B 100 /z\nlistquota /z")
            .await
            .unwrap();
        assert!(
            out.contains(
                "Output quota for /z count=5,bytes=-1=;byteHardLimit=100;countHardLimit=-1"
            ),
            "listquota: {out}"
        );
        assert!(
            out.contains("Output stat for /z count=2,bytes=5"),
            "listquota: {out}"
        );
        c.create("/z/b", b"6789", &anyone()).await.unwrap();
        assert_eq!(stats(&c, "/z").await, "count=3,bytes=9");
        let out = run("listquota /z\ndelquota -n /z\nlistquota /z")
            .await
            .unwrap();
        assert!(
            out.contains("Output stat for /z count=3,bytes=9"),
            "listquota: {out}"
        );
        assert!(
            out.contains(
                "Output quota for /z count=-1,bytes=-1=;byteHardLimit=100;countHardLimit=-1"
            ),
            "after delquota -n: {out}"
        );
        let out = run("delquota /z\nlistquota /z").await.unwrap();
        assert!(
            out.contains("quota for /z does not exist."),
            "after delquota: {out}"
        );
        assert!(c
            .check_stat("/zookeeper/quota/z/zookeeper_limits")
            .await
            .unwrap()
            .is_none());
        // With no quota left, writes count nowhere and still succeed.
        c.create("/z/c", b"", &anyone()).await.unwrap();
    })
    .await;
}

/// `mntr` prints ZooKeeper's per-namespace quota gauges: limits (hard where set, else soft) and
/// usage, summed over each top-level namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mntr_reports_quota_gauges() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        assert!(!s.four_letter("mntr").await.contains("quota"));
        c.create("/h", b"abc", &anyone()).await.unwrap();
        c.create("/h/x", b"abc", &anyone()).await.unwrap();
        set_quota(
            &c,
            "/h",
            "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=5",
        )
        .await;
        c.create("/k", b"abc", &anyone()).await.unwrap();
        set_quota(&c, "/k", &soft_count(7)).await;
        let mntr = s.four_letter("mntr").await;
        for line in [
            "zk_h_quota_count_limit_per_namespace\t5",
            "zk_h_quota_bytes_limit_per_namespace\t10",
            "zk_h_quota_count_usage_per_namespace\t2",
            "zk_h_quota_bytes_usage_per_namespace\t6",
            "zk_k_quota_count_limit_per_namespace\t7",
            "zk_k_quota_bytes_limit_per_namespace\t-1",
            "zk_k_quota_count_usage_per_namespace\t1",
            "zk_k_quota_bytes_usage_per_namespace\t3",
        ] {
            assert!(mntr.lines().any(|l| l == line), "{line} in\n{mntr}");
        }
        // ZooKeeper has other per-namespace metrics (writes); these are the quota ones.
        let quota_lines = mntr.lines().filter(|l| l.contains("_quota_")).count();
        assert_eq!(quota_lines, 8, "{mntr}");
    })
    .await;
}
