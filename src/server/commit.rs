//! The commit path: the write core's messages to a shard (`on_core_message`). Committed txns
//! are applied to the replica in zxid order, their watches fire (to watchers allowed to read the
//! node), and the writes of this shard's connections are completed; handshake answers (attach,
//! reject) and per-connection answers (sync, refused writes, close) come the same way.

use bytes::BytesMut;
use tracing::warn;

use super::frames::{encode_write_reply, reply};
use super::shard::Shard;
use super::{Commit, ToCore, ToShard};
use crate::proto::codes::perms;
use crate::proto::jute::Writer;
use crate::storage::snapshot::Cursor;
use crate::tree::acl;
use crate::txn::TxnOp;
use crate::watch::ConnId;
use crate::zab::Zxid;
use std::sync::Arc;

/// Applies one message of the write core; returns what to send it back, if anything (a
/// learner's snapshot).
pub(super) fn on_core_message(s: &mut Shard, msg: ToShard) -> Option<ToCore> {
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
            let zxid = s.tree.borrow().last_zxid();
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
            read_only,
        } => attach(s, conn, session_id, timeout_ms, password, read_only),
        ToShard::Rejected { conn, expired } => {
            if let Some(c) = s.conns.get(&conn) {
                c.borrow_mut().reject(expired);
            }
        }
        ToShard::Close { conn } => {
            if let Some(c) = s.conns.get(&conn) {
                c.borrow_mut().close();
            }
        }
        ToShard::SessionClosed { conn, session_id } => {
            let zxid = s.tree.borrow().last_zxid();
            complete_write(s, conn, |_, xid, out| reply(out, xid, zxid, |_| Ok(())));
            if s.sessions.get(&session_id) == Some(&conn) {
                s.sessions.remove(&session_id);
            }
            if let Some(c) = s.conns.get(&conn) {
                c.borrow_mut().close();
            }
        }
        ToShard::Refused { conn, code } => {
            let zxid = s.tree.borrow().last_zxid();
            complete_write(s, conn, |_, xid, out| reply(out, xid, zxid, |_| Err(code)));
        }
        ToShard::CloseAll => close_all(s),
        ToShard::Reset(tree) => {
            close_all(s);
            if let Some(tree) = tree {
                *s.tree.borrow_mut() = Arc::try_unwrap(tree).unwrap_or_else(|t| (*t).clone());
            }
        }
        ToShard::Snapshot { to, request, zxid } => {
            // The write core sent this right after the commits up to `zxid`.
            let held = s.tree.borrow().last_zxid() as Zxid;
            if held != zxid {
                warn!(
                    zxid,
                    held, "replica not at the snapshot's zxid; the learner will retry"
                );
                return None;
            }
            let mut cursor = Cursor::new();
            let mut data = Vec::new();
            let tree = s.tree.borrow();
            cursor.begin(&tree, &mut data);
            while !cursor.step(&tree, usize::MAX, &mut data) {}
            return Some(ToCore::SnapshotReady {
                to,
                request,
                zxid,
                data: data.into(),
            });
        }
    }
    None
}

/// Closes every client connection (the member stopped serving, or its state was replaced).
fn close_all(s: &mut Shard) {
    for c in s.conns.values() {
        c.borrow_mut().close();
    }
}

fn attach(
    s: &mut Shard,
    conn: ConnId,
    session_id: i64,
    timeout_ms: i32,
    password: [u8; 16],
    read_only: bool,
) {
    let Some(cref) = s.conns.get(&conn).cloned() else {
        return;
    };
    let mut c = cref.borrow_mut();
    s.sessions.insert(session_id, conn);
    s.touched.insert(session_id);
    c.attach(session_id, timeout_ms, password, read_only);
    s.drain(&mut c);
}

/// Completes the oldest unanswered write of `conn` with the reply `make` encodes.
fn complete_write(s: &mut Shard, conn: ConnId, make: impl FnOnce(i32, i32, &mut BytesMut)) {
    let Some(cref) = s.conns.get(&conn).cloned() else {
        return;
    };
    let mut c = cref.borrow_mut();
    if !c.complete_write(make) {
        warn!(conn, "commit for a connection with no write outstanding");
        return;
    }
    s.sent += 1;
    s.drain(&mut c);
}

fn apply_commit(s: &mut Shard, commit: &Commit) {
    let txn = &commit.txn;
    if s.tree.borrow().last_zxid() >= txn.zxid {
        // Only after the write core replaced a replica it shares (`ToShard::Reset(None)`):
        // the new tree holds this txn. Its connection closes with the Reset that follows.
        debug_assert!(s.id == 0, "a commit the replica already holds");
        return;
    }
    let applied = s.tree.borrow_mut().apply(txn);
    for t in &applied.triggers {
        for conn in s.watches.trigger(&t.path, t.kind) {
            if let Some(c) = s.conns.get(&conn) {
                let mut c = c.borrow_mut();
                // Only to a watcher that may READ the node (CVE-2024-23944, ZooKeeper 3.9.2),
                // judged by the connection's ids now; a one-shot watch is used up either way.
                if let Some(acl) = &t.read_acl {
                    if !acl::allowed(acl, perms::READ, c.ids()) {
                        continue;
                    }
                }
                c.notify(t.kind, &t.path);
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
                    .map(|c| c.borrow().timeout_ms())
                    .unwrap_or(*timeout_ms);
                attach(s, o.conn, txn.session_id, negotiated, *password, false);
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
