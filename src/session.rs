//! Session expiry tracking on the write core (ZooKeeper's SessionTrackerImpl). Pure: the caller
//! passes monotonic milliseconds in; nothing here reads a clock.
//!
//! Shards report which sessions showed activity (any packet, pings included) in batches; a
//! session whose last touch is older than its timeout is expired by a closeSession txn.
//! Deadlines are rounded up to the next tick, as ZooKeeper's expiry buckets do, so expiry is
//! checked once per tick rather than per session.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    timeout_ms: u64,
    deadline_ms: u64,
}

pub struct SessionTracker {
    tick_ms: u64,
    sessions: HashMap<i64, Entry>,
    next_id: i64,
}

impl SessionTracker {
    /// `server_id` goes in the top byte of every session id, as ZooKeeper does, so ids from
    /// different servers (and restarts, via the time bits) do not collide.
    pub fn new(tick_ms: u64, server_id: u8, wall_clock_ms: i64) -> SessionTracker {
        let base = ((wall_clock_ms << 24) as u64 >> 8) as i64;
        SessionTracker {
            tick_ms: tick_ms.max(1),
            sessions: HashMap::new(),
            next_id: base | ((server_id as i64) << 56),
        }
    }

    pub fn next_session_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn deadline(&self, now_ms: u64, timeout_ms: u64) -> u64 {
        let t = now_ms + timeout_ms;
        t.div_ceil(self.tick_ms) * self.tick_ms
    }

    pub fn add(&mut self, id: i64, timeout_ms: u64, now_ms: u64) {
        let deadline_ms = self.deadline(now_ms, timeout_ms);
        self.sessions.insert(
            id,
            Entry {
                timeout_ms,
                deadline_ms,
            },
        );
    }

    /// Renews a live session; false if it is unknown (expired or closed).
    pub fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        let tick = self.tick_ms;
        match self.sessions.get_mut(&id) {
            Some(e) => {
                e.deadline_ms = (now_ms + e.timeout_ms).div_ceil(tick) * tick;
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: i64) {
        self.sessions.remove(&id);
    }

    /// Live sessions grouped by deadline (`dump`), earliest first.
    pub fn buckets(&self) -> Vec<(u64, Vec<i64>)> {
        let mut m: std::collections::BTreeMap<u64, Vec<i64>> = Default::default();
        for (id, e) in &self.sessions {
            m.entry(e.deadline_ms).or_default().push(*id);
        }
        m.into_iter()
            .map(|(d, mut ids)| {
                ids.sort_unstable();
                (d, ids)
            })
            .collect()
    }

    /// Gives every session a full timeout from `now_ms` (a member that serves again after an
    /// election, as a new leader does for the global sessions).
    pub fn renew_all(&mut self, now_ms: u64) {
        let tick = self.tick_ms;
        for e in self.sessions.values_mut() {
            e.deadline_ms = (now_ms + e.timeout_ms).div_ceil(tick) * tick;
        }
    }

    /// Sessions past their deadline, removed from tracking; sorted for determinism.
    pub fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        let mut gone: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        gone.sort_unstable();
        for id in &gone {
            self.sessions.remove(id);
        }
        gone
    }
}

/// What a local session holds besides its deadline.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    pub password: [u8; 16],
    pub timeout_ms: i32,
}

/// Sessions that live only on the member a client made them on (ZooKeeper's local sessions,
/// `localSessionsEnabled`): no txn creates or closes them, this member alone expires them, and
/// they cannot move to another member. They cannot own ephemerals; with
/// `localSessionsUpgradingEnabled` the first ephemeral create makes one global.
pub struct LocalSessions {
    expiry: SessionTracker,
    info: HashMap<i64, Local>,
}

impl LocalSessions {
    pub fn new(tick_ms: u64) -> LocalSessions {
        LocalSessions {
            // Ids come from the member's one numbering (`SessionTracker::next_session_id`).
            expiry: SessionTracker::new(tick_ms, 0, 0),
            info: HashMap::new(),
        }
    }

    pub fn add(&mut self, id: i64, local: Local, now_ms: u64) {
        self.expiry.add(id, local.timeout_ms as u64, now_ms);
        self.info.insert(id, local);
    }

    pub fn get(&self, id: i64) -> Option<Local> {
        self.info.get(&id).copied()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.info.contains_key(&id)
    }

    /// Renews a local session; false if it is not one.
    pub fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        self.expiry.touch(id, now_ms)
    }

    pub fn remove(&mut self, id: i64) -> Option<Local> {
        self.expiry.remove(id);
        self.info.remove(&id)
    }

    pub fn renew_all(&mut self, now_ms: u64) {
        self.expiry.renew_all(now_ms);
    }

    /// Sessions past their deadline, forgotten; sorted.
    pub fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        let gone = self.expiry.expire(now_ms);
        for id in &gone {
            self.info.remove(id);
        }
        gone
    }

    pub fn len(&self) -> usize {
        self.info.len()
    }

    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_touches() {
        let mut t = SessionTracker::new(100, 1, 1_700_000_000_000);
        let a = t.next_session_id();
        let b = t.next_session_id();
        assert_eq!(a >> 56, 1);
        assert_ne!(a, b);
        t.add(a, 1000, 0);
        t.add(b, 1000, 0);
        assert!(t.expire(900).is_empty());
        assert!(t.touch(a, 900));
        assert_eq!(t.expire(1000), vec![b]);
        assert!(!t.touch(b, 1000));
        assert!(t.expire(1899).is_empty());
        assert_eq!(t.expire(1900), vec![a]);
    }

    #[test]
    fn local_sessions_expire_and_renew() {
        let mut l = LocalSessions::new(100);
        let local = Local {
            password: [7; 16],
            timeout_ms: 1000,
        };
        l.add(5, local, 0);
        assert!(l.contains(5) && l.touch(5, 500));
        assert!(!l.touch(6, 500));
        assert!(l.expire(1400).is_empty());
        l.renew_all(1400);
        assert!(l.expire(2399).is_empty());
        assert_eq!(l.expire(2400), vec![5]);
        assert!(l.get(5).is_none() && l.is_empty());
    }
}
