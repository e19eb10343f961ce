//! The secure client port (`secureClientPort`): a TLS handshake (rustls, through
//! futures-rustls) in front of the same connection code as the plain port. A verified client
//! certificate authenticates the connection as `x509:<subject DN>` before its first request,
//! as ZooKeeper's X509AuthenticationProvider does after Netty's handshake; the DN is Java's
//! RFC 2253 rendering, so ACLs written for ZooKeeper match. The key and trust stores are read
//! again when their files change (ZooKeeper's FileChangeWatcher), checked every
//! `RELOAD_CHECK`; connections made before keep their session.

use std::cell::RefCell;
use std::time::Duration;

use futures_rustls::TlsAcceptor;
use glommio::net::TcpStream;
use tracing::{info, warn};

use crate::config::Config;
use crate::proto::records::Id;
use crate::tls::{self, Reloading, TlsSettings};

/// Netty's SslHandler default: a client that has not finished its handshake by then is
/// dropped (ZooKeeper uses that default).
pub(super) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a shard looks at the store files' modification times.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The client port's TLS settings from zoo.cfg (`ssl.*`, or `zookeeper.ssl.*`), if any.
pub fn settings(cfg: &Config) -> Result<Option<TlsSettings>, String> {
    TlsSettings::from_lookup("ssl.", |key| lookup(cfg, key))
}

/// A key as zoo.cfg gave it, under its own name or ZooKeeper's system-property spelling
/// (`zookeeper.` + key: ZooKeeper turns unknown zoo.cfg keys into such properties).
pub fn lookup(cfg: &Config, key: &str) -> Option<String> {
    cfg.props
        .get(key)
        .or_else(|| cfg.props.get(&format!("zookeeper.{key}")))
        .cloned()
}

/// `zookeeper.X509AuthenticationProvider.superUser`: the subject DN made a super user.
pub(super) fn super_user(cfg: &Config) -> Option<String> {
    lookup(cfg, "X509AuthenticationProvider.superUser")
}

/// One shard's TLS state for the secure port: the acceptor in use and what tells it to
/// rebuild it.
pub(super) struct SecurePort {
    settings: TlsSettings,
    acceptor: RefCell<TlsAcceptor>,
    reloading: RefCell<Reloading>,
    super_user: Option<String>,
}

impl SecurePort {
    /// Builds the acceptor; an error names the store at fault (start-up fails with it).
    pub(super) fn new(cfg: &Config, settings: TlsSettings) -> Result<SecurePort, String> {
        let server = tls::server_config(&settings)?;
        Ok(SecurePort {
            reloading: RefCell::new(Reloading::new(&settings)),
            acceptor: RefCell::new(TlsAcceptor::from(server)),
            settings,
            super_user: super_user(cfg),
        })
    }

    /// Rebuilds the acceptor when a store file changed; a store that no longer loads keeps
    /// the old one (and says so), as a half-written file would otherwise stop every handshake.
    fn reload_if_changed(&self) {
        if !self.reloading.borrow_mut().changed() {
            return;
        }
        match tls::server_config(&self.settings) {
            Ok(server) => {
                *self.acceptor.borrow_mut() = TlsAcceptor::from(server);
                info!("TLS key or trust store changed; new handshakes use it");
            }
            Err(e) => {
                warn!("TLS key or trust store changed but does not load, keeping the old: {e}")
            }
        }
    }

    /// Runs the handshake, bounded by `TLS_HANDSHAKE_TIMEOUT`, and returns the stream with
    /// the ids its client certificate proves (none without one, when `ssl.clientAuth` lets a
    /// client go without).
    pub(super) async fn handshake(
        &self,
        stream: TcpStream,
    ) -> Result<(futures_rustls::server::TlsStream<TcpStream>, Vec<Id>), String> {
        let accept = self.acceptor.borrow().clone().accept(stream);
        let timeout = async {
            glommio::timer::sleep(TLS_HANDSHAKE_TIMEOUT).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        };
        let stream = futures_lite::future::or(accept, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let ids = match stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            // rustls has verified the chain against the trust store during the handshake.
            Some(cert) => x509_ids(cert.as_ref(), self.super_user.as_deref())?,
            None => Vec::new(),
        };
        Ok((stream, ids))
    }
}

/// The ids a verified client certificate (`leaf`, DER) proves, as ZooKeeper's
/// X509AuthenticationProvider names them: `x509:<subject DN>`, and `super:<DN>` first when the
/// DN is `superUser`'s. The secure client port and the admin server both use it.
pub(super) fn x509_ids(leaf: &[u8], super_user: Option<&str>) -> Result<Vec<Id>, String> {
    let dn = tls::subject_dn(leaf)?;
    let mut ids = Vec::new();
    if super_user == Some(dn.as_str()) {
        ids.push(Id::new("super", &dn));
    }
    ids.push(Id::new("x509", &dn));
    Ok(ids)
}

/// Checks the stores every `RELOAD_CHECK` for the shard's life.
pub(super) fn spawn_reloader(port: std::rc::Rc<SecurePort>) {
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(RELOAD_CHECK).await;
            port.reload_if_changed();
        }
    })
    .detach();
}
