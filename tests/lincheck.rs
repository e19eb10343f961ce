//! The linearizability checker (tests/common/lincheck.rs) on its own: hand-built histories
//! with planted anomalies (stale read, lost write, impossible compare-and-set, unknown
//! outcomes), seeded random histories of a truly linearizable register with one read then
//! corrupted, the recorder under concurrent tokio tasks, and a timing sanity bound.
//!
//! `LINCHECK_SEED=N` replays one seed of the randomized tests.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::lincheck::{check, History, Op, Operation, Outcome, Verdict};
use common::timed;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BUDGET: Duration = Duration::from_secs(20);

fn v(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

fn data(n: u64, version: i32) -> Outcome {
    Outcome::Data(v(n), version)
}

/// A hand-built op on key "/k" (times in arbitrary units).
fn op(client: u64, op: Op, outcome: Outcome, invoke: u64, ret: u64) -> Operation {
    Operation {
        client,
        key: "/k".to_string(),
        op,
        outcome,
        invoke,
        ret: Some(ret),
    }
}

fn unknown(client: u64, o: Op, invoke: u64) -> Operation {
    Operation {
        client,
        key: "/k".to_string(),
        op: o,
        outcome: Outcome::Unknown,
        invoke,
        ret: None,
    }
}

fn set(n: u64) -> Op {
    Op::Set(v(n))
}

fn cas(version: i32, n: u64) -> Op {
    Op::Cas {
        version,
        data: v(n),
    }
}

/// create(0) at [0,1]: the node exists from then on with data 0, version 0.
fn created() -> Operation {
    op(0, Op::Create(v(0)), Outcome::Ok, 0, 1)
}

#[track_caller]
fn assert_ok(ops: &[Operation]) {
    let verdict = check(ops, BUDGET);
    assert!(
        verdict.is_ok(),
        "expected linearizable: {verdict}\n{ops:#?}"
    );
}

#[track_caller]
fn assert_illegal(ops: &[Operation]) -> String {
    match check(ops, BUDGET) {
        Verdict::Illegal { key, explanation } => {
            println!("as expected, {key}:\n{explanation}");
            explanation
        }
        other => panic!("expected Illegal, got {other}\n{ops:#?}"),
    }
}

#[test]
fn sequential_histories_pass() {
    let mut t = 10;
    let mut next = || {
        t += 10;
        (t, t + 5)
    };
    let mut h = Vec::new();
    let mut push = |o: Op, r: Outcome| {
        let (a, b) = next();
        h.push(op(1, o, r, a, b));
    };
    push(Op::Read, Outcome::NoNode);
    push(Op::Delete { version: -1 }, Outcome::NoNode);
    push(set(9), Outcome::NoNode);
    push(Op::Create(v(1)), Outcome::Ok);
    push(Op::Create(v(7)), Outcome::NodeExists);
    push(Op::Read, data(1, 0));
    push(set(2), Outcome::Version(1));
    push(Op::Read, data(2, 1));
    push(cas(0, 3), Outcome::BadVersion);
    push(cas(1, 3), Outcome::Version(2));
    push(Op::Read, data(3, 2));
    push(Op::Delete { version: 1 }, Outcome::BadVersion);
    push(Op::Delete { version: 2 }, Outcome::Ok);
    push(Op::Read, Outcome::NoNode);
    push(cas(0, 4), Outcome::NoNode);
    push(Op::Create(v(5)), Outcome::Ok);
    push(Op::Read, data(5, 0));
    assert_ok(&h);

    // The same history with the re-created node's version not restarting at 0 is wrong.
    let mut bad = h.clone();
    bad.last_mut().unwrap().outcome = data(5, 3);
    let why = assert_illegal(&bad);
    assert!(why.contains("read -> \"5\" v3"), "{why}");
}

#[test]
fn concurrent_writes_with_reads_of_either_value_pass() {
    // set(1) and set(2) overlap; the version each got says which went first.
    for (v1, v2) in [(1, 2), (2, 1)] {
        let last = if v1 > v2 { 1 } else { 2 };
        let h = vec![
            created(),
            op(1, set(1), Outcome::Version(v1), 10, 30),
            op(2, set(2), Outcome::Version(v2), 12, 32),
            op(3, Op::Read, data(0, 0), 11, 20),
            op(4, Op::Read, data(1, v1), 13, 35),
            op(5, Op::Read, data(2, v2), 14, 36),
            op(3, Op::Read, data(last, 2), 25, 40),
            op(6, Op::Read, data(last, 2), 50, 51),
        ];
        assert_ok(&h);
        // After both returned, only the later one's value can be read.
        let first = 3 - last;
        let mut bad = h.clone();
        bad[7].outcome = data(first, 1);
        assert_illegal(&bad);
    }
}

#[test]
fn stale_read_is_illegal() {
    let h = vec![
        created(),
        op(1, set(1), Outcome::Version(1), 10, 20),
        op(1, set(2), Outcome::Version(2), 30, 40),
        // Starts after set(2) returned, yet sees 1.
        op(2, Op::Read, data(1, 1), 50, 60),
    ];
    let why = assert_illegal(&h);
    assert!(why.contains("client 2: read -> \"1\" v1"), "{why}");
    // Overlapping set(2) the same read is fine.
    let mut ok = h.clone();
    ok[3].invoke = 35;
    assert_ok(&ok);
}

#[test]
fn lost_write_is_illegal() {
    let h = vec![
        created(),
        op(1, set(1), Outcome::Version(1), 10, 20),
        op(2, set(2), Outcome::Version(2), 30, 40), // acknowledged...
        op(3, Op::Read, data(1, 1), 50, 60),        // ...but never seen
        op(1, Op::Read, data(1, 1), 70, 80),
    ];
    assert_illegal(&h);
    // Lost and overwritten: a later set gets the version as if set(2) never happened.
    let h2 = vec![
        created(),
        op(1, set(1), Outcome::Version(1), 10, 20),
        op(2, set(2), Outcome::Version(2), 30, 40),
        op(3, set(3), Outcome::Version(2), 50, 60),
    ];
    assert_illegal(&h2);
    // Control: had set(2) overlapped set(3), versions 2 and 3 in either order would do.
    let ok = vec![
        created(),
        op(1, set(1), Outcome::Version(1), 10, 20),
        op(2, set(2), Outcome::Version(3), 30, 55),
        op(3, set(3), Outcome::Version(2), 50, 60),
        op(1, Op::Read, data(2, 3), 70, 80),
    ];
    assert_ok(&ok);
}

#[test]
fn cas_contradicting_versions_is_illegal() {
    // The node is at version 1; a cas expecting 0 cannot succeed.
    let h = vec![
        created(),
        op(1, set(1), Outcome::Version(1), 10, 20),
        op(2, cas(0, 5), Outcome::Version(1), 30, 40),
    ];
    assert_illegal(&h);
    // Nor can one expecting 1 fail.
    let h = vec![
        created(),
        op(1, set(1), Outcome::Version(1), 10, 20),
        op(2, cas(1, 5), Outcome::BadVersion, 30, 40),
    ];
    assert_illegal(&h);
    // Two concurrent cas from version 0 cannot both win...
    let both = vec![
        created(),
        op(1, cas(0, 1), Outcome::Version(1), 10, 30),
        op(2, cas(0, 2), Outcome::Version(1), 12, 32),
    ];
    assert_illegal(&both);
    // ...but one of them can.
    let mut one = both.clone();
    one[2].outcome = Outcome::BadVersion;
    assert_ok(&one);
}

#[test]
fn unknown_outcome_writes_may_or_may_not_take_effect() {
    let base = [
        created(),
        op(1, set(1), Outcome::Version(1), 10, 20),
        unknown(2, set(2), 30),
    ];
    let with = |extra: Vec<Operation>| base.iter().cloned().chain(extra).collect::<Vec<_>>();
    // Seen, long after.
    assert_ok(&with(vec![op(3, Op::Read, data(2, 2), 100, 110)]));
    // Not seen.
    assert_ok(&with(vec![op(3, Op::Read, data(1, 1), 100, 110)]));
    // Not seen, then seen: it took effect late.
    assert_ok(&with(vec![
        op(3, Op::Read, data(1, 1), 100, 110),
        op(3, Op::Read, data(2, 2), 120, 130),
    ]));
    // Seen, then not seen: impossible.
    assert_illegal(&with(vec![
        op(3, Op::Read, data(2, 2), 100, 110),
        op(3, Op::Read, data(1, 1), 120, 130),
    ]));
    // It cannot take effect before it was invoked.
    assert_illegal(&with(vec![op(3, Op::Read, data(2, 2), 22, 28)]));
    // Its version bump shows in a later set; without the unknown set, that version is wrong.
    let later_set = op(3, set(3), Outcome::Version(3), 100, 110);
    assert_ok(&with(vec![later_set.clone()]));
    assert_illegal(&[base[0].clone(), base[1].clone(), later_set]);
    // An unknown create: the node may exist later, or not.
    let c = unknown(1, Op::Create(v(7)), 0);
    assert_ok(&[c.clone(), op(2, Op::Read, Outcome::NoNode, 10, 20)]);
    assert_ok(&[c.clone(), op(2, Op::Read, data(7, 0), 10, 20)]);
    // A read with no answer says nothing.
    assert_ok(&[c, unknown(2, Op::Read, 5)]);
}

#[test]
fn keys_are_checked_independently() {
    let mut h = vec![created(), op(1, set(1), Outcome::Version(1), 10, 20)];
    let mut other = op(2, Op::Read, data(0, 0), 50, 60);
    other.key = "/other".to_string();
    // On "/other" there is no node with data 0: illegal there, named as such.
    other.outcome = data(0, 0);
    h.push(other);
    match check(&h, BUDGET) {
        Verdict::Illegal { key, .. } => assert_eq!(key, "/other"),
        v => panic!("{v}"),
    }
    h.pop();
    let mut other = op(2, Op::Read, Outcome::NoNode, 50, 60);
    other.key = "/other".to_string();
    h.push(other);
    assert_ok(&h);
}

// ---- randomized: a simulated linearizable store ----

#[derive(Clone, Copy)]
struct SimConfig {
    clients: usize,
    ops_per_client: usize,
    keys: usize,
    /// Chance an op loses its answer (applied or not, at random).
    unknown: f64,
}

type Reg = Option<(Vec<u8>, i32)>;

/// The true outcome and new state; mirrors ZooKeeper, independently of the checker's model.
fn real_apply(s: &Reg, o: &Op) -> (Outcome, Reg) {
    match (o, s) {
        (Op::Create(d), None) => (Outcome::Ok, Some((d.clone(), 0))),
        (Op::Create(_), Some(_)) => (Outcome::NodeExists, s.clone()),
        (Op::Read, None) => (Outcome::NoNode, None),
        (Op::Read, Some((d, ver))) => (Outcome::Data(d.clone(), *ver), s.clone()),
        (Op::Set(_) | Op::Cas { .. } | Op::Delete { .. }, None) => (Outcome::NoNode, None),
        (Op::Set(d), Some((_, ver))) => (Outcome::Version(ver + 1), Some((d.clone(), ver + 1))),
        (Op::Cas { version, data }, Some((_, ver))) => {
            if version == ver {
                (Outcome::Version(ver + 1), Some((data.clone(), ver + 1)))
            } else {
                (Outcome::BadVersion, s.clone())
            }
        }
        (Op::Delete { version }, Some((_, ver))) => {
            if *version == -1 || version == ver {
                (Outcome::Ok, None)
            } else {
                (Outcome::BadVersion, s.clone())
            }
        }
    }
}

enum Client {
    Idle,
    /// Invoked, not yet applied.
    Sent(usize, bool),
    /// Applied with this outcome, not yet returned.
    Applied(usize, Outcome),
}

/// Clients take turns at random; each op is invoked, takes effect atomically at a later
/// step, and returns at a later step still, so the history is linearizable by construction.
fn simulate(seed: u64, cfg: SimConfig) -> Vec<Operation> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store: HashMap<String, Reg> = HashMap::new();
    let mut ops: Vec<Operation> = Vec::new();
    let mut clients: Vec<(Client, usize)> = (0..cfg.clients).map(|_| (Client::Idle, 0)).collect();
    let mut t = 0u64;
    let mut unique = 0u64;
    loop {
        let live: Vec<usize> = (0..cfg.clients)
            .filter(|&c| !matches!(clients[c], (Client::Idle, n) if n == cfg.ops_per_client))
            .collect();
        if live.is_empty() {
            return ops;
        }
        let c = live[rng.gen_range(0..live.len())];
        t += rng.gen_range(1..4);
        let (state, done) = &mut clients[c];
        match std::mem::replace(state, Client::Idle) {
            Client::Idle => {
                let key = format!("/k{}", rng.gen_range(0..cfg.keys));
                unique += 1;
                let d = format!("c{c}-{unique}").into_bytes();
                let cur = store.get(&key).cloned().flatten();
                let ver = match (&cur, rng.gen_bool(0.6)) {
                    (Some((_, v)), true) => *v,
                    _ => rng.gen_range(-1..3),
                };
                let o = match rng.gen_range(0..100) {
                    0..15 => Op::Create(d),
                    15..50 => Op::Read,
                    50..70 => Op::Set(d),
                    70..90 => Op::Cas {
                        version: ver.max(0),
                        data: d,
                    },
                    _ => Op::Delete { version: ver },
                };
                ops.push(Operation {
                    client: c as u64,
                    key,
                    op: o,
                    outcome: Outcome::Unknown,
                    invoke: t,
                    ret: None,
                });
                *state = Client::Sent(ops.len() - 1, rng.gen_bool(cfg.unknown));
            }
            Client::Sent(i, lost) => {
                let reg = store.entry(ops[i].key.clone()).or_default();
                let (out, next) = real_apply(reg, &ops[i].op);
                if lost {
                    // The answer never comes; the op took effect or not.
                    if rng.gen_bool(0.5) {
                        *reg = next;
                    }
                    *done += 1;
                } else {
                    *reg = next;
                    *state = Client::Applied(i, out);
                }
            }
            Client::Applied(i, out) => {
                ops[i].outcome = out;
                ops[i].ret = Some(t);
                *done += 1;
            }
        }
    }
}

/// The value and version a successful, answered write left behind.
fn written(o: &Operation) -> Option<(Vec<u8>, i32)> {
    match (&o.op, &o.outcome, o.ret) {
        (_, _, None) => None,
        (Op::Create(d), Outcome::Ok, _) => Some((d.clone(), 0)),
        (Op::Set(d) | Op::Cas { data: d, .. }, Outcome::Version(v), _) => Some((d.clone(), *v)),
        _ => None,
    }
}

fn mutates(o: &Operation) -> bool {
    o.ret.is_some() && matches!(o.outcome, Outcome::Ok | Outcome::Version(_))
}

/// Makes one answered read return a value that cannot be current anywhere in its window:
/// written by an op invoked after the read returned ("future"), or overwritten by a
/// successful op that ran wholly after its write and returned before the read began
/// ("stale"). Data is unique per write, so no other op can produce it. Returns the index.
fn corrupt_one_read(ops: &mut [Operation], rng: &mut StdRng) -> Option<usize> {
    let mut reads: Vec<usize> = (0..ops.len())
        .filter(|&r| ops[r].op == Op::Read && ops[r].ret.is_some())
        .collect();
    // Random order, stopping at the first read that has candidates: linear enough for 20k ops.
    for k in (1..reads.len()).rev() {
        reads.swap(k, rng.gen_range(0..=k));
    }
    for r in reads {
        let read = &ops[r];
        let (rinv, rret) = (read.invoke, read.ret.unwrap());
        let same_key: Vec<&Operation> = ops.iter().filter(|o| o.key == read.key).collect();
        let (mut future, mut stale) = (Vec::new(), Vec::new());
        for w in &same_key {
            let Some(val) = written(w) else { continue };
            let wret = w.ret.unwrap();
            if w.invoke > rret {
                future.push(val);
            } else if same_key
                .iter()
                .any(|o2| mutates(o2) && o2.invoke > wret && o2.ret.unwrap() < rinv)
            {
                stale.push(val);
            }
        }
        let pick = if !stale.is_empty() && (future.is_empty() || rng.gen_bool(0.5)) {
            stale
        } else {
            future
        };
        if pick.is_empty() {
            continue;
        }
        let (d, v) = pick[rng.gen_range(0..pick.len())].clone();
        ops[r].outcome = Outcome::Data(d, v);
        return Some(r);
    }
    None
}

fn seeds(default_count: u64) -> Vec<u64> {
    match std::env::var("LINCHECK_SEED") {
        Ok(s) => vec![s.parse().expect("LINCHECK_SEED must be a u64")],
        Err(_) => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            (0..default_count).map(|i| base.wrapping_add(i)).collect()
        }
    }
}

#[test]
fn random_linearizable_histories_pass_and_a_corrupted_read_is_caught() {
    let cfg = SimConfig {
        clients: 5,
        ops_per_client: 200,
        keys: 4,
        unknown: 0.02,
    };
    for seed in seeds(20) {
        let mut ops = simulate(seed, cfg);
        let verdict = check(&ops, BUDGET);
        assert!(
            verdict.is_ok(),
            "LINCHECK_SEED={seed}: a linearizable history was judged {verdict}"
        );
        let mut rng = StdRng::seed_from_u64(seed ^ 0xbad);
        let r = corrupt_one_read(&mut ops, &mut rng)
            .unwrap_or_else(|| panic!("LINCHECK_SEED={seed}: no read to corrupt"));
        match check(&ops, BUDGET) {
            Verdict::Illegal { key, .. } => assert_eq!(key, ops[r].key, "LINCHECK_SEED={seed}"),
            other => panic!(
                "LINCHECK_SEED={seed}: corrupted read {:?} not caught: {other}",
                ops[r]
            ),
        }
    }
}

#[test]
fn twenty_thousand_ops_check_quickly() {
    let cfg = SimConfig {
        clients: 10,
        ops_per_client: 2_000,
        keys: 50,
        unknown: 0.005,
    };
    let seed = seeds(1)[0];
    let mut ops = simulate(seed, cfg);
    assert_eq!(ops.len(), 20_000);
    let start = Instant::now();
    let verdict = check(&ops, Duration::from_secs(60));
    let took = start.elapsed();
    println!("LINCHECK_SEED={seed}: 20k ops, 50 keys, 10 clients: {verdict} in {took:?}");
    assert!(verdict.is_ok(), "LINCHECK_SEED={seed}: {verdict}");
    assert!(
        took < Duration::from_secs(30),
        "LINCHECK_SEED={seed}: {took:?}"
    );

    let mut rng = StdRng::seed_from_u64(seed);
    corrupt_one_read(&mut ops, &mut rng).expect("a read to corrupt");
    let start = Instant::now();
    let verdict = check(&ops, Duration::from_secs(60));
    let took = start.elapsed();
    println!("LINCHECK_SEED={seed}: with one corrupted read: illegal in {took:?}");
    assert!(verdict.is_illegal(), "LINCHECK_SEED={seed}: {verdict}");
    assert!(
        took < Duration::from_secs(30),
        "LINCHECK_SEED={seed}: {took:?}"
    );
}

/// Forty concurrent unknown sets and a read that no subset of them explains. Without the
/// reductions (interchangeable unread writes taken in invocation order) this is 2^40 subsets.
fn many_unknown_sets() -> Vec<Operation> {
    let mut h = vec![created()];
    for c in 0..40 {
        h.push(unknown(c, set(100 + c), 10 + c));
    }
    // Version 45 needs 45 sets; only 40 can have happened.
    h.push(op(99, Op::Read, data(100, 45), 200, 210));
    h
}

#[test]
fn many_unknown_writes_are_decided_quickly() {
    let mut h = many_unknown_sets();
    let start = Instant::now();
    assert_illegal(&h);
    // Each set may or may not have happened: any version up to 40 is possible.
    h.last_mut().unwrap().outcome = data(100, 40);
    assert_ok(&h);
    h.last_mut().unwrap().outcome = data(100, 1);
    assert_ok(&h);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn no_budget_gives_unknown_not_a_verdict() {
    match check(&many_unknown_sets(), Duration::ZERO) {
        Verdict::Unknown { undecided } => assert_eq!(undecided, vec!["/k".to_string()]),
        other => panic!("{other}"),
    }
}

/// The recorder from many tokio tasks, around an in-memory store that is linearizable
/// (one lock, held while each op takes effect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_under_concurrent_tasks() {
    timed(60, async {
        let hist = History::new();
        let store: Arc<std::sync::Mutex<HashMap<String, Reg>>> = Arc::default();
        let mut tasks = Vec::new();
        for c in 0..8u64 {
            let (hist, store) = (hist.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(c);
                for n in 0..60u64 {
                    let key = format!("/r{}", rng.gen_range(0..3));
                    let o = match rng.gen_range(0..4) {
                        0 => Op::Create(v(c * 1000 + n)),
                        1 | 2 => Op::Read,
                        _ => Op::Set(v(c * 1000 + n)),
                    };
                    let id = hist.invoke(c, &key, o.clone());
                    tokio::task::yield_now().await;
                    let out = {
                        let mut s = store.lock().unwrap();
                        let reg = s.entry(key).or_default();
                        let (out, next) = real_apply(reg, &o);
                        *reg = next;
                        out
                    };
                    if rng.gen_bool(0.5) {
                        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..200))).await;
                    }
                    if n == 59 && c == 0 {
                        continue; // the answer is lost: stays Unknown
                    }
                    hist.ret(id, out);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let ops = hist.operations();
        assert_eq!(ops.len(), 480);
        assert_eq!(ops.iter().filter(|o| o.ret.is_none()).count(), 1);
        assert!(ops.iter().all(|o| o.ret.is_none_or(|r| r > o.invoke)));
        let verdict = hist.check(BUDGET);
        assert!(verdict.is_ok(), "{verdict}");
    })
    .await;
}
