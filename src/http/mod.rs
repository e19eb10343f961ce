//! A small HTTP/1.1 server for the admin server and the metrics endpoint.
//!
//! Plain threads, not the shards' executors: these endpoints are polled (a scrape every few
//! seconds, an operator's command), an answer blocks on gathering figures from every core, and
//! a slow or hostile HTTP client must never hold a core that serves ZooKeeper clients. One
//! thread accepts; each connection gets a thread of its own, up to `max_connections`.
//!
//! Everything a client controls is bounded, and refused with a status before the handler runs:
//! the head's size (431), the time to send it (408), the body's size (413; a chunked request
//! body is refused with 411: the endpoints take at most one known-length upload), the number
//! of open connections (503), malformed requests (400) and other HTTP versions (505).
//!
//! An endpoint may speak TLS ([`Security`]): on every connection (ZooKeeper's
//! `admin.forceHttps`), or beside plain HTTP on the same port, told apart by the first byte
//! (`admin.portUnification`). The handshake runs on the connection's thread within the same
//! time limit as a head; the client's verified certificate chain reaches the handler in
//! [`Request::client_chain`]. Over the connection limit a TLS client is closed without an
//! answer (a 503 would need a handshake, and so a thread).

mod parse;
mod wire;

use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use parse::reason;
use parse::Refusal;
use rustls::pki_types::CertificateDer;
use wire::Wire;

/// Whether an endpoint speaks TLS.
#[derive(Clone, Default)]
pub enum Security {
    #[default]
    Plain,
    /// Every connection starts with a TLS handshake.
    Tls(Arc<rustls::ServerConfig>),
    /// TLS or plain HTTP, whichever the client starts with.
    Unified(Arc<rustls::ServerConfig>),
}

/// Jetty's `SecureRequestCustomizer` as ZooKeeper's admin server sets it up: a day, and
/// subdomains, on every answer over TLS.
const HSTS: &str = "max-age=86400; includeSubDomains";

/// What one endpoint lets a client do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// The request line and headers together.
    pub max_head_bytes: usize,
    /// How long a client may take to send a whole head, and to make progress on a body or on
    /// reading a response (per read or write). An idle keep-alive connection is closed after it.
    pub read_timeout: Duration,
    /// The largest request body taken (413 beyond it).
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            max_head_bytes: 16 * 1024,
            read_timeout: Duration::from_secs(10),
            max_body: 0,
        }
    }
}

/// A request as the handler sees it; its body, if any, is the handler's `body` reader.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Percent-decoded, without the query.
    pub path: String,
    /// Decoded `key=value` pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub peer: SocketAddr,
    /// Whether the request came over TLS.
    pub secure: bool,
    /// The client's certificate chain, leaf first, verified during the handshake against the
    /// endpoint's trust store; empty over plain HTTP or without a client certificate.
    pub client_chain: Vec<CertificateDer<'static>>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter of that name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes a streamed body.
pub type Stream = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

enum Payload {
    Full(Vec<u8>),
    /// Sent with chunked transfer encoding (HTTP/1.1) or until close (HTTP/1.0).
    Streamed(Stream),
}

/// A handler's answer.
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    payload: Payload,
    /// Run once the response is sent and the connection closed ([`Response::then`]).
    then: Option<After>,
}

/// What runs after a response is sent.
pub type After = Box<dyn FnOnce() + Send>;

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            payload: Payload::Full(body.into()),
            then: None,
        }
    }

    /// A body written as it is produced (a snapshot): memory stays flat whatever its size.
    pub fn streamed(status: u16, content_type: &str, body: Stream) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            payload: Payload::Streamed(body),
            then: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Runs `f` after the response has been written and flushed and the connection closed
    /// (the admin server's `restore` replaces the process only once its answer is out).
    pub fn then(mut self, f: After) -> Response {
        self.then = Some(f);
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// The server's own refusals: plain text naming the status.
    fn refusal(status: u16) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            format!("{status} {}\n", reason(status)),
        )
    }
}

/// Answers requests. `body` yields exactly the request's body (empty without one); what the
/// handler leaves unread is read and dropped before the next request on the connection.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request, body: &mut dyn Read) -> Response;

    /// The largest body this request may carry, if not [`Limits::max_body`] (an upload
    /// allowed on one route only).
    fn max_body(&self, _req: &Request) -> Option<u64> {
        None
    }
}

impl<F> Handler for F
where
    F: Fn(&Request, &mut dyn Read) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: &Request, body: &mut dyn Read) -> Response {
        self(req, body)
    }
}

/// A running endpoint. Its threads live as long as the process (the server stops by exiting).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Serves `handler` on `listener` in plain HTTP from threads named after `name`.
pub fn serve(
    name: &str,
    listener: TcpListener,
    limits: Limits,
    handler: Arc<dyn Handler>,
) -> io::Result<Server> {
    serve_secure(name, listener, limits, Security::Plain, handler)
}

/// Serves `handler` on `listener`, over TLS as `security` says.
pub fn serve_secure(
    name: &str,
    listener: TcpListener,
    limits: Limits,
    security: Security,
    handler: Arc<dyn Handler>,
) -> io::Result<Server> {
    let addr = listener.local_addr()?;
    let name = name.to_string();
    let open = Arc::new(AtomicUsize::new(0));
    let limits = Arc::new(limits);
    std::thread::Builder::new()
        .name(format!("{name}-accept"))
        .spawn(move || {
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(s) => s,
                    // Out of descriptors, or a connection reset before accept: wait a little
                    // rather than spin, and go on.
                    Err(e) => {
                        tracing::debug!(endpoint = %name, error = %e, "accept failed");
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    match security {
                        Security::Plain => refuse_busy(stream),
                        _ => drop(stream),
                    }
                    continue;
                }
                let (open2, limits, handler) = (open.clone(), limits.clone(), handler.clone());
                let security = security.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("{name}-conn"))
                    .spawn(move || {
                        match open_wire(stream, &security, &limits) {
                            Ok(wire) => {
                                let _ = Conn::new(wire, &limits).serve(&*handler);
                            }
                            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                        }
                        open2.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    open.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(Server { addr })
}

/// The connection as `security` wants it: a TLS handshake first (on a unified port, only if
/// the client's first byte starts one), within the time a head may take.
fn open_wire(stream: TcpStream, security: &Security, limits: &Limits) -> io::Result<Wire> {
    let deadline = Instant::now() + limits.read_timeout;
    stream.set_write_timeout(Some(limits.read_timeout))?;
    let config = match security {
        Security::Plain => return Ok(Wire::plain(stream)),
        Security::Tls(config) => config,
        Security::Unified(config) => {
            stream.set_read_timeout(Some(limits.read_timeout))?;
            let mut first = [0u8; 1];
            loop {
                match stream.peek(&mut first) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if first[0] != wire::TLS_HANDSHAKE_BYTE {
                return Ok(Wire::plain(stream));
            }
            config
        }
    };
    Wire::accept(stream, config.clone(), deadline)
}

/// 503 for a connection over the limit, written without reading the request (a client that
/// opens many connections gets no thread for any of them beyond the limit).
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let mut out = Vec::new();
    let _ = write_response(&mut out, Response::refusal(503), false, false);
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(Shutdown::Both);
}

struct Conn<'a> {
    stream: Wire,
    limits: &'a Limits,
    /// Bytes read past the end of the current head (a body's start, a pipelined request).
    buf: Vec<u8>,
}

/// How reading a head ended.
enum Next {
    Head(usize),
    /// The client closed, or stayed idle past the timeout without starting a request.
    Gone,
    Refuse(u16),
}

impl<'a> Conn<'a> {
    fn new(stream: Wire, limits: &'a Limits) -> Conn<'a> {
        Conn {
            stream,
            limits,
            buf: Vec::new(),
        }
    }

    fn serve(mut self, handler: &dyn Handler) -> io::Result<()> {
        let peer = self.stream.tcp().peer_addr()?;
        self.stream.tcp().set_nodelay(true)?;
        self.stream
            .tcp()
            .set_write_timeout(Some(self.limits.read_timeout))?;
        let secure = self.stream.is_tls();
        let client_chain = self.stream.client_chain();
        loop {
            let end = match self.read_head()? {
                Next::Head(end) => end,
                Next::Gone => return Ok(()),
                Next::Refuse(status) => return self.refuse(status),
            };
            let head = match parse::parse_head(&self.buf[..end]) {
                Ok(h) => h,
                Err(Refusal::BadRequest) => return self.refuse(400),
                Err(Refusal::TooManyHeaders) => return self.refuse(431),
                Err(Refusal::Version) => return self.refuse(505),
            };
            self.buf.drain(..end);
            let req = Request {
                method: head.method,
                path: head.path,
                query: head.query,
                headers: head.headers,
                peer,
                secure,
                client_chain: client_chain.clone(),
            };
            if req.header("transfer-encoding").is_some() {
                return self.refuse(411);
            }
            let length = match body_length(&req) {
                Ok(n) => n,
                Err(()) => return self.refuse(400),
            };
            let max_body = handler.max_body(&req).unwrap_or(self.limits.max_body);
            if length > max_body {
                return self.refuse(413);
            }
            // curl sends `Expect: 100-continue` with a large upload (a restore) and waits a
            // second for this before sending the body.
            if length > 0
                && req
                    .header("expect")
                    .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            {
                self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                self.stream.flush()?;
            }
            // HTTP/1.1 keeps the connection unless asked not to; an HTTP/1.0 client gets one
            // answer per connection (these endpoints see curl, Prometheus and probes, all 1.1).
            let close = req
                .header("connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"));
            let keep_alive = head.http11 && !close;
            let mut body = Body {
                conn: &mut self,
                left: length,
            };
            let response = handler.handle(&req, &mut body);
            // What the handler left unread, so the next request starts where it should.
            let drained = io::copy(&mut body, &mut io::sink()).is_ok() && body.left == 0;
            let keep_alive = keep_alive && drained;
            let head_only = req.method == "HEAD";
            let mut response = response;
            if secure {
                response = response.header("Strict-Transport-Security", HSTS);
            }
            let then = response.then.take();
            let keep_alive = keep_alive && then.is_none();
            let mut out = BufWriter::with_capacity(64 * 1024, &mut self.stream);
            let sent = write_response(&mut out, response, keep_alive, head_only)
                .and_then(|k| out.flush().map(|_| k));
            drop(out);
            if let Some(then) = then {
                // Whether or not the client is still there to read it.
                self.stream.close();
                then();
                return sent.map(|_| ());
            }
            let keep_alive = sent? && keep_alive;
            if !keep_alive {
                self.stream.close();
                return Ok(());
            }
        }
    }

    /// Reads until a whole head is buffered, within the head's size and time limits.
    fn read_head(&mut self) -> io::Result<Next> {
        let deadline = Instant::now() + self.limits.read_timeout;
        let mut scanned: usize = 0;
        loop {
            if let Some(end) = parse::head_end(&self.buf[scanned.saturating_sub(3)..]) {
                let end = end + scanned.saturating_sub(3);
                if end > self.limits.max_head_bytes {
                    return Ok(Next::Refuse(431));
                }
                return Ok(Next::Head(end));
            }
            scanned = self.buf.len();
            if scanned > self.limits.max_head_bytes {
                return Ok(Next::Refuse(431));
            }
            self.stream.set_deadline(Some(deadline));
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(Next::Gone),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => return Ok(timed_out(scanned)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Answers with an error status and closes: after a refused head the stream's framing
    /// cannot be trusted.
    fn refuse(mut self, status: u16) -> io::Result<()> {
        let mut out = Vec::new();
        write_response(&mut out, Response::refusal(status), false, false)?;
        let sent = self
            .stream
            .write_all(&out)
            .and_then(|_| self.stream.flush());
        // Read (and drop) what the client is still sending for a moment, so closing does not
        // reset the connection before the client reads the status.
        self.stream.close_write();
        self.stream
            .set_deadline(Some(Instant::now() + Duration::from_millis(100)));
        let _ = io::copy(&mut (&mut self.stream).take(1 << 20), &mut io::sink());
        sent
    }
}

/// A client that sent part of a head and stalled gets 408; one that never started a request
/// (an idle keep-alive connection) is just closed.
fn timed_out(received: usize) -> Next {
    if received == 0 {
        Next::Gone
    } else {
        Next::Refuse(408)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The body's length from `Content-Length` (0 without one); several that disagree, or one
/// that is not a number, is a bad request.
fn body_length(req: &Request) -> Result<u64, ()> {
    let mut length = None;
    for (_, v) in req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let n: u64 = v.parse().map_err(|_| ())?;
        if length.is_some_and(|l| l != n) {
            return Err(());
        }
        length = Some(n);
    }
    Ok(length.unwrap_or(0))
}

/// A request's body: the buffered bytes first, then the socket, `left` bytes in all.
struct Body<'c, 'a> {
    conn: &'c mut Conn<'a>,
    left: u64,
}

impl Read for Body<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || out.is_empty() {
            return Ok(0);
        }
        let want = out.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = if !self.conn.buf.is_empty() {
            let n = want.min(self.conn.buf.len());
            out[..n].copy_from_slice(&self.conn.buf[..n]);
            self.conn.buf.drain(..n);
            n
        } else {
            let stream = &mut self.conn.stream;
            stream.set_deadline(Some(Instant::now() + self.conn.limits.read_timeout));
            let n = stream.read(&mut out[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes a response; returns whether the connection may stay open (a streamed body without
/// chunked encoding ends only when the connection does).
fn write_response(
    out: &mut dyn Write,
    response: Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<bool> {
    let Response {
        status,
        headers,
        payload,
        then: _,
    } = response;
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // A streamed body goes chunked to an HTTP/1.1 client that keeps the connection, otherwise
    // until close.
    let chunked = matches!(payload, Payload::Streamed(_)) && keep_alive;
    let keep_alive = keep_alive && (chunked || matches!(payload, Payload::Full(_)));
    match &payload {
        Payload::Full(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Payload::Streamed(_) if chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Payload::Streamed(_) => {}
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.write_all(head.as_bytes())?;
    if head_only {
        return Ok(keep_alive);
    }
    match payload {
        Payload::Full(b) => out.write_all(&b)?,
        Payload::Streamed(f) if chunked => {
            // Buffered, so a body written in small pieces still goes out in large chunks.
            let mut c = BufWriter::with_capacity(64 * 1024, Chunked { out: &mut *out });
            f(&mut c)?;
            c.flush()?;
            drop(c);
            out.write_all(b"0\r\n\r\n")?;
        }
        Payload::Streamed(f) => f(out)?,
    }
    Ok(keep_alive)
}

/// Chunked transfer encoding: each write is one chunk (the caller's writer buffers).
struct Chunked<'w> {
    out: &'w mut dyn Write,
}

impl Write for Chunked<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.out
            .write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(b"\r\n")?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests;
