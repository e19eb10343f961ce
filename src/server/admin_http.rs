//! The HTTP admin server (ZooKeeper's AdminServer, `admin.*` settings): `GET
//! <commandURL>/<command>` answers ZooKeeper 3.9's commands in its JSON (`crate::admin::
//! commands`), on the plain threads of `crate::http`, never on a shard. Figures come from the
//! shards and the write core through the [`Inspector`], as a four-letter word's do.
//!
//! Commands that change state or hand out the data (`snapshot`, `restore`, corral's
//! `log_level`) need `Authorization: <scheme> <auth>` (e.g. `digest user:password`): the ids
//! the scheme proves must have ALL on `/`, as ZooKeeper's `Commands.handleAuthentication` and
//! `handleAuthorization` check (401 without proof, 403 without the permission).
//! `Authorization: x509` is proved by the client certificate of an HTTPS connection
//! (`admin.forceHttps` or `admin.portUnification`, with `admin.needClientAuth` so one is asked
//! for): as ZooKeeper's X509AuthenticationProvider, the scheme must be on, the chain must also
//! pass the client port's trust store (`ssl.trustStore.*`), and the id is the subject DN
//! (plus `super` for `X509AuthenticationProvider.superUser`).
//!
//! `snapshot` streams a consistent copy of the tree in corral's snapshot format: shard 0 hands
//! over a copy of its replica once it has applied every write committed before the request
//! (node data is shared, not copied), and this thread serializes it while the shards go on.
//!
//! `restore` (POST, the body a snapshot as `snapshot` sends it) replaces the server's data:
//! the upload is written to the data directory and checked completely while the server goes
//! on; then the write core pauses once every write so far is durable, the snapshot is installed
//! as the newest at a zxid past every logged one (`storage::restore`), the answer is sent, and
//! the process re-executes itself (same pid, arguments and environment), recovering from it
//! (docs/decisions.md, "Restore over HTTP").
//!
//! If the port cannot be bound the server logs a warning and serves clients without it, as
//! ZooKeeper does when its AdminServer fails to start (a pseudo-cluster on one host).

use std::io::{self, Read, Write};
use std::net::{TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use tracing::{info, warn};

use super::{fourlw, secure, snapshots, AdminQuery, Gather, Inspector};
use crate::admin::commands::{self, Cmd, Context, Method, Spec};
use crate::admin::json::CommandResponse;
use crate::auth::provider::{registry, x509_enabled, Authenticating};
use crate::config::Config;
use crate::http::{self, Limits, Request, Response, Security};
use crate::proto::records::{Acl, Id};
use crate::storage::snapshot::Cursor;
use crate::tls::{self, TlsSettings};
use crate::tree::DataTree;

/// Connections open at once (more get 503): operators and scrapers, not clients.
const MAX_CONNECTIONS: usize = 32;
/// Request heads beyond this get 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The largest request body but `restore`'s (`admin.restore.maxBytes`): no other command
/// takes one, and the HTTP layer reads and drops what a handler leaves, so a bound keeps a
/// large upload from being read for nothing (413 beyond it).
const MAX_BODY: u64 = 64 << 20;
/// How long shard 0 waits to have applied the writes a snapshot must hold before it gives up
/// (the request then fails with 500).
const SHARD_WAIT: Duration = Duration::from_secs(30);
/// ZooKeeper's `Permission.ALL`.
const PERMS_ALL: i32 = 0x1f;

const JSON: &str = "application/json";

/// The admin server's TLS, when `admin.forceHttps` or `admin.portUnification` asks for it.
/// As ZooKeeper's JettyAdminServer: the key and trust stores, protocols and suites of
/// `ssl.quorum.*`, and a client certificate asked for (and then required) only with
/// `admin.needClientAuth`. Read at start-up, so a missing or unreadable store stops it with
/// the reason (ZooKeeper would log it and run without its admin server).
pub(super) fn tls_config(cfg: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let s = &cfg.admin_server;
    if !s.enabled || !s.tls() {
        return Ok(None);
    }
    let what = if s.force_https {
        "admin.forceHttps"
    } else {
        "admin.portUnification"
    };
    let need = s.need_client_auth;
    if need && secure::lookup(cfg, "ssl.quorum.trustStore.location").is_none() {
        return Err(
            "admin.needClientAuth=true: set ssl.quorum.trustStore.location, the CA the admin \
             server verifies client certificates against"
                .to_string(),
        );
    }
    let settings = TlsSettings::from_lookup("ssl.quorum.", |key| {
        // The admin server's own switch, not the quorum's clientAuth.
        if key == "ssl.quorum.clientAuth" {
            return Some(if need { "need" } else { "none" }.to_string());
        }
        secure::lookup(cfg, key)
    })?
    .ok_or_else(|| {
        format!(
            "{what}=true: set ssl.quorum.keyStore.location, the admin server's certificate \
             (ZooKeeper's admin server takes the ssl.quorum.* stores)"
        )
    })?;
    tls::server_config(&settings)
        .map(Some)
        .map_err(|e| format!("{what}: {e}"))
}

/// What `Authorization: x509` is checked against: the client port's trust store, if one is
/// set and loads.
fn x509_check(cfg: &Config) -> Option<tls::ChainCheck> {
    if !cfg.admin_server.tls() {
        return None;
    }
    let store = match tls::trust_store_from_lookup("ssl.", |k| secure::lookup(cfg, k)) {
        Ok(Some(store)) => store,
        Ok(None) => {
            if x509_enabled() {
                warn!("admin server: x509 auth needs ssl.trustStore.location (ZooKeeper's X509AuthenticationProvider checks client certificates against it); it will refuse x509");
            }
            return None;
        }
        Err(e) => {
            warn!("admin server: x509 auth will be refused: {e}");
            return None;
        }
    };
    match tls::ChainCheck::new(&store) {
        Ok(check) => Some(check),
        Err(e) => {
            warn!("admin server: x509 auth will be refused: {e}");
            None
        }
    }
}

/// Starts the admin server if `admin.enableServer` is on, over TLS if `tls` (from
/// [`tls_config`]) is set. Never fails the server: a port in use or an address that does not
/// resolve is logged and the server runs without it.
pub(super) fn start(cfg: &Config, inspector: Inspector, tls: Option<Arc<rustls::ServerConfig>>) {
    // An upload left by a process that died during a restore is of no use now.
    let _ = std::fs::remove_file(cfg.data_dir.join(UPLOAD_NAME));
    let s = &cfg.admin_server;
    if !s.enabled {
        return;
    }
    let addr = match (s.address.as_str(), s.port).to_socket_addrs() {
        Ok(mut a) => a.next(),
        Err(e) => {
            warn!(address = %s.address, error = %e, "admin server not started: cannot resolve admin.serverAddress");
            return;
        }
    };
    let Some(addr) = addr else {
        warn!(address = %s.address, "admin server not started: admin.serverAddress has no address");
        return;
    };
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "admin server not started (set admin.serverPort, or admin.enableServer=false); serving clients without it");
            return;
        }
    };
    let initial_config = cfg
        .config_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let admin = Admin {
        inspector,
        command_url: s.command_url.clone(),
        snapshot_enabled: s.snapshot_enabled,
        restore_enabled: s.restore_enabled,
        restore_max_bytes: s.restore_max_bytes,
        restoring: AtomicBool::new(false),
        initial_config,
        // ZooKeeper's snapshot limiter counts the interval in microseconds, its restore
        // limiter in milliseconds (Commands.java); kept, so the same setting means the same.
        snapshot_limiter: Limiter::new(Duration::from_micros(s.rate_limiter_interval)),
        restore_limiter: Limiter::new(Duration::from_millis(s.rate_limiter_interval)),
        sending: Arc::new(AtomicBool::new(false)),
        x509_check: x509_check(cfg),
        x509_super_user: secure::super_user(cfg),
    };
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        max_head_bytes: MAX_HEAD_BYTES,
        read_timeout: Duration::from_millis(s.idle_timeout_ms.into()),
        max_body: MAX_BODY,
    };
    let (security, scheme) = match tls {
        None => (Security::Plain, "http"),
        Some(c) if s.force_https => (Security::Tls(c), "https"),
        Some(c) => (Security::Unified(c), "http+https"),
    };
    match http::serve_secure("corral-admin", listener, limits, security, Arc::new(admin)) {
        Ok(server) => info!(
            address = %server.local_addr(),
            url = %s.command_url,
            scheme,
            need_client_auth = s.need_client_auth,
            "admin server started"
        ),
        Err(e) => warn!(%addr, error = %e, "admin server not started"),
    }
}

/// At most one call per interval (ZooKeeper's `RateLimiter` with one permit).
struct Limiter {
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl Limiter {
    fn new(interval: Duration) -> Limiter {
        Limiter {
            interval,
            last: Mutex::new(None),
        }
    }

    fn allow(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.interval) {
            return false;
        }
        *last = Some(now);
        true
    }
}

struct Admin {
    inspector: Inspector,
    command_url: String,
    snapshot_enabled: bool,
    restore_enabled: bool,
    restore_max_bytes: u64,
    /// Set while a restore runs (a second one gets 429).
    restoring: AtomicBool,
    initial_config: String,
    snapshot_limiter: Limiter,
    restore_limiter: Limiter,
    /// Set while a snapshot is being sent: each holds a copy of the tree's node table, so
    /// one at a time (a second gets 429).
    sending: Arc<AtomicBool>,
    /// The client port's trust store, which an `x509` caller's chain must pass too.
    x509_check: Option<tls::ChainCheck>,
    /// `X509AuthenticationProvider.superUser`: the subject DN that is also `super`.
    x509_super_user: Option<String>,
}

/// Clears `Admin::sending` when a snapshot's stream ends, however it ends.
struct Sending(Arc<AtomicBool>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn json(r: &CommandResponse) -> Response {
    Response::new(r.status, JSON, r.body())
}

impl http::Handler for Admin {
    fn max_body(&self, req: &Request) -> Option<u64> {
        let name = req.path.strip_prefix(self.command_url.as_str())?;
        let name = name.strip_prefix('/')?;
        let restore = commands::lookup(name).is_some_and(|spec| spec.cmd == Cmd::Restore);
        (restore && req.method == "POST").then_some(self.restore_max_bytes)
    }

    fn handle(&self, req: &Request, body: &mut dyn Read) -> Response {
        let url = self.command_url.as_str();
        let name = if req.path == url || req.path.strip_prefix(url) == Some("/") {
            None
        } else if let Some(name) = req.path.strip_prefix(url).and_then(|r| r.strip_prefix('/')) {
            Some(name)
        } else {
            // Outside the command URL: nothing lives there.
            let r = CommandResponse::error(
                &req.path,
                format!("Not found: {}; the commands are under {url}", req.path),
                404,
            );
            return json(&r);
        };
        let method = match req.method.as_str() {
            // HEAD is GET without the body (the HTTP layer drops it), as in Jetty.
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            other => {
                let r = CommandResponse::error(
                    name.unwrap_or(""),
                    format!("Method {other} not allowed; use GET, or POST for restore"),
                    405,
                );
                return json(&r).header("Allow", "GET, HEAD, POST");
            }
        };
        let Some(name) = name else {
            return Response::new(
                200,
                "text/html; charset=utf-8",
                commands::command_links(url),
            );
        };
        let Some(spec) = commands::lookup(name) else {
            // ZooKeeper answers an unknown command with 200 and the error in the JSON.
            let r = CommandResponse::error(name, format!("Unknown command: {name}"), 200);
            return json(&r);
        };
        if spec.method != method {
            let allow = match spec.method {
                Method::Get => "GET, HEAD",
                Method::Post => "POST",
            };
            let r = CommandResponse::error(
                spec.primary(),
                format!("{} takes {allow}, not {}", spec.primary(), req.method),
                405,
            );
            return json(&r).header("Allow", allow);
        }
        if spec.server_required && !self.serving() {
            return json(&CommandResponse::error(
                spec.primary(),
                crate::admin::NOT_SERVING,
                200,
            ));
        }
        if spec.auth {
            if let Err(r) = self.authorize(spec, req) {
                warn!(command = spec.primary(), peer = %req.peer, error = ?r.error, "admin command refused");
                return json(&r);
            }
        }
        match spec.cmd {
            Cmd::Snapshot => self.snapshot(spec, req),
            Cmd::Restore => self.restore(spec, req, body),
            Cmd::SetTraceMask => json(&set_trace_mask(spec, req)),
            Cmd::LogLevel => json(&log_level(spec, req)),
            _ => {
                let ask = Gather {
                    reset: spec.cmd == Cmd::StatReset,
                    reset_connections: spec.cmd == Cmd::ConnectionStatReset,
                    reset_observers: spec.cmd == Cmd::ObserverConnectionStatReset,
                    storage: spec.cmd == Cmd::Monitor,
                };
                let data = self.inspector.gather(ask);
                let ctx = Context {
                    initial_config: self.initial_config.clone(),
                    last_snapshot: if spec.cmd == Cmd::LastSnapshot {
                        last_snapshot(self.inspector.config())
                    } else {
                        None
                    },
                };
                let cfg = self.inspector.config();
                json(&commands::render_json(spec, &data, cfg, &ctx))
            }
        }
    }
}

impl Admin {
    /// Whether the server serves clients (a member in an election does not).
    fn serving(&self) -> bool {
        self.inspector.serving()
    }

    /// ZooKeeper's `handleAuthentication` then `handleAuthorization` on `/` with ALL.
    fn authorize(&self, spec: &Spec, req: &Request) -> Result<(), CommandResponse> {
        let cmd = spec.primary();
        let Some(info) = req.header("authorization") else {
            return Err(CommandResponse::error(
                cmd,
                "Auth info is missing for the command",
                401,
            ));
        };
        let refused = || CommandResponse::error(cmd, "Not authenticated", 401);
        // Java's split(" ") drops trailing empty strings: "digest u:p " is two parts.
        let mut parts: Vec<&str> = info.split(' ').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.is_empty() || parts.len() > 2 {
            return Err(refused());
        }
        let ids = if parts[0] == "x509" {
            // The connection proves it, not the header (which may carry anything after the
            // scheme, as in ZooKeeper).
            self.x509_ids(req).map_err(|why| {
                warn!(command = cmd, peer = %req.peer, "x509 auth failed: {why}");
                refused()
            })?
        } else {
            let Some(provider) = registry().get(parts[0]) else {
                return Err(refused());
            };
            let ctx = Authenticating {
                peer: req.peer.ip(),
                super_digest: self.inspector.config().super_digest.as_deref(),
            };
            let auth = parts.get(1).copied().unwrap_or("").as_bytes();
            match provider.handle_authentication(&ctx, auth) {
                Ok(ids) if !ids.is_empty() => ids,
                _ => return Err(refused()),
            }
        };
        let acl = self
            .inspector
            .root_acl()
            .ok_or_else(|| CommandResponse::error(cmd, "Error occurred during auth", 500))?;
        // Each bit of the permission on its own, as ZooKeeper checks them.
        let all_bits = (0..5)
            .map(|b| 1 << b)
            .all(|bit| PERMS_ALL & bit == 0 || crate::tree::acl::allowed(&acl, bit, &ids));
        if !all_bits {
            warn!(command = cmd, ids = ?ids, "no ALL permission on / for these ids");
            return Err(CommandResponse::error(cmd, "Not authorized", 403));
        }
        Ok(())
    }

    /// ZooKeeper's X509AuthenticationProvider over HTTP: the verified chain of this TLS
    /// connection, checked again against the client port's trust store; its subject DN is the
    /// `x509` id.
    fn x509_ids(&self, req: &Request) -> Result<Vec<Id>, String> {
        if !x509_enabled() {
            return Err(
                "the x509 scheme is off (name ZooKeeper's X509AuthenticationProvider in \
                 authProvider.N, or set a secureClientPort)"
                    .to_string(),
            );
        }
        if req.client_chain.is_empty() {
            return Err(if req.secure {
                "no client certificate (set admin.needClientAuth=true)".to_string()
            } else {
                "not an HTTPS connection".to_string()
            });
        }
        let check = self
            .x509_check
            .as_ref()
            .ok_or("no usable ssl.trustStore.location to check the certificate against")?;
        check.verify(&req.client_chain)?;
        secure::x509_ids(
            req.client_chain[0].as_ref(),
            self.x509_super_user.as_deref(),
        )
    }

    /// `snapshot[?streaming=false]`: the tree as one of corral's snapshot files; headers
    /// `last_zxid` and `snapshot_size` as ZooKeeper 3.9 sends them.
    fn snapshot(&self, spec: &Spec, req: &Request) -> Response {
        let cmd = spec.primary();
        if !self.snapshot_enabled {
            warn!("snapshot command is disabled (admin.snapshot.enabled=false)");
            return json(&CommandResponse::error(
                cmd,
                "Snapshot command is disabled",
                503,
            ));
        }
        if !self.snapshot_limiter.allow() {
            warn!("snapshot request was rate limited");
            return json(&CommandResponse::error(
                cmd,
                "Snapshot request was rate limited",
                429,
            ));
        }
        if self.sending.swap(true, Ordering::AcqRel) {
            return json(&CommandResponse::error(
                cmd,
                "A snapshot is already being sent; try again when it is done",
                429,
            ));
        }
        let sending = Sending(self.sending.clone());
        // Java's Boolean.parseBoolean: only "true" (any case) is true.
        let streaming = req
            .param("streaming")
            .is_none_or(|v| v.eq_ignore_ascii_case("true"));
        let Some(tree) = self.inspector.tree_copy() else {
            return json(&CommandResponse::error(
                cmd,
                "Exception occurred when taking the snapshot",
                500,
            ));
        };
        let zxid = tree.last_zxid();
        // A first pass counts the bytes (the copy does not change), so the size header is
        // exact and memory stays flat however large the tree.
        let mut counter = Counter(0);
        let _ = write_snapshot(&tree, &mut counter);
        let size = counter.0;
        info!(zxid = format!("{zxid:#x}"), bytes = size, peer = %req.peer, "snapshot requested over the admin server");
        let headers = |r: Response| {
            r.header("last_zxid", &format!("0x{zxid:x}"))
                .header("snapshot_size", &size.to_string())
        };
        if !streaming {
            return headers(json(&CommandResponse::new(cmd)));
        }
        let tree = Arc::new(tree);
        headers(Response::streamed(
            200,
            "application/octet-stream",
            Box::new(move |w: &mut dyn Write| {
                let _sending = sending;
                write_snapshot(&tree, w)
            }),
        ))
    }

    /// `restore`: refused in an ensemble (as asked of corral), rate limited and switchable as
    /// ZooKeeper's. Answers `last_zxid`, the zxid the restored data now has, then replaces
    /// the process (see the module doc); anything wrong before the point of no return leaves
    /// the server as it was.
    fn restore(&self, spec: &Spec, req: &Request, body: &mut dyn Read) -> Response {
        let cmd = spec.primary();
        if !self.restore_enabled {
            warn!("restore command is disabled (admin.restore.enabled=false)");
            return json(&CommandResponse::error(
                cmd,
                "Restore command is disabled",
                503,
            ));
        }
        if self.inspector.config().is_distributed() {
            return json(&CommandResponse::error(
                cmd,
                "restore is for a standalone server; in an ensemble, restore a member's data \
                 directory while it is stopped",
                400,
            ));
        }
        if !self.restore_limiter.allow() {
            warn!("restore request was rate limited");
            return json(&CommandResponse::error(
                cmd,
                "Restore request was rate limited",
                429,
            ));
        }
        if self.restoring.swap(true, Ordering::AcqRel) {
            return json(&CommandResponse::error(
                cmd,
                "A restore is already in progress",
                429,
            ));
        }
        let result = self.restore_from(cmd, req, body);
        if result.is_err() {
            self.restoring.store(false, Ordering::Release);
        }
        match result {
            Ok(r) | Err(r) => r,
        }
    }

    /// The restore proper: `Ok` once the store holds the upload (its answer replaces the
    /// process once sent), `Err` with the server untouched.
    fn restore_from(
        &self,
        cmd: &str,
        req: &Request,
        body: &mut dyn Read,
    ) -> Result<Response, Response> {
        let cfg = self.inspector.config();
        let fail = |msg: String, status: u16| {
            warn!(peer = %req.peer, "restore refused: {msg}");
            json(&CommandResponse::error(cmd, msg, status))
        };
        // In the data directory, so the rename into snapshots/ stays in one filesystem.
        let upload = cfg.data_dir.join(UPLOAD_NAME);
        let _cleanup = RemoveOnDrop(upload.clone());
        let received = receive(body, &upload).map_err(|(msg, status)| fail(msg, status))?;
        if received == 0 {
            return Err(fail(
                "no snapshot in the request body (send the file `snapshot` gave)".into(),
                400,
            ));
        }
        let checked = crate::storage::restore::validate(&upload)
            .map_err(|e| fail(format!("not a valid corral snapshot: {e}"), 400))?;
        // From here the write core takes nothing until the process is replaced (or the
        // restore fails and `paused` is dropped).
        let Some((committed, paused)) = self.inspector.pause() else {
            return Err(fail("the write core did not answer".into(), 500));
        };
        let zxid = committed.max(checked.zxid) + 1;
        let log_dir = super::log_dir(cfg);
        let snap_dir = snapshots::snapshot_dir(&cfg.data_dir);
        let (installed, rest) =
            crate::storage::restore::install(&upload, &log_dir, &snap_dir, zxid);
        if !installed {
            let e = rest.err().map(|e| e.to_string()).unwrap_or_default();
            drop(paused);
            return Err(fail(format!("cannot install the snapshot: {e}"), 500));
        }
        if let Err(e) = rest {
            // The snapshot is in place, so recovery loads it whatever the log holds.
            warn!("restored snapshot installed, but finishing the log's reset failed: {e}");
        }
        info!(
            zxid = format!("{zxid:#x}"),
            backup_zxid = format!("{:#x}", checked.zxid),
            nodes = checked.nodes,
            sessions = checked.sessions,
            bytes = received,
            peer = %req.peer,
            "snapshot restored; restarting to load it"
        );
        let mut r = CommandResponse::new(cmd);
        r.data.put("last_zxid", zxid);
        Ok(json(&r).then(Box::new(move || {
            let _paused = paused;
            reexec()
        })))
    }
}

/// The upload's name in the data directory (one restore at a time).
const UPLOAD_NAME: &str = "restore-upload.tmp";

/// Removes a file when dropped, if it is still there (an upload that was refused; one that
/// was installed has been renamed away).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Copies the request's body to `path`, durably; the byte count, or a message and a status.
fn receive(body: &mut dyn Read, path: &Path) -> Result<u64, (String, u16)> {
    let mut f = std::fs::File::create(path)
        .map_err(|e| (format!("cannot write {}: {e}", path.display()), 500))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((format!("the upload ended early: {e}"), 400)),
        };
        f.write_all(&buf[..n])
            .map_err(|e| (format!("cannot write {}: {e}", path.display()), 500))?;
        total += n as u64;
    }
    f.sync_all()
        .map_err(|e| (format!("cannot write {}: {e}", path.display()), 500))?;
    Ok(total)
}

/// Replaces the process with a fresh run of the same binary, arguments and environment (the
/// pid stays, so a supervisor or a test harness keeps tracking it). Every file and socket is
/// opened close-on-exec, so the claims on the port and the directories go with the old image.
/// Should the exec fail, the process exits with status 1: its store holds the restored data,
/// and serving the old tree from memory would contradict it.
fn reexec() -> ! {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    // /proc/self/exe: the binary this process runs, even if its path was replaced since.
    let e = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .exec();
    tracing::error!("cannot re-execute the server after the restore: {e}; exiting");
    // SAFETY: ends the process at once, as the SIGTERM path does (src/server/stop.rs).
    unsafe { libc::_exit(1) }
}

/// Writes `tree` as a snapshot file: header, sessions, nodes, end frame.
fn write_snapshot(tree: &DataTree, w: &mut dyn Write) -> io::Result<()> {
    let mut cursor = Cursor::new();
    let mut buf = Vec::with_capacity(1 << 16);
    cursor.begin(tree, &mut buf);
    w.write_all(&buf)?;
    loop {
        buf.clear();
        let done = cursor.step(tree, snapshots::NODES_PER_STEP, &mut buf);
        w.write_all(&buf)?;
        if done {
            return Ok(());
        }
    }
}

/// A writer that only counts.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `set_trace_mask?traceMask=<long>`, ZooKeeper's messages.
fn set_trace_mask(spec: &Spec, req: &Request) -> CommandResponse {
    let mut r = CommandResponse::new(spec.primary());
    match req.param("traceMask") {
        None => {
            r.data
                .put("error", "setTraceMask requires long traceMask argument");
        }
        Some(v) => match v.parse::<i64>() {
            Ok(mask) => {
                fourlw::set_trace_mask(mask);
                r.data.put("tracemask", mask);
            }
            Err(_) => {
                r.data.put(
                    "error",
                    format!("setTraceMask requires long traceMask argument, got {v}"),
                );
            }
        },
    }
    r
}

/// corral's `log_level[?level=<filter>]`: the log filter in force, or set a new one
/// (`crate::logging::set_filter`; the same filters as `CORRAL_LOG`).
fn log_level(spec: &Spec, req: &Request) -> CommandResponse {
    let mut r = CommandResponse::new(spec.primary());
    match req.param("level") {
        None => {
            r.data.put("level", crate::logging::current());
        }
        Some(level) => match crate::logging::set_filter(level) {
            Ok(old) => {
                r.data.put("level", crate::logging::current());
                r.data.put("previous", old);
            }
            Err(e) => return CommandResponse::error(spec.primary(), e, 400),
        },
    }
    r
}

/// The newest snapshot on disk: its zxid and its file's modification time in seconds.
fn last_snapshot(cfg: &Config) -> Option<(i64, u64)> {
    let dir = snapshots::snapshot_dir(&cfg.data_dir);
    let snaps = crate::storage::recover::snapshots(&dir).ok()?;
    let (zxid, path) = snaps.first()?;
    let secs = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Some((*zxid, secs))
}

/// Questions only the admin server asks.
impl Inspector {
    /// Whether the write core serves clients now.
    fn serving(&self) -> bool {
        let (tx, rx) = async_channel::bounded(1);
        futures_lite::future::block_on(async {
            if self.to_core.send(super::ToCore::Report(tx)).await.is_err() {
                return false;
            }
            rx.recv().await.is_ok_and(|r| r.serving)
        })
    }

    /// Pauses the write core for a restore (`ToCore::Pause`): the zxid it has committed, and
    /// the channel that holds it paused until dropped.
    fn pause(&self) -> Option<(i64, async_channel::Receiver<super::CoreReport>)> {
        let (tx, rx) = async_channel::bounded(1);
        futures_lite::future::block_on(async {
            self.to_core.send(super::ToCore::Pause(tx)).await.ok()?;
            let r = rx.recv().await.ok()?;
            Some((r.last_zxid, rx))
        })
    }

    /// The root's ACL, from shard 0's replica.
    /// The root's ACL on shard 0 once it holds every write committed before this call (a
    /// setAcl acknowledged on another shard counts at once).
    fn root_acl(&self) -> Option<Vec<Acl>> {
        let at_least = self.shared.committed.load(Ordering::Acquire);
        let (tx, rx) = async_channel::bounded(1);
        self.ask_shard0(
            AdminQuery::RootAcl {
                at_least,
                reply: tx,
            },
            rx,
        )
    }

    /// A copy of shard 0's replica once it holds every write committed before this call.
    fn tree_copy(&self) -> Option<DataTree> {
        let at_least = self.shared.committed.load(Ordering::Acquire);
        let (tx, rx) = async_channel::bounded(1);
        self.ask_shard0(
            AdminQuery::Tree {
                at_least,
                reply: tx,
            },
            rx,
        )
    }

    /// Asks shard 0. No timer here: the shard answers at once or, for a tree copy, gives up
    /// after [`SHARD_WAIT`] and drops the reply channel, which ends the wait.
    fn ask_shard0<T>(&self, q: AdminQuery, rx: async_channel::Receiver<T>) -> Option<T> {
        let shard0 = self.shared.admin.first()?;
        futures_lite::future::block_on(async {
            shard0.send(q).await.ok()?;
            rx.recv().await.ok()
        })
    }
}

/// Shard side: answers the admin server's questions about the replica.
pub(super) async fn answer(shard: &super::shard::ShardRef, q: AdminQuery) {
    match q {
        AdminQuery::Report { .. } => unreachable!("reports are answered by the shard's loop"),
        AdminQuery::RootAcl { at_least, reply } => {
            if !caught_up(shard, at_least).await {
                return;
            }
            let acl = {
                let s = shard.borrow();
                let tree = s.tree.borrow();
                tree.get("/").map(|n| (*n.acl).clone()).unwrap_or_default()
            };
            let _ = reply.send(acl).await;
        }
        AdminQuery::Tree { at_least, reply } => {
            if !caught_up(shard, at_least).await {
                return;
            }
            let copy = shard.borrow().tree.borrow().clone();
            let _ = reply.send(copy).await;
        }
    }
}

/// Waits until the shard's replica has applied `at_least`: the commits before it are on
/// their way to this shard. Bounded: false after [`SHARD_WAIT`], and a stalled shard fails the
/// request, not the admin server.
async fn caught_up(shard: &super::shard::ShardRef, at_least: i64) -> bool {
    let deadline = Instant::now() + SHARD_WAIT;
    while shard.borrow().tree.borrow().last_zxid() < at_least {
        if Instant::now() > deadline {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    true
}
