//! INTERIM (replaced by the tls-material branch): PEM-only stores, enough to build the transport.
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Clone, Debug)]
pub struct TlsSettings {
    key: String,
    trust: Option<String>,
    client_auth: String,
}

impl TlsSettings {
    pub fn from_lookup(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TlsSettings>, String> {
        let Some(key) = lookup(&format!("{prefix}keyStore.location")) else {
            return Ok(None);
        };
        Ok(Some(TlsSettings {
            key,
            trust: lookup(&format!("{prefix}trustStore.location")),
            client_auth: lookup(&format!("{prefix}clientAuth")).unwrap_or("need".into()),
        }))
    }
}

pub fn server_config(s: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&s.key)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let b = match (&s.trust, s.client_auth.as_str()) {
        (Some(t), mode) if mode != "none" => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(t).map_err(|e| e.to_string())? {
                roots
                    .add(c.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if mode == "want" {
                v.allow_unauthenticated()
            } else {
                v
            };
            b.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
        _ => b.with_no_client_auth(),
    };
    Ok(Arc::new(
        b.with_single_cert(certs, key).map_err(|e| e.to_string())?,
    ))
}

pub fn subject_dn(cert_der: &[u8]) -> Result<String, String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| e.to_string())?;
    Ok(c.subject().to_string())
}

pub struct Reloading;
impl Reloading {
    pub fn new(_: &TlsSettings) -> Reloading {
        Reloading
    }
    pub fn changed(&mut self) -> bool {
        false
    }
}

pub fn valid_dn(s: &str) -> bool {
    s.contains('=')
}

pub fn client_config(s: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, String> {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&s.key)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(t) = &s.trust {
        for c in CertificateDer::pem_file_iter(t).map_err(|e| e.to_string())? {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(c))
}
