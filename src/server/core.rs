//! The write core, where ZAB runs: owns the authoritative data tree and the session tracker,
//! turns requests into txns, and streams committed transactions to every shard. Runs as one task;
//! everything it owns is touched by no other task.
//!
//! Ordering and commitment belong to a `zab::peer::Peer`: it numbers each txn (`next_zxid`,
//! `propose`), says when to log it (`Append`) and when it is committed (`Commit`). Standalone is
//! an ensemble of one: the same path with a quorum of one, so a txn commits once its batch is
//! durable; it numbers zxids as ZooKeeper's standalone server does, without new epochs
//! (`peer::Config::standalone`; docs/design/replication.md).
//!
//! Each wake-up drains every message waiting (up to `BATCH_MAX`), turns them into txns, makes
//! the batch durable with one log write and one fdatasync (group commit), and sends what that
//! committed as one batch per shard: batching across connections and shards is where the
//! throughput comes from.
//!
//! A log write that fails (a full disk, an I/O error) stalls the core instead of stopping it
//! (docs/decisions.md, "A full disk"): the batch stays proposed and unanswered, its records stay
//! in the log's tail buffer, and the same write (same bytes, same zxids) is retried with
//! backoff until it lands; then it commits and is answered as usual. Meanwhile nothing new is
//! proposed: writes are refused with `REFUSED_WHILE_STALLED` before they get a zxid, new
//! sessions are turned away, session expiry and reaping wait, and reads go on from the shards'
//! replicas, which hold exactly what is committed. So the authoritative tree, which already
//! holds the stalled batch, never gets ahead of the log by more than that batch, and once it
//! is durable the two agree again.
//!
//! Ordering: a shard's channel is FIFO and the core sends a per-connection answer (sync done,
//! reattach result) only after every commit that preceded it, so a shard that handles the answer
//! has already applied everything before it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use bytes::BytesMut;
use tracing::{debug, info, warn};

use super::snapshots::{snapshot_dir, Job, Retention};
use super::wal::Wal;
use super::{Commit, CoreReport, Origin, Shared, ToCore, ToShard};
use crate::config::Config;
use crate::limits::{BATCH_BYTES, BATCH_MAX, TXN_MAX};
use crate::prep::{prep, prep_delete_container, PrepCtx};
use crate::proto::codes::{ephemeral_owner, Code};
use crate::proto::records::Request;
use crate::session::SessionTracker;
use crate::storage::codec::encode_txn;
use crate::storage::epochs;
use crate::storage::recover::Tail;
use crate::tree::DataTree;
use crate::txn::{Txn, TxnOp};
use crate::zab::election::Timing;
use crate::zab::peer::{self, Action, Durable, Peer};
use crate::zab::{Ensemble, Zxid};

/// What a write gets while the log cannot be written: SYSTEMERROR, which every client library
/// knows; the write was not carried out (docs/decisions.md, "A full disk").
pub const REFUSED_WHILE_STALLED: Code = Code::SystemError;
/// Retrying a failed log write: the first retry after `STALL_RETRY_MIN`, doubling up to
/// `STALL_RETRY_MAX`, so a freed disk is noticed within a second or so.
const STALL_RETRY_MIN: Duration = Duration::from_millis(10);
const STALL_RETRY_MAX: Duration = Duration::from_millis(500);
/// After a snapshot failed (a full disk, usually), the next attempt waits this long.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);

/// The log could not be written: when it began, and when to retry.
struct Stall {
    since: Instant,
    retry_at: Instant,
    backoff: Duration,
}

pub struct WriteCore {
    cfg: Arc<Config>,
    tree: DataTree,
    sessions: SessionTracker,
    /// The connection each live session is attached to, to close it when the session moves.
    owners: HashMap<i64, Origin>,
    started: Instant,
    shards: Vec<Sender<ToShard>>,
    /// Per-shard messages of the batch being built, in the order they must arrive.
    outbox: Vec<Vec<ToShard>>,
    /// Committed, on their way to the shards with the batch.
    pending: Vec<Commit>,
    /// Proposed and not yet committed, in order, with the answers queued behind them.
    proposed: VecDeque<Queued>,
    /// The last zxid appended to the log since the last flush.
    appended: Option<Zxid>,
    peer: Peer,
    /// `now_ms` when the message being handled arrived (one clock read per message).
    now: u64,
    /// The peer's actions being carried out (kept for its allocation).
    actions: Vec<Action>,
    /// Where txns are encoded for the peer, carved off in slices of one allocation.
    scratch: BytesMut,
    last_reap_ms: u64,
    shared: Arc<Shared>,
    wal: Wal,
    snap: Option<Job>,
    since_snap: u64,
    snap_at: u64,
    /// `snapshots::STATS.failed` when last looked at, to notice a snapshot that failed.
    snap_failed_seen: u64,
    /// A snapshot failed: try again at this instant.
    snap_retry_at: Option<Instant>,
    /// Set while the last log write failed and is being retried.
    stall: Option<Stall>,
}

/// What waits for a commit: a txn, or an answer to a connection that must not overtake the txns
/// before it.
enum Queued {
    Txn(Commit),
    Answer(usize, ToShard),
}

/// The connection a per-connection answer goes to (commits go to every shard).
fn conn_of(msg: &ToShard) -> Option<crate::watch::ConnId> {
    match msg {
        ToShard::Commits(_) => None,
        ToShard::Synced { conn, .. }
        | ToShard::Attached { conn, .. }
        | ToShard::Rejected { conn, .. }
        | ToShard::Close { conn }
        | ToShard::Refused { conn, .. } => Some(*conn),
    }
}

/// ZooKeeper's rule: the next snapshot after a random count in `snapCount/2 ..= snapCount`.
fn snap_threshold(snap_count: u32) -> u64 {
    let half = (snap_count as u64 / 2).max(1);
    half + rand::random::<u64>() % (snap_count as u64 - half + 1)
}

/// What the write core starts from; built on the main thread and sent to executor 0, where
/// `run` opens the log and builds the (thread-bound) core.
pub struct CoreInit {
    pub cfg: Arc<Config>,
    pub shards: Vec<Sender<ToShard>>,
    pub shared: Arc<Shared>,
    /// The recovered state.
    pub tree: DataTree,
    /// Where the log continues.
    pub tail: Option<Tail>,
    pub next_seq: u64,
    /// `(acceptedEpoch, currentEpoch)` as the data directory holds them.
    pub epochs: (u32, u32),
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl WriteCore {
    fn new(init: CoreInit, wal: Wal) -> WriteCore {
        let CoreInit {
            cfg,
            shards,
            shared,
            tree,
            epochs: (accepted_epoch, current_epoch),
            ..
        } = init;
        let snap_count = cfg.snap_count;
        let server_id = cfg.my_id.unwrap_or(1).min(254) as u8;
        let mut sessions = SessionTracker::new(cfg.tick_time_ms as u64, server_id, wall_clock_ms());
        // Sessions come back with the log; as in ZooKeeper their timeout starts again.
        for (id, s) in tree.sessions() {
            sessions.add(*id, s.timeout_ms as u64, 0);
        }
        shared
            .committed
            .store(tree.last_zxid(), std::sync::atomic::Ordering::SeqCst);
        let me = cfg.my_id.unwrap_or(1);
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
                base: tree.last_zxid() as Zxid,
                entries: Vec::new(),
            },
            0,
        );
        let mut core = WriteCore {
            sessions,
            cfg,
            tree,
            owners: HashMap::new(),
            started: Instant::now(),
            outbox: (0..shards.len()).map(|_| Vec::new()).collect(),
            shards,
            pending: Vec::new(),
            last_reap_ms: 0,
            shared,
            wal,
            snap: None,
            since_snap: 0,
            snap_at: snap_threshold(snap_count),
            snap_failed_seen: super::snapshots::STATS
                .failed
                .load(std::sync::atomic::Ordering::Relaxed),
            snap_retry_at: None,
            stall: None,
            proposed: VecDeque::new(),
            appended: None,
            peer,
            now: 0,
            actions: Vec::new(),
            scratch: BytesMut::new(),
        };
        // An ensemble of one elects itself and leads at once (standalone: in the epoch of its
        // last zxid, without writing epoch files).
        core.peer.on_tick(0);
        core.run_actions();
        assert!(
            core.peer.next_zxid().is_some(),
            "an ensemble of one did not establish itself"
        );
        info!(
            epoch = core.peer.epochs().1,
            "leading an ensemble of one (standalone)"
        );
        core
    }

    /// Carries out what the peer asked for, in order.
    fn run_actions(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        self.peer.drain_actions(&mut actions);
        for action in actions.drain(..) {
            match action {
                Action::SaveEpochs { accepted, current } => {
                    // Zab's promises rest on these surviving a crash: without them, stop.
                    if let Err(e) = epochs::write(&self.cfg.data_dir, accepted, current) {
                        panic!("cannot write the epoch files: {e}");
                    }
                }
                Action::Append { zxid, txn } => {
                    self.wal.append_raw(zxid as i64, &txn);
                    self.appended = Some(zxid);
                    self.since_snap += 1;
                }
                Action::Commit { zxid } => self.committed(zxid as i64),
                Action::Role { role, serving } => debug!(?role, serving, "zab role"),
                // Only an ensemble of more than one member sends, syncs or forwards.
                other => warn!(?other, "replication action without an ensemble"),
            }
        }
        self.actions = actions;
    }

    /// Everything proposed up to `zxid` is committed: it goes to the shards with this batch, and
    /// the answers queued behind it follow it.
    fn committed(&mut self, zxid: i64) {
        while let Some(q) = self.proposed.front() {
            match q {
                Queued::Txn(c) if c.txn.zxid > zxid => break,
                _ => {}
            }
            match self.proposed.pop_front() {
                Some(Queued::Txn(c)) => {
                    self.shared
                        .committed
                        .store(c.txn.zxid, std::sync::atomic::Ordering::SeqCst);
                    self.pending.push(c);
                }
                Some(Queued::Answer(shard, msg)) => {
                    self.flush_commits();
                    self.outbox[shard].push(msg);
                }
                None => break,
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Opens the log and runs the core until every shard has gone.
    pub async fn run(mut init: CoreInit, rx: Receiver<ToCore>) {
        let dir = super::log_dir(&init.cfg);
        let wal = Wal::open(&dir, init.tail.take(), init.next_seq, init.cfg.force_sync)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot open the transaction log in {}: {e}", dir.display())
            });
        let core = WriteCore::new(init, wal);
        core.serve(rx).await
    }

    async fn serve(mut self, rx: Receiver<ToCore>) {
        info!(
            shards = self.shards.len(),
            zxid = format!("{:#x}", self.last_zxid()),
            "write core started"
        );
        loop {
            // While a snapshot is being taken, do not sleep on the channel: walk the tree a
            // step between batches instead. While the log is stalled, sleep at most until the
            // next retry.
            let first = if self.snap.is_some() {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(async_channel::TryRecvError::Empty) => None,
                    Err(async_channel::TryRecvError::Closed) => return,
                }
            } else if let Some(stall) = &self.stall {
                let wait = stall.retry_at.saturating_duration_since(Instant::now());
                let timer = async {
                    glommio::timer::sleep(wait).await;
                    Ok(None)
                };
                match futures_lite::future::or(async { rx.recv().await.map(Some) }, timer).await {
                    Ok(m) => m,
                    Err(_) => return,
                }
            } else {
                match rx.recv().await {
                    Ok(m) => Some(m),
                    Err(_) => return,
                }
            };
            if first.is_some() || self.stall.is_some() {
                self.batch(first, &rx).await;
            }
            self.snapshot_step().await;
        }
    }

    /// Handles one batch: everything waiting, one log flush, then the commits to the shards.
    async fn batch(&mut self, first: Option<ToCore>, rx: &Receiver<ToCore>) {
        let mut handled = 0;
        if let Some(first) = first {
            self.handle(first);
            handled = 1;
        }
        while handled < BATCH_MAX {
            // Bounded in bytes too: a batch of large writes holds its records in memory until
            // the flush (`limits`).
            if self.wal.pending_bytes() >= BATCH_BYTES {
                break;
            }
            match rx.try_recv() {
                Ok(m) => self.handle(m),
                Err(_) => break,
            }
            handled += 1;
        }
        // Group commit: everything this batch proposed becomes durable with one write and
        // one fdatasync, before any shard (and so any client) hears of it. Requests that
        // arrive meanwhile wait in the channel and form the next batch. While stalled, the
        // same write is retried when its backoff has passed.
        if self
            .stall
            .as_ref()
            .is_none_or(|s| Instant::now() >= s.retry_at)
        {
            self.flush_log().await;
        }
        self.flush_commits();
        for (shard, msgs) in self.outbox.iter_mut().enumerate() {
            for m in msgs.drain(..) {
                if self.shards[shard].send(m).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Makes the appended records durable; with a quorum of one, durable is committed. A
    /// failure (re)starts the stall: nothing is committed and the write is retried later.
    async fn flush_log(&mut self) {
        if let Err(e) = self.wal.flush().await {
            let now = Instant::now();
            match &mut self.stall {
                None => {
                    warn!("transaction log write failed, refusing writes until it succeeds: {e}");
                    self.stall = Some(Stall {
                        since: now,
                        retry_at: now + STALL_RETRY_MIN,
                        backoff: STALL_RETRY_MIN,
                    });
                }
                Some(s) => {
                    s.backoff = (s.backoff * 2).min(STALL_RETRY_MAX);
                    s.retry_at = now + s.backoff;
                    debug!("transaction log write failed again: {e}");
                }
            }
            return;
        }
        if let Some(s) = self.stall.take() {
            info!(
                stalled_ms = s.since.elapsed().as_millis() as u64,
                "transaction log writable again, taking writes"
            );
        }
        if let Some(zxid) = self.appended.take() {
            self.peer.on_persisted(self.now_ms(), zxid);
            self.run_actions();
        }
    }

    /// Starts a snapshot every `snapCount/2..snapCount` txns (randomised, as ZooKeeper does so
    /// that servers of an ensemble do not snapshot together) and advances one in progress.
    async fn snapshot_step(&mut self) {
        // A snapshot that failed (its writer thread counts it) is tried again later, whatever
        // the txn count says: until one succeeds, recovery replays an ever longer log.
        let failed = super::snapshots::STATS
            .failed
            .load(std::sync::atomic::Ordering::Relaxed);
        if failed != self.snap_failed_seen {
            self.snap_failed_seen = failed;
            self.snap_retry_at = Some(Instant::now() + SNAPSHOT_RETRY);
        }
        let retry = self.snap_retry_at.is_some_and(|t| Instant::now() >= t);
        // A snapshot starts between batches with nothing proposed and uncommitted (always so
        // with a quorum of one), so the tree it begins from holds committed txns only.
        if self.snap.is_none()
            && (self.since_snap >= self.snap_at || retry)
            && self.proposed.is_empty()
        {
            self.snap_retry_at = None;
            self.since_snap = 0;
            self.snap_at = snap_threshold(self.cfg.snap_count);
            let retention = Retention {
                snap_dir: snapshot_dir(&self.cfg.data_dir),
                log_dir: super::log_dir(&self.cfg),
                keep: self.cfg.autopurge_snap_retain_count.max(3) as usize,
                purge: self.cfg.autopurge_purge_interval_hours > 0,
            };
            match Job::start(&self.tree, retention) {
                Ok(job) => {
                    info!(zxid = format!("{:#x}", job.zxid), "snapshot started");
                    self.snap = Some(job);
                }
                Err(e) => {
                    warn!("cannot start a snapshot: {e}");
                    self.snap_retry_at = Some(Instant::now() + SNAPSHOT_RETRY);
                }
            }
        }
        if let Some(job) = self.snap.as_mut() {
            if job.step(&self.tree) {
                self.snap = None;
            }
            // Let the shards sharing this executor run between steps.
            glommio::yield_if_needed().await;
        }
    }

    /// Moves the commits gathered so far into every shard's outbox (one shared batch).
    fn flush_commits(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = Arc::new(std::mem::take(&mut self.pending));
        for out in &mut self.outbox {
            out.push(ToShard::Commits(batch.clone()));
        }
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
        if !waits {
            self.flush_commits();
            self.outbox[shard].push(msg);
        } else {
            self.proposed.push_back(Queued::Answer(shard, msg));
        }
    }

    /// The last zxid proposed (the peer's last logged).
    fn last_zxid(&self) -> i64 {
        self.peer.last_logged() as i64
    }

    /// The zxid the next txn gets.
    fn next_zxid(&self) -> i64 {
        // A write core that does not lead has no requests to turn into txns (the server refuses
        // clients until it leads).
        self.peer
            .next_zxid()
            .expect("the write core proposes only while it leads") as i64
    }

    /// Turns `op` into the next txn: applied to the authoritative tree, proposed, logged.
    fn commit(&mut self, session_id: i64, cxid: i32, op: TxnOp, origin: Option<Origin>) {
        let now = self.now;
        let zxid = self.next_zxid();
        let txn = Txn {
            session_id,
            cxid,
            zxid,
            time_ms: wall_clock_ms(),
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
        let proposed = self.peer.propose(now, body);
        debug_assert_eq!(proposed, Some(zxid as Zxid));
        self.proposed.push_back(Queued::Txn(Commit { txn, origin }));
        self.run_actions();
    }

    fn close_session(&mut self, session_id: i64, cxid: i32, origin: Option<Origin>) {
        self.sessions.remove(session_id);
        self.owners.remove(&session_id);
        self.commit(session_id, cxid, TxnOp::CloseSession, origin);
    }

    /// Whether new txns must wait: the log is stalled.
    fn refusing(&self) -> bool {
        self.stall.is_some()
    }

    fn handle(&mut self, msg: ToCore) {
        let now = self.now_ms();
        self.now = now;
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
                    Request::CloseSession => self.close_session(session_id, cxid, Some(origin)),
                    _ => {
                        let ctx = PrepCtx {
                            session_id,
                            zxid: self.next_zxid(),
                            time_ms: wall_clock_ms(),
                            ids: &ids,
                            extended_types: self.cfg.extended_types_enabled,
                            max_txn: TXN_MAX,
                        };
                        let op = prep(&mut self.tree, &req, &ctx);
                        self.commit(session_id, cxid, op, Some(origin));
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
                if last_zxid_seen > self.last_zxid() {
                    info!(
                        "refusing session: client has seen zxid {last_zxid_seen:#x}, ours is {:#x}",
                        self.last_zxid()
                    );
                    self.answer(
                        origin.shard,
                        ToShard::Rejected {
                            conn: origin.conn,
                            expired: false,
                        },
                    );
                    return;
                }
                if session_id == 0 && self.refusing() {
                    // A new session is a txn: turn the client away (it sees a closed connection
                    // and tries again, as after any connection loss).
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
                    let password: [u8; 16] = rand::random();
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
            ToCore::Report(reply) => {
                let offset = wall_clock_ms() as u64 - now;
                let _ = reply.try_send(CoreReport {
                    session_buckets: self
                        .sessions
                        .buckets()
                        .into_iter()
                        .map(|(d, ids)| (d + offset, ids))
                        .collect(),
                    last_zxid: self.last_zxid(),
                    log: self.wal.stats(),
                });
            }
            ToCore::Tick => {
                self.peer.on_tick(now);
                self.run_actions();
                if self.refusing() {
                    // Expiring a session or reaping a node is a txn: both wait for the log.
                    return;
                }
                for id in self.sessions.expire(now) {
                    debug!("session {id:#x} expired");
                    self.close_session(id, 0, None);
                }
                let interval = self.cfg.container_check_interval_ms as u64;
                if now >= self.last_reap_ms + interval {
                    self.last_reap_ms = now;
                    self.reap(wall_clock_ms());
                }
            }
        }
    }

    /// Deletes containers that had children and lost them all, and TTL nodes without children
    /// whose last change is older than their TTL (ZooKeeper's ContainerManager).
    fn reap(&mut self, wall_ms: i64) {
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
                self.commit(0, 0, op, None);
            }
        }
    }
}
