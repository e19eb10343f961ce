//! Four-letter words: ask every shard (and the write core) for its numbers, merge them, and
//! render ZooKeeper's text (`crate::admin`). Runs on the shard that accepted the asking
//! connection; nothing here is on the request path.
//!
//! The trace mask is one value per process, as ZooKeeper's `ZooTrace` keeps it: `stmk` sets it
//! from any shard, `gtmk` on any shard reads it. corral has no trace log it filters; the mask
//! is kept so tools that set and read it see ZooKeeper's answers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use async_channel::Sender;

use super::shard::Shard;
use super::wal::WalStats;
use super::{snapshots, AdminQuery, CoreReport, ShardReport, Shared, ToCore};
use crate::admin::{self, FourLetter};
use crate::config::Config;
use crate::watch::ConnId;

static TRACE_MASK: AtomicI64 = AtomicI64::new(admin::TRACE_MASK_DEFAULT);

/// Sets the trace mask as `stmk` does (the admin server's `set_trace_mask`).
pub(super) fn set_trace_mask(mask: i64) {
    TRACE_MASK.store(mask, Ordering::Relaxed);
}

/// Asks every shard for its report and renders a four-letter word. `new_mask` is the mask an
/// allowed `stmk` carried.
pub(super) async fn four_letter(
    cfg: &Config,
    shared: &Shared,
    to_core: &Sender<ToCore>,
    cmd: FourLetter,
    new_mask: Option<i64>,
) -> String {
    if !admin::is_allowed(cmd, cfg) {
        return admin::refusal(cmd);
    }
    if let Some(mask) = new_mask {
        TRACE_MASK.store(mask, Ordering::Relaxed);
    }
    let ask = Gather {
        reset: matches!(cmd, FourLetter::Srst),
        reset_connections: matches!(cmd, FourLetter::Crst),
        reset_observers: false,
        // Storage figures list the log and snapshot directories: only for the two words
        // that print them (mntr is polled, but rarely: seconds apart, not per request).
        storage: matches!(cmd, FourLetter::Mntr | FourLetter::Srvr),
    };
    let mut data = gather(cfg, shared, to_core, ask).await;
    // stmk echoes the mask it was sent (ZooKeeper's SetTraceMaskCommand), gtmk the current one.
    data.trace_mask = new_mask.unwrap_or_else(|| TRACE_MASK.load(Ordering::Relaxed));
    admin::render(cmd, &data, cfg)
}

/// What a [`gather`] asks for beyond the counters every answer has.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gather {
    /// Clear the shards' counters after reporting them (`srst`, `/commands/stat_reset`).
    pub reset: bool,
    /// Clear every connection's counters after reporting them (`crst`,
    /// `/commands/connection_stat_reset`).
    pub reset_connections: bool,
    /// Clear the counters of the links to synced observers first
    /// (`/commands/observer_connection_stat_reset`).
    pub reset_observers: bool,
    /// Also list the log and snapshot directories (`corral_log_*`, `corral_snapshot_*`).
    pub storage: bool,
}

/// Asks every shard and the write core for their figures and merges them: what a four-letter
/// word, an admin command or a metrics scrape prints. Runs on any thread: on a shard it is
/// awaited; the HTTP endpoints' threads block on it (see [`super::Inspector`]).
pub(crate) async fn gather(
    cfg: &Config,
    shared: &Shared,
    to_core: &Sender<ToCore>,
    ask: Gather,
) -> admin::AdminData {
    let (tx, rx) = async_channel::bounded(shared.admin.len());
    for a in &shared.admin {
        let _ = a
            .send(AdminQuery::Report {
                reply: tx.clone(),
                reset: ask.reset,
                reset_connections: ask.reset_connections,
            })
            .await;
    }
    drop(tx);
    let mut reports = Vec::new();
    while let Ok(r) = rx.recv().await {
        reports.push(r);
    }
    let mut data = admin_data(&reports, cfg);
    data.trace_mask = TRACE_MASK.load(Ordering::Relaxed);
    if ask.reset_observers {
        let _ = to_core.send(ToCore::ResetObserverStats).await;
    }
    let (tx, rx) = async_channel::bounded(1);
    if to_core.send(ToCore::Report(tx)).await.is_ok() {
        if let Ok(core) = rx.recv().await {
            metrics_totals(&mut data.metrics, &core);
            data.stats.mode = core.mode;
            data.serving = core.serving;
            data.stats.peer_state = core.peer_state;
            data.stats.quorum_size =
                (core.mode != admin::ServerMode::Standalone).then(|| cfg.voting_servers() as u64);
            data.stats.leader = core.leader;
            data.observers = core
                .observers
                .iter()
                .map(|l| admin::ObserverInfo {
                    remote: l.remote,
                    sid: l.sid,
                    established_ms: l.established_ms,
                    queued_packets: l.queued_packets,
                    queued_packets_size: l.queued_bytes,
                    packets_received: l.packets_received,
                    packets_sent: l.packets_sent,
                    requests: l.requests,
                    last_zxid: l.last_zxid,
                })
                .collect();
            data.stats.leader_id = core.leader_id;
            let f = core.figures;
            data.stats.local_sessions = f.local_sessions;
            if core.mode != admin::ServerMode::Standalone {
                let m = |k: &str, v: u64| (k.to_string(), v.to_string());
                data.stats.extra_metrics.extend([
                    m("corral_elections", f.elections),
                    m("corral_last_election_ms", f.last_election_ms),
                    m("corral_max_election_ms", f.max_election_ms),
                    m("corral_synced_by_diff", f.synced_by_diff),
                    m("corral_synced_by_trunc", f.synced_by_trunc),
                    m("corral_synced_by_snap", f.synced_by_snap),
                ]);
            }
            data.dump.session_buckets = core
                .session_buckets
                .into_iter()
                .map(|(at, ids)| admin::ExpiryBucket {
                    expire_at_ms: at,
                    session_ids: ids.into_iter().map(|i| i as u64).collect(),
                })
                .collect();
            if ask.storage {
                storage_figures(&mut data.stats, cfg, core.last_zxid, &core.log);
            }
        }
    }
    data
}

/// The log's and snapshots' figures: `corral_log_*` and `corral_snapshot_*` for mntr, the
/// storage lines of srvr.
fn storage_figures(st: &mut admin::ServerStats, cfg: &Config, last_zxid: i64, log: &WalStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let log_dir_bytes = admin::probe::dir_size_bytes(&super::log_dir(cfg));
    let disk = snapshots::on_disk(&snapshots::snapshot_dir(&cfg.data_dir));
    let taken = &snapshots::STATS;
    let m = |k: &str, v: &dyn ToString| (k.to_string(), v.to_string());
    st.extra_metrics.extend([
        m("corral_last_committed_zxid", &last_zxid),
        m("corral_log_flushes", &log.flushes),
        m("corral_log_fsyncs", &log.fsyncs),
        m(
            "corral_log_fsync_time_us_total",
            &log.fsync_time.as_micros(),
        ),
        m("corral_log_last_fsync_us", &log.last_fsync.as_micros()),
        m("corral_log_bytes_written", &log.bytes_written),
        m("corral_log_fill_stalls", &log.fill_stalls),
        m("corral_log_failed_flushes", &log.failed_flushes),
        m("corral_log_failing", &(log.failing as u8)),
        m("corral_log_unfilled_writes", &log.unfilled_writes),
        m("corral_log_prealloc_failures", &log.prealloc_failures),
        m("corral_log_dir_bytes", &log_dir_bytes),
        m("corral_snapshot_count", &disk.count),
        m("corral_snapshot_newest_zxid", &disk.newest_zxid),
        m("corral_snapshot_newest_bytes", &disk.newest_bytes),
        m("corral_snapshot_dir_bytes", &disk.dir_bytes),
        m("corral_snapshot_taken", &taken.taken.load(Relaxed)),
        m("corral_snapshot_failed", &taken.failed.load(Relaxed)),
        m(
            "corral_snapshot_last_duration_ms",
            &(taken.last_duration_us.load(Relaxed) / 1000),
        ),
    ]);
    st.storage = Some(admin::StorageFigures {
        log_dir_bytes,
        snapshot_dir_bytes: disk.dir_bytes,
        snapshot_count: disk.count,
        newest_snapshot_bytes: disk.newest_bytes,
        fsyncs: log.fsyncs,
        fsync_time_ms: log.fsync_time.as_millis() as u64,
    });
}

/// The count-and-sum figures only /metrics prints (ZooKeeper's `fsynctime`, `snapshottime`,
/// `election_time`, in ms) and the group commit's batch sizes.
fn metrics_totals(m: &mut crate::metrics::Samples, core: &CoreReport) {
    m.fsync = Some(core.fsync_times.clone());
    m.snapshot = Some(
        snapshots::TIMES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(std::time::Instant::now()),
    );
    // A standalone server has no elections (its ensemble of one elects itself at start); it
    // still exports the summary, empty, as ZooKeeper does, so alerts on its rate see data.
    m.election = Some(if core.mode == admin::ServerMode::Standalone {
        crate::metrics::Summary::default()
    } else {
        core.election_times.clone()
    });
    m.batch_records = Some(core.batch_records.clone());
    m.core_cpu_seconds = core.cpu_seconds;
}

/// Merges the shards' reports into what the four-letter words print.
fn admin_data(reports: &[ShardReport], cfg: &Config) -> admin::AdminData {
    let mut d = admin::AdminData::default();
    let st = &mut d.stats;
    st.client_port = cfg.client_port;
    st.open_fd_count = admin::probe::open_fd_count();
    st.max_fd_count = admin::probe::max_fd_count();
    st.uptime_ms = START.elapsed().as_millis() as u64;
    for r in reports {
        // Replicas may lag each other by a batch; report the most advanced.
        if r.last_zxid >= st.last_zxid {
            st.last_zxid = r.last_zxid;
            st.node_count = r.node_count as u64;
            st.ephemerals_count = r.ephemerals as u64;
            st.approximate_data_size = r.data_size;
            st.global_sessions = r.sessions as u64;
            st.quota_metrics = r.quota_metrics.clone();
        }
        st.latency.merge(&r.latency);
        st.packets_received += r.received;
        st.packets_sent += r.sent;
        st.outstanding_requests += r.outstanding as u64;
        st.num_alive_connections += r.connections.len() as u64;
        st.connections.extend(r.connections.iter().cloned());
        st.watch_count += r.watch_count as u64;
        for (sid, paths) in &r.watches_by_session {
            let e = d.watches.by_session.entry(*sid as u64).or_default();
            e.extend(paths.iter().cloned());
        }
        for (path, sids) in &r.watches_by_path {
            let e = d.watches.by_path.entry(path.clone()).or_default();
            e.extend(sids.iter().map(|s| *s as u64));
        }
        for (sid, paths) in &r.ephemerals_by_session {
            d.dump.ephemerals.insert(*sid as u64, paths.clone());
        }
        d.metrics.shards.push(r.metrics.clone());
    }
    d.metrics.shards.sort_by_key(|s| s.shard);
    for v in d.watches.by_session.values_mut() {
        v.sort();
        v.dedup();
    }
    for v in d.watches.by_path.values_mut() {
        v.sort();
        v.dedup();
    }
    d.watches.connections = d.watches.by_session.len() as u64;
    d.watches.paths = d.watches.by_path.len() as u64;
    d.watches.total = d.watches.by_path.values().map(|v| v.len() as u64).sum();
    d.dirs.datadir_size = admin::probe::dir_size_bytes(&cfg.data_dir);
    d.dirs.logdir_size = admin::probe::dir_size_bytes(cfg.log_dir());
    d.env = admin::probe::env_info();
    d
}

/// When the process started serving, for `uptime`: one value for every thread that asks (the
/// shards and the HTTP endpoints' threads), set by [`mark_start`] at startup.
static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Fixes the uptime's origin; called once by startup, before any shard runs.
pub(super) fn mark_start() {
    std::sync::LazyLock::force(&START);
}

/// A shard's answer to a four-letter word's question.
impl Shard {
    pub(super) fn report(&mut self, reset: bool, reset_connections: bool) -> ShardReport {
        if reset {
            self.received = 0;
            self.sent = 0;
            self.latency = admin::Latency::default();
        }
        if reset_connections {
            for c in self.conns.values() {
                c.borrow_mut().reset_stats();
            }
        }
        let session_of = |conn: ConnId| {
            self.conns
                .get(&conn)
                .map(|c| c.borrow().session_id())
                .unwrap_or(0)
        };
        let tree = self.tree.borrow();
        let now = Instant::now();
        let metrics = crate::metrics::ShardSample {
            shard: self.id,
            connections: self.conns.len() as u64,
            outstanding_requests: self
                .conns
                .values()
                .map(|c| c.borrow().outstanding() as u64)
                .sum(),
            packets_received: self.received,
            packets_sent: self.sent,
            watches: self.watches.total() as u64,
            last_zxid: tree.last_zxid(),
            // This runs on the shard's thread.
            cpu_seconds: crate::metrics::process::thread_cpu_seconds(),
            read_latency: self.latencies.read.sample(now),
            update_latency: self.latencies.update.sample(now),
        };
        ShardReport {
            metrics,
            last_zxid: tree.last_zxid(),
            node_count: tree.node_count(),
            ephemerals: tree.ephemeral_count(),
            data_size: tree.approximate_data_size(),
            quota_metrics: crate::quota::namespace_metrics(&tree),
            received: self.received,
            sent: self.sent,
            sessions: tree.sessions().count(),
            outstanding: self.conns.values().map(|c| c.borrow().outstanding()).sum(),
            latency: self.latency,
            connections: self.conns.values().map(|c| c.borrow().info()).collect(),
            watch_count: self.watches.total(),
            watches_by_session: self
                .watches
                .by_connection()
                .into_iter()
                .map(|(c, p)| (session_of(c), p))
                .collect(),
            watches_by_path: self
                .watches
                .by_path()
                .into_iter()
                .map(|(p, cs)| (p, cs.into_iter().map(session_of).collect()))
                .collect(),
            ephemerals_by_session: if self.id == 0 {
                let mut v: Vec<(i64, Vec<String>)> = tree
                    .sessions()
                    .map(|(id, _)| (*id, tree.ephemerals_of(*id).cloned().collect()))
                    .filter(|(_, e): &(i64, Vec<String>)| !e.is_empty())
                    .collect();
                v.sort();
                v
            } else {
                Vec::new()
            },
        }
    }
}
