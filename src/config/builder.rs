//! From sources to a `Config`: the defaults, then the zoo.cfg, then the command-line
//! settings, then `<dataDir>/myid`; each key's value checked as it is applied, and the
//! rules across keys checked at the end, the way ZooKeeper's `QuorumPeerConfig` does.
//! Reading the zoo.cfg and myid files is the only I/O of the config module.
//!
//! Keys ZooKeeper sends to `System.setProperty("zookeeper." + key)` are recognised here
//! by their zoo.cfg spelling (`4lw.commands.whitelist`, `snapCount`, `forceSync`, ...).
//! Unknown keys and ZooKeeper keys corral does not use become `Config::warnings`, never
//! errors; keys whose silent omission would change cluster semantics (`dynamicConfigFile`,
//! hierarchical quorum `group.N`/`weight.N`, multi-address `server.N` lines) are errors.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::args::parse_args;
use super::properties::parse_properties;
use super::{
    participants, ClientEndpoint, Config, ConfigError, FourLetterWhitelist, Origin, PeerRole,
    ServerSpec, Setting, ZabCore, AUTOPURGE_SNAP_RETAIN_COUNT_MIN, CORES_MAX,
    ELECTION_ALG_SUPPORTED, FOUR_LETTER_WORDS, JUTE_MAX_BUFFER_MAX, MAX_SESSION_TIMEOUT_TICKS,
    MIN_SESSION_TIMEOUT_TICKS, MYID_FILE, SERVER_ID_MAX, SERVER_ID_MAX_EXTENDED_TYPES,
    SESSION_TIMEOUT_MAX_MS, SNAP_COUNT_MIN,
};

impl Config {
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
        let mut config = Config::from_sources(file, &args.settings, &read_myid_file)?;
        load_sasl(&mut config)?;
        admin_jvmflags(&mut config)?;
        quota_from_jvmflags(
            &mut config,
            std::env::var("SERVER_JVMFLAGS").ok().as_deref(),
            std::env::var("JVMFLAGS").ok().as_deref(),
        );
        Ok(config)
    }

    /// Reads one zoo.cfg (and `<dataDir>/myid`) with no command-line overrides.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text_file(path)?;
        let mut config = Config::from_sources(Some((path, &text)), &[], &read_myid_file)?;
        load_sasl(&mut config)?;
        quota_from_jvmflags(
            &mut config,
            std::env::var("SERVER_JVMFLAGS").ok().as_deref(),
            std::env::var("JVMFLAGS").ok().as_deref(),
        );
        Ok(config)
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
}

/// The JAAS file: named in zoo.cfg, or by the JVM flags of a zkServer.sh-style environment;
/// read here, with the zoo.cfg and myid, so a bad one stops the start.
fn load_sasl(config: &mut Config) -> Result<(), ConfigError> {
    let server = std::env::var("SERVER_JVMFLAGS").ok();
    let jvm = std::env::var("JVMFLAGS").ok();
    config
        .sasl
        .jaas_from_jvmflags(server.as_deref(), jvm.as_deref());
    sasl_from_jvmflags(config, server.as_deref(), jvm.as_deref())?;
    let read = |p: &Path| std::fs::read_to_string(p);
    if let Some(w) = config.sasl.load(&read).map_err(ConfigError::Invalid)? {
        config.warnings.push(w);
    }
    config.sasl.init_kerberos().map_err(ConfigError::Invalid)
}

/// The SASL and Kerberos settings ZooKeeper reads as `zookeeper.*` system properties
/// (`-Dzookeeper.superUser=`, `-Dzookeeper.authProvider.1=`,
/// `-Dzookeeper.kerberos.removeHostFromPrincipal=`, ...), from SERVER_JVMFLAGS then JVMFLAGS,
/// where Kafka's and Hadoop's guides put them, unless zoo.cfg or the command line set the key.
fn sasl_from_jvmflags(
    config: &mut Config,
    server: Option<&str>,
    jvm: Option<&str>,
) -> Result<(), ConfigError> {
    let joined = format!("{} {}", server.unwrap_or(""), jvm.unwrap_or(""));
    for flag in joined.split_whitespace() {
        let Some((name, v)) = flag
            .strip_prefix("-Dzookeeper.")
            .and_then(|f| f.split_once('='))
        else {
            continue;
        };
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        if config.props.contains_key(name)
            || config.props.contains_key(&format!("zookeeper.{name}"))
        {
            continue;
        }
        config
            .sasl
            .apply(name, v)
            .map_err(|e| ConfigError::Invalid(format!("JVM flag {flag}: {e}")))?;
    }
    Ok(())
}

/// `-Dzookeeper.admin.*` in the JVM flags of a zkServer.sh-style environment, for the
/// `admin.*` keys zoo.cfg and the command line leave unset.
fn admin_jvmflags(config: &mut Config) -> Result<(), ConfigError> {
    let server = std::env::var("SERVER_JVMFLAGS").ok();
    let jvm = std::env::var("JVMFLAGS").ok();
    let props = config.props.clone();
    let warnings = config
        .admin_server
        .apply_jvmflags(server.as_deref(), jvm.as_deref(), &|k| {
            props.contains_key(k)
        })
        .map_err(ConfigError::Invalid)?;
    config.warnings.extend(warnings);
    Ok(())
}

/// `-Dzookeeper.enforceQuota=` in SERVER_JVMFLAGS or JVMFLAGS (zkServer.sh passes both to the
/// JVM; the later one wins), unless the zoo.cfg or the command line set the key: ZooKeeper turns
/// that key into the same system property, replacing the flag's value.
fn quota_from_jvmflags(config: &mut Config, server: Option<&str>, jvm: Option<&str>) {
    const FLAG: &str = "-Dzookeeper.enforceQuota=";
    if config.props.contains_key("enforceQuota")
        || config.props.contains_key("zookeeper.enforceQuota")
    {
        return;
    }
    let joined = format!("{} {}", server.unwrap_or(""), jvm.unwrap_or(""));
    let Some(v) = joined
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix(FLAG))
    else {
        return;
    };
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    // Java's Boolean.parseBoolean: anything but "true" is false.
    config.enforce_quota = v.eq_ignore_ascii_case("true");
    if !config.enforce_quota && !v.eq_ignore_ascii_case("false") {
        config.warnings.push(format!(
            "JVM flag {FLAG}{v}: not true or false; quotas are not enforced"
        ));
    }
}

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
    "observerMasterPort",
    "connectToLearnerMasterLimit",
    "syncEnabled",
    "standaloneEnabled",
    "reconfigEnabled",
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
    "closeSessionTxn.enabled",
    "flushDelay",
    "maxWriteQueuePollTime",
    "maxBatchSize",
    "snapshot.compression.method",
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
    "jvm.pause.",
    "quorum.auth.",
    "multiAddress.",
    "netty.",
    "learner.",
    "leader.",
    "connection_throttle_",
];

impl Builder {
    fn apply(&mut self, key: &str, value: &str, origin: &Origin) -> Result<(), ConfigError> {
        self.config.props.insert(key.to_string(), value.to_string());
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
            "secureClientPort" => {
                c.secure_client_port = Some(parse_port(key, v, origin, true)?);
            }
            "sslQuorum" => c.ssl_quorum = parse_bool(key, v, origin)?,
            "secureClientPortAddress" => {
                c.secure_client_port_address = Some(parse_ip(key, v, origin)?);
            }
            // Read as a family by `tls::TlsSettings` (from `props`), with ZooKeeper's
            // `zookeeper.` system-property spelling too.
            _ if crate::tls::is_tls_key(key)
                || key.ends_with("X509AuthenticationProvider.superUser") => {}
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
            "enforceQuota" | "zookeeper.enforceQuota" => {
                c.enforce_quota = parse_bool(key, v, origin)?
            }
            "readonlymode.enabled" => c.read_only_enabled = parse_bool(key, v, origin)?,
            "localSessionsEnabled" => c.local_sessions_enabled = parse_bool(key, v, origin)?,
            "localSessionsUpgradingEnabled" => {
                c.local_sessions_upgrading_enabled = parse_bool(key, v, origin)?
            }
            "quorumListenOnAllIPs" => c.quorum_listen_on_all_ips = parse_bool(key, v, origin)?,
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
            "corral.electionFinalizeWaitMs" => {
                c.election_finalize_wait_ms = parse_num(key, v, origin)?
            }
            "corral.spinBeforeParkUs" => c.spin_before_park_us = parse_num(key, v, origin)?,
            "corral.electionGraceMs" => c.election_grace_ms = parse_num(key, v, origin)?,
            "corral.clientOutputLimit" => {
                c.client_output_limit = parse_positive(key, v, origin)? as usize
            }
            "corral.zabCore" => {
                c.zab_core = match v {
                    "auto" => ZabCore::Auto,
                    "shared" => ZabCore::Shared,
                    "dedicated" => ZabCore::Dedicated,
                    _ => {
                        return Err(invalid(
                            key,
                            v,
                            origin,
                            "expected auto, shared or dedicated",
                        ))
                    }
                }
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
            _ if key.starts_with("admin.") => {
                use crate::admin::Applied;
                match c.admin_server.apply(key, v) {
                    Ok(Applied::Ignored(why)) => c
                        .warnings
                        .push(format!("{origin}: `{key}`: {why}; ignored")),
                    Ok(_) => {}
                    Err(e) => return Err(invalid(key, v, origin, &e)),
                }
            }
            _ if c
                .sasl
                .apply(key, v)
                .map_err(|e| invalid(key, v, origin, &e))? => {}
            // A provider corral has compiled in needs no line; one it has not cannot be loaded
            // (ZooKeeper logs a provider class it cannot load, and goes on).
            _ if key.starts_with("authProvider.") => {
                let registry = crate::auth::provider::registry();
                if registry.by_class(v.trim()).is_none() {
                    c.warnings.push(format!(
                        "{origin}: `{key}={v}` names an authentication provider corral does not \
                         have (it has {}; docs/security.md, \"Authentication providers\"); ignored",
                        registry.schemes().join(", ")
                    ));
                }
            }
            _ if key.starts_with(crate::metrics::KEY_PREFIX) => {
                let note = c
                    .metrics
                    .apply(key, v)
                    .map_err(|e| invalid(key, v, origin, &e))?;
                if let Some(note) = note {
                    c.warnings.push(format!("{origin}: `{key}` {note}"));
                }
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
        } else if c.secure_client_port.is_some() && self.client_port_origin.is_none() {
            // Only a secure port named: ZooKeeper then serves no plain one.
            c.client_port_enabled = false;
        }
        if c.secure_client_port
            .is_some_and(|p| p != 0 && c.client_port_enabled && p == c.client_port)
        {
            return Err(ConfigError::Invalid(format!(
                "secureClientPort {} is also the clientPort",
                c.client_port
            )));
        }

        c.sasl.validate().map_err(ConfigError::Invalid)?;
        Ok(self.config)
    }
}

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::net::Ipv6Addr;

    pub(crate) fn no_myid(_: &Path) -> io::Result<Option<String>> {
        Ok(None)
    }

    pub(crate) fn from_text(text: &str) -> Result<Config, ConfigError> {
        Config::from_sources(Some((Path::new("zoo.cfg"), text)), &[], &no_myid)
    }

    pub(crate) fn from_text_myid(text: &str, myid: &str) -> Result<Config, ConfigError> {
        let myid = myid.to_string();
        Config::from_sources(Some((Path::new("zoo.cfg"), text)), &[], &move |_: &Path| {
            Ok(Some(myid.clone()))
        })
    }

    pub(crate) fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    pub(crate) fn with_args(text: &str, list: &[&str]) -> Result<Config, ConfigError> {
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
            "tickTime=2000\nfancyNewThing=1\nadmin.httpVersion=20\n\
             metricsProvider.numWorkerThreads=1\nstandaloneEnabled=true\nreconfigEnabled=false\n",
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 5, "{:?}", c.warnings);
        assert_eq!(
            c.warnings[0],
            "zoo.cfg:2: unknown key `fancyNewThing`; ignored"
        );
        assert!(
            c.warnings[1].contains("`admin.httpVersion`: corral's admin server speaks HTTP/1.1")
        );
    }

    #[test]
    fn admin_server_keys_are_real() {
        let c =
            from_text("admin.serverPort=9999\nadmin.serverAddress=0.0.0.0\nadmin.commandURL=/x\n")
                .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let a = &c.admin_server;
        assert_eq!(
            (a.enabled, a.port, a.address.as_str()),
            (true, 9999, "0.0.0.0")
        );
        assert_eq!(a.command_url, "/x");
        // The default is loopback, not ZooKeeper's 0.0.0.0.
        assert_eq!(from_text("").unwrap().admin_server.address, "127.0.0.1");
        match from_text("admin.serverPort=http\n") {
            Err(ConfigError::InvalidValue { key, reason, .. }) => {
                assert_eq!(key, "admin.serverPort");
                assert!(reason.contains("port"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auth_providers_corral_has_are_silent_and_others_warned() {
        let c = from_text(
            "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n\
             authProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider\n\
             authProvider.2=com.example.LdapProvider\n",
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("com.example.LdapProvider"));
        assert!(
            c.warnings[0].contains("x509"),
            "lists what it has: {}",
            c.warnings[0]
        );
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
    fn enforce_quota_under_either_name() {
        assert!(!from_text("dataDir=/z\n").unwrap().enforce_quota);
        assert!(
            from_text("dataDir=/z\nenforceQuota=true\n")
                .unwrap()
                .enforce_quota
        );
        let c = from_text("dataDir=/z\nzookeeper.enforceQuota=TRUE\n").unwrap();
        assert!(c.enforce_quota);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(from_text("dataDir=/z\nenforceQuota=yes\n").is_err());
        // The JVM flag, as zkServer.sh would pass it; a zoo.cfg key wins over it.
        let mut c = from_text("dataDir=/z\n").unwrap();
        quota_from_jvmflags(
            &mut c,
            Some("-Xmx1g -Dzookeeper.enforceQuota=true"),
            Some("-Dx=y"),
        );
        assert!(c.enforce_quota);
        quota_from_jvmflags(&mut c, None, Some("-Dzookeeper.enforceQuota=FALSE"));
        assert!(!c.enforce_quota);
        let mut c = from_text("dataDir=/z\nenforceQuota=false\n").unwrap();
        quota_from_jvmflags(&mut c, Some("-Dzookeeper.enforceQuota=true"), None);
        assert!(!c.enforce_quota);
    }

    #[test]
    fn sasl_settings_from_jvm_flags() {
        let mut c = from_text("dataDir=/z\nkerberos.removeRealmFromPrincipal=false\n").unwrap();
        sasl_from_jvmflags(
            &mut c,
            Some(
                "-Xmx1g -Dzookeeper.authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider \
                 -Dzookeeper.kerberos.removeHostFromPrincipal=true \
                 -Dzookeeper.kerberos.removeRealmFromPrincipal=true -Dzookeeper.tickTime=5",
            ),
            Some("-Dzookeeper.superUser='admin@R'"),
        )
        .unwrap();
        assert!(c.sasl.provider && c.sasl.remove_host);
        assert!(!c.sasl.remove_realm, "zoo.cfg's key wins over the flag");
        assert_eq!(c.sasl.super_users, ["admin@R"]);
        let e = sasl_from_jvmflags(
            &mut c,
            None,
            Some("-Dzookeeper.security.auth_to_local=RULE:[x:$1]"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Invalid rule"), "{e}");
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
        // The cap, and one past it (the 200 MB case is well inside).
        assert!(from_text("jute.maxbuffer=200000000\n").is_ok());
        assert!(from_text("jute.maxbuffer=268435456\n").is_ok());
        assert!(from_text("jute.maxbuffer=268435457\n").is_err());
        assert!(from_text("extendedTypesEnabled=yes\n").is_err());
        assert!(!from_text("").unwrap().quorum_listen_on_all_ips);
        assert!(
            from_text("quorumListenOnAllIPs=TRUE\n")
                .unwrap()
                .quorum_listen_on_all_ips
        );
        assert!(from_text("quorumListenOnAllIPs=1\n").is_err());
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
