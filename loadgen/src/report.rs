//! A phase's results as a human table, a JSON line and .hgrm files; and the markdown comparison
//! of two runs' JSON lines (`loadgen report`).

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::run::Workload;
use crate::stats::{curve, hgrm, CoreStats, Op, PERCENTILES};

pub struct PhaseResult {
    pub label: String,
    pub workload: Workload,
    pub rate: Option<f64>,
    pub sessions: usize,
    pub outstanding: usize,
    pub threads: usize,
    pub payload: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub stats: CoreStats,
    pub server_cpu_ns: Option<u64>,
    pub server_rss_kb_max: Option<u64>,
    pub server_rss_kb_end: Option<u64>,
    /// Each member of an ensemble (`--server-pid` with several PIDs); empty for one server,
    /// whose figures are the server_* fields.
    pub members: Vec<MemberUse>,
    pub loadgen_cpu_ns: u64,
}

/// One server process's CPU time over the measured window and its RSS.
pub struct MemberUse {
    pub pid: i32,
    pub cpu_ns: Option<u64>,
    pub rss_kb_max: Option<u64>,
    pub rss_kb_end: Option<u64>,
}

impl PhaseResult {
    pub fn mode(&self) -> &'static str {
        if self.rate.is_some() {
            "open"
        } else {
            "closed"
        }
    }

    /// The phase's name, the key `loadgen report` matches runs on.
    pub fn name(&self) -> String {
        match self.rate {
            Some(r) => format!(
                "{} open {:.0}/s {}x{}",
                self.workload.name(),
                r,
                self.sessions,
                self.outstanding
            ),
            None => format!(
                "{} closed {}x{}",
                self.workload.name(),
                self.sessions,
                self.outstanding
            ),
        }
    }

    /// Measured client requests (successful replies to requests sent in the window).
    pub fn ops(&self) -> u64 {
        Op::ALL
            .iter()
            .filter(|o| o.is_request())
            .filter_map(|o| self.stats.hist[*o as usize].as_ref())
            .map(|h| h.len())
            .sum()
    }

    pub fn throughput(&self) -> f64 {
        self.ops() as f64 / self.duration_s
    }

    fn per_op_us(&self, ns: u64) -> Option<f64> {
        let ops = self.ops();
        (ops > 0).then(|| ns as f64 / 1000.0 / ops as f64)
    }

    pub fn json(&self) -> Value {
        let mut lat = Map::new();
        for o in Op::ALL {
            let Some(h) = &self.stats.hist[o as usize] else {
                continue;
            };
            let mut m = Map::new();
            m.insert("count".into(), json!(h.len()));
            m.insert("per_s".into(), json!(h.len() as f64 / self.duration_s));
            m.insert("mean".into(), json!(h.mean() / 1000.0));
            for (q, name) in PERCENTILES {
                m.insert(name.into(), json!(h.value_at_percentile(q) as f64 / 1000.0));
            }
            m.insert("max".into(), json!(h.max() as f64 / 1000.0));
            // The whole curve, for `loadgen plot`: [percentile, us] pairs.
            let pts: Vec<Value> = curve(h)
                .into_iter()
                .map(|(p, v)| json!([(p * 1e9).round() / 1e9, v as f64 / 1000.0]))
                .collect();
            m.insert("percentiles".into(), Value::Array(pts));
            lat.insert(o.name().into(), Value::Object(m));
        }
        json!({
            "label": self.label,
            "phase": self.name(),
            "workload": self.workload.name(),
            "mode": self.mode(),
            "rate": self.rate,
            "sessions": self.sessions,
            "outstanding": self.outstanding,
            "threads": self.threads,
            "payload": self.payload,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "sent": self.stats.sent,
            "replies": self.stats.replies,
            "notifications": self.stats.notifications,
            "expected_notifications": self.stats.expected_notifications,
            "errors": self.stats.errors,
            "error_total": self.stats.error_total(),
            "ops": self.ops(),
            "throughput": self.throughput(),
            "server_cpu_us_per_op": self.server_cpu_ns.and_then(|n| self.per_op_us(n)),
            "server_cpu_util": self.server_cpu_ns.map(|n| n as f64 / 1e9 / self.duration_s),
            "server_rss_kb": self.server_rss_kb_end,
            "server_rss_kb_max": self.server_rss_kb_max,
            "members": self.members.iter().map(|m| json!({
                "pid": m.pid,
                "cpu_us_per_op": m.cpu_ns.and_then(|n| self.per_op_us(n)),
                "cpu_util": m.cpu_ns.map(|n| n as f64 / 1e9 / self.duration_s),
                "rss_kb": m.rss_kb_end,
                "rss_kb_max": m.rss_kb_max,
            })).collect::<Vec<_>>(),
            "loadgen_cpu_us_per_op": self.per_op_us(self.loadgen_cpu_ns),
            "loadgen_cpu_util": self.loadgen_cpu_ns as f64 / 1e9 / self.duration_s,
            "latency_us": lat,
        })
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "== {} | {} | {:.1} s measured after {:.1} s warmup, {} loadgen thread(s), payload {} B ==",
            self.label,
            self.name(),
            self.duration_s,
            self.warmup_s,
            self.threads,
            self.payload
        );
        let _ = write!(s, "{:<13} {:>10} {:>11}", "op (us)", "count", "per s");
        for (_, name) in PERCENTILES {
            let _ = write!(s, " {:>9}", name);
        }
        let _ = writeln!(s, " {:>9}", "max");
        for o in Op::ALL {
            let Some(h) = &self.stats.hist[o as usize] else {
                continue;
            };
            let _ = write!(
                s,
                "{:<13} {:>10} {:>11.1}",
                o.name(),
                h.len(),
                h.len() as f64 / self.duration_s
            );
            for (q, _) in PERCENTILES {
                let _ = write!(s, " {:>9.1}", h.value_at_percentile(q) as f64 / 1000.0);
            }
            let _ = writeln!(s, " {:>9.1}", h.max() as f64 / 1000.0);
        }
        let _ = write!(
            s,
            "throughput {:.1} ops/s; requests sent {}, replies {}",
            self.throughput(),
            self.stats.sent,
            self.stats.replies
        );
        if self.stats.expected_notifications > 0 || self.stats.notifications > 0 {
            let _ = write!(
                s,
                "; notifications {} of {} expected",
                self.stats.notifications, self.stats.expected_notifications
            );
        }
        let _ = writeln!(s);
        let mut parts = Vec::new();
        if let Some(n) = self.server_cpu_ns {
            parts.push(format!(
                "server CPU {:.2} us/op ({:.0}% of a core)",
                self.per_op_us(n).unwrap_or(f64::NAN),
                n as f64 / 1e7 / self.duration_s
            ));
        }
        if let Some(r) = self.server_rss_kb_end {
            parts.push(format!(
                "server RSS {:.1} MiB (max {:.1})",
                r as f64 / 1024.0,
                self.server_rss_kb_max.unwrap_or(r) as f64 / 1024.0
            ));
        }
        for m in &self.members {
            parts.push(format!(
                "member {}: CPU {:.2} us/op, RSS max {:.1} MiB",
                m.pid,
                m.cpu_ns.and_then(|n| self.per_op_us(n)).unwrap_or(f64::NAN),
                m.rss_kb_max.unwrap_or(0) as f64 / 1024.0
            ));
        }
        parts.push(format!(
            "loadgen CPU {:.2} us/op ({:.0}% of a core)",
            self.per_op_us(self.loadgen_cpu_ns).unwrap_or(f64::NAN),
            self.loadgen_cpu_ns as f64 / 1e7 / self.duration_s
        ));
        let _ = writeln!(s, "{}", parts.join("; "));
        let errs = self.stats.error_total();
        if errs > 0 {
            let list: Vec<String> = self
                .stats
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "!!! {errs} ERRORS in this phase: {}", list.join(" "));
        }
        s
    }

    /// Writes one .hgrm file per op into `dir`.
    pub fn write_hgrm(&self, dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for o in Op::ALL {
            let Some(h) = &self.stats.hist[o as usize] else {
                continue;
            };
            let name = format!("{}-{}-{}.hgrm", self.label, self.name(), o.name())
                .replace(['/', ' '], "_");
            let p = dir.join(name);
            std::fs::write(&p, hgrm(h))?;
            written.push(p);
        }
        Ok(written)
    }
}

/// Reads JSON lines (other lines are skipped).
pub fn read_jsonl(path: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("phase").is_some())
        .collect())
}

pub fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(|x| x.as_f64())
}

fn fmt_num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "-".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// The headline op of a phase: the one whose latency the comparison shows.
pub fn headline(v: &Value) -> Option<(String, Value)> {
    let lat = v.get("latency_us")?.as_object()?;
    for k in [
        "lock-acquire",
        "notify",
        "connect",
        "getData",
        "exists",
        "getChildren",
        "setData",
        "create",
    ] {
        if let Some(x) = lat.get(k) {
            return Some((k.to_string(), x.clone()));
        }
    }
    None
}

/// Markdown tables comparing run `a` (e.g. corral) against run `b` (e.g. ZooKeeper), phase by
/// phase (phases are matched by name, in `a`'s order).
pub fn compare(a_label: &str, a: &[Value], b_label: &str, b: &[Value]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| phase | op | {a_label} ops/s | {b_label} ops/s | ratio | {a_label} p50 | {b_label} p50 | {a_label} p99 | {b_label} p99 | {a_label} p99.9 | {b_label} p99.9 | {a_label} max | {b_label} max | {a_label} CPU us/op | {b_label} CPU us/op | {a_label} RSS MiB | {b_label} RSS MiB | errors |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(18));
    for x in a {
        let name = x["phase"].as_str().unwrap_or("");
        let Some(y) = b.iter().find(|y| y["phase"].as_str() == Some(name)) else {
            continue;
        };
        let Some((op, lx)) = headline(x) else {
            continue;
        };
        let ly = y["latency_us"].get(&op).cloned().unwrap_or(Value::Null);
        let rss = |v: &Value| f(v, "server_rss_kb_max").map(|k| k / 1024.0);
        let errs = format!(
            "{} / {}",
            x["error_total"].as_u64().unwrap_or(0),
            y["error_total"].as_u64().unwrap_or(0)
        );
        let _ = writeln!(
            s,
            "| {name} | {op} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {errs} |",
            fmt_num(f(x, "throughput"), 0),
            fmt_num(f(y, "throughput"), 0),
            ratio(f(x, "throughput"), f(y, "throughput")),
            fmt_num(f(&lx, "p50"), 1),
            fmt_num(f(&ly, "p50"), 1),
            fmt_num(f(&lx, "p99"), 1),
            fmt_num(f(&ly, "p99"), 1),
            fmt_num(f(&lx, "p99.9"), 1),
            fmt_num(f(&ly, "p99.9"), 1),
            fmt_num(f(&lx, "max"), 0),
            fmt_num(f(&ly, "max"), 0),
            fmt_num(f(x, "server_cpu_us_per_op"), 2),
            fmt_num(f(y, "server_cpu_us_per_op"), 2),
            fmt_num(rss(x), 1),
            fmt_num(rss(y), 1),
        );
    }
    s
}

/// One markdown table of a single run (e.g. the echo floor).
pub fn single(label: &str, a: &[Value]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| phase | op | {label} ops/s | p50 | p99 | p99.9 | max | server CPU us/op | loadgen CPU us/op | errors |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(10));
    for x in a {
        let Some((op, l)) = headline(x) else { continue };
        let _ = writeln!(
            s,
            "| {} | {op} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x["phase"].as_str().unwrap_or(""),
            fmt_num(f(x, "throughput"), 0),
            fmt_num(f(&l, "p50"), 1),
            fmt_num(f(&l, "p99"), 1),
            fmt_num(f(&l, "p99.9"), 1),
            fmt_num(f(&l, "max"), 0),
            fmt_num(f(x, "server_cpu_us_per_op"), 2),
            fmt_num(f(x, "loadgen_cpu_us_per_op"), 2),
            x["error_total"].as_u64().unwrap_or(0),
        );
    }
    s
}
