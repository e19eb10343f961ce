//! The CLI client's connection: plain TCP, or TLS (rustls) for a secure client port. The
//! client reads on one thread and writes on others (the shell, the pinger), so a TLS link is
//! two clones of the socket sharing one rustls connection behind a lock. The lock is never
//! held across a blocking socket read: the reader reads the socket first, then hands the bytes
//! to rustls.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

pub enum Link {
    Plain(TcpStream),
    Tls {
        tcp: TcpStream,
        tls: Arc<Mutex<ClientConnection>>,
    },
}

impl Link {
    /// Runs the TLS handshake for `host` (checked against the server's certificate unless the
    /// config forgives names) over `tcp`, within its read timeout.
    pub fn tls(
        mut tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> io::Result<Link> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::other(format!("{host}: {e}")))?;
        let mut tls = ClientConnection::new(config, name).map_err(io::Error::other)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp)?;
        }
        Ok(Link::Tls {
            tcp,
            tls: Arc::new(Mutex::new(tls)),
        })
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Link::Plain(tcp) | Link::Tls { tcp, .. } => tcp,
        }
    }

    /// Another handle on the same connection (the reader thread's, the writers').
    pub fn try_clone(&self) -> io::Result<Link> {
        Ok(match self {
            Link::Plain(tcp) => Link::Plain(tcp.try_clone()?),
            Link::Tls { tcp, tls } => Link::Tls {
                tcp: tcp.try_clone()?,
                tls: tls.clone(),
            },
        })
    }

    /// Ends the connection (TLS: close_notify first, if the socket takes it).
    pub fn shutdown(&self) {
        if let Link::Tls { tcp, tls } = self {
            let mut tls = lock(tls);
            tls.send_close_notify();
            let _ = flush_tls(&mut tls, tcp);
        }
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

fn lock(tls: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
    tls.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes every TLS record rustls has queued.
fn flush_tls(tls: &mut ClientConnection, mut tcp: &TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(&mut tcp)?;
    }
    Ok(())
}

impl Read for Link {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let (tcp, tls) = match self {
            Link::Plain(tcp) => return tcp.read(out),
            Link::Tls { tcp, tls } => (tcp, tls),
        };
        let mut wire = [0u8; 16 * 1024];
        loop {
            match lock(tls).reader().read(out) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            // No plaintext yet: read the socket without the lock, then decrypt.
            let n = tcp.read(&mut wire)?;
            let mut tls = lock(tls);
            let mut bytes = &wire[..n];
            loop {
                // A zero-length read tells rustls the peer closed; the reader then says
                // whether that was clean.
                tls.read_tls(&mut bytes)?;
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if bytes.is_empty() {
                    break;
                }
            }
            flush_tls(&mut tls, tcp)?;
        }
    }
}

impl Write for Link {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(tcp) => tcp.write(data),
            Link::Tls { tcp, tls } => {
                // rustls takes at most its buffer limit at a time: write it out as it fills.
                let mut tls = lock(tls);
                let mut rest = data;
                while !rest.is_empty() {
                    let n = tls.writer().write(rest)?;
                    flush_tls(&mut tls, tcp)?;
                    rest = &rest[n..];
                }
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(tcp) => tcp.flush(),
            Link::Tls { tcp, tls } => flush_tls(&mut lock(tls), tcp),
        }
    }
}
