//! The write core (the future ZAB core): owns the authoritative data tree and the session
//! tracker, orders every write by assigning zxids, and streams committed transactions to every
//! shard. Runs as one task; everything it owns is touched by no other task.
//!
//! Each wake-up drains every message waiting (up to `BATCH_MAX`), turns them into txns, then
//! sends one commit batch per shard: batching across connections and shards is where the
//! throughput comes from, and the batch is the unit the durable log will group-commit.
//!
//! Ordering: a shard's channel is FIFO and the core sends a per-connection answer (sync done,
//! reattach result) only after every commit that preceded it, so a shard that handles the answer
//! has already applied everything before it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_channel::{Receiver, Sender};
use tracing::{debug, info, warn};

use super::snapshots::{snapshot_dir, Job, Retention};
use super::wal::Wal;
use super::{Commit, CoreReport, Origin, Shared, ToCore, ToShard};
use crate::config::Config;
use crate::prep::{prep, prep_delete_container, PrepCtx};
use crate::proto::codes::ephemeral_owner;
use crate::proto::records::Request;
use crate::session::SessionTracker;
use crate::storage::recover::Tail;
use crate::tree::DataTree;
use crate::txn::{Txn, TxnOp};

/// Most messages handled per batch before the batch is sent on.
const BATCH_MAX: usize = 1024;

pub struct WriteCore {
    cfg: Arc<Config>,
    tree: DataTree,
    sessions: SessionTracker,
    /// The connection each live session is attached to, to close it when the session moves.
    owners: HashMap<i64, Origin>,
    zxid: i64,
    started: Instant,
    shards: Vec<Sender<ToShard>>,
    /// Per-shard messages of the batch being built, in the order they must arrive.
    outbox: Vec<Vec<ToShard>>,
    pending: Vec<Commit>,
    last_reap_ms: u64,
    shared: Arc<Shared>,
    wal: Wal,
    snap: Option<Job>,
    since_snap: u64,
    snap_at: u64,
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
        WriteCore {
            sessions,
            cfg,
            zxid: tree.last_zxid(),
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
            zxid = format!("{:#x}", self.zxid),
            "write core started"
        );
        loop {
            // While a snapshot is being taken, do not sleep on the channel: walk the tree a
            // step between batches instead.
            let first = if self.snap.is_some() {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(async_channel::TryRecvError::Empty) => None,
                    Err(async_channel::TryRecvError::Closed) => return,
                }
            } else {
                match rx.recv().await {
                    Ok(m) => Some(m),
                    Err(_) => return,
                }
            };
            if let Some(first) = first {
                self.batch(first, &rx).await;
            }
            self.snapshot_step().await;
        }
    }

    /// Handles one batch: everything waiting, one log flush, then the commits to the shards.
    async fn batch(&mut self, first: ToCore, rx: &Receiver<ToCore>) {
        self.handle(first);
        for _ in 1..BATCH_MAX {
            match rx.try_recv() {
                Ok(m) => self.handle(m),
                Err(_) => break,
            }
        }
        // Group commit: everything this batch committed becomes durable with one write and
        // one fdatasync, before any shard (and so any client) hears of it. Requests that
        // arrive meanwhile wait in the channel and form the next batch. A log that cannot
        // be written is not a state to serve from: stop.
        if let Err(e) = self.wal.flush().await {
            panic!("transaction log write failed: {e}");
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

    /// Starts a snapshot every `snapCount/2..snapCount` txns (randomised, as ZooKeeper does so
    /// that servers of an ensemble do not snapshot together) and advances one in progress.
    async fn snapshot_step(&mut self) {
        if self.snap.is_none() && self.since_snap >= self.snap_at {
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
                Err(e) => warn!("cannot start a snapshot: {e}"),
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

    /// Queues a per-connection answer behind every commit so far.
    fn answer(&mut self, shard: usize, msg: ToShard) {
        self.flush_commits();
        self.outbox[shard].push(msg);
    }

    fn commit(&mut self, session_id: i64, cxid: i32, op: TxnOp, origin: Option<Origin>) {
        self.zxid += 1;
        let txn = Txn {
            session_id,
            cxid,
            zxid: self.zxid,
            time_ms: wall_clock_ms(),
            op,
        };
        self.tree.apply(&txn);
        self.wal.append(&txn);
        self.since_snap += 1;
        self.shared
            .committed
            .store(self.zxid, std::sync::atomic::Ordering::SeqCst);
        self.pending.push(Commit { txn, origin });
    }

    fn close_session(&mut self, session_id: i64, cxid: i32, origin: Option<Origin>) {
        let ephemerals: Vec<String> = self.tree.ephemerals_of(session_id).cloned().collect();
        self.sessions.remove(session_id);
        self.owners.remove(&session_id);
        self.commit(session_id, cxid, TxnOp::CloseSession { ephemerals }, origin);
    }

    fn handle(&mut self, msg: ToCore) {
        let now = self.now_ms();
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
                            zxid: self.zxid + 1,
                            time_ms: wall_clock_ms(),
                            ids: &ids,
                            extended_types: self.cfg.extended_types_enabled,
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
                if last_zxid_seen > self.zxid {
                    info!(
                        "refusing session: client has seen zxid {last_zxid_seen:#x}, ours is {:#x}",
                        self.zxid
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
                    last_zxid: self.zxid,
                    log: self.wal.stats,
                });
            }
            ToCore::Tick => {
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
