//! Shard-local watch registry. Owned by one shard core; holds only that shard's connections.
//!
//! Trigger rules are ZooKeeper's: `getData`/`exists` register data watches (fired by
//! NodeCreated, NodeDataChanged, NodeDeleted), `getChildren` registers child watches (fired by
//! NodeChildrenChanged on the node and NodeDeleted of the node itself). One-shot watches are
//! removed when they fire. Persistent watches (`addWatch` mode 0) see every event on their path,
//! child changes included; persistent-recursive watches (mode 1) see every event on their path
//! and below, except NodeChildrenChanged. A connection gets at most one event per trigger.
//!
//! `trigger` answers who watches; whether each may be told is the shard's check at delivery
//! (the trigger's `read_acl` against the connection's auth ids, docs/decisions.md "Watch events
//! and ACLs"). One-shot watches are removed here before that check, so a withheld event uses
//! its watch up, as in ZooKeeper.

use std::collections::{HashMap, HashSet};

use crate::proto::codes::{event, watcher_type};
use crate::tree::parent_of;

pub type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Data,
    Child,
    Persistent,
    Recursive,
}

const KINDS: [Kind; 4] = [Kind::Data, Kind::Child, Kind::Persistent, Kind::Recursive];

#[derive(Default)]
pub struct WatchManager {
    by_path: [HashMap<String, HashSet<ConnId>>; 4],
    by_conn: HashMap<ConnId, HashSet<(Kind, String)>>,
}

fn idx(k: Kind) -> usize {
    k as usize
}

impl WatchManager {
    pub fn add(&mut self, kind: Kind, path: &str, conn: ConnId) {
        self.by_path[idx(kind)]
            .entry(path.to_string())
            .or_default()
            .insert(conn);
        self.by_conn
            .entry(conn)
            .or_default()
            .insert((kind, path.to_string()));
    }

    fn remove(&mut self, kind: Kind, path: &str, conn: ConnId) -> bool {
        let map = &mut self.by_path[idx(kind)];
        let Some(set) = map.get_mut(path) else {
            return false;
        };
        let had = set.remove(&conn);
        if set.is_empty() {
            map.remove(path);
        }
        if let Some(c) = self.by_conn.get_mut(&conn) {
            c.remove(&(kind, path.to_string()));
            if c.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
        had
    }

    fn kinds_for(watcher_kind: i32) -> &'static [Kind] {
        match watcher_kind {
            watcher_type::CHILDREN => &[Kind::Child],
            watcher_type::DATA => &[Kind::Data],
            4 => &[Kind::Persistent],
            5 => &[Kind::Recursive],
            _ => &KINDS,
        }
    }

    /// `removeWatches`: true if anything was removed (otherwise the answer is NoWatcher).
    pub fn remove_watches(&mut self, path: &str, watcher_kind: i32, conn: ConnId) -> bool {
        let mut any = false;
        for &k in Self::kinds_for(watcher_kind) {
            any |= self.remove(k, path, conn);
        }
        any
    }

    /// `checkWatches`: does `conn` hold a watch of this type on `path`?
    pub fn has_watch(&self, path: &str, watcher_kind: i32, conn: ConnId) -> bool {
        Self::kinds_for(watcher_kind).iter().any(|&k| {
            self.by_path[idx(k)]
                .get(path)
                .is_some_and(|s| s.contains(&conn))
        })
    }

    pub fn remove_conn(&mut self, conn: ConnId) {
        if let Some(set) = self.by_conn.remove(&conn) {
            for (kind, path) in set {
                let map = &mut self.by_path[idx(kind)];
                if let Some(s) = map.get_mut(&path) {
                    s.remove(&conn);
                    if s.is_empty() {
                        map.remove(&path);
                    }
                }
            }
        }
    }

    fn take_one_shot(&mut self, kind: Kind, path: &str, out: &mut Vec<ConnId>) {
        if let Some(set) = self.by_path[idx(kind)].remove(path) {
            for conn in set {
                if let Some(c) = self.by_conn.get_mut(&conn) {
                    c.remove(&(kind, path.to_string()));
                    if c.is_empty() {
                        self.by_conn.remove(&conn);
                    }
                }
                out.push(conn);
            }
        }
    }

    /// Fires the watches an event on `path` triggers; returns each connection to notify once.
    pub fn trigger(&mut self, path: &str, kind: i32) -> Vec<ConnId> {
        let mut out = Vec::new();
        match kind {
            event::NODE_CREATED | event::NODE_DATA_CHANGED => {
                self.take_one_shot(Kind::Data, path, &mut out)
            }
            event::NODE_DELETED => {
                self.take_one_shot(Kind::Data, path, &mut out);
                self.take_one_shot(Kind::Child, path, &mut out);
            }
            event::NODE_CHILDREN_CHANGED => self.take_one_shot(Kind::Child, path, &mut out),
            _ => {}
        }
        if let Some(set) = self.by_path[idx(Kind::Persistent)].get(path) {
            out.extend(set.iter().copied());
        }
        let recursive = &self.by_path[idx(Kind::Recursive)];
        if kind != event::NODE_CHILDREN_CHANGED && !recursive.is_empty() {
            let mut p = path;
            loop {
                if let Some(set) = recursive.get(p) {
                    out.extend(set.iter().copied());
                }
                if p == "/" {
                    break;
                }
                p = parent_of(p);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Watches as ZooKeeper counts them for `zk_watch_count`: its data and child tables both
    /// hold the persistent kinds, so those count twice.
    pub fn total(&self) -> usize {
        KINDS
            .iter()
            .map(|&k| {
                let n: usize = self.by_path[idx(k)].values().map(|s| s.len()).sum();
                match k {
                    Kind::Persistent | Kind::Recursive => 2 * n,
                    _ => n,
                }
            })
            .sum()
    }

    /// Paths each connection watches (`wchc`). Like ZooKeeper's, the watch reports cover its
    /// data-watch table: data, exists and persistent watches, not one-shot child watches.
    pub fn by_connection(&self) -> Vec<(ConnId, Vec<String>)> {
        self.by_conn
            .iter()
            .map(|(c, s)| {
                let mut v: Vec<String> = s
                    .iter()
                    .filter(|(k, _)| *k != Kind::Child)
                    .map(|(_, p)| p.clone())
                    .collect();
                v.sort();
                v.dedup();
                (*c, v)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Connections watching each path (`wchp`), over the same table as `by_connection`.
    pub fn by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut m: HashMap<&str, HashSet<ConnId>> = HashMap::new();
        for k in [Kind::Data, Kind::Persistent, Kind::Recursive] {
            for (p, s) in &self.by_path[idx(k)] {
                m.entry(p).or_default().extend(s);
            }
        }
        m.into_iter()
            .map(|(p, s)| (p.to_string(), s.into_iter().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_and_persistent_rules() {
        let mut w = WatchManager::default();
        w.add(Kind::Data, "/a", 1);
        w.add(Kind::Child, "/a", 2);
        w.add(Kind::Persistent, "/a", 3);
        w.add(Kind::Recursive, "/", 4);
        assert_eq!(w.trigger("/a", event::NODE_DATA_CHANGED), vec![1, 3, 4]);
        assert_eq!(w.trigger("/a", event::NODE_DATA_CHANGED), vec![3, 4]);
        assert_eq!(w.trigger("/a", event::NODE_CHILDREN_CHANGED), vec![2, 3]);
        assert_eq!(w.trigger("/a", event::NODE_CHILDREN_CHANGED), vec![3]);
        w.add(Kind::Child, "/a", 2);
        w.add(Kind::Data, "/a", 1);
        assert_eq!(w.trigger("/a", event::NODE_DELETED), vec![1, 2, 3, 4]);
        assert_eq!(w.trigger("/a/b/c", event::NODE_CREATED), vec![4]);
        assert_eq!(w.total(), 4);
        assert_eq!(w.by_connection().len(), 2);
    }

    #[test]
    fn remove_and_check() {
        let mut w = WatchManager::default();
        w.add(Kind::Data, "/a", 1);
        assert!(w.has_watch("/a", watcher_type::DATA, 1));
        assert!(!w.has_watch("/a", watcher_type::CHILDREN, 1));
        assert!(!w.remove_watches("/a", watcher_type::CHILDREN, 1));
        assert!(w.remove_watches("/a", watcher_type::ANY, 1));
        assert!(w.trigger("/a", event::NODE_DELETED).is_empty());
        w.add(Kind::Child, "/b", 9);
        w.remove_conn(9);
        assert_eq!(w.total(), 0);
    }
}
