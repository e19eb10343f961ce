//! A deterministic simulation of the write machine (docs/design/write-machine.md): one
//! `Machine` fed real requests by simulated clients on simulated shards, a simulated clock, a
//! simulated log whose flushes succeed or fail (a full disk) at random, and crashes that drop
//! the machine and recover a new one from the durable records, as startup does (the tree
//! rebuilt by applying the logged txns). Half the seeds run the machine on shard 0's replica
//! (`Base::Shared`, as on one or two CPUs), and shards apply what they are sent a while later,
//! in order, so the machine's overlay covers a replica that lags. Everything comes from one
//! seed. After every step it checks:
//!
//! - an acknowledged write is in every later state: whatever a client got a reply for is in the
//!   durable log, in the machine's tree, and in every state recovered after a crash;
//! - a connection's replies come in the order of its requests (FIFO);
//! - zxids only grow: the commits every shard receives, across crashes too.
//!
//! Failures name their seed; `SIM_SEED=n` replays one, `SIM_ITERS=n` runs longer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Base, Bug, Effect, Machine, Now, Origin, Recent, ToCore, ToShard};
use crate::config::Config;
use crate::proto::codes::op;
use crate::proto::records::{Acl, CreateRequest, Id, MultiOp, Request};
use crate::storage::codec::decode_txn;
use crate::tree::DataTree;
use crate::txn::TxnOp;
use crate::watch::ConnId;
use crate::zab::Zxid;

const SHARDS: usize = 2;
const CLIENTS: usize = 6;

/// What a connection waits for, in the order it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    /// A write (or closeSession) with this cxid.
    Write(i32),
    Sync,
    /// The handshake's answer.
    Connect,
}

struct Client {
    origin: Origin,
    /// The session and its password, once created.
    session: Option<(i64, [u8; 16])>,
    /// The connection is open (a shard would deliver to it).
    open: bool,
    /// Attached to its session (may send requests).
    attached: bool,
    cxid: i32,
    awaiting: VecDeque<Awaited>,
}

/// The log: every record appended, of which the first `durable` survive a crash.
#[derive(Default)]
struct Log {
    records: Vec<(Zxid, Bytes)>,
    durable: usize,
}

struct Sim {
    rng: StdRng,
    cfg: Arc<Config>,
    now: u64,
    machine: Machine,
    log: Log,
    clients: Vec<Client>,
    next_conn: ConnId,
    /// Each shard's replica: the commits it received, applied. Shard 0's is the machine's
    /// committed tree when `shared`.
    replicas: Vec<Rc<RefCell<DataTree>>>,
    shared: bool,
    /// What was released to each shard and not yet delivered, with the committed zxid when it
    /// was released.
    queues: Vec<VecDeque<(ToShard, i64)>>,
    /// The highest zxid any client got a reply for.
    acked: i64,
    /// The highest zxid delivered to each shard (never reset: zxids only grow).
    delivered: Vec<i64>,
    /// Per planted bug, nothing; per crash, a count (coverage).
    crashes: u64,
    failed_flushes: u64,
    replies: u64,
    effects: Vec<Effect>,
    bug: Option<Bug>,
}

pub(super) fn passwords(seed: u64) -> super::Passwords {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    Box::new(move || rng.gen())
}

pub(super) fn path(k: u32) -> String {
    format!("/n{k}")
}

impl Sim {
    fn new(seed: u64, bug: Option<Bug>) -> Sim {
        let cfg = Arc::new(Config {
            tick_time_ms: 100,
            container_check_interval_ms: 500,
            // Hard quotas refuse some writes (`random_quota_write`).
            enforce_quota: seed.is_multiple_of(3),
            ..Config::default()
        });
        let mut effects = Vec::new();
        let shared = !seed.is_multiple_of(2);
        let replicas = replicas(DataTree::new());
        let mut machine = Machine::new(
            cfg.clone(),
            base(&replicas, shared),
            Recent::default(),
            (0, 0),
            SHARDS,
            Now {
                mono_ms: 0,
                wall_ms: 1_000_000,
            },
            passwords(seed),
            &mut effects,
        );
        if let Some(b) = bug {
            machine.plant(b);
        }
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(seed),
            cfg,
            now: 0,
            machine,
            log: Log::default(),
            clients: Vec::new(),
            next_conn: 1,
            replicas,
            shared,
            queues: (0..SHARDS).map(|_| VecDeque::new()).collect(),
            acked: 0,
            delivered: vec![0; SHARDS],
            crashes: 0,
            failed_flushes: 0,
            replies: 0,
            effects,
            bug,
        };
        for i in 0..CLIENTS {
            let origin = sim.new_origin(i % SHARDS);
            sim.clients.push(Client {
                origin,
                session: None,
                open: false,
                attached: false,
                cxid: 0,
                awaiting: VecDeque::new(),
            });
        }
        sim.perform();
        sim
    }

    fn new_origin(&mut self, shard: usize) -> Origin {
        self.next_conn += 1;
        Origin {
            shard,
            conn: self.next_conn,
        }
    }

    fn time(&self) -> Now {
        Now {
            mono_ms: self.now,
            wall_ms: 1_000_000 + self.now as i64,
        }
    }

    fn send(&mut self, msg: ToCore<()>) {
        let now = self.time();
        self.machine.handle(now, msg, &mut self.effects);
        self.perform();
    }

    /// Appends go to the log (not yet durable); sends are checked on delivery.
    fn perform(&mut self) {
        for e in std::mem::take(&mut self.effects) {
            match e {
                Effect::Append { zxid, txn } => self.log.records.push((zxid, txn)),
                Effect::SaveEpochs { .. } | Effect::Role { .. } => {}
                Effect::Send { .. } => unreachable!("sends come from release"),
                Effect::Peer { .. } | Effect::Truncate { .. } | Effect::InstallSnapshot { .. } => {
                    unreachable!("an ensemble of one has no other members")
                }
            }
        }
    }

    /// One random client action.
    fn client_step(&mut self) {
        let i = self.rng.gen_range(0..self.clients.len());
        let c = &self.clients[i];
        if !c.open {
            // Connect: reattach to its session, or ask for a new one.
            let shard = self.rng.gen_range(0..SHARDS);
            let origin = self.new_origin(shard);
            let (session_id, passwd) = match self.clients[i].session {
                Some((id, pw)) => (id, Bytes::copy_from_slice(&pw)),
                None => (0, Bytes::new()),
            };
            let timeout_ms = self.rng.gen_range(300..1500);
            let c = &mut self.clients[i];
            c.origin = origin;
            c.open = true;
            c.attached = false;
            c.awaiting = VecDeque::from([Awaited::Connect]);
            self.send(ToCore::Connect {
                origin,
                session_id,
                passwd,
                timeout_ms,
                last_zxid_seen: 0,
                read_only: false,
            });
            return;
        }
        if !c.attached || c.awaiting.len() > 8 {
            return;
        }
        let (session_id, _) = c.session.expect("attached to a session");
        let origin = c.origin;
        let roll = self.rng.gen_range(0..100);
        if roll < 3 {
            // The connection drops; the session lives on until it expires.
            self.clients[i].open = false;
            self.send(ToCore::Disconnected { origin, session_id });
            return;
        }
        let req = match roll {
            3..=5 => Request::CloseSession,
            6..=12 => Request::Sync {
                path: "/".to_string(),
            },
            _ => self.random_write(),
        };
        let c = &mut self.clients[i];
        c.cxid += 1;
        let cxid = c.cxid;
        c.awaiting.push_back(match req {
            Request::Sync { .. } => Awaited::Sync,
            _ => Awaited::Write(cxid),
        });
        self.send(ToCore::Write {
            origin,
            session_id,
            cxid,
            ids: Arc::new(vec![Id::new("ip", "127.0.0.1")]),
            req,
            // Only a learner forwards the request's bytes; this machine always leads.
            opcode: 0,
            body: Bytes::new(),
        });
    }

    /// A write, one in eleven to the quota nodes (only here: the ensemble simulator's draws
    /// stay as they were, so its seeds keep their meaning).
    fn random_write(&mut self) -> Request {
        if self.rng.gen_range(0..11) == 0 {
            random_quota_write(&mut self.rng)
        } else {
            random_write(&mut self.rng)
        }
    }

    /// The end of a batch: flush if the machine asks (the disk may be full), then deliver
    /// what was released to the shards, in order.
    fn end_batch(&mut self, full_disk: bool) -> Result<(), String> {
        if self.machine.flush_due(self.now) {
            let ok = !full_disk;
            if ok {
                self.log.durable = self.log.records.len();
            } else {
                self.failed_flushes += 1;
            }
            self.machine.flushed(self.now, ok, &mut self.effects);
            self.perform();
        }
        let committed = self.machine.committed();
        self.machine.release(&mut self.effects);
        for e in std::mem::take(&mut self.effects) {
            let Effect::Send { shard, msg } = e else {
                return Err("release returned something other than sends".into());
            };
            self.queues[shard].push_back((msg, committed));
        }
        // Each shard takes what waits for it in order, often all of it, sometimes only part.
        for shard in 0..SHARDS {
            let n = self.queues[shard].len();
            let n = if self.rng.gen_bool(0.7) {
                n
            } else {
                self.rng.gen_range(0..=n)
            };
            self.deliver_queued(shard, n)?;
        }
        Ok(())
    }

    fn deliver_queued(&mut self, shard: usize, n: usize) -> Result<(), String> {
        for _ in 0..n {
            let (msg, committed) = self.queues[shard].pop_front().expect("queued");
            self.deliver(shard, msg, committed)?;
        }
        Ok(())
    }

    /// A shard gets a message: replicas apply commits, connections get their replies.
    fn deliver(&mut self, shard: usize, msg: ToShard, committed: i64) -> Result<(), String> {
        let conn = match msg {
            ToShard::Commits(batch) => {
                for c in batch.iter() {
                    let z = c.txn.zxid;
                    if z <= self.delivered[shard] {
                        return Err(format!(
                            "shard {shard} got zxid {z:#x} after {:#x}",
                            self.delivered[shard]
                        ));
                    }
                    if z > committed {
                        return Err(format!("zxid {z:#x} sent before it was published"));
                    }
                    self.delivered[shard] = z;
                    self.replicas[shard].borrow_mut().apply(&c.txn);
                    let Some(origin) = c.origin.filter(|o| o.shard == shard) else {
                        continue;
                    };
                    let Some(i) = self.open_client(origin) else {
                        continue;
                    };
                    let expected = match c.txn.op {
                        TxnOp::CreateSession { password, .. } => {
                            let cl = &mut self.clients[i];
                            cl.session = Some((c.txn.session_id, password));
                            cl.attached = true;
                            Awaited::Connect
                        }
                        TxnOp::CloseSession => {
                            let cl = &mut self.clients[i];
                            cl.session = None;
                            cl.attached = false;
                            cl.open = false;
                            Awaited::Write(c.txn.cxid)
                        }
                        _ => Awaited::Write(c.txn.cxid),
                    };
                    self.reply(i, expected)?;
                    // Acknowledged: the client saw it succeed (or fail; both are decided).
                    self.acked = self.acked.max(z);
                }
                return Ok(());
            }
            ToShard::Synced { conn, .. } => (conn, Some(Awaited::Sync)),
            ToShard::Refused { conn, .. } => (conn, None),
            ToShard::SessionClosed { .. } => {
                return Err("a local session standalone (there are none)".into());
            }
            ToShard::Attached { conn, .. } => (conn, Some(Awaited::Connect)),
            ToShard::Rejected { conn, .. } => (conn, Some(Awaited::Connect)),
            ToShard::Close { conn } => {
                if let Some(i) = self.open_client(Origin { shard, conn }) {
                    self.clients[i].open = false;
                }
                return Ok(());
            }
            ToShard::CloseAll | ToShard::Reset(_) | ToShard::Snapshot { .. } => {
                return Err("an ensemble of one stopped serving or synced".to_string());
            }
        };
        let (conn, expected) = conn;
        let Some(i) = self.open_client(Origin { shard, conn }) else {
            return Ok(());
        };
        match expected {
            Some(e) => self.reply(i, e)?,
            // A refusal answers the oldest unanswered write.
            None => match self.clients[i].awaiting.front().copied() {
                Some(Awaited::Write(cxid)) => self.reply(i, Awaited::Write(cxid))?,
                other => return Err(format!("refusal while waiting for {other:?}")),
            },
        }
        if let ToShard::Rejected { expired, .. } = msg {
            let c = &mut self.clients[i];
            c.open = false;
            if expired {
                c.session = None;
            }
        }
        if let ToShard::Attached { .. } = msg {
            self.clients[i].attached = true;
        }
        Ok(())
    }

    fn open_client(&self, origin: Origin) -> Option<usize> {
        self.clients
            .iter()
            .position(|c| c.open && c.origin == origin)
    }

    /// Client `i` got the reply `got`: it must be the oldest it waits for.
    fn reply(&mut self, i: usize, got: Awaited) -> Result<(), String> {
        self.replies += 1;
        let c = &mut self.clients[i];
        match c.awaiting.pop_front() {
            Some(w) if w == got => Ok(()),
            w => Err(format!(
                "connection {} got {got:?} while its oldest request is {w:?}",
                c.origin.conn
            )),
        }
    }

    /// The process dies: what was not durable is gone, connections drop; a new machine starts
    /// from the log as recovery would (applying every durable txn to a fresh tree).
    fn crash(&mut self) -> Result<(), String> {
        self.crashes += 1;
        self.log.records.truncate(self.log.durable);
        let mut tree = DataTree::new();
        for (zxid, body) in &self.log.records {
            let txn = decode_txn(*zxid as i64, body.clone())
                .map_err(|e| format!("logged txn {zxid:#x} does not decode: {e:?}"))?;
            tree.apply(&txn);
        }
        if tree.last_zxid() < self.acked {
            return Err(format!(
                "acknowledged zxid {:#x} lost in a crash (recovered {:#x})",
                self.acked,
                tree.last_zxid()
            ));
        }
        self.replicas = replicas(tree);
        self.queues = (0..SHARDS).map(|_| VecDeque::new()).collect();
        // A restart takes a while; sessions' timeouts start again.
        self.now += 1000;
        let seed = self.rng.gen();
        self.machine = Machine::new(
            self.cfg.clone(),
            base(&self.replicas, self.shared),
            Recent::default(),
            (0, 0),
            SHARDS,
            self.time(),
            passwords(seed),
            &mut self.effects,
        );
        if let Some(b) = self.bug {
            self.machine.plant(b);
        }
        self.perform();
        for c in &mut self.clients {
            c.open = false;
            c.attached = false;
            c.awaiting.clear();
        }
        Ok(())
    }

    /// The invariants that hold between any two steps.
    fn check(&self) -> Result<(), String> {
        let durable = self.log.records[..self.log.durable]
            .last()
            .map_or(0, |r| r.0 as i64);
        // Acknowledged means durable: if not, a crash now would lose it.
        if self.acked > durable {
            return Err(format!(
                "zxid {:#x} acknowledged but the log is durable only to {durable:#x}",
                self.acked
            ));
        }
        if self.acked > self.machine.committed() {
            return Err(format!(
                "acknowledged zxid {:#x} not committed by the machine",
                self.acked
            ));
        }
        if !self.shared && self.acked > self.machine.tree().last_zxid() {
            return Err(format!(
                "acknowledged zxid {:#x} not in the machine's tree",
                self.acked
            ));
        }
        for (s, r) in self.replicas.iter().enumerate() {
            if r.borrow().last_zxid() > self.machine.committed() {
                return Err(format!("shard {s} holds uncommitted state"));
            }
        }
        if self.log.records.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("the log's zxids do not grow".into());
        }
        Ok(())
    }

    fn run(&mut self, steps: u64) -> Result<(), String> {
        let mut full_disk = false;
        for _ in 0..steps {
            match self.rng.gen_range(0..100) {
                0..=59 => self.client_step(),
                60..=79 => self.end_batch(full_disk)?,
                80..=87 => {
                    self.now += self.rng.gen_range(0..300);
                    self.send(ToCore::Tick);
                }
                88..=91 => {
                    let ids = self
                        .clients
                        .iter()
                        .filter(|c| c.open)
                        .filter_map(|c| c.session.map(|s| s.0))
                        .collect();
                    self.send(ToCore::Touch(ids));
                }
                92..=96 => full_disk = self.rng.gen_bool(0.3),
                _ => {
                    if self.rng.gen_bool(0.3) {
                        self.crash()?;
                    }
                }
            }
            self.check()?;
        }
        // Faults stop: the disk frees, batches end; everything proposed must commit, and the
        // replicas agree with the machine.
        for _ in 0..3 {
            self.now += 600;
            self.end_batch(false)?;
        }
        for shard in 0..SHARDS {
            let n = self.queues[shard].len();
            self.deliver_queued(shard, n)?;
        }
        self.check()?;
        if !self.machine.quiescent() {
            return Err("proposals left uncommitted with a writable log".into());
        }
        for (s, r) in self.replicas.iter().enumerate() {
            if r.borrow().digest() != self.machine.tree().digest() {
                return Err(format!(
                    "shard {s}'s replica differs from the machine's tree"
                ));
            }
        }
        Ok(())
    }
}

/// A random create (some containers, ephemerals, sequentials) among a dozen paths.
pub(super) fn random_create<R: Rng>(rng: &mut R) -> CreateRequest {
    let k = rng.gen_range(0..12);
    let (opcode, flags, path) = match rng.gen_range(0..10) {
        0 => (op::CREATE_CONTAINER, 4, path(k)),
        1 => (op::CREATE, 1, path(k)),
        2 => (op::CREATE, 2, format!("{}/s", path(k % 3))),
        3 => (op::CREATE, 0, format!("{}/c", path(k % 3))),
        _ => (op::CREATE, 0, path(k)),
    };
    CreateRequest {
        opcode,
        path,
        data: Some(Bytes::from(vec![k as u8; rng.gen_range(0..64)])),
        acl: Acl::open_unsafe(),
        flags,
        ttl: -1,
    }
}

/// A write to the quota nodes of /n0../n2 (the paths with children): the quota's own node, its
/// limits (hard ones small enough to be reached), its stat node, or deleting either. The stat
/// nodes the tree keeps and those the overlay computes must agree (pruning asserts it).
fn random_quota_write<R: Rng>(rng: &mut R) -> Request {
    let q = format!("/zookeeper/quota{}", path(rng.gen_range(0..3)));
    let create = |path: String, data: &'static [u8]| {
        Request::Create(CreateRequest {
            opcode: op::CREATE,
            path,
            data: Some(Bytes::from_static(data)),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        })
    };
    match rng.gen_range(0..5) {
        0 => create(q, b""),
        1 => create(
            format!("{q}/zookeeper_limits"),
            b"count=2,bytes=-1=;byteHardLimit=90;countHardLimit=4",
        ),
        2 => create(format!("{q}/zookeeper_stats"), b"count=0,bytes=0"),
        3 => Request::Delete {
            path: format!("{q}/zookeeper_limits"),
            version: -1,
        },
        _ => Request::Delete {
            path: format!("{q}/zookeeper_stats"),
            version: -1,
        },
    }
}

pub(super) fn random_write<R: Rng>(rng: &mut R) -> Request {
    let k = rng.gen_range(0..12);
    match rng.gen_range(0..11) {
        0..=3 => Request::Create(random_create(rng)),
        4..=6 => Request::SetData {
            path: path(k),
            data: Some(Bytes::from(vec![1u8; rng.gen_range(0..32)])),
            version: if rng.gen_bool(0.8) { -1 } else { 0 },
        },
        7 => Request::Delete {
            path: path(k),
            version: -1,
        },
        10 => {
            // One delete more in eleven. The two draws are those a quota write takes (its
            // subtree, its kind), so the draws after it stay as they were when this arm was
            // tried first: the ensemble's seed 154 (3 voters, an observer) found a reply out
            // of order with it (`seeds_that_once_failed`).
            rng.gen_range(0..3);
            rng.gen_range(0..5);
            Request::Delete {
                path: path(k),
                version: -1,
            }
        }
        _ => {
            let mut ops = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                let k = rng.gen_range(0..12);
                ops.push(match rng.gen_range(0..3) {
                    0 => MultiOp::Create(random_create(rng)),
                    1 => MultiOp::SetData {
                        path: path(k),
                        data: None,
                        version: -1,
                    },
                    _ => MultiOp::Delete {
                        path: path(k),
                        version: -1,
                    },
                });
            }
            Request::Multi(ops)
        }
    }
}

/// Every shard's replica of `tree`.
fn replicas(tree: DataTree) -> Vec<Rc<RefCell<DataTree>>> {
    let mut all: Vec<_> = (1..SHARDS)
        .map(|_| Rc::new(RefCell::new(tree.clone())))
        .collect();
    all.insert(0, Rc::new(RefCell::new(tree)));
    all
}

/// The machine's committed tree: shard 0's replica, or a copy of its own.
fn base(replicas: &[Rc<RefCell<DataTree>>], shared: bool) -> Base {
    if shared {
        Base::Shared(replicas[0].clone())
    } else {
        Base::Own(Box::new(replicas[0].borrow().clone()))
    }
}

pub(super) fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs the seeds of `seeds`, `steps` steps each; the first failure, with its seed.
fn explore(
    seeds: impl Iterator<Item = u64>,
    steps: u64,
    bug: Option<Bug>,
) -> Result<Totals, String> {
    let mut t = Totals::default();
    for seed in seeds {
        // Printed (and shown by cargo test) if the machine's own assertions fire.
        eprintln!("write sim: SIM_SEED={seed}");
        let mut sim = Sim::new(seed, bug);
        sim.run(steps)
            .map_err(|e| format!("SIM_SEED={seed}: {e}"))?;
        t.crashes += sim.crashes;
        t.failed_flushes += sim.failed_flushes;
        t.replies += sim.replies;
        t.zxid = t.zxid.max(sim.machine.last_zxid());
    }
    Ok(t)
}

#[derive(Default, Debug)]
struct Totals {
    crashes: u64,
    failed_flushes: u64,
    replies: u64,
    zxid: i64,
}

#[test]
fn write_machine_keeps_its_promises() {
    // `SIM_SEED` replays one seed; `SIM_ITERS` runs that many.
    let seeds = match env("SIM_SEED") {
        Some(s) => s..s + 1,
        None => 0..env("SIM_ITERS").unwrap_or(40),
    };
    let t = explore(seeds, 3000, None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{t:?}");
    if env("SIM_SEED").is_none() {
        // The runs did what they are for: crashes, failing flushes, plenty of replies.
        assert!(t.crashes > 10, "{t:?}");
        assert!(t.failed_flushes > 10, "{t:?}");
        assert!(t.replies > 10_000, "{t:?}");
    }
}

#[test]
fn acknowledging_before_the_flush_is_caught() {
    let e = explore(0..40, 3000, Some(Bug::AckBeforeFlush)).expect_err("planted bug not caught");
    eprintln!("caught: {e}");
    assert!(e.contains("acknowledged"), "{e}");
}

#[test]
fn answers_overtaking_writes_are_caught() {
    let e = explore(0..40, 3000, Some(Bug::AnswersOvertake)).expect_err("planted bug not caught");
    eprintln!("caught: {e}");
    assert!(e.contains("oldest request"), "{e}");
}

/// Replicas never hold more than the log: the recovered tree after a crash matches what the
/// shards had applied whenever nothing was in flight.
#[test]
fn recovery_matches_the_replicas() {
    let mut sim = Sim::new(7, None);
    sim.run(2000).unwrap();
    let before = sim.replicas[0].borrow().digest();
    sim.crash().unwrap();
    assert_eq!(sim.machine.tree().digest(), before);
}
