//! The HTTP admin server's settings: ZooKeeper's `admin.*` keys, from zoo.cfg or, as
//! ZooKeeper's `zkServer.sh` passes them, `-Dzookeeper.admin.*` in `SERVER_JVMFLAGS` /
//! `JVMFLAGS`. ZooKeeper turns every zoo.cfg key it does not know into the system property
//! `zookeeper.<key>`, which replaces a `-D` flag of the same name: so zoo.cfg wins here too.
//!
//! One difference, on purpose: the default address is 127.0.0.1, not ZooKeeper's 0.0.0.0
//! (docs/decisions.md, "The admin server listens on loopback").
//!
//! HTTPS (`admin.forceHttps`, `admin.portUnification`) takes its key and trust stores from
//! the `ssl.quorum.*` keys, as ZooKeeper's JettyAdminServer does (it reads them through
//! QuorumX509Util); `server::admin_http::tls_config` builds it.

/// `admin.*` as the admin server uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminServerSettings {
    /// `admin.enableServer` (ZooKeeper's default: true).
    pub enabled: bool,
    /// `admin.serverAddress`: an IP address or a host name.
    pub address: String,
    /// `admin.serverPort`; 0 picks a free port (logged).
    pub port: u16,
    /// `admin.commandURL`: where the commands live, without a trailing `/`.
    pub command_url: String,
    /// `admin.idleTimeout`: how long a connection may sit idle, or take to send a request's
    /// head, before it is closed (408 if it had started one).
    pub idle_timeout_ms: u32,
    /// `admin.snapshot.enabled`, `admin.restore.enabled` (ZooKeeper 3.9: on by default; both
    /// also need an authenticated caller with ALL on `/`).
    pub snapshot_enabled: bool,
    pub restore_enabled: bool,
    /// `admin.rateLimiterIntervalInMS`: at most one restore per interval; snapshots are
    /// limited to one per this many microseconds, as ZooKeeper 3.9 does (its snapshot
    /// limiter reads the same number in microseconds).
    pub rate_limiter_interval: u64,
    /// corral's `admin.restore.maxBytes`: the largest snapshot `restore` takes (413 beyond);
    /// other requests' bodies stay small.
    pub restore_max_bytes: u64,
    /// `admin.forceHttps`: every connection is TLS.
    pub force_https: bool,
    /// `admin.portUnification`: TLS and plain HTTP on the one port (ignored with forceHttps).
    pub port_unification: bool,
    /// `admin.needClientAuth`: a TLS client must present a certificate the trust store
    /// verifies (ZooKeeper's default: false, and then none is asked for).
    pub need_client_auth: bool,
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_COMMAND_URL: &str = "/commands";
/// corral's default; ZooKeeper's is 0.0.0.0.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
pub const DEFAULT_IDLE_TIMEOUT_MS: u32 = 30_000;
pub const DEFAULT_RATE_LIMITER_INTERVAL: u64 = 300_000;
/// 1 GiB: a large tree's snapshot, not an unbounded disk write.
pub const DEFAULT_RESTORE_MAX_BYTES: u64 = 1 << 30;

impl Default for AdminServerSettings {
    fn default() -> Self {
        AdminServerSettings {
            enabled: true,
            address: DEFAULT_ADDRESS.to_string(),
            port: DEFAULT_PORT,
            command_url: DEFAULT_COMMAND_URL.to_string(),
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            snapshot_enabled: true,
            restore_enabled: true,
            rate_limiter_interval: DEFAULT_RATE_LIMITER_INTERVAL,
            restore_max_bytes: DEFAULT_RESTORE_MAX_BYTES,
            force_https: false,
            port_unification: false,
            need_client_auth: false,
        }
    }
}

/// What applying one key did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Not an `admin.` key.
    NotMine,
    Used,
    /// A ZooKeeper admin key corral accepts and does not use; the text says why.
    Ignored(String),
}

fn parse_bool(v: &str) -> Result<bool, String> {
    // Java's Boolean.parseBoolean would take anything as false; a typo here should not
    // silently turn the admin server (or its guards) off.
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

impl AdminServerSettings {
    /// Applies `key=value` if it is an `admin.` key (zoo.cfg spelling). Errors name the
    /// problem; the caller adds the key and where it came from.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<Applied, String> {
        let Some(name) = key.strip_prefix("admin.") else {
            return Ok(Applied::NotMine);
        };
        let v = value.trim();
        match name {
            "enableServer" => self.enabled = parse_bool(v)?,
            "serverAddress" => {
                if v.is_empty() || v.contains(char::is_whitespace) {
                    return Err("expected an IP address or a host name".to_string());
                }
                self.address = v.to_string();
            }
            "serverPort" => {
                self.port = v
                    .parse::<u16>()
                    .map_err(|_| "expected a port 0-65535".to_string())?
            }
            "commandURL" => {
                let url = v.trim_end_matches('/');
                if !v.starts_with('/') || url.is_empty() || url.contains(['?', '#', ' ']) {
                    return Err("expected a path such as /commands".to_string());
                }
                self.command_url = url.to_string();
            }
            "idleTimeout" => match v.parse::<u32>() {
                Ok(ms) if ms > 0 => self.idle_timeout_ms = ms,
                _ => return Err("expected a positive number of milliseconds".to_string()),
            },
            "snapshot.enabled" => self.snapshot_enabled = parse_bool(v)?,
            "restore.enabled" => self.restore_enabled = parse_bool(v)?,
            "restore.maxBytes" => match v.parse::<u64>() {
                Ok(n) if n > 0 => self.restore_max_bytes = n,
                _ => return Err("expected a positive number of bytes".to_string()),
            },
            "rateLimiterIntervalInMS" => {
                self.rate_limiter_interval = v
                    .parse::<u64>()
                    .map_err(|_| "expected a non-negative integer".to_string())?
            }
            "forceHttps" => self.force_https = parse_bool(v)?,
            "portUnification" => self.port_unification = parse_bool(v)?,
            "needClientAuth" => self.need_client_auth = parse_bool(v)?,
            "httpVersion" => {
                if v != "11" {
                    return Ok(Applied::Ignored(
                        "corral's admin server speaks HTTP/1.1".to_string(),
                    ));
                }
            }
            _ => {
                return Ok(Applied::Ignored(
                    "a ZooKeeper admin setting corral does not use".to_string(),
                ))
            }
        }
        Ok(Applied::Used)
    }

    /// Whether the admin server speaks TLS, on every connection or beside plain HTTP.
    pub fn tls(&self) -> bool {
        self.force_https || self.port_unification
    }

    /// `-Dzookeeper.admin.<name>=<value>` flags in `SERVER_JVMFLAGS` then `JVMFLAGS` (joined
    /// as zkServer.sh joins them; a later flag wins, as in Java), for every key `in_config`
    /// does not already set. Returns the warnings of ignored keys.
    pub fn apply_jvmflags(
        &mut self,
        server_jvmflags: Option<&str>,
        jvmflags: Option<&str>,
        in_config: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, String> {
        let joined = format!(
            "{} {}",
            server_jvmflags.unwrap_or(""),
            jvmflags.unwrap_or("")
        );
        let mut warnings = Vec::new();
        for flag in joined.split_whitespace() {
            let Some(prop) = flag.strip_prefix("-Dzookeeper.") else {
                continue;
            };
            let Some((key, value)) = prop.split_once('=') else {
                continue;
            };
            if !key.starts_with("admin.") || in_config(key) {
                continue;
            }
            let value = value.trim_matches('"');
            match self
                .apply(key, value)
                .map_err(|e| format!("-Dzookeeper.{key}={value}: {e}"))?
            {
                Applied::Ignored(why) => {
                    warnings.push(format!("-Dzookeeper.{key}: {why}; ignored"))
                }
                Applied::Used | Applied::NotMine => {}
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let mut s = AdminServerSettings::default();
        assert_eq!(s.address, "127.0.0.1");
        assert_eq!(s.apply("admin.serverPort", "9090"), Ok(Applied::Used));
        assert_eq!(s.apply("admin.enableServer", "False"), Ok(Applied::Used));
        assert_eq!(s.apply("admin.commandURL", "/cmd/"), Ok(Applied::Used));
        assert_eq!(s.apply("admin.serverAddress", "0.0.0.0"), Ok(Applied::Used));
        assert_eq!(s.apply("tickTime", "1"), Ok(Applied::NotMine));
        assert_eq!(s.apply("admin.needClientAuth", "true"), Ok(Applied::Used));
        assert!(matches!(
            s.apply("admin.httpVersion", "2"),
            Ok(Applied::Ignored(_))
        ));
        assert_eq!((s.port, s.enabled), (9090, false));
        assert_eq!(
            (s.command_url.as_str(), s.address.as_str()),
            ("/cmd", "0.0.0.0")
        );
        assert!(s.apply("admin.serverPort", "70000").is_err());
        assert!(s.apply("admin.enableServer", "yes").is_err());
        assert!(s.apply("admin.commandURL", "commands").is_err());
        assert!(s.apply("admin.commandURL", "/").is_err());
        assert!(s.apply("admin.idleTimeout", "0").is_err());
        assert!(!s.tls());
        assert_eq!(s.apply("admin.portUnification", "true"), Ok(Applied::Used));
        assert!(s.tls() && !s.force_https && s.need_client_auth);
        assert_eq!(s.apply("admin.forceHttps", "TRUE"), Ok(Applied::Used));
        assert!(s.force_https);
        assert!(s.apply("admin.forceHttps", "1").is_err());
    }

    #[test]
    fn jvmflags_fill_in_what_zoo_cfg_leaves() {
        let mut s = AdminServerSettings::default();
        let in_cfg = |k: &str| k == "admin.serverPort";
        let w = s
            .apply_jvmflags(
                Some("-Xmx1g -Dzookeeper.admin.serverPort=1 -Dzookeeper.admin.commandURL=/x"),
                Some("-Dzookeeper.admin.enableServer=false -Dzookeeper.admin.httpVersion=2"),
                &in_cfg,
            )
            .unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(
            (s.port, s.command_url.as_str(), s.enabled),
            (DEFAULT_PORT, "/x", false)
        );
        let err = s
            .apply_jvmflags(Some("-Dzookeeper.admin.serverPort=x"), None, &|_| false)
            .unwrap_err();
        assert!(err.contains("-Dzookeeper.admin.serverPort=x"), "{err}");
    }
}
