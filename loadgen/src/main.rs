//! loadgen: a ZooKeeper-protocol load generator with honest latency histograms, for corral and
//! Apache ZooKeeper alike. See `loadgen --help` and docs/BENCHMARKS.md.

mod catchup;
mod echo;
mod failover;
mod plot;
mod procstat;
mod report;
mod restart;
mod run;
mod sess;
mod setup;
mod stalls;
mod stats;
mod tls;
mod wire;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use glommio::{LocalExecutorBuilder, Placement};

use crate::procstat::Target;
use crate::report::{MemberUse, PhaseResult};
use crate::run::{Paths, PhaseCfg, Shared, Workload};
use crate::stats::{now_ns, CoreStats};

/// A ZooKeeper-protocol load generator: thread-per-core on glommio, many sessions per core, many
/// requests in flight per session, HDR latency histograms.
///
/// Closed loop (the default) keeps --outstanding requests in flight per session. Open loop
/// (--rate, --rates, --sweep) sends at a fixed total rate and measures every latency from the
/// request's *intended* send time, so a stalled server is charged for the requests it delayed
/// (coordinated-omission correction, as wrk2 does). Each workload runs as one or more phases:
/// warmup (not measured), then the measured window, then a drain of the requests in flight.
///
/// A run with errors prints them per type, loudly, and exits with status 3.
///
/// LOADGEN_SLOW_US=N in the environment prints every measured op slower than N us to stderr
/// (`slow <start ms> <end ms> <us>`, CLOCK_MONOTONIC), to set a tail against a server trace taken
/// with `perf record -k CLOCK_MONOTONIC`.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Markdown table comparing two runs' --json outputs phase by phase (ratios first/second).
    Report {
        /// JSON lines of the first run (e.g. corral).
        #[arg(long)]
        a: String,
        /// Its name in the table.
        #[arg(long, default_value = "corral")]
        a_label: String,
        /// JSON lines of the second run (e.g. ZooKeeper); omit for a one-run table.
        #[arg(long)]
        b: Option<String>,
        /// Its name in the table.
        #[arg(long, default_value = "zookeeper")]
        b_label: String,
    },
    /// Creates a large tree of a fixed shape (ROOT/pNNNN/nNNNNNNN, --fanout leaves per parent),
    /// pipelined over one session: the data of the restart benchmark (loadgen/restart.sh).
    Populate {
        #[command(flatten)]
        tree: TreeArgs,
        /// Bytes of data per leaf.
        #[arg(long, default_value_t = 100)]
        payload: usize,
    },
    /// Waits until a fresh session reads the last leaf `populate` created (same flags) and
    /// prints the seconds waited: started right after a server, the time it takes to serve.
    Probe {
        #[command(flatten)]
        tree: TreeArgs,
        /// Milliseconds between attempts.
        #[arg(long, default_value_t = 5)]
        every_ms: u64,
        /// Seconds before giving up (exit status 2).
        #[arg(long, default_value_t = 600.0)]
        limit: f64,
    },
    /// SVG and PNG plots of runs' --json outputs: latency-percentile curves of the runs
    /// overlaid, one plot per phase they share, and latency vs offered load per open-loop sweep.
    Plot(plot::PlotArgs),
    /// How long this machine takes each CPU away from a thread that never sleeps: a spinning
    /// thread per CPU counts the gaps between its clock reads. A floor under every latency
    /// measured here; compare.sh records it with the results.
    Stalls(stalls::StallArgs),
    /// One round of the failover benchmark (loadgen/failover.sh): against a running
    /// three-member ensemble, writes through both followers, SIGKILLs the leader (--pids) and
    /// measures the time until the survivors serve under a new leader and each writer's outage.
    /// Exit status 3 if either was not measured within --limit.
    Failover(failover::FailoverArgs),
    /// Catch-up time of a restarted member: against a running three-member ensemble, SIGKILLs
    /// a follower (--pids), sends --writes setData through the other two, runs --restart
    /// (detached; its PID is printed) and measures the time until the member serves and until
    /// its zxid reaches the last write's, then reads that write back through it. Exit status 3
    /// if a write fails or it has not caught up within --limit.
    Catchup(catchup::CatchupArgs),
}

/// The restart benchmark's tree, as `populate` builds it and `probe` finds its last leaf.
#[derive(Args, Debug)]
struct TreeArgs {
    /// Server to connect to.
    #[arg(long, default_value = "127.0.0.1:2181")]
    server: String,
    /// Parent of the tree.
    #[arg(long, default_value = "/restart")]
    root: String,
    /// Leaf znodes.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Leaves per parent.
    #[arg(long, default_value_t = 1000)]
    fanout: usize,
}

impl TreeArgs {
    fn shape(self, payload: usize) -> (String, restart::Shape) {
        let shape = restart::Shape {
            root: self.root,
            count: self.count,
            fanout: self.fanout,
            payload,
        };
        (self.server, shape)
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Servers to connect to, comma separated; sessions are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2181")]
    servers: Vec<String>,

    /// Workloads to run, comma separated, one after the other.
    #[arg(
        long,
        short = 'w',
        value_enum,
        value_delimiter = ',',
        default_value = "getdata"
    )]
    workload: Vec<Workload>,

    /// Sessions (TCP connections), spread over the loadgen threads. For `watch`: the watchers
    /// (one more session writes). For `churn`: concurrent connect/close loops.
    #[arg(long, short = 's', default_value_t = 16)]
    sessions: usize,

    /// Requests in flight per session: closed loop keeps exactly this many; open loop never
    /// exceeds it (late requests then wait, and their wait counts in their latency).
    #[arg(long, short = 'o', default_value_t = 32)]
    outstanding: usize,

    /// Measured seconds per phase.
    #[arg(long, short = 'd', default_value_t = 5.0)]
    duration: f64,

    /// Seconds of load before the measured window (not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,

    /// Seconds to wait for replies still in flight at the end; unanswered ones count as
    /// `timeout` errors.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,

    /// Open loop at this total rate (requests/s over all sessions). Pipelined workloads only.
    #[arg(long)]
    rate: Option<f64>,

    /// Open loop, one phase per rate (requests/s), comma separated: a rate sweep.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,

    /// A closed-loop phase to find the saturation throughput, then open-loop phases at these
    /// percentages of it, comma separated (e.g. 25,50,75,90,100,110).
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<f64>,

    /// Bytes of znode data for getData keys, setData and creates.
    #[arg(long, default_value_t = 100)]
    payload: usize,

    /// Number of key znodes (getdata, exists, setdata, mix pick one uniformly per request).
    #[arg(long, default_value_t = 1000)]
    keys: usize,

    /// mix: percentage of reads (getData); the rest are setData.
    #[arg(long, default_value_t = 90)]
    read_pct: u32,

    /// getchildren: children of the listed node.
    #[arg(long, default_value_t = 10)]
    children: usize,

    /// lock: number of locks; session i contends for lock i % locks.
    #[arg(long, default_value_t = 1)]
    locks: usize,

    /// lock: microseconds a lock is held once acquired.
    #[arg(long, default_value_t = 0)]
    hold_us: u64,

    /// Loadgen threads (glommio executors); default: one per CPU in the affinity mask.
    #[arg(long, short = 't')]
    threads: Option<usize>,

    /// CPUs to pin the loadgen threads to, comma separated (cycled); default: the affinity
    /// mask (so `taskset -c 0 loadgen ...` runs on CPU 0).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,

    /// Microseconds each loadgen thread keeps polling before it sleeps when it has nothing to
    /// do. Open loop: a sleeping loadgen adds its own wake-up (tens of microseconds on a VM,
    /// a timer interrupt and a VM exit) to every latency it measures; spinning keeps that out,
    /// at the price of its core (its CPU per op then counts the spinning).
    #[arg(long, default_value_t = 0)]
    spin_us: u64,

    /// Session timeout requested at connect, in ms.
    #[arg(long, default_value_t = 30_000)]
    session_timeout_ms: i32,

    /// Seconds allowed for one TCP connect + handshake.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,

    /// Speak TLS to the servers (their secure client port), trusting the CA certificates in
    /// this PEM file; the servers' certificates must name the addresses dialed.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM) for TLS, with --tls-key (servers with ssl.clientAuth=need).
    #[arg(long, requires = "tls_ca")]
    tls_cert: Option<std::path::PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Connects in progress at once per loadgen thread while sessions are opened.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,

    /// Parent znode of everything the loadgen creates.
    #[arg(long, default_value = "/loadgen")]
    root: String,

    /// Skip creating the workload's znodes (they must exist).
    #[arg(long)]
    no_setup: bool,

    /// PID of the server: its CPU time (from /proc/PID/stat) and RSS (VmRSS) are sampled
    /// during the measured window and reported per op. An ensemble's members, comma separated:
    /// CPU per op is then their sum, RSS the largest member's, and each member is reported too.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<i32>,

    /// Run against an in-process echo server (one reply per frame, no server logic) instead of
    /// --servers: the floor of this machine's loopback path and of the loadgen itself.
    #[arg(long)]
    echo: bool,

    /// With --echo: the loopback hops a request takes to the echo server and back, each hop
    /// past the first a relay (a TCP proxy) on the echo thread: the floor of an ensemble's
    /// write path (3: client, relay, relay, echo, as client, follower, leader, follower).
    #[arg(long, default_value_t = 1)]
    echo_hops: usize,

    /// CPU for the echo server's thread; default: the last online CPU not used by the loadgen.
    #[arg(long)]
    echo_cpu: Option<usize>,

    /// Name of this run in outputs (e.g. corral, zookeeper).
    #[arg(long, default_value = "run")]
    label: String,

    /// Print one JSON object per phase on stdout (the human table goes to stderr).
    #[arg(long)]
    json: bool,

    /// Write one .hgrm percentile file per phase and op into this directory (values in ms).
    #[arg(long)]
    hgrm_dir: Option<PathBuf>,

    /// Exit 0 even when errors occurred (they are still reported).
    #[arg(long)]
    allow_errors: bool,
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Populate { tree, payload }) => {
            let (server, shape) = tree.shape(payload);
            let res = resolve(&[server]).and_then(|a| restart::populate(a[0], &shape));
            exit_on(res.map(|()| String::new()), "populate");
        }
        Some(Cmd::Probe {
            tree,
            every_ms,
            limit,
        }) => {
            let (server, shape) = tree.shape(0);
            let res = resolve(&[server]).and_then(|a| {
                restart::probe(
                    a[0],
                    &shape.last(),
                    Duration::from_millis(every_ms),
                    Duration::from_secs_f64(limit),
                )
            });
            exit_on(res.map(|d| format!("{:.3}\n", d.as_secs_f64())), "probe");
        }
        Some(Cmd::Plot(p)) => exit_on(plot::run(&p).map(|()| String::new()), "plot"),
        Some(Cmd::Stalls(a)) => exit_on(stalls::run(&a), "stalls"),
        Some(Cmd::Failover(a)) => match failover::run(&a) {
            Ok((out, ok)) => {
                print!("{out}");
                std::process::exit(if ok { 0 } else { 3 })
            }
            Err(e) => exit_on(Err(e), "failover"),
        },
        Some(Cmd::Catchup(a)) => match catchup::run(&a) {
            Ok((out, ok)) => {
                print!("{out}");
                std::process::exit(if ok { 0 } else { 3 })
            }
            Err(e) => exit_on(Err(e), "catchup"),
        },
        Some(Cmd::Report { .. }) | None => {}
    }
    if let Some(Cmd::Report {
        a,
        a_label,
        b,
        b_label,
    }) = cli.cmd
    {
        let res = (|| -> Result<String, String> {
            let av = report::read_jsonl(&a)?;
            Ok(match b {
                Some(b) => report::compare(&a_label, &av, &b_label, &report::read_jsonl(&b)?),
                None => report::single(&a_label, &av),
            })
        })();
        match res {
            Ok(t) => print!("{t}"),
            Err(e) => {
                eprintln!("loadgen report: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    match run_all(cli.run) {
        Ok(0) => {}
        Ok(_) => std::process::exit(3),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    }
}

/// Prints a subcommand's output, or its error and exits with status 2.
fn exit_on(res: Result<String, String>, what: &str) -> ! {
    match res {
        Ok(out) => {
            print!("{out}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("loadgen {what}: {e}");
            std::process::exit(2)
        }
    }
}

fn resolve(servers: &[String]) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for s in servers {
        let a = s
            .to_socket_addrs()
            .map_err(|e| format!("--servers {s}: {e}"))?
            .next()
            .ok_or_else(|| format!("--servers {s}: no address"))?;
        if !a.ip().is_loopback() {
            eprintln!("loadgen: warning: {a} is not a loopback address");
        }
        out.push(a);
    }
    if out.is_empty() {
        return Err("no --servers".into());
    }
    Ok(out)
}

/// Runs every phase; returns the number of errors seen.
fn run_all(a: RunArgs) -> Result<u64, String> {
    procstat::raise_memlock();
    let _ = now_ns();
    let cpus = if a.cpus.is_empty() {
        procstat::allowed_cpus()
    } else {
        a.cpus.clone()
    };
    let threads = a.threads.unwrap_or(cpus.len()).max(1);
    if a.duration <= 0.0 || a.warmup < 0.0 {
        return Err("--duration must be > 0 and --warmup >= 0".into());
    }
    if a.sessions == 0 {
        return Err("--sessions must be > 0".into());
    }

    let (servers, target) = if a.echo {
        let used: Vec<usize> = (0..threads).map(|i| cpus[i % cpus.len()]).collect();
        let cpu = a.echo_cpu.unwrap_or_else(|| {
            (0..procstat::online_cpus())
                .rev()
                .find(|c| !used.contains(c))
                .unwrap_or(0)
        });
        let e = echo::start(cpu, a.payload, a.echo_hops)?;
        eprintln!("loadgen: echo server on {} (CPU {cpu})", e.addr);
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        (vec![e.addr], vec![Target::Thread(pid, e.tid)])
    } else {
        let pids = a.server_pid.iter().map(|&p| Target::Process(p)).collect();
        (resolve(&a.servers)?, pids)
    };
    // In echo mode the server is our own thread: keep its CPU out of the loadgen's.
    let echo_thread = if a.echo {
        target.first().copied()
    } else {
        None
    };

    let tag = format!(
        "{:x}",
        (std::process::id() as u64) << 20 ^ (now_ns() & 0xfffff)
    );
    let tls = match &a.tls_ca {
        Some(ca) => Some(tls::client_config(
            ca,
            a.tls_cert.as_deref(),
            a.tls_key.as_deref(),
        )?),
        None => None,
    };
    let mut errors = 0;
    for &wl in &a.workload {
        let mut cfg = PhaseCfg {
            workload: wl,
            servers: servers.clone(),
            sessions: a.sessions,
            outstanding: if wl.pipelined() { a.outstanding } else { 1 },
            rate: None,
            warmup_ns: (a.warmup * 1e9) as u64,
            duration_ns: (a.duration * 1e9) as u64,
            drain_ns: (a.drain * 1e9) as u64,
            payload: a.payload,
            keys: a.keys.max(1),
            read_pct: a.read_pct.min(100),
            children: a.children,
            locks: a.locks.max(1),
            hold_us: a.hold_us,
            session_timeout_ms: a.session_timeout_ms,
            connect_timeout: Duration::from_secs_f64(a.connect_timeout),
            connect_concurrency: a.connect_concurrency,
            tls: tls.clone(),
            paths: Paths {
                root: a.root.trim_end_matches('/').to_string(),
                tag: tag.clone(),
            },
        };
        if cfg.paths.root.is_empty() {
            return Err("--root must not be /".into());
        }
        if !a.no_setup && !a.echo {
            setup::prepare(&cfg)?;
        }
        let mut rates: Vec<Option<f64>> = Vec::new();
        let open_asked = a.rate.is_some() || !a.rates.is_empty() || !a.sweep.is_empty();
        if open_asked && !wl.pipelined() {
            eprintln!(
                "loadgen: {} runs closed loop only; ignoring --rate/--rates/--sweep",
                wl.name()
            );
            rates.push(None);
        } else if !a.sweep.is_empty() {
            rates.push(None);
        } else if !a.rates.is_empty() {
            rates.extend(a.rates.iter().map(|r| Some(*r)));
        } else {
            rates.push(a.rate);
        }
        let mut i = 0;
        while i < rates.len() {
            cfg.rate = rates[i];
            let res = run_phase(&a, &cfg, threads, &cpus, &target, echo_thread)?;
            errors += res.stats.error_total();
            if i == 0 && !a.sweep.is_empty() && wl.pipelined() {
                let max = res.throughput();
                rates.extend(a.sweep.iter().map(|p| Some((max * p / 100.0).max(1.0))));
            }
            emit(&a, &res)?;
            i += 1;
        }
    }
    if errors > 0 {
        eprintln!("!!! loadgen: {errors} ERRORS in this run (see the phases above) !!!");
        if a.allow_errors {
            return Ok(0);
        }
    }
    Ok(errors)
}

fn emit(a: &RunArgs, res: &PhaseResult) -> Result<(), String> {
    if a.json {
        eprint!("{}", res.table());
        println!("{}", res.json());
    } else {
        println!("{}", res.table());
    }
    if let Some(dir) = &a.hgrm_dir {
        res.write_hgrm(dir)
            .map_err(|e| format!("--hgrm-dir {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn run_phase(
    a: &RunArgs,
    cfg: &PhaseCfg,
    threads: usize,
    cpus: &[usize],
    targets: &[Target],
    echo_thread: Option<Target>,
) -> Result<PhaseResult, String> {
    let cfg = Arc::new(cfg.clone());
    let shared = Arc::new(Shared::new(&cfg));

    // Watchdog: a phase that cannot finish (a server that stopped answering a plain read) ends
    // the process rather than hanging it.
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = done.clone();
        let connect_s = a.connect_timeout
            * (1.0 + (a.sessions / threads / a.connect_concurrency.max(1)) as f64);
        let limit = connect_s + a.warmup + a.duration + a.drain + 30.0;
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            while t.elapsed().as_secs_f64() < limit {
                if done.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("!!! loadgen: phase did not finish within {limit:.0} s; giving up");
            std::process::exit(4);
        });
    }

    let mut handles = Vec::new();
    for i in 0..threads {
        let (cfg, shared) = (cfg.clone(), shared.clone());
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpus[i % cpus.len()]))
            .name(&format!("loadgen{i}"))
            .spin_before_park(Duration::from_micros(a.spin_us))
            .io_memory(512 * 1024)
            .spawn(move || async move { run::core_main(i, threads, cfg, shared).await })
            .map_err(|e| format!("starting loadgen thread {i}: {e}"))?;
        handles.push(h);
    }
    while shared.ready.load(Ordering::Acquire) < threads {
        std::thread::sleep(Duration::from_millis(2));
    }
    let start = now_ns() + 20_000_000;
    shared.start_ns.store(start, Ordering::Release);

    let w0 = start + cfg.warmup_ns;
    let w1 = w0 + cfg.duration_ns;
    let sleep_until = |t: u64| {
        let now = now_ns();
        if t > now {
            std::thread::sleep(Duration::from_nanos(t - now));
        }
    };
    let own_cpu = || {
        procstat::self_cpu_ns().saturating_sub(echo_thread.and_then(|t| t.cpu_ns()).unwrap_or(0))
    };
    sleep_until(w0);
    let cpu_all = || -> Vec<Option<u64>> { targets.iter().map(|t| t.cpu_ns()).collect() };
    let s0 = cpu_all();
    let l0 = own_cpu();
    let mut rss_max: Vec<Option<u64>> = vec![None; targets.len()];
    let mut rss_last: Vec<Option<u64>> = vec![None; targets.len()];
    let mut sample_rss = || {
        for (i, t) in targets.iter().enumerate() {
            if let Some(r) = t.rss_kb() {
                rss_max[i] = Some(rss_max[i].map_or(r, |m| m.max(r)));
                rss_last[i] = Some(r);
            }
        }
    };
    loop {
        let now = now_ns();
        if now >= w1 {
            break;
        }
        sample_rss();
        std::thread::sleep(Duration::from_nanos((w1 - now).min(100_000_000)));
    }
    let s1 = cpu_all();
    let l1 = own_cpu();
    sample_rss();
    let members: Vec<MemberUse> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| MemberUse {
            pid: t.pid(),
            cpu_ns: match (s0[i], s1[i]) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            },
            rss_kb_max: rss_max[i],
            rss_kb_end: rss_last[i],
        })
        .collect();

    let mut stats = CoreStats::new((w0, w1));
    for (i, h) in handles.into_iter().enumerate() {
        let s = h
            .join()
            .map_err(|e| format!("loadgen thread {i} failed: {e}"))?;
        stats.merge(&s);
    }
    done.store(true, Ordering::Release);
    Ok(PhaseResult {
        label: a.label.clone(),
        workload: cfg.workload,
        rate: cfg.rate,
        sessions: cfg.sessions,
        outstanding: cfg.outstanding,
        threads,
        payload: cfg.payload,
        warmup_s: cfg.warmup_ns as f64 / 1e9,
        duration_s: cfg.duration_ns as f64 / 1e9,
        stats,
        server_cpu_ns: sum_known(members.iter().map(|m| m.cpu_ns)),
        server_rss_kb_max: members.iter().filter_map(|m| m.rss_kb_max).max(),
        server_rss_kb_end: members.iter().filter_map(|m| m.rss_kb_end).max(),
        members: if targets.len() > 1 {
            members
        } else {
            Vec::new()
        },
        loadgen_cpu_ns: l1.saturating_sub(l0),
    })
}

/// The sum of the values, or None if any is unknown (a member that died mid-phase would
/// otherwise make the ensemble look cheaper).
fn sum_known(v: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for x in v {
        total += x?;
        any = true;
    }
    any.then_some(total)
}
