//! What a learner hands its leader in a `Msg::Request`: a client write of one of its sessions
//! (the request's own bytes, with the session's auth ids, so the leader runs `prep` and the
//! ACL checks against its authoritative state), a new session, or session activity (the leader
//! owns expiry, as ZooKeeper's does; its learners report activity every half tick).
//!
//! The bytes stay between corral members (docs/design/replication.md, "Decisions"): a tag, then
//! jute fields.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::records::Id;

const WRITE: u8 = 1;
const CREATE_SESSION: u8 = 2;
const TOUCH: u8 = 3;
const ATTACH: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    /// A client's write request: its opcode and body as the client sent them.
    Write {
        session_id: i64,
        cxid: i32,
        opcode: i32,
        ids: Vec<Id>,
        body: Bytes,
        /// The session is a local session of the learner (`localSessionsEnabled`): the leader
        /// does not know it, and must not take it for a global session it closed.
        local: bool,
    },
    /// A session the learner numbered (its sid is in the id's top byte, as in ZooKeeper).
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// Sessions with activity since the last report.
    Touch(Vec<i64>),
    /// A session reattached at this learner: the leader takes it as the session's owner, and
    /// turns writes of the session that other members forward later into SESSIONMOVED errors.
    Attach(i64),
}

impl Forward {
    pub fn encode(&self, b: &mut BytesMut) {
        match self {
            Forward::Write {
                session_id,
                cxid,
                opcode,
                ids,
                body,
                local,
            } => {
                b.put_u8(WRITE);
                b.put_i64(*session_id);
                b.put_i32(*cxid);
                b.put_i32(*opcode);
                b.put_i32(ids.len() as i32);
                for id in ids {
                    b.put_jstring(&id.scheme);
                    b.put_jstring(&id.id);
                }
                b.put_jbuffer(body);
                b.put_u8(u8::from(*local));
            }
            Forward::CreateSession {
                session_id,
                timeout_ms,
                password,
            } => {
                b.put_u8(CREATE_SESSION);
                b.put_i64(*session_id);
                b.put_i32(*timeout_ms);
                b.put_jbuffer(password);
            }
            Forward::Touch(ids) => {
                b.put_u8(TOUCH);
                b.put_i32(ids.len() as i32);
                for id in ids {
                    b.put_i64(*id);
                }
            }
            Forward::Attach(id) => {
                b.put_u8(ATTACH);
                b.put_i64(*id);
            }
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }

    /// Decodes what `encode` wrote; anything else is an error (a broken or foreign member).
    pub fn decode(data: Bytes) -> DecodeResult<Forward> {
        let mut r = Reader::new(data);
        let f = match r.u8()? {
            WRITE => {
                let session_id = r.i64()?;
                let cxid = r.i32()?;
                let opcode = r.i32()?;
                let n = r.vec_len(8)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(Id {
                        scheme: r.string()?,
                        id: r.string()?,
                    });
                }
                Forward::Write {
                    session_id,
                    cxid,
                    opcode,
                    ids,
                    body: r.buffer()?,
                    local: match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(DecodeError::Invalid("local flag")),
                    },
                }
            }
            CREATE_SESSION => {
                let session_id = r.i64()?;
                let timeout_ms = r.i32()?;
                let pw = r.buffer()?;
                let password = pw[..]
                    .try_into()
                    .map_err(|_| DecodeError::Invalid("password length"))?;
                Forward::CreateSession {
                    session_id,
                    timeout_ms,
                    password,
                }
            }
            TOUCH => {
                let n = r.vec_len(8)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(r.i64()?);
                }
                Forward::Touch(ids)
            }
            ATTACH => Forward::Attach(r.i64()?),
            _ => return Err(DecodeError::Invalid("forward tag")),
        };
        if r.remaining() != 0 {
            return Err(DecodeError::Invalid("trailing bytes"));
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_garbage_is_refused() {
        let all = [
            Forward::Write {
                session_id: 0x6400_0000_0000_0001,
                cxid: 7,
                opcode: 5,
                ids: vec![Id::new("digest", "u:x"), Id::new("ip", "127.0.0.1")],
                body: Bytes::from_static(b"\x00\x00\x00\x02/a"),
                local: true,
            },
            Forward::CreateSession {
                session_id: -5,
                timeout_ms: 30_000,
                password: [9; 16],
            },
            Forward::Touch(vec![1, 2, 3]),
            Forward::Touch(vec![]),
            Forward::Attach(7),
        ];
        for f in all {
            let b = f.to_bytes();
            assert_eq!(Forward::decode(b.clone()).unwrap(), f);
            for cut in 0..b.len() {
                assert!(
                    Forward::decode(b.slice(..cut)).is_err(),
                    "{f:?} cut at {cut}"
                );
            }
            let mut longer = BytesMut::from(&b[..]);
            longer.put_u8(0);
            assert!(Forward::decode(longer.freeze()).is_err());
        }
        assert!(Forward::decode(Bytes::from_static(b"\x09")).is_err());
    }
}
