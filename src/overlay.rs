//! What the write core checks a request against: the committed tree with the changes of the
//! txns not yet applied to it on top (ZooKeeper's PrepRequestProcessor keeps the same in its
//! `outstandingChanges`). The write core owns no tree of its own where it shares an executor
//! with shard 0: it reads shard 0's replica, which holds exactly what is committed and applied
//! there, and keeps here what it proposed (or committed) past that. One tree per process on one
//! or two CPUs instead of two (docs/design/memory.md).
//!
//! A change is what prep needs of a node (ZooKeeper's ChangeRecord): its versions, ACL, owner
//! and child count; or whether a session exists. Changes are recorded in zxid order, each
//! remembering the one it overrides for the same key, so a multi's tentative changes and a
//! TRUNC's dropped proposals roll back from the tail, and what the tree has applied is pruned
//! from the head. Pruning checks (in tests and debug builds) that the tree agrees with every change it
//! drops: an overlay that computed a different state than the tree's `apply` is a bug, and the
//! simulator and every test would trip on it.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use crate::proto::codes::ephemeral_owner;
use crate::proto::records::Acl;
use crate::quota;
use crate::tree::{parent_of, DataTree, Node, SessionEntry};
use crate::txn::{Data, Txn, TxnOp};

/// Whether pruning checks that the tree agrees with what it drops: in tests (the simulators
/// run in release builds too) and debug builds.
const CHECK: bool = cfg!(any(test, debug_assertions));

/// What prep reads of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub acl: Arc<Vec<Acl>>,
    pub version: i32,
    /// ZooKeeper's stored cversion: children ever created (names sequential nodes).
    pub cversion: i32,
    pub aversion: i32,
    pub owner: i64,
    pub children: u32,
    /// The node's data (shared, not copied): quota checks read limit and stat nodes, and a
    /// setData's or delete's change to a quota's usage is the data length's change.
    pub data: Option<Data>,
}

impl NodeState {
    fn of(n: &Node) -> NodeState {
        NodeState {
            acl: n.acl.clone(),
            version: n.version,
            cversion: n.cversion,
            aversion: n.aversion,
            owner: n.ephemeral_owner,
            children: n.num_children() as u32,
            data: n.data_shared(),
        }
    }

    /// An ephemeral owned by a session (not a container or TTL node).
    pub fn is_session_ephemeral(&self) -> bool {
        self.owner != 0
            && self.owner != ephemeral_owner::CONTAINER
            && ephemeral_owner::ttl_of(self.owner).is_none()
    }
}

#[derive(Debug)]
enum Change {
    /// The path is one allocation, shared with the index.
    Node(Rc<str>, Option<NodeState>),
    Session(i64, Option<SessionEntry>),
}

#[derive(Debug)]
struct Record {
    zxid: i64,
    change: Change,
    /// The record this one overrides for the same key, by sequence number.
    prev: Option<u64>,
}

/// Changes not yet in the tree, oldest first.
#[derive(Debug, Default)]
pub struct Overlay {
    records: VecDeque<Record>,
    /// Sequence number of `records[0]`.
    first: u64,
    /// The newest record of each key.
    nodes: HashMap<Rc<str>, u64, ahash::RandomState>,
    sessions: HashMap<i64, u64>,
}

impl Overlay {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn get(&self, seq: u64) -> Option<&Record> {
        seq.checked_sub(self.first)
            .and_then(|i| self.records.get(i as usize))
    }

    /// Drops what `tree` has applied (every record up to its last zxid).
    pub fn prune(&mut self, tree: &DataTree) {
        let applied = tree.last_zxid();
        while self.records.front().is_some_and(|r| r.zxid <= applied) {
            let r = self.records.pop_front().expect("checked");
            let seq = self.first;
            self.first += 1;
            match r.change {
                Change::Node(path, state) => {
                    if self.nodes.get(&path) == Some(&seq) {
                        self.nodes.remove(&path);
                        if CHECK {
                            assert_eq!(
                                tree.get(&path).map(NodeState::of),
                                state,
                                "the overlay and the tree disagree on {path}"
                            );
                        }
                    }
                }
                Change::Session(id, state) => {
                    if self.sessions.get(&id) == Some(&seq) {
                        self.sessions.remove(&id);
                        if CHECK {
                            assert_eq!(tree.session(id).copied(), state, "session {id:#x}");
                        }
                    }
                }
            }
        }
    }

    /// The sequence number the next record gets: `rollback` to it undoes what came after.
    pub fn mark(&self) -> u64 {
        self.first + self.records.len() as u64
    }

    /// Drops every record from `mark` on, newest first.
    pub fn rollback(&mut self, mark: u64) {
        while self.mark() > mark {
            self.pop_back();
        }
    }

    /// Drops the records of txns past `zxid` (a TRUNC dropped them).
    pub fn truncate(&mut self, zxid: i64) {
        while self.records.back().is_some_and(|r| r.zxid > zxid) {
            self.pop_back();
        }
    }

    pub fn clear(&mut self) {
        let end = self.mark();
        self.records.clear();
        self.nodes.clear();
        self.sessions.clear();
        self.first = end;
    }

    fn pop_back(&mut self) {
        let Some(r) = self.records.pop_back() else {
            return;
        };
        let seq = self.mark();
        // The overridden record, unless it was pruned (the tree holds that state now).
        let prev = r.prev.filter(|&p| p >= self.first);
        match r.change {
            Change::Node(path, _) => {
                debug_assert_eq!(self.nodes.get(&path), Some(&seq));
                match prev {
                    Some(p) => self.nodes.insert(path, p),
                    None => self.nodes.remove(&path),
                };
            }
            Change::Session(id, _) => {
                debug_assert_eq!(self.sessions.get(&id), Some(&seq));
                match prev {
                    Some(p) => self.sessions.insert(id, p),
                    None => self.sessions.remove(&id),
                };
            }
        }
    }

    fn push(&mut self, zxid: i64, change: Change) {
        let seq = self.mark();
        let prev = match &change {
            Change::Node(path, _) => self.nodes.insert(path.clone(), seq),
            Change::Session(id, _) => self.sessions.insert(*id, seq),
        };
        debug_assert!(self.records.back().is_none_or(|r| r.zxid <= zxid));
        self.records.push_back(Record { zxid, change, prev });
    }
}

fn data_len(data: &Option<Data>) -> i64 {
    data.as_ref().map_or(0, |d| d.len() as i64)
}

/// The committed tree seen through the overlay: what every txn recorded so far leaves.
pub struct View<'a> {
    tree: &'a DataTree,
    overlay: &'a mut Overlay,
}

impl<'a> View<'a> {
    /// Prunes what `tree` has applied since the overlay was last looked at.
    pub fn new(tree: &'a DataTree, overlay: &'a mut Overlay) -> View<'a> {
        overlay.prune(tree);
        View { tree, overlay }
    }

    pub fn node(&self, path: &str) -> Option<NodeState> {
        match self.overlay.nodes.get(path) {
            Some(&seq) => match &self.overlay.get(seq).expect("indexed").change {
                Change::Node(_, state) => state.clone(),
                Change::Session(..) => unreachable!("a node's record"),
            },
            None => self.tree.get(path).map(NodeState::of),
        }
    }

    pub fn exists(&self, path: &str) -> bool {
        match self.overlay.nodes.get(path) {
            Some(&seq) => matches!(
                self.overlay.get(seq).map(|r| &r.change),
                Some(Change::Node(_, Some(_)))
            ),
            None => self.tree.get(path).is_some(),
        }
    }

    pub fn session(&self, id: i64) -> Option<SessionEntry> {
        match self.overlay.sessions.get(&id) {
            Some(&seq) => match &self.overlay.get(seq).expect("indexed").change {
                Change::Session(_, state) => *state,
                Change::Node(..) => unreachable!("a session's record"),
            },
            None => self.tree.session(id).copied(),
        }
    }

    /// Every live session.
    pub fn sessions(&self) -> Vec<(i64, SessionEntry)> {
        let mut all: Vec<(i64, SessionEntry)> = self
            .tree
            .sessions()
            .filter(|(id, _)| !self.overlay.sessions.contains_key(id))
            .map(|(id, s)| (*id, *s))
            .collect();
        all.extend(
            self.overlay
                .sessions
                .keys()
                .filter_map(|&id| self.session(id).map(|s| (id, s))),
        );
        all
    }

    pub fn mark(&self) -> u64 {
        self.overlay.mark()
    }

    pub fn rollback(&mut self, mark: u64) {
        self.overlay.rollback(mark)
    }

    /// Records what `txn` changes, as `DataTree::apply` will change it.
    pub fn record(&mut self, txn: &Txn) {
        match &txn.op {
            TxnOp::Multi(ops) => {
                for op in ops {
                    self.record_op(txn.zxid, txn.session_id, op);
                }
            }
            op => self.record_op(txn.zxid, txn.session_id, op),
        }
    }

    fn set(&mut self, zxid: i64, path: &str, state: Option<NodeState>) {
        self.overlay.push(zxid, Change::Node(path.into(), state));
    }

    fn update(&mut self, zxid: i64, path: &str, f: impl FnOnce(&mut NodeState)) {
        let mut n = self
            .node(path)
            .unwrap_or_else(|| panic!("txn {zxid:#x} changes {path}, which does not exist"));
        f(&mut n);
        self.set(zxid, path, Some(n));
    }

    fn delete(&mut self, zxid: i64, path: &str) {
        let bytes = self.node(path).map_or(0, |n| data_len(&n.data));
        self.set(zxid, path, None);
        self.update(zxid, parent_of(path), |p| p.children -= 1);
        self.add_quota_usage(zxid, path, -1, -bytes);
    }

    /// The path whose quota a write to `path` counts against, as the tree finds it.
    pub fn quota_prefix(&self, path: &str) -> Option<String> {
        if self.node(quota::QUOTA_ROOT)?.children == 0 {
            return None;
        }
        quota::prefix_of(path, |p| self.exists(&quota::limit_path(p)))
    }

    /// What `DataTree::add_quota_usage` will do to the stat node, so quota checks see the
    /// usage of writes not yet applied (and pruning checks the tree agrees).
    fn add_quota_usage(&mut self, zxid: i64, path: &str, count: i64, bytes: i64) {
        let Some(prefix) = self.quota_prefix(path) else {
            return;
        };
        let stat = quota::stat_path(&prefix);
        let Some(node) = self.node(&stat) else {
            return;
        };
        let Some(mut usage) = quota::StatsTrack::parse(node.data.as_deref()) else {
            return;
        };
        usage.add(count, bytes);
        let data = Data::from(usage.to_bytes());
        self.update(zxid, &stat, |n| n.data = Some(data));
    }

    /// What `DataTree::count_quota` will write: the committed subtree's usage, corrected by
    /// every node below `path` that a txn not yet applied creates, deletes or changes.
    fn count_quota(&mut self, zxid: i64, path: &str) {
        let stat = quota::stat_path(path);
        if !self.exists(&stat) {
            return;
        }
        let (mut count, mut bytes) = self.tree.subtree_usage(path);
        let below = |p: &str| {
            p == path || path == "/" || (p.starts_with(path) && p.as_bytes()[path.len()] == b'/')
        };
        for p in self.overlay.nodes.keys().filter(|p| below(p)) {
            let before = self.tree.get(p).map(|n| n.data_len() as i64);
            let after = self.node(p).map(|n| data_len(&n.data));
            count += after.is_some() as i64 - before.is_some() as i64;
            bytes += after.unwrap_or(0) - before.unwrap_or(0);
        }
        let data = Data::from(quota::StatsTrack::usage(count, bytes).to_bytes());
        self.update(zxid, &stat, |n| n.data = Some(data));
    }

    /// Records one op of a txn (a multi's op alone: prep records each as it goes, so later
    /// ops see earlier ones).
    pub fn record_op(&mut self, zxid: i64, session_id: i64, op: &TxnOp) {
        match op {
            TxnOp::CreateSession {
                timeout_ms,
                password,
            } => {
                let s = SessionEntry {
                    timeout_ms: *timeout_ms,
                    password: *password,
                };
                self.overlay
                    .push(zxid, Change::Session(session_id, Some(s)));
            }
            TxnOp::CloseSession => {
                // Its ephemerals as they are now: those in the tree not deleted since, and
                // those created since.
                let mut owned: Vec<Rc<str>> = self
                    .tree
                    .ephemerals_of(session_id)
                    .filter(|p| !self.overlay.nodes.contains_key(p.as_str()))
                    .map(|p| p.as_str().into())
                    .collect();
                owned.extend(
                    self.overlay
                        .nodes
                        .keys()
                        .filter(|p| self.node(p).is_some_and(|n| n.owner == session_id))
                        .cloned(),
                );
                // In the tree's order (it deletes from a sorted set): a quota's usage depends on
                // whether its limit node, if one of these, is gone yet.
                owned.sort();
                for path in owned {
                    self.delete(zxid, &path);
                }
                self.overlay.push(zxid, Change::Session(session_id, None));
            }
            TxnOp::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
                ..
            } => {
                self.update(zxid, parent_of(path), |p| {
                    p.cversion = p.cversion.max(*parent_cversion);
                    p.children += 1;
                });
                let n = NodeState {
                    acl: Arc::new(acl.clone()),
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    owner: *ephemeral_owner,
                    children: 0,
                    data: data.clone(),
                };
                self.set(zxid, path, Some(n));
                if let Some(counted) = quota::counted_by_stat_node(path) {
                    self.count_quota(zxid, counted);
                }
                self.add_quota_usage(zxid, path, 1, data_len(data));
            }
            TxnOp::Delete { path } => self.delete(zxid, path),
            TxnOp::SetData {
                path,
                data,
                version,
            } => {
                let before = self.node(path).map_or(0, |n| data_len(&n.data));
                self.update(zxid, path, |n| {
                    n.version = *version;
                    n.data = data.clone();
                });
                self.add_quota_usage(zxid, path, 0, data_len(data) - before);
            }
            TxnOp::SetAcl { path, acl, version } => self.update(zxid, path, |n| {
                n.acl = Arc::new(acl.clone());
                n.aversion = *version;
            }),
            TxnOp::Check { .. } | TxnOp::Error(_) | TxnOp::MultiError(_) => {}
            TxnOp::Multi(ops) => {
                for op in ops {
                    self.record_op(zxid, session_id, op);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codes::Code;

    fn txn(zxid: i64, session_id: i64, op: TxnOp) -> Txn {
        Txn {
            session_id,
            cxid: 0,
            zxid,
            time_ms: 1000 + zxid,
            op,
        }
    }

    fn create(path: &str, owner: i64, parent_cversion: i32) -> TxnOp {
        TxnOp::Create {
            opcode: crate::proto::codes::op::CREATE,
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            ephemeral_owner: owner,
            parent_cversion,
        }
    }

    fn session(timeout_ms: i32) -> TxnOp {
        TxnOp::CreateSession {
            timeout_ms,
            password: [3; 16],
        }
    }

    /// Every state the overlay computes is the tree's after applying the same txns: record a
    /// history, then apply it to the tree a txn at a time, pruning (which asserts agreement)
    /// and comparing what is left.
    #[test]
    fn records_what_the_tree_applies() {
        let history = vec![
            txn(1, 7, session(4000)),
            txn(2, 8, session(5000)),
            txn(3, 7, create("/a", 0, 1)),
            txn(4, 7, create("/a/e1", 7, 1)),
            txn(5, 8, create("/a/e2", 8, 2)),
            txn(
                6,
                7,
                TxnOp::SetData {
                    path: "/a".into(),
                    data: None,
                    version: 1,
                },
            ),
            txn(
                7,
                7,
                TxnOp::Multi(vec![
                    create("/a/b", 0, 3),
                    TxnOp::SetAcl {
                        path: "/a/b".into(),
                        acl: vec![],
                        version: 1,
                    },
                    TxnOp::Delete {
                        path: "/a/b".into(),
                    },
                ]),
            ),
            txn(8, 7, create("/a/e3", 7, 4)),
            txn(9, 7, TxnOp::CloseSession),
            txn(10, 8, TxnOp::Error(Code::NoNode)),
            txn(11, 8, create("/c", ephemeral_owner::CONTAINER, 2)),
        ];
        let mut tree = DataTree::new();
        let mut overlay = Overlay::default();
        for t in &history {
            View::new(&tree, &mut overlay).record(t);
        }
        {
            let v = View::new(&tree, &mut overlay);
            let a = v.node("/a").unwrap();
            assert_eq!((a.version, a.cversion, a.children), (1, 4, 1));
            assert!(v.node("/a/e1").is_none() && v.node("/a/e3").is_none());
            assert!(v.node("/a/e2").unwrap().is_session_ephemeral());
            assert!(v.session(7).is_none() && v.session(8).is_some());
            assert_eq!(v.sessions().len(), 1);
        }
        // Each prune asserts that the tree agrees with the records it drops.
        for t in &history {
            tree.apply(t);
            View::new(&tree, &mut overlay);
        }
        assert!(overlay.is_empty());
    }

    fn create_with(path: &str, data: &str, owner: i64, parent_cversion: i32) -> TxnOp {
        match create(path, owner, parent_cversion) {
            TxnOp::Create {
                opcode,
                path,
                acl,
                ephemeral_owner,
                parent_cversion,
                ..
            } => TxnOp::Create {
                opcode,
                path,
                data: Some(Data::from(data.as_bytes())),
                acl,
                ephemeral_owner,
                parent_cversion,
            },
            _ => unreachable!(),
        }
    }

    /// Quota usage as prep sees it is what the tree will hold: the overlay's stat nodes, written
    /// as each txn is recorded, agree with the tree's (pruning asserts it, data included),
    /// through a stat node created over a subtree with pending changes, deletes by session
    /// close and a failed multi.
    #[test]
    fn quota_usage_matches_the_tree() {
        let stat = "/zookeeper/quota/a/zookeeper_stats";
        let history = vec![
            txn(1, 7, session(4000)),
            txn(2, 7, create_with("/a", "12", 0, 1)),
            txn(3, 7, create_with("/a/x", "123", 0, 1)),
            txn(4, 7, create("/zookeeper/quota/a", 0, 1)),
            txn(5, 7, create_with("/a/e", "1234", 7, 2)),
            txn(
                6,
                7,
                create_with(
                    "/zookeeper/quota/a/zookeeper_limits",
                    "count=10,bytes=-1",
                    0,
                    1,
                ),
            ),
            txn(7, 7, create_with(stat, "count=0,bytes=0", 0, 2)),
            txn(8, 7, create_with("/a/y", "12345", 0, 3)),
            txn(
                9,
                7,
                TxnOp::SetData {
                    path: "/a/x".into(),
                    data: None,
                    version: 1,
                },
            ),
            txn(10, 7, TxnOp::MultiError(vec![Code::QuotaExceeded])),
            txn(11, 7, TxnOp::CloseSession),
            txn(
                12,
                7,
                TxnOp::Multi(vec![
                    create_with("/a/m", "xy", 0, 5),
                    TxnOp::Delete {
                        path: "/a/y".into(),
                    },
                ]),
            ),
        ];
        let mut tree = DataTree::new();
        let mut overlay = Overlay::default();
        for t in &history {
            View::new(&tree, &mut overlay).record(t);
        }
        let usage = |v: &View| v.node(stat).and_then(|n| n.data).map(|d| d.to_vec());
        {
            // /a, /a/x (now null), /a/e, /a/y counted at the stat node's creation: /a/e and
            // /a/y go, /a/m comes.
            let v = View::new(&tree, &mut overlay);
            assert_eq!(usage(&v).unwrap(), b"count=3,bytes=4");
            assert_eq!(v.quota_prefix("/a/m").as_deref(), Some("/a"));
            assert_eq!(v.quota_prefix("/b"), None);
        }
        for t in &history {
            tree.apply(t);
            View::new(&tree, &mut overlay);
        }
        assert!(overlay.is_empty());
        assert_eq!(tree.get(stat).unwrap().data().unwrap(), b"count=3,bytes=4");
        // A snapshot load counts again and finds the same.
        let before = tree.digest();
        tree.setup_quotas();
        assert_eq!(tree.digest(), before);
    }

    /// A multi's tentative records and a TRUNC's dropped proposals roll back to what was
    /// there before them, including the tree's state once the older records are pruned.
    #[test]
    fn rollback_and_truncate_restore_older_states() {
        let mut tree = DataTree::new();
        tree.apply(&txn(1, 7, create("/a", 0, 1)));
        let mut overlay = Overlay::default();
        let mut v = View::new(&tree, &mut overlay);
        v.record(&txn(2, 7, create("/a/x", 0, 1)));
        let mark = v.mark();
        v.record_op(3, 7, &create("/a/y", 0, 2));
        v.record_op(
            3,
            7,
            &TxnOp::Delete {
                path: "/a/x".into(),
            },
        );
        assert_eq!(v.node("/a").unwrap().children, 1);
        v.rollback(mark);
        assert_eq!(v.node("/a").unwrap().children, 1);
        assert!(v.exists("/a/x") && !v.exists("/a/y"));
        v.record(&txn(3, 7, create("/a/z", 0, 2)));
        v.record(&txn(
            4,
            7,
            TxnOp::Delete {
                path: "/a/z".into(),
            },
        ));
        overlay.truncate(3);
        let v = View::new(&tree, &mut overlay);
        assert!(v.exists("/a/z"));
        assert_eq!(v.node("/a").unwrap().cversion, 2);
        assert_eq!(v.node("/a").unwrap().children, 2);
        overlay.truncate(1);
        let v = View::new(&tree, &mut overlay);
        assert_eq!(v.node("/a").unwrap().children, 0);
        assert!(overlay.is_empty());
    }
}
