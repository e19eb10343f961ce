//! A shard: one glommio executor pinned to one CPU, holding a read replica of the data tree, the
//! watches and sessions of the connections it accepted, and those connections. This file holds
//! the shard's state and applies the write core's commits to the replica; start-up is in
//! startup.rs, accepting in accept.rs, a connection's tasks in conn.rs, a request's path through
//! the shard in request.rs.
//!
//! Everything here is owned by the shard's thread (`Rc<RefCell<_>>`, no locks). A borrow is
//! never held across an `.await`.
//!
//! Per-connection ordering (ZooKeeper's CommitProcessor rules, see docs/design/ordering.md):
//! requests of a connection are answered in the order they arrived. A read is served at once from
//! the replica when nothing is queued ahead of it; otherwise it waits in the connection's queue
//! behind the write, and runs when that write's commit has been applied here, so it sees the
//! write (read-your-writes). Watch events are appended to a connection's output the moment the
//! commit that fires them is applied, so an event always precedes any later reply that reflects
//! its change.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use async_channel::Sender;
use bytes::BytesMut;
use tracing::warn;

use super::conn::{ConnRef, Pending, Phase};
use super::frames::{connect_response, encode_write_reply, notification, reply};
use super::{Commit, ShardReport, Shared, ToCore, ToShard};
use crate::admin;
use crate::config::Config;
use crate::proto::codes::perms;
use crate::proto::jute::Writer;
use crate::proto::records::ConnectResponse;
use crate::tree::{acl, DataTree};
use crate::txn::TxnOp;
use crate::watch::{ConnId, WatchManager};

pub(super) struct Shard {
    pub(super) id: usize,
    pub(super) tree: DataTree,
    pub(super) watches: WatchManager,
    pub(super) conns: HashMap<ConnId, ConnRef>,
    /// Sessions attached here -> their connection.
    pub(super) sessions: HashMap<i64, ConnId>,
    pub(super) touched: HashSet<i64>,
    /// Connections with a read waiting for this replica to catch up.
    pub(super) waiting: HashSet<ConnId>,
    pub(super) next_conn: ConnId,
    pub(super) received: u64,
    pub(super) sent: u64,
    pub(super) latency: admin::Latency,
}

pub(super) type ShardRef = Rc<RefCell<Shard>>;

/// Everything a shard's tasks share that never changes after start.
pub(super) struct Env {
    pub(super) id: usize,
    pub(super) cfg: Arc<Config>,
    pub(super) to_core: Sender<ToCore>,
    pub(super) shared: Arc<Shared>,
    pub(super) per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Shard {
    pub(super) fn report(&mut self, reset: bool) -> ShardReport {
        if reset {
            self.received = 0;
            self.sent = 0;
            self.latency = admin::Latency::default();
        }
        let session_of = |conn: ConnId| {
            self.conns
                .get(&conn)
                .map(|c| c.borrow().session_id)
                .unwrap_or(0)
        };
        ShardReport {
            last_zxid: self.tree.last_zxid(),
            node_count: self.tree.node_count(),
            ephemerals: self.tree.ephemeral_count(),
            data_size: self.tree.approximate_data_size(),
            received: self.received,
            sent: self.sent,
            sessions: self.tree.sessions().count(),
            outstanding: self.conns.values().map(|c| c.borrow().queue.len()).sum(),
            latency: self.latency,
            connections: self
                .conns
                .values()
                .map(|c| {
                    let c = c.borrow();
                    let mut info = admin::ConnectionInfo::new(c.peer, c.established_ms);
                    info.outstanding_requests = c.queue.len() as u64;
                    info.packets_received = c.received;
                    info.packets_sent = c.sent;
                    info.session_id = c.session_id as u64;
                    info.last_op = c.last_op;
                    info.session_timeout_ms = c.timeout_ms as u32;
                    info.last_cxid = c.last_cxid as i64;
                    info.last_zxid = c.last_zxid;
                    info.latency = c.latency;
                    info
                })
                .collect(),
            watch_count: self.watches.total(),
            watches_by_session: self
                .watches
                .by_connection()
                .into_iter()
                .map(|(c, p)| (session_of(c), p))
                .collect(),
            watches_by_path: self
                .watches
                .by_path()
                .into_iter()
                .map(|(p, cs)| (p, cs.into_iter().map(session_of).collect()))
                .collect(),
            ephemerals_by_session: if self.id == 0 {
                let mut v: Vec<(i64, Vec<String>)> = self
                    .tree
                    .sessions()
                    .map(|(id, _)| (*id, self.tree.ephemerals_of(*id).cloned().collect()))
                    .filter(|(_, e): &(i64, Vec<String>)| !e.is_empty())
                    .collect();
                v.sort();
                v
            } else {
                Vec::new()
            },
        }
    }
}

pub(super) fn on_core_message(s: &mut Shard, msg: ToShard) {
    match msg {
        ToShard::Commits(batch) => {
            for commit in batch.iter() {
                apply_commit(s, commit);
            }
            for conn in std::mem::take(&mut s.waiting) {
                if let Some(c) = s.conns.get(&conn).cloned() {
                    s.drain(&mut c.borrow_mut());
                }
            }
        }
        ToShard::Synced { conn, path } => {
            let zxid = s.tree.last_zxid();
            complete_write(s, conn, |_, xid, out| {
                reply(out, xid, zxid, |b| {
                    b.put_jstring(&path);
                    Ok(())
                })
            });
        }
        ToShard::Attached {
            conn,
            session_id,
            timeout_ms,
            password,
        } => attach(s, conn, session_id, timeout_ms, password),
        ToShard::Rejected { conn, expired } => {
            if let Some(c) = s.conns.get(&conn) {
                let mut c = c.borrow_mut();
                if expired {
                    let resp = ConnectResponse::expired(c.read_only_flag);
                    connect_response(&mut c.out, &resp);
                }
                c.close();
            }
        }
        ToShard::Close { conn } => {
            if let Some(c) = s.conns.get(&conn) {
                c.borrow_mut().close();
            }
        }
        ToShard::Refused { conn, code } => {
            let zxid = s.tree.last_zxid();
            complete_write(s, conn, |_, xid, out| reply(out, xid, zxid, |_| Err(code)));
        }
    }
}

fn attach(s: &mut Shard, conn: ConnId, session_id: i64, timeout_ms: i32, password: [u8; 16]) {
    let Some(cref) = s.conns.get(&conn).cloned() else {
        return;
    };
    let mut c = cref.borrow_mut();
    c.session_id = session_id;
    c.phase = Phase::Attached;
    s.sessions.insert(session_id, conn);
    s.touched.insert(session_id);
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id,
        passwd: password,
        read_only: c.read_only_flag.map(|_| false),
    };
    connect_response(&mut c.out, &resp);
    if let Some(w) = c.handshake.take() {
        w.wake();
    }
    s.drain(&mut c);
}

/// Completes the oldest unanswered write of `conn` with the reply `make` encodes.
fn complete_write(s: &mut Shard, conn: ConnId, make: impl FnOnce(i32, i32, &mut BytesMut)) {
    let Some(cref) = s.conns.get(&conn).cloned() else {
        return;
    };
    let mut c = cref.borrow_mut();
    let slot = c.queue.iter_mut().find_map(|p| match p {
        Pending::Write {
            opcode,
            xid,
            reply: r @ None,
            ..
        } => Some((*opcode, *xid, r)),
        _ => None,
    });
    let Some((opcode, xid, slot)) = slot else {
        warn!(conn, "commit for a connection with no write outstanding");
        return;
    };
    let mut b = BytesMut::new();
    make(opcode, xid, &mut b);
    *slot = Some(b);
    s.sent += 1;
    c.sent += 1;
    s.drain(&mut c);
}

fn apply_commit(s: &mut Shard, commit: &Commit) {
    let txn = &commit.txn;
    let applied = s.tree.apply(txn);
    for t in &applied.triggers {
        for conn in s.watches.trigger(&t.path, t.kind) {
            if let Some(c) = s.conns.get(&conn) {
                let mut c = c.borrow_mut();
                // Only to a watcher that may READ the node (CVE-2024-23944, ZooKeeper 3.9.2),
                // judged by the connection's ids now; a one-shot watch is used up either way.
                if let Some(acl) = &t.read_acl {
                    if !acl::allowed(acl, perms::READ, &c.ids) {
                        continue;
                    }
                }
                notification(&mut c.out, t.kind, &t.path);
                c.wake_writer();
            }
        }
    }
    let mine = commit.origin.filter(|o| o.shard == s.id);
    match &txn.op {
        TxnOp::CreateSession {
            timeout_ms,
            password,
        } => {
            if let Some(o) = mine {
                let _ = timeout_ms;
                let negotiated = s
                    .conns
                    .get(&o.conn)
                    .map(|c| c.borrow().timeout_ms)
                    .unwrap_or(*timeout_ms);
                attach(s, o.conn, txn.session_id, negotiated, *password);
            }
            return;
        }
        TxnOp::CloseSession => {
            if let Some(o) = mine {
                complete_write(s, o.conn, |_, xid, out| {
                    reply(out, xid, txn.zxid, |_| Ok(()))
                });
            }
            // The session is gone: its connection here (if any) closes once flushed.
            if let Some(conn) = s.sessions.remove(&txn.session_id) {
                if let Some(c) = s.conns.get(&conn) {
                    c.borrow_mut().close();
                }
            }
            return;
        }
        _ => {}
    }
    if let Some(o) = mine {
        complete_write(s, o.conn, |opcode, xid, out| {
            encode_write_reply(out, opcode, xid, txn.zxid, &txn.op, &applied.results)
        });
    }
}

pub(super) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
