//! ZooKeeper's TLS settings (`ssl.*` for the client port, `ssl.quorum.*` between members), read
//! from zoo.cfg keys and checked once, so that building a rustls config later fails only on the
//! store files themselves.
//!
//! Defaults follow ZooKeeper's X509Util / SSLContextAndOptions / KeyStoreFileType (3.8/3.9):
//! clientAuth `need`, protocol `TLSv1.2` (its default while `zookeeper.fips-mode` is true, which
//! is the default), handshakeDetectionTimeoutMillis 5000, hostnameVerification true,
//! clientHostnameVerification true between members and false on the client port. Where corral
//! decides differently (unsupported names, protocol sets), docs/decisions.md says why.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Key suffixes read under each prefix (`ssl.` and `ssl.quorum.`, each also spelt with a leading
/// `zookeeper.`), so that config can recognise them.
pub const KEYS: &[&str] = &[
    "keyStore.location",
    "keyStore.password",
    "keyStore.passwordPath",
    "keyStore.type",
    "trustStore.location",
    "trustStore.password",
    "trustStore.passwordPath",
    "trustStore.type",
    "clientAuth",
    "protocol",
    "enabledProtocols",
    "ciphersuites",
    "hostnameVerification",
    "clientHostnameVerification",
    "handshakeDetectionTimeoutMillis",
];

/// The prefixes `KEYS` are read under: the client port's and the quorum's.
pub const PREFIXES: &[&str] = &["ssl.", "ssl.quorum."];

/// Whether `key` is a TLS setting this module reads (either prefix, with or without `zookeeper.`).
pub fn is_tls_key(key: &str) -> bool {
    let key = key.strip_prefix("zookeeper.").unwrap_or(key);
    // `ssl.quorum.` first: `ssl.` would also match it and leave `quorum.x` as the suffix.
    let rest = key
        .strip_prefix("ssl.quorum.")
        .or_else(|| key.strip_prefix("ssl."));
    rest.is_some_and(|r| KEYS.contains(&r))
}

/// ZooKeeper's handshakeDetectionTimeoutMillis default.
pub const HANDSHAKE_DETECTION_TIMEOUT_DEFAULT: Duration = Duration::from_millis(5000);

/// A store file's format (ZooKeeper's KeyStoreFileType).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreType {
    Pem,
    Pkcs12,
    /// Refused when loaded (with the keytool command that converts it), unless the file is in
    /// fact PKCS#12, which Java's JKS loader also reads.
    Jks,
    /// Bouncy Castle's FIPS keystore: refused when loaded.
    Bcfks,
}

impl StoreType {
    /// ZooKeeper's KeyStoreFileType.fromPropertyValue: the name, case-insensitive.
    fn from_property(value: &str) -> Option<StoreType> {
        match value.to_ascii_uppercase().as_str() {
            "PEM" => Some(StoreType::Pem),
            "PKCS12" => Some(StoreType::Pkcs12),
            "JKS" => Some(StoreType::Jks),
            "BCFKS" => Some(StoreType::Bcfks),
            _ => None,
        }
    }

    /// KeyStoreFileType.fromFilename: the extension after the last '.', exactly (case matters).
    fn from_file_name(path: &str) -> Option<StoreType> {
        let ext = &path[path.rfind('.')?..];
        match ext {
            ".pem" => Some(StoreType::Pem),
            ".p12" => Some(StoreType::Pkcs12),
            ".jks" => Some(StoreType::Jks),
            ".bcfks" => Some(StoreType::Bcfks),
            _ => None,
        }
    }
}

/// A key or trust store: its file, password and format.
#[derive(Clone, PartialEq, Eq)]
pub struct Store {
    pub path: PathBuf,
    /// Empty when not configured (ZooKeeper passes "" too).
    pub password: String,
    pub kind: StoreType,
}

impl std::fmt::Debug for Store {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("kind", &self.kind)
            .finish()
    }
}

/// `clientAuth`: whether the server asks for a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// A verified certificate is required (ZooKeeper's default).
    Need,
    /// Verified if presented; a client without one is let in.
    Want,
    /// Not asked for.
    None,
}

/// The TLS versions rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn from_java(name: &str) -> Option<TlsVersion> {
        match name {
            "TLSv1.2" => Some(TlsVersion::Tls12),
            "TLSv1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// One prefix's TLS settings, checked. Cloned into each shard's thread, which builds its own
/// rustls config from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl.` or `ssl.quorum.`, for error messages.
    pub prefix: String,
    /// Always set on a server side (`from_lookup`); a client may go without a certificate
    /// (`client_from_lookup`).
    pub key_store: Option<Store>,
    pub trust_store: Option<Store>,
    pub client_auth: ClientAuth,
    /// Versions the server accepts: `enabledProtocols`, else TLSv1.3 and TLSv1.2 (the JDK's
    /// server defaults, whatever `protocol` says).
    pub server_versions: Vec<TlsVersion>,
    /// Versions the client offers: `enabledProtocols`, else those of `protocol` (TLSv1.2 only
    /// for the default `TLSv1.2`; TLSv1.3 and TLSv1.2 for `TLSv1.3` or `TLS`).
    pub client_versions: Vec<TlsVersion>,
    /// `ciphersuites` as Java names rustls supports, in the configured order; None for rustls's
    /// defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// The client checks the server certificate's names against the address it dialed.
    pub hostname_verification: bool,
    /// ZooKeeper's server-side check of a client certificate's names against the peer address.
    /// Parsed but not enforced by the rustls verifier (it does not see the peer address); the
    /// transport may act on it.
    pub client_hostname_verification: bool,
    pub handshake_detection_timeout: Duration,
}

/// The Java (IANA) names of the suites corral's rustls build supports.
pub(crate) const SUITE_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

impl TlsSettings {
    /// Reads the settings under `prefix` (`ssl.` or `ssl.quorum.`) through `lookup`, which is given
    /// full keys such as `ssl.keyStore.location`. None when the prefix's keyStore.location is not
    /// set. Names that are unknown or unsupported in a list (protocols, suites) are dropped with a
    /// warning while some known name remains, and are an error otherwise.
    pub fn from_lookup(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TlsSettings>, String> {
        Self::parse(prefix, lookup, true)
    }

    /// A client's settings (`zookeeper.ssl.*` of a ZooKeeper client): the trust store is
    /// required (corral has no default one), the key store optional (a server with
    /// clientAuth none asks for no certificate), `clientAuth` unused.
    pub fn client_from_lookup(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<TlsSettings, String> {
        let s = Self::parse(prefix, lookup, false)?.expect("a client's settings always parse");
        if s.trust_store.is_none() {
            return Err(format!(
                "{prefix}trustStore.location must be set to verify the server (corral has no \
                 default trust store)"
            ));
        }
        Ok(s)
    }

    fn parse(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
        server: bool,
    ) -> Result<Option<TlsSettings>, String> {
        let get = |suffix: &str| {
            lookup(&format!("{prefix}{suffix}"))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let key = |suffix: &str| format!("{prefix}{suffix}");
        let key_store = store(prefix, "keyStore", &get)?;
        if server && key_store.is_none() {
            return Ok(None);
        }
        let trust_store = store(prefix, "trustStore", &get)?;

        let client_auth = match get("clientAuth") {
            None => ClientAuth::Need,
            Some(v) => match v.to_ascii_uppercase().as_str() {
                "NEED" => ClientAuth::Need,
                "WANT" => ClientAuth::Want,
                "NONE" => ClientAuth::None,
                _ => {
                    return Err(format!(
                        "{}={v}: expected need, want or none",
                        key("clientAuth")
                    ))
                }
            },
        };

        let both = vec![TlsVersion::Tls13, TlsVersion::Tls12];
        let protocol_versions = match get("protocol").as_deref() {
            None | Some("TLSv1.2") => vec![TlsVersion::Tls12],
            Some("TLSv1.3") | Some("TLS") => both.clone(),
            Some(other) => {
                return Err(format!(
                    "{}={other}: corral supports TLSv1.2, TLSv1.3 and TLS",
                    key("protocol")
                ))
            }
        };
        let (server_versions, client_versions) = match get("enabledProtocols") {
            None => (both, protocol_versions),
            Some(list) => {
                let mut versions = known_names(&key("enabledProtocols"), &list, |n| {
                    TlsVersion::from_java(n)
                })?;
                versions.sort_by(|a, b| b.cmp(a));
                versions.dedup();
                (versions.clone(), versions)
            }
        };

        let cipher_suites = match get("ciphersuites") {
            None => None,
            Some(list) => Some(known_names(&key("ciphersuites"), &list, |n| {
                SUITE_NAMES.contains(&n).then(|| n.to_string())
            })?),
        };

        let hostname_verification = boolean(
            &key("hostnameVerification"),
            get("hostnameVerification"),
            true,
        )?;
        let quorum = prefix.contains("quorum");
        let client_hostname_verification = hostname_verification
            && boolean(
                &key("clientHostnameVerification"),
                get("clientHostnameVerification"),
                quorum,
            )?;

        let handshake_detection_timeout = match get("handshakeDetectionTimeoutMillis") {
            None => HANDSHAKE_DETECTION_TIMEOUT_DEFAULT,
            Some(v) => match v.parse::<i64>() {
                Ok(ms) if ms >= 1 => Duration::from_millis(ms as u64),
                // ZooKeeper logs and takes the default for values below 1.
                Ok(_) => {
                    tracing::warn!(
                        "{}={v} is below 1; using {} ms",
                        key("handshakeDetectionTimeoutMillis"),
                        HANDSHAKE_DETECTION_TIMEOUT_DEFAULT.as_millis()
                    );
                    HANDSHAKE_DETECTION_TIMEOUT_DEFAULT
                }
                Err(_) => {
                    return Err(format!(
                        "{}={v}: not a number of milliseconds",
                        key("handshakeDetectionTimeoutMillis")
                    ))
                }
            },
        };

        if server && client_auth != ClientAuth::None && trust_store.is_none() {
            return Err(format!(
                "{} is {}: {} must be set (corral has no default trust store)",
                key("clientAuth"),
                if client_auth == ClientAuth::Need {
                    "need (the default)"
                } else {
                    "want"
                },
                key("trustStore.location")
            ));
        }

        Ok(Some(TlsSettings {
            prefix: prefix.to_string(),
            key_store,
            trust_store,
            client_auth,
            server_versions,
            client_versions,
            cipher_suites,
            hostname_verification,
            client_hostname_verification,
            handshake_detection_timeout,
        }))
    }

    /// The store files, for reload checks.
    pub fn store_paths(&self) -> Vec<&Path> {
        self.key_store
            .iter()
            .chain(&self.trust_store)
            .map(|s| s.path.as_path())
            .collect()
    }
}

/// `<which>.location/password/passwordPath/type`; None without a location.
fn store(
    prefix: &str,
    which: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Store>, String> {
    let Some(location) = get(&format!("{which}.location")) else {
        return Ok(None);
    };
    // As ZooKeeper's getPasswordFromConfigPropertyOrFile: the file wins, less one final newline.
    let password = match get(&format!("{which}.passwordPath")) {
        Some(path) => {
            let secret = std::fs::read_to_string(&path)
                .map_err(|e| format!("{prefix}{which}.passwordPath: cannot read {path}: {e}"))?;
            secret.strip_suffix('\n').unwrap_or(&secret).to_string()
        }
        None => get(&format!("{which}.password")).unwrap_or_default(),
    };
    let kind = match get(&format!("{which}.type")) {
        Some(t) => StoreType::from_property(&t).ok_or_else(|| {
            format!("{prefix}{which}.type={t}: expected PEM, PKCS12, JKS or BCFKS")
        })?,
        None => StoreType::from_file_name(&location).ok_or_else(|| {
            format!(
                "{prefix}{which}.location={location}: cannot tell the store type from the file \
                 name (.pem, .p12, .jks, .bcfks); set {prefix}{which}.type"
            )
        })?,
    };
    Ok(Some(Store {
        path: PathBuf::from(location),
        password,
        kind,
    }))
}

/// `{prefix}trustStore.*` alone (ZooKeeper's X509AuthenticationProvider loads the client
/// port's trust store whether or not a key store is set). None without a location.
pub fn trust_store_from_lookup(
    prefix: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Store>, String> {
    let get = |suffix: &str| {
        lookup(&format!("{prefix}{suffix}"))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    store(prefix, "trustStore", &get)
}

/// A comma-separated list of names, each mapped by `known`: unknown ones are warned about and
/// dropped, and a list with no known name is an error.
fn known_names<T>(
    key: &str,
    list: &str,
    known: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match known(name) {
            Some(v) => out.push(v),
            None => unknown.push(name),
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{key}={list}: none of these is supported by corral (unsupported: {})",
            unknown.join(",")
        ));
    }
    if !unknown.is_empty() {
        tracing::warn!("{key}: ignoring unsupported {}", unknown.join(","));
    }
    Ok(out)
}

fn boolean(key: &str, value: Option<String>, default: bool) -> Result<bool, String> {
    match value {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(format!("{key}={v}: expected true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(prefix: &str, pairs: &[(&str, &str)]) -> Result<Option<TlsSettings>, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TlsSettings::from_lookup(prefix, |k| map.get(k).cloned())
    }

    #[test]
    fn none_without_a_keystore() {
        assert_eq!(
            parse("ssl.", &[("ssl.trustStore.location", "t.pem")]),
            Ok(None)
        );
        // The quorum's keys are not the client port's.
        assert_eq!(
            parse("ssl.quorum.", &[("ssl.keyStore.location", "k.pem")]),
            Ok(None)
        );
    }

    #[test]
    fn defaults() {
        let s = parse(
            "ssl.",
            &[
                ("ssl.keyStore.location", "k.pem"),
                ("ssl.trustStore.location", "t.p12"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.key_store.as_ref().unwrap().kind, StoreType::Pem);
        assert_eq!(s.trust_store.as_ref().unwrap().kind, StoreType::Pkcs12);
        assert_eq!(s.client_auth, ClientAuth::Need);
        assert_eq!(
            s.server_versions,
            vec![TlsVersion::Tls13, TlsVersion::Tls12]
        );
        assert_eq!(s.client_versions, vec![TlsVersion::Tls12]);
        assert_eq!(s.cipher_suites, None);
        assert!(s.hostname_verification);
        assert!(!s.client_hostname_verification);
        assert_eq!(s.handshake_detection_timeout, Duration::from_millis(5000));
        let q = parse(
            "ssl.quorum.",
            &[
                ("ssl.quorum.keyStore.location", "k.pem"),
                ("ssl.quorum.trustStore.location", "t.pem"),
            ],
        )
        .unwrap()
        .unwrap();
        assert!(q.client_hostname_verification);
    }

    #[test]
    fn explicit_values() {
        let dir = std::env::temp_dir().join(format!("corral-tls-pw-{}", std::process::id()));
        std::fs::write(&dir, "fromfile\n").unwrap();
        let s = parse(
            "ssl.quorum.",
            &[
                ("ssl.quorum.keyStore.location", "keys"),
                ("ssl.quorum.keyStore.type", "pkcs12"),
                ("ssl.quorum.keyStore.password", "ignored"),
                ("ssl.quorum.keyStore.passwordPath", dir.to_str().unwrap()),
                ("ssl.quorum.clientAuth", "WANT"),
                ("ssl.quorum.trustStore.location", "trust.pem"),
                ("ssl.quorum.trustStore.password", "tp"),
                ("ssl.quorum.protocol", "TLSv1.3"),
                (
                    "ssl.quorum.ciphersuites",
                    "TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                ),
                ("ssl.quorum.hostnameVerification", "false"),
                ("ssl.quorum.handshakeDetectionTimeoutMillis", "250"),
            ],
        )
        .unwrap()
        .unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(s.key_store.as_ref().unwrap().kind, StoreType::Pkcs12);
        assert_eq!(s.key_store.as_ref().unwrap().password, "fromfile");
        assert_eq!(s.trust_store.as_ref().unwrap().password, "tp");
        assert_eq!(s.client_auth, ClientAuth::Want);
        assert_eq!(
            s.client_versions,
            vec![TlsVersion::Tls13, TlsVersion::Tls12]
        );
        assert_eq!(
            s.cipher_suites,
            Some(vec![
                "TLS_AES_128_GCM_SHA256".to_string(),
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()
            ])
        );
        assert!(!s.hostname_verification);
        // Off with hostnameVerification, as in ZooKeeper.
        assert!(!s.client_hostname_verification);
        assert_eq!(s.handshake_detection_timeout, Duration::from_millis(250));
        assert!(!format!("{s:?}").contains("fromfile"), "password in Debug");
    }

    #[test]
    fn lists_drop_unknown_names_but_not_all() {
        let base = [
            ("ssl.keyStore.location", "k.pem"),
            ("ssl.clientAuth", "none"),
        ];
        let with = |k: &'static str, v: &'static str| {
            let mut p = base.to_vec();
            p.push((k, v));
            parse("ssl.", &p)
        };
        let s = with("ssl.enabledProtocols", "TLSv1.1,TLSv1.2")
            .unwrap()
            .unwrap();
        assert_eq!(s.server_versions, vec![TlsVersion::Tls12]);
        assert_eq!(s.client_versions, vec![TlsVersion::Tls12]);
        let e = with("ssl.enabledProtocols", "TLSv1,TLSv1.1").unwrap_err();
        assert!(
            e.contains("ssl.enabledProtocols") && e.contains("TLSv1.1"),
            "{e}"
        );
        let s = with(
            "ssl.ciphersuites",
            "TLS_RSA_WITH_AES_128_CBC_SHA,TLS_AES_256_GCM_SHA384",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.cipher_suites,
            Some(vec!["TLS_AES_256_GCM_SHA384".to_string()])
        );
        let e = with("ssl.ciphersuites", "TLS_RSA_WITH_AES_128_CBC_SHA,BOGUS").unwrap_err();
        assert!(e.contains("BOGUS"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("ssl.keyStore.location", "k.der")],
                "set ssl.keyStore.type",
            ),
            (
                &[("ssl.keyStore.location", "k.PEM")],
                "set ssl.keyStore.type",
            ),
            (
                &[
                    ("ssl.keyStore.location", "k.pem"),
                    ("ssl.keyStore.type", "JCEKS"),
                ],
                "ssl.keyStore.type=JCEKS",
            ),
            (
                &[("ssl.keyStore.location", "k.pem")],
                "ssl.trustStore.location must be set",
            ),
            (
                &[
                    ("ssl.keyStore.location", "k.pem"),
                    ("ssl.clientAuth", "maybe"),
                ],
                "ssl.clientAuth=maybe",
            ),
            (
                &[
                    ("ssl.keyStore.location", "k.pem"),
                    ("ssl.clientAuth", "none"),
                    ("ssl.protocol", "TLSv1.1"),
                ],
                "ssl.protocol=TLSv1.1",
            ),
            (
                &[
                    ("ssl.keyStore.location", "k.pem"),
                    ("ssl.clientAuth", "none"),
                    ("ssl.hostnameVerification", "yes"),
                ],
                "ssl.hostnameVerification=yes",
            ),
            (
                &[
                    ("ssl.keyStore.location", "k.pem"),
                    ("ssl.clientAuth", "none"),
                    ("ssl.handshakeDetectionTimeoutMillis", "5s"),
                ],
                "ssl.handshakeDetectionTimeoutMillis=5s",
            ),
            (
                &[
                    ("ssl.keyStore.location", "k.pem"),
                    ("ssl.keyStore.passwordPath", "/nonexistent/pw"),
                ],
                "/nonexistent/pw",
            ),
        ];
        for (pairs, want) in cases {
            let e = parse("ssl.", pairs).unwrap_err();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
        // Below 1: ZooKeeper's default, as ZooKeeper does.
        let s = parse(
            "ssl.",
            &[
                ("ssl.keyStore.location", "k.pem"),
                ("ssl.clientAuth", "none"),
                ("ssl.handshakeDetectionTimeoutMillis", "0"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.handshake_detection_timeout,
            HANDSHAKE_DETECTION_TIMEOUT_DEFAULT
        );
    }

    #[test]
    fn key_names() {
        assert!(is_tls_key("ssl.keyStore.location"));
        assert!(is_tls_key("zookeeper.ssl.quorum.trustStore.type"));
        assert!(is_tls_key("ssl.quorum.hostnameVerification"));
        assert!(!is_tls_key("ssl.quorum"));
        assert!(!is_tls_key("ssl.bogus"));
        assert!(!is_tls_key("sslQuorum"));
    }
}
