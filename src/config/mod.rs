//! Server configuration: ZooKeeper's `zoo.cfg` plus corral's command-line flags.
//!
//! Sources, lowest priority first: built-in defaults, the zoo.cfg file, command-line
//! settings (in the order given; the last one wins). So a flag overrides the file
//! whatever their order on the command line. After that, `<dataDir>/myid` is read, if
//! present, and the whole is validated the way ZooKeeper's `QuorumPeerConfig` does.
//!
//! The parts, one job each:
//! - `properties`: the zoo.cfg grammar (Java's `.properties`), text into key/value entries.
//! - `args`: the command line into a zoo.cfg path and settings; the `--help` text.
//! - `builder`: sources into a `Config`: applying keys, checking values and the rules across
//!   them; reading the files.
//! - here: the defaults and limits, the types all of them share, and the whitelist rule.
//!
//! Decisions that differ from ZooKeeper, on purpose:
//! - `clientPortAddress` defaults to 127.0.0.1, not the wildcard: a fresh corral is not
//!   reachable from the network until the operator says so (`clientPortAddress=0.0.0.0`).
//!   A `server.N=...;port` line without a host keeps that address; `;host:port` sets it.
//! - `clientPortAddress` must be an IP literal (or `localhost`); corral resolves no names.
//! - `initLimit`/`syncLimit` default to 10/5 (zoo_sample.cfg's values) instead of unset.
//! - Nonsense numbers (negative counts, a zero `snapCount` divisor, ...) are errors rather
//!   than being clamped silently; ZooKeeper's documented clamps (`snapCount` >= 2,
//!   `autopurge.snapRetainCount` >= 3) are kept and reported as warnings.
//! - Server ids are limited to 0..=255: the id is the top byte of every session id.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

mod args;
mod builder;
mod properties;

pub use args::{parse_args, usage, Args};
pub use properties::{parse_properties, PropertiesError, Property};

// ---------------------------------------------------------------------------------------
// Defaults and limits. Each mirrors ZooKeeper's default where one exists.
// ---------------------------------------------------------------------------------------

pub const TICK_TIME_MS_DEFAULT: u32 = 2000;
pub const INIT_LIMIT_DEFAULT: u32 = 10;
pub const SYNC_LIMIT_DEFAULT: u32 = 5;
pub const DATA_DIR_DEFAULT: &str = "./data";
pub const CLIENT_PORT_DEFAULT: u16 = 2181;
/// Loopback, not the wildcard: see the module docs.
pub const CLIENT_PORT_ADDRESS_DEFAULT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// -1 means "the OS/runtime default backlog", as in ZooKeeper.
pub const CLIENT_PORT_LISTEN_BACKLOG_DEFAULT: i32 = -1;
/// Per client IP; 0 means unlimited.
pub const MAX_CLIENT_CNXNS_DEFAULT: u32 = 60;
/// Default session timeout bounds, in ticks.
pub const MIN_SESSION_TIMEOUT_TICKS: u32 = 2;
pub const MAX_SESSION_TIMEOUT_TICKS: u32 = 20;
/// Session timeouts travel as a jute int on the wire.
pub const SESSION_TIMEOUT_MAX_MS: u32 = i32::MAX as u32;
pub use crate::limits::{JUTE_MAX_BUFFER_DEFAULT, JUTE_MAX_BUFFER_MAX};
pub const CONTAINER_CHECK_INTERVAL_MS_DEFAULT: u32 = 60_000;
pub const CONTAINER_MAX_PER_MINUTE_DEFAULT: u32 = 10_000;
pub const SNAP_COUNT_DEFAULT: u32 = 100_000;
/// `SyncRequestProcessor` randomises around snapCount/2, so it needs at least 2.
pub const SNAP_COUNT_MIN: u32 = 2;
pub const AUTOPURGE_SNAP_RETAIN_COUNT_DEFAULT: u32 = 3;
pub const AUTOPURGE_SNAP_RETAIN_COUNT_MIN: u32 = 3;
pub const GLOBAL_OUTSTANDING_LIMIT_DEFAULT: u32 = 1000;
/// A connection stops having its requests read while this many bytes of its output wait.
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;
/// Default `corral.electionFinalizeWaitMs` (docs/decisions.md, "Election finalize wait").
pub const ELECTION_FINALIZE_WAIT_DEFAULT_MS: u32 = 50;
/// Default `corral.electionGraceMs` (docs/decisions.md, "Clients kept through an election").
pub const ELECTION_GRACE_DEFAULT_MS: u32 = 1000;
/// Default `corral.spinBeforeParkUs`.
pub const SPIN_BEFORE_PARK_DEFAULT_US: u32 = 50;

/// Default `corral.clientOutputLimit` (32 MiB): far above any reply a client can accept
/// (jute.maxbuffer is 1 MiB by default), so only a client that stopped reading while its
/// watches fire reaches it.
pub const CLIENT_OUTPUT_LIMIT_DEFAULT: usize = 32 << 20;
/// The server id is the top byte of every session id (`sid << 56`).
pub const SERVER_ID_MAX: u64 = 255;
/// With TTL nodes enabled the ephemeral owner encoding reserves 0xff
/// (ZooKeeper's `EphemeralType.MAX_EXTENDED_SERVER_ID`).
pub const SERVER_ID_MAX_EXTENDED_TYPES: u64 = 0xfe;
/// Upper bound for `corral.cores`; far above any machine we plan for, it only catches typos.
pub const CORES_MAX: usize = 1024;
/// The only election algorithm ZooKeeper still accepts (fast leader election).
pub const ELECTION_ALG_SUPPORTED: u32 = 3;
/// The 4lw that is always enabled: `zkServer.sh status` depends on it.
pub const FOUR_LETTER_ALWAYS_ALLOWED: &str = "srvr";
/// Every four-letter word ZooKeeper knows (`FourLetterCommands`), for whitelist checks.
pub const FOUR_LETTER_WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Name of the file holding this server's id, inside `dataDir`.
pub const MYID_FILE: &str = "myid";

// ---------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------

/// The resolved configuration of one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The zoo.cfg this was read from, if any.
    pub config_path: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    /// `dataLogDir`; `None` means the transaction log lives in `data_dir` (see `log_dir`).
    pub data_log_dir: Option<PathBuf>,
    pub client_port: u16,
    pub client_port_address: IpAddr,
    /// Whether the plain client port is served: not when zoo.cfg names a `secureClientPort`
    /// and no `clientPort` (as ZooKeeper serves only the secure port then).
    pub client_port_enabled: bool,
    /// `secureClientPort`: clients speak TLS here (`ssl.*` keys, docs/security.md).
    pub secure_client_port: Option<u16>,
    /// `sslQuorum`: links between members are mutual TLS (`ssl.quorum.*` stores).
    pub ssl_quorum: bool,
    /// `secureClientPortAddress`; `None` means `client_port_address`.
    pub secure_client_port_address: Option<IpAddr>,
    /// `clientPortListenBacklog`; -1 (or any value <= 0) means the default backlog.
    pub client_port_listen_backlog: i32,
    /// Per client IP address; 0 means unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub four_letter_whitelist: FourLetterWhitelist,
    /// Largest request frame accepted, in bytes (`jute.maxbuffer`).
    pub jute_max_buffer: u32,
    pub servers: BTreeMap<u64, ServerSpec>,
    /// From `<dataDir>/myid`.
    pub my_id: Option<u64>,
    /// `extendedTypesEnabled`: enables TTL nodes.
    pub extended_types_enabled: bool,
    /// `enforceQuota` (`zookeeper.enforceQuota`): writes past a hard quota fail with
    /// QUOTAEXCEEDED (docs/operations.md, "Quotas").
    pub enforce_quota: bool,
    /// `localSessionsEnabled`: in an ensemble, new sessions live only on their member until
    /// they need to be global (ZooKeeper 3.5+; ignored standalone, as there).
    pub local_sessions_enabled: bool,
    /// `localSessionsUpgradingEnabled`: the first ephemeral create of a local session makes it
    /// global; without it, the create fails with EPHEMERALONLOCALSESSION.
    pub local_sessions_upgrading_enabled: bool,
    /// `quorumListenOnAllIPs`: bind the election port on every address (0.0.0.0 or ::) instead
    /// of the address of the own `server.N` line. Members still dial the server lines.
    pub quorum_listen_on_all_ips: bool,
    /// `readonlymode.enabled` (a system property in ZooKeeper): a member that has looked for a
    /// leader for `max(2 s, tickTime)` serves reads, read-only, to clients that ask for it.
    pub read_only_enabled: bool,
    /// `DigestAuthenticationProvider.superDigest`, as `user:base64(sha1(user:password))`.
    pub super_digest: Option<String>,
    /// SASL on the client port and the enforcement of authentication (src/auth).
    pub sasl: crate::auth::SaslConfig,
    pub container_check_interval_ms: u32,
    pub container_max_per_minute: u32,
    pub snap_count: u32,
    pub autopurge_snap_retain_count: u32,
    /// 0 disables autopurge.
    pub autopurge_purge_interval_hours: u32,
    pub force_sync: bool,
    pub global_outstanding_limit: u32,
    /// `corral.clientOutputLimit`: bytes of replies and notifications a connection may have
    /// waiting to be sent before it is closed (a client that stopped reading). Reading its
    /// requests pauses long before, at [`OUTPUT_HIGH_WATER`].
    pub client_output_limit: usize,
    /// `corral.electionFinalizeWaitMs`: how long a member waits for a better vote once a quorum
    /// agrees in a leader election (ZooKeeper's finalizeWait, fixed at 200 ms there).
    pub election_finalize_wait_ms: u32,
    /// `corral.electionGraceMs`: how long a member that lost its leader or quorum keeps its
    /// client connections (holding their writes) before it closes them; 0 closes at once, as
    /// ZooKeeper does.
    pub election_grace_ms: u32,
    /// `corral.cores`: shard executors to run; `None` = one per CPU in the affinity mask.
    pub cores: Option<usize>,
    /// `corral.spinBeforeParkUs`: how long an idle executor polls for completions before it
    /// sleeps (docs/decisions.md, "Spinning before sleeping").
    pub spin_before_park_us: u32,
    /// `corral.zabCore`: whether the write core (Zab, the log) gets an executor and a CPU of
    /// its own or shares the first shard's (docs/decisions.md, "The Zab core's CPU").
    pub zab_core: ZabCore,
    /// Unknown keys and ZooKeeper keys corral ignores, one human-readable line each.
    pub warnings: Vec<String>,
    /// Every key as given (zoo.cfg, then the command line; the last value wins), for settings
    /// read as a family by the part that uses them (the `ssl.*` keys: `tls::TlsSettings`).
    pub props: std::collections::BTreeMap<String, String>,
}

/// Where the write core runs (`corral.zabCore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZabCore {
    /// Its own executor when the affinity mask has at least `ZAB_CORE_DEDICATED_MIN_CPUS`.
    Auto,
    /// Always beside shard 0, on its executor.
    Shared,
    /// Always on an executor of its own, pinned to the first CPU (shards take the others).
    Dedicated,
}

/// From how many CPUs `corral.zabCore=auto` gives the write core one of its own.
pub const ZAB_CORE_DEDICATED_MIN_CPUS: usize = 3;

impl ZabCore {
    /// Whether the write core gets its own executor on a mask of `cpus` CPUs.
    pub fn dedicated(self, cpus: usize) -> bool {
        match self {
            ZabCore::Auto => cpus >= ZAB_CORE_DEDICATED_MIN_CPUS,
            ZabCore::Shared => false,
            ZabCore::Dedicated => true,
        }
    }
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    /// As written (a name or an IP literal, IPv6 without brackets).
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub role: PeerRole,
    /// The `;[host:]port` part, if present.
    pub client: Option<ClientEndpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    Participant,
    Observer,
}

/// The client address part of a `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEndpoint {
    /// `None` when only a port was given (ZooKeeper then means 0.0.0.0).
    pub host: Option<String>,
    pub port: u16,
}

/// `4lw.commands.whitelist`. `srvr` is allowed whatever this says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    /// `*`
    All,
    /// The listed names (trimmed, case-sensitive, as ZooKeeper compares them).
    Only(BTreeSet<String>),
}

/// Where a setting came from, for error messages and warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a zoo.cfg (1-based; the first line of a continued logical line).
    File { path: PathBuf, line: usize },
    /// A command-line flag, e.g. `--port` or `--set`.
    Flag(String),
    /// The n-th positional argument of the legacy `port dataDir [tickTime] [maxcnxns]` form.
    Positional(usize),
}

/// A key/value pair from any source, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

#[derive(Debug)]
pub enum ConfigError {
    /// `--help`/`-h` was given; carries the usage text. Not a failure: print and exit 0.
    Help(&'static str),
    /// The command line is malformed (unknown flag, missing value, ...).
    Usage(String),
    /// The zoo.cfg (or myid) file could not be read.
    Io { path: PathBuf, source: io::Error },
    /// The properties syntax is broken (e.g. a malformed `\uXXXX`).
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A value that does not parse or is out of range.
    InvalidValue {
        key: String,
        value: String,
        origin: Origin,
        reason: String,
    },
    /// A ZooKeeper feature corral does not implement and cannot safely ignore.
    Unsupported {
        key: String,
        origin: Origin,
        reason: String,
    },
    /// The contents of `<dataDir>/myid` are not a server id.
    InvalidMyId { path: PathBuf, content: String },
    /// A cross-key rule is broken (e.g. minSessionTimeout > maxSessionTimeout).
    Invalid(String),
}

// ---------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
            Origin::Positional(n) => write!(f, "command-line argument {n}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Help(text) => f.write_str(text),
            ConfigError::Usage(msg) => write!(f, "{msg}\n\n{}", usage()),
            ConfigError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Syntax { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
            ConfigError::InvalidValue {
                key,
                value,
                origin,
                reason,
            } => {
                write!(f, "{origin}: invalid value `{value}` for {key}: {reason}")
            }
            ConfigError::Unsupported {
                key,
                origin,
                reason,
            } => {
                write!(f, "{origin}: {key} is not supported by corral: {reason}")
            }
            ConfigError::InvalidMyId { path, content } => write!(
                f,
                "{}: `{content}` is not a server id (expected an integer 0..={SERVER_ID_MAX})",
                path.display()
            ),
            ConfigError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Whitelist
// ---------------------------------------------------------------------------------------

impl Default for FourLetterWhitelist {
    /// ZooKeeper's default: nothing but the always-on `srvr`.
    fn default() -> Self {
        FourLetterWhitelist::Only(BTreeSet::new())
    }
}

impl FourLetterWhitelist {
    /// Parses ZooKeeper's comma list: items trimmed, empty items skipped, `*` anywhere
    /// enables everything.
    pub fn parse(value: &str) -> FourLetterWhitelist {
        let mut names = BTreeSet::new();
        for item in value.split(',').map(str::trim) {
            if item == "*" {
                return FourLetterWhitelist::All;
            }
            if !item.is_empty() {
                names.insert(item.to_string());
            }
        }
        FourLetterWhitelist::Only(names)
    }

    /// Whether the four-letter word `name` may run. `srvr` always may.
    pub fn allows(&self, name: &str) -> bool {
        if name == FOUR_LETTER_ALWAYS_ALLOWED {
            return true;
        }
        match self {
            FourLetterWhitelist::All => FOUR_LETTER_WORDS.contains(&name),
            FourLetterWhitelist::Only(names) => names.contains(name),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------

impl Default for Config {
    fn default() -> Self {
        Config {
            config_path: None,
            tick_time_ms: TICK_TIME_MS_DEFAULT,
            init_limit: INIT_LIMIT_DEFAULT,
            sync_limit: SYNC_LIMIT_DEFAULT,
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            data_log_dir: None,
            client_port: CLIENT_PORT_DEFAULT,
            client_port_address: CLIENT_PORT_ADDRESS_DEFAULT,
            client_port_enabled: true,
            secure_client_port: None,
            secure_client_port_address: None,
            ssl_quorum: false,
            client_port_listen_backlog: CLIENT_PORT_LISTEN_BACKLOG_DEFAULT,
            max_client_cnxns: MAX_CLIENT_CNXNS_DEFAULT,
            min_session_timeout_ms: MIN_SESSION_TIMEOUT_TICKS * TICK_TIME_MS_DEFAULT,
            max_session_timeout_ms: MAX_SESSION_TIMEOUT_TICKS * TICK_TIME_MS_DEFAULT,
            four_letter_whitelist: FourLetterWhitelist::default(),
            jute_max_buffer: JUTE_MAX_BUFFER_DEFAULT,
            servers: BTreeMap::new(),
            my_id: None,
            extended_types_enabled: false,
            enforce_quota: false,
            local_sessions_enabled: false,
            local_sessions_upgrading_enabled: false,
            quorum_listen_on_all_ips: false,
            read_only_enabled: false,
            super_digest: None,
            sasl: crate::auth::SaslConfig::default(),
            container_check_interval_ms: CONTAINER_CHECK_INTERVAL_MS_DEFAULT,
            container_max_per_minute: CONTAINER_MAX_PER_MINUTE_DEFAULT,
            snap_count: SNAP_COUNT_DEFAULT,
            autopurge_snap_retain_count: AUTOPURGE_SNAP_RETAIN_COUNT_DEFAULT,
            autopurge_purge_interval_hours: 0,
            force_sync: true,
            global_outstanding_limit: GLOBAL_OUTSTANDING_LIMIT_DEFAULT,
            client_output_limit: CLIENT_OUTPUT_LIMIT_DEFAULT,
            election_finalize_wait_ms: ELECTION_FINALIZE_WAIT_DEFAULT_MS,
            spin_before_park_us: SPIN_BEFORE_PARK_DEFAULT_US,
            election_grace_ms: ELECTION_GRACE_DEFAULT_MS,
            cores: None,
            zab_core: ZabCore::Auto,
            warnings: Vec::new(),
            props: Default::default(),
        }
    }
}

impl Config {
    /// The output a connection may have waiting before it is taken for a client that stopped
    /// reading: `corral.clientOutputLimit`, but never less than what a reading client can have
    /// queued (reading pauses at [`OUTPUT_HIGH_WATER`], and one more reply can carry a whole
    /// znode of up to `jute.maxbuffer`, twice over for a multiRead at its bound).
    pub fn output_limit(&self) -> usize {
        let reading = OUTPUT_HIGH_WATER + 2 * self.jute_max_buffer as usize;
        self.client_output_limit.max(reading)
    }

    /// Where the transaction log lives: `dataLogDir`, or `dataDir` when unset.
    pub fn log_dir(&self) -> &Path {
        self.data_log_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// Whether this is a replicated ensemble: more than one voting server. A single
    /// `server.N` line runs standalone, as ZooKeeper does with `standaloneEnabled=true`.
    pub fn is_distributed(&self) -> bool {
        self.voting_servers() > 1
    }

    /// How many `server.N` lines are participants (voters), not observers.
    pub fn voting_servers(&self) -> usize {
        participants(&self.servers)
    }

    /// This server's own `server.N` line, if `myid` names one.
    pub fn my_server(&self) -> Option<&ServerSpec> {
        self.my_id.and_then(|id| self.servers.get(&id))
    }
}

fn participants(servers: &BTreeMap<u64, ServerSpec>) -> usize {
    servers
        .values()
        .filter(|s| s.role == PeerRole::Participant)
        .count()
}

#[cfg(test)]
mod tests {
    use super::builder::tests::from_text;
    use super::*;

    #[test]
    fn whitelist_rules() {
        let default = FourLetterWhitelist::default();
        assert!(default.allows("srvr"));
        assert!(!default.allows("ruok"));
        let all = FourLetterWhitelist::parse("ruok, *");
        assert_eq!(all, FourLetterWhitelist::All);
        assert!(all.allows("wchc") && all.allows("srvr"));
        assert!(!all.allows("nope"));
        let some = FourLetterWhitelist::parse(" stat , ruok,");
        assert!(some.allows("stat") && some.allows("ruok") && some.allows("srvr"));
        assert!(!some.allows("conf"));
        assert!(
            !some.allows("STAT"),
            "names are case-sensitive, as in ZooKeeper"
        );
        let empty = FourLetterWhitelist::parse("");
        assert_eq!(empty, FourLetterWhitelist::default());
        // Unknown names are kept out of the way with a warning.
        let c = from_text("4lw.commands.whitelist=ruok,bogus\n").unwrap();
        assert_eq!(c.warnings.len(), 1);
    }
}
