//! A shard: one glommio executor pinned to one CPU, holding a read replica of the data tree, the
//! watches and sessions of the connections it accepted, and those connections.
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
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::{BufMut, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, info, warn};

use super::core::{CoreInit, WriteCore};
use super::fourlw;
use super::reply::{encode_write_reply, read_path, reply};
use super::{AdminQuery, Commit, Origin, ShardReport, Shared, ToCore, ToShard, CHANNEL_CAPACITY};
use crate::admin::{self, FourLetter};
use crate::config::{Config, OUTPUT_HIGH_WATER};
use crate::proto::codes::{event, op, perms, state, xid, Code};
use crate::proto::jute::{Reader, Writer};
use crate::proto::records::{
    put_multi_header, put_reply_header, put_watcher_event, Acl, ConnectRequest, ConnectResponse,
    ReadOp, Request, RequestError, SetWatches,
};
use crate::proto::{finish_frame, split_frame, start_frame, Frame};
use crate::tree::{acl, DataTree};
use crate::txn::TxnOp;
use crate::watch::{ConnId, Kind, WatchManager};

/// How long a new connection may take to send its connect request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a socket per read call. Each connection holds one such buffer for its life,
/// so it stays small (10k connections x 64 KiB would be 640 MiB): 16 KiB still takes a few
/// hundred pipelined requests per read, and bigger frames simply take several reads.
const READ_CHUNK: usize = 16 * 1024;
/// io_uring buffer memory per executor: the network path does not use registered buffers, so a
/// small region keeps us far inside the default 8 MiB RLIMIT_MEMLOCK even with many servers.
const IO_MEMORY: usize = 512 * 1024;

enum Pending {
    /// A read; it runs once the replica has applied `min_zxid`.
    Read {
        xid: i32,
        opcode: i32,
        req: Request,
        at: Instant,
        min_zxid: i64,
    },
    /// A write (or sync / closeSession) sent to the write core.
    Write {
        opcode: i32,
        xid: i32,
        reply: Option<BytesMut>,
        at: Instant,
    },
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Handshake,
    Connecting,
    Attached,
}

struct Conn {
    id: ConnId,
    peer: SocketAddr,
    phase: Phase,
    session_id: i64,
    timeout_ms: i32,
    /// Whether the connect request carried the readOnly flag: the response echoes its shape.
    read_only_flag: Option<bool>,
    ids: Arc<Vec<crate::proto::records::Id>>,
    queue: VecDeque<Pending>,
    out: BytesMut,
    /// Bytes the writer took from `out` and has not yet seen written.
    writing: usize,
    /// `corral.clientOutputLimit`: `out` + `writing` above this closes the connection.
    output_limit: usize,
    /// The output went over `output_limit`: the writer drops what is unsent and closes.
    overflowed: bool,
    writer: Option<Waker>,
    /// The writer, blocked in a write, waiting to be told of an overflow.
    abort: Option<Waker>,
    /// `drain` stopped at the output high-water mark with answers still queued: the writer
    /// resumes it once the client has taken some output.
    stalled: bool,
    reader: Option<Waker>,
    /// The reader, parked until the handshake is answered.
    handshake: Option<Waker>,
    /// The reader, parked while too many requests of this connection are outstanding.
    backpressure: Option<Waker>,
    /// Flush `out`, then close.
    closing: bool,
    // counters for `cons`
    received: u64,
    sent: u64,
    last_cxid: i32,
    last_zxid: i64,
    last_op: &'static str,
    established_ms: u64,
    latency: admin::Latency,
}

impl Conn {
    /// Output waiting to be sent (queued, or handed to the writer).
    fn output_len(&self) -> usize {
        self.out.len() + self.writing
    }

    fn wake_writer(&mut self) {
        if !self.overflowed && self.output_len() > self.output_limit {
            // A client that stopped reading (its watches keep firing): ZooKeeper's answer to a
            // dead peer is to drop the connection; the session lives on until it expires.
            warn!(
                peer = %self.peer,
                session = format!("{:#x}", self.session_id),
                bytes = self.output_len(),
                "client is not reading its replies; closing the connection"
            );
            self.overflowed = true;
            self.out.clear();
            if let Some(w) = self.abort.take() {
                w.wake();
            }
            self.close();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    fn close(&mut self) {
        self.closing = true;
        self.wake_writer();
        for w in [
            self.reader.take(),
            self.handshake.take(),
            self.backpressure.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
    }
}

type ConnRef = Rc<RefCell<Conn>>;

struct Shard {
    id: usize,
    tree: DataTree,
    watches: WatchManager,
    conns: HashMap<ConnId, ConnRef>,
    /// Sessions attached here -> their connection.
    sessions: HashMap<i64, ConnId>,
    touched: HashSet<i64>,
    /// Connections with a read waiting for this replica to catch up.
    waiting: HashSet<ConnId>,
    next_conn: ConnId,
    received: u64,
    sent: u64,
    latency: admin::Latency,
}

type ShardRef = Rc<RefCell<Shard>>;

/// Everything a shard's tasks share that never changes after start.
struct Env {
    id: usize,
    cfg: Arc<Config>,
    to_core: Sender<ToCore>,
    shared: Arc<Shared>,
    per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
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

pub fn start(cfg: Arc<Config>) -> std::io::Result<()> {
    raise_memlock();
    let cpus = allowed_cpus();
    let shards = cfg.cores.unwrap_or(cpus.len()).max(1);
    info!(?cpus, shards, port = cfg.client_port, "starting corral");

    // Refuse to start beside a live server on the same port: the shards' SO_REUSEPORT sockets
    // would share the port with it. A live server answers `ruok`; the listener of a just-killed
    // process may still accept for a moment (its io_uring is torn down asynchronously) but never
    // answers, and its lingering connections must not block a restart, hence SO_REUSEPORT.
    if cfg.client_port != 0
        && server_answers(SocketAddr::new(cfg.client_port_address, cfg.client_port))
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "another server is already serving on {}:{}",
                cfg.client_port_address, cfg.client_port
            ),
        ));
    }
    // Port 0 picks a free port once, so that every shard binds the same one.
    let probe = bind_socket(&cfg)?;
    let port = probe
        .local_addr()?
        .as_socket()
        .map_or(cfg.client_port, |a| a.port());
    drop(probe);
    let cfg = if port != cfg.client_port {
        let mut c = (*cfg).clone();
        c.client_port = port;
        Arc::new(c)
    } else {
        cfg
    };
    info!("serving clients on {}:{port}", cfg.client_port_address);

    // Absolute data paths: glommio opens files relative to no directory, so `./data` (the
    // default) must become a full path before any executor uses it.
    std::fs::create_dir_all(&cfg.data_dir)?;
    let cfg = {
        let mut c = (*cfg).clone();
        c.data_dir = std::fs::canonicalize(&c.data_dir)?;
        if let Some(d) = c.data_log_dir.take() {
            std::fs::create_dir_all(&d)?;
            c.data_log_dir = Some(std::fs::canonicalize(d)?);
        }
        Arc::new(c)
    };
    // Recover before serving: the tree every replica starts from, and where the log continues.
    let log_dir = super::log_dir(&cfg);
    std::fs::create_dir_all(&log_dir)?;
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
        },
        core_rx,
    ));

    let mut handles = Vec::new();
    for (i, (rx, admin_rx)) in shard_rxs.into_iter().zip(admin_rxs).enumerate() {
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
            .spawn(move || async move { run_shard(env, rx, admin_rx, core, initial).await })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        handles.push(h);
    }
    drop(core_tx);
    // The shards hold their own copies now; the last one may take this one instead of cloning.
    drop(initial);
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

    let listener = listen(&env.cfg)?;
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

/// The shard's listening socket: SO_REUSEPORT so every shard binds the port and the kernel
/// spreads connections; SO_REUSEADDR so a restart is not refused by connections of the previous
/// process still in TIME_WAIT (glommio's own `bind` sets only the former).
fn listen(cfg: &Config) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let sk = bind_socket(cfg)?;
    let backlog = if cfg.client_port_listen_backlog > 0 {
        cfg.client_port_listen_backlog
    } else {
        1024
    };
    sk.listen(backlog)?;
    // SAFETY: the fd is a freshly created listening TCP socket that nothing else owns.
    Ok(unsafe { TcpListener::from_raw_fd(sk.into_raw_fd()) })
}

/// True if something on `addr` answers a four-letter word.
fn server_answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut b = [0u8; 1];
    s.write_all(b"ruok").is_ok() && matches!(s.read(&mut b), Ok(n) if n > 0)
}

fn bind_socket(cfg: &Config) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::new(cfg.client_port_address, cfg.client_port);
    let sk = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.bind(&addr.into())?;
    Ok(sk)
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

/// Runs one client connection until it closes.
async fn serve(env: &Rc<Env>, shard: &ShardRef, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = futures_lite::io::split(stream);
    let conn_id = {
        let mut s = shard.borrow_mut();
        let id = s.next_conn;
        s.next_conn += 1;
        id
    };
    let conn: ConnRef = Rc::new(RefCell::new(Conn {
        id: conn_id,
        peer,
        phase: Phase::Handshake,
        session_id: 0,
        timeout_ms: 0,
        read_only_flag: None,
        ids: Arc::new(vec![crate::proto::records::Id::new(
            "ip",
            &peer.ip().to_string(),
        )]),
        queue: VecDeque::new(),
        out: BytesMut::new(),
        writing: 0,
        output_limit: env.cfg.client_output_limit,
        overflowed: false,
        writer: None,
        abort: None,
        stalled: false,
        reader: None,
        handshake: None,
        backpressure: None,
        closing: false,
        received: 0,
        sent: 0,
        last_cxid: 0,
        last_zxid: 0,
        last_op: admin::LAST_OP_NONE,
        established_ms: wall_clock_ms(),
        latency: admin::Latency::default(),
    }));
    shard.borrow_mut().conns.insert(conn_id, conn.clone());
    // A connection that never completes its handshake is closed, as ZooKeeper closes
    // session-less connections (its `sessionlessCnxnTimeout`, 10 s). The reader enforces it
    // (below): a timer task per connection would keep every closed connection alive for 10 s,
    // which under connection churn (20k/s) held ~170 MB.
    let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;

    let writer = {
        let conn = conn.clone();
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                let (buf, closing) = futures_lite::future::poll_fn(|cx| {
                    let mut c = conn.borrow_mut();
                    if c.overflowed {
                        Poll::Ready((BytesMut::new(), true))
                    } else if !c.out.is_empty() || c.closing {
                        let buf = c.out.split();
                        c.writing = buf.len();
                        Poll::Ready((buf, c.closing))
                    } else {
                        c.writer = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                if conn.borrow().overflowed {
                    break; // drop the socket unflushed: the client is not reading
                }
                if !buf.is_empty() {
                    // Raced with an overflow: a client that never reads would hold this write
                    // (and the connection) forever.
                    let written = futures_lite::future::or(
                        async { Some(wr.write_all(&buf).await.is_ok()) },
                        futures_lite::future::poll_fn(|cx| {
                            let mut c = conn.borrow_mut();
                            if c.overflowed {
                                Poll::Ready(None)
                            } else {
                                c.abort = Some(cx.waker().clone());
                                Poll::Pending
                            }
                        }),
                    )
                    .await;
                    if written != Some(true) {
                        break;
                    }
                    let mut c = conn.borrow_mut();
                    c.writing = 0;
                    if let Some(w) = c.backpressure.take() {
                        w.wake();
                    }
                    if c.stalled {
                        shard.borrow_mut().drain(&mut c);
                    }
                }
                if closing && conn.borrow().out.is_empty() {
                    let _ = wr.flush().await;
                    let _ = wr.close().await;
                    break;
                }
            }
            // The reader may be parked on a read the client never answers.
            conn.borrow_mut().close();
        })
    };

    // Grows only if frames arrive split or pipelined beyond one read.
    let mut inbuf = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let outstanding_max = (env.cfg.global_outstanding_limit as usize).max(1);
    'read: loop {
        room_to_read(&conn, outstanding_max).await;
        let closed = futures_lite::future::poll_fn(|cx| {
            let mut c = conn.borrow_mut();
            if c.closing {
                Poll::Ready(())
            } else {
                c.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        let handshaking = conn.borrow().phase == Phase::Handshake;
        let timed_out = async {
            if handshaking {
                glommio::timer::sleep(handshake_deadline.saturating_duration_since(Instant::now()))
                    .await;
            } else {
                futures_lite::future::pending::<()>().await;
            }
            None
        };
        let read = async { Some(rd.read(&mut chunk).await) };
        let closed = async {
            closed.await;
            None
        };
        let n = match futures_lite::future::or(read, futures_lite::future::or(closed, timed_out))
            .await
        {
            Some(Ok(0)) | Some(Err(_)) | None => break,
            Some(Ok(n)) => n,
        };
        inbuf.extend_from_slice(&chunk[..n]);
        loop {
            // Requests pipelined behind the connect request wait for its answer, so that they
            // reach the write core with their session and in order.
            futures_lite::future::poll_fn(|cx| {
                let mut c = conn.borrow_mut();
                if c.phase == Phase::Connecting && !c.closing {
                    c.handshake = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            // Per frame too: one read can carry hundreds of requests.
            room_to_read(&conn, outstanding_max).await;
            if conn.borrow().closing {
                break 'read;
            }
            if conn.borrow().phase == Phase::Handshake && inbuf.len() >= 4 {
                if let Some(cmd) = FourLetter::from_len_prefix(inbuf[..4].try_into().unwrap()) {
                    let text = fourlw::four_letter(&env.cfg, &env.shared, &env.to_core, cmd).await;
                    let mut c = conn.borrow_mut();
                    c.out.extend_from_slice(text.as_bytes());
                    c.close();
                    break 'read;
                }
            }
            let payload = match split_frame(&mut inbuf, env.cfg.jute_max_buffer as usize) {
                Frame::Payload(p) => p,
                Frame::Incomplete => break,
                Frame::TooLarge(len) => {
                    warn!(%peer, len, "frame length out of range, closing connection");
                    break 'read;
                }
            };
            let to_core = match on_frame(env, shard, &conn, payload) {
                Ok(msgs) => msgs,
                Err(why) => {
                    debug!(%peer, "closing connection: {why}");
                    conn.borrow_mut().close();
                    break 'read;
                }
            };
            for m in to_core {
                if env.to_core.send(m).await.is_err() {
                    break 'read;
                }
            }
        }
    }
    conn.borrow_mut().close();
    let _ = writer.await;
    let (session_id, attached) = {
        let c = conn.borrow();
        (c.session_id, c.phase == Phase::Attached)
    };
    {
        let mut s = shard.borrow_mut();
        s.conns.remove(&conn_id);
        s.watches.remove_conn(conn_id);
        if s.sessions.get(&session_id) == Some(&conn_id) {
            s.sessions.remove(&session_id);
        }
    }
    if attached {
        let origin = Origin {
            shard: env.id,
            conn: conn_id,
        };
        let _ = env
            .to_core
            .send(ToCore::Disconnected { origin, session_id })
            .await;
    }
}

/// Backpressure: waits while too many of this connection's requests are unanswered
/// (ZooKeeper's globalOutstandingLimit, applied per connection here) or too much of its output
/// waits to be sent (a client that reads slowly, or not at all, holds its own requests back in
/// TCP instead of growing the server's buffers).
async fn room_to_read(conn: &ConnRef, outstanding_max: usize) {
    futures_lite::future::poll_fn(|cx| {
        let mut c = conn.borrow_mut();
        let backlog = c.queue.len() >= outstanding_max || c.output_len() >= OUTPUT_HIGH_WATER;
        if !backlog || c.closing {
            Poll::Ready(())
        } else {
            c.backpressure = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

/// Handles one frame; returns the messages to send to the write core, or why to close.
fn on_frame(
    env: &Env,
    shard: &ShardRef,
    conn: &ConnRef,
    payload: bytes::Bytes,
) -> Result<Vec<ToCore>, &'static str> {
    let mut c = conn.borrow_mut();
    let mut s = shard.borrow_mut();
    s.received += 1;
    c.received += 1;
    let origin = Origin {
        shard: env.id,
        conn: c.id,
    };
    if c.phase == Phase::Handshake {
        let req = ConnectRequest::decode(payload).map_err(|_| "malformed connect request")?;
        let (min, max) = (
            env.cfg.min_session_timeout_ms as i32,
            env.cfg.max_session_timeout_ms as i32,
        );
        let timeout_ms = req.timeout_ms.clamp(min, max);
        c.phase = Phase::Connecting;
        c.timeout_ms = timeout_ms;
        c.read_only_flag = req.read_only;
        return Ok(vec![ToCore::Connect {
            origin,
            session_id: req.session_id,
            passwd: req.passwd,
            timeout_ms,
            last_zxid_seen: req.last_zxid_seen,
        }]);
    }

    let mut r = Reader::new(payload);
    let (xid, opcode) = match (r.i32(), r.i32()) {
        (Ok(x), Ok(o)) => (x, o),
        _ => return Err("truncated request header"),
    };
    if c.session_id != 0 {
        s.touched.insert(c.session_id);
    }
    let req = match Request::decode(opcode, &mut r) {
        Ok(req) => req,
        Err(RequestError::UnknownOpcode(_)) => {
            // ZooKeeper answers an unknown opcode with Unimplemented, then closes.
            let zxid = s.tree.last_zxid();
            reply(&mut c.out, xid, zxid, |_| Err(Code::Unimplemented));
            c.close();
            return Ok(vec![]);
        }
        Err(RequestError::Malformed(_)) => {
            // A body that does not parse gets MarshallingError; the connection stays usable.
            let zxid = s.tree.last_zxid();
            reply(&mut c.out, xid, zxid, |_| Err(Code::MarshallingError));
            c.wake_writer();
            return Ok(vec![]);
        }
    };
    if xid >= 0 {
        c.last_cxid = xid;
    }
    c.last_op = admin::last_op_name(opcode);

    match req {
        // Processed on arrival, as ZooKeeper does, so later writes carry the new identity.
        Request::Auth { scheme, auth } => {
            let zxid = 0;
            match acl::authenticate(&scheme, &auth, c.peer.ip(), env.cfg.super_digest.as_deref()) {
                Ok(new_ids) => {
                    let mut ids = (*c.ids).clone();
                    for id in new_ids {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    c.ids = Arc::new(ids);
                    let at = start_frame(&mut c.out);
                    put_reply_header(&mut c.out, xid, zxid, Code::Ok);
                    finish_frame(&mut c.out, at);
                    c.wake_writer();
                    Ok(vec![])
                }
                Err(code) => {
                    let at = start_frame(&mut c.out);
                    put_reply_header(&mut c.out, xid, zxid, code);
                    finish_frame(&mut c.out, at);
                    c.close();
                    Ok(vec![])
                }
            }
        }
        Request::Sasl => {
            // No SASL configured: ZooKeeper answers OK with a null token.
            let at = start_frame(&mut c.out);
            put_reply_header(&mut c.out, xid, 0, Code::Ok);
            c.out.put_i32(-1);
            finish_frame(&mut c.out, at);
            c.wake_writer();
            Ok(vec![])
        }
        req if req.is_write() => {
            c.queue.push_back(Pending::Write {
                opcode,
                xid,
                reply: None,
                at: Instant::now(),
            });
            Ok(vec![ToCore::Write {
                origin,
                session_id: c.session_id,
                cxid: xid,
                ids: c.ids.clone(),
                req,
            }])
        }
        req => {
            let min_zxid = env.shared.committed.load(Ordering::SeqCst);
            if c.queue.is_empty() && s.tree.last_zxid() >= min_zxid {
                let mut out = std::mem::take(&mut c.out);
                s.execute(&mut c, xid, opcode, &req, &mut out);
                s.record_latency(&mut c, 0);
                c.out = out;
                c.wake_writer();
            } else {
                c.queue.push_back(Pending::Read {
                    xid,
                    opcode,
                    req,
                    at: Instant::now(),
                    min_zxid,
                });
                s.waiting.insert(c.id);
            }
            Ok(vec![])
        }
    }
}

impl Shard {
    fn node_checked(
        &self,
        path: &str,
        perm: i32,
        ids: &[crate::proto::records::Id],
    ) -> Result<&crate::tree::Node, Code> {
        let n = self.tree.get(read_path(path)).ok_or(Code::NoNode)?;
        if perm != 0 && !acl::allowed(&n.acl, perm, ids) {
            return Err(Code::NoAuth);
        }
        Ok(n)
    }

    /// Serves a non-write request from this shard's replica.
    fn execute(&mut self, c: &mut Conn, xid: i32, opcode: i32, req: &Request, out: &mut BytesMut) {
        let zxid = self.tree.last_zxid();
        c.last_zxid = zxid;
        self.sent += 1;
        c.sent += 1;
        let ids = c.ids.clone();
        let conn = c.id;
        match req {
            Request::Ping => reply(out, xid::PING, zxid, |_| Ok(())),
            Request::Exists { path, watch } => {
                if *watch {
                    self.watches.add(Kind::Data, path, conn);
                }
                reply(out, xid, zxid, |b| {
                    let n = self.tree.get(read_path(path)).ok_or(Code::NoNode)?;
                    n.stat().encode(b);
                    Ok(())
                })
            }
            Request::GetData { path, watch } => reply(out, xid, zxid, |b| {
                let n = self.node_checked(path, perms::READ, &ids)?;
                b.put_jbuffer_opt(n.data.as_deref());
                n.stat().encode(b);
                if *watch {
                    self.watches.add(Kind::Data, path, conn);
                }
                Ok(())
            }),
            Request::GetChildren {
                path,
                watch,
                with_stat,
            } => reply(out, xid, zxid, |b| {
                let n = self.node_checked(path, perms::READ, &ids)?;
                b.put_i32(n.children.len() as i32);
                for ch in &n.children {
                    b.put_jstring(ch);
                }
                if *with_stat {
                    n.stat().encode(b);
                }
                if *watch {
                    self.watches.add(Kind::Child, path, conn);
                }
                Ok(())
            }),
            Request::GetAcl { path } => reply(out, xid, zxid, |b| {
                let n = self.node_checked(path, perms::READ | perms::ADMIN, &ids)?;
                if acl::allowed(&n.acl, perms::ADMIN, &ids) {
                    Acl::encode_list(&n.acl, b);
                } else {
                    // Without ADMIN, digest hashes are masked (ZooKeeper 3.8).
                    let masked: Vec<Acl> = n
                        .acl
                        .iter()
                        .map(|a| {
                            let mut a = a.clone();
                            if a.id.scheme == "digest" {
                                let user = a.id.id.split(':').next().unwrap_or("").to_string();
                                a.id.id = format!("{user}:x");
                            }
                            a
                        })
                        .collect();
                    Acl::encode_list(&masked, b);
                }
                n.stat().encode(b);
                Ok(())
            }),
            Request::GetAllChildrenNumber { path } => reply(out, xid, zxid, |b| {
                self.node_checked(path, perms::READ, &ids)?;
                b.put_i32(self.tree.descendant_count(path).unwrap_or(0));
                Ok(())
            }),
            Request::GetEphemerals { prefix } => reply(out, xid, zxid, |b| {
                let p = prefix.trim();
                let mut v: Vec<&String> = self
                    .tree
                    .ephemerals_of(c.session_id)
                    .filter(|e| p.is_empty() || p == "/" || e.starts_with(prefix.as_str()))
                    .collect();
                v.sort();
                b.put_jstrings(&v);
                Ok(())
            }),
            Request::MultiRead(ops) => reply(out, xid, zxid, |b| {
                for o in ops {
                    let (typ, path) = match o {
                        ReadOp::GetChildren { path } => (op::GET_CHILDREN, path),
                        ReadOp::GetData { path } => (op::GET_DATA, path),
                    };
                    match self.node_checked(path, perms::READ, &ids) {
                        Ok(n) => {
                            put_multi_header(b, typ, false, 0);
                            if typ == op::GET_DATA {
                                b.put_jbuffer_opt(n.data.as_deref());
                                n.stat().encode(b);
                            } else {
                                b.put_i32(n.children.len() as i32);
                                for ch in &n.children {
                                    b.put_jstring(ch);
                                }
                            }
                        }
                        Err(code) => {
                            put_multi_header(b, op::ERROR, false, code.as_i32());
                            b.put_i32(code.as_i32());
                        }
                    }
                }
                put_multi_header(b, -1, true, -1);
                Ok(())
            }),
            Request::AddWatch { path, mode } => {
                let kind = if *mode == crate::proto::codes::watch_mode::PERSISTENT_RECURSIVE {
                    Kind::Recursive
                } else {
                    Kind::Persistent
                };
                self.watches.add(kind, path, conn);
                reply(out, xid, zxid, |b| {
                    b.put_i32(0);
                    Ok(())
                })
            }
            Request::CheckWatches { path, kind } => reply(out, xid, zxid, |_| {
                if self.watches.has_watch(path, *kind, conn) {
                    Ok(())
                } else {
                    Err(Code::NoWatcher)
                }
            }),
            Request::RemoveWatches { path, kind } => reply(out, xid, zxid, |_| {
                if self.watches.remove_watches(path, *kind, conn) {
                    Ok(())
                } else {
                    Err(Code::NoWatcher)
                }
            }),
            Request::SetWatches(w) => {
                self.set_watches(conn, w, out);
                reply(out, xid, zxid, |_| Ok(()))
            }
            Request::WhoAmI => reply(out, xid, zxid, |b| {
                let infos: Vec<(&str, String)> = ids
                    .iter()
                    .map(|id| {
                        let user = match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or("").to_string(),
                            _ => id.id.clone(),
                        };
                        (id.scheme.as_str(), user)
                    })
                    .collect();
                b.put_i32(infos.len() as i32);
                for (scheme, user) in infos {
                    b.put_jstring(scheme);
                    b.put_jstring(&user);
                }
                Ok(())
            }),
            // Writes never reach here; anything else is a request ZooKeeper would not serve.
            _ => {
                let _ = opcode;
                reply(out, xid, zxid, |_| Err(Code::Unimplemented))
            }
        }
    }

    /// setWatches after a reconnect: re-registers the watches, and fires at once those whose
    /// condition already changed after `relative_zxid` (the last zxid the client saw).
    fn set_watches(&mut self, conn: ConnId, w: &SetWatches, out: &mut BytesMut) {
        let rel = w.relative_zxid;
        let fire = |out: &mut BytesMut, kind: i32, path: &str| {
            let at = start_frame(out);
            put_reply_header(out, xid::NOTIFICATION, -1, Code::Ok);
            put_watcher_event(out, kind, state::SYNC_CONNECTED, path);
            finish_frame(out, at);
        };
        for p in &w.data {
            match self.tree.get(p) {
                None => fire(out, event::NODE_DELETED, p),
                Some(n) if n.mzxid > rel => fire(out, event::NODE_DATA_CHANGED, p),
                Some(_) => self.watches.add(Kind::Data, p, conn),
            }
        }
        for p in &w.exist {
            match self.tree.get(p) {
                Some(_) => fire(out, event::NODE_CREATED, p),
                None => self.watches.add(Kind::Data, p, conn),
            }
        }
        for p in &w.child {
            match self.tree.get(p) {
                None => fire(out, event::NODE_DELETED, p),
                Some(n) if n.pzxid > rel => fire(out, event::NODE_CHILDREN_CHANGED, p),
                Some(_) => self.watches.add(Kind::Child, p, conn),
            }
        }
        for p in &w.persistent {
            self.watches.add(Kind::Persistent, p, conn);
        }
        for p in &w.persistent_recursive {
            self.watches.add(Kind::Recursive, p, conn);
        }
    }

    fn record_latency(&mut self, c: &mut Conn, ms: u64) {
        self.latency.record(ms);
        c.latency.record(ms);
    }

    /// Answers everything at the head of a connection's queue that can be answered now.
    fn drain(&mut self, c: &mut Conn) {
        let mut out = std::mem::take(&mut c.out);
        c.stalled = false;
        while let Some(front) = c.queue.front_mut() {
            if out.len() + c.writing >= OUTPUT_HIGH_WATER {
                // Answers wait in the queue, not in memory as output the client is slow to
                // take (hundreds of reads of a big node would otherwise all land in `out`).
                c.stalled = true;
                break;
            }
            match front {
                Pending::Write { reply: r, at, .. } => match r.take() {
                    Some(bytes) => {
                        let ms = at.elapsed().as_millis() as u64;
                        out.extend_from_slice(&bytes);
                        c.queue.pop_front();
                        self.record_latency(c, ms);
                    }
                    None => break,
                },
                Pending::Read { min_zxid, .. } => {
                    if self.tree.last_zxid() < *min_zxid {
                        self.waiting.insert(c.id);
                        break;
                    }
                    let Some(Pending::Read {
                        xid,
                        opcode,
                        req,
                        at,
                        ..
                    }) = c.queue.pop_front()
                    else {
                        unreachable!()
                    };
                    self.execute(c, xid, opcode, &req, &mut out);
                    self.record_latency(c, at.elapsed().as_millis() as u64);
                }
            }
        }
        c.out = out;
        c.wake_writer();
        if let Some(w) = c.backpressure.take() {
            w.wake();
        }
    }

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
        TxnOp::CloseSession { .. } => {
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

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
