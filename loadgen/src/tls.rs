//! TLS for the loadgen's sessions (`--tls-ca`, with `--tls-cert`/`--tls-key` for a client
//! certificate): the client configuration, and a stream that is plain TCP or TLS over it, for
//! the glommio sessions and for the blocking setup connection. The server's certificate is
//! checked against the CA for the address dialed (an IP address SAN).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The client side of `--tls-*`.
pub fn client_config(
    ca: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(named(ca))? {
        roots
            .add(c.map_err(named(ca))?)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let c = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(named(cert))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(named(cert))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(named(key))?;
            b.with_client_auth_cert(chain, key_der)
                .map_err(|e| e.to_string())?
        }
        (None, None) => b.with_no_client_auth(),
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(Arc::new(c))
}

/// A PEM error naming its file.
fn named(p: &Path) -> impl Fn(rustls::pki_types::pem::Error) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

fn server_name(addr: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}

/// A session's byte stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Wraps a connected socket: as it is, or after a TLS handshake.
    pub async fn over(
        tcp: TcpStream,
        addr: SocketAddr,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> io::Result<Stream> {
        match tls {
            None => Ok(Stream::Plain(tcp)),
            Some(c) => futures_rustls::TlsConnector::from(c.clone())
                .connect(server_name(addr), tcp)
                .await
                .map(|s| Stream::Tls(Box::new(s))),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// A blocking stream (the setup connection), plain or TLS.
pub trait BlockingIo: io::Read + io::Write + Send {}
impl<T: io::Read + io::Write + Send> BlockingIo for T {}

/// Wraps a connected blocking socket, doing the TLS handshake if asked.
pub fn blocking(
    tcp: std::net::TcpStream,
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> io::Result<Box<dyn BlockingIo>> {
    match tls {
        None => Ok(Box::new(tcp)),
        Some(c) => {
            let conn = rustls::ClientConnection::new(c.clone(), server_name(addr))
                .map_err(io::Error::other)?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock)?;
            }
            Ok(Box::new(s))
        }
    }
}
