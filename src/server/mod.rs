//! The runtime: the only part of corral that knows about glommio, sockets and cores.
//!
//! Layout: one glommio executor per shard, each pinned to one CPU of the process's affinity
//! mask. Every shard binds the client port with SO_REUSEPORT, so the kernel spreads connections
//! over shards. The write core (Zab and the log) runs on executor 0 in its own task queue,
//! beside shard 0, or from 3 CPUs up on an executor and CPU of its own (`corral.zabCore`); with
//! one CPU everything shares one executor. In an ensemble the links to the other members
//! (`quorum`) run on the write core's executor.
//!
//! Cross-core traffic is typed messages over bounded channels:
//! shard -> write core: [`ToCore`] (writes with the session's auth ids, session connects,
//! activity touches); write core -> shard: [`ToShard`] (batches of committed txns, in zxid
//! order, shared by all shards through one `Arc`; plus per-connection answers that must follow
//! the commits before them, which the per-shard FIFO guarantees).
//!
//! A shard's modules import one way, each only from those before it (no cycles):
//! `frames` (pure encodings) <- `conn` (a connection's state) <- `shard` (the shard's state)
//! <- `read` (answering reads) <- `request` (dispatch, in-order answers) <- `commit` (applying
//! the write core's messages) and `serve` (a connection's tasks, using `fourlw`) <- `accept`
//! <- `startup`.

mod accept;
mod admin_http;
pub(crate) mod claim;
mod commit;
mod conn;
pub(crate) mod core;
mod fourlw;
pub use fourlw::Gather;
mod frames;
pub mod quorum;
mod read;
mod request;
pub mod secure;
mod serve;
pub(crate) mod shard;
pub(crate) mod snapshots;
mod startup;
mod stop;
pub mod wal;

use std::sync::Arc;

use crate::config::Config;

pub use crate::write::{Commit, Origin, ToShard};

/// What a shard sends the write core; a four-letter word's question carries the channel its
/// answer goes back on.
pub type ToCore = crate::write::ToCore<async_channel::Sender<CoreReport>>;

/// One shard's answer to a four-letter word's question: its counters, connections and
/// watches. Gathered from every shard on demand, off the request path.
#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    pub last_zxid: i64,
    pub node_count: usize,
    pub ephemerals: usize,
    pub data_size: u64,
    pub sessions: usize,
    pub received: u64,
    pub sent: u64,
    pub outstanding: usize,
    pub latency: crate::admin::Latency,
    pub connections: Vec<crate::admin::ConnectionInfo>,
    pub watch_count: usize,
    pub watches_by_session: Vec<(i64, Vec<String>)>,
    pub watches_by_path: Vec<(String, Vec<i64>)>,
    /// Filled by shard 0 only (every replica holds the same).
    pub ephemerals_by_session: Vec<(i64, Vec<String>)>,
    /// ZooKeeper's per-namespace quota gauges (`quota::namespace_metrics`).
    pub quota_metrics: Vec<(String, i64)>,
    /// The shard's own figures for /metrics.
    pub metrics: crate::metrics::ShardSample,
}

/// The write core's answer to a four-letter word.
#[derive(Debug, Clone, Default)]
pub struct CoreReport {
    /// Session expiry buckets: (wall-clock deadline ms, session ids), for `dump`.
    pub session_buckets: Vec<(u64, Vec<i64>)>,
    pub last_zxid: i64,
    pub log: wal::WalStats,
    /// Records per log flush, for /metrics.
    pub batch_records: crate::metrics::Summary,
    /// fdatasync and election durations (µs), for /metrics' `fsynctime` and `election_time`.
    pub fsync_times: crate::metrics::Summary,
    pub election_times: crate::metrics::Summary,
    /// The links to the synced observers (a leader's; the admin server's `observers`).
    pub observers: Vec<quorum::LinkInfo>,
    /// CPU time of the write core's thread, seconds (executor 0's when it shares shard 0's).
    pub cpu_seconds: Option<f64>,
    /// `Mode:` (standalone, or the member's role in an ensemble) and whether it serves.
    pub mode: crate::admin::ServerMode,
    pub serving: bool,
    /// `mntr`'s peer state and leader figures (ensemble members only).
    pub peer_state: Option<String>,
    pub leader: Option<crate::admin::LeaderStats>,
    /// The leader's server id, once there is one (ensemble members).
    pub leader_id: Option<u64>,
    pub figures: crate::write::Figures,
}

/// A question for a shard.
pub enum AdminQuery {
    /// Every shard's report; `reset` clears its counters (srst), `reset_connections` its
    /// connections' (crst).
    Report {
        reply: async_channel::Sender<ShardReport>,
        reset: bool,
        reset_connections: bool,
    },
    /// The root's ACL once the replica has applied `at_least` (the admin server's
    /// authorization; asked of shard 0).
    RootAcl {
        at_least: i64,
        reply: async_channel::Sender<Vec<crate::proto::records::Acl>>,
    },
    /// A copy of the replica once it has applied `at_least` (the admin server's snapshot).
    Tree {
        at_least: i64,
        reply: async_channel::Sender<crate::tree::DataTree>,
    },
}

/// What every core can reach.
pub struct Shared {
    /// The other shards' admin channels.
    pub admin: Vec<async_channel::Sender<AdminQuery>>,
    /// The highest zxid the write core has committed (published before the commit is sent).
    /// A shard serves a read only once its replica has applied at least this much, so a read
    /// that starts after any client saw a write's reply sees that write, on every shard: the
    /// linearizable reads a standalone ZooKeeper gives. One atomic load per read; no lock.
    pub committed: std::sync::atomic::AtomicI64,
}

/// A handle for code off the shards (the HTTP admin server's and the metrics endpoint's
/// threads) to ask the running server for its figures, as a four-letter word does. Cheap to
/// clone; every call crosses to the shards and the write core over their admin channels.
#[derive(Clone)]
pub struct Inspector {
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    to_core: async_channel::Sender<ToCore>,
}

impl Inspector {
    pub(crate) fn new(
        cfg: Arc<Config>,
        shared: Arc<Shared>,
        to_core: async_channel::Sender<ToCore>,
    ) -> Inspector {
        Inspector {
            cfg,
            shared,
            to_core,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every shard's and the write core's figures, merged. Blocks the calling thread (never
    /// call it on a shard's executor: await [`fourlw::gather`] there). Once the server is
    /// stopping, the answer holds what could still be gathered.
    pub fn gather(&self, ask: Gather) -> crate::admin::AdminData {
        futures_lite::future::block_on(fourlw::gather(&self.cfg, &self.shared, &self.to_core, ask))
    }
}

/// Bound of every cross-core queue (messages, not requests: a commit message carries a batch).
pub const CHANNEL_CAPACITY: usize = 4096;

/// Recovers the data from the log, starts the server and blocks until it stops.
pub fn run(cfg: Config) -> std::io::Result<()> {
    startup::start(Arc::new(cfg))
}

/// Where the transaction log lives: `<dataLogDir>/wal`.
pub fn log_dir(cfg: &Config) -> std::path::PathBuf {
    cfg.log_dir().join("wal")
}
