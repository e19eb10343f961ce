//! The HTTP admin server's commands: ZooKeeper 3.9's names and aliases (its `Commands.java`),
//! which need a serving server, which need an authenticated caller, GET or POST, and the JSON
//! each answers, built from the same facts a four-letter word prints (`AdminData`). Pure: the
//! runtime (src/server/admin_http.rs) gathers the facts, performs side effects (a stats
//! reset, a snapshot) and sends what these functions return.
//!
//! Left out: `system_properties` (a JVM's system properties; corral has no JVM). They answer "Unknown command", as on a ZooKeeper without
//! them, and `GET /commands` does not list them.

use super::data::{AdminData, ConnectionInfo, ServerMode};
use super::json::{CommandResponse, Json, Obj};
use super::{ENV_NA, NOT_SERVING};
use crate::config::{Config, PeerRole};

/// A command corral's admin server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Configuration,
    Connections,
    Dirs,
    Dump,
    Environment,
    GetTraceMask,
    Hash,
    InitialConfiguration,
    IsReadOnly,
    LastSnapshot,
    Leader,
    Monitor,
    Restore,
    Ruok,
    ServerStats,
    SetTraceMask,
    Snapshot,
    StatReset,
    ConnectionStatReset,
    Observers,
    ObserverConnectionStatReset,
    Stats,
    VotingView,
    WatchSummary,
    Watches,
    WatchesByPath,
    ZabState,
    /// corral's own: the log filter (`crate::logging`).
    LogLevel,
}

/// How a command is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A command's names (primary first), and its rules.
#[derive(Debug)]
pub struct Spec {
    pub cmd: Cmd,
    pub names: &'static [&'static str],
    /// Answers "not currently serving" while the server does not serve (ZooKeeper's
    /// `isServerRequired`).
    pub server_required: bool,
    /// Needs an `Authorization` header whose ids have ALL on `/` (ZooKeeper's `AuthRequest`).
    pub auth: bool,
    pub method: Method,
}

const fn get(cmd: Cmd, names: &'static [&'static str], server_required: bool) -> Spec {
    Spec {
        cmd,
        names,
        server_required,
        auth: false,
        method: Method::Get,
    }
}

/// Every command, in ZooKeeper's spelling.
pub const COMMANDS: &[Spec] = &[
    get(
        Cmd::Configuration,
        &["configuration", "conf", "config"],
        true,
    ),
    get(Cmd::Connections, &["connections", "cons"], true),
    get(Cmd::Dirs, &["dirs"], true),
    get(Cmd::Dump, &["dump"], true),
    get(Cmd::Environment, &["environment", "env", "envi"], false),
    get(Cmd::GetTraceMask, &["get_trace_mask", "gtmk"], false),
    get(Cmd::Hash, &["hash"], true),
    get(
        Cmd::InitialConfiguration,
        &["initial_configuration", "icfg"],
        true,
    ),
    get(Cmd::IsReadOnly, &["is_read_only", "isro"], true),
    get(Cmd::LastSnapshot, &["last_snapshot", "lsnp"], true),
    get(Cmd::Leader, &["leader", "lead"], true),
    get(Cmd::Monitor, &["monitor", "mntr"], false),
    Spec {
        cmd: Cmd::Restore,
        names: &["restore", "rest"],
        server_required: true,
        auth: true,
        method: Method::Post,
    },
    get(Cmd::Ruok, &["ruok"], true),
    get(Cmd::ServerStats, &["server_stats", "srvr"], true),
    get(Cmd::SetTraceMask, &["set_trace_mask", "stmk"], false),
    Spec {
        cmd: Cmd::Snapshot,
        names: &["snapshot", "snap"],
        server_required: true,
        auth: true,
        method: Method::Get,
    },
    get(Cmd::StatReset, &["stat_reset", "srst"], true),
    get(
        Cmd::ConnectionStatReset,
        &["connection_stat_reset", "crst"],
        true,
    ),
    get(Cmd::Observers, &["observers", "obsr"], true),
    get(
        Cmd::ObserverConnectionStatReset,
        &["observer_connection_stat_reset", "orst"],
        true,
    ),
    get(Cmd::Stats, &["stats", "stat"], true),
    get(Cmd::VotingView, &["voting_view"], true),
    get(Cmd::WatchSummary, &["watch_summary", "wchs"], true),
    get(Cmd::Watches, &["watches", "wchc"], true),
    get(Cmd::WatchesByPath, &["watches_by_path", "wchp"], true),
    get(Cmd::ZabState, &["zabstate"], false),
    Spec {
        cmd: Cmd::LogLevel,
        names: &["log_level"],
        server_required: false,
        auth: true,
        method: Method::Get,
    },
];

/// The command a name (primary or alias) names.
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|s| s.names.contains(&name))
}

impl Spec {
    pub fn primary(&self) -> &'static str {
        self.names[0]
    }
}

/// `GET <commandURL>`: a link per primary name, sorted, as ZooKeeper's `commandLinks`.
pub fn command_links(command_url: &str) -> String {
    let mut names: Vec<&str> = COMMANDS.iter().map(Spec::primary).collect();
    names.sort_unstable();
    let mut out = String::new();
    for n in names {
        out.push_str(&format!("<a href=\"{command_url}/{n}\">{n}</a>\n<br/>\n"));
    }
    out
}

/// Facts a few commands need beyond `AdminData`.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The zoo.cfg's text as read at startup (`initial_configuration`).
    pub initial_config: String,
    /// The newest snapshot on disk: its zxid and its file's modification time in seconds.
    pub last_snapshot: Option<(i64, u64)>,
}

/// The answer of a GET command that reads facts (everything but `snapshot`, `restore`,
/// `set_trace_mask` and `log_level`, which the runtime answers). The caller has done the
/// command's side effect (a `stat_reset`'s reset).
pub fn render_json(spec: &Spec, data: &AdminData, cfg: &Config, ctx: &Context) -> CommandResponse {
    let mut r = CommandResponse::new(spec.primary());
    if spec.server_required && !data.serving {
        return CommandResponse::error(spec.primary(), NOT_SERVING, 200);
    }
    let d = &mut r.data;
    let st = &data.stats;
    match spec.cmd {
        Cmd::Ruok
        | Cmd::StatReset
        | Cmd::ConnectionStatReset
        | Cmd::ObserverConnectionStatReset => {}
        Cmd::Observers => {
            // A leader's synced observers; anyone else (corral has no observer masters) none,
            // as ZooKeeper answers without one.
            d.put("synced_observers", data.observers.len() as u64);
            let list: Vec<Json> = data.observers.iter().map(observer).collect();
            d.put("observers", list);
        }
        Cmd::Configuration => configuration(d, data, cfg),
        Cmd::Connections => {
            let conns: Vec<Json> = st
                .connections
                .iter()
                .map(|c| connection(c, false))
                .collect();
            d.put("connections", Json::Arr(conns));
            d.put("secure_connections", Json::Arr(vec![]));
        }
        Cmd::Dirs => {
            d.put("datadir_size", data.dirs.datadir_size);
            d.put("logdir_size", data.dirs.logdir_size);
        }
        Cmd::Dump => {
            let mut exp = Obj::new();
            for b in &data.dump.session_buckets {
                exp.put(&b.expire_at_ms.to_string(), b.session_ids.clone());
            }
            let mut eph = Obj::new();
            for (sid, paths) in &data.dump.ephemerals {
                eph.put(&sid.to_string(), paths.clone());
            }
            d.put("expiry_time_to_session_ids", exp);
            d.put("session_id_to_ephemeral_paths", eph);
        }
        Cmd::Environment => environment(d, data),
        Cmd::GetTraceMask => {
            d.put("tracemask", data.trace_mask);
        }
        Cmd::Hash => {
            let digests: Vec<Json> = data
                .digests
                .iter()
                .map(|z| {
                    let mut o = Obj::new();
                    o.put("zxid", z.zxid).put("digest", z.digest);
                    o.into()
                })
                .collect();
            d.put("digests", Json::Arr(digests));
        }
        Cmd::InitialConfiguration => {
            d.put("initial_configuration", ctx.initial_config.as_str());
        }
        Cmd::IsReadOnly => {
            d.put("read_only", st.mode == ServerMode::ReadOnly);
        }
        Cmd::LastSnapshot => {
            let (zxid, ts) = ctx.last_snapshot.map_or((-1, -1), |(z, t)| (z, t as i64));
            // Long.toHexString: two's complement for -1.
            d.put("zxid", format!("{:x}", zxid));
            d.put("timestamp", ts);
        }
        Cmd::Leader => leader(d, data, cfg),
        Cmd::Monitor => monitor(d, data),
        Cmd::ServerStats | Cmd::Stats => {
            server_stats(d, data);
            if spec.cmd == Cmd::Stats {
                let conns: Vec<Json> = st.connections.iter().map(|c| connection(c, true)).collect();
                d.put("connections", Json::Arr(conns));
                d.put("secure_connections", Json::Arr(vec![]));
            }
        }
        Cmd::VotingView => {
            let mut view = Obj::new();
            if st.mode.is_quorum_member() || st.mode == ServerMode::ReadOnly {
                for s in cfg.servers.values() {
                    if s.role != PeerRole::Participant {
                        continue;
                    }
                    let host = bracket_ipv6(&s.host);
                    let mut v = Obj::new();
                    v.put(
                        "server_addresses",
                        vec![format!("{host}:{}", s.quorum_port)],
                    );
                    v.put(
                        "election_addresses",
                        vec![format!("{host}:{}", s.election_port)],
                    );
                    let client = s.client.as_ref().map_or(String::new(), |c| {
                        format!(
                            "{}:{}",
                            bracket_ipv6(c.host.as_deref().unwrap_or("0.0.0.0")),
                            c.port
                        )
                    });
                    v.put("client_address", client);
                    v.put("learner_type", "participant");
                    view.put(&s.id.to_string(), v);
                }
            }
            d.put("current_config", view);
        }
        Cmd::Watches => {
            let mut o = Obj::new();
            for (sid, paths) in &data.watches.by_session {
                o.put(&sid.to_string(), paths.clone());
            }
            d.put("session_id_to_watched_paths", o);
        }
        Cmd::WatchesByPath => {
            let mut o = Obj::new();
            for (path, sids) in &data.watches.by_path {
                o.put(path, sids.clone());
            }
            d.put("path_to_session_ids", o);
        }
        Cmd::WatchSummary => {
            d.put("num_connections", data.watches.connections);
            d.put("num_paths", data.watches.paths);
            d.put("num_total_watches", data.watches.total);
        }
        Cmd::ZabState => zab_state(d, data, cfg),
        Cmd::Snapshot | Cmd::Restore | Cmd::SetTraceMask | Cmd::LogLevel => {
            return CommandResponse::error(
                spec.primary(),
                "answered by the server, not from figures",
                500,
            )
        }
    }
    r
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `ZooKeeperServerConf.toMap()`.
fn configuration(d: &mut Obj, data: &AdminData, cfg: &Config) {
    let snap_dir = if data.dirs.snap_dir.as_os_str().is_empty() {
        cfg.data_dir.as_path()
    } else {
        data.dirs.snap_dir.as_path()
    };
    let log_dir = if data.dirs.log_dir.as_os_str().is_empty() {
        cfg.log_dir()
    } else {
        data.dirs.log_dir.as_path()
    };
    // A standalone ZooKeeperServer reports id 0 even when a myid file exists.
    let server_id = if data.stats.mode == ServerMode::Standalone {
        0
    } else {
        cfg.my_id.unwrap_or(0)
    };
    d.put("client_port", data.stats.client_port as u64);
    d.put("data_dir", snap_dir.display().to_string());
    d.put("data_log_dir", log_dir.display().to_string());
    d.put("tick_time", cfg.tick_time_ms);
    d.put("max_client_cnxns", cfg.max_client_cnxns);
    d.put("min_session_timeout", cfg.min_session_timeout_ms);
    d.put("max_session_timeout", cfg.max_session_timeout_ms);
    d.put("server_id", server_id);
    d.put("client_port_listen_backlog", cfg.client_port_listen_backlog);
}

/// `LearnerHandler.getLearnerHandlerInfo`: `established` is a `Date`, which Jackson writes
/// as epoch milliseconds.
fn observer(o: &super::ObserverInfo) -> Json {
    let mut j = Obj::new();
    let remote = match &o.remote {
        Some(a) => {
            let mut s = String::new();
            super::java::write_java_socket_addr(&mut s, a);
            s
        }
        None => "<null>".to_string(),
    };
    j.put("remote_socket_address", remote);
    j.put("sid", o.sid);
    j.put("established", o.established_ms);
    j.put("queued_packets", o.queued_packets);
    j.put("queued_packets_size", o.queued_packets_size);
    j.put("packets_received", o.packets_received);
    j.put("packets_sent", o.packets_sent);
    j.put("requests", o.requests);
    j.put("last_zxid", o.last_zxid);
    j.into()
}

/// `ServerCnxn.getConnectionInfo(brief)`.
fn connection(c: &ConnectionInfo, brief: bool) -> Json {
    let mut o = Obj::new();
    o.put("remote_socket_address", c.remote.to_string());
    o.put("interest_ops", c.interest_ops);
    o.put("outstanding_requests", c.outstanding_requests);
    o.put("packets_received", c.packets_received);
    o.put("packets_sent", c.packets_sent);
    if !brief {
        o.put("session_id", c.session_id);
        o.put("last_operation", c.last_op);
        o.put("established", c.established_ms);
        o.put("session_timeout", c.session_timeout_ms);
        o.put("last_cxid", c.last_cxid);
        o.put("last_zxid", c.last_zxid);
        o.put("last_response_time", c.last_response_ms);
        o.put("last_latency", c.last_latency_ms);
        o.put("min_latency", c.latency.min());
        o.put("avg_latency", c.latency.avg_truncated());
        o.put("max_latency", c.latency.max());
    }
    o.into()
}

/// `Environment.list()`: `envi`'s keys, with ZooKeeper's `<NA>` for the JVM's.
fn environment(d: &mut Obj, data: &AdminData) {
    let env = &data.env;
    let mb = |v: Option<u64>| v.map_or_else(|| ENV_NA.to_string(), |n| format!("{n}MB"));
    d.put("zookeeper.version", data.stats.version.as_str());
    d.put("host.name", env.host_name.as_str());
    for k in [
        "java.version",
        "java.vendor",
        "java.home",
        "java.class.path",
        "java.library.path",
        "java.io.tmpdir",
        "java.compiler",
    ] {
        d.put(k, ENV_NA);
    }
    d.put("os.name", env.os_name.as_str());
    d.put("os.arch", env.os_arch.as_str());
    d.put("os.version", env.os_version.as_str());
    d.put("user.name", env.user_name.as_str());
    d.put("user.home", env.user_home.as_str());
    d.put("user.dir", env.user_dir.as_str());
    d.put("os.memory.free", mb(env.memory_free_mb));
    d.put("os.memory.max", mb(env.memory_max_mb));
    d.put("os.memory.total", mb(env.memory_total_mb));
    for (k, v) in &env.extra {
        d.put(k, v.as_str());
    }
}

/// `leader`: only quorum members know one.
fn leader(d: &mut Obj, data: &AdminData, cfg: &Config) {
    let st = &data.stats;
    if !st.mode.is_quorum_member() {
        d.put("error", "server is not initialized");
        return;
    }
    let id = st.leader_id;
    d.put("is_leader", st.mode == ServerMode::Leader);
    d.put("leader_id", id.map_or(-1, |i| i as i64));
    let ip = id
        .and_then(|i| cfg.servers.get(&i))
        .map_or(String::new(), |s| s.host.clone());
    d.put("leader_ip", ip);
}

/// `mntr`'s figures as JSON numbers (the same keys as the four-letter word, without `zk_`),
/// then corral's own.
fn monitor(d: &mut Obj, data: &AdminData) {
    let st = &data.stats;
    let fd = |v: Option<u64>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    d.put("version", st.version.as_str());
    d.put("server_state", st.mode.as_str());
    if st.mode.is_quorum_member() {
        if let Some(p) = &st.peer_state {
            d.put("peer_state", p.as_str());
        }
        if let Some(n) = st.quorum_size {
            d.put("quorum_size", n);
        }
    }
    d.put("avg_latency", st.latency.avg());
    d.put("max_latency", st.latency.max());
    d.put("min_latency", st.latency.min());
    d.put("packets_received", st.packets_received);
    d.put("packets_sent", st.packets_sent);
    d.put("num_alive_connections", st.num_alive_connections);
    d.put("outstanding_requests", st.outstanding_requests);
    d.put("uptime", st.uptime_ms);
    d.put("znode_count", st.node_count);
    d.put("watch_count", st.watch_count);
    d.put("ephemerals_count", st.ephemerals_count);
    d.put("approximate_data_size", st.approximate_data_size);
    d.put("global_sessions", st.global_sessions);
    d.put("local_sessions", st.local_sessions);
    d.put("open_file_descriptor_count", fd(st.open_fd_count));
    d.put("max_file_descriptor_count", fd(st.max_fd_count));
    if let (ServerMode::Leader, Some(l)) = (st.mode, &st.leader) {
        d.put("learners", l.learners);
        d.put("synced_followers", l.synced_followers);
        d.put("synced_non_voting_followers", l.synced_non_voting_followers);
        d.put("synced_observers", l.synced_observers);
        d.put("pending_syncs", l.pending_syncs);
        d.put("leader_uptime", l.leader_uptime_ms);
        d.put("last_proposal_size", l.proposal_size_last);
        d.put("max_proposal_size", l.proposal_size_max);
        d.put("min_proposal_size", l.proposal_size_min);
    }
    for (k, v) in &st.extra_metrics {
        d.put(k, number_or_string(v));
    }
}

/// A figure printed as text (corral's `mntr` extras) as a JSON number where it is one.
fn number_or_string(v: &str) -> Json {
    if let Ok(n) = v.parse::<i64>() {
        Json::Int(n)
    } else if let Ok(n) = v.parse::<u64>() {
        Json::UInt(n)
    } else if let Ok(f) = v.parse::<f64>() {
        Json::Float(f)
    } else {
        Json::Str(v.to_string())
    }
}

/// `BufferStats` of response sizes, which corral does not keep: ZooKeeper's values before the
/// first response.
fn no_buffer_stats() -> Obj {
    let mut o = Obj::new();
    o.put("last_buffer_size", -1i64)
        .put("min_buffer_size", -1i64)
        .put("max_buffer_size", -1i64);
    o
}

/// `server_stats` (and the start of `stats`): Jackson's view of ZooKeeper's `ServerStats`.
fn server_stats(d: &mut Obj, data: &AdminData) {
    let st = &data.stats;
    let mut s = Obj::new();
    s.put("packets_sent", st.packets_sent);
    s.put("packets_received", st.packets_received);
    s.put("fsync_threshold_exceed_count", 0u64);
    s.put("client_response_stats", no_buffer_stats());
    s.put("data_dir_size", data.dirs.datadir_size);
    s.put("log_dir_size", data.dirs.logdir_size);
    s.put("provider_null", false);
    s.put("server_state", st.mode.as_str());
    s.put("last_processed_zxid", st.last_zxid);
    s.put("outstanding_requests", st.outstanding_requests);
    s.put("avg_latency", st.latency.avg());
    s.put("max_latency", st.latency.max());
    s.put("min_latency", st.latency.min());
    s.put("num_alive_client_connections", st.num_alive_connections);
    s.put("uptime", st.uptime_ms);
    s.put("auth_failed_count", 0u64);
    s.put("non_mtlsremote_conn_count", 0u64);
    s.put("non_mtlslocal_conn_count", 0u64);
    d.put("version", st.version.as_str());
    d.put("read_only", st.mode == ServerMode::ReadOnly);
    d.put("server_stats", s);
    d.put("client_response", no_buffer_stats());
    if let (ServerMode::Leader, Some(l)) = (st.mode, &st.leader) {
        let mut p = Obj::new();
        p.put("last_buffer_size", l.proposal_size_last)
            .put("min_buffer_size", l.proposal_size_min)
            .put("max_buffer_size", l.proposal_size_max);
        d.put("proposal_stats", p);
    }
    d.put("node_count", st.node_count);
}

/// `zabstate`: the Zab phase of a quorum member, from its peer state (`following -
/// broadcast`).
fn zab_state(d: &mut Obj, data: &AdminData, cfg: &Config) {
    let st = &data.stats;
    let me = cfg.my_server();
    if !st.mode.is_quorum_member() || me.is_none() {
        d.put("voting", false);
        d.put("zabstate", "");
        return;
    }
    let me = me.expect("checked");
    let host = bracket_ipv6(&me.host);
    let phase = st
        .peer_state
        .as_deref()
        .and_then(|p| p.split(" - ").nth(1))
        .unwrap_or("election");
    let client = format!(
        "{}:{}",
        bracket_ipv6(&cfg.client_port_address.to_string()),
        st.client_port
    );
    d.put("myid", me.id);
    d.put("is_leader", st.mode == ServerMode::Leader);
    d.put("quorum_address", format!("{host}:{}", me.quorum_port));
    d.put("election_address", format!("{host}:{}", me.election_port));
    d.put("client_address", client);
    d.put("voting", me.role == PeerRole::Participant);
    d.put("last_zxid", format!("0x{:x}", st.last_zxid));
    d.put("zab_epoch", st.last_zxid >> 32);
    d.put("zab_counter", st.last_zxid & 0xffff_ffff);
    d.put("zabstate", phase);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        for (name, primary) in [
            ("stat", "stats"),
            ("srvr", "server_stats"),
            ("mntr", "monitor"),
            ("conf", "configuration"),
            ("config", "configuration"),
            ("cons", "connections"),
            ("wchc", "watches"),
            ("wchp", "watches_by_path"),
            ("wchs", "watch_summary"),
            ("envi", "environment"),
            ("env", "environment"),
            ("ruok", "ruok"),
            ("isro", "is_read_only"),
            ("lsnp", "last_snapshot"),
            ("lead", "leader"),
            ("icfg", "initial_configuration"),
            ("snap", "snapshot"),
            ("rest", "restore"),
        ] {
            assert_eq!(lookup(name).map(Spec::primary), Some(primary), "{name}");
        }
        assert!(lookup("nosuch").is_none());
        // Every name is unique.
        let mut all: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|s| s.names.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        // Only the state-changing commands need a caller who proves who they are.
        let guarded: Vec<&str> = COMMANDS
            .iter()
            .filter(|s| s.auth)
            .map(Spec::primary)
            .collect();
        assert_eq!(guarded, ["restore", "snapshot", "log_level"]);
    }

    #[test]
    fn links_are_sorted_primary_names() {
        let l = command_links("/commands");
        assert!(l.starts_with("<a href=\"/commands/configuration\">configuration</a>\n<br/>\n"));
        assert!(l.contains("<a href=\"/commands/zabstate\">zabstate</a>\n<br/>\n"));
        assert!(!l.contains("mntr"));
    }

    #[test]
    fn standalone_shapes() {
        let cfg = Config::default();
        let mut data = AdminData::default();
        data.stats.client_port = 2181;
        let ctx = Context::default();
        let j = |name: &str, data: &AdminData| {
            render_json(lookup(name).unwrap(), data, &cfg, &ctx).body()
        };
        assert_eq!(
            j("leader", &data),
            "{\n  \"error\" : \"server is not initialized\",\n  \"command\" : \"leader\"\n}"
        );
        assert_eq!(
            j("wchs", &data),
            "{\n  \"num_connections\" : 0,\n  \"num_paths\" : 0,\n  \"num_total_watches\" : 0,\n  \
             \"command\" : \"watch_summary\",\n  \"error\" : null\n}"
        );
        assert_eq!(
            j("zabstate", &data),
            "{\n  \"voting\" : false,\n  \"zabstate\" : \"\",\n  \"command\" : \"zabstate\",\n  \
             \"error\" : null\n}"
        );
        assert!(j("lsnp", &data).contains("\"zxid\" : \"ffffffffffffffff\""));
        data.serving = false;
        assert_eq!(
            j("stat", &data),
            "{\n  \"command\" : \"stats\",\n  \"error\" : \"This ZooKeeper instance is not \
             currently serving requests\"\n}"
        );
        // Not needing a server, mntr still answers.
        assert!(j("mntr", &data).contains("\"server_state\" : \"standalone\""));
    }

    #[test]
    fn quorum_member_shapes() {
        use crate::config::{ClientEndpoint, ServerSpec};
        let spec = |id: u64, role, client| ServerSpec {
            id,
            host: format!("zk{id}"),
            quorum_port: 2888,
            election_port: 3888,
            role,
            client,
        };
        let mut cfg = Config {
            my_id: Some(2),
            ..Config::default()
        };
        cfg.servers.insert(1, spec(1, PeerRole::Participant, None));
        let client = Some(ClientEndpoint {
            host: None,
            port: 2181,
        });
        cfg.servers
            .insert(2, spec(2, PeerRole::Participant, client));
        cfg.servers.insert(3, spec(3, PeerRole::Observer, None));
        let mut data = AdminData::default();
        data.stats.mode = ServerMode::Follower;
        data.stats.leader_id = Some(1);
        data.stats.peer_state = Some("following - broadcast".into());
        data.stats.last_zxid = 0x3_0000_0007;
        data.stats.client_port = 2181;
        let ctx = Context::default();
        let j = |name: &str| render_json(lookup(name).unwrap(), &data, &cfg, &ctx).to_json();
        let Json::Obj(lead) = j("leader") else {
            panic!()
        };
        assert_eq!(
            lead,
            vec![
                ("is_leader".to_string(), Json::Bool(false)),
                ("leader_id".to_string(), Json::Int(1)),
                ("leader_ip".to_string(), Json::Str("zk1".into())),
                ("command".to_string(), Json::Str("leader".into())),
                ("error".to_string(), Json::Null),
            ]
        );
        let zab = render_json(lookup("zabstate").unwrap(), &data, &cfg, &ctx);
        assert_eq!(
            zab.data.get("zabstate"),
            Some(&Json::Str("broadcast".into()))
        );
        assert_eq!(
            zab.data.get("last_zxid"),
            Some(&Json::Str("0x300000007".into()))
        );
        assert_eq!(zab.data.get("zab_epoch"), Some(&Json::Int(3)));
        assert_eq!(zab.data.get("zab_counter"), Some(&Json::Int(7)));
        assert_eq!(zab.data.get("voting"), Some(&Json::Bool(true)));
        assert_eq!(zab.data.get("myid"), Some(&Json::UInt(2)));
        let view = render_json(lookup("voting_view").unwrap(), &data, &cfg, &ctx).body();
        // Voting members only (the observer is not in the voting view).
        assert!(
            view.contains("\"1\" : {\n      \"server_addresses\" : [ \"zk1:2888\" ]"),
            "{view}"
        );
        assert!(
            view.contains("\"client_address\" : \"0.0.0.0:2181\""),
            "{view}"
        );
        assert!(!view.contains("\"3\""), "{view}");
        let conf = render_json(lookup("conf").unwrap(), &data, &cfg, &ctx);
        assert_eq!(conf.data.get("server_id"), Some(&Json::UInt(2)));
    }
}
