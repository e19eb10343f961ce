//! Links between ensemble members: one TCP connection per pair, carrying `zab::wire` frames.
//!
//! As in ZooKeeper's QuorumCnxManager, the member with the higher sid dials and the lower one
//! accepts (a connection the wrong way round is closed), so a pair never holds two connections.
//! A member that starts knocks on every higher sid's door (a greeting, then close): the higher
//! one dials back at once instead of at its next redial, so a restarted member with a low sid
//! rejoins without waiting out the others' back-off.
//! Both ends send a `Hello` first; the acceptor checks the dialer is a member. A dialer whose
//! connection ends dials again after a short back-off.
//!
//! Every connection has a generation. Events (`Up`, `Down`, `Msg`) carry it, and `send` names the
//! generation the caller believes is live: Zab needs each learner-leader exchange to be one FIFO
//! stream, so a message meant for a connection that has since been replaced must be dropped,
//! not delivered on its successor. `Gens` keeps that bookkeeping for the consumer.
//!
//! With `sslQuorum=true` every connection is mutual TLS before the greeting (`QuorumTls`, the
//! `ssl.quorum.*` stores): the dialer checks the acceptor's certificate against the member's
//! address, the acceptor requires a certificate from the quorum trust store, so a stranger, or a
//! member with a certificate from another CA, cannot greet, vote or receive data.
//!
//! Each connection counts what it carries (`LinkInfo`: ZooKeeper's LearnerHandler figures,
//! which the admin server's `observers` command lists).
//!
//! Runs on one glommio executor (the write core's); `Links` is not `Send`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use crate::proto::{split_frame, Frame};
use crate::zab::peer::Msg;
use crate::zab::wire::{self, Hello, VERSION};
use crate::zab::Sid;

pub use crate::zab::link::{Gens, Link, LinkEvent};

/// Frames queued for one connection before it counts as stuck and is closed (the member then
/// resyncs, as a ZooKeeper learner whose leader dropped it does).
const QUEUE: usize = 1 << 16;
/// How long a greeting may take.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Back-off between dials to one member.
const REDIAL: Duration = Duration::from_millis(100);
/// Largest frame accepted from a member (a SNAP is one frame).
const MAX_FRAME: usize = crate::limits::QUORUM_FRAME_MAX;

/// Mutual TLS between members (`sslQuorum`): the configurations built from the `ssl.quorum.*`
/// stores, the server side requiring a client certificate.
#[derive(Clone)]
pub struct QuorumTls {
    pub server: std::sync::Arc<rustls::ServerConfig>,
    pub client: std::sync::Arc<rustls::ClientConfig>,
    /// The name each member's certificate must carry: the host of its `server.N` line (a DNS
    /// name, or an IP address).
    pub names: BTreeMap<Sid, rustls::pki_types::ServerName<'static>>,
}

/// A link's byte stream: plain TCP, or TLS over it.
trait LinkIo: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> LinkIo for T {}
type Stream = Box<dyn LinkIo>;

struct Conn {
    gen: u64,
    /// Dropping it ends the connection's task, which closes the socket.
    out: Sender<Bytes>,
    stats: Rc<Counts>,
}

/// What one connection has carried, as ZooKeeper's LearnerHandler counts it.
struct Counts {
    remote: Option<SocketAddr>,
    /// Wall-clock ms when the connection came up.
    established_ms: u64,
    sent: Cell<u64>,
    received: Cell<u64>,
    /// Forwarded client requests received.
    requests: Cell<u64>,
    /// The zxid of the last message sent that carries one (-1 before, or after a reset).
    last_zxid: Cell<i64>,
    /// Bytes queued and not yet written.
    queued_bytes: Cell<u64>,
}

impl Counts {
    fn reset(&self) {
        self.sent.set(0);
        self.received.set(0);
        self.requests.set(0);
        self.last_zxid.set(-1);
    }
}

/// One connection's figures (ZooKeeper's `LearnerHandler.getLearnerHandlerInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub sid: Sid,
    pub remote: Option<SocketAddr>,
    pub established_ms: u64,
    pub queued_packets: u64,
    pub queued_bytes: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub requests: u64,
    pub last_zxid: i64,
}

/// The zxid a message carries, if any (what LearnerHandler records as its last).
fn zxid_of(msg: &Msg) -> Option<u64> {
    match msg {
        Msg::Diff { zxid }
        | Msg::Trunc { zxid }
        | Msg::Snap { zxid, .. }
        | Msg::Proposal { zxid, .. }
        | Msg::Commit { zxid }
        | Msg::Inform { zxid, .. }
        | Msg::NewLeader { zxid }
        | Msg::Ack { zxid } => Some(*zxid),
        _ => None,
    }
}

struct Inner {
    me: Sid,
    members: BTreeMap<Sid, SocketAddr>,
    conns: HashMap<Sid, Conn>,
    next_gen: u64,
    events: Sender<LinkEvent>,
    /// The accept loop and the dialers: dropped (cancelled) by `shutdown`.
    tasks: Vec<glommio::Task<()>>,
    /// Wakes the dialer of a lower sid that knocked.
    knocks: HashMap<Sid, Sender<()>>,
    /// Back-off between dials to one member ([`REDIAL`]).
    redial: Duration,
    /// Connection tasks still running (a `Cell` of its own: counted down from a `Drop`, which
    /// may run while `Inner` is borrowed).
    running: Rc<Cell<usize>>,
    stopped: bool,
    tls: Option<QuorumTls>,
}

/// This member's links. Cloning shares them.
#[derive(Clone)]
pub struct Links {
    inner: Rc<RefCell<Inner>>,
}

impl Links {
    /// Listens on `listener` (this member's address among `members`) and dials every member
    /// with a lower sid. Events go to `events`.
    pub fn start(
        me: Sid,
        listener: TcpListener,
        members: BTreeMap<Sid, SocketAddr>,
        events: Sender<LinkEvent>,
    ) -> Links {
        Links::start_with(me, listener, members, events, REDIAL, None)
    }

    /// `start` with every link mutual TLS (`sslQuorum`).
    pub fn start_secure(
        me: Sid,
        listener: TcpListener,
        members: BTreeMap<Sid, SocketAddr>,
        events: Sender<LinkEvent>,
        tls: QuorumTls,
    ) -> Links {
        Links::start_with(me, listener, members, events, REDIAL, Some(tls))
    }

    /// `start` with another back-off between dials (tests: a long one shows that a knock, not
    /// the back-off, brings a restarted member's links back).
    pub fn start_with_redial(
        me: Sid,
        listener: TcpListener,
        members: BTreeMap<Sid, SocketAddr>,
        events: Sender<LinkEvent>,
        redial: Duration,
    ) -> Links {
        Links::start_with(me, listener, members, events, redial, None)
    }

    fn start_with(
        me: Sid,
        listener: TcpListener,
        members: BTreeMap<Sid, SocketAddr>,
        events: Sender<LinkEvent>,
        redial: Duration,
        tls: Option<QuorumTls>,
    ) -> Links {
        let links = Links {
            inner: Rc::new(RefCell::new(Inner {
                me,
                members: members.clone(),
                conns: HashMap::new(),
                next_gen: 1,
                events,
                tasks: Vec::new(),
                knocks: HashMap::new(),
                redial,
                running: Rc::new(Cell::new(0)),
                stopped: false,
                tls,
            })),
        };
        let l = links.clone();
        let mut tasks = vec![glommio::spawn_local(async move {
            l.accept_loop(listener).await
        })];
        let mut knocks = HashMap::new();
        for (&sid, &addr) in members.range(..me) {
            let l = links.clone();
            let (knock, knocked) = async_channel::bounded(1);
            knocks.insert(sid, knock);
            tasks.push(glommio::spawn_local(async move {
                l.dial_loop(sid, addr, knocked).await
            }));
        }
        for (&sid, &addr) in members.range(me + 1..) {
            let l = links.clone();
            tasks.push(glommio::spawn_local(
                async move { l.knock(sid, addr).await },
            ));
        }
        let mut inner = links.inner.borrow_mut();
        inner.tasks = tasks;
        inner.knocks = knocks;
        drop(inner);
        links
    }

    /// Sends `msg` to `to` if its live connection is generation `gen`; otherwise (gone, or
    /// replaced) drops it. A connection whose queue is full is closed.
    pub fn send(&self, to: Sid, gen: u64, msg: &Msg) {
        let mut inner = self.inner.borrow_mut();
        let Some(c) = inner.conns.get(&to) else {
            return;
        };
        if c.gen != gen {
            return;
        }
        let mut b = BytesMut::new();
        wire::encode(msg, &mut b);
        let len = b.len() as u64;
        if c.out.try_send(b.freeze()).is_err() {
            debug!(sid = to, "quorum link stuck; closing it");
            inner.conns.remove(&to);
            return;
        }
        let s = &c.stats;
        s.sent.set(s.sent.get() + 1);
        s.queued_bytes.set(s.queued_bytes.get() + len);
        if let Some(z) = zxid_of(msg).filter(|z| *z > 0) {
            s.last_zxid.set(z as i64);
        }
    }

    /// The figures of the live connection to `sid`, if there is one.
    pub fn info(&self, sid: Sid) -> Option<LinkInfo> {
        let inner = self.inner.borrow();
        let c = inner.conns.get(&sid)?;
        let s = &c.stats;
        Some(LinkInfo {
            sid,
            remote: s.remote,
            established_ms: s.established_ms,
            queued_packets: c.out.len() as u64,
            queued_bytes: s.queued_bytes.get(),
            packets_received: s.received.get(),
            packets_sent: s.sent.get(),
            requests: s.requests.get(),
            last_zxid: s.last_zxid.get(),
        })
    }

    /// Clears the counters of the connection to `sid` (ZooKeeper's
    /// `resetObserverConnectionStats`).
    pub fn reset_stats(&self, sid: Sid) {
        if let Some(c) = self.inner.borrow().conns.get(&sid) {
            c.stats.reset();
        }
    }

    /// Stops listening and dialing, closes every connection and waits (up to a second) for
    /// their tasks to end, so the sockets are closed when it returns.
    pub async fn shutdown(&self) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.stopped = true;
            inner.conns.clear();
        }
        // Outside the borrow: a cancelled dialer may be inside `register`.
        let tasks = std::mem::take(&mut self.inner.borrow_mut().tasks);
        drop(tasks);
        for _ in 0..200 {
            if self.inner.borrow().running.get() == 0 {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn accept_loop(&self, listener: TcpListener) {
        loop {
            let Ok(stream) = listener.accept().await else {
                glommio::timer::sleep(REDIAL).await;
                continue;
            };
            let l = self.clone();
            glommio::spawn_local(async move {
                let me = l.inner.borrow().me;
                let remote = stream.peer_addr().ok();
                if let Some((sid, stream, rest)) = l.greet(stream, None).await {
                    // The higher sid dials. A lower one greeting us knocks: it has just
                    // started, and we dial it now.
                    if sid > me {
                        l.register(sid, stream, rest, remote).await;
                    } else if let Some(k) = l.inner.borrow().knocks.get(&sid) {
                        let _ = k.try_send(());
                    }
                }
            })
            .detach();
        }
    }

    async fn dial_loop(&self, sid: Sid, addr: SocketAddr, knocked: Receiver<()>) {
        loop {
            let dial = async { Ok(TcpStream::connect(addr).await.ok()) };
            if let Ok(Some(stream)) = glommio::timer::timeout(DIAL_TIMEOUT, dial).await {
                if let Some((_, stream, rest)) = self.greet(stream, Some(sid)).await {
                    self.register(sid, stream, rest, Some(addr)).await;
                }
            }
            // A knock from before this attempt is answered by it.
            while knocked.try_recv().is_ok() {}
            let knock = async {
                let _ = knocked.recv().await;
            };
            let redial = self.inner.borrow().redial;
            futures_lite::future::or(glommio::timer::sleep(redial), knock).await;
        }
    }

    /// Tells `sid` (higher than ours, so it dials us) that we are up: a greeting, then close.
    async fn knock(&self, sid: Sid, addr: SocketAddr) {
        let dial = async { Ok(TcpStream::connect(addr).await.ok()) };
        if let Ok(Some(stream)) = glommio::timer::timeout(DIAL_TIMEOUT, dial).await {
            // Its dialer may have reached us meanwhile; then this greeting changes nothing.
            let _ = self.greet(stream, Some(sid)).await;
        }
    }

    /// Exchanges greetings; the remote sid if it is a member (and the one expected, if any), and
    /// whatever the remote sent after its greeting.
    async fn greet(
        &self,
        stream: TcpStream,
        expect: Option<Sid>,
    ) -> Option<(Sid, Stream, BytesMut)> {
        let me = self.inner.borrow().me;
        let _ = stream.set_nodelay(true);
        let mut stream = self.secure(stream, expect).await?;
        let mut hello = BytesMut::new();
        wire::encode_hello(
            Hello {
                version: VERSION,
                sid: me,
            },
            &mut hello,
        );
        let exchange = async {
            if stream.write_all(&hello).await.is_err() {
                return Ok(None);
            }
            let mut buf = BytesMut::new();
            let mut chunk = [0u8; 512];
            loop {
                match split_frame(&mut buf, 64) {
                    Frame::Payload(p) => return Ok(wire::decode_hello(p).ok().map(|h| (h, buf))),
                    Frame::TooLarge(_) => return Ok(None),
                    Frame::Incomplete => {}
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Ok(None),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        let (theirs, rest) = glommio::timer::timeout(HELLO_TIMEOUT, exchange)
            .await
            .ok()
            .flatten()?;
        let ok = theirs.version == VERSION
            && theirs.sid != me
            && self.inner.borrow().members.contains_key(&theirs.sid)
            && expect.is_none_or(|e| e == theirs.sid);
        ok.then_some((theirs.sid, stream, rest))
    }

    /// The TLS handshake of a link when `sslQuorum` is on (bounded by `HELLO_TIMEOUT`): as the
    /// dialer of `expect`, checking its certificate against its address; as the acceptor,
    /// requiring a certificate the quorum trust store vouches for. None if it fails.
    async fn secure(&self, stream: TcpStream, expect: Option<Sid>) -> Option<Stream> {
        let Some(tls) = self.inner.borrow().tls.clone() else {
            return Some(Box::new(stream));
        };
        let name = expect.and_then(|sid| tls.names.get(&sid).cloned());
        let peer = stream.peer_addr().ok();
        let handshake = async {
            let s: std::io::Result<Stream> = match name {
                Some(name) => futures_rustls::TlsConnector::from(tls.client)
                    .connect(name, stream)
                    .await
                    .map(|s| Box::new(s) as Stream),
                None => futures_rustls::TlsAcceptor::from(tls.server)
                    .accept(stream)
                    .await
                    .map(|s| Box::new(s) as Stream),
            };
            Ok(s)
        };
        match glommio::timer::timeout(HELLO_TIMEOUT, handshake).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                info!(?peer, "quorum TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                info!(?peer, "quorum TLS handshake timed out");
                None
            }
        }
    }

    /// Makes `stream` the live connection to `sid` (replacing any older one) and runs it until
    /// it ends.
    async fn register(&self, sid: Sid, stream: Stream, rest: BytesMut, remote: Option<SocketAddr>) {
        let (out_tx, out_rx) = async_channel::bounded(QUEUE);
        let stats = Rc::new(Counts {
            remote,
            established_ms: super::conn::wall_clock_ms(),
            sent: Cell::new(0),
            received: Cell::new(0),
            requests: Cell::new(0),
            last_zxid: Cell::new(-1),
            queued_bytes: Cell::new(0),
        });
        let (gen, events, _running) = {
            let mut inner = self.inner.borrow_mut();
            if inner.stopped {
                return;
            }
            // Counted down when this task ends however it ends (a dialer's is cancelled at
            // shutdown).
            inner.running.set(inner.running.get() + 1);
            let running = Running(inner.running.clone());
            let gen = inner.next_gen;
            inner.next_gen += 1;
            // Replacing the old connection drops its queue, which ends its task.
            inner.conns.insert(
                sid,
                Conn {
                    gen,
                    out: out_tx,
                    stats: stats.clone(),
                },
            );
            (gen, inner.events.clone(), running)
        };
        info!(sid, gen, "quorum link up");
        if events.send(LinkEvent::Up { sid, gen }).await.is_err() {
            return;
        }
        run_conn(sid, gen, stream, rest, out_rx, &events, &stats).await;
        {
            let mut inner = self.inner.borrow_mut();
            if inner.conns.get(&sid).is_some_and(|c| c.gen == gen) {
                inner.conns.remove(&sid);
            }
        }
        info!(sid, gen, "quorum link down");
        let _ = events.send(LinkEvent::Down { sid, gen }).await;
    }
}

struct Running(Rc<Cell<usize>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Reads frames into events and writes queued frames until either side fails or the queue's
/// sender is dropped.
async fn run_conn(
    sid: Sid,
    gen: u64,
    stream: Stream,
    mut buf: BytesMut,
    out: Receiver<Bytes>,
    events: &Sender<LinkEvent>,
    stats: &Counts,
) {
    let (mut rd, mut wr) = futures_lite::io::split(stream);
    let reading = async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            loop {
                match split_frame(&mut buf, MAX_FRAME) {
                    Frame::Payload(p) => {
                        let Ok(msg) = wire::decode(p) else {
                            debug!(sid, "undecodable quorum frame; closing the link");
                            return;
                        };
                        stats.received.set(stats.received.get() + 1);
                        if matches!(msg, Msg::Request { .. }) {
                            stats.requests.set(stats.requests.get() + 1);
                        }
                        if events.send(LinkEvent::Msg { sid, gen, msg }).await.is_err() {
                            return;
                        }
                    }
                    Frame::TooLarge(_) => return,
                    Frame::Incomplete => break,
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let writing = async {
        let mut batch = Vec::new();
        while let Ok(first) = out.recv().await {
            // Everything queued goes out in one write.
            batch.clear();
            batch.extend_from_slice(&first);
            while let Ok(more) = out.try_recv() {
                batch.extend_from_slice(&more);
            }
            let queued = stats.queued_bytes.get();
            stats
                .queued_bytes
                .set(queued.saturating_sub(batch.len() as u64));
            if wr.write_all(&batch).await.is_err() {
                return;
            }
        }
    };
    futures_lite::future::or(reading, writing).await;
}
