//! A client connection's state on its shard (`Conn`): phase, session, auth ids, the queue of
//! unanswered requests, the output buffer and the wakers of the tasks that serve it (serve.rs).
//!
//! Backpressure lives here and in serve.rs: reading pauses while too many requests of the
//! connection are unanswered or too much of its output is unsent, and a connection whose
//! notifications pile past `corral.clientOutputLimit` is closed (docs/decisions.md, "Slow and
//! stalled readers").

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;
use tracing::warn;

use crate::admin;
use crate::proto::records::Request;
use crate::watch::ConnId;

pub(super) enum Pending {
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
pub(super) enum Phase {
    Handshake,
    Connecting,
    Attached,
}

pub(super) struct Conn {
    pub(super) id: ConnId,
    pub(super) peer: SocketAddr,
    pub(super) phase: Phase,
    pub(super) session_id: i64,
    pub(super) timeout_ms: i32,
    /// Whether the connect request carried the readOnly flag: the response echoes its shape.
    pub(super) read_only_flag: Option<bool>,
    pub(super) ids: Arc<Vec<crate::proto::records::Id>>,
    pub(super) queue: VecDeque<Pending>,
    pub(super) out: BytesMut,
    /// Bytes the writer took from `out` and has not yet seen written.
    pub(super) writing: usize,
    /// `corral.clientOutputLimit`: `out` + `writing` above this closes the connection.
    pub(super) output_limit: usize,
    /// The output went over `output_limit`: the writer drops what is unsent and closes.
    pub(super) overflowed: bool,
    pub(super) writer: Option<Waker>,
    /// The writer, blocked in a write, waiting to be told of an overflow.
    pub(super) abort: Option<Waker>,
    /// `drain` stopped at the output high-water mark with answers still queued: the writer
    /// resumes it once the client has taken some output.
    pub(super) stalled: bool,
    pub(super) reader: Option<Waker>,
    /// The reader, parked until the handshake is answered.
    pub(super) handshake: Option<Waker>,
    /// The reader, parked while too many requests of this connection are outstanding.
    pub(super) backpressure: Option<Waker>,
    /// Flush `out`, then close.
    pub(super) closing: bool,
    // counters for `cons`
    pub(super) received: u64,
    pub(super) sent: u64,
    pub(super) last_cxid: i32,
    pub(super) last_zxid: i64,
    pub(super) last_op: &'static str,
    pub(super) established_ms: u64,
    pub(super) latency: admin::Latency,
}

impl Conn {
    /// Output waiting to be sent (queued, or handed to the writer).
    pub(super) fn output_len(&self) -> usize {
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
