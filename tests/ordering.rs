//! Ordering guarantees: per-session FIFO, read-your-writes, a single total
//! order of writes across sessions, linearizable conditional updates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::raw::{err, op, Enc};
use common::*;
use zk::{CreateMode, Error as ZkError};
use zookeeper_client as zk;

/// Requests issued back to back without awaiting complete in issue order
/// with the results of executing them in that order (the crate sends at
/// call time, so issue order = wire order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_execute_in_order() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/fifo", b"0", &anyone()).await.unwrap();
        let n = 200;
        let mut sets = Vec::new();
        let mut gets = Vec::new();
        for i in 0..n {
            // Each setData expects the version left by the previous one.
            sets.push(c.set_data("/fifo", i.to_string().as_bytes(), Some(i)));
            gets.push(c.get_data("/fifo"));
        }
        let mut completion = Vec::new();
        for (i, (set, get)) in sets.into_iter().zip(gets).enumerate() {
            let st = set.await.unwrap_or_else(|e| panic!("set {i}: {e}"));
            assert_eq!(st.version, i as i32 + 1);
            let (data, gst) = get.await.unwrap();
            assert_eq!(
                data,
                i.to_string().as_bytes(),
                "read {i} sees exactly the preceding write"
            );
            assert_eq!(gst.version, i as i32 + 1);
            completion.push(st.mzxid);
        }
        assert!(
            completion.windows(2).all(|w| w[1] == w[0] + 1),
            "one session's writes get consecutive zxids"
        );

        // Interleaved creates/deletes/exists on one session, all pipelined.
        let paths: Vec<String> = (0..50).map(|i| format!("/fifo/n{i}")).collect();
        let mut futs = Vec::new();
        for p in &paths {
            futs.push((
                c.create(p, b"", &anyone()),
                c.check_stat(p),
                c.delete(p, None),
                c.check_stat(p),
            ));
        }
        for (i, (cr, e1, d, e2)) in futs.into_iter().enumerate() {
            cr.await.unwrap_or_else(|e| panic!("create {i}: {e}"));
            assert!(e1.await.unwrap().is_some(), "exists after create {i}");
            d.await.unwrap();
            assert!(e2.await.unwrap().is_none(), "exists after delete {i}");
        }
    })
    .await
}

/// On the wire, replies come back in request order (xids ascending),
/// reads and writes mixed, even when reads could be answered sooner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_come_back_in_request_order_on_the_wire() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut r = s.raw().await;
        assert_eq!(r.create("/o", b"", 0).await.err, err::OK);
        let mut sent = Vec::new();
        for i in 0..300 {
            let xid = match i % 4 {
                0 => {
                    r.send(
                        op::SET_DATA,
                        &Enc::new()
                            .str("/o")
                            .buf(Some(format!("{i}").as_bytes()))
                            .i32(-1)
                            .finish(),
                    )
                    .await
                }
                1 => {
                    r.send(op::GET_DATA, &Enc::new().str("/o").bool(false).finish())
                        .await
                }
                2 => {
                    r.send(op::EXISTS, &Enc::new().str("/missing").bool(false).finish())
                        .await
                }
                _ => {
                    r.send(op::GET_CHILDREN, &Enc::new().str("/").bool(false).finish())
                        .await
                }
            }
            .unwrap();
            sent.push((i, xid));
        }
        let mut last_zxid = 0;
        for (i, xid) in sent {
            let rep = r.recv().await.unwrap();
            assert_eq!(rep.xid, xid, "reply order");
            assert!(rep.zxid >= last_zxid, "reply zxids never go backwards");
            last_zxid = rep.zxid;
            match i % 4 {
                0 => assert_eq!(rep.err, err::OK),
                1 => {
                    assert_eq!(rep.err, err::OK);
                    assert_eq!(
                        rep.dec().buf().unwrap(),
                        format!("{}", i - 1).as_bytes(),
                        "read sees the write just before it"
                    );
                }
                2 => assert_eq!(rep.err, err::NO_NODE),
                _ => assert_eq!(rep.err, err::OK),
            }
        }
    })
    .await
}

/// Several sessions creating sequential children concurrently: every name
/// is distinct, the numbers are exactly 0..N-1, and sequence order equals
/// zxid order (one total order of writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sequential_creates_form_one_total_order() {
    timed(90, async {
        let s = TestServer::start_default().await;
        let setup = s.client().await;
        setup.create("/q", b"", &anyone()).await.unwrap();
        let clients = 4;
        let per = 50;
        let mut tasks = Vec::new();
        for k in 0..clients {
            let c = s.client().await;
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut futs = Vec::new();
                for _ in 0..per {
                    futs.push(c.create(
                        "/q/n-",
                        format!("{k}").as_bytes(),
                        &mode(CreateMode::PersistentSequential),
                    ));
                }
                for f in futs {
                    let (st, seq) = f.await.unwrap();
                    out.push((seq.into_i64(), st.czxid, k));
                }
                // Per session, sequence numbers increase in issue order.
                assert!(
                    out.windows(2).all(|w| w[0].0 < w[1].0),
                    "client {k}: {out:?}"
                );
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(
                within(Duration::from_secs(60), "creator task", t)
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(all.len(), clients * per);
        let seqs: BTreeSet<i64> = all.iter().map(|x| x.0).collect();
        assert_eq!(
            seqs,
            (0..(clients * per) as i64).collect::<BTreeSet<_>>(),
            "no gaps, no duplicates"
        );
        let mut by_seq = all.clone();
        by_seq.sort_by_key(|x| x.0);
        assert!(
            by_seq.windows(2).all(|w| w[0].1 < w[1].1),
            "sequence order == zxid order"
        );
        let names = setup.list_children("/q").await.unwrap();
        assert_eq!(names.len(), clients * per);
        // The data written by each creator is what the name says.
        for (seq, _, k) in by_seq.iter().take(20) {
            let (data, _) = setup.get_data(&format!("/q/n-{seq:010}")).await.unwrap();
            assert_eq!(data, format!("{k}").as_bytes());
        }
    })
    .await
}

/// Concurrent compare-and-set: for every version exactly one session's
/// setData(version) wins; losers get BadVersion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_updates_have_one_winner_per_version() {
    timed(90, async {
        let s = TestServer::start_default().await;
        let setup = s.client().await;
        setup.create("/counter", b"0", &anyone()).await.unwrap();
        let clients = 4;
        let target = 100;
        let mut tasks = Vec::new();
        for k in 0..clients {
            let c = s.client().await;
            tasks.push(tokio::spawn(async move {
                let mut wins = Vec::new();
                let mut losses = 0;
                loop {
                    let (data, st) = c.get_data("/counter").await.unwrap();
                    let v: i32 = String::from_utf8(data).unwrap().parse().unwrap();
                    assert_eq!(v, st.version, "value tracks version");
                    if v >= target {
                        break;
                    }
                    match c
                        .set_data("/counter", (v + 1).to_string().as_bytes(), Some(st.version))
                        .await
                    {
                        Ok(new) => {
                            assert_eq!(new.version, st.version + 1);
                            wins.push(new.version);
                        }
                        Err(ZkError::BadVersion) => losses += 1,
                        Err(e) => panic!("client {k}: {e}"),
                    }
                }
                (wins, losses)
            }));
        }
        let mut winners: BTreeMap<i32, usize> = BTreeMap::new();
        for t in tasks {
            let (wins, _losses) = within(Duration::from_secs(60), "cas task", t)
                .await
                .unwrap();
            for v in wins {
                *winners.entry(v).or_default() += 1;
            }
        }
        assert_eq!(
            winners.len(),
            target as usize,
            "every version 1..=target won once"
        );
        assert!(
            winners.values().all(|&n| n == 1),
            "exactly one winner per version"
        );
        assert_eq!(
            winners.keys().copied().collect::<Vec<_>>(),
            (1..=target).collect::<Vec<_>>()
        );
        let (data, st) = setup.get_data("/counter").await.unwrap();
        assert_eq!(
            (data, st.version),
            (target.to_string().into_bytes(), target)
        );
    })
    .await
}

/// Interleaved writers and readers on different sessions: every session
/// observes each key's versions monotonically, and after sync a reader
/// sees at least everything acknowledged before the sync was issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_observe_monotonic_state_and_sync_catches_up() {
    timed(90, async {
        let s = TestServer::start_default().await;
        let setup = s.client().await;
        for k in 0..4 {
            setup
                .create(&format!("/k{k}"), b"", &anyone())
                .await
                .unwrap();
        }
        let mut tasks = Vec::new();
        for w in 0..3 {
            let c = s.client().await;
            tasks.push(tokio::spawn(async move {
                let mut last_seen = [-1i32; 4];
                let mut last_zxid = 0i64;
                for i in 0..60 {
                    let k = (i + w) % 4;
                    let path = format!("/k{k}");
                    let st = c
                        .set_data(&path, format!("{w}:{i}").as_bytes(), None)
                        .await
                        .unwrap();
                    assert!(st.mzxid > last_zxid, "own writes get increasing zxids");
                    last_zxid = st.mzxid;
                    assert!(
                        st.version > last_seen[k],
                        "read-your-writes / monotonic versions"
                    );
                    last_seen[k] = st.version;
                    let (data, gst) = c.get_data(&path).await.unwrap();
                    assert!(gst.version >= st.version, "a read after my write sees it");
                    if gst.version == st.version {
                        assert_eq!(data, format!("{w}:{i}").as_bytes());
                    }
                    last_seen[k] = gst.version;
                    let other = format!("/k{}", (k + 1) % 4);
                    let (_, ost) = c.get_data(&other).await.unwrap();
                    let ok = (k + 1) % 4;
                    assert!(
                        ost.version >= last_seen[ok],
                        "versions never go backwards for a session"
                    );
                    last_seen[ok] = ost.version;
                }
            }));
        }
        for t in tasks {
            within(Duration::from_secs(60), "worker", t).await.unwrap();
        }
        let reader = s.client().await;
        let acked = setup.set_data("/k0", b"final", None).await.unwrap();
        reader.sync("/k0").await.unwrap();
        let (data, st) = reader.get_data("/k0").await.unwrap();
        assert_eq!(
            (data.as_slice(), st.version),
            (&b"final"[..], acked.version)
        );
        let total: i32 = {
            let mut t = 0;
            for k in 0..4 {
                t += reader
                    .check_stat(&format!("/k{k}"))
                    .await
                    .unwrap()
                    .unwrap()
                    .version;
            }
            t
        };
        assert_eq!(total, 3 * 60 + 1, "no write lost");
    })
    .await
}
