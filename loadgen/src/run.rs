//! One phase on one loadgen core: connect this core's sessions, wait for the common start, drive
//! the workload until the end of the phase, drain, close, and hand back the core's counters.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral::proto::codes::{event, op};
use glommio::timer::sleep;

use crate::sess::{ReadOutcome, Sess};
use crate::stats::{now_ns, CoreStats, Op};
use crate::wire;

/// The workload profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// getData of a random key (`--keys` nodes of `--payload` bytes).
    Getdata,
    /// exists of a random key.
    Exists,
    /// getChildren of a node with `--children` children.
    Getchildren,
    /// setData of a random key with `--payload` bytes.
    Setdata,
    /// create then delete of a fresh persistent node, pipelined (two requests per pair).
    CreateDelete,
    /// create of an ephemeral-sequential node, then its delete once the create answered.
    CreateDeleteEph,
    /// getData / setData of random keys, `--read-pct` percent reads.
    Mix,
    /// watch fan-out: `--sessions` watchers hold a data watch on one node, one more session sets
    /// it; each write waits until every watcher re-armed (closed loop only).
    Watch,
    /// session churn: each of `--sessions` loops connects (TCP + handshake) and closes a session.
    Churn,
    /// lock recipe: ephemeral-sequential node, getChildren, watch the predecessor; `--locks` locks
    /// shared by the sessions, held `--hold-us` (closed loop only).
    Lock,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Getdata => "getdata",
            Workload::Exists => "exists",
            Workload::Getchildren => "getchildren",
            Workload::Setdata => "setdata",
            Workload::CreateDelete => "create-delete",
            Workload::CreateDeleteEph => "create-delete-eph",
            Workload::Mix => "mix",
            Workload::Watch => "watch",
            Workload::Churn => "churn",
            Workload::Lock => "lock",
        }
    }

    /// Pipelined request streams, which open-loop mode can pace.
    pub fn pipelined(self) -> bool {
        !matches!(self, Workload::Watch | Workload::Churn | Workload::Lock)
    }
}

/// Everything a core needs to run one phase.
#[derive(Debug, Clone)]
pub struct PhaseCfg {
    pub workload: Workload,
    pub servers: Vec<SocketAddr>,
    pub sessions: usize,
    pub outstanding: usize,
    /// Open loop: total requests per second over all sessions; None = closed loop.
    pub rate: Option<f64>,
    pub warmup_ns: u64,
    pub duration_ns: u64,
    pub drain_ns: u64,
    pub payload: usize,
    pub keys: usize,
    pub read_pct: u32,
    pub children: usize,
    pub locks: usize,
    pub hold_us: u64,
    pub session_timeout_ms: i32,
    pub connect_timeout: Duration,
    pub connect_concurrency: usize,
    /// `--tls-ca` (and a client certificate): every session speaks TLS.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub paths: Paths,
}

/// The znodes a run uses, under `--root`.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: String,
    /// Unique per loadgen run, so runs against the same server do not collide.
    pub tag: String,
}

impl Paths {
    pub fn keys_dir(&self) -> String {
        format!("{}/k", self.root)
    }
    pub fn key(&self, i: usize) -> String {
        format!("{}/k/{i}", self.root)
    }
    /// One directory per child count, so runs with different `--children` do not mix.
    pub fn children_dir(&self, children: usize) -> String {
        format!("{}/dir-{children}", self.root)
    }
    pub fn cd_dir(&self) -> String {
        format!("{}/cd", self.root)
    }
    pub fn seq_dir(&self) -> String {
        format!("{}/seq", self.root)
    }
    pub fn watched(&self) -> String {
        format!("{}/watched", self.root)
    }
    pub fn locks_dir(&self) -> String {
        format!("{}/lock", self.root)
    }
    pub fn lock(&self, l: usize) -> String {
        format!("{}/lock/{}-{l}", self.root, self.tag)
    }
}

/// State shared by the cores of one phase.
pub struct Shared {
    /// The phase's start (`now_ns` time); 0 until every core is connected.
    pub start_ns: AtomicU64,
    /// Cores that finished connecting.
    pub ready: AtomicUsize,
    pub watch: WatchShared,
    /// One flag per lock: set while some session believes it holds the lock.
    pub lock_held: Vec<AtomicBool>,
}

pub struct WatchShared {
    pub send_ns: AtomicU64,
    pub last_notify_ns: AtomicU64,
    pub rounds: AtomicU64,
    pub stop: AtomicBool,
    pub armed_tx: async_channel::Sender<()>,
    pub armed_rx: async_channel::Receiver<()>,
}

impl Shared {
    pub fn new(cfg: &PhaseCfg) -> Shared {
        let (armed_tx, armed_rx) = async_channel::unbounded();
        Shared {
            start_ns: AtomicU64::new(0),
            ready: AtomicUsize::new(0),
            watch: WatchShared {
                send_ns: AtomicU64::new(0),
                last_notify_ns: AtomicU64::new(0),
                rounds: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                armed_tx,
                armed_rx,
            },
            lock_held: (0..cfg.locks.max(1))
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }
}

struct Ctx {
    cfg: Arc<PhaseCfg>,
    shared: Arc<Shared>,
    stats: RefCell<CoreStats>,
    /// Filled once the start is known.
    start: std::cell::Cell<u64>,
}

impl Ctx {
    fn end(&self) -> u64 {
        self.start.get() + self.cfg.warmup_ns + self.cfg.duration_ns
    }
    fn drain_deadline(&self) -> u64 {
        self.end() + self.cfg.drain_ns
    }
    fn add_sess_counts(&self, s: &Sess) {
        let mut st = self.stats.borrow_mut();
        st.sent += s.sent;
        st.replies += s.replies;
    }
}

/// Runs this core's share of a phase; returns its counters.
pub async fn core_main(
    core: usize,
    ncores: usize,
    cfg: Arc<PhaseCfg>,
    shared: Arc<Shared>,
) -> CoreStats {
    let ctx = Rc::new(Ctx {
        cfg: cfg.clone(),
        shared: shared.clone(),
        stats: RefCell::new(CoreStats::default()),

        start: std::cell::Cell::new(0),
    });
    // Global session indices of this core; the watch writer is one more session on core 0.
    let mine: Vec<usize> = (core..cfg.sessions).step_by(ncores).collect();
    let extra_writer = cfg.workload == Workload::Watch && core == 0;

    let mut conns: Vec<Option<Sess>> = Vec::new();
    if cfg.workload != Workload::Churn {
        let sem = Rc::new(glommio::sync::Semaphore::new(
            cfg.connect_concurrency.max(1) as u64,
        ));
        let mut tasks = Vec::new();
        let n = mine.len() + extra_writer as usize;
        for k in 0..n {
            let g = if k < mine.len() {
                mine[k]
            } else {
                cfg.sessions
            };
            let addr = cfg.servers[g % cfg.servers.len()];
            let (sem, cfg) = (sem.clone(), cfg.clone());
            tasks.push(glommio::spawn_local(async move {
                let _permit = sem.acquire_permit(1).await;
                Sess::connect(
                    addr,
                    cfg.tls.as_ref(),
                    cfg.session_timeout_ms,
                    cfg.connect_timeout,
                )
                .await
            }));
        }
        for t in tasks {
            match t.await {
                Ok(s) => conns.push(Some(s)),
                Err(e) => {
                    let mut st = ctx.stats.borrow_mut();
                    st.sent += 1;
                    st.error(e);
                    conns.push(None);
                }
            }
        }
    }

    shared.ready.fetch_add(1, Ordering::AcqRel);
    let start = loop {
        let s = shared.start_ns.load(Ordering::Acquire);
        if s != 0 {
            break s;
        }
        sleep(Duration::from_micros(500)).await;
    };
    ctx.start.set(start);
    let w0 = start + cfg.warmup_ns;
    ctx.stats.borrow_mut().window = (w0, w0 + cfg.duration_ns);
    // Sleep to the start time itself so every core begins together.
    let now = now_ns();
    if start > now {
        sleep(Duration::from_nanos(start - now)).await;
    }

    let mut tasks = Vec::new();
    match cfg.workload {
        Workload::Churn => {
            for &g in &mine {
                let ctx = ctx.clone();
                tasks.push(glommio::spawn_local(async move { churn(ctx, g).await }));
            }
        }
        _ => {
            let mut writer = None;
            for (k, c) in conns.into_iter().enumerate() {
                let Some(s) = c else { continue };
                if k >= mine.len() {
                    writer = Some(s);
                    continue;
                }
                let g = mine[k];
                let ctx = ctx.clone();
                tasks.push(match cfg.workload {
                    Workload::Watch => glommio::spawn_local(async move { watcher(ctx, s).await }),
                    Workload::Lock => glommio::spawn_local(async move { lock(ctx, s, g).await }),
                    _ => glommio::spawn_local(async move { pipelined(ctx, s, g).await }),
                });
            }
            if let Some(s) = writer {
                let ctx = ctx.clone();
                tasks.push(glommio::spawn_local(
                    async move { watch_writer(ctx, s).await },
                ));
            } else if extra_writer {
                // The writer could not connect: nothing will be written, release the watchers.
                shared.watch.stop.store(true, Ordering::Release);
            }
        }
    }
    for t in tasks {
        t.await;
    }
    let ctx = Rc::try_unwrap(ctx).ok().expect("tasks done");
    ctx.stats.into_inner()
}

/// Closes a session at the end of a phase, counting what it sent and got.
async fn finish(ctx: &Ctx, mut s: Sess) {
    let deadline = now_ns().max(ctx.end()) + 5_000_000_000;
    if let Err(e) = s.close(deadline).await {
        ctx.stats.borrow_mut().error(format!("close:{e}"));
    }
    ctx.add_sess_counts(&s);
}

/// Request generator of the pipelined workloads.
struct Gen {
    wl: Workload,
    rng: u64,
    keys: Rc<Vec<String>>,
    payload: Bytes,
    acl: Bytes,
    read_pct: u32,
    dir: String,
    /// create-delete: next node number and whether its delete is due.
    n: u64,
    delete_due: bool,
    prefix: String,
    /// create-delete-eph: nodes created, not yet deleted.
    to_delete: VecDeque<String>,
}

impl Gen {
    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn key(&mut self) -> usize {
        (self.rand() % self.keys.len() as u64) as usize
    }

    fn next(&mut self, out: &mut BytesMut, xid: i32) -> Op {
        match self.wl {
            Workload::Getdata => {
                let k = self.key();
                wire::read_req(out, xid, op::GET_DATA, &self.keys[k], false);
                Op::GetData
            }
            Workload::Exists => {
                let k = self.key();
                wire::read_req(out, xid, op::EXISTS, &self.keys[k], false);
                Op::Exists
            }
            Workload::Getchildren => {
                wire::read_req(out, xid, op::GET_CHILDREN, &self.dir, false);
                Op::GetChildren
            }
            Workload::Setdata => {
                let k = self.key();
                wire::set_data(out, xid, &self.keys[k], &self.payload, -1);
                Op::SetData
            }
            Workload::Mix => {
                let k = self.key();
                if (self.rand() % 100) < self.read_pct as u64 {
                    wire::read_req(out, xid, op::GET_DATA, &self.keys[k], false);
                    Op::GetData
                } else {
                    wire::set_data(out, xid, &self.keys[k], &self.payload, -1);
                    Op::SetData
                }
            }
            Workload::CreateDelete => {
                let path = format!("{}-{}", self.prefix, self.n);
                if self.delete_due {
                    wire::delete(out, xid, &path, -1);
                    self.delete_due = false;
                    self.n += 1;
                    Op::Delete
                } else {
                    wire::create(out, xid, &path, &self.payload, &self.acl, 0);
                    self.delete_due = true;
                    Op::Create
                }
            }
            Workload::CreateDeleteEph => {
                if let Some(p) = self.to_delete.pop_front() {
                    wire::delete(out, xid, &p, -1);
                    Op::Delete
                } else {
                    wire::create(out, xid, &self.prefix, &self.payload, &self.acl, 3);
                    Op::Create
                }
            }
            Workload::Watch | Workload::Churn | Workload::Lock => unreachable!(),
        }
    }
}

/// A pipelined session: closed loop (keep `outstanding` in flight) or open loop (send on a fixed
/// schedule, at most `outstanding` in flight; latency from the intended send time).
async fn pipelined(ctx: Rc<Ctx>, mut s: Sess, g: usize) {
    let cfg = ctx.cfg.clone();
    let keys: Rc<Vec<String>> = Rc::new((0..cfg.keys.max(1)).map(|i| cfg.paths.key(i)).collect());
    let mut gen = Gen {
        wl: cfg.workload,
        rng: 0x9e37_79b9_7f4a_7c15 ^ ((g as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9)),
        keys,
        payload: Bytes::from(vec![b'x'; cfg.payload]),
        acl: wire::open_acl(),
        read_pct: cfg.read_pct,
        dir: cfg.paths.children_dir(cfg.children),
        n: 0,
        delete_due: false,
        prefix: match cfg.workload {
            Workload::CreateDeleteEph => format!("{}/{}-", cfg.paths.seq_dir(), cfg.paths.tag),
            _ => format!("{}/{}-{}", cfg.paths.cd_dir(), cfg.paths.tag, g),
        },
        to_delete: VecDeque::new(),
    };
    let start = ctx.start.get();
    let end = ctx.end();
    let drain = ctx.drain_deadline();
    let cap = cfg.outstanding.max(1);
    // Open loop: this session's share of the rate, its first send staggered by session.
    let sched = cfg.rate.map(|r| {
        let interval = (cfg.sessions as f64 * 1e9 / r.max(1e-3)) as u64;
        let first = start + (interval as u128 * g as u128 / cfg.sessions.max(1) as u128) as u64;
        (first, interval.max(1))
    });
    let mut next_t = sched.map_or(0, |s| s.0);
    let mut inflight: VecDeque<(i32, Op, u64)> = VecDeque::with_capacity(cap);
    let mut stopping = false;
    let mut closed = false;
    'outer: loop {
        let now = now_ns();
        if now >= end {
            stopping = true;
        }
        if !stopping {
            match sched {
                None => {
                    while inflight.len() < cap {
                        let xid = s.xid();
                        let o = gen.next(&mut s.out, xid);
                        inflight.push_back((xid, o, now));
                    }
                }
                Some((_, interval)) => {
                    while next_t <= now && next_t < end && inflight.len() < cap {
                        let xid = s.xid();
                        let o = gen.next(&mut s.out, xid);
                        inflight.push_back((xid, o, next_t));
                        next_t += interval;
                    }
                }
            }
        }
        if !s.out.is_empty() {
            s.sent += count_frames(&s.out);
            if s.flush().await.is_err() {
                closed = true;
                break;
            }
        }
        if stopping && inflight.is_empty() {
            break;
        }
        // Wait for replies; an open loop also wakes for its next send.
        let wake = if stopping {
            drain
        } else if sched.is_some() && inflight.len() < cap {
            next_t.min(end)
        } else {
            end.max(now + 1)
        };
        let got = if sched.is_none() && !stopping && now < end.saturating_sub(50_000_000) {
            // Closed loop, well before the end: a plain read (no timer to arm per read).
            if s.read_some().await {
                ReadOutcome::Data
            } else {
                ReadOutcome::Closed
            }
        } else {
            s.read_until(wake).await
        };
        match got {
            ReadOutcome::Data => {}
            ReadOutcome::Closed => {
                closed = true;
                break;
            }
            ReadOutcome::TimedOut => {
                if stopping && now_ns() >= drain {
                    break;
                }
                continue;
            }
        }
        let now = now_ns();
        loop {
            let p = match s.next_frame() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    ctx.stats.borrow_mut().error(e);
                    closed = true;
                    break 'outer;
                }
            };
            let mut r = match wire::reply(p) {
                Ok(r) => r,
                Err(e) => {
                    ctx.stats.borrow_mut().error(e);
                    continue;
                }
            };
            if r.xid == -1 {
                ctx.stats.borrow_mut().notifications += 1;
                continue;
            }
            if r.xid == -2 {
                continue;
            }
            let Some((xid, o, t)) = inflight.pop_front() else {
                ctx.stats.borrow_mut().error("unexpected-reply");
                continue;
            };
            s.replies += 1;
            let mut st = ctx.stats.borrow_mut();
            if xid != r.xid {
                st.error("xid-mismatch");
                continue;
            }
            if r.err != 0 {
                st.error(wire::code_name(r.err));
                continue;
            }
            st.record(o, t, now);
            if o == Op::Create && gen.wl == Workload::CreateDeleteEph {
                if let Ok(path) = r.body.string() {
                    gen.to_delete.push_back(path);
                }
            }
        }
    }
    let lost = inflight.len() as u64;
    {
        let mut st = ctx.stats.borrow_mut();
        st.error_n(
            if closed {
                "connection-closed"
            } else {
                "timeout"
            },
            lost,
        );
    }
    if closed {
        ctx.add_sess_counts(&s);
    } else {
        finish(&ctx, s).await;
    }
}

fn count_frames(b: &[u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while i + 4 <= b.len() {
        let len = i32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        i += 4 + len;
        n += 1;
    }
    n
}

/// Watch fan-out, a watcher: arm a data watch, and on each notification record its latency from
/// the write's send and re-arm.
async fn watcher(ctx: Rc<Ctx>, mut s: Sess) {
    let w = &ctx.shared.watch;
    let path = ctx.cfg.paths.watched();
    let drain = ctx.drain_deadline();
    let mut seen = 0u64;
    let mut armed = false;
    let mut failed = false;
    loop {
        if !armed && !w.stop.load(Ordering::Acquire) {
            let t0 = now_ns();
            match s
                .call(drain, |o, x| {
                    wire::read_req(o, x, op::GET_DATA, &path, true)
                })
                .await
            {
                Ok(r) if r.err == 0 => {
                    ctx.stats.borrow_mut().record(Op::GetData, t0, now_ns());
                    armed = true;
                    let _ = w.armed_tx.send(()).await;
                }
                Ok(r) => {
                    ctx.stats.borrow_mut().error(wire::code_name(r.err));
                    failed = true;
                    break;
                }
                Err(e) => {
                    ctx.stats.borrow_mut().error(e);
                    failed = true;
                    break;
                }
            }
        }
        if w.stop.load(Ordering::Acquire) && seen >= w.rounds.load(Ordering::Acquire) {
            break;
        }
        let now = now_ns();
        if now >= drain {
            break;
        }
        match s.next_event((now + 20_000_000).min(drain)).await {
            Ok(Some((typ, p, t))) => {
                if typ == event::NODE_DATA_CHANGED && p == path {
                    seen += 1;
                    armed = false;
                    let sent = w.send_ns.load(Ordering::Acquire);
                    let mut st = ctx.stats.borrow_mut();
                    st.notifications += 1;
                    st.record(Op::Notify, sent, t);
                    w.last_notify_ns.fetch_max(t, Ordering::AcqRel);
                } else {
                    ctx.stats.borrow_mut().error("unexpected-event");
                }
            }
            Ok(None) => {}
            Err(e) => {
                ctx.stats.borrow_mut().error(e);
                failed = true;
                break;
            }
        }
    }
    let rounds = w.rounds.load(Ordering::Acquire);
    {
        let mut st = ctx.stats.borrow_mut();
        st.expected_notifications += rounds;
        st.error_n("missed-notification", rounds.saturating_sub(seen));
    }
    if failed {
        ctx.add_sess_counts(&s);
    } else {
        finish(&ctx, s).await;
    }
}

/// Watch fan-out, the writer: once every watcher is armed, set the node; record the write's ack
/// latency and, one round later, the time to the last watcher's notification.
async fn watch_writer(ctx: Rc<Ctx>, mut s: Sess) {
    let w = &ctx.shared.watch;
    let watchers = ctx.cfg.sessions as u64;
    let path = ctx.cfg.paths.watched();
    let payload = vec![b'w'; ctx.cfg.payload];
    let end = ctx.end();
    let drain = ctx.drain_deadline();
    let mut pending = watchers;
    let mut last_send = 0u64;
    'rounds: loop {
        while pending > 0 {
            let now = now_ns();
            if now >= drain {
                ctx.stats.borrow_mut().error("watchers-not-armed");
                break 'rounds;
            }
            let wait = Duration::from_nanos(drain - now);
            let got = futures_lite::future::or(async { w.armed_rx.recv().await.ok() }, async {
                sleep(wait).await;
                None
            })
            .await;
            if got.is_some() {
                pending -= 1;
            }
        }
        if last_send != 0 {
            let last = w.last_notify_ns.load(Ordering::Acquire);
            ctx.stats
                .borrow_mut()
                .record(Op::FanoutAll, last_send, last);
        }
        let t = now_ns();
        if t >= end {
            break;
        }
        pending = watchers;
        w.last_notify_ns.store(0, Ordering::Release);
        w.send_ns.store(t, Ordering::Release);
        w.rounds.fetch_add(1, Ordering::AcqRel);
        match s
            .call(drain, |o, x| wire::set_data(o, x, &path, &payload, -1))
            .await
        {
            Ok(r) if r.err == 0 => ctx.stats.borrow_mut().record(Op::SetData, t, now_ns()),
            Ok(r) => ctx.stats.borrow_mut().error(wire::code_name(r.err)),
            Err(e) => {
                ctx.stats.borrow_mut().error(e);
                break;
            }
        }
        last_send = t;
    }
    w.stop.store(true, Ordering::Release);
    // Our own notifications: the writer holds no watch, so none are expected.
    finish(&ctx, s).await;
}

/// Session churn: connect, close, repeat.
async fn churn(ctx: Rc<Ctx>, g: usize) {
    let cfg = ctx.cfg.clone();
    let addr = cfg.servers[g % cfg.servers.len()];
    let end = ctx.end();
    loop {
        let t0 = now_ns();
        if t0 >= end {
            break;
        }
        let mut s = match Sess::connect(
            addr,
            cfg.tls.as_ref(),
            cfg.session_timeout_ms,
            cfg.connect_timeout,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                {
                    let mut st = ctx.stats.borrow_mut();
                    st.sent += 1;
                    st.error(e);
                }
                // Back off a little so a refusing server is not spun on.
                sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let t1 = now_ns();
        ctx.stats.borrow_mut().record(Op::Connect, t0, t1);
        let r = s.close(t1 + cfg.connect_timeout.as_nanos() as u64).await;
        let t2 = now_ns();
        {
            let mut st = ctx.stats.borrow_mut();
            match r {
                Ok(()) => st.record(Op::Close, t1, t2),
                Err(e) => st.error(format!("close:{e}")),
            }
        }
        ctx.add_sess_counts(&s);
    }
}

/// The lock recipe: create an ephemeral-sequential node under the lock, list the children, and
/// either hold the lock (lowest) or watch the predecessor and wait for its deletion.
async fn lock(ctx: Rc<Ctx>, mut s: Sess, g: usize) {
    let cfg = ctx.cfg.clone();
    let l = g % cfg.locks.max(1);
    let dir = cfg.paths.lock(l);
    let prefix = format!("{dir}/lock-");
    let acl = wire::open_acl();
    let end = ctx.end();
    let drain = ctx.drain_deadline();
    let ping_every = (cfg.session_timeout_ms as u64 / 3).max(100) * 1_000_000;
    let held = &ctx.shared.lock_held[l];
    let res: Result<(), String> = async {
        loop {
            let t0 = now_ns();
            if t0 >= end {
                return Ok(());
            }
            let r = s
                .call(drain, |o, x| wire::create(o, x, &prefix, b"", &acl, 3))
                .await?;
            ctx.stats.borrow_mut().record(Op::Create, t0, now_ns());
            if r.err != 0 {
                return Err(wire::code_name(r.err));
            }
            let mut body = r.body;
            let me = body.string().map_err(|_| "decode")?;
            let my_name = me.rsplit('/').next().unwrap_or("").to_string();
            loop {
                let t = now_ns();
                let r = s
                    .call(drain, |o, x| {
                        wire::read_req(o, x, op::GET_CHILDREN, &dir, false)
                    })
                    .await?;
                ctx.stats.borrow_mut().record(Op::GetChildren, t, now_ns());
                if r.err != 0 {
                    return Err(wire::code_name(r.err));
                }
                let mut body = r.body;
                let mut kids = body.strings().map_err(|_| "decode")?;
                kids.sort();
                let Some(i) = kids.iter().position(|k| *k == my_name) else {
                    return Err("lock-node-missing".into());
                };
                if i == 0 {
                    break;
                }
                let pred = format!("{dir}/{}", kids[i - 1]);
                let t = now_ns();
                let r = s
                    .call(drain, |o, x| wire::read_req(o, x, op::EXISTS, &pred, true))
                    .await?;
                ctx.stats.borrow_mut().record(Op::Exists, t, now_ns());
                if r.err == -101 {
                    continue;
                }
                if r.err != 0 {
                    return Err(wire::code_name(r.err));
                }
                // Wait for the predecessor's deletion, pinging while idle.
                loop {
                    let now = now_ns();
                    if now >= drain {
                        return Err("lock-wait-timeout".into());
                    }
                    match s.next_event((now + ping_every).min(drain)).await? {
                        Some((typ, p, _)) if typ == event::NODE_DELETED && p == pred => break,
                        Some(_) => {}
                        None => s.ping().await?,
                    }
                }
            }
            let t = now_ns();
            ctx.stats.borrow_mut().record(Op::Acquire, t0, t);
            if held.swap(true, Ordering::AcqRel) {
                ctx.stats.borrow_mut().error("mutual-exclusion-violated");
            }
            if cfg.hold_us > 0 {
                sleep(Duration::from_micros(cfg.hold_us)).await;
            }
            held.store(false, Ordering::Release);
            let t = now_ns();
            let r = s.call(drain, |o, x| wire::delete(o, x, &me, -1)).await?;
            ctx.stats.borrow_mut().record(Op::Delete, t, now_ns());
            if r.err != 0 {
                return Err(wire::code_name(r.err));
            }
        }
    }
    .await;
    match res {
        Ok(()) => finish(&ctx, s).await,
        Err(e) => {
            ctx.stats.borrow_mut().error(e);
            ctx.add_sess_counts(&s);
        }
    }
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<CoreStats>();
}
