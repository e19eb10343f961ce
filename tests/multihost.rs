//! Members on separate hosts, modelled by Linux network namespaces (tests/common/netns.rs):
//! three namespaces joined by a bridge, one member in each on its own address and the same
//! ports. Each member binds its election (and, on ZooKeeper, quorum) port on its own server
//! line's address, unless `quorumListenOnAllIPs=true`; the ensemble forms over the bridge and
//! replicates; a leader whose link goes down stops serving while the other two elect a new
//! leader and take writes, and after the link is back all three hold the same tree.
//!
//! Needs root and iproute2: without them the tests fail (they are never skipped). Validated
//! against Apache ZooKeeper 3.8 (`CORRAL_TEST_TARGET=zookeeper`). Tests take `serial()`.

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{assert_same_trees, serial, Ensemble, EnsembleOpts, Mode};
use common::netns::Network;
use common::{anyone, timed, within};

const ELECT: Duration = Duration::from_secs(60);
const OP: Duration = Duration::from_secs(20);

/// Asserts that host `i`'s TCP listeners on the member's quorum and election ports are bound
/// to `want` (its own address, or 0.0.0.0 with quorumListenOnAllIPs) and that the election
/// port is among them. Returns the listeners, for the log.
fn assert_quorum_listeners(net: &Network, ens: &Ensemble, i: usize, want: &str) -> Vec<String> {
    let m = &ens.members[i];
    let listeners = net.listeners(i);
    let ours: Vec<&String> = listeners
        .iter()
        .filter(|l| {
            l.rsplit_once(':').is_some_and(|(_, p)| {
                p == m.election_port.to_string() || p == m.quorum_port.to_string()
            })
        })
        .collect();
    let election = format!("{want}:{}", m.election_port);
    assert!(
        ours.iter().any(|l| **l == election),
        "member {i}: no listener on {election}; listeners in its namespace: {listeners:?}"
    );
    for l in &ours {
        assert!(
            l.starts_with(&format!("{want}:")),
            "member {i}: a quorum/election listener on {l}, expected {want}; all: {listeners:?}"
        );
    }
    listeners
}

/// Writes one node through each member and reads every node back on every member (after a
/// sync, each over its own address).
async fn writes_reach_every_member(ens: &Ensemble, prefix: &str) {
    for w in 0..ens.len() {
        let c = ens.client(w).await;
        let path = format!("{prefix}{w}");
        within(OP, "create", c.create(&path, path.as_bytes(), &anyone()))
            .await
            .unwrap_or_else(|e| panic!("create {path} on member {w}: {e}"));
    }
    for r in 0..ens.len() {
        let c = ens.client(r).await;
        within(OP, "sync", c.sync("/")).await.unwrap();
        for w in 0..ens.len() {
            let path = format!("{prefix}{w}");
            let (data, _) = within(OP, "get_data", c.get_data(&path))
                .await
                .unwrap_or_else(|e| panic!("get_data {path} on member {r}: {e}"));
            assert_eq!(data, path.as_bytes(), "{path} read on member {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn members_on_separate_hosts_bind_their_own_addresses() {
    let _serial = serial().await;
    timed(300, async {
        let t0 = Instant::now();
        // Declared first, dropped last: the members are killed before their hosts go.
        let net = Network::create(3);
        let ens = Ensemble::start(EnsembleOpts::voters(3).on_hosts(net.ensemble_hosts())).await;
        let leader = ens.wait_leader(ELECT).await;
        println!("hosts {:?}, leader sid {}", net.hosts, ens.sid(leader));
        for i in 0..3 {
            let mode = ens.mode(i).await;
            assert!(
                matches!(mode, Some(Mode::Leader | Mode::Follower)),
                "member {i} over the bridge: {mode:?}"
            );
            let ip = net.hosts[i].ip.to_string();
            assert_eq!(ens.members[i].ip.to_string(), ip);
            let l = assert_quorum_listeners(&net, &ens, i, &ip);
            println!("member {i} listeners: {l:?}");
        }
        writes_reach_every_member(&ens, "/w").await;
        assert_same_trees(&ens).await;
        println!("took {:?}", t0.elapsed());
    })
    .await;
}

/// `quorumListenOnAllIPs=true`: the quorum ports are bound on every address of the host
/// (0.0.0.0), and the members still dial each other on the server lines' addresses.
#[tokio::test(flavor = "multi_thread")]
async fn quorum_listen_on_all_ips_binds_the_wildcard_address() {
    let _serial = serial().await;
    timed(300, async {
        let t0 = Instant::now();
        let net = Network::create(3);
        let opts = EnsembleOpts::voters(3)
            .on_hosts(net.ensemble_hosts())
            .cfg("quorumListenOnAllIPs", "true");
        let ens = Ensemble::start(opts).await;
        ens.wait_leader(ELECT).await;
        for i in 0..3 {
            assert_quorum_listeners(&net, &ens, i, "0.0.0.0");
        }
        writes_reach_every_member(&ens, "/all").await;
        println!("took {:?}", t0.elapsed());
    })
    .await;
}

/// The leader's host loses its link (silently: nothing is closed). The other two elect a new
/// leader and serve writes; the old leader stops serving (asked from inside its own host);
/// once the link is back it rejoins and all three hold the same tree.
#[tokio::test(flavor = "multi_thread")]
async fn partitioned_leader_is_replaced_and_rejoins() {
    let _serial = serial().await;
    timed(420, async {
        let t0 = Instant::now();
        let net = Network::create(3);
        // tickTime 1000: syncLimit (5 ticks) notices the cut in about 5 s.
        let mut opts = EnsembleOpts::voters(3).on_hosts(net.ensemble_hosts());
        opts.tick_time = 1000;
        let ens = Ensemble::start(opts).await;
        let leader = ens.wait_leader(ELECT).await;
        let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let c = ens.client(leader).await;
        within(OP, "create", c.create("/before", b"b", &anyone()))
            .await
            .unwrap();
        drop(c);

        let cut_at = Instant::now();
        net.cut(leader);
        let old = ens.addr(leader);
        let stopped = loop {
            let last = match net
                .four_letter_inside(leader, &old, "srvr", Duration::from_secs(3))
                .await
            {
                Ok(r) if r.contains("not currently serving") => break cut_at.elapsed(),
                Ok(r) => r,
                Err(e) => format!("error: {e}"),
            };
            assert!(
                cut_at.elapsed() < ELECT,
                "the cut-off leader still serves after {ELECT:?}: {last}\n{}",
                ens.log_tail(leader)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        println!("cut-off leader stopped serving after {stopped:?}");
        // Over the bridge the old leader is unreachable, so the one leader found is new.
        let new_leader = ens.wait_leader(ELECT).await;
        assert_ne!(new_leader, leader);
        println!("cut to a new leader: {:?}", cut_at.elapsed());
        let c = ens.client(new_leader).await;
        within(OP, "create", c.create("/after-cut", b"a", &anyone()))
            .await
            .unwrap();
        let follower = others.iter().copied().find(|&i| i != new_leader).unwrap();
        let f = ens.client(follower).await;
        within(OP, "sync", f.sync("/")).await.unwrap();
        let (data, _) = within(OP, "get_data", f.get_data("/after-cut"))
            .await
            .unwrap();
        assert_eq!(data, b"a");
        println!(
            "cut to a write read on the majority: {:?}",
            cut_at.elapsed()
        );
        let r = net
            .four_letter_inside(leader, &old, "srvr", Duration::from_secs(3))
            .await
            .expect("srvr inside the cut-off host");
        assert!(r.contains("not currently serving"), "cut-off member: {r}");

        net.heal(leader);
        let healed_at = Instant::now();
        ens.wait_serving(leader, ELECT).await;
        ens.wait_leader(ELECT).await;
        println!("heal to the old leader serving: {:?}", healed_at.elapsed());
        let tree = assert_same_trees(&ens).await;
        assert!(tree.contains_key("/before") && tree.contains_key("/after-cut"));
        println!("took {:?}", t0.elapsed());
    })
    .await;
}
