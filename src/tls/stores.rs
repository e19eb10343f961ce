//! Key and trust stores read from files: PEM (a private key, PKCS#8, PKCS#1 or SEC1, plain or
//! PKCS#8-encrypted with the store password, plus its certificate chain; a trust store holds one
//! or more certificates) and PKCS#12 (keytool's and openssl's). JKS, JCEKS and BCFKS are refused
//! with the keytool command that converts them. Every error names the file.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::settings::{Store, StoreType};

/// A key store's contents: the chain, leaf first, and its private key.
pub(crate) struct KeyMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

const JKS_MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];
const JCEKS_MAGIC: [u8; 4] = [0xCE, 0xCE, 0xCE, 0xCE];

fn read(store: &Store, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(&store.path).map_err(|e| format!("{what} {}: {e}", store.path.display()))
}

/// The format to read `data` as: the configured one, except that a JKS-typed file that is in
/// fact PKCS#12 is read as such (Java's JKS loader does the same), and a real JKS/JCEKS/BCFKS
/// is refused.
fn format(store: &Store, what: &str, data: &[u8]) -> Result<StoreType, String> {
    let path = store.path.display();
    let magic = match data.get(..4) {
        Some(m) if m == JKS_MAGIC => Some("JKS"),
        Some(m) if m == JCEKS_MAGIC => Some("JCEKS"),
        _ => None,
    };
    if let Some(magic) = magic {
        let p12 = match store.path.extension() {
            Some(_) => store.path.with_extension("p12"),
            None => store.path.with_file_name(format!(
                "{}.p12",
                store.path.file_name().unwrap_or_default().to_string_lossy()
            )),
        };
        return Err(format!(
            "{what} {path} is a {magic} keystore, which corral does not read; convert it to \
             PKCS12 with: keytool -importkeystore -srckeystore {path} -srcstoretype {magic} \
             -destkeystore {} -deststoretype PKCS12 (then point the location at the .p12 file \
             and set its type to PKCS12)",
            p12.display()
        ));
    }
    match store.kind {
        StoreType::Bcfks => Err(format!(
            "{what} {path}: BCFKS keystores are not supported; convert it to PKCS12 with keytool \
             -importkeystore (-srcstoretype BCFKS -deststoretype PKCS12, with the Bouncy Castle \
             FIPS provider on keytool's class path)"
        )),
        // DER starts with a SEQUENCE; Java 9+ reads PKCS#12 under the JKS type (keystore.type.compat).
        StoreType::Jks if data.first() == Some(&0x30) => Ok(StoreType::Pkcs12),
        StoreType::Jks => Err(format!(
            "{what} {path}: type JKS, but the file is not a JKS or PKCS12 keystore"
        )),
        kind => Ok(kind),
    }
}

/// Reads a key store: its private key and the certificate chain that goes with it.
pub(crate) fn load_key_store(store: &Store) -> Result<KeyMaterial, String> {
    let what = "key store";
    let data = read(store, what)?;
    let path = store.path.display();
    match format(store, what, &data)? {
        StoreType::Pem => {
            let key = pem_key(&data, &store.password).map_err(|e| format!("{what} {path}: {e}"))?;
            let chain = pem_certs(&data).map_err(|e| format!("{what} {path}: {e}"))?;
            if chain.is_empty() {
                return Err(format!("{what} {path}: no CERTIFICATE section"));
            }
            Ok(KeyMaterial { chain, key })
        }
        _ => {
            let ks = pkcs12(&data, &store.password).map_err(|e| format!("{what} {path}: {e}"))?;
            let Some((_, entry)) = ks.private_key_chain() else {
                return Err(format!("{what} {path}: no private key entry"));
            };
            let chain = entry
                .chain()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key().to_vec()));
            Ok(KeyMaterial { chain, key })
        }
    }
}

/// Reads a trust store: the certificates it trusts.
pub(crate) fn load_trust_store(store: &Store) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = "trust store";
    let data = read(store, what)?;
    let path = store.path.display();
    let certs = match format(store, what, &data)? {
        StoreType::Pem => pem_certs(&data).map_err(|e| format!("{what} {path}: {e}"))?,
        _ => {
            let ks = pkcs12(&data, &store.password).map_err(|e| format!("{what} {path}: {e}"))?;
            ks.entries()
                .filter_map(|(_, e)| match e {
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        Some(CertificateDer::from(c.as_der().to_vec()))
                    }
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(_) => None,
                })
                .collect()
        }
    };
    if certs.is_empty() {
        return Err(format!(
            "{what} {path}: no trusted certificate (PEM: a CERTIFICATE section; PKCS12: a \
             trustedCertEntry, as keytool -importcert makes; openssl pkcs12 -export -nokeys \
             does not mark certificates trusted, and Java ignores them too)"
        ));
    }
    Ok(certs)
}

fn pkcs12(data: &[u8], password: &str) -> Result<p12_keystore::KeyStore, String> {
    use p12_keystore::error::Error;
    p12_keystore::KeyStore::from_pkcs12(data, password).map_err(|e| match e {
        Error::MacError(_) => "wrong password (the PKCS12 integrity check failed)".to_string(),
        Error::Pkcs5Error(e) => format!("cannot decrypt (wrong password?): {e}"),
        Error::UnpadError => "cannot decrypt (wrong password?)".to_string(),
        e => format!("not a readable PKCS12 file: {e}"),
    })
}

fn pem_certs(data: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

fn pem_key(data: &[u8], password: &str) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(data);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the private key is encrypted in OpenSSL's legacy PEM format, which corral \
                    does not read; convert it to encrypted PKCS#8 with: openssl pkcs8 -topk8 \
                    -v2 aes-256-cbc -in KEY -out KEY.pkcs8"
                .to_string(),
        );
    }
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let body = &text[start + ENCRYPTED_BEGIN.len()..];
        let end = body
            .find(ENCRYPTED_END)
            .ok_or("ENCRYPTED PRIVATE KEY section without its END line")?;
        let b64: String = body[..end].split_whitespace().collect();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("bad base64 in ENCRYPTED PRIVATE KEY: {e}"))?;
        if password.is_empty() {
            return Err("the private key is encrypted and no password is configured".to_string());
        }
        return decrypt_pkcs8(&der, password).map(PrivateKeyDer::Pkcs8);
    }
    match PrivateKeyDer::from_pem_slice(data) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(
            "no private key (PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED \
                 PRIVATE KEY section)"
                .to_string(),
        ),
        Err(e) => Err(format!("bad PEM: {e}")),
    }
}

/// EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier,
/// encryptedData OCTET STRING } (RFC 5958), decrypted with PBES1/PBES2 (pkcs5).
fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<PrivatePkcs8KeyDer<'static>, String> {
    use pkcs5::der::{asn1::OctetStringRef, Decode, Reader, SliceReader};
    let parsed = SliceReader::new(der).and_then(|mut r| {
        let v = r.sequence(|r| {
            let scheme = pkcs5::EncryptionScheme::decode(r)?;
            let data = OctetStringRef::decode(r)?;
            Ok((scheme, data))
        })?;
        r.finish(v)
    });
    let (scheme, data) = parsed
        .map_err(|e| format!("bad ENCRYPTED PRIVATE KEY (PKCS#8 with PBES2 expected): {e}"))?;
    let plain = scheme
        .decrypt(password, data.as_bytes())
        .map_err(|e| format!("cannot decrypt the private key (wrong password?): {e}"))?;
    // A wrong password passes the padding check now and then; the result is then not DER.
    if plain.first() != Some(&0x30) {
        return Err("cannot decrypt the private key (wrong password?)".to_string());
    }
    Ok(PrivatePkcs8KeyDer::from(plain))
}
