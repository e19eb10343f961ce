//! Authentication schemes as providers, shaped like ZooKeeper's ServerAuthenticationProvider:
//! each scheme says what an `addauth` packet proves (`handle_authentication`), whether an ACL
//! id is well formed (`is_valid`), whether a connection's id matches an ACL entry (`matches`)
//! and whether its ids name a user (`is_authenticated`, which the `auth` ACL scheme expands
//! to). The ACL checks in `tree::acl` go through the process-wide registry (`registry()`), as
//! ZooKeeper's static ProviderRegistry: the shards and the write core see the same schemes
//! without passing them around.
//!
//! Compiled in: `world`, `auth`, `ip`, `digest`, `x509` (ids from client certificates,
//! server/secure.rs), `sasl` (valid once its provider is named in zoo.cfg, auth/mod.rs) and
//! `super`. `authProvider.N=<ZooKeeper class>` names one of them (`by_class`); corral cannot
//! load Java classes, so a class it does not have is reported at start and ignored, as
//! ZooKeeper logs a provider it cannot load. docs/security.md ("Authentication providers")
//! shows how to add a scheme.

use std::net::IpAddr;
use std::sync::OnceLock;

use crate::proto::codes::Code;
use crate::proto::records::Id;
use crate::tree::acl;

/// What an `addauth` is checked against besides its bytes.
pub struct Authenticating<'a> {
    /// The connection's peer address (the `ip` scheme).
    pub peer: IpAddr,
    /// `DigestAuthenticationProvider.superDigest`: the digest id that is also `super`.
    pub super_digest: Option<&'a str>,
}

/// One authentication scheme (ZooKeeper's ServerAuthenticationProvider).
pub trait AuthProvider: Send + Sync {
    /// The scheme's name, as in ACLs and `addauth`.
    fn scheme(&self) -> &'static str;
    /// The ZooKeeper classes `authProvider.N` names this scheme by.
    fn class_names(&self) -> &'static [&'static str] {
        &[]
    }
    /// `addauth <scheme> <auth>`: the ids it proves, or the error code the client gets (the
    /// connection then closes). Schemes a client cannot add this way refuse.
    fn handle_authentication(&self, _ctx: &Authenticating, _auth: &[u8]) -> Result<Vec<Id>, Code> {
        Err(Code::AuthFailed)
    }
    /// Whether an ACL may name `id` under this scheme (create, setACL).
    fn is_valid(&self, id: &str) -> bool;
    /// Whether a connection's `id` of this scheme matches an ACL entry's `expr`.
    fn matches(&self, id: &str, expr: &str) -> bool {
        id == expr
    }
    /// Whether the scheme's ids name a user: an `auth` ACL entry becomes one entry per such
    /// id of the session.
    fn is_authenticated(&self) -> bool {
        false
    }
    /// Whether an ACL entry `scheme:expr` grants every connection, whatever its ids (`world`).
    fn grants_everyone(&self, _expr: &str) -> bool {
        false
    }
}

struct World;
impl AuthProvider for World {
    fn scheme(&self) -> &'static str {
        "world"
    }
    fn is_valid(&self, id: &str) -> bool {
        id == "anyone"
    }
    fn grants_everyone(&self, expr: &str) -> bool {
        expr == "anyone"
    }
}

/// `auth`: an ACL entry that stands for the session's authenticated ids (`tree::acl::fixup`
/// expands it); never stored, never matched.
struct Auth;
impl AuthProvider for Auth {
    fn scheme(&self) -> &'static str {
        "auth"
    }
    fn is_valid(&self, _id: &str) -> bool {
        true
    }
    fn matches(&self, _id: &str, _expr: &str) -> bool {
        false
    }
}

struct Ip;
impl AuthProvider for Ip {
    fn scheme(&self) -> &'static str {
        "ip"
    }
    fn class_names(&self) -> &'static [&'static str] {
        &["org.apache.zookeeper.server.auth.IPAuthenticationProvider"]
    }
    fn handle_authentication(&self, ctx: &Authenticating, _auth: &[u8]) -> Result<Vec<Id>, Code> {
        Ok(vec![Id::new("ip", &ctx.peer.to_string())])
    }
    fn is_valid(&self, id: &str) -> bool {
        acl::ip_expr_is_valid(id)
    }
    fn matches(&self, id: &str, expr: &str) -> bool {
        acl::ip_matches(id, expr)
    }
}

struct Digest;
impl AuthProvider for Digest {
    fn scheme(&self) -> &'static str {
        "digest"
    }
    fn class_names(&self) -> &'static [&'static str] {
        &["org.apache.zookeeper.server.auth.DigestAuthenticationProvider"]
    }
    fn handle_authentication(&self, ctx: &Authenticating, auth: &[u8]) -> Result<Vec<Id>, Code> {
        let text = std::str::from_utf8(auth).map_err(|_| Code::AuthFailed)?;
        let id = acl::digest_id(text);
        let mut ids = Vec::new();
        if ctx.super_digest == Some(id.as_str()) {
            ids.push(Id::new("super", ""));
        }
        ids.push(Id::new("digest", &id));
        Ok(ids)
    }
    fn is_valid(&self, id: &str) -> bool {
        acl::digest_id_is_valid(id)
    }
    fn is_authenticated(&self) -> bool {
        true
    }
}

static X509_ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the `x509` scheme on for this process when the configuration asks for it: a secure
/// client port (corral's leniency: ZooKeeper also wants the provider line) or an
/// `authProvider.N` naming ZooKeeper's X509AuthenticationProvider. Without either, `x509` ACLs
/// are invalid, as on a ZooKeeper without the provider.
pub fn enable_x509(cfg: &crate::config::Config) {
    let named = cfg
        .props
        .iter()
        .any(|(k, v)| k.starts_with("authProvider.") && X509.class_names().contains(&v.trim()));
    if cfg.secure_client_port.is_some() || named {
        X509_ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether the `x509` scheme is on (`enable_x509`).
pub fn x509_enabled() -> bool {
    X509_ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// `x509`: proved by the TLS handshake (server/secure.rs), not by `addauth`; on when
/// `enable_x509` says so.
struct X509;
impl AuthProvider for X509 {
    fn scheme(&self) -> &'static str {
        "x509"
    }
    fn class_names(&self) -> &'static [&'static str] {
        &["org.apache.zookeeper.server.auth.X509AuthenticationProvider"]
    }
    fn is_valid(&self, id: &str) -> bool {
        x509_enabled() && crate::tls::valid_dn(id)
    }
    fn is_authenticated(&self) -> bool {
        x509_enabled()
    }
}

/// `sasl`: proved by the SASL exchange (server/request.rs); its ACLs are valid only once
/// zoo.cfg names its provider, as in ZooKeeper.
struct Sasl;
impl AuthProvider for Sasl {
    fn scheme(&self) -> &'static str {
        "sasl"
    }
    fn class_names(&self) -> &'static [&'static str] {
        &[super::SASL_PROVIDER_CLASS]
    }
    fn is_valid(&self, id: &str) -> bool {
        super::sasl_id_valid(id)
    }
    fn matches(&self, id: &str, expr: &str) -> bool {
        super::sasl_matches(id, expr)
    }
    fn is_authenticated(&self) -> bool {
        super::sasl_scheme_registered()
    }
}

/// `super`: an id that passes every ACL check (`tree::acl::allowed`); no ACL may name it.
struct Super;
impl AuthProvider for Super {
    fn scheme(&self) -> &'static str {
        "super"
    }
    fn is_valid(&self, _id: &str) -> bool {
        false
    }
    fn matches(&self, _id: &str, _expr: &str) -> bool {
        false
    }
}

/// The schemes in effect.
pub struct Registry {
    providers: Vec<Box<dyn AuthProvider>>,
}

impl Registry {
    fn compiled_in() -> Registry {
        Registry {
            providers: vec![
                Box::new(World),
                Box::new(Auth),
                Box::new(Ip),
                Box::new(Digest),
                Box::new(X509),
                Box::new(Sasl),
                Box::new(Super),
            ],
        }
    }

    /// The provider of `scheme`, if corral has one.
    pub fn get(&self, scheme: &str) -> Option<&dyn AuthProvider> {
        self.providers
            .iter()
            .find(|p| p.scheme() == scheme)
            .map(|p| p.as_ref())
    }

    /// The provider `authProvider.N=<class>` names, if compiled in.
    pub fn by_class(&self, class: &str) -> Option<&dyn AuthProvider> {
        self.providers
            .iter()
            .find(|p| p.class_names().contains(&class))
            .map(|p| p.as_ref())
    }

    /// The schemes' names, for messages.
    pub fn schemes(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.scheme()).collect()
    }
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The process's schemes.
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::compiled_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_scheme_answers_by_its_name_and_classes() {
        let r = registry();
        for s in ["world", "auth", "ip", "digest", "x509", "sasl", "super"] {
            assert_eq!(r.get(s).map(|p| p.scheme()), Some(s));
        }
        assert!(r.get("kerberos").is_none());
        let x = r.by_class("org.apache.zookeeper.server.auth.X509AuthenticationProvider");
        assert_eq!(x.map(|p| p.scheme()), Some("x509"));
        assert!(r.by_class("com.example.MyProvider").is_none());
    }

    #[test]
    fn the_schemes_answer_as_zookeepers_providers_do() {
        let r = registry();
        let ctx = Authenticating {
            peer: "10.1.2.3".parse().unwrap(),
            super_digest: None,
        };
        assert_eq!(
            r.get("ip")
                .unwrap()
                .handle_authentication(&ctx, b"")
                .unwrap(),
            vec![Id::new("ip", "10.1.2.3")]
        );
        assert!(r.get("ip").unwrap().matches("10.1.2.3", "10.1.0.0/16"));
        assert_eq!(
            r.get("x509").unwrap().handle_authentication(&ctx, b"CN=a"),
            Err(Code::AuthFailed)
        );
        // Off until the configuration turns it on (a secure port, or its provider line).
        assert!(!r.get("x509").unwrap().is_valid("CN=a,O=b"));
        X509_ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(r.get("x509").unwrap().is_valid("CN=a,O=b"));
        assert!(!r.get("x509").unwrap().is_valid("not a name"));
        assert!(r.get("world").unwrap().grants_everyone("anyone"));
        assert!(!r.get("world").unwrap().is_valid("someone"));
        assert!(!r.get("super").unwrap().is_valid(""));
        assert!(r.get("digest").unwrap().is_authenticated());
        assert!(!r.get("ip").unwrap().is_authenticated());
    }
}
