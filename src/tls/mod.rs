//! TLS material: ZooKeeper's TLS settings turned into rustls configurations, and a client
//! certificate's subject named the way ZooKeeper's x509 scheme names it. Pure but for reading
//! the store files; the transport (secure client port, quorum links) builds its configs from a
//! `TlsSettings` on each shard's thread and rebuilds them when `Reloading::changed` says so.
//!
//! - `settings`: zoo.cfg keys (`ssl.*`, `ssl.quorum.*`) -> `TlsSettings`.
//! - `stores`: PEM and PKCS#12 key and trust stores (JKS refused with the keytool command).
//! - `dn`: Java's RFC 2253 rendering of a subject, and Java's DN string grammar for `x509:` ids.
//!
//! docs/security.md describes each setting; docs/decisions.md the choices made here.

mod dn;
mod settings;
mod stores;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub use dn::{subject_dn, valid_dn};
pub use settings::{
    is_tls_key, trust_store_from_lookup, ClientAuth, Store, StoreType, TlsSettings, TlsVersion,
    HANDSHAKE_DETECTION_TIMEOUT_DEFAULT, KEYS, PREFIXES,
};

/// The server side: the key store's certificate, the configured versions and suites, and the
/// client certificate policy (need: required and verified against the trust store; want:
/// verified if presented; none: not asked).
pub fn server_config(s: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, String> {
    let key_store = key_store(s)?;
    let keys = stores::load_key_store(key_store)?;
    let provider = provider(s);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&s.server_versions))
        .map_err(|e| format!("{}: {e}", suites_key(s)))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Need | ClientAuth::Want => {
            let trust = s.trust_store.as_ref().ok_or_else(|| {
                format!(
                    "{}trustStore.location is required for clientAuth need or want",
                    s.prefix
                )
            })?;
            let roots = roots(trust)?;
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if s.client_auth == ClientAuth::Want {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("trust store {}: {e}", trust.path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(keys.chain, keys.key)
        .map_err(|e| format!("key store {}: {e}", key_store.path.display()))?;
    Ok(Arc::new(config))
}

fn key_store(s: &TlsSettings) -> Result<&Store, String> {
    s.key_store
        .as_ref()
        .ok_or_else(|| format!("{}keyStore.location is not set", s.prefix))
}

/// The client side (quorum links, `corral cli`): the key store's certificate, if one is set, as
/// client certificate, servers verified against the trust store, and their names checked unless
/// hostnameVerification is false.
pub fn client_config(s: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, String> {
    let trust = s.trust_store.as_ref().ok_or_else(|| {
        format!(
            "{}trustStore.location is required to verify servers (corral has no default trust store)",
            s.prefix
        )
    })?;
    let provider = provider(s);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(trust)?, provider.clone())
        .build()
        .map_err(|e| format!("trust store {}: {e}", trust.path.display()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if s.hostname_verification {
        verifier
    } else {
        Arc::new(AnyName(verifier))
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions(&s.client_versions))
        .map_err(|e| format!("{}: {e}", suites_key(s)))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &s.key_store {
        None => builder.with_no_client_auth(),
        Some(store) => {
            let keys = stores::load_key_store(store)?;
            builder
                .with_client_auth_cert(keys.chain, keys.key)
                .map_err(|e| format!("key store {}: {e}", store.path.display()))?
        }
    };
    Ok(Arc::new(config))
}

/// Checks a client's certificate chain (leaf first) against `trust`, as a TLS server with that
/// trust store would during a handshake: for a chain verified by another trust store that must
/// also satisfy this one (the admin server's `x509` auth, which ZooKeeper checks against the
/// client port's trust store).
pub struct ChainCheck(Arc<dyn rustls::server::danger::ClientCertVerifier>);

impl ChainCheck {
    pub fn new(trust: &Store) -> Result<ChainCheck, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(trust)?, provider)
            .build()
            .map_err(|e| format!("trust store {}: {e}", trust.path.display()))?;
        Ok(ChainCheck(verifier))
    }

    /// Ok when the chain leads to a trusted root and the leaf is valid now for client auth.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
        self.0
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn suites_key(s: &TlsSettings) -> String {
    format!("{0}ciphersuites / {0}enabledProtocols", s.prefix)
}

/// ring's provider, its suites narrowed to `ciphersuites` when set.
fn provider(s: &TlsSettings) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &s.cipher_suites {
        let all = std::mem::take(&mut provider.cipher_suites);
        provider.cipher_suites = names
            .iter()
            .filter_map(|n| all.iter().find(|cs| java_suite_name(cs) == *n).copied())
            .collect();
    }
    Arc::new(provider)
}

/// The IANA (and Java) name of a suite; rustls spells TLS 1.3's with `TLS13_`.
fn java_suite_name(cs: &rustls::SupportedCipherSuite) -> String {
    let name = cs.suite().as_str().unwrap_or_default();
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    }
}

fn versions(v: &[TlsVersion]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    v.iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

fn roots(trust: &Store) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in stores::load_trust_store(trust)? {
        roots
            .add(cert)
            .map_err(|e| format!("trust store {}: {e}", trust.path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// hostnameVerification=false: the chain is still verified (webpki checks it before the
/// name), only a name mismatch is forgiven.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Watches the store files' (mtime, length), so the caller rebuilds its config when ZooKeeper's
/// FileChangeWatcher would reload. A file that cannot be read counts as a change too (it is being
/// replaced); the caller keeps its old config if the rebuild fails, and tries again on the next
/// change.
#[derive(Debug, Clone)]
pub struct Reloading {
    files: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
}

impl Reloading {
    pub fn new(s: &TlsSettings) -> Reloading {
        Reloading {
            files: s
                .store_paths()
                .into_iter()
                .map(|p| (p.to_path_buf(), stamp(p)))
                .collect(),
        }
    }

    /// True once after any store file changed since `new` or the last `true`.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.files {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests;
