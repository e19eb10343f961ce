//! Read-only mode (`readonlymode.enabled`) in a 3-member ensemble: a member left without a
//! quorum, after looking for a leader for a while, serves reads to clients that said they
//! accept a read-only server (the connect request's readOnly flag), answers writes and sync
//! with NOTREADONLY, turns other clients away, and says so (`isro` answers `ro`, `srvr` prints
//! `Mode: read-only`). Once a quorum forms again it closes those connections and serves as
//! before. Raw protocol clients, so the flags are exact.
//!
//! Validated against Apache ZooKeeper 3.8 (`CORRAL_TEST_TARGET=zookeeper`).

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{serial, Ensemble, EnsembleOpts};
use common::raw::{connect_request, frame, parse_connect_response, read_frame, Enc, RawConn};
use common::timed;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ELECT: Duration = Duration::from_secs(60);
const NOT_READ_ONLY: i32 = -119;
const CREATE: i32 = 1;
const GET_DATA: i32 = 4;
const SET_DATA: i32 = 5;
const SYNC: i32 = 9;
const CLOSE_SESSION: i32 = -11;
const TIMEOUT_MS: i32 = 10_000;

fn get_data_body(path: &str) -> Vec<u8> {
    Enc::new().str(path).bool(false).finish()
}

/// A handshake with the readOnly flag set as given: the stream and the response, or `None` if
/// the server closed the connection without answering.
async fn handshake(
    addr: &str,
    session_id: i64,
    password: &[u8],
    read_only: bool,
) -> Option<(TcpStream, common::raw::ConnectResponse)> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = connect_request(0, TIMEOUT_MS, session_id, password, read_only);
    s.write_all(&frame(&req)).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), read_frame(&mut s)).await {
        Ok(Ok(body)) => Some((s, parse_connect_response(&body))),
        Ok(Err(_)) => None,
        Err(_) => panic!("no answer and no close within 10 s"),
    }
}

/// A raw connection on an attached read-only handshake.
async fn read_only_client(addr: &str, session_id: i64, password: &[u8]) -> RawConn {
    let (stream, resp) = handshake(addr, session_id, password, true)
        .await
        .expect("a client that accepts read-only was turned away");
    assert_eq!(
        resp.read_only,
        Some(true),
        "the response does not say read-only"
    );
    assert_ne!(resp.session_id, 0, "no session");
    RawConn::from_stream(stream, &resp)
}

async fn until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_without_quorum_serves_reads_read_only() {
    let _serial = serial().await;
    timed(240, async {
        // ZooKeeper 3.8's read-only server makes new sessions only as local sessions (without
        // them it answers the handshake with a bare NOTREADONLY header); corral makes them
        // either way, and the test runs the setting under which both can.
        let opts = EnsembleOpts::voters(3)
            .cfg("readonlymode.enabled", "true")
            .cfg("localSessionsEnabled", "true")
            .cfg("localSessionsUpgradingEnabled", "true");
        let mut ens = Ensemble::start(opts).await;
        let leader = ens.wait_leader(ELECT).await;
        let r = (leader + 1) % 3;
        let addr = ens.addr(r);
        let mut w = RawConn::connect(&addr, TIMEOUT_MS).await.unwrap();
        assert_eq!(w.create("/ro", b"v1", 0).await.err, 0);
        // Its ephemeral makes the session global.
        assert_eq!(w.create("/ro-e", b"", 1).await.err, 0);
        assert_eq!(common::four_letter(&addr, "isro").await, "rw");
        // A session made while the ensemble serves, to reattach read-only later.
        let (global_id, global_pw) = (w.session_id, w.password.clone());
        drop(w);

        for i in (0..3).filter(|&i| i != r) {
            ens.kill9(i);
        }
        until("read-only mode", Duration::from_secs(30), async || {
            common::four_letter(&addr, "isro").await == "ro"
        })
        .await;
        let srvr = common::four_letter(&addr, "srvr").await;
        assert!(srvr.contains("Mode: read-only"), "{srvr}");

        // A client that did not say it accepts read-only is closed unanswered.
        assert!(
            handshake(&addr, 0, &[0; 16], false).await.is_none(),
            "a read-write client was answered"
        );

        // One that did gets a session, reads, and every write is NOTREADONLY.
        let mut c = read_only_client(&addr, 0, &[0; 16]).await;
        let g = c.call(GET_DATA, &get_data_body("/ro")).await.unwrap();
        assert_eq!((g.err, g.dec().buf().as_deref()), (0, Some(&b"v1"[..])));
        let set = Enc::new().str("/ro").buf(Some(b"v2")).i32(-1).finish();
        assert_eq!(c.call(SET_DATA, &set).await.unwrap().err, NOT_READ_ONLY);
        let create = common::raw::create_body("/ro/x", b"", 0);
        assert_eq!(c.call(CREATE, &create).await.unwrap().err, NOT_READ_ONLY);
        let sync = Enc::new().str("/").finish();
        assert_eq!(c.call(SYNC, &sync).await.unwrap().err, NOT_READ_ONLY);
        let g = c.call(GET_DATA, &get_data_body("/ro")).await.unwrap();
        assert_eq!((g.err, g.dec().buf().as_deref()), (0, Some(&b"v1"[..])));

        // A session the ensemble made is turned away (the client tries other members); the
        // read-only session reattaches.
        assert!(
            handshake(&addr, global_id, &global_pw, true)
                .await
                .is_none(),
            "a global session reattached read-only"
        );
        let (id, pw) = (c.session_id, c.password.clone());
        let mut again = read_only_client(&addr, id, &pw).await;
        assert_eq!(again.session_id, id);
        let g = again.call(GET_DATA, &get_data_body("/ro")).await.unwrap();
        assert_eq!(g.err, 0);
        // The old connection of that session was closed.
        assert!(c.recv_timeout(Duration::from_secs(10)).await.is_err());
        let mut c = again;
        let mut d = read_only_client(&addr, 0, &[0; 16]).await;
        assert_eq!(d.call(CLOSE_SESSION, &[]).await.unwrap().err, 0);
        assert!(
            handshake(&addr, d.session_id, &d.password, true)
                .await
                .is_some_and(|(_, r)| r.session_id == 0),
            "a closed read-only session reattached"
        );

        // A quorum again: the read-only connection closes, the member serves as before.
        for i in (0..3).filter(|&i| i != r) {
            ens.restart(i).await;
        }
        ens.wait_serving(r, ELECT).await;
        let closed = c.recv_timeout(Duration::from_secs(30)).await;
        assert!(
            closed.is_err(),
            "the read-only connection stayed open: {closed:?}"
        );
        assert_eq!(common::four_letter(&addr, "isro").await, "rw");
        let mut w = RawConn::connect(&addr, TIMEOUT_MS).await.unwrap();
        let set = Enc::new().str("/ro").buf(Some(b"v3")).i32(-1).finish();
        assert_eq!(w.call(SET_DATA, &set).await.unwrap().err, 0);
    })
    .await;
}
