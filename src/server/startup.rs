//! Process start-up: claims (claim.rs), recovery, the cross-core channels, the listeners bound
//! before any executor runs, and one executor per shard, each started by `run_shard` with its
//! background tasks (the commit stream, activity reports, four-letter questions) and its
//! accept loop (accept.rs).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::Receiver;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, info, warn};

use super::commit::on_core_message;
use super::core::{CoreInit, WriteCore};
use super::secure::SecurePort;
use super::shard::{Env, Shard, ShardRef};
use super::{accept, fourlw, AdminQuery, Inspector, Shared, ToCore, ToShard, CHANNEL_CAPACITY};
use crate::admin;
use crate::config::Config;
use crate::tree::DataTree;
use crate::watch::WatchManager;

/// io_uring buffer memory per executor: the network path does not use registered buffers, so a
/// small region keeps us far inside the default 8 MiB RLIMIT_MEMLOCK even with many servers.
const IO_MEMORY: usize = 512 * 1024;

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// glommio locks memory for its rings; lift the limit when allowed (root), else live within it.
fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        debug!("could not raise RLIMIT_MEMLOCK; using small io_uring regions");
    }
}

/// Starts the server and runs it until the process ends. In order: take SIGTERM/SIGINT,
/// claim the client port and the data directories (claim.rs), bind the first listener,
/// recover, bind the other shards' listeners and start the executors; only then is "serving
/// clients" logged. Every I/O error on the way names the path or the address it is about.
pub fn start(cfg: Arc<Config>) -> std::io::Result<()> {
    super::stop::install()?;
    raise_memlock();
    let cpus = allowed_cpus();
    // The write core's own CPU, if it gets one: the first; shards take the others.
    let zab_cpu = (cfg.zab_core.dedicated(cpus.len()) && cpus.len() > 1).then(|| cpus[0]);
    let shard_cpus: Vec<usize> = match zab_cpu {
        Some(_) => cpus[1..].to_vec(),
        None => cpus.clone(),
    };
    let shards = cfg.cores.unwrap_or(shard_cpus.len()).max(1);
    let spin = Duration::from_micros(cfg.spin_before_park_us as u64);
    info!(
        ?cpus,
        shards,
        ?zab_cpu,
        port = cfg.client_port,
        "starting corral"
    );

    // Claims are held until the process ends (`start` returns only to exit).
    let mut claims = Vec::new();
    let plain_addr = cfg
        .client_port_enabled
        .then(|| SocketAddr::new(cfg.client_port_address, cfg.client_port));
    let secure_addr = cfg.secure_client_port.map(|p| {
        SocketAddr::new(
            cfg.secure_client_port_address
                .unwrap_or(cfg.client_port_address),
            p,
        )
    });
    // The stores are read now: a wrong password or path stops the start with its reason.
    let tls = match secure_addr {
        Some(_) => {
            let settings = super::secure::settings(&cfg)
                .map_err(std::io::Error::other)?
                .ok_or_else(|| {
                    std::io::Error::other(
                        "secureClientPort is set but ssl.keyStore.location is not (docs/security.md)",
                    )
                })?;
            crate::tls::server_config(&settings).map_err(std::io::Error::other)?;
            Some(settings)
        }
        None => None,
    };
    let admin_tls = super::admin_http::tls_config(&cfg).map_err(std::io::Error::other)?;
    // Shard 0's sockets, bound now: a port held by another program (a ZooKeeper) is reported
    // before recovery, and port 0 picks the one port every shard then binds.
    let plain = plain_addr
        .map(|a| claim_and_bind(a, "client port", &mut claims))
        .transpose()?;
    let secure = secure_addr
        .map(|a| claim_and_bind(a, "secure client port", &mut claims))
        .transpose()?;
    let port = plain.as_ref().map_or(cfg.client_port, |(_, a)| a.port());
    let secure_port = secure.as_ref().map(|(_, a)| a.port());

    // Absolute data paths: glommio opens files relative to no directory, so `./data` (the
    // default) must become a full path before any executor uses it. Each directory is claimed
    // before anything in it is read, so two servers never recover (and truncate) one log.
    let cfg = {
        let mut c = (*cfg).clone();
        c.client_port = port;
        c.secure_client_port = secure_port;
        c.data_dir = make_dir(&c.data_dir, "dataDir")?;
        claims.push(super::claim::dir(&c.data_dir, "dataDir")?);
        if let Some(d) = c.data_log_dir.take() {
            let d = make_dir(&d, "dataLogDir")?;
            if d != c.data_dir {
                claims.push(super::claim::dir(&d, "dataLogDir")?);
            }
            c.data_log_dir = Some(d);
        }
        Arc::new(c)
    };
    // Recover before serving: the tree every replica starts from, and where the log continues.
    let log_dir = super::log_dir(&cfg);
    std::fs::create_dir_all(&log_dir).map_err(at(&log_dir))?;
    let t0 = Instant::now();
    let snap_dir = super::snapshots::snapshot_dir(&cfg.data_dir);
    let recovered = crate::storage::recover::recover(&log_dir, &snap_dir)?;
    // Segments a learner's sync set aside before a crash.
    crate::storage::learner::purge_discarded(&log_dir);
    info!(
        zxid = format!("{:#x}", recovered.last_zxid),
        segments = recovered.stats.segments,
        skipped = recovered.stats.segments_skipped,
        records = recovered.stats.records,
        snapshot = ?recovered.stats.snapshot.map(|z| format!("{z:#x}")),
        torn = ?recovered.stats.torn,
        discarded_bytes = recovered.stats.discarded_bytes,
        ms = t0.elapsed().as_millis() as u64,
        "recovered from the transaction log"
    );
    let epochs = crate::storage::epochs::read(&cfg.data_dir)?;
    // The shards' replicas start from the recovered tree. The write core keeps its own copy
    // only on an executor of its own; beside shard 0 it reads shard 0's replica.
    let (initial, core_tree) = if zab_cpu.is_some() {
        (Arc::new(recovered.tree.clone()), Some(recovered.tree))
    } else {
        (Arc::new(recovered.tree), None)
    };

    let (core_tx, core_rx) = async_channel::bounded::<ToCore>(CHANNEL_CAPACITY);
    let mut shard_txs = Vec::new();
    let mut shard_rxs = Vec::new();
    let mut admin_txs = Vec::new();
    let mut admin_rxs = Vec::new();
    for _ in 0..shards {
        let (t, r) = async_channel::bounded::<ToShard>(CHANNEL_CAPACITY);
        shard_txs.push(t);
        shard_rxs.push(r);
        let (t, r) = async_channel::bounded::<AdminQuery>(16);
        admin_txs.push(t);
        admin_rxs.push(r);
    }
    let shared = Arc::new(Shared {
        admin: admin_txs,
        committed: AtomicI64::new(0),
    });
    fourlw::mark_start();
    // For the HTTP endpoints (admin server, metrics), which run on threads of their own and
    // ask the shards and the write core as a four-letter word does.
    let inspector = Inspector::new(cfg.clone(), shared.clone(), core_tx.clone());
    crate::metrics::endpoint::start(inspector.clone());
    super::admin_http::start(&cfg, inspector, admin_tls);
    let per_ip = Arc::new(Mutex::new(HashMap::new()));
    let quorum = if cfg.is_distributed() {
        Some(quorum_setup(&cfg, core_tx.clone())?)
    } else {
        None
    };
    let mut core = Some((
        CoreInit {
            cfg: cfg.clone(),
            shards: shard_txs,
            shared: shared.clone(),
            tree: core_tree,
            tail: recovered.tail,
            next_seq: recovered.next_seq,
            epochs,
            recent: crate::write::Recent {
                base: recovered.recent_base,
                entries: recovered.recent,
            },
            quorum,
        },
        core_rx,
    ));

    // Every shard's listener, listening before any executor runs: a connection that arrives
    // while they start waits in the backlog.
    let mut sockets = vec![(plain, secure)];
    for _ in 1..shards {
        let again = |b: &Option<(socket2::Socket, SocketAddr)>, what| {
            b.as_ref()
                .map(|(_, a)| bind_socket(*a, what).map(|s| (s, *a)))
                .transpose()
        };
        let (p, s) = &sockets[0];
        let next = (again(p, "client port")?, again(s, "secure client port")?);
        sockets.push(next);
    }
    for (p, s) in &sockets {
        for (sk, _) in p.iter().chain(s.iter()) {
            listen(&cfg, sk)?;
        }
    }
    let (plain_shown, secure_shown) = (
        sockets[0].0.as_ref().map(|(_, a)| a.to_string()),
        sockets[0].1.as_ref().map(|(_, a)| a.to_string()),
    );

    let mut handles = Vec::new();
    for (i, ((rx, admin_rx), (plain, secure))) in shard_rxs
        .into_iter()
        .zip(admin_rxs)
        .zip(sockets)
        .enumerate()
    {
        let env = Env {
            id: i,
            cfg: cfg.clone(),
            to_core: core_tx.clone(),
            shared: shared.clone(),
            per_ip: per_ip.clone(),
        };
        let core = if i == 0 && zab_cpu.is_none() {
            core.take()
        } else {
            None
        };
        let initial = initial.clone();
        let listeners = Listeners {
            plain: plain.map(|(sk, _)| sk),
            secure: secure.map(|(sk, _)| (sk, tls.clone().expect("a secure socket has settings"))),
        };
        let cpu = shard_cpus[i % shard_cpus.len()];
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("corral-shard{i}"))
            .io_memory(IO_MEMORY)
            // Spin briefly before sleeping: completions that land within 50 us (an fdatasync,
            // a reply on loopback) are reaped at once instead of after a wake-up. Measured with
            // loadgen setdata 1x1 on one CPU: fdatasync 1.7 ms -> 0.06 ms average, setData p50
            // 210 us end to end.
            .spin_before_park(spin)
            .spawn(
                move || async move { run_shard(env, rx, admin_rx, core, initial, listeners).await },
            )
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        handles.push(h);
    }
    if let (Some(cpu), Some((init, core_rx))) = (zab_cpu, core.take()) {
        let to_core = core_tx.clone();
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name("corral-zab")
            .io_memory(IO_MEMORY)
            .spin_before_park(spin)
            .spawn(move || async move {
                let tq = glommio::executor().create_task_queue(
                    glommio::Shares::Static(1000),
                    glommio::Latency::NotImportant,
                    "write-core",
                );
                // This executor lives as long as the write core does.
                start_core(init, None, core_rx, to_core, tq)?.await;
                Ok(())
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        handles.push(h);
    }
    // The shards hold their own copies now; the last one may take this one instead of cloning.
    drop(initial);
    // "serving clients" once the write core answers (its log is open): a question to it is
    // answered only from its serving loop. If it failed instead, the join below reports why.
    let (tx, rx) = async_channel::bounded(1);
    let core_up = futures_lite::future::block_on(async {
        core_tx.send(ToCore::Report(tx)).await.is_ok() && rx.recv().await.is_ok()
    });
    drop(core_tx);
    if core_up {
        if let Some(a) = plain_shown {
            info!("serving clients on {a}");
        }
        if let Some(a) = secure_shown {
            info!("serving TLS clients on {a}");
        }
    }
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
    Ok(())
}

async fn run_shard(
    env: Env,
    rx: Receiver<ToShard>,
    admin_rx: Receiver<AdminQuery>,
    core: Option<(CoreInit, Receiver<ToCore>)>,
    initial: Arc<DataTree>,
    listeners: Listeners,
) -> std::io::Result<()> {
    let env = Rc::new(env);
    let shard: ShardRef = Rc::new(RefCell::new(Shard {
        id: env.id,
        // Consumed here, not held for the shard's life: a 1M-node tree is hundreds of MiB.
        tree: Rc::new(RefCell::new(
            Arc::try_unwrap(initial).unwrap_or_else(|a| (*a).clone()),
        )),
        watches: WatchManager::default(),
        conns: HashMap::new(),
        sessions: HashMap::new(),
        touched: HashSet::new(),
        waiting: HashSet::new(),
        next_conn: 1,
        received: 0,
        sent: 0,
        latency: admin::Latency::default(),
        latencies: crate::metrics::Latencies::new(std::time::Instant::now()),
    }));

    if let Some((core, core_rx)) = core {
        // NotImportant, like the shard's own tasks: a Latency::Matters queue here made glommio
        // miss network completions until the next timer (lock waits of a whole tick). Prompt
        // fsync completions come from `spin_before_park` instead (see `start`).
        let tq = glommio::executor().create_task_queue(
            glommio::Shares::Static(1000),
            glommio::Latency::NotImportant,
            "write-core",
        );
        let replica = shard.borrow().tree.clone();
        start_core(core, Some(replica), core_rx, env.to_core.clone(), tq)?.detach();
    }

    // Commit stream from the write core.
    {
        let shard = shard.clone();
        let to_core = env.to_core.clone();
        glommio::spawn_local(async move {
            while let Ok(msg) = rx.recv().await {
                let back = on_core_message(&mut shard.borrow_mut(), msg);
                if let Some(back) = back {
                    // From a task of its own: this loop must never wait on the write core,
                    // which may be waiting for room in this shard's queue.
                    let to_core = to_core.clone();
                    glommio::spawn_local(async move {
                        let _ = to_core.send(back).await;
                    })
                    .detach();
                }
            }
        })
        .detach();
    }
    // Activity reports: sessions seen since the last report keep their lease.
    {
        let shard = shard.clone();
        let to_core = env.to_core.clone();
        let period = Duration::from_millis((env.cfg.tick_time_ms as u64 / 2).clamp(10, 1000));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(period).await;
                let touched: Vec<i64> = shard.borrow_mut().touched.drain().collect();
                if !touched.is_empty() && to_core.send(ToCore::Touch(touched)).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }
    // Four-letter-word questions from any shard.
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Ok(q) = admin_rx.recv().await {
                match q {
                    AdminQuery::Report {
                        reply,
                        reset,
                        reset_connections,
                    } => {
                        let report = shard.borrow_mut().report(reset, reset_connections);
                        let _ = reply.send(report).await;
                    }
                    other => super::admin_http::answer(&shard, other).await,
                }
            }
        })
        .detach();
    }

    if let Some((socket, settings)) = listeners.secure {
        let port = Rc::new(SecurePort::new(&env.cfg, settings).map_err(std::io::Error::other)?);
        super::secure::spawn_reloader(port.clone());
        glommio::spawn_local(accept::run(env.clone(), shard.clone(), socket, Some(port))).detach();
    }
    match listeners.plain {
        Some(socket) => accept::run(env, shard, socket, None).await,
        None => futures_lite::future::pending::<()>().await,
    }
    Ok(())
}

/// A shard's listening sockets: the client port's and the secure client port's, each
/// bound with SO_REUSEPORT beside the other shards'.
struct Listeners {
    plain: Option<socket2::Socket>,
    secure: Option<(socket2::Socket, crate::tls::TlsSettings)>,
}

/// Claims `addr`'s port for this process (claim.rs) and binds shard 0's socket to it; port 0
/// picks a port, claimed once known. Returns the socket and the address bound.
fn claim_and_bind(
    addr: SocketAddr,
    what: &str,
    claims: &mut Vec<super::claim::Claim>,
) -> std::io::Result<(socket2::Socket, SocketAddr)> {
    if addr.port() != 0 {
        claims.push(super::claim::port(addr.port(), &addr.to_string())?);
    }
    let sk = bind_socket(addr, what)?;
    let bound = sk.local_addr()?.as_socket().unwrap_or(addr);
    if addr.port() == 0 {
        claims.push(super::claim::port(bound.port(), &bound.to_string())?);
    }
    Ok((sk, bound))
}

/// Starts the write core in task queue `tq` of this executor, and its clock; returns the
/// write core's task.
fn start_core(
    core: CoreInit,
    shared_tree: Option<super::shard::Replica>,
    core_rx: Receiver<ToCore>,
    to_core: async_channel::Sender<ToCore>,
    tq: glommio::TaskQueueHandle,
) -> std::io::Result<glommio::Task<()>> {
    // The write core's clock: session expiry and container reaping; in an ensemble also the
    // election's and Zab's timers, whose waits (a finalize wait, heartbeats) must not be
    // rounded up to half a tick.
    let period = if core.cfg.is_distributed() {
        Duration::from_millis(ENSEMBLE_TICK_MS)
    } else {
        Duration::from_millis((core.cfg.tick_time_ms as u64 / 2).clamp(10, 1000))
    };
    let task = glommio::spawn_local_into(WriteCore::run(core, shared_tree, core_rx), tq)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(period).await;
            if to_core.send(ToCore::Tick).await.is_err() {
                break;
            }
        }
    })
    .detach();
    Ok(task)
}

/// How often an ensemble member's write core hears the time.
const ENSEMBLE_TICK_MS: u64 = 10;

/// An ensemble member's links: its election-port listener, bound on the address of its own
/// `server.N` line, and every member's address. One connection per pair carries votes and Zab
/// alike (docs/design/replication.md); the quorum port is not used.
fn quorum_setup(
    cfg: &Config,
    to_core: async_channel::Sender<ToCore>,
) -> std::io::Result<super::core::Quorum> {
    use std::net::ToSocketAddrs;
    let resolve = |host: &str, port: u16| -> std::io::Result<SocketAddr> {
        (host, port).to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("cannot resolve {host}"),
            )
        })
    };
    let mut members = std::collections::BTreeMap::new();
    for (id, spec) in &cfg.servers {
        let addr = resolve(&spec.host, spec.election_port).map_err(|e| {
            std::io::Error::new(e.kind(), format!("server.{id}={}: {e}", spec.host))
        })?;
        members.insert(*id, addr);
    }
    let me = cfg.my_server().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "myid names no server.N line",
        )
    })?;
    // The own server line's address, as ZooKeeper binds it: the quorum ports are meant for a
    // private network, so they are not opened on every interface unless asked to.
    let own = members[&me.id];
    let addr = if cfg.quorum_listen_on_all_ips {
        let any: std::net::IpAddr = match own {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        SocketAddr::new(any, own.port())
    } else {
        own
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind election port {addr} of server.{}: {e}", me.id),
        )
    })?;
    info!(%addr, members = members.len(), "listening for ensemble members");
    let tls = if cfg.ssl_quorum {
        let settings =
            crate::tls::TlsSettings::from_lookup("ssl.quorum.", |k| super::secure::lookup(cfg, k))
                .map_err(std::io::Error::other)?
                .ok_or_else(|| {
                    std::io::Error::other("sslQuorum=true needs ssl.quorum.keyStore.location")
                })?;
        let server = crate::tls::server_config(&settings).map_err(std::io::Error::other)?;
        let client = crate::tls::client_config(&settings).map_err(std::io::Error::other)?;
        let names = cfg
            .servers
            .iter()
            .map(|(id, spec)| {
                rustls::pki_types::ServerName::try_from(spec.host.clone())
                    .map(|n| (*id, n))
                    .map_err(|e| std::io::Error::other(format!("server.{id}={}: {e}", spec.host)))
            })
            .collect::<std::io::Result<_>>()?;
        info!("links between members are mutual TLS (sslQuorum)");
        Some(super::quorum::QuorumTls {
            server,
            client,
            names,
        })
    } else {
        warn!(
            "links between members are plaintext, neither encrypted nor authenticated: keep the \
             quorum ports on a private network, or set sslQuorum=true (docs/security.md)"
        );
        None
    };
    Ok(super::core::Quorum {
        listener,
        members,
        to_core,
        tls,
    })
}

/// Binds a shard's socket to the client port: SO_REUSEPORT so every shard binds the port and
/// the kernel spreads connections (the port claim keeps other servers off it); SO_REUSEADDR so
/// a restart is not refused by connections of the previous process still in TIME_WAIT.
fn bind_socket(addr: SocketAddr, what: &str) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let named = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (another server, a ZooKeeper perhaps, is listening there; pick another port with --port N)"
        } else {
            ""
        };
        std::io::Error::new(e.kind(), format!("cannot bind {what} {addr}: {e}{hint}"))
    };
    let sk = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.bind(&addr.into()).map_err(named)?;
    Ok(sk)
}

fn listen(cfg: &Config, sk: &socket2::Socket) -> std::io::Result<()> {
    let backlog = if cfg.client_port_listen_backlog > 0 {
        cfg.client_port_listen_backlog
    } else {
        1024
    };
    sk.listen(backlog)
}

/// Creates `dir` if missing and returns its absolute path; errors name it.
fn make_dir(dir: &std::path::Path, role: &str) -> std::io::Result<std::path::PathBuf> {
    let named =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("{role} {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(named)?;
    std::fs::canonicalize(dir).map_err(named)
}

/// Adds `path` to an I/O error's message.
fn at(path: &std::path::Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
