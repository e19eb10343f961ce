//! A minimal raw ZooKeeper wire-protocol client (jute encoding over TCP),
//! for things the `zookeeper-client` crate hides: exact error codes, the
//! layout of failed multi results, the order of frames on the wire,
//! removeWatches/checkWatches, bad session passwords, malformed input.
//!
//! Framing: every packet is a 4-byte big-endian length followed by the body.
//! Request body = RequestHeader(xid i32, type i32) + record.
//! Reply body   = ReplyHeader(xid i32, zxid i64, err i32) + record.
//! Notifications arrive with xid -1, pings are xid -2.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

pub mod err {
    pub const OK: i32 = 0;
    pub const SYSTEM_ERROR: i32 = -1;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const DATA_INCONSISTENCY: i32 = -3;
    pub const CONNECTION_LOSS: i32 = -4;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const OPERATION_TIMEOUT: i32 = -7;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const UNKNOWN_SESSION: i32 = -12;
    pub const API_ERROR: i32 = -100;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_CALLBACK: i32 = -113;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
    pub const SESSION_MOVED: i32 = -118;
    pub const NOT_READONLY: i32 = -119;
    pub const EPHEMERAL_ON_LOCAL_SESSION: i32 = -120;
    pub const NO_WATCHER: i32 = -121;
    pub const RECONFIG_DISABLED: i32 = -123;
    pub const QUOTA_EXCEEDED: i32 = -125;
    pub const THROTTLED: i32 = -127;
}

/// Watcher types for checkWatches/removeWatches.
pub mod watcher_type {
    pub const CHILDREN: i32 = 1;
    pub const DATA: i32 = 2;
    pub const ANY: i32 = 3;
}

/// Event types in notifications.
pub mod event {
    pub const NONE: i32 = -1;
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
}

pub const PERM_READ: i32 = 1;
pub const PERM_WRITE: i32 = 2;
pub const PERM_CREATE: i32 = 4;
pub const PERM_DELETE: i32 = 8;
pub const PERM_ADMIN: i32 = 16;
pub const PERM_ALL: i32 = 31;

/// Jute encoder.
#[derive(Default, Clone, Debug)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn new() -> Self {
        Enc(Vec::new())
    }
    pub fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(mut self, v: bool) -> Self {
        self.0.push(v as u8);
        self
    }
    pub fn str(self, s: &str) -> Self {
        self.buf(Some(s.as_bytes()))
    }
    pub fn buf(mut self, b: Option<&[u8]>) -> Self {
        match b {
            None => self.i32(-1),
            Some(b) => {
                self = self.i32(b.len() as i32);
                self.0.extend_from_slice(b);
                self
            }
        }
    }
    pub fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// ACL vector: [(perms, scheme, id)].
    pub fn acls(mut self, acls: &[(i32, &str, &str)]) -> Self {
        self = self.i32(acls.len() as i32);
        for (perms, scheme, id) in acls {
            self = self.i32(*perms).str(scheme).str(id);
        }
        self
    }
    pub fn strs(mut self, v: &[&str]) -> Self {
        self = self.i32(v.len() as i32);
        for s in v {
            self = self.str(s);
        }
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

pub const OPEN_ACL: &[(i32, &str, &str)] = &[(PERM_ALL, "world", "anyone")];

/// Jute decoder.
pub struct Dec<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Dec { b, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    pub fn i32(&mut self) -> i32 {
        let v = i32::from_be_bytes(self.b[self.pos..self.pos + 4].try_into().unwrap());
        self.pos += 4;
        v
    }
    pub fn i64(&mut self) -> i64 {
        let v = i64::from_be_bytes(self.b[self.pos..self.pos + 8].try_into().unwrap());
        self.pos += 8;
        v
    }
    pub fn bool(&mut self) -> bool {
        let v = self.b[self.pos] != 0;
        self.pos += 1;
        v
    }
    pub fn buf(&mut self) -> Option<Vec<u8>> {
        let n = self.i32();
        if n < 0 {
            return None;
        }
        let v = self.b[self.pos..self.pos + n as usize].to_vec();
        self.pos += n as usize;
        Some(v)
    }
    pub fn str(&mut self) -> String {
        String::from_utf8(self.buf().unwrap_or_default()).unwrap()
    }
    pub fn strs(&mut self) -> Vec<String> {
        let n = self.i32();
        (0..n.max(0)).map(|_| self.str()).collect()
    }
    pub fn stat(&mut self) -> Stat {
        Stat {
            czxid: self.i64(),
            mzxid: self.i64(),
            ctime: self.i64(),
            mtime: self.i64(),
            version: self.i32(),
            cversion: self.i32(),
            aversion: self.i32(),
            ephemeral_owner: self.i64(),
            data_length: self.i32(),
            num_children: self.i32(),
            pzxid: self.i64(),
        }
    }
    pub fn acls(&mut self) -> Vec<(i32, String, String)> {
        let n = self.i32();
        (0..n.max(0))
            .map(|_| {
                let p = self.i32();
                let s = self.str();
                let i = self.str();
                (p, s, i)
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

#[derive(Clone, Debug)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub read_only: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn dec(&self) -> Dec<'_> {
        Dec::new(&self.body)
    }
    /// For notifications (xid -1): (event type, keeper state, path).
    pub fn event(&self) -> (i32, i32, String) {
        let mut d = self.dec();
        (d.i32(), d.i32(), d.str())
    }
}

/// Encodes a framed connect request.
pub fn connect_request(
    last_zxid: i64,
    timeout_ms: i32,
    session_id: i64,
    password: &[u8],
    read_only: bool,
) -> Vec<u8> {
    Enc::new()
        .i32(0)
        .i64(last_zxid)
        .i32(timeout_ms)
        .i64(session_id)
        .buf(Some(password))
        .bool(read_only)
        .finish()
}

/// A create request's body with the open ACL.
pub fn create_body(path: &str, data: &[u8], flags: i32) -> Vec<u8> {
    Enc::new()
        .str(path)
        .buf(Some(data))
        .acls(OPEN_ACL)
        .i32(flags)
        .finish()
}

pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

pub async fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = i32::from_be_bytes(len);
    if !(0..=64 * 1024 * 1024).contains(&n) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {n}"),
        ));
    }
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body).await?;
    Ok(body)
}

pub fn parse_connect_response(body: &[u8]) -> ConnectResponse {
    let mut d = Dec::new(body);
    let protocol_version = d.i32();
    let timeout = d.i32();
    let session_id = d.i64();
    let password = d.buf().unwrap_or_default();
    let read_only = if d.remaining() >= 1 {
        Some(d.bool())
    } else {
        None
    };
    ConnectResponse {
        protocol_version,
        timeout,
        session_id,
        password,
        read_only,
    }
}

/// Performs a raw handshake; returns the stream and the server's response.
pub async fn handshake(
    addr: &str,
    timeout_ms: i32,
    session_id: i64,
    password: &[u8],
) -> io::Result<(TcpStream, ConnectResponse)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(&frame(&connect_request(
        0, timeout_ms, session_id, password, false,
    )))
    .await?;
    let body = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut s))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no connect response"))??;
    Ok((s, parse_connect_response(&body)))
}

pub struct RawConn {
    pub stream: TcpStream,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub timeout: i32,
    next_xid: i32,
    /// Frames received while waiting for a specific reply (notifications etc.).
    pub stash: VecDeque<Reply>,
    /// Bytes read but not yet framed (keeps `recv_timeout` cancel-safe).
    rbuf: Vec<u8>,
}

impl RawConn {
    /// New session with the requested timeout.
    pub async fn connect(addr: &str, timeout_ms: i32) -> io::Result<RawConn> {
        let (stream, resp) = handshake(addr, timeout_ms, 0, &[0u8; 16]).await?;
        if resp.session_id == 0 {
            return Err(io::Error::other("server refused new session"));
        }
        Ok(RawConn {
            stream,
            session_id: resp.session_id,
            password: resp.password,
            timeout: resp.timeout,
            next_xid: 1,
            stash: VecDeque::new(),
            rbuf: Vec::new(),
        })
    }

    /// A connection whose handshake was done by hand.
    pub fn from_stream(stream: TcpStream, resp: &ConnectResponse) -> RawConn {
        RawConn {
            stream,
            session_id: resp.session_id,
            password: resp.password.clone(),
            timeout: resp.timeout,
            next_xid: 1,
            stash: VecDeque::new(),
            rbuf: Vec::new(),
        }
    }

    /// Re-attaches to an existing session.
    pub async fn reattach(
        addr: &str,
        timeout_ms: i32,
        session_id: i64,
        password: &[u8],
    ) -> io::Result<(RawConn, ConnectResponse)> {
        let (stream, resp) = handshake(addr, timeout_ms, session_id, password).await?;
        Ok((RawConn::from_stream(stream, &resp), resp))
    }

    pub fn next_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid += 1;
        x
    }

    /// Sends a request with an explicit xid.
    pub async fn send_xid(&mut self, xid: i32, opcode: i32, body: &[u8]) -> io::Result<()> {
        let payload = Enc::new().i32(xid).i32(opcode).raw(body).finish();
        self.stream.write_all(&frame(&payload)).await
    }

    /// Sends a request, returning its xid.
    pub async fn send(&mut self, opcode: i32, body: &[u8]) -> io::Result<i32> {
        let xid = self.next_xid();
        self.send_xid(xid, opcode, body).await?;
        Ok(xid)
    }

    /// Next frame from the wire (bounded by 10 s).
    pub async fn recv(&mut self) -> io::Result<Reply> {
        self.recv_timeout(Duration::from_secs(10)).await
    }

    pub async fn recv_timeout(&mut self, d: Duration) -> io::Result<Reply> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if self.rbuf.len() >= 4 {
                let n = i32::from_be_bytes(self.rbuf[..4].try_into().unwrap());
                if n < 16 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad reply length {n}"),
                    ));
                }
                let n = n as usize;
                if self.rbuf.len() >= 4 + n {
                    let body: Vec<u8> = self.rbuf.drain(..4 + n).skip(4).collect();
                    let mut dd = Dec::new(&body);
                    let xid = dd.i32();
                    let zxid = dd.i64();
                    let err = dd.i32();
                    return Ok(Reply {
                        xid,
                        zxid,
                        err,
                        body: body[16..].to_vec(),
                    });
                }
            }
            self.rbuf.reserve(64 * 1024);
            // `read_buf` is cancel-safe: on timeout nothing has been consumed.
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no frame")),
                Ok(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Collects notifications (event type, path) arriving within `d`
    /// (including ones already stashed); other frames are stashed.
    pub async fn events_for(&mut self, d: Duration) -> Vec<(i32, String)> {
        let mut out: Vec<(i32, String)> = self
            .notifications()
            .iter()
            .map(|n| {
                let (t, _, p) = n.event();
                (t, p)
            })
            .collect();
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.recv_timeout(left).await {
                Ok(r) if r.xid == -1 => {
                    let (t, _, p) = r.event();
                    out.push((t, p));
                }
                Ok(r) => self.stash.push_back(r),
                Err(_) => return out,
            }
        }
    }

    /// Sends a request and waits for the reply with the same xid; other
    /// frames (notifications, pings) are stashed.
    pub async fn call(&mut self, opcode: i32, body: &[u8]) -> io::Result<Reply> {
        self.call_within(Duration::from_secs(10), opcode, body)
            .await
    }

    /// [`RawConn::call`] waiting up to `d` for each frame (large replies from a debug build).
    pub async fn call_within(
        &mut self,
        d: Duration,
        opcode: i32,
        body: &[u8],
    ) -> io::Result<Reply> {
        let xid = self.send(opcode, body).await?;
        loop {
            let r = self.recv_timeout(d).await?;
            if r.xid == xid {
                return Ok(r);
            }
            self.stash.push_back(r);
        }
    }

    pub fn notifications(&mut self) -> Vec<Reply> {
        let (n, rest): (Vec<Reply>, Vec<Reply>) = self.stash.drain(..).partition(|r| r.xid == -1);
        self.stash.extend(rest);
        n
    }

    pub async fn ping(&mut self) -> io::Result<Reply> {
        self.send_xid(-2, op::PING, &[]).await?;
        loop {
            let r = self.recv().await?;
            if r.xid == -2 {
                return Ok(r);
            }
            self.stash.push_back(r);
        }
    }

    // -- convenience wrappers returning (err, decoded) -------------------

    pub async fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Reply {
        let body = create_body(path, data, flags);
        self.call(op::CREATE, &body).await.expect("create")
    }

    pub async fn create2(&mut self, path: &str, data: &[u8], flags: i32) -> Reply {
        let body = create_body(path, data, flags);
        self.call(op::CREATE2, &body).await.expect("create2")
    }

    pub async fn delete(&mut self, path: &str, version: i32) -> Reply {
        self.call(op::DELETE, &Enc::new().str(path).i32(version).finish())
            .await
            .expect("delete")
    }

    pub async fn get_data(&mut self, path: &str, watch: bool) -> Reply {
        self.call(op::GET_DATA, &Enc::new().str(path).bool(watch).finish())
            .await
            .expect("getData")
    }

    pub async fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Reply {
        self.call(
            op::SET_DATA,
            &Enc::new().str(path).buf(Some(data)).i32(version).finish(),
        )
        .await
        .expect("setData")
    }

    pub async fn exists(&mut self, path: &str, watch: bool) -> Reply {
        self.call(op::EXISTS, &Enc::new().str(path).bool(watch).finish())
            .await
            .expect("exists")
    }

    pub async fn get_children(&mut self, path: &str, watch: bool) -> Reply {
        self.call(op::GET_CHILDREN, &Enc::new().str(path).bool(watch).finish())
            .await
            .expect("getChildren")
    }

    pub async fn check_watches(&mut self, path: &str, kind: i32) -> Reply {
        self.call(op::CHECK_WATCHES, &Enc::new().str(path).i32(kind).finish())
            .await
            .expect("checkWatches")
    }

    pub async fn remove_watches(&mut self, path: &str, kind: i32) -> Reply {
        self.call(op::REMOVE_WATCHES, &Enc::new().str(path).i32(kind).finish())
            .await
            .expect("removeWatches")
    }

    pub async fn close_session(&mut self) -> Reply {
        self.call(op::CLOSE_SESSION, &[])
            .await
            .expect("closeSession")
    }
}

/// One op of a raw multi request.
pub enum MultiOp<'a> {
    Create {
        path: &'a str,
        data: &'a [u8],
        flags: i32,
    },
    Delete {
        path: &'a str,
        version: i32,
    },
    SetData {
        path: &'a str,
        data: &'a [u8],
        version: i32,
    },
    Check {
        path: &'a str,
        version: i32,
    },
}

/// Encodes a multi request body: (MultiHeader + op)* + MultiHeader(-1, true, -1).
pub fn multi_body(ops: &[MultiOp]) -> Vec<u8> {
    let mut e = Enc::new();
    for o in ops {
        e = match o {
            MultiOp::Create { path, data, flags } => e
                .i32(op::CREATE)
                .bool(false)
                .i32(-1)
                .str(path)
                .buf(Some(data))
                .acls(OPEN_ACL)
                .i32(*flags),
            MultiOp::Delete { path, version } => e
                .i32(op::DELETE)
                .bool(false)
                .i32(-1)
                .str(path)
                .i32(*version),
            MultiOp::SetData {
                path,
                data,
                version,
            } => e
                .i32(op::SET_DATA)
                .bool(false)
                .i32(-1)
                .str(path)
                .buf(Some(data))
                .i32(*version),
            MultiOp::Check { path, version } => {
                e.i32(op::CHECK).bool(false).i32(-1).str(path).i32(*version)
            }
        };
    }
    e.i32(-1).bool(true).i32(-1).finish()
}

/// One decoded multi result: (type, err) with err only meaningful for type -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create(String),
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    Error(i32),
    GetData(Vec<u8>, Stat),
    GetChildren(Vec<String>),
}

pub fn parse_multi(body: &[u8]) -> Vec<MultiResult> {
    let mut d = Dec::new(body);
    let mut out = Vec::new();
    loop {
        let t = d.i32();
        let done = d.bool();
        let e = d.i32();
        if done {
            break;
        }
        let r = match t {
            op::CREATE => MultiResult::Create(d.str()),
            op::CREATE2 => {
                let p = d.str();
                MultiResult::Create2(p, d.stat())
            }
            op::DELETE => MultiResult::Delete,
            op::SET_DATA => MultiResult::SetData(d.stat()),
            op::CHECK => MultiResult::Check,
            op::GET_DATA => {
                let data = d.buf().unwrap_or_default();
                MultiResult::GetData(data, d.stat())
            }
            op::GET_CHILDREN => MultiResult::GetChildren(d.strs()),
            op::ERROR => {
                let _ = e;
                MultiResult::Error(d.i32())
            }
            other => panic!("unexpected multi result type {other}"),
        };
        out.push(r);
    }
    out
}
