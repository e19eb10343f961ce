//! Prometheus metrics: the `metricsProvider.*` settings, the figures a scrape gathers beyond
//! what `mntr` prints ([`Samples`]), and `render`, which writes them all in Prometheus's text
//! format (version 0.0.4). Pure but for [`process`], which reads /proc, and [`endpoint`], the
//! HTTP endpoint that serves the text.
//!
//! Names are ZooKeeper 3.8's where ZooKeeper has the figure (its `PrometheusMetricsProvider`
//! exports `ServerMetrics` and the server's gauges under their bare names, so its Grafana
//! dashboard reads corral unchanged); corral's own carry a `corral_` prefix. docs/metrics.md
//! lists every one.

pub mod endpoint;
pub mod process;
pub mod summary;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use crate::admin::{AdminData, ServerMode};
pub use process::Process;
pub use summary::{Latencies, Summary, Window};

/// The zoo.cfg keys of this module start with this.
pub const KEY_PREFIX: &str = "metricsProvider.";
/// ZooKeeper's `PrometheusMetricsProvider` default port.
pub const HTTP_PORT_DEFAULT: u16 = 7000;
/// Loopback, not ZooKeeper's wildcard (docs/decisions.md, "Metrics on loopback").
pub const HTTP_HOST_DEFAULT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const PROMETHEUS_CLASS: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// Providers that export nothing over HTTP: ZooKeeper's default (figures for `mntr` only)
/// and its no-op one.
const SILENT_CLASSES: &[&str] = &[
    "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
    "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
];
/// ZooKeeper's worker-pool settings: they size Java threads corral does not have.
const IGNORED_KEYS: &[&str] = &[
    "numWorkerThreads",
    "maxQueueSize",
    "workerShutdownTimeoutMs",
];

/// The `metricsProvider.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Serve `/metrics` (true unless a provider that exports nothing is named).
    pub enabled: bool,
    pub http_host: IpAddr,
    /// 0 takes any free port (the log says which).
    pub http_port: u16,
    /// ZooKeeper's `exportJvmInfo`: here the `process_*` figures.
    pub export_process_info: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            http_host: HTTP_HOST_DEFAULT,
            http_port: HTTP_PORT_DEFAULT,
            export_process_info: true,
        }
    }
}

impl Settings {
    /// Applies one `metricsProvider.<name>` key. `Ok(Some(note))` is accepted with a warning;
    /// `Err` is the reason the value is refused.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<Option<String>, String> {
        let name = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
        let v = value.trim();
        match name {
            "className" => {
                if v == PROMETHEUS_CLASS {
                    self.enabled = true;
                } else if SILENT_CLASSES.contains(&v) {
                    self.enabled = false;
                } else {
                    return Err(format!(
                        "corral has the Prometheus provider ({PROMETHEUS_CLASS}) and can turn \
                         metrics off ({})",
                        SILENT_CLASSES.join(" or ")
                    ));
                }
            }
            "httpHost" => {
                self.http_host = if v.eq_ignore_ascii_case("localhost") {
                    HTTP_HOST_DEFAULT
                } else {
                    let bare = v
                        .strip_prefix('[')
                        .and_then(|s| s.strip_suffix(']'))
                        .unwrap_or(v);
                    bare.parse().map_err(|_| {
                        "expected an IP address (corral does not resolve host names)".to_string()
                    })?
                }
            }
            "httpPort" => {
                self.http_port = v
                    .parse()
                    .map_err(|_| "expected a port number, 0..=65535".to_string())?
            }
            "exportJvmInfo" => {
                self.export_process_info = if v.eq_ignore_ascii_case("true") {
                    true
                } else if v.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err("choose 'true' or 'false'".to_string());
                }
            }
            _ if IGNORED_KEYS.contains(&name) => {
                return Ok(Some(
                    "sizes ZooKeeper's Java worker threads, which corral does not have; ignored"
                        .to_string(),
                ))
            }
            _ => {
                return Ok(Some(
                    "not a metrics setting corral knows (it has className, httpHost, httpPort, \
                     exportJvmInfo); ignored"
                        .to_string(),
                ))
            }
        }
        Ok(None)
    }
}

/// What a scrape prints beyond the figures `mntr` has: per-shard figures, the latency
/// histograms, count-and-sum totals and the process's figures. Filled by the runtime's
/// `gather`; empty for a four-letter word.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    pub shards: Vec<ShardSample>,
    /// ZooKeeper's `fsynctime`, `snapshottime`, `election_time` (microseconds; printed in
    /// ms with the median, as ZooKeeper's BASIC summaries).
    pub fsync: Option<Summary>,
    pub snapshot: Option<Summary>,
    pub election: Option<Summary>,
    /// Records per log flush (group commit), over recent flushes.
    pub batch_records: Option<Summary>,
    /// CPU time of the write core's thread, seconds.
    pub core_cpu_seconds: Option<f64>,
    pub process: Option<Process>,
}

/// One shard's own figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShardSample {
    pub shard: usize,
    pub connections: u64,
    pub outstanding_requests: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub watches: u64,
    pub last_zxid: i64,
    /// CPU time of the shard's thread (its executor), in seconds.
    pub cpu_seconds: Option<f64>,
    /// Microseconds.
    pub read_latency: Summary,
    pub update_latency: Summary,
}

/// The quantiles of ZooKeeper's detailed summaries.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// corral's own latency summaries add the 99.9th.
const QUANTILES_FINE: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

/// A sample's value: integers print exactly (a u64 past 2^53 would lose digits as a double).
#[derive(Clone, Copy)]
enum V {
    U(u64),
    I(i64),
    F(f64),
}

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            V::U(n) => write!(f, "{n}"),
            V::I(n) => write!(f, "{n}"),
            V::F(x) if x.is_nan() => f.write_str("NaN"),
            V::F(x) if x.is_infinite() => f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" }),
            V::F(x) => write!(f, "{x}"),
        }
    }
}

/// The text being written, the names of the families already in it (a family may appear
/// once), and the families asked for (`None`: all).
struct Text<'a> {
    out: String,
    families: HashSet<String>,
    only: Option<&'a [String]>,
}

impl Text<'_> {
    /// Starts a family; false (and nothing written) if one of that name is already there.
    /// Every sample is written under a `family` that returned true, so a family not asked
    /// for leaves nothing.
    fn family(&mut self, name: &str, kind: Kind, help: &str) -> bool {
        if self
            .only
            .is_some_and(|only| !only.iter().any(|n| n == name))
        {
            return false;
        }
        if !self.families.insert(name.to_string()) {
            return false;
        }
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        true
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: V) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let val = val
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{val}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }

    fn single(&mut self, name: &str, kind: Kind, help: &str, v: V) {
        if self.family(name, kind, help) {
            self.sample(name, &[], v);
        }
    }

    fn gauge(&mut self, name: &str, help: &str, v: V) {
        self.single(name, Kind::Gauge, help, v);
    }

    fn counter(&mut self, name: &str, help: &str, v: V) {
        self.single(name, Kind::Counter, help, v);
    }

    /// A summary's samples under one label set: quantiles (scaled by `scale`), `_sum`, `_count`.
    fn summary_samples(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        s: &Summary,
        quantiles: &[f64],
        scale: f64,
    ) {
        for q in quantiles {
            let v = s.quantile(*q).map_or(f64::NAN, |v| v as f64 * scale);
            let q = q.to_string();
            let mut l = labels.to_vec();
            l.push(("quantile", &q));
            self.sample(name, &l, V::F(v));
        }
        let sum = format!("{name}_sum");
        self.sample(&sum, labels, V::F(s.sum as f64 * scale));
        let count = format!("{name}_count");
        self.sample(&count, labels, V::U(s.count));
    }
}

/// The text of a scrape: every figure of `data` in Prometheus's text format.
pub fn render(data: &AdminData) -> String {
    render_only(data, None)
}

/// As [`render`], only the families named in `only` (the `name[]` parameters of a scrape, as
/// Prometheus's Java client takes them), when given.
pub fn render_only(data: &AdminData, only: Option<&[String]>) -> String {
    let mut t = Text {
        out: String::with_capacity(16 << 10),
        families: HashSet::new(),
        only,
    };
    let st = &data.stats;
    let m = &data.metrics;

    // ZooKeeper's server gauges (ZooKeeperServer.registerMetrics), in its order.
    t.gauge(
        "avg_latency",
        "Average request latency, ms",
        V::F(st.latency.avg()),
    );
    t.gauge(
        "max_latency",
        "Largest request latency, ms",
        V::U(st.latency.max()),
    );
    t.gauge(
        "min_latency",
        "Smallest request latency, ms",
        V::U(st.latency.min()),
    );
    t.gauge(
        "packets_received",
        "Requests received from clients",
        V::U(st.packets_received),
    );
    t.gauge(
        "packets_sent",
        "Replies and notifications sent to clients",
        V::U(st.packets_sent),
    );
    t.gauge(
        "num_alive_connections",
        "Open client connections",
        V::U(st.num_alive_connections),
    );
    t.gauge(
        "outstanding_requests",
        "Requests received and not yet answered",
        V::U(st.outstanding_requests),
    );
    t.gauge("uptime", "Time serving, ms", V::U(st.uptime_ms));
    t.gauge("znode_count", "Znodes in the tree", V::U(st.node_count));
    t.gauge(
        "watch_count",
        "Data and child watches set",
        V::U(st.watch_count),
    );
    t.gauge(
        "ephemerals_count",
        "Ephemeral znodes",
        V::U(st.ephemerals_count),
    );
    t.gauge(
        "approximate_data_size",
        "Sum of the znodes' path and data lengths, bytes",
        V::U(st.approximate_data_size),
    );
    t.gauge(
        "global_sessions",
        "Sessions in the ensemble",
        V::U(st.global_sessions),
    );
    t.gauge(
        "local_sessions",
        "Local sessions on this member",
        V::U(st.local_sessions),
    );
    if let Some(n) = st.open_fd_count {
        t.gauge(
            "open_file_descriptor_count",
            "Open file descriptors",
            V::U(n),
        );
    }
    if let Some(n) = st.max_fd_count {
        t.gauge(
            "max_file_descriptor_count",
            "The open file limit (soft)",
            V::U(n),
        );
    }
    if let Some(n) = st.quorum_size {
        t.gauge("quorum_size", "Voting members of the ensemble", V::U(n));
    }
    // Only a leader in an ensemble has these (a standalone server leads an ensemble of one).
    if let (ServerMode::Leader, Some(l)) = (st.mode, &st.leader) {
        t.gauge(
            "learners",
            "Learners connected to this leader",
            V::U(l.learners),
        );
        t.gauge(
            "synced_followers",
            "Synced voting followers",
            V::U(l.synced_followers),
        );
        t.gauge(
            "synced_non_voting_followers",
            "Synced non-voting followers",
            V::U(l.synced_non_voting_followers),
        );
        t.gauge(
            "synced_observers",
            "Synced observers",
            V::U(l.synced_observers),
        );
        t.gauge(
            "pending_syncs",
            "Learners being synced",
            V::U(l.pending_syncs),
        );
        t.gauge(
            "leader_uptime",
            "Time leading, ms",
            V::U(l.leader_uptime_ms),
        );
        t.gauge(
            "last_proposal_size",
            "Size of the last proposal, bytes (-1 before the first)",
            V::I(l.proposal_size_last),
        );
        t.gauge(
            "max_proposal_size",
            "Largest proposal, bytes (-1 before the first)",
            V::I(l.proposal_size_max),
        );
        t.gauge(
            "min_proposal_size",
            "Smallest proposal, bytes (-1 before the first)",
            V::I(l.proposal_size_min),
        );
    }

    quota_families(&mut t, &st.quota_metrics);

    // ZooKeeper's ServerMetrics summaries: latencies in ms, with its quantiles.
    let mut read = Summary::default();
    let mut update = Summary::default();
    for s in &m.shards {
        read.merge(&s.read_latency);
        update.merge(&s.update_latency);
    }
    let ms = 1e-3;
    if t.family("readlatency", Kind::Summary, "Read request latency, ms") {
        t.summary_samples("readlatency", &[], &read, &QUANTILES, ms);
    }
    if t.family("updatelatency", Kind::Summary, "Write request latency, ms") {
        t.summary_samples("updatelatency", &[], &update, &QUANTILES, ms);
    }
    // ZooKeeper's BASIC summaries: the median only.
    let basic = [
        ("fsynctime", "Time of the log's fdatasyncs, ms", &m.fsync),
        ("snapshottime", "Time to take a snapshot, ms", &m.snapshot),
        (
            "election_time",
            "Time from looking to a decided role, ms",
            &m.election,
        ),
    ];
    for (name, help, s) in basic {
        if let Some(s) = s {
            if t.family(name, Kind::Summary, help) {
                t.summary_samples(name, &[], s, &[0.5], ms);
            }
        }
    }

    // The process (what ZooKeeper's exportJvmInfo adds, without a JVM).
    if let Some(p) = &m.process {
        if let Some(x) = p.cpu_seconds {
            t.counter(
                "process_cpu_seconds_total",
                "User and system CPU time, seconds",
                V::F(x),
            );
        }
        if let Some(n) = p.resident_memory_bytes {
            t.gauge(
                "process_resident_memory_bytes",
                "Resident memory, bytes",
                V::U(n),
            );
        }
        if let Some(n) = p.virtual_memory_bytes {
            t.gauge(
                "process_virtual_memory_bytes",
                "Virtual memory, bytes",
                V::U(n),
            );
        }
        if let Some(x) = p.start_time_seconds {
            t.gauge(
                "process_start_time_seconds",
                "Start time, seconds since the Unix epoch",
                V::F(x),
            );
        }
        if let Some(n) = p.open_fds {
            t.gauge("process_open_fds", "Open file descriptors", V::U(n));
        }
        if let Some(n) = p.max_fds {
            t.gauge("process_max_fds", "The open file limit (soft)", V::U(n));
        }
        if let Some(n) = p.threads {
            t.gauge("corral_process_threads", "Threads of the process", V::U(n));
        }
    }

    // corral's own.
    if t.family(
        "corral_info",
        Kind::Gauge,
        "Always 1; the labels say which corral and in which role",
    ) {
        let labels = [("version", st.version.as_str()), ("mode", st.mode.as_str())];
        t.sample("corral_info", &labels, V::U(1));
    }
    t.gauge(
        "corral_serving",
        "1 while this member serves clients (0 during an election)",
        V::U(data.serving as u64),
    );
    t.gauge(
        "corral_last_zxid",
        "Last zxid applied (the most advanced shard)",
        V::I(st.last_zxid),
    );
    if let Some(x) = m.core_cpu_seconds {
        t.counter(
            "corral_write_core_cpu_seconds_total",
            "CPU time of the write core's thread, seconds (the same thread as shard 0's below 3 CPUs)",
            V::F(x),
        );
    }
    if let Some(b) = &m.batch_records {
        if t.family(
            "corral_log_batch_records",
            Kind::Summary,
            "Records per log flush (group commit); quantiles over recent flushes",
        ) {
            t.summary_samples("corral_log_batch_records", &[], b, &QUANTILES_FINE, 1.0);
        }
    }
    if t.family(
        "corral_read_latency_us",
        Kind::Summary,
        "Read latency, microseconds (a read answered at once from the replica counts as 0)",
    ) {
        t.summary_samples("corral_read_latency_us", &[], &read, &QUANTILES_FINE, 1.0);
    }
    if t.family(
        "corral_update_latency_us",
        Kind::Summary,
        "Write latency from arrival to reply, microseconds",
    ) {
        t.summary_samples(
            "corral_update_latency_us",
            &[],
            &update,
            &QUANTILES_FINE,
            1.0,
        );
    }
    shard_families(&mut t, &m.shards);
    for (name, value) in &st.extra_metrics {
        extra(&mut t, name, value);
    }
    t.out
}

/// ZooKeeper's per-namespace quota gauges (its GaugeSets): `mntr` prints `<namespace>_<metric>`,
/// its Prometheus provider `<metric>{key="<namespace>"}`.
fn quota_families(t: &mut Text<'_>, quota: &[(String, i64)]) {
    const METRICS: [(&str, &str); 4] = [
        (
            "quota_count_limit_per_namespace",
            "Znode count limit of the namespace's quotas",
        ),
        (
            "quota_bytes_limit_per_namespace",
            "Byte limit of the namespace's quotas",
        ),
        (
            "quota_count_usage_per_namespace",
            "Znodes under the namespace's quotas",
        ),
        (
            "quota_bytes_usage_per_namespace",
            "Bytes under the namespace's quotas",
        ),
    ];
    for (metric, help) in METRICS {
        let suffix = format!("_{metric}");
        let samples: Vec<(&str, i64)> = quota
            .iter()
            .filter_map(|(k, v)| Some((k.strip_suffix(&suffix)?, *v)))
            .collect();
        if !samples.is_empty() && t.family(metric, Kind::Gauge, help) {
            for (ns, v) in samples {
                t.sample(metric, &[("key", ns)], V::I(v));
            }
        }
    }
}

/// Per-shard figures, one labelled sample per shard.
fn shard_families(t: &mut Text<'_>, shards: &[ShardSample]) {
    type Get = fn(&ShardSample) -> Option<V>;
    let families: [(&str, Kind, &str, Get); 7] = [
        (
            "corral_shard_connections",
            Kind::Gauge,
            "Client connections on the shard",
            |s| Some(V::U(s.connections)),
        ),
        (
            "corral_shard_outstanding_requests",
            Kind::Gauge,
            "Requests received and not yet answered, per shard",
            |s| Some(V::U(s.outstanding_requests)),
        ),
        (
            "corral_shard_packets_received",
            Kind::Counter,
            "Requests received, per shard (4lw srst clears it)",
            |s| Some(V::U(s.packets_received)),
        ),
        (
            "corral_shard_packets_sent",
            Kind::Counter,
            "Replies and notifications sent, per shard (4lw srst clears it)",
            |s| Some(V::U(s.packets_sent)),
        ),
        (
            "corral_shard_watches",
            Kind::Gauge,
            "Watches set on the shard",
            |s| Some(V::U(s.watches)),
        ),
        (
            "corral_shard_last_zxid",
            Kind::Gauge,
            "Last zxid the shard's replica applied",
            |s| Some(V::I(s.last_zxid)),
        ),
        (
            "corral_shard_cpu_seconds_total",
            Kind::Counter,
            "CPU time of the shard's thread, seconds",
            |s| s.cpu_seconds.map(V::F),
        ),
    ];
    if shards.is_empty() {
        return;
    }
    for (name, kind, help, get) in families {
        if shards.iter().all(|s| get(s).is_none()) || !t.family(name, kind, help) {
            continue;
        }
        for s in shards {
            if let Some(v) = get(s) {
                t.sample(name, &[("shard", &s.shard.to_string())], v);
            }
        }
    }
    for (name, help, get) in [
        (
            "corral_shard_read_latency_us",
            "Read latency per shard, microseconds",
            (|s| &s.read_latency) as fn(&ShardSample) -> &Summary,
        ),
        (
            "corral_shard_update_latency_us",
            "Write latency per shard, microseconds",
            |s| &s.update_latency,
        ),
    ] {
        if t.family(name, Kind::Summary, help) {
            for s in shards {
                let id = s.shard.to_string();
                t.summary_samples(name, &[("shard", &id)], get(s), &QUANTILES_FINE, 1.0);
            }
        }
    }
}

/// The `corral_*` figures `mntr` prints (`ServerStats::extra_metrics`): counters where the
/// figure only grows, gauges otherwise. A figure that is not a number, or whose name
/// Prometheus would refuse, is left out.
fn extra(t: &mut Text<'_>, name: &str, value: &str) {
    const COUNTERS: &[&str] = &[
        "corral_elections",
        "corral_synced_by_diff",
        "corral_synced_by_trunc",
        "corral_synced_by_snap",
        "corral_log_flushes",
        "corral_log_fsyncs",
        "corral_log_fsync_time_us_total",
        "corral_log_bytes_written",
        "corral_log_fill_stalls",
        "corral_log_failed_flushes",
        "corral_log_unfilled_writes",
        "corral_log_prealloc_failures",
        "corral_snapshot_taken",
        "corral_snapshot_failed",
    ];
    if !valid_name(name) {
        return;
    }
    let v = if let Ok(n) = value.parse::<u64>() {
        V::U(n)
    } else if let Ok(n) = value.parse::<i64>() {
        V::I(n)
    } else if let Ok(x) = value.parse::<f64>() {
        V::F(x)
    } else {
        return;
    };
    let help = format!("corral's {name}, as mntr prints it (docs/metrics.md)");
    if COUNTERS.contains(&name) {
        t.counter(name, &help, v);
    } else {
        t.gauge(name, &help, v);
    }
}

/// Prometheus's metric name grammar: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests;
