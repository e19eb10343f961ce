//! ZAB, ZooKeeper's atomic broadcast, as pure state machines: events in, actions out, no I/O.
//!
//! - `election`: fast leader election (FastLeaderElection's vote rules): which voter leads.
//! - `peer`: one ensemble member through Zab 1.0's phases: discovery (a new epoch), synchronization
//!   (DIFF / TRUNC / SNAP, NEWLEADER, UPTODATE) and broadcast (PROPOSAL, ACK, COMMIT; INFORM for
//!   observers), with heartbeats and the timeouts that send a member back to election.
//! - `wire`: the bytes of those messages between members.
//! - `sim` (tests only): a deterministic simulated ensemble with message delays, crashes, restarts
//!   and partitions, checking Zab's safety properties after every step.
//!
//! - `link`: which connection to each member is live, as the write machine sees link events.
//!
//! The write core (`server::core`, through the write machine `write::Machine`) drives a
//! `peer::Peer` for every write; a standalone server is an ensemble of one
//! (docs/design/replication.md: how an ensemble member runs, what is decided, what remains).
//!
//! Vocabulary follows ZooKeeper's: a *sid* is a server's `myid`; a *zxid* is `epoch << 32 |
//! counter`; the *accepted epoch* is the newest epoch this member agreed to join (LEADERINFO), the
//! *current epoch* the newest whose history it took (NEWLEADER). Both survive restarts.

pub(crate) mod election;
pub mod link;
pub mod peer;
#[cfg(test)]
mod sim;
pub mod wire;

use std::collections::BTreeSet;

/// A server's id: `myid`, the N of `server.N` in zoo.cfg.
pub type Sid = u64;

/// ZooKeeper's transaction id: epoch in the high 32 bits, a counter within the epoch below.
pub type Zxid = u64;

/// The epoch of a zxid.
pub fn epoch_of(zxid: Zxid) -> u32 {
    (zxid >> 32) as u32
}

/// The zxid `counter` of `epoch`.
pub fn make_zxid(epoch: u32, counter: u32) -> Zxid {
    (epoch as u64) << 32 | counter as u64
}

/// Who is in the ensemble: voters (participants) decide elections and commits; observers only
/// follow. A majority of voters is a quorum (ZooKeeper's `QuorumMaj`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensemble {
    pub voters: BTreeSet<Sid>,
    pub observers: BTreeSet<Sid>,
}

impl Ensemble {
    /// An ensemble of `voters` and no observers.
    pub fn of_voters(voters: impl IntoIterator<Item = Sid>) -> Self {
        Ensemble {
            voters: voters.into_iter().collect(),
            observers: BTreeSet::new(),
        }
    }

    pub fn is_voter(&self, sid: Sid) -> bool {
        self.voters.contains(&sid)
    }

    pub fn is_member(&self, sid: Sid) -> bool {
        self.voters.contains(&sid) || self.observers.contains(&sid)
    }

    /// Every member, voters first.
    pub fn members(&self) -> impl Iterator<Item = Sid> + '_ {
        self.voters.iter().chain(self.observers.iter()).copied()
    }

    /// Whether the voters among `sids` are a strict majority of all voters. Non-voters in `sids`
    /// do not count.
    pub fn is_quorum<'a>(&self, sids: impl IntoIterator<Item = &'a Sid>) -> bool {
        let n = sids.into_iter().filter(|s| self.voters.contains(s)).count();
        n * 2 > self.voters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_halves() {
        let z = make_zxid(7, 42);
        assert_eq!(epoch_of(z), 7);
        assert_eq!(z & 0xffff_ffff, 42);
        assert!(make_zxid(2, 0) > make_zxid(1, u32::MAX));
    }

    #[test]
    fn quorum_counts_only_voters() {
        let mut e = Ensemble::of_voters([1, 2, 3]);
        e.observers.insert(9);
        assert!(!e.is_quorum(&[1]));
        assert!(e.is_quorum(&[1, 3]));
        assert!(!e.is_quorum(&[1, 9]));
        let four = Ensemble::of_voters([1, 2, 3, 4]);
        assert!(!four.is_quorum(&[1, 2]));
        assert!(four.is_quorum(&[1, 2, 4]));
    }
}
