//! Sessions: timeout negotiation, expiry, re-attachment, close, passwords,
//! connection loss and watch re-registration (SetWatches).

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::raw::{self, err, op, Enc, RawConn};
use common::*;
use tokio::io::AsyncWriteExt;
use zk::{CreateMode, EventType, SessionState};
use zookeeper_client as zk;

async fn wait_state(w: &mut zk::StateWatcher, want: SessionState, d: Duration) {
    let deadline = Instant::now() + d;
    loop {
        if w.peek_state() == want {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "state {want:?} not reached within {d:?}, last {:?}",
                w.peek_state()
            );
        }
        let _ = tokio::time::timeout(left, w.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiated_timeout_is_clamped_to_default_bounds() {
    timed(60, async {
        // Defaults: min = 2 * tickTime, max = 20 * tickTime.
        let s = TestServer::start_default().await;
        for (req, want) in [
            (1_000u64, 4_000u64),
            (4_000, 4_000),
            (10_000, 10_000),
            (40_000, 40_000),
            (100_000, 40_000),
        ] {
            let c = s.client_with_timeout(Duration::from_millis(req)).await;
            assert_eq!(
                c.session_timeout(),
                Duration::from_millis(want),
                "requested {req}ms"
            );
        }
        for (req, want) in [
            (0, 4000),
            (-5, 4000),
            (1, 4000),
            (3999, 4000),
            (40_001, 40_000),
        ] {
            let (_s, resp) = raw::handshake(&s.addr(), req, 0, &[0u8; 16]).await.unwrap();
            assert_eq!(resp.timeout, want, "raw requested {req}ms");
            assert_ne!(resp.session_id, 0);
            assert_eq!(resp.password.len(), 16);
            assert_eq!(resp.read_only, Some(false));
            assert_eq!(resp.protocol_version, 0);
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiated_timeout_respects_configured_bounds() {
    timed(60, async {
        let s = TestServer::start(
            ServerOpts::new()
                .tick_time(1000)
                .cfg("minSessionTimeout", 3000)
                .cfg("maxSessionTimeout", 5000),
        )
        .await;
        for (req, want) in [(1_000u64, 3_000u64), (4_000, 4_000), (60_000, 5_000)] {
            let c = s.client_with_timeout(Duration::from_millis(req)).await;
            assert_eq!(
                c.session_timeout(),
                Duration::from_millis(want),
                "requested {req}ms"
            );
        }
        let conf = s.four_letter("conf").await;
        assert!(conf.contains("minSessionTimeout=3000\n"), "{conf}");
        assert!(conf.contains("maxSessionTimeout=5000\n"), "{conf}");
        assert!(conf.contains("tickTime=1000\n"), "{conf}");
    })
    .await
}

fn short_session_opts() -> ServerOpts {
    ServerOpts::new()
        .tick_time(250)
        .cfg("minSessionTimeout", 1000)
        .cfg("maxSessionTimeout", 2000)
}

/// A client whose traffic stops (frozen proxy) is expired by the server:
/// its ephemerals are deleted, other sessions' watches fire, and the
/// session can no longer be resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_deletes_ephemerals_and_fires_watches() {
    timed(90, async {
        let s = TestServer::start(short_session_opts()).await;
        let proxy = Proxy::start(s.socket_addr()).await;
        let a = connect_with(
            &proxy.addr(),
            zk::Client::connector().with_session_timeout(Duration::from_millis(1000)),
        )
        .await;
        assert_eq!(a.session_timeout(), Duration::from_millis(1000));
        let mut a_state = a.state_watcher();
        let a_session = a.session().clone();
        a.create("/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        a.create("/e-seq-", b"", &mode(CreateMode::EphemeralSequential))
            .await
            .unwrap();
        a.create("/p", b"", &anyone()).await.unwrap();

        let b = s.client().await;
        let (_, ew) = b.check_and_watch_stat("/e").await.unwrap();
        let (_, _, dw) = b.get_and_watch_data("/e").await.unwrap();
        let (kids, cw) = b.list_and_watch_children("/").await.unwrap();
        assert!(kids.contains(&"e".to_string()));

        let t0 = Instant::now();
        proxy.freeze();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            b.check_stat("/e").await.unwrap().is_some(),
            "not expired after 300ms of a 1000ms session"
        );

        let e = within(
            Duration::from_secs(15),
            "ephemeral deleted by expiry",
            ew.changed(),
        )
        .await;
        let elapsed = t0.elapsed();
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/e")
        );
        assert!(
            elapsed >= Duration::from_millis(500),
            "expired too early: {elapsed:?}"
        );
        let e = within(Duration::from_secs(5), "data watch", dw.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/e")
        );
        let e = within(Duration::from_secs(5), "child watch on /", cw.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, "/")
        );
        let mut kids = b.list_children("/").await.unwrap();
        kids.sort();
        assert_eq!(
            kids,
            vec!["p", "zookeeper"],
            "all ephemerals of the session are gone"
        );
        assert!(s
            .four_letter("dump")
            .await
            .contains("Sessions with Ephemerals (0):"));

        proxy.unfreeze();
        wait_state(&mut a_state, SessionState::Expired, Duration::from_secs(15)).await;
        assert_eq!(
            a.check_stat("/p").await.unwrap_err(),
            zk::Error::SessionExpired
        );

        let err = zk::Client::connector()
            .with_session(a_session)
            .connect(&s.addr())
            .await
            .unwrap_err();
        assert_eq!(err, zk::Error::SessionExpired);
    })
    .await
}

/// Raw session that simply stops sending (no pings) expires; re-attaching
/// to it afterwards gets the "expired" connect response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_raw_session_expires() {
    timed(60, async {
        let s = TestServer::start(short_session_opts()).await;
        let mut r = RawConn::connect(&s.addr(), 1000).await.unwrap();
        assert_eq!(r.timeout, 1000);
        assert_eq!(r.create("/idle", b"", 1).await.err, err::OK);
        let (sid, pw) = (r.session_id, r.password.clone());
        let b = s.client().await;
        let (_, w) = b.check_and_watch_stat("/idle").await.unwrap();
        let e = within(Duration::from_secs(10), "expiry", w.changed()).await;
        assert_eq!(e.event_type, EventType::NodeDeleted);
        // The server closes the expired session's connection.
        let (_, closed) = read_until_closed(&mut r.stream, Duration::from_secs(5)).await;
        assert!(closed, "connection of an expired session is closed");
        let (mut s2, resp) = raw::handshake(&s.addr(), 1000, sid, &pw).await.unwrap();
        assert_eq!((resp.session_id, resp.timeout), (0, 0));
        assert_eq!(resp.password, vec![0u8; 16]);
        let (_, closed) = read_until_closed(&mut s2, Duration::from_secs(5)).await;
        assert!(closed);
    })
    .await
}

/// Pings keep an otherwise idle session alive well past its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_a_session_alive() {
    timed(60, async {
        let s = TestServer::start(short_session_opts()).await;
        let mut r = RawConn::connect(&s.addr(), 1000).await.unwrap();
        assert_eq!(r.create("/alive", b"", 1).await.err, err::OK);
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let p = r.ping().await.unwrap();
            assert_eq!((p.xid, p.err), (-2, 0));
        }
        assert_eq!(r.exists("/alive", false).await.err, err::OK);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattaching_with_session_id_and_password_keeps_the_session() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let a = connect_with(&s.addr(), zk::Client::connector().with_detached()).await;
        a.create("/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let sid = a.session_id();
        let info = a.session().clone();
        let timeout = a.session_timeout();
        drop(a); // detached: the session is not closed
        tokio::time::sleep(Duration::from_millis(300)).await;

        let b = connect_with(&s.addr(), zk::Client::connector().with_session(info)).await;
        assert_eq!(b.session_id(), sid);
        assert_eq!(b.session_timeout(), timeout);
        let st = b.check_stat("/e").await.unwrap().unwrap();
        assert_eq!(
            st.ephemeral_owner, sid.0,
            "ephemerals survive re-attachment"
        );
        assert_eq!(b.list_ephemerals("/").await.unwrap(), vec!["/e"]);
        b.create("/e2", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        assert_eq!(
            b.check_stat("/e2").await.unwrap().unwrap().ephemeral_owner,
            sid.0
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_or_unknown_session_is_expired() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let r = RawConn::connect(&s.addr(), 30_000).await.unwrap();
        let mut bad = r.password.clone();
        bad[0] ^= 0xff;
        for (sid, pw) in [(r.session_id, bad), (0x1234_5678, vec![0u8; 16])] {
            let (mut st, resp) = raw::handshake(&s.addr(), 30_000, sid, &pw).await.unwrap();
            assert_eq!(resp.session_id, 0);
            assert_eq!(resp.timeout, 0);
            assert_eq!(resp.password, vec![0u8; 16]);
            assert_eq!(resp.read_only, Some(false));
            let (_, closed) = read_until_closed(&mut st, Duration::from_secs(5)).await;
            assert!(closed, "server closes after refusing the session");
        }
        // The real session is unaffected by the failed attempt.
        let (_, resp) = raw::handshake(&s.addr(), 30_000, r.session_id, &r.password)
            .await
            .unwrap();
        assert_eq!((resp.session_id, resp.timeout), (r.session_id, 30_000));
        assert_eq!(
            resp.password, r.password,
            "re-attach returns the same password"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_removes_ephemerals_immediately() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let b = s.client().await;
        let mut r = s.raw().await;
        assert_eq!(r.create("/e1", b"", 1).await.err, err::OK);
        assert_eq!(r.create("/e2-", b"", 3).await.err, err::OK);
        assert_eq!(r.create("/p", b"", 0).await.err, err::OK);
        let (_, w) = b.check_and_watch_stat("/e1").await.unwrap();
        let rep = r.close_session().await;
        assert_eq!(rep.err, err::OK);
        // Visible to everyone as soon as the close is acknowledged.
        assert_eq!(b.check_stat("/e1").await.unwrap(), None);
        let mut kids = b.list_children("/").await.unwrap();
        kids.sort();
        assert_eq!(kids, vec!["p", "zookeeper"]);
        let e = within(
            Duration::from_secs(5),
            "watch on closed session's ephemeral",
            w.changed(),
        )
        .await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/e1")
        );
        let (_, closed) = read_until_closed(&mut r.stream, Duration::from_secs(5)).await;
        assert!(closed, "server closes the connection after closeSession");

        // Dropping a (non-detached) crate client closes its session.
        let a = s.client().await;
        a.create("/ae", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let info = a.session().clone();
        let (_, w) = b.check_and_watch_stat("/ae").await.unwrap();
        drop(a);
        let e = within(
            Duration::from_secs(3),
            "ephemeral removed on close",
            w.changed(),
        )
        .await;
        assert_eq!(e.event_type, EventType::NodeDeleted);
        let err = zk::Client::connector()
            .with_session(info)
            .connect(&s.addr())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            zk::Error::SessionExpired,
            "a closed session cannot be resumed"
        );
    })
    .await
}

/// Old clients send no readOnly flag: the response then has none either.
/// A client claiming a zxid newer than the server's is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_request_variants() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut t = raw_tcp(&s.addr()).await;
        let old = Enc::new()
            .i32(0)
            .i64(0)
            .i32(30_000)
            .i64(0)
            .buf(Some(&[0u8; 16]))
            .finish();
        t.write_all(&raw::frame(&old)).await.unwrap();
        let body = within(
            Duration::from_secs(5),
            "connect response",
            raw::read_frame(&mut t),
        )
        .await
        .unwrap();
        assert_eq!(body.len(), 36, "no readOnly byte for an old-style request");
        let resp = raw::parse_connect_response(&body);
        assert_ne!(resp.session_id, 0);
        assert_eq!(resp.read_only, None);

        let mut t = raw_tcp(&s.addr()).await;
        t.write_all(&raw::frame(&raw::connect_request(
            0, 30_000, 0, &[0u8; 16], false,
        )))
        .await
        .unwrap();
        let body = within(
            Duration::from_secs(5),
            "connect response",
            raw::read_frame(&mut t),
        )
        .await
        .unwrap();
        assert_eq!(body.len(), 37);

        // lastZxidSeen ahead of the server: closed without a response.
        let mut t = raw_tcp(&s.addr()).await;
        t.write_all(&raw::frame(&raw::connect_request(
            1_000_000, 30_000, 0, &[0u8; 16], false,
        )))
        .await
        .unwrap();
        let (got, closed) = read_until_closed(&mut t, Duration::from_secs(5)).await;
        assert!(closed && got.is_empty(), "got {got:?}");

        // Pings work on a fresh raw session and do not advance the zxid.
        let mut r = s.raw().await;
        let z = r.get_data("/", false).await.zxid;
        let p = r.ping().await.unwrap();
        assert_eq!((p.xid, p.err), (-2, err::OK));
        assert_eq!(r.get_data("/", false).await.zxid, z);
    })
    .await
}

/// Losing the TCP connection does not lose the session: the crate
/// reconnects with the same id, and ephemerals stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_survives_connection_loss() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let proxy = Proxy::start(s.socket_addr()).await;
        let a = connect_with(&proxy.addr(), zk::Client::connector()).await;
        let sid = a.session_id();
        let mut st = a.state_watcher();
        a.create("/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        proxy.sever();
        wait_state(&mut st, SessionState::Disconnected, Duration::from_secs(10)).await;
        wait_state(
            &mut st,
            SessionState::SyncConnected,
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(a.session_id(), sid);
        let stat = a.check_stat("/e").await.unwrap().unwrap();
        assert_eq!(stat.ephemeral_owner, sid.0);
        a.create("/after", b"", &anyone()).await.unwrap();
    })
    .await
}

/// After a reconnect the client re-registers its watches (SetWatches with
/// its last zxid); changes that happened while it was away fire at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_restored_after_reconnect() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let proxy = Proxy::start(s.socket_addr()).await;
        let a = connect_with(&proxy.addr(), zk::Client::connector()).await;
        let b = s.client().await;
        b.create("/d", b"0", &anyone()).await.unwrap();
        b.create("/gone", b"", &anyone()).await.unwrap();
        b.create("/kids", b"", &anyone()).await.unwrap();
        b.create("/same", b"", &anyone()).await.unwrap();
        let (_, _, dw) = a.get_and_watch_data("/d").await.unwrap();
        let (_, gw) = a.check_and_watch_stat("/gone").await.unwrap();
        let (_, cw) = a.list_and_watch_children("/kids").await.unwrap();
        let (_, nw) = a.check_and_watch_stat("/born").await.unwrap();
        let (_, _, sw) = a.get_and_watch_data("/same").await.unwrap();
        let pw = a
            .watch("/pers", zk::AddWatchMode::Persistent)
            .await
            .unwrap();
        let mut st = a.state_watcher();

        proxy.freeze();
        proxy.sever();
        wait_state(&mut st, SessionState::Disconnected, Duration::from_secs(10)).await;
        b.set_data("/d", b"1", None).await.unwrap();
        b.delete("/gone", None).await.unwrap();
        b.create("/kids/k", b"", &anyone()).await.unwrap();
        b.create("/born", b"", &anyone()).await.unwrap();
        proxy.unfreeze();
        wait_state(
            &mut st,
            SessionState::SyncConnected,
            Duration::from_secs(15),
        )
        .await;

        let e = within(Duration::from_secs(5), "data", dw.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDataChanged, "/d")
        );
        let e = within(Duration::from_secs(5), "deleted", gw.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/gone")
        );
        let e = within(Duration::from_secs(5), "children", cw.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, "/kids")
        );
        let e = within(Duration::from_secs(5), "created", nw.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeCreated, "/born")
        );

        // Unchanged node: its watch is re-armed, not fired.
        b.set_data("/same", b"x", None).await.unwrap();
        let e = within(Duration::from_secs(5), "re-armed watch", sw.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDataChanged, "/same")
        );
        // NOTE: zookeeper-client 0.11.2 does not re-send persistent watches
        // on reconnect (its resend_watches never escalates to SetWatches2), so
        // `pw` is dead here; SetWatches2 is covered on the wire below.
        drop(pw);
    })
    .await
}

/// Raw SetWatches: the server fires immediately for watches whose node
/// changed after relativeZxid, and re-arms the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_watches_fires_for_changes_after_relative_zxid() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let b = s.client().await;
        b.create("/d", b"", &anyone()).await.unwrap();
        b.create("/c", b"", &anyone()).await.unwrap();
        b.create("/x", b"", &anyone()).await.unwrap();
        b.create("/keep", b"", &anyone()).await.unwrap();
        let mut r = s.raw().await;
        let z = r.get_data("/", false).await.zxid;
        b.set_data("/d", b"1", None).await.unwrap();
        b.create("/c/k", b"", &anyone()).await.unwrap();
        b.delete("/x", None).await.unwrap();
        b.create("/new", b"", &anyone()).await.unwrap();
        // SetWatches(relativeZxid, dataWatches, existWatches, childWatches), xid -8.
        let body = Enc::new()
            .i64(z)
            .strs(&["/d", "/x", "/keep"])
            .strs(&["/new", "/absent"])
            .strs(&["/c"])
            .finish();
        r.send_xid(-8, op::SET_WATCHES, &body).await.unwrap();
        let mut evs = r.events_for(Duration::from_millis(800)).await;
        let reply: Vec<_> = r.stash.drain(..).filter(|f| f.xid == -8).collect();
        assert_eq!(reply.len(), 1, "one SetWatches reply");
        assert_eq!(reply[0].err, err::OK);
        evs.sort();
        let mut want = vec![
            (raw::event::NODE_CREATED, "/new".to_string()),
            (raw::event::NODE_DELETED, "/x".to_string()),
            (raw::event::NODE_DATA_CHANGED, "/d".to_string()),
            (raw::event::NODE_CHILDREN_CHANGED, "/c".to_string()),
        ];
        want.sort();
        assert_eq!(evs, want);
        b.set_data("/keep", b"k", None).await.unwrap();
        b.create("/absent", b"", &anyone()).await.unwrap();
        let mut evs = r.events_for(Duration::from_millis(800)).await;
        evs.sort();
        assert_eq!(
            evs,
            vec![
                (raw::event::NODE_CREATED, "/absent".to_string()),
                (raw::event::NODE_DATA_CHANGED, "/keep".to_string())
            ]
        );
    })
    .await
}

/// Raw SetWatches2 (op 105, xid -8): also re-registers persistent and
/// persistent-recursive watches. Those are only re-added; changes made
/// while away are not replayed for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_watches2_restores_persistent_watches() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let b = s.client().await;
        b.create("/d", b"", &anyone()).await.unwrap();
        b.create("/pp", b"", &anyone()).await.unwrap();
        let mut r = s.raw().await;
        let z = r.get_data("/", false).await.zxid;
        b.set_data("/d", b"1", None).await.unwrap();
        b.set_data("/pp", b"1", None).await.unwrap();
        let body = Enc::new()
            .i64(z)
            .strs(&["/d"])
            .strs(&[])
            .strs(&[])
            .strs(&["/pp"])
            .strs(&["/rr"])
            .finish();
        r.send_xid(-8, op::SET_WATCHES2, &body).await.unwrap();
        let evs = r.events_for(Duration::from_millis(800)).await;
        assert_eq!(
            evs,
            vec![(raw::event::NODE_DATA_CHANGED, "/d".to_string())],
            "only the one-shot watch replays"
        );
        assert_eq!(
            r.stash
                .drain(..)
                .filter(|f| f.xid == -8 && f.err == 0)
                .count(),
            1
        );
        assert_eq!(
            r.check_watches("/pp", raw::watcher_type::ANY).await.err,
            err::OK
        );
        assert_eq!(
            r.check_watches("/rr", raw::watcher_type::ANY).await.err,
            err::OK
        );
        b.set_data("/pp", b"2", None).await.unwrap();
        b.set_data("/pp", b"3", None).await.unwrap();
        b.create("/rr", b"", &anyone()).await.unwrap();
        b.create("/rr/x", b"", &anyone()).await.unwrap();
        assert_eq!(
            r.events_for(Duration::from_millis(800)).await,
            vec![
                (raw::event::NODE_DATA_CHANGED, "/pp".to_string()),
                (raw::event::NODE_DATA_CHANGED, "/pp".to_string()),
                (raw::event::NODE_CREATED, "/rr".to_string()),
                (raw::event::NODE_CREATED, "/rr/x".to_string()),
            ]
        );
    })
    .await
}
