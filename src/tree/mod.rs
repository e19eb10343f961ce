//! The data tree: znodes, their stat, the session table and the per-session ephemeral index.
//!
//! Pure state, owned by one core. Every shard keeps a replica, of the committed txns only; the
//! write core reads shard 0's (or, with an executor of its own, keeps one more) and checks
//! requests against it through `overlay`. All replicas change only through
//! [`DataTree::apply`], which takes a validated [`Txn`] and cannot fail, so replicas that apply
//! the same txns in zxid order are identical.
//!
//! Stat rules follow ZooKeeper's DataTree: the stored `cversion` counts child *creations*
//! (it names sequential children); the cversion clients see is `2 * creations - children`, i.e.
//! it also counts deletions. Deleting a child moves the parent's pzxid but not its stored cversion.

pub mod acl;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::proto::codes::{ephemeral_owner, event, perms, Code};
use crate::proto::records::{Acl, Id, Stat};
use crate::quota;
use crate::txn::{Data, Txn, TxnOp};

#[derive(Debug, Clone)]
pub struct Node {
    /// The node's own absolute path: the tree's index and its parent's child list find the
    /// node by id and read its path and name from here, so each is stored once.
    path: NodePath,
    /// None for null data (sent with length -1), which clients get back as null.
    data: Option<Data>,
    pub acl: Arc<Vec<Acl>>,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    /// Count of children ever created (ZooKeeper's stored cversion).
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
    /// Where the name starts in `path` (child lists compare names often).
    name_at: u32,
    /// None for a leaf (most nodes), so a leaf pays one pointer.
    children: Option<Box<Kids>>,
}

impl Node {
    fn new(
        path: &str,
        data: Option<Data>,
        acl: Arc<Vec<Acl>>,
        zxid: i64,
        time: i64,
        owner: i64,
    ) -> Node {
        Node {
            path: NodePath::new(path),
            data,
            acl,
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            pzxid: zxid,
            name_at: name_at(path),
            children: None,
        }
    }

    /// A node outside any tree (as a snapshot is read): no path, no children, a zero stat.
    /// [`DataTree::restore_node`] gives it its path.
    pub fn detached(data: Option<Data>, acl: Arc<Vec<Acl>>) -> Node {
        Node::new("", data, acl, 0, 0, 0)
    }

    /// The node's absolute path (empty for a detached node).
    pub fn path(&self) -> &str {
        self.path.as_str()
    }

    /// The node's data; None for null data, which is not the same as empty data.
    pub fn data(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }

    /// The node's data as the tree holds it (a clone shares it).
    pub fn data_shared(&self) -> Option<Data> {
        self.data.clone()
    }

    pub fn num_children(&self) -> usize {
        self.children.as_ref().map_or(0, |k| k.len())
    }

    /// The stat a client sees.
    pub fn stat(&self) -> Stat {
        let n = self.num_children() as i32;
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion.wrapping_mul(2).wrapping_sub(n),
            aversion: self.aversion,
            // Containers and TTL nodes keep their kind in the owner field; clients see 0.
            ephemeral_owner: if self.is_session_ephemeral() {
                self.ephemeral_owner
            } else {
                0
            },
            data_length: self.data_len() as i32,
            num_children: n,
            pzxid: self.pzxid,
        }
    }

    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    /// An ephemeral owned by a session (not a container or TTL node).
    pub fn is_session_ephemeral(&self) -> bool {
        self.ephemeral_owner != 0
            && self.ephemeral_owner != ephemeral_owner::CONTAINER
            && ephemeral_owner::ttl_of(self.ephemeral_owner).is_none()
    }

    /// The last component of the path, as bytes (names sort as their bytes do).
    fn name(&self) -> &[u8] {
        &self.path.as_bytes()[self.name_at as usize..]
    }
}

fn name_at(path: &str) -> u32 {
    (path.len() - name_of(path).len()) as u32
}

/// A node's path, kept inside the node when it is short (most are): checking a looked-up path
/// then reads only the node's own memory, and the node needs no second allocation.
#[derive(Debug, Clone)]
enum NodePath {
    Inline { len: u8, bytes: [u8; INLINE_PATH] },
    Heap(Box<str>),
}

/// The longest inline path: with its length and the tag it fills 32 bytes.
const INLINE_PATH: usize = 30;

impl NodePath {
    fn new(path: &str) -> NodePath {
        if path.len() <= INLINE_PATH {
            let mut bytes = [0; INLINE_PATH];
            bytes[..path.len()].copy_from_slice(path.as_bytes());
            NodePath::Inline {
                len: path.len() as u8,
                bytes,
            }
        } else {
            NodePath::Heap(path.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            NodePath::Inline { len, bytes } => &bytes[..*len as usize],
            NodePath::Heap(p) => p.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        utf8(self.as_bytes())
    }
}

impl Default for NodePath {
    fn default() -> Self {
        NodePath::new("")
    }
}

/// A path or name held as bytes; always made from a `str`, so the check cannot fail.
fn utf8(name: &[u8]) -> &str {
    std::str::from_utf8(name).expect("made from a str")
}

/// A node's children, in name order, as ids into the tree's [`Slab`]: 4 bytes a child, the
/// name being read from the child itself.
#[derive(Debug, Clone)]
enum Kids {
    /// Sorted by the children's names.
    Few(Vec<u32>),
    /// A large directory, keyed by name so that inserting and removing stay logarithmic
    /// (a sorted vector would move megabytes per change); costs a name copy per child.
    Many(BTreeMap<Box<str>, u32>),
}

/// Above this many children a directory becomes [`Kids::Many`]; at or below [`FEW_AT`] it goes
/// back (the gap keeps a directory hovering at the bound from switching at each change).
const MANY_AT: usize = 2048;
const FEW_AT: usize = 1024;

impl Kids {
    fn len(&self) -> usize {
        match self {
            Kids::Few(v) => v.len(),
            Kids::Many(m) => m.len(),
        }
    }
}

/// The child ids of `node`, in name order.
fn kid_ids(node: &Node) -> impl Iterator<Item = u32> + '_ {
    let (few, many) = match node.children.as_deref() {
        None => (&[][..], None),
        Some(Kids::Few(v)) => (&v[..], None),
        Some(Kids::Many(m)) => (&[][..], Some(m.values())),
    };
    few.iter()
        .copied()
        .chain(many.into_iter().flatten().copied())
}

/// A path's hash: its bytes alone (a whole key, so it needs no length or terminator mixed in).
fn hash_path(state: &ahash::RandomState, path: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = state.build_hasher();
    h.write(path);
    h.finish()
}

/// Node storage: nodes live in fixed-size chunks, addressed by a u32 id that stays valid until
/// the node is removed (its slot is then reused). Chunks are never moved or reallocated, so
/// growing the tree copies nothing and wastes at most one partly filled chunk.
#[derive(Clone, Default)]
struct Slab {
    chunks: Vec<Vec<Option<Node>>>,
    free: Vec<u32>,
}

const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

impl Slab {
    fn slot(&self, id: u32) -> &Option<Node> {
        &self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    fn slot_mut(&mut self, id: u32) -> &mut Option<Node> {
        &mut self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    #[inline]
    fn get(&self, id: u32) -> &Node {
        self.slot(id).as_ref().expect("live node id")
    }

    fn get_mut(&mut self, id: u32) -> &mut Node {
        self.slot_mut(id).as_mut().expect("live node id")
    }

    fn insert(&mut self, node: Node) -> u32 {
        if let Some(id) = self.free.pop() {
            *self.slot_mut(id) = Some(node);
            return id;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let c = self.chunks.len() - 1;
        let chunk = &mut self.chunks[c];
        chunk.push(Some(node));
        u32::try_from((c << CHUNK_BITS) | (chunk.len() - 1)).expect("fewer than 2^32 nodes")
    }

    fn remove(&mut self, id: u32) -> Node {
        let node = self.slot_mut(id).take().expect("live node id");
        self.free.push(id);
        node
    }

    fn iter(&self) -> impl Iterator<Item = &Node> {
        self.chunks.iter().flatten().flatten()
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout_ms: i32,
    pub password: [u8; 16],
}

/// A watch trigger produced by applying a txn: `kind` is a watch event type.
///
/// `read_acl` is the ACL a watcher must pass with READ to be told (ZooKeeper 3.9.2's fix for
/// CVE-2024-23944, docs/decisions.md "Watch events and ACLs"): the changed node's own ACL for
/// NodeCreated, NodeDataChanged and NodeDeleted (a deleted node's as it was), the parent's for
/// NodeChildrenChanged, each as it was when the change happened. `None` when anyone may read
/// that node, the common case, so delivery needs no per-connection check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub path: String,
    pub kind: i32,
    pub read_acl: Option<Arc<Vec<Acl>>>,
}

impl Trigger {
    fn new(path: &str, kind: i32, acl: &Arc<Vec<Acl>>) -> Trigger {
        Trigger {
            path: path.to_string(),
            kind,
            read_acl: (!acl::world_readable(acl)).then(|| acl.clone()),
        }
    }
}

/// What applying one op produced, for the reply to the session that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Created { path: String, stat: Stat },
    Deleted,
    SetData(Stat),
    SetAcl(Stat),
    Checked,
    Error(Code),
    Session,
}

#[derive(Debug, Default)]
pub struct Applied {
    pub results: Vec<OpResult>,
    pub triggers: Vec<Trigger>,
}

/// Interned ACL lists, so that nodes with equal ACLs share one allocation (ZooKeeper's
/// ReferenceCountedACLCache does the same for its snapshots). Lists no node uses any more are
/// dropped when the cache has doubled since the last sweep, which keeps it bounded by twice
/// the lists in use.
#[derive(Clone, Default)]
struct AclCache {
    lists: HashMap<Vec<Acl>, Arc<Vec<Acl>>>,
    sweep_at: usize,
}

impl AclCache {
    fn intern(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        if let Some(a) = self.lists.get(acl) {
            return a.clone();
        }
        if self.lists.len() >= self.sweep_at {
            self.lists.retain(|_, a| Arc::strong_count(a) > 1);
            self.sweep_at = (self.lists.len() * 2).max(64);
        }
        let a = Arc::new(acl.to_vec());
        self.lists.insert(acl.to_vec(), a.clone());
        a
    }
}

/// Memory matters here: every shard holds a replica, so a tree of N znodes costs N times the
/// per-node overhead once per replica (znode data itself is shared: every replica holds the
/// same `Data`). The layout, per znode: the node, 128 bytes, in a `Slab` chunk (no allocator
/// rounding), its path inside it when at most 30 bytes (else one more allocation); a 4-byte id
/// in the path index (a `HashTable<u32>` hashed through the node's path, about 10 bytes a node
/// at its load factor) and in its parent's sorted child list; ACL lists interned. With 1M
/// znodes of 100 B (paths of 23 bytes, 1000 per parent) one tree, data included, grows the
/// process by 292 MiB (394 MiB with boxed nodes, `Box<str>` keys and `BTreeSet` child names),
/// measured by building it through `apply` and reading the RSS growth.
#[derive(Clone)]
pub struct DataTree {
    slab: Slab,
    /// Path -> node id, hashed by the node's own path.
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    acls: AclCache,
    sessions: HashMap<i64, SessionEntry>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    last_zxid: i64,
    data_size: u64,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

/// The parent of an absolute path (`/` for top-level nodes).
pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

/// The last component of an absolute path.
pub fn name_of(path: &str) -> &str {
    &path[path.rfind('/').map(|i| i + 1).unwrap_or(0)..]
}

/// ZooKeeper's `PathUtils.validatePath`: absolute, no empty, `.` or `..` components, no trailing
/// slash, no control or reserved characters.
pub fn validate_path(path: &str) -> Result<(), Code> {
    if !path.starts_with('/') {
        return Err(Code::BadArguments);
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(Code::BadArguments);
    }
    for comp in path[1..].split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(Code::BadArguments);
        }
    }
    let bad = |c: char| {
        c == '\0'
            || ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
            // Java holds these as surrogate pairs, in its refused range d800..=dfff.
            || c > '\u{ffff}'
    };
    if path.chars().any(bad) {
        return Err(Code::BadArguments);
    }
    Ok(())
}

impl DataTree {
    /// A fresh tree as ZooKeeper starts one: `/`, `/zookeeper`, `/zookeeper/quota`,
    /// `/zookeeper/config` (the last readable by anyone, writable by no one).
    pub fn new() -> DataTree {
        let mut t = DataTree {
            slab: Slab::default(),
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            acls: AclCache::default(),
            sessions: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            last_zxid: 0,
            data_size: 0,
        };
        let open = t.acls.intern(&Acl::open_unsafe());
        let read_only = t.acls.intern(&[Acl {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        }]);
        for (path, acl) in [
            ("/", &open),
            ("/zookeeper", &open),
            ("/zookeeper/quota", &open),
            ("/zookeeper/config", &read_only),
        ] {
            let parent = (path != "/").then(|| t.id_of(parent_of(path)).expect("parent"));
            t.link(
                parent,
                Node::new(path, Some(Data::from(&[][..])), acl.clone(), 0, 0, 0),
            );
        }
        t
    }

    fn id_of(&self, path: &str) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(hash_path(&self.hasher, path.as_bytes()), |&id| {
                slab.get(id).path.as_bytes() == path.as_bytes()
            })
            .copied()
    }

    fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        let id = self.id_of(path)?;
        Some(self.slab.get_mut(id))
    }

    /// Puts `node` in the tree under its path and its parent (None for the root); it must
    /// not be there yet.
    fn link(&mut self, parent: Option<u32>, mut node: Node) -> u32 {
        node.children = None;
        let path = node.path.as_bytes();
        let hash = hash_path(&self.hasher, path);
        let (slab, hasher) = (&self.slab, &self.hasher);
        assert!(
            self.index
                .find(hash, |&id| slab.get(id).path.as_bytes() == path)
                .is_none(),
            "node absent"
        );
        self.data_size += (path.len() + node.data_len()) as u64;
        let id = self.slab.insert(node);
        let slab = &self.slab;
        self.index.insert_unique(hash, id, |&i| {
            hash_path(hasher, slab.get(i).path.as_bytes())
        });
        if let Some(parent) = parent {
            self.add_kid(parent, id);
        }
        id
    }

    /// Takes the node at `path` out of the tree and out of its parent (`parent`, if there is
    /// one); its children, if any, stay behind: callers remove them first or after.
    fn unlink(&mut self, parent: Option<u32>, path: &str) -> Option<Node> {
        let slab = &self.slab;
        let hash = hash_path(&self.hasher, path.as_bytes());
        let (id, _) = self
            .index
            .find_entry(hash, |&id| slab.get(id).path.as_bytes() == path.as_bytes())
            .ok()?
            .remove();
        if let Some(parent) = parent {
            self.remove_kid(parent, name_of(path).as_bytes());
        }
        let node = self.slab.remove(id);
        self.data_size -= (path.len() + node.data_len()) as u64;
        Some(node)
    }

    fn add_kid(&mut self, parent: u32, kid: u32) {
        // Out of the parent while the children's names are read from the slab.
        let mut kids = self.slab.get_mut(parent).children.take();
        let slab = &self.slab;
        let name = slab.get(kid).name();
        match kids.as_deref_mut() {
            None => kids = Some(Box::new(Kids::Few(vec![kid]))),
            Some(Kids::Few(v)) => {
                // Appending is the common case (sequential nodes, snapshot load).
                let at = if v.last().is_none_or(|&l| slab.get(l).name() < name) {
                    v.len()
                } else {
                    v.partition_point(|&c| slab.get(c).name() < name)
                };
                v.insert(at, kid);
                if v.len() > MANY_AT {
                    let many = v
                        .iter()
                        .map(|&c| (utf8(slab.get(c).name()).into(), c))
                        .collect();
                    kids = Some(Box::new(Kids::Many(many)));
                }
            }
            Some(Kids::Many(m)) => {
                m.insert(utf8(name).into(), kid);
            }
        }
        self.slab.get_mut(parent).children = kids;
    }

    fn remove_kid(&mut self, parent: u32, name: &[u8]) {
        let mut kids = self.slab.get_mut(parent).children.take();
        let slab = &self.slab;
        match kids.as_deref_mut() {
            None => {}
            Some(Kids::Few(v)) => {
                if let Ok(at) = v.binary_search_by(|&c| slab.get(c).name().cmp(name)) {
                    v.remove(at);
                }
                if v.is_empty() {
                    kids = None;
                } else if v.capacity() > 4 * v.len() {
                    v.shrink_to(2 * v.len());
                }
            }
            Some(Kids::Many(m)) => {
                m.remove(utf8(name));
                if m.len() <= FEW_AT {
                    kids = Some(Box::new(Kids::Few(m.values().copied().collect())));
                }
            }
        }
        self.slab.get_mut(parent).children = kids;
    }

    /// Paths of the children of the node `id`, in name order.
    fn kid_paths(&self, node: &Node) -> Vec<String> {
        kid_ids(node)
            .map(|c| self.slab.get(c).path().to_string())
            .collect()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        let slab = &self.slab;
        let mut found = None;
        self.index
            .find(hash_path(&self.hasher, path.as_bytes()), |&id| {
                let n = slab.get(id);
                let hit = n.path.as_bytes() == path.as_bytes();
                if hit {
                    found = Some(n);
                }
                hit
            })
            .and(found)
    }

    /// Names of `node`'s children, in sorted order (`node` must be one of this tree's).
    pub fn child_names<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a str> + 'a {
        kid_ids(node).map(|c| utf8(self.slab.get(c).name()))
    }

    /// The first child of `path` whose name sorts after `after` (the first child if None).
    pub fn next_child(&self, path: &str, after: Option<&str>) -> Option<&str> {
        let slab = &self.slab;
        match self.get(path)?.children.as_deref()? {
            Kids::Few(v) => {
                let at = after.map_or(0, |a| {
                    v.partition_point(|&c| slab.get(c).name() <= a.as_bytes())
                });
                v.get(at).map(|&c| utf8(slab.get(c).name()))
            }
            Kids::Many(m) => match after {
                None => m.keys().next(),
                Some(a) => m
                    .range::<str, _>((Bound::Excluded(a), Bound::Unbounded))
                    .next()
                    .map(|(k, _)| k),
            }
            .map(|k| &**k),
        }
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Node count as ZooKeeper reports it: its DataTree also maps "" to the root, so a fresh
    /// server reports 5 for 4 nodes. Monitoring compares against that number.
    pub fn node_count(&self) -> usize {
        self.index.len() + 1
    }

    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    pub fn session(&self, id: i64) -> Option<&SessionEntry> {
        self.sessions.get(&id)
    }

    pub fn sessions(&self) -> impl Iterator<Item = (&i64, &SessionEntry)> {
        self.sessions.iter()
    }

    pub fn ephemerals_of(&self, session: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session).into_iter().flatten()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    pub fn containers(&self) -> impl Iterator<Item = &String> {
        self.containers.iter()
    }

    pub fn ttl_nodes(&self) -> impl Iterator<Item = &String> {
        self.ttls.iter()
    }

    /// Number of descendants of `path` (getAllChildrenNumber).
    pub fn descendant_count(&self, path: &str) -> Option<i32> {
        let mut stack = vec![self.id_of(path)?];
        let mut count = 0;
        while let Some(id) = stack.pop() {
            let before = stack.len();
            stack.extend(kid_ids(self.slab.get(id)));
            count += (stack.len() - before) as i32;
        }
        Some(count)
    }

    /// Applies a committed transaction. Panics if the txn does not fit the tree: that would mean
    /// replicas diverged, and serving from a diverged replica is worse than stopping.
    pub fn apply(&mut self, txn: &Txn) -> Applied {
        let mut out = Applied::default();
        match &txn.op {
            TxnOp::Multi(ops) => {
                for op in ops {
                    let res = self.apply_op(txn, op, &mut out.triggers);
                    out.results.push(res);
                }
            }
            TxnOp::MultiError(codes) => {
                out.results = codes.iter().map(|c| OpResult::Error(*c)).collect();
            }
            op => {
                let res = self.apply_op(txn, op, &mut out.triggers);
                out.results.push(res);
            }
        }
        if txn.zxid > self.last_zxid {
            self.last_zxid = txn.zxid;
        }
        out
    }

    /// Applies a logged txn on top of a fuzzy snapshot (one taken while writes went on), with
    /// ZooKeeper's replay rules: every txn carries absolute values, so applying the log from the
    /// snapshot's start zxid converges on the exact state, provided each op tolerates finding
    /// its effect already there (a create of an existing node only sets its ACL and moves the
    /// parent's cversion and pzxid forward) or its subject gone (a set on a missing node is skipped). A delete
    /// also removes descendants: any node below it in the snapshot was created after the delete
    /// and is created again by a later record.
    pub fn apply_replay(&mut self, txn: &Txn) {
        let ops: Vec<&TxnOp> = match &txn.op {
            TxnOp::Multi(ops) => ops.iter().collect(),
            // A failed multi changed nothing (and `apply_op` takes no multi).
            TxnOp::MultiError(_) => vec![],
            op => vec![op],
        };
        let mut sink = Vec::new();
        for op in ops {
            match op {
                TxnOp::Create {
                    path,
                    acl,
                    parent_cversion,
                    ..
                } => {
                    let Some(parent) = self.id_of(parent_of(path)) else {
                        continue;
                    };
                    if let Some(id) = self.id_of(path) {
                        // ZooKeeper's createNode gives the existing node the txn's ACL: a
                        // fuzzy ZooKeeper snapshot can hold this node with an ACL index its
                        // map lacks (zkfiles::snap), and this is where it gets its list.
                        // Any later setACL is replayed after it, so the end state holds.
                        let acl = self.acls.intern(acl);
                        self.slab.get_mut(id).acl = acl;
                        let parent = self.slab.get_mut(parent);
                        if *parent_cversion > parent.cversion {
                            parent.cversion = *parent_cversion;
                            parent.pzxid = txn.zxid;
                        }
                        continue;
                    }
                }
                TxnOp::Delete { path } => {
                    let Some(id) = self.id_of(path) else {
                        if let Some(parent) = self.node_mut(parent_of(path)) {
                            parent.pzxid = parent.pzxid.max(txn.zxid);
                        }
                        continue;
                    };
                    for c in self.kid_paths(self.slab.get(id)) {
                        self.remove_subtree(&c);
                    }
                }
                TxnOp::SetData { path, .. } | TxnOp::SetAcl { path, .. }
                    if self.id_of(path).is_none() =>
                {
                    continue
                }
                _ => {}
            }
            self.apply_op(txn, op, &mut sink);
            sink.clear();
        }
        if txn.zxid > self.last_zxid {
            self.last_zxid = txn.zxid;
        }
    }

    /// Removes `path` and everything below it, without touching stats (replay only).
    fn remove_subtree(&mut self, path: &str) {
        let parent = self.id_of(parent_of(path));
        let Some(node) = self.unlink(parent, path) else {
            return;
        };
        self.unindex_owner(path, node.ephemeral_owner);
        for c in self.kid_paths(&node) {
            self.remove_subtree(&c);
        }
    }

    /// Puts a node read from a snapshot in place (its parent must be there already): replaces
    /// an existing node's contents, keeping its children.
    pub fn restore_node(&mut self, path: &str, mut node: Node) {
        node.acl = self.acls.intern(&node.acl);
        if let Some(id) = self.id_of(path) {
            let old = self.slab.get_mut(id);
            node.children = old.children.take();
            node.path = std::mem::take(&mut old.path);
            node.name_at = old.name_at;
            let old_owner = old.ephemeral_owner;
            let new_owner = node.ephemeral_owner;
            self.data_size = self.data_size + node.data_len() as u64 - old.data_len() as u64;
            *old = node;
            self.unindex_owner(path, old_owner);
            self.index_owner(path, new_owner);
            return;
        }
        let parent = self.id_of(parent_of(path));
        if path != "/" && parent.is_none() {
            return;
        }
        node.path = NodePath::new(path);
        node.name_at = name_at(path);
        let owner = node.ephemeral_owner;
        self.link(parent.filter(|_| path != "/"), node);
        self.index_owner(path, owner);
    }

    pub fn restore_session(&mut self, id: i64, entry: SessionEntry) {
        self.sessions.insert(id, entry);
    }

    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    /// Applies one op; returns its result.
    fn apply_op(&mut self, txn: &Txn, op: &TxnOp, triggers: &mut Vec<Trigger>) -> OpResult {
        let zxid = txn.zxid;
        match op {
            TxnOp::CreateSession {
                timeout_ms,
                password,
            } => {
                self.sessions.insert(
                    txn.session_id,
                    SessionEntry {
                        timeout_ms: *timeout_ms,
                        password: *password,
                    },
                );
                OpResult::Session
            }
            TxnOp::CloseSession => {
                // The owner index, sorted: every replica deletes in the same order, so the
                // events a shard fires come in the same order everywhere.
                let owned = self.ephemerals.remove(&txn.session_id).unwrap_or_default();
                for path in &owned {
                    if self.id_of(path).is_some() {
                        self.delete_node(path, zxid, triggers);
                    }
                }
                self.sessions.remove(&txn.session_id);
                OpResult::Session
            }
            TxnOp::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
                ..
            } => {
                let parent_path = parent_of(path);
                let parent_id = self.id_of(parent_path).expect("create: parent exists");
                let parent = self.slab.get_mut(parent_id);
                let parent_acl = parent.acl.clone();
                if *parent_cversion > parent.cversion {
                    parent.cversion = *parent_cversion;
                    parent.pzxid = zxid;
                }
                let acl = self.acls.intern(acl);
                triggers.push(Trigger::new(path, event::NODE_CREATED, &acl));
                triggers.push(Trigger::new(
                    parent_path,
                    event::NODE_CHILDREN_CHANGED,
                    &parent_acl,
                ));
                let node = Node::new(path, data.clone(), acl, zxid, txn.time_ms, *ephemeral_owner);
                let stat = node.stat();
                self.link(Some(parent_id), node);
                self.index_owner(path, *ephemeral_owner);
                if let Some(counted) = quota::counted_by_stat_node(path) {
                    self.count_quota(counted);
                }
                self.add_quota_usage(path, 1, data.as_ref().map_or(0, |d| d.len()) as i64);
                OpResult::Created {
                    path: path.clone(),
                    stat,
                }
            }
            TxnOp::Delete { path } => {
                self.delete_node(path, zxid, triggers);
                OpResult::Deleted
            }
            TxnOp::SetData {
                path,
                data,
                version,
            } => {
                let id = self.id_of(path).expect("setData: node exists");
                let node = self.slab.get_mut(id);
                let new_len = data.as_ref().map_or(0, |d| d.len());
                let bytes = new_len as i64 - node.data_len() as i64;
                self.data_size = self.data_size + new_len as u64 - node.data_len() as u64;
                node.data = data.clone();
                node.version = *version;
                node.mzxid = zxid;
                node.mtime = txn.time_ms;
                let stat = node.stat();
                triggers.push(Trigger::new(path, event::NODE_DATA_CHANGED, &node.acl));
                self.add_quota_usage(path, 0, bytes);
                OpResult::SetData(stat)
            }
            TxnOp::SetAcl { path, acl, version } => {
                let id = self.id_of(path).expect("setACL: node exists");
                let acl = self.acls.intern(acl);
                let node = self.slab.get_mut(id);
                node.acl = acl;
                node.aversion = *version;
                OpResult::SetAcl(node.stat())
            }
            TxnOp::Check { .. } => OpResult::Checked,
            TxnOp::Error(code) => OpResult::Error(*code),
            TxnOp::Multi(_) | TxnOp::MultiError(_) => unreachable!("nested multi"),
        }
    }

    /// The path whose quota a write to `path` counts against (`quota::prefix_of`).
    fn quota_prefix(&self, path: &str) -> Option<String> {
        // Most trees have no quota: one lookup decides.
        if self.get(quota::QUOTA_ROOT)?.num_children() == 0 {
            return None;
        }
        quota::prefix_of(path, |p| self.id_of(&quota::limit_path(p)).is_some())
    }

    /// ZooKeeper's `updateQuotaStat`: adds a write to `path` to the usage its quota's stat node
    /// holds. Without a stat node, or with one that does not parse, nothing changes.
    fn add_quota_usage(&mut self, path: &str, count: i64, bytes: i64) {
        let Some(prefix) = self.quota_prefix(path) else {
            return;
        };
        let Some(id) = self.id_of(&quota::stat_path(&prefix)) else {
            return;
        };
        let Some(mut usage) = quota::StatsTrack::parse(self.slab.get(id).data()) else {
            return;
        };
        usage.add(count, bytes);
        self.set_derived_data(id, usage.to_bytes());
    }

    /// ZooKeeper's `updateQuotaForPath`: counts the nodes and data bytes of `path`'s subtree
    /// into its stat node, replacing what was there.
    fn count_quota(&mut self, path: &str) {
        let Some(id) = self.id_of(&quota::stat_path(path)) else {
            return;
        };
        let (count, bytes) = self.subtree_usage(path);
        self.set_derived_data(id, quota::StatsTrack::usage(count, bytes).to_bytes());
    }

    /// Nodes and data bytes of the subtree at `path`, itself included ((0, 0) if absent).
    pub fn subtree_usage(&self, path: &str) -> (i64, i64) {
        let Some(root) = self.id_of(path) else {
            return (0, 0);
        };
        let (mut count, mut bytes) = (0, 0);
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            let n = self.slab.get(id);
            count += 1;
            bytes += n.data_len() as i64;
            stack.extend(kid_ids(n));
        }
        (count, bytes)
    }

    /// Replaces a stat node's data as the server derives it: no stat field moves (ZooKeeper
    /// changes the data alone) and no watch fires.
    fn set_derived_data(&mut self, id: u32, data: Vec<u8>) {
        let node = self.slab.get_mut(id);
        self.data_size = self.data_size + data.len() as u64 - node.data_len() as u64;
        node.data = Some(Data::from(data));
    }

    /// Counts every quota's subtree again, as ZooKeeper does when it loads a snapshot
    /// (`setupQuota`): after recovery, whose replay over a fuzzy snapshot cannot keep
    /// incremental counts exact. Each limit node with no children marks its path.
    pub fn setup_quotas(&mut self) {
        let Some(root) = self.id_of(quota::QUOTA_ROOT) else {
            return;
        };
        let mut limited = Vec::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            let n = self.slab.get(id);
            if n.num_children() == 0 && name_of(n.path()) == quota::LIMIT_NODE {
                let real = &parent_of(n.path())[quota::QUOTA_ROOT.len()..];
                if real.starts_with('/') {
                    limited.push(real.to_string());
                }
            }
            stack.extend(kid_ids(n));
        }
        for path in limited {
            self.count_quota(&path);
        }
    }

    fn index_owner(&mut self, path: &str, owner: i64) {
        if owner == 0 {
            return;
        }
        if owner == ephemeral_owner::CONTAINER {
            self.containers.insert(path.to_string());
        } else if ephemeral_owner::ttl_of(owner).is_some() {
            self.ttls.insert(path.to_string());
        } else {
            self.ephemerals
                .entry(owner)
                .or_default()
                .insert(path.to_string());
        }
    }

    fn unindex_owner(&mut self, path: &str, owner: i64) {
        if owner == ephemeral_owner::CONTAINER {
            self.containers.remove(path);
        } else if ephemeral_owner::ttl_of(owner).is_some() {
            self.ttls.remove(path);
        } else if owner != 0 {
            if let Some(set) = self.ephemerals.get_mut(&owner) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
    }

    fn delete_node(&mut self, path: &str, zxid: i64, triggers: &mut Vec<Trigger>) {
        let parent_path = parent_of(path);
        let parent_id = self.id_of(parent_path).expect("delete: parent exists");
        let parent = self.slab.get_mut(parent_id);
        let parent_acl = parent.acl.clone();
        if zxid > parent.pzxid {
            parent.pzxid = zxid;
        }
        let node = self
            .unlink(Some(parent_id), path)
            .expect("delete: node exists");
        self.unindex_owner(path, node.ephemeral_owner);
        self.add_quota_usage(path, -1, -(node.data_len() as i64));
        triggers.push(Trigger::new(path, event::NODE_DELETED, &node.acl));
        triggers.push(Trigger::new(
            parent_path,
            event::NODE_CHILDREN_CHANGED,
            &parent_acl,
        ));
    }

    /// Children names of `path` in a stable (sorted) order.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let node = self.get(path)?;
        Some(self.child_names(node).map(str::to_string).collect())
    }

    /// A digest of the tree's contents, for comparing replicas in tests.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut nodes: Vec<&Node> = self.slab.iter().collect();
        nodes.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for n in nodes {
            n.path().hash(&mut h);
            n.data.hash(&mut h);
            n.stat().hash_fields(&mut h);
        }
        h.finish()
    }
}

impl Stat {
    fn hash_fields<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        (
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            self.cversion,
            self.aversion,
            self.ephemeral_owner,
            self.pzxid,
        )
            .hash(h);
    }
}

/// `parent` + "/" + `name`, without doubling the root's slash.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(zxid: i64, op: TxnOp) -> Txn {
        Txn {
            session_id: 7,
            cxid: 1,
            zxid,
            time_ms: 1000 + zxid,
            op,
        }
    }

    #[test]
    fn replaying_a_failed_multi_changes_nothing_but_the_zxid() {
        let mut t = DataTree::new();
        let before = t.digest();
        t.apply_replay(&txn(9, TxnOp::MultiError(vec![Code::Ok, Code::BadVersion])));
        assert_eq!(t.digest(), before);
        assert_eq!(t.last_zxid(), 9);
    }

    fn create(path: &str, parent_cversion: i32, owner: i64) -> TxnOp {
        TxnOp::Create {
            opcode: crate::proto::codes::op::CREATE,
            path: path.into(),
            data: Some(crate::txn::Data::from(&b"d"[..])),
            acl: Acl::open_unsafe(),
            ephemeral_owner: owner,
            parent_cversion,
        }
    }

    #[test]
    fn equal_acls_share_one_allocation_and_unused_ones_are_swept() {
        let mut t = DataTree::new();
        t.apply(&txn(1, create("/a", 1, 0)));
        t.apply(&txn(2, create("/b", 2, 0)));
        assert!(Arc::ptr_eq(
            &t.get("/a").unwrap().acl,
            &t.get("/b").unwrap().acl
        ));
        assert!(Arc::ptr_eq(
            &t.get("/a").unwrap().acl,
            &t.get("/").unwrap().acl
        ));
        // Many distinct lists, each replaced at once: the cache stays near what is in use.
        for z in 3..500 {
            let acl = vec![Acl {
                perms: z as i32 & 31,
                id: Id::new("digest", &format!("u{z}:x")),
            }];
            t.apply(&txn(
                z,
                TxnOp::SetAcl {
                    path: "/a".into(),
                    acl,
                    version: z as i32,
                },
            ));
        }
        assert!(
            t.acls.lists.len() < 200,
            "{} lists cached",
            t.acls.lists.len()
        );
    }

    #[test]
    fn fresh_tree_matches_zookeeper() {
        let t = DataTree::new();
        assert_eq!(t.node_count(), 5);
        let root = t.get("/").unwrap().stat();
        assert_eq!(root.num_children, 1);
        assert_eq!(root.cversion, -1);
        assert_eq!(t.children("/zookeeper").unwrap(), vec!["config", "quota"]);
    }

    #[test]
    fn stat_rules_for_create_delete_set() {
        let mut t = DataTree::new();
        t.apply(&txn(2, create("/a", 1, 0)));
        t.apply(&txn(3, create("/a/b", 1, 0)));
        let a = t.get("/a").unwrap().stat();
        assert_eq!(
            (a.czxid, a.mzxid, a.pzxid, a.cversion, a.num_children),
            (2, 2, 3, 1, 1)
        );
        t.apply(&txn(
            4,
            TxnOp::Delete {
                path: "/a/b".into(),
            },
        ));
        let a = t.get("/a").unwrap().stat();
        assert_eq!((a.pzxid, a.cversion, a.num_children), (4, 2, 0));
        let applied = t.apply(&txn(
            5,
            TxnOp::SetData {
                path: "/a".into(),
                data: Some(crate::txn::Data::from(&b"xyz"[..])),
                version: 1,
            },
        ));
        match &applied.results[0] {
            OpResult::SetData(s) => {
                assert_eq!(
                    (s.version, s.mzxid, s.mtime, s.data_length),
                    (1, 5, 1005, 3)
                )
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(applied.triggers[0].kind, event::NODE_DATA_CHANGED);
    }

    /// Each trigger carries the ACL ZooKeeper 3.9.2 checks for it, as it was at the change.
    #[test]
    fn triggers_carry_the_acl_a_watcher_must_read() {
        let secret = vec![Acl {
            perms: perms::ALL,
            id: Id::new("digest", "u:h"),
        }];
        let of = |tr: &[Trigger]| -> Vec<(String, i32, Option<Vec<Acl>>)> {
            tr.iter()
                .map(|t| {
                    let acl = t.read_acl.as_ref().map(|a| a.to_vec());
                    (t.path.clone(), t.kind, acl)
                })
                .collect()
        };
        let mut t = DataTree::new();
        let mut hr = create("/hr", 1, 0);
        if let TxnOp::Create { acl, .. } = &mut hr {
            acl.clone_from(&secret);
        }
        let s = Some(secret.clone());
        let applied = t.apply(&txn(1, hr));
        assert_eq!(
            of(&applied.triggers),
            vec![
                ("/hr".into(), event::NODE_CREATED, s.clone()),
                ("/".into(), event::NODE_CHILDREN_CHANGED, None),
            ]
        );
        // An open child of a secret parent: its own events are open, the parent's are not.
        let applied = t.apply(&txn(2, create("/hr/c", 1, 0)));
        assert_eq!(
            of(&applied.triggers),
            vec![
                ("/hr/c".into(), event::NODE_CREATED, None),
                ("/hr".into(), event::NODE_CHILDREN_CHANGED, s.clone()),
            ]
        );
        let set = |path: &str| TxnOp::SetData {
            path: path.into(),
            data: None,
            version: 1,
        };
        let applied = t.apply(&txn(3, set("/hr")));
        assert_eq!(
            of(&applied.triggers),
            vec![("/hr".into(), event::NODE_DATA_CHANGED, s.clone())]
        );
        // In one multi: the child is deleted under the secret ACL, then the parent is opened
        // and changed; each event keeps the ACL of its own moment.
        let applied = t.apply(&txn(
            4,
            TxnOp::Multi(vec![
                TxnOp::Delete {
                    path: "/hr/c".into(),
                },
                TxnOp::SetAcl {
                    path: "/hr".into(),
                    acl: Acl::open_unsafe(),
                    version: 1,
                },
                set("/hr"),
            ]),
        ));
        assert_eq!(
            of(&applied.triggers),
            vec![
                ("/hr/c".into(), event::NODE_DELETED, None),
                ("/hr".into(), event::NODE_CHILDREN_CHANGED, s.clone()),
                ("/hr".into(), event::NODE_DATA_CHANGED, None),
            ]
        );
        // A deleted node's events use its ACL as it was.
        t.apply(&txn(
            5,
            TxnOp::SetAcl {
                path: "/hr".into(),
                acl: secret.clone(),
                version: 2,
            },
        ));
        let applied = t.apply(&txn(6, TxnOp::Delete { path: "/hr".into() }));
        assert_eq!(
            of(&applied.triggers),
            vec![
                ("/hr".into(), event::NODE_DELETED, s),
                ("/".into(), event::NODE_CHILDREN_CHANGED, None),
            ]
        );
    }

    #[test]
    fn close_session_deletes_ephemerals() {
        let mut t = DataTree::new();
        t.apply(&txn(
            1,
            TxnOp::CreateSession {
                timeout_ms: 4000,
                password: [1; 16],
            },
        ));
        t.apply(&txn(2, create("/e", 1, 7)));
        assert_eq!(t.ephemerals_of(7).count(), 1);
        let applied = t.apply(&txn(3, TxnOp::CloseSession));
        assert!(t.get("/e").is_none());
        assert!(t.session(7).is_none());
        assert!(applied.triggers.contains(&Trigger {
            path: "/e".into(),
            kind: event::NODE_DELETED,
            read_acl: None,
        }));
    }

    /// Child lists stay sorted and walkable through the switch to and from a large directory's
    /// map, with paths short enough to sit in the node and longer ones.
    #[test]
    fn children_stay_sorted_through_growth_and_shrinking() {
        let mut t = DataTree::new();
        let long = "/a-directory-with-a-name-longer-than-thirty-bytes";
        t.apply(&txn(1, create(long, 1, 0)));
        let mut model = BTreeSet::new();
        let mut zxid = 1;
        let check = |t: &DataTree, model: &BTreeSet<String>| {
            let want: Vec<String> = model.iter().cloned().collect();
            assert_eq!(t.children(long).unwrap(), want);
            let mut walked = Vec::new();
            let mut last: Option<String> = None;
            while let Some(n) = t.next_child(long, last.as_deref()) {
                walked.push(n.to_string());
                last = Some(n.to_string());
            }
            assert_eq!(walked, want);
            assert_eq!(t.get(long).unwrap().num_children(), model.len());
        };
        // A scrambled order, so inserts land everywhere in the list.
        let names: Vec<String> = (0..5000u64)
            .map(|i| format!("c{}", (i * 7919) % 5000))
            .collect();
        for (i, name) in names.iter().enumerate() {
            zxid += 1;
            t.apply(&txn(zxid, create(&join(long, name), i as i32 + 1, 0)));
            model.insert(name.clone());
            if i % 997 == 0 {
                check(&t, &model);
            }
        }
        check(&t, &model);
        for (i, name) in names.iter().rev().enumerate() {
            zxid += 1;
            let path = join(long, name);
            t.apply(&txn(zxid, TxnOp::Delete { path: path.clone() }));
            assert!(t.get(&path).is_none());
            model.remove(name);
            if i % 997 == 0 || model.len() == 1024 {
                check(&t, &model);
            }
        }
        check(&t, &model);
        assert_eq!(t.node_count(), 6);
    }

    #[test]
    fn path_validation() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//a",
            "/a//b",
            "/.",
            "/a/..",
            "/a\u{0}b",
            "/\u{1}",
            "/\u{fffd}",
            "/a\u{1f600}",
        ] {
            assert_eq!(validate_path(bad), Err(Code::BadArguments), "{bad:?}");
        }
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(name_of("/a/b"), "b");
    }
}
