//! The write machine: the write core's protocol logic, pure. It holds the authoritative state
//! (the committed tree and the overlay of txns not yet applied to it, `overlay`), the session
//! tracker, the queue of answers (proposed / committed / outbox) and the
//! `zab::peer::Peer`; it reads no clock, draws no random number, touches no file or channel.
//! Its owner (`server::core`, a thin glommio driver; or the simulator in `sim.rs`) feeds it
//! messages with the time (`Now`) and carries out the `Effect`s it returns: append these records
//! to the log, save these epochs, send this to shard N. Whether to flush the log is a question
//! (`flush_due`), its outcome an input (`flushed`): group commit is the driver's loop, handle
//! every waiting message, flush once, `release` what that committed.
//!
//! Ordering and commitment belong to the `Peer`: it numbers each txn (`next_zxid`, `propose`),
//! says when to log it (`Append`) and when it is committed (`Commit`). Standalone is an ensemble
//! of one: the same path with a quorum of one, so a txn commits once its batch is durable; it
//! numbers zxids as ZooKeeper's standalone server does, without new epochs
//! (`peer::Config::standalone`; docs/design/replication.md).
//!
//! A log write that fails (a full disk, an I/O error) stalls the machine instead of stopping it
//! (docs/decisions.md, "A full disk"): the batch stays proposed and unanswered, and the driver
//! retries the same write (its records stay in the log's tail buffer) with backoff until it
//! lands; then it commits and is answered as usual. Meanwhile nothing new is proposed: writes
//! are refused with `REFUSED_WHILE_STALLED` before they get a zxid, new sessions are turned
//! away, session expiry and reaping wait, and reads go on from the shards' replicas, which hold
//! exactly what is committed. So the authoritative state, whose overlay already holds the
//! stalled batch, never gets ahead of the log by more than that batch, and once it is durable
//! the two agree.
//!
//! The committed tree is shard 0's replica where the write core runs on shard 0's executor
//! (one or two CPUs; `Base::Shared`): shard 0 applies the commits and the machine only reads
//! it, so a member holds one tree there, not two (docs/design/memory.md). With an executor of
//! its own the machine keeps its own committed tree and applies each commit to it. Either way
//! what it proposed or committed and the tree has not applied yet is in the overlay, which is
//! what `prep` sees on top of the tree.
//!
//! Ordering: a shard's channel is FIFO and the machine releases a per-connection answer (sync
//! done, reattach result) only after every commit that preceded it, so a shard that handles the
//! answer has already applied everything before it.
//!
//! Invariants are asserted where they are cheap (TigerBeetle style): zxids only move forward,
//! a txn is proposed only while the peer leads an established epoch, and what is durable never
//! passes what is proposed. docs/design/write-machine.md describes the split and the simulator.

use std::cell::{Ref, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::limits::TXN_MAX;
use crate::overlay::{Overlay, View};
use crate::prep::{prep, prep_delete_container, PrepCtx};
use crate::proto::codes::{ephemeral_owner, Code};
use crate::proto::jute::Reader;
use crate::proto::records::{Id, Request};
use crate::session::{Local, LocalSessions, SessionTracker};
use crate::storage::codec::{decode_txn, encode_txn};
use crate::tree::DataTree;
use crate::txn::{Txn, TxnOp};
use crate::watch::ConnId;
use crate::zab::election::Timing;
use crate::zab::link::{Gens, Link, LinkEvent};
use crate::zab::peer::{self, Action, Durable, Msg, Peer, Role};
use crate::zab::{Ensemble, Sid, Zxid};

#[cfg(test)]
mod ensemble_sim;
pub mod forward;
#[cfg(test)]
mod held_answers;
#[cfg(test)]
mod sim;

use forward::Forward;

/// Where a request came from: the shard and its local connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub shard: usize,
    pub conn: ConnId,
}

/// What a shard sends the write core. `R` is how a four-letter word's question is answered
/// (a channel, in the server: `server::ToCore`); the driver answers those itself.
pub enum ToCore<R> {
    /// A state-changing request (or sync / closeSession) from an attached session.
    Write {
        origin: Origin,
        session_id: i64,
        cxid: i32,
        ids: Arc<Vec<Id>>,
        req: Request,
        /// The request's opcode and body as the client sent them: what a learner forwards.
        opcode: i32,
        body: Bytes,
    },
    /// A handshake: `session_id` 0 asks for a new session, otherwise a reattach.
    Connect {
        origin: Origin,
        session_id: i64,
        passwd: Bytes,
        timeout_ms: i32,
        last_zxid_seen: i64,
        /// The client accepts a read-only member (its connect request's readOnly flag).
        read_only: bool,
    },
    /// Sessions that showed activity since the last report.
    Touch(Vec<i64>),
    /// A connection closed without closeSession; the session lives on until it expires.
    Disconnected { origin: Origin, session_id: i64 },
    /// Periodic: expire sessions, reap containers and TTL nodes.
    Tick,
    /// A four-letter word wants the write core's view.
    Report(R),
    /// The admin server's `observer_connection_stat_reset`: clear the counters of the links to
    /// the synced observers. The driver's to carry out (the links are its).
    ResetObserverStats,
    /// The admin server's `restore`: stop once everything handled so far is durable, answer
    /// with the committed zxid, and take nothing more until the answer's receiver is dropped
    /// (the restore failed) or the process is replaced (it succeeded). The driver's to answer.
    Pause(R),
    /// A link to another member came up, went down, or carried a message (`server::quorum`).
    Link(LinkEvent),
    /// Shard 0 serialized its replica for a learner's SNAP (`ToShard::Snapshot`); `zxid` is
    /// the state it holds.
    SnapshotReady {
        to: Sid,
        request: u64,
        zxid: Zxid,
        data: Bytes,
    },
}

/// A committed transaction and, if a client asked for it, where to send the reply.
pub struct Commit {
    pub txn: Txn,
    pub origin: Option<Origin>,
}

pub enum ToShard {
    Commits(Arc<Vec<Commit>>),
    /// The sync a connection asked for is done: every txn before it has been sent.
    Synced {
        conn: ConnId,
        path: String,
    },
    /// A reattach succeeded.
    Attached {
        conn: ConnId,
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
        /// The member serves read-only (the connect response says so).
        read_only: bool,
    },
    /// The handshake failed: `expired` answers with an expired-session response, otherwise the
    /// connection is just closed (client saw a newer zxid than this server has).
    Rejected {
        conn: ConnId,
        expired: bool,
    },
    /// Close a connection: its session moved to another connection.
    Close {
        conn: ConnId,
    },
    /// The connection's local session is closed (no txn closes a local session): answer its
    /// closeSession and close the connection.
    SessionClosed {
        conn: ConnId,
        session_id: i64,
    },
    /// The connection's oldest unanswered write was not carried out: answer it with `code`
    /// (the log cannot be written; `REFUSED_WHILE_STALLED`).
    Refused {
        conn: ConnId,
        code: Code,
    },
    /// The member stopped serving (it lost its leader or its quorum): close every client
    /// connection; clients move to another member, as ZooKeeper's do.
    CloseAll,
    /// The replica is replaced (a learner was truncated, or installed its leader's snapshot).
    /// None to the shard whose replica the write core shares: the write core replaced it.
    Reset(Option<Arc<DataTree>>),
    /// Shard 0 only: serialize the replica, which holds exactly `zxid` when this arrives, for
    /// learner `to`'s SNAP; answer with `ToCore::SnapshotReady`.
    Snapshot {
        to: Sid,
        request: u64,
        zxid: Zxid,
    },
}

/// What a write gets while the log cannot be written: SYSTEMERROR, which every client library
/// knows; the write was not carried out (docs/decisions.md, "A full disk").
pub const REFUSED_WHILE_STALLED: Code = Code::SystemError;
/// Retrying a failed log write: the first retry after `STALL_RETRY_MIN_MS`, doubling up to
/// `STALL_RETRY_MAX_MS`, so a freed disk is noticed within a second or so.
const STALL_RETRY_MIN_MS: u64 = 10;
const STALL_RETRY_MAX_MS: u64 = 500;

/// The time, as the driver read it once for the message at hand.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic milliseconds (expiry, retries, the peer's timers).
    pub mono_ms: u64,
    /// Wall-clock milliseconds since the epoch (txn times, TTLs, session ids).
    pub wall_ms: i64,
}

/// What the driver must carry out, in order.
pub enum Effect {
    /// Write both epochs durably before carrying out anything later.
    SaveEpochs { accepted: u32, current: u32 },
    /// Append a record to the log's tail (durable at the next flush).
    Append { zxid: Zxid, txn: Bytes },
    /// Send to a shard (released after the flush that made it committed).
    Send { shard: usize, msg: ToShard },
    /// Send to another member, on its link's generation `gen` (dropped if that link is gone).
    Peer { to: Sid, gen: u64, msg: Msg },
    /// Drop every log record after `zxid` (a TRUNC from the leader); with `reload`, the state
    /// held records past it too: rebuild it from the disk and hand it to `reset`.
    Truncate { zxid: Zxid, reload: bool },
    /// Replace log and state with the leader's snapshot (durably), then `reset`.
    InstallSnapshot { zxid: Zxid, data: Bytes },
    /// The member's role changed (`srvr`'s Mode; whether it serves clients, or serves reads
    /// only while it looks for a leader).
    Role {
        role: Role,
        serving: bool,
        read_only: bool,
    },
}

/// The log could not be written: when it began, and when to retry.
struct Stall {
    since_ms: u64,
    retry_at_ms: u64,
    backoff_ms: u64,
}

/// What waits for a commit: a txn, or an answer to a connection that must not overtake the txns
/// before it.
enum Queued {
    /// Proposed by this member as leader: already recorded in the overlay.
    Txn(Commit),
    /// Learned from the leader: applied (or recorded) when committed. With the number of the
    /// request it answers, if this member sent it (0 otherwise).
    Learned(Commit, u64),
    Answer(usize, ToShard),
}

/// The connection a per-connection answer goes to (commits go to every shard).
fn conn_of(msg: &ToShard) -> Option<ConnId> {
    match msg {
        ToShard::Commits(_) | ToShard::CloseAll | ToShard::Reset(_) | ToShard::Snapshot { .. } => {
            None
        }
        ToShard::Synced { conn, .. }
        | ToShard::Attached { conn, .. }
        | ToShard::Rejected { conn, .. }
        | ToShard::Close { conn }
        | ToShard::SessionClosed { conn, .. }
        | ToShard::Refused { conn, .. } => Some(*conn),
    }
}

/// The committed tree a machine starts from: its own, or shard 0's replica when the two share
/// an executor (then shard 0 applies the commits and the machine only reads it).
pub enum Base {
    Own(Box<DataTree>),
    Shared(Rc<RefCell<DataTree>>),
}

/// Where session passwords come from (random in the server, seeded in the simulator).
pub type Passwords = Box<dyn FnMut() -> [u8; 16]>;

/// Planted bugs the simulator must catch (planted only by its tests).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bug {
    /// Commit at once, before the log is durable.
    AckBeforeFlush,
    /// Answers (sync, refusals) do not wait behind the txns proposed before them.
    AnswersOvertake,
}

pub struct Machine {
    cfg: Arc<Config>,
    /// How many shards every commit goes to.
    shards: usize,
    /// The committed tree. Shared with shard 0 where the write core runs on its executor:
    /// shard 0 applies the commits to it, as it does to any replica, and the machine only
    /// reads it. Otherwise the machine's own, and it applies each commit itself.
    base: Rc<RefCell<DataTree>>,
    owns_base: bool,
    /// What the txns proposed or committed and not yet in `base` change (what prep must see).
    overlay: Overlay,
    sessions: SessionTracker,
    /// Sessions that live only on this member (`localSessionsEnabled`, in an ensemble).
    local: LocalSessions,
    /// Whether new sessions are local ones.
    local_sessions: bool,
    /// Serving reads only, to clients that accept it, while looking for a leader
    /// (`readonlymode.enabled`).
    read_only: bool,
    /// Sessions made while read-only: forgotten when it ends, as ZooKeeper's read-only server's.
    read_only_sessions: LocalSessions,
    /// Answers decided here for a local session's request (EPHEMERALONLOCALSESSION, its
    /// close), waiting for the connection's requests sent to the leader before it: (connection,
    /// the last request number sent before it, answer).
    deferred: Vec<(Origin, u64, ToShard)>,
    /// The connection each live session is attached to, to close it when the session moves.
    owners: HashMap<i64, Origin>,
    /// Leading: the member each session is attached to, as far as this leader heard
    /// (ZooKeeper's session owner). A write of the session from another member is older than
    /// the move and is not carried out (SESSIONMOVED): its client went on elsewhere.
    attached_at: HashMap<i64, Sid>,
    /// Messages released to the shards, in the order each shard must get them.
    outbox: Vec<(usize, ToShard)>,
    /// Committed, on their way to the shards with the batch.
    pending: Vec<Commit>,
    /// Proposed and not yet committed, in order, with the answers queued behind them.
    proposed: VecDeque<Queued>,
    /// The last zxid appended to the log since the last flush.
    appended: Option<Zxid>,
    /// The highest zxid proposed, made durable, committed.
    last_proposed: Zxid,
    persisted: Zxid,
    committed: i64,
    peer: Peer,
    /// The time of the message being handled.
    now: Now,
    /// The peer's actions being carried out (kept for its allocation).
    actions: Vec<Action>,
    /// Where txns are encoded for the peer, carved off in slices of one allocation.
    scratch: BytesMut,
    last_reap_ms: u64,
    /// Set while the last log write failed and is being retried.
    stall: Option<Stall>,
    passwords: Passwords,
    /// More than one member: commits need a quorum, learners forward, leaders sync learners.
    ensemble: bool,
    /// The live link generation of each member.
    gens: Gens,
    /// Messages to a learner held back until its SNAP (being serialized by shard 0) is sent:
    /// learner -> (snapshot request, messages in order).
    held: HashMap<Sid, (u64, Vec<Msg>)>,
    next_request: u64,
    /// A learner's writes forwarded to the leader, by (session, cxid): the connection each
    /// commit answers, and the request's number in `in_flight`.
    forwarded: HashMap<(i64, i32), (Origin, u64)>,
    /// New sessions asked of the leader; no origin for a local session's upgrade (no
    /// handshake waits for it).
    creating: HashMap<i64, (Option<Origin>, u64)>,
    /// What this learner sent its leader and has not seen come back, by number (which keeps
    /// their order; a sync's number is its id in `syncs`): sent again, in order, if the member
    /// serves again after an election within the grace.
    in_flight: std::collections::BTreeMap<u64, Bytes>,
    /// Where each request in `in_flight` (and each sync in `syncs`) was sent: the epoch, the
    /// leader and its link's generation.
    sent_on: HashMap<u64, (u32, Sid, u64)>,
    /// A learner's syncs asked of the leader: id -> (connection, path, cxid).
    syncs: HashMap<u64, (Origin, String, i32)>,
    /// Whether the member serves clients (an established leader, or a synced learner).
    serving: bool,
    /// What `mntr` reports about elections and proposals.
    figures: Figures,
    /// Each election's duration (µs), for /metrics' `election_time` quantile.
    election_times: crate::metrics::Window,
    /// When the member last started looking (monotonic ms), while it looks.
    looking_since: Option<u64>,
    /// While a member that stopped serving keeps its clients (`corral.electionGraceMs`): when
    /// it gives up and closes them.
    grace_until: Option<u64>,
    /// Clients' writes that arrived during the grace, in order: carried out once it serves.
    held_writes: VecDeque<HeldWrite>,
    /// Set when the member serves again within the grace; handled after the peer's actions.
    resume: bool,
    #[cfg(test)]
    bug: Option<Bug>,
}

/// A client's write held while the member elects (`Machine::grace_until`).
struct HeldWrite {
    origin: Origin,
    session_id: i64,
    cxid: i32,
    ids: Arc<Vec<Id>>,
    req: Request,
    opcode: i32,
    body: Bytes,
}

/// Elections and proposals, for `mntr`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Elections that ended (looking until a role was decided), and their durations in ms.
    pub elections: u64,
    pub last_election_ms: u64,
    pub max_election_ms: u64,
    /// The durations of every election, summed (ms): `election_time_sum` in /metrics.
    pub election_ms_total: u64,
    /// When this member last became an established leader (monotonic ms).
    pub leading_since_ms: Option<u64>,
    /// How this member was synced as a learner: DIFF, TRUNC (then DIFF), SNAP messages heard.
    pub synced_by_diff: u64,
    pub synced_by_trunc: u64,
    pub synced_by_snap: u64,
    /// Local sessions live on this member now.
    pub local_sessions: u64,
    /// Sizes of proposals in bytes: last, min, max (-1 before the first).
    pub proposal_last: i64,
    pub proposal_min: i64,
    pub proposal_max: i64,
}

/// The newest log records recovery found, for the peer's history (a learner whose log ends
/// among them is synced by DIFF rather than SNAP).
#[derive(Debug, Clone, Default)]
pub struct Recent {
    /// The zxid just before the first entry.
    pub base: i64,
    pub entries: Vec<(i64, Bytes)>,
}

/// This member's view of the ensemble: every `server.N` line (one member when there are none).
fn ensemble_of(cfg: &Config, me: Sid) -> Ensemble {
    if !cfg.is_distributed() {
        return Ensemble::of_voters([me]);
    }
    let mut e = Ensemble::of_voters([]);
    for (id, spec) in &cfg.servers {
        match spec.role {
            crate::config::PeerRole::Participant => e.voters.insert(*id),
            crate::config::PeerRole::Observer => e.observers.insert(*id),
        };
    }
    e
}

impl Machine {
    /// A machine starting from the recovered `tree`, the newest log records and the data
    /// directory's `(acceptedEpoch, currentEpoch)`. Standalone, it leads an ensemble of one at
    /// once; in an ensemble it starts looking. `out` gets what that asked for.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Arc<Config>,
        base: Base,
        recent: Recent,
        epochs: (u32, u32),
        shards: usize,
        now: Now,
        passwords: Passwords,
        out: &mut Vec<Effect>,
    ) -> Machine {
        let (accepted_epoch, current_epoch) = epochs;
        let server_id = cfg.my_id.unwrap_or(1).min(254) as u8;
        let mut sessions = SessionTracker::new(cfg.tick_time_ms as u64, server_id, now.wall_ms);
        let (committed_tree, owns_base) = match base {
            Base::Own(tree) => (Rc::new(RefCell::new(*tree)), true),
            Base::Shared(tree) => (tree, false),
        };
        let tree = committed_tree.borrow();
        // Sessions come back with the log; as in ZooKeeper their timeout starts again.
        for (id, s) in tree.sessions() {
            sessions.add(*id, s.timeout_ms as u64, now.mono_ms);
        }
        let me = cfg.my_id.unwrap_or(1);
        let last = tree.last_zxid();
        drop(tree);
        let ensemble = ensemble_of(&cfg, me);
        let alone = ensemble.voters.len() == 1 && ensemble.observers.is_empty();
        // The history starts at the recovered records only if they end where the tree does
        // (they always do; an empty list is the other case).
        let (base, entries) = match recent.entries.last() {
            Some((z, _)) if *z == last => (recent.base, recent.entries),
            _ => (last, Vec::new()),
        };
        let peer = Peer::new(
            peer::Config {
                me,
                ensemble,
                tick_ms: cfg.tick_time_ms as u64,
                init_limit: cfg.init_limit as u64,
                sync_limit: cfg.sync_limit as u64,
                history_limit: crate::limits::RECENT_RECORDS,
                // Alone, zxids continue as ZooKeeper's standalone server numbers them.
                standalone: alone,
                election: Timing {
                    // With one voter there is nobody to wait for.
                    finalize_wait_ms: if alone {
                        0
                    } else {
                        cfg.election_finalize_wait_ms as u64
                    },
                    ..Timing::default()
                },
            },
            Durable {
                accepted_epoch,
                current_epoch,
                base: base as Zxid,
                entries: entries.into_iter().map(|(z, b)| (z as Zxid, b)).collect(),
            },
            now.mono_ms,
        );
        let tick_ms = cfg.tick_time_ms as u64;
        let local_sessions = !alone && cfg.local_sessions_enabled;
        let mut m = Machine {
            cfg,
            shards,
            local: LocalSessions::new(tick_ms),
            local_sessions,
            read_only: false,
            read_only_sessions: LocalSessions::new(tick_ms),
            deferred: Vec::new(),
            base: committed_tree,
            owns_base,
            overlay: Overlay::default(),
            sessions,
            owners: HashMap::new(),
            attached_at: HashMap::new(),
            outbox: Vec::new(),
            pending: Vec::new(),
            proposed: VecDeque::new(),
            appended: None,
            last_proposed: last as Zxid,
            persisted: last as Zxid,
            committed: last,
            peer,
            now,
            actions: Vec::new(),
            scratch: BytesMut::new(),
            last_reap_ms: now.mono_ms,
            stall: None,
            passwords,
            ensemble: !alone,
            gens: Gens::default(),
            held: HashMap::new(),
            next_request: 0,
            forwarded: HashMap::new(),
            creating: HashMap::new(),
            in_flight: std::collections::BTreeMap::new(),
            sent_on: HashMap::new(),
            syncs: HashMap::new(),
            serving: false,
            figures: Figures {
                proposal_last: -1,
                proposal_min: -1,
                proposal_max: -1,
                ..Figures::default()
            },
            election_times: crate::metrics::Window::default(),
            looking_since: None,
            grace_until: None,
            held_writes: VecDeque::new(),
            resume: false,
            #[cfg(test)]
            bug: None,
        };
        // An ensemble of one elects itself and leads at once (standalone: in the epoch of its
        // last zxid, without writing epoch files); a member of a larger one starts looking.
        m.peer.on_tick(now.mono_ms);
        m.run_actions(out);
        if alone {
            assert!(
                m.peer.next_zxid().is_some(),
                "an ensemble of one did not establish itself"
            );
            info!(
                epoch = m.peer.epochs().1,
                "leading an ensemble of one (standalone)"
            );
        }
        m
    }

    #[cfg(test)]
    pub(crate) fn plant(&mut self, bug: Bug) {
        self.bug = Some(bug);
    }

    /// What `mntr` reports: the peer's role, its learners if it leads, elections, proposals.
    /// Recent elections' durations (µs), every one's count and sum; `now` ages the window.
    pub fn election_times(&mut self, now: std::time::Instant) -> crate::metrics::Summary {
        self.election_times.sample(now)
    }

    /// The observers synced with this leader (none unless leading).
    pub fn synced_observers(&self) -> Vec<Sid> {
        self.peer.synced_observers()
    }

    pub fn figures(&self) -> (Role, Option<peer::LeaderFigures>, Figures) {
        let figures = Figures {
            local_sessions: self.local.len() as u64,
            ..self.figures
        };
        (self.peer.role(), self.peer.leader_figures(), figures)
    }

    /// Whether this member is one of several (not standalone).
    pub fn ensemble(&self) -> bool {
        self.ensemble
    }

    /// The committed tree (shard 0's replica where it is shared: as far as shard 0 applied).
    pub fn tree(&self) -> Ref<'_, DataTree> {
        self.base.borrow()
    }

    /// The authoritative state: the committed tree and what is outstanding on top of it.
    fn view(&mut self) -> (Ref<'_, DataTree>, &mut Overlay) {
        (self.base.borrow(), &mut self.overlay)
    }

    /// The last zxid proposed (the peer's last logged).
    pub fn last_zxid(&self) -> i64 {
        self.peer.last_logged() as i64
    }

    /// The highest zxid committed (to be published before `release`'s sends go out).
    pub fn committed(&self) -> i64 {
        self.committed
    }

    /// Nothing is proposed and uncommitted (always so between batches with a quorum of one,
    /// unless the log is stalled).
    #[cfg(test)]
    pub fn quiescent(&self) -> bool {
        self.proposed.is_empty()
    }

    /// A snapshot may start from the tree: everything in it is durable in this member's log.
    /// Between batches that is always so but while the log is stalled (the tree then holds a
    /// batch the disk does not). The tree may hold proposals not yet committed (a busy leader
    /// always has some in flight): a snapshot holding one that a later leader drops is deleted
    /// by the TRUNC that drops it (`storage::learner::truncate`), as the log records are.
    pub fn snapshot_ready(&self) -> bool {
        self.stall.is_none() && self.appended.is_none() && self.persisted >= self.last_proposed
    }

    /// While the log is stalled: when the failed write should be tried again.
    pub fn retry_at(&self) -> Option<u64> {
        self.stall.as_ref().map(|s| s.retry_at_ms)
    }

    /// Session expiry buckets: (monotonic deadline ms, session ids).
    pub fn session_buckets(&self) -> Vec<(u64, Vec<i64>)> {
        self.sessions.buckets()
    }

    /// Whether the driver should flush the log now: something was appended since the last
    /// flush, or a failed write is due for its retry.
    pub fn flush_due(&self, now_ms: u64) -> bool {
        match &self.stall {
            Some(s) => now_ms >= s.retry_at_ms,
            None => self.appended.is_some(),
        }
    }

    /// The outcome of a flush `flush_due` asked for. Success makes everything appended durable
    /// (with a quorum of one, committed); a failure (re)starts the stall: nothing is committed,
    /// and the same write is retried later. Returns how long the log had been stalled if this
    /// flush ended a stall.
    pub fn flushed(&mut self, now_ms: u64, ok: bool, out: &mut Vec<Effect>) -> Option<u64> {
        if !ok {
            match &mut self.stall {
                None => {
                    self.stall = Some(Stall {
                        since_ms: now_ms,
                        retry_at_ms: now_ms + STALL_RETRY_MIN_MS,
                        backoff_ms: STALL_RETRY_MIN_MS,
                    });
                }
                Some(s) => {
                    s.backoff_ms = (s.backoff_ms * 2).min(STALL_RETRY_MAX_MS);
                    s.retry_at_ms = now_ms + s.backoff_ms;
                }
            }
            return None;
        }
        let stalled = self.stall.take().map(|s| now_ms.saturating_sub(s.since_ms));
        if let Some(zxid) = self.appended.take() {
            assert!(zxid > self.persisted, "durable zxid went backwards");
            assert!(zxid <= self.last_proposed, "durable passed proposed");
            self.persisted = zxid;
            self.peer.on_persisted(now_ms, zxid);
            self.run_actions(out);
        }
        stalled
    }

    /// Moves everything released so far (the batch's commits, then the answers behind them)
    /// into `out` as sends; the driver sends them after publishing `committed`.
    pub fn release(&mut self, out: &mut Vec<Effect>) {
        self.flush_commits();
        out.extend(
            self.outbox
                .drain(..)
                .map(|(shard, msg)| Effect::Send { shard, msg }),
        );
    }

    /// Carries out what the peer asked for, in order. Writes forwarded to this leader are
    /// proposed after the rest, so that what the peer asked for before them goes out first.
    fn run_actions(&mut self, out: &mut Vec<Effect>) {
        let mut actions = std::mem::take(&mut self.actions);
        let mut requests = Vec::new();
        self.peer.drain_actions(&mut actions);
        for action in actions.drain(..) {
            match action {
                Action::SaveEpochs { accepted, current } => {
                    out.push(Effect::SaveEpochs { accepted, current })
                }
                Action::Append { zxid, txn } => {
                    self.appended = Some(zxid);
                    if zxid > self.last_proposed {
                        self.learned(zxid, txn.clone());
                    }
                    out.push(Effect::Append { zxid, txn });
                }
                Action::Commit { zxid } => self.commit_upto(zxid as i64),
                Action::Role { role, serving } => self.role_changed(role, serving, out),
                Action::Send { to, msg } => self.send_peer(to, msg, out),
                Action::Request { from, data } => requests.push((from, data)),
                Action::SyncDone { id } => self.sync_done(id),
                Action::Refused { data } => self.refused(data),
                Action::SendSnapshot { to, zxid } => self.send_snapshot(to, zxid),
                Action::Truncate { zxid } => self.truncate(zxid, out),
                Action::InstallSnapshot { zxid, data } => {
                    info!(
                        zxid = format!("{zxid:#x}"),
                        "installing the leader's snapshot"
                    );
                    self.forget_clients();
                    self.proposed.clear();
                    self.pending.clear();
                    self.appended = None;
                    self.last_proposed = zxid;
                    self.persisted = zxid;
                    out.push(Effect::InstallSnapshot { zxid, data });
                }
            }
        }
        self.actions = actions;
        for (from, data) in requests {
            self.forwarded_request(from, data, out);
        }
        if std::mem::take(&mut self.resume) {
            self.resume_clients(out);
        }
    }

    /// The leader answered sync `id` that this learner asked for.
    fn sync_done(&mut self, id: u64) {
        self.sent_on.remove(&id);
        if let Some((origin, path, _)) = self.syncs.remove(&id) {
            // Everything the leader had proposed when the sync reached it is committed here
            // by now (its COMMITs came first). What is still proposed came later, maybe this
            // connection's next writes: the answer must not wait behind those (FIFO per
            // connection).
            self.flush_commits();
            self.outbox.push((
                origin.shard,
                ToShard::Synced {
                    conn: origin.conn,
                    path,
                },
            ));
            self.release_deferred();
        }
    }

    /// A txn the leader sent (a PROPOSAL, or an INFORM to an observer), now in the log: it is
    /// applied when committed, and answers the connection that asked for it, if that is here.
    fn learned(&mut self, zxid: Zxid, txn: Bytes) {
        // Members speak corral's txn encoding; one that does not decode is a broken member.
        let txn = decode_txn(zxid as i64, txn)
            .unwrap_or_else(|e| panic!("the leader sent txn {zxid:#x} that does not decode: {e}"));
        let asked = match txn.op {
            TxnOp::CreateSession { .. } => self.creating.remove(&txn.session_id),
            _ => self
                .forwarded
                .remove(&(txn.session_id, txn.cxid))
                .map(|(o, n)| (Some(o), n)),
        };
        let (origin, n) = match asked {
            Some((origin, n)) => {
                self.in_flight.remove(&n);
                self.sent_on.remove(&n);
                (origin, n)
            }
            None => (None, 0),
        };
        self.last_proposed = zxid;
        self.proposed
            .push_back(Queued::Learned(Commit { txn, origin }, n));
        self.release_deferred();
    }

    /// Sends to another member on its live link, unless messages to it are held for a SNAP.
    fn send_peer(&mut self, to: Sid, msg: Msg, out: &mut Vec<Effect>) {
        if let Some((_, held)) = self.held.get_mut(&to) {
            held.push(msg);
            return;
        }
        if let Some(gen) = self.gens.gen(to) {
            out.push(Effect::Peer { to, gen, msg });
        }
    }

    /// A learner needs a SNAP of the committed state at `zxid`. Shard 0 serializes its replica:
    /// the request follows exactly the commits up to `zxid` down shard 0's queue (the machine's
    /// own tree, where it has one, may lag or lead that by what is in flight). Messages to the
    /// learner wait until the snapshot is sent (`ToCore::SnapshotReady`).
    fn send_snapshot(&mut self, to: Sid, zxid: Zxid) {
        assert_eq!(
            zxid as i64, self.committed,
            "a snapshot is asked for at the committed zxid"
        );
        self.next_request += 1;
        let request = self.next_request;
        self.held.insert(to, (request, Vec::new()));
        self.flush_commits();
        self.outbox
            .push((0, ToShard::Snapshot { to, request, zxid }));
    }

    /// The leader's TRUNC: drop what was logged past `zxid`.
    fn truncate(&mut self, zxid: Zxid, out: &mut Vec<Effect>) {
        info!(zxid = format!("{zxid:#x}"), "truncating the log");
        // A client still waiting for a dropped txn (kept through the election) loses its
        // connection: the write was never chosen.
        let mut lost = Vec::new();
        self.proposed.retain(|q| match q {
            Queued::Txn(c) | Queued::Learned(c, _) => {
                let keep = c.txn.zxid as Zxid <= zxid;
                if !keep {
                    lost.extend(c.origin);
                }
                keep
            }
            Queued::Answer(..) => true,
        });
        // Those connections close: nothing queued for them may reach them first, neither an
        // answer (it would go to the dropped request) nor the reply to a kept txn (its client
        // would hear of a later request before the dropped one; a kept txn still commits, only
        // unanswered). The other answers queued behind the dropped txns wait for nothing now
        // (nothing may commit for a while: a client waiting for its handshake would wait with
        // them).
        let is_lost = |shard: usize, conn: Option<ConnId>| {
            lost.iter()
                .any(|o: &Origin| o.shard == shard && Some(o.conn) == conn)
        };
        for q in self.proposed.iter_mut() {
            if let Queued::Txn(c) | Queued::Learned(c, _) = q {
                if c.origin.is_some_and(|o| is_lost(o.shard, Some(o.conn))) {
                    c.origin = None;
                }
            }
        }
        self.proposed.retain(|q| match q {
            Queued::Answer(shard, m) => !is_lost(*shard, conn_of(m)),
            _ => true,
        });
        self.deferred
            .retain(|(o, _, _)| !is_lost(o.shard, Some(o.conn)));
        while let Some(Queued::Answer(..)) = self.proposed.front() {
            if let Some(Queued::Answer(shard, msg)) = self.proposed.pop_front() {
                self.flush_commits();
                self.outbox.push((shard, msg));
            }
        }
        for o in lost {
            self.answer(o.shard, ToShard::Close { conn: o.conn });
        }
        self.last_proposed = self.last_proposed.min(zxid);
        self.persisted = self.persisted.min(zxid);
        // Records up to `zxid` appended since the last flush still need it.
        self.appended = self
            .appended
            .map(|a| a.min(zxid))
            .filter(|&a| a > self.persisted);
        self.overlay.truncate(zxid as i64);
        let reload = self.base.borrow().last_zxid() as Zxid > zxid;
        out.push(Effect::Truncate { zxid, reload });
    }

    /// The driver rebuilt the state from the disk after `Truncate { reload: true }` or
    /// `InstallSnapshot`: it replaces the committed tree and every shard's replica.
    pub fn reset(&mut self, tree: DataTree) {
        self.committed = tree.last_zxid();
        // The state rebuilt from the disk holds every record up to its zxid, those logged and
        // not yet committed too (the leader's TRUNC kept them: they are in its history). They
        // are applied; they must not be applied again when their commit comes.
        let last = self.committed;
        self.proposed.retain(|q| match q {
            Queued::Txn(c) | Queued::Learned(c, _) => c.txn.zxid > last,
            Queued::Answer(..) => true,
        });
        self.pending.clear();
        // Every connection closes with the reset: nothing they asked for is sent again.
        self.held_writes.clear();
        self.forget_clients();
        // Shard 0's replica, when it is the base, is replaced here and now: prep must not see
        // the old state meanwhile. Shard 0 skips the commits still on their way to it (the new
        // tree holds them) and closes its connections when its Reset comes.
        let copy = (self.shards > 1 || self.owns_base).then(|| Arc::new(tree.clone()));
        *self.base.borrow_mut() = tree;
        for shard in 0..self.shards {
            let replica = if shard == 0 && !self.owns_base {
                None
            } else {
                copy.clone()
            };
            self.outbox.push((shard, ToShard::Reset(replica)));
        }
        // The overlay holds again exactly the proposals kept past the new tree.
        self.overlay.clear();
        let base = self.base.borrow();
        let mut view = View::new(&base, &mut self.overlay);
        for q in &self.proposed {
            if let Queued::Txn(c) = q {
                view.record(&c.txn);
            }
        }
    }

    /// As a ZooKeeper member that lost its leader or quorum: every client connection closes, and
    /// clients reconnect to a member that serves.
    fn close_clients(&mut self) {
        self.grace_until = None;
        self.held_writes.clear();
        self.forget_clients();
        self.flush_commits();
        for shard in 0..self.shards {
            self.outbox.push((shard, ToShard::CloseAll));
        }
    }

    /// The member serves again within the grace. What it had sent in an older epoch and has not
    /// seen come back was never chosen: the new epoch's sync brought every proposal of the old
    /// one that survives (each answered its client as it was applied), and no other can be
    /// committed any more. So it is sent again, in its order (or carried out here, if this
    /// member now leads), and then the writes held meanwhile, except those of connections that
    /// closed meanwhile. What it had sent in the epoch it rejoined may still come back, or
    /// never: those connections close (below). Nothing is applied twice: a request comes back
    /// once, as the txn that answers it.
    fn resume_clients(&mut self, out: &mut Vec<Effect>) {
        let mut again: Vec<(u64, Option<Bytes>)> = std::mem::take(&mut self.in_flight)
            .into_iter()
            .map(|(n, data)| (n, Some(data)))
            .collect();
        again.extend(self.syncs.keys().map(|&id| (id, None)));
        again.sort_by_key(|(n, _)| *n);
        // Only a new epoch guarantees that whatever its sync did not bring back never will be
        // committed. Rejoining the same epoch (a learner that timed out its leader and came back
        // to it), a request may still be in that leader's pipeline and be proposed later (sent
        // again, it would be applied twice), or may have been dropped (the leader had let the
        // learner go): its connection closes, and its client takes the outcome as unknown.
        let epoch_now = self.link_stamp().0;
        let mut lost = Vec::new();
        again.retain(|(n, _)| match self.sent_on.get(n) {
            Some(&(epoch, _, _)) if epoch == epoch_now => {
                lost.push(*n);
                false
            }
            _ => true,
        });
        // Every request of those connections goes, and each closes before anything later can
        // answer it (a later write of the same connection may still come back as a commit).
        let lost: Vec<Origin> = lost.iter().filter_map(|&n| self.origin_of(n)).collect();
        let of_lost = |m: &Machine, n: u64| m.origin_of(n).is_some_and(|o| lost.contains(&o));
        let doomed: Vec<u64> = again
            .iter()
            .map(|(n, _)| *n)
            .chain(self.sent_on.keys().copied())
            .filter(|&n| of_lost(self, n))
            .collect();
        again.retain(|(n, _)| !doomed.contains(n));
        for n in doomed {
            self.forget_request(n);
        }
        for o in &lost {
            self.flush_commits();
            self.outbox.push((o.shard, ToShard::Close { conn: o.conn }));
        }
        self.held_writes.retain(|w| !lost.contains(&w.origin));
        let held = std::mem::take(&mut self.held_writes);
        info!(
            resent = again.len(),
            held = held.len(),
            "serving again with the clients kept"
        );
        for (n, data) in again {
            match data {
                None => self.resync(n),
                Some(data) => self.resend(n, data, out),
            }
            // An answer decided here in between goes in its turn.
            self.release_deferred();
        }
        self.run_actions(out);
        for w in held {
            if self.owners.get(&w.session_id) == Some(&w.origin) {
                self.write(w, out);
            } else {
                // Its session ended or moved meanwhile (this member, a stale leader, may have
                // expired it): the client must hear of it, not wait for an answer.
                let (shard, conn) = (w.origin.shard, w.origin.conn);
                self.answer(shard, ToShard::Close { conn });
            }
        }
    }

    /// The connection that asked for request `n` (a forwarded write, a new session or a sync).
    fn origin_of(&self, n: u64) -> Option<Origin> {
        if let Some((o, _, _)) = self.syncs.get(&n) {
            return Some(*o);
        }
        let forwarded = self.forwarded.values().find(|v| v.1 == n).map(|v| v.0);
        forwarded.or_else(|| self.creating.values().find(|v| v.1 == n).and_then(|v| v.0))
    }

    /// Forgets request `n`: nothing answers it any more.
    fn forget_request(&mut self, n: u64) {
        self.in_flight.remove(&n);
        self.sent_on.remove(&n);
        self.syncs.remove(&n);
        self.forwarded.retain(|_, v| v.1 != n);
        self.creating.retain(|_, v| v.1 != n);
    }

    /// A sync asked of the old leader, asked again (answered here if this member leads).
    fn resync(&mut self, id: u64) {
        if self.leading() {
            if let Some((origin, path, cxid)) = self.syncs.remove(&id) {
                let msg = ToShard::Synced {
                    conn: origin.conn,
                    path,
                };
                // Behind what is proposed, except this connection's later writes (the old
                // leader proposed them after the sync; they came back with the new epoch):
                // those must not be answered first (FIFO per connection).
                let later = self.proposed.iter().position(|q| match q {
                    Queued::Txn(c) | Queued::Learned(c, _) => {
                        c.origin == Some(origin) && c.txn.cxid > cxid
                    }
                    Queued::Answer(..) => false,
                });
                match later {
                    Some(0) => {
                        self.flush_commits();
                        self.outbox.push((origin.shard, msg));
                    }
                    Some(i) => self.proposed.insert(i, Queued::Answer(origin.shard, msg)),
                    None => self.answer(origin.shard, msg),
                }
            }
        } else {
            self.sent_on.insert(id, self.link_stamp());
            self.peer.sync(id);
        }
    }

    /// A request forwarded to the old leader, sent to the new one (or carried out here).
    fn resend(&mut self, n: u64, data: Bytes, out: &mut Vec<Effect>) {
        // Not if its connection has closed meanwhile: its client took the request as lost and
        // went on, maybe on another member; carried out now, it could land after that
        // client's later writes.
        if let Ok(Forward::Write {
            session_id, cxid, ..
        }) = Forward::decode(data.clone())
        {
            let live = self
                .forwarded
                .get(&(session_id, cxid))
                .is_some_and(|(o, _)| self.owners.get(&session_id) == Some(o));
            if !live {
                self.forwarded.remove(&(session_id, cxid));
                return;
            }
        }
        if !self.leading() {
            self.in_flight.insert(n, data.clone());
            self.sent_on.insert(n, self.link_stamp());
            self.peer.submit(data);
            return;
        }
        let Ok(f) = Forward::decode(data) else {
            return;
        };
        match f {
            Forward::Write {
                session_id,
                cxid,
                opcode,
                ids,
                body,
                ..
            } => {
                let Some((origin, _)) = self.forwarded.remove(&(session_id, cxid)) else {
                    return;
                };
                let Ok(req) = Request::decode(opcode, &mut Reader::new(body.clone())) else {
                    return;
                };
                let w = HeldWrite {
                    origin,
                    session_id,
                    cxid,
                    ids: Arc::new(ids),
                    req,
                    opcode,
                    body,
                };
                self.write(w, out);
            }
            Forward::CreateSession {
                session_id,
                timeout_ms,
                password,
            } => {
                let Some((origin, _)) = self.creating.remove(&session_id) else {
                    return;
                };
                self.sessions
                    .add(session_id, timeout_ms as u64, self.now.mono_ms);
                let op = TxnOp::CreateSession {
                    timeout_ms,
                    password,
                };
                self.commit(session_id, 0, op, origin, out);
            }
            Forward::Touch(_) | Forward::Attach(_) => {}
        }
    }

    /// Forgets every client request in flight: their connections are being closed.
    fn forget_clients(&mut self) {
        self.deferred.clear();
        self.forwarded.clear();
        self.creating.clear();
        self.in_flight.clear();
        self.sent_on.clear();
        self.syncs.clear();
        self.owners.clear();
        self.proposed.retain(|q| !matches!(q, Queued::Answer(..)));
    }

    fn role_changed(&mut self, role: Role, serving: bool, out: &mut Vec<Effect>) {
        info!(?role, serving, "zab role");
        let now = self.now.mono_ms;
        match (role, self.looking_since) {
            (Role::Looking, None) => self.looking_since = Some(now),
            (Role::Looking, Some(_)) => {}
            (_, Some(since)) => {
                let ms = now.saturating_sub(since);
                let f = &mut self.figures;
                f.elections += 1;
                f.last_election_ms = ms;
                f.max_election_ms = f.max_election_ms.max(ms);
                f.election_ms_total = f.election_ms_total.saturating_add(ms);
                self.election_times.record(ms.saturating_mul(1000));
                self.looking_since = None;
            }
            (_, None) => {}
        }
        self.figures.leading_since_ms = (role == Role::Leading && serving)
            .then(|| self.figures.leading_since_ms.unwrap_or(now));
        let was = self.serving;
        self.serving = serving;
        if was && !serving {
            let grace = self.cfg.election_grace_ms as u64;
            if self.ensemble && grace > 0 {
                // Keep the clients while electing: most elections end well within the
                // grace, and then clients see a pause, not a lost connection.
                self.grace_until = Some(now + grace);
            } else {
                self.close_clients();
            }
        }
        if serving && !was && self.grace_until.take().is_some() {
            self.resume = true;
        }
        if serving && !was {
            // Their clients could not reach this member meanwhile: a full timeout from now,
            // as a new leader gives the global sessions.
            self.local.renew_all(now);
        }
        if serving && !was && role == Role::Leading && self.ensemble {
            // The new leader owns expiry: every session gets a full timeout from now, as
            // after a restart.
            let mut tracker = SessionTracker::new(
                self.cfg.tick_time_ms as u64,
                self.sid_byte(),
                self.now.wall_ms,
            );
            let mono_ms = self.now.mono_ms;
            let (base, overlay) = self.view();
            for (id, s) in View::new(&base, overlay).sessions() {
                tracker.add(id, s.timeout_ms as u64, mono_ms);
            }
            drop(base);
            self.sessions = tracker;
            self.attached_at.clear();
        }
        if self.read_only && role != Role::Looking {
            // An election ended: ZooKeeper shuts its read-only server down here.
            info!("leaving read-only mode");
            self.read_only = false;
            self.read_only_sessions = LocalSessions::new(self.cfg.tick_time_ms as u64);
            self.close_clients();
        }
        let read_only = self.read_only;
        out.push(Effect::Role {
            role,
            serving,
            read_only,
        });
    }

    /// This member's id.
    fn me(&self) -> Sid {
        self.cfg.my_id.unwrap_or(1)
    }

    /// What this member puts in the top byte of the session ids it numbers.
    fn sid_byte(&self) -> u8 {
        self.me().min(254) as u8
    }

    /// Whether a request of `session_id` from member `from` was overtaken by the session's
    /// move to another member.
    fn moved(&self, session_id: i64, from: Sid) -> bool {
        self.attached_at
            .get(&session_id)
            .is_some_and(|&at| at != from)
    }

    /// Whether this member leads an established epoch (proposes txns itself).
    fn leading(&self) -> bool {
        self.serving && self.peer.role() == Role::Leading
    }

    /// A request a learner forwarded (or this leader's own `submit`).
    fn forwarded_request(&mut self, from: Sid, data: Bytes, out: &mut Vec<Effect>) {
        let now = self.now.mono_ms;
        let sent = data.clone();
        let f = match Forward::decode(data) {
            Ok(f) => f,
            Err(e) => {
                warn!(from, "undecodable forwarded request: {e}");
                return;
            }
        };
        if !self.leading() {
            return;
        }
        match f {
            Forward::Touch(ids) => {
                for id in ids {
                    self.sessions.touch(id, now);
                }
            }
            Forward::Attach(id) => {
                if self.sessions.touch(id, now) {
                    self.attached_at.insert(id, from);
                }
            }
            // While the log is stalled nothing can be proposed: the learner answers its client
            // as this member answers its own (`REFUSED_WHILE_STALLED`), its own request sent
            // back naming which one, after the commits of what was proposed before it. Its own submissions (`from` is this member) are refused
            // where they are made (`write`).
            _ if self.refusing() => {
                if from != self.me() {
                    self.peer.refuse(from, sent);
                    self.run_actions(out);
                }
            }
            Forward::CreateSession {
                session_id,
                timeout_ms,
                password,
            } => {
                self.sessions.add(session_id, timeout_ms as u64, now);
                self.attached_at.insert(session_id, from);
                let op = TxnOp::CreateSession {
                    timeout_ms,
                    password,
                };
                self.commit(session_id, 0, op, None, out);
            }
            Forward::Write {
                session_id,
                cxid,
                opcode,
                ids,
                body,
                local,
            } => {
                let req = Request::decode(opcode, &mut Reader::new(body));
                let global = self.sessions.touch(session_id, now);
                // A local session of the member that sent it may write, but not own ephemerals
                // (as ZooKeeper's checkSession / checkGlobalSession). ZooKeeper's leader takes
                // any unknown session from another member for a local one; the flag keeps a
                // global session it closed from writing late.
                let local_elsewhere = !global
                    && local
                    && self.local_sessions
                    && !req.as_ref().is_ok_and(|r| r.creates_ephemeral());
                if !global && !local_elsewhere {
                    // ZooKeeper's leader turns a request of an expired session into an error
                    // txn; the learner answers its client with it.
                    let op = TxnOp::Error(Code::SessionExpired);
                    return self.commit(session_id, cxid, op, None, out);
                }
                if self.moved(session_id, from) {
                    let op = TxnOp::Error(Code::SessionMoved);
                    return self.commit(session_id, cxid, op, None, out);
                }
                let op = match req {
                    Ok(Request::CloseSession) => {
                        return self.close_session(session_id, cxid, None, out)
                    }
                    Ok(req) if req.is_write() => self.prep(session_id, &ids, &req),
                    _ => TxnOp::Error(Code::MarshallingError),
                };
                self.commit(session_id, cxid, op, None, out);
            }
        }
    }

    /// The leader refused a request this learner forwarded: its log cannot be written. The
    /// leader sent the refusal once everything it had proposed before was committed, and the
    /// commits came first (`Peer::refuse`), so the answer goes out now, as a sync's does: what
    /// is still proposed here came later, maybe this connection's next writes, and must not be
    /// answered first. The connection's syncs asked before the write are answered first (all
    /// the leader had when they reached it is committed here: `syncs_before`'s argument). A
    /// write is answered with the code a leader gives its own clients then; a new session's
    /// handshake is turned away, so its client tries again.
    fn refused(&mut self, data: Bytes) {
        match Forward::decode(data) {
            Ok(Forward::Write {
                session_id, cxid, ..
            }) => {
                if let Some((origin, n)) = self.forwarded.remove(&(session_id, cxid)) {
                    self.forget_request(n);
                    self.syncs_before(origin, cxid, n);
                    // Answers decided here before the refused write was sent come before it.
                    self.release_deferred_below(n);
                    let msg = ToShard::Refused {
                        conn: origin.conn,
                        code: REFUSED_WHILE_STALLED,
                    };
                    self.answer_now(origin.shard, msg);
                }
            }
            Ok(Forward::CreateSession { session_id, .. }) => {
                if let Some((origin, n)) = self.creating.remove(&session_id) {
                    self.forget_request(n);
                    // A handshake's new session is turned away; a local session's upgrade
                    // (no origin) leaves it local, attached where it is.
                    if let Some(origin) = origin {
                        self.owners.remove(&session_id);
                        let msg = ToShard::Rejected {
                            conn: origin.conn,
                            expired: false,
                        };
                        self.answer_now(origin.shard, msg);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => warn!("undecodable refused request: {e}"),
        }
    }

    /// Everything proposed up to `zxid` is committed: it goes to the shards with this batch, and
    /// the answers queued behind it follow it.
    fn commit_upto(&mut self, zxid: i64) {
        // Alone, a txn commits once it is on this disk. In an ensemble a quorum's disks may
        // hold it before this one does (and an observer applies what its leader committed).
        assert!(
            self.ensemble || zxid as Zxid <= self.persisted || self.planted(Bug::AckBeforeFlush),
            "committed before durable"
        );
        while let Some(q) = self.proposed.front() {
            match q {
                Queued::Txn(c) | Queued::Learned(c, _) if c.txn.zxid > zxid => break,
                _ => {}
            }
            match self.proposed.pop_front() {
                Some(Queued::Txn(c)) => {
                    assert!(c.txn.zxid > self.committed, "commits out of order");
                    self.apply_committed(&c.txn, false);
                    self.committed = c.txn.zxid;
                    self.pending.push(c);
                }
                Some(Queued::Learned(c, n)) => {
                    assert!(c.txn.zxid > self.committed, "commits out of order");
                    let origin = c.origin;
                    if let Some(origin) = origin {
                        self.syncs_before(origin, c.txn.cxid, n);
                    }
                    self.apply_committed(&c.txn, true);
                    self.committed = c.txn.zxid;
                    self.pending.push(c);
                    if origin.is_some() {
                        // Answers decided here behind this write go next.
                        self.release_deferred_below(u64::MAX);
                    }
                }
                Some(Queued::Answer(shard, msg)) => {
                    self.flush_commits();
                    self.outbox.push((shard, msg));
                }
                None => break,
            }
        }
    }

    /// A write of `origin`'s connection with `cxid` commits (or is refused) here: its syncs
    /// asked before it and not answered yet (their answer lost with the old leader) are answered
    /// first. That is true: the write reached the leader after the sync did (or was sent again
    /// after it), so everything the leader had when the sync reached it is committed here
    /// already. `n` is the write's request number: answers decided here between those syncs and
    /// it go out between them too.
    fn syncs_before(&mut self, origin: Origin, cxid: i32, n: u64) {
        if self.syncs.is_empty() {
            return;
        }
        let mut due: Vec<(i32, u64)> = self
            .syncs
            .iter()
            .filter(|(_, (o, _, c))| *o == origin && *c < cxid)
            .map(|(&id, (_, _, c))| (*c, id))
            .collect();
        due.sort_unstable();
        for (_, id) in due {
            self.sent_on.remove(&id);
            if let Some((_, path, _)) = self.syncs.remove(&id) {
                self.flush_commits();
                let msg = ToShard::Synced {
                    conn: origin.conn,
                    path,
                };
                self.outbox.push((origin.shard, msg));
                // An answer decided here behind this sync (and before the write) goes next.
                self.release_deferred_below(n);
            }
        }
    }

    /// A txn committed: the machine's own base applies it now (and the overlay forgets it, so
    /// that a later learned txn cannot make its record stale). A shared base gets it from shard
    /// 0; until then the overlay must show it: a learned txn is recorded now (a leader's own
    /// were recorded when proposed).
    fn apply_committed(&mut self, txn: &Txn, learned: bool) {
        if self.owns_base {
            let mut base = self.base.borrow_mut();
            base.apply(txn);
            self.overlay.prune(&base);
        } else if learned {
            let base = self.base.borrow();
            View::new(&base, &mut self.overlay).record(txn);
        }
    }

    /// Moves the commits gathered so far into every shard's outbox (one shared batch).
    fn flush_commits(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = Arc::new(std::mem::take(&mut self.pending));
        for shard in 0..self.shards {
            self.outbox.push((shard, ToShard::Commits(batch.clone())));
        }
    }

    /// Whether `bug` is planted (never, outside the simulator's tests).
    #[cfg_attr(not(test), allow(unused_variables))]
    fn planted(&self, bug: Bug) -> bool {
        #[cfg(test)]
        return self.bug == Some(bug);
        #[cfg(not(test))]
        false
    }

    /// Queues a per-connection answer behind every txn proposed so far.
    /// While the log is stalled, only behind those of the same connection: the stalled batch
    /// may wait long, and a connection with nothing in it must hear of its refusals at once.
    fn answer(&mut self, shard: usize, msg: ToShard) {
        let waits = match (&self.stall, conn_of(&msg)) {
            (Some(_), Some(conn)) => {
                let origin = Origin { shard, conn };
                self.proposed.iter().any(|q| match q {
                    Queued::Txn(c) | Queued::Learned(c, _) => c.origin == Some(origin),
                    Queued::Answer(sh, m) => *sh == shard && conn_of(m) == Some(conn),
                })
            }
            _ => !self.proposed.is_empty(),
        };
        let waits = waits && !self.planted(Bug::AnswersOvertake);
        if !waits {
            self.flush_commits();
            self.outbox.push((shard, msg));
        } else {
            self.proposed.push_back(Queued::Answer(shard, msg));
        }
    }

    /// Turns a client's write into the txn it makes, against the authoritative state.
    fn prep(&mut self, session_id: i64, ids: &[Id], req: &Request) -> TxnOp {
        let ctx = PrepCtx {
            session_id,
            zxid: self.next_zxid(),
            ids,
            extended_types: self.cfg.extended_types_enabled,
            enforce_quota: self.cfg.enforce_quota,
            max_txn: TXN_MAX,
        };
        let (base, overlay) = self.view();
        prep(&mut View::new(&base, overlay), req, &ctx)
    }

    /// The zxid the next txn gets.
    fn next_zxid(&self) -> i64 {
        // A write machine that does not lead has no requests to turn into txns (the server
        // refuses clients until it leads).
        self.peer
            .next_zxid()
            .expect("the write machine proposes only while it leads") as i64
    }

    /// Turns `op` into the next txn: recorded in the overlay, proposed, logged.
    fn commit(
        &mut self,
        session_id: i64,
        cxid: i32,
        op: TxnOp,
        origin: Option<Origin>,
        out: &mut Vec<Effect>,
    ) {
        assert!(self.stall.is_none(), "proposed while the log is stalled");
        let zxid = self.next_zxid();
        assert!(zxid as Zxid > self.last_proposed, "zxid went backwards");
        let txn = Txn {
            session_id,
            cxid,
            zxid,
            time_ms: self.now.wall_ms,
            op,
        };
        {
            let (base, overlay) = self.view();
            View::new(&base, overlay).record(&txn);
        }
        if self.scratch.capacity() < 4096 {
            self.scratch.reserve(256 << 10);
        }
        encode_txn(&txn, &mut self.scratch);
        let body = self.scratch.split().freeze();
        // prep sized it; a txn the log could not hold must never be proposed.
        assert!(
            body.len() <= TXN_MAX,
            "txn of {} bytes proposed",
            body.len()
        );
        let size = body.len() as i64;
        let f = &mut self.figures;
        f.proposal_last = size;
        f.proposal_max = f.proposal_max.max(size);
        f.proposal_min = if f.proposal_min < 0 {
            size
        } else {
            f.proposal_min.min(size)
        };
        let proposed = self.peer.propose(self.now.mono_ms, body);
        assert_eq!(
            proposed,
            Some(zxid as Zxid),
            "the peer numbered differently"
        );
        self.last_proposed = zxid as Zxid;
        self.proposed.push_back(Queued::Txn(Commit { txn, origin }));
        self.run_actions(out);
        if self.planted(Bug::AckBeforeFlush) {
            self.commit_upto(zxid);
        }
    }

    fn close_session(
        &mut self,
        session_id: i64,
        cxid: i32,
        origin: Option<Origin>,
        out: &mut Vec<Effect>,
    ) {
        self.sessions.remove(session_id);
        self.owners.remove(&session_id);
        self.attached_at.remove(&session_id);
        self.commit(session_id, cxid, TxnOp::CloseSession, origin, out);
    }

    /// A live session, as the authoritative state has it.
    fn session(&mut self, id: i64) -> Option<crate::tree::SessionEntry> {
        let (base, overlay) = self.view();
        View::new(&base, overlay).session(id)
    }

    /// Whether new txns must wait: the log is stalled.
    fn refusing(&self) -> bool {
        self.stall.is_some()
    }

    /// Handles one message at `now`; what it asks for goes into `out`. `ToCore::Report` is the
    /// driver's to answer (it is ignored here).
    pub fn handle<R>(&mut self, now: Now, msg: ToCore<R>, out: &mut Vec<Effect>) {
        self.handle_msg(now, msg, out);
        // Requests forgotten (their connections closing) may have held answers back.
        self.release_deferred();
    }

    fn handle_msg<R>(&mut self, now: Now, msg: ToCore<R>, out: &mut Vec<Effect>) {
        self.now = now;
        let now = now.mono_ms;
        match msg {
            ToCore::Write {
                origin,
                session_id,
                cxid,
                ids,
                req,
                opcode,
                body,
            } => self.write(
                HeldWrite {
                    origin,
                    session_id,
                    cxid,
                    ids,
                    req,
                    opcode,
                    body,
                },
                out,
            ),
            ToCore::Connect {
                origin,
                session_id,
                passwd,
                timeout_ms,
                last_zxid_seen,
                read_only,
            } => {
                if self.read_only {
                    return self
                        .connect_read_only(origin, session_id, &passwd, timeout_ms, read_only);
                }
                let ahead = last_zxid_seen > self.last_zxid();
                if ahead {
                    info!(
                        "refusing session: client has seen zxid {last_zxid_seen:#x}, ours is {:#x}",
                        self.last_zxid()
                    );
                }
                // A new session is a txn: while the log is stalled, turn the client away (it
                // sees a closed connection and tries again, as after any connection loss). A
                // member that does not serve turns every client away.
                if ahead || !self.serving || (session_id == 0 && self.refusing()) {
                    self.answer(
                        origin.shard,
                        ToShard::Rejected {
                            conn: origin.conn,
                            expired: false,
                        },
                    );
                    return;
                }
                if session_id == 0 && self.local_sessions {
                    // A local session: nothing to log, nothing to tell the leader.
                    let id = self.sessions.next_session_id();
                    let password = (self.passwords)();
                    let local = Local {
                        password,
                        timeout_ms,
                    };
                    self.local.add(id, local, now);
                    return self.attach(origin, id, timeout_ms, password);
                }
                if let Some(local) = self.local.get(session_id) {
                    // Only this member knows it (elsewhere it is unknown, hence expired).
                    if local.password[..] == passwd[..] {
                        self.local.touch(session_id, now);
                        return self.attach(origin, session_id, timeout_ms, local.password);
                    }
                    let msg = ToShard::Rejected {
                        conn: origin.conn,
                        expired: true,
                    };
                    return self.answer(origin.shard, msg);
                }
                if session_id == 0 && !self.leading() {
                    // A learner numbers the session (its sid in the top byte) and asks the
                    // leader to create it; the commit answers the handshake.
                    let id = self.sessions.next_session_id();
                    let password = (self.passwords)();
                    self.owners.insert(id, origin);
                    let f = Forward::CreateSession {
                        session_id: id,
                        timeout_ms,
                        password,
                    };
                    let n = self.send_leader(f.to_bytes());
                    self.creating.insert(id, (Some(origin), n));
                    return self.run_actions(out);
                }
                if session_id == 0 {
                    let id = self.sessions.next_session_id();
                    let password = (self.passwords)();
                    self.sessions.add(id, timeout_ms as u64, now);
                    self.owners.insert(id, origin);
                    if self.ensemble {
                        self.attached_at.insert(id, self.me());
                    }
                    self.commit(
                        id,
                        0,
                        TxnOp::CreateSession {
                            timeout_ms,
                            password,
                        },
                        Some(origin),
                        out,
                    );
                    return;
                }
                let valid = self
                    .session(session_id)
                    .filter(|s| s.password[..] == passwd[..])
                    .map(|s| s.password);
                // A learner checks against its replica and tells the leader, which owns expiry,
                // that the session is alive (a session the leader has expired is closed by
                // its closeSession txn when that arrives).
                let alive = if self.leading() {
                    if valid.is_some() {
                        self.attached_at.insert(session_id, self.me());
                    }
                    self.sessions.touch(session_id, now)
                } else {
                    if valid.is_some() {
                        self.peer.submit(Forward::Attach(session_id).to_bytes());
                        self.run_actions(out);
                    }
                    true
                };
                match valid {
                    Some(password) if alive => {
                        self.attach(origin, session_id, timeout_ms, password)
                    }
                    _ => self.answer(
                        origin.shard,
                        ToShard::Rejected {
                            conn: origin.conn,
                            expired: true,
                        },
                    ),
                }
            }
            ToCore::Touch(mut ids) => {
                if !self.local.is_empty() {
                    ids.retain(|&id| !self.local.touch(id, now));
                }
                if self.read_only {
                    ids.retain(|&id| !self.read_only_sessions.touch(id, now));
                }
                if self.leading() || !self.ensemble {
                    for id in ids {
                        self.sessions.touch(id, now);
                    }
                } else if self.serving {
                    self.peer.submit(Forward::Touch(ids).to_bytes());
                    self.run_actions(out);
                }
            }
            ToCore::Link(ev) => {
                match self.gens.handle(ev) {
                    Some(Link::Up { sid, replaced }) => {
                        if replaced {
                            self.held.remove(&sid);
                            self.peer.on_disconnected(now, sid);
                        }
                        self.peer.on_connected(now, sid);
                    }
                    Some(Link::Down { sid }) => {
                        self.held.remove(&sid);
                        self.peer.on_disconnected(now, sid);
                    }
                    Some(Link::Msg { sid, msg }) => {
                        let f = &mut self.figures;
                        match &msg {
                            Msg::Diff { .. } => f.synced_by_diff += 1,
                            Msg::Trunc { .. } => f.synced_by_trunc += 1,
                            Msg::Snap { .. } => f.synced_by_snap += 1,
                            _ => {}
                        }
                        self.peer.on_message(now, sid, msg)
                    }
                    None => {}
                }
                self.run_actions(out);
            }
            ToCore::SnapshotReady {
                to,
                request,
                zxid,
                data,
            } => {
                if self.held.get(&to).is_none_or(|h| h.0 != request) {
                    return; // the learner reconnected meanwhile; its new sync asks again
                }
                let (_, held) = self.held.remove(&to).expect("checked above");
                self.send_peer(to, Msg::Snap { zxid, data }, out);
                for msg in held {
                    self.send_peer(to, msg, out);
                }
            }
            ToCore::Disconnected { origin, session_id } => {
                if self.owners.get(&session_id) == Some(&origin) {
                    self.owners.remove(&session_id);
                }
            }
            ToCore::Report(_) | ToCore::Pause(_) | ToCore::ResetObserverStats => {}
            ToCore::Tick => {
                self.peer.on_tick(now);
                self.run_actions(out);
                if self.grace_until.is_some_and(|t| now >= t) {
                    info!("no quorum within the grace: closing client connections");
                    self.close_clients();
                }
                if self.read_only_due(now) {
                    info!("no leader: serving reads, read-only");
                    self.close_clients();
                    self.read_only = true;
                    let (role, serving, read_only) = (self.peer.role(), false, true);
                    out.push(Effect::Role {
                        role,
                        serving,
                        read_only,
                    });
                }
                if self.read_only {
                    for id in self.read_only_sessions.expire(now) {
                        if let Some(o) = self.owners.remove(&id) {
                            self.answer_now(o.shard, ToShard::Close { conn: o.conn });
                        }
                    }
                }
                if (self.serving || self.read_only) && !self.local.is_empty() {
                    for id in self.local.expire(now) {
                        debug!("local session {id:#x} expired");
                        if let Some(o) = self.owners.remove(&id) {
                            self.close_in_turn(o);
                        }
                    }
                }
                // Only the leader expires sessions and reaps nodes (alone, it always leads).
                if self.refusing() || !self.leading() {
                    // Expiring a session or reaping a node is a txn: both wait for the log.
                    return;
                }
                for id in self.sessions.expire(now) {
                    debug!("session {id:#x} expired");
                    self.close_session(id, 0, None, out);
                }
                let interval = self.cfg.container_check_interval_ms as u64;
                if now >= self.last_reap_ms + interval {
                    self.last_reap_ms = now;
                    self.reap(out);
                }
            }
        }
    }

    /// A client's write: proposed here if this member leads, forwarded if it follows, held
    /// while it elects within the grace.
    fn write(&mut self, w: HeldWrite, out: &mut Vec<Effect>) {
        let now = self.now.mono_ms;
        let origin = w.origin;
        if self.read_only {
            return self.write_read_only(origin, w.session_id, &w.req);
        }
        if !self.serving {
            if self.grace_until.is_some() {
                self.held_writes.push_back(w);
            } else {
                // Its connection is being closed (`ToShard::CloseAll`).
                self.answer(origin.shard, ToShard::Close { conn: origin.conn });
            }
            return;
        }
        let HeldWrite {
            session_id,
            cxid,
            ids,
            req,
            opcode,
            body,
            ..
        } = w;
        if self.local.contains(session_id) {
            let conn = origin.conn;
            match &req {
                Request::CloseSession => {
                    // Its owner stays until the connection is gone: requests it sent before
                    // are still answered (and sent again after an election) in their turn.
                    self.local.remove(session_id);
                    let msg = ToShard::SessionClosed { conn, session_id };
                    return self.answer_in_turn(origin, msg);
                }
                r if r.creates_ephemeral() && !self.cfg.local_sessions_upgrading_enabled => {
                    let code = Code::EphemeralOnLocalSession;
                    return self.answer_in_turn(origin, ToShard::Refused { conn, code });
                }
                _ => {}
            }
        }
        if !self.leading() {
            if req.creates_ephemeral() {
                self.upgrade(session_id, out);
            }
            return self.forward_write(origin, session_id, cxid, ids, req, opcode, body, out);
        }
        if !self.local.touch(session_id, now) && !self.sessions.touch(session_id, now) {
            // The session expired while this request was in flight.
            self.answer(origin.shard, ToShard::Close { conn: origin.conn });
            return;
        }
        if !matches!(req, Request::Sync { .. }) && self.moved(session_id, self.me()) {
            let op = TxnOp::Error(Code::SessionMoved);
            return self.commit(session_id, cxid, op, Some(origin), out);
        }
        match &req {
            Request::Sync { .. } => {}
            _ if self.refusing() => {
                // Refused before it has a zxid: it is never logged, never applied.
                self.answer(
                    origin.shard,
                    ToShard::Refused {
                        conn: origin.conn,
                        code: REFUSED_WHILE_STALLED,
                    },
                );
                return;
            }
            _ => {}
        }
        match &req {
            Request::Sync { path } => self.answer(
                origin.shard,
                ToShard::Synced {
                    conn: origin.conn,
                    path: path.clone(),
                },
            ),
            Request::CloseSession => self.close_session(session_id, cxid, Some(origin), out),
            _ => {
                if req.creates_ephemeral() {
                    self.upgrade(session_id, out);
                }
                let op = self.prep(session_id, &ids, &req);
                self.commit(session_id, cxid, op, Some(origin), out);
            }
        }
    }

    /// A learner's client write: a sync waits for the leader's answer, the rest go to the
    /// leader, and the commit that comes back answers the client.
    #[allow(clippy::too_many_arguments)]
    fn forward_write(
        &mut self,
        origin: Origin,
        session_id: i64,
        cxid: i32,
        ids: Arc<Vec<Id>>,
        req: Request,
        opcode: i32,
        body: Bytes,
        out: &mut Vec<Effect>,
    ) {
        if let Request::Sync { path } = req {
            self.next_request += 1;
            let id = self.next_request;
            self.syncs.insert(id, (origin, path, cxid));
            self.sent_on.insert(id, self.link_stamp());
            self.peer.sync(id);
        } else {
            let f = Forward::Write {
                session_id,
                cxid,
                opcode,
                ids: (*ids).clone(),
                body,
                local: self.local.contains(session_id),
            };
            let n = self.send_leader(f.to_bytes());
            self.forwarded.insert((session_id, cxid), (origin, n));
        }
        self.run_actions(out);
    }

    /// Answers the handshake of `origin`: the session is attached to it, and the connection
    /// it was attached to before (if another) closes.
    fn attach(&mut self, origin: Origin, session_id: i64, timeout_ms: i32, password: [u8; 16]) {
        if let Some(old) = self.owners.insert(session_id, origin) {
            if old != origin {
                self.answer(old.shard, ToShard::Close { conn: old.conn });
            }
        }
        let msg = ToShard::Attached {
            conn: origin.conn,
            session_id,
            timeout_ms,
            password,
            read_only: self.read_only,
        };
        if self.read_only {
            self.answer_now(origin.shard, msg);
        } else {
            self.answer(origin.shard, msg);
        }
    }

    /// Sends an answer at once: read-only, nothing a connection asked is in flight (every
    /// connection opened since), and what was proposed before may never be committed.
    fn answer_now(&mut self, shard: usize, msg: ToShard) {
        self.flush_commits();
        self.outbox.push((shard, msg));
    }

    /// A handshake while read-only: only from clients that accept it. A new session lives
    /// here until read-only mode ends, and only such a session may reattach; other sessions
    /// are unknown to a read-only server, as to ZooKeeper's (a global one is closed unanswered,
    /// any other is expired).
    fn connect_read_only(
        &mut self,
        origin: Origin,
        session_id: i64,
        passwd: &[u8],
        timeout_ms: i32,
        client_read_only: bool,
    ) {
        let now = self.now.mono_ms;
        if !client_read_only {
            // ZooKeeper's read-only server closes such a connection unanswered.
            let msg = ToShard::Rejected {
                conn: origin.conn,
                expired: false,
            };
            return self.answer_now(origin.shard, msg);
        }
        if session_id == 0 {
            let id = self.sessions.next_session_id();
            let password = (self.passwords)();
            let s = Local {
                password,
                timeout_ms,
            };
            self.read_only_sessions.add(id, s, now);
            return self.attach(origin, id, timeout_ms, password);
        }
        if self.session(session_id).is_some() {
            // As ZooKeeper's read-only server: a global session would be touched and maybe
            // used here, unknown to the ensemble; its client is closed, to try other members.
            let msg = ToShard::Rejected {
                conn: origin.conn,
                expired: false,
            };
            return self.answer_now(origin.shard, msg);
        }
        match self.read_only_sessions.get(session_id) {
            Some(s) if s.password[..] == passwd[..] => {
                self.read_only_sessions.touch(session_id, now);
                self.attach(origin, session_id, timeout_ms, s.password)
            }
            _ => {
                let msg = ToShard::Rejected {
                    conn: origin.conn,
                    expired: true,
                };
                self.answer_now(origin.shard, msg)
            }
        }
    }

    /// A request while read-only: a close ends the connection (and a session made read-only,
    /// or a local one); every other write is NOTREADONLY, as ZooKeeper's
    /// ReadOnlyRequestProcessor answers (sync included).
    fn write_read_only(&mut self, origin: Origin, session_id: i64, req: &Request) {
        let conn = origin.conn;
        let msg = match req {
            Request::CloseSession => {
                self.read_only_sessions.remove(session_id);
                ToShard::SessionClosed { conn, session_id }
            }
            _ => ToShard::Refused {
                conn,
                code: Code::NotReadOnly,
            },
        };
        self.answer_now(origin.shard, msg);
    }

    /// Whether to start serving read-only: enabled, in an ensemble, looking for a leader for
    /// `max(2 s, tickTime)` (ZooKeeper's grace before it decides it is partitioned).
    fn read_only_due(&self, now: u64) -> bool {
        let wait = (self.cfg.tick_time_ms as u64).max(2000);
        self.cfg.read_only_enabled
            && self.ensemble
            && !self.read_only
            && !self.serving
            && self.peer.role() == Role::Looking
            && self.looking_since.is_some_and(|t| now >= t + wait)
    }

    /// Makes local session `session_id` global (it is about to create an ephemeral node),
    /// ahead of the request: a createSession txn, proposed here or asked of the leader, which
    /// gets it before the request that follows on the same link. Nothing if it is not local.
    fn upgrade(&mut self, session_id: i64, out: &mut Vec<Effect>) {
        let Some(local) = self.local.remove(session_id) else {
            return;
        };
        info!("local session {session_id:#x} becomes global");
        let Local {
            password,
            timeout_ms,
        } = local;
        if self.leading() {
            self.sessions
                .add(session_id, timeout_ms as u64, self.now.mono_ms);
            self.attached_at.insert(session_id, self.me());
            let op = TxnOp::CreateSession {
                timeout_ms,
                password,
            };
            self.commit(session_id, 0, op, None, out);
        } else {
            let f = Forward::CreateSession {
                session_id,
                timeout_ms,
                password,
            };
            let n = self.send_leader(f.to_bytes());
            self.creating.insert(session_id, (None, n));
        }
    }

    /// Queues an answer decided here, after the answers to what the connection sent the
    /// leader before (its replies must come in order, and a shard fills the oldest unanswered
    /// write's reply).
    fn answer_in_turn(&mut self, origin: Origin, msg: ToShard) {
        let upto = self.next_request;
        if self.deferred.iter().any(|(o, _, _)| *o == origin) || self.waits(origin, upto) {
            self.deferred.push((origin, upto, msg));
        } else {
            self.answer(origin.shard, msg);
        }
    }

    /// Closes `origin`'s connection behind everything decided for it so far: behind its
    /// answers still held back, if any (`deferred`). Queued at once behind every txn in
    /// flight, the connection's later writes among them, the close would be the last of its
    /// answers in `proposed`, and a held answer released after it would be put behind it, so
    /// behind those writes: the shard, which fills the oldest unanswered request's reply,
    /// would give the held answer's request a later write's reply. Only for a close decided
    /// now (a local session expiring); one that answers a request (its session gone while it
    /// was in flight) goes where that request's answer goes, ahead of later held answers.
    fn close_in_turn(&mut self, origin: Origin) {
        let msg = ToShard::Close { conn: origin.conn };
        if self.deferred.iter().any(|(o, _, _)| *o == origin) {
            let upto = self.next_request;
            self.deferred.push((origin, upto, msg));
        } else {
            self.answer(origin.shard, msg);
        }
    }

    /// Whether a request of `origin` numbered up to `upto` is still with the leader.
    fn waits(&self, origin: Origin, upto: u64) -> bool {
        self.forwarded
            .values()
            .any(|&(o, n)| o == origin && n <= upto)
            || self
                .syncs
                .iter()
                .any(|(&n, (o, _, _))| *o == origin && n <= upto)
    }

    /// Queues the deferred answers whose turn has come, in order per connection: called as
    /// soon as what held one back is queued, before anything later of its connection is.
    fn release_deferred(&mut self) {
        self.release_deferred_below(u64::MAX);
    }

    /// [`Machine::release_deferred`] for the answers decided before request `limit` was sent
    /// (a request being committed, no longer among those in flight, that must come after).
    fn release_deferred_below(&mut self, limit: u64) {
        if self.deferred.is_empty() {
            return;
        }
        let mut kept: Vec<(Origin, u64, ToShard)> = Vec::new();
        for (origin, upto, msg) in std::mem::take(&mut self.deferred) {
            if upto >= limit
                || kept.iter().any(|(o, _, _)| *o == origin)
                || self.waits(origin, upto)
            {
                kept.push((origin, upto, msg));
            } else {
                self.answer_after(origin, upto, msg);
            }
        }
        self.deferred = kept;
    }

    /// Queues `msg` right behind the connection's queued requests numbered up to `upto` (and
    /// its answers queued before), ahead of its later ones: a learner may have learned those
    /// already (the leader proposes them before it answers a sync asked earlier).
    fn answer_after(&mut self, origin: Origin, upto: u64, msg: ToShard) {
        let pos = self.proposed.iter().rposition(|q| match q {
            Queued::Txn(c) => c.origin == Some(origin),
            Queued::Learned(c, n) => c.origin == Some(origin) && *n <= upto,
            Queued::Answer(shard, m) => *shard == origin.shard && conn_of(m) == Some(origin.conn),
        });
        match pos {
            Some(i) => self
                .proposed
                .insert(i + 1, Queued::Answer(origin.shard, msg)),
            None => {
                // What it follows is committed: out with the commits gathered so far.
                self.flush_commits();
                self.outbox.push((origin.shard, msg));
            }
        }
    }

    /// Forwards a request to the leader, keeping it until it comes back; returns its number.
    fn send_leader(&mut self, data: Bytes) -> u64 {
        self.next_request += 1;
        let n = self.next_request;
        self.in_flight.insert(n, data.clone());
        self.sent_on.insert(n, self.link_stamp());
        self.peer.submit(data);
        n
    }

    /// The epoch this member follows, its leader and the live generation of the link to it.
    fn link_stamp(&self) -> (u32, Sid, u64) {
        let leader = match self.peer.role() {
            Role::Following { leader } | Role::Observing { leader } => leader,
            Role::Leading | Role::Looking => self.cfg.my_id.unwrap_or(1),
        };
        let gen = self.gens.gen(leader).unwrap_or(0);
        (self.peer.epochs().1, leader, gen)
    }

    /// Deletes containers that had children and lost them all, and TTL nodes without children
    /// whose last change is older than their TTL (ZooKeeper's ContainerManager).
    fn reap(&mut self, out: &mut Vec<Effect>) {
        let wall_ms = self.now.wall_ms;
        let mut doomed = Vec::new();
        let tree = self.base.borrow();
        for path in tree.containers() {
            let n = tree.get(path).expect("indexed container exists");
            if n.num_children() == 0 && n.cversion > 0 {
                doomed.push(path.clone());
            }
        }
        for path in tree.ttl_nodes() {
            let n = tree.get(path).expect("indexed TTL node exists");
            let ttl = ephemeral_owner::ttl_of(n.ephemeral_owner).unwrap_or(i64::MAX);
            if n.num_children() == 0 && wall_ms - n.mtime > ttl {
                doomed.push(path.clone());
            }
        }
        drop(tree);
        let limit = self.cfg.container_max_per_minute.max(1) as usize;
        for path in doomed.into_iter().take(limit) {
            let (base, overlay) = self.view();
            let op = prep_delete_container(&View::new(&base, overlay), &path);
            drop(base);
            if let Ok(op) = op {
                self.commit(0, 0, op, None, out);
            }
        }
    }
}
