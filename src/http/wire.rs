//! A connection's bytes: plain TCP, or TLS (rustls) over it.
//!
//! rustls's own `StreamOwned` reads the socket in a loop until a whole record has arrived, so a
//! client sending a byte just inside each socket timeout could hold a thread for ever. Here
//! every socket read happens under the connection's current deadline instead
//! ([`Wire::set_deadline`]), the same bound the plain connection has: the handshake, a head and
//! each body read are limited in total, not per byte.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::CertificateDer;
use rustls::{ServerConfig, ServerConnection};

/// One connection's transport.
pub(super) enum Wire {
    Plain {
        tcp: TcpStream,
        deadline: Option<Instant>,
    },
    Tls {
        tcp: TcpStream,
        tls: Box<ServerConnection>,
        deadline: Option<Instant>,
    },
}

/// The first byte of a TLS handshake record (ContentType handshake), which no HTTP request
/// starts with: how a unified port tells the two apart.
pub(super) const TLS_HANDSHAKE_BYTE: u8 = 0x16;

impl Wire {
    pub(super) fn plain(tcp: TcpStream) -> Wire {
        Wire::Plain {
            tcp,
            deadline: None,
        }
    }

    /// Runs the TLS handshake, all of it before `deadline`; an error is a handshake that
    /// failed (bad certificate, wrong protocol, timeout), after rustls's alert went out.
    pub(super) fn accept(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
        deadline: Instant,
    ) -> io::Result<Wire> {
        let tls = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut wire = Wire::Tls {
            tcp,
            tls: Box::new(tls),
            deadline: Some(deadline),
        };
        if let Wire::Tls { tcp, tls, deadline } = &mut wire {
            while tls.is_handshaking() {
                push(tls, tcp)?;
                if !tls.is_handshaking() {
                    break;
                }
                // Mid-handshake with nothing to send, rustls waits for the client.
                if !tls.wants_read() {
                    return Err(io::Error::other("TLS handshake stalled"));
                }
                if pull(tls, tcp, *deadline)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            // The handshake's last flight (and TLS 1.3's session tickets).
            push(tls, tcp)?;
        }
        Ok(wire)
    }

    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Plain { tcp, .. } | Wire::Tls { tcp, .. } => tcp,
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        matches!(self, Wire::Tls { .. })
    }

    /// The client's certificate chain, leaf first, as the handshake verified it (empty on a
    /// plain connection or when the client sent none).
    pub(super) fn client_chain(&self) -> Vec<CertificateDer<'static>> {
        match self {
            Wire::Plain { .. } => Vec::new(),
            Wire::Tls { tls, .. } => tls
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        }
    }

    /// The time by which the next reads must have their bytes (None: no bound).
    pub(super) fn set_deadline(&mut self, at: Option<Instant>) {
        match self {
            Wire::Plain { deadline, .. } | Wire::Tls { deadline, .. } => *deadline = at,
        }
    }

    /// Ends the connection: TLS's close_notify first, then both directions of the socket.
    pub(super) fn close(&mut self) {
        self.close_write();
        let _ = self.tcp().shutdown(Shutdown::Both);
    }

    /// Says this side is done (close_notify, then a TCP half-close), still reading.
    pub(super) fn close_write(&mut self) {
        if let Wire::Tls { tcp, tls, .. } = self {
            tls.send_close_notify();
            let _ = push(tls, tcp);
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
}

/// Sets the socket's read timeout to what is left before `deadline`; `TimedOut` once past it.
fn arm(tcp: &TcpStream, deadline: Option<Instant>) -> io::Result<()> {
    let Some(deadline) = deadline else {
        return tcp.set_read_timeout(None);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    tcp.set_read_timeout(Some(left))
}

/// Writes out every TLS record rustls has queued (the socket's write timeout bounds each).
fn push(tls: &mut ServerConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(tcp)?;
    }
    tcp.flush()
}

/// One socket read under `deadline`, handed to rustls. Returns the bytes read (0: the client
/// closed). A protocol error sends rustls's alert before it is returned.
fn pull(
    tls: &mut ServerConnection,
    tcp: &mut TcpStream,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    arm(tcp, deadline)?;
    let n = tls.read_tls(tcp)?;
    if let Err(e) = tls.process_new_packets() {
        let _ = push(tls, tcp);
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    // Alerts, key updates: rustls may have something to say after reading.
    push(tls, tcp)?;
    Ok(n)
}

impl Read for Wire {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain { tcp, deadline } => {
                arm(tcp, *deadline)?;
                tcp.read(out)
            }
            Wire::Tls { tcp, tls, deadline } => loop {
                match tls.reader().read(out) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    other => return other,
                }
                if pull(tls, tcp, *deadline)? == 0 {
                    // The client closed the socket without close_notify: the reader now says
                    // whether that cut a record short.
                    return tls.reader().read(out);
                }
            },
        }
    }
}

impl Write for Wire {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain { tcp, .. } => tcp.write(data),
            Wire::Tls { tcp, tls, .. } => {
                let n = tls.writer().write(data)?;
                push(tls, tcp)?;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain { tcp, .. } => tcp.flush(),
            Wire::Tls { tcp, tls, .. } => {
                tls.writer().flush()?;
                push(tls, tcp)
            }
        }
    }
}
