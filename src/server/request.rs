//! A request's path through a shard: `on_frame` decodes it and decides (answer a read now,
//! queue it behind a write of the same connection, or forward a write to the write core);
//! `Shard::drain` answers queued requests in order once the replica has caught up. The reads
//! themselves are answered in read.rs. Ordering rules: docs/design/ordering.md.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::admin;
use crate::config::OUTPUT_HIGH_WATER;
use crate::proto::codes::{op, Code};
use crate::proto::jute::Reader;
use crate::proto::records::{ConnectRequest, Request, RequestError};
use crate::tree::acl;

use super::conn::{Conn, ConnRef, Pending, Phase};
use super::frames::{header_only, reply, sasl_none};
use super::shard::{Env, Shard, ShardRef};
use super::{Origin, ToCore};

/// Handles one frame; returns the messages to send to the write core, or why to close.
pub(super) fn on_frame(
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
        Err(RequestError::Malformed(_)) if opcode == op::AUTH => {
            // ZooKeeper reads the auth packet outside its request pipeline; a bad one is an
            // IOException there, which closes the connection without an answer.
            return Err("malformed auth packet");
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
                    header_only(&mut c.out, xid, zxid, Code::Ok);
                    c.wake_writer();
                    Ok(vec![])
                }
                Err(code) => {
                    header_only(&mut c.out, xid, zxid, code);
                    c.close();
                    Ok(vec![])
                }
            }
        }
        Request::Sasl => {
            // No SASL configured: ZooKeeper answers OK with a null token.
            sasl_none(&mut c.out, xid);
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
    fn record_latency(&mut self, c: &mut Conn, ms: u64) {
        self.latency.record(ms);
        c.latency.record(ms);
    }

    /// Answers everything at the head of a connection's queue that can be answered now.
    pub(super) fn drain(&mut self, c: &mut Conn) {
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
}
