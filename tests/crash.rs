//! Crash safety: writers issue known sequences of writes while the server is SIGKILLed at
//! random moments, again and again. After every restart each acknowledged write is present,
//! each writer's surviving writes form a prefix of what it sent (no holes, nothing reordered),
//! and multi-op transactions are all-or-nothing. Bounded: a fixed number of crashes.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zookeeper_client as zk;

const WRITERS: usize = 4;
const CRASHES: usize = 40;

/// Writer `w` creates `/w{w}/{n}` (data `n`) and, in the same multi, `/m{w}/{n}`; it records the
/// highest `n` acknowledged. It stops at the first error (the crash).
async fn writer(addr: String, w: usize, start: i64, acked: Arc<AtomicI64>) {
    let Ok(c) = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .connect(&addr)
        .await
    else {
        return;
    };
    let mut n = start;
    loop {
        let mut m = c.new_multi_writer();
        let data = n.to_string();
        m.add_create(&format!("/w{w}/{n:010}"), data.as_bytes(), &anyone())
            .unwrap();
        m.add_create(&format!("/m{w}/{n:010}"), data.as_bytes(), &anyone())
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(5), m.commit()).await {
            Ok(Ok(_)) => acked.store(n, Ordering::SeqCst),
            _ => return,
        }
        n += 1;
    }
}

async fn children(c: &zk::Client, path: &str) -> BTreeSet<i64> {
    c.list_children(path)
        .await
        .unwrap()
        .iter()
        .map(|s| s.parse::<i64>().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_repeated_kill_9() {
    timed(240, async {
        let mut s = TestServer::start_default().await;
        let c = s.client().await;
        for w in 0..WRITERS {
            c.create(&format!("/w{w}"), b"", &anyone()).await.unwrap();
            c.create(&format!("/m{w}"), b"", &anyone()).await.unwrap();
        }
        drop(c);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut acked_total = 0i64;
        let mut next_start = [0i64; WRITERS];
        for crash in 0..CRASHES {
            let acked: Vec<Arc<AtomicI64>> =
                (0..WRITERS).map(|_| Arc::new(AtomicI64::new(-1))).collect();
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| tokio::spawn(writer(s.addr(), w, next_start[w], acked[w].clone())))
                .collect();
            tokio::time::sleep(Duration::from_millis(50 + next() % 400)).await;
            s.kill9();
            let seen: Vec<i64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
            // The writers' connections are dead; do not wait for their clients to notice.
            for t in tasks {
                t.abort();
            }
            s.start_again().await;
            let c = s.client().await;
            for w in 0..WRITERS {
                let ws = children(&c, &format!("/w{w}")).await;
                let ms = children(&c, &format!("/m{w}")).await;
                assert_eq!(ws, ms, "seed {seed:#x} crash {crash} writer {w}: multi half-applied");
                let expect: BTreeSet<i64> = (0..ws.len() as i64).collect();
                assert_eq!(ws, expect, "seed {seed:#x} crash {crash} writer {w}: not a prefix");
                let high = ws.len() as i64 - 1;
                assert!(
                    high >= seen[w],
                    "seed {seed:#x} crash {crash} writer {w}: acknowledged {} lost (have up to {high})",
                    seen[w]
                );
                if let Some(last) = ws.iter().next_back() {
                    let (data, _) = c.get_data(&format!("/w{w}/{last:010}")).await.unwrap();
                    assert_eq!(data, last.to_string().as_bytes());
                }
                acked_total += (seen[w] + 1 - next_start[w]).max(0);
                next_start[w] = ws.len() as i64;
            }
        }
        eprintln!(
            "crash test: survived {CRASHES} SIGKILLs, {acked_total} acknowledged multi-writes all present (seed {seed:#x})"
        );
        assert!(acked_total > 0, "no write was ever acknowledged");
    })
    .await
}
