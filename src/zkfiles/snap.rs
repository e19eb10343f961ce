//! ZooKeeper's snapshot file (`snapshot.<zxid hex>`), read into a corral [`DataTree`] and
//! written from one. The layout, as FileSnap, SerializeUtils, DataTree and
//! ReferenceCountedACLCache write it (jute, big-endian):
//!
//! ```text
//! header   = magic:i32("ZKSN") version:i32(2) dbid:i64
//! sessions = count:i32 (id:i64 timeout:i32)*
//! acls     = count:i32 (ref:i64 acl-vector)*          ref -1 in a node = OPEN_ACL_UNSAFE
//! nodes    = (path:string data:buffer acl-ref:i64 czxid mzxid ctime mtime:i64
//!             version cversion aversion:i32 ephemeralOwner pzxid:i64)*  "/":string
//!            pre-order, the root's path is ""
//! seal     = adler32:i64 "/":string                   Adler32 of every byte before it
//! then, optionally, each followed by its own seal (3.6+, 3.9+):
//!            digest = zxid:i64 version:i32 digest:i64 (a hex string below version 2)
//!            lastProcessedZxid:i64
//! ```
//! The stored cversion is the count of children ever created, in both servers (the client
//! sees `2 * cversion - children`), so stats carry over unchanged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::{adler32, session_password, FILE_VERSION};
use crate::proto::jute::{DecodeError, Reader, Writer};
use crate::proto::records::Acl;
use crate::tree::{join, parent_of, DataTree, Node, SessionEntry};

/// "ZKSN"
pub const MAGIC: i32 = 0x5a4b_534e;

/// What a snapshot held, for the tool's summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub nodes: usize,
    pub sessions: usize,
    /// Nodes whose ACL index the snapshot's ACL map lacks, with that index. ZooKeeper writes
    /// the map first and the nodes after it while writes go on, so a node created (or given
    /// a new ACL) during the walk can name a list allocated after the map was written. The
    /// txn that did it is in the log after the snapshot, and ZooKeeper's replay of it gives
    /// the node its ACL again (DataTree.createNode sets an existing node's ACL, setACL sets
    /// it); until then such a node holds an empty list. The importer refuses any node left
    /// here once the log is replayed.
    pub unlisted_acls: BTreeMap<String, i64>,
}

/// A reader that names the offset in its errors.
struct In {
    r: Reader,
    len: usize,
}

impl In {
    fn off(&self) -> usize {
        self.len - self.r.remaining()
    }

    fn fail(&self, e: DecodeError) -> String {
        match e {
            DecodeError::Truncated => format!(
                "the file ends inside a record at offset {} (truncated?)",
                self.off()
            ),
            DecodeError::Invalid(why) => format!("bad record at offset {}: {why}", self.off()),
        }
    }

    fn i32(&mut self) -> Result<i32, String> {
        let v = self.r.i32();
        v.map_err(|e| self.fail(e))
    }

    fn i64(&mut self) -> Result<i64, String> {
        let v = self.r.i64();
        v.map_err(|e| self.fail(e))
    }

    fn string(&mut self) -> Result<String, String> {
        let v = self.r.string();
        v.map_err(|e| self.fail(e))
    }

    fn buffer_opt(&mut self) -> Result<Option<Bytes>, String> {
        let v = self.r.buffer_opt();
        v.map_err(|e| self.fail(e))
    }

    fn count(&mut self, what: &str) -> Result<usize, String> {
        let at = self.off();
        let n = self.i32()?;
        // Every element takes at least 4 bytes: a larger count is damage, not a big list.
        if n < 0 || n as usize > self.r.remaining() / 4 {
            return Err(format!("bad {what} count {n} at offset {at}"));
        }
        Ok(n as usize)
    }

    fn acl_list(&mut self) -> Result<Vec<Acl>, String> {
        let n = self.count("ACL")?;
        (0..n)
            .map(|_| {
                let perms = self.i32()?;
                let scheme = self.string()?;
                let id = self.string()?;
                Ok(Acl {
                    perms,
                    id: crate::proto::records::Id { scheme, id },
                })
            })
            .collect()
    }

    /// SnapStream's seal: the Adler32 of `all` up to here, then "/".
    fn seal(&mut self, all: &[u8]) -> Result<(), String> {
        let at = self.off();
        let want = adler32(&all[..at]);
        let val = self.i64()?;
        if val != i64::from(want) {
            return Err(format!(
                "checksum at offset {at} does not match its contents: the snapshot is damaged"
            ));
        }
        if self.string()? != "/" {
            return Err(format!("no \"/\" after the checksum at offset {at}"));
        }
        Ok(())
    }
}

/// Reads a whole (uncompressed) ZooKeeper snapshot into a tree whose last zxid is `zxid` (the
/// one in the file's name). Any damage is an error: a bad checksum, a cut, a node before its
/// parent, trailing bytes. An ACL reference the file does not list is a fuzzy snapshot's
/// (see `Counts::unlisted_acls`), for the log replay to settle.
pub fn read(bytes: Bytes, zxid: i64) -> Result<(DataTree, Counts), String> {
    let all = bytes.clone();
    let mut r = In {
        len: bytes.len(),
        r: Reader::new(bytes),
    };
    if r.i32()? != MAGIC {
        return Err("not a ZooKeeper snapshot (no ZKSN magic)".into());
    }
    let version = r.i32()?;
    if version != FILE_VERSION {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let _dbid = r.i64()?;
    let mut tree = DataTree::new();
    let mut counts = Counts::default();
    for _ in 0..r.count("session")? {
        let id = r.i64()?;
        let timeout_ms = r.i32()?;
        tree.restore_session(
            id,
            SessionEntry {
                timeout_ms,
                password: session_password(id),
            },
        );
        counts.sessions += 1;
    }
    let mut acls: HashMap<i64, Arc<Vec<Acl>>> = HashMap::new();
    for _ in 0..r.count("ACL cache")? {
        let id = r.i64()?;
        let list = r.acl_list()?;
        acls.insert(id, Arc::new(list));
    }
    let open = Arc::new(Acl::open_unsafe());
    let unlisted = Arc::new(Vec::new());
    loop {
        let at = r.off();
        let path = r.string()?;
        if path == "/" {
            break;
        }
        let data = r.buffer_opt()?;
        let acl_ref = r.i64()?;
        let acl = match acl_ref {
            -1 => open.clone(),
            n => acls.get(&n).cloned().unwrap_or_else(|| {
                let p = if path.is_empty() { "/" } else { &path };
                counts.unlisted_acls.insert(p.to_string(), n);
                unlisted.clone()
            }),
        };
        let mut node = Node::detached(data.map(|d| crate::txn::Data::from(&d[..])), acl);
        node.czxid = r.i64()?;
        node.mzxid = r.i64()?;
        node.ctime = r.i64()?;
        node.mtime = r.i64()?;
        node.version = r.i32()?;
        node.cversion = r.i32()?;
        node.aversion = r.i32()?;
        node.ephemeral_owner = r.i64()?;
        node.pzxid = r.i64()?;
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        if crate::tree::validate_path(&path).is_err() {
            return Err(format!("bad node path {path:?} at offset {at}"));
        }
        if path != "/" && tree.get(parent_of(&path)).is_none() {
            return Err(format!(
                "node {path:?} at offset {at} comes before its parent: the snapshot is damaged"
            ));
        }
        tree.restore_node(&path, node);
        counts.nodes += 1;
    }
    r.seal(&all)?;
    if r.r.remaining() > 0 {
        // 3.6+: the digest of the tree at some zxid, under a second seal.
        let _zxid = r.i64()?;
        let digest_version = r.i32()?;
        if digest_version < 2 {
            r.string()?;
        } else {
            r.i64()?;
        }
        r.seal(&all)?;
    }
    if r.r.remaining() > 0 {
        // 3.9+: the last processed zxid, under a third seal.
        r.i64()?;
        r.seal(&all)?;
    }
    if r.r.remaining() > 0 {
        return Err(format!("unexpected bytes after offset {}", r.off()));
    }
    tree.set_last_zxid(zxid);
    Ok((tree, counts))
}

/// Writes `tree` as ZooKeeper 3.8 writes a snapshot (without the optional digest, which
/// ZooKeeper reads as absent): the bytes of `snapshot.<tree.last_zxid() hex>`.
pub fn write(tree: &DataTree) -> (Vec<u8>, Counts) {
    let mut b = BytesMut::new();
    let mut counts = Counts::default();
    b.put_i32(MAGIC);
    b.put_i32(FILE_VERSION);
    // FileSnap's dbId.
    b.put_i64(-1);
    let mut sessions: Vec<(i64, i32)> =
        tree.sessions().map(|(id, s)| (*id, s.timeout_ms)).collect();
    sessions.sort_unstable();
    b.put_i32(sessions.len() as i32);
    for (id, timeout) in &sessions {
        b.put_i64(*id);
        b.put_i32(*timeout);
        counts.sessions += 1;
    }
    // The ACL cache: every distinct list once, numbered from 1 as ZooKeeper numbers them, in
    // the order the nodes first use them.
    let mut order = Vec::new();
    walk(tree, |_, n| order.push(n.acl.clone()));
    let mut ids: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut lists = BytesMut::new();
    let mut node_refs = Vec::with_capacity(order.len());
    for acl in &order {
        let mut key = BytesMut::new();
        Acl::encode_list(acl, &mut key);
        let next = ids.len() as i64 + 1;
        let id = *ids.entry(key.to_vec()).or_insert_with(|| {
            lists.put_i64(next);
            lists.put_slice(&key);
            next
        });
        node_refs.push(id);
    }
    b.put_i32(ids.len() as i32);
    b.put_slice(&lists);
    let mut i = 0;
    walk(tree, |path, n| {
        b.put_jstring(if path == "/" { "" } else { path });
        b.put_jbuffer_opt(n.data());
        b.put_i64(node_refs[i]);
        i += 1;
        b.put_i64(n.czxid);
        b.put_i64(n.mzxid);
        b.put_i64(n.ctime);
        b.put_i64(n.mtime);
        b.put_i32(n.version);
        b.put_i32(n.cversion);
        b.put_i32(n.aversion);
        b.put_i64(n.ephemeral_owner);
        b.put_i64(n.pzxid);
        counts.nodes += 1;
    });
    b.put_jstring("/");
    let sum = adler32(&b);
    b.put_i64(i64::from(sum));
    b.put_jstring("/");
    (b.to_vec(), counts)
}

/// Every node in pre-order (a parent before its children, children sorted), without recursion:
/// a deep tree must not exhaust the stack.
fn walk(tree: &DataTree, mut each: impl FnMut(&str, &Node)) {
    let mut stack = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        let Some(node) = tree.get(&path) else {
            continue;
        };
        each(&path, node);
        if let Some(kids) = tree.children(&path) {
            stack.extend(kids.iter().rev().map(|k| join(&path, k)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::Id;
    use crate::txn::{Txn, TxnOp};

    fn sample() -> DataTree {
        let mut t = DataTree::new();
        let digest = vec![Acl {
            perms: 31,
            id: Id::new("digest", "u:h"),
        }];
        let mut z = 0;
        let mut txn = |t: &mut DataTree, session_id: i64, op: TxnOp| {
            z += 1;
            t.apply(&Txn {
                session_id,
                cxid: 0,
                zxid: z,
                time_ms: 1000 + z,
                op,
            });
        };
        txn(
            &mut t,
            0x77,
            TxnOp::CreateSession {
                timeout_ms: 5000,
                password: session_password(0x77),
            },
        );
        for (path, acl, owner) in [
            ("/a", Acl::open_unsafe(), 0),
            ("/a/b", digest.clone(), 0),
            ("/a/b/c", digest, 0x77),
            (
                "/d",
                Acl::open_unsafe(),
                crate::proto::codes::ephemeral_owner::CONTAINER,
            ),
        ] {
            txn(
                &mut t,
                0x77,
                TxnOp::Create {
                    opcode: 1,
                    path: path.into(),
                    data: Some(crate::txn::Data::from(&b"\x00\xffx"[..])),
                    acl,
                    ephemeral_owner: owner,
                    parent_cversion: 1,
                },
            );
        }
        txn(
            &mut t,
            0x77,
            TxnOp::SetData {
                path: "/a".into(),
                data: None,
                version: 3,
            },
        );
        t
    }

    #[test]
    fn written_snapshots_read_back() {
        let t = sample();
        let (bytes, counts) = write(&t);
        // node_count counts the root twice, as ZooKeeper does.
        assert_eq!(counts.nodes + 1, t.node_count());
        let (back, c2) = read(Bytes::from(bytes.clone()), t.last_zxid()).unwrap();
        assert_eq!(c2, counts);
        assert_eq!(back.digest(), t.digest());
        assert_eq!(back.last_zxid(), t.last_zxid());
        assert_eq!(back.session(0x77).unwrap().password, session_password(0x77));
        assert_eq!(back.get("/a").unwrap().data(), None);
        assert_eq!(
            back.get("/a/b/c").unwrap().stat(),
            t.get("/a/b/c").unwrap().stat()
        );
        // Every cut and every flipped byte is refused.
        for cut in 0..bytes.len() {
            assert!(
                read(Bytes::copy_from_slice(&bytes[..cut]), 1).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(read(Bytes::from(bad), 1).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn the_optional_digest_sections_are_checked() {
        let (mut bytes, _) = write(&sample());
        let mut extra = BytesMut::new();
        extra.put_i64(5);
        extra.put_i32(2);
        extra.put_i64(0x1234);
        bytes.extend_from_slice(&extra);
        let sum = adler32(&bytes);
        bytes.extend_from_slice(&i64::from(sum).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 1, b'/']);
        assert!(read(Bytes::from(bytes.clone()), 9).is_ok());
        let n = bytes.len();
        bytes[n - 8] ^= 1;
        assert!(read(Bytes::from(bytes), 9).is_err());
    }
}
