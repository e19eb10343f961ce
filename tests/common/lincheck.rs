//! A linearizability checker for znode histories recorded by concurrent test clients.
//!
//! Model: every znode path is an independent register whose state is "no node" or
//! `(data, version)`, with ZooKeeper's rules (a new node has version 0, each setData adds one,
//! delete and re-create starts again at 0). Linearizability is compositional (Herlihy & Wing's
//! locality, Porcupine's "P-compositionality"), so the history is split per path and each
//! path is checked on its own.
//!
//! Search: Wing & Gong's depth-first search over the list of call and return entries, with
//! Lowe's memoization as Porcupine does it: a cache of (set of linearized ops, state) pairs
//! already explored, keyed by an incremental (Zobrist) hash of the set. An op whose outcome is
//! [`Outcome::Unknown`] (lost connection, timeout) has its return at +infinity and accepts any
//! result, so it may take effect anywhere after its invocation, or never (equivalently: last).
//!
//! Use: clone one [`History`] into every client task; `let id = h.invoke(client, path, op)`
//! just before sending, `h.ret(id, outcome)` on the reply; ops never returned count as
//! Unknown. Then `check(&h.operations(), budget)`. See docs/design/lincheck.md.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An operation on one znode, as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// create(path, data), persistent, not sequential.
    Create(Vec<u8>),
    /// getData(path).
    Read,
    /// setData(path, data, -1).
    Set(Vec<u8>),
    /// setData(path, data, version).
    Cas { version: i32, data: Vec<u8> },
    /// delete(path, version); version -1 matches any.
    Delete { version: i32 },
}

/// What the client got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Create or Delete succeeded.
    Ok,
    /// Set or Cas succeeded; the node's new version (its Stat.version).
    Version(i32),
    /// Read found the node: its data and version.
    Data(Vec<u8>, i32),
    NoNode,
    NodeExists,
    BadVersion,
    /// No answer (connection loss, timeout, session expiry...): the op may or may not have
    /// taken effect, at any time after its invocation.
    Unknown,
}

/// One recorded operation. Times are nanoseconds from the history's origin (any monotonic
/// scale works for hand-built histories); only their order matters to the check.
#[derive(Clone, Debug)]
pub struct Operation {
    pub client: u64,
    pub key: String,
    pub op: Op,
    pub outcome: Outcome,
    pub invoke: u64,
    /// None: never returned (treated as Unknown). Ignored when the outcome is Unknown.
    pub ret: Option<u64>,
}

/// Handle from [`History::invoke`], to pass to [`History::ret`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpId(usize);

/// A thread-safe recorder shared (by cloning) between client tasks.
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Recorder>>,
}

struct Recorder {
    origin: Instant,
    last: u64,
    ops: Vec<Operation>,
}

impl Recorder {
    /// Strictly increasing, so an invocation recorded after a return is ordered after it even
    /// if the clock did not move.
    fn now(&mut self) -> u64 {
        let t = (self.origin.elapsed().as_nanos() as u64).max(self.last + 1);
        self.last = t;
        t
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        History {
            inner: Arc::new(Mutex::new(Recorder {
                origin: Instant::now(),
                last: 0,
                ops: Vec::new(),
            })),
        }
    }

    /// Records an invocation; call it just before the request is sent.
    pub fn invoke(&self, client: u64, key: impl Into<String>, op: Op) -> OpId {
        let mut r = self.inner.lock().unwrap();
        let invoke = r.now();
        r.ops.push(Operation {
            client,
            key: key.into(),
            op,
            outcome: Outcome::Unknown,
            invoke,
            ret: None,
        });
        OpId(r.ops.len() - 1)
    }

    /// Records the outcome; call it as soon as the reply (or the failure) is seen.
    pub fn ret(&self, id: OpId, outcome: Outcome) {
        let mut r = self.inner.lock().unwrap();
        let t = r.now();
        let o = &mut r.ops[id.0];
        assert!(o.ret.is_none(), "op {id:?} returned twice");
        o.ret = Some(t);
        o.outcome = outcome;
    }

    /// A copy of everything recorded so far.
    pub fn operations(&self) -> Vec<Operation> {
        self.inner.lock().unwrap().ops.clone()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn check(&self, budget: Duration) -> Verdict {
        check(&self.operations(), budget)
    }
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// No linearization exists for `key`; `explanation` shows where the search got stuck.
    Illegal {
        key: String,
        explanation: String,
    },
    /// The budget ran out before these keys were decided (no key was found illegal).
    Unknown {
        undecided: Vec<String>,
    },
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        *self == Verdict::Ok
    }

    pub fn is_illegal(&self) -> bool {
        matches!(self, Verdict::Illegal { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Ok => write!(f, "linearizable"),
            Verdict::Illegal { key, explanation } => {
                write!(f, "NOT linearizable at key {key}:\n{explanation}")
            }
            Verdict::Unknown { undecided } => {
                write!(f, "undecided (budget exhausted) for keys {undecided:?}")
            }
        }
    }
}

/// Checks the whole history, key by key, within `budget` of wall time in total.
pub fn check(ops: &[Operation], budget: Duration) -> Verdict {
    let deadline = Instant::now() + budget;
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for o in ops {
        // A read without an answer constrains nothing.
        let unknown = o.outcome == Outcome::Unknown || o.ret.is_none();
        if unknown && o.op == Op::Read {
            continue;
        }
        by_key.entry(&o.key).or_default().push(o);
    }
    let mut undecided = Vec::new();
    for (key, ops) in by_key {
        match check_key(&ops, deadline) {
            KeyResult::Ok => {}
            KeyResult::GaveUp => undecided.push(key.to_string()),
            KeyResult::Illegal(explanation) => {
                return Verdict::Illegal {
                    key: key.to_string(),
                    explanation,
                }
            }
        }
    }
    if undecided.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Unknown { undecided }
    }
}

// ---- the model, on interned data (each distinct byte string of a key is a small integer) ----

type State = Option<(u32, i32)>;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum IOp {
    Create(u32),
    Read,
    Cas(i32, u32),
    Delete(i32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IOut {
    Ok,
    Version(i32),
    Data(u32, i32),
    NoNode,
    NodeExists,
    BadVersion,
    Unknown,
}

/// ZooKeeper's semantics: the outcome the op gets in `s`, and the state after it.
fn apply(s: State, op: IOp) -> (IOut, State) {
    match (op, s) {
        (IOp::Create(d), None) => (IOut::Ok, Some((d, 0))),
        (IOp::Create(_), Some(_)) => (IOut::NodeExists, s),
        (IOp::Read, None) => (IOut::NoNode, s),
        (IOp::Read, Some((d, v))) => (IOut::Data(d, v), s),
        (IOp::Cas(_, _) | IOp::Delete(_), None) => (IOut::NoNode, s),
        (IOp::Cas(want, d), Some((_, v))) if want == -1 || want == v => {
            let nv = v.wrapping_add(1);
            (IOut::Version(nv), Some((d, nv)))
        }
        (IOp::Delete(want), Some((_, v))) if want == -1 || want == v => (IOut::Ok, None),
        (IOp::Cas(..) | IOp::Delete(_), Some(_)) => (IOut::BadVersion, s),
    }
}

fn state_hash(s: State) -> u64 {
    match s {
        None => 0x9e37_79b9_7f4a_7c15,
        Some((d, v)) => mix(((d as u64) << 32) | (v as u32 as u64)),
    }
}

/// splitmix64's finalizer: a cheap, well-spread hash of a u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A visited configuration: the set of linearized ops as two independent 64-bit Zobrist
/// hashes (a false match needs a 128-bit collision: about n^2 / 2^129 for n entries), and
/// the state, kept exactly.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Seen {
    a: u64,
    b: u64,
    state: State,
}

impl std::hash::Hash for Seen {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.a ^ state_hash(self.state));
    }
}

/// `Seen` hashes itself already.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// For each (answered-op set, state): the sets of optional ops placed with it, minimal ones.
type Cache = HashMap<Seen, Vec<u128>, BuildHasherDefault<IdHasher>>;

/// Most optional ops a key may have for the dominance check; past it they go into the hash.
const OPTIONAL_BITS: usize = 128;

// ---- the search ----

enum KeyResult {
    Ok,
    Illegal(String),
    /// Out of time or of cache memory.
    GaveUp,
}

const NIL: usize = usize::MAX;

/// The data id standing for any data no read ever returned (see `check_key`).
const UNREAD: u32 = u32::MAX;

/// Bound on one key's memo cache; past it the key is left undecided rather than let a
/// hopeless search eat the machine's memory.
const CACHE_BYTES_MAX: usize = 256 << 20;

/// A node of the doubly linked entry list; index 0 is the head sentinel.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    /// For a call entry, the index of its return entry; NIL for a return entry.
    ret: usize,
    prev: usize,
    next: usize,
}

/// Where the search went deepest before it had to back up: the basis of the explanation.
struct Stuck {
    depth: usize,
    state: State,
    /// The op whose return was reached before it could be linearized.
    blocked: usize,
    /// The last linearized ops, oldest first.
    tail: Vec<usize>,
    /// Ops invoked but not linearized at that point (none fit).
    pending: Vec<usize>,
    /// The op that wrote the state's data, if the data is `UNREAD` (its bytes are there).
    writer: Option<usize>,
}

fn check_key(ops: &[&Operation], deadline: Instant) -> KeyResult {
    let n = ops.len();
    let mut iops = Vec::with_capacity(n);
    let mut iouts = Vec::with_capacity(n);
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut id = |d: &[u8]| -> u32 {
        if let Some(&i) = ids.get(d) {
            return i;
        }
        let i = ids.len() as u32;
        ids.insert(d.to_vec(), i);
        names.push(d.to_vec());
        i
    };
    for o in ops {
        iops.push(match &o.op {
            Op::Create(d) => IOp::Create(id(d)),
            Op::Read => IOp::Read,
            Op::Set(d) => IOp::Cas(-1, id(d)),
            Op::Cas { version, data } => IOp::Cas(*version, id(data)),
            Op::Delete { version } => IOp::Delete(*version),
        });
        let unknown = o.ret.is_none();
        iouts.push(match &o.outcome {
            _ if unknown => IOut::Unknown,
            Outcome::Ok => IOut::Ok,
            Outcome::Version(v) => IOut::Version(*v),
            Outcome::Data(d, v) => IOut::Data(id(d), *v),
            Outcome::NoNode => IOut::NoNode,
            Outcome::NodeExists => IOut::NodeExists,
            Outcome::BadVersion => IOut::BadVersion,
            Outcome::Unknown => IOut::Unknown,
        });
    }

    // Return times, +infinity for an unknown outcome.
    let mut ret: Vec<u64> = ops
        .iter()
        .zip(&iouts)
        .map(|(o, out)| match (out, o.ret) {
            (IOut::Unknown, _) | (_, None) => u64::MAX,
            (_, Some(t)) => {
                assert!(t >= o.invoke, "op returns before it is invoked: {o:?}");
                t
            }
        })
        .collect();

    // When one op alone writes some data and a read returned that data, the op took effect
    // before that read returned: an unknown outcome is then not optional, and its return
    // can be brought in to the read's. (A read that returned before the write was even
    // invoked stays impossible with the return clamped to the invocation.)
    let mut writers: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, o) in iops.iter().enumerate() {
        if let IOp::Create(d) | IOp::Cas(_, d) = *o {
            writers.entry(d).or_default().push(i);
        }
    }
    let mut first_read: HashMap<u32, u64> = HashMap::new();
    for (i, o) in iouts.iter().enumerate() {
        if let IOut::Data(d, _) = *o {
            let t = first_read.entry(d).or_insert(u64::MAX);
            *t = (*t).min(ret[i]);
        }
    }
    let mut optional: Vec<bool> = iouts.iter().map(|&o| o == IOut::Unknown).collect();
    for (d, w) in &writers {
        if let ([i], Some(&t)) = (w.as_slice(), first_read.get(d)) {
            if optional[*i] {
                optional[*i] = false;
                ret[*i] = t.max(ops[*i].invoke);
            }
        }
    }

    // Data no read returned can only make reads fail, whichever it is: give it all one id,
    // so that writes of such data are interchangeable.
    let unread = |d: u32| {
        if first_read.contains_key(&d) {
            d
        } else {
            UNREAD
        }
    };
    for o in &mut iops {
        *o = match *o {
            IOp::Create(d) => IOp::Create(unread(d)),
            IOp::Cas(v, d) => IOp::Cas(v, unread(d)),
            other => other,
        };
    }

    // Unknown-outcome ops with the same effect differ only in when they were invoked, so the
    // search takes each class's ops in invocation order: an op waits for its class's
    // previous one. This turns k such ops from 2^k subsets into k+1 prefixes.
    let mut order: Vec<usize> = (0..n).filter(|&i| optional[i]).collect();
    order.sort_by_key(|&i| (ops[i].invoke, i));
    let mut class_prev = vec![NIL; n];
    let mut class_last: HashMap<IOp, usize> = HashMap::new();
    for i in order {
        if let Some(p) = class_last.insert(iops[i], i) {
            class_prev[i] = p;
        }
    }
    let mut required_left = optional.iter().filter(|&&o| !o).count();

    // Entries in time order; at equal times calls go first (overlap is the lenient reading).
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.invoke, 0, i));
        events.push((ret[i], 1, i));
    }
    events.sort_unstable();
    let mut list = Vec::with_capacity(2 * n + 1);
    list.push(Entry {
        op: NIL,
        ret: NIL,
        prev: NIL,
        next: NIL,
    });
    let mut ret_entry = vec![NIL; n];
    for (k, &(_, kind, i)) in events.iter().enumerate() {
        let idx = k + 1;
        if kind == 1 {
            ret_entry[i] = idx;
        }
        list.push(Entry {
            op: i,
            ret: NIL,
            prev: idx - 1,
            next: if k + 1 < events.len() { idx + 1 } else { NIL },
        });
    }
    list[0].next = if events.is_empty() { NIL } else { 1 };
    for (k, &(_, kind, i)) in events.iter().enumerate() {
        if kind == 0 {
            list[k + 1].ret = ret_entry[i];
        }
    }

    let zobrist: Vec<(u64, u64)> = (0..n as u64)
        .map(|i| {
            (
                mix(i ^ 0x5851_f42d_4c95_7f2d),
                mix(!i ^ 0x1405_7b7e_f767_814f),
            )
        })
        .collect();
    let mut linearized = vec![0u64; n.div_ceil(64)].into_boxed_slice();
    let mut zob = (0u64, 0u64);

    // Dominance: with the same answered ops placed and the same state, having placed fewer
    // optional ops leaves strictly more choices (optional ops may always go last). So a
    // configuration is pruned if one with a subset of its optional ops was seen, and the
    // search tries optional ops only after the required ones at each step.
    let optional_count = optional.iter().filter(|&&o| o).count();
    let mut opt_bit = vec![0u128; n];
    let dominance = optional_count <= OPTIONAL_BITS;
    if dominance {
        let mut k = 0;
        for i in 0..n {
            if optional[i] {
                opt_bit[i] = 1 << k;
                k += 1;
            }
        }
    }
    let mut placed_optional = 0u128;
    let mut pass_optional = false;
    let mut cache = Cache::default();
    let mut calls: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut stuck: Option<Stuck> = None;
    let mut steps = 0u64;
    let mut entry = list[0].next;

    fn lift(list: &mut [Entry], e: usize) {
        let (p, nx) = (list[e].prev, list[e].next);
        list[p].next = nx;
        if nx != NIL {
            list[nx].prev = p;
        }
        let r = list[e].ret;
        let (p, nx) = (list[r].prev, list[r].next);
        list[p].next = nx;
        if nx != NIL {
            list[nx].prev = p;
        }
    }
    fn unlift(list: &mut [Entry], e: usize) {
        let r = list[e].ret;
        let (p, nx) = (list[r].prev, list[r].next);
        list[p].next = r;
        if nx != NIL {
            list[nx].prev = r;
        }
        let (p, nx) = (list[e].prev, list[e].next);
        list[p].next = e;
        if nx != NIL {
            list[nx].prev = e;
        }
    }

    let is_linearized = |set: &[u64], i: usize| set[i / 64] & (1 << (i % 64)) != 0;
    // Slot, control byte and one set, at hashbrown's worst load after a resize.
    let entry_bytes = 2 * (std::mem::size_of::<(Seen, Vec<u128>)>() + 1) + 16;
    let mut cache_bytes = 0usize;

    // Optional (unknown-outcome) ops left over go last, where any result is fine.
    loop {
        if required_left == 0 {
            return KeyResult::Ok;
        }
        steps += 1;
        if steps % 4096 == 1 && Instant::now() > deadline {
            return KeyResult::GaveUp;
        }
        let e = list[entry];
        if e.ret != NIL {
            let i = e.op;
            let optional = optional[i];
            let out_of_turn = dominance && optional != pass_optional;
            if out_of_turn
                || optional && class_prev[i] != NIL && !is_linearized(&linearized, class_prev[i])
            {
                entry = e.next;
                continue;
            }
            let (out, next) = apply(state, iops[i]);
            // An optional op that changes nothing now may as well go last.
            let useful = match (optional, iouts[i]) {
                (true, _) => next != state,
                (false, IOut::Unknown) => true,
                (false, want) => want == out,
            };
            if useful {
                let in_hash = !(dominance && optional);
                let nz = if in_hash {
                    (zob.0 ^ zobrist[i].0, zob.1 ^ zobrist[i].1)
                } else {
                    zob
                };
                let placed = placed_optional | opt_bit[i];
                let seen = Seen {
                    a: nz.0,
                    b: nz.1,
                    state: next,
                };
                let sets = cache.entry(seen).or_default();
                if !sets.iter().any(|&x| x & !placed == 0) {
                    sets.retain(|&x| placed & !x != 0);
                    sets.push(placed);
                    cache_bytes += entry_bytes;
                    if cache_bytes > CACHE_BYTES_MAX {
                        return KeyResult::GaveUp;
                    }
                    linearized[i / 64] |= 1 << (i % 64);
                    calls.push((entry, state));
                    state = next;
                    zob = nz;
                    placed_optional = placed;
                    required_left -= usize::from(!optional);
                    lift(&mut list, entry);
                    entry = list[0].next;
                    pass_optional = false;
                    continue;
                }
            }
            entry = e.next;
        } else if dominance && !pass_optional {
            // The required candidates are exhausted; now the optional ones.
            pass_optional = true;
            entry = list[0].next;
        } else {
            // A return reached: its op was not linearized in time; undo the last choice.
            if stuck.as_ref().is_none_or(|s| calls.len() > s.depth) {
                stuck = Some(Stuck {
                    depth: calls.len(),
                    state,
                    blocked: e.op,
                    tail: calls
                        .iter()
                        .rev()
                        .take(8)
                        .rev()
                        .map(|&(c, _)| list[c].op)
                        .collect(),
                    pending: pending_before(&list, entry),
                    writer: match state {
                        Some((UNREAD, _)) => {
                            // The newest placed op that changed the state to it.
                            let mut after = state;
                            calls.iter().rev().find_map(|&(c, before)| {
                                let i = list[c].op;
                                let wrote = before != after
                                    && matches!(iops[i], IOp::Create(_) | IOp::Cas(..));
                                after = before;
                                wrote.then_some(i)
                            })
                        }
                        _ => None,
                    },
                });
            }
            let Some((c, s)) = calls.pop() else {
                return KeyResult::Illegal(explain(ops, &names, stuck.as_ref().unwrap()));
            };
            let i = list[c].op;
            state = s;
            if !(dominance && optional[i]) {
                zob = (zob.0 ^ zobrist[i].0, zob.1 ^ zobrist[i].1);
            }
            placed_optional &= !opt_bit[i];
            pass_optional = dominance && optional[i];
            linearized[i / 64] &= !(1 << (i % 64));
            required_left += usize::from(!optional[i]);
            unlift(&mut list, c);
            entry = list[c].next;
        }
    }
}

/// Ops whose call precedes the return entry `upto` in the list (at most 16).
fn pending_before(list: &[Entry], upto: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut e = list[0].next;
    while e != NIL && e != upto && out.len() < 16 {
        if list[e].ret != NIL {
            out.push(list[e].op);
        }
        e = list[e].next;
    }
    out
}

fn explain(ops: &[&Operation], names: &[Vec<u8>], s: &Stuck) -> String {
    let mut out = String::new();
    let state = match s.state {
        None => "no node".to_string(),
        Some((UNREAD, v)) => match s.writer.map(|w| &ops[w].op) {
            Some(Op::Create(d) | Op::Set(d) | Op::Cas { data: d, .. }) => {
                format!("data {} version {v}", bytes(d))
            }
            _ => format!("data no read returned, version {v}"),
        },
        Some((d, v)) => format!("data {} version {v}", bytes(&names[d as usize])),
    };
    let _ = writeln!(
        out,
        "  longest linearizable prefix: {} of {} ops; state then: {state}",
        s.depth,
        ops.len()
    );
    let _ = writeln!(out, "  last linearized ops, oldest first:");
    for &i in &s.tail {
        let _ = writeln!(out, "    {}", show(ops[i]));
    }
    let _ = writeln!(out, "  could not be linearized before it returned:");
    let _ = writeln!(out, "    {}", show(ops[s.blocked]));
    let others: Vec<_> = s.pending.iter().filter(|&&i| i != s.blocked).collect();
    if !others.is_empty() {
        let _ = writeln!(out, "  other ops invoked by then, not linearized:");
        for &&i in &others {
            let _ = writeln!(out, "    {}", show(ops[i]));
        }
    }
    out
}

fn show(o: &Operation) -> String {
    let ms = |t: u64| format!("{:.6}ms", t as f64 / 1e6);
    let ret = match (&o.outcome, o.ret) {
        (Outcome::Unknown, _) | (_, None) => "...".to_string(),
        (_, Some(t)) => ms(t),
    };
    let op = match &o.op {
        Op::Create(d) => format!("create({})", bytes(d)),
        Op::Read => "read".to_string(),
        Op::Set(d) => format!("set({})", bytes(d)),
        Op::Cas { version, data } => format!("cas(v{version}, {})", bytes(data)),
        Op::Delete { version } => format!("delete(v{version})"),
    };
    let outcome = match &o.outcome {
        Outcome::Data(d, v) => format!("{} v{v}", bytes(d)),
        Outcome::Version(v) => format!("ok v{v}"),
        other => format!("{other:?}"),
    };
    format!(
        "[{} .. {ret}] client {}: {op} -> {outcome}",
        ms(o.invoke),
        o.client
    )
}

fn bytes(d: &[u8]) -> String {
    match std::str::from_utf8(d) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => d.iter().map(|b| format!("{b:02x}")).collect(),
    }
}
