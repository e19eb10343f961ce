//! A request's path through a shard: `on_frame` decodes it and decides (answer a read now,
//! queue it behind a write of the same connection, or forward a write to the write core);
//! `Shard::drain` answers queued requests in order once the replica has caught up. The reads
//! themselves are answered in read.rs. Ordering rules: docs/design/ordering.md.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::warn;

use crate::proto::codes::{op, Code};
use crate::proto::jute::Reader;
use crate::proto::records::{ConnectRequest, Request, RequestError};
use crate::tree::acl;

use super::conn::{Answer, Conn, ConnRef};
use super::frames::{header_only, reply, sasl_none, sasl_reply};
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
    c.received();
    let origin = Origin {
        shard: env.id,
        conn: c.id(),
    };
    if c.handshaking() {
        let req = ConnectRequest::decode(payload).map_err(|_| "malformed connect request")?;
        let (min, max) = (
            env.cfg.min_session_timeout_ms as i32,
            env.cfg.max_session_timeout_ms as i32,
        );
        let timeout_ms = req.timeout_ms.clamp(min, max);
        c.connecting(timeout_ms, req.read_only);
        return Ok(vec![ToCore::Connect {
            origin,
            session_id: req.session_id,
            passwd: req.passwd,
            timeout_ms,
            last_zxid_seen: req.last_zxid_seen,
            read_only: req.read_only == Some(true),
        }]);
    }

    // The body as the client sent it: a learner forwards a write's bytes to its leader.
    let body = payload.slice(payload.len().min(8)..);
    let mut r = Reader::new(payload);
    let (xid, opcode) = match (r.i32(), r.i32()) {
        (Ok(x), Ok(o)) => (x, o),
        _ => return Err("truncated request header"),
    };
    if c.session_id() != 0 {
        s.touched.insert(c.session_id());
    }
    let req = match Request::decode(opcode, &mut r) {
        Ok(req) => req,
        Err(RequestError::UnknownOpcode(_)) => {
            // ZooKeeper answers an unknown opcode with Unimplemented, then closes.
            let zxid = s.tree.borrow().last_zxid();
            c.send(|out| reply(out, xid, zxid, |_| Err(Code::Unimplemented)));
            c.close();
            return Ok(vec![]);
        }
        Err(RequestError::Malformed(_)) if opcode == op::AUTH || opcode == op::SASL => {
            // ZooKeeper reads auth and SASL packets outside its request pipeline; a bad one is
            // an IOException there, which closes the connection without an answer.
            return Err("malformed auth or SASL packet");
        }
        Err(RequestError::Malformed(_)) => {
            // A body that does not parse gets MarshallingError; the connection stays usable.
            let zxid = s.tree.borrow().last_zxid();
            c.send(|out| reply(out, xid, zxid, |_| Err(Code::MarshallingError)));
            return Ok(vec![]);
        }
    };
    c.note_request(xid, opcode);

    let is_auth = matches!(req, Request::Auth { .. } | Request::Sasl { .. });
    if !is_auth && !sasl::may_proceed(&env.cfg.sasl, c.ids()) {
        // enforce.auth / sessionRequireClientSASLAuth: any other request (a ping too) of an
        // unauthenticated connection is answered so, and the connection closes.
        warn!(peer = %c.peer(), "client is not authenticated as required; closing the connection");
        c.send(|out| header_only(out, xid, 0, Code::SessionClosedRequireSaslAuth));
        c.close();
        return Ok(vec![]);
    }

    match req {
        // Processed on arrival, as ZooKeeper does, so later writes carry the new identity.
        Request::Auth { scheme, auth } => {
            let zxid = 0;
            match acl::authenticate(
                &scheme,
                &auth,
                c.peer().ip(),
                env.cfg.super_digest.as_deref(),
            ) {
                Ok(new_ids) => {
                    c.add_ids(new_ids);
                    c.send(|out| header_only(out, xid, zxid, Code::Ok));
                    Ok(vec![])
                }
                Err(code) => {
                    c.send(|out| header_only(out, xid, zxid, code));
                    c.close();
                    Ok(vec![])
                }
            }
        }
        Request::Sasl { token } => {
            sasl::on_token(&env.cfg.sasl, &mut c, xid, token);
            Ok(vec![])
        }
        req if req.is_write() => {
            c.push_write(opcode, xid);
            Ok(vec![ToCore::Write {
                origin,
                session_id: c.session_id(),
                cxid: xid,
                ids: c.ids().clone(),
                req,
                opcode,
                body,
            }])
        }
        req => {
            let min_zxid = env.shared.committed.load(Ordering::SeqCst);
            if c.idle() && s.tree.borrow().last_zxid() >= min_zxid {
                c.with_output(|c, out| {
                    s.execute(c, xid, opcode, &req, out);
                    s.record_latency(c, Duration::ZERO, false);
                });
                c.wake_writer();
            } else {
                c.push_read(xid, opcode, req, min_zxid);
                s.waiting.insert(c.id());
            }
            Ok(vec![])
        }
    }
}

/// SASL on the client port (src/auth): the login exchange and the enforcement rule.
mod sasl {
    use rand::RngCore;
    use tracing::{info, warn};

    use crate::auth::{Login, SaslConfig};
    use crate::proto::codes::Code;
    use crate::proto::records::Id;

    use super::{sasl_none, sasl_reply, Conn};

    /// ZooKeeper's AuthenticationHelper: with enforcement on, a connection needs an id of one
    /// of the enforced schemes.
    pub(super) fn may_proceed(cfg: &SaslConfig, ids: &[Id]) -> bool {
        if !cfg.session_require_sasl && !cfg.enforce_enabled {
            return true;
        }
        let schemes = cfg.enforced_schemes();
        ids.iter().any(|id| schemes.contains(&id.scheme))
    }

    /// One SASL token (ZooKeeper's processSasl).
    pub(super) fn on_token(cfg: &SaslConfig, c: &mut Conn, xid: i32, token: Option<bytes::Bytes>) {
        let (true, Some(token)) = (cfg.enabled(), token) else {
            // No SASL configured, or a null token (ZooKeeper's NullPointerException path):
            // OK with a null token, the exchange untouched.
            c.send(|out| sasl_none(out, xid));
            return;
        };
        let step = match c.sasl_exchange(cfg) {
            Login::Digest(x) => {
                let users = cfg.users.as_ref();
                let password = |user: &str| users.and_then(|u| u.0.get(user).cloned());
                let mut random = |b: &mut [u8]| rand::rngs::OsRng.fill_bytes(b);
                x.step(&token, &password, &mut random).map(Some)
            }
            Login::Gssapi(x) => x.step(&token),
        };
        match step {
            Ok(answer) => {
                if let Some(authz) = c.sasl_exchange(cfg).authorization_id().map(str::to_string) {
                    info!(
                        session = format!("{:#x}", c.session_id()),
                        "adding SASL authorization for authorizationID: {authz}"
                    );
                    let mut ids = vec![Id::new("sasl", &authz)];
                    if cfg.is_super_user(&authz) {
                        ids.push(Id::new("super", ""));
                    }
                    c.add_ids(ids);
                }
                c.send(|out| sasl_reply(out, xid, Code::Ok, answer.as_deref()));
            }
            Err(e) if cfg.allow_failed_clients && !cfg.sasl_required() => {
                warn!(peer = %c.peer(), "client failed to SASL authenticate: {e}; keeping the connection");
                c.send(|out| sasl_none(out, xid));
            }
            Err(e) => {
                warn!(peer = %c.peer(), "client failed to SASL authenticate: {e}; closing the connection");
                let code = if cfg.sasl_required() {
                    Code::SessionClosedRequireSaslAuth
                } else {
                    Code::AuthFailed
                };
                c.send(|out| sasl_reply(out, xid, code, None));
                c.close();
            }
        }
    }
}

impl Shard {
    /// A read answered at once counts as 0: it is answered in the poll that read its frame.
    fn record_latency(&mut self, c: &mut Conn, waited: Duration, write: bool) {
        let ms = waited.as_millis() as u64;
        self.latency.record(ms);
        c.record_latency(ms);
        let us = waited.as_micros() as u64;
        if write {
            self.latencies.update.record(us);
        } else {
            self.latencies.read.record(us);
        }
    }

    /// Answers everything at the head of a connection's queue that can be answered now.
    pub(super) fn drain(&mut self, c: &mut Conn) {
        let applied = self.tree.borrow().last_zxid();
        let waits = c.drain(applied, |c, out, answer| match answer {
            Answer::Write { waited } => self.record_latency(c, waited, true),
            Answer::Read {
                xid,
                opcode,
                req,
                at,
            } => {
                self.execute(c, xid, opcode, req, out);
                self.record_latency(c, at.elapsed(), false);
            }
        });
        if waits {
            self.waiting.insert(c.id());
        }
    }
}
