//! Replicated ensembles end to end (tests/common/ensemble.rs): election with arbitrary sids,
//! replication of every write to every member (full tree comparison), leader failover under
//! write load with no acknowledged write lost, observers, an isolated leader stepping down,
//! quorum loss and recovery in a five-member ensemble, and a watch event that comes before its
//! data is readable on a follower across a failover.
//!
//! Validated against Apache ZooKeeper 3.8 (`CORRAL_TEST_TARGET=zookeeper`). tickTime stays at
//! ZooKeeper's default 2000 ms, so elections and failure detection take real seconds; every
//! test is bounded by `timed`. Tests take `serial()` first: one ensemble at a time.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ensemble::{assert_same_trees, dump_tree, serial, Ensemble, EnsembleOpts, Mode};
use common::{anyone, timed};
use zookeeper_client as zk;

const ELECT: Duration = Duration::from_secs(60);

/// Writes acknowledged (Ok) and writes whose outcome is unknown (error or timeout) by one
/// load client.
#[derive(Default, Debug)]
struct Load {
    /// (path, when the request was sent, when the reply came)
    acked: Vec<(String, Instant, Instant)>,
    unknown: Vec<String>,
}

/// Creates `/load/<name>-<n>` one after another (unique paths, never retried) through a
/// client of `connect` until `stop`; reconnects when the session is gone.
async fn load(connect: String, name: String, stop: Arc<AtomicBool>) -> Load {
    let mut out = Load::default();
    let mut client: Option<zk::Client> = None;
    let mut n = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_ref() else {
            let connector = zk::Client::connector().with_session_timeout(Duration::from_secs(20));
            if let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(10), connector.connect(&connect)).await
            {
                client = Some(c);
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        let path = format!("/load/{name}-{n:06}");
        n += 1;
        let sent = Instant::now();
        match tokio::time::timeout(Duration::from_secs(10), c.create(&path, b"w", &anyone())).await
        {
            Ok(Ok(_)) => out.acked.push((path, sent, Instant::now())),
            Ok(Err(zk::Error::SessionExpired | zk::Error::ClientClosed)) => {
                out.unknown.push(path);
                client = None;
            }
            _ => {
                out.unknown.push(path);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

struct Loaders {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Load>>,
}

impl Loaders {
    fn start(connects: Vec<String>) -> Loaders {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = connects
            .into_iter()
            .enumerate()
            .map(|(i, c)| tokio::spawn(load(c, format!("c{i}"), stop.clone())))
            .collect();
        Loaders { stop, tasks }
    }

    async fn finish(self) -> Vec<Load> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        for t in self.tasks {
            out.push(
                common::within(Duration::from_secs(30), "load client stops", t)
                    .await
                    .expect("load task"),
            );
        }
        out
    }
}

/// Asserts that every acknowledged write is in `tree` and that every `/load` node there was
/// sent by a client (acknowledged or unknown outcome). Returns the number acknowledged.
fn check_loads(tree: &common::ensemble::Tree, loads: &[Load]) -> usize {
    let mut sent = BTreeSet::new();
    let mut acked = 0;
    for l in loads {
        for (p, _, _) in &l.acked {
            assert!(tree.contains_key(p), "acknowledged write {p} lost");
            sent.insert(p.clone());
            acked += 1;
        }
        sent.extend(l.unknown.iter().cloned());
    }
    for p in tree.keys().filter(|p| p.starts_with("/load/")) {
        assert!(sent.contains(p), "{p} was never written");
    }
    acked
}

/// Waits until a create through `connect` succeeds; returns when it was acknowledged.
async fn write_succeeds(connect: &str, path: &str, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let connector = zk::Client::connector().with_session_timeout(Duration::from_secs(20));
        if let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_secs(10), connector.connect(connect)).await
        {
            match tokio::time::timeout(Duration::from_secs(10), c.create(path, b"ok", &anyone()))
                .await
            {
                Ok(Ok(_)) | Ok(Err(zk::Error::NodeExists)) => return Instant::now(),
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "no successful write of {path} through {connect} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_elect_one_leader() {
    let _serial = serial().await;
    timed(150, async {
        let ens = Ensemble::start(EnsembleOpts::voters(3).sids(&[100, 101, 102])).await;
        let leader = ens.wait_leader(ELECT).await;
        let modes = ens.modes().await;
        for (i, m) in modes.iter().enumerate() {
            let want = if i == leader {
                Mode::Leader
            } else {
                Mode::Follower
            };
            assert_eq!(*m, Some(want), "member {i} (sid {}): {modes:?}", ens.sid(i));
        }
        // The members agree on who leads: mntr on the leader counts the two followers.
        let mntr = common::four_letter(&ens.addr(leader), "mntr").await;
        assert!(mntr.contains("zk_server_state\tleader"), "{mntr}");
        assert!(mntr.contains("zk_synced_followers\t2"), "{mntr}");
        for i in (0..3).filter(|&i| i != leader) {
            let mntr = common::four_letter(&ens.addr(i), "mntr").await;
            assert!(mntr.contains("zk_server_state\tfollower"), "{mntr}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_replicate_to_every_member() {
    let _serial = serial().await;
    timed(150, async {
        let ens = Ensemble::start(EnsembleOpts::voters(3)).await;
        let leader = ens.wait_leader(ELECT).await;
        // Write through a follower: it forwards to the leader.
        let via = (leader + 1) % 3;
        let c = ens.client(via).await;
        c.create("/app", b"root", &anyone()).await.unwrap();
        for i in 0..20 {
            c.create(
                &format!("/app/n{i:02}"),
                format!("v{i}").as_bytes(),
                &anyone(),
            )
            .await
            .unwrap();
        }
        c.set_data("/app/n03", b"changed", None).await.unwrap();
        c.set_data("/app/n03", b"changed again", Some(1))
            .await
            .unwrap();
        c.delete("/app/n07", None).await.unwrap();
        let (_, seq) = c
            .create(
                "/app/seq-",
                b"",
                &common::mode(zk::CreateMode::PersistentSequential),
            )
            .await
            .unwrap();
        c.create(
            "/app/eph",
            b"mine",
            &common::mode(zk::CreateMode::Ephemeral),
        )
        .await
        .unwrap();
        c.create(
            "/app/readonly",
            b"acl",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read()),
        )
        .await
        .unwrap();
        // Read back on every member after sync.
        for i in 0..3 {
            let r = ens.client(i).await;
            r.sync("/app").await.unwrap();
            let (data, stat) = r.get_data("/app/n03").await.unwrap();
            assert_eq!(data, b"changed again", "member {i}");
            assert_eq!(stat.version, 2, "member {i}");
            assert_eq!(
                r.get_data("/app/n07").await.unwrap_err(),
                zk::Error::NoNode,
                "member {i}"
            );
            let (data, stat) = r.get_data("/app/eph").await.unwrap();
            assert_eq!(data, b"mine");
            assert_eq!(stat.ephemeral_owner, c.session_id().0, "member {i}");
            assert!(r
                .list_children("/app")
                .await
                .unwrap()
                .contains(&format!("seq-{seq}")));
        }
        let tree = assert_same_trees(&ens).await;
        assert_eq!(tree["/app"].stat.num_children, 22, "{:?}", tree["/app"]);
        assert_eq!(
            tree["/app/readonly"].acl,
            vec!["world:anyone:1".to_string()]
        );
        // The ephemeral goes with its session, on every member.
        drop(c);
        for i in 0..3 {
            let r = ens.client(i).await;
            common::eventually(Duration::from_secs(30), "ephemeral gone", || {
                let r = r.clone();
                async move {
                    let _ = r.sync("/app").await;
                    r.get_data("/app/eph").await == Err(zk::Error::NoNode)
                }
            })
            .await;
        }
        assert_same_trees(&ens).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_killed_under_load_loses_no_acknowledged_write() {
    let _serial = serial().await;
    timed(240, async {
        let mut ens = Ensemble::start(EnsembleOpts::voters(3)).await;
        let leader = ens.wait_leader(ELECT).await;
        let c = ens.client_any().await;
        c.create("/load", b"", &anyone()).await.unwrap();
        drop(c);
        // Three clients, each starting from a different member (the client shuffles).
        let loaders = Loaders::start((0..3).map(|_| ens.connect_string()).collect());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let killed_at = Instant::now();
        ens.kill9(leader);
        let new_leader = ens.wait_leader(ELECT).await;
        assert_ne!(new_leader, leader);
        // Let the writes resume for a while, then stop them.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let loads = loaders.finish().await;
        let first = loads
            .iter()
            .flat_map(|l| l.acked.iter())
            .filter(|(_, sent, _)| *sent >= killed_at)
            .map(|(_, _, acked)| *acked)
            .min()
            .expect("no write succeeded after the leader was killed");
        println!(
            "kill -9 of the leader (sid {}) to the first acknowledged write: {:?}",
            ens.sid(leader),
            first - killed_at
        );
        let after: usize = loads
            .iter()
            .map(|l| l.acked.iter().filter(|(_, s, _)| *s >= killed_at).count())
            .sum();
        assert!(after >= 5, "writes did not resume: {after} acknowledged");
        ens.restart(leader).await;
        ens.wait_serving(leader, ELECT).await;
        let tree = assert_same_trees(&ens).await;
        let acked = check_loads(&tree, &loads);
        println!("{acked} acknowledged writes, all present on all three members");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn observer_serves_reads_and_forwards_writes() {
    let _serial = serial().await;
    timed(150, async {
        // Each member's admin server, for `observers`.
        let admin: Vec<u16> = (0..4).map(|_| common::free_port()).collect();
        let mut opts = EnsembleOpts::voters(3).observers(1);
        for (i, port) in admin.iter().enumerate() {
            opts = opts.member_cfg(i, "admin.enableServer", "true").member_cfg(
                i,
                "admin.serverPort",
                port,
            );
        }
        let ens = Ensemble::start(opts).await;
        ens.wait_leader(ELECT).await;
        let obs = 3;
        assert_eq!(ens.mode(obs).await, Some(Mode::Observer));
        assert_eq!(ens.sid(obs), 103);
        // A write through a voter is read on the observer.
        let v = ens.client(0).await;
        v.create("/from-voter", b"v", &anyone()).await.unwrap();
        let o = ens.client(obs).await;
        o.sync("/").await.unwrap();
        assert_eq!(o.get_data("/from-voter").await.unwrap().0, b"v");
        // A write through the observer is forwarded and reaches the voters.
        o.create("/from-observer", b"o", &anyone()).await.unwrap();
        v.sync("/").await.unwrap();
        assert_eq!(v.get_data("/from-observer").await.unwrap().0, b"o");
        let tree = assert_same_trees(&ens).await;
        assert!(tree.contains_key("/from-observer"));
        // The leader counts voters only among its followers.
        let leader = ens.wait_leader(ELECT).await;
        let mntr = common::four_letter(&ens.addr(leader), "mntr").await;
        assert!(mntr.contains("zk_synced_followers\t2"), "{mntr}");
        assert!(mntr.contains("zk_synced_observers\t1"), "{mntr}");
        let mntr = common::four_letter(&ens.addr(obs), "mntr").await;
        assert!(mntr.contains("zk_server_state\tobserver"), "{mntr}");

        // The leader lists its observer's link as ZooKeeper's LearnerHandler reports it.
        let last = v.check_stat("/from-observer").await.unwrap().unwrap().mzxid;
        let port = admin[leader];
        let j = tokio::task::spawn_blocking(move || admin_get(port, "obsr"))
            .await
            .unwrap();
        assert_eq!(j["command"], "observers", "{j}");
        assert_eq!(j["synced_observers"], 1, "{j}");
        let o = &j["observers"][0];
        assert_eq!(o["sid"], 103, "{j}");
        assert!(
            o["remote_socket_address"]
                .as_str()
                .unwrap()
                .starts_with("/127."),
            "{j}"
        );
        assert!(
            o["established"].as_u64().unwrap() > 1_600_000_000_000,
            "{j}"
        );
        assert!(o["packets_sent"].as_u64().unwrap() >= 2, "{j}");
        assert!(o["packets_received"].as_u64().unwrap() >= 2, "{j}");
        // The observer forwarded its client's create.
        assert!(o["requests"].as_u64().unwrap() >= 1, "{j}");
        assert!(o["last_zxid"].as_i64().unwrap() >= last, "{j}");
        // orst clears them (a ping may land in between).
        let j = tokio::task::spawn_blocking(move || {
            admin_get(port, "orst");
            admin_get(port, "observers")
        })
        .await
        .unwrap();
        let o = &j["observers"][0];
        assert_eq!(
            (o["requests"].clone(), o["last_zxid"].clone()),
            (0.into(), (-1).into()),
            "{j}"
        );
        assert!(o["packets_received"].as_u64().unwrap() <= 2, "{j}");
        // Anyone but the leader has none to list.
        for i in (0..4).filter(|&i| i != leader) {
            let port = admin[i];
            let j = tokio::task::spawn_blocking(move || admin_get(port, "observers"))
                .await
                .unwrap();
            assert_eq!(j["synced_observers"], 0, "{i}: {j}");
            assert_eq!(j["observers"], serde_json::json!([]), "{i}: {j}");
        }
    })
    .await;
}

/// `GET /commands/<cmd>` on a member's admin server; the JSON body.
fn admin_get(port: u16, cmd: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /commands/{cmd} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    serde_json::from_slice(&raw[at..]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn isolated_leader_steps_down_and_majority_carries_on() {
    isolated_leader(false).await;
}

/// The same with links that go silent instead of closing: only timeouts tell.
#[tokio::test(flavor = "multi_thread")]
async fn silently_isolated_leader_steps_down_and_majority_carries_on() {
    isolated_leader(true).await;
}

async fn isolated_leader(silent: bool) {
    let _serial = serial().await;
    timed(420, async {
        let ens = Ensemble::start(EnsembleOpts::voters(3).partitionable()).await;
        let leader = ens.wait_leader(ELECT).await;
        let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let c = ens.client_any().await;
        c.create("/load", b"", &anyone()).await.unwrap();
        drop(c);
        // One client on the leader alone, two on the majority.
        let loaders = Loaders::start(vec![
            ens.addr(leader),
            ens.connect_string_of(&others),
            ens.connect_string_of(&others),
        ]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        // A session on the leader, for a write after the cut (kept open to the end).
        let mut tail = common::raw::RawConn::connect(&ens.addr(leader), 20_000)
            .await
            .unwrap();
        let cut_at = Instant::now();
        if silent {
            ens.isolate_silently(leader);
            // The leader has not noticed yet: a write sent to it now is logged there and never
            // chosen, a divergent tail for the TRUNC asserted below. (The loader's write in
            // flight at the cut may or may not have reached the followers first.)
            let body = common::raw::create_body("/load/tail", b"", 0);
            tail.send(common::raw::op::CREATE, &body).await.unwrap();
        } else {
            ens.isolate(leader);
        }
        let o = &ens.opts;
        let bound = Duration::from_millis(u64::from(o.sync_limit * o.tick_time)) + 10 * SEC;
        let took = ens.wait_not_serving(leader, bound).await;
        println!("isolated leader stopped serving after {took:?}");
        // Silent links make ZooKeeper slow here: a follower may follow the old leader's
        // ghost for initLimit ticks, and election notifications back off up to 60 s.
        let elect = if silent { 3 * ELECT } else { ELECT };
        let new_leader = ens.wait_leader(elect).await;
        assert_ne!(new_leader, leader);
        println!("isolation to a new leader: {:?}", cut_at.elapsed());
        let acked_at = write_succeeds(
            &ens.connect_string_of(&others),
            "/after-cut",
            Duration::from_secs(30),
        )
        .await;
        println!(
            "isolation to a write on the majority: {:?}",
            acked_at - cut_at
        );
        assert_eq!(ens.mode(leader).await, None, "isolated member serves again");
        tokio::time::sleep(Duration::from_secs(2)).await;
        ens.heal();
        ens.wait_serving(leader, ELECT).await;
        ens.wait_leader(ELECT).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let loads = loaders.finish().await;
        let tree = assert_same_trees(&ens).await;
        assert!(tree.contains_key("/after-cut"));
        let acked = check_loads(&tree, &loads);
        println!("{acked} acknowledged writes, all present on all three members");
        if silent && !common::is_zookeeper() {
            // The old leader logged its lone client's write while it still thought it led;
            // that entry was never chosen, so it came back by TRUNC.
            assert!(
                synced_by(&ens, leader, "trunc").await >= 1,
                "the old leader was not truncated:\n{}",
                common::four_letter(&ens.addr(leader), "mntr").await
            );
        }
    })
    .await;
}

/// How often member `i` was synced by `kind` (diff, trunc, snap) since it started: corral's
/// `mntr` counts it.
async fn synced_by(ens: &Ensemble, i: usize, kind: &str) -> u64 {
    let mntr = common::four_letter(&ens.addr(i), "mntr").await;
    let key = format!("corral_synced_by_{kind}\t");
    mntr.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in mntr:\n{mntr}"))
}

/// A follower that missed a few writes comes back by DIFF; one that missed more than the
/// leader keeps (500 records) comes back by SNAP. Each time its tree then equals the others' in
/// full. (The sync paths are asserted on
/// corral, which counts them in `mntr`; ZooKeeper runs the same steps.)
#[tokio::test(flavor = "multi_thread")]
async fn restarted_followers_rejoin_by_diff_and_by_snap() {
    let _serial = serial().await;
    timed(240, async {
        let mut ens = Ensemble::start(EnsembleOpts::voters(3)).await;
        let leader = ens.wait_leader(ELECT).await;
        let f = (leader + 1) % 3;
        let c = ens.client(leader).await;
        c.create("/r", b"", &anyone()).await.unwrap();
        for (round, missed, kind) in [(0, 20, "diff"), (1, 700, "snap")] {
            ens.kill9(f);
            for j in 0..missed {
                c.create(&format!("/r/{round}-{j}"), b"x", &anyone())
                    .await
                    .unwrap();
            }
            ens.restart(f).await;
            ens.wait_serving(f, ELECT).await;
            let tree = assert_same_trees(&ens).await;
            assert_eq!(tree["/r"].stat.num_children as usize, 20 + round * 700);
            if !common::is_zookeeper() {
                assert_eq!(synced_by(&ens, f, kind).await, 1, "round {round}");
                for other in ["diff", "trunc", "snap"].into_iter().filter(|k| *k != kind) {
                    assert_eq!(
                        synced_by(&ens, f, other).await,
                        0,
                        "{other} in round {round}"
                    );
                }
            }
        }
    })
    .await;
}

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn five_members_survive_two_failures_not_three() {
    let _serial = serial().await;
    timed(240, async {
        let mut ens = Ensemble::start(EnsembleOpts::voters(5)).await;
        let leader = ens.wait_leader(ELECT).await;
        let followers: Vec<usize> = (0..5).filter(|&i| i != leader).collect();
        ens.kill9(followers[0]);
        ens.kill9(followers[1]);
        let alive: Vec<usize> = vec![leader, followers[2], followers[3]];
        assert_eq!(ens.wait_leader(ELECT).await, leader);
        write_succeeds(
            &ens.connect_string_of(&alive),
            "/two-down",
            Duration::from_secs(30),
        )
        .await;
        // A client with a session on the survivors before the quorum goes.
        let c = ens.client(leader).await;
        ens.kill9(followers[2]);
        let o = &ens.opts;
        let bound = Duration::from_millis(u64::from(o.sync_limit * o.tick_time)) + 10 * SEC;
        for i in [leader, followers[3]] {
            ens.wait_not_serving(i, bound).await;
        }
        match tokio::time::timeout(
            Duration::from_secs(8),
            c.create("/no-quorum", b"", &anyone()),
        )
        .await
        {
            Ok(Ok(_)) => panic!("a write succeeded without a quorum"),
            Ok(Err(e)) => println!("write without quorum: {e}"),
            Err(_) => println!("write without quorum: no reply within 8 s"),
        }
        for i in [leader, followers[3]] {
            let srvr = common::four_letter(&ens.addr(i), "srvr").await;
            assert!(
                srvr.contains("This ZooKeeper instance is not currently serving requests"),
                "member {i} without a quorum: {srvr:?}"
            );
        }
        ens.restart(followers[0]).await;
        ens.wait_leader(ELECT).await;
        let alive: Vec<usize> = vec![leader, followers[0], followers[3]];
        write_succeeds(
            &ens.connect_string_of(&alive),
            "/quorum-again",
            Duration::from_secs(30),
        )
        .await;
        ens.restart(followers[1]).await;
        ens.restart(followers[2]).await;
        for i in 0..5 {
            ens.wait_serving(i, ELECT).await;
        }
        let tree = assert_same_trees(&ens).await;
        assert!(tree.contains_key("/two-down"));
        assert!(tree.contains_key("/quorum-again"));
        // dump_tree is also usable on its own.
        assert_eq!(dump_tree(&ens.addr(leader)).await.len(), tree.len());
    })
    .await;
}

/// corral keeps a follower's clients through a quick election (`corral.electionGraceMs`,
/// docs/decisions.md): when the leader dies, a session on a follower sees no disconnection,
/// and a write it sends meanwhile is held and carried out under the new leader. With the grace
/// off (0) the follower closes its clients at once, as ZooKeeper's followers do. (corral only:
/// ZooKeeper has no grace.)
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_keeps_its_clients_through_an_election() {
    if common::is_zookeeper() {
        return;
    }
    let _serial = serial().await;
    timed(180, async {
        for grace in [None, Some(0)] {
            let mut opts = EnsembleOpts::voters(3);
            if let Some(ms) = grace {
                opts = opts.cfg("corral.electionGraceMs", ms);
            }
            let mut ens = Ensemble::start(opts).await;
            let leader = ens.wait_leader(ELECT).await;
            let f = (leader + 1) % 3;
            let c = ens.client(f).await;
            c.create("/before", b"", &anyone()).await.unwrap();
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut st = c.state_watcher();
            let record = seen.clone();
            let watcher = tokio::spawn(async move {
                loop {
                    let s = st.changed().await;
                    record.lock().unwrap().push(s);
                    if matches!(s, zk::SessionState::Expired | zk::SessionState::Closed) {
                        return;
                    }
                }
            });
            ens.kill9(leader);
            let write =
                tokio::time::timeout(Duration::from_secs(10), c.create("/during", b"", &anyone()))
                    .await;
            ens.wait_serving(f, ELECT).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            watcher.abort();
            let seen = seen.lock().unwrap().clone();
            if grace.is_none() {
                write.expect("the held write timed out").unwrap();
                assert!(seen.is_empty(), "the session saw {seen:?}");
            } else {
                assert!(
                    seen.contains(&zk::SessionState::Disconnected),
                    "no disconnection with the grace off: {seen:?}, write {write:?}"
                );
            }
        }
    })
    .await;
}

/// A leader under steady pipelined load, which always has proposals in flight, still takes
/// snapshots (every snapCount/2..snapCount txns), and so do its followers; after a restart
/// every member recovers from them. (corral counts snapshots in `mntr`; ZooKeeper runs the
/// same steps.)
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_leader_takes_snapshots() {
    let _serial = serial().await;
    timed(180, async {
        let mut ens = Ensemble::start(EnsembleOpts::voters(3).cfg("snapCount", 200)).await;
        let leader = ens.wait_leader(ELECT).await;
        let c = ens.client(leader).await;
        c.create("/s", b"", &anyone()).await.unwrap();
        // A window of 100 writes always in flight: no pause in which everything is committed.
        let mut writes: tokio::task::JoinSet<Result<(), zk::Error>> = tokio::task::JoinSet::new();
        for j in 0..2000 {
            if writes.len() >= 100 {
                writes.join_next().await.unwrap().unwrap().unwrap();
            }
            let c = c.clone();
            writes.spawn(async move {
                c.create(&format!("/s/{j}"), b"x", &anyone())
                    .await
                    .map(|_| ())
            });
        }
        while let Some(w) = writes.join_next().await {
            w.unwrap().unwrap();
        }
        if !common::is_zookeeper() {
            for i in 0..3 {
                let (taken, mntr) = snapshots_taken(&ens.addr(i)).await;
                // One every 100..200 records: 10 to 20 for 2000 creates.
                assert!(taken >= 6, "member {i} took {taken} snapshots:\n{mntr}");
            }
        }
        let f = (leader + 1) % 3;
        ens.kill9(f);
        ens.restart(f).await;
        ens.wait_serving(f, ELECT).await;
        let tree = assert_same_trees(&ens).await;
        assert_eq!(tree["/s"].stat.num_children, 2000);
    })
    .await;
}

/// How many snapshots a corral member has taken (`mntr`), and the whole `mntr` answer.
async fn snapshots_taken(addr: &str) -> (u64, String) {
    let mntr = common::four_letter(addr, "mntr").await;
    let taken = mntr
        .lines()
        .find_map(|l| l.strip_prefix("corral_snapshot_taken\t"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (taken, mntr)
}

/// Snapshots keep pace with the log on every member while writes never stop: three raw
/// connections, one per member, each keep 200 setData in flight, so a leader always has
/// proposals uncommitted and a follower always has proposals logged and not yet committed. A
/// member that snapshots only when nothing is in flight lets its log (and its recovery) grow
/// without bound under such a load.
#[tokio::test(flavor = "multi_thread")]
async fn snapshots_keep_pace_with_sustained_pipelined_writes() {
    use common::raw::{op, Enc, RawConn};
    let _serial = serial().await;
    timed(240, async {
        let ens = Ensemble::start(EnsembleOpts::voters(3).cfg("snapCount", 1000)).await;
        ens.wait_leader(ELECT).await;
        let setup = ens.client_any().await;
        setup.create("/k", b"", &anyone()).await.unwrap();
        const PER_CONN: usize = 8000;
        const WINDOW: usize = 200;
        let mut conns = Vec::new();
        for i in 0..3 {
            let addr = ens.addr(i);
            conns.push(tokio::spawn(async move {
                let mut c = RawConn::connect(&addr, 20_000).await.unwrap();
                let body = Enc::new().str("/k").buf(Some(b"x")).i32(-1).finish();
                let (mut sent, mut answered) = (0, 0);
                while answered < PER_CONN {
                    while sent < PER_CONN && sent - answered < WINDOW {
                        c.send(op::SET_DATA, &body).await.unwrap();
                        sent += 1;
                    }
                    let r = c.recv().await.unwrap();
                    assert_eq!(r.err, 0, "setData failed");
                    answered += 1;
                }
            }));
        }
        for c in conns {
            c.await.unwrap();
        }
        // ZooKeeper snapshots on its own thread whatever is in flight; `mntr` has no count.
        if common::is_zookeeper() {
            return;
        }
        for i in 0..3 {
            let (taken, mntr) = snapshots_taken(&ens.addr(i)).await;
            // One every 500..1000 records: 24 to 48 for 24,000 writes (25 to 28 measured). A
            // member that waited until nothing was in flight took as few as 11.
            assert!(taken >= 18, "member {i} took {taken} snapshots:\n{mntr}");
        }
    })
    .await;
}

/// A session moves to another member when its member dies: same session id, its ephemeral node
/// stays, and the watches it had set fire with the right events for what changed while it was
/// away (the client re-sets them with setWatches and the last zxid it saw).
#[tokio::test(flavor = "multi_thread")]
async fn a_session_moves_with_its_ephemerals_and_watches() {
    let _serial = serial().await;
    timed(180, async {
        let mut ens = Ensemble::start(EnsembleOpts::voters(3)).await;
        ens.wait_leader(ELECT).await;
        let setup = ens.client_any().await;
        for p in ["/w", "/p"] {
            setup.create(p, b"0", &anyone()).await.unwrap();
        }
        let c = ens.client_any().await;
        let session = c.session_id();
        c.create("/e", b"", &common::mode(zk::CreateMode::Ephemeral))
            .await
            .unwrap();
        let (_, _, data_w) = c.get_and_watch_data("/w").await.unwrap();
        let (_, exists_w) = c.check_and_watch_stat("/gone").await.unwrap();
        let (_, _, child_w) = c.get_and_watch_children("/p").await.unwrap();
        // The member the session is on: the one whose `cons` lists it.
        let sid = format!("sid=0x{:x}", session.0);
        let mut home = None;
        for i in 0..3 {
            if common::four_letter(&ens.addr(i), "cons")
                .await
                .contains(&sid)
            {
                home = Some(i);
            }
        }
        let home = home.expect("no member lists the session");
        ens.kill9(home);
        // While it is away, another client changes all three watched nodes.
        let others: Vec<usize> = (0..3).filter(|&i| i != home).collect();
        let d = common::connect(&ens.connect_string_of(&others)).await;
        d.set_data("/w", b"1", None).await.unwrap();
        d.create("/gone", b"", &anyone()).await.unwrap();
        d.create("/p/c", b"", &anyone()).await.unwrap();
        let within = Duration::from_secs(30);
        let ev = tokio::time::timeout(within, data_w.changed())
            .await
            .unwrap();
        assert_eq!(ev.event_type, zk::EventType::NodeDataChanged);
        let ev = tokio::time::timeout(within, exists_w.changed())
            .await
            .unwrap();
        assert_eq!(ev.event_type, zk::EventType::NodeCreated);
        let ev = tokio::time::timeout(within, child_w.changed())
            .await
            .unwrap();
        assert_eq!(ev.event_type, zk::EventType::NodeChildrenChanged);
        assert_eq!(c.session_id(), session);
        let (_, st) = c.get_data("/e").await.unwrap();
        assert_eq!(st.ephemeral_owner, session.0);
        ens.restart(home).await;
        ens.wait_serving(home, ELECT).await;
        assert_same_trees(&ens).await;
    })
    .await;
}

/// A watch fires before its data is readable, on a follower, across the leader's SIGKILL: a
/// raw client on a follower sets a data watch, then reads until it sees a newer version; the
/// NodeDataChanged event must have come first on the wire. Writers on the other members change
/// the node all along; the leader is killed halfway and restarted. A connection that drops (as
/// ZooKeeper's do when their member loses its leader) is opened again, with a new watch.
#[tokio::test(flavor = "multi_thread")]
async fn a_watch_fires_before_its_data_is_readable_across_a_failover() {
    use common::raw::{op, RawConn};
    let _serial = serial().await;
    timed(240, async {
        let mut ens = Ensemble::start(EnsembleOpts::voters(3)).await;
        let leader = ens.wait_leader(ELECT).await;
        let x = (leader + 1) % 3;
        let setup = ens.client_any().await;
        setup.create("/w", b"0", &anyone()).await.unwrap();
        drop(setup);
        let stop = Arc::new(AtomicBool::new(false));
        let others: Vec<usize> = (0..3).filter(|&i| i != x).collect();
        let writer = {
            let (connect, stop) = (ens.connect_string_of(&others), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let connector =
                        zk::Client::connector().with_session_timeout(Duration::from_secs(20));
                    let Ok(c) = connector.connect(&connect).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        if c.set_data("/w", n.to_string().as_bytes(), None)
                            .await
                            .is_err()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                n
            })
        };
        let addr = ens.addr(x);
        let mut checked = 0;
        let mut killed = false;
        let mut conn: Option<RawConn> = None;
        let start = Instant::now();
        while checked < 60 || !killed {
            assert!(
                start.elapsed() < Duration::from_secs(150),
                "{checked} checks only"
            );
            if checked == 30 && !killed {
                ens.kill9(leader);
                killed = true;
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match RawConn::connect(&addr, 20_000).await {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // Set a watch, then read without one until the data changes.
            let Ok(r) = c.call(op::GET_DATA, &get_data_body("/w", true)).await else {
                conn = None;
                continue;
            };
            assert_eq!(r.err, 0);
            let mut d = r.dec();
            let _ = d.buf();
            let seen = d.stat().version;
            let _ = c.notifications();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut dropped = false;
            loop {
                let Ok(r) = c.call(op::GET_DATA, &get_data_body("/w", false)).await else {
                    dropped = true;
                    break;
                };
                let mut d = r.dec();
                let _ = d.buf();
                if d.stat().version > seen {
                    let events: Vec<(i32, i32, String)> =
                        c.notifications().iter().map(|n| n.event()).collect();
                    assert!(
                        events.iter().any(|(t, _, p)| *t == 3 && p == "/w"),
                        "version {} read after a watch set at {seen} without its event \
                         (events {events:?}, check {checked}, killed {killed})",
                        d.stat().version
                    );
                    checked += 1;
                    break;
                }
                assert!(Instant::now() < deadline, "/w did not change for 30 s");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if dropped {
                conn = None;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let writes = writer.await.unwrap();
        println!("{checked} watch-before-data checks, {writes} writes");
        ens.restart(leader).await;
        ens.wait_serving(leader, ELECT).await;
        assert_same_trees(&ens).await;
    })
    .await;
}

fn get_data_body(path: &str, watch: bool) -> Vec<u8> {
    common::raw::Enc::new().str(path).bool(watch).finish()
}
