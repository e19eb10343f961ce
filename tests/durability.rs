//! Durability across restarts (kill -9 and graceful): data, stats, ACLs,
//! sequence counters, zxids, and sessions (with their ephemerals).

mod common;

use std::time::Duration;

use common::*;
use zk::{Acl, AuthId, CreateMode, EventType, Permission};
use zookeeper_client as zk;

fn zxid_of(srvr: &str) -> i64 {
    let v = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .expect("Zxid line");
    i64::from_str_radix(v.trim(), 16).unwrap()
}

struct Snapshot {
    nodes: Vec<(String, Vec<u8>, zk::Stat, Vec<Acl>)>,
}

async fn snapshot(c: &zk::Client, paths: &[&str]) -> Snapshot {
    let mut nodes = Vec::new();
    for p in paths {
        let (data, st) = c.get_data(p).await.unwrap_or_else(|e| panic!("{p}: {e}"));
        let (acl, _) = c.get_acl(p).await.unwrap();
        nodes.push((p.to_string(), data, st, acl));
    }
    Snapshot { nodes }
}

async fn populate(c: &zk::Client) -> Vec<&'static str> {
    c.create("/app", b"root", &anyone()).await.unwrap();
    c.create("/app/cfg", b"v0", &anyone()).await.unwrap();
    for i in 1..=5 {
        c.set_data("/app/cfg", format!("v{i}").as_bytes(), None)
            .await
            .unwrap();
    }
    c.create("/app/q", b"", &anyone()).await.unwrap();
    for _ in 0..3 {
        c.create("/app/q/n-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
    }
    c.delete("/app/q/n-0000000001", None).await.unwrap();
    let ro = [Acl::new(
        Permission::READ | Permission::ADMIN,
        AuthId::anyone(),
    )];
    c.create(
        "/app/ro",
        b"locked",
        &CreateMode::Persistent.with_acls(zk::Acls::new(&ro)),
    )
    .await
    .unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    c.create("/app/big", &big, &anyone()).await.unwrap();
    c.create("/gone", b"", &anyone()).await.unwrap();
    c.delete("/gone", None).await.unwrap();
    vec![
        "/app",
        "/app/cfg",
        "/app/q",
        "/app/q/n-0000000000",
        "/app/q/n-0000000002",
        "/app/ro",
        "/app/big",
        "/",
    ]
}

async fn check_restart(kill: bool) {
    let mut s = TestServer::start_default().await;
    let paths;
    let before;
    let last_zxid;
    {
        let c = s.client().await;
        paths = populate(&c).await;
        before = snapshot(&c, &paths).await;
        last_zxid = zxid_of(&s.four_letter("srvr").await);
    }
    if kill {
        s.crash_restart().await;
    } else {
        s.restart().await;
    }
    let c = s.client().await;
    let after = snapshot(&c, &paths).await;
    for (b, a) in before.nodes.iter().zip(after.nodes.iter()) {
        assert_eq!(b.0, a.0);
        assert_eq!(b.1, a.1, "data of {}", b.0);
        assert_eq!(b.2, a.2, "stat of {}", b.0);
        assert_eq!(b.3, a.3, "acl of {}", b.0);
    }
    assert_eq!(c.check_stat("/gone").await.unwrap(), None);
    let mut kids = c.list_children("/app/q").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["n-0000000000", "n-0000000002"]);
    // Counters continue where they were.
    let (_, seq) = c
        .create("/app/q/n-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 3);
    let (st, _) = c.create("/app/new", b"", &anyone()).await.unwrap();
    assert!(
        st.czxid > last_zxid,
        "zxids keep increasing after restart: {:#x} vs {last_zxid:#x}",
        st.czxid
    );
    assert_eq!(
        st.czxid >> 32,
        last_zxid >> 32,
        "standalone restart keeps the zxid epoch"
    );
    assert_eq!(
        c.set_data("/app/cfg", b"x", Some(5)).await.unwrap().version,
        6
    );
    assert_eq!(
        c.set_data("/app/ro", b"x", None).await.unwrap_err(),
        zk::Error::NoAuth
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_kill_9() {
    timed(120, check_restart(true)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_graceful_restart() {
    timed(120, check_restart(false)).await
}

/// Sessions are durable too: after a restart a session's ephemerals are
/// still there, the session can be resumed, and sessions that do not come
/// back expire after their timeout (deleting their ephemerals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_ephemerals_survive_restart() {
    timed(120, async {
        let mut s = TestServer::start_default().await;
        let resumed = connect_with(&s.addr(), zk::Client::connector().with_detached()).await;
        resumed
            .create("/r", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let r_info = resumed.session().clone();
        let r_sid = resumed.session_id();
        drop(resumed);
        let abandoned = connect_with(
            &s.addr(),
            zk::Client::connector()
                .with_detached()
                .with_session_timeout(Duration::from_secs(4)),
        )
        .await;
        abandoned
            .create("/a", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let a_sid = abandoned.session_id();
        drop(abandoned);
        tokio::time::sleep(Duration::from_millis(200)).await;

        s.crash_restart().await;
        let watcher = s.client().await;
        let st = watcher
            .check_stat("/r")
            .await
            .unwrap()
            .expect("ephemeral survives restart");
        assert_eq!(st.ephemeral_owner, r_sid.0);
        let (st, w) = watcher.check_and_watch_stat("/a").await.unwrap();
        assert_eq!(
            st.expect("ephemeral survives restart").ephemeral_owner,
            a_sid.0
        );

        let back = connect_with(&s.addr(), zk::Client::connector().with_session(r_info)).await;
        assert_eq!(back.session_id(), r_sid);
        assert_eq!(back.list_ephemerals("/").await.unwrap(), vec!["/r"]);

        // The abandoned one expires on its own after the restart.
        let e = within(
            Duration::from_secs(30),
            "abandoned session expires after restart",
            w.changed(),
        )
        .await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/a")
        );
        assert!(
            watcher.check_stat("/r").await.unwrap().is_some(),
            "resumed session keeps its ephemeral"
        );
        drop(back);
    })
    .await
}
