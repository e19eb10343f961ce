//! Core layouts: one shard sharing its executor with the write core (`corral.cores=1`, what a
//! 1-CPU machine gets), and more shards than CPUs (`corral.cores=3`). Each layout must keep the
//! guarantees: one total order of writes, read-your-writes and reads that see any acknowledged
//! write from every session, watch events before later replies. (Against Apache ZooKeeper the
//! `corral.cores` key is an ignored system property, so the test runs there too.)

mod common;

use std::collections::BTreeSet;

use common::*;
use zk::CreateMode;
use zookeeper_client as zk;

async fn exercise(cores: usize) {
    let s = TestServer::start(ServerOpts::new().cfg("corral.cores", cores)).await;
    let clients: Vec<zk::Client> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(s.client().await);
        }
        v
    };
    clients[0].create("/q", b"", &anyone()).await.unwrap();
    // Watcher on another connection (likely another shard when cores > 1).
    let (_, _, w) = clients[5].get_and_watch_data("/q").await.unwrap();

    // Every client creates sequential children concurrently; each must read back its own
    // writes at once, and the names must form one gap-free sequence.
    let mut tasks = Vec::new();
    for (i, c) in clients.iter().take(5).enumerate() {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for j in 0..40 {
                let (st, seq) = c
                    .create(
                        "/q/n-",
                        format!("{i}:{j}").as_bytes(),
                        &mode(CreateMode::PersistentSequential),
                    )
                    .await
                    .unwrap();
                let (data, st2) = c.get_data(&format!("/q/n-{seq}")).await.unwrap();
                assert_eq!(data, format!("{i}:{j}").as_bytes(), "read-your-writes");
                assert_eq!(st2.czxid, st.czxid);
                mine.push(seq.into_i64());
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "a session's creates are ordered"
        );
        all.extend(mine);
    }
    let set: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(set.len(), 200);
    assert_eq!(
        set.iter().copied().collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );

    // An acknowledged write is visible to every other session's next read.
    for round in 0..50 {
        let v = format!("v{round}");
        clients[round % 5]
            .set_data("/q", v.as_bytes(), None)
            .await
            .unwrap();
        for c in &clients {
            assert_eq!(
                c.get_data("/q").await.unwrap().0,
                v.as_bytes(),
                "round {round}"
            );
        }
    }
    let e = within(std::time::Duration::from_secs(5), "data watch", w.changed()).await;
    assert_eq!(e.event_type, zk::EventType::NodeDataChanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shard_sharing_the_write_core() {
    timed(60, exercise(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_shards_than_cpus() {
    timed(60, exercise(3)).await;
}
