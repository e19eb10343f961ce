//! The data tree: znodes, their stat, the session table and the per-session ephemeral index.
//!
//! Pure state, owned by one core. The write core keeps the authoritative copy; every shard keeps
//! a read replica. All replicas change only through [`DataTree::apply`], which takes a validated
//! [`Txn`] and cannot fail, so replicas that apply the same txns in zxid order are identical.
//!
//! Stat rules follow ZooKeeper's DataTree: the stored `cversion` counts child *creations*
//! (it names sequential children); the cversion clients see is `2 * creations - children`, i.e.
//! it also counts deletions. Deleting a child moves the parent's pzxid but not its stored cversion.

pub mod acl;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::proto::codes::{ephemeral_owner, event, perms, Code};
use crate::proto::records::{Acl, Id, Stat};
use crate::txn::{Txn, TxnOp};

#[derive(Debug, Clone)]
pub struct Node {
    /// None for null data (sent with length -1), which clients get back as null.
    pub data: Option<Bytes>,
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
    /// Names, not paths: a child costs its name once, in its parent.
    pub children: BTreeSet<Box<str>>,
}

impl Node {
    fn boxed(
        data: Option<Bytes>,
        acl: Arc<Vec<Acl>>,
        zxid: i64,
        time: i64,
        owner: i64,
    ) -> Box<Node> {
        Box::new(Node {
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
            children: BTreeSet::new(),
        })
    }

    /// The stat a client sees.
    pub fn stat(&self) -> Stat {
        let n = self.children.len() as i32;
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

/// Undo record for one tentatively applied op (multi validation on the write core).
#[derive(Debug)]
pub enum Undo {
    Created {
        path: String,
        parent_cversion: i32,
        parent_pzxid: i64,
    },
    Deleted {
        path: String,
        node: Box<Node>,
        parent_pzxid: i64,
    },
    DataSet {
        path: String,
        data: Option<Bytes>,
        version: i32,
        mzxid: i64,
        mtime: i64,
    },
    AclSet {
        path: String,
        acl: Arc<Vec<Acl>>,
        aversion: i32,
    },
    Nothing,
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
/// per-node overhead once per shard plus once for the write core (znode data itself is shared:
/// every replica holds the same `Bytes`). Hence nodes are boxed (a map bucket is two pointers
/// and a length, so the table's spare capacity costs little), keys are `Box<str>`, and ACL
/// lists are interned (nearly every node shares one of a handful).
#[derive(Clone)]
pub struct DataTree {
    nodes: HashMap<Box<str>, Box<Node>, ahash::RandomState>,
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
            nodes: HashMap::default(),
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
        t.insert_raw("/", Node::boxed(Some(Bytes::new()), open.clone(), 0, 0, 0));
        t.insert_raw(
            "/zookeeper",
            Node::boxed(Some(Bytes::new()), open.clone(), 0, 0, 0),
        );
        t.insert_raw(
            "/zookeeper/quota",
            Node::boxed(Some(Bytes::new()), open, 0, 0, 0),
        );
        t.insert_raw(
            "/zookeeper/config",
            Node::boxed(Some(Bytes::new()), read_only, 0, 0, 0),
        );
        t
    }

    fn insert_raw(&mut self, path: &str, node: Box<Node>) {
        if path != "/" {
            let parent = self.nodes.get_mut(parent_of(path)).expect("parent exists");
            parent.children.insert(name_of(path).into());
        }
        self.data_size += (path.len() + node.data_len()) as u64;
        self.nodes.insert(path.into(), node);
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path).map(|n| &**n)
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Node count as ZooKeeper reports it: its DataTree also maps "" to the root, so a fresh
    /// server reports 5 for 4 nodes. Monitoring compares against that number.
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
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
        let node = self.nodes.get(path)?;
        let mut count = 0;
        let mut stack: Vec<String> = node
            .children
            .iter()
            .map(|c| join(path, c))
            .collect::<Vec<_>>();
        while let Some(p) = stack.pop() {
            count += 1;
            if let Some(n) = self.nodes.get(p.as_str()) {
                stack.extend(n.children.iter().map(|c| join(&p, c)));
            }
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
                    let (res, _undo) = self.apply_op(txn, op, &mut out.triggers);
                    out.results.push(res);
                }
            }
            TxnOp::MultiError(codes) => {
                out.results = codes.iter().map(|c| OpResult::Error(*c)).collect();
            }
            op => {
                let (res, _undo) = self.apply_op(txn, op, &mut out.triggers);
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
    /// its effect already there (a create of an existing node only moves the parent's cversion
    /// and pzxid forward) or its subject gone (a set on a missing node is skipped). A delete
    /// also removes descendants: any node below it in the snapshot was created after the delete
    /// and is created again by a later record.
    pub fn apply_replay(&mut self, txn: &Txn) {
        let ops: Vec<&TxnOp> = match &txn.op {
            TxnOp::Multi(ops) => ops.iter().collect(),
            op => vec![op],
        };
        let mut sink = Vec::new();
        for op in ops {
            match op {
                TxnOp::Create {
                    path,
                    parent_cversion,
                    ..
                } => {
                    if !self.nodes.contains_key(parent_of(path)) {
                        continue;
                    }
                    if self.nodes.contains_key(path.as_str()) {
                        let parent = self.nodes.get_mut(parent_of(path)).expect("checked");
                        if *parent_cversion > parent.cversion {
                            parent.cversion = *parent_cversion;
                            parent.pzxid = txn.zxid;
                        }
                        continue;
                    }
                }
                TxnOp::Delete { path } => {
                    if !self.nodes.contains_key(path.as_str()) {
                        if let Some(parent) = self.nodes.get_mut(parent_of(path)) {
                            parent.pzxid = parent.pzxid.max(txn.zxid);
                        }
                        continue;
                    }
                    let children: Vec<String> = self.nodes[path.as_str()]
                        .children
                        .iter()
                        .map(|c| join(path, c))
                        .collect();
                    for c in children {
                        self.remove_subtree(&c);
                    }
                }
                TxnOp::SetData { path, .. } | TxnOp::SetAcl { path, .. }
                    if !self.nodes.contains_key(path.as_str()) =>
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
        let Some(node) = self.nodes.remove(path) else {
            return;
        };
        self.data_size -= (path.len() + node.data_len()) as u64;
        self.unindex_owner(path, node.ephemeral_owner);
        if let Some(parent) = self.nodes.get_mut(parent_of(path)) {
            parent.children.remove(name_of(path));
        }
        for c in &node.children {
            self.remove_subtree(&join(path, c));
        }
    }

    /// Puts a node read from a snapshot in place (its parent must be there already): replaces
    /// an existing node's contents, keeping its children.
    pub fn restore_node(&mut self, path: &str, mut node: Node) {
        node.acl = self.acls.intern(&node.acl);
        if let Some(old) = self.nodes.get_mut(path) {
            node.children = std::mem::take(&mut old.children);
            let old_owner = old.ephemeral_owner;
            self.data_size = self.data_size + node.data_len() as u64 - old.data_len() as u64;
            **old = node;
            self.unindex_owner(path, old_owner);
            let owner = self.nodes[path].ephemeral_owner;
            self.index_owner(path, owner);
            return;
        }
        if path != "/" && !self.nodes.contains_key(parent_of(path)) {
            return;
        }
        node.children.clear();
        let owner = node.ephemeral_owner;
        self.insert_raw(path, Box::new(node));
        self.index_owner(path, owner);
    }

    pub fn restore_session(&mut self, id: i64, entry: SessionEntry) {
        self.sessions.insert(id, entry);
    }

    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    /// Applies one op; returns its result and how to undo it.
    pub fn apply_op(
        &mut self,
        txn: &Txn,
        op: &TxnOp,
        triggers: &mut Vec<Trigger>,
    ) -> (OpResult, Undo) {
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
                (OpResult::Session, Undo::Nothing)
            }
            TxnOp::CloseSession => {
                // The owner index, sorted: every replica deletes in the same order, so the
                // events a shard fires come in the same order everywhere.
                let owned = self.ephemerals.remove(&txn.session_id).unwrap_or_default();
                for path in &owned {
                    if self.nodes.contains_key(path.as_str()) {
                        self.delete_node(path, zxid, triggers);
                    }
                }
                self.sessions.remove(&txn.session_id);
                (OpResult::Session, Undo::Nothing)
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
                let parent = self
                    .nodes
                    .get_mut(parent_path)
                    .expect("create: parent exists");
                let undo = Undo::Created {
                    path: path.clone(),
                    parent_cversion: parent.cversion,
                    parent_pzxid: parent.pzxid,
                };
                let parent_acl = parent.acl.clone();
                if *parent_cversion > parent.cversion {
                    parent.cversion = *parent_cversion;
                    parent.pzxid = zxid;
                }
                parent.children.insert(name_of(path).into());
                let acl = self.acls.intern(acl);
                triggers.push(Trigger::new(path, event::NODE_CREATED, &acl));
                triggers.push(Trigger::new(
                    parent_path,
                    event::NODE_CHILDREN_CHANGED,
                    &parent_acl,
                ));
                let node = Node::boxed(data.clone(), acl, zxid, txn.time_ms, *ephemeral_owner);
                let stat = node.stat();
                self.data_size += (path.len() + data.as_ref().map_or(0, |d| d.len())) as u64;
                assert!(
                    self.nodes.insert(path.as_str().into(), node).is_none(),
                    "create: node absent"
                );
                self.index_owner(path, *ephemeral_owner);
                (
                    OpResult::Created {
                        path: path.clone(),
                        stat,
                    },
                    undo,
                )
            }
            TxnOp::Delete { path } => {
                let (node, parent_pzxid) = self.delete_node(path, zxid, triggers);
                (
                    OpResult::Deleted,
                    Undo::Deleted {
                        path: path.clone(),
                        node,
                        parent_pzxid,
                    },
                )
            }
            TxnOp::SetData {
                path,
                data,
                version,
            } => {
                let node = self
                    .nodes
                    .get_mut(path.as_str())
                    .expect("setData: node exists");
                let undo = Undo::DataSet {
                    path: path.clone(),
                    data: node.data.clone(),
                    version: node.version,
                    mzxid: node.mzxid,
                    mtime: node.mtime,
                };
                self.data_size = self.data_size + data.as_ref().map_or(0, |d| d.len()) as u64
                    - node.data_len() as u64;
                node.data = data.clone();
                node.version = *version;
                node.mzxid = zxid;
                node.mtime = txn.time_ms;
                let stat = node.stat();
                triggers.push(Trigger::new(path, event::NODE_DATA_CHANGED, &node.acl));
                (OpResult::SetData(stat), undo)
            }
            TxnOp::SetAcl { path, acl, version } => {
                let node = self
                    .nodes
                    .get_mut(path.as_str())
                    .expect("setACL: node exists");
                let undo = Undo::AclSet {
                    path: path.clone(),
                    acl: node.acl.clone(),
                    aversion: node.aversion,
                };
                node.acl = self.acls.intern(acl);
                node.aversion = *version;
                (OpResult::SetAcl(node.stat()), undo)
            }
            TxnOp::Check { .. } => (OpResult::Checked, Undo::Nothing),
            TxnOp::Error(code) => (OpResult::Error(*code), Undo::Nothing),
            TxnOp::Multi(_) | TxnOp::MultiError(_) => unreachable!("nested multi"),
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

    fn delete_node(
        &mut self,
        path: &str,
        zxid: i64,
        triggers: &mut Vec<Trigger>,
    ) -> (Box<Node>, i64) {
        let parent_path = parent_of(path);
        let parent = self
            .nodes
            .get_mut(parent_path)
            .expect("delete: parent exists");
        let parent_pzxid = parent.pzxid;
        let parent_acl = parent.acl.clone();
        parent.children.remove(name_of(path));
        if zxid > parent.pzxid {
            parent.pzxid = zxid;
        }
        let node = self.nodes.remove(path).expect("delete: node exists");
        self.data_size -= (path.len() + node.data_len()) as u64;
        self.unindex_owner(path, node.ephemeral_owner);
        triggers.push(Trigger::new(path, event::NODE_DELETED, &node.acl));
        triggers.push(Trigger::new(
            parent_path,
            event::NODE_CHILDREN_CHANGED,
            &parent_acl,
        ));
        (node, parent_pzxid)
    }

    /// Reverts one op applied with [`DataTree::apply_op`]; undos must run in reverse order.
    pub fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Created {
                path,
                parent_cversion,
                parent_pzxid,
            } => {
                let node = self
                    .nodes
                    .remove(path.as_str())
                    .expect("undo create: node exists");
                self.data_size -= (path.len() + node.data_len()) as u64;
                self.unindex_owner(&path, node.ephemeral_owner);
                let parent = self.nodes.get_mut(parent_of(&path)).expect("parent");
                parent.children.remove(name_of(&path));
                parent.cversion = parent_cversion;
                parent.pzxid = parent_pzxid;
            }
            Undo::Deleted {
                path,
                node,
                parent_pzxid,
            } => {
                let owner = node.ephemeral_owner;
                self.insert_raw(&path, node);
                self.index_owner(&path, owner);
                self.nodes.get_mut(parent_of(&path)).expect("parent").pzxid = parent_pzxid;
            }
            Undo::DataSet {
                path,
                data,
                version,
                mzxid,
                mtime,
            } => {
                let node = self
                    .nodes
                    .get_mut(path.as_str())
                    .expect("undo setData: node");
                self.data_size = self.data_size + data.as_ref().map_or(0, |d| d.len()) as u64
                    - node.data_len() as u64;
                node.data = data;
                node.version = version;
                node.mzxid = mzxid;
                node.mtime = mtime;
            }
            Undo::AclSet {
                path,
                acl,
                aversion,
            } => {
                let node = self
                    .nodes
                    .get_mut(path.as_str())
                    .expect("undo setACL: node");
                node.acl = acl;
                node.aversion = aversion;
            }
            Undo::Nothing => {}
        }
    }

    /// Children names of `path` in a stable (sorted) order.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.nodes
            .get(path)
            .map(|n| n.children.iter().map(|c| c.to_string()).collect())
    }

    /// A digest of the tree's contents, for comparing replicas in tests.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut paths: Vec<&Box<str>> = self.nodes.keys().collect();
        paths.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in paths {
            let n = &self.nodes[p];
            p.hash(&mut h);
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

    fn create(path: &str, parent_cversion: i32, owner: i64) -> TxnOp {
        TxnOp::Create {
            opcode: crate::proto::codes::op::CREATE,
            path: path.into(),
            data: Some(Bytes::from_static(b"d")),
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
                data: Some(Bytes::from_static(b"xyz")),
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

    #[test]
    fn undo_restores_everything() {
        let mut t = DataTree::new();
        t.apply(&txn(2, create("/a", 1, 0)));
        let before = t.digest();
        let size = t.approximate_data_size();
        let mut trig = Vec::new();
        let t3 = txn(3, TxnOp::Multi(vec![]));
        let ops = [
            create("/a/e", 1, 7),
            TxnOp::SetData {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"q")),
                version: 1,
            },
            TxnOp::SetAcl {
                path: "/a".into(),
                acl: vec![],
                version: 1,
            },
            TxnOp::Delete {
                path: "/a/e".into(),
            },
        ];
        let mut undos = Vec::new();
        for op in &ops {
            undos.push(t.apply_op(&t3, op, &mut trig).1);
        }
        for u in undos.into_iter().rev() {
            t.undo(u);
        }
        assert_eq!(t.digest(), before);
        assert_eq!(t.approximate_data_size(), size);
        assert_eq!(t.ephemeral_count(), 0);
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
