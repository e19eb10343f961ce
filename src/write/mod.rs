//! The write machine: the write core's protocol logic, pure. It holds the authoritative tree,
//! the session tracker, the queue of answers (proposed / committed / outbox) and the
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
//! exactly what is committed. So the authoritative tree, which already holds the stalled batch,
//! never gets ahead of the log by more than that batch, and once it is durable the two agree.
//!
//! Ordering: a shard's channel is FIFO and the machine releases a per-connection answer (sync
//! done, reattach result) only after every commit that preceded it, so a shard that handles the
//! answer has already applied everything before it.
//!
//! Invariants are asserted where they are cheap (TigerBeetle style): zxids only move forward,
//! a txn is proposed only while the peer leads an established epoch, and what is durable never
//! passes what is proposed. docs/design/write-machine.md describes the split and the simulator.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::limits::TXN_MAX;
use crate::prep::{prep, prep_delete_container, PrepCtx};
use crate::proto::codes::{ephemeral_owner, Code};
use crate::proto::records::{Id, Request};
use crate::session::SessionTracker;
use crate::storage::codec::encode_txn;
use crate::tree::DataTree;
use crate::txn::{Txn, TxnOp};
use crate::watch::ConnId;
use crate::zab::election::Timing;
use crate::zab::peer::{self, Action, Durable, Peer};
use crate::zab::{Ensemble, Zxid};

#[cfg(test)]
mod sim;

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
    },
    /// A handshake: `session_id` 0 asks for a new session, otherwise a reattach.
    Connect {
        origin: Origin,
        session_id: i64,
        passwd: Bytes,
        timeout_ms: i32,
        last_zxid_seen: i64,
    },
    /// Sessions that showed activity since the last report.
    Touch(Vec<i64>),
    /// A connection closed without closeSession; the session lives on until it expires.
    Disconnected { origin: Origin, session_id: i64 },
    /// Periodic: expire sessions, reap containers and TTL nodes.
    Tick,
    /// A four-letter word wants the write core's view.
    Report(R),
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
    /// The connection's oldest unanswered write was not carried out: answer it with `code`
    /// (the log cannot be written; `REFUSED_WHILE_STALLED`).
    Refused {
        conn: ConnId,
        code: Code,
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
    Txn(Commit),
    Answer(usize, ToShard),
}

/// The connection a per-connection answer goes to (commits go to every shard).
fn conn_of(msg: &ToShard) -> Option<ConnId> {
    match msg {
        ToShard::Commits(_) => None,
        ToShard::Synced { conn, .. }
        | ToShard::Attached { conn, .. }
        | ToShard::Rejected { conn, .. }
        | ToShard::Close { conn }
        | ToShard::Refused { conn, .. } => Some(*conn),
    }
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
    tree: DataTree,
    sessions: SessionTracker,
    /// The connection each live session is attached to, to close it when the session moves.
    owners: HashMap<i64, Origin>,
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
    #[cfg(test)]
    bug: Option<Bug>,
}

impl Machine {
    /// A machine starting from the recovered `tree` and the data directory's
    /// `(acceptedEpoch, currentEpoch)`; it leads an ensemble of one at once. `out` gets what
    /// establishing asked for.
    pub fn new(
        cfg: Arc<Config>,
        tree: DataTree,
        epochs: (u32, u32),
        shards: usize,
        now: Now,
        passwords: Passwords,
        out: &mut Vec<Effect>,
    ) -> Machine {
        let (accepted_epoch, current_epoch) = epochs;
        let server_id = cfg.my_id.unwrap_or(1).min(254) as u8;
        let mut sessions = SessionTracker::new(cfg.tick_time_ms as u64, server_id, now.wall_ms);
        // Sessions come back with the log; as in ZooKeeper their timeout starts again.
        for (id, s) in tree.sessions() {
            sessions.add(*id, s.timeout_ms as u64, now.mono_ms);
        }
        let me = cfg.my_id.unwrap_or(1);
        let last = tree.last_zxid();
        let peer = Peer::new(
            peer::Config {
                me,
                ensemble: Ensemble::of_voters([me]),
                tick_ms: cfg.tick_time_ms as u64,
                init_limit: cfg.init_limit as u64,
                sync_limit: cfg.sync_limit as u64,
                history_limit: 500,
                // ZooKeeper's standalone zxids (ensembles are refused at startup until the
                // runtime runs them: docs/design/replication.md).
                standalone: true,
                election: Timing {
                    // With one voter there is nobody to wait for.
                    finalize_wait_ms: 0,
                    ..Timing::default()
                },
            },
            Durable {
                accepted_epoch,
                current_epoch,
                base: last as Zxid,
                entries: Vec::new(),
            },
            now.mono_ms,
        );
        let mut m = Machine {
            cfg,
            shards,
            tree,
            sessions,
            owners: HashMap::new(),
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
            #[cfg(test)]
            bug: None,
        };
        // An ensemble of one elects itself and leads at once (standalone: in the epoch of its
        // last zxid, without writing epoch files).
        m.peer.on_tick(now.mono_ms);
        m.run_actions(out);
        assert!(
            m.peer.next_zxid().is_some(),
            "an ensemble of one did not establish itself"
        );
        info!(
            epoch = m.peer.epochs().1,
            "leading an ensemble of one (standalone)"
        );
        m
    }

    #[cfg(test)]
    pub(crate) fn plant(&mut self, bug: Bug) {
        self.bug = Some(bug);
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    /// The last zxid proposed (the peer's last logged).
    pub fn last_zxid(&self) -> i64 {
        self.peer.last_logged() as i64
    }

    /// The highest zxid committed (to be published before `release`'s sends go out).
    pub fn committed(&self) -> i64 {
        self.committed
    }

    /// Nothing is proposed and uncommitted: a snapshot may start from the tree (always so
    /// between batches with a quorum of one, unless the log is stalled).
    pub fn quiescent(&self) -> bool {
        self.proposed.is_empty()
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

    /// Carries out what the peer asked for, in order.
    fn run_actions(&mut self, out: &mut Vec<Effect>) {
        let mut actions = std::mem::take(&mut self.actions);
        self.peer.drain_actions(&mut actions);
        for action in actions.drain(..) {
            match action {
                Action::SaveEpochs { accepted, current } => {
                    out.push(Effect::SaveEpochs { accepted, current })
                }
                Action::Append { zxid, txn } => {
                    self.appended = Some(zxid);
                    out.push(Effect::Append { zxid, txn });
                }
                Action::Commit { zxid } => self.commit_upto(zxid as i64),
                Action::Role { role, serving } => debug!(?role, serving, "zab role"),
                // Only an ensemble of more than one member sends, syncs or forwards.
                other => warn!(?other, "replication action without an ensemble"),
            }
        }
        self.actions = actions;
    }

    /// Everything proposed up to `zxid` is committed: it goes to the shards with this batch, and
    /// the answers queued behind it follow it.
    fn commit_upto(&mut self, zxid: i64) {
        assert!(
            zxid as Zxid <= self.persisted || self.planted(Bug::AckBeforeFlush),
            "committed before durable"
        );
        while let Some(q) = self.proposed.front() {
            match q {
                Queued::Txn(c) if c.txn.zxid > zxid => break,
                _ => {}
            }
            match self.proposed.pop_front() {
                Some(Queued::Txn(c)) => {
                    assert!(c.txn.zxid > self.committed, "commits out of order");
                    self.committed = c.txn.zxid;
                    self.pending.push(c);
                }
                Some(Queued::Answer(shard, msg)) => {
                    self.flush_commits();
                    self.outbox.push((shard, msg));
                }
                None => break,
            }
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
                    Queued::Txn(c) => c.origin == Some(origin),
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

    /// The zxid the next txn gets.
    fn next_zxid(&self) -> i64 {
        // A write machine that does not lead has no requests to turn into txns (the server
        // refuses clients until it leads).
        self.peer
            .next_zxid()
            .expect("the write machine proposes only while it leads") as i64
    }

    /// Turns `op` into the next txn: applied to the authoritative tree, proposed, logged.
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
        self.tree.apply(&txn);
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
        self.commit(session_id, cxid, TxnOp::CloseSession, origin, out);
    }

    /// Whether new txns must wait: the log is stalled.
    fn refusing(&self) -> bool {
        self.stall.is_some()
    }

    /// Handles one message at `now`; what it asks for goes into `out`. `ToCore::Report` is the
    /// driver's to answer (it is ignored here).
    pub fn handle<R>(&mut self, now: Now, msg: ToCore<R>, out: &mut Vec<Effect>) {
        self.now = now;
        let now = now.mono_ms;
        match msg {
            ToCore::Write {
                origin,
                session_id,
                cxid,
                ids,
                req,
            } => {
                if !self.sessions.touch(session_id, now) {
                    // The session expired while this request was in flight.
                    self.answer(origin.shard, ToShard::Close { conn: origin.conn });
                    return;
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
                    Request::CloseSession => {
                        self.close_session(session_id, cxid, Some(origin), out)
                    }
                    _ => {
                        let ctx = PrepCtx {
                            session_id,
                            zxid: self.next_zxid(),
                            time_ms: self.now.wall_ms,
                            ids: &ids,
                            extended_types: self.cfg.extended_types_enabled,
                            max_txn: TXN_MAX,
                        };
                        let op = prep(&mut self.tree, &req, &ctx);
                        self.commit(session_id, cxid, op, Some(origin), out);
                    }
                }
            }
            ToCore::Connect {
                origin,
                session_id,
                passwd,
                timeout_ms,
                last_zxid_seen,
            } => {
                let ahead = last_zxid_seen > self.last_zxid();
                if ahead {
                    info!(
                        "refusing session: client has seen zxid {last_zxid_seen:#x}, ours is {:#x}",
                        self.last_zxid()
                    );
                }
                // A new session is a txn: while the log is stalled, turn the client away (it
                // sees a closed connection and tries again, as after any connection loss).
                if ahead || (session_id == 0 && self.refusing()) {
                    self.answer(
                        origin.shard,
                        ToShard::Rejected {
                            conn: origin.conn,
                            expired: false,
                        },
                    );
                    return;
                }
                if session_id == 0 {
                    let id = self.sessions.next_session_id();
                    let password = (self.passwords)();
                    self.sessions.add(id, timeout_ms as u64, now);
                    self.owners.insert(id, origin);
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
                    .tree
                    .session(session_id)
                    .filter(|s| s.password[..] == passwd[..])
                    .map(|s| s.password);
                match valid {
                    Some(password) if self.sessions.touch(session_id, now) => {
                        if let Some(old) = self.owners.insert(session_id, origin) {
                            if old != origin {
                                self.answer(old.shard, ToShard::Close { conn: old.conn });
                            }
                        }
                        self.answer(
                            origin.shard,
                            ToShard::Attached {
                                conn: origin.conn,
                                session_id,
                                timeout_ms,
                                password,
                            },
                        );
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
            ToCore::Touch(ids) => {
                for id in ids {
                    self.sessions.touch(id, now);
                }
            }
            ToCore::Disconnected { origin, session_id } => {
                if self.owners.get(&session_id) == Some(&origin) {
                    self.owners.remove(&session_id);
                }
            }
            ToCore::Report(_) => {}
            ToCore::Tick => {
                self.peer.on_tick(now);
                self.run_actions(out);
                if self.refusing() {
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

    /// Deletes containers that had children and lost them all, and TTL nodes without children
    /// whose last change is older than their TTL (ZooKeeper's ContainerManager).
    fn reap(&mut self, out: &mut Vec<Effect>) {
        let wall_ms = self.now.wall_ms;
        let mut doomed = Vec::new();
        for path in self.tree.containers() {
            let n = self.tree.get(path).expect("indexed container exists");
            if n.children.is_empty() && n.cversion > 0 {
                doomed.push(path.clone());
            }
        }
        for path in self.tree.ttl_nodes() {
            let n = self.tree.get(path).expect("indexed TTL node exists");
            let ttl = ephemeral_owner::ttl_of(n.ephemeral_owner).unwrap_or(i64::MAX);
            if n.children.is_empty() && wall_ms - n.mtime > ttl {
                doomed.push(path.clone());
            }
        }
        let limit = self.cfg.container_max_per_minute.max(1) as usize;
        for path in doomed.into_iter().take(limit) {
            if let Ok(op) = prep_delete_container(&self.tree, &path) {
                self.commit(0, 0, op, None, out);
            }
        }
    }
}
