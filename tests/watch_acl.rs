//! Watch events and ACLs (CVE-2024-23944, fixed in ZooKeeper 3.9.2 and 3.8.4): an event goes
//! only to a connection whose auth ids may READ the node, for every watch kind. The ACL checked
//! is the changed node's own (NodeCreated, NodeDataChanged, NodeDeleted: a deleted node's as it
//! was) or the parent's (NodeChildrenChanged). A one-shot watch whose event is withheld is used
//! up all the same. docs/decisions.md, "Watch events and ACLs", has the rule and its sources.
//!
//! In each test `alice` (authenticated, the crate client) makes the changes; `eve` (no
//! credentials) and `bob` (authenticated as alice) hold the same watches. Every scenario ends
//! with a change to an open node that both watch: notifications reach a connection in zxid
//! order, so once that marker has arrived, anything withheld before it was never sent.
//!
//! `CORRAL_TEST_TARGET=zookeeper` runs the same tests against Apache ZooKeeper (Debian's
//! 3.8.0-11+deb12u2, which carries the CVE-2024-23944 fix).

mod common;

use std::time::Duration;

use common::raw::{err, event, op, watcher_type, Enc, RawConn};
use common::*;
use zk::{Acl, AddWatchMode, AuthId, CreateMode, EventType, Permission};
use zookeeper_client as zk;

const CRED: &[u8] = b"alice:secret";

fn secret() -> Vec<Acl> {
    vec![Acl::new(
        Permission::ALL,
        AuthId::new("digest", &digest_id("alice", "secret")),
    )]
}

fn only(acls: &[Acl]) -> zk::CreateOptions<'_> {
    CreateMode::Persistent.with_acls(zk::Acls::new(acls))
}

async fn alice(s: &TestServer) -> zk::Client {
    connect_with(&s.addr(), zk::Client::connector().with_auth("digest", CRED)).await
}

/// A raw session; with `cred`, authenticated with it (`addauth digest`).
async fn watcher(s: &TestServer, cred: Option<&[u8]>) -> RawConn {
    let mut r = s.raw().await;
    if let Some(cred) = cred {
        let body = Enc::new().i32(0).str("digest").buf(Some(cred)).finish();
        assert_eq!(r.call(op::AUTH, &body).await.unwrap().err, err::OK);
    }
    r
}

async fn add_watch(r: &mut RawConn, path: &str, mode: AddWatchMode) {
    let mode = match mode {
        AddWatchMode::Persistent => 0,
        AddWatchMode::PersistentRecursive => 1,
    };
    let rep = r
        .call(op::ADD_WATCH, &Enc::new().str(path).i32(mode).finish())
        .await
        .unwrap();
    assert_eq!(rep.err, err::OK, "addWatch {path}");
}

/// Notifications up to and including `last` (bounded: 10 s).
async fn events_through(r: &mut RawConn, last: (i32, &str)) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !out
        .iter()
        .any(|(k, p): &(i32, String)| (*k, p.as_str()) == last)
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no {last:?} within 10 s; got {out:?}");
        out.extend(r.events_for(left.min(Duration::from_millis(200))).await);
    }
    out
}

fn evs(v: &[(i32, &str)]) -> Vec<(i32, String)> {
    v.iter().map(|(k, p)| (*k, p.to_string())).collect()
}

fn ev(e: &zk::WatchedEvent) -> (EventType, &str) {
    (e.event_type, e.path.as_str())
}

async fn next(w: &mut zk::PersistentWatcher) -> zk::WatchedEvent {
    within(
        Duration::from_secs(5),
        "persistent watch event",
        w.changed(),
    )
    .await
}

/// The case: `addWatch -m PERSISTENT_RECURSIVE /` without credentials must not reveal
/// nodes created under a digest-protected /hr. A child's own ACL decides, not its parent's.
/// Auth ids are those the watching connection holds when the event is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_watch_reports_only_nodes_the_watcher_may_read() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = alice(&s).await;
        let eve = s.client().await;
        let mut eve_w = eve
            .watch("/", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let mut bob = watcher(&s, Some(CRED)).await;
        add_watch(&mut bob, "/", AddWatchMode::PersistentRecursive).await;

        a.create("/hr", b"", &only(&secret())).await.unwrap();
        a.create("/hr/carol", b"", &only(&secret())).await.unwrap();
        a.set_data("/hr/carol", b"salary", None).await.unwrap();
        a.create("/hr/notice", b"", &anyone()).await.unwrap();
        a.delete("/hr/carol", None).await.unwrap();
        a.create("/pub", b"", &anyone()).await.unwrap();

        assert_eq!(
            ev(&next(&mut eve_w).await),
            (EventType::NodeCreated, "/hr/notice"),
            "a world-readable child of a protected parent is reported"
        );
        assert_eq!(
            ev(&next(&mut eve_w).await),
            (EventType::NodeCreated, "/pub")
        );
        assert_eq!(
            events_through(&mut bob, (event::NODE_CREATED, "/pub")).await,
            evs(&[
                (event::NODE_CREATED, "/hr"),
                (event::NODE_CREATED, "/hr/carol"),
                (event::NODE_DATA_CHANGED, "/hr/carol"),
                (event::NODE_CREATED, "/hr/notice"),
                (event::NODE_DELETED, "/hr/carol"),
                (event::NODE_CREATED, "/pub"),
            ])
        );

        // The same watch without credentials on the wire, then with them: the connection's
        // ids at delivery count, not those it had when it set the watch.
        let mut r = watcher(&s, None).await;
        add_watch(&mut r, "/hr", AddWatchMode::PersistentRecursive).await;
        add_watch(&mut r, "/pub", AddWatchMode::PersistentRecursive).await;
        a.create("/hr/dave", b"", &only(&secret())).await.unwrap();
        a.set_data("/pub", b"1", None).await.unwrap();
        assert_eq!(
            events_through(&mut r, (event::NODE_DATA_CHANGED, "/pub")).await,
            evs(&[(event::NODE_DATA_CHANGED, "/pub")])
        );
        let body = Enc::new().i32(0).str("digest").buf(Some(CRED)).finish();
        assert_eq!(r.call(op::AUTH, &body).await.unwrap().err, err::OK);
        a.delete("/hr/dave", None).await.unwrap();
        a.set_data("/pub", b"2", None).await.unwrap();
        assert_eq!(
            events_through(&mut r, (event::NODE_DATA_CHANGED, "/pub")).await,
            evs(&[
                (event::NODE_DELETED, "/hr/dave"),
                (event::NODE_DATA_CHANGED, "/pub"),
            ])
        );
        for _ in 0..2 {
            assert_eq!(
                ev(&next(&mut eve_w).await),
                (EventType::NodeDataChanged, "/pub")
            );
        }
        assert_pending(
            Duration::from_millis(300),
            "eve saw nothing of /hr/dave",
            eve_w.changed(),
        )
        .await;
    })
    .await
}

/// PERSISTENT on a protected node: its data changes, its deletion and its children changing
/// all need READ on it; NodeChildrenChanged is judged by the parent's ACL, so an open parent
/// reports a protected child arriving (its name is in the parent's listing anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_reports_only_nodes_the_watcher_may_read() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = alice(&s).await;
        a.create("/hr", b"", &only(&secret())).await.unwrap();
        a.create("/pub", b"", &anyone()).await.unwrap();
        let mut eve = watcher(&s, None).await;
        let mut bob = watcher(&s, Some(CRED)).await;
        for r in [&mut eve, &mut bob] {
            add_watch(r, "/hr", AddWatchMode::Persistent).await;
            add_watch(r, "/pub", AddWatchMode::Persistent).await;
        }

        a.create("/hr/carol", b"", &only(&secret())).await.unwrap();
        a.set_data("/hr", b"x", None).await.unwrap();
        a.delete("/hr/carol", None).await.unwrap();
        a.delete("/hr", None).await.unwrap();
        a.create("/pub/s", b"", &only(&secret())).await.unwrap();
        a.set_data("/pub", b"x", None).await.unwrap();

        assert_eq!(
            events_through(&mut eve, (event::NODE_DATA_CHANGED, "/pub")).await,
            evs(&[
                (event::NODE_CHILDREN_CHANGED, "/pub"),
                (event::NODE_DATA_CHANGED, "/pub"),
            ])
        );
        assert_eq!(
            events_through(&mut bob, (event::NODE_DATA_CHANGED, "/pub")).await,
            evs(&[
                (event::NODE_CHILDREN_CHANGED, "/hr"),
                (event::NODE_DATA_CHANGED, "/hr"),
                (event::NODE_CHILDREN_CHANGED, "/hr"),
                (event::NODE_DELETED, "/hr"),
                (event::NODE_CHILDREN_CHANGED, "/pub"),
                (event::NODE_DATA_CHANGED, "/pub"),
            ])
        );
    })
    .await
}

/// One-shot data watches, set by exists (on a missing node) and by getData (on a node that
/// was open then): NodeCreated, NodeDataChanged and NodeDeleted need READ on the node as it is
/// at the change. A withheld event still uses the watch up, as in ZooKeeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_data_watches_report_only_nodes_the_watcher_may_read() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = alice(&s).await;
        a.create("/hr", b"", &only(&secret())).await.unwrap();
        a.create("/doc", b"", &anyone()).await.unwrap();
        a.create("/old", b"", &anyone()).await.unwrap();
        a.create("/pub", b"", &anyone()).await.unwrap();
        let mut eve = watcher(&s, None).await;
        let mut bob = watcher(&s, Some(CRED)).await;
        for r in [&mut eve, &mut bob] {
            assert_eq!(r.exists("/hr/new", true).await.err, err::NO_NODE);
            assert_eq!(r.get_data("/doc", true).await.err, err::OK);
            assert_eq!(r.exists("/old", true).await.err, err::OK);
            assert_eq!(r.exists("/pub", true).await.err, err::OK);
        }
        // The crate's one-shot watch, too.
        let eve_c = s.client().await;
        let (_, _, eve_doc) = eve_c.get_and_watch_data("/doc").await.unwrap();

        a.create("/hr/new", b"", &only(&secret())).await.unwrap();
        a.set_acl("/doc", &secret(), None).await.unwrap();
        a.set_data("/doc", b"x", None).await.unwrap();
        a.set_acl("/old", &secret(), None).await.unwrap();
        a.delete("/old", None).await.unwrap();
        a.set_data("/pub", b"x", None).await.unwrap();

        assert_eq!(
            events_through(&mut eve, (event::NODE_DATA_CHANGED, "/pub")).await,
            evs(&[(event::NODE_DATA_CHANGED, "/pub")])
        );
        assert_eq!(
            events_through(&mut bob, (event::NODE_DATA_CHANGED, "/pub")).await,
            evs(&[
                (event::NODE_CREATED, "/hr/new"),
                (event::NODE_DATA_CHANGED, "/doc"),
                (event::NODE_DELETED, "/old"),
                (event::NODE_DATA_CHANGED, "/pub"),
            ])
        );
        for path in ["/hr/new", "/doc"] {
            assert_eq!(
                eve.check_watches(path, watcher_type::DATA).await.err,
                err::NO_WATCHER,
                "the withheld event used up eve's watch on {path}"
            );
        }
        assert_pending(
            Duration::from_millis(300),
            "crate watch on /doc",
            eve_doc.changed(),
        )
        .await;
    })
    .await
}

/// One-shot child watches (getChildren): NodeChildrenChanged needs READ on the watched parent,
/// NodeDeleted of the watched node needs READ on it as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_child_watches_report_only_nodes_the_watcher_may_read() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = alice(&s).await;
        for p in ["/dir", "/gone", "/open", "/pub"] {
            a.create(p, b"", &anyone()).await.unwrap();
        }
        let mut eve = watcher(&s, None).await;
        let mut bob = watcher(&s, Some(CRED)).await;
        for r in [&mut eve, &mut bob] {
            for p in ["/dir", "/gone", "/open", "/pub"] {
                assert_eq!(r.get_children(p, true).await.err, err::OK, "{p}");
            }
        }
        let eve_c = s.client().await;
        let (_, _, eve_dir) = eve_c.get_and_watch_children("/dir").await.unwrap();

        a.set_acl("/dir", &secret(), None).await.unwrap();
        a.create("/dir/x", b"", &anyone()).await.unwrap();
        a.set_acl("/gone", &secret(), None).await.unwrap();
        a.delete("/gone", None).await.unwrap();
        a.create("/open/s", b"", &only(&secret())).await.unwrap();
        a.create("/pub/c", b"", &anyone()).await.unwrap();

        assert_eq!(
            events_through(&mut eve, (event::NODE_CHILDREN_CHANGED, "/pub")).await,
            evs(&[
                (event::NODE_CHILDREN_CHANGED, "/open"),
                (event::NODE_CHILDREN_CHANGED, "/pub"),
            ])
        );
        assert_eq!(
            events_through(&mut bob, (event::NODE_CHILDREN_CHANGED, "/pub")).await,
            evs(&[
                (event::NODE_CHILDREN_CHANGED, "/dir"),
                (event::NODE_DELETED, "/gone"),
                (event::NODE_CHILDREN_CHANGED, "/open"),
                (event::NODE_CHILDREN_CHANGED, "/pub"),
            ])
        );
        assert_eq!(
            eve.check_watches("/dir", watcher_type::CHILDREN).await.err,
            err::NO_WATCHER,
            "the withheld event used up eve's child watch"
        );
        assert_pending(
            Duration::from_millis(300),
            "crate child watch on /dir",
            eve_dir.changed(),
        )
        .await;
    })
    .await
}

/// The watcher's other ids count: its `ip` id, and `super` (superDigest) reads everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_and_super_ids_receive_events_on_protected_nodes() {
    timed(60, async {
        let s = TestServer::start(ServerOpts::new().cfg(
            "DigestAuthenticationProvider.superDigest",
            digest_id("super", "test"),
        ))
        .await;
        let a = alice(&s).await;
        let local = [Acl::new(Permission::READ, AuthId::new("ip", "127.0.0.0/8"))];
        let elsewhere = [Acl::new(Permission::READ, AuthId::new("ip", "10.0.0.1"))];
        let mut eve = watcher(&s, None).await;
        let mut root = watcher(&s, Some(b"super:test")).await;
        for r in [&mut eve, &mut root] {
            add_watch(r, "/", AddWatchMode::PersistentRecursive).await;
        }
        a.create("/local", b"", &only(&local)).await.unwrap();
        a.create("/elsewhere", b"", &only(&elsewhere))
            .await
            .unwrap();
        a.create("/hr", b"", &only(&secret())).await.unwrap();
        a.create("/pub", b"", &anyone()).await.unwrap();
        assert_eq!(
            events_through(&mut eve, (event::NODE_CREATED, "/pub")).await,
            evs(&[
                (event::NODE_CREATED, "/local"),
                (event::NODE_CREATED, "/pub"),
            ])
        );
        assert_eq!(
            events_through(&mut root, (event::NODE_CREATED, "/pub")).await,
            evs(&[
                (event::NODE_CREATED, "/local"),
                (event::NODE_CREATED, "/elsewhere"),
                (event::NODE_CREATED, "/hr"),
                (event::NODE_CREATED, "/pub"),
            ])
        );
    })
    .await
}
