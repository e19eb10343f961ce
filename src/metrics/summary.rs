//! Latency summaries: an HdrHistogram per shard, recorded on the shard's thread (one record per
//! request, a few nanoseconds, no lock, no allocation), copied into the shard's report and
//! merged at scrape. Quantiles cover a sliding window (the last one to two [`WINDOW`]s, as
//! ZooKeeper's Prometheus summaries forget old observations); `_count` and `_sum` count every
//! observation since start, as Prometheus expects of a summary.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How long an observation counts towards the quantiles: it stays for one to two windows.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The largest value a histogram keeps apart (an hour in microseconds); larger ones are
/// counted as this.
const HIGHEST: u64 = 3_600_000_000;

/// Two significant digits: a quantile is within 1% of the true value.
const SIGFIG: u8 = 2;

fn empty() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST, SIGFIG).expect("constant bounds are valid")
}

/// One shard's observations of one quantity (microseconds, or a count).
#[derive(Debug, Clone)]
pub struct Window {
    current: Histogram<u64>,
    previous: Histogram<u64>,
    /// When `current` began; None until the first sample (a state machine that keeps a
    /// window reads no clock: whoever samples it gives the time).
    started: Option<Instant>,
    count: u64,
    sum: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            current: empty(),
            previous: empty(),
            started: None,
            count: 0,
            sum: 0,
        }
    }
}

impl Window {
    pub fn new(now: Instant) -> Window {
        Window {
            started: Some(now),
            ..Window::default()
        }
    }

    #[inline]
    pub fn record(&mut self, value: u64) {
        self.current.saturating_record(value.min(HIGHEST));
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
    }

    /// The window's figures at `now`: forgets what is older than two windows first.
    pub fn sample(&mut self, now: Instant) -> Summary {
        let started = *self.started.get_or_insert(now);
        let age = now.saturating_duration_since(started);
        if age >= 2 * WINDOW {
            self.previous.reset();
            self.current.reset();
            self.started = Some(now);
        } else if age >= WINDOW {
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.reset();
            self.started = Some(now);
        }
        let mut recent = self.current.clone();
        // Same bounds on both sides: adding cannot fail.
        let _ = recent.add(&self.previous);
        Summary {
            recent,
            count: self.count,
            sum: self.sum,
        }
    }
}

/// A summary as a scrape sees it: recent observations for the quantiles, all-time count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub recent: Histogram<u64>,
    pub count: u64,
    pub sum: u64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            recent: empty(),
            count: 0,
            sum: 0,
        }
    }
}

impl Summary {
    pub fn merge(&mut self, other: &Summary) {
        let _ = self.recent.add(&other.recent);
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// The value at quantile `q` (0..=1) of the recent observations; `None` when there are
    /// none (Prometheus's summaries then print NaN).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        (!self.recent.is_empty()).then(|| self.recent.value_at_quantile(q))
    }
}

/// A shard's latency windows: reads answered from its replica and writes of its connections
/// (ZooKeeper's `readlatency` and `updatelatency`), in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    pub read: Window,
    pub update: Window,
}

impl Latencies {
    pub fn new(now: Instant) -> Latencies {
        Latencies {
            read: Window::new(now),
            update: Window::new(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_totals() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        for v in 1..=100 {
            w.record(v * 1000);
        }
        let s = w.sample(t0);
        assert_eq!((s.count, s.sum), (100, 5_050_000));
        let p50 = s.quantile(0.5).unwrap();
        assert!((49_500..=50_500).contains(&p50), "{p50}");
        let p99 = s.quantile(0.99).unwrap();
        assert!((98_000..=100_000).contains(&p99), "{p99}");
        assert_eq!(Summary::default().quantile(0.5), None);
    }

    #[test]
    fn old_observations_leave_the_quantiles_but_not_the_totals() {
        let t0 = Instant::now();
        let mut w = Window::new(t0);
        w.record(7);
        // One window later the observation is still recent...
        assert_eq!(w.sample(t0 + WINDOW).quantile(0.5), Some(7));
        w.record(9);
        // ...two windows after it, it is gone; the later one stays a window more.
        let s = w.sample(t0 + 2 * WINDOW);
        assert_eq!((s.quantile(0.5), s.count, s.sum), (Some(9), 2, 16));
        let s = w.sample(t0 + 5 * WINDOW);
        assert_eq!((s.quantile(0.5), s.count), (None, 2));
    }

    #[test]
    fn merging_shards_and_huge_values() {
        let t0 = Instant::now();
        let (mut a, mut b) = (Window::new(t0), Window::new(t0));
        a.record(10);
        b.record(u64::MAX);
        let mut s = a.sample(t0);
        s.merge(&b.sample(t0));
        assert_eq!(s.count, 2);
        assert_eq!(s.sum, u64::MAX);
        assert_eq!(s.quantile(0.0), Some(10));
        assert!(s.quantile(1.0).unwrap() >= HIGHEST);
    }
}
