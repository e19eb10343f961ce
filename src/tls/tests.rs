//! Stores made by rcgen, openssl and keytool (all three are required: the tests do not skip),
//! and real handshakes between the configs built here, pumped in memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};

use super::*;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf signed by `ca`, as one PEM holding key, cert and the CA cert (a PEM key store).
fn leaf(ca: &Ca, cn: &str, sans: &[&str], expired: bool) -> String {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "corral");
    p.distinguished_name.push(DnType::CommonName, cn);
    if expired {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    format!("{}{}{}", key.serialize_pem(), cert.pem(), ca.cert.pem())
}

/// A temp dir holding a CA, a server, clients (trusted, from another CA, expired) as PEM.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("corral-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = Fixture { dir };
        let good = ca("corral test CA");
        let other = ca("stranger CA");
        f.write("ca.pem", &good.cert.pem());
        f.write(
            "server.pem",
            &leaf(&good, "server", &["localhost", "127.0.0.1"], false),
        );
        f.write("client.pem", &leaf(&good, "client", &[], false));
        f.write("stranger.pem", &leaf(&other, "client", &[], false));
        f.write("expired.pem", &leaf(&good, "client", &[], true));
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// Settings for `prefix` from key suffix/value pairs, paths relative to the fixture.
    fn settings(&self, pairs: &[(&str, &str)]) -> TlsSettings {
        self.try_settings(pairs).unwrap()
    }

    fn try_settings(&self, pairs: &[(&str, &str)]) -> Result<TlsSettings, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| {
                let v = if k.ends_with(".location") {
                    self.path(v).display().to_string()
                } else {
                    v.to_string()
                };
                (format!("ssl.{k}"), v)
            })
            .collect();
        TlsSettings::from_lookup("ssl.", |k| {
            pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone())
        })
        .map(|s| s.expect("keyStore.location set"))
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{program} is required by these tests: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Client and server talk until both are done or one fails; the error says which side.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    name: &str,
) -> Result<ServerConnection, String> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut c = ClientConnection::new(client, name).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    for _ in 0..16 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            // Application data both ways proves the session keys agree.
            use std::io::{Read, Write};
            c.writer().write_all(b"ruok").unwrap();
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut got = [0u8; 4];
            s.reader().read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ruok");
            return Ok(s);
        }
    }
    Err("handshake did not finish".to_string())
}

/// A client with no certificate of its own, trusting the fixture's CA.
fn anonymous_client(f: &Fixture) -> Arc<rustls::ClientConfig> {
    let s = f.settings(&[
        ("keyStore.location", "client.pem"),
        ("trustStore.location", "ca.pem"),
    ]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(
        roots(s.trust_store.as_ref().unwrap()).unwrap(),
        provider.clone(),
    )
    .build()
    .unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_webpki_verifier(verifier)
            .with_no_client_auth(),
    )
}

fn server(f: &Fixture, extra: &[(&str, &str)]) -> Arc<rustls::ServerConfig> {
    let mut pairs = vec![
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "ca.pem"),
    ];
    pairs.extend_from_slice(extra);
    server_config(&f.settings(&pairs)).unwrap()
}

fn client(f: &Fixture, keystore: &str, extra: &[(&str, &str)]) -> Arc<rustls::ClientConfig> {
    let mut pairs = vec![
        ("keyStore.location", keystore),
        ("trustStore.location", "ca.pem"),
    ];
    pairs.extend_from_slice(extra);
    client_config(&f.settings(&pairs)).unwrap()
}

#[test]
fn mutual_tls_names_the_client_as_zookeeper_does() {
    let f = Fixture::new("mutual");
    let s = handshake(client(&f, "client.pem", &[]), server(&f, &[]), "localhost").unwrap();
    let peer = &s.peer_certificates().expect("client certificate")[0];
    assert_eq!(subject_dn(peer).unwrap(), "CN=client,O=corral");
    // The default protocol is TLSv1.2 on the client side (ZooKeeper's FIPS-mode default).
    assert_eq!(s.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let s = handshake(
        client(&f, "client.pem", &[("protocol", "TLSv1.3")]),
        server(&f, &[]),
        "127.0.0.1",
    )
    .unwrap();
    assert_eq!(s.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
}

#[test]
fn need_refuses_a_client_without_a_certificate() {
    let f = Fixture::new("need");
    let e = handshake(anonymous_client(&f), server(&f, &[]), "localhost").unwrap_err();
    assert!(e.starts_with("server:") && e.contains("certificate"), "{e}");
    let e = handshake(
        anonymous_client(&f),
        server(&f, &[("clientAuth", "need")]),
        "localhost",
    )
    .unwrap_err();
    assert!(e.starts_with("server:"), "{e}");
}

#[test]
fn want_lets_an_anonymous_client_in_but_checks_a_presented_certificate() {
    let f = Fixture::new("want");
    let want = server(&f, &[("clientAuth", "want")]);
    let s = handshake(anonymous_client(&f), want.clone(), "localhost").unwrap();
    assert!(s.peer_certificates().is_none());
    let s = handshake(client(&f, "client.pem", &[]), want.clone(), "localhost").unwrap();
    assert!(s.peer_certificates().is_some());
    let e = handshake(client(&f, "stranger.pem", &[]), want, "localhost").unwrap_err();
    assert!(e.starts_with("server:"), "{e}");
}

#[test]
fn none_does_not_ask_for_a_certificate() {
    let f = Fixture::new("none");
    let s = handshake(
        client(&f, "client.pem", &[]),
        server(&f, &[("clientAuth", "none")]),
        "localhost",
    )
    .unwrap();
    assert!(s.peer_certificates().is_none());
}

#[test]
fn untrusted_and_expired_client_certificates_fail() {
    let f = Fixture::new("untrusted");
    for (ks, why) in [
        ("stranger.pem", "UnknownIssuer"),
        ("expired.pem", "expired"),
    ] {
        // The client trusts the server; only the server's check can fail.
        let e = handshake(client(&f, ks, &[]), server(&f, &[]), "localhost").unwrap_err();
        assert!(e.starts_with("server:") && e.contains(why), "{ks}: {e}");
    }
}

#[test]
fn a_server_from_another_ca_fails_even_without_hostname_verification() {
    let f = Fixture::new("stranger-server");
    let srv = server_config(&f.settings(&[
        ("keyStore.location", "stranger.pem"),
        ("clientAuth", "none"),
    ]))
    .unwrap();
    let e = handshake(
        client(&f, "client.pem", &[("hostnameVerification", "false")]),
        srv,
        "client",
    )
    .unwrap_err();
    assert!(
        e.starts_with("client:") && e.contains("UnknownIssuer"),
        "{e}"
    );
}

#[test]
fn hostname_verification_can_be_turned_off() {
    let f = Fixture::new("hostname");
    let e = handshake(
        client(&f, "client.pem", &[]),
        server(&f, &[]),
        "zk1.example",
    )
    .unwrap_err();
    assert!(
        e.starts_with("client:") && e.contains("not valid for name"),
        "{e}"
    );
    handshake(
        client(&f, "client.pem", &[("hostnameVerification", "false")]),
        server(&f, &[]),
        "zk1.example",
    )
    .unwrap();
}

#[test]
fn protocols_and_suites_are_honoured() {
    let f = Fixture::new("protocols");
    let tls12 = server(&f, &[("enabledProtocols", "TLSv1.2")]);
    let tls13 = client(&f, "client.pem", &[("enabledProtocols", "TLSv1.3")]);
    let e = handshake(tls13, tls12.clone(), "localhost").unwrap_err();
    assert!(e.contains("incompatible"), "{e}");
    // A suite both accept is the one negotiated.
    let suite = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256";
    let c = client(&f, "client.pem", &[("ciphersuites", suite)]);
    let s = handshake(c, tls12, "localhost").unwrap();
    assert_eq!(
        java_suite_name(&s.negotiated_cipher_suite().unwrap()),
        suite
    );
    // No suite in common fails.
    let c = client(
        &f,
        "client.pem",
        &[("ciphersuites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")],
    );
    let s = server(
        &f,
        &[("ciphersuites", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")],
    );
    assert!(handshake(c, s, "localhost").is_err());
    // Only TLS 1.3 suites with only TLS 1.2 enabled: refused when the config is built.
    let e = server_config(&f.settings(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "ca.pem"),
        ("enabledProtocols", "TLSv1.2"),
        ("ciphersuites", "TLS_AES_128_GCM_SHA256"),
    ]))
    .unwrap_err();
    assert!(e.contains("ssl.ciphersuites"), "{e}");
}

#[test]
fn every_java_suite_name_maps_to_a_rustls_suite() {
    let provider = rustls::crypto::ring::default_provider();
    let mut names: Vec<String> = provider.cipher_suites.iter().map(java_suite_name).collect();
    names.sort();
    let mut want: Vec<String> = settings::SUITE_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(names, want);
}

fn pem_chain_and_key(f: &Fixture, pem: &str) {
    // openssl wants the key and certificates apart.
    let text = std::fs::read_to_string(f.path(pem)).unwrap();
    let cut = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    f.write("leaf.key", &text[..cut]);
    f.write("leaf.crt", &text[cut..]);
}

#[test]
fn pkcs12_from_openssl_and_keytool_load() {
    let f = Fixture::new("p12");
    pem_chain_and_key(&f, "server.pem");
    f.run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.crt",
            "-name",
            "server",
            "-passout",
            "pass:s3cret",
            "-out",
            "openssl.p12",
        ],
    );
    // keytool's own PKCS12 (Java 17's defaults: PBES2 AES-256, HmacPBESHA256).
    f.run(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            "openssl.p12",
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            "s3cret",
            "-destkeystore",
            "keytool.p12",
            "-deststoretype",
            "PKCS12",
            "-deststorepass",
            "changeit",
        ],
    );
    f.run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            "ca.pem",
            "-keystore",
            "trust.p12",
            "-storetype",
            "PKCS12",
            "-storepass",
            "trustpw",
        ],
    );
    // A .jks name holding PKCS12 (what `keytool -storetype JKS` writes nowadays is still JKS,
    // but Java reads a PKCS12 file under the JKS type, and so does corral).
    std::fs::copy(f.path("trust.p12"), f.path("trust-p12.jks")).unwrap();
    for (ks, pw) in [("openssl.p12", "s3cret"), ("keytool.p12", "changeit")] {
        for trust in ["trust.p12", "trust-p12.jks"] {
            let s = f.settings(&[
                ("keyStore.location", ks),
                ("keyStore.password", pw),
                ("trustStore.location", trust),
                ("trustStore.password", "trustpw"),
            ]);
            let srv = server_config(&s).unwrap();
            let conn = handshake(client(&f, "client.pem", &[]), srv, "localhost")
                .unwrap_or_else(|e| panic!("{ks} {trust}: {e}"));
            assert!(conn.peer_certificates().is_some());
            // The same stores on the client side.
            handshake(client_config(&s).unwrap(), server(&f, &[]), "localhost").unwrap();
        }
    }
    // Wrong passwords, named with the file.
    for (ks, which) in [("openssl.p12", "keyStore"), ("trust.p12", "trustStore")] {
        let mut pairs = vec![
            ("keyStore.location", "openssl.p12"),
            ("keyStore.password", "s3cret"),
            ("trustStore.location", "trust.p12"),
            ("trustStore.password", "trustpw"),
        ];
        let key = format!("{which}.password");
        pairs.retain(|(k, _)| *k != key);
        pairs.push((key.as_str(), "wrong"));
        let e = server_config(&f.settings(&pairs)).unwrap_err();
        assert!(e.contains("wrong password") && e.contains(ks), "{e}");
    }
    // A PKCS12 with only a private key entry is no trust store.
    let e = server_config(&f.settings(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "openssl.p12"),
        ("trustStore.password", "s3cret"),
    ]))
    .unwrap_err();
    assert!(
        e.contains("no trusted certificate") && e.contains("openssl.p12"),
        "{e}"
    );
    // openssl's certificate-only PKCS12 marks nothing trusted: Java 17's KeyStore finds no
    // entry in it either (size 0), so it is refused rather than half-read.
    f.run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-nokeys",
            "-in",
            "ca.pem",
            "-passout",
            "pass:pw",
            "-out",
            "certs-only.p12",
        ],
    );
    let e = server_config(&f.settings(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "certs-only.p12"),
        ("trustStore.password", "pw"),
    ]))
    .unwrap_err();
    assert!(
        e.contains("no trusted certificate") && e.contains("-nokeys"),
        "{e}"
    );
    // Nor is a trust store a key store.
    let e = server_config(&f.settings(&[
        ("keyStore.location", "trust.p12"),
        ("keyStore.password", "trustpw"),
        ("clientAuth", "none"),
    ]))
    .unwrap_err();
    assert!(
        e.contains("no private key") && e.contains("trust.p12"),
        "{e}"
    );
}

#[test]
fn jks_is_refused_with_the_conversion_command() {
    let f = Fixture::new("jks");
    f.run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            "ca.pem",
            "-keystore",
            "trust.jks",
            "-storetype",
            "JKS",
            "-storepass",
            "changeit",
        ],
    );
    let s = f.settings(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "trust.jks"),
        ("trustStore.password", "changeit"),
    ]);
    let e = server_config(&s).unwrap_err();
    let path = f.path("trust.jks").display().to_string();
    let p12 = f.path("trust.p12").display().to_string();
    let want = format!(
        "keytool -importkeystore -srckeystore {path} -srcstoretype JKS -destkeystore {p12} -deststoretype PKCS12"
    );
    assert!(e.contains(&want), "{e}");
    // The magic decides, whatever the type says.
    let s = f.settings(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "trust.jks"),
        ("trustStore.type", "PKCS12"),
    ]);
    assert!(server_config(&s).unwrap_err().contains("is a JKS keystore"));
}

#[test]
fn pem_keys_in_every_encoding_load() {
    let f = Fixture::new("pemkeys");
    pem_chain_and_key(&f, "server.pem");
    // PKCS#1 RSA and SEC1 EC keys with self-signed certs from openssl.
    f.run(
        "openssl",
        &["genrsa", "-traditional", "-out", "rsa.key", "2048"],
    );
    f.run(
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.key",
        ],
    );
    for key in ["rsa.key", "ec.key"] {
        let crt = format!("{key}.crt");
        f.run(
            "openssl",
            &[
                "req",
                "-x509",
                "-key",
                key,
                "-subj",
                "/CN=localhost",
                "-days",
                "2",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-out",
                &crt,
            ],
        );
        let text = std::fs::read_to_string(f.path(key)).unwrap();
        let marker = if key == "rsa.key" {
            "BEGIN RSA PRIVATE KEY"
        } else {
            "BEGIN EC PRIVATE KEY"
        };
        assert!(text.contains(marker), "{key}: {text}");
        let pem = format!("{text}{}", std::fs::read_to_string(f.path(&crt)).unwrap());
        f.write(&format!("{key}.pem"), &pem);
        let s = f.settings(&[
            ("keyStore.location", &format!("{key}.pem")),
            ("clientAuth", "none"),
        ]);
        server_config(&s).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    // Encrypted PKCS#8 (PBES2), with the key store password.
    f.run(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "leaf.key",
            "-passout",
            "pass:keypw",
            "-out",
            "enc.key",
        ],
    );
    let enc = std::fs::read_to_string(f.path("enc.key")).unwrap();
    assert!(enc.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    f.write(
        "enc.pem",
        &format!(
            "{enc}{}",
            std::fs::read_to_string(f.path("leaf.crt")).unwrap()
        ),
    );
    let with = |pw: Option<&str>| {
        let mut pairs = vec![
            ("keyStore.location", "enc.pem"),
            ("trustStore.location", "ca.pem"),
        ];
        if let Some(pw) = pw {
            pairs.push(("keyStore.password", pw));
        }
        server_config(&f.settings(&pairs))
    };
    let srv = with(Some("keypw")).unwrap();
    handshake(client(&f, "client.pem", &[]), srv, "localhost").unwrap();
    let e = with(Some("nope")).err().unwrap();
    assert!(e.contains("wrong password") && e.contains("enc.pem"), "{e}");
    let e = with(None).err().unwrap();
    assert!(e.contains("no password") && e.contains("enc.pem"), "{e}");
    // OpenSSL's legacy encrypted PEM is refused with the conversion command.
    f.run(
        "openssl",
        &[
            "rsa",
            "-traditional",
            "-aes256",
            "-in",
            "rsa.key",
            "-passout",
            "pass:x",
            "-out",
            "legacy.key",
        ],
    );
    f.write(
        "legacy.pem",
        &std::fs::read_to_string(f.path("legacy.key")).unwrap(),
    );
    let e =
        server_config(&f.settings(&[("keyStore.location", "legacy.pem"), ("clientAuth", "none")]))
            .unwrap_err();
    assert!(
        e.contains("openssl pkcs8 -topk8") && e.contains("legacy.pem"),
        "{e}"
    );
}

#[test]
fn broken_stores_are_named_in_errors() {
    let f = Fixture::new("broken");
    let err = |pairs: &[(&str, &str)]| server_config(&f.settings(pairs)).unwrap_err();
    let e = err(&[
        ("keyStore.location", "missing.pem"),
        ("trustStore.location", "ca.pem"),
    ]);
    assert!(e.contains("missing.pem"), "{e}");
    let e = err(&[
        ("keyStore.location", "ca.pem"),
        ("trustStore.location", "ca.pem"),
    ]);
    assert!(e.contains("no private key") && e.contains("ca.pem"), "{e}");
    let e = err(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "missing.p12"),
    ]);
    assert!(e.contains("missing.p12"), "{e}");
    // A key that is not the certificate's.
    let client = std::fs::read_to_string(f.path("client.pem")).unwrap();
    let server = std::fs::read_to_string(f.path("server.pem")).unwrap();
    let key_end = client.find("-----BEGIN CERTIFICATE-----").unwrap();
    let cert_start = server.find("-----BEGIN CERTIFICATE-----").unwrap();
    f.write(
        "mismatch.pem",
        &format!("{}{}", &client[..key_end], &server[cert_start..]),
    );
    let e = err(&[
        ("keyStore.location", "mismatch.pem"),
        ("clientAuth", "none"),
    ]);
    assert!(e.contains("mismatch.pem"), "{e}");
    // A trust store without a certificate.
    f.write("empty.pem", "nothing here\n");
    let e = err(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "empty.pem"),
    ]);
    assert!(
        e.contains("no trusted certificate") && e.contains("empty.pem"),
        "{e}"
    );
    // The client side needs a trust store.
    let e =
        client_config(&f.settings(&[("keyStore.location", "client.pem"), ("clientAuth", "none")]))
            .unwrap_err();
    assert!(e.contains("ssl.trustStore.location"), "{e}");
}

#[test]
fn reloading_sees_each_store_change_once() {
    let f = Fixture::new("reload");
    let s = f.settings(&[
        ("keyStore.location", "server.pem"),
        ("trustStore.location", "ca.pem"),
    ]);
    let mut r = Reloading::new(&s);
    assert!(!r.changed());
    let touch = |p: &Path, extra: &str| {
        let mut text = std::fs::read_to_string(p).unwrap();
        text.push_str(extra);
        std::fs::write(p, text).unwrap();
    };
    touch(&f.path("ca.pem"), "\n");
    assert!(r.changed());
    assert!(!r.changed(), "reported twice");
    touch(&f.path("server.pem"), "\n");
    assert!(r.changed());
    assert!(!r.changed());
    // Same length, new mtime: a rewritten certificate of the same size.
    let old = std::fs::metadata(f.path("ca.pem"))
        .unwrap()
        .modified()
        .unwrap();
    let text = std::fs::read(f.path("ca.pem")).unwrap();
    let file = std::fs::File::options()
        .write(true)
        .open(f.path("ca.pem"))
        .unwrap();
    file.set_modified(old + std::time::Duration::from_secs(5))
        .unwrap();
    drop(file);
    assert_eq!(std::fs::read(f.path("ca.pem")).unwrap(), text);
    assert!(r.changed());
    // Removed (being replaced), then back.
    std::fs::remove_file(f.path("ca.pem")).unwrap();
    assert!(r.changed());
    std::fs::write(f.path("ca.pem"), &text).unwrap();
    assert!(r.changed());
    assert!(!r.changed());
    // Settings and configs cross threads.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TlsSettings>();
    send_sync::<Reloading>();
    send_sync::<Arc<rustls::ServerConfig>>();
}
