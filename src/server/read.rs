//! The read path: `Shard::execute` answers a read opcode from the shard's replica, with its
//! ACL checks, watch registrations and the reply-size bound (docs/decisions.md, "Replies too
//! large to hold"); setWatches re-registers a reconnecting client's watches. When a read runs
//! (at once or after the writes queued before it) is request.rs's decision.

use bytes::{BufMut, BytesMut};
use tracing::warn;

use crate::proto::codes::{event, op, perms, xid, Code};
use crate::proto::jute::Writer;
use crate::proto::records::{put_multi_header, Acl, ReadOp, Request, SetWatches};
use crate::tree::{acl, DataTree};
use crate::watch::{ConnId, Kind};

use super::conn::Conn;
use super::frames::{
    buffer_bytes, notification, reply, strings_bytes, FRAME_HEADER_BYTES, MULTI_HEADER_BYTES,
    STAT_BYTES,
};
use super::shard::Shard;

/// Reads look paths up as ZooKeeper's DataTree does, where "" is another name for the root.
fn read_path(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

fn node_checked<'t>(
    tree: &'t DataTree,
    path: &str,
    perm: i32,
    ids: &[crate::proto::records::Id],
) -> Result<&'t crate::tree::Node, Code> {
    let n = tree.get(read_path(path)).ok_or(Code::NoNode)?;
    if perm != 0 && !acl::allowed(&n.acl, perm, ids) {
        return Err(Code::NoAuth);
    }
    Ok(n)
}

/// The size of a multiRead's reply, from the nodes as they are now, without building it.
fn multi_read_bytes(tree: &DataTree, ops: &[ReadOp], ids: &[crate::proto::records::Id]) -> usize {
    let results: usize = ops
        .iter()
        .map(|o| {
            let body = match o {
                ReadOp::GetData { path } => node_checked(tree, path, perms::READ, ids)
                    .map(|n| buffer_bytes(n.data()) + STAT_BYTES),
                ReadOp::GetChildren { path } => node_checked(tree, path, perms::READ, ids)
                    .map(|n| strings_bytes(tree.child_names(n))),
            };
            MULTI_HEADER_BYTES + body.unwrap_or(4)
        })
        .sum();
    FRAME_HEADER_BYTES + results + MULTI_HEADER_BYTES
}

impl Shard {
    /// Serves a non-write request from this shard's replica.
    pub(super) fn execute(
        &mut self,
        c: &mut Conn,
        xid: i32,
        opcode: i32,
        req: &Request,
        out: &mut BytesMut,
    ) {
        // The replica may be shared with the write core (same executor), hence the cell; no
        // borrow outlives this call.
        let replica = self.tree.clone();
        let tree = replica.borrow();
        let zxid = tree.last_zxid();
        self.sent += 1;
        c.answering(zxid);
        let ids = c.ids().clone();
        let conn = c.id();
        // What this connection may still hold as output: a reply past it would close the
        // connection once built, so a read whose reply would not fit is refused before it is
        // built (docs/decisions.md, "Replies too large to hold").
        let room = c.room(out.len());
        let too_large = |bytes: usize| {
            let fits = bytes <= room;
            if !fits {
                warn!(
                    peer = %c.peer(),
                    session = format!("{:#x}", c.session_id()),
                    opcode,
                    bytes,
                    room,
                    "reply too large for the connection's output; answering MarshallingError"
                );
            }
            !fits
        };
        match req {
            Request::Ping => reply(out, xid::PING, zxid, |_| Ok(())),
            // ZooKeeper's exists alone refuses a NUL, before it registers the watch.
            Request::Exists { path, .. } if path.contains('\0') => {
                reply(out, xid, zxid, |_| Err(Code::BadArguments))
            }
            Request::Exists { path, watch } => {
                if *watch {
                    self.watches.add(Kind::Data, path, conn);
                }
                reply(out, xid, zxid, |b| {
                    let n = tree.get(read_path(path)).ok_or(Code::NoNode)?;
                    n.stat().encode(b);
                    Ok(())
                })
            }
            Request::GetData { path, watch } => reply(out, xid, zxid, |b| {
                let n = node_checked(&tree, path, perms::READ, &ids)?;
                b.put_jbuffer_opt(n.data());
                n.stat().encode(b);
                if *watch {
                    self.watches.add(Kind::Data, path, conn);
                }
                Ok(())
            }),
            Request::GetChildren {
                path,
                watch,
                with_stat,
            } => reply(out, xid, zxid, |b| {
                let n = node_checked(&tree, path, perms::READ, &ids)?;
                let stat = if *with_stat { STAT_BYTES } else { 0 };
                if too_large(FRAME_HEADER_BYTES + strings_bytes(tree.child_names(n)) + stat) {
                    return Err(Code::MarshallingError);
                }
                b.put_i32(n.num_children() as i32);
                for ch in tree.child_names(n) {
                    b.put_jstring(ch);
                }
                if *with_stat {
                    n.stat().encode(b);
                }
                if *watch {
                    self.watches.add(Kind::Child, path, conn);
                }
                Ok(())
            }),
            Request::GetAcl { path } => reply(out, xid, zxid, |b| {
                let n = node_checked(&tree, path, perms::READ | perms::ADMIN, &ids)?;
                if acl::allowed(&n.acl, perms::ADMIN, &ids) {
                    Acl::encode_list(&n.acl, b);
                } else {
                    // Without ADMIN, digest hashes are masked (ZooKeeper 3.8).
                    let masked: Vec<Acl> = n
                        .acl
                        .iter()
                        .map(|a| {
                            let mut a = a.clone();
                            if a.id.scheme == "digest" {
                                let user = a.id.id.split(':').next().unwrap_or("").to_string();
                                a.id.id = format!("{user}:x");
                            }
                            a
                        })
                        .collect();
                    Acl::encode_list(&masked, b);
                }
                n.stat().encode(b);
                Ok(())
            }),
            Request::GetAllChildrenNumber { path } => reply(out, xid, zxid, |b| {
                node_checked(&tree, path, perms::READ, &ids)?;
                b.put_i32(tree.descendant_count(path).unwrap_or(0));
                Ok(())
            }),
            Request::GetEphemerals { prefix } => reply(out, xid, zxid, |b| {
                let p = prefix.trim();
                let mut v: Vec<&String> = tree
                    .ephemerals_of(c.session_id())
                    .filter(|e| p.is_empty() || p == "/" || e.starts_with(prefix.as_str()))
                    .collect();
                if too_large(FRAME_HEADER_BYTES + strings_bytes(&v)) {
                    return Err(Code::MarshallingError);
                }
                v.sort();
                b.put_jstrings(&v);
                Ok(())
            }),
            Request::MultiRead(ops) => reply(out, xid, zxid, |b| {
                if too_large(multi_read_bytes(&tree, ops, &ids)) {
                    return Err(Code::MarshallingError);
                }
                for o in ops {
                    let (typ, path) = match o {
                        ReadOp::GetChildren { path } => (op::GET_CHILDREN, path),
                        ReadOp::GetData { path } => (op::GET_DATA, path),
                    };
                    match node_checked(&tree, path, perms::READ, &ids) {
                        Ok(n) => {
                            put_multi_header(b, typ, false, 0);
                            if typ == op::GET_DATA {
                                b.put_jbuffer_opt(n.data());
                                n.stat().encode(b);
                            } else {
                                b.put_i32(n.num_children() as i32);
                                for ch in tree.child_names(n) {
                                    b.put_jstring(ch);
                                }
                            }
                        }
                        Err(code) => {
                            put_multi_header(b, op::ERROR, false, code.as_i32());
                            b.put_i32(code.as_i32());
                        }
                    }
                }
                put_multi_header(b, -1, true, -1);
                Ok(())
            }),
            Request::AddWatch { path, mode } => {
                let kind = if *mode == crate::proto::codes::watch_mode::PERSISTENT_RECURSIVE {
                    Kind::Recursive
                } else {
                    Kind::Persistent
                };
                self.watches.add(kind, path, conn);
                reply(out, xid, zxid, |b| {
                    b.put_i32(0);
                    Ok(())
                })
            }
            Request::CheckWatches { path, kind } => reply(out, xid, zxid, |_| {
                if self.watches.has_watch(path, *kind, conn) {
                    Ok(())
                } else {
                    Err(Code::NoWatcher)
                }
            }),
            Request::RemoveWatches { path, kind } => reply(out, xid, zxid, |_| {
                if self.watches.remove_watches(path, *kind, conn) {
                    Ok(())
                } else {
                    Err(Code::NoWatcher)
                }
            }),
            Request::SetWatches(w) => {
                self.set_watches(conn, w, out);
                reply(out, xid, zxid, |_| Ok(()))
            }
            Request::WhoAmI => reply(out, xid, zxid, |b| {
                let infos: Vec<(&str, String)> = ids
                    .iter()
                    .map(|id| {
                        let user = match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or("").to_string(),
                            // ZooKeeper names no user for a scheme without a provider.
                            "sasl" if !crate::auth::sasl_scheme_registered() => String::new(),
                            _ => id.id.clone(),
                        };
                        (id.scheme.as_str(), user)
                    })
                    .collect();
                b.put_i32(infos.len() as i32);
                for (scheme, user) in infos {
                    b.put_jstring(scheme);
                    b.put_jstring(&user);
                }
                Ok(())
            }),
            // Writes never reach here; anything else is a request ZooKeeper would not serve.
            _ => {
                let _ = opcode;
                reply(out, xid, zxid, |_| Err(Code::Unimplemented))
            }
        }
    }

    /// setWatches after a reconnect: re-registers the watches, and fires at once those whose
    /// condition already changed after `relative_zxid` (the last zxid the client saw).
    fn set_watches(&mut self, conn: ConnId, w: &SetWatches, out: &mut BytesMut) {
        let rel = w.relative_zxid;
        let replica = self.tree.clone();
        let tree = replica.borrow();
        for p in &w.data {
            match tree.get(p) {
                None => notification(out, event::NODE_DELETED, p),
                Some(n) if n.mzxid > rel => notification(out, event::NODE_DATA_CHANGED, p),
                Some(_) => self.watches.add(Kind::Data, p, conn),
            }
        }
        for p in &w.exist {
            match tree.get(p) {
                Some(_) => notification(out, event::NODE_CREATED, p),
                None => self.watches.add(Kind::Data, p, conn),
            }
        }
        for p in &w.child {
            match tree.get(p) {
                None => notification(out, event::NODE_DELETED, p),
                Some(n) if n.pzxid > rel => notification(out, event::NODE_CHILDREN_CHANGED, p),
                Some(_) => self.watches.add(Kind::Child, p, conn),
            }
        }
        for p in &w.persistent {
            self.watches.add(Kind::Persistent, p, conn);
        }
        for p in &w.persistent_recursive {
            self.watches.add(Kind::Recursive, p, conn);
        }
    }
}
