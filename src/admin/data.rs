//! The facts a four-letter word reports, as plain structs: the runtime gathers them from
//! every shard and the write core, and `render` turns them into text. Also the small
//! arithmetic ZooKeeper does on them before printing (latency min/avg/max, `lop=` names).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::java::round_half_up_4;
use super::{full_version, ENV_NA, INTEREST_OPS_READ, LAST_OP_NONE, TRACE_MASK_DEFAULT};

/// `getState()` of ZooKeeper's server classes; printed as `Mode:` and `zk_server_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerMode {
    #[default]
    Standalone,
    Leader,
    Follower,
    Observer,
    ReadOnly,
}

impl ServerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerMode::Standalone => "standalone",
            ServerMode::Leader => "leader",
            ServerMode::Follower => "follower",
            ServerMode::Observer => "observer",
            ServerMode::ReadOnly => "read-only",
        }
    }

    /// Members of an ensemble (`QuorumZooKeeperServer` subclasses) print more in `conf`
    /// and `mntr`; read-only servers are quorum peers too, but print less.
    pub(super) fn is_quorum_member(self) -> bool {
        matches!(
            self,
            ServerMode::Leader | ServerMode::Follower | ServerMode::Observer
        )
    }
}

/// Min/avg/max of request latencies in milliseconds, like ZooKeeper's
/// `AvgMinMaxCounter`. Shards keep one each; `merge` combines them for a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub total_ms: u64,
    /// `u64::MAX` while empty.
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            count: 0,
            total_ms: 0,
            min_ms: u64::MAX,
            max_ms: 0,
        }
    }
}

impl Latency {
    pub fn record(&mut self, ms: u64) {
        self.count += 1;
        self.total_ms = self.total_ms.saturating_add(ms);
        self.min_ms = self.min_ms.min(ms);
        self.max_ms = self.max_ms.max(ms);
    }

    pub fn merge(&mut self, other: &Latency) {
        self.count += other.count;
        self.total_ms = self.total_ms.saturating_add(other.total_ms);
        self.min_ms = self.min_ms.min(other.min_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// 0 while empty, as ZooKeeper prints.
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min_ms
        }
    }

    pub fn max(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.max_ms
        }
    }

    /// The server-wide average: a double rounded half-up to 4 decimals (ZooKeeper's
    /// `AvgMinMaxCounter.getAvg`).
    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        round_half_up_4(self.total_ms as f64 / self.count as f64)
    }

    /// A connection's average: integer division (ZooKeeper's `ServerCnxn.getAvgLatency`).
    pub fn avg_truncated(&self) -> u64 {
        self.total_ms.checked_div(self.count).unwrap_or(0)
    }
}

/// corral's storage figures, which `srvr` prints after every line ZooKeeper prints (`stat` does
/// not). The labels are chosen so that no known `srvr` reader mistakes them for its own: none
/// contains `Mode`, `Zxid`, `Latency` or `Proposal sizes` (Metricbeat matches those anywhere in
/// a line), and none starts like a standard line (zkServer.sh greps `Mode`; check_zookeeper.py
/// and go-zookeeper's `FLWSrvr` match from the start of a line). docs/decisions.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageFigures {
    pub log_dir_bytes: u64,
    pub snapshot_dir_bytes: u64,
    pub snapshot_count: u64,
    pub newest_snapshot_bytes: u64,
    pub fsyncs: u64,
    pub fsync_time_ms: u64,
}

/// Extra gauges a leader reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderStats {
    pub learners: u64,
    pub synced_followers: u64,
    pub synced_non_voting_followers: u64,
    pub synced_observers: u64,
    pub pending_syncs: u64,
    pub leader_uptime_ms: u64,
    /// Proposal sizes in bytes; -1 until the first proposal (ZooKeeper's `BufferStats`).
    pub proposal_size_last: i64,
    pub proposal_size_min: i64,
    pub proposal_size_max: i64,
}

impl Default for LeaderStats {
    fn default() -> Self {
        LeaderStats {
            learners: 0,
            synced_followers: 0,
            synced_non_voting_followers: 0,
            synced_observers: 0,
            pending_syncs: 0,
            leader_uptime_ms: 0,
            proposal_size_last: -1,
            proposal_size_min: -1,
            proposal_size_max: -1,
        }
    }
}

/// Server-wide numbers for `srvr`, `stat`, `mntr`, `conf`, `isro`, `cons`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    /// The full version string; `full_version()` unless a test says otherwise.
    pub version: String,
    pub mode: ServerMode,
    /// The port actually bound (matters when `clientPort=0`).
    pub client_port: u16,
    pub latency: Latency,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub num_alive_connections: u64,
    pub outstanding_requests: u64,
    /// Last processed zxid; printed as Java's `Long.toHexString`.
    pub last_zxid: i64,
    pub node_count: u64,
    /// Data plus child watches (`zk_watch_count`).
    pub watch_count: u64,
    pub ephemerals_count: u64,
    /// Sum of path lengths plus data lengths over all nodes.
    pub approximate_data_size: u64,
    /// `None` prints -1, as ZooKeeper does where the OS will not tell.
    pub open_fd_count: Option<u64>,
    pub max_fd_count: Option<u64>,
    pub uptime_ms: u64,
    pub global_sessions: u64,
    pub local_sessions: u64,
    /// Ensemble members only: e.g. `following - broadcast`, `leading - broadcast`.
    pub peer_state: Option<String>,
    /// Voting members of the ensemble (`zk_quorum_size`); quorum members only.
    pub quorum_size: Option<u64>,
    /// Present on the leader only.
    pub leader: Option<LeaderStats>,
    /// The leader this member follows or is (quorum members; `None` while looking).
    pub leader_id: Option<u64>,
    /// The ensemble configuration version (`version=` in `conf`'s membership).
    pub quorum_config_version: u64,
    /// Every client connection, for `cons` and `stat`. ZooKeeper lists the connection
    /// asking for the 4lw too (interest ops 0, recved=1).
    pub connections: Vec<ConnectionInfo>,
    /// ZooKeeper's quota gauges, `zk_<namespace>_quota_<what>_per_namespace` in `mntr`.
    pub quota_metrics: Vec<(String, i64)>,
    /// Extra `mntr` lines, keys prefixed `corral_`, printed after ZooKeeper's keys.
    pub extra_metrics: Vec<(String, String)>,
    /// Extra `srvr` lines after ZooKeeper's; `None` prints ZooKeeper's lines only.
    pub storage: Option<StorageFigures>,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            version: full_version(),
            mode: ServerMode::Standalone,
            client_port: 0,
            latency: Latency::default(),
            packets_received: 0,
            packets_sent: 0,
            num_alive_connections: 0,
            outstanding_requests: 0,
            last_zxid: 0,
            node_count: 0,
            watch_count: 0,
            ephemerals_count: 0,
            approximate_data_size: 0,
            open_fd_count: None,
            max_fd_count: None,
            uptime_ms: 0,
            global_sessions: 0,
            local_sessions: 0,
            peer_state: None,
            quorum_size: None,
            leader: None,
            leader_id: None,
            quorum_config_version: 0,
            connections: Vec::new(),
            quota_metrics: Vec::new(),
            extra_metrics: Vec::new(),
            storage: None,
        }
    }
}

/// One client connection as `cons` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub remote: SocketAddr,
    /// `INTEREST_OPS_READ` (1) normally; 0 for the connection running the 4lw.
    pub interest_ops: u32,
    pub outstanding_requests: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// 0 until a session is established; then `cons` prints the long form.
    pub session_id: u64,
    /// ZooKeeper's 4-letter op abbreviation (see `last_op_name`).
    pub last_op: &'static str,
    /// Wall-clock milliseconds since the epoch.
    pub established_ms: u64,
    pub session_timeout_ms: u32,
    /// -1 until the first request with a non-negative xid.
    pub last_cxid: i64,
    /// -1 until the first response.
    pub last_zxid: i64,
    /// Time of the last response, in the runtime's millisecond clock.
    pub last_response_ms: u64,
    pub last_latency_ms: u64,
    pub latency: Latency,
}

impl ConnectionInfo {
    /// A connection with ZooKeeper's reset values (`ServerCnxn.resetStats`).
    pub fn new(remote: SocketAddr, established_ms: u64) -> ConnectionInfo {
        ConnectionInfo {
            remote,
            interest_ops: INTEREST_OPS_READ,
            outstanding_requests: 0,
            packets_received: 0,
            packets_sent: 0,
            session_id: 0,
            last_op: LAST_OP_NONE,
            established_ms,
            session_timeout_ms: 0,
            last_cxid: -1,
            last_zxid: -1,
            last_response_ms: 0,
            last_latency_ms: 0,
            latency: Latency::default(),
        }
    }
}

/// Watches for `wchs`, `wchc`, `wchp`. ZooKeeper's three commands cover data watches
/// only (`exists`/`getData`, persistent ones included), not child watches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchSummary {
    /// Sessions with at least one watch.
    pub connections: u64,
    /// Distinct watched paths.
    pub paths: u64,
    /// Total (session, path) pairs.
    pub total: u64,
    /// `wchc`: session id -> watched paths.
    pub by_session: BTreeMap<u64, Vec<String>>,
    /// `wchp`: path -> session ids watching it.
    pub by_path: BTreeMap<String, Vec<u64>>,
}

/// One session-expiry bucket: everything expiring at the same tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryBucket {
    /// Wall-clock milliseconds since the epoch.
    pub expire_at_ms: u64,
    pub session_ids: Vec<u64>,
}

/// One connection-idle bucket (ZooKeeper's NIO factory only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionBucket {
    pub expire_at_ms: u64,
    pub connections: Vec<ConnectionInfo>,
}

/// Data for `dump`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DumpInfo {
    pub session_buckets: Vec<ExpiryBucket>,
    /// Session id -> ephemeral node paths it owns.
    pub ephemerals: BTreeMap<u64, Vec<String>>,
    /// `None` prints nothing under `Connections dump:`, as ZooKeeper's Netty factory.
    pub connection_buckets: Option<Vec<ConnectionBucket>>,
}

/// Data for `dirs` and the directory lines of `conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirsInfo {
    /// The directory holding snapshots (ZooKeeper prints `<dataDir>/version-2`); empty
    /// means `Config::data_dir`.
    pub snap_dir: PathBuf,
    /// The directory holding the transaction log; empty means `Config::log_dir()`.
    pub log_dir: PathBuf,
    /// Bytes, recursively (see `probe::dir_size_bytes`).
    pub datadir_size: u64,
    pub logdir_size: u64,
}

/// Data for `envi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvInfo {
    pub host_name: String,
    pub os_name: String,
    pub os_arch: String,
    pub os_version: String,
    pub user_name: String,
    pub user_home: String,
    pub user_dir: String,
    pub memory_free_mb: Option<u64>,
    pub memory_max_mb: Option<u64>,
    pub memory_total_mb: Option<u64>,
    /// Printed after ZooKeeper's keys, e.g. `corral.version`.
    pub extra: Vec<(String, String)>,
}

impl Default for EnvInfo {
    fn default() -> Self {
        let na = || ENV_NA.to_string();
        EnvInfo {
            host_name: na(),
            os_name: na(),
            os_arch: na(),
            os_version: na(),
            user_name: na(),
            user_home: na(),
            user_dir: na(),
            memory_free_mb: None,
            memory_max_mb: None,
            memory_total_mb: None,
            extra: Vec::new(),
        }
    }
}

/// One entry of the tree-digest history (`hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub digest: i64,
}

/// Everything `render` may read. Fill what `FourLetter::needs` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminData {
    /// False while no server is up (e.g. during leader election): most commands then
    /// answer `NOT_SERVING`.
    pub serving: bool,
    pub stats: ServerStats,
    pub watches: WatchSummary,
    pub dump: DumpInfo,
    pub dirs: DirsInfo,
    pub env: EnvInfo,
    pub digests: Vec<ZxidDigest>,
    /// The current mask for `gtmk`; the mask just set for `stmk`.
    pub trace_mask: i64,
    /// What only a metrics scrape prints (src/metrics).
    pub metrics: crate::metrics::Samples,
    /// A leader's links to its synced observers (`observers`).
    pub observers: Vec<ObserverInfo>,
}

/// One synced observer as the leader sees its link (ZooKeeper's
/// `LearnerHandler.getLearnerHandlerInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserverInfo {
    pub remote: Option<SocketAddr>,
    pub sid: u64,
    /// Wall-clock ms when the link came up.
    pub established_ms: u64,
    pub queued_packets: u64,
    pub queued_packets_size: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub requests: u64,
    pub last_zxid: i64,
}

impl Default for AdminData {
    fn default() -> Self {
        AdminData {
            serving: true,
            stats: ServerStats::default(),
            watches: WatchSummary::default(),
            dump: DumpInfo::default(),
            dirs: DirsInfo::default(),
            env: EnvInfo::default(),
            digests: Vec::new(),
            trace_mask: TRACE_MASK_DEFAULT,
            metrics: crate::metrics::Samples::default(),
            observers: Vec::new(),
        }
    }
}

/// ZooKeeper's abbreviation of an opcode for a connection's `lop=` (FinalRequestProcessor).
pub fn last_op_name(opcode: i32) -> &'static str {
    match opcode {
        11 => "PING",
        -10 => "SESS",
        14 => "MULT",
        22 => "MLTR",
        1 | 15 | 19 | 21 => "CREA",
        2 | 20 => "DELE",
        5 => "SETD",
        16 => "RECO",
        7 => "SETA",
        -11 => "CLOS",
        9 => "SYNC",
        13 => "CHEC",
        3 => "EXIS",
        4 => "GETD",
        101 => "SETW",
        105 => "STW2",
        106 => "ADDW",
        6 => "GETA",
        8 | 12 => "GETC",
        104 => "GETACN",
        17 => "CHKW",
        18 => "REMW",
        107 => "HOMI",
        103 => "GETE",
        _ => LAST_OP_NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::java::java_double;

    #[test]
    fn latency_math() {
        let mut l = Latency::default();
        assert_eq!(
            (l.min(), l.max(), l.avg(), l.avg_truncated()),
            (0, 0, 0.0, 0)
        );
        l.record(1);
        l.record(2);
        l.record(2);
        assert_eq!((l.min(), l.max(), l.avg_truncated()), (1, 2, 1));
        assert_eq!(java_double(l.avg()), "1.6667");
        let mut other = Latency::default();
        other.record(10);
        l.merge(&other);
        assert_eq!((l.min(), l.max(), l.count, l.total_ms), (1, 10, 4, 15));
        assert_eq!(java_double(l.avg()), "3.75");
        l.merge(&Latency::default());
        assert_eq!(l.min(), 1);
    }

    #[test]
    fn last_ops() {
        assert_eq!(last_op_name(11), "PING");
        assert_eq!(last_op_name(-10), "SESS");
        assert_eq!(last_op_name(21), "CREA");
        assert_eq!(last_op_name(12), "GETC");
        assert_eq!(last_op_name(104), "GETACN");
        assert_eq!(last_op_name(999), "NA");
    }
}
