//! Byte-exact rendering of ZooKeeper 3.8/3.9's four-letter-word replies (`srvr`, `stat`,
//! `cons`, `conf`, `mntr`, `envi`, `dump`, `wch*`, ...) from the facts in `data`. Pure: the
//! runtime performs a command's side effect, then sends back what `render` returns.

use std::fmt::Write as _;

use super::data::{
    AdminData, ConnectionBucket, ConnectionInfo, DirsInfo, DumpInfo, EnvInfo, ExpiryBucket,
    ServerMode, ServerStats, WatchSummary, ZxidDigest,
};
use super::java::{java_date_utc, java_double, write_java_socket_addr};
use super::words::FourLetter;
use super::{ENV_NA, NOT_SERVING};
use crate::config::{Config, PeerRole};

/// The complete reply to `cmd`. Call only for allowed commands (see `is_allowed`,
/// `refusal`), after performing the command's side effect (`srst`, `crst`, `stmk`).
pub fn render(cmd: FourLetter, data: &AdminData, cfg: &Config) -> String {
    // ZooKeeper checks "is the server running" per command; these four do not.
    match cmd {
        FourLetter::Ruok => return "imok".to_string(),
        FourLetter::Envi => return render_envi(&data.stats.version, &data.env),
        FourLetter::Gtmk | FourLetter::Stmk => return data.trace_mask.to_string(),
        _ => {}
    }
    if !data.serving {
        return match cmd {
            FourLetter::Isro => "null".to_string(),
            FourLetter::Hash => NOT_SERVING.to_string(),
            _ => format!("{NOT_SERVING}\n"),
        };
    }
    match cmd {
        FourLetter::Ruok | FourLetter::Envi | FourLetter::Gtmk | FourLetter::Stmk => {
            unreachable!("answered above")
        }
        FourLetter::Srvr => render_srvr(&data.stats),
        FourLetter::Stat => render_stat(&data.stats),
        FourLetter::Cons => render_cons(&data.stats.connections),
        FourLetter::Conf => render_conf(&data.stats, &data.dirs, cfg),
        FourLetter::Mntr => render_mntr(&data.stats),
        FourLetter::Isro => render_isro(data.stats.mode).to_string(),
        FourLetter::Srst => "Server stats reset.\n".to_string(),
        FourLetter::Crst => "Connection stats reset.\n".to_string(),
        FourLetter::Dirs => render_dirs(&data.dirs),
        FourLetter::Dump => render_dump(&data.dump),
        FourLetter::Wchs => render_wchs(&data.watches),
        FourLetter::Wchc => render_wchc(&data.watches),
        FourLetter::Wchp => render_wchp(&data.watches),
        FourLetter::Hash => render_hash(&data.digests),
    }
}

/// `srvr`: what `zkServer.sh status` greps for `Mode:`; then corral's storage figures.
pub fn render_srvr(stats: &ServerStats) -> String {
    let mut out = render_stat_like(stats, false);
    if let Some(f) = &stats.storage {
        let _ = writeln!(out, "Log dir size: {}", f.log_dir_bytes);
        let _ = writeln!(out, "Snapshot dir size: {}", f.snapshot_dir_bytes);
        let _ = writeln!(out, "Snapshot count: {}", f.snapshot_count);
        let _ = writeln!(out, "Newest snapshot size: {}", f.newest_snapshot_bytes);
        let _ = writeln!(out, "Fsyncs: {}", f.fsyncs);
        let _ = writeln!(out, "Fsync time total (ms): {}", f.fsync_time_ms);
    }
    out
}

/// `stat`: `srvr` with a `Clients:` section before the counters.
pub fn render_stat(stats: &ServerStats) -> String {
    render_stat_like(stats, true)
}

fn render_stat_like(stats: &ServerStats, with_clients: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", stats.version);
    if stats.mode == ServerMode::ReadOnly {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if with_clients {
        out.push_str("Clients:\n");
        for c in &stats.connections {
            write_connection(&mut out, c, true);
            out.push('\n');
        }
        out.push('\n');
    }
    // ServerStats.toString()
    let l = &stats.latency;
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        l.min(),
        java_double(l.avg()),
        l.max()
    );
    let _ = writeln!(out, "Received: {}", stats.packets_received);
    let _ = writeln!(out, "Sent: {}", stats.packets_sent);
    let _ = writeln!(out, "Connections: {}", stats.num_alive_connections);
    let _ = writeln!(out, "Outstanding: {}", stats.outstanding_requests);
    let _ = writeln!(out, "Zxid: 0x{:x}", stats.last_zxid);
    let _ = writeln!(out, "Mode: {}", stats.mode.as_str());
    let _ = writeln!(out, "Node count: {}", stats.node_count);
    if let (ServerMode::Leader, Some(leader)) = (stats.mode, &stats.leader) {
        let _ = writeln!(
            out,
            "Proposal sizes last/min/max: {}/{}/{}",
            leader.proposal_size_last, leader.proposal_size_min, leader.proposal_size_max
        );
    }
    out
}

/// `cons`: every connection in the long form, then a blank line.
pub fn render_cons(connections: &[ConnectionInfo]) -> String {
    let mut out = String::new();
    for c in connections {
        write_connection(&mut out, c, false);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `ServerCnxn.dumpConnectionInfo`: ` /ip:port[ops](queued=..,recved=..,sent=..[,...])`.
fn write_connection(out: &mut String, c: &ConnectionInfo, brief: bool) {
    out.push(' ');
    write_java_socket_addr(out, &c.remote);
    let _ = write!(
        out,
        "[{:x}](queued={},recved={},sent={}",
        c.interest_ops, c.outstanding_requests, c.packets_received, c.packets_sent
    );
    if !brief && c.session_id != 0 {
        let _ = write!(
            out,
            ",sid=0x{:x},lop={},est={},to={}",
            c.session_id, c.last_op, c.established_ms, c.session_timeout_ms
        );
        if c.last_cxid >= 0 {
            let _ = write!(out, ",lcxid=0x{:x}", c.last_cxid);
        }
        let _ = write!(
            out,
            ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            c.last_zxid,
            c.last_response_ms,
            c.last_latency_ms,
            c.latency.min(),
            c.latency.avg_truncated(),
            c.latency.max()
        );
    }
    out.push(')');
}
/// `conf` (`ZooKeeperServer.dumpConf` and its quorum overrides).
pub fn render_conf(stats: &ServerStats, dirs: &DirsInfo, cfg: &Config) -> String {
    let snap_dir = if dirs.snap_dir.as_os_str().is_empty() {
        cfg.data_dir.as_path()
    } else {
        dirs.snap_dir.as_path()
    };
    let log_dir = if dirs.log_dir.as_os_str().is_empty() {
        cfg.log_dir()
    } else {
        dirs.log_dir.as_path()
    };
    let quorum_peer = stats.mode != ServerMode::Standalone;
    // A standalone ZooKeeperServer reports id 0 even when a myid file exists.
    let server_id = if quorum_peer {
        cfg.my_id.unwrap_or(0)
    } else {
        0
    };

    let mut out = String::new();
    let _ = writeln!(out, "clientPort={}", stats.client_port);
    // The secure client port as bound; -1 without one, as ZooKeeper prints it.
    let _ = writeln!(
        out,
        "secureClientPort={}",
        cfg.secure_client_port.map_or(-1, i32::from)
    );
    let _ = writeln!(out, "dataDir={}", snap_dir.display());
    let _ = writeln!(out, "dataDirSize={}", dirs.datadir_size);
    let _ = writeln!(out, "dataLogDir={}", log_dir.display());
    let _ = writeln!(out, "dataLogSize={}", dirs.logdir_size);
    let _ = writeln!(out, "tickTime={}", cfg.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", cfg.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", cfg.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", cfg.max_session_timeout_ms);
    let _ = writeln!(
        out,
        "clientPortListenBacklog={}",
        cfg.client_port_listen_backlog
    );
    let _ = writeln!(out, "serverId={server_id}");
    if !quorum_peer {
        return out;
    }
    let me = cfg.my_server();
    let _ = writeln!(out, "initLimit={}", cfg.init_limit);
    let _ = writeln!(out, "syncLimit={}", cfg.sync_limit);
    let _ = writeln!(out, "electionAlg={}", crate::config::ELECTION_ALG_SUPPORTED);
    let _ = writeln!(
        out,
        "electionPort={}",
        me.map_or(-1, |s| i32::from(s.election_port))
    );
    let _ = writeln!(
        out,
        "quorumPort={}",
        me.map_or(-1, |s| i32::from(s.quorum_port))
    );
    // LearnerType ordinal: PARTICIPANT = 0, OBSERVER = 1.
    let peer_type = match me.map(|s| s.role) {
        Some(PeerRole::Observer) => 1,
        _ => 0,
    };
    let _ = writeln!(out, "peerType={peer_type}");
    if stats.mode == ServerMode::ReadOnly {
        return out;
    }
    out.push_str("membership: \n");
    for s in cfg.servers.values() {
        let _ = write!(
            out,
            "server.{}={}:{}:{}:{}",
            s.id,
            bracket_ipv6(&s.host),
            s.quorum_port,
            s.election_port,
            match s.role {
                PeerRole::Participant => "participant",
                PeerRole::Observer => "observer",
            }
        );
        if let Some(client) = &s.client {
            let host = client.host.as_deref().unwrap_or("0.0.0.0");
            let _ = write!(out, ";{}:{}", bracket_ipv6(host), client.port);
        }
        out.push('\n');
    }
    // QuorumVerifier.toString() ends without a newline.
    let _ = write!(out, "version={:x}", stats.quorum_config_version);
    out
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `mntr`: `zk_<key>\t<value>` lines.
pub fn render_mntr(stats: &ServerStats) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "zk_{key}\t{value}");
    };
    let fd = |v: Option<u64>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    line("version", &stats.version);
    line("server_state", &stats.mode.as_str());
    if stats.mode.is_quorum_member() {
        if let Some(peer_state) = &stats.peer_state {
            line("peer_state", peer_state);
        }
        if let Some(n) = stats.quorum_size {
            line("quorum_size", &n);
        }
    }
    line("avg_latency", &java_double(stats.latency.avg()));
    line("max_latency", &stats.latency.max());
    line("min_latency", &stats.latency.min());
    line("packets_received", &stats.packets_received);
    line("packets_sent", &stats.packets_sent);
    line("num_alive_connections", &stats.num_alive_connections);
    line("outstanding_requests", &stats.outstanding_requests);
    line("uptime", &stats.uptime_ms);
    line("znode_count", &stats.node_count);
    line("watch_count", &stats.watch_count);
    line("ephemerals_count", &stats.ephemerals_count);
    line("approximate_data_size", &stats.approximate_data_size);
    line("global_sessions", &stats.global_sessions);
    line("local_sessions", &stats.local_sessions);
    line("open_file_descriptor_count", &fd(stats.open_fd_count));
    line("max_file_descriptor_count", &fd(stats.max_fd_count));
    if let (ServerMode::Leader, Some(l)) = (stats.mode, &stats.leader) {
        line("learners", &l.learners);
        line("synced_followers", &l.synced_followers);
        line(
            "synced_non_voting_followers",
            &l.synced_non_voting_followers,
        );
        line("synced_observers", &l.synced_observers);
        line("pending_syncs", &l.pending_syncs);
        line("leader_uptime", &l.leader_uptime_ms);
        line("last_proposal_size", &l.proposal_size_last);
        line("max_proposal_size", &l.proposal_size_max);
        line("min_proposal_size", &l.proposal_size_min);
    }
    for (key, value) in &stats.quota_metrics {
        line(key, value);
    }
    for (key, value) in &stats.extra_metrics {
        debug_assert!(key.starts_with("corral_"), "corral's own mntr keys: {key}");
        let _ = writeln!(out, "{key}\t{value}");
    }
    out
}

/// `isro`: `ro` in read-only mode, otherwise `rw`; no newline.
pub fn render_isro(mode: ServerMode) -> &'static str {
    if mode == ServerMode::ReadOnly {
        "ro"
    } else {
        "rw"
    }
}

/// `envi`.
pub fn render_envi(version: &str, env: &EnvInfo) -> String {
    let mb = |v: Option<u64>| v.map_or_else(|| ENV_NA.to_string(), |n| format!("{n}MB"));
    let mut out = String::from("Environment:\n");
    let entries: [(&str, &str); 15] = [
        ("zookeeper.version", version),
        ("host.name", &env.host_name),
        ("java.version", ENV_NA),
        ("java.vendor", ENV_NA),
        ("java.home", ENV_NA),
        ("java.class.path", ENV_NA),
        ("java.library.path", ENV_NA),
        ("java.io.tmpdir", ENV_NA),
        ("java.compiler", ENV_NA),
        ("os.name", &env.os_name),
        ("os.arch", &env.os_arch),
        ("os.version", &env.os_version),
        ("user.name", &env.user_name),
        ("user.home", &env.user_home),
        ("user.dir", &env.user_dir),
    ];
    for (key, value) in entries {
        let _ = writeln!(out, "{key}={value}");
    }
    let _ = writeln!(out, "os.memory.free={}", mb(env.memory_free_mb));
    let _ = writeln!(out, "os.memory.max={}", mb(env.memory_max_mb));
    let _ = writeln!(out, "os.memory.total={}", mb(env.memory_total_mb));
    for (key, value) in &env.extra {
        let _ = writeln!(out, "{key}={value}");
    }
    out
}

/// `dirs`.
pub fn render_dirs(dirs: &DirsInfo) -> String {
    format!(
        "datadir_size: {}\nlogdir_size: {}\n",
        dirs.datadir_size, dirs.logdir_size
    )
}

/// `dump`: session expiry buckets, ephemerals per session, connection buckets.
pub fn render_dump(dump: &DumpInfo) -> String {
    let mut out = String::from("SessionTracker dump:\n");
    let sessions: usize = dump
        .session_buckets
        .iter()
        .map(|b| b.session_ids.len())
        .sum();
    let _ = writeln!(
        out,
        "Session Sets ({})/({}):",
        dump.session_buckets.len(),
        sessions
    );
    let mut buckets: Vec<&ExpiryBucket> = dump.session_buckets.iter().collect();
    buckets.sort_by_key(|b| b.expire_at_ms);
    for b in buckets {
        let _ = writeln!(
            out,
            "{} expire at {}:",
            b.session_ids.len(),
            java_date_utc(b.expire_at_ms)
        );
        for id in &b.session_ids {
            let _ = writeln!(out, "\t0x{id:x}");
        }
    }
    out.push_str("ephemeral nodes dump:\n");
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", dump.ephemerals.len());
    for (id, paths) in &dump.ephemerals {
        let _ = writeln!(out, "0x{id:x}:");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push_str("Connections dump:\n");
    if let Some(conn_buckets) = &dump.connection_buckets {
        let count: usize = conn_buckets.iter().map(|b| b.connections.len()).sum();
        let _ = writeln!(
            out,
            "Connections Sets ({})/({}):",
            conn_buckets.len(),
            count
        );
        let mut buckets: Vec<&ConnectionBucket> = conn_buckets.iter().collect();
        buckets.sort_by_key(|b| b.expire_at_ms);
        for b in buckets {
            let _ = writeln!(
                out,
                "{} expire at {}:",
                b.connections.len(),
                java_date_utc(b.expire_at_ms)
            );
            for c in &b.connections {
                out.push('\t');
                write_connection(&mut out, c, false);
                out.push('\n');
            }
        }
    }
    out
}

/// `wchs`.
pub fn render_wchs(w: &WatchSummary) -> String {
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        w.connections, w.paths, w.total
    )
}

/// `wchc`: per session, its watched paths; then a blank line.
pub fn render_wchc(w: &WatchSummary) -> String {
    let mut out = String::new();
    for (id, paths) in &w.by_session {
        let _ = writeln!(out, "0x{id:x}");
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out.push('\n');
    out
}

/// `wchp`: per path, the sessions watching it; then a blank line.
pub fn render_wchp(w: &WatchSummary) -> String {
    let mut out = String::new();
    for (path, ids) in &w.by_path {
        let _ = writeln!(out, "{path}");
        for id in ids {
            let _ = writeln!(out, "\t0x{id:x}");
        }
    }
    out.push('\n');
    out
}

/// `hash`: `<zxid hex>: <digest>` per recorded digest; empty with no history.
pub fn render_hash(digests: &[ZxidDigest]) -> String {
    let mut out = String::new();
    for d in digests {
        let _ = writeln!(out, "{:x}: {}", d.zxid, d.digest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::data::{last_op_name, Latency, LeaderStats, StorageFigures};
    use crate::config::{ClientEndpoint, FourLetterWhitelist, ServerSpec};
    use std::collections::BTreeMap;

    const VERSION: &str = "3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC";

    fn stats() -> ServerStats {
        let mut latency = Latency::default();
        for ms in [0, 1, 2] {
            latency.record(ms);
        }
        ServerStats {
            version: VERSION.to_string(),
            client_port: 2181,
            latency,
            packets_received: 10,
            packets_sent: 9,
            num_alive_connections: 2,
            outstanding_requests: 1,
            last_zxid: 0x1_0000_002a,
            node_count: 5,
            watch_count: 3,
            ephemerals_count: 1,
            approximate_data_size: 44,
            open_fd_count: Some(30),
            max_fd_count: Some(1024),
            uptime_ms: 12345,
            global_sessions: 2,
            ..ServerStats::default()
        }
    }

    fn session_conn() -> ConnectionInfo {
        let mut c = ConnectionInfo::new("127.0.0.1:50000".parse().unwrap(), 1_700_000_000_000);
        c.packets_received = 7;
        c.packets_sent = 6;
        c.session_id = 0x1000_0123_4560_0000;
        c.last_op = last_op_name(4);
        c.session_timeout_ms = 30000;
        c.last_cxid = 5;
        c.last_zxid = 0x2a;
        c.last_response_ms = 99;
        c.last_latency_ms = 1;
        c.latency.record(1);
        c.latency.record(2);
        c
    }

    fn self_conn() -> ConnectionInfo {
        let mut c = ConnectionInfo::new("127.0.0.1:50001".parse().unwrap(), 0);
        c.interest_ops = 0;
        c.packets_received = 1;
        c
    }

    fn all_allowed() -> Config {
        Config {
            four_letter_whitelist: FourLetterWhitelist::All,
            ..Config::default()
        }
    }

    #[test]
    fn ruok_isro_gtmk_resets() {
        let cfg = all_allowed();
        let mut data = AdminData::default();
        assert_eq!(render(FourLetter::Ruok, &data, &cfg), "imok");
        assert_eq!(render(FourLetter::Isro, &data, &cfg), "rw");
        assert_eq!(render(FourLetter::Gtmk, &data, &cfg), "306");
        assert_eq!(
            render(FourLetter::Srst, &data, &cfg),
            "Server stats reset.\n"
        );
        assert_eq!(
            render(FourLetter::Crst, &data, &cfg),
            "Connection stats reset.\n"
        );
        data.trace_mask = -1;
        assert_eq!(render(FourLetter::Stmk, &data, &cfg), "-1");
        data.stats.mode = ServerMode::ReadOnly;
        assert_eq!(render(FourLetter::Isro, &data, &cfg), "ro");
    }

    #[test]
    fn not_serving() {
        let cfg = all_allowed();
        let data = AdminData {
            serving: false,
            ..AdminData::default()
        };
        let not_serving = format!("{NOT_SERVING}\n");
        for cmd in [
            FourLetter::Srvr,
            FourLetter::Stat,
            FourLetter::Conf,
            FourLetter::Cons,
            FourLetter::Mntr,
            FourLetter::Dump,
            FourLetter::Dirs,
            FourLetter::Wchs,
            FourLetter::Wchc,
            FourLetter::Wchp,
            FourLetter::Srst,
            FourLetter::Crst,
        ] {
            assert_eq!(render(cmd, &data, &cfg), not_serving, "{cmd:?}");
        }
        assert_eq!(render(FourLetter::Hash, &data, &cfg), NOT_SERVING);
        assert_eq!(render(FourLetter::Isro, &data, &cfg), "null");
        assert_eq!(render(FourLetter::Ruok, &data, &cfg), "imok");
        assert!(render(FourLetter::Envi, &data, &cfg).starts_with("Environment:\n"));
    }

    #[test]
    fn srvr_exact() {
        assert_eq!(
            render_srvr(&stats()),
            "Zookeeper version: 3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             Latency min/avg/max: 0/1.0/2\n\
             Received: 10\n\
             Sent: 9\n\
             Connections: 2\n\
             Outstanding: 1\n\
             Zxid: 0x10000002a\n\
             Mode: standalone\n\
             Node count: 5\n"
        );
        // What zkServer.sh status extracts.
        let out = render_srvr(&stats());
        let mode: Vec<&str> = out.lines().filter(|l| l.contains("Mode")).collect();
        assert_eq!(mode, ["Mode: standalone"]);
    }

    /// corral's storage lines follow ZooKeeper's unchanged lines, and none of them reads as a
    /// standard line to the known `srvr` parsers (docs/decisions.md).
    #[test]
    fn srvr_storage_lines_follow_and_stay_out_of_parsers_way() {
        let mut s = stats();
        let plain = render_srvr(&s);
        s.storage = Some(StorageFigures {
            log_dir_bytes: 67_112_960,
            snapshot_dir_bytes: 4_321,
            snapshot_count: 2,
            newest_snapshot_bytes: 2_100,
            fsyncs: 42,
            fsync_time_ms: 7,
        });
        let out = render_srvr(&s);
        let extra = out
            .strip_prefix(plain.as_str())
            .expect("standard lines first");
        assert_eq!(
            extra,
            "Log dir size: 67112960\n\
             Snapshot dir size: 4321\n\
             Snapshot count: 2\n\
             Newest snapshot size: 2100\n\
             Fsyncs: 42\n\
             Fsync time total (ms): 7\n"
        );
        let standard = [
            "Zookeeper version",
            "Latency min/avg/max",
            "Received",
            "Sent",
            "Connections",
            "Outstanding",
            "Zxid",
            "Mode",
            "Node count",
            "Proposal sizes",
            "READ-ONLY",
            "Clients",
        ];
        for line in extra.lines() {
            // Metricbeat's server metricset: substring matches.
            for word in ["Mode", "Zxid", "Latency", "Proposal sizes"] {
                assert!(!line.contains(word), "{line:?} contains {word:?}");
            }
            // Line-start matches (zkServer.sh's grep Mode is covered above).
            let label = line.split(':').next().unwrap();
            assert!(!standard.contains(&label), "{line:?}");
            // Metricbeat's generic `Words: digits` lines become fields named after the words;
            // none may collide with the fields it fills from the standard lines.
            let field = label.to_lowercase().replace(' ', "_");
            for taken in [
                "count",
                "epoch",
                "zxid",
                "mode",
                "node_count",
                "version_date",
            ] {
                assert_ne!(field, taken, "{line:?}");
            }
        }
        // `stat` stays ZooKeeper's.
        let mut st = s.clone();
        st.storage = None;
        assert_eq!(render_stat(&s), render_stat(&st));
    }

    #[test]
    fn srvr_empty_server_and_modes() {
        let mut s = ServerStats {
            version: VERSION.into(),
            ..ServerStats::default()
        };
        let out = render_srvr(&s);
        assert!(out.contains("\nLatency min/avg/max: 0/0.0/0\n"), "{out}");
        assert!(out.contains("\nZxid: 0x0\n"));
        s.last_zxid = -1;
        assert!(render_srvr(&s).contains("\nZxid: 0xffffffffffffffff\n"));
        for (mode, text) in [
            (ServerMode::Leader, "leader"),
            (ServerMode::Follower, "follower"),
            (ServerMode::Observer, "observer"),
            (ServerMode::ReadOnly, "read-only"),
        ] {
            s.mode = mode;
            assert!(render_srvr(&s).contains(&format!("\nMode: {text}\n")));
        }
        s.mode = ServerMode::ReadOnly;
        assert!(render_srvr(&s).starts_with(&format!(
            "Zookeeper version: {VERSION}\nREAD-ONLY mode; serving only read-only clients\n\
             Latency"
        )));
        s.mode = ServerMode::Leader;
        s.leader = Some(LeaderStats::default());
        assert!(render_srvr(&s).ends_with("Node count: 0\nProposal sizes last/min/max: -1/-1/-1\n"));
    }

    #[test]
    fn stat_exact() {
        let mut s = stats();
        s.connections = vec![session_conn(), self_conn()];
        assert_eq!(
            render_stat(&s),
            "Zookeeper version: 3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             Clients:\n \
             /127.0.0.1:50000[1](queued=0,recved=7,sent=6)\n \
             /127.0.0.1:50001[0](queued=0,recved=1,sent=0)\n\
             \n\
             Latency min/avg/max: 0/1.0/2\n\
             Received: 10\n\
             Sent: 9\n\
             Connections: 2\n\
             Outstanding: 1\n\
             Zxid: 0x10000002a\n\
             Mode: standalone\n\
             Node count: 5\n"
        );
    }

    #[test]
    fn cons_exact() {
        let v6 = ConnectionInfo::new("[::1]:2000".parse().unwrap(), 0);
        let mapped = ConnectionInfo::new("[::ffff:10.0.0.1]:2001".parse().unwrap(), 0);
        let mut no_cxid = session_conn();
        no_cxid.last_cxid = -1;
        no_cxid.last_zxid = -1;
        no_cxid.latency = Latency::default();
        assert_eq!(
            render_cons(&[session_conn(), self_conn(), v6, mapped, no_cxid]),
            " /127.0.0.1:50000[1](queued=0,recved=7,sent=6,sid=0x1000012345600000,lop=GETD,\
             est=1700000000000,to=30000,lcxid=0x5,lzxid=0x2a,lresp=99,llat=1,minlat=1,avglat=1,\
             maxlat=2)\n \
             /127.0.0.1:50001[0](queued=0,recved=1,sent=0)\n \
             /[0:0:0:0:0:0:0:1]:2000[1](queued=0,recved=0,sent=0)\n \
             /10.0.0.1:2001[1](queued=0,recved=0,sent=0)\n \
             /127.0.0.1:50000[1](queued=0,recved=7,sent=6,sid=0x1000012345600000,lop=GETD,\
             est=1700000000000,to=30000,lzxid=0xffffffffffffffff,lresp=99,llat=1,minlat=0,\
             avglat=0,maxlat=0)\n\
             \n"
        );
        assert_eq!(render_cons(&[]), "\n");
    }

    #[test]
    fn conf_standalone_exact() {
        let cfg = Config {
            my_id: Some(3),
            ..Config::default()
        };
        let dirs = DirsInfo {
            snap_dir: "/var/lib/corral/version-2".into(),
            log_dir: "/var/lib/corral/version-2".into(),
            datadir_size: 1234,
            logdir_size: 67108880,
        };
        assert_eq!(
            render_conf(&stats(), &dirs, &cfg),
            "clientPort=2181\n\
             secureClientPort=-1\n\
             dataDir=/var/lib/corral/version-2\n\
             dataDirSize=1234\n\
             dataLogDir=/var/lib/corral/version-2\n\
             dataLogSize=67108880\n\
             tickTime=2000\n\
             maxClientCnxns=60\n\
             minSessionTimeout=4000\n\
             maxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\n\
             serverId=0\n"
        );
        // Empty dirs fall back to the configured ones.
        let out = render_conf(&stats(), &DirsInfo::default(), &Config::default());
        assert!(
            out.contains("\ndataDir=./data\ndataDirSize=0\ndataLogDir=./data\n"),
            "{out}"
        );
    }

    fn ensemble() -> Config {
        let mut servers = BTreeMap::new();
        let spec = |id: u64, host: &str, role, client| ServerSpec {
            id,
            host: host.to_string(),
            quorum_port: 2888,
            election_port: 3888,
            role,
            client,
        };
        servers.insert(1, spec(1, "zk1", PeerRole::Participant, None));
        servers.insert(
            2,
            spec(
                2,
                "zk2",
                PeerRole::Participant,
                Some(ClientEndpoint {
                    host: None,
                    port: 2181,
                }),
            ),
        );
        servers.insert(
            3,
            spec(
                3,
                "fe80::3",
                PeerRole::Observer,
                Some(ClientEndpoint {
                    host: Some("::1".into()),
                    port: 2182,
                }),
            ),
        );
        Config {
            servers,
            my_id: Some(1),
            ..Config::default()
        }
    }

    #[test]
    fn conf_quorum_exact() {
        let mut s = stats();
        s.mode = ServerMode::Follower;
        s.quorum_config_version = 0x100000000;
        let dirs = DirsInfo {
            snap_dir: "/d".into(),
            log_dir: "/l".into(),
            ..DirsInfo::default()
        };
        assert_eq!(
            render_conf(&s, &dirs, &ensemble()),
            "clientPort=2181\n\
             secureClientPort=-1\n\
             dataDir=/d\n\
             dataDirSize=0\n\
             dataLogDir=/l\n\
             dataLogSize=0\n\
             tickTime=2000\n\
             maxClientCnxns=60\n\
             minSessionTimeout=4000\n\
             maxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\n\
             serverId=1\n\
             initLimit=10\n\
             syncLimit=5\n\
             electionAlg=3\n\
             electionPort=3888\n\
             quorumPort=2888\n\
             peerType=0\n\
             membership: \n\
             server.1=zk1:2888:3888:participant\n\
             server.2=zk2:2888:3888:participant;0.0.0.0:2181\n\
             server.3=[fe80::3]:2888:3888:observer;[::1]:2182\n\
             version=100000000"
        );
        s.mode = ServerMode::ReadOnly;
        assert!(render_conf(&s, &dirs, &ensemble()).ends_with("quorumPort=2888\npeerType=0\n"));
    }

    #[test]
    fn mntr_exact() {
        let mut s = stats();
        s.extra_metrics = vec![("corral_shards".into(), "2".into())];
        assert_eq!(
            render_mntr(&s),
            "zk_version\t3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             zk_server_state\tstandalone\n\
             zk_avg_latency\t1.0\n\
             zk_max_latency\t2\n\
             zk_min_latency\t0\n\
             zk_packets_received\t10\n\
             zk_packets_sent\t9\n\
             zk_num_alive_connections\t2\n\
             zk_outstanding_requests\t1\n\
             zk_uptime\t12345\n\
             zk_znode_count\t5\n\
             zk_watch_count\t3\n\
             zk_ephemerals_count\t1\n\
             zk_approximate_data_size\t44\n\
             zk_global_sessions\t2\n\
             zk_local_sessions\t0\n\
             zk_open_file_descriptor_count\t30\n\
             zk_max_file_descriptor_count\t1024\n\
             corral_shards\t2\n"
        );
    }

    #[test]
    fn mntr_leader_and_unknown_fds() {
        let mut s = stats();
        s.mode = ServerMode::Leader;
        s.peer_state = Some("leading - broadcast".into());
        s.quorum_size = Some(3);
        s.open_fd_count = None;
        s.max_fd_count = None;
        s.leader = Some(LeaderStats {
            learners: 2,
            synced_followers: 2,
            proposal_size_last: 90,
            proposal_size_min: 80,
            proposal_size_max: 100,
            ..LeaderStats::default()
        });
        let out = render_mntr(&s);
        assert!(out.contains(
            "zk_server_state\tleader\nzk_peer_state\tleading - broadcast\nzk_quorum_size\t3\n"
        ));
        assert!(
            out.contains("zk_open_file_descriptor_count\t-1\nzk_max_file_descriptor_count\t-1\n")
        );
        assert!(out.ends_with(
            "zk_learners\t2\nzk_synced_followers\t2\nzk_synced_non_voting_followers\t0\n\
             zk_synced_observers\t0\nzk_pending_syncs\t0\nzk_leader_uptime\t0\n\
             zk_last_proposal_size\t90\nzk_max_proposal_size\t100\nzk_min_proposal_size\t80\n"
        ));
        // Every line is key TAB value.
        assert!(out.lines().all(|l| l.split('\t').count() == 2));
    }

    #[test]
    fn envi_exact() {
        let env = EnvInfo {
            host_name: "h1".into(),
            os_name: "Linux".into(),
            os_arch: "amd64".into(),
            os_version: "6.1.0".into(),
            user_name: "zk".into(),
            user_home: "/home/zk".into(),
            user_dir: "/srv".into(),
            memory_free_mb: Some(100),
            memory_max_mb: Some(2000),
            memory_total_mb: None,
            extra: vec![("corral.version".into(), "0.1.0".into())],
        };
        assert_eq!(
            render_envi(VERSION, &env),
            "Environment:\n\
             zookeeper.version=3.9.2-corral-0.1.0, built on 2025-01-31 12:00 UTC\n\
             host.name=h1\n\
             java.version=<NA>\n\
             java.vendor=<NA>\n\
             java.home=<NA>\n\
             java.class.path=<NA>\n\
             java.library.path=<NA>\n\
             java.io.tmpdir=<NA>\n\
             java.compiler=<NA>\n\
             os.name=Linux\n\
             os.arch=amd64\n\
             os.version=6.1.0\n\
             user.name=zk\n\
             user.home=/home/zk\n\
             user.dir=/srv\n\
             os.memory.free=100MB\n\
             os.memory.max=2000MB\n\
             os.memory.total=<NA>\n\
             corral.version=0.1.0\n"
        );
    }

    #[test]
    fn watches_exact() {
        let mut w = WatchSummary {
            connections: 2,
            paths: 2,
            total: 3,
            ..WatchSummary::default()
        };
        w.by_session.insert(0x100, vec!["/a".into(), "/b".into()]);
        w.by_session.insert(0x200, vec!["/a".into()]);
        w.by_path.insert("/a".into(), vec![0x100, 0x200]);
        w.by_path.insert("/b".into(), vec![0x100]);
        let cfg = all_allowed();
        let data = AdminData {
            watches: w,
            ..AdminData::default()
        };
        assert_eq!(
            render(FourLetter::Wchs, &data, &cfg),
            "2 connections watching 2 paths\nTotal watches:3\n"
        );
        assert_eq!(
            render(FourLetter::Wchc, &data, &cfg),
            "0x100\n\t/a\n\t/b\n0x200\n\t/a\n\n"
        );
        assert_eq!(
            render(FourLetter::Wchp, &data, &cfg),
            "/a\n\t0x100\n\t0x200\n/b\n\t0x100\n\n"
        );
        let empty = AdminData::default();
        assert_eq!(
            render(FourLetter::Wchs, &empty, &cfg),
            "0 connections watching 0 paths\nTotal watches:0\n"
        );
        assert_eq!(render(FourLetter::Wchc, &empty, &cfg), "\n");
    }

    #[test]
    fn dump_exact() {
        let mut dump = DumpInfo {
            session_buckets: vec![
                ExpiryBucket {
                    expire_at_ms: 1_700_000_006_000,
                    session_ids: vec![0x200],
                },
                ExpiryBucket {
                    expire_at_ms: 1_700_000_004_000,
                    session_ids: vec![0x100, 0x101],
                },
            ],
            ..DumpInfo::default()
        };
        dump.ephemerals
            .insert(0x100, vec!["/lock/a".into(), "/lock/b".into()]);
        assert_eq!(
            render_dump(&dump),
            "SessionTracker dump:\n\
             Session Sets (2)/(3):\n\
             2 expire at Tue Nov 14 22:13:24 UTC 2023:\n\
             \t0x100\n\
             \t0x101\n\
             1 expire at Tue Nov 14 22:13:26 UTC 2023:\n\
             \t0x200\n\
             ephemeral nodes dump:\n\
             Sessions with Ephemerals (1):\n\
             0x100:\n\
             \t/lock/a\n\
             \t/lock/b\n\
             Connections dump:\n"
        );
        dump.connection_buckets = Some(vec![ConnectionBucket {
            expire_at_ms: 0,
            connections: vec![self_conn()],
        }]);
        assert!(render_dump(&dump).ends_with(
            "Connections dump:\nConnections Sets (1)/(1):\n\
             1 expire at Thu Jan 01 00:00:00 UTC 1970:\n\
             \t /127.0.0.1:50001[0](queued=0,recved=1,sent=0)\n"
        ));
        assert_eq!(
            render_dump(&DumpInfo::default()),
            "SessionTracker dump:\nSession Sets (0)/(0):\nephemeral nodes dump:\n\
             Sessions with Ephemerals (0):\nConnections dump:\n"
        );
    }

    #[test]
    fn dirs_and_hash_exact() {
        let cfg = all_allowed();
        let data = AdminData {
            dirs: DirsInfo {
                datadir_size: 10,
                logdir_size: 67108880,
                ..DirsInfo::default()
            },
            ..AdminData::default()
        };
        assert_eq!(
            render(FourLetter::Dirs, &data, &cfg),
            "datadir_size: 10\nlogdir_size: 67108880\n"
        );
        // No digest history: ZooKeeper with digests disabled prints nothing.
        assert_eq!(render(FourLetter::Hash, &data, &cfg), "");
        let digests = [
            ZxidDigest {
                zxid: 0x100000080,
                digest: 1234,
            },
            ZxidDigest {
                zxid: 0x100,
                digest: -5,
            },
        ];
        assert_eq!(render_hash(&digests), "100000080: 1234\n100: -5\n");
    }
}
