//! Per-core counters and HDR histograms, merged per phase; the clock every latency is read from.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Nanoseconds since the process's first call: one monotonic clock (CLOCK_MONOTONIC) for every
/// core, so a send time taken on one core and a receive time on another compare.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// `LOADGEN_SLOW_US=N`: every op slower than N us is printed to stderr with its start and end
/// in CLOCK_MONOTONIC ms, the clock `perf record -k CLOCK_MONOTONIC` stamps with, so a slow
/// request can be set against a trace of the server.
fn slow_log(start: u64, end: u64) {
    static SLOW: OnceLock<(u64, i128)> = OnceLock::new();
    let (limit, offset) = *SLOW.get_or_init(|| {
        let limit = std::env::var("LOADGEN_SLOW_US")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(u64::MAX, |us| us * 1000);
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid out-pointer for clock_gettime.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        (limit, mono - now_ns() as i128)
    });
    if end.saturating_sub(start) > limit {
        let ms = |t: u64| (t as i128 + offset) as f64 / 1e6;
        eprintln!(
            "slow {:.3} {:.3} {}",
            ms(start),
            ms(end),
            (end - start) / 1000
        );
    }
}

/// The operations the loadgen times, each with its own histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetData,
    Exists,
    GetChildren,
    SetData,
    Create,
    Delete,
    /// TCP connect + ZooKeeper handshake (session churn).
    Connect,
    /// closeSession request to its reply (session churn).
    Close,
    /// A watch notification, from the triggering setData's send (watch fan-out).
    Notify,
    /// From the setData's send to the last watcher's notification (watch fan-out).
    FanoutAll,
    /// Lock recipe: from the lock node's create to holding the lock.
    Acquire,
}

pub const OP_COUNT: usize = 11;

impl Op {
    pub const ALL: [Op; OP_COUNT] = [
        Op::GetData,
        Op::Exists,
        Op::GetChildren,
        Op::SetData,
        Op::Create,
        Op::Delete,
        Op::Connect,
        Op::Close,
        Op::Notify,
        Op::FanoutAll,
        Op::Acquire,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::GetData => "getData",
            Op::Exists => "exists",
            Op::GetChildren => "getChildren",
            Op::SetData => "setData",
            Op::Create => "create",
            Op::Delete => "delete",
            Op::Connect => "connect",
            Op::Close => "close",
            Op::Notify => "notify",
            Op::FanoutAll => "fanout-all",
            Op::Acquire => "lock-acquire",
        }
    }

    /// Client requests (as opposed to derived measurements: notifications, fan-out, acquire).
    pub fn is_request(self) -> bool {
        !matches!(self, Op::Notify | Op::FanoutAll | Op::Acquire)
    }
}

/// 1 ns .. 100 s at 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

/// What one core counted in one phase. `sent` and `replies` count every request and reply of
/// the phase (warmup included); histograms hold only the measured window.
#[derive(Default)]
pub struct CoreStats {
    pub hist: [Option<Histogram<u64>>; OP_COUNT],
    /// Requests written (connect handshakes and closeSession included).
    pub sent: u64,
    /// Replies received (error replies included).
    pub replies: u64,
    /// Watch notifications received.
    pub notifications: u64,
    /// Notifications the workload expected (watch fan-out).
    pub expected_notifications: u64,
    /// Errors by kind: ZooKeeper error names, or the loadgen's own ("timeout", "xid-mismatch", ...).
    pub errors: BTreeMap<String, u64>,
    /// The measured window [start, end) in `now_ns` time: an op is measured when its (intended)
    /// start falls in it.
    pub window: (u64, u64),
}

impl CoreStats {
    pub fn new(window: (u64, u64)) -> CoreStats {
        CoreStats {
            window,
            ..Default::default()
        }
    }

    pub fn in_window(&self, start: u64) -> bool {
        start >= self.window.0 && start < self.window.1
    }

    /// Records an op that started (or was meant to start) at `start` and completed at `end`.
    #[inline]
    pub fn record(&mut self, op: Op, start: u64, end: u64) {
        if !self.in_window(start) {
            return;
        }
        let h = self.hist[op as usize].get_or_insert_with(new_hist);
        h.saturating_record(end.saturating_sub(start).max(1));
        slow_log(start, end);
    }

    pub fn error(&mut self, kind: impl Into<String>) {
        self.error_n(kind, 1);
    }

    pub fn error_n(&mut self, kind: impl Into<String>, n: u64) {
        if n > 0 {
            *self.errors.entry(kind.into()).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, o: &CoreStats) {
        for (i, h) in o.hist.iter().enumerate() {
            if let Some(h) = h {
                let mine = self.hist[i].get_or_insert_with(new_hist);
                mine.add(h).expect("same bounds");
            }
        }
        self.sent += o.sent;
        self.replies += o.replies;
        self.notifications += o.notifications;
        self.expected_notifications += o.expected_notifications;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        if self.window == (0, 0) {
            self.window = o.window;
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The percentiles every report shows.
pub const PERCENTILES: [(f64, &str); 5] = [
    (50.0, "p50"),
    (90.0, "p90"),
    (99.0, "p99"),
    (99.9, "p99.9"),
    (99.99, "p99.99"),
];

/// The percentile curve of a histogram as (percentile, value) points, for `loadgen plot`: ten per
/// decade of 1/(1-p) (the "nines" axis the plot draws on), from p = 0 up to where the samples run
/// out (1/(1-p) = count: beyond it every percentile is the max), then the max at that point and at
/// p = 100. Bounded (about 10 points per decade of count), unlike the .hgrm bucket list.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    let n = h.len() as f64;
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    for k in 0.. {
        let inv = 10f64.powf(k as f64 / 10.0);
        if inv >= n {
            break;
        }
        let p = 100.0 * (1.0 - 1.0 / inv);
        out.push((p, h.value_at_percentile(p)));
    }
    out.push((100.0 * (1.0 - 1.0 / n), h.max()));
    out.push((100.0, h.max()));
    out
}

/// A histogram as an `.hgrm` percentile distribution (the format of HdrHistogram's
/// `outputPercentileDistribution` and wrk2), values in milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    use std::fmt::Write;
    let ms = |v: f64| v / 1e6;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - q))
        } else {
            format!("{:>14}", "inf")
        };
        let _ = writeln!(
            s,
            "{:>12.3} {:>2.12} {:>10} {}",
            ms(h.highest_equivalent(v.value_iterated_to()) as f64),
            q,
            total,
            inv
        );
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        ms(h.mean()),
        ms(h.stdev())
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        ms(h.max() as f64),
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_monotone_and_ends_at_the_max() {
        let mut h = new_hist();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let c = curve(&h);
        // 10 points per decade of 1/(1-p) below 10^4, then (1-1/n, max) and (100, max).
        assert_eq!(c.len(), 40 + 2);
        assert_eq!(c[0].0, 0.0);
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        let (p, v) = c[c.len() - 1];
        assert_eq!((p, v), (100.0, h.max()));
        assert_eq!(c[c.len() - 2].1, h.max());
        let p90 = c[10];
        assert!((p90.0 - 90.0).abs() < 1e-9);
        assert!((p90.1 as f64 / 1000.0 - 9000.0).abs() < 10.0, "{p90:?}");
        assert!(curve(&new_hist()).is_empty());
    }
}
