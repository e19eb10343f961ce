//! SASL on the client port, as ZooKeeper 3.8/3.9 does it: the settings (`SaslConfig`), where
//! the credentials come from (a JAAS file, `jaas.rs`), the mechanism (`sasl_digest.rs` with
//! DigestLoginModule users, or `sasl_gssapi.rs` over `gssapi.rs` when the section logs in with
//! Krb5LoginModule, as ZooKeeper picks GSSAPI for a Kerberos login), the `sasl` ACL scheme (registered process-wide, as ZooKeeper's
//! ProviderRegistry is) and the enforcement rules of `sessionRequireClientSASLAuth` /
//! `enforce.auth.*`. docs/security.md, "SASL", says how to configure it.

pub mod gssapi;
pub mod jaas;
pub mod provider;
pub mod sasl_digest;
pub mod sasl_gssapi;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The class name `authProvider.N` must give for `sasl` ACLs to be valid and to match.
pub const SASL_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
/// ZooKeeper's default JAAS section for the server (`zookeeper.sasl.serverconfig`).
pub const DEFAULT_LOGIN_CONTEXT: &str = "Server";
/// The JVM flag zkServer.sh setups name the JAAS file with.
const JAAS_FLAG: &str = "-Djava.security.auth.login.config=";
/// The JVM flag naming the Kerberos configuration (MIT's `KRB5_CONFIG`).
const KRB5_FLAG: &str = "-Djava.security.krb5.conf=";
/// The JAAS login module that makes ZooKeeper's server speak GSSAPI.
pub const KRB5_LOGIN_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";

/// A Krb5LoginModule login: the service principal and its keytab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosLogin {
    pub principal: String,
    pub keytab: PathBuf,
}

/// DIGEST-MD5 users and their passwords; `Debug` shows only the names.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Users(pub Arc<BTreeMap<String, String>>);

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// The SASL settings, from zoo.cfg keys (their `zookeeper.`-less spelling, as for every
/// ZooKeeper system property zoo.cfg may set) and the JAAS file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslConfig {
    /// `corral.jaasConfig`, else `-Djava.security.auth.login.config=` in SERVER_JVMFLAGS /
    /// JVMFLAGS (docs/decisions.md, "Where the JAAS file comes from").
    pub jaas_file: Option<PathBuf>,
    /// `sasl.serverconfig`: the JAAS section to read (default `Server`).
    pub login_context: Option<String>,
    /// The login section's DIGEST-MD5 users; `Some` turns SASL on.
    pub users: Option<Users>,
    /// The login section's Kerberos login: SASL on, with GSSAPI instead of DIGEST-MD5.
    pub kerberos: Option<KerberosLogin>,
    /// `corral.krb5Config`, else `-Djava.security.krb5.conf=` in the JVM flags.
    pub krb5_conf: Option<PathBuf>,
    /// `kerberos.removeHostFromPrincipal`, `kerberos.removeRealmFromPrincipal`.
    pub remove_host: bool,
    pub remove_realm: bool,
    /// `security.auth_to_local` (DEFAULT unless set).
    pub auth_to_local: sasl_gssapi::AuthToLocal,
    /// `authProvider.N=...SASLAuthenticationProvider` was given: the `sasl` ACL scheme exists.
    pub provider: bool,
    /// `superUser` and `superUser.*`: SASL ids that also get `super`.
    pub super_users: Vec<String>,
    /// `allowSaslFailedClients`: a failed login keeps its connection (unless SASL is required).
    pub allow_failed_clients: bool,
    /// `letAnySaslUserDoX`: a `sasl` ACL id that every SASL user matches.
    pub any_user_do_x: Option<String>,
    /// `sessionRequireClientSASLAuth`.
    pub session_require_sasl: bool,
    /// `enforce.auth.enabled`.
    pub enforce_enabled: bool,
    /// `enforce.auth.schemes`, split on commas and trimmed.
    pub enforce_schemes: Vec<String>,
}

impl SaslConfig {
    /// Applies one zoo.cfg key if it is a SASL or enforcement key; false if it is not one.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let v = value.trim();
        let bool_of = |v: &str| v.eq_ignore_ascii_case("true");
        match key {
            "corral.jaasConfig" => self.jaas_file = Some(PathBuf::from(v)),
            "corral.krb5Config" => self.krb5_conf = Some(PathBuf::from(v)),
            "kerberos.removeHostFromPrincipal" | "zookeeper.kerberos.removeHostFromPrincipal" => {
                self.remove_host = bool_of(v)
            }
            "kerberos.removeRealmFromPrincipal" | "zookeeper.kerberos.removeRealmFromPrincipal" => {
                self.remove_realm = bool_of(v)
            }
            "security.auth_to_local" | "zookeeper.security.auth_to_local" => {
                self.auth_to_local =
                    sasl_gssapi::AuthToLocal::parse(v).map_err(|e| format!("{key}: {e}"))?
            }
            "sasl.serverconfig" => self.login_context = Some(v.to_string()),
            "allowSaslFailedClients" => self.allow_failed_clients = bool_of(v),
            "letAnySaslUserDoX" => self.any_user_do_x = Some(v.to_string()),
            "sessionRequireClientSASLAuth" => self.session_require_sasl = bool_of(v),
            "enforce.auth.enabled" => self.enforce_enabled = bool_of(v),
            "enforce.auth.schemes" => {
                self.enforce_schemes = v.split(',').map(|s| s.trim().to_string()).collect()
            }
            _ if key == "superUser" || key.starts_with("superUser.") => {
                self.super_users.push(v.to_string())
            }
            _ if key.starts_with("authProvider.") && v == SASL_PROVIDER_CLASS => {
                self.provider = true
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The JAAS section the server reads.
    pub fn login_context(&self) -> &str {
        self.login_context
            .as_deref()
            .unwrap_or(DEFAULT_LOGIN_CONTEXT)
    }

    /// The schemes one of which a connection must hold before any request but auth and SASL is
    /// served; empty when nothing is enforced (ZooKeeper's AuthenticationHelper).
    pub fn enforced_schemes(&self) -> Vec<String> {
        if self.session_require_sasl {
            vec!["sasl".to_string()]
        } else if self.enforce_enabled {
            self.enforce_schemes.clone()
        } else {
            Vec::new()
        }
    }

    /// SASL authentication is required: a failed login gets SESSIONCLOSEDREQUIRESASLAUTH.
    pub fn sasl_required(&self) -> bool {
        self.enforced_schemes().iter().any(|s| s == "sasl")
    }

    /// The enforcement settings are usable: ZooKeeper refuses to start otherwise.
    pub fn validate(&self) -> Result<(), String> {
        if !self.session_require_sasl && self.enforce_enabled && self.enforce_schemes.is_empty() {
            return Err(
                "enforce.auth.enabled is true enforce.auth.schemes must be configured.".to_string(),
            );
        }
        for s in self.enforced_schemes() {
            // ZooKeeper's built-in providers are ip and digest; sasl exists when registered.
            if !(s == "ip" || s == "digest" || (s == "sasl" && self.provider)) {
                return Err(format!("Authentication scheme {s} is not available."));
            }
        }
        Ok(())
    }

    /// SASL is on: the login section has DIGEST-MD5 users or a Kerberos login.
    pub fn enabled(&self) -> bool {
        self.users.is_some() || self.kerberos.is_some()
    }

    /// How GSSAPI names principals (the default realm comes from Kerberos, once set up).
    pub fn name_rules(&self) -> sasl_gssapi::NameRules {
        sasl_gssapi::NameRules {
            default_realm: gssapi::default_realm_name().map(str::to_string),
            remove_host: self.remove_host,
            remove_realm: self.remove_realm,
            auth_to_local: self.auth_to_local.clone(),
        }
    }

    /// Sets up Kerberos for a Krb5LoginModule login (nothing otherwise): the start fails if
    /// the library is missing or the keytab lacks the principal's key.
    pub fn init_kerberos(&self) -> Result<(), String> {
        let Some(k) = &self.kerberos else {
            return Ok(());
        };
        gssapi::init(&k.keytab, &k.principal, self.krb5_conf.as_deref())
    }

    /// True if `id` (a SASL authorization id) is a configured super user.
    pub fn is_super_user(&self, id: &str) -> bool {
        !id.is_empty() && self.super_users.iter().any(|s| s == id)
    }

    /// Finds the JAAS file and the Kerberos configuration in JVM flags (SERVER_JVMFLAGS then
    /// JVMFLAGS, joined as zkServer.sh does, the last flag winning as on a java command line)
    /// unless zoo.cfg named them.
    pub fn jaas_from_jvmflags(&mut self, server_jvmflags: Option<&str>, jvmflags: Option<&str>) {
        let joined = format!(
            "{} {}",
            server_jvmflags.unwrap_or(""),
            jvmflags.unwrap_or("")
        );
        let flag = |name: &str| {
            joined
                .split_whitespace()
                .rev()
                .find_map(|w| w.strip_prefix(name))
                .map(|p| PathBuf::from(p.trim_matches(|c| c == '"' || c == '\'')))
        };
        if self.jaas_file.is_none() {
            self.jaas_file = flag(JAAS_FLAG);
        }
        if self.krb5_conf.is_none() {
            self.krb5_conf = flag(KRB5_FLAG);
        }
    }

    /// Reads the JAAS file, if one is configured, and takes its login section's users. A file
    /// that cannot be read or parsed is an error (ZooKeeper fails to start); a file without the
    /// section leaves SASL off, with a warning, as ZooKeeper silently does.
    pub fn load(
        &mut self,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Option<String>, String> {
        let Some(path) = &self.jaas_file else {
            return Ok(None);
        };
        let text = read(path).map_err(|e| format!("JAAS file {}: {e}", path.display()))?;
        let file = jaas::parse(&text).map_err(|e| format!("JAAS file {}: {e}", path.display()))?;
        if let Some(krb) = file
            .section(self.login_context())
            .and_then(|m| m.iter().find(|m| m.class == KRB5_LOGIN_MODULE))
        {
            self.kerberos = Some(kerberos_login(krb).map_err(|e| {
                format!(
                    "JAAS file {}, section '{}': {e}",
                    path.display(),
                    self.login_context()
                )
            })?);
            return Ok(None);
        }
        match file.digest_users(self.login_context()) {
            Some(users) => {
                self.users = Some(Users(Arc::new(users)));
                Ok(None)
            }
            None => Ok(Some(format!(
                "JAAS file {}: no section named '{}'; SASL is off",
                path.display(),
                self.login_context()
            ))),
        }
    }
}

/// A connection's SASL login, in the mechanism the server's JAAS section chose.
pub enum Login {
    Digest(sasl_digest::Exchange),
    Gssapi(sasl_gssapi::Exchange<gssapi::Context>),
}

impl Login {
    /// A new login for `cfg`'s mechanism (GSSAPI when it has a Kerberos login).
    pub fn new(cfg: &SaslConfig) -> Login {
        if cfg.kerberos.is_some() {
            Login::Gssapi(sasl_gssapi::Exchange::new(
                gssapi::Context::new(),
                cfg.name_rules(),
            ))
        } else {
            Login::Digest(sasl_digest::Exchange::new())
        }
    }

    /// The `sasl` id once the login is complete.
    pub fn authorization_id(&self) -> Option<&str> {
        match self {
            Login::Digest(x) => x.authorization_id(),
            Login::Gssapi(x) => x.authorization_id(),
        }
    }
}

/// The principal and keytab of a Krb5LoginModule line. Only a keytab login can accept: a
/// ticket cache holds no service key.
fn kerberos_login(m: &jaas::Module) -> Result<KerberosLogin, String> {
    let opt = |k: &str| {
        m.options
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if !opt("useKeyTab").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(
            "Krb5LoginModule needs useKeyTab=true and a keyTab: corral accepts \
                    Kerberos logins with the service's keytab only"
                .into(),
        );
    }
    let keytab = opt("keyTab").ok_or("Krb5LoginModule has useKeyTab=true but no keyTab")?;
    let principal = opt("principal").ok_or("Krb5LoginModule names no principal")?;
    Ok(KerberosLogin {
        principal: principal.to_string(),
        keytab: PathBuf::from(keytab),
    })
}

/// The `sasl` ACL scheme once registered (`authProvider.N`); process-wide like ZooKeeper's
/// ProviderRegistry, so the ACL checks of every shard and of the write core see the same.
struct SaslScheme {
    any_user_do_x: Option<String>,
}

static SASL_SCHEME: OnceLock<SaslScheme> = OnceLock::new();

/// Registers the `sasl` ACL scheme if the configuration names its provider. Once per process.
pub fn register(cfg: &SaslConfig) {
    if cfg.provider {
        let _ = SASL_SCHEME.set(SaslScheme {
            any_user_do_x: cfg.any_user_do_x.clone(),
        });
    }
}

/// The `sasl` scheme is registered: its ACLs are valid and can match, and `auth` ACLs take
/// `sasl` ids.
pub fn sasl_scheme_registered() -> bool {
    SASL_SCHEME.get().is_some()
}

/// SASLAuthenticationProvider.matches: the id itself, the id `super`, or letAnySaslUserDoX.
pub fn sasl_matches(id: &str, expr: &str) -> bool {
    let Some(s) = SASL_SCHEME.get() else {
        return false;
    };
    id == "super" || id == expr || s.any_user_do_x.as_deref() == Some(expr)
}

/// SASLAuthenticationProvider.isValid: what Kerberos's name syntax accepts
/// (`service[/host]@realm` with one `@`, or a plain name without `@`); false while the scheme
/// is not registered.
pub fn sasl_id_valid(id: &str) -> bool {
    if !sasl_scheme_registered() {
        return false;
    }
    kerberos_name_valid(id)
}

fn kerberos_name_valid(id: &str) -> bool {
    match id.split_once('@') {
        None => true,
        Some((principal, realm)) => {
            !realm.contains(['@', '/']) && principal.matches('/').count() <= 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforcement_settings_as_authentication_helper() {
        let mut c = SaslConfig::default();
        assert!(c.enforced_schemes().is_empty());
        assert!(c.validate().is_ok());
        c.apply("enforce.auth.enabled", "true").unwrap();
        assert!(c.validate().unwrap_err().contains("must be"));
        c.apply("enforce.auth.schemes", " digest , sasl").unwrap();
        assert_eq!(c.enforced_schemes(), ["digest", "sasl"]);
        assert!(c.validate().unwrap_err().contains("sasl is not available"));
        c.apply("authProvider.1", SASL_PROVIDER_CLASS).unwrap();
        assert!(c.validate().is_ok());
        assert!(c.sasl_required());
        // sessionRequireClientSASLAuth overrides enforce.auth.*.
        let mut c = SaslConfig::default();
        c.apply("enforce.auth.enabled", "true").unwrap();
        c.apply("enforce.auth.schemes", "digest").unwrap();
        c.apply("sessionRequireClientSASLAuth", "true").unwrap();
        assert_eq!(c.enforced_schemes(), ["sasl"]);
        assert!(c.validate().is_err());
        assert!(!c.apply("authProvider.2", "com.example.Other").unwrap());
        assert!(!c.apply("tickTime", "2").unwrap());
    }

    #[test]
    fn jaas_file_from_jvm_flags_and_config() {
        let mut c = SaslConfig::default();
        c.jaas_from_jvmflags(
            Some("-Xmx1g -Djava.security.auth.login.config=/a.conf"),
            Some("-Djava.security.auth.login.config=\"/b.conf\" -Dx=y"),
        );
        assert_eq!(c.jaas_file, Some(PathBuf::from("/b.conf")));
        let mut c = SaslConfig::default();
        c.apply("corral.jaasConfig", "/c.conf").unwrap();
        c.jaas_from_jvmflags(Some("-Djava.security.auth.login.config=/a.conf"), None);
        assert_eq!(c.jaas_file, Some(PathBuf::from("/c.conf")));
        let mut c = SaslConfig::default();
        c.jaas_from_jvmflags(None, Some("-Dother=1"));
        assert_eq!(c.jaas_file, None);
    }

    #[test]
    fn loading_the_login_section() {
        let text = "Server { m required user_bob=\"pw\"; };\nOther { m required user_x=\"y\"; };";
        let read = |_: &Path| Ok(text.to_string());
        let mut c = SaslConfig::default();
        assert_eq!(c.load(&read), Ok(None));
        assert!(c.users.is_none());
        c.jaas_file = Some("/j".into());
        assert_eq!(c.load(&read), Ok(None));
        assert_eq!(c.users.as_ref().unwrap().0["bob"], "pw");
        assert_eq!(format!("{:?}", c.users.unwrap()), "[\"bob\"]");
        let mut c = SaslConfig {
            jaas_file: Some("/j".into()),
            ..Default::default()
        };
        c.apply("sasl.serverconfig", "Nope").unwrap();
        assert!(c
            .load(&read)
            .unwrap()
            .unwrap()
            .contains("no section named 'Nope'"));
        assert!(c.users.is_none());
        let bad = |_: &Path| Ok("Server {".to_string());
        assert!(c.load(&bad).is_err());
        let missing = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(c.load(&missing).is_err());
    }

    #[test]
    fn a_krb5_login_module_section_is_a_kerberos_login() {
        let text = "Server {\n com.sun.security.auth.module.Krb5LoginModule required\n \
                    useKeyTab=true keyTab=\"/k.keytab\" storeKey=true\n \
                    principal=\"zookeeper/h@R\";\n};\n\
                    Cache { com.sun.security.auth.module.Krb5LoginModule required \
                    useTicketCache=true principal=\"zookeeper/h@R\"; };\n\
                    NoTab { com.sun.security.auth.module.Krb5LoginModule required \
                    useKeyTab=true principal=\"zookeeper/h@R\"; };";
        let read = |_: &Path| Ok(text.to_string());
        let mut c = SaslConfig {
            jaas_file: Some("/j".into()),
            ..Default::default()
        };
        assert_eq!(c.load(&read), Ok(None));
        assert_eq!(
            c.kerberos,
            Some(KerberosLogin {
                principal: "zookeeper/h@R".into(),
                keytab: "/k.keytab".into()
            })
        );
        assert!(c.enabled() && c.users.is_none());
        for (section, want) in [("Cache", "needs useKeyTab=true"), ("NoTab", "no keyTab")] {
            c.apply("sasl.serverconfig", section).unwrap();
            let e = c.load(&read).unwrap_err();
            assert!(e.contains(want) && e.contains(section), "{e}");
        }
        // krb5.conf: zoo.cfg's key, else the JVM flag; name-rule settings.
        let mut c = SaslConfig::default();
        c.jaas_from_jvmflags(Some("-Djava.security.krb5.conf=/etc/k.conf"), None);
        assert_eq!(c.krb5_conf, Some(PathBuf::from("/etc/k.conf")));
        let mut c = SaslConfig::default();
        c.apply("corral.krb5Config", "/z.conf").unwrap();
        c.jaas_from_jvmflags(Some("-Djava.security.krb5.conf=/etc/k.conf"), None);
        assert_eq!(c.krb5_conf, Some(PathBuf::from("/z.conf")));
        c.apply("zookeeper.kerberos.removeHostFromPrincipal", "true")
            .unwrap();
        c.apply("kerberos.removeRealmFromPrincipal", "true")
            .unwrap();
        assert!(c.remove_host && c.remove_realm);
        assert!(c
            .apply("zookeeper.security.auth_to_local", "DEFAULT")
            .unwrap());
        assert!(c
            .apply("security.auth_to_local", r"RULE:[1:$1](a\1)")
            .unwrap_err()
            .contains("backreferences are not supported"));
        assert!(c
            .apply("security.auth_to_local", "RULES")
            .unwrap_err()
            .contains("Invalid rule: RULES"));
    }

    #[test]
    fn kerberos_name_syntax() {
        for ok in ["bob", "", "a/b", "a/b@R", "a@R", "a/b/c"] {
            assert!(kerberos_name_valid(ok), "{ok}");
        }
        for bad in ["a@b@c", "a/b/c@R", "a@R/x"] {
            assert!(!kerberos_name_valid(bad), "{bad}");
        }
    }
}
