//! Fast leader election: which voter leads the next epoch, as a pure state machine.
//!
//! The rules are FastLeaderElection's (`lookForLeader` and its receiver, ZooKeeper 3.8/3.9): a
//! looking member votes for itself, adopts any better vote (higher peer epoch, then zxid, then
//! sid) and any higher round, and decides once a quorum of voters agrees with its vote and no
//! better vote arrives for `finalize_wait_ms`; a member that finds a quorum of settled members
//! (FOLLOWING / LEADING) behind an established leader joins it at once. Settled members answer
//! looking ones with the vote they settled on. Observers look too, but are never voted for and
//! never counted.
//!
//! No I/O, threads or clocks: time comes in as `now_ms`, notifications to send go into `out`,
//! and the owner calls `on_tick` now and then (every few tens of milliseconds is plenty). The
//! transport must keep each link in order, as ZooKeeper's TCP election connections do (a sender's
//! older vote must not overtake its newer one), and should call `on_connected` when a link comes
//! up (QuorumCnxManager resends its last message then). Losing messages is fine: resends cover it.
//!
//! Left out: dynamic reconfiguration (the notification's version and config fields, and votes of
//! the next configuration), weighted / hierarchical quorums, the two-node oracle
//! (`QuorumOracleMaj`), the pre-3.4 message formats and the `-1` zxid guard. ZooKeeper's
//! loopback of its own notifications is replaced by counting this member's own vote directly.

use std::collections::BTreeMap;

use super::{Ensemble, Sid, Zxid};

/// A proposal for leader: the member voted for, and that member's history as the voter knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: Sid,
    /// The leader's last logged zxid.
    pub zxid: Zxid,
    /// The leader's current epoch (ZooKeeper's `peerEpoch`).
    pub peer_epoch: u32,
}

/// What a member is doing, as its notifications say (ZooKeeper's `ServerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// An election message (ZooKeeper's `Notification` / `ToSend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub vote: Vote,
    /// The sender's election round (ZooKeeper's `electionEpoch`, the logical clock).
    pub round: u64,
    pub state: PeerState,
}

/// The outcome of an election for this member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub vote: Vote,
    /// `Leading`, `Following` or `Observing`.
    pub state: PeerState,
    pub round: u64,
}

/// Timing, in the caller's milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long to wait for a better vote once a quorum agrees (ZooKeeper's finalizeWait, 200).
    pub finalize_wait_ms: u64,
    /// First resend interval when nothing arrives; doubles up to `max_resend_ms` (200 / 60000).
    pub resend_ms: u64,
    pub max_resend_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            finalize_wait_ms: 200,
            resend_ms: 200,
            max_resend_ms: 60_000,
        }
    }
}

/// A vote as one sender reported it: what ZooKeeper keeps per sid in `recvset` and
/// `outofelection`.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    vote: Vote,
    round: u64,
    state: PeerState,
}

impl Recorded {
    /// ZooKeeper's `Vote.equals`. Votes of settled members agree on leader and peer epoch alone:
    /// their zxid and round can differ (a member that joined later, or a leader whose epoch
    /// moved on; ZOOKEEPER-1805), and one epoch is only ever led by one leader.
    fn agrees(&self, other: &Recorded) -> bool {
        if self.state == PeerState::Looking || other.state == PeerState::Looking {
            self.vote == other.vote && self.round == other.round
        } else {
            self.vote.leader == other.vote.leader && self.vote.peer_epoch == other.vote.peer_epoch
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `start` was never called: there is no vote to offer anyone.
    Idle,
    Looking,
    Settled(Decision),
}

/// One member's view of elections, for its whole life: while looking it runs the election; once
/// settled it answers looking members with the vote it settled on.
pub struct Election {
    me: Sid,
    ensemble: Ensemble,
    timing: Timing,
    phase: Phase,
    /// The logical clock. It survives settling, so the next `start` is a newer round.
    round: u64,
    /// The vote this member proposes while looking.
    vote: Vote,
    /// Its own vote of this look, which a newer round starts over from.
    own_vote: Vote,
    /// Votes of voters in the current round (looking ones, and settled ones of the same round).
    recvset: BTreeMap<Sid, Recorded>,
    /// Votes of settled voters, whatever their round (ZooKeeper's `outofelection`).
    out_of_election: BTreeMap<Sid, Recorded>,
    /// While a quorum agrees with `vote`: when the wait for a better vote ends.
    finalize_deadline: Option<u64>,
    /// When a voter's notification last arrived (or the last resend): the silence is measured
    /// from there, as ZooKeeper's `poll(notTimeout)` restarts after each message.
    last_heard_ms: u64,
    resend_interval_ms: u64,
}

impl Election {
    pub fn new(me: Sid, ensemble: Ensemble, timing: Timing) -> Self {
        let nobody = Vote {
            leader: me,
            zxid: 0,
            peer_epoch: 0,
        };
        Election {
            me,
            ensemble,
            timing,
            phase: Phase::Idle,
            round: 0,
            vote: nobody,
            own_vote: nobody,
            recvset: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            finalize_deadline: None,
            last_heard_ms: 0,
            resend_interval_ms: timing.resend_ms.max(1),
        }
    }

    /// Starts looking: a new round, a vote for itself with its own history (an observer votes
    /// for nobody it could elect, but still looks). Notifications to send go into `out`.
    ///
    /// Also the way back to looking from a settled state (the leader was lost): the round goes
    /// up, and everything heard in earlier looks is forgotten.
    pub fn start(
        &mut self,
        now_ms: u64,
        last_zxid: Zxid,
        current_epoch: u32,
        out: &mut Vec<(Sid, Notification)>,
    ) {
        self.round = self.round.saturating_add(1);
        // An observer's vote names itself, a non-voter: voters never adopt or count a vote for
        // a non-voter, and any vote for a voter beats it (`beats`), so it can never win.
        self.own_vote = if self.ensemble.is_voter(self.me) {
            Vote {
                leader: self.me,
                zxid: last_zxid,
                peer_epoch: current_epoch,
            }
        } else {
            Vote {
                leader: self.me,
                zxid: 0,
                peer_epoch: 0,
            }
        };
        self.vote = self.own_vote;
        self.recvset.clear();
        self.out_of_election.clear();
        self.finalize_deadline = None;
        self.last_heard_ms = now_ms;
        self.resend_interval_ms = self.timing.resend_ms.max(1);
        self.phase = Phase::Looking;
        self.broadcast(out);
        // A one-voter ensemble is its own quorum; ZooKeeper gets there through the loopback of
        // its own notification, here it is checked directly. The decision comes from `on_tick`.
        if self.own_quorum() {
            self.finalize_deadline = Some(now_ms.saturating_add(self.timing.finalize_wait_ms));
        }
    }

    /// A notification from `from`. Returns the decision when this ends the election.
    pub fn on_notification(
        &mut self,
        now_ms: u64,
        from: Sid,
        n: Notification,
        out: &mut Vec<(Sid, Notification)>,
    ) -> Option<Decision> {
        // Strangers, and anything claiming to be this member, are not part of the election.
        if from == self.me || !self.ensemble.is_member(from) {
            return None;
        }
        match self.phase {
            Phase::Idle => None,
            Phase::Settled(d) => {
                self.answer_settled(d, from, n, out);
                None
            }
            Phase::Looking => {
                // The finalize wait ran out before this arrived: the election ended then, and
                // this notification is for a settled member to answer.
                if self.finalize_deadline.is_some_and(|d| now_ms >= d) {
                    let d = self.settle(self.vote, self.round);
                    self.answer_settled(d, from, n, out);
                    return Some(d);
                }
                self.looking(now_ms, from, n, out)
            }
        }
    }

    /// Time passes: resends, and the end of a finalize wait.
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Vec<(Sid, Notification)>) -> Option<Decision> {
        if self.phase != Phase::Looking {
            return None;
        }
        if let Some(deadline) = self.finalize_deadline {
            // ZooKeeper sends nothing while it waits for a better vote.
            if now_ms >= deadline {
                return Some(self.settle(self.vote, self.round));
            }
            return None;
        }
        // Nothing heard for a while: the notifications may have been lost (or their receivers
        // were down). Resend, backing off so that a minority left alone does not flood.
        if now_ms.saturating_sub(self.last_heard_ms) >= self.resend_interval_ms {
            self.broadcast(out);
            self.resend_interval_ms = self
                .resend_interval_ms
                .saturating_mul(2)
                .min(self.timing.max_resend_ms)
                .max(1);
            self.last_heard_ms = now_ms;
        }
        None
    }

    /// The connection to `sid` is (re)established. ZooKeeper's QuorumCnxManager then resends its
    /// last message to that peer, which is how a member that was down learns the votes of those
    /// that kept looking, without waiting out their resend backoff (up to `max_resend_ms`).
    /// While looking, this sends our notification to `sid`; settled members wait to be asked.
    pub fn on_connected(&self, sid: Sid, out: &mut Vec<(Sid, Notification)>) {
        if self.phase == Phase::Looking && sid != self.me && self.ensemble.is_member(sid) {
            out.push((sid, self.notification()));
        }
    }

    /// Whether this member is looking.
    #[cfg(test)] // read by the tests; the runtime will once ensembles run (#11)
    pub fn is_looking(&self) -> bool {
        self.phase == Phase::Looking
    }

    /// The election's outcome, once settled (until the next `start`).
    #[cfg(test)] // read by the tests; the runtime will once ensembles run (#11)
    pub fn decision(&self) -> Option<Decision> {
        match self.phase {
            Phase::Settled(d) => Some(d),
            _ => None,
        }
    }

    /// The vote this member offers: its proposal while looking, the settled vote afterwards.
    #[cfg(test)] // read by the tests; the runtime will once ensembles run (#11)
    pub fn current_vote(&self) -> Vote {
        match self.phase {
            Phase::Settled(d) => d.vote,
            _ => self.vote,
        }
    }

    /// The decision as a notification, once settled: what this member tells one that takes it
    /// for its leader while it follows another.
    pub fn settled_notification(&self) -> Option<Notification> {
        match self.phase {
            Phase::Settled(d) => Some(Notification {
                vote: d.vote,
                round: d.round,
                state: d.state,
            }),
            _ => None,
        }
    }

    /// The logical clock: the round of the current (or last) election.
    #[cfg(test)] // read by the tests; the runtime will once ensembles run (#11)
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The settled leader moved to a new epoch: answers to looking members carry it from now on
    /// (ZooKeeper's `QuorumPeer.updateElectionVote`, ZOOKEEPER-1732). Settled votes agree on
    /// leader and peer epoch, so every member of an established ensemble should report the
    /// same one. Does nothing while looking.
    pub fn update_settled_epoch(&mut self, peer_epoch: u32) {
        if let Phase::Settled(d) = &mut self.phase {
            d.vote.peer_epoch = peer_epoch;
        }
    }

    fn notification(&self) -> Notification {
        Notification {
            vote: self.vote,
            round: self.round,
            state: PeerState::Looking,
        }
    }

    fn broadcast(&self, out: &mut Vec<(Sid, Notification)>) {
        let n = self.notification();
        out.extend(
            self.ensemble
                .members()
                .filter(|&sid| sid != self.me)
                .map(|sid| (sid, n)),
        );
    }

    /// A settled member tells a looking one what it settled on; anything else needs no answer
    /// (answering settled members would only bounce messages back and forth).
    fn answer_settled(
        &self,
        d: Decision,
        from: Sid,
        n: Notification,
        out: &mut Vec<(Sid, Notification)>,
    ) {
        if n.state == PeerState::Looking {
            let reply = Notification {
                vote: d.vote,
                round: d.round,
                state: d.state,
            };
            out.push((from, reply));
        }
    }

    /// ZooKeeper's `totalOrderPredicate`: whether `new` is a better leader than `cur`. Only a
    /// voter can be a better leader; any voter is better than the non-voter an observer starts
    /// out voting for.
    fn beats(&self, new: &Vote, cur: &Vote) -> bool {
        if !self.ensemble.is_voter(new.leader) {
            return false;
        }
        if !self.ensemble.is_voter(cur.leader) {
            return true;
        }
        (new.peer_epoch, new.zxid, new.leader) > (cur.peer_epoch, cur.zxid, cur.leader)
    }

    fn looking(
        &mut self,
        now_ms: u64,
        from: Sid,
        n: Notification,
        out: &mut Vec<(Sid, Notification)>,
    ) -> Option<Decision> {
        let me_voter = self.ensemble.is_voter(self.me);
        if !self.ensemble.is_voter(from) {
            // A non-voter's notification never enters the election, but a looking one is told
            // our vote at once so that it can follow along. An observer does not answer another
            // observer: neither could use the other's vote, and they would answer each other
            // forever.
            if n.state == PeerState::Looking && me_voter {
                out.push((from, self.notification()));
            }
            return None;
        }
        self.last_heard_ms = now_ms;
        if n.state == PeerState::Looking && n.round < self.round && me_voter {
            // A voter behind us: tell it our round so that it catches up. Only voters do this,
            // since a voter never takes its round from a non-voter.
            out.push((from, self.notification()));
        }
        // ZooKeeper's validVoter(n.leader): a vote for a non-voter is not a vote.
        if !self.ensemble.is_voter(n.vote.leader) {
            return None;
        }
        match n.state {
            PeerState::Looking => self.on_looking_vote(now_ms, from, n, out),
            PeerState::Following | PeerState::Leading => self.on_settled_vote(from, n),
            // A voter never observes; such a message is malformed.
            PeerState::Observing => None,
        }
    }

    fn on_looking_vote(
        &mut self,
        now_ms: u64,
        from: Sid,
        n: Notification,
        out: &mut Vec<(Sid, Notification)>,
    ) -> Option<Decision> {
        if n.round < self.round {
            // Stale (the sender was told our round above).
            return None;
        }
        let better = self.beats(&n.vote, &self.vote);
        if n.round == self.round
            && !better
            && n.vote != self.vote
            && self.ensemble.is_voter(self.me)
        {
            // It has not heard our better vote: ours may have reached it before it was looking
            // (a follower that noticed its leader's death a moment later). Tell it now rather
            // than at our next resend, 200 ms on: measured, that race cost half the failovers
            // on one CPU a fourth of a second. ZooKeeper waits for the resend.
            out.push((from, self.notification()));
        }
        if self.finalize_deadline.is_some() && !better {
            // During the finalize wait ZooKeeper only looks for a better vote and drops the
            // rest. A same-round vote is still worth keeping; a newer round with a worse vote
            // is dropped as ZooKeeper does (our decision will answer its sender).
            if n.round == self.round {
                self.record_looking(from, n);
            }
            return None;
        }
        if n.round > self.round {
            // A newer election: join it, starting over from the better of its vote and ours.
            self.round = n.round;
            self.recvset.clear();
            self.vote = if self.beats(&n.vote, &self.own_vote) {
                n.vote
            } else {
                self.own_vote
            };
            self.vote_changed(now_ms, out);
        } else if better {
            self.vote = n.vote;
            self.vote_changed(now_ms, out);
        }
        self.record_looking(from, n);
        if self.finalize_deadline.is_none() && self.own_quorum() {
            let deadline = now_ms.saturating_add(self.timing.finalize_wait_ms);
            if now_ms >= deadline {
                return Some(self.settle(self.vote, self.round));
            }
            self.finalize_deadline = Some(deadline);
        }
        None
    }

    fn record_looking(&mut self, from: Sid, n: Notification) {
        let rec = Recorded {
            vote: n.vote,
            round: n.round,
            state: PeerState::Looking,
        };
        self.recvset.insert(from, rec);
    }

    /// Our vote or round changed: any finalize wait is off, everyone hears the new vote, and the
    /// resend interval starts over (the election is moving again).
    fn vote_changed(&mut self, now_ms: u64, out: &mut Vec<(Sid, Notification)>) {
        self.finalize_deadline = None;
        self.resend_interval_ms = self.timing.resend_ms.max(1);
        self.last_heard_ms = now_ms;
        self.broadcast(out);
    }

    /// Whether a quorum of voters, this member included if it votes, agrees with its vote.
    fn own_quorum(&self) -> bool {
        let mine = Recorded {
            vote: self.vote,
            round: self.round,
            state: PeerState::Looking,
        };
        let mut agreeing: Vec<Sid> = self
            .recvset
            .iter()
            .filter(|(_, r)| r.agrees(&mine))
            .map(|(&sid, _)| sid)
            .collect();
        if self.ensemble.is_voter(self.me) {
            agreeing.push(self.me);
        }
        self.ensemble.is_quorum(&agreeing)
    }

    /// A notification from a voter that already left its election (FOLLOWING or LEADING).
    fn on_settled_vote(&mut self, from: Sid, n: Notification) -> Option<Decision> {
        let rec = Recorded {
            vote: n.vote,
            round: n.round,
            state: n.state,
        };
        if n.round == self.round {
            // Settled in the round we are in: it counts with the looking votes of this round
            // (ours too, as ZooKeeper's loopback puts our own vote in recvset).
            self.recvset.insert(from, rec);
            let mut agreeing: Vec<Sid> = agreeing_with(&self.recvset, &rec);
            let mine = Recorded {
                vote: self.vote,
                round: self.round,
                state: PeerState::Looking,
            };
            if self.ensemble.is_voter(self.me) && mine.agrees(&rec) {
                agreeing.push(self.me);
            }
            if self.ensemble.is_quorum(&agreeing) && self.leader_established(&self.recvset, &rec) {
                return Some(self.settle(n.vote, n.round));
            }
        }
        // Joining an ensemble that is already running, whatever its round: a quorum must be
        // following the same leader, and that leader must say it leads (ZOOKEEPER-1732).
        self.out_of_election.insert(from, rec);
        let agreeing = agreeing_with(&self.out_of_election, &rec);
        if self.ensemble.is_quorum(&agreeing)
            && self.leader_established(&self.out_of_election, &rec)
        {
            self.round = n.round;
            return Some(self.settle(n.vote, n.round));
        }
        None
    }

    /// ZooKeeper's `checkLeader`: a quorum behind a leader is not enough, the leader itself must
    /// have said it is leading (else members could keep electing a crashed leader). If the
    /// leader is this member, the quorum must be of our own round.
    fn leader_established(&self, votes: &BTreeMap<Sid, Recorded>, rec: &Recorded) -> bool {
        if rec.vote.leader == self.me {
            self.round == rec.round
        } else {
            votes
                .get(&rec.vote.leader)
                .is_some_and(|r| r.state == PeerState::Leading)
        }
    }

    fn settle(&mut self, vote: Vote, round: u64) -> Decision {
        let state = if !self.ensemble.is_voter(self.me) {
            PeerState::Observing
        } else if vote.leader == self.me {
            PeerState::Leading
        } else {
            PeerState::Following
        };
        let d = Decision { vote, state, round };
        self.phase = Phase::Settled(d);
        self.finalize_deadline = None;
        d
    }
}

/// The sids in `votes` whose vote agrees with `rec`.
fn agreeing_with(votes: &BTreeMap<Sid, Recorded>, rec: &Recorded) -> Vec<Sid> {
    votes
        .iter()
        .filter(|(_, r)| r.agrees(rec))
        .map(|(&sid, _)| sid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::make_zxid;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    type Out = Vec<(Sid, Notification)>;

    /// A member's history: (current epoch, last zxid).
    #[derive(Clone, Copy)]
    struct History {
        epoch: u32,
        zxid: Zxid,
    }

    struct Node {
        el: Election,
        up: bool,
        history: History,
        decisions: Vec<Decision>,
        /// When the current decision was taken (for the supervisor).
        decided_at: u64,
    }

    struct Msg {
        at: u64,
        from: Sid,
        to: Sid,
        n: Notification,
    }

    /// A deterministic ensemble: messages take 1..=max_delay ms and are delivered in a seeded
    /// random order, except that each link stays FIFO (election channels are TCP connections,
    /// and FLE relies on a sender's newer vote not being overtaken by its older one); messages
    /// from or to a sid in `lossy` are dropped with that probability; messages to a member that
    /// is down are lost. Every member ticks every 10 ms.
    ///
    /// With `supervise`, a settled member stands in for Zab's synchronization phase: a leader
    /// without a quorum following it, or a follower whose leader is not leading it, looks again
    /// after `LEADER_TIMEOUT_MS` (ZooKeeper's initLimit), as the peer will.
    struct Sim {
        rng: StdRng,
        now: u64,
        ensemble: Ensemble,
        nodes: BTreeMap<Sid, Node>,
        queue: Vec<Msg>,
        /// Per link, when its last message arrives: a later one arrives strictly later.
        link_last: BTreeMap<(Sid, Sid), u64>,
        max_delay: u64,
        lossy: BTreeMap<Sid, f64>,
        supervise: bool,
        /// Whether members tell `on_connected` when another comes up.
        connect: bool,
        restarts: u32,
    }

    const LEADER_TIMEOUT_MS: u64 = 2_000;

    impl Sim {
        fn new(seed: u64, ensemble: Ensemble, histories: &[(Sid, History)]) -> Sim {
            let mut nodes = BTreeMap::new();
            for sid in ensemble.members() {
                let history = histories
                    .iter()
                    .find(|(s, _)| *s == sid)
                    .map(|(_, h)| *h)
                    .unwrap_or(History { epoch: 0, zxid: 0 });
                let el = Election::new(sid, ensemble.clone(), Timing::default());
                let node = Node {
                    el,
                    up: false,
                    history,
                    decisions: Vec::new(),
                    decided_at: 0,
                };
                nodes.insert(sid, node);
            }
            Sim {
                rng: StdRng::seed_from_u64(seed),
                now: 0,
                ensemble,
                nodes,
                queue: Vec::new(),
                link_last: BTreeMap::new(),
                max_delay: 50,
                lossy: BTreeMap::new(),
                supervise: false,
                connect: true,
                restarts: 0,
            }
        }

        fn voters(seed: u64, histories: &[(Sid, History)]) -> Sim {
            let e = Ensemble::of_voters(histories.iter().map(|(s, _)| *s));
            Sim::new(seed, e, histories)
        }

        /// `sid` (re)starts looking, with its state kept (the peer lost its leader). If it was
        /// down, the members that are up connect to it.
        fn start(&mut self, sid: Sid) {
            let now = self.now;
            let mut out = Vec::new();
            let node = self.nodes.get_mut(&sid).expect("member");
            let was_up = std::mem::replace(&mut node.up, true);
            node.el
                .start(now, node.history.zxid, node.history.epoch, &mut out);
            self.send(sid, out);
            if !was_up && self.connect {
                let others: Vec<Sid> = self.nodes.keys().copied().collect();
                for other in others {
                    let mut out = Vec::new();
                    let node = &self.nodes[&other];
                    if other != sid && node.up {
                        node.el.on_connected(sid, &mut out);
                    }
                    self.send(other, out);
                }
            }
        }

        /// `sid` crashes: down, and its in-memory election state is gone.
        fn crash(&mut self, sid: Sid) {
            let ensemble = self.ensemble.clone();
            let node = self.nodes.get_mut(&sid).expect("member");
            node.up = false;
            node.el = Election::new(sid, ensemble, Timing::default());
        }

        fn send(&mut self, from: Sid, out: Out) {
            for (to, n) in out {
                let p = self.lossy.get(&from).or(self.lossy.get(&to)).copied();
                if p.is_some_and(|p| self.rng.gen_bool(p)) {
                    continue;
                }
                let mut at = self.now + self.rng.gen_range(1..=self.max_delay);
                let last = self.link_last.entry((from, to)).or_insert(0);
                at = at.max(*last + 1);
                *last = at;
                self.queue.push(Msg { at, from, to, n });
            }
        }

        fn decided(&mut self, sid: Sid, d: Decision) {
            let now = self.now;
            let voter = self.ensemble.is_voter(sid);
            let node = self.nodes.get_mut(&sid).expect("member");
            // What every decision must look like, whatever the timing.
            assert!(self.ensemble.is_voter(d.vote.leader), "{d:?}");
            match d.state {
                PeerState::Leading => assert_eq!(d.vote.leader, sid),
                PeerState::Following => assert!(voter && d.vote.leader != sid),
                PeerState::Observing => assert!(!voter),
                PeerState::Looking => panic!("decided to look: {d:?}"),
            }
            assert!(!node.el.is_looking());
            assert_eq!(node.el.decision(), Some(d));
            node.decisions.push(d);
            node.decided_at = now;
        }

        fn step(&mut self) {
            self.now += 1;
            let now = self.now;
            let (mut due, rest): (Vec<Msg>, Vec<Msg>) =
                self.queue.drain(..).partition(|m| m.at <= now);
            self.queue = rest;
            due.shuffle(&mut self.rng);
            for m in due {
                let node = self.nodes.get_mut(&m.to).expect("member");
                if !node.up {
                    continue;
                }
                let mut out = Vec::new();
                let d = node.el.on_notification(now, m.from, m.n, &mut out);
                self.send(m.to, out);
                if let Some(d) = d {
                    self.decided(m.to, d);
                }
            }
            if now.is_multiple_of(10) {
                let sids: Vec<Sid> = self.nodes.keys().copied().collect();
                for sid in sids {
                    let node = self.nodes.get_mut(&sid).expect("member");
                    if !node.up {
                        continue;
                    }
                    let mut out = Vec::new();
                    let d = node.el.on_tick(now, &mut out);
                    self.send(sid, out);
                    if let Some(d) = d {
                        self.decided(sid, d);
                    }
                }
            }
            if self.supervise && now.is_multiple_of(100) {
                self.supervise_step();
            }
        }

        fn supervise_step(&mut self) {
            let mut restart = Vec::new();
            for (&sid, node) in &self.nodes {
                let Some(d) = node.el.decision() else {
                    continue;
                };
                if !node.up || self.now < node.decided_at + LEADER_TIMEOUT_MS {
                    continue;
                }
                let ok = match d.state {
                    PeerState::Leading => {
                        let following: Vec<Sid> = self
                            .nodes
                            .iter()
                            .filter(|(_, f)| {
                                f.up && f.el.decision().is_some_and(|fd| fd.vote.leader == sid)
                            })
                            .map(|(&s, _)| s)
                            .collect();
                        self.ensemble.is_quorum(&following)
                    }
                    _ => self.nodes.get(&d.vote.leader).is_some_and(|l| {
                        l.up && l
                            .el
                            .decision()
                            .is_some_and(|ld| ld.state == PeerState::Leading)
                    }),
                };
                if !ok {
                    restart.push(sid);
                }
            }
            for sid in restart {
                self.restarts += 1;
                self.start(sid);
            }
        }

        fn run_for(&mut self, ms: u64) {
            for _ in 0..ms {
                self.step();
            }
        }

        /// Runs until the members that are up agree on one established leader; returns it.
        fn run_until_stable(&mut self, limit_ms: u64) -> Option<Sid> {
            for _ in 0..limit_ms {
                self.step();
                if let Some(leader) = self.stable_leader() {
                    return Some(leader);
                }
            }
            None
        }

        /// The leader if every member that is up has settled on it and it is leading.
        fn stable_leader(&self) -> Option<Sid> {
            let mut leader = None;
            for node in self.nodes.values().filter(|n| n.up) {
                let d = node.el.decision()?;
                if leader.is_some_and(|l| l != d.vote.leader) {
                    return None;
                }
                leader = Some(d.vote.leader);
            }
            let l = self.nodes.get(&leader?)?;
            let leading = l.up && l.el.decision()?.state == PeerState::Leading;
            leading.then_some(leader?)
        }

        fn leading_count(&self) -> usize {
            self.nodes
                .values()
                .filter(|n| {
                    n.up && n
                        .el
                        .decision()
                        .is_some_and(|d| d.state == PeerState::Leading)
                })
                .count()
        }

        fn decision_count(&self) -> usize {
            self.nodes.values().map(|n| n.decisions.len()).sum()
        }
    }

    fn h(epoch: u32, counter: u32) -> History {
        History {
            epoch,
            zxid: make_zxid(epoch, counter),
        }
    }

    /// The voter FLE should pick: highest (current epoch, last zxid, sid).
    fn best(histories: &[(Sid, History)]) -> Sid {
        histories
            .iter()
            .max_by_key(|(sid, h)| (h.epoch, h.zxid, *sid))
            .map(|(sid, _)| *sid)
            .expect("non-empty")
    }

    fn random_histories(rng: &mut StdRng, n: u64) -> Vec<(Sid, History)> {
        (1..=n)
            .map(|sid| {
                let epoch = rng.gen_range(1..=3);
                // A member's last zxid can be of an older epoch than its current epoch.
                let zxid = make_zxid(rng.gen_range(1..=epoch), rng.gen_range(0..4));
                (sid, History { epoch, zxid })
            })
            .collect()
    }

    fn all_start(sim: &mut Sim) {
        let sids: Vec<Sid> = sim.nodes.keys().copied().collect();
        for sid in sids {
            sim.start(sid);
        }
    }

    #[test]
    fn all_start_together_elect_the_best_history() {
        for n in [3, 5] {
            for seed in 0..200 {
                let mut hist_rng = StdRng::seed_from_u64(seed ^ 0x5eed);
                let histories = random_histories(&mut hist_rng, n);
                let mut sim = Sim::voters(seed, &histories);
                all_start(&mut sim);
                let leader = sim.run_until_stable(5_000);
                assert_eq!(leader, Some(best(&histories)), "n={n} seed={seed}");
                assert_eq!(sim.leading_count(), 1, "n={n} seed={seed}");
                // Delays (<= 50 ms) are shorter than the finalize wait: everyone decides once,
                // and right.
                for node in sim.nodes.values() {
                    assert_eq!(node.decisions.len(), 1, "n={n} seed={seed}");
                    assert_eq!(node.decisions[0].round, 1);
                }
            }
        }
    }

    #[test]
    fn ties_in_history_go_to_the_highest_sid() {
        for seed in 0..100 {
            // All equal.
            let same: Vec<(Sid, History)> = (1..=5).map(|s| (s, h(2, 7))).collect();
            let mut sim = Sim::voters(seed, &same);
            all_start(&mut sim);
            assert_eq!(sim.run_until_stable(5_000), Some(5), "seed={seed}");
            // The two best tie; the higher sid of the two wins, not the highest sid overall.
            let tied = [
                (1, h(3, 4)),
                (2, h(2, 9)),
                (3, h(3, 4)),
                (4, h(3, 3)),
                (5, h(2, 9)),
            ];
            let mut sim = Sim::voters(seed, &tied);
            all_start(&mut sim);
            assert_eq!(sim.run_until_stable(5_000), Some(3), "seed={seed}");
            assert_eq!(sim.leading_count(), 1);
        }
    }

    #[test]
    fn lossy_member_still_converges() {
        for n in [3u64, 5] {
            for seed in 0..50 {
                let mut hist_rng = StdRng::seed_from_u64(seed);
                let histories = random_histories(&mut hist_rng, n);
                let mut sim = Sim::voters(seed, &histories);
                // The best member is the lossy one: it matters most that it is heard.
                sim.lossy.insert(best(&histories), 0.3);
                sim.supervise = true;
                all_start(&mut sim);
                let leader = sim.run_until_stable(60_000);
                assert!(leader.is_some(), "n={n} seed={seed}");
                assert_eq!(sim.leading_count(), 1, "n={n} seed={seed}");
            }
        }
    }

    #[test]
    fn minority_cannot_elect_until_the_rest_return() {
        for (seed, connect) in (0..6).zip([true, false].into_iter().cycle()) {
            let histories: Vec<(Sid, History)> = (1..=5).map(|s| (s, h(1, s as u32))).collect();
            let mut sim = Sim::voters(seed, &histories);
            sim.supervise = true;
            sim.connect = connect;
            // The two best are alone, long enough for their resends to back off fully.
            sim.start(4);
            sim.start(5);
            sim.run_for(120_000);
            assert_eq!(sim.decision_count(), 0, "seed={seed}");
            assert!(sim.nodes[&4].el.is_looking() && sim.nodes[&5].el.is_looking());
            let back = sim.now;
            for sid in 1..=3 {
                sim.start(sid);
            }
            let leader = sim.run_until_stable(180_000);
            assert!(leader.is_some(), "seed={seed}");
            assert_eq!(sim.leading_count(), 1);
            // Reconnecting tells the returning members 5's vote at once; without it, 4 and 5
            // answer the returning members' worse votes with theirs (not waiting for their next
            // resend, up to a minute away): either way the best wins, quickly.
            assert_eq!(leader, Some(5), "seed={seed} connect={connect}");
            assert!(sim.now - back < 1_000, "took {} ms", sim.now - back);
        }
    }

    #[test]
    fn late_joiner_follows_the_established_leader() {
        for seed in 0..50 {
            // 4 and 5 have the best histories, but are down while 1..3 elect.
            let histories = [
                (1, h(2, 1)),
                (2, h(2, 2)),
                (3, h(2, 3)),
                (4, h(3, 1)),
                (5, h(3, 2)),
            ];
            let mut sim = Sim::voters(seed, &histories);
            for sid in 1..=3 {
                sim.start(sid);
            }
            assert_eq!(sim.run_until_stable(5_000), Some(3), "seed={seed}");
            sim.run_for(1_000);
            // 5 joins in the same round as the others (recvset path); 4 has looked several
            // times before, so its round differs (out-of-election path).
            sim.start(5);
            for _ in 0..3 {
                sim.start(4);
            }
            assert_eq!(sim.run_until_stable(5_000), Some(3), "seed={seed}");
            for sid in [4, 5] {
                let d = sim.nodes[&sid].decisions.as_slice();
                assert_eq!(d.len(), 1, "seed={seed}");
                assert_eq!(d[0].state, PeerState::Following);
                assert_eq!(d[0].vote.leader, 3);
                assert_eq!(d[0].round, 1, "the joiner takes the ensemble's round");
            }
            // The others never looked again.
            for sid in 1..=3 {
                assert_eq!(sim.nodes[&sid].decisions.len(), 1, "seed={seed}");
                assert!(!sim.nodes[&sid].el.is_looking());
            }
            assert_eq!(sim.leading_count(), 1);
        }
    }

    fn with_observers(voters: &[Sid], observers: &[Sid]) -> Ensemble {
        let mut e = Ensemble::of_voters(voters.iter().copied());
        e.observers.extend(observers.iter().copied());
        e
    }

    #[test]
    fn observers_observe_and_are_never_elected() {
        // The observer has by far the best history, and the highest sid.
        let histories = [(1, h(1, 5)), (2, h(1, 9)), (3, h(1, 2)), (4, h(9, 99))];
        for seed in 0..50 {
            let mut sim = Sim::new(seed, with_observers(&[1, 2, 3], &[4]), &histories);
            all_start(&mut sim);
            assert_eq!(sim.run_until_stable(5_000), Some(2), "seed={seed}");
            let d = sim.nodes[&4].el.decision().expect("settled");
            assert_eq!((d.state, d.vote.leader), (PeerState::Observing, 2));

            // Two of three voters are a quorum, observer or not.
            let mut sim = Sim::new(seed, with_observers(&[1, 2, 3], &[4]), &histories);
            for sid in [1, 3, 4] {
                sim.start(sid);
            }
            assert_eq!(sim.run_until_stable(5_000), Some(1), "seed={seed}");
            assert_eq!(
                sim.nodes[&4].el.decision().map(|d| d.state),
                Some(PeerState::Observing)
            );
        }
        // One voter and two observers are not a quorum, however long they talk.
        for seed in 0..5 {
            let mut sim = Sim::new(seed, with_observers(&[1, 2, 3], &[4, 5]), &histories);
            sim.supervise = true;
            for sid in [1, 4, 5] {
                sim.start(sid);
            }
            sim.run_for(60_000);
            assert_eq!(sim.decision_count(), 0, "seed={seed}");
            // Observers stop talking to each other: only voter replies and resends remain.
            assert!(sim.queue.len() < 10, "{} in flight", sim.queue.len());
        }
    }

    #[test]
    fn a_higher_round_pulls_looking_members_along() {
        for seed in 0..50 {
            let histories: Vec<(Sid, History)> = (1..=3).map(|s| (s, h(1, 1))).collect();
            let mut sim = Sim::voters(seed, &histories);
            all_start(&mut sim);
            assert_eq!(sim.run_until_stable(5_000), Some(3));
            // The leader dies; 1 has looked three more times, 2 once.
            sim.crash(3);
            for _ in 0..3 {
                sim.start(1);
            }
            sim.start(2);
            assert_eq!(sim.nodes[&1].el.round(), 4);
            assert_eq!(sim.nodes[&2].el.round(), 2);
            assert_eq!(sim.run_until_stable(5_000), Some(2), "seed={seed}");
            for sid in [1, 2] {
                assert_eq!(sim.nodes[&sid].el.decision().map(|d| d.round), Some(4));
            }
            // 3 comes back with a fresh clock (round 1) and joins the round-4 ensemble.
            sim.start(3);
            assert_eq!(sim.run_until_stable(5_000), Some(2), "seed={seed}");
            let d = sim.nodes[&3].el.decision().expect("settled");
            assert_eq!((d.state, d.round), (PeerState::Following, 4));
            assert_eq!(sim.nodes[&3].el.round(), 4);
        }
    }

    // Single members, driven by hand.

    fn vote(leader: Sid, epoch: u32, counter: u32) -> Vote {
        Vote {
            leader,
            zxid: make_zxid(epoch, counter),
            peer_epoch: epoch,
        }
    }

    fn looking(v: Vote, round: u64) -> Notification {
        Notification {
            vote: v,
            round,
            state: PeerState::Looking,
        }
    }

    fn three() -> Election {
        Election::new(1, Ensemble::of_voters([1, 2, 3]), Timing::default())
    }

    #[test]
    fn start_broadcasts_and_restart_bumps_the_round() {
        let mut e = three();
        assert!(!e.is_looking());
        let mut out = Vec::new();
        e.start(0, make_zxid(1, 5), 1, &mut out);
        assert!(e.is_looking());
        assert_eq!(e.round(), 1);
        let mine = looking(vote(1, 1, 5), 1);
        assert_eq!(out, vec![(2, mine), (3, mine)]);
        // 2 and 3 vote for 3; we adopt it, and decide after the finalize wait.
        out.clear();
        assert_eq!(
            e.on_notification(1, 3, looking(vote(3, 1, 5), 1), &mut out),
            None
        );
        assert_eq!(e.current_vote(), vote(3, 1, 5));
        assert_eq!(out.len(), 2);
        assert_eq!(e.on_tick(150, &mut out), None);
        let d = e.on_tick(201, &mut out).expect("decided");
        assert_eq!(
            (d.state, d.vote.leader, d.round),
            (PeerState::Following, 3, 1)
        );
        // Settled: a looking member is told the settled vote, a settled one is not answered.
        out.clear();
        e.on_notification(300, 2, looking(vote(2, 1, 1), 1), &mut out);
        let settled = Notification {
            vote: vote(3, 1, 5),
            round: 1,
            state: PeerState::Following,
        };
        assert_eq!(out, vec![(2, settled)]);
        out.clear();
        let leading = Notification {
            state: PeerState::Leading,
            ..settled
        };
        e.on_notification(300, 3, leading, &mut out);
        assert!(out.is_empty());
        // The leader is lost: look again, in a newer round, from our own vote.
        e.start(400, make_zxid(1, 6), 1, &mut out);
        assert!(e.is_looking());
        assert_eq!(e.round(), 2);
        assert_eq!(e.current_vote(), vote(1, 1, 6));
        assert_eq!(e.decision(), None);
    }

    #[test]
    fn finalize_wait_gives_way_to_a_better_vote() {
        let mut e = Election::new(1, Ensemble::of_voters([1, 2, 3, 4, 5]), Timing::default());
        let mut out = Vec::new();
        e.start(0, make_zxid(1, 1), 1, &mut out);
        e.on_notification(10, 3, looking(vote(3, 1, 1), 1), &mut out);
        e.on_notification(11, 2, looking(vote(3, 1, 1), 1), &mut out);
        // {1, 2, 3} vote for 3: the finalize wait runs until 211.
        out.clear();
        assert_eq!(e.on_tick(100, &mut out), None);
        assert!(out.is_empty(), "no resends during the wait");
        // A better vote in time: adopted and broadcast, the wait is off.
        e.on_notification(150, 5, looking(vote(5, 1, 1), 1), &mut out);
        assert_eq!(e.current_vote(), vote(5, 1, 1));
        assert_eq!(out.len(), 4);
        assert_eq!(e.on_tick(300, &mut out), None);
        // {1, 4, 5} for 5: a new wait, until 510.
        e.on_notification(310, 4, looking(vote(5, 1, 1), 1), &mut out);
        assert_eq!(e.on_tick(500, &mut out), None);
        // A better vote after the deadline is too late: we decided before it arrived, and
        // its (looking) sender is told so.
        out.clear();
        let d = e
            .on_notification(520, 2, looking(vote(2, 2, 0), 1), &mut out)
            .expect("decided at the deadline");
        assert_eq!((d.state, d.vote), (PeerState::Following, vote(5, 1, 1)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.state, PeerState::Following);
    }

    #[test]
    fn rounds_newer_adopted_older_answered() {
        let mut e = three();
        let mut out = Vec::new();
        e.start(0, make_zxid(2, 1), 2, &mut out);
        // A newer round with a worse vote: take its round, keep our own (better) vote.
        out.clear();
        e.on_notification(5, 2, looking(vote(2, 1, 9), 7), &mut out);
        assert_eq!(e.round(), 7);
        assert_eq!(e.current_vote(), vote(1, 2, 1));
        assert_eq!(out.len(), 2);
        // An older round: not counted, but its sender gets our round.
        out.clear();
        e.on_notification(6, 3, looking(vote(3, 2, 1), 3), &mut out);
        assert_eq!(e.current_vote(), vote(1, 2, 1));
        assert_eq!(out, vec![(3, looking(vote(1, 2, 1), 7))]);
        // 2 agrees in round 7: a quorum, decided (Leading) after the wait.
        e.on_notification(7, 2, looking(vote(1, 2, 1), 7), &mut out);
        let d = e.on_tick(210, &mut out).expect("decided");
        assert_eq!((d.state, d.round), (PeerState::Leading, 7));
    }

    #[test]
    fn strangers_and_observers_never_count() {
        let mut e = Election::new(1, with_observers(&[1, 2, 3], &[4]), Timing::default());
        let mut out = Vec::new();
        // Before start: nothing to say.
        assert_eq!(
            e.on_notification(0, 2, looking(vote(2, 1, 1), 1), &mut out),
            None
        );
        assert!(out.is_empty());
        e.start(0, make_zxid(1, 1), 1, &mut out);
        assert_eq!(out.len(), 3, "voters and the observer hear us");
        out.clear();
        let huge = Vote {
            leader: u64::MAX,
            zxid: u64::MAX,
            peer_epoch: u32::MAX,
        };
        // A non-member, a forged self, in any state and round: ignored, no panic.
        for state in [PeerState::Looking, PeerState::Leading, PeerState::Following] {
            let n = Notification {
                vote: huge,
                round: u64::MAX,
                state,
            };
            assert_eq!(e.on_notification(1, 99, n, &mut out), None);
            assert_eq!(e.on_notification(1, 1, n, &mut out), None);
        }
        assert!(out.is_empty());
        // A voter proposing a non-voter is not adopted.
        e.on_notification(2, 2, looking(vote(4, 9, 9), 1), &mut out);
        e.on_notification(2, 2, looking(huge, 1), &mut out);
        assert_eq!(e.current_vote(), vote(1, 1, 1));
        // The observer, proposing a better voter in a newer round, and claiming to lead: only
        // answered, never adopted or counted.
        e.on_notification(3, 4, looking(vote(3, 9, 9), 5), &mut out);
        assert_eq!(out, vec![(4, looking(vote(1, 1, 1), 1))]);
        assert_eq!((e.current_vote(), e.round()), (vote(1, 1, 1), 1));
        for state in [PeerState::Leading, PeerState::Following] {
            let n = Notification {
                vote: vote(1, 1, 1),
                round: 1,
                state,
            };
            assert_eq!(e.on_notification(4, 4, n, &mut out), None);
        }
        assert_eq!(e.on_tick(1_000, &mut out), None);
        assert!(e.is_looking());
        // Rounds saturate rather than overflow.
        e.on_notification(5, 2, looking(vote(2, 1, 1), u64::MAX), &mut out);
        e.start(6, 0, 0, &mut out);
        assert_eq!(e.round(), u64::MAX);
    }

    #[test]
    fn observer_adopts_a_voters_vote() {
        let mut e = Election::new(4, with_observers(&[1, 2, 3], &[4]), Timing::default());
        let mut out = Vec::new();
        e.start(0, make_zxid(9, 9), 9, &mut out);
        assert_eq!(
            e.current_vote().zxid,
            0,
            "an observer does not offer its history"
        );
        // Even the worst voter beats the observer's own vote; observers send no catch-ups.
        out.clear();
        e.on_notification(1, 1, looking(vote(1, 0, 0), 1), &mut out);
        assert_eq!(e.current_vote(), vote(1, 0, 0));
        assert_eq!(out.len(), 3);
        out.clear();
        e.start(2, 0, 0, &mut out);
        out.clear();
        e.on_notification(3, 1, looking(vote(1, 0, 0), 1), &mut out);
        assert!(out.iter().all(|(_, n)| n.round == 2), "no catch-up reply");
    }

    #[test]
    fn joins_a_quorum_of_settled_members_only_with_its_leader() {
        let mut e = Election::new(5, Ensemble::of_voters([1, 2, 3, 4, 5]), Timing::default());
        let mut out = Vec::new();
        e.start(0, make_zxid(3, 3), 3, &mut out);
        let following = Notification {
            vote: vote(3, 2, 2),
            round: 4,
            state: PeerState::Following,
        };
        // Three followers of 3 are a quorum, but 3 has not said it leads: not yet.
        for sid in [1, 2, 4] {
            assert_eq!(e.on_notification(1, sid, following, &mut out), None);
        }
        // Settled votes agree on leader and epoch, whatever their zxid and round.
        let leading = Notification {
            vote: Vote {
                zxid: make_zxid(2, 7),
                ..vote(3, 2, 2)
            },
            round: 3,
            state: PeerState::Leading,
        };
        let d = e.on_notification(2, 3, leading, &mut out).expect("joined");
        assert_eq!(
            (d.state, d.vote.leader, d.round),
            (PeerState::Following, 3, 3)
        );
        assert_eq!(e.round(), 3);
        // The settled vote's epoch follows the leader's new epoch.
        e.update_settled_epoch(5);
        out.clear();
        e.on_notification(3, 1, looking(vote(1, 1, 1), 9), &mut out);
        assert_eq!(out[0].1.vote.peer_epoch, 5);
    }

    #[test]
    fn resends_back_off_and_a_lone_voter_decides() {
        let timing = Timing {
            finalize_wait_ms: 200,
            resend_ms: 200,
            max_resend_ms: 1_000,
        };
        let mut e = Election::new(1, Ensemble::of_voters([1, 2, 3]), timing);
        let mut out = Vec::new();
        e.start(0, make_zxid(1, 1), 1, &mut out);
        let mut resends = Vec::new();
        for now in (0..=5_000).step_by(10) {
            out.clear();
            e.on_tick(now, &mut out);
            if !out.is_empty() {
                resends.push(now);
            }
        }
        assert_eq!(resends, [200, 600, 1400, 2400, 3400, 4400]);
        // A voter's (worse) notification resets the silence, not the backoff.
        e.on_notification(4_500, 2, looking(vote(2, 0, 0), 1), &mut out);
        out.clear();
        assert_eq!(e.on_tick(5_400, &mut out), None);
        assert!(out.is_empty());
        e.on_tick(5_500, &mut out);
        assert_eq!(out.len(), 2);

        let mut alone = Election::new(7, Ensemble::of_voters([7]), Timing::default());
        alone.start(0, 0, 0, &mut out);
        assert_eq!(alone.on_tick(100, &mut out), None);
        let d = alone.on_tick(200, &mut out).expect("decided");
        assert_eq!((d.state, d.vote.leader), (PeerState::Leading, 7));
    }
}
