//! One ZooKeeper session over a glommio TCP stream (or TLS over it, `tls.rs`): connect + handshake, buffered writes,
//! frame reads, and a serial `call` for the workloads that wait on each answer (watch fan-out,
//! lock recipe, churn). The pipelined workloads drive `out`/`read_some`/`next_frame` directly.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral::proto::{split_frame, Frame};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::stats::now_ns;
use crate::tls::Stream;
use crate::wire;

/// Largest frame we accept (ZooKeeper's default jute.maxbuffer).
pub const MAX_FRAME: usize = 0xfffff;
const READ_CHUNK: usize = 64 * 1024;

pub struct Sess {
    pub stream: Stream,
    pub rbuf: BytesMut,
    chunk: Vec<u8>,
    /// Frames waiting to be written by `flush`.
    pub out: BytesMut,
    pub session_id: i64,
    next_xid: i32,
    /// Watch notifications read while waiting for replies: (type, path, receive time).
    pub events: VecDeque<(i32, String, u64)>,
    /// Requests written (handshake included) and replies read (handshake included).
    pub sent: u64,
    pub replies: u64,
}

/// Outcome of a read with a deadline.
pub enum ReadOutcome {
    Data,
    Closed,
    TimedOut,
}

impl Sess {
    /// TCP connect, TLS handshake with `tls`, and ZooKeeper handshake, bounded by `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
        session_timeout_ms: i32,
        timeout: Duration,
    ) -> Result<Sess, String> {
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|_| "connect-failed".to_string())?;
            let _ = tcp.set_nodelay(true);
            Stream::over(tcp, addr, tls)
                .await
                .map_err(|_| "tls-handshake-failed".to_string())
        };
        let stream = futures_lite::future::or(async { Some(connect.await) }, async {
            glommio::timer::sleep(timeout).await;
            None
        })
        .await
        .ok_or_else(|| "connect-timeout".to_string())??;
        let mut s = Sess {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            chunk: vec![0; READ_CHUNK],
            out: BytesMut::with_capacity(4096),
            session_id: 0,
            next_xid: 1,
            events: VecDeque::new(),
            sent: 0,
            replies: 0,
        };
        wire::connect(&mut s.out, session_timeout_ms);
        s.sent += 1;
        s.flush()
            .await
            .map_err(|_| "connection-closed".to_string())?;
        let deadline = now_ns() + timeout.as_nanos() as u64;
        loop {
            match s.next_frame()? {
                Some(p) => {
                    s.replies += 1;
                    let (id, _t) = wire::connect_response(p)?;
                    s.session_id = id;
                    return Ok(s);
                }
                None => match s.read_until(deadline).await {
                    ReadOutcome::Data => {}
                    ReadOutcome::Closed => return Err("connection-closed".into()),
                    ReadOutcome::TimedOut => return Err("handshake-timeout".into()),
                },
            }
        }
    }

    pub fn xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        x
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let r = self.stream.write_all(&self.out).await;
            self.out.clear();
            r?;
        }
        Ok(())
    }

    /// One read into `rbuf`; false on EOF or error.
    pub async fn read_some(&mut self) -> bool {
        match self.stream.read(&mut self.chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.rbuf.extend_from_slice(&self.chunk[..n]);
                true
            }
        }
    }

    /// One read, unless `deadline` (a `now_ns` time) passes first.
    pub async fn read_until(&mut self, deadline: u64) -> ReadOutcome {
        let now = now_ns();
        if now >= deadline {
            return ReadOutcome::TimedOut;
        }
        let wait = Duration::from_nanos(deadline - now);
        let (stream, chunk) = (&mut self.stream, &mut self.chunk);
        let r = futures_lite::future::or(async { Some(stream.read(chunk).await) }, async {
            glommio::timer::sleep(wait).await;
            None
        })
        .await;
        match r {
            None => ReadOutcome::TimedOut,
            Some(Ok(0)) | Some(Err(_)) => ReadOutcome::Closed,
            Some(Ok(n)) => {
                self.rbuf.extend_from_slice(&self.chunk[..n]);
                ReadOutcome::Data
            }
        }
    }

    /// The next complete frame in `rbuf`, if any.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, String> {
        match split_frame(&mut self.rbuf, MAX_FRAME) {
            Frame::Payload(p) => Ok(Some(p)),
            Frame::Incomplete => Ok(None),
            Frame::TooLarge(_) => Err("bad-frame".into()),
        }
    }

    /// Sends one request built by `build(out, xid)` and waits for its reply; notifications that
    /// arrive meanwhile go to `events`.
    pub async fn call(
        &mut self,
        deadline: u64,
        build: impl FnOnce(&mut BytesMut, i32),
    ) -> Result<wire::Reply, String> {
        let xid = self.xid();
        build(&mut self.out, xid);
        self.sent += 1;
        self.flush()
            .await
            .map_err(|_| "connection-closed".to_string())?;
        loop {
            while let Some(p) = self.next_frame()? {
                let mut r = wire::reply(p)?;
                match r.xid {
                    -1 => {
                        let (typ, path) = wire::event(&mut r.body)?;
                        self.events.push_back((typ, path, now_ns()));
                    }
                    -2 => {}
                    x if x == xid => {
                        self.replies += 1;
                        return Ok(r);
                    }
                    _ => return Err("xid-mismatch".into()),
                }
            }
            match self.read_until(deadline).await {
                ReadOutcome::Data => {}
                ReadOutcome::Closed => return Err("connection-closed".into()),
                ReadOutcome::TimedOut => return Err("timeout".into()),
            }
        }
    }

    /// Waits for a notification until `deadline`; None on timeout.
    pub async fn next_event(
        &mut self,
        deadline: u64,
    ) -> Result<Option<(i32, String, u64)>, String> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            while let Some(p) = self.next_frame()? {
                let mut r = wire::reply(p)?;
                match r.xid {
                    -1 => {
                        let (typ, path) = wire::event(&mut r.body)?;
                        self.events.push_back((typ, path, now_ns()));
                    }
                    -2 => {}
                    _ => return Err("unexpected-reply".into()),
                }
            }
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            match self.read_until(deadline).await {
                ReadOutcome::Data => {}
                ReadOutcome::Closed => return Err("connection-closed".into()),
                ReadOutcome::TimedOut => return Ok(None),
            }
        }
    }

    /// Sends a ping (keeps an idle session alive); its reply is skipped by the readers.
    pub async fn ping(&mut self) -> Result<(), String> {
        wire::ping(&mut self.out);
        self.flush()
            .await
            .map_err(|_| "connection-closed".to_string())
    }

    /// closeSession and wait (bounded) for its reply and the server's close.
    pub async fn close(&mut self, deadline: u64) -> Result<(), String> {
        let r = self.call(deadline, wire::close_session).await?;
        if r.err != 0 {
            return Err(wire::code_name(r.err));
        }
        // The server closes after answering; wait for it so TIME_WAIT lands on its side.
        let until = deadline.min(now_ns() + 1_000_000_000);
        while let ReadOutcome::Data = self.read_until(until).await {
            self.rbuf.clear();
        }
        Ok(())
    }
}
