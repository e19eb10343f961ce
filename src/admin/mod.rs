//! Four-letter words ("4lw"): recognition, the whitelist, and byte-exact rendering of
//! ZooKeeper 3.8/3.9's text replies. Rendering only: the runtime collects the numbers
//! into the plain structs below and sends back what `render` returns, then closes.
//!
//! Wire: a 4lw shares the client port. On a fresh connection the first 4 bytes, which a
//! real client sends as its int32 length prefix, are compared with the known words
//! (`FourLetter::from_len_prefix`); on a match the server answers in text, UTF-8, and
//! closes the connection. `stmk` alone reads 8 more bytes: the new mask, a big-endian
//! int64. ZooKeeper also knows the telnet close sequence and simply closes on it.
//!
//! Every render function is pure. The `probe` module at the bottom is the only I/O here:
//! /proc readers the runtime may call to fill `ServerStats` and `EnvInfo`.
//!
//! Decisions:
//! - Version: corral reports `<ZOOKEEPER_COMPAT_VERSION>-corral-<crate version>, built on
//!   <date>` wherever ZooKeeper prints `Version.getFullVersion()` (`srvr`, `stat`,
//!   `envi`, `mntr`). Tools parse `\d+\.\d+\.\d+` from the front to gate features, and
//!   ZooKeeper's own format is `<version>-<git hash>, built on <date>`.
//! - `envi` keeps ZooKeeper's key set and order; `java.*` keys print `<NA>`, which is what
//!   ZooKeeper itself prints for a missing system property. `os.memory.*` become
//!   MemAvailable / MemTotal / process RSS. Extra keys (`corral.*`) follow.
//! - `mntr` prints ZooKeeper 3.6+'s first two keys (`zk_version`, `zk_server_state`), then
//!   the classic gauges in their 3.4 order, the leader gauges of 3.6+, then any
//!   `corral_*` lines. ZooKeeper 3.6+ also prints dozens of metrics-registry keys in hash
//!   order; monitoring tools look keys up by name, so those are left out.
//! - Dates (`dump`) are printed as Java's `Date.toString()` does, in UTC.
//! - `hash`: corral keeps no digest history yet, so it answers exactly as ZooKeeper does
//!   with `digest.enabled=false`: nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::config::{Config, PeerRole};

// ---------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------

/// The ZooKeeper release whose behaviour corral presents to clients and tools.
pub const ZOOKEEPER_COMPAT_VERSION: &str = "3.9.2";
/// Set `CORRAL_BUILD_DATE` at build time (e.g. `2025-01-31 12:00 UTC`, ZooKeeper's form).
const BUILD_DATE: &str = match option_env!("CORRAL_BUILD_DATE") {
    Some(date) => date,
    None => "unknown",
};
/// What every command but `ruok`, `envi`, `gtmk`, `stmk` answers while the server is not
/// serving (e.g. a quorum member during leader election).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";
/// ZooKeeper's default trace mask: client requests | server packets | sessions | warnings.
pub const TRACE_MASK_DEFAULT: i64 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 8);
/// `SelectionKey.OP_READ`, the interest set of an idle connection in `cons`/`stat`.
pub const INTEREST_OPS_READ: u32 = 1;
/// A connection's last operation before any response, as after ZooKeeper's `resetStats`.
pub const LAST_OP_NONE: &str = "NA";
/// Java's default for a missing system property, used for the `java.*` keys of `envi`.
const ENV_NA: &str = "<NA>";

/// `Version.getFullVersion()` for corral.
pub fn full_version() -> String {
    format!(
        "{ZOOKEEPER_COMPAT_VERSION}-corral-{}, built on {BUILD_DATE}",
        env!("CARGO_PKG_VERSION")
    )
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FourLetter {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    Gtmk,
    Ruok,
    Stmk,
    Srst,
    Srvr,
    Stat,
    Wchc,
    Wchp,
    Wchs,
    Mntr,
    Isro,
    Hash,
}

impl FourLetter {
    pub const ALL: [FourLetter; 18] = [
        FourLetter::Conf,
        FourLetter::Cons,
        FourLetter::Crst,
        FourLetter::Dirs,
        FourLetter::Dump,
        FourLetter::Envi,
        FourLetter::Gtmk,
        FourLetter::Ruok,
        FourLetter::Stmk,
        FourLetter::Srst,
        FourLetter::Srvr,
        FourLetter::Stat,
        FourLetter::Wchc,
        FourLetter::Wchp,
        FourLetter::Wchs,
        FourLetter::Mntr,
        FourLetter::Isro,
        FourLetter::Hash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FourLetter::Conf => "conf",
            FourLetter::Cons => "cons",
            FourLetter::Crst => "crst",
            FourLetter::Dirs => "dirs",
            FourLetter::Dump => "dump",
            FourLetter::Envi => "envi",
            FourLetter::Gtmk => "gtmk",
            FourLetter::Ruok => "ruok",
            FourLetter::Stmk => "stmk",
            FourLetter::Srst => "srst",
            FourLetter::Srvr => "srvr",
            FourLetter::Stat => "stat",
            FourLetter::Wchc => "wchc",
            FourLetter::Wchp => "wchp",
            FourLetter::Wchs => "wchs",
            FourLetter::Mntr => "mntr",
            FourLetter::Isro => "isro",
            FourLetter::Hash => "hash",
        }
    }

    /// Recognises a command from the first four bytes of a connection (ZooKeeper reads
    /// them as the int32 length prefix and checks it against the known words). Exact,
    /// case-sensitive bytes.
    pub fn from_len_prefix(bytes: [u8; 4]) -> Option<FourLetter> {
        FourLetter::ALL
            .into_iter()
            .find(|c| c.name().as_bytes() == bytes)
    }
}

/// ZooKeeper's whitelist rule (`FourLetterCommands.isEnabled`): `srvr` always, the rest
/// only when `4lw.commands.whitelist` names them or is `*`.
pub fn is_allowed(cmd: FourLetter, cfg: &Config) -> bool {
    cfg.four_letter_whitelist.allows(cmd.name())
}

/// The whole reply to a known but non-whitelisted command.
pub fn refusal(cmd: FourLetter) -> String {
    format!(
        "{} is not executed because it is not in the whitelist.\n",
        cmd.name()
    )
}

// ---------------------------------------------------------------------------------------
// Data the runtime fills
// ---------------------------------------------------------------------------------------

/// `getState()` of ZooKeeper's server classes; printed as `Mode:` and `zk_server_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
// Leader, Follower and Observer are rendered (and tested) already; the ensemble issue (#11)
// constructs them.
#[cfg_attr(not(test), allow(dead_code))]
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
    fn is_quorum_member(self) -> bool {
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
    /// Present on the leader only.
    pub leader: Option<LeaderStats>,
    /// The ensemble configuration version (`version=` in `conf`'s membership).
    pub quorum_config_version: u64,
    /// Every client connection, for `cons` and `stat`. ZooKeeper lists the connection
    /// asking for the 4lw too (interest ops 0, recved=1).
    pub connections: Vec<ConnectionInfo>,
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
            leader: None,
            quorum_config_version: 0,
            connections: Vec::new(),
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

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// The complete reply to `cmd`. Call only for allowed commands (see `is_allowed`,
/// `refusal`), after performing the command's side effect (`srst`, `crst`, `stmk`).
pub fn render(cmd: FourLetter, data: &AdminData, cfg: &Config) -> String {
    // ZooKeeper checks "is the server running" per command; these four do not.
    match cmd {
        FourLetter::Ruok => return "imok".to_string(),
        FourLetter::Envi => return render_envi(&data.stats.version, &data.env),
        FourLetter::Gtmk | FourLetter::Stmk => return data.trace_mask.to_string(),
        _ => {}
    }
    if !data.serving {
        return match cmd {
            FourLetter::Isro => "null".to_string(),
            FourLetter::Hash => NOT_SERVING.to_string(),
            _ => format!("{NOT_SERVING}\n"),
        };
    }
    match cmd {
        FourLetter::Ruok | FourLetter::Envi | FourLetter::Gtmk | FourLetter::Stmk => {
            unreachable!("answered above")
        }
        FourLetter::Srvr => render_srvr(&data.stats),
        FourLetter::Stat => render_stat(&data.stats),
        FourLetter::Cons => render_cons(&data.stats.connections),
        FourLetter::Conf => render_conf(&data.stats, &data.dirs, cfg),
        FourLetter::Mntr => render_mntr(&data.stats),
        FourLetter::Isro => render_isro(data.stats.mode).to_string(),
        FourLetter::Srst => "Server stats reset.\n".to_string(),
        FourLetter::Crst => "Connection stats reset.\n".to_string(),
        FourLetter::Dirs => render_dirs(&data.dirs),
        FourLetter::Dump => render_dump(&data.dump),
        FourLetter::Wchs => render_wchs(&data.watches),
        FourLetter::Wchc => render_wchc(&data.watches),
        FourLetter::Wchp => render_wchp(&data.watches),
        FourLetter::Hash => render_hash(&data.digests),
    }
}

/// `srvr`: what `zkServer.sh status` greps for `Mode:`; then corral's storage figures.
pub fn render_srvr(stats: &ServerStats) -> String {
    let mut out = render_stat_like(stats, false);
    if let Some(f) = &stats.storage {
        let _ = writeln!(out, "Log dir size: {}", f.log_dir_bytes);
        let _ = writeln!(out, "Snapshot dir size: {}", f.snapshot_dir_bytes);
        let _ = writeln!(out, "Snapshot count: {}", f.snapshot_count);
        let _ = writeln!(out, "Newest snapshot size: {}", f.newest_snapshot_bytes);
        let _ = writeln!(out, "Fsyncs: {}", f.fsyncs);
        let _ = writeln!(out, "Fsync time total (ms): {}", f.fsync_time_ms);
    }
    out
}

/// `stat`: `srvr` with a `Clients:` section before the counters.
pub fn render_stat(stats: &ServerStats) -> String {
    render_stat_like(stats, true)
}

fn render_stat_like(stats: &ServerStats, with_clients: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", stats.version);
    if stats.mode == ServerMode::ReadOnly {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if with_clients {
        out.push_str("Clients:\n");
        for c in &stats.connections {
            write_connection(&mut out, c, true);
            out.push('\n');
        }
        out.push('\n');
    }
    // ServerStats.toString()
    let l = &stats.latency;
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        l.min(),
        java_double(l.avg()),
        l.max()
    );
    let _ = writeln!(out, "Received: {}", stats.packets_received);
    let _ = writeln!(out, "Sent: {}", stats.packets_sent);
    let _ = writeln!(out, "Connections: {}", stats.num_alive_connections);
    let _ = writeln!(out, "Outstanding: {}", stats.outstanding_requests);
    let _ = writeln!(out, "Zxid: 0x{:x}", stats.last_zxid);
    let _ = writeln!(out, "Mode: {}", stats.mode.as_str());
    let _ = writeln!(out, "Node count: {}", stats.node_count);
    if let (ServerMode::Leader, Some(leader)) = (stats.mode, &stats.leader) {
        let _ = writeln!(
            out,
            "Proposal sizes last/min/max: {}/{}/{}",
            leader.proposal_size_last, leader.proposal_size_min, leader.proposal_size_max
        );
    }
    out
}

/// `cons`: every connection in the long form, then a blank line.
pub fn render_cons(connections: &[ConnectionInfo]) -> String {
    let mut out = String::new();
    for c in connections {
        write_connection(&mut out, c, false);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `ServerCnxn.dumpConnectionInfo`: ` /ip:port[ops](queued=..,recved=..,sent=..[,...])`.
fn write_connection(out: &mut String, c: &ConnectionInfo, brief: bool) {
    out.push(' ');
    write_java_socket_addr(out, &c.remote);
    let _ = write!(
        out,
        "[{:x}](queued={},recved={},sent={}",
        c.interest_ops, c.outstanding_requests, c.packets_received, c.packets_sent
    );
    if !brief && c.session_id != 0 {
        let _ = write!(
            out,
            ",sid=0x{:x},lop={},est={},to={}",
            c.session_id, c.last_op, c.established_ms, c.session_timeout_ms
        );
        if c.last_cxid >= 0 {
            let _ = write!(out, ",lcxid=0x{:x}", c.last_cxid);
        }
        let _ = write!(
            out,
            ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            c.last_zxid,
            c.last_response_ms,
            c.last_latency_ms,
            c.latency.min(),
            c.latency.avg_truncated(),
            c.latency.max()
        );
    }
    out.push(')');
}

/// Java's `InetSocketAddress.toString()` for an accepted socket: `/127.0.0.1:5000`,
/// `/[0:0:0:0:0:0:0:1]:5000` (IPv6 uncompressed, as `Inet6Address.getHostAddress`).
fn write_java_socket_addr(out: &mut String, addr: &SocketAddr) {
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => {
            let _ = write!(out, "/{ip}:{}", addr.port());
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            let _ = write!(
                out,
                "/[{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}]:{}",
                s[0],
                s[1],
                s[2],
                s[3],
                s[4],
                s[5],
                s[6],
                s[7],
                addr.port()
            );
        }
    }
}

/// `conf` (`ZooKeeperServer.dumpConf` and its quorum overrides).
pub fn render_conf(stats: &ServerStats, dirs: &DirsInfo, cfg: &Config) -> String {
    let snap_dir = if dirs.snap_dir.as_os_str().is_empty() {
        cfg.data_dir.as_path()
    } else {
        dirs.snap_dir.as_path()
    };
    let log_dir = if dirs.log_dir.as_os_str().is_empty() {
        cfg.log_dir()
    } else {
        dirs.log_dir.as_path()
    };
    let quorum_peer = stats.mode != ServerMode::Standalone;
    // A standalone ZooKeeperServer reports id 0 even when a myid file exists.
    let server_id = if quorum_peer {
        cfg.my_id.unwrap_or(0)
    } else {
        0
    };

    let mut out = String::new();
    let _ = writeln!(out, "clientPort={}", stats.client_port);
    // corral has no TLS listener: ZooKeeper prints -1 when there is none.
    out.push_str("secureClientPort=-1\n");
    let _ = writeln!(out, "dataDir={}", snap_dir.display());
    let _ = writeln!(out, "dataDirSize={}", dirs.datadir_size);
    let _ = writeln!(out, "dataLogDir={}", log_dir.display());
    let _ = writeln!(out, "dataLogSize={}", dirs.logdir_size);
    let _ = writeln!(out, "tickTime={}", cfg.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", cfg.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", cfg.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", cfg.max_session_timeout_ms);
    let _ = writeln!(
        out,
        "clientPortListenBacklog={}",
        cfg.client_port_listen_backlog
    );
    let _ = writeln!(out, "serverId={server_id}");
    if !quorum_peer {
        return out;
    }
    let me = cfg.my_server();
    let _ = writeln!(out, "initLimit={}", cfg.init_limit);
    let _ = writeln!(out, "syncLimit={}", cfg.sync_limit);
    let _ = writeln!(out, "electionAlg={}", crate::config::ELECTION_ALG_SUPPORTED);
    let _ = writeln!(
        out,
        "electionPort={}",
        me.map_or(-1, |s| i32::from(s.election_port))
    );
    let _ = writeln!(
        out,
        "quorumPort={}",
        me.map_or(-1, |s| i32::from(s.quorum_port))
    );
    // LearnerType ordinal: PARTICIPANT = 0, OBSERVER = 1.
    let peer_type = match me.map(|s| s.role) {
        Some(PeerRole::Observer) => 1,
        _ => 0,
    };
    let _ = writeln!(out, "peerType={peer_type}");
    if stats.mode == ServerMode::ReadOnly {
        return out;
    }
    out.push_str("membership: \n");
    for s in cfg.servers.values() {
        let _ = write!(
            out,
            "server.{}={}:{}:{}:{}",
            s.id,
            bracket_ipv6(&s.host),
            s.quorum_port,
            s.election_port,
            match s.role {
                PeerRole::Participant => "participant",
                PeerRole::Observer => "observer",
            }
        );
        if let Some(client) = &s.client {
            let host = client.host.as_deref().unwrap_or("0.0.0.0");
            let _ = write!(out, ";{}:{}", bracket_ipv6(host), client.port);
        }
        out.push('\n');
    }
    // QuorumVerifier.toString() ends without a newline.
    let _ = write!(out, "version={:x}", stats.quorum_config_version);
    out
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `mntr`: `zk_<key>\t<value>` lines.
pub fn render_mntr(stats: &ServerStats) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "zk_{key}\t{value}");
    };
    let fd = |v: Option<u64>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    line("version", &stats.version);
    line("server_state", &stats.mode.as_str());
    if stats.mode.is_quorum_member() {
        if let Some(peer_state) = &stats.peer_state {
            line("peer_state", peer_state);
        }
    }
    line("avg_latency", &java_double(stats.latency.avg()));
    line("max_latency", &stats.latency.max());
    line("min_latency", &stats.latency.min());
    line("packets_received", &stats.packets_received);
    line("packets_sent", &stats.packets_sent);
    line("num_alive_connections", &stats.num_alive_connections);
    line("outstanding_requests", &stats.outstanding_requests);
    line("uptime", &stats.uptime_ms);
    line("znode_count", &stats.node_count);
    line("watch_count", &stats.watch_count);
    line("ephemerals_count", &stats.ephemerals_count);
    line("approximate_data_size", &stats.approximate_data_size);
    line("global_sessions", &stats.global_sessions);
    line("local_sessions", &stats.local_sessions);
    line("open_file_descriptor_count", &fd(stats.open_fd_count));
    line("max_file_descriptor_count", &fd(stats.max_fd_count));
    if let (ServerMode::Leader, Some(l)) = (stats.mode, &stats.leader) {
        line("learners", &l.learners);
        line("synced_followers", &l.synced_followers);
        line(
            "synced_non_voting_followers",
            &l.synced_non_voting_followers,
        );
        line("synced_observers", &l.synced_observers);
        line("pending_syncs", &l.pending_syncs);
        line("leader_uptime", &l.leader_uptime_ms);
        line("last_proposal_size", &l.proposal_size_last);
        line("max_proposal_size", &l.proposal_size_max);
        line("min_proposal_size", &l.proposal_size_min);
    }
    for (key, value) in &stats.extra_metrics {
        debug_assert!(key.starts_with("corral_"), "corral's own mntr keys: {key}");
        let _ = writeln!(out, "{key}\t{value}");
    }
    out
}

/// `isro`: `ro` in read-only mode, otherwise `rw`; no newline.
pub fn render_isro(mode: ServerMode) -> &'static str {
    if mode == ServerMode::ReadOnly {
        "ro"
    } else {
        "rw"
    }
}

/// `envi`.
pub fn render_envi(version: &str, env: &EnvInfo) -> String {
    let mb = |v: Option<u64>| v.map_or_else(|| ENV_NA.to_string(), |n| format!("{n}MB"));
    let mut out = String::from("Environment:\n");
    let entries: [(&str, &str); 15] = [
        ("zookeeper.version", version),
        ("host.name", &env.host_name),
        ("java.version", ENV_NA),
        ("java.vendor", ENV_NA),
        ("java.home", ENV_NA),
        ("java.class.path", ENV_NA),
        ("java.library.path", ENV_NA),
        ("java.io.tmpdir", ENV_NA),
        ("java.compiler", ENV_NA),
        ("os.name", &env.os_name),
        ("os.arch", &env.os_arch),
        ("os.version", &env.os_version),
        ("user.name", &env.user_name),
        ("user.home", &env.user_home),
        ("user.dir", &env.user_dir),
    ];
    for (key, value) in entries {
        let _ = writeln!(out, "{key}={value}");
    }
    let _ = writeln!(out, "os.memory.free={}", mb(env.memory_free_mb));
    let _ = writeln!(out, "os.memory.max={}", mb(env.memory_max_mb));
    let _ = writeln!(out, "os.memory.total={}", mb(env.memory_total_mb));
    for (key, value) in &env.extra {
        let _ = writeln!(out, "{key}={value}");
    }
    out
}

/// `dirs`.
pub fn render_dirs(dirs: &DirsInfo) -> String {
    format!(
        "datadir_size: {}\nlogdir_size: {}\n",
        dirs.datadir_size, dirs.logdir_size
    )
}

/// `dump`: session expiry buckets, ephemerals per session, connection buckets.
pub fn render_dump(dump: &DumpInfo) -> String {
    let mut out = String::from("SessionTracker dump:\n");
    let sessions: usize = dump
        .session_buckets
        .iter()
        .map(|b| b.session_ids.len())
        .sum();
    let _ = writeln!(
        out,
        "Session Sets ({})/({}):",
        dump.session_buckets.len(),
        sessions
    );
    let mut buckets: Vec<&ExpiryBucket> = dump.session_buckets.iter().collect();
    buckets.sort_by_key(|b| b.expire_at_ms);
    for b in buckets {
        let _ = writeln!(
            out,
            "{} expire at {}:",
            b.session_ids.len(),
            java_date_utc(b.expire_at_ms)
        );
        for id in &b.session_ids {
            let _ = writeln!(out, "\t0x{id:x}");
        }
    }
    out.push_str("ephemeral nodes dump:\n");
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", dump.ephemerals.len());
    for (id, paths) in &dump.ephemerals {
        let _ = writeln!(out, "0x{id:x}:");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push_str("Connections dump:\n");
    if let Some(conn_buckets) = &dump.connection_buckets {
        let count: usize = conn_buckets.iter().map(|b| b.connections.len()).sum();
        let _ = writeln!(
            out,
            "Connections Sets ({})/({}):",
            conn_buckets.len(),
            count
        );
        let mut buckets: Vec<&ConnectionBucket> = conn_buckets.iter().collect();
        buckets.sort_by_key(|b| b.expire_at_ms);
        for b in buckets {
            let _ = writeln!(
                out,
                "{} expire at {}:",
                b.connections.len(),
                java_date_utc(b.expire_at_ms)
            );
            for c in &b.connections {
                out.push('\t');
                write_connection(&mut out, c, false);
                out.push('\n');
            }
        }
    }
    out
}

/// `wchs`.
pub fn render_wchs(w: &WatchSummary) -> String {
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        w.connections, w.paths, w.total
    )
}

/// `wchc`: per session, its watched paths; then a blank line.
pub fn render_wchc(w: &WatchSummary) -> String {
    let mut out = String::new();
    for (id, paths) in &w.by_session {
        let _ = writeln!(out, "0x{id:x}");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push('\n');
    out
}

/// `wchp`: per path, the sessions watching it; then a blank line.
pub fn render_wchp(w: &WatchSummary) -> String {
    let mut out = String::new();
    for (path, ids) in &w.by_path {
        let _ = writeln!(out, "{path}");
        for id in ids {
            let _ = writeln!(out, "\t0x{id:x}");
        }
    }
    out.push('\n');
    out
}

/// `hash`: `<zxid hex>: <digest>` per recorded digest; empty with no history.
pub fn render_hash(digests: &[ZxidDigest]) -> String {
    let mut out = String::new();
    for d in digests {
        let _ = writeln!(out, "{:x}: {}", d.zxid, d.digest);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Java formatting helpers
// ---------------------------------------------------------------------------------------

/// `new BigDecimal(x).setScale(4, HALF_UP).doubleValue()`, computed on the exact binary
/// value of `x` (a plain `(x * 1e4).round()` rounds 0.00015 the wrong way).
fn round_half_up_4(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let magnitude = x.abs();
    let bits = magnitude.to_bits();
    let biased_exp = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exp) = if biased_exp == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased_exp - 1075)
    };
    if exp >= 0 {
        return x; // an integer: nothing to round
    }
    // magnitude * 10^4 = mantissa * 10^4 / 2^shift, with mantissa * 10^4 < 2^67.
    let shift = exp.unsigned_abs();
    let scaled = u128::from(mantissa) * 10_000;
    let units = if shift >= 68 {
        0 // below 0.5e-4
    } else {
        let quotient = scaled >> shift;
        let remainder = scaled & ((1u128 << shift) - 1);
        quotient + u128::from(remainder >= 1u128 << (shift - 1))
    };
    (units as f64 / 10_000.0).copysign(x)
}

/// Java's `Double.toString`: `0.0`, `1.5`, `0.3333`, `5.0E-4`, `1.0E7`.
fn java_double(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".to_string()
        } else if x > 0.0 {
            "Infinity".to_string()
        } else {
            "-Infinity".to_string()
        };
    }
    let a = x.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{x:e}");
        let (mantissa, exponent) = s.split_once('e').expect("LowerExp has an exponent");
        if mantissa.contains('.') {
            format!("{mantissa}E{exponent}")
        } else {
            format!("{mantissa}.0E{exponent}")
        }
    }
}

/// Java's `Date.toString()` in UTC: `Thu Jan 01 00:00:00 UTC 1970`.
pub fn java_date_utc(epoch_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = epoch_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------
// Probes: the only I/O in this module
// ---------------------------------------------------------------------------------------

/// Readers of /proc and the environment for the numbers `mntr`, `envi` and `dirs` need.
/// Each returns `None` (or a default) where the OS will not tell, never an error.
pub mod probe {
    use super::EnvInfo;
    use std::path::Path;

    /// Open descriptors of this process: entries of /proc/self/fd, less the one the
    /// listing itself holds open (as the JDK counts).
    pub fn open_fd_count() -> Option<u64> {
        let entries = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(entries.saturating_sub(1))
    }

    /// The soft `RLIMIT_NOFILE`, from /proc/self/limits; `None` if unlimited or unknown.
    pub fn max_fd_count() -> Option<u64> {
        parse_max_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
    }

    /// The soft limit on the `Max open files` line of `/proc/<pid>/limits`.
    pub fn parse_max_open_files(limits: &str) -> Option<u64> {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// A `<key>: <n> kB` value of /proc/meminfo or /proc/self/status.
    pub fn parse_kb_field(text: &str, key: &str) -> Option<u64> {
        let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
        line.split(':')
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Total length of the regular files under `path`, recursively (ZooKeeper's
    /// `getDirSize`). Symlinked directories are not followed, so loops cannot recurse.
    pub fn dir_size_bytes(path: &Path) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        if !meta.is_dir() {
            return meta.len();
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|e| dir_size_bytes(&e.path()))
            .sum()
    }

    fn read_trimmed(path: &str) -> Option<String> {
        Some(std::fs::read_to_string(path).ok()?.trim().to_string())
    }

    /// The `envi` facts of this process and host.
    pub fn env_info() -> EnvInfo {
        let mut env = EnvInfo::default();
        let or_na = |v: Option<String>, slot: &mut String| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                *slot = v;
            }
        };
        or_na(
            read_trimmed("/proc/sys/kernel/hostname"),
            &mut env.host_name,
        );
        or_na(
            read_trimmed("/proc/sys/kernel/osrelease"),
            &mut env.os_version,
        );
        // Java's names: "Linux", "amd64".
        env.os_name = match std::env::consts::OS {
            "linux" => "Linux".to_string(),
            "macos" => "Mac OS X".to_string(),
            other => other.to_string(),
        };
        env.os_arch = match std::env::consts::ARCH {
            "x86_64" => "amd64".to_string(),
            "x86" => "x86".to_string(),
            other => other.to_string(),
        };
        or_na(
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok(),
            &mut env.user_name,
        );
        or_na(std::env::var("HOME").ok(), &mut env.user_home);
        or_na(
            std::env::current_dir()
                .ok()
                .map(|d| d.display().to_string()),
            &mut env.user_dir,
        );
        if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") {
            env.memory_free_mb = parse_kb_field(&meminfo, "MemAvailable").map(|kb| kb / 1024);
            env.memory_max_mb = parse_kb_field(&meminfo, "MemTotal").map(|kb| kb / 1024);
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            env.memory_total_mb = parse_kb_field(&status, "VmRSS").map(|kb| kb / 1024);
        }
        env.extra.push((
            "corral.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ));
        env
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientEndpoint, FourLetterWhitelist, ServerSpec};

    const VERSION: &str = "3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC";

    fn stats() -> ServerStats {
        let mut latency = Latency::default();
        for ms in [0, 1, 2] {
            latency.record(ms);
        }
        ServerStats {
            version: VERSION.to_string(),
            client_port: 2181,
            latency,
            packets_received: 10,
            packets_sent: 9,
            num_alive_connections: 2,
            outstanding_requests: 1,
            last_zxid: 0x1_0000_002a,
            node_count: 5,
            watch_count: 3,
            ephemerals_count: 1,
            approximate_data_size: 44,
            open_fd_count: Some(30),
            max_fd_count: Some(1024),
            uptime_ms: 12345,
            global_sessions: 2,
            ..ServerStats::default()
        }
    }

    fn session_conn() -> ConnectionInfo {
        let mut c = ConnectionInfo::new("127.0.0.1:50000".parse().unwrap(), 1_700_000_000_000);
        c.packets_received = 7;
        c.packets_sent = 6;
        c.session_id = 0x1000_0123_4560_0000;
        c.last_op = last_op_name(4);
        c.session_timeout_ms = 30000;
        c.last_cxid = 5;
        c.last_zxid = 0x2a;
        c.last_response_ms = 99;
        c.last_latency_ms = 1;
        c.latency.record(1);
        c.latency.record(2);
        c
    }

    fn self_conn() -> ConnectionInfo {
        let mut c = ConnectionInfo::new("127.0.0.1:50001".parse().unwrap(), 0);
        c.interest_ops = 0;
        c.packets_received = 1;
        c
    }

    fn all_allowed() -> Config {
        Config {
            four_letter_whitelist: FourLetterWhitelist::All,
            ..Config::default()
        }
    }

    #[test]
    fn names_and_prefixes() {
        for cmd in FourLetter::ALL {
            let b = cmd.name().as_bytes();
            let prefix = [b[0], b[1], b[2], b[3]];
            assert_eq!(FourLetter::from_len_prefix(prefix), Some(cmd));
        }
        assert_eq!(FourLetter::from_len_prefix(*b"RUOK"), None);
        assert_eq!(FourLetter::from_len_prefix([0, 0, 0, 40]), None);
        // The telnet "interrupt process + do timing mark" sequence is no command.
        assert_eq!(FourLetter::from_len_prefix([0xff, 0xf4, 0xff, 0xfd]), None);
        // The names agree with the list config.rs validates the whitelist against.
        let names: Vec<&str> = FourLetter::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, crate::config::FOUR_LETTER_WORDS);
    }

    #[test]
    fn whitelist() {
        let cfg = Config::default();
        assert!(is_allowed(FourLetter::Srvr, &cfg));
        for cmd in FourLetter::ALL
            .into_iter()
            .filter(|c| *c != FourLetter::Srvr)
        {
            assert!(!is_allowed(cmd, &cfg), "{cmd:?}");
        }
        assert!(FourLetter::ALL
            .into_iter()
            .all(|c| is_allowed(c, &all_allowed())));
        let cfg = Config {
            four_letter_whitelist: FourLetterWhitelist::parse("ruok, mntr"),
            ..Config::default()
        };
        assert!(is_allowed(FourLetter::Ruok, &cfg));
        assert!(is_allowed(FourLetter::Mntr, &cfg));
        assert!(is_allowed(FourLetter::Srvr, &cfg));
        assert!(!is_allowed(FourLetter::Stat, &cfg));
        assert_eq!(
            refusal(FourLetter::Ruok),
            "ruok is not executed because it is not in the whitelist.\n"
        );
    }

    #[test]
    fn ruok_isro_gtmk_resets() {
        let cfg = all_allowed();
        let mut data = AdminData::default();
        assert_eq!(render(FourLetter::Ruok, &data, &cfg), "imok");
        assert_eq!(render(FourLetter::Isro, &data, &cfg), "rw");
        assert_eq!(render(FourLetter::Gtmk, &data, &cfg), "306");
        assert_eq!(
            render(FourLetter::Srst, &data, &cfg),
            "Server stats reset.\n"
        );
        assert_eq!(
            render(FourLetter::Crst, &data, &cfg),
            "Connection stats reset.\n"
        );
        data.trace_mask = -1;
        assert_eq!(render(FourLetter::Stmk, &data, &cfg), "-1");
        data.stats.mode = ServerMode::ReadOnly;
        assert_eq!(render(FourLetter::Isro, &data, &cfg), "ro");
    }

    #[test]
    fn not_serving() {
        let cfg = all_allowed();
        let data = AdminData {
            serving: false,
            ..AdminData::default()
        };
        let not_serving = format!("{NOT_SERVING}\n");
        for cmd in [
            FourLetter::Srvr,
            FourLetter::Stat,
            FourLetter::Conf,
            FourLetter::Cons,
            FourLetter::Mntr,
            FourLetter::Dump,
            FourLetter::Dirs,
            FourLetter::Wchs,
            FourLetter::Wchc,
            FourLetter::Wchp,
            FourLetter::Srst,
            FourLetter::Crst,
        ] {
            assert_eq!(render(cmd, &data, &cfg), not_serving, "{cmd:?}");
        }
        assert_eq!(render(FourLetter::Hash, &data, &cfg), NOT_SERVING);
        assert_eq!(render(FourLetter::Isro, &data, &cfg), "null");
        assert_eq!(render(FourLetter::Ruok, &data, &cfg), "imok");
        assert!(render(FourLetter::Envi, &data, &cfg).starts_with("Environment:\n"));
    }

    #[test]
    fn srvr_exact() {
        assert_eq!(
            render_srvr(&stats()),
            "Zookeeper version: 3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             Latency min/avg/max: 0/1.0/2\n\
             Received: 10\n\
             Sent: 9\n\
             Connections: 2\n\
             Outstanding: 1\n\
             Zxid: 0x10000002a\n\
             Mode: standalone\n\
             Node count: 5\n"
        );
        // What zkServer.sh status extracts.
        let out = render_srvr(&stats());
        let mode: Vec<&str> = out.lines().filter(|l| l.contains("Mode")).collect();
        assert_eq!(mode, ["Mode: standalone"]);
    }

    /// corral's storage lines follow ZooKeeper's unchanged lines, and none of them reads as a
    /// standard line to the known `srvr` parsers (docs/decisions.md).
    #[test]
    fn srvr_storage_lines_follow_and_stay_out_of_parsers_way() {
        let mut s = stats();
        let plain = render_srvr(&s);
        s.storage = Some(StorageFigures {
            log_dir_bytes: 67_112_960,
            snapshot_dir_bytes: 4_321,
            snapshot_count: 2,
            newest_snapshot_bytes: 2_100,
            fsyncs: 42,
            fsync_time_ms: 7,
        });
        let out = render_srvr(&s);
        let extra = out
            .strip_prefix(plain.as_str())
            .expect("standard lines first");
        assert_eq!(
            extra,
            "Log dir size: 67112960\n\
             Snapshot dir size: 4321\n\
             Snapshot count: 2\n\
             Newest snapshot size: 2100\n\
             Fsyncs: 42\n\
             Fsync time total (ms): 7\n"
        );
        let standard = [
            "Zookeeper version",
            "Latency min/avg/max",
            "Received",
            "Sent",
            "Connections",
            "Outstanding",
            "Zxid",
            "Mode",
            "Node count",
            "Proposal sizes",
            "READ-ONLY",
            "Clients",
        ];
        for line in extra.lines() {
            // Metricbeat's server metricset: substring matches.
            for word in ["Mode", "Zxid", "Latency", "Proposal sizes"] {
                assert!(!line.contains(word), "{line:?} contains {word:?}");
            }
            // Line-start matches (zkServer.sh's grep Mode is covered above).
            let label = line.split(':').next().unwrap();
            assert!(!standard.contains(&label), "{line:?}");
            // Metricbeat's generic `Words: digits` lines become fields named after the words;
            // none may collide with the fields it fills from the standard lines.
            let field = label.to_lowercase().replace(' ', "_");
            for taken in [
                "count",
                "epoch",
                "zxid",
                "mode",
                "node_count",
                "version_date",
            ] {
                assert_ne!(field, taken, "{line:?}");
            }
        }
        // `stat` stays ZooKeeper's.
        let mut st = s.clone();
        st.storage = None;
        assert_eq!(render_stat(&s), render_stat(&st));
    }

    #[test]
    fn srvr_empty_server_and_modes() {
        let mut s = ServerStats {
            version: VERSION.into(),
            ..ServerStats::default()
        };
        let out = render_srvr(&s);
        assert!(out.contains("\nLatency min/avg/max: 0/0.0/0\n"), "{out}");
        assert!(out.contains("\nZxid: 0x0\n"));
        s.last_zxid = -1;
        assert!(render_srvr(&s).contains("\nZxid: 0xffffffffffffffff\n"));
        for (mode, text) in [
            (ServerMode::Leader, "leader"),
            (ServerMode::Follower, "follower"),
            (ServerMode::Observer, "observer"),
            (ServerMode::ReadOnly, "read-only"),
        ] {
            s.mode = mode;
            assert!(render_srvr(&s).contains(&format!("\nMode: {text}\n")));
        }
        s.mode = ServerMode::ReadOnly;
        assert!(render_srvr(&s).starts_with(&format!(
            "Zookeeper version: {VERSION}\nREAD-ONLY mode; serving only read-only clients\n\
             Latency"
        )));
        s.mode = ServerMode::Leader;
        s.leader = Some(LeaderStats::default());
        assert!(render_srvr(&s).ends_with("Node count: 0\nProposal sizes last/min/max: -1/-1/-1\n"));
    }

    #[test]
    fn stat_exact() {
        let mut s = stats();
        s.connections = vec![session_conn(), self_conn()];
        assert_eq!(
            render_stat(&s),
            "Zookeeper version: 3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             Clients:\n \
             /127.0.0.1:50000[1](queued=0,recved=7,sent=6)\n \
             /127.0.0.1:50001[0](queued=0,recved=1,sent=0)\n\
             \n\
             Latency min/avg/max: 0/1.0/2\n\
             Received: 10\n\
             Sent: 9\n\
             Connections: 2\n\
             Outstanding: 1\n\
             Zxid: 0x10000002a\n\
             Mode: standalone\n\
             Node count: 5\n"
        );
    }

    #[test]
    fn cons_exact() {
        let v6 = ConnectionInfo::new("[::1]:2000".parse().unwrap(), 0);
        let mapped = ConnectionInfo::new("[::ffff:10.0.0.1]:2001".parse().unwrap(), 0);
        let mut no_cxid = session_conn();
        no_cxid.last_cxid = -1;
        no_cxid.last_zxid = -1;
        no_cxid.latency = Latency::default();
        assert_eq!(
            render_cons(&[session_conn(), self_conn(), v6, mapped, no_cxid]),
            " /127.0.0.1:50000[1](queued=0,recved=7,sent=6,sid=0x1000012345600000,lop=GETD,\
             est=1700000000000,to=30000,lcxid=0x5,lzxid=0x2a,lresp=99,llat=1,minlat=1,avglat=1,\
             maxlat=2)\n \
             /127.0.0.1:50001[0](queued=0,recved=1,sent=0)\n \
             /[0:0:0:0:0:0:0:1]:2000[1](queued=0,recved=0,sent=0)\n \
             /10.0.0.1:2001[1](queued=0,recved=0,sent=0)\n \
             /127.0.0.1:50000[1](queued=0,recved=7,sent=6,sid=0x1000012345600000,lop=GETD,\
             est=1700000000000,to=30000,lzxid=0xffffffffffffffff,lresp=99,llat=1,minlat=0,\
             avglat=0,maxlat=0)\n\
             \n"
        );
        assert_eq!(render_cons(&[]), "\n");
    }

    #[test]
    fn conf_standalone_exact() {
        let cfg = Config {
            my_id: Some(3),
            ..Config::default()
        };
        let dirs = DirsInfo {
            snap_dir: "/var/lib/corral/version-2".into(),
            log_dir: "/var/lib/corral/version-2".into(),
            datadir_size: 1234,
            logdir_size: 67108880,
        };
        assert_eq!(
            render_conf(&stats(), &dirs, &cfg),
            "clientPort=2181\n\
             secureClientPort=-1\n\
             dataDir=/var/lib/corral/version-2\n\
             dataDirSize=1234\n\
             dataLogDir=/var/lib/corral/version-2\n\
             dataLogSize=67108880\n\
             tickTime=2000\n\
             maxClientCnxns=60\n\
             minSessionTimeout=4000\n\
             maxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\n\
             serverId=0\n"
        );
        // Empty dirs fall back to the configured ones.
        let out = render_conf(&stats(), &DirsInfo::default(), &Config::default());
        assert!(
            out.contains("\ndataDir=./data\ndataDirSize=0\ndataLogDir=./data\n"),
            "{out}"
        );
    }

    fn ensemble() -> Config {
        let mut servers = BTreeMap::new();
        let spec = |id: u64, host: &str, role, client| ServerSpec {
            id,
            host: host.to_string(),
            quorum_port: 2888,
            election_port: 3888,
            role,
            client,
        };
        servers.insert(1, spec(1, "zk1", PeerRole::Participant, None));
        servers.insert(
            2,
            spec(
                2,
                "zk2",
                PeerRole::Participant,
                Some(ClientEndpoint {
                    host: None,
                    port: 2181,
                }),
            ),
        );
        servers.insert(
            3,
            spec(
                3,
                "fe80::3",
                PeerRole::Observer,
                Some(ClientEndpoint {
                    host: Some("::1".into()),
                    port: 2182,
                }),
            ),
        );
        Config {
            servers,
            my_id: Some(1),
            ..Config::default()
        }
    }

    #[test]
    fn conf_quorum_exact() {
        let mut s = stats();
        s.mode = ServerMode::Follower;
        s.quorum_config_version = 0x100000000;
        let dirs = DirsInfo {
            snap_dir: "/d".into(),
            log_dir: "/l".into(),
            ..DirsInfo::default()
        };
        assert_eq!(
            render_conf(&s, &dirs, &ensemble()),
            "clientPort=2181\n\
             secureClientPort=-1\n\
             dataDir=/d\n\
             dataDirSize=0\n\
             dataLogDir=/l\n\
             dataLogSize=0\n\
             tickTime=2000\n\
             maxClientCnxns=60\n\
             minSessionTimeout=4000\n\
             maxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\n\
             serverId=1\n\
             initLimit=10\n\
             syncLimit=5\n\
             electionAlg=3\n\
             electionPort=3888\n\
             quorumPort=2888\n\
             peerType=0\n\
             membership: \n\
             server.1=zk1:2888:3888:participant\n\
             server.2=zk2:2888:3888:participant;0.0.0.0:2181\n\
             server.3=[fe80::3]:2888:3888:observer;[::1]:2182\n\
             version=100000000"
        );
        s.mode = ServerMode::ReadOnly;
        assert!(render_conf(&s, &dirs, &ensemble()).ends_with("quorumPort=2888\npeerType=0\n"));
    }

    #[test]
    fn mntr_exact() {
        let mut s = stats();
        s.extra_metrics = vec![("corral_shards".into(), "2".into())];
        assert_eq!(
            render_mntr(&s),
            "zk_version\t3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             zk_server_state\tstandalone\n\
             zk_avg_latency\t1.0\n\
             zk_max_latency\t2\n\
             zk_min_latency\t0\n\
             zk_packets_received\t10\n\
             zk_packets_sent\t9\n\
             zk_num_alive_connections\t2\n\
             zk_outstanding_requests\t1\n\
             zk_uptime\t12345\n\
             zk_znode_count\t5\n\
             zk_watch_count\t3\n\
             zk_ephemerals_count\t1\n\
             zk_approximate_data_size\t44\n\
             zk_global_sessions\t2\n\
             zk_local_sessions\t0\n\
             zk_open_file_descriptor_count\t30\n\
             zk_max_file_descriptor_count\t1024\n\
             corral_shards\t2\n"
        );
    }

    #[test]
    fn mntr_leader_and_unknown_fds() {
        let mut s = stats();
        s.mode = ServerMode::Leader;
        s.peer_state = Some("leading - broadcast".into());
        s.open_fd_count = None;
        s.max_fd_count = None;
        s.leader = Some(LeaderStats {
            learners: 2,
            synced_followers: 2,
            proposal_size_last: 90,
            proposal_size_min: 80,
            proposal_size_max: 100,
            ..LeaderStats::default()
        });
        let out = render_mntr(&s);
        assert!(out.contains("zk_server_state\tleader\nzk_peer_state\tleading - broadcast\n"));
        assert!(
            out.contains("zk_open_file_descriptor_count\t-1\nzk_max_file_descriptor_count\t-1\n")
        );
        assert!(out.ends_with(
            "zk_learners\t2\nzk_synced_followers\t2\nzk_synced_non_voting_followers\t0\n\
             zk_synced_observers\t0\nzk_pending_syncs\t0\nzk_leader_uptime\t0\n\
             zk_last_proposal_size\t90\nzk_max_proposal_size\t100\nzk_min_proposal_size\t80\n"
        ));
        // Every line is key TAB value.
        assert!(out.lines().all(|l| l.split('\t').count() == 2));
    }

    #[test]
    fn envi_exact() {
        let env = EnvInfo {
            host_name: "h1".into(),
            os_name: "Linux".into(),
            os_arch: "amd64".into(),
            os_version: "6.1.0".into(),
            user_name: "zk".into(),
            user_home: "/home/zk".into(),
            user_dir: "/srv".into(),
            memory_free_mb: Some(100),
            memory_max_mb: Some(2000),
            memory_total_mb: None,
            extra: vec![("corral.version".into(), "0.1.0".into())],
        };
        assert_eq!(
            render_envi(VERSION, &env),
            "Environment:\n\
             zookeeper.version=3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             host.name=h1\n\
             java.version=<NA>\n\
             java.vendor=<NA>\n\
             java.home=<NA>\n\
             java.class.path=<NA>\n\
             java.library.path=<NA>\n\
             java.io.tmpdir=<NA>\n\
             java.compiler=<NA>\n\
             os.name=Linux\n\
             os.arch=amd64\n\
             os.version=6.1.0\n\
             user.name=zk\n\
             user.home=/home/zk\n\
             user.dir=/srv\n\
             os.memory.free=100MB\n\
             os.memory.max=2000MB\n\
             os.memory.total=<NA>\n\
             corral.version=0.1.0\n"
        );
    }

    #[test]
    fn watches_exact() {
        let mut w = WatchSummary {
            connections: 2,
            paths: 2,
            total: 3,
            ..WatchSummary::default()
        };
        w.by_session.insert(0x100, vec!["/a".into(), "/b".into()]);
        w.by_session.insert(0x200, vec!["/a".into()]);
        w.by_path.insert("/a".into(), vec![0x100, 0x200]);
        w.by_path.insert("/b".into(), vec![0x100]);
        let cfg = all_allowed();
        let data = AdminData {
            watches: w,
            ..AdminData::default()
        };
        assert_eq!(
            render(FourLetter::Wchs, &data, &cfg),
            "2 connections watching 2 paths\nTotal watches:3\n"
        );
        assert_eq!(
            render(FourLetter::Wchc, &data, &cfg),
            "0x100\n\t/a\n\t/b\n0x200\n\t/a\n\n"
        );
        assert_eq!(
            render(FourLetter::Wchp, &data, &cfg),
            "/a\n\t0x100\n\t0x200\n/b\n\t0x100\n\n"
        );
        let empty = AdminData::default();
        assert_eq!(
            render(FourLetter::Wchs, &empty, &cfg),
            "0 connections watching 0 paths\nTotal watches:0\n"
        );
        assert_eq!(render(FourLetter::Wchc, &empty, &cfg), "\n");
    }

    #[test]
    fn dump_exact() {
        let mut dump = DumpInfo {
            session_buckets: vec![
                ExpiryBucket {
                    expire_at_ms: 1_700_000_006_000,
                    session_ids: vec![0x200],
                },
                ExpiryBucket {
                    expire_at_ms: 1_700_000_004_000,
                    session_ids: vec![0x100, 0x101],
                },
            ],
            ..DumpInfo::default()
        };
        dump.ephemerals
            .insert(0x100, vec!["/lock/a".into(), "/lock/b".into()]);
        assert_eq!(
            render_dump(&dump),
            "SessionTracker dump:\n\
             Session Sets (2)/(3):\n\
             2 expire at Tue Nov 14 22:13:24 UTC 2023:\n\
             \t0x100\n\
             \t0x101\n\
             1 expire at Tue Nov 14 22:13:26 UTC 2023:\n\
             \t0x200\n\
             ephemeral nodes dump:\n\
             Sessions with Ephemerals (1):\n\
             0x100:\n\
             \t/lock/a\n\
             \t/lock/b\n\
             Connections dump:\n"
        );
        dump.connection_buckets = Some(vec![ConnectionBucket {
            expire_at_ms: 0,
            connections: vec![self_conn()],
        }]);
        assert!(render_dump(&dump).ends_with(
            "Connections dump:\nConnections Sets (1)/(1):\n\
             1 expire at Thu Jan 01 00:00:00 UTC 1970:\n\
             \t /127.0.0.1:50001[0](queued=0,recved=1,sent=0)\n"
        ));
        assert_eq!(
            render_dump(&DumpInfo::default()),
            "SessionTracker dump:\nSession Sets (0)/(0):\nephemeral nodes dump:\n\
             Sessions with Ephemerals (0):\nConnections dump:\n"
        );
    }

    #[test]
    fn dirs_and_hash_exact() {
        let cfg = all_allowed();
        let data = AdminData {
            dirs: DirsInfo {
                datadir_size: 10,
                logdir_size: 67108880,
                ..DirsInfo::default()
            },
            ..AdminData::default()
        };
        assert_eq!(
            render(FourLetter::Dirs, &data, &cfg),
            "datadir_size: 10\nlogdir_size: 67108880\n"
        );
        // No digest history: ZooKeeper with digests disabled prints nothing.
        assert_eq!(render(FourLetter::Hash, &data, &cfg), "");
        let digests = [
            ZxidDigest {
                zxid: 0x100000080,
                digest: 1234,
            },
            ZxidDigest {
                zxid: 0x100,
                digest: -5,
            },
        ];
        assert_eq!(render_hash(&digests), "100000080: 1234\n100: -5\n");
    }

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
    fn rounding_follows_the_binary_value() {
        // 3/20000 is 0.000149999... as a double: HALF_UP keeps 0.0001.
        assert_eq!(round_half_up_4(3.0 / 20000.0), 0.0001);
        // 1/20000 is 0.0000500000...0239 as a double: rounds up.
        assert_eq!(round_half_up_4(1.0 / 20000.0), 0.0001);
        assert_eq!(round_half_up_4(2.0 / 3.0), 0.6667);
        assert_eq!(round_half_up_4(0.125), 0.125);
        assert_eq!(round_half_up_4(1.00005), 1.0001);
        assert_eq!(round_half_up_4(1e-9), 0.0);
        assert_eq!(round_half_up_4(12345678.0), 12345678.0);
        assert_eq!(round_half_up_4(-2.0 / 3.0), -0.6667);
    }

    #[test]
    fn java_double_format() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(0.3333), "0.3333");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(0.00015), "1.5E-4");
        assert_eq!(java_double(1234567.5), "1234567.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12345678.9), "1.23456789E7");
    }

    #[test]
    fn java_dates() {
        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            java_date_utc(951_782_400_000),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(
            java_date_utc(1_735_689_599_999),
            "Tue Dec 31 23:59:59 UTC 2024"
        );
        assert_eq!(
            java_date_utc(4_102_444_800_000),
            "Fri Jan 01 00:00:00 UTC 2100"
        );
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

    #[test]
    fn version_string() {
        let v = full_version();
        assert!(v.starts_with("3.9.2-corral-"), "{v}");
        assert!(v.contains(", built on "), "{v}");
        // kazoo's server_version() regex on envi: zookeeper.version=(\d+)\.(\d+)\.(\d+)-.*
        let nums: Vec<&str> = v.split('-').next().unwrap().split('.').collect();
        assert!(nums.len() == 3 && nums.iter().all(|n| n.parse::<u32>().is_ok()));
    }

    #[test]
    fn probe_parsers() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 1048576              files     \n";
        assert_eq!(probe::parse_max_open_files(limits), Some(1024));
        assert_eq!(
            probe::parse_max_open_files(
                "Max open files            unlimited     unlimited   files"
            ),
            None
        );
        let meminfo =
            "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8192000 kB\n";
        assert_eq!(probe::parse_kb_field(meminfo, "MemTotal"), Some(16_384_000));
        assert_eq!(
            probe::parse_kb_field(meminfo, "MemAvailable"),
            Some(8_192_000)
        );
        assert_eq!(probe::parse_kb_field(meminfo, "Mem"), None);
    }

    #[test]
    fn probes_run_on_this_machine() {
        // Linux CI: the /proc readers work and give sane numbers.
        let open = probe::open_fd_count().expect("/proc/self/fd");
        assert!(open >= 3, "{open}");
        if let Some(max) = probe::max_fd_count() {
            assert!(max >= open);
        }
        let env = probe::env_info();
        assert_eq!(env.os_name, "Linux");
        assert!(env.memory_max_mb.unwrap_or(0) > 0);
        let dir = std::env::temp_dir().join(format!("corral-admin-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), [0u8; 10]).unwrap();
        std::fs::write(dir.join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(probe::dir_size_bytes(&dir), 15);
        assert_eq!(probe::dir_size_bytes(&dir.join("missing")), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
