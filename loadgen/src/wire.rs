//! Client-side framing on top of corral's codec (`corral::proto`): request encoders, the reply
//! header, notifications, and error-code names. Pure: no I/O.

use bytes::{BufMut, Bytes, BytesMut};
use corral::proto::codes::op;
use corral::proto::jute::{Reader, Writer};
use corral::proto::records::{Acl, ConnectRequest};
use corral::proto::{finish_frame, start_frame};

/// `world:anyone` with all permissions, encoded once.
pub fn open_acl() -> Bytes {
    let mut b = BytesMut::new();
    Acl::encode_list(&Acl::open_unsafe(), &mut b);
    b.freeze()
}

pub fn connect(out: &mut BytesMut, timeout_ms: i32) {
    let at = start_frame(out);
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    }
    .encode(out);
    finish_frame(out, at);
}

/// The session id and negotiated timeout from a connect response; a zero timeout is ZooKeeper's
/// "session expired / refused".
pub fn connect_response(p: Bytes) -> Result<(i64, i32), String> {
    let mut r = Reader::new(p);
    let _proto = r.i32().map_err(|e| e.to_string())?;
    let timeout = r.i32().map_err(|e| e.to_string())?;
    let session = r.i64().map_err(|e| e.to_string())?;
    if timeout <= 0 {
        return Err("session-refused".into());
    }
    Ok((session, timeout))
}

fn header(out: &mut BytesMut, xid: i32, opcode: i32) -> usize {
    let at = start_frame(out);
    out.put_i32(xid);
    out.put_i32(opcode);
    at
}

/// getData / exists / getChildren: path + watch flag.
pub fn read_req(out: &mut BytesMut, xid: i32, opcode: i32, path: &str, watch: bool) {
    let at = header(out, xid, opcode);
    out.put_jstring(path);
    out.put_jbool(watch);
    finish_frame(out, at);
}

pub fn set_data(out: &mut BytesMut, xid: i32, path: &str, data: &[u8], version: i32) {
    let at = header(out, xid, op::SET_DATA);
    out.put_jstring(path);
    out.put_jbuffer(data);
    out.put_i32(version);
    finish_frame(out, at);
}

/// `create` (opcode 1: the reply is the created path) with an open ACL. `acl` is [`open_acl`].
pub fn create(out: &mut BytesMut, xid: i32, path: &str, data: &[u8], acl: &[u8], flags: i32) {
    let at = header(out, xid, op::CREATE);
    out.put_jstring(path);
    out.put_jbuffer(data);
    out.put_slice(acl);
    out.put_i32(flags);
    finish_frame(out, at);
}

pub fn delete(out: &mut BytesMut, xid: i32, path: &str, version: i32) {
    let at = header(out, xid, op::DELETE);
    out.put_jstring(path);
    out.put_i32(version);
    finish_frame(out, at);
}

pub fn close_session(out: &mut BytesMut, xid: i32) {
    let at = header(out, xid, op::CLOSE_SESSION);
    finish_frame(out, at);
}

pub fn ping(out: &mut BytesMut) {
    let at = header(out, corral::proto::codes::xid::PING, op::PING);
    finish_frame(out, at);
}

/// A reply: header fields and a reader positioned at the body.
pub struct Reply {
    pub xid: i32,
    /// The header's zxid: for a write, its own transaction's (or, in some servers, the
    /// answering member's latest, which is no lower).
    pub zxid: i64,
    pub err: i32,
    pub body: Reader,
}

pub fn reply(p: Bytes) -> Result<Reply, String> {
    let mut r = Reader::new(p);
    let xid = r.i32().map_err(|_| "decode")?;
    let zxid = r.i64().map_err(|_| "decode")?;
    let err = r.i32().map_err(|_| "decode")?;
    Ok(Reply {
        xid,
        zxid,
        err,
        body: r,
    })
}

/// A watch notification's body: (event type, path).
pub fn event(body: &mut Reader) -> Result<(i32, String), String> {
    let typ = body.i32().map_err(|_| "decode")?;
    let _state = body.i32().map_err(|_| "decode")?;
    let path = body.string().map_err(|_| "decode")?;
    Ok((typ, path))
}

/// The name of a ZooKeeper error code, as error counters show it.
pub fn code_name(code: i32) -> String {
    let n = match code {
        -1 => "SystemError",
        -2 => "RuntimeInconsistency",
        -3 => "DataInconsistency",
        -4 => "ConnectionLoss",
        -5 => "MarshallingError",
        -6 => "Unimplemented",
        -7 => "OperationTimeout",
        -8 => "BadArguments",
        -12 => "UnknownSession",
        -100 => "ApiError",
        -101 => "NoNode",
        -102 => "NoAuth",
        -103 => "BadVersion",
        -108 => "NoChildrenForEphemerals",
        -110 => "NodeExists",
        -111 => "NotEmpty",
        -112 => "SessionExpired",
        -114 => "InvalidACL",
        -115 => "AuthFailed",
        -118 => "SessionMoved",
        -119 => "NotReadOnly",
        -122 => "RequestTimeout",
        -125 => "QuotaExceeded",
        -127 => "Throttled",
        other => return format!("zk-error({other})"),
    };
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral::proto::records::Request;
    use corral::proto::{split_frame, Frame};

    /// What we encode, corral's server-side decoder reads back as the request we meant.
    #[test]
    fn requests_round_trip_through_corrals_decoder() {
        let acl = open_acl();
        let mut out = BytesMut::new();
        read_req(&mut out, 1, op::GET_DATA, "/a", true);
        set_data(&mut out, 2, "/a", b"xyz", -1);
        create(&mut out, 3, "/a/b-", b"d", &acl, 3);
        delete(&mut out, 4, "/a/b", 7);
        close_session(&mut out, 5);
        let mut got = Vec::new();
        while let Frame::Payload(p) = split_frame(&mut out, 1 << 20) {
            let mut r = Reader::new(p);
            let xid = r.i32().unwrap();
            let opcode = r.i32().unwrap();
            got.push((xid, Request::decode(opcode, &mut r).unwrap()));
        }
        assert_eq!(got.len(), 5);
        assert!(matches!(&got[0].1, Request::GetData { path, watch: true } if path == "/a"));
        assert!(
            matches!(&got[1].1, Request::SetData { data: Some(d), version: -1, .. } if &d[..] == b"xyz")
        );
        assert!(
            matches!(&got[2].1, Request::Create(c) if c.flags == 3 && c.path == "/a/b-" && c.acl.len() == 1)
        );
        assert!(matches!(&got[3].1, Request::Delete { version: 7, .. }));
        assert!(matches!(&got[4].1, Request::CloseSession));
    }
}
