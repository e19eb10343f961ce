//! `loadgen stalls`: how long this machine takes each CPU away from a thread that never sleeps.
//!
//! One thread per CPU, pinned, reads the monotonic clock in a tight loop; every gap between two
//! reads longer than `--min-us` is time the thread did not run: an interrupt, a kernel thread, or
//! (on a VM) the host running something else on that vCPU. No server, no network, no syscalls in
//! the loop: whatever shows up here is a floor under every latency measured on the machine, so
//! compare.sh records it beside the results (docs/BENCHMARKS.md, "Machine stalls").
//!
//! With `--sleep-us N` the threads instead sleep to absolute deadlines N us apart and count how
//! late each wake-up came: whether an idle CPU gets the machine back any sooner than a busy one
//! (on a VM whose host deschedules spinning vCPUs, it might).

use std::time::{Duration, Instant};

use clap::Args;

#[derive(Args, Debug)]
pub struct StallArgs {
    /// CPUs to probe, comma separated (one spinning thread on each, at the same time).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub cpus: Vec<usize>,
    /// Seconds to probe.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Gaps shorter than this many microseconds are not stalls (clock reads and cache misses).
    #[arg(long, default_value_t = 20)]
    pub min_us: u64,
    /// Sleep to deadlines this many microseconds apart and count late wake-ups, instead of
    /// spinning and counting gaps (0: spin).
    #[arg(long, default_value_t = 0)]
    pub sleep_us: u64,
    /// One JSON object per CPU on stdout instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// Thresholds of the "gaps longer than" columns, in microseconds.
pub const OVER_US: [u64; 4] = [100, 1_000, 4_000, 10_000];

/// What one CPU's thread saw.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuStalls {
    pub cpu: usize,
    pub seconds: f64,
    /// Gaps longer than each of `OVER_US`.
    pub over: [u64; OVER_US.len()],
    /// The longest gap, in microseconds.
    pub max_us: f64,
    /// Sum of all gaps longer than `min_us`, as a fraction of the probe's duration.
    pub stolen: f64,
}

/// Running counts of gaps (or late wake-ups) of at least `min`.
struct Tally {
    min: Duration,
    over: [u64; OVER_US.len()],
    max: Duration,
    stolen: Duration,
}

impl Tally {
    fn new(min: Duration) -> Self {
        Tally {
            min,
            over: [0; OVER_US.len()],
            max: Duration::ZERO,
            stolen: Duration::ZERO,
        }
    }

    fn add(&mut self, gap: Duration) {
        if gap >= self.min {
            self.stolen += gap;
            self.max = self.max.max(gap);
            for (n, &t) in self.over.iter_mut().zip(OVER_US.iter()) {
                if gap > Duration::from_micros(t) {
                    *n += 1;
                }
            }
        }
    }

    fn finish(self, cpu: usize, elapsed: Duration) -> CpuStalls {
        let secs = elapsed.as_secs_f64();
        CpuStalls {
            cpu,
            seconds: secs,
            over: self.over,
            max_us: self.max.as_secs_f64() * 1e6,
            stolen: self.stolen.as_secs_f64() / secs,
        }
    }
}

/// Spins for `dur` counting gaps of at least `min` between clock reads. Pure but for the clock.
pub fn spin(cpu: usize, dur: Duration, min: Duration) -> CpuStalls {
    let start = Instant::now();
    let mut prev = start;
    let mut tally = Tally::new(min);
    loop {
        let now = Instant::now();
        tally.add(now - prev);
        prev = now;
        if now - start >= dur {
            return tally.finish(cpu, now - start);
        }
    }
}

/// Sleeps to deadlines `period` apart for `dur`, counting wake-ups at least `min` late. A
/// wake-up later than the next deadline restarts the schedule from now, so one stall is counted
/// once rather than as a burst of late deadlines behind it.
pub fn sleep(cpu: usize, dur: Duration, min: Duration, period: Duration) -> CpuStalls {
    let start = Instant::now();
    let mut deadline = start;
    let mut tally = Tally::new(min);
    loop {
        deadline += period;
        sleep_until(deadline);
        let now = Instant::now();
        let late = now.saturating_duration_since(deadline);
        tally.add(late);
        if late > period {
            deadline = now;
        }
        if now - start >= dur {
            return tally.finish(cpu, now - start);
        }
    }
}

/// clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME): an absolute deadline, so the time spent
/// computing it is not added to the sleep (std's `sleep` is relative).
fn sleep_until(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime and clock_nanosleep get valid pointers to timespecs on this stack;
    // a null remainder is allowed with TIMER_ABSTIME.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
        let ns = now.tv_nsec as u64 + left.subsec_nanos() as u64;
        let at = libc::timespec {
            tv_sec: now.tv_sec
                + left.as_secs() as libc::time_t
                + (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &at,
            std::ptr::null_mut(),
        );
    }
}

fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity get a
    // pointer to it and its size, and `cpu` is bounds-checked against the set first.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(format!("CPU {cpu} out of range"));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "pinning to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Probes every CPU of `a` at once and renders the result.
pub fn run(a: &StallArgs) -> Result<String, String> {
    if a.cpus.is_empty() || !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        return Err("need at least one CPU and 0 < --seconds <= 3600".into());
    }
    let (dur, min) = (
        Duration::from_secs_f64(a.seconds),
        Duration::from_micros(a.min_us),
    );
    let period = Duration::from_micros(a.sleep_us);
    let threads: Vec<_> = a
        .cpus
        .iter()
        .map(|&cpu| {
            std::thread::Builder::new()
                .name(format!("stalls{cpu}"))
                .spawn(move || {
                    pin(cpu).map(|()| match period.is_zero() {
                        true => spin(cpu, dur, min),
                        false => sleep(cpu, dur, min, period),
                    })
                })
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let res: Vec<CpuStalls> = threads
        .into_iter()
        .map(|t| t.join().map_err(|_| "probe thread panicked".to_string())?)
        .collect::<Result<_, _>>()?;
    Ok(if a.json {
        res.iter().map(|r| json(r) + "\n").collect()
    } else {
        table(&res, a.min_us, a.sleep_us)
    })
}

fn json(r: &CpuStalls) -> String {
    let mut v = serde_json::json!({
        "cpu": r.cpu, "seconds": r.seconds, "max_us": r.max_us, "stolen": r.stolen,
    });
    for (n, t) in r.over.iter().zip(OVER_US) {
        v[format!("over_{t}us")] = (*n).into();
    }
    v.to_string()
}

/// Markdown table, one row per CPU; `sleep_us` > 0 names the columns for late wake-ups.
pub fn table(res: &[CpuStalls], min_us: u64, sleep_us: u64) -> String {
    let (what, longest, lost) = match sleep_us {
        0 => ("gaps", "longest gap", "time lost"),
        _ => ("wake-ups late", "latest wake-up", "lateness summed"),
    };
    let mut s = String::from("| CPU | seconds |");
    for t in OVER_US {
        s += &if t >= 1000 {
            format!(" {what} > {} ms |", t / 1000)
        } else {
            format!(" {what} > {t} us |")
        };
    }
    s += &format!(" {longest} (ms) | {lost} ({what} >= {min_us} us) |\n|---|---|");
    s += &"---|".repeat(OVER_US.len() + 2);
    s.push('\n');
    for r in res {
        s += &format!("| {} | {:.1} |", r.cpu, r.seconds);
        for n in r.over {
            s += &format!(" {n} |");
        }
        s += &format!(" {:.2} | {:.3}% |\n", r.max_us / 1000.0, r.stolen * 100.0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_spin_reports_consistent_numbers() {
        let r = spin(0, Duration::from_millis(30), Duration::from_micros(20));
        assert!(r.seconds >= 0.03 && r.seconds < 5.0, "{r:?}");
        // Each threshold counts a subset of the one before it.
        assert!(r.over.windows(2).all(|w| w[0] >= w[1]), "{r:?}");
        assert!((0.0..=1.0).contains(&r.stolen), "{r:?}");
        // The longest gap fits in the probe and is itself counted as time lost.
        assert!(r.max_us <= r.seconds * 1e6, "{r:?}");
        assert!(
            r.max_us == 0.0 || r.stolen * r.seconds * 1e6 >= r.max_us * 0.999,
            "{r:?}"
        );
    }

    #[test]
    fn table_has_one_row_per_cpu_under_its_header() {
        let r = CpuStalls {
            cpu: 1,
            seconds: 10.0,
            over: [50, 4, 1, 0],
            max_us: 4321.0,
            stolen: 0.00123,
        };
        let t = table(
            &[
                r.clone(),
                CpuStalls {
                    cpu: 0,
                    ..r.clone()
                },
            ],
            20,
            0,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("| CPU | seconds | gaps > 100 us | gaps > 1 ms |"));
        assert_eq!(lines[2], "| 1 | 10.0 | 50 | 4 | 1 | 0 | 4.32 | 0.123% |");
        // Every row has as many cells as the header.
        let cells = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| cells(l) == cells(lines[0])), "{t}");
        let t = table(&[r], 20, 200);
        assert!(
            t.starts_with("| CPU | seconds | wake-ups late > 100 us |"),
            "{t}"
        );
    }

    #[test]
    fn a_short_sleep_counts_wake_ups_not_deadlines() {
        let r = sleep(
            0,
            Duration::from_millis(30),
            Duration::from_micros(20),
            Duration::from_micros(500),
        );
        assert!(r.seconds >= 0.03 && r.seconds < 5.0, "{r:?}");
        assert!(r.over.windows(2).all(|w| w[0] >= w[1]), "{r:?}");
        // At most one late wake-up per deadline: ~60 deadlines in 30 ms.
        assert!(r.over[0] <= 61, "{r:?}");
        assert!((0.0..=1.0).contains(&r.stolen), "{r:?}");
    }
}
