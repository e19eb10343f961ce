//! Linearizability of a three-member ensemble under kill and partition faults, judged by the
//! checker in tests/common/lincheck.rs (docs/design/lincheck.md).
//!
//! Six clients (three pinned to one member each, three on the full connect string) run reads,
//! unconditional sets and conditional sets (the version last seen) with unique data over a few
//! keys, while the test kills the leader with SIGKILL and restarts it, then cuts the next
//! leader off silently and later the one after that noisily, healing each time. Every op is
//! recorded with its invocation and return times; a request answered by connection loss,
//! timeout or session expiry is recorded as `Outcome::Unknown`. Reads count only as
//! `sync(path)` then `getData(path)` on one session, timed from before the sync: a plain read
//! on a follower is only sequentially consistent in ZooKeeper, not linearizable.
//!
//! After the run the history must be linearizable, every member must hold the same tree, and
//! the same history with a planted stale read, or a planted lost write, must be judged illegal
//! (so the check can fail on a real history of this shape, not only on hand-built ones).
//!
//! `LIN_SEED=N` fixes the clients' random choices (the faults' timing is not reproducible).
//! Validated against Apache ZooKeeper 3.8 with `CORRAL_TEST_TARGET=zookeeper`.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ensemble::{assert_same_trees, serial, Ensemble, EnsembleOpts};
use common::lincheck::{check, History, Op, Operation, Outcome};
use common::{anyone, timed};
use futures_lite::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::AssertUnwindSafe;
use zookeeper_client as zk;

const KEYS: usize = 12;
const CLIENTS: usize = 6;
/// Per request: past this the outcome is Unknown and the session is abandoned.
const OP_TIMEOUT: Duration = Duration::from_secs(6);
/// The client id of the set-up creates and the final reads.
const ADMIN: u64 = 1000;

fn key(k: usize) -> String {
    format!("/lin/k{k:02}")
}

/// Elections: corral takes well under a second; ZooKeeper after a silent isolation can take
/// minutes (notification back-off), so its bound is generous.
fn elect_bound() -> Duration {
    if common::is_zookeeper() {
        Duration::from_secs(180)
    } else {
        Duration::from_secs(60)
    }
}

/// How long an isolated leader may keep serving: it notices after syncLimit ticks.
fn step_down_bound(ens: &Ensemble) -> Duration {
    let o = &ens.opts;
    Duration::from_millis(u64::from(o.sync_limit * o.tick_time)) + Duration::from_secs(20)
}

/// A request's outcome from the client's point of view.
enum Failure {
    /// A definite answer the model knows (NoNode, BadVersion...).
    Definite(Outcome),
    /// No definite answer; `drop` says the session is gone or stuck: open a new one.
    Unknown { drop: bool },
}

fn classify(r: Result<zk::Error, tokio::time::error::Elapsed>) -> Failure {
    match r {
        Ok(zk::Error::BadVersion) => Failure::Definite(Outcome::BadVersion),
        Ok(zk::Error::NoNode) => Failure::Definite(Outcome::NoNode),
        Ok(zk::Error::NodeExists) => Failure::Definite(Outcome::NodeExists),
        Ok(zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::NoHosts) => {
            Failure::Unknown { drop: true }
        }
        Ok(_) => Failure::Unknown { drop: false },
        Err(_elapsed) => Failure::Unknown { drop: true },
    }
}

async fn connect(connect: &str) -> Option<zk::Client> {
    let connector = zk::Client::connector().with_session_timeout(Duration::from_secs(10));
    match tokio::time::timeout(Duration::from_secs(8), connector.connect(connect)).await {
        Ok(Ok(c)) => Some(c),
        _ => None,
    }
}

/// One client: random ops on random keys until `stop`; a new session whenever the last one
/// is lost. Returns how many sessions it opened.
async fn client_loop(
    id: u64,
    connect_to: String,
    hist: History,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> u32 {
    let mut rng = StdRng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut client: Option<zk::Client> = None;
    let mut sessions = 0;
    // The version this client last saw per key: what its conditional sets expect.
    let mut seen: HashMap<usize, i32> = (0..KEYS).map(|k| (k, 0)).collect();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = client.clone() else {
            client = connect(&connect_to).await;
            if client.is_some() {
                sessions += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        let k = rng.gen_range(0..KEYS);
        let path = key(k);
        let mut roll = rng.gen_range(0..10);
        if roll >= 6 && !seen.contains_key(&k) {
            // A conditional set needs a version: read first.
            roll = 0;
        }
        let failure = if roll < 4 {
            // Linearizable read: the invocation is recorded before the sync.
            let op = hist.invoke(id, &path, Op::Read);
            let r = match tokio::time::timeout(OP_TIMEOUT, c.sync(&path)).await {
                Ok(Ok(())) => tokio::time::timeout(OP_TIMEOUT, c.get_data(&path)).await,
                Ok(Err(e)) => Ok(Err(e)),
                Err(e) => Err(e),
            };
            match r {
                Ok(Ok((data, stat))) => {
                    seen.insert(k, stat.version);
                    hist.ret(op, Outcome::Data(data, stat.version));
                    None
                }
                Ok(Err(e)) => Some((op, classify(Ok(e)))),
                Err(e) => Some((op, classify(Err(e)))),
            }
        } else {
            seq += 1;
            let data = format!("c{id}-{seq}").into_bytes();
            let expect = if roll < 6 { None } else { Some(seen[&k]) };
            let op = hist.invoke(
                id,
                &path,
                match expect {
                    None => Op::Set(data.clone()),
                    Some(version) => Op::Cas {
                        version,
                        data: data.clone(),
                    },
                },
            );
            match tokio::time::timeout(OP_TIMEOUT, c.set_data(&path, &data, expect)).await {
                Ok(Ok(stat)) => {
                    seen.insert(k, stat.version);
                    hist.ret(op, Outcome::Version(stat.version));
                    None
                }
                Ok(Err(e)) => Some((op, classify(Ok(e)))),
                Err(e) => Some((op, classify(Err(e)))),
            }
        };
        match failure {
            None => {}
            Some((op, Failure::Definite(outcome))) => {
                if outcome == Outcome::BadVersion {
                    // Someone else wrote: read again before the next conditional set.
                    seen.remove(&k);
                }
                hist.ret(op, outcome);
            }
            Some((op, Failure::Unknown { drop })) => {
                hist.ret(op, Outcome::Unknown);
                if drop {
                    client = None;
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..8))).await;
    }
    sessions
}

/// Opens a session on `connect_to` within `limit` (panics after).
async fn session(connect_to: &str, limit: Duration) -> zk::Client {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(c) = connect(connect_to).await {
            return c;
        }
        assert!(Instant::now() < deadline, "no session on {connect_to}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Records `create(path)` through `c`; set-up must succeed.
async fn recorded_create(hist: &History, c: &zk::Client, path: &str) {
    let data = format!("init-{path}").into_bytes();
    let op = hist.invoke(ADMIN, path, Op::Create(data.clone()));
    common::within(OP_TIMEOUT, "create", c.create(path, &data, &anyone()))
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
    hist.ret(op, Outcome::Ok);
}

/// Writes the history to a file kept after the test, one op per line; returns its path.
fn save_history(ops: &[Operation], seed: u64) -> String {
    let path = std::env::temp_dir().join(format!(
        "corral-linearizable-{seed}-{}.txt",
        std::process::id()
    ));
    let mut s = String::new();
    for o in ops {
        let _ = writeln!(s, "{o:?}");
    }
    std::fs::write(&path, s).expect("write history");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_clients_under_kill_and_partition_are_linearizable() {
    let _serial = serial().await;
    let zk_target = common::is_zookeeper();
    timed(if zk_target { 900 } else { 240 }, async {
        let seed: u64 = std::env::var("LIN_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| rand::thread_rng().gen_range(0..1_000_000));
        println!("LIN_SEED={seed} target {:?}", common::target());
        let t0 = Instant::now();
        let mut ens = Ensemble::start(EnsembleOpts::voters(3).partitionable()).await;
        let elect = elect_bound();
        let leader1 = ens.wait_leader(elect).await;
        let hist = History::new();
        {
            let c = session(&ens.connect_string(), Duration::from_secs(30)).await;
            common::within(OP_TIMEOUT, "create /lin", c.create("/lin", b"", &anyone()))
                .await
                .expect("create /lin");
            for k in 0..KEYS {
                recorded_create(&hist, &c, &key(k)).await;
            }
        }

        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                // Clients 0..3 pinned to one member each, 3..6 on the whole ensemble.
                let to = if i < 3 {
                    ens.addr(i)
                } else {
                    ens.connect_string()
                };
                tokio::spawn(client_loop(
                    i as u64,
                    to,
                    hist.clone(),
                    seed,
                    stop.clone(),
                ))
            })
            .collect();
        let load_start = Instant::now();
        // Guarded, so that if the faults break the ensemble (a member that crashes and never
        // serves again) the history recorded so far is still checked and saved.
        let script = AssertUnwindSafe(faults(&mut ens, &hist, load_start, leader1))
            .catch_unwind()
            .await;
        stop.store(true, Ordering::SeqCst);
        let mut sessions = Vec::new();
        for t in tasks {
            sessions.push(
                common::within(Duration::from_secs(30), "client stops", t)
                    .await
                    .expect("client task"),
            );
        }
        println!(
            "[{:>6.1?}] clients stopped; sessions opened per client: {sessions:?}",
            load_start.elapsed()
        );
        let marks = match script {
            Ok(marks) => marks,
            Err(panic) => {
                let ops = hist.operations();
                let file = save_history(&ops, seed);
                let verdict = check(&ops, Duration::from_secs(120));
                println!(
                    "the fault script failed; the {} ops recorded until then (saved to {file}) are: {verdict}",
                    ops.len()
                );
                std::panic::resume_unwind(panic);
            }
        };
        ens.wait_leader(elect).await;

        // Final linearizable reads of every key: an acknowledged write lost by the ensemble
        // shows up here even if no client read the key afterwards.
        tokio::time::sleep(Duration::from_millis(5)).await;
        {
            let c = session(&ens.connect_string(), Duration::from_secs(30)).await;
            for k in 0..KEYS {
                let path = key(k);
                let op = hist.invoke(ADMIN, &path, Op::Read);
                common::within(OP_TIMEOUT, "final sync", c.sync(&path))
                    .await
                    .expect("final sync");
                let (data, stat) = common::within(OP_TIMEOUT, "final read", c.get_data(&path))
                    .await
                    .expect("final read");
                hist.ret(op, Outcome::Data(data, stat.version));
            }
        }

        let ops = hist.operations();
        let unknown = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Unknown || o.ret.is_none())
            .count();
        let reads = ops.iter().filter(|o| o.op == Op::Read).count();
        let started = Instant::now();
        let verdict = check(&ops, Duration::from_secs(120));
        println!(
            "{} ops ({reads} reads, {unknown} unknown outcomes) over {:.1?} of load; check took {:?}: {verdict}",
            ops.len(),
            load_start.elapsed(),
            started.elapsed()
        );
        if !verdict.is_ok() {
            let file = save_history(&ops, seed);
            let mut logs = String::new();
            for i in 0..ens.len() {
                let _ = write!(logs, "--- member {i} (sid {}) ---\n{}\n", ens.sid(i), ens.log_tail(i));
            }
            panic!("seed {seed}: {verdict}\nhistory saved to {file}\n{logs}");
        }

        // The clients carried on after every fault: the test judged real traffic under
        // each new leader, not only before the first fault.
        for (n, &mark) in marks.iter().enumerate() {
            let answered = ops[mark..]
                .iter()
                .filter(|o| o.client != ADMIN && o.ret.is_some() && o.outcome != Outcome::Unknown)
                .count();
            println!("answered ops after leader change {}: {answered}", n + 1);
            assert!(answered >= 100, "clients stalled after leader change {}", n + 1);
        }

        // Every member holds the same tree, and it agrees with the final reads.
        let tree = assert_same_trees(&ens).await;
        for o in ops.iter().filter(|o| o.client == ADMIN && o.op == Op::Read) {
            let node = &tree[&o.key];
            assert_eq!(
                o.outcome,
                Outcome::Data(node.data.clone(), node.stat.version),
                "{}",
                o.key
            );
        }

        plant_stale_read(&ops);
        plant_lost_write(&ops);
        println!("whole test: {:.1?}", t0.elapsed());
    })
    .await;
}

/// Kill -9 of the leader and restart; silent isolation of the next leader and heal; noisy
/// isolation of the one after and heal. Returns the history's length at each leader change.
async fn faults(
    ens: &mut Ensemble,
    hist: &History,
    load_start: Instant,
    leader1: usize,
) -> Vec<usize> {
    let elect = elect_bound();
    let phase = |what: &str| println!("[{:>6.1?}] {what}", load_start.elapsed());
    // History lengths when each new leader was found: ops are stored in invocation
    // order, so the ops past a mark were invoked after it.
    let mut marks = Vec::new();

    // Fault 1: kill -9 the leader, let the others elect, restart it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    phase(&format!("kill -9 leader member {leader1}"));
    ens.kill9(leader1);
    let leader2 = ens.wait_leader(elect).await;
    assert_ne!(leader2, leader1);
    phase(&format!("new leader member {leader2}"));
    marks.push(hist.len());
    tokio::time::sleep(Duration::from_secs(3)).await;
    ens.restart(leader1).await;
    ens.wait_serving(leader1, elect).await;
    phase(&format!("member {leader1} back"));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Fault 2: cut the new leader off silently (only timeouts tell), then heal.
    phase(&format!("isolate leader member {leader2} silently"));
    ens.isolate_silently(leader2);
    ens.wait_not_serving(leader2, step_down_bound(ens)).await;
    phase(&format!("member {leader2} stopped serving"));
    let leader3 = ens.wait_leader(elect).await;
    assert_ne!(leader3, leader2);
    phase(&format!("new leader member {leader3}"));
    marks.push(hist.len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    ens.heal();
    ens.wait_serving(leader2, elect).await;
    phase(&format!("healed, member {leader2} back"));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Fault 3: cut the leader off with closed links, then heal.
    phase(&format!("isolate leader member {leader3}"));
    ens.isolate(leader3);
    ens.wait_not_serving(leader3, step_down_bound(ens)).await;
    let leader4 = ens.wait_leader(elect).await;
    assert_ne!(leader4, leader3);
    phase(&format!("new leader member {leader4}"));
    marks.push(hist.len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    ens.heal();
    ens.wait_serving(leader3, elect).await;
    phase(&format!("healed, member {leader3} back"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    marks
}

/// Asserts that `ops` is judged illegal, and prints why.
fn assert_illegal(ops: &[Operation], what: &str) {
    let started = Instant::now();
    let verdict = check(ops, Duration::from_secs(120));
    println!("planted {what}: {:?} to reject", started.elapsed());
    assert!(verdict.is_illegal(), "planted {what} not caught: {verdict}");
    println!("{verdict}");
}

/// The data a key held at each version, as far as acknowledged ops tell: version 0 from its
/// create, version v from the set that returned `Version(v)` (data is unique per write).
fn acked_versions(ops: &[Operation], path: &str) -> HashMap<i32, Vec<u8>> {
    let mut out = HashMap::new();
    for o in ops.iter().filter(|o| o.key == path && o.ret.is_some()) {
        match (&o.op, &o.outcome) {
            (Op::Create(d), Outcome::Ok) => {
                out.insert(0, d.clone());
            }
            (Op::Set(d) | Op::Cas { data: d, .. }, Outcome::Version(v)) => {
                out.insert(*v, d.clone());
            }
            _ => {}
        }
    }
    out
}

/// A stale read: right after an acknowledged write W on key k returned `Version(v)`, a read
/// returns the data and version k had before W (`v - 1`), as a member that had not applied
/// W yet would answer. Illegal for sure: W took effect before it returned, so from then on
/// k's version is at least v (no key is ever deleted, so versions only grow), and the read,
/// invoked after that, cannot see version v - 1.
fn plant_stale_read(ops: &[Operation]) {
    // The last acknowledged write whose previous version's data is known.
    let (w, previous) = ops
        .iter()
        .filter(|o| o.client != ADMIN)
        .filter_map(|o| match (&o.op, &o.outcome, o.ret) {
            (Op::Set(_) | Op::Cas { .. }, Outcome::Version(v), Some(_)) => {
                let data = acked_versions(ops, &o.key).get(&(v - 1))?.clone();
                Some((o, (data, v - 1)))
            }
            _ => None,
        })
        .max_by_key(|(o, _)| o.ret)
        .expect("no acknowledged write to plant a stale read after");
    let at = w.ret.unwrap();
    let mut planted = ops.to_vec();
    planted.push(Operation {
        client: 2000,
        key: w.key.clone(),
        op: Op::Read,
        outcome: Outcome::Data(previous.0, previous.1),
        invoke: at + 1,
        ret: Some(at + 2),
    });
    assert_illegal(&planted, "stale read");
}

/// A lost write: after every client has stopped, a set of key k is acknowledged with
/// `Version(V + 1)` where V is k's version then, and the final read of k (invoked after that
/// acknowledgement) still returns V's data and version, as if the ensemble had dropped the
/// write. Illegal for sure: once the set returned, k's version is at least V + 1 for good.
fn plant_lost_write(ops: &[Operation]) {
    let final_read = ops
        .iter()
        .rev()
        .find(|o| o.client == ADMIN && o.op == Op::Read)
        .expect("final reads");
    let Outcome::Data(_, v) = final_read.outcome else {
        panic!("final read {final_read:?}");
    };
    // Half a millisecond before the final read, after every client op that returned.
    let last_client_ret = ops
        .iter()
        .filter(|o| o.client != ADMIN)
        .filter_map(|o| o.ret)
        .max()
        .unwrap();
    let (invoke, ret) = (final_read.invoke - 500_000, final_read.invoke - 1);
    assert!(invoke > last_client_ret, "no room before the final read");
    let mut planted = ops.to_vec();
    planted.push(Operation {
        client: 2001,
        key: final_read.key.clone(),
        op: Op::Set(b"planted-lost".to_vec()),
        outcome: Outcome::Version(v + 1),
        invoke,
        ret: Some(ret),
    });
    assert_illegal(&planted, "lost write");
}
