//! Replicated ensembles for end-to-end tests: N members (voters, then observers), each its own
//! process with its own temp dir, `data/myid` and zoo.cfg listing every member as
//! `server.<sid>=127.0.0.1:<quorumPort>:<electionPort>[:observer];127.0.0.1:<clientPort>`.
//! The target is the same as [`super::TestServer`]'s: corral (`corral --config zoo.cfg`) or
//! Apache ZooKeeper 3.8 (`QuorumPeerMain`).
//!
//! With [`EnsembleOpts::partitionable`], each member's zoo.cfg names the *other* members'
//! quorum and election ports as loopback proxies owned by the test (one per ordered pair and
//! port kind, see [`super::proxy`]), so [`Ensemble::isolate`] can cut a member off. Proxies
//! are tokio tasks: use `#[tokio::test(flavor = "multi_thread")]` (the harness blocks the test
//! thread briefly, e.g. while reaping a killed member, and the proxies must keep running).
//!
//! With [`EnsembleOpts::on_hosts`] (hosts made by [`super::netns::Network`]), member `i` runs
//! in host `i`'s network namespace and `127.0.0.1` becomes the host's address everywhere (server
//! lines, `clientPortAddress`, the addresses the tests dial); every member gets the same ports.
//!
//! Ensembles are heavy (several JVMs against ZooKeeper on a small shared machine): tests take
//! [`serial`] first so that the ensembles of one test binary run one at a time.
//!
//! [`dump_tree`] reads a member's whole tree (data, ACL, full stat) after a `sync("/")`;
//! [`assert_same_trees`] compares every member's dump in full, with one exception:
//! ZooKeeper 3.8 writes `/zookeeper/config` locally on each member at start-up (its data is
//! that member's view of the server lines, then `version=0`), so its `mtime` differs between
//! members; and in a partitionable ensemble each member's view names its own proxies, so its
//! data and dataLength differ too. Those fields of that one node are not compared.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use zookeeper_client as zk;

use super::proxy::Proxy;
use super::{
    four_letter_timeout, free_port, make_temp_dir, signal_group, spawn_watchdog, target,
    wait_group_gone, zookeeper_command, Target,
};

/// Options for an ensemble. Members `0..voters` are voters, then `observers` observers.
#[derive(Clone, Debug)]
pub struct EnsembleOpts {
    pub voters: usize,
    pub observers: usize,
    /// One sid per member; default 100, 101, 102, ... (arbitrary sids, not 1..N).
    pub sids: Option<Vec<u64>>,
    pub tick_time: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// Route every member-to-member link through a test-owned proxy (see [`Ensemble::isolate`]).
    pub partitionable: bool,
    /// Extra `key=value` lines for every member's zoo.cfg.
    pub extra: Vec<(String, String)>,
    /// Extra `key=value` lines for one member's zoo.cfg: (member index, key, value).
    pub member_extra: Vec<(usize, String, String)>,
    /// One host per member (see [`EnsembleOpts::on_hosts`]); None: every member on loopback.
    pub hosts: Option<Vec<Host>>,
}

/// Where a member runs: its address, and the network namespace that models its host
/// (`super::netns`), if any.
#[derive(Clone, Debug)]
pub struct Host {
    pub ip: std::net::IpAddr,
    pub netns: Option<String>,
}

impl Default for EnsembleOpts {
    fn default() -> Self {
        EnsembleOpts {
            voters: 3,
            observers: 0,
            sids: None,
            tick_time: 2000,
            init_limit: 10,
            sync_limit: 5,
            partitionable: false,
            extra: Vec::new(),
            member_extra: Vec::new(),
            hosts: None,
        }
    }
}

impl EnsembleOpts {
    pub fn voters(n: usize) -> Self {
        EnsembleOpts {
            voters: n,
            ..Self::default()
        }
    }

    pub fn observers(mut self, n: usize) -> Self {
        self.observers = n;
        self
    }

    pub fn sids(mut self, sids: &[u64]) -> Self {
        self.sids = Some(sids.to_vec());
        self
    }

    pub fn partitionable(mut self) -> Self {
        self.partitionable = true;
        self
    }

    /// Member `i` runs on `hosts[i]` (in its namespace, `ip netns exec`): its server line, client
    /// port and every address the tests use are the host's, and every member uses the same
    /// three ports, as on separate machines. Not with `partitionable`.
    pub fn on_hosts(mut self, hosts: Vec<Host>) -> Self {
        self.hosts = Some(hosts);
        self
    }

    pub fn cfg(mut self, key: &str, value: impl ToString) -> Self {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }

    /// A `key=value` line for member `i`'s zoo.cfg only.
    pub fn member_cfg(mut self, i: usize, key: &str, value: impl ToString) -> Self {
        self.member_extra
            .push((i, key.to_string(), value.to_string()));
        self
    }

    fn members(&self) -> usize {
        self.voters + self.observers
    }

    fn sid_list(&self) -> Vec<u64> {
        match &self.sids {
            Some(s) => {
                assert_eq!(s.len(), self.members(), "one sid per member");
                s.clone()
            }
            None => (0..self.members() as u64).map(|i| 100 + i).collect(),
        }
    }
}

/// A member's role as `srvr` reports it (`Mode: ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Leader,
    Follower,
    Observer,
    Standalone,
}

/// Parses the `Mode:` line of a `srvr` (or `stat`) reply; None for "This ZooKeeper instance is
/// not currently serving requests" or anything without a known mode.
pub fn parse_mode(srvr: &str) -> Option<Mode> {
    let line = srvr.lines().find_map(|l| l.strip_prefix("Mode:"))?;
    match line.trim() {
        "leader" => Some(Mode::Leader),
        "follower" => Some(Mode::Follower),
        "observer" => Some(Mode::Observer),
        "standalone" => Some(Mode::Standalone),
        _ => None,
    }
}

/// Which of a member's two peer ports a proxy stands in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Quorum,
    Election,
}

pub struct Member {
    pub sid: u64,
    pub observer: bool,
    pub dir: PathBuf,
    pub client_port: u16,
    pub quorum_port: u16,
    pub election_port: u16,
    /// The address of its server line and client port.
    pub ip: std::net::IpAddr,
    /// The namespace it runs in (`ip netns exec`), if any.
    pub netns: Option<String>,
    /// The zoo.cfg extras; ZooKeeper reads some of them as plain system properties only.
    extra: Vec<(String, String)>,
    child: Option<Child>,
    starts: u32,
}

impl Member {
    pub fn addr(&self) -> String {
        std::net::SocketAddr::new(self.ip, self.client_port).to_string()
    }

    pub fn cfg_path(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn command(&self) -> Command {
        let inner = self.command_on_host();
        let Some(ns) = &self.netns else { return inner };
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(inner.get_program())
            .args(inner.get_args());
        cmd
    }

    fn command_on_host(&self) -> Command {
        match target() {
            Target::Corral => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
                cmd.arg("--config").arg(self.cfg_path());
                cmd
            }
            Target::ZooKeeper => zookeeper_command(
                &self.dir,
                &self.cfg_path(),
                &self.extra,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ),
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "member {} still running", self.sid);
        let child = spawn_watchdog(&self.command(), &self.dir, &self.log_path())
            .unwrap_or_else(|e| panic!("member {}: {e}", self.sid));
        self.child = Some(child);
        self.starts += 1;
    }

    /// Some(status) if the process has exited (it is then forgotten).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => {
                let pgid = c.id() as i32;
                self.child = None;
                wait_group_gone(pgid, Duration::from_secs(5));
                Some(st)
            }
            _ => None,
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            signal_group(pgid, "KILL");
            let _ = child.kill();
            let _ = child.wait();
            wait_group_gone(pgid, Duration::from_secs(10));
        }
    }

    fn log_tail(&self, max: usize) -> String {
        match std::fs::read(self.log_path()) {
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(max);
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            }
            Err(e) => format!("<no log: {e}>"),
        }
    }
}

/// A running ensemble. Dropping it SIGKILLs every member; temp dirs are removed unless the
/// test panicked (or `CORRAL_TEST_KEEP=1`), in which case their paths are printed.
pub struct Ensemble {
    pub opts: EnsembleOpts,
    pub members: Vec<Member>,
    /// `(from, to, kind)`: the proxy member `from` dials to reach `to`'s `kind` port.
    links: Vec<(usize, usize, Kind, Proxy)>,
}

/// Process-wide lock: one ensemble at a time per test binary. Take it before the test's
/// time bound starts (`let _serial = serial().await; timed(..).await`).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

impl Ensemble {
    /// Starts every member (all at once, in no particular order) and waits, bounded, until
    /// each answers `srvr` with a Mode. Retries with fresh ports if a member exits early
    /// (port races with parallel tests).
    pub async fn start(opts: EnsembleOpts) -> Ensemble {
        assert!(opts.voters >= 1);
        if opts.partitionable {
            assert_eq!(
                tokio::runtime::Handle::current().runtime_flavor(),
                tokio::runtime::RuntimeFlavor::MultiThread,
                "partitionable ensembles need #[tokio::test(flavor = \"multi_thread\")]"
            );
        }
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let mut ens = Ensemble::prepare(opts.clone()).await;
            for m in ens.members.iter_mut() {
                m.spawn();
            }
            match ens.wait_all_modes(Duration::from_secs(60)).await {
                Ok(()) => return ens,
                Err((e, early)) => {
                    last_err = e;
                    if !early {
                        break;
                    }
                }
            }
        }
        panic!("ensemble did not start: {last_err}");
    }

    async fn prepare(opts: EnsembleOpts) -> Ensemble {
        let sids = opts.sid_list();
        if let Some(hosts) = &opts.hosts {
            assert_eq!(hosts.len(), sids.len(), "one host per member");
            assert!(!opts.partitionable, "hosts and partitionable do not mix");
        }
        // On separate hosts every member has the same three ports.
        let shared = opts
            .hosts
            .as_ref()
            .map(|_| (free_port(), free_port(), free_port()));
        let members: Vec<Member> = sids
            .iter()
            .enumerate()
            .map(|(i, &sid)| {
                let (client_port, quorum_port, election_port) =
                    shared.unwrap_or_else(|| (free_port(), free_port(), free_port()));
                let host = opts.hosts.as_ref().map(|h| h[i].clone());
                Member {
                    sid,
                    observer: i >= opts.voters,
                    dir: make_temp_dir(),
                    client_port,
                    quorum_port,
                    election_port,
                    ip: host.as_ref().map_or([127, 0, 0, 1].into(), |h| h.ip),
                    netns: host.and_then(|h| h.netns),
                    extra: opts.extra.clone(),
                    child: None,
                    starts: 0,
                }
            })
            .collect();
        let mut links = Vec::new();
        if opts.partitionable {
            for from in 0..members.len() {
                for (to, m) in members.iter().enumerate() {
                    if from == to {
                        continue;
                    }
                    for kind in [Kind::Quorum, Kind::Election] {
                        let port = match kind {
                            Kind::Quorum => m.quorum_port,
                            Kind::Election => m.election_port,
                        };
                        let real = format!("127.0.0.1:{port}").parse().unwrap();
                        // Refusals are retried: see Proxy::start_with_retry.
                        let proxy = Proxy::start_with_retry(real, Duration::from_secs(3)).await;
                        links.push((from, to, kind, proxy));
                    }
                }
            }
        }
        let ens = Ensemble {
            opts,
            members,
            links,
        };
        for i in 0..ens.members.len() {
            ens.write_cfg(i);
        }
        ens
    }

    fn link_port(&self, from: usize, to: usize, kind: Kind) -> u16 {
        if from == to || !self.opts.partitionable {
            let m = &self.members[to];
            return match kind {
                Kind::Quorum => m.quorum_port,
                Kind::Election => m.election_port,
            };
        }
        self.links
            .iter()
            .find(|(f, t, k, _)| *f == from && *t == to && *k == kind)
            .map(|l| l.3.port)
            .expect("proxy for link")
    }

    fn write_cfg(&self, i: usize) {
        let m = &self.members[i];
        let o = &self.opts;
        let mut cfg = String::new();
        let _ = writeln!(cfg, "tickTime={}", o.tick_time);
        let _ = writeln!(cfg, "initLimit={}", o.init_limit);
        let _ = writeln!(cfg, "syncLimit={}", o.sync_limit);
        let _ = writeln!(cfg, "dataDir={}", m.dir.join("data").display());
        let _ = writeln!(cfg, "clientPort={}", m.client_port);
        let _ = writeln!(cfg, "clientPortAddress={}", m.ip);
        cfg.push_str("admin.enableServer=false\n");
        let _ = writeln!(cfg, "metricsProvider.className={}", super::NO_METRICS);
        cfg.push_str("4lw.commands.whitelist=*\n");
        if m.observer {
            cfg.push_str("peerType=observer\n");
        }
        for (j, other) in self.members.iter().enumerate() {
            let _ = writeln!(
                cfg,
                "server.{}={}:{}:{}{};{}:{}",
                other.sid,
                other.ip,
                self.link_port(i, j, Kind::Quorum),
                self.link_port(i, j, Kind::Election),
                if other.observer { ":observer" } else { "" },
                other.ip,
                other.client_port
            );
        }
        for (k, v) in &o.extra {
            let _ = writeln!(cfg, "{k}={v}");
        }
        for (_, k, v) in o.member_extra.iter().filter(|e| e.0 == i) {
            let _ = writeln!(cfg, "{k}={v}");
        }
        std::fs::write(m.cfg_path(), cfg).expect("write zoo.cfg");
        std::fs::write(m.dir.join("data").join("myid"), format!("{}\n", m.sid))
            .expect("write myid");
    }

    /// Waits until every member answers `srvr` with a Mode. Err((why, some member exited)).
    async fn wait_all_modes(&mut self, limit: Duration) -> Result<(), (String, bool)> {
        let deadline = Instant::now() + limit;
        loop {
            for i in 0..self.members.len() {
                if let Some(st) = self.members[i].exited() {
                    return Err((
                        format!(
                            "member {i} (sid {}) exited early with {st}\n--- its log tail ---\n{}",
                            self.members[i].sid,
                            self.members[i].log_tail(4000)
                        ),
                        true,
                    ));
                }
            }
            let modes = self.modes().await;
            if modes.iter().all(Option::is_some) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err((
                    format!(
                        "not every member has a mode within {limit:?}: {modes:?}\n{}",
                        {
                            let mut s = String::new();
                            for i in 0..self.members.len() {
                                let _ = write!(
                                    s,
                                    "--- member {i} log tail ---\n{}\n",
                                    self.log_tail(i)
                                );
                            }
                            s
                        }
                    ),
                    false,
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn sid(&self, i: usize) -> u64 {
        self.members[i].sid
    }

    /// Client address of member `i`.
    pub fn addr(&self, i: usize) -> String {
        self.members[i].addr()
    }

    /// Every member's client address, comma separated.
    pub fn connect_string(&self) -> String {
        self.connect_string_of(&(0..self.len()).collect::<Vec<_>>())
    }

    /// The client addresses of `members`, comma separated.
    pub fn connect_string_of(&self, members: &[usize]) -> String {
        members
            .iter()
            .map(|&i| self.addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Majority of the voters.
    pub fn quorum(&self) -> usize {
        self.opts.voters / 2 + 1
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i].exited();
        self.members[i].child.is_some()
    }

    /// Member `i`'s mode from `srvr`; None if it is not serving or does not answer (3 s).
    pub async fn mode(&self, i: usize) -> Option<Mode> {
        let reply = four_letter_timeout(&self.addr(i), "srvr", Duration::from_secs(3))
            .await
            .ok()?;
        parse_mode(&reply)
    }

    pub async fn modes(&self) -> Vec<Option<Mode>> {
        let mut out = Vec::new();
        for i in 0..self.len() {
            out.push(self.mode(i).await);
        }
        out
    }

    /// Waits until exactly one member says leader and a quorum of voters serves (leader or
    /// follower); returns the leader's index. Panics after `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let modes = self.modes().await;
            let leaders: Vec<usize> = (0..self.len())
                .filter(|&i| modes[i] == Some(Mode::Leader))
                .collect();
            let serving_voters = (0..self.opts.voters)
                .filter(|&i| matches!(modes[i], Some(Mode::Leader | Mode::Follower)))
                .count();
            if leaders.len() == 1 && serving_voters >= self.quorum() {
                return leaders[0];
            }
            if Instant::now() > deadline {
                panic!(
                    "no single leader with a serving quorum within {timeout:?}: modes {modes:?}\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until member `i` answers `srvr` with a Mode. Panics after `timeout`.
    pub async fn wait_serving(&self, i: usize, timeout: Duration) -> Mode {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.mode(i).await {
                return m;
            }
            if Instant::now() > deadline {
                panic!(
                    "member {i} (sid {}) not serving within {timeout:?}\n{}",
                    self.sid(i),
                    self.log_tail(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until member `i` stops serving (`srvr` without a Mode, or no answer); returns
    /// how long that took. Panics after `timeout`.
    pub async fn wait_not_serving(&self, i: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.mode(i).await.is_none() {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "member {i} (sid {}) still serving after {timeout:?}\n{}",
                    self.sid(i),
                    self.log_tail(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs member `i` (its whole process group) and reaps it.
    pub fn kill9(&mut self, i: usize) {
        self.members[i].kill9();
    }

    /// Starts member `i` again with the same dir and zoo.cfg, and waits (60 s) until its
    /// client port answers a four-letter word. It may not be serving yet (no quorum, still
    /// syncing): use [`Ensemble::wait_serving`] for that.
    pub async fn restart(&mut self, i: usize) {
        self.members[i].spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.members[i].exited() {
                panic!(
                    "member {i} (sid {}) exited on restart with {st}\n{}",
                    self.sid(i),
                    self.log_tail(i)
                );
            }
            if let Ok(r) = four_letter_timeout(&self.addr(i), "srvr", Duration::from_secs(2)).await
            {
                if !r.is_empty() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "member {i} (sid {}) does not answer after restart\n{}",
                    self.sid(i),
                    self.log_tail(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Cuts every link between member `i` and the others, both directions: existing
    /// connections are severed and new ones black-holed. Needs `partitionable`.
    pub fn isolate(&self, i: usize) {
        assert!(
            self.opts.partitionable,
            "isolate needs a partitionable ensemble"
        );
        for (from, to, _, p) in &self.links {
            if *from == i || *to == i {
                p.cut();
            }
        }
    }

    /// Like [`Ensemble::isolate`], but silent: nothing is closed, traffic just stops both
    /// ways (new connections are black-holed too), so the members only notice through their
    /// own timeouts (ZooKeeper: syncLimit ticks).
    pub fn isolate_silently(&self, i: usize) {
        assert!(
            self.opts.partitionable,
            "isolate needs a partitionable ensemble"
        );
        for (from, to, _, p) in &self.links {
            if *from == i || *to == i {
                p.freeze();
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for (_, _, _, p) in &self.links {
            p.unfreeze();
        }
    }

    /// Last 4000 bytes of member `i`'s output.
    pub fn log_tail(&self, i: usize) -> String {
        self.members[i].log_tail(4000)
    }

    pub fn log_tails(&self) -> String {
        let mut s = String::new();
        for i in 0..self.len() {
            let _ = write!(
                s,
                "--- member {i} (sid {}) log tail ---\n{}\n",
                self.sid(i),
                self.members[i].log_tail(1500)
            );
        }
        s
    }

    /// A client of member `i` only.
    pub async fn client(&self, i: usize) -> zk::Client {
        super::connect(&self.addr(i)).await
    }

    /// A client of the whole ensemble (any member).
    pub async fn client_any(&self) -> zk::Client {
        super::connect(&self.connect_string()).await
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        // Signal everyone first, then reap: faster than one by one.
        for m in &self.members {
            if let Some(c) = &m.child {
                signal_group(c.id() as i32, "KILL");
            }
        }
        for m in self.members.iter_mut() {
            m.kill9();
        }
        self.links.clear();
        let keep = std::env::var("CORRAL_TEST_KEEP")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        for m in &self.members {
            if std::thread::panicking() || keep {
                eprintln!(
                    "[harness] kept ensemble member sid {} dir {} (log: {})",
                    m.sid,
                    m.dir.display(),
                    m.log_path().display()
                );
            } else {
                let _ = std::fs::remove_dir_all(&m.dir);
            }
        }
    }
}

/// One znode as [`dump_tree`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub data: Vec<u8>,
    /// `scheme:id:perms` (perms as ZooKeeper's bit mask), in the server's order.
    pub acl: Vec<String>,
    pub stat: zk::Stat,
}

pub type Tree = BTreeMap<String, Node>;

/// Every znode of the member at `addr` (one member, not a connect string): a fresh session,
/// `sync("/")` so the member has caught up with the leader, then a walk from `/`.
pub async fn dump_tree(addr: &str) -> Tree {
    let client = super::connect(addr).await;
    let t = Duration::from_secs(20);
    super::within(t, "sync /", client.sync("/"))
        .await
        .unwrap_or_else(|e| panic!("sync / on {addr}: {e}"));
    let mut tree = Tree::new();
    let mut stack = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        let (data, stat) = super::within(t, "get_data", client.get_data(&path))
            .await
            .unwrap_or_else(|e| panic!("get_data {path} on {addr}: {e}"));
        let (acls, _) = super::within(t, "get_acl", client.get_acl(&path))
            .await
            .unwrap_or_else(|e| panic!("get_acl {path} on {addr}: {e}"));
        let children = super::within(t, "list_children", client.list_children(&path))
            .await
            .unwrap_or_else(|e| panic!("list_children {path} on {addr}: {e}"));
        let acl = acls
            .iter()
            .map(|a| {
                format!(
                    "{}:{}:{}",
                    a.scheme(),
                    a.id(),
                    [
                        zk::Permission::READ,
                        zk::Permission::WRITE,
                        zk::Permission::CREATE,
                        zk::Permission::DELETE,
                        zk::Permission::ADMIN,
                    ]
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| a.permission().has(**p))
                    .map(|(bit, _)| 1 << bit)
                    .sum::<i32>()
                )
            })
            .collect();
        for c in children {
            stack.push(if path == "/" {
                format!("/{c}")
            } else {
                format!("{path}/{c}")
            });
        }
        tree.insert(path, Node { data, acl, stat });
    }
    tree
}

/// A readable list of the differences between two dumps (empty if equal); at most `max`
/// entries.
pub fn diff_trees(a_name: &str, a: &Tree, b_name: &str, b: &Tree, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let show = |d: &[u8]| -> String {
        match std::str::from_utf8(d) {
            Ok(s) if s.len() <= 80 => format!("{s:?}"),
            _ => format!("<{} bytes>", d.len()),
        }
    };
    for (path, na) in a {
        if out.len() >= max {
            break;
        }
        let Some(nb) = b.get(path) else {
            out.push(format!("{path}: only on {a_name}"));
            continue;
        };
        if na == nb {
            continue;
        }
        let mut d = Vec::new();
        if na.data != nb.data {
            d.push(format!("data {} vs {}", show(&na.data), show(&nb.data)));
        }
        if na.acl != nb.acl {
            d.push(format!("acl {:?} vs {:?}", na.acl, nb.acl));
        }
        let (sa, sb) = (&na.stat, &nb.stat);
        let fields: [(&str, i64, i64); 11] = [
            ("czxid", sa.czxid, sb.czxid),
            ("mzxid", sa.mzxid, sb.mzxid),
            ("pzxid", sa.pzxid, sb.pzxid),
            ("ctime", sa.ctime, sb.ctime),
            ("mtime", sa.mtime, sb.mtime),
            ("version", sa.version.into(), sb.version.into()),
            ("cversion", sa.cversion.into(), sb.cversion.into()),
            ("aversion", sa.aversion.into(), sb.aversion.into()),
            ("ephemeralOwner", sa.ephemeral_owner, sb.ephemeral_owner),
            ("dataLength", sa.data_length.into(), sb.data_length.into()),
            (
                "numChildren",
                sa.num_children.into(),
                sb.num_children.into(),
            ),
        ];
        for (name, x, y) in fields {
            if x != y {
                d.push(format!("{name} {x:#x} vs {y:#x}"));
            }
        }
        out.push(format!("{path}: {} ({a_name} vs {b_name})", d.join(", ")));
    }
    for path in b.keys() {
        if out.len() >= max {
            break;
        }
        if !a.contains_key(path) {
            out.push(format!("{path}: only on {b_name}"));
        }
    }
    out
}

/// ZooKeeper's per-member membership node (see the module docs).
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// Dumps every member (all must be running) and asserts that the dumps are identical, node
/// by node and field by field (but for [`CONFIG_NODE`]'s mtime, and its data in a
/// partitionable ensemble); returns the common tree (with those fields zeroed).
pub async fn assert_same_trees(ens: &Ensemble) -> Tree {
    let mut dumps = Vec::new();
    for i in 0..ens.len() {
        dumps.push(dump_tree(&ens.addr(i)).await);
    }
    for d in dumps.iter_mut() {
        if let Some(n) = d.get_mut(CONFIG_NODE) {
            n.stat.mtime = 0;
            if ens.opts.partitionable {
                n.data.clear();
                n.stat.data_length = 0;
            }
        }
    }
    let mut report = String::new();
    for i in 1..dumps.len() {
        let d = diff_trees(
            &format!("member {} (sid {})", 0, ens.sid(0)),
            &dumps[0],
            &format!("member {i} (sid {})", ens.sid(i)),
            &dumps[i],
            40,
        );
        if !d.is_empty() {
            let _ = writeln!(report, "member 0 vs member {i}:");
            for line in d {
                let _ = writeln!(report, "  {line}");
            }
        }
    }
    if !report.is_empty() {
        panic!("members' trees differ:\n{report}");
    }
    dumps.swap_remove(0)
}
