//! A client connection's state on its shard (`Conn`): phase, session, auth ids, the queue of
//! unanswered requests, the output buffer and the wakers of the tasks that serve it (serve.rs).
//! The state is private: the shard's modules change it through what a connection does (attach,
//! queue a write, complete it, notify, drain answers in order, wait for room), so the rules
//! tying the fields together (wakers woken, output bounded) live in this one file.
//!
//! Backpressure lives here: reading pauses while too many requests of the connection are
//! unanswered or too much of its output is unsent (`poll_room`), `drain` stops at the output
//! high-water mark, and a connection whose notifications pile past `corral.clientOutputLimit`
//! is closed (docs/decisions.md, "Slow and stalled readers").

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tracing::warn;

use crate::admin;
use crate::config::OUTPUT_HIGH_WATER;
use crate::proto::records::{ConnectResponse, Id, Request};
use crate::watch::ConnId;

use super::frames::{connect_response, four_letter_text, notification};

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

pub(super) struct Conn {
    id: ConnId,
    peer: SocketAddr,
    phase: Phase,
    session_id: i64,
    timeout_ms: i32,
    /// Whether the connect request carried the readOnly flag: the response echoes its shape.
    read_only_flag: Option<bool>,
    ids: Arc<Vec<crate::proto::records::Id>>,
    /// The SASL exchange, once the client started one.
    sasl: Option<Box<crate::auth::Login>>,
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

/// What `Conn::drain` hands the shard for each answer it takes off the queue.
pub(super) enum Answer<'a> {
    /// A write's reply went to the output; it waited this long.
    Write { waited: Duration },
    /// A read to answer now, queued since `at`.
    Read {
        xid: i32,
        opcode: i32,
        req: &'a Request,
        at: Instant,
    },
}

impl Conn {
    pub(super) fn new(id: ConnId, peer: SocketAddr, output_limit: usize) -> Conn {
        Conn {
            id,
            peer,
            phase: Phase::Handshake,
            session_id: 0,
            timeout_ms: 0,
            read_only_flag: None,
            ids: Arc::new(vec![Id::new("ip", &peer.ip().to_string())]),
            sasl: None,
            queue: VecDeque::new(),
            out: BytesMut::new(),
            writing: 0,
            output_limit,
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
        }
    }

    pub(super) fn id(&self) -> ConnId {
        self.id
    }

    pub(super) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The session this connection serves (0 before the handshake is answered).
    pub(super) fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The negotiated session timeout.
    pub(super) fn timeout_ms(&self) -> i32 {
        self.timeout_ms
    }

    /// The auth ids requests of this connection act with.
    pub(super) fn ids(&self) -> &Arc<Vec<Id>> {
        &self.ids
    }

    /// Adds the ids an auth packet proved (each once).
    pub(super) fn add_ids(&mut self, new_ids: Vec<Id>) {
        let mut ids = (*self.ids).clone();
        for id in new_ids {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        self.ids = Arc::new(ids);
    }

    /// This connection's SASL exchange (one per connection: a second login fails, as in
    /// ZooKeeper, whose SaslServer is made with the connection).
    pub(super) fn sasl_exchange(
        &mut self,
        cfg: &crate::auth::SaslConfig,
    ) -> &mut crate::auth::Login {
        self.sasl
            .get_or_insert_with(|| Box::new(crate::auth::Login::new(cfg)))
    }

    /// No connect request has been read yet.
    pub(super) fn handshaking(&self) -> bool {
        self.phase == Phase::Handshake
    }

    /// The connect request was read and went to the write core.
    pub(super) fn connecting(&mut self, timeout_ms: i32, read_only_flag: Option<bool>) {
        self.phase = Phase::Connecting;
        self.timeout_ms = timeout_ms;
        self.read_only_flag = read_only_flag;
    }

    /// The session is attached: answer the connect request (saying whether the member serves
    /// read-only), release the reader.
    pub(super) fn attach(
        &mut self,
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
        read_only: bool,
    ) {
        self.session_id = session_id;
        self.phase = Phase::Attached;
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: password,
            read_only: self.read_only_flag.map(|_| read_only),
        };
        connect_response(&mut self.out, &resp);
        if let Some(w) = self.handshake.take() {
            w.wake();
        }
    }

    /// The handshake failed: answer with an expired-session response if `expired`, and close.
    pub(super) fn reject(&mut self, expired: bool) {
        if expired {
            let resp = ConnectResponse::expired(self.read_only_flag);
            connect_response(&mut self.out, &resp);
        }
        self.close();
    }

    /// The handshake was answered: the session is attached to this connection.
    pub(super) fn attached(&self) -> bool {
        self.phase == Phase::Attached
    }

    /// Counts a request frame read from the client.
    #[inline]
    pub(super) fn received(&mut self) {
        self.received += 1;
    }

    /// Notes a decoded request for `cons` (its cxid and operation).
    #[inline]
    pub(super) fn note_request(&mut self, xid: i32, opcode: i32) {
        if xid >= 0 {
            self.last_cxid = xid;
        }
        self.last_op = admin::last_op_name(opcode);
    }

    /// Notes a read answered from the replica at `zxid`.
    #[inline]
    pub(super) fn answering(&mut self, zxid: i64) {
        self.last_zxid = zxid;
        self.sent += 1;
    }

    #[inline]
    pub(super) fn record_latency(&mut self, ms: u64) {
        self.latency.record(ms);
    }

    /// Nothing of this connection is waiting to be answered.
    #[inline]
    pub(super) fn idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Requests waiting to be answered.
    pub(super) fn outstanding(&self) -> usize {
        self.queue.len()
    }

    /// Queues a write sent to the write core; its reply fills the slot when committed.
    #[inline]
    pub(super) fn push_write(&mut self, opcode: i32, xid: i32) {
        self.queue.push_back(Pending::Write {
            opcode,
            xid,
            reply: None,
            at: Instant::now(),
        });
    }

    /// Queues a read to run once the replica has applied `min_zxid`.
    #[inline]
    pub(super) fn push_read(&mut self, xid: i32, opcode: i32, req: Request, min_zxid: i64) {
        self.queue.push_back(Pending::Read {
            xid,
            opcode,
            req,
            at: Instant::now(),
            min_zxid,
        });
    }

    /// Fills the oldest unanswered write's reply with what `make(opcode, xid, out)` encodes;
    /// false if no write is outstanding.
    #[inline]
    pub(super) fn complete_write(&mut self, make: impl FnOnce(i32, i32, &mut BytesMut)) -> bool {
        let slot = self.queue.iter_mut().find_map(|p| match p {
            Pending::Write {
                opcode,
                xid,
                reply: r @ None,
                ..
            } => Some((*opcode, *xid, r)),
            _ => None,
        });
        let Some((opcode, xid, slot)) = slot else {
            return false;
        };
        let mut b = BytesMut::new();
        make(opcode, xid, &mut b);
        *slot = Some(b);
        self.sent += 1;
        true
    }

    /// Appends what `write` encodes to the output and wakes the writer.
    #[inline]
    pub(super) fn send(&mut self, write: impl FnOnce(&mut BytesMut)) {
        write(&mut self.out);
        self.wake_writer();
    }

    /// Runs `f` with the output buffer apart from the rest of the connection, so a reply can be
    /// encoded while the connection's state is read and updated.
    #[inline]
    pub(super) fn with_output<R>(&mut self, f: impl FnOnce(&mut Conn, &mut BytesMut) -> R) -> R {
        let mut out = std::mem::take(&mut self.out);
        let r = f(self, &mut out);
        self.out = out;
        r
    }

    /// What this connection may still hold as output with `pending` bytes about to be added.
    #[inline]
    pub(super) fn room(&self, pending: usize) -> usize {
        self.output_limit.saturating_sub(pending + self.writing)
    }

    /// A watch event for this connection: queued at once, behind what is already queued.
    #[inline]
    pub(super) fn notify(&mut self, kind: i32, path: &str) {
        notification(&mut self.out, kind, path);
        self.wake_writer();
    }

    /// A four-letter word's answer, then the connection closes.
    pub(super) fn answer_four_letter(&mut self, text: &str) {
        four_letter_text(&mut self.out, text);
        self.close();
    }

    /// Answers everything at the head of the queue that can be answered now: writes whose
    /// reply has come, reads once the replica has applied their zxid (`applied`). `answer`
    /// runs each read into the output (`Answer::Read`) and records latencies. Returns true if
    /// a read waits for the replica to catch up.
    #[inline]
    pub(super) fn drain(
        &mut self,
        applied: i64,
        mut answer: impl FnMut(&mut Conn, &mut BytesMut, Answer<'_>),
    ) -> bool {
        let mut out = std::mem::take(&mut self.out);
        let mut waits = false;
        self.stalled = false;
        while let Some(front) = self.queue.front_mut() {
            if out.len() + self.writing >= OUTPUT_HIGH_WATER {
                // Answers wait in the queue, not in memory as output the client is slow to
                // take (hundreds of reads of a big node would otherwise all land in `out`).
                self.stalled = true;
                break;
            }
            match front {
                Pending::Write { reply: r, at, .. } => match r.take() {
                    Some(bytes) => {
                        let waited = at.elapsed();
                        out.extend_from_slice(&bytes);
                        self.queue.pop_front();
                        answer(self, &mut out, Answer::Write { waited });
                    }
                    None => break,
                },
                Pending::Read { min_zxid, .. } => {
                    if applied < *min_zxid {
                        waits = true;
                        break;
                    }
                    let Some(Pending::Read {
                        xid,
                        opcode,
                        req,
                        at,
                        ..
                    }) = self.queue.pop_front()
                    else {
                        unreachable!()
                    };
                    answer(
                        self,
                        &mut out,
                        Answer::Read {
                            xid,
                            opcode,
                            req: &req,
                            at,
                        },
                    );
                }
            }
        }
        self.out = out;
        self.wake_writer();
        if let Some(w) = self.backpressure.take() {
            w.wake();
        }
        waits
    }

    /// The writer's wait for output: what to send, and whether to close after it. Once the
    /// output overflowed, nothing (and close).
    pub(super) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<(BytesMut, bool)> {
        if self.overflowed {
            Poll::Ready((BytesMut::new(), true))
        } else if !self.out.is_empty() || self.closing {
            let buf = self.out.split();
            self.writing = buf.len();
            Poll::Ready((buf, self.closing))
        } else {
            self.writer = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// The output went over its limit: the socket is dropped unflushed.
    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Ready once the output overflows (a write blocked on a client that does not read).
    pub(super) fn poll_overflow(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.overflowed {
            Poll::Ready(())
        } else {
            self.abort = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// The writer sent what it took: wakes a reader held back by unsent output. Returns true if
    /// `drain` stopped at the high-water mark and should run again.
    pub(super) fn written(&mut self) -> bool {
        self.writing = 0;
        if let Some(w) = self.backpressure.take() {
            w.wake();
        }
        self.stalled
    }

    /// No output is waiting.
    pub(super) fn flushed(&self) -> bool {
        self.out.is_empty()
    }

    pub(super) fn closing(&self) -> bool {
        self.closing
    }

    /// Ready once the connection is closing (the reader's wait beside its read).
    pub(super) fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.closing {
            Poll::Ready(())
        } else {
            self.reader = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// Ready once the connect request is answered (or the connection closes): requests
    /// pipelined behind it wait, so they reach the write core with their session and in order.
    pub(super) fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.phase == Phase::Connecting && !self.closing {
            self.handshake = Some(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Backpressure: ready while fewer than `outstanding_max` requests are unanswered and the
    /// unsent output is under the high-water mark (or the connection is closing).
    pub(super) fn poll_room(&mut self, cx: &mut Context<'_>, outstanding_max: usize) -> Poll<()> {
        let backlog = self.queue.len() >= outstanding_max || self.output_len() >= OUTPUT_HIGH_WATER;
        if !backlog || self.closing {
            Poll::Ready(())
        } else {
            self.backpressure = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// `crst`: the counters `cons` prints back to ZooKeeper's reset values
    /// (`ServerCnxn.resetStats`).
    pub(super) fn reset_stats(&mut self) {
        self.received = 0;
        self.sent = 0;
        self.last_cxid = -1;
        self.last_zxid = -1;
        self.last_op = admin::LAST_OP_NONE;
        self.latency = admin::Latency::default();
    }

    /// This connection's line in `cons`.
    pub(super) fn info(&self) -> admin::ConnectionInfo {
        let mut info = admin::ConnectionInfo::new(self.peer, self.established_ms);
        info.outstanding_requests = self.queue.len() as u64;
        info.packets_received = self.received;
        info.packets_sent = self.sent;
        info.session_id = self.session_id as u64;
        info.last_op = self.last_op;
        info.session_timeout_ms = self.timeout_ms as u32;
        info.last_cxid = self.last_cxid as i64;
        info.last_zxid = self.last_zxid;
        info.latency = self.latency;
        info
    }

    /// Output waiting to be sent (queued, or handed to the writer).
    fn output_len(&self) -> usize {
        self.out.len() + self.writing
    }

    pub(super) fn wake_writer(&mut self) {
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

    pub(super) fn close(&mut self) {
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

pub(super) type ConnRef = Rc<RefCell<Conn>>;

pub(super) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
