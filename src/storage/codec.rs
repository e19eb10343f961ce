//! The on-disk encoding of a transaction (the payload of a log record). Pure.
//!
//! ```text
//! txn      = session_id:i64 cxid:i32 time_ms:i64 op
//! op       = tag:u8 body
//!   1 createSession  timeout_ms:i32 password:buffer(16)
//!   2 closeSession   count:i32 path:string*            (older logs: read, list ignored)
//!   3 create         opcode:i32 path:string data:buffer-or-null acl ephemeral_owner:i64 parent_cversion:i32
//!   4 delete         path:string
//!   5 setData        path:string data:buffer-or-null version:i32
//!   6 setACL         path:string acl version:i32
//!   7 check          path:string
//!   8 multi          count:i32 op*                     (no nested multi)
//!   9 multiError     count:i32 code:i32*
//!  10 error          code:i32
//!  11 closeSession                                     (deletes every ephemeral the session owns)
//! acl      = count:i32 (perms:i32 scheme:string id:string)*
//! ```
//! Integers are big-endian and strings/buffers are jute's (`i32` length, -1 = null), so the same
//! reader that guards the client protocol guards the disk.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::codes::Code;
use crate::proto::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::records::Acl;
use crate::txn::{Txn, TxnOp};

const CREATE_SESSION: u8 = 1;
/// Logs written before the close stopped listing its ephemerals; read, never written.
const CLOSE_SESSION_LISTED: u8 = 2;
const CLOSE_SESSION: u8 = 11;
const CREATE: u8 = 3;
const DELETE: u8 = 4;
const SET_DATA: u8 = 5;
const SET_ACL: u8 = 6;
const CHECK: u8 = 7;
const MULTI: u8 = 8;
const MULTI_ERROR: u8 = 9;
const ERROR: u8 = 10;

pub fn encode_txn(t: &Txn, b: &mut BytesMut) {
    b.put_i64(t.session_id);
    b.put_i32(t.cxid);
    b.put_i64(t.time_ms);
    encode_op(&t.op, b);
}

fn encode_op(op: &TxnOp, b: &mut BytesMut) {
    match op {
        TxnOp::CreateSession {
            timeout_ms,
            password,
        } => {
            b.put_u8(CREATE_SESSION);
            b.put_i32(*timeout_ms);
            b.put_jbuffer(password);
        }
        TxnOp::CloseSession => b.put_u8(CLOSE_SESSION),
        TxnOp::Create {
            opcode,
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            b.put_u8(CREATE);
            b.put_i32(*opcode);
            b.put_jstring(path);
            b.put_jbuffer_opt(data.as_deref());
            Acl::encode_list(acl, b);
            b.put_i64(*ephemeral_owner);
            b.put_i32(*parent_cversion);
        }
        TxnOp::Delete { path } => {
            b.put_u8(DELETE);
            b.put_jstring(path);
        }
        TxnOp::SetData {
            path,
            data,
            version,
        } => {
            b.put_u8(SET_DATA);
            b.put_jstring(path);
            b.put_jbuffer_opt(data.as_deref());
            b.put_i32(*version);
        }
        TxnOp::SetAcl { path, acl, version } => {
            b.put_u8(SET_ACL);
            b.put_jstring(path);
            Acl::encode_list(acl, b);
            b.put_i32(*version);
        }
        TxnOp::Check { path } => {
            b.put_u8(CHECK);
            b.put_jstring(path);
        }
        TxnOp::Multi(ops) => {
            b.put_u8(MULTI);
            b.put_i32(ops.len() as i32);
            for o in ops {
                encode_op(o, b);
            }
        }
        TxnOp::MultiError(codes) => {
            b.put_u8(MULTI_ERROR);
            b.put_i32(codes.len() as i32);
            for c in codes {
                b.put_i32(c.as_i32());
            }
        }
        TxnOp::Error(code) => {
            b.put_u8(ERROR);
            b.put_i32(code.as_i32());
        }
    }
}

pub fn decode_txn(zxid: i64, payload: Bytes) -> DecodeResult<Txn> {
    let mut r = Reader::new(payload);
    let t = Txn {
        session_id: r.i64()?,
        cxid: r.i32()?,
        zxid,
        time_ms: r.i64()?,
        op: decode_op(&mut r, true)?,
    };
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid("trailing bytes after txn"));
    }
    Ok(t)
}

fn code(r: &mut Reader) -> DecodeResult<Code> {
    Code::from_i32(r.i32()?).ok_or(DecodeError::Invalid("unknown error code"))
}

fn decode_op(r: &mut Reader, top: bool) -> DecodeResult<TxnOp> {
    Ok(match r.u8()? {
        CREATE_SESSION => {
            let timeout_ms = r.i32()?;
            let pw = r.buffer()?;
            let password: [u8; 16] = pw[..]
                .try_into()
                .map_err(|_| DecodeError::Invalid("session password is not 16 bytes"))?;
            TxnOp::CreateSession {
                timeout_ms,
                password,
            }
        }
        CLOSE_SESSION => TxnOp::CloseSession,
        CLOSE_SESSION_LISTED => {
            // The list is what replay derives anyway: the same ephemerals, in the same state.
            let n = r.vec_len(4)?;
            for _ in 0..n {
                r.buffer()?;
            }
            TxnOp::CloseSession
        }
        CREATE => TxnOp::Create {
            opcode: r.i32()?,
            path: r.string()?,
            data: owned(r.buffer_opt()?),
            acl: Acl::decode_list(r)?,
            ephemeral_owner: r.i64()?,
            parent_cversion: r.i32()?,
        },
        DELETE => TxnOp::Delete { path: r.string()? },
        SET_DATA => TxnOp::SetData {
            path: r.string()?,
            data: owned(r.buffer_opt()?),
            version: r.i32()?,
        },
        SET_ACL => TxnOp::SetAcl {
            path: r.string()?,
            acl: Acl::decode_list(r)?,
            version: r.i32()?,
        },
        CHECK => TxnOp::Check { path: r.string()? },
        MULTI if top => {
            let n = r.vec_len(1)?;
            TxnOp::Multi(
                (0..n)
                    .map(|_| decode_op(r, false))
                    .collect::<DecodeResult<_>>()?,
            )
        }
        MULTI_ERROR => {
            let n = r.vec_len(4)?;
            TxnOp::MultiError((0..n).map(|_| code(r)).collect::<DecodeResult<_>>()?)
        }
        ERROR => TxnOp::Error(code(r)?),
        _ => return Err(DecodeError::Invalid("unknown txn tag")),
    })
}

/// Bytes of a txn's fields before its op: session_id, cxid, time_ms.
pub const TXN_HEADER_LEN: usize = 8 + 4 + 8;

/// What `encode_txn` writes for a txn with this op: prep sizes a txn with it before building
/// more of it (a multi) and before anything is applied.
pub fn encoded_len(op: &TxnOp) -> usize {
    TXN_HEADER_LEN + op_len(op)
}

fn jbuffer_len(b: Option<&[u8]>) -> usize {
    4 + b.map_or(0, <[u8]>::len)
}

/// The encoded size of an ACL list (`Acl::encode_list`).
pub fn acl_len(acl: &[Acl]) -> usize {
    4 + acl
        .iter()
        .map(|a| 4 + 4 + a.id.scheme.len() + 4 + a.id.id.len())
        .sum::<usize>()
}

/// What `encode_op` writes for `op` (the tag included).
pub fn op_len(op: &TxnOp) -> usize {
    1 + match op {
        TxnOp::CreateSession { password, .. } => 4 + jbuffer_len(Some(password)),
        TxnOp::CloseSession => 0,
        TxnOp::Create {
            path, data, acl, ..
        } => {
            4 + jbuffer_len(Some(path.as_bytes()))
                + jbuffer_len(data.as_deref())
                + acl_len(acl)
                + 8
                + 4
        }
        TxnOp::Delete { path } | TxnOp::Check { path } => jbuffer_len(Some(path.as_bytes())),
        TxnOp::SetData { path, data, .. } => {
            jbuffer_len(Some(path.as_bytes())) + jbuffer_len(data.as_deref()) + 4
        }
        TxnOp::SetAcl { path, acl, .. } => jbuffer_len(Some(path.as_bytes())) + acl_len(acl) + 4,
        TxnOp::Multi(ops) => 4 + ops.iter().map(op_len).sum::<usize>(),
        TxnOp::MultiError(codes) => 4 + 4 * codes.len(),
        TxnOp::Error(_) => 4,
    }
}

/// Znode data decoded from a log record, copied out of it: the tree keeps data for as long as
/// the node lives, and a slice would keep the whole record (or read buffer) alive with it.
fn owned(data: Option<Bytes>) -> Option<crate::txn::Data> {
    data.map(|d| crate::txn::Data::from(&d[..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::Id;

    pub fn sample_txns() -> Vec<Txn> {
        let acl = vec![Acl {
            perms: 31,
            id: Id::new("digest", "u:h"),
        }];
        let ops = vec![
            TxnOp::CreateSession {
                timeout_ms: 4000,
                password: [7; 16],
            },
            TxnOp::Create {
                opcode: 15,
                path: "/a".into(),
                data: Some(crate::txn::Data::from(&b"data"[..])),
                acl: acl.clone(),
                ephemeral_owner: 5,
                parent_cversion: 3,
            },
            TxnOp::Create {
                opcode: 1,
                path: "/n".into(),
                data: None,
                acl: acl.clone(),
                ephemeral_owner: 0,
                parent_cversion: 4,
            },
            TxnOp::SetData {
                path: "/a".into(),
                data: Some(crate::txn::Data::from(&[][..])),
                version: 2,
            },
            TxnOp::SetAcl {
                path: "/a".into(),
                acl,
                version: 1,
            },
            TxnOp::Multi(vec![
                TxnOp::Delete { path: "/a".into() },
                TxnOp::Check { path: "/".into() },
            ]),
            TxnOp::MultiError(vec![Code::Ok, Code::NoNode, Code::RuntimeInconsistency]),
            TxnOp::Error(Code::NodeExists),
            TxnOp::CloseSession,
        ];
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| Txn {
                session_id: 0x0100_0000_0000_0001,
                cxid: i as i32,
                zxid: i as i64 + 1,
                time_ms: 1_700_000_000_000 + i as i64,
                op,
            })
            .collect()
    }

    #[test]
    fn encoded_len_is_what_encode_writes() {
        for t in sample_txns() {
            let mut b = BytesMut::new();
            encode_txn(&t, &mut b);
            assert_eq!(encoded_len(&t.op), b.len(), "{:?}", t.op);
        }
    }

    #[test]
    fn a_listed_close_session_from_an_older_log_still_reads() {
        let mut b = BytesMut::new();
        b.put_i64(7);
        b.put_i32(0);
        b.put_i64(1_700_000_000_000);
        b.put_u8(CLOSE_SESSION_LISTED);
        b.put_jstrings(&["/e1", "/e2"]);
        let t = decode_txn(9, b.freeze()).unwrap();
        assert_eq!(t.op, TxnOp::CloseSession);
        assert_eq!(t.session_id, 7);
    }

    #[test]
    fn every_op_round_trips() {
        for t in sample_txns() {
            let mut b = BytesMut::new();
            encode_txn(&t, &mut b);
            let bytes = b.freeze();
            assert_eq!(decode_txn(t.zxid, bytes.clone()).unwrap(), t);
            for cut in 0..bytes.len() {
                assert!(decode_txn(t.zxid, bytes.slice(..cut)).is_err(), "cut {cut}");
            }
        }
    }
}
