//! The renderer's text checked line by line, and the settings' grammar.

use std::time::Instant;

use super::*;
use crate::admin::{AdminData, LeaderStats, ServerMode};

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// Every sample line's metric name has a `# TYPE` line before it, for its family.
fn check_well_formed(text: &str) {
    let mut typed: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(!typed.iter().any(|(n, _)| n == name), "family {name} twice");
            typed.push((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        let (family, kind) = typed.last().expect("a sample before any TYPE");
        let ok = name == family
            || (kind == "summary"
                && (name == format!("{family}_sum") || name == format!("{family}_count")));
        assert!(ok, "sample {name} under family {family}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value == "NaN" || value.parse::<f64>().is_ok(),
            "value of {line}"
        );
    }
}

#[test]
fn zookeeper_names_and_values() {
    let mut d = AdminData::default();
    d.stats.node_count = 42;
    d.stats.watch_count = 3;
    d.stats.ephemerals_count = 2;
    d.stats.num_alive_connections = 5;
    d.stats.packets_received = 100;
    d.stats.packets_sent = 101;
    d.stats.latency.record(1);
    d.stats.latency.record(2);
    d.stats.open_fd_count = Some(17);
    d.stats.last_zxid = 0x1_0000_0005;
    let text = render(&d);
    check_well_formed(&text);
    let l = lines(&text);
    for want in [
        "# HELP znode_count Znodes in the tree",
        "# TYPE znode_count gauge",
        "znode_count 42",
        "watch_count 3",
        "ephemerals_count 2",
        "num_alive_connections 5",
        "packets_received 100",
        "packets_sent 101",
        "avg_latency 1.5",
        "max_latency 2",
        "open_file_descriptor_count 17",
        "corral_last_zxid 4294967301",
        "corral_serving 1",
        "# TYPE readlatency summary",
        "readlatency{quantile=\"0.5\"} NaN",
        "readlatency_count 0",
    ] {
        assert!(l.contains(&want), "missing {want:?} in\n{text}");
    }
    // Unknown figures are left out, not printed as 0 or -1.
    assert!(!text.contains("max_file_descriptor_count"));
    assert!(!text.contains("quorum_size"));
    assert!(!text.contains("fsynctime"));
    assert!(!text.contains("process_"));
    // A standalone server's ensemble of one has a leader's figures; ZooKeeper prints none.
    d.stats.leader = Some(LeaderStats::default());
    assert!(!render(&d).contains("learners"));
}

#[test]
fn leader_and_quorum_figures() {
    let mut d = AdminData::default();
    d.stats.mode = ServerMode::Leader;
    d.stats.quorum_size = Some(3);
    d.stats.leader = Some(LeaderStats {
        learners: 2,
        synced_followers: 2,
        ..LeaderStats::default()
    });
    let mut election = crate::metrics::Window::default();
    election.record(250_000);
    d.metrics.election = Some(election.sample(std::time::Instant::now()));
    let text = render(&d);
    check_well_formed(&text);
    let l = lines(&text);
    for want in [
        "quorum_size 3",
        "learners 2",
        "synced_followers 2",
        "last_proposal_size -1",
        "# TYPE election_time summary",
        "election_time{quantile=\"0.5\"} 250",
        "election_time_sum 250",
        "election_time_count 1",
        "corral_info{version=\"",
    ] {
        assert!(
            l.iter().any(|x| x.starts_with(want)),
            "missing {want:?} in\n{text}"
        );
    }
    assert!(text.contains("mode=\"leader\"} 1\n"));
}

#[test]
fn latency_quantiles_merge_the_shards() {
    let t0 = Instant::now();
    let mut shards = Vec::new();
    for id in 0..2 {
        let mut lat = Latencies::new(t0);
        for v in 0..100u64 {
            // Shard 0 sees 1..=100 ms, shard 1 the same: the merge keeps the quantiles.
            lat.read.record((v + 1) * 1000);
        }
        lat.update.record(2500);
        shards.push(ShardSample {
            shard: id,
            connections: id as u64 + 1,
            cpu_seconds: Some(0.25),
            read_latency: lat.read.sample(t0),
            update_latency: lat.update.sample(t0),
            ..ShardSample::default()
        });
    }
    let mut d = AdminData::default();
    d.metrics.shards = shards;
    let text = render(&d);
    check_well_formed(&text);
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let p50 = value("readlatency{quantile=\"0.5\"}");
    assert!((49.0..=51.0).contains(&p50), "{p50}");
    let p99 = value("readlatency{quantile=\"0.99\"}");
    assert!((98.0..=100.5).contains(&p99), "{p99}");
    assert_eq!(value("readlatency_count"), 200.0);
    assert_eq!(value("readlatency_sum"), 2.0 * 5050.0);
    assert_eq!(value("updatelatency_count"), 2.0);
    let u = value("updatelatency{quantile=\"0.9\"}");
    assert!((2.47..=2.53).contains(&u), "{u}");
    assert_eq!(value("corral_update_latency_us_sum"), 5000.0);
    assert_eq!(value("corral_shard_connections{shard=\"1\"}"), 2.0);
    assert_eq!(value("corral_shard_cpu_seconds_total{shard=\"0\"}"), 0.25);
    assert_eq!(
        value("corral_shard_read_latency_us_count{shard=\"1\"}"),
        100.0
    );
    assert!(text.contains("corral_shard_read_latency_us{shard=\"0\",quantile=\"0.999\"} "));
}

#[test]
fn extra_figures_typed_and_filtered() {
    let mut d = AdminData::default();
    let e = |k: &str, v: &str| (k.to_string(), v.to_string());
    d.stats.extra_metrics = vec![
        e("corral_log_fsyncs", "12"),
        e("corral_log_failing", "0"),
        e("corral_last_committed_zxid", "-1"),
        e("bad name", "1"),
        e("corral_not_a_number", "abc"),
        // A name already printed is not printed twice.
        e("znode_count", "7"),
    ];
    d.metrics.process = Some(Process {
        cpu_seconds: Some(1.5),
        resident_memory_bytes: Some(4096),
        ..Process::default()
    });
    d.metrics.core_cpu_seconds = Some(2.5);
    let text = render(&d);
    check_well_formed(&text);
    let l = lines(&text);
    for want in [
        "# TYPE corral_log_fsyncs counter",
        "corral_log_fsyncs 12",
        "# TYPE corral_log_failing gauge",
        "corral_last_committed_zxid -1",
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 1.5",
        "process_resident_memory_bytes 4096",
        "# TYPE corral_write_core_cpu_seconds_total counter",
        "corral_write_core_cpu_seconds_total 2.5",
        "znode_count 0",
    ] {
        assert!(l.contains(&want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("bad name"));
    assert!(!text.contains("corral_not_a_number"));
    assert!(!text.contains("znode_count 7"));
}

#[test]
fn only_the_families_asked_for() {
    let mut d = AdminData::default();
    d.stats.node_count = 9;
    d.metrics.shards = vec![ShardSample::default()];
    let only = [
        "znode_count".to_string(),
        "readlatency".to_string(),
        "corral_shard_watches".to_string(),
    ];
    let text = render_only(&d, Some(&only));
    check_well_formed(&text);
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        families,
        ["znode_count", "readlatency", "corral_shard_watches"]
    );
    assert!(text.contains("\nznode_count 9\n"));
    assert!(text.contains("readlatency_count 0\n"));
    assert!(text.contains("corral_shard_watches{shard=\"0\"} 0\n"));
    assert_eq!(render_only(&d, Some(&[])), "");
}

#[test]
fn quota_gauges_get_zookeepers_key_label() {
    let mut d = AdminData::default();
    d.stats.quota_metrics = vec![
        ("app_quota_count_limit_per_namespace".to_string(), 10),
        ("my_ns_quota_count_limit_per_namespace".to_string(), -1),
        ("app_quota_bytes_usage_per_namespace".to_string(), 42),
    ];
    let text = render(&d);
    check_well_formed(&text);
    let l = lines(&text);
    for want in [
        "# TYPE quota_count_limit_per_namespace gauge",
        "quota_count_limit_per_namespace{key=\"app\"} 10",
        "quota_count_limit_per_namespace{key=\"my_ns\"} -1",
        "quota_bytes_usage_per_namespace{key=\"app\"} 42",
    ] {
        assert!(l.contains(&want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("quota_bytes_limit_per_namespace"));
}

#[test]
fn escaping() {
    let mut d = AdminData::default();
    d.stats.version = "3.8\"x\\y\nz".to_string();
    let text = render(&d);
    assert!(
        text.contains(r#"corral_info{version="3.8\"x\\y\nz",mode="standalone"} 1"#),
        "{text}"
    );
}

#[test]
fn settings() {
    let mut s = Settings::default();
    assert_eq!(
        (s.enabled, s.http_port, s.http_host.to_string()),
        (true, 7000, "127.0.0.1".to_string())
    );
    let ok = |s: &mut Settings, k: &str, v: &str| assert_eq!(s.apply(k, v), Ok(None), "{k}={v}");
    ok(
        &mut s,
        "metricsProvider.className",
        "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
    );
    assert!(!s.enabled);
    ok(
        &mut s,
        "metricsProvider.className",
        " org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
    );
    assert!(s.enabled);
    ok(
        &mut s,
        "metricsProvider.className",
        "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
    );
    assert!(!s.enabled);
    ok(&mut s, "metricsProvider.httpPort", "0");
    ok(&mut s, "metricsProvider.httpHost", "0.0.0.0");
    ok(&mut s, "metricsProvider.exportJvmInfo", "FALSE");
    assert_eq!(
        (s.http_port, s.http_host.to_string(), s.export_process_info),
        (0, "0.0.0.0".to_string(), false)
    );
    ok(&mut s, "metricsProvider.httpHost", "[::1]");
    assert_eq!(s.http_host.to_string(), "::1");
    ok(&mut s, "metricsProvider.httpHost", "localhost");
    assert_eq!(s.http_host, HTTP_HOST_DEFAULT);

    for (k, v) in [
        ("metricsProvider.className", "com.example.Mine"),
        ("metricsProvider.httpPort", "70000"),
        ("metricsProvider.httpPort", "-1"),
        ("metricsProvider.httpHost", "metrics.example.com"),
        ("metricsProvider.exportJvmInfo", "yes"),
    ] {
        assert!(s.apply(k, v).is_err(), "{k}={v} accepted");
    }
    for k in [
        "metricsProvider.numWorkerThreads",
        "metricsProvider.httpsPort",
    ] {
        assert!(matches!(s.apply(k, "1"), Ok(Some(_))), "{k}");
    }
}
