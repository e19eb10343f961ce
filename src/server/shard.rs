//! A shard: one glommio executor pinned to one CPU, holding a read replica of the data tree, the
//! watches and sessions of the connections it accepted, and those connections. This file starts
//! the executors and listeners and applies the write core's commits to the replica; a
//! connection's tasks are in conn.rs, a request's path through the shard in request.rs.
//!
//! Everything here is owned by the shard's thread (`Rc<RefCell<_>>`, no locks). A borrow is
//! never held across an `.await`.
//!
//! Per-connection ordering (ZooKeeper's CommitProcessor rules, see docs/design/ordering.md):
//! requests of a connection are answered in the order they arrived. A read is served at once from
//! the replica when nothing is queued ahead of it; otherwise it waits in the connection's queue
//! behind the write, and runs when that write's commit has been applied here, so it sees the
//! write (read-your-writes). Watch events are appended to a connection's output the moment the
//! commit that fires them is applied, so an event always precedes any later reply that reflects
//! its change.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::BytesMut;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, info, warn};

use super::conn::{serve, ConnRef, Pending, Phase};
use super::core::{CoreInit, WriteCore};
use super::reply::{encode_write_reply, reply};
use super::{AdminQuery, Commit, ShardReport, Shared, ToCore, ToShard, CHANNEL_CAPACITY};
use crate::admin;
use crate::config::Config;
use crate::proto::codes::{perms, state, xid, Code};
use crate::proto::jute::Writer;
use crate::proto::records::{put_reply_header, put_watcher_event, ConnectResponse};
use crate::proto::{finish_frame, start_frame};
use crate::tree::{acl, DataTree};
use crate::txn::TxnOp;
use crate::watch::{ConnId, WatchManager};

/// io_uring buffer memory per executor: the network path does not use registered buffers, so a
/// small region keeps us far inside the default 8 MiB RLIMIT_MEMLOCK even with many servers.
const IO_MEMORY: usize = 512 * 1024;

pub(super) struct Shard {
    pub(super) id: usize,
    pub(super) tree: DataTree,
    pub(super) watches: WatchManager,
    pub(super) conns: HashMap<ConnId, ConnRef>,
    /// Sessions attached here -> their connection.
    pub(super) sessions: HashMap<i64, ConnId>,
    pub(super) touched: HashSet<i64>,
    /// Connections with a read waiting for this replica to catch up.
    pub(super) waiting: HashSet<ConnId>,
    pub(super) next_conn: ConnId,
    pub(super) received: u64,
    pub(super) sent: u64,
    pub(super) latency: admin::Latency,
}

pub(super) type ShardRef = Rc<RefCell<Shard>>;

/// Everything a shard's tasks share that never changes after start.
pub(super) struct Env {
    pub(super) id: usize,
    pub(super) cfg: Arc<Config>,
    pub(super) to_core: Sender<ToCore>,
    pub(super) shared: Arc<Shared>,
    pub(super) per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// glommio locks memory for its rings; lift the limit when allowed (root), else live within it.
fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        debug!("could not raise RLIMIT_MEMLOCK; using small io_uring regions");
    }
}

/// Starts the server and runs it until the process ends. In order: take SIGTERM/SIGINT,
/// claim the client port and the data directories (claim.rs), bind the first listener,
/// recover, bind the other shards' listeners and start the executors; only then is "serving
/// clients" logged. Every I/O error on the way names the path or the address it is about.
pub fn start(cfg: Arc<Config>) -> std::io::Result<()> {
    super::stop::install()?;
    raise_memlock();
    let cpus = allowed_cpus();
    let shards = cfg.cores.unwrap_or(cpus.len()).max(1);
    info!(?cpus, shards, port = cfg.client_port, "starting corral");

    // Claims are held until the process ends (`start` returns only to exit).
    let mut claims = Vec::new();
    let shown = |port: u16| SocketAddr::new(cfg.client_port_address, port).to_string();
    if cfg.client_port != 0 {
        claims.push(super::claim::port(
            cfg.client_port,
            &shown(cfg.client_port),
        )?);
    }
    // Shard 0's socket, bound now: a port held by another program (a ZooKeeper) is reported
    // before recovery, and port 0 picks the one port every shard then binds.
    let first = bind_socket(&cfg, cfg.client_port)?;
    let port = first
        .local_addr()?
        .as_socket()
        .map_or(cfg.client_port, |a| a.port());
    if cfg.client_port == 0 {
        claims.push(super::claim::port(port, &shown(port))?);
    }

    // Absolute data paths: glommio opens files relative to no directory, so `./data` (the
    // default) must become a full path before any executor uses it. Each directory is claimed
    // before anything in it is read, so two servers never recover (and truncate) one log.
    let cfg = {
        let mut c = (*cfg).clone();
        c.client_port = port;
        c.data_dir = make_dir(&c.data_dir, "dataDir")?;
        claims.push(super::claim::dir(&c.data_dir, "dataDir")?);
        if let Some(d) = c.data_log_dir.take() {
            let d = make_dir(&d, "dataLogDir")?;
            if d != c.data_dir {
                claims.push(super::claim::dir(&d, "dataLogDir")?);
            }
            c.data_log_dir = Some(d);
        }
        Arc::new(c)
    };
    // Recover before serving: the tree every replica starts from, and where the log continues.
    let log_dir = super::log_dir(&cfg);
    std::fs::create_dir_all(&log_dir).map_err(at(&log_dir))?;
    let t0 = Instant::now();
    let snap_dir = super::snapshots::snapshot_dir(&cfg.data_dir);
    let recovered = crate::storage::recover::recover(&log_dir, &snap_dir)?;
    info!(
        zxid = format!("{:#x}", recovered.last_zxid),
        segments = recovered.stats.segments,
        skipped = recovered.stats.segments_skipped,
        records = recovered.stats.records,
        snapshot = ?recovered.stats.snapshot.map(|z| format!("{z:#x}")),
        torn = ?recovered.stats.torn,
        discarded_bytes = recovered.stats.discarded_bytes,
        ms = t0.elapsed().as_millis() as u64,
        "recovered from the transaction log"
    );
    let epochs = crate::storage::epochs::read(&cfg.data_dir)?;
    let initial = Arc::new(recovered.tree.clone());

    let (core_tx, core_rx) = async_channel::bounded::<ToCore>(CHANNEL_CAPACITY);
    let mut shard_txs = Vec::new();
    let mut shard_rxs = Vec::new();
    let mut admin_txs = Vec::new();
    let mut admin_rxs = Vec::new();
    for _ in 0..shards {
        let (t, r) = async_channel::bounded::<ToShard>(CHANNEL_CAPACITY);
        shard_txs.push(t);
        shard_rxs.push(r);
        let (t, r) = async_channel::bounded::<AdminQuery>(16);
        admin_txs.push(t);
        admin_rxs.push(r);
    }
    let shared = Arc::new(Shared {
        admin: admin_txs,
        committed: AtomicI64::new(0),
    });
    let per_ip = Arc::new(Mutex::new(HashMap::new()));
    let mut core = Some((
        CoreInit {
            cfg: cfg.clone(),
            shards: shard_txs,
            shared: shared.clone(),
            tree: recovered.tree,
            tail: recovered.tail,
            next_seq: recovered.next_seq,
            epochs,
        },
        core_rx,
    ));

    // Every shard's listener, listening before any executor runs: a connection that arrives
    // while they start waits in the backlog.
    let mut sockets = vec![first];
    for _ in 1..shards {
        sockets.push(bind_socket(&cfg, port)?);
    }
    for sk in &sockets {
        listen(&cfg, sk)?;
    }

    let mut handles = Vec::new();
    for (i, ((rx, admin_rx), socket)) in shard_rxs
        .into_iter()
        .zip(admin_rxs)
        .zip(sockets)
        .enumerate()
    {
        let env = Env {
            id: i,
            cfg: cfg.clone(),
            to_core: core_tx.clone(),
            shared: shared.clone(),
            per_ip: per_ip.clone(),
        };
        let core = if i == 0 { core.take() } else { None };
        let initial = initial.clone();
        let cpu = cpus[i % cpus.len()];
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("corral-shard{i}"))
            .io_memory(IO_MEMORY)
            // Spin briefly before sleeping: completions that land within 50 us (an fdatasync,
            // a reply on loopback) are reaped at once instead of after a wake-up. Measured with
            // loadgen setdata 1x1 on one CPU: fdatasync 1.7 ms -> 0.06 ms average, setData p50
            // 210 us end to end.
            .spin_before_park(Duration::from_micros(50))
            .spawn(move || async move { run_shard(env, rx, admin_rx, core, initial, socket).await })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        handles.push(h);
    }
    // The shards hold their own copies now; the last one may take this one instead of cloning.
    drop(initial);
    // "serving clients" once the write core answers (its log is open): a question to it is
    // answered only from its serving loop. If it failed instead, the join below reports why.
    let (tx, rx) = async_channel::bounded(1);
    let core_up = futures_lite::future::block_on(async {
        core_tx.send(ToCore::Report(tx)).await.is_ok() && rx.recv().await.is_ok()
    });
    drop(core_tx);
    if core_up {
        info!("serving clients on {}", shown(port));
    }
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
    Ok(())
}

async fn run_shard(
    env: Env,
    rx: Receiver<ToShard>,
    admin_rx: Receiver<AdminQuery>,
    core: Option<(CoreInit, Receiver<ToCore>)>,
    initial: Arc<DataTree>,
    socket: socket2::Socket,
) -> std::io::Result<()> {
    let env = Rc::new(env);
    let shard: ShardRef = Rc::new(RefCell::new(Shard {
        id: env.id,
        // Consumed here, not held for the shard's life: a 1M-node tree is hundreds of MiB.
        tree: Arc::try_unwrap(initial).unwrap_or_else(|a| (*a).clone()),
        watches: WatchManager::default(),
        conns: HashMap::new(),
        sessions: HashMap::new(),
        touched: HashSet::new(),
        waiting: HashSet::new(),
        next_conn: 1,
        received: 0,
        sent: 0,
        latency: admin::Latency::default(),
    }));

    if let Some((core, core_rx)) = core {
        // NotImportant, like the shard's own tasks: a Latency::Matters queue here made glommio
        // miss network completions until the next timer (lock waits of a whole tick). Prompt
        // fsync completions come from `spin_before_park` instead (see `start`).
        let tq = glommio::executor().create_task_queue(
            glommio::Shares::Static(1000),
            glommio::Latency::NotImportant,
            "write-core",
        );
        glommio::spawn_local_into(WriteCore::run(core, core_rx), tq)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .detach();
        // The write core's clock: session expiry and container reaping.
        let to_core = env.to_core.clone();
        let period = Duration::from_millis((env.cfg.tick_time_ms as u64 / 2).clamp(10, 1000));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(period).await;
                if to_core.send(ToCore::Tick).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }

    // Commit stream from the write core.
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Ok(msg) = rx.recv().await {
                on_core_message(&mut shard.borrow_mut(), msg);
            }
        })
        .detach();
    }
    // Activity reports: sessions seen since the last report keep their lease.
    {
        let shard = shard.clone();
        let to_core = env.to_core.clone();
        let period = Duration::from_millis((env.cfg.tick_time_ms as u64 / 2).clamp(10, 1000));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(period).await;
                let touched: Vec<i64> = shard.borrow_mut().touched.drain().collect();
                if !touched.is_empty() && to_core.send(ToCore::Touch(touched)).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }
    // Four-letter-word questions from any shard.
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Ok(q) = admin_rx.recv().await {
                let report = shard.borrow_mut().report(q.reset);
                let _ = q.reply.send(report).await;
            }
        })
        .detach();
    }

    // SAFETY: the fd is a listening TCP socket that nothing else owns.
    let listener = unsafe {
        use std::os::fd::{FromRawFd, IntoRawFd};
        TcpListener::from_raw_fd(socket.into_raw_fd())
    };
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(p) => p,
            Err(_) => continue,
        };
        if !admit(&env, peer.ip()) {
            warn!(%peer, "too many connections from {}, max is {}", peer.ip(), env.cfg.max_client_cnxns);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (env, shard) = (env.clone(), shard.clone());
        glommio::spawn_local(async move {
            serve(&env, &shard, stream, peer).await;
            release(&env, peer.ip());
        })
        .detach();
    }
}

/// Binds a shard's socket to the client port: SO_REUSEPORT so every shard binds the port and
/// the kernel spreads connections (the port claim keeps other servers off it); SO_REUSEADDR so
/// a restart is not refused by connections of the previous process still in TIME_WAIT.
fn bind_socket(cfg: &Config, port: u16) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::new(cfg.client_port_address, port);
    let named = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another server, a ZooKeeper perhaps, is listening there; pick another port with --port N)"
        } else {
            ""
        };
        std::io::Error::new(
            e.kind(),
            format!("cannot bind client port {addr}: {e}{hint}"),
        )
    };
    let sk = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.bind(&addr.into()).map_err(named)?;
    Ok(sk)
}

fn listen(cfg: &Config, sk: &socket2::Socket) -> std::io::Result<()> {
    let backlog = if cfg.client_port_listen_backlog > 0 {
        cfg.client_port_listen_backlog
    } else {
        1024
    };
    sk.listen(backlog)
}

/// Creates `dir` if missing and returns its absolute path; errors name it.
fn make_dir(dir: &std::path::Path, role: &str) -> std::io::Result<std::path::PathBuf> {
    let named =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("{role} {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(named)?;
    std::fs::canonicalize(dir).map_err(named)
}

/// Adds `path` to an I/O error's message.
fn at(path: &std::path::Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// maxClientCnxns: connections per client IP across all shards (0 = unlimited).
fn admit(env: &Env, ip: IpAddr) -> bool {
    let mut m = env.per_ip.lock().unwrap();
    let n = m.entry(ip).or_insert(0);
    if env.cfg.max_client_cnxns != 0 && *n >= env.cfg.max_client_cnxns {
        return false;
    }
    *n += 1;
    true
}

fn release(env: &Env, ip: IpAddr) {
    let mut m = env.per_ip.lock().unwrap();
    if let Some(n) = m.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            m.remove(&ip);
        }
    }
}

impl Shard {
    fn report(&mut self, reset: bool) -> ShardReport {
        if reset {
            self.received = 0;
            self.sent = 0;
            self.latency = admin::Latency::default();
        }
        let session_of = |conn: ConnId| {
            self.conns
                .get(&conn)
                .map(|c| c.borrow().session_id)
                .unwrap_or(0)
        };
        ShardReport {
            last_zxid: self.tree.last_zxid(),
            node_count: self.tree.node_count(),
            ephemerals: self.tree.ephemeral_count(),
            data_size: self.tree.approximate_data_size(),
            received: self.received,
            sent: self.sent,
            sessions: self.tree.sessions().count(),
            outstanding: self.conns.values().map(|c| c.borrow().queue.len()).sum(),
            latency: self.latency,
            connections: self
                .conns
                .values()
                .map(|c| {
                    let c = c.borrow();
                    let mut info = admin::ConnectionInfo::new(c.peer, c.established_ms);
                    info.outstanding_requests = c.queue.len() as u64;
                    info.packets_received = c.received;
                    info.packets_sent = c.sent;
                    info.session_id = c.session_id as u64;
                    info.last_op = c.last_op;
                    info.session_timeout_ms = c.timeout_ms as u32;
                    info.last_cxid = c.last_cxid as i64;
                    info.last_zxid = c.last_zxid;
                    info.latency = c.latency;
                    info
                })
                .collect(),
            watch_count: self.watches.total(),
            watches_by_session: self
                .watches
                .by_connection()
                .into_iter()
                .map(|(c, p)| (session_of(c), p))
                .collect(),
            watches_by_path: self
                .watches
                .by_path()
                .into_iter()
                .map(|(p, cs)| (p, cs.into_iter().map(session_of).collect()))
                .collect(),
            ephemerals_by_session: if self.id == 0 {
                let mut v: Vec<(i64, Vec<String>)> = self
                    .tree
                    .sessions()
                    .map(|(id, _)| (*id, self.tree.ephemerals_of(*id).cloned().collect()))
                    .filter(|(_, e): &(i64, Vec<String>)| !e.is_empty())
                    .collect();
                v.sort();
                v
            } else {
                Vec::new()
            },
        }
    }
}

fn on_core_message(s: &mut Shard, msg: ToShard) {
    match msg {
        ToShard::Commits(batch) => {
            for commit in batch.iter() {
                apply_commit(s, commit);
            }
            for conn in std::mem::take(&mut s.waiting) {
                if let Some(c) = s.conns.get(&conn).cloned() {
                    s.drain(&mut c.borrow_mut());
                }
            }
        }
        ToShard::Synced { conn, path } => {
            let zxid = s.tree.last_zxid();
            complete_write(s, conn, |_, xid, out| {
                reply(out, xid, zxid, |b| {
                    b.put_jstring(&path);
                    Ok(())
                })
            });
        }
        ToShard::Attached {
            conn,
            session_id,
            timeout_ms,
            password,
        } => attach(s, conn, session_id, timeout_ms, password),
        ToShard::Rejected { conn, expired } => {
            if let Some(c) = s.conns.get(&conn) {
                let mut c = c.borrow_mut();
                if expired {
                    let at = start_frame(&mut c.out);
                    ConnectResponse::expired(c.read_only_flag).encode(&mut c.out);
                    finish_frame(&mut c.out, at);
                }
                c.close();
            }
        }
        ToShard::Close { conn } => {
            if let Some(c) = s.conns.get(&conn) {
                c.borrow_mut().close();
            }
        }
        ToShard::Refused { conn, code } => {
            let zxid = s.tree.last_zxid();
            complete_write(s, conn, |_, xid, out| reply(out, xid, zxid, |_| Err(code)));
        }
    }
}

fn attach(s: &mut Shard, conn: ConnId, session_id: i64, timeout_ms: i32, password: [u8; 16]) {
    let Some(cref) = s.conns.get(&conn).cloned() else {
        return;
    };
    let mut c = cref.borrow_mut();
    c.session_id = session_id;
    c.phase = Phase::Attached;
    s.sessions.insert(session_id, conn);
    s.touched.insert(session_id);
    let at = start_frame(&mut c.out);
    ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id,
        passwd: password,
        read_only: c.read_only_flag.map(|_| false),
    }
    .encode(&mut c.out);
    finish_frame(&mut c.out, at);
    if let Some(w) = c.handshake.take() {
        w.wake();
    }
    s.drain(&mut c);
}

/// Completes the oldest unanswered write of `conn` with the reply `make` encodes.
fn complete_write(s: &mut Shard, conn: ConnId, make: impl FnOnce(i32, i32, &mut BytesMut)) {
    let Some(cref) = s.conns.get(&conn).cloned() else {
        return;
    };
    let mut c = cref.borrow_mut();
    let slot = c.queue.iter_mut().find_map(|p| match p {
        Pending::Write {
            opcode,
            xid,
            reply: r @ None,
            ..
        } => Some((*opcode, *xid, r)),
        _ => None,
    });
    let Some((opcode, xid, slot)) = slot else {
        warn!(conn, "commit for a connection with no write outstanding");
        return;
    };
    let mut b = BytesMut::new();
    make(opcode, xid, &mut b);
    *slot = Some(b);
    s.sent += 1;
    c.sent += 1;
    s.drain(&mut c);
}

fn apply_commit(s: &mut Shard, commit: &Commit) {
    let txn = &commit.txn;
    let applied = s.tree.apply(txn);
    for t in &applied.triggers {
        for conn in s.watches.trigger(&t.path, t.kind) {
            if let Some(c) = s.conns.get(&conn) {
                let mut c = c.borrow_mut();
                // Only to a watcher that may READ the node (CVE-2024-23944, ZooKeeper 3.9.2),
                // judged by the connection's ids now; a one-shot watch is used up either way.
                if let Some(acl) = &t.read_acl {
                    if !acl::allowed(acl, perms::READ, &c.ids) {
                        continue;
                    }
                }
                let at = start_frame(&mut c.out);
                put_reply_header(&mut c.out, xid::NOTIFICATION, -1, Code::Ok);
                put_watcher_event(&mut c.out, t.kind, state::SYNC_CONNECTED, &t.path);
                finish_frame(&mut c.out, at);
                c.wake_writer();
            }
        }
    }
    let mine = commit.origin.filter(|o| o.shard == s.id);
    match &txn.op {
        TxnOp::CreateSession {
            timeout_ms,
            password,
        } => {
            if let Some(o) = mine {
                let _ = timeout_ms;
                let negotiated = s
                    .conns
                    .get(&o.conn)
                    .map(|c| c.borrow().timeout_ms)
                    .unwrap_or(*timeout_ms);
                attach(s, o.conn, txn.session_id, negotiated, *password);
            }
            return;
        }
        TxnOp::CloseSession => {
            if let Some(o) = mine {
                complete_write(s, o.conn, |_, xid, out| {
                    reply(out, xid, txn.zxid, |_| Ok(()))
                });
            }
            // The session is gone: its connection here (if any) closes once flushed.
            if let Some(conn) = s.sessions.remove(&txn.session_id) {
                if let Some(c) = s.conns.get(&conn) {
                    c.borrow_mut().close();
                }
            }
            return;
        }
        _ => {}
    }
    if let Some(o) = mine {
        complete_write(s, o.conn, |opcode, xid, out| {
            encode_write_reply(out, opcode, xid, txn.zxid, &txn.op, &applied.results)
        });
    }
}

pub(super) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
