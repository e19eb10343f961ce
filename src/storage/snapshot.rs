//! Snapshots of the data tree and session table, taken while writes go on ("fuzzy", as in
//! ZooKeeper) and made exact at recovery by replaying the log from the snapshot's start zxid
//! with `DataTree::apply_replay`. Pure: bytes in, bytes out.
//!
//! ```text
//! snapshot = "CORRALSN" version:u32(1) zxid:i64 frame*
//! frame    = len:u32 crc:u32 payload[len]          crc = CRC32C(payload)
//! payload  = 1 session  id:i64 timeout_ms:i32 password:buffer(16)
//!          | 2 node     path:string data:buffer-or-null acl czxid:i64 mzxid:i64 ctime:i64
//!                       mtime:i64 version:i32 cversion:i32 aversion:i32 owner:i64 pzxid:i64
//!          | 3 end      nodes:i64 sessions:i64
//! ```
//! `zxid` is the last zxid applied when the snapshot began. Nodes come in pre-order (a parent
//! before its children); a file without its end frame, or with any bad CRC, is not a snapshot.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::limits::SNAPSHOT_CHUNK_BYTES;
use crate::proto::jute::{DecodeError, Reader as JuteReader, Writer};
use crate::proto::records::Acl;
use crate::tree::{join, DataTree, Node, SessionEntry};

pub const MAGIC: &[u8; 8] = b"CORRALSN";
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 20;
const SESSION: u8 = 1;
const NODE: u8 = 2;
const END: u8 = 3;

pub fn snapshot_name(zxid: i64) -> String {
    format!("snap-{zxid:016x}.snap")
}

pub fn parse_snapshot_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    (hex.len() == 16).then(|| i64::from_str_radix(hex, 16).ok())?
}

fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    // `limits` bounds a node's frame well inside a u32; a frame whose length wrapped would
    // make the snapshot unreadable.
    let len = u32::try_from(payload.len()).expect("snapshot frame within limits");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Walks the tree a few nodes at a time. Between steps the tree may change; the walk resumes
/// after the last child it emitted, so it never revisits or loops, and whatever it misses or
/// sees half-changed the log replay fixes.
pub struct Cursor {
    /// (node path, last child emitted under it)
    stack: Vec<(String, Option<String>)>,
    nodes: i64,
    sessions: i64,
    begun: bool,
}

impl Default for Cursor {
    fn default() -> Self {
        Self::new()
    }
}

impl Cursor {
    pub fn new() -> Cursor {
        Cursor {
            stack: Vec::new(),
            nodes: 0,
            sessions: 0,
            begun: false,
        }
    }

    /// The header and the session table; call once, first.
    pub fn begin(&mut self, tree: &DataTree, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&tree.last_zxid().to_be_bytes());
        let mut sessions: Vec<(&i64, &SessionEntry)> = tree.sessions().collect();
        sessions.sort_by_key(|(id, _)| **id);
        let mut p = BytesMut::new();
        for (id, s) in sessions {
            p.clear();
            p.put_u8(SESSION);
            p.put_i64(*id);
            p.put_i32(s.timeout_ms);
            p.put_jbuffer(&s.password);
            frame(out, &p);
            self.sessions += 1;
        }
        if let Some(root) = tree.get("/") {
            encode_node(out, "/", root);
            self.nodes += 1;
            self.stack.push(("/".to_string(), None));
        }
        self.begun = true;
    }

    /// Emits up to `max_nodes` more nodes, stopping early once the step has written
    /// `limits::SNAPSHOT_CHUNK_BYTES` (large nodes); true when the walk is complete (the end
    /// frame has been written).
    pub fn step(&mut self, tree: &DataTree, max_nodes: usize, out: &mut Vec<u8>) -> bool {
        assert!(self.begun, "begin first");
        let start = out.len();
        let mut emitted = 0;
        while emitted < max_nodes && out.len() - start < SNAPSHOT_CHUNK_BYTES {
            let Some((path, last)) = self.stack.last_mut() else {
                let mut p = BytesMut::new();
                p.put_u8(END);
                p.put_i64(self.nodes);
                p.put_i64(self.sessions);
                frame(out, &p);
                return true;
            };
            let next = tree.next_child(path, last.as_deref()).map(str::to_string);
            let Some(name) = next else {
                self.stack.pop();
                continue;
            };
            *last = Some(name.clone());
            let child = join(path, &name);
            if let Some(node) = tree.get(&child) {
                encode_node(out, &child, node);
                self.nodes += 1;
                emitted += 1;
                self.stack.push((child, None));
            }
        }
        false
    }
}

fn encode_node(out: &mut Vec<u8>, path: &str, n: &Node) {
    let mut p = BytesMut::new();
    p.put_u8(NODE);
    p.put_jstring(path);
    p.put_jbuffer_opt(n.data());
    Acl::encode_list(&n.acl, &mut p);
    p.put_i64(n.czxid);
    p.put_i64(n.mzxid);
    p.put_i64(n.ctime);
    p.put_i64(n.mtime);
    p.put_i32(n.version);
    p.put_i32(n.cversion);
    p.put_i32(n.aversion);
    p.put_i64(n.ephemeral_owner);
    p.put_i64(n.pzxid);
    frame(out, &p);
}

/// One entry of a snapshot, in file order: the sessions, then the nodes in pre-order, then the
/// end frame.
#[derive(Debug)]
pub enum Entry {
    Session {
        id: i64,
        entry: SessionEntry,
    },
    /// `node` has no children and no path yet: a snapshot lists each node once, children after it.
    Node {
        path: String,
        node: Node,
    },
    /// The end frame, after its counts have been checked against the frames before it.
    End {
        nodes: i64,
        sessions: i64,
    },
}

/// Reads a snapshot frame by frame, checking each frame's length and CRC and the end frame's
/// counts. Recovery (`load`) and the dump tool (`storage::dump`) share it, so both accept and
/// reject exactly the same files.
pub struct Reader {
    /// The whole file: frames are decoded as slices of it, without a copy each.
    bytes: Bytes,
    pos: usize,
    zxid: i64,
    nodes: i64,
    sessions: i64,
    done: bool,
}

impl Reader {
    /// Checks the header; fails on anything that is not a version-1 corral snapshot.
    pub fn new(bytes: Bytes) -> Result<Reader, String> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err("not a corral snapshot".into());
        }
        if bytes[8..12] != VERSION.to_be_bytes()[..] {
            return Err("unknown snapshot version".into());
        }
        Ok(Reader {
            zxid: i64::from_be_bytes(bytes[12..20].try_into().unwrap()),
            bytes,
            pos: HEADER_LEN,
            nodes: 0,
            sessions: 0,
            done: false,
        })
    }

    /// The last zxid applied when the snapshot began (log replay starts after it).
    pub fn zxid(&self) -> i64 {
        self.zxid
    }

    /// Offset of the next frame (after `End`: of the first byte past the end frame).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The next entry; `Ok(None)` after the end frame. Bytes after the end frame are not read.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, String> {
        if self.done {
            return Ok(None);
        }
        let (bytes, pos) = (&self.bytes, self.pos);
        if pos + 8 > bytes.len() {
            return Err("snapshot ends before its end frame".into());
        }
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().unwrap());
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
            return Err("snapshot frame runs past the end".into());
        };
        if crc32c::crc32c(payload) != crc {
            return Err(format!("snapshot frame at offset {pos} fails its CRC"));
        }
        let mut r = JuteReader::new(bytes.slice(pos + 8..pos + 8 + len));
        self.pos += 8 + len;
        let pos = self.pos;
        let bad = |e: DecodeError| format!("snapshot frame at offset {pos}: {e}");
        match r.u8().map_err(bad)? {
            SESSION => {
                let id = r.i64().map_err(bad)?;
                let timeout_ms = r.i32().map_err(bad)?;
                let pw = r.buffer().map_err(bad)?;
                let password: [u8; 16] = pw[..]
                    .try_into()
                    .map_err(|_| "session password length".to_string())?;
                self.sessions += 1;
                Ok(Some(Entry::Session {
                    id,
                    entry: SessionEntry {
                        timeout_ms,
                        password,
                    },
                }))
            }
            NODE => {
                let path = r.string().map_err(bad)?;
                // Copied: a slice would keep the whole file alive with the node.
                let data = r.buffer_opt().map_err(bad)?;
                let acl = Arc::new(Acl::decode_list(&mut r).map_err(bad)?);
                let mut node = Node::detached(data.map(|d| crate::txn::Data::from(&d[..])), acl);
                node.czxid = r.i64().map_err(bad)?;
                node.mzxid = r.i64().map_err(bad)?;
                node.ctime = r.i64().map_err(bad)?;
                node.mtime = r.i64().map_err(bad)?;
                node.version = r.i32().map_err(bad)?;
                node.cversion = r.i32().map_err(bad)?;
                node.aversion = r.i32().map_err(bad)?;
                node.ephemeral_owner = r.i64().map_err(bad)?;
                node.pzxid = r.i64().map_err(bad)?;
                self.nodes += 1;
                Ok(Some(Entry::Node { path, node }))
            }
            END => {
                let (n, s) = (r.i64().map_err(bad)?, r.i64().map_err(bad)?);
                if (n, s) != (self.nodes, self.sessions) {
                    return Err("snapshot counts do not match its end frame".into());
                }
                self.done = true;
                Ok(Some(Entry::End {
                    nodes: n,
                    sessions: s,
                }))
            }
            _ => Err(format!("unknown snapshot frame at offset {pos}")),
        }
    }
}

/// Reads a snapshot: the tree it holds and the zxid replay must start after.
pub fn load(bytes: &[u8]) -> Result<(DataTree, i64), String> {
    load_bytes(Bytes::copy_from_slice(bytes))
}

/// [`load`] from an owned buffer (a whole file read into memory), without copying it.
pub fn load_bytes(bytes: Bytes) -> Result<(DataTree, i64), String> {
    let mut r = Reader::new(bytes)?;
    let mut tree = DataTree::new();
    while let Some(e) = r.next_entry()? {
        match e {
            Entry::Session { id, entry } => tree.restore_session(id, entry),
            Entry::Node { path, node } => tree.restore_node(&path, node),
            Entry::End { .. } => {}
        }
    }
    tree.set_last_zxid(r.zxid());
    Ok((tree, r.zxid()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{Txn, TxnOp};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// A random valid write against `tree`, as the write core would produce it.
    fn random_txn(tree: &mut DataTree, rng: &mut Rng, zxid: i64) -> Txn {
        use crate::prep::{prep, PrepCtx};
        use crate::proto::records::{CreateRequest, Request};
        let paths = ["/a", "/a/b", "/a/c", "/d", "/d/e", "/d/e/f", "/g"];
        let path = paths[(rng.next() % paths.len() as u64) as usize].to_string();
        let req = match rng.next() % 6 {
            0 | 1 => Request::Create(CreateRequest {
                opcode: 1,
                path,
                data: Some(Bytes::from(format!("v{zxid}"))),
                acl: Acl::open_unsafe(),
                flags: (rng.next() % 4) as i32 & 2, // persistent or sequential
                ttl: -1,
            }),
            2 => Request::Delete { path, version: -1 },
            3 => Request::SetData {
                path,
                data: Some(Bytes::from(format!("s{zxid}"))),
                version: -1,
            },
            // A multi: fails (logged as a failed multi) unless /g exists with version 0.
            4 => {
                use crate::proto::records::MultiOp;
                Request::Multi(vec![
                    MultiOp::SetData {
                        path,
                        data: Some(Bytes::from(format!("m{zxid}"))),
                        version: -1,
                    },
                    MultiOp::Check {
                        path: "/g".into(),
                        version: 0,
                    },
                ])
            }
            _ => Request::SetAcl {
                path,
                acl: Acl::open_unsafe(),
                version: -1,
            },
        };
        let ctx = PrepCtx {
            session_id: 7,
            zxid,
            ids: &[],
            extended_types: false,
            enforce_quota: false,
            max_txn: crate::limits::TXN_MAX,
        };
        Txn {
            session_id: 7,
            cxid: 0,
            zxid,
            time_ms: zxid * 10,
            op: prep(
                &mut crate::overlay::View::new(tree, &mut Default::default()),
                &req,
                &ctx,
            ),
        }
    }

    #[test]
    fn fuzzy_snapshot_plus_replay_equals_the_live_tree() {
        for seed in 1..200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut live = DataTree::new();
            let mut zxid = 0;
            let apply = |live: &mut DataTree, rng: &mut Rng, zxid: &mut i64| {
                *zxid += 1;
                let t = random_txn(live, rng, *zxid);
                live.apply(&t);
                t
            };
            // Quotas on /a (its stat node counting what is there) and on /d/e.
            for (i, (path, data)) in [
                ("/zookeeper/quota/a", ""),
                ("/zookeeper/quota/a/zookeeper_limits", "count=2,bytes=-1"),
                ("/zookeeper/quota/d", ""),
                ("/zookeeper/quota/d/e", ""),
                ("/zookeeper/quota/d/e/zookeeper_limits", "count=-1,bytes=5"),
            ]
            .into_iter()
            .enumerate()
            {
                zxid += 1;
                live.apply(&Txn {
                    session_id: 7,
                    cxid: 0,
                    zxid,
                    time_ms: 0,
                    op: TxnOp::Create {
                        opcode: 1,
                        path: path.into(),
                        data: Some(crate::txn::Data::from(data.as_bytes())),
                        acl: Acl::open_unsafe(),
                        ephemeral_owner: 0,
                        parent_cversion: i as i32 + 1,
                    },
                });
            }
            for _ in 0..40 {
                apply(&mut live, &mut rng, &mut zxid);
            }
            for (i, path) in [
                "/zookeeper/quota/a/zookeeper_stats",
                "/zookeeper/quota/d/e/zookeeper_stats",
            ]
            .into_iter()
            .enumerate()
            {
                zxid += 1;
                live.apply(&Txn {
                    session_id: 7,
                    cxid: 0,
                    zxid,
                    time_ms: 0,
                    op: TxnOp::Create {
                        opcode: 1,
                        path: path.into(),
                        data: Some(crate::txn::Data::from(&b"count=0,bytes=0"[..])),
                        acl: Acl::open_unsafe(),
                        ephemeral_owner: 0,
                        parent_cversion: 10 + i as i32,
                    },
                });
            }
            for _ in 0..10 {
                apply(&mut live, &mut rng, &mut zxid);
            }
            // Snapshot while writes continue between steps.
            let mut out = Vec::new();
            let mut cur = Cursor::new();
            cur.begin(&live, &mut out);
            let mut log = Vec::new();
            loop {
                for _ in 0..(rng.next() % 4) {
                    log.push(apply(&mut live, &mut rng, &mut zxid));
                }
                if cur.step(&live, 1 + (rng.next() % 3) as usize, &mut out) {
                    break;
                }
            }
            for _ in 0..10 {
                log.push(apply(&mut live, &mut rng, &mut zxid));
            }
            let (mut restored, start) = load(&out).unwrap();
            for t in log.iter().filter(|t| t.zxid > start) {
                restored.apply_replay(t);
            }
            // As recovery does: replay over a fuzzy snapshot double-counts quota usage.
            restored.setup_quotas();
            assert_eq!(restored.digest(), live.digest(), "seed {seed}");
            assert_eq!(restored.node_count(), live.node_count(), "seed {seed}");
            assert_eq!(
                restored.approximate_data_size(),
                live.approximate_data_size(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn truncated_or_corrupt_snapshot_is_rejected() {
        let mut t = DataTree::new();
        t.apply(&Txn {
            session_id: 1,
            cxid: 0,
            zxid: 1,
            time_ms: 0,
            op: TxnOp::CreateSession {
                timeout_ms: 4000,
                password: [3; 16],
            },
        });
        let mut out = Vec::new();
        let mut c = Cursor::new();
        c.begin(&t, &mut out);
        while !c.step(&t, 1, &mut out) {}
        let (back, z) = load(&out).unwrap();
        assert_eq!(z, 1);
        assert!(back.session(1).is_some());
        assert_eq!(back.digest(), t.digest());
        for cut in 0..out.len() {
            assert!(load(&out[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = out.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        assert!(load(&bad).is_err());
        assert_eq!(parse_snapshot_name(&snapshot_name(77)), Some(77));
    }
}
