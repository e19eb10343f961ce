//! A deterministic simulation of a replicated ensemble of real write machines
//! (docs/design/write-machine.md): 3 or 5 voters, or 3 voters and an observer, each a `Machine`
//! with its own simulated log (durable at a simulated flush of random latency; a crash keeps the
//! durable records and maybe some written after), epoch files, and shards whose replicas apply
//! what the machine commits and answer simulated clients. Members talk over simulated links: one
//! connection per pair with a generation, FIFO, random delays; partitions and crashes take
//! connections down, healing brings new generations up (as `server::quorum` does). Clients open
//! sessions on random members, send real requests (opcode and encoded body, which learners
//! forward), and move to another member with their session when a connection closes. Faults:
//! crashes and restarts (recovery from the durable log and epochs, as startup does), partitions,
//! pauses, links replaced, full disks. Everything is drawn from one seed; time is simulated.
//!
//! Checked after every event:
//!
//! - one history: every txn any replica applies is in one sequence (`chosen`); before applying
//!   a txn a replica must hold exactly the state `chosen` had before it (tree digest, sessions,
//!   last zxid), so replicas are prefixes of one history, never apply two txns at one zxid,
//!   never skip one; a `Reset` (TRUNC, SNAP) must bring a replica to a state of that history;
//! - an acknowledged write (a client got its reply at zxid Z) is durable on a quorum of voters,
//!   so no later crash or election loses it (and the history check makes every member that
//!   goes on serving hold it);
//! - a connection's replies come in the order of its requests (FIFO);
//! - nothing is applied twice: a (session, cxid) is in the history at most once, and a session's
//!   requests are applied in the order the client issued them (ZooKeeper's sequential
//!   consistency; a session moved to another member must not have an older request of it
//!   applied after a newer one);
//! - no correct client's request arrives malformed (no MarshallingError txn);
//! - zxids delivered to a replica only grow, except across a `Reset`.
//!
//! Some members run their machine on shard 0's replica (`Base::Shared`, as on one or two
//! CPUs): the machine replaces that replica itself at a reset, and shard 0 then skips the
//! commits still on their way to it, up to the new tree's zxid, as `server::commit` does.
//!
//! Watches are not modelled by the simulated shards, so "a watch fires before its data is
//! readable" is not checked here (the shards' tests cover it).
//!
//! At the end the faults stop, the network heals, crashed members restart, and the ensemble must
//! settle: every member serving, every machine's tree and every replica the same as the last
//! state of the history.
//!
//! Failures name their seed; `SIM_SEED=n` replays one (`SIMTRACE=1` prints its events),
//! `SIM_ITERS=n` runs that many seeds per ensemble shape, from `SIM_FROM` (0).

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use rand::{Rng, RngCore};

use super::sim::{env, passwords, random_write};
use super::{Base, Bug, Effect, Machine, Now, Origin, Recent, ToCore, ToShard};
use crate::config::{Config, PeerRole, ServerSpec};
use crate::proto::codes::{op, Code};
use crate::proto::jute::{Reader, Writer};
use crate::proto::records::{Acl, CreateRequest, Id, MultiOp, Request};
use crate::storage::codec::{decode_txn, encode_txn};
use crate::storage::snapshot::{self, Cursor};
use crate::tree::DataTree;
use crate::txn::{Txn, TxnOp};
use crate::watch::ConnId;
use crate::zab::link::LinkEvent;
use crate::zab::peer::{Msg, Role};
use crate::zab::{Sid, Zxid};

const SHARDS: usize = 2;
const CLIENTS: usize = 6;
/// The ensemble runtime ticks the write core this often.
const TICK_MS: u64 = 10;
/// A client gives up on a connection that has not answered for this long.
const CLIENT_TIMEOUT_MS: u64 = 4000;

/// Bugs planted in the simulator's own parts, to prove the checks bite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimBug {
    /// A link delivers a message sent on an old connection on its successor. (Zab's peers
    /// notice most such messages as out of place and start over: not caught in 200 seeds.)
    #[allow(dead_code)]
    StaleGeneration,
    /// A crash loses records the disk said were durable.
    LoseDurable,
    /// A shard skips one commit.
    SkipCommit,
    /// Clients' writes carry an empty body (a learner forwards nothing useful).
    EmptyBody,
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    voters: u64,
    observers: u64,
}

/// What a connection waits for, in the order it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaited {
    Write(i32),
    Sync,
    Connect,
}

struct Conn {
    member: Sid,
    origin: Origin,
    attached: bool,
    awaiting: VecDeque<Awaited>,
    /// When it last heard something, or began waiting.
    progress_ms: u64,
}

struct Client {
    session: Option<(i64, [u8; 16])>,
    conn: Option<Conn>,
    cxid: i32,
    /// The last zxid this client saw (sent on reconnecting).
    seen: i64,
}

/// One direction of a link: (id, arrival time, what), in order.
type Channel = VecDeque<(u64, u64, Wire)>;

/// What travels on one direction of a link, for the receiving end.
enum Wire {
    Up(u64),
    Down(u64),
    Msg(u64, Msg),
}

struct Member {
    sid: Sid,
    cfg: Arc<Config>,
    /// `None` while crashed.
    machine: Option<Machine>,
    /// Bumped at each crash: events of an earlier life are ignored.
    life: u64,
    inbox: VecDeque<ToCore<()>>,
    /// A flush is in flight (the driver waits for it) until its `FlushDone`.
    flushing: Option<usize>,
    /// Paused (a long GC, a stopped VM): handles nothing until then.
    paused_until: u64,
    /// Disk: an installed snapshot (zxid, data), the log after it, of which `durable` records
    /// survive a crash, and the epoch files.
    snap: Option<(i64, Bytes)>,
    log: Vec<(Zxid, Bytes)>,
    durable: usize,
    /// The records folded into the snapshot by `compact`: the history may need them.
    compacted: BTreeMap<Zxid, Bytes>,
    epochs: (u32, u32),
    full_disk: bool,
    replicas: Vec<Rc<RefCell<DataTree>>>,
    /// The machine's committed tree is shard 0's replica.
    shared: bool,
    /// After the machine replaced a shared replica: shard 0 skips commits up to this zxid
    /// until the `Reset` reaches it.
    skip_upto: Option<i64>,
    /// Per replica, the zxid of the history's state it is known to hold (0: empty).
    known: Vec<Option<i64>>,
    role: Role,
    serving: bool,
    group: u8,
    effects: Vec<Effect>,
}

enum Ev {
    Arrive { from: Sid, to: Sid, id: u64 },
    Process(Sid),
    FlushDone(Sid, u64),
    Tick(Sid, u64),
    Restart(Sid, u64),
    Client,
    Fault,
}

/// One entry of the history: the txn's zxid and hash, and the state after it.
struct Chosen {
    zxid: i64,
    txn: u64,
    state: u64,
}

#[derive(Default, Debug, Clone, Copy)]
struct Totals {
    crashes: u64,
    partitions: u64,
    acked: u64,
    replies: u64,
    resets: u64,
    snapshots: u64,
    elections: u64,
    zxid: i64,
}

struct Sim {
    rng: SimRng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Ev>,
    members: Vec<Member>,
    /// Live connection per pair (lower sid first) and its generation.
    conns: BTreeMap<(Sid, Sid), u64>,
    next_gen: u64,
    /// (from, to) -> what is in flight, in order: (id, arrival time, what).
    channels: HashMap<(Sid, Sid), Channel>,
    next_id: u64,
    clients: Vec<Client>,
    next_conn: ConnId,
    chosen: Vec<Chosen>,
    /// The state after the history's last txn; the state of an empty tree.
    reference: DataTree,
    empty: u64,
    index: HashMap<i64, usize>,
    /// (session, cxid) of every client request in the history; each session's last cxid.
    applied: HashSet<(i64, i32)>,
    last_cxid: HashMap<i64, i32>,
    /// The highest zxid a client got a reply for.
    acked: i64,
    /// Faults and clients stop at this time; then the ensemble must settle.
    faults_until: u64,
    bug: Option<Bug>,
    sim_bug: Option<SimBug>,
    skipped: bool,
    trace: bool,
    full_disks: bool,
    t: Totals,
}

type Res = Result<(), String>;

/// SplitMix64: the simulator draws many numbers, and the standard generator (ChaCha) was a
/// tenth of its time in debug builds.
struct SimRng(u64);

impl RngCore for SimRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// A tree's state as the checks compare it: nodes (digest), sessions, last zxid.
fn state_of(t: &DataTree) -> u64 {
    let mut h = DefaultHasher::new();
    t.digest().hash(&mut h);
    let mut s: Vec<_> = t
        .sessions()
        .map(|(id, e)| (*id, e.timeout_ms, e.password))
        .collect();
    s.sort();
    s.hash(&mut h);
    t.last_zxid().hash(&mut h);
    h.finish()
}

fn txn_hash(t: &Txn) -> u64 {
    let mut b = BytesMut::new();
    encode_txn(t, &mut b);
    let mut h = DefaultHasher::new();
    t.zxid.hash(&mut h);
    b.hash(&mut h);
    h.finish()
}

fn put_create(b: &mut BytesMut, c: &CreateRequest) {
    b.put_jstring(&c.path);
    b.put_jbuffer_opt(c.data.as_deref());
    Acl::encode_list(&c.acl, b);
    b.put_i32(c.flags);
    if c.opcode == op::CREATE_TTL {
        b.put_i64(c.ttl);
    }
}

/// A request's opcode and body as a client sends them (after the header).
fn encode(req: &Request) -> (i32, Bytes) {
    let mut b = BytesMut::new();
    let opcode = match req {
        Request::Create(c) => {
            put_create(&mut b, c);
            c.opcode
        }
        Request::SetData {
            path,
            data,
            version,
        } => {
            b.put_jstring(path);
            b.put_jbuffer_opt(data.as_deref());
            b.put_i32(*version);
            op::SET_DATA
        }
        Request::Delete { path, version } => {
            b.put_jstring(path);
            b.put_i32(*version);
            op::DELETE
        }
        Request::Sync { path } => {
            b.put_jstring(path);
            op::SYNC
        }
        Request::CloseSession => op::CLOSE_SESSION,
        Request::Multi(ops) => {
            for o in ops {
                let (typ, path, version) = match o {
                    MultiOp::Create(c) => (c.opcode, &c.path, 0),
                    MultiOp::SetData { path, version, .. } => (op::SET_DATA, path, *version),
                    MultiOp::Delete { path, version } => (op::DELETE, path, *version),
                    MultiOp::Check { path, version } => (op::CHECK, path, *version),
                };
                b.put_i32(typ);
                b.put_jbool(false);
                b.put_i32(-1);
                match o {
                    MultiOp::Create(c) => put_create(&mut b, c),
                    MultiOp::SetData { data, .. } => {
                        b.put_jstring(path);
                        b.put_jbuffer_opt(data.as_deref());
                        b.put_i32(version);
                    }
                    _ => {
                        b.put_jstring(path);
                        b.put_i32(version);
                    }
                }
            }
            b.put_i32(-1);
            b.put_jbool(true);
            b.put_i32(-1);
            op::MULTI
        }
        other => unreachable!("the simulated clients do not send {other:?}"),
    };
    let body = b.freeze();
    let back = Request::decode(opcode, &mut Reader::new(body.clone()));
    assert_eq!(back.as_ref().ok(), Some(req), "request encoding");
    (opcode, body)
}

/// From the seed: local sessions in a third of the runs (upgrading in another third), and
/// read-only mode in every other run of each.
fn config(me: Sid, shape: Shape, seed: u64) -> Config {
    let local = seed % 3;
    let mut servers = BTreeMap::new();
    for id in 1..=shape.voters + shape.observers {
        servers.insert(
            id,
            ServerSpec {
                id,
                host: "127.0.0.1".to_string(),
                quorum_port: 2880 + id as u16,
                election_port: 3880 + id as u16,
                role: if id > shape.voters {
                    PeerRole::Observer
                } else {
                    PeerRole::Participant
                },
                client: None,
            },
        );
    }
    Config {
        tick_time_ms: 100,
        container_check_interval_ms: 500,
        servers,
        my_id: Some(me),
        local_sessions_enabled: local > 0,
        local_sessions_upgrading_enabled: local == 2,
        read_only_enabled: (seed / 3) % 2 == 1,
        ..Config::default()
    }
}

/// The state a member's disk recovers to: the snapshot, then the log's records.
fn recover(snap: &Option<(i64, Bytes)>, log: &[(Zxid, Bytes)]) -> Result<DataTree, String> {
    let mut tree = match snap {
        Some((_, data)) => snapshot::load(data)?.0,
        None => DataTree::new(),
    };
    for (zxid, body) in log {
        let txn = decode_txn(*zxid as i64, body.clone())
            .map_err(|e| format!("logged txn {zxid:#x} does not decode: {e:?}"))?;
        tree.apply(&txn);
    }
    Ok(tree)
}

impl Sim {
    fn new(seed: u64, shape: Shape, bug: Option<Bug>, sim_bug: Option<SimBug>) -> Sim {
        let mut rng = SimRng(seed ^ 0x9e37_79b9_7f4a_7c15);
        let faults_until = rng.gen_range(1500..3500);
        let mut sim = Sim {
            rng,
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            members: Vec::new(),
            conns: BTreeMap::new(),
            next_gen: 1,
            channels: HashMap::new(),
            next_id: 0,
            clients: Vec::new(),
            next_conn: 0,
            chosen: Vec::new(),
            reference: DataTree::new(),
            empty: state_of(&DataTree::new()),
            index: HashMap::new(),
            applied: HashSet::new(),
            last_cxid: HashMap::new(),
            acked: 0,
            faults_until,
            bug,
            sim_bug,
            skipped: false,
            trace: env("SIMTRACE").is_some(),
            full_disks: env("SIM_FULL_DISK") != Some(0),
            t: Totals::default(),
        };
        for sid in 1..=shape.voters + shape.observers {
            sim.members.push(Member {
                sid,
                cfg: Arc::new(config(sid, shape, seed)),
                machine: None,
                life: 0,
                inbox: VecDeque::new(),
                flushing: None,
                paused_until: 0,
                snap: None,
                log: Vec::new(),
                durable: 0,
                compacted: BTreeMap::new(),
                epochs: (0, 0),
                full_disk: false,
                replicas: Vec::new(),
                shared: (seed + sid).is_multiple_of(2),
                skip_upto: None,
                known: Vec::new(),
                role: Role::Looking,
                serving: false,
                group: 0,
                effects: Vec::new(),
            });
        }
        for _ in 0..CLIENTS {
            sim.clients.push(Client {
                session: None,
                conn: None,
                cxid: 0,
                seen: 0,
            });
        }
        sim
    }

    fn m(&mut self, sid: Sid) -> &mut Member {
        &mut self.members[sid as usize - 1]
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((t, self.seq), ev);
    }

    fn time(&self) -> Now {
        Now {
            mono_ms: self.now,
            wall_ms: 1_000_000 + self.now as i64,
        }
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[{:>6}] {}", self.now, what());
        }
    }

    /// Starts (or restarts) a member from its disk, as startup does.
    fn start(&mut self, sid: Sid) -> Res {
        let now = self.time();
        let seed = self.rng.gen();
        let bug = self.bug;
        let m = self.m(sid);
        let tree = recover(&m.snap, &m.log)?;
        let records = &m.log;
        let from = records.len().saturating_sub(crate::limits::RECENT_RECORDS);
        let base = if from > 0 {
            records[from - 1].0 as i64
        } else {
            m.snap.as_ref().map_or(0, |s| s.0)
        };
        let recent = Recent {
            base,
            entries: records[from..]
                .iter()
                .map(|(z, b)| (*z as i64, b.clone()))
                .collect(),
        };
        m.replicas = (0..SHARDS)
            .map(|_| Rc::new(RefCell::new(tree.clone())))
            .collect();
        m.known = vec![None; SHARDS];
        m.skip_upto = None;
        let committed_tree = if m.shared {
            Base::Shared(m.replicas[0].clone())
        } else {
            Base::Own(Box::new(tree))
        };
        let mut machine = Machine::new(
            m.cfg.clone(),
            committed_tree,
            recent,
            m.epochs,
            SHARDS,
            now,
            passwords(seed),
            &mut m.effects,
        );
        if let Some(b) = bug {
            machine.plant(b);
        }
        m.machine = Some(machine);
        m.role = Role::Looking;
        m.serving = false;
        m.flushing = None;
        m.paused_until = 0;
        let life = m.life;
        self.log(|| format!("member {sid} starts"));
        self.perform(sid)?;
        self.at(self.now + TICK_MS, Ev::Tick(sid, life));
        self.reconcile();
        Ok(())
    }

    /// The process dies: the log keeps what is durable (and maybe some written after it),
    /// links drop, clients lose their connections.
    fn crash(&mut self, sid: Sid) {
        self.t.crashes += 1;
        let extra = {
            let m = &self.members[sid as usize - 1];
            m.log.len() - m.durable
        };
        let keep = self.rng.gen_range(0..=extra);
        let lose = self.sim_bug == Some(SimBug::LoseDurable);
        let m = self.m(sid);
        let keep = if lose {
            m.durable / 2
        } else {
            m.durable + keep
        };
        m.log.truncate(keep);
        m.durable = keep;
        // The member had taken a snapshot of what it committed and purged the log before it
        // (as `server::snapshots` does): a restart then knows few records, and learners
        // further behind get a SNAP.
        // (Of states of the history its replicas are known to hold: what they recovered at a
        // restart may hold records never committed, which a real snapshot would not.)
        let committed = m.known.iter().map(|k| k.unwrap_or(0)).min().unwrap_or(0);
        m.machine = None;
        if self.rng.gen_bool(0.3) {
            self.compact(sid, committed);
        }
        let m = self.m(sid);
        m.life += 1;
        m.inbox.clear();
        m.flushing = None;
        m.replicas.clear();
        m.serving = false;
        self.log(|| format!("member {sid} crashes, keeping {keep} records"));
        for c in &mut self.clients {
            if c.conn.as_ref().is_some_and(|c| c.member == sid) {
                c.conn = None;
            }
        }
        for (k, q) in self.channels.iter_mut() {
            if k.1 == sid {
                q.clear();
            }
        }
        self.reconcile();
    }

    /// Replaces the member's snapshot and the log records up to `committed` (all durable ones
    /// at most) with a snapshot of that state.
    fn compact(&mut self, sid: Sid, committed: i64) {
        let m = self.m(sid);
        let k = m.log[..m.durable]
            .iter()
            .take_while(|r| r.0 as i64 <= committed)
            .count();
        if k == 0 {
            return;
        }
        let Ok(tree) = recover(&m.snap, &m.log[..k]) else {
            return; // the check at restart reports it
        };
        let mut cursor = Cursor::new();
        let mut data = Vec::new();
        cursor.begin(&tree, &mut data);
        while !cursor.step(&tree, usize::MAX, &mut data) {}
        m.snap = Some((tree.last_zxid(), data.into()));
        let folded: Vec<(Zxid, Bytes)> = m.log.drain(..k).collect();
        m.compacted.extend(folded);
        m.durable -= k;
        let z = tree.last_zxid();
        self.log(|| format!("member {sid} compacted its log to a snapshot at {z:#x}"));
    }

    fn up(&self, sid: Sid) -> bool {
        self.members[sid as usize - 1].machine.is_some()
    }

    /// Brings the connections in line with who is up and who can reach whom.
    fn reconcile(&mut self) {
        let n = self.members.len() as Sid;
        for a in 1..=n {
            for b in a + 1..=n {
                let want = self.up(a)
                    && self.up(b)
                    && self.members[a as usize - 1].group == self.members[b as usize - 1].group;
                match (want, self.conns.get(&(a, b)).copied()) {
                    (true, None) => self.connect(a, b),
                    (false, Some(gen)) => self.cut(a, b, gen),
                    _ => {}
                }
            }
        }
    }

    fn connect(&mut self, a: Sid, b: Sid) {
        let gen = self.next_gen;
        self.next_gen += 1;
        self.conns.insert((a, b), gen);
        self.log(|| format!("link {a}-{b} up, generation {gen}"));
        self.push(a, b, Wire::Up(gen));
        self.push(b, a, Wire::Up(gen));
    }

    /// A connection drops: what was in flight on it may be lost (a random suffix), and both
    /// ends hear it went down.
    fn cut(&mut self, a: Sid, b: Sid, gen: u64) {
        if self.conns.get(&(a, b)) == Some(&gen) {
            self.conns.remove(&(a, b));
        }
        self.log(|| format!("link {a}-{b} down, generation {gen}"));
        for (from, to) in [(a, b), (b, a)] {
            let q = self.channels.entry((from, to)).or_default();
            let ours = q
                .iter()
                .filter(|e| matches!(e.2, Wire::Msg(g, _) if g == gen))
                .count();
            let keep = self.rng.gen_range(0..=ours);
            let mut seen = 0;
            q.retain(|e| match e.2 {
                Wire::Msg(g, _) if g == gen => {
                    seen += 1;
                    seen <= keep
                }
                _ => true,
            });
            if self.up(to) {
                self.push(from, to, Wire::Down(gen));
            }
        }
    }

    /// Puts `w` on the link from `from` to `to`, behind what is already on it.
    fn push(&mut self, from: Sid, to: Sid, w: Wire) {
        let delay = self.rng.gen_range(1..=8);
        let q = self.channels.entry((from, to)).or_default();
        let arrive = q.back().map_or(0, |e| e.1).max(self.now + delay);
        self.next_id += 1;
        let id = self.next_id;
        q.push_back((id, arrive, w));
        self.at(arrive, Ev::Arrive { from, to, id });
    }

    /// Member `from` sends on generation `gen` of its link to `to`: dropped unless that is
    /// the live connection (as `server::quorum`'s `Links::send`).
    fn send_peer(&mut self, from: Sid, to: Sid, gen: u64, msg: Msg) {
        let key = (from.min(to), from.max(to));
        match self.conns.get(&key).copied() {
            Some(g) if g == gen => self.push(from, to, Wire::Msg(gen, msg)),
            Some(g) if self.sim_bug == Some(SimBug::StaleGeneration) => {
                self.push(from, to, Wire::Msg(g, msg))
            }
            _ => {}
        }
    }

    /// Carries out a member's effects, in order.
    fn perform(&mut self, sid: Sid) -> Res {
        let effects = std::mem::take(&mut self.m(sid).effects);
        for e in effects {
            match e {
                Effect::Append { zxid, txn } => {
                    let m = self.m(sid);
                    if m.log.last().is_some_and(|l| l.0 >= zxid)
                        || m.snap.as_ref().is_some_and(|s| s.0 as Zxid >= zxid)
                    {
                        return Err(format!(
                            "member {sid} appends {zxid:#x} after {:#x}",
                            m.log.last().map_or(0, |l| l.0)
                        ));
                    }
                    m.log.push((zxid, txn));
                }
                Effect::SaveEpochs { accepted, current } => {
                    self.m(sid).epochs = (accepted, current);
                }
                Effect::Peer { to, gen, msg } => self.send_peer(sid, to, gen, msg),
                Effect::Role {
                    role,
                    serving,
                    read_only,
                } => {
                    self.log(|| {
                        format!(
                            "member {sid} is {role:?}, serving {serving}, read-only {read_only}"
                        )
                    });
                    if role != Role::Looking && self.members[sid as usize - 1].role == Role::Looking
                    {
                        self.t.elections += 1;
                    }
                    let m = self.m(sid);
                    m.role = role;
                    m.serving = serving;
                }
                Effect::Truncate { zxid, reload } => {
                    self.log(|| format!("member {sid} truncates to {zxid:#x}, reload {reload}"));
                    let m = self.m(sid);
                    if m.snap.as_ref().is_some_and(|s| s.0 as Zxid > zxid) {
                        return Err(format!(
                            "member {sid} told to truncate to {zxid:#x}, below its snapshot"
                        ));
                    }
                    // The driver flushes before it truncates: what stays is durable.
                    m.log.retain(|r| r.0 <= zxid);
                    m.durable = m.log.len();
                    m.compacted.retain(|z, _| *z <= zxid);
                    if reload {
                        let tree = recover(&m.snap, &m.log)?;
                        if m.shared {
                            m.skip_upto = Some(tree.last_zxid());
                        }
                        m.machine.as_mut().expect("up").reset(tree);
                        self.t.resets += 1;
                    }
                }
                Effect::InstallSnapshot { zxid, data } => {
                    self.log(|| format!("member {sid} installs a snapshot at {zxid:#x}"));
                    let (tree, z) = snapshot::load(&data)?;
                    if z != zxid as i64 {
                        return Err(format!("snapshot at {z:#x} installed as {zxid:#x}"));
                    }
                    let m = self.m(sid);
                    m.snap = Some((z, data));
                    m.log.clear();
                    m.compacted.clear();
                    m.durable = 0;
                    if m.shared {
                        m.skip_upto = Some(tree.last_zxid());
                    }
                    m.machine.as_mut().expect("up").reset(tree);
                    self.t.resets += 1;
                }
                Effect::Send { .. } => return Err("a send outside release".into()),
            }
        }
        Ok(())
    }

    /// One wake-up of a member's driver: handle what waits, flush if due, else release.
    fn process(&mut self, sid: Sid) -> Res {
        let now = self.time();
        let m = &self.members[sid as usize - 1];
        if m.machine.is_none() || m.flushing.is_some() || m.paused_until > self.now {
            return Ok(());
        }
        let n = if m.inbox.is_empty() {
            0
        } else {
            self.rng.gen_range(1..=m.inbox.len())
        };
        for _ in 0..n {
            let m = self.m(sid);
            let msg = m.inbox.pop_front().expect("counted");
            let machine = m.machine.as_mut().expect("up");
            machine.handle(now, msg, &mut m.effects);
            self.perform(sid)?;
            if self.members[sid as usize - 1].machine.is_none() {
                return Ok(());
            }
        }
        let m = self.m(sid);
        if !m.inbox.is_empty() {
            // The driver takes the rest as its next batch.
            self.at(self.now, Ev::Process(sid));
        }
        let m = self.m(sid);
        let machine = m.machine.as_ref().expect("up");
        if machine.flush_due(now.mono_ms) {
            m.flushing = Some(m.log.len());
            let life = m.life;
            let latency = self.rng.gen_range(0..12);
            self.at(self.now + latency, Ev::FlushDone(sid, life));
            return Ok(());
        }
        if let Some(at) = machine.retry_at() {
            self.at(at.max(self.now + 1), Ev::Process(sid));
        }
        self.release(sid)
    }

    fn flush_done(&mut self, sid: Sid) -> Res {
        let now = self.now;
        let m = self.m(sid);
        let Some(target) = m.flushing.take() else {
            return Ok(());
        };
        let ok = !m.full_disk;
        if ok {
            m.durable = target;
        }
        let machine = m.machine.as_mut().expect("up");
        machine.flushed(now, ok, &mut m.effects);
        self.perform(sid)?;
        if let Some(at) = self.members[sid as usize - 1]
            .machine
            .as_ref()
            .and_then(|m| m.retry_at())
        {
            self.at(at.max(now + 1), Ev::Process(sid));
        }
        self.release(sid)?;
        self.at(now, Ev::Process(sid));
        Ok(())
    }

    /// What the flush committed goes to the member's shards, in order.
    fn release(&mut self, sid: Sid) -> Res {
        let m = self.m(sid);
        let Some(machine) = m.machine.as_mut() else {
            return Ok(());
        };
        let committed = machine.committed();
        let mut sends = Vec::new();
        machine.release(&mut sends);
        for e in sends {
            let Effect::Send { shard, msg } = e else {
                return Err("release returned something other than sends".into());
            };
            self.deliver(sid, shard, msg, committed)?;
        }
        Ok(())
    }

    fn client_at(&self, sid: Sid, origin: Origin) -> Option<usize> {
        self.clients.iter().position(|c| {
            c.conn
                .as_ref()
                .is_some_and(|c| c.member == sid && c.origin == origin)
        })
    }

    /// Closes every connection on a member's shard.
    fn close_shard(&mut self, sid: Sid, shard: usize) {
        for i in 0..self.clients.len() {
            if self.clients[i]
                .conn
                .as_ref()
                .is_some_and(|c| c.member == sid && c.origin.shard == shard)
            {
                self.close(i);
            }
        }
    }

    /// Client `i`'s connection closes; the shard tells the write core, as `server::serve` does
    /// for an attached connection.
    fn close(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let Some(conn) = c.conn.take() else {
            return;
        };
        if let (true, Some((session_id, _))) = (conn.attached, c.session) {
            let origin = conn.origin;
            if self.up(conn.member) {
                self.deliver_to(conn.member, ToCore::Disconnected { origin, session_id });
            }
        }
    }

    /// A replica is about to apply `txn`: it must hold exactly the history's state before it.
    fn check_apply(&mut self, sid: Sid, shard: usize, txn: &Txn) -> Res {
        let r = self.members[sid as usize - 1].replicas[shard].clone();
        let z = txn.zxid;
        let held = r.borrow().last_zxid();
        if z <= held {
            return Err(format!(
                "member {sid} shard {shard} got zxid {z:#x} after {held:#x}"
            ));
        }
        let h = txn_hash(txn);
        // The replica's state, unless it is known to be the history's state at `prev`.
        let known = self.members[sid as usize - 1].known[shard];
        let state = |prev: i64, expected: u64| match known {
            Some(k) if k == prev => expected,
            _ => state_of(&r.borrow()),
        };
        let ok = self.check_before(sid, shard, txn, h, held, state);
        let m = &mut self.members[sid as usize - 1];
        m.known[shard] = (*ok.as_ref().unwrap_or(&false)).then_some(z);
        ok.map(|_| ())
    }

    /// `check_apply`'s work; true when the replica is then at the history's state at the txn.
    fn check_before(
        &mut self,
        sid: Sid,
        shard: usize,
        txn: &Txn,
        h: u64,
        held: i64,
        state: impl Fn(i64, u64) -> u64,
    ) -> Result<bool, String> {
        let z = txn.zxid;
        if let Some(&i) = self.index.get(&z) {
            if self.chosen[i].txn != h {
                return Err(format!(
                    "member {sid} shard {shard} applies a different txn at {z:#x}"
                ));
            }
            let (prev, expected) = if i == 0 {
                (0, self.empty)
            } else {
                (self.chosen[i - 1].zxid, self.chosen[i - 1].state)
            };
            if state(prev, expected) != expected {
                return Err(format!(
                    "member {sid} shard {shard} applies {z:#x} from state at {held:#x}, not from \
                     the history's state at {prev:#x} (skipped or diverged)"
                ));
            }
            return Ok(true);
        }
        let last = self.chosen.last().map_or(0, |c| c.zxid);
        if z < last {
            return Err(format!(
                "member {sid} shard {shard} applies {z:#x}, which the history skipped"
            ));
        }
        let at_end = self.chosen.last().map_or(self.empty, |c| c.state);
        let before = state(last, at_end);
        if before != at_end && held > last {
            // The replica started from its log (a restart, a TRUNC's reload), whose records
            // past the history's end were logged and never applied by a commit: a leader that
            // commits on top of them made them part of the history. Adopt them; every other
            // replica must then follow them.
            // Those records are in this member's log, or (a SNAP) in the log of the member it
            // came from: the first lineage that yields the replica's state is adopted.
            let mut sources: Vec<usize> = (0..self.members.len()).collect();
            sources.swap(0, sid as usize - 1);
            for src in sources {
                if self.adopt(src, held, before)? {
                    break;
                }
            }
        }
        let expected = self.chosen.last().map_or(self.empty, |c| c.state);
        if before != expected {
            return Err(format!(
                "member {sid} shard {shard} applies {z:#x} from state at {held:#x}, not from the \
                 history's state at {:#x} (skipped or diverged)",
                self.chosen.last().map_or(0, |c| c.zxid)
            ));
        }
        self.choose(txn)?;
        Ok(true)
    }

    /// `txn` extends the history.
    fn choose(&mut self, txn: &Txn) -> Res {
        self.reference.apply(txn);
        self.index.insert(txn.zxid, self.chosen.len());
        self.chosen.push(Chosen {
            zxid: txn.zxid,
            txn: txn_hash(txn),
            state: state_of(&self.reference),
        });
        self.log(|| {
            format!(
                "history {:#x}: session {:#x} cxid {} {:?}",
                txn.zxid, txn.session_id, txn.cxid, txn.op
            )
        });
        self.history_rules(txn)
    }

    /// What a txn new to the history must respect.
    fn history_rules(&mut self, txn: &Txn) -> Res {
        if let TxnOp::Error(Code::MarshallingError) = txn.op {
            return Err(format!(
                "txn {:#x}: a client's request arrived malformed",
                txn.zxid
            ));
        }
        let key = (txn.session_id, txn.cxid);
        let client = txn.cxid > 0 || matches!(txn.op, TxnOp::CreateSession { .. });
        if client && !self.applied.insert(key) {
            return Err(format!(
                "session {:#x} cxid {} applied twice (again at {:#x})",
                txn.session_id, txn.cxid, txn.zxid
            ));
        }
        if txn.cxid > 0 && !matches!(txn.op, TxnOp::Error(_)) {
            let last = self.last_cxid.entry(txn.session_id).or_insert(0);
            if txn.cxid < *last {
                return Err(format!(
                    "session {:#x}: cxid {} applied at {:#x} after cxid {}",
                    txn.session_id, txn.cxid, txn.zxid, *last
                ));
            }
            *last = txn.cxid;
        }
        Ok(())
    }

    /// A shard of member `sid` gets a message.
    fn deliver(&mut self, sid: Sid, shard: usize, msg: ToShard, committed: i64) -> Res {
        let (conn, expected) = match msg {
            ToShard::Commits(batch) => {
                for c in batch.iter() {
                    let z = c.txn.zxid;
                    if z > committed {
                        return Err(format!("zxid {z:#x} sent before it was published"));
                    }
                    if self.sim_bug == Some(SimBug::SkipCommit)
                        && !self.skipped
                        && sid == 1
                        && shard == 1
                        && self.rng.gen_bool(0.05)
                    {
                        self.skipped = true;
                        continue;
                    }
                    let m = &self.members[sid as usize - 1];
                    if shard == 0 && m.skip_upto.is_some_and(|s| z <= s) {
                        // The machine's reset put a tree holding this txn in place; the
                        // connection closes with the Reset that follows.
                        continue;
                    }
                    self.check_apply(sid, shard, &c.txn)?;
                    self.members[sid as usize - 1].replicas[shard]
                        .borrow_mut()
                        .apply(&c.txn);
                    let Some(origin) = c.origin.filter(|o| o.shard == shard) else {
                        continue;
                    };
                    let Some(i) = self.client_at(sid, origin) else {
                        continue;
                    };
                    let expected = match c.txn.op {
                        TxnOp::CreateSession { password, .. } => {
                            let cl = &mut self.clients[i];
                            cl.session = Some((c.txn.session_id, password));
                            cl.conn.as_mut().expect("open").attached = true;
                            Awaited::Connect
                        }
                        _ => Awaited::Write(c.txn.cxid),
                    };
                    self.reply(i, expected, Some(z))?;
                    if let TxnOp::CloseSession = c.txn.op {
                        let cl = &mut self.clients[i];
                        cl.session = None;
                        cl.conn = None;
                    }
                    self.t.acked += 1;
                    self.acked = self.acked.max(z);
                    self.check_durable()?;
                }
                return Ok(());
            }
            ToShard::Synced { conn, .. } => (conn, Some(Awaited::Sync)),
            ToShard::Refused { conn, .. } | ToShard::SessionClosed { conn, .. } => (conn, None),
            ToShard::Attached { conn, .. } => (conn, Some(Awaited::Connect)),
            ToShard::Rejected { conn, .. } => (conn, Some(Awaited::Connect)),
            ToShard::Close { conn } => {
                if let Some(i) = self.client_at(sid, Origin { shard, conn }) {
                    self.close(i);
                }
                return Ok(());
            }
            ToShard::CloseAll => {
                self.close_shard(sid, shard);
                return Ok(());
            }
            ToShard::Reset(tree) => {
                let m = &mut self.members[sid as usize - 1];
                let tree = match tree {
                    Some(t) if !(m.shared && shard == 0) => t,
                    None if m.shared && shard == 0 => {
                        m.skip_upto = None;
                        Arc::new(m.replicas[0].borrow().clone())
                    }
                    _ => {
                        return Err(format!(
                            "member {sid} shard {shard}: a Reset of the wrong kind"
                        ))
                    }
                };
                self.close_shard(sid, shard);
                let z = tree.last_zxid();
                if let Some(&i) = self.index.get(&z) {
                    if state_of(&tree) != self.chosen[i].state {
                        return Err(format!(
                            "member {sid} shard {shard} reset to a state at {z:#x} that is not \
                             the history's"
                        ));
                    }
                }
                if z < self.acked && !self.index.contains_key(&z) && z != 0 {
                    return Err(format!(
                        "member {sid} shard {shard} reset to {z:#x}, not in the history"
                    ));
                }
                let m = &mut self.members[sid as usize - 1];
                if !(m.shared && shard == 0) {
                    *m.replicas[shard].borrow_mut() =
                        Arc::try_unwrap(tree).unwrap_or_else(|t| (*t).clone());
                }
                m.known[shard] = None;
                return Ok(());
            }
            ToShard::Snapshot { to, request, zxid } => {
                let r = self.members[sid as usize - 1].replicas[0].clone();
                let r = r.borrow();
                if r.last_zxid() as Zxid != zxid {
                    return Err(format!(
                        "member {sid}: snapshot for {to} asked at {zxid:#x}, replica at {:#x}",
                        r.last_zxid()
                    ));
                }
                let mut cursor = Cursor::new();
                let mut data = Vec::new();
                cursor.begin(&r, &mut data);
                while !cursor.step(&r, usize::MAX, &mut data) {}
                drop(r);
                self.t.snapshots += 1;
                self.m(sid).inbox.push_back(ToCore::SnapshotReady {
                    to,
                    request,
                    zxid,
                    data: data.into(),
                });
                self.at(self.now, Ev::Process(sid));
                return Ok(());
            }
        };
        let Some(i) = self.client_at(sid, Origin { shard, conn }) else {
            return Ok(());
        };
        match expected {
            Some(e) => self.reply(i, e, None)?,
            None => match self.clients[i]
                .conn
                .as_ref()
                .and_then(|c| c.awaiting.front())
            {
                Some(&Awaited::Write(cxid)) => self.reply(i, Awaited::Write(cxid), None)?,
                // Read-only, a sync is refused too (NOTREADONLY).
                Some(&Awaited::Sync) if matches!(msg, ToShard::Refused { .. }) => {
                    self.reply(i, Awaited::Sync, None)?
                }
                other => return Err(format!("refusal while waiting for {other:?}")),
            },
        }
        match msg {
            ToShard::Rejected { expired, .. } => {
                self.close(i);
                if expired {
                    self.clients[i].session = None;
                }
            }
            ToShard::Attached {
                session_id,
                password,
                ..
            } => {
                let c = &mut self.clients[i];
                c.conn.as_mut().expect("open").attached = true;
                // A local session is answered here, without a createSession txn.
                c.session = Some((session_id, password));
            }
            ToShard::SessionClosed { .. } => {
                let c = &mut self.clients[i];
                c.session = None;
                c.conn = None;
            }
            ToShard::Synced { .. } => {
                let z = self.members[sid as usize - 1].replicas[shard]
                    .borrow()
                    .last_zxid();
                let c = &mut self.clients[i];
                c.seen = c.seen.max(z);
            }
            _ => {}
        }
        Ok(())
    }

    /// Client `i` got the reply `got`: it must be the oldest it waits for.
    fn reply(&mut self, i: usize, got: Awaited, zxid: Option<i64>) -> Res {
        self.t.replies += 1;
        self.log(|| format!("client {i} gets {got:?} at {zxid:?}"));
        let now = self.now;
        let c = &mut self.clients[i];
        if let Some(z) = zxid {
            c.seen = c.seen.max(z);
        }
        let conn = c.conn.as_mut().expect("open");
        conn.progress_ms = now;
        match conn.awaiting.pop_front() {
            Some(w) if w == got => Ok(()),
            w => Err(format!(
                "connection {} on member {} got {got:?} while its oldest request is {w:?}",
                conn.origin.conn, conn.member
            )),
        }
    }

    /// The highest acknowledged zxid is durable on a quorum of voters.
    fn check_durable(&self) -> Res {
        if self.acked == 0 {
            return Ok(());
        }
        let a = self.acked;
        let voters: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.cfg.servers[&m.sid].role == PeerRole::Participant)
            .collect();
        let holding = voters
            .iter()
            .filter(|m| {
                m.snap.as_ref().is_some_and(|s| s.0 >= a)
                    || m.log[..m.durable]
                        .binary_search_by_key(&(a as Zxid), |r| r.0)
                        .is_ok()
            })
            .count();
        if holding * 2 <= voters.len() {
            let disks: Vec<String> = voters
                .iter()
                .map(|m| {
                    format!(
                        "{}: durable to {:#x}, logged to {:#x}",
                        m.sid,
                        m.log[..m.durable].last().map_or(0, |r| r.0),
                        m.log.last().map_or(0, |r| r.0)
                    )
                })
                .collect();
            return Err(format!(
                "acknowledged zxid {a:#x} is durable on {holding} of {} voters: {disks:?}",
                voters.len()
            ));
        }
        Ok(())
    }

    /// One random client action.
    fn client_step(&mut self) -> Res {
        let i = self.rng.gen_range(0..self.clients.len());
        let now = self.now;
        let Some(conn) = self.clients[i].conn.as_ref() else {
            // Connect to a member that is up: reattach to its session, or ask for a new one.
            let ups: Vec<Sid> = self
                .members
                .iter()
                .filter(|m| m.machine.is_some())
                .map(|m| m.sid)
                .collect();
            if ups.is_empty() {
                return Ok(());
            }
            let sid = ups[self.rng.gen_range(0..ups.len())];
            self.next_conn += 1;
            let origin = Origin {
                shard: self.rng.gen_range(0..SHARDS),
                conn: self.next_conn,
            };
            let c = &mut self.clients[i];
            let (session_id, passwd) = match c.session {
                Some((id, pw)) => (id, Bytes::copy_from_slice(&pw)),
                None => (0, Bytes::new()),
            };
            c.conn = Some(Conn {
                member: sid,
                origin,
                attached: false,
                awaiting: VecDeque::from([Awaited::Connect]),
                progress_ms: now,
            });
            let timeout_ms = self.rng.gen_range(1000..2000);
            let read_only = self.rng.gen_bool(0.5);
            let last_zxid_seen = c.seen;
            self.deliver_to(
                sid,
                ToCore::Connect {
                    origin,
                    session_id,
                    passwd,
                    timeout_ms,
                    last_zxid_seen,
                    read_only,
                },
            );
            return Ok(());
        };
        let (sid, origin) = (conn.member, conn.origin);
        let stuck = !conn.awaiting.is_empty() && now > conn.progress_ms + CLIENT_TIMEOUT_MS;
        let session = self.clients[i].session;
        if stuck {
            self.log(|| format!("client {i} gives up on member {sid}"));
            self.close(i);
            return Ok(());
        }
        if !conn.attached || conn.awaiting.len() > 4 {
            return Ok(());
        }
        let (session_id, _) = session.expect("attached to a session");
        let roll = self.rng.gen_range(0..100);
        if roll < 3 {
            self.close(i);
            return Ok(());
        }
        let req = match roll {
            3..=4 => Request::CloseSession,
            5..=12 => Request::Sync {
                path: "/".to_string(),
            },
            _ => random_write(&mut self.rng),
        };
        let c = &mut self.clients[i];
        c.cxid += 1;
        let cxid = c.cxid;
        let conn = c.conn.as_mut().expect("open");
        if conn.awaiting.is_empty() {
            conn.progress_ms = now;
        }
        conn.awaiting.push_back(match req {
            Request::Sync { .. } => Awaited::Sync,
            _ => Awaited::Write(cxid),
        });
        self.log(|| {
            format!(
                "client {i} session {session_id:#x} conn {} on member {sid}: cxid {cxid} {req:?}",
                origin.conn
            )
        });
        let (opcode, mut body) = encode(&req);
        if self.sim_bug == Some(SimBug::EmptyBody) {
            body = Bytes::new();
        }
        self.deliver_to(
            sid,
            ToCore::Write {
                origin,
                session_id,
                cxid,
                ids: Arc::new(vec![Id::new("ip", "127.0.0.1")]),
                req,
                opcode,
                body,
            },
        );
        Ok(())
    }

    fn deliver_to(&mut self, sid: Sid, msg: ToCore<()>) {
        self.m(sid).inbox.push_back(msg);
        self.at(self.now, Ev::Process(sid));
    }

    /// One random fault.
    fn fault(&mut self) -> Res {
        let n = self.members.len() as Sid;
        let sid = self.rng.gen_range(1..=n);
        match self.rng.gen_range(0..100) {
            0..=29 => {
                if self.up(sid) {
                    self.crash(sid);
                    let life = self.members[sid as usize - 1].life;
                    let back = self.now + self.rng.gen_range(50..2000);
                    self.at(back, Ev::Restart(sid, life));
                }
            }
            30..=49 => {
                // Cut one member off, or split the ensemble at random.
                self.t.partitions += 1;
                if self.rng.gen_bool(0.5) {
                    for m in &mut self.members {
                        m.group = 0;
                    }
                    self.m(sid).group = 1;
                } else {
                    for i in 0..self.members.len() {
                        self.members[i].group = self.rng.gen_range(0..2);
                    }
                }
                self.log(|| {
                    let g: Vec<u8> = self.members.iter().map(|m| m.group).collect();
                    format!("partition {g:?}")
                });
                self.reconcile();
            }
            50..=69 => {
                for m in &mut self.members {
                    m.group = 0;
                }
                self.log(|| "heal".to_string());
                self.reconcile();
            }
            70..=79 => {
                // A connection replaced by a new one (the old one's end is reported late).
                let other = self.rng.gen_range(1..=n);
                let key = (sid.min(other), sid.max(other));
                if let Some(old) = self.conns.get(&key).copied() {
                    self.connect(key.0, key.1);
                    for (from, to) in [key, (key.1, key.0)] {
                        self.push(from, to, Wire::Down(old));
                    }
                }
            }
            80..=89 => {
                let until = self.now + self.rng.gen_range(100..1500);
                self.log(|| format!("member {sid} pauses until {until}"));
                self.m(sid).paused_until = until;
                self.at(until, Ev::Process(sid));
            }
            _ => {
                // A full disk (unless `SIM_FULL_DISK=0`): the member's log stalls; a stalled
                // leader refuses what its learners forward.
                if self.full_disks {
                    let full = self.rng.gen_bool(0.3);
                    self.m(sid).full_disk = full;
                }
            }
        }
        Ok(())
    }

    fn event(&mut self, ev: Ev) -> Res {
        match ev {
            Ev::Arrive { from, to, id } => {
                let q = self.channels.entry((from, to)).or_default();
                if q.front().is_none_or(|e| e.0 != id) {
                    return Ok(()); // lost with its connection
                }
                let (_, _, w) = q.pop_front().expect("checked");
                if !self.up(to) {
                    return Ok(());
                }
                if self.trace {
                    match &w {
                        Wire::Msg(_, Msg::Ping) => {}
                        Wire::Msg(g, Msg::Proposal { zxid, .. }) => {
                            self.log(|| format!("{from}->{to} gen {g}: proposal {zxid:#x}"))
                        }
                        Wire::Msg(g, Msg::Snap { zxid, .. }) => {
                            self.log(|| format!("{from}->{to} gen {g}: snap {zxid:#x}"))
                        }
                        Wire::Msg(g, Msg::Inform { zxid, .. }) => {
                            self.log(|| format!("{from}->{to} gen {g}: inform {zxid:#x}"))
                        }
                        Wire::Msg(g, Msg::Request { .. }) => {
                            self.log(|| format!("{from}->{to} gen {g}: request"))
                        }
                        Wire::Msg(g, m) => self.log(|| format!("{from}->{to} gen {g}: {m:?}")),
                        Wire::Up(g) => self.log(|| format!("{from}->{to}: up {g}")),
                        Wire::Down(g) => self.log(|| format!("{from}->{to}: down {g}")),
                    }
                }
                let ev = match w {
                    Wire::Up(gen) => LinkEvent::Up { sid: from, gen },
                    Wire::Down(gen) => LinkEvent::Down { sid: from, gen },
                    Wire::Msg(gen, msg) => LinkEvent::Msg {
                        sid: from,
                        gen,
                        msg,
                    },
                };
                self.deliver_to(to, ToCore::Link(ev));
            }
            Ev::Process(sid) => self.process(sid)?,
            Ev::FlushDone(sid, life) => {
                if self.members[sid as usize - 1].life == life {
                    self.flush_done(sid)?;
                }
            }
            Ev::Tick(sid, life) => {
                if self.members[sid as usize - 1].life != life {
                    return Ok(());
                }
                self.m(sid).inbox.push_back(ToCore::Tick);
                if self.now.is_multiple_of(100) {
                    // The shards report their sessions' activity.
                    let ids: Vec<i64> = self
                        .clients
                        .iter()
                        .filter(|c| {
                            c.conn
                                .as_ref()
                                .is_some_and(|c| c.member == sid && c.attached)
                        })
                        .filter_map(|c| c.session.map(|s| s.0))
                        .collect();
                    if !ids.is_empty() {
                        self.m(sid).inbox.push_back(ToCore::Touch(ids));
                    }
                }
                self.at(self.now, Ev::Process(sid));
                self.at(self.now + TICK_MS, Ev::Tick(sid, life));
            }
            Ev::Restart(sid, life) => {
                if self.members[sid as usize - 1].life == life && !self.up(sid) {
                    self.start(sid)?;
                }
            }
            Ev::Client => {
                if self.now < self.faults_until {
                    self.client_step()?;
                    let next = self.now + self.rng.gen_range(1..10);
                    self.at(next, Ev::Client);
                }
            }
            Ev::Fault => {
                if self.now < self.faults_until {
                    self.fault()?;
                    let next = self.now + self.rng.gen_range(50..600);
                    self.at(next, Ev::Fault);
                }
            }
        }
        Ok(())
    }

    /// Runs events until `until`.
    fn run_until(&mut self, until: u64) -> Res {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((t, _), ev) = entry.remove_entry();
            self.now = t;
            self.event(ev)?;
        }
        self.now = until;
        Ok(())
    }

    /// Whether the ensemble has settled: everyone up and serving, one leader, every machine
    /// quiescent, every tree and replica the history's last state.
    fn settled(&self) -> Result<bool, String> {
        // Nothing chosen yet (no write committed during the faults): the empty history.
        let empty = Chosen {
            zxid: 0,
            txn: 0,
            state: self.empty,
        };
        let last = self.chosen.last().unwrap_or(&empty);
        let leaders = self
            .members
            .iter()
            .filter(|m| m.role == Role::Leading)
            .count();
        if leaders != 1 {
            return Ok(false);
        }
        // Every request on a connection still open is answered.
        if self
            .clients
            .iter()
            .any(|c| c.conn.as_ref().is_some_and(|c| !c.awaiting.is_empty()))
        {
            return Ok(false);
        }
        for m in &self.members {
            let Some(machine) = m.machine.as_ref() else {
                return Ok(false);
            };
            if !m.serving || !machine.quiescent() || !m.inbox.is_empty() {
                return Ok(false);
            }
            if machine.committed() != last.zxid || state_of(&machine.tree()) != last.state {
                return Ok(false);
            }
            if m.replicas
                .iter()
                .any(|r| state_of(&r.borrow()) != last.state)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The last txns before the faults stopped may reach every replica only through restarts
    /// and snapshots: logged, then committed by the new leader with no commit applied on top,
    /// which is when `check_apply` adopts such records. The history adopts them from the
    /// leader's log if they yield exactly its replica's state (the others must then match).
    fn adopt_tail(&mut self) -> Res {
        let last = self.chosen.last().map_or(0, |c| c.zxid);
        // An established leader: one still in discovery reports its recovered log, chosen
        // or not, as committed.
        let Some(m) = self
            .members
            .iter()
            .find(|m| m.role == Role::Leading && m.serving)
        else {
            return Ok(());
        };
        let Some(committed) = m.machine.as_ref().map(|x| x.committed()) else {
            return Ok(());
        };
        if committed <= last || m.replicas[0].borrow().last_zxid() != committed {
            return Ok(());
        }
        let target = state_of(&m.replicas[0].borrow());
        // From its own log or, if it was synced by SNAP, another member's.
        let mut sources: Vec<usize> = (0..self.members.len()).collect();
        sources.swap(0, m.sid as usize - 1);
        for src in sources {
            if self.adopt(src, committed, target)? {
                break;
            }
        }
        Ok(())
    }

    /// Extends the history with member `src`'s logged records after its end, up to `upto`, if
    /// they end exactly there and yield the state `target`; whether they did.
    fn adopt(&mut self, src: usize, upto: i64, target: u64) -> Result<bool, String> {
        let last = self.chosen.last().map_or(0, |c| c.zxid);
        let m = &self.members[src];
        let records: Vec<(Zxid, Bytes)> = m
            .compacted
            .iter()
            .map(|(z, b)| (*z, b.clone()))
            .chain(m.log.iter().cloned())
            .filter(|r| r.0 as i64 > last && r.0 as i64 <= upto)
            .collect();
        if records.last().map(|r| r.0 as i64) != Some(upto) {
            return Ok(false);
        }
        let mut tree = self.reference.clone();
        let mut txns = Vec::new();
        for (zxid, body) in records {
            let t = decode_txn(zxid as i64, body)
                .map_err(|e| format!("logged txn {zxid:#x} does not decode: {e:?}"))?;
            tree.apply(&t);
            txns.push(t);
        }
        if state_of(&tree) != target {
            return Ok(false);
        }
        for t in txns {
            self.choose(&t)?;
        }
        Ok(true)
    }

    fn run(&mut self) -> Res {
        for sid in 1..=self.members.len() as Sid {
            self.start(sid)?;
        }
        self.at(1, Ev::Client);
        let first = self.rng.gen_range(100..800);
        self.at(first, Ev::Fault);
        self.run_until(self.faults_until)?;
        // Faults stop: heal, restart, free the disks; the ensemble must settle.
        self.log(|| "faults stop".to_string());
        for m in &mut self.members {
            m.group = 0;
            m.full_disk = false;
            m.paused_until = 0;
        }
        self.reconcile();
        for sid in 1..=self.members.len() as Sid {
            if !self.up(sid) {
                self.start(sid)?;
            }
        }
        let deadline = self.now + 30_000;
        let mut stable = 0;
        while self.now < deadline {
            let next = self.now + 100;
            self.run_until(next)?;
            self.adopt_tail()?;
            if self.settled()? {
                stable += 1;
                if stable >= 3 {
                    break;
                }
            } else {
                stable = 0;
            }
        }
        if stable < 3 {
            let states: Vec<String> = self
                .members
                .iter()
                .map(|m| {
                    let last = self.chosen.last().map_or(self.empty, |c| c.state);
                    format!(
                        "{}: {:?} serving {} quiescent {:?} tree ok {:?} replicas ok {} \
                         committed {:#x} replicas {:?}",
                        m.sid,
                        m.role,
                        m.serving,
                        m.machine.as_ref().map(|x| x.quiescent()),
                        m.machine.as_ref().map(|x| state_of(&x.tree()) == last),
                        m.replicas.iter().all(|r| state_of(&r.borrow()) == last),
                        m.machine.as_ref().map_or(-1, |x| x.committed()),
                        m.replicas
                            .iter()
                            .map(|r| format!("{:#x}", r.borrow().last_zxid()))
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            let waiting: Vec<String> = self
                .clients
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let conn = c.conn.as_ref().filter(|c| !c.awaiting.is_empty())?;
                    Some(format!(
                        "client {i} on member {} waits for {:?}",
                        conn.member, conn.awaiting
                    ))
                })
                .collect();
            return Err(format!(
                "the ensemble did not settle after the faults stopped (history ends at {:#x}): \
                 {states:?} {waiting:?}",
                self.chosen.last().map_or(0, |c| c.zxid)
            ));
        }
        self.t.zxid = self.chosen.last().map_or(0, |c| c.zxid);
        Ok(())
    }
}

/// Runs `seeds`; the first failure, with its seed (a panic in the machine counts too).
fn explore(
    shape: Shape,
    seeds: impl Iterator<Item = u64>,
    bug: Option<Bug>,
    sim_bug: Option<SimBug>,
) -> Result<Totals, String> {
    let mut t = Totals::default();
    for seed in seeds {
        let run = std::panic::catch_unwind(|| {
            let mut sim = Sim::new(seed, shape, bug, sim_bug);
            let r = sim.run();
            (r, sim.t)
        });
        let (r, s) = match run {
            Ok(x) => x,
            Err(p) => {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(format!("SIM_SEED={seed} ({shape:?}): panicked: {what}"));
            }
        };
        r.map_err(|e| format!("SIM_SEED={seed} ({shape:?}): {e}"))?;
        t.crashes += s.crashes;
        t.partitions += s.partitions;
        t.acked += s.acked;
        t.replies += s.replies;
        t.resets += s.resets;
        t.snapshots += s.snapshots;
        t.elections += s.elections;
        t.zxid = t.zxid.max(s.zxid);
    }
    Ok(t)
}

fn seeds(default: u64) -> std::ops::Range<u64> {
    match env("SIM_SEED") {
        Some(s) => s..s + 1,
        None => {
            // `SIM_FROM=n` starts the seeds there (a soak that goes on past an earlier one).
            let from = env("SIM_FROM").unwrap_or(0);
            from..from + env("SIM_ITERS").unwrap_or(default)
        }
    }
}

fn keeps_promises(shape: Shape, default: u64) {
    let started = std::time::Instant::now();
    let range = seeds(default);
    let n = range.end - range.start;
    let t = explore(shape, range, None, None).unwrap_or_else(|e| panic!("{e}"));
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{shape:?}: {n} seeds in {secs:.1} s ({:.0} seeds/s): {t:?}",
        n as f64 / secs
    );
    if env("SIM_SEED").is_none() {
        // The runs did what they are for.
        assert!(t.crashes > n, "{t:?}");
        assert!(t.acked > 20 * n, "{t:?}");
        assert!(t.resets > 0 && t.snapshots > 0, "{t:?}");
    }
}

#[test]
fn three_members_keep_their_promises() {
    keeps_promises(
        Shape {
            voters: 3,
            observers: 0,
        },
        1500,
    );
}

#[test]
fn five_members_keep_their_promises() {
    keeps_promises(
        Shape {
            voters: 5,
            observers: 0,
        },
        400,
    );
}

#[test]
fn three_members_and_an_observer_keep_their_promises() {
    keeps_promises(
        Shape {
            voters: 3,
            observers: 1,
        },
        600,
    );
}

const THREE: Shape = Shape {
    voters: 3,
    observers: 0,
};

fn caught(bug: Option<Bug>, sim_bug: Option<SimBug>) -> String {
    let e = explore(THREE, 0..200, bug, sim_bug).expect_err("planted bug not caught");
    eprintln!("caught: {e}");
    e
}

#[test]
fn losing_durable_records_is_caught() {
    let e = caught(None, Some(SimBug::LoseDurable));
    // Seen as an acknowledged write no longer on a quorum, a replica that applies from a
    // diverged state, or a history that ends past what every member holds at the end.
    assert!(
        e.contains("durable on")
            || e.contains("skipped or diverged")
            || e.contains("did not settle"),
        "{e}"
    );
}

#[test]
fn a_skipped_commit_is_caught() {
    let e = caught(None, Some(SimBug::SkipCommit));
    assert!(e.contains("skipped or diverged"), "{e}");
}

#[test]
fn an_empty_forwarded_body_is_caught() {
    let e = caught(None, Some(SimBug::EmptyBody));
    assert!(e.contains("malformed"), "{e}");
}

#[test]
fn acknowledging_before_a_quorum_is_caught() {
    let e = caught(Some(Bug::AckBeforeFlush), None);
    assert!(e.contains("durable on"), "{e}");
}

/// Seeds that once failed, kept because they are cheap (each names what it found):
/// - 3646, 3778, 4071 (found without full disks; `SIM_FULL_DISK=0` replays them as found): a
///   leader's client with a sync queued behind its writes, one of which the
///   next leader's TRUNC dropped, got the replies to its later writes without the sync's (the
///   truncation dropped the sync's answer but not those replies; its connection now closes
///   unanswered).
/// - 31, 50, 189, 3021 (full disks): a stalled leader's refusals of forwarded writes, answered
///   out of order with the connection's syncs, with its other writes (an observer learns of
///   writes only when they commit), or closing a local session's connection.
/// - 2767 (full disks): a leader took its new epoch with its history only in memory, crashed,
///   came back with the epoch and a short log, won on the epoch and truncated committed writes.
#[test]
fn seeds_that_once_failed() {
    for (shape, seed) in [
        ((3, 0), 3646),
        ((3, 1), 3778),
        ((5, 0), 4071),
        ((3, 0), 31),
        ((3, 1), 50),
        ((3, 1), 189),
        ((5, 0), 3021),
        ((3, 0), 2767),
        // A local session's EPHEMERALONLOCALSESSION held behind its sync, then the session
        // expiring: the expiry's close went ahead of it and took the later write along.
        ((3, 1), 154),
    ] {
        let shape = Shape {
            voters: shape.0,
            observers: shape.1,
        };
        explore(shape, seed..seed + 1, None, None).unwrap_or_else(|e| panic!("{e}"));
    }
}
