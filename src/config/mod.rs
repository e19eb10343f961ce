//! Server configuration: ZooKeeper's `zoo.cfg` plus corral's command-line flags.
//!
//! Sources, lowest priority first: built-in defaults, the zoo.cfg file, command-line
//! settings (in the order given; the last one wins). So a flag overrides the file
//! whatever their order on the command line. After that, `<dataDir>/myid` is read, if
//! present, and the whole is validated the way ZooKeeper's `QuorumPeerConfig` does.
//!
//! zoo.cfg grammar, as `java.util.Properties.load` reads it (ZooKeeper's own loader):
//!
//! ```text
//! file     = { line }                      ; lines end in \n, \r\n or \r
//! line     = ws* ( comment | blank | entry )
//! comment  = ( "#" | "!" ) any*            ; a comment line never continues
//! entry    = key ws* [ ( "=" | ":" ) ] ws* value
//! key      = { char - unescaped ( "=" | ":" | ws ) }
//! value    = rest of the logical line      ; ZooKeeper trims key and value
//! ws       = " " | "\t" | "\f"
//! ```
//!
//! A line ending in an odd number of backslashes continues on the next natural line,
//! whose leading whitespace is dropped. Escapes `\t \n \r \f \uXXXX` are decoded and
//! any other `\c` is `c` (so Windows paths need `\\`). A key given twice: the last wins.
//! Corral reads the file as UTF-8 and falls back to ISO-8859-1 (Java's encoding for
//! `Properties.load`) when it is not valid UTF-8.
//!
//! Keys ZooKeeper sends to `System.setProperty("zookeeper." + key)` are recognised here
//! by their zoo.cfg spelling (`4lw.commands.whitelist`, `snapCount`, `forceSync`, ...).
//! Unknown keys and ZooKeeper keys corral does not use become `Config::warnings`, never
//! errors; keys whose silent omission would change cluster semantics (`dynamicConfigFile`,
//! hierarchical quorum `group.N`/`weight.N`, multi-address `server.N` lines) are errors.
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
    /// `DigestAuthenticationProvider.superDigest`, as `user:base64(sha1(user:password))`.
    pub super_digest: Option<String>,
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
    /// `corral.cores`: shard executors to run; `None` = one per CPU in the affinity mask.
    pub cores: Option<usize>,
    /// Unknown keys and ZooKeeper keys corral ignores, one human-readable line each.
    pub warnings: Vec<String>,
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

/// A `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// 1-based line on which the logical line starts.
    pub line: usize,
}

/// The command line, parsed but not yet applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub config_path: Option<PathBuf>,
    /// In command-line order.
    pub settings: Vec<Setting>,
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
            client_port_listen_backlog: CLIENT_PORT_LISTEN_BACKLOG_DEFAULT,
            max_client_cnxns: MAX_CLIENT_CNXNS_DEFAULT,
            min_session_timeout_ms: MIN_SESSION_TIMEOUT_TICKS * TICK_TIME_MS_DEFAULT,
            max_session_timeout_ms: MAX_SESSION_TIMEOUT_TICKS * TICK_TIME_MS_DEFAULT,
            four_letter_whitelist: FourLetterWhitelist::default(),
            jute_max_buffer: JUTE_MAX_BUFFER_DEFAULT,
            servers: BTreeMap::new(),
            my_id: None,
            extended_types_enabled: false,
            super_digest: None,
            container_check_interval_ms: CONTAINER_CHECK_INTERVAL_MS_DEFAULT,
            container_max_per_minute: CONTAINER_MAX_PER_MINUTE_DEFAULT,
            snap_count: SNAP_COUNT_DEFAULT,
            autopurge_snap_retain_count: AUTOPURGE_SNAP_RETAIN_COUNT_DEFAULT,
            autopurge_purge_interval_hours: 0,
            force_sync: true,
            global_outstanding_limit: GLOBAL_OUTSTANDING_LIMIT_DEFAULT,
            client_output_limit: CLIENT_OUTPUT_LIMIT_DEFAULT,
            cores: None,
            warnings: Vec::new(),
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

    /// Builds the configuration from the process arguments **without** the program name:
    /// `Config::from_args(std::env::args().skip(1))`. Reads the zoo.cfg it names and
    /// `<dataDir>/myid`. `--help` yields `Err(ConfigError::Help(usage()))`.
    pub fn from_args(args: impl Iterator<Item = String>) -> Result<Config, ConfigError> {
        let args = parse_args(args)?;
        let file_text = match &args.config_path {
            Some(path) => Some((path.as_path(), read_text_file(path)?)),
            None => None,
        };
        let file = file_text
            .as_ref()
            .map(|(path, text)| (*path, text.as_str()));
        Config::from_sources(file, &args.settings, &read_myid_file)
    }

    /// Reads one zoo.cfg (and `<dataDir>/myid`) with no command-line overrides.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text_file(path)?;
        Config::from_sources(Some((path, &text)), &[], &read_myid_file)
    }

    /// The pure core: defaults, then the zoo.cfg text (if any), then `settings` in order,
    /// then the myid file via `read_myid` (given `<dataDir>/myid`; `Ok(None)` = absent),
    /// then validation.
    pub fn from_sources(
        zoo_cfg: Option<(&Path, &str)>,
        settings: &[Setting],
        read_myid: &dyn Fn(&Path) -> io::Result<Option<String>>,
    ) -> Result<Config, ConfigError> {
        let mut builder = Builder::default();
        if let Some((path, text)) = zoo_cfg {
            builder.config.config_path = Some(path.to_path_buf());
            let properties = parse_properties(text).map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                line: e.line,
                reason: e.reason,
            })?;
            // Java's Properties is a hash table: a repeated key keeps its last value.
            let mut last_line: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &properties {
                if let Some(previous) = last_line.insert(p.key.as_str(), p.line) {
                    builder.config.warnings.push(format!(
                        "{}: `{}` is also set on line {previous}; the last one wins",
                        Origin::File {
                            path: path.to_path_buf(),
                            line: p.line
                        },
                        p.key
                    ));
                }
            }
            for p in &properties {
                if last_line.get(p.key.as_str()) == Some(&p.line) {
                    let origin = Origin::File {
                        path: path.to_path_buf(),
                        line: p.line,
                    };
                    builder.apply(&p.key, &p.value, &origin)?;
                }
            }
        }
        for s in settings {
            builder.apply(&s.key, &s.value, &s.origin)?;
        }
        let myid_path = builder.config.data_dir.join(MYID_FILE);
        let myid = read_myid(&myid_path).map_err(|source| ConfigError::Io {
            path: myid_path.clone(),
            source,
        })?;
        builder.finish(myid.as_deref().map(|text| (myid_path.as_path(), text)))
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

// ---------------------------------------------------------------------------------------
// Applying settings
// ---------------------------------------------------------------------------------------

/// Settings that are only resolved once every source has been applied.
#[derive(Default)]
struct Builder {
    config: Config,
    /// `None` or ZooKeeper's -1: derive from tickTime.
    min_session_timeout_ms: Option<u32>,
    max_session_timeout_ms: Option<u32>,
    client_port_origin: Option<Origin>,
    client_port_address_origin: Option<Origin>,
    snap_retain_origin: Option<Origin>,
    /// Where each `server.N` line came from.
    server_origins: BTreeMap<u64, Origin>,
}

/// ZooKeeper keys corral accepts and ignores (exact names).
const IGNORED_KEYS: &[&str] = &[
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "secureClientPort",
    "secureClientPortAddress",
    "observerMasterPort",
    "connectToLearnerMasterLimit",
    "quorumListenOnAllIPs",
    "syncEnabled",
    "standaloneEnabled",
    "reconfigEnabled",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "quorum.cnxn.threads.size",
    "oraclePath",
    "preAllocSize",
    "maxCnxns",
    "fsync.warningthresholdms",
    "leaderServes",
    "cnxTimeout",
    "electionPortBindRetry",
    "skipACL",
    "serverCnxnFactory",
    "audit.enable",
    "snapshot.trust.empty",
    "digest.enabled",
    "enforceQuota",
    "requestThrottleLimit",
    "requestThrottleStallTime",
    "requestThrottleDropStale",
    "commitLogCount",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "serializeLastProcessedZxid.enabled",
    "jute.maxbuffer.extrasize",
    "maxResponseCacheSize",
    "maxGetChildrenResponseCacheSize",
    "sessionRequireClientSASLAuth",
    "closeSessionTxn.enabled",
    "flushDelay",
    "maxWriteQueuePollTime",
    "maxBatchSize",
    "snapshot.compression.method",
    "readonlymode.enabled",
    "largeRequestMaxBytes",
    "largeRequestThreshold",
    "watchManagerName",
    "watcherCleanThreshold",
    "watcherCleanIntervalInSeconds",
    "watcherCleanThreadsNum",
    "maxInProcessingDeadWatchers",
];

/// ZooKeeper key families corral accepts and ignores (prefixes).
const IGNORED_PREFIXES: &[&str] = &[
    "admin.",
    "metricsProvider.",
    "jvm.pause.",
    "quorum.auth.",
    "multiAddress.",
    "ssl.",
    "authProvider.",
    "enforce.auth.",
    "netty.",
    "learner.",
    "leader.",
    "connection_throttle_",
];

impl Builder {
    fn apply(&mut self, key: &str, value: &str, origin: &Origin) -> Result<(), ConfigError> {
        let c = &mut self.config;
        let v = value;
        match key {
            "tickTime" => c.tick_time_ms = parse_positive(key, v, origin)?,
            "initLimit" => c.init_limit = parse_u32(key, v, origin)?,
            "syncLimit" => c.sync_limit = parse_u32(key, v, origin)?,
            "dataDir" => c.data_dir = parse_path(key, v, origin)?,
            "dataLogDir" => c.data_log_dir = Some(parse_path(key, v, origin)?),
            "clientPort" => {
                c.client_port = parse_port(key, v, origin, true)?;
                self.client_port_origin = Some(origin.clone());
            }
            "clientPortAddress" => {
                c.client_port_address = parse_ip(key, v, origin)?;
                self.client_port_address_origin = Some(origin.clone());
            }
            "clientPortListenBacklog" => {
                c.client_port_listen_backlog = parse_num::<i32>(key, v, origin)?
            }
            "maxClientCnxns" => c.max_client_cnxns = parse_u32(key, v, origin)?,
            "minSessionTimeout" => {
                self.min_session_timeout_ms = parse_session_timeout(key, v, origin)?
            }
            "maxSessionTimeout" => {
                self.max_session_timeout_ms = parse_session_timeout(key, v, origin)?
            }
            "4lw.commands.whitelist" => {
                let list = FourLetterWhitelist::parse(v);
                if let FourLetterWhitelist::Only(names) = &list {
                    for name in names
                        .iter()
                        .filter(|n| !FOUR_LETTER_WORDS.contains(&n.as_str()))
                    {
                        c.warnings.push(format!(
                            "{origin}: `{name}` in {key} is not a four-letter word; ignored"
                        ));
                    }
                }
                c.four_letter_whitelist = list;
            }
            "jute.maxbuffer" | "juteMaxBuffer" => {
                let n: u32 = parse_positive(key, v, origin)?;
                if n > JUTE_MAX_BUFFER_MAX {
                    return Err(invalid(
                        key,
                        v,
                        origin,
                        &format!(
                            "larger than {JUTE_MAX_BUFFER_MAX}, the most corral accepts \
                             (docs/design/storage.md, \"Size bounds\")"
                        ),
                    ));
                }
                c.jute_max_buffer = n;
            }
            "extendedTypesEnabled" => c.extended_types_enabled = parse_bool(key, v, origin)?,
            "DigestAuthenticationProvider.superDigest" => {
                c.super_digest = Some(parse_super_digest(key, v, origin)?)
            }
            "znode.container.checkIntervalMs" => {
                c.container_check_interval_ms = parse_positive(key, v, origin)?
            }
            "znode.container.maxPerMinute" => {
                // ContainerManager divides a minute by this.
                c.container_max_per_minute = parse_positive(key, v, origin)?
            }
            "snapCount" => {
                let n = parse_u32(key, v, origin)?;
                if n < SNAP_COUNT_MIN {
                    c.warnings.push(format!(
                        "{origin}: snapCount {n} is below {SNAP_COUNT_MIN}; using {SNAP_COUNT_MIN}"
                    ));
                }
                c.snap_count = n.max(SNAP_COUNT_MIN);
            }
            "autopurge.snapRetainCount" => {
                c.autopurge_snap_retain_count = parse_u32(key, v, origin)?;
                self.snap_retain_origin = Some(origin.clone());
            }
            "autopurge.purgeInterval" => {
                // ZooKeeper schedules no purge for any value <= 0.
                let hours = parse_num::<i64>(key, v, origin)?;
                c.autopurge_purge_interval_hours = u32::try_from(hours.max(0))
                    .map_err(|_| invalid(key, v, origin, "too large"))?;
            }
            "forceSync" => c.force_sync = parse_yes_no(key, v, origin)?,
            "globalOutstandingLimit" => {
                c.global_outstanding_limit = parse_positive(key, v, origin)?
            }
            "corral.clientOutputLimit" => {
                c.client_output_limit = parse_positive(key, v, origin)? as usize
            }
            "corral.cores" => {
                let n: usize = parse_num(key, v, origin)?;
                if n == 0 || n > CORES_MAX {
                    return Err(invalid(
                        key,
                        v,
                        origin,
                        &format!("expected 1..={CORES_MAX}"),
                    ));
                }
                c.cores = Some(n);
            }
            "electionAlg" => {
                if parse_u32(key, v, origin)? != ELECTION_ALG_SUPPORTED {
                    return Err(invalid(
                        key,
                        v,
                        origin,
                        "only 3 (fast leader election) exists",
                    ));
                }
            }
            "peerType" => {
                // The servers list decides the role (ZooKeeper only warns on a mismatch),
                // but a misspelt value is still an error there.
                parse_role(key, v, origin)?;
            }
            "dynamicConfigFile" => {
                return Err(ConfigError::Unsupported {
                    key: key.to_string(),
                    origin: origin.clone(),
                    reason: "put the server.N lines in zoo.cfg itself".to_string(),
                })
            }
            _ if key.starts_with("server.") => {
                let spec = parse_server(key, v, origin)?;
                self.server_origins.insert(spec.id, origin.clone());
                c.servers.insert(spec.id, spec);
            }
            _ if key.starts_with("group") || key.starts_with("weight") => {
                return Err(ConfigError::Unsupported {
                    key: key.to_string(),
                    origin: origin.clone(),
                    reason: "hierarchical quorums are not implemented; use majority quorums"
                        .to_string(),
                })
            }
            _ if IGNORED_KEYS.contains(&key)
                || IGNORED_PREFIXES.iter().any(|p| key.starts_with(p)) =>
            {
                c.warnings.push(format!(
                    "{origin}: `{key}` is a ZooKeeper setting corral does not use; ignored"
                ));
            }
            _ => c
                .warnings
                .push(format!("{origin}: unknown key `{key}`; ignored")),
        }
        Ok(())
    }

    fn finish(mut self, myid: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
        let c = &mut self.config;

        // Session timeout bounds: ZooKeeper's -1 (or unset) means 2 and 20 ticks.
        let tick = u64::from(c.tick_time_ms);
        let min = match self.min_session_timeout_ms {
            Some(ms) => u64::from(ms),
            None => tick * u64::from(MIN_SESSION_TIMEOUT_TICKS),
        };
        let max = match self.max_session_timeout_ms {
            Some(ms) => u64::from(ms),
            None => tick * u64::from(MAX_SESSION_TIMEOUT_TICKS),
        };
        if max > u64::from(SESSION_TIMEOUT_MAX_MS) {
            return Err(ConfigError::Invalid(format!(
                "maxSessionTimeout {max} ms exceeds {SESSION_TIMEOUT_MAX_MS} ms \
                 (a tickTime of {tick} ms is too large for the default of \
                 {MAX_SESSION_TIMEOUT_TICKS} ticks)"
            )));
        }
        if min > max {
            return Err(ConfigError::Invalid(format!(
                "minSessionTimeout ({min} ms) must not be larger than maxSessionTimeout ({max} ms)"
            )));
        }
        // Both fit: min <= max <= SESSION_TIMEOUT_MAX_MS.
        c.min_session_timeout_ms = min as u32;
        c.max_session_timeout_ms = max as u32;

        if c.autopurge_snap_retain_count < AUTOPURGE_SNAP_RETAIN_COUNT_MIN {
            let origin = self
                .snap_retain_origin
                .as_ref()
                .expect("set with the value");
            c.warnings.push(format!(
                "{origin}: autopurge.snapRetainCount {} is below {min}; using {min}",
                c.autopurge_snap_retain_count,
                min = AUTOPURGE_SNAP_RETAIN_COUNT_MIN
            ));
            c.autopurge_snap_retain_count = AUTOPURGE_SNAP_RETAIN_COUNT_MIN;
        }

        if let Some((path, text)) = myid {
            // ZooKeeper reads the first line only.
            let first = text.lines().next().unwrap_or("").trim();
            let id = first
                .parse::<u64>()
                .ok()
                .filter(|id| *id <= SERVER_ID_MAX)
                .ok_or_else(|| ConfigError::InvalidMyId {
                    path: path.to_path_buf(),
                    content: first.to_string(),
                })?;
            c.my_id = Some(id);
        }

        let voting = participants(&c.servers);
        let observing = c.servers.len() - voting;
        if voting == 0 && observing > 0 {
            return Err(ConfigError::Invalid(
                "observers without participants is an invalid configuration".to_string(),
            ));
        }
        if voting == 1 && observing > 0 {
            return Err(ConfigError::Invalid(
                "observers without a quorum (only one participant) is an invalid configuration"
                    .to_string(),
            ));
        }
        if c.is_distributed() {
            if c.init_limit == 0 {
                return Err(ConfigError::Invalid("initLimit is not set".to_string()));
            }
            if c.sync_limit == 0 {
                return Err(ConfigError::Invalid("syncLimit is not set".to_string()));
            }
            let Some(id) = c.my_id else {
                return Err(ConfigError::Invalid(format!(
                    "myid file is missing: a replicated server needs {}",
                    c.data_dir.join(MYID_FILE).display()
                )));
            };
            if !c.servers.contains_key(&id) {
                return Err(ConfigError::Invalid(format!(
                    "myid is {id} but there is no server.{id} line"
                )));
            }
            if voting == 2 {
                c.warnings.push(
                    "two voting servers: no server failure will be tolerated; use at least 3"
                        .to_string(),
                );
            } else if voting.is_multiple_of(2) {
                c.warnings.push(format!(
                    "{voting} voting servers tolerate no more failures than {}; \
                     consider an odd number",
                    voting - 1
                ));
            }
        }

        if c.extended_types_enabled {
            if let Some(id) = c.my_id.filter(|id| *id > SERVER_ID_MAX_EXTENDED_TYPES) {
                return Err(ConfigError::Invalid(format!(
                    "extendedTypesEnabled is true but server id {id} is larger than \
                     {SERVER_ID_MAX_EXTENDED_TYPES}"
                )));
            }
        }

        // The own server line's client endpoint decides the client port and address,
        // unless it contradicts an explicit setting (ZooKeeper's setupClientPort).
        if let Some(endpoint) = c.my_server().and_then(|s| s.client.clone()) {
            let id = c.my_id.expect("my_server implies my_id");
            if let Some(origin) = &self.client_port_origin {
                if c.client_port != endpoint.port {
                    return Err(ConfigError::Invalid(format!(
                        "{origin}: clientPort {} differs from the client port {} of server.{id}",
                        c.client_port, endpoint.port
                    )));
                }
            }
            c.client_port = endpoint.port;
            if let Some(host) = &endpoint.host {
                let origin = &self.server_origins[&id];
                let address = parse_ip(&format!("server.{id}"), host, origin)?;
                if let Some(origin) = &self.client_port_address_origin {
                    if !c.client_port_address.is_unspecified() && c.client_port_address != address {
                        return Err(ConfigError::Invalid(format!(
                            "{origin}: clientPortAddress {} differs from the client address {} \
                             of server.{id}",
                            c.client_port_address, address
                        )));
                    }
                }
                c.client_port_address = address;
            }
        }

        Ok(self.config)
    }
}

// ---------------------------------------------------------------------------------------
// Value parsers
// ---------------------------------------------------------------------------------------

fn invalid(key: &str, value: &str, origin: &Origin, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        origin: origin.clone(),
        reason: reason.to_string(),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str, origin: &Origin) -> Result<T, ConfigError> {
    v.parse::<T>()
        .map_err(|_| invalid(key, v, origin, "expected an integer"))
}

fn parse_u32(key: &str, v: &str, origin: &Origin) -> Result<u32, ConfigError> {
    v.parse::<u32>()
        .map_err(|_| invalid(key, v, origin, "expected a non-negative integer"))
}

fn parse_positive(key: &str, v: &str, origin: &Origin) -> Result<u32, ConfigError> {
    match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(key, v, origin, "expected a positive integer")),
    }
}

fn parse_port(key: &str, v: &str, origin: &Origin, zero_ok: bool) -> Result<u16, ConfigError> {
    match v.parse::<u16>() {
        Ok(0) if !zero_ok => Err(invalid(key, v, origin, "expected a port 1-65535")),
        Ok(port) => Ok(port),
        Err(_) => Err(invalid(key, v, origin, "expected a port number")),
    }
}

/// ZooKeeper's session timeouts: -1 means "derive from tickTime".
fn parse_session_timeout(key: &str, v: &str, origin: &Origin) -> Result<Option<u32>, ConfigError> {
    match v.parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(ms) if (0..=i64::from(SESSION_TIMEOUT_MAX_MS)).contains(&ms) => Ok(Some(ms as u32)),
        _ => Err(invalid(
            key,
            v,
            origin,
            "expected milliseconds, or -1 for the default",
        )),
    }
}

fn parse_path(key: &str, v: &str, origin: &Origin) -> Result<PathBuf, ConfigError> {
    if v.is_empty() {
        return Err(invalid(key, v, origin, "expected a directory path"));
    }
    Ok(PathBuf::from(v))
}

/// An IP literal (IPv6 with or without brackets), or `localhost`. No name resolution.
fn parse_ip(key: &str, v: &str, origin: &Origin) -> Result<IpAddr, ConfigError> {
    if v.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    bare.parse::<IpAddr>().map_err(|_| {
        invalid(
            key,
            v,
            origin,
            "expected an IP address (corral does not resolve host names)",
        )
    })
}

/// ZooKeeper's parseBoolean: `true`/`false`, any case.
fn parse_bool(key: &str, v: &str, origin: &Origin) -> Result<bool, ConfigError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(key, v, origin, "choose 'true' or 'false'"))
    }
}

/// `forceSync` is documented as yes/no; true/false are accepted too.
fn parse_yes_no(key: &str, v: &str, origin: &Origin) -> Result<bool, ConfigError> {
    if v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("no") || v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(key, v, origin, "choose 'yes' or 'no'"))
    }
}

fn parse_super_digest(key: &str, v: &str, origin: &Origin) -> Result<String, ConfigError> {
    match v.split_once(':') {
        Some((user, hash)) if !user.is_empty() && !hash.is_empty() => Ok(v.to_string()),
        _ => Err(invalid(key, v, origin, "expected user:base64digest")),
    }
}

fn parse_role(key: &str, v: &str, origin: &Origin) -> Result<PeerRole, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "participant" => Ok(PeerRole::Participant),
        "observer" => Ok(PeerRole::Observer),
        _ => Err(invalid(
            key,
            v,
            origin,
            "expected 'participant' or 'observer'",
        )),
    }
}

/// Splits `host:port[:...]` with ZooKeeper's `ConfigUtils.getHostAndPort` rules: a
/// leading `[` brackets an IPv6 host.
fn split_host_and_ports(s: &str) -> Option<Vec<&str>> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        if after.is_empty() {
            return Some(vec![host]);
        }
        let ports = after.strip_prefix(':')?;
        if ports.is_empty() {
            return None;
        }
        let mut parts = vec![host];
        parts.extend(ports.split(':'));
        Some(parts)
    } else {
        Some(s.split(':').collect())
    }
}

/// `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`
fn parse_server(key: &str, v: &str, origin: &Origin) -> Result<ServerSpec, ConfigError> {
    let id = key["server.".len()..]
        .parse::<u64>()
        .ok()
        .filter(|id| *id <= SERVER_ID_MAX)
        .ok_or_else(|| {
            invalid(
                key,
                v,
                origin,
                &format!("server id must be 0..={SERVER_ID_MAX}"),
            )
        })?;
    const FORM: &str = "expected host:quorumPort:electionPort[:participant|:observer]\
                        [;[clientHost:]clientPort]";
    let mut halves = v.split(';');
    let server_part = halves.next().unwrap_or("");
    let client_part = halves.next();
    if halves.next().is_some() {
        return Err(invalid(key, v, origin, FORM));
    }
    if server_part.contains('|') {
        return Err(ConfigError::Unsupported {
            key: key.to_string(),
            origin: origin.clone(),
            reason: "multiple addresses per server (multiAddress) are not implemented".to_string(),
        });
    }
    let parts = split_host_and_ports(server_part).ok_or_else(|| invalid(key, v, origin, FORM))?;
    if !(3..=4).contains(&parts.len()) || parts[0].is_empty() {
        return Err(invalid(key, v, origin, FORM));
    }
    let quorum_port = parse_port(key, parts[1], origin, false)?;
    let election_port = parse_port(key, parts[2], origin, false)?;
    if quorum_port == election_port {
        return Err(invalid(
            key,
            v,
            origin,
            "quorum and election ports must differ",
        ));
    }
    let role = match parts.get(3) {
        Some(role) => parse_role(key, role, origin)?,
        None => PeerRole::Participant,
    };
    let client = match client_part {
        None => None,
        Some(client) => {
            let parts = split_host_and_ports(client.trim())
                .filter(|p| (1..=2).contains(&p.len()))
                .ok_or_else(|| invalid(key, v, origin, FORM))?;
            let (host, port) = match parts.as_slice() {
                [port] => (None, port),
                [host, port] => (Some(host.to_string()), port),
                _ => unreachable!("length checked above"),
            };
            Some(ClientEndpoint {
                host,
                port: parse_port(key, port, origin, false)?,
            })
        }
    };
    Ok(ServerSpec {
        id,
        host: parts[0].to_string(),
        quorum_port,
        election_port,
        role,
        client,
    })
}

// ---------------------------------------------------------------------------------------
// Properties syntax
// ---------------------------------------------------------------------------------------

/// A syntax error in a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertiesError {
    pub line: usize,
    pub reason: String,
}

/// Java's whitespace for properties files.
fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Java's `String.trim`: strips every char <= U+0020 at both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

fn ends_in_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Parses properties text into entries in file order, keys and values trimmed as
/// ZooKeeper trims them. Duplicates are kept; the caller decides (last wins).
pub fn parse_properties(text: &str) -> Result<Vec<Property>, PropertiesError> {
    // Natural lines end in \n, \r\n or a lone \r.
    let mut numbered: Vec<(usize, &str)> = Vec::new();
    for chunk in text.split('\n') {
        let chunk = chunk.strip_suffix('\r').unwrap_or(chunk);
        for piece in chunk.split('\r') {
            numbered.push((numbered.len() + 1, piece));
        }
    }

    let mut out = Vec::new();
    let mut i = 0;
    while i < numbered.len() {
        let (start_line, raw) = numbered[i];
        i += 1;
        let first = raw.trim_start_matches(is_ws);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_string();
        while ends_in_odd_backslashes(&logical) {
            logical.pop();
            let Some(&(_, next)) = numbered.get(i) else {
                break;
            };
            i += 1;
            logical.push_str(next.trim_start_matches(is_ws));
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key, start_line)?;
        let value = unescape(raw_value, start_line)?;
        out.push(Property {
            key: java_trim(&key).to_string(),
            value: java_trim(&value).to_string(),
            line: start_line,
        });
    }
    Ok(out)
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace; then skips
/// whitespace, at most one `=`/`:`, and whitespace again.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    for (idx, c) in line.char_indices() {
        if !escaped && (c == '=' || c == ':') {
            key_end = idx;
            value_start = idx + 1;
            has_separator = true;
            break;
        }
        if !escaped && is_ws(c) {
            key_end = idx;
            value_start = idx + c.len_utf8();
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    let mut rest = &line[value_start..];
    loop {
        let trimmed = rest.trim_start_matches(is_ws);
        match trimmed.chars().next() {
            Some(c @ ('=' | ':')) if !has_separator => {
                has_separator = true;
                rest = &trimmed[c.len_utf8()..];
            }
            _ => {
                rest = trimmed;
                break;
            }
        }
    }
    (&line[..key_end], rest)
}

/// Decodes `\t \n \r \f \uXXXX` and `\c` -> `c`.
fn unescape(s: &str, line: usize) -> Result<String, PropertiesError> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    // \u escapes are UTF-16 units; surrogate pairs may be split across two escapes.
    let mut units: Vec<u16> = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        let decoded = match chars.next() {
            None => '\\',
            Some('t') => '\t',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('f') => '\x0c',
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let unit = (hex.len() == 4)
                    .then(|| u16::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| PropertiesError {
                        line,
                        reason: format!("malformed \\uxxxx encoding: \\u{hex}"),
                    })?;
                units.push(unit);
                continue;
            }
            Some(other) => other,
        };
        let mut buf = [0u16; 2];
        units.extend_from_slice(decoded.encode_utf16(&mut buf));
    }
    Ok(String::from_utf16_lossy(&units))
}

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

const USAGE: &str = "\
corral: a ZooKeeper-compatible coordination server

Usage:
  corral [OPTIONS] [zoo.cfg]
  corral [OPTIONS] <port> <dataDir> [tickTime] [maxClientCnxns]

Options:
  --config <path>      read settings from a ZooKeeper zoo.cfg
  --port <n>           client port (zoo.cfg clientPort; default 2181; 0 picks a free port)
  --address <ip>       client listen address (clientPortAddress; default 127.0.0.1,
                       use 0.0.0.0 to listen on all interfaces)
  --data-dir <path>    snapshots, logs and myid (dataDir; default ./data)
  --cores <n>          shard executors to run (corral.cores; default: the CPUs in
                       the process affinity mask)
  --set <key=value>    set any zoo.cfg key; repeatable
  -h, --help           print this help

Command-line settings override the zoo.cfg whatever their order; among
themselves the last one wins. Unknown zoo.cfg keys are warned about, not fatal.

Tools (read the files; no server needed):
  corral dump-log <dataLogDir>/wal/wal-<seq>.log ...
                       print a transaction log segment's records and where it ends
  corral dump-snapshot [--data] [--json] <dataDir>/snapshots/snap-<zxid>.snap
                       print a snapshot's znodes (stat, ACL; --data: base64 data),
                       sessions and totals; exit status 1 if it is damaged
";

/// The `--help` text.
pub fn usage() -> &'static str {
    USAGE
}

/// Parses the arguments (without the program name) into a config path and settings.
/// Reads no files.
pub fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, ConfigError> {
    let mut out = Args::default();
    let mut positional: Vec<String> = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(ConfigError::Help(USAGE));
        }
        if arg == "--" {
            positional.extend(args.by_ref());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            positional.push(arg);
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let key = match flag.as_str() {
            "--config" => None,
            "--port" => Some("clientPort"),
            "--address" => Some("clientPortAddress"),
            "--data-dir" => Some("dataDir"),
            "--cores" => Some("corral.cores"),
            "--set" => None,
            _ => return Err(ConfigError::Usage(format!("unknown option `{arg}`"))),
        };
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| ConfigError::Usage(format!("`{flag}` needs a value")))?,
        };
        let origin = Origin::Flag(flag.clone());
        match (flag.as_str(), key) {
            ("--config", _) => set_config_path(&mut out, PathBuf::from(value))?,
            ("--set", _) => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    ConfigError::Usage(format!("`--set {value}`: expected key=value"))
                })?;
                let k = k.trim();
                if k.is_empty() {
                    return Err(ConfigError::Usage(format!("`--set {value}`: empty key")));
                }
                out.settings.push(Setting {
                    key: k.to_string(),
                    value: java_trim(v).to_string(),
                    origin,
                });
            }
            (_, Some(key)) => out.settings.push(Setting {
                key: key.to_string(),
                value: value.trim().to_string(),
                origin,
            }),
            (_, None) => unreachable!("every flag maps to a key or is handled above"),
        }
    }
    match positional.len() {
        0 => {}
        // `zkServer.sh` and `QuorumPeerMain` pass the zoo.cfg as the only argument.
        1 => set_config_path(&mut out, PathBuf::from(positional.remove(0)))?,
        // `ZooKeeperServerMain port dataDir [tickTime] [maxClientCnxns]`.
        2..=4 => {
            let keys = ["clientPort", "dataDir", "tickTime", "maxClientCnxns"];
            // Inserted before the flags so that flags still win.
            let legacy: Vec<Setting> = positional
                .into_iter()
                .zip(keys)
                .enumerate()
                .map(|(n, (value, key))| Setting {
                    key: key.to_string(),
                    value,
                    origin: Origin::Positional(n + 1),
                })
                .collect();
            out.settings.splice(0..0, legacy);
        }
        _ => {
            return Err(ConfigError::Usage(format!(
                "too many arguments: {}",
                positional.join(" ")
            )))
        }
    }
    Ok(out)
}

fn set_config_path(args: &mut Args, path: PathBuf) -> Result<(), ConfigError> {
    if let Some(previous) = &args.config_path {
        return Err(ConfigError::Usage(format!(
            "two config files given: {} and {}",
            previous.display(),
            path.display()
        )));
    }
    args.config_path = Some(path);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// File access (the only I/O in this module)
// ---------------------------------------------------------------------------------------

fn read_text_file(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(decode_text(bytes))
}

/// UTF-8, or ISO-8859-1 (every byte is the code point) as Java's `Properties.load` reads.
fn decode_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// Reads `<dataDir>/myid` if it is a regular file, as ZooKeeper does.
fn read_myid_file(path: &Path) -> io::Result<Option<String>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(decode_text(std::fs::read(path)?))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn no_myid(_: &Path) -> io::Result<Option<String>> {
        Ok(None)
    }

    fn from_text(text: &str) -> Result<Config, ConfigError> {
        Config::from_sources(Some((Path::new("zoo.cfg"), text)), &[], &no_myid)
    }

    fn from_text_myid(text: &str, myid: &str) -> Result<Config, ConfigError> {
        let myid = myid.to_string();
        Config::from_sources(Some((Path::new("zoo.cfg"), text)), &[], &move |_: &Path| {
            Ok(Some(myid.clone()))
        })
    }

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn with_args(text: &str, list: &[&str]) -> Result<Config, ConfigError> {
        let parsed = parse_args(args(list))?;
        Config::from_sources(
            Some((Path::new("zoo.cfg"), text)),
            &parsed.settings,
            &no_myid,
        )
    }

    /// What ZooKeeper's conf/zoo_sample.cfg sets, with comments of our own.
    const SAMPLE: &str = "\
# milliseconds per tick
tickTime=2000
# ticks a follower may take to connect and sync
initLimit=10
# ticks a follower may lag
syncLimit=5
# snapshots go here
dataDir=/tmp/zookeeper
# clients connect here
clientPort=2181
#maxClientCnxns=60
#autopurge.snapRetainCount=3
#autopurge.purgeInterval=1

## Metrics Providers
#metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
#metricsProvider.httpPort=7000
";

    #[test]
    fn defaults() {
        let c = Config::from_sources(None, &[], &no_myid).unwrap();
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.init_limit, 10);
        assert_eq!(c.sync_limit, 5);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.data_log_dir, None);
        assert_eq!(c.log_dir(), Path::new("./data"));
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.client_port_listen_backlog, -1);
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.min_session_timeout_ms, 4000);
        assert_eq!(c.max_session_timeout_ms, 40000);
        assert_eq!(c.jute_max_buffer, 1_048_575);
        assert_eq!(
            c.four_letter_whitelist,
            FourLetterWhitelist::Only(BTreeSet::new())
        );
        assert!(c.servers.is_empty());
        assert_eq!(c.my_id, None);
        assert!(!c.extended_types_enabled);
        assert_eq!(c.super_digest, None);
        assert_eq!(c.container_check_interval_ms, 60_000);
        assert_eq!(c.container_max_per_minute, 10_000);
        assert_eq!(c.snap_count, 100_000);
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.autopurge_purge_interval_hours, 0);
        assert!(c.force_sync);
        assert_eq!(c.global_outstanding_limit, 1000);
        assert_eq!(c.cores, None);
        assert!(c.warnings.is_empty());
        assert!(!c.is_distributed());
        assert_eq!(c, Config::default());
    }

    #[test]
    fn zookeeper_sample_config() {
        let c = from_text(SAMPLE).unwrap();
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.init_limit, 10);
        assert_eq!(c.sync_limit, 5);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zookeeper"));
        assert_eq!(c.log_dir(), Path::new("/tmp/zookeeper"));
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.config_path, Some(PathBuf::from("zoo.cfg")));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn session_timeouts_follow_tick_time() {
        let c = from_text("tickTime=500\n").unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1000, 10000)
        );
        let c = from_text("tickTime=500\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n").unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1000, 10000)
        );
        let c = from_text("minSessionTimeout=100\nmaxSessionTimeout=200\n").unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (100, 200)
        );
    }

    #[test]
    fn min_above_max_is_an_error() {
        let err = from_text("minSessionTimeout=50000\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)));
        assert!(err.to_string().contains("minSessionTimeout"), "{err}");
        assert!(from_text("minSessionTimeout=-2\n").is_err());
    }

    #[test]
    fn tick_time_must_be_positive() {
        for bad in ["0", "-5", "abc", ""] {
            let err = from_text(&format!("tickTime={bad}\n")).unwrap_err();
            match err {
                ConfigError::InvalidValue { key, origin, .. } => {
                    assert_eq!(key, "tickTime");
                    assert_eq!(
                        origin,
                        Origin::File {
                            path: "zoo.cfg".into(),
                            line: 1
                        }
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        // 20 ticks must still fit an int32 session timeout.
        assert!(matches!(
            from_text("tickTime=200000000\n"),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn error_names_key_and_line() {
        let err = from_text("# c\n\ntickTime=2000\nclientPort=http\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "zoo.cfg:4: invalid value `http` for clientPort: expected a port number"
        );
        let err = with_args("", &["--port", "99999"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command-line flag --port: invalid value `99999` for clientPort: expected a port number"
        );
    }

    #[test]
    fn properties_syntax() {
        let text = "  # indented comment\n\
                    ! bang comment\n\
                    a=1\n\
                    b = 2 \n\
                    c:3\n\
                    d 4\n\
                    e  :  5\n\
                    f\n\
                    g=x=y\n\
                    h=\\\n    continued\\\n  twice\n\
                    i\\=j=k\n\
                    l=tab\\there\\u0041\\\\\n\
                    # comment \\\n\
                    m=after comment\n\
                    \tn\t=\t6\n";
        let props = parse_properties(text).unwrap();
        let got: Vec<(&str, &str, usize)> = props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str(), p.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "1", 3),
                ("b", "2", 4),
                ("c", "3", 5),
                ("d", "4", 6),
                ("e", "5", 7),
                ("f", "", 8),
                ("g", "x=y", 9),
                ("h", "continuedtwice", 10),
                ("i=j", "k", 13),
                ("l", "tab\there\u{41}\\", 14),
                ("m", "after comment", 16),
                ("n", "6", 17),
            ]
        );
    }

    #[test]
    fn properties_line_endings_and_eof() {
        let props = parse_properties("a=1\r\nb=2\rc=3\\").unwrap();
        let got: Vec<(&str, &str, usize)> = props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str(), p.line))
            .collect();
        assert_eq!(got, vec![("a", "1", 1), ("b", "2", 2), ("c", "3", 3)]);
        // An empty continuation line ends the logical line.
        let props = parse_properties("a=x\\\n\nb=y\n").unwrap();
        assert_eq!(props[0].value, "x");
        assert_eq!(props[1].key, "b");
        // Surrogate pairs through \u escapes.
        let props = parse_properties("s=\\uD83D\\uDE00\n").unwrap();
        assert_eq!(props[0].value, "\u{1F600}");
    }

    #[test]
    fn malformed_unicode_escape_is_a_syntax_error() {
        let err = from_text("a=1\nb=\\u12\n").unwrap_err();
        match err {
            ConfigError::Syntax { line, .. } => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn latin1_fallback() {
        assert_eq!(
            decode_text(b"dataDir=/d\xe9j\xe0\n".to_vec()),
            "dataDir=/d\u{e9}j\u{e0}\n"
        );
        assert_eq!(
            decode_text("dataDir=/déjà\n".as_bytes().to_vec()),
            "dataDir=/déjà\n"
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let c = from_text("clientPort=1000\nclientPort=2000\n").unwrap();
        assert_eq!(c.client_port, 2000);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("line 1"), "{:?}", c.warnings);
    }

    #[test]
    fn unknown_and_ignored_keys_are_warnings() {
        let c = from_text(
            "tickTime=2000\nfancyNewThing=1\nadmin.enableServer=false\n\
             metricsProvider.httpPort=7000\nstandaloneEnabled=true\nreconfigEnabled=false\n",
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 5, "{:?}", c.warnings);
        assert_eq!(
            c.warnings[0],
            "zoo.cfg:2: unknown key `fancyNewThing`; ignored"
        );
        assert!(c.warnings[1].contains("`admin.enableServer` is a ZooKeeper setting"));
    }

    #[test]
    fn unsupported_keys_are_errors() {
        assert!(matches!(
            from_text("dynamicConfigFile=/etc/zk/zoo.cfg.dynamic\n"),
            Err(ConfigError::Unsupported { .. })
        ));
        assert!(matches!(
            from_text("group.1=1:2:3\n"),
            Err(ConfigError::Unsupported { .. })
        ));
        assert!(matches!(
            from_text("weight.1=1\n"),
            Err(ConfigError::Unsupported { .. })
        ));
        assert!(matches!(
            from_text("server.1=a:1:2|b:1:2\n"),
            Err(ConfigError::Unsupported { .. })
        ));
        assert!(from_text("electionAlg=3\n").is_ok());
        assert!(from_text("electionAlg=0\n").is_err());
        assert!(from_text("peerType=observer\n").is_ok());
        assert!(from_text("peerType=voter\n").is_err());
    }

    #[test]
    fn all_named_keys() {
        let c = from_text(
            "dataDir=/var/zk\ndataLogDir=/var/zk-log\nclientPortAddress=0.0.0.0\n\
             clientPortListenBacklog=128\nmaxClientCnxns=0\n\
             4lw.commands.whitelist= stat, ruok ,,conf\njute.maxbuffer=4194304\n\
             extendedTypesEnabled=TRUE\n\
             DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
             znode.container.checkIntervalMs=1000\nznode.container.maxPerMinute=50\n\
             snapCount=5000\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=24\n\
             forceSync=no\nglobalOutstandingLimit=2000\ncorral.cores=4\n",
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/zk"));
        assert_eq!(c.log_dir(), Path::new("/var/zk-log"));
        assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.client_port_listen_backlog, 128);
        assert_eq!(c.max_client_cnxns, 0);
        assert_eq!(
            c.four_letter_whitelist,
            FourLetterWhitelist::Only(["conf", "ruok", "stat"].map(String::from).into())
        );
        assert_eq!(c.jute_max_buffer, 4_194_304);
        assert!(c.extended_types_enabled);
        assert_eq!(
            c.super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        assert_eq!(c.container_check_interval_ms, 1000);
        assert_eq!(c.container_max_per_minute, 50);
        assert_eq!(c.snap_count, 5000);
        assert_eq!(c.autopurge_snap_retain_count, 5);
        assert_eq!(c.autopurge_purge_interval_hours, 24);
        assert!(!c.force_sync);
        assert_eq!(c.global_outstanding_limit, 2000);
        assert_eq!(c.cores, Some(4));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn value_checks() {
        assert!(from_text("juteMaxBuffer=1000\n").is_ok());
        assert!(from_text("jute.maxbuffer=0\n").is_err());
        assert!(from_text("jute.maxbuffer=4294967295\n").is_err());
        // The cap, and one past it (the issue's 200 MB case is well inside).
        assert!(from_text("jute.maxbuffer=200000000\n").is_ok());
        assert!(from_text("jute.maxbuffer=268435456\n").is_ok());
        assert!(from_text("jute.maxbuffer=268435457\n").is_err());
        assert!(from_text("extendedTypesEnabled=yes\n").is_err());
        assert!(from_text("forceSync=maybe\n").is_err());
        assert!(from_text("forceSync=YES\n").unwrap().force_sync);
        assert!(from_text("corral.cores=0\n").is_err());
        assert!(from_text("maxClientCnxns=-1\n").is_err());
        assert!(from_text("znode.container.maxPerMinute=0\n").is_err());
        assert!(from_text("DigestAuthenticationProvider.superDigest=nocolon\n").is_err());
        assert!(from_text("clientPortAddress=example.com\n").is_err());
        assert_eq!(
            from_text("clientPortAddress=[::1]\n")
                .unwrap()
                .client_port_address,
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        assert_eq!(
            from_text("clientPortAddress=localhost\n")
                .unwrap()
                .client_port_address,
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            from_text("autopurge.purgeInterval=-1\n")
                .unwrap()
                .autopurge_purge_interval_hours,
            0
        );
        assert_eq!(from_text("clientPort=0\n").unwrap().client_port, 0);
    }

    #[test]
    fn clamps_warn_like_zookeeper() {
        let c = from_text("snapCount=1\nautopurge.snapRetainCount=1\n").unwrap();
        assert_eq!(c.snap_count, 2);
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }

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

    #[test]
    fn server_lines() {
        let text = "server.1=zk1:2888:3888\n\
                    server.2=zk2:2888:3888:participant;2182\n\
                    server.3=[fe80::1]:2888:3888:observer;[::1]:2183\n\
                    server.4=zk4:2888:3888;10.0.0.4:2184\n\
                    server.5=zk5:2888:3888\n";
        let c = from_text_myid(text, "1\n").unwrap();
        assert_eq!(c.servers.len(), 5);
        assert_eq!(
            c.servers[&1],
            ServerSpec {
                id: 1,
                host: "zk1".into(),
                quorum_port: 2888,
                election_port: 3888,
                role: PeerRole::Participant,
                client: None,
            }
        );
        assert_eq!(
            c.servers[&2].client,
            Some(ClientEndpoint {
                host: None,
                port: 2182
            })
        );
        assert_eq!(c.servers[&3].host, "fe80::1");
        assert_eq!(c.servers[&3].role, PeerRole::Observer);
        assert_eq!(
            c.servers[&3].client,
            Some(ClientEndpoint {
                host: Some("::1".into()),
                port: 2183
            })
        );
        assert_eq!(
            c.servers[&4].client,
            Some(ClientEndpoint {
                host: Some("10.0.0.4".into()),
                port: 2184
            })
        );
        assert_eq!(c.my_id, Some(1));
        assert!(c.is_distributed());
        assert_eq!(c.my_server().unwrap().host, "zk1");
        // Four voting servers: a mild warning.
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }

    #[test]
    fn bad_server_lines() {
        for bad in [
            "server.1=zk1:2888",
            "server.1=zk1:2888:3888:voter",
            "server.1=zk1:2888:2888",
            "server.1=zk1:2888:3888:observer:x",
            "server.1=zk1:2888:3888;a:b:c",
            "server.1=zk1:2888:3888;1;2",
            "server.1=[::1:2888:3888",
            "server.1=:2888:3888",
            "server.x=zk1:2888:3888",
            "server.256=zk1:2888:3888",
            "server.1=zk1:0:3888",
        ] {
            assert!(from_text(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn quorum_validation() {
        let three = "server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n";
        let err = from_text(three).unwrap_err();
        assert!(err.to_string().contains("myid file is missing"), "{err}");
        let err = from_text_myid(three, "4").unwrap_err();
        assert!(err.to_string().contains("no server.4"), "{err}");
        let err = from_text_myid(&format!("{three}initLimit=0\n"), "1").unwrap_err();
        assert!(err.to_string().contains("initLimit"), "{err}");
        let c = from_text_myid(three, "2").unwrap();
        assert_eq!(c.my_id, Some(2));
        assert!(c.warnings.is_empty());
        // One server line: standalone, myid optional.
        let c = from_text("server.1=a:2888:3888\n").unwrap();
        assert!(!c.is_distributed());
        // Observers need a quorum.
        assert!(from_text("server.1=a:2888:3888:observer\n").is_err());
        assert!(from_text("server.1=a:2888:3888\nserver.2=b:2888:3888:observer\n").is_err());
    }

    #[test]
    fn myid_file() {
        assert_eq!(from_text_myid("", "7").unwrap().my_id, Some(7));
        assert_eq!(from_text_myid("", " 7 \nextra\n").unwrap().my_id, Some(7));
        for bad in ["", "x", "-1", "256"] {
            assert!(
                matches!(
                    from_text_myid("", bad),
                    Err(ConfigError::InvalidMyId { .. })
                ),
                "{bad:?}"
            );
        }
        // myid is looked for in the final dataDir.
        let seen = std::cell::RefCell::new(PathBuf::new());
        let reader = |p: &Path| {
            *seen.borrow_mut() = p.to_path_buf();
            Ok(None)
        };
        let parsed = parse_args(args(&["--data-dir", "/flag/dir"])).unwrap();
        Config::from_sources(
            Some((Path::new("zoo.cfg"), "dataDir=/file/dir\n")),
            &parsed.settings,
            &reader,
        )
        .unwrap();
        assert_eq!(*seen.borrow(), PathBuf::from("/flag/dir/myid"));
        // Extended types cap the server id at 254.
        assert!(from_text_myid("extendedTypesEnabled=true\n", "255").is_err());
        assert!(from_text_myid("extendedTypesEnabled=true\n", "254").is_ok());
    }

    #[test]
    fn own_server_line_sets_client_endpoint() {
        let three = "server.1=a:2888:3888;2191\nserver.2=b:2888:3888;10.1.1.2:2192\n\
                     server.3=c:2888:3888\n";
        let c = from_text_myid(three, "1").unwrap();
        assert_eq!(c.client_port, 2191);
        // A bare port keeps the (loopback) address.
        assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let c = from_text_myid(three, "2").unwrap();
        assert_eq!(c.client_port, 2192);
        assert_eq!(c.client_port_address, "10.1.1.2".parse::<IpAddr>().unwrap());
        let c = from_text_myid(&format!("{three}clientPort=2191\n"), "1").unwrap();
        assert_eq!(c.client_port, 2191);
        assert!(from_text_myid(&format!("{three}clientPort=2181\n"), "1").is_err());
        assert!(from_text_myid(&format!("{three}clientPortAddress=10.9.9.9\n"), "2").is_err());
        assert!(from_text_myid(&format!("{three}clientPortAddress=0.0.0.0\n"), "2").is_ok());
        // The own client host must be an IP literal; others may be names.
        let named =
            "server.1=a:2888:3888;zk1.example:2181\nserver.2=b:2888:3888;zk2.example:2181\n";
        let err = from_text_myid(named, "1").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("zoo.cfg:1: invalid value `zk1.example`"),
            "{err}"
        );
    }

    #[test]
    fn flags_override_file_regardless_of_order() {
        let text = "clientPort=2000\ndataDir=/file\ntickTime=100\n";
        let c = with_args(text, &["--port", "3000", "--address", "0.0.0.0"]).unwrap();
        assert_eq!(c.client_port, 3000);
        assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.data_dir, PathBuf::from("/file"));
        let c = with_args(
            text,
            &[
                "--data-dir=/flag",
                "--cores",
                "3",
                "--set",
                "tickTime=250",
                "--set",
                "snapCount = 10 ",
            ],
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.cores, Some(3));
        assert_eq!(c.tick_time_ms, 250);
        assert_eq!(c.snap_count, 10);
        // Among flags, the last one wins.
        let c = with_args("", &["--port", "1", "--set", "clientPort=2"]).unwrap();
        assert_eq!(c.client_port, 2);
    }

    #[test]
    fn parse_args_forms() {
        let a = parse_args(args(&["--port", "5", "/etc/zk/zoo.cfg", "--set", "a=b=c"])).unwrap();
        assert_eq!(a.config_path, Some(PathBuf::from("/etc/zk/zoo.cfg")));
        assert_eq!(a.settings.len(), 2);
        assert_eq!(a.settings[1].key, "a");
        assert_eq!(a.settings[1].value, "b=c");
        let a = parse_args(args(&["--config=/x.cfg"])).unwrap();
        assert_eq!(a.config_path, Some(PathBuf::from("/x.cfg")));
        assert!(matches!(
            parse_args(args(&["--config", "a", "b"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["--bogus"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["--port"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["--set", "novalue"])),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse_args(args(&["a", "b", "c", "d", "e"])),
            Err(ConfigError::Usage(_))
        ));
        match parse_args(args(&["--port", "1", "-h"])) {
            Err(ConfigError::Help(text)) => assert_eq!(text, usage()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Config::from_args(args(&["--help"])),
            Err(ConfigError::Help(_))
        ));
    }

    #[test]
    fn legacy_positional_form() {
        let parsed = parse_args(args(&[
            "2222",
            "/tmp/zkdata",
            "1000",
            "5",
            "--port",
            "3333",
        ]))
        .unwrap();
        let c = Config::from_sources(None, &parsed.settings, &no_myid).unwrap();
        assert_eq!(c.client_port, 3333, "flags beat positional arguments");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zkdata"));
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(c.max_client_cnxns, 5);
        let err = Config::from_sources(
            None,
            &parse_args(args(&["x", "/d"])).unwrap().settings,
            &no_myid,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("command-line argument 1:"),
            "{err}"
        );
    }

    #[test]
    fn from_args_reads_files() {
        let dir = std::env::temp_dir().join(format!("corral-config-test-{}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), "3\n").unwrap();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "{SAMPLE}dataDir={}\nserver.1=a:2888:3888\nserver.2=b:2888:3888\n\
                 server.3=c:2888:3888\n",
                data.display()
            ),
        )
        .unwrap();
        let c = Config::from_args(args(&[cfg.to_str().unwrap(), "--port", "4000"])).unwrap();
        assert_eq!(c.my_id, Some(3));
        assert_eq!(c.client_port, 4000);
        assert_eq!(c.config_path.as_deref(), Some(cfg.as_path()));
        assert_eq!(Config::from_file(&cfg).unwrap().client_port, 2181);
        let missing = dir.join("missing.cfg");
        assert!(matches!(
            Config::from_args(args(&["--config", missing.to_str().unwrap()])),
            Err(ConfigError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
