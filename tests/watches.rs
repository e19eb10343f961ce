//! Watches: one-shot data/exists/child watches, persistent and
//! persistent-recursive watches, removeWatches/checkWatches, ordering of
//! notifications relative to replies.

mod common;

use std::time::Duration;

use common::raw::{err, event, op, watcher_type, Enc, RawConn};
use common::*;
use zk::{AddWatchMode, EventType};
use zookeeper_client as zk;

const QUIET: Duration = Duration::from_millis(600);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_watch_fires_node_data_changed_once() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        a.create("/w", b"0", &anyone()).await.unwrap();
        let (data, _, w) = a.get_and_watch_data("/w").await.unwrap();
        assert_eq!(data, b"0");
        b.set_data("/w", b"1", None).await.unwrap();
        let e = within(Duration::from_secs(5), "data watch", w.changed()).await;
        assert_eq!(ev(&e), (EventType::NodeDataChanged, "/w"));
        assert_eq!(e.session_state, zk::SessionState::SyncConnected);

        // On the wire: exactly one notification for two changes (one-shot).
        let mut r = s.raw().await;
        assert_eq!(r.get_data("/w", true).await.err, err::OK);
        b.set_data("/w", b"2", None).await.unwrap();
        b.set_data("/w", b"3", None).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![(event::NODE_DATA_CHANGED, "/w".to_string())]
        );
        // Re-registering arms it again.
        assert_eq!(r.get_data("/w", true).await.err, err::OK);
        b.set_data("/w", b"4", None).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![(event::NODE_DATA_CHANGED, "/w".to_string())]
        );
        // Several registrations of the same watch by one session fire once.
        r.get_data("/w", true).await;
        r.get_data("/w", true).await;
        r.exists("/w", true).await;
        b.set_data("/w", b"5", None).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![(event::NODE_DATA_CHANGED, "/w".to_string())]
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_watch_fires_created_changed_and_deleted() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        let (st, w) = a.check_and_watch_stat("/new").await.unwrap();
        assert_eq!(st, None);
        b.create("/new", b"", &anyone()).await.unwrap();
        let e = within(Duration::from_secs(5), "exists watch", w.changed()).await;
        assert_eq!(ev(&e), (EventType::NodeCreated, "/new"));

        let (st, w) = a.check_and_watch_stat("/new").await.unwrap();
        assert!(st.is_some());
        b.set_data("/new", b"x", None).await.unwrap();
        let e = within(Duration::from_secs(5), "exists watch", w.changed()).await;
        assert_eq!(ev(&e), (EventType::NodeDataChanged, "/new"));

        let (_, w) = a.check_and_watch_stat("/new").await.unwrap();
        b.delete("/new", None).await.unwrap();
        let e = within(Duration::from_secs(5), "exists watch", w.changed()).await;
        assert_eq!(ev(&e), (EventType::NodeDeleted, "/new"));

        // A failed getData/getChildren with watch=true leaves no watch behind;
        // only exists() watches missing nodes.
        let mut r = s.raw().await;
        assert_eq!(r.get_data("/later", true).await.err, err::NO_NODE);
        assert_eq!(r.get_children("/later", true).await.err, err::NO_NODE);
        assert_eq!(
            r.check_watches("/later", watcher_type::ANY).await.err,
            err::NO_WATCHER
        );
        b.create("/later", b"", &anyone()).await.unwrap();
        assert_eq!(r.events_for(QUIET).await, vec![]);
        assert_eq!(r.exists("/later2", true).await.err, err::NO_NODE);
        b.create("/later2", b"", &anyone()).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![(event::NODE_CREATED, "/later2".to_string())]
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_watch_fires_on_child_create_and_delete_only() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        a.create("/p", b"", &anyone()).await.unwrap();
        let (kids, w) = a.list_and_watch_children("/p").await.unwrap();
        assert!(kids.is_empty());
        b.create("/p/c", b"", &anyone()).await.unwrap();
        let e = within(Duration::from_secs(5), "child watch", w.changed()).await;
        assert_eq!(ev(&e), (EventType::NodeChildrenChanged, "/p"));

        let (kids, _st, w) = a.get_and_watch_children("/p").await.unwrap();
        assert_eq!(kids, vec!["c"]);
        b.delete("/p/c", None).await.unwrap();
        let e = within(Duration::from_secs(5), "child watch", w.changed()).await;
        assert_eq!(ev(&e), (EventType::NodeChildrenChanged, "/p"));

        // Raw: things that must NOT fire a child watch.
        b.create("/p/c", b"", &anyone()).await.unwrap();
        let mut r = s.raw().await;
        assert_eq!(r.get_children("/p", true).await.err, err::OK);
        b.set_data("/p/c", b"x", None).await.unwrap(); // child data change
        b.set_data("/p", b"x", None).await.unwrap(); // parent data change
        b.create("/p/c/g", b"", &anyone()).await.unwrap(); // grandchild
        assert_eq!(r.events_for(QUIET).await, vec![]);
        b.create("/p/d", b"", &anyone()).await.unwrap();
        b.create("/p/e", b"", &anyone()).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![(event::NODE_CHILDREN_CHANGED, "/p".to_string())]
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_fires_node_deleted_on_node_watches_and_children_changed_on_parent() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        a.create("/p", b"", &anyone()).await.unwrap();
        a.create("/p/c", b"", &anyone()).await.unwrap();
        let (_, _, data_w) = a.get_and_watch_data("/p/c").await.unwrap();
        let (_, child_w) = a.list_and_watch_children("/p/c").await.unwrap();
        let (_, parent_w) = a.list_and_watch_children("/p").await.unwrap();
        let (_, parent_data_w) = a.check_and_watch_stat("/p").await.unwrap();
        b.delete("/p/c", None).await.unwrap();
        let e = within(Duration::from_secs(5), "data watch", data_w.changed()).await;
        assert_eq!(ev(&e), (EventType::NodeDeleted, "/p/c"));
        let e = within(
            Duration::from_secs(5),
            "child watch of deleted node",
            child_w.changed(),
        )
        .await;
        assert_eq!(ev(&e), (EventType::NodeDeleted, "/p/c"));
        let e = within(
            Duration::from_secs(5),
            "parent child watch",
            parent_w.changed(),
        )
        .await;
        assert_eq!(ev(&e), (EventType::NodeChildrenChanged, "/p"));
        // The parent's data watch is not triggered by a child delete.
        assert_pending(QUIET, "parent data watch", parent_data_w.changed()).await;
    })
    .await
}

/// Wire-level order: notifications caused by earlier transactions arrive
/// before the reply to a later request; one session gets a single
/// NodeDeleted even with several watch kinds on the node; notification
/// headers are (xid -1, zxid -1, err 0) and carry state SyncConnected (3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_precede_later_replies_on_the_wire() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut a = s.raw().await;
        let mut b = s.raw().await;
        a.create("/o", b"0", 0).await;
        a.get_data("/o", true).await;
        a.get_children("/o", true).await;
        assert_eq!(b.set_data("/o", b"1", -1).await.err, err::OK);
        assert_eq!(b.create("/o/c", b"", 0).await.err, err::OK);
        let xid = a
            .send(op::GET_DATA, &Enc::new().str("/o").bool(false).finish())
            .await
            .unwrap();
        let f1 = a.recv().await.unwrap();
        let f2 = a.recv().await.unwrap();
        let f3 = a.recv().await.unwrap();
        assert_eq!((f1.xid, f1.zxid, f1.err), (-1, -1, 0));
        assert_eq!(f1.event(), (event::NODE_DATA_CHANGED, 3, "/o".to_string()));
        assert_eq!((f2.xid, f2.zxid, f2.err), (-1, -1, 0));
        assert_eq!(
            f2.event(),
            (event::NODE_CHILDREN_CHANGED, 3, "/o".to_string())
        );
        assert_eq!((f3.xid, f3.err), (xid, 0));
        assert_eq!(f3.dec().buf().unwrap(), b"1");

        a.exists("/o/c", true).await;
        a.get_data("/o/c", true).await;
        a.get_children("/o/c", true).await;
        a.get_children("/o", true).await;
        assert_eq!(b.delete("/o/c", -1).await.err, err::OK);
        let xid = a
            .send(op::EXISTS, &Enc::new().str("/o").bool(false).finish())
            .await
            .unwrap();
        let f1 = a.recv().await.unwrap();
        let f2 = a.recv().await.unwrap();
        let f3 = a.recv().await.unwrap();
        assert_eq!(f1.event(), (event::NODE_DELETED, 3, "/o/c".to_string()));
        assert_eq!(
            f2.event(),
            (event::NODE_CHILDREN_CHANGED, 3, "/o".to_string())
        );
        assert_eq!((f3.xid, f3.err), (xid, 0));
        assert_eq!(
            a.events_for(QUIET).await,
            vec![],
            "exactly one NodeDeleted per session"
        );
    })
    .await
}

/// Through the crate: when a read issued after a change returns the new
/// state, the watch event for that change has already been delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_event_is_delivered_before_a_later_read_reply() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        a.create("/o", b"0", &anyone()).await.unwrap();
        for i in 1..=20u32 {
            let (_, _, w) = a.get_and_watch_data("/o").await.unwrap();
            b.set_data("/o", i.to_string().as_bytes(), None)
                .await
                .unwrap();
            let (data, _) = a.get_data("/o").await.unwrap();
            assert_eq!(data, i.to_string().as_bytes());
            let e = tokio::time::timeout(Duration::ZERO, w.changed())
                .await
                .unwrap_or_else(|_| panic!("round {i}: event not delivered before the read reply"));
            assert_eq!(ev(&e), (EventType::NodeDataChanged, "/o"));
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_fires_repeatedly_and_not_for_descendants() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        let mut pw = a.watch("/p", AddWatchMode::Persistent).await.unwrap();
        b.create("/p", b"", &anyone()).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeCreated, "/p"));
        b.set_data("/p", b"1", None).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeDataChanged, "/p"));
        b.set_data("/p", b"2", None).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeDataChanged, "/p"));
        b.create("/p/c", b"", &anyone()).await.unwrap();
        assert_eq!(
            ev(&next(&mut pw).await),
            (EventType::NodeChildrenChanged, "/p")
        );
        b.set_data("/p/c", b"x", None).await.unwrap();
        b.create("/p/c/g", b"", &anyone()).await.unwrap();
        b.delete("/p/c/g", None).await.unwrap();
        b.delete("/p/c", None).await.unwrap();
        assert_eq!(
            ev(&next(&mut pw).await),
            (EventType::NodeChildrenChanged, "/p"),
            "only the child delete fires"
        );
        b.delete("/p", None).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeDeleted, "/p"));
        b.create("/p", b"", &anyone()).await.unwrap();
        assert_eq!(
            ev(&next(&mut pw).await),
            (EventType::NodeCreated, "/p"),
            "survives deletion of the node"
        );
        assert_pending(QUIET, "no further persistent events", pw.changed()).await;

        // Raw: same sequence as seen on the wire (mode 0 = PERSISTENT).
        let mut r = s.raw().await;
        let rep = r
            .call(op::ADD_WATCH, &Enc::new().str("/q").i32(0).finish())
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
        b.create("/q", b"", &anyone()).await.unwrap();
        b.create("/q/c", b"", &anyone()).await.unwrap();
        b.set_data("/q/c", b"", None).await.unwrap();
        b.set_data("/q", b"", None).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![
                (event::NODE_CREATED, "/q".to_string()),
                (event::NODE_CHILDREN_CHANGED, "/q".to_string()),
                (event::NODE_DATA_CHANGED, "/q".to_string()),
            ]
        );
    })
    .await
}

/// PERSISTENT_RECURSIVE covers the node and all descendants with
/// created/deleted/dataChanged events, and never sends NodeChildrenChanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_recursive_watch_covers_descendants() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        let mut pw = a
            .watch("/r", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        b.create("/r", b"", &anyone()).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeCreated, "/r"));
        b.create("/r/a", b"", &anyone()).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeCreated, "/r/a"));
        b.set_data("/r/a", b"x", None).await.unwrap();
        assert_eq!(
            ev(&next(&mut pw).await),
            (EventType::NodeDataChanged, "/r/a")
        );
        b.create("/r/a/b", b"", &anyone()).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeCreated, "/r/a/b"));
        b.delete("/r/a/b", None).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeDeleted, "/r/a/b"));
        b.set_data("/r", b"y", None).await.unwrap();
        assert_eq!(ev(&next(&mut pw).await), (EventType::NodeDataChanged, "/r"));
        b.create("/rx", b"", &anyone()).await.unwrap(); // sibling with a common string prefix
        b.create("/other", b"", &anyone()).await.unwrap();
        assert_pending(QUIET, "no events outside the subtree", pw.changed()).await;

        // Raw (mode 1 = PERSISTENT_RECURSIVE): no NodeChildrenChanged at all.
        let mut r = s.raw().await;
        let rep = r
            .call(op::ADD_WATCH, &Enc::new().str("/t").i32(1).finish())
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
        b.create("/t", b"", &anyone()).await.unwrap();
        b.create("/t/a", b"", &anyone()).await.unwrap();
        b.create("/t/a/b", b"", &anyone()).await.unwrap();
        b.set_data("/t/a/b", b"1", None).await.unwrap();
        b.delete("/t/a/b", None).await.unwrap();
        b.create("/tt", b"", &anyone()).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![
                (event::NODE_CREATED, "/t".to_string()),
                (event::NODE_CREATED, "/t/a".to_string()),
                (event::NODE_CREATED, "/t/a/b".to_string()),
                (event::NODE_DATA_CHANGED, "/t/a/b".to_string()),
                (event::NODE_DELETED, "/t/a/b".to_string()),
            ]
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_remove_watches_on_the_wire() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let b = s.client().await;
        b.create("/w", b"", &anyone()).await.unwrap();
        let mut r = s.raw().await;
        // Nothing registered.
        assert_eq!(
            r.remove_watches("/w", watcher_type::DATA).await.err,
            err::NO_WATCHER
        );
        assert_eq!(
            r.remove_watches("/w", watcher_type::ANY).await.err,
            err::NO_WATCHER
        );
        assert_eq!(
            r.check_watches("/w", watcher_type::DATA).await.err,
            err::NO_WATCHER
        );
        assert_eq!(
            r.check_watches("/nope", watcher_type::ANY).await.err,
            err::NO_WATCHER
        );

        // Data watch.
        assert_eq!(r.get_data("/w", true).await.err, err::OK);
        assert_eq!(r.check_watches("/w", watcher_type::DATA).await.err, err::OK);
        assert_eq!(r.check_watches("/w", watcher_type::ANY).await.err, err::OK);
        assert_eq!(
            r.check_watches("/w", watcher_type::CHILDREN).await.err,
            err::NO_WATCHER
        );
        assert_eq!(
            r.remove_watches("/w", watcher_type::CHILDREN).await.err,
            err::NO_WATCHER
        );
        // Another session cannot remove it (see the quirk test below for checkWatches).
        let mut other = s.raw().await;
        assert_eq!(
            other.remove_watches("/w", watcher_type::ANY).await.err,
            err::NO_WATCHER
        );
        assert_eq!(
            other.remove_watches("/w", watcher_type::DATA).await.err,
            err::NO_WATCHER
        );
        assert_eq!(
            r.check_watches("/w", watcher_type::DATA).await.err,
            err::OK,
            "still there"
        );
        let rep = r.remove_watches("/w", watcher_type::DATA).await;
        assert_eq!((rep.err, rep.body.len()), (err::OK, 0));
        assert_eq!(
            r.check_watches("/w", watcher_type::DATA).await.err,
            err::NO_WATCHER
        );
        b.set_data("/w", b"x", None).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![],
            "removed watch does not fire (and removal sends no event)"
        );

        // exists-watch on a missing node is a data watch.
        assert_eq!(r.exists("/missing", true).await.err, err::NO_NODE);
        assert_eq!(
            r.check_watches("/missing", watcher_type::DATA).await.err,
            err::OK
        );
        assert_eq!(
            r.remove_watches("/missing", watcher_type::ANY).await.err,
            err::OK
        );
        b.create("/missing", b"", &anyone()).await.unwrap();
        assert_eq!(r.events_for(QUIET).await, vec![]);

        // Child watch, removed with ANY.
        assert_eq!(r.get_children("/w", true).await.err, err::OK);
        assert_eq!(
            r.check_watches("/w", watcher_type::CHILDREN).await.err,
            err::OK
        );
        assert_eq!(r.remove_watches("/w", watcher_type::ANY).await.err, err::OK);
        b.create("/w/c", b"", &anyone()).await.unwrap();
        assert_eq!(r.events_for(QUIET).await, vec![]);

        // Removing only the data watch keeps the child watch.
        assert_eq!(r.get_data("/w", true).await.err, err::OK);
        assert_eq!(r.get_children("/w", true).await.err, err::OK);
        assert_eq!(
            r.remove_watches("/w", watcher_type::DATA).await.err,
            err::OK
        );
        b.set_data("/w", b"y", None).await.unwrap();
        b.delete("/w/c", None).await.unwrap();
        assert_eq!(
            r.events_for(QUIET).await,
            vec![(event::NODE_CHILDREN_CHANGED, "/w".to_string())]
        );

        // Persistent watches count for ANY and are removed with ANY. For DATA, ZooKeeper 3.9
        // looks for a standard watch only (NoWatcher); 3.8.0 matched any watch on the path.
        let rep = r
            .call(op::ADD_WATCH, &Enc::new().str("/w").i32(0).finish())
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
        assert_eq!(r.check_watches("/w", watcher_type::ANY).await.err, err::OK);
        let data_sees = if is_zookeeper() {
            err::OK
        } else {
            err::NO_WATCHER
        };
        assert_eq!(
            r.check_watches("/w", watcher_type::DATA).await.err,
            data_sees
        );
        assert_eq!(r.remove_watches("/w", watcher_type::ANY).await.err, err::OK);
        b.set_data("/w", b"z", None).await.unwrap();
        assert_eq!(r.events_for(QUIET).await, vec![]);
    })
    .await
}

/// checkWatches is per session, as in ZooKeeper 3.9 (release-3.9.5 `DataTree.containsWatcher`).
/// Debian's ZooKeeper 3.8.0 had a bug (its `WatchManager.containsWatcher` ignored the watcher):
/// there checkWatches succeeds if *any* session watches the path. corral follows 3.9; against
/// 3.8.0 (`CORRAL_TEST_TARGET=zookeeper`) this test asserts the old behaviour instead, so the
/// difference stays visible. See docs/decisions.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_watches_is_per_session() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut r = s.raw().await;
        let mut other = s.raw().await;
        let other_sees = if is_zookeeper() {
            err::OK
        } else {
            err::NO_WATCHER
        };
        assert_eq!(r.create("/w", b"", 0).await.err, err::OK);
        assert_eq!(r.get_data("/w", true).await.err, err::OK);
        assert_eq!(r.check_watches("/w", watcher_type::DATA).await.err, err::OK);
        assert_eq!(
            other.check_watches("/w", watcher_type::CHILDREN).await.err,
            err::NO_WATCHER
        );
        assert_eq!(
            other.check_watches("/w", watcher_type::DATA).await.err,
            other_sees
        );
        assert_eq!(
            other.check_watches("/w", watcher_type::ANY).await.err,
            other_sees
        );
        assert_eq!(r.get_children("/w", true).await.err, err::OK);
        assert_eq!(
            other.check_watches("/w", watcher_type::CHILDREN).await.err,
            other_sees
        );
        assert_eq!(
            other.remove_watches("/w", watcher_type::ANY).await.err,
            err::NO_WATCHER
        );
        assert_eq!(other.events_for(QUIET).await, vec![]);
    })
    .await
}

fn mntr_value(mntr: &str, key: &str) -> i64 {
    mntr.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}\t")))
        .unwrap_or_else(|| panic!("{key} missing in mntr:\n{mntr}"))
        .trim()
        .parse()
        .unwrap()
}

/// The crate removes server-side watches when watchers are removed or
/// dropped (removeWatches); the server's watch count reflects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)]
async fn crate_removes_server_watches() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        a.create("/w", b"", &anyone()).await.unwrap();
        let count = || async { mntr_value(&s.four_letter("mntr").await, "zk_watch_count") };
        assert_eq!(count().await, 0);
        let (_, _, dw) = a.get_and_watch_data("/w").await.unwrap();
        let (_, cw) = a.list_and_watch_children("/w").await.unwrap();
        assert_eq!(count().await, 2);
        dw.remove().await.unwrap();
        assert_eq!(count().await, 1);
        drop(cw);
        eventually(
            Duration::from_secs(5),
            "dropped watcher removed on the server",
            || async { count().await == 0 },
        )
        .await;
        let pw = a
            .watch("/w", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        assert!(count().await >= 1);
        pw.remove().await.unwrap();
        assert_eq!(count().await, 0);
    })
    .await
}

/// Watches are per session: a session closing removes its watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_session_drops_its_watches() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let b = s.client().await;
        b.create("/w", b"", &anyone()).await.unwrap();
        let mut r = s.raw().await;
        r.get_data("/w", true).await;
        r.get_children("/w", true).await;
        let mntr = s.four_letter("mntr").await;
        assert_eq!(mntr_value(&mntr, "zk_watch_count"), 2);
        r.close_session().await;
        eventually(
            Duration::from_secs(5),
            "watches gone after close",
            || async { mntr_value(&s.four_letter("mntr").await, "zk_watch_count") == 0 },
        )
        .await;
        let _ = RawConn::connect(&s.addr(), 30000).await.unwrap();
    })
    .await
}
