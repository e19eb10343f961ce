//! Writes as large as the limits allow are acknowledged only if they can be recovered, and
//! they are recovered after kill -9: large znodes under a raised jute.maxbuffer, frames at the
//! buffer's exact boundary, a closing session whose ephemerals once made its log record too
//! large, and a snapshot holding the largest node allowed (src/limits.rs).

mod common;

use std::time::{Duration, Instant};

use common::raw::{create_body, op, Enc, RawConn};
use common::*;

/// Bytes that are not all alike, so a shifted or truncated copy does not compare equal.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// A call whose reply may take long: large frames through a debug build.
async fn call(c: &mut RawConn, opcode: i32, body: &[u8]) -> common::raw::Reply {
    c.call_within(Duration::from_secs(120), opcode, body)
        .await
        .expect("reply")
}

async fn create(c: &mut RawConn, path: &str, data: &[u8], flags: i32) -> i32 {
    call(c, op::CREATE, &create_body(path, data, flags))
        .await
        .err
}

async fn get(c: &mut RawConn, path: &str) -> Option<Vec<u8>> {
    let r = call(c, op::GET_DATA, &Enc::new().str(path).bool(false).finish()).await;
    if r.err != 0 {
        assert_eq!(r.err, -101, "getData {path}: error {}", r.err);
        return None;
    }
    Some(r.dec().buf().unwrap_or_default())
}

/// The request payload (xid, opcode and body, without the length prefix) of a create of
/// `path` with `data` and the open ACL, as `RawConn::create` sends it.
fn create_payload_len(path: &str, data_len: usize) -> usize {
    4 + 4 + create_body(path, &[], 0).len() + data_len
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_larger_than_the_old_record_limit_survives_kill9() {
    // The report: jute.maxbuffer raised to 200 MB, a 70 MiB znode acknowledged between two
    // small ones, kill -9, and the server refused to start ("damaged record").
    timed(180, async {
        let mut s = TestServer::start(ServerOpts::new().cfg("jute.maxbuffer", 200_000_000)).await;
        let big = pattern(70 << 20, 1);
        {
            let mut c = s.raw().await;
            assert_eq!(create(&mut c, "/before", b"b", 0).await, 0);
            assert_eq!(create(&mut c, "/big", &big, 0).await, 0);
            assert_eq!(create(&mut c, "/after", b"a", 0).await, 0);
        }
        s.crash_restart().await;
        let mut c = s.raw().await;
        assert_eq!(get(&mut c, "/before").await.as_deref(), Some(&b"b"[..]));
        assert!(
            get(&mut c, "/big").await == Some(big),
            "/big came back changed"
        );
        assert_eq!(get(&mut c, "/after").await.as_deref(), Some(&b"a"[..]));
        // And the log goes on after it.
        assert_eq!(create(&mut c, "/later", b"l", 0).await, 0);
        s.crash_restart().await;
        let mut c = s.raw().await;
        assert_eq!(get(&mut c, "/later").await.as_deref(), Some(&b"l"[..]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_exactly_jute_maxbuffer_is_kept_and_one_byte_more_is_refused() {
    timed(120, async {
        // An odd size, so nothing lines up with a block or a power of two by chance.
        let max = (3 << 20) + 7;
        let mut s = TestServer::start(ServerOpts::new().cfg("jute.maxbuffer", max)).await;
        let fits = pattern(max - create_payload_len("/fits", 0), 2);
        assert_eq!(create_payload_len("/fits", fits.len()), max);
        let over = pattern(max + 1 - create_payload_len("/over", 0), 3);
        {
            let mut c = s.raw().await;
            assert_eq!(create(&mut c, "/fits", &fits, 0).await, 0);
            // ZooKeeper closes the connection on a frame over jute.maxbuffer ("Len error").
            // The server may close as soon as it reads the length, before the body is sent:
            // a broken pipe on send is that same refusal.
            let sent = c.send(op::CREATE, &create_body("/over", &over, 0)).await;
            let r = match sent {
                Ok(_) => c.recv_timeout(Duration::from_secs(10)).await,
                Err(e) => Err(e),
            };
            assert!(
                r.is_err(),
                "a frame over jute.maxbuffer was answered: {r:?}"
            );
        }
        s.crash_restart().await;
        let mut c = s.raw().await;
        assert!(get(&mut c, "/fits").await == Some(fits), "/fits changed");
        assert_eq!(get(&mut c, "/over").await, None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_with_70_mib_of_ephemeral_paths_recovers_after_kill9() {
    // A closeSession once listed the session's ephemerals, so 70 ephemerals with ~1 MB names
    // made a 70 MiB record, past the log's old 64 MiB limit: recovery then read it as torn.
    timed(180, async {
        let mut s = TestServer::start(ServerOpts::new().tick_time(500)).await;
        let name_len = 1_000_000;
        let paths: Vec<String> = (0..70)
            .map(|i| format!("/e{i:02}-{}", "x".repeat(name_len)))
            .collect();
        {
            // 8 ticks: long enough that a loaded machine creating the ephemerals does not let
            // the session lapse, short enough that it expires soon after its connection drops.
            let mut owner = RawConn::connect(&s.addr(), 4000).await.expect("connect");
            for p in &paths {
                let r = create(&mut owner, p, b"", 1).await; // EPHEMERAL
                assert_eq!(r, 0, "create ephemeral");
            }
        } // dropped: no closeSession, the session expires
        let mut c = s.raw().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.exists(&paths[0], false).await.err == 0 {
            assert!(Instant::now() < deadline, "the session never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(create(&mut c, "/after", b"a", 0).await, 0);
        drop(c);
        s.crash_restart().await;
        let mut c = s.raw().await;
        for p in &paths {
            assert_ne!(c.exists(p, false).await.err, 0, "an ephemeral came back");
        }
        assert_eq!(get(&mut c, "/after").await.as_deref(), Some(&b"a"[..]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_holding_the_largest_node_allowed_is_written_and_recovered() {
    timed(300, async {
        let max = 256usize << 20;
        let mut s = TestServer::start(
            ServerOpts::new()
                .cfg("jute.maxbuffer", max)
                // The smallest snapCount: a snapshot after every one or two writes.
                .cfg("snapCount", 2),
        )
        .await;
        let big = pattern(max - create_payload_len("/big", 0), 4);
        let snaps = s.data_dir().join("snapshots");
        let holds_big = |snaps: &std::path::Path| {
            std::fs::read_dir(snaps).ok().is_some_and(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with(".snap")
                        && e.metadata().is_ok_and(|m| m.len() > big.len() as u64)
                })
            })
        };
        {
            let mut c = s.raw().await;
            assert_eq!(create(&mut c, "/big", &big, 0).await, 0);
            // More writes until a snapshot has been taken with /big in it.
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut i = 0;
            while !holds_big(&snaps) {
                assert!(Instant::now() < deadline, "no snapshot holds /big");
                assert_eq!(create(&mut c, &format!("/n{i}"), b"", 0).await, 0);
                i += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        s.crash_restart().await;
        let mut c = s.raw().await;
        assert!(
            get(&mut c, "/big").await == Some(big),
            "/big came back changed"
        );
    })
    .await;
}
