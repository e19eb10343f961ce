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
}
