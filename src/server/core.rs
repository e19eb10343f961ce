//! The write core's driver: runs the pure write machine (`crate::write::Machine`, which holds
//! the authoritative state, the sessions, the answer queue and the Zab peer) on executor 0 and
//! does what it asks. It owns everything with I/O or nondeterminism: the log (`Wal`), the
//! channels, the snapshot job, the clock and the random numbers. Runs as one task; everything
//! it owns is touched by no other task.
//!
//! Each wake-up drains every message waiting (up to `BATCH_MAX`, or `BATCH_BYTES` of records),
//! hands each to the machine, appends the records it returns to the log's tail, makes the batch
//! durable with one log write and one fdatasync (group commit), and sends what that committed as
//! one batch per shard: batching across connections and shards is where the throughput comes
//! from. A failed flush stalls the machine; the driver retries the same write with the backoff
//! the machine sets (docs/decisions.md, "A full disk"). Snapshots advance between batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use tracing::{debug, info, warn};

use super::quorum::Links;
use super::shard::Replica;
use super::snapshots::{snapshot_dir, Job, Retention};
use super::wal::Wal;
use super::{CoreReport, Shared, ToCore, ToShard};
use crate::admin::ServerMode;
use crate::config::Config;
use crate::limits::{BATCH_BYTES, BATCH_MAX};
use crate::storage::epochs;
use crate::storage::recover::Tail;
use crate::tree::DataTree;
use crate::write::{Base, Effect, Machine, Now, Recent};
use crate::zab::peer::Role;
use crate::zab::{Sid, Zxid};

/// After a snapshot failed (a full disk, usually), the next attempt waits this long.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(10);

pub struct WriteCore {
    cfg: Arc<Config>,
    machine: Machine,
    started: Instant,
    shards: Vec<Sender<ToShard>>,
    /// What the machine asked for, being carried out (kept for its allocation).
    effects: Vec<Effect>,
    shared: Arc<Shared>,
    /// `None` only while a learner's log is being cut or replaced (`rebuild`).
    wal: Option<Wal>,
    /// The links to the other members (an ensemble only).
    links: Option<Links>,
    /// What `srvr` reports.
    role: Role,
    serving: bool,
    /// Serving reads only, while looking for a leader (`readonlymode.enabled`).
    read_only: bool,
    snap: Option<Job>,
    /// Records appended since the last snapshot started.
    since_snap: u64,
    snap_at: u64,
    /// `snapshots::STATS.failed` when last looked at, to notice a snapshot that failed.
    snap_failed_seen: u64,
    /// A snapshot failed: try again at this instant.
    snap_retry_at: Option<Instant>,
    /// The admin server's `restore` asked to pause once the current batch is durable.
    pause: Option<Sender<CoreReport>>,
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
    /// The recovered state, when the write core keeps its own committed tree (on an executor
    /// of its own); None when it shares shard 0's replica (`run`'s `shared`).
    pub tree: Option<DataTree>,
    /// Where the log continues.
    pub tail: Option<Tail>,
    pub next_seq: u64,
    /// `(acceptedEpoch, currentEpoch)` as the data directory holds them.
    pub epochs: (u32, u32),
    /// The newest log records, for syncing learners by DIFF.
    pub recent: Recent,
    /// In an ensemble: this member's election-port listener, every other member's address, and
    /// where link events go (the write core's own queue).
    pub quorum: Option<Quorum>,
}

pub struct Quorum {
    pub listener: std::net::TcpListener,
    pub members: std::collections::BTreeMap<Sid, std::net::SocketAddr>,
    pub to_core: Sender<ToCore>,
    /// `sslQuorum`: mutual TLS on every link.
    pub tls: Option<super::quorum::QuorumTls>,
}

/// A learner's log cut or replaced at its leader's word.
enum Rebuild {
    Truncate { zxid: Zxid, reload: bool },
    Install { zxid: Zxid, data: bytes::Bytes },
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl WriteCore {
    async fn new(
        init: CoreInit,
        shared_tree: Option<Replica>,
        wal: Wal,
        links: Option<Links>,
    ) -> WriteCore {
        let CoreInit {
            cfg,
            shards,
            shared,
            tree,
            epochs,
            recent,
            ..
        } = init;
        let base = match (tree, shared_tree) {
            (Some(tree), None) => Base::Own(Box::new(tree)),
            (None, Some(replica)) => Base::Shared(replica),
            _ => unreachable!("the write core gets a tree of its own or shares shard 0's"),
        };
        let last = match &base {
            Base::Own(t) => t.last_zxid(),
            Base::Shared(r) => r.borrow().last_zxid(),
        };
        shared.committed.store(last, Ordering::SeqCst);
        let started = Instant::now();
        let mut effects = Vec::new();
        let machine = Machine::new(
            cfg.clone(),
            base,
            recent,
            epochs,
            shards.len(),
            Now {
                mono_ms: 0,
                wall_ms: wall_clock_ms(),
            },
            Box::new(rand::random),
            &mut effects,
        );
        let mut core = WriteCore {
            snap_at: snap_threshold(cfg.snap_count),
            cfg,
            machine,
            started,
            shards,
            effects,
            shared,
            wal: Some(wal),
            links,
            role: Role::Looking,
            serving: false,
            read_only: false,
            snap: None,
            since_snap: 0,
            snap_failed_seen: super::snapshots::STATS.failed.load(Ordering::Relaxed),
            snap_retry_at: None,
            pause: None,
        };
        core.perform().await;
        core
    }

    fn wal(&mut self) -> &mut Wal {
        self.wal
            .as_mut()
            .expect("the log is open outside `rebuild`")
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.started.elapsed().as_millis() as u64,
            wall_ms: wall_clock_ms(),
        }
    }

    /// Carries out the effects the machine returned, in order (sends to shards wait for the
    /// flush: `batch`).
    async fn perform(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        for e in effects.drain(..) {
            match e {
                Effect::SaveEpochs { accepted, current } => {
                    // fsyncs, on a blocking thread: this executor serves clients too. Nothing
                    // later is carried out before they are durable (this task waits).
                    let dir = self.cfg.data_dir.clone();
                    let saved = glommio::executor()
                        .spawn_blocking(move || epochs::write(&dir, accepted, current))
                        .await;
                    // Zab's promises rest on these surviving a crash: without them, stop.
                    if let Err(e) = saved {
                        panic!("cannot write the epoch files: {e}");
                    }
                }
                Effect::Append { zxid, txn } => {
                    self.wal().append_raw(zxid as i64, &txn);
                    self.since_snap += 1;
                }
                Effect::Peer { to, gen, msg } => {
                    if let Some(links) = &self.links {
                        links.send(to, gen, &msg);
                    }
                }
                Effect::Role {
                    role,
                    serving,
                    read_only,
                } => {
                    self.role = role;
                    self.serving = serving;
                    self.read_only = read_only;
                }
                Effect::Truncate { zxid, reload } => {
                    self.rebuild(Rebuild::Truncate { zxid, reload }).await
                }
                Effect::InstallSnapshot { zxid, data } => {
                    self.rebuild(Rebuild::Install { zxid, data }).await
                }
                Effect::Send { .. } => unreachable!("sends are released after the flush"),
            }
        }
        // Effects the rebuild's `reset` produced are none; keep the allocation.
        debug_assert!(self.effects.is_empty());
        self.effects = effects;
    }

    /// Cuts the log at a TRUNC's zxid, or replaces log and state with a SNAP, then reopens the
    /// log where recovery says it continues. Blocking file I/O on this executor is acceptable
    /// here: a learner being synced serves no clients.
    async fn rebuild(&mut self, how: Rebuild) {
        use crate::storage::{learner, recover};
        let log_dir = super::log_dir(&self.cfg);
        let snap_dir = snapshot_dir(&self.cfg.data_dir);
        let mut wal = self.wal.take().expect("one rebuild at a time");
        if let Rebuild::Truncate { .. } = how {
            // Records up to the TRUNC's zxid that were appended and not yet written must stay.
            if let Err(e) = wal.flush().await {
                panic!("cannot write the transaction log before truncating it: {e}");
            }
        }
        if let Err(e) = wal.close().await {
            warn!("closing the transaction log: {e}");
        }
        // A snapshot writer must not rename a snapshot into place, or purge, under us.
        if let Some(job) = self.snap.take() {
            job.abort();
        }
        while super::snapshots::writers_running() {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        let (result, reload) = match &how {
            Rebuild::Truncate { zxid, reload } => (
                learner::truncate(&log_dir, &snap_dir, *zxid as i64),
                *reload,
            ),
            Rebuild::Install { zxid, data } => (
                learner::install_snapshot(&log_dir, &snap_dir, *zxid as i64, data),
                true,
            ),
        };
        if let Err(e) = result {
            // The store cannot be brought to the leader's state (a TRUNC below every snapshot
            // it has). As ZooKeeper's learner does in that corner, give up the state and stop:
            // restarted, the member is empty and its leader sends it a SNAP.
            tracing::error!(
                "cannot bring the log to the leader's state: {e}; wiping it and stopping"
            );
            if let Err(e) = learner::wipe(&log_dir, &snap_dir) {
                tracing::error!("wiping the data directory failed too: {e}");
            }
            std::process::exit(1);
        }
        let recovered = recover::recover(&log_dir, &snap_dir)
            .unwrap_or_else(|e| panic!("cannot recover after a learner sync: {e}"));
        let wal = Wal::open(
            &log_dir,
            recovered.tail,
            recovered.next_seq,
            self.cfg.force_sync,
        )
        .await
        .unwrap_or_else(|e| panic!("cannot reopen the transaction log: {e}"));
        self.wal = Some(wal);
        learner::purge_discarded(&log_dir);
        if reload {
            self.machine.reset(recovered.tree);
        }
    }

    /// Opens the log, starts the links to the other members (an ensemble) and runs the core
    /// until every shard has gone.
    /// `shared_tree`: shard 0's replica, when the write core runs beside shard 0 and reads its
    /// committed state there instead of keeping a tree of its own.
    pub async fn run(mut init: CoreInit, shared_tree: Option<Replica>, rx: Receiver<ToCore>) {
        let dir = super::log_dir(&init.cfg);
        let wal = Wal::open(&dir, init.tail.take(), init.next_seq, init.cfg.force_sync)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot open the transaction log in {}: {e}", dir.display())
            });
        let links = init.quorum.take().map(|q| start_links(&init.cfg, q));
        let core = WriteCore::new(init, shared_tree, wal, links).await;
        core.serve(rx).await
    }

    async fn serve(mut self, rx: Receiver<ToCore>) {
        info!(
            shards = self.shards.len(),
            zxid = format!("{:#x}", self.machine.last_zxid()),
            "write core started"
        );
        loop {
            // While a snapshot is being taken, do not sleep on the channel: walk the tree a
            // step between batches instead. While the log is stalled, sleep at most until the
            // next retry.
            let retry_at = self.machine.retry_at();
            let first = if self.snap.is_some() {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(async_channel::TryRecvError::Empty) => None,
                    Err(async_channel::TryRecvError::Closed) => return,
                }
            } else if let Some(at) = retry_at {
                let wait = Duration::from_millis(at.saturating_sub(self.now().mono_ms));
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
            if (first.is_some() || retry_at.is_some()) && !self.batch(first, &rx).await {
                return;
            }
            if let Some(reply) = self.pause.take() {
                self.hold(reply).await;
            }
            self.snapshot_step().await;
        }
    }

    /// Hands one message to the machine (or answers a four-letter word's question).
    async fn handle(&mut self, msg: ToCore) {
        let now = self.now();
        if let ToCore::Pause(reply) = msg {
            self.pause = Some(reply);
            return;
        }
        if let ToCore::ResetObserverStats = msg {
            if let Some(links) = &self.links {
                for sid in self.machine.synced_observers() {
                    links.reset_stats(sid);
                }
            }
            return;
        }
        if let ToCore::Report(reply) = msg {
            let offset = now.wall_ms as u64 - now.mono_ms;
            let (role, leader, figures) = self.machine.figures();
            let leader = leader.map(|l| crate::admin::LeaderStats {
                learners: l.learners as u64,
                synced_followers: l.synced_followers as u64,
                synced_non_voting_followers: 0,
                synced_observers: l.synced_observers as u64,
                pending_syncs: l.pending_syncs as u64,
                leader_uptime_ms: figures
                    .leading_since_ms
                    .map_or(0, |t| now.mono_ms.saturating_sub(t)),
                proposal_size_last: figures.proposal_last,
                proposal_size_min: figures.proposal_min,
                proposal_size_max: figures.proposal_max,
            });
            let peer_state = match role {
                Role::Looking => "looking - election",
                Role::Leading => "leading - broadcast",
                Role::Following { .. } => "following - broadcast",
                Role::Observing { .. } => "observing - broadcast",
            };
            let _ = reply.try_send(CoreReport {
                session_buckets: self
                    .machine
                    .session_buckets()
                    .into_iter()
                    .map(|(d, ids)| (d + offset, ids))
                    .collect(),
                last_zxid: self.machine.last_zxid(),
                log: self.wal().stats(),
                batch_records: self.wal().batch_records(),
                fsync_times: self.wal().fsync_times(),
                observers: match &self.links {
                    Some(links) => self
                        .machine
                        .synced_observers()
                        .into_iter()
                        .filter_map(|sid| links.info(sid))
                        .collect(),
                    None => Vec::new(),
                },
                election_times: self.machine.election_times(std::time::Instant::now()),
                cpu_seconds: crate::metrics::process::thread_cpu_seconds(),
                mode: match (self.machine.ensemble(), self.role) {
                    _ if self.read_only => ServerMode::ReadOnly,
                    (false, _) => ServerMode::Standalone,
                    (true, Role::Leading) => ServerMode::Leader,
                    (true, Role::Following { .. }) => ServerMode::Follower,
                    (true, Role::Observing { .. }) => ServerMode::Observer,
                    (true, Role::Looking) => ServerMode::Standalone,
                },
                serving: self.serving || self.read_only,
                peer_state: Some(peer_state.to_string()),
                leader,
                leader_id: match role {
                    Role::Looking => None,
                    Role::Leading => self.cfg.my_id,
                    Role::Following { leader } | Role::Observing { leader } => Some(leader),
                },
                figures,
            });
            return;
        }
        self.machine.handle(now, msg, &mut self.effects);
        self.perform().await;
    }

    /// Handles one batch: everything waiting, one log flush, then the commits to the shards.
    /// False once the shards have gone.
    async fn batch(&mut self, first: Option<ToCore>, rx: &Receiver<ToCore>) -> bool {
        let mut handled = 0;
        if let Some(first) = first {
            self.handle(first).await;
            handled = 1;
        }
        while handled < BATCH_MAX {
            // Bounded in bytes too: a batch of large writes holds its records in memory until
            // the flush (`limits`).
            if self.wal().pending_bytes() >= BATCH_BYTES {
                break;
            }
            match rx.try_recv() {
                Ok(m) => self.handle(m).await,
                Err(_) => break,
            }
            handled += 1;
        }
        // Group commit: everything this batch proposed becomes durable with one write and
        // one fdatasync, before any shard (and so any client) hears of it. Requests that
        // arrive meanwhile wait in the channel and form the next batch. While stalled, the
        // same write is retried when its backoff has passed.
        let now = self.now().mono_ms;
        if self.machine.flush_due(now) {
            let result = self.wal().flush().await;
            let now = self.now().mono_ms;
            let was_stalled = self.machine.retry_at().is_some();
            let ok = result.is_ok();
            let stalled_ms = self.machine.flushed(now, ok, &mut self.effects);
            match result {
                Err(e) if was_stalled => debug!("transaction log write failed again: {e}"),
                Err(e) => {
                    warn!("transaction log write failed, refusing writes until it succeeds: {e}")
                }
                Ok(()) => {
                    if let Some(stalled_ms) = stalled_ms {
                        info!(stalled_ms, "transaction log writable again, taking writes");
                    }
                }
            }
            self.perform().await;
        }
        // Published before any shard hears of the commits (`Shared::committed`).
        self.shared
            .committed
            .store(self.machine.committed(), Ordering::SeqCst);
        self.machine.release(&mut self.effects);
        for e in self.effects.drain(..) {
            let Effect::Send { shard, msg } = e else {
                unreachable!("release returns sends only")
            };
            if self.shards[shard].send(msg).await.is_err() {
                return false;
            }
        }
        true
    }

    /// The admin server's `restore` (`ToCore::Pause`): called after a batch, when everything
    /// it handled is durable (or, if the log is stalled, refused). Stops a snapshot in
    /// progress, so no writer renames a snapshot into place or purges under the restore, then
    /// answers with the committed zxid and takes no message until `reply`'s receiver goes: the
    /// restore failed and the server goes on, or it succeeded and the process was replaced.
    async fn hold(&mut self, reply: Sender<CoreReport>) {
        if let Some(job) = self.snap.take() {
            job.abort();
        }
        while super::snapshots::writers_running() {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        let committed = self.machine.committed();
        info!(
            zxid = format!("{committed:#x}"),
            "write core paused for a restore"
        );
        let report = CoreReport {
            last_zxid: committed,
            ..CoreReport::default()
        };
        if reply.send(report).await.is_ok() {
            // Held until the admin server lets go (a restore takes seconds at most; the
            // channel has no wait for its receiver's drop, so look every few ms).
            while !reply.is_closed() {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
        }
        info!("write core resumed: the restore did not happen");
    }

    /// Starts a snapshot every `snapCount/2..snapCount` txns (randomised, as ZooKeeper does so
    /// that servers of an ensemble do not snapshot together) and advances one in progress.
    async fn snapshot_step(&mut self) {
        // A snapshot that failed (its writer thread counts it) is tried again later, whatever
        // the txn count says: until one succeeds, recovery replays an ever longer log.
        let failed = super::snapshots::STATS.failed.load(Ordering::Relaxed);
        if failed != self.snap_failed_seen {
            self.snap_failed_seen = failed;
            self.snap_retry_at = Some(Instant::now() + SNAPSHOT_RETRY);
        }
        let retry = self.snap_retry_at.is_some_and(|t| Instant::now() >= t);
        // A snapshot starts between batches, from a tree whose every txn is durable here
        // (`Machine::snapshot_ready`), whatever is in flight: waiting until nothing is (every
        // proposal committed, every logged one applied) left a member under a steady pipelined
        // load with a snapshot every few hundred thousand records instead of every snapCount,
        // and recovery replaying all of them.
        if self.snap.is_none()
            && (self.since_snap >= self.snap_at || retry)
            && self.machine.snapshot_ready()
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
            match Job::start(&self.machine.tree(), retention) {
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
            if job.step(&self.machine.tree()) {
                self.snap = None;
            }
            // Let the shards sharing this executor run between steps.
            glommio::yield_if_needed().await;
        }
    }
}

/// Listens on this member's election port and dials the members with lower sids; every link
/// event goes into the write core's queue, in order, where the machine filters stale
/// generations (`zab::link`).
fn start_links(cfg: &Config, q: Quorum) -> Links {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let me = cfg.my_id.expect("an ensemble member has a myid");
    // SAFETY: the fd comes from a live std listener this executor now owns.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(q.listener.into_raw_fd()) };
    let (tx, rx) = async_channel::unbounded();
    let links = match q.tls {
        Some(tls) => Links::start_secure(me, listener, q.members, tx, tls),
        None => Links::start(me, listener, q.members, tx),
    };
    let to_core = q.to_core;
    glommio::spawn_local(async move {
        while let Ok(ev) = rx.recv().await {
            if to_core.send(ToCore::Link(ev)).await.is_err() {
                return;
            }
        }
    })
    .detach();
    links
}
