//! A deterministic simulated ensemble: `Peer`s joined by FIFO links with random delays, disks
//! that make appends durable after a random delay, and a schedule of crashes, restarts and
//! partitions drawn from a seed. After every action it checks Zab's safety properties:
//!
//! - one order: every committed entry any member applied is in one sequence `chosen`, and a
//!   member's applied state is always a prefix of it (learners) or extends it (a leader that
//!   commits, or is established, brings everything committed before it);
//! - nothing chosen is lost across crashes and new leaders (the same check, at establishment).
//!
//! At the end of a run the network heals and every member restarts; the ensemble must then elect
//! a leader, serve, and bring every member to the same state (liveness once faults stop).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::election::Timing;
use super::peer::{Action, Config, Durable, Msg, Peer, Role};
use super::{Ensemble, Sid, Zxid};

type Entries = Vec<(Zxid, Bytes)>;

#[derive(Default, Clone)]
struct Disk {
    accepted: u32,
    current: u32,
    /// Every entry appended (a snapshot's entries included); `durable` of them survive a crash.
    log: Entries,
    durable: usize,
}

struct Node {
    sid: Sid,
    peer: Option<Peer>,
    disk: Disk,
    /// Applied entries, in order.
    state: Entries,
    /// Appends in flight: (due time, zxid).
    persisting: VecDeque<(u64, Zxid)>,
    group: u8,
}

/// What happened, for the tests' coverage assertions.
#[derive(Default, Debug)]
struct Counts {
    diff: u64,
    trunc: u64,
    snap: u64,
    commits: u64,
    syncs_done: u64,
}

struct Sim {
    now: u64,
    rng: StdRng,
    nodes: Vec<Node>,
    cfg: Config,
    links: BTreeMap<(Sid, Sid), VecDeque<(u64, Msg)>>,
    /// The committed sequence.
    chosen: Entries,
    next_txn: u64,
    counts: Counts,
    /// Syncs asked and not yet answered: id -> the member asked.
    syncs: BTreeMap<u64, Sid>,
}

fn prefix_of(a: &[(Zxid, Bytes)], b: &[(Zxid, Bytes)]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn render(e: &[(Zxid, Bytes)]) -> String {
    let tail: Vec<String> = e
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(|(z, _)| format!("{:x}", z))
        .collect();
    format!("len {} ..{}", e.len(), tail.join(","))
}

impl Sim {
    fn new(seed: u64, voters: &[Sid], observers: &[Sid], history_limit: usize) -> Self {
        let ensemble = Ensemble {
            voters: voters.iter().copied().collect(),
            observers: observers.iter().copied().collect(),
        };
        let cfg = Config {
            me: 0,
            ensemble: ensemble.clone(),
            tick_ms: 20,
            init_limit: 10,
            sync_limit: 5,
            history_limit,
            standalone: false,
            election: Timing {
                finalize_wait_ms: 10,
                resend_ms: 20,
                max_resend_ms: 200,
            },
        };
        let mut sim = Sim {
            now: 0,
            rng: StdRng::seed_from_u64(seed),
            nodes: ensemble
                .members()
                .map(|sid| Node {
                    sid,
                    peer: None,
                    disk: Disk::default(),
                    state: Vec::new(),
                    persisting: VecDeque::new(),
                    group: 0,
                })
                .collect(),
            cfg,
            links: BTreeMap::new(),
            chosen: Vec::new(),
            next_txn: 0,
            counts: Counts::default(),
            syncs: BTreeMap::new(),
        };
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        sim
    }

    fn idx(&self, sid: Sid) -> usize {
        self.nodes
            .iter()
            .position(|n| n.sid == sid)
            .expect("member")
    }

    /// (Re)starts node `i` from its disk: the state is every logged entry, replayed.
    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.disk.log.truncate(n.disk.durable);
        n.state = n.disk.log.clone();
        n.persisting.clear();
        let keep = n.disk.log.len().min(self.cfg.history_limit);
        let split = n.disk.log.len() - keep;
        let durable = Durable {
            accepted_epoch: n.disk.accepted,
            current_epoch: n.disk.current,
            base: if split == 0 {
                0
            } else {
                n.disk.log[split - 1].0
            },
            entries: n.disk.log[split..].to_vec(),
        };
        let cfg = Config {
            me: n.sid,
            ..self.cfg.clone()
        };
        n.peer = Some(Peer::new(cfg, durable, self.now));
        self.run_actions(i);
        let sid = self.nodes[i].sid;
        let others: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].group == self.nodes[i].group)
            .collect();
        for j in others {
            self.connected(i, self.nodes[j].sid);
            self.connected(j, sid);
        }
    }

    /// Crashes node `i`: appends not yet durable may or may not have reached the disk.
    fn crash(&mut self, i: usize) {
        let extra = {
            let n = &self.nodes[i];
            let undurable = n.disk.log.len() - n.disk.durable;
            self.rng.gen_range(0..=undurable)
        };
        let n = &mut self.nodes[i];
        if n.peer.take().is_none() {
            return;
        }
        n.disk.durable += extra;
        n.disk.log.truncate(n.disk.durable);
        n.persisting.clear();
        let sid = n.sid;
        self.cut(sid);
    }

    /// Drops every message to or from `sid` and tells the other ends their link broke.
    fn cut(&mut self, sid: Sid) {
        self.links.retain(|&(a, b), _| a != sid && b != sid);
        for j in 0..self.nodes.len() {
            if self.nodes[j].sid != sid && self.nodes[j].peer.is_some() {
                let now = self.now;
                if let Some(p) = self.nodes[j].peer.as_mut() {
                    p.on_disconnected(now, sid);
                }
                self.run_actions(j);
            }
        }
    }

    /// Splits the members into groups (`groups[i]` for node i); links across groups break.
    fn partition(&mut self, groups: &[u8]) {
        let before: Vec<u8> = self.nodes.iter().map(|n| n.group).collect();
        for (n, &g) in self.nodes.iter_mut().zip(groups) {
            n.group = g;
        }
        // Links that come back up.
        let joined: Vec<(usize, usize)> = (0..self.nodes.len())
            .flat_map(|a| (0..self.nodes.len()).map(move |b| (a, b)))
            .filter(|&(a, b)| {
                a != b && before[a] != before[b] && self.nodes[a].group == self.nodes[b].group
            })
            .collect();
        for (a, b) in joined {
            let sb = self.nodes[b].sid;
            self.connected(a, sb);
        }
        let pairs: Vec<(usize, usize)> = (0..self.nodes.len())
            .flat_map(|a| (0..self.nodes.len()).map(move |b| (a, b)))
            .filter(|&(a, b)| a != b && self.nodes[a].group != self.nodes[b].group)
            .collect();
        for (a, b) in pairs {
            let (sa, sb) = (self.nodes[a].sid, self.nodes[b].sid);
            self.links.remove(&(sa, sb));
            let now = self.now;
            // Both ends hear that the link broke (each ordered pair comes up once).
            if let Some(p) = self.nodes[a].peer.as_mut() {
                p.on_disconnected(now, sb);
            }
            self.run_actions(a);
        }
    }

    fn connected(&mut self, i: usize, other: Sid) {
        let now = self.now;
        if let Some(p) = self.nodes[i].peer.as_mut() {
            p.on_connected(now, other);
        }
        self.run_actions(i);
    }

    fn send(&mut self, from: Sid, to: Sid, msg: Msg) {
        let (a, b) = (self.idx(from), self.idx(to));
        if self.nodes[a].group != self.nodes[b].group || self.nodes[b].peer.is_none() {
            return;
        }
        let delay = self.rng.gen_range(1..=3);
        let q = self.links.entry((from, to)).or_default();
        let at = q.back().map_or(0, |m| m.0).max(self.now + delay);
        q.push_back((at, msg));
    }

    fn run_actions(&mut self, i: usize) {
        loop {
            let Some(p) = self.nodes[i].peer.as_mut() else {
                return;
            };
            let actions = p.take_actions();
            if actions.is_empty() {
                return;
            }
            for a in actions {
                self.act(i, a);
            }
        }
    }

    fn act(&mut self, i: usize, a: Action) {
        let now = self.now;
        let sid = self.nodes[i].sid;
        match a {
            Action::Send { to, msg } => {
                if !matches!(
                    msg,
                    Msg::Ping | Msg::Proposal { .. } | Msg::Commit { .. } | Msg::Ack { .. }
                ) {
                    trace(|| format!("{} {sid} -> {to}: {msg:?}", self.now));
                }
                match &msg {
                    Msg::Diff { .. } => self.counts.diff += 1,
                    Msg::Trunc { .. } => self.counts.trunc += 1,
                    _ => {}
                }
                self.send(sid, to, msg);
            }
            Action::SaveEpochs { accepted, current } => {
                let d = &mut self.nodes[i].disk;
                assert!(
                    accepted >= d.accepted && current >= d.current && accepted >= current,
                    "node {sid}: epochs go back: {}/{} -> {accepted}/{current}",
                    d.accepted,
                    d.current
                );
                d.accepted = accepted;
                d.current = current;
            }
            Action::Append { zxid, txn } => {
                let n = &mut self.nodes[i];
                if let Some(last) = n.disk.log.last() {
                    assert!(
                        zxid > last.0,
                        "node {sid}: append {zxid:x} after {:x}",
                        last.0
                    );
                }
                n.disk.log.push((zxid, txn));
                // Disks are slower than the network here, so acknowledging before an append is
                // durable gets caught by a crash.
                let due = now + self.rng.gen_range(1..=12);
                let n = &mut self.nodes[i];
                let due = n.persisting.back().map_or(due, |p| p.0.max(due));
                n.persisting.push_back((due, zxid));
            }
            Action::Truncate { zxid } => {
                let n = &mut self.nodes[i];
                n.disk.log.retain(|e| e.0 <= zxid);
                n.disk.durable = n.disk.durable.min(n.disk.log.len());
                n.state.retain(|e| e.0 <= zxid);
                n.persisting.retain(|p| p.1 <= zxid);
                assert!(
                    n.disk.log.last().map_or(0, |e| e.0) == zxid,
                    "node {sid}: truncate to {zxid:x} it does not have"
                );
            }
            Action::SendSnapshot { to, zxid } => {
                self.counts.snap += 1;
                let n = &self.nodes[i];
                let snap: Entries = n.state.iter().filter(|e| e.0 <= zxid).cloned().collect();
                assert_eq!(
                    snap.last().map_or(0, |e| e.0),
                    zxid,
                    "node {sid}: snapshot at {zxid:x} but applied {}",
                    render(&n.state)
                );
                self.send(
                    sid,
                    to,
                    Msg::Snap {
                        zxid,
                        data: encode(&snap),
                    },
                );
            }
            Action::InstallSnapshot { zxid, data } => {
                let entries = decode(&data);
                assert_eq!(entries.last().map_or(0, |e| e.0), zxid);
                // A leader not yet established sends its whole history, chosen or not: the
                // learner serves nothing of it before UPTODATE (checked then).
                let n = &mut self.nodes[i];
                n.disk.log = entries.clone();
                n.disk.durable = entries.len();
                n.state = entries;
                n.persisting.clear();
            }
            Action::Commit { zxid } => {
                self.counts.commits += 1;
                let n = &mut self.nodes[i];
                let last = n.state.last().map_or(0, |e| e.0);
                let more: Entries = n
                    .disk
                    .log
                    .iter()
                    .filter(|e| e.0 > last && e.0 <= zxid)
                    .cloned()
                    .collect();
                n.state.extend(more);
                assert_eq!(
                    n.state.last().map_or(0, |e| e.0),
                    zxid,
                    "node {sid}: commit {zxid:x} not in its log"
                );
                self.check(i);
            }
            Action::Request { from: _, data } => {
                if let Some(p) = self.nodes[i].peer.as_mut() {
                    p.propose(now, data);
                }
            }
            Action::Refused { .. } => unreachable!("the simulated leader refuses nothing"),
            Action::SyncDone { id } => {
                let asked = self.syncs.remove(&id).expect("a sync asked");
                assert_eq!(asked, sid, "sync {id} answered at the wrong member");
                self.counts.syncs_done += 1;
            }
            Action::Role { role, serving } => {
                trace(|| format!("{} node {sid}: {role:?} serving={serving}", self.now));
                if serving {
                    self.check(i);
                }
                let _ = role;
            }
        }
    }

    /// The safety check for node `i`, after it applied something or started serving.
    fn check(&mut self, i: usize) {
        let n = &self.nodes[i];
        let p = n.peer.as_ref().expect("up");
        if p.role() == Role::Leading {
            assert!(
                prefix_of(&self.chosen, &n.state),
                "leader {} lost a committed entry: chosen {} but its state {}",
                n.sid,
                render(&self.chosen),
                render(&n.state)
            );
            if p.serving() {
                self.chosen = n.state.clone();
            }
        } else {
            assert!(
                prefix_of(&n.state, &self.chosen),
                "member {} applied what was not chosen: state {} chosen {}",
                n.sid,
                render(&n.state),
                render(&self.chosen)
            );
        }
    }

    /// One millisecond: deliveries, disk completions, ticks.
    fn step(&mut self) {
        self.now += 1;
        let now = self.now;
        let due: Vec<(Sid, Sid)> = self
            .links
            .iter()
            .filter(|(_, q)| q.front().is_some_and(|m| m.0 <= now))
            .map(|(&k, _)| k)
            .collect();
        for (from, to) in due {
            // The link may be cut by what a delivery sets off; look it up each time.
            while let Some(msg) = self
                .links
                .get_mut(&(from, to))
                .and_then(|q| q.pop_front_if(|m| m.0 <= now))
                .map(|m| m.1)
            {
                let j = self.idx(to);
                if let Some(p) = self.nodes[j].peer.as_mut() {
                    p.on_message(now, from, msg);
                }
                self.run_actions(j);
            }
        }
        for i in 0..self.nodes.len() {
            while self.nodes[i].persisting.front().is_some_and(|p| p.0 <= now) {
                let Some((_, zxid)) = self.nodes[i].persisting.pop_front() else {
                    break;
                };
                let n = &mut self.nodes[i];
                n.disk.durable = n
                    .disk
                    .log
                    .iter()
                    .position(|e| e.0 == zxid)
                    .map_or(n.disk.durable, |k| k + 1)
                    .max(n.disk.durable);
                if let Some(p) = n.peer.as_mut() {
                    p.on_persisted(now, zxid);
                }
                self.run_actions(i);
            }
            if let Some(p) = self.nodes[i].peer.as_mut() {
                p.on_tick(now);
            }
            self.run_actions(i);
        }
    }

    /// A client write at a random member that serves (forwarded to the leader if a learner).
    fn client_write(&mut self) {
        let i = self.rng.gen_range(0..self.nodes.len());
        self.next_txn += 1;
        let data = Bytes::from(self.next_txn.to_be_bytes().to_vec());
        if let Some(p) = self.nodes[i].peer.as_mut() {
            if p.serving() {
                p.submit(data);
            }
        }
        self.run_actions(i);
    }

    fn client_sync(&mut self) {
        let i = self.rng.gen_range(0..self.nodes.len());
        self.next_txn += 1;
        let id = self.next_txn;
        let sid = self.nodes[i].sid;
        if let Some(p) = self.nodes[i].peer.as_mut() {
            if p.sync(id) {
                self.syncs.insert(id, sid);
            }
        }
        self.run_actions(i);
    }

    fn run(&mut self, ms: u64, write_every: u64) {
        for _ in 0..ms {
            self.step();
            if write_every > 0 && self.now.is_multiple_of(write_every) {
                self.client_write();
            }
        }
    }

    fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| {
            n.peer
                .as_ref()
                .is_some_and(|p| p.role() == Role::Leading && p.serving())
        })
    }

    fn all_serving(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.peer.as_ref().is_some_and(|p| p.serving()))
    }

    /// Heals everything, restarts the crashed, and waits until every member serves and has
    /// applied one last write.
    fn settle(&mut self, seed: u64) {
        let groups = vec![0; self.nodes.len()];
        self.partition(&groups);
        for i in 0..self.nodes.len() {
            if self.nodes[i].peer.is_none() {
                self.start(i);
            }
        }
        let deadline = self.now + 30_000;
        while !(self.leader().is_some() && self.all_serving()) {
            assert!(
                self.now < deadline,
                "seed {seed}: no serving ensemble 30 s after healing: {}",
                self.describe()
            );
            self.step();
        }
        let l = self.leader().expect("leader");
        let now = self.now;
        self.next_txn += 1;
        let marker = Bytes::from(self.next_txn.to_be_bytes().to_vec());
        let zxid = self.nodes[l]
            .peer
            .as_mut()
            .and_then(|p| p.propose(now, marker))
            .expect("the leader proposes");
        self.run_actions(l);
        // Writes forwarded before the heal may still commit after the marker: wait for all of
        // it to land everywhere.
        while !self
            .nodes
            .iter()
            .all(|n| n.state.last().is_some_and(|e| e.0 >= zxid) && n.state == self.chosen)
        {
            assert!(
                self.now < deadline,
                "seed {seed}: the last write did not reach everyone: {}",
                self.describe()
            );
            self.step();
        }
        for n in &self.nodes {
            assert_eq!(n.state, self.chosen, "seed {seed}: member {}", n.sid);
        }
    }

    fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|n| match &n.peer {
                Some(p) => format!(
                    "{}:{:?} serving={} logged={:x} applied={:x} state={} epochs={:?}",
                    n.sid,
                    p.role(),
                    p.serving(),
                    p.last_logged(),
                    p.applied(),
                    render(&n.state),
                    p.epochs()
                ),
                None => format!("{}:down", n.sid),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// With SIMTRACE set, role changes and protocol messages (not the steady broadcast) go to
/// stderr: `SIMTRACE=1 cargo test --lib zab::sim::NAME -- --nocapture`.
fn trace(line: impl FnOnce() -> String) {
    if std::env::var_os("SIMTRACE").is_some() {
        eprintln!("{}", line());
    }
}

fn encode(e: &[(Zxid, Bytes)]) -> Bytes {
    let mut v = Vec::new();
    for (z, t) in e {
        v.extend_from_slice(&z.to_be_bytes());
        v.extend_from_slice(&(t.len() as u32).to_be_bytes());
        v.extend_from_slice(t);
    }
    Bytes::from(v)
}

fn decode(b: &[u8]) -> Entries {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let z = u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let n = u32::from_be_bytes(b[i + 8..i + 12].try_into().expect("4 bytes")) as usize;
        out.push((z, Bytes::copy_from_slice(&b[i + 12..i + 12 + n])));
        i += 12 + n;
    }
    out
}

#[test]
fn three_members_elect_serve_and_agree() {
    let mut sim = Sim::new(1, &[1, 2, 3], &[], 500);
    sim.run(2_000, 2);
    assert!(sim.leader().is_some(), "{}", sim.describe());
    assert!(sim.all_serving(), "{}", sim.describe());
    assert!(
        sim.chosen.len() > 500,
        "only {} committed",
        sim.chosen.len()
    );
    sim.settle(1);
}

#[test]
fn an_ensemble_of_one_leads_itself() {
    let mut sim = Sim::new(7, &[1], &[], 500);
    sim.run(500, 2);
    assert_eq!(sim.leader(), Some(0), "{}", sim.describe());
    assert!(sim.chosen.len() > 100);
    // Restarting keeps everything and serves again.
    let before = sim.chosen.clone();
    sim.crash(0);
    sim.start(0);
    sim.run(500, 0);
    assert_eq!(sim.leader(), Some(0), "{}", sim.describe());
    assert!(prefix_of(&before, &sim.nodes[0].state));
}

#[test]
fn a_minority_cannot_commit_and_the_majority_moves_on() {
    let mut sim = Sim::new(3, &[1, 2, 3, 4, 5], &[], 500);
    sim.run(1_000, 2);
    let l = sim.leader().expect("a leader");
    // The leader and one other on one side, three on the other.
    let other = (l + 1) % 5;
    let groups: Vec<u8> = (0..5).map(|i| u8::from(i == l || i == other)).collect();
    sim.partition(&groups);
    let len = sim.chosen.len();
    // Writes submitted at the minority's leader never commit.
    for _ in 0..50 {
        let now = sim.now;
        if let Some(p) = sim.nodes[l].peer.as_mut() {
            p.propose(now, Bytes::from_static(b"minority"));
        }
        sim.run_actions(l);
        sim.step();
    }
    assert!(
        sim.chosen.iter().skip(len).all(|e| &e.1[..] != b"minority"),
        "a minority committed"
    );
    sim.run(2_000, 2);
    let new = sim.leader().expect("the majority elects");
    assert_ne!(new, l);
    assert!(sim.chosen.len() > len + 100, "the majority commits");
    sim.settle(3);
}

#[test]
fn random_crashes_restarts_and_partitions_never_break_safety() {
    let mut totals = Counts::default();
    for seed in 0..150 {
        // Three or five voters; a short history (most late learners get a SNAP) or a long one
        // (they get a DIFF or a TRUNC).
        let voters: &[Sid] = if seed % 3 == 0 {
            &[1, 2, 3]
        } else {
            &[1, 2, 3, 4, 5]
        };
        let n = voters.len();
        let history = if seed % 2 == 0 { 8 } else { 500 };
        let mut sim = Sim::new(seed, voters, &[], history);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        for _ in 0..12 {
            match rng.gen_range(0..6) {
                5 => {
                    // Power failure: everyone at once, then everyone back.
                    for i in 0..n {
                        sim.crash(i);
                    }
                    for i in 0..n {
                        sim.start(i);
                    }
                }
                0 => {
                    let i = rng.gen_range(0..n);
                    sim.crash(i);
                }
                4 => {
                    // A correlated failure: the leader and another member at once.
                    if let Some(l) = sim.leader() {
                        sim.crash(l);
                        sim.crash((l + rng.gen_range(1..n)) % n);
                    }
                }
                1 => {
                    let i = rng.gen_range(0..n);
                    if sim.nodes[i].peer.is_none() {
                        sim.start(i);
                    }
                }
                2 => {
                    let groups: Vec<u8> = (0..n).map(|_| rng.gen_range(0..2)).collect();
                    sim.partition(&groups);
                }
                _ => sim.partition(&vec![0; n]),
            }
            let ms = rng.gen_range(50..600);
            for _ in 0..ms {
                sim.step();
                if sim.now.is_multiple_of(3) {
                    sim.client_write();
                }
                if sim.now.is_multiple_of(97) {
                    sim.client_sync();
                }
            }
        }
        sim.settle(seed);
        totals.diff += sim.counts.diff;
        totals.trunc += sim.counts.trunc;
        totals.snap += sim.counts.snap;
        totals.commits += sim.counts.commits;
        totals.syncs_done += sim.counts.syncs_done;
    }
    // The runs went through every sync path, and did work.
    assert!(
        totals.diff > 0 && totals.trunc > 0 && totals.snap > 0,
        "{totals:?}"
    );
    assert!(
        totals.commits > 10_000 && totals.syncs_done > 100,
        "{totals:?}"
    );
}

#[test]
fn observers_follow_but_never_count() {
    let mut sim = Sim::new(11, &[1, 2, 3], &[9], 500);
    sim.run(1_000, 2);
    assert!(sim.all_serving(), "{}", sim.describe());
    let obs = sim.idx(9);
    assert!(matches!(
        sim.nodes[obs].peer.as_ref().map(|p| p.role()),
        Some(Role::Observing { .. })
    ));
    // Two voters down: one voter and the observer cannot commit anything.
    let l = sim.leader().expect("leader");
    let downs: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    for &i in &downs {
        sim.crash(i);
    }
    // What a crashed voter had on disk was acknowledged by it, and the leader may still commit
    // it once its own write is durable (a quorum had it); nothing after it.
    let acked = downs
        .iter()
        .filter_map(|&i| sim.nodes[i].disk.log[..sim.nodes[i].disk.durable].last())
        .map(|e| e.0)
        .max()
        .unwrap_or(0);
    sim.run(1_000, 2);
    assert!(
        sim.chosen.last().map_or(0, |e| e.0) <= acked,
        "committed without a quorum of voters"
    );
    let len = sim.chosen.len();
    sim.run(1_000, 2);
    assert_eq!(
        sim.chosen.len(),
        len,
        "committed without a quorum of voters"
    );
    assert!(sim.leader().is_none(), "{}", sim.describe());
    sim.settle(11);
}

#[test]
fn a_sync_answers_after_everything_proposed_before_it_is_applied() {
    let mut sim = Sim::new(5, &[1, 2, 3], &[], 500);
    while !sim.all_serving() {
        assert!(sim.now < 5_000, "{}", sim.describe());
        sim.step();
    }
    let f = (0..3)
        .find(|&i| sim.leader() != Some(i))
        .expect("a follower");
    // Writes in flight at the leader, then a sync at the follower.
    let l = sim.leader().expect("leader");
    let now = sim.now;
    let mut last = 0;
    for k in 0..20u8 {
        if let Some(z) = sim.nodes[l]
            .peer
            .as_mut()
            .and_then(|p| p.propose(now, Bytes::from(vec![k])))
        {
            last = z;
        }
    }
    sim.run_actions(l);
    sim.syncs.insert(424242, sim.nodes[f].sid);
    assert!(sim.nodes[f].peer.as_mut().is_some_and(|p| p.sync(424242)));
    sim.run_actions(f);
    while sim.syncs.contains_key(&424242) {
        assert!(sim.now < 10_000, "sync never answered");
        sim.step();
    }
    assert!(
        sim.nodes[f].state.last().is_some_and(|e| e.0 >= last),
        "sync answered before the follower applied {last:x}"
    );
}
#[test]
fn a_fresh_ensemble_serves_within_a_few_ticks() {
    for seed in 0..50 {
        for voters in [&[1, 2, 3][..], &[1, 2, 3, 4, 5][..]] {
            let mut sim = Sim::new(seed, voters, &[], 500);
            while !sim.all_serving() {
                // Ticks are 20 ms: election, discovery and sync take a few of them.
                assert!(sim.now < 200, "seed {seed}: {}", sim.describe());
                sim.step();
            }
        }
    }
}

/// ZooKeeper's standalone numbering through the same `Peer`: zxids continue from the last one
/// across restarts, with no new epoch and no epoch files; a counter that runs out moves to the
/// next epoch.
#[test]
fn a_standalone_member_continues_its_zxids() {
    let lone = |last: Zxid| {
        let cfg = Config {
            me: 1,
            ensemble: Ensemble::of_voters([1]),
            tick_ms: 20,
            init_limit: 10,
            sync_limit: 5,
            history_limit: 8,
            standalone: true,
            election: Timing {
                finalize_wait_ms: 0,
                ..Timing::default()
            },
        };
        let mut p = Peer::new(
            cfg,
            Durable {
                base: last,
                ..Durable::default()
            },
            0,
        );
        p.on_tick(0);
        let actions = p.take_actions();
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::SaveEpochs { .. })),
            "{actions:?}"
        );
        p
    };
    let mut p = lone(0);
    assert_eq!(p.next_zxid(), Some(1));
    for want in 1..=3 {
        assert_eq!(p.propose(1, Bytes::from_static(b"t")), Some(want));
    }
    p.on_persisted(2, 3);
    assert!(p.take_actions().contains(&Action::Commit { zxid: 3 }));
    // A restart goes on from the last logged zxid, in the same epoch.
    assert_eq!(lone(3).next_zxid(), Some(4));
    assert_eq!(lone(7 << 32 | 9).next_zxid(), Some(7 << 32 | 10));
    // The last counter of an epoch is followed by counter 1 of the next.
    let p = lone((7 << 32) | (u32::MAX as u64 - 1));
    assert_eq!(p.next_zxid(), Some(8 << 32 | 1));
}

/// A member that settled on a leader which then follows another (it decided in its finalize
/// wait on a vote the others left behind) elects again as soon as that member tells it, not
/// after initLimit ticks without a LEADERINFO.
#[test]
fn a_member_following_a_follower_elects_again_at_once() {
    use super::election::{Notification, PeerState, Vote};
    use super::peer::Role;
    let cfg = Config {
        me: 1,
        ensemble: Ensemble::of_voters([1, 2, 3]),
        tick_ms: 2000,
        init_limit: 10,
        sync_limit: 5,
        history_limit: 8,
        standalone: false,
        election: Timing {
            finalize_wait_ms: 50,
            ..Timing::default()
        },
    };
    let mut p = Peer::new(cfg, Durable::default(), 0);
    p.on_tick(0);
    for sid in [2, 3] {
        p.on_connected(0, sid);
    }
    let round = |p: &mut Peer| {
        p.take_actions()
            .iter()
            .find_map(|a| match a {
                Action::Send {
                    msg: Msg::Vote(n), ..
                } => Some(n.round),
                _ => None,
            })
            .expect("a vote sent")
    };
    let r = round(&mut p);
    let vote = |leader| Vote {
        leader,
        zxid: 0,
        peer_epoch: 0,
    };
    // 2 votes for itself; with 1 that is a quorum, and the finalize wait ends.
    let looking = Notification {
        vote: vote(2),
        round: r,
        state: PeerState::Looking,
    };
    p.on_message(1, 2, Msg::Vote(looking));
    p.on_tick(60);
    assert_eq!(p.role(), Role::Following { leader: 2 });
    let _ = p.take_actions();
    // 2 meanwhile settled on 3 and says so.
    let following = Notification {
        vote: vote(3),
        round: r,
        state: PeerState::Following,
    };
    p.on_message(70, 2, Msg::Vote(following));
    assert_eq!(p.role(), Role::Looking, "still following a follower");
}
