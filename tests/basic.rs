//! Node CRUD semantics: create variants, stat rules, sequential naming,
//! containers, TTL nodes, delete/setData/exists/getChildren, sync,
//! getEphemerals, getAllChildrenNumber, path validation, zxid accounting.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::raw::{self, err, op, Enc, OPEN_ACL};
use common::*;
use zk::{CreateMode, Error as ZkError};
use zookeeper_client as zk;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_returns_full_stat_and_data_round_trips() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let before = now_ms();
        let (st, seq) = c.create("/a", b"hello", &anyone()).await.unwrap();
        let after = now_ms();
        assert_eq!(seq.into_i64(), -1, "non-sequential create has no sequence");
        assert!(st.czxid > 0);
        assert_eq!(st.mzxid, st.czxid, "mzxid == czxid on create");
        assert_eq!(st.pzxid, st.czxid, "pzxid == czxid on create");
        assert_eq!(st.ctime, st.mtime, "ctime == mtime on create");
        assert!(
            st.ctime >= before - 2000 && st.ctime <= after + 2000,
            "ctime is wall-clock ms: {}",
            st.ctime
        );
        assert_eq!((st.version, st.cversion, st.aversion), (0, 0, 0));
        assert_eq!(st.ephemeral_owner, 0);
        assert_eq!(st.data_length, 5);
        assert_eq!(st.num_children, 0);

        let (data, st2) = c.get_data("/a").await.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(st2, st, "getData stat equals create2 stat");
        assert_eq!(c.check_stat("/a").await.unwrap(), Some(st));
        assert_eq!(
            c.check_stat("/missing").await.unwrap(),
            None,
            "exists on a missing node is not an error"
        );

        // Consecutive writes of one client get consecutive zxids.
        let (st_b, _) = c.create("/b", b"", &anyone()).await.unwrap();
        assert_eq!(st_b.czxid, st.czxid + 1);
        assert_eq!(st_b.data_length, 0);
        let (data_b, _) = c.get_data("/b").await.unwrap();
        assert!(data_b.is_empty());

        // Binary data round-trips byte-exactly.
        let blob: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let (st_c, _) = c.create("/bin", &blob, &anyone()).await.unwrap();
        assert_eq!(st_c.data_length, 10_000);
        assert_eq!(c.get_data("/bin").await.unwrap().0, blob);
    })
    .await
}

/// ZooKeeper assigns a zxid to every write *request*, including failed ones
/// (they are logged as error transactions) and session creation/closing;
/// reads never advance it. Reply headers carry the request's zxid for
/// writes and the last committed zxid for reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zxid_accounting_sessions_and_failed_writes_consume_zxids() {
    timed(60, async {
        let s = TestServer::start_default().await;
        assert!(
            s.four_letter("srvr").await.contains("Zxid: 0x0\n"),
            "fresh server starts at zxid 0"
        );

        let mut c = s.raw().await; // createSession -> zxid 1
        assert!(
            s.four_letter("srvr").await.contains("Zxid: 0x1\n"),
            "session creation is a transaction"
        );

        let r = c.create2("/z", b"", 0).await;
        assert_eq!((r.err, r.zxid), (err::OK, 2));
        let mut d = r.dec();
        assert_eq!(d.str(), "/z");
        assert_eq!(d.stat().czxid, 2);

        let r = c.create2("/z", b"", 0).await;
        assert_eq!(
            (r.err, r.zxid),
            (err::NODE_EXISTS, 3),
            "a failed create consumes a zxid"
        );

        let r = c.get_data("/z", false).await;
        assert_eq!(
            (r.err, r.zxid),
            (err::OK, 3),
            "reads carry the last zxid and do not advance it"
        );
        let r = c.get_data("/nope", false).await;
        assert_eq!((r.err, r.zxid), (err::NO_NODE, 3));

        let r = c.delete("/nope", -1).await;
        assert_eq!(
            (r.err, r.zxid),
            (err::NO_NODE, 4),
            "a failed delete consumes a zxid"
        );
        let r = c.set_data("/z", b"x", 7).await;
        assert_eq!(
            (r.err, r.zxid),
            (err::BAD_VERSION, 5),
            "a failed setData consumes a zxid"
        );

        let r = c.create2("/z2", b"", 0).await;
        assert_eq!((r.err, r.zxid), (err::OK, 6));

        let r = c.call(op::MULTI, &raw::multi_body(&[])).await.unwrap();
        assert_eq!(
            (r.err, r.zxid),
            (err::OK, 7),
            "even an empty multi is a transaction"
        );

        let r = c.close_session().await;
        assert_eq!(
            (r.err, r.zxid),
            (err::OK, 8),
            "closeSession is a transaction"
        );
        eventually(Duration::from_secs(5), "srvr shows zxid 0x8", || async {
            s.four_letter("srvr").await.contains("Zxid: 0x8\n")
        })
        .await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_errors() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        assert_eq!(
            c.create("/missing/child", b"", &anyone())
                .await
                .unwrap_err(),
            ZkError::NoNode
        );
        c.create("/p", b"", &anyone()).await.unwrap();
        assert_eq!(
            c.create("/p", b"", &anyone()).await.unwrap_err(),
            ZkError::NodeExists
        );
        assert_eq!(
            c.create("/p", b"", &mode(CreateMode::Ephemeral))
                .await
                .unwrap_err(),
            ZkError::NodeExists
        );

        c.create("/eph", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        for m in [
            CreateMode::Persistent,
            CreateMode::Ephemeral,
            CreateMode::PersistentSequential,
            CreateMode::Container,
        ] {
            assert_eq!(
                c.create("/eph/child", b"", &mode(m)).await.unwrap_err(),
                ZkError::NoChildrenForEphemerals,
                "mode {m:?} under an ephemeral parent"
            );
        }
        let (_, seq) = c
            .create("/eseq-", b"", &mode(CreateMode::EphemeralSequential))
            .await
            .unwrap();
        let eseq = format!("/eseq-{seq}");
        assert_eq!(
            c.create(&format!("{eseq}/x"), b"", &anyone())
                .await
                .unwrap_err(),
            ZkError::NoChildrenForEphemerals
        );
        // A failed create leaves the parent untouched.
        let st = c.check_stat("/p").await.unwrap().unwrap();
        assert_eq!((st.cversion, st.num_children), (0, 0));
    })
    .await
}

/// The sequential suffix is `%010d` of the parent's *internal* child-create
/// counter, which counts child creations only. The client-visible
/// `cversion` counts creations + deletions (ZooKeeper reports
/// `2 * creates - numChildren`), so after a child delete the next sequence
/// number is lower than the visible cversion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_names_count_child_creations() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/p", b"", &anyone()).await.unwrap();
        let cv = |c: &zk::Client| {
            let c = c.clone();
            async move { c.check_stat("/p").await.unwrap().unwrap().cversion }
        };

        let (_, seq) = c
            .create("/p/s-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 0);
        assert_eq!(seq.to_string(), "0000000000");
        assert_eq!(cv(&c).await, 1);

        c.create("/p/a", b"", &anyone()).await.unwrap();
        assert_eq!(cv(&c).await, 2);
        let (_, seq) = c
            .create("/p/s-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 2);
        assert_eq!(cv(&c).await, 3);

        // Deleting a child bumps the visible cversion but not the sequence.
        c.delete("/p/a", None).await.unwrap();
        assert_eq!(cv(&c).await, 4);
        let (st, seq) = c
            .create("/p/s-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(
            seq.into_i64(),
            3,
            "sequence = number of child creations so far, not the visible cversion"
        );
        assert_eq!(st.ephemeral_owner, 0);
        assert_eq!(cv(&c).await, 5);

        // Different prefixes share the parent's counter; ephemeral-sequential too.
        let (st, seq) = c
            .create("/p/e-", b"", &mode(CreateMode::EphemeralSequential))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 4);
        assert_eq!(st.ephemeral_owner, c.session_id().0);
        // A sequential path may end in '/': the name is just the number.
        let (_, seq) = c
            .create("/p/", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 5);
        // A failed create does not consume a sequence number.
        assert_eq!(
            c.create("/p/s-0000000000", b"", &anyone())
                .await
                .unwrap_err(),
            ZkError::NodeExists
        );
        let (_, seq) = c
            .create("/p/s-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 6);

        assert_eq!(
            sorted(c.list_children("/p").await.unwrap()),
            vec![
                "0000000005",
                "e-0000000004",
                "s-0000000000",
                "s-0000000002",
                "s-0000000003",
                "s-0000000006"
            ]
        );
        let st = c.check_stat("/p").await.unwrap().unwrap();
        assert_eq!((st.cversion, st.num_children), (8, 6));
    })
    .await
}

/// On a fresh server the root's visible cversion is -1 (its internal
/// counter is 0 and it has one child, /zookeeper), and sequential nodes
/// created directly under "/" start at 0000000000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_stat_and_sequential_under_root_on_fresh_server() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let (data, st) = c.get_data("/").await.unwrap();
        assert!(data.is_empty());
        assert_eq!(
            (
                st.czxid,
                st.mzxid,
                st.pzxid,
                st.ctime,
                st.mtime,
                st.version,
                st.cversion,
                st.aversion,
                st.ephemeral_owner
            ),
            (0, 0, 0, 0, 0, 0, -1, 0, 0)
        );
        assert_eq!((st.data_length, st.num_children), (0, 1));
        assert_eq!(c.list_children("/").await.unwrap(), vec!["zookeeper"]);

        let (st1, seq) = c
            .create("/s-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.to_string(), "0000000000");
        let (_, seq) = c
            .create("/s-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.to_string(), "0000000001");
        let root = c.check_stat("/").await.unwrap().unwrap();
        assert_eq!((root.cversion, root.num_children), (1, 3));
        assert_eq!(root.pzxid, st1.czxid + 1);
        assert_eq!(
            root.mzxid, 0,
            "child changes do not touch the parent's mzxid"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_owner_is_the_session_id() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = s.client().await;
        let b = s.client().await;
        assert_ne!(a.session_id(), b.session_id());
        let (st, _) = a
            .create("/e", b"x", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        assert_eq!(st.ephemeral_owner, a.session_id().0);
        let seen = b.check_stat("/e").await.unwrap().unwrap();
        assert_eq!(
            seen.ephemeral_owner,
            a.session_id().0,
            "other sessions see the owner"
        );
        // Anyone (with DELETE on the parent) may delete someone else's ephemeral.
        b.delete("/e", None).await.unwrap();
        assert_eq!(a.check_stat("/e").await.unwrap(), None);
    })
    .await
}

/// Containers: stat shows ephemeralOwner 0 to clients; they may have
/// children; the container manager deletes them once they had a child and
/// are empty again; never-used containers are kept. The node type comes
/// from the createContainer opcode (flags are ignored); create/create2 with
/// flags=4 creates an ordinary persistent node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_nodes() {
    timed(90, async {
        let s =
            TestServer::start(ServerOpts::new().cfg("znode.container.checkIntervalMs", 500)).await;
        let c = s.client().await;
        let (st, _) = c
            .create("/c", b"d", &mode(CreateMode::Container))
            .await
            .unwrap();
        assert_eq!(
            st.ephemeral_owner, 0,
            "containers report ephemeralOwner 0 to clients"
        );
        assert_eq!(st.version, 0);
        let (st2, _) = c
            .create("/unused", b"", &mode(CreateMode::Container))
            .await
            .unwrap();
        assert_eq!(st2.ephemeral_owner, 0);
        c.create("/c/x", b"", &anyone()).await.unwrap();
        c.create("/c/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();

        // Raw: opcode decides.
        let mut r = s.raw().await;
        let body = Enc::new()
            .str("/c3")
            .buf(Some(b""))
            .acls(OPEN_ACL)
            .i32(0)
            .finish();
        assert_eq!(
            r.call(op::CREATE_CONTAINER, &body).await.unwrap().err,
            err::OK
        );
        assert_eq!(r.create2("/c4", b"", 4).await.err, err::OK);
        for p in ["/c3", "/c4"] {
            assert_eq!(r.create(&format!("{p}/k"), b"", 0).await.err, err::OK);
            assert_eq!(r.delete(&format!("{p}/k"), -1).await.err, err::OK);
        }

        let (_, watcher) = c.check_and_watch_stat("/c").await.unwrap();
        // Still has children: survives several check intervals.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(c.check_stat("/c").await.unwrap().is_some());
        c.delete("/c/x", None).await.unwrap();
        c.delete("/c/e", None).await.unwrap();
        let ev = within(
            Duration::from_secs(10),
            "container deletion",
            watcher.changed(),
        )
        .await;
        assert_eq!(ev.event_type, zk::EventType::NodeDeleted);
        assert_eq!(ev.path, "/c");
        assert_eq!(
            c.check_stat("/c3").await.unwrap(),
            None,
            "createContainer with flags 0 is still a container"
        );
        assert!(
            c.check_stat("/c4").await.unwrap().is_some(),
            "create2 with flags 4 is a plain persistent node"
        );
        assert!(
            c.check_stat("/unused").await.unwrap().is_some(),
            "never-used containers are kept"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_nodes_when_extended_types_enabled() {
    timed(90, async {
        let s = TestServer::start(
            ServerOpts::new()
                .cfg("extendedTypesEnabled", "true")
                .cfg("znode.container.checkIntervalMs", 500),
        )
        .await;
        let c = s.client().await;
        let ttl = |ms: u64| {
            CreateMode::Persistent
                .with_acls(zk::Acls::anyone_all())
                .with_ttl(Duration::from_millis(ms))
        };
        let (st, seq) = c.create("/t", b"v", &ttl(800)).await.unwrap();
        assert_eq!(seq.into_i64(), -1);
        assert_eq!(
            st.ephemeral_owner, 0,
            "TTL nodes report ephemeralOwner 0 to clients"
        );
        assert_eq!((st.version, st.data_length), (0, 1));
        assert_eq!(st.pzxid, st.czxid);

        c.create("/seqs", b"", &anyone()).await.unwrap();
        let seq_ttl = CreateMode::PersistentSequential
            .with_acls(zk::Acls::anyone_all())
            .with_ttl(Duration::from_secs(600));
        let (st, seq) = c.create("/seqs/t-", b"", &seq_ttl).await.unwrap();
        assert_eq!(seq.into_i64(), 0);
        assert_eq!(st.ephemeral_owner, 0);

        // A TTL node with a child is not expired.
        c.create("/kept", b"", &ttl(300)).await.unwrap();
        c.create("/kept/child", b"", &anyone()).await.unwrap();

        // The crate refuses TTL on non-persistent modes client-side.
        let bad = CreateMode::Ephemeral
            .with_acls(zk::Acls::anyone_all())
            .with_ttl(Duration::from_secs(1));
        assert!(matches!(
            c.create("/x", b"", &bad).await.unwrap_err(),
            ZkError::BadArguments(_)
        ));

        // Raw: server-side validation of createTTL.
        let mut r = s.raw().await;
        for (flags, ttl_ms, want) in [
            (5, 0i64, err::BAD_ARGUMENTS),             // ttl must be > 0
            (5, -1, err::BAD_ARGUMENTS),               // negative ttl
            (5, 0x0100_0000_0000, err::BAD_ARGUMENTS), // over the 40-bit max
            (1, 1000, err::BAD_ARGUMENTS),             // ephemeral with ttl
            (0, 1000, err::BAD_ARGUMENTS),             // createTTL needs a TTL mode
            (4, 1000, err::BAD_ARGUMENTS),             // container with ttl
            (6, 1000, err::OK),                        // persistent-sequential-with-ttl
        ] {
            let body = Enc::new()
                .str("/raw-")
                .buf(Some(b""))
                .acls(OPEN_ACL)
                .i32(flags)
                .i64(ttl_ms)
                .finish();
            let rep = r.call(op::CREATE_TTL, &body).await.unwrap();
            assert_eq!(rep.err, want, "createTTL flags={flags} ttl={ttl_ms}");
        }
        assert_eq!(
            r.create2("/ttlmode", b"", 5).await.err,
            err::BAD_ARGUMENTS,
            "TTL mode via create2 (no ttl)"
        );

        let (_, w) = c.check_and_watch_stat("/t").await.unwrap();
        let ev = within(Duration::from_secs(15), "TTL expiry", w.changed()).await;
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (zk::EventType::NodeDeleted, "/t")
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(
            c.check_stat("/kept").await.unwrap().is_some(),
            "TTL node with children is kept"
        );
        assert!(
            c.check_stat("/seqs/t-0000000000").await.unwrap().is_some(),
            "long TTL not yet expired"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_nodes_rejected_when_extended_types_disabled() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let ttl = CreateMode::Persistent
            .with_acls(zk::Acls::anyone_all())
            .with_ttl(Duration::from_secs(5));
        assert_eq!(
            c.create("/t", b"", &ttl).await.unwrap_err(),
            ZkError::Unimplemented
        );
        assert_eq!(c.check_stat("/t").await.unwrap(), None);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_semantics() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        assert_eq!(
            c.delete("/missing", None).await.unwrap_err(),
            ZkError::NoNode
        );
        assert_eq!(
            c.delete("/missing", Some(3)).await.unwrap_err(),
            ZkError::NoNode
        );
        c.create("/d", b"", &anyone()).await.unwrap();
        c.set_data("/d", b"1", None).await.unwrap(); // version 1
        assert_eq!(
            c.delete("/d", Some(0)).await.unwrap_err(),
            ZkError::BadVersion
        );
        c.create("/d/child", b"", &anyone()).await.unwrap();
        // Version is checked before emptiness.
        assert_eq!(
            c.delete("/d", Some(5)).await.unwrap_err(),
            ZkError::BadVersion
        );
        assert_eq!(
            c.delete("/d", Some(1)).await.unwrap_err(),
            ZkError::NotEmpty
        );
        assert_eq!(c.delete("/d", None).await.unwrap_err(), ZkError::NotEmpty);
        c.delete("/d/child", Some(0)).await.unwrap();
        c.delete("/d", Some(1)).await.unwrap();
        assert_eq!(c.check_stat("/d").await.unwrap(), None);
        // Recreating gives a fresh node with version 0.
        let (st, _) = c.create("/d", b"", &anyone()).await.unwrap();
        assert_eq!(st.version, 0);
        c.delete("/d", None).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_semantics() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        assert_eq!(
            c.set_data("/missing", b"x", None).await.unwrap_err(),
            ZkError::NoNode
        );
        let (st0, _) = c.create("/n", b"abc", &anyone()).await.unwrap();
        c.create("/n/child", b"", &anyone()).await.unwrap();
        let parent = c.check_stat("/n").await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;

        let st1 = c.set_data("/n", b"hello world", Some(0)).await.unwrap();
        assert_eq!(st1.version, 1);
        assert_eq!(st1.data_length, 11);
        assert_eq!(st1.czxid, st0.czxid);
        assert_eq!(st1.ctime, st0.ctime);
        assert!(st1.mzxid > parent.pzxid, "mzxid is the setData zxid");
        assert!(st1.mtime >= st0.mtime);
        assert_eq!(st1.pzxid, parent.pzxid, "setData does not touch pzxid");
        assert_eq!(
            (st1.cversion, st1.num_children, st1.aversion),
            (parent.cversion, 1, 0)
        );
        assert_eq!(
            c.get_data("/n").await.unwrap(),
            (b"hello world".to_vec(), st1)
        );

        assert_eq!(
            c.set_data("/n", b"x", Some(0)).await.unwrap_err(),
            ZkError::BadVersion
        );
        assert_eq!(
            c.set_data("/n", b"x", Some(2)).await.unwrap_err(),
            ZkError::BadVersion
        );
        // Same data still bumps the version; -1 matches any version.
        let st2 = c.set_data("/n", b"hello world", None).await.unwrap();
        assert_eq!(st2.version, 2);
        assert_eq!(
            st2.mzxid,
            st1.mzxid + 3,
            "two failed setData in between consumed zxids"
        );
        let st3 = c.set_data("/n", b"", Some(2)).await.unwrap();
        assert_eq!((st3.version, st3.data_length), (3, 0));
        assert!(c.get_data("/n").await.unwrap().0.is_empty());
    })
    .await
}

/// Null data (jute buffer length -1) is kept distinct from empty data on
/// the wire: getData returns length -1 for a node created with null data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_data_is_distinct_from_empty_data_on_the_wire() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut r = s.raw().await;
        let body = Enc::new()
            .str("/null")
            .buf(None)
            .acls(OPEN_ACL)
            .i32(0)
            .finish();
        let rep = r.call(op::CREATE2, &body).await.unwrap();
        assert_eq!(rep.err, err::OK);
        let mut d = rep.dec();
        d.str();
        assert_eq!(d.stat().data_length, 0);
        assert_eq!(r.create("/empty", b"", 0).await.err, err::OK);

        let rep = r.get_data("/null", false).await;
        let mut d = rep.dec();
        assert_eq!(d.buf(), None, "null data comes back as length -1");
        assert_eq!(d.stat().data_length, 0);
        let rep = r.get_data("/empty", false).await;
        assert_eq!(
            rep.dec().buf(),
            Some(vec![]),
            "empty data comes back as length 0"
        );
        // setData with null data
        let rep = r
            .call(
                op::SET_DATA,
                &Enc::new().str("/empty").buf(None).i32(-1).finish(),
            )
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
        assert_eq!(r.get_data("/empty", false).await.dec().buf(), None);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_and_parent_stat_rules() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let (p0, _) = c.create("/p", b"pd", &anyone()).await.unwrap();
        assert_eq!(c.list_children("/p").await.unwrap(), Vec::<String>::new());

        let (a, _) = c.create("/p/a", b"", &anyone()).await.unwrap();
        let (b, _) = c.create("/p/b", b"", &anyone()).await.unwrap();
        let p = c.check_stat("/p").await.unwrap().unwrap();
        assert_eq!((p.cversion, p.num_children, p.pzxid), (2, 2, b.czxid));
        assert_eq!(
            (p.mzxid, p.version, p.mtime),
            (p0.mzxid, 0, p0.mtime),
            "child create leaves parent data stat alone"
        );
        assert!(a.czxid < b.czxid);

        // Child data changes do not affect the parent.
        c.set_data("/p/a", b"zz", None).await.unwrap();
        assert_eq!(c.check_stat("/p").await.unwrap().unwrap(), p);

        // Grandchildren do not affect the grandparent.
        c.create("/p/a/g", b"", &anyone()).await.unwrap();
        assert_eq!(c.check_stat("/p").await.unwrap().unwrap(), p);

        // Delete: cversion+1 and pzxid = the delete's zxid (read via raw reply).
        let mut r = s.raw().await;
        let rep = r.delete("/p/b", -1).await;
        assert_eq!(rep.err, err::OK);
        let p2 = c.check_stat("/p").await.unwrap().unwrap();
        assert_eq!((p2.cversion, p2.num_children, p2.pzxid), (3, 1, rep.zxid));
        assert_eq!(p2.mzxid, p0.mzxid);

        // A failed child create leaves the parent alone.
        assert_eq!(
            c.create("/p/a", b"", &anyone()).await.unwrap_err(),
            ZkError::NodeExists
        );
        assert_eq!(c.check_stat("/p").await.unwrap().unwrap(), p2);

        let (names, st) = c.get_children("/p").await.unwrap();
        assert_eq!(names, vec!["a"]);
        assert_eq!(st, p2, "getChildren2 returns the parent's stat");
        assert_eq!(
            c.get_children("/missing").await.unwrap_err(),
            ZkError::NoNode
        );
        assert_eq!(
            c.list_children("/missing").await.unwrap_err(),
            ZkError::NoNode
        );

        for i in 0..20 {
            c.create(&format!("/many-{i:02}"), b"", &anyone())
                .await
                .unwrap();
        }
        let mut expect: Vec<String> = (0..20).map(|i| format!("many-{i:02}")).collect();
        expect.push("p".into());
        expect.push("zookeeper".into());
        expect.sort();
        assert_eq!(
            sorted(c.list_children("/").await.unwrap()),
            expect,
            "names are relative"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_nodes() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        assert_eq!(
            sorted(c.list_children("/zookeeper").await.unwrap()),
            vec!["config", "quota"]
        );
        let (cfg, _) = c.get_config().await.unwrap();
        assert!(cfg.is_empty(), "standalone /zookeeper/config is empty");
        let (acl, _) = c.get_acl("/zookeeper/config").await.unwrap();
        assert_eq!(
            acl,
            vec![zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())]
        );

        let mut r = s.raw().await;
        for p in ["/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            assert_eq!(r.delete(p, -1).await.err, err::BAD_ARGUMENTS, "delete {p}");
        }
        assert_eq!(
            r.set_data("/zookeeper/config", b"x", -1).await.err,
            err::NO_AUTH
        );
        assert_eq!(
            r.create("/zookeeper/config/x", b"", 0).await.err,
            err::NO_AUTH
        );
        assert_eq!(r.create("/zookeeper", b"", 0).await.err, err::NODE_EXISTS);
        assert_eq!(r.create("/zookeeper/x", b"", 0).await.err, err::OK);
        assert_eq!(
            r.set_data("/", b"rootdata", -1).await.err,
            err::OK,
            "root data is writable"
        );
        assert_eq!(c.get_data("/").await.unwrap().0, b"rootdata");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_succeeds_for_any_path() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.sync("/").await.unwrap();
        c.sync("/does/not/exist").await.unwrap();
        let mut r = s.raw().await;
        let rep = r
            .call(op::SYNC, &Enc::new().str("/nope").finish())
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
        assert_eq!(rep.dec().str(), "/nope", "sync echoes the path");
    })
    .await
}

/// getEphemerals filters the session's ephemerals by *string prefix*.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ephemerals_by_prefix() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let other = s.client().await;
        c.create("/dir", b"", &anyone()).await.unwrap();
        c.create("/eph-a", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        c.create("/eph-b", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        c.create("/dir/eph-c", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        c.create("/eph-p", b"", &anyone()).await.unwrap();
        other
            .create("/eph-other", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();

        assert_eq!(
            sorted(c.list_ephemerals("/").await.unwrap()),
            vec!["/dir/eph-c", "/eph-a", "/eph-b"]
        );
        assert_eq!(
            sorted(c.list_ephemerals("/eph").await.unwrap()),
            vec!["/eph-a", "/eph-b"]
        );
        assert_eq!(c.list_ephemerals("/dir").await.unwrap(), vec!["/dir/eph-c"]);
        assert_eq!(c.list_ephemerals("/eph-a").await.unwrap(), vec!["/eph-a"]);
        assert_eq!(
            c.list_ephemerals("/nothing").await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            other.list_ephemerals("/").await.unwrap(),
            vec!["/eph-other"]
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_all_children_number() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        // /zookeeper, /zookeeper/config, /zookeeper/quota
        assert_eq!(c.count_descendants_number("/").await.unwrap(), 3);
        for p in ["/a", "/a/b", "/a/b/c", "/a/d", "/ab"] {
            c.create(p, b"", &anyone()).await.unwrap();
        }
        assert_eq!(
            c.count_descendants_number("/a").await.unwrap(),
            3,
            "descendants only, /ab is not under /a"
        );
        assert_eq!(c.count_descendants_number("/a/b/c").await.unwrap(), 0);
        assert_eq!(c.count_descendants_number("/").await.unwrap(), 8);
        assert_eq!(c.count_descendants_number("/zookeeper").await.unwrap(), 2);
        assert_eq!(
            c.count_descendants_number("/missing").await.unwrap_err(),
            ZkError::NoNode
        );
    })
    .await
}

/// These invalid paths never reach the server: the crate rejects them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_path_validation_in_the_crate() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        for p in [
            "",
            "a",
            "/a/",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/a\u{1}b",
            "/a\u{fff0}",
        ] {
            assert!(
                matches!(
                    c.create(p, b"", &anyone()).await.unwrap_err(),
                    ZkError::BadArguments(_)
                ),
                "create {p:?}"
            );
            assert!(
                matches!(c.get_data(p).await.unwrap_err(), ZkError::BadArguments(_)),
                "get {p:?}"
            );
        }
        assert!(matches!(
            c.create("/", b"", &anyone()).await.unwrap_err(),
            ZkError::BadArguments(_)
        ));
        assert!(matches!(
            c.delete("/", None).await.unwrap_err(),
            ZkError::BadArguments(_)
        ));
        let empty_acl = CreateMode::Persistent.with_acls(zk::Acls::new(&[]));
        assert_eq!(
            c.create("/x", b"", &empty_acl).await.unwrap_err(),
            ZkError::InvalidAcl
        );
        // Nothing above reached the server as a write.
        assert!(s.four_letter("srvr").await.contains("Zxid: 0x1\n"));
    })
    .await
}

/// What the server itself does with invalid paths (raw protocol). Writes
/// validate; reads just look the path up (and "" resolves to the root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_path_validation() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut r = s.raw().await;
        assert_eq!(r.create("/a", b"", 0).await.err, err::OK);
        // create: parent lookup happens first, then full-path validation.
        for (p, want) in [
            ("/a/", err::BAD_ARGUMENTS),
            ("/a/.", err::BAD_ARGUMENTS),
            ("/a/..", err::BAD_ARGUMENTS),
            ("/.", err::BAD_ARGUMENTS),
            ("/..", err::BAD_ARGUMENTS),
            ("a", err::BAD_ARGUMENTS),
            ("", err::BAD_ARGUMENTS),
            ("/a\u{1}", err::BAD_ARGUMENTS),
            ("/\u{f000}", err::BAD_ARGUMENTS),
            ("/missing/", err::NO_NODE),
            ("/a//b", err::NO_NODE),
            ("/a/./b", err::NO_NODE),
        ] {
            assert_eq!(r.create(p, b"", 0).await.err, want, "create {p:?}");
        }
        for p in ["/a/", "a", "/a//b", "/a/."] {
            assert_eq!(
                r.get_data(p, false).await.err,
                err::NO_NODE,
                "getData {p:?}"
            );
            assert_eq!(r.exists(p, false).await.err, err::NO_NODE, "exists {p:?}");
            assert_eq!(
                r.get_children(p, false).await.err,
                err::NO_NODE,
                "getChildren {p:?}"
            );
            assert_eq!(
                r.set_data(p, b"", -1).await.err,
                err::BAD_ARGUMENTS,
                "setData {p:?}"
            );
        }
        assert_eq!(r.set_data("", b"", -1).await.err, err::BAD_ARGUMENTS);
        for (p, want) in [
            ("a", err::BAD_ARGUMENTS),
            ("", err::BAD_ARGUMENTS),
            ("/", err::BAD_ARGUMENTS),
            ("/a/", err::NO_NODE),
            ("/a//b", err::NO_NODE),
        ] {
            assert_eq!(r.delete(p, -1).await.err, want, "delete {p:?}");
        }
        // The empty path reads as the root.
        let rep = r.exists("", false).await;
        assert_eq!(rep.err, err::OK);
        assert_eq!(rep.dec().stat().num_children, 2);
        let rep = r.get_children("", false).await;
        assert_eq!(rep.err, err::OK);
        let mut names = rep.dec().strs();
        names.sort();
        assert_eq!(names, vec!["a", "zookeeper"]);
        assert!(
            s.client().await.check_stat("/a").await.unwrap().is_some(),
            "server still fine"
        );
    })
    .await
}

/// An unknown opcode gets an Unimplemented reply (xid echoed) and the
/// server then closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_is_unimplemented_and_closes() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut r = s.raw().await;
        let xid = r.send(999, &Enc::new().str("/").finish()).await.unwrap();
        let rep = r.recv().await.unwrap();
        assert_eq!((rep.xid, rep.err), (xid, err::UNIMPLEMENTED));
        let (_, closed) = read_until_closed(&mut r.stream, Duration::from_secs(5)).await;
        assert!(closed, "connection closed after an unknown opcode");
        s.client().await.sync("/").await.unwrap();
    })
    .await
}

/// Dynamic reconfiguration is disabled in standalone mode: ReconfigDisabled
/// (-123); like any failed write it still consumes a zxid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_is_disabled() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let update = zk::EnsembleUpdate::New {
            ensemble: ["server.1=127.0.0.1:2888:3888;2181"].into_iter(),
        };
        assert_eq!(
            c.update_ensemble(update, None).await.unwrap_err(),
            ZkError::ReconfigDisabled
        );
        let mut r = s.raw().await;
        let z = r.get_data("/", false).await.zxid;
        let body = Enc::new()
            .str("")
            .str("")
            .str("server.1=127.0.0.1:2888:3888;2181")
            .i64(-1)
            .finish();
        let rep = r.call(op::RECONFIG, &body).await.unwrap();
        assert_eq!((rep.err, rep.zxid), (err::RECONFIG_DISABLED, z + 1));
    })
    .await
}

/// A server without SASL configured answers a SASL token with OK and a null token (ZooKeeper's
/// `processSasl` with no SASL server), and the session goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_without_sasl_configured() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut r = s.raw().await;
        let rep = r
            .call(op::SASL, &Enc::new().buf(Some(b"token")).finish())
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
        assert_eq!(rep.body, (-1i32).to_be_bytes().to_vec(), "null token");
        assert_eq!(r.exists("/", false).await.err, err::OK);
    })
    .await
}

/// `corral.zabCore=dedicated`: the write core runs on an executor (and CPU) of its own and the
/// shards on the others. Writes from several clients commit, every client reads all of them,
/// and they survive kill -9. (ZooKeeper ignores the key, so the test holds there too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_core_on_its_own_executor_commits_and_recovers() {
    timed(60, async {
        let mut s = TestServer::start(ServerOpts::new().cfg("corral.zabCore", "dedicated")).await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(s.client().await);
        }
        for (i, c) in clients.iter().enumerate() {
            for j in 0..25 {
                c.create(&format!("/n{i}-{j}"), b"x", &anyone())
                    .await
                    .unwrap();
            }
        }
        for c in &clients {
            c.sync("/").await.unwrap();
            assert_eq!(c.list_children("/").await.unwrap().len(), 101);
        }
        s.crash_restart().await;
        let c = s.client().await;
        assert_eq!(c.list_children("/").await.unwrap().len(), 101);
    })
    .await;
}
