//! Client protocol records: the connect handshake, request decoding by opcode, and the reply
//! bodies the server encodes. Layouts follow ZooKeeper's `zookeeper.jute`.
//!
//! Grammar (all big-endian, after the 4-byte frame length):
//! ```text
//! connect-request  = protocolVersion:i32 lastZxidSeen:i64 timeOut:i32 sessionId:i64 passwd:buffer [readOnly:bool]
//! connect-response = protocolVersion:i32 timeOut:i32 sessionId:i64 passwd:buffer readOnly:bool
//! request          = xid:i32 type:i32 body
//! reply            = xid:i32 zxid:i64 err:i32 [body, only when err = 0]
//! multi-body       = *(type:i32 done:bool(false) err:i32 op) (-1:i32 true:bool -1:i32)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::codes::{op, watch_mode, watcher_type, Code};
use super::jute::{DecodeError, DecodeResult, Reader, Writer};

/// `Stat`: the metadata every znode carries, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

impl Stat {
    pub fn encode(&self, b: &mut BytesMut) {
        b.put_i64(self.czxid);
        b.put_i64(self.mzxid);
        b.put_i64(self.ctime);
        b.put_i64(self.mtime);
        b.put_i32(self.version);
        b.put_i32(self.cversion);
        b.put_i32(self.aversion);
        b.put_i64(self.ephemeral_owner);
        b.put_i32(self.data_length);
        b.put_i32(self.num_children);
        b.put_i64(self.pzxid);
    }

    pub fn decode(r: &mut Reader) -> DecodeResult<Stat> {
        Ok(Stat {
            czxid: r.i64()?,
            mzxid: r.i64()?,
            ctime: r.i64()?,
            mtime: r.i64()?,
            version: r.i32()?,
            cversion: r.i32()?,
            aversion: r.i32()?,
            ephemeral_owner: r.i64()?,
            data_length: r.i32()?,
            num_children: r.i32()?,
            pzxid: r.i64()?,
        })
    }
}

/// An identity: `scheme:id` (`world:anyone`, `digest:user:hash`, `ip:10.0.0.0/8`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_string(),
            id: id.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn encode_list(acl: &[Acl], b: &mut BytesMut) {
        b.put_i32(acl.len() as i32);
        for a in acl {
            b.put_i32(a.perms);
            b.put_jstring(&a.id.scheme);
            b.put_jstring(&a.id.id);
        }
    }

    pub fn decode_list(r: &mut Reader) -> DecodeResult<Vec<Acl>> {
        let n = r.vec_len(12)?;
        (0..n)
            .map(|_| {
                Ok(Acl {
                    perms: r.i32()?,
                    id: Id {
                        scheme: r.string_lossy()?,
                        id: r.string_lossy()?,
                    },
                })
            })
            .collect()
    }

    /// `world:anyone` with all permissions (`Ids.OPEN_ACL_UNSAFE`).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: super::codes::perms::ALL,
            id: Id::new("world", "anyone"),
        }]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    /// None when the client did not send the flag (clients older than 3.4).
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(payload: Bytes) -> DecodeResult<ConnectRequest> {
        let mut r = Reader::new(payload);
        let mut c = ConnectRequest {
            protocol_version: r.i32()?,
            last_zxid_seen: r.i64()?,
            timeout_ms: r.i32()?,
            session_id: r.i64()?,
            passwd: r.buffer()?,
            read_only: None,
        };
        if r.remaining() >= 1 {
            c.read_only = Some(r.bool()?);
        }
        Ok(c)
    }

    pub fn encode(&self, b: &mut BytesMut) {
        b.put_i32(self.protocol_version);
        b.put_i64(self.last_zxid_seen);
        b.put_i32(self.timeout_ms);
        b.put_i64(self.session_id);
        b.put_jbuffer(&self.passwd);
        if let Some(ro) = self.read_only {
            b.put_jbool(ro);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: [u8; 16],
    /// Sent only to clients whose request carried the flag (pre-3.4 clients get none).
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn encode(&self, b: &mut BytesMut) {
        b.put_i32(self.protocol_version);
        b.put_i32(self.timeout_ms);
        b.put_i64(self.session_id);
        b.put_jbuffer(&self.passwd);
        if let Some(ro) = self.read_only {
            b.put_jbool(ro);
        }
    }

    /// The answer to a reconnect with an unknown session or a wrong password: ZooKeeper sends
    /// timeout 0 and session 0, which clients read as "session expired", then closes.
    pub fn expired(read_only: Option<bool>) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: [0; 16],
            read_only: read_only.map(|_| false),
        }
    }
}

/// One operation inside a `multi` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// One operation inside a `multiRead` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetChildren { path: String },
    GetData { path: String },
}

/// Any of create/create2/createContainer/createTTL, normalised. `opcode` is kept because the
/// reply shape depends on it (create answers a path, the others a path and a stat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub opcode: i32,
    pub path: String,
    /// None when the client sent null data (length -1), which reads back as null.
    pub data: Option<Bytes>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// -1 unless opcode is createTTL.
    pub ttl: i64,
}

/// A decoded client request (after the request header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    Reconfig,
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    DeleteContainer {
        path: String,
    },
    Auth {
        scheme: String,
        auth: Bytes,
    },
    SetWatches(SetWatches),
    /// GetSASLRequest: the client's token (null is kept apart: ZooKeeper answers it oddly).
    Sasl {
        token: Option<Bytes>,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The opcode is not one ZooKeeper defines for clients: ZooKeeper answers `Unimplemented`.
    UnknownOpcode(i32),
    /// The body is malformed: ZooKeeper closes the connection.
    Malformed(DecodeError),
}

impl From<DecodeError> for RequestError {
    fn from(e: DecodeError) -> Self {
        RequestError::Malformed(e)
    }
}

fn create_body(r: &mut Reader, opcode: i32) -> DecodeResult<CreateRequest> {
    let path = r.path()?;
    let data = r.buffer_opt()?;
    let acl = Acl::decode_list(r)?;
    let flags = r.i32()?;
    let ttl = if opcode == op::CREATE_TTL {
        r.i64()?
    } else {
        -1
    };
    Ok(CreateRequest {
        opcode,
        path,
        data,
        acl,
        flags,
        ttl,
    })
}

impl Request {
    /// Decodes a request body for `opcode`.
    pub fn decode(opcode: i32, r: &mut Reader) -> Result<Request, RequestError> {
        Ok(match opcode {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Request::Create(create_body(r, opcode)?)
            }
            op::DELETE => Request::Delete {
                path: r.path()?,
                version: r.i32()?,
            },
            op::EXISTS => Request::Exists {
                path: r.path()?,
                watch: r.bool()?,
            },
            op::GET_DATA => Request::GetData {
                path: r.path()?,
                watch: r.bool()?,
            },
            // A null path reaches ZooKeeper's validatePath, which answers BadArguments as for "".
            op::SET_DATA => Request::SetData {
                path: r.string_lossy()?,
                data: r.buffer_opt()?,
                version: r.i32()?,
            },
            op::GET_ACL => Request::GetAcl { path: r.path()? },
            op::SET_ACL => Request::SetAcl {
                path: r.string_lossy()?,
                acl: Acl::decode_list(r)?,
                version: r.i32()?,
            },
            op::GET_CHILDREN | op::GET_CHILDREN2 => Request::GetChildren {
                path: r.path()?,
                watch: r.bool()?,
                with_stat: opcode == op::GET_CHILDREN2,
            },
            op::SYNC => Request::Sync {
                path: r.string_lossy()?,
            },
            op::PING => Request::Ping,
            op::CHECK => Request::Check {
                path: r.string_lossy()?,
                version: r.i32()?,
            },
            op::MULTI => Request::Multi(decode_multi(r)?),
            op::MULTI_READ => Request::MultiRead(decode_multi_read(r)?),
            op::RECONFIG => Request::Reconfig,
            op::CHECK_WATCHES | op::REMOVE_WATCHES => {
                // ZooKeeper 3.9 looks a null path up in a HashMap: no watch, NoWatcher.
                let path = r.string_lossy()?;
                let kind = r.i32()?;
                if !(watcher_type::CHILDREN..=watcher_type::PERSISTENT_RECURSIVE).contains(&kind) {
                    // `WatcherType.fromInt` throws; ZooKeeper answers MarshallingError.
                    return Err(DecodeError::Invalid("unknown watcher type").into());
                }
                if opcode == op::CHECK_WATCHES {
                    Request::CheckWatches { path, kind }
                } else {
                    Request::RemoveWatches { path, kind }
                }
            }
            op::DELETE_CONTAINER => Request::DeleteContainer { path: r.path()? },
            op::AUTH => {
                let _type = r.i32()?;
                Request::Auth {
                    scheme: r.string_lossy()?,
                    auth: r.buffer()?,
                }
            }
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let mut w = SetWatches {
                    relative_zxid: r.i64()?,
                    data: r.strings_lossy()?,
                    exist: r.strings_lossy()?,
                    child: r.strings_lossy()?,
                    ..SetWatches::default()
                };
                if opcode == op::SET_WATCHES2 {
                    w.persistent = r.strings_lossy()?;
                    w.persistent_recursive = r.strings_lossy()?;
                }
                Request::SetWatches(w)
            }
            op::SASL => Request::Sasl {
                token: r.buffer_opt()?,
            },
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.string_lossy()?,
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: r.path()? },
            op::ADD_WATCH => {
                let path = r.string_lossy()?;
                let mode = r.i32()?;
                if mode != watch_mode::PERSISTENT && mode != watch_mode::PERSISTENT_RECURSIVE {
                    // `WatcherMode.fromZooDef` throws; ZooKeeper answers MarshallingError.
                    return Err(DecodeError::Invalid("unknown watch mode").into());
                }
                Request::AddWatch { path, mode }
            }
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            other => return Err(RequestError::UnknownOpcode(other)),
        })
    }

    /// Whether carrying it out may create an ephemeral node (a create, or a multi with one):
    /// what a local session cannot do without becoming global.
    pub fn creates_ephemeral(&self) -> bool {
        let ephemeral = |c: &CreateRequest| {
            super::codes::CreateMode::from_flags(c.flags).is_some_and(|m| m.is_ephemeral())
        };
        match self {
            Request::Create(c) => ephemeral(c),
            Request::Multi(ops) => ops
                .iter()
                .any(|op| matches!(op, MultiOp::Create(c) if ephemeral(c))),
            _ => false,
        }
    }

    /// True for requests that change state and so go through the write core.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::DeleteContainer { .. }
                | Request::CloseSession
                | Request::Sync { .. }
                | Request::Reconfig
        )
    }
}

/// Every op's path is read with [`Reader::path`]: ZooKeeper looks each one up before prepping
/// any op, so one null path fails the whole multi with MarshallingError.
fn decode_multi(r: &mut Reader) -> DecodeResult<Vec<MultiOp>> {
    let mut ops = Vec::new();
    loop {
        let typ = r.i32()?;
        let done = r.bool()?;
        let _err = r.i32()?;
        if done {
            return Ok(ops);
        }
        ops.push(match typ {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                MultiOp::Create(create_body(r, typ)?)
            }
            op::DELETE => MultiOp::Delete {
                path: r.path()?,
                version: r.i32()?,
            },
            op::SET_DATA => MultiOp::SetData {
                path: r.path()?,
                data: r.buffer_opt()?,
                version: r.i32()?,
            },
            op::CHECK => MultiOp::Check {
                path: r.path()?,
                version: r.i32()?,
            },
            _ => return Err(DecodeError::Invalid("unknown op in multi")),
        });
    }
}

fn decode_multi_read(r: &mut Reader) -> DecodeResult<Vec<ReadOp>> {
    let mut ops = Vec::new();
    loop {
        let typ = r.i32()?;
        let done = r.bool()?;
        let _err = r.i32()?;
        if done {
            return Ok(ops);
        }
        ops.push(match typ {
            op::GET_CHILDREN => {
                let path = r.path()?;
                let _watch = r.bool()?;
                ReadOp::GetChildren { path }
            }
            op::GET_DATA => {
                let path = r.path()?;
                let _watch = r.bool()?;
                ReadOp::GetData { path }
            }
            _ => return Err(DecodeError::Invalid("unknown op in multiRead")),
        });
    }
}

/// Writes a reply header.
pub fn put_reply_header(b: &mut BytesMut, xid: i32, zxid: i64, err: Code) {
    b.put_i32(xid);
    b.put_i64(zxid);
    b.put_i32(err.as_i32());
}

/// Writes the header of one multi result entry.
pub fn put_multi_header(b: &mut BytesMut, typ: i32, done: bool, err: i32) {
    b.put_i32(typ);
    b.put_jbool(done);
    b.put_i32(err);
}

/// Writes a watch notification body (`WatcherEvent`).
pub fn put_watcher_event(b: &mut BytesMut, typ: i32, state: i32, path: &str) {
    b.put_i32(typ);
    b.put_i32(state);
    b.put_jstring(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_multi_request() {
        let mut b = BytesMut::new();
        put_multi_header(&mut b, op::CREATE, false, -1);
        b.put_jstring("/a");
        b.put_jbuffer(b"x");
        Acl::encode_list(&Acl::open_unsafe(), &mut b);
        b.put_i32(0);
        put_multi_header(&mut b, op::CHECK, false, -1);
        b.put_jstring("/a");
        b.put_i32(3);
        put_multi_header(&mut b, -1, true, -1);
        let req = Request::decode(op::MULTI, &mut Reader::new(b.freeze())).unwrap();
        match req {
            Request::Multi(ops) => {
                assert_eq!(ops.len(), 2);
                assert!(matches!(&ops[0], MultiOp::Create(c) if c.path == "/a" && c.ttl == -1));
                assert_eq!(
                    ops[1],
                    MultiOp::Check {
                        path: "/a".into(),
                        version: 3
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_opcode_is_distinguished_from_malformed() {
        let empty = || Reader::new(Bytes::new());
        assert_eq!(
            Request::decode(77, &mut empty()),
            Err(RequestError::UnknownOpcode(77))
        );
        assert_eq!(
            Request::decode(op::GET_DATA, &mut empty()),
            Err(RequestError::Malformed(DecodeError::Truncated))
        );
    }

    #[test]
    fn connect_request_without_read_only_flag() {
        let c = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            timeout_ms: 30000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(true),
        };
        let mut b = BytesMut::new();
        c.encode(&mut b);
        assert_eq!(ConnectRequest::decode(b.clone().freeze()).unwrap(), c);
        b.truncate(b.len() - 1);
        let old = ConnectRequest::decode(b.freeze()).unwrap();
        assert_eq!(old.read_only, None);
    }
}
