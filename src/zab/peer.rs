//! One ensemble member through Zab 1.0's phases, as a pure state machine.
//!
//! A member is looking (running `election`), a learner (follower or observer) or the leader. A
//! new leader and its learners go through ZooKeeper's phases:
//!
//! 1. **Discovery.** Each learner sends FOLLOWERINFO (its accepted epoch and last zxid). Once a
//!    quorum of voters (the leader included) has, the leader picks the new epoch, one above every
//!    accepted epoch it heard, and sends LEADERINFO. A learner accepts the epoch (durably) and
//!    answers ACKEPOCH with its current epoch and last zxid; a leader that finds a learner with a
//!    newer history than its own gives up and looks again.
//! 2. **Synchronization.** Once a quorum acknowledged the epoch, the leader brings each learner to
//!    its own history: DIFF (the missing entries), TRUNC (the learner has entries the leader
//!    never had: drop them, then DIFF) or SNAP (too far behind the entries the leader keeps), then
//!    NEWLEADER. A learner takes the new epoch as its current epoch (durably) and, once every
//!    synced entry is on disk, acknowledges NEWLEADER. A quorum of those acknowledgements commits
//!    the leader's whole history; the leader answers each with UPTODATE, and the learner serves.
//! 3. **Broadcast.** The leader numbers each write with the next zxid of its epoch, logs it and
//!    sends PROPOSAL; followers log and ACK; when a quorum of voters has it on disk the leader
//!    commits it (in zxid order) and sends COMMIT, and INFORM (the txn itself) to observers.
//!
//! The leader PINGs its learners every tick; a leader that has not heard from a quorum within
//! syncLimit ticks, or a learner that has not heard from its leader, goes back to looking (during
//! discovery and synchronization the limit is initLimit).
//!
//! What the owner (the runtime, or the simulator in tests) must do with the actions, in order:
//! `SaveEpochs` durably before the next action; `Append` to the log, reporting durability with
//! `on_persisted` in log order; `Truncate` and `InstallSnapshot` replace log and state;
//! `Commit { zxid }` applies every logged entry up to `zxid` to the state, in order. At startup the
//! state holds every logged entry (ZooKeeper replays its whole log too): a member serves only after
//! synchronizing with a leader, which truncates whatever it logged that was never chosen.
//!
//! Differences from ZooKeeper, all inside the corral-to-corral protocol: an ACK acknowledges every
//! proposal up to its zxid (ZooKeeper's are one per proposal; logs are written in order, so one per
//! group commit says the same); no reconfig, no quorum verifier versions.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::election::{self, Decision, Election, Notification, PeerState};
use super::{epoch_of, make_zxid, Ensemble, Sid, Zxid};

/// Messages between members (ZooKeeper's `QuorumPacket` types, and election notifications).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Vote(Notification),
    /// Learner -> leader, opening discovery. Observers send the same (OBSERVERINFO).
    FollowerInfo {
        accepted_epoch: u32,
        last_zxid: Zxid,
    },
    LeaderInfo {
        epoch: u32,
    },
    AckEpoch {
        current_epoch: u32,
        last_zxid: Zxid,
    },
    /// The learner's log is a prefix of the leader's: the entries follow.
    Diff {
        zxid: Zxid,
    },
    /// Drop every entry after `zxid`; the entries after it follow.
    Trunc {
        zxid: Zxid,
    },
    /// The leader's state as of `zxid`, in the owner's snapshot format.
    Snap {
        zxid: Zxid,
        data: Bytes,
    },
    Proposal {
        zxid: Zxid,
        txn: Bytes,
    },
    Commit {
        zxid: Zxid,
    },
    /// A committed entry, to an observer.
    Inform {
        zxid: Zxid,
        txn: Bytes,
    },
    NewLeader {
        zxid: Zxid,
    },
    UpToDate,
    /// Every proposal up to `zxid` is on the sender's disk; with the new epoch's zxid 0, the
    /// acknowledgement of NEWLEADER.
    Ack {
        zxid: Zxid,
    },
    Ping,
    /// A client write a learner forwards to the leader, in the owner's request format.
    Request {
        data: Bytes,
    },
    /// A learner's `sync`: the leader answers once everything it had proposed is committed, so
    /// the learner has applied it by the time the answer arrives (one FIFO link).
    Sync {
        id: u64,
    },
    /// Leader -> learner: the forwarded request `data` (a `Request`'s bytes, sent back) was not
    /// carried out because the leader's log cannot be written. It follows the proposals of
    /// everything the leader took before it (one FIFO link).
    Refused {
        data: Bytes,
    },
}

/// What the owner must carry out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        to: Sid,
        msg: Msg,
    },
    /// Write both epochs durably before carrying out any later action.
    SaveEpochs {
        accepted: u32,
        current: u32,
    },
    /// Append to the log; `Peer::on_persisted` reports when it is durable.
    Append {
        zxid: Zxid,
        txn: Bytes,
    },
    /// Drop every log entry after `zxid`, and roll the state back to `zxid`.
    Truncate {
        zxid: Zxid,
    },
    /// Send `to` this member's state as of `zxid` (its last applied) as `Msg::Snap`.
    SendSnapshot {
        to: Sid,
        zxid: Zxid,
    },
    /// Replace log and state with the snapshot (durably, before any later action).
    InstallSnapshot {
        zxid: Zxid,
        data: Bytes,
    },
    /// Apply every logged entry up to `zxid` to the state.
    Commit {
        zxid: Zxid,
    },
    /// A client write forwarded by `from` reached the leader: turn it into a txn and `propose` it.
    Request {
        from: Sid,
        data: Bytes,
    },
    /// A `sync` asked of this member completed.
    SyncDone {
        id: u64,
    },
    /// The leader refused a request this member forwarded (`Msg::Refused`).
    Refused {
        data: Bytes,
    },
    /// The member's role changed (what `srvr` reports; a member serves clients only while
    /// `serving`).
    Role {
        role: Role,
        serving: bool,
    },
}

/// What waits at the leader for everything proposed before it to commit.
#[derive(Debug)]
enum Waiting {
    /// A sync's id.
    Sync(u64),
    /// A refused request's bytes (`Msg::Refused`).
    Refused(Bytes),
}

impl Waiting {
    fn into_msg(self) -> Msg {
        match self {
            Waiting::Sync(id) => Msg::Sync { id },
            Waiting::Refused(data) => Msg::Refused { data },
        }
    }
}

/// How often a learner resends FOLLOWERINFO until LEADERINFO arrives: the member it elected
/// may still be in its finalize wait when the first one arrives, and a learner that waited a
/// whole tick would add up to a tick to every election.
const INFO_RESEND_MS: u64 = 10;

/// What `srvr` reports as Mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    Leading,
    Following { leader: Sid },
    Observing { leader: Sid },
}

/// A leader's learners, for `mntr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderFigures {
    /// Learners connected (in any phase).
    pub learners: usize,
    /// Followers / observers that acknowledged NEWLEADER.
    pub synced_followers: usize,
    pub synced_observers: usize,
    /// Learners' syncs waiting for their zxid to commit.
    pub pending_syncs: usize,
}

/// Timing and limits (zoo.cfg's tickTime, initLimit, syncLimit).
#[derive(Debug, Clone)]
pub struct Config {
    pub me: Sid,
    pub ensemble: Ensemble,
    pub tick_ms: u64,
    pub init_limit: u64,
    pub sync_limit: u64,
    /// How many of the newest log entries the leader keeps for DIFF (ZooKeeper's committedLog
    /// holds 500); a learner further behind gets a SNAP.
    pub history_limit: usize,
    pub election: election::Timing,
    /// Run as ZooKeeper's standalone server does (one voter, no observers): zxids continue from
    /// the last one without a new epoch, and no epoch files are written. Ignored otherwise.
    pub standalone: bool,
}

/// What survived the last run: both epochs and the log's tail.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    pub accepted_epoch: u32,
    pub current_epoch: u32,
    /// The zxid the log starts after (a snapshot's, or 0).
    pub base: Zxid,
    /// The newest log entries, ascending (at most `history_limit` are kept).
    pub entries: Vec<(Zxid, Bytes)>,
}

/// The entries a member keeps in memory, to sync learners from: the newest ones, plus every one
/// not yet applied.
struct History {
    base: Zxid,
    entries: VecDeque<(Zxid, Bytes)>,
}

impl History {
    fn last(&self) -> Zxid {
        self.entries.back().map_or(self.base, |e| e.0)
    }

    fn push(&mut self, zxid: Zxid, txn: Bytes, limit: usize, applied: Zxid) {
        self.entries.push_back((zxid, txn));
        while self.entries.len() > limit && self.entries.front().is_some_and(|e| e.0 <= applied) {
            if let Some((z, _)) = self.entries.pop_front() {
                self.base = z;
            }
        }
    }

    fn truncate(&mut self, zxid: Zxid) {
        while self.entries.back().is_some_and(|e| e.0 > zxid) {
            self.entries.pop_back();
        }
    }

    /// The entry `zxid`, if kept.
    fn get(&self, zxid: Zxid) -> Option<Bytes> {
        let i = self.entries.binary_search_by_key(&zxid, |e| e.0).ok()?;
        Some(self.entries[i].1.clone())
    }

    fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base || self.entries.binary_search_by_key(&zxid, |e| e.0).is_ok()
    }

    /// Entries after `zxid`.
    fn after(&self, zxid: Zxid) -> impl Iterator<Item = &(Zxid, Bytes)> {
        let i = self.entries.partition_point(|e| e.0 <= zxid);
        self.entries.range(i..)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LearnerPhase {
    /// FOLLOWERINFO sent, waiting for LEADERINFO.
    Discovery,
    /// ACKEPOCH sent; sync packets arrive until UPTODATE. `newleader` once NEWLEADER came.
    Sync {
        epoch: u32,
        newleader: bool,
    },
    Broadcast {
        epoch: u32,
    },
}

struct Learner {
    leader: Sid,
    observer: bool,
    phase: LearnerPhase,
    last_heard: u64,
    /// The newest COMMIT seen while syncing: applied at UPTODATE.
    commit_mark: Zxid,
    /// NEWLEADER's zxid, to acknowledge once everything logged is durable.
    ack_newleader: Option<Zxid>,
    /// The last proposal acknowledged.
    acked: Zxid,
    /// Syncs asked of the leader, answered in order.
    syncs: VecDeque<u64>,
    /// When FOLLOWERINFO was last sent: resent every `INFO_RESEND_MS` until LEADERINFO, since the leader may
    /// not lead yet when it first arrives (ZooKeeper's learner retries its connection instead).
    info_sent: u64,
}

/// The leader's view of one learner.
#[derive(Debug)]
struct Handler {
    observer: bool,
    accepted_epoch: u32,
    last_zxid: Zxid,
    state: HandlerState,
    last_heard: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandlerState {
    /// FOLLOWERINFO in; LEADERINFO sent once the epoch is chosen.
    Info,
    /// ACKEPOCH in; synced once a quorum acknowledged the epoch.
    EpochAcked,
    /// Sync packets and NEWLEADER sent; entries since are forwarded.
    Syncing,
    /// NEWLEADER acknowledged and UPTODATE sent (or waiting for the quorum to send it).
    NewLeaderAcked,
}

struct Leading {
    /// The new epoch, once a quorum's FOLLOWERINFO chose it.
    epoch: Option<u32>,
    since: u64,
    handlers: BTreeMap<Sid, Handler>,
    /// The last entry of the history this leader brings into its epoch.
    history_end: Zxid,
    established: bool,
    /// The leader's own NEWLEADER acknowledgement waits for its log to be durable.
    self_newleader: bool,
    next_counter: u32,
    /// Proposed, not yet committed: zxid -> (txn, voters that have it on disk).
    /// Proposed, not yet committed (their txns are in `history`, which keeps every entry not
    /// yet applied).
    outstanding: VecDeque<Zxid>,
    /// The newest zxid each voter (this leader included) has acknowledged on its current
    /// connection: a quorum's lowest is what may commit.
    acked: BTreeMap<Sid, Zxid>,
    /// Syncs and refusals waiting for a zxid to commit: (zxid, learner or self, what).
    syncs: VecDeque<(Zxid, Sid, Waiting)>,
    last_ping: u64,
}

impl Leading {
    /// This leader and every learner that acknowledged NEWLEADER.
    fn synced(&self, me: Sid) -> Vec<Sid> {
        self.handlers
            .iter()
            .filter(|(_, h)| h.state == HandlerState::NewLeaderAcked)
            .map(|(&s, _)| s)
            .chain([me])
            .collect()
    }
}

enum State {
    Looking,
    Learner(Learner),
    Leader(Box<Leading>),
}

/// One ensemble member.
pub struct Peer {
    cfg: Config,
    election: Election,
    accepted_epoch: u32,
    current_epoch: u32,
    /// The epochs last saved (or read at startup): saved epochs only move forward.
    saved_epochs: (u32, u32),
    history: History,
    /// Highest zxid appended / durable / applied to the state.
    last_logged: Zxid,
    persisted: Zxid,
    applied: Zxid,
    state: State,
    role: Role,
    out: Vec<Action>,
    notes: Vec<(Sid, Notification)>,
}

impl Peer {
    /// A member starting up with what its disk holds; it starts looking at once.
    pub fn new(mut cfg: Config, durable: Durable, now: u64) -> Self {
        cfg.standalone &= cfg.ensemble.voters.len() == 1 && cfg.ensemble.observers.is_empty();
        let mut history = History {
            base: durable.base,
            entries: durable.entries.into_iter().collect(),
        };
        history.entries.retain(|e| e.0 > durable.base);
        let last = history.last();
        let election = Election::new(cfg.me, cfg.ensemble.clone(), cfg.election);
        let mut p = Peer {
            cfg,
            election,
            accepted_epoch: durable.accepted_epoch,
            current_epoch: durable.current_epoch,
            saved_epochs: (durable.accepted_epoch, durable.current_epoch),
            history,
            last_logged: last,
            persisted: last,
            applied: last,
            state: State::Looking,
            role: Role::Looking,
            out: Vec::new(),
            notes: Vec::new(),
        };
        p.look(now);
        p
    }

    /// The actions to carry out, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// Moves the actions to carry out, in order, onto the end of `into` (which keeps its
    /// allocation: the write core calls this once per txn).
    pub fn drain_actions(&mut self, into: &mut Vec<Action>) {
        into.append(&mut self.out);
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this member answers clients: an established leader, or a learner after UPTODATE.
    pub fn serving(&self) -> bool {
        match &self.state {
            State::Looking => false,
            State::Learner(l) => matches!(l.phase, LearnerPhase::Broadcast { .. }),
            State::Leader(l) => l.established,
        }
    }

    /// The observers that acknowledged NEWLEADER, as ZooKeeper's leader lists its observing
    /// learners; empty unless leading.
    pub fn synced_observers(&self) -> Vec<Sid> {
        let State::Leader(l) = &self.state else {
            return Vec::new();
        };
        l.handlers
            .iter()
            .filter(|(_, h)| h.observer && h.state == HandlerState::NewLeaderAcked)
            .map(|(sid, _)| *sid)
            .collect()
    }

    /// A leader's learners, as `mntr` reports them; `None` unless leading.
    pub fn leader_figures(&self) -> Option<LeaderFigures> {
        let State::Leader(l) = &self.state else {
            return None;
        };
        let synced = |observer: bool| {
            l.handlers
                .values()
                .filter(|h| h.observer == observer && h.state == HandlerState::NewLeaderAcked)
                .count()
        };
        Some(LeaderFigures {
            learners: l.handlers.len(),
            synced_followers: synced(false),
            synced_observers: synced(true),
            pending_syncs: l.syncs.len(),
        })
    }

    pub fn last_logged(&self) -> Zxid {
        self.last_logged
    }

    pub fn applied(&self) -> Zxid {
        self.applied
    }

    pub fn epochs(&self) -> (u32, u32) {
        (self.accepted_epoch, self.current_epoch)
    }

    /// Time passes: election timers, heartbeats and timeouts.
    pub fn on_tick(&mut self, now: u64) {
        match &mut self.state {
            State::Looking => {
                let d = self.election.on_tick(now, &mut self.notes);
                self.flush_notes();
                if let Some(d) = d {
                    self.decided(now, d);
                }
            }
            State::Learner(l) => {
                let limit = match l.phase {
                    LearnerPhase::Broadcast { .. } => self.cfg.sync_limit,
                    _ => self.cfg.init_limit,
                };
                if now.saturating_sub(l.last_heard) > limit * self.cfg.tick_ms {
                    return self.look(now);
                }
                if l.phase == LearnerPhase::Discovery
                    && now.saturating_sub(l.info_sent) >= self.cfg.tick_ms.min(INFO_RESEND_MS)
                {
                    l.info_sent = now;
                    self.out.push(Action::Send {
                        to: l.leader,
                        msg: Msg::FollowerInfo {
                            accepted_epoch: self.accepted_epoch,
                            last_zxid: self.last_logged,
                        },
                    });
                }
            }
            State::Leader(_) => self.leader_tick(now),
        }
    }

    /// A message from another member.
    pub fn on_message(&mut self, now: u64, from: Sid, msg: Msg) {
        if from == self.cfg.me || !self.cfg.ensemble.is_member(from) {
            return;
        }
        if let Msg::Vote(n) = msg {
            if let State::Learner(l) = &self.state {
                let follows_another =
                    matches!(n.state, PeerState::Following | PeerState::Observing);
                if l.leader == from && l.phase == LearnerPhase::Discovery && follows_another {
                    // The member this one chose will not lead: it follows another. Elect again
                    // now rather than after initLimit ticks without a LEADERINFO (a member that
                    // settled on a vote the others then left behind, in its finalize wait).
                    self.look(now);
                }
            }
            let d = self.election.on_notification(now, from, n, &mut self.notes);
            self.flush_notes();
            if let (Some(d), State::Looking) = (d, &self.state) {
                self.decided(now, d);
            }
            return;
        }
        match self.state {
            State::Looking => {}
            State::Learner(_) => self.learner_message(now, from, msg),
            State::Leader(_) => self.leader_message(now, from, msg),
        }
    }

    /// The link to `sid` broke (its connection closed): a learner that lost its leader looks
    /// again; a leader forgets the learner until it reconnects.
    pub fn on_disconnected(&mut self, now: u64, sid: Sid) {
        match &mut self.state {
            State::Learner(l) if l.leader == sid => self.look(now),
            State::Leader(l) => {
                l.handlers.remove(&sid);
            }
            _ => {}
        }
    }

    /// The link to `sid` came up: a looking member tells it its vote at once, rather than after
    /// its resend interval (which may have backed off to a minute).
    pub fn on_connected(&mut self, _now: u64, sid: Sid) {
        self.election.on_connected(sid, &mut self.notes);
        self.flush_notes();
    }

    /// Every appended entry up to `zxid` is durable.
    pub fn on_persisted(&mut self, _now: u64, zxid: Zxid) {
        let zxid = zxid.min(self.last_logged);
        if zxid <= self.persisted {
            return;
        }
        self.persisted = zxid;
        let me = self.cfg.me;
        match &mut self.state {
            State::Looking => {}
            State::Learner(l) => {
                let newleader = if self.persisted == self.last_logged {
                    l.ack_newleader.take().map(|z| (z, l.leader))
                } else {
                    None
                };
                let acks = matches!(
                    l.phase,
                    LearnerPhase::Sync {
                        newleader: true,
                        ..
                    } | LearnerPhase::Broadcast { .. }
                );
                if let Some((z, leader)) = newleader {
                    // The synced history is on disk: now the new epoch may be (see NEWLEADER).
                    self.current_epoch = epoch_of(z);
                    self.save_epochs();
                    self.out.push(Action::Send {
                        to: leader,
                        msg: Msg::Ack { zxid: z },
                    });
                }
                if acks {
                    self.on_persisted_ack(zxid);
                }
            }
            State::Leader(l) => {
                let establishing = !l.established;
                self.leader_ack(me, zxid);
                if establishing {
                    // Taking the epoch may wait for this (`maybe_start_sync`).
                    self.maybe_start_sync();
                }
            }
        }
    }

    /// The zxid `propose` will give the next txn, if this member is an established leader with
    /// zxids left in its epoch.
    pub fn next_zxid(&self) -> Option<Zxid> {
        match &self.state {
            State::Leader(l) if l.established && l.next_counter < u32::MAX => {
                l.epoch.map(|e| make_zxid(e, l.next_counter))
            }
            _ => None,
        }
    }

    /// The leader numbers, logs and proposes `txn`. `None` unless this member is an established
    /// leader (or the epoch's zxids are used up, and it must look again: ZooKeeper does the same).
    pub fn propose(&mut self, now: u64, txn: Bytes) -> Option<Zxid> {
        let State::Leader(l) = &mut self.state else {
            return None;
        };
        let epoch = l.epoch?;
        if !l.established {
            return None;
        }
        if l.next_counter == u32::MAX {
            self.look(now);
            return None;
        }
        let zxid = make_zxid(epoch, l.next_counter);
        l.next_counter += 1;
        l.outstanding.push_back(zxid);
        let followers: Vec<Sid> = l
            .handlers
            .iter()
            .filter(|(_, h)| {
                !h.observer
                    && matches!(
                        h.state,
                        HandlerState::Syncing | HandlerState::NewLeaderAcked
                    )
            })
            .map(|(&sid, _)| sid)
            .collect();
        self.log(zxid, txn.clone());
        for sid in followers {
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::Proposal {
                    zxid,
                    txn: txn.clone(),
                },
            });
        }
        Some(zxid)
    }

    /// A client write at this member: a serving learner forwards it to its leader; the leader
    /// hands it to its owner as a `Request` of its own. `false` if not serving.
    pub fn submit(&mut self, data: Bytes) -> bool {
        if !self.serving() {
            return false;
        }
        match &self.state {
            State::Learner(l) => self.out.push(Action::Send {
                to: l.leader,
                msg: Msg::Request { data },
            }),
            State::Leader(_) => self.out.push(Action::Request {
                from: self.cfg.me,
                data,
            }),
            State::Looking => return false,
        }
        true
    }

    /// A client's `sync` at this member: `SyncDone { id }` once this member has applied every
    /// write its leader had proposed when the sync reached it. `false` if not serving.
    pub fn sync(&mut self, id: u64) -> bool {
        if !self.serving() {
            return false;
        }
        let me = self.cfg.me;
        match &mut self.state {
            State::Learner(l) => {
                l.syncs.push_back(id);
                self.out.push(Action::Send {
                    to: l.leader,
                    msg: Msg::Sync { id },
                });
            }
            State::Leader(l) => {
                let upto = self.last_logged;
                l.syncs.push_back((upto, me, Waiting::Sync(id)));
                self.flush_syncs();
            }
            State::Looking => return false,
        }
        true
    }

    /// Leading: tells learner `to` that its forwarded request `data` was not carried out, once
    /// everything proposed before is committed, as a sync's answer is. An observer hears of
    /// its earlier writes only when they commit (INFORM), and its client must hear of those
    /// before this refusal.
    pub fn refuse(&mut self, to: Sid, data: Bytes) {
        let upto = self.last_logged;
        if let State::Leader(l) = &mut self.state {
            l.syncs.push_back((upto, to, Waiting::Refused(data)));
            self.flush_syncs();
        }
    }

    // --- looking ----------------------------------------------------------------------------

    fn look(&mut self, now: u64) {
        self.state = State::Looking;
        self.set_role(Role::Looking);
        self.election
            .start(now, self.last_logged, self.current_epoch, &mut self.notes);
        self.flush_notes();
    }

    /// Appends an entry to the log (durable once `on_persisted` says so).
    fn log(&mut self, zxid: Zxid, txn: Bytes) {
        // Every caller checked the order; a log that goes backwards loses what followed.
        assert!(
            zxid > self.last_logged,
            "log went backwards: {zxid:#x} after {:#x}",
            self.last_logged
        );
        self.last_logged = zxid;
        self.history
            .push(zxid, txn.clone(), self.cfg.history_limit, self.applied);
        self.out.push(Action::Append { zxid, txn });
    }

    fn save_epochs(&mut self) {
        // Zab's promises: a member never takes back an epoch it accepted or acknowledged, and
        // it acknowledges (current) only an epoch it accepted.
        let (accepted, current) = self.saved_epochs;
        assert!(
            self.accepted_epoch >= accepted && self.current_epoch >= current,
            "epochs went backwards: ({}, {}) after ({accepted}, {current})",
            self.accepted_epoch,
            self.current_epoch
        );
        assert!(
            self.current_epoch <= self.accepted_epoch,
            "current epoch {} beyond accepted {}",
            self.current_epoch,
            self.accepted_epoch
        );
        self.saved_epochs = (self.accepted_epoch, self.current_epoch);
        self.out.push(Action::SaveEpochs {
            accepted: self.accepted_epoch,
            current: self.current_epoch,
        });
    }

    fn flush_notes(&mut self) {
        for (to, n) in self.notes.drain(..) {
            self.out.push(Action::Send {
                to,
                msg: Msg::Vote(n),
            });
        }
    }

    fn set_role(&mut self, role: Role) {
        self.role = role;
        let serving = self.serving();
        self.out.push(Action::Role { role, serving });
    }

    fn decided(&mut self, now: u64, d: Decision) {
        let me = self.cfg.me;
        match d.state {
            PeerState::Leading if d.vote.leader == me => self.lead(now),
            PeerState::Following | PeerState::Observing if d.vote.leader != me => {
                let observer = !self.cfg.ensemble.is_voter(me);
                self.state = State::Learner(Learner {
                    leader: d.vote.leader,
                    observer,
                    phase: LearnerPhase::Discovery,
                    last_heard: now,
                    commit_mark: 0,
                    ack_newleader: None,
                    acked: 0,
                    syncs: VecDeque::new(),
                    info_sent: now,
                });
                let role = match observer {
                    true => Role::Observing {
                        leader: d.vote.leader,
                    },
                    false => Role::Following {
                        leader: d.vote.leader,
                    },
                };
                self.set_role(role);
                self.out.push(Action::Send {
                    to: d.vote.leader,
                    msg: Msg::FollowerInfo {
                        accepted_epoch: self.accepted_epoch,
                        last_zxid: self.last_logged,
                    },
                });
            }
            // A decision that contradicts itself: look again rather than act on it.
            _ => self.look(now),
        }
    }

    // --- learner ----------------------------------------------------------------------------

    fn learner_message(&mut self, now: u64, from: Sid, msg: Msg) {
        if matches!(msg, Msg::FollowerInfo { .. }) {
            // `from` takes this member for its leader: tell it whom this member follows, so it
            // elects again at once (see `on_message`).
            if let Some(n) = self.election.settled_notification() {
                self.out.push(Action::Send {
                    to: from,
                    msg: Msg::Vote(n),
                });
            }
            return;
        }
        let State::Learner(l) = &mut self.state else {
            return;
        };
        if from != l.leader {
            return;
        }
        if matches!(
            msg,
            Msg::FollowerInfo { .. } | Msg::AckEpoch { .. } | Msg::Ack { .. } | Msg::Request { .. }
        ) {
            // A learner's message: the member taken for the leader follows someone itself (two
            // that chose each other). It must not count as the leader being alive, or neither
            // would ever time out and look again.
            return;
        }
        l.last_heard = now;
        match (l.phase, msg) {
            (_, Msg::Ping) => self.out.push(Action::Send {
                to: from,
                msg: Msg::Ping,
            }),
            (_, Msg::Refused { data }) => self.out.push(Action::Refused { data }),
            (LearnerPhase::Discovery, Msg::LeaderInfo { epoch }) => {
                if epoch < self.accepted_epoch {
                    return self.look(now);
                }
                l.phase = LearnerPhase::Sync {
                    epoch,
                    newleader: false,
                };
                if epoch > self.accepted_epoch {
                    self.accepted_epoch = epoch;
                    self.save_epochs();
                }
                self.out.push(Action::Send {
                    to: from,
                    msg: Msg::AckEpoch {
                        current_epoch: self.current_epoch,
                        last_zxid: self.last_logged,
                    },
                });
            }
            (LearnerPhase::Discovery, _) => {}
            // An answer to a resent FOLLOWERINFO.
            (LearnerPhase::Sync { epoch, .. }, Msg::LeaderInfo { epoch: e }) if e == epoch => {}
            (LearnerPhase::Sync { .. }, Msg::Diff { .. }) => {}
            (LearnerPhase::Sync { .. }, Msg::Trunc { zxid }) => {
                if zxid > self.last_logged {
                    return self.look(now);
                }
                self.history.truncate(zxid);
                self.last_logged = zxid;
                self.persisted = self.persisted.min(zxid);
                self.applied = self.applied.min(zxid);
                l.acked = l.acked.min(zxid);
                self.out.push(Action::Truncate { zxid });
            }
            (LearnerPhase::Sync { .. }, Msg::Snap { zxid, data }) => {
                self.history = History {
                    base: zxid,
                    entries: VecDeque::new(),
                };
                self.last_logged = zxid;
                self.persisted = zxid;
                self.applied = zxid;
                l.acked = l.acked.min(zxid);
                l.commit_mark = zxid;
                self.out.push(Action::InstallSnapshot { zxid, data });
            }
            (
                LearnerPhase::Sync { .. } | LearnerPhase::Broadcast { .. },
                Msg::Proposal { zxid, txn },
            ) => {
                if l.observer || zxid <= self.last_logged {
                    // Out of order: the link or the leader is broken.
                    return self.look(now);
                }
                self.log(zxid, txn);
            }
            (LearnerPhase::Sync { .. }, Msg::Commit { zxid }) => {
                l.commit_mark = l.commit_mark.max(zxid);
            }
            (LearnerPhase::Sync { .. }, Msg::Inform { zxid, txn }) => {
                if zxid <= self.last_logged {
                    return self.look(now);
                }
                l.commit_mark = zxid;
                self.log(zxid, txn);
            }
            (LearnerPhase::Sync { epoch, .. }, Msg::NewLeader { zxid }) => {
                if epoch_of(zxid) != epoch {
                    return self.look(now);
                }
                l.phase = LearnerPhase::Sync {
                    epoch,
                    newleader: true,
                };
                // Acknowledged once everything synced is durable: now, or from `on_persisted`.
                // So is the new current epoch saved: saved before the synced proposals are on
                // disk, a crash would leave this member with the new epoch and a short log,
                // which wins the next election and truncates what a quorum acknowledged (the
                // ensemble simulator found this; ZooKeeper's ZOOKEEPER-4643).
                if self.persisted != self.last_logged {
                    l.ack_newleader = Some(zxid);
                } else {
                    self.current_epoch = epoch;
                    self.save_epochs();
                    self.out.push(Action::Send {
                        to: from,
                        msg: Msg::Ack { zxid },
                    });
                }
            }
            (
                LearnerPhase::Sync {
                    epoch,
                    newleader: true,
                },
                Msg::UpToDate,
            ) => {
                l.phase = LearnerPhase::Broadcast { epoch };
                // Members of one established ensemble answer elections with one vote.
                self.election.update_settled_epoch(epoch);
                let mark = l.commit_mark.min(self.last_logged);
                let role = self.role;
                if mark > self.applied {
                    self.applied = mark;
                    self.out.push(Action::Commit { zxid: mark });
                }
                self.set_role(role);
                // Proposals persisted while syncing are acknowledged now.
                let persisted = self.persisted;
                self.on_persisted_ack(persisted);
            }
            (LearnerPhase::Broadcast { .. }, Msg::Commit { zxid }) => {
                if zxid > self.last_logged {
                    return self.look(now);
                }
                if zxid > self.applied {
                    self.applied = zxid;
                    self.out.push(Action::Commit { zxid });
                }
            }
            (LearnerPhase::Broadcast { .. }, Msg::Inform { zxid, txn }) => {
                if zxid <= self.last_logged {
                    return self.look(now);
                }
                self.log(zxid, txn);
                self.applied = zxid;
                self.out.push(Action::Commit { zxid });
            }
            (LearnerPhase::Broadcast { .. }, Msg::Sync { id }) => {
                if l.syncs.front() == Some(&id) {
                    l.syncs.pop_front();
                    self.out.push(Action::SyncDone { id });
                }
            }
            // Anything else out of its phase means the two disagree: start over.
            _ => self.look(now),
        }
    }

    /// A learner acknowledges what is durable once it may (after NEWLEADER).
    fn on_persisted_ack(&mut self, persisted: Zxid) {
        let State::Learner(l) = &mut self.state else {
            return;
        };
        if !l.observer && persisted > l.acked && l.ack_newleader.is_none() {
            l.acked = persisted;
            self.out.push(Action::Send {
                to: l.leader,
                msg: Msg::Ack { zxid: persisted },
            });
        }
    }

    // --- leader -----------------------------------------------------------------------------

    fn lead(&mut self, now: u64) {
        self.state = State::Leader(Box::new(Leading {
            epoch: None,
            since: now,
            handlers: BTreeMap::new(),
            history_end: self.last_logged,
            established: false,
            self_newleader: false,
            next_counter: 1,
            outstanding: VecDeque::new(),
            acked: BTreeMap::new(),
            syncs: VecDeque::new(),
            last_ping: now,
        }));
        self.set_role(Role::Leading);
        // An ensemble of one chooses its epoch with nobody else's FOLLOWERINFO.
        self.maybe_choose_epoch(now);
    }

    fn leader_message(&mut self, now: u64, from: Sid, msg: Msg) {
        let observer = !self.cfg.ensemble.is_voter(from);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        if let Some(h) = l.handlers.get_mut(&from) {
            h.last_heard = now;
        }
        match msg {
            Msg::FollowerInfo {
                accepted_epoch,
                last_zxid,
            } => {
                // A new connection from this learner: whatever it had before is gone, its
                // acknowledgements included (it may be truncated or replaced by a snapshot).
                l.acked.remove(&from);
                l.handlers.insert(
                    from,
                    Handler {
                        observer,
                        accepted_epoch,
                        last_zxid,
                        state: HandlerState::Info,
                        last_heard: now,
                    },
                );
                if let Some(epoch) = l.epoch {
                    // A learner that accepted a newer epoch refuses this one and looks again.
                    self.out.push(Action::Send {
                        to: from,
                        msg: Msg::LeaderInfo { epoch },
                    });
                } else {
                    self.maybe_choose_epoch(now);
                }
            }
            Msg::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                let Some(h) = l.handlers.get_mut(&from) else {
                    return;
                };
                if h.state != HandlerState::Info || l.epoch.is_none() {
                    return;
                }
                if (current_epoch, last_zxid) > (self.current_epoch, self.last_logged)
                    && !l.established
                {
                    // Someone has history this leader lacks: it must not lead.
                    return self.look(now);
                }
                h.last_zxid = last_zxid;
                h.state = HandlerState::EpochAcked;
                self.maybe_start_sync();
            }
            Msg::Ack { zxid } => {
                let Some(epoch) = l.epoch else { return };
                if zxid == make_zxid(epoch, 0) {
                    if let Some(h) = l.handlers.get_mut(&from) {
                        if h.state == HandlerState::Syncing {
                            h.state = HandlerState::NewLeaderAcked;
                            if l.established {
                                self.out.push(Action::Send {
                                    to: from,
                                    msg: Msg::UpToDate,
                                });
                            } else {
                                self.maybe_establish();
                            }
                        }
                    }
                } else if !observer
                    && l.handlers
                        .get(&from)
                        .is_some_and(|h| h.state == HandlerState::NewLeaderAcked)
                {
                    self.leader_ack(from, zxid);
                }
            }
            Msg::Ping => {}
            Msg::Request { data } if l.established && l.handlers.contains_key(&from) => {
                self.out.push(Action::Request { from, data });
            }
            Msg::Sync { id } if l.established && l.handlers.contains_key(&from) => {
                l.syncs
                    .push_back((self.last_logged, from, Waiting::Sync(id)));
                self.flush_syncs();
            }
            _ => {}
        }
    }

    /// Chooses the new epoch once a quorum of voters (this leader included) sent FOLLOWERINFO.
    fn maybe_choose_epoch(&mut self, now: u64) {
        let me = self.cfg.me;
        let l = match &mut self.state {
            State::Leader(l) => l,
            _ => return,
        };
        if l.epoch.is_some() {
            return;
        }
        let infos: Vec<Sid> = l.handlers.keys().copied().chain([me]).collect();
        if !self.cfg.ensemble.is_quorum(&infos) {
            return;
        }
        let max = l
            .handlers
            .values()
            .map(|h| h.accepted_epoch)
            .chain([self.accepted_epoch])
            .max()
            .unwrap_or(0);
        if max == u32::MAX {
            return self.look(now);
        }
        if self.cfg.standalone {
            // ZooKeeper's standalone server: the zxids go on from the last one, in its epoch
            // (into the next epoch only when the counter runs out), and no epoch is stored.
            let (e, c) = (epoch_of(self.last_logged), self.last_logged as u32);
            let (epoch, counter) = if c >= u32::MAX - 1 {
                (e.saturating_add(1), 1)
            } else {
                (e, c + 1)
            };
            l.epoch = Some(epoch);
            l.next_counter = counter;
            self.accepted_epoch = epoch;
            self.current_epoch = epoch;
            return self.maybe_start_sync();
        }
        let epoch = max + 1;
        l.epoch = Some(epoch);
        let learners: Vec<Sid> = l.handlers.keys().copied().collect();
        self.accepted_epoch = epoch;
        self.save_epochs();
        for sid in learners {
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::LeaderInfo { epoch },
            });
        }
        self.maybe_start_sync();
    }

    /// Once a quorum acknowledged the epoch, the leader syncs every learner that acknowledged
    /// (later ones as they come), and takes the epoch as its current epoch once its whole
    /// history is durable: a current epoch promises the epoch's initial history, and a leader
    /// whose log is stalled (a full disk) that took it with records only in memory, then
    /// crashed, would come back with the epoch and a shorter log, win the next election on the
    /// epoch and truncate committed writes (the ensemble simulator's seed 2767 with full
    /// disks). Learners take it only once the synced history is durable, for the same reason.
    fn maybe_start_sync(&mut self) {
        let me = self.cfg.me;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let Some(epoch) = l.epoch else { return };
        let acked: Vec<Sid> = l
            .handlers
            .iter()
            .filter(|(_, h)| h.state != HandlerState::Info)
            .map(|(&s, _)| s)
            .chain([me])
            .collect();
        if !self.cfg.ensemble.is_quorum(&acked) {
            return;
        }
        let ready: Vec<Sid> = l
            .handlers
            .iter()
            .filter(|(_, h)| h.state == HandlerState::EpochAcked)
            .map(|(&s, _)| s)
            .collect();
        if self.current_epoch != epoch && self.persisted >= self.last_logged {
            self.current_epoch = epoch;
            self.save_epochs();
        }
        for sid in ready {
            self.sync_learner(sid, epoch);
        }
        self.maybe_self_newleader();
        self.maybe_establish();
    }

    /// DIFF, TRUNC or SNAP, the entries the learner lacks, NEWLEADER.
    fn sync_learner(&mut self, sid: Sid, epoch: u32) {
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let Some(h) = l.handlers.get_mut(&sid) else {
            return;
        };
        let theirs = h.last_zxid;
        let last = self.last_logged;
        let from = if theirs == last {
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::Diff { zxid: last },
            });
            last
        } else if theirs > last {
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::Trunc { zxid: last },
            });
            last
        } else if self.history.contains(theirs) {
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::Diff { zxid: theirs },
            });
            theirs
        } else if theirs > self.history.base {
            // The learner logged entries this leader never had (an old epoch's, never chosen):
            // back to the last entry both have, then forward.
            let prev = self
                .history
                .entries
                .iter()
                .rev()
                .map(|e| e.0)
                .find(|&z| z < theirs)
                .unwrap_or(self.history.base);
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::Trunc { zxid: prev },
            });
            prev
        } else {
            self.out.push(Action::SendSnapshot {
                to: sid,
                zxid: self.applied,
            });
            self.applied
        };
        let horizon = if l.established {
            self.applied
        } else {
            l.history_end
        };
        // The learner's log up to `from` is this leader's history; what of it is committed it
        // applies at UPTODATE too. It may have logged those entries in an earlier epoch and
        // never seen their COMMIT: without this one it would serve without them until some
        // later COMMIT (answering syncs without them, leaving their clients waiting).
        // An observer too: while it syncs, a COMMIT only raises what UPTODATE applies.
        let upto = from.min(horizon);
        if upto > 0 {
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::Commit { zxid: upto },
            });
        }
        for (z, txn) in self.history.after(from) {
            if h.observer {
                if *z <= horizon {
                    self.out.push(Action::Send {
                        to: sid,
                        msg: Msg::Inform {
                            zxid: *z,
                            txn: txn.clone(),
                        },
                    });
                }
                continue;
            }
            self.out.push(Action::Send {
                to: sid,
                msg: Msg::Proposal {
                    zxid: *z,
                    txn: txn.clone(),
                },
            });
            if *z <= horizon {
                self.out.push(Action::Send {
                    to: sid,
                    msg: Msg::Commit { zxid: *z },
                });
            }
        }
        self.out.push(Action::Send {
            to: sid,
            msg: Msg::NewLeader {
                zxid: make_zxid(epoch, 0),
            },
        });
        h.state = HandlerState::Syncing;
    }

    /// The leader counts itself towards NEWLEADER's quorum once it took the epoch and its whole
    /// history is durable.
    fn maybe_self_newleader(&mut self) {
        let (cur, persisted, last) = (self.current_epoch, self.persisted, self.last_logged);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        if l.self_newleader || l.epoch != Some(cur) || persisted < l.history_end.min(last) {
            return;
        }
        l.self_newleader = true;
        self.maybe_establish();
    }

    /// A quorum acknowledged NEWLEADER: the history is committed and the leader serves.
    fn maybe_establish(&mut self) {
        let me = self.cfg.me;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        if l.established || !l.self_newleader {
            return;
        }
        let acked = l.synced(me);
        if !self.cfg.ensemble.is_quorum(&acked) {
            return;
        }
        l.established = true;
        if let Some(epoch) = l.epoch {
            self.election.update_settled_epoch(epoch);
        }
        if l.history_end > self.applied {
            self.applied = l.history_end;
            self.out.push(Action::Commit {
                zxid: l.history_end,
            });
        }
        for sid in acked {
            if sid != me {
                self.out.push(Action::Send {
                    to: sid,
                    msg: Msg::UpToDate,
                });
            }
        }
        self.set_role(Role::Leading);
    }

    /// `sid` has every proposal up to `zxid` on disk; commit what a quorum has, in order.
    fn leader_ack(&mut self, sid: Sid, zxid: Zxid) {
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let a = l.acked.entry(sid).or_default();
        *a = (*a).max(zxid);
        // The highest zxid a quorum of voters has: the (majority)-th largest acknowledgement.
        let mut acks: Vec<Zxid> = self
            .cfg
            .ensemble
            .voters
            .iter()
            .map(|v| l.acked.get(v).copied().unwrap_or(0))
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let commit_to = acks[self.cfg.ensemble.voters.len() / 2];
        let mut last = None;
        // A follower gets one COMMIT for the lot, since a COMMIT applies every entry up to its
        // zxid: per proposal, a batch of n writes cost every follower n messages to decode and
        // hand on. The exception is a sync answer, which must follow the COMMIT it waited for
        // and precede later ones; `told` is the COMMIT each follower has had in this call.
        // Observers get each entry (an INFORM carries it).
        let mut told: Vec<(Sid, Zxid)> = Vec::new();
        let live = |h: &Handler| {
            matches!(
                h.state,
                HandlerState::Syncing | HandlerState::NewLeaderAcked
            )
        };
        while l.outstanding.front().is_some_and(|&z| z <= commit_to) {
            let Some(zxid) = l.outstanding.pop_front() else {
                break;
            };
            last = Some(zxid);
            for (&s, h) in &l.handlers {
                if !h.observer || !live(h) {
                    continue;
                }
                // `history` keeps every entry not yet applied, so it has this one.
                match self.history.get(zxid) {
                    Some(txn) => self.out.push(Action::Send {
                        to: s,
                        msg: Msg::Inform { zxid, txn },
                    }),
                    None => debug_assert!(false, "committed {zxid:#x} is not in the history"),
                }
            }
            // A learner's sync is answered right after the commit it waited for, before later
            // commits: those may answer the same client's next writes, which must not overtake
            // the sync's answer. (This member's own syncs wait for its Commit, below.)
            while l
                .syncs
                .front()
                .is_some_and(|s| s.0 <= zxid && s.1 != self.cfg.me)
            {
                let Some((_, sid, what)) = l.syncs.pop_front() else {
                    break;
                };
                let Some(h) = l.handlers.get(&sid) else {
                    continue;
                };
                if !h.observer && live(h) && !told.contains(&(sid, zxid)) {
                    told.retain(|t| t.0 != sid);
                    told.push((sid, zxid));
                    self.out.push(Action::Send {
                        to: sid,
                        msg: Msg::Commit { zxid },
                    });
                }
                self.out.push(Action::Send {
                    to: sid,
                    msg: what.into_msg(),
                });
            }
        }
        if let Some(zxid) = last {
            for (&s, h) in &l.handlers {
                if !h.observer && live(h) && !told.contains(&(s, zxid)) {
                    self.out.push(Action::Send {
                        to: s,
                        msg: Msg::Commit { zxid },
                    });
                }
            }
        }
        // One Commit for the lot: it applies every entry up to its zxid.
        if let Some(zxid) = last {
            self.applied = zxid;
            self.out.push(Action::Commit { zxid });
        }
        self.flush_syncs();
    }

    /// Answers every sync whose zxid is committed.
    fn flush_syncs(&mut self) {
        let me = self.cfg.me;
        let applied = self.applied;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        while l.syncs.front().is_some_and(|s| s.0 <= applied) {
            let Some((_, sid, what)) = l.syncs.pop_front() else {
                break;
            };
            match what {
                Waiting::Sync(id) if sid == me => self.out.push(Action::SyncDone { id }),
                what if l.handlers.contains_key(&sid) => self.out.push(Action::Send {
                    to: sid,
                    msg: what.into_msg(),
                }),
                _ => {}
            }
        }
    }

    fn leader_tick(&mut self, now: u64) {
        let me = self.cfg.me;
        let tick = self.cfg.tick_ms;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        if !l.established {
            if now.saturating_sub(l.since) > self.cfg.init_limit * tick {
                return self.look(now);
            }
        } else {
            // Learners silent for syncLimit ticks are dropped; without a quorum left, abdicate.
            let limit = self.cfg.sync_limit * tick;
            l.handlers
                .retain(|_, h| now.saturating_sub(h.last_heard) <= limit);
            let live = l.synced(me);
            if !self.cfg.ensemble.is_quorum(&live) {
                return self.look(now);
            }
        }
        if now.saturating_sub(l.last_ping) >= tick / 2 {
            l.last_ping = now;
            for &sid in l.handlers.keys() {
                self.out.push(Action::Send {
                    to: sid,
                    msg: Msg::Ping,
                });
            }
        }
    }
}
