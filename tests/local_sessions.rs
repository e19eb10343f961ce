//! Local sessions (`localSessionsEnabled`, `localSessionsUpgradingEnabled`) in a 3-member
//! ensemble, driven by raw protocol clients so that pipelining, session ids and passwords are
//! exact: a local session lives only on the member that made it (unknown, hence expired,
//! elsewhere), is closed and expired there without a txn, may write persistent nodes, and
//! cannot own an ephemeral (EPHEMERALONLOCALSESSION) unless upgrading is on, when its first
//! ephemeral create makes it a global session that can move to another member.
//!
//! Validated against Apache ZooKeeper 3.8 (`CORRAL_TEST_TARGET=zookeeper`).

mod common;

use std::time::Duration;

use common::ensemble::{serial, Ensemble, EnsembleOpts, Mode};
use common::raw::{Enc, RawConn};
use common::timed;

const ELECT: Duration = Duration::from_secs(60);
const EPHEMERAL: i32 = 1;
const EPHEMERAL_SEQUENTIAL: i32 = 3;
const EPHEMERAL_ON_LOCAL_SESSION: i32 = -120;
const CREATE: i32 = 1;
const GET_DATA: i32 = 4;
const SET_DATA: i32 = 5;
const CLOSE_SESSION: i32 = -11;
/// tickTime 2000 in the harness: the smallest session timeout is two ticks.
const TIMEOUT_MS: i32 = 4000;

fn set_data_body(path: &str, data: &[u8]) -> Vec<u8> {
    Enc::new().str(path).buf(Some(data)).i32(-1).finish()
}

fn get_data_body(path: &str) -> Vec<u8> {
    Enc::new().str(path).bool(false).finish()
}

/// The next `n` replies to requests (notifications and pings skipped), in the order they came.
async fn replies(c: &mut RawConn, n: usize) -> Vec<common::raw::Reply> {
    let mut out = Vec::new();
    while out.len() < n {
        let r = c.recv().await.unwrap();
        if r.xid > 0 {
            out.push(r);
        }
    }
    out
}

/// Two followers of an ensemble whose leader is known.
async fn followers(ens: &Ensemble) -> (usize, usize) {
    let leader = ens.wait_leader(ELECT).await;
    let f: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &f {
        assert_eq!(ens.wait_serving(i, ELECT).await, Mode::Follower);
    }
    (f[0], f[1])
}

/// Reattaching `session` at `addr` is refused as expired.
async fn expired_at(addr: &str, c: &RawConn) -> bool {
    let (_, resp) = RawConn::reattach(addr, TIMEOUT_MS, c.session_id, &c.password)
        .await
        .expect("reattach");
    resp.session_id == 0 && resp.timeout == 0
}

/// The value of `key` in `mntr` of `addr`.
async fn mntr(addr: &str, key: &str) -> Option<String> {
    let text = common::four_letter(addr, "mntr").await;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t').map(str::to_string))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_session_lives_only_on_its_member() {
    let _serial = serial().await;
    timed(180, async {
        let opts = EnsembleOpts::voters(3).cfg("localSessionsEnabled", "true");
        let ens = Ensemble::start(opts).await;
        let (f, g) = followers(&ens).await;
        let mut a = RawConn::connect(&ens.addr(f), TIMEOUT_MS).await.unwrap();
        assert_eq!(
            mntr(&ens.addr(f), "zk_local_sessions").await.as_deref(),
            Some("1")
        );
        assert_eq!(
            mntr(&ens.addr(f), "zk_global_sessions").await.as_deref(),
            Some("0")
        );

        // It writes persistent nodes, which every member gets.
        assert_eq!(a.create("/ls", b"x", 0).await.err, 0);

        // Pipelined behind a write that goes to the leader, an ephemeral create is refused
        // in its turn: the replies come in order, each with its own xid.
        let x1 = a.send(SET_DATA, &set_data_body("/ls", b"y")).await.unwrap();
        let body = common::raw::create_body("/ls/e", b"", EPHEMERAL);
        let x2 = a.send(CREATE, &body).await.unwrap();
        let body = common::raw::create_body("/ls/s", b"", EPHEMERAL_SEQUENTIAL);
        let x3 = a.send(CREATE, &body).await.unwrap();
        let x4 = a.send(GET_DATA, &get_data_body("/ls")).await.unwrap();
        let replies = replies(&mut a, 4).await;
        let got: Vec<(i32, i32)> = replies.iter().map(|r| (r.xid, r.err)).collect();
        assert_eq!(
            got,
            vec![
                (x1, 0),
                (x2, EPHEMERAL_ON_LOCAL_SESSION),
                (x3, EPHEMERAL_ON_LOCAL_SESSION),
                (x4, 0)
            ]
        );
        assert_eq!(replies[3].dec().buf().as_deref(), Some(&b"y"[..]));

        // Another member does not know it: to a client it is expired.
        let mut other = RawConn::connect(&ens.addr(g), TIMEOUT_MS).await.unwrap();
        let r = other.call(GET_DATA, &get_data_body("/ls")).await.unwrap();
        assert_eq!((r.err, r.dec().buf().as_deref()), (0, Some(&b"y"[..])));
        assert!(expired_at(&ens.addr(g), &a).await, "a local session moved");

        // Its own member takes it back (the old connection closes).
        let (mut a2, resp) = RawConn::reattach(&ens.addr(f), TIMEOUT_MS, a.session_id, &a.password)
            .await
            .unwrap();
        assert_eq!(resp.session_id, a.session_id);
        assert_eq!(a2.create("/ls/p", b"", 0).await.err, 0);

        // Closed without a txn, it is gone.
        let r = a2.call(CLOSE_SESSION, &[]).await.unwrap();
        assert_eq!(r.err, 0);
        assert!(expired_at(&ens.addr(f), &a).await, "closed, yet reattached");

        // Left alone, it expires on its member.
        let b = RawConn::connect(&ens.addr(f), TIMEOUT_MS).await.unwrap();
        let (id, pw) = (b.session_id, b.password.clone());
        drop(b);
        tokio::time::sleep(Duration::from_millis(TIMEOUT_MS as u64 + 3000)).await;
        let (_, resp) = RawConn::reattach(&ens.addr(f), TIMEOUT_MS, id, &pw)
            .await
            .unwrap();
        assert_eq!((resp.session_id, resp.timeout), (0, 0), "not expired");
        drop(other);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_ephemeral_makes_a_local_session_global() {
    let _serial = serial().await;
    timed(180, async {
        let opts = EnsembleOpts::voters(3)
            .cfg("localSessionsEnabled", "true")
            .cfg("localSessionsUpgradingEnabled", "true");
        let ens = Ensemble::start(opts).await;
        let (f, g) = followers(&ens).await;
        let mut a = RawConn::connect(&ens.addr(f), TIMEOUT_MS).await.unwrap();
        assert_eq!(
            mntr(&ens.addr(f), "zk_local_sessions").await.as_deref(),
            Some("1")
        );
        assert_eq!(a.create("/up", b"", 0).await.err, 0);
        // Pipelined: the upgrade goes before the create, the read sees the node.
        let x1 = a
            .send(CREATE, &common::raw::create_body("/up/e", b"", EPHEMERAL))
            .await
            .unwrap();
        let x2 = a.send(GET_DATA, &get_data_body("/up/e")).await.unwrap();
        let replies = replies(&mut a, 2).await;
        assert_eq!((replies[0].xid, replies[0].err), (x1, 0));
        assert_eq!((replies[1].xid, replies[1].err), (x2, 0));
        let mut d = replies[1].dec();
        let _ = d.buf();
        assert_eq!(d.stat().ephemeral_owner, a.session_id);
        assert_eq!(
            mntr(&ens.addr(f), "zk_local_sessions").await.as_deref(),
            Some("0")
        );
        assert_eq!(
            mntr(&ens.addr(f), "zk_global_sessions").await.as_deref(),
            Some("1")
        );

        // Global now: it moves to another member with its ephemeral.
        let (mut a2, resp) = RawConn::reattach(&ens.addr(g), TIMEOUT_MS, a.session_id, &a.password)
            .await
            .unwrap();
        assert_eq!(
            resp.session_id, a.session_id,
            "an upgraded session did not move"
        );
        let r = a2.call(GET_DATA, &get_data_body("/up/e")).await.unwrap();
        assert_eq!(r.err, 0);
        // Closing it deletes its ephemeral on every member.
        assert_eq!(a2.call(CLOSE_SESSION, &[]).await.unwrap().err, 0);
        let mut c = RawConn::connect(&ens.addr(f), TIMEOUT_MS).await.unwrap();
        let sync = Enc::new().str("/").finish();
        assert_eq!(c.call(9, &sync).await.unwrap().err, 0);
        let r = c.call(GET_DATA, &get_data_body("/up/e")).await.unwrap();
        assert_eq!(r.err, -101, "the ephemeral outlived its session");
        drop(a);

        // On the leader too: a local session writes, then its ephemeral makes it global.
        let leader = ens.wait_leader(ELECT).await;
        let mut b = RawConn::connect(&ens.addr(leader), TIMEOUT_MS)
            .await
            .unwrap();
        assert_eq!(
            mntr(&ens.addr(leader), "zk_local_sessions")
                .await
                .as_deref(),
            Some("1")
        );
        assert_eq!(b.create("/up/l", b"", 0).await.err, 0);
        assert_eq!(b.create("/up/le", b"", EPHEMERAL).await.err, 0);
        let r = b.call(GET_DATA, &get_data_body("/up/le")).await.unwrap();
        let mut d = r.dec();
        let _ = d.buf();
        assert_eq!(d.stat().ephemeral_owner, b.session_id);
        assert_eq!(
            mntr(&ens.addr(leader), "zk_local_sessions")
                .await
                .as_deref(),
            Some("0")
        );
        let (_, resp) = RawConn::reattach(&ens.addr(g), TIMEOUT_MS, b.session_id, &b.password)
            .await
            .unwrap();
        assert_eq!(
            resp.session_id, b.session_id,
            "an upgraded session did not move"
        );
    })
    .await;
}
