//! A small synchronous ZooKeeper client for `corral cli`, over a std `TcpStream` (TLS over it
//! for a secure port, `link.rs`), speaking the jute protocol through corral's own `proto`
//! module. With a SASL login configured it runs DIGEST-MD5 after each connect, as ZooKeeper's
//! ZooKeeperSaslClient does (RFC 2831's client side; the digest arithmetic is the server's,
//! `auth::sasl_digest::response_value`).
//!
//! One request is outstanding at a time (the shell runs one command at a time), so a reply is
//! simply the next frame whose xid is not a notification, ping or auth answer. A reader thread
//! owns the socket's read half: it prints watch notifications as they arrive (as zkCli's event
//! thread does) and passes replies to the caller over a channel. A pinger thread keeps the
//! session alive while the shell waits for input. When the connection drops, the next request
//! reconnects to the session (id and password), as ZooKeeper's client does.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use super::link::Link;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::codes::{op, xid, Code};
use crate::proto::jute::{Reader, Writer as _};
use crate::proto::records::{Acl, ConnectRequest, Stat};

/// The largest reply frame we accept: ZooKeeper's default jute.maxbuffer (1 MiB) plus room for
/// the header, as ZooKeeper's client bounds it.
const MAX_FRAME: usize = (1 << 20) + 1024;

/// What a failed request ends with: a server error code, or a local one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The server answered with this error.
    Keeper(Code),
    /// The server sent bytes we could not decode.
    Protocol(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The client's state, shown in the prompt as ZooKeeper's `States` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Connected,
    Closed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "CONNECTING",
            State::Connected => "CONNECTED",
            State::Closed => "CLOSED",
        }
    }
}

/// The watches this client set, kept as ZooKeeper's client keeps them: to know which remain
/// after an event fires and whether `removewatches` has anything to remove.
#[derive(Default)]
pub struct Watches {
    pub data: HashSet<String>,
    pub exist: HashSet<String>,
    pub child: HashSet<String>,
    pub persistent: HashSet<String>,
    pub recursive: HashSet<String>,
}

/// State shared with the reader and pinger threads.
struct Shared {
    /// False once the connection is gone: the threads stop, requests reconnect.
    alive: AtomicBool,
    /// Whether watch events are printed (`printwatches on|off`).
    print_watches: Arc<AtomicBool>,
    /// The last zxid seen, sent on reconnect.
    last_zxid: AtomicI64,
    watches: Mutex<Watches>,
    /// Set when an addauth was refused: the server closes the connection after it.
    auth_failed: AtomicBool,
    /// Set while the session is being closed: the connection's end is expected then.
    closing: AtomicBool,
    /// The connect string's chroot, if any (`/app`).
    chroot: Option<String>,
    /// Which connection is the current one: the threads of an older one, ending late, must
    /// not mark the new one dead.
    generation: AtomicU64,
}

struct Conn {
    /// Shared with the pinger: one frame is written at a time.
    writer: Arc<Mutex<Link>>,
    replies: Receiver<Bytes>,
}

pub struct Client {
    hosts: Vec<String>,
    next_host: usize,
    timeout_ms: i32,
    read_only: bool,
    session_id: i64,
    passwd: Vec<u8>,
    conn: Option<Conn>,
    shared: Arc<Shared>,
    closed: bool,
    next_xid: i32,
    /// addauth packets sent, replayed on reconnect as ZooKeeper's client does.
    auths: Vec<(String, Vec<u8>)>,
    security: Security,
}

/// How the client protects its link and proves itself.
#[derive(Clone, Default)]
pub struct Security {
    /// TLS to every server (`zookeeper.client.secure`), or plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// A SASL login after each connect, from a JAAS `Client` section.
    pub sasl: Option<SaslLogin>,
}

/// The login a JAAS `Client` section asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslLogin {
    /// DigestLoginModule: DIGEST-MD5 with this user and password.
    Digest { user: String, password: String },
    /// Krb5LoginModule: GSSAPI to `service`/<the server's host>, as `principal` (Kerberos is
    /// set up by `gssapi::init_initiator` before the client starts).
    Kerberos {
        service: String,
        /// `zookeeper.server.principal`: the server's `service/host[@REALM]`, whatever host
        /// the client connects to.
        server_principal: Option<String>,
        principal: Option<String>,
        /// `zookeeper.sasl.client.canonicalize.hostname`: name the server by its address's
        /// reverse lookup, as the JDK's getCanonicalHostName.
        canonicalize: bool,
    },
}

/// Prints a watch event as zkCli's watcher does (`ZooKeeperMain.printMessage`).
pub fn print_event(state: &str, typ: &str, path: Option<&str>) {
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "\nWATCHER::\n\nWatchedEvent state:{state} type:{typ} path:{}\n",
        path.unwrap_or("null")
    );
    let _ = out.flush();
}

fn event_type_name(t: i32) -> &'static str {
    match t {
        -1 => "None",
        1 => "NodeCreated",
        2 => "NodeDeleted",
        3 => "NodeDataChanged",
        4 => "NodeChildrenChanged",
        5 => "DataWatchRemoved",
        6 => "ChildWatchRemoved",
        7 => "PersistentWatchRemoved",
        _ => "Unknown",
    }
}

fn state_name(s: i32) -> &'static str {
    match s {
        0 => "Disconnected",
        3 => "SyncConnected",
        4 => "AuthFailed",
        5 => "ConnectedReadOnly",
        6 => "SaslAuthenticated",
        -112 => "Expired",
        _ => "Unknown",
    }
}

impl Client {
    /// A client for `connect_string` (`host:port[,host:port...]`); it does not connect yet.
    pub fn new(
        connect_string: &str,
        timeout_ms: i32,
        read_only: bool,
        print_watches: Arc<AtomicBool>,
        security: Security,
    ) -> std::result::Result<Client, String> {
        // A chroot suffix (`host:port,host:port/app`): every path is taken relative to it.
        let (list, chroot) = match connect_string.find('/') {
            None => (connect_string, None),
            Some(i) => {
                let root = connect_string[i..].trim();
                super::parse::validate_path(root)?;
                (
                    &connect_string[..i],
                    (root != "/").then(|| root.to_string()),
                )
            }
        };
        let hosts: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.contains(':') {
                    h.to_string()
                } else {
                    format!("{h}:2181")
                }
            })
            .collect();
        if hosts.is_empty() {
            return Err("A HostProvider may not be empty!".to_string());
        }
        Ok(Client {
            hosts,
            next_host: 0,
            timeout_ms,
            read_only,
            session_id: 0,
            passwd: vec![0; 16],
            conn: None,
            shared: Arc::new(Shared {
                alive: AtomicBool::new(false),
                print_watches,
                last_zxid: AtomicI64::new(0),
                watches: Mutex::new(Watches::default()),
                auth_failed: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                chroot,
                generation: AtomicU64::new(0),
            }),
            closed: false,
            next_xid: 1,
            auths: Vec::new(),
            security,
        })
    }

    /// The server's path for a path the user typed: under the chroot.
    pub fn server_path(&self, path: &str) -> String {
        match &self.shared.chroot {
            Some(root) if path == "/" => root.clone(),
            Some(root) => format!("{root}{path}"),
            None => path.to_string(),
        }
    }

    /// The user's path for a path the server sent: the chroot taken off.
    pub fn client_path(&self, path: &str) -> String {
        strip_chroot(self.shared.chroot.as_deref(), path)
    }

    pub fn state(&self) -> State {
        if self.closed {
            State::Closed
        } else if self.conn.is_some() && self.shared.alive.load(Ordering::SeqCst) {
            State::Connected
        } else {
            State::Connecting
        }
    }

    /// zkCli's `isAlive()`: anything but closed (and a refused authentication).
    pub fn is_alive(&self) -> bool {
        !self.closed && !self.shared.auth_failed.load(Ordering::SeqCst)
    }

    /// Connects (or reconnects to the session) if not connected, trying the hosts in turn until
    /// the session timeout has passed.
    pub fn ensure_connected(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Keeper(Code::SessionExpired));
        }
        if self.conn.is_some() && self.shared.alive.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(c) = self.conn.take() {
            shutdown(&c.writer);
        }
        let deadline = Instant::now() + Duration::from_millis(self.timeout_ms.max(1000) as u64);
        loop {
            let host = self.hosts[self.next_host % self.hosts.len()].clone();
            self.next_host += 1;
            match self.handshake(&host) {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    // The server said the session is gone.
                    self.closed = true;
                    self.event("Expired", "None");
                    return Err(Error::Keeper(Code::SessionExpired));
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(_) => return Err(Error::Keeper(Code::ConnectionLoss)),
            }
        }
    }

    /// One connection attempt. Ok(false): the server answered that the session expired.
    fn handshake(&mut self, host: &str) -> std::io::Result<bool> {
        let addrs: Vec<SocketAddr> = host.to_socket_addrs()?.collect();
        let addr = addrs
            .first()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let timeout = Duration::from_millis(self.timeout_ms.clamp(1000, 60_000) as u64);
        let tcp = TcpStream::connect_timeout(addr, timeout)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(timeout))?;
        let mut s = match &self.security.tls {
            None => Link::Plain(tcp),
            Some(config) => Link::tls(tcp, config.clone(), host_name(host))?,
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.shared.last_zxid.load(Ordering::SeqCst),
            timeout_ms: self.timeout_ms,
            session_id: self.session_id,
            passwd: Bytes::copy_from_slice(&self.passwd),
            read_only: Some(self.read_only),
        };
        let mut b = BytesMut::new();
        let at = crate::proto::start_frame(&mut b);
        req.encode(&mut b);
        crate::proto::finish_frame(&mut b, at);
        s.write_all(&b)?;
        let payload = read_frame(&mut s)?;
        let mut r = Reader::new(payload);
        let bad = |_| std::io::Error::other("bad connect response");
        let _protocol = r.i32().map_err(bad)?;
        let negotiated = r.i32().map_err(bad)?;
        let sid = r.i64().map_err(bad)?;
        let passwd = r.buffer().map_err(bad)?;
        let ro = if r.remaining() > 0 {
            r.bool().map_err(bad)?
        } else {
            false
        };
        if negotiated <= 0 {
            return Ok(false);
        }
        self.session_id = sid;
        self.passwd = passwd.to_vec();
        s.tcp().set_read_timeout(None)?;
        let (tx, rx) = channel();
        let reader = s.try_clone()?;
        let writer = Arc::new(Mutex::new(s.try_clone()?));
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.alive.store(true, Ordering::SeqCst);
        self.shared.auth_failed.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        std::thread::spawn(move || read_loop(reader, shared, tx, generation));
        let shared = self.shared.clone();
        let ping_every = Duration::from_millis((negotiated / 3).max(100) as u64);
        let pinger = writer.clone();
        std::thread::spawn(move || ping_loop(pinger, shared, ping_every, generation));
        self.conn = Some(Conn {
            writer,
            replies: rx,
        });
        self.event(
            if ro {
                "ConnectedReadOnly"
            } else {
                "SyncConnected"
            },
            "None",
        );
        for (scheme, auth) in self.auths.clone() {
            let _ = self.send_auth(&scheme, &auth);
        }
        self.send_set_watches();
        if let Some(login) = self.security.sasl.clone() {
            let result = match login {
                SaslLogin::Digest { user, password } => self.sasl_login(&user, &password),
                SaslLogin::Kerberos {
                    service,
                    server_principal,
                    principal,
                    canonicalize,
                } => {
                    let name = host_name(host).to_string();
                    let name = if canonicalize {
                        canonical_host(&name)
                    } else {
                        name
                    };
                    // ZooKeeper's client keeps a configured principal's service and host (its
                    // realm is Kerberos's to find).
                    let (service, name) = match server_principal.as_deref() {
                        Some(p) => {
                            let p = p.split('@').next().unwrap_or(p);
                            match p.split_once('/') {
                                Some((s, h)) => (s.to_string(), h.to_string()),
                                None => (p.to_string(), name),
                            }
                        }
                        None => (service, name),
                    };
                    self.kerberos_login(&service, &name, principal.as_deref())
                }
            };
            match result {
                Ok(()) => self.event("SaslAuthenticated", "None"),
                // The connection itself failed: the next request reconnects and tries again.
                Err(Error::Keeper(Code::ConnectionLoss)) => {}
                Err(_) => {
                    // ZooKeeper's client turns AUTH_FAILED: not alive, nothing more is sent.
                    self.shared.auth_failed.store(true, Ordering::SeqCst);
                    self.event("AuthFailed", "None");
                }
            }
        }
        Ok(true)
    }

    /// DIGEST-MD5 as ZooKeeper's client runs it: an empty first token, the server's
    /// challenge answered for service `zookeeper` at `zk-sasl-md5`, the server's rspauth
    /// checked. Any failure (a refused response, a server that does not prove the password)
    /// is `AuthFailed`.
    fn sasl_login(&mut self, user: &str, password: &str) -> Result<()> {
        use crate::auth::sasl_digest::{
            parse_directives, response_value, Parts, SERVER_NAME, SERVICE,
        };
        // The server's token as directives (the server side's parser).
        let directives = |r: &mut Reader| {
            let token = r.buffer().map_err(proto_err)?;
            parse_directives(&token).map_err(|e| Error::Protocol(e.to_string()))
        };
        let mut r = self.call(op::SASL, |b| b.put_jbuffer(&[]))?;
        let challenge = directives(&mut r)?;
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let nonce = challenge
            .get("nonce")
            .map(text)
            .ok_or_else(|| Error::Protocol("DIGEST-MD5 challenge without a nonce".into()))?;
        let realm = challenge
            .get("realm")
            .map_or_else(|| SERVER_NAME.to_string(), text);
        let cnonce = {
            use base64::Engine;
            let raw: [u8; 30] = rand::random();
            base64::engine::general_purpose::STANDARD.encode(raw)
        };
        let uri = format!("{SERVICE}/{SERVER_NAME}");
        let parts = Parts {
            username: user,
            realm: &realm,
            password,
            utf8: true,
            nonce: nonce.as_bytes(),
            cnonce: cnonce.as_bytes(),
            authzid: None,
            uri: uri.as_bytes(),
        };
        let response =
            String::from_utf8(response_value(&parts, b"AUTHENTICATE")).expect("hex is ASCII");
        let answer = format!(
            "charset=utf-8,username=\"{}\",realm=\"{}\",nonce=\"{}\",nc=00000001,\
             cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,response={response},qop=auth",
            quote(user),
            quote(&realm),
            quote(&nonce)
        );
        let mut r = self.call(op::SASL, |b| b.put_jbuffer(answer.as_bytes()))?;
        let reply = directives(&mut r)?;
        let expected = response_value(&parts, b"");
        if reply.get("rspauth") != Some(expected.as_slice()) {
            return Err(Error::Keeper(Code::AuthFailed));
        }
        Ok(())
    }

    /// SASL GSSAPI as the JDK's client runs it for ZooKeeper (RFC 4752): Kerberos tokens until
    /// the context is established (mutual authentication: the server proves its key), then
    /// the server's wrapped offer of security layers answered with "no layer" and the
    /// principal as authorization id. Any failure is `AuthFailed`, as in ZooKeeper's client;
    /// the reason goes to stderr.
    fn kerberos_login(&mut self, service: &str, host: &str, principal: Option<&str>) -> Result<()> {
        use crate::auth::gssapi::Initiator;
        let failed = |e: String| {
            eprintln!("SASL GSSAPI login to {service}/{host} failed: {e}");
            Error::Keeper(Code::AuthFailed)
        };
        let mut ctx = Initiator::new(service, host, principal).map_err(failed)?;
        let (mut token, mut established) = ctx.step(None).map_err(failed)?;
        // Kerberos needs one or two round trips; a server that wants more is not ZooKeeper.
        for _ in 0..4 {
            let mut r = self.call(op::SASL, |b| b.put_jbuffer(&token))?;
            let reply = r.buffer_opt().map_err(proto_err)?.unwrap_or_default();
            if !established {
                (token, established) = ctx.step(Some(&reply)).map_err(failed)?;
                continue;
            }
            let offer = ctx.unwrap(&reply).map_err(failed)?;
            if offer.len() != 4 || offer[0] & 1 == 0 {
                return Err(failed(format!(
                    "the server offers no usable layer: {offer:?}"
                )));
            }
            let mut choice = vec![1, 0, 0, 0];
            choice.extend_from_slice(principal.unwrap_or("").as_bytes());
            let answer = ctx.wrap(&choice).map_err(failed)?;
            self.call(op::SASL, |b| b.put_jbuffer(&answer))?;
            return Ok(());
        }
        Err(failed("the exchange did not end".into()))
    }

    /// On a reconnect, re-registers the watches this client holds, as ZooKeeper's client does
    /// (`primeConnection`): SetWatches, or SetWatches2 when there are persistent ones. The
    /// server fires at once those whose nodes changed after the last zxid we saw.
    fn send_set_watches(&mut self) {
        let (data, exist, child, persistent, recursive) = {
            let w = self.watches();
            let v = |s: &HashSet<String>| {
                let mut v: Vec<String> = s.iter().map(|p| self.server_path(p)).collect();
                v.sort();
                v
            };
            (
                v(&w.data),
                v(&w.exist),
                v(&w.child),
                v(&w.persistent),
                v(&w.recursive),
            )
        };
        if data.is_empty()
            && exist.is_empty()
            && child.is_empty()
            && persistent.is_empty()
            && recursive.is_empty()
        {
            return;
        }
        let two = !(persistent.is_empty() && recursive.is_empty());
        let mut b = BytesMut::new();
        let at = crate::proto::start_frame(&mut b);
        b.put_i32(xid::SET_WATCHES);
        b.put_i32(if two {
            op::SET_WATCHES2
        } else {
            op::SET_WATCHES
        });
        b.put_i64(self.shared.last_zxid.load(Ordering::SeqCst));
        b.put_jstrings(&data);
        b.put_jstrings(&exist);
        b.put_jstrings(&child);
        if two {
            b.put_jstrings(&persistent);
            b.put_jstrings(&recursive);
        }
        crate::proto::finish_frame(&mut b, at);
        if let Some(c) = self.conn.as_ref() {
            let _ = write(&c.writer, &b);
        }
    }

    /// Sends one request and waits for its reply's body. `body` writes the request record.
    pub fn call(&mut self, opcode: i32, body: impl Fn(&mut BytesMut)) -> Result<Reader> {
        self.ensure_connected()?;
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        let mut b = BytesMut::new();
        let at = crate::proto::start_frame(&mut b);
        b.put_i32(xid);
        b.put_i32(opcode);
        body(&mut b);
        crate::proto::finish_frame(&mut b, at);
        let conn = self.conn.as_mut().expect("connected");
        if write(&conn.writer, &b).is_err() {
            self.shared.alive.store(false, Ordering::SeqCst);
            return Err(Error::Keeper(Code::ConnectionLoss));
        }
        let wait = Duration::from_millis(self.timeout_ms.max(1000) as u64 * 2);
        loop {
            let reply = match conn.replies.recv_timeout(wait) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    self.shared.alive.store(false, Ordering::SeqCst);
                    return Err(Error::Keeper(Code::ConnectionLoss));
                }
            };
            let mut r = Reader::new(reply);
            let proto = |e: crate::proto::jute::DecodeError| Error::Protocol(e.to_string());
            let rxid = r.i32().map_err(proto)?;
            let _zxid = r.i64().map_err(proto)?;
            let err = r.i32().map_err(proto)?;
            if rxid != xid {
                // A reply to an earlier request we gave up on.
                continue;
            }
            if err != 0 {
                let code = Code::from_i32(err).unwrap_or(Code::SystemError);
                return Err(Error::Keeper(code));
            }
            return Ok(r);
        }
    }

    /// addauth: sent with xid -4 and not waited for, as ZooKeeper's `addAuthInfo`.
    pub fn add_auth(&mut self, scheme: &str, auth: &[u8]) {
        self.auths.push((scheme.to_string(), auth.to_vec()));
        if self.ensure_connected().is_ok() {
            let _ = self.send_auth(scheme, auth);
        }
    }

    fn send_auth(&mut self, scheme: &str, auth: &[u8]) -> std::io::Result<()> {
        let mut b = BytesMut::new();
        let at = crate::proto::start_frame(&mut b);
        b.put_i32(xid::AUTH);
        b.put_i32(op::AUTH);
        b.put_i32(0);
        b.put_jstring(scheme);
        b.put_jbuffer(auth);
        crate::proto::finish_frame(&mut b, at);
        match self.conn.as_mut() {
            Some(c) => write(&c.writer, &b),
            None => Ok(()),
        }
    }

    /// Whether watch events are printed (`printwatches`).
    pub fn print_watches(&self) -> bool {
        self.shared.print_watches.load(Ordering::SeqCst)
    }

    /// A session event for zkCli's watcher, printed unless `printwatches off`.
    fn event(&self, state: &str, typ: &str) {
        if self.print_watches() {
            print_event(state, typ, None);
        }
    }

    /// Closes the session (closeSession, then the socket), printing the Closed event.
    pub fn close(&mut self) {
        if !self.closed {
            self.close_quietly();
            self.event("Closed", "None");
        }
    }

    /// Closes the session without the event: on quit and at the end of input, where zkCli's
    /// process exits before its event thread prints it.
    pub fn close_quietly(&mut self) {
        if self.closed {
            return;
        }
        self.shared.closing.store(true, Ordering::SeqCst);
        if self.conn.is_some() && self.shared.alive.load(Ordering::SeqCst) {
            let _ = self.call(op::CLOSE_SESSION, |_| {});
        }
        if let Some(c) = self.conn.take() {
            self.shared.alive.store(false, Ordering::SeqCst);
            shutdown(&c.writer);
        }
        self.closed = true;
    }

    /// The watches this client holds (a command adds one when its request succeeds).
    pub fn watches(&self) -> std::sync::MutexGuard<'_, Watches> {
        self.shared
            .watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.shared.alive.store(false, Ordering::SeqCst);
            shutdown(&c.writer);
        }
    }
}

/// A quoted-string's content: `"` and `\` escaped.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The host of `host:port` (`[::1]:2181` -> `::1`), as the server's certificate names it.
fn host_name(host_port: &str) -> &str {
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The JDK's InetAddress.getCanonicalHostName as ZooKeeper's client uses it: the host's first
/// address, named by its reverse lookup; the host as given when it does not resolve or the
/// address has no name. The server's Kerberos principal is named after it.
fn canonical_host(host: &str) -> String {
    let Some(addr) = (host, 0).to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return host.to_string();
    };
    let storage = socket2::SockAddr::from(addr);
    let mut name = [0 as libc::c_char; 1025];
    // SAFETY: a valid socket address and a buffer of the length given; NI_NAMEREQD makes a
    // failed lookup an error instead of the numeric form.
    let rc = unsafe {
        libc::getnameinfo(
            storage.as_ptr(),
            storage.len(),
            name.as_mut_ptr(),
            name.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return host.to_string();
    }
    // SAFETY: getnameinfo wrote a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn write(w: &Mutex<Link>, b: &[u8]) -> std::io::Result<()> {
    w.lock().unwrap_or_else(|p| p.into_inner()).write_all(b)
}

fn shutdown(w: &Mutex<Link>) {
    w.lock().unwrap_or_else(|p| p.into_inner()).shutdown();
}

fn read_frame(s: &mut impl Read) -> std::io::Result<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "Packet len {len} is out of range!"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// The reader thread: notifications are printed, pings dropped, replies handed over.
fn read_loop(mut s: Link, shared: Arc<Shared>, tx: Sender<Bytes>, generation: u64) {
    while let Ok(frame) = read_frame(&mut s) {
        let mut r = Reader::new(frame.clone());
        let (Ok(x), Ok(zxid), Ok(err)) = (r.i32(), r.i64(), r.i32()) else {
            break;
        };
        if zxid > 0 {
            shared.last_zxid.fetch_max(zxid, Ordering::SeqCst);
        }
        match x {
            // Pings and the SetWatches of a reconnect: nothing to hand over.
            xid::PING | xid::SET_WATCHES => {}
            xid::AUTH => {
                if err != 0 {
                    shared.auth_failed.store(true, Ordering::SeqCst);
                    if shared.print_watches.load(Ordering::SeqCst) {
                        print_event("AuthFailed", "None", None);
                    }
                }
            }
            xid::NOTIFICATION => {
                let (Ok(typ), Ok(state), Ok(path)) = (r.i32(), r.i32(), r.string_lossy()) else {
                    break;
                };
                // The config node's events keep their path, as ZooKeeper's client leaves it.
                let path = if path == "/zookeeper/config" {
                    path
                } else {
                    strip_chroot(shared.chroot.as_deref(), &path)
                };
                forget_fired(&shared, typ, &path);
                if shared.print_watches.load(Ordering::SeqCst) {
                    print_event(state_name(state), event_type_name(typ), Some(&path));
                }
            }
            _ => {
                if tx.send(frame).is_err() {
                    break;
                }
            }
        }
    }
    if shared.generation.load(Ordering::SeqCst) != generation {
        return;
    }
    let quiet = shared.closing.load(Ordering::SeqCst) || shared.auth_failed.load(Ordering::SeqCst);
    if shared.alive.swap(false, Ordering::SeqCst)
        && !quiet
        && shared.print_watches.load(Ordering::SeqCst)
    {
        print_event("Disconnected", "None", None);
    }
}

/// `path` with `root` taken off its front (`/app/x` -> `/x`, `/app` -> `/`).
fn strip_chroot(root: Option<&str>, path: &str) -> String {
    let Some(root) = root else {
        return path.to_string();
    };
    match path.strip_prefix(root) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// A fired watch is gone, as in ZooKeeper's client (persistent ones stay).
fn forget_fired(shared: &Shared, typ: i32, path: &str) {
    let mut w = shared.watches.lock().unwrap_or_else(|p| p.into_inner());
    match typ {
        1 | 3 => {
            w.data.remove(path);
            w.exist.remove(path);
        }
        2 => {
            w.data.remove(path);
            w.exist.remove(path);
            w.child.remove(path);
        }
        4 => {
            w.child.remove(path);
        }
        _ => {}
    }
}

/// Pings the server at a third of the session timeout so an idle shell keeps its session.
fn ping_loop(s: Arc<Mutex<Link>>, shared: Arc<Shared>, every: Duration, generation: u64) {
    let mut b = BytesMut::new();
    let at = crate::proto::start_frame(&mut b);
    b.put_i32(xid::PING);
    b.put_i32(op::PING);
    crate::proto::finish_frame(&mut b, at);
    loop {
        std::thread::sleep(every);
        if !shared.alive.load(Ordering::SeqCst)
            || shared.generation.load(Ordering::SeqCst) != generation
        {
            return;
        }
        if write(&s, &b).is_err() {
            return;
        }
    }
}

/// Reply bodies.
pub fn read_stat(r: &mut Reader) -> Result<Stat> {
    Stat::decode(r).map_err(|e| Error::Protocol(e.to_string()))
}

pub fn read_acl(r: &mut Reader) -> Result<Vec<Acl>> {
    Acl::decode_list(r).map_err(|e| Error::Protocol(e.to_string()))
}

pub fn proto_err(e: crate::proto::jute::DecodeError) -> Error {
    Error::Protocol(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_host_names() {
        assert_eq!(quote(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(host_name("[::1]:2181"), "::1");
        assert_eq!(host_name("zk1.example:2281"), "zk1.example");
    }
}
